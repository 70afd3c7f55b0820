//! `rag.hierarchy-join` (`HierarchyJoinTask`): retrieved chunks' metadata
//! joined with what their documents' kept trees say of the nodes above
//! them.
use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};

use super::Kb;
use super::documents::{truthy, yes};
use crate::document::Kind;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinIn {
    /// The knowledge base's name.
    knowledge_base: String,
    /// The retrieved chunks' metadata (chunk records with `doc_id` and
    /// `leafNodeId` or `nodePath`). Each is read only while it is joined
    /// (a list of JSON values takes several times the memory of its text).
    #[schemars(with = "Vec<Value>")]
    metadata: Vec<Box<RawValue>>,
    /// The retrieved chunks' texts (passed through).
    #[serde(default)]
    chunks: Option<Vec<String>>,
    /// Their ids (passed through).
    #[serde(default, rename = "chunk_ids")]
    chunk_ids: Option<Vec<String>>,
    /// Their scores (passed through).
    #[serde(default)]
    scores: Option<Vec<f64>>,
    /// Add the section titles and summaries of the nodes above each chunk
    /// (default true).
    #[serde(default = "yes")]
    include_parent_summaries: bool,
    /// Add the entities of the nodes above each chunk, one per text, the
    /// best scored (default true).
    #[serde(default = "yes")]
    include_entities: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct JoinOut {
    /// Each chunk's metadata with `sectionTitles`, `parentSummaries` and
    /// `entities` from its document's tree.
    #[schemars(with = "Vec<Value>")]
    metadata: Vec<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "chunk_ids")]
    chunk_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scores: Option<Vec<f64>>,
    /// How many metadata records.
    count: u32,
}

/// Each chunk's metadata joined with what its document's tree says of the
/// nodes above it. A chunk whose document or node is not stored keeps its
/// metadata as it is. Each document is read and indexed once, so a join
/// costs the trees' size plus each chunk's depth.
pub fn hierarchy_join(i: JoinIn, _: &Context) -> Result<JoinOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    let mut trees: HashMap<String, Option<Ancestry>> = HashMap::new();
    let mut metadata = Vec::with_capacity(i.metadata.len());
    let include = (i.include_parent_summaries, i.include_entities);
    for (n, record) in i.metadata.into_iter().enumerate() {
        let record = match serde_json::from_str(record.get()) {
            Ok(Value::Object(record)) => joined(&kb, &mut trees, record, include)?,
            Ok(_) => Map::new(),
            Err(e) => return Err(TaskError::invalid_input(format!("metadata[{n}]: {e}"))),
        };
        let record = serde_json::value::to_raw_value(&record)
            .map_err(|e| TaskError::failed(format!("a joined record is not JSON: {e}")))?;
        metadata.push(record);
    }
    Ok(JoinOut {
        count: metadata.len() as u32,
        metadata,
        chunks: i.chunks,
        chunk_ids: i.chunk_ids,
        scores: i.scores,
    })
}

/// One chunk's metadata joined with its document's tree, read and indexed
/// into `trees` the first time.
fn joined(
    kb: &Kb,
    trees: &mut HashMap<String, Option<Ancestry>>,
    mut record: Map<String, Value>,
    include: (bool, bool),
) -> Result<Map<String, Value>, TaskError> {
    let (Some(Value::String(doc)), Some(leaf)) = (record.get("doc_id"), leaf_of(&record)) else {
        return Ok(record);
    };
    let leaf = leaf.to_string();
    if !trees.contains_key(doc) {
        let tree = match kb.load_document(doc)? {
            Some(d) => Some(Ancestry::of(&nodes(doc, &d.root)?)),
            None => None,
        };
        trees.insert(doc.clone(), tree);
    }
    let ancestors = match &trees[doc] {
        Some(tree) => tree.above(&leaf),
        None => Vec::new(),
    };
    join(&mut record, &ancestors, include);
    Ok(record)
}

/// The chunk's leaf node: `leafNodeId`, else the last of `nodePath`.
fn leaf_of(record: &Map<String, Value>) -> Option<&str> {
    let leaf = match record.get("leafNodeId") {
        Some(Value::Null) | None => record.get("nodePath")?.as_array()?.last()?,
        Some(leaf) => leaf,
    };
    leaf.as_str().filter(|l| !l.is_empty())
}

/// What a join reads of a kept tree's node (not its text). The tree was
/// checked when it was kept: every node has an id and a kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinNode {
    node_id: String,
    kind: Kind,
    /// Any JSON, `null` too, when there.
    #[serde(default, deserialize_with = "present")]
    title: Option<Value>,
    #[serde(default)]
    enrichment: Option<Value>,
    #[serde(default)]
    children: Option<Vec<JoinNode>>,
}

/// A field's value when it is there, `null` included.
fn present<'de, D: Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// Document `doc`'s kept tree, as a join reads it.
fn nodes(doc: &str, root: &RawValue) -> Result<JoinNode, TaskError> {
    serde_json::from_str(root.get())
        .map_err(|e| TaskError::failed(format!("stored document `{doc}` is not a tree: {e}")))
}

/// What a join needs of one node.
struct Facts {
    parent: Option<usize>,
    /// A section's `title` (any JSON, as Workglow takes it).
    section_title: Option<Value>,
    summary: Option<Value>,
    entities: Vec<Value>,
}

/// One document's tree indexed for joins: each node's facts and parent,
/// by id (the first node of an id, in document order).
struct Ancestry {
    nodes: Vec<Facts>,
    by_id: HashMap<String, usize>,
}

impl Ancestry {
    fn of(root: &JoinNode) -> Ancestry {
        let mut tree = Ancestry {
            nodes: Vec::new(),
            by_id: HashMap::new(),
        };
        let mut stack = vec![(root, None)];
        while let Some((node, parent)) = stack.pop() {
            let at = tree.nodes.len();
            tree.nodes.push(Facts::of(node, parent));
            tree.by_id.entry(node.node_id.clone()).or_insert(at);
            let children = node.children.as_deref().unwrap_or_default();
            stack.extend(children.iter().rev().map(|child| (child, Some(at))));
        }
        tree
    }

    /// The nodes from the root down to node `id`, both included; none if
    /// it is not in the tree.
    fn above(&self, id: &str) -> Vec<&Facts> {
        let mut path = Vec::new();
        let mut at = self.by_id.get(id).copied();
        while let Some(n) = at {
            path.push(&self.nodes[n]);
            at = self.nodes[n].parent;
        }
        path.reverse();
        path
    }
}

impl Facts {
    fn of(node: &JoinNode, parent: Option<usize>) -> Facts {
        let enrichment = |field: &str| node.enrichment.as_ref()?.get(field).cloned();
        let section = node.kind == Kind::Section;
        Facts {
            parent,
            section_title: section.then(|| node.title.clone()).flatten(),
            summary: enrichment("summary").filter(truthy),
            entities: match enrichment("entities") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
        }
    }
}

/// Workglow's join of one record with its ancestors: `include` says
/// whether to add titles and summaries, and entities.
fn join(record: &mut Map<String, Value>, ancestors: &[&Facts], include: (bool, bool)) {
    let (summaries_too, entities_too) = include;
    if summaries_too {
        let summaries: Vec<Value> = ancestors.iter().filter_map(|a| a.summary.clone()).collect();
        let titles: Vec<Value> = ancestors
            .iter()
            .filter_map(|a| a.section_title.clone())
            .collect();
        if !summaries.is_empty() {
            record.insert("parentSummaries".into(), summaries.into());
        }
        if !titles.is_empty() {
            record.insert("sectionTitles".into(), titles.into());
        }
    }
    if entities_too {
        let entities = best_by_text(ancestors.iter().flat_map(|a| a.entities.iter()));
        if !entities.is_empty() {
            record.insert("entities".into(), entities.into());
        }
    }
}

/// One entity per `text`, the best `score` (the first of equals), in the
/// order their texts first appear.
fn best_by_text<'a>(entities: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut best: Vec<Value> = Vec::new();
    for entity in entities {
        let key = entity.get("text").map(Value::to_string).unwrap_or_default();
        let score = |e: &Value| e.get("score").and_then(Value::as_f64);
        match at.get(&key) {
            Some(&n) => {
                let better =
                    matches!((score(entity), score(&best[n])), (Some(new), Some(old)) if new > old);
                if better {
                    best[n] = entity.clone();
                }
            }
            None => {
                at.insert(key, best.len());
                best.push(entity.clone());
            }
        }
    }
    best
}
