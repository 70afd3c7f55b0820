//! The event hub: a run's write path. Numbers the run's events, commits them
//! to the run's store together with the state changes they describe (group
//! commit), and only then publishes them to subscribers (the progress
//! display, the daemon's SSE, metrics). The event types themselves are
//! [`weft_core::event`]'s, re-exported here.

use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::mpsc;

pub use weft_core::event::*;

use crate::store::{CachePut, Commit, NodeInput, NodeRecord, RunLogError, RunStore, StoreError};
use weft_core::clock::now_ms;

/// A run's event log: numbers events, makes them durable in the run's store
/// together with the state changes they describe, and only then hands them to
/// every subscriber, in order.
///
/// Changes are *recorded* without waiting ([`EventHub::record`]); a committer
/// task writes everything recorded since its last transaction in one
/// transaction (group commit) and then publishes it. [`EventHub::sync`] waits
/// until a recorded change is durable. Cheap to clone; every clone writes into
/// the same sequence.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    run_id: Arc<str>,
    store: Option<Arc<dyn RunStore>>,
    /// For a subgraph's run: the hub of the run it is part of, which
    /// writes the subgraph's output-cache entries.
    parent: Option<EventHub>,
    pending: Mutex<Pending>,
    /// Wakes the committer; shared with it so it can notice the hub is gone.
    wake: Arc<tokio::sync::Notify>,
    /// How many records are durable (and published).
    committed: tokio::sync::watch::Sender<Committed>,
    committer: std::sync::Once,
    subscribers: Mutex<Subscribers>,
}

/// Who receives the run's events, and how far publishing has got.
struct Subscribers {
    list: Vec<Subscriber>,
    /// The sequence number of the last event published (or, for a run
    /// resumed, committed before this hub existed).
    published: u64,
    /// Whether the run's end (`run_finished`) was published.
    ended: bool,
}

/// A bounded subscription to a hub ([`EventHub::subscribe_bounded`]).
pub struct Subscription {
    /// The events published from now on.
    pub events: mpsc::Receiver<Event>,
    /// The sequence number of the last event published before: those up
    /// to it are in the store's log, none after it.
    pub published: u64,
    /// Whether the run's end was among them.
    pub ended: bool,
}

/// Where published events go.
enum Subscriber {
    /// An in-process consumer that keeps up (metrics, a progress display).
    Unbounded(mpsc::UnboundedSender<Event>),
    /// A consumer that may stop reading (a remote client): dropped when its
    /// buffer is full, and then reads the rest from the durable log.
    Bounded(mpsc::Sender<Event>),
}

impl Subscriber {
    /// Hand `event` over; false when this subscriber is gone or dropped.
    fn send(&self, event: &Event) -> bool {
        match self {
            Subscriber::Unbounded(tx) => tx.send(event.clone()).is_ok(),
            Subscriber::Bounded(tx) => tx.try_send(event.clone()).is_ok(),
        }
    }
}

impl Drop for HubInner {
    fn drop(&mut self) {
        // Let the committer see the hub is gone and stop.
        self.wake.notify_one();
    }
}

#[derive(Default)]
struct Pending {
    next_seq: u64,
    recorded: u64,
    nodes: Vec<NodeRecord>,
    status: Option<RunStatus>,
    events: Vec<Event>,
    cache: Vec<CachePut>,
    inputs: Vec<NodeInput>,
    /// Something recorded since the last commit is more than tasks starting
    /// (or someone waits for it): commit it at once.
    urgent: bool,
}

/// How long a commit holding only tasks' starts waits for more. A short
/// task's start and end then share one commit (and store statement)
/// instead of two in a row; a long task's start is published this much
/// later. Anyone waiting for durability ([`EventHub::sync`]) cuts it short.
const START_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Whether `kind` only says that the run or one of its tasks started.
fn is_start(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::RunStarted { .. }
            | EventKind::Node {
                status: NodeStatus::Running,
                ..
            }
    )
}

#[derive(Clone, Default)]
struct Committed {
    records: u64,
    /// The first store failure: every later change is refused with it.
    failed: Option<RunLogError>,
}

/// Identifies one recorded change, to [`EventHub::sync`] on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl EventHub {
    /// A hub for `run_id` that keeps nothing (events go to subscribers only),
    /// whose next event gets number `next_seq`.
    pub fn new(run_id: &str, next_seq: u64) -> Self {
        Self::build(run_id, next_seq, None, None)
    }

    /// A hub for `run_id` whose events and state changes are committed to `store`
    /// before anyone sees them. `next_seq` is one past the run's last stored event.
    pub fn with_store(run_id: &str, next_seq: u64, store: Arc<dyn RunStore>) -> Self {
        Self::build(run_id, next_seq, Some(store), None)
    }

    /// A hub for a subgraph's run `run_id` inside `parent`'s run: its events
    /// go to subscribers only; its output-cache entries are staged on
    /// `parent`, written with its next commit.
    pub fn nested(run_id: &str, parent: &EventHub) -> Self {
        Self::build(run_id, 1, None, Some(parent.clone()))
    }

    fn build(
        run_id: &str,
        next_seq: u64,
        store: Option<Arc<dyn RunStore>>,
        parent: Option<EventHub>,
    ) -> Self {
        EventHub {
            inner: Arc::new(HubInner {
                run_id: run_id.into(),
                store,
                parent,
                pending: Mutex::new(Pending {
                    next_seq: next_seq.max(1),
                    ..Pending::default()
                }),
                wake: Arc::new(tokio::sync::Notify::new()),
                committed: tokio::sync::watch::Sender::new(Committed::default()),
                committer: std::sync::Once::new(),
                subscribers: Mutex::new(Subscribers {
                    list: Vec::new(),
                    published: next_seq.max(1) - 1,
                    ended: false,
                }),
            }),
        }
    }

    /// The store the run is recorded in, if it is.
    pub fn store(&self) -> Option<&Arc<dyn RunStore>> {
        self.inner.store.as_ref()
    }

    /// The run this hub numbers events for.
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The hub of the outermost run this hub's run is part of, and this
    /// run's place in it: the use path of a subgraph's run (`chat[3]`,
    /// `chat[3]/inner[0]`), empty for the outermost run itself.
    pub fn outermost(&self) -> (&EventHub, &str) {
        let mut hub = self;
        while let Some(parent) = &hub.inner.parent {
            hub = parent;
        }
        let path = self
            .run_id()
            .strip_prefix(hub.run_id())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or("");
        (hub, path)
    }

    /// Receive every event published from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.subscribers)
            .list
            .push(Subscriber::Unbounded(tx));
        rx
    }

    /// Receive the events published from now on while at most `capacity`
    /// wait unread: a receiver that falls further behind is dropped (its
    /// channel closes) and should read on from the store's event log; with
    /// how far publishing had got.
    pub fn subscribe_bounded(&self, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut subscribers = lock(&self.inner.subscribers);
        subscribers.list.push(Subscriber::Bounded(tx));
        Subscription {
            events: rx,
            published: subscribers.published,
            ended: subscribers.ended,
        }
    }

    /// Record new states of `nodes`, the run's new `status` and the events
    /// `kinds`, to be committed together (with whatever else is recorded
    /// meanwhile) and then published. Does not wait: [`EventHub::sync`] on the
    /// ticket to know it is durable. Must be called within a tokio runtime.
    pub fn record(
        &self,
        nodes: Vec<NodeRecord>,
        status: Option<RunStatus>,
        kinds: Vec<EventKind>,
    ) -> Ticket {
        let ticket = {
            let mut p = lock(&self.inner.pending);
            let time_ms = now_ms();
            p.urgent |= status.is_some()
                || nodes.iter().any(|n| n.status != NodeStatus::Running)
                || kinds.iter().any(|k| !is_start(k));
            for kind in kinds {
                let seq = p.next_seq;
                p.next_seq += 1;
                p.events.push(Event {
                    run_id: self.inner.run_id.clone(),
                    seq,
                    time_ms,
                    kind,
                });
            }
            p.nodes.extend(nodes);
            if status.is_some() {
                p.status = status;
            }
            p.recorded += 1;
            Ticket(p.recorded)
        };
        self.inner.committer.call_once(|| {
            tokio::spawn(commit_loop(
                Arc::downgrade(&self.inner),
                self.inner.wake.clone(),
            ));
        });
        self.inner.wake.notify_one();
        ticket
    }

    /// Wait until the change behind `ticket` (and everything recorded before it)
    /// is durable and published.
    pub async fn sync(&self, ticket: Ticket) -> Result<(), RunLogError> {
        let mut rx = self.inner.committed.subscribe();
        if rx.borrow().records < ticket.0 {
            lock(&self.inner.pending).urgent = true;
            self.inner.wake.notify_one();
        }
        let state = rx
            .wait_for(|c| c.records >= ticket.0 || c.failed.is_some())
            .await
            .map_err(|_| StoreError::backend("the event committer stopped"))?;
        match &state.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Record and wait until durable: [`EventHub::record`] then [`EventHub::sync`].
    pub async fn commit(
        &self,
        nodes: Vec<NodeRecord>,
        status: Option<RunStatus>,
        kinds: Vec<EventKind>,
    ) -> Result<(), RunLogError> {
        let ticket = self.record(nodes, status, kinds);
        self.sync(ticket).await
    }

    /// Stage outputs for the output cache: they are written with the next
    /// commit (use [`EventHub::record`] right after for the change they belong to).
    pub fn stage_cache(&self, puts: Vec<CachePut>) {
        match &self.inner.parent {
            Some(parent) => parent.stage_cache(puts),
            None => lock(&self.inner.pending).cache.extend(puts),
        }
    }

    /// Stage the inputs nodes start with: written with the next commit (use
    /// [`EventHub::record`] right after, for their `running` states). A hub
    /// that keeps nothing (a preview's, a subgraph's) drops them.
    pub fn stage_inputs(&self, inputs: Vec<NodeInput>) {
        if self.inner.store.is_some() {
            lock(&self.inner.pending).inputs.extend(inputs);
        }
    }

    /// Record an event from a running task (a log line, progress).
    pub fn buffer(&self, kind: EventKind) {
        self.record(Vec::new(), None, vec![kind]);
    }

    /// The first store failure, if any: the run cannot go on durably.
    pub fn failure(&self) -> Option<RunLogError> {
        self.inner.committed.borrow().failed.clone()
    }
}

/// Commit what is pending, in order, until the hub is dropped.
async fn commit_loop(hub: std::sync::Weak<HubInner>, wake: Arc<tokio::sync::Notify>) {
    loop {
        wake.notified().await;
        let Some(inner) = hub.upgrade() else { break };
        // Only tasks' starts are new (not a wake-up with nothing new, as
        // after a commit that a sync asked for): wait for more.
        let linger = {
            let p = lock(&inner.pending);
            !p.urgent && p.recorded > inner.committed.borrow().records
        };
        if linger {
            tokio::select! {
                _ = tokio::time::sleep(START_LINGER) => {}
                _ = wake.notified() => {}
            }
        }
        let (upto, commit) = {
            let mut p = lock(&inner.pending);
            p.urgent = false;
            let commit = Commit {
                nodes: std::mem::take(&mut p.nodes),
                status: p.status.take(),
                events: std::mem::take(&mut p.events),
                cache: std::mem::take(&mut p.cache),
                inputs: std::mem::take(&mut p.inputs),
            };
            (p.recorded, commit)
        };
        if inner.committed.borrow().records >= upto || inner.committed.borrow().failed.is_some() {
            continue;
        }
        let events = commit.events.clone();
        let result = match &inner.store {
            Some(store) => store.commit(&inner.run_id, commit).await,
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                let mut subscribers = lock(&inner.subscribers);
                subscribers
                    .list
                    .retain(|s| events.iter().all(|e| s.send(e)));
                if let Some(last) = events.last() {
                    subscribers.published = last.seq;
                }
                subscribers.ended |= events
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::RunFinished { .. }));
                inner.committed.send_modify(|c| c.records = upto);
            }
            Err(e) => {
                tracing::error!(run = %inner.run_id, error = %e, "cannot commit the run's changes");
                inner.committed.send_modify(|c| c.failed = Some(e));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data
    // inconsistent (plain lists and counters), so a poisoned lock is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EventSink for EventHub {
    fn emit(&self, kind: EventKind) {
        self.buffer(kind);
    }
}

impl EventHub {
    /// What node `node`'s task writes its logs and progress to.
    pub fn node_events(&self, node: &str) -> NodeEvents {
        NodeEvents::new(Arc::new(self.clone()), node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node `n` entering `status`: its record and its event.
    fn node_in(status: NodeStatus) -> (Vec<NodeRecord>, Vec<EventKind>) {
        let record = NodeRecord {
            node: "n".into(),
            status,
            attempt: 1,
            output: None,
            error: None,
            retry_at_ms: None,
            wait_until_ms: None,
        };
        let event = EventKind::Node {
            node: "n".into(),
            status,
            error: None,
            cached: false,
        };
        (vec![record], vec![event])
    }

    /// Let the committer run as far as it can without the clock moving.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_subscriber_learns_how_far_the_log_was_published() {
        // A resumed run: events before 10 were committed by another process.
        let hub = EventHub::new("r1", 10);
        assert_eq!(hub.subscribe_bounded(8).published, 9);
        let (nodes, events) = node_in(NodeStatus::Completed);
        hub.commit(nodes, None, events).await.unwrap();
        let mut sub = hub.subscribe_bounded(8);
        assert_eq!((sub.published, sub.ended), (10, false));
        let end = EventKind::RunFinished {
            status: RunStatus::Succeeded,
            reason: None,
        };
        hub.commit(vec![], Some(RunStatus::Succeeded), vec![end])
            .await
            .unwrap();
        assert_eq!(
            sub.events.recv().await.unwrap().seq,
            11,
            "the rest comes live"
        );
        let after = hub.subscribe_bounded(8);
        assert_eq!((after.published, after.ended), (11, true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_tasks_start_and_end_share_one_commit() {
        let hub = EventHub::new("r1", 1);
        let mut seen = hub.subscribe();
        let (nodes, events) = node_in(NodeStatus::Running);
        hub.record(nodes, None, events);
        settle().await;
        assert!(seen.try_recv().is_err(), "a start alone waits for more");
        let (nodes, events) = node_in(NodeStatus::Completed);
        let end = hub.record(nodes, None, events);
        hub.sync(end).await.unwrap();
        let (start, end) = (seen.try_recv().unwrap(), seen.try_recv().unwrap());
        assert_eq!((start.seq, end.seq), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_tasks_start_is_published_within_the_linger() {
        let hub = EventHub::new("r1", 1);
        let mut seen = hub.subscribe();
        let (nodes, events) = node_in(NodeStatus::Running);
        hub.record(nodes, None, events);
        tokio::time::sleep(START_LINGER * 2).await;
        assert_eq!(seen.try_recv().unwrap().seq, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_start_to_be_durable_cuts_the_linger_short() {
        let hub = EventHub::new("r1", 1);
        let (nodes, events) = node_in(NodeStatus::Running);
        let start = hub.record(nodes, None, events);
        let before = tokio::time::Instant::now();
        hub.sync(start).await.unwrap();
        assert_eq!(tokio::time::Instant::now(), before, "no time passed");
    }

    #[tokio::test]
    async fn a_bounded_subscriber_that_falls_behind_is_dropped_not_buffered() {
        let hub = EventHub::new("r1", 1);
        let mut slow = hub.subscribe_bounded(2).events;
        let mut fast = hub.subscribe();
        let started = || EventKind::RunStarted {
            nodes: 1,
            resumed: false,
            preview: false,
        };
        hub.commit(vec![], None, (0..5).map(|_| started()).collect())
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Some(e) = slow.recv().await {
            seen.push(e.seq);
        }
        assert_eq!(seen, vec![1, 2], "its buffer's worth, then closed");
        for seq in 1..=5 {
            assert_eq!(fast.recv().await.unwrap().seq, seq, "others get everything");
        }
    }

    #[tokio::test]
    async fn numbers_events_without_gaps_for_every_subscriber() {
        let hub = EventHub::new("r1", 1);
        let mut a = hub.subscribe();
        hub.commit(
            vec![],
            None,
            vec![EventKind::RunStarted {
                nodes: 2,
                resumed: false,
                preview: false,
            }],
        )
        .await
        .unwrap();
        let mut b = hub.subscribe();
        hub.buffer(EventKind::Log {
            node: "n".into(),
            level: LogLevel::Info,
            message: "x".into(),
        });
        hub.clone()
            .commit(
                vec![],
                None,
                vec![EventKind::RunFinished {
                    status: RunStatus::Succeeded,
                    reason: None,
                }],
            )
            .await
            .unwrap();
        assert_eq!(a.try_recv().unwrap().seq, 1);
        let log = a.try_recv().unwrap();
        assert_eq!(
            (log.seq, matches!(log.kind, EventKind::Log { .. })),
            (2, true)
        );
        assert_eq!(a.try_recv().unwrap().seq, 3);
        assert_eq!(b.try_recv().unwrap().seq, 2);
    }
}
