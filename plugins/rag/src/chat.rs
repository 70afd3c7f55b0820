//! `rag.chat`: one turn of a chat grounded in knowledge bases, Workglow's
//! `AiChatWithKbTask` turn by turn. The person's last message is searched
//! in each knowledge base named; the best chunks become numbered context
//! in the turn's system prompt and the turn's `references`; the model
//! answers the conversation. The loop around it (a `wait` for each reply,
//! `ai.chat-answer`) is the graph's, as for `ai.chat`.

use std::collections::HashMap;

use ask::chat::{self, ChatMessage, DEFAULT_TURNS, said};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::models::{self, GenerateOptions, Prompt};
use weft_sdk::{Context, TaskError};

use crate::kb::{Kb, Stored, best_chunks};

/// The most knowledge bases one turn searches.
const MAX_KBS: usize = 32;

/// How to cite, when replies are Markdown (Workglow's words).
const CITE: &str = "When you reference information from the context above, cite it inline as a\n\
Markdown link: write the natural anchor text in brackets followed by the\n\
URL in parentheses, e.g. `[the dashboard](https://workglow.com/help/dashboard)`.\n\
Do not use numeric `[1]`-style citations. If a context entry has no URL,\n\
describe it in prose without a link.";

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatIn {
    /// The generation model's id.
    model: String,
    /// The model that embeds the person's message; none: each knowledge
    /// base's own (the one its chunks were upserted with).
    #[serde(default)]
    embedding_model: Option<String>,
    /// The first user message: text, or Workglow's content blocks.
    prompt: Value,
    /// The conversation so far; none: it starts with `prompt`.
    #[serde(default)]
    messages: Vec<ChatMessage>,
    /// Instructions for the model, before the context.
    #[serde(default)]
    system_prompt: Option<String>,
    /// The knowledge bases searched (the run's user's own), at most 32.
    knowledge_base_ids: Vec<String>,
    /// Chunks taken from each (default 4).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    top_k_per_kb: Option<u32>,
    /// The lowest cosine similarity kept (default 0.3).
    #[serde(default)]
    min_score: Option<f64>,
    /// The most chunks in the context (default 6).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    max_references: Option<u32>,
    /// Said instead of asking the model when nothing matches.
    #[serde(default)]
    no_match_reply: Option<String>,
    /// Given as the turn's references when nothing matches.
    #[serde(default)]
    no_match_references: Vec<Value>,
    /// `text` (the default) or `markdown` (with inline citations).
    #[serde(default)]
    response_format: Option<String>,
    /// Most tokens per reply.
    #[serde(default)]
    #[schemars(range(min = 1, max = 4096))]
    max_tokens: Option<u32>,
    /// Sampling temperature (0: greedy).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    temperature: Option<f32>,
    /// The assistant's text of the turns so far.
    #[serde(default)]
    text: String,
    /// Turns completed so far.
    #[serde(default)]
    iterations: u32,
    /// The most turns (default 100).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_iterations: Option<u32>,
    /// The references of the turns so far.
    #[serde(default)]
    references: Vec<Value>,
    /// The last references found, the context of a turn that finds none.
    #[serde(default)]
    context_references: Vec<Value>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatOut {
    /// The conversation with the model's reply last.
    messages: Vec<ChatMessage>,
    /// The model's reply.
    reply: String,
    /// The assistant's text of every turn so far, this one last.
    text: String,
    /// Turns completed, this one included.
    iterations: u32,
    /// The most turns.
    max_iterations: u32,
    /// The references of every turn so far, this one's last: `index`,
    /// `kbId`, `kbLabel`, `title`, `url`, `snippet`, `score`.
    references: Vec<Value>,
    /// The references this turn's context had.
    context_references: Vec<Value>,
}

/// One turn: search, then answer with what was found as context.
pub fn turn(input: ChatIn, _: &Context) -> Result<ChatOut, TaskError> {
    let format = chat::format_addendum(input.response_format.as_deref())?;
    let mut messages = input.messages.clone();
    if messages.is_empty() {
        let system = input.system_prompt.as_deref().unwrap_or_default();
        messages = chat::opening(system, &input.prompt)?;
    }
    let found = references(&input, &chat::last_user_text(&messages))?;
    let context = match found.is_empty() {
        true => input.context_references.clone(),
        false => found,
    };
    let emitted = match context.is_empty() {
        true => input.no_match_references.clone(),
        false => context.clone(),
    };
    let reply = match (&input.no_match_reply, context.is_empty()) {
        (Some(reply), true) => reply.clone(),
        _ => answer(&input, &messages, &context, format)?,
    };
    messages.push(said("assistant", &reply));
    let mut references = input.references;
    references.extend(emitted);
    Ok(ChatOut {
        messages,
        text: input.text + &reply,
        reply,
        iterations: input.iterations + 1,
        max_iterations: input.max_iterations.unwrap_or(DEFAULT_TURNS),
        references,
        context_references: context,
    })
}

/// The model's reply, the context in the system prompt (the conversation's
/// own system messages left out: the turn's prompt has their text).
fn answer(
    input: &ChatIn,
    messages: &[ChatMessage],
    context: &[Value],
    format: Option<&str>,
) -> Result<String, TaskError> {
    let markdown = input.response_format.as_deref() == Some("markdown");
    let listed = context
        .iter()
        .map(|r| cited(r, markdown))
        .collect::<Vec<_>>()
        .join("\n\n");
    let parts = [
        input.system_prompt.as_deref().unwrap_or_default(),
        format.unwrap_or_default(),
        if markdown { CITE } else { "" },
        "--- Context ---",
        &listed,
    ];
    let system: Vec<&str> = parts.into_iter().filter(|s| !s.is_empty()).collect();
    let mut sent = vec![said("system", &system.join("\n\n"))];
    sent.extend(messages.iter().filter(|m| m.role != "system").cloned());
    let options = GenerateOptions {
        max_tokens: input.max_tokens,
        temperature: input.temperature,
        stop: Vec::new(),
    };
    let prompt = Prompt::Chat(chat::to_model(&sent));
    Ok(models::generate(&input.model, &prompt, &options)?.text)
}

/// A reference as the context lists it (Workglow's format).
fn cited(r: &Value, markdown: bool) -> String {
    let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
    let head = format!(
        "[{}] [{}] ({})",
        r["index"],
        field("kbLabel"),
        field("title")
    );
    match (markdown, field("url")) {
        (true, url) if !url.is_empty() => format!("{head} <{url}>\n    {}", field("snippet")),
        _ => format!("{head} {}", field("snippet")),
    }
}

/// The best chunks for `query` across the knowledge bases, as references
/// numbered from 1; none for an empty query.
fn references(input: &ChatIn, query: &str) -> Result<Vec<Value>, TaskError> {
    if query.is_empty() {
        return Ok(Vec::new());
    }
    if input.knowledge_base_ids.len() > MAX_KBS {
        return Err(TaskError::invalid_input(format!(
            "`knowledgeBaseIds` names {} knowledge bases; at most {MAX_KBS}",
            input.knowledge_base_ids.len()
        )));
    }
    let top_k = input.top_k_per_kb.unwrap_or(4) as usize;
    let min_score = input.min_score.unwrap_or(0.3);
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    let mut found: Vec<(&str, Stored, f64)> = Vec::new();
    for id in &input.knowledge_base_ids {
        let kb = Kb::named(id)?;
        let model = match &input.embedding_model {
            Some(model) => model.clone(),
            None => kb.info()?.model.ok_or_else(|| {
                TaskError::invalid_input(format!(
                    "knowledge base `{id}` has no embedding model: give `embeddingModel`"
                ))
            })?,
        };
        if !vectors.contains_key(&model) {
            let vector = models::embed(&model, &[query.to_string()])?.pop();
            vectors.insert(model.clone(), vector.unwrap_or_default());
        }
        for (stored, score) in best_chunks(&kb, &vectors[&model], top_k, min_score)? {
            found.push((id, stored, score));
        }
    }
    found.sort_by(|a, b| b.2.total_cmp(&a.2));
    found.truncate(input.max_references.unwrap_or(6) as usize);
    let mut urls: HashMap<(&str, String), Option<String>> = HashMap::new();
    let mut out = Vec::with_capacity(found.len());
    for (i, (id, stored, score)) in found.into_iter().enumerate() {
        let key = (id, stored.doc_id.clone());
        if !urls.contains_key(&key) {
            urls.insert(key.clone(), Kb::named(id)?.document_url(&stored.doc_id)?);
        }
        out.push(reference(i + 1, id, &stored, score, urls[&key].clone()));
    }
    Ok(out)
}

/// Chunk `stored` of knowledge base `kb` as reference `index`: its title,
/// its document's URL (else its own) with its section's anchor, the start
/// of its text.
fn reference(index: usize, kb: &str, stored: &Stored, score: f64, url: Option<String>) -> Value {
    let md = &stored.metadata;
    let text = |k: &str| md.get(k).and_then(Value::as_str);
    let title = text("doc_title")
        .or(text("title"))
        .unwrap_or(&stored.doc_id)
        .to_string();
    let url = url
        .or(text("url").map(str::to_string))
        .map(|u| with_anchor(u, md.get("sectionTitles")));
    let body = text("text").unwrap_or_default();
    let snippet = match body.char_indices().nth(150) {
        Some((cut, _)) => format!("{}…", body[..cut].trim()),
        None => body.to_string(),
    };
    let mut r = serde_json::json!({
        "index": index, "kbId": kb, "kbLabel": kb, "title": title,
        "snippet": snippet, "score": score
    });
    if let Some(url) = url {
        r["url"] = Value::String(url);
    }
    r
}

/// `url` with the anchor of the deepest of `sections` (as Workglow slugs a
/// heading), unless it has one.
fn with_anchor(url: String, sections: Option<&Value>) -> String {
    let deepest = sections
        .and_then(Value::as_array)
        .and_then(|s| s.last())
        .and_then(Value::as_str);
    let Some(heading) = deepest.filter(|_| !url.contains('#')) else {
        return url;
    };
    let mut slug = String::new();
    for c in heading.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    match slug.is_empty() {
        true => url,
        false => format!("{url}#{slug}"),
    }
}
