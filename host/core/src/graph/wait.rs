//! The `wait` node kind: a node that waits for a signal sent to its run
//! (a person's approval, an answer from another system) and gives the
//! signal's body as its output; Workglow's `HumanApprovalTask` and
//! `HumanInputTask` are waits.
//!
//! Owns what a wait is (the signal's name, the schema of its body, how long
//! it waits) and what it gives when its time is up: the [`TIMEOUT_PORT`],
//! its default branch. It must not know how a signal arrives or is stored:
//! that is the runner's and the store's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Node;
use super::kind::{BUILTIN, bad_config};
use super::validate::ValidationError;
use crate::schema::ObjectSchema;
use crate::task::{Implementation, TaskError, TaskType};

/// The type of a wait node.
pub const WAIT: &str = "wait";

/// The output port a wait node gives its input on when it timed out (its
/// default branch); the dataflows from its other ports are then disabled,
/// as those from this one are when the signal came.
pub const TIMEOUT_PORT: &str = "[timeout]";

/// The longest a wait may last: about ten years, in milliseconds.
pub const MAX_WAIT_MS: u64 = 10 * 366 * 24 * 3_600_000;

/// A wait node's settings.
#[derive(Debug)]
pub struct WaitSpec {
    /// The signal it waits for.
    pub signal: String,
    /// How long it waits from when it starts waiting; none: until the
    /// signal comes (or the run ends).
    pub timeout: Option<Duration>,
}

impl WaitSpec {
    /// The output of a wait that timed out on `input`: its input on the
    /// [`TIMEOUT_PORT`].
    pub fn timed_out(input: Value) -> Value {
        json!({ TIMEOUT_PORT: input })
    }

    /// Whether `output` is that of a wait that timed out.
    pub fn is_timed_out(output: &Value) -> bool {
        output.get(TIMEOUT_PORT).is_some()
    }
}

/// A signal name: 1–128 of `[A-Za-z0-9._-]`.
pub fn valid_signal_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A wait node: a valid signal name (its own, or its id), a body schema
/// that compiles, a timeout within [`MAX_WAIT_MS`].
pub(crate) fn resolve(
    index: usize,
    node: &Node,
) -> Result<(super::NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let c = &node.config;
    let bad = |problem: String| vec![bad_config(index, node, problem)];
    // An id inside a compound node (`outer/inner`) names `outer.inner`.
    let signal = c
        .signal
        .clone()
        .unwrap_or_else(|| node.id.replace('/', "."));
    if !valid_signal_name(&signal) {
        return Err(bad(format!(
            "signal name \"{signal}\" must be 1–128 of [A-Za-z0-9._-] (set `signal` when the node's id is not one)"
        )));
    }
    let timeout = match c.timeout_ms {
        Some(ms) if ms == 0 || ms > MAX_WAIT_MS => {
            return Err(bad(format!(
                "`timeout_ms` of a wait must be 1 to {MAX_WAIT_MS} (about ten years)"
            )));
        }
        ms => ms.map(Duration::from_millis),
    };
    let open = json!({"type": "object", "additionalProperties": true});
    let compile = |key: &str, which, raw| {
        ObjectSchema::compile(which, raw).map_err(|e| bad(format!("`{key}`: {e}")))
    };
    let input = compile(
        "input_schema",
        "input",
        c.input_schema.clone().unwrap_or(open.clone()),
    )?;
    let output = compile(
        "output_schema",
        "output",
        c.output_schema.clone().unwrap_or(open),
    )?;
    if output.raw()["properties"].get(TIMEOUT_PORT).is_some() {
        return Err(bad(format!(
            "`output_schema`: port `{TIMEOUT_PORT}` is reserved for the wait's timeout"
        )));
    }
    let task = TaskType {
        id: WAIT.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        title: format!("Wait for signal \"{signal}\""),
        description: "Waits for a signal sent to its run and gives the signal's body".into(),
        category: "control".into(),
        input,
        output,
        side_effects: false,
        cacheable: false,
        reaches_out: false,
        resources: Vec::new(),
        timeout: timeout.unwrap_or(Duration::from_millis(MAX_WAIT_MS)),
        plugin: BUILTIN.into(),
        implementation: Implementation::Native(Arc::new(|_, _| {
            Box::pin(async {
                Err(TaskError::Host(
                    "a wait is run by the runner, which holds no task for it".into(),
                ))
            })
        })),
    };
    let spec = WaitSpec { signal, timeout };
    Ok((super::NodeKind::Wait(Arc::new(spec)), Arc::new(task)))
}

/// The schema of the [`TIMEOUT_PORT`]: the wait's input.
pub(crate) fn timeout_schema() -> Value {
    json!({"type": "object"})
}

/// Workglow's human-in-the-loop classes as wait nodes: `config` (Workglow's
/// keys) becomes a wait's, the signal named after the node, its body the
/// answer Workglow's task gives: `{action, approved, reason}` for an
/// approval, `{action, …contentSchema}` for an input. `message`,
/// `targetHumanId` and `metadata` are kept under `extras` for the people
/// and tools that show the wait; `kind` other than `elicit` and
/// `multi-turn` mode are not supported.
pub(crate) fn human_to_weft(
    class: &str,
    config: Option<Value>,
    at: &str,
) -> Result<Map<String, Value>, String> {
    let config = match config {
        None => Map::new(),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(format!("{at}: `config` is not an object")),
    };
    let mut out = Map::new();
    let mut extras = Map::new();
    let mut content = None;
    for (key, value) in config {
        match key.as_str() {
            "message" | "targetHumanId" | "metadata" => {
                extras.insert(key, value);
            }
            "kind" if value == "elicit" => {}
            "mode" if value == "single" => {}
            "kind" | "mode" => {
                return Err(format!(
                    "{at}: not supported: {class} with `{key}` {value} (Weft waits for one answer: kind \"elicit\", mode \"single\")"
                ));
            }
            "contentSchema" if class == "HumanInputTask" => content = Some(value),
            // Renamed with the other nodes' keys.
            "title" | "description" | "timeout" => {
                out.insert(key, value);
            }
            _ => {
                return Err(format!(
                    "{at}: not supported: config key `{key}` of {class}"
                ));
            }
        }
    }
    let body = match class {
        "HumanApprovalTask" => approval_schema(),
        _ => input_schema(content),
    };
    out.insert("output_schema".into(), body);
    if !extras.is_empty() {
        out.insert("extras".into(), Value::Object(extras));
    }
    Ok(out)
}

/// The body of an answer to a `HumanApprovalTask`: Workglow's output.
fn approval_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["accept", "decline", "cancel"]},
            "approved": {"type": "boolean"},
            "reason": {"type": "string"}
        },
        "required": ["action", "approved"],
        "additionalProperties": false
    })
}

/// The body of an answer to a `HumanInputTask`: `action` and the fields of
/// its `contentSchema`.
fn input_schema(content: Option<Value>) -> Value {
    let mut schema = json!({
        "type": "object",
        "properties": {"action": {"type": "string", "enum": ["accept", "decline", "cancel"]}},
        "required": ["action"],
        "additionalProperties": true
    });
    let Some(Value::Object(content)) = content else {
        return schema;
    };
    if let Some(Value::Object(props)) = content.get("properties")
        && let Some(Value::Object(ours)) = schema.get_mut("properties")
    {
        for (k, v) in props {
            ours.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(Value::Array(req)) = content.get("required")
        && let Some(Value::Array(ours)) = schema.get_mut("required")
    {
        ours.extend(req.iter().filter(|r| *r != "action").cloned());
    }
    if content.get("additionalProperties") == Some(&Value::Bool(false)) {
        schema["additionalProperties"] = Value::Bool(false);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_are_short_and_plain() {
        assert!(valid_signal_name("approve"));
        assert!(valid_signal_name("review.step-2_b"));
        assert!(!valid_signal_name(""));
        assert!(!valid_signal_name("a b"));
        assert!(!valid_signal_name("../x"));
        assert!(!valid_signal_name(&"a".repeat(129)));
    }

    #[test]
    fn an_input_answer_has_an_action_and_the_content_fields() {
        let content = json!({"type": "object", "properties": {"name": {"type": "string"}},
            "required": ["name"], "additionalProperties": false});
        let schema = input_schema(Some(content));
        assert_eq!(schema["required"], json!(["action", "name"]));
        assert_eq!(schema["properties"]["name"], json!({"type": "string"}));
        assert_eq!(schema["additionalProperties"], json!(false));
    }

    #[test]
    fn unsupported_human_settings_are_refused_by_name() {
        let e = human_to_weft(
            "HumanInputTask",
            Some(json!({"kind": "notify"})),
            "tasks[0]",
        );
        assert!(e.unwrap_err().contains("`kind` \"notify\""));
        let ok = human_to_weft(
            "HumanApprovalTask",
            Some(json!({"message": "Ship it?", "timeout": 1000})),
            "tasks[0]",
        )
        .unwrap();
        assert_eq!(ok["extras"]["message"], "Ship it?");
        assert_eq!(ok["timeout"], 1000);
        assert_eq!(
            ok["output_schema"]["required"],
            json!(["action", "approved"])
        );
    }
}
