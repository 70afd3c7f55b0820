//! Instance permits shared fairly between users.
//!
//! The engine's instance pool is one resource for every run on the host. A
//! plain semaphore serves waiters in arrival order, so a user who queues
//! hundreds of long tasks holds every instance and everyone else waits
//! behind them. Here a freed permit goes to the waiting user who holds the
//! fewest (ties: whose oldest waiter came first), and a user may hold at
//! most `per_user` at once, however many are free. A user's own waiters are
//! served in order. Cost per release: one look at each waiting user.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Permits for `total` instances, at most `per_user` per user.
pub struct FairPermits {
    state: Mutex<State>,
    per_user: usize,
}

#[derive(Default)]
struct State {
    free: usize,
    held: HashMap<String, usize>,
    /// Per user, their waiters in arrival order: (arrival, where to send).
    waiting: HashMap<String, VecDeque<(u64, oneshot::Sender<Permit>)>>,
    arrivals: u64,
}

/// One instance permit, held by a user until dropped.
pub struct Permit {
    permits: Arc<FairPermits>,
    user: String,
}

impl FairPermits {
    /// `total` permits; a user holds at most `per_user` (`None`: any number).
    pub fn new(total: usize, per_user: Option<usize>) -> Arc<Self> {
        Arc::new(FairPermits {
            state: Mutex::new(State {
                free: total,
                ..State::default()
            }),
            per_user: per_user.unwrap_or(usize::MAX).max(1),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for a permit for `user`.
    pub async fn acquire(self: &Arc<Self>, user: &str) -> Permit {
        let rx = {
            let mut st = self.state();
            let held = st.held.get(user).copied().unwrap_or(0);
            let queued = st.waiting.get(user).is_some_and(|q| !q.is_empty());
            if st.free > 0 && held < self.per_user && !queued && st.waiting.is_empty() {
                return self.grant(&mut st, user);
            }
            let (tx, rx) = oneshot::channel();
            st.arrivals += 1;
            let arrival = st.arrivals;
            st.waiting
                .entry(user.to_string())
                .or_default()
                .push_back((arrival, tx));
            rx
        };
        self.dispatch();
        match rx.await {
            Ok(permit) => permit,
            // The sender is only dropped after sending.
            Err(_) => unreachable!("a waiter's sender is dropped only after sending"),
        }
    }

    fn grant(self: &Arc<Self>, st: &mut State, user: &str) -> Permit {
        st.free -= 1;
        *st.held.entry(user.to_string()).or_default() += 1;
        Permit {
            permits: self.clone(),
            user: user.to_string(),
        }
    }

    /// Hand free permits to waiters, fairest first.
    fn dispatch(self: &Arc<Self>) {
        let mut handed = Vec::new();
        {
            let mut st = self.state();
            while st.free > 0 {
                let Some(user) = self.next_user(&st) else {
                    break;
                };
                let queue = st
                    .waiting
                    .get_mut(&user)
                    .expect("next_user picks a waiting user");
                let (_, tx) = queue.pop_front().expect("waiting users have waiters");
                if queue.is_empty() {
                    st.waiting.remove(&user);
                }
                if tx.is_closed() {
                    continue; // the waiter gave up
                }
                let permit = self.grant(&mut st, &user);
                handed.push((tx, permit));
            }
        }
        // Outside the lock: a waiter that gave up meanwhile returns the
        // permit, whose drop dispatches again.
        for (tx, permit) in handed {
            drop(tx.send(permit));
        }
    }

    /// The waiting user below the cap holding the fewest permits; ties go
    /// to the user whose first waiter arrived first.
    fn next_user(&self, st: &State) -> Option<String> {
        st.waiting
            .iter()
            .filter_map(|(user, queue)| {
                let held = st.held.get(user).copied().unwrap_or(0);
                let first = queue.front()?.0;
                (held < self.per_user).then_some((held, first, user))
            })
            .min()
            .map(|(_, _, user)| user.clone())
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.state().free
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut st = self.permits.state();
            st.free += 1;
            if let Some(n) = st.held.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    st.held.remove(&self.user);
                }
            }
        }
        self.permits.dispatch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `fut` completes within a moment (it is polled, then dropped).
    async fn ready<T>(fut: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout(Duration::from_millis(20), fut)
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_freed_permit_goes_to_the_user_holding_fewest() {
        let p = FairPermits::new(2, None);
        let a1 = p.acquire("ann").await;
        let a2 = p.acquire("ann").await;
        // Ann queues many more; Bob arrives after them.
        let ann_waits: Vec<_> = (0..3)
            .map(|_| {
                tokio::spawn({
                    let p = p.clone();
                    async move { p.acquire("ann").await }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let bob = tokio::spawn({
            let p = p.clone();
            async move { p.acquire("bob").await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a1);
        let bob = ready(bob)
            .await
            .expect("bob is served before ann's queue")
            .unwrap();
        assert_eq!(bob.user, "bob");
        drop(a2);
        drop(bob);
        for w in ann_waits {
            drop(ready(w).await.expect("then ann's, in turn").unwrap());
        }
        assert_eq!(p.available(), 2);
    }

    #[tokio::test]
    async fn a_user_holds_at_most_the_cap_even_with_permits_free() {
        let p = FairPermits::new(4, Some(2));
        let _a = (p.acquire("ann").await, p.acquire("ann").await);
        assert!(ready(p.acquire("ann")).await.is_none(), "ann is at her cap");
        assert!(ready(p.acquire("bob")).await.is_some(), "bob is not");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_nothing() {
        let p = FairPermits::new(1, None);
        let held = p.acquire("ann").await;
        assert!(ready(p.acquire("bob")).await.is_none()); // gives up
        drop(held);
        assert_eq!(p.available(), 1, "the permit is not stuck with bob");
        drop(p.acquire("carl").await);
    }
}
