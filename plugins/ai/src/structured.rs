//! `ai.structured-generation`: a JSON object conforming to a JSON Schema,
//! from a generation model. The schema goes in the system prompt, the
//! answer is read as JSON (fences and text around it dropped) and validated
//! here with the `jsonschema` crate; an answer that does not conform is
//! asked again with its errors, as Workglow's task does, up to `maxRetries`
//! times. (The `models` import has no provider-native JSON mode yet.)
use ask::Asking;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::models::GenerateOptions;
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
        schema: Some(&schema),
    };
    let check = |answer: &Value| -> Vec<String> {
        let errors = validator.iter_errors(answer);
        errors
            .map(|e| format!("{}: {e}", pointer(&e.instance_path().to_string())))
            .collect()
    };
    let object = asking.object(&input.prompt, check)?;
    Ok(StructuredOut { object })
}

/// A JSON pointer as Workglow writes it in its errors: `/` for the root.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}
