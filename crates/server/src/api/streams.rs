//! Live streams in the console: the tenant's streams (scheduled, live, ended), scheduling one
//! for a room ahead (its link can be shared before the meeting), starting and stopping the
//! live meeting's stream. Viewers use `api::watch`.

use super::conferences::{control, live_room};
use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, audit};
use crate::meeting::LiveConference;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_conference::live::Command;
use conclave_store::model::{Room, Stream};
use conclave_store::{now_ms, repo};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_streams, create_stream))
        .routes(routes!(get_stream, delete_stream))
        .routes(routes!(start_stream))
        .routes(routes!(stop_stream))
}

/// A stream as the console shows it: its row, where to watch it, and its listeners.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    #[serde(flatten)]
    pub stream: Stream,
    pub room_number: String,
    pub room_name: String,
    /// The watch page (share it, with the password when there is one).
    pub link: String,
    /// The HLS playlist, for players and the tenant's own users (no password needed).
    pub playlist: String,
    /// Listening now (live streams).
    pub listeners: u64,
}

/// The path of a stream's playlist.
pub fn playlist_path(s: &Stream) -> String {
    format!("/live/{}/{}/index.m3u8", s.key, s.access)
}

fn view(state: &AppState, stream: Stream, room: Option<&Room>) -> StreamView {
    let listeners = state
        .meetings
        .streams()
        .served(&stream.key)
        .filter(|l| !l.channel.ended())
        .map_or(0, |l| l.channel.listeners());
    StreamView {
        link: format!("/watch/{}", stream.key),
        playlist: playlist_path(&stream),
        room_number: room.map(|r| r.number.clone()).unwrap_or_default(),
        room_name: room.map(|r| r.name.clone()).unwrap_or_default(),
        listeners,
        stream,
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// `scheduled`, `live` or `ended` (default: all).
    pub state: Option<String>,
}

/// The tenant's streams: live first, then scheduled (soonest first), then ended (newest
/// first); at most 200. Every user of the tenant sees them, with their links and passwords:
/// a stream is there to be shared.
#[utoipa::path(get, path = "/streams", operation_id = "listStreams", tag = "streams",
    security(("bearer" = [])), params(StreamParams),
    responses((status = 200, body = List<StreamView>), (status = 422, body = Problem)))]
async fn list_streams(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> ApiResult<Json<List<StreamView>>> {
    let wanted = p.state.unwrap_or_default();
    if !["", "scheduled", "live", "ended"].contains(&wanted.as_str()) {
        return Err(ApiError::field("state", "scheduled, live or ended"));
    }
    let mut conn = state.store.conn().await?;
    let streams = repo::streams::list(&mut conn, caller.tenant_id(), &wanted, 200).await?;
    let mut rooms: std::collections::HashMap<String, Option<Room>> = Default::default();
    let mut items = Vec::with_capacity(streams.len());
    for s in streams {
        if !rooms.contains_key(&s.room_id) {
            let room = repo::rooms::get(&mut conn, &s.room_id).await?;
            rooms.insert(s.room_id.clone(), room);
        }
        let room = rooms.get(&s.room_id).and_then(Option::as_ref);
        items.push(view(&state, s, room));
    }
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    pub room_id: String,
    /// What viewers see (default: the room's name).
    pub title: Option<String>,
    /// When it is planned to start (epoch ms); the room's meeting streams from this time
    /// (or half an hour before) on.
    pub starts_at: Option<i64>,
    /// What viewers type: 4–32 letters or digits. Absent: six digits are made up; with
    /// `open`, none is asked.
    pub password: Option<String>,
    /// Anyone with the link watches, without a password.
    #[serde(default)]
    pub open: bool,
}

/// Options of a stream started now (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamStart {
    pub title: Option<String>,
    /// As for `createStream`.
    pub password: Option<String>,
    #[serde(default)]
    pub open: bool,
}

fn password_for(c: &mut Checks, password: Option<&str>, open: bool) -> Option<String> {
    if open {
        if password.is_some() {
            c.fail("password", "an open stream has no password");
        }
        return None;
    }
    match password.map(str::trim) {
        Some(p) => {
            if p.len() < 4 || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                c.fail("password", "4 to 32 letters or digits");
            }
            Some(p.to_owned())
        }
        None => Some(crate::streaming::new_password()),
    }
}

/// The room, when the caller may stream its meetings (administrators, its owner or creator).
async fn managed_room(state: &AppState, caller: &Caller, room_id: &str) -> ApiResult<Room> {
    let mut conn = state.store.conn().await?;
    let room = repo::rooms::get(&mut conn, room_id)
        .await?
        .filter(|r| caller.sees_tenant(&r.tenant_id))
        .ok_or_else(|| ApiError::not_found("room"))?;
    if !super::rooms::manages(caller, &room) {
        return Err(ApiError::forbidden(
            "only administrators and the room's creator or owner stream its meetings",
        ));
    }
    Ok(room)
}

/// Schedule a stream of a room's meeting: its link and password exist now, and the room's
/// meeting streams when it starts (from half an hour before `starts_at` on).
#[utoipa::path(post, path = "/streams", operation_id = "createStream", tag = "streams",
    security(("bearer" = [])), request_body = NewStream,
    responses((status = 201, body = StreamView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewStream>,
) -> ApiResult<(StatusCode, Json<StreamView>)> {
    let mut c = Checks::new();
    if let Some(t) = &body.title {
        c.text("title", t, 0, 100);
    }
    if let Some(at) = body.starts_at
        && at < now_ms() - 24 * 3600 * 1000
    {
        c.fail("starts_at", "in the past");
    }
    let password = password_for(&mut c, body.password.as_deref(), body.open);
    c.finish()?;
    let room = managed_room(&state, &caller, &body.room_id).await?;
    let stream = crate::streaming::scheduled(
        &room,
        body.title.as_deref().unwrap_or(""),
        body.starts_at,
        password,
        &caller.user.id,
    );
    let mut conn = state.store.conn().await?;
    repo::streams::insert(&mut conn, &stream).await?;
    audit(
        &mut conn,
        &caller,
        Audit {
            action: "createStream",
            tenant_id: &room.tenant_id,
            target_type: "stream",
            target_id: Some(&stream.id),
            detail: serde_json::json!({ "room": room.number, "starts_at": stream.starts_at }),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, stream, Some(&room)))))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(Stream, Option<Room>)> {
    let mut conn = state.store.conn().await?;
    let stream = repo::streams::get(&mut conn, id)
        .await?
        .filter(|s| caller.sees_tenant(&s.tenant_id))
        .ok_or_else(|| ApiError::not_found("stream"))?;
    let room = repo::rooms::get(&mut conn, &stream.room_id).await?;
    Ok((stream, room))
}

/// A stream, with its link and listeners.
#[utoipa::path(get, path = "/streams/{stream_id}", operation_id = "getStream", tag = "streams",
    security(("bearer" = [])), params(("stream_id" = String, Path)),
    responses((status = 200, body = StreamView), (status = 404, body = Problem)))]
async fn get_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<StreamView>> {
    let (stream, room) = load(&state, &caller, &id).await?;
    Ok(Json(view(&state, stream, room.as_ref())))
}

/// Cancel a scheduled stream, or forget an ended one (a live one is stopped first).
#[utoipa::path(delete, path = "/streams/{stream_id}", operation_id = "deleteStream", tag = "streams",
    security(("bearer" = [])), params(("stream_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn delete_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (stream, room) = load(&state, &caller, &id).await?;
    if !room
        .as_ref()
        .is_some_and(|r| super::rooms::manages(&caller, r))
        && !caller.administers(&stream.tenant_id)
    {
        return Err(ApiError::forbidden(
            "only administrators and the room's creator or owner delete its streams",
        ));
    }
    if stream.state == "live" {
        return Err(ApiError::conflict(
            "state",
            "the stream is live: stop it first",
        ));
    }
    let mut conn = state.store.conn().await?;
    repo::streams::delete(&mut conn, &stream.id).await?;
    audit(
        &mut conn,
        &caller,
        Audit {
            action: "deleteStream",
            tenant_id: &stream.tenant_id,
            target_type: "stream",
            target_id: Some(&stream.id),
            detail: serde_json::json!({ "state": stream.state }),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stream the live meeting now: the room's scheduled stream when one is due (its link was
/// shared), else a new one with these options. Viewers hear the room's mix a few seconds
/// late; the answer has the link and the password.
#[utoipa::path(post, path = "/conferences/{room_id}/stream/start", operation_id = "startStream", tag = "streams",
    security(("bearer" = [])), params(("room_id" = String, Path)), request_body = StreamStart,
    responses((status = 200, body = StreamView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
async fn start_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
    ApiJson(body): ApiJson<StreamStart>,
) -> ApiResult<Json<StreamView>> {
    let mut c = Checks::new();
    if let Some(t) = &body.title {
        c.text("title", t, 0, 100);
    }
    let password = password_for(&mut c, body.password.as_deref(), body.open);
    c.finish()?;
    let room = live_room(&state, &caller, &room_id).await?;
    // (a refusal is written to the audit log by `control`, below)
    let may = super::rooms::manages(&caller, &room);
    let mut made = None;
    if may && state.meetings.streams().live_in(&room.id).is_none() {
        // the stream it will carry: the one due, or one made now with these options
        let mut conn = state.store.conn().await?;
        let due = repo::streams::due(&mut conn, &room.id, now_ms() + 30 * 60 * 1000).await?;
        if due.is_none() {
            let s = crate::streaming::scheduled(
                &room,
                body.title.as_deref().unwrap_or(""),
                Some(now_ms()),
                password,
                &caller.user.id,
            );
            repo::streams::insert(&mut conn, &s).await?;
            made = Some(s.id);
        }
    }
    let started = control(
        &state,
        &caller,
        &room.id,
        "startStream",
        Command::Stream { on: true },
    )
    .await;
    if let (Err(err), Some(id)) = (&started, &made) {
        // refused, or the meeting just ended: the row made for it is not left due
        let mut conn = state.store.conn().await?;
        repo::streams::delete_scheduled(&mut conn, id).await?;
        tracing::debug!(status = %err.status, "a stream was not started");
    }
    let _ = started?;
    // the stream's task claims its row in a moment
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(live) = state.meetings.streams().live_in(&room.id) {
            if let Some(id) = made.as_ref().filter(|id| **id != live.stream.id) {
                // a parallel start's row went live instead: this one is not left due
                let mut conn = state.store.conn().await?;
                repo::streams::delete_scheduled(&mut conn, id).await?;
            }
            return Ok(Json(view(&state, live.stream.clone(), Some(&room))));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::unavailable("the stream did not start in time"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stop the live meeting's stream (viewers get its last seconds, then its end).
#[utoipa::path(post, path = "/conferences/{room_id}/stream/stop", operation_id = "stopStream", tag = "streams",
    security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn stop_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
) -> ApiResult<Json<LiveConference>> {
    control(
        &state,
        &caller,
        &room_id,
        "stopStream",
        Command::Stream { on: false },
    )
    .await
}
