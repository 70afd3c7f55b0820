//! The runs this daemon process is executing: starts them, cancels them,
//! hands out their live event hubs, and on shutdown lets them finish within a
//! grace period. Everything about a run that must survive is in the host's
//! store; this only holds what a running process needs (cancel tokens, hubs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::metrics::Metrics;
use crate::events::{EventHub, RunStatus};
use crate::{Host, PreparedRun};

/// The runs being executed here.
#[derive(Clone)]
pub(crate) struct Runs {
    inner: Arc<Inner>,
}

struct Inner {
    host: Arc<Host>,
    metrics: Metrics,
    active: Mutex<HashMap<String, Active>>,
    tracker: TaskTracker,
}

struct Active {
    owner: Option<String>,
    cancel: CancellationToken,
    hub: EventHub,
    /// `Some(status)` once the run ended (`None` inside: it stopped without
    /// ending, e.g. its store failed).
    done: watch::Receiver<Option<Option<RunStatus>>>,
}

impl Runs {
    pub(crate) fn new(host: Arc<Host>, metrics: Metrics) -> Self {
        Runs {
            inner: Arc::new(Inner {
                host,
                metrics,
                active: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
            }),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.inner.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Execute `run` in the background.
    pub(crate) fn start(&self, run: PreparedRun, owner: Option<String>) {
        let cancel = CancellationToken::new();
        let (done_tx, done) = watch::channel(None);
        let events = run.hub.subscribe();
        self.active().insert(
            run.run_id.clone(),
            Active {
                owner: owner.clone(),
                cancel: cancel.clone(),
                hub: run.hub.clone(),
                done,
            },
        );
        self.inner.metrics.run_started();
        tokio::spawn(self.inner.metrics.clone().observe(events));
        let this = self.clone();
        let span = tracing::info_span!("run", run_id = %run.run_id, owner = owner.as_deref().unwrap_or("-"));
        self.inner.tracker.spawn(
            async move {
            let status = match this.inner.host.execute(&run, &cancel).await {
                Ok(result) => {
                    tracing::info!(run_id = %run.run_id, status = ?result.status, "run finished");
                    Some(result.status)
                }
                Err(e) => {
                    tracing::error!(run_id = %run.run_id, error = %e, "run stopped; it resumes at the next start");
                    None
                }
            };
            this.active().remove(&run.run_id);
            this.inner.metrics.run_finished(status);
            let _ = done_tx.send(Some(status));
        }
            .instrument(span),
        );
    }

    /// The live event hub of a run executing here.
    pub(crate) fn hub(&self, run_id: &str) -> Option<EventHub> {
        self.active().get(run_id).map(|a| a.hub.clone())
    }

    /// How many runs of `owner` are executing.
    pub(crate) fn running_for(&self, owner: &str) -> usize {
        self.active()
            .values()
            .filter(|a| a.owner.as_deref() == Some(owner))
            .count()
    }

    /// How many runs are executing.
    pub(crate) fn len(&self) -> usize {
        self.active().len()
    }

    /// Cancel a run executing here and wait (up to `wait`) for it to end.
    /// False if it is not executing here.
    pub(crate) async fn cancel(&self, run_id: &str, wait: Duration) -> bool {
        let Some((cancel, mut done)) = self
            .active()
            .get(run_id)
            .map(|a| (a.cancel.clone(), a.done.clone()))
        else {
            return false;
        };
        cancel.cancel();
        let _ = tokio::time::timeout(wait, done.wait_for(|d| d.is_some())).await;
        true
    }

    /// Resume every run the store holds as interrupted.
    pub(crate) async fn resume_interrupted(&self) {
        let ids = match self.inner.host.interrupted_runs().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list interrupted runs");
                return;
            }
        };
        for id in ids {
            let owner = match self.inner.host.store().load_run(&id).await {
                Ok(stored) => stored.run.owner,
                Err(e) => {
                    tracing::error!(run_id = %id, error = %e, "cannot load interrupted run");
                    continue;
                }
            };
            match self.inner.host.prepare_resume(&id).await {
                Ok(run) => {
                    tracing::info!(run_id = %id, "resuming interrupted run");
                    self.start(run, owner);
                }
                Err(e) => tracing::error!(run_id = %id, error = %e, "cannot resume run"),
            }
        }
    }

    /// Stop taking runs and wait up to `grace` for the running ones to end.
    /// Returns how many were still running (they resume at the next start).
    pub(crate) async fn drain(&self, grace: Duration) -> usize {
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            return self.len();
        }
        0
    }
}
