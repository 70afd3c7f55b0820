//! `ai.tool-calling` (Workglow's `ToolCallingTask`): a model is offered
//! tools (a name, a description, a JSON Schema for the input) and answers
//! with text and the calls it wants made. The `models` import has no
//! provider-native tool use yet, so the tools and the answer's shape go in
//! the system prompt; each call is checked here (a known tool, an input
//! valid against its schema) and the model is asked again with the errors,
//! as `ai.structured-generation` does. The task only says which calls the
//! model asked for: running them is the graph's next nodes.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::models::{self, Message, Prompt};
use weft_sdk::{Context, TaskError};

use ask::chat::{ChatMessage, text_of};
use ask::{json_object, message};

use crate::structured::Sampling;

/// How many times the model is asked again when its calls do not check.
const RETRIES: usize = 2;

#[derive(Deserialize, JsonSchema)]
pub(crate) struct ToolCallingIn {
    /// The generation model's id.
    model: String,
    /// The user's request.
    prompt: String,
    /// Optional system instructions, before the tools' description.
    #[serde(default, rename = "systemPrompt")]
    system_prompt: Option<String>,
    /// Earlier turns, oldest first (`role`: `user` or `assistant`), sent
    /// before `prompt`.
    #[serde(default)]
    messages: Vec<ChatMessage>,
    /// The tools the model may call.
    tools: Vec<Tool>,
    /// `auto` (the model decides; the default), `none` (no tools offered),
    /// `required` (at least one call), or a tool's name (that tool only,
    /// and called).
    #[serde(default, rename = "toolChoice")]
    tool_choice: Option<String>,
    /// `maxTokens`, `temperature`.
    #[serde(flatten)]
    sampling: Sampling,
}

/// A tool the model may call (Workglow's tool definition; its other
/// fields are accepted and not sent to the model).
#[derive(Deserialize, JsonSchema)]
struct Tool {
    /// The name the model calls it by.
    name: String,
    /// What it does, for the model.
    #[serde(default)]
    description: String,
    /// The JSON Schema its input must conform to.
    #[serde(default, rename = "inputSchema")]
    input_schema: Option<Map<String, Value>>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ToolCallingOut {
    /// What the model said besides its calls.
    text: String,
    /// The calls the model asked for, each checked against its tool.
    #[serde(rename = "toolCalls")]
    tool_calls: Vec<ToolCall>,
}

/// One call the model asked for.
#[derive(Serialize, JsonSchema)]
struct ToolCall {
    /// `call_0`, `call_1`, … in the answer's order.
    id: String,
    /// The tool.
    name: String,
    /// Its input, valid against the tool's `inputSchema`.
    input: Map<String, Value>,
}

/// What `toolChoice` asks.
enum Choice {
    Auto,
    None,
    Required,
    Only(String),
}

pub(crate) fn call(input: ToolCallingIn, _: &Context) -> Result<ToolCallingOut, TaskError> {
    let choice = match input.tool_choice.as_deref().unwrap_or("auto") {
        "auto" => Choice::Auto,
        "none" => Choice::None,
        "required" => Choice::Required,
        name if input.tools.iter().any(|t| t.name == name) => Choice::Only(name.into()),
        other => {
            return Err(TaskError::invalid_input(format!(
                "`toolChoice` `{other}` is not auto, none, required or a tool's name"
            )));
        }
    };
    let offered: Vec<&Tool> = input
        .tools
        .iter()
        .filter(|t| match &choice {
            Choice::None => false,
            Choice::Only(name) => &t.name == name,
            _ => true,
        })
        .collect();
    let checks = offered
        .iter()
        .map(|t| checker(t).map(|c| (t.name.as_str(), c)))
        .collect::<Result<Vec<_>, _>>()?;
    let options = input.sampling.options();
    let mut history = conversation(&input, &offered, &choice);
    let mut errors = Vec::new();
    for _ in 0..=RETRIES {
        let answer = models::generate(&input.model, &Prompt::Chat(history.clone()), &options)?;
        if offered.is_empty() {
            return Ok(ToolCallingOut {
                text: answer.text,
                tool_calls: Vec::new(),
            });
        }
        match read_answer(&answer.text, &checks, &choice) {
            Ok(out) => return Ok(out),
            Err(found) => errors = found,
        }
        history.push(message("assistant", &answer.text));
        history.push(message("user", &retry_prompt(&errors)));
    }
    Err(TaskError::failed(format!(
        "the model's tool calls failed their checks after {} attempt(s); last errors: {}",
        RETRIES + 1,
        errors.join("; ")
    )))
}

/// A tool's input validator (any object when it gives no schema).
fn checker(tool: &Tool) -> Result<jsonschema::Validator, TaskError> {
    let schema = tool
        .input_schema
        .clone()
        .map_or_else(|| json!({"type": "object"}), Value::Object);
    jsonschema::validator_for(&schema).map_err(|e| {
        TaskError::invalid_input(format!(
            "tool `{}`: `inputSchema` is not a valid JSON Schema: {e}",
            tool.name
        ))
    })
}

/// The messages of the first ask: instructions and tools, earlier turns,
/// the prompt.
fn conversation(input: &ToolCallingIn, offered: &[&Tool], choice: &Choice) -> Vec<Message> {
    let mut system: Vec<String> = input.system_prompt.iter().cloned().collect();
    if !offered.is_empty() {
        system.push(instructions(offered, choice));
    }
    let mut history = Vec::new();
    if !system.is_empty() {
        history.push(message("system", &system.join("\n\n")));
    }
    for m in &input.messages {
        history.push(message(&m.role, &text_of(&m.content)));
    }
    history.push(message("user", &input.prompt));
    history
}

/// The tools and the answer's shape, in the system prompt.
fn instructions(offered: &[&Tool], choice: &Choice) -> String {
    let tools: Vec<Value> = offered
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "inputSchema": t.input_schema}))
        .collect();
    let must = match choice {
        Choice::Required | Choice::Only(_) => "You must call at least one tool.",
        _ => "Call tools only when they help; an empty list is fine.",
    };
    format!(
        "You can call these tools:\n{}\n\nAnswer with one JSON object and nothing else: \
         {{\"text\": \"what you say to the user\", \"tool_calls\": [{{\"name\": \"a tool's name\", \
         \"input\": {{...}}}}]}}, each input conforming to its tool's inputSchema. {must}",
        Value::Array(tools)
    )
}

/// The checked calls of an answer, or what is wrong with them.
fn read_answer(
    text: &str,
    checks: &[(&str, jsonschema::Validator)],
    choice: &Choice,
) -> Result<ToolCallingOut, Vec<String>> {
    let answer = json_object(text).map_err(|why| vec![why])?;
    let said = answer.get("text").and_then(Value::as_str).unwrap_or("");
    let calls = match answer.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls.clone(),
        Some(_) => return Err(vec!["`tool_calls` is not a list".into()]),
    };
    let mut errors = Vec::new();
    let mut tool_calls = Vec::new();
    for (n, call) in calls.into_iter().enumerate() {
        match check_call(n, call, checks) {
            Ok(call) => tool_calls.push(call),
            Err(mut found) => errors.append(&mut found),
        }
    }
    if tool_calls.is_empty()
        && errors.is_empty()
        && matches!(choice, Choice::Required | Choice::Only(_))
    {
        errors.push("no tool was called, and one must be".into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ToolCallingOut {
        text: said.to_string(),
        tool_calls,
    })
}

/// Call `n` of an answer, checked: a tool offered, an input valid for it.
fn check_call(
    n: usize,
    call: Value,
    checks: &[(&str, jsonschema::Validator)],
) -> Result<ToolCall, Vec<String>> {
    let name = call["name"].as_str().unwrap_or_default().to_string();
    let Some((_, validator)) = checks.iter().find(|(tool, _)| *tool == name) else {
        return Err(vec![format!("call {n}: there is no tool `{name}`")]);
    };
    let input = match call.get("input") {
        Some(Value::Object(input)) => input.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(vec![format!(
                "call {n} (`{name}`): `input` is not an object"
            )]);
        }
    };
    let value = Value::Object(input);
    let found: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("call {n} (`{name}`) input {}: {e}", e.instance_path()))
        .collect();
    match value {
        Value::Object(input) if found.is_empty() => Ok(ToolCall {
            id: format!("call_{n}"),
            name,
            input,
        }),
        _ => Err(found),
    }
}

fn retry_prompt(errors: &[String]) -> String {
    let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    format!(
        "Your tool calls did not pass their checks:\n{}\n\nAnswer again with one JSON object \
         as described, nothing else.",
        list.join("\n")
    )
}
