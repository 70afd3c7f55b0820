//! Keyword relevance for hybrid retrieval: Workglow's `BM25Index` scoring
//! (BM25F: `k1` 1.2, `b` 0.75, fields weighted `doc_title` 3,
//! `sectionTitles` 2, `summary` 1.5, `text` 1, `parentSummaries` 0.5), its
//! tokenizer (lower case, split at anything but letters and digits, words
//! of one UTF-16 unit and English stop words dropped) and its statistics
//! (over every chunk of the knowledge base, whatever the filter).
//!
//! Weft keeps no index: the scan that scores every chunk's vector also
//! counts the query's words in it, so a query costs one read of the
//! knowledge base either way, and nothing can go stale. Memory is one
//! small record per chunk that holds a query word.
use std::collections::HashMap;

use serde_json::{Map, Value};

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// The fields indexed, and their weights.
const FIELDS: [(&str, f64); 5] = [
    ("text", 1.0),
    ("doc_title", 3.0),
    ("sectionTitles", 2.0),
    ("summary", 1.5),
    ("parentSummaries", 0.5),
];

const STOP_WORDS: [&str; 52] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he",
    "her", "hers", "him", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of",
    "on", "or", "our", "ours", "she", "so", "than", "that", "the", "their", "theirs", "them",
    "they", "this", "to", "us", "was", "we", "were", "will", "with", "you", "your", "yours",
];

/// Workglow's default tokenizer.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.encode_utf16().count() >= 2 && !STOP_WORDS.contains(&w.as_str()))
}

/// A chunk that holds a query word: where it was read, and per field its
/// length in words and how often it holds each query word it holds.
struct Candidate {
    key: String,
    place: usize,
    lengths: [u32; FIELDS.len()],
    counts: Vec<(usize, [u32; FIELDS.len()])>,
}

/// The statistics of a scan, and the chunks that hold a query word.
pub struct Scores {
    /// The query's distinct words, numbered.
    terms: HashMap<String, usize>,
    /// Chunks with any word in an indexed field.
    chunks: u64,
    /// Per field: chunks with words in it, and their words in all.
    fields: [(u64, u64); FIELDS.len()],
    /// Per query word: chunks that hold it.
    df: Vec<u64>,
    candidates: Vec<Candidate>,
}

impl Scores {
    /// Scores for `query`'s distinct words.
    pub fn new(query: &str) -> Scores {
        let mut terms: HashMap<String, usize> = HashMap::new();
        for t in tokens(query) {
            let next = terms.len();
            terms.entry(t).or_insert(next);
        }
        Scores {
            df: vec![0; terms.len()],
            terms,
            chunks: 0,
            fields: [(0, 0); FIELDS.len()],
            candidates: Vec::new(),
        }
    }

    /// Counts the chunk stored at `key`, the `place`th read.
    pub fn add(&mut self, key: &str, place: usize, metadata: &Map<String, Value>) {
        let mut lengths = [0u32; FIELDS.len()];
        let mut counts: HashMap<usize, [u32; FIELDS.len()]> = HashMap::new();
        for (f, (name, _)) in FIELDS.iter().enumerate() {
            let Some(text) = field_text(metadata.get(*name)) else {
                continue;
            };
            for token in tokens(&text) {
                lengths[f] += 1;
                if let Some(&t) = self.terms.get(&token) {
                    counts.entry(t).or_default()[f] += 1;
                }
            }
        }
        if lengths.iter().all(|l| *l == 0) {
            return;
        }
        self.chunks += 1;
        for (f, len) in lengths.iter().enumerate().filter(|(_, l)| **l > 0) {
            self.fields[f].0 += 1;
            self.fields[f].1 += u64::from(*len);
        }
        for t in counts.keys() {
            self.df[*t] += 1;
        }
        if !counts.is_empty() {
            self.candidates.push(Candidate {
                key: key.to_string(),
                place,
                lengths,
                counts: sorted(counts),
            });
        }
    }

    /// The keys of the `n` best chunks, best first (the earlier read first
    /// among equals).
    pub fn best(mut self, n: usize) -> Vec<String> {
        let mut scored: Vec<(f64, usize, usize)> = self
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (self.score(c), c.place, i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(n)
            .map(|(_, _, i)| std::mem::take(&mut self.candidates[i].key))
            .collect()
    }

    fn score(&self, c: &Candidate) -> f64 {
        let n = self.chunks as f64;
        let mut score = 0.0;
        for (t, per_field) in &c.counts {
            let df = self.df[*t] as f64;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let mut pseudo_tf = 0.0;
            for (f, (_, weight)) in FIELDS.iter().enumerate() {
                let (docs, total) = self.fields[f];
                if per_field[f] == 0 || docs == 0 {
                    continue;
                }
                let average = total as f64 / docs as f64;
                let norm = match average > 0.0 {
                    true => 1.0 - B + B * f64::from(c.lengths[f]) / average,
                    false => 1.0,
                };
                let norm = if norm == 0.0 { 1.0 } else { norm };
                pseudo_tf += weight * f64::from(per_field[f]) / norm;
            }
            if pseudo_tf > 0.0 {
                score += idf * pseudo_tf / (K1 + pseudo_tf);
            }
        }
        score
    }
}

/// An indexed field's text: a non-empty string, or the non-empty strings
/// of a list joined by spaces.
fn field_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Array(items) => {
            let words: Vec<&str> = items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            (!words.is_empty()).then(|| words.join(" "))
        }
        _ => None,
    }
}

/// A chunk's counts in query-word order, so that scores add up the same
/// way every time.
fn sorted(counts: HashMap<usize, [u32; FIELDS.len()]>) -> Vec<(usize, [u32; FIELDS.len()])> {
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_unstable_by_key(|(t, _)| *t);
    counts
}
