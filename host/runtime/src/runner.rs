//! The runner: executes a validated [`Plan`].
//!
//! Owns scheduling: a node runs as soon as every dataflow into it has
//! delivered (indegree counters, O(nodes + edges), no rescans), independent
//! nodes run in parallel up to a limit, a failed node skips only what depends on
//! it, and cancellation stops scheduling and interrupts running tasks. Every
//! state change is announced on the run's [`EventHub`]. It must not know how
//! tasks are implemented (that is [`crate::task`]) or how events are shown.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::cache::{CacheEntry, CachePolicy};
use crate::clock::{Clock, now_ms};
use crate::events::{DataflowStatus, EventHub, EventKind, NodeStatus, RunStatus, Ticket};
use crate::graph::{ERROR_PORT, NodeKind, Plan, TIMEOUT_PORT, WaitSpec};
use crate::in_flight::InFlight;
use crate::json::{compact, compact_clone};
use crate::limiter::{Queue, Wait};
use crate::signals::SignalWatch;
use crate::store::CachePut;
use crate::store::{NodeInput, NodeRecord, RunLogError, RunStore};
use crate::subgraph::Subgraphs;
use crate::task::{Implementation, TaskContext, TaskError, TaskType};
use std::sync::Arc;
use weft_core::grant::{Grants, UserGrants};
use weft_core::graph::transform::apply_all;

/// How a run is executed.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The most tasks running at once.
    pub parallelism: usize,
    /// How the output cache is used.
    pub cache: CachePolicy,
    /// How nodes are retried after a retryable failure.
    pub retry: RetryPolicy,
    /// Named queues with their limiters.
    pub queues: HashMap<String, Arc<Queue>>,
    /// Task types routed through a queue by default (task type → queue).
    pub task_queues: HashMap<String, String>,
    /// With a store shared by several hosts: where tasks execute when this
    /// host is busy. `None`: every task executes here.
    pub dispatch: Option<Arc<crate::cluster::dispatch::Dispatch>>,
    /// What retry due times and queue waits are measured by.
    pub clock: Arc<dyn Clock>,
    /// What each user's runs may use.
    pub grants: UserGrants,
    /// Task types whose cache entries every user shares (others': per user).
    pub cache_shared: std::collections::HashSet<String>,
    /// With `[quotas] running_tasks`: the limit on one user's plugin tasks
    /// executing at once, keyed by the run's owner. Its slots are in the
    /// store when hosts share one, so the limit holds across them.
    pub users: Option<Arc<Queue>>,
    /// The most any run may take, whatever its graph asks
    /// (`[quotas] run_timeout_ms`, `run_max_tasks`).
    pub run_ceilings: crate::graph::RunLimits,
    /// How large a graph may be (`[quotas] graph_nodes`, `graph_dataflows`).
    pub graph_sizes: crate::graph::SizeLimits,
}

/// Ready nodes, highest priority first, then in the order they became ready.
#[derive(Default)]
struct ReadyQueue {
    heap: BinaryHeap<(i32, Reverse<u64>, usize)>,
    seq: u64,
}

impl ReadyQueue {
    fn push(&mut self, i: usize, priority: i32) {
        self.seq += 1;
        self.heap.push((priority, Reverse(self.seq), i));
    }

    fn pop(&mut self) -> Option<usize> {
        self.heap.pop().map(|(_, _, i)| i)
    }
}

/// When a node is retried after a *retryable* failure: a task's `retryable`
/// error or a host error. Invalid input, plain failures, traps, limits, schema
/// violations and timeouts are not retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (a node's `config.retries` overrides).
    pub retries: u32,
    /// Delay before the first retry (a node's `config.retry_backoff_ms`
    /// overrides); each next delay doubles.
    pub initial_backoff: std::time::Duration,
    /// The longest computed delay (a delay the task asks for may be longer).
    pub max_backoff: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 2,
            initial_backoff: std::time::Duration::from_millis(200),
            max_backoff: std::time::Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before the retry that follows attempt `attempt` (1-based):
    /// exponential from `initial`, capped, with +-20% jitter derived from
    /// `seed` (so it is stable for one node and attempt), and at least what the
    /// task asked for.
    pub fn delay(
        &self,
        attempt: u32,
        initial: Option<std::time::Duration>,
        asked: Option<std::time::Duration>,
        seed: &str,
    ) -> std::time::Duration {
        let initial = initial.unwrap_or(self.initial_backoff);
        let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_backoff);
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(seed, attempt), &mut h);
        let jitter = 0.8 + (std::hash::Hasher::finish(&h) % 401) as f64 / 1000.0;
        capped.mul_f64(jitter).max(asked.unwrap_or_default())
    }
}

fn is_retryable(e: &TaskError) -> bool {
    matches!(e, TaskError::Retryable { .. } | TaskError::Host(_))
}

impl Default for RunOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RunOptions {
            // Tasks waiting on timers or I/O hold no core, so allow more tasks
            // than cores; CPU-bound ones share the cores through the runtime.
            parallelism: cores * 8,
            cache: CachePolicy::default(),
            retry: RetryPolicy::default(),
            queues: HashMap::new(),
            task_queues: HashMap::new(),
            dispatch: None,
            clock: weft_core::clock::system(),
            grants: UserGrants::everyone(),
            cache_shared: Default::default(),
            users: None,
            run_ceilings: Default::default(),
            graph_sizes: Default::default(),
        }
    }
}

/// A node that did not complete, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFailure {
    /// The node.
    pub node: String,
    /// Its final state (`failed`, `skipped` or `cancelled`).
    pub status: NodeStatus,
    /// What went wrong.
    pub error: String,
}

/// Figures about one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    /// Task runs started (attempts, cache hits excluded).
    pub tasks_executed: u64,
    /// Nodes whose output came from the output cache.
    pub cache_hits: u64,
    /// From the first node scheduled until the run's end is durable, in
    /// milliseconds.
    pub run_ms: f64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// The output of every completed node, by node id.
    pub outputs: BTreeMap<String, Value>,
    /// The nodes that feed no other node: their outputs are the run's result.
    pub leaves: Vec<String>,
    /// The final state of every node.
    pub nodes: BTreeMap<String, NodeStatus>,
    /// Nodes that failed, were skipped or were cancelled, in graph order.
    pub failures: Vec<NodeFailure>,
    /// Figures.
    pub stats: RunStats,
    /// In a preview: the input each node not run would have received.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub previewed: BTreeMap<String, Value>,
}

impl RunResult {
    /// The outputs of the leaf nodes only.
    pub fn leaf_outputs(&self) -> BTreeMap<String, Value> {
        self.leaves
            .iter()
            .filter_map(|id| self.outputs.get(id).map(|v| (id.clone(), v.clone())))
            .collect()
    }
}

/// Executes plans.
#[derive(Clone, Default)]
pub struct Runner {
    options: RunOptions,
    cache: Option<Arc<dyn RunStore>>,
}

struct State<'p> {
    plan: &'p Plan,
    status: Vec<NodeStatus>,
    attempts: Vec<u32>,
    remaining: Vec<usize>,
    /// Dataflows into each node that arrived and were not disabled.
    live: Vec<usize>,
    /// Why a node's input cannot be made (a transform failed on the way).
    bad_input: Vec<Option<String>>,
    blocked: Vec<Option<String>>,
    arrived: Vec<Vec<(usize, Value)>>,
    inputs: Vec<Map<String, Value>>,
    /// The input each running node was started with.
    started: Vec<Option<Arc<Value>>>,
    outputs: Vec<Option<Value>>,
    errors: Vec<Option<String>>,
    ready: ReadyQueue,
    /// Nodes waiting for a queue slot to free up,
    /// per (queue, key), in the order they asked.
    awaiting_release: HashMap<(String, String), VecDeque<usize>>,
    /// Nodes taken from the head of such a line: they check before the line.
    woken: Vec<bool>,
    /// The queue slot each running node holds, to give back when it ends.
    held: Vec<Option<(Arc<Queue>, String)>>,
    /// When each node's next attempt is due (ms since the epoch), if waiting.
    retry_at: Vec<Option<u64>>,
    /// Nodes waiting for a retry, a queue, or a wait's timeout, soonest
    /// first (an entry of a node that has ended since is ignored).
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    /// Wait nodes waiting for their signal.
    waiting: std::collections::BTreeSet<usize>,
    /// When each wait node's wait times out (ms since the epoch), once known.
    wait_until: Vec<Option<u64>>,
    /// Wait nodes whose timeout is due, to settle.
    due_waits: Vec<usize>,
    /// The stored states of waits inside this run's subgraphs' uses that
    /// were waiting (`chat[3]/ask`), handed to those uses when they run
    /// again ([`crate::subgraph`]).
    nested_waits: crate::subgraph::NestedWaits,
    /// What `retry_at` and `timers` are measured by.
    clock: Arc<dyn Clock>,
    /// Whose output cache the run uses (its owner's; `None`: the shared one).
    cache_scope: Option<String>,
    /// What the run's owner may use.
    grants: Arc<Grants>,
    /// Instances (map elements, alternatives, iterations) finished in
    /// earlier attempts, by node.
    elements: HashMap<usize, HashMap<usize, NodeRecord>>,
    /// A preview: nodes with effects (or calls out) are not run.
    preview: bool,
    /// What the whole run may take (shared with what it starts inside).
    budget: Option<Arc<Budget>>,
    /// In a preview, the input each node not run would have received.
    previewed: BTreeMap<String, Value>,
    /// Replaying what the store already holds: change state, record nothing.
    replay: bool,
    /// Changes not yet committed.
    dirty: Vec<usize>,
    events: Vec<EventKind>,
    /// Inputs of nodes started since the last commit, to keep.
    new_inputs: Vec<NodeInput>,
}

/// A run that stops early (a store failure, or its execution dropped when
/// the lease was lost) gives back the queue slots its running nodes held.
impl Drop for State<'_> {
    fn drop(&mut self) {
        for (queue, key) in self.held.iter_mut().filter_map(Option::take) {
            queue.release(&key);
        }
    }
}

impl State<'_> {
    fn set(&mut self, i: usize, status: NodeStatus, error: Option<String>) {
        self.set_cached(i, status, error, false);
    }

    fn set_cached(&mut self, i: usize, status: NodeStatus, error: Option<String>, cached: bool) {
        self.status[i] = status;
        self.errors[i] = error.clone();
        if self.replay {
            return;
        }
        self.dirty.push(i);
        self.events.push(EventKind::Node {
            node: self.plan.nodes[i].id.clone(),
            status,
            error,
            cached,
        });
    }

    fn dataflow(&mut self, index: usize, status: DataflowStatus) {
        if !self.replay {
            self.events.push(EventKind::Dataflow { index, status });
        }
    }

    /// Node `i` completed with `output`: deliver along its dataflows.
    fn complete(&mut self, i: usize, mut output: Value, cached: bool) {
        // Kept until the run ends: a 100,000-node run keeps 100,000.
        compact(&mut output);
        self.outputs[i] = Some(output);
        self.inputs[i] = Map::new();
        self.started[i] = None;
        self.set_cached(i, NodeStatus::Completed, None, cached);
        self.deliver(i, false);
    }

    /// Node `i` starts (or waits) on the input gathered for it, kept until
    /// it ends and shared with its task; its first attempt's is recorded
    /// (a retry starts with the same).
    fn start(&mut self, i: usize) -> Arc<Value> {
        let input = Arc::new(Value::Object(std::mem::take(&mut self.inputs[i])));
        if self.attempts[i] == 1 && !self.replay {
            self.new_inputs.push(NodeInput {
                node: self.plan.nodes[i].id.clone(),
                input: input.clone(),
            });
        }
        self.started[i] = Some(input.clone());
        input
    }

    /// The input node `i` was started with, back from its task (which has
    /// ended, so it is not copied).
    fn take_started(&mut self, i: usize) -> Map<String, Value> {
        let input = self.started[i]
            .take()
            .map(|shared| Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone()));
        match input {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Node `i` failed, and its failure goes to its error port as `error`.
    fn handle_failure(&mut self, i: usize, message: String, error: Value) {
        self.outputs[i] = Some(error);
        self.inputs[i] = Map::new();
        self.set(i, NodeStatus::Failed, Some(message));
        self.deliver(i, true);
    }

    /// In a preview, node `i` is not run: keep the input it would have
    /// received, and disable it and what depends on it.
    fn hold_back(&mut self, i: usize) {
        let input = Value::Object(std::mem::take(&mut self.inputs[i]));
        self.previewed.insert(self.plan.nodes[i].id.clone(), input);
        self.set(i, NodeStatus::Disabled, Some(PREVIEWED.into()));
        self.disable_from(vec![i]);
    }

    /// Whether node `i` ended in a way that does not fail the run: completed,
    /// disabled, or failed into its error port.
    fn ended_well(&self, i: usize) -> bool {
        match self.status[i] {
            NodeStatus::Completed | NodeStatus::Disabled => true,
            NodeStatus::Failed => self.outputs[i].is_some(),
            _ => false,
        }
    }

    /// Whether node `i`'s failure goes to an error port.
    fn has_error_port(&self, i: usize) -> bool {
        self.plan.outgoing[i]
            .iter()
            .any(|&e| self.plan.edges[e].source_port == ERROR_PORT)
    }

    /// Send node `i`'s result (`outputs[i]`: its output, or with `failed` the
    /// value of its error port) along its dataflows. A dataflow its result
    /// does not take is disabled: the normal ones of a failed node, the error
    /// ports of a node that completed, a branch a conditional did not take.
    fn deliver(&mut self, i: usize, failed: bool) {
        // Put back below: what is delivered is copied, not the whole output.
        let taken = self.outputs[i].take();
        let null = Value::Null;
        let output = taken.as_ref().unwrap_or(&null);
        // A conditional's branches not taken are disabled, as are a wait's
        // ports other than its timeout's when it timed out.
        let routes = match &self.plan.nodes[i].kind {
            NodeKind::Conditional(_) => true,
            NodeKind::Wait(_) => WaitSpec::is_timed_out(output),
            _ => false,
        };
        let mut disabled = Vec::new();
        for &e in &self.plan.outgoing[i] {
            let edge = &self.plan.edges[e];
            let on_error = edge.source_port == ERROR_PORT;
            let on_timeout = edge.source_port == TIMEOUT_PORT;
            // Kept in the target's input until the run ends: compact copies.
            let value = match (failed, on_error) {
                (true, true) => Some(compact_clone(output)),
                (true, false) | (false, true) => None,
                (false, false) if edge.source_port == "*" => Some(compact_clone(output)),
                (false, false) => output.get(&edge.source_port).map(compact_clone),
            };
            if value.is_none() && (failed || on_error || on_timeout || routes) {
                self.dataflow(e, DataflowStatus::Disabled);
                disabled.extend(self.arrive(edge.target, false));
                continue;
            }
            if let Some(v) = value {
                match apply_all(&edge.transforms, v) {
                    Ok(v) => self.arrived[edge.target].push((e, v)),
                    Err(err) => {
                        let at = format!("dataflows[{e}] into port `{}`: {err}", edge.target_port);
                        self.bad_input[edge.target].get_or_insert(at);
                    }
                }
            }
            self.dataflow(e, DataflowStatus::Completed);
            disabled.extend(self.arrive(edge.target, true));
        }
        self.outputs[i] = taken;
        self.disable_from(disabled);
    }

    /// Nodes `stack` are disabled: disable their dataflows, and every node
    /// downstream that all its dataflows leave disabled.
    fn disable_from(&mut self, mut stack: Vec<usize>) {
        while let Some(n) = stack.pop() {
            for &e in &self.plan.outgoing[n] {
                self.dataflow(e, DataflowStatus::Disabled);
                stack.extend(self.arrive(self.plan.edges[e].target, false));
            }
        }
    }

    /// Node `i` will never complete: skip everything downstream of it.
    fn cut(&mut self, i: usize) {
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            for &e in &self.plan.outgoing[n] {
                let t = self.plan.edges[e].target;
                self.dataflow(e, DataflowStatus::Skipped);
                if self.blocked[t].is_none() {
                    self.blocked[t] = Some(self.plan.nodes[n].id.clone());
                }
                self.remaining[t] -= 1;
                if self.remaining[t] == 0 && !self.status[t].is_final() {
                    let by = self.blocked[t].clone().unwrap_or_default();
                    self.set(t, NodeStatus::Skipped, Some(skipped_by(&by)));
                    stack.push(t);
                }
            }
        }
    }

    /// One dataflow into `t` has arrived (`live`: it was not disabled; it may
    /// have had nothing to deliver). Once all have: `t` is skipped (an
    /// upstream node failed), disabled (every dataflow into it was: returned,
    /// for the caller to go on downstream), or ready.
    fn arrive(&mut self, t: usize, live: bool) -> Option<usize> {
        self.remaining[t] -= 1;
        self.live[t] += usize::from(live);
        if self.remaining[t] > 0 || self.status[t].is_final() {
            return None;
        }
        if let Some(by) = self.blocked[t].clone() {
            self.set(t, NodeStatus::Skipped, Some(skipped_by(&by)));
            self.cut(t);
            return None;
        }
        if self.live[t] == 0 {
            self.set(t, NodeStatus::Disabled, Some(DISABLED.into()));
            return Some(t);
        }
        if let Some(why) = self.bad_input[t].take() {
            self.set(t, NodeStatus::Failed, Some(why));
            self.cut(t);
            return None;
        }
        self.gather(t);
        self.make_ready(t);
        None
    }

    /// Put what arrived for `t` into its input, in dataflow order, so the
    /// input does not depend on which upstream node finished first. A port
    /// fed by several dataflows (fan-in) gets an array, one element each.
    fn gather(&mut self, t: usize) {
        let mut arrived = std::mem::take(&mut self.arrived[t]);
        arrived.sort_by_key(|(e, _)| *e);
        // Made with room for what comes (an object grown by inserting keeps
        // room for three entries or more, and inputs are kept until the run
        // ends): its defaults, then a port per dataflow at most.
        let defaults = std::mem::take(&mut self.inputs[t]);
        self.inputs[t] = Map::with_capacity(defaults.len() + arrived.len());
        for (port, value) in defaults {
            self.inputs[t].insert(port, value);
        }
        let mut collecting = std::collections::HashSet::new();
        for (e, value) in arrived {
            let edge = &self.plan.edges[e];
            let port = &edge.target_port;
            if port == "*" {
                if let Value::Object(m) = value {
                    self.inputs[t].extend(m);
                }
            } else if edge.fan_in {
                // The dataflows replace a default for the port.
                if collecting.insert(port.clone()) {
                    self.inputs[t].insert(port.clone(), Value::Array(Vec::new()));
                }
                if let Some(Value::Array(items)) = self.inputs[t].get_mut(port) {
                    items.push(value);
                }
            } else {
                self.inputs[t].insert(port.clone(), value);
            }
        }
        for port in collecting {
            if let Some(Value::Array(items)) = self.inputs[t].get_mut(&port) {
                items.shrink_to_fit();
            }
        }
    }

    /// Node `i` has its inputs: run it now, or when its retry is due.
    fn make_ready(&mut self, i: usize) {
        match self.retry_at[i] {
            Some(at) => self.timers.push(Reverse((at, i))),
            None => self.ready.push(i, self.plan.nodes[i].priority),
        }
    }

    /// Move the nodes whose retry is due to the ready queue; returns when the
    /// next one is due, if any waits.
    fn due_retries(&mut self) -> Option<u64> {
        let now = self.clock.now_ms();
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                return Some(at);
            }
            self.timers.pop();
            match self.status[i] {
                NodeStatus::Waiting => self.due_waits.push(i),
                s if s.is_final() => {}
                _ => {
                    self.retry_at[i] = None;
                    self.ready.push(i, self.plan.nodes[i].priority);
                }
            }
        }
        None
    }

    /// Record what changed since the last call (and the run's new status) with
    /// the run's event hub, which commits it and then publishes its events.
    fn record(&mut self, hub: &EventHub, status: Option<RunStatus>) -> Ticket {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let nodes: Vec<NodeRecord> = dirty
            .iter()
            .map(|&i| NodeRecord {
                node: self.plan.nodes[i].id.clone(),
                status: self.status[i],
                attempt: self.attempts[i],
                output: self.outputs[i].as_ref().map(compact_clone),
                error: self.errors[i].clone(),
                retry_at_ms: self.retry_at[i].filter(|_| self.status[i] == NodeStatus::Retrying),
                wait_until_ms: self.wait_until[i].filter(|_| self.status[i] == NodeStatus::Waiting),
            })
            .collect();
        let events = std::mem::take(&mut self.events);
        let waits = dirty
            .iter()
            .zip(&nodes)
            .filter(|(i, _)| matches!(self.plan.nodes[**i].kind, NodeKind::Wait(_)))
            .map(|(_, r)| r.clone())
            .collect();
        surface_waits(hub, waits, &events, &self.new_inputs);
        hub.stage_inputs(std::mem::take(&mut self.new_inputs));
        hub.record(nodes, status, events)
    }
}

/// A subgraph's run is not stored, but its waits are: the outermost run
/// records each under its use path (`chat[3]/ask`, with its events and its
/// input), so that a signal finds it, a resumed run keeps its deadline,
/// and people see what the run waits for, and on what (a chat's last
/// reply). `waits`: the records of wait nodes among those recorded now;
/// `inputs`: the inputs of the nodes started since.
fn surface_waits(
    hub: &EventHub,
    waits: Vec<NodeRecord>,
    events: &[EventKind],
    inputs: &[NodeInput],
) {
    if waits.is_empty() {
        return;
    }
    let (outermost, path) = hub.outermost();
    if path.is_empty() {
        return;
    }
    let qualified = |id: &str| format!("{path}/{id}");
    let started = inputs
        .iter()
        .filter(|i| waits.iter().any(|w| w.node == i.node))
        .map(|i| NodeInput {
            node: qualified(&i.node),
            input: i.input.clone(),
        })
        .collect();
    outermost.stage_inputs(started);
    let kinds = events
        .iter()
        .filter_map(|e| match e {
            EventKind::Node {
                node,
                status,
                error,
                cached,
            } if waits.iter().any(|w| w.node == *node) => Some(EventKind::Node {
                node: qualified(node),
                status: *status,
                error: error.clone(),
                cached: *cached,
            }),
            _ => None,
        })
        .collect();
    let records = waits
        .into_iter()
        .map(|r| NodeRecord {
            node: qualified(&r.node),
            ..r
        })
        .collect();
    outermost.record(records, None, kinds);
}

/// Why a node is disabled.
const DISABLED: &str = "not run: every dataflow into it is disabled (a branch not taken, or an error port's other side)";

/// Why a node is disabled in a preview.
const PREVIEWED: &str = "not run in a preview: its task type has effects, is not cacheable or calls models or the network";

/// Whether a preview runs `node`: no effects, no calls out, and cacheable
/// (the built-in kinds are evaluated; a map as its task type).
fn previewable(node: &crate::graph::PlanNode) -> bool {
    let task = match &node.kind {
        NodeKind::Wait(_) => return false,
        NodeKind::Map(spec) => &spec.task,
        _ => &node.task,
    };
    !task.side_effects
        && !task.reaches_out
        && (task.cacheable || task.plugin == weft_core::graph::BUILTIN)
}

fn skipped_by(node: &str) -> String {
    format!("not run: upstream node \"{node}\" did not complete")
}

impl Runner {
    /// A runner with `options`, looking up and storing cacheable outputs in
    /// `cache` (if any).
    pub fn new(options: RunOptions, cache: Option<Arc<dyn RunStore>>) -> Self {
        Runner { options, cache }
    }

    /// How it runs.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// Run `plan` on `input` (a JSON object given to the root nodes), committing
    /// every change through `hub` before it is published, until done or
    /// `cancel` fires. `prior` holds node states already stored for this run
    /// (empty for a new run): completed nodes keep their outputs and do not run
    /// again; nodes that were running run again as a new attempt. Call
    /// [`Plan::check_input`] first: a missing required input fails its node.
    /// `owner`: the user who owns the run; the output cache is theirs alone.
    /// `budget`: what the whole run may take, shared with the run it is
    /// inside (none: no limit).
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        plan: &Plan,
        input: &Value,
        prior: &[NodeRecord],
        hub: &EventHub,
        cancel: &CancellationToken,
        owner: Option<&str>,
        budget: Option<Arc<Budget>>,
    ) -> Result<RunResult, RunLogError> {
        self.run_as(plan, input, prior, hub, cancel, owner, budget, false)
            .await
    }

    /// Preview `plan` on `input`: run only the nodes whose task types have no
    /// effects, are cacheable and call no models or network (reading the
    /// output cache, never filling it: give a `hub` without a store); every
    /// other node is `disabled`, and the input it would have received is in
    /// [`RunResult::previewed`]. Nothing is stored.
    pub async fn preview(
        &self,
        plan: &Plan,
        input: &Value,
        hub: &EventHub,
        cancel: &CancellationToken,
        owner: Option<&str>,
    ) -> Result<RunResult, RunLogError> {
        self.run_as(plan, input, &[], hub, cancel, owner, None, true)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_as(
        &self,
        plan: &Plan,
        input: &Value,
        prior: &[NodeRecord],
        hub: &EventHub,
        cancel: &CancellationToken,
        owner: Option<&str>,
        budget: Option<Arc<Budget>>,
        preview: bool,
    ) -> Result<RunResult, RunLogError> {
        let n = plan.nodes.len();
        let empty = Map::new();
        let input = input.as_object().unwrap_or(&empty);
        let mut st = State {
            plan,
            status: vec![NodeStatus::Pending; n],
            attempts: vec![0; n],
            remaining: plan.incoming.clone(),
            live: vec![0; n],
            bad_input: vec![None; n],
            blocked: vec![None; n],
            arrived: vec![Vec::new(); n],
            inputs: plan
                .nodes
                .iter()
                .map(|node| node.defaults.clone())
                .collect(),
            started: vec![None; n],
            outputs: vec![None; n],
            errors: vec![None; n],
            ready: ReadyQueue::default(),
            held: vec![None; n],
            awaiting_release: HashMap::new(),
            woken: vec![false; n],
            retry_at: vec![None; n],
            timers: BinaryHeap::new(),
            waiting: Default::default(),
            wait_until: vec![None; n],
            due_waits: Vec::new(),
            nested_waits: crate::subgraph::nested_waits(prior),
            clock: self.options.clock.clone(),
            cache_scope: owner.map(str::to_string),
            grants: self.options.grants.of(owner),
            elements: crate::instance::prior_instances(plan, prior),
            preview,
            budget,
            previewed: BTreeMap::new(),
            replay: true,
            dirty: Vec::new(),
            events: Vec::new(),
            new_inputs: Vec::new(),
        };
        // Replay what the store holds, silently: it was committed and announced.
        let index: std::collections::HashMap<&str, usize> = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id.as_str(), i))
            .collect();
        let mut finished_before = Vec::new();
        for record in prior {
            let Some(&i) = index.get(record.node.as_str()) else {
                continue;
            };
            st.attempts[i] = record.attempt;
            if record.status == NodeStatus::Retrying {
                st.retry_at[i] = Some(record.retry_at_ms.unwrap_or_else(|| st.clock.now_ms()));
                st.errors[i] = record.error.clone();
            }
            // It waits again, until the same time.
            if record.status == NodeStatus::Waiting {
                st.wait_until[i] = record.wait_until_ms;
            }
            if record.status.is_final() && record.status != NodeStatus::Cancelled {
                st.status[i] = record.status;
                st.errors[i] = record.error.clone();
                finished_before.push((i, record.output.clone()));
            }
        }
        for i in plan.roots() {
            if !st.status[i].is_final() {
                let given = plan.root_input(i, input);
                st.inputs[i].extend(given);
                st.make_ready(i);
            }
        }
        for (i, output) in finished_before {
            match (st.status[i], output) {
                (NodeStatus::Completed, Some(output)) => st.complete(i, output, false),
                (NodeStatus::Completed, None) => {}
                (NodeStatus::Disabled, _) => st.disable_from(vec![i]),
                (NodeStatus::Failed, Some(error)) if st.has_error_port(i) => {
                    let message = st.errors[i].clone().unwrap_or_default();
                    st.handle_failure(i, message, error);
                }
                _ => st.cut(i),
            }
        }
        st.replay = false;
        let resumed = !prior.is_empty();
        // Offers an earlier host of this run made are void: their nodes run
        // again as new attempts.
        self.withdraw_offers(hub.run_id(), resumed).await;
        let _offers = self
            .options
            .dispatch
            .as_ref()
            .map(|d| d.run_offers(hub.run_id()));
        st.events.push(EventKind::RunStarted {
            nodes: n,
            resumed,
            preview,
        });
        let (cancelled, mut stats, started) = self.drive(&mut st, hub, cancel).await?;
        // Stopped by its limits: that is why, on every node it stopped.
        let reason = st
            .budget
            .as_ref()
            .and_then(|b| b.reason())
            .filter(|_| cancelled)
            .map(str::to_string);
        let why = reason.as_deref().unwrap_or("the run was cancelled");
        for i in 0..n {
            match st.status[i] {
                NodeStatus::Pending | NodeStatus::Retrying | NodeStatus::Waiting if cancelled => {
                    st.set(i, NodeStatus::Cancelled, Some(why.to_string()))
                }
                NodeStatus::Running
                | NodeStatus::Pending
                | NodeStatus::Retrying
                | NodeStatus::Waiting => st.set(
                    i,
                    NodeStatus::Failed,
                    Some("the host lost this task (internal error)".into()),
                ),
                _ => {}
            }
        }
        let status = if cancelled {
            RunStatus::Cancelled
        } else if (0..n).all(|i| st.ended_well(i)) {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        st.events.push(EventKind::RunFinished { status, reason });
        let done = st.record(hub, Some(status));
        hub.sync(done).await?;
        self.withdraw_offers(hub.run_id(), false).await;
        // Until the end is durable, not just computed: with group commit the
        // last transactions may still be in flight when the last task returns.
        stats.run_ms = started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1000.0);

        let ids = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..n)
                .filter(|&i| pred(i))
                .map(|i| plan.nodes[i].id.clone())
                .collect()
        };
        Ok(RunResult {
            run_id: hub.run_id().to_string(),
            status,
            leaves: ids(&|i| plan.is_leaf(i)),
            outputs: (0..n)
                .filter_map(|i| st.outputs[i].take().map(|o| (plan.nodes[i].id.clone(), o)))
                .collect(),
            nodes: (0..n)
                .map(|i| (plan.nodes[i].id.clone(), st.status[i]))
                .collect(),
            failures: (0..n)
                .filter(|&i| !st.ended_well(i))
                .map(|i| NodeFailure {
                    node: plan.nodes[i].id.clone(),
                    status: st.status[i],
                    error: st.errors[i].clone().unwrap_or_default(),
                })
                .collect(),
            stats,
            previewed: std::mem::take(&mut st.previewed),
        })
    }

    /// With a shared store, withdraw the task offers of run `run_id` (see
    /// [`crate::cluster::dispatch::Dispatch::withdraw_run`]).
    async fn withdraw_offers(&self, run_id: &str, resumed: bool) {
        if let Some(dispatch) = &self.options.dispatch {
            dispatch.withdraw_run(run_id, resumed).await;
        }
    }

    /// Where tasks execute with a shared store, if configured.
    pub fn dispatch(&self) -> Option<&Arc<crate::cluster::dispatch::Dispatch>> {
        self.options.dispatch.as_ref()
    }

    /// The queue the operator routes task type `id` through, if any.
    pub fn queue_of_task_type(&self, id: &str) -> Option<&str> {
        self.options.task_queues.get(id).map(String::as_str)
    }

    /// Whether queue `name` is defined.
    pub fn has_queue(&self, name: &str) -> bool {
        self.options.queues.contains_key(name)
    }

    /// The queue node `node` goes through: its own, else its task type's.
    fn queue_of(&self, node: &crate::graph::PlanNode) -> Option<Arc<Queue>> {
        let name = node
            .queue
            .as_ref()
            .or_else(|| self.options.task_queues.get(&node.task.id))?;
        self.options.queues.get(name).cloned()
    }

    /// The queue node `node` waits in before it starts, and its key: its own
    /// (or its task type's) queue, keyed by its input; else, for a plugin
    /// task of a run with an owner, the per-user limit keyed by the owner.
    fn admission_of(
        &self,
        node: &crate::graph::PlanNode,
        input: &Map<String, Value>,
        owner: Option<&str>,
    ) -> Option<(Arc<Queue>, String)> {
        // A built-in kind holds no slot itself (a map's elements do).
        if node.task.plugin == weft_core::graph::BUILTIN {
            return None;
        }
        if let Some(queue) = self.queue_of(node) {
            let key = queue.key(input);
            return Some((queue, key));
        }
        let wasm = matches!(
            node.task.implementation,
            crate::task::Implementation::Wasm(_)
        );
        match (&self.options.users, owner) {
            (Some(users), Some(owner)) if wasm => Some((users.clone(), owner.to_string())),
            _ => None,
        }
    }

    /// How node `i`'s instances run (a map's elements, a fallback's
    /// alternatives, a loop's iterations): the node's cache, retry and queue
    /// settings, and the instances earlier attempts finished.
    fn instances(
        &self,
        st: &mut State<'_>,
        i: usize,
        ctx: TaskContext,
        stop: CancellationToken,
        hub: &EventHub,
    ) -> crate::instance::Instances {
        let node = &st.plan.nodes[i];
        let o = &self.options;
        let users = match (&o.users, &st.cache_scope) {
            (Some(users), Some(owner)) => Some((users.clone(), owner.clone())),
            _ => None,
        };
        let cache = self
            .cache
            .clone()
            .filter(|_| o.cache.enabled && node.cache)
            .map(|store| CacheUse {
                store,
                policy: o.cache.clone(),
                scope: st.cache_scope.clone(),
            });
        crate::instance::Instances {
            node: node.id.clone(),
            budget: st.budget.clone(),
            done: st.elements.remove(&i).unwrap_or_default(),
            hub: hub.clone(),
            ctx,
            cache,
            cache_shared: o.cache_shared.clone(),
            stop,
            dispatch: o.dispatch.clone(),
            timeout: node.timeout,
            retries: node.retries.unwrap_or(o.retry.retries),
            backoff: node.retry_backoff,
            retry: o.retry.clone(),
            routing: crate::instance::Routing {
                node_queue: node.queue.clone(),
                task_queues: o.task_queues.clone(),
                queues: o.queues.clone(),
                users,
            },
            // Made once per node, only for one that runs a subgraph (it
            // copies the run's options), and shared by its instances.
            subgraphs: (!node.kind.subgraphs().is_empty()).then(|| self.subgraphs(st, hub)),
        }
    }

    /// What the subgraphs node `i` runs run with.
    fn subgraphs(&self, st: &State<'_>, hub: &EventHub) -> Arc<Subgraphs> {
        Arc::new(Subgraphs {
            runner: self.local(),
            owner: st.cache_scope.clone(),
            parent: hub.clone(),
            budget: st.budget.clone(),
            waits: st.nested_waits.clone(),
        })
    }

    /// This runner, executing every task here (for a subgraph's run inside
    /// a run: see [`crate::subgraph`]).
    fn local(&self) -> Runner {
        let mut local = self.clone();
        local.options.dispatch = None;
        local
    }

    /// Node `i`'s attempt failed with `e`: schedule a retry if the error is
    /// retryable and attempts are left, else fail the node.
    fn failed(&self, st: &mut State<'_>, i: usize, e: TaskError) {
        let node = &st.plan.nodes[i];
        // The node's own policy, else its queue's (which may be its task
        // type's, by routing), else the host's.
        let queue = self.queue_of(node);
        let retries = node
            .retries
            .or(queue.as_ref().and_then(|q| q.retries))
            .unwrap_or(self.options.retry.retries);
        let backoff = node
            .retry_backoff
            .or(queue.as_ref().and_then(|q| q.retry_backoff));
        let attempt = st.attempts[i];
        if is_retryable(&e) && attempt <= retries {
            st.inputs[i] = st.take_started(i);
            let asked = match &e {
                TaskError::Retryable { delay, .. } => *delay,
                _ => None,
            };
            let seed = format!("{}/{}", st.plan.origin, node.id);
            let delay = self.options.retry.delay(attempt, backoff, asked, &seed);
            let at = st.clock.now_ms() + delay.as_millis() as u64;
            tracing::info!(node = %node.id, attempt, delay_ms = delay.as_millis() as u64, error = %e, "retry scheduled");
            st.retry_at[i] = Some(at);
            st.timers.push(Reverse((at, i)));
            st.set(i, NodeStatus::Retrying, Some(e.to_string()));
            return;
        }
        tracing::debug!(node = %node.id, error = %e, "node failed");
        let message = if attempt > 1 {
            format!("{e} (after {attempt} attempts)")
        } else {
            e.to_string()
        };
        if st.has_error_port(i) {
            let input = Value::Object(st.take_started(i));
            let error =
                weft_core::graph::error_value(&message, &e.kind(), &node.id, attempt, Some(input));
            st.handle_failure(i, message, error);
            return;
        }
        st.set(i, NodeStatus::Failed, Some(message));
        st.cut(i);
    }

    /// Wait node `i` has its input: it ends at once if its signal was sent
    /// already; else it waits (until its timeout, kept across restarts),
    /// holding no task slot. A run no signal can reach (not stored) fails
    /// it.
    async fn begin_wait(
        &self,
        st: &mut State<'_>,
        i: usize,
        spec: &WaitSpec,
        signals: &SignalWatch,
    ) -> Result<(), RunLogError> {
        st.attempts[i] = st.attempts[i].max(1);
        st.start(i);
        if !signals.reachable() {
            let why = format!(
                "waits for signal \"{}\", but this run is not stored, so no signal can reach it \
                 (submit it to `weft serve`)",
                spec.signal
            );
            self.failed(st, i, TaskError::Failed(why));
            return Ok(());
        }
        if let Some(signal) = signals.get(&spec.signal).await? {
            st.complete(i, signal.body, false);
            return Ok(());
        }
        let now = st.clock.now_ms();
        let until = st.wait_until[i].or_else(|| {
            spec.timeout
                .map(|t| now.saturating_add(t.as_millis() as u64))
        });
        st.wait_until[i] = until;
        if let Some(at) = until {
            st.timers.push(Reverse((at, i)));
        }
        st.waiting.insert(i);
        st.set(i, NodeStatus::Waiting, None);
        Ok(())
    }

    /// Look for the signals of the waiting nodes: a node whose signal came
    /// completes with its body; else one in `timed_out` times out: its
    /// input goes out on its `[timeout]` port if a dataflow takes it, or it
    /// fails as a timeout.
    async fn settle_waits(
        &self,
        st: &mut State<'_>,
        signals: &SignalWatch,
        timed_out: &[usize],
    ) -> Result<(), RunLogError> {
        let waiting: Vec<usize> = st.waiting.iter().copied().collect();
        for i in waiting {
            let NodeKind::Wait(spec) = &st.plan.nodes[i].kind else {
                continue;
            };
            let signal = signals.get(&spec.signal).await?;
            if signal.is_none() && !timed_out.contains(&i) {
                continue;
            }
            st.waiting.remove(&i);
            if let Some(signal) = signal {
                st.complete(i, signal.body, false);
                continue;
            }
            let takes_timeout = st.plan.outgoing[i]
                .iter()
                .any(|&e| st.plan.edges[e].source_port == TIMEOUT_PORT);
            if takes_timeout {
                let input = Value::Object(st.take_started(i));
                st.complete(i, WaitSpec::timed_out(input), false);
                continue;
            }
            let limit = spec.timeout.unwrap_or_default();
            self.failed(st, i, TaskError::Timeout { limit });
        }
        Ok(())
    }

    /// The scheduling loop. Returns whether the run was cancelled, figures, and
    /// when the first node was scheduled.
    async fn drive(
        &self,
        st: &mut State<'_>,
        hub: &EventHub,
        cancel: &CancellationToken,
    ) -> Result<(bool, RunStats, Option<Instant>), RunLogError> {
        let plan = st.plan;
        let parallelism = self.options.parallelism.max(1);
        let mut running: InFlight<(usize, NodeOutcome)> = InFlight::new();
        let mut stats = RunStats::default();
        let mut started: Option<Instant> = None;
        let mut cancelled = cancel.is_cancelled();
        let mut signals = SignalWatch::new(hub, plan);
        let mut signalled = false;
        loop {
            // The token may fire while a completion is being handled (the
            // select below then takes the completion): read it every turn.
            cancelled |= cancel.is_cancelled();
            st.due_retries();
            let timed_out = std::mem::take(&mut st.due_waits);
            if std::mem::take(&mut signalled) || !timed_out.is_empty() {
                self.settle_waits(st, &signals, &timed_out).await?;
            }
            // Mark the next ready nodes running and make that durable before
            // they start, so an attempt is never lost. A node routed through a
            // queue starts only when the queue's limiters allow; otherwise it
            // waits (on the timer heap) for as long as they say.
            let mut starting = Vec::new();
            while !cancelled && running.len() + starting.len() < parallelism {
                let Some(i) = st.ready.pop() else { break };
                if st.preview && !previewable(&plan.nodes[i]) {
                    st.hold_back(i);
                    continue;
                }
                let owner = st.cache_scope.as_deref();
                if let Some((queue, key)) = self.admission_of(&plan.nodes[i], &st.inputs[i], owner)
                {
                    // Behind others already waiting for this key's slot (unless
                    // it was the first of them, woken by a release).
                    let woken = std::mem::take(&mut st.woken[i]);
                    if !woken
                        && let Some(line) = st
                            .awaiting_release
                            .get_mut(&(queue.name.clone(), key.clone()))
                        && !line.is_empty()
                    {
                        line.push_back(i);
                        continue;
                    }
                    let mut wait = queue.wait(&key).await?;
                    if wait == Wait::Now {
                        // Another host sharing the store may have taken the slot.
                        wait = queue.take(&key).await?;
                    }
                    match wait {
                        Wait::Now => {}
                        Wait::For(d) => {
                            let at = st.clock.now_ms() + d.as_millis() as u64;
                            st.timers.push(Reverse((at, i)));
                            continue;
                        }
                        Wait::UntilRelease => {
                            st.awaiting_release
                                .entry((queue.name.clone(), key))
                                .or_default()
                                .push_back(i);
                            continue;
                        }
                    }
                    st.held[i] = Some((queue, key));
                }
                // A node's first attempt is one more task of the run's budget.
                let over = st.attempts[i] == 0 && st.budget.as_ref().is_some_and(|b| !b.take());
                if over {
                    if let Some((queue, key)) = st.held[i].take() {
                        queue.release(&key);
                    }
                    cancelled = true;
                    break;
                }
                if let NodeKind::Wait(spec) = &plan.nodes[i].kind {
                    self.begin_wait(st, i, spec, &signals).await?;
                    continue;
                }
                st.attempts[i] += 1;
                st.set(i, NodeStatus::Running, None);
                let node_input = st.start(i);
                if st.held[i].is_some() {
                    // Stamp its start now, not after the admissions of the
                    // nodes behind it (each a store round trip).
                    st.record(hub, None);
                }
                starting.push((i, node_input));
            }
            // Changes are committed in the background, in order (group commit):
            // the next tasks start without waiting for the disk, except a task
            // with side effects, which starts only once its inputs and its
            // `running` state are durable.
            let ticket = st.record(hub, None);
            if starting
                .iter()
                .any(|(i, _)| plan.nodes[*i].task.side_effects)
            {
                hub.sync(ticket).await?;
            }
            if let Some(e) = hub.failure() {
                return Err(e);
            }
            for (i, node_input) in starting {
                let node = &plan.nodes[i];
                let task = node.task.clone();
                let timeout = node.timeout;
                let mut ctx = TaskContext::new(hub.run_id(), &node.id);
                ctx.attempt = st.attempts[i];
                ctx.events = Some(hub.node_events(&node.id));
                ctx.grants = st.grants.clone();
                let stop = cancel.clone();
                let cache = self
                    .cache
                    .clone()
                    .filter(|_| self.options.cache.enabled && node.cache)
                    .map(|store| CacheUse {
                        store,
                        policy: self.options.cache.clone(),
                        scope: st
                            .cache_scope
                            .clone()
                            .filter(|_| !self.options.cache_shared.contains(&task.id)),
                    });
                started.get_or_insert_with(Instant::now);
                let span = tracing::info_span!("task", run_id = %hub.run_id(), node = %node.id, task_type = %task.id, attempt = st.attempts[i]);
                let dispatch = self.options.dispatch.clone();
                let subgraphs = matches!(task.implementation, Implementation::Graph(_))
                    .then(|| self.subgraphs(st, hub));
                if !matches!(node.kind, NodeKind::Task | NodeKind::Conditional(_)) {
                    let kind = node.kind.clone();
                    let instances = self.instances(st, i, ctx, stop, hub);
                    let run = crate::control::run_kind(kind, node_input, instances, parallelism);
                    running.start(tracing::Instrument::instrument(
                        async move { (i, (run.await, Cached::Miss(None))) },
                        span,
                    ));
                    continue;
                }
                running.start(tracing::Instrument::instrument(
                    async move {
                        let execution = Execution {
                            ctx,
                            timeout,
                            cache,
                            stop,
                            dispatch,
                            subgraphs,
                        };
                        (i, run_node(&task, &node_input, execution).await)
                    },
                    span,
                ));
            }
            if running.is_empty() {
                // The slot they wait for is held outside this run (another
                // run in this process): look again shortly.
                for (_, line) in st.awaiting_release.drain() {
                    for w in line {
                        st.timers.push(Reverse((st.clock.now_ms() + 10, w)));
                    }
                }
            }
            let next_retry = st.timers.peek().map(|Reverse((at, _))| *at);
            let idle = next_retry.is_none() && st.waiting.is_empty();
            if running.is_empty() && (idle || cancelled) {
                break;
            }
            let until_retry = next_retry.map(|at| st.clock.recheck_in(at));
            tokio::select! {
                _ = cancel.cancelled(), if !cancelled => { cancelled = true; }
                _ = tokio::time::sleep(until_retry.unwrap_or_default()), if until_retry.is_some() => {}
                _ = signals.arrival(), if !st.waiting.is_empty() => { signalled = true; }
                Some(joined) = running.next(), if !running.is_empty() => {
                    let held = joined.as_ref().ok().and_then(|(i, _)| st.held[*i].take());
                    if let Some((queue, key)) = &held {
                        queue.release(key);
                        // A slot freed: the first waiting for it checks again.
                        if let Some(w) = st
                            .awaiting_release
                            .get_mut(&(queue.name.clone(), key.clone()))
                            .and_then(VecDeque::pop_front)
                        {
                            st.woken[w] = true;
                            st.ready.push(w, plan.nodes[w].priority);
                        }
                        // A task that asks to wait (Retry-After) pauses its queue key.
                        if let Ok((_, (Err(TaskError::Retryable { delay: Some(d), .. }), _))) = &joined {
                            queue.pause(key, st.clock.now_ms() + d.as_millis() as u64).await?;
                        }
                    }
                    match &joined {
                        Ok((_, (_, Cached::Hit))) => stats.cache_hits += 1,
                        Ok(_) => stats.tasks_executed += 1,
                        Err(_) => {}
                    }
                    match joined {
                        Ok((i, (Ok(output), cached))) => {
                            let hit = matches!(cached, Cached::Hit);
                            if let Cached::Miss(Some(put)) = cached {
                                hub.stage_cache(vec![put]);
                            }
                            st.complete(i, output, hit);
                        }
                        Ok((i, (Err(TaskError::Cancelled(m)), _))) if cancel.is_cancelled() => {
                            st.set(i, NodeStatus::Cancelled, Some(m));
                        }
                        Ok((i, (Err(e), _))) => self.failed(st, i, e),
                        // A task future panicked: a host bug. Its node is found
                        // still `running` at the end and failed then.
                        Err(e) => tracing::error!(error = %e, "a task panicked in the host"),
                    }
                }
            }
        }
        Ok((cancelled, stats, started))
    }
}

/// A fresh cached output for `key`, if the cache has one. Store errors read as
/// misses (the task then simply runs).
async fn cache_lookup(store: &dyn RunStore, policy: &CachePolicy, key: &str) -> Option<Value> {
    match store.cache_get(key).await {
        Ok(Some(entry)) => {
            let age = std::time::Duration::from_millis(now_ms().saturating_sub(entry.created_ms));
            policy
                .max_age
                .is_none_or(|max| age <= max)
                .then_some(entry.output)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "output cache lookup failed; running the task");
            None
        }
    }
}

/// How one node's run ended, and where its result came from.
pub(crate) type NodeOutcome = (Result<Value, TaskError>, Cached);

/// Where a task's result came from.
pub(crate) enum Cached {
    /// The output cache.
    Hit,
    /// The task ran; its output goes to the cache if this says so.
    Miss(Option<CachePut>),
}

/// The output cache a node uses: where, how, and whose entries.
#[derive(Clone)]
pub(crate) struct CacheUse {
    store: Arc<dyn RunStore>,
    policy: CachePolicy,
    pub scope: Option<String>,
}

/// How one attempt of a node executes.
pub(crate) struct Execution {
    pub ctx: TaskContext,
    pub timeout: std::time::Duration,
    /// The output cache to look in and fill, if the node uses it.
    pub cache: Option<CacheUse>,
    /// Fires when the run is cancelled.
    pub stop: CancellationToken,
    /// Where the task executes, with a shared store; `None`: here.
    pub dispatch: Option<Arc<crate::cluster::dispatch::Dispatch>>,
    /// How a subgraph task type runs (given for one).
    pub subgraphs: Option<Arc<Subgraphs>>,
}

/// Run one node: from the output cache when `cache` is given and holds a fresh
/// entry, else by executing its task (interrupted when `stop` fires); a fresh
/// output comes back with the cache entry to store.
pub(crate) async fn run_node(task: &TaskType, input: &Value, x: Execution) -> NodeOutcome {
    let Execution {
        ctx,
        timeout,
        cache,
        stop,
        dispatch,
        subgraphs,
    } = x;
    // A subgraph runs as a nested run; its inner nodes use the cache.
    if let Implementation::Graph(sub) = &task.implementation {
        let end = match &subgraphs {
            Some(with) => with.run(sub, input.clone(), &ctx, timeout, &stop).await,
            None => Err(TaskError::Host(
                "a subgraph without a runner (a host bug)".into(),
            )),
        };
        return (end, Cached::Miss(None));
    }
    // A folder, database or model named by a value that arrived through a
    // dataflow is checked here (those named in the graph, at submit too).
    let named = input
        .as_object()
        .map(|i| ctx.grants.check_ports(&task.resources, i));
    if let Some(Err(e)) = named {
        return (
            Err(TaskError::NotGranted(e.to_string())),
            Cached::Miss(None),
        );
    }
    let key = cache
        .as_ref()
        .map(|c| crate::cache::key(task, input, c.scope.as_deref()));
    if let (Some(c), Some(key)) = (&cache, &key)
        && let Some(hit) = cache_lookup(c.store.as_ref(), &c.policy, key).await
    {
        return (Ok(hit), Cached::Hit);
    }
    // Built-in kinds (a conditional) are evaluated here: no other host has
    // their compiled settings.
    let result = match dispatch.filter(|_| task.plugin != weft_core::graph::BUILTIN) {
        Some(dispatch) => dispatch.execute(task, input, &ctx, timeout, &stop).await,
        None => tokio::select! {
            r = task.execute(input, &ctx, timeout) => r,
            _ = stop.cancelled() => Err(TaskError::Cancelled("the run was cancelled".into())),
        },
    };
    let put = match (cache, key, &result) {
        (Some(CacheUse { policy, .. }), Some(key), Ok(output)) => Some(CachePut {
            key,
            entry: CacheEntry {
                task_type: task.id.clone(),
                version: task.version.clone(),
                output: output.clone(),
                created_ms: now_ms(),
            },
            keep_last: policy.keep_last,
        }),
        _ => None,
    };
    (result, Cached::Miss(put))
}
