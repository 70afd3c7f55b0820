//! The daemon: Weft as a long-lived HTTP service (`weft serve`).
//!
//! Owns the HTTP API under `/v1` (`api`), authentication and submission
//! quotas (`auth`), the runs this process executes (`runs`), event streams
//! (`sse`), metrics (`metrics`), plugins-folder watching (`reload`),
//! webhooks (`hooks`), schedules (`schedules`), what graph editors ask
//! (`editing`) and the web console's files (`console`). It
//! keeps nothing that must survive: runs, events and saved graphs are in the
//! host's store, so a restart (or a crash) loses nothing, and interrupted
//! runs resume when the daemon starts. It must not know how tasks execute.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use weft::Host;
//! use weft_daemon::{Daemon, DaemonOptions};
//! let host = Arc::new(Host::builder().build().await?);
//! let daemon = Daemon::bind(host, DaemonOptions::default()).await?;
//! println!("listening on http://{}", daemon.local_addr());
//! daemon.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod console;
mod cross_site;
mod editing;
mod error;
mod graphs;
mod hooks;
mod metrics;
mod reload;
mod runs;
mod schedules;
mod secrets;
mod serve;
mod signals;
mod sse;
mod storage;
pub mod types;

pub use hooks::Hook;

pub use api::openapi;
pub use serve::ConnectionLimits;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use weft::Host;
use weft::cluster::leases::RunLeases;
use weft::config::QuotaConfig;

/// How the daemon listens and whom it serves.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Address and port (port 0: any free port, see [`Daemon::local_addr`]).
    pub listen: SocketAddr,
    /// (token, user) pairs. Empty: only loopback clients, as user `local`.
    pub tokens: Vec<(String, String)>,
    /// The users who may act on the daemon itself (write a backup now).
    /// With no tokens, the loopback user `local` is the operator.
    pub operators: Vec<String>,
    /// Submission limits.
    pub quotas: QuotaConfig,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// On shutdown, how long running tasks may take to finish.
    pub shutdown_grace: Duration,
    /// This host's id in run leases (default: `local` for a store only this
    /// process uses, else a new id per start).
    pub host_id: String,
    /// How long a run's lease lasts without a heartbeat: after a host dies,
    /// others take its runs over after this long.
    pub lease: Duration,
    /// The most runs executing in this process at once.
    pub max_runs: usize,
    /// Host names (besides IP addresses and `localhost`) that requests may
    /// be addressed to.
    pub allowed_hosts: Vec<String>,
    /// Origins of web pages that may call the API (CORS); the daemon's own
    /// origin always may.
    pub allowed_origins: Vec<String>,
    /// Connections open at once, and how long a request's headers may take.
    pub connections: ConnectionLimits,
    /// Event streams (SSE) one user may have open at once.
    pub max_streams_per_user: usize,
    /// How long ended runs are kept; the daemon prunes the rest.
    pub retention: weft::retention::RetentionConfig,
    /// Periodic copies of the embedded store, if asked for.
    pub backups: Option<Backups>,
    /// Webhooks that start saved graphs, by name.
    pub hooks: std::collections::BTreeMap<String, Hook>,
    /// How often due schedules are looked for (their occurrences fall on
    /// whole seconds).
    pub schedule_tick: Duration,
}

/// Where and how often the daemon copies its embedded store.
#[derive(Clone)]
pub struct Backups {
    /// The store.
    pub store: Arc<weft::store::RedbStore>,
    /// The folder backups are written to (`weft-TIME.redb`).
    pub dir: std::path::PathBuf,
    /// Time between backups; none: only when an operator asks
    /// (`POST /v1/store/backups`).
    pub every: Option<Duration>,
    /// Backups kept; older ones are deleted.
    pub keep: usize,
}

impl Backups {
    /// Write one backup now (runs go on meanwhile), then delete the oldest
    /// beyond `keep`; returns its path and size.
    pub async fn write_one(&self) -> Result<(std::path::PathBuf, u64), weft::store::StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            weft::store::StoreError::context(format!("cannot create {}", self.dir.display()), e)
        })?;
        let path = self.dir.join(format!("weft-{}.redb", weft::new_run_id()));
        self.store.backup_to(&path).await?;
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut old: Vec<std::path::PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
                n.is_some_and(|n| n.starts_with("weft-") && n.ends_with(".redb"))
            })
            .collect();
        old.sort();
        let excess = old.len().saturating_sub(self.keep.max(1));
        for stale in old.into_iter().take(excess) {
            let _ = std::fs::remove_file(stale);
        }
        Ok((path, bytes))
    }
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups")
            .field("dir", &self.dir)
            .field("every", &self.every)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Default for DaemonOptions {
    fn default() -> Self {
        let server = weft::config::ServerConfig::default();
        DaemonOptions {
            listen: server.listen,
            tokens: Vec::new(),
            operators: Vec::new(),
            quotas: QuotaConfig::default(),
            max_body_bytes: server.max_body_bytes,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_s),
            host_id: "local".into(),
            lease: Duration::from_millis(server.lease_ms),
            max_runs: server.max_runs,
            allowed_hosts: server.allowed_hosts,
            allowed_origins: server.allowed_origins,
            connections: ConnectionLimits {
                max_connections: server.max_connections,
                header_timeout: Duration::from_millis(server.header_timeout_ms),
            },
            max_streams_per_user: server.max_streams_per_user,
            retention: weft::retention::RetentionConfig::default(),
            backups: None,
            hooks: Default::default(),
            schedule_tick: Duration::from_secs(1),
        }
    }
}

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plugins folder cannot be watched.
    #[error("cannot watch the plugins folder: {0}")]
    Watch(#[from] notify::Error),
}

/// How a daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Runs still executing when the grace period ended; they resume at the
    /// next start.
    pub left_running: usize,
}

/// State shared by every request.
#[derive(Clone)]
struct AppState(Arc<Shared>);

struct Shared {
    host: Arc<Host>,
    runs: runs::Runs,
    auth: auth::Auth,
    quotas: auth::Quotas,
    metrics: metrics::Metrics,
    /// Event streams open per user.
    streams: Arc<sse::OpenStreams>,
    /// Fires at shutdown: ends event streams so connections can close.
    shutdown: CancellationToken,
    /// Set once interrupted runs were resumed and the folder is watched.
    ready: AtomicBool,
    /// Copies of the embedded store (none on PostgreSQL).
    backups: Option<Backups>,
    /// Webhooks, by name.
    hooks: std::collections::BTreeMap<String, Hook>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// A daemon bound to its address, not yet serving.
pub struct Daemon {
    listener: tokio::net::TcpListener,
    state: AppState,
    options: DaemonOptions,
}

fn state(host: Arc<Host>, options: &DaemonOptions) -> AppState {
    let metrics = metrics::Metrics::new();
    let leases = RunLeases::new(
        host.store().clone(),
        host.clock().clone(),
        &options.host_id,
        options.lease,
    );
    let max_runs = options.max_runs.max(1);
    AppState(Arc::new(Shared {
        runs: runs::Runs::new(host.clone(), metrics.clone(), leases, max_runs),
        auth: auth::Auth::new(&options.tokens, &options.operators),
        quotas: auth::Quotas::new(
            options.quotas.clone(),
            host.store().clone(),
            host.clock().clone(),
        ),
        metrics,
        host,
        streams: Arc::new(sse::OpenStreams::new(options.max_streams_per_user)),
        shutdown: CancellationToken::new(),
        ready: AtomicBool::new(false),
        backups: options.backups.clone(),
        hooks: options.hooks.clone(),
    }))
}

/// Until shutdown: claim runs and keep their leases, and execute tasks other
/// hosts offer (with a shared store).
fn share(state: &AppState, options: &DaemonOptions) -> tokio::task::JoinHandle<()> {
    let runs = state.runs.clone();
    let stop = state.shutdown.clone();
    let tasks = state
        .host
        .clone()
        .serve_tasks(stop.clone(), options.shutdown_grace);
    tokio::spawn(async move {
        tokio::join!(runs.share(stop), tasks);
    })
}

/// Until shutdown: delete ended runs past their retention, components no
/// run needs and expired storage keys, a bounded pass every `every_s`
/// seconds (every host sharing a store may: deleting twice is harmless).
fn prune(
    state: &AppState,
    retention: weft::retention::RetentionConfig,
) -> tokio::task::JoinHandle<()> {
    let store = state.host.store().clone();
    let clock = state.host.clock().clone();
    let stop = state.shutdown.clone();
    let host = state.host.clone();
    tokio::spawn(async move {
        let mut pruner = weft::retention::Pruner::default();
        let mut components = weft::pinning::ComponentPruner::default();
        let every = Duration::from_secs(retention.every_s.max(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let now = clock.now_ms();
            let pass = pruner
                .pass(
                    store.as_ref(),
                    retention.per_pass.max(1),
                    now,
                    retention.horizon(now),
                    |run, now| retention.expired(run, now),
                )
                .await;
            match pass {
                Ok(p) if p.deleted > 0 => {
                    tracing::info!(
                        deleted = p.deleted,
                        scanned = p.scanned,
                        "pruned ended runs"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune runs"),
            }
            match components.pass(store.as_ref(), &host.registry()).await {
                Ok(gone) if !gone.is_empty() => {
                    for digest in &gone {
                        host.plugin_host().engine().forget_compiled(digest);
                    }
                    tracing::info!(deleted = gone.len(), "pruned components no run needs")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune components"),
            }
            // Plugins' expired keys, a bounded number a pass.
            match store.kv_sweep(now, retention.per_pass.max(1)).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "swept expired storage keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot sweep expired storage keys"),
            }
        }
    })
}

/// Until shutdown: fire due schedules every `tick`.
fn fire_schedules(state: &AppState, tick: Duration) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let stop = state.shutdown.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            schedules::fire_due(&state).await;
        }
    })
}

/// Until shutdown: a backup of the embedded store every `every`, the
/// newest `keep` kept.
fn back_up(state: &AppState) -> tokio::task::JoinHandle<()> {
    let stop = state.shutdown.clone();
    let backups = state.backups.clone();
    tokio::spawn(async move {
        let Some(b) = backups else { return };
        // A backup cut short when the process last stopped.
        for entry in std::fs::read_dir(&b.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("weft-") && name.contains(".partial-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let Some(every) = b.every else { return };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match b.write_one().await {
                Ok((path, _)) => tracing::info!(backup = %path.display(), "store backed up"),
                Err(e) => tracing::error!(error = %e, "cannot back up the store"),
            }
        }
    })
}

/// Execute runs from the store without serving HTTP (`weft serve --role
/// worker`): claim runs no live host holds, keep their leases, and on
/// `shutdown` let them finish within the grace period.
pub async fn run_worker(
    host: Arc<Host>,
    options: DaemonOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Stopped, DaemonError> {
    let state = state(host, &options);
    state.runs.resume_own().await;
    reload::watch(state.host.clone(), state.shutdown.clone())?;
    let sharing = share(&state, &options);
    let pruning = prune(&state, options.retention.clone());
    let backing_up = back_up(&state);
    let scheduling = fire_schedules(&state, options.schedule_tick);
    shutdown.await;
    tracing::info!("shutting down: no new runs");
    state.shutdown.cancel();
    let _ = sharing.await;
    let _ = pruning.await;
    let _ = backing_up.await;
    let _ = scheduling.await;
    let left_running = state.runs.drain(options.shutdown_grace).await;
    Ok(Stopped { left_running })
}

impl Daemon {
    /// Listen on `options.listen` for `host`.
    pub async fn bind(host: Arc<Host>, options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: options.listen,
                source,
            })?;
        let state = state(host, &options);
        Ok(Daemon {
            listener,
            state,
            options,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.options.listen)
    }

    /// True when no tokens are configured (only loopback clients are served).
    pub fn loopback_only(&self) -> bool {
        !self.state.auth.has_tokens()
    }

    /// Resume interrupted runs, watch the plugins folder and serve until
    /// `shutdown` completes; then stop accepting requests, let running runs
    /// finish within the grace period, and return. Runs still executing then
    /// are left as they are in the store and resume at the next start.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Stopped, DaemonError> {
        let Daemon {
            listener,
            state,
            options,
        } = self;
        state.runs.resume_own().await;
        reload::watch(state.host.clone(), state.shutdown.clone())?;
        let sharing = share(&state, &options);
        let pruning = prune(&state, options.retention.clone());
        let backing_up = back_up(&state);
        let scheduling = fire_schedules(&state, options.schedule_tick);
        state.ready.store(true, Ordering::Release);
        let cross_site =
            cross_site::CrossSite::new(&options.allowed_hosts, &options.allowed_origins);
        let app = api::router(state.clone(), options.max_body_bytes, cross_site);
        let stop = state.shutdown.clone();
        serve::serve(listener, app, options.connections, async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests");
            stop.cancel();
        })
        .await;
        let _ = sharing.await;
        let _ = pruning.await;
        let _ = backing_up.await;
        let _ = scheduling.await;
        let running = state.runs.len();
        if running > 0 {
            tracing::info!(
                running,
                grace_s = options.shutdown_grace.as_secs(),
                "waiting for running runs"
            );
        }
        let left_running = state.runs.drain(options.shutdown_grace).await;
        Ok(Stopped { left_running })
    }
}
