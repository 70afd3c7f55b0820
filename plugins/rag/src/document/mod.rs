//! `rag.structural-parser` and `rag.hierarchical-chunker`, Workglow's
//! `StructuralParserTask` and `HierarchicalChunkerTask`: a document parsed
//! into a tree of sections and paragraphs, and a tree cut into chunks
//! within a token budget, each chunk led by its sections' titles; and
//! `rag.document-enricher` (`DocumentEnricherTask`), a tree's sections
//! summarised by a model.
//!
//! Step for step as Workglow's, on UTF-16 positions, but with ids derived
//! instead of random, so that the same document always gives the same
//! tree and chunks (a run's outputs can be cached, and a resumed run sees
//! what it saw before): the `n`th node made is `{doc_id}#{n}`, the `n`th
//! chunk `{doc_id}:{n}` (as `rag.text-chunker`'s), and a document with
//! neither `doc_id` nor `sourceUri` is `doc-` and the first 16 hex digits
//! of the SHA-256 of its title, a zero byte and its text.
mod enrich;
mod hierarchy;
mod parse;

use std::fmt::Display;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use weft_sdk::TaskError;

pub use enrich::document_enricher;
pub use hierarchy::hierarchical_chunker;
pub(crate) use hierarchy::{Budget, chunk_tree};
pub(crate) use parse::derived_id;
pub use parse::structural_parser;

/// A node's kind, as Workglow's `NodeKind`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Document,
    Section,
    Paragraph,
    Sentence,
    Topic,
}

impl Kind {
    /// Whether nodes of this kind hold children rather than text.
    pub(crate) fn is_container(self) -> bool {
        matches!(self, Kind::Document | Kind::Section | Kind::Topic)
    }
}

/// Where a node lies in the text, in UTF-16 units.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Span {
    pub(crate) start_offset: u64,
    pub(crate) end_offset: u64,
}

/// A node of a document tree, as Workglow's document nodes.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Node {
    pub(crate) node_id: String,
    pub(crate) kind: Kind,
    #[serde(default)]
    pub(crate) range: Span,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) level: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) children: Option<Vec<Node>>,
    /// Summaries and entities (`rag.document-enricher`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) enrichment: Option<Map<String, Value>>,
}

impl Node {
    pub(crate) fn count(&self) -> u64 {
        1 + self.children().iter().map(Node::count).sum::<u64>()
    }

    pub(crate) fn children(&self) -> &[Node] {
        self.children.as_deref().unwrap_or_default()
    }

    pub(crate) fn push(&mut self, child: Node) {
        self.children.get_or_insert_with(Vec::new).push(child);
    }
}

/// A document tree read straight from a task's input, without a JSON
/// value in between (a value takes several times the memory of its text):
/// an error names where in it the input is not one
/// (`documentTree.children[2].kind: unknown variant …`).
pub(crate) fn tree_field<'de, D: Deserializer<'de>>(input: D) -> Result<Node, D::Error> {
    serde_path_to_error::deserialize(input).map_err(|e| D::Error::custom(at(&e)))
}

/// The document tree that `json` is; an error naming where it is not one.
pub(crate) fn tree(json: &str) -> Result<Node, TaskError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
        .map_err(|e| TaskError::invalid_input(at(&e)))
}

fn at<E: Display>(e: &serde_path_to_error::Error<E>) -> String {
    format!("documentTree.{}: {}", e.path(), e.inner())
}
