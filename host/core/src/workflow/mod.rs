//! A graph builder in Workglow's style: tasks added one after another
//! connect themselves to the task before by matching port names.
//!
//! Owns auto-connection: a task added after others gets a dataflow from
//! each output port of the tasks before it (the last added, or every task
//! of the last [`Workflow::parallel`] step) whose name is one of its
//! declared input ports and whose JSON types can agree; [`Workflow::rename`]
//! maps a name for the next task, [`Workflow::connect`] joins ports
//! explicitly. Scopes build the subgraph bodies of part 9's kinds:
//! [`Workflow::map`] … [`Workflow::end_map`] (and `reduce`, `while_loop`,
//! `fallback`, `subgraph`); a scope's node connects by the ports its body
//! leaves open. It knows task types only through a [`Catalog`] (a host's
//! [`Registry`], or the [`TaskList`] a daemon lists), and builds a plain
//! [`Graph`]: what it cannot build it says in [`WorkflowError`].
//! [`codegen`] writes the builder code that rebuilds a graph. The
//! lower-level builder without a catalog is [`Graph::builder`].
//!
//! The Python and JavaScript builders (`sdk/python-graph`, `sdk/js-graph`)
//! follow the same rules, step for step: `tests/codegen.rs` checks that the
//! three build the same graphs.
//!
//! ```
//! use weft_core::workflow::{TaskList, Workflow};
//! let tasks = TaskList::from_json(&serde_json::json!([{
//!     "id": "math.add-one",
//!     "ports": {"input": {"value": ["integer"]}, "output": {"value": ["integer"]}}
//! }])).unwrap();
//! let graph = Workflow::new(&tasks)
//!     .add("math.add-one", serde_json::json!({"value": 1}))
//!     .add("math.add-one", serde_json::json!({}))
//!     .build()
//!     .unwrap();
//! assert_eq!(graph.dataflows.len(), 1);
//! assert_eq!(graph.dataflows[0].to_string(), "add-one-1.value → add-one-2.value");
//! ```

pub mod codegen;
mod ports;

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::graph::transform::Transform;
use crate::graph::{
    COMPOUND, Dataflow, ERROR_PORT, FALLBACK, Graph, MAP, Node, NodeConfig, REDUCE, WHILE,
};

pub use ports::{Catalog, Ports, TaskList, auto_flows, node_ports};
/// JSON values for defaults and settings: serde_json's `json!`, here so
/// that code building graphs needs one dependency.
pub use serde_json::json;

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
    /// A builder method used where it cannot apply (`connect` to a task
    /// that is not there, `end_map` with no map open, …).
    #[error("{0}")]
    Misuse(String),
}

/// The node kinds whose body a scope builds, and the method that ends each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A compound node (type `graph`): `subgraph` … `end_subgraph`.
    Subgraph,
    /// `map` … `end_map`.
    Map,
    /// `reduce` … `end_reduce`.
    Reduce,
    /// `while_loop` … `end_while`.
    While,
    /// `fallback` … `end_fallback`.
    Fallback,
}

impl Scope {
    /// The node type.
    pub fn node_type(self) -> &'static str {
        match self {
            Scope::Subgraph => COMPOUND,
            Scope::Map => MAP,
            Scope::Reduce => REDUCE,
            Scope::While => WHILE,
            Scope::Fallback => FALLBACK,
        }
    }

    /// The scope a node of type `t` with a body is built in.
    pub fn of_type(t: &str) -> Option<Scope> {
        [
            Scope::Subgraph,
            Scope::Map,
            Scope::Reduce,
            Scope::While,
            Scope::Fallback,
        ]
        .into_iter()
        .find(|s| s.node_type() == t)
    }
}

/// One graph being built: the root, or the body of an open scope.
#[derive(Default)]
struct Frame {
    graph: Graph,
    /// The tasks the next one connects from.
    last: Vec<String>,
    /// Port renames for the next task: output port → its input port.
    renames: Vec<(String, String)>,
    /// How many tasks of each short name, for ids.
    counts: HashMap<String, usize>,
    /// Each task's position, and the dataflows touching it (so a workflow
    /// of 100,000 tasks costs in proportion).
    index: HashMap<String, usize>,
    touching: HashMap<String, Vec<usize>>,
    /// For a scope's body: which scope, its node in the frame below, and
    /// what that frame's next task would have connected from.
    scope: Option<(Scope, String, Vec<String>)>,
}

/// A graph being built a task at a time; see the module docs.
pub struct Workflow<'c> {
    catalog: &'c dyn Catalog,
    /// The root graph, then the body of each open scope.
    frames: Vec<Frame>,
    /// The node `named`, `label` and `config` apply to: its frame and id.
    current: Option<(usize, String)>,
    /// The first mistake, reported by `build`.
    error: Option<WorkflowError>,
}

impl<'c> Workflow<'c> {
    /// An empty workflow over the task types of `catalog`.
    pub fn new(catalog: &'c dyn Catalog) -> Self {
        Workflow {
            catalog,
            frames: vec![Frame::default()],
            current: None,
            error: None,
        }
    }

    /// Add a task of type `task_type` (a task type, an alias, or a node
    /// kind without a body such as `conditional`) with `defaults` (a JSON
    /// object), fed by the tasks before it through the ports they share by
    /// name. Its id is the type's last part and a number (`add-one-2`); see
    /// [`Workflow::named`].
    pub fn add(mut self, task_type: &str, defaults: Value) -> Self {
        if self.error.is_some() {
            return self;
        }
        if self.catalog.ports(task_type).is_none() && !is_kind(task_type) {
            self.error = Some(WorkflowError::UnknownTaskType(task_type.into()));
            return self;
        }
        let id = self.push_node(task_type, defaults);
        self.connect_last(&id);
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
        let before = self.top().last.clone();
        let renames = self.top().renames.clone();
        let mut after = Vec::new();
        for (task_type, defaults) in steps {
            self.top_mut().last = before.clone();
            self.top_mut().renames = renames.clone();
            self = self.add(task_type, defaults.clone());
            after.extend(self.top().last.clone());
        }
        self.top_mut().last = after;
        self
    }

    /// Add a task that handles the failure of the tasks before: fed by
    /// their `[error]` port (the error and the failed input, whole), where
    /// a failure goes instead of failing the run.
    pub fn on_error(mut self, task_type: &str, defaults: Value) -> Self {
        if self.error.is_some() {
            return self;
        }
        if self.catalog.ports(task_type).is_none() && !is_kind(task_type) {
            self.error = Some(WorkflowError::UnknownTaskType(task_type.into()));
            return self;
        }
        let failing = std::mem::take(&mut self.top_mut().last);
        if failing.is_empty() {
            return self.misuse("on_error(): no task added yet");
        }
        let id = self.push_node(task_type, defaults);
        let frame = self.top_mut();
        for source in failing {
            frame.push_flow(flow(&source, ERROR_PORT, &id, "*", Vec::new()));
        }
        frame.renames.clear();
        frame.last = vec![id];
        self
    }

    /// Open a `map` node's body: the tasks added until [`Workflow::end_map`]
    /// run once per element. `defaults` are the map node's.
    pub fn map(self, defaults: Value) -> Self {
        self.open(Scope::Map, defaults)
    }

    /// Close the `map` body opened last.
    pub fn end_map(self) -> Self {
        self.close(Scope::Map)
    }

    /// Open a `reduce` node's body (one step of the fold).
    pub fn reduce(self, defaults: Value) -> Self {
        self.open(Scope::Reduce, defaults)
    }

    /// Close the `reduce` body opened last.
    pub fn end_reduce(self) -> Self {
        self.close(Scope::Reduce)
    }

    /// Open a `while` node's body (one iteration); its condition goes in
    /// its [`Workflow::config`].
    pub fn while_loop(self, defaults: Value) -> Self {
        self.open(Scope::While, defaults)
    }

    /// Close the `while` body opened last.
    pub fn end_while(self) -> Self {
        self.close(Scope::While)
    }

    /// Open a `fallback` node's body (what its alternatives run).
    pub fn fallback(self, defaults: Value) -> Self {
        self.open(Scope::Fallback, defaults)
    }

    /// Close the `fallback` body opened last.
    pub fn end_fallback(self) -> Self {
        self.close(Scope::Fallback)
    }

    /// Open a compound node's body (a node of type `graph`).
    pub fn subgraph(self, defaults: Value) -> Self {
        self.open(Scope::Subgraph, defaults)
    }

    /// Close the compound body opened last.
    pub fn end_subgraph(self) -> Self {
        self.close(Scope::Subgraph)
    }

    /// Give the last node added (or the scope just opened or closed) the id
    /// `id`; its dataflows follow.
    pub fn named(mut self, id: &str) -> Self {
        let Some((f, old)) = self.current.clone() else {
            return self.misuse("named(): no task added yet");
        };
        if self.frames[f].index.contains_key(id) {
            return self.misuse(&format!("named(): id `{id}` is taken"));
        }
        self.frames[f].rename_node(&old, id);
        if let Some((_, node, _)) = self.frames.get_mut(f + 1).and_then(|b| b.scope.as_mut())
            && *node == old
        {
            *node = id.to_string();
        }
        self.current = Some((f, id.to_string()));
        self
    }

    /// Give the last node added a label for people (the node's `name`).
    pub fn label(mut self, name: &str) -> Self {
        if let Some(node) = self.current_node() {
            node.name = Some(name.to_string());
        }
        self
    }

    /// Set the last node's settings (`config`: retries, timeout, a map's
    /// `over`, a while's `condition`, …) from their JSON form.
    pub fn config(mut self, config: Value) -> Self {
        let parsed = serde_json::from_value::<NodeConfig>(config);
        match (parsed, self.current_node()) {
            (Ok(config), Some(node)) => node.config = config.into(),
            (Err(e), Some(_)) => return self.misuse(&format!("config(): {e}")),
            (_, None) => return self.misuse("config(): no task added yet"),
        }
        self
    }

    /// For the next task added: feed its input port `to` from output port
    /// `from` of the tasks before (instead of matching names).
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        self.top_mut()
            .renames
            .push((from.to_string(), to.to_string()));
        self
    }

    /// Join `from` (`node.port`) to `to` (`node.port`) explicitly, with
    /// `transforms` applied on the way.
    pub fn connect(mut self, from: &str, to: &str, transforms: Vec<Transform>) -> Self {
        let (Some((s, sp)), Some((t, tp))) = (from.rsplit_once('.'), to.rsplit_once('.')) else {
            return self.misuse("connect(): name ends as `node.port`");
        };
        for end in [s, t] {
            if !self.top().index.contains_key(end) {
                return self.misuse(&format!("connect(): no task `{end}`"));
            }
        }
        self.top_mut().push_flow(flow(s, sp, t, tp, transforms));
        self
    }

    /// Give the dataflow made last an id (kept for tools that set one).
    pub fn flow_id(mut self, id: &str) -> Self {
        match self.top_mut().graph.dataflows.last_mut() {
            Some(f) => f.id = Some(id.to_string()),
            None => return self.misuse("flow_id(): no dataflow made yet"),
        }
        self
    }

    /// Remove the last task added, with its dataflows.
    pub fn pop(mut self) -> Self {
        let frame = self.top_mut();
        if let Some(id) = frame.graph.tasks.pop().map(|n| n.id) {
            frame.index.remove(&id);
            frame
                .graph
                .dataflows
                .retain(|f| f.source_task_id != id && f.target_task_id != id);
            frame.last.retain(|l| *l != id);
            frame.recount_touching();
        }
        self.current = None;
        self
    }

    /// Start a new chain: the next task added is fed by nothing.
    pub fn reset(mut self) -> Self {
        let frame = self.top_mut();
        frame.last.clear();
        frame.renames.clear();
        self
    }

    /// The graph, or the first mistake made building it.
    pub fn build(mut self) -> Result<Graph, WorkflowError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some((scope, node, _)) = self.frames.last().and_then(|f| f.scope.clone()) {
            return Err(WorkflowError::Misuse(format!(
                "build(): the {} `{node}` is still open (end it with end_{})",
                scope.node_type(),
                ports::end_name(scope)
            )));
        }
        Ok(self.frames.swap_remove(0).graph)
    }

    fn top(&self) -> &Frame {
        self.frames.last().expect("the root frame stays")
    }

    fn top_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("the root frame stays")
    }

    fn current_node(&mut self) -> Option<&mut Node> {
        let (f, id) = self.current.as_ref()?;
        let frame = self.frames.get_mut(*f)?;
        let at = *frame.index.get(id)?;
        frame.graph.tasks.get_mut(at)
    }

    fn misuse(mut self, why: &str) -> Self {
        self.error
            .get_or_insert(WorkflowError::Misuse(why.to_string()));
        self
    }

    /// A new node in the top frame, with a fresh id; the current one.
    fn push_node(&mut self, task_type: &str, defaults: Value) -> String {
        let frame = self.top_mut();
        let id = fresh_id(task_type, &mut frame.counts, |id| {
            frame.index.contains_key(id)
        });
        frame.index.insert(id.clone(), frame.graph.tasks.len());
        frame.graph.tasks.push(node(&id, task_type, defaults));
        self.current = Some((self.frames.len() - 1, id.clone()));
        id
    }

    /// Connect the top frame's last tasks to `id` by matching ports; `id`
    /// is then the last.
    fn connect_last(&mut self, id: &str) {
        let frame = self.frames.last_mut().expect("the root frame stays");
        let from = std::mem::take(&mut frame.last);
        if !from.is_empty() {
            let flows = {
                let sources: Vec<&Node> = from.iter().map(|s| frame.node(s)).collect();
                ports::auto_flows(self.catalog, &sources, frame.node(id), &frame.renames)
            };
            if flows.is_empty() {
                self.error.get_or_insert(WorkflowError::NothingToConnect {
                    from,
                    to: id.to_string(),
                });
            }
            for f in flows {
                frame.push_flow(f);
            }
        }
        frame.renames.clear();
        frame.last = vec![id.to_string()];
    }

    fn open(mut self, scope: Scope, defaults: Value) -> Self {
        if self.error.is_some() {
            return self;
        }
        if self.frames.len() > crate::graph::MAX_DEPTH {
            return self.misuse("scopes nest too deep");
        }
        let id = self.push_node(scope.node_type(), defaults);
        let before = std::mem::take(&mut self.top_mut().last);
        self.top_mut().renames.clear();
        self.frames.push(Frame {
            scope: Some((scope, id, before)),
            ..Frame::default()
        });
        self
    }

    fn close(mut self, scope: Scope) -> Self {
        if self.error.is_some() {
            return self;
        }
        let open = self.top().scope.as_ref().map(|(s, _, _)| *s);
        if open != Some(scope) {
            let what = open.map_or("nothing".to_string(), |s| format!("a {}", s.node_type()));
            return self.misuse(&format!("end_{}(): {what} is open", ports::end_name(scope)));
        }
        let body = self.frames.pop().expect("a scope is open");
        let (_, id, before) = body.scope.expect("a scope is open");
        let frame = self.top_mut();
        let at = frame.index[&id];
        frame.graph.tasks[at].graph = Some(Box::new(body.graph));
        frame.last = before;
        self.connect_last(&id);
        self.current = Some((self.frames.len() - 1, id));
        self
    }
}

impl Frame {
    fn node(&self, id: &str) -> &Node {
        &self.graph.tasks[self.index[id]]
    }

    fn push_flow(&mut self, f: Dataflow) {
        let at = self.graph.dataflows.len();
        for end in [&f.source_task_id, &f.target_task_id] {
            self.touching.entry(end.clone()).or_default().push(at);
        }
        self.graph.dataflows.push(f);
    }

    fn rename_node(&mut self, old: &str, id: &str) {
        if let Some(at) = self.index.remove(old) {
            self.graph.tasks[at].id = id.to_string();
            self.index.insert(id.to_string(), at);
        }
        let flows = self.touching.remove(old).unwrap_or_default();
        for &f in &flows {
            let f = &mut self.graph.dataflows[f];
            for end in [&mut f.source_task_id, &mut f.target_task_id] {
                if *end == old {
                    *end = id.to_string();
                }
            }
        }
        self.touching.insert(id.to_string(), flows);
        for last in self.last.iter_mut().filter(|l| *l == old) {
            *last = id.to_string();
        }
    }

    /// Positions moved: count them again (a pop is rare).
    fn recount_touching(&mut self) {
        self.touching.clear();
        for (i, f) in self.graph.dataflows.iter().enumerate() {
            for end in [&f.source_task_id, &f.target_task_id] {
                self.touching.entry(end.clone()).or_default().push(i);
            }
        }
    }
}

/// Whether `t` is a node kind the builder takes without a catalog entry.
fn is_kind(t: &str) -> bool {
    use crate::graph::{CONDITIONAL, PASS};
    [
        CONDITIONAL,
        PASS,
        MAP,
        REDUCE,
        WHILE,
        FALLBACK,
        crate::graph::WAIT,
    ]
    .contains(&t)
}

/// The next free id for a task of type `task_type`: the type's last part
/// (after `.`, `:` or `/`, before `@`) and the next number not `taken`.
pub fn fresh_id(
    task_type: &str,
    counts: &mut HashMap<String, usize>,
    taken: impl Fn(&str) -> bool,
) -> String {
    let short = task_type
        .rsplit(['.', ':', '/'])
        .next()
        .unwrap_or(task_type);
    let short = short.split('@').next().unwrap_or(short);
    let n = counts.entry(short.to_string()).or_default();
    loop {
        *n += 1;
        let id = format!("{short}-{n}");
        if !taken(&id) {
            return id;
        }
    }
}

fn node(id: &str, task_type: &str, defaults: Value) -> Node {
    Node {
        id: id.to_string(),
        task_type: task_type.to_string(),
        name: None,
        defaults,
        config: Default::default(),
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
