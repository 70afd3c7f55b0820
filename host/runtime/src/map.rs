//! Map nodes: a task type run once per element of array inputs.
//!
//! Owns one map node's execution: which elements run (those not finished
//! in an earlier attempt), how many at once, in which batches, and how their
//! results and failures make the map's output. Each element is an instance
//! ([`crate::instance`]): durable, cached and retried on its own. Progress
//! is announced at most every 100 ms, not per element, so the event log
//! stays small.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value};

use crate::graph::{MapSpec, OnError};

use crate::instance::Instances;
use crate::task::TaskError;

/// How one map node runs.
pub(crate) struct MapRun {
    pub spec: Arc<MapSpec>,
    /// The map node's input (shared with the runner).
    pub input: Arc<Value>,
    /// Elements running at once.
    pub concurrency: usize,
    pub instances: Instances,
}

/// Run the map: every element not already finished, batch after batch; the
/// output collects their results in element order.
pub(crate) async fn run_map(m: MapRun) -> Result<Value, TaskError> {
    let empty = Map::new();
    let input = m.input.as_object().unwrap_or(&empty);
    let elements = m.spec.elements(input).map_err(TaskError::InvalidInput)?;
    let n = elements.count;
    let inst = &m.instances;
    let mut results = m.spec.collector(n);
    let mut failures: Vec<(usize, Value)> = Vec::new();
    for k in 0..n {
        if let Some(output) = inst.finished(k) {
            results.put(k, output);
        }
    }
    let already = (0..n).filter(|k| results.has(*k)).count();
    let mut progress = Progress::new(inst, already, n);
    let fail_fast = m.spec.on_error == OnError::Fail;
    let failing = AtomicBool::new(false);
    let batch = m.spec.batch_size.unwrap_or(n).max(1);
    let (spec, elements) = (&m.spec, &elements);
    for start in (0..n).step_by(batch) {
        let todo: Vec<usize> = (start..(start + batch).min(n))
            .filter(|k| !results.has(*k))
            .collect();
        let mut ends = futures::stream::iter(todo)
            .take_while(|_| {
                std::future::ready(!failing.load(Ordering::Relaxed) && !inst.stop.is_cancelled())
            })
            .map(|k| async move {
                let one = spec.element_input(input, elements, k);
                (k, inst.run(&spec.task, k, one).await)
            })
            .buffer_unordered(m.concurrency.max(1));
        while let Some((k, end)) = ends.next().await {
            match end {
                (Ok(output), _) => results.put(k, output),
                (Err(TaskError::Cancelled(why)), _) => return Err(TaskError::Cancelled(why)),
                end => {
                    failing.store(fail_fast, Ordering::Relaxed);
                    failures.push((k, inst.error(k, &end)));
                }
            }
            progress.one_more();
        }
    }
    progress.finish();
    if inst.stop.is_cancelled() {
        return Err(TaskError::Cancelled("the run was cancelled".into()));
    }
    failures.sort_by_key(|(k, _)| *k);
    let failures: Vec<Value> = failures.into_iter().map(|(_, e)| e).collect();
    if fail_fast && let Some(first) = failures.first() {
        let message = first["message"].as_str().unwrap_or_default();
        let count = failures.len();
        return Err(TaskError::Failed(format!(
            "{count} element{} failed; the first, {}: {message}",
            if count == 1 { "" } else { "s" },
            first["node"].as_str().unwrap_or_default()
        )));
    }
    Ok(results.finish(failures))
}

/// The map's progress, announced at most every 100 ms and at the end.
struct Progress<'m> {
    instances: &'m Instances,
    done: usize,
    total: usize,
    last: Option<Instant>,
}

impl<'m> Progress<'m> {
    fn new(instances: &'m Instances, done: usize, total: usize) -> Self {
        Progress {
            instances,
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
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.last = Some(Instant::now());
        self.instances.progress("map", self.done, self.total);
    }
}
