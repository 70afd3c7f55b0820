//! Sending a signal to a run ([`crate::Host::signal`]): which of its wait
//! nodes it is for, whether they take its body, and where it is stored.
//! A wait of the run's own graph takes signal `reply` as named; one inside
//! a subgraph's use (a loop's step, a map's element) takes it at its use
//! path (`chat[3]/reply`, [`weft_core::graph::UsePaths`]), which a plain
//! `reply` also reaches when exactly one such wait is waiting.

use std::collections::HashMap;

use crate::events::NodeStatus;
use crate::graph::{NodeKind, Plan, PlanNode, UsePaths};
use crate::store::{NodeRecord, Signal};

/// The longest use path a signal may name (`chat[3]/inner[0]/…`).
const MAX_PATH: usize = 1024;

/// The most names an error lists (a map of 100,000 elements may have as
/// many waits).
const MAX_LISTED: usize = 20;

/// `names`, comma-separated: the first [`MAX_LISTED`], then how many more.
fn listed<S: AsRef<str>>(names: &[S]) -> String {
    let mut out: Vec<&str> = names.iter().take(MAX_LISTED).map(AsRef::as_ref).collect();
    let more = names.len().saturating_sub(MAX_LISTED);
    let tail = format!("and {more} more");
    if more > 0 {
        out.push(&tail);
    }
    out.join(", ")
}

/// Why a signal was not taken ([`crate::Host::signal`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The name is not a signal name.
    #[error(
        "signal name \"{0}\" must be 1–128 of [A-Za-z0-9._-], after a use path such as `chat[3]/` if any"
    )]
    BadName(String),
    /// The run ended: nothing waits any more.
    #[error("run `{run_id}` already ended ({status}); it takes no signal")]
    RunEnded {
        /// The run.
        run_id: String,
        /// How it ended.
        status: &'static str,
    },
    /// No wait node of the run waits for this signal.
    #[error("run `{run_id}` has no wait node for signal \"{name}\" (it waits for: {known})")]
    NoWait {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
        /// The signals its wait nodes wait for, comma-separated.
        known: String,
    },
    /// Several waits inside uses wait for this signal: it must name one.
    #[error(
        "run `{run_id}` has several waits for signal \"{name}\" ({at}); name one with its use, as in `{example}`"
    )]
    Ambiguous {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
        /// The waits' use paths with the signal, comma-separated.
        at: String,
        /// The first of them.
        example: String,
    },
    /// Every wait node for this signal has ended (timed out, cancelled…).
    #[error("the wait nodes of run `{run_id}` for signal \"{name}\" have ended ({nodes})")]
    WaitEnded {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
        /// Each node and how it ended.
        nodes: String,
    },
    /// The body does not match the wait node's schema.
    #[error("signal \"{name}\" for node `{node}`: {problems}")]
    Body {
        /// The signal.
        name: String,
        /// The wait node whose schema refused it.
        node: String,
        /// What is wrong, located.
        problems: String,
    },
    /// A signal of this name was sent to the run already (the first stays).
    #[error("run `{run_id}` was already sent signal \"{name}\"; the first one stays")]
    AlreadySent {
        /// The run.
        run_id: String,
        /// The signal.
        name: String,
    },
    /// The run or its plan could not be read.
    #[error(transparent)]
    Host(#[from] crate::HostError),
}

impl From<crate::store::RunLogError> for SignalError {
    fn from(e: crate::store::RunLogError) -> Self {
        SignalError::Host(e.into())
    }
}

/// A signal taken: the wait nodes that will get it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignalSent {
    /// The run.
    pub run_id: String,
    /// The signal.
    pub name: String,
    /// The wait nodes for it that had not ended.
    pub nodes: Vec<String>,
}

impl crate::Host {
    /// Send signal `name` with `body` to running run `run_id` (from
    /// `sender`): checked against the schema of every wait node for it that
    /// has not ended, then stored, once; the run's waits take it at once
    /// (or when they are reached). The caller checks that `sender` may see
    /// the run.
    pub async fn signal(
        &self,
        run_id: &str,
        name: &str,
        body: serde_json::Value,
        sender: Option<&str>,
    ) -> Result<SignalSent, SignalError> {
        if !valid_name(name) {
            return Err(SignalError::BadName(name.to_string()));
        }
        let stored = self.store().load_run(run_id).await?;
        if stored.run.status != crate::events::RunStatus::Running {
            return Err(SignalError::RunEnded {
                run_id: run_id.to_string(),
                status: stored.run.status.as_str(),
            });
        }
        // The plan over today's plugins, else over those the run is pinned
        // to (a wait's settings are the graph's, not a plugin's).
        let plan = match self.plan(&stored.spec.graph, &stored.spec.origin) {
            Ok(plan) => plan,
            Err(_) => self.resume_plan(run_id, &stored.spec).await?,
        };
        let target = Target::find(&plan, &stored.nodes, run_id, name)?;
        target.check(&body)?;
        let signal = Signal {
            body,
            sent_ms: weft_core::clock::now_ms(),
            sender: sender.map(str::to_string),
        };
        let name = target.key;
        if !self.store().signal_put(run_id, &name, &signal).await? {
            return Err(SignalError::AlreadySent {
                run_id: run_id.to_string(),
                name,
            });
        }
        tracing::info!(run_id, signal = name, sender, "signal sent");
        Ok(SignalSent {
            run_id: run_id.to_string(),
            name,
            nodes: target.waits.into_iter().map(|(id, _)| id).collect(),
        })
    }
}

/// A signal name: a wait's (`reply`), or one at a use path
/// (`chat[3]/reply`).
fn valid_name(name: &str) -> bool {
    match name.rsplit_once('/') {
        None => crate::graph::valid_signal_name(name),
        Some((path, signal)) => {
            crate::graph::valid_signal_name(signal) && !path.is_empty() && path.len() <= MAX_PATH
        }
    }
}

/// A wait node, by its id in the run (`ask`, `chat[3]/ask`).
type WaitAt<'p> = (String, &'p PlanNode);

/// Where a signal goes: the name it is stored under, and the wait nodes
/// (by their ids in the run) that will take it.
struct Target<'p> {
    key: String,
    waits: Vec<WaitAt<'p>>,
}

impl<'p> Target<'p> {
    /// The open waits of run `run_id` (executing `plan`, its node states
    /// `stored`) for signal `name`, or why there are none.
    fn find(
        plan: &'p Plan,
        stored: &[NodeRecord],
        run_id: &str,
        name: &str,
    ) -> Result<Self, SignalError> {
        let states = States::of(stored);
        let uses = UsePaths::new(plan);
        let own = waits_for(plan, "", name);
        // A plain name is for the run's own waits, unless all of them have
        // ended and a wait inside a use waits for it.
        let own_open = own.iter().any(|(id, _)| states.ended(id).is_none());
        let (key, found) = match name.rsplit_once('/') {
            Some((path, signal)) => (name.to_string(), at_use(&uses, path, signal)),
            None if own_open => (name.to_string(), own),
            None => match waiting_for(&uses, stored, run_id, name)? {
                Some((key, wait)) => (key, vec![wait]),
                None => (name.to_string(), own),
            },
        };
        if found.is_empty() {
            return Err(no_wait(plan, stored, &uses, run_id, name));
        }
        let (open, closed): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|(id, _)| states.ended(id).is_none());
        if open.is_empty() {
            let nodes: Vec<String> = closed
                .iter()
                .map(|(id, _)| format!("{id}: {}", states.ended(id).unwrap_or_default()))
                .collect();
            return Err(SignalError::WaitEnded {
                run_id: run_id.to_string(),
                name: name.to_string(),
                nodes: listed(&nodes),
            });
        }
        Ok(Target { key, waits: open })
    }

    /// Whether every wait takes `body`: no `[timeout]`, and its schema.
    fn check(&self, body: &serde_json::Value) -> Result<(), SignalError> {
        let refused = |node: &str, problems: String| SignalError::Body {
            name: self.key.clone(),
            node: node.to_string(),
            problems,
        };
        if body.get(crate::graph::TIMEOUT_PORT).is_some() {
            let problem = format!(
                "`{}` is reserved for the wait's timeout",
                crate::graph::TIMEOUT_PORT
            );
            return Err(refused(&self.waits[0].0, problem));
        }
        for (id, node) in &self.waits {
            if let Err(violations) = node.task.output.check(body) {
                let problems: Vec<String> = violations.iter().map(ToString::to_string).collect();
                return Err(refused(id, problems.join("; ")));
            }
        }
        Ok(())
    }
}

/// The wait nodes of `plan` for `signal`, with their ids in the run (under
/// use path `path`, if any).
fn waits_for<'p>(plan: &'p Plan, path: &str, signal: &str) -> Vec<WaitAt<'p>> {
    plan.nodes
        .iter()
        .filter(|n| matches!(&n.kind, NodeKind::Wait(spec) if spec.signal == signal))
        .map(|n| match path {
            "" => (n.id.clone(), n),
            _ => (format!("{path}/{}", n.id), n),
        })
        .collect()
}

/// The waits for `signal` in the use at `path`, if it is one.
fn at_use<'p>(uses: &UsePaths<'p>, path: &str, signal: &str) -> Vec<WaitAt<'p>> {
    let probe = format!("{path}/");
    match uses.read(&probe) {
        Some(reached) if reached.rest.is_empty() => waits_for(reached.body, path, signal),
        _ => Vec::new(),
    }
}

/// The waits inside uses that wait now, each with the signal's name at its
/// use (`chat[3]/reply`), its id in the run and its node.
fn waiting_in_uses<'a, 'p>(
    uses: &'a UsePaths<'p>,
    stored: &'a [NodeRecord],
) -> impl Iterator<Item = (String, WaitAt<'p>)> + 'a {
    stored
        .iter()
        .filter(|r| r.status == NodeStatus::Waiting)
        .filter_map(|r| {
            let reached = uses.read(&r.node)?;
            let node = reached.node?;
            let NodeKind::Wait(spec) = &node.kind else {
                return None;
            };
            Some((
                format!("{}/{}", reached.path, spec.signal),
                (r.node.clone(), node),
            ))
        })
}

/// The wait inside a use that is waiting for `signal` now, with the
/// signal's name at its use, if there is one; several: the signal must
/// name its use.
fn waiting_for<'p>(
    uses: &UsePaths<'p>,
    stored: &[NodeRecord],
    run_id: &str,
    signal: &str,
) -> Result<Option<(String, WaitAt<'p>)>, SignalError> {
    let at_use = |key: &String| key.rsplit_once('/').is_some_and(|(_, s)| s == signal);
    let mut found: Vec<(String, WaitAt<'p>)> = waiting_in_uses(uses, stored)
        .filter(|(key, _)| at_use(key))
        .collect();
    if found.len() > 1 {
        let at: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
        return Err(SignalError::Ambiguous {
            run_id: run_id.to_string(),
            name: signal.to_string(),
            example: at[0].to_string(),
            at: listed(&at),
        });
    }
    Ok(found.pop())
}

/// The run's node states, by node id.
struct States<'s>(HashMap<&'s str, NodeStatus>);

impl<'s> States<'s> {
    fn of(stored: &'s [NodeRecord]) -> Self {
        States(stored.iter().map(|r| (r.node.as_str(), r.status)).collect())
    }

    /// How wait `id` ended, if it did: by its own state; or, when it has
    /// none yet (a wait inside a use not reached), by that of the use it
    /// is in (`m[0]` for `m[0]/ask`). A wait that waits is open, whatever
    /// an earlier attempt of its use left.
    fn ended(&self, id: &str) -> Option<&'static str> {
        if let Some(status) = self.0.get(id) {
            return status.is_final().then(|| status.as_str());
        }
        let (use_id, _) = id.split_once("]/")?;
        let first_use = format!("{use_id}]");
        let status = self.0.get(first_use.as_str())?;
        status.is_final().then(|| status.as_str())
    }
}

/// Why no wait of the run takes signal `name`: the signals it waits for.
fn no_wait(
    plan: &Plan,
    stored: &[NodeRecord],
    uses: &UsePaths<'_>,
    run_id: &str,
    name: &str,
) -> SignalError {
    let mut known: Vec<String> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Wait(spec) => Some(spec.signal.clone()),
            _ => None,
        })
        .collect();
    known.extend(waiting_in_uses(uses, stored).map(|(key, _)| key));
    known.sort_unstable();
    known.dedup();
    SignalError::NoWait {
        run_id: run_id.to_string(),
        name: name.to_string(),
        known: if known.is_empty() {
            "nothing".into()
        } else {
            listed(&known)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: &str, status: NodeStatus) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            status,
            attempt: 1,
            output: None,
            error: None,
            retry_at_ms: None,
            wait_until_ms: None,
        }
    }

    #[test]
    fn a_wait_that_waits_is_open_whatever_its_use_left_before() {
        let stored = [
            record("m[0]", NodeStatus::Failed),
            record("m[0]/ask", NodeStatus::Waiting),
            record("m[1]", NodeStatus::Completed),
            record("ask", NodeStatus::Completed),
        ];
        let states = States::of(&stored);
        // Run again after its use failed: it waits, so it is open.
        assert_eq!(states.ended("m[0]/ask"), None);
        // Not reached, in a use that ended: ended as the use did.
        assert_eq!(states.ended("m[1]/ask"), Some("completed"));
        // Not reached, in a use not started: open.
        assert_eq!(states.ended("m[2]/ask"), None);
        assert_eq!(states.ended("ask"), Some("completed"));
    }

    #[test]
    fn lists_in_errors_are_capped() {
        let names: Vec<String> = (0..25).map(|k| format!("m[{k}]/ok")).collect();
        let shown = listed(&names);
        assert!(shown.starts_with("m[0]/ok, m[1]/ok"), "{shown}");
        assert!(shown.ends_with("m[19]/ok, and 5 more"), "{shown}");
    }
}
