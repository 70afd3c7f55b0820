//! A subgraph as one task type: the body a map, reduce, while or fallback
//! node runs per element, step, iteration or alternative when it holds a
//! `graph` instead of naming a `task`.
//!
//! Owns the ports a subgraph shows, by the compound-node rules
//! ([`super::compound`]): its input ports are those of its roots (an inner
//! node no inner dataflow feeds), its output ports those of its leaves (an
//! inner node feeding no other), each output port given by one leaf only.
//! It must not know how the subgraph runs: the runner runs the plan in
//! [`Implementation::Graph`] as a nested run, one per use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::kind::BUILTIN;
use super::{Merge, Plan};
use crate::schema::ObjectSchema;
use crate::task::{Implementation, TaskType};

/// A subgraph run as one task.
#[derive(Debug)]
pub struct Subgraph {
    /// Its nodes.
    pub plan: Plan,
    /// How its leaves make its output (`None`: each port from the one leaf
    /// that has it).
    pub merge: Option<Merge>,
}

impl Subgraph {
    /// The output of a run of the subgraph whose leaves (in graph order)
    /// gave `leaves` (node id, task type id, output; a leaf that did not
    /// complete is left out).
    pub fn output(&self, leaves: Vec<(&str, &str, Value)>) -> Value {
        match self.merge {
            Some(Merge::GraphResultArray) => {
                let results: Vec<Value> = leaves
                    .into_iter()
                    .map(|(id, task, data)| json!({"id": id, "type": task, "data": data}))
                    .collect();
                json!({ RESULTS: results })
            }
            Some(Merge::PropertyArray) if leaves.len() > 1 => {
                let mut out: Map<String, Value> = Map::new();
                for (_, _, data) in leaves {
                    for (port, v) in data.as_object().into_iter().flatten() {
                        let slot = out.entry(port.clone()).or_insert_with(|| json!([]));
                        if let Value::Array(items) = slot {
                            items.push(v.clone());
                        }
                    }
                }
                Value::Object(out)
            }
            _ => {
                let mut out = Map::new();
                for (_, _, data) in leaves {
                    if let Value::Object(ports) = data {
                        out.extend(ports);
                    }
                }
                Value::Object(out)
            }
        }
    }
}

/// The output port of a subgraph merged as `GRAPH_RESULT_ARRAY`.
pub const RESULTS: &str = "results";

/// Whether a compound node merged as `merge` must run as one node, its
/// subgraph having `leaves` leaves (else it is replaced by its nodes, which
/// gives the same output).
pub(crate) fn runs_whole(merge: Option<Merge>, leaves: usize) -> bool {
    match merge {
        Some(Merge::GraphResultArray) => true,
        Some(Merge::PropertyArray) => leaves > 1,
        None => false,
    }
}

/// The task type of subgraph `plan`, the body of node `node`, merged as
/// `merge`, or why its ports do not make one (two leaves giving the same
/// output port, unmerged).
pub fn task_type(node: &str, plan: Plan, merge: Option<Merge>) -> Result<Arc<TaskType>, String> {
    let input = input_schema(&plan);
    let output = match merge {
        None => output_schema(&plan)?,
        Some(Merge::GraphResultArray) => json!({"type": "object", "properties": {
            RESULTS: {"type": "array", "items": {"type": "object"}}}}),
        Some(Merge::PropertyArray) => merged_schema(&plan),
    };
    let compile = |which, raw| {
        ObjectSchema::compile(which, raw).map_err(|e| format!("its {which} ports: {e}"))
    };
    let tasks = || plan.nodes.iter().map(|n| &n.task);
    Ok(Arc::new(TaskType {
        id: super::COMPOUND.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        title: format!("Subgraph of {node}"),
        description: format!("The {} nodes inside node `{node}`", plan.nodes.len()),
        category: "control".into(),
        input: compile("input", input)?,
        output: compile("output", output)?,
        side_effects: tasks().any(|t| t.side_effects),
        // Its inner nodes are cached, each on its own; the whole is not.
        cacheable: tasks().all(|t| t.cacheable),
        reaches_out: tasks().any(|t| t.reaches_out),
        resources: Vec::new(),
        // Its nodes may run one after another.
        timeout: plan
            .nodes
            .iter()
            .fold(Duration::ZERO, |sum, n| sum.saturating_add(n.timeout)),
        plugin: BUILTIN.into(),
        implementation: Implementation::Graph(Arc::new(Subgraph { plan, merge })),
    }))
}

/// The subgraph's input: every port of every root (the first root's schema
/// of a port shared by several), required where a root requires it and has
/// no default; open when a root is.
fn input_schema(plan: &Plan) -> Value {
    let mut ports = Map::new();
    let mut required: Vec<&str> = Vec::new();
    let mut defs = Map::new();
    let mut open = false;
    for i in plan.roots() {
        let node = &plan.nodes[i];
        let schema = &node.task.input;
        open |= schema.is_open();
        for p in schema.ports() {
            if let Some(s) = schema.port(p) {
                ports.entry(p).or_insert_with(|| s.clone());
            }
        }
        let unmet = schema.required().into_iter();
        required.extend(unmet.filter(|p| !node.defaults.contains_key(*p)));
        take_defs(&mut defs, schema.raw());
    }
    required.sort_unstable();
    required.dedup();
    let mut input = json!({
        "type": "object",
        "properties": ports,
        "required": required,
        "additionalProperties": open,
    });
    if !defs.is_empty() {
        input["$defs"] = Value::Object(defs);
    }
    input
}

/// The subgraph's output: every port of every leaf, none required (a leaf
/// after a conditional may be disabled), each from one leaf only.
fn output_schema(plan: &Plan) -> Result<Value, String> {
    let mut ports = Map::new();
    let mut given_by: HashMap<&str, &str> = HashMap::new();
    let mut defs = Map::new();
    for i in (0..plan.nodes.len()).filter(|&i| plan.is_leaf(i)) {
        let node = &plan.nodes[i];
        let schema = &node.task.output;
        for p in schema.ports() {
            if let Some(first) = given_by.get(p) {
                return Err(format!(
                    "its leaves `{}` and `{}` both give output port `{p}`; \
                     a subgraph's output ports come from one leaf each",
                    first, node.id
                ));
            }
            given_by.insert(p, &node.id);
            if let Some(s) = schema.port(p) {
                ports.insert(p.to_string(), s.clone());
            }
        }
        take_defs(&mut defs, schema.raw());
    }
    let mut output = json!({"type": "object", "properties": ports});
    if !defs.is_empty() {
        output["$defs"] = Value::Object(defs);
    }
    Ok(output)
}

/// The output of a subgraph merged as `PROPERTY_ARRAY` with several
/// leaves: each port an array.
fn merged_schema(plan: &Plan) -> Value {
    let mut ports = Map::new();
    for i in (0..plan.nodes.len()).filter(|&i| plan.is_leaf(i)) {
        for p in plan.nodes[i].task.output.ports() {
            ports.insert(p.to_string(), json!({"type": "array"}));
        }
    }
    json!({"type": "object", "properties": ports})
}

/// Add the `$defs` of `schema` to `defs` (the first of a name wins), so the
/// ports copied from it keep what they refer to.
fn take_defs(defs: &mut Map<String, Value>, schema: &Value) {
    if let Some(Value::Object(more)) = schema.get("$defs") {
        for (name, def) in more {
            defs.entry(name.clone()).or_insert_with(|| def.clone());
        }
    }
}
