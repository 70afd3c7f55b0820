//! From configuration to a host: the one place that decides where runs are
//! kept and assembles a [`Host`] from `weft.toml` plus what the caller says on
//! top of it (flags, environment). Every `weft` command and the daemon go
//! through here, so for the same configuration they read and write the same
//! store. It must not know about argument parsing or HTTP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft::config::Config;
//! use weft::setup::{Overrides, Setup};
//! let setup = Setup::new(Config::default(), Overrides::default());
//! let store = setup.open_store().await?; // ./.weft/weft.redb
//! let host = setup.host_builder(store)?.build().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::HostBuilder;
use crate::config::Config;
use crate::store::{MemoryStore, RedbStore, RunStore, StoreError};

/// What a caller says on top of the configuration file. Each `None` defers
/// to the file, then to the defaults.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The data directory; else `[server] data_dir` (default `./.weft`).
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL URL; else `store` from the file; else the redb file in
    /// the data directory.
    pub database_url: Option<String>,
    /// Keep runs in memory only, whatever the file says.
    pub ephemeral: bool,
    /// The plugins folder; else `[server] plugins` when that folder exists.
    pub plugins: Option<PathBuf>,
    /// Where model files are; else `models` in the data directory.
    pub models_dir: Option<PathBuf>,
}

/// Where a host keeps its runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// In memory: gone when the process ends.
    Memory,
    /// The embedded redb file (one process at a time).
    Redb(PathBuf),
    /// A PostgreSQL database that many hosts share.
    Postgres(String),
}

impl StoreLocation {
    /// True when other processes may use the same store at once.
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }

    /// Open (create, migrate) the store, with at most `connections` database
    /// connections where that applies.
    pub async fn open(
        &self,
        connections: u32,
        cache_bytes: usize,
    ) -> Result<Arc<dyn RunStore>, StoreError> {
        Ok(match self {
            StoreLocation::Memory => Arc::new(MemoryStore::new()),
            StoreLocation::Redb(path) => Arc::new(RedbStore::open_with_cache(path, cache_bytes)?),
            #[cfg(feature = "postgres")]
            StoreLocation::Postgres(url) => {
                Arc::new(crate::store::PgStore::connect(url, connections).await?)
            }
            #[cfg(not(feature = "postgres"))]
            StoreLocation::Postgres(_) => {
                let _ = connections;
                return Err(StoreError::backend(
                    "this weft was built without PostgreSQL support (feature `postgres`)",
                ));
            }
        })
    }
}

/// Names the store without its URL (which may hold a password).
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Memory => f.write_str("memory"),
            StoreLocation::Redb(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(_) => f.write_str("PostgreSQL"),
        }
    }
}

/// Why a process could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// `store` (or `--database-url`) names something other than PostgreSQL.
    #[error("store `{0}` is not a postgres:// URL")]
    NotPostgres(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `[secrets]` names a key that cannot be read.
    #[error("[secrets]: {0}")]
    Secrets(String),
}

/// A configuration with the caller's overrides: what a process is set up
/// from.
#[derive(Debug, Clone)]
pub struct Setup {
    config: Config,
    overrides: Overrides,
    data_dir: PathBuf,
    models_dir: PathBuf,
}

impl Setup {
    /// Combine `config` with `overrides`; the models that ship with Weft are
    /// added when their files are in the models folder.
    pub fn new(mut config: Config, overrides: Overrides) -> Self {
        let data_dir = overrides
            .data_dir
            .clone()
            .unwrap_or_else(|| config.server.data_dir.clone());
        let models_dir = overrides
            .models_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("models"));
        config.add_default_models(&models_dir);
        Setup {
            config,
            overrides,
            data_dir,
            models_dir,
        }
    }

    /// The configuration, with the default models added.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where model files are kept (`weft models pull` writes there).
    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// The plugins folder given, else the configured one when it exists.
    pub fn plugins_dir(&self) -> Option<PathBuf> {
        self.overrides.plugins.clone().or_else(|| {
            let configured = &self.config.server.plugins;
            configured.is_dir().then(|| configured.clone())
        })
    }

    /// Where runs are kept.
    pub fn store_location(&self) -> Result<StoreLocation, SetupError> {
        if self.overrides.ephemeral {
            return Ok(StoreLocation::Memory);
        }
        let url = self.overrides.database_url.as_ref();
        match url.or(self.config.store.as_ref()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreLocation::Postgres(url.clone()))
            }
            Some(other) => Err(SetupError::NotPostgres(other.clone())),
            None => Ok(StoreLocation::Redb(self.data_dir.join("weft.redb"))),
        }
    }

    /// Open the store, with a connection pool sized to `[server] max_runs`.
    pub async fn open_store(&self) -> Result<Arc<dyn RunStore>, SetupError> {
        let connections = self.config.server.max_runs.clamp(4, 32) as u32;
        Ok(self
            .store_location()?
            .open(connections, self.config.store_cache_bytes())
            .await?)
    }

    /// A host builder with this configuration's queues, models, data tasks,
    /// plugins folder and parallelism, keeping runs in `store`.
    pub fn host_builder(&self, store: Arc<dyn RunStore>) -> Result<HostBuilder, SetupError> {
        let mut builder = self
            .config
            .apply(crate::Host::builder().store(store.clone()))
            .protect(&self.data_dir, "the data directory");
        if let Some(key) = self.secrets_key()? {
            let clock = crate::clock::system();
            let secrets = crate::secrets::SecretStore::new(&key, store, clock);
            builder = builder.secrets(Arc::new(secrets));
        }
        if let Some(dir) = self.plugins_dir() {
            builder = builder.plugins_dir(dir);
        }
        if let Some(p) = self.config.server.parallelism {
            builder = builder.parallelism(p);
        }
        builder = builder.fetch_origins(self.config.fetch.origins.clone());
        Ok(builder)
    }

    /// The key of `[secrets]`, if one is configured.
    fn secrets_key(&self) -> Result<Option<crate::secrets::SecretKey>, SetupError> {
        let c = &self.config.secrets;
        let text = match (&c.key_file, &c.key_env) {
            (Some(_), Some(_)) => {
                return Err(SetupError::Secrets(
                    "set `key_file` or `key_env`, not both".into(),
                ));
            }
            (Some(file), None) => {
                let path = self.data_dir.join(file);
                std::fs::read_to_string(&path).map_err(|e| {
                    SetupError::Secrets(format!("cannot read {}: {e}", path.display()))
                })?
            }
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                SetupError::Secrets(format!("environment variable `{var}` is not set"))
            })?,
            (None, None) => return Ok(None),
        };
        crate::secrets::SecretKey::parse(&text)
            .map(Some)
            .map_err(|e| SetupError::Secrets(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(file: &str, overrides: Overrides) -> Setup {
        Setup::new(toml::from_str(file).unwrap(), overrides)
    }

    #[test]
    fn the_file_decides_unless_the_caller_overrides() {
        let file = "[server]\ndata_dir = \"/srv/weft\"\n";
        let s = setup(file, Overrides::default());
        assert_eq!(
            s.store_location().unwrap(),
            StoreLocation::Redb(PathBuf::from("/srv/weft/weft.redb"))
        );
        let s = setup(
            file,
            Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Overrides::default()
            },
        );
        assert_eq!(
            s.store_location().unwrap(),
            StoreLocation::Redb(PathBuf::from("/tmp/x/weft.redb"))
        );
        let pg = "store = \"postgres://u:secret@db/weft\"\n";
        let s = setup(pg, Overrides::default());
        let location = s.store_location().unwrap();
        assert!(location.is_shared());
        assert_eq!(location.to_string(), "PostgreSQL", "no password shown");
        let s = setup(
            pg,
            Overrides {
                ephemeral: true,
                ..Overrides::default()
            },
        );
        assert_eq!(s.store_location().unwrap(), StoreLocation::Memory);
        let s = setup("store = \"mysql://x\"\n", Overrides::default());
        assert!(matches!(
            s.store_location(),
            Err(SetupError::NotPostgres(url)) if url == "mysql://x"
        ));
    }
}
