//! `ai.structured-generation`: a JSON object conforming to a JSON Schema,
//! from a generation model. The schema goes in the system prompt, the
//! answer is read as JSON (fences and text around it dropped) and validated
//! here with the `jsonschema` crate; an answer that does not conform is
//! asked again with its errors, as Workglow's task does, up to `maxRetries`
//! times. (The `models` import has no provider-native JSON mode yet.)
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::models::{self, GenerateOptions, Message, Prompt};
use weft_sdk::{Context, TaskError};

fn two() -> u32 {
    2
}

#[derive(Deserialize, JsonSchema)]
pub(crate) struct StructuredIn {
    /// The generation model's id.
    model: String,
    /// What to generate the object from.
    prompt: String,
    /// The JSON Schema the object must conform to.
    #[serde(rename = "outputSchema")]
    output_schema: Map<String, Value>,
    /// `maxTokens`, `temperature`.
    #[serde(flatten)]
    sampling: Sampling,
    /// How many times to ask again, with the validation errors, when an
    /// answer does not conform (default 2; 0: fail on the first).
    #[serde(default = "two", rename = "maxRetries")]
    #[schemars(range(max = 10))]
    max_retries: u32,
}

/// How a generation model samples each answer: Workglow's `maxTokens` and
/// `temperature` ports, shared by the tasks that ask for JSON answers.
#[derive(Deserialize, JsonSchema)]
pub(crate) struct Sampling {
    /// Most tokens per answer (default 256).
    #[serde(default, rename = "maxTokens")]
    #[schemars(range(min = 1, max = 4096))]
    max_tokens: Option<u32>,
    /// Sampling temperature (0: greedy).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    temperature: Option<f32>,
}

impl Sampling {
    /// The generation options these settings ask for.
    pub(crate) fn options(&self) -> GenerateOptions {
        GenerateOptions {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            stop: Vec::new(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct StructuredOut {
    /// The generated object, valid against `outputSchema`.
    object: Map<String, Value>,
}

pub(crate) fn generate(input: StructuredIn, _: &Context) -> Result<StructuredOut, TaskError> {
    let schema = Value::Object(input.output_schema);
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        TaskError::invalid_input(format!("`outputSchema` is not a valid JSON Schema: {e}"))
    })?;
    let system = format!(
        "Answer with one JSON object that conforms to this JSON Schema, and nothing else:\n{schema}"
    );
    let asking = Asking {
        model: &input.model,
        system: &system,
        options: input.sampling.options(),
        max_retries: input.max_retries,
    };
    let object = asking.object(&input.prompt, &validator, |_| Vec::new())?;
    Ok(StructuredOut { object })
}

/// A model asked for a JSON object until one is valid.
pub(crate) struct Asking<'a> {
    pub(crate) model: &'a str,
    pub(crate) system: &'a str,
    pub(crate) options: GenerateOptions,
    pub(crate) max_retries: u32,
}

impl Asking<'_> {
    /// The first answer to `prompt` that is a JSON object valid against
    /// `validator` and that `check` finds no fault with (its errors, as
    /// `pointer: message`); each failed answer asked again with its errors.
    pub(crate) fn object(
        &self,
        prompt: &str,
        validator: &jsonschema::Validator,
        check: impl Fn(&Map<String, Value>) -> Vec<String>,
    ) -> Result<Map<String, Value>, TaskError> {
        let mut asked = prompt.to_string();
        let mut errors = Vec::new();
        for _ in 0..=self.max_retries {
            let messages = vec![message("system", self.system), message("user", &asked)];
            let answer = models::generate(self.model, &Prompt::Chat(messages), &self.options)?;
            errors = match json_object(&answer.text) {
                Ok(object) => {
                    let value = Value::Object(object);
                    let mut found: Vec<String> = validator
                        .iter_errors(&value)
                        .map(|e| format!("{}: {e}", pointer(&e.instance_path().to_string())))
                        .collect();
                    if let Value::Object(object) = value {
                        if found.is_empty() {
                            found = check(&object);
                        }
                        if found.is_empty() {
                            return Ok(object);
                        }
                    }
                    found
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

pub(crate) fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

/// A JSON pointer as Workglow writes it in its errors: `/` for the root.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
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
pub(crate) fn json_object(text: &str) -> Result<Map<String, Value>, String> {
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
