//! `weft serve`: configuration precedence (flag or environment, then
//! `weft.toml`, then defaults), the host, and signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use weft::setup::{Overrides, Setup};
use weft_daemon::{Daemon, DaemonOptions};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:7878, or `[server] listen`].
    #[arg(long, env = "WEFT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./.weft, or `[server] data_dir`].
    #[arg(long, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Plugins folder, watched for changes [default: ./plugins, or `[server] plugins`].
    #[arg(long, env = "WEFT_PLUGINS_DIR")]
    plugins: Option<PathBuf>,
    /// Configuration file [default: ./weft.toml when it exists].
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// Keep runs in this PostgreSQL database (`postgres://…`), shared with
    /// other hosts [default: `store` in the configuration, else the redb file].
    #[arg(long, env = "WEFT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// `api`: serve the HTTP API and execute runs; `worker`: only execute runs.
    #[arg(long, value_enum, default_value = "api")]
    role: Role,
}

/// What a `weft serve` process does.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The HTTP API, and executing runs.
    Api,
    /// Executing runs only (scale execution out separately).
    Worker,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (config, config_path) = super::load_config(args.config.as_deref())?;
    let tokens = match &config_path {
        Some(path) => config.resolve_tokens(path)?,
        None => Vec::new(),
    };
    let hooks = match &config_path {
        Some(path) => hooks(&config, path)?,
        None => Default::default(),
    };
    // The daemon watches its plugins folder, so it always has one.
    let plugins = args
        .plugins
        .clone()
        .unwrap_or_else(|| config.server.plugins.clone());
    std::fs::create_dir_all(&plugins)
        .with_context(|| format!("cannot create plugins folder {}", plugins.display()))?;
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        ephemeral: false,
        plugins: Some(plugins.clone()),
        models_dir: super::models_dir_override(),
    };
    let setup = Setup::new(config, overrides);
    let server = &setup.config().server;
    let location = setup.store_location()?;
    // Backups need the embedded store itself (PostgreSQL has its own tools):
    // every `[backup] every_s` with a `dir`, else only when an operator asks.
    let (store, backups) = match &location {
        weft::setup::StoreLocation::Redb(path) => {
            let cache = setup.config().store_cache_bytes();
            let redb = Arc::new(weft::store::RedbStore::open_with_cache(path, cache)?);
            let backup = &setup.config().backup;
            let dir = backup.dir.clone().unwrap_or_else(|| "backups".into());
            let backups = weft_daemon::Backups {
                store: redb.clone(),
                dir: setup.data_dir().join(dir),
                every: backup
                    .dir
                    .is_some()
                    .then(|| Duration::from_secs(backup.every_s.max(1))),
                keep: backup.keep,
            };
            (redb as Arc<dyn weft::store::RunStore>, Some(backups))
        }
        _ => (setup.open_store().await?, None),
    };
    let where_ = location.to_string();
    // With a shared store every process needs its own lease identity; the
    // embedded store is only ever used by this one.
    let host_id = if location.is_shared() {
        format!("{}-{}", hostname(), weft::new_run_id())
    } else {
        "local".to_string()
    };
    let mut builder = setup.host_builder(store)?;
    if location.is_shared() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = server.task_slots.unwrap_or(cores * 8);
        builder = builder.share_tasks(&host_id, slots, Duration::from_millis(server.lease_ms));
    }
    let host = Arc::new(builder.build().await?);
    let options = DaemonOptions {
        listen: args.listen.unwrap_or(server.listen),
        tokens,
        operators: setup.config().operators(),
        hooks,
        quotas: setup.config().quotas.clone(),
        retention: setup.config().retention.clone(),
        backups,
        max_body_bytes: server.max_body_bytes,
        shutdown_grace: Duration::from_secs(server.shutdown_grace_s),
        host_id: host_id.clone(),
        lease: Duration::from_millis(server.lease_ms),
        max_runs: server.max_runs,
        allowed_hosts: server.allowed_hosts.clone(),
        allowed_origins: server.allowed_origins.clone(),
        connections: weft_daemon::ConnectionLimits {
            max_connections: server.max_connections,
            header_timeout: Duration::from_millis(server.header_timeout_ms),
        },
        max_streams_per_user: server.max_streams_per_user,
        ..DaemonOptions::default()
    };
    if args.role == Role::Worker {
        println!(
            "weft worker {host_id} executing runs from {where_} (plugins {}, {} task types)",
            plugins.display(),
            host.registry().task_types().count()
        );
        let stopped = weft_daemon::run_worker(host, options, shutdown_signal()).await?;
        println!("stopped; {} runs left to other hosts", stopped.left_running);
        return Ok(ExitCode::SUCCESS);
    }
    let daemon = Daemon::bind(host.clone(), options).await?;
    let addr = daemon.local_addr();
    let failed = host.plugins().iter().filter(|p| p.error.is_some()).count();
    println!(
        "weft daemon listening on http://{addr} (store {where_}, plugins {}, {} task types{})",
        plugins.display(),
        host.registry().task_types().count(),
        if failed > 0 {
            format!(", {failed} plugins failed to load: see /v1/plugins")
        } else {
            String::new()
        }
    );
    if daemon.loopback_only() {
        println!("no tokens configured: only loopback clients are served, as user `local`");
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback without tokens: remote clients get 403");
        }
    }
    let stopped = daemon.run(shutdown_signal()).await?;
    if stopped.left_running > 0 {
        println!(
            "stopped; {} runs were still running and resume at the next start",
            stopped.left_running
        );
    } else {
        println!("stopped");
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// The configured webhooks, their secrets read.
fn hooks(
    config: &weft::config::Config,
    path: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeMap<String, weft_daemon::Hook>> {
    let mut secrets = config.resolve_hook_secrets(path)?;
    Ok(config
        .hooks
        .iter()
        .map(|(name, hook)| {
            let hook = weft_daemon::Hook {
                graph: hook.graph.clone(),
                user: hook.user.clone(),
                secret: secrets.remove(name).unwrap_or_default(),
                max_body_bytes: hook.max_body_bytes,
                rate: hook.rate,
            };
            (name.clone(), hook)
        })
        .collect())
}
