//! The host facade: one object that owns the plugin host, the task registry
//! and the runner, for the CLI, the daemon and embedders.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::events::EventHub;
use crate::graph::{Graph, Plan, ValidationErrors};
use crate::plugin::{EngineOptions, HostLimits, PluginHost};
use crate::runner::{RunOptions, RunResult, Runner};
use crate::task::{NativeTask, PluginReport, Registry, RegistryError};

/// Why the host could not start or could not run a graph.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime could not be set up.
    #[error("cannot start the wasm engine: {0}")]
    Engine(String),
    /// The plugins folder cannot be listed.
    #[error("cannot read plugins folder {path}: {source}")]
    PluginsDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A native task could not be registered.
    #[error(transparent)]
    Native(#[from] RegistryError),
    /// The graph or the run's input is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

/// Configures a [`Host`].
#[derive(Default)]
pub struct HostBuilder {
    plugins_dir: Option<PathBuf>,
    engine: EngineOptions,
    limits: HostLimits,
    run: RunOptions,
    natives: Vec<NativeTask>,
}

impl HostBuilder {
    /// Also load every `*.wasm` in `dir` (after the standard plugins).
    pub fn plugins_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugins_dir = Some(dir.into());
        self
    }

    /// Engine settings (pool size, memory ceiling, compiled-artifact cache).
    pub fn engine_options(mut self, options: EngineOptions) -> Self {
        self.engine = options;
        self
    }

    /// Default limits for plugins.
    pub fn limits(mut self, limits: HostLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How many tasks may run at once.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.run.parallelism = n;
        self
    }

    /// Register a Rust task (the seeds' LambdaTask).
    pub fn native(mut self, task: NativeTask) -> Self {
        self.natives.push(task);
        self
    }

    /// Start the engine and load the standard plugins, the plugins folder and
    /// the native tasks. Plugins that fail to load are reported in
    /// [`Host::plugins`]; they do not stop the host.
    pub async fn build(self) -> Result<Host, HostError> {
        let plugins = PluginHost::new(&self.engine, self.limits)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut registry = Registry::new();
        let mut sources = PluginHost::standard_sources();
        let mut unreadable = Vec::new();
        if let Some(dir) = &self.plugins_dir {
            let found =
                PluginHost::folder_sources(dir).map_err(|source| HostError::PluginsDir {
                    path: dir.clone(),
                    source,
                })?;
            for item in found {
                match item {
                    Ok(s) => sources.push(s),
                    Err(e) => unreadable.push(e),
                }
            }
        }
        plugins.load_all(&mut registry, sources).await;
        for (origin, error) in unreadable {
            registry.report(PluginReport {
                name: origin.clone(),
                source: origin,
                sha256: String::new(),
                tasks: Vec::new(),
                error: Some(error.to_string()),
            });
        }
        for task in self.natives {
            registry.register_native(task)?;
        }
        Ok(Host {
            plugins,
            registry: Arc::new(registry),
            runner: Runner::new(self.run),
        })
    }
}

/// A Weft host: knows task types, validates graphs, runs them.
pub struct Host {
    plugins: PluginHost,
    registry: Arc<Registry>,
    runner: Runner,
}

impl Host {
    /// Configure a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The task types this host knows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every plugin tried, with its load error if any.
    pub fn plugins(&self) -> &[PluginReport] {
        self.registry.plugins()
    }

    /// The plugin host (engine, loading).
    pub fn plugin_host(&self) -> &PluginHost {
        &self.plugins
    }

    /// Validate `graph`; `origin` names it in errors.
    pub fn plan(&self, graph: &Graph, origin: &str) -> Result<Plan, ValidationErrors> {
        Plan::new(graph, &self.registry, origin)
    }

    /// Run a validated plan, announcing events on `hub`, until done or cancelled.
    pub async fn run_plan(
        &self,
        plan: &Plan,
        input: &Value,
        hub: &EventHub,
        cancel: &CancellationToken,
    ) -> Result<RunResult, HostError> {
        plan.check_input(input)?;
        Ok(self.runner.run(plan, input, hub, cancel).await)
    }

    /// Validate and run `graph` on `input` with a fresh run id.
    pub async fn run(&self, graph: &Graph, input: Value) -> Result<RunResult, HostError> {
        let plan = self.plan(graph, "<graph>")?;
        let hub = EventHub::new(&new_run_id(), 1);
        self.run_plan(&plan, &input, &hub, &CancellationToken::new())
            .await
    }
}

/// A new, time-ordered run id.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
