//! Workglow's `TextChunkerTask` strategies, step for step, on UTF-16 code
//! units.
use std::ops::Range;

use js::is_space;

/// A chunk: its text and where it came from (`end` is where its untrimmed
/// text ends).
pub struct Piece {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

fn string(units: &[u16]) -> String {
    String::from_utf16_lossy(units)
}

/// JavaScript's `trim`.
pub fn trim(units: &[u16]) -> &[u16] {
    let start = units
        .iter()
        .position(|u| !is_space(*u))
        .unwrap_or(units.len());
    let end = units
        .iter()
        .rposition(|u| !is_space(*u))
        .map_or(start, |e| e + 1);
    &units[start..end]
}

fn piece(chunk: &[u16], start: usize) -> Piece {
    Piece {
        text: string(trim(chunk)),
        start,
        end: start + chunk.len(),
    }
}

pub fn fixed(units: &[u16], size: usize, overlap: usize) -> Vec<Piece> {
    let step = size.saturating_sub(overlap).max(1);
    (0..units.len())
        .step_by(step)
        .map(|start| {
            let end = (start + size).min(units.len());
            Piece {
                text: string(&units[start..end]),
                start,
                end,
            }
        })
        .collect()
}

/// The sentences of `units`, each with where it starts: up to and with
/// each run of `.`, `!`, `?` followed by white space (and that space), and
/// the rest.
fn sentences(units: &[u16]) -> Vec<(usize, &[u16])> {
    let punct = |u: u16| matches!(u, 0x2E | 0x21 | 0x3F);
    let mut out = Vec::new();
    let (mut last, mut i) = (0, 0);
    while i < units.len() {
        if !punct(units[i]) {
            i += 1;
            continue;
        }
        let run_end = i + units[i..].iter().take_while(|u| punct(**u)).count();
        let space_end = run_end
            + units[run_end..]
                .iter()
                .take_while(|u| is_space(**u))
                .count();
        if space_end > run_end {
            out.push((last, &units[last..space_end]));
            last = space_end;
        }
        i = space_end.max(run_end);
    }
    if last < units.len() {
        out.push((last, &units[last..]));
    }
    out
}

pub fn by_sentence(units: &[u16], size: usize, overlap: usize) -> Vec<Piece> {
    let sentences = sentences(units);
    let mut chunks = Vec::new();
    let mut current: Vec<u16> = Vec::new();
    let mut start = 0;
    for (i, (sentence_start, sentence)) in sentences.iter().enumerate() {
        if !current.is_empty() && current.len() + sentence.len() > size {
            chunks.push(piece(&current, start));
            if overlap > 0 {
                let mut kept: Vec<u16> = Vec::new();
                let mut j = i;
                while j > 0 && kept.len() < overlap {
                    j -= 1;
                    kept.splice(0..0, sentences[j].1.iter().copied());
                }
                start = sentences[j].0;
                current = kept;
                current.extend_from_slice(sentence);
            } else {
                current = sentence.to_vec();
                start = *sentence_start;
            }
        } else {
            if current.is_empty() {
                start = *sentence_start;
            }
            current.extend_from_slice(sentence);
        }
    }
    if !current.is_empty() {
        chunks.push(piece(&current, start));
    }
    chunks
}

/// The paragraphs of `units`: split at a line break followed by blank
/// space up to another line break (`/\n\s*\n/`), blank ones left out.
fn paragraphs(units: &[u16]) -> Vec<&[u16]> {
    let mut out: Vec<&[u16]> = paragraph_spans(units)
        .into_iter()
        .map(|span| &units[span])
        .collect();
    out.retain(|p| !trim(p).is_empty());
    out
}

/// Where `units` splits at `/\n\s*\n/`: every piece between the
/// separators, blank ones too, in order.
pub fn paragraph_spans(units: &[u16]) -> Vec<Range<usize>> {
    const NL: u16 = 0x0A;
    let mut out = Vec::new();
    let (mut last, mut p) = (0, 0);
    while p < units.len() {
        if units[p] != NL {
            p += 1;
            continue;
        }
        let run = units[p + 1..].iter().take_while(|u| is_space(**u)).count();
        match units[p + 1..p + 1 + run].iter().rposition(|u| *u == NL) {
            Some(r) => {
                out.push(last..p);
                last = p + 1 + r + 1;
                p = last;
            }
            None => p += 1,
        }
    }
    out.push(last..units.len());
    out
}

/// Where `needle` first occurs in `haystack` at or after `from`
/// (`indexOf`); `None` for JavaScript's -1.
fn index_of(haystack: &[u16], needle: &[u16], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from.min(haystack.len()));
    }
    (from..=haystack.len().saturating_sub(needle.len()))
        .find(|&i| haystack[i..].starts_with(needle))
}

pub fn by_paragraph(units: &[u16], size: usize, overlap: usize) -> Vec<Piece> {
    const NL: u16 = 0x0A;
    let paragraphs: Vec<&[u16]> = paragraphs(units).into_iter().map(trim).collect();
    let mut chunks = Vec::new();
    let mut current: Vec<u16> = Vec::new();
    // Signed: JavaScript's positions may go below 0 here (an overlap longer
    // than what precedes), and `indexOf` may give -1.
    let mut start: i64 = 0;
    let mut position: i64 = 0;
    for (i, paragraph) in paragraphs.iter().enumerate() {
        let paragraph_start =
            index_of(units, paragraph, position.max(0) as usize).map_or(-1, |p| p as i64);
        position = paragraph_start + paragraph.len() as i64;
        if !current.is_empty() && current.len() + paragraph.len() + 2 > size {
            chunks.push(signed_piece(&current, start));
            if overlap > 0 && i > 0 {
                let mut kept: Vec<u16> = Vec::new();
                let mut j = i;
                while j > 0 && kept.len() < overlap {
                    j -= 1;
                    let mut front = paragraphs[j].to_vec();
                    front.extend([NL, NL]);
                    kept.splice(0..0, front);
                }
                start = paragraph_start - kept.len() as i64;
                current = kept;
                current.extend_from_slice(paragraph);
            } else {
                current = paragraph.to_vec();
                start = paragraph_start;
            }
        } else if current.is_empty() {
            start = paragraph_start;
            current = paragraph.to_vec();
        } else {
            current.extend([NL, NL]);
            current.extend_from_slice(paragraph);
        }
    }
    if !current.is_empty() {
        chunks.push(signed_piece(&current, start));
    }
    chunks
}

/// A piece whose start JavaScript may have put before the text (an
/// overlap longer than what precedes it): clamped at 0.
fn signed_piece(chunk: &[u16], start: i64) -> Piece {
    piece(chunk, start.max(0) as usize)
}
