//! Group commit across callers: one fsync for the writes of many runs.
//!
//! Every write of the store is queued here. Whoever finds no writer at work
//! becomes it (on the blocking pool) and runs what is queued, each write in
//! its own transaction, so a write that fails rolls back only its own
//! changes. All but the last of a batch commit without an fsync
//! (`Durability::None`); the last commits durably, which makes the whole
//! batch durable (redb persists commits in order). Only then is each caller
//! answered: nothing is acknowledged before it is on disk. N runs committing
//! at once cost one fsync instead of N.
//!
//! Readers in this process see a write from its own commit, up to one fsync
//! before it is durable; whatever they do with it and write is committed
//! after it, so a crash never keeps a consequence without its cause.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use redb::{Database, Durability, WriteTransaction};

use crate::StoreError;

/// Writes taken in one batch at most (bounds a batch's latency).
const MAX_BATCH: usize = 256;

/// One queued write: run it in its own transaction with the durability
/// given; returns whether it committed and how to answer its caller once the
/// batch is durable (or not).
type Job = Box<dyn FnOnce(&Database, Durability) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Whether an applied write's batch became durable (see
/// [`GroupWriter::write_applied`]).
pub(super) type Synced = tokio::sync::oneshot::Receiver<Result<(), StoreError>>;

/// The write queue of one database.
#[derive(Default)]
pub(super) struct GroupWriter {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A writer is at work: it will take what is queued.
    writing: bool,
}

impl GroupWriter {
    /// Run `f` in a write transaction and answer once it is durable.
    pub(super) async fn write<T, E>(
        self: &Arc<Self>,
        db: &Arc<Database>,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.queue(db, f).await.map_err(|_| stopped())?
    }

    /// Queue `f` to run in a write transaction, after every write queued
    /// before it and before every write queued after it; the receiver
    /// answers once it is durable (closed if the writer stopped). For a
    /// caller that may go on before the write is even applied, as long as
    /// it reads nothing the write makes and acknowledges nothing before the
    /// answer.
    pub(super) fn queue<T, E>(
        self: &Arc<Self>,
        db: &Arc<Database>,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |db, durability| {
            let outcome = run(db, durability, f);
            let committed = outcome.is_ok();
            let reply: Reply = Box::new(move |durable| {
                let result = outcome.and_then(|out| durable.map(|()| out).map_err(E::from));
                let _ = answer.send(result);
            });
            (committed, reply)
        });
        self.submit(db, job);
        answered
    }

    /// Run `f` in a write transaction; answer with its result as soon as
    /// it is committed (visible to this process, ordered before every later
    /// write, not yet on disk), and with a receiver of whether its batch
    /// became durable. For a caller that may go on before the disk (what it
    /// writes next is committed after this) but must not acknowledge
    /// anything before.
    pub(super) async fn write_applied<T, E>(
        self: &Arc<Self>,
        db: &Arc<Database>,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    ) -> Result<(T, Synced), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (applied, on_applied) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let (durable, on_durable) = tokio::sync::oneshot::channel::<Result<(), StoreError>>();
        let job: Job = Box::new(move |db, durability| {
            let outcome = run(db, durability, f);
            let committed = outcome.is_ok();
            let _ = applied.send(outcome);
            let reply: Reply = Box::new(move |result| {
                let _ = durable.send(result);
            });
            (committed, reply)
        });
        self.submit(db, job);
        let out = on_applied.await.map_err(|_| E::from(stopped()))??;
        Ok((out, on_durable))
    }

    /// Queue `job`, starting a writer on the blocking pool unless one is
    /// at work (it takes what is queued).
    fn submit(self: &Arc<Self>, db: &Arc<Database>, job: Job) {
        let start = {
            let mut q = self.lock();
            q.jobs.push_back(job);
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            let (group, db) = (self.clone(), db.clone());
            tokio::task::spawn_blocking(move || group.drain(db));
        }
    }

    /// Write batches until the queue is empty.
    fn drain(&self, db: Arc<Database>) {
        let mut batch = self.take();
        while !batch.is_empty() {
            let answers = write_batch(&db, batch);
            batch = self.take();
            if batch.is_empty() {
                // Let the database go before the last answers: a caller may
                // close the store and open its file again at once.
                drop(db);
                answers.send();
                return;
            }
            answers.send();
        }
    }

    /// The next batch, or an empty one (and no writer at work any more).
    fn take(&self) -> Vec<Job> {
        let mut q = self.lock();
        let n = q.jobs.len().min(MAX_BATCH);
        let batch: Vec<Job> = q.jobs.drain(..n).collect();
        q.writing = !batch.is_empty();
        batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A queue and a flag: usable even if a holder panicked.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a caller whose write was dropped is told.
pub(super) fn stopped() -> StoreError {
    StoreError::backend("the store's writer stopped")
}

/// The answers to a batch's callers, once it is durable (or not).
struct Answers {
    replies: Vec<Reply>,
    durable: Result<(), StoreError>,
}

impl Answers {
    fn send(self) {
        for reply in self.replies {
            reply(self.durable.clone());
        }
    }
}

/// Run each job of `batch` in its own transaction, the last durably.
fn write_batch(db: &Database, batch: Vec<Job>) -> Answers {
    let last = batch.len() - 1;
    let mut replies = Vec::with_capacity(batch.len());
    let mut unsynced = false;
    for (i, job) in batch.into_iter().enumerate() {
        let durability = if i == last {
            Durability::Immediate
        } else {
            Durability::None
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(db, durability))) {
            Ok((committed, reply)) => {
                // A durable commit makes every earlier one durable too.
                if committed {
                    unsynced = i != last;
                }
                replies.push(reply);
            }
            // The job's caller sees its channel closed: "the writer stopped".
            Err(_) => tracing::error!("a store write panicked"),
        }
    }
    let durable = if unsynced { sync(db) } else { Ok(()) };
    Answers { replies, durable }
}

/// Make every earlier commit durable: an empty transaction committed durably.
fn sync(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(StoreError::caused_by)?;
    tx.commit().map_err(StoreError::caused_by)
}

fn run<T, E: From<StoreError>>(
    db: &Database,
    durability: Durability,
    f: impl FnOnce(&WriteTransaction) -> Result<T, E>,
) -> Result<T, E> {
    let mut tx = db.begin_write().map_err(StoreError::caused_by)?;
    tx.set_durability(durability)
        .map_err(StoreError::caused_by)?;
    let out = f(&tx)?;
    tx.commit().map_err(StoreError::caused_by)?;
    Ok(out)
}
