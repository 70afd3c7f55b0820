//! Graphs: the JSON format, the fluent builder, and validation into a [`Plan`].
//!
//! Owns the user's description of a pipeline (nodes and dataflows, in
//! Workglow's JSON shape) and every check that can be made before anything
//! runs. It must not run anything.
//!
//! ```
//! use weft_core::graph::Graph;
//! let g = Graph::builder()
//!     .task("split", "text.split").defaults(serde_json::json!({"separator": ","}))
//!     .task("join", "text.join")
//!     .flow("split.parts", "join.parts")
//!     .build();
//! assert_eq!(g.dataflows[0].target_task_port_id, "parts");
//! ```
//!
//! # Compound nodes
//!
//! A node of type `graph` with a `graph` field holds a subgraph. Before
//! validation it is replaced by the subgraph's nodes, with ids prefixed by its
//! own (`outer/inner`), so they run, retry, cache and resume like any other.
//! Its input port `p` (by dataflow or in its `defaults`) feeds port `p` of
//! every subgraph node that no subgraph dataflow feeds; its output port `p` is
//! port `p` of the one subgraph node that feeds no other and has it. Its
//! `config` applies to every subgraph node that does not set its own.

mod compound;
pub mod condition;
mod kind;
pub mod subgraph;
pub mod transform;
mod uses;
mod validate;
mod wait;
pub mod workglow;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use compound::{COMPOUND, MAX_DATAFLOWS, MAX_DEPTH, MAX_NODES, SizeLimits};
pub use kind::{
    BUILTIN, Branches, CONDITIONAL, Collector, ERROR_PORT, ERRORS_PORT, Elements, FALLBACK,
    FallbackSpec, MAP, MAX_ELEMENTS, MapSpec, NodeKind, PASS, REDUCE, ReduceSpec, WHILE, WhileSpec,
    error_value,
};
pub use uses::{Reached, UsePaths, waits};
pub use validate::{Place, Plan, PlanEdge, PlanNode, ValidationError, ValidationErrors};
pub use wait::{TIMEOUT_PORT, WAIT, WaitSpec, valid_signal_name};

/// A pipeline: tasks (nodes) and dataflows (edges).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// The nodes.
    #[serde(default)]
    pub tasks: Vec<Node>,
    /// The edges: each carries one output port of a node to one input port of
    /// another. Several may join the same two nodes.
    #[serde(default)]
    pub dataflows: Vec<Dataflow>,
    /// What a whole run of it may take (within the host's ceilings).
    #[serde(default, skip_serializing_if = "RunLimits::is_none")]
    pub limits: RunLimits,
}

/// What a whole run may take: Workglow's run options `timeout` and
/// `maxTasks`. A graph sets them; the host's ceilings
/// (`[quotas] run_timeout_ms`, `run_max_tasks`) bound them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// The run is cancelled this long after it was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The run is cancelled when it would start more tasks than this: its
    /// nodes, and the elements, iterations and alternatives of its maps,
    /// loops and fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u64>,
}

impl RunLimits {
    /// No limit set.
    pub fn is_none(&self) -> bool {
        *self == RunLimits::default()
    }

    /// These limits, lowered to `ceiling` where it is lower (or where these
    /// set none).
    pub fn within(self, ceiling: RunLimits) -> RunLimits {
        let lower = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RunLimits {
            timeout_ms: lower(self.timeout_ms, ceiling.timeout_ms),
            max_tasks: lower(self.max_tasks, ceiling.max_tasks),
        }
    }
}

/// A node: one use of a task type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within the graph.
    pub id: String,
    /// The task type's id, e.g. `text.split`.
    #[serde(rename = "type")]
    pub task_type: String,
    /// A label for people; not used by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Input values fixed in the graph (Workglow calls them `input`). Values
    /// arriving by dataflow or graph input override them.
    #[serde(
        default = "empty_object",
        alias = "input",
        skip_serializing_if = "is_empty_object"
    )]
    pub defaults: Value,
    /// Per-node settings.
    #[serde(default, skip_serializing_if = "ConfigSlot::is_default")]
    pub config: ConfigSlot,
    /// For a compound node (type `graph`): the subgraph it runs (see
    /// [compound nodes](self#compound-nodes)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<Box<Graph>>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// A node's [`NodeConfig`], held only when set. Most nodes set nothing, and
/// a `NodeConfig` is several hundred bytes, so a graph of 100,000 plain
/// nodes no longer carries 100,000 empty ones in each of its copies. Reads
/// go through to the default when nothing is set; the first write makes
/// the node its own.
#[derive(Debug, Clone, Default)]
pub struct ConfigSlot(Option<Box<NodeConfig>>);

static DEFAULT_CONFIG: std::sync::LazyLock<NodeConfig> =
    std::sync::LazyLock::new(NodeConfig::default);

impl ConfigSlot {
    fn is_default(&self) -> bool {
        self.0.as_deref().is_none_or(NodeConfig::is_default)
    }
}

impl From<NodeConfig> for ConfigSlot {
    fn from(config: NodeConfig) -> Self {
        ConfigSlot((!config.is_default()).then(|| Box::new(config)))
    }
}

impl std::ops::Deref for ConfigSlot {
    type Target = NodeConfig;
    fn deref(&self) -> &NodeConfig {
        self.0.as_deref().unwrap_or(&DEFAULT_CONFIG)
    }
}

impl std::ops::DerefMut for ConfigSlot {
    fn deref_mut(&mut self) -> &mut NodeConfig {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for ConfigSlot {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Serialize for ConfigSlot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ConfigSlot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        NodeConfig::deserialize(deserializer).map(ConfigSlot::from)
    }
}

/// Per-node settings that override the task type's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Wall-clock limit for one run of this node, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `false` to never serve this node from the output cache (nor store its
    /// output there). Only cacheable, side-effect-free task types are cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// How many times to retry after a retryable failure (default: the host's,
    /// 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The first retry's delay in milliseconds; each next one doubles, up to
    /// the host's cap (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_ms: Option<u64>,
    /// Route this node through the named queue (and its limiters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Among ready nodes, higher priorities start first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// A `conditional` node's branches, tried in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<Vec<Branch>>,
    /// A `conditional` node: `true` (the default) takes the first branch whose
    /// condition holds; `false` takes every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    /// A `conditional` node: the branch (by id) taken when no condition holds.
    #[serde(
        default,
        alias = "defaultBranch",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_branch: Option<String>,
    /// A `conditional` node: `true` gives each input port `p` as `p_N` for
    /// the `N`th branch taken (from 1), or `p_else` when an exclusive one
    /// takes none (Workglow's `conditionConfig` form); default `false`: each
    /// branch's port carries the whole input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_ports: Option<bool>,
    /// A `map` node: the task type run once per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// A `map` node: the input ports iterated over (default: every port
    /// given an array where its task type does not take one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<Vec<String>>,
    /// A `map` node: how many elements run at once (default: the host's
    /// parallelism).
    #[serde(
        default,
        alias = "concurrencyLimit",
        skip_serializing_if = "Option::is_none"
    )]
    pub concurrency: Option<usize>,
    /// A `map` node: elements run in batches of this many, one batch after
    /// another (default: one batch).
    #[serde(default, alias = "batchSize", skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// A `map` node: what an element that fails does to the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// A `map` node: the most elements it takes (default and ceiling:
    /// [`kind::MAX_ELEMENTS`]).
    #[serde(
        default,
        alias = "maxIterations",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_iterations: Option<usize>,
    /// A `fallback` node: what to try, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<Alternative>>,
    /// A `reduce` node: the input port carrying the accumulator (its value in
    /// the node's input is the initial one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accumulator: Option<String>,
    /// A `reduce` node: the output port of each step that becomes the next
    /// accumulator (default: the accumulator's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carry: Option<String>,
    /// A `while` node: a CEL expression over `output` (the last iteration's)
    /// and `input` (its input), or Workglow's operator form on `output`;
    /// the loop goes on while it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<WhileCondition>,
    /// A compound node: how its leaves' outputs make its output (Workglow's
    /// `merge`; default: each output port from the one leaf that has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    /// A `pass` node (Workglow's `InputTask`/`OutputTask`): the schema of
    /// what it takes; kept as written on other nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// A `pass` node: the schema of what it gives (default: its
    /// `input_schema`); a `wait` node: the schema of the signal's body,
    /// which is its output (default: any object); kept as written on other
    /// nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// A `wait` node: the name of the signal it waits for (default: the
    /// node's id), 1–128 of `[A-Za-z0-9._-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// A title for people (Workglow's `title`); not used by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A description for people; not used by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Anything a tool keeps with the node (Workglow's `extras`); not used
    /// by the runner, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<Value>,
}

/// A `while` node's condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WhileCondition {
    /// A CEL expression over `output` and `input`.
    Cel(String),
    /// Workglow's operator form, on the last iteration's output: `field` (a
    /// dotted path; empty: the whole output) compared with `value`.
    Operator {
        /// A dotted path into the output.
        #[serde(default)]
        field: String,
        /// How to compare.
        operator: condition::Operator,
        /// What to compare with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
}

/// How a compound node's leaves make its output, as Workglow names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Merge {
    /// One leaf: its output. Several: each output port is the array of the
    /// values the leaves that have it give, in graph order.
    #[serde(rename = "PROPERTY_ARRAY")]
    PropertyArray,
    /// `{"results": [{id, type, data}, …]}`: each leaf's output, in graph
    /// order (Workglow gives the bare array; a Weft node gives an object).
    #[serde(rename = "GRAPH_RESULT_ARRAY")]
    GraphResultArray,
}

/// One alternative of a `fallback` node: a task type (default: the node's
/// `task`) and inputs that override the node's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    /// The task type, if not the node's `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Inputs given to this alternative over the node's.
    #[serde(
        default = "empty_object",
        alias = "input",
        skip_serializing_if = "is_empty_object"
    )]
    pub defaults: Value,
}

/// What a failed element does to its `map` node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The map fails (the elements running finish first).
    #[default]
    Fail,
    /// The element is left out of the results.
    Skip,
    /// The element's result is `null`, and its error is listed in the
    /// `_errors` output port.
    Collect,
}

/// One branch of a `conditional` node: an output port and when it is taken,
/// as a CEL expression over the node's `input` (`when`) or in Workglow's
/// operator form (`field`, `operator`, `value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// Unique among the node's branches.
    pub id: String,
    /// The output port carrying the node's input when the branch is taken
    /// (default: the branch's id).
    #[serde(default, alias = "outputPort", skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// A CEL expression; `input` is the node's input object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Operator form: a dotted path into the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Operator form: how to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<condition::Operator>,
    /// Operator form: what to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl NodeConfig {
    fn is_default(&self) -> bool {
        *self == NodeConfig::default()
    }

    /// The timeout, if set.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// An edge: `source.port → target.port`. Port `*` means the whole object: as a
/// source, the node's entire output; as a target, merged into the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dataflow {
    /// Optional id, kept for tools that set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The node the value comes from.
    pub source_task_id: String,
    /// Its output port.
    pub source_task_port_id: String,
    /// The node the value goes to.
    pub target_task_id: String,
    /// Its input port.
    pub target_task_port_id: String,
    /// Changes to the value on the way, applied in order (see
    /// [`transform`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<transform::Transform>,
}

impl std::fmt::Display for Dataflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} → {}.{}",
            self.source_task_id,
            self.source_task_port_id,
            self.target_task_id,
            self.target_task_port_id
        )
    }
}

/// A graph file that cannot be read as a graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Reading the file failed.
    #[error("cannot read graph {origin}: {source}")]
    Read {
        /// The file.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is malformed or has the wrong shape.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file (or `<input>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The JSON is in Workglow's shape but has what Weft cannot read.
    #[error("{origin}: {message}")]
    Workglow {
        /// The file (or `<input>`).
        origin: String,
        /// What is wrong, and where.
        message: String,
    },
}

impl Graph {
    /// Start building a graph in code.
    pub fn builder() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// Parse graph JSON, in Weft's shape or as Workglow writes it
    /// ([`workglow`]); `origin` (a file name) is used in error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<Graph, GraphError> {
        let weft = match serde_json::from_str::<Graph>(text) {
            // Weft's shape, naming a Workglow class that is a node kind
            // here (`AiChatTask`, `WhileTask`): Workglow's, read as such.
            Ok(graph) if graph.names_workglow_kind() => {
                let value = serde_json::from_str(text).map_err(|e| GraphError::Workglow {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
                return Self::from_value(value, origin);
            }
            Ok(graph) => return Ok(graph),
            Err(e) => e,
        };
        let syntax = |e: &serde_json::Error| GraphError::Syntax {
            origin: origin.to_string(),
            line: e.line(),
            column: e.column(),
            message: if e.is_syntax() || e.is_eof() {
                format!("malformed JSON: {e}")
            } else {
                format!("not a graph: {e}")
            },
        };
        match serde_json::from_str::<Value>(text) {
            Ok(value) if workglow::is_workglow(&value) => Self::from_value(value, origin),
            _ => Err(syntax(&weft)),
        }
    }

    /// Whether a node (or one of its subgraphs') has a type that is one of
    /// Workglow's classes read as a node kind.
    fn names_workglow_kind(&self) -> bool {
        self.tasks.iter().any(|n| {
            workglow::node_kind_of(&n.task_type).is_some()
                || n.graph.as_ref().is_some_and(|g| g.names_workglow_kind())
        })
    }

    /// A graph from JSON already parsed, in Weft's shape or as Workglow
    /// writes it.
    pub fn from_value(value: Value, origin: &str) -> Result<Graph, GraphError> {
        let value = if workglow::is_workglow(&value) {
            workglow::to_weft(value).map_err(|message| GraphError::Workglow {
                origin: origin.to_string(),
                message,
            })?
        } else {
            value
        };
        serde_json::from_value(value).map_err(|e| GraphError::Workglow {
            origin: origin.to_string(),
            message: format!("is not a graph: {e}"),
        })
    }

    /// Read and parse a graph file.
    pub fn from_file(path: &std::path::Path) -> Result<Graph, GraphError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GraphError::Read {
            origin: origin.clone(),
            source,
        })?;
        Self::from_json(&text, &origin)
    }

    /// The graph as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a graph always serializes")
    }
}

/// Builds a [`Graph`] in code. Node settings (`defaults`, `timeout_ms`) apply to
/// the node added last.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// Add node `id` of task type `task_type`.
    pub fn task(mut self, id: &str, task_type: &str) -> Self {
        self.graph.tasks.push(Node {
            id: id.to_string(),
            task_type: task_type.to_string(),
            name: None,
            defaults: empty_object(),
            config: ConfigSlot::default(),
            graph: None,
        });
        self
    }

    /// Add compound node `id` running `subgraph`: its input ports feed the
    /// subgraph's root nodes, its output ports come from its leaf nodes.
    pub fn subgraph(mut self, id: &str, subgraph: Graph) -> Self {
        self.graph.tasks.push(Node {
            id: id.to_string(),
            task_type: compound::COMPOUND.to_string(),
            name: None,
            defaults: empty_object(),
            config: ConfigSlot::default(),
            graph: Some(Box::new(subgraph)),
        });
        self
    }

    /// Add a `conditional` node `id`; give it branches with
    /// [`GraphBuilder::branch`].
    pub fn conditional(self, id: &str) -> Self {
        self.task(id, kind::CONDITIONAL)
    }

    /// Add a branch to the last (conditional) node: taken when the CEL
    /// expression `when` holds; its output port is its id.
    pub fn branch(self, id: &str, when: &str) -> Self {
        self.configure(|c| {
            c.branches.get_or_insert_with(Vec::new).push(Branch {
                id: id.to_string(),
                port: None,
                when: Some(when.to_string()),
                field: None,
                operator: None,
                value: None,
            })
        })
    }

    /// Add a `map` node `id` running `task` per element.
    pub fn map(self, id: &str, task: &str) -> Self {
        self.task(id, kind::MAP)
            .configure(|c| c.task = Some(task.to_string()))
    }

    /// Add a `reduce` node `id`: `task` per item of port `over`, carrying
    /// port `accumulator` (the same-named output port is the next one).
    pub fn reduce(self, id: &str, task: &str, over: &str, accumulator: &str) -> Self {
        self.task(id, kind::REDUCE).configure(|c| {
            c.task = Some(task.to_string());
            c.over = Some(vec![over.to_string()]);
            c.accumulator = Some(accumulator.to_string());
        })
    }

    /// Add a `while` node `id`: `task` again while the CEL `condition` holds
    /// (over `output` and `input`), at most `max_iterations` times.
    pub fn repeat_while(
        self,
        id: &str,
        task: &str,
        condition: &str,
        max_iterations: usize,
    ) -> Self {
        self.task(id, kind::WHILE).configure(|c| {
            c.task = Some(task.to_string());
            c.condition = Some(WhileCondition::Cel(condition.to_string()));
            c.max_iterations = Some(max_iterations);
        })
    }

    /// Add a `fallback` node `id`; give it alternatives with
    /// [`GraphBuilder::alternative`].
    pub fn fallback(self, id: &str) -> Self {
        self.task(id, kind::FALLBACK)
    }

    /// Add an alternative to the last (fallback) node: `task` with
    /// `defaults` over the node's input.
    pub fn alternative(self, task: &str, defaults: Value) -> Self {
        self.configure(|c| {
            c.alternatives
                .get_or_insert_with(Vec::new)
                .push(Alternative {
                    task: Some(task.to_string()),
                    defaults,
                })
        })
    }

    /// Make the last (map, reduce, while or fallback) node run `subgraph`
    /// in place of its task type: `.map("plus2", "graph").body(inner)`.
    pub fn body(mut self, subgraph: Graph) -> Self {
        if let Some(node) = self.graph.tasks.last_mut() {
            node.config.task = None;
            node.graph = Some(Box::new(subgraph));
        }
        self
    }

    /// Change the last node's settings.
    pub fn configure(mut self, f: impl FnOnce(&mut NodeConfig)) -> Self {
        if let Some(node) = self.graph.tasks.last_mut() {
            f(&mut node.config);
        }
        self
    }

    /// Send node `node`'s failure to `to` (`"node.port"`, or a bare node id
    /// for the whole error object) through its `[error]` port.
    pub fn on_error(self, node: &str, to: &str) -> Self {
        let (t, tp) = split_port(to);
        self.connect(node, kind::ERROR_PORT, t, tp)
    }

    /// Set the last node's fixed inputs (a JSON object).
    pub fn defaults(mut self, defaults: Value) -> Self {
        if let Some(node) = self.graph.tasks.last_mut() {
            node.defaults = defaults;
        }
        self
    }

    /// Set the last node's timeout.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        if let Some(node) = self.graph.tasks.last_mut() {
            node.config.timeout_ms = Some(ms);
        }
        self
    }

    /// Connect `"node.port"` to `"node.port"` (the port is after the last dot; a
    /// bare node id means port `*`, the whole object).
    pub fn flow(self, from: &str, to: &str) -> Self {
        let (s, sp) = split_port(from);
        let (t, tp) = split_port(to);
        self.connect(s, sp, t, tp)
    }

    /// Connect `source.source_port` to `target.target_port`.
    pub fn connect(
        mut self,
        source: &str,
        source_port: &str,
        target: &str,
        target_port: &str,
    ) -> Self {
        self.graph.dataflows.push(Dataflow {
            id: None,
            source_task_id: source.to_string(),
            source_task_port_id: source_port.to_string(),
            target_task_id: target.to_string(),
            target_task_port_id: target_port.to_string(),
            transforms: Vec::new(),
        });
        self
    }

    /// Add a transform to the last dataflow.
    pub fn transform(mut self, id: &str, params: Value) -> Self {
        if let Some(flow) = self.graph.dataflows.last_mut() {
            flow.transforms.push(transform::Transform {
                id: id.to_string(),
                params: Some(params).filter(|p| !is_empty_object(p)),
            });
        }
        self
    }

    /// The graph (validate it with [`Plan::new`] before running).
    pub fn build(self) -> Graph {
        self.graph
    }
}

fn split_port(s: &str) -> (&str, &str) {
    s.rsplit_once('.').unwrap_or((s, "*"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_workglow_shape_and_round_trips() {
        let text = r#"{"tasks":[{"id":"a","type":"math.add-one","input":{"value":1}},
                                {"id":"b","type":"math.add-one"}],
                       "dataflows":[{"sourceTaskId":"a","sourceTaskPortId":"value",
                                     "targetTaskId":"b","targetTaskPortId":"value"}]}"#;
        let g = Graph::from_json(text, "g.json").unwrap();
        assert_eq!(g.tasks[0].defaults, json!({"value": 1}));
        let back = Graph::from_json(&g.to_json_pretty(), "again").unwrap();
        assert_eq!(g, back);
        let built = Graph::builder()
            .task("a", "math.add-one")
            .defaults(json!({"value": 1}))
            .task("b", "math.add-one")
            .flow("a.value", "b.value")
            .build();
        assert_eq!(built, g);
    }

    #[test]
    fn syntax_errors_have_file_line_and_column() {
        let err = Graph::from_json("{\n  \"tasks\": [\n    {\"id\": \"a\",}\n  ]\n}", "g.json")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("g.json:3:"), "{msg}");
        assert!(msg.contains("malformed JSON"), "{msg}");
        let err = Graph::from_json(r#"{"tasks":[{"id":"a","typo":"x"}]}"#, "g.json").unwrap_err();
        assert!(err.to_string().contains("unknown field `typo`"), "{err}");
    }

    #[test]
    fn the_builder_knows_the_node_kinds() {
        let g = Graph::builder()
            .conditional("route")
            .branch("big", "input.value > 10")
            .branch("small", "true")
            .map("each", "math.add-one")
            .configure(|c| c.concurrency = Some(4))
            .flow("route.big", "each")
            .transform("pick", json!({"path": "values"}))
            .fallback("ask")
            .alternative("ai.text-generation", json!({"model": "a"}))
            .on_error("ask", "handler")
            .build();
        let text = g.to_json_pretty();
        let back = Graph::from_json(&text, "built").unwrap();
        assert_eq!(back, g);
        assert_eq!(g.tasks[0].config.branches.as_ref().unwrap().len(), 2);
        assert_eq!(g.tasks[1].config.concurrency, Some(4));
        assert_eq!(g.dataflows[0].transforms[0].id, "pick");
        assert_eq!(g.dataflows[1].source_task_port_id, "[error]");
        assert_eq!(g.dataflows[1].target_task_port_id, "*");
    }

    #[test]
    fn bare_node_means_whole_object() {
        let g = Graph::builder().flow("a", "b.x").build();
        assert_eq!(g.dataflows[0].source_task_port_id, "*");
        assert_eq!(g.dataflows[0].target_task_port_id, "x");
    }
}
