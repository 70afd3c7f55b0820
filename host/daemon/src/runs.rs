//! The runs this daemon process executes: starts them under a lease, keeps
//! the leases alive (heartbeats), claims runs no live host holds (new runs
//! submitted elsewhere, runs of a host that died), cancels them, hands out
//! their live event hubs, and on shutdown lets them finish within a grace
//! period. Everything about a run that must survive is in the host's store;
//! this only holds what a running process needs (cancel tokens, hubs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::metrics::Metrics;
use weft::cluster::leases::RunLeases;
use weft::events::{EventHub, RunStatus};
use weft::store::RunLogError;
use weft::{Host, HostError, PreparedRun};

/// The runs being executed here.
#[derive(Clone)]
pub(crate) struct Runs {
    inner: Arc<Inner>,
}

struct Inner {
    host: Arc<Host>,
    metrics: Metrics,
    leases: RunLeases,
    /// The most runs executing here at once; more wait for another host.
    max_runs: usize,
    active: Mutex<HashMap<String, Active>>,
    /// Signalled when a run leaves this host (room to claim another) or is
    /// left unleased here.
    room: tokio::sync::Notify,
    /// Runs may be waiting to be claimed: set by a sign of work (a new
    /// unleased run, a notification, the periodic check for expired leases),
    /// cleared by a claim that found fewer than it had room for. Room alone
    /// does not send a claim: most would find nothing.
    pending: AtomicBool,
    tracker: TaskTracker,
}

/// The most runs claimed in one go (one store round trip).
const CLAIM_BATCH: usize = 64;

/// How often a host looks for runs whose leases expired.
const LOOK_EVERY: Duration = Duration::from_secs(1);

struct Active {
    cancel: CancellationToken,
    hub: EventHub,
    /// Whose run it is (`None`: started from the CLI).
    owner: Option<String>,
    /// Stops the execution without recording anything (the lease was lost,
    /// or the daemon is leaving the run to the next start).
    abort: Option<tokio::task::AbortHandle>,
    /// `Some(status)` once the run ended (`None` inside: it stopped without
    /// ending, e.g. its store failed).
    done: watch::Receiver<Option<Option<RunStatus>>>,
}

impl Runs {
    pub(crate) fn new(
        host: Arc<Host>,
        metrics: Metrics,
        leases: RunLeases,
        max_runs: usize,
    ) -> Self {
        Runs {
            inner: Arc::new(Inner {
                host,
                metrics,
                leases,
                max_runs,
                active: Mutex::new(HashMap::new()),
                room: tokio::sync::Notify::new(),
                pending: AtomicBool::new(true),
                tracker: TaskTracker::new(),
            }),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.inner.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_room(&self) -> bool {
        self.len() < self.inner.max_runs
    }

    /// The lease to create a new run with, when this host has room for it
    /// (otherwise the run is left for another host to claim).
    pub(crate) fn lease_for_new(&self) -> Option<weft::store::Lease> {
        self.has_room().then(|| self.inner.leases.fresh())
    }

    /// A run was left unleased (this host had no room): claim it as soon as
    /// there is room, here or on another host.
    pub(crate) fn left_unleased(&self) {
        self.inner.pending.store(true, Ordering::SeqCst);
        self.inner.room.notify_one();
    }

    /// Lease a run that is being re-driven to this host and execute it, if
    /// this host has room; otherwise another host claims it.
    pub(crate) async fn start_existing(&self, run: PreparedRun, owner: Option<String>) {
        if !self.has_room() {
            self.inner.leases.release(&run.run_id).await;
            self.left_unleased();
        } else if self.inner.leases.take(&run.run_id).await {
            self.start(run, owner);
        }
    }

    /// Execute `run` in the background (its lease is held).
    pub(crate) fn start(&self, run: PreparedRun, owner: Option<String>) {
        let cancel = CancellationToken::new();
        let (done_tx, done) = watch::channel(None);
        let events = run.hub.subscribe();
        let run_id = run.run_id.clone();
        self.active().insert(
            run_id.clone(),
            Active {
                cancel: cancel.clone(),
                hub: run.hub.clone(),
                owner: owner.clone(),
                abort: None,
                done,
            },
        );
        self.inner.metrics.run_started();
        tokio::spawn(self.inner.metrics.clone().observe(events));
        let this = self.clone();
        let span = tracing::info_span!("run", run_id = %run.run_id, owner = owner.as_deref().unwrap_or("-"));
        let handle = self.inner.tracker.spawn(
            async move {
                let status = match this.inner.host.execute(&run, &cancel).await {
                    Ok(result) => {
                        tracing::info!(run_id = %run.run_id, status = ?result.status, "run finished");
                        Some(result.status)
                    }
                    Err(HostError::RunLog(RunLogError::LostLease { .. })) => {
                        // Not an error: the run goes on on the host that took it.
                        tracing::warn!(run_id = %run.run_id, "another host took this run over; stopped here");
                        None
                    }
                    Err(e) => {
                        tracing::error!(run_id = %run.run_id, error = %e, "run stopped; it resumes later");
                        None
                    }
                };
                this.active().remove(&run.run_id);
                this.inner.room.notify_one();
                // A run that stopped on an error keeps its lease until it
                // expires: it is retried then (here or elsewhere), not at once.
                // A finished run's lease is left as it is: no host claims or
                // renews a finished run, and it goes with the run (one write
                // fewer per run).
                if status == Some(RunStatus::Running) {
                    this.inner.leases.release(&run.run_id).await;
                }
                this.inner.metrics.run_finished(status);
                let _ = done_tx.send(Some(status));
            }
            .instrument(span),
        );
        if let Some(a) = self.active().get_mut(&run_id) {
            a.abort = Some(handle.abort_handle());
        }
    }

    /// Stop executing `run_id` here without recording anything: another host
    /// (or the next start) continues it from the store.
    fn abandon(&self, run_id: &str) {
        if let Some(a) = self.active().remove(run_id)
            && let Some(abort) = a.abort
        {
            abort.abort();
            self.inner.metrics.run_finished(None);
        }
    }

    /// The live event hub of a run executing here.
    pub(crate) fn hub(&self, run_id: &str) -> Option<EventHub> {
        self.active().get(run_id).map(|a| a.hub.clone())
    }

    /// The owner of a run executing here (`Some(None)`: started from the
    /// CLI); `None` when it is not executing here.
    pub(crate) fn owner_here(&self, run_id: &str) -> Option<Option<String>> {
        self.active().get(run_id).map(|a| a.owner.clone())
    }

    /// How many runs are executing here.
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

    /// Continue `run_id` here (its lease is held).
    async fn resume(&self, run_id: &str) {
        let prepared = self.inner.host.prepare_resume(run_id).await;
        self.start_resumed(run_id, prepared);
    }

    fn start_resumed(&self, run_id: &str, prepared: Result<PreparedRun, HostError>) {
        match prepared {
            Ok(run) => {
                tracing::info!(run_id, "resuming run");
                let owner = run.owner().map(str::to_string);
                self.start(run, owner);
            }
            Err(e) => {
                // Like a run that stopped on an error, it keeps its lease
                // until it expires: retried then, not at once and forever.
                tracing::error!(run_id, error = %e, "cannot resume run; retried when its lease expires");
            }
        }
    }

    /// At start: continue the runs this host held before it stopped (with the
    /// embedded store: every interrupted run).
    pub(crate) async fn resume_own(&self) {
        let ids = match self.inner.host.interrupted_runs().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list interrupted runs");
                return;
            }
        };
        for id in ids {
            if !self.has_room() {
                break;
            }
            if self.inner.leases.take(&id).await {
                self.resume(&id).await;
            }
        }
    }

    /// Until `stop`: claim runs no live host holds while some may be waiting
    /// and there is room, and renew this host's leases (abandoning runs
    /// whose lease was lost).
    pub(crate) async fn share(&self, stop: CancellationToken) {
        use tokio::time::Instant;
        let leases = &self.inner.leases;
        let mut next_beat = Instant::now() + leases.heartbeat();
        // Runs whose leases expired (their host died, or they stopped on an
        // error) send no sign: they are looked for on a clock that runs
        // ending here do not reset.
        let mut next_look = Instant::now() + LOOK_EVERY;
        loop {
            if Instant::now() >= next_look {
                next_look = Instant::now() + LOOK_EVERY;
                self.inner.pending.store(true, Ordering::SeqCst);
            }
            if self.inner.pending.swap(false, Ordering::SeqCst) {
                self.claim_while_room().await;
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + leases.heartbeat();
                self.renew_leases().await;
            }
            let wait = next_beat
                .min(next_look)
                .saturating_duration_since(Instant::now());
            tokio::select! {
                _ = stop.cancelled() => return,
                // A notification (or the next beat or look is due).
                _ = leases.wait_for_work(wait) => {
                    self.inner.pending.store(true, Ordering::SeqCst);
                }
                _ = self.inner.room.notified() => {}
            }
        }
    }

    /// Renew the leases of the runs executing here; stop those whose lease
    /// another host took.
    async fn renew_leases(&self) {
        let ids: Vec<String> = self.active().keys().cloned().collect();
        match self.inner.leases.renew(&ids).await {
            Ok(lost) => {
                for id in lost {
                    tracing::warn!(run_id = %id, "lease lost to another host; stopping here");
                    self.abandon(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew leases"),
        }
    }

    /// Claim runs no live host holds, a batch at a time, while this host
    /// has room, and start them (loaded in one round trip). Runs are still
    /// pending after it unless a claim found fewer than it asked for.
    async fn claim_while_room(&self) {
        loop {
            let room = self.inner.max_runs.saturating_sub(self.len());
            if room == 0 {
                self.inner.pending.store(true, Ordering::SeqCst);
                return;
            }
            let limit = room.min(CLAIM_BATCH);
            let ids = match self.inner.leases.claim(limit).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim runs");
                    self.inner.pending.store(true, Ordering::SeqCst);
                    return;
                }
            };
            let exhausted = ids.len() < limit;
            let (late, ids): (Vec<String>, Vec<String>) = {
                let active = self.active();
                ids.into_iter().partition(|id| active.contains_key(id))
            };
            // Executing here already, its lease run out while the heartbeat
            // was late: the claim renewed it; executing it a second time
            // would repeat its tasks.
            for id in late {
                tracing::warn!(run_id = %id, "lease renewed late");
            }
            let prepared = self.inner.host.prepare_resumes(&ids).await;
            for (id, prepared) in ids.iter().zip(prepared) {
                tracing::info!(run_id = %id, "claimed run");
                self.start_resumed(id, prepared);
            }
            if exhausted {
                return;
            }
        }
    }

    /// Stop taking runs and wait up to `grace` for the running ones to end.
    /// Those still running are abandoned (their leases released, so another
    /// host or the next start continues them); returns how many.
    pub(crate) async fn drain(&self, grace: Duration) -> usize {
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let left: Vec<String> = self.active().keys().cloned().collect();
        for id in &left {
            self.abandon(id);
            self.inner.leases.release(id).await;
        }
        left.len()
    }
}
