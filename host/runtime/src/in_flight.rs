//! The node executions a run has in flight.
//!
//! The first runs on the run's own task, polled by the run's driver; the
//! others are spawned on the runtime's worker threads, so independent nodes
//! use every core. A chain of quick tasks then never hands a node to another
//! thread and back: those two wake-ups and context switches were most of a
//! small task's cost. Knows nothing of nodes or runs: it runs futures.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::task::Poll;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinSet;

/// Futures in flight: one polled here, the rest on the runtime's workers.
pub(crate) struct InFlight<T> {
    local: Option<BoxFuture<'static, std::thread::Result<T>>>,
    spawned: JoinSet<T>,
}

impl<T: Send + 'static> InFlight<T> {
    pub(crate) fn new() -> Self {
        InFlight {
            local: None,
            spawned: JoinSet::new(),
        }
    }

    /// How many are in flight.
    pub(crate) fn len(&self) -> usize {
        self.spawned.len() + usize::from(self.local.is_some())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start `f`: here if nothing runs here, else on a worker.
    pub(crate) fn start(&mut self, f: impl Future<Output = T> + Send + 'static) {
        if self.local.is_none() {
            self.local = Some(AssertUnwindSafe(f).catch_unwind().boxed());
        } else {
            self.spawned.spawn(f);
        }
    }

    /// The next one to end: its output, or what it panicked with. `None`
    /// when none is in flight. Cancel-safe: what is in flight stays so.
    pub(crate) async fn next(&mut self) -> Option<Result<T, String>> {
        poll_fn(|cx| {
            if let Some(local) = &mut self.local
                && let Poll::Ready(ended) = local.as_mut().poll(cx)
            {
                self.local = None;
                return Poll::Ready(Some(ended.map_err(panic_message)));
            }
            match self.spawned.poll_join_next(cx) {
                Poll::Ready(Some(ended)) => Poll::Ready(Some(ended.map_err(|e| e.to_string()))),
                Poll::Ready(None) if self.local.is_none() => Poll::Ready(None),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_the_first_here_and_the_rest_on_workers() {
        let here = std::thread::current().id();
        let mut in_flight = InFlight::new();
        for i in 0..3 {
            in_flight.start(async move {
                tokio::task::yield_now().await;
                (i, std::thread::current().id())
            });
        }
        assert_eq!(in_flight.len(), 3);
        let mut ended = Vec::new();
        while let Some(out) = in_flight.next().await {
            ended.push(out.expect("no panic"));
        }
        ended.sort_by_key(|(i, _)| *i);
        assert_eq!(ended.len(), 3);
        assert_eq!(ended[0].1, here, "the first ran on this task's thread");
        assert!(in_flight.is_empty());
    }

    #[tokio::test]
    async fn a_panic_here_is_an_error_not_a_crash() {
        let mut in_flight = InFlight::new();
        in_flight.start(async { panic!("host bug") });
        in_flight.start(async { 7 });
        let mut outs = vec![in_flight.next().await, in_flight.next().await];
        outs.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outs,
            vec![Some(Err("host bug".to_string())), Some(Ok(7))],
            "both end, the panic as its message"
        );
        assert_eq!(in_flight.next().await, None);
    }
}
