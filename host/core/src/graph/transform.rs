//! Edge transforms: a dataflow may change its value on the way, with
//! `"transforms": [{"id": "pick", "params": {"path": "user.name"}}, …]`,
//! applied in order. The set is Workglow's built-ins, with its ids, params and
//! behaviour (strings are sliced by characters, not UTF-16 units).
//!
//! Each transform is compiled when the graph is validated (an unknown id or a
//! bad param is a located error) and knows the schema it gives for the schema
//! it gets, so validation checks a transformed dataflow against its target.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A transform as written in graph JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// Which transform (`pick`, `uppercase`, …).
    pub id: String,
    /// Its parameters, if it takes any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// The transforms there are, for listings and error messages.
pub const TRANSFORMS: [&str; 13] = [
    "coalesce",
    "unixToIsoDate",
    "isoDateToUnix",
    "index",
    "pick",
    "numberToString",
    "toBoolean",
    "stringify",
    "parseJson",
    "uppercase",
    "lowercase",
    "truncate",
    "substring",
];

/// A compiled transform.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `null` becomes `default_value`.
    Coalesce(Value),
    /// Seconds (or milliseconds) since the epoch → an ISO 8601 UTC string.
    UnixToIsoDate {
        /// Whether the number counts milliseconds.
        millis: bool,
    },
    /// An ISO 8601 date → milliseconds since the epoch.
    IsoDateToUnix,
    /// One element of an array (negative: from the end).
    Index(i64),
    /// A value at a dotted path.
    Pick(Vec<String>),
    /// A number as JavaScript prints it.
    NumberToString,
    /// `true`, `1`, `"true"`, `"1"`, … → a boolean.
    ToBoolean,
    /// The value as compact JSON text.
    Stringify,
    /// JSON text → the value.
    ParseJson,
    /// Upper case.
    Uppercase,
    /// Lower case.
    Lowercase,
    /// The first `max` characters.
    Truncate(usize),
    /// Characters `start..end` (negative: from the end).
    Substring {
        /// First character.
        start: i64,
        /// One past the last, if given.
        end: Option<i64>,
    },
}

/// A transform that failed on the value it got.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("transform `{id}`: {message}")]
pub struct TransformError {
    /// The transform.
    pub id: &'static str,
    /// What was wrong with the value.
    pub message: String,
}

impl Step {
    /// Compile `t`, or say what is wrong with it.
    pub fn compile(t: &Transform) -> Result<Step, String> {
        let params = t.params.as_ref().and_then(Value::as_object);
        let param = |name: &str| params.and_then(|p| p.get(name));
        let int = |name: &str| -> Result<i64, String> {
            param(name)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("`{}` needs an integer param `{name}`", t.id))
        };
        Ok(match t.id.as_str() {
            "coalesce" => Step::Coalesce(
                param("defaultValue")
                    .cloned()
                    .ok_or("`coalesce` needs a param `defaultValue`")?,
            ),
            "unixToIsoDate" => match param("unit").and_then(Value::as_str) {
                Some("s") => Step::UnixToIsoDate { millis: false },
                Some("ms") => Step::UnixToIsoDate { millis: true },
                _ => return Err("`unixToIsoDate` needs a param `unit`: \"s\" or \"ms\"".into()),
            },
            "isoDateToUnix" => Step::IsoDateToUnix,
            "index" => Step::Index(int("index")?),
            "pick" => match param("path").and_then(Value::as_str) {
                Some(path) if !path.is_empty() => {
                    Step::Pick(path.split('.').map(str::to_string).collect())
                }
                _ => return Err("`pick` needs a string param `path`".into()),
            },
            "numberToString" => Step::NumberToString,
            "toBoolean" => Step::ToBoolean,
            "stringify" => Step::Stringify,
            "parseJson" => Step::ParseJson,
            "uppercase" => Step::Uppercase,
            "lowercase" => Step::Lowercase,
            "truncate" => Step::Truncate(
                usize::try_from(int("max")?).map_err(|_| "`truncate`'s `max` must be ≥ 0")?,
            ),
            "substring" => Step::Substring {
                start: int("start")?,
                end: param("end").map(|_| int("end")).transpose()?,
            },
            other => {
                return Err(format!(
                    "unknown transform `{other}` (transforms: {})",
                    TRANSFORMS.join(", ")
                ));
            }
        })
    }

    /// Its id, as written.
    pub fn id(&self) -> &'static str {
        match self {
            Step::Coalesce(_) => "coalesce",
            Step::UnixToIsoDate { .. } => "unixToIsoDate",
            Step::IsoDateToUnix => "isoDateToUnix",
            Step::Index(_) => "index",
            Step::Pick(_) => "pick",
            Step::NumberToString => "numberToString",
            Step::ToBoolean => "toBoolean",
            Step::Stringify => "stringify",
            Step::ParseJson => "parseJson",
            Step::Uppercase => "uppercase",
            Step::Lowercase => "lowercase",
            Step::Truncate(_) => "truncate",
            Step::Substring { .. } => "substring",
        }
    }

    /// The schema of what it gives, for a value of schema `input`.
    pub fn output_schema(&self, input: &Value) -> Value {
        match self {
            Step::Coalesce(_) => not_null(input),
            Step::UnixToIsoDate { .. } => json!({"type": "string", "format": "date-time"}),
            Step::IsoDateToUnix => json!({"type": "number"}),
            Step::Index(_) => match input.get("items") {
                Some(items) if input.get("type") == Some(&json!("array")) => items.clone(),
                _ => json!({}),
            },
            Step::Pick(path) => path
                .iter()
                .try_fold(input, |s, key| s.get("properties")?.get(key))
                .cloned()
                .unwrap_or_else(|| json!({})),
            Step::ToBoolean => json!({"type": "boolean"}),
            Step::ParseJson => json!({}),
            _ => json!({"type": "string"}),
        }
    }

    /// Apply it to `v`.
    pub fn apply(&self, v: Value) -> Result<Value, TransformError> {
        let fail = |message: String| TransformError {
            id: self.id(),
            message,
        };
        Ok(match self {
            Step::Coalesce(default) if v.is_null() => default.clone(),
            Step::Coalesce(_) => v,
            Step::UnixToIsoDate { millis } => {
                let n = v.as_f64().ok_or_else(|| {
                    fail(format!(
                        "expected a number, got {}",
                        crate::task::kind_of(&v)
                    ))
                })?;
                let ms = if *millis { n } else { n * 1000.0 };
                let ts = jiff::Timestamp::from_millisecond(ms as i64)
                    .map_err(|e| fail(format!("{n} is not a time: {e}")))?;
                Value::String(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            }
            Step::IsoDateToUnix => {
                let text = v.as_str().ok_or_else(|| {
                    fail(format!(
                        "expected a string, got {}",
                        crate::task::kind_of(&v)
                    ))
                })?;
                json!(iso_to_millis(text).ok_or_else(|| fail(format!(
                    "\"{}\" is not an ISO 8601 date",
                    text.chars().take(64).collect::<String>()
                )))?)
            }
            Step::Index(i) => match v {
                Value::Array(mut items) => {
                    let len = items.len() as i64;
                    let at = if *i < 0 { len + i } else { *i };
                    if (0..len).contains(&at) {
                        items.swap_remove(at as usize)
                    } else {
                        Value::Null
                    }
                }
                _ => Value::Null,
            },
            Step::Pick(path) => path
                .iter()
                .try_fold(&v, |v, key| v.as_object()?.get(key))
                .cloned()
                .unwrap_or(Value::Null),
            Step::NumberToString => Value::String(js_string(&v)),
            Step::ToBoolean => Value::Bool(match &v {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => s.eq_ignore_ascii_case("true") || s == "1",
                Value::Null => false,
                _ => true,
            }),
            Step::Stringify => Value::String(v.to_string()),
            Step::ParseJson => {
                serde_json::from_str(&js_string(&v)).map_err(|e| fail(format!("not JSON: {e}")))?
            }
            Step::Uppercase => Value::String(text_of(&v).to_uppercase()),
            Step::Lowercase => Value::String(text_of(&v).to_lowercase()),
            Step::Truncate(max) => Value::String(text_of(&v).chars().take(*max).collect()),
            Step::Substring { start, end } => {
                let chars: Vec<char> = text_of(&v).chars().collect();
                let len = chars.len() as i64;
                let at = |i: i64| (if i < 0 { len + i } else { i }).clamp(0, len) as usize;
                let (from, to) = (at(*start), end.map_or(chars.len(), at));
                Value::String(
                    chars
                        .get(from..to.max(from))
                        .unwrap_or(&[])
                        .iter()
                        .collect(),
                )
            }
        })
    }
}

/// Apply `steps` in order.
pub fn apply_all(steps: &[Step], v: Value) -> Result<Value, TransformError> {
    steps.iter().try_fold(v, |v, step| step.apply(v))
}

/// `schema` without `null` among its types.
fn not_null(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(Value::Array(types)) = s.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            s["type"] = only;
        }
    }
    s
}

/// JavaScript's `String(v ?? "")`.
fn text_of(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        js_string(v)
    }
}

/// JavaScript's `String(v)` for a JSON value (numbers without a trailing
/// `.0`, objects as `[object Object]`).
pub(crate) fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 && !n.is_i64() && !n.is_u64() => {
                format!("{f:.0}")
            }
            _ => n.to_string(),
        },
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch of an ISO 8601 timestamp with an offset, or
/// of a date alone (midnight UTC, as JavaScript reads it).
fn iso_to_millis(text: &str) -> Option<i64> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    let ts = date.to_datetime(jiff::civil::Time::midnight());
    Some(
        jiff::tz::TimeZone::UTC
            .to_timestamp(ts)
            .ok()?
            .as_millisecond(),
    )
}

/// Compile every transform of one dataflow, or the first error.
pub(crate) fn compile_all(ts: &[Transform]) -> Result<Vec<Step>, (usize, String)> {
    ts.iter()
        .enumerate()
        .map(|(i, t)| Step::compile(t).map_err(|e| (i, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, params: Value) -> Step {
        Step::compile(&Transform {
            id: id.into(),
            params: Some(params),
        })
        .unwrap()
    }

    #[test]
    fn each_transform_does_what_workglow_does() {
        let cases = [
            (
                "coalesce",
                json!({"defaultValue": 7}),
                json!(null),
                json!(7),
            ),
            ("coalesce", json!({"defaultValue": 7}), json!(3), json!(3)),
            (
                "unixToIsoDate",
                json!({"unit": "s"}),
                json!(0),
                json!("1970-01-01T00:00:00.000Z"),
            ),
            (
                "unixToIsoDate",
                json!({"unit": "ms"}),
                json!(1500),
                json!("1970-01-01T00:00:01.500Z"),
            ),
            (
                "isoDateToUnix",
                json!({}),
                json!("1970-01-01T00:00:01.500Z"),
                json!(1500),
            ),
            (
                "isoDateToUnix",
                json!({}),
                json!("1970-01-02"),
                json!(86_400_000),
            ),
            ("index", json!({"index": -1}), json!([1, 2, 3]), json!(3)),
            ("index", json!({"index": 5}), json!([1]), json!(null)),
            (
                "pick",
                json!({"path": "a.b"}),
                json!({"a": {"b": "x"}}),
                json!("x"),
            ),
            (
                "pick",
                json!({"path": "a.z"}),
                json!({"a": {}}),
                json!(null),
            ),
            ("numberToString", json!({}), json!(44.0), json!("44")),
            ("numberToString", json!({}), json!(0.5), json!("0.5")),
            ("toBoolean", json!({}), json!("TRUE"), json!(true)),
            ("toBoolean", json!({}), json!(0), json!(false)),
            (
                "stringify",
                json!({}),
                json!({"a": [1]}),
                json!("{\"a\":[1]}"),
            ),
            ("parseJson", json!({}), json!("{\"a\":1}"), json!({"a": 1})),
            ("uppercase", json!({}), json!("héllo"), json!("HÉLLO")),
            ("lowercase", json!({}), json!(null), json!("")),
            ("truncate", json!({"max": 2}), json!("héllo"), json!("hé")),
            (
                "substring",
                json!({"start": 1, "end": -1}),
                json!("weft"),
                json!("ef"),
            ),
            (
                "substring",
                json!({"start": -2}),
                json!("weft"),
                json!("ft"),
            ),
        ];
        for (id, params, input, want) in cases {
            assert_eq!(
                step(id, params.clone()).apply(input.clone()),
                Ok(want),
                "{id} {params} {input}"
            );
        }
        assert!(step("parseJson", json!({})).apply(json!("{")).is_err());
        assert!(
            step("isoDateToUnix", json!({}))
                .apply(json!("soon"))
                .is_err()
        );
    }

    #[test]
    fn bad_transforms_are_refused_with_reasons() {
        let err = |id: &str, params: Value| {
            Step::compile(&Transform {
                id: id.into(),
                params: Some(params),
            })
            .unwrap_err()
        };
        assert!(err("upper", json!({})).contains("unknown transform `upper`"));
        assert!(err("truncate", json!({"max": -1})).contains("≥ 0"));
        assert!(err("unixToIsoDate", json!({"unit": "h"})).contains("\"s\" or \"ms\""));
        assert!(err("pick", json!({})).contains("`path`"));
    }

    #[test]
    fn schemas_flow_through() {
        let obj = json!({"type": "object", "properties": {"n": {"type": ["number", "null"]}}});
        let picked = step("pick", json!({"path": "n"})).output_schema(&obj);
        assert_eq!(picked, json!({"type": ["number", "null"]}));
        let coalesced = step("coalesce", json!({"defaultValue": 0})).output_schema(&picked);
        assert_eq!(coalesced, json!({"type": "number"}));
        let items = step("index", json!({"index": 0}))
            .output_schema(&json!({"type": "array", "items": {"type": "string"}}));
        assert_eq!(items, json!({"type": "string"}));
    }
}
