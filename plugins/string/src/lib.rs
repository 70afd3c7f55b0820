//! Standard tasks: strings, port for port and result for result as
//! Workglow's `String*Task` family (`@workglow/tasks` 0.2.37), whose class
//! names are aliases of these (`StringTrimTask` is `string.trim`).
//!
//! Lengths and positions count UTF-16 code units, as JavaScript's strings
//! do, so `string.length` and `string.slice` give Workglow's answers for
//! text outside the Basic Multilingual Plane too (an emoji is 2 long).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Text {
    /// Input text.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct TextOut {
    /// The resulting text.
    text: String,
}

type Out<T> = Result<T, TaskError>;

fn text(text: String) -> Out<TextOut> {
    Ok(TextOut { text })
}

/// Any ports, each a string.
#[derive(Deserialize, JsonSchema)]
#[serde(transparent)]
struct Parts(Map<String, Value>);

/// Every input port's text, in the order the ports were given.
fn concat(i: Parts, _: &Context) -> Out<TextOut> {
    let mut out = String::new();
    for (port, value) in i.0 {
        match value {
            Value::String(s) => out.push_str(&s),
            other => {
                return Err(TaskError::invalid_input(format!(
                    "port `{port}` must be a string, not {other}"
                )));
            }
        }
    }
    text(out)
}

#[derive(Deserialize, JsonSchema)]
struct Search {
    /// Text to search in.
    text: String,
    /// Substring to find.
    search: String,
}

#[derive(Serialize, JsonSchema)]
struct Included {
    /// Whether `text` contains `search`.
    included: bool,
}

fn includes(i: Search, _: &Context) -> Out<Included> {
    Ok(Included {
        included: i.text.contains(&i.search),
    })
}

#[derive(Deserialize, JsonSchema)]
struct Texts {
    /// The texts to join.
    texts: Vec<String>,
    /// Put between them (default: nothing).
    #[serde(default)]
    separator: String,
}

fn join(i: Texts, _: &Context) -> Out<TextOut> {
    text(i.texts.join(&i.separator))
}

#[derive(Serialize, JsonSchema)]
struct Length {
    /// Its length in UTF-16 code units (JavaScript's `length`).
    length: usize,
}

fn length(i: Text, _: &Context) -> Out<Length> {
    Ok(Length {
        length: i.text.encode_utf16().count(),
    })
}

fn lower_case(i: Text, _: &Context) -> Out<TextOut> {
    text(i.text.to_lowercase())
}

fn upper_case(i: Text, _: &Context) -> Out<TextOut> {
    text(i.text.to_uppercase())
}

#[derive(Deserialize, JsonSchema)]
struct Replace {
    /// Input text.
    text: String,
    /// Substring to replace (every occurrence).
    search: String,
    /// What to put instead.
    replace: String,
}

fn replace(i: Replace, _: &Context) -> Out<TextOut> {
    text(i.text.replace(&i.search, &i.replace))
}

#[derive(Deserialize, JsonSchema)]
struct Slice {
    /// Input text.
    text: String,
    /// Start, in UTF-16 code units; negative counts from the end.
    start: i64,
    /// End (excluded); negative counts from the end; default: the end.
    end: Option<i64>,
}

/// JavaScript's `String.prototype.slice`.
fn slice(i: Slice, _: &Context) -> Out<TextOut> {
    let units: Vec<u16> = i.text.encode_utf16().collect();
    let len = units.len() as i64;
    let at = |k: i64| if k < 0 { (len + k).max(0) } else { k.min(len) } as usize;
    let (from, to) = (at(i.start), at(i.end.unwrap_or(len)));
    text(match from < to {
        true => String::from_utf16_lossy(&units[from..to]),
        false => String::new(),
    })
}

/// JavaScript's `trim`: white space and line terminators, and the BOM.
fn trim(i: Text, _: &Context) -> Out<TextOut> {
    let space = |c: char| c.is_whitespace() || c == '\u{feff}';
    text(i.text.trim_matches(space).to_string())
}

#[derive(Deserialize, JsonSchema)]
struct Template {
    /// Template string with `{{key}}` placeholders.
    template: String,
    /// Key-value pairs to substitute into the template.
    values: Map<String, Value>,
}

/// Each `{{key}}` replaced by its value, key by key in the order given (a
/// value may hold a placeholder a later key fills), values written as
/// JavaScript's `String(value)` writes them.
fn template(i: Template, _: &Context) -> Out<TextOut> {
    let mut out = i.template;
    for (key, value) in &i.values {
        out = out.replace(&format!("{{{{{key}}}}}"), &js::string(value));
    }
    text(out)
}

#[derive(Deserialize, JsonSchema)]
struct RegexIn {
    /// Input string to match against.
    value: String,
    /// Regular expression pattern (JavaScript syntax without lookaround
    /// and backreferences).
    pattern: String,
    /// Regex flags: `g` (all matches), `i`, `m`, `s`, `u`, `d`.
    #[serde(default)]
    flags: String,
}

#[derive(Serialize, JsonSchema)]
struct RegexOut {
    /// Whether the pattern matched.
    #[serde(rename = "match")]
    matched: bool,
    /// With `g`: every whole match. Without: the match, then each group
    /// (`null` for a group that took no part).
    matches: Vec<Option<String>>,
}

/// Workglow's `RegexTask`: JavaScript's `exec` (or `matchAll` with `g`).
/// The engine never backtracks, so no pattern takes more than linear time
/// (Workglow refuses patterns it suspects of it; Weft need not).
fn regex(i: RegexIn, _: &Context) -> Out<RegexOut> {
    let mut builder = regex::RegexBuilder::new(&i.pattern);
    let mut global = false;
    let mut seen = String::new();
    for flag in i.flags.chars() {
        if seen.contains(flag) {
            return Err(TaskError::invalid_input(format!(
                "flag `{flag}` is given twice in `{}`",
                i.flags
            )));
        }
        seen.push(flag);
        match flag {
            'g' => global = true,
            'i' => drop(builder.case_insensitive(true)),
            'm' => drop(builder.multi_line(true)),
            's' => drop(builder.dot_matches_new_line(true)),
            'u' | 'd' => {}
            other => {
                return Err(TaskError::invalid_input(format!(
                    "flag `{other}` is not supported (supported: g, i, m, s, u, d)"
                )));
            }
        }
    }
    let re = builder.size_limit(1 << 20).build().map_err(|e| {
        TaskError::invalid_input(format!(
            "invalid or unsupported pattern `{}`: {e}",
            i.pattern
        ))
    })?;
    let matches: Vec<Option<String>> = if global {
        re.find_iter(&i.value)
            .map(|m| Some(m.as_str().to_string()))
            .collect()
    } else {
        re.captures(&i.value)
            .map(|c| {
                c.iter()
                    .map(|g| g.map(|m| m.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(RegexOut {
        matched: !matches.is_empty(),
        matches,
    })
}

#[derive(Deserialize, JsonSchema)]
struct RenderIn {
    /// Template string with `{{key}}` placeholders; `{{a.b}}` reads inside
    /// objects, `{{key|default}}` gives a default.
    template: String,
    /// Key-value pairs to substitute into the template.
    values: Map<String, Value>,
}

#[derive(Serialize, JsonSchema)]
struct Rendered {
    /// Rendered template string.
    result: String,
}

/// Workglow's `TemplateTask`: each `{{path|default}}` is the value at the
/// dotted `path` in `values` as JavaScript's `String(value)` writes it, or
/// the default (or nothing) when it is missing or null.
fn render(i: RenderIn, _: &Context) -> Out<Rendered> {
    let placeholder =
        regex::Regex::new(r"\{\{([^{}]+)\}\}").map_err(|e| TaskError::failed(e.to_string()))?;
    let values = Value::Object(i.values);
    let result = placeholder.replace_all(&i.template, |c: &regex::Captures<'_>| {
        let mut parts = c[1].split('|').map(str::trim);
        let path = parts.next().unwrap_or_default();
        let default = parts.next();
        let found = path
            .split('.')
            .try_fold(&values, |current, segment| match current {
                Value::Object(m) => m.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|n| items.get(n)),
                _ => None,
            });
        match found {
            Some(v) if !v.is_null() => js::string(v),
            _ => default.unwrap_or_default().to_string(),
        }
    });
    Ok(Rendered {
        result: result.into_owned(),
    })
}

fn tasks() -> Vec<TaskDef> {
    let utility = vec![
        TaskDef::new("string.render", render)
            .title("Render a template")
            .description(
                "Fills `{{path}}` and `{{path|default}}` placeholders in `template` from `values` → result.",
            )
            .category("Utility"),
    ];
    vec![
        TaskDef::new("string.regex", regex)
            .title("Regex")
            .description(
                "Matches `value` against `pattern` (with `flags`; `g` for every match) → match, matches.",
            ),
        TaskDef::new("string.concat", concat)
            .title("Concat")
            .description("Joins the text of every input port, in order → text."),
        TaskDef::new("string.includes", includes)
            .title("Includes")
            .description("Whether `text` contains `search` → included."),
        TaskDef::new("string.join", join)
            .title("Join")
            .description("Joins `texts` with `separator` → text."),
        TaskDef::new("string.length", length)
            .title("Length")
            .description("The length of `text` in UTF-16 code units, as JavaScript → length."),
        TaskDef::new("string.lower-case", lower_case)
            .title("Lower case")
            .description("`text` in lower case → text."),
        TaskDef::new("string.upper-case", upper_case)
            .title("Upper case")
            .description("`text` in upper case → text."),
        TaskDef::new("string.replace", replace)
            .title("Replace")
            .description("Every `search` in `text` replaced with `replace` → text."),
        TaskDef::new("string.slice", slice)
            .title("Slice")
            .description(
                "`text` from `start` to `end` (UTF-16 positions; negative from the end) → text.",
            ),
        TaskDef::new("string.template", template)
            .title("Template")
            .description("Fills `{{key}}` placeholders in `template` from `values` → text."),
        TaskDef::new("string.trim", trim)
            .title("Trim")
            .description("`text` without white space at either end → text."),
    ]
    .into_iter()
    .map(|t| t.category("String"))
    .chain(utility)
    .collect()
}

weft_sdk::export_plugin!(tasks);
