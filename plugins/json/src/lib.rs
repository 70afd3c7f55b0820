//! Standard tasks: reshaping JSON (`json.*`).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError, Value, json};

fn open_object() -> Value {
    json!({ "type": "object", "additionalProperties": true })
}

#[derive(Deserialize, JsonSchema)]
struct PickIn {
    /// The object to pick from.
    object: serde_json::Map<String, Value>,
    /// The keys to keep.
    keys: Vec<String>,
    /// Fail when a key is missing (default false: missing keys are left out).
    #[serde(default)]
    strict: bool,
}

fn pick(input: PickIn, _: &Context) -> Result<Value, TaskError> {
    let mut out = serde_json::Map::new();
    for key in &input.keys {
        match input.object.get(key) {
            Some(v) => {
                out.insert(key.clone(), v.clone());
            }
            None if input.strict => {
                return Err(TaskError::invalid_input(format!(
                    "key `{key}` is not in the object"
                )));
            }
            None => {}
        }
    }
    Ok(Value::Object(out))
}

#[derive(Deserialize, JsonSchema)]
struct PathIn {
    /// The JSON value to look into.
    value: Value,
    /// A JSON Pointer (`/items/0/name`) or a dotted path (`items.0.name`, `items[0].name`).
    path: String,
    /// Returned when the path leads nowhere (default null).
    #[serde(default)]
    default: Value,
}

#[derive(Serialize, JsonSchema)]
struct PathOut {
    /// The value found, or `default`.
    value: Value,
    /// Whether the path led to a value.
    found: bool,
}

fn to_pointer(path: &str) -> String {
    if path.is_empty() || path.starts_with('/') {
        return path.to_string();
    }
    let mut pointer = String::new();
    for segment in path
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
    {
        pointer.push('/');
        pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

fn path(input: PathIn, _: &Context) -> Result<PathOut, TaskError> {
    match input.value.pointer(&to_pointer(&input.path)) {
        Some(v) => Ok(PathOut {
            value: v.clone(),
            found: true,
        }),
        None => Ok(PathOut {
            value: input.default,
            found: false,
        }),
    }
}

fn merge(input: Value, _: &Context) -> Result<Value, TaskError> {
    Ok(input)
}

#[derive(Deserialize, JsonSchema)]
struct ParseIn {
    /// JSON text.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct ValueOut {
    /// The parsed value.
    value: Value,
}

fn parse(input: ParseIn, _: &Context) -> Result<ValueOut, TaskError> {
    serde_json::from_str(&input.text)
        .map(|value| ValueOut { value })
        .map_err(|e| TaskError::invalid_input(format!("text is not JSON: {e}")))
}

#[derive(Deserialize, JsonSchema)]
struct StringifyIn {
    /// Any JSON value.
    value: Value,
    /// Indent the output (default false).
    #[serde(default)]
    pretty: bool,
}

#[derive(Serialize, JsonSchema)]
struct TextOut {
    /// The JSON text.
    text: String,
}

fn stringify(input: StringifyIn, _: &Context) -> Result<TextOut, TaskError> {
    let text = if input.pretty {
        serde_json::to_string_pretty(&input.value)
    } else {
        serde_json::to_string(&input.value)
    };
    text.map(|text| TextOut { text })
        .map_err(|e| TaskError::failed(e.to_string()))
}

#[derive(Deserialize, JsonSchema)]
struct SelectIn {
    /// Input object or array to query.
    value: Value,
    /// Dot-notation path (`a.b.c`, `items.0.name`, `items.*.name`).
    path: String,
}

#[derive(Serialize, JsonSchema)]
struct Selected {
    /// The value(s) at the path; absent when the path leads nowhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

/// Workglow's `JsonPathTask`: the value at a dotted path, where `*` takes
/// every element of an array or every value of an object (a list; lists
/// from a `*` followed by more path are flattened one level).
fn select(i: SelectIn, _: &Context) -> Result<Selected, TaskError> {
    let segments: Vec<&str> = i.path.split('.').collect();
    Ok(Selected {
        result: resolve(&i.value, &segments),
    })
}

/// `None` is JavaScript's `undefined` (written as `null` inside a list).
fn resolve(value: &Value, segments: &[&str]) -> Option<Value> {
    let Some((head, tail)) = segments.split_first() else {
        return Some(value.clone());
    };
    if *head == "*" {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => return None,
        };
        let results = items.into_iter().map(|v| resolve(v, tail));
        let list: Vec<Value> = match tail.is_empty() {
            true => results.map(|r| r.unwrap_or(Value::Null)).collect(),
            false => results
                .flat_map(|r| match r {
                    Some(Value::Array(inner)) => inner,
                    Some(v) => vec![v],
                    None => vec![Value::Null],
                })
                .collect(),
        };
        return Some(Value::Array(list));
    }
    let next = match value {
        Value::Object(m) => m.get(*head),
        Value::Array(items) => head.parse::<usize>().ok().and_then(|n| items.get(n)),
        _ => None,
    };
    resolve(next?, tail)
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("json.pick", pick)
            .title("Pick keys")
            .description("Keeps only `keys` of `object`; the output's ports are the picked keys.")
            .output_schema(open_object()),
        TaskDef::new("json.path", path)
            .title("Get by path")
            .description("Reads the value at `path` (JSON Pointer or dotted path) inside `value`."),
        TaskDef::new("json.merge", merge)
            .title("Merge")
            .description(
                "Fan-in: every input port becomes an output port of the same name. Dataflows \
                 into port `*` merge whole objects.",
            )
            .input_schema(open_object())
            .output_schema(open_object()),
        TaskDef::new("json.select", select)
            .title("Select by dotted path")
            .description(
                "The value at a dot-notation `path` in `value`, `*` taking every element → result.",
            )
            .category("Utility"),
        TaskDef::new("json.parse", parse)
            .title("Parse JSON")
            .description("Parses `text` as JSON."),
        TaskDef::new("json.stringify", stringify)
            .title("Stringify JSON")
            .description("Writes `value` as JSON text."),
    ]
}

weft_sdk::export_plugin!(tasks);
