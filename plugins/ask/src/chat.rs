//! A conversation as Workglow writes it, shared by the chat tasks
//! (`std-ai`'s `ai.chat`, `std-rag`'s `rag.chat`): messages of a `role`
//! and content blocks, how a chat starts, and what a model is sent.
//!
//! What it must not know: where a turn's context comes from, or the ports
//! of the tasks (the callers own those).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_sdk::TaskError;
use weft_sdk::models::Message;

/// The turns a chat takes at most unless `maxIterations` says (Workglow's).
pub const DEFAULT_TURNS: u32 = 100;

/// One message of a conversation.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
pub struct ChatMessage {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Its text, or Workglow's content blocks (their `text` is used).
    pub content: Value,
}

/// A message of one text block, as Workglow writes them.
pub fn said(role: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: json!([{"type": "text", "text": text}]),
    }
}

/// The text of a message's content: itself, or its text blocks joined.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.as_str().or_else(|| b["text"].as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The instructions `responseFormat` adds (Workglow's words): none for
/// `text` (the default), how to write Markdown for `markdown`.
pub fn format_addendum(format: Option<&str>) -> Result<Option<&'static str>, TaskError> {
    match format {
        None | Some("text") => Ok(None),
        Some("markdown") => Ok(Some(
            "Format your reply as GitHub-flavored Markdown:\n\
             - Use headings, bullet lists, numbered lists, tables, and fenced code blocks where they help readability.\n\
             - Use **bold** and *italic* sparingly for emphasis.\n\
             - Keep paragraphs short.",
        )),
        Some(other) => Err(TaskError::invalid_input(format!(
            "`responseFormat` `{other}` is not text or markdown"
        ))),
    }
}

/// A conversation's start: `system` (when not empty), then `prompt` (text
/// or content blocks) from the user.
pub fn opening(system: &str, prompt: &Value) -> Result<Vec<ChatMessage>, TaskError> {
    let mut messages = Vec::new();
    if !system.is_empty() {
        messages.push(said("system", system));
    }
    messages.push(match prompt {
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
    });
    Ok(messages)
}

/// `messages` as a model is sent them.
pub fn to_model(messages: &[ChatMessage]) -> Vec<Message> {
    messages
        .iter()
        .map(|m| Message {
            role: m.role.clone(),
            content: text_of(&m.content),
        })
        .collect()
}

/// The text of the person's last message that says something.
pub fn last_user_text(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| m.role == "user")
        .map(|m| text_of(&m.content).trim().to_string())
        .find(|t| !t.is_empty())
        .unwrap_or_default()
}
