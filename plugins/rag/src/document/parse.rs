//! `rag.structural-parser`: a document's text into a tree.
use std::ops::Range;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use weft_sdk::{Context, TaskError};

use super::{Kind, Node, Span};
use crate::chunker::{paragraph_spans, trim};

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// Markdown if a line starts with `#` to `######` and a space.
    #[default]
    Auto,
    /// Sections at `#` headings; the lines between them a paragraph.
    Markdown,
    /// Paragraphs at blank lines.
    Text,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParseIn {
    /// The document's text.
    text: String,
    /// The document's title.
    title: String,
    /// How to read the text (default `auto`).
    #[serde(default)]
    format: Format,
    /// Where the document comes from: its id when `doc_id` is not given.
    #[serde(default)]
    source_uri: Option<String>,
    /// The document's id (default `sourceUri`, else derived from the text).
    #[serde(default, rename = "doc_id")]
    doc_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParseOut {
    /// The document's id.
    #[serde(rename = "doc_id")]
    doc_id: String,
    /// The document, its sections and paragraphs: nodes with `nodeId`,
    /// `kind`, `range` (`startOffset`, `endOffset`), `text`, and `title`,
    /// `level` and `children` where they apply.
    #[schemars(with = "Map<String, Value>")]
    document_tree: Node,
    /// How many nodes the tree has.
    node_count: u64,
}

pub fn structural_parser(i: ParseIn, _: &Context) -> Result<ParseOut, TaskError> {
    let doc_id = [i.doc_id, i.source_uri]
        .into_iter()
        .flatten()
        .find(|id| !id.is_empty())
        .unwrap_or_else(|| derived_id(&i.title, &i.text));
    let units: Vec<u16> = i.text.encode_utf16().collect();
    let markdown = match i.format {
        Format::Auto => looks_like_markdown(&units),
        format => format == Format::Markdown,
    };
    let mut parser = Parser::new(&doc_id, &units, i.title);
    let tree = match markdown {
        true => parser.markdown(),
        false => parser.plain_text(),
    };
    Ok(ParseOut {
        node_count: tree.count(),
        doc_id,
        document_tree: tree,
    })
}

/// `doc-` and the first 16 hex digits of the SHA-256 of `title`, a zero
/// byte and `text`.
pub(crate) fn derived_id(title: &str, text: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(title.as_bytes());
    hash.update([0]);
    hash.update(text.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("doc-{hex}")
}

const NL: u16 = 0x0A;

/// JavaScript's `/^#{1,6}\s/m`: a line (after `\n`, `\r`, U+2028 or
/// U+2029) opening with one to six `#` and white space.
fn looks_like_markdown(units: &[u16]) -> bool {
    let breaks = |u: &u16| matches!(u, 0x0A | 0x0D | 0x2028 | 0x2029);
    units.split(breaks).any(|line| heading(line).is_some())
}

/// A line's heading level and where its title starts: JavaScript's
/// `/^(#{1,6})\s+/`.
fn heading(line: &[u16]) -> Option<(u32, usize)> {
    let hashes = line.iter().take_while(|u| **u == u16::from(b'#')).count();
    let space = line[hashes..]
        .iter()
        .take_while(|u| js::is_space(**u))
        .count();
    ((1..=6).contains(&hashes) && space > 0).then_some((hashes as u32, hashes + space))
}

/// Workglow's `/^(#{1,6})\s+(.*)$/` on one line: a heading's level and
/// title, if the line is one (the title may not hold a line terminator,
/// which `.` does not match).
fn markdown_heading(line: &[u16]) -> Option<(u32, &[u16])> {
    let (level, start) = heading(line)?;
    let title = &line[start..];
    let terminator = |u: &u16| matches!(u, 0x0D | 0x2028 | 0x2029);
    (!title.iter().any(terminator)).then_some((level, title))
}

/// Builds one document's tree.
struct Parser<'a> {
    doc_id: &'a str,
    units: &'a [u16],
    title: String,
    made: u64,
}

impl<'a> Parser<'a> {
    fn new(doc_id: &'a str, units: &'a [u16], title: String) -> Self {
        Parser {
            doc_id,
            units,
            title,
            made: 0,
        }
    }

    fn node(&mut self, kind: Kind, range: Range<usize>, text: String) -> Node {
        let node_id = format!("{}#{}", self.doc_id, self.made);
        self.made += 1;
        Node {
            node_id,
            kind,
            range: Span {
                start_offset: range.start as u64,
                end_offset: range.end as u64,
            },
            level: None,
            title: None,
            text: Some(text),
            children: kind.is_container().then(Vec::new),
            enrichment: None,
        }
    }

    fn root(&mut self) -> Node {
        let title = self.title.clone();
        let mut root = self.node(Kind::Document, 0..self.units.len(), title.clone());
        root.title = Some(title);
        root
    }

    /// Workglow's `parsePlainText`: a paragraph per non-blank piece
    /// between blank lines, trimmed.
    fn plain_text(&mut self) -> Node {
        let mut root = self.root();
        for span in paragraph_spans(self.units) {
            let raw = &self.units[span.clone()];
            let text = trim(raw);
            if text.is_empty() {
                continue;
            }
            let start = span.start + raw.iter().take_while(|u| js::is_space(**u)).count();
            let paragraph = self.node(
                Kind::Paragraph,
                start..start + text.len(),
                String::from_utf16_lossy(text),
            );
            root.push(paragraph);
        }
        root
    }

    /// Workglow's `parseMarkdown`: a section per heading, nested by level;
    /// the lines between two headings one paragraph (trimmed, ending where
    /// the next heading starts).
    fn markdown(&mut self) -> Node {
        let mut root = self.root();
        let mut open: Vec<Node> = Vec::new();
        let mut paragraph_start: Option<usize> = None;
        let mut offset = 0;
        for line in self.units.split(|u| *u == NL) {
            if let Some((level, title)) = markdown_heading(line) {
                let parent = open.last_mut().unwrap_or(&mut root);
                self.paragraph(parent, paragraph_start.take(), offset);
                close_sections(&mut root, &mut open, Some(level), offset);
                let title = String::from_utf16_lossy(title);
                let mut section = self.node(Kind::Section, offset..self.units.len(), title.clone());
                section.level = Some(level);
                section.title = Some(title);
                open.push(section);
            } else {
                paragraph_start.get_or_insert(offset);
            }
            offset += line.len() + 1;
        }
        let parent = open.last_mut().unwrap_or(&mut root);
        self.paragraph(parent, paragraph_start, offset);
        close_sections(&mut root, &mut open, None, self.units.len());
        root
    }

    /// The lines from `start` up to the line break before `end`, as a
    /// paragraph of `parent`, unless blank.
    fn paragraph(&mut self, parent: &mut Node, start: Option<usize>, end: usize) {
        let Some(start) = start else { return };
        let lines = &self.units[start..(end - 1).min(self.units.len())];
        let text = trim(lines);
        if !text.is_empty() {
            let text = String::from_utf16_lossy(text);
            parent.push(self.node(Kind::Paragraph, start..end, text));
        }
    }
}

/// Ends the `open` sections of `level` or deeper (all of them for `None`)
/// at `end`, each into its parent.
fn close_sections(root: &mut Node, open: &mut Vec<Node>, level: Option<u32>, end: usize) {
    let closes = |top: &Node| level.is_none_or(|level| top.level.unwrap_or(0) >= level);
    while open.last().is_some_and(closes) {
        let Some(mut section) = open.pop() else { break };
        section.range.end_offset = end as u64;
        open.last_mut().unwrap_or(&mut *root).push(section);
    }
}
