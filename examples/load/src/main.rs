//! Load generator for a `weft serve` daemon on loopback. Many clients each
//! submit a small run, follow its event stream until it ends, and submit the
//! next; bounded by a run count and a time limit. Prints runs/s and the
//! submit-to-first-task latency (from sending `POST /v1/runs` to the
//! `running` event of the run's first node) at p50/p99. With `--drain`,
//! clients only submit (a job queue's producers) and the tool waits until
//! no run is left running. `examples/load.sh` starts a daemon and runs this
//! against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The daemon (loopback only); give several to spread clients over hosts.
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    server: Vec<String>,
    /// Nodes per run: a chain of `math.add-one`.
    #[arg(long, default_value_t = 2)]
    chain: usize,
    /// Make the nodes independent (each takes the run's input) instead of a
    /// chain, so a run's tasks execute in parallel.
    #[arg(long)]
    independent: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Runs to submit in all.
    #[arg(long, default_value_t = 400)]
    runs: usize,
    /// Stop submitting after this many seconds.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Use the daemon as a job queue: clients submit runs without following
    /// them, then wait until the hosts have no run left running. Reports
    /// submissions/s and runs/s from the first submission to the last end
    /// (no latency: nobody watches a run start).
    #[arg(long)]
    drain: bool,
    /// Submit this graph (a JSON file) instead of the `math.add-one` chain.
    #[arg(long, conflicts_with_all = ["chain", "independent"])]
    graph: Option<std::path::PathBuf>,
    /// The run's input with `--graph` (JSON); `{n}` in any of its strings
    /// becomes the run's number, so that no two runs' tasks are alike.
    #[arg(long, default_value = "{}", requires = "graph")]
    input: String,
}

/// What every run submits: the add-one chain or a given graph.
enum Work {
    Chain { nodes: usize, independent: bool },
    Graph { graph: Value, input: Value },
}

impl Work {
    fn from_args(args: &Args) -> anyhow::Result<Work> {
        let Some(path) = &args.graph else {
            return Ok(Work::Chain {
                nodes: args.chain.max(1),
                independent: args.independent,
            });
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        Ok(Work::Graph {
            graph: serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?,
            input: serde_json::from_str(&args.input).context("--input")?,
        })
    }

    /// The graph and input of run number `n`.
    fn run(&self, n: usize) -> (Value, Value) {
        match self {
            // Distinct inputs for every task of every run: every task
            // executes, none is an output-cache hit.
            Work::Chain { nodes, independent } => {
                run_graph(*nodes, *independent, (n as u64) * 1_000_000)
            }
            Work::Graph { graph, input } => (graph.clone(), numbered(input, n)),
        }
    }

    /// Nodes per run.
    fn nodes(&self) -> usize {
        match self {
            Work::Chain { nodes, .. } => *nodes,
            Work::Graph { graph, .. } => graph["tasks"].as_array().map_or(1, Vec::len),
        }
    }

    fn describe(&self) -> String {
        match self {
            Work::Chain {
                nodes,
                independent: true,
            } => format!("{nodes} independent nodes"),
            Work::Chain {
                nodes,
                independent: false,
            } => format!("{nodes} chained nodes"),
            Work::Graph { .. } => format!("{} nodes (given graph)", self.nodes()),
        }
    }
}

/// `value` with `{n}` replaced by `n` in every string.
fn numbered(value: &Value, n: usize) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("{n}", &n.to_string())),
        Value::Array(items) => Value::Array(items.iter().map(|v| numbered(v, n)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbered(v, n)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// A run of `chain` `math.add-one` nodes, chained or independent, whose
/// tasks all have distinct inputs from `base` on: the graph and the run's input.
fn run_graph(chain: usize, independent: bool, base: u64) -> (Value, Value) {
    if independent {
        let tasks: Vec<_> = (0..chain)
            .map(|i| json!({"id": format!("n{i}"), "type": "math.add-one", "defaults": {"value": base + i as u64}}))
            .collect();
        return (json!({"tasks": tasks}), json!({}));
    }
    let tasks: Vec<_> = (0..chain)
        .map(|i| json!({"id": format!("n{i}"), "type": "math.add-one"}))
        .collect();
    let flows: Vec<_> = (1..chain)
        .map(|i| {
            json!({"sourceTaskId": format!("n{}", i - 1), "sourceTaskPortId": "value",
                   "targetTaskId": format!("n{i}"), "targetTaskPortId": "value"})
        })
        .collect();
    (
        json!({"tasks": tasks, "dataflows": flows}),
        json!({"value": base}),
    )
}

/// Submit a run of `graph` on `input`: its id.
async fn submit(
    http: &reqwest::Client,
    server: &str,
    graph: &Value,
    input: Value,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{server}/v1/runs"))
        .json(&json!({"graph": graph, "input": input}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "submit: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    Ok(r.json::<Value>().await?["run_id"]
        .as_str()
        .context("no run_id")?
        .to_string())
}

/// Submit one run of `graph` on `input` and follow it to its end; the
/// submit-to-first-task latency in ms.
async fn one_run(
    http: &reqwest::Client,
    server: &str,
    graph: &Value,
    input: Value,
) -> anyhow::Result<f64> {
    let sent = now_ms();
    let run_id = submit(http, server, graph, input).await?;
    let events = http
        .get(format!("{server}/v1/runs/{run_id}/events"))
        .send()
        .await?;
    if !events.status().is_success() {
        // 429: more streams than `[server] max_streams_per_user` (32).
        bail!(
            "event stream of {run_id} refused: {} {}",
            events.status(),
            events.text().await.unwrap_or_default()
        );
    }
    let mut stream = events.bytes_stream();
    let mut buffer = String::new();
    let mut first_task = None;
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data.trim())?;
            if first_task.is_none() && event["type"] == "node" && event["status"] == "running" {
                // The event's time is the daemon's clock: the same machine.
                first_task = event["time_ms"].as_f64();
            }
            if event["type"] == "run_finished" {
                if event["status"] != "succeeded" {
                    bail!("run {run_id} ended {}", event["status"]);
                }
                let started = first_task.context("no task started")?;
                return Ok((started - sent).max(0.0));
            }
        }
    }
    bail!("event stream of {run_id} ended early")
}

/// Whether `server` lists a run in `status` (the load's user sees its own).
async fn any_run(http: &reqwest::Client, server: &str, status: &str) -> anyhow::Result<bool> {
    let page: Value = http
        .get(format!("{server}/v1/runs?status={status}&limit=1"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(page["runs"].as_array().is_some_and(|r| !r.is_empty()))
}

/// Wait until no host has a run running; fail if any run failed.
async fn wait_until_drained(http: &reqwest::Client, servers: &[String]) -> anyhow::Result<()> {
    // The hosts share one store (or there is one): any of them answers for all.
    let server = &servers[0];
    // Every 100 ms: a drain's end is known to within that, and the listing
    // (a query of its own) stays out of the measure.
    while any_run(http, server, "running").await? {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if any_run(http, server, "failed").await? {
        bail!("a run failed");
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for server in &args.server {
        let url = reqwest::Url::parse(server)?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            bail!("{server} is not a loopback address: this tool only loads a local daemon");
        }
    }
    let servers: Vec<String> = args
        .server
        .iter()
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    let work = Arc::new(Work::from_args(&args)?);
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let clients = (0..args.clients).map(|c| {
        let server = servers[c % servers.len()].clone();
        let (http, next, work) = (http.clone(), next.clone(), work.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= args.runs || Instant::now() >= deadline {
                    break;
                }
                let (graph, input) = work.run(n);
                if args.drain {
                    submit(&http, &server, &graph, input).await?;
                } else {
                    latencies.push(one_run(&http, &server, &graph, input).await?);
                }
            }
            anyhow::Ok(latencies)
        })
    });
    let mut latencies = Vec::new();
    for c in futures::future::join_all(clients).await {
        latencies.extend(c??);
    }
    if args.drain {
        let submitted = started.elapsed().as_secs_f64();
        let runs = next.load(Ordering::Relaxed).min(args.runs);
        wait_until_drained(&http, &servers).await?;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{runs} runs of {} submitted by {} clients over {} hosts in {submitted:.2} s \
             ({:.0}/s), all ended in {elapsed:.2} s: {:.0} runs/s, {:.0} tasks/s",
            work.describe(),
            args.clients,
            servers.len(),
            runs as f64 / submitted,
            runs as f64 / elapsed,
            (runs * work.nodes()) as f64 / elapsed,
        );
        return Ok(());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{} runs of {} by {} clients over {} hosts in {:.2} s: {:.0} runs/s, {:.0} tasks/s; \
         submit-to-first-task p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        work.describe(),
        args.clients,
        servers.len(),
        elapsed,
        latencies.len() as f64 / elapsed,
        (latencies.len() * work.nodes()) as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    Ok(())
}
