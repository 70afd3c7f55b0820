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
use super::{Branch, Node, OnError, ValidationError, WhileCondition};
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

/// The most branches a conditional node has, and alternatives a fallback
/// node has (a branch taken copies the node's input).
pub const MAX_BRANCHES: usize = 256;

/// The type of a fallback node.
pub const FALLBACK: &str = "fallback";

/// The type of a reduce node.
pub const REDUCE: &str = "reduce";

/// The type of a while node.
pub const WHILE: &str = "while";

/// The type of a node that gives its input as its output (Workglow's
/// `InputTask` and `OutputTask`, the ends of a workflow).
pub const PASS: &str = "pass";

/// A fallback node's alternatives: task types and their inputs, in order.
#[derive(Debug)]
pub struct FallbackSpec {
    /// Each alternative's task type and the inputs it gets over the node's.
    pub alternatives: Vec<(Arc<TaskType>, Map<String, Value>)>,
}

/// A reduce node's settings.
#[derive(Debug)]
pub struct ReduceSpec {
    /// The task type run per step.
    pub task: Arc<TaskType>,
    /// The input port iterated over (one item per step).
    pub over: String,
    /// The input port carrying the accumulator.
    pub accumulator: String,
    /// The output port of a step that becomes the next accumulator.
    pub carry: String,
}

/// A while node's settings.
#[derive(Debug)]
pub struct WhileSpec {
    /// The task type run per iteration.
    pub task: Arc<TaskType>,
    /// Whether to go on, over `output` and `input`.
    pub condition: Condition,
    /// The most iterations.
    pub max_iterations: usize,
}

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
    /// Tries alternatives in order until one succeeds.
    Fallback(Arc<FallbackSpec>),
    /// Carries an accumulator through a task type over an array.
    Reduce(Arc<ReduceSpec>),
    /// Runs a task type again while a condition holds.
    While(Arc<WhileSpec>),
    /// Waits for a signal sent to the run ([`super::wait`]).
    Wait(Arc<super::wait::WaitSpec>),
}

impl NodeKind {
    /// The task types this kind runs on the node's behalf (none for a plain
    /// task or a conditional).
    pub fn bodies(&self) -> Vec<&Arc<TaskType>> {
        match self {
            NodeKind::Task | NodeKind::Conditional(_) | NodeKind::Wait(_) => Vec::new(),
            NodeKind::Map(m) => vec![&m.task],
            NodeKind::Fallback(f) => f.alternatives.iter().map(|(t, _)| t).collect(),
            NodeKind::Reduce(r) => vec![&r.task],
            NodeKind::While(w) => vec![&w.task],
        }
    }

    /// The subgraphs among [`NodeKind::bodies`].
    pub fn subgraphs(&self) -> Vec<&super::Plan> {
        let mut plans: Vec<&super::Plan> = self
            .bodies()
            .into_iter()
            .filter_map(|t| match &t.implementation {
                Implementation::Graph(sub) => Some(&sub.plan),
                _ => None,
            })
            .collect();
        plans.dedup_by(|a, b| std::ptr::eq(*a, *b));
        plans
    }
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

    /// A collector for the results of `n` elements, in element order.
    pub fn collector(&self, n: usize) -> Collector<'_> {
        let ports: Vec<String> = self
            .task
            .output
            .ports()
            .into_iter()
            .map(str::to_string)
            .collect();
        let columns = ports.iter().map(|_| vec![Value::Null; n]).collect();
        Collector {
            spec: self,
            ports: (!ports.is_empty()).then_some(ports),
            columns,
            ok: vec![false; n],
        }
    }
}

/// A map's results, kept as one column per output port (an element's output
/// object is taken apart as it arrives, not kept whole).
pub struct Collector<'s> {
    spec: &'s MapSpec,
    /// The output ports (of an open output: the first result's keys).
    ports: Option<Vec<String>>,
    columns: Vec<Vec<Value>>,
    ok: Vec<bool>,
}

impl Collector<'_> {
    /// Element `k` completed with `output`.
    pub fn put(&mut self, k: usize, output: Value) {
        let Value::Object(mut fields) = output else {
            return;
        };
        if self.ports.is_none() {
            let ports: Vec<String> = fields.keys().cloned().collect();
            let n = self.ok.len();
            self.columns = ports.iter().map(|_| vec![Value::Null; n]).collect();
            self.ports = Some(ports);
        }
        let ports = self.ports.as_deref().unwrap_or_default();
        for (port, column) in ports.iter().zip(&mut self.columns) {
            if let (Some(v), Some(slot)) = (fields.remove(port), column.get_mut(k)) {
                *slot = v;
            }
        }
        if let Some(ok) = self.ok.get_mut(k) {
            *ok = true;
        }
    }

    /// Whether element `k` completed.
    pub fn has(&self, k: usize) -> bool {
        self.ok.get(k).copied().unwrap_or(false)
    }

    /// The map's output: each output port an array of the elements' values,
    /// in element order; a failed element is left out (`skip`) or `null`
    /// (`collect`, with `errors` under `_errors`).
    pub fn finish(self, errors: Vec<Value>) -> Value {
        let keep_failed = self.spec.on_error == OnError::Collect;
        let mut out = Map::new();
        let ports = self.ports.unwrap_or_default();
        for (port, column) in ports.into_iter().zip(self.columns) {
            let column = match keep_failed {
                true => column,
                false => column
                    .into_iter()
                    .zip(&self.ok)
                    .filter(|(_, ok)| **ok)
                    .map(|(v, _)| v)
                    .collect(),
            };
            out.insert(port, Value::Array(column));
        }
        if keep_failed {
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
    /// Workglow's `conditionConfig` form: each input port `p` goes out as
    /// `p_N` for the `N`th branch taken (from 1), or `p_else` when an
    /// exclusive conditional takes none; no `_activeBranches`.
    pub split_ports: bool,
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
        if self.split_ports {
            return self.split(input, &taken);
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

impl Branches {
    /// The output in the `split_ports` form.
    fn split(&self, input: &Value, taken: &[usize]) -> Value {
        let suffixes: Vec<String> = match (self.exclusive, taken.first()) {
            (true, Some(i)) => vec![(i + 1).to_string()],
            (true, None) => vec!["else".into()],
            (false, _) => taken.iter().map(|i| (i + 1).to_string()).collect(),
        };
        let mut out = Map::new();
        for (port, value) in input.as_object().into_iter().flatten() {
            for suffix in &suffixes {
                out.insert(format!("{port}_{suffix}"), value.clone());
            }
        }
        Value::Object(out)
    }
}

/// Whether `task_type` names a built-in node kind.
pub(crate) fn is_kind(task_type: &str) -> bool {
    [CONDITIONAL, MAP, FALLBACK, REDUCE, WHILE, PASS, super::WAIT].contains(&task_type)
}

/// Whether a node of type `task_type` runs a body: a task type its `task`
/// names, or the subgraph its `graph` holds.
pub(crate) fn takes_body(task_type: &str) -> bool {
    [MAP, FALLBACK, REDUCE, WHILE].contains(&task_type)
}

/// A setting of a kind found on a node of another type.
pub(crate) fn misplaced_settings(node: &Node) -> Option<&'static str> {
    let c = &node.config;
    let settings: [(bool, &str, &[&str]); 16] = [
        (c.branches.is_some(), "branches", &[CONDITIONAL]),
        (c.exclusive.is_some(), "exclusive", &[CONDITIONAL]),
        (c.default_branch.is_some(), "default_branch", &[CONDITIONAL]),
        (c.split_ports.is_some(), "split_ports", &[CONDITIONAL]),
        (c.task.is_some(), "task", &[MAP, FALLBACK, REDUCE, WHILE]),
        (c.over.is_some(), "over", &[MAP, REDUCE]),
        (c.concurrency.is_some(), "concurrency", &[MAP]),
        (c.batch_size.is_some(), "batch_size", &[MAP]),
        (c.on_error.is_some(), "on_error", &[MAP]),
        (c.max_iterations.is_some(), "max_iterations", &[MAP, WHILE]),
        (c.alternatives.is_some(), "alternatives", &[FALLBACK]),
        (c.accumulator.is_some(), "accumulator", &[REDUCE]),
        (c.carry.is_some(), "carry", &[REDUCE]),
        (c.condition.is_some(), "condition", &[WHILE]),
        (c.merge.is_some(), "merge", &[super::COMPOUND]),
        (c.signal.is_some(), "signal", &[super::WAIT]),
    ];
    settings
        .into_iter()
        .find(|(set, _, kinds)| *set && !kinds.contains(&node.task_type.as_str()))
        .map(|(_, key, _)| key)
}

/// The kind and task type of built-in node `node` (at `index`), or why its
/// settings are wrong.
/// `body`: the task type of the subgraph the node holds, if it holds one.
pub(crate) fn resolve(
    index: usize,
    node: &Node,
    registry: &crate::task::Registry,
    body: Option<&Arc<TaskType>>,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let at = Body {
        index,
        node,
        registry,
        graph: body,
    };
    match node.task_type.as_str() {
        MAP => resolve_map(&at),
        FALLBACK => resolve_fallback(&at),
        REDUCE => resolve_reduce(&at),
        WHILE => resolve_while(&at),
        PASS => resolve_pass(&at),
        super::WAIT => super::wait::resolve(index, node),
        _ => resolve_conditional(index, node),
    }
}

/// Where a kind finds what it runs: node `node` (at `index`) names a task
/// type of `registry`, or holds a subgraph (`graph`, its task type).
struct Body<'a> {
    index: usize,
    node: &'a Node,
    registry: &'a crate::task::Registry,
    graph: Option<&'a Arc<TaskType>>,
}

impl Body<'_> {
    /// The task type named `name` in setting `key`, or the node's subgraph
    /// (one or the other).
    fn task(
        &self,
        key: &str,
        name: Option<&String>,
    ) -> Result<Arc<TaskType>, Vec<ValidationError>> {
        let (index, node) = (self.index, self.node);
        match (self.graph, name) {
            (Some(_), Some(_)) => Err(vec![bad_config(
                index,
                node,
                format!("`{key}` and `graph` both set: a node runs a task type or a subgraph"),
            )]),
            (Some(graph), None) => Ok(graph.clone()),
            (None, name) => task_named(index, node, self.registry, key, name),
        }
    }

    fn bad(&self, problem: String) -> Vec<ValidationError> {
        vec![bad_config(self.index, self.node, problem)]
    }
}

/// The task type named `name` (in setting `key` of node `node`).
fn task_named(
    index: usize,
    node: &Node,
    registry: &crate::task::Registry,
    key: &str,
    name: Option<&String>,
) -> Result<Arc<TaskType>, Vec<ValidationError>> {
    let bad = |problem: String| vec![bad_config(index, node, problem)];
    let Some(name) = name else {
        return Err(bad(format!(
            "a {} node needs `{key}`: a task type (or `graph`: a subgraph)",
            node.task_type
        )));
    };
    registry.get(name).cloned().ok_or_else(|| {
        let hint = registry
            .suggest(name)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        bad(format!("`{key}`: unknown task type `{name}`{hint}"))
    })
}

/// A fallback node: each alternative names an existing task type.
fn resolve_fallback(at: &Body<'_>) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let (index, node) = (at.index, at.node);
    let given = node.config.alternatives.as_deref().unwrap_or_default();
    if given.len() > MAX_BRANCHES {
        let problem = format!("{} alternatives; at most {MAX_BRANCHES}", given.len());
        return Err(vec![bad_config(index, node, problem)]);
    }
    if given.is_empty() {
        let problem = "a fallback node needs `alternatives`: [{\"task\", \"defaults\"}, …]";
        return Err(vec![bad_config(index, node, problem.into())]);
    }
    let mut alternatives = Vec::new();
    let mut errors = Vec::new();
    for (a, alt) in given.iter().enumerate() {
        let key = format!("alternatives[{a}].task");
        let task = match (&alt.task, at.graph) {
            (Some(name), Some(_)) => task_named(index, node, at.registry, &key, Some(name)),
            (name, _) => at.task(&key, name.as_ref().or(node.config.task.as_ref())),
        };
        match (task, alt.defaults.as_object()) {
            (Ok(task), Some(defaults)) => alternatives.push((task, defaults.clone())),
            (Err(e), _) => errors.extend(e),
            (_, None) => errors.push(bad_config(
                index,
                node,
                format!("alternatives[{a}].defaults must be an object"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let tasks: Vec<&Arc<TaskType>> = alternatives.iter().map(|(t, _)| t).collect();
    let open = json!({"type": "object", "additionalProperties": true});
    let output = tasks[0].output.raw().clone();
    let shown = kind_type(
        FALLBACK,
        format!("Fallback over {}", tasks[0].id),
        open,
        output,
        &tasks,
    );
    Ok((
        NodeKind::Fallback(Arc::new(FallbackSpec { alternatives })),
        shown,
    ))
}

/// A reduce node: its task type has the iterated and accumulator ports.
fn resolve_reduce(at: &Body<'_>) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let c = &at.node.config;
    let task = at.task("task", c.task.as_ref())?;
    let bad = |problem: String| at.bad(problem);
    let over = match c.over.as_deref() {
        Some([one]) => one.clone(),
        _ => return Err(bad("a reduce node needs `over`: [one input port]".into())),
    };
    let Some(accumulator) = c.accumulator.clone() else {
        return Err(bad(
            "a reduce node needs `accumulator`: an input port".into()
        ));
    };
    let carry = c.carry.clone().unwrap_or_else(|| accumulator.clone());
    for (key, port, schema) in [
        ("over", &over, &task.input),
        ("accumulator", &accumulator, &task.input),
        ("carry", &carry, &task.output),
    ] {
        if schema.port(port).is_none() {
            return Err(bad(format!("`{key}`: `{}` has no port `{port}`", task.id)));
        }
    }
    let input = either_schema(&task, &[over.as_str()]);
    let output = task.output.raw().clone();
    let shown = kind_type(
        REDUCE,
        format!("Reduce with {}", task.id),
        input,
        output,
        &[&task],
    );
    let spec = ReduceSpec {
        task,
        over,
        accumulator,
        carry,
    };
    Ok((NodeKind::Reduce(Arc::new(spec)), shown))
}

/// A while node: a task type, a condition that compiles, and a limit.
fn resolve_while(at: &Body<'_>) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let c = &at.node.config;
    let task = at.task("task", c.task.as_ref())?;
    let bad = |problem: String| at.bad(problem);
    let Some(max_iterations) = c.max_iterations.filter(|n| (1..=MAX_ELEMENTS).contains(n)) else {
        return Err(bad(format!(
            "a while node needs `max_iterations`, 1 to {MAX_ELEMENTS}"
        )));
    };
    let condition = match &c.condition {
        None => {
            return Err(bad(
                "a while node needs `condition`: a CEL expression over `output` and `input`".into(),
            ));
        }
        Some(WhileCondition::Cel(source)) => {
            Condition::cel(source).map_err(|e| bad(format!("`condition`: {e}")))?
        }
        Some(WhileCondition::Operator {
            field,
            operator,
            value,
        }) => operator_condition(field, *operator, value.as_ref()),
    };
    let input = task.input.raw().clone();
    let output = task.output.raw().clone();
    let shown = kind_type(
        WHILE,
        format!("While, {}", task.id),
        input,
        output,
        &[&task],
    );
    let spec = WhileSpec {
        task,
        condition,
        max_iterations,
    };
    Ok((NodeKind::While(Arc::new(spec)), shown))
}

/// The task type a kind shows, with the effects of the task types it runs.
fn kind_type(
    id: &str,
    title: String,
    input: Value,
    output: Value,
    inner: &[&Arc<TaskType>],
) -> Arc<TaskType> {
    Arc::new(TaskType {
        id: id.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: title.clone(),
        title,
        category: "control".into(),
        input: ObjectSchema::compile("input", input).expect("port schemas compile"),
        output: ObjectSchema::compile("output", output).expect("port schemas compile"),
        side_effects: inner.iter().any(|t| t.side_effects),
        // Its instances are cached, each on its own; the node itself is not.
        cacheable: inner.iter().all(|t| t.cacheable),
        reaches_out: inner.iter().any(|t| t.reaches_out),
        resources: Vec::new(),
        timeout: inner.iter().map(|t| t.timeout).max().unwrap_or_default(),
        plugin: BUILTIN.into(),
        implementation: Implementation::Native(Arc::new(|_, _| {
            Box::pin(async {
                Err(TaskError::Host(
                    "a built-in kind is run by the runner, instance by instance".into(),
                ))
            })
        })),
    })
}

/// `task`'s input schema where ports `arrays` take an array of their values
/// too (or, with no ports named, every port).
fn either_schema(task: &TaskType, arrays: &[&str]) -> Value {
    let either = |s: &Value| json!({"anyOf": [s, {"type": "array", "items": s}]});
    let schema = &task.input;
    let ports: Map<String, Value> = schema
        .ports()
        .into_iter()
        .filter_map(|p| {
            let s = schema.port(p)?;
            let widen = arrays.is_empty() || arrays.contains(&p);
            Some((p.to_string(), if widen { either(s) } else { s.clone() }))
        })
        .collect();
    let mut input = json!({"type": "object", "properties": ports, "required": schema.required()});
    if let Some(defs) = schema.raw().get("$defs") {
        input["$defs"] = defs.clone();
    }
    input
}

pub(crate) fn bad_config(index: usize, node: &Node, problem: String) -> ValidationError {
    ValidationError::BadNodeConfig {
        index,
        node: node.id.clone(),
        problem,
    }
}

/// A map node: its task type must exist and be a plain task.
fn resolve_map(at: &Body<'_>) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let c = &at.node.config;
    let bad = |problem: String| at.bad(problem);
    let task = at.task("task", c.task.as_ref())?;
    let name = &task.id;
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
    let mut outputs: Map<String, Value> = inner
        .output
        .ports()
        .into_iter()
        .filter_map(|p| {
            Some((
                p.to_string(),
                json!({"type": "array", "items": inner.output.port(p)?}),
            ))
        })
        .collect();
    if spec.on_error == OnError::Collect {
        outputs.insert(
            ERRORS_PORT.into(),
            json!({"type": "array", "items": error_schema()}),
        );
    }
    let output = json!({"type": "object", "properties": outputs});
    kind_type(
        MAP,
        format!("Map over {}", inner.id),
        either_schema(inner, &[]),
        output,
        &[inner],
    )
}

/// A pass node: its schemas compile (none given: it takes and gives any
/// object).
fn resolve_pass(at: &Body<'_>) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let c = &at.node.config;
    let open = json!({"type": "object", "additionalProperties": true});
    let input = c.input_schema.clone().unwrap_or(open);
    let output = c.output_schema.clone().unwrap_or_else(|| input.clone());
    let compile = |key: &str, which, raw| {
        ObjectSchema::compile(which, raw).map_err(|e| at.bad(format!("`{key}`: {e}")))
    };
    let task = TaskType {
        id: PASS.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        title: "Pass".into(),
        description: "Gives its input as its output".into(),
        category: "control".into(),
        input: compile("input_schema", "input", input)?,
        output: compile("output_schema", "output", output)?,
        side_effects: false,
        cacheable: false,
        reaches_out: false,
        resources: Vec::new(),
        timeout: std::time::Duration::from_secs(60),
        plugin: BUILTIN.into(),
        implementation: Implementation::Native(Arc::new(|input, _| Box::pin(async { Ok(input) }))),
    };
    Ok((NodeKind::Task, Arc::new(task)))
}

/// A conditional node: its branches compile.
fn resolve_conditional(
    index: usize,
    node: &Node,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    let bad = |problem: String| bad_config(index, node, problem);
    let branches = node.config.branches.as_deref().unwrap_or_default();
    if branches.len() > MAX_BRANCHES {
        return Err(vec![bad(format!(
            "{} branches; at most {MAX_BRANCHES}",
            branches.len()
        ))]);
    }
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
        split_ports: node.config.split_ports.unwrap_or(false),
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
        (None, Some(field), Some(operator)) => {
            Ok(operator_condition(field, operator, branch.value.as_ref()))
        }
        _ => Err(
            "give either `when` (a CEL expression) or `field` and `operator` (and `value`)".into(),
        ),
    }
}

/// Workglow's operator condition: `field` compared with `value` (given as a
/// string, as Workglow's UI does).
fn operator_condition(
    field: &str,
    operator: super::condition::Operator,
    value: Option<&Value>,
) -> Condition {
    Condition::Operator {
        field: field.to_string(),
        operator,
        value: match value {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        },
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
    let open = json!({"type": "object", "additionalProperties": true});
    let output = match branches.split_ports {
        // Its ports are named after its input's.
        true => open.clone(),
        false => json!({"type": "object", "properties": ports, "additionalProperties": false}),
    };
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
    let mut v = json!({
        "message": message, "kind": kind, "node": node, "attempt": attempt,
        // Workglow's names for the same, so its handlers carry over.
        "error": message, "errorType": workglow_error_type(kind),
    });
    if let Some(input) = input {
        v["input"] = input;
    }
    v
}

/// Workglow's error class for a failure of kind `kind`.
fn workglow_error_type(kind: &str) -> &'static str {
    match kind {
        "invalid_input" | "input_schema" => "TaskInvalidInputError",
        "timeout" => "TaskTimeoutError",
        "cancelled" => "TaskAbortedError",
        _ => "TaskFailedError",
    }
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
            "input": {"type": "object"},
            "error": {"type": "string"},
            "errorType": {"type": "string"}
        }
    })
}
