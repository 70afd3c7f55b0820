//! The configuration file, `weft.toml`: sane defaults, so Weft runs with no file
//! at all. Owns parsing and checking it; each section is handed to the part
//! that uses it.
//!
//! ```toml
//! [server]                           # `weft serve`
//! listen = "127.0.0.1:7878"
//!
//! [[tokens]]                         # bearer tokens, each mapped to a user
//! user = "alice"
//! token_env = "WEFT_TOKEN_ALICE"     # or `token = "…"`
//! # what alice's runs may use (nothing unless listed; "*" for all)
//! grants = { folders = ["reports"], databases = [], models = ["minilm"], queues = ["api"] }
//!
//! [quotas]
//! submissions = { max = 60, per_ms = 60000 }  # per user
//! concurrent_runs = 8                         # per user
//! running_tasks = 16                          # plugin tasks executing per user, per host
//!
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

use crate::limiter::{QueueConfig, RateConfig};
use crate::providers::{ModelConfig, ProviderKind};

/// The whole configuration. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where runs are kept: `postgres://…` for a database shared by many
    /// hosts; default: the redb file in the data directory.
    pub store: Option<String>,
    /// The embedded store's page cache, in MiB (default 32): memory it may
    /// hold beyond the host's own, however large the store grows.
    pub store_cache_mb: Option<usize>,
    /// The daemon (`weft serve`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Bearer tokens of the daemon's users. None: only loopback clients.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Submission limits of the daemon.
    #[serde(default)]
    pub quotas: QuotaConfig,
    /// Named queues and their limiters.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    /// Models served to plugins (`[models.ID]`).
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Folders and databases the data tasks may use (`[data]`).
    #[serde(default)]
    pub data: crate::data::DataConfig,
    /// `[cache]`: how the output cache is shared.
    #[serde(default)]
    pub cache: CacheConfig,
    /// `[retention]`: how long ended runs are kept.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// `[backup]`: copies of the embedded store the daemon writes while it
    /// runs.
    #[serde(default)]
    pub backup: BackupConfig,
    /// `[hooks.NAME]`: webhooks that start saved graphs.
    #[serde(default)]
    pub hooks: BTreeMap<String, HookConfig>,
    /// `[secrets]`: the key users' secrets are sealed with.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// `[fetch]`: what the standard task `net.fetch-url` may reach.
    #[serde(default)]
    pub fetch: FetchConfig,
    /// Where model files are kept (set by [`Config::add_default_models`]).
    #[serde(skip)]
    pub models_dir: Option<PathBuf>,
}

/// `[fetch]`: the origins the standard task `net.fetch-url` may reach, as
/// a plugin's `[grants] http`: `https://api.example.com` (that origin,
/// whatever its addresses) or `https://*` (any host whose addresses are all
/// public: never loopback, private or link-local). None by default: the
/// task refuses every URL until the operator grants some.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// The granted origins.
    #[serde(default)]
    pub origins: Vec<String>,
}

/// `[secrets]`: where the key that seals users' secrets is (64 hex digits,
/// `openssl rand -hex 32`). Without one, secrets cannot be stored and
/// `{ secret = … }` config values are refused (docs/secrets.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// A file holding the key (relative: to the data directory).
    pub key_file: Option<PathBuf>,
    /// The environment variable holding the key.
    pub key_env: Option<String>,
}

/// `[hooks.NAME]`: `POST /v1/hooks/NAME` starts saved graph `graph` of
/// `user` with the request body as input, when the body is signed with the
/// hook's secret (docs/webhooks.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The saved graph it starts (`NAME` or `OWNER/NAME`, as `user` sees it).
    pub graph: String,
    /// Whose run it is: their saved graphs, grants and quotas.
    pub user: String,
    /// The signing secret (prefer `secret_env`: keep secrets out of files).
    pub secret: Option<String>,
    /// The environment variable holding the secret.
    pub secret_env: Option<String>,
    /// Larger bodies are refused (413).
    #[serde(default = "default_hook_body")]
    pub max_body_bytes: usize,
    /// Deliveries per sliding window; over it, 429 with `Retry-After`.
    pub rate: Option<RateConfig>,
}

fn default_hook_body() -> usize {
    1 << 20
}

/// `[backup]`: the daemon writes a consistent copy of the embedded store
/// (redb) into `dir` every `every_s` seconds, keeping the newest `keep`.
/// PostgreSQL is backed up with its own tools (docs/operations.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups go (relative: to the data directory); none: no backups.
    pub dir: Option<PathBuf>,
    /// Seconds between backups.
    pub every_s: u64,
    /// How many backups to keep (the oldest are deleted).
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            every_s: 86_400,
            keep: 7,
        }
    }
}

/// `[server]`: where the daemon listens and what it serves. Command-line
/// flags win over these keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// Data directory (the redb file lives inside).
    pub data_dir: PathBuf,
    /// Plugins folder, watched for changes.
    pub plugins: PathBuf,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// On SIGTERM, how long running tasks may take to finish before the daemon
    /// exits (what is left resumes at the next start).
    pub shutdown_grace_s: u64,
    /// The most tasks running at once per run (default: 8 per core).
    pub parallelism: Option<usize>,
    /// The most runs executing in this process at once; more wait for
    /// another host (or for room here).
    pub max_runs: usize,
    /// How long a run's lease lasts without a heartbeat (ms): when a host
    /// dies, others take its runs over after this long.
    pub lease_ms: u64,
    /// With a shared (PostgreSQL) store: the most tasks executing on this
    /// host at once, its own runs' and other hosts' together. A task of this
    /// host's runs that finds no free slot is offered to every host (default:
    /// 8 per core).
    pub task_slots: Option<usize>,
    /// Host names the daemon is reached by, besides IP addresses and
    /// `localhost` (e.g. `["weft.internal"]`). Requests addressed to any
    /// other name are refused: that defeats DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://console.example`) of web pages allowed to call the
    /// API; CORS is answered for these only. The daemon's own origin is
    /// always allowed; every other page's requests are refused.
    pub allowed_origins: Vec<String>,
    /// Connections open at once; more wait until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (ms).
    pub header_timeout_ms: u64,
    /// Event streams (`GET /v1/runs/{id}/events`) one user may have open at
    /// once; more are refused with 429.
    pub max_streams_per_user: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from(".weft"),
            plugins: PathBuf::from("plugins"),
            max_body_bytes: 4 << 20,
            shutdown_grace_s: 30,
            parallelism: None,
            max_runs: 256,
            lease_ms: 10_000,
            task_slots: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_connections: 1024,
            header_timeout_ms: 10_000,
            max_streams_per_user: 32,
        }
    }
}

/// `[cache]`: the output cache across users.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Task types whose cached outputs every user shares (the operator's
    /// choice: a hit then tells one user that another ran the same input).
    /// Every other task type's entries are kept per user.
    #[serde(default)]
    pub shared: Vec<String>,
}

/// `[[tokens]]`: one user's bearer token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The user the token authenticates.
    pub user: String,
    /// The token itself (prefer `token_env`: keep secrets out of files).
    pub token: Option<String>,
    /// The environment variable holding the token.
    pub token_env: Option<String>,
    /// The folders, databases, models and queues the user's runs may use:
    /// nothing unless listed.
    #[serde(default)]
    pub grants: crate::grant::Grants,
    /// May act on the daemon itself (write a backup now).
    #[serde(default)]
    pub operator: bool,
}

/// `[quotas]`: submission limits. Over a limit, `POST /v1/runs` answers 429
/// with `Retry-After`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Submissions per user per sliding window.
    pub submissions: Option<RateConfig>,
    /// Submissions of all users together per sliding window.
    pub global_submissions: Option<RateConfig>,
    /// Runs a user may have running at once.
    pub concurrent_runs: Option<usize>,
    /// Plugin task runs (wasm instances) one user's runs may have executing
    /// at once on a host. Either way a free instance goes to the waiting
    /// user who holds the fewest.
    pub running_tasks: Option<usize>,
    /// Schedules a user may have (default 100).
    pub schedules: Option<usize>,
    /// The longest any run may take from submission to end (a graph's
    /// `limits.timeout_ms` is lowered to it).
    pub run_timeout_ms: Option<u64>,
    /// The most tasks any run may start (a graph's `limits.max_tasks` is
    /// lowered to it).
    pub run_max_tasks: Option<u64>,
    /// The most nodes a graph may have, counting those inside compound
    /// nodes (default 10,000). Memory and validation grow with it: a run
    /// of 100,000 add-one nodes peaks at about 3 KB a node on redb.
    pub graph_nodes: Option<usize>,
    /// The most dataflows a graph may have, at every level and once its
    /// compound nodes are expanded (default 100,000).
    pub graph_dataflows: Option<usize>,
}

/// `https://console.example[:port]`: what a browser sends as `Origin`.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or("an origin starts with `http://` or `https://`")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    if rest.is_empty() || !rest.chars().all(plain) {
        return Err("an origin is a scheme, a host and an optional port, with no path");
    }
    Ok(())
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A token entry is incomplete or its variable is unset.
    #[error("configuration {path}: token of user `{user}`: {problem}")]
    Token {
        /// The file.
        path: PathBuf,
        /// The user.
        user: String,
        /// What is wrong.
        problem: String,
    },
    /// A hook entry is incomplete or its variable is unset.
    #[error("configuration {path}: hook `{hook}`: {problem}")]
    Hook {
        /// The file.
        path: PathBuf,
        /// The hook.
        hook: String,
        /// What is wrong.
        problem: String,
    },
    /// An entry of `[server] allowed_origins` is not an origin.
    #[error("configuration {path}: allowed origin `{origin}`: {problem}")]
    Origin {
        /// The file.
        path: PathBuf,
        /// The entry.
        origin: String,
        /// What is wrong.
        problem: &'static str,
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
    /// The embedded store's page cache, in bytes.
    pub fn store_cache_bytes(&self) -> usize {
        self.store_cache_mb
            .map_or(crate::store::REDB_CACHE_BYTES, |mb| mb.max(1) << 20)
    }

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
        let mut config = config;
        // Model files are relative to the configuration file's folder.
        let base = path.parent().unwrap_or(Path::new("."));
        for folder in config.data.folders.values_mut() {
            folder.path = base.join(&folder.path);
        }
        for model in config.models.values_mut() {
            if model.provider == ProviderKind::Onnx {
                model.model = base.join(&model.model).display().to_string();
                model.tokenizer = model.tokenizer.as_ref().map(|t| base.join(t));
            }
        }
        for origin in &config.fetch.origins {
            weft_plugin::http::HttpGrant::parse(origin).map_err(|problem| ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("[fetch] origins: `{origin}`: {problem}"),
            })?;
        }
        for origin in &config.server.allowed_origins {
            check_origin(origin).map_err(|problem| ConfigError::Origin {
                path: path.to_path_buf(),
                origin: origin.clone(),
                problem,
            })?;
        }
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

    /// Give `builder` this configuration's queues and models.
    pub fn apply(&self, mut builder: crate::HostBuilder) -> crate::HostBuilder {
        if let Some(dir) = &self.models_dir {
            builder = builder.models_dir(dir);
        }
        for (name, queue) in &self.queues {
            builder = builder.queue(name, queue.clone());
        }
        for (id, model) in &self.models {
            builder = builder.model(id, model.clone());
        }
        for task in crate::data::tasks(self.data.clone()) {
            builder = builder.native(task);
        }
        if !self.cache.shared.is_empty() {
            builder = builder.share_cache(self.cache.shared.iter().cloned());
        }
        if let Some(n) = self.quotas.running_tasks {
            builder = builder.tasks_per_user(n);
        }
        builder = builder.run_ceilings(crate::graph::RunLimits {
            timeout_ms: self.quotas.run_timeout_ms,
            max_tasks: self.quotas.run_max_tasks,
        });
        let sizes = crate::graph::SizeLimits::default();
        builder = builder.graph_sizes(crate::graph::SizeLimits {
            nodes: self.quotas.graph_nodes.unwrap_or(sizes.nodes),
            dataflows: self.quotas.graph_dataflows.unwrap_or(sizes.dataflows),
        });
        builder.grants(self.user_grants())
    }

    /// Each user's grants: with `[[tokens]]`, only what each lists; without,
    /// every run may use everything (only loopback clients are served).
    pub fn user_grants(&self) -> crate::grant::UserGrants {
        if self.tokens.is_empty() {
            return crate::grant::UserGrants::everyone();
        }
        crate::grant::UserGrants::new(
            self.tokens
                .iter()
                .map(|t| (t.user.clone(), t.grants.clone())),
        )
    }

    /// Add the models that ship with Weft when their files are present in
    /// `models_dir` and the configuration does not define the same id:
    /// `minilm` (sentence embeddings, 384 dimensions), fetched by
    /// `weft models pull minilm`, `isnet` (background removal) and
    /// `blazeface` (face detection), fetched by `weft models pull isnet` and
    /// `weft models pull blazeface`. Also: ONNX Runtime is looked for at
    /// [`onnx_runtime_beside`] `models_dir` when `ORT_DYLIB_PATH` is not set.
    pub fn add_default_models(&mut self, models_dir: &Path) {
        self.models_dir = Some(models_dir.to_path_buf());
        crate::providers::set_default_onnx_runtime(onnx_runtime_beside(models_dir));
        let minilm = models_dir.join("minilm");
        if !self.models.contains_key("minilm") && minilm.join("model.onnx").is_file() {
            self.models.insert(
                "minilm".into(),
                ModelConfig {
                    max_length: Some(256),
                    ..ModelConfig::local(
                        crate::providers::ModelKind::Embedding,
                        &minilm.join("model.onnx"),
                    )
                },
            );
        }
        use crate::providers::ModelKind::{BackgroundRemoval, FaceDetection};
        for (id, kind) in [("isnet", BackgroundRemoval), ("blazeface", FaceDetection)] {
            let model = models_dir.join(id).join("model.onnx");
            if !self.models.contains_key(id) && model.is_file() {
                self.models
                    .insert(id.into(), ModelConfig::local(kind, &model));
            }
        }
    }

    /// Each hook's secret, read (from the file or the environment), by hook
    /// name.
    pub fn resolve_hook_secrets(
        &self,
        path: &Path,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        self.hooks
            .iter()
            .map(|(name, hook)| {
                let problem = |problem: &str| ConfigError::Hook {
                    path: path.to_path_buf(),
                    hook: name.clone(),
                    problem: problem.to_string(),
                };
                let secret = match (&hook.secret, &hook.secret_env) {
                    (Some(secret), None) => secret.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .map_err(|_| problem(&format!("environment variable {var} is not set")))?,
                    _ => return Err(problem("give exactly one of `secret` and `secret_env`")),
                };
                if secret.len() < 16 {
                    return Err(problem("a secret must be at least 16 characters"));
                }
                Ok((name.clone(), secret))
            })
            .collect()
    }

    /// The users whose tokens make them operators.
    pub fn operators(&self) -> Vec<String> {
        self.tokens
            .iter()
            .filter(|t| t.operator)
            .map(|t| t.user.clone())
            .collect()
    }

    /// The configured tokens, read (from the file or the environment), as
    /// (token, user) pairs.
    pub fn resolve_tokens(&self, path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
        self.tokens
            .iter()
            .map(|t| {
                let problem = |problem: &str| ConfigError::Token {
                    path: path.to_path_buf(),
                    user: t.user.clone(),
                    problem: problem.to_string(),
                };
                let token = match (&t.token, &t.token_env) {
                    (Some(token), None) => token.clone(),
                    (None, Some(var)) => std::env::var(var)
                        .map_err(|_| problem(&format!("environment variable {var} is not set")))?,
                    _ => return Err(problem("give exactly one of `token` and `token_env`")),
                };
                if token.len() < 16 {
                    return Err(problem("a token must be at least 16 characters"));
                }
                Ok((token, t.user.clone()))
            })
            .collect()
    }
}

/// Where ONNX Runtime's library is looked for (and `weft models pull` puts
/// it) when `ORT_DYLIB_PATH` is not set: in `onnxruntime/` beside the models
/// folder (the data directory, by default).
pub fn onnx_runtime_beside(models_dir: &Path) -> PathBuf {
    models_dir
        .parent()
        .unwrap_or(models_dir)
        .join("onnxruntime")
        .join("libonnxruntime.so.1.31.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_settings_read_with_their_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.store_cache_bytes(), 32 << 20);
        assert_eq!(c.backup.dir, None);
        let c: Config = toml::from_str(
            "store_cache_mb = 8\n[backup]\ndir = \"b\"\nkeep = 3\n[retention]\nfailed = \"7d\"\n",
        )
        .unwrap();
        assert_eq!(c.store_cache_bytes(), 8 << 20);
        assert_eq!((c.backup.keep, c.backup.every_s), (3, 86_400));
        let week = crate::retention::Age(Some(std::time::Duration::from_secs(7 * 86_400)));
        assert_eq!(c.retention.failed, Some(week));
        let e = toml::from_str::<Config>("[retention]\nfailed = \"7 days\"\n").unwrap_err();
        assert!(e.to_string().contains("one of s, m, h, d, w"), "{e}");
    }

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

        std::fs::write(&path, "[server]\nallowed_origins = [\"console.example\"]\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("allowed origin `console.example`"), "{err}");
        std::fs::write(
            &path,
            "[server]\nallowed_origins = [\"https://a.example/x\"]\n",
        )
        .unwrap();
        assert!(Config::load(&path).is_err());

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

    #[test]
    fn hook_secrets_are_read_or_refused_naming_the_hook() {
        let path = Path::new("weft.toml");
        let config: Config = toml::from_str(
            "[hooks.ok]\ngraph = \"g\"\nuser = \"u\"\nsecret = \"0123456789abcdef\"\n",
        )
        .unwrap();
        let secrets = config.resolve_hook_secrets(path).unwrap();
        assert_eq!(secrets["ok"], "0123456789abcdef");
        assert_eq!(config.hooks["ok"].max_body_bytes, 1 << 20);
        for (text, problem) in [
            ("secret = \"short\"\n", "at least 16 characters"),
            ("", "exactly one of `secret` and `secret_env`"),
            (
                "secret_env = \"WEFT_TEST_UNSET_HOOK_SECRET\"\n",
                "is not set",
            ),
        ] {
            let config: Config =
                toml::from_str(&format!("[hooks.bad]\ngraph = \"g\"\nuser = \"u\"\n{text}"))
                    .unwrap();
            let e = config.resolve_hook_secrets(path).unwrap_err().to_string();
            assert!(e.contains("hook `bad`") && e.contains(problem), "{e}");
        }
    }
}
