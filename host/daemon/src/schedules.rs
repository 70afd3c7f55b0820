//! Schedules: a user's saved graph started with an input on a cron pattern
//! (in a named time zone) or at a fixed interval. Owns `/v1/schedules` and
//! the loop that fires due schedules ([`fire_due`]). Every host sharing a
//! store runs the loop; each occurrence starts its run under the
//! idempotency key `schedule:NAME:MS` (its owner's), so however many hosts
//! race on it, one run starts, and one host advances the schedule. What a
//! firing starts, it starts as `POST /v1/runs` would for the schedule's
//! owner ([`crate::api::begin_run`]), under the same quotas.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::AppState;
use super::api::{begin_run, saved_graph};
use super::auth::User;
use super::error::ApiError;
use crate::types::{ErrorBody, ScheduleFiring, ScheduleList, ScheduleRequest, ScheduleView};
use weft::schedule::{Cadence, due};
use weft::store::{Fired, Schedule, valid_graph_name};

type ApiResult<T> = Result<T, ApiError>;

/// Schedules a user may have unless `[quotas] schedules` says otherwise.
pub(crate) const DEFAULT_MAX_SCHEDULES: usize = 100;
/// Due schedules fired per tick (the rest wait for the next).
const DUE_PER_TICK: usize = 100;
/// Missed occurrences one schedule starts per tick under `catch_up = "all"`.
const CATCH_UP_PER_TICK: usize = 100;

fn view(s: Schedule) -> ScheduleView {
    let (cron, time_zone, every_ms) = match s.cadence {
        Cadence::Cron { pattern, time_zone } => (Some(pattern), Some(time_zone), None),
        Cadence::Every { every_ms, .. } => (None, None, Some(every_ms)),
    };
    ScheduleView {
        name: s.name,
        graph: s.graph,
        version: s.version,
        input: s.input,
        cron,
        time_zone,
        every_ms,
        catch_up: s.catch_up,
        paused: s.paused,
        created_ms: s.created_ms,
        next_ms: s.next_ms,
        last: s.last.map(|f| ScheduleFiring {
            at_ms: f.at_ms,
            run_id: f.run_id,
            error: f.error,
        }),
    }
}

fn checked_name(name: &str) -> ApiResult<()> {
    if valid_graph_name(name) {
        return Ok(());
    }
    Err(ApiError::unprocessable(format!(
        "schedule name `{name}`: 1-128 characters of letters, digits, `.`, `_` and `-`"
    )))
}

/// The cadence `request` asks for, at `now_ms`.
fn cadence(request: &ScheduleRequest, now_ms: u64) -> ApiResult<Cadence> {
    let bad = |e: weft::schedule::ScheduleError| ApiError::unprocessable(e.to_string());
    match (&request.cron, &request.every) {
        (Some(pattern), None) => {
            let zone = request.time_zone.as_deref().unwrap_or("UTC");
            Cadence::cron(pattern, zone).map_err(bad)
        }
        (None, Some(every)) => {
            if request.time_zone.is_some() {
                return Err(ApiError::unprocessable(
                    "`time_zone` goes with `cron`, not with `every`",
                ));
            }
            match Cadence::every(every, 0).map_err(bad)? {
                Cadence::Every { every_ms, .. } => Ok(Cadence::Every {
                    every_ms,
                    from_ms: now_ms.saturating_add(every_ms),
                }),
                cron => Ok(cron),
            }
        }
        _ => Err(ApiError::unprocessable(
            "give either `cron` (with an optional `time_zone`) or `every`",
        )),
    }
}

/// Your schedules.
#[utoipa::path(
    get, path = "/schedules", tag = "schedules",
    responses((status = 200, description = "Your schedules, by name", body = ScheduleList))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) -> ApiResult<Json<ScheduleList>> {
    let found = state.host.store().schedule_list(&user.0).await?;
    Ok(Json(ScheduleList {
        schedules: found.into_iter().map(view).collect(),
    }))
}

/// Create or replace a schedule.
#[utoipa::path(
    put, path = "/schedules/{name}", tag = "schedules",
    request_body = ScheduleRequest,
    params(("name" = String, Path, description = "The schedule's name (yours)")),
    responses(
        (status = 201, description = "Created", body = ScheduleView),
        (status = 200, description = "Replaced (its next occurrence counted from now)", body = ScheduleView),
        (status = 404, description = "No such saved graph (of yours or shared with you)", body = ErrorBody),
        (status = 422, description = "Bad name, cadence, time zone or input; or over `[quotas] schedules`", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
    body: Result<Json<ScheduleRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let Json(request) = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    checked_name(&name)?;
    if !request.input.is_object() {
        return Err(ApiError::unprocessable("`input` must be a JSON object"));
    }
    let now = state.host.clock().now_ms();
    let cadence = cadence(&request, now)?;
    // The graph must exist for its owner now and take the input (both are
    // looked up again at each firing).
    let (graph, origin, _) = saved_graph(&state, &user, &request.graph, request.version).await?;
    state
        .host
        .check(&graph, &origin, &request.input, Some(&user.0))?;
    let store = state.host.store();
    let old = store.schedule_get(&user.0, &name).await?;
    if old.is_none() {
        let max = state.quotas.max_schedules();
        if store.schedule_list(&user.0).await?.len() >= max {
            return Err(ApiError::unprocessable(format!(
                "you have {max} schedules, the most allowed (`[quotas] schedules`)"
            )));
        }
    }
    let schedule = Schedule {
        owner: user.0.clone(),
        name,
        graph: request.graph,
        version: request.version,
        input: request.input,
        next_ms: cadence.next_after(now),
        cadence,
        catch_up: request.catch_up.unwrap_or_default(),
        paused: request.paused,
        created_ms: old.as_ref().map_or(now, |o| o.created_ms),
        last: old.as_ref().and_then(|o| o.last.clone()),
    };
    store.schedule_put(&schedule).await?;
    let status = match old {
        Some(_) => StatusCode::OK,
        None => StatusCode::CREATED,
    };
    Ok((status, Json(view(schedule))))
}

/// The schedule `name` of `user`, or 404.
async fn mine(state: &AppState, user: &User, name: &str) -> ApiResult<Schedule> {
    state
        .host
        .store()
        .schedule_get(&user.0, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schedule `{name}`")))
}

/// A schedule.
#[utoipa::path(
    get, path = "/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule of yours", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(view(mine(&state, &user, &name).await?)))
}

/// Delete a schedule (the runs it started stay).
#[utoipa::path(
    delete, path = "/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule of yours", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    match state.host.store().schedule_delete(&user.0, &name).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("schedule `{name}`"))),
    }
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(
    post, path = "/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses(
        (status = 200, description = "Paused", body = ScheduleView),
        (status = 404, description = "No such schedule of yours", body = ErrorBody),
    )
)]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    set_paused(&state, &user, &name, true).await
}

/// Resume a paused schedule: occurrences that passed meanwhile are skipped.
#[utoipa::path(
    post, path = "/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "The schedule")),
    responses(
        (status = 200, description = "Resumed", body = ScheduleView),
        (status = 404, description = "No such schedule of yours", body = ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    set_paused(&state, &user, &name, false).await
}

/// Pause or resume `user`'s schedule `name`; resumed, it is next due at its
/// first occurrence from now.
async fn set_paused(
    state: &AppState,
    user: &User,
    name: &str,
    paused: bool,
) -> ApiResult<Json<ScheduleView>> {
    let mut schedule = mine(state, user, name).await?;
    if schedule.paused != paused {
        schedule.paused = paused;
        if !paused {
            schedule.next_ms = schedule.cadence.next_after(state.host.clock().now_ms());
        }
        state.host.store().schedule_put(&schedule).await?;
    }
    Ok(Json(view(schedule)))
}

/// Fire every schedule due now (a bounded number per call): start the
/// runs of their occurrences and advance them. Returns the runs started.
pub(crate) async fn fire_due(state: &AppState) -> usize {
    let now = state.host.clock().now_ms();
    let store = state.host.store();
    let due = match store.schedules_due(now, DUE_PER_TICK).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read due schedules");
            return 0;
        }
    };
    let mut started = 0;
    for schedule in due {
        started += fire(state, &schedule, now).await;
    }
    started
}

/// Fire `schedule` (due) at `now_ms`; returns the runs it started.
async fn fire(state: &AppState, schedule: &Schedule, now_ms: u64) -> usize {
    let Some(from) = schedule.due_ms() else {
        return 0;
    };
    let plan = due(
        &schedule.cadence,
        schedule.catch_up,
        from,
        now_ms,
        CATCH_UP_PER_TICK,
    );
    let mut next = plan.next_ms;
    let mut last = Fired {
        at_ms: from,
        run_id: None,
        error: Some("the occurrence was missed (catch_up = \"skip\")".into()),
    };
    let mut started = 0;
    if plan.fire.is_empty() {
        state.metrics.schedule_fired("missed");
    }
    for at in plan.fire {
        match start(state, schedule, at).await {
            Ok(run) => {
                started += usize::from(!run.existing);
                let outcome = if run.existing { "found" } else { "started" };
                state.metrics.schedule_fired(outcome);
                last = Fired {
                    at_ms: at,
                    run_id: Some(run.run_id),
                    error: None,
                };
            }
            Err(e) => {
                let error = Some(e.message().to_string());
                last = Fired {
                    at_ms: at,
                    run_id: None,
                    error,
                };
                // Over a quota: this occurrence waits and is tried again.
                if e.status() == StatusCode::TOO_MANY_REQUESTS {
                    state.metrics.schedule_fired("waiting");
                    next = Some(at);
                    break;
                }
                state.metrics.schedule_fired("failed");
                tracing::warn!(schedule = %schedule.name, user = %schedule.owner, at_ms = at, error = %e.message(), "a scheduled run did not start");
            }
        }
    }
    let (owner, name) = (&schedule.owner, &schedule.name);
    if let Err(e) = state
        .host
        .store()
        .schedule_advance(owner, name, from, next, last)
        .await
    {
        tracing::warn!(schedule = %name, user = %owner, error = %e, "cannot advance a schedule");
    }
    started
}

/// Start the run of `schedule`'s occurrence at `at_ms` (or find the one
/// another host started for it).
async fn start(
    state: &AppState,
    schedule: &Schedule,
    at_ms: u64,
) -> ApiResult<crate::types::Submitted> {
    let user = User(schedule.owner.clone());
    let (graph, origin, graph_name) =
        saved_graph(state, &user, &schedule.graph, schedule.version).await?;
    let origin = format!("schedule {}: {origin}", schedule.name);
    let key = format!("schedule:{}:{at_ms}", schedule.name);
    let input = schedule.input.clone();
    begin_run(state, &user, &graph, &origin, graph_name, input, Some(key)).await
}
