//! Client commands for a running daemon (`--server URL`): submit, status,
//! watch, cancel. Thin: each is one or two HTTP calls and a printout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use weft::events::{Event, EventKind, RunStatus};
use weft_daemon::types::{
    ErrorBody, NodeInputView, RunView, SignalView, SubmitRequest, Submitted, TaskTypeView,
};

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The daemon's base URL.
    #[arg(
        long,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:7878",
        global = true
    )]
    pub server: String,
    /// Bearer token (when the daemon has tokens configured).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A daemon's API.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        Ok(Client {
            base: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Send and decode the answer as `T` (the API's own types); an error
    /// answer becomes an error naming the daemon's message (and its list of
    /// problems).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        r: reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, T)> {
        let response = r
            .send()
            .await
            .with_context(|| format!("cannot reach the weft daemon at {}", self.base))?;
        self.answer(response).await
    }

    /// Decode an answer as [`Client::call`] does.
    pub(crate) async fn answer<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> anyhow::Result<(StatusCode, T)> {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(error_message(status, &text));
        }
        let body = serde_json::from_str(&text)
            .with_context(|| format!("unexpected answer from the daemon ({status}): {text}"))?;
        Ok((status, body))
    }
}

impl Client {
    /// Send, expecting an answer without a body (204).
    pub(crate) async fn call_empty(&self, r: reqwest::RequestBuilder) -> anyhow::Result<()> {
        let response = r
            .send()
            .await
            .with_context(|| format!("cannot reach the weft daemon at {}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!(error_message(status, &text));
        }
        Ok(())
    }
}

/// `STATUS: message`, then each listed problem on its own line.
fn error_message(status: StatusCode, text: &str) -> String {
    let Ok(body) = serde_json::from_str::<ErrorBody>(text) else {
        return format!("{status}: {}", text.trim());
    };
    let mut message = format!("{status}: {}", body.error);
    for e in body.errors.iter().flatten() {
        message.push_str(&format!("\n  {e}"));
    }
    message
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The graph file (JSON).
    #[arg(required_unless_present = "saved")]
    graph: Option<PathBuf>,
    /// Run a graph saved on the daemon instead, by name.
    #[arg(long, conflicts_with = "graph")]
    saved: Option<String>,
    /// With --saved: that version (default: the newest).
    #[arg(long, requires = "saved")]
    version: Option<u32>,
    /// The run's input: a JSON object (or @FILE).
    #[arg(long, default_value = "{}")]
    input: String,
    /// Submitting again with the same key returns the first run.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Follow the run's events until it ends (as `weft watch`).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let graph = match (&args.graph, &args.saved) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read graph {}", path.display()))?;
            // Parsed here so a typo is reported with the file's name.
            serde_json::to_value(weft::graph::Graph::from_json(
                &text,
                &path.display().to_string(),
            )?)?
        }
        (None, Some(name)) => json!(name),
        (None, None) => bail!("give a graph file or --saved NAME"),
    };
    let body = SubmitRequest {
        graph,
        version: args.version,
        input: super::read_input(&args.input)?,
        idempotency_key: args.idempotency_key.clone(),
        preview: false,
    };
    let request = client
        .request(reqwest::Method::POST, "/v1/runs")
        .json(&body);
    let (status, answer): (_, Submitted) = client.call(request).await?;
    let run_id = answer.run_id;
    if status == StatusCode::OK {
        eprintln!("idempotency key already used: run {run_id}");
    }
    writeln!(std::io::stdout(), "{run_id}")?;
    if args.wait {
        return watch_run(&client, &run_id, 0, false).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The input node `node` of run `run_id` started with; none if the daemon
/// has none (no such run or node, another user's run, or not started).
pub async fn node_input(
    server: &ServerArgs,
    run_id: &str,
    node: &str,
) -> anyhow::Result<Option<Value>> {
    let client = Client::new(server)?;
    let path = format!("/v1/runs/{}/nodes/{}/input", segment(run_id), segment(node));
    let response = client
        .request(reqwest::Method::GET, &path)
        .send()
        .await
        .with_context(|| format!("cannot reach the weft daemon at {}", client.base))?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let (_, view): (_, NodeInputView) = client.answer(response).await?;
    Ok(Some(view.input))
}

/// `s` as one segment of a URL's path.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub async fn status(server: &ServerArgs, run_id: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let request = client.request(reqwest::Method::GET, &format!("/v1/runs/{run_id}"));
    let (_, run): (_, RunView) = client.call(request).await?;
    if json_out {
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&run)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let summary = &run.summary;
    writeln!(
        std::io::stdout(),
        "run {} {} ({})",
        summary.run_id,
        summary.status.as_str(),
        summary.origin
    )?;
    for (id, node) in &run.nodes {
        let output = run.outputs.as_ref().and_then(|o| o.get(id));
        let detail = match (output, &node.error) {
            (Some(o), _) => o.to_string(),
            (None, Some(e)) => e.clone(),
            _ => String::new(),
        };
        writeln!(
            std::io::stdout(),
            "  {id} {} (attempt {}) {detail}",
            node.status.as_str(),
            node.attempt
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft tasks --server`: the daemon's task types, and the caller's saved
/// graphs as node types.
pub async fn tasks(server: &ServerArgs, json_out: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let request = client.request(reqwest::Method::GET, "/v1/tasks");
    let (_, list): (_, Vec<TaskTypeView>) = client.call(request).await?;
    let mut out = std::io::stdout();
    if json_out {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for t in &list {
        writeln!(out, "{} {} — {} ({})", t.id, t.version, t.title, t.plugin)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft store backup --server`: the daemon writes a backup now.
pub async fn backup(server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let request = client.request(reqwest::Method::POST, "/v1/store/backups");
    let (_, written): (_, weft_daemon::types::BackupWritten) = client.call(request).await?;
    writeln!(
        std::io::stdout(),
        "{} ({:.1} MB)",
        written.path,
        written.bytes as f64 / 1e6
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(server: &ServerArgs, run_id: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let request = client.request(reqwest::Method::POST, &format!("/v1/runs/{run_id}/cancel"));
    let (_, run): (_, RunView) = client.call(request).await?;
    writeln!(
        std::io::stdout(),
        "run {run_id} {}",
        run.summary.status.as_str()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn signal(
    server: &ServerArgs,
    run_id: &str,
    name: &str,
    body: Value,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    // A name at a use (`chat[3]/reply`) is one path segment.
    let path = format!("/v1/runs/{run_id}/signals/{}", segment(name));
    let request = client.request(reqwest::Method::POST, &path).json(&body);
    let (_, sent): (_, SignalView) = client.call(request).await?;
    writeln!(
        std::io::stdout(),
        "run {run_id}: signal {} sent to {}",
        sent.signal,
        sent.nodes.join(", ")
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn watch(
    server: &ServerArgs,
    run_id: &str,
    after: u64,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    watch_run(&client, run_id, after, json_out).await
}

/// Print a run's events until its final one. A dropped connection (a daemon
/// restart) is retried from the last event seen, for up to a minute.
async fn watch_run(
    client: &Client,
    run_id: &str,
    mut last: u64,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut failures = 0;
    loop {
        let response = client
            .request(reqwest::Method::GET, &format!("/v1/runs/{run_id}/events"))
            .header("accept", "text/event-stream")
            .header("last-event-id", last.to_string())
            .send()
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                bail!(error_message(status, &r.text().await.unwrap_or_default()));
            }
            Err(e) => {
                failures += 1;
                if failures > 60 {
                    return Err(e).context("lost the weft daemon");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        failures = 0;
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let Some(data) = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                else {
                    continue; // a keep-alive comment
                };
                let event: Event = serde_json::from_str(data)
                    .with_context(|| format!("the daemon sent an unreadable event: {data}"))?;
                last = event.seq;
                if json_out {
                    writeln!(std::io::stdout(), "{data}")?;
                } else {
                    writeln!(
                        std::io::stdout(),
                        "{:>6} {} {}",
                        event.seq,
                        event.time_ms,
                        super::describe_event(&event.kind)
                    )?;
                }
                if let EventKind::RunFinished { status, .. } = event.kind {
                    return Ok(if status == RunStatus::Succeeded {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    });
                }
            }
        }
        // The stream ended before the run did (the daemon stopped): reconnect.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
