//! `rag.context-builder`, Workglow's `ContextBuilderTask`: retrieved chunks
//! formatted into one context for a prompt, within a length or token
//! budget.
//!
//! Lengths count UTF-16 units and tokens are estimated as Workglow's
//! (`ceil(length / 4)`), or counted by `model` when one is named (falling
//! back to the estimate if the model cannot count, as Workglow does). With
//! a model, the budget is checked on the sum of each piece's count, so a
//! context costs one count per chunk; Workglow recounts the whole context
//! for every chunk, which costs the square of the context's length (a
//! tokenizer may merge tokens across a boundary, so the two can differ by
//! a token per chunk).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};

use crate::tokens::Tokens;

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// The chunks as they are.
    #[default]
    Simple,
    /// `[1] chunk`, metadata inline.
    Numbered,
    /// `<chunk id="1">…</chunk>`, escaped.
    Xml,
    /// `### Chunk 1` sections.
    Markdown,
    /// One JSON object per chunk.
    Json,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextIn {
    /// The retrieved chunks, best first.
    chunks: Vec<String>,
    /// Metadata of each chunk (optional, by position).
    #[serde(default)]
    metadata: Vec<Map<String, Value>>,
    /// Relevance score of each chunk (optional, by position).
    #[serde(default)]
    scores: Vec<f64>,
    /// How to format each chunk (default `simple`).
    #[serde(default)]
    format: Format,
    /// Most characters (UTF-16 units) of context; 0 is no limit.
    #[serde(default)]
    max_length: f64,
    /// Most tokens of context; 0 is no limit. Wins over `maxLength`.
    #[serde(default)]
    max_tokens: f64,
    /// Write each chunk's metadata and score too (default false).
    #[serde(default)]
    include_metadata: bool,
    /// Between chunks (default a blank line).
    #[serde(default = "blank_line")]
    separator: String,
    /// The model whose tokenizer counts tokens (optional).
    #[serde(default)]
    model: Option<String>,
}

fn blank_line() -> String {
    "\n\n".into()
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextOut {
    /// The context, ready for a prompt.
    context: String,
    /// How many chunks it holds (the first ones).
    chunks_used: u32,
    /// Its length in characters (UTF-16 units).
    total_length: usize,
    /// Its length in tokens.
    total_tokens: u64,
}

pub fn context_builder(i: ContextIn, _: &Context) -> Result<ContextOut, TaskError> {
    let counter = Tokens::new(i.model.as_deref());
    let count = |text: &str| counter.count(text);
    let (mut ctx, mut ctx_units, mut ctx_tokens) = (String::new(), 0usize, 0u64);
    let mut used = 0u32;
    for (index, chunk) in i.chunks.iter().enumerate() {
        let entry = Entry {
            chunk,
            metadata: i.metadata.get(index),
            score: i.scores.get(index).copied(),
            index,
        };
        let formatted = entry.format(i.format, i.include_metadata);
        let prefix = if used > 0 { i.separator.as_str() } else { "" };
        let units = ctx_units + js::length(prefix) + js::length(&formatted);
        // Counted piece by piece: each piece once, not the whole context again.
        let tokens = match i.model {
            None => units.div_ceil(4) as u64,
            Some(_) => ctx_tokens + count(prefix) + count(&formatted),
        };
        if i.max_tokens > 0.0 && tokens as f64 > i.max_tokens {
            if used == 0 {
                ctx = first_within_tokens(formatted, i.max_tokens, &count);
                used += u32::from(!ctx.is_empty());
            }
            break;
        }
        if i.max_tokens <= 0.0 && i.max_length > 0.0 && units as f64 > i.max_length {
            if used == 0 && i.max_length > 10.0 {
                ctx = js::prefix(&formatted, i.max_length as usize - 3) + "...";
                used += 1;
            }
            break;
        }
        ctx.push_str(prefix);
        ctx.push_str(&formatted);
        (ctx_units, ctx_tokens) = (units, tokens);
        used += 1;
    }
    Ok(ContextOut {
        total_tokens: count(&ctx),
        total_length: js::length(&ctx),
        context: ctx,
        chunks_used: used,
    })
}

/// A first chunk too long for the token budget, cut by tenths until it
/// fits and ended with `...`; empty if nothing over 10 characters fits.
fn first_within_tokens(mut cut: String, budget: f64, count: &dyn Fn(&str) -> u64) -> String {
    while js::length(&cut) > 10 && count(&cut) as f64 > budget {
        cut = js::prefix(&cut, (js::length(&cut) as f64 * 0.9).floor() as usize);
    }
    match js::length(&cut) > 10 {
        true => js::prefix(&cut, js::length(&cut) - 3) + "...",
        false => String::new(),
    }
}

/// One chunk and what is known of it.
struct Entry<'a> {
    chunk: &'a str,
    metadata: Option<&'a Map<String, Value>>,
    score: Option<f64>,
    index: usize,
}

impl Entry<'_> {
    fn format(&self, format: Format, with_metadata: bool) -> String {
        match format {
            Format::Simple => self.chunk.to_string(),
            Format::Numbered => self.numbered(with_metadata),
            Format::Xml => self.xml(with_metadata),
            Format::Markdown => self.markdown(with_metadata),
            Format::Json => self.json(with_metadata),
        }
    }

    fn numbered(&self, with_metadata: bool) -> String {
        let mut out = format!("[{}] {}", self.index + 1, self.chunk);
        if let (true, Some(metadata)) = (with_metadata, self.metadata) {
            let mut parts: Vec<String> = self
                .score
                .map(|s| format!("score={}", js::to_fixed(s, 4)))
                .into_iter()
                .collect();
            parts.extend(
                metadata
                    .iter()
                    .map(|(k, v)| format!("{k}={}", js::string(v))),
            );
            if !parts.is_empty() {
                out += &format!(" ({})", parts.join(", "));
            }
        }
        out
    }

    fn xml(&self, with_metadata: bool) -> String {
        let id = self.index + 1;
        if !with_metadata || (self.metadata.is_none() && self.score.is_none()) {
            return format!("<chunk id=\"{id}\">{}</chunk>", escape_xml(self.chunk));
        }
        let mut out = format!("<chunk id=\"{id}\">\n  <metadata>");
        if let Some(score) = self.score {
            out += &format!("\n    <score>{}</score>", js::to_fixed(score, 4));
        }
        for (key, value) in self.metadata.into_iter().flatten() {
            out += &format!("\n    <{key}>{}</{key}>", escape_xml(&js::string(value)));
        }
        out + &format!(
            "\n  </metadata>\n  <content>{}</content>\n</chunk>",
            escape_xml(self.chunk)
        )
    }

    fn markdown(&self, with_metadata: bool) -> String {
        let mut out = format!("### Chunk {}\n\n", self.index + 1);
        if with_metadata && (self.metadata.is_some() || self.score.is_some()) {
            out += "**Metadata:**\n";
            if let Some(score) = self.score {
                out += &format!("- Score: {}\n", js::to_fixed(score, 4));
            }
            for (key, value) in self.metadata.into_iter().flatten() {
                out += &format!("- {key}: {}\n", js::string(value));
            }
            out += "\n";
        }
        out + self.chunk
    }

    fn json(&self, with_metadata: bool) -> String {
        let mut obj = Map::new();
        obj.insert("index".into(), (self.index + 1).into());
        obj.insert("content".into(), self.chunk.into());
        if with_metadata {
            if let Some(score) = self.score {
                obj.insert("score".into(), score.into());
            }
            if let Some(metadata) = self.metadata {
                obj.insert("metadata".into(), Value::Object(metadata.clone()));
            }
        }
        js::stringify(&Value::Object(obj))
    }
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
