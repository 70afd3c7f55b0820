//! Durable state: runs, node states and outputs, and each run's event log.
//!
//! Owns the [`RunStore`] trait (the seam between the runner and a storage
//! backend) and its implementations: [`MemoryStore`] for ephemeral runs and
//! tests, [`RedbStore`] (one redb file, the embedded default), [`PgStore`]
//! (PostgreSQL, shared by many hosts; runs are leased to the host executing
//! them). A [`Commit`] is
//! applied in one transaction: a node's output, its new state and the events
//! describing the change become durable together or not at all. The store must
//! not know about wasm, scheduling or HTTP.
//!
//! The rules every backend shares are written once here: admitting a new run
//! ([`NewRun`]) and the output cache's retention. A backend supplies the
//! small lookups they need inside its own transaction.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use weft_store::prelude::*;
//! use weft_store::{Created, NewRun, RedbStore, RunRecord, RunSpec};
//!
//! let dir = tempfile::tempdir()?;
//! let store = RedbStore::open(&dir.path().join("weft.redb"))?;
//! let spec = RunSpec {
//!     graph: weft_core::graph::Graph::default(),
//!     origin: "empty.json".into(),
//!     input: serde_json::json!({}),
//!     components: Default::default(),
//! };
//! let mut run = RunRecord::new("run-1", "empty.json");
//! run.idempotency_key = Some("nightly-2026-12-02".into());
//! let again = NewRun::new(RunRecord::new("run-2", "empty.json"), spec.clone());
//! assert_eq!(store.create_run(NewRun::new(run, spec)).await?, Created::New);
//! // The same key again (same owner) is answered with the first run.
//! let mut again = again;
//! again.record.idempotency_key = Some("nightly-2026-12-02".into());
//! match store.create_run(again).await? {
//!     Created::Existing(first) => assert_eq!(first.run_id, "run-1"),
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(store.load_run("run-1").await?.run.origin, "empty.json");
//! # Ok(()) }
//! ```

mod admission;
pub mod key_values;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod redb_store;
mod retention;
mod schedules;
mod sharing;
mod signals;
#[cfg(feature = "testing")]
pub mod testing;

use bytes::Bytes;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use admission::NewRun;

/// Resolves once a write answered before it was durable is durable (or
/// says why it is not): see [`RunLog::create_run_applied`].
pub type Durable = futures::future::BoxFuture<'static, Result<(), RunLogError>>;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, SCHEMA_VERSION as PG_SCHEMA_VERSION};
pub use redb_store::{CACHE_BYTES as REDB_CACHE_BYTES, RedbStore};
pub use schedules::{Fired, Schedule, Schedules};
pub use signals::{Arrival, Signal, Signals};

use weft_core::cache::{CacheEntry, CacheStat};
use weft_core::event::{Event, NodeStatus, RunStatus};
use weft_core::graph::Graph;
use weft_core::rate::RateState;

impl StoreError {
    /// A backend failure described by `message` alone.
    pub fn backend(message: impl Into<String>) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// A backend failure: `context` (what was being done) and its cause,
    /// kept as the error's source. The message repeats the cause's text, so
    /// a log line that shows only the message still says what went wrong.
    pub fn context(
        context: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            message: format!("{context}: {source}"),
            source: Some(Arc::new(source)),
        }
    }

    /// A backend failure caused by `source` (kept as the error's source).
    pub fn caused_by(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            message: source.to_string(),
            source: Some(Arc::new(source)),
        }
    }
}

/// The on-disk format version this build writes and reads.
///
/// 2: runs' component pins are indexed (`component_runs`); a version-1 file
/// is migrated when opened.
/// 3: nodes may be `waiting`, and runs have `signals` (an older build
/// would not read them); nothing to migrate.
/// 4: kept components' sizes are indexed (`component_sizes`: which are kept,
/// without reading them); a version-3 file is migrated when opened.
/// 5: ended runs are indexed by status, anyone's and each owner's
/// (`ended_by_status`, `ended_by_owner`: a page of failed runs without
/// reading the others); a version-4 file is migrated when opened.
pub const FORMAT_VERSION: u64 = 5;

/// A storage failure that any concern can meet: the backend failed, or the
/// store cannot be opened. Cheap to clone (a run's event hub hands the first
/// failure to every waiter), with the backend's own error kept as its source.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, corruption, a lost connection).
    #[error("store error: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The backend's own error, when there is one.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The embedded store is held by another process (one process per data
    /// directory).
    #[error(
        "{path} is in use by another weft process (a running `weft serve`?): one process \
         per data directory. Ask the daemon (`--server URL`), stop it, or use another \
         --data-dir (or --ephemeral)"
    )]
    InUse {
        /// The store file.
        path: String,
    },
    /// The file was written by a newer Weft.
    #[error(
        "{path} has format version {found}; this weft reads up to version {supported}: upgrade weft"
    )]
    NewerFormat {
        /// The store file.
        path: String,
        /// Its version.
        found: u64,
        /// The newest this build reads.
        supported: u64,
    },
    /// A record could not be decoded.
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// Which record.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A run-log operation's failure ([`RunLog`]): the run is unknown, this host
/// lost it to another, or the backend failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RunLogError {
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No run with this id.
    #[error("no run `{0}`")]
    UnknownRun(String),
    /// Another host took the run over (this host's lease expired): this
    /// host's changes to it were refused, and it must stop executing it.
    #[error("run `{run_id}` was taken over by another host (this host's lease on it expired)")]
    LostLease {
        /// The run.
        run_id: String,
    },
}

/// What a run executes: written once when the run is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The graph being run (as submitted).
    pub graph: Graph,
    /// Where the graph came from (a file name).
    pub origin: String,
    /// The run's input.
    pub input: Value,
    /// The wasm component each plugin it uses had when it was submitted:
    /// plugin name → SHA-256 (hex). A resumed run goes on with exactly
    /// these (kept in [`Components`]). Empty for runs from before pinning.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub components: std::collections::BTreeMap<String, String>,
}

/// A run's state (small; rewritten only when the status changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// Where the graph came from (a file name).
    pub origin: String,
    /// Its state.
    pub status: RunStatus,
    /// Created, ms since the Unix epoch.
    pub created_ms: u64,
    /// When the status last changed, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Who submitted it (a daemon user); `None` for runs started from the CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The saved graph it runs (`name`), when submitted by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_name: Option<String>,
    /// The submitter's idempotency key: unique per owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl RunRecord {
    /// A new running run, created now, with no owner.
    pub fn new(run_id: &str, origin: &str) -> Self {
        let now = weft_core::clock::now_ms();
        RunRecord {
            run_id: run_id.to_string(),
            origin: origin.to_string(),
            status: RunStatus::Running,
            created_ms: now,
            updated_ms: now,
            owner: None,
            graph_name: None,
            idempotency_key: None,
        }
    }
}

/// Which runs [`RunStore::runs_page`] lists. Every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only runs of this owner (`None`: of any owner)...
    pub owner: Option<String>,
    /// ...and, with `owner`, also runs without one (started from the CLI).
    pub with_unowned: bool,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time, ms since the Unix epoch.
    pub since_ms: Option<u64>,
    /// Only runs of this saved graph (by name) or origin (file name).
    pub graph: Option<String>,
}

impl RunFilter {
    /// Whether `run` matches.
    pub fn matches(&self, run: &RunRecord) -> bool {
        let owner_ok = match (&self.owner, &run.owner) {
            (None, _) => true,
            (Some(want), Some(owner)) => want == owner,
            (Some(_), None) => self.with_unowned,
        };
        owner_ok
            && self.status.is_none_or(|s| run.status == s)
            && self.since_ms.is_none_or(|t| run.created_ms >= t)
            && self
                .graph
                .as_deref()
                .is_none_or(|g| run.graph_name.as_deref() == Some(g) || run.origin == g)
    }
}

/// What [`RunLog::create_run`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The run was recorded.
    New,
    /// The owner already has a run with this idempotency key: nothing was
    /// recorded; here is that run.
    Existing(RunRecord),
    /// The owner already has `running` running runs, as many as
    /// [`NewRun::max_running`] allows: nothing was recorded.
    TooManyRunning {
        /// The owner's running runs.
        running: usize,
    },
}

/// A saved, named graph (one version of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedGraph {
    /// Its name.
    pub name: String,
    /// 1 for the first save, +1 for each later one. Never reused, even after
    /// the graph is deleted and saved again.
    pub version: u32,
    /// When this version was saved, ms since the Unix epoch.
    pub saved_ms: u64,
    /// Who saved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Users besides the owner who may read and run it (never change it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    /// The graph.
    pub graph: Graph,
}

/// A graph name must be 1–128 characters of `[A-Za-z0-9._-]`.
pub fn valid_graph_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A node of a run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id.
    pub node: String,
    /// Its state.
    pub status: NodeStatus,
    /// Attempts started so far.
    pub attempt: u32,
    /// Its output, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its error, when failed, skipped or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `retrying`: when the next attempt is due, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<u64>,
    /// For `waiting`: when the wait times out, ms since the Unix epoch
    /// (none: it waits until its signal comes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until_ms: Option<u64>,
}

/// Changes to one run, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// New states of nodes.
    pub nodes: Vec<NodeRecord>,
    /// A new state of the run.
    pub status: Option<RunStatus>,
    /// Events describing these changes, already numbered.
    pub events: Vec<Event>,
    /// Outputs to keep in the output cache.
    pub cache: Vec<CachePut>,
    /// Inputs nodes were started with (a node's first attempt; a retry
    /// starts with the same input).
    pub inputs: Vec<NodeInput>,
}

/// The input a node was started with, in a [`Commit`]. Kept beside its
/// [`NodeRecord`], not in it: read one node at a time (a run's view and
/// resumption never load them), written once per node.
#[derive(Debug, Clone)]
pub struct NodeInput {
    /// The node's id.
    pub node: String,
    /// Its input (shared with the task that runs on it, not copied).
    pub input: Arc<Value>,
}

/// An output to store in the output cache, in a [`Commit`].
#[derive(Debug, Clone)]
pub struct CachePut {
    /// Its key ([`crate::cache::key`]).
    pub key: String,
    /// The entry.
    pub entry: CacheEntry,
    /// Keep only the newest this many entries of its task type.
    pub keep_last: Option<usize>,
}

/// A run with everything stored about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The run.
    pub run: RunRecord,
    /// What it executes.
    pub spec: RunSpec,
    /// Its nodes that have a state.
    pub nodes: Vec<NodeRecord>,
    /// One past the last stored event's sequence number.
    pub next_seq: u64,
}

/// The run log: runs, their node states and numbered events. Implementations
/// apply each [`Commit`] atomically and durably before returning.
#[async_trait::async_trait]
pub trait RunLog: Send + Sync {
    /// Record a new run, unless its owner already has a run with its
    /// idempotency key, or already has [`NewRun::max_running`] running runs
    /// (checked and recorded atomically; the rule is [`NewRun`]'s).
    async fn create_run(&self, run: NewRun) -> Result<Created, RunLogError>;

    /// [`RunLog::create_run`], answering perhaps before the run is durable,
    /// with a [`Durable`] that resolves once it is. The caller may start the
    /// run at once (whatever it writes next is committed after the run, so
    /// a crash never keeps a node without its run; a task with side effects
    /// waits for durability anyway) but must acknowledge nothing before the
    /// `Durable` resolves `Ok`. Until then the run may not be readable: its
    /// record may still be on its way (a commit, lease or task offer of the
    /// run is ordered after it: on redb by the writer's queue, on
    /// PostgreSQL by waiting for it).
    /// By default: `create_run`, durable already.
    async fn create_run_applied(&self, run: NewRun) -> Result<(Created, Durable), RunLogError> {
        let created = self.create_run(run).await?;
        Ok((created, Box::pin(async { Ok(()) })))
    }

    /// Apply `commit` to run `run_id` in one transaction.
    async fn commit(&self, run_id: &str, commit: Commit) -> Result<(), RunLogError>;

    /// A run and its node states.
    async fn load_run(&self, run_id: &str) -> Result<StoredRun, RunLogError>;

    /// Runs and their node states, each as [`RunLog::load_run`] answers it,
    /// in order: the runs a host claimed, in one round trip where the
    /// store has them. By default one by one.
    async fn load_runs(&self, run_ids: &[String]) -> Vec<Result<StoredRun, RunLogError>> {
        let mut loaded = Vec::with_capacity(run_ids.len());
        for run_id in run_ids {
            loaded.push(self.load_run(run_id).await);
        }
        loaded
    }

    /// A run's record alone: who owns it and its status, without its nodes
    /// (an event stream's check when it opens).
    async fn run_record(&self, run_id: &str) -> Result<RunRecord, RunLogError> {
        Ok(self.load_run(run_id).await?.run)
    }

    /// All runs, newest first.
    async fn list_runs(&self) -> Result<Vec<RunRecord>, RunLogError>;

    /// Up to `limit` runs matching `filter`, newest first, after run `after`
    /// (the last of the previous page; an unknown id gives an empty page).
    /// Stores with an index answer without reading every run.
    async fn runs_page(
        &self,
        filter: &RunFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError> {
        let all = self.list_runs().await?;
        let mut matching = all.into_iter().filter(|r| filter.matches(r));
        if let Some(after) = after {
            matching.by_ref().find(|r| r.run_id == after);
        }
        Ok(matching.take(limit).collect())
    }

    /// The input node `node` of run `run_id` was started with; none if it
    /// has not started (or the run does not exist).
    async fn node_input(&self, run_id: &str, node: &str) -> Result<Option<Value>, RunLogError>;

    /// Events of `run_id` with sequence number greater than `after`, in order.
    async fn events(&self, run_id: &str, after: u64) -> Result<Vec<Event>, RunLogError>;

    /// Up to `limit` runs, oldest first (by creation time, then id), after
    /// the position `after` (a run's creation time and id; the run need not
    /// exist any more): how retention walks the store a page at a time.
    async fn runs_oldest(
        &self,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError>;

    /// Delete the runs `run_ids` and everything of each: its spec, node
    /// states and inputs, events, idempotency key, lease, task offers, the output-cache
    /// entries it made and its component pins (its dead letters are its
    /// failed nodes: gone with it), in one transaction. Returns how many
    /// there were.
    async fn delete_runs(&self, run_ids: &[String]) -> Result<usize, RunLogError>;

    /// [`RunLog::delete_runs`] of one run; false if there was no such run.
    async fn delete_run(&self, run_id: &str) -> Result<bool, RunLogError> {
        Ok(self.delete_runs(&[run_id.to_string()]).await? == 1)
    }
}

/// The output cache's entries (written with a run's [`Commit`]).
#[async_trait::async_trait]
pub trait OutputCache: Send + Sync {
    /// The cached output under `key` (see [`crate::cache::key`]).
    async fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, StoreError>;

    /// Entries and bytes per task type.
    async fn cache_stats(&self) -> Result<Vec<CacheStat>, StoreError>;

    /// Remove every entry (of `task_type` only, if given); returns how many.
    async fn cache_clear(&self, task_type: Option<&str>) -> Result<u64, StoreError>;
}

/// Named, versioned saved graphs.
#[async_trait::async_trait]
pub trait SavedGraphs: Send + Sync {
    /// Save a new version of graph `name` (see [`valid_graph_name`]), owned
    /// by `owner` and shared with `shared_with`.
    async fn graph_put(
        &self,
        name: &str,
        graph: Graph,
        owner: Option<String>,
        shared_with: Vec<String>,
    ) -> Result<SavedGraph, StoreError>;

    /// Graph `name`: the given version, or the newest.
    async fn graph_get(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedGraph>, StoreError>;

    /// The newest version of every saved graph, by name.
    async fn graph_list(&self) -> Result<Vec<SavedGraph>, StoreError>;

    /// Delete every version of graph `name`; false if there was none.
    async fn graph_delete(&self, name: &str) -> Result<bool, StoreError>;
}

/// The wasm components runs are pinned to, by SHA-256: kept so that a run
/// resumes, on any host sharing the store, on the component it started
/// with, whatever the plugins folder holds by then.
#[async_trait::async_trait]
pub trait Components: Send + Sync {
    /// Keep `bytes` under `digest` (their SHA-256, hex); nothing if that
    /// digest is kept already (found without reading the kept bytes: a host
    /// puts every component it loads at each start).
    async fn component_put(&self, digest: &str, bytes: Bytes) -> Result<(), StoreError>;

    /// The bytes kept under `digest`.
    async fn component_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The digests kept that no stored run is pinned to (a run is pinned
    /// from its creation until it is deleted).
    async fn components_unused(&self) -> Result<Vec<String>, StoreError>;

    /// Delete the component under `digest` if still no stored run is pinned
    /// to it (checked atomically with the deletion); true if deleted.
    async fn component_delete_unused(&self, digest: &str) -> Result<bool, StoreError>;
}

/// What hosts sharing a store agree through it: rate windows and pauses,
/// run leases, task offers between hosts, and concurrency slots. Each
/// operation is atomic across every process sharing the store.
#[async_trait::async_trait]
pub trait Coordination: Send + Sync {
    /// A rate limiter's state for `id`: starts at or after `since_ms`, and its pause.
    async fn rate_state(&self, id: &str, since_ms: u64) -> Result<RateState, StoreError>;

    /// Atomically, even across processes sharing the store: if `id` is not
    /// paused at `at_ms` and has fewer than `max` starts in the window of
    /// `window_ms` ending at `at_ms`, record a start and return `None`;
    /// otherwise record nothing and return how many ms to wait. Starts older
    /// than the window are forgotten.
    async fn rate_acquire(
        &self,
        id: &str,
        at_ms: u64,
        window_ms: u64,
        max: u32,
    ) -> Result<Option<u64>, StoreError>;

    /// Pause `id` until `until_ms` (a later pause wins).
    async fn rate_pause(&self, id: &str, until_ms: u64) -> Result<(), StoreError>;

    /// Lease run `run_id` to `host` until `until_ms`, if it is running and no
    /// other host holds a lease that is still valid at `now_ms`. True when
    /// `host` holds it now. Only the lease holder executes a run.
    async fn lease_run(
        &self,
        run_id: &str,
        host: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Lease to `host` the oldest running runs, up to `limit`, whose leases
    /// are missing or expired at `now_ms` (new runs no host took, runs of a
    /// host that stopped); their ids, oldest first. Costs the runs claimed
    /// and those executing, not the backlog.
    async fn claim_runs(
        &self,
        host: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Extend `host`'s leases on `runs` to `until_ms` (a heartbeat); returns
    /// the runs it no longer holds.
    async fn renew_leases(
        &self,
        host: &str,
        runs: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// Drop `host`'s lease on `run_id`, so another host may claim it at once.
    async fn release_run(&self, run_id: &str, host: &str) -> Result<(), StoreError>;

    /// Wait up to `timeout` for a sign that there may be runs to claim (a new
    /// run elsewhere); stores shared by several processes wake early, and
    /// keep a sign that came while nobody waited for the next wait.
    async fn wait_for_work(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }

    /// Offer one task of a run to every host sharing the store (its executing
    /// host is busy). Offering a key again replaces the offer.
    async fn task_offer(&self, offer: TaskOffer) -> Result<(), StoreError>;

    /// Claim for `host`, until `until_ms`, the oldest offer that has no result
    /// and is unclaimed or whose claim expired at `now_ms`, among offers of
    /// task types in `types` (`id@version`).
    async fn task_claim(
        &self,
        host: &str,
        types: &[String],
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Option<TaskOffer>, StoreError>;

    /// Extend `host`'s claims on `keys` to `until_ms` (a heartbeat); returns
    /// the keys it no longer holds (withdrawn, or claimed by another host
    /// after its claim expired): their execution should stop.
    async fn task_renew(
        &self,
        host: &str,
        keys: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// Record `result` for the offer `key`, if `host` still holds its claim;
    /// false otherwise (the result is dropped).
    async fn task_finish(&self, key: &str, host: &str, result: Value) -> Result<bool, StoreError>;

    /// The results recorded for any of `keys`; each is removed with its offer
    /// as it is returned.
    async fn task_results(&self, keys: &[String]) -> Result<Vec<(String, Value)>, StoreError>;

    /// Take back offer `key` if no host has claimed it yet (the offering host
    /// has a free slot again and runs the task itself): true if taken back.
    async fn task_take_back(&self, key: &str) -> Result<bool, StoreError>;

    /// Withdraw the offers `keys` (`None`: every offer of run `run_id`),
    /// claimed or not; a host executing one notices at its next heartbeat.
    async fn task_withdraw(&self, run_id: &str, keys: Option<&[String]>) -> Result<(), StoreError>;

    /// Wait up to `timeout` for a sign that an offer was made or finished;
    /// stores shared by several processes wake early.
    async fn wait_for_tasks(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }

    /// Atomically, across every process sharing the store: if fewer than
    /// `slot.max` slots of `slot.id` are held (slots whose `until_ms` passed
    /// at `now_ms` are free), hold one under `slot.token` and return true.
    async fn slot_acquire(&self, slot: SlotRequest<'_>) -> Result<bool, StoreError>;

    /// Free the slot held under `token`.
    async fn slot_release(&self, id: &str, token: &str) -> Result<(), StoreError>;

    /// Extend `host`'s slots held under `tokens` to `until_ms` (a heartbeat).
    async fn slot_renew(
        &self,
        host: &str,
        tokens: &[String],
        until_ms: u64,
    ) -> Result<(), StoreError>;
}

/// Where runs live: every concern of a store, as one object. Implemented for
/// every type that implements the eight concern traits; hold an
/// `Arc<dyn RunStore>` and bring the concern traits into scope
/// (`use weft_store::prelude::*`) to call them.
pub trait RunStore:
    RunLog
    + OutputCache
    + SavedGraphs
    + Components
    + Coordination
    + Schedules
    + Signals
    + key_values::KeyValues
{
}

impl<T> RunStore for T where
    T: RunLog
        + OutputCache
        + SavedGraphs
        + Components
        + Coordination
        + Schedules
        + Signals
        + key_values::KeyValues
{
}

/// The store traits, to call their methods on an `Arc<dyn RunStore>`.
pub mod prelude {
    pub use crate::{
        Components, Coordination, OutputCache, RunLog, RunStore, SavedGraphs, Schedules, Signals,
        key_values::KeyValues,
    };
}

/// A request for one concurrency slot ([`Coordination::slot_acquire`]).
#[derive(Debug, Clone, Copy)]
pub struct SlotRequest<'a> {
    /// The limiter and key (`queue`, unit separator, key).
    pub id: &'a str,
    /// Unique per holding; frees it.
    pub token: &'a str,
    /// The host holding it (renews it with heartbeats).
    pub host: &'a str,
    /// Slots of `id` that may be held at once.
    pub max: u32,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
    /// Held until then unless renewed.
    pub until_ms: u64,
}

/// One task of a run, offered to any host that has its task type
/// ([`Coordination::task_offer`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOffer {
    /// Unique per attempt: `run/node#attempt`.
    pub key: String,
    /// The run.
    pub run_id: String,
    /// The node.
    pub node: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The task type (`id@version`): only a host with this exact version claims it.
    pub task_type: String,
    /// The node's input.
    pub input: Value,
    /// Its wall-clock limit.
    pub timeout_ms: u64,
    /// When offered, ms since the Unix epoch (older offers are claimed first).
    pub offered_ms: u64,
    /// The run's owner: the executing host runs the task with their grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A run's lease: which host executes it, until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The host.
    pub host: String,
    /// Valid until, ms since the Unix epoch.
    pub until_ms: u64,
}

impl Lease {
    /// Whether `host` may take a run with this lease at `now_ms`.
    pub fn open_to(&self, host: &str, now_ms: u64) -> bool {
        self.host == host || self.until_ms < now_ms
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store records always serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(owner: Option<&str>, status: RunStatus, created_ms: u64) -> RunRecord {
        RunRecord {
            owner: owner.map(str::to_string),
            status,
            created_ms,
            graph_name: Some("nightly".into()),
            ..RunRecord::new("r", "g.json")
        }
    }

    #[test]
    fn a_filter_by_owner_hides_other_owners_and_unowned_runs_unless_asked() {
        let mine = RunFilter {
            owner: Some("ann".into()),
            ..RunFilter::default()
        };
        assert!(mine.matches(&run(Some("ann"), RunStatus::Running, 0)));
        assert!(!mine.matches(&run(Some("bob"), RunStatus::Running, 0)));
        assert!(!mine.matches(&run(None, RunStatus::Running, 0)));
        let with_cli = RunFilter {
            with_unowned: true,
            ..mine
        };
        assert!(with_cli.matches(&run(None, RunStatus::Running, 0)));
        assert!(!with_cli.matches(&run(Some("bob"), RunStatus::Running, 0)));
    }

    #[test]
    fn every_condition_of_a_filter_must_hold() {
        let filter = RunFilter {
            status: Some(RunStatus::Failed),
            since_ms: Some(100),
            graph: Some("nightly".into()),
            ..RunFilter::default()
        };
        assert!(filter.matches(&run(None, RunStatus::Failed, 100)));
        assert!(
            !filter.matches(&run(None, RunStatus::Failed, 99)),
            "too old"
        );
        assert!(!filter.matches(&run(None, RunStatus::Succeeded, 100)));
        let by_origin = RunFilter {
            graph: Some("g.json".into()),
            ..RunFilter::default()
        };
        assert!(
            by_origin.matches(&run(None, RunStatus::Running, 0)),
            "a file name matches too"
        );
    }
}
