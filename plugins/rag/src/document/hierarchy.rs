//! `rag.hierarchical-chunker`: a document tree into chunks within a
//! token budget.
use std::rc::Rc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};

use super::{Kind, Node};
use crate::Chunk;
use crate::chunker::trim;
use crate::tokens::Tokens;

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Strategy {
    /// Each paragraph on its own, led by its sections' titles.
    #[default]
    Hierarchical,
    /// All paragraphs as one text.
    Flat,
    /// As `flat` (as in Workglow).
    Sentence,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkTreeIn {
    /// The document's id.
    #[serde(rename = "doc_id")]
    doc_id: String,
    /// The document tree, as `rag.structural-parser` gives it.
    #[schemars(with = "Map<String, Value>")]
    #[serde(deserialize_with = "super::tree_field")]
    document_tree: Node,
    /// Most tokens per chunk (default 512).
    #[serde(default = "default_max")]
    #[schemars(range(min = 50))]
    max_tokens: u32,
    /// Tokens a chunk shares with the one before (default 50).
    #[serde(default = "default_overlap")]
    overlap: u32,
    /// Tokens of each chunk kept for what wraps it (default 10).
    #[serde(default = "default_reserved")]
    reserved_tokens: u32,
    /// How to chunk (default `hierarchical`).
    #[serde(default)]
    strategy: Strategy,
    /// The model whose tokenizer counts tokens (default: estimated, a
    /// token per four characters).
    #[serde(default)]
    model: Option<String>,
}

fn default_max() -> u32 {
    512
}
fn default_overlap() -> u32 {
    50
}
fn default_reserved() -> u32 {
    10
}

#[derive(Serialize, JsonSchema)]
pub struct ChunkTreeOut {
    /// The document's id.
    #[serde(rename = "doc_id")]
    doc_id: String,
    /// The chunks, in document order.
    chunks: Vec<Chunk>,
    /// Each chunk's text.
    text: Vec<Rc<str>>,
    /// How many chunks.
    count: u32,
}

pub fn hierarchical_chunker(i: ChunkTreeIn, _: &Context) -> Result<ChunkTreeOut, TaskError> {
    if i.doc_id.is_empty() {
        return Err(TaskError::invalid_input("doc_id is required"));
    }
    let tokens = Tokens::new(i.model.as_deref());
    let budget = Budget {
        max_tokens: i.max_tokens,
        overlap: i.overlap,
        reserved: i.reserved_tokens,
        strategy: i.strategy,
    };
    let chunks = chunk_tree(&i.doc_id, &i.document_tree, &budget, &tokens)?;
    Ok(ChunkTreeOut {
        text: chunks.iter().map(|c| c.text.clone()).collect(),
        count: chunks.len() as u32,
        chunks,
        doc_id: i.doc_id,
    })
}

/// How big a chunk may be, and how a tree is cut.
pub(crate) struct Budget {
    pub(crate) max_tokens: u32,
    pub(crate) overlap: u32,
    pub(crate) reserved: u32,
    pub(crate) strategy: Strategy,
}

impl Default for Budget {
    /// Workglow's standard knowledge-base strategy: 512 tokens, 50 of
    /// overlap, 10 reserved, hierarchical.
    fn default() -> Self {
        Budget {
            max_tokens: default_max(),
            overlap: default_overlap(),
            reserved: default_reserved(),
            strategy: Strategy::Hierarchical,
        }
    }
}

/// Document `doc_id`'s tree cut into chunks within `budget`.
pub(crate) fn chunk_tree(
    doc_id: &str,
    tree: &Node,
    budget: &Budget,
    tokens: &Tokens,
) -> Result<Vec<Chunk>, TaskError> {
    let mut out = Chunks {
        doc_id,
        max_tokens: budget.max_tokens,
        reserved: budget.reserved,
        overlap: budget.overlap as u64,
        tokens,
        chunks: Vec::new(),
        units: 0,
    };
    match budget.strategy {
        Strategy::Hierarchical => out.walk(tree, &mut Vec::new(), &mut Vec::new())?,
        Strategy::Flat | Strategy::Sentence => {
            let mut texts = Vec::new();
            leaf_texts(tree, &mut texts)?;
            let leaf = Leaf {
                text: &texts.join("\n\n"),
                path: std::slice::from_ref(&tree.node_id),
                headings: &[],
                node_id: &tree.node_id,
            };
            out.leaf(leaf)?;
        }
    }
    Ok(out.chunks)
}

/// A leaf's text, or an error naming the leaf that has none.
fn text_of(node: &Node) -> Result<&str, TaskError> {
    node.text.as_deref().ok_or_else(|| {
        TaskError::invalid_input(format!(
            "documentTree: the {:?} node `{}` has no `text`",
            node.kind, node.node_id
        ))
    })
}

fn leaf_texts<'t>(node: &'t Node, texts: &mut Vec<&'t str>) -> Result<(), TaskError> {
    if !node.kind.is_container() {
        texts.push(text_of(node)?);
        return Ok(());
    }
    for child in node.children() {
        leaf_texts(child, texts)?;
    }
    Ok(())
}

/// One leaf's text to chunk, and where it sits.
struct Leaf<'a> {
    text: &'a str,
    path: &'a [String],
    headings: &'a [String],
    node_id: &'a str,
}

/// The chunks made so far, and the budget they are made within.
struct Chunks<'a> {
    doc_id: &'a str,
    max_tokens: u32,
    reserved: u32,
    overlap: u64,
    tokens: &'a Tokens<'a>,
    chunks: Vec<Chunk>,
    /// UTF-16 units of chunk text so far.
    units: u64,
}

/// The most text (in UTF-16 units) the chunks may add up to: 16 Mi, the
/// host's output limit.
const MAX_OUTPUT_UNITS: u64 = 16 << 20;

impl Chunks<'_> {
    /// Workglow's `chunkHierarchically`: every leaf under `node`, with the
    /// titles of the sections it is in.
    fn walk(
        &mut self,
        node: &Node,
        path: &mut Vec<String>,
        headings: &mut Vec<String>,
    ) -> Result<(), TaskError> {
        path.push(node.node_id.clone());
        let title = node.title.as_deref().map(str::trim).unwrap_or_default();
        let heading = node.kind == Kind::Section && !title.is_empty();
        if heading {
            headings.push(title.to_string());
        }
        if node.kind.is_container() {
            for child in node.children() {
                self.walk(child, path, headings)?;
            }
        } else {
            let leaf = Leaf {
                text: text_of(node)?,
                path,
                headings,
                node_id: &node.node_id,
            };
            self.leaf(leaf)?;
        }
        if heading {
            headings.pop();
        }
        path.pop();
        Ok(())
    }

    /// Workglow's `chunkText`: the leaf whole if it fits, else windows of
    /// the most characters that fit, overlapping by `overlap` tokens; each
    /// led by the section titles (`A > B`, a blank line) when they fit.
    fn leaf(&mut self, leaf: Leaf) -> Result<(), TaskError> {
        let units: Vec<u16> = leaf.text.encode_utf16().collect();
        if trim(&units).is_empty() {
            return Ok(());
        }
        let budget = self.max_tokens.saturating_sub(self.reserved) as u64;
        if budget == 0 {
            return Err(TaskError::invalid_input(format!(
                "reservedTokens ({}) must be less than maxTokens ({})",
                self.reserved, self.max_tokens
            )));
        }
        let breadcrumb = leaf.headings.join(" > ");
        let candidate = match breadcrumb.is_empty() {
            true => String::new(),
            false => format!("{breadcrumb}\n\n"),
        };
        let prefix_tokens = match candidate.is_empty() {
            true => 0,
            false => self.tokens.count(&candidate),
        };
        let fits = prefix_tokens > 0 && prefix_tokens < budget;
        let (prefix, max) = match fits {
            true => (candidate.as_str(), budget - prefix_tokens),
            false => ("", budget),
        };
        if self.overlap >= max {
            return Err(TaskError::invalid_input(format!(
                "overlap ({}) must be less than the tokens left for text ({max}) in a chunk of `{}`",
                self.overlap, leaf.node_id
            )));
        }
        if self.tokens.count(leaf.text) <= max {
            return self.push(&leaf, prefix, leaf.text.to_string());
        }
        let mut start = 0;
        while start < units.len() {
            let boundary = self.boundary(&units, start, max);
            let end = boundary.min(units.len()).max(start + 1);
            let text = String::from_utf16_lossy(&units[start..end]);
            self.push(&leaf, prefix, text)?;
            if end >= units.len() {
                break;
            }
            let next = self.boundary(&units, start, max - self.overlap);
            start = if next > start { next } else { end };
        }
        Ok(())
    }

    /// Workglow's `findCharBoundary`: the furthest end, at most `6 × target`
    /// units from `start`, whose text from `start` counts at most `target`
    /// tokens (by bisection).
    fn boundary(&self, units: &[u16], start: usize, target: u64) -> usize {
        let reach = usize::try_from(target.saturating_mul(6)).unwrap_or(usize::MAX);
        let (mut lo, mut hi) = (start, start.saturating_add(reach).min(units.len()));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.tokens.count_units(&units[start..mid]) <= target {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    fn push(&mut self, leaf: &Leaf, prefix: &str, text: String) -> Result<(), TaskError> {
        let text: Rc<str> = format!("{prefix}{text}").into();
        self.units += js::length(&text) as u64;
        if self.units > MAX_OUTPUT_UNITS {
            return Err(TaskError::invalid_input(format!(
                "the chunks of `{}` would be longer than {MAX_OUTPUT_UNITS} characters in all; \
                 raise maxTokens or lower overlap",
                self.doc_id
            )));
        }
        self.chunks.push(Chunk {
            chunk_id: format!("{}:{}", self.doc_id, self.chunks.len()),
            doc_id: self.doc_id.to_string(),
            text,
            node_path: leaf.path.to_vec(),
            depth: leaf.path.len() as u32,
            leaf_node_id: Some(leaf.node_id.to_string()),
            index: None,
            start_char: None,
            end_char: None,
            section_titles: Some(leaf.headings.to_vec()),
        });
        Ok(())
    }
}
