//! A graph builder in Workglow's style: tasks added one after another
//! connect themselves to the task before by matching port names.
//!
//! Owns auto-connection: a task added after others gets a dataflow from
//! each output port of the tasks before it (the last added, or every task
//! of the last [`Workflow::parallel`] step) whose name matches one of its
//! input ports and whose JSON types can agree; [`Workflow::rename`] maps a
//! name for the next task, [`Workflow::connect`] joins ports explicitly. It
//! knows task types only through the [`Registry`] it is given, and builds a
//! plain [`Graph`]: what it cannot build it says in [`WorkflowError`]. The
//! lower-level builder without a registry is [`Graph::builder`].
//!
//! ```
//! # #[tokio::main] async fn main() {
//! use weft::workflow::Workflow;
//! let host = weft::Host::builder().build().await.unwrap();
//! let registry = host.registry();
//! let graph = Workflow::new(&registry)
//!     .add("math.add-one", serde_json::json!({"value": 1}))
//!     .add("math.add-one", serde_json::json!({}))
//!     .build()
//!     .unwrap();
//! assert_eq!(graph.dataflows.len(), 1);
//! assert_eq!(graph.dataflows[0].source_task_port_id, "value");
//! let result = host.run(&graph, serde_json::json!({})).await.unwrap();
//! assert_eq!(result.outputs["add-one-2"]["value"], 3);
//! # }
//! ```

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::graph::transform::Transform;
use crate::graph::{Dataflow, Graph, Node, NodeConfig};
use crate::task::Registry;

/// Why a workflow cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// No such task type.
    #[error("unknown task type `{0}`")]
    UnknownTaskType(String),
    /// A task follows others but no port of theirs matches one of its own.
    #[error(
        "`{to}` follows {} but none of their output ports matches an input port of it by name and type; use rename() or connect()",
        .from.join(", ")
    )]
    NothingToConnect {
        /// The tasks before.
        from: Vec<String>,
        /// The task added.
        to: String,
    },
    /// `connect`, `named` or `rename` named something that is not there.
    #[error("{0}")]
    Misuse(String),
}

/// A graph being built a task at a time; see the module docs.
pub struct Workflow<'r> {
    registry: &'r Registry,
    graph: Graph,
    /// The tasks the next one connects from.
    last: Vec<String>,
    /// Port renames for the next task: output port → its input port.
    renames: Vec<(String, String)>,
    /// How many tasks of each type, for ids.
    counts: HashMap<String, usize>,
    /// Each task's position in the graph, and the dataflows touching it (so
    /// a workflow of 100,000 tasks costs in proportion).
    index: HashMap<String, usize>,
    touching: HashMap<String, Vec<usize>>,
    /// The first mistake, reported by `build`.
    error: Option<WorkflowError>,
}

impl<'r> Workflow<'r> {
    /// An empty workflow over the task types of `registry`.
    pub fn new(registry: &'r Registry) -> Self {
        Workflow {
            registry,
            graph: Graph::default(),
            last: Vec::new(),
            renames: Vec::new(),
            counts: HashMap::new(),
            index: HashMap::new(),
            touching: HashMap::new(),
            error: None,
        }
    }

    /// Add a task of type `task_type` with `defaults` (a JSON object), fed
    /// by the tasks before it through the ports they share by name. Its id
    /// is the type's last part and a number (`add-one-2`); see
    /// [`Workflow::named`].
    pub fn add(mut self, task_type: &str, defaults: Value) -> Self {
        if self.error.is_some() {
            return self;
        }
        if self.registry.get(task_type).is_none() {
            self.error = Some(WorkflowError::UnknownTaskType(task_type.into()));
            return self;
        }
        let short = task_type.rsplit('.').next().unwrap_or(task_type);
        let n = self.counts.entry(short.to_string()).or_default();
        *n += 1;
        let id = format!("{short}-{n}");
        self.index.insert(id.clone(), self.graph.tasks.len());
        self.graph.tasks.push(node(&id, task_type, defaults));
        let from = std::mem::take(&mut self.last);
        if !from.is_empty() && self.auto_connect(&from, &id) == 0 {
            self.error = Some(WorkflowError::NothingToConnect {
                from,
                to: id.clone(),
            });
        }
        self.renames.clear();
        self.last = vec![id];
        self
    }

    /// Add the task types one after another, each fed by the one before.
    pub fn pipe(self, task_types: &[&str]) -> Self {
        task_types
            .iter()
            .fold(self, |w, t| w.add(t, Value::Object(Map::new())))
    }

    /// Add several tasks side by side, each fed by the tasks before (as
    /// [`Workflow::add`] would); the next task is fed by all of them.
    pub fn parallel(mut self, steps: &[(&str, Value)]) -> Self {
        let before = self.last.clone();
        let renames = self.renames.clone();
        let mut after = Vec::new();
        for (task_type, defaults) in steps {
            self.last = before.clone();
            self.renames = renames.clone();
            self = self.add(task_type, defaults.clone());
            after.extend(self.last.clone());
        }
        self.last = after;
        self
    }

    /// Give the last task added the id `id` (its dataflows follow).
    pub fn named(mut self, id: &str) -> Self {
        let Some(old) = self.last.last().cloned() else {
            return self.misuse("named(): no task added yet");
        };
        if self.index.contains_key(id) {
            return self.misuse(&format!("named(): id `{id}` is taken"));
        }
        if let Some(at) = self.index.remove(&old) {
            self.graph.tasks[at].id = id.to_string();
            self.index.insert(id.to_string(), at);
        }
        let flows = self.touching.remove(&old).unwrap_or_default();
        for &f in &flows {
            let f = &mut self.graph.dataflows[f];
            for end in [&mut f.source_task_id, &mut f.target_task_id] {
                if *end == old {
                    *end = id.to_string();
                }
            }
        }
        self.touching.insert(id.to_string(), flows);
        if let Some(last) = self.last.last_mut() {
            *last = id.to_string();
        }
        self
    }

    /// For the next task added: feed its input port `to` from output port
    /// `from` of the tasks before (instead of matching names).
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        self.renames.push((from.to_string(), to.to_string()));
        self
    }

    /// Join `from` (`node.port`) to `to` (`node.port`) explicitly, with
    /// `transforms` applied on the way.
    pub fn connect(mut self, from: &str, to: &str, transforms: Vec<Transform>) -> Self {
        let (Some((s, sp)), Some((t, tp))) = (from.rsplit_once('.'), to.rsplit_once('.')) else {
            return self.misuse("connect(): name ends as `node.port`");
        };
        for end in [s, t] {
            if !self.index.contains_key(end) {
                return self.misuse(&format!("connect(): no task `{end}`"));
            }
        }
        self.push_flow(flow(s, sp, t, tp, transforms));
        self
    }

    /// Remove the last task added, with its dataflows.
    pub fn pop(mut self) -> Self {
        if let Some(id) = self.graph.tasks.pop().map(|n| n.id) {
            self.index.remove(&id);
            self.graph
                .dataflows
                .retain(|f| f.source_task_id != id && f.target_task_id != id);
            self.last.retain(|l| *l != id);
            // Positions moved: count them again (a pop is rare).
            self.touching.clear();
            for (i, f) in self.graph.dataflows.iter().enumerate() {
                for end in [&f.source_task_id, &f.target_task_id] {
                    self.touching.entry(end.clone()).or_default().push(i);
                }
            }
        }
        self
    }

    fn push_flow(&mut self, f: Dataflow) {
        let at = self.graph.dataflows.len();
        for end in [&f.source_task_id, &f.target_task_id] {
            self.touching.entry(end.clone()).or_default().push(at);
        }
        self.graph.dataflows.push(f);
    }

    /// Start a new chain: the next task added is fed by nothing.
    pub fn reset(mut self) -> Self {
        self.last.clear();
        self.renames.clear();
        self
    }

    /// The graph, or the first mistake made building it.
    pub fn build(self) -> Result<Graph, WorkflowError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.graph),
        }
    }

    fn misuse(mut self, why: &str) -> Self {
        self.error
            .get_or_insert(WorkflowError::Misuse(why.to_string()));
        self
    }

    /// Dataflows into `to` from the tasks `from` whose output ports match
    /// its input ports (by rename, else by name) with types that can agree;
    /// how many.
    fn auto_connect(&mut self, from: &[String], to: &str) -> usize {
        let types = |id: &str| {
            let node = &self.graph.tasks[*self.index.get(id)?];
            self.registry.get(&node.task_type).cloned()
        };
        let Some(target) = types(to) else { return 0 };
        let mut flows = Vec::new();
        for source_id in from {
            let Some(source) = types(source_id) else {
                continue;
            };
            for out in source.output.ports() {
                let into = self
                    .renames
                    .iter()
                    .find(|(f, _)| f == out)
                    .map_or(out, |(_, t)| t.as_str());
                let agree = match (source.output.port_types(out), target.input.port_types(into)) {
                    (Some(a), Some(b)) => !a.intersect(b).is_empty(),
                    _ => false,
                };
                if agree {
                    flows.push(flow(source_id, out, to, into, Vec::new()));
                }
            }
        }
        let n = flows.len();
        for f in flows {
            self.push_flow(f);
        }
        n
    }
}

fn node(id: &str, task_type: &str, defaults: Value) -> Node {
    Node {
        id: id.to_string(),
        task_type: task_type.to_string(),
        name: None,
        defaults,
        config: NodeConfig::default(),
        graph: None,
    }
}

fn flow(s: &str, sp: &str, t: &str, tp: &str, transforms: Vec<Transform>) -> Dataflow {
    Dataflow {
        id: None,
        source_task_id: s.to_string(),
        source_task_port_id: sp.to_string(),
        target_task_id: t.to_string(),
        target_task_port_id: tp.to_string(),
        transforms,
    }
}
