//! A chat with a person, one turn at a time: `ai.chat` answers the
//! conversation so far; `ai.chat-answer` adds the person's reply (the body
//! of a `wait` node's signal) and says whether the chat goes on. A `while`
//! node around them (with the wait between) is Workglow's `AiChatTask`;
//! the loop is the graph's, so each turn is durable and each reply is a
//! signal of its own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_sdk::models::{self, Message, Prompt};
use weft_sdk::{Context, TaskError};

use crate::structured::Sampling;
use crate::tools::{ChatMessage, text_of};

/// The turns a chat takes at most unless `maxIterations` says (Workglow's).
const DEFAULT_TURNS: u32 = 100;

/// How replies are formatted when asked for Markdown (Workglow's words).
const MARKDOWN: &str = "Format your reply as GitHub-flavored Markdown:\n\
- Use headings, bullet lists, numbered lists, tables, and fenced code blocks where they help readability.\n\
- Use **bold** and *italic* sparingly for emphasis.\n\
- Keep paragraphs short.";

#[derive(Deserialize, JsonSchema)]
pub(crate) struct ChatIn {
    /// The generation model's id.
    model: String,
    /// The first user message: text, or Workglow's content blocks.
    prompt: Value,
    /// The conversation so far (Workglow's messages: `role` and content
    /// blocks, or text); none: it starts with `prompt`.
    #[serde(default)]
    messages: Vec<ChatMessage>,
    /// Instructions for the model, before the conversation.
    #[serde(default, rename = "systemPrompt")]
    system_prompt: Option<String>,
    /// `text` (the default) or `markdown`.
    #[serde(default, rename = "responseFormat")]
    response_format: Option<String>,
    /// The assistant's text of the turns so far.
    #[serde(default)]
    text: String,
    /// Turns completed so far.
    #[serde(default)]
    iterations: u32,
    /// The most turns (default 100).
    #[serde(default, rename = "maxIterations")]
    #[schemars(range(min = 1))]
    max_iterations: Option<u32>,
    /// `maxTokens` per turn, `temperature`.
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ChatOut {
    /// The conversation with the model's reply last.
    messages: Vec<ChatMessage>,
    /// The model's reply.
    reply: String,
    /// The assistant's text of every turn so far, this one last.
    text: String,
    /// Turns completed, this one included.
    iterations: u32,
    /// The most turns.
    #[serde(rename = "maxIterations")]
    max_iterations: u32,
}

/// One turn: the model answers the conversation.
pub(crate) fn turn(input: ChatIn, _: &Context) -> Result<ChatOut, TaskError> {
    let mut messages = input.messages.clone();
    if messages.is_empty() {
        messages = opening(&input)?;
    }
    let prompt: Vec<Message> = messages
        .iter()
        .map(|m| Message {
            role: m.role.clone(),
            content: text_of(&m.content),
        })
        .collect();
    let answer = models::generate(
        &input.model,
        &Prompt::Chat(prompt),
        &input.sampling.options(),
    )?;
    messages.push(said("assistant", &answer.text));
    Ok(ChatOut {
        messages,
        text: input.text + &answer.text,
        reply: answer.text,
        iterations: input.iterations + 1,
        max_iterations: input.max_iterations.unwrap_or(DEFAULT_TURNS),
    })
}

/// The conversation's start: the system's instructions, then `prompt`.
fn opening(input: &ChatIn) -> Result<Vec<ChatMessage>, TaskError> {
    let format = match input.response_format.as_deref() {
        None | Some("text") => None,
        Some("markdown") => Some(MARKDOWN),
        Some(other) => {
            return Err(TaskError::invalid_input(format!(
                "`responseFormat` `{other}` is not text or markdown"
            )));
        }
    };
    let system: Vec<&str> = input
        .system_prompt
        .as_deref()
        .into_iter()
        .chain(format)
        .filter(|s| !s.is_empty())
        .collect();
    let mut messages = Vec::new();
    if !system.is_empty() {
        messages.push(said("system", &system.join("\n\n")));
    }
    let first = match &input.prompt {
        Value::String(text) => said("user", text),
        blocks @ Value::Array(_) => ChatMessage {
            role: "user".into(),
            content: blocks.clone(),
        },
        _ => {
            return Err(TaskError::invalid_input(
                "`prompt` must be text or content blocks",
            ));
        }
    };
    messages.push(first);
    Ok(messages)
}

#[derive(Deserialize, JsonSchema)]
pub(crate) struct AnswerIn {
    /// The conversation, the model's reply last.
    messages: Vec<ChatMessage>,
    /// The assistant's text so far.
    #[serde(default)]
    text: String,
    /// Turns completed.
    #[serde(default)]
    iterations: u32,
    /// The most turns.
    #[serde(default, rename = "maxIterations")]
    max_iterations: Option<u32>,
    /// The person's answer: `accept` (the default), `decline` or `cancel`.
    #[serde(default)]
    action: Option<String>,
    /// The person's reply: text or content blocks; empty ends the chat.
    #[serde(default)]
    content: Value,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct AnswerOut {
    /// The conversation, the person's reply last when the chat goes on.
    messages: Vec<ChatMessage>,
    /// The assistant's text so far.
    text: String,
    /// Turns completed.
    iterations: u32,
    /// Whether the chat goes on: the person replied, and turns are left.
    go: bool,
}

/// The person's reply joins the conversation, unless they declined,
/// cancelled or said nothing, or the turns are used up.
pub(crate) fn answer(input: AnswerIn, _: &Context) -> Result<AnswerOut, TaskError> {
    let mut messages = input.messages;
    let replied = match input.action.as_deref().unwrap_or("accept") {
        "accept" => !text_of(&input.content).trim().is_empty(),
        "decline" | "cancel" => false,
        other => {
            return Err(TaskError::invalid_input(format!(
                "`action` `{other}` is not accept, decline or cancel"
            )));
        }
    };
    let turns_left = input.iterations < input.max_iterations.unwrap_or(DEFAULT_TURNS);
    if replied {
        messages.push(match input.content {
            Value::String(text) => said("user", &text),
            blocks => ChatMessage {
                role: "user".into(),
                content: blocks,
            },
        });
    }
    Ok(AnswerOut {
        messages,
        text: input.text,
        iterations: input.iterations,
        go: replied && turns_left,
    })
}

/// A message of one text block, as Workglow writes them.
fn said(role: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: json!([{"type": "text", "text": text}]),
    }
}
