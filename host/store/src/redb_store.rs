//! The embedded default [`RunStore`]: one redb file.
//!
//! Tables (keys → JSON values): `runs` (run id), `nodes` ((run id, node id)),
//! `events` ((run id, seq)), `meta` (`format_version`), and the cache, rate,
//! idempotency and saved-graph tables described at their definitions. Every write
//! is durable (fsynced) before it returns; writes made at once by many runs
//! share one fsync ([`group`]).

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod backup;
mod group;
mod key_values;
mod schedules;
mod signals;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use serde_json::Value;

use super::sharing::{Offers, Slots};
use super::{
    CachePut, Commit, Components, Coordination, Created, Durable, FORMAT_VERSION, Lease, NewRun,
    NodeRecord, OutputCache, RunFilter, RunLog, RunLogError, RunRecord, RunSpec, SavedGraph,
    SavedGraphs, SlotRequest, StoreError, StoredRun, TaskOffer, decode, encode,
};
use crate::retention::Retention;
use weft_core::cache::{CacheEntry, CacheStat};
use weft_core::clock::now_ms;
use weft_core::event::{Event, RunStatus};
use weft_core::graph::Graph;
use weft_core::rate::RateState;

const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
const SPECS: TableDefinition<&str, &[u8]> = TableDefinition::new("run_specs");
const NODES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("nodes");
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// (run, node) → the input the node was started with.
const NODE_INPUTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("node_inputs");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Cache key → entry.
const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("cache");
/// (task type, created ms, cache key) → size in bytes: the cache in age order.
const CACHE_INDEX: TableDefinition<(&str, u64, &str), u64> = TableDefinition::new("cache_index");
/// (rate limiter id, start ms) → starts at that ms.
const RATE_STARTS: TableDefinition<(&str, u64), u32> = TableDefinition::new("rate_starts");
/// Rate limiter id → paused until (ms).
const RATE_PAUSES: TableDefinition<&str, u64> = TableDefinition::new("rate_pauses");
/// Task type → number of entries.
const CACHE_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("cache_counts");
/// `owner \0 idempotency key` → run id.
const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency");
/// (graph name, version) → saved graph.
const GRAPHS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("graphs");
/// Graph name → the last version given out (kept after a delete).
const GRAPH_VERSIONS: TableDefinition<&str, u32> = TableDefinition::new("graph_versions");
/// Run id → created ms, for every run whose status is `running`.
const RUNNING: TableDefinition<&str, u64> = TableDefinition::new("running");
/// (created ms, run id) of every running run: claims take the oldest first.
const RUNNING_BY_AGE: TableDefinition<(u64, &str), ()> = TableDefinition::new("running_by_age");
/// Run id → its lease.
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
/// (created ms, run id): every run in age order, for pages of runs.
const RUNS_BY_TIME: TableDefinition<(u64, &str), ()> = TableDefinition::new("runs_by_time");
/// (status, created ms, run id) of every run that has ended, for pages of
/// runs in one state (running runs are in `running_by_age`).
const ENDED_BY_STATUS: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("ended_by_status");
/// (owner, status, created ms, run id) of every run that has ended ("" for
/// no owner), for pages of one owner's runs in one state.
const ENDED_BY_OWNER: TableDefinition<(&str, &str, u64, &str), ()> =
    TableDefinition::new("ended_by_owner");
/// Component digest → its bytes (what runs are pinned to).
const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
/// Component digest → its size in bytes: which components are kept, read
/// without reading them.
const COMPONENT_SIZES: TableDefinition<&str, u64> = TableDefinition::new("component_sizes");
/// (run id, cache key) → the entry's created ms: the cached outputs each run
/// made, deleted with the run while still the same entry.
const CACHE_MADE: TableDefinition<(&str, &str), u64> = TableDefinition::new("cache_made");
/// (component digest, run id): which runs are pinned to which components.
const COMPONENT_RUNS: TableDefinition<(&str, &str), ()> = TableDefinition::new("component_runs");
/// (owner, created ms, run id): each owner's runs in age order (`""`: no owner).
const RUNS_BY_OWNER: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("runs_by_owner");
/// Schedules: (owner, name) → JSON.
const SCHEDULES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("schedules");
/// (due ms, owner, name) of every schedule that is due at some time.
const SCHEDULES_DUE: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("schedules_due");

/// Signals: (run id, name) → JSON.
const SIGNALS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("signals");

/// Key-value entries: (scope, namespace, key) → version, expiry, value.
const KV: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("kv");
/// (scope, namespace) → (keys, bytes) of each key-value space.
const KV_USAGE: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("kv_usage");
/// (expires ms, scope, namespace, key) of every entry that expires.
const KV_EXPIRY: TableDefinition<(u64, &str, &str, &str), ()> = TableDefinition::new("kv_expiry");
/// (scope, namespace, key) → the key's expiry (8 bytes, 0: none) and the
/// vector it keeps, as little-endian `f32`s.
const KV_VECTORS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("kv_vectors");

/// Calls `$visit!(TABLE)` for every table: the one list of them, for what
/// must touch them all (creating them, copying them into a backup).
macro_rules! every_table {
    ($visit:ident) => {
        $visit!(META);
        $visit!(RUNS);
        $visit!(SPECS);
        $visit!(NODES);
        $visit!(EVENTS);
        $visit!(NODE_INPUTS);
        $visit!(CACHE);
        $visit!(CACHE_INDEX);
        $visit!(CACHE_COUNTS);
        $visit!(CACHE_MADE);
        $visit!(RATE_STARTS);
        $visit!(RATE_PAUSES);
        $visit!(IDEMPOTENCY);
        $visit!(GRAPHS);
        $visit!(GRAPH_VERSIONS);
        $visit!(RUNNING);
        $visit!(RUNNING_BY_AGE);
        $visit!(LEASES);
        $visit!(RUNS_BY_TIME);
        $visit!(ENDED_BY_STATUS);
        $visit!(ENDED_BY_OWNER);
        $visit!(RUNS_BY_OWNER);
        $visit!(COMPONENTS);
        $visit!(COMPONENT_SIZES);
        $visit!(COMPONENT_RUNS);
        $visit!(SCHEDULES);
        $visit!(SCHEDULES_DUE);
        $visit!(SIGNALS);
        $visit!(KV);
        $visit!(KV_USAGE);
        $visit!(KV_EXPIRY);
        $visit!(KV_VECTORS);
    };
}
use every_table;

/// Runs in a redb file.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    /// Every write goes through it: one fsync for many writers.
    writer: Arc<group::GroupWriter>,
    path: PathBuf,
    /// Offers and slots are not written to the file: no other process
    /// could take part in them.
    offers: Arc<Offers>,
    slots: Arc<Slots>,
    signal_feed: tokio::sync::broadcast::Sender<crate::signals::Arrival>,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::caused_by(e)
}

/// The most memory redb's page cache takes by default (redb's own default,
/// 1 GiB, lets a long-running host's memory grow with its store); see
/// `store_cache_mb` in the configuration.
pub const CACHE_BYTES: usize = 32 << 20;

impl RedbStore {
    /// Open (or create) the store at `path`. Refuses a file written by a newer
    /// format version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, CACHE_BYTES)
    }

    /// Open (or create) the store at `path`, its page cache at most
    /// `cache_bytes` (what it may take of memory beyond the host's own).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::context(format!("cannot create {}", dir.display()), e))?;
        }
        if !path.exists() {
            Self::create_atomically(path)?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                    path: path.display().to_string(),
                },
                e => StoreError::context(format!("cannot open {}", path.display()), e),
            })?;
        Self::init(db, path)
    }

    /// Create a new, initialised store file at `path` all at once: built under a
    /// temporary name and renamed into place, so a crash while creating it
    /// leaves no half-written file that would not open.
    fn create_atomically(path: &Path) -> Result<(), StoreError> {
        let tmp = path.with_extension(format!("creating-{}", std::process::id()));
        let db = Database::create(&tmp)
            .map_err(|e| StoreError::context(format!("cannot create {}", tmp.display()), e))?;
        drop(Self::init(db, &tmp)?);
        std::fs::rename(&tmp, path)
            .map_err(|e| StoreError::context(format!("cannot create {}", path.display()), e))?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            // Make the rename itself durable.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Open (or create) a store on any redb storage backend; `label` names it in
    /// errors. For fault-injection tests and embedders with their own storage.
    pub fn with_backend(
        storage: impl redb::StorageBackend,
        label: &Path,
    ) -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(storage)
            .map_err(|e| StoreError::context(format!("cannot open {}", label.display()), e))?;
        Self::init(db, label)
    }

    /// Check the format version (writing it into a new file) and create the tables.
    fn init(db: Database, path: &Path) -> Result<Self, StoreError> {
        let tx = db.begin_write().map_err(backend)?;
        {
            macro_rules! create {
                ($table:expr) => {
                    tx.open_table($table).map_err(backend)?;
                };
            }
            every_table!(create);
            let mut meta = tx.open_table(META).map_err(backend)?;
            let found = meta
                .get("format_version")
                .map_err(backend)?
                .map(|v| v.value());
            match found {
                Some(v) if v > FORMAT_VERSION => {
                    return Err(StoreError::NewerFormat {
                        path: path.display().to_string(),
                        found: v,
                        supported: FORMAT_VERSION,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("format_version", FORMAT_VERSION)
                        .map_err(backend)?;
                }
            }
            // Files from before the index of running runs (by id, then by
            // age): build it once.
            if meta.get("running_by_age").map_err(backend)?.is_none() {
                let runs = tx.open_table(RUNS).map_err(backend)?;
                for item in runs.iter().map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    let run: RunRecord = decode(k.value(), v.value())?;
                    if run.status == RunStatus::Running {
                        index_status(&tx, &run, None, Some(RunStatus::Running))?;
                    }
                }
                meta.insert("running_by_age", 1).map_err(backend)?;
            }
            // Likewise the age indexes.
            if meta.get("age_index").map_err(backend)?.is_none() {
                let runs = tx.open_table(RUNS).map_err(backend)?;
                for item in runs.iter().map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    index_run(&tx, &decode(k.value(), v.value())?)?;
                }
                meta.insert("age_index", 1).map_err(backend)?;
            }
            // Format 1 had no index of component pins.
            if found.is_some_and(|v| v < 2) {
                let specs = tx.open_table(SPECS).map_err(backend)?;
                for item in specs.iter().map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    pin_components(&tx, k.value(), &decode(k.value(), v.value())?)?;
                }
            }
            // Format 3 had no index of component sizes.
            if found.is_some_and(|v| v < 4) {
                let components = tx.open_table(COMPONENTS).map_err(backend)?;
                let mut sizes = tx.open_table(COMPONENT_SIZES).map_err(backend)?;
                for item in components.iter().map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    sizes
                        .insert(k.value(), v.value().len() as u64)
                        .map_err(backend)?;
                }
            }
            // Format 4 had no index of ended runs by status.
            if found.is_some_and(|v| v < 5) {
                let runs = tx.open_table(RUNS).map_err(backend)?;
                for item in runs.iter().map_err(backend)? {
                    let (k, v) = item.map_err(backend)?;
                    let run: RunRecord = decode(k.value(), v.value())?;
                    if run.status != RunStatus::Running {
                        index_status(&tx, &run, None, Some(run.status))?;
                    }
                }
            }
            if found.is_some_and(|v| v < FORMAT_VERSION) {
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(RedbStore {
            db: Arc::new(db),
            writer: Arc::default(),
            path: path.to_path_buf(),
            offers: Arc::default(),
            slots: Arc::default(),
            signal_feed: crate::signals::feed(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` in a write transaction on the blocking pool and commit it if
    /// it succeeds; returns once the commit is durable (group commit).
    async fn write<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.writer.write(&self.db, f).await
    }

    /// Run `f` in a read transaction on the blocking pool.
    async fn read<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.blocking(move |db| f(&db.begin_read().map_err(backend)?))
            .await
    }

    async fn blocking<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::context("store task failed", e))?
    }
}

/// The record of run `run_id`.
fn record_in(tx: &ReadTransaction, run_id: &str) -> Result<RunRecord, RunLogError> {
    let runs = tx.open_table(RUNS).map_err(backend)?;
    match runs.get(run_id).map_err(backend)? {
        Some(v) => Ok(decode(run_id, v.value())?),
        None => Err(RunLogError::UnknownRun(run_id.to_string())),
    }
}

/// Record `new` in `tx` (see [`RunLog::create_run`]).
fn create_in(tx: &WriteTransaction, new: &NewRun) -> Result<Created, RunLogError> {
    let slot = new.idempotency_slot();
    let mut index = tx.open_table(IDEMPOTENCY).map_err(backend)?;
    let mut runs = tx.open_table(RUNS).map_err(backend)?;
    let existing = match &slot {
        Some(slot) => match index.get(slot.as_str()).map_err(backend)? {
            Some(id) => match runs.get(id.value()).map_err(backend)? {
                Some(v) => Some(decode::<RunRecord>(id.value(), v.value())?),
                None => None,
            },
            None => None,
        },
        None => None,
    };
    let running = if new.needs_running_count(&existing) {
        Some(running_of(tx, &runs, &new.record.owner)?)
    } else {
        None
    };
    let created = new.admit(existing, running);
    if created != Created::New {
        return Ok(created);
    }
    let run = &new.record;
    if let Some(slot) = &slot {
        index
            .insert(slot.as_str(), run.run_id.as_str())
            .map_err(backend)?;
    }
    let mut specs = tx.open_table(SPECS).map_err(backend)?;
    specs
        .insert(run.run_id.as_str(), encode(&new.spec).as_slice())
        .map_err(backend)?;
    pin_components(tx, &run.run_id, &new.spec)?;
    runs.insert(run.run_id.as_str(), encode(run).as_slice())
        .map_err(backend)?;
    index_run(tx, run)?;
    index_status(tx, run, None, Some(run.status))?;
    if let Some(lease) = &new.lease {
        let mut leases = tx.open_table(LEASES).map_err(backend)?;
        leases
            .insert(run.run_id.as_str(), encode(lease).as_slice())
            .map_err(backend)?;
    }
    Ok(created)
}

/// Cache entries up to this size are decoded on the caller's thread.
const INLINE_DECODE_BYTES: usize = 64 << 10;

#[async_trait::async_trait]
impl RunLog for RedbStore {
    async fn create_run(&self, new: NewRun) -> Result<Created, RunLogError> {
        self.write(move |tx| create_in(tx, &new)).await
    }

    /// Without an idempotency key or a quota a new run is certain to be
    /// recorded (unless the database fails): it may start at once, its
    /// record queued for the writer, which applies every write in order,
    /// so the run's own writes land after it. Otherwise the answer waits
    /// until the record is applied (visible to this process), not for the
    /// disk.
    async fn create_run_applied(&self, new: NewRun) -> Result<(Created, Durable), RunLogError> {
        if new.is_certain() {
            let run_id = new.record.run_id.clone();
            let recorded = self.writer.queue(&self.db, move |tx| create_in(tx, &new));
            let durable = async move {
                match recorded.await {
                    Ok(Ok(Created::New)) => Ok(()),
                    // Only a key or a quota, absent here, answer otherwise.
                    Ok(Ok(_)) => Err(RunLogError::UnknownRun(run_id)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(group::stopped().into()),
                }
            };
            return Ok((Created::New, Box::pin(durable)));
        }
        let (created, synced) = self
            .writer
            .write_applied(&self.db, move |tx| create_in(tx, &new))
            .await?;
        let durable = async move {
            match synced.await {
                Ok(result) => Ok(result?),
                Err(_) => Err(group::stopped().into()),
            }
        };
        Ok((created, Box::pin(durable)))
    }

    async fn commit(&self, run_id: &str, commit: Commit) -> Result<(), RunLogError> {
        let run_id = run_id.to_string();
        self.write(move |tx| {
            let mut runs = tx.open_table(RUNS).map_err(backend)?;
            let stored = runs
                .get(run_id.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_vec());
            let Some(stored) = stored else {
                return Err(RunLogError::UnknownRun(run_id));
            };
            if let Some(status) = commit.status {
                let mut record: RunRecord = decode(&run_id, &stored)?;
                let was = std::mem::replace(&mut record.status, status);
                record.updated_ms = now_ms();
                runs.insert(run_id.as_str(), encode(&record).as_slice())
                    .map_err(backend)?;
                index_status(tx, &record, Some(was), Some(status))?;
            }
            let mut nodes = tx.open_table(NODES).map_err(backend)?;
            for node in &commit.nodes {
                nodes
                    .insert(
                        (run_id.as_str(), node.node.as_str()),
                        encode(node).as_slice(),
                    )
                    .map_err(backend)?;
            }
            let mut events = tx.open_table(EVENTS).map_err(backend)?;
            for e in &commit.events {
                events
                    .insert((run_id.as_str(), e.seq), encode(e).as_slice())
                    .map_err(backend)?;
            }
            let mut inputs = tx.open_table(NODE_INPUTS).map_err(backend)?;
            for i in &commit.inputs {
                inputs
                    .insert(
                        (run_id.as_str(), i.node.as_str()),
                        encode(&*i.input).as_slice(),
                    )
                    .map_err(backend)?;
            }
            let mut made = tx.open_table(CACHE_MADE).map_err(backend)?;
            for put in &commit.cache {
                put_cache(tx, put)?;
                made.insert((run_id.as_str(), put.key.as_str()), put.entry.created_ms)
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn run_record(&self, run_id: &str) -> Result<RunRecord, RunLogError> {
        let run_id = run_id.to_string();
        self.read(move |tx| record_in(tx, &run_id)).await
    }

    async fn load_run(&self, run_id: &str) -> Result<StoredRun, RunLogError> {
        let run_id = run_id.to_string();
        self.read(move |tx| {
            let run = record_in(tx, &run_id)?;
            let specs = tx.open_table(SPECS).map_err(backend)?;
            let spec: RunSpec = match specs.get(run_id.as_str()).map_err(backend)? {
                Some(v) => decode(&run_id, v.value())?,
                None => return Err(RunLogError::UnknownRun(run_id)),
            };
            let nodes_table = tx.open_table(NODES).map_err(backend)?;
            let mut nodes = Vec::new();
            for item in nodes_table
                .range((run_id.as_str(), "")..)
                .map_err(backend)?
            {
                let (k, v) = item.map_err(backend)?;
                let (r, n) = k.value();
                if r != run_id {
                    break;
                }
                nodes.push(decode::<NodeRecord>(&format!("{r}/{n}"), v.value())?);
            }
            let events = tx.open_table(EVENTS).map_err(backend)?;
            let last = events
                .range((run_id.as_str(), 0)..=(run_id.as_str(), u64::MAX))
                .map_err(backend)?
                .next_back()
                .transpose()
                .map_err(backend)?
                .map_or(0, |(k, _)| k.value().1);
            Ok(StoredRun {
                run,
                spec,
                nodes,
                next_seq: last + 1,
            })
        })
        .await
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>, RunLogError> {
        self.read(|tx| {
            let runs = tx.open_table(RUNS).map_err(backend)?;
            let mut all = Vec::new();
            for item in runs.iter().map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                all.push(decode::<RunRecord>(k.value(), v.value())?);
            }
            all.sort_by(|a, b| {
                b.created_ms
                    .cmp(&a.created_ms)
                    .then(b.run_id.cmp(&a.run_id))
            });
            Ok(all)
        })
        .await
    }

    /// Newest first through the narrowest index for the filter (by state,
    /// by owner, by both, or by age alone), from just older than `after`,
    /// stopping
    /// at `since_ms` or a full page: the cost follows the runs scanned, not
    /// the store's size.
    async fn runs_page(
        &self,
        filter: &RunFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError> {
        let (filter, after) = (filter.clone(), after.map(str::to_string));
        self.read(move |tx| {
            let runs = tx.open_table(RUNS).map_err(backend)?;
            // The page starts just older than `after` (an unknown id: empty).
            let start = match &after {
                None => None,
                Some(id) => match runs.get(id.as_str()).map_err(backend)? {
                    Some(v) => Some((decode::<RunRecord>(id, v.value())?.created_ms, id.as_str())),
                    None => return Ok(Vec::new()),
                },
            };
            let since = filter.since_ms.unwrap_or(0);
            let mut page = Vec::new();
            let mut consider = |id: &str| -> Result<bool, StoreError> {
                if let Some(v) = runs.get(id).map_err(backend)? {
                    let run: RunRecord = decode(id, v.value())?;
                    if filter.matches(&run) {
                        page.push(run);
                    }
                }
                Ok(page.len() >= limit)
            };
            // Newest first down an index whose keys are `(prefix.., created,
            // id)`, from just older than the page's start down to `since`,
            // until the page is full; `$id`: the id's place in the key.
            macro_rules! newest {
                ($table:expr, $id:tt $(, $prefix:expr)*) => {{
                    let index = tx.open_table($table).map_err(backend)?;
                    let range = match start {
                        Some((created, id)) => {
                            index.range(($($prefix,)* since, "")..($($prefix,)* created, id))
                        }
                        None => index.range(($($prefix,)* since, "")..=($($prefix,)* u64::MAX, LAST)),
                    }
                    .map_err(backend)?;
                    for item in range.rev() {
                        let (k, _) = item.map_err(backend)?;
                        if limit == 0 || consider(k.value().$id)? {
                            break;
                        }
                    }
                }};
            }
            // The narrowest index for the filter: running runs are few next
            // to the history (whoever owns them); ended runs in one state,
            // one owner's or anyone's; one owner's runs; all runs.
            let only = match (&filter.owner, filter.with_unowned) {
                (Some(owner), false) => Some(owner.as_str()),
                _ => None,
            };
            match (filter.status, only) {
                (Some(RunStatus::Running), _) => newest!(RUNNING_BY_AGE, 1),
                (Some(status), Some(owner)) => {
                    newest!(ENDED_BY_OWNER, 3, owner, status.as_str())
                }
                (Some(status), None) => newest!(ENDED_BY_STATUS, 2, status.as_str()),
                (None, Some(owner)) => newest!(RUNS_BY_OWNER, 2, owner),
                (None, None) => newest!(RUNS_BY_TIME, 1),
            }
            Ok(page)
        })
        .await
    }

    async fn node_input(&self, run_id: &str, node: &str) -> Result<Option<Value>, RunLogError> {
        let (run_id, node) = (run_id.to_string(), node.to_string());
        self.read(move |tx| {
            let inputs = tx.open_table(NODE_INPUTS).map_err(backend)?;
            let found = inputs
                .get((run_id.as_str(), node.as_str()))
                .map_err(backend)?;
            Ok(found
                .map(|v| decode(&format!("{run_id}/{node}"), v.value()))
                .transpose()?)
        })
        .await
    }

    async fn events(&self, run_id: &str, after: u64) -> Result<Vec<Event>, RunLogError> {
        let run_id = run_id.to_string();
        self.read(move |tx| {
            let events = tx.open_table(EVENTS).map_err(backend)?;
            let mut out = Vec::new();
            let start = after.saturating_add(1);
            for item in events
                .range((run_id.as_str(), start)..=(run_id.as_str(), u64::MAX))
                .map_err(backend)?
            {
                let (k, v) = item.map_err(backend)?;
                let (r, seq) = k.value();
                out.push(decode::<Event>(&format!("{r}#{seq}"), v.value())?);
            }
            Ok(out)
        })
        .await
    }
    async fn runs_oldest(
        &self,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError> {
        let after = after.map(|(c, id)| (c, id.to_string()));
        self.read(move |tx| {
            let index = tx.open_table(RUNS_BY_TIME).map_err(backend)?;
            let runs = tx.open_table(RUNS).map_err(backend)?;
            let range = match &after {
                Some((c, id)) => index.range((*c, id.as_str())..=(u64::MAX, LAST)),
                None => index.range((0, "")..=(u64::MAX, LAST)),
            }
            .map_err(backend)?;
            let mut page = Vec::new();
            for item in range {
                let (k, _) = item.map_err(backend)?;
                let (created, id) = k.value();
                if after
                    .as_ref()
                    .is_some_and(|(c, a)| (created, id) == (*c, a.as_str()))
                {
                    continue;
                }
                if let Some(v) = runs.get(id).map_err(backend)? {
                    page.push(decode::<RunRecord>(id, v.value())?);
                }
                if page.len() >= limit {
                    break;
                }
            }
            Ok(page)
        })
        .await
    }

    async fn delete_runs(&self, run_ids: &[String]) -> Result<usize, RunLogError> {
        let run_ids = run_ids.to_vec();
        self.write(move |tx| {
            let mut deleted = 0;
            for id in &run_ids {
                deleted += usize::from(delete_run_in(tx, id)?);
            }
            Ok(deleted)
        })
        .await
    }
}

#[async_trait::async_trait]
impl OutputCache for RedbStore {
    /// Looked up on the caller's thread: a point read from redb's page
    /// cache takes microseconds, and handing it to the blocking pool cost
    /// two thread wake-ups per node (a warm chain-1000 spent more time in
    /// those than in its reads). A large entry is decoded on the blocking
    /// pool, so a big cached output does not hold an async worker.
    async fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        let bytes = {
            let tx = self.db.begin_read().map_err(backend)?;
            let cache = tx.open_table(CACHE).map_err(backend)?;
            let Some(found) = cache.get(key).map_err(backend)? else {
                return Ok(None);
            };
            if found.value().len() <= INLINE_DECODE_BYTES {
                return decode(key, found.value()).map(Some);
            }
            found.value().to_vec()
        };
        let key = key.to_string();
        self.blocking(move |_| decode(&key, &bytes).map(Some)).await
    }

    async fn cache_stats(&self) -> Result<Vec<CacheStat>, StoreError> {
        self.read(|tx| {
            let index = tx.open_table(CACHE_INDEX).map_err(backend)?;
            let mut stats: Vec<CacheStat> = Vec::new();
            for item in index.iter().map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                let (tt, _, _) = k.value();
                match stats.last_mut() {
                    Some(s) if s.task_type == tt => {
                        s.entries += 1;
                        s.bytes += v.value();
                    }
                    _ => stats.push(CacheStat {
                        task_type: tt.to_string(),
                        entries: 1,
                        bytes: v.value(),
                    }),
                }
            }
            Ok(stats)
        })
        .await
    }

    async fn cache_clear(&self, task_type: Option<&str>) -> Result<u64, StoreError> {
        let task_type = task_type.map(str::to_string);
        self.write(move |tx| {
            let mut cache = tx.open_table(CACHE).map_err(backend)?;
            let mut index = tx.open_table(CACHE_INDEX).map_err(backend)?;
            let mut counts = tx.open_table(CACHE_COUNTS).map_err(backend)?;
            let mut doomed = Vec::new();
            for item in index.iter().map_err(backend)? {
                let (k, _) = item.map_err(backend)?;
                let (tt, created, key) = k.value();
                if task_type.as_deref().is_none_or(|want| want == tt) {
                    doomed.push((tt.to_string(), created, key.to_string()));
                }
            }
            for (tt, created, key) in &doomed {
                index
                    .remove((tt.as_str(), *created, key.as_str()))
                    .map_err(backend)?;
                cache.remove(key.as_str()).map_err(backend)?;
                counts.remove(tt.as_str()).map_err(backend)?;
            }
            Ok(doomed.len() as u64)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Components for RedbStore {
    async fn component_put(&self, digest: &str, bytes: Bytes) -> Result<(), StoreError> {
        let digest = digest.to_string();
        let key = digest.clone();
        let kept = self
            .read(move |tx| {
                let sizes = tx.open_table(COMPONENT_SIZES).map_err(backend)?;
                Ok(sizes.get(key.as_str()).map_err(backend)?.is_some())
            })
            .await?;
        if kept {
            return Ok(());
        }
        self.write(move |tx| {
            let mut table = tx.open_table(COMPONENTS).map_err(backend)?;
            let mut sizes = tx.open_table(COMPONENT_SIZES).map_err(backend)?;
            table
                .insert(digest.as_str(), bytes.as_ref())
                .map_err(backend)?;
            sizes
                .insert(digest.as_str(), bytes.len() as u64)
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn components_unused(&self) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            let sizes = tx.open_table(COMPONENT_SIZES).map_err(backend)?;
            let pins = tx.open_table(COMPONENT_RUNS).map_err(backend)?;
            let mut unused = Vec::new();
            for item in sizes.iter().map_err(backend)? {
                let (k, _) = item.map_err(backend)?;
                if !is_pinned(&pins, k.value())? {
                    unused.push(k.value().to_string());
                }
            }
            Ok(unused)
        })
        .await
    }

    async fn component_delete_unused(&self, digest: &str) -> Result<bool, StoreError> {
        let digest = digest.to_string();
        self.write(move |tx| {
            let pins = tx.open_table(COMPONENT_RUNS).map_err(backend)?;
            if is_pinned(&pins, &digest)? {
                return Ok(false);
            }
            let mut sizes = tx.open_table(COMPONENT_SIZES).map_err(backend)?;
            let mut table = tx.open_table(COMPONENTS).map_err(backend)?;
            sizes.remove(digest.as_str()).map_err(backend)?;
            Ok(table.remove(digest.as_str()).map_err(backend)?.is_some())
        })
        .await
    }

    async fn component_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let digest = digest.to_string();
        self.read(move |tx| {
            let table = tx.open_table(COMPONENTS).map_err(backend)?;
            Ok(table
                .get(digest.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }
}

#[async_trait::async_trait]
impl SavedGraphs for RedbStore {
    async fn graph_put(
        &self,
        name: &str,
        graph: Graph,
        owner: Option<String>,
        shared_with: Vec<String>,
    ) -> Result<SavedGraph, StoreError> {
        let name = name.to_string();
        self.write(move |tx| {
            let mut versions = tx.open_table(GRAPH_VERSIONS).map_err(backend)?;
            let version = versions
                .get(name.as_str())
                .map_err(backend)?
                .map_or(0, |v| v.value())
                + 1;
            versions.insert(name.as_str(), version).map_err(backend)?;
            let saved = SavedGraph {
                name: name.clone(),
                version,
                saved_ms: now_ms(),
                owner,
                shared_with,
                graph,
            };
            let mut graphs = tx.open_table(GRAPHS).map_err(backend)?;
            graphs
                .insert((name.as_str(), version), encode(&saved).as_slice())
                .map_err(backend)?;
            Ok(saved)
        })
        .await
    }

    async fn graph_get(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedGraph>, StoreError> {
        let name = name.to_string();
        self.read(move |tx| {
            let graphs = tx.open_table(GRAPHS).map_err(backend)?;
            let found = match version {
                Some(v) => graphs
                    .get((name.as_str(), v))
                    .map_err(backend)?
                    .map(|g| g.value().to_vec()),
                None => graphs
                    .range((name.as_str(), 0)..=(name.as_str(), u32::MAX))
                    .map_err(backend)?
                    .next_back()
                    .transpose()
                    .map_err(backend)?
                    .map(|(_, g)| g.value().to_vec()),
            };
            found.map(|bytes| decode(&name, &bytes)).transpose()
        })
        .await
    }

    async fn graph_list(&self) -> Result<Vec<SavedGraph>, StoreError> {
        self.read(|tx| {
            let graphs = tx.open_table(GRAPHS).map_err(backend)?;
            let mut newest: Vec<SavedGraph> = Vec::new();
            for item in graphs.iter().map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                let (name, _) = k.value();
                let saved: SavedGraph = decode(name, v.value())?;
                match newest.last_mut() {
                    Some(last) if last.name == saved.name => *last = saved,
                    _ => newest.push(saved),
                }
            }
            Ok(newest)
        })
        .await
    }

    async fn graph_delete(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |tx| {
            let mut graphs = tx.open_table(GRAPHS).map_err(backend)?;
            let mut found = false;
            graphs
                .retain_in((name.as_str(), 0)..=(name.as_str(), u32::MAX), |_, _| {
                    found = true;
                    false
                })
                .map_err(backend)?;
            Ok(found)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Coordination for RedbStore {
    async fn rate_state(&self, id: &str, since_ms: u64) -> Result<RateState, StoreError> {
        let id = id.to_string();
        self.read(move |tx| {
            let starts = tx.open_table(RATE_STARTS).map_err(backend)?;
            let pauses = tx.open_table(RATE_PAUSES).map_err(backend)?;
            read_rate(&starts, &pauses, &id, since_ms)
        })
        .await
    }

    async fn rate_acquire(
        &self,
        id: &str,
        at_ms: u64,
        window_ms: u64,
        max: u32,
    ) -> Result<Option<u64>, StoreError> {
        let id = id.to_string();
        self.write(move |tx| {
            let mut starts_table = tx.open_table(RATE_STARTS).map_err(backend)?;
            let cutoff = weft_core::rate::window_start(at_ms, window_ms);
            starts_table
                .retain_in((id.as_str(), 0)..(id.as_str(), cutoff), |_, _| false)
                .map_err(backend)?;
            let pauses = tx.open_table(RATE_PAUSES).map_err(backend)?;
            let state = read_rate(&starts_table, &pauses, &id, cutoff)?;
            let wait = weft_core::rate::wait_ms(
                &state.starts,
                state.paused_until_ms,
                at_ms,
                window_ms,
                max,
            );
            if wait.is_none() {
                let n = starts_table
                    .get((id.as_str(), at_ms))
                    .map_err(backend)?
                    .map_or(0, |v| v.value());
                starts_table
                    .insert((id.as_str(), at_ms), n + 1)
                    .map_err(backend)?;
            }
            Ok(wait)
        })
        .await
    }

    async fn rate_pause(&self, id: &str, until_ms: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |tx| {
            let mut pauses = tx.open_table(RATE_PAUSES).map_err(backend)?;
            let now = pauses
                .get(id.as_str())
                .map_err(backend)?
                .map_or(0, |v| v.value());
            pauses
                .insert(id.as_str(), now.max(until_ms))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn lease_run(
        &self,
        run_id: &str,
        host: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        let (run_id, host) = (run_id.to_string(), host.to_string());
        self.write(move |tx| {
            let running = tx.open_table(RUNNING).map_err(backend)?;
            if running.get(run_id.as_str()).map_err(backend)?.is_none() {
                return Ok(false);
            }
            let mut leases = tx.open_table(LEASES).map_err(backend)?;
            let current: Option<Lease> = match leases.get(run_id.as_str()).map_err(backend)? {
                Some(v) => Some(decode(&run_id, v.value())?),
                None => None,
            };
            if current.is_some_and(|l| !l.open_to(&host, now_ms)) {
                return Ok(false);
            }
            let lease = Lease { host, until_ms };
            leases
                .insert(run_id.as_str(), encode(&lease).as_slice())
                .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn claim_runs(
        &self,
        host: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let host = host.to_string();
        self.write(move |tx| {
            let running = tx.open_table(RUNNING_BY_AGE).map_err(backend)?;
            let mut leases = tx.open_table(LEASES).map_err(backend)?;
            let mut claimed = Vec::new();
            // Oldest first; the leased ones skipped are the runs executing
            // (at most the hosts' room), not the backlog.
            for item in running.iter().map_err(backend)? {
                if claimed.len() >= limit {
                    break;
                }
                let (k, _) = item.map_err(backend)?;
                let id = k.value().1;
                let free = match leases.get(id).map_err(backend)? {
                    Some(v) => decode::<Lease>(id, v.value())?.until_ms < now_ms,
                    None => true,
                };
                if free {
                    claimed.push(id.to_string());
                }
            }
            let lease = encode(&Lease { host, until_ms });
            for id in &claimed {
                leases
                    .insert(id.as_str(), lease.as_slice())
                    .map_err(backend)?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn renew_leases(
        &self,
        host: &str,
        runs: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let (host, runs) = (host.to_string(), runs.to_vec());
        self.write(move |tx| {
            let mut leases = tx.open_table(LEASES).map_err(backend)?;
            let mut lost = Vec::new();
            for id in runs {
                let held = match leases.get(id.as_str()).map_err(backend)? {
                    Some(v) => decode::<Lease>(&id, v.value())?.host == host,
                    None => false,
                };
                if held {
                    let lease = Lease {
                        host: host.clone(),
                        until_ms,
                    };
                    leases
                        .insert(id.as_str(), encode(&lease).as_slice())
                        .map_err(backend)?;
                } else {
                    lost.push(id);
                }
            }
            Ok(lost)
        })
        .await
    }

    async fn release_run(&self, run_id: &str, host: &str) -> Result<(), StoreError> {
        let (run_id, host) = (run_id.to_string(), host.to_string());
        self.write(move |tx| {
            let mut leases = tx.open_table(LEASES).map_err(backend)?;
            let held = match leases.get(run_id.as_str()).map_err(backend)? {
                Some(v) => decode::<Lease>(&run_id, v.value())?.host == host,
                None => false,
            };
            if held {
                leases.remove(run_id.as_str()).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn task_offer(&self, offer: TaskOffer) -> Result<(), StoreError> {
        self.offers.offer(offer)
    }

    async fn task_claim(
        &self,
        host: &str,
        types: &[String],
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Option<TaskOffer>, StoreError> {
        self.offers.claim(host, types, now_ms, until_ms)
    }

    async fn task_renew(
        &self,
        host: &str,
        keys: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.offers.renew(host, keys, until_ms)
    }

    async fn task_finish(&self, key: &str, host: &str, result: Value) -> Result<bool, StoreError> {
        self.offers.finish(key, host, result)
    }

    async fn task_results(&self, keys: &[String]) -> Result<Vec<(String, Value)>, StoreError> {
        self.offers.results(keys)
    }

    async fn task_withdraw(&self, run_id: &str, keys: Option<&[String]>) -> Result<(), StoreError> {
        self.offers.withdraw(run_id, keys)
    }

    async fn wait_for_tasks(&self, timeout: std::time::Duration) {
        self.offers.wait(timeout).await
    }

    async fn slot_acquire(&self, slot: SlotRequest<'_>) -> Result<bool, StoreError> {
        self.slots.acquire(&slot)
    }

    async fn slot_release(&self, id: &str, token: &str) -> Result<(), StoreError> {
        self.slots.release(id, token)
    }

    async fn slot_renew(
        &self,
        host: &str,
        tokens: &[String],
        until_ms: u64,
    ) -> Result<(), StoreError> {
        self.slots.renew(host, tokens, until_ms)
    }

    async fn task_take_back(&self, key: &str) -> Result<bool, StoreError> {
        self.offers.take_back(key)
    }
}

/// Greater than any run id, as the end of an index range.
const LAST: &str = "\u{10ffff}";

/// Add `run` to the age indexes.
fn index_run(tx: &WriteTransaction, run: &RunRecord) -> Result<(), StoreError> {
    let (id, created) = (run.run_id.as_str(), run.created_ms);
    let owner = run.owner.as_deref().unwrap_or("");
    tx.open_table(RUNS_BY_TIME)
        .map_err(backend)?
        .insert((created, id), ())
        .map_err(backend)?;
    tx.open_table(RUNS_BY_OWNER)
        .map_err(backend)?
        .insert((owner, created, id), ())
        .map_err(backend)?;
    Ok(())
}

/// Move `run` in the indexes by status from `from` to `to` (`None`: in
/// none, a new or deleted run): a running run is in `running` and
/// `running_by_age`, an ended one in `ended_by_status` and `ended_by_owner`.
fn index_status(
    tx: &WriteTransaction,
    run: &RunRecord,
    from: Option<RunStatus>,
    to: Option<RunStatus>,
) -> Result<(), StoreError> {
    if from != to {
        if let Some(status) = from {
            status_entry(tx, run, status, false)?;
        }
        if let Some(status) = to {
            status_entry(tx, run, status, true)?;
        }
    }
    Ok(())
}

/// Add `run` to the indexes of runs in `status`, or take it out.
fn status_entry(
    tx: &WriteTransaction,
    run: &RunRecord,
    status: RunStatus,
    add: bool,
) -> Result<(), StoreError> {
    let (id, created) = (run.run_id.as_str(), run.created_ms);
    if status == RunStatus::Running {
        let mut by_id = tx.open_table(RUNNING).map_err(backend)?;
        let mut by_age = tx.open_table(RUNNING_BY_AGE).map_err(backend)?;
        if add {
            by_id.insert(id, created).map_err(backend)?;
            by_age.insert((created, id), ()).map_err(backend)?;
        } else {
            by_id.remove(id).map_err(backend)?;
            by_age.remove((created, id)).map_err(backend)?;
        }
        return Ok(());
    }
    let (status, owner) = (status.as_str(), run.owner.as_deref().unwrap_or(""));
    let mut by_status = tx.open_table(ENDED_BY_STATUS).map_err(backend)?;
    let mut by_owner = tx.open_table(ENDED_BY_OWNER).map_err(backend)?;
    if add {
        by_status
            .insert((status, created, id), ())
            .map_err(backend)?;
        by_owner
            .insert((owner, status, created, id), ())
            .map_err(backend)?;
    } else {
        by_status.remove((status, created, id)).map_err(backend)?;
        by_owner
            .remove((owner, status, created, id))
            .map_err(backend)?;
    }
    Ok(())
}

/// How many running runs `owner` has.
fn running_of(
    tx: &WriteTransaction,
    runs: &redb::Table<&'static str, &'static [u8]>,
    owner: &Option<String>,
) -> Result<usize, StoreError> {
    let running_index = tx.open_table(RUNNING).map_err(backend)?;
    let mut running = 0;
    for item in running_index.iter().map_err(backend)? {
        let (id, _) = item.map_err(backend)?;
        if let Some(v) = runs.get(id.value()).map_err(backend)? {
            let other: RunRecord = decode(id.value(), v.value())?;
            running += usize::from(&other.owner == owner);
        }
    }
    Ok(running)
}

/// Rate limiter `id`'s starts at or after `since_ms` and its pause.
fn read_rate(
    starts: &impl ReadableTable<(&'static str, u64), u32>,
    pauses: &impl ReadableTable<&'static str, u64>,
    id: &str,
    since_ms: u64,
) -> Result<RateState, StoreError> {
    let mut times = Vec::new();
    for item in starts
        .range((id, since_ms)..=(id, u64::MAX))
        .map_err(backend)?
    {
        let (k, n) = item.map_err(backend)?;
        times.extend(std::iter::repeat_n(k.value().1, n.value() as usize));
    }
    let paused_until_ms = pauses.get(id).map_err(backend)?.map_or(0, |v| v.value());
    Ok(RateState {
        starts: times,
        paused_until_ms,
    })
}

/// Delete run `id` with everything of it in `tx`; false if there was none.
fn delete_run_in(tx: &WriteTransaction, id: &str) -> Result<bool, StoreError> {
    let record: RunRecord = {
        let mut runs = tx.open_table(RUNS).map_err(backend)?;
        let Some(v) = runs.remove(id).map_err(backend)? else {
            return Ok(false);
        };
        decode(id, v.value())?
    };
    let spec = tx
        .open_table(SPECS)
        .map_err(backend)?
        .remove(id)
        .map_err(backend)?
        .map(|v| decode::<RunSpec>(id, v.value()))
        .transpose()?;
    if let Some(spec) = spec {
        let mut pins = tx.open_table(COMPONENT_RUNS).map_err(backend)?;
        for digest in spec.components.values() {
            pins.remove((digest.as_str(), id)).map_err(backend)?;
        }
    }
    let mut nodes = tx.open_table(NODES).map_err(backend)?;
    let names: Vec<String> = nodes
        .range((id, "")..=(id, LAST))
        .map_err(backend)?
        .map(|item| item.map(|(k, _)| k.value().1.to_string()))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for name in &names {
        nodes.remove((id, name.as_str())).map_err(backend)?;
    }
    let mut inputs = tx.open_table(NODE_INPUTS).map_err(backend)?;
    let names: Vec<String> = inputs
        .range((id, "")..=(id, LAST))
        .map_err(backend)?
        .map(|item| item.map(|(k, _)| k.value().1.to_string()))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for name in &names {
        inputs.remove((id, name.as_str())).map_err(backend)?;
    }
    let mut events = tx.open_table(EVENTS).map_err(backend)?;
    let seqs: Vec<u64> = events
        .range((id, 0)..=(id, u64::MAX))
        .map_err(backend)?
        .map(|item| item.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for seq in seqs {
        events.remove((id, seq)).map_err(backend)?;
    }
    signals::delete_of_run(tx, id)?;
    if let Some(slot) = crate::admission::slot_of(&record) {
        let mut index = tx.open_table(IDEMPOTENCY).map_err(backend)?;
        index.remove(slot.as_str()).map_err(backend)?;
    }
    index_status(tx, &record, Some(record.status), None)?;
    tx.open_table(LEASES)
        .map_err(backend)?
        .remove(id)
        .map_err(backend)?;
    tx.open_table(RUNS_BY_TIME)
        .map_err(backend)?
        .remove((record.created_ms, id))
        .map_err(backend)?;
    delete_cache_made(tx, id)?;
    let owner = record.owner.as_deref().unwrap_or("");
    tx.open_table(RUNS_BY_OWNER)
        .map_err(backend)?
        .remove((owner, record.created_ms, id))
        .map_err(backend)?;
    Ok(true)
}

/// Record that run `run_id` is pinned to the components of `spec`.
fn pin_components(tx: &WriteTransaction, run_id: &str, spec: &RunSpec) -> Result<(), StoreError> {
    let mut pins = tx.open_table(COMPONENT_RUNS).map_err(backend)?;
    for digest in spec.components.values() {
        pins.insert((digest.as_str(), run_id), ())
            .map_err(backend)?;
    }
    Ok(())
}

/// Whether a stored run is pinned to component `digest`.
fn is_pinned(
    pins: &impl ReadableTable<(&'static str, &'static str), ()>,
    digest: &str,
) -> Result<bool, StoreError> {
    Ok(pins
        .range((digest, "")..=(digest, LAST))
        .map_err(backend)?
        .next()
        .is_some())
}

/// Delete the cached outputs run `run_id` made, unless another run has put
/// the same key since.
fn delete_cache_made(tx: &WriteTransaction, run_id: &str) -> Result<(), StoreError> {
    let mut made = tx.open_table(CACHE_MADE).map_err(backend)?;
    let keys: Vec<(String, u64)> = made
        .range((run_id, "")..=(run_id, LAST))
        .map_err(backend)?
        .map(|item| item.map(|(k, v)| (k.value().1.to_string(), v.value())))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for (key, created) in keys {
        made.remove((run_id, key.as_str())).map_err(backend)?;
        let entry: Option<CacheEntry> = {
            let cache = tx.open_table(CACHE).map_err(backend)?;
            let value = cache.get(key.as_str()).map_err(backend)?;
            value.map(|v| decode(&key, v.value())).transpose()?
        };
        if let Some(entry) = entry.filter(|e| e.created_ms == created) {
            remove_cache(tx, &key, &entry)?;
        }
    }
    Ok(())
}

/// Remove `entry`, cached under `key`, with its index row and count.
fn remove_cache(tx: &WriteTransaction, key: &str, entry: &CacheEntry) -> Result<(), StoreError> {
    let tt = entry.task_type.as_str();
    tx.open_table(CACHE)
        .map_err(backend)?
        .remove(key)
        .map_err(backend)?;
    tx.open_table(CACHE_INDEX)
        .map_err(backend)?
        .remove((tt, entry.created_ms, key))
        .map_err(backend)?;
    let mut counts = tx.open_table(CACHE_COUNTS).map_err(backend)?;
    let count = counts.get(tt).map_err(backend)?.map_or(0, |v| v.value());
    if count > 1 {
        counts.insert(tt, count - 1).map_err(backend)?;
    } else {
        counts.remove(tt).map_err(backend)?;
    }
    Ok(())
}

/// Store a cached output in `tx`, then apply its type's retention rule.
fn put_cache(tx: &WriteTransaction, put: &CachePut) -> Result<(), StoreError> {
    let mut cache = tx.open_table(CACHE).map_err(backend)?;
    let mut index = tx.open_table(CACHE_INDEX).map_err(backend)?;
    let mut counts = tx.open_table(CACHE_COUNTS).map_err(backend)?;
    let (key, tt) = (put.key.as_str(), put.entry.task_type.as_str());
    let old = cache.get(key).map_err(backend)?.map(|v| v.value().to_vec());
    let mut count = counts.get(tt).map_err(backend)?.map_or(0, |v| v.value());
    if let Some(old) = old {
        let old: CacheEntry = decode(key, &old)?;
        index
            .remove((old.task_type.as_str(), old.created_ms, key))
            .map_err(backend)?;
        count -= 1;
    }
    let bytes = encode(&put.entry);
    cache.insert(key, bytes.as_slice()).map_err(backend)?;
    index
        .insert((tt, put.entry.created_ms, key), bytes.len() as u64) // = entry_bytes
        .map_err(backend)?;
    count += 1;
    let excess = put
        .keep_last
        .map_or(0, |keep| Retention::keep_last(keep).excess(count));
    let mut doomed = Vec::new();
    for item in index
        .range((tt, 0, "")..)
        .map_err(backend)?
        .take(excess as usize)
    {
        let (k, _) = item.map_err(backend)?;
        let (t, created, old_key) = k.value();
        if t != tt {
            break;
        }
        doomed.push((created, old_key.to_string()));
    }
    for (created, old_key) in &doomed {
        index
            .remove((tt, *created, old_key.as_str()))
            .map_err(backend)?;
        cache.remove(old_key.as_str()).map_err(backend)?;
    }
    counts
        .insert(tt, count - doomed.len() as u64)
        .map_err(backend)?;
    Ok(())
}
