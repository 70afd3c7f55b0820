//! `ai.text-fill-mask` (Workglow's `TextFillMaskTask`): the words most
//! likely at a text's mask (`[MASK]` or `<mask>`), from a generation model.
//! No masked-language model ships in a package on the registries (the one
//! found is a SPLADE retrieval model, in safetensors), and the `models`
//! import has no token probabilities, so the model is asked for up to five
//! single words with probabilities as JSON (`ask`), checked (one word each,
//! scores from 0 to 1 adding up to at most 1), and asked again with what
//! was wrong. Each `sequence` is the text with the word put in here, so it
//! is exact; scores are the model's own estimate.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::{Context, TaskError};

use crate::structured::Sampling;

const MASKS: [&str; 2] = ["[MASK]", "<mask>"];

/// What the model is told to do.
const SYSTEM: &str = "The user's text has one masked word, written [MASK]. Answer with one \
    JSON object and nothing else: {\"predictions\": [{\"token\": WORD, \"score\": PROBABILITY}]}, \
    the five words most likely in its place, most likely first, each a single word, with \
    probabilities from 0 to 1 that add up to at most 1.";

#[derive(Deserialize, JsonSchema)]
pub(crate) struct FillIn {
    /// The generation model's id.
    model: String,
    /// The text, with one mask: `[MASK]` or `<mask>`.
    text: String,
    /// `maxTokens`, `temperature`.
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct Prediction {
    /// The word that fills the mask.
    entity: String,
    /// The model's probability for it.
    score: f64,
    /// The text with the mask filled.
    sequence: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct FillOut {
    /// The predictions, most likely first.
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Guess {
    token: String,
    score: f64,
}

pub(crate) fn fill(input: FillIn, _: &Context) -> Result<FillOut, TaskError> {
    let mask = the_mask(&input.text)?;
    let asked = input.text.replacen(mask, "[MASK]", 1);
    let asking = ask::Asking {
        model: &input.model,
        system: SYSTEM,
        options: input.sampling.options(),
        max_retries: 2,
        schema: None,
    };
    let mut object = asking.object(&asked, faults)?;
    let guesses: Vec<Guess> =
        serde_json::from_value(object.remove("predictions").unwrap_or_default())
            .map_err(|e| TaskError::failed(format!("the model's predictions: {e}")))?;
    let mut predictions: Vec<Prediction> = guesses
        .into_iter()
        .map(|g| Prediction {
            sequence: input.text.replacen(mask, &g.token, 1),
            entity: g.token,
            score: g.score,
        })
        .collect();
    predictions.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(FillOut { predictions })
}

/// The one mask token in `text`.
fn the_mask(text: &str) -> Result<&'static str, TaskError> {
    let found: Vec<&str> = MASKS
        .into_iter()
        .flat_map(|m| std::iter::repeat_n(m, text.matches(m).count()))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => Err(TaskError::invalid_input(format!(
            "text: give exactly one mask, `[MASK]` or `<mask>` (found {})",
            found.len()
        ))),
    }
}

/// What is wrong with `answer`, each as `pointer: message`.
fn faults(answer: &Value) -> Vec<String> {
    let Some(predictions) = answer.get("predictions").and_then(Value::as_array) else {
        return vec!["/: \"predictions\" is a required property (an array)".into()];
    };
    let mut found = Vec::new();
    if predictions.is_empty() || predictions.len() > 5 {
        found.push(format!(
            "/predictions: give 1 to 5, not {}",
            predictions.len()
        ));
    }
    let mut total = 0.0;
    for (n, p) in predictions.iter().enumerate() {
        match p.get("token").and_then(Value::as_str) {
            Some(t) if !t.is_empty() && !t.contains(char::is_whitespace) => {}
            _ => found.push(format!("/predictions/{n}/token: one word is required")),
        }
        match p.get("score").and_then(Value::as_f64) {
            Some(s) if (0.0..=1.0).contains(&s) => total += s,
            _ => found.push(format!(
                "/predictions/{n}/score: a number from 0 to 1 is required"
            )),
        }
    }
    if total > 1.0 + 1e-6 {
        found.push(format!(
            "/predictions: the scores add up to {total}, more than 1"
        ));
    }
    found
}
