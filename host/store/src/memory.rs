//! An in-memory [`RunStore`]: for ephemeral runs and tests. Nothing survives the
//! process.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

use serde_json::Value;

use super::sharing::{Offers, Slots};
use super::{
    CachePut, Commit, Components, Coordination, Created, Lease, NewRun, NodeRecord, OutputCache,
    RunLog, RunLogError, RunRecord, RunSpec, SavedGraph, SavedGraphs, SlotRequest, StoreError,
    StoredRun, TaskOffer,
};
use crate::key_values::{
    Delete, Entry, KeyValues, KvError, Near, Nearest, Quota, Space, Usage, Write, admit,
    check_version, listed, size_of, vector_size,
};
use crate::retention::{Retention, entry_bytes};
use crate::schedules::{Fired, Schedule, Schedules};
use crate::signals::{Signal, Signals};
use weft_core::cache::{CacheEntry, CacheStat};
use weft_core::clock::now_ms;
use weft_core::event::{Event, EventKind, NodeStatus, RunStatus};
use weft_core::graph::Graph;
use weft_core::rate::RateState;

#[derive(Default)]
struct Runs {
    rate_starts: BTreeMap<(String, u64), u32>,
    rate_pauses: BTreeMap<String, u64>,
    cache: BTreeMap<String, CacheEntry>,
    /// (task type, created, key) → size: the cache in age order per type.
    cache_index: BTreeMap<(String, u64, String), u64>,
    /// Task type → its entries in the cache.
    cache_counts: BTreeMap<String, u64>,
    /// (run, key) → created: the entries each run made (deleted with it if
    /// still the same entry).
    cache_made: BTreeMap<(String, String), u64>,
    runs: BTreeMap<String, RunRecord>,
    /// (created, run id) of every run: the runs oldest first.
    by_age: BTreeSet<(u64, String)>,
    /// Each run's graph, node states, inputs and events.
    data: BTreeMap<String, RunData>,
    idempotency: BTreeMap<String, String>,
    graphs: BTreeMap<(String, u32), SavedGraph>,
    graph_versions: BTreeMap<String, u32>,
    leases: BTreeMap<String, Lease>,
    components: BTreeMap<String, Bytes>,
    /// (digest, run): which runs are pinned to which components.
    component_runs: BTreeSet<(String, String)>,
    /// Schedules by (owner, name), and (due, owner, name) of those due.
    schedules: BTreeMap<(String, String), Schedule>,
    schedules_due: BTreeSet<(u64, String, String)>,
    /// Signals by (run, name).
    signals: BTreeMap<(String, String), Signal>,
    kv: Kv,
}

/// What is kept of one run besides its record, under its id once (a
/// 100,000-node run has ~700,000 events: no run id in each).
struct RunData {
    spec: KeptSpec,
    nodes: BTreeMap<String, KeptNode>,
    /// Node → the input it was started with, as JSON text.
    inputs: BTreeMap<String, Box<str>>,
    /// Its events.
    events: EventLog,
}

/// A node's state as kept, under its id: its output as JSON text (a
/// parsed `{"value": 1}` takes ~150 bytes, its text 11; a 100,000-node run
/// keeps 100,000), parsed again when the run is loaded.
struct KeptNode {
    status: NodeStatus,
    attempt: u32,
    output: Option<Box<str>>,
    error: Option<Box<str>>,
    retry_at_ms: Option<u64>,
    wait_until_ms: Option<u64>,
}

impl KeptNode {
    /// `record` as kept, and its node's id.
    fn new(record: NodeRecord) -> (String, KeptNode) {
        let kept = KeptNode {
            status: record.status,
            attempt: record.attempt,
            output: record.output.as_ref().map(json_text),
            error: record.error.map(String::into_boxed_str),
            retry_at_ms: record.retry_at_ms,
            wait_until_ms: record.wait_until_ms,
        };
        (record.node, kept)
    }

    /// The record of node `node`.
    fn record(&self, node: &str) -> Result<NodeRecord, StoreError> {
        let output = match &self.output {
            Some(text) => Some(parse_kept(text, "a node's output")?),
            None => None,
        };
        Ok(NodeRecord {
            node: node.to_string(),
            status: self.status,
            attempt: self.attempt,
            output,
            error: self.error.as_deref().map(str::to_string),
            retry_at_ms: self.retry_at_ms,
            wait_until_ms: self.wait_until_ms,
        })
    }
}

/// `value` as compact JSON text.
fn json_text(value: &Value) -> Box<str> {
    let mut text = Vec::with_capacity(32);
    // Writing a `Value` into memory cannot fail (its keys are strings).
    let _ = serde_json::to_writer(&mut text, value);
    String::from_utf8(text).unwrap_or_default().into_boxed_str()
}

/// JSON text this store kept (`what`), parsed.
fn parse_kept(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::backend(format!("{what} kept as JSON: {e}")))
}

/// A run's spec as kept: its graph as JSON text, a fraction of the parsed
/// graph's size (a 100,000-node graph: ~10 MB of text, ~45 MB parsed),
/// parsed again when the run is loaded (to resume it, not while it runs).
struct KeptSpec {
    graph: Box<str>,
    origin: String,
    input: Value,
    components: BTreeMap<String, String>,
}

impl KeptSpec {
    /// The text of `spec`'s graph, to make a [`KeptSpec`] of it with.
    fn graph_text(spec: &RunSpec) -> Result<Box<str>, StoreError> {
        serde_json::to_string(&spec.graph)
            .map(String::into_boxed_str)
            .map_err(|e| StoreError::backend(format!("the run's graph as JSON: {e}")))
    }

    fn new(spec: RunSpec, graph: Box<str>) -> Self {
        KeptSpec {
            graph,
            origin: spec.origin,
            input: spec.input,
            components: spec.components,
        }
    }

    fn spec(&self) -> Result<RunSpec, StoreError> {
        let graph = serde_json::from_str(&self.graph)
            .map_err(|e| StoreError::backend(format!("the run's graph kept as JSON: {e}")))?;
        Ok(RunSpec {
            graph,
            origin: self.origin.clone(),
            input: self.input.clone(),
            components: self.components.clone(),
        })
    }
}

/// A run's events in `seq` order, in chunks of up to [`EventLog::CHUNK`]:
/// no map node per event (a sequentially filled `BTreeMap` leaves its nodes
/// half full), and the log grows without copying itself.
#[derive(Default)]
struct EventLog {
    chunks: Vec<Vec<(u64, Logged)>>,
}

impl EventLog {
    const CHUNK: usize = 512;

    /// The last event's `seq` (0: none).
    fn last_seq(&self) -> u64 {
        self.chunks
            .last()
            .and_then(|c| c.last())
            .map_or(0, |(seq, _)| *seq)
    }

    /// Keep event `seq`, replacing one kept under the same number.
    fn put(&mut self, seq: u64, logged: Logged) {
        if seq > self.last_seq() {
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < Self::CHUNK => chunk.push((seq, logged)),
                // The first chunk grows as events come (most runs are small).
                last => {
                    let mut chunk = match last {
                        None => Vec::new(),
                        Some(_) => Vec::with_capacity(Self::CHUNK),
                    };
                    chunk.push((seq, logged));
                    self.chunks.push(chunk);
                }
            }
            return;
        }
        // Numbered before the last (the runner numbers events in order; kept
        // correct anyway): in place, in the first chunk reaching `seq`.
        let i = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|(s, _)| *s < seq))
            .min(self.chunks.len() - 1);
        let chunk = &mut self.chunks[i];
        match chunk.binary_search_by_key(&seq, |(s, _)| *s) {
            Ok(j) => chunk[j].1 = logged,
            Err(j) => chunk.insert(j, (seq, logged)),
        }
    }

    /// The events numbered after `after`, in order.
    fn after(&self, after: u64) -> impl Iterator<Item = &(u64, Logged)> {
        let first = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|(s, _)| *s <= after));
        self.chunks[first..]
            .iter()
            .flatten()
            .skip_while(move |(seq, _)| *seq <= after)
    }
}

/// An event as kept: its run and `seq` are the keys it is kept under.
struct Logged {
    time_ms: u64,
    kind: EventKind,
}

impl RunData {
    /// The events after `after`, as events of run `run_id`.
    fn events_after(&self, run_id: &str, after: u64) -> Vec<Event> {
        let run_id: std::sync::Arc<str> = run_id.into();
        self.events
            .after(after)
            .map(|(seq, l)| Event {
                run_id: run_id.clone(),
                seq: *seq,
                time_ms: l.time_ms,
                kind: l.kind.clone(),
            })
            .collect()
    }
}

impl Runs {
    /// Put `schedule` in place of the one of its owner and name, if any.
    fn place_schedule(&mut self, schedule: Schedule) {
        let key = (schedule.owner.clone(), schedule.name.clone());
        self.remove_schedule(&key);
        if let Some(due) = schedule.due_ms() {
            self.schedules_due
                .insert((due, key.0.clone(), key.1.clone()));
        }
        self.schedules.insert(key, schedule);
    }

    fn remove_schedule(&mut self, key: &(String, String)) -> Option<Schedule> {
        let old = self.schedules.remove(key)?;
        if let Some(due) = old.due_ms() {
            self.schedules_due
                .remove(&(due, key.0.clone(), key.1.clone()));
        }
        Some(old)
    }
}

/// Runs kept in memory.
pub struct MemoryStore {
    inner: Mutex<Runs>,
    offers: Offers,
    slots: Slots,
    signal_feed: tokio::sync::broadcast::Sender<crate::signals::Arrival>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            inner: Mutex::default(),
            offers: Offers::default(),
            slots: Slots::default(),
            signal_feed: crate::signals::feed(),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl RunLog for MemoryStore {
    async fn create_run(&self, new: NewRun) -> Result<Created, RunLogError> {
        // Outside the lock: a large graph takes a while to write out.
        let graph = KeptSpec::graph_text(&new.spec)?;
        let mut runs = self.lock();
        let slot = new.idempotency_slot();
        let existing = slot
            .as_ref()
            .and_then(|slot| runs.idempotency.get(slot))
            .and_then(|id| runs.runs.get(id))
            .cloned();
        let running = new.needs_running_count(&existing).then(|| {
            let owner = &new.record.owner;
            let running = |r: &&RunRecord| r.status == RunStatus::Running && &r.owner == owner;
            runs.runs.values().filter(running).count()
        });
        let created = new.admit(existing, running);
        if created == Created::New {
            let NewRun {
                record,
                spec,
                lease,
                ..
            } = new;
            let id = record.run_id.clone();
            if let Some(slot) = slot {
                runs.idempotency.insert(slot, id.clone());
            }
            if let Some(lease) = lease {
                runs.leases.insert(id.clone(), lease);
            }
            for digest in spec.components.values() {
                runs.component_runs.insert((digest.clone(), id.clone()));
            }
            let data = RunData {
                spec: KeptSpec::new(spec, graph),
                nodes: BTreeMap::new(),
                inputs: BTreeMap::new(),
                events: EventLog::default(),
            };
            runs.data.insert(id.clone(), data);
            runs.by_age.insert((record.created_ms, id.clone()));
            runs.runs.insert(id, record);
        }
        Ok(created)
    }

    async fn commit(&self, run_id: &str, commit: Commit) -> Result<(), RunLogError> {
        // Written out before the lock is taken.
        let nodes: Vec<(String, KeptNode)> = commit.nodes.into_iter().map(KeptNode::new).collect();
        let inputs: Vec<(String, Box<str>)> = commit
            .inputs
            .into_iter()
            .map(|i| (i.node, json_text(&i.input)))
            .collect();
        let mut runs = self.lock();
        let runs = &mut *runs;
        let run = runs
            .runs
            .get_mut(run_id)
            .ok_or_else(|| RunLogError::UnknownRun(run_id.to_string()))?;
        if let Some(status) = commit.status {
            run.status = status;
            run.updated_ms = now_ms();
        }
        let data = runs
            .data
            .get_mut(run_id)
            .ok_or_else(|| RunLogError::UnknownRun(run_id.to_string()))?;
        data.nodes.extend(nodes);
        for e in commit.events {
            let (time_ms, kind) = (e.time_ms, e.kind);
            data.events.put(e.seq, Logged { time_ms, kind });
        }
        data.inputs.extend(inputs);
        for put in commit.cache {
            runs.cache_made
                .insert((run_id.to_string(), put.key.clone()), put.entry.created_ms);
            put_cache(runs, put);
        }
        Ok(())
    }

    async fn load_run(&self, run_id: &str) -> Result<StoredRun, RunLogError> {
        let runs = self.lock();
        let run = runs
            .runs
            .get(run_id)
            .cloned()
            .ok_or_else(|| RunLogError::UnknownRun(run_id.to_string()))?;
        let data = runs
            .data
            .get(run_id)
            .ok_or_else(|| RunLogError::UnknownRun(run_id.to_string()))?;
        let spec = data.spec.spec()?;
        let nodes = data
            .nodes
            .iter()
            .map(|(id, kept)| kept.record(id))
            .collect::<Result<_, _>>()?;
        let last = data.events.last_seq();
        Ok(StoredRun {
            run,
            spec,
            nodes,
            next_seq: last + 1,
        })
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>, RunLogError> {
        let mut all: Vec<RunRecord> = self.lock().runs.values().cloned().collect();
        all.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then(b.run_id.cmp(&a.run_id))
        });
        Ok(all)
    }

    async fn node_input(&self, run_id: &str, node: &str) -> Result<Option<Value>, RunLogError> {
        let runs = self.lock();
        let input = runs.data.get(run_id).and_then(|d| d.inputs.get(node));
        Ok(input
            .map(|text| parse_kept(text, "a node's input"))
            .transpose()?)
    }

    async fn events(&self, run_id: &str, after: u64) -> Result<Vec<Event>, RunLogError> {
        let runs = self.lock();
        let data = runs.data.get(run_id);
        Ok(data.map_or_else(Vec::new, |d| d.events_after(run_id, after)))
    }
    async fn runs_oldest(
        &self,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError> {
        let runs = self.lock();
        let from = match after {
            Some((created, id)) => Bound::Excluded((created, id.to_string())),
            None => Bound::Unbounded,
        };
        Ok(runs
            .by_age
            .range((from, Bound::Unbounded))
            .filter_map(|(_, id)| runs.runs.get(id).cloned())
            .take(limit)
            .collect())
    }

    async fn delete_runs(&self, run_ids: &[String]) -> Result<usize, RunLogError> {
        let mut runs = self.lock();
        Ok(run_ids.iter().filter(|id| runs.delete(id)).count())
    }
}

#[async_trait::async_trait]
impl OutputCache for MemoryStore {
    async fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        Ok(self.lock().cache.get(key).cloned())
    }

    async fn cache_stats(&self) -> Result<Vec<CacheStat>, StoreError> {
        let mut stats: BTreeMap<String, CacheStat> = BTreeMap::new();
        for ((tt, _, _), size) in &self.lock().cache_index {
            let s = stats.entry(tt.clone()).or_insert_with(|| CacheStat {
                task_type: tt.clone(),
                entries: 0,
                bytes: 0,
            });
            s.entries += 1;
            s.bytes += size;
        }
        Ok(stats.into_values().collect())
    }

    async fn cache_clear(&self, task_type: Option<&str>) -> Result<u64, StoreError> {
        let mut runs = self.lock();
        let doomed: Vec<(String, u64, String)> = runs
            .cache_index
            .keys()
            .filter(|(t, _, _)| task_type.is_none_or(|want| t == want))
            .cloned()
            .collect();
        for (_, _, key) in &doomed {
            runs.cache_remove(key);
        }
        Ok(doomed.len() as u64)
    }
}

#[async_trait::async_trait]
impl Components for MemoryStore {
    async fn component_put(&self, digest: &str, bytes: Bytes) -> Result<(), StoreError> {
        let mut runs = self.lock();
        if !runs.components.contains_key(digest) {
            runs.components.insert(digest.to_string(), bytes);
        }
        Ok(())
    }

    async fn components_unused(&self) -> Result<Vec<String>, StoreError> {
        let runs = self.lock();
        Ok(runs
            .components
            .keys()
            .filter(|d| !runs.is_pinned(d))
            .cloned()
            .collect())
    }

    async fn component_delete_unused(&self, digest: &str) -> Result<bool, StoreError> {
        let mut runs = self.lock();
        Ok(!runs.is_pinned(digest) && runs.components.remove(digest).is_some())
    }

    async fn component_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().components.get(digest).map(|b| b.to_vec()))
    }
}

#[async_trait::async_trait]
impl SavedGraphs for MemoryStore {
    async fn graph_put(
        &self,
        name: &str,
        graph: Graph,
        owner: Option<String>,
        shared_with: Vec<String>,
    ) -> Result<SavedGraph, StoreError> {
        let mut runs = self.lock();
        let version = runs.graph_versions.get(name).copied().unwrap_or(0) + 1;
        let saved = SavedGraph {
            name: name.to_string(),
            version,
            saved_ms: now_ms(),
            owner,
            shared_with,
            graph,
        };
        runs.graph_versions.insert(name.to_string(), version);
        runs.graphs
            .insert((name.to_string(), version), saved.clone());
        Ok(saved)
    }

    async fn graph_get(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedGraph>, StoreError> {
        let runs = self.lock();
        let mut of_name = runs
            .graphs
            .range((name.to_string(), 0)..=(name.to_string(), u32::MAX))
            .map(|(_, g)| g);
        Ok(match version {
            Some(v) => of_name.find(|g| g.version == v).cloned(),
            None => of_name.next_back().cloned(),
        })
    }

    async fn graph_list(&self) -> Result<Vec<SavedGraph>, StoreError> {
        let runs = self.lock();
        let mut newest: BTreeMap<&str, &SavedGraph> = BTreeMap::new();
        for ((name, _), g) in &runs.graphs {
            newest.insert(name, g);
        }
        Ok(newest.into_values().cloned().collect())
    }

    async fn graph_delete(&self, name: &str) -> Result<bool, StoreError> {
        let mut runs = self.lock();
        let doomed: Vec<(String, u32)> = runs
            .graphs
            .range((name.to_string(), 0)..=(name.to_string(), u32::MAX))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            runs.graphs.remove(k);
        }
        Ok(!doomed.is_empty())
    }
}

#[async_trait::async_trait]
impl Coordination for MemoryStore {
    async fn rate_state(&self, id: &str, since_ms: u64) -> Result<RateState, StoreError> {
        let runs = self.lock();
        let starts = runs
            .rate_starts
            .range((id.to_string(), since_ms)..=(id.to_string(), u64::MAX))
            .flat_map(|((_, at), n)| std::iter::repeat_n(*at, *n as usize))
            .collect();
        let paused_until_ms = runs.rate_pauses.get(id).copied().unwrap_or(0);
        Ok(RateState {
            starts,
            paused_until_ms,
        })
    }

    async fn rate_acquire(
        &self,
        id: &str,
        at_ms: u64,
        window_ms: u64,
        max: u32,
    ) -> Result<Option<u64>, StoreError> {
        let mut runs = self.lock();
        let cutoff = weft_core::rate::window_start(at_ms, window_ms);
        let old: Vec<(String, u64)> = runs
            .rate_starts
            .range((id.to_string(), 0)..(id.to_string(), cutoff))
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            runs.rate_starts.remove(&k);
        }
        let starts: Vec<u64> = runs
            .rate_starts
            .range((id.to_string(), cutoff)..=(id.to_string(), u64::MAX))
            .flat_map(|((_, at), n)| std::iter::repeat_n(*at, *n as usize))
            .collect();
        let paused = runs.rate_pauses.get(id).copied().unwrap_or(0);
        let wait = weft_core::rate::wait_ms(&starts, paused, at_ms, window_ms, max);
        if wait.is_none() {
            *runs.rate_starts.entry((id.to_string(), at_ms)).or_default() += 1;
        }
        Ok(wait)
    }

    async fn rate_pause(&self, id: &str, until_ms: u64) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let p = runs.rate_pauses.entry(id.to_string()).or_default();
        *p = (*p).max(until_ms);
        Ok(())
    }

    async fn lease_run(
        &self,
        run_id: &str,
        host: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut runs = self.lock();
        let running = runs
            .runs
            .get(run_id)
            .is_some_and(|r| r.status == RunStatus::Running);
        let open = runs
            .leases
            .get(run_id)
            .is_none_or(|l| l.open_to(host, now_ms));
        if running && open {
            runs.leases.insert(
                run_id.to_string(),
                Lease {
                    host: host.to_string(),
                    until_ms,
                },
            );
        }
        Ok(running && open)
    }

    async fn claim_runs(
        &self,
        host: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut runs = self.lock();
        let mut candidates: Vec<&RunRecord> = runs
            .runs
            .values()
            .filter(|r| r.status == RunStatus::Running)
            .filter(|r| {
                runs.leases
                    .get(&r.run_id)
                    .is_none_or(|l| l.until_ms < now_ms)
            })
            .collect();
        candidates.sort_by(|a, b| (a.created_ms, &a.run_id).cmp(&(b.created_ms, &b.run_id)));
        let claimed: Vec<String> = candidates
            .into_iter()
            .take(limit)
            .map(|r| r.run_id.clone())
            .collect();
        for id in &claimed {
            let lease = Lease {
                host: host.to_string(),
                until_ms,
            };
            runs.leases.insert(id.clone(), lease);
        }
        Ok(claimed)
    }

    async fn renew_leases(
        &self,
        host: &str,
        run_ids: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut runs = self.lock();
        let mut lost = Vec::new();
        for id in run_ids {
            match runs.leases.get_mut(id) {
                Some(l) if l.host == host => l.until_ms = until_ms,
                _ => lost.push(id.clone()),
            }
        }
        Ok(lost)
    }

    async fn release_run(&self, run_id: &str, host: &str) -> Result<(), StoreError> {
        let mut runs = self.lock();
        if runs.leases.get(run_id).is_some_and(|l| l.host == host) {
            runs.leases.remove(run_id);
        }
        Ok(())
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

impl Runs {
    /// Remove the cache entry under `key`, if any.
    fn cache_remove(&mut self, key: &str) {
        if let Some(old) = self.cache.remove(key) {
            self.cache_index
                .remove(&(old.task_type.clone(), old.created_ms, key.to_string()));
            if let Some(n) = self.cache_counts.get_mut(&old.task_type) {
                *n -= 1;
                if *n == 0 {
                    self.cache_counts.remove(&old.task_type);
                }
            }
        }
    }

    /// Delete run `run_id` with everything of it; false if there was none.
    fn delete(&mut self, run_id: &str) -> bool {
        let runs = self;
        let Some(record) = runs.runs.remove(run_id) else {
            return false;
        };
        runs.by_age.remove(&(record.created_ms, run_id.to_string()));
        let made: Vec<_> = runs
            .cache_made
            .range((run_id.to_string(), String::new())..)
            .take_while(|((r, _), _)| r == run_id)
            .map(|((r, key), created)| ((r.clone(), key.clone()), *created))
            .collect();
        for (made_key, created) in made {
            runs.cache_made.remove(&made_key);
            // Unless another run has put the same key since.
            if runs
                .cache
                .get(&made_key.1)
                .is_some_and(|e| e.created_ms == created)
            {
                runs.cache_remove(&made_key.1);
            }
        }
        let id = run_id.to_string();
        if let Some(data) = runs.data.remove(run_id) {
            for digest in data.spec.components.into_values() {
                runs.component_runs.remove(&(digest, run_id.to_string()));
            }
        }
        let signals: Vec<_> = runs
            .signals
            .range((id.clone(), String::new())..)
            .take_while(|((r, _), _)| *r == id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in signals {
            runs.signals.remove(&k);
        }
        if let Some(slot) = crate::admission::slot_of(&record) {
            runs.idempotency.remove(&slot);
        }
        runs.leases.remove(run_id);
        true
    }

    /// Whether a stored run is pinned to component `digest`.
    fn is_pinned(&self, digest: &str) -> bool {
        self.component_runs
            .range((digest.to_string(), String::new())..)
            .next()
            .is_some_and(|(d, _)| d == digest)
    }
}

/// Store a cached output, then apply its type's retention rule.
fn put_cache(runs: &mut Runs, put: CachePut) {
    let CachePut {
        key,
        entry,
        keep_last,
    } = put;
    let tt = entry.task_type.clone();
    runs.cache_remove(&key);
    runs.cache_index.insert(
        (tt.clone(), entry.created_ms, key.clone()),
        entry_bytes(&entry),
    );
    runs.cache.insert(key, entry);
    let entries = runs.cache_counts.entry(tt.clone()).or_default();
    *entries += 1;
    let Some(keep) = keep_last else { return };
    let excess = Retention::keep_last(keep).excess(*entries) as usize;
    let doomed: Vec<String> = runs
        .cache_index
        .range((tt.clone(), 0, String::new())..)
        .take_while(|((t, _, _), _)| *t == tt)
        .take(excess)
        .map(|((_, _, key), _)| key.clone())
        .collect();
    for key in doomed {
        runs.cache_remove(&key);
    }
}

#[async_trait::async_trait]
impl Signals for MemoryStore {
    async fn signal_put(
        &self,
        run_id: &str,
        name: &str,
        signal: &Signal,
    ) -> Result<bool, RunLogError> {
        let mut runs = self.lock();
        if !runs.runs.contains_key(run_id) {
            return Err(RunLogError::UnknownRun(run_id.to_string()));
        }
        let key = (run_id.to_string(), name.to_string());
        if runs.signals.contains_key(&key) {
            return Ok(false);
        }
        runs.signals.insert(key, signal.clone());
        drop(runs);
        let _ = self
            .signal_feed
            .send(crate::signals::Arrival::new(run_id, name));
        Ok(true)
    }

    async fn signal_get(&self, run_id: &str, name: &str) -> Result<Option<Signal>, StoreError> {
        let key = (run_id.to_string(), name.to_string());
        Ok(self.lock().signals.get(&key).cloned())
    }

    fn signal_feed(&self) -> tokio::sync::broadcast::Receiver<crate::signals::Arrival> {
        self.signal_feed.subscribe()
    }
}

#[async_trait::async_trait]
impl Schedules for MemoryStore {
    async fn schedule_put(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.lock().place_schedule(schedule.clone());
        Ok(())
    }

    async fn schedule_get(&self, owner: &str, name: &str) -> Result<Option<Schedule>, StoreError> {
        let key = (owner.to_string(), name.to_string());
        Ok(self.lock().schedules.get(&key).cloned())
    }

    async fn schedule_list(&self, owner: &str) -> Result<Vec<Schedule>, StoreError> {
        let runs = self.lock();
        let from = (owner.to_string(), String::new());
        Ok(runs
            .schedules
            .range(from..)
            .take_while(|((o, _), _)| o == owner)
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn schedule_delete(&self, owner: &str, name: &str) -> Result<bool, StoreError> {
        let key = (owner.to_string(), name.to_string());
        Ok(self.lock().remove_schedule(&key).is_some())
    }

    async fn schedules_due(&self, now_ms: u64, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        let runs = self.lock();
        Ok(runs
            .schedules_due
            .iter()
            .take_while(|(due, _, _)| *due <= now_ms)
            .take(limit)
            .filter_map(|(_, o, n)| runs.schedules.get(&(o.clone(), n.clone())).cloned())
            .collect())
    }

    async fn schedule_advance(
        &self,
        owner: &str,
        name: &str,
        from_ms: u64,
        to_ms: Option<u64>,
        last: Fired,
    ) -> Result<bool, StoreError> {
        let mut runs = self.lock();
        let key = (owner.to_string(), name.to_string());
        let Some(mut schedule) = runs.schedules.get(&key).cloned() else {
            return Ok(false);
        };
        if schedule.due_ms() != Some(from_ms) {
            return Ok(false);
        }
        schedule.next_ms = to_ms;
        schedule.last = Some(last);
        runs.place_schedule(schedule);
        Ok(true)
    }
}

/// Key-value spaces in memory.
#[derive(Default)]
pub(crate) struct Kv {
    entries: BTreeMap<(Space, String), Entry>,
    /// The vectors keys keep beside their values, with the keys' expiry
    /// (a search reads this map alone).
    vectors: BTreeMap<(Space, String), (Option<u64>, Vec<f32>)>,
    usage: BTreeMap<Space, Usage>,
    /// (expires, space, key) of every entry that expires.
    expiry: BTreeSet<(u64, Space, String)>,
    last_version: u64,
}

impl Kv {
    /// The bytes `key`'s entry counts for, if it is there.
    fn size(&self, space: &Space, key: &str) -> Option<u64> {
        let at = (space.clone(), key.to_string());
        let entry = self.entries.get(&at)?;
        let dims = self.vectors.get(&at).map_or(0, |(_, v)| v.len());
        Some(size_of(key, &entry.value) + vector_size(dims))
    }

    fn remove(&mut self, space: &Space, key: &str) -> Option<Entry> {
        let size = self.size(space, key)?;
        let at = (space.clone(), key.to_string());
        let old = self.entries.remove(&at)?;
        self.vectors.remove(&at);
        if let Some(t) = old.expires_ms {
            self.expiry.remove(&(t, space.clone(), key.to_string()));
        }
        let usage = self.usage.entry(space.clone()).or_default();
        usage.keys = usage.keys.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(size);
        if usage.keys == 0 {
            self.usage.remove(space);
        }
        Some(old)
    }

    fn insert(&mut self, space: &Space, write: &Write) -> u64 {
        let key = write.key.as_str();
        self.remove(space, key);
        self.last_version += 1;
        let usage = self.usage.entry(space.clone()).or_default();
        usage.keys += 1;
        usage.bytes += write.size();
        if let Some(t) = write.expires_ms {
            self.expiry.insert((t, space.clone(), key.to_string()));
        }
        let entry = Entry {
            value: write.value.clone(),
            version: self.last_version,
            expires_ms: write.expires_ms,
        };
        self.entries.insert((space.clone(), key.to_string()), entry);
        if let Some(v) = &write.vector {
            let kept = (write.expires_ms, v.clone());
            self.vectors.insert((space.clone(), key.to_string()), kept);
        }
        self.last_version
    }

    fn live(&self, space: &Space, key: &str, now_ms: u64) -> Option<&Entry> {
        self.entries
            .get(&(space.clone(), key.to_string()))
            .filter(|e| e.live(now_ms))
    }
}

#[async_trait::async_trait]
impl KeyValues for MemoryStore {
    async fn kv_get(
        &self,
        space: &Space,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let runs = self.lock();
        Ok(keys
            .iter()
            .map(|k| runs.kv.live(space, k, now_ms).cloned())
            .collect())
    }

    async fn kv_set(
        &self,
        space: &Space,
        writes: &[Write],
        quota: Quota,
        now_ms: u64,
    ) -> Result<Vec<u64>, KvError> {
        let mut runs = self.lock();
        let kv = &mut runs.kv;
        let before = kv.usage.get(space).copied().unwrap_or_default();
        let mut after = before;
        for w in writes {
            let stored = kv.entries.get(&(space.clone(), w.key.clone()));
            let current = stored.filter(|e| e.live(now_ms)).map(|e| e.version);
            check_version(&w.key, current, w.if_version)?;
            match kv.size(space, &w.key) {
                Some(old) => after.bytes = after.bytes.saturating_sub(old),
                None => after.keys += 1,
            }
            after.bytes += w.size();
        }
        admit(space, before, after, quota)?;
        Ok(writes.iter().map(|w| kv.insert(space, w)).collect())
    }

    async fn kv_delete(
        &self,
        space: &Space,
        deletes: &[Delete],
        now_ms: u64,
    ) -> Result<Vec<bool>, KvError> {
        let mut runs = self.lock();
        // Check every condition before deleting anything: all or nothing.
        let mut seen = std::collections::HashSet::new();
        for d in deletes {
            let current = runs.kv.live(space, &d.key, now_ms).map(|e| e.version);
            let current = current.filter(|_| seen.insert(d.key.as_str()));
            check_version(&d.key, current, d.if_version)?;
        }
        Ok(deletes
            .iter()
            .map(|d| {
                runs.kv
                    .remove(space, &d.key)
                    .is_some_and(|e| e.live(now_ms))
            })
            .collect())
    }

    async fn kv_list(
        &self,
        space: &Space,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let runs = self.lock();
        // Keys with the prefix are together, from the prefix on.
        let start = after.filter(|a| *a > prefix).unwrap_or(prefix);
        Ok(runs
            .kv
            .entries
            .range((space.clone(), start.to_string())..)
            .take_while(|((s, k), _)| s == space && k.starts_with(prefix))
            .filter(|((_, k), e)| listed(k, prefix, after) && e.live(now_ms))
            .take(limit)
            .map(|((_, k), _)| k.clone())
            .collect())
    }

    async fn kv_nearest(
        &self,
        space: &Space,
        prefix: &str,
        query: &[f32],
        skip: usize,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Near>, StoreError> {
        let runs = self.lock();
        let mut nearest = Nearest::new(query, skip, limit);
        let start = (space.clone(), prefix.to_string());
        let under = runs
            .kv
            .vectors
            .range(start..)
            .take_while(|((s, k), _)| s == space && k.starts_with(prefix));
        for ((_, key), (expires, v)) in under {
            if expires.is_none_or(|t| t > now_ms) {
                nearest.offer(key, v);
            }
        }
        Ok(nearest.finish())
    }

    async fn kv_spaces(&self, scope: &str) -> Result<Vec<(String, Usage)>, StoreError> {
        let runs = self.lock();
        Ok(runs
            .kv
            .usage
            .range(Space::new(scope, "")..)
            .take_while(|(s, _)| s.scope == scope)
            .map(|(s, u)| (s.namespace.clone(), *u))
            .collect())
    }

    async fn kv_sweep(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        let mut runs = self.lock();
        let due: Vec<(Space, String)> = runs
            .kv
            .expiry
            .iter()
            .take_while(|(t, _, _)| *t <= now_ms)
            .take(limit)
            .map(|(_, s, k)| (s.clone(), k.clone()))
            .collect();
        for (space, key) in &due {
            runs.kv.remove(space, key);
        }
        Ok(due.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(message: &str) -> Logged {
        Logged {
            time_ms: 0,
            kind: EventKind::RunFinished {
                status: crate::RunStatus::Succeeded,
                reason: Some(message.into()),
            },
        }
    }

    fn reasons(log: &EventLog, after: u64) -> Vec<(u64, String)> {
        log.after(after)
            .map(|(seq, l)| match &l.kind {
                EventKind::RunFinished { reason, .. } => (*seq, reason.clone().unwrap_or_default()),
                _ => unreachable!("only these were put"),
            })
            .collect()
    }

    #[test]
    fn an_event_log_keeps_events_in_order_across_chunks_and_out_of_order_puts() {
        let mut log = EventLog::default();
        assert_eq!(log.last_seq(), 0);
        assert!(reasons(&log, 0).is_empty());
        let n = 2 * EventLog::CHUNK as u64 + 10;
        let kept = n - n / 100;
        for seq in (1..=n).filter(|s| s % 100 != 0) {
            log.put(seq, logged(&seq.to_string()));
        }
        assert_eq!(
            log.chunks.len() as u64,
            kept.div_ceil(EventLog::CHUNK as u64)
        );
        // A missing number filled late, one numbered again replaced.
        log.put(300, logged("late"));
        log.put(5, logged("again"));
        assert_eq!(log.last_seq(), n);
        let all = reasons(&log, 0);
        assert_eq!(all.len() as u64, kept + 1);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in order");
        assert_eq!(all[4], (5, "again".into()));
        assert!(all.contains(&(300, "late".into())));
        let tail = reasons(&log, n - 3);
        assert_eq!(
            tail.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [n - 2, n - 1, n]
        );
        assert!(reasons(&log, n).is_empty());
        assert_eq!(
            reasons(&log, EventLog::CHUNK as u64).first().map(|e| e.0),
            Some(EventLog::CHUNK as u64 + 1)
        );
    }
}
