//! `GET /v1/runs/{id}/events`: a run's events as Server-Sent Events, each with
//! its sequence number as the SSE `id`. Events come from the durable log, so a
//! client reconnecting with `Last-Event-ID` (or `?after=N`) gets every later
//! event exactly once, also after a daemon restart. Live events of a run
//! executing here are pushed as they are committed; otherwise the log is
//! polled. The stream ends after the run's final event.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::mpsc;

use super::AppState;
use super::auth::{User, owned_by, visible_run};
use super::error::ApiError;
use crate::types::{ErrorBody, EventsQuery};
use weft::events::{Event, EventKind, RunStatus};

/// Live events waiting unread for one stream; a client that falls further
/// behind reads on from the log instead.
const LIVE_BUFFER: usize = 1024;
/// How often the log is read for a run not executing in this process.
const POLL: Duration = Duration::from_millis(200);
/// A polling stream reads the run's status every this many polls (about 5 s).
const STATUS_EVERY: u32 = 25;

/// Follow a run's events as Server-Sent Events (`id` = sequence number,
/// `data` = a `RunEvent`), from the start or after `Last-Event-ID`; the
/// stream ends after the run's final event.
#[utoipa::path(
    get, path = "/runs/{id}/events", tag = "runs",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence number"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Last-Event-ID or `after` is not a sequence number", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "The user has as many event streams open as allowed", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let q = super::api::parse_query(query)?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID must be an event sequence number",
                )
            })?,
        None => q.after.unwrap_or(0),
    };
    // Checks the run exists and is the user's: a run executing here from
    // what the host holds, any other from the store.
    let (visible, status) = match state.runs.owner_here(&id) {
        Some(owner) => (owned_by(owner.as_deref(), &user), RunStatus::Running),
        None => {
            let run = state.host.store().run_record(&id).await?;
            (visible_run(&run, &user), run.status)
        }
    };
    if !visible {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run `{id}`"),
        ));
    }
    let slot = state.streams.open(&user.0)?;
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(async move {
        let _slot = slot;
        let shutdown = state.shutdown.clone();
        tokio::select! {
            _ = follow(&state, &id, (after, status), &tx) => {}
            _ = shutdown.cancelled() => {}
        }
    });
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Send every event of run `id` after `from.0` into `tx` until the run's
/// final event or until the client goes away; `from.1` is the run's status
/// when the stream opened (`running` for a run executing here, else read
/// from the store; the first round's, so that a stream costs at most one
/// read of the run, not two).
async fn follow(state: &AppState, id: &str, from: (u64, RunStatus), tx: &mpsc::Sender<SseEvent>) {
    let (mut last, opened) = from;
    // Subscribe before reading the log, so nothing falls between the two;
    // duplicates are dropped by sequence number. Nothing published before
    // subscribing that the client lacks: no need to read the log at first.
    let (mut live, published) = match state.runs.hub(id) {
        Some(hub) => {
            let sub = hub.subscribe_bounded(LIVE_BUFFER);
            // The client has every event, the run's end included.
            if sub.ended && sub.published <= last {
                return;
            }
            (Some(sub.events), Some(sub.published))
        }
        None => (None, None),
    };
    let mut round = 0u32;
    loop {
        // Every run ends with a `run_finished` event, which ends the stream
        // below; the run's status is read only now and then, as a safeguard
        // (a polling stream reads just the new events).
        let status = if round == 0 {
            opened
        } else if round.is_multiple_of(STATUS_EVERY) {
            match state.host.store().run_record(id).await {
                Ok(run) => run.status,
                Err(e) => {
                    tracing::warn!(run_id = id, error = %e, "event stream stopped");
                    return;
                }
            }
        } else {
            RunStatus::Running
        };
        let caught_up =
            round == 0 && opened == RunStatus::Running && published.is_some_and(|p| p <= last);
        round += 1;
        let logged = match caught_up {
            true => Vec::new(),
            false => match state.host.store().events(id, last).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(run_id = id, error = %e, "event stream stopped");
                    return;
                }
            },
        };
        // A re-driven run has several `run_finished` events: only the last
        // logged one ends the stream.
        let finished = logged
            .last()
            .is_some_and(|e| matches!(e.kind, EventKind::RunFinished { .. }));
        for event in logged {
            if !send(tx, &event, &mut last).await {
                return;
            }
        }
        if finished {
            return;
        }
        // The status was read before the events: everything of a run that had
        // already ended has now been sent.
        if status != RunStatus::Running {
            return;
        }
        match &mut live {
            Some(rx) => {
                loop {
                    // A client gone while the run is quiet frees its stream.
                    let event = tokio::select! {
                        event = rx.recv() => event,
                        _ = tx.closed() => return,
                    };
                    let Some(event) = event else { break };
                    if event.seq <= last {
                        continue;
                    }
                    let finished = matches!(event.kind, EventKind::RunFinished { .. });
                    if !send(tx, &event, &mut last).await || finished {
                        return;
                    }
                }
                // The run stopped executing here, or this stream fell behind
                // and was dropped: read on from the log.
                live = None;
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = tx.closed() => return,
                }
                if let Some(hub) = state.runs.hub(id) {
                    live = Some(hub.subscribe_bounded(LIVE_BUFFER).events);
                }
            }
        }
    }
}

/// Send one event (skipping any already sent); false once the client is gone.
async fn send(tx: &mpsc::Sender<SseEvent>, event: &Event, last: &mut u64) -> bool {
    if event.seq <= *last {
        return true;
    }
    *last = event.seq;
    let kind = serde_json::to_value(&event.kind)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "event".to_string());
    let data = serde_json::to_string(event).unwrap_or_default();
    tx.send(
        SseEvent::default()
            .id(event.seq.to_string())
            .event(kind)
            .data(data),
    )
    .await
    .is_ok()
}

/// The event streams each user has open, at most `max` each: a client
/// cannot hold the daemon's memory and tasks by opening streams by the
/// thousand.
pub(crate) struct OpenStreams {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl OpenStreams {
    pub(crate) fn new(max: usize) -> Self {
        OpenStreams {
            max,
            open: Default::default(),
        }
    }

    fn open_of(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more stream for `user`, held until the slot is dropped.
    pub(crate) fn open(self: &std::sync::Arc<Self>, user: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open_of();
        let n = open.entry(user.to_string()).or_default();
        if *n >= self.max {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "user `{user}` has {} event streams open, the most allowed \
                     ([server] max_streams_per_user): close one first",
                    self.max
                ),
            ));
        }
        *n += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            user: user.to_string(),
        })
    }
}

/// One open event stream; dropping it frees its place.
pub(crate) struct StreamSlot {
    streams: std::sync::Arc<OpenStreams>,
    user: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open_of();
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}
