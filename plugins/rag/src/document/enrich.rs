//! `rag.document-enricher`, Workglow's `DocumentEnricherTask`: each
//! section (and the document) of a tree given a summary by a generation
//! model, bottom up, as Workglow's does it: a section whose text and
//! children's texts (or their summaries) are at least `summaryThreshold`
//! characters long gets its own text summarised, that summary and the
//! children's joined and summarised again.
//!
//! Entities: with `nerModel` (a generation model, as
//! `ai.text-named-entity-recognition` uses), every node's own text is asked
//! for its entities (`ask::entities`), and a node holds its own and its
//! children's, once per text and type, the best score kept.
use ask::entities;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use weft_sdk::models::{self, Prompt};
use weft_sdk::{Context, TaskError};

use super::{Kind, Node};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrichIn {
    /// The document's id (passed through).
    #[serde(default, rename = "doc_id")]
    doc_id: Option<String>,
    /// The tree to enrich, as `rag.structural-parser` gives it.
    #[schemars(with = "Map<String, Value>")]
    #[serde(deserialize_with = "super::tree_field")]
    document_tree: Node,
    /// Whether to summarise sections (default true; needs `summaryModel`).
    #[serde(default = "yes")]
    generate_summaries: bool,
    /// Whether to extract named entities (default true; needs `nerModel`).
    #[serde(default = "yes")]
    extract_entities: bool,
    /// The generation model that summarises (none: no summaries).
    #[serde(default)]
    summary_model: Option<String>,
    /// The fewest characters (UTF-16 units) of a section's text and its
    /// children's worth a summary (default 500).
    #[serde(default = "default_threshold")]
    summary_threshold: f64,
    /// The generation model that finds named entities (none: no entities).
    #[serde(default)]
    ner_model: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_threshold() -> f64 {
    500.0
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrichOut {
    /// The document's id (passed through).
    #[serde(rename = "doc_id", skip_serializing_if = "Option::is_none")]
    doc_id: Option<String>,
    /// The tree, each section's `enrichment.summary` set where one was made.
    #[schemars(with = "Map<String, Value>")]
    document_tree: Node,
    /// How many summaries were made.
    summary_count: u32,
    /// How many entities the nodes hold, each node's counted (a child's
    /// entities count again in its parent, as Workglow counts them).
    entity_count: u32,
}

pub fn document_enricher(i: EnrichIn, _: &Context) -> Result<EnrichOut, TaskError> {
    let model = i
        .summary_model
        .filter(|m| i.generate_summaries && !m.is_empty());
    let ner = i.ner_model.filter(|m| i.extract_entities && !m.is_empty());
    let mut enricher = Enricher {
        model: model.as_deref(),
        ner: ner.as_deref(),
        threshold: i.summary_threshold,
        summaries: 0,
        entities: 0,
    };
    let mut tree = i.document_tree;
    enricher.enrich(&mut tree)?;
    Ok(EnrichOut {
        doc_id: i.doc_id,
        document_tree: tree,
        summary_count: enricher.summaries,
        entity_count: enricher.entities,
    })
}

struct Enricher<'a> {
    model: Option<&'a str>,
    ner: Option<&'a str>,
    threshold: f64,
    summaries: u32,
    entities: u32,
}

impl Enricher<'_> {
    /// Workglow's `enrichNode`: the children first, then the node; an
    /// enrichment (maybe empty, as Workglow writes it) on every section and
    /// document when summarising, on every node when finding entities.
    fn enrich(&mut self, node: &mut Node) -> Result<(), TaskError> {
        if let Some(children) = node.children.as_mut() {
            for child in children.iter_mut() {
                self.enrich(child)?;
            }
        }
        node.enrichment = None;
        let mut enrichment = Map::new();
        let summarised = matches!(node.kind, Kind::Section | Kind::Document);
        let summary = match self.model {
            Some(model) if summarised => match node.children().is_empty() {
                true => self.leaf_summary(model, node.text.as_deref().unwrap_or_default())?,
                false => self.summary(model, node)?,
            },
            _ => None,
        };
        if let Some(summary) = summary {
            if !summary.is_empty() {
                self.summaries += 1;
            }
            enrichment.insert("summary".into(), summary.into());
        }
        if let Some(ner) = self.ner {
            let found = self.entities_of(ner, node)?;
            if !found.is_empty() {
                self.entities += found.len() as u32;
                enrichment.insert("entities".into(), found.into());
            }
        }
        if (self.model.is_some() && summarised) || self.ner.is_some() {
            node.enrichment = Some(enrichment);
        }
        Ok(())
    }

    /// Workglow's `extractEntities`: the children's entities and those of
    /// the node's own text, once per text and type, the best score kept.
    fn entities_of(&self, model: &str, node: &Node) -> Result<Vec<Value>, TaskError> {
        let mut all: Vec<Value> = Vec::new();
        for child in node.children() {
            let theirs = child.enrichment.as_ref().and_then(|e| e.get("entities"));
            all.extend(
                theirs
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        let text = node.text.as_deref().map(str::trim).unwrap_or_default();
        if !text.is_empty() {
            for e in entities::recognise(model, text, ask::plain())? {
                all.push(json!({"type": e.entity, "text": e.word, "score": e.score}));
            }
        }
        Ok(unique(all))
    }

    /// Workglow's `generateSummary`: the node's own text summarised, then
    /// that and its children's summaries (or texts) summarised together.
    fn summary(&self, model: &str, node: &Node) -> Result<Option<String>, TaskError> {
        let own = node.text.as_deref().map(str::trim).unwrap_or_default();
        let children: Vec<&str> = node.children().iter().map(summary_or_text).collect();
        let children = children.join(" ");
        let children = children.trim();
        let combined = [own, children].into_iter().filter(|t| !t.is_empty());
        let combined = combined.collect::<Vec<_>>().join(" ");
        if combined.is_empty() || (js::length(&combined) as f64) < self.threshold {
            return Ok(None);
        }
        let mut parts = Vec::new();
        if !own.is_empty() {
            let summary = summarise(model, own)?;
            if !summary.is_empty() {
                parts.push(summary);
            }
        }
        if !children.is_empty() {
            parts.push(children.to_string());
        }
        let parts = parts.join(" ");
        match parts.trim() {
            "" => Ok(None),
            text => summarise(model, text).map(Some),
        }
    }

    /// Workglow's `generateLeafSummary`.
    fn leaf_summary(&self, model: &str, text: &str) -> Result<Option<String>, TaskError> {
        let text = text.trim();
        if text.is_empty() || (js::length(text) as f64) < self.threshold {
            return Ok(None);
        }
        summarise(model, text).map(Some)
    }
}

/// A child's summary if it has a non-empty one, else its text.
fn summary_or_text(child: &Node) -> &str {
    let summary = child.enrichment.as_ref().and_then(|e| e.get("summary"));
    match summary.and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s,
        _ => child.text.as_deref().unwrap_or_default(),
    }
}

/// `text` summarised by `model`, as `ai.text-summary` asks.
fn summarise(model: &str, text: &str) -> Result<String, TaskError> {
    let prompt = Prompt::Chat(vec![
        ask::message("system", ask::SUMMARISE),
        ask::message("user", text),
    ]);
    Ok(models::generate(model, &prompt, &ask::plain())?.text)
}

/// `entities` once per `text` and `type`, in first-seen order, each with
/// the best score seen (Workglow's `Map` keyed `text::type`).
fn unique(entities: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut at: std::collections::HashMap<(String, String), usize> = Default::default();
    for e in entities {
        let field = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let key = (field("text"), field("type"));
        let score = |v: &Value| v.get("score").and_then(Value::as_f64).unwrap_or(f64::MIN);
        match at.get(&key) {
            Some(&n) if score(&e) > score(&out[n]) => out[n] = e,
            Some(_) => {}
            None => {
                at.insert(key, out.len());
                out.push(e);
            }
        }
    }
    out
}
