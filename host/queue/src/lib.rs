//! Queues and limiters (the seeds' JobQueue limiters: ConcurrencyLimiter,
//! RateLimiter, CompositeLimiter).
//!
//! A node routed through a named queue starts only when the queue's limiters
//! allow it. Limits apply per *key*: the queue itself, or the value of an input
//! port (a user, a model provider), so each key gets its own budget. Rate
//! windows and pauses live in the run store, so they hold across runs,
//! restarts and hosts; concurrency is a count of tasks running in this
//! process, or, with several hosts on one store, slots held in the store. This
//! crate decides *when* a job may start; the runtime's runner (and the model
//! providers) do the starting. It must not know what a job is.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), weft_store::StoreError> {
//! use std::sync::Arc;
//! use weft_core::clock::ManualClock;
//! use weft_queue::{Queue, QueueConfig, QueueState, RateConfig, Wait};
//!
//! let clock = ManualClock::at(0);
//! let state = QueueState { store: Arc::new(weft_store::MemoryStore::new()), clock: clock.clone() };
//! // Two starts per second per key.
//! let config = QueueConfig { rate: Some(RateConfig { max: 2, per_ms: 1_000 }), ..Default::default() };
//! let queue = Queue::new("api", &config, &state, None);
//! assert_eq!(queue.take("alice").await?, Wait::Now);
//! assert_eq!(queue.take("alice").await?, Wait::Now);
//! let Wait::For(wait) = queue.take("alice").await? else { panic!("the third must wait") };
//! assert_eq!(queue.take("bob").await?, Wait::Now, "each key has its own budget");
//! clock.advance(wait);
//! assert_eq!(queue.take("alice").await?, Wait::Now, "once the first start left the window");
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use weft_core::clock::Clock;
pub use weft_core::rate::{RateConfig, RateState};
use weft_store::{RunStore, StoreError};

/// A queue's settings, as written in configuration (`[queues.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// At most this many tasks of the queue (per key) running at once.
    pub concurrency: Option<usize>,
    /// At most `max` starts per key within any window of `per_ms` milliseconds
    /// (a sliding window).
    pub rate: Option<RateConfig>,
    /// At least this many milliseconds between two starts (per key).
    pub min_interval_ms: Option<u64>,
    /// Limit per value of this input port (e.g. `user`) instead of per queue.
    pub key_from: Option<String>,
    /// Retries after the first attempt for nodes of this queue (a node's
    /// `config.retries` overrides; default: the host's).
    pub retries: Option<u32>,
    /// Delay before the first retry, ms (a node's `config.retry_backoff_ms`
    /// overrides; default: the host's).
    pub retry_backoff_ms: Option<u64>,
    /// Task types routed through this queue unless a node says otherwise.
    #[serde(default)]
    pub tasks: Vec<String>,
}

/// When a job may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wait {
    /// Now.
    Now,
    /// After this long.
    For(Duration),
    /// When a running job of the same key ends.
    UntilRelease,
}

impl Wait {
    /// The stricter of two answers: waiting for a release beats a time, a
    /// longer time beats a shorter one.
    pub fn and(self, other: Wait) -> Wait {
        self.max(other)
    }
}

/// Decides when a job of one key may start.
#[async_trait::async_trait]
pub trait Limiter: Send + Sync {
    /// When a job of `key` may start. Takes nothing.
    async fn wait(&self, key: &str) -> Result<Wait, StoreError>;
    /// Record that a job of `key` starts now, if it still may (another host
    /// sharing the store may have taken the slot since `wait`): `Wait::Now`
    /// when taken, else how long to wait (nothing taken).
    async fn take(&self, key: &str) -> Result<Wait, StoreError>;
    /// A job of `key` finished.
    fn release(&self, key: &str);
}

/// At most `max` jobs per key at once, in this process.
pub struct ConcurrencyLimiter {
    max: usize,
    running: Mutex<HashMap<String, usize>>,
}

impl ConcurrencyLimiter {
    /// A limiter allowing `max` concurrent jobs per key.
    pub fn new(max: usize) -> Self {
        ConcurrencyLimiter {
            max: max.max(1),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Limiter for ConcurrencyLimiter {
    async fn wait(&self, key: &str) -> Result<Wait, StoreError> {
        let busy = self.counts().get(key).copied().unwrap_or(0) >= self.max;
        Ok(if busy { Wait::UntilRelease } else { Wait::Now })
    }
    async fn take(&self, key: &str) -> Result<Wait, StoreError> {
        // In this process only: `wait` just looked, under the same scheduler.
        *self.counts().entry(key.to_string()).or_default() += 1;
        Ok(Wait::Now)
    }
    fn release(&self, key: &str) {
        let mut counts = self.counts();
        if let Some(n) = counts.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // A key is kept only while it holds jobs.
                counts.remove(key);
            }
        }
    }
}

/// At most `max` jobs per key at once across every host sharing the store:
/// each running job holds a slot in the store, renewed by the host's
/// heartbeat (the runtime's dispatch), so a dead host's slots free themselves
/// when their lease ends.
pub struct SharedConcurrencyLimiter {
    name: String,
    max: u32,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    holder: SlotHolder,
    next: std::sync::atomic::AtomicU64,
    /// The tokens of slots held here, per key.
    held: Mutex<HashMap<String, Vec<String>>>,
}

/// The host that holds concurrency slots in a shared store (made by the
/// host's dispatch, whose heartbeat renews them).
#[derive(Debug, Clone)]
pub struct SlotHolder {
    /// Its id (as in run leases).
    host: String,
    /// How long a slot stays held without a heartbeat.
    lease: Duration,
    /// The tokens of the slots it holds, which its heartbeat renews.
    held: HeldSlots,
}

impl SlotHolder {
    /// Host `host`, whose slots last `lease` without a heartbeat; the
    /// tokens of the slots it takes are kept in `held`.
    pub fn new(host: &str, lease: Duration, held: HeldSlots) -> Self {
        SlotHolder {
            host: host.to_string(),
            lease,
            held,
        }
    }
}

/// The tokens of the concurrency slots a host holds: its shared limiters
/// add and remove them, its heartbeat renews them.
#[derive(Debug, Clone, Default)]
pub struct HeldSlots(Arc<Mutex<std::collections::HashSet<String>>>);

impl HeldSlots {
    /// The tokens held now.
    pub fn tokens(&self) -> Vec<String> {
        lock(&self.0).iter().cloned().collect()
    }

    fn insert(&self, token: String) {
        lock(&self.0).insert(token);
    }

    fn remove(&self, token: &str) {
        lock(&self.0).remove(token);
    }
}

/// How long a job waits before asking again for a slot held elsewhere.
const SLOT_POLL: Duration = Duration::from_millis(50);

impl SharedConcurrencyLimiter {
    /// A limiter named `name` allowing `max` concurrent jobs per key.
    pub fn new(name: &str, max: usize, state: &QueueState, holder: SlotHolder) -> Self {
        SharedConcurrencyLimiter {
            name: name.to_string(),
            max: max.clamp(1, u32::MAX as usize) as u32,
            store: state.store.clone(),
            clock: state.clock.clone(),
            holder,
            next: std::sync::atomic::AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn id(&self, key: &str) -> String {
        format!("{}\u{1f}{key}", self.name)
    }
}

#[async_trait::async_trait]
impl Limiter for SharedConcurrencyLimiter {
    async fn wait(&self, _key: &str) -> Result<Wait, StoreError> {
        // Only the store knows; `take` asks it (one round trip per start).
        Ok(Wait::Now)
    }
    async fn take(&self, key: &str) -> Result<Wait, StoreError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}#{n}", self.holder.host);
        let now = self.clock.now_ms();
        let id = self.id(key);
        let taken = self
            .store
            .slot_acquire(weft_store::SlotRequest {
                id: &id,
                token: &token,
                host: &self.holder.host,
                max: self.max,
                now_ms: now,
                until_ms: now + self.holder.lease.as_millis() as u64,
            })
            .await?;
        if !taken {
            // Released elsewhere without a signal here: ask again shortly.
            return Ok(Wait::For(SLOT_POLL));
        }
        self.holder.held.insert(token.clone());
        lock(&self.held)
            .entry(key.to_string())
            .or_default()
            .push(token);
        Ok(Wait::Now)
    }
    fn release(&self, key: &str) {
        let token = {
            let mut held = lock(&self.held);
            let token = held.get_mut(key).and_then(Vec::pop);
            if held.get(key).is_some_and(Vec::is_empty) {
                held.remove(key);
            }
            token
        };
        if let Some(token) = token {
            // No longer renewed: if freeing it fails, it expires.
            self.holder.held.remove(&token);
            let (store, id) = (self.store.clone(), self.id(key));
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return; // shutting down: the slot expires
            };
            runtime.spawn(async move {
                if let Err(e) = store.slot_release(&id, &token).await {
                    tracing::warn!(error = %e, "cannot free a concurrency slot; it frees when its lease ends");
                }
            });
        }
    }
}

/// At most `max` starts per key in any window of `window`, and none while the
/// key is paused; both kept in the store.
pub struct RateLimiter {
    name: String,
    max: u32,
    window: Duration,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    /// Pauses known to this process, per key (read from the store once per
    /// key, then kept up to date by [`RateLimiter::pause`]).
    pauses: Mutex<HashMap<String, u64>>,
}

impl RateLimiter {
    /// A limiter named `name` (its state's key in the store).
    pub fn new(name: &str, max: u32, window: Duration, state: &QueueState) -> Self {
        RateLimiter {
            name: name.to_string(),
            max: max.max(1),
            window,
            store: state.store.clone(),
            clock: state.clock.clone(),
            pauses: Mutex::new(HashMap::new()),
        }
    }

    fn id(&self, key: &str) -> String {
        format!("{}\u{1f}{key}", self.name)
    }

    fn known_pauses(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.pauses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start nothing of `key` before `until_ms`.
    pub async fn pause(&self, key: &str, until_ms: u64) -> Result<(), StoreError> {
        self.store.rate_pause(&self.id(key), until_ms).await?;
        let mut known = self.known_pauses();
        let p = known.entry(key.to_string()).or_default();
        *p = (*p).max(until_ms);
        Ok(())
    }
}

/// How many keys' pauses a rate limiter remembers before it forgets the
/// ones that are over.
const KNOWN_PAUSES: usize = 4096;

#[async_trait::async_trait]
impl Limiter for RateLimiter {
    async fn wait(&self, key: &str) -> Result<Wait, StoreError> {
        let now = self.clock.now_ms();
        // Without a rate, only pauses matter, and after the first look they
        // are known here: no store read per job.
        if self.max == u32::MAX
            && let Some(&until) = self.known_pauses().get(key)
        {
            return Ok(match until.saturating_sub(now) {
                0 => Wait::Now,
                ms => Wait::For(Duration::from_millis(ms)),
            });
        }
        let window = self.window.as_millis() as u64;
        let since = weft_core::rate::window_start(now, window);
        let state = self.store.rate_state(&self.id(key), since).await?;
        let mut known = self.known_pauses();
        known.insert(key.to_string(), state.paused_until_ms);
        // Keys come from user data (`key_from`): forget the ones whose
        // pause is over once there are many (they are read again if seen).
        if known.len() > KNOWN_PAUSES {
            known.retain(|_, until| *until > now);
        }
        drop(known);
        Ok(match state.wait_ms(now, window, self.max) {
            None => Wait::Now,
            Some(ms) => Wait::For(Duration::from_millis(ms)),
        })
    }
    async fn take(&self, key: &str) -> Result<Wait, StoreError> {
        if self.max == u32::MAX {
            return Ok(Wait::Now); // no rate: this limiter only holds pauses
        }
        let wait = self
            .store
            .rate_acquire(
                &self.id(key),
                self.clock.now_ms(),
                self.window.as_millis() as u64,
                self.max,
            )
            .await?;
        Ok(match wait {
            None => Wait::Now,
            Some(ms) => Wait::For(Duration::from_millis(ms)),
        })
    }
    fn release(&self, _key: &str) {}
}

/// Several limiters together: a job starts only when all allow it, and then
/// takes from all of them (all or none).
pub struct CompositeLimiter {
    parts: Vec<Arc<dyn Limiter>>,
}

impl CompositeLimiter {
    /// All of `parts`.
    pub fn new(parts: Vec<Arc<dyn Limiter>>) -> Self {
        CompositeLimiter { parts }
    }
}

#[async_trait::async_trait]
impl Limiter for CompositeLimiter {
    async fn wait(&self, key: &str) -> Result<Wait, StoreError> {
        let mut strictest = Wait::Now;
        for p in &self.parts {
            strictest = strictest.and(p.wait(key).await?);
        }
        Ok(strictest)
    }
    async fn take(&self, key: &str) -> Result<Wait, StoreError> {
        for (i, p) in self.parts.iter().enumerate() {
            let wait = match p.take(key).await {
                Ok(wait) => wait,
                Err(e) => {
                    for earlier in &self.parts[..i] {
                        earlier.release(key);
                    }
                    return Err(e);
                }
            };
            if wait != Wait::Now {
                // All or none: give back what the earlier parts took (a rate
                // start already recorded stays: it only errs on the safe side).
                for earlier in &self.parts[..i] {
                    earlier.release(key);
                }
                return Ok(wait);
            }
        }
        Ok(Wait::Now)
    }
    fn release(&self, key: &str) {
        for p in &self.parts {
            p.release(key);
        }
    }
}

/// Where a queue's limiters keep their state, and the clock their windows
/// are measured by.
#[derive(Clone)]
pub struct QueueState {
    /// The store (rate windows, pauses, shared slots).
    pub store: Arc<dyn RunStore>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// A named queue: its limiter, how it keys jobs, and where pauses are kept.
pub struct Queue {
    /// The queue's name.
    pub name: String,
    /// Retry count for its nodes, unless a node sets its own.
    pub retries: Option<u32>,
    /// First retry delay for its nodes, unless a node sets its own.
    pub retry_backoff: Option<Duration>,
    limiter: CompositeLimiter,
    key_from: Option<String>,
    /// The queue's main rate limiter, which also holds its pauses.
    pauses: Arc<RateLimiter>,
}

impl Queue {
    /// Build queue `name` from its configuration, keeping its state in
    /// `state`'s store. With `shared` (several hosts on the store), its
    /// concurrency limit holds across them all; otherwise it counts the jobs
    /// of this process.
    pub fn new(
        name: &str,
        config: &QueueConfig,
        state: &QueueState,
        shared: Option<SlotHolder>,
    ) -> Self {
        let mut parts: Vec<Arc<dyn Limiter>> = Vec::new();
        match (config.concurrency, shared) {
            (Some(n), Some(holder)) => parts.push(Arc::new(SharedConcurrencyLimiter::new(
                name, n, state, holder,
            ))),
            (Some(n), None) => parts.push(Arc::new(ConcurrencyLimiter::new(n))),
            (None, _) => {}
        }
        // Always a rate limiter, even with no rate: it holds the pauses a
        // Retry-After asks for.
        let (max, window) = match (config.rate, config.min_interval_ms) {
            (Some(r), _) => (r.max, Duration::from_millis(r.per_ms)),
            (None, Some(ms)) => (1, Duration::from_millis(ms)),
            (None, None) => (u32::MAX, Duration::ZERO),
        };
        let pauses = Arc::new(RateLimiter::new(name, max, window, state));
        parts.push(pauses.clone());
        if config.rate.is_some()
            && let Some(ms) = config.min_interval_ms
        {
            parts.push(Arc::new(RateLimiter::new(
                &format!("{name}#interval"),
                1,
                Duration::from_millis(ms),
                state,
            )));
        }
        Queue {
            name: name.to_string(),
            retries: config.retries,
            retry_backoff: config.retry_backoff_ms.map(Duration::from_millis),
            limiter: CompositeLimiter::new(parts),
            key_from: config.key_from.clone(),
            pauses,
        }
    }

    /// The key a job with `input` is limited under.
    pub fn key(&self, input: &serde_json::Map<String, Value>) -> String {
        match self.key_from.as_ref().and_then(|port| input.get(port)) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    /// When a job of `key` may start.
    pub async fn wait(&self, key: &str) -> Result<Wait, StoreError> {
        self.limiter.wait(key).await
    }

    /// A job of `key` starts now.
    pub async fn take(&self, key: &str) -> Result<Wait, StoreError> {
        self.limiter.take(key).await
    }

    /// A job of `key` finished.
    pub fn release(&self, key: &str) {
        self.limiter.release(key)
    }

    /// Start nothing of `key` before `until_ms` (a task said Retry-After).
    pub async fn pause(&self, key: &str, until_ms: u64) -> Result<(), StoreError> {
        self.pauses.pause(key, until_ms).await
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({})", self.name)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::clock::ManualClock;

    #[tokio::test]
    async fn a_key_is_forgotten_once_its_jobs_are_released() {
        let limiter = ConcurrencyLimiter::new(2);
        for i in 0..10_000 {
            let key = format!("user-{i}");
            limiter.take(&key).await.unwrap();
            limiter.take(&key).await.unwrap();
            assert_eq!(limiter.wait(&key).await.unwrap(), Wait::UntilRelease);
            limiter.release(&key);
            assert_eq!(limiter.wait(&key).await.unwrap(), Wait::Now);
            limiter.release(&key);
        }
        assert!(limiter.counts().is_empty());
    }

    fn queue(config: QueueConfig) -> (Queue, Arc<ManualClock>) {
        let clock = ManualClock::at(1_000_000);
        let state = QueueState {
            store: Arc::new(weft_store::MemoryStore::new()),
            clock: clock.clone(),
        };
        (Queue::new("q", &config, &state, None), clock)
    }

    fn ms(n: u64) -> Wait {
        Wait::For(Duration::from_millis(n))
    }

    #[tokio::test]
    async fn a_rate_admits_exactly_max_per_window_by_the_clock() {
        let rate = RateConfig {
            max: 2,
            per_ms: 1000,
        };
        let (q, clock) = queue(QueueConfig {
            rate: Some(rate),
            ..QueueConfig::default()
        });
        assert_eq!(q.take("k").await.unwrap(), Wait::Now);
        clock.advance(Duration::from_millis(300));
        assert_eq!(q.take("k").await.unwrap(), Wait::Now);
        // Full: the first start leaves the window 1000 ms after it was made.
        assert_eq!(q.wait("k").await.unwrap(), ms(700));
        assert_eq!(q.take("k").await.unwrap(), ms(700));
        assert_eq!(q.take("other").await.unwrap(), Wait::Now, "per key");
        clock.advance(Duration::from_millis(699));
        assert_eq!(q.take("k").await.unwrap(), ms(1));
        // The wait is exact: a start counts for one window, then leaves.
        clock.advance(Duration::from_millis(1));
        assert_eq!(q.take("k").await.unwrap(), Wait::Now);
        // Now the second start (at +300) is the oldest in the window.
        assert_eq!(q.wait("k").await.unwrap(), ms(300));
    }

    #[tokio::test]
    async fn a_minimum_interval_and_a_pause_hold_to_the_millisecond() {
        let (q, clock) = queue(QueueConfig {
            min_interval_ms: Some(250),
            ..QueueConfig::default()
        });
        assert_eq!(q.take("").await.unwrap(), Wait::Now);
        clock.advance(Duration::from_millis(100));
        assert_eq!(q.wait("").await.unwrap(), ms(150));
        clock.advance(Duration::from_millis(149));
        assert_eq!(
            q.take("").await.unwrap(),
            ms(1),
            "249 ms apart is too close"
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            q.take("").await.unwrap(),
            Wait::Now,
            "250 apart: when the wait said"
        );
        // A Retry-After pause outlasts the interval: the longer wait wins.
        q.pause("", clock.now_ms() + 1_000).await.unwrap();
        clock.advance(Duration::from_millis(400));
        assert_eq!(q.wait("").await.unwrap(), ms(600));
        clock.advance(Duration::from_millis(600));
        assert_eq!(q.wait("").await.unwrap(), Wait::Now);
    }

    #[tokio::test]
    async fn concurrency_counts_running_jobs_not_time() {
        let (q, clock) = queue(QueueConfig {
            concurrency: Some(1),
            ..QueueConfig::default()
        });
        assert_eq!(q.wait("").await.unwrap(), Wait::Now);
        assert_eq!(q.take("").await.unwrap(), Wait::Now);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(q.wait("").await.unwrap(), Wait::UntilRelease);
        q.release("");
        assert_eq!(q.wait("").await.unwrap(), Wait::Now);
    }
}
