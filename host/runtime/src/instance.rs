//! Node instances: the runs of a task type that a built-in kind makes on
//! its node's behalf (a map's elements, a fallback's alternatives, a loop's
//! iterations).
//!
//! Owns how one instance runs and is made durable: instance `k` of node
//! `node` is stored as the node record `node[k]` with its final state and
//! output (or error) as it ends; it retries like a node, uses the output
//! cache on its own, and waits for the queue its task type is routed
//! through (or the per-user limit). A resumed run finds the instances
//! already finished and does not run them again. It must not know what a
//! kind does with its instances (that is [`crate::map`] and
//! [`crate::control`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::events::{EventHub, EventKind, NodeStatus};
use crate::graph::{NodeKind, Plan, error_value};
use crate::limiter::{Queue, Wait};
use crate::runner::{CacheUse, Cached, Execution, RetryPolicy, run_node};
use crate::store::NodeRecord;
use crate::task::{Implementation, TaskContext, TaskError, TaskType};
use weft_core::event::LogLevel;

/// The id of instance `k` of node `node`.
pub(crate) fn instance_id(node: &str, k: usize) -> String {
    format!("{node}[{k}]")
}

/// The node and position an instance id (`node[k]`) names, if it is one.
fn owner_of(id: &str) -> Option<(&str, usize)> {
    let (node, k) = id.strip_suffix(']')?.rsplit_once('[')?;
    Some((node, k.parse().ok()?))
}

/// The stored final states of instances in `prior` (a run's node records),
/// by node index and instance.
pub(crate) fn prior_instances(
    plan: &Plan,
    prior: &[NodeRecord],
) -> HashMap<usize, HashMap<usize, NodeRecord>> {
    let owners: HashMap<&str, usize> = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !matches!(n.kind, NodeKind::Task | NodeKind::Conditional(_)))
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut out: HashMap<usize, HashMap<usize, NodeRecord>> = HashMap::new();
    if owners.is_empty() {
        return out;
    }
    for record in prior.iter().filter(|r| r.status.is_final()) {
        let Some((node, k)) = owner_of(&record.node) else {
            continue;
        };
        let Some(&i) = owners.get(node) else {
            continue;
        };
        out.entry(i).or_default().insert(k, record.clone());
    }
    out
}

/// How many instances of one node have ended, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceCount {
    /// Completed.
    pub completed: usize,
    /// Failed for good (in the last attempt of each).
    pub failed: usize,
}

/// Split a run's node records into the nodes' own and their instances'
/// (`node[k]`, where `node` has a record too): the former in order, the
/// latter counted per node. Views show the counts, not 100,000 records.
pub fn split_instances(
    nodes: &[NodeRecord],
) -> (
    Vec<&NodeRecord>,
    std::collections::BTreeMap<String, InstanceCount>,
) {
    let ids: std::collections::HashSet<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    let mut own = Vec::new();
    let mut counts: std::collections::BTreeMap<String, InstanceCount> = Default::default();
    for n in nodes {
        let owner = owner_of(&n.node)
            .map(|(owner, _)| owner)
            .filter(|owner| ids.contains(owner));
        match owner {
            None => own.push(n),
            Some(owner) => {
                let count = counts.entry(owner.to_string()).or_default();
                match n.status {
                    NodeStatus::Completed => count.completed += 1,
                    _ => count.failed += 1,
                }
            }
        }
    }
    (own, counts)
}

/// Where a task type's instances queue: the node's queue, else the one the
/// operator routes the task type through, else (for a plugin task of a run
/// with an owner) the per-user limit.
pub(crate) struct Routing {
    /// The node's own queue, if set.
    pub node_queue: Option<String>,
    /// Task type → queue name, as the operator configured.
    pub task_queues: HashMap<String, String>,
    /// The queues by name.
    pub queues: HashMap<String, Arc<Queue>>,
    /// The per-user limit and the run's owner.
    pub users: Option<(Arc<Queue>, String)>,
}

/// How the instances of one node run.
pub(crate) struct Instances {
    /// The node's id.
    pub node: String,
    /// The run's budget: each instance started is one more task.
    pub budget: Option<Arc<crate::budget::Budget>>,
    /// Final instance states from earlier attempts.
    pub done: HashMap<usize, NodeRecord>,
    pub hub: EventHub,
    /// The node's context (instances get their own ids).
    pub ctx: TaskContext,
    /// The output cache, for the task types that may use it.
    pub cache: Option<CacheUse>,
    /// Task types whose cache entries every user shares.
    pub cache_shared: std::collections::HashSet<String>,
    pub stop: CancellationToken,
    pub dispatch: Option<Arc<crate::cluster::dispatch::Dispatch>>,
    /// The node's limit per instance.
    pub timeout: Duration,
    /// Retries per instance, and the policy for their delays.
    pub retries: u32,
    pub backoff: Option<Duration>,
    pub retry: RetryPolicy,
    pub routing: Routing,
    /// How the subgraphs among its bodies run (`None`: it has none).
    pub subgraphs: Option<Arc<crate::subgraph::Subgraphs>>,
}

/// How an instance ended: its output or error, and its attempts.
pub(crate) type End = (Result<Value, TaskError>, u32);

impl Instances {
    /// Instance `k`'s output, if it completed in an earlier attempt (one
    /// that failed runs again: this attempt of the node is a new try).
    pub fn finished(&self, k: usize) -> Option<Value> {
        let record = self.done.get(&k)?;
        (record.status == NodeStatus::Completed)
            .then(|| record.output.clone().unwrap_or(Value::Null))
    }

    /// Run `task` as instance `k` on `input` until it completes or fails for
    /// good, retrying retryable failures; record how it ended.
    pub async fn run(&self, task: &TaskType, k: usize, input: Value) -> End {
        let end = self.attempts(task, k, input).await;
        self.record(k, &end);
        // A task that completes without waiting (a cached or quick one)
        // would let a map run thousands of instances in one poll; the hub's
        // committer, woken onto this worker, would not run until the end,
        // and every record would wait in memory. Yield when the budget is
        // spent.
        tokio::task::consume_budget().await;
        end
    }

    async fn attempts(&self, task: &TaskType, k: usize, input: Value) -> End {
        let id = instance_id(&self.node, k);
        let mut attempt = self.done.get(&k).map_or(0, |r| r.attempt);
        if let Some(budget) = self.budget.as_ref().filter(|b| !b.take()) {
            let why = budget.reason().unwrap_or("the run was cancelled");
            return (Err(TaskError::Cancelled(why.to_string())), attempt);
        }
        // A new try of the node starts the instance's attempts where they were.
        loop {
            attempt += 1;
            let held = match self.admit(task, &input).await {
                Ok(held) => held,
                Err(e) => return (Err(e), attempt),
            };
            let end = self.once(task, &id, attempt, input.clone()).await;
            if let Some((queue, key)) = held {
                queue.release(&key);
            }
            match end {
                Err(e) if retryable(&e) && attempt <= self.retries && !self.stop.is_cancelled() => {
                    self.log(
                        LogLevel::Warn,
                        format!("{id}: attempt {attempt} failed, retrying: {e}"),
                    );
                    let asked = match &e {
                        TaskError::Retryable { delay, .. } => *delay,
                        _ => None,
                    };
                    let delay = self.retry.delay(attempt, self.backoff, asked, &id);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.cancelled() => return (Err(cancelled()), attempt),
                    }
                }
                end => return (end, attempt),
            }
        }
    }

    /// One attempt of instance `id`.
    async fn once(
        &self,
        task: &TaskType,
        id: &str,
        attempt: u32,
        input: Value,
    ) -> Result<Value, TaskError> {
        let mut ctx = self.ctx.clone();
        // Its progress is folded into the node's; its logs are the node's.
        ctx.events = self.ctx.events.as_ref().map(|e| e.without_progress());
        ctx.node_id = id.to_string();
        ctx.idempotency_key = format!("{}/{id}", ctx.run_id);
        ctx.attempt = attempt;
        let timeout = self.timeout.min(task.timeout);
        let mut cache = self
            .cache
            .clone()
            .filter(|_| task.cacheable && !task.side_effects);
        if let Some(c) = cache
            .as_mut()
            .filter(|_| self.cache_shared.contains(&task.id))
        {
            c.scope = None;
        }
        let execution = Execution {
            ctx,
            timeout,
            cache,
            stop: self.stop.clone(),
            dispatch: self.dispatch.clone(),
            subgraphs: self.subgraphs.clone(),
        };
        let (end, cached) = run_node(task, &input, execution).await;
        if let Cached::Miss(Some(put)) = cached {
            self.hub.stage_cache(vec![put]);
        }
        end
    }

    /// Wait for a slot in the queue `task`'s instances go through, if any.
    async fn admit(
        &self,
        task: &TaskType,
        input: &Value,
    ) -> Result<Option<(Arc<Queue>, String)>, TaskError> {
        let r = &self.routing;
        let named = r
            .node_queue
            .as_ref()
            .or_else(|| r.task_queues.get(&task.id))
            .and_then(|name| r.queues.get(name));
        let empty = Map::new();
        let wasm = matches!(task.implementation, Implementation::Wasm(_));
        let (queue, key) = match (named, &r.users) {
            (Some(q), _) => (q.clone(), q.key(input.as_object().unwrap_or(&empty))),
            (None, Some((q, owner))) if wasm => (q.clone(), owner.clone()),
            _ => return Ok(None),
        };
        let host = |e: crate::store::StoreError| TaskError::Host(e.to_string());
        loop {
            let mut wait = queue.wait(&key).await.map_err(host)?;
            if wait == Wait::Now {
                wait = queue.take(&key).await.map_err(host)?;
            }
            let pause = match wait {
                Wait::Now => return Ok(Some((queue, key))),
                Wait::For(d) => d,
                Wait::UntilRelease => Duration::from_millis(10),
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.stop.cancelled() => return Err(cancelled()),
            }
        }
    }

    /// Record how instance `k` ended (nothing when it was cancelled: it runs
    /// again when the run resumes).
    fn record(&self, k: usize, (end, attempts): &End) {
        let node = instance_id(&self.node, k);
        let record = match end {
            Ok(output) => NodeRecord {
                node,
                status: NodeStatus::Completed,
                attempt: *attempts,
                output: Some(output.clone()),
                error: None,
                retry_at_ms: None,
                wait_until_ms: None,
            },
            Err(TaskError::Cancelled(_)) => return,
            Err(e) => NodeRecord {
                node,
                status: NodeStatus::Failed,
                attempt: *attempts,
                // The kind is kept where an instance's output would be.
                output: Some(Value::String(e.kind())),
                error: Some(e.to_string()),
                retry_at_ms: None,
                wait_until_ms: None,
            },
        };
        self.hub.record(vec![record], None, Vec::new());
    }

    /// Instance `k`'s failure (`end` an error) as an error port gives it,
    /// with its `index`.
    pub fn error(&self, k: usize, (end, attempts): &End) -> Value {
        let (message, kind) = match end {
            Err(e) => (e.to_string(), e.kind()),
            Ok(_) => (String::new(), String::new()),
        };
        let mut v = error_value(
            &message,
            &kind,
            &instance_id(&self.node, k),
            *attempts,
            None,
        );
        v["index"] = Value::from(k);
        v
    }

    /// A line in the node's log.
    pub fn log(&self, level: LogLevel, message: String) {
        if let Some(events) = &self.ctx.events {
            events.log(level, message);
        }
    }

    /// Announce the node's progress (`done` of `total`, described by `what`).
    pub fn progress(&self, what: &str, done: usize, total: usize) {
        let fraction = if total == 0 {
            1.0
        } else {
            done as f32 / total as f32
        };
        self.hub.buffer(EventKind::Progress {
            node: self.node.clone(),
            fraction,
            message: Some(format!("{what} {} / {}", grouped(done), grouped(total))),
        });
    }
}

fn retryable(e: &TaskError) -> bool {
    matches!(e, TaskError::Retryable { .. } | TaskError::Host(_))
}

fn cancelled() -> TaskError {
    TaskError::Cancelled("the run was cancelled".into())
}

/// `12345` as `12,345`.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(super::grouped(3712), "3,712");
        assert_eq!(super::grouped(100_000), "100,000");
        assert_eq!(super::grouped(7), "7");
    }
}
