//! # weft-plugin: wasm components that provide task types
//!
//! Owns loading components (compile or load from the artifact cache, check
//! their imports against what the host offers, call `describe`, compile the
//! declared schemas), the plugins folder and manifests, running one task in
//! one fresh, sandboxed instance ([`engine`] holds the engine policy:
//! pooling, epochs, limits), the host imports, and the model providers
//! served to plugins through the `models` import ([`providers`]). It must not
//! know about graphs or runs beyond the [`TaskContext`] of a single task.
//!
//! A plugin gets nothing unless its manifest (the operator's `x.toml` beside
//! `x.wasm`) grants it:
//!
//! ```
//! use std::path::Path;
//! use weft_plugin::Manifest;
//!
//! let text = "[limits]\nmemory_mib = 128\n[grants]\nnetwork = [\"127.0.0.1:8080\"]\n";
//! let manifest = Manifest::parse(text, Path::new("plugins/fetch.toml")).unwrap();
//! assert_eq!(manifest.limits.memory_mib, Some(128));
//! assert!(manifest.grants.folders.is_empty(), "no files unless granted");
//! let bad = Manifest::parse("[grants]\nnetwork = [\"example.com\"]\n", Path::new("x.toml"));
//! assert!(bad.is_err(), "a grant needs a port: NAME:PORT or IP:PORT");
//! ```
#![deny(missing_docs)]

pub mod config;
mod described;
pub mod engine;
pub mod fair;
pub mod http;
mod instance;
mod lookup;
pub mod manifest;
pub mod providers;
pub mod storage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::Linker;

pub use engine::{EngineOptions, WeftEngine};

/// The WIT package this host speaks (`wit/weft.wit`): plugins built
/// against it, or an earlier minor version, load.
pub const WIT_PACKAGE: &str = "weft:plugin@0.1.5";

#[cfg(test)]
mod wit_package {
    #[test]
    fn the_constant_names_the_package_in_wit() {
        let wit = include_str!("../../../wit/weft.wit");
        let line = format!("package {};", super::WIT_PACKAGE);
        assert!(
            wit.lines().any(|l| l.trim() == line),
            "wit/weft.wit: {line}"
        );
    }
}
pub use manifest::{Manifest, ManifestError};

use crate::providers::Models;
pub use crate::providers::plugin::ProviderPlugin;
use instance::{InstanceState, PluginPre, Sandbox, wit_types};
use weft_core::clock::Clock;
use weft_core::grant::Resource;
use weft_core::schema::ObjectSchema;
use weft_core::task::{
    Implementation, PluginReport, Registry, RegistryError, TaskContext, TaskError, TaskType,
};
use weft_store::key_values::KeyValues;

/// The standard plugins, compiled from `plugins/` into this binary.
mod standard {
    include!(concat!(env!("OUT_DIR"), "/standard_plugins.rs"));
}

/// Host-wide defaults and ceilings for plugins.
#[derive(Debug, Clone)]
pub struct HostLimits {
    /// Linear memory per instance when the manifest says nothing.
    pub default_memory_bytes: u64,
    /// Wall-clock limit per task run when neither the task type nor the
    /// manifest says.
    pub default_timeout: Duration,
    /// The largest output (JSON text) accepted from a task.
    pub max_output_bytes: usize,
    /// The time `describe` may take when a plugin loads.
    pub describe_timeout: Duration,
    /// Fuel per task run when the manifest says nothing (`None`: unlimited).
    pub default_fuel: Option<u64>,
    /// The quota of a storage namespace when the manifest says nothing, and
    /// the most a manifest may ask.
    pub storage_quota: weft_store::key_values::Quota,
    /// Limits on plugins' outgoing HTTP.
    pub http: http::HttpLimits,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            default_memory_bytes: 64 << 20,
            default_timeout: Duration::from_secs(300),
            max_output_bytes: 16 << 20,
            describe_timeout: Duration::from_secs(10),
            default_fuel: None,
            storage_quota: weft_store::key_values::Quota {
                max_keys: 100_000,
                max_bytes: 64 << 20,
            },
            http: http::HttpLimits::default(),
        }
    }
}

/// Why a plugin did not load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// Its manifest is unusable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component for this host.
    #[error("not a loadable WASI 0.2 component: {0}")]
    Compile(String),
    /// It imports something the host does not offer, or exports the wrong thing.
    #[error("does not fit the host (imports or exports): {0}")]
    Link(String),
    /// `describe` trapped, timed out or returned nonsense.
    #[error("describe failed: {0}")]
    Describe(String),
    /// A task type it declares is unusable or already taken.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A folder grant overlaps a folder the host keeps to itself (the
    /// plugins folder, the compiled cache, the data directory).
    #[error(
        "folder grant {grant} overlaps {what} ({protected}): a plugin may not read or change it"
    )]
    ProtectedFolder {
        /// The granted folder.
        grant: PathBuf,
        /// The host's folder.
        protected: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// A manifest asks for a larger storage quota than the host allows.
    #[error("manifest asks for a storage quota of {asked} {what}; the host allows at most {max}")]
    StorageCeiling {
        /// `keys` or `bytes`.
        what: &'static str,
        /// Asked.
        asked: u64,
        /// Allowed.
        max: u64,
    },
    /// A manifest asks for more memory than the host allows any plugin.
    #[error("manifest asks for {asked} MiB of memory; the host allows at most {max} MiB")]
    MemoryCeiling {
        /// Asked, in MiB.
        asked: u64,
        /// Allowed, in MiB.
        max: u64,
    },
}

/// What every instance of one plugin is given and held to, from its
/// manifest within the host's ceilings: the same for its tasks and, if it
/// serves models, its provider instances.
pub(crate) struct Confinement {
    name: String,
    memory_limit: u64,
    fuel: Option<u64>,
    env: Vec<(String, String)>,
    folders: Vec<manifest::FolderGrant>,
    models: Option<Arc<Models>>,
    granted_models: Vec<String>,
    network: Arc<[manifest::NetGrant]>,
    settings: Arc<config::Settings>,
    secrets: Option<Arc<dyn config::Secrets>>,
    /// Origins its outgoing HTTP may reach, its requests in flight, the
    /// host's limits and counts.
    http: HttpAccess,
}

impl Confinement {
    /// The sandbox of an instance that runs no task (`describe`, a
    /// provider): no storage, no configuration of a user.
    pub(crate) fn sandbox(&self) -> Sandbox<'_> {
        Sandbox {
            plugin: &self.name,
            memory_limit: self.memory_limit,
            fuel: self.fuel,
            env: &self.env,
            folders: &self.folders,
            models: self.models.clone(),
            granted_models: &self.granted_models,
            network: self.network.clone(),
            storage: None,
            config: None,
            http: http::HttpHooks {
                plugin: self.name.clone(),
                grants: self.http.grants.clone(),
                limits: self.http.limits,
                permits: self.http.permits.clone(),
                stats: self.http.stats.clone(),
            },
        }
    }

    /// Its configuration as `user` (empty: none) reads it.
    pub(crate) fn config(&self, user: &str) -> config::ConfigAccess {
        config::ConfigAccess {
            settings: self.settings.clone(),
            secrets: self.secrets.clone(),
            plugin: self.name.clone(),
            user: user.to_string(),
        }
    }

    /// Whether it may reach anything outside its sandbox that changes
    /// between runs (models, the network).
    fn reaches_out(&self) -> bool {
        !self.granted_models.is_empty() || !self.network.is_empty() || !self.http.grants.is_empty()
    }
}

/// A loaded task plugin: a pre-instantiated component and its sandbox
/// settings. Every task run gets a fresh instance of it.
pub struct LoadedPlugin {
    confinement: Confinement,
    /// SHA-256 of the component's bytes, hex.
    digest: String,
    engine: WeftEngine,
    pre: PluginPre<InstanceState>,
    max_output_bytes: usize,
    /// Where its `storage` import keeps keys, by which clock.
    storage: Option<(Arc<dyn KeyValues>, Arc<dyn Clock>)>,
    storage_grants: Arc<[manifest::StorageGrant]>,
    storage_quota: weft_store::key_values::Quota,
    /// Its task types that declare side effects (may write storage), known
    /// once it is described.
    writers: std::sync::OnceLock<std::collections::HashSet<String>>,
}

/// A plugin's outgoing HTTP: what each of its instances is given.
#[derive(Clone)]
pub(crate) struct HttpAccess {
    pub grants: Arc<[http::HttpGrant]>,
    pub limits: http::HttpLimits,
    pub permits: Arc<tokio::sync::Semaphore>,
    pub stats: Arc<http::HttpStats>,
}

impl LoadedPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.confinement.name
    }

    /// The sandbox of a run of task type `task` for the user `user` (empty:
    /// none): with its storage and configuration.
    fn task_sandbox(&self, task: &str, user: &str) -> Sandbox<'_> {
        let storage = self
            .storage
            .as_ref()
            .map(|(store, clock)| storage::StorageAccess {
                store: store.clone(),
                clock: clock.clone(),
                user: user.to_string(),
                plugin: self.confinement.name.clone(),
                task: task.to_string(),
                may_write: self.writers.get().is_some_and(|w| w.contains(task)),
                grants: self.storage_grants.clone(),
                quota: self.storage_quota,
            });
        Sandbox {
            storage,
            config: Some(self.confinement.config(user)),
            ..self.confinement.sandbox()
        }
    }
}

#[async_trait::async_trait]
impl weft_core::task::Component for LoadedPlugin {
    fn digest(&self) -> &str {
        &self.digest
    }

    /// Run task type `task_id` on `input` in a fresh instance.
    async fn run(
        &self,
        task_id: &str,
        input: &Value,
        ctx: &TaskContext,
        timeout: Duration,
    ) -> Result<Value, TaskError> {
        let owner = ctx.grants.user.as_deref().unwrap_or("");
        let _permit = self.engine.instance_permit(owner).await;
        let (mut store, stderr) = instance::new_store(
            self.engine.engine(),
            &self.task_sandbox(task_id, owner),
            ctx.events.clone(),
            ctx.grants.clone(),
            timeout,
        )?;
        let bindings = match self.pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(instance::classify(e, &store, &stderr, timeout)),
        };
        let input_text = input.to_string();
        let wit_ctx = wit_types::Context {
            run_id: ctx.run_id.clone(),
            node_id: ctx.node_id.clone(),
            attempt: ctx.attempt,
            idempotency_key: ctx.idempotency_key.clone(),
        };
        let result = bindings
            .weft_plugin_task()
            .call_run(&mut store, task_id, &input_text, &wit_ctx)
            .await;
        let output = match result {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => return Err(from_wit_error(e)),
            Err(e) => return Err(instance::classify(e, &store, &stderr, timeout)),
        };
        if let Some(events) = &ctx.events {
            let text = instance::stderr_text(&stderr);
            if !text.is_empty() {
                events.log(weft_core::event::LogLevel::Warn, format!("stderr: {text}"));
            }
        }
        if output.len() > self.max_output_bytes {
            return Err(TaskError::OutputTooLarge {
                size: output.len(),
                limit: self.max_output_bytes,
            });
        }
        serde_json::from_str(&output).map_err(|e| TaskError::BadOutput(format!("not JSON ({e})")))
    }
}

/// A task's own error, its message bounded (a plugin may send megabytes).
fn from_wit_error(e: wit_types::TaskError) -> TaskError {
    use weft_core::event::bounded_message as bounded;
    match e {
        wit_types::TaskError::InvalidInput(m) => TaskError::InvalidInput(bounded(m)),
        wit_types::TaskError::Failed(m) => TaskError::Failed(bounded(m)),
        wit_types::TaskError::Retryable(h) => TaskError::Retryable {
            message: bounded(h.message),
            delay: h.delay_ms.map(Duration::from_millis),
        },
        wit_types::TaskError::Cancelled(m) => TaskError::Cancelled(bounded(m)),
    }
}

/// One `*.wasm` of a plugins folder: read, or (its path, why not).
pub type FolderEntry = Result<PluginSource, (String, PluginError)>;

/// A component to load, with where it came from.
pub struct PluginSource {
    /// The plugin's name.
    pub name: String,
    /// A file path, or `builtin`.
    pub origin: String,
    /// The component (a standard plugin's: borrowed from the binary, not
    /// copied).
    pub bytes: Bytes,
    /// Its SHA-256, hex: what names it in the store, the compiled-component
    /// cache and run pins.
    pub digest: String,
    /// Its manifest (or why the manifest is unusable).
    pub manifest: Result<Manifest, ManifestError>,
}

impl PluginSource {
    /// A component `bytes` named `name`, from `origin`, hashed here.
    pub fn new(
        name: String,
        origin: String,
        bytes: Bytes,
        manifest: Result<Manifest, ManifestError>,
    ) -> Self {
        let digest = hex::encode(Sha256::digest(&bytes));
        PluginSource {
            name,
            origin,
            bytes,
            digest,
            manifest,
        }
    }

    /// Read `path` and the manifest beside it.
    pub fn from_file(path: &Path) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let origin = path.display().to_string();
        let manifest = Manifest::for_component(path);
        Ok(Self::new(name, origin, bytes.into(), manifest))
    }
}

/// What one component provides.
pub struct Loaded {
    /// Its task types (none if it does not export `task`).
    pub tasks: Vec<TaskType>,
    /// Its model backend, if it exports `provider`.
    pub provider: Option<Arc<ProviderPlugin>>,
}

/// Which of Weft's interfaces a component exports (any 0.1.x version).
struct Exports {
    task: bool,
    provider: bool,
}

impl Exports {
    fn of(component: &wasmtime::component::Component, engine: &wasmtime::Engine) -> Self {
        let names: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports = |interface: &str| {
            let prefix = format!("weft:plugin/{interface}@0.1.");
            names.iter().any(|n| n.starts_with(&prefix))
        };
        Exports {
            task: exports("task"),
            provider: exports("provider"),
        }
    }
}

/// Loads plugins and runs their tasks.
#[derive(Clone)]
pub struct PluginHost {
    engine: WeftEngine,
    linker: Arc<Linker<InstanceState>>,
    limits: HostLimits,
    max_memory_bytes: u64,
    models: Option<Arc<Models>>,
    /// Folders no grant may overlap, with what they are.
    protected: Vec<(PathBuf, &'static str)>,
    /// The plugins folder: no grant may be it or hold it (its subfolders
    /// are not loaded as plugins, so they may be granted).
    plugins_dir: Option<PathBuf>,
    /// Where the `storage` import keeps keys, by which clock.
    storage: Option<(Arc<dyn KeyValues>, Arc<dyn Clock>)>,
    /// Where `{ secret = … }` config values come from.
    secrets: Option<Arc<dyn config::Secrets>>,
    /// What plugins' outgoing HTTP did.
    http_stats: Arc<http::HttpStats>,
}

impl PluginHost {
    /// A host with the given engine options and limits.
    pub fn new(options: &EngineOptions, limits: HostLimits) -> Result<Self, wasmtime::Error> {
        let engine = WeftEngine::new(options)?;
        let mut linker = Linker::new(engine.engine());
        instance::add_to_linker(&mut linker)?;
        Ok(PluginHost {
            engine,
            linker: Arc::new(linker),
            limits,
            max_memory_bytes: options.max_memory_bytes,
            models: None,
            protected: options
                .cache_dir
                .iter()
                .map(|d| (d.clone(), "the compiled-component cache"))
                .collect(),
            plugins_dir: None,
            storage: None,
            secrets: None,
            http_stats: Arc::default(),
        })
    }

    /// What plugins' outgoing HTTP did since the host started.
    pub fn http_stats(&self) -> &http::HttpStats {
        &self.http_stats
    }

    /// Keep plugins' `storage` in `store`, expiring by `clock`.
    pub fn with_storage(mut self, store: Arc<dyn KeyValues>, clock: Arc<dyn Clock>) -> Self {
        self.storage = Some((store, clock));
        self
    }

    /// Give `{ secret = … }` config values from `secrets`.
    pub fn with_secrets(mut self, secrets: Arc<dyn config::Secrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Refuse folder grants of `dir` (the plugins folder) or of a folder
    /// holding it: a plugin could replace the plugins the host loads.
    pub fn protect_plugins_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugins_dir = Some(dir.into());
        self
    }

    /// Refuse folder grants of `dir`, of a folder inside it or of a folder
    /// holding it (`what` names it in errors): the data directory, the
    /// models folder.
    pub fn protect(mut self, dir: impl Into<PathBuf>, what: &'static str) -> Self {
        self.protected.push((dir.into(), what));
        self
    }

    /// A grant of `folder` that overlaps a protected folder (either inside
    /// the other), compared as real paths.
    fn check_grant(&self, folder: &Path) -> Result<(), PluginError> {
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let grant = real(folder);
        let refused = |dir: &PathBuf, what| PluginError::ProtectedFolder {
            grant: folder.to_path_buf(),
            protected: dir.clone(),
            what,
        };
        for (dir, what) in &self.protected {
            let protected = real(dir);
            if grant.starts_with(&protected) || protected.starts_with(&grant) {
                return Err(refused(dir, what));
            }
        }
        if let Some(dir) = &self.plugins_dir
            && real(dir).starts_with(&grant)
        {
            return Err(refused(dir, "the plugins folder"));
        }
        Ok(())
    }

    /// Serve `models` to plugins through the `models` import.
    pub fn with_models(mut self, models: Arc<Models>) -> Self {
        self.models = Some(models);
        self
    }

    /// The engine.
    pub fn engine(&self) -> &WeftEngine {
        &self.engine
    }

    /// The standard plugins built into this binary.
    pub fn standard_sources() -> Vec<PluginSource> {
        standard::STANDARD_PLUGINS
            .iter()
            .map(|(name, bytes, digest)| PluginSource {
                name: name.to_string(),
                origin: "builtin".into(),
                bytes: Bytes::from_static(bytes),
                digest: digest.to_string(),
                manifest: Ok(Self::standard_manifest(name)),
            })
            .collect()
    }

    /// The manifest a standard plugin is loaded with.
    pub fn standard_manifest(name: &str) -> Manifest {
        let mut manifest = Manifest::default();
        // The standard AI and RAG tasks call whichever model their input names.
        if name == "std-ai" || name == "std-rag" {
            manifest.grants.models = vec!["*".into()];
        }
        // An image of 50 megapixels is 200 MB as RGBA, in and out.
        if name == "std-image" {
            manifest.limits.memory_mib = Some(1024);
        }
        manifest
    }

    /// Every `*.wasm` in `dir`, sorted by name. A file that cannot be read is
    /// reported as a failed plugin.
    pub fn folder_sources(dir: &Path) -> Result<Vec<FolderEntry>, std::io::Error> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|p| PluginSource::from_file(&p).map_err(|e| (p.display().to_string(), e)))
            .collect())
    }

    /// Load every source (compiling in parallel) into `registry`, in order. A
    /// plugin that fails is recorded in the registry's reports with its error and
    /// skipped; the others load. Returns the provider plugins among them, by
    /// name.
    pub async fn load_all(
        &self,
        registry: &mut Registry,
        sources: Vec<PluginSource>,
    ) -> BTreeMap<String, Arc<ProviderPlugin>> {
        let loads = sources.into_iter().map(|source| {
            let host = self.clone();
            async move {
                let report = PluginReport {
                    name: source.name.clone(),
                    source: source.origin.clone(),
                    sha256: source.digest.clone(),
                    tasks: Vec::new(),
                    provider: false,
                    error: None,
                };
                (report, host.load(source).await)
            }
        });
        let mut providers = BTreeMap::new();
        for (mut report, result) in futures::future::join_all(loads).await {
            let result = result.and_then(|loaded| {
                let ids: Vec<String> = loaded.tasks.iter().map(|t| t.id.clone()).collect();
                registry.insert_all(loaded.tasks)?;
                Ok((ids, loaded.provider))
            });
            match result {
                Ok((ids, provider)) => {
                    report.tasks = ids;
                    report.provider = provider.is_some();
                    if let Some(provider) = provider {
                        providers.insert(report.name.clone(), provider);
                    }
                }
                Err(e) => {
                    tracing::warn!(plugin = %report.name, source = %report.source, error = %e, "plugin not loaded");
                    report.error = Some(e.to_string());
                }
            }
            registry.report(report);
        }
        providers
    }

    /// Load one component: its task types if it exports `task`, its model
    /// backend if it exports `provider` (at least one of them).
    pub async fn load(&self, source: PluginSource) -> Result<Loaded, PluginError> {
        let manifest = source.manifest?;
        let confinement = self.confine(&source.name, &manifest)?;
        let engine = self.engine.clone();
        let (bytes, digest) = (source.bytes, source.digest);
        let key = digest.clone();
        let component = tokio::task::spawn_blocking(move || engine.load_component(&bytes, &key))
            .await
            .map_err(|e| PluginError::Compile(e.to_string()))?
            .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        let exports = Exports::of(&component, self.engine.engine());
        if !exports.task && !exports.provider {
            return Err(PluginError::Link(format!(
                "exports neither `weft:plugin/task` nor `weft:plugin/provider` (0.1.x): build it against the `plugin` or the `provider-plugin` world of {WIT_PACKAGE}"
            )));
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link(format!("{e:#}")))?;
        let provider = match exports.provider {
            true => Some(Arc::new(ProviderPlugin::new(
                self.confine(&source.name, &manifest)?,
                self.engine.clone(),
                &instance_pre,
                manifest.limits.instances.unwrap_or(1),
            )?)),
            false => None,
        };
        let tasks = match exports.task {
            true => {
                let pre = PluginPre::new(instance_pre)
                    .map_err(|e| PluginError::Link(format!("{e:#}")))?;
                self.load_tasks(confinement, digest, pre, &manifest).await?
            }
            false => Vec::new(),
        };
        Ok(Loaded { tasks, provider })
    }

    /// What every instance of plugin `name` is given and held to, from
    /// `manifest` within the host's ceilings.
    fn confine(&self, name: &str, manifest: &Manifest) -> Result<Confinement, PluginError> {
        for folder in &manifest.grants.folders {
            self.check_grant(&folder.host)?;
        }
        let memory_limit = match manifest.limits.memory_mib {
            Some(mib) if mib << 20 > self.max_memory_bytes => {
                return Err(PluginError::MemoryCeiling {
                    asked: mib,
                    max: self.max_memory_bytes >> 20,
                });
            }
            Some(mib) => mib << 20,
            None => self.limits.default_memory_bytes,
        };
        Ok(Confinement {
            name: name.to_string(),
            memory_limit,
            fuel: manifest.limits.fuel.or(self.limits.default_fuel),
            env: manifest
                .grants
                .env
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
                .collect(),
            folders: manifest.grants.folders.clone(),
            models: self.models.clone(),
            granted_models: manifest.grants.models.clone(),
            // Checked when the manifest was parsed.
            network: manifest
                .grants
                .network
                .iter()
                .filter_map(|g| manifest::NetGrant::parse(g).ok())
                .collect(),
            settings: Arc::new(manifest.settings.clone()),
            secrets: self.secrets.clone(),
            http: HttpAccess {
                // Checked when the manifest was parsed.
                grants: manifest
                    .grants
                    .http
                    .iter()
                    .filter_map(|g| http::HttpGrant::parse(g).ok())
                    .collect(),
                limits: self.limits.http,
                permits: Arc::new(tokio::sync::Semaphore::new(
                    self.limits.http.concurrency.max(1),
                )),
                stats: self.http_stats.clone(),
            },
        })
    }

    /// Describe a task plugin and make its task types.
    async fn load_tasks(
        &self,
        confinement: Confinement,
        digest: String,
        pre: PluginPre<InstanceState>,
        manifest: &Manifest,
    ) -> Result<Vec<TaskType>, PluginError> {
        let plugin = Arc::new(LoadedPlugin {
            confinement,
            digest,
            engine: self.engine.clone(),
            pre,
            max_output_bytes: self.limits.max_output_bytes,
            storage: self.storage.clone(),
            storage_grants: manifest.grants.storage.clone().into(),
            storage_quota: self.storage_quota(manifest)?,
            writers: std::sync::OnceLock::new(),
        });
        let declared = self.describe(&plugin).await?;
        let writers = declared
            .iter()
            .filter(|t| t.side_effects)
            .map(|t| t.id.clone())
            .collect();
        let _ = plugin.writers.set(writers);
        let plugin_timeout = manifest
            .limits
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.limits.default_timeout);
        declared
            .into_iter()
            .map(|t| {
                let schema = |which, text: &str| {
                    ObjectSchema::parse(which, text).map_err(|source| RegistryError::Schema {
                        id: t.id.clone(),
                        source,
                    })
                };
                let input = schema("input", &t.input_schema)?;
                // A plugin granted models takes the model to call on its
                // `model` port (the standard AI tasks do): the user must be
                // granted the model named there. Every call is checked too.
                let granted_models = !plugin.confinement.granted_models.is_empty();
                let resources = match granted_models && input.port("model").is_some() {
                    true => vec![("model".to_string(), Resource::Model)],
                    false => Vec::new(),
                };
                Ok(TaskType {
                    input,
                    output: schema("output", &t.output_schema)?,
                    resources,
                    // The manifest's (or the host's) limit is a ceiling: the
                    // plugin's own declaration may only lower it.
                    timeout: t
                        .timeout_ms
                        .map(Duration::from_millis)
                        .map_or(plugin_timeout, |declared| declared.min(plugin_timeout)),
                    id: t.id,
                    version: t.version,
                    title: t.title,
                    category: t.category,
                    description: t.description,
                    side_effects: t.side_effects,
                    cacheable: t.cacheable && !t.side_effects,
                    reaches_out: plugin.confinement.reaches_out(),
                    plugin: plugin.confinement.name.clone(),
                    implementation: Implementation::Wasm(plugin.clone()),
                })
            })
            .collect()
    }

    /// The storage quota `manifest` asks, within the host's ceilings.
    fn storage_quota(
        &self,
        manifest: &Manifest,
    ) -> Result<weft_store::key_values::Quota, PluginError> {
        let ceiling = self.limits.storage_quota;
        let within = |what, asked: Option<u64>, max: u64| match asked {
            Some(asked) if asked > max => Err(PluginError::StorageCeiling { what, asked, max }),
            asked => Ok(asked.unwrap_or(max)),
        };
        Ok(weft_store::key_values::Quota {
            max_keys: within("keys", manifest.storage.max_keys, ceiling.max_keys)?,
            max_bytes: within("bytes", manifest.storage.max_bytes, ceiling.max_bytes)?,
        })
    }

    /// The task types `plugin` provides: as kept from an earlier start
    /// ([`described`]), else from its `describe`, then kept.
    async fn describe(
        &self,
        plugin: &LoadedPlugin,
    ) -> Result<Vec<wit_types::TaskType>, PluginError> {
        let kept = self.engine.description(&plugin.digest);
        if let Some(types) = kept.as_deref().and_then(described::parse) {
            return Ok(types);
        }
        let types = self.ask_describe(plugin).await?;
        self.engine
            .keep_description(&plugin.digest, &described::to_text(&types));
        Ok(types)
    }

    /// Instantiate `plugin` and call its `describe`.
    async fn ask_describe(
        &self,
        plugin: &LoadedPlugin,
    ) -> Result<Vec<wit_types::TaskType>, PluginError> {
        let timeout = self.limits.describe_timeout;
        let _permit = self.engine.instance_permit("").await;
        let (mut store, stderr) = instance::new_store(
            self.engine.engine(),
            &plugin.confinement.sandbox(),
            None,
            Arc::new(weft_core::grant::Grants::all()),
            timeout,
        )
        .map_err(|e| PluginError::Describe(e.to_string()))?;
        let call = async {
            let bindings = plugin.pre.instantiate_async(&mut store).await?;
            bindings.weft_plugin_task().call_describe(&mut store).await
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(types)) => Ok(types),
            Ok(Err(e)) => Err(PluginError::Describe(
                instance::classify(e, &store, &stderr, timeout).to_string(),
            )),
            Err(_) => Err(PluginError::Describe(format!(
                "timed out after {} ms",
                timeout.as_millis()
            ))),
        }
    }
}
