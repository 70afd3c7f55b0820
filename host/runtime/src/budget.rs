//! What a whole run may take ([`RunLimits`]: a deadline, a number of task
//! starts), shared by the run and everything it starts inside it (a map's
//! elements, a loop's iterations, a subgraph's nodes). Owns counting, the
//! deadline's timer and the reason a run was stopped for; it must not know
//! what a task is or how a run is scheduled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::graph::RunLimits;

/// A run's budget. Cancelling [`Budget::stop`] stops the run.
#[derive(Debug)]
pub struct Budget {
    max_tasks: Option<u64>,
    started: AtomicU64,
    over: OnceLock<String>,
    stop: CancellationToken,
}

impl Budget {
    /// The budget of a run submitted at `created_ms` under `limits`, which
    /// started `already` tasks before (a resumed run); stopped when `cancel`
    /// is. Its deadline is watched on `clock` until the run stops.
    pub fn new(
        limits: RunLimits,
        created_ms: u64,
        already: u64,
        cancel: &CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> Arc<Budget> {
        let budget = Arc::new(Budget {
            max_tasks: limits.max_tasks,
            started: AtomicU64::new(already),
            over: OnceLock::new(),
            stop: cancel.child_token(),
        });
        if let Some(timeout) = limits.timeout_ms {
            let deadline = created_ms.saturating_add(timeout);
            tokio::spawn(watch(budget.clone(), deadline, timeout, clock));
        }
        budget
    }

    /// The token that stops the run, for its limits or from outside.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Count one more task start: false, and the run stopped, when that is
    /// one more than it may start.
    pub fn take(&self) -> bool {
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        match self.max_tasks {
            Some(max) if n > max => {
                self.stop_for(format!(
                    "the run would start more than {max} tasks (`limits.max_tasks`)"
                ));
                false
            }
            _ => true,
        }
    }

    /// Why the run was stopped by its limits, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.over.get().map(String::as_str)
    }

    fn stop_for(&self, reason: String) {
        // The first limit reached is the reason.
        let _ = self.over.set(reason);
        self.stop.cancel();
    }
}

/// Stop `budget`'s run at `deadline_ms` by `clock`, unless it stops first.
async fn watch(budget: Arc<Budget>, deadline_ms: u64, timeout_ms: u64, clock: Arc<dyn Clock>) {
    loop {
        let left = deadline_ms.saturating_sub(clock.now_ms());
        if left == 0 {
            budget.stop_for(format!(
                "the run passed its deadline: {timeout_ms} ms after it was submitted \
                 (`limits.timeout_ms`)"
            ));
            return;
        }
        // Until the deadline (a clock moved by hand says: sooner).
        let wait = clock.recheck_in(deadline_ms);
        tokio::select! {
            () = budget.stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[tokio::test]
    async fn a_run_stops_at_its_task_cap_or_its_deadline_whichever_first() {
        let clock = ManualClock::at(10_000);
        let limits = RunLimits {
            timeout_ms: Some(5_000),
            max_tasks: Some(3),
        };
        let outside = CancellationToken::new();
        let b = Budget::new(limits, 9_000, 1, &outside, clock.clone());
        assert!(b.take() && b.take(), "two more after one before");
        assert!(!b.stop().is_cancelled());
        assert!(!b.take(), "a fourth");
        assert!(b.stop().is_cancelled());
        assert!(b.reason().unwrap().contains("more than 3 tasks"));

        let b = Budget::new(limits, 9_000, 0, &outside, clock.clone());
        clock.advance(Duration::from_millis(3_999));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!b.stop().is_cancelled(), "1 ms to go");
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), b.stop().cancelled())
            .await
            .expect("stopped at its deadline");
        assert!(
            b.reason()
                .unwrap()
                .contains("5000 ms after it was submitted")
        );

        // Stopped from outside: no reason of its own.
        let b = Budget::new(RunLimits::default(), 0, 0, &outside, clock);
        outside.cancel();
        assert!(b.stop().is_cancelled() && b.reason().is_none());
    }
}
