//! Documents in a knowledge base: `rag.document-upsert`
//! (`DocumentUpsertTask`) and `rag.kb-to-documents` (`KbToDocumentsTask`);
//! `join.rs` reads them for `rag.hierarchy-join`.
//!
//! A document is its tree (as `rag.structural-parser` gives it, kept
//! whole, with any `enrichment` of its nodes) and its metadata (a `title`
//! at least), stored as JSON `{doc_id, metadata, root}` under
//! `doc/DOC/` in parts of at most 512 KiB (the host takes values of up to
//! 1 MiB): part `000000` starts with the number of parts (4 bytes,
//! little-endian), so parts left over from a longer earlier version are
//! never read, and are deleted after the new ones are written.
//!
//! A tree is kept as the JSON text it came in, never as a JSON value (a
//! value takes several times the memory of its text, and a task has 64
//! MiB): checked as it is read, written out in parts as it is encoded, and
//! given back as it was stored.
use std::io;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use weft_sdk::storage;
use weft_sdk::{Context, TaskError};

use super::Kb;
use crate::document::tree;

/// The most bytes of a document's JSON in one stored part.
const PART_BYTES: usize = 512 << 10;

#[derive(Serialize, Deserialize)]
pub(super) struct Document {
    pub(super) doc_id: String,
    pub(super) metadata: Map<String, Value>,
    /// The tree, as JSON text.
    pub(super) root: Box<RawValue>,
}

impl Kb {
    /// Where document `doc`'s tree is.
    fn tree(&self, doc: &str) -> String {
        format!("{}doc/{}/", self.prefix, escape(doc))
    }

    pub(super) fn save_document(&self, document: &Document) -> Result<(), TaskError> {
        let mut parts = Parts(Vec::new());
        serde_json::to_writer(&mut parts, document)
            .map_err(|e| TaskError::failed(format!("a document could not be encoded: {e}")))?;
        let mut parts = parts.0;
        let count = (parts.len() as u32).to_le_bytes();
        if let Some(first) = parts.first_mut() {
            first[..4].copy_from_slice(&count);
        }
        let prefix = self.tree(&document.doc_id);
        let writes: Vec<storage::Write> = parts
            .into_iter()
            .enumerate()
            .map(|(n, value)| storage::Write {
                key: format!("{prefix}{n:06}"),
                value,
                if_version: None,
                ttl_ms: None,
            })
            .collect();
        storage::write_many(None, &writes)?;
        let stale = storage::keys(None, &prefix)?;
        storage::delete_all(None, stale.get(writes.len()..).unwrap_or_default())?;
        Ok(())
    }

    /// Document `doc`, if stored.
    pub(super) fn load_document(&self, doc: &str) -> Result<Option<Document>, TaskError> {
        let prefix = self.tree(doc);
        let Some(first) = storage::get(None, &format!("{prefix}{:06}", 0))? else {
            return Ok(None);
        };
        let bad = || TaskError::failed(format!("stored document `{doc}` is not in its format"));
        let (count, head) = first.value.split_first_chunk::<4>().ok_or_else(bad)?;
        let keys: Vec<String> = (1..u32::from_le_bytes(*count))
            .map(|n| format!("{prefix}{n:06}"))
            .collect();
        let mut json = head.to_vec();
        for part in storage::get_many(None, &keys)? {
            json.extend_from_slice(&part.ok_or_else(bad)?.value);
        }
        serde_json::from_slice(&json).map(Some).map_err(|_| bad())
    }

    /// Document `doc`'s metadata `url`, if it is stored and has one.
    pub fn document_url(&self, doc: &str) -> Result<Option<String>, TaskError> {
        let url = self
            .load_document(doc)?
            .and_then(|d| d.metadata.get("url")?.as_str().map(str::to_string));
        Ok(url)
    }

    /// Deletes document `doc`'s tree (none is no error).
    pub fn delete_document(&self, doc: &str) -> Result<(), TaskError> {
        storage::delete_all(None, &storage::keys(None, &self.tree(doc))?)?;
        Ok(())
    }
}

/// A document's stored parts, filled as its JSON is written: at most
/// `PART_BYTES` of it each, the first after 4 bytes left for the count.
struct Parts(Vec<Vec<u8>>);

impl io::Write for Parts {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let header = |parts: &[Vec<u8>]| if parts.len() == 1 { 4 } else { 0 };
        let full = |parts: &[Vec<u8>]| match parts.last() {
            Some(last) => last.len() >= PART_BYTES + header(parts),
            None => true,
        };
        if full(&self.0) {
            let start = if self.0.is_empty() {
                vec![0; 4]
            } else {
                Vec::new()
            };
            self.0.push(start);
        }
        let room = PART_BYTES + header(&self.0);
        let Some(last) = self.0.last_mut() else {
            return Ok(0);
        };
        let n = bytes.len().min(room - last.len());
        last.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A document id as one key segment: `%` and `/` escaped.
pub fn escape(doc: &str) -> String {
    doc.replace('%', "%25").replace('/', "%2F")
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentUpsertIn {
    /// The knowledge base's name.
    knowledge_base: String,
    /// The document's id (as the parser gave it).
    #[serde(rename = "doc_id")]
    doc_id: String,
    /// The document tree to keep, as `rag.structural-parser` gives it.
    #[schemars(with = "Map<String, Value>")]
    document_tree: Box<RawValue>,
    /// Its title (wins over `metadata.title`; one of them is needed).
    #[serde(default)]
    title: Option<String>,
    /// More about it: `title`, `sourceUri`, `createdAt`, anything.
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, JsonSchema)]
pub struct DocumentUpsertOut {
    /// The document's id.
    doc_id: String,
}

/// Stores a document tree, replacing the document's earlier one.
pub fn document_upsert(i: DocumentUpsertIn, _: &Context) -> Result<DocumentUpsertOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    if i.doc_id.is_empty() {
        return Err(TaskError::invalid_input("doc_id is required"));
    }
    let mut metadata = i.metadata.unwrap_or_default();
    if let Some(title) = i.title {
        metadata.insert("title".into(), title.into());
    }
    if !metadata.get("title").is_some_and(truthy) {
        return Err(TaskError::invalid_input(
            "title is required: give it as `title` or as `metadata.title`",
        ));
    }
    tree(i.document_tree.get())?;
    let document = Document {
        doc_id: i.doc_id,
        metadata,
        root: i.document_tree,
    };
    kb.save_document(&document)?;
    Ok(DocumentUpsertOut {
        doc_id: document.doc_id,
    })
}

/// JavaScript's truthiness.
pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToDocumentsIn {
    /// The knowledge base's name.
    knowledge_base: String,
    /// Only documents with no chunks yet, to be chunked and embedded
    /// (default true).
    #[serde(default = "yes")]
    only_stale: bool,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToDocumentsOut {
    /// The documents' ids.
    #[serde(rename = "doc_id")]
    doc_id: Vec<String>,
    /// Their trees, by position.
    #[schemars(with = "Vec<Map<String, Value>>")]
    document_tree: Vec<Box<RawValue>>,
    /// Their titles, by position.
    title: Vec<String>,
}

/// The documents of a knowledge base, in the order of their escaped ids'
/// bytes.
pub fn kb_to_documents(i: ToDocumentsIn, _: &Context) -> Result<ToDocumentsOut, TaskError> {
    let kb = Kb::named(&i.knowledge_base)?;
    let mut out = ToDocumentsOut {
        doc_id: Vec::new(),
        document_tree: Vec::new(),
        title: Vec::new(),
    };
    for escaped in kb.escaped_documents()? {
        if i.only_stale && kb.has_chunks(&escaped)? {
            continue;
        }
        let Some(document) = kb.load_document(&unescape(&escaped))? else {
            continue;
        };
        let title = document.metadata.get("title").map(js::string);
        out.title.push(title.unwrap_or_default());
        out.doc_id.push(document.doc_id);
        out.document_tree.push(document.root);
    }
    Ok(out)
}

pub(super) fn unescape(doc: &str) -> String {
    doc.replace("%2F", "/").replace("%25", "%")
}

impl Kb {
    /// The escaped ids of the documents kept, in their bytes' order.
    pub(super) fn escaped_documents(&self) -> Result<Vec<String>, TaskError> {
        let prefix = format!("{}doc/", self.prefix);
        let keys = storage::keys(None, &prefix)?;
        let first_parts = keys.iter().filter_map(|k| k.strip_suffix("/000000"));
        Ok(first_parts.map(|k| k[prefix.len()..].to_string()).collect())
    }

    /// Whether the document whose escaped id is `escaped` has chunks.
    fn has_chunks(&self, escaped: &str) -> Result<bool, TaskError> {
        let prefix = format!("{}chunk/{escaped}/", self.prefix);
        Ok(!storage::list_keys(None, &prefix, None, 1)?.keys.is_empty())
    }
}
