//! Dispatch: single tasks shared between hosts on one shared store.
//!
//! Owns where a task of a run executes when several hosts share a store
//! (PostgreSQL): on this host while it has a free *task slot*, else offered
//! through the store ([`RunStore::task_offer`]) to every host sharing it, this
//! one included. It also owns the other side: claiming offers while this host
//! has free slots, executing them under a heartbeat, and recording their
//! results (with the task's log and progress events) for the run's host, and
//! the heartbeat that keeps this host's claims and concurrency slots. The
//! run's host stays the only writer of the run's state and event log. This
//! must not schedule runs (that is the runner) nor know how a task is
//! implemented (that is [`crate::task`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_ms;
use crate::events::{EventKind, LogLevel, NodeEvents};
use crate::store::{RunStore, TaskOffer};
use crate::task::{Registry, TaskContext, TaskError, TaskType};
use weft_core::grant::UserGrants;

/// How long the results of offered tasks are waited for between looks, when
/// no notification comes (a notification may race with a look).
const RESULT_POLL: Duration = Duration::from_millis(100);
/// How long an idle host waits for offers between looks, likewise.
const OFFER_POLL: Duration = Duration::from_millis(500);

/// What a host that executed an offered task records for the run's host.
#[derive(Serialize, Deserialize)]
struct Done {
    /// Which host executed it.
    host: String,
    /// The task's output or error.
    result: Result<Value, TaskError>,
    /// The task's log and progress events, in order.
    events: Vec<EventKind>,
}

/// See [`Dispatch::run_offers`].
pub(crate) struct RunOffers {
    dispatch: Arc<Dispatch>,
    run_id: String,
}

impl Drop for RunOffers {
    fn drop(&mut self) {
        lock(&self.dispatch.offering).remove(&self.run_id);
    }
}

/// Runs a closure when dropped.
struct Forget<F: FnMut()>(F);

impl<F: FnMut()> Drop for Forget<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Shares tasks with the other hosts on a shared store.
pub struct Dispatch {
    store: Arc<dyn RunStore>,
    /// Whose grants an offered task runs with (its run's owner's).
    grants: UserGrants,
    host_id: String,
    slots: Arc<Semaphore>,
    lease: Duration,
    /// Offers made here, by key: their run, and where their result goes.
    waiting: Mutex<HashMap<String, (String, oneshot::Sender<Value>)>>,
    /// Runs that made offers from here (their offers are withdrawn at the end).
    offering: Mutex<HashSet<String>>,
    /// Offers claimed by this host and executing, with their stop tokens.
    claimed: Mutex<HashMap<String, CancellationToken>>,
    /// Tokens of the concurrency slots this host holds (renewed by the heartbeat).
    slots_held: crate::limiter::HeldSlots,
    background: std::sync::Once,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("host_id", &self.host_id)
            .field("free_slots", &self.slots.available_permits())
            .field("lease", &self.lease)
            .finish()
    }
}

impl Dispatch {
    /// Dispatch for host `host_id`: at most `slots` tasks execute here at
    /// once (tasks of this host's runs and tasks claimed from others);
    /// claims last `lease` without a heartbeat.
    pub fn new(
        store: Arc<dyn RunStore>,
        host_id: &str,
        slots: usize,
        lease: Duration,
        grants: UserGrants,
    ) -> Arc<Self> {
        Arc::new(Dispatch {
            store,
            grants,
            host_id: host_id.to_string(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            lease,
            waiting: Mutex::new(HashMap::new()),
            offering: Mutex::new(HashSet::new()),
            claimed: Mutex::new(HashMap::new()),
            slots_held: Default::default(),
            background: std::sync::Once::new(),
        })
    }

    /// Start (once) the loops that live as long as this dispatch: fetching
    /// the results of offers made here, and the heartbeat.
    fn start_background(self: &Arc<Self>) {
        self.background.call_once(|| {
            tokio::spawn(collect(Arc::downgrade(self)));
            tokio::spawn(heartbeat(Arc::downgrade(self)));
        });
    }

    /// Who holds this host's concurrency slots: a shared limiter records
    /// each slot it takes there, and this dispatch's heartbeat renews them.
    pub(crate) fn slot_holder(self: &Arc<Self>) -> crate::limiter::SlotHolder {
        self.start_background();
        crate::limiter::SlotHolder::new(&self.host_id, self.lease, self.slots_held.clone())
    }

    /// The store offers go through.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// This host's id.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// How long a claim (or a concurrency slot) lasts without a heartbeat.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Execute `task` for a run of this host: here if a slot is free, else
    /// on whichever host claims the offer first, or here after all if a slot
    /// frees before any host claims it. The task's events reach `ctx.events`
    /// either way (from another host, when its result comes).
    pub(crate) async fn execute(
        self: &Arc<Self>,
        task: &TaskType,
        input: &Value,
        ctx: &TaskContext,
        timeout: Duration,
        stop: &CancellationToken,
    ) -> Result<Value, TaskError> {
        let local = |slot: OwnedSemaphorePermit| async move {
            let result = tokio::select! {
                r = task.execute(input, ctx, timeout) => r,
                _ = stop.cancelled() => Err(TaskError::Cancelled("the run was cancelled".into())),
            };
            drop(slot);
            result
        };
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return local(slot).await;
        }
        self.start_background();
        // Unique per offer: a resumed run may repeat an attempt number.
        let key = format!(
            "{}/{}#{}.{}",
            ctx.run_id,
            ctx.node_id,
            ctx.attempt,
            crate::new_run_id()
        );
        let (tx, mut rx) = oneshot::channel();
        lock(&self.offering).insert(ctx.run_id.clone());
        lock(&self.waiting).insert(key.clone(), (ctx.run_id.clone(), tx));
        // However this call ends (a result, an error, or dropped with its
        // run), nothing waits for the offer's result any more.
        let _waiting = Forget(|| {
            lock(&self.waiting).remove(&key);
        });
        let offer = TaskOffer {
            key: key.clone(),
            run_id: ctx.run_id.clone(),
            node: ctx.node_id.clone(),
            attempt: ctx.attempt,
            task_type: format!("{}@{}", task.id, task.version),
            input: input.clone(),
            timeout_ms: timeout.as_millis() as u64,
            offered_ms: now_ms(),
            owner: ctx.grants.user.clone(),
        };
        if let Err(e) = self.store.task_offer(offer).await {
            return Err(TaskError::Host(format!(
                "cannot offer the task to other hosts: {e}"
            )));
        }
        tracing::debug!(%key, "task offered to other hosts");
        // Until some host claims it, a slot freeing here takes it back.
        let mut may_take_back = true;
        loop {
            tokio::select! {
                done = &mut rx => {
                    let done = done.map_err(|_| TaskError::Host("the task's result was lost".into()))?;
                    let done: Done = serde_json::from_value(done).map_err(|e| {
                        TaskError::Host(format!("unreadable result from another host: {e}"))
                    })?;
                    if let Some(events) = &ctx.events {
                        events.forward(done.events);
                        events.log(LogLevel::Info, format!("executed on host {}", done.host));
                    }
                    return done.result;
                }
                slot = self.slots.clone().acquire_owned(), if may_take_back => {
                    let Ok(slot) = slot else { continue };
                    match self.store.task_take_back(&key).await {
                        Ok(true) => return local(slot).await,
                        // Claimed meanwhile: its result will come.
                        Ok(false) => may_take_back = false,
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "cannot take an offered task back");
                            may_take_back = false;
                        }
                    }
                }
                _ = stop.cancelled() => {
                    if let Err(e) = self.store.task_withdraw(&ctx.run_id, Some(std::slice::from_ref(&key))).await {
                        tracing::warn!(error = %e, "cannot withdraw a cancelled task's offer");
                    }
                    return Err(TaskError::Cancelled("the run was cancelled".into()));
                }
            }
        }
    }

    /// A guard that forgets, when dropped, that run `run_id` made offers
    /// from here, however the run ends: at a normal end its offers are
    /// withdrawn first ([`Dispatch::withdraw_run`]); after a store error or
    /// a run dropped mid-way (its lease lost) they expire in the store.
    pub(crate) fn run_offers(self: &Arc<Self>, run_id: &str) -> RunOffers {
        RunOffers {
            dispatch: self.clone(),
            run_id: run_id.to_string(),
        }
    }

    /// Withdraw every offer of run `run_id`: at its end (if it offered any
    /// from here), or when it resumes here (`resumed`: an earlier host of the
    /// run may have made some). A failure only leaves offers to expire.
    pub(crate) async fn withdraw_run(&self, run_id: &str, resumed: bool) {
        let offered = lock(&self.offering).remove(run_id);
        if (offered || resumed)
            && let Err(e) = self.store.task_withdraw(run_id, None).await
        {
            tracing::warn!(run_id, error = %e, "cannot withdraw task offers");
        }
    }

    /// Until `stop`: claim offers of task types this host has (from
    /// `registry`, read again at each claim) while a slot is free, execute
    /// them, and record their results. Then wait up to `grace` for those
    /// executing; the rest are stopped, and their claims expire to be claimed
    /// again elsewhere.
    pub async fn serve(
        self: Arc<Self>,
        registry: impl Fn() -> Arc<Registry> + Send,
        stop: CancellationToken,
        grace: Duration,
    ) {
        self.start_background();
        let tracker = TaskTracker::new();
        // The task versions this host has, listed again only when the
        // registry is swapped (a plugins reload).
        let mut known: Option<(Arc<Registry>, Vec<String>)> = None;
        loop {
            let slot = tokio::select! {
                slot = self.slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                _ = stop.cancelled() => break,
            };
            let current = registry();
            if !known
                .as_ref()
                .is_some_and(|(r, _)| Arc::ptr_eq(r, &current))
            {
                let types = current
                    .task_types()
                    .map(|t| format!("{}@{}", t.id, t.version))
                    .collect();
                known = Some((current, types));
            }
            let Some((registry, types)) = &known else {
                continue;
            };
            let now = now_ms();
            let until = now + self.lease.as_millis() as u64;
            match self
                .store
                .task_claim(&self.host_id, types, now, until)
                .await
            {
                Ok(Some(offer)) => {
                    tracing::debug!(key = %offer.key, "claimed an offered task");
                    let task = registry
                        .get(offer.task_type.split('@').next().unwrap_or_default())
                        .filter(|t| format!("{}@{}", t.id, t.version) == offer.task_type)
                        .cloned();
                    let token = CancellationToken::new();
                    lock(&self.claimed).insert(offer.key.clone(), token.clone());
                    tracker.spawn(self.clone().run_offer(offer, task, token, slot));
                }
                Ok(None) => {
                    drop(slot);
                    tokio::select! {
                        _ = self.store.wait_for_tasks(OFFER_POLL) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                Err(e) => {
                    drop(slot);
                    tracing::warn!(error = %e, "cannot claim offered tasks");
                    tokio::time::sleep(OFFER_POLL).await;
                }
            }
        }
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            for token in lock(&self.claimed).values() {
                token.cancel();
            }
        }
    }

    /// Execute one claimed offer and record its result.
    async fn run_offer(
        self: Arc<Self>,
        offer: TaskOffer,
        task: Option<Arc<TaskType>>,
        token: CancellationToken,
        slot: OwnedSemaphorePermit,
    ) {
        let events = NodeEvents::kept(&offer.node);
        let mut ctx = TaskContext::new(&offer.run_id, &offer.node);
        ctx.attempt = offer.attempt;
        ctx.events = Some(events.clone());
        ctx.grants = self.grants.of(offer.owner.as_deref());
        let span = tracing::info_span!("task", run_id = %offer.run_id, node = %offer.node, task_type = %offer.task_type, attempt = offer.attempt, offered = true);
        let result = match &task {
            None => Err(TaskError::Host(format!(
                "host {} no longer has task type {}",
                self.host_id, offer.task_type
            ))),
            Some(task) => {
                let timeout = Duration::from_millis(offer.timeout_ms);
                tokio::select! {
                    r = tracing::Instrument::instrument(task.execute(&offer.input, &ctx, timeout), span) => r,
                    _ = token.cancelled() => Err(TaskError::Cancelled("withdrawn".into())),
                }
            }
        };
        drop(slot);
        lock(&self.claimed).remove(&offer.key);
        if token.is_cancelled() {
            return;
        }
        let done = Done {
            host: self.host_id.clone(),
            result,
            events: events.take(),
        };
        let done = match serde_json::to_value(&done) {
            Ok(v) => v,
            Err(e) => serde_json::json!({
                "host": self.host_id,
                "result": {"Err": {"host": format!("cannot encode the result: {e}")}},
                "events": [],
            }),
        };
        match self
            .store
            .task_finish(&offer.key, &self.host_id, done)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::info!(key = %offer.key, "offered task was withdrawn meanwhile"),
            Err(e) => {
                tracing::warn!(key = %offer.key, error = %e, "cannot record an offered task's result; it will be claimed again")
            }
        }
    }
}

/// Fetch the results of offers made here and hand them to their waiters;
/// withdraw the offers nobody waits for any more (their run stopped here).
async fn collect(dispatch: Weak<Dispatch>) {
    loop {
        let Some(this) = dispatch.upgrade() else {
            return;
        };
        let (keys, abandoned) = {
            let mut waiting = lock(&this.waiting);
            let abandoned: Vec<(String, String)> = waiting
                .iter()
                .filter(|(_, (_, tx))| tx.is_closed())
                .map(|(k, (run, _))| (run.clone(), k.clone()))
                .collect();
            for (_, key) in &abandoned {
                waiting.remove(key);
            }
            (waiting.keys().cloned().collect::<Vec<_>>(), abandoned)
        };
        for (run, key) in abandoned {
            let _ = this.store.task_withdraw(&run, Some(&[key])).await;
        }
        if !keys.is_empty() {
            match this.store.task_results(&keys).await {
                Ok(done) => {
                    let mut waiting = lock(&this.waiting);
                    for (key, result) in done {
                        if let Some((_, tx)) = waiting.remove(&key) {
                            let _ = tx.send(result);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read offered tasks' results"),
            }
        }
        let store = this.store.clone();
        drop(this);
        store
            .wait_for_tasks(if keys.is_empty() {
                OFFER_POLL
            } else {
                RESULT_POLL
            })
            .await;
    }
}

/// Every third of the lease: renew the claims of offers executing here
/// (stopping those lost) and the concurrency slots this host holds.
async fn heartbeat(dispatch: Weak<Dispatch>) {
    loop {
        let Some(lease) = dispatch.upgrade().map(|d| d.lease) else {
            return;
        };
        tokio::time::sleep(lease / 3).await;
        let Some(this) = dispatch.upgrade() else {
            return;
        };
        let until = now_ms() + this.lease.as_millis() as u64;
        let tokens: Vec<String> = this.slots_held.tokens();
        if let Err(e) = this.store.slot_renew(&this.host_id, &tokens, until).await {
            tracing::warn!(error = %e, "cannot renew concurrency slots");
        }
        let keys: Vec<String> = lock(&this.claimed).keys().cloned().collect();
        match this.store.task_renew(&this.host_id, &keys, until).await {
            Ok(lost) => {
                for key in lost {
                    tracing::info!(%key, "offered task withdrawn or taken over; stopping it");
                    if let Some(token) = lock(&this.claimed).get(&key) {
                        token.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew task claims"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
