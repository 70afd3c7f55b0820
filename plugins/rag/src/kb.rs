//! A knowledge base: chunks, their vectors and metadata, kept in this
//! plugin's storage namespace (the run's user's own), searched exactly.
//!
//! `rag.chunk-vector-upsert` and `rag.chunk-retrieval` are Workglow's
//! `ChunkVectorUpsertTask` and `ChunkRetrievalTask`, with the knowledge
//! base named by a string (Workglow passes an object from its registry).
//! Two differences: a chunk is stored under its own `chunkId` (Workglow
//! makes a new id each time), so upserting a document again, or a retried
//! node doing so, replaces its chunks instead of adding copies (a chunk
//! needs a `chunkId` and a non-empty `doc_id`: give `rag.text-chunker` a
//! `doc_id`); and `hybrid` retrieval is refused, as there is no full-text
//! index.
//!
//! Layout, under `kb/NAME/`: `dims` (the vectors' length, fixed by the
//! first upsert) and `chunk/CHUNK_ID` (a chunk: 4 bytes of JSON length,
//! the JSON `{doc_id, metadata}`, then the vector as little-endian f32s).
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::storage::{self, Entry};
use weft_sdk::{Context, TaskError};

/// The most writes the host takes in one batch.
const BATCH: usize = 1_000;

/// A knowledge base's name: 1–128 bytes, no `/`.
fn prefix(name: &str) -> Result<String, TaskError> {
    if name.is_empty() || name.len() > 128 || name.contains('/') {
        return Err(TaskError::invalid_input(format!(
            "knowledge base `{name}`: a name is 1 to 128 bytes without `/`"
        )));
    }
    Ok(format!("kb/{name}/"))
}

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
    /// Chunk records, as `rag.text-chunker` gives them: each an object
    /// with `chunkId` (or `chunk_id`), `doc_id` and `text`, kept whole as
    /// its metadata.
    chunks: Vec<Map<String, Value>>,
    /// The chunks' vectors, one per chunk, in order.
    vector: Vectors,
    /// A title stamped onto each chunk's metadata.
    #[serde(default)]
    doc_title: Option<String>,
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

/// A stored chunk's JSON part.
#[derive(Serialize, Deserialize)]
struct Stored {
    doc_id: String,
    metadata: Map<String, Value>,
}

pub fn upsert(i: UpsertIn, _: &Context) -> Result<UpsertOut, TaskError> {
    let prefix = prefix(&i.knowledge_base)?;
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
    let want = vectors[0].len();
    let mut writes = Vec::with_capacity(i.chunks.len());
    let mut chunk_ids = Vec::with_capacity(i.chunks.len());
    for (index, (mut metadata, vector)) in i.chunks.into_iter().zip(vectors).enumerate() {
        check_chunk(&metadata, &vector, index, &doc_id, want)?;
        let chunk_id = match metadata.contains_key("chunkId") {
            true => text_field(&metadata, "chunkId", index)?,
            false => text_field(&metadata, "chunk_id", index)?,
        };
        stamp(&mut metadata, i.doc_title.as_deref());
        let stored = Stored {
            doc_id: doc_id.clone(),
            metadata,
        };
        writes.push(storage::plain(
            &format!("{prefix}chunk/{chunk_id}"),
            &encode(&stored, &vector),
        ));
        chunk_ids.push(chunk_id);
    }
    let dims = dimensions(&prefix, want)?;
    if dims != want {
        return Err(TaskError::invalid_input(format!(
            "knowledge base `{}` holds vectors of {dims} numbers; these have {want}",
            i.knowledge_base
        )));
    }
    for batch in writes.chunks(BATCH) {
        storage::write_many(None, batch)?;
    }
    Ok(UpsertOut {
        count: chunk_ids.len() as u32,
        doc_id,
        chunk_ids,
    })
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

/// The knowledge base's vector length: `wanted` if it has none yet.
fn dimensions(prefix: &str, wanted: usize) -> Result<usize, TaskError> {
    let key = format!("{prefix}dims");
    loop {
        if let Some(entry) = storage::get(None, &key)? {
            return storage::decode(&entry);
        }
        match storage::set_if(None, &key, &storage::encode(&wanted), 0) {
            Ok(_) => return Ok(wanted),
            // Another node created it first: read what it chose.
            Err(storage::StorageError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
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
    let bytes = &entry.value;
    let len = u32::from_le_bytes(
        bytes
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let json = bytes.get(4..4 + len as usize).ok_or_else(bad)?;
    let stored: Stored = serde_json::from_slice(json).map_err(|_| bad())?;
    let vector = bytes[4 + len as usize..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((stored, vector))
}

#[derive(Deserialize, JsonSchema, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Method {
    /// Cosine similarity of the vectors.
    #[default]
    Similarity,
    /// Vectors and full text: not provided (no full-text index).
    Hybrid,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrieveIn {
    /// The knowledge base's name.
    knowledge_base: String,
    /// A query text (embedded by `model`) or a query vector.
    query: Query,
    /// The embedding model, when `query` is a text.
    #[serde(default)]
    model: Option<String>,
    /// `similarity` (`hybrid` is refused).
    #[serde(default)]
    method: Method,
    /// How many chunks at most (default 5).
    #[serde(default = "five")]
    #[schemars(range(min = 1))]
    top_k: f64,
    /// Only chunks whose metadata has these values (strings, numbers,
    /// booleans, null; an object or array matches nothing, as in Workglow).
    #[serde(default)]
    filter: Option<Map<String, Value>>,
    /// The lowest cosine similarity kept (default 0).
    #[serde(default)]
    score_threshold: f64,
    /// Workglow's hybrid weight: not used.
    #[serde(default)]
    #[allow(dead_code)]
    vector_weight: Option<f64>,
    /// Give the chunks' vectors too (default false).
    #[serde(default)]
    return_vectors: bool,
}

fn five() -> f64 {
    5.0
}

#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(untagged)]
pub enum Query {
    Text(String),
    Vector(Vec<f32>),
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrieveOut {
    /// The chunks' texts, best first.
    chunks: Vec<String>,
    /// Their ids.
    #[serde(rename = "chunk_ids")]
    chunk_ids: Vec<String>,
    /// Their metadata.
    metadata: Vec<Map<String, Value>>,
    /// Their cosine similarity to the query.
    scores: Vec<f64>,
    /// `cosine`.
    score_type: &'static str,
    /// Their vectors, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    vectors: Option<Vec<Vec<f32>>>,
    /// How many.
    count: u32,
    /// The query given.
    query: Query,
}

pub fn retrieve(i: RetrieveIn, _: &Context) -> Result<RetrieveOut, TaskError> {
    let prefix = prefix(&i.knowledge_base)?;
    if i.method == Method::Hybrid {
        return Err(TaskError::invalid_input(
            "hybrid retrieval needs a full-text index, which Weft's knowledge base does not have; use method `similarity`",
        ));
    }
    let query = match (&i.query, &i.model) {
        (Query::Vector(v), _) => v.clone(),
        (Query::Text(text), Some(model)) => {
            let mut vectors = weft_sdk::models::embed(model, std::slice::from_ref(text))?;
            vectors.pop().unwrap_or_default()
        }
        (Query::Text(_), None) => {
            return Err(TaskError::invalid_input(
                "`model` is required when `query` is a text (it embeds the query)",
            ));
        }
    };
    let dims: usize = match storage::get(None, &format!("{prefix}dims"))? {
        Some(entry) => storage::decode(&entry)?,
        None => {
            return Err(TaskError::invalid_input(format!(
                "knowledge base `{}` does not exist: nothing has been upserted to it",
                i.knowledge_base
            )));
        }
    };
    if query.len() != dims {
        return Err(TaskError::invalid_input(format!(
            "the query vector has {} numbers; knowledge base `{}` holds vectors of {dims}",
            query.len(),
            i.knowledge_base
        )));
    }
    let hits = search(&prefix, &query, &i)?;
    let mut out = RetrieveOut {
        chunks: Vec::new(),
        chunk_ids: Vec::new(),
        metadata: Vec::new(),
        scores: Vec::new(),
        score_type: "cosine",
        vectors: i.return_vectors.then(Vec::new),
        count: hits.len() as u32,
        query: i.query,
    };
    for hit in hits {
        let metadata = hit.stored.metadata;
        out.chunks.push(match metadata.get("text") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => js::stringify(&Value::Object(metadata.clone())),
        });
        out.chunk_ids.push(hit.chunk_id);
        out.metadata.push(metadata);
        out.scores.push(hit.score);
        if let Some(vectors) = &mut out.vectors {
            vectors.push(hit.vector);
        }
    }
    Ok(out)
}

/// A chunk found, ordered by score, then by place (the earlier wins).
struct Hit {
    score: f64,
    place: usize,
    chunk_id: String,
    stored: Stored,
    vector: Vec<f32>,
}

impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.place.cmp(&self.place))
    }
}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Hit {}

/// The best `top_k` chunks: every chunk read once, a page at a time, and
/// only `top_k` kept.
fn search(prefix: &str, query: &[f32], i: &RetrieveIn) -> Result<Vec<Hit>, TaskError> {
    let chunks = format!("{prefix}chunk/");
    let top_k = i.top_k.max(0.0) as usize;
    let mut best: BinaryHeap<Reverse<Hit>> = BinaryHeap::new();
    let (mut after, mut place) = (None, 0);
    loop {
        let page = storage::list_keys(None, &chunks, after.as_deref(), BATCH as u32)?;
        let entries = storage::get_many(None, &page.keys)?;
        for (key, entry) in page.keys.iter().zip(entries) {
            let Some(entry) = entry else { continue };
            let (stored, vector) = decode(&entry)?;
            place += 1;
            if !matches(&stored.metadata, i.filter.as_ref()) {
                continue;
            }
            let score = cosine(query, &vector);
            if score < i.score_threshold || top_k == 0 {
                continue;
            }
            let chunk_id = key[chunks.len()..].to_string();
            best.push(Reverse(Hit {
                score,
                place,
                chunk_id,
                stored,
                vector,
            }));
            if best.len() > top_k {
                best.pop();
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(best
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(hit)| hit)
        .collect())
}

/// Workglow's `matchesFilter`: every filter field `===` the metadata's.
fn matches(metadata: &Map<String, Value>, filter: Option<&Map<String, Value>>) -> bool {
    filter
        .into_iter()
        .flatten()
        .all(|(k, want)| match (metadata.get(k), want) {
            (_, Value::Object(_) | Value::Array(_)) => false,
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(have), want) => have == want,
            (None, _) => false,
        })
}

/// Cosine similarity (0 where either vector is zero).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    match na == 0.0 || nb == 0.0 {
        true => 0.0,
        false => dot / (na.sqrt() * nb.sqrt()),
    }
}
