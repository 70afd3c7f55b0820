//! Standard tasks: text processing (`text.*`).
use std::collections::BTreeMap;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError, Value, json};

#[derive(Deserialize, JsonSchema)]
struct SplitIn {
    /// The text to split.
    text: String,
    /// Separator (default: a newline). An empty separator splits into characters.
    #[serde(default = "newline")]
    separator: String,
    /// Trim whitespace around each part (default false).
    #[serde(default)]
    trim: bool,
    /// Drop parts that are empty (after trimming) (default false).
    #[serde(default)]
    skip_empty: bool,
}

fn newline() -> String {
    "\n".to_string()
}

#[derive(Serialize, JsonSchema)]
struct SplitOut {
    /// The parts, in order.
    parts: Vec<String>,
    /// How many parts.
    count: usize,
}

fn split(input: SplitIn, _: &Context) -> Result<SplitOut, TaskError> {
    let raw: Vec<&str> = if input.separator.is_empty() {
        input.text.split_terminator("").skip(1).collect()
    } else {
        input.text.split(input.separator.as_str()).collect()
    };
    let parts: Vec<String> = raw
        .into_iter()
        .map(|p| if input.trim { p.trim() } else { p })
        .filter(|p| !(input.skip_empty && p.is_empty()))
        .map(str::to_string)
        .collect();
    Ok(SplitOut {
        count: parts.len(),
        parts,
    })
}

#[derive(Deserialize, JsonSchema)]
struct JoinIn {
    /// The parts to join.
    parts: Vec<String>,
    /// Put between parts (default: empty).
    #[serde(default)]
    separator: String,
}

#[derive(Serialize, JsonSchema)]
struct TextOut {
    /// The resulting text.
    text: String,
}

fn join(input: JoinIn, _: &Context) -> Result<TextOut, TaskError> {
    Ok(TextOut {
        text: input.parts.join(&input.separator),
    })
}

/// Looks up a dotted path (`a.b.0`) in a JSON value.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn template(input: Value, _: &Context) -> Result<TextOut, TaskError> {
    let tpl = input
        .get("template")
        .and_then(Value::as_str)
        .ok_or_else(|| TaskError::invalid_input("`template` must be a string"))?;
    let mut out = String::with_capacity(tpl.len());
    let mut rest = tpl;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            TaskError::invalid_input(format!(
                "unclosed `{{{{` at byte {} of the template",
                tpl.len() - rest.len() + start
            ))
        })?;
        let name = after[..end].trim();
        let value = lookup(&input, name).ok_or_else(|| {
            TaskError::invalid_input(format!(
                "template placeholder `{{{{{name}}}}}` has no value in the input"
            ))
        })?;
        match value {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(TextOut { text: out })
}

fn compile(pattern: &str) -> Result<Regex, TaskError> {
    Regex::new(pattern)
        .map_err(|e| TaskError::invalid_input(format!("bad regular expression: {e}")))
}

#[derive(Deserialize, JsonSchema)]
struct MatchIn {
    /// The text to search.
    text: String,
    /// A regular expression (Rust `regex` syntax).
    pattern: String,
}

#[derive(Serialize, JsonSchema)]
struct Match {
    /// The matched text.
    text: String,
    /// Byte offset where the match starts.
    start: usize,
    /// Byte offset where the match ends.
    end: usize,
    /// Capture groups 1.., null where a group did not take part.
    groups: Vec<Option<String>>,
    /// Named capture groups.
    named: BTreeMap<String, Option<String>>,
}

#[derive(Serialize, JsonSchema)]
struct MatchOut {
    /// Whether the pattern matched at least once.
    matched: bool,
    /// Every non-overlapping match, in order.
    matches: Vec<Match>,
}

fn regex_match(input: MatchIn, _: &Context) -> Result<MatchOut, TaskError> {
    let re = compile(&input.pattern)?;
    let names: Vec<&str> = re.capture_names().flatten().collect();
    let matches: Vec<Match> = re
        .captures_iter(&input.text)
        .map(|c| {
            let whole = c.get(0).expect("group 0 always exists");
            Match {
                text: whole.as_str().to_string(),
                start: whole.start(),
                end: whole.end(),
                groups: c
                    .iter()
                    .skip(1)
                    .map(|g| g.map(|m| m.as_str().to_string()))
                    .collect(),
                named: names
                    .iter()
                    .map(|n| (n.to_string(), c.name(n).map(|m| m.as_str().to_string())))
                    .collect(),
            }
        })
        .collect();
    Ok(MatchOut {
        matched: !matches.is_empty(),
        matches,
    })
}

#[derive(Deserialize, JsonSchema)]
struct ReplaceIn {
    /// The text to change.
    text: String,
    /// A regular expression (Rust `regex` syntax).
    pattern: String,
    /// The replacement; `$1`, `${name}` refer to capture groups.
    replacement: String,
    /// Replace every match (default true) or only the first.
    #[serde(default = "yes")]
    all: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, JsonSchema)]
struct ReplaceOut {
    /// The text after replacement.
    text: String,
    /// How many matches were replaced.
    replacements: usize,
}

fn regex_replace(input: ReplaceIn, _: &Context) -> Result<ReplaceOut, TaskError> {
    let re = compile(&input.pattern)?;
    let found = re.find_iter(&input.text).count();
    let (text, replacements) = if input.all {
        (
            re.replace_all(&input.text, input.replacement.as_str()),
            found,
        )
    } else {
        (
            re.replace(&input.text, input.replacement.as_str()),
            found.min(1),
        )
    };
    Ok(ReplaceOut {
        text: text.into_owned(),
        replacements,
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("text.split", split)
            .title("Split text")
            .description("Splits `text` on `separator` into `parts`."),
        TaskDef::new("text.join", join)
            .title("Join text")
            .description("Joins `parts` with `separator` into one `text`."),
        TaskDef::new("text.template", template)
            .title("Fill a template")
            .description(
                "Fills `{{name}}` placeholders in `template` from the other input ports \
                 (dotted paths reach into objects and arrays: `{{user.name}}`, `{{items.0}}`).",
            )
            .input_schema(json!({
                "type": "object",
                "properties": { "template": { "type": "string", "description": "Text with {{name}} placeholders." } },
                "required": ["template"],
                "additionalProperties": true
            })),
        TaskDef::new("text.regex-match", regex_match)
            .title("Match a regular expression")
            .description("Finds every match of `pattern` in `text`, with capture groups."),
        TaskDef::new("text.regex-replace", regex_replace)
            .title("Replace by regular expression")
            .description("Replaces matches of `pattern` in `text` with `replacement`."),
    ]
}

weft_sdk::export_plugin!(tasks);
