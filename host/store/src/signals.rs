//! Signals as stored: the body sent to a run under a name, which the run's
//! `wait` nodes of that name give as their output. The first signal of a
//! name stays; a signal goes with its run. The store keeps them and says
//! when one arrives; which node takes it, and when, is the runner's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{RunLogError, StoreError};

/// A signal sent to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// What was sent (checked against the wait node's schema before it is
    /// stored).
    pub body: Value,
    /// When, ms since the Unix epoch.
    pub sent_ms: u64,
    /// Who sent it (a daemon user), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

/// Signals, by run and name, and news of their arrival.
#[async_trait::async_trait]
pub trait Signals: Send + Sync {
    /// Record signal `name` of run `run_id`, unless the run has one of that
    /// name already (false then: the first stays). Atomic across every
    /// process sharing the store; `UnknownRun` when there is no such run.
    async fn signal_put(
        &self,
        run_id: &str,
        name: &str,
        signal: &Signal,
    ) -> Result<bool, RunLogError>;

    /// Run `run_id`'s signal `name`, if one was sent.
    async fn signal_get(&self, run_id: &str, name: &str) -> Result<Option<Signal>, StoreError>;

    /// Each signal as it is recorded, by any process sharing the store.
    /// Best effort: a receiver that lags, or a lost connection to a shared
    /// store, misses some (look in the store again now and then).
    fn signal_feed(&self) -> tokio::sync::broadcast::Receiver<Arrival>;
}

/// News of a signal recorded: its run and name (a name may be empty when a
/// shared store's announcement could not be read: then any wait of the run
/// looks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The run.
    pub run_id: String,
    /// The signal's name.
    pub name: String,
}

impl Arrival {
    /// News of signal `name` of run `run_id`.
    pub fn new(run_id: &str, name: &str) -> Self {
        Arrival {
            run_id: run_id.to_string(),
            name: name.to_string(),
        }
    }
}

/// How many signal arrivals a feed holds for a receiver that is behind.
pub(crate) const FEED_CAPACITY: usize = 1024;

/// A new feed of signal arrivals.
pub(crate) fn feed() -> tokio::sync::broadcast::Sender<Arrival> {
    tokio::sync::broadcast::channel(FEED_CAPACITY).0
}
