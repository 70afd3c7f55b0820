//! Fresh statistics while a database grows fast.
//!
//! PostgreSQL plans a statement on its tables' statistics, which
//! autovacuum refreshes (`ANALYZE`) only after a tenth of a table changed
//! and at most once a minute. A connection also keeps a statement's
//! generic plan after its fifth use. Made while `weft_runs` held a few
//! hundred rows, the commit statement's plan read every run to find its own,
//! and went on doing so: a backlog of 100,000 runs drained at half the rate
//! of 10,000. An `ANALYZE` makes every connection plan again.
//!
//! So each host counts the runs it creates and analyzes the tables its
//! statements look up (`weft_runs`, `weft_cache`) whenever it has created
//! as many as `weft_runs` held at the last analysis (at least
//! [`FIRST_AT`]): about log₂ of the runs times while a database grows from
//! empty, rarely once it is steady. Planning every statement instead
//! (`plan_cache_mode = force_custom_plan`) costs a one-node run ~30% more
//! server CPU; the batched statements are never planned twice on one
//! connection between analyses (`batched_pool`). The payload columns
//! (JSON documents) carry no statistics (schema 13): an analysis samples
//! ids, statuses and times: 20–45 ms each in a drain of 10,000 runs,
//! where they took 110–150.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::PgPool;

/// Runs created before the first analysis.
pub(super) const FIRST_AT: u64 = 1_000;

/// When this host next analyzes.
#[derive(Clone)]
pub(super) struct Statistics(Arc<Counts>);

struct Counts {
    /// The database whose tables are analyzed.
    pool: PgPool,
    /// Runs this host created since the last analysis.
    created: AtomicU64,
    /// Analyze once `created` reaches this.
    due: AtomicU64,
    /// An analysis is under way.
    analyzing: AtomicBool,
}

impl Statistics {
    /// Due after as many runs as `weft_runs` holds by its statistics.
    pub(super) async fn of(pool: PgPool) -> Self {
        let stats = Statistics(Arc::new(Counts {
            pool,
            created: AtomicU64::new(0),
            due: AtomicU64::new(FIRST_AT),
            analyzing: AtomicBool::new(false),
        }));
        stats.set_due().await;
        stats
    }

    /// Count a run created; analyze in the background when due.
    pub(super) fn created(&self) {
        let counts = &self.0;
        let created = counts.created.fetch_add(1, Ordering::Relaxed) + 1;
        if created < counts.due.load(Ordering::Relaxed)
            || counts.analyzing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        counts.created.store(0, Ordering::Relaxed);
        let stats = self.clone();
        tokio::spawn(async move {
            // Not the owner of the tables: PostgreSQL warns and skips them.
            if let Err(e) = sqlx::query("ANALYZE weft_runs, weft_cache")
                .execute(&stats.0.pool)
                .await
            {
                tracing::warn!(error = %e, "cannot analyze the run tables");
            }
            stats.set_due().await;
            stats.0.analyzing.store(false, Ordering::Release);
        });
    }

    /// Next due after as many runs as `weft_runs` holds now, by its
    /// statistics (unknown before the first analysis: [`FIRST_AT`]).
    async fn set_due(&self) {
        let rows: Option<f32> =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'weft_runs'::regclass")
                .fetch_optional(&self.0.pool)
                .await
                .ok()
                .flatten();
        let rows = rows.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(0.0) as u64;
        self.0.due.store(rows.max(FIRST_AT), Ordering::Relaxed);
    }
}
