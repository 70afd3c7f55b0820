//! Map nodes: a task type run once per element of array inputs.
//!
//! Owns one map node's execution. Each element is a node instance of its
//! own in the run's store (`node[17]`): its final state and output are
//! recorded as it ends, it uses the output cache on its own, and when a run
//! resumes, elements already completed (or failed for good) are not run
//! again. Elements retry like nodes, go through the queue their task type is
//! routed through (and the per-user limit), and their progress is announced
//! at most every 100 ms, not per element, so the event log stays small. It
//! must not know how the graph around the map node is scheduled (that is
//! [`crate::runner`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::events::{EventHub, EventKind, NodeStatus};
use crate::graph::{Elements, MapSpec, OnError, Plan, error_value};
use crate::limiter::{Queue, Wait};
use crate::runner::{CacheUse, Cached, Execution, RetryPolicy, run_node};
use crate::store::NodeRecord;
use crate::task::{TaskContext, TaskError};

/// The id of element `k` of map node `node`.
pub(crate) fn element_id(node: &str, k: usize) -> String {
    format!("{node}[{k}]")
}

/// The stored states of map elements in `prior` (a run's node records), by
/// map node index and element.
pub(crate) fn prior_elements(
    plan: &Plan,
    prior: &[NodeRecord],
) -> HashMap<usize, HashMap<usize, NodeRecord>> {
    let maps: HashMap<&str, usize> = plan
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.kind, crate::graph::NodeKind::Map(_)))
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut out: HashMap<usize, HashMap<usize, NodeRecord>> = HashMap::new();
    if maps.is_empty() {
        return out;
    }
    for record in prior.iter().filter(|r| r.status.is_final()) {
        let Some((node, rest)) = record.node.rsplit_once('[') else {
            continue;
        };
        let (Some(&i), Some(Ok(k))) = (
            maps.get(node),
            rest.strip_suffix(']').map(str::parse::<usize>),
        ) else {
            continue;
        };
        out.entry(i).or_default().insert(k, record.clone());
    }
    out
}

/// How one map node runs.
pub(crate) struct MapRun {
    pub spec: Arc<MapSpec>,
    /// The map node's id.
    pub node: String,
    /// Its input.
    pub input: Value,
    /// Final element states from earlier attempts.
    pub done: HashMap<usize, NodeRecord>,
    pub hub: EventHub,
    /// The context of the map node (elements get their own ids).
    pub ctx: TaskContext,
    pub cache: Option<CacheUse>,
    pub stop: CancellationToken,
    pub dispatch: Option<Arc<crate::cluster::dispatch::Dispatch>>,
    pub timeout: Duration,
    /// Elements running at once.
    pub concurrency: usize,
    /// Retries per element, and the policy for their delays.
    pub retries: u32,
    pub backoff: Option<Duration>,
    pub retry: RetryPolicy,
    /// The queue elements go through, if any (else the per-user limit and
    /// its key).
    pub queue: Option<Arc<Queue>>,
    pub users: Option<(Arc<Queue>, String)>,
}

/// How one element ended: its output, or its error and attempts.
type ElementEnd = (usize, Result<Value, TaskError>, u32);

/// Run the map: every element not already finished, batch after batch; the
/// output collects their results in element order.
pub(crate) async fn run_map(m: MapRun) -> Result<Value, TaskError> {
    let empty = Map::new();
    let input = m.input.as_object().unwrap_or(&empty);
    let elements = m.spec.elements(input).map_err(TaskError::InvalidInput)?;
    let n = elements.count;
    let mut results: Vec<Option<Value>> = vec![None; n];
    let mut failures: Vec<Option<Value>> = vec![None; n];
    let mut finished = vec![false; n];
    for (k, record) in &m.done {
        if *k < n {
            finished[*k] = true;
            match record.status {
                NodeStatus::Completed => results[*k] = record.output.clone(),
                _ => failures[*k] = Some(element_error(*k, record)),
            }
        }
    }
    let mut progress = Progress::new(&m, finished.iter().filter(|f| **f).count(), n);
    let failing =
        AtomicBool::new(failures.iter().any(Option::is_some) && m.spec.on_error == OnError::Fail);
    let batch = m.spec.batch_size.unwrap_or(n.max(1));
    for start in (0..n).step_by(batch.max(1)) {
        let todo = (start..(start + batch).min(n)).filter(|k| !finished[*k]);
        let mut ends = futures::stream::iter(todo)
            .take_while(|_| {
                std::future::ready(!failing.load(Ordering::Relaxed) && !m.stop.is_cancelled())
            })
            .map(|k| run_element(&m, &elements, input, k))
            .buffer_unordered(m.concurrency.max(1));
        while let Some((k, end, attempts)) = ends.next().await {
            record_element(&m, k, &end, attempts);
            match end {
                Ok(output) => results[k] = Some(output),
                Err(TaskError::Cancelled(why)) => return Err(TaskError::Cancelled(why)),
                Err(e) => {
                    failing.store(m.spec.on_error == OnError::Fail, Ordering::Relaxed);
                    let record = failed_record(&m.node, k, &e, attempts);
                    failures[k] = Some(element_error(k, &record));
                }
            }
            progress.one_more();
        }
    }
    progress.finish();
    if m.stop.is_cancelled() {
        return Err(TaskError::Cancelled("the run was cancelled".into()));
    }
    finish(&m.spec, results, failures)
}

/// The map's output, or its failure (`on_error: fail`: the first failed
/// element, by position).
fn finish(
    spec: &MapSpec,
    results: Vec<Option<Value>>,
    failures: Vec<Option<Value>>,
) -> Result<Value, TaskError> {
    if spec.on_error == OnError::Fail
        && let Some(first) = failures.iter().flatten().next()
    {
        let message = first["message"].as_str().unwrap_or_default();
        let count = failures.iter().flatten().count();
        return Err(TaskError::Failed(format!(
            "{count} element{} failed; the first: {message}",
            if count == 1 { "" } else { "s" }
        )));
    }
    Ok(spec.collect(results, failures.into_iter().flatten().collect()))
}

/// Run element `k` until it completes or fails for good, retrying
/// retryable failures with the node's policy.
async fn run_element(
    m: &MapRun,
    elements: &Elements,
    input: &Map<String, Value>,
    k: usize,
) -> ElementEnd {
    let element = m.spec.element_input(input, elements, k);
    let id = element_id(&m.node, k);
    let mut attempt = m.done.get(&k).map_or(0, |r| r.attempt);
    loop {
        attempt += 1;
        let held = match admit(m, &element).await {
            Ok(held) => held,
            Err(e) => return (k, Err(e), attempt),
        };
        let mut ctx = m.ctx.clone();
        ctx.events = m.ctx.events.as_ref().map(|e| e.without_progress());
        ctx.node_id = id.clone();
        ctx.idempotency_key = format!("{}/{id}", ctx.run_id);
        ctx.attempt = attempt;
        let execution = Execution {
            ctx,
            timeout: m.timeout,
            cache: m.cache.clone(),
            stop: m.stop.clone(),
            dispatch: m.dispatch.clone(),
        };
        let (end, cached) = run_node(&m.spec.task, element.clone(), execution).await;
        if let Some((queue, key)) = held {
            queue.release(&key);
        }
        if let Cached::Miss(Some(put)) = cached {
            m.hub.stage_cache(vec![put]);
        }
        match end {
            Err(e) if retryable(&e) && attempt <= m.retries && !m.stop.is_cancelled() => {
                let asked = match &e {
                    TaskError::Retryable { delay, .. } => *delay,
                    _ => None,
                };
                let delay = m.retry.delay(attempt, m.backoff, asked, &id);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = m.stop.cancelled() => return (k, Err(TaskError::Cancelled("the run was cancelled".into())), attempt),
                }
            }
            end => return (k, end, attempt),
        }
    }
}

fn retryable(e: &TaskError) -> bool {
    matches!(e, TaskError::Retryable { .. } | TaskError::Host(_))
}

/// Wait for a slot in the queue the element goes through (if any): the
/// queue its task type is routed through, else the per-user limit.
async fn admit(m: &MapRun, element: &Value) -> Result<Option<(Arc<Queue>, String)>, TaskError> {
    let empty = Map::new();
    let (queue, key) = match (&m.queue, &m.users) {
        (Some(q), _) => (q.clone(), q.key(element.as_object().unwrap_or(&empty))),
        (None, Some((q, owner))) => (q.clone(), owner.clone()),
        (None, None) => return Ok(None),
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
            _ = m.stop.cancelled() => return Err(TaskError::Cancelled("the run was cancelled".into())),
        }
    }
}

/// Record element `k`'s final state (its output, or its error).
fn record_element(m: &MapRun, k: usize, end: &Result<Value, TaskError>, attempts: u32) {
    let record = match end {
        Ok(output) => NodeRecord {
            node: element_id(&m.node, k),
            status: NodeStatus::Completed,
            attempt: attempts,
            output: Some(output.clone()),
            error: None,
            retry_at_ms: None,
        },
        Err(TaskError::Cancelled(_)) => return,
        Err(e) => failed_record(&m.node, k, e, attempts),
    };
    m.hub.record(vec![record], None, Vec::new());
}

fn failed_record(node: &str, k: usize, e: &TaskError, attempts: u32) -> NodeRecord {
    NodeRecord {
        node: element_id(node, k),
        status: NodeStatus::Failed,
        attempt: attempts,
        // The kind is kept where an element's output would be.
        output: Some(Value::String(e.kind())),
        error: Some(e.to_string()),
        retry_at_ms: None,
    }
}

/// A failed element as listed in `_errors`.
fn element_error(k: usize, record: &NodeRecord) -> Value {
    let kind = record
        .output
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or("failed");
    let mut v = error_value(
        record.error.as_deref().unwrap_or_default(),
        kind,
        &record.node,
        record.attempt,
        None,
    );
    v["index"] = Value::from(k);
    v
}

/// The map's progress, announced at most every 100 ms and at the end.
struct Progress<'m> {
    m: &'m MapRun,
    done: usize,
    total: usize,
    last: Option<Instant>,
}

impl<'m> Progress<'m> {
    fn new(m: &'m MapRun, done: usize, total: usize) -> Self {
        Progress {
            m,
            done,
            total,
            last: None,
        }
    }

    fn one_more(&mut self) {
        self.done += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
        {
            self.announce();
        }
    }

    fn finish(&mut self) {
        self.announce();
    }

    fn announce(&mut self) {
        self.last = Some(Instant::now());
        let fraction = if self.total == 0 {
            1.0
        } else {
            self.done as f32 / self.total as f32
        };
        self.m.hub.buffer(EventKind::Progress {
            node: self.m.node.clone(),
            fraction,
            message: Some(format!(
                "map {} / {}",
                grouped(self.done),
                grouped(self.total)
            )),
        });
    }
}

/// `12345` as `12,345`.
fn grouped(n: usize) -> String {
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
