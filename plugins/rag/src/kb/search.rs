//! Searching a knowledge base: `rag.chunk-retrieval`
//! (`ChunkRetrievalTask`) and `rag.kb-search` (`KbSearchTask`). Exact:
//! every chunk read and scored once, a page at a time, only the best
//! `topK` kept.
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::{Context, TaskError};

use super::{Kb, Stored};

#[derive(Deserialize, JsonSchema, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Method {
    /// Cosine similarity of the vectors.
    #[default]
    Similarity,
    /// Vectors and full text: not provided (no full-text index).
    Hybrid,
}

/// A query text or vector.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(untagged)]
pub enum Query {
    Text(String),
    Vector(Vec<f32>),
}

/// What to keep of the chunks: how many, which.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Wanted {
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
    score_threshold: Option<f64>,
}

fn five() -> f64 {
    5.0
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
    #[serde(flatten)]
    wanted: Wanted,
    /// Workglow's hybrid weight: not used.
    #[serde(default)]
    #[allow(dead_code)]
    vector_weight: Option<f64>,
    /// Give the chunks' vectors too (default false).
    #[serde(default)]
    return_vectors: bool,
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
    let kb = Kb::named(&i.knowledge_base)?;
    if i.method == Method::Hybrid {
        return Err(TaskError::invalid_input(
            "hybrid retrieval needs a full-text index, which Weft's knowledge base does not have; use method `similarity`",
        ));
    }
    let query = match (&i.query, &i.model) {
        (Query::Vector(v), _) => v.clone(),
        (Query::Text(text), Some(model)) => embed(model, text)?,
        (Query::Text(_), None) => {
            return Err(TaskError::invalid_input(
                "`model` is required when `query` is a text (it embeds the query)",
            ));
        }
    };
    let hits = search(&kb, &query, &i.wanted)?;
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
        out.chunks.push(text_of(&hit.stored.metadata));
        out.chunk_ids.push(hit.stored.chunk_id);
        out.metadata.push(hit.stored.metadata);
        out.scores.push(hit.score);
        if let Some(vectors) = &mut out.vectors {
            vectors.push(hit.vector);
        }
    }
    Ok(out)
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchIn {
    /// The knowledge base's name; its chunks must have been upserted with
    /// `model`, which embeds the query.
    knowledge_base: String,
    /// The query text.
    query: String,
    #[serde(flatten)]
    wanted: Wanted,
}

#[derive(Serialize, JsonSchema)]
pub struct SearchOut {
    /// The chunks found, best first: `chunk_id`, `doc_id`, `vector`,
    /// `metadata`, `score`, `scoreType`.
    results: Vec<Value>,
    /// Their texts.
    chunks: Vec<String>,
    /// Their ids.
    chunk_ids: Vec<String>,
    /// Their scores.
    scores: Vec<f64>,
    /// How many.
    count: u32,
}

pub fn kb_search(i: SearchIn, _: &Context) -> Result<SearchOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    let Some(model) = kb.info()?.model else {
        return Err(TaskError::invalid_input(format!(
            "knowledge base `{}` has no embedding model: upsert its chunks with `model`, or use rag.chunk-retrieval with a model",
            i.knowledge_base
        )));
    };
    let hits = search(&kb, &embed(&model, &i.query)?, &i.wanted)?;
    let mut out = SearchOut {
        results: Vec::new(),
        chunks: Vec::new(),
        chunk_ids: Vec::new(),
        scores: Vec::new(),
        count: hits.len() as u32,
    };
    for hit in hits {
        out.chunks.push(text_of(&hit.stored.metadata));
        out.chunk_ids.push(hit.stored.chunk_id.clone());
        out.scores.push(hit.score);
        out.results.push(json!({
            "chunk_id": hit.stored.chunk_id, "doc_id": hit.stored.doc_id, "vector": hit.vector,
            "metadata": hit.stored.metadata, "score": hit.score, "scoreType": "cosine"
        }));
    }
    Ok(out)
}

fn embed(model: &str, text: &str) -> Result<Vec<f32>, TaskError> {
    let mut vectors = weft_sdk::models::embed(model, &[text.to_string()])?;
    Ok(vectors.pop().unwrap_or_default())
}

/// A chunk's text: its metadata's `text`, or else the metadata as JSON.
fn text_of(metadata: &Map<String, Value>) -> String {
    match metadata.get("text") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => js::stringify(&Value::Object(metadata.clone())),
    }
}

/// A chunk found, ordered by score, then by place (the earlier wins).
struct Hit {
    score: f64,
    place: usize,
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

/// The best `topK` chunks of `kb` for `query`.
fn search(kb: &Kb, query: &[f32], wanted: &Wanted) -> Result<Vec<Hit>, TaskError> {
    let dims = kb.info()?.dims;
    if query.len() != dims {
        return Err(TaskError::invalid_input(format!(
            "the query vector has {} numbers; knowledge base `{}` holds vectors of {dims}",
            query.len(),
            kb.name
        )));
    }
    let top_k = wanted.top_k.max(0.0) as usize;
    let threshold = wanted.score_threshold.unwrap_or(0.0);
    let mut best: BinaryHeap<Reverse<Hit>> = BinaryHeap::new();
    let mut place = 0;
    kb.scan(&kb.chunks(), |_, stored, vector| {
        place += 1;
        if top_k == 0 || !matches(&stored.metadata, wanted.filter.as_ref()) {
            return;
        }
        let score = cosine(query, &vector);
        if score < threshold {
            return;
        }
        best.push(Reverse(Hit {
            score,
            place,
            stored,
            vector,
        }));
        if best.len() > top_k {
            best.pop();
        }
    })?;
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
