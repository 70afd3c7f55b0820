//! Node kinds built into the host, beside plain task nodes: what a node of
//! such a type does, and the task type it shows to validation (its ports).
//!
//! - `conditional`: routes its input to the output ports of the branches
//!   whose conditions hold; the dataflows of the other branches are
//!   *disabled*, and a node all of whose incoming dataflows are disabled is
//!   disabled too (not failed).
//!
//! And one port every task has: [`ERROR_PORT`], the node's failure as data.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::condition::Condition;
use super::{Branch, Node, ValidationError};
use crate::event::{LogLevel, NodeEvents};
use crate::schema::ObjectSchema;
use crate::task::{Implementation, TaskError, TaskType};

/// The type of a conditional node.
pub const CONDITIONAL: &str = "conditional";

/// The output port carrying a node's failure (`{message, kind, node,
/// attempt}`) once its retries are exhausted; Workglow's name.
pub const ERROR_PORT: &str = "[error]";

/// The plugin name of the task types of built-in kinds.
pub const BUILTIN: &str = "builtin";

/// The output port of a conditional node listing the branches taken.
const ACTIVE: &str = "_activeBranches";

/// What a node is.
#[derive(Debug, Clone, Default)]
pub enum NodeKind {
    /// Runs its task type.
    #[default]
    Task,
    /// Routes its input to the branches taken.
    Conditional(Arc<Branches>),
}

/// A conditional node's compiled branches.
#[derive(Debug)]
pub struct Branches {
    /// Id, output port, condition; in order.
    pub branches: Vec<(String, String, Condition)>,
    /// Take only the first branch whose condition holds.
    pub exclusive: bool,
    /// The branch taken when none holds (a position in `branches`).
    pub default: Option<usize>,
}

impl Branches {
    /// The branches taken for `input` (positions), and the conditions that
    /// could not be evaluated (branch id, why), which count as false.
    pub fn choose(&self, input: &Value) -> (Vec<usize>, Vec<(String, String)>) {
        let mut taken = Vec::new();
        let mut failed = Vec::new();
        for (i, (id, _, condition)) in self.branches.iter().enumerate() {
            match condition.holds(input) {
                Ok(true) => {
                    taken.push(i);
                    if self.exclusive {
                        break;
                    }
                }
                Ok(false) => {}
                Err(e) => failed.push((id.clone(), e)),
            }
        }
        if taken.is_empty() {
            taken.extend(self.default);
        }
        (taken, failed)
    }

    /// The node's output for `input`: the input on each port taken, and the
    /// ids taken under `_activeBranches`. Ports not taken are absent. A
    /// condition that cannot be evaluated is logged to `log` and is false.
    pub fn output(&self, input: &Value, log: Option<&NodeEvents>) -> Value {
        let (taken, failed) = self.choose(input);
        for (id, why) in failed {
            if let Some(log) = log {
                let message =
                    format!("branch \"{id}\": condition not evaluated ({why}); taken as false");
                log.log(LogLevel::Warn, message);
            }
        }
        let mut out = Map::new();
        let mut ids = Vec::new();
        for i in taken {
            let (id, port, _) = &self.branches[i];
            out.insert(port.clone(), input.clone());
            ids.push(Value::String(id.clone()));
        }
        out.insert(ACTIVE.into(), Value::Array(ids));
        Value::Object(out)
    }
}

/// Whether `task_type` names a built-in node kind.
pub(crate) fn is_kind(task_type: &str) -> bool {
    task_type == CONDITIONAL
}

/// Settings of a kind found on a node of another type.
pub(crate) fn misplaced_settings(node: &Node) -> Option<&'static str> {
    let c = &node.config;
    if node.task_type == CONDITIONAL {
        return None;
    }
    [
        (c.branches.is_some(), "branches"),
        (c.exclusive.is_some(), "exclusive"),
        (c.default_branch.is_some(), "default_branch"),
    ]
    .into_iter()
    .find_map(|(set, key)| set.then_some(key))
}

/// The kind and task type of built-in node `node` (at `index`), or why its
/// settings are wrong.
pub(crate) fn resolve(
    index: usize,
    node: &Node,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let bad = |problem: String| ValidationError::BadNodeConfig {
        index,
        node: node.id.clone(),
        problem,
    };
    let branches = node.config.branches.as_deref().unwrap_or_default();
    if branches.is_empty() {
        return Err(vec![bad(
            "a conditional node needs `branches`: [{\"id\", \"when\"}, …]".into(),
        )]);
    }
    let mut errors = Vec::new();
    let mut compiled = Vec::new();
    let mut seen = HashSet::new();
    for (b, branch) in branches.iter().enumerate() {
        let port = branch.port.clone().unwrap_or_else(|| branch.id.clone());
        if branch.id.is_empty() || !seen.insert(branch.id.as_str()) {
            errors.push(bad(format!(
                "branches[{b}]: branch id \"{}\" is empty or used twice",
                branch.id
            )));
        }
        if port == ACTIVE || port == "*" || port == ERROR_PORT {
            errors.push(bad(format!("branches[{b}]: port `{port}` is reserved")));
        }
        match condition_of(branch) {
            Ok(c) => compiled.push((branch.id.clone(), port, c)),
            Err(e) => errors.push(bad(format!("branches[{b}] (\"{}\"): {e}", branch.id))),
        }
    }
    let default = match &node.config.default_branch {
        None => None,
        Some(d) => match branches.iter().position(|b| &b.id == d) {
            Some(p) => Some(p),
            None => {
                errors.push(bad(format!(
                    "default_branch \"{d}\" is not one of its branches"
                )));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let branches = Arc::new(Branches {
        branches: compiled,
        exclusive: node.config.exclusive.unwrap_or(true),
        default,
    });
    let task = conditional_type(&branches);
    Ok((NodeKind::Conditional(branches), task))
}

/// The compiled condition of `branch`: exactly one of its two forms.
fn condition_of(branch: &Branch) -> Result<Condition, String> {
    match (&branch.when, &branch.field, branch.operator) {
        (Some(when), None, None) if branch.value.is_none() => {
            Condition::cel(when).map_err(|e| e.to_string())
        }
        (None, Some(field), Some(operator)) => Ok(Condition::Operator {
            field: field.clone(),
            operator,
            value: match &branch.value {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            },
        }),
        _ => Err(
            "give either `when` (a CEL expression) or `field` and `operator` (and `value`)".into(),
        ),
    }
}

/// The task type a conditional node shows: any input; one output port per
/// branch (the input passed through) and `_activeBranches`. It is evaluated
/// in the host, never cached, and has no effects.
fn conditional_type(branches: &Arc<Branches>) -> Arc<TaskType> {
    let mut ports = Map::new();
    for (_, port, _) in &branches.branches {
        ports.insert(port.clone(), json!({"type": "object"}));
    }
    ports.insert(
        ACTIVE.into(),
        json!({"type": "array", "items": {"type": "string"}}),
    );
    let output = json!({"type": "object", "properties": ports, "additionalProperties": false});
    let open = json!({"type": "object", "additionalProperties": true});
    let run = branches.clone();
    Arc::new(TaskType {
        id: CONDITIONAL.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        title: "Conditional".into(),
        category: "control".into(),
        description: "Routes its input to the branches whose conditions hold".into(),
        input: ObjectSchema::compile("input", open).expect("an open schema compiles"),
        output: ObjectSchema::compile("output", output).expect("port schemas compile"),
        side_effects: false,
        cacheable: false,
        resources: Vec::new(),
        timeout: std::time::Duration::from_secs(5),
        plugin: BUILTIN.into(),
        implementation: Implementation::Native(Arc::new(move |input, ctx| {
            let out = run.output(&input, ctx.events.as_ref());
            Box::pin(async move { Ok::<_, TaskError>(out) })
        })),
    })
}

/// The value an `[error]` port carries.
pub fn error_value(message: &str, kind: &str, node: &str, attempt: u32) -> Value {
    json!({"message": message, "kind": kind, "node": node, "attempt": attempt})
}

/// The schema of the `[error]` port.
pub(crate) fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "kind": {"type": "string"},
            "node": {"type": "string"},
            "attempt": {"type": "integer"}
        }
    })
}
