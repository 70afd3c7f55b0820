//! Key-value spaces in PostgreSQL: `weft_kv` (one row per key, versions
//! from the sequence `weft_kv_versions`) and `weft_kv_usage` (one row per
//! space). A write locks its space's usage row first, so the writes to one
//! space, from any host, happen one after another: of hosts racing to
//! compare-and-swap a key, one wins. A key's vector is the row's `vector`
//! (`real[]`); nearest keys are ranked by pgvector's cosine distance in SQL
//! when the extension is installed, else read out and ranked here.

use futures::TryStreamExt;
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{PgStore, backend};
use crate::StoreError;
use crate::key_values::{
    Delete, Entry, KeyValues, KvError, Near, Nearest, Quota, Space, Usage, Write, admit,
    check_version,
};

/// Whether pgvector is installed in the database: made so if its files are
/// on the server and the role may (`CREATE EXTENSION IF NOT EXISTS vector`,
/// once, under the migration lock); without it nearest keys are ranked by
/// the host.
pub(super) async fn pgvector(pool: &PgPool) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    execute(&mut tx, "SELECT pg_advisory_xact_lock(7265746674)").await?;
    let available = "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'";
    if found(&mut tx, available).await? {
        execute(&mut tx, "SAVEPOINT pgvector").await?;
        if let Err(e) = execute(&mut tx, "CREATE EXTENSION IF NOT EXISTS vector").await {
            tracing::info!(error = %e, "pgvector is on the server but cannot be installed");
            execute(&mut tx, "ROLLBACK TO SAVEPOINT pgvector").await?;
        }
    }
    let installed = found(
        &mut tx,
        "SELECT 1 FROM pg_extension WHERE extname = 'vector'",
    )
    .await?;
    tx.commit().await.map_err(backend)?;
    tracing::info!(
        pgvector = installed,
        "nearest keys ranked by {}",
        match installed {
            true => "pgvector",
            false => "the host (pgvector is not installed)",
        }
    );
    Ok(installed)
}

async fn execute(tx: &mut Transaction<'_, Postgres>, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

/// Whether `sql` finds a row.
async fn found(tx: &mut Transaction<'_, Postgres>, sql: &'static str) -> Result<bool, StoreError> {
    let row = sqlx::query(sql).fetch_optional(&mut **tx).await;
    Ok(row.map_err(backend)?.is_some())
}

/// The bytes a row counts for: key, value and vector (SQL, on `weft_kv`).
macro_rules! row_bytes {
    () => {
        "octet_length(key) + octet_length(value) + 4 * coalesce(array_length(vector, 1), 0)"
    };
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn entry(row: &sqlx::postgres::PgRow) -> Entry {
    Entry {
        value: row.get("value"),
        version: row.get::<i64, _>("version") as u64,
        expires_ms: row.get::<Option<i64>, _>("expires_ms").map(|t| t as u64),
    }
}

/// Lock `space`'s usage row (made if missing) and read it.
async fn lock_usage(
    tx: &mut Transaction<'_, Postgres>,
    space: &Space,
) -> Result<Usage, StoreError> {
    sqlx::query(
        "INSERT INTO weft_kv_usage (scope, namespace, keys, bytes) VALUES ($1, $2, 0, 0)
         ON CONFLICT DO NOTHING",
    )
    .bind(&space.scope)
    .bind(&space.namespace)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    let row = sqlx::query(
        "SELECT keys, bytes FROM weft_kv_usage WHERE scope = $1 AND namespace = $2 FOR UPDATE",
    )
    .bind(&space.scope)
    .bind(&space.namespace)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(Usage {
        keys: row.get::<i64, _>(0) as u64,
        bytes: row.get::<i64, _>(1) as u64,
    })
}

async fn save_usage(
    tx: &mut Transaction<'_, Postgres>,
    space: &Space,
    usage: Usage,
) -> Result<(), StoreError> {
    let sql = match usage.keys {
        0 => "DELETE FROM weft_kv_usage WHERE scope = $1 AND namespace = $2",
        _ => "UPDATE weft_kv_usage SET keys = $3, bytes = $4 WHERE scope = $1 AND namespace = $2",
    };
    sqlx::query(sql)
        .bind(&space.scope)
        .bind(&space.namespace)
        .bind(usage.keys as i64)
        .bind(usage.bytes as i64)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The entry of `key` in `space`, live or not, with the bytes it counts
/// for.
async fn stored(
    tx: &mut Transaction<'_, Postgres>,
    space: &Space,
    key: &str,
) -> Result<Option<(Entry, u64)>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT value, version, expires_ms, ",
        row_bytes!(),
        " AS bytes FROM weft_kv WHERE scope = $1 AND namespace = $2 AND key = $3"
    ))
    .bind(&space.scope)
    .bind(&space.namespace)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(row.map(|r| (entry(&r), r.get::<i32, _>("bytes") as u64)))
}

#[async_trait::async_trait]
impl KeyValues for PgStore {
    async fn kv_get(
        &self,
        space: &Space,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        // Key by key, each by the whole primary key: `key = ANY($3)` is
        // planned as a filter over every key of the namespace (EXPLAIN on
        // 10,000 rows), so reads slowed with the namespace's size.
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            let row = sqlx::query(
                "SELECT key, value, version, expires_ms FROM weft_kv
                 WHERE scope = $1 AND namespace = $2 AND key = $3
                   AND (expires_ms IS NULL OR expires_ms > $4)",
            )
            .bind(&space.scope)
            .bind(&space.namespace)
            .bind(key)
            .bind(ms(now_ms))
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
            rows.extend(row);
        }
        let found: std::collections::HashMap<String, Entry> = rows
            .iter()
            .map(|r| (r.get::<String, _>("key"), entry(r)))
            .collect();
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn kv_set(
        &self,
        space: &Space,
        writes: &[Write],
        quota: Quota,
        now_ms: u64,
    ) -> Result<Vec<u64>, KvError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let before = lock_usage(&mut tx, space).await?;
        let mut after = before;
        for w in writes {
            let old = stored(&mut tx, space, &w.key).await?;
            let current = old
                .as_ref()
                .filter(|(e, _)| e.live(now_ms))
                .map(|(e, _)| e.version);
            check_version(&w.key, current, w.if_version)?;
            match &old {
                Some((_, size)) => after.bytes = after.bytes.saturating_sub(*size),
                None => after.keys += 1,
            }
            after.bytes += w.size();
        }
        admit(space, before, after, quota)?;
        let mut versions = Vec::with_capacity(writes.len());
        for w in writes {
            let row = sqlx::query(
                "INSERT INTO weft_kv (scope, namespace, key, value, version, expires_ms, vector)
                 VALUES ($1, $2, $3, $4, nextval('weft_kv_versions'), $5, $6)
                 ON CONFLICT (scope, namespace, key) DO UPDATE
                   SET value = $4, version = nextval('weft_kv_versions'), expires_ms = $5,
                       vector = $6
                 RETURNING version",
            )
            .bind(&space.scope)
            .bind(&space.namespace)
            .bind(&w.key)
            .bind(&w.value)
            .bind(w.expires_ms.map(ms))
            .bind(&w.vector)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            versions.push(row.get::<i64, _>(0) as u64);
        }
        save_usage(&mut tx, space, after).await?;
        tx.commit().await.map_err(backend)?;
        Ok(versions)
    }

    async fn kv_delete(
        &self,
        space: &Space,
        deletes: &[Delete],
        now_ms: u64,
    ) -> Result<Vec<bool>, KvError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut usage = lock_usage(&mut tx, space).await?;
        // One statement deletes them all and says what was there; a failed
        // condition then drops the transaction, which undoes it.
        let keys: Vec<&str> = deletes.iter().map(|d| d.key.as_str()).collect();
        let rows = sqlx::query(concat!(
            "DELETE FROM weft_kv WHERE scope = $1 AND namespace = $2 AND key = ANY($3)
             RETURNING key, version, expires_ms, ",
            row_bytes!(),
            " AS bytes"
        ))
        .bind(&space.scope)
        .bind(&space.namespace)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut old = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.get("key");
            let bytes = row.get::<i32, _>("bytes") as u64;
            let expires = row.get::<Option<i64>, _>("expires_ms").map(|t| t as u64);
            let live = expires.is_none_or(|t| t > now_ms);
            let version = live.then(|| row.get::<i64, _>("version") as u64);
            usage.keys = usage.keys.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(bytes);
            old.insert(key, version);
        }
        let mut found = Vec::with_capacity(deletes.len());
        for d in deletes {
            // A key named twice was there only the first time.
            let current = old.get_mut(&d.key).and_then(Option::take);
            check_version(&d.key, current, d.if_version)?;
            found.push(current.is_some());
        }
        save_usage(&mut tx, space, usage).await?;
        tx.commit().await.map_err(backend)?;
        Ok(found)
    }

    async fn kv_list(
        &self,
        space: &Space,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        // `starts_with` and `>` on keys in C collation (bytes), as the other
        // stores order them.
        let rows = sqlx::query(
            "SELECT key FROM weft_kv
             WHERE scope = $1 AND namespace = $2 AND starts_with(key, $3)
               AND ($4::text IS NULL OR key COLLATE \"C\" > $4 COLLATE \"C\")
               AND (expires_ms IS NULL OR expires_ms > $5)
             ORDER BY key COLLATE \"C\" LIMIT $6",
        )
        .bind(&space.scope)
        .bind(&space.namespace)
        .bind(prefix)
        .bind(after)
        .bind(ms(now_ms))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
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
        if self.pgvector {
            return nearest_by_pgvector(&self.pool, space, prefix, query, skip, limit, now_ms)
                .await;
        }
        let mut rows = sqlx::query(
            "SELECT key, vector FROM weft_kv
             WHERE scope = $1 AND namespace = $2 AND starts_with(key, $3)
               AND array_length(vector, 1) = $4
               AND (expires_ms IS NULL OR expires_ms > $5)",
        )
        .bind(&space.scope)
        .bind(&space.namespace)
        .bind(prefix)
        .bind(query.len() as i32)
        .bind(ms(now_ms))
        .fetch(&self.pool);
        let mut nearest = Nearest::new(query, skip, limit);
        while let Some(row) = rows.try_next().await.map_err(backend)? {
            nearest.offer(row.get(0), &row.get::<Vec<f32>, _>(1));
        }
        Ok(nearest.finish())
    }

    async fn kv_spaces(&self, scope: &str) -> Result<Vec<(String, Usage)>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, keys, bytes FROM weft_kv_usage
             WHERE scope = $1 AND keys > 0 ORDER BY namespace COLLATE \"C\"",
        )
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let usage = Usage {
                    keys: r.get::<i64, _>(1) as u64,
                    bytes: r.get::<i64, _>(2) as u64,
                };
                (r.get(0), usage)
            })
            .collect())
    }

    async fn kv_sweep(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        // The spaces with expired entries, each then swept under its usage
        // lock, as every write to it is.
        let spaces = sqlx::query(
            "SELECT DISTINCT scope, namespace FROM (
               SELECT scope, namespace FROM weft_kv
               WHERE expires_ms IS NOT NULL AND expires_ms <= $1
               ORDER BY expires_ms LIMIT $2) due
             ORDER BY scope, namespace",
        )
        .bind(ms(now_ms))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut swept = 0;
        for row in spaces {
            let space = Space::new(row.get(0), row.get(1));
            let mut usage = lock_usage(&mut tx, &space).await?;
            let gone = sqlx::query(concat!(
                "DELETE FROM weft_kv WHERE scope = $1 AND namespace = $2 AND key IN (
                   SELECT key FROM weft_kv WHERE scope = $1 AND namespace = $2
                     AND expires_ms IS NOT NULL AND expires_ms <= $3 LIMIT $4)
                 RETURNING ",
                row_bytes!()
            ))
            .bind(&space.scope)
            .bind(&space.namespace)
            .bind(ms(now_ms))
            .bind(limit.saturating_sub(swept) as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            for row in &gone {
                usage.keys = usage.keys.saturating_sub(1);
                usage.bytes = usage.bytes.saturating_sub(row.get::<i32, _>(0) as u64);
            }
            swept += gone.len();
            save_usage(&mut tx, &space, usage).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(swept)
    }
}

/// [`KeyValues::kv_nearest`] by pgvector: cosine distance (`<=>`), exact
/// (no index: vectors of any length share the column). pgvector's distance
/// is NaN when a vector is all zeros: ranked as similarity 0, as the other
/// stores do. Ranked by the similarity as `f32`, then by key, as the other
/// stores rank; pgvector sums in another order than the host, so keys
/// within ~1e-6 of each other may still come in another order.
async fn nearest_by_pgvector(
    pool: &PgPool,
    space: &Space,
    prefix: &str,
    query: &[f32],
    skip: usize,
    limit: usize,
    now_ms: u64,
) -> Result<Vec<Near>, StoreError> {
    let rows = sqlx::query(
        "SELECT key, similarity FROM (
           SELECT key, (1 - CASE WHEN d = 'NaN' THEN 1 ELSE d END)::real AS similarity FROM (
             SELECT key, vector::vector <=> $4::real[]::vector AS d FROM weft_kv
             WHERE scope = $1 AND namespace = $2 AND starts_with(key, $3)
               AND array_length(vector, 1) = $5
               AND (expires_ms IS NULL OR expires_ms > $6)) scored) ranked
         ORDER BY similarity DESC, key COLLATE \"C\" OFFSET $7 LIMIT $8",
    )
    .bind(&space.scope)
    .bind(&space.namespace)
    .bind(prefix)
    .bind(query)
    .bind(query.len() as i32)
    .bind(ms(now_ms))
    .bind(skip as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    Ok(rows
        .iter()
        .map(|r| Near {
            key: r.get(0),
            similarity: r.get::<f32, _>(1),
        })
        .collect())
}
