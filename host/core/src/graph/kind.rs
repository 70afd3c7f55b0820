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
use super::{Branch, Node, OnError, ValidationError};
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

/// The type of a map node.
pub const MAP: &str = "map";

/// The most elements a map node takes.
pub const MAX_ELEMENTS: usize = 1_000_000;

/// The output port of a map node listing failed elements (`on_error:
/// collect`).
pub const ERRORS_PORT: &str = "_errors";

/// What a node is.
#[derive(Debug, Clone, Default)]
pub enum NodeKind {
    /// Runs its task type.
    #[default]
    Task,
    /// Routes its input to the branches taken.
    Conditional(Arc<Branches>),
    /// Runs a task type once per element of its array inputs.
    Map(Arc<MapSpec>),
}

/// A map node's settings.
#[derive(Debug)]
pub struct MapSpec {
    /// The task type run per element.
    pub task: Arc<TaskType>,
    /// The ports iterated over, if given (else found from the input).
    pub over: Option<Vec<String>>,
    /// Elements running at once, if set.
    pub concurrency: Option<usize>,
    /// Elements per batch, if set.
    pub batch_size: Option<usize>,
    /// What a failed element does.
    pub on_error: OnError,
    /// The most elements taken.
    pub max_elements: usize,
}

/// The elements of one map input: which ports iterate, and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct Elements {
    /// The ports iterated over.
    pub ports: Vec<String>,
    /// How many elements.
    pub count: usize,
}

impl MapSpec {
    /// Which ports of `input` iterate, and how many elements there are
    /// (arrays zip: they must have the same length), or why not.
    pub fn elements(&self, input: &Map<String, Value>) -> Result<Elements, String> {
        let ports: Vec<String> = match &self.over {
            Some(over) => over.clone(),
            None => input
                .iter()
                .filter(|(port, v)| v.is_array() && !self.takes_array(port))
                .map(|(port, _)| port.clone())
                .collect(),
        };
        let mut count = None;
        for port in &ports {
            let len = match input.get(port) {
                Some(Value::Array(items)) => items.len(),
                _ => {
                    return Err(format!(
                        "port `{port}` is iterated over but is not an array"
                    ));
                }
            };
            match count {
                Some((n, first)) if n != len => {
                    return Err(format!(
                        "ports `{first}` ({n} elements) and `{port}` ({len}) are zipped but differ in length"
                    ));
                }
                _ => count = Some((len, port.as_str())),
            }
        }
        let count = count.map_or(0, |(n, _)| n);
        if count > self.max_elements {
            return Err(format!(
                "{count} elements; this map takes at most {}",
                self.max_elements
            ));
        }
        Ok(Elements { ports, count })
    }

    /// Whether the task type's port `port` takes an array as it is.
    fn takes_array(&self, port: &str) -> bool {
        self.task
            .input
            .port_types(port)
            .is_some_and(|t| t.contains(crate::schema::JsonType::Array))
    }

    /// Element `k`'s input: the `k`th item of each iterated port, the other
    /// ports as they are.
    pub fn element_input(
        &self,
        input: &Map<String, Value>,
        elements: &Elements,
        k: usize,
    ) -> Value {
        let mut one = Map::with_capacity(input.len());
        for (port, v) in input {
            let item = if elements.ports.contains(port) {
                v.get(k).cloned().unwrap_or(Value::Null)
            } else {
                v.clone()
            };
            one.insert(port.clone(), item);
        }
        Value::Object(one)
    }

    /// The map's output from its elements' results, in element order: each
    /// output port of the task type becomes an array of that port's values;
    /// a failed element (`None`) is left out (`skip`) or `null` (`collect`,
    /// with `errors` under `_errors`).
    pub fn collect(&self, results: Vec<Option<Value>>, errors: Vec<Value>) -> Value {
        let mut ports: Vec<String> = self
            .task
            .output
            .ports()
            .into_iter()
            .map(str::to_string)
            .collect();
        if ports.is_empty() {
            // An open output: the ports the first result has.
            ports = results
                .iter()
                .flatten()
                .find_map(|r| r.as_object().map(|o| o.keys().cloned().collect()))
                .unwrap_or_default();
        }
        let mut out = Map::new();
        for port in &ports {
            let column = results
                .iter()
                .filter(|r| r.is_some() || self.on_error == OnError::Collect)
                .map(|r| {
                    r.as_ref()
                        .and_then(|r| r.get(port))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect();
            out.insert(port.clone(), Value::Array(column));
        }
        if self.on_error == OnError::Collect {
            out.insert(ERRORS_PORT.into(), Value::Array(errors));
        }
        Value::Object(out)
    }
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
    task_type == CONDITIONAL || task_type == MAP
}

/// A setting of a kind found on a node of another type.
pub(crate) fn misplaced_settings(node: &Node) -> Option<&'static str> {
    let c = &node.config;
    let conditional = [
        (c.branches.is_some(), "branches"),
        (c.exclusive.is_some(), "exclusive"),
        (c.default_branch.is_some(), "default_branch"),
    ];
    let map = [
        (c.task.is_some(), "task"),
        (c.over.is_some(), "over"),
        (c.concurrency.is_some(), "concurrency"),
        (c.batch_size.is_some(), "batch_size"),
        (c.on_error.is_some(), "on_error"),
        (c.max_iterations.is_some(), "max_iterations"),
    ];
    // The settings of the kinds this node is not.
    let others: Vec<_> = match node.task_type.as_str() {
        CONDITIONAL => map.to_vec(),
        MAP => conditional.to_vec(),
        _ => conditional.into_iter().chain(map).collect(),
    };
    others.into_iter().find_map(|(set, key)| set.then_some(key))
}

/// The kind and task type of built-in node `node` (at `index`), or why its
/// settings are wrong.
pub(crate) fn resolve(
    index: usize,
    node: &Node,
    registry: &crate::task::Registry,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    match node.task_type.as_str() {
        MAP => resolve_map(index, node, registry),
        _ => resolve_conditional(index, node),
    }
}

fn bad_config(index: usize, node: &Node, problem: String) -> ValidationError {
    ValidationError::BadNodeConfig {
        index,
        node: node.id.clone(),
        problem,
    }
}

/// A map node: its task type must exist and be a plain task.
fn resolve_map(
    index: usize,
    node: &Node,
    registry: &crate::task::Registry,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let c = &node.config;
    let bad = |problem: String| vec![bad_config(index, node, problem)];
    let Some(name) = &c.task else {
        return Err(bad(
            "a map node needs `task`: the task type run per element".into(),
        ));
    };
    let Some(task) = registry.get(name).cloned() else {
        let hint = registry
            .suggest(name)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(bad(format!("`task`: unknown task type `{name}`{hint}")));
    };
    if c.concurrency == Some(0) || c.batch_size == Some(0) {
        return Err(bad(
            "`concurrency` and `batch_size` must be at least 1".into()
        ));
    }
    if let Some(port) = c
        .over
        .iter()
        .flatten()
        .find(|p| task.input.port(p).is_none())
    {
        return Err(bad(format!("`over`: `{name}` has no input port `{port}`")));
    }
    let spec = Arc::new(MapSpec {
        over: c.over.clone(),
        concurrency: c.concurrency,
        batch_size: c.batch_size,
        on_error: c.on_error.unwrap_or_default(),
        max_elements: c.max_iterations.unwrap_or(MAX_ELEMENTS).min(MAX_ELEMENTS),
        task,
    });
    let shown = map_type(&spec);
    Ok((NodeKind::Map(spec), shown))
}

/// The task type a map node shows: each input port of its task type takes
/// a value or an array of them; each output port gives an array.
fn map_type(spec: &MapSpec) -> Arc<TaskType> {
    let inner = &spec.task;
    let either = |s: &Value| json!({"anyOf": [s, {"type": "array", "items": s}]});
    let ports = |schema: &ObjectSchema, f: &dyn Fn(&Value) -> Value| -> Map<String, Value> {
        schema
            .ports()
            .into_iter()
            .filter_map(|p| schema.port(p).map(|s| (p.to_string(), f(s))))
            .collect()
    };
    let mut input = json!({"type": "object", "properties": ports(&inner.input, &either)});
    input["required"] = json!(inner.input.required());
    if let Some(defs) = inner.input.raw().get("$defs") {
        input["$defs"] = defs.clone();
    }
    let mut outputs = ports(&inner.output, &|s| json!({"type": "array", "items": s}));
    if spec.on_error == OnError::Collect {
        outputs.insert(
            ERRORS_PORT.into(),
            json!({"type": "array", "items": error_schema()}),
        );
    }
    let output = json!({"type": "object", "properties": outputs});
    Arc::new(TaskType {
        id: MAP.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        title: format!("Map over {}", inner.id),
        category: "control".into(),
        description: format!("Runs `{}` once per element", inner.id),
        input: ObjectSchema::compile("input", input).expect("port schemas compile"),
        output: ObjectSchema::compile("output", output).expect("port schemas compile"),
        side_effects: inner.side_effects,
        // Its elements are cached, each on its own; the map itself is not.
        cacheable: inner.cacheable,
        reaches_out: inner.reaches_out,
        resources: Vec::new(),
        timeout: inner.timeout,
        plugin: BUILTIN.into(),
        implementation: Implementation::Native(Arc::new(|_, _| {
            Box::pin(async {
                Err(TaskError::Host(
                    "a map node is run by the runner, element by element".into(),
                ))
            })
        })),
    })
}

/// A conditional node: its branches compile.
fn resolve_conditional(
    index: usize,
    node: &Node,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let bad = |problem: String| bad_config(index, node, problem);
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
        reaches_out: false,
        resources: Vec::new(),
        timeout: std::time::Duration::from_secs(5),
        plugin: BUILTIN.into(),
        implementation: Implementation::Native(Arc::new(move |input, ctx| {
            let out = run.output(&input, ctx.events.as_ref());
            Box::pin(async move { Ok::<_, TaskError>(out) })
        })),
    })
}

/// The value an `[error]` port carries (`input`: what the failed node was
/// given, so a handler can try again elsewhere).
pub fn error_value(
    message: &str,
    kind: &str,
    node: &str,
    attempt: u32,
    input: Option<Value>,
) -> Value {
    let mut v = json!({"message": message, "kind": kind, "node": node, "attempt": attempt});
    if let Some(input) = input {
        v["input"] = input;
    }
    v
}

/// The schema of the `[error]` port.
pub(crate) fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "kind": {"type": "string"},
            "node": {"type": "string"},
            "attempt": {"type": "integer"},
            "input": {"type": "object"}
        }
    })
}
