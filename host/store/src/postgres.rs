//! The shared [`RunStore`]: PostgreSQL, for many Weft hosts on one database.
//!
//! Records are JSON (`jsonb`) in one table per kind, as in the redb store.
//! Each [`Commit`] is atomic, and the commits and new runs of many runs
//! share a statement and a transaction (`batches`); the event log's primary
//! key (run id, sequence number) fences a host that lost its lease: its next
//! commit fails instead of writing a second history. Runs are leased to the
//! host executing them (`lease_host`, `lease_until_ms`); claiming uses `FOR
//! UPDATE SKIP LOCKED`; a run left for others (created without a lease, or released by a
//! stopping host) is announced with `NOTIFY weft_runs` so idle hosts wake at
//! once. The schema is created and migrated at start under an
//! advisory lock; a database migrated by a newer Weft is refused.

mod batches;
mod key_values;
mod schedules;
mod signals;
mod statistics;

use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;

use super::{
    Commit, Components, Coordination, Created, Durable, NewRun, NodeRecord, OutputCache, RunFilter,
    RunLog, RunLogError, RunRecord, SavedGraph, SavedGraphs, SlotRequest, StoreError, StoredRun,
    TaskOffer, decode,
};
use crate::retention::Retention;
use weft_core::cache::{CacheEntry, CacheStat};
use weft_core::clock::now_ms;
use weft_core::event::{Event, RunStatus};
use weft_core::graph::Graph;
use weft_core::rate::RateState;

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i64 = 13;

/// Each migration: (version, statements). Applied in order, once.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE weft_runs (
        run_id text PRIMARY KEY,
        record jsonb NOT NULL,
        spec jsonb NOT NULL,
        status text NOT NULL,
        created_ms bigint NOT NULL,
        idempotency text UNIQUE,
        lease_host text,
        lease_until_ms bigint
    );
    CREATE INDEX weft_runs_running ON weft_runs (created_ms) WHERE status = 'running';
    CREATE TABLE weft_nodes (
        run_id text NOT NULL REFERENCES weft_runs ON DELETE CASCADE,
        node text NOT NULL,
        record jsonb NOT NULL,
        PRIMARY KEY (run_id, node)
    );
    CREATE TABLE weft_events (
        run_id text NOT NULL REFERENCES weft_runs ON DELETE CASCADE,
        seq bigint NOT NULL,
        event jsonb NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE weft_cache (
        key text PRIMARY KEY,
        task_type text NOT NULL,
        created_ms bigint NOT NULL,
        size bigint NOT NULL,
        entry jsonb NOT NULL
    );
    CREATE INDEX weft_cache_age ON weft_cache (task_type, created_ms, key);
    CREATE TABLE weft_rate_starts (
        id text NOT NULL,
        at_ms bigint NOT NULL,
        n integer NOT NULL,
        PRIMARY KEY (id, at_ms)
    );
    CREATE TABLE weft_rate_pauses (id text PRIMARY KEY, until_ms bigint NOT NULL);
    CREATE TABLE weft_graphs (
        name text NOT NULL,
        version integer NOT NULL,
        saved jsonb NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE weft_graph_versions (name text PRIMARY KEY, last integer NOT NULL);
    "#,
    ),
    (
        2,
        r#"
    CREATE TABLE weft_task_offers (
        key text PRIMARY KEY,
        run_id text NOT NULL,
        task_type text NOT NULL,
        offered_ms bigint NOT NULL,
        offer jsonb NOT NULL,
        claim_host text,
        claim_until_ms bigint,
        result jsonb
    );
    CREATE INDEX weft_task_offers_open ON weft_task_offers (offered_ms, key) WHERE result IS NULL;
    CREATE INDEX weft_task_offers_run ON weft_task_offers (run_id);
    CREATE TABLE weft_slots (
        id text NOT NULL,
        token text NOT NULL,
        host text NOT NULL,
        until_ms bigint NOT NULL,
        PRIMARY KEY (id, token)
    );
    CREATE INDEX weft_slots_host ON weft_slots (host);
    "#,
    ),
    (
        3,
        r#"
    CREATE INDEX weft_runs_created ON weft_runs (created_ms DESC, run_id DESC);
    CREATE INDEX weft_runs_owner ON weft_runs ((record->>'owner'), created_ms DESC, run_id DESC);
    "#,
    ),
    (
        4,
        r#"
    CREATE TABLE weft_components (
        digest text PRIMARY KEY,
        bytes bytea NOT NULL,
        saved_ms bigint NOT NULL
    );
    "#,
    ),
    (
        5,
        r#"
    ALTER TABLE weft_cache ADD COLUMN run_id text;
    CREATE INDEX weft_cache_run ON weft_cache (run_id) WHERE run_id IS NOT NULL;
    CREATE TABLE weft_component_runs (
        digest text NOT NULL,
        run_id text NOT NULL,
        PRIMARY KEY (digest, run_id)
    );
    CREATE INDEX weft_component_runs_run ON weft_component_runs (run_id);
    INSERT INTO weft_component_runs (digest, run_id)
      SELECT DISTINCT c.value, r.run_id
      FROM weft_runs r, jsonb_each_text(coalesce(r.spec -> 'components', '{}')) c;
    "#,
    ),
    (
        6,
        r#"
    CREATE TABLE weft_schedules (
        owner text NOT NULL,
        name text NOT NULL,
        due_ms bigint,
        schedule jsonb NOT NULL,
        PRIMARY KEY (owner, name)
    );
    CREATE INDEX weft_schedules_due ON weft_schedules (due_ms) WHERE due_ms IS NOT NULL;
    "#,
    ),
    (
        7,
        r#"
    CREATE TABLE weft_signals (
        run_id text NOT NULL REFERENCES weft_runs ON DELETE CASCADE,
        name text NOT NULL,
        signal jsonb NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    "#,
    ),
    (
        8,
        r#"
    CREATE SEQUENCE weft_kv_versions;
    CREATE TABLE weft_kv (
        scope text NOT NULL,
        namespace text NOT NULL,
        key text NOT NULL,
        value bytea NOT NULL,
        version bigint NOT NULL,
        expires_ms bigint,
        PRIMARY KEY (scope, namespace, key)
    );
    CREATE INDEX weft_kv_expiry ON weft_kv (expires_ms) WHERE expires_ms IS NOT NULL;
    CREATE TABLE weft_kv_usage (
        scope text NOT NULL,
        namespace text NOT NULL,
        keys bigint NOT NULL,
        bytes bigint NOT NULL,
        PRIMARY KEY (scope, namespace)
    );
    "#,
    ),
    (
        9,
        r#"
    CREATE TABLE weft_node_inputs (
        run_id text NOT NULL REFERENCES weft_runs ON DELETE CASCADE,
        node text NOT NULL,
        input jsonb NOT NULL,
        PRIMARY KEY (run_id, node)
    );
    "#,
    ),
    (
        10,
        r#"
    ALTER TABLE weft_kv ADD COLUMN vector real[];
    "#,
    ),
    (
        // A run's nodes, inputs and events no longer carry a foreign key:
        // checking one per row written cost PostgreSQL ~12% of its CPU
        // per task. A commit locks its runs' rows once instead (`FOR KEY
        // SHARE`, batches.rs) and writes nothing for a run that is gone. A
        // trigger deletes them with their run, whoever deletes it (a host
        // of an older version too).
        11,
        r#"
    ALTER TABLE weft_nodes DROP CONSTRAINT IF EXISTS weft_nodes_run_id_fkey;
    ALTER TABLE weft_node_inputs DROP CONSTRAINT IF EXISTS weft_node_inputs_run_id_fkey;
    ALTER TABLE weft_events DROP CONSTRAINT IF EXISTS weft_events_run_id_fkey;
    CREATE FUNCTION weft_runs_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        DELETE FROM weft_nodes WHERE run_id IN (SELECT run_id FROM gone);
        DELETE FROM weft_node_inputs WHERE run_id IN (SELECT run_id FROM gone);
        DELETE FROM weft_events WHERE run_id IN (SELECT run_id FROM gone);
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER weft_runs_deleted AFTER DELETE ON weft_runs
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION weft_runs_deleted();
    "#,
    ),
    (
        // Runs by status, newest first: a page of failed runs read every
        // run newest first until it was full (all of them, 47–125 ms at
        // 100,000 runs, when none had failed).
        12,
        r#"
    CREATE INDEX weft_runs_status ON weft_runs (status, created_ms DESC, run_id DESC);
    "#,
    ),
    (
        // No statistics on the payload columns (JSON documents, bytes): no
        // statement filters or sorts on them, and sampling them was most of
        // an `ANALYZE`'s cost (`statistics.rs`). The owner's expression
        // index keeps its own statistics.
        13,
        r#"
    ALTER TABLE weft_runs ALTER COLUMN record SET STATISTICS 0,
        ALTER COLUMN spec SET STATISTICS 0;
    ALTER TABLE weft_nodes ALTER COLUMN record SET STATISTICS 0;
    ALTER TABLE weft_node_inputs ALTER COLUMN input SET STATISTICS 0;
    ALTER TABLE weft_events ALTER COLUMN event SET STATISTICS 0;
    ALTER TABLE weft_cache ALTER COLUMN entry SET STATISTICS 0;
    ALTER TABLE weft_task_offers ALTER COLUMN offer SET STATISTICS 0,
        ALTER COLUMN result SET STATISTICS 0;
    ALTER TABLE weft_graphs ALTER COLUMN saved SET STATISTICS 0;
    ALTER TABLE weft_components ALTER COLUMN bytes SET STATISTICS 0;
    ALTER TABLE weft_schedules ALTER COLUMN schedule SET STATISTICS 0;
    ALTER TABLE weft_signals ALTER COLUMN signal SET STATISTICS 0;
    ALTER TABLE weft_kv ALTER COLUMN value SET STATISTICS 0,
        ALTER COLUMN vector SET STATISTICS 0;
    "#,
    ),
];

/// Runs in a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The connections of the batched statements ([`batched_pool`]).
    batched: PgPool,
    /// Woken by `NOTIFY weft_runs`: a run may be free to claim.
    work: Arc<tokio::sync::Notify>,
    /// Woken by `NOTIFY weft_tasks`: a task was offered or finished.
    tasks: Arc<tokio::sync::Notify>,
    /// Fed by `NOTIFY weft_signals`: a run was sent a signal.
    signal_feed: tokio::sync::broadcast::Sender<crate::signals::Arrival>,
    /// Cache puts per task type since its last prune (see `prune_cache`).
    cache_puts: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    /// Output-cache lookups waiting for the next query.
    lookups: Arc<std::sync::Mutex<Lookups>>,
    /// Runs' commits waiting for the next statement.
    commits: Arc<batches::Batcher<batches::Commits>>,
    /// New runs waiting for the next statement.
    creates: Arc<batches::Batcher<batches::Creates>>,
    /// New runs started before their record landed
    /// (`create_run_applied`), by run id: whether it did, once known. A
    /// run's commit waits for its record.
    landing: Arc<std::sync::Mutex<std::collections::HashMap<String, Landing>>>,
    /// The pgvector extension is installed in the database: nearest keys
    /// are found by it, in SQL (else read out and ranked here).
    pgvector: bool,
    /// When to analyze the tables again ([`statistics`]).
    statistics: statistics::Statistics,
}

/// Whether a new run's record landed (`None`: not known yet).
type Landing = tokio::sync::watch::Receiver<Option<bool>>;

/// How many running runs `owner` has.
async fn running_of(
    conn: &mut sqlx::PgConnection,
    owner: &Option<String>,
) -> Result<usize, StoreError> {
    let running: i64 = sqlx::query(
        "SELECT count(*) FROM weft_runs WHERE status = 'running'
           AND record->>'owner' IS NOT DISTINCT FROM $1",
    )
    .bind(owner)
    .fetch_one(conn)
    .await
    .map_err(backend)?
    .get(0);
    Ok(running as usize)
}

/// Rate limiter `id`'s starts at or after `since_ms` and its pause.
async fn read_rate(
    conn: &mut sqlx::PgConnection,
    id: &str,
    since_ms: u64,
) -> Result<RateState, StoreError> {
    let starts = sqlx::query(
        "SELECT at_ms, n FROM weft_rate_starts WHERE id = $1 AND at_ms >= $2 ORDER BY at_ms",
    )
    .bind(id)
    .bind(since_ms as i64)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?
    .into_iter()
    .flat_map(|r| {
        let (at, n): (i64, i32) = (r.get(0), r.get(1));
        std::iter::repeat_n(at as u64, n as usize)
    })
    .collect();
    let paused: i64 =
        sqlx::query("SELECT coalesce(max(until_ms), 0) FROM weft_rate_pauses WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?
            .get(0);
    Ok(RateState {
        starts,
        paused_until_ms: paused as u64,
    })
}

/// Connections for the statements that many runs share (commits, new
/// runs, cache lookups, a claim's loads): one each, as each kind has one
/// statement in flight at a time (`batches`, [`look_up`], a host's claim
/// loop).
const BATCHED_CONNECTIONS: u32 = 4;

/// The pool of the batched statements, whose plans are made once per
/// connection (`plan_cache_mode = force_generic_plan`). Left to choose,
/// PostgreSQL planned each commit anew for the rows it held: planning took
/// ~40% of the server's time on one-node runs, as much as executing. Their
/// shapes never vary and their plans are index lookups whatever the rows;
/// an `ANALYZE` ([`statistics`]) makes the connections plan again as the
/// tables grow. The other statements keep PostgreSQL's choice: a generic
/// plan of `$n IS NULL OR …` scans every row.
async fn batched_pool(url: &str) -> Result<PgPool, StoreError> {
    // Set once the connection is open rather than as a startup option,
    // which a pooler such as PgBouncer refuses.
    PgPoolOptions::new()
        .max_connections(BATCHED_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET plan_cache_mode = force_generic_plan")
                    .execute(conn)
                    .await
                    .map(drop)
            })
        })
        .connect(url)
        .await
        .map_err(|e| StoreError::context("cannot connect to PostgreSQL", e))
}

/// A cache lookup's answer.
type Found = Result<Option<CacheEntry>, StoreError>;

/// Output-cache lookups waiting to be coalesced into one query.
#[derive(Default)]
struct Lookups {
    pending: Vec<(String, tokio::sync::oneshot::Sender<Found>)>,
    /// A task is querying (and will take what is pending next).
    running: bool,
}

/// The most keys looked up in one query.
const LOOKUP_BATCH: usize = 512;

/// Answer pending lookups, a batch per query, until none are left.
async fn look_up(pool: PgPool, lookups: Arc<std::sync::Mutex<Lookups>>) {
    loop {
        let batch: Vec<_> = {
            let mut l = lookups.lock().unwrap_or_else(|e| e.into_inner());
            if l.pending.is_empty() {
                l.running = false;
                return;
            }
            let n = l.pending.len().min(LOOKUP_BATCH);
            l.pending.drain(..n).collect()
        };
        let keys: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
        let found = sqlx::query("SELECT key, entry FROM weft_cache WHERE key = ANY($1)")
            .bind(&keys)
            .fetch_all(&pool)
            .await;
        match found {
            Ok(rows) => {
                let entries: std::collections::HashMap<String, Value> = rows
                    .into_iter()
                    .map(|r| (r.get(0), r.get::<Json<Value>, _>(1).0))
                    .collect();
                for (key, tx) in batch {
                    let entry = entries
                        .get(&key)
                        .map(|v| from_json(&key, v.clone()))
                        .transpose();
                    let _ = tx.send(entry);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, tx) in batch {
                    let _ = tx.send(Err(StoreError::backend(message.as_str())));
                }
            }
        }
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::caused_by(e)
}

/// The last item of `items` under each key, in no particular order: a group
/// commit may hold several states of one node (or two entries under one
/// cache key), and one statement cannot upsert a row twice.
fn last_of<T>(items: &[T], key: impl Fn(&T) -> &String) -> Vec<&T> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .rev()
        .filter(|item| seen.insert(key(item).as_str()))
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> Json<Value> {
    Json(serde_json::to_value(v).expect("store records always serialize"))
}

fn from_json<T: for<'de> serde::Deserialize<'de>>(key: &str, v: Value) -> Result<T, StoreError> {
    decode(key, v.to_string().as_bytes())
}

/// A run from a row of `(run_id, record, spec, nodes, last seq)`.
fn stored_run(run_id: &str, row: &sqlx::postgres::PgRow) -> Result<StoredRun, RunLogError> {
    let (record, spec): (Json<Value>, Json<Value>) = (row.get(1), row.get(2));
    let (nodes, last): (Json<Vec<(String, Value)>>, i64) = (row.get(3), row.get(4));
    let nodes = nodes
        .0
        .into_iter()
        .map(|(node, record)| from_json::<NodeRecord>(&format!("{run_id}/{node}"), record))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoredRun {
        run: from_json(run_id, record.0)?,
        spec: from_json(run_id, spec.0)?,
        nodes,
        next_seq: last as u64 + 1,
    })
}

/// Run records from rows of `(run_id, record)`.
fn run_records(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<RunRecord>, StoreError> {
    rows.into_iter()
        .map(|r| {
            let (id, record): (String, Json<Value>) = (r.get(0), r.get(1));
            from_json(&id, record.0)
        })
        .collect()
}

impl PgStore {
    /// Connect to `url` (`postgres://…`), create or migrate the schema, and
    /// start listening for new runs. `max_connections` bounds the pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::context("cannot connect to PostgreSQL", e))?;
        Self::migrate(&pool).await?;
        let batched = batched_pool(url).await?;
        let pgvector = key_values::pgvector(&pool).await?;
        let statistics = statistics::Statistics::of(pool.clone()).await;
        let work = Arc::new(tokio::sync::Notify::new());
        let tasks = Arc::new(tokio::sync::Notify::new());
        let mut listener = PgListener::connect_with(&pool).await.map_err(backend)?;
        listener
            .listen_all(["weft_runs", "weft_tasks", "weft_signals"])
            .await
            .map_err(backend)?;
        let signal_feed = crate::signals::feed();
        let (wake_runs, wake_tasks, signalled) = (work.clone(), tasks.clone(), signal_feed.clone());
        tokio::spawn(async move {
            // Wakes claimers on every new run or task offer, and waiters for
            // results; on a broken connection they fall back to polling (the
            // listener reconnects by itself).
            loop {
                match listener.recv().await {
                    Ok(n) if n.channel() == "weft_tasks" => wake_tasks.notify_waiters(),
                    Ok(n) if n.channel() == "weft_signals" => {
                        let _ = signalled.send(arrival(n.payload()));
                    }
                    // One claimer per host: a permit kept for it while it
                    // is busy, so a run announced meanwhile is not missed.
                    Ok(_) => wake_runs.notify_one(),
                    Err(e) => {
                        tracing::debug!(error = %e, "LISTEN connection lost; polling meanwhile");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(PgStore {
            pool,
            batched,
            work,
            tasks,
            signal_feed,
            cache_puts: Arc::default(),
            lookups: Arc::default(),
            commits: Arc::default(),
            creates: Arc::default(),
            landing: Arc::default(),
            pgvector,
            statistics,
        })
    }

    /// Create the schema, or bring it to [`SCHEMA_VERSION`], once across
    /// every host starting at the same time.
    async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
        let mut tx = pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock(7265746674)")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS weft_schema (version bigint PRIMARY KEY, applied_ms bigint NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let found: i64 = sqlx::query("SELECT coalesce(max(version), 0) FROM weft_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerFormat {
                path: "the PostgreSQL database".into(),
                found: found as u64,
                supported: SCHEMA_VERSION as u64,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query("INSERT INTO weft_schema (version, applied_ms) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms() as i64)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tracing::info!(version, "PostgreSQL schema migrated");
        }
        tx.commit().await.map_err(backend)
    }

    fn landing_runs(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Landing>> {
        self.landing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for run `run_id`'s record if it is still on its way; an error if
    /// it did not land.
    async fn landed(&self, run_id: &str) -> Result<(), RunLogError> {
        let Some(mut landing) = self.landing_runs().get(run_id).cloned() else {
            return Ok(());
        };
        match landing.wait_for(Option::is_some).await.map(|l| *l) {
            Ok(Some(true)) => Ok(()),
            // Not recorded, or the writer stopped before saying.
            _ => Err(RunLogError::UnknownRun(run_id.to_string())),
        }
    }

    /// Whether nearest keys are ranked by pgvector (installed in the
    /// database), not by the host.
    pub fn pgvector(&self) -> bool {
        self.pgvector
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `run_ids` with their nodes in order and their last event's
    /// seq, in one round trip: each found, or `UnknownRun`, in order.
    async fn select_runs(
        pool: &PgPool,
        run_ids: &[String],
    ) -> Result<Vec<Result<StoredRun, RunLogError>>, RunLogError> {
        let rows = sqlx::query(
            "SELECT r.run_id, r.record, r.spec,
               (SELECT coalesce(jsonb_agg(jsonb_build_array(n.node, n.record) ORDER BY n.node), '[]')
                  FROM weft_nodes n WHERE n.run_id = r.run_id),
               (SELECT coalesce(max(e.seq), 0) FROM weft_events e WHERE e.run_id = r.run_id)
             FROM weft_runs r WHERE r.run_id = ANY($1)",
        )
        .bind(run_ids)
        .fetch_all(pool)
        .await
        .map_err(backend)?;
        let found: std::collections::HashMap<String, sqlx::postgres::PgRow> =
            rows.into_iter().map(|row| (row.get(0), row)).collect();
        Ok(run_ids
            .iter()
            .map(|run_id| match found.get(run_id) {
                Some(row) => stored_run(run_id, row),
                None => Err(RunLogError::UnknownRun(run_id.clone())),
            })
            .collect())
    }

    /// Record the runs `new` (each unless its idempotency slot is taken)
    /// in one statement, with their component pins, waking the hosts that
    /// may claim the unleased ones; the ids of those recorded.
    async fn insert_runs<'e>(
        ex: impl sqlx::PgExecutor<'e>,
        new: &[impl std::borrow::Borrow<NewRun>],
    ) -> Result<HashSet<String>, StoreError> {
        let new: Vec<&NewRun> = new.iter().map(|n| n.borrow()).collect();
        let runs = || new.iter().map(|n| &n.record);
        let leases = || new.iter().map(|n| n.lease.as_ref());
        let rows = sqlx::query(
            "WITH input AS (
               SELECT * FROM UNNEST($1::text[], $2::jsonb[], $3::jsonb[], $4::text[],
                                    $5::bigint[], $6::text[], $7::text[], $8::bigint[])
                 AS i(run_id, record, spec, status, created_ms, idempotency, lease_host,
                      lease_until_ms)
             ), new AS (
               INSERT INTO weft_runs (run_id, record, spec, status, created_ms, idempotency,
                 lease_host, lease_until_ms)
               SELECT * FROM input ON CONFLICT (idempotency) DO NOTHING
               RETURNING run_id, lease_host
             ), pins AS (
               INSERT INTO weft_component_runs (digest, run_id)
               SELECT DISTINCT c.value, new.run_id
               FROM new JOIN input USING (run_id),
                 jsonb_each_text(coalesce(input.spec -> 'components', '{}')) c
             ), wake AS (
               -- Nobody executes these yet: wake the hosts that may claim them.
               SELECT pg_notify('weft_runs', run_id) FROM new WHERE lease_host IS NULL
             )
             SELECT run_id, (SELECT count(*) FROM wake) FROM new",
        )
        .bind(runs().map(|r| r.run_id.clone()).collect::<Vec<_>>())
        .bind(runs().map(|r| json(r).0).collect::<Vec<_>>())
        .bind(new.iter().map(|n| json(&n.spec).0).collect::<Vec<_>>())
        .bind(
            runs()
                .map(|r| RunStatus::as_str(r.status))
                .collect::<Vec<_>>(),
        )
        .bind(runs().map(|r| r.created_ms as i64).collect::<Vec<_>>())
        .bind(new.iter().map(|n| n.idempotency_slot()).collect::<Vec<_>>())
        .bind(
            leases()
                .map(|l| l.map(|l| l.host.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            leases()
                .map(|l| l.map(|l| l.until_ms as i64))
                .collect::<Vec<_>>(),
        )
        .fetch_all(ex)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The run recorded under `slot` (an idempotency key), if any.
    async fn existing<'e>(
        ex: impl sqlx::PgExecutor<'e>,
        slot: &Option<String>,
    ) -> Result<Option<RunRecord>, StoreError> {
        let Some(slot) = slot else { return Ok(None) };
        let row = sqlx::query("SELECT run_id, record FROM weft_runs WHERE idempotency = $1")
            .bind(slot)
            .fetch_optional(ex)
            .await
            .map_err(backend)?;
        row.map(|row| from_json(&row.get::<String, _>(0), row.get::<Json<Value>, _>(1).0))
            .transpose()
    }

    /// A heartbeat: run `update` (which extends to `$3` the rows of `$2` held
    /// by host `$1` and returns their ids); the ids of `ids` no longer held.
    async fn renew(
        &self,
        update: &'static str,
        host: &str,
        ids: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let kept: std::collections::HashSet<String> = sqlx::query(update)
            .bind(host)
            .bind(ids)
            .bind(until_ms as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        Ok(ids
            .iter()
            .filter(|id| !kept.contains(id.as_str()))
            .cloned()
            .collect())
    }

    /// Apply `task_type`'s retention rule after a put. PostgreSQL keeps no
    /// count per type, so this process counts its puts since its last prune
    /// and prunes when the rule says a type that held `keep` would now be due
    /// (with several hosts, each counts its own puts: a type may hold up to
    /// a tenth more per host between prunes).
    async fn prune_cache(&self, task_type: &str, keep: usize) -> Result<(), StoreError> {
        let due = {
            let mut puts = self.cache_puts.lock().unwrap_or_else(|e| e.into_inner());
            let n = puts.entry(task_type.to_string()).or_default();
            *n += 1;
            if Retention::keep_last(keep).excess((keep + *n) as u64) == 0 {
                return Ok(());
            }
            std::mem::take(n)
        };
        // In chunks, each read newest first along the type's index and
        // stopped after `keep + chunk` entries. Unlimited, PostgreSQL
        // collected the type's whole index and sorted it, walking the
        // entries of rows deleted since the last vacuum (~40 ms a prune
        // with 100,000 runs behind).
        let chunk = (2 * due).max(1_000).min(i64::MAX as usize) as i64;
        while self.prune_chunk(task_type, keep, chunk).await? == chunk as u64 {}
        Ok(())
    }

    /// Delete up to `chunk` of `task_type`'s entries beyond its newest
    /// `keep`, newest first; how many.
    async fn prune_chunk(
        &self,
        task_type: &str,
        keep: usize,
        chunk: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // On statistics older than the cache (the type taken for a few
        // hundred entries) the planner chose a bitmap scan even so.
        sqlx::query("SET LOCAL enable_bitmapscan = off")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let gone = sqlx::query(
            "DELETE FROM weft_cache WHERE key IN (SELECT key FROM weft_cache WHERE task_type = $1
             ORDER BY created_ms DESC, key DESC OFFSET $2 LIMIT $3)",
        )
        .bind(task_type)
        .bind(keep.min(i64::MAX as usize) as i64)
        .bind(chunk)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(gone)
    }

    /// Record `new` (`create_run` without counting it for statistics).
    async fn record_run(&self, new: NewRun) -> Result<Created, RunLogError> {
        let slot = new.idempotency_slot();
        if new.max_running.is_none() {
            // Without a quota the rule is "a repeat gets the first run":
            // the unique index decides it, in one statement with the other
            // runs submitted meanwhile (`batches`).
            let new = Arc::new(new);
            if self.creates.write(&self.batched, new.clone()).await? {
                return Ok(Created::New);
            }
            let existing = Self::existing(&self.pool, &slot).await?;
            return Ok(new.admit(existing, None));
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // One admission at a time per owner, across every host (an
        // idempotency key is per owner, so repeats are serialised too).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('weft-owner' || $1))")
            .bind(new.record.owner.as_deref().unwrap_or(""))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let existing = Self::existing(&mut *tx, &slot).await?;
        let running = match new.needs_running_count(&existing) {
            true => Some(running_of(&mut tx, &new.record.owner).await?),
            false => None,
        };
        let created = new.admit(existing, running);
        if created == Created::New {
            Self::insert_runs(&mut *tx, std::slice::from_ref(&new)).await?;
            tx.commit().await.map_err(backend)?;
        }
        Ok(created)
    }
}

#[async_trait::async_trait]
impl RunLog for PgStore {
    async fn create_run(&self, new: NewRun) -> Result<Created, RunLogError> {
        let created = self.record_run(new).await?;
        if created == Created::New {
            self.statistics.created();
        }
        Ok(created)
    }

    /// Without an idempotency key or a quota a new run is certain to be
    /// recorded (unless the database fails): it may start at once, while
    /// its record goes out with the others being submitted; its commits
    /// wait for the record (see `commit`). Otherwise as `create_run`.
    async fn create_run_applied(&self, new: NewRun) -> Result<(Created, Durable), RunLogError> {
        if !new.is_certain() {
            let created = self.create_run(new).await?;
            return Ok((created, Box::pin(async { Ok(()) })));
        }
        let run_id = new.record.run_id.clone();
        let (landed, landing) = tokio::sync::watch::channel(None);
        self.landing_runs().insert(run_id.clone(), landing);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let store = self.clone();
        tokio::spawn(async move {
            let created = store.creates.write(&store.batched, Arc::new(new)).await;
            if matches!(created, Ok(true)) {
                store.statistics.created();
            }
            let _ = landed.send(Some(matches!(created, Ok(true))));
            store.landing_runs().remove(&run_id);
            let _ = answer.send(created.and_then(|recorded| match recorded {
                true => Ok(()),
                // Not recorded (only an idempotency key, absent here,
                // makes a create answer so).
                false => Err(RunLogError::UnknownRun(run_id)),
            }));
        });
        let durable = async move {
            answered.await.unwrap_or_else(|_| {
                Err(backend(std::io::Error::other("the store's writer stopped")).into())
            })
        };
        Ok((Created::New, Box::pin(durable)))
    }

    async fn commit(&self, run_id: &str, commit: Commit) -> Result<(), RunLogError> {
        self.landed(run_id).await?;
        // With other runs' commits, in one statement (`commits`): node
        // states and inputs, events, the run's status and cache entries
        // land together or not at all.
        let prunes: Vec<(String, usize)> = commit
            .cache
            .iter()
            .filter_map(|p| Some((p.entry.task_type.clone(), p.keep_last?)))
            .collect();
        self.commits
            .write(&self.batched, (run_id.to_string(), commit))
            .await?;
        // Done: a failure to prune only leaves the cache larger for a while.
        for (task_type, keep) in prunes {
            if let Err(e) = self.prune_cache(&task_type, keep).await {
                tracing::warn!(error = %e, "cannot prune the output cache");
            }
        }
        Ok(())
    }

    async fn run_record(&self, run_id: &str) -> Result<RunRecord, RunLogError> {
        let row = sqlx::query("SELECT record FROM weft_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| RunLogError::UnknownRun(run_id.to_string()))?;
        let record: Json<Value> = row.get(0);
        Ok(from_json(run_id, record.0)?)
    }

    async fn load_run(&self, run_id: &str) -> Result<StoredRun, RunLogError> {
        let ids = [run_id.to_string()];
        let mut loaded = Self::select_runs(&self.pool, &ids).await?;
        loaded
            .pop()
            .unwrap_or_else(|| Err(RunLogError::UnknownRun(run_id.to_string())))
    }

    async fn load_runs(&self, run_ids: &[String]) -> Vec<Result<StoredRun, RunLogError>> {
        // A claim's runs in one statement, on a connection of their own: a
        // host claims one batch at a time.
        match Self::select_runs(&self.batched, run_ids).await {
            Ok(loaded) => loaded,
            Err(e) => {
                let message = e.to_string();
                let failed = || RunLogError::Store(StoreError::backend(message.as_str()));
                run_ids.iter().map(|_| Err(failed())).collect()
            }
        }
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>, RunLogError> {
        let rows = sqlx::query(
            "SELECT run_id, record FROM weft_runs ORDER BY created_ms DESC, run_id DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(run_records(rows)?)
    }

    async fn runs_page(
        &self,
        filter: &RunFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError> {
        // Only the conditions the filter has, so PostgreSQL plans each
        // shape for itself: a page of running runs reads the index of running
        // runs, one of an owner's reads theirs (a catch-all statement with
        // `$n IS NULL OR …` was planned once, generically: a scan of every run).
        let mut query = sqlx::QueryBuilder::new("SELECT run_id, record FROM weft_runs WHERE true");
        if let Some(owner) = &filter.owner {
            query.push(" AND (record->>'owner' = ").push_bind(owner);
            if filter.with_unowned {
                query.push(" OR record->>'owner' IS NULL");
            }
            query.push(")");
        }
        if let Some(status) = filter.status {
            // One of a few fixed words, written in: a partial index's
            // condition must be seen as a constant.
            query.push(format_args!(" AND status = '{}'", status.as_str()));
        }
        if let Some(since) = filter.since_ms {
            query
                .push(" AND created_ms >= ")
                .push_bind(since.min(i64::MAX as u64) as i64);
        }
        if let Some(graph) = &filter.graph {
            query
                .push(" AND (record->>'graph_name' = ")
                .push_bind(graph);
            query
                .push(" OR record->>'origin' = ")
                .push_bind(graph)
                .push(")");
        }
        if let Some(after) = after {
            query.push(" AND (created_ms, run_id) < (SELECT created_ms, run_id FROM weft_runs WHERE run_id = ");
            query.push_bind(after).push(")");
        }
        query
            .push(" ORDER BY created_ms DESC, run_id DESC LIMIT ")
            .push_bind(limit.min(i64::MAX as usize) as i64);
        let rows = query.build().fetch_all(&self.pool).await.map_err(backend)?;
        Ok(run_records(rows)?)
    }

    async fn node_input(&self, run_id: &str, node: &str) -> Result<Option<Value>, RunLogError> {
        let row = sqlx::query("SELECT input FROM weft_node_inputs WHERE run_id = $1 AND node = $2")
            .bind(run_id)
            .bind(node)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map(|r| r.get::<Json<Value>, _>(0).0))
    }

    async fn events(&self, run_id: &str, after: u64) -> Result<Vec<Event>, RunLogError> {
        sqlx::query(
            "SELECT seq, event FROM weft_events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|r| {
            let (seq, event): (i64, Json<Value>) = (r.get(0), r.get(1));
            from_json(&format!("{run_id}#{seq}"), event.0)
        })
        .collect::<Result<_, StoreError>>()
        .map_err(Into::into)
    }
    async fn runs_oldest(
        &self,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, RunLogError> {
        let (created, id) = after.map_or((-1, ""), |(c, id)| (c as i64, id));
        let rows = sqlx::query(
            "SELECT run_id, record FROM weft_runs WHERE (created_ms, run_id) > ($1, $2)
             ORDER BY created_ms, run_id LIMIT $3",
        )
        .bind(created)
        .bind(id)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(run_records(rows)?)
    }

    async fn delete_runs(&self, run_ids: &[String]) -> Result<usize, RunLogError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The runs first, locked in order: a commit in flight holds its
        // run's row (`FOR KEY SHARE`), so this waits for it, and a later
        // one finds no run and writes nothing. Their nodes, inputs and
        // events go with them (the trigger of migration 11), then their
        // offers and pins, and the cached outputs they made (unless another
        // run has put them since): each statement sees what was committed
        // before it. Signals go by ON DELETE CASCADE.
        let deleted = sqlx::query(
            "DELETE FROM weft_runs WHERE run_id IN (
               SELECT run_id FROM weft_runs WHERE run_id = ANY($1) ORDER BY run_id FOR UPDATE)",
        )
        .bind(run_ids)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        for sql in [
            "DELETE FROM weft_task_offers WHERE run_id = ANY($1)",
            "DELETE FROM weft_component_runs WHERE run_id = ANY($1)",
            "DELETE FROM weft_cache WHERE run_id = ANY($1)",
        ] {
            sqlx::query(sql)
                .bind(run_ids)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(deleted as usize)
    }
}

#[async_trait::async_trait]
impl OutputCache for PgStore {
    async fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        // Lookups made while one is in flight are coalesced into the next
        // query (one round trip for many concurrent tasks). The queries run
        // in a task of their own, so a caller that gives up stops nothing.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut lookups = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
            lookups.pending.push((key.to_string(), tx));
            !std::mem::replace(&mut lookups.running, true)
        };
        if start {
            tokio::spawn(look_up(self.batched.clone(), self.lookups.clone()));
        }
        rx.await
            .map_err(|_| StoreError::backend("the output-cache lookup was dropped"))?
    }

    async fn cache_stats(&self) -> Result<Vec<CacheStat>, StoreError> {
        Ok(sqlx::query(
            "SELECT task_type, count(*), coalesce(sum(size), 0)::bigint FROM weft_cache
             GROUP BY task_type ORDER BY task_type",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|r| CacheStat {
            task_type: r.get(0),
            entries: r.get::<i64, _>(1) as u64,
            bytes: r.get::<i64, _>(2) as u64,
        })
        .collect())
    }

    async fn cache_clear(&self, task_type: Option<&str>) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM weft_cache WHERE $1::text IS NULL OR task_type = $1")
                .bind(task_type)
                .execute(&self.pool)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }
}

#[async_trait::async_trait]
impl Components for PgStore {
    async fn component_put(&self, digest: &str, bytes: Bytes) -> Result<(), StoreError> {
        let kept = sqlx::query("SELECT 1 FROM weft_components WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        if kept.is_some() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO weft_components (digest, bytes, saved_ms) VALUES ($1, $2, $3)
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(bytes.as_ref())
        .bind(now_ms() as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn components_unused(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest FROM weft_components c
             WHERE NOT EXISTS (SELECT 1 FROM weft_component_runs p WHERE p.digest = c.digest)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn component_delete_unused(&self, digest: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM weft_components WHERE digest = $1
             AND NOT EXISTS (SELECT 1 FROM weft_component_runs WHERE digest = $1)",
        )
        .bind(digest)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(deleted > 0)
    }

    async fn component_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM weft_components WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }
}

#[async_trait::async_trait]
impl SavedGraphs for PgStore {
    async fn graph_put(
        &self,
        name: &str,
        graph: Graph,
        owner: Option<String>,
        shared_with: Vec<String>,
    ) -> Result<SavedGraph, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let version: i32 = sqlx::query(
            "INSERT INTO weft_graph_versions (name, last) VALUES ($1, 1)
             ON CONFLICT (name) DO UPDATE SET last = weft_graph_versions.last + 1 RETURNING last",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?
        .get(0);
        let saved = SavedGraph {
            name: name.to_string(),
            version: version as u32,
            saved_ms: now_ms(),
            owner,
            shared_with,
            graph,
        };
        sqlx::query("INSERT INTO weft_graphs (name, version, saved) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(version)
            .bind(json(&saved))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(saved)
    }

    async fn graph_get(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedGraph>, StoreError> {
        let row = sqlx::query(
            "SELECT saved FROM weft_graphs WHERE name = $1 AND ($2::integer IS NULL OR version = $2)
             ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .bind(version.map(|v| v as i32))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|r| from_json(name, r.get::<Json<Value>, _>(0).0))
            .transpose()
    }

    async fn graph_list(&self) -> Result<Vec<SavedGraph>, StoreError> {
        sqlx::query(
            "SELECT DISTINCT ON (name) name, saved FROM weft_graphs ORDER BY name, version DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|r| {
            let (name, saved): (String, Json<Value>) = (r.get(0), r.get(1));
            from_json(&name, saved.0)
        })
        .collect()
    }

    async fn graph_delete(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM weft_graphs WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected()
            > 0)
    }
}

#[async_trait::async_trait]
impl Coordination for PgStore {
    async fn rate_state(&self, id: &str, since_ms: u64) -> Result<RateState, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        read_rate(&mut conn, id, since_ms).await
    }

    async fn rate_acquire(
        &self,
        id: &str,
        at_ms: u64,
        window_ms: u64,
        max: u32,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // One admission at a time per limiter id, across every host.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let cutoff = weft_core::rate::window_start(at_ms, window_ms) as i64;
        sqlx::query("DELETE FROM weft_rate_starts WHERE id = $1 AND at_ms < $2")
            .bind(id)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let state = read_rate(&mut tx, id, cutoff as u64).await?;
        let wait =
            weft_core::rate::wait_ms(&state.starts, state.paused_until_ms, at_ms, window_ms, max);
        if wait.is_none() {
            sqlx::query(
                "INSERT INTO weft_rate_starts (id, at_ms, n) VALUES ($1, $2, 1)
                 ON CONFLICT (id, at_ms) DO UPDATE SET n = weft_rate_starts.n + 1",
            )
            .bind(id)
            .bind(at_ms as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(wait)
    }

    async fn rate_pause(&self, id: &str, until_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO weft_rate_pauses (id, until_ms) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET until_ms = GREATEST(weft_rate_pauses.until_ms, excluded.until_ms)",
        )
        .bind(id)
        .bind(until_ms as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn lease_run(
        &self,
        run_id: &str,
        host: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        self.landed(run_id).await.ok();
        Ok(sqlx::query(
            "UPDATE weft_runs SET lease_host = $2, lease_until_ms = $4
             WHERE run_id = $1 AND status = 'running'
               AND (lease_host IS NULL OR lease_host = $2 OR lease_until_ms < $3)",
        )
        .bind(run_id)
        .bind(host)
        .bind(now_ms as i64)
        .bind(until_ms as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1)
    }

    async fn claim_runs(
        &self,
        host: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // Oldest first, skipping runs another claimer has locked.
        Ok(sqlx::query(
            "WITH free AS (
               SELECT run_id, created_ms FROM weft_runs
               WHERE status = 'running' AND (lease_host IS NULL OR lease_until_ms < $2)
               ORDER BY created_ms, run_id LIMIT $4 FOR UPDATE SKIP LOCKED
             ), claimed AS (
               UPDATE weft_runs r SET lease_host = $1, lease_until_ms = $3
               FROM free WHERE r.run_id = free.run_id
               RETURNING r.run_id, free.created_ms
             )
             SELECT run_id FROM claimed ORDER BY created_ms, run_id",
        )
        .bind(host)
        .bind(now_ms as i64)
        .bind(until_ms as i64)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    async fn renew_leases(
        &self,
        host: &str,
        runs: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        // A run whose record is on its way when the update starts holds the
        // lease it is being recorded with (the update may not see it yet);
        // one that landed before, the update sees.
        let landing: HashSet<String> = {
            let landing = self.landing_runs();
            runs.iter()
                .filter(|r| landing.contains_key(*r))
                .cloned()
                .collect()
        };
        let lost = self
            .renew(
                "UPDATE weft_runs SET lease_until_ms = $3 WHERE run_id IN (
                   SELECT run_id FROM weft_runs WHERE run_id = ANY($2) AND lease_host = $1
                   ORDER BY run_id FOR NO KEY UPDATE)
                 RETURNING run_id",
                host,
                runs,
                until_ms,
            )
            .await?;
        Ok(lost.into_iter().filter(|r| !landing.contains(r)).collect())
    }

    async fn release_run(&self, run_id: &str, host: &str) -> Result<(), StoreError> {
        // A run still landing is released once its record is there.
        self.landed(run_id).await.ok();
        let released = sqlx::query(
            "UPDATE weft_runs SET lease_host = NULL, lease_until_ms = NULL
             WHERE run_id = $1 AND lease_host = $2 RETURNING status",
        )
        .bind(run_id)
        .bind(host)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        if released.is_some_and(|r| r.get::<String, _>(0) == "running") {
            // Still running (its host is stopping): let another host take it.
            sqlx::query("SELECT pg_notify('weft_runs', $1)")
                .bind(run_id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    async fn task_offer(&self, offer: TaskOffer) -> Result<(), StoreError> {
        self.landed(&offer.run_id)
            .await
            .map_err(|e| StoreError::backend(e.to_string()))?;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO weft_task_offers (key, run_id, task_type, offered_ms, offer)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET task_type = excluded.task_type,
               offered_ms = excluded.offered_ms, offer = excluded.offer,
               claim_host = NULL, claim_until_ms = NULL, result = NULL",
        )
        .bind(&offer.key)
        .bind(&offer.run_id)
        .bind(&offer.task_type)
        .bind(offer.offered_ms as i64)
        .bind(json(&offer))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("SELECT pg_notify('weft_tasks', '')")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn task_claim(
        &self,
        host: &str,
        types: &[String],
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Option<TaskOffer>, StoreError> {
        let row = sqlx::query(
            "UPDATE weft_task_offers SET claim_host = $1, claim_until_ms = $4
             WHERE key = (
               SELECT key FROM weft_task_offers
               WHERE result IS NULL AND task_type = ANY($2)
                 AND (claim_host IS NULL OR claim_until_ms < $3)
               ORDER BY offered_ms, key LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key, offer",
        )
        .bind(host)
        .bind(types)
        .bind(now_ms as i64)
        .bind(until_ms as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|r| {
            let (key, offer): (String, Json<Value>) = (r.get(0), r.get(1));
            from_json(&key, offer.0)
        })
        .transpose()
    }

    async fn task_renew(
        &self,
        host: &str,
        keys: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.renew(
            "UPDATE weft_task_offers SET claim_until_ms = $3
             WHERE key = ANY($2) AND claim_host = $1 RETURNING key",
            host,
            keys,
            until_ms,
        )
        .await
    }

    async fn task_finish(&self, key: &str, host: &str, result: Value) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let held = sqlx::query(
            "UPDATE weft_task_offers SET result = $3 WHERE key = $1 AND claim_host = $2",
        )
        .bind(key)
        .bind(host)
        .bind(Json(result))
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if held {
            sqlx::query("SELECT pg_notify('weft_tasks', '')")
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(held)
    }

    async fn task_results(&self, keys: &[String]) -> Result<Vec<(String, Value)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query(
            "DELETE FROM weft_task_offers WHERE key = ANY($1) AND result IS NOT NULL
             RETURNING key, result",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|r| {
            let (key, result): (String, Json<Value>) = (r.get(0), r.get(1));
            (key, result.0)
        })
        .collect())
    }

    async fn task_withdraw(&self, run_id: &str, keys: Option<&[String]>) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM weft_task_offers WHERE run_id = $1 AND ($2::text[] IS NULL OR key = ANY($2))",
        )
        .bind(run_id)
        .bind(keys)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn slot_acquire(&self, slot: SlotRequest<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // One admission at a time per limiter id, across every host.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('weft-slot' || $1))")
            .bind(slot.id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM weft_slots WHERE id = $1 AND until_ms < $2")
            .bind(slot.id)
            .bind(slot.now_ms as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let held: i64 = sqlx::query("SELECT count(*) FROM weft_slots WHERE id = $1")
            .bind(slot.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?
            .get(0);
        let free = held < i64::from(slot.max);
        if free {
            sqlx::query(
                "INSERT INTO weft_slots (id, token, host, until_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id, token) DO UPDATE SET until_ms = excluded.until_ms",
            )
            .bind(slot.id)
            .bind(slot.token)
            .bind(slot.host)
            .bind(slot.until_ms as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(free)
    }

    async fn slot_release(&self, id: &str, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM weft_slots WHERE id = $1 AND token = $2")
            .bind(id)
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn slot_renew(
        &self,
        host: &str,
        tokens: &[String],
        until_ms: u64,
    ) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE weft_slots SET until_ms = $3 WHERE host = $1 AND token = ANY($2)")
            .bind(host)
            .bind(tokens)
            .bind(until_ms as i64)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn task_take_back(&self, key: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM weft_task_offers WHERE key = $1 AND claim_host IS NULL AND result IS NULL",
        )
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1)
    }

    async fn wait_for_tasks(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.tasks.notified()).await;
    }
}

/// A `weft_signals` announcement (`["run", "name"]`) read; one that cannot
/// be read names its whole payload as the run, and no signal.
fn arrival(payload: &str) -> crate::signals::Arrival {
    match serde_json::from_str::<(String, String)>(payload) {
        Ok((run_id, name)) => crate::signals::Arrival { run_id, name },
        Err(_) => crate::signals::Arrival::new(payload, ""),
    }
}
