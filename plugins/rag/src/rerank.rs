//! `rag.reranker`, Workglow's `RerankerTask`: retrieved chunks reordered by
//! in-process heuristics (no model): `simple` mixes the retrieval score,
//! the query's words found in the chunk and an exact-phrase bonus, less a
//! penalty growing with the chunk's place; `reciprocal-rank-fusion` scores
//! by place alone.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Method {
    /// Score, keywords, exact phrase, place.
    #[default]
    Simple,
    /// 1 / (60 + place).
    ReciprocalRankFusion,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerankIn {
    /// The query the chunks answer.
    query: String,
    /// The retrieved chunks, in retrieval order.
    chunks: Vec<String>,
    /// Their retrieval scores (optional, by position).
    #[serde(default)]
    scores: Vec<f64>,
    /// Their metadata (optional, by position), carried along.
    #[serde(default)]
    metadata: Vec<Map<String, Value>>,
    /// How many to keep (default all).
    #[serde(default)]
    #[schemars(range(min = 1))]
    top_k: Option<f64>,
    /// `simple` (default) or `reciprocal-rank-fusion`.
    #[serde(default)]
    method: Method,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerankOut {
    /// The chunks, best first.
    chunks: Vec<String>,
    /// Their new scores.
    scores: Vec<f64>,
    /// Their metadata (`null` where none was given).
    metadata: Vec<Option<Map<String, Value>>>,
    /// Where each was in the input.
    original_indices: Vec<u32>,
    /// How many.
    count: u32,
}

struct Ranked {
    chunk: String,
    score: f64,
    original: usize,
}

pub fn rerank(i: RerankIn, _: &Context) -> Result<RerankOut, TaskError> {
    let mut ranked: Vec<Ranked> = match i.method {
        Method::Simple => simple(&i.query, i.chunks, &i.scores),
        Method::ReciprocalRankFusion => i
            .chunks
            .into_iter()
            .enumerate()
            .map(|(index, chunk)| Ranked {
                chunk,
                score: 1.0 / (60 + index + 1) as f64,
                original: index,
            })
            .collect(),
    };
    // Stable, as JavaScript's sort: equal scores keep their order.
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(k) = i.top_k.filter(|k| *k > 0.0) {
        ranked.truncate(k as usize);
    }
    let mut metadata = i.metadata;
    Ok(RerankOut {
        count: ranked.len() as u32,
        metadata: ranked
            .iter()
            .map(|r| metadata.get_mut(r.original).map(std::mem::take))
            .collect(),
        original_indices: ranked.iter().map(|r| r.original as u32).collect(),
        scores: ranked.iter().map(|r| r.score).collect(),
        chunks: ranked.into_iter().map(|r| r.chunk).collect(),
    })
}

fn simple(query: &str, chunks: Vec<String>, scores: &[f64]) -> Vec<Ranked> {
    let query = query.to_lowercase();
    let words: Vec<String> = js::split_whitespace(&query)
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(canonical)
        .collect();
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, chunk)| {
            let lower = chunk.to_lowercase();
            let folded = canonical(&lower);
            let found: usize = words
                .iter()
                .map(|w| folded.matches(w.as_str()).count())
                .sum();
            let (keywords, exact) = match words.is_empty() {
                true => (0.0, 0.0),
                false => (
                    (found as f64 / (words.len() * 3) as f64).min(1.0),
                    if lower.contains(&query) { 0.5 } else { 0.0 },
                ),
            };
            let initial = scores.get(index).copied().unwrap_or(0.0);
            let penalty = ((index + 1) as f64).ln() / 10.0;
            let score = initial * 0.4 + keywords * 0.4 + exact * 0.2 - penalty;
            Ranked {
                chunk,
                score,
                original: index,
            }
        })
        .collect()
}

/// `s` as a case-insensitive JavaScript regular expression (no `u` flag)
/// compares it: each UTF-16 unit upper-cased when that gives one unit and
/// does not turn a non-ASCII character into an ASCII one.
fn canonical(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None)
                    if c.len_utf16() == 1
                        && u.len_utf16() == 1
                        && (c.is_ascii() || !u.is_ascii()) =>
                {
                    u
                }
                _ => c,
            }
        })
        .collect()
}
