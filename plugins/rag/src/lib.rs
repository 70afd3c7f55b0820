//! Standard tasks: building blocks of retrieval-augmented generation, port
//! for port as Workglow's (`@workglow/ai` 0.2.37), whose class names are
//! aliases of these (`TextChunkerTask` is `rag.text-chunker`).
//!
//! Text positions and lengths count UTF-16 code units, as JavaScript's do
//! (a chunk boundary inside a surrogate pair gives U+FFFD where JavaScript
//! keeps a lone surrogate).
mod chat;
mod chunker;
mod context;
mod document;
mod kb;
mod query;
mod rerank;
mod tokens;
mod topics;

use std::rc::Rc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError};

use chunker::Piece;

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Strategy {
    /// Windows of `chunkSize`, `chunkOverlap` apart from each other's end.
    #[default]
    Fixed,
    /// Whole sentences up to `chunkSize`.
    Sentence,
    /// Whole paragraphs up to `chunkSize`.
    Paragraph,
    /// As `sentence` (as in Workglow).
    Semantic,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ChunkIn {
    /// The text to split.
    text: String,
    /// The document's id (names the chunks).
    #[serde(default, rename = "doc_id")]
    doc_id: Option<String>,
    /// Most characters (UTF-16 units) per chunk (default 512).
    #[serde(default = "default_size")]
    #[schemars(range(min = 1))]
    chunk_size: u32,
    /// Characters a chunk shares with the one before (default 50).
    #[serde(default = "default_overlap")]
    chunk_overlap: u32,
    /// How to split (default `fixed`).
    #[serde(default)]
    strategy: Strategy,
}

fn default_size() -> u32 {
    512
}

fn default_overlap() -> u32 {
    50
}

/// One chunk, as Workglow's chunk records: `rag.text-chunker` gives its
/// place in the text, `rag.hierarchical-chunker` its section titles. Its
/// text is shared with the chunkers' `text` list, not copied.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Chunk {
    pub(crate) chunk_id: String,
    #[serde(rename = "doc_id")]
    pub(crate) doc_id: String,
    pub(crate) text: Rc<str>,
    pub(crate) node_path: Vec<String>,
    pub(crate) depth: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) leaf_node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start_char: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end_char: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) section_titles: Option<Vec<String>>,
}

#[derive(Serialize, JsonSchema)]
struct ChunkOut {
    /// The document's id, when given.
    #[serde(skip_serializing_if = "Option::is_none", rename = "doc_id")]
    doc_id: Option<String>,
    /// The chunks, with their places in the text.
    chunks: Vec<Chunk>,
    /// Each chunk's text.
    text: Vec<Rc<str>>,
    /// How many chunks.
    count: u32,
}

/// The most text (in UTF-16 units) the chunks may add up to: 16 Mi, the
/// host's output limit.
const MAX_OUTPUT_UNITS: u64 = 16 << 20;

fn text_chunker(i: ChunkIn, _: &Context) -> Result<ChunkOut, TaskError> {
    let size = i.chunk_size.max(1) as usize;
    let overlap = i.chunk_overlap as usize;
    let units: Vec<u16> = i.text.encode_utf16().collect();
    if let Strategy::Fixed = i.strategy {
        let step = size.saturating_sub(overlap).max(1) as u64;
        let total = (units.len() as u64).div_ceil(step) * size.min(units.len()) as u64;
        if total > MAX_OUTPUT_UNITS {
            return Err(TaskError::invalid_input(format!(
                "chunkSize {size} with chunkOverlap {overlap} over {} characters would give about {total} characters of chunks; at most {MAX_OUTPUT_UNITS} are given",
                units.len()
            )));
        }
    }
    let pieces = match i.strategy {
        Strategy::Fixed => chunker::fixed(&units, size, overlap),
        Strategy::Sentence | Strategy::Semantic => chunker::by_sentence(&units, size, overlap),
        Strategy::Paragraph => chunker::by_paragraph(&units, size, overlap),
    };
    Ok(records(pieces, i.doc_id))
}

fn records(pieces: Vec<Piece>, doc_id: Option<String>) -> ChunkOut {
    let node_path: Vec<String> = doc_id.iter().cloned().collect();
    let chunks: Vec<Chunk> = pieces
        .into_iter()
        .enumerate()
        .map(|(index, p)| Chunk {
            chunk_id: match &doc_id {
                Some(d) => format!("{d}:{index}"),
                None => format!("chunk:{index}:{}", p.start),
            },
            doc_id: doc_id.clone().unwrap_or_default(),
            text: p.text.into(),
            node_path: node_path.clone(),
            depth: node_path.len() as u32,
            leaf_node_id: doc_id.clone(),
            index: Some(index as u32),
            start_char: Some(p.start),
            end_char: Some(p.end),
            section_titles: None,
        })
        .collect();
    ChunkOut {
        doc_id,
        text: chunks.iter().map(|c| c.text.clone()).collect(),
        count: chunks.len() as u32,
        chunks,
    }
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("rag.text-chunker", text_chunker)
            .title("Text chunker")
            .description(
                "Splits `text` into chunks of at most `chunkSize` characters: fixed windows, \
                 sentences or paragraphs, with `chunkOverlap` → chunks, text, count.",
            )
            .category("Document"),
        TaskDef::new("rag.structural-parser", document::structural_parser)
            .title("Structural parser")
            .description(
                "`text` (titled `title`) parsed into a document tree: sections at Markdown \
                 headings, nested by level, and paragraphs (`format` `markdown`, `text` or \
                 `auto`); ids derived from `doc_id`, else `sourceUri`, else the text → doc_id, \
                 documentTree, nodeCount.",
            )
            .category("Document"),
        TaskDef::new("rag.hierarchical-chunker", document::hierarchical_chunker)
            .title("Hierarchical chunker")
            .description(
                "`documentTree`'s paragraphs cut into chunks of at most `maxTokens` - \
                 `reservedTokens` tokens, `overlap` apart, each led by its section titles \
                 (`hierarchical`), or all its text as one (`flat`); tokens estimated, or \
                 counted by `model` → doc_id, chunks, text, count.",
            )
            .category("Document"),
        TaskDef::new("rag.document-enricher", document::document_enricher)
            .title("Document enricher")
            .description(
                "`documentTree`'s sections (and the document) summarised by `summaryModel`, \
                 bottom up, where a section's text and its children's reach \
                 `summaryThreshold` characters, and each node's named entities found by \
                 `nerModel` → doc_id, documentTree (with `enrichment.summary`, \
                 `enrichment.entities`), summaryCount, entityCount.",
            )
            .category("Document"),
        TaskDef::new("rag.topic-segmenter", topics::topic_segmenter)
            .title("Topic segmenter")
            .description(
                "`text`'s paragraphs grouped into segments of `minSegmentSize` to \
                 `maxSegmentSize` characters, split at transition words (`heuristic`) or where \
                 neighbouring paragraphs share few words (`embedding-similarity`; no model) → \
                 segments (text, startOffset, endOffset), count.",
            )
            .category("Document"),
        TaskDef::new("rag.context-builder", context::context_builder)
            .title("Context builder")
            .description(
                "`chunks` (with `metadata` and `scores`) formatted as `simple`, `numbered`, \
                 `xml`, `markdown` or `json` into one context within `maxLength` characters or \
                 `maxTokens` tokens (counted by `model` when given) → context, chunksUsed, \
                 totalLength, totalTokens.",
            )
            .category("RAG"),
        TaskDef::new("rag.query-expander", query::query_expander)
            .title("Query expander")
            .description(
                "`query` and up to `numVariations` - 1 rewordings of it by fixed rules \
                 (`multi-query` or `synonyms`; no model) → query, originalQuery, method, count.",
            )
            .category("RAG"),
        TaskDef::new("rag.reranker", rerank::rerank)
            .title("Reranker")
            .description(
                "`chunks` (with `scores` and `metadata`) reordered for `query` by heuristics, no \
                 model: `simple` (score, the query's words, exact phrase, place) or \
                 `reciprocal-rank-fusion`; the best `topK` → chunks, scores, metadata, \
                 originalIndices, count.",
            )
            .category("RAG"),
        TaskDef::new("rag.chunk-vector-upsert", kb::upsert)
            .title("Add to knowledge base")
            .description(
                "Stores `chunks` (chunk records with `chunkId`, `doc_id`, `text`) and their \
                 `vector`s, 1:1, in the knowledge base named `knowledgeBase` (the run's user's \
                 own), replacing the document's earlier chunks; `model` records the embedding \
                 model for `rag.kb-search` → count, doc_id, chunk_ids.",
            )
            .category("Document")
            .side_effects(),
        TaskDef::new("rag.chunk-retrieval", kb::retrieve)
            .title("Chunk retrieval")
            .description(
                "The `topK` chunks of knowledge base `knowledgeBase` most similar (cosine) to \
                 `query` (a vector, or a text embedded by `model`), with metadata matching \
                 `filter` and a score of at least `scoreThreshold` → chunks, chunk_ids, \
                 metadata, scores, scoreType, count, query.",
            )
            .category("RAG")
            .not_cacheable(),
        TaskDef::new("rag.chat", chat::turn)
            .title("AI chat turn (knowledge base)")
            .description(
                "The model's reply to a conversation, grounded in knowledge bases: the person's \
                 last message is searched in each of `knowledgeBaseIds`, the best chunks are \
                 numbered context in the system prompt and the turn's `references`. With a \
                 `wait` and `ai.chat-answer` in a `while` node, a chat (Workglow's \
                 AiChatWithKbTask).",
            )
            .category("RAG")
            .not_cacheable(),
        TaskDef::new("rag.kb-search", kb::kb_search)
            .title("Knowledge base search")
            .description(
                "The `topK` chunks of knowledge base `knowledgeBase` most similar to the text \
                 `query`, embedded by the model the chunks were upserted with; `filter`, \
                 `scoreThreshold` → results, chunks, chunk_ids, scores, count.",
            )
            .category("RAG")
            .not_cacheable(),
        TaskDef::new("rag.document-upsert", kb::document_upsert)
            .title("Add a document to a knowledge base")
            .description(
                "Keeps `documentTree` (as `rag.structural-parser` gives it) as document \
                 `doc_id` of knowledge base `knowledgeBase`, with `metadata` and its `title`, \
                 replacing its earlier tree → doc_id.",
            )
            .category("Document")
            .side_effects(),
        TaskDef::new("rag.kb-to-documents", kb::kb_to_documents)
            .title("Knowledge base: documents")
            .description(
                "The documents kept in knowledge base `knowledgeBase`, or only those with no \
                 chunks yet (`onlyStale`, default) → doc_id, documentTree, title (arrays, by \
                 position).",
            )
            .category("Document")
            .not_cacheable(),
        TaskDef::new("rag.hierarchy-join", kb::hierarchy_join)
            .title("Hierarchy join")
            .description(
                "Each retrieved chunk's `metadata` joined with its document's kept tree: the \
                 titles of the sections above it (`sectionTitles`), their summaries \
                 (`parentSummaries`) and entities → metadata, count, and `chunks`, \
                 `chunk_ids`, `scores` passed through.",
            )
            .category("RAG")
            .not_cacheable(),
        TaskDef::new("rag.kb-add-document", kb::kb_add_document)
            .title("Knowledge base: add a document")
            .description(
                "Keeps `document` (`{doc_id?, metadata: {title}, root}`, as Workglow's \
                 `Document.toJSON()`) in knowledge base `knowledgeBase`, cuts its tree into \
                 chunks (hierarchical, 512 tokens, 50 of overlap, 10 reserved), embeds them by \
                 `model` (default: the knowledge base's) and stores them in place of its earlier \
                 ones → doc_id.",
            )
            .category("RAG")
            .side_effects(),
        TaskDef::new("rag.kb-reindex", kb::kb_reindex)
            .title("Knowledge base: reindex")
            .description(
                "Every document kept in knowledge base `knowledgeBase` chunked and embedded \
                 again, by `model` (default: the knowledge base's), its chunks replaced → count.",
            )
            .category("RAG")
            .side_effects(),
        TaskDef::new("rag.kb-delete", kb::delete)
            .title("Knowledge base: delete a document")
            .description(
                "Deletes document `doc_id` from knowledge base `knowledgeBase`: its chunks and its \
                 tree → doc_id.",
            )
            .category("RAG")
            .side_effects(),
    ]
}

weft_sdk::export_plugin!(tasks);
