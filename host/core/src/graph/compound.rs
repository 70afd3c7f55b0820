//! Compound nodes: a node of type `graph` holds a subgraph, and is expanded
//! into it before validation, so its inner nodes are scheduled, cached,
//! retried and made durable like any other (their ids are prefixed with the
//! compound node's id and a `/`).
//!
//! Ports, as for a whole run: a compound node's input port `p` feeds port `p`
//! of every inner *root* (an inner node no inner dataflow feeds) that has it;
//! its output port `p` is port `p` of the one inner *leaf* (an inner node
//! feeding no other) that has it. Its `defaults` feed the inner roots the same
//! way; its `config` applies to every inner node that does not set its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Dataflow, Graph, Node, ValidationError};
use crate::task::{Registry, TaskType};

/// The task type of a compound node.
pub const COMPOUND: &str = "graph";

/// Whether `graph` has a compound node anywhere.
pub(crate) fn has_compound(graph: &Graph) -> bool {
    graph
        .tasks
        .iter()
        .any(|n| n.task_type == COMPOUND || n.graph.is_some())
}

/// The ports of an inner graph, as its compound node shows them.
struct Boundary {
    /// Inner roots (prefixed ids) and the input ports each has.
    roots: Vec<(String, Option<Vec<String>>)>,
    /// Inner leaves (prefixed ids) and the output ports each has.
    leaves: Vec<(String, Option<Vec<String>>)>,
    /// For each input port, the roots (positions in `roots`) that have it,
    /// so a dataflow into the compound node finds its targets without
    /// scanning every root.
    by_port: HashMap<String, Vec<usize>>,
    /// Roots with an open schema: they have every port.
    open: Vec<usize>,
}

impl Boundary {
    /// Index the roots by port (call once the roots are known).
    fn index(&mut self) {
        for (i, (_, ports)) in self.roots.iter().enumerate() {
            match ports {
                None => self.open.push(i),
                Some(ports) => {
                    for p in ports {
                        self.by_port.entry(p.clone()).or_default().push(i);
                    }
                }
            }
        }
    }

    /// How many roots port `port` of the compound node feeds.
    fn count_roots_with(&self, port: &str) -> usize {
        if port == "*" {
            return self.roots.len();
        }
        self.by_port.get(port).map_or(0, Vec::len) + self.open.len()
    }

    /// The roots port `port` of the compound node feeds, in graph order.
    fn roots_with(&self, port: &str) -> Vec<String> {
        let mut at: Vec<usize> = if port == "*" {
            (0..self.roots.len()).collect()
        } else {
            let named = self.by_port.get(port).into_iter().flatten();
            named.chain(&self.open).copied().collect()
        };
        at.sort_unstable();
        at.dedup();
        at.into_iter().map(|i| self.roots[i].0.clone()).collect()
    }

    /// Whether a node with these ports (`None`: an open schema, any port)
    /// has port `p`.
    fn has(ports: &Option<Vec<String>>, p: &str) -> bool {
        p == "*" || ports.as_ref().is_none_or(|ps| ps.iter().any(|x| x == p))
    }

    fn known(side: &[(String, Option<Vec<String>>)]) -> Vec<String> {
        let mut all: Vec<String> = side
            .iter()
            .flat_map(|(_, ps)| ps.clone().unwrap_or_default())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// How deep compound nodes may nest.
pub const MAX_DEPTH: usize = 16;
/// The most nodes a graph may have by default, counting those of its
/// subgraphs ([`SizeLimits`]).
pub const MAX_NODES: usize = 10_000;
/// The most dataflows a graph may have by default, as submitted (at every
/// level) and once its compound nodes are expanded (a dataflow into a
/// compound node becomes one per inner root with that port).
pub const MAX_DATAFLOWS: usize = 100_000;

/// How large a graph may be: a host's setting (`[quotas] graph_nodes`,
/// `graph_dataflows`), [`MAX_NODES`] and [`MAX_DATAFLOWS`] unless raised.
/// Validation checks the sizes before anything else, and counts no further
/// than them, so a huge graph costs no more to refuse than one at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// Nodes, counting those inside compound nodes.
    pub nodes: usize,
    /// Dataflows, at every level and once compound nodes are expanded.
    pub dataflows: usize,
}

impl Default for SizeLimits {
    fn default() -> Self {
        SizeLimits {
            nodes: MAX_NODES,
            dataflows: MAX_DATAFLOWS,
        }
    }
}

impl SizeLimits {
    /// Why `graph` is too large, if it has more nodes or dataflows than
    /// allowed, counting every level of nesting; it stops counting at the
    /// limits.
    pub(crate) fn oversize(&self, graph: &Graph) -> Option<ValidationError> {
        let (mut nodes, mut flows) = (0, 0);
        self.count(graph, 0, &mut nodes, &mut flows);
        if nodes > self.nodes {
            return Some(ValidationError::TooLarge {
                what: "nodes (counting those inside compound nodes)",
                limit: self.nodes,
            });
        }
        (flows > self.dataflows).then_some(ValidationError::TooLarge {
            what: "dataflows",
            limit: self.dataflows,
        })
    }

    fn count(&self, graph: &Graph, depth: usize, nodes: &mut usize, flows: &mut usize) {
        *nodes += graph.tasks.len();
        *flows += graph.dataflows.len();
        if depth > MAX_DEPTH || *nodes > self.nodes || *flows > self.dataflows {
            return;
        }
        for inner in graph.tasks.iter().filter_map(|n| n.graph.as_deref()) {
            self.count(inner, depth + 1, nodes, flows);
        }
    }

    fn too_many_expanded(&self) -> ValidationError {
        ValidationError::TooLarge {
            what: "dataflows once its compound nodes are expanded",
            limit: self.dataflows,
        }
    }
}

/// `graph` with every compound node replaced by its subgraph (recursively),
/// validated, or every problem found. Problems are reported by the positions
/// of the graph they are in: inside a subgraph wrapped in
/// [`ValidationError::InCompound`], at this level by this graph's `tasks`
/// and `dataflows` (an inner node's problem at this level by its compound
/// node's position). Each level validates its flattened subgraph once; the
/// plan of that validation comes back with the flat graph.
pub(crate) fn flatten(
    graph: &Graph,
    registry: &Registry,
    limits: &SizeLimits,
    depth: usize,
) -> Result<(Graph, super::Plan), Vec<ValidationError>> {
    let mut errors = Vec::new();
    let mut tasks = Vec::new();
    // For each flat task and dataflow: where it came from in `graph`.
    let mut task_from = Vec::new();
    let mut flow_from = Vec::new();
    let mut inner_flows = Vec::new();
    let mut boundaries: HashMap<&str, Boundary> = HashMap::new();
    // The task types of subgraphs kinds run, by position in `tasks`.
    let mut bodies: HashMap<usize, Arc<TaskType>> = HashMap::new();
    // Compound nodes whose failures an error port takes run as one node.
    let whole: HashSet<&str> = graph
        .dataflows
        .iter()
        .filter(|f| f.source_task_port_id == super::ERROR_PORT)
        .map(|f| f.source_task_id.as_str())
        .collect();
    for (index, node) in graph.tasks.iter().enumerate() {
        let body = super::kind::takes_body(&node.task_type)
            || (node.task_type == COMPOUND && whole.contains(node.id.as_str()));
        match (&node.graph, node.task_type == COMPOUND || body) {
            (None, false) => {
                tasks.push(node.clone());
                task_from.push(index);
            }
            (None, true) if body => {
                tasks.push(node.clone());
                task_from.push(index);
            }
            (Some(_), true) if depth >= MAX_DEPTH => {
                errors.push(ValidationError::CompoundTooDeep {
                    index,
                    node: node.id.clone(),
                    max: MAX_DEPTH,
                })
            }
            (None, true) => errors.push(ValidationError::CompoundWithoutGraph {
                index,
                node: node.id.clone(),
            }),
            (Some(_), false) => errors.push(ValidationError::GraphOnTask {
                index,
                node: node.id.clone(),
                task_type: node.task_type.clone(),
            }),
            (Some(inner), true) => match flatten(inner, registry, limits, depth + 1) {
                Err(inner_errors) => errors.extend(in_compound(index, node, inner_errors)),
                Ok((_, plan))
                    if body || super::subgraph::runs_whole(node.config.merge, leaves(&plan)) =>
                {
                    match super::subgraph::task_type(&node.id, plan, node.config.merge) {
                        Ok(t) => {
                            bodies.insert(tasks.len(), t);
                            tasks.push(node.clone());
                            task_from.push(index);
                        }
                        Err(problem) => errors.push(ValidationError::BadNodeConfig {
                            index,
                            node: node.id.clone(),
                            problem: format!("`graph`: {problem}"),
                        }),
                    }
                }
                Ok((inner, _)) => {
                    let (nodes, flows, boundary) = inline(node, inner, registry);
                    task_from.extend(std::iter::repeat_n(index, nodes.len()));
                    tasks.extend(nodes);
                    inner_flows.extend(flows);
                    boundaries.insert(&node.id, boundary);
                }
            },
        }
        if let (Some(b), Some(defaults)) =
            (boundaries.get(node.id.as_str()), node.defaults.as_object())
        {
            for port in defaults.keys() {
                if !b.roots.iter().any(|(_, ps)| Boundary::has(ps, port)) {
                    errors.push(ValidationError::UnknownDefaultPort {
                        index,
                        node: node.id.clone(),
                        port: port.clone(),
                        task_type: COMPOUND.into(),
                        known: Boundary::known(&b.roots),
                    });
                }
            }
        }
    }
    let mut dataflows = Vec::new();
    for (index, flow) in graph.dataflows.iter().enumerate() {
        let sources: Vec<String> = match boundaries.get(flow.source_task_id.as_str()) {
            None => vec![flow.source_task_id.clone()],
            Some(b) => {
                let port = &flow.source_task_port_id;
                let having: Vec<String> = b
                    .leaves
                    .iter()
                    .filter(|(_, ps)| Boundary::has(ps, port))
                    .map(|(id, _)| id.clone())
                    .collect();
                if having.len() > 1 {
                    errors.push(ValidationError::AmbiguousCompoundOutput {
                        index,
                        flow: flow.to_string(),
                        node: flow.source_task_id.clone(),
                        port: port.clone(),
                        leaves: having,
                    });
                    continue;
                }
                having
            }
        };
        let targets: Vec<String> = match boundaries.get(flow.target_task_id.as_str()) {
            None => vec![flow.target_task_id.clone()],
            Some(b) => {
                let n = b.count_roots_with(&flow.target_task_port_id);
                if dataflows.len() + inner_flows.len() + sources.len() * n > limits.dataflows {
                    return Err(vec![limits.too_many_expanded()]);
                }
                b.roots_with(&flow.target_task_port_id)
            }
        };
        if dataflows.len() + inner_flows.len() + sources.len() * targets.len() > limits.dataflows {
            return Err(vec![limits.too_many_expanded()]);
        }
        for (end, found, direction, side) in [
            (&flow.source_task_id, sources.is_empty(), "output", true),
            (&flow.target_task_id, targets.is_empty(), "input", false),
        ] {
            if found && let Some(b) = boundaries.get(end.as_str()) {
                errors.push(ValidationError::UnknownPort {
                    index,
                    flow: flow.to_string(),
                    node: end.clone(),
                    task_type: COMPOUND.into(),
                    direction,
                    port: if side {
                        flow.source_task_port_id.clone()
                    } else {
                        flow.target_task_port_id.clone()
                    },
                    known: Boundary::known(if side { &b.leaves } else { &b.roots }),
                });
            }
        }
        for s in &sources {
            for t in &targets {
                flow_from.push(Some(index));
                dataflows.push(Dataflow {
                    id: flow.id.clone(),
                    source_task_id: s.clone(),
                    source_task_port_id: flow.source_task_port_id.clone(),
                    target_task_id: t.clone(),
                    target_task_port_id: flow.target_task_port_id.clone(),
                    transforms: flow.transforms.clone(),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Checked at their own level already: they cannot be at fault here.
    flow_from.extend(std::iter::repeat_n(None, inner_flows.len()));
    dataflows.extend(inner_flows);
    let flat = Graph {
        tasks,
        dataflows,
        limits: graph.limits,
    };
    match super::Plan::new_flat(&flat, registry, "", &bodies) {
        Ok(plan) => Ok((flat, plan)),
        Err(e) => Err(e
            .errors
            .into_iter()
            .map(|error| at_source(error, &task_from, &flow_from))
            .collect()),
    }
}

fn leaves(plan: &super::Plan) -> usize {
    (0..plan.nodes.len()).filter(|&i| plan.is_leaf(i)).count()
}

/// Errors found inside the subgraph of node `node` (at `index`), as this
/// level reports them.
fn in_compound(
    index: usize,
    node: &Node,
    errors: Vec<ValidationError>,
) -> impl Iterator<Item = ValidationError> + '_ {
    errors
        .into_iter()
        .map(move |error| ValidationError::InCompound {
            index,
            node: node.id.clone(),
            error: Box::new(error),
        })
}

/// `error`, found in a flattened graph, positioned in the graph it was
/// flattened from.
fn at_source(
    error: ValidationError,
    task_from: &[usize],
    flow_from: &[Option<usize>],
) -> ValidationError {
    use ValidationError as E;
    let task = |i: usize| task_from.get(i).copied().unwrap_or(i);
    let flow = |i: usize| flow_from.get(i).copied().flatten().unwrap_or(i);
    match error {
        E::EmptyId { index } => E::EmptyId { index: task(index) },
        E::DuplicateNode { id, first, second } => E::DuplicateNode {
            id,
            first: task(first),
            second: task(second),
        },
        E::UnknownTaskType {
            index,
            node,
            task_type,
            suggestion,
        } => E::UnknownTaskType {
            index: task(index),
            node,
            task_type,
            suggestion,
        },
        E::DefaultsNotObject { index, node } => E::DefaultsNotObject {
            index: task(index),
            node,
        },
        E::UnknownDefaultPort {
            index,
            node,
            port,
            task_type,
            known,
        } => E::UnknownDefaultPort {
            index: task(index),
            node,
            port,
            task_type,
            known,
        },
        E::DefaultTypeMismatch {
            index,
            node,
            port,
            task_type,
            found,
            expected,
        } => E::DefaultTypeMismatch {
            index: task(index),
            node,
            port,
            task_type,
            found,
            expected,
        },
        E::MissingInput {
            index,
            node,
            port,
            task_type,
            root,
        } => E::MissingInput {
            index: task(index),
            node,
            port,
            task_type,
            root,
        },
        E::UnknownNode {
            index,
            flow: f,
            node,
        } => E::UnknownNode {
            index: flow(index),
            flow: f,
            node,
        },
        E::UnknownPort {
            index,
            flow: f,
            node,
            task_type,
            direction,
            port,
            known,
        } => E::UnknownPort {
            index: flow(index),
            flow: f,
            node,
            task_type,
            direction,
            port,
            known,
        },
        E::SchemaMismatch {
            index,
            flow: f,
            source_types,
            target_types,
        } => E::SchemaMismatch {
            index: flow(index),
            flow: f,
            source_types,
            target_types,
        },
        E::PortFedTwice {
            index,
            flow: f,
            node,
            port,
            first,
        } => E::PortFedTwice {
            index: flow(index),
            flow: f,
            node,
            port,
            first: flow(first),
        },
        E::BadNodeConfig {
            index,
            node,
            problem,
        } => E::BadNodeConfig {
            index: task(index),
            node,
            problem,
        },
        E::BadTransform {
            index,
            flow: f,
            position,
            problem,
        } => E::BadTransform {
            index: flow(index),
            flow: f,
            position,
            problem,
        },
        // The rest are not positioned in a flattened graph's lists.
        other => other,
    }
}

/// The nodes and dataflows of compound node `node`'s (already expanded)
/// subgraph `inner`, with prefixed ids, the compound node's defaults and
/// config passed down, and its boundary.
fn inline(node: &Node, inner: Graph, registry: &Registry) -> (Vec<Node>, Vec<Dataflow>, Boundary) {
    let prefix = |id: &str| format!("{}/{id}", node.id);
    let fed: HashSet<&str> = inner
        .dataflows
        .iter()
        .map(|f| f.target_task_id.as_str())
        .collect();
    let feeding: HashSet<&str> = inner
        .dataflows
        .iter()
        .map(|f| f.source_task_id.as_str())
        .collect();
    let ports = |task_type: &str, input: bool| -> Option<Vec<String>> {
        let task = registry.get(task_type)?;
        let schema = if input { &task.input } else { &task.output };
        (!schema.is_open()).then(|| schema.ports().into_iter().map(str::to_string).collect())
    };
    let mut boundary = Boundary {
        roots: Vec::new(),
        leaves: Vec::new(),
        by_port: HashMap::new(),
        open: Vec::new(),
    };
    let defaults = node.defaults.as_object();
    let mut nodes = Vec::with_capacity(inner.tasks.len());
    for n in &inner.tasks {
        let mut n = n.clone();
        let root = !fed.contains(n.id.as_str());
        if root {
            let ports = ports(&n.task_type, true);
            // The compound node's inputs feed its roots, over their own defaults.
            if let (Some(given), Some(own)) = (defaults, n.defaults.as_object_mut()) {
                for (k, v) in given {
                    if Boundary::has(&ports, k) {
                        own.insert(k.clone(), v.clone());
                    }
                }
            }
            boundary.roots.push((prefix(&n.id), ports));
        }
        if !feeding.contains(n.id.as_str()) {
            boundary
                .leaves
                .push((prefix(&n.id), ports(&n.task_type, false)));
        }
        // Written only when the compound node sets something: a write
        // gives the inner node a config of its own.
        if !node.config.is_default() {
            let c = &node.config;
            let own = &mut n.config;
            own.timeout_ms = own.timeout_ms.or(c.timeout_ms);
            own.cache = own.cache.or(c.cache);
            own.retries = own.retries.or(c.retries);
            own.retry_backoff_ms = own.retry_backoff_ms.or(c.retry_backoff_ms);
            own.queue = own.queue.clone().or(c.queue.clone());
            own.priority = own.priority.or(c.priority);
        }
        n.id = prefix(&n.id);
        nodes.push(n);
    }
    let flows = inner
        .dataflows
        .into_iter()
        .map(|f| Dataflow {
            source_task_id: prefix(&f.source_task_id),
            target_task_id: prefix(&f.target_task_id),
            ..f
        })
        .collect();
    boundary.index();
    (nodes, flows, boundary)
}
