//! The SQL tasks' databases: a pool per configured database and task, with
//! the grant's limits applied to every call.
//!
//! One statement per call, parameters always bound. `data.sql-query` only
//! reads: on PostgreSQL in a `READ ONLY` transaction, on SQLite through a
//! read-only authorizer ([`super::sqlite_guard`]). Every statement runs under
//! the database's `statement_timeout_ms`, and a query's result is capped at
//! `max_rows` rows and `max_result_bytes` bytes (JSON), read row by row:
//! past a cap the task fails naming it, instead of reading everything into
//! memory.

use futures::TryStreamExt;
use serde_json::{Map, Value, json};
use sqlx::{Column, Row};

use super::DatabaseConfig;
use super::sqlite_guard::{self, Access};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SqlError {
    /// The database refused or failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The grant refuses the statement.
    #[error("refused: {0}")]
    Refused(String),
    /// A limit of the grant was reached.
    #[error("{0}")]
    Limit(String),
}

/// A connection pool to a configured database, for one kind of access.
#[derive(Clone)]
pub(super) struct Db {
    pool: Pool,
    access: Access,
    limits: DatabaseConfig,
}

#[derive(Clone)]
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Db {
    /// Connect to `config`'s database (`url` checked by the caller).
    pub(super) async fn connect(config: &DatabaseConfig, access: Access) -> Result<Db, SqlError> {
        let url = config.url.as_str();
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(sqlx::PgPool::connect(url).await?)
        } else {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        let mut handle = conn.lock_handle().await?;
                        // SAFETY: the locked handle is live and ours alone.
                        unsafe { sqlite_guard::install(handle.as_raw_handle(), access) }
                            .map_err(|e| sqlx::Error::Configuration(e.into()))
                    })
                })
                .connect_with(options)
                .await?;
            Pool::Sqlite(pool)
        };
        Ok(Db {
            pool,
            access,
            limits: config.clone(),
        })
    }

    /// Run `sql` with `params` bound in order: its rows for a read, how many
    /// rows it touched for a write.
    pub(super) async fn run(&self, sql: &str, params: &[Value]) -> Result<Value, SqlError> {
        match &self.pool {
            Pool::Postgres(pool) => self.run_postgres(pool, sql, params).await,
            Pool::Sqlite(pool) => self.run_sqlite(pool, sql, params).await,
        }
    }

    async fn run_postgres(
        &self,
        pool: &sqlx::PgPool,
        sql: &str,
        params: &[Value],
    ) -> Result<Value, SqlError> {
        let mut tx = pool.begin().await?;
        if self.access == Access::Read {
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        // An integer, not user text.
        let timeout = format!(
            "SET LOCAL statement_timeout = {}",
            self.limits.statement_timeout_ms
        );
        sqlx::query(sqlx::AssertSqlSafe(timeout))
            .execute(&mut *tx)
            .await?;
        let q = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), params);
        let out = match self.access {
            Access::Read => {
                let mut rows = q.fetch(&mut *tx);
                let mut result = Rows::new(&self.limits);
                while let Some(row) = rows.try_next().await.map_err(|e| self.timed_out(e))? {
                    result.push(pg_row(&row))?;
                }
                drop(rows);
                result.into_json()
            }
            Access::Write => {
                let done = q.execute(&mut *tx).await.map_err(|e| self.timed_out(e))?;
                json!({"rows_affected": done.rows_affected()})
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn run_sqlite(
        &self,
        pool: &sqlx::SqlitePool,
        sql: &str,
        params: &[Value],
    ) -> Result<Value, SqlError> {
        let mut conn = pool.acquire().await?;
        let timeout = std::time::Duration::from_millis(self.limits.statement_timeout_ms);
        let deadline = std::time::Instant::now() + timeout;
        {
            let mut handle = conn.lock_handle().await?;
            // SAFETY: the locked handle is live and ours alone.
            unsafe { sqlite_guard::check(handle.as_raw_handle(), sql, self.access) }
                .map_err(SqlError::Refused)?;
            // SQLite interrupts the statement once this says false.
            handle.set_progress_handler(1_000, move || std::time::Instant::now() < deadline);
        }
        let q = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())), params);
        let out = match self.access {
            Access::Read => {
                let mut rows = q.fetch(&mut *conn);
                let mut result = Rows::new(&self.limits);
                loop {
                    match rows.try_next().await {
                        Ok(Some(row)) => result.push(sqlite_row(&row))?,
                        Ok(None) => break Ok(result.into_json()),
                        Err(e) => break Err(e),
                    }
                }
            }
            Access::Write => q
                .execute(&mut *conn)
                .await
                .map(|done| json!({"rows_affected": done.rows_affected()})),
        };
        out.map_err(|e| match std::time::Instant::now() >= deadline {
            true => self.timeout_error(),
            false => SqlError::Db(e),
        })
    }

    /// PostgreSQL's "canceling statement due to statement timeout", said
    /// with the limit that caused it.
    fn timed_out(&self, e: sqlx::Error) -> SqlError {
        let code = e.as_database_error().and_then(|d| d.code());
        match code.as_deref() {
            Some("57014") => self.timeout_error(),
            _ => SqlError::Db(e),
        }
    }

    fn timeout_error(&self) -> SqlError {
        SqlError::Limit(format!(
            "the statement ran past the database's statement_timeout_ms ({} ms)",
            self.limits.statement_timeout_ms
        ))
    }
}

/// A query's result, capped as it is read.
struct Rows<'a> {
    rows: Vec<Value>,
    bytes: usize,
    limits: &'a DatabaseConfig,
}

impl<'a> Rows<'a> {
    fn new(limits: &'a DatabaseConfig) -> Self {
        Rows {
            rows: Vec::new(),
            bytes: 0,
            limits,
        }
    }

    fn push(&mut self, row: Value) -> Result<(), SqlError> {
        if self.rows.len() == self.limits.max_rows {
            return Err(SqlError::Limit(format!(
                "the result has more than max_rows ({}) rows: add a LIMIT, or raise max_rows",
                self.limits.max_rows
            )));
        }
        self.bytes += serde_json::to_vec(&row).map_or(0, |v| v.len());
        if self.bytes > self.limits.max_result_bytes {
            return Err(SqlError::Limit(format!(
                "the result is larger than max_result_bytes ({} bytes)",
                self.limits.max_result_bytes
            )));
        }
        self.rows.push(row);
        Ok(())
    }

    fn into_json(self) -> Value {
        json!({"count": self.rows.len(), "rows": self.rows})
    }
}

/// Bind `params` in order: null, booleans, numbers, strings; objects and
/// arrays as JSON.
fn bind_all<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    sqlx::types::Json<Value>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for p in params {
        q = match p {
            Value::Null => q.bind(None::<String>),
            Value::Bool(b) => q.bind(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => q.bind(i),
                None => q.bind(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => q.bind(s.clone()),
            other => q.bind(sqlx::types::Json(other.clone())),
        };
    }
    q
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Value {
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v = row
            .try_get::<Option<i64>, _>(i)
            .map(|v| json!(v))
            .or_else(|_| row.try_get::<Option<i32>, _>(i).map(|v| json!(v)))
            .or_else(|_| row.try_get::<Option<i16>, _>(i).map(|v| json!(v)))
            .or_else(|_| row.try_get::<Option<f64>, _>(i).map(|v| json!(v)))
            .or_else(|_| row.try_get::<Option<f32>, _>(i).map(|v| json!(v)))
            .or_else(|_| row.try_get::<Option<bool>, _>(i).map(|v| json!(v)))
            .or_else(|_| row.try_get::<Option<String>, _>(i).map(|v| json!(v)))
            .or_else(|_| {
                row.try_get::<Option<sqlx::types::Json<Value>>, _>(i)
                    .map(|v| v.map(|j| j.0).unwrap_or(Value::Null))
            })
            .unwrap_or(Value::Null);
        m.insert(col.name().to_string(), v);
    }
    Value::Object(m)
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Value {
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v = row
            .try_get::<Option<i64>, _>(i)
            .map(|v| json!(v))
            .or_else(|_| row.try_get::<Option<f64>, _>(i).map(|v| json!(v)))
            .or_else(|_| row.try_get::<Option<String>, _>(i).map(|v| json!(v)))
            .unwrap_or(Value::Null);
        m.insert(col.name().to_string(), v);
    }
    Value::Object(m)
}
