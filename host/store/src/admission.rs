//! Admitting a new run: the rule every backend applies, written once.
//!
//! A backend looks up what the rule needs, inside the transaction that
//! records the run (the run already recorded under the same owner and
//! idempotency key; the owner's running runs, only when asked), calls
//! [`NewRun::admit`], and records the run only when it answers
//! [`Created::New`].

use crate::{Created, Lease, RunRecord, RunSpec};

/// A run to record ([`crate::RunLog::create_run`]), and how to admit it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewRun {
    /// The run's record.
    pub record: RunRecord,
    /// What it executes.
    pub spec: RunSpec,
    /// Lease the new run to this host at once (the host that will execute
    /// it), so no other host claims it first.
    pub lease: Option<Lease>,
    /// Refuse the run if its owner already has this many running runs
    /// (checked and recorded atomically, across every host sharing the store).
    pub max_running: Option<usize>,
}

impl NewRun {
    /// A run to record as it is: no lease, no quota.
    pub fn new(record: RunRecord, spec: RunSpec) -> Self {
        NewRun {
            record,
            spec,
            lease: None,
            max_running: None,
        }
    }

    /// Lease it to a host at once ([`NewRun::lease`]).
    pub fn leased(mut self, lease: Option<Lease>) -> Self {
        self.lease = lease;
        self
    }

    /// Refuse it over a running-runs quota ([`NewRun::max_running`]).
    pub fn at_most_running(mut self, max_running: Option<usize>) -> Self {
        self.max_running = max_running;
        self
    }

    /// The key of the idempotency index: owner, a unit separator, the key.
    pub(crate) fn idempotency_slot(&self) -> Option<String> {
        slot_of(&self.record)
    }

    /// Whether the run is certain to be recorded as new (unless the
    /// database fails): without an idempotency key or a quota, nothing can
    /// answer otherwise. Such a run may start before its record lands.
    pub(crate) fn is_certain(&self) -> bool {
        self.max_running.is_none() && self.record.idempotency_key.is_none()
    }

    /// Whether the rule needs the owner's running runs counted, given the
    /// run already recorded under the idempotency key (if any).
    pub(crate) fn needs_running_count(&self, existing: &Option<RunRecord>) -> bool {
        existing.is_none() && self.max_running.is_some()
    }

    /// The admission rule. A repeat of an earlier submission (same owner,
    /// same idempotency key) is answered with that run, whatever the quota:
    /// retrying a request that was admitted must not fail because the run it
    /// started is now running. Otherwise the run is refused when its owner
    /// already has `max_running` running runs. Otherwise it is recorded
    /// ([`Created::New`]). `running` is the owner's running runs, counted
    /// when [`NewRun::needs_running_count`] says so.
    pub(crate) fn admit(&self, existing: Option<RunRecord>, running: Option<usize>) -> Created {
        if let Some(existing) = existing {
            return Created::Existing(existing);
        }
        match (self.max_running, running) {
            (Some(max), Some(running)) if running >= max => Created::TooManyRunning { running },
            _ => Created::New,
        }
    }
}

/// Where the run's idempotency key is recorded: owner and key (none
/// without a key).
pub(crate) fn slot_of(record: &RunRecord) -> Option<String> {
    let key = record.idempotency_key.as_deref()?;
    let owner = record.owner.as_deref().unwrap_or("");
    Some(format!("{owner}\u{1f}{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_core::graph::Graph;

    fn new_run(key: Option<&str>, max: Option<usize>) -> NewRun {
        let mut record = RunRecord::new("r1", "g.json");
        record.owner = Some("ann".into());
        record.idempotency_key = key.map(str::to_string);
        let spec = RunSpec {
            graph: Graph::default(),
            origin: "g.json".into(),
            input: json!({}),
            components: Default::default(),
        };
        NewRun::new(record, spec).at_most_running(max)
    }

    #[test]
    fn a_repeat_is_answered_with_the_first_run_even_over_quota() {
        let run = new_run(Some("k"), Some(1));
        let first = RunRecord::new("r0", "g.json");
        assert!(!run.needs_running_count(&Some(first.clone())));
        assert_eq!(
            run.admit(Some(first.clone()), None),
            Created::Existing(first)
        );
    }

    #[test]
    fn the_quota_refuses_at_the_limit_and_admits_below_it() {
        let run = new_run(None, Some(2));
        assert!(run.needs_running_count(&None));
        assert_eq!(run.admit(None, Some(1)), Created::New);
        assert_eq!(
            run.admit(None, Some(2)),
            Created::TooManyRunning { running: 2 }
        );
    }

    #[test]
    fn without_a_quota_nothing_is_counted() {
        let run = new_run(Some("k"), None);
        assert!(!run.needs_running_count(&None));
        assert_eq!(run.admit(None, None), Created::New);
    }

    #[test]
    fn idempotency_keys_are_per_owner() {
        let mut other = new_run(Some("k"), None);
        other.record.owner = Some("bob".into());
        assert_ne!(
            new_run(Some("k"), None).idempotency_slot(),
            other.idempotency_slot()
        );
        assert_eq!(new_run(None, None).idempotency_slot(), None);
    }
}
