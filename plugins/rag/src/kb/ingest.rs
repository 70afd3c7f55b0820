//! A document into a knowledge base in one task, as Workglow's standard
//! knowledge-base strategy does it: `rag.kb-add-document`
//! (`KbAddDocumentTask`) keeps the document's tree, cuts it into chunks
//! (hierarchical, 512 tokens, 50 of overlap, 10 reserved, estimated) and
//! stores them with their vectors; `rag.kb-reindex` (`KbReindexTask`)
//! does the last two again for every document kept.
//!
//! Workglow's knowledge base is made with its embedding model; Weft's
//! records the model of its first upsert with one (`Info::model`), which
//! these tasks use unless given `model`. A document with no `doc_id` is
//! named by the SHA-256 of its title and tree (Workglow makes a random
//! one), so adding it again replaces it.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};

use super::Kb;
use super::documents::{Document, truthy, unescape};
use crate::document::{Budget, chunk_tree, derived_id, tree};
use crate::tokens::Tokens;

/// The most texts embedded in one call to the model.
const EMBED_BATCH: usize = 64;

/// A document as Workglow's `Document.toJSON()` writes it.
#[derive(Deserialize, JsonSchema)]
pub struct DocumentIn {
    /// Its id (default: derived from its title and tree).
    #[serde(default)]
    doc_id: Option<String>,
    /// Its metadata: a `title` at least.
    metadata: Map<String, Value>,
    /// Its tree, as `rag.structural-parser` gives it.
    #[schemars(with = "Map<String, Value>")]
    root: Box<RawValue>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddIn {
    /// The knowledge base's name.
    knowledge_base: String,
    /// The document to chunk, embed and store.
    document: DocumentIn,
    /// The embedding model (default: the one the knowledge base's chunks
    /// were embedded with; Weft's).
    #[serde(default)]
    model: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct AddOut {
    /// The stored document's id.
    doc_id: String,
}

/// Keeps a document, chunks it, embeds the chunks and stores them.
pub fn kb_add_document(i: AddIn, _: &Context) -> Result<AddOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    let model = kb.model_or(i.model)?;
    let metadata = i.document.metadata;
    if !metadata.get("title").is_some_and(truthy) {
        return Err(TaskError::invalid_input(
            "document.metadata.title is required",
        ));
    }
    let root = i.document.root;
    tree(root.get())?;
    let doc_id = match i.document.doc_id.filter(|d| !d.is_empty()) {
        Some(doc_id) => doc_id,
        None => derived_id(&js::string(&metadata["title"]), root.get()),
    };
    let document = Document {
        doc_id,
        metadata,
        root,
    };
    kb.save_document(&document)?;
    kb.chunk_and_store(&document, &model)?;
    Ok(AddOut {
        doc_id: document.doc_id,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReindexIn {
    /// The knowledge base's name.
    knowledge_base: String,
    /// The embedding model (default: the one the knowledge base's chunks
    /// were embedded with; Weft's).
    #[serde(default)]
    model: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct ReindexOut {
    /// How many documents were chunked and embedded again.
    count: u32,
}

/// Chunks and embeds every kept document again, one at a time.
pub fn kb_reindex(i: ReindexIn, _: &Context) -> Result<ReindexOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    let model = kb.model_or(i.model)?;
    let mut count = 0;
    for escaped in kb.escaped_documents()? {
        if let Some(document) = kb.load_document(&unescape(&escaped))? {
            kb.chunk_and_store(&document, &model)?;
            count += 1;
        }
    }
    Ok(ReindexOut { count })
}

impl Kb {
    /// `model`, else the model recorded; an error if neither is.
    fn model_or(&self, model: Option<String>) -> Result<String, TaskError> {
        if let Some(model) = model.filter(|m| !m.is_empty()) {
            return Ok(model);
        }
        let recorded = match self.info() {
            Ok(info) => info.model,
            Err(_) => None,
        };
        recorded.ok_or_else(|| {
            TaskError::invalid_input(format!(
                "knowledge base `{}` has no embedding model recorded: give `model`",
                self.name
            ))
        })
    }

    /// A kept document's chunks made again from its tree, embedded by
    /// `model` and stored in place of its earlier ones.
    fn chunk_and_store(&self, document: &Document, model: &str) -> Result<(), TaskError> {
        let root = tree(document.root.get())?;
        let tokens = Tokens::new(None);
        let chunks = chunk_tree(&document.doc_id, &root, &Budget::default(), &tokens)?;
        drop(root);
        let vectors = embed(model, chunks.iter().map(|c| c.text.to_string()))?;
        let records = chunks
            .iter()
            .map(|c| match serde_json::to_value(c) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(TaskError::failed("a chunk could not be encoded")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        drop(chunks);
        let title = document.metadata.get("title").map(js::string);
        self.store_chunks(
            &document.doc_id,
            records,
            vectors,
            title.as_deref(),
            Some(model.to_string()),
        )?;
        Ok(())
    }
}

/// `texts` embedded by `model`, `EMBED_BATCH` to a call.
fn embed(model: &str, texts: impl Iterator<Item = String>) -> Result<Vec<Vec<f32>>, TaskError> {
    let texts: Vec<String> = texts.collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(EMBED_BATCH) {
        let got = weft_sdk::models::embed(model, batch)?;
        if got.len() != batch.len() {
            return Err(TaskError::failed(format!(
                "model `{model}` gave {} vectors for {} texts",
                got.len(),
                batch.len()
            )));
        }
        vectors.extend(got);
    }
    Ok(vectors)
}
