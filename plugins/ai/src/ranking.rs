//! Tasks that rank texts by meaning with an embedding model: zero-shot
//! classification (`ai.text-classification`) and reranking
//! (`ai.text-reranker`). One `embed` call each, for every text at once.
//! No classifier or cross-encoder model is served, so both compare
//! embeddings; the ports are Workglow's.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::models;
use weft_sdk::{Context, TaskError};

/// Cosine similarity of `a` and `b` (0 when either is zero).
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (na * nb)
}

/// Embed `first` and `rest` in one call: `first`'s vector and the others'.
fn embed_all(
    model: &str,
    first: &str,
    rest: &[String],
) -> Result<(Vec<f32>, Vec<Vec<f32>>), TaskError> {
    let mut texts = Vec::with_capacity(rest.len() + 1);
    texts.push(first.to_string());
    texts.extend_from_slice(rest);
    let mut vectors = models::embed(model, &texts)?;
    if vectors.len() != texts.len() {
        return Err(TaskError::failed(format!(
            "model `{model}` gave {} vectors for {} texts",
            vectors.len(),
            texts.len()
        )));
    }
    let rest = vectors.split_off(1);
    Ok((vectors.remove(0), rest))
}

fn five() -> usize {
    5
}

#[derive(Deserialize, JsonSchema)]
pub(crate) struct ClassifyIn {
    /// The text to classify.
    text: String,
    /// The labels to choose from. Required: classification is zero-shot,
    /// each label compared with the text by the embedding model.
    #[serde(default, rename = "candidateLabels")]
    candidate_labels: Vec<String>,
    /// The most categories to return, best first (default 5).
    #[serde(default = "five", rename = "maxCategories")]
    #[schemars(range(min = 1, max = 1000))]
    max_categories: usize,
    /// The embedding model's id.
    model: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct Category {
    /// The label.
    label: String,
    /// Its share of the confidence: the scores of all labels sum to 1.
    score: f32,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ClassifyOut {
    /// The labels with their scores, best first.
    categories: Vec<Category>,
}

/// How sharply similarities become shares: a softmax at temperature 0.05,
/// as zero-shot classification with embeddings usually takes.
const SHARPNESS: f32 = 20.0;

/// Each label is compared as this sentence, as zero-shot classifiers do.
fn hypothesis(label: &str) -> String {
    format!("This example is {label}.")
}

pub(crate) fn classify(input: ClassifyIn, _: &Context) -> Result<ClassifyOut, TaskError> {
    if input.candidate_labels.is_empty() {
        return Err(TaskError::invalid_input(
            "`candidateLabels`: give the labels to choose from (classification here is zero-shot \
             over an embedding model; no classifier with labels of its own is served)",
        ));
    }
    let hypotheses: Vec<String> = input
        .candidate_labels
        .iter()
        .map(|l| hypothesis(l))
        .collect();
    let (text, labels) = embed_all(&input.model, &input.text, &hypotheses)?;
    let similarities: Vec<f32> = labels.iter().map(|l| cosine(&text, l)).collect();
    let best = similarities
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = similarities
        .iter()
        .map(|s| ((s - best) * SHARPNESS).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let mut categories: Vec<Category> = input
        .candidate_labels
        .into_iter()
        .zip(weights)
        .map(|(label, w)| Category {
            label,
            score: w / total,
        })
        .collect();
    categories.sort_by(|a, b| b.score.total_cmp(&a.score));
    categories.truncate(input.max_categories);
    Ok(ClassifyOut { categories })
}

#[derive(Deserialize, JsonSchema)]
pub(crate) struct RerankIn {
    /// The query to score the documents against.
    query: String,
    /// The candidate documents.
    documents: Vec<String>,
    /// Return at most this many indices (default: all).
    #[serde(default, rename = "topK")]
    #[schemars(range(min = 1))]
    top_k: Option<usize>,
    /// The embedding model's id.
    model: String,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct RerankOut {
    /// Each document's relevance (cosine similarity with the query, in
    /// [-1, 1]), in the documents' order.
    scores: Vec<f32>,
    /// The documents' positions, best first (`topK` of them when given).
    indices: Vec<usize>,
}

pub(crate) fn rerank(input: RerankIn, _: &Context) -> Result<RerankOut, TaskError> {
    if input.documents.is_empty() {
        return Ok(RerankOut {
            scores: Vec::new(),
            indices: Vec::new(),
        });
    }
    let (query, documents) = embed_all(&input.model, &input.query, &input.documents)?;
    let scores: Vec<f32> = documents.iter().map(|d| cosine(&query, d)).collect();
    let mut indices: Vec<usize> = (0..scores.len()).collect();
    indices.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    indices.truncate(input.top_k.unwrap_or(usize::MAX));
    Ok(RerankOut { scores, indices })
}
