//! A `weft serve` process and an HTTP client for it, shared by the daemon
//! and cluster tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A `weft serve` process; derefs to a client without a token.
pub struct Daemon {
    pub child: Child,
    /// The first line it printed (what it serves, or which worker it is).
    pub first: String,
    /// What it printed on stdout after its first line.
    pub lines: Arc<Mutex<Vec<String>>>,
    api: Api,
}

/// A client of the daemon's API, as one user.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
    token: Option<String>,
}

impl std::ops::Deref for Daemon {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Daemon {
    /// Start a daemon with data in `dir/data`, plugins in `plugins`, and
    /// `config` as its weft.toml.
    pub fn start(dir: &Path, plugins: &Path, config: &str) -> Daemon {
        Self::start_with(dir, plugins, config, &[])
    }

    /// As [`Daemon::start`], with more `weft serve` arguments; its config
    /// file and log are named after the first free `weft-N.toml` in `dir`.
    pub fn start_with(dir: &Path, plugins: &Path, config: &str, extra: &[&str]) -> Daemon {
        let data = dir.join("data");
        let mut args = vec!["--data-dir", data.to_str().unwrap()];
        args.extend(["--plugins", plugins.to_str().unwrap()]);
        args.extend(extra);
        Self::launch(dir, config, &args, "127.0.0.1:0")
    }

    /// As [`Daemon::start`], listening on `listen` (to be reached again at
    /// the same address after a restart, as a browser page would).
    pub fn start_at(dir: &Path, plugins: &Path, config: &str, listen: &str) -> Daemon {
        let data = dir.join("data");
        let args = [
            "--data-dir",
            data.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
        ];
        Self::launch(dir, config, &args, listen)
    }

    /// A daemon given only `--config` (its weft.toml, `config`): where it
    /// keeps runs and plugins is the configuration's to say.
    pub fn start_configured(dir: &Path, config: &str) -> Daemon {
        Self::launch(dir, config, &[], "127.0.0.1:0")
    }

    fn launch(dir: &Path, config: &str, args: &[&str], listen: &str) -> Daemon {
        let config_path = dir.join("weft.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "--listen", listen])
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_remove("WEFT_DATA_DIR")
            .env_remove("WEFT_PLUGINS_DIR")
            .env_remove("WEFT_DATABASE_URL")
            .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
            .env("WEFT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("weft serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let rest = lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = reader.next() {
                let _ = tx.send(first);
            }
            for line in reader.map_while(Result::ok) {
                rest.lock().unwrap().push(line);
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "daemon did not start: {}",
                    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
                )
            });
        // A worker (`--role worker`) serves no HTTP: no URL.
        let url = first
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        Daemon {
            child,
            first,
            lines,
            api: Api {
                url,
                http: reqwest::Client::new(),
                token: None,
            },
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Wait for the process to exit; its exit status.
    pub fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Api {
    pub fn as_user(&self, token: &str) -> Api {
        Api {
            url: self.url.clone(),
            http: self.http.clone(),
            token: Some(token.to_string()),
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("daemon answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn submit(&self, graph: Value, input: Value) -> String {
        let (status, body) = self
            .post("/v1/runs", json!({"graph": graph, "input": input}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["run_id"].as_str().unwrap().to_string()
    }

    /// Wait for a run to end; returns its view.
    pub async fn finished(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, run) = self.get(&format!("/v1/runs/{run_id}")).await;
            assert_eq!(status, StatusCode::OK, "{run}");
            if run["status"] != "running" {
                return run;
            }
            assert!(Instant::now() < deadline, "run {run_id} did not end: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Read the run's SSE stream (after `after`) until it ends or `max` events.
    pub async fn events(&self, run_id: &str, after: Option<u64>, max: usize) -> Vec<Value> {
        self.events_until(run_id, after, |events| events.len() == max)
            .await
    }

    /// Read the run's SSE stream (after `after`) until it ends or `enough`
    /// says so of the events read.
    pub async fn events_until(
        &self,
        run_id: &str,
        after: Option<u64>,
        enough: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let mut r = self.req(reqwest::Method::GET, &format!("/v1/runs/{run_id}/events"));
        if let Some(n) = after {
            r = r.header("last-event-id", n.to_string());
        }
        let resp = r.send().await.expect("event stream opens");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut stream = resp.bytes_stream();
        let mut buffer = String::new();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !enough(&events) {
            let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(c))) => c,
                Ok(_) => break,
                Err(_) => panic!("event stream stalled after {} events", events.len()),
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let Some(data) = field("data:") else { continue };
                let event: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(
                    field("id:"),
                    Some(event["seq"].to_string()),
                    "SSE id is the seq"
                );
                assert_eq!(field("event:").as_deref(), event["type"].as_str());
                events.push(event);
                if enough(&events) {
                    break;
                }
            }
        }
        events
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `while` node `loop` that asks at every step: `step` adds one to
/// `value`, the wait `ask` waits for the signal `more` (`{go}`), `keep`
/// carries the value; it goes on while `go` (at most 5 steps).
pub fn asking_loop() -> serde_json::Value {
    let flow = |from: &str, to: &str| {
        serde_json::json!({"sourceTaskId": from, "sourceTaskPortId": "value",
                           "targetTaskId": to, "targetTaskPortId": "value"})
    };
    serde_json::json!({"tasks": [
        {"id": "loop", "type": "while",
         "config": {"condition": "output.go == true", "max_iterations": 5},
         "graph": {"tasks": [
            {"id": "step", "type": "math.add-one"},
            {"id": "ask", "type": "wait", "config": {"signal": "more"}},
            {"id": "keep", "type": "pass"}
         ], "dataflows": [flow("step", "ask"), flow("step", "keep")]}}
    ], "dataflows": []})
}
