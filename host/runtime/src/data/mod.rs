//! Data tasks (the seeds' FileSource, Sqlite and Postgres sources), native to
//! the host: read, write and list files in folders the configuration grants
//! (`[data.folders.NAME]`), and query or change SQLite and PostgreSQL databases
//! it names (`[data.databases.NAME]`), with parameters always bound, never
//! spliced into the SQL. Paths are opened with `cap-std` relative to the
//! granted folder: `..`, absolute paths and symlinks out of it are refused.
//! What each grant allows, and its limits (bytes read, names listed, rows,
//! result bytes, statement time), are checked on every call; [`sql`] and
//! [`sqlite_guard`] hold the SQL side. This module owns only these tasks; it
//! must not know about runs or graphs.

mod sql;
mod sqlite_guard;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::grant::Resource;
use crate::task::{NativeTask, TaskError};
use sql::Db;
use sqlite_guard::Access;

/// The most names `data.file-list` returns.
pub const MAX_LIST_NAMES: usize = 10_000;

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
    /// The largest file `data.file-read` reads, in bytes (default 16 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_read_bytes: usize,
}

fn default_max_bytes() -> usize {
    16 << 20
}

/// A database the SQL tasks may use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path/to/file.db` (`?mode=rwc` to create,
    /// `?mode=ro` for reading only).
    pub url: String,
    /// The most rows a query returns (default 10,000); more fail the task.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// The largest query result, in bytes of JSON (default 16 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_result_bytes: usize,
    /// The longest a statement may run, in ms (default 30,000).
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

fn default_max_rows() -> usize {
    10_000
}

fn default_statement_timeout_ms() -> u64 {
    30_000
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
    folder_grant(config, name, write).map(|(_, dir)| dir)
}

/// `folder` (by name): its grant, opened as a capability.
fn folder_grant<'c>(
    config: &'c DataConfig,
    name: &str,
    write: bool,
) -> Result<(&'c FolderConfig, cap_std::fs::Dir), TaskError> {
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
    let dir =
        cap_std::fs::Dir::open_ambient_dir(&f.path, cap_std::ambient_authority()).map_err(|e| {
            TaskError::Failed(format!(
                "cannot open folder `{name}` ({}): {e}",
                f.path.display()
            ))
        })?;
    Ok((f, dir))
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
            let (grant, dir) = folder_grant(&c, name, false)?;
            let text = read_capped(&dir, path, grant.max_read_bytes)
                .map_err(|e| refused(name, path, e))?
                .ok_or_else(|| {
                    TaskError::Failed(format!(
                        "{name}/{path} is larger than the folder's max_read_bytes ({} bytes)",
                        grant.max_read_bytes
                    ))
                })?;
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
    read.resources = folder_port();
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
    write.resources = folder_port();
    out.push(write);

    let c = config.clone();
    let mut list = NativeTask::new("data.file-list", move |input: Value, _| {
        let c = c.clone();
        async move {
            let name = string(&input, "folder")?;
            let path = input["path"].as_str().unwrap_or(".");
            let dir = folder(&c, name, false)?;
            let mut names: Vec<String> = Vec::new();
            for entry in dir.read_dir(path).map_err(|e| refused(name, path, e))? {
                let Ok(entry) = entry else { continue };
                if names.len() == MAX_LIST_NAMES {
                    return Err(TaskError::Failed(format!(
                        "{name}/{path} holds more than {MAX_LIST_NAMES} names"
                    )));
                }
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(json!({"names": names}))
        }
    });
    list.title = "List a folder".into();
    list.version = "0.1.0".into();
    list.description = "Lists the names in a granted folder (or a folder inside it).".into();
    list.input_schema = json!({"type": "object", "properties": {
        "folder": {"type": "string"}, "path": {"type": "string"}}, "required": ["folder"]});
    list.resources = folder_port();
    out.push(list);

    for (id, access) in [
        ("data.sql-query", Access::Read),
        ("data.sql-execute", Access::Write),
    ] {
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
                            let db = connect(&c, &name, access).await?;
                            pools.insert(name.clone(), db.clone());
                            db
                        }
                    }
                };
                db.run(&sql, &params)
                    .await
                    .map_err(|e| TaskError::Failed(format!("database `{name}`: {e}")))
            }
        });
        task.version = "0.1.0".into();
        task.resources = vec![("database".into(), Resource::Database)];
        task.input_schema = json!({"type": "object", "properties": {
            "database": {"type": "string", "description": "A database named under [data.databases]."},
            "sql": {"type": "string", "description": "One statement; parameters as $1, $2 (PostgreSQL) or ?1, ?2 (SQLite)."},
            "params": {"type": "array", "description": "Bound in order: null, booleans, numbers, strings; objects and arrays as JSON."}},
            "required": ["database", "sql"]});
        if access == Access::Read {
            task.title = "SQL query".into();
            task.description = "Runs a query that only reads; its rows as JSON objects.".into();
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

/// The file tasks' `folder` port names a granted folder.
fn folder_port() -> Vec<(String, Resource)> {
    vec![("folder".into(), Resource::Folder)]
}

/// Connect to database `name` for `access`.
async fn connect(config: &DataConfig, name: &str, access: Access) -> Result<Db, TaskError> {
    let d = config.databases.get(name).ok_or_else(|| {
        invalid(format!(
            "no database `{name}` is configured (add [data.databases.{name}])"
        ))
    })?;
    let url = d.url.as_str();
    if !(url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:"))
    {
        return Err(invalid(format!(
            "database `{name}`: the URL must start with postgres:// or sqlite:"
        )));
    }
    Db::connect(d, access)
        .await
        .map_err(|e| TaskError::Failed(format!("cannot connect to database `{name}`: {e}")))
}

/// The text of `path` in `dir`, or `None` when it is longer than `max`
/// bytes (read no further than that).
fn read_capped(
    dir: &cap_std::fs::Dir,
    path: &str,
    max: usize,
) -> Result<Option<String>, std::io::Error> {
    let mut bytes = Vec::new();
    dir.open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Ok(None);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
