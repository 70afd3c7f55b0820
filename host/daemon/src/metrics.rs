//! Prometheus metrics of the daemon (`GET /metrics`, OpenMetrics text):
//! runs and tasks by state, task durations, tasks running and waiting for a
//! retry, refused submissions, plugins that failed to load. Fed from each
//! run's event stream; it must not change anything it observes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use weft::events::{Event, EventKind, NodeStatus, RunStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The daemon's metrics; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    runs_finished: Family<Status, Counter>,
    runs_active: Gauge,
    tasks_finished: Family<Status, Counter>,
    tasks_running: Gauge,
    tasks_retrying: Gauge,
    nodes_waiting: Gauge,
    task_seconds: Histogram,
    rejected: Family<Reason, Counter>,
    plugin_failures: Gauge,
    plugin_http: Family<Outcome, Gauge>,
    schedule_firings: Family<Outcome, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("weft");
        let runs_finished = Family::<Status, Counter>::default();
        let runs_active = Gauge::default();
        let tasks_finished = Family::<Status, Counter>::default();
        let tasks_running = Gauge::default();
        let tasks_retrying = Gauge::default();
        let nodes_waiting = Gauge::default();
        let task_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 20));
        let rejected = Family::<Reason, Counter>::default();
        let plugin_failures = Gauge::default();
        let plugin_http = Family::<Outcome, Gauge>::default();
        let schedule_firings = Family::<Outcome, Counter>::default();
        registry.register(
            "runs_finished",
            "Runs ended, by final state",
            runs_finished.clone(),
        );
        registry.register(
            "runs_active",
            "Runs executing in this process",
            runs_active.clone(),
        );
        registry.register(
            "tasks_finished",
            "Nodes ended, by final state (`cached`: completed from the output cache)",
            tasks_finished.clone(),
        );
        registry.register(
            "tasks_running",
            "Tasks executing now",
            tasks_running.clone(),
        );
        registry.register(
            "tasks_retrying",
            "Nodes waiting for their next attempt",
            tasks_retrying.clone(),
        );
        registry.register(
            "nodes_waiting",
            "Wait nodes waiting for their signal, in runs executing here",
            nodes_waiting.clone(),
        );
        registry.register(
            "task_duration_seconds",
            "Time from a task's start to its end, per attempt",
            task_seconds.clone(),
        );
        registry.register(
            "submissions_rejected",
            "Submissions refused by a quota, by reason",
            rejected.clone(),
        );
        registry.register(
            "plugin_load_failures",
            "Plugins in the plugins folder that failed to load",
            plugin_failures.clone(),
        );
        registry.register(
            "plugin_http_requests",
            "Plugins' outgoing HTTP requests since the daemon started, by outcome: \
             `sent`, `refused` (no grant for the origin), `failed`",
            plugin_http.clone(),
        );
        registry.register(
            "schedule_firings",
            "Schedule occurrences handled here, by outcome: `started` a run, `found` \
             the run another host started, `waiting` for a quota, `failed` to start, \
             `missed` (catch_up = skip)",
            schedule_firings.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                runs_finished,
                runs_active,
                tasks_finished,
                tasks_running,
                tasks_retrying,
                nodes_waiting,
                task_seconds,
                rejected,
                plugin_failures,
                plugin_http,
                schedule_firings,
            }),
        }
    }

    pub(crate) fn run_started(&self) {
        self.inner.runs_active.inc();
    }

    pub(crate) fn run_finished(&self, status: Option<RunStatus>) {
        self.inner.runs_active.dec();
        let status = match status {
            Some(s) => serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            None => "interrupted".to_string(),
        };
        self.inner
            .runs_finished
            .get_or_create(&Status { status })
            .inc();
    }

    /// A schedule's occurrence was handled with `outcome`.
    pub(crate) fn schedule_fired(&self, outcome: &'static str) {
        self.inner
            .schedule_firings
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    pub(crate) fn rejected(&self, reason: &str) {
        self.inner
            .rejected
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Follow one run's events until its hub goes away.
    pub(crate) async fn observe(self, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut started: HashMap<String, Instant> = HashMap::new();
        let mut state: HashMap<String, NodeStatus> = HashMap::new();
        while let Some(event) = events.recv().await {
            let EventKind::Node {
                node,
                status,
                cached,
                ..
            } = event.kind
            else {
                continue;
            };
            let inner = &self.inner;
            match state.insert(node.clone(), status) {
                Some(NodeStatus::Running) => {
                    inner.tasks_running.dec();
                }
                Some(NodeStatus::Retrying) => {
                    inner.tasks_retrying.dec();
                }
                Some(NodeStatus::Waiting) => {
                    inner.nodes_waiting.dec();
                }
                _ => {}
            }
            match status {
                NodeStatus::Running => {
                    inner.tasks_running.inc();
                    started.insert(node, Instant::now());
                }
                NodeStatus::Retrying => {
                    inner.tasks_retrying.inc();
                    if let Some(t) = started.remove(&node) {
                        inner.task_seconds.observe(t.elapsed().as_secs_f64());
                    }
                }
                NodeStatus::Pending => {}
                NodeStatus::Waiting => {
                    inner.nodes_waiting.inc();
                }
                finished => {
                    if let Some(t) = started.remove(&node) {
                        inner.task_seconds.observe(t.elapsed().as_secs_f64());
                    }
                    let name = if cached {
                        "cached".to_string()
                    } else {
                        serde_json::to_value(finished)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    };
                    inner
                        .tasks_finished
                        .get_or_create(&Status { status: name })
                        .inc();
                }
            }
        }
        // The run ended or this process stopped following it.
        for status in state.values() {
            match status {
                NodeStatus::Running => self.inner.tasks_running.dec(),
                NodeStatus::Retrying => self.inner.tasks_retrying.dec(),
                NodeStatus::Waiting => self.inner.nodes_waiting.dec(),
                _ => 0,
            };
        }
    }

    /// The metrics as OpenMetrics text; `plugin_failures` and the plugins'
    /// outgoing HTTP (`http`) are sampled now.
    pub(crate) fn render(
        &self,
        plugin_failures: usize,
        http: &weft::plugin::http::HttpStats,
    ) -> String {
        self.inner.plugin_failures.set(plugin_failures as i64);
        use std::sync::atomic::Ordering::Relaxed;
        for (outcome, n) in [
            ("sent", &http.sent),
            ("refused", &http.refused),
            ("failed", &http.failed),
        ] {
            let n = i64::try_from(n.load(Relaxed)).unwrap_or(i64::MAX);
            self.inner
                .plugin_http
                .get_or_create(&Outcome { outcome })
                .set(n);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}
