//! `net.file-loader`, Workglow's `FileLoaderTask`: a document fetched from
//! a URL (through the same grants as `net.fetch-url`) and read by its
//! format, step for step as Workglow's: the format from the URL's ending
//! when `auto`; JSON parsed; CSV as rows of named fields (header row, empty
//! lines skipped, the delimiter guessed as Papa Parse does for the common
//! ones); Markdown's front matter read by Workglow's small YAML subset;
//! images and PDFs as base64 `data:` URLs; the rest as text. Sizes count
//! UTF-16 units for text, bytes for binaries.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskError};

use crate::http;

mod yaml;

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Json,
    Csv,
    Pdf,
    Image,
    Html,
    /// From the URL's ending (default).
    #[default]
    Auto,
}

#[derive(Deserialize, JsonSchema)]
pub struct LoadIn {
    /// The URL to load (`http://` or `https://`).
    url: String,
    /// How to read it (default `auto`: by the URL's ending).
    #[serde(default)]
    format: Format,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    url: String,
    format: Format,
    size: u64,
    title: String,
    mime_type: String,
}

#[derive(Serialize, JsonSchema, Default)]
pub struct LoadOut {
    /// The text (Markdown without its front matter).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The parsed JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<Value>,
    /// The CSV's rows, each an object of the header row's names.
    #[serde(skip_serializing_if = "Option::is_none")]
    csv: Option<Vec<Map<String, Value>>>,
    /// The image as a `data:` URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    /// The PDF as a `data:` URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pdf: Option<String>,
    /// Markdown's front matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    frontmatter: Option<Map<String, Value>>,
    /// Where it came from and what it is.
    metadata: Option<Metadata>,
}

pub fn file_loader(i: LoadIn, _: &Context) -> Result<LoadOut, TaskError> {
    let format = match i.format {
        Format::Auto => detect(&i.url),
        format => format,
    };
    let response = http::send("GET", &i.url, &Default::default(), None, None)?;
    crate::refuse_errors(&i.url, &response)?;
    let content_type = response.headers.get("content-type").cloned();
    let content_type = content_type.filter(|c| !c.is_empty());
    let (mut out, size, mime) = read(&i.url, format, response.body, content_type)?;
    let title = i.url.rsplit('/').next().filter(|t| !t.is_empty());
    out.metadata = Some(Metadata {
        title: title.unwrap_or(&i.url).to_string(),
        url: i.url,
        format,
        size,
        mime_type: mime,
    });
    Ok(out)
}

/// Workglow's `detectFormat`.
fn detect(url: &str) -> Format {
    let url = url.to_lowercase();
    let ends = |endings: &[&str]| endings.iter().any(|e| url.ends_with(e));
    if ends(&[".md", ".mdx", ".markdown"]) {
        Format::Markdown
    } else if ends(&[".json"]) {
        Format::Json
    } else if ends(&[".csv"]) {
        Format::Csv
    } else if ends(&[".pdf"]) {
        Format::Pdf
    } else if ends(&[
        ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".svg", ".ico",
    ]) {
        Format::Image
    } else if ends(&[".html", ".htm"]) {
        Format::Html
    } else {
        Format::Text
    }
}

/// The body read as `format` → the output, its size and its MIME type.
fn read(
    url: &str,
    format: Format,
    body: Vec<u8>,
    content_type: Option<String>,
) -> Result<(LoadOut, u64, String), TaskError> {
    let mime = |default: &str| content_type.clone().unwrap_or_else(|| default.to_string());
    let mut out = LoadOut::default();
    match format {
        Format::Json => {
            let json: Value = serde_json::from_slice(&body)
                .map_err(|_| TaskError::failed(format!("Failed to load JSON from {url}")))?;
            let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
            out.json = Some(json);
            Ok((out, js::length(&pretty) as u64, mime("application/json")))
        }
        Format::Csv => {
            let text = String::from_utf8_lossy(&body);
            if text.is_empty() {
                return Err(TaskError::failed(format!("Failed to load CSV from {url}")));
            }
            out.csv = Some(rows(&text)?);
            Ok((out, js::length(&text) as u64, mime("text/csv")))
        }
        Format::Image | Format::Pdf => {
            let mime = match (format, content_type.clone()) {
                (_, Some(t)) => t,
                (Format::Pdf, None) => "application/pdf".into(),
                _ => image_type(url).into(),
            };
            let url = data_url(&mime, &body);
            match format {
                Format::Pdf => out.pdf = Some(url),
                _ => out.image = Some(url),
            }
            Ok((out, body.len() as u64, mime))
        }
        Format::Markdown | Format::Html | Format::Text | Format::Auto => {
            let text = String::from_utf8_lossy(&body).into_owned();
            let size = js::length(&text) as u64;
            let mime = mime(match format {
                Format::Markdown => "text/markdown",
                Format::Html => "text/html",
                _ => "text/plain",
            });
            if format == Format::Markdown {
                let (frontmatter, text) = yaml::front_matter(&text);
                out.frontmatter = frontmatter;
                out.text = Some(text);
            } else {
                out.text = Some(text);
            }
            Ok((out, size, mime))
        }
    }
}

/// Workglow's `getImageMimeType`.
fn image_type(url: &str) -> &'static str {
    let url = url.to_lowercase();
    let types = [
        (".png", "image/png"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".svg", "image/svg+xml"),
        (".bmp", "image/bmp"),
        (".ico", "image/x-icon"),
    ];
    let found = types.iter().find(|(ending, _)| url.ends_with(ending));
    found.map_or("image/jpeg", |(_, mime)| mime)
}

fn data_url(mime: &str, body: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    format!("data:{mime};base64,{encoded}")
}

/// Papa Parse with `header: true, skipEmptyLines: true` and trimmed
/// header names: a row per record, its fields by name (strings); fields
/// past the header's are `__parsed_extra`.
fn rows(text: &str) -> Result<Vec<Map<String, Value>>, TaskError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let bad = |e: csv::Error| TaskError::invalid_input(format!("Failed to parse CSV: {e}"));
    let Some(header) = records.next().transpose().map_err(bad)? else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    let mut out = Vec::new();
    for record in records {
        let record = record.map_err(bad)?;
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        let mut row = Map::new();
        let mut extra = Vec::new();
        for (n, field) in record.iter().enumerate() {
            match names.get(n) {
                Some(name) => drop(row.insert(name.clone(), field.into())),
                None => extra.push(Value::from(field)),
            }
        }
        if !extra.is_empty() {
            row.insert("__parsed_extra".into(), extra.into());
        }
        out.push(row);
    }
    Ok(out)
}

/// Papa Parse's guess among `,`, tab, `|` and `;`: the one that splits the
/// first lines into the same number (more than one) of fields; `,` if none.
fn delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).take(10).collect();
    let mut best = (b',', usize::MAX);
    for candidate in [b',', b'\t', b'|', b';'] {
        let counts: Vec<usize> = lines
            .iter()
            .map(|l| l.bytes().filter(|b| *b == candidate).count() + 1)
            .collect();
        let Some(&first) = counts.first() else { break };
        if first < 2 {
            continue;
        }
        let spread = counts.iter().map(|c| c.abs_diff(first)).sum::<usize>();
        if spread < best.1 {
            best = (candidate, spread);
        }
    }
    best.0
}
