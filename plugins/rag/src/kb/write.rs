//! Writing a knowledge base: `rag.chunk-vector-upsert`
//! (`ChunkVectorUpsertTask`) and `rag.kb-delete` (`KbDeleteTask`).
use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};
use weft_sdk::{storage, vectors};

use super::{BATCH, Info, Kb, Stored, encode};

/// One vector or several.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Vectors {
    One(Vec<f32>),
    Many(Vec<Vec<f32>>),
}

#[derive(Deserialize, JsonSchema)]
pub struct UpsertIn {
    /// The knowledge base's name (created by the first upsert).
    #[serde(rename = "knowledgeBase")]
    knowledge_base: String,
    /// One document's chunk records, as `rag.text-chunker` gives them:
    /// each an object with `chunkId` (or `chunk_id`), `doc_id` and `text`,
    /// kept whole as its metadata.
    chunks: Vec<Map<String, Value>>,
    /// The chunks' vectors, one per chunk, in order.
    vector: Vectors,
    /// A title stamped onto each chunk's metadata.
    #[serde(default)]
    doc_title: Option<String>,
    /// The model the vectors come from, recorded for `rag.kb-search`
    /// (Weft's; Workglow's knowledge base is given its model when made).
    #[serde(default)]
    model: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct UpsertOut {
    /// How many chunks were stored.
    count: u32,
    /// The document's id (the first chunk's).
    doc_id: String,
    /// The stored chunks' ids.
    chunk_ids: Vec<String>,
}

/// Stores one document's chunks, replacing whatever it had before.
pub fn upsert(i: UpsertIn, _: &Context) -> Result<UpsertOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    let vectors = match i.vector {
        Vectors::One(v) if v.is_empty() && i.chunks.is_empty() => Vec::new(),
        Vectors::One(v) => vec![v],
        Vectors::Many(vs) => vs,
    };
    if i.chunks.len() != vectors.len() {
        return Err(TaskError::invalid_input(format!(
            "Mismatch: {} chunks but {} vectors — they must be 1:1 aligned",
            i.chunks.len(),
            vectors.len()
        )));
    }
    let Some(first) = i.chunks.first() else {
        return Ok(UpsertOut {
            count: 0,
            doc_id: String::new(),
            chunk_ids: Vec::new(),
        });
    };
    let doc_id = text_field(first, "doc_id", 0)?;
    let chunk_ids = kb.store_chunks(&doc_id, i.chunks, vectors, i.doc_title.as_deref(), i.model)?;
    Ok(UpsertOut {
        count: chunk_ids.len() as u32,
        doc_id,
        chunk_ids,
    })
}

impl Kb {
    /// Stores document `doc_id`'s chunks with their vectors (as many),
    /// deleting its other chunks → the stored chunks' ids.
    pub(super) fn store_chunks(
        &self,
        doc_id: &str,
        chunks: Vec<Map<String, Value>>,
        vectors: Vec<Vec<f32>>,
        doc_title: Option<&str>,
        model: Option<String>,
    ) -> Result<Vec<String>, TaskError> {
        let document = self.chunks_of(doc_id);
        let mut writes = Vec::with_capacity(chunks.len());
        let mut chunk_ids = Vec::with_capacity(chunks.len());
        let dims = vectors.first().map_or(0, Vec::len);
        for (index, (mut metadata, vector)) in chunks.into_iter().zip(&vectors).enumerate() {
            check_chunk(&metadata, vector, index, doc_id, dims)?;
            let chunk_id = match metadata.contains_key("chunkId") {
                true => text_field(&metadata, "chunkId", index)?,
                false => text_field(&metadata, "chunk_id", index)?,
            };
            stamp(&mut metadata, doc_title);
            let key = format!("{document}{chunk_id}");
            let stored = Stored {
                doc_id: doc_id.to_string(),
                chunk_id: chunk_id.clone(),
                metadata,
            };
            writes.push(storage::plain(&key, &encode(&stored, vector)));
            chunk_ids.push(chunk_id);
        }
        let mut indexed = false;
        if !writes.is_empty() {
            let want = Info {
                dims,
                model,
                indexed: true,
            };
            indexed = self.agree(&want)?.indexed;
        }
        let batches = writes
            .chunks(BATCH as usize)
            .zip(vectors.chunks(BATCH as usize));
        for (batch, vectors) in batches {
            match indexed {
                true => vectors::write_many(None, batch, vectors)?,
                false => storage::write_many(None, batch)?,
            };
        }
        let keep: HashSet<&str> = writes.iter().map(|w| w.key.as_str()).collect();
        remove_document(self, doc_id, &keep)?;
        Ok(chunk_ids)
    }
}

/// Deletes document `doc`'s chunks but those in `keep`.
fn remove_document(kb: &Kb, doc: &str, keep: &HashSet<&str>) -> Result<u32, TaskError> {
    let mut stale = storage::keys(None, &kb.chunks_of(doc))?;
    stale.retain(|key| !keep.contains(key.as_str()));
    let removed = storage::delete_all(None, &stale)?;
    Ok(u32::try_from(removed).unwrap_or(u32::MAX))
}

/// A chunk of the document `doc_id`, with a vector of `dims` numbers.
fn check_chunk(
    chunk: &Map<String, Value>,
    vector: &[f32],
    index: usize,
    doc_id: &str,
    dims: usize,
) -> Result<(), TaskError> {
    let this_doc = text_field(chunk, "doc_id", index)?;
    if this_doc != doc_id {
        return Err(TaskError::invalid_input(format!(
            "all chunks must share one doc_id, but chunk[{index}] has doc_id={this_doc:?} (expected {doc_id:?})"
        )));
    }
    text_field(chunk, "text", index)?;
    if vector.is_empty() || vector.len() != dims {
        return Err(TaskError::invalid_input(format!(
            "Vector dimension mismatch: expected {dims}, got {} (chunk[{index}])",
            vector.len()
        )));
    }
    Ok(())
}

/// The string `field` of chunk `index`.
fn text_field(chunk: &Map<String, Value>, field: &str, index: usize) -> Result<String, TaskError> {
    match chunk.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(TaskError::invalid_input(format!(
            "chunk[{index}] has no `{field}` (a non-empty string)"
        ))),
    }
}

/// Workglow's `leafNodeId` (the last of `nodePath`) and `doc_title`.
fn stamp(metadata: &mut Map<String, Value>, doc_title: Option<&str>) {
    if !metadata.contains_key("leafNodeId") {
        let leaf = metadata
            .get("nodePath")
            .and_then(|p| p.as_array()?.last().cloned());
        if let Some(leaf) = leaf {
            metadata.insert("leafNodeId".into(), leaf);
        }
    }
    if let Some(title) = doc_title.filter(|t| !t.is_empty()) {
        metadata.insert("doc_title".into(), title.into());
    }
}

#[derive(Deserialize, JsonSchema)]
pub struct DeleteIn {
    /// The knowledge base's name.
    #[serde(rename = "knowledgeBase")]
    knowledge_base: String,
    /// The document to delete.
    doc_id: String,
}

#[derive(Serialize, JsonSchema)]
pub struct DeleteOut {
    /// The document deleted (as given).
    doc_id: String,
}

/// Deletes a document: its chunks and its tree (none is no error, as in
/// Workglow).
pub fn delete(i: DeleteIn, _: &Context) -> Result<DeleteOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    remove_document(&kb, &i.doc_id, &HashSet::new())?;
    kb.delete_document(&i.doc_id)?;
    Ok(DeleteOut { doc_id: i.doc_id })
}
