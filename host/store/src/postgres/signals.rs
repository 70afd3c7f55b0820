//! Signals in PostgreSQL: `weft_signals`, one row per (run, name), deleted
//! with the run (`ON DELETE CASCADE`). A new one is announced with
//! `NOTIFY weft_signals` (the run's id), which every host's listener feeds
//! to its runs.

use sqlx::Row;

use super::{PgStore, backend, from_json, json};
use crate::signals::{Signal, Signals};
use crate::{RunLogError, StoreError};

#[async_trait::async_trait]
impl Signals for PgStore {
    async fn signal_put(
        &self,
        run_id: &str,
        name: &str,
        signal: &Signal,
    ) -> Result<bool, RunLogError> {
        // The first of a name stays; an unknown run inserts nothing.
        let put = sqlx::query(
            "WITH new AS (
               INSERT INTO weft_signals (run_id, name, signal)
               SELECT run_id, $2, $3 FROM weft_runs WHERE run_id = $1
               ON CONFLICT (run_id, name) DO NOTHING
               RETURNING run_id)
             SELECT (SELECT count(*) FROM new),
                    pg_notify('weft_signals', json_build_array($1::text, $2::text)::text)
               FROM weft_runs WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(name)
        .bind(json(signal))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        match put {
            None => Err(RunLogError::UnknownRun(run_id.to_string())),
            Some(row) => Ok(row.get::<i64, _>(0) == 1),
        }
    }

    async fn signal_get(&self, run_id: &str, name: &str) -> Result<Option<Signal>, StoreError> {
        let row = sqlx::query("SELECT signal FROM weft_signals WHERE run_id = $1 AND name = $2")
            .bind(run_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| from_json(name, r.get(0))).transpose()
    }

    fn signal_feed(&self) -> tokio::sync::broadcast::Receiver<crate::signals::Arrival> {
        self.signal_feed.subscribe()
    }
}
