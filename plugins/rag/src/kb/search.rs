//! Searching a knowledge base: `rag.chunk-retrieval`
//! (`ChunkRetrievalTask`) and `rag.kb-search` (`KbSearchTask`). Exact.
//! The host's store ranks the chunks' vectors (`vectors.nearest`: pgvector
//! on PostgreSQL) and a page of the nearest is read here, filtered and
//! scored; when a filter leaves too few in that page, and for `hybrid`
//! and knowledge bases made before vectors were kept with their keys,
//! every chunk is read and scored here once, a page at a time, only the
//! best `topK` kept.
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::{Context, TaskError, storage, vectors};

use super::{Kb, Stored, bm25, decode};

#[derive(Deserialize, JsonSchema, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Method {
    /// Cosine similarity of the vectors.
    #[default]
    Similarity,
    /// Vectors and keywords (BM25), fused by reciprocal rank.
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

fn seven_tenths() -> f64 {
    0.7
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
    /// `similarity` (cosine) or `hybrid` (a text query's vector and its
    /// words, fused by reciprocal rank; `scoreThreshold` does not apply).
    #[serde(default)]
    method: Method,
    #[serde(flatten)]
    wanted: Wanted,
    /// `hybrid`: the vector ranking's share of the fused score, 0 to 1
    /// (default 0.7; the words' share is the rest).
    #[serde(default = "seven_tenths")]
    vector_weight: f64,
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
    /// Their cosine similarity to the query, or for `hybrid` their fused
    /// reciprocal-rank score (small numbers that rank, not similarities).
    scores: Vec<f64>,
    /// `cosine` or `rrf`.
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
    let words = match (&i.method, &i.query) {
        (Method::Hybrid, Query::Text(text)) if !text.encode_utf16().all(js::is_space) => {
            Some(text.as_str())
        }
        (Method::Hybrid, Query::Text(_)) | (Method::Similarity, _) => None,
        (Method::Hybrid, Query::Vector(_)) => {
            return Err(TaskError::invalid_input(
                "hybrid retrieval needs a text query (it is embedded and its words searched)",
            ));
        }
    };
    let query = match (&i.query, &i.model) {
        (Query::Vector(v), _) => v.clone(),
        (Query::Text(text), Some(model)) => embed(model, text)?,
        (Query::Text(_), None) => {
            return Err(TaskError::invalid_input(
                "`model` is required when `query` is a text (it embeds the query)",
            ));
        }
    };
    let (hits, score_type) = match words {
        Some(words) => (
            hybrid(&kb, &query, words, &i.wanted, i.vector_weight)?,
            "rrf",
        ),
        None => (search(&kb, &query, &i.wanted)?, "cosine"),
    };
    let mut out = RetrieveOut {
        chunks: Vec::new(),
        chunk_ids: Vec::new(),
        metadata: Vec::new(),
        scores: Vec::new(),
        score_type,
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
    key: String,
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

/// The best `top_k` chunks of `kb` for `query` that score at least
/// `min_score`, best first, with their scores.
pub fn best_chunks(
    kb: &Kb,
    query: &[f32],
    top_k: usize,
    min_score: f64,
) -> Result<Vec<(Stored, f64)>, TaskError> {
    let wanted = Wanted {
        top_k: top_k as f64,
        filter: None,
        score_threshold: Some(min_score),
    };
    let hits = search(kb, query, &wanted)?;
    Ok(hits.into_iter().map(|h| (h.stored, h.score)).collect())
}

/// The best `topK` chunks of `kb` for `query`.
fn search(kb: &Kb, query: &[f32], wanted: &Wanted) -> Result<Vec<Hit>, TaskError> {
    let top_k = wanted.top_k.max(0.0) as usize;
    let threshold = wanted.score_threshold.unwrap_or(0.0);
    if check_query(kb, query)?.indexed
        && let Some(hits) = ranked_by_store(kb, query, wanted, (top_k, threshold))?
    {
        return Ok(hits);
    }
    nearest(kb, query, wanted, (top_k, threshold), |_, _, _| {})
}

/// The most chunks read from one page of the store's ranking.
const PAGE: usize = 1_000;
/// Candidates read beyond `topK` with no filter: the store sums in `f32`
/// (as pgvector does), the scores here are `f64`; near-ties at the edge
/// are settled by reading a few more.
const MARGIN: usize = 16;

/// The best `n` chunks (`keep` is `(n, threshold)`) from one page of the
/// store's ranking, read, filtered and scored here; `None` when the page
/// cannot tell (a filter left fewer than `n`, and chunks at or above the
/// threshold remain past the page).
fn ranked_by_store(
    kb: &Kb,
    query: &[f32],
    wanted: &Wanted,
    keep: (usize, f64),
) -> Result<Option<Vec<Hit>>, TaskError> {
    let (n, threshold) = keep;
    let page = match &wanted.filter {
        None => n.saturating_add(MARGIN),
        Some(_) => n.saturating_mul(4).max(100),
    };
    if n == 0 || n > PAGE {
        return Ok((n == 0).then(Vec::new));
    }
    let page = page.min(PAGE);
    let near = vectors::nearest(None, &kb.chunks(), query, 0, page as u32)?;
    let keys: Vec<String> = near.iter().map(|n| n.key.clone()).collect();
    let entries = storage::get_many(None, &keys)?;
    let mut hits = Vec::new();
    for (place, (key, entry)) in keys.into_iter().zip(entries).enumerate() {
        // Gone since it was ranked: another node deleted it.
        let Some(entry) = entry else { continue };
        let (stored, vector) = decode(&entry)?;
        let score = cosine(query, &vector);
        if score >= threshold && matches(&stored.metadata, wanted.filter.as_ref()) {
            hits.push(Hit {
                score,
                place,
                key,
                stored,
                vector,
            });
        }
    }
    // Settled when the page held every chunk, or those past it score below
    // the threshold, or `MARGIN` hits beyond the `n`th were read (a
    // near-tie past the page cannot beat the `n`th then).
    let rest_below = near
        .last()
        .is_none_or(|last| f64::from(last.similarity) < threshold);
    let settled = near.len() < page || rest_below || hits.len() >= n.saturating_add(MARGIN);
    if !settled {
        return Ok(None);
    }
    hits.sort_by(|a, b| b.cmp(a));
    hits.truncate(n);
    Ok(Some(hits))
}

/// `kb`'s info, once the query is checked against it.
fn check_query(kb: &Kb, query: &[f32]) -> Result<super::Info, TaskError> {
    let info = kb.info()?;
    if query.len() != info.dims {
        return Err(TaskError::invalid_input(format!(
            "the query vector has {} numbers; knowledge base `{}` holds vectors of {}",
            query.len(),
            kb.name,
            info.dims
        )));
    }
    Ok(info)
}

/// The best `n` chunks of `kb` by cosine with `query`, of those matching
/// `wanted`'s filter and scoring at least `threshold` (`keep` is `(n,
/// threshold)`); every chunk read is shown to `each` too (its key, place
/// and metadata). The caller has checked `query` (`check_query`).
fn nearest(
    kb: &Kb,
    query: &[f32],
    wanted: &Wanted,
    keep: (usize, f64),
    mut each: impl FnMut(&str, usize, &Map<String, Value>),
) -> Result<Vec<Hit>, TaskError> {
    let (n, threshold) = keep;
    let mut best: BinaryHeap<Reverse<Hit>> = BinaryHeap::new();
    let mut place = 0;
    kb.scan(&kb.chunks(), |key, stored, vector| {
        place += 1;
        each(key, place, &stored.metadata);
        if n == 0 || !matches(&stored.metadata, wanted.filter.as_ref()) {
            return;
        }
        let score = cosine(query, &vector);
        if score < threshold {
            return;
        }
        let key = key.to_string();
        best.push(Reverse(Hit {
            score,
            place,
            key,
            stored,
            vector,
        }));
        if best.len() > n {
            best.pop();
        }
    })?;
    Ok(best
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(hit)| hit)
        .collect())
}

/// Workglow's hybrid search: the best `topK × 5` chunks by vector and by
/// the query's `words` (BM25), fused by reciprocal rank (`k` 60), the
/// vector ranking weighted `vector_weight` and the words the rest; the best
/// `topK` of the fusion that match the filter.
fn hybrid(
    kb: &Kb,
    query: &[f32],
    words: &str,
    wanted: &Wanted,
    vector_weight: f64,
) -> Result<Vec<Hit>, TaskError> {
    const RRF_K: f64 = 60.0;
    let top_k = wanted.top_k.max(0.0) as usize;
    let pool = top_k.max((wanted.top_k.max(0.0) * 5.0).ceil() as usize);
    let mut text = bm25::Scores::new(words);
    check_query(kb, query)?;
    let by_vector = nearest(
        kb,
        query,
        wanted,
        (pool, f64::NEG_INFINITY),
        |key, place, m| text.add(key, place, m),
    )?;
    let vector_weight = vector_weight.clamp(0.0, 1.0);
    let mut fused: Vec<(f64, Option<Hit>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (rank, hit) in by_vector.into_iter().enumerate() {
        at.insert(hit.key.clone(), fused.len());
        fused.push((vector_weight / (RRF_K + rank as f64 + 1.0), Some(hit)));
    }
    let mut missing = Vec::new();
    for (rank, key) in text.best(pool).into_iter().enumerate() {
        let share = (1.0 - vector_weight) / (RRF_K + rank as f64 + 1.0);
        match at.get(&key) {
            Some(&n) => fused[n].0 += share,
            None => {
                at.insert(key.clone(), fused.len());
                fused.push((share, None));
                missing.push(key);
            }
        }
    }
    for (key, entry) in missing.iter().zip(storage::get_many(None, &missing)?) {
        let Some(entry) = entry else { continue };
        let (stored, vector) = decode(&entry)?;
        if matches(&stored.metadata, wanted.filter.as_ref()) {
            let n = at[key];
            let (place, score) = (n, fused[n].0);
            fused[n].1 = Some(Hit {
                score,
                place,
                key: key.clone(),
                stored,
                vector,
            });
        }
    }
    let mut ranked: Vec<Hit> = fused
        .into_iter()
        .filter_map(|(score, hit)| hit.map(|hit| Hit { score, ..hit }))
        .collect();
    // Stable: equal scores keep the vector ranking's order, then the words'.
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked.truncate(top_k);
    Ok(ranked)
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
