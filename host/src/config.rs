//! The configuration file, `weft.toml`: sane defaults, so Weft runs with no file
//! at all. Owns parsing and checking it; each section is handed to the part
//! that uses it.
//!
//! ```toml
//! [queues.api]                       # a named queue
//! concurrency = 4                    # at most 4 running at once (per key)
//! rate = { max = 10, per_ms = 1000 } # at most 10 starts per second (per key)
//! min_interval_ms = 50               # at least 50 ms between starts (per key)
//! key_from = "user"                  # one budget per value of input port `user`
//! tasks = ["text.summary"]           # task types routed here by default
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::limiter::QueueConfig;

/// The whole configuration. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Named queues and their limiters.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading it failed.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It is not valid TOML or has unknown keys.
    #[error("configuration {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A task type is routed to two queues.
    #[error(
        "configuration {path}: task type `{task}` is routed to both queue `{first}` and queue `{second}`"
    )]
    TaskInTwoQueues {
        /// The file.
        path: PathBuf,
        /// The task type.
        task: String,
        /// One queue.
        first: String,
        /// The other.
        second: String,
    },
}

impl Config {
    /// Read and check the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut routed: BTreeMap<&str, &str> = BTreeMap::new();
        for (queue, q) in &config.queues {
            for task in &q.tasks {
                if let Some(first) = routed.insert(task, queue) {
                    return Err(ConfigError::TaskInTwoQueues {
                        path: path.to_path_buf(),
                        task: task.clone(),
                        first: first.to_string(),
                        second: queue.clone(),
                    });
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_queues_and_rejects_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(
            &path,
            "[queues.api]\nconcurrency = 2\nrate = { max = 5, per_ms = 1000 }\ntasks = [\"x.y\"]\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.queues["api"].concurrency, Some(2));
        assert_eq!(c.queues["api"].rate.unwrap().max, 5);

        std::fs::write(&path, "[queues.api]\nconcurency = 2\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `concurency`"), "{err}");

        std::fs::write(
            &path,
            "[queues.a]\ntasks = [\"x\"]\n[queues.b]\ntasks = [\"x\"]\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("task type `x` is routed to both queue `a` and queue `b`"),
            "{err}"
        );
    }
}
