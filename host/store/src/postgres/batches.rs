//! Group commit across runs: the writes of many runs in one statement.
//!
//! A run's commit goes to PostgreSQL as one statement (node states and
//! inputs, events, status, cache entries), and so does a new run. Executing
//! a statement costs the server far more than its rows: with many runs at
//! once, the server's CPU went to starting statements and flushing the WAL.
//! So writes queue here, one [`Batcher`] per kind; whoever finds fewer
//! than [`WRITERS`] writers at work becomes one, and a writer sends what is
//! queued, up to [`MAX_BATCH`] writes, as one statement: one transaction,
//! one WAL flush. Each caller is answered
//! once that statement committed: nothing is acknowledged before it is
//! durable.
//!
//! A run has at most one commit in flight (its later ones wait), so a
//! run's commits land in order. If a batch fails (a run was
//! deleted, another host took a run's lease), its writes are sent again one
//! by one, so each caller gets its own answer and the others land.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::Row;
use tokio::sync::oneshot;
use weft_core::clock::now_ms;

use super::{PgStore, backend, json, last_of};
use crate::retention::entry_bytes;
use crate::{Commit, NewRun, RunLogError};

/// Writes in one statement at most.
const MAX_BATCH: usize = 256;
/// Statements of one kind in flight at once. More than one cost
/// PostgreSQL more CPU per run on a 2-core machine (two writers against
/// one, one-node runs: 774-802 against 814-827 runs/s at 64 clients).
const WRITERS: usize = 1;

/// One kind of write whose writes can share a statement.
pub(super) trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    /// What a write answers when it lands.
    type Output: Send + 'static;
    /// Items with the same key are never in flight together (a later one
    /// waits for the earlier one's statement, so they land in order).
    fn key(item: &Self::Item) -> Option<&str>;
    /// Write `items` in one statement: one answer per item, or the
    /// statement's error (then each is written alone).
    fn write(
        pool: &PgPool,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Answer<Self::Output>>, RunLogError>> + Send;
}

type Answer<T> = Result<T, RunLogError>;

/// One queued write and where its answer goes.
struct Queued<B: Batch> {
    item: B::Item,
    answer: oneshot::Sender<Answer<B::Output>>,
}

/// The write queue of one kind of write.
pub(super) struct Batcher<B: Batch> {
    queue: Mutex<Queue<B>>,
}

struct Queue<B: Batch> {
    waiting: VecDeque<Queued<B>>,
    /// Writers at work: they take what is queued.
    writers: usize,
    /// Keys of the writes in flight (their next writes wait).
    in_flight: HashSet<String>,
}

impl<B: Batch> Default for Batcher<B> {
    fn default() -> Self {
        Batcher {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                writers: 0,
                in_flight: HashSet::new(),
            }),
        }
    }
}

impl<B: Batch> Batcher<B> {
    /// Write `item` with whatever else is queued; its answer once durable.
    pub(super) async fn write(self: &Arc<Self>, pool: &PgPool, item: B::Item) -> Answer<B::Output> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut q = self.lock();
            q.waiting.push_back(Queued { item, answer });
            let start = q.writers < WRITERS;
            q.writers += usize::from(start);
            start
        };
        if start {
            tokio::spawn(self.clone().drain(pool.clone()));
        }
        answered.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Send what is queued, batch after batch, until the queue is empty.
    async fn drain(self: Arc<Self>, pool: PgPool) {
        loop {
            let batch = self.take();
            if batch.is_empty() {
                return;
            }
            let (items, answers): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|q| (q.item, q.answer)).unzip();
            // A panic answers this batch's callers "the writer stopped" and
            // leaves the queue working.
            let results = AssertUnwindSafe(write_all::<B>(&pool, &items))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!("a store write panicked");
                    Vec::new()
                });
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(result);
            }
            let mut q = self.lock();
            for key in items.iter().filter_map(B::key) {
                q.in_flight.remove(key);
            }
        }
    }

    /// The next batch: queued writes in order, one per key and none whose
    /// key is in flight; none when nothing is ready (then the writer stops:
    /// a write waiting on a key is taken by the writer that holds the key).
    /// Costs the batch and the writes it passes over, not the whole queue.
    fn take(&self) -> Vec<Queued<B>> {
        let mut q = self.lock();
        let mut batch = Vec::new();
        let mut passed = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some(next) = q.waiting.pop_front() else {
                break;
            };
            match B::key(&next.item).is_none_or(|k| q.in_flight.insert(k.to_string())) {
                true => batch.push(next),
                false => passed.push(next),
            }
        }
        // Back at the front, in their order.
        for waiting in passed.into_iter().rev() {
            q.waiting.push_front(waiting);
        }
        if batch.is_empty() {
            q.writers -= 1;
        }
        batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<B>> {
        // Plain lists: usable after a panic elsewhere.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Write `items` in one statement; if it fails, each alone, so each gets
/// its own answer and the others land.
async fn write_all<B: Batch>(pool: &PgPool, items: &[B::Item]) -> Vec<Answer<B::Output>> {
    match B::write(pool, items).await {
        Ok(answers) => answers,
        Err(e) if items.len() > 1 => {
            tracing::debug!(error = %e, writes = items.len(), "a batch failed; writing one by one");
            let mut each = Vec::with_capacity(items.len());
            for item in items {
                each.push(match B::write(pool, std::slice::from_ref(item)).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| Err(lost())),
                    Err(e) => Err(e),
                });
            }
            each
        }
        Err(e) => vec![Err(e)],
    }
}

/// An answer that never came (a writer that panicked).
fn lost() -> RunLogError {
    backend(std::io::Error::other("the store's writer stopped")).into()
}

/// New runs, each recorded unless its idempotency slot is taken: whether
/// it was.
pub(super) struct Creates;

impl Batch for Creates {
    type Item = Arc<NewRun>;
    type Output = bool;

    fn key(_: &Arc<NewRun>) -> Option<&str> {
        None
    }

    async fn write(pool: &PgPool, batch: &[Arc<NewRun>]) -> Result<Vec<Answer<bool>>, RunLogError> {
        let recorded = PgStore::insert_runs(pool, batch).await?;
        Ok(batch
            .iter()
            .map(|new| Ok(recorded.contains(&new.record.run_id)))
            .collect())
    }
}

/// Runs' commits: (run id, commit).
pub(super) struct Commits;

impl Batch for Commits {
    type Item = (String, Commit);
    type Output = ();

    fn key((run_id, _): &Self::Item) -> Option<&str> {
        Some(run_id)
    }

    async fn write(pool: &PgPool, batch: &[Self::Item]) -> Result<Vec<Answer<()>>, RunLogError> {
        let missing = write(pool, batch).await?;
        Ok(batch
            .iter()
            .map(|(run_id, _)| match missing.contains(run_id) {
                true => Err(RunLogError::UnknownRun(run_id.clone())),
                false => Ok(()),
            })
            .collect())
    }
}

/// Columns of one batch, row by row.
#[derive(Default)]
struct Rows {
    nodes: (Vec<String>, Vec<String>, Vec<Value>),
    inputs: (Vec<String>, Vec<String>, Vec<Value>),
    events: (Vec<String>, Vec<i64>, Vec<Value>),
    status: (Vec<String>, Vec<&'static str>),
    cache: CacheRows,
}

#[derive(Default)]
struct CacheRows {
    keys: Vec<String>,
    types: Vec<String>,
    created: Vec<i64>,
    sizes: Vec<i64>,
    entries: Vec<Value>,
    runs: Vec<String>,
}

impl Rows {
    fn of(batch: &[(String, Commit)]) -> Rows {
        let mut rows = Rows::default();
        let mut keys = HashSet::new();
        for (run_id, commit) in batch {
            for n in last_of(&commit.nodes, |n| &n.node) {
                rows.nodes.0.push(run_id.clone());
                rows.nodes.1.push(n.node.clone());
                rows.nodes.2.push(json(n).0);
            }
            for i in last_of(&commit.inputs, |i| &i.node) {
                rows.inputs.0.push(run_id.clone());
                rows.inputs.1.push(i.node.clone());
                rows.inputs.2.push(Value::clone(&i.input));
            }
            for e in &commit.events {
                rows.events.0.push(run_id.clone());
                rows.events.1.push(e.seq as i64);
                rows.events.2.push(json(e).0);
            }
            if let Some(status) = commit.status {
                rows.status.0.push(run_id.clone());
                rows.status.1.push(status.as_str());
            }
            // One row per key in a statement (runs may cache the same
            // output): the first run's.
            for p in last_of(&commit.cache, |p| &p.key) {
                if keys.insert(p.key.clone()) {
                    let c = &mut rows.cache;
                    c.keys.push(p.key.clone());
                    c.types.push(p.entry.task_type.clone());
                    c.created.push(p.entry.created_ms as i64);
                    c.sizes.push(entry_bytes(&p.entry) as i64);
                    c.entries.push(json(&p.entry).0);
                    c.runs.push(run_id.clone());
                }
            }
        }
        rows
    }
}

/// Commit `batch` in one statement; the runs of it that do not exist
/// (nothing of theirs was written). The runs' rows are locked first (`FOR
/// KEY SHARE`, as a foreign key's check would, once per run instead of
/// once per row): a run deleted meanwhile gets nothing written, and a
/// delete waits for this statement. Rows are locked in `run_id` order, as
/// every statement locking several runs does, so two never deadlock.
async fn write(pool: &PgPool, batch: &[(String, Commit)]) -> Result<HashSet<String>, RunLogError> {
    let rows = Rows::of(batch);
    let runs: Vec<&str> = batch.iter().map(|(run_id, _)| run_id.as_str()).collect();
    let found: Vec<String> = sqlx::query(
        "WITH runs AS (
           SELECT run_id FROM weft_runs WHERE run_id = ANY($19::text[])
           ORDER BY run_id FOR KEY SHARE
         ), nodes AS (
           INSERT INTO weft_nodes (run_id, node, record)
           SELECT n.* FROM UNNEST($1::text[], $2::text[], $3::jsonb[]) AS n(run_id, node, record)
           WHERE n.run_id IN (SELECT run_id FROM runs)
           ON CONFLICT (run_id, node) DO UPDATE SET record = excluded.record
         ), inputs AS (
           INSERT INTO weft_node_inputs (run_id, node, input)
           SELECT i.* FROM UNNEST($4::text[], $5::text[], $6::jsonb[]) AS i(run_id, node, input)
           WHERE i.run_id IN (SELECT run_id FROM runs)
           ON CONFLICT (run_id, node) DO UPDATE SET input = excluded.input
         ), events AS (
           INSERT INTO weft_events (run_id, seq, event)
           SELECT e.* FROM UNNEST($7::text[], $8::bigint[], $9::jsonb[]) AS e(run_id, seq, event)
           WHERE e.run_id IN (SELECT run_id FROM runs)
         ), ending AS (
           SELECT run_id FROM weft_runs WHERE run_id = ANY($10::text[])
           ORDER BY run_id FOR NO KEY UPDATE
         ), status AS (
           UPDATE weft_runs r SET status = s.status,
             record = r.record || jsonb_build_object('status', s.status, 'updated_ms', $12::bigint)
           FROM UNNEST($10::text[], $11::text[]) AS s(run_id, status)
           WHERE r.run_id = s.run_id AND r.run_id IN (SELECT run_id FROM ending)
         ), cache AS (
           INSERT INTO weft_cache (key, task_type, created_ms, size, entry, run_id)
           SELECT c.* FROM UNNEST($13::text[], $14::text[], $15::bigint[], $16::bigint[],
                                  $17::jsonb[], $18::text[])
             AS c(key, task_type, created_ms, size, entry, run_id)
           WHERE c.run_id IN (SELECT run_id FROM runs)
           ON CONFLICT (key) DO UPDATE SET task_type = excluded.task_type,
             created_ms = excluded.created_ms, size = excluded.size, entry = excluded.entry,
             run_id = excluded.run_id
         )
         SELECT run_id FROM runs",
    )
    .bind(&rows.nodes.0)
    .bind(&rows.nodes.1)
    .bind(&rows.nodes.2)
    .bind(&rows.inputs.0)
    .bind(&rows.inputs.1)
    .bind(&rows.inputs.2)
    .bind(&rows.events.0)
    .bind(&rows.events.1)
    .bind(&rows.events.2)
    .bind(&rows.status.0)
    .bind(&rows.status.1)
    .bind(now_ms() as i64)
    .bind(&rows.cache.keys)
    .bind(&rows.cache.types)
    .bind(&rows.cache.created)
    .bind(&rows.cache.sizes)
    .bind(&rows.cache.entries)
    .bind(&rows.cache.runs)
    .bind(&runs)
    .fetch_all(pool)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
        // The event log's primary key: another host wrote these events.
        Some(code) if code == "23505" && batch.len() == 1 => RunLogError::LostLease {
            run_id: batch[0].0.clone(),
        },
        _ => backend(e).into(),
    })?
    .iter()
    .map(|row| row.get(0))
    .collect();
    let found: HashSet<&str> = found.iter().map(String::as_str).collect();
    Ok(runs
        .into_iter()
        .filter(|r| !found.contains(r))
        .map(str::to_string)
        .collect())
}
