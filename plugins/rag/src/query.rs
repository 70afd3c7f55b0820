//! `rag.query-expander`, Workglow's `QueryExpanderTask`: a query and a few
//! rewordings of it, by fixed rules (no model), word for word as Workglow.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskError};

#[derive(Deserialize, Serialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Method {
    /// Question words reworded, "Tell me about …", "Explain …".
    #[default]
    MultiQuery,
    /// A few common words swapped for synonyms.
    Synonyms,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryIn {
    /// The query to expand.
    query: String,
    /// How to expand it (default `multi-query`).
    #[serde(default)]
    method: Method,
    /// How many queries to give, the original included (1–10, default 3).
    #[serde(default = "three")]
    #[schemars(range(min = 1, max = 10))]
    num_variations: f64,
}

fn three() -> f64 {
    3.0
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryOut {
    /// The queries, the original first.
    query: Vec<String>,
    /// The query given.
    original_query: String,
    /// The method used.
    method: Method,
    /// How many queries.
    count: u32,
}

pub fn query_expander(i: QueryIn, _: &Context) -> Result<QueryOut, TaskError> {
    let queries = match i.method {
        Method::MultiQuery => multi_query(&i.query, i.num_variations),
        Method::Synonyms => synonyms(&i.query, i.num_variations),
    };
    Ok(QueryOut {
        count: queries.len() as u32,
        query: queries,
        original_query: i.query,
        method: i.method,
    })
}

/// Question words and their two rewordings.
const QUESTIONS: [(&str, &str, &str); 4] = [
    ("what", "Which", "Can you explain"),
    ("how", "What is the method to", "In what way"),
    ("why", "What is the reason", "For what purpose"),
    ("where", "In which location", "At what place"),
];

fn multi_query(query: &str, wanted: f64) -> Vec<String> {
    let lower = query.to_lowercase();
    let mut variations = Vec::new();
    if let Some((word, a, b)) = QUESTIONS.iter().find(|(w, ..)| lower.starts_with(w)) {
        // `/^what/i`: the first letters, whatever their case (ASCII here).
        let rest = query.get(word.len()..).unwrap_or_default();
        variations.push(format!("{a}{rest}"));
        variations.push(format!("{b}{rest}"));
    }
    if !lower.starts_with("tell me") {
        variations.push(format!("Tell me about {lower}"));
    }
    if !lower.starts_with("explain") {
        variations.push(format!("Explain {lower}"));
    }
    let mut queries = vec![query.to_string()];
    for v in variations.into_iter().take(take(wanted - 1.0)) {
        if !queries.contains(&v) {
            queries.push(v);
        }
    }
    queries
}

/// `i < n` for i = 0, 1, … holds this many times.
fn take(n: f64) -> usize {
    n.max(0.0).ceil() as usize
}

const SYNONYMS: [(&str, [&str; 3]); 10] = [
    ("find", ["locate", "discover", "search for"]),
    ("create", ["make", "build", "generate"]),
    ("delete", ["remove", "erase", "eliminate"]),
    ("update", ["modify", "change", "edit"]),
    ("show", ["display", "present", "reveal"]),
    ("explain", ["describe", "clarify", "elaborate"]),
    ("help", ["assist", "aid", "support"]),
    ("problem", ["issue", "challenge", "difficulty"]),
    ("solution", ["answer", "resolution", "fix"]),
    ("method", ["approach", "technique", "way"]),
];

fn synonyms(query: &str, wanted: f64) -> Vec<String> {
    let lower = query.to_lowercase();
    let words = js::split_whitespace(&lower);
    let mut queries = vec![query.to_string()];
    let mut made = 0.0;
    for (word, syns) in SYNONYMS {
        let Some(at) = words.iter().position(|w| *w == word) else {
            continue;
        };
        for syn in syns {
            if made >= wanted - 1.0 {
                return queries;
            }
            let mut new_words = words.clone();
            new_words[at] = syn;
            let candidate = capitalized_as(query, new_words.join(" "));
            if !queries.contains(&candidate) {
                queries.push(candidate);
                made += 1.0;
            }
        }
    }
    queries
}

/// `modified` with its first letter upper-case if `original`'s is (an
/// astral first character is left as it is, as JavaScript's `charAt`).
fn capitalized_as(original: &str, modified: String) -> String {
    let upper_first = |s: &str| s.chars().next().is_none_or(is_upper);
    if !upper_first(original) {
        return modified;
    }
    let mut chars = modified.chars();
    match chars.next() {
        Some(c) if c.len_utf16() == 1 => c.to_uppercase().chain(chars).collect(),
        _ => modified,
    }
}

/// JavaScript's `c === c.toUpperCase()` for one UTF-16 unit.
fn is_upper(c: char) -> bool {
    c.len_utf16() == 2 || c.to_uppercase().eq(std::iter::once(c))
}
