//! A knowledge base: chunks, their vectors and metadata, kept in this
//! plugin's storage namespace (the run's user's own), searched exactly.
//!
//! The tasks are Workglow's (`write.rs`: `ChunkVectorUpsertTask`,
//! `KbDeleteTask`; `search.rs`: `ChunkRetrievalTask`, `KbSearchTask`),
//! with the knowledge base named by a string (Workglow passes an object
//! from its registry). Differences: a chunk is stored under its
//! document's id and its own `chunkId` (Workglow makes new ids each time),
//! and upserting a document replaces all its chunks, so a document
//! ingested again, or a retried node, leaves no copies and no stale
//! chunks (a chunk needs a `chunkId` and a non-empty `doc_id`: give
//! `rag.text-chunker` a `doc_id`); `hybrid` retrieval scores the query's
//! words (BM25, `bm25.rs`) in the same scan as the vectors, with no index
//! kept.
//!
//! Layout, under `kb/NAME/`: `info` (JSON: the vectors' length, fixed by
//! the first upsert, the embedding model if one was named, and whether the
//! chunks' vectors are kept with their keys), `chunk/DOC/CHUNK_ID` (`DOC`
//! the document id with `%` and `/` escaped; a chunk is 4 bytes of JSON
//! length, the JSON `{doc_id, chunk_id, metadata}`, then the vector as
//! little-endian f32s; the vector is also kept with the key, through the
//! `vectors` import, for the host's store to search) and `doc/DOC/PART`,
//! documents' trees (`documents.rs`: `DocumentUpsertTask`,
//! `KbToDocumentsTask`; `join.rs`: `HierarchyJoinTask`; `ingest.rs`:
//! `KbAddDocumentTask`, `KbReindexTask`).
mod bm25;
mod documents;
mod ingest;
mod join;
mod search;
mod write;

pub use documents::{document_upsert, kb_to_documents};
pub use ingest::{kb_add_document, kb_reindex};
pub use join::hierarchy_join;
pub use search::{best_chunks, kb_search, retrieve};
pub use write::{delete, upsert};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::TaskError;
use weft_sdk::storage::{self, Entry, StorageError};

/// The most keys the host takes or gives in one call.
const BATCH: u32 = 1_000;

/// A knowledge base, by name.
pub struct Kb {
    name: String,
    prefix: String,
}

/// What a knowledge base holds, beside its chunks.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct Info {
    /// Every vector's length.
    pub dims: usize,
    /// The model the chunks were embedded with, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Its chunks' vectors are kept with their keys too (the `vectors`
    /// import), so the host's store finds the nearest (`search.rs`). A
    /// knowledge base made before that is scanned instead, as it was.
    #[serde(default)]
    pub indexed: bool,
}

/// A stored chunk's JSON part.
#[derive(Serialize, Deserialize)]
pub struct Stored {
    pub doc_id: String,
    pub chunk_id: String,
    pub metadata: Map<String, Value>,
}

impl Kb {
    /// The knowledge base `name`: 1–128 bytes, no `/`.
    pub fn named(name: &str) -> Result<Kb, TaskError> {
        if name.is_empty() || name.len() > 128 || name.contains('/') {
            return Err(TaskError::invalid_input(format!(
                "knowledge base `{name}`: a name is 1 to 128 bytes without `/`"
            )));
        }
        Ok(Kb {
            name: name.to_string(),
            prefix: format!("kb/{name}/"),
        })
    }

    fn info_key(&self) -> String {
        format!("{}info", self.prefix)
    }

    fn chunks(&self) -> String {
        format!("{}chunk/", self.prefix)
    }

    /// Where document `doc`'s chunks are.
    fn chunks_of(&self, doc: &str) -> String {
        format!("{}{}/", self.chunks(), documents::escape(doc))
    }

    /// Its info; an error naming it if nothing was ever upserted to it.
    pub fn info(&self) -> Result<Info, TaskError> {
        match storage::get(None, &self.info_key())? {
            Some(entry) => storage::decode(&entry),
            None => Err(TaskError::invalid_input(format!(
                "knowledge base `{}` does not exist: nothing has been upserted to it",
                self.name
            ))),
        }
    }

    /// Its info, made `want` if it has none yet; the model recorded if it
    /// had none. Refuses another vector length or another model.
    fn agree(&self, want: &Info) -> Result<Info, TaskError> {
        loop {
            let (have, version) = match storage::get(None, &self.info_key())? {
                Some(entry) => (Some(storage::decode::<Info>(&entry)?), entry.version),
                None => (None, 0),
            };
            let merged = match &have {
                Some(have) => self.merge(have.clone(), want)?,
                None => want.clone(),
            };
            if have.as_ref() == Some(&merged) {
                return Ok(merged);
            }
            match storage::set_if(None, &self.info_key(), &storage::encode(&merged), version) {
                Ok(_) => return Ok(merged),
                // Another node wrote it first: read what it chose.
                Err(StorageError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn merge(&self, have: Info, want: &Info) -> Result<Info, TaskError> {
        if have.dims != want.dims {
            return Err(TaskError::invalid_input(format!(
                "knowledge base `{}` holds vectors of {} numbers; these have {}",
                self.name, have.dims, want.dims
            )));
        }
        match (&have.model, &want.model) {
            (Some(a), Some(b)) if a != b => Err(TaskError::invalid_input(format!(
                "knowledge base `{}` was embedded with model `{a}`, not `{b}`",
                self.name
            ))),
            (None, Some(model)) => Ok(Info {
                model: Some(model.clone()),
                ..have
            }),
            _ => Ok(have),
        }
    }

    /// Every chunk under `prefix`, a page at a time, to `each`.
    fn scan(
        &self,
        prefix: &str,
        mut each: impl FnMut(&str, Stored, Vec<f32>),
    ) -> Result<(), TaskError> {
        let mut after = None;
        loop {
            let page = storage::list_keys(None, prefix, after.as_deref(), BATCH)?;
            let entries = storage::get_many(None, &page.keys)?;
            for (key, entry) in page.keys.iter().zip(entries) {
                if let Some(entry) = entry {
                    let (stored, vector) = decode(&entry)?;
                    each(key, stored, vector);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}

fn encode(stored: &Stored, vector: &[f32]) -> Vec<u8> {
    let json = storage::encode(stored);
    let mut out = Vec::with_capacity(4 + json.len() + 4 * vector.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    vector
        .iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    out
}

fn decode(entry: &Entry) -> Result<(Stored, Vec<f32>), TaskError> {
    let bad = || TaskError::failed("a stored chunk is not in the knowledge base's format");
    let (len, rest) = entry.value.split_first_chunk::<4>().ok_or_else(bad)?;
    let (json, vector) = rest
        .split_at_checked(u32::from_le_bytes(*len) as usize)
        .ok_or_else(bad)?;
    let stored: Stored = serde_json::from_slice(json).map_err(|_| bad())?;
    let vector = vector
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((stored, vector))
}
