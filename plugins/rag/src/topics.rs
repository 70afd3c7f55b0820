//! `rag.topic-segmenter`, Workglow's `TopicSegmenterTask`: paragraphs
//! grouped into segments by size and topic changes, step for step as
//! Workglow's, on UTF-16 positions.
//!
//! `heuristic` (and `hybrid`, as in Workglow) starts a segment at a
//! paragraph opening with a transition word (`However`, `Finally`, `2.`…);
//! `embedding-similarity` where two paragraphs' hashed bags of words are
//! less similar than `similarityThreshold`. Neither calls a model.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskError};

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Method {
    /// Transition words.
    #[default]
    Heuristic,
    /// Word-hash similarity of neighbouring paragraphs.
    EmbeddingSimilarity,
    /// As `heuristic` (as in Workglow).
    Hybrid,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicsIn {
    /// The text to segment (paragraphs are separated by blank lines).
    text: String,
    /// How to find topic changes (default `heuristic`).
    #[serde(default)]
    method: Method,
    /// The fewest characters a segment has before it may end (default 100).
    #[serde(default = "hundred")]
    #[schemars(range(min = 50))]
    min_segment_size: f64,
    /// The most characters a segment grows to, unless one paragraph is
    /// longer (default 2000).
    #[serde(default = "two_thousand")]
    #[schemars(range(min = 100))]
    max_segment_size: f64,
    /// Below this similarity a new segment starts (0–1, default 0.5).
    #[serde(default = "half")]
    #[schemars(range(min = 0, max = 1))]
    similarity_threshold: f64,
}

fn hundred() -> f64 {
    100.0
}
fn two_thousand() -> f64 {
    2000.0
}
fn half() -> f64 {
    0.5
}

#[derive(Serialize, JsonSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    text: String,
    start_offset: usize,
    end_offset: usize,
}

#[derive(Serialize, JsonSchema)]
pub struct TopicsOut {
    /// The segments, in order.
    segments: Vec<Segment>,
    /// How many.
    count: u32,
}

/// A paragraph: its trimmed text and where it starts (UTF-16 units).
struct Paragraph {
    text: String,
    units: usize,
    offset: usize,
}

pub fn topic_segmenter(i: TopicsIn, _: &Context) -> Result<TopicsOut, TaskError> {
    let paragraphs = paragraphs(&i.text);
    let by_words = i.method == Method::EmbeddingSimilarity;
    let bags: Vec<Bag> = match by_words {
        true => paragraphs.iter().map(|p| Bag::of(&p.text)).collect(),
        false => Vec::new(),
    };
    let (min, max) = (i.min_segment_size, i.max_segment_size);
    let mut segments = Vec::new();
    let mut current: Vec<&Paragraph> = Vec::new();
    let mut size = 0usize;
    for (index, paragraph) in paragraphs.iter().enumerate() {
        let full = (size + paragraph.units) as f64 > max && size as f64 >= min;
        let topic = match by_words {
            true => {
                index > 0
                    && size as f64 >= min
                    && bags[index - 1].cosine(&bags[index]) < i.similarity_threshold
            }
            false => false,
        };
        if (full || topic) && !current.is_empty() {
            segments.push(segment(&current));
            (current, size) = (Vec::new(), 0);
        }
        if !by_words && transition(&paragraph.text) && size as f64 >= min && !current.is_empty() {
            segments.push(segment(&current));
            (current, size) = (Vec::new(), 0);
        }
        current.push(paragraph);
        size += paragraph.units;
    }
    if !current.is_empty() {
        segments.push(segment(&current));
    }
    let segments = merge_small(segments, min);
    Ok(TopicsOut {
        count: segments.len() as u32,
        segments,
    })
}

/// JavaScript's `text.split(/\n\s*\n/)`, each piece trimmed, empty ones
/// dropped.
fn paragraphs(text: &str) -> Vec<Paragraph> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut p = 0;
    while p < units.len() {
        if units[p] == u16::from(b'\n') {
            let run = units[p + 1..]
                .iter()
                .take_while(|u| js::is_space(**u))
                .count();
            let last = units[p + 1..p + 1 + run]
                .iter()
                .rposition(|u| *u == u16::from(b'\n'));
            if let Some(last) = last {
                out.extend(paragraph(&units[start..p], start));
                start = p + 1 + last + 1;
                p = start;
                continue;
            }
        }
        p += 1;
    }
    out.extend(paragraph(&units[start..], start));
    out
}

fn paragraph(piece: &[u16], start: usize) -> Option<Paragraph> {
    let lead = piece.iter().position(|u| !js::is_space(*u))?;
    let end = piece
        .iter()
        .rposition(|u| !js::is_space(*u))
        .map_or(lead, |e| e + 1);
    Some(Paragraph {
        text: String::from_utf16_lossy(&piece[lead..end]),
        units: end - lead,
        offset: start + lead,
    })
}

/// Workglow's transition markers: `/^(however|…)/i`, `/^(first|…)/i`,
/// `/^\d+\./`.
fn transition(text: &str) -> bool {
    const WORDS: [&str; 17] = [
        "however",
        "therefore",
        "thus",
        "consequently",
        "in conclusion",
        "in summary",
        "furthermore",
        "moreover",
        "additionally",
        "meanwhile",
        "nevertheless",
        "on the other hand",
        "first",
        "second",
        "third",
        "finally",
        "lastly",
    ];
    let starts = |w: &str| {
        text.get(..w.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(w))
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    WORDS.iter().any(|w| starts(w)) || (digits > 0 && text.as_bytes().get(digits) == Some(&b'.'))
}

fn segment(paragraphs: &[&Paragraph]) -> Segment {
    let first = paragraphs[0];
    let last = paragraphs[paragraphs.len() - 1];
    Segment {
        text: paragraphs
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
        start_offset: first.offset,
        end_offset: last.offset + last.units,
    }
}

/// Segments shorter than `min` joined to the next one (or, the last, to
/// the one before), as Workglow's `mergeSmallSegments`.
fn merge_small(segments: Vec<Segment>, min: f64) -> Vec<Segment> {
    if segments.len() <= 1 {
        return segments;
    }
    let small = |s: &Segment| (js::length(&s.text) as f64) < min;
    let join = |a: &Segment, b: &Segment| Segment {
        text: format!("{}\n\n{}", a.text, b.text),
        start_offset: a.start_offset,
        end_offset: b.end_offset,
    };
    let mut merged: Vec<Segment> = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let current = &segments[i];
        if small(current) && i + 1 < segments.len() {
            merged.push(join(current, &segments[i + 1]));
            i += 2;
        } else if let (true, Some(previous)) = (small(current), merged.last_mut()) {
            *previous = join(previous, current);
            i += 1;
        } else {
            merged.push(current.clone());
            i += 1;
        }
    }
    merged
}

/// Workglow's paragraph "embedding": its lower-cased `[a-z0-9]+` words
/// hashed (FNV-1a) into 256 counts.
struct Bag {
    counts: Vec<f32>,
    norm: f64,
}

impl Bag {
    const DIMENSIONS: u32 = 256;

    fn of(text: &str) -> Bag {
        let mut counts = vec![0f32; Self::DIMENSIONS as usize];
        let lower = text.to_lowercase();
        let words = lower
            .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
            .filter(|w| !w.is_empty());
        for word in words {
            let hash = word.bytes().fold(2_166_136_261u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(16_777_619)
            });
            counts[(hash % Self::DIMENSIONS) as usize] += 1.0;
        }
        let squares: f64 = counts.iter().map(|c| f64::from(*c) * f64::from(*c)).sum();
        Bag {
            counts,
            norm: squares.sqrt(),
        }
    }

    fn cosine(&self, other: &Bag) -> f64 {
        if self.norm == 0.0 || other.norm == 0.0 {
            return 0.0;
        }
        let dot: f64 = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        dot / (self.norm * other.norm)
    }
}
