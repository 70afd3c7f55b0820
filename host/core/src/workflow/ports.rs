//! What the builder matches ports by: each task type's declared ports and
//! their JSON types ([`Catalog`]), and the ports of a scope's node, derived
//! from its body.

use std::collections::HashMap;

use serde_json::Value;

use super::{Scope, WorkflowError, flow};
use crate::graph::{Dataflow, MAP, Node, REDUCE};
use crate::schema::TypeSet;
use crate::task::Registry;

/// A node's declared ports, each with the JSON types it allows, in
/// declaration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ports {
    /// Input ports.
    pub input: Vec<(String, TypeSet)>,
    /// Output ports.
    pub output: Vec<(String, TypeSet)>,
}

/// Where the builder learns task types' ports.
pub trait Catalog {
    /// The ports of task type `task_type` (or of the type it is an alias
    /// of); `None` if there is no such type.
    fn ports(&self, task_type: &str) -> Option<Ports>;
}

impl<C: Catalog + ?Sized> Catalog for std::sync::Arc<C> {
    fn ports(&self, task_type: &str) -> Option<Ports> {
        (**self).ports(task_type)
    }
}

impl Catalog for Registry {
    fn ports(&self, task_type: &str) -> Option<Ports> {
        let t = self.get(task_type)?;
        Some(Ports {
            input: t.input.port_list(),
            output: t.output.port_list(),
        })
    }
}

/// The task types a daemon lists (`GET /v1/tasks`, `weft tasks --json`),
/// for building graphs away from a host.
#[derive(Debug, Clone, Default)]
pub struct TaskList {
    types: HashMap<String, Ports>,
}

impl TaskList {
    /// Read the listing: an array of task types with `id`, `ports` and
    /// `aliases`.
    pub fn from_json(list: &Value) -> Result<TaskList, WorkflowError> {
        let bad = |why: &str| WorkflowError::Misuse(format!("task list: {why}"));
        let items = list.as_array().ok_or_else(|| bad("not an array"))?;
        let mut types = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let id = item["id"]
                .as_str()
                .ok_or_else(|| bad(&format!("[{i}] has no `id`")))?;
            let side = |which: &str| -> Vec<(String, TypeSet)> {
                item["ports"][which]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(p, ts)| {
                                let names = ts.as_array().into_iter().flatten();
                                (
                                    p.clone(),
                                    TypeSet::from_names(names.filter_map(Value::as_str)),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let ports = Ports {
                input: side("input"),
                output: side("output"),
            };
            for alias in item["aliases"].as_array().into_iter().flatten() {
                if let Some(alias) = alias.as_str() {
                    types.insert(alias.to_string(), ports.clone());
                }
            }
            types.insert(id.to_string(), ports);
        }
        Ok(TaskList { types })
    }
}

impl std::str::FromStr for TaskList {
    type Err = WorkflowError;

    /// Read the listing from its JSON text.
    fn from_str(text: &str) -> Result<TaskList, WorkflowError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| WorkflowError::Misuse(format!("task list: not JSON: {e}")))?;
        TaskList::from_json(&value)
    }
}

impl Catalog for TaskList {
    fn ports(&self, task_type: &str) -> Option<Ports> {
        self.types.get(task_type).cloned()
    }
}

/// The ports of `node`: its task type's, or for a node with a body the
/// ones the body leaves open (inputs no body dataflow feeds; outputs of the
/// body's leaves), arrays where a `map` or `reduce` takes or gives one per
/// element. Other kinds have none the builder can match.
pub fn node_ports(catalog: &dyn Catalog, node: &Node) -> Ports {
    let Some(body) = &node.graph else {
        return catalog.ports(&node.task_type).unwrap_or_default();
    };
    let mut ports = Ports::default();
    let fed: std::collections::HashSet<(&str, &str)> = body
        .dataflows
        .iter()
        .map(|f| (f.target_task_id.as_str(), f.target_task_port_id.as_str()))
        .collect();
    let feeds: std::collections::HashSet<&str> = body
        .dataflows
        .iter()
        .map(|f| f.source_task_id.as_str())
        .collect();
    for inner in &body.tasks {
        let p = node_ports(catalog, inner);
        for (port, types) in p.input {
            if !fed.contains(&(inner.id.as_str(), port.as_str())) {
                add_port(&mut ports.input, port, types);
            }
        }
        if !feeds.contains(inner.id.as_str()) {
            for (port, types) in p.output {
                add_port(&mut ports.output, port, types);
            }
        }
    }
    let array = TypeSet::from_names(["array"]);
    let per_element = [MAP, REDUCE].contains(&node.task_type.as_str());
    if per_element {
        for (_, types) in &mut ports.input {
            *types = types.union(array);
        }
    }
    if node.task_type == MAP {
        for (_, types) in &mut ports.output {
            *types = array;
        }
    }
    ports
}

fn add_port(ports: &mut Vec<(String, TypeSet)>, port: String, types: TypeSet) {
    match ports.iter_mut().find(|(p, _)| *p == port) {
        Some((_, t)) => *t = t.union(types),
        None => ports.push((port, types)),
    }
}

/// The dataflows auto-connection makes into `target` from `sources`: each
/// output port of theirs (renamed by `renames`, output → input) that is a
/// declared input port of the target with types that can agree, in the
/// sources' order and their ports' order.
pub fn auto_flows(
    catalog: &dyn Catalog,
    sources: &[&Node],
    target: &Node,
    renames: &[(String, String)],
) -> Vec<Dataflow> {
    let into = node_ports(catalog, target).input;
    let mut flows = Vec::new();
    for source in sources {
        for (out, types) in node_ports(catalog, source).output {
            let to = renames
                .iter()
                .find(|(f, _)| *f == out)
                .map_or(out.as_str(), |(_, t)| t.as_str());
            let agree = into
                .iter()
                .any(|(p, t)| p == to && !t.intersect(types).is_empty());
            if agree {
                flows.push(flow(&source.id, &out, &target.id, to, Vec::new()));
            }
        }
    }
    flows
}

/// The name of the method that ends `scope` after `end_`.
pub(super) fn end_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Subgraph => "subgraph",
        Scope::Map => "map",
        Scope::Reduce => "reduce",
        Scope::While => "while",
        Scope::Fallback => "fallback",
    }
}
