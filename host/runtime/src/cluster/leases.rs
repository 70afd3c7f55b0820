//! Run leases: which host executes a run when several share a store.
//!
//! Only the holder of a run's lease executes it. A lease lasts
//! [`RunLeases::duration`] unless renewed; the holder renews all of its
//! leases every third of that ([`RunLeases::heartbeat`]). A host that stops
//! renewing (it died, or lost the database) loses its runs to the first host
//! that claims them, and its own next commit to such a run is refused
//! (`RunLogError::LostLease`).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{Lease, RunStore, StoreError};

/// This host's side of run leasing.
#[derive(Clone)]
pub struct RunLeases {
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    host_id: String,
    duration: Duration,
}

impl RunLeases {
    /// Leases held by `host_id` in `store`, each lasting `duration`
    /// without a heartbeat.
    pub fn new(
        store: Arc<dyn RunStore>,
        clock: Arc<dyn Clock>,
        host_id: &str,
        duration: Duration,
    ) -> Self {
        RunLeases {
            store,
            clock,
            host_id: host_id.to_string(),
            duration,
        }
    }

    /// This host's id in leases.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// How long a lease lasts without a heartbeat.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How often the holder renews its leases: a third of their duration,
    /// so two missed heartbeats still leave the lease valid.
    pub fn heartbeat(&self) -> Duration {
        self.duration / 3
    }

    /// The lease to create a new run with, held by this host from now.
    pub fn fresh(&self) -> Lease {
        Lease {
            host: self.host_id.clone(),
            until_ms: self.until_ms(),
        }
    }

    /// Take the lease on `run_id` (a running run no other live host holds);
    /// true when this host holds it now. A store failure counts as not
    /// taken (logged): the run stays for whichever host can reach it.
    pub async fn take(&self, run_id: &str) -> bool {
        let now = self.clock.now_ms();
        match self
            .store
            .lease_run(run_id, &self.host_id, now, self.until_ms())
            .await
        {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(run_id, error = %e, "cannot lease run");
                false
            }
        }
    }

    /// Claim the oldest running runs, up to `limit`, whose leases are missing
    /// or expired (runs submitted to no host in particular, or whose host
    /// died).
    pub async fn claim(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now_ms();
        self.store
            .claim_runs(&self.host_id, now, self.until_ms(), limit)
            .await
    }

    /// Renew this host's leases on `runs`; returns those it lost to another
    /// host (their execution here must stop).
    pub async fn renew(&self, runs: &[String]) -> Result<Vec<String>, StoreError> {
        self.store
            .renew_leases(&self.host_id, runs, self.until_ms())
            .await
    }

    /// Give up the lease on `run_id`, so another host (or this one's next
    /// start) may continue it at once. A failure is logged: the lease then
    /// simply expires.
    pub async fn release(&self, run_id: &str) {
        if let Err(e) = self.store.release_run(run_id, &self.host_id).await {
            tracing::warn!(run_id, error = %e, "cannot release run lease; it expires instead");
        }
    }

    /// Wait up to `timeout` for a sign that a run may be free to claim.
    pub async fn wait_for_work(&self, timeout: Duration) {
        self.store.wait_for_work(timeout).await;
    }

    fn until_ms(&self) -> u64 {
        self.clock.now_ms() + self.duration.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{MemoryStore, NewRun, RunRecord, RunSpec};

    async fn running_run(store: &Arc<dyn RunStore>, id: &str) {
        let spec = RunSpec {
            graph: crate::graph::Graph::default(),
            origin: "g.json".into(),
            input: serde_json::json!({}),
            components: Default::default(),
        };
        let record = RunRecord::new(id, "g.json");
        store.create_run(NewRun::new(record, spec)).await.unwrap();
    }

    #[tokio::test]
    async fn a_lease_not_renewed_in_time_goes_to_the_claiming_host() {
        let store: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
        let clock = ManualClock::at(1_000);
        let lease = Duration::from_millis(300);
        let a = RunLeases::new(store.clone(), clock.clone(), "A", lease);
        let b = RunLeases::new(store.clone(), clock.clone(), "B", lease);
        running_run(&store, "r1").await;
        assert!(a.take("r1").await);
        assert!(b.claim(1).await.unwrap().is_empty(), "A holds it");
        clock.advance(a.heartbeat() * 2);
        assert_eq!(a.renew(&["r1".into()]).await.unwrap(), Vec::<String>::new());
        clock.advance(Duration::from_millis(301));
        assert_eq!(b.claim(1).await.unwrap(), vec!["r1"], "A stopped renewing");
        assert_eq!(
            a.renew(&["r1".into()]).await.unwrap(),
            vec!["r1".to_string()]
        );
        b.release("r1").await;
        assert!(a.take("r1").await, "released: free at once");
    }
}
