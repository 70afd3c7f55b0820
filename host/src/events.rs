//! Events: what happens during a run, as a numbered stream per run.
//!
//! Owns the [`Event`] type and the in-process fan-out ([`EventHub`]) that the
//! runner and the plugin host's `log`/`progress` imports emit into, and that the
//! progress display (and later the durable log and the daemon's SSE) consume.
//! It must not know how events are shown or stored.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The state of a node in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Waiting for its inputs.
    Pending,
    /// Its task is executing.
    Running,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Will not run because a node it depends on failed or was skipped.
    Skipped,
    /// Stopped (or never started) because the run was cancelled.
    Cancelled,
}

impl NodeStatus {
    /// True for the states a node never leaves.
    pub fn is_final(self) -> bool {
        !matches!(self, NodeStatus::Pending | NodeStatus::Running)
    }
}

/// The state of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// The state of a dataflow (an edge) in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataflowStatus {
    /// Its source has not finished.
    Pending,
    /// Its value was delivered to the target's input.
    Completed,
    /// Its source failed or was skipped: no value will flow.
    Skipped,
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
pub enum EventKind {
    /// The run started (or resumed).
    RunStarted {
        /// How many nodes the graph has.
        nodes: usize,
    },
    /// The run ended.
    RunFinished {
        /// How it ended.
        status: RunStatus,
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
    /// The run it belongs to.
    pub run_id: String,
    /// 1, 2, 3, ... per run, without gaps.
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Numbers a run's events and hands each one to every subscriber, in order.
///
/// Cheap to clone; every clone emits into the same sequence.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    run_id: String,
    state: Mutex<HubState>,
}

struct HubState {
    next_seq: u64,
    subscribers: Vec<mpsc::UnboundedSender<Event>>,
}

impl EventHub {
    /// A hub for `run_id` whose next event gets number `next_seq` (1 for a new
    /// run; one past the last stored event for a resumed run).
    pub fn new(run_id: &str, next_seq: u64) -> Self {
        EventHub {
            inner: Arc::new(HubInner {
                run_id: run_id.to_string(),
                state: Mutex::new(HubState {
                    next_seq,
                    subscribers: Vec::new(),
                }),
            }),
        }
    }

    /// The run this hub numbers events for.
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// Receive every event emitted from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().subscribers.push(tx);
        rx
    }

    /// Number `kind` and deliver it. Returns the event.
    pub fn emit(&self, kind: EventKind) -> Event {
        let mut state = self.lock();
        let event = Event {
            run_id: self.inner.run_id.clone(),
            seq: state.next_seq,
            time_ms: now_ms(),
            kind,
        };
        state.next_seq += 1;
        state.subscribers.retain(|s| s.send(event.clone()).is_ok());
        event
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while holding this lock cannot leave the state inconsistent
        // (it is a counter and a list), so a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Emits the events of one node of a run: what a task's `log` and `progress`
/// imports write to.
#[derive(Clone)]
pub struct NodeEvents {
    hub: EventHub,
    node: String,
}

impl NodeEvents {
    /// Events of node `node` in `hub`'s run.
    pub fn new(hub: EventHub, node: &str) -> Self {
        NodeEvents {
            hub,
            node: node.to_string(),
        }
    }

    /// The node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A log line from the task.
    pub fn log(&self, level: LogLevel, message: String) {
        self.hub.emit(EventKind::Log {
            node: self.node.clone(),
            level,
            message,
        });
    }

    /// Progress from the task; `fraction` is clamped to [0, 1] (NaN reads as 0).
    pub fn progress(&self, fraction: f32, message: Option<String>) {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self.hub.emit(EventKind::Progress {
            node: self.node.clone(),
            fraction,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_events_without_gaps_for_every_subscriber() {
        let hub = EventHub::new("r1", 1);
        let mut a = hub.subscribe();
        hub.emit(EventKind::RunStarted { nodes: 2 });
        let mut b = hub.subscribe();
        hub.clone().emit(EventKind::RunFinished {
            status: RunStatus::Succeeded,
        });
        assert_eq!(a.try_recv().unwrap().seq, 1);
        assert_eq!(a.try_recv().unwrap().seq, 2);
        assert_eq!(b.try_recv().unwrap().seq, 2);
        assert!(b.try_recv().is_err());
    }

    #[test]
    fn serializes_with_a_type_tag() {
        let hub = EventHub::new("r1", 7);
        let e = hub.emit(EventKind::Node {
            node: "a".into(),
            status: NodeStatus::Completed,
            error: None,
            cached: false,
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "node");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["status"], "completed");
        assert!(v.get("cached").is_none());
    }
}
