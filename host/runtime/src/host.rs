//! The host facade: one object that owns the plugin host, the task registry
//! and the runner, for the CLI, the daemon and embedders.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::{EventHub, EventKind, NodeStatus, RunStatus};
use crate::grant::{NotGranted, Resource};
use crate::graph::{Graph, Plan, ValidationError, ValidationErrors};
use crate::limiter::{Queue, QueueConfig, QueueState};
use crate::plugin::{EngineOptions, HostLimits, PluginHost};
use crate::runner::{RunOptions, RunResult, Runner};
use crate::store::{
    Created, MemoryStore, NewRun, NodeRecord, RunLogError, RunRecord, RunSpec, RunStore,
    StoreError, StoredRun,
};
use crate::task::{NativeTask, PluginReport, Registry, RegistryError};

/// Why the host could not start or could not run a graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run log refused or failed (an unknown run, a run taken over by
    /// another host, a backend failure).
    #[error(transparent)]
    RunLog(#[from] RunLogError),
    /// The submitter is not granted a resource a node names.
    #[error("node `{node}`: {source}")]
    NotGranted {
        /// The node.
        node: String,
        /// What is not granted.
        source: NotGranted,
    },
    /// Only a failed node of a failed run can be re-driven.
    #[error("node {node} of run {run_id} is not a dead letter (a failed node of a failed run)")]
    NotDeadLetter {
        /// The run.
        run_id: String,
        /// The node.
        node: String,
    },
    /// A run cannot go on with the components it started with.
    #[error("run {run_id} cannot go on: {source}")]
    Unpinnable {
        /// The run.
        run_id: String,
        /// Which plugin, and why.
        source: crate::pinning::Unpinnable,
    },
    /// A run that already ended cannot be resumed.
    #[error("run {run_id} already ended ({status:?}); nothing to resume")]
    AlreadyFinished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
}

/// A failed node of a failed run, with what went wrong on each attempt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    /// The run.
    pub run_id: String,
    /// The node.
    pub node: String,
    /// Its task type.
    pub task_type: String,
    /// Attempts made.
    pub attempts: u32,
    /// The error of each failed attempt, oldest first.
    pub errors: Vec<String>,
    /// When the run ended, ms since the Unix epoch.
    pub failed_ms: u64,
}

/// A run ready to execute: validated, recorded in the store, with its event
/// hub (subscribe to it before [`Host::execute`] to follow the run).
pub struct PreparedRun {
    /// The run's id.
    pub run_id: String,
    /// The validated graph.
    pub plan: Plan,
    /// The run's event log.
    pub hub: EventHub,
    input: Value,
    prior: Vec<NodeRecord>,
    /// The user who owns the run (its output cache is theirs).
    owner: Option<String>,
    /// When it was submitted (its deadline counts from then).
    created_ms: u64,
}

impl PreparedRun {
    /// The user who owns the run.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
}

/// Who submits a new run and how (the daemon's submissions; the CLI uses the
/// default: no owner, no key).
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The submitting user.
    pub owner: Option<String>,
    /// The saved graph being run, when submitted by name.
    pub graph_name: Option<String>,
    /// Submitting again with the same key (same owner) returns the first run.
    pub idempotency_key: Option<String>,
    /// Lease the new run to this host at once (it will execute it).
    pub lease: Option<crate::store::Lease>,
    /// Refuse the run if the owner already has this many running runs
    /// (on every host sharing the store).
    pub max_running: Option<usize>,
}

/// The result of [`Host::submit`].
pub enum Prepared {
    /// A new run, recorded and ready to execute.
    New(PreparedRun),
    /// The owner already submitted this idempotency key: that run.
    Existing(RunRecord),
    /// The owner already has this many running runs
    /// ([`Submission::max_running`]): nothing was recorded.
    TooManyRunning(usize),
}

/// Configures a [`Host`].
#[derive(Default)]
pub struct HostBuilder {
    plugins_dir: Option<PathBuf>,
    engine: EngineOptions,
    limits: HostLimits,
    run: RunOptions,
    natives: Vec<NativeTask>,
    store: Option<Arc<dyn RunStore>>,
    queues: Vec<(String, QueueConfig)>,
    models: std::collections::BTreeMap<String, crate::providers::ModelConfig>,
    models_dir: Option<PathBuf>,
    share: Option<(String, usize, std::time::Duration)>,
    clock: Option<Arc<dyn Clock>>,
    protected: Vec<(PathBuf, &'static str)>,
    secrets: Option<Arc<crate::secrets::SecretStore>>,
    tasks_per_user: Option<usize>,
    fetch_origins: Vec<String>,
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

    /// At most `n` plugin task runs of one user's runs execute at once on
    /// this host (free instances always go to the waiting user holding the
    /// fewest).
    pub fn tasks_per_user(mut self, n: usize) -> Self {
        self.engine.max_instances_per_user = Some(n.clamp(1, u32::MAX as usize) as u32);
        self.tasks_per_user = Some(n.max(1));
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

    /// Keep runs in `store` (default: in memory, lost at exit).
    pub fn store(mut self, store: Arc<dyn RunStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How the output cache is used (default: on, keep the last 10,000 entries
    /// per task type, no age limit).
    pub fn cache(mut self, policy: crate::cache::CachePolicy) -> Self {
        self.run.cache = policy;
        self
    }

    /// Share the cached outputs of task types `ids` between every user (by
    /// default each user's runs have their own entries).
    pub fn share_cache(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.run.cache_shared.extend(ids);
        self
    }

    /// Define queue `name`: nodes routed through it (by `config.queue`, or by
    /// task type through `config.tasks`) start only as its limiters allow.
    pub fn queue(mut self, name: &str, config: QueueConfig) -> Self {
        self.queues.push((name.to_string(), config));
        self
    }

    /// Serve model `id` to plugins (through the `models` import).
    pub fn model(mut self, id: &str, config: crate::providers::ModelConfig) -> Self {
        self.models.insert(id.to_string(), config);
        self
    }

    /// Keep model files (`ai.model-download`, `weft models pull`) under `dir`.
    pub fn models_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.models_dir = Some(dir.into());
        self
    }

    /// Register a Rust task (the seeds' LambdaTask).
    pub fn native(mut self, task: NativeTask) -> Self {
        self.natives.push(task);
        self
    }

    /// Share tasks with the other hosts of a shared store, as host
    /// `host_id`: at most `slots` tasks execute here at once; a task of this
    /// host's runs that finds no free slot is offered to every host, and
    /// [`Host::serve_tasks`] executes offers while slots are free. Claims
    /// last `lease` without a heartbeat. See [`crate::dispatch`].
    pub fn share_tasks(mut self, host_id: &str, slots: usize, lease: std::time::Duration) -> Self {
        self.share = Some((host_id.to_string(), slots, lease));
        self
    }

    /// Refuse plugin folder grants of `dir`, of a folder inside it or of a
    /// folder holding it (`what` names it in errors). The models folder and
    /// the compiled cache are always protected, and the plugins folder
    /// itself (a grant may be a subfolder of it).
    pub fn protect(mut self, dir: impl Into<PathBuf>, what: &'static str) -> Self {
        self.protected.push((dir.into(), what));
        self
    }

    /// What each user's runs may use (default: every run everything, as
    /// with no users configured). Checked at [`Host::submit`] and when each
    /// task starts.
    pub fn grants(mut self, grants: crate::grant::UserGrants) -> Self {
        self.run.grants = grants;
        self
    }

    /// Where plugins' `{ secret = … }` config values come from (none: such
    /// values are refused).
    pub fn secrets(mut self, secrets: Arc<crate::secrets::SecretStore>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Let the standard task `net.fetch-url` reach these origins (`[fetch]
    /// origins`: `https://host[:port]`, or `https://*` for any public host).
    pub fn fetch_origins(mut self, origins: Vec<String>) -> Self {
        self.fetch_origins = origins;
        self
    }

    /// The most any run may take, whatever its graph asks.
    pub fn run_ceilings(mut self, ceilings: crate::graph::RunLimits) -> Self {
        self.run.run_ceilings = ceilings;
        self
    }

    /// How large a graph this host accepts (nodes counting those inside
    /// compound nodes, and dataflows); [`crate::graph::MAX_NODES`] and
    /// [`crate::graph::MAX_DATAFLOWS`] by default.
    pub fn graph_sizes(mut self, sizes: crate::graph::SizeLimits) -> Self {
        self.run.graph_sizes = sizes;
        self
    }

    /// Measure time-dependent behaviour (rate windows, retry due times,
    /// Retry-After pauses, leases and quotas in the daemon) by `clock`
    /// instead of the system clock: for tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Start the engine and load the standard plugins, the plugins folder and
    /// the native tasks. Plugins that fail to load are reported in
    /// [`Host::plugins`]; they do not stop the host.
    pub async fn build(self) -> Result<Host, HostError> {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let clock = self.clock.unwrap_or_else(crate::clock::system);
        let state = QueueState {
            store: store.clone(),
            clock: clock.clone(),
        };
        let mut models = crate::providers::Models::new(self.models, state.clone());
        if let Some(dir) = self.models_dir.clone() {
            models = models.with_dir(dir);
        }
        let models = Arc::new(models);
        let mut plugins = PluginHost::new(&self.engine, self.limits)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?
            .with_models(models.clone())
            .with_storage(store.clone(), clock.clone());
        if let Some(secrets) = &self.secrets {
            plugins = plugins.with_secrets(secrets.clone());
        }
        if let Some(dir) = &self.models_dir {
            plugins = plugins.protect(dir, "the models folder");
        }
        if let Some(dir) = &self.plugins_dir {
            plugins = plugins.protect_plugins_dir(dir);
        }
        for (dir, what) in self.protected {
            plugins = plugins.protect(dir, what);
        }
        let mut registry = Registry::new();
        let mut sources = PluginHost::standard_sources();
        for source in &mut sources {
            if let (STD_NET, Ok(manifest)) = (source.name.as_str(), &mut source.manifest) {
                manifest.grants.http = self.fetch_origins.clone();
            }
        }
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
        crate::pinning::archive(store.as_ref(), &sources).await;
        let providers = plugins.load_all(&mut registry, sources).await;
        models.serve_plugins(providers);
        for (origin, error) in unreadable {
            registry.report(PluginReport {
                name: origin.clone(),
                source: origin,
                sha256: String::new(),
                tasks: Vec::new(),
                provider: false,
                error: Some(error.to_string()),
            });
        }
        registry.register_native(crate::providers::Models::download_task(&models))?;
        registry.register_native(crate::providers::Models::remove_task(&models))?;
        registry.register_native(crate::providers::Models::search_task(&models))?;
        for task in self.natives {
            registry.register_native(task)?;
        }
        let mut run = self.run;
        run.clock = clock.clone();
        let grants = run.grants.clone();
        run.dispatch = self.share.map(|(host_id, slots, lease)| {
            crate::cluster::dispatch::Dispatch::new(store.clone(), &host_id, slots, lease, grants)
        });
        if let Some(n) = self.tasks_per_user {
            let holder = run.dispatch.as_ref().map(|d| d.slot_holder());
            let config = QueueConfig {
                concurrency: Some(n),
                ..QueueConfig::default()
            };
            run.users = Some(Arc::new(Queue::new("users", &config, &state, holder)));
        }
        for (name, config) in &self.queues {
            for task in &config.tasks {
                run.task_queues.insert(task.clone(), name.clone());
            }
            let holder = run.dispatch.as_ref().map(|d| d.slot_holder());
            run.queues.insert(
                name.clone(),
                Arc::new(Queue::new(name, config, &state, holder)),
            );
        }
        Ok(Host {
            plugins,
            models,
            plugins_dir: self.plugins_dir,
            registry: std::sync::RwLock::new(Arc::new(registry)),
            runner: Runner::new(run, Some(store.clone())),
            store,
            clock,
            secrets: self.secrets,
        })
    }
}

/// The standard plugin of `net.fetch-url`, granted `[fetch] origins`.
const STD_NET: &str = "std-net";

/// A Weft host: knows task types, validates graphs, runs them.
pub struct Host {
    plugins: PluginHost,
    models: Arc<crate::providers::Models>,
    plugins_dir: Option<PathBuf>,
    /// Swapped whole by [`Host::reload_plugins`]; runs keep the task types
    /// their plan was made with.
    registry: std::sync::RwLock<Arc<Registry>>,
    runner: Runner,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    secrets: Option<Arc<crate::secrets::SecretStore>>,
}

impl Host {
    /// Users' secrets, when the operator configured a key (`[secrets]`).
    pub fn secrets(&self) -> Option<&Arc<crate::secrets::SecretStore>> {
        self.secrets.as_ref()
    }

    /// How large a graph this host accepts.
    pub fn graph_sizes(&self) -> crate::graph::SizeLimits {
        self.runner.options().graph_sizes
    }

    /// Configure a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The task types this host knows now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every plugin tried, with its load error if any.
    pub fn plugins(&self) -> Vec<PluginReport> {
        self.registry().plugins().to_vec()
    }

    /// The plugins folder, if the host has one.
    pub fn plugins_dir(&self) -> Option<&std::path::Path> {
        self.plugins_dir.as_deref()
    }

    /// Scan the plugins folder again and swap in the new set of task types:
    /// new files load, removed ones go, changed ones load again. A changed
    /// plugin that now fails to load keeps its previous version serving, and
    /// its report carries the error. Runs already executing are not affected:
    /// they keep the task types they started with.
    pub async fn reload_plugins(&self) -> Result<(), HostError> {
        let Some(dir) = &self.plugins_dir else {
            return Ok(());
        };
        let old = self.registry();
        let found = PluginHost::folder_sources(dir).map_err(|source| HostError::PluginsDir {
            path: dir.clone(),
            source,
        })?;
        let mut fresh = Registry::new();
        // Standard plugins and native tasks do not change while running.
        let builtin: Vec<&PluginReport> = old
            .plugins()
            .iter()
            .filter(|p| p.source == "builtin")
            .collect();
        for report in &builtin {
            fresh.carry_over(&old, report);
        }
        fresh.carry_native(&old);
        let mut sources = Vec::new();
        let mut unreadable = Vec::new();
        for item in found {
            match item {
                Ok(s) => sources.push(s),
                Err(e) => unreadable.push(e),
            }
        }
        let mut loaded = Registry::new();
        crate::pinning::archive(self.store.as_ref(), &sources).await;
        let mut providers = self.plugins.load_all(&mut loaded, sources).await;
        let serving = self.models.plugins();
        for report in loaded.plugins() {
            let previous = old.plugins().iter().find(|p| {
                p.source == report.source
                    && p.error.is_none()
                    && (!p.tasks.is_empty() || p.provider)
            });
            match (&report.error, previous) {
                (None, _) => fresh.carry_over(&loaded, report),
                (Some(error), Some(previous)) => {
                    tracing::warn!(plugin = %report.name, error = %error,
                        "new version failed to load; the previous version keeps serving");
                    let mut kept = previous.clone();
                    kept.error = Some(format!(
                        "{error} (the previous version, sha256 {}, is still serving)",
                        previous.sha256
                    ));
                    fresh.carry_over_as(&old, previous, kept);
                    if let Some(provider) = serving.get(&previous.name) {
                        providers.insert(previous.name.clone(), provider.clone());
                    }
                }
                (Some(_), None) => fresh.report(report.clone()),
            }
        }
        for (origin, error) in unreadable {
            fresh.report(PluginReport {
                name: origin.clone(),
                source: origin,
                sha256: String::new(),
                tasks: Vec::new(),
                provider: false,
                error: Some(error.to_string()),
            });
        }
        let changed = old.plugins() != fresh.plugins();
        // Built-in plugins serve no models; the folder's now serve.
        self.models.serve_plugins(providers);
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        if changed {
            tracing::info!(dir = %dir.display(), "plugins reloaded");
        }
        Ok(())
    }

    /// The plugin host (engine, loading).
    pub fn plugin_host(&self) -> &PluginHost {
        &self.plugins
    }

    /// The models served to plugins.
    pub fn models(&self) -> &Arc<crate::providers::Models> {
        &self.models
    }

    /// Validate `graph`; `origin` names it in errors.
    pub fn plan(&self, graph: &Graph, origin: &str) -> Result<Plan, ValidationErrors> {
        self.plan_in(graph, origin, &self.registry())
    }

    /// Validate `graph` against the task types of `registry`.
    fn plan_in(
        &self,
        graph: &Graph,
        origin: &str,
        registry: &Registry,
    ) -> Result<Plan, ValidationErrors> {
        let plan = Plan::new(graph, registry, origin, &self.runner.options().graph_sizes)?;
        let unknown: Vec<ValidationError> = plan
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| {
                let queue = node.queue.as_ref()?;
                if let Some(routed) = self.runner.queue_of_task_type(&node.task.id)
                    && routed != queue
                {
                    return Some(ValidationError::QueueOverridesRouting {
                        index,
                        node: node.id.clone(),
                        task_type: node.task.id.clone(),
                        routed: routed.to_string(),
                        queue: queue.clone(),
                    });
                }
                (!self.runner.has_queue(queue)).then(|| ValidationError::UnknownQueue {
                    index,
                    node: node.id.clone(),
                    queue: queue.clone(),
                })
            })
            .collect();
        if unknown.is_empty() {
            Ok(plan)
        } else {
            Err(ValidationErrors {
                origin: origin.to_string(),
                errors: unknown,
            })
        }
    }

    /// The clock time-dependent behaviour is measured by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The store runs are kept in.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// Until `stop`, execute tasks other hosts offer (see
    /// [`HostBuilder::share_tasks`]; without it, returns at once). Then wait
    /// up to `grace` for those executing.
    pub async fn serve_tasks(self: Arc<Self>, stop: CancellationToken, grace: std::time::Duration) {
        let Some(dispatch) = self.runner.dispatch().cloned() else {
            return;
        };
        dispatch.serve(move || self.registry(), stop, grace).await;
    }

    /// Run a validated plan without recording it in the store, announcing
    /// events on `hub`, until done or cancelled.
    pub async fn run_plan(
        &self,
        plan: &Plan,
        input: &Value,
        hub: &EventHub,
        cancel: &CancellationToken,
    ) -> Result<RunResult, HostError> {
        plan.check_input(input)?;
        Ok(self
            .runner
            .run(plan, input, &[], hub, cancel, None, None)
            .await?)
    }

    /// Validate `graph` and `input` and record a new run in the store.
    pub async fn prepare(
        &self,
        graph: &Graph,
        origin: &str,
        input: Value,
    ) -> Result<PreparedRun, HostError> {
        let plan = self.checked_plan(graph, origin, &input, None)?;
        self.prepare_plan(plan, graph, origin, input).await
    }

    /// As `prepare`, with `plan` already made by `checked` for the same
    /// graph and input (a large graph is planned once, not twice).
    pub async fn prepare_plan(
        &self,
        plan: Plan,
        graph: &Graph,
        origin: &str,
        input: Value,
    ) -> Result<PreparedRun, HostError> {
        let (prepared, durable) = self
            .record(plan, graph, origin, input, Submission::default())
            .await?;
        durable.await?;
        match prepared {
            Prepared::New(run) => Ok(run),
            Prepared::Existing(_) | Prepared::TooManyRunning(_) => {
                unreachable!("a run without an idempotency key or quota is always new")
            }
        }
    }

    /// Check, without running or recording anything, what a submission of
    /// `graph` with `input` by `owner` would check: the graph, the input
    /// against its schema, and the owner's grants.
    pub fn check(
        &self,
        graph: &Graph,
        origin: &str,
        input: &Value,
        owner: Option<&str>,
    ) -> Result<(), HostError> {
        self.checked_plan(graph, origin, input, owner).map(drop)
    }

    /// The plan of `graph`, checked as `check` does for no owner: what
    /// `prepare_plan` takes.
    pub fn checked(&self, graph: &Graph, origin: &str, input: &Value) -> Result<Plan, HostError> {
        self.checked_plan(graph, origin, input, None)
    }

    /// The plan of `graph`, once it, `input` and `owner`'s grants are checked.
    fn checked_plan(
        &self,
        graph: &Graph,
        origin: &str,
        input: &Value,
        owner: Option<&str>,
    ) -> Result<Plan, HostError> {
        let plan = self.plan(graph, origin)?;
        plan.check_input(input)?;
        self.check_grants(&plan, input, owner)?;
        Ok(plan)
    }

    /// Validate `graph` and `input` and record a new run for `submission`,
    /// or find the run its idempotency key already started.
    pub async fn submit(
        &self,
        graph: &Graph,
        origin: &str,
        input: Value,
        submission: Submission,
    ) -> Result<Prepared, HostError> {
        let (prepared, durable) = self
            .submit_applied(graph, origin, input, submission)
            .await?;
        durable.await?;
        Ok(prepared)
    }

    /// [`Host::submit`], answering as soon as the run is recorded, perhaps
    /// before it is durable: the run may be started at once, but nothing may
    /// be acknowledged before the [`Durable`](weft_store::Durable) resolves
    /// `Ok` (see [`RunLog::create_run_applied`](weft_store::RunLog::create_run_applied)).
    /// Saves a new run the wait for the fsync in progress.
    pub async fn submit_applied(
        &self,
        graph: &Graph,
        origin: &str,
        input: Value,
        submission: Submission,
    ) -> Result<(Prepared, weft_store::Durable), HostError> {
        let plan = self.checked_plan(graph, origin, &input, submission.owner.as_deref())?;
        self.record(plan, graph, origin, input, submission).await
    }

    /// Record a new run of `plan`, made from `graph` and checked.
    async fn record(
        &self,
        plan: Plan,
        graph: &Graph,
        origin: &str,
        input: Value,
        submission: Submission,
    ) -> Result<(Prepared, weft_store::Durable), HostError> {
        let run_id = new_run_id();
        let mut record = RunRecord::new(&run_id, origin);
        record.owner = submission.owner.clone();
        record.graph_name = submission.graph_name;
        record.idempotency_key = submission.idempotency_key;
        let created_ms = record.created_ms;
        let spec = RunSpec {
            graph: graph.clone(),
            origin: origin.to_string(),
            input: input.clone(),
            components: crate::pinning::pins(&plan),
        };
        let new = NewRun::new(record, spec)
            .leased(submission.lease)
            .at_most_running(submission.max_running);
        let (created, durable) = self.store.create_run_applied(new).await?;
        let prepared = match created {
            Created::New => Prepared::New(PreparedRun {
                hub: EventHub::with_store(&run_id, 1, self.store.clone()),
                run_id,
                plan,
                input,
                prior: Vec::new(),
                owner: submission.owner,
                created_ms,
            }),
            Created::Existing(record) => Prepared::Existing(record),
            Created::TooManyRunning { running } => Prepared::TooManyRunning(running),
        };
        Ok((prepared, durable))
    }

    /// Preview `graph` on `input` for `owner` (validated and checked as a
    /// submission is): only nodes without effects or calls out run, reading
    /// the output cache but not filling it; nothing is stored. Stops when
    /// `cancel` fires.
    pub async fn preview(
        &self,
        graph: &Graph,
        origin: &str,
        input: Value,
        owner: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<RunResult, HostError> {
        let plan = self.checked_plan(graph, origin, &input, owner)?;
        let hub = EventHub::new(&format!("preview-{}", new_run_id()), 1);
        Ok(self
            .runner
            .preview(&plan, &input, &hub, cancel, owner)
            .await?)
    }

    /// Load an interrupted run from the store to continue it: completed nodes
    /// keep their outputs, interrupted ones run again.
    pub async fn prepare_resume(&self, run_id: &str) -> Result<PreparedRun, HostError> {
        let stored = self.store.load_run(run_id).await?;
        self.prepare_loaded(run_id, stored).await
    }

    /// [`Host::prepare_resume`] for several runs (those a host claimed),
    /// loaded in one round trip where the store can: each run's answer, in
    /// order.
    pub async fn prepare_resumes(&self, run_ids: &[String]) -> Vec<Result<PreparedRun, HostError>> {
        let loaded = self.store.load_runs(run_ids).await;
        let mut prepared = Vec::with_capacity(run_ids.len());
        for (run_id, stored) in run_ids.iter().zip(loaded) {
            prepared.push(match stored {
                Ok(stored) => self.prepare_loaded(run_id, stored).await,
                Err(e) => Err(e.into()),
            });
        }
        prepared
    }

    /// A loaded run, ready to continue.
    async fn prepare_loaded(
        &self,
        run_id: &str,
        stored: StoredRun,
    ) -> Result<PreparedRun, HostError> {
        if stored.run.status != RunStatus::Running {
            return Err(HostError::AlreadyFinished {
                run_id: run_id.to_string(),
                status: stored.run.status,
            });
        }
        let plan = match self.resume_plan(run_id, &stored.spec).await {
            Ok(plan) => plan,
            // It will not get better by trying again: the run ends here.
            Err(e @ (HostError::Unpinnable { .. } | HostError::Invalid(_))) => {
                self.fail_unresumable(run_id, &e.to_string()).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(PreparedRun {
            hub: EventHub::with_store(run_id, stored.next_seq, self.store.clone()),
            run_id: run_id.to_string(),
            plan,
            input: stored.spec.input,
            prior: stored.nodes,
            owner: stored.run.owner,
            created_ms: stored.run.created_ms,
        })
    }

    /// Execute a prepared run until it ends or `cancel` fires.
    pub async fn execute(
        &self,
        run: &PreparedRun,
        cancel: &CancellationToken,
    ) -> Result<RunResult, HostError> {
        let limits = run.plan.limits.within(self.runner.options().run_ceilings);
        let budget = (!limits.is_none()).then(|| {
            // Tasks it started before it was interrupted count too.
            let before = run.prior.iter().filter(|r| r.status.is_final()).count();
            let clock = self.clock.clone();
            crate::budget::Budget::new(limits, run.created_ms, before as u64, cancel, clock)
        });
        let stop = budget.as_ref().map_or(cancel, |b| b.stop());
        let owner = run.owner.as_deref();
        let (plan, input, prior, hub) = (&run.plan, &run.input, &run.prior, &run.hub);
        let result = self
            .runner
            .run(plan, input, prior, hub, stop, owner, budget.clone())
            .await;
        // The deadline's watch ends with the run.
        if let Some(b) = &budget {
            b.stop().cancel();
        }
        Ok(result?)
    }

    /// Whether `owner` is granted every folder, database and model the plan
    /// names (in a node's defaults or the run's input) and every queue a node
    /// chooses. Names that arrive through dataflows are checked as their
    /// task starts.
    fn check_grants(
        &self,
        plan: &Plan,
        input: &Value,
        owner: Option<&str>,
    ) -> Result<(), HostError> {
        let grants = self.runner.options().grants.of(owner);
        let empty = serde_json::Map::new();
        check_plan_grants(&grants, plan, input.as_object().unwrap_or(&empty), "")
    }

    /// The plan of a stored run, over the components it is pinned to.
    pub(crate) async fn resume_plan(
        &self,
        run_id: &str,
        spec: &RunSpec,
    ) -> Result<Plan, HostError> {
        let registry = crate::pinning::pinned_registry(
            self.registry(),
            &spec.components,
            self.store.as_ref(),
            &self.plugins,
        )
        .await
        .map_err(|source| HostError::Unpinnable {
            run_id: run_id.to_string(),
            source,
        })?;
        Ok(self.plan_in(&spec.graph, &spec.origin, &registry)?)
    }

    /// End `run_id`, which cannot go on (see [`HostError::Unpinnable`]; a
    /// resume that finds it so calls this itself):
    /// each of its nodes that had not ended fails with `why`, so the run is
    /// `failed` and its nodes are dead letters (re-driven once the plugin
    /// is back). Never left `running`, never claimed again.
    pub async fn fail_unresumable(&self, run_id: &str, why: &str) -> Result<(), HostError> {
        let stored = self.store.load_run(run_id).await?;
        if stored.run.status != RunStatus::Running {
            return Ok(());
        }
        let ended = |node: &str| {
            stored.nodes.iter().any(|n| {
                n.node == node
                    && matches!(
                        n.status,
                        NodeStatus::Completed
                            | NodeStatus::Failed
                            | NodeStatus::Skipped
                            | NodeStatus::Disabled
                            | NodeStatus::Cancelled
                    )
            })
        };
        let records: Vec<NodeRecord> = stored
            .spec
            .graph
            .tasks
            .iter()
            .filter(|t| !ended(&t.id))
            .map(|t| NodeRecord {
                node: t.id.clone(),
                status: NodeStatus::Failed,
                attempt: stored
                    .nodes
                    .iter()
                    .find(|n| n.node == t.id)
                    .map_or(0, |n| n.attempt),
                output: None,
                error: Some(why.to_string()),
                retry_at_ms: None,
                wait_until_ms: None,
            })
            .collect();
        let mut events: Vec<EventKind> = records
            .iter()
            .map(|r| EventKind::Node {
                node: r.node.clone(),
                status: NodeStatus::Failed,
                error: Some(why.to_string()),
                cached: false,
            })
            .collect();
        events.push(EventKind::RunFinished {
            status: RunStatus::Failed,
            reason: Some(why.to_string()),
        });
        EventHub::with_store(run_id, stored.next_seq, self.store.clone())
            .commit(records, Some(RunStatus::Failed), events)
            .await?;
        tracing::error!(run_id, %why, "run failed: it cannot go on");
        Ok(())
    }

    /// Ids of runs the store holds as still running: interrupted, when no
    /// other process is executing them.
    pub async fn interrupted_runs(&self) -> Result<Vec<String>, HostError> {
        Ok(self
            .store
            .runs_page(&status_filter(RunStatus::Running), None, usize::MAX)
            .await?
            .into_iter()
            .map(|r| r.run_id)
            .collect())
    }

    /// Every dead letter (failed node of a failed run), newest run first:
    /// [`Host::dead_letters_page`] page after page.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, HostError> {
        let filter = status_filter(RunStatus::Failed);
        let mut letters = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self
                .dead_letters_page(&filter, after.as_deref(), 100)
                .await?;
            letters.extend(page);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(letters),
            }
        }
    }

    /// The dead letters of up to `limit` failed runs matching `filter` (its
    /// status is taken as failed), newest first, after run `after`; and the
    /// run to pass as `after` for the next page, if there may be one. Reads
    /// only those runs and their events.
    pub async fn dead_letters_page(
        &self,
        filter: &crate::store::RunFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, Option<String>), HostError> {
        let filter = crate::store::RunFilter {
            status: Some(RunStatus::Failed),
            ..filter.clone()
        };
        let runs = self.store.runs_page(&filter, after, limit).await?;
        let next = (runs.len() == limit)
            .then(|| runs.last().map(|r| r.run_id.clone()))
            .flatten();
        let mut letters = Vec::new();
        for run in runs {
            letters.extend(self.letters_of(&run).await?);
        }
        Ok((letters, next))
    }

    /// The failed nodes of failed run `run`, with their errors.
    async fn letters_of(&self, run: &RunRecord) -> Result<Vec<DeadLetter>, HostError> {
        let mut letters = Vec::new();
        let stored = self.store.load_run(&run.run_id).await?;
        let failed: Vec<&NodeRecord> = stored
            .nodes
            .iter()
            // A failure that went to an error port (its output holds the
            // error) was handled: not a dead letter.
            .filter(|n| n.status == NodeStatus::Failed && n.output.is_none())
            .collect();
        if failed.is_empty() {
            return Ok(letters);
        }
        let events = self.store.events(&run.run_id, 0).await?;
        for node in failed {
            let task_type = stored
                .spec
                .graph
                .tasks
                .iter()
                .find(|t| t.id == node.node)
                .map(|t| t.task_type.clone())
                .unwrap_or_default();
            let errors = events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::Node {
                        node: n,
                        error: Some(err),
                        status,
                        ..
                    } if *n == node.node
                        && matches!(status, NodeStatus::Retrying | NodeStatus::Failed) =>
                    {
                        Some(err.clone())
                    }
                    _ => None,
                })
                .collect();
            letters.push(DeadLetter {
                run_id: run.run_id.clone(),
                node: node.node.clone(),
                task_type,
                attempts: node.attempt,
                errors,
                failed_ms: run.updated_ms,
            });
        }
        Ok(letters)
    }

    /// Re-drive a dead letter: node `node` of failed run `run_id` gets a fresh
    /// retry budget, the nodes it blocked become pending again, and the run is
    /// ready to execute (as a resumed run; completed nodes keep their outputs).
    pub async fn redrive(&self, run_id: &str, node: &str) -> Result<PreparedRun, HostError> {
        let stored = self.store.load_run(run_id).await?;
        let not_dead = || HostError::NotDeadLetter {
            run_id: run_id.to_string(),
            node: node.to_string(),
        };
        if stored.run.status != RunStatus::Failed {
            return Err(not_dead());
        }
        let plan = self.plan(&stored.spec.graph, &stored.spec.origin)?;
        let status: std::collections::HashMap<&str, &NodeRecord> =
            stored.nodes.iter().map(|n| (n.node.as_str(), n)).collect();
        if status.get(node).map(|n| n.status) != Some(NodeStatus::Failed) {
            return Err(not_dead());
        }
        // The node, and everything downstream of it that was skipped because of it.
        let index: std::collections::HashMap<&str, usize> = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut reset = vec![index[node]];
        let mut seen = std::collections::HashSet::from([index[node]]);
        let mut next = 0;
        while next < reset.len() {
            for &e in &plan.outgoing[reset[next]] {
                let t = plan.edges[e].target;
                let skipped = status.get(plan.nodes[t].id.as_str()).map(|n| n.status)
                    == Some(NodeStatus::Skipped);
                if skipped && seen.insert(t) {
                    reset.push(t);
                }
            }
            next += 1;
        }
        let records = reset
            .iter()
            .map(|&i| NodeRecord {
                node: plan.nodes[i].id.clone(),
                status: NodeStatus::Pending,
                attempt: 0,
                output: None,
                error: None,
                retry_at_ms: None,
                wait_until_ms: None,
            })
            .collect::<Vec<_>>();
        let events = records
            .iter()
            .map(|r| EventKind::Node {
                node: r.node.clone(),
                status: NodeStatus::Pending,
                error: None,
                cached: false,
            })
            .collect();
        EventHub::with_store(run_id, stored.next_seq, self.store.clone())
            .commit(records, Some(RunStatus::Running), events)
            .await?;
        self.prepare_resume(run_id).await
    }

    /// Validate and run `graph` on `input` as a new run.
    pub async fn run(&self, graph: &Graph, input: Value) -> Result<RunResult, HostError> {
        let run = self.prepare(graph, "<graph>", input).await?;
        self.execute(&run, &CancellationToken::new()).await
    }
}

/// A new, time-ordered run id.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Every run in state `status`.
fn status_filter(status: RunStatus) -> crate::store::RunFilter {
    crate::store::RunFilter {
        status: Some(status),
        ..crate::store::RunFilter::default()
    }
}

/// [`Host::check_grants`] for `plan` on `input`, and for the subgraphs its
/// nodes run (on their defaults: what reaches them is checked as their
/// tasks start); `within`: the id path of the node holding `plan`.
fn check_plan_grants(
    grants: &weft_core::grant::Grants,
    plan: &Plan,
    input: &serde_json::Map<String, Value>,
    within: &str,
) -> Result<(), HostError> {
    let roots: std::collections::HashSet<usize> = plan.roots().collect();
    for (i, node) in plan.nodes.iter().enumerate() {
        let id = format!("{within}{}", node.id);
        let refused = |source| HostError::NotGranted {
            node: id.clone(),
            source,
        };
        if let Some(queue) = &node.queue {
            grants.check(Resource::Queue, queue).map_err(refused)?;
        }
        for inner in node.kind.subgraphs() {
            check_plan_grants(grants, inner, &serde_json::Map::new(), &format!("{id}/"))?;
        }
        if node.task.resources.is_empty() {
            continue;
        }
        let mut values = node.defaults.clone();
        if roots.contains(&i) {
            values.extend(plan.root_input(i, input));
        }
        grants
            .check_ports(&node.task.resources, &values)
            .map_err(refused)?;
    }
    Ok(())
}
