//! Subgraphs run as one task: the body of a map, reduce, while or fallback
//! node that holds a `graph` ([`weft_core::graph::subgraph`]).
//!
//! Owns one use of a subgraph: a nested run of its plan on this host, with
//! the outer run's owner, grants, queues and output cache, whose leaves'
//! outputs make the output. The use is what is durable (an element, step,
//! iteration or alternative, by [`crate::instance`]); the nodes inside it
//! are not stored, so a use interrupted by a crash runs again whole, its
//! cacheable nodes served from the output cache. Inner log lines join the
//! outer node's log, prefixed with the inner node's id. It must not know
//! which kind uses it.
//!
//! A wait inside a use is the exception: the outermost run records it under
//! the use's path (`chat[3]/ask`, [`crate::runner`]) and it takes the
//! outermost run's signal at that path (`chat[3]/reply`,
//! [`crate::signals`]), so a loop can wait for a person at every step; a
//! use run again finds the signal already sent, or waits on until the same
//! deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::events::{EventHub, EventKind, NodeStatus, RunStatus};
use crate::graph::subgraph::Subgraph;
use crate::runner::Runner;
use crate::store::NodeRecord;
use crate::task::{TaskContext, TaskError};

/// How long a use cancelled for its time limit is given to end.
const GRACE: Duration = Duration::from_secs(5);

/// What a subgraph's uses run with: a runner that executes every task on
/// this host (a use is not resumed elsewhere: its offers would outlive it),
/// the run's owner, and the hub of the run (which writes the uses' output
/// cache entries).
pub(crate) struct Subgraphs {
    pub runner: Runner,
    pub owner: Option<String>,
    pub parent: EventHub,
    /// The outer run's budget, which the subgraph's nodes spend too.
    pub budget: Option<std::sync::Arc<crate::budget::Budget>>,
    /// The stored states of the waits inside uses that were waiting, by
    /// their paths in the run these uses are part of ([`nested_waits`]).
    pub waits: NestedWaits,
}

/// Waiting waits inside uses by their ids in the run, in order: a use
/// finds its own by a range of them (a map of 100,000 waiting elements
/// resumed: each element finds its wait without reading the others').
pub(crate) type NestedWaits = Arc<std::collections::BTreeMap<String, NodeRecord>>;

/// The records among `prior` (a run's stored node states) of waits inside
/// subgraph uses (`chat[3]/ask`, `m[0]/inner[2]/ask`, `c/ask` in a
/// compound node run whole) that were waiting. (A compound node replaced
/// by its nodes has ids with `/` too: no use takes those.)
pub(crate) fn nested_waits(prior: &[NodeRecord]) -> NestedWaits {
    let waiting = prior
        .iter()
        .filter(|r| r.status == NodeStatus::Waiting && r.node.contains('/'));
    Arc::new(waiting.map(|r| (r.node.clone(), r.clone())).collect())
}

impl Subgraphs {
    /// Run `sub` on `input` as one task, within `timeout` and until `stop`
    /// fires; `ctx` is the use's own context.
    pub fn run<'a>(
        &'a self,
        sub: &'a Subgraph,
        input: Value,
        ctx: &'a TaskContext,
        timeout: Duration,
        stop: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send + 'a>> {
        // Boxed: a subgraph's nodes may hold subgraphs themselves.
        Box::pin(self.run_boxed(sub, input, ctx, timeout, stop))
    }

    async fn run_boxed(
        &self,
        sub: &Subgraph,
        input: Value,
        ctx: &TaskContext,
        timeout: Duration,
        stop: &CancellationToken,
    ) -> Result<Value, TaskError> {
        let plan = &sub.plan;
        plan.check_input(&input)
            .map_err(|e| TaskError::InvalidInput(e.to_string()))?;
        let run_id = format!("{}/{}", ctx.run_id, ctx.node_id);
        let hub = EventHub::nested(&run_id, &self.parent);
        let mut events = hub.subscribe();
        let cancel = stop.child_token();
        let owner = self.owner.as_deref();
        let budget = self.budget.clone();
        let prefix = format!("{}/", ctx.node_id);
        let prior: Vec<NodeRecord> = self
            .waits
            .range(prefix.clone()..)
            .map_while(|(id, r)| {
                let node = id.strip_prefix(&prefix)?.to_string();
                Some(NodeRecord { node, ..r.clone() })
            })
            .collect();
        let run = self
            .runner
            .run(plan, &input, &prior, &hub, &cancel, owner, budget);
        // Out of time, the use is cancelled and let end (within a grace),
        // so that what it recorded in the outermost run (a step's wait)
        // ends too, not left waiting.
        tokio::pin!(run);
        let ended = tokio::select! {
            ended = &mut run => Ok(ended),
            _ = tokio::time::sleep(timeout) => {
                cancel.cancel();
                let _ = tokio::time::timeout(GRACE, &mut run).await;
                Err(())
            }
        };
        cancel.cancel();
        while let Ok(event) = events.try_recv() {
            if let (
                EventKind::Log {
                    node,
                    level,
                    message,
                },
                Some(log),
            ) = (event.kind, &ctx.events)
            {
                log.log(level, format!("{node}: {message}"));
            }
        }
        let result = match ended {
            Err(_) => return Err(TaskError::Timeout { limit: timeout }),
            Ok(Err(e)) => return Err(TaskError::Host(format!("the subgraph's run: {e}"))),
            Ok(Ok(result)) => result,
        };
        match result.status {
            RunStatus::Succeeded => {
                let mut outputs = result.outputs;
                let leaves = (0..plan.nodes.len())
                    .filter(|&i| plan.is_leaf(i))
                    .filter_map(|i| {
                        let node = &plan.nodes[i];
                        let output = outputs.remove(&node.id)?;
                        Some((node.id.as_str(), node.task.id.as_str(), output))
                    })
                    .collect();
                Ok(sub.output(leaves))
            }
            RunStatus::Cancelled => Err(TaskError::Cancelled("the run was cancelled".into())),
            _ => Err(match result.failures.first() {
                Some(f) => TaskError::Failed(format!("node `{}`: {}", f.node, f.error)),
                None => TaskError::Failed("the subgraph did not complete".into()),
            }),
        }
    }
}
