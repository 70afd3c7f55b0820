//! `ai.text-named-entity-recognition` (Workglow's
//! `TextNamedEntityRecognitionTask`): the named entities of a text, from a
//! generation model (an HTTP provider's, say). No small token-classification
//! model ships in a package on the registries with the usual labels (one
//! found is a PII tagger: names, cities, e-mail addresses), and the
//! `models` import serves embedding and generation models only, so the
//! entities are asked for as JSON (`structured.rs`): each checked to be a
//! type, a score from 0 to 1 and words that occur in the text, the model
//! asked again with what was wrong. Types are CoNLL's (PER, ORG, LOC,
//! MISC), as the usual NER models give them; `blockList` drops types.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::{Context, TaskError};

use crate::structured::{Asking, Sampling};

/// What the model is told to do.
const SYSTEM: &str = "Find the named entities in the user's text. Answer with one JSON object \
    and nothing else: {\"entities\": [{\"entity\": TYPE, \"word\": TEXT, \"score\": CONFIDENCE}]}, \
    where TYPE is PER (a person), ORG (an organisation), LOC (a place) or MISC (any other named \
    thing), TEXT is the entity exactly as it is written in the text, and CONFIDENCE is a number \
    from 0 to 1. Give each entity once, in the order of the text; no entities: \
    {\"entities\": []}.";

#[derive(Deserialize, JsonSchema)]
pub(crate) struct EntitiesIn {
    /// The generation model's id.
    model: String,
    /// The text to find entities in.
    text: String,
    /// Entity types to leave out (`PER`, `ORG`, `LOC`, `MISC`).
    #[serde(default, rename = "blockList")]
    block_list: Vec<String>,
    /// `maxTokens`, `temperature`.
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Entity {
    /// The entity's type.
    entity: String,
    /// The model's confidence, 0 to 1.
    score: f64,
    /// The entity as written in the text.
    word: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct EntitiesOut {
    /// The entities, in the model's order.
    entities: Vec<Entity>,
}

pub(crate) fn recognise(input: EntitiesIn, _: &Context) -> Result<EntitiesOut, TaskError> {
    let schema = json!({
        "type": "object", "required": ["entities"],
        "properties": {"entities": {"type": "array", "items": {
            "type": "object", "required": ["entity", "word", "score"],
            "properties": {
                "entity": {"type": "string", "minLength": 1},
                "word": {"type": "string", "minLength": 1},
                "score": {"type": "number", "minimum": 0, "maximum": 1}
            }
        }}}
    });
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| TaskError::failed(format!("the entities' schema: {e}")))?;
    let asking = Asking {
        model: &input.model,
        system: SYSTEM,
        options: input.sampling.options(),
        max_retries: 2,
    };
    let object = asking.object(&input.text, &validator, |o| not_in(o, &input.text))?;
    let entities: Vec<Entity> = serde_json::from_value(object["entities"].clone())
        .map_err(|e| TaskError::failed(format!("the model's entities: {e}")))?;
    let entities = entities
        .into_iter()
        .filter(|e| !input.block_list.contains(&e.entity))
        .collect();
    Ok(EntitiesOut { entities })
}

/// An error for each entity whose words are not in `text`.
fn not_in(object: &Map<String, Value>, text: &str) -> Vec<String> {
    let entities = object.get("entities").and_then(Value::as_array);
    let words = entities
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(n, e)| {
            let word = e.get("word").and_then(Value::as_str)?;
            (!text.contains(word))
                .then(|| format!("/entities/{n}/word: `{word}` is not in the text"))
        });
    words.collect()
}
