//! A chat with a person, one turn at a time: `ai.chat` answers the
//! conversation so far; `ai.chat-answer` adds the person's reply (the body
//! of a `wait` node's signal) and says whether the chat goes on. A `while`
//! node around them (with the wait between) is Workglow's `AiChatTask`
//! (with `std-rag`'s `rag.chat` answering, its `AiChatWithKbTask`);
//! the loop is the graph's, so each turn is durable and each reply is a
//! signal of its own.

use ask::chat::{self, ChatMessage, DEFAULT_TURNS, said, text_of};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::models::{self, Prompt};
use weft_sdk::{Context, TaskError};

use crate::structured::Sampling;

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
    let mut messages = input.messages;
    if messages.is_empty() {
        let format = chat::format_addendum(input.response_format.as_deref())?;
        let system: Vec<&str> = input
            .system_prompt
            .as_deref()
            .into_iter()
            .chain(format)
            .filter(|s| !s.is_empty())
            .collect();
        messages = chat::opening(&system.join("\n\n"), &input.prompt)?;
    }
    let prompt = Prompt::Chat(chat::to_model(&messages));
    let answer = models::generate(&input.model, &prompt, &input.sampling.options())?;
    messages.push(said("assistant", &answer.text));
    Ok(ChatOut {
        messages,
        text: input.text + &answer.text,
        reply: answer.text,
        iterations: input.iterations + 1,
        max_iterations: input.max_iterations.unwrap_or(DEFAULT_TURNS),
    })
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
    /// A grounded chat's references so far (`rag.chat`), passed on.
    #[serde(default)]
    references: Option<Vec<Value>>,
    /// A grounded chat's last context (`rag.chat`), passed on.
    #[serde(default, rename = "contextReferences")]
    context_references: Option<Vec<Value>>,
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
    /// A grounded chat's references so far, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    references: Option<Vec<Value>>,
    /// A grounded chat's last context, when given.
    #[serde(rename = "contextReferences", skip_serializing_if = "Option::is_none")]
    context_references: Option<Vec<Value>>,
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
        references: input.references,
        context_references: input.context_references,
    })
}
