//! Data tasks (the seeds' FileSource, Sqlite and Postgres sources), native to
//! the host: read, write and list files in folders the configuration grants
//! (`[data.folders.NAME]`), and query or change SQLite and PostgreSQL databases
//! it names (`[data.databases.NAME]`), with parameters always bound, never
//! spliced into the SQL. Paths are opened with `cap-std` relative to the
//! granted folder: `..`, absolute paths and symlinks out of it are refused.
//! This module owns only these tasks; it must not know about runs or graphs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::{Column, Row};

use crate::task::{NativeTask, TaskError};

/// `[data]`: what the data tasks may touch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Folders by name.
    #[serde(default)]
    pub folders: BTreeMap<String, FolderConfig>,
    /// Databases by name.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
}

/// A granted folder.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// The folder on the host.
    pub path: PathBuf,
    /// Whether `data.file-write` may write in it (default false).
    #[serde(default)]
    pub writable: bool,
}

/// A database the SQL tasks may use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path/to/file.db` (`?mode=rwc` to create).
    pub url: String,
}

fn invalid(m: impl Into<String>) -> TaskError {
    TaskError::InvalidInput(m.into())
}

fn string<'a>(input: &'a Value, key: &str) -> Result<&'a str, TaskError> {
    input[key]
        .as_str()
        .ok_or_else(|| invalid(format!("`{key}` must be a string")))
}

/// Open `folder` (by name) as a capability.
fn folder(config: &DataConfig, name: &str, write: bool) -> Result<cap_std::fs::Dir, TaskError> {
    let f = config.folders.get(name).ok_or_else(|| {
        invalid(format!(
            "no folder `{name}` is granted (configure [data.folders.{name}])"
        ))
    })?;
    if write && !f.writable {
        return Err(TaskError::Failed(format!(
            "folder `{name}` is read-only (set writable = true in [data.folders.{name}])"
        )));
    }
    cap_std::fs::Dir::open_ambient_dir(&f.path, cap_std::ambient_authority()).map_err(|e| {
        TaskError::Failed(format!(
            "cannot open folder `{name}` ({}): {e}",
            f.path.display()
        ))
    })
}

fn refused(folder: &str, path: &str, e: std::io::Error) -> TaskError {
    if e.kind() == std::io::ErrorKind::PermissionDenied || e.to_string().contains("outside") {
        invalid(format!("path `{path}` escapes folder `{folder}`: {e}"))
    } else {
        TaskError::Failed(format!("{folder}/{path}: {e}"))
    }
}

/// The data tasks for `config`.
pub fn tasks(config: DataConfig) -> Vec<NativeTask> {
    let config = Arc::new(config);
    let mut out = Vec::new();

    let c = config.clone();
    let mut read = NativeTask::new("data.file-read", move |input: Value, _| {
        let c = c.clone();
        async move {
            let name = string(&input, "folder")?;
            let path = string(&input, "path")?;
            let dir = folder(&c, name, false)?;
            let mut text = String::new();
            dir.open(path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| refused(name, path, e))?;
            Ok(match input["as"].as_str().unwrap_or("text") {
                "json" => {
                    let value: Value = serde_json::from_str(&text).map_err(|e| {
                        TaskError::Failed(format!("{name}/{path} is not JSON: {e}"))
                    })?;
                    json!({"value": value})
                }
                "lines" => json!({"lines": text.lines().collect::<Vec<_>>()}),
                _ => json!({"text": text}),
            })
        }
    });
    read.title = "Read a file".into();
    read.version = "0.1.0".into();
    read.description = "Reads a file from a granted folder, as text, JSON or lines.".into();
    read.input_schema = json!({"type": "object", "properties": {
        "folder": {"type": "string", "description": "A folder granted under [data.folders]."},
        "path": {"type": "string", "description": "Relative to the folder."},
        "as": {"enum": ["text", "json", "lines"]}}, "required": ["folder", "path"]});
    out.push(read);

    let c = config.clone();
    let mut write = NativeTask::new("data.file-write", move |input: Value, _| {
        let c = c.clone();
        async move {
            let name = string(&input, "folder")?;
            let path = string(&input, "path")?;
            let text = match &input["text"] {
                Value::String(s) => s.clone(),
                Value::Null => return Err(invalid("`text` is required")),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            let dir = folder(&c, name, true)?;
            dir.create(path)
                .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
                .map_err(|e| refused(name, path, e))?;
            Ok(json!({"bytes": text.len()}))
        }
    });
    write.title = "Write a file".into();
    write.version = "0.1.0".into();
    write.description = "Writes text (or JSON) to a file in a writable granted folder.".into();
    write.side_effects = true;
    write.input_schema = json!({"type": "object", "properties": {
        "folder": {"type": "string"}, "path": {"type": "string"}, "text": {}},
        "required": ["folder", "path", "text"]});
    out.push(write);

    let c = config.clone();
    let mut list = NativeTask::new("data.file-list", move |input: Value, _| {
        let c = c.clone();
        async move {
            let name = string(&input, "folder")?;
            let path = input["path"].as_str().unwrap_or(".");
            let dir = folder(&c, name, false)?;
            let mut names: Vec<String> = dir
                .read_dir(path)
                .map_err(|e| refused(name, path, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(json!({"names": names}))
        }
    });
    list.title = "List a folder".into();
    list.version = "0.1.0".into();
    list.description = "Lists the names in a granted folder (or a folder inside it).".into();
    list.input_schema = json!({"type": "object", "properties": {
        "folder": {"type": "string"}, "path": {"type": "string"}}, "required": ["folder"]});
    out.push(list);

    for (id, returns_rows) in [("data.sql-query", true), ("data.sql-execute", false)] {
        let c = config.clone();
        let pools: Arc<tokio::sync::Mutex<BTreeMap<String, Db>>> = Arc::default();
        let mut task = NativeTask::new(id, move |input: Value, _| {
            let (c, pools) = (c.clone(), pools.clone());
            async move {
                let name = string(&input, "database")?.to_string();
                let sql = string(&input, "sql")?.to_string();
                let params = match &input["params"] {
                    Value::Array(p) => p.clone(),
                    Value::Null => Vec::new(),
                    _ => return Err(invalid("`params` must be an array")),
                };
                let db = {
                    let mut pools = pools.lock().await;
                    match pools.get(&name) {
                        Some(db) => db.clone(),
                        None => {
                            let db = Db::connect(&c, &name).await?;
                            pools.insert(name.clone(), db.clone());
                            db
                        }
                    }
                };
                db.run(&sql, &params, returns_rows)
                    .await
                    .map_err(|e| TaskError::Failed(format!("database `{name}`: {e}")))
            }
        });
        task.version = "0.1.0".into();
        task.input_schema = json!({"type": "object", "properties": {
            "database": {"type": "string", "description": "A database named under [data.databases]."},
            "sql": {"type": "string", "description": "One statement; parameters as $1, $2 (PostgreSQL) or ?1, ?2 (SQLite)."},
            "params": {"type": "array", "description": "Bound in order: null, booleans, numbers, strings; objects and arrays as JSON."}},
            "required": ["database", "sql"]});
        if returns_rows {
            task.title = "SQL query".into();
            task.description = "Runs a query; its rows as JSON objects.".into();
        } else {
            task.title = "SQL statement".into();
            task.description =
                "Runs a statement that changes data; how many rows it touched.".into();
            task.side_effects = true;
        }
        out.push(task);
    }
    out
}

/// A connection pool to a configured database.
#[derive(Clone)]
enum Db {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Db {
    async fn connect(config: &DataConfig, name: &str) -> Result<Db, TaskError> {
        let d = config.databases.get(name).ok_or_else(|| {
            invalid(format!(
                "no database `{name}` is configured (add [data.databases.{name}])"
            ))
        })?;
        let fail =
            |e: sqlx::Error| TaskError::Failed(format!("cannot connect to database `{name}`: {e}"));
        if d.url.starts_with("postgres://") || d.url.starts_with("postgresql://") {
            Ok(Db::Postgres(
                sqlx::PgPool::connect(&d.url).await.map_err(fail)?,
            ))
        } else if d.url.starts_with("sqlite:") {
            Ok(Db::Sqlite(
                sqlx::SqlitePool::connect(&d.url).await.map_err(fail)?,
            ))
        } else {
            Err(invalid(format!(
                "database `{name}`: the URL must start with postgres:// or sqlite:"
            )))
        }
    }

    async fn run(&self, sql: &str, params: &[Value], rows: bool) -> Result<Value, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        macro_rules! bind_all {
            ($q:expr) => {{
                let mut q = $q;
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
            }};
        }
        match self {
            Db::Postgres(pool) => {
                let q = bind_all!(sqlx::query(sql));
                if rows {
                    let found = q.fetch_all(pool).await?;
                    Ok(
                        json!({"rows": found.iter().map(pg_row).collect::<Vec<_>>(), "count": found.len()}),
                    )
                } else {
                    Ok(json!({"rows_affected": q.execute(pool).await?.rows_affected()}))
                }
            }
            Db::Sqlite(pool) => {
                let q = bind_all!(sqlx::query(sql));
                if rows {
                    let found = q.fetch_all(pool).await?;
                    Ok(
                        json!({"rows": found.iter().map(sqlite_row).collect::<Vec<_>>(), "count": found.len()}),
                    )
                } else {
                    Ok(json!({"rows_affected": q.execute(pool).await?.rows_affected()}))
                }
            }
        }
    }
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
