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

mod send;
pub use send::{SignalError, SignalSent};

/// How often a run with waiting nodes looks in the store again, in case an
/// announcement was lost (a shared store's listening connection dropped).
pub const RECHECK: Duration = Duration::from_secs(30);

/// A run's watch on its signals. A subgraph's run (one use of a loop's
/// body, a map's element...) hears those of the outermost run, at its use:
/// its wait for `reply` inside use `chat[3]` takes signal `chat[3]/reply`.
pub(crate) struct SignalWatch {
    run_id: String,
    /// Where the run is in the outermost run, with a trailing `/`; empty
    /// for the outermost run.
    at: String,
    store: Option<Arc<dyn RunStore>>,
    feed: Option<Receiver<crate::store::Arrival>>,
}

impl SignalWatch {
    /// The watch of the run `hub` records, which executes `plan`: listening
    /// only when the plan has a wait and the outermost run is stored.
    pub(crate) fn new(hub: &EventHub, plan: &Plan) -> Self {
        let waits = plan
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Wait(_)));
        let (outermost, path) = hub.outermost();
        let store = outermost.store().cloned().filter(|_| waits);
        SignalWatch {
            run_id: outermost.run_id().to_string(),
            at: if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            },
            feed: store.as_ref().map(|s| s.signal_feed()),
            store,
        }
    }

    /// Whether signals can reach this run (it is stored).
    pub(crate) fn reachable(&self) -> bool {
        self.store.is_some()
    }

    /// The run's signal `name` (at this run's use), if it was sent.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Signal>, StoreError> {
        match &self.store {
            Some(store) => {
                let key = format!("{}{name}", self.at);
                store.signal_get(&self.run_id, &key).await
            }
            None => Ok(None),
        }
    }

    /// Whether `arrival` may be for a wait of this run: of its outermost
    /// run and, inside a use, named at the use (a map's 10,000 waiting
    /// elements do not each look in the store for every signal).
    fn may_take(&self, arrival: &crate::store::Arrival) -> bool {
        arrival.run_id == self.run_id
            && (arrival.name.is_empty() || arrival.name.starts_with(&self.at))
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
                    Ok(arrival) if self.may_take(&arrival) => return,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => self.feed = None,
                },
            }
        }
    }
}
