//! Asking a generation model for a JSON object and checking the answer,
//! shared by the standard plugins that do it: `std-ai`'s structured
//! generation, tool calling and named entities, `std-rag`'s document
//! enricher. An answer is read as JSON (a code fence or a sentence around
//! the object dropped), checked by the caller, and asked for again with
//! the errors, in Workglow's words, as its `StructuredGenerationTask` does.
//!
//! A conversation as Workglow writes it, for the chat tasks, is in
//! [`chat`].
//!
//! What it must not know: any task's ports (the callers own those).
pub mod chat;
pub mod entities;

use serde_json::{Map, Value};
use weft_sdk::TaskError;
use weft_sdk::models::{self, GenerateOptions, Message, Prompt};

/// What `ai.text-summary` (and the document enricher) asks of a model.
pub const SUMMARISE: &str =
    "Summarise the user's text in a few sentences. Answer with the summary only.";

/// Generation options that leave every setting to the model.
pub fn plain() -> GenerateOptions {
    GenerateOptions {
        max_tokens: None,
        temperature: None,
        stop: Vec::new(),
    }
}

/// A model asked for a JSON object until one checks.
pub struct Asking<'a> {
    pub model: &'a str,
    pub system: &'a str,
    pub options: GenerateOptions,
    pub max_retries: u32,
    /// A JSON Schema the answer must follow: the model is held to it where
    /// its provider can (`models.generate-json`); the caller's check still
    /// decides.
    pub schema: Option<&'a Value>,
}

impl Asking<'_> {
    /// The first answer to `prompt` that is a JSON object `check` finds no
    /// fault with (its errors, as `pointer: message`); each failed answer
    /// asked again with its errors.
    pub fn object(
        &self,
        prompt: &str,
        check: impl Fn(&Value) -> Vec<String>,
    ) -> Result<Map<String, Value>, TaskError> {
        let mut asked = prompt.to_string();
        let mut errors = Vec::new();
        for _ in 0..=self.max_retries {
            let messages = vec![message("system", self.system), message("user", &asked)];
            let chat = Prompt::Chat(messages);
            let answer = match self.schema {
                Some(schema) => {
                    models::generate_json(self.model, &chat, &schema.to_string(), &self.options)?
                }
                None => models::generate(self.model, &chat, &self.options)?,
            };
            errors = match json_object(&answer.text) {
                Ok(object) => {
                    let value = Value::Object(object);
                    let found = check(&value);
                    match value {
                        Value::Object(object) if found.is_empty() => return Ok(object),
                        _ => found,
                    }
                }
                Err(why) => vec![format!("/: {why}")],
            };
            asked = retry_prompt(prompt, &errors);
        }
        Err(TaskError::failed(format!(
            "the model's answer failed validation after {} attempt(s); last errors: {}",
            self.max_retries + 1,
            errors.join("; ")
        )))
    }
}

/// A chat message.
pub fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

/// Workglow's words for asking again.
fn retry_prompt(original: &str, errors: &[String]) -> String {
    let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    format!(
        "{original}\n\nYour previous response did not conform to the required JSON schema. \
         Validation errors:\n{}\n\nPlease respond again with a JSON object that satisfies the \
         schema. Output ONLY the JSON object, no other text.",
        list.join("\n")
    )
}

/// The JSON object in a model's answer: the whole answer, or what lies
/// between its first `{` and its last `}` (a code fence or a sentence
/// around it).
pub fn json_object(text: &str) -> Result<Map<String, Value>, String> {
    let trimmed = text.trim();
    let candidate = match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(start), Some(end)) if start < end => &trimmed[start..=end],
        _ => trimmed,
    };
    match serde_json::from_str::<Value>(candidate) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!("the answer is JSON but not an object: {other}")),
        Err(e) => Err(format!("the answer is not JSON ({e})")),
    }
}
