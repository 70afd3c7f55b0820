//! The output cache (the seeds' TaskOutputRepository): a task type's output,
//! keyed by (task type, version, canonical JSON of the input), so a cacheable,
//! side-effect-free node whose input was seen before is not run again.
//!
//! Owns the cache key and the policy. The entries live in the run store
//! (the store's cache methods); the runner decides when to look. This module
//! must not know where entries are kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::task::TaskType;

/// How the output cache is used by a run.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    /// Look up and store outputs at all (per run; a node's `config.cache`
    /// can turn it off for that node).
    pub enabled: bool,
    /// Keep at most this many entries per task type (the oldest go first).
    pub keep_last: Option<usize>,
    /// Entries older than this are misses.
    pub max_age: Option<Duration>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            keep_last: Some(10_000),
            max_age: None,
        }
    }
}

/// One cached output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The task type.
    pub task_type: String,
    /// Its version when the output was made.
    pub version: String,
    /// The output.
    pub output: Value,
    /// When it was stored, ms since the Unix epoch.
    pub created_ms: u64,
}

/// Entries and bytes of one task type in the cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStat {
    /// The task type.
    pub task_type: String,
    /// How many entries.
    pub entries: u64,
    /// Their total size (JSON), in bytes.
    pub bytes: u64,
}

/// The cache key of running `task` on `input`: SHA-256 (hex) of the task type,
/// its version, its component's hash and the input as canonical JSON (object keys sorted), so the
/// same input written in another key order hits, and a new version of the task
/// never sees the old version's entries. With a `scope` (the user who owns
/// the run), entries are that user's alone: a cache hit must not tell one
/// user what another submitted.
pub fn key(task: &TaskType, input: &Value, scope: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    if let Some(scope) = scope {
        hasher.update(b"scope\0");
        hasher.update(scope.as_bytes());
        hasher.update([0]);
    }
    hasher.update(task.id.as_bytes());
    hasher.update([0]);
    hasher.update(task.version.as_bytes());
    hasher.update([0]);
    // A component replaced without a new version is another task.
    if let Some(digest) = task.component() {
        hasher.update(digest.as_bytes());
        hasher.update([0]);
    }
    write_canonical(input, &mut hasher);
    hex::encode(hasher.finalize())
}

fn write_canonical(v: &Value, out: &mut Sha256) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.update(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                out.update(Value::String(k.clone()).to_string().as_bytes());
                out.update(b":");
                write_canonical(&m[k], out);
            }
            out.update(b"}");
        }
        Value::Array(a) => {
            out.update(b"[");
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                write_canonical(item, out);
            }
            out.update(b"]");
        }
        Value::Number(n) => out.update(canonical_number(n).as_bytes()),
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

/// One spelling per number: `100`, `100.0` and `1e2` are the same input.
/// A float with an integral value is written as that integer (as an integer
/// literal of that value would be); any other float in its shortest
/// round-trip form.
fn canonical_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e38 => {
            format!("{}", f as i128)
        }
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{NativeTask, Registry};
    use serde_json::json;

    fn task(version: &str) -> std::sync::Arc<TaskType> {
        let mut reg = Registry::new();
        let mut t = NativeTask::new("t.x", |v, _| async move { Ok(v) });
        t.version = version.into();
        reg.register_native(t).unwrap();
        reg.get("t.x").unwrap().clone()
    }

    #[test]
    fn key_ignores_how_a_number_is_written() {
        let t = task("1.0.0");
        let parsed = |text: &str| key(&t, &serde_json::from_str(text).unwrap(), None);
        assert_eq!(parsed(r#"{"n": 100}"#), parsed(r#"{"n": 1e2}"#));
        assert_eq!(parsed(r#"{"n": 100}"#), parsed(r#"{"n": 100.0}"#));
        assert_eq!(parsed(r#"{"n": -0.0}"#), parsed(r#"{"n": 0}"#));
        assert_eq!(parsed(r#"{"n": 0.5}"#), parsed(r#"{"n": 5e-1}"#));
        assert_ne!(parsed(r#"{"n": 100}"#), parsed(r#"{"n": 100.5}"#));
        // Found by fuzzing: without correctly rounded parsing, `10.31E25`
        // and its own printed form `1.031e26` were a float apart.
        let v: Value = serde_json::from_str("10.31E25").unwrap();
        assert_eq!(parsed("10.31E25"), parsed(&v.to_string()));
    }

    #[test]
    fn key_ignores_key_order_but_not_values_or_versions() {
        let t = task("1.0.0");
        let a = key(&t, &json!({"a": 1, "b": {"y": [1, 2], "x": null}}), None);
        let b = key(&t, &json!({"b": {"x": null, "y": [1, 2]}, "a": 1}), None);
        assert_eq!(a, b);
        assert_ne!(
            a,
            key(&t, &json!({"a": 2, "b": {"y": [1, 2], "x": null}}), None)
        );
        assert_ne!(
            a,
            key(
                &task("1.0.1"),
                &json!({"a": 1, "b": {"y": [1, 2], "x": null}}),
                None
            )
        );
        // Each user's entries are apart from the others' and the CLI's.
        let input = json!({"a": 1, "b": {"y": [1, 2], "x": null}});
        assert_ne!(key(&t, &input, Some("alice")), a);
        assert_ne!(key(&t, &input, Some("alice")), key(&t, &input, Some("bob")));
        assert_eq!(
            key(&t, &input, Some("alice")),
            key(&t, &input, Some("alice"))
        );
        // A string that looks like JSON is not the JSON it looks like.
        assert_ne!(
            key(&t, &json!({"a": "1"}), None),
            key(&t, &json!({"a": 1}), None)
        );
    }
}
