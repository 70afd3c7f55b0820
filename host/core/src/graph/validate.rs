//! Validation: a [`Graph`] checked against a [`Registry`] becomes a [`Plan`],
//! or a list of every problem found, each naming where it is.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::DiGraph;
use serde_json::{Map, Value};

use super::kind::{self, NodeKind};
use super::transform::{self, Step};
use super::{Dataflow, Graph};
use crate::schema::{TypeSet, types_of};
use crate::task::{Registry, TaskType};

/// One problem in a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A node id is empty.
    #[error("tasks[{index}]: node id is empty")]
    EmptyId {
        /// Position in `tasks`.
        index: usize,
    },
    /// Two nodes share an id.
    #[error("tasks[{second}]: duplicate node id \"{id}\" (first used by tasks[{first}])")]
    DuplicateNode {
        /// The id.
        id: String,
        /// Position of the first node with it.
        first: usize,
        /// Position of the repeat.
        second: usize,
    },
    /// A node names a task type the host does not know.
    #[error("tasks[{index}] (node \"{node}\"): unknown task type `{task_type}`{}", hint(.suggestion))]
    UnknownTaskType {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// The unknown type.
        task_type: String,
        /// The closest known type.
        suggestion: Option<String>,
    },
    /// `defaults` is not an object.
    #[error("tasks[{index}] (node \"{node}\"): `defaults` must be a JSON object")]
    DefaultsNotObject {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
    },
    /// A default is given for a port the task does not have.
    #[error("tasks[{index}] (node \"{node}\"): default for unknown input port `{port}` of `{task_type}` (ports: {})", list(.known))]
    UnknownDefaultPort {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// The task type.
        task_type: String,
        /// Its ports.
        known: Vec<String>,
    },
    /// A default has a type the port does not accept.
    #[error(
        "tasks[{index}] (node \"{node}\"): default for input port `{port}` is {found}, but `{task_type}` expects {expected}"
    )]
    DefaultTypeMismatch {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// The task type.
        task_type: String,
        /// The default's type.
        found: TypeSet,
        /// What the port accepts.
        expected: TypeSet,
    },
    /// A dataflow names a node that is not in the graph.
    #[error("dataflows[{index}] ({flow}): no node \"{node}\" in the graph")]
    UnknownNode {
        /// Position in `dataflows`.
        index: usize,
        /// The dataflow, as `a.x → b.y`.
        flow: String,
        /// The missing node.
        node: String,
    },
    /// A dataflow names a port the task does not have.
    #[error("dataflows[{index}] ({flow}): node \"{node}\" (`{task_type}`) has no {direction} port `{port}` (ports: {})", list(.known))]
    UnknownPort {
        /// Position in `dataflows`.
        index: usize,
        /// The dataflow.
        flow: String,
        /// The node.
        node: String,
        /// Its task type.
        task_type: String,
        /// `input` or `output`.
        direction: &'static str,
        /// The unknown port.
        port: String,
        /// The ports it has.
        known: Vec<String>,
    },
    /// The two ends of a dataflow can never agree on a type.
    #[error(
        "dataflows[{index}] ({flow}): output port gives {source_types} but input port accepts {target_types}"
    )]
    SchemaMismatch {
        /// Position in `dataflows`.
        index: usize,
        /// The dataflow.
        flow: String,
        /// What the source port gives.
        source_types: TypeSet,
        /// What the target port accepts.
        target_types: TypeSet,
    },
    /// Two dataflows feed the same input port, and it does not take an
    /// array (which would collect them).
    #[error(
        "dataflows[{index}] ({flow}): input port `{port}` of node \"{node}\" is already fed by dataflows[{first}] (only a port that takes an array collects several dataflows)"
    )]
    PortFedTwice {
        /// Position of the second dataflow.
        index: usize,
        /// The dataflow.
        flow: String,
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// Position of the first dataflow.
        first: usize,
    },
    /// A node's settings are wrong for its kind.
    #[error("tasks[{index}] (node \"{node}\"): {problem}")]
    BadNodeConfig {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// What is wrong.
        problem: String,
    },
    /// A transform of a dataflow is unknown or has bad params.
    #[error("dataflows[{index}] ({flow}): transforms[{position}]: {problem}")]
    BadTransform {
        /// Position in `dataflows`.
        index: usize,
        /// The dataflow.
        flow: String,
        /// Position in its `transforms`.
        position: usize,
        /// What is wrong.
        problem: String,
    },
    /// The dataflows form a cycle.
    #[error("cycle: {}", .nodes.join(" → "))]
    Cycle {
        /// The nodes along the cycle, the first repeated at the end.
        nodes: Vec<String>,
    },
    /// A required input has no default, no dataflow and (for a node without
    /// incoming dataflows) no value in the run's input.
    #[error("tasks[{index}] (node \"{node}\"): required input `{port}` of `{task_type}` has no default, no dataflow{}", if *.root { " and is not in the run's input" } else { "" })]
    MissingInput {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// The task type.
        task_type: String,
        /// Whether the node could have taken it from the run's input.
        root: bool,
    },
    /// A node names a queue the host does not define.
    #[error(
        "tasks[{index}] (node \"{node}\"): unknown queue `{queue}` (define it under [queues] in the configuration)"
    )]
    UnknownQueue {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// The queue.
        queue: String,
    },
    /// A node routes its task type away from the queue the operator put it
    /// in (which would escape that queue's limits).
    #[error(
        "tasks[{index}] (node \"{node}\"): task type `{task_type}` goes through queue `{routed}` (the operator's [queues.{routed}] tasks); a node cannot route it through `{queue}`"
    )]
    QueueOverridesRouting {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// Its task type.
        task_type: String,
        /// The queue the operator routes the task type through.
        routed: String,
        /// The queue the node asked for.
        queue: String,
    },
    /// A node of type `graph` has no `graph` (subgraph) field.
    #[error(
        "tasks[{index}] (node \"{node}\"): a compound node (type `graph`) needs a `graph` field holding its subgraph"
    )]
    CompoundWithoutGraph {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
    },
    /// A node has a `graph` field but another type.
    #[error(
        "tasks[{index}] (node \"{node}\"): a node of type `{task_type}` has no `graph` field (a compound node, type `graph`, has one, and a map, reduce, while or fallback node runs one)"
    )]
    GraphOnTask {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// Its type.
        task_type: String,
    },
    /// Several leaves of a compound node's subgraph give the port a dataflow
    /// takes from it.
    #[error("dataflows[{index}] ({flow}): output port `{port}` of compound node \"{node}\" is ambiguous: several of its leaf nodes give it ({})", .leaves.join(", "))]
    AmbiguousCompoundOutput {
        /// Position in `dataflows`.
        index: usize,
        /// The dataflow.
        flow: String,
        /// The compound node.
        node: String,
        /// The port.
        port: String,
        /// The inner leaves that give it.
        leaves: Vec<String>,
    },
    /// Compound nodes nest deeper than [`super::compound::MAX_DEPTH`].
    #[error(
        "tasks[{index}] (compound node \"{node}\"): compound nodes nest deeper than {max} levels"
    )]
    CompoundTooDeep {
        /// Position in `tasks`.
        index: usize,
        /// The compound node.
        node: String,
        /// The deepest nesting allowed.
        max: usize,
    },
    /// The graph is larger than a graph may be.
    #[error("the graph has more than {limit} {what}: split it into smaller graphs")]
    TooLarge {
        /// What there are too many of.
        what: &'static str,
        /// The most allowed.
        limit: usize,
    },
    /// A problem inside the subgraph of a compound node.
    #[error("tasks[{index}] (node \"{node}\"), in its subgraph: {error}")]
    InCompound {
        /// Position of the compound node in `tasks`.
        index: usize,
        /// The compound node.
        node: String,
        /// The problem, positioned in the subgraph.
        error: Box<ValidationError>,
    },
    /// The run's input is not an object.
    #[error("the run's input must be a JSON object")]
    InputNotObject,
    /// What the run's input gives a root node does not match its input schema.
    #[error(
        "tasks[{index}] (node \"{node}\"): the run's input does not fit `{task_type}`: {violation}"
    )]
    InputSchema {
        /// Position in `tasks`.
        index: usize,
        /// The node.
        node: String,
        /// The task type.
        task_type: String,
        /// The violation, with its instance and schema paths.
        violation: String,
    },
}

fn hint(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Where in a graph a problem is: what an editor marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The node at `tasks[i]` (for a problem inside a compound node's
    /// subgraph, the compound node).
    Task(usize),
    /// The dataflow at `dataflows[i]`.
    Dataflow(usize),
    /// These nodes, by id (a cycle).
    Nodes(Vec<String>),
    /// The graph as a whole, or the run's input.
    Graph,
}

impl ValidationError {
    /// Where the problem is.
    pub fn place(&self) -> Place {
        use ValidationError::*;
        match self {
            EmptyId { index }
            | UnknownTaskType { index, .. }
            | DefaultsNotObject { index, .. }
            | UnknownDefaultPort { index, .. }
            | DefaultTypeMismatch { index, .. }
            | BadNodeConfig { index, .. }
            | MissingInput { index, .. }
            | UnknownQueue { index, .. }
            | QueueOverridesRouting { index, .. }
            | CompoundWithoutGraph { index, .. }
            | GraphOnTask { index, .. }
            | CompoundTooDeep { index, .. }
            | InCompound { index, .. }
            | InputSchema { index, .. } => Place::Task(*index),
            DuplicateNode { second, .. } => Place::Task(*second),
            UnknownNode { index, .. }
            | UnknownPort { index, .. }
            | SchemaMismatch { index, .. }
            | PortFedTwice { index, .. }
            | BadTransform { index, .. }
            | AmbiguousCompoundOutput { index, .. } => Place::Dataflow(*index),
            Cycle { nodes } => Place::Nodes(nodes.clone()),
            TooLarge { .. } | InputNotObject => Place::Graph,
        }
    }
}

/// Every problem found in one graph, with the graph's origin (file name).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationErrors {
    /// The graph's file, or `<graph>`.
    pub origin: String,
    /// The problems, in the order found.
    pub errors: Vec<ValidationError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{}: {} problem{}",
            self.origin,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {}: {e}", self.origin)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// A node of a validated graph.
#[derive(Debug, Clone)]
pub struct PlanNode {
    /// The node's id.
    pub id: String,
    /// Its task type.
    pub task: Arc<TaskType>,
    /// Its fixed inputs.
    pub defaults: Map<String, Value>,
    /// Its wall-clock limit per run.
    pub timeout: Duration,
    /// Whether its output may come from (and go to) the output cache.
    pub cache: bool,
    /// Retries after a retryable failure, if set on the node.
    pub retries: Option<u32>,
    /// First retry delay, if set on the node.
    pub retry_backoff: Option<Duration>,
    /// The queue it is routed through, if set on the node.
    pub queue: Option<String>,
    /// Its priority among ready nodes.
    pub priority: i32,
    /// What it is: a task, or a built-in kind.
    pub kind: NodeKind,
}

/// A dataflow of a validated graph, by node index.
#[derive(Debug, Clone)]
pub struct PlanEdge {
    /// Source node index.
    pub source: usize,
    /// Source output port (`*` = whole output).
    pub source_port: String,
    /// Target node index.
    pub target: usize,
    /// Target input port (`*` = merge into the input).
    pub target_port: String,
    /// What it does to the value on the way.
    pub transforms: Vec<Step>,
    /// Whether its target port collects several dataflows into an array
    /// (one element per dataflow, in dataflow order).
    pub fan_in: bool,
}

/// A validated graph, ready to run: nodes resolved to task types, edges to
/// indices, and the adjacency the runner schedules by.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the graph came from.
    pub origin: String,
    /// The nodes, in the graph's order.
    pub nodes: Vec<PlanNode>,
    /// The dataflows, in the graph's order.
    pub edges: Vec<PlanEdge>,
    /// For each node, the indices of its outgoing edges.
    pub outgoing: Vec<Vec<usize>>,
    /// For each node, how many edges come in.
    pub incoming: Vec<usize>,
    /// What a whole run may take, as the graph says.
    pub limits: super::RunLimits,
}

impl Plan {
    /// Validate `graph` against `registry`, refusing it if it is larger than
    /// `limits`. Returns every problem found.
    pub fn new(
        graph: &Graph,
        registry: &Registry,
        origin: &str,
        limits: &super::SizeLimits,
    ) -> Result<Plan, ValidationErrors> {
        // Sizes first, before anything costs in proportion to them.
        if let Some(error) = limits.oversize(graph) {
            return Err(ValidationErrors {
                origin: origin.to_string(),
                errors: vec![error],
            });
        }
        if super::compound::has_compound(graph) {
            let (_, plan) =
                super::compound::flatten(graph, registry, limits, 0).map_err(|errors| {
                    ValidationErrors {
                        origin: origin.to_string(),
                        errors,
                    }
                })?;
            return Ok(Plan {
                origin: origin.to_string(),
                limits: graph.limits,
                ..plan
            });
        }
        Self::new_flat(graph, registry, origin, &HashMap::new())
    }

    /// Validate a graph without compound nodes; `bodies`: the task types of
    /// the subgraphs its kind nodes hold, by node position.
    pub(crate) fn new_flat(
        graph: &Graph,
        registry: &Registry,
        origin: &str,
        bodies: &HashMap<usize, Arc<TaskType>>,
    ) -> Result<Plan, ValidationErrors> {
        let mut errors = Vec::new();
        let mut index_of: HashMap<&str, usize> = HashMap::new();
        let mut types: Vec<Option<Arc<TaskType>>> = Vec::with_capacity(graph.tasks.len());
        let mut kinds: Vec<NodeKind> = Vec::with_capacity(graph.tasks.len());

        for (i, node) in graph.tasks.iter().enumerate() {
            if node.id.is_empty() {
                errors.push(ValidationError::EmptyId { index: i });
            } else if let Some(&first) = index_of.get(node.id.as_str()) {
                errors.push(ValidationError::DuplicateNode {
                    id: node.id.clone(),
                    first,
                    second: i,
                });
            } else {
                index_of.insert(&node.id, i);
            }
            let (kind, task) = match resolve(i, node, registry, bodies.get(&i)) {
                Ok((kind, task)) => (kind, Some(task)),
                Err(e) => {
                    errors.extend(e);
                    (NodeKind::Task, None)
                }
            };
            if let Some(key) = kind::misplaced_settings(node) {
                errors.push(ValidationError::BadNodeConfig {
                    index: i,
                    node: node.id.clone(),
                    problem: format!(
                        "`{key}` does not apply to a node of type `{}`",
                        node.task_type
                    ),
                });
            }
            if let Some(task) = &task {
                check_defaults(i, node, task, &mut errors);
            }
            types.push(task);
            kinds.push(kind);
        }

        let mut edges = Vec::with_capacity(graph.dataflows.len());
        let mut feeding: HashMap<(&str, &str), usize> = HashMap::new();
        for flow in &graph.dataflows {
            *feeding
                .entry((&flow.target_task_id, &flow.target_task_port_id))
                .or_default() += 1;
        }
        let mut fed: HashMap<(usize, &str), usize> = HashMap::new();
        for (i, flow) in graph.dataflows.iter().enumerate() {
            let ends = [&flow.source_task_id, &flow.target_task_id].map(|id| {
                let found = index_of.get(id.as_str()).copied();
                if found.is_none() {
                    errors.push(ValidationError::UnknownNode {
                        index: i,
                        flow: flow.to_string(),
                        node: id.clone(),
                    });
                }
                found
            });
            let steps =
                transform::compile_all(&flow.transforms).unwrap_or_else(|(position, problem)| {
                    errors.push(ValidationError::BadTransform {
                        index: i,
                        flow: flow.to_string(),
                        position,
                        problem,
                    });
                    Vec::new()
                });
            let [Some(s), Some(t)] = ends else { continue };
            let port = flow.target_task_port_id.as_str();
            let several = port != "*"
                && feeding
                    .get(&(flow.target_task_id.as_str(), port))
                    .is_some_and(|n| *n > 1);
            let takes_array = types[t].as_ref().is_some_and(|tt| {
                tt.input
                    .port_types(port)
                    .is_some_and(|ts| ts.contains(crate::schema::JsonType::Array))
            });
            let fan_in = several && takes_array;
            if several && !takes_array {
                if let Some(&first) = fed.get(&(t, port)) {
                    errors.push(ValidationError::PortFedTwice {
                        index: i,
                        flow: flow.to_string(),
                        node: flow.target_task_id.clone(),
                        port: port.to_string(),
                        first,
                    });
                } else {
                    fed.insert((t, port), i);
                }
            }
            if let (Some(st), Some(tt)) = (&types[s], &types[t]) {
                check_edge(i, flow, st, tt, &steps, fan_in, &mut errors);
            }
            edges.push(PlanEdge {
                source: s,
                source_port: flow.source_task_port_id.clone(),
                target: t,
                target_port: flow.target_task_port_id.clone(),
                transforms: steps,
                fan_in,
            });
        }

        let n = graph.tasks.len();
        let mut outgoing = vec![Vec::new(); n];
        let mut incoming_edges: Vec<Vec<&PlanEdge>> = vec![Vec::new(); n];
        for (e, edge) in edges.iter().enumerate() {
            outgoing[edge.source].push(e);
            incoming_edges[edge.target].push(edge);
        }
        let incoming: Vec<usize> = incoming_edges.iter().map(Vec::len).collect();
        errors.extend(find_cycles(graph, &edges));

        // Required inputs of nodes fed by dataflows must be satisfied by the graph
        // itself; those of root nodes may come from the run's input (checked by
        // `Plan::check_input`).
        for (i, node) in graph.tasks.iter().enumerate() {
            let Some(task) = &types[i] else { continue };
            if incoming[i] == 0 {
                continue;
            }
            let defaults = node.defaults.as_object();
            for port in missing_inputs(defaults, task, &incoming_edges[i], &types) {
                errors.push(ValidationError::MissingInput {
                    index: i,
                    node: node.id.clone(),
                    port,
                    task_type: task.id.clone(),
                    root: false,
                });
            }
        }

        if !errors.is_empty() {
            return Err(ValidationErrors {
                origin: origin.to_string(),
                errors,
            });
        }
        let nodes = graph
            .tasks
            .iter()
            .zip(types)
            .zip(kinds)
            .map(|((node, task), kind)| {
                let task = task.expect("checked above");
                PlanNode {
                    id: node.id.clone(),
                    // A node may lower its task type's limit, never raise it.
                    timeout: node
                        .config
                        .timeout()
                        .map_or(task.timeout, |asked| asked.min(task.timeout)),
                    cache: node.config.cache != Some(false) && task.cacheable && !task.side_effects,
                    retries: node.config.retries,
                    retry_backoff: node.config.retry_backoff_ms.map(Duration::from_millis),
                    queue: node.config.queue.clone(),
                    priority: node.config.priority.unwrap_or(0),
                    defaults: node.defaults.as_object().cloned().unwrap_or_default(),
                    task,
                    kind,
                }
            })
            .collect();
        Ok(Plan {
            origin: origin.to_string(),
            nodes,
            edges,
            outgoing,
            incoming,
            limits: graph.limits,
        })
    }

    /// Indices of the nodes no dataflow feeds: they take the run's input.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.incoming[i] == 0)
    }

    /// Whether node `i` feeds no other node (its output is part of the result).
    pub fn is_leaf(&self, i: usize) -> bool {
        self.outgoing[i].is_empty()
    }

    /// The part of the run's `input` that root node `i` receives: every key its
    /// input schema declares (every key, if its schema is open).
    pub fn root_input(&self, i: usize, input: &Map<String, Value>) -> Map<String, Value> {
        let schema = &self.nodes[i].task.input;
        if schema.is_open() {
            return input.clone();
        }
        schema
            .ports()
            .into_iter()
            .filter_map(|p| input.get(p).map(|v| (p.to_string(), v.clone())))
            .collect()
    }

    /// Check that the run's `input` gives every root node the required inputs
    /// its defaults do not, and that what it gives fits the node's input schema.
    pub fn check_input(&self, input: &Value) -> Result<(), ValidationErrors> {
        let fail = |errors| {
            Err(ValidationErrors {
                origin: self.origin.clone(),
                errors,
            })
        };
        let Some(input) = input.as_object() else {
            return fail(vec![ValidationError::InputNotObject]);
        };
        let mut errors = Vec::new();
        for i in self.roots() {
            let node = &self.nodes[i];
            let given = self.root_input(i, input);
            let before = errors.len();
            for port in node.task.input.required() {
                if !node.defaults.contains_key(port) && !given.contains_key(port) {
                    errors.push(ValidationError::MissingInput {
                        index: i,
                        node: node.id.clone(),
                        port: port.to_string(),
                        task_type: node.task.id.clone(),
                        root: true,
                    });
                }
            }
            if errors.len() > before || given.is_empty() {
                continue;
            }
            let mut full = node.defaults.clone();
            full.extend(given);
            if let Err(violations) = node.task.input.check(&Value::Object(full)) {
                errors.extend(
                    violations
                        .into_iter()
                        .map(|v| ValidationError::InputSchema {
                            index: i,
                            node: node.id.clone(),
                            task_type: node.task.id.clone(),
                            violation: v.to_string(),
                        }),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            fail(errors)
        }
    }

    /// The required inputs that root nodes expect from the run's input, as
    /// `node.port` (for `weft validate` to report).
    pub fn expected_input(&self) -> Vec<String> {
        self.roots()
            .flat_map(|i| {
                let node = &self.nodes[i];
                node.task
                    .input
                    .required()
                    .into_iter()
                    .filter(|p| !node.defaults.contains_key(*p))
                    .map(move |p| format!("{}.{p}", node.id))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The kind and task type node `i` names, or why it names none.
fn resolve(
    i: usize,
    node: &super::Node,
    registry: &Registry,
    body: Option<&Arc<TaskType>>,
) -> Result<(NodeKind, Arc<TaskType>), Vec<ValidationError>> {
    if kind::is_kind(&node.task_type) {
        return kind::resolve(i, node, registry, body);
    }
    if let Some(body) = body.filter(|_| node.task_type == super::COMPOUND) {
        return Ok((NodeKind::Task, body.clone()));
    }
    match registry.get(&node.task_type) {
        Some(task) => Ok((NodeKind::Task, task.clone())),
        None => Err(vec![ValidationError::UnknownTaskType {
            index: i,
            node: node.id.clone(),
            task_type: node.task_type.clone(),
            suggestion: registry.suggest(&node.task_type).map(str::to_string),
        }]),
    }
}

/// Check that dataflow `i` joins ports that exist and whose types can
/// agree once its transforms are applied; a fan-in dataflow gives one element
/// of the target's array.
fn check_edge(
    i: usize,
    flow: &Dataflow,
    st: &TaskType,
    tt: &TaskType,
    steps: &[Step],
    fan_in: bool,
    errors: &mut Vec<ValidationError>,
) {
    let port_error = |node: &str, task: &TaskType, direction, port: &str| {
        let schema = if direction == "input" {
            &task.input
        } else {
            &task.output
        };
        ValidationError::UnknownPort {
            index: i,
            flow: flow.to_string(),
            node: node.to_string(),
            task_type: task.id.clone(),
            direction,
            port: port.to_string(),
            known: schema.ports().into_iter().map(str::to_string).collect(),
        }
    };
    let error_schema = kind::error_schema();
    let timeout_schema = super::wait::timeout_schema();
    let source = match flow.source_task_port_id.as_str() {
        kind::ERROR_PORT => Some(&error_schema),
        super::TIMEOUT_PORT if st.id == super::WAIT => Some(&timeout_schema),
        port => st.output.port(port),
    };
    if source.is_none() {
        errors.push(port_error(
            &flow.source_task_id,
            st,
            "output",
            &flow.source_task_port_id,
        ));
    }
    let target = tt.input.port(&flow.target_task_port_id);
    if target.is_none() {
        errors.push(port_error(
            &flow.target_task_id,
            tt,
            "input",
            &flow.target_task_port_id,
        ));
    }
    let (Some(source), Some(target)) = (source, target) else {
        return;
    };
    let given = steps
        .iter()
        .fold(source.clone(), |s, step| step.output_schema(&s));
    let source_types = types_of(&given, st.output.raw());
    let accepted = if fan_in {
        target.get("items").unwrap_or(&Value::Bool(true))
    } else {
        target
    };
    let target_types = types_of(accepted, tt.input.raw());
    if source_types.intersect(target_types).is_empty() {
        errors.push(ValidationError::SchemaMismatch {
            index: i,
            flow: flow.to_string(),
            source_types,
            target_types,
        });
    }
}

fn check_defaults(
    i: usize,
    node: &super::Node,
    task: &TaskType,
    errors: &mut Vec<ValidationError>,
) {
    let Some(defaults) = node.defaults.as_object() else {
        errors.push(ValidationError::DefaultsNotObject {
            index: i,
            node: node.id.clone(),
        });
        return;
    };
    for (port, value) in defaults {
        let Some(schema) = task.input.port(port) else {
            errors.push(ValidationError::UnknownDefaultPort {
                index: i,
                node: node.id.clone(),
                port: port.clone(),
                task_type: task.id.clone(),
                known: task.input.ports().into_iter().map(str::to_string).collect(),
            });
            continue;
        };
        let expected = types_of(schema, task.input.raw());
        let found = types_of(&serde_json::json!({ "const": value }), &Value::Null);
        if expected.intersect(found).is_empty() {
            errors.push(ValidationError::DefaultTypeMismatch {
                index: i,
                node: node.id.clone(),
                port: port.clone(),
                task_type: task.id.clone(),
                found,
                expected,
            });
        }
    }
}

/// Required input ports of node `i` that neither a default nor a dataflow gives.
fn missing_inputs(
    defaults: Option<&Map<String, Value>>,
    task: &TaskType,
    incoming: &[&PlanEdge],
    types: &[Option<Arc<TaskType>>],
) -> Vec<String> {
    task.input
        .required()
        .into_iter()
        .filter(|port| {
            let by_default = defaults.is_some_and(|d| d.contains_key(*port));
            let by_flow = incoming.iter().any(|e| {
                e.target_port == *port
                    || (e.target_port == "*"
                        && types[e.source].as_ref().is_none_or(|src| {
                            // A whole object merged in gives the ports its
                            // schema declares (any, if open).
                            e.source_port != "*"
                                || src.output.is_open()
                                || src.output.ports().contains(port)
                        }))
            });
            !by_default && !by_flow
        })
        .map(str::to_string)
        .collect()
}

/// Every cycle (one per strongly connected component), as a path of node ids.
fn find_cycles(graph: &Graph, edges: &[PlanEdge]) -> Vec<ValidationError> {
    let mut g = DiGraph::<usize, ()>::with_capacity(graph.tasks.len(), edges.len());
    let ids: Vec<_> = (0..graph.tasks.len()).map(|i| g.add_node(i)).collect();
    for e in edges {
        g.add_edge(ids[e.source], ids[e.target], ());
    }
    let mut out = Vec::new();
    // Kosaraju's, not Tarjan's: petgraph's Tarjan recurses once per node on
    // a path, so a long chain of nodes (a graph author's choice) would
    // overflow the thread's stack and abort the whole process.
    for scc in petgraph::algo::kosaraju_scc(&g) {
        let is_cycle = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
        if !is_cycle {
            continue;
        }
        // Walk from the member that comes first in the graph, staying inside the
        // component, until a node repeats: that is a cycle.
        let members: std::collections::HashSet<_> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|n| g[**n]).expect("non-empty");
        let mut path = vec![start];
        let mut seen = HashMap::from([(start, 0usize)]);
        let mut at = start;
        loop {
            let next = g
                .neighbors(at)
                .filter(|n| members.contains(n))
                .min_by_key(|n| g[*n])
                .expect("every member of a cycle has a successor in it");
            if let Some(&pos) = seen.get(&next) {
                let mut cycle: Vec<String> = path[pos..]
                    .iter()
                    .map(|n| graph.tasks[g[*n]].id.clone())
                    .collect();
                cycle.push(graph.tasks[g[next]].id.clone());
                out.push(ValidationError::Cycle { nodes: cycle });
                break;
            }
            seen.insert(next, path.len());
            path.push(next);
            at = next;
        }
    }
    out
}
