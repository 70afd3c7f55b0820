//! How a running run hears of the signals sent to it, for its `wait` nodes:
//! one look in the store when a wait starts, then a wake-up each time the
//! store announces a signal for this run (a missed announcement is made up
//! by looking again every [`RECHECK`]). Owns nothing durable: the signals
//! are the store's; which node takes one, and what it gives, the runner's.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::events::EventHub;
use crate::graph::{NodeKind, Plan};
use crate::store::prelude::*;
use crate::store::{Signal, StoreError};

/// How often a run with waiting nodes looks in the store again, in case an
/// announcement was lost (a shared store's listening connection dropped).
pub const RECHECK: Duration = Duration::from_secs(30);

/// A run's watch on its signals.
pub(crate) struct SignalWatch {
    run_id: String,
    store: Option<Arc<dyn RunStore>>,
    feed: Option<Receiver<String>>,
}

impl SignalWatch {
    /// The watch of the run `hub` records, which executes `plan`: listening
    /// only when the plan has a wait and the run is stored.
    pub(crate) fn new(hub: &EventHub, plan: &Plan) -> Self {
        let waits = plan
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Wait(_)));
        let store = hub.store().cloned().filter(|_| waits);
        SignalWatch {
            run_id: hub.run_id().to_string(),
            feed: store.as_ref().map(|s| s.signal_feed()),
            store,
        }
    }

    /// Whether signals can reach this run (it is stored).
    pub(crate) fn reachable(&self) -> bool {
        self.store.is_some()
    }

    /// The run's signal `name`, if it was sent.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Signal>, StoreError> {
        match &self.store {
            Some(store) => store.signal_get(&self.run_id, name).await,
            None => Ok(None),
        }
    }

    /// Resolves when a signal may have come for this run: one was announced
    /// for it, announcements were missed, or [`RECHECK`] passed.
    pub(crate) async fn arrival(&mut self) {
        let recheck = tokio::time::sleep(RECHECK);
        tokio::pin!(recheck);
        loop {
            let Some(feed) = self.feed.as_mut() else {
                return recheck.await;
            };
            tokio::select! {
                _ = &mut recheck => return,
                got = feed.recv() => match got {
                    Ok(run_id) if run_id == self.run_id => return,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => self.feed = None,
                },
            }
        }
    }
}

/// Why a signal was not taken ([`crate::Host::signal`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The name is not a signal name.
    #[error("signal name \"{0}\" must be 1–128 of [A-Za-z0-9._-]")]
    BadName(String),
    /// The run ended: nothing waits any more.
    #[error("run `{run_id}` already ended ({status}); it takes no signal")]
    RunEnded {
        /// The run.
        run_id: String,
        /// How it ended.
        status: &'static str,
    },
    /// No wait node of the run waits for this signal.
    #[error("run `{run_id}` has no wait node for signal \"{name}\" (it waits for: {known})")]
    NoWait {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
        /// The signals its wait nodes wait for, comma-separated.
        known: String,
    },
    /// Every wait node for this signal has ended (timed out, cancelled…).
    #[error("the wait nodes of run `{run_id}` for signal \"{name}\" have ended ({nodes})")]
    WaitEnded {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
        /// Each node and how it ended.
        nodes: String,
    },
    /// The body does not match the wait node's schema.
    #[error("signal \"{name}\" for node `{node}`: {problems}")]
    Body {
        /// The signal.
        name: String,
        /// The wait node whose schema refused it.
        node: String,
        /// What is wrong, located.
        problems: String,
    },
    /// A signal of this name was sent to the run already (the first stays).
    #[error("run `{run_id}` was already sent signal \"{name}\"; the first one stays")]
    AlreadySent {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
    },
    /// The run or its plan could not be read.
    #[error(transparent)]
    Host(#[from] crate::HostError),
}

impl From<crate::store::RunLogError> for SignalError {
    fn from(e: crate::store::RunLogError) -> Self {
        SignalError::Host(e.into())
    }
}

/// A signal taken: the wait nodes that will get it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignalSent {
    /// The run.
    pub run_id: String,
    /// The signal.
    pub name: String,
    /// The wait nodes for it that had not ended.
    pub nodes: Vec<String>,
}

impl crate::Host {
    /// Send signal `name` with `body` to running run `run_id` (from
    /// `sender`): checked against the schema of every wait node for it that
    /// has not ended, then stored, once; the run's waits take it at once
    /// (or when they are reached). The caller checks that `sender` may see
    /// the run.
    pub async fn signal(
        &self,
        run_id: &str,
        name: &str,
        body: serde_json::Value,
        sender: Option<&str>,
    ) -> Result<SignalSent, SignalError> {
        if !crate::graph::valid_signal_name(name) {
            return Err(SignalError::BadName(name.to_string()));
        }
        let stored = self.store().load_run(run_id).await?;
        if stored.run.status != crate::events::RunStatus::Running {
            return Err(SignalError::RunEnded {
                run_id: run_id.to_string(),
                status: stored.run.status.as_str(),
            });
        }
        // The plan over today's plugins, else over those the run is pinned
        // to (a wait's settings are the graph's, not a plugin's).
        let plan = match self.plan(&stored.spec.graph, &stored.spec.origin) {
            Ok(plan) => plan,
            Err(_) => self.resume_plan(run_id, &stored.spec).await?,
        };
        let open = open_waits(&plan, &stored.nodes, run_id, name)?;
        if body.get(crate::graph::TIMEOUT_PORT).is_some() {
            return Err(SignalError::Body {
                name: name.to_string(),
                node: open[0].to_string(),
                problems: format!(
                    "`{}` is reserved for the wait's timeout",
                    crate::graph::TIMEOUT_PORT
                ),
            });
        }
        for id in &open {
            let node = plan.nodes.iter().find(|n| n.id == *id);
            if let Some(Err(violations)) = node.map(|n| n.task.output.check(&body)) {
                let problems: Vec<String> = violations.iter().map(ToString::to_string).collect();
                return Err(SignalError::Body {
                    name: name.to_string(),
                    node: id.to_string(),
                    problems: problems.join("; "),
                });
            }
        }
        let signal = Signal {
            body,
            sent_ms: weft_core::clock::now_ms(),
            sender: sender.map(str::to_string),
        };
        if !self.store().signal_put(run_id, name, &signal).await? {
            return Err(SignalError::AlreadySent {
                run_id: run_id.to_string(),
                name: name.to_string(),
            });
        }
        tracing::info!(run_id, signal = name, sender, "signal sent");
        Ok(SignalSent {
            run_id: run_id.to_string(),
            name: name.to_string(),
            nodes: open.into_iter().map(str::to_string).collect(),
        })
    }
}

/// The wait nodes of `plan` for signal `name` that have not ended (by
/// their stored states), or why there are none.
fn open_waits<'p>(
    plan: &'p Plan,
    stored: &[crate::store::NodeRecord],
    run_id: &str,
    name: &str,
) -> Result<Vec<&'p str>, SignalError> {
    let waits: Vec<(&str, &str)> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Wait(spec) => Some((n.id.as_str(), spec.signal.as_str())),
            _ => None,
        })
        .collect();
    let named: Vec<&str> = waits
        .iter()
        .filter(|(_, s)| *s == name)
        .map(|(id, _)| *id)
        .collect();
    if named.is_empty() {
        let mut known: Vec<&str> = waits.iter().map(|(_, s)| *s).collect();
        known.sort_unstable();
        known.dedup();
        return Err(SignalError::NoWait {
            run_id: run_id.to_string(),
            name: name.to_string(),
            known: if known.is_empty() {
                "nothing".into()
            } else {
                known.join(", ")
            },
        });
    }
    let ended = |id: &str| {
        stored
            .iter()
            .find(|r| r.node == id && r.status.is_final())
            .map(|r| r.status.as_str())
    };
    let open: Vec<&str> = named
        .iter()
        .copied()
        .filter(|id| ended(id).is_none())
        .collect();
    if open.is_empty() {
        let nodes: Vec<String> = named
            .iter()
            .map(|id| format!("{id}: {}", ended(id).unwrap_or_default()))
            .collect();
        return Err(SignalError::WaitEnded {
            run_id: run_id.to_string(),
            name: name.to_string(),
            nodes: nodes.join(", "),
        });
    }
    Ok(open)
}
