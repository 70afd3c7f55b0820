//! Group commit across runs: the commits of many runs in one statement.
//!
//! A run's changes go to PostgreSQL as one statement (node states and
//! inputs, events, status, cache entries). Executing a statement costs the
//! server far more than its rows: with many runs at once, the server's CPU
//! went to starting statements. So commits queue here; whoever finds no
//! writer at work becomes it and sends what is queued, up to
//! [`MAX_BATCH`] runs' commits, as one statement: one transaction, one WAL
//! flush. Each caller is answered once that statement committed: nothing is
//! acknowledged before it is durable.
//!
//! A run has at most one commit in a batch (its later ones wait for the
//! next), so a run's commits land in order. If a batch fails (a run was
//! deleted, another host took a run's lease), its commits are sent again
//! one by one, so each caller gets its own answer and the others land.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sqlx::PgPool;
use sqlx::Row;
use tokio::sync::oneshot;
use weft_core::clock::now_ms;

use super::{backend, json, last_of};
use crate::retention::entry_bytes;
use crate::{Commit, RunLogError};

/// Runs' commits in one statement at most.
const MAX_BATCH: usize = 64;

/// One queued commit and where its answer goes.
struct Queued {
    run_id: String,
    commit: Commit,
    answer: oneshot::Sender<Result<(), RunLogError>>,
}

/// The commit queue of one store.
#[derive(Default)]
pub(super) struct Committer {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    /// A writer is at work: it will take what is queued.
    writing: bool,
}

impl Committer {
    /// Commit `commit` of `run_id` and answer once it is durable.
    pub(super) async fn commit(
        self: &Arc<Self>,
        pool: &PgPool,
        run_id: &str,
        commit: Commit,
    ) -> Result<(), RunLogError> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut q = self.lock();
            q.waiting.push_back(Queued {
                run_id: run_id.to_string(),
                commit,
                answer,
            });
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            tokio::spawn(self.clone().drain(pool.clone()));
        }
        answered
            .await
            .map_err(|_| backend(std::io::Error::other("the store's committer stopped")))?
    }

    /// Send what is queued, batch after batch, until the queue is empty.
    async fn drain(self: Arc<Self>, pool: PgPool) {
        loop {
            let batch = self.take();
            if batch.is_empty() {
                return;
            }
            let results = match write(&pool, &batch).await {
                Ok(missing) => batch
                    .iter()
                    .map(|q| match missing.contains(&q.run_id) {
                        true => Err(RunLogError::UnknownRun(q.run_id.clone())),
                        false => Ok(()),
                    })
                    .collect(),
                Err(e) if batch.len() > 1 => {
                    tracing::debug!(error = %e, commits = batch.len(), "a group commit failed; committing one by one");
                    let mut each = Vec::with_capacity(batch.len());
                    for q in &batch {
                        each.push(write_one(&pool, q).await);
                    }
                    each
                }
                Err(e) => vec![Err(e)],
            };
            for (q, result) in batch.into_iter().zip(results) {
                let _ = q.answer.send(result);
            }
        }
    }

    /// The next batch: queued commits in order, one per run; none when the
    /// queue is empty (then the writer stops).
    fn take(&self) -> Vec<Queued> {
        let mut q = self.lock();
        let mut runs = HashSet::new();
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        while let Some(next) = q.waiting.pop_front() {
            if batch.len() == MAX_BATCH {
                q.waiting.push_front(next);
                break;
            }
            match runs.insert(next.run_id.clone()) {
                true => batch.push(next),
                false => later.push_back(next),
            }
        }
        later.append(&mut q.waiting);
        q.waiting = later;
        if batch.is_empty() {
            q.writing = false;
        }
        batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Plain lists: usable after a panic elsewhere.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `q` alone: its own answer (a deleted run, a lost lease).
async fn write_one(pool: &PgPool, q: &Queued) -> Result<(), RunLogError> {
    match write(pool, std::slice::from_ref(q)).await? {
        missing if missing.is_empty() => Ok(()),
        _ => Err(RunLogError::UnknownRun(q.run_id.clone())),
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
    fn of(batch: &[Queued]) -> Rows {
        let mut rows = Rows::default();
        let mut keys = HashSet::new();
        for Queued { run_id, commit, .. } in batch {
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
/// (nothing of theirs was written).
async fn write(pool: &PgPool, batch: &[Queued]) -> Result<HashSet<String>, RunLogError> {
    let rows = Rows::of(batch);
    let runs: Vec<&str> = batch.iter().map(|q| q.run_id.as_str()).collect();
    let found: Vec<String> = sqlx::query(
        "WITH nodes AS (
           INSERT INTO weft_nodes (run_id, node, record)
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[])
           ON CONFLICT (run_id, node) DO UPDATE SET record = excluded.record
         ), inputs AS (
           INSERT INTO weft_node_inputs (run_id, node, input)
           SELECT * FROM UNNEST($4::text[], $5::text[], $6::jsonb[])
           ON CONFLICT (run_id, node) DO UPDATE SET input = excluded.input
         ), events AS (
           INSERT INTO weft_events (run_id, seq, event)
           SELECT * FROM UNNEST($7::text[], $8::bigint[], $9::jsonb[])
         ), status AS (
           UPDATE weft_runs r SET status = s.status,
             record = r.record || jsonb_build_object('status', s.status, 'updated_ms', $12::bigint)
           FROM UNNEST($10::text[], $11::text[]) AS s(run_id, status)
           WHERE r.run_id = s.run_id
         ), cache AS (
           INSERT INTO weft_cache (key, task_type, created_ms, size, entry, run_id)
           SELECT c.* FROM UNNEST($13::text[], $14::text[], $15::bigint[], $16::bigint[],
                                  $17::jsonb[], $18::text[])
             AS c(key, task_type, created_ms, size, entry, run_id)
           WHERE EXISTS (SELECT 1 FROM weft_runs WHERE run_id = c.run_id)
           ON CONFLICT (key) DO UPDATE SET task_type = excluded.task_type,
             created_ms = excluded.created_ms, size = excluded.size, entry = excluded.entry,
             run_id = excluded.run_id
         )
         SELECT run_id FROM weft_runs WHERE run_id = ANY($19::text[])",
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
        // A foreign key: a run does not exist.
        Some(code) if code == "23503" && batch.len() == 1 => {
            RunLogError::UnknownRun(batch[0].run_id.clone())
        }
        // The event log's primary key: another host wrote these events.
        Some(code) if code == "23505" && batch.len() == 1 => RunLogError::LostLease {
            run_id: batch[0].run_id.clone(),
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
