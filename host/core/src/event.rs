//! Events: what happens during a run, as a numbered stream per run.
//!
//! Owns the event types ([`Event`], [`EventKind`], the node, run and dataflow
//! states) and [`NodeEvents`], what a running task's `log` and `progress`
//! write to. Where events go is an [`EventSink`]'s business (the runtime's
//! event hub commits them to the store, then publishes them); this module
//! must not know how events are stored or shown.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The state of a node in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeStatus {
    /// Waiting for its inputs.
    Pending,
    /// Its task is executing.
    Running,
    /// Its last attempt failed with a passing error; the next attempt is
    /// scheduled (the time is stored, so it survives a restart).
    Retrying,
    /// A `wait` node waiting for its signal (or its timeout): it holds no
    /// task slot and no instance; the wait's end is stored, so it survives
    /// a restart.
    Waiting,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Will not run because a node it depends on failed or was skipped.
    Skipped,
    /// Stopped (or never started) because the run was cancelled.
    Cancelled,
    /// Not run, and not a failure: every dataflow into it was disabled (a
    /// branch not taken, or the normal outputs of a node whose failure went
    /// to its error port).
    Disabled,
}

impl NodeStatus {
    /// Its name, as in JSON (`pending`, `completed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Retrying => "retrying",
            NodeStatus::Waiting => "waiting",
            NodeStatus::Completed => "completed",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
            NodeStatus::Cancelled => "cancelled",
            NodeStatus::Disabled => "disabled",
        }
    }

    /// True for the states a node never leaves.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            NodeStatus::Pending | NodeStatus::Running | NodeStatus::Retrying | NodeStatus::Waiting
        )
    }
}

/// The state of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Not finished.
    Running,
    /// Every node completed.
    Succeeded,
    /// At least one node failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl RunStatus {
    /// Its name, as in JSON (`running`, `succeeded`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The state of a dataflow (an edge) in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataflowStatus {
    /// Its source has not finished.
    Pending,
    /// Its value was delivered to the target's input.
    Completed,
    /// Its source failed or was skipped: no value will flow.
    Skipped,
    /// Its source did not take this way (a branch not taken, a normal output
    /// of a failed node with an error port, the error port of a node that
    /// succeeded): no value will flow, and that is not a failure.
    Disabled,
}

/// Severity of a task's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run started (or resumed).
    RunStarted {
        /// How many nodes the graph has.
        nodes: usize,
        /// True when the run continues after an interruption.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
        /// True for a preview (nothing with effects runs; nothing is stored).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        preview: bool,
    },
    /// The run ended.
    RunFinished {
        /// How it ended.
        status: RunStatus,
        /// Why, when it was not its nodes' doing: a limit (deadline, task
        /// cap), a cancel by a user, a component gone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A node changed state.
    Node {
        /// The node's id.
        node: String,
        /// Its new state.
        status: NodeStatus,
        /// The error, for `failed`, `skipped` and `cancelled`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// For `completed`: whether the output came from the cache.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cached: bool,
    },
    /// A dataflow changed state.
    Dataflow {
        /// The dataflow's index in the graph's `dataflows`.
        index: usize,
        /// Its new state.
        status: DataflowStatus,
    },
    /// A task reported progress.
    Progress {
        /// The node's id.
        node: String,
        /// In [0, 1].
        fraction: f32,
        /// Optional message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A task wrote a log line.
    Log {
        /// The node's id.
        node: String,
        /// Severity.
        level: LogLevel,
        /// The line.
        message: String,
    },
}

/// One numbered event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The run it belongs to (shared by every event of the run, not
    /// copied).
    pub run_id: std::sync::Arc<str>,
    /// 1, 2, 3, ... per run, without gaps.
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The most log and progress events one attempt of a node may emit; after
/// that, one notice says the rest was dropped.
pub const MAX_NODE_EVENTS: u32 = 1_000;
/// The most bytes of log and progress messages one attempt of a node may
/// emit (then the same notice).
pub const MAX_NODE_EVENT_BYTES: usize = 1 << 20;
/// A longer log line, progress message or task error is cut to this many
/// bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 << 10;

/// `message`, cut to [`MAX_MESSAGE_BYTES`] at a character boundary, with a
/// note saying so.
pub fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = message.len() - cut;
        message.truncate(cut);
        message.push_str(&format!("… ({dropped} more bytes dropped)"));
    }
    message
}

/// Emits the events of one node of a run: what a task's `log` and `progress`
/// imports write to. Bounded: at most [`MAX_NODE_EVENTS`] events and
/// [`MAX_NODE_EVENT_BYTES`] of messages per attempt, each message at most
/// [`MAX_MESSAGE_BYTES`]; a task that writes more gets one notice in its log
/// and the rest is dropped, so a plugin logging in a loop cannot grow the
/// host's memory or the store without bound.
#[derive(Clone)]
pub struct NodeEvents {
    sink: Sink,
    node: String,
    budget: Arc<Mutex<Budget>>,
    /// Whether progress goes through (not for the elements of a map, whose
    /// progress the map announces as a whole).
    progress: bool,
}

/// What a node's task has emitted so far.
#[derive(Default)]
struct Budget {
    events: u32,
    bytes: usize,
    exhausted: bool,
}

#[derive(Clone)]
enum Sink {
    /// The run's event log, on the host executing the run.
    Run(Arc<dyn EventSink>),
    /// Kept to be sent along with the result (a task executed for another
    /// host, which records them in the run's log).
    Kept(Arc<Mutex<Vec<EventKind>>>),
}

/// Where a run's events go: the runtime's event hub records each one (and
/// numbers, commits and publishes it).
pub trait EventSink: Send + Sync {
    /// Record an event of a running task (a log line, progress).
    fn emit(&self, kind: EventKind);
}

impl NodeEvents {
    /// Events of node `node`, going to `sink` (its run's event log).
    pub fn new(sink: Arc<dyn EventSink>, node: &str) -> Self {
        NodeEvents {
            sink: Sink::Run(sink),
            node: node.to_string(),
            budget: Arc::default(),
            progress: true,
        }
    }

    /// Events of node `node` kept in memory; [`NodeEvents::take`] returns them.
    pub fn kept(node: &str) -> Self {
        NodeEvents {
            sink: Sink::Kept(Arc::default()),
            node: node.to_string(),
            budget: Arc::default(),
            progress: true,
        }
    }

    /// The same events, sharing the same budget, without progress.
    pub fn without_progress(&self) -> Self {
        NodeEvents {
            progress: false,
            ..self.clone()
        }
    }

    /// The events kept so far (none when they go to a hub).
    pub fn take(&self) -> Vec<EventKind> {
        match &self.sink {
            Sink::Run(_) => Vec::new(),
            Sink::Kept(kept) => std::mem::take(&mut *lock(kept)),
        }
    }

    /// The node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Record events kept elsewhere (by the host that executed the task).
    pub fn forward(&self, events: Vec<EventKind>) {
        for kind in events {
            self.emit(kind);
        }
    }

    fn emit(&self, kind: EventKind) {
        match &self.sink {
            Sink::Run(sink) => sink.emit(kind),
            Sink::Kept(kept) => lock(kept).push(kind),
        }
    }

    /// Count an event of `bytes` against the budget: false when it is to be
    /// dropped (the first time, the notice is emitted instead).
    fn spend(&self, bytes: usize) -> bool {
        let notice = {
            let mut budget = lock(&self.budget);
            if budget.exhausted {
                return false;
            }
            if budget.events < MAX_NODE_EVENTS && budget.bytes + bytes <= MAX_NODE_EVENT_BYTES {
                budget.events += 1;
                budget.bytes += bytes;
                return true;
            }
            budget.exhausted = true;
            format!(
                "log and progress output truncated: this task emitted more than \
                 {MAX_NODE_EVENTS} events or {MAX_NODE_EVENT_BYTES} bytes; the rest is dropped"
            )
        };
        self.emit(EventKind::Log {
            node: self.node.clone(),
            level: LogLevel::Warn,
            message: notice,
        });
        false
    }

    /// A log line from the task.
    pub fn log(&self, level: LogLevel, message: String) {
        let message = bounded_message(message);
        if !self.spend(message.len()) {
            return;
        }
        self.emit(EventKind::Log {
            node: self.node.clone(),
            level,
            message,
        });
    }

    /// Progress from the task; `fraction` is clamped to [0, 1] (NaN reads as 0).
    pub fn progress(&self, fraction: f32, message: Option<String>) {
        if !self.progress {
            return;
        }
        let message = message.map(bounded_message);
        if !self.spend(message.as_ref().map_or(0, String::len)) {
            return;
        }
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self.emit(EventKind::Progress {
            node: self.node.clone(),
            fraction,
            message,
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a plain list inconsistent,
    // so a poisoned lock is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_their_json_names() {
        for s in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        use NodeStatus::*;
        for s in [
            Pending, Running, Retrying, Waiting, Completed, Failed, Skipped, Cancelled, Disabled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_flood_of_output_is_cut_with_one_notice() {
        let events = NodeEvents::kept("n");
        for _ in 0..MAX_NODE_EVENTS + 500 {
            events.log(LogLevel::Info, "line".into());
            events.progress(0.5, None);
        }
        let kept = events.take();
        assert_eq!(kept.len(), MAX_NODE_EVENTS as usize + 1);
        let notices: Vec<_> = kept
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    EventKind::Log {
                        level: LogLevel::Warn,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(notices.len(), 1, "one notice");
        // Bytes count too: 100 lines of 16 KiB fill the 1 MiB.
        let events = NodeEvents::kept("n");
        for _ in 0..200 {
            events.log(LogLevel::Info, "x".repeat(1 << 20));
        }
        let kept = events.take();
        let bytes: usize = kept
            .iter()
            .map(|e| match e {
                EventKind::Log { message, .. } => message.len(),
                _ => 0,
            })
            .sum();
        assert!(bytes <= MAX_NODE_EVENT_BYTES + 1024, "{bytes}");
        assert!(kept.len() < 100, "{}", kept.len());
        match &kept[0] {
            EventKind::Log { message, .. } => {
                assert!(message.len() < MAX_MESSAGE_BYTES + 64);
                assert!(message.ends_with("more bytes dropped)"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serializes_with_a_type_tag() {
        let event = Event {
            run_id: "r1".into(),
            seq: 7,
            time_ms: 1,
            kind: EventKind::Node {
                node: "a".into(),
                status: NodeStatus::Completed,
                error: None,
                cached: false,
            },
        };
        let v = serde_json::to_value(event).unwrap();
        assert_eq!(v["type"], "node");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["status"], "completed");
        assert!(v.get("cached").is_none());
    }

    #[test]
    fn kept_events_are_taken_once_and_progress_is_clamped() {
        let events = NodeEvents::kept("n");
        events.progress(f32::NAN, None);
        events.progress(7.0, Some("x".into()));
        events.log(LogLevel::Info, "hi".into());
        let taken = events.take();
        assert_eq!(taken.len(), 3);
        assert!(matches!(taken[0], EventKind::Progress { fraction, .. } if fraction == 0.0));
        assert!(matches!(taken[1], EventKind::Progress { fraction, .. } if fraction == 1.0));
        assert!(events.take().is_empty());
    }
}
