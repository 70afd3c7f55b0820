//! Named entities from a generation model: asked for as JSON with CoNLL's
//! types (PER, ORG, LOC, MISC), each checked to be a type, a score from 0
//! to 1 and words that occur in the text, the model asked again with what
//! was wrong. No small token-classification model with these labels ships
//! in a package on the registries, and the `models` import serves
//! embedding and generation models only.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::TaskError;
use weft_sdk::models::GenerateOptions;

use crate::Asking;

/// What the model is told to do.
const SYSTEM: &str = "Find the named entities in the user's text. Answer with one JSON object \
    and nothing else: {\"entities\": [{\"entity\": TYPE, \"word\": TEXT, \"score\": CONFIDENCE}]}, \
    where TYPE is PER (a person), ORG (an organisation), LOC (a place) or MISC (any other named \
    thing), TEXT is the entity exactly as it is written in the text, and CONFIDENCE is a number \
    from 0 to 1. Give each entity once, in the order of the text; no entities: \
    {\"entities\": []}.";

/// One entity, as Workglow's `TextNamedEntityRecognitionTask` gives it.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub struct Entity {
    /// The entity's type.
    pub entity: String,
    /// The model's confidence, 0 to 1.
    pub score: f64,
    /// The entity as written in the text.
    pub word: String,
}

/// The entities of `text` by `model`, asked again twice at most.
pub fn recognise(
    model: &str,
    text: &str,
    options: GenerateOptions,
) -> Result<Vec<Entity>, TaskError> {
    let asking = Asking {
        model,
        system: SYSTEM,
        options,
        max_retries: 2,
        schema: None,
    };
    let mut object = asking.object(text, |answer| faults(answer, text))?;
    let entities = object.remove("entities").unwrap_or_default();
    serde_json::from_value(entities)
        .map_err(|e| TaskError::failed(format!("the model's entities: {e}")))
}

/// What is wrong with `answer`, each as `pointer: message`.
fn faults(answer: &Value, text: &str) -> Vec<String> {
    let Some(entities) = answer.get("entities") else {
        return vec!["/: \"entities\" is a required property".into()];
    };
    let Some(entities) = entities.as_array() else {
        return vec!["/entities: not an array".into()];
    };
    let mut found = Vec::new();
    for (n, e) in entities.iter().enumerate() {
        let at = format!("/entities/{n}");
        let text_of = |field: &str| {
            e.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if text_of("entity").is_none() {
            found.push(format!(
                "{at}/entity: a type (a non-empty string) is required"
            ));
        }
        match e.get("score").and_then(Value::as_f64) {
            Some(score) if (0.0..=1.0).contains(&score) => {}
            _ => found.push(format!("{at}/score: a number from 0 to 1 is required")),
        }
        match text_of("word") {
            Some(word) if !text.contains(word) => {
                found.push(format!("{at}/word: `{word}` is not in the text"));
            }
            Some(_) => {}
            None => found.push(format!("{at}/word: the entity's text is required")),
        }
    }
    found
}
