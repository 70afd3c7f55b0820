//! Markdown front matter as Workglow's `FileLoaderTask` reads it: its own
//! small YAML subset (`key: value`, nested maps by indentation, `- item`
//! lists, `[a, b]`, quoted strings, booleans, null, numbers), not full
//! YAML, so that the same file gives the same front matter in both.
use serde_json::{Map, Number, Value};

/// The front matter (between a first line `---` and a line starting `---`)
/// and the body after it; no front matter: the text whole.
pub fn front_matter(content: &str) -> (Option<Map<String, Value>>, String) {
    let trimmed = content.strip_prefix('\u{feff}').unwrap_or(content);
    if !trimmed.starts_with("---\n") && !trimmed.starts_with("---\r\n") {
        return (None, content.to_string());
    }
    let first_end = trimmed.find('\n').map_or(0, |n| n + 1);
    let Some(closing) = trimmed[first_end..].find("\n---").map(|n| n + first_end) else {
        return (None, content.to_string());
    };
    let block = &trimmed[first_end..closing];
    // After `\n---`: one `\r`, one `\n`, then one more line break.
    let mut rest = &trimmed[closing + 4..];
    rest = rest.strip_prefix('\r').unwrap_or(rest);
    rest = rest.strip_prefix('\n').unwrap_or(rest);
    let body = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'));
    (Some(parse(block)), body.unwrap_or(rest).to_string())
}

/// Workglow's `parseSimpleYaml`.
fn parse(yaml: &str) -> Map<String, Value> {
    let lines: Vec<&str> = yaml
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = Map::new();
    let mut i = 0;
    while i < lines.len() {
        i = line(&lines, i, &mut out, 0);
    }
    out
}

fn indent(line: &str) -> usize {
    line.chars().count() - line.trim_start().chars().count()
}

fn skipped(trimmed: &str) -> bool {
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// Workglow's `parseYamlLine`: line `index` into `target` → the next line.
fn line(lines: &[&str], index: usize, target: &mut Map<String, Value>, at: usize) -> usize {
    let Some(text) = lines.get(index) else {
        return index + 1;
    };
    if skipped(text.trim()) {
        return index + 1;
    }
    let own = indent(text);
    if own < at {
        return index;
    }
    // `^(\s*)([^:#]+?)\s*:\s*(.*)?$`: a key before the first `:`, no `#`.
    let Some((key, raw)) = text.split_once(':') else {
        return index + 1;
    };
    if key.is_empty() || key.contains('#') {
        return index + 1;
    }
    let (key, raw) = (key.trim().to_string(), raw.trim());
    if !raw.is_empty() && raw != "|" && raw != ">" {
        target.insert(key, value(raw));
        return index + 1;
    }
    if let Some(next) = lines.get(index + 1) {
        let next_indent = indent(next);
        if next_indent > own && next.trim_start().starts_with("- ") {
            let (list, end) = list(lines, index + 1, next_indent);
            target.insert(key, Value::Array(list));
            return end;
        }
        if next_indent > own {
            let mut nested = Map::new();
            let mut j = index + 1;
            while let Some(l) = lines.get(j) {
                if skipped(l.trim_start()) {
                    j += 1;
                    continue;
                }
                if indent(l) < next_indent {
                    break;
                }
                j = line(lines, j, &mut nested, next_indent);
            }
            target.insert(key, Value::Object(nested));
            return j;
        }
    }
    let scalar = match raw.is_empty() {
        true => Value::Null,
        false => raw.into(),
    };
    target.insert(key, scalar);
    index + 1
}

/// The `- item` lines from `start`, indented at least `at` → the items and
/// the line after them.
fn list(lines: &[&str], start: usize, at: usize) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut j = start;
    while let Some(l) = lines.get(j) {
        let trimmed = l.trim_start();
        if skipped(trimmed) {
            j += 1;
            continue;
        }
        if indent(l) < at {
            break;
        }
        match trimmed.strip_prefix("- ") {
            Some(item) => items.push(value(item.trim())),
            None => break,
        }
        j += 1;
    }
    (items, j)
}

/// Workglow's `parseYamlValue`.
fn value(raw: &str) -> Value {
    let quoted = |q: char| raw.starts_with(q) && raw.ends_with(q);
    if quoted('"') || quoted('\'') {
        let inner = raw.get(1..raw.len().saturating_sub(1).max(1)).unwrap_or("");
        return inner.into();
    }
    match raw {
        "true" | "True" | "TRUE" => return true.into(),
        "false" | "False" | "FALSE" => return false.into(),
        "null" | "~" => return Value::Null,
        _ => {}
    }
    if let Some(n) = number(raw) {
        return n;
    }
    if raw.starts_with('[') && raw.ends_with(']') && raw.len() >= 2 {
        let inner = &raw[1..raw.len() - 1];
        return inner.split(',').map(|item| value(item.trim())).collect();
    }
    raw.into()
}

/// `^-?\d+(\.\d+)?$` as JavaScript's `Number` gives it (integral values
/// written without a fraction, as `JSON.stringify` does).
fn number(raw: &str) -> Option<Value> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let n: f64 = raw.parse().ok()?;
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Some(Value::from(n as i64));
    }
    Number::from_f64(n).map(Value::Number)
}
