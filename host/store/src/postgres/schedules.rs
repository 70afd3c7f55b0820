//! Schedules in PostgreSQL: `weft_schedules`, one row per (owner, name),
//! with `due_ms` (null while paused or finished) indexed. Advancing is one
//! conditional `UPDATE`: of hosts racing on an occurrence, one wins.

use sqlx::Row;

use super::{PgStore, backend, from_json, json};
use crate::StoreError;
use crate::schedules::{Fired, Schedule, Schedules};

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn decode_rows(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<Schedule>, StoreError> {
    rows.into_iter()
        .map(|row| from_json("schedule", row.get(0)))
        .collect()
}

#[async_trait::async_trait]
impl Schedules for PgStore {
    async fn schedule_put(&self, schedule: &Schedule) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO weft_schedules (owner, name, due_ms, schedule) VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner, name) DO UPDATE SET due_ms = $3, schedule = $4",
        )
        .bind(&schedule.owner)
        .bind(&schedule.name)
        .bind(schedule.due_ms().map(ms))
        .bind(json(schedule))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn schedule_get(&self, owner: &str, name: &str) -> Result<Option<Schedule>, StoreError> {
        let row = sqlx::query("SELECT schedule FROM weft_schedules WHERE owner = $1 AND name = $2")
            .bind(owner)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| from_json(name, r.get(0))).transpose()
    }

    async fn schedule_list(&self, owner: &str) -> Result<Vec<Schedule>, StoreError> {
        let rows =
            sqlx::query("SELECT schedule FROM weft_schedules WHERE owner = $1 ORDER BY name")
                .bind(owner)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        decode_rows(rows)
    }

    async fn schedule_delete(&self, owner: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM weft_schedules WHERE owner = $1 AND name = $2")
            .bind(owner)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn schedules_due(&self, now_ms: u64, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        let rows = sqlx::query(
            "SELECT schedule FROM weft_schedules WHERE due_ms IS NOT NULL AND due_ms <= $1
             ORDER BY due_ms, owner, name LIMIT $2",
        )
        .bind(ms(now_ms))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        decode_rows(rows)
    }

    async fn schedule_advance(
        &self,
        owner: &str,
        name: &str,
        from_ms: u64,
        to_ms: Option<u64>,
        last: Fired,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE weft_schedules
             SET due_ms = $4,
                 schedule = schedule || jsonb_build_object('next_ms', $4::bigint, 'last', $5::jsonb)
             WHERE owner = $1 AND name = $2 AND due_ms = $3",
        )
        .bind(owner)
        .bind(name)
        .bind(ms(from_ms))
        .bind(to_ms.map(ms))
        .bind(json(&last))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
