//! The `weft` command line: subcommands, each reading its arguments, calling
//! the runtime (`weft`) or the daemon (`weft-daemon`) and printing. None holds
//! logic the daemon or an embedder would need. Errors become `anyhow` here, at
//! the binary's edge.

mod client;
mod doctor;
mod models;
mod npm;
mod progress;
mod project;
mod schedules;
mod secrets;
mod serve;
mod storage;
mod store;
mod toolchain;
mod wheels;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use weft::cache::CachePolicy;
use weft::events::{EventKind, RunStatus};
use weft::graph::Graph;
use weft::setup::{Overrides, Setup};
use weft::store::RunStore;
use weft::task::TaskType;
use weft::{Host, PreparedRun};

/// `weft --version`: this build, and the plugin contract it speaks.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (plugins: WIT {})",
        env!("CARGO_PKG_VERSION"),
        weft::plugin::WIT_PACKAGE
    )
});

/// Weft: run pipelines of sandboxed WebAssembly tasks.
#[derive(Parser, Debug)]
#[command(name = "weft", version = VERSION.as_str(), about, long_about = None)]
pub struct Cli {
    /// More log output (-v: info, -vv: debug). `WEFT_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr: `text`, or `json` (one object per line, for log
    /// collectors).
    #[arg(long, global = true, env = "WEFT_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every task type the host knows, with its schemas.
    Tasks {
        #[command(flatten)]
        host: HostArgs,
        /// List this daemon's task types instead (with your saved graphs,
        /// as `graph:NAME` node types).
        #[arg(long, env = "WEFT_SERVER")]
        server: Option<String>,
        /// Bearer token for the daemon.
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print JSON (one array of task types).
        #[arg(long)]
        json: bool,
    },
    /// List the plugins found, with their task types or load errors.
    Plugins {
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Work on graph files: write them in another shape, canonicalise them.
    Graph {
        #[command(subcommand)]
        action: GraphAction,
    },
    /// Check a graph without running it.
    Validate {
        /// The graph file (JSON).
        graph: PathBuf,
        #[command(flatten)]
        host: HostArgs,
        /// Also check this run input (JSON, or @FILE).
        #[arg(long)]
        input: Option<String>,
    },
    /// Run a graph and print its result.
    Run {
        /// The graph file (JSON).
        graph: PathBuf,
        #[command(flatten)]
        host: HostArgs,
        /// The run's input: a JSON object given to the root nodes (or @FILE).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Print one JSON object: status, outputs, stats.
        #[arg(long)]
        json: bool,
        /// Output every node's output, not only the leaves'.
        #[arg(long)]
        all_outputs: bool,
        /// The most tasks running at once (default: 8 per core).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Keep the run in memory only (no resume after a crash).
        #[arg(long)]
        ephemeral: bool,
        /// Run every node; do not use or fill the output cache.
        #[arg(long)]
        no_cache: bool,
        /// Cached outputs older than this many seconds are not used.
        #[arg(long)]
        cache_max_age_s: Option<u64>,
        /// Keep at most this many cached outputs per task type (default 10000).
        #[arg(long)]
        cache_keep_last: Option<usize>,
        /// Run only the nodes without effects or calls to models or the
        /// network (reading, not filling, the output cache); show the input
        /// the others would get. Nothing is stored.
        #[arg(long)]
        preview: bool,
    },
    /// Failed nodes of failed runs, with the error of each attempt; re-drive one.
    #[command(name = "dead-letters")]
    DeadLetters {
        #[command(subcommand)]
        action: Option<DeadLetterAction>,
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Compact, back up or restore the embedded store.
    Store {
        #[command(subcommand)]
        action: store::StoreAction,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Inspect or empty the output cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        #[command(flatten)]
        host: HostArgs,
    },
    /// The key-value storage plugins keep, in this store (operators;
    /// docs/storage.md).
    Storage {
        #[command(subcommand)]
        action: storage::StorageAction,
        #[command(flatten)]
        host: HostArgs,
        /// Whose storage (a user; default: runs without an owner).
        #[arg(long, global = true, default_value = "")]
        user: String,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// List the runs in the data directory, newest first.
    Runs {
        #[command(subcommand)]
        action: Option<RunsAction>,
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Continue interrupted runs: completed nodes keep their outputs, the
    /// interrupted ones run again.
    Resume {
        /// The run to continue.
        #[arg(required_unless_present = "all")]
        run_id: Option<String>,
        /// Continue every interrupted run.
        #[arg(long, conflicts_with = "run_id")]
        all: bool,
        #[command(flatten)]
        host: HostArgs,
        /// Print one JSON object per run (as `weft run --json`).
        #[arg(long)]
        json: bool,
    },
    /// Show a run: its state and every node's state, attempt and output
    /// (from a daemon with `--server`).
    Status {
        /// The run.
        run_id: String,
        /// Print the input this node started with, instead.
        #[arg(long, value_name = "NODE")]
        input: Option<String>,
        #[command(flatten)]
        host: HostArgs,
        /// Ask this daemon instead of reading the data directory.
        #[arg(long, env = "WEFT_SERVER")]
        server: Option<String>,
        /// Bearer token for the daemon.
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: the HTTP API, with hot-reloaded plugins
    /// (docs/daemon.md).
    Serve(serve::ServeArgs),
    /// Submit a run to a daemon; prints its id.
    Submit(client::SubmitArgs),
    /// Follow a run on a daemon: print its events until it ends.
    Watch {
        /// The run.
        run_id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// The models served to plugins: list, check, try, download.
    Models {
        #[command(subcommand)]
        action: Option<models::ModelsAction>,
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Create a plugin project (Rust, Python or JavaScript) with an example task.
    New {
        /// The plugin's name (a-z, 0-9, `-`).
        name: String,
        /// Its language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: project::Lang,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the plugin project in DIR (default: here) into DIR/dist/NAME.wasm.
    Build {
        /// The project.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The WIT world it implements: `plugin` (tasks) or
        /// `provider-plugin` (a model backend). Rust projects name theirs
        /// in their own bindings.
        #[arg(long, default_value = "plugin")]
        world: project::World,
    },
    /// The guest toolchains `weft build` uses for Python and JavaScript
    /// plugins: list, install, remove (in the cache folder).
    Toolchain {
        #[command(subcommand)]
        action: Option<toolchain::ToolchainAction>,
    },
    /// Check what this machine has for each feature, with the fix for what
    /// is missing.
    Doctor {
        #[command(flatten)]
        host: HostArgs,
        /// Print JSON (one array of checks).
        #[arg(long)]
        json: bool,
    },
    /// Print the daemon's OpenAPI document (what `weft serve` answers at
    /// `/v1/openapi.json`), to generate clients from.
    Openapi,
    /// Print the completion script for a shell (`weft completions bash >
    /// ~/.local/share/bash-completion/completions/weft`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one per command into a folder.
    Man {
        /// Write `weft.1` and `weft-COMMAND.1` pages into this folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A daemon's schedules: saved graphs started on a cron pattern or an
    /// interval (docs/schedules.md).
    Schedules {
        #[command(subcommand)]
        action: Option<schedules::SchedulesAction>,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Your secrets on a daemon, for the plugins you name to read through
    /// their configuration (docs/secrets.md).
    Secrets {
        #[command(subcommand)]
        action: Option<secrets::SecretsAction>,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Send a signal to a run on a daemon: its wait nodes for it go on
    /// with BODY as their output (docs/signals.md).
    Signal {
        /// The run.
        run_id: String,
        /// The signal's name (a wait node's `signal`, by default its id);
        /// for a wait inside a loop's step or a map's element, at its use:
        /// `chat[3]/reply` (plain `reply` when only one such wait waits).
        name: String,
        /// The body: JSON, or @FILE (default: {}).
        #[arg(default_value = "{}")]
        body: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Cancel a run on a daemon.
    Cancel {
        /// The run.
        run_id: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Print a run's event log.
    Events {
        /// The run.
        run_id: String,
        #[command(flatten)]
        host: HostArgs,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum RunsAction {
    /// Delete ended runs past their retention (`[retention]` in weft.toml,
    /// docs/operations.md), or as the flags say, with everything of them.
    Prune {
        /// Delete ended runs that ended longer ago than this (`30d`, `12h`,
        /// `90m`), instead of the configured retention.
        #[arg(long, value_parser = parse_age)]
        older_than: Option<weft::retention::Age>,
        /// Only runs in this state (`succeeded`, `failed`, `cancelled`).
        #[arg(long, value_parser = parse_ended)]
        status: Option<RunStatus>,
    },
}

fn parse_age(text: &str) -> Result<weft::retention::Age, String> {
    weft::retention::Age::parse(text)
}

fn parse_ended(text: &str) -> Result<RunStatus, String> {
    match text {
        "succeeded" => Ok(RunStatus::Succeeded),
        "failed" => Ok(RunStatus::Failed),
        "cancelled" => Ok(RunStatus::Cancelled),
        _ => Err(format!("`{text}`: one of succeeded, failed, cancelled")),
    }
}

#[derive(Subcommand, Debug)]
enum DeadLetterAction {
    /// Run a failed node again with a fresh retry budget (and the nodes it
    /// blocked), continuing its run.
    Retry {
        /// The run.
        run_id: String,
        /// The failed node.
        node: String,
    },
}

#[derive(Subcommand, Debug)]
enum CacheAction {
    /// Entries and bytes per task type.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached outputs (of one task type with `--type`).
    Clear {
        /// Only this task type.
        #[arg(long = "type")]
        task_type: Option<String>,
    },
}

/// Where a command finds its configuration, plugins and runs: flags and
/// environment on top of `weft.toml` (see [`weft::setup`], shared with
/// `weft serve`, so every command reads the store the daemon writes).
#[derive(Args, Debug)]
pub struct HostArgs {
    /// Folder of plugin components (`*.wasm`, each with an optional `.toml`
    /// manifest). Default: `[server] plugins` (`./plugins`) when it exists.
    #[arg(long, global = true, env = "WEFT_PLUGINS_DIR")]
    plugins: Option<PathBuf>,
    /// Configuration file (store, queues, models; see docs/configuration.md).
    /// Default: `./weft.toml` when it exists.
    #[arg(long, global = true, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// Where runs are kept (a redb file inside). Default: `[server] data_dir`
    /// (`./.weft`).
    #[arg(long, global = true, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep runs in this PostgreSQL database (`postgres://…`). Default:
    /// `store` in the configuration.
    #[arg(long, global = true, env = "WEFT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The configuration file given, else `./weft.toml` when it exists.
fn load_config(path: Option<&Path>) -> anyhow::Result<(weft::config::Config, Option<PathBuf>)> {
    let path = path.map(Path::to_path_buf).or_else(|| {
        let default = PathBuf::from("weft.toml");
        default.is_file().then_some(default)
    });
    let config = match &path {
        Some(path) => weft::config::Config::load(path)?,
        None => weft::config::Config::default(),
    };
    Ok((config, path))
}

/// `$WEFT_MODELS_DIR`, when set: where models' files live (else `models` in
/// the data directory).
fn models_dir_override() -> Option<PathBuf> {
    std::env::var_os("WEFT_MODELS_DIR").map(PathBuf::from)
}

impl HostArgs {
    /// The configuration with these flags on top (`ephemeral`: runs in memory).
    fn setup(&self, ephemeral: bool) -> anyhow::Result<Setup> {
        let (config, _) = load_config(self.config.as_deref())?;
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ephemeral,
            plugins: self.plugins.clone(),
            models_dir: models_dir_override(),
        };
        Ok(Setup::new(config, overrides))
    }

    /// The store runs are kept in.
    async fn store(&self) -> anyhow::Result<Arc<dyn RunStore>> {
        Ok(self.setup(false)?.open_store().await?)
    }

    /// A host on an in-memory store (for commands that run nothing durable).
    async fn host(&self, parallelism: Option<usize>) -> anyhow::Result<Host> {
        let store: Arc<dyn RunStore> = Arc::new(weft::store::MemoryStore::new());
        build_host(&self.setup(false)?, store, parallelism, None).await
    }

    /// A host on the configured store (in memory with `ephemeral`): the
    /// configuration is read once for both.
    async fn host_with(
        &self,
        ephemeral: bool,
        parallelism: Option<usize>,
        cache: Option<CachePolicy>,
    ) -> anyhow::Result<Host> {
        let setup = self.setup(ephemeral)?;
        let store = setup.open_store().await?;
        build_host(&setup, store, parallelism, cache).await
    }
}

async fn build_host(
    setup: &Setup,
    store: Arc<dyn RunStore>,
    parallelism: Option<usize>,
    cache: Option<CachePolicy>,
) -> anyhow::Result<Host> {
    let mut builder = setup.host_builder(store)?;
    if let Some(policy) = cache {
        builder = builder.cache(policy);
    }
    if let Some(p) = parallelism {
        builder = builder.parallelism(p);
    }
    Ok(builder.build().await?)
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flushes exported traces when dropped (at exit).
pub struct Telemetry(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: could not flush traces: {e}");
        }
    }
}

/// Log to stderr; `WEFT_LOG` (an `EnvFilter`) wins over `-v`. When
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans (runs and tasks, at `info`;
/// `WEFT_TRACE` filters them) are also exported there with OTLP over HTTP.
pub fn init_tracing(verbose: u8, format: LogFormat) -> Telemetry {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let mut layers: Vec<Boxed> = vec![match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    }];
    let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .and_then(|endpoint| {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|e| eprintln!("warning: traces not exported: {e}"))
                .ok()?;
            let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "weft".into());
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service)
                            .build(),
                    )
                    .build(),
            )
        });
    if let Some(p) = &provider {
        let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_TRACE")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("weft"))
                .with_filter(filter)
                .boxed(),
        );
    }
    tracing_subscriber::registry().with(layers).init();
    Telemetry(provider)
}

/// Run the parsed command; the exit code says how it went.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Tasks {
            server: Some(server),
            token,
            json,
            ..
        } => client::tasks(&client::ServerArgs { server, token }, json).await,
        Command::Tasks { host, json, .. } => {
            let host = host.host(None).await?;
            print_tasks(&host, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins { host, json } => {
            let host = host.host(None).await?;
            print_plugins(&host, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { action } => graph_command(action).await,
        Command::Validate { graph, host, input } => {
            let host = host.host(None).await?;
            validate(&host, &graph, input.as_deref())
        }
        Command::Run {
            graph,
            host,
            input,
            json,
            all_outputs,
            parallelism,
            ephemeral,
            no_cache,
            cache_max_age_s,
            cache_keep_last,
            preview,
        } => {
            let defaults = CachePolicy::default();
            let policy = CachePolicy {
                enabled: !no_cache,
                keep_last: cache_keep_last.or(defaults.keep_last),
                max_age: cache_max_age_s.map(std::time::Duration::from_secs),
            };
            let host = host.host_with(ephemeral, parallelism, Some(policy)).await?;
            let input = read_input(&input)?;
            let graph_file = Graph::from_file(&graph)?;
            if preview {
                let origin = graph.display().to_string();
                let result = host
                    .preview(&graph_file, &origin, input, None, &CancellationToken::new())
                    .await?;
                return show_preview(&result, json);
            }
            let origin = graph.display().to_string();
            let plan = host.checked(&graph_file, &origin, &input)?;
            refuse_waits(&plan, &graph)?;
            let prepared = host.prepare_plan(plan, &graph_file, &origin, input).await?;
            // The run keeps its plan; the graph is in the store.
            drop(graph_file);
            execute(&host, &prepared, json, all_outputs).await
        }
        Command::Store { action, host } => {
            store::main(action, host.setup(false)?.store_location()?).await
        }
        Command::Runs {
            action: Some(RunsAction::Prune { older_than, status }),
            host,
            json,
        } => prune_runs(&host, older_than, status, json).await,
        Command::Runs { host, json, .. } => list_runs(&*host.store().await?, json).await,
        Command::Storage {
            action,
            host,
            user,
            json,
        } => storage::main(&*host.store().await?, &user, action, json).await,
        Command::DeadLetters { action, host, json } => {
            let host = host.host_with(false, None, None).await?;
            match action {
                None => {
                    let letters = host.dead_letters().await?;
                    if json {
                        writeln!(
                            std::io::stdout(),
                            "{}",
                            serde_json::to_string_pretty(&letters)?
                        )?;
                    } else if letters.is_empty() {
                        writeln!(std::io::stdout(), "no dead letters")?;
                    }
                    for l in letters.iter().filter(|_| !json) {
                        writeln!(
                            std::io::stdout(),
                            "{} {} ({}, {} attempts): {}",
                            l.run_id,
                            l.node,
                            l.task_type,
                            l.attempts,
                            l.errors.last().map(String::as_str).unwrap_or("")
                        )?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(DeadLetterAction::Retry { run_id, node }) => {
                    let prepared = host.redrive(&run_id, &node).await?;
                    if !json {
                        eprintln!("re-driving {node} of run {run_id}");
                    }
                    execute(&host, &prepared, json, false).await
                }
            }
        }
        Command::Cache { action, host } => {
            let store = host.store().await?;
            match action {
                CacheAction::Stats { json } => {
                    let stats = store.cache_stats().await?;
                    if json {
                        writeln!(
                            std::io::stdout(),
                            "{}",
                            serde_json::to_string_pretty(&stats)?
                        )?;
                    } else if stats.is_empty() {
                        writeln!(std::io::stdout(), "the output cache is empty")?;
                    } else {
                        for s in stats {
                            writeln!(
                                std::io::stdout(),
                                "{:<24} {:>8} entries {:>12} bytes",
                                s.task_type,
                                s.entries,
                                s.bytes
                            )?;
                        }
                    }
                }
                CacheAction::Clear { task_type } => {
                    let n = store.cache_clear(task_type.as_deref()).await?;
                    writeln!(std::io::stdout(), "removed {n} cached outputs")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume {
            run_id,
            all,
            host,
            json,
        } => {
            let host = host.host_with(false, None, None).await?;
            let ids = if all {
                host.interrupted_runs().await?
            } else {
                run_id.into_iter().collect()
            };
            if ids.is_empty() {
                eprintln!("no interrupted runs");
            }
            let mut code = ExitCode::SUCCESS;
            for id in ids {
                let prepared = match host.prepare_resume(&id).await {
                    Ok(prepared) => prepared,
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = ExitCode::from(1);
                        continue;
                    }
                };
                if !json {
                    eprintln!("resuming run {id}");
                }
                if execute(&host, &prepared, json, false).await? != ExitCode::SUCCESS {
                    code = ExitCode::from(1);
                }
            }
            Ok(code)
        }
        Command::Serve(args) => serve::serve(args).await,
        Command::New { name, lang, dir } => project::new(&name, lang, dir),
        Command::Build { dir, world } => project::build(&dir, world),
        Command::Toolchain { action } => toolchain::main(action),
        Command::Models { action, host, json } => models::main(action, &host, json).await,
        Command::Submit(args) => client::submit(args).await,
        Command::Watch {
            run_id,
            after,
            json,
            server,
        } => client::watch(&server, &run_id, after, json).await,
        Command::Cancel { run_id, server } => client::cancel(&server, &run_id).await,
        Command::Secrets {
            action,
            server,
            json,
        } => secrets::run(&server, action, json).await,
        Command::Signal {
            run_id,
            name,
            body,
            server,
        } => client::signal(&server, &run_id, &name, read_input(&body)?).await,
        Command::Schedules {
            action,
            server,
            json,
        } => schedules::run(&server, action, json).await,
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            // Into memory first: the generator panics on a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli, "weft", &mut script);
            std::io::stdout().write_all(&script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man_pages(dir.as_deref()),
        Command::Openapi => {
            let doc = weft_daemon::openapi().to_pretty_json()?;
            std::io::stdout().write_all(format!("{doc}\n").as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { host, json } => doctor::run(&host.setup(false)?, json).await,
        Command::Status {
            run_id,
            input: Some(node),
            server,
            token,
            host,
            ..
        } => {
            let input = match server {
                Some(server) => {
                    client::node_input(&client::ServerArgs { server, token }, &run_id, &node)
                        .await?
                }
                None => host.store().await?.node_input(&run_id, &node).await?,
            };
            let Some(input) = input else {
                anyhow::bail!(
                    "node `{node}` of run `{run_id}` has no input kept: no such run or node, or it has not started"
                );
            };
            writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&input)?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            run_id,
            server: Some(server),
            token,
            json,
            ..
        } => client::status(&client::ServerArgs { server, token }, &run_id, json).await,
        Command::Status {
            run_id, host, json, ..
        } => {
            let stored = host.store().await?.load_run(&run_id).await?;
            let nodes: serde_json::Map<String, Value> = stored
                .nodes
                .iter()
                .map(|n| {
                    (
                        n.node.clone(),
                        serde_json::to_value(n).unwrap_or(Value::Null),
                    )
                })
                .collect();
            if json {
                let out = json!({"run_id": stored.run.run_id, "status": stored.run.status,
                                 "origin": stored.run.origin, "input": stored.spec.input, "nodes": nodes});
                writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&out)?)?;
            } else {
                writeln!(
                    std::io::stdout(),
                    "run {} {} ({})",
                    stored.run.run_id,
                    stored.run.status.as_str(),
                    stored.run.origin
                )?;
                let (own, counts) = weft::instance::split_instances(&stored.nodes);
                for n in own {
                    let detail = match (&n.output, &n.error) {
                        (Some(o), _) => o.to_string(),
                        (None, Some(e)) => e.clone(),
                        _ => String::new(),
                    };
                    let detail = match counts.get(&n.node) {
                        Some(c) => format!(
                            "[{} instances completed, {} failed] {detail}",
                            c.completed, c.failed
                        ),
                        None => detail,
                    };
                    writeln!(
                        std::io::stdout(),
                        "  {} {} (attempt {}) {detail}",
                        n.node,
                        n.status.as_str(),
                        n.attempt
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            run_id,
            host,
            after,
            json,
        } => {
            let store = host.store().await?;
            store.load_run(&run_id).await?;
            for e in store.events(&run_id, after).await? {
                if json {
                    writeln!(std::io::stdout(), "{}", serde_json::to_string(&e)?)?;
                } else {
                    writeln!(
                        std::io::stdout(),
                        "{:>6} {} {}",
                        e.seq,
                        e.time_ms,
                        describe_event(&e.kind)
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::RunStarted {
            nodes,
            resumed,
            preview,
        } => {
            let how = match (*resumed, *preview) {
                (_, true) => "preview started",
                (true, _) => "resumed",
                _ => "started",
            };
            format!("run {how} ({nodes} nodes)")
        }
        EventKind::RunFinished { status, reason } => match reason {
            Some(why) => format!("run {}: {why}", status.as_str()),
            None => format!("run {}", status.as_str()),
        },
        EventKind::Node {
            node,
            status,
            error,
            cached,
        } => {
            let status = status.as_str();
            let cached = if *cached { " (cached)" } else { "" };
            match error {
                Some(e) => format!("node {node} {status}{cached}: {e}"),
                None => format!("node {node} {status}{cached}"),
            }
        }
        EventKind::Dataflow { index, status } => {
            format!("dataflow {index} {status:?}").to_lowercase()
        }
        EventKind::Progress {
            node,
            fraction,
            message,
        } => {
            format!(
                "progress {node} {:.0}% {}",
                fraction * 100.0,
                message.as_deref().unwrap_or("")
            )
        }
        EventKind::Log {
            node,
            level,
            message,
        } => format!("log {node} {level}: {message}"),
        // An event kind newer than this display: its JSON.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

async fn list_runs(store: &dyn RunStore, json_out: bool) -> anyhow::Result<ExitCode> {
    let runs = store.list_runs().await?;
    if json_out {
        let all: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({"run_id": r.run_id, "status": r.status, "origin": r.origin,
                            "created_ms": r.created_ms, "updated_ms": r.updated_ms})
            })
            .collect();
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        for r in runs {
            writeln!(
                std::io::stdout(),
                "{}  {:<9}  {}",
                r.run_id,
                r.status.as_str(),
                r.origin
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `weft graph` does.
#[derive(clap::Subcommand, Debug)]
enum GraphAction {
    /// Print a graph (Weft's or Workglow's JSON) in another shape.
    Export {
        /// The graph file.
        graph: PathBuf,
        /// `weft` (canonical Weft JSON) or `workglow` (what Workglow's
        /// `createGraphFromGraphJSON` loads).
        #[arg(long, value_enum, default_value = "weft")]
        format: GraphFormat,
    },
    /// Canonicalise graph files: stable key order, one diff-friendly layout.
    Fmt {
        /// The graph files.
        #[arg(required = true)]
        graphs: Vec<PathBuf>,
        /// Only check: exit 1 naming the files that are not canonical.
        #[arg(long)]
        check: bool,
    },
    /// Print builder code (Rust, Python or JavaScript) that rebuilds a
    /// graph: running it gives the graph back, canonicalised.
    Codegen {
        /// The graph file (Weft's or Workglow's JSON).
        graph: PathBuf,
        /// The language to write.
        #[arg(long, value_enum)]
        lang: CodegenLang,
        /// The task types to match ports by, as `weft tasks --json` (or a
        /// daemon's `GET /v1/tasks`) lists them; default: this host's.
        #[arg(long)]
        tasks: Option<PathBuf>,
        #[command(flatten)]
        host: HostArgs,
    },
}

/// A language `weft graph codegen` writes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CodegenLang {
    Rust,
    Python,
    Js,
}

/// A graph's JSON shape.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum GraphFormat {
    Weft,
    Workglow,
}

async fn graph_command(action: GraphAction) -> anyhow::Result<ExitCode> {
    match action {
        GraphAction::Codegen {
            graph,
            lang,
            tasks,
            host,
        } => codegen(&graph, lang, tasks.as_deref(), host).await,
        GraphAction::Export { graph, format } => {
            let g = Graph::from_file(&graph)?;
            let text = match format {
                GraphFormat::Weft => g.to_json_pretty(),
                GraphFormat::Workglow => {
                    let json = weft::graph::workglow::from_weft(&g)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", graph.display()))?;
                    serde_json::to_string_pretty(&json)?
                }
            };
            writeln!(std::io::stdout(), "{text}")?;
            Ok(ExitCode::SUCCESS)
        }
        GraphAction::Fmt { graphs, check } => {
            let mut unformatted = Vec::new();
            for path in &graphs {
                let before = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let origin = path.display().to_string();
                let workglow = serde_json::from_str::<Value>(&before)
                    .is_ok_and(|v| weft::graph::workglow::is_workglow(&v));
                if workglow {
                    bail!(
                        "{origin} is in Workglow's shape; `weft graph export --format weft {origin}` writes it in Weft's"
                    );
                }
                let after = format!("{}\n", Graph::from_json(&before, &origin)?.to_json_pretty());
                if before == after {
                    continue;
                }
                if check {
                    unformatted.push(path.display().to_string());
                } else {
                    std::fs::write(path, after)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
            if unformatted.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("not canonical: {}", unformatted.join(", "));
            Ok(ExitCode::from(1))
        }
    }
}

/// `weft runs prune`: every run looked at once; the ended ones past the
/// rule deleted.
async fn prune_runs(
    host: &HostArgs,
    older_than: Option<weft::retention::Age>,
    status: Option<RunStatus>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let setup = host.setup(false)?;
    let store = setup.open_store().await?;
    let retention = setup.config().retention.clone();
    let now = weft::clock::now_ms();
    let expired = |run: &weft::store::RunRecord, now: u64| {
        let status_ok = status.is_none_or(|s| run.status == s);
        let old = match older_than {
            Some(weft::retention::Age(Some(age))) => {
                run.updated_ms.saturating_add(age.as_millis() as u64) <= now
            }
            Some(weft::retention::Age(None)) => false,
            None => retention.expired(run, now),
        };
        status_ok && old
    };
    let horizon = match older_than {
        Some(weft::retention::Age(Some(age))) => now.saturating_sub(age.as_millis() as u64),
        Some(weft::retention::Age(None)) => 0,
        None => retention.horizon(now),
    };
    let pass = weft::retention::Pruner::default()
        .all(store.as_ref(), now, horizon, expired)
        .await?;
    if json_out {
        let report = json!({"scanned": pass.scanned, "deleted": pass.deleted});
        writeln!(std::io::stdout(), "{report}")?;
    } else {
        writeln!(
            std::io::stdout(),
            "deleted {} of {} runs",
            pass.deleted,
            pass.scanned
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft graph codegen`: the builder code for a graph, matching ports with
/// the task list given or this host's registry.
async fn codegen(
    path: &Path,
    lang: CodegenLang,
    tasks: Option<&Path>,
    host: HostArgs,
) -> anyhow::Result<ExitCode> {
    use weft::workflow::codegen::{Lang, generate};
    let graph = Graph::from_file(path)?;
    let lang = match lang {
        CodegenLang::Rust => Lang::Rust,
        CodegenLang::Python => Lang::Python,
        CodegenLang::Js => Lang::JavaScript,
    };
    let origin = path.display().to_string();
    let code = match tasks {
        Some(list) => {
            let text = std::fs::read_to_string(list)
                .with_context(|| format!("cannot read {}", list.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", list.display()))?;
            let catalog = weft::workflow::TaskList::from_json(&value)
                .map_err(|e| anyhow::anyhow!("{}: {e}", list.display()))?;
            generate(&graph, lang, &catalog, &origin)
        }
        None => {
            let host = host.host(None).await?;
            generate(&graph, lang, &*host.registry(), &origin)
        }
    }
    .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    write!(std::io::stdout(), "{code}")?;
    Ok(ExitCode::SUCCESS)
}

/// `weft man`: the man page on stdout, or every command's page into `dir`.
fn man_pages(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cli = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cli).render(&mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, cmd: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        clap_mangen::Man::new(cmd).title(name).render(&mut file)?;
        Ok(())
    };
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("weft-{}", sub.get_name());
        write(&name, sub.clone())?;
    }
    write("weft", cli)?;
    writeln!(std::io::stdout(), "wrote man pages into {}", dir.display())?;
    Ok(ExitCode::SUCCESS)
}

/// `weft run` holds its store while it runs, so no signal could reach a
/// wait: a graph with waits is for a daemon.
fn refuse_waits(plan: &weft::graph::Plan, path: &Path) -> anyhow::Result<()> {
    let waits = weft::graph::waits(plan);
    if waits.is_empty() {
        return Ok(());
    }
    bail!(
        "{}: node{} {} wait{} for a signal, and only a run on a daemon can get one: \
         start `weft serve`, then `weft submit` the graph and answer with `weft signal` \
         (docs/signals.md)",
        path.display(),
        if waits.len() == 1 { "" } else { "s" },
        waits.join(", "),
        if waits.len() == 1 { "s" } else { "" },
    )
}

pub(crate) fn read_input(arg: &str) -> anyhow::Result<Value> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read input file {path}"))?,
            path.to_string(),
        ),
        None => (arg.to_string(), "--input".to_string()),
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{origin} is not valid JSON"))?;
    if !value.is_object() {
        bail!("{origin} must be a JSON object");
    }
    Ok(value)
}

fn validate(host: &Host, path: &Path, input: Option<&str>) -> anyhow::Result<ExitCode> {
    let plan = host.plan(&Graph::from_file(path)?, &path.display().to_string())?;
    if let Some(input) = input {
        plan.check_input(&read_input(input)?)?;
    }
    let expected = plan.expected_input();
    writeln!(
        std::io::stdout(),
        "{}: ok ({} nodes, {} dataflows)",
        path.display(),
        plan.nodes.len(),
        plan.edges.len()
    )?;
    if !expected.is_empty() && input.is_none() {
        writeln!(
            std::io::stdout(),
            "expects from the run's input: {}",
            expected.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a preview: every node's state and output, and the input each node
/// not run would have received.
fn show_preview(result: &weft::runner::RunResult, json_out: bool) -> anyhow::Result<ExitCode> {
    let out = json!({
        "preview": true,
        "status": result.status,
        "nodes": result.nodes,
        "outputs": result.outputs,
        "previewed": result.previewed,
        "failures": result.failures,
        "stats": result.stats,
    });
    if json_out {
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&result.outputs)?
        )?;
        for (node, input) in &result.previewed {
            eprintln!("{node} not run in a preview; it would get {input}");
        }
        for f in result
            .failures
            .iter()
            .filter(|f| !result.previewed.contains_key(&f.node))
        {
            eprintln!("{} {}: {}", f.node, f.status.as_str(), f.error);
        }
    }
    let ok = result.status == weft::events::RunStatus::Succeeded;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn execute(
    host: &Host,
    prepared: &PreparedRun,
    json_out: bool,
    all_outputs: bool,
) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ncancelling (Ctrl-C again to quit at once)");
            interrupt.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    tracing::info!(run = %prepared.run_id, graph = %prepared.plan.origin, "run started");
    let display = (!json_out).then(|| progress::Display::start(&prepared.hub, &prepared.plan));
    let result = match host.execute(prepared, &cancel).await {
        Ok(result) => result,
        // Not this process's failure: the run goes on where it was taken.
        Err(weft::HostError::RunLog(e @ weft::store::RunLogError::LostLease { .. })) => {
            eprintln!("{e}; it goes on there");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(d) = display {
        d.finish().await;
    }
    let outputs = if all_outputs {
        result.outputs.clone()
    } else {
        result.leaf_outputs()
    };
    if json_out {
        let out = json!({
            "run_id": result.run_id,
            "status": result.status,
            "outputs": outputs,
            "failures": result.failures,
            "stats": {
                "tasks_executed": result.stats.tasks_executed,
                "cache_hits": result.stats.cache_hits,
                "run_ms": result.stats.run_ms,
                "peak_rss_kb": peak_rss_kb(),
            },
        });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&outputs)?
        )?;
        for f in &result.failures {
            eprintln!("{} {}: {}", f.node, f.status.as_str(), f.error);
        }
        eprintln!(
            "run {} {} in {:.1} ms ({} tasks)",
            result.run_id,
            result.status.as_str(),
            result.stats.run_ms,
            result.stats.tasks_executed
        );
    }
    Ok(if result.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Peak resident memory of this process, in KiB (Linux), or null.
fn peak_rss_kb() -> Value {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(Value::Null, Value::from)
}

fn ports(schema: &weft::schema::ObjectSchema) -> String {
    let required = schema.required();
    let mut parts: Vec<String> = schema
        .ports()
        .into_iter()
        .map(|p| {
            let types = schema
                .port_types(p)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let req = if required.contains(&p) { "" } else { "?" };
            format!("{p}{req}: {types}")
        })
        .collect();
    if schema.is_open() {
        parts.push("...any".into());
    }
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join(", ")
    }
}

fn print_tasks(host: &Host, json_out: bool) -> std::io::Result<()> {
    let registry = host.registry();
    let types: Vec<&std::sync::Arc<TaskType>> = registry.task_types().collect();
    if json_out {
        let all: Vec<Value> = types.iter().map(|t| t.to_json()).collect();
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&all).unwrap_or_default()
        )?;
        return Ok(());
    }
    let mut by_category: std::collections::BTreeMap<&str, Vec<&TaskType>> = Default::default();
    for t in &types {
        by_category.entry(t.category.as_str()).or_default().push(t);
    }
    for (category, list) in by_category {
        writeln!(std::io::stdout(), "{category}")?;
        for t in list {
            let flags = match (t.side_effects, t.cacheable) {
                (true, _) => " [side effects]",
                (false, true) => " [cacheable]",
                _ => "",
            };
            writeln!(
                std::io::stdout(),
                "  {} {} — {}{} ({})",
                t.id,
                t.version,
                t.title,
                flags,
                t.plugin
            )?;
            if !t.description.is_empty() {
                writeln!(std::io::stdout(), "      {}", t.description)?;
            }
            writeln!(std::io::stdout(), "      in:  {}", ports(&t.input))?;
            writeln!(std::io::stdout(), "      out: {}", ports(&t.output))?;
        }
    }
    print_plugin_errors(host);
    Ok(())
}

fn print_plugin_errors(host: &Host) {
    for p in host.plugins().iter().filter(|p| p.error.is_some()) {
        eprintln!(
            "plugin {} ({}) not loaded: {}",
            p.name,
            p.source,
            p.error.as_deref().unwrap_or("")
        );
    }
}

fn print_plugins(host: &Host, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&host.plugins())?
        )?;
        return Ok(());
    }
    for p in host.plugins() {
        let mut provides = p.tasks.join(", ");
        if p.provider {
            let sep = if provides.is_empty() { "" } else { "; " };
            provides = format!(
                "{provides}{sep}serves models (provider = \"plugin:{}\")",
                p.name
            );
        }
        match &p.error {
            None => writeln!(
                std::io::stdout(),
                "{} ({}) sha256:{:.12}: {provides}",
                p.name,
                p.source,
                p.sha256,
            )?,
            Some(e) => writeln!(std::io::stdout(), "{} ({}) FAILED: {e}", p.name, p.source)?,
        }
    }
    Ok(())
}

/// mimalloc, not glibc's allocator: a run allocates and frees millions of
/// small JSON values across the runner's and the committer's threads;
/// glibc's per-thread arenas made a 100,000-node run's peak ~40% larger
/// than its heap, and a quarter of its time was in `malloc`/`free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options `purge_delay` and `arena_purge_mult` (their places in
/// `mi_option_e` of the mimalloc 3 the locked `libmimalloc-sys` builds).
const MI_PURGE_DELAY: i32 = 15;
const MI_ARENA_PURGE_MULT: i32 = 24;

/// Memory a long-running daemon frees goes back to the system at once:
/// with mimalloc's delayed purging, `weft serve` under 4,000 runs/s grew
/// from 154 to 325 MB over 200,000 runs (glibc: 140 to 230; purging at
/// once: 153 to 239, flat from 120,000).
fn purge_at_once() {
    // SAFETY: sets two of mimalloc's options, which it reads as it purges.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_ARENA_PURGE_MULT, 1);
    }
}

fn main() -> ExitCode {
    purge_at_once();
    let args = Cli::parse();
    let telemetry = init_tracing(args.verbose, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // On a worker thread, not this one: what a run wakes (its commit loop,
    // its next node) is then scheduled on the worker beside it, instead of
    // each wake-up crossing threads from here to a parked worker.
    let outcome = runtime
        .block_on(runtime.spawn(run(args)))
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the command stopped: {e}")));
    drop(telemetry);
    match outcome {
        Ok(code) => code,
        // `weft tasks | head`: the reader went away; that is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, joined by `: `, leaving out a cause whose text
/// the message before it already shows (stores repeat their cause's text,
/// so a log line with the message alone is complete).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
