//! An in-memory [`RunStore`]: for ephemeral runs and tests. Nothing survives the
//! process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Commit, NodeRecord, RunRecord, RunSpec, RunStore, StoreError, StoredRun};
use crate::events::{Event, now_ms};

#[derive(Default)]
struct Runs {
    runs: BTreeMap<String, RunRecord>,
    specs: BTreeMap<String, RunSpec>,
    nodes: BTreeMap<(String, String), NodeRecord>,
    events: BTreeMap<(String, u64), Event>,
}

/// Runs kept in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Runs>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, run: RunRecord, spec: RunSpec) -> Result<(), StoreError> {
        let mut runs = self.lock();
        runs.specs.insert(run.run_id.clone(), spec);
        runs.runs.insert(run.run_id.clone(), run);
        Ok(())
    }

    async fn commit(&self, run_id: &str, commit: Commit) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let runs = &mut *runs;
        let run = runs
            .runs
            .get_mut(run_id)
            .ok_or_else(|| StoreError::UnknownRun(run_id.to_string()))?;
        if let Some(status) = commit.status {
            run.status = status;
            run.updated_ms = now_ms();
        }
        for node in commit.nodes {
            runs.nodes
                .insert((run_id.to_string(), node.node.clone()), node);
        }
        for e in commit.events {
            runs.events.insert((run_id.to_string(), e.seq), e);
        }
        Ok(())
    }

    async fn load_run(&self, run_id: &str) -> Result<StoredRun, StoreError> {
        let runs = self.lock();
        let run = runs
            .runs
            .get(run_id)
            .cloned()
            .ok_or_else(|| StoreError::UnknownRun(run_id.to_string()))?;
        let spec = runs
            .specs
            .get(run_id)
            .cloned()
            .ok_or_else(|| StoreError::UnknownRun(run_id.to_string()))?;
        let nodes = runs
            .nodes
            .range((run_id.to_string(), String::new())..)
            .take_while(|((r, _), _)| r == run_id)
            .map(|(_, n)| n.clone())
            .collect();
        let last = runs
            .events
            .range((run_id.to_string(), 0)..=(run_id.to_string(), u64::MAX))
            .next_back()
            .map_or(0, |((_, seq), _)| *seq);
        Ok(StoredRun {
            run,
            spec,
            nodes,
            next_seq: last + 1,
        })
    }

    async fn list_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut all: Vec<RunRecord> = self.lock().runs.values().cloned().collect();
        all.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then(b.run_id.cmp(&a.run_id))
        });
        Ok(all)
    }

    async fn events(&self, run_id: &str, after: u64) -> Result<Vec<Event>, StoreError> {
        let runs = self.lock();
        Ok(runs
            .events
            .range((run_id.to_string(), after.saturating_add(1))..=(run_id.to_string(), u64::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }
}
