//! Recordings: the library (list, one recording with its tracks and utterances), playback and
//! download of a track (decrypted in memory, audited), visibility, deletion. Recording is
//! started and stopped on the live meeting (`startRecording`, `stopRecording`).

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiQuery, AppState, Audit, List, audit, page_limit};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use conclave_store::model::{Recording, RecordingTrack, Utterance};
use conclave_store::{Conn, repo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_recordings))
        .routes(routes!(get_recording, delete_recording))
        .routes(routes!(list_utterances))
        .routes(routes!(download_recording))
        .routes(routes!(download_recording_video))
        .routes(routes!(set_recording_visibility))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordingParams {
    /// A room number, or part of a room name.
    pub q: Option<String>,
    /// Part of a speaker's name or number (someone with a track in it).
    pub speaker: Option<String>,
    /// Recordings that started from this time (epoch ms).
    pub since: Option<i64>,
    /// Recordings that started up to this time (epoch ms).
    pub until: Option<i64>,
    /// How many at most (1–200, default 50), newest first.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingDetail {
    pub recording: Recording,
    /// Track 0 is the room's mix; then one per person.
    pub tracks: Vec<RecordingTrack>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UtteranceParams {
    /// One speaker's track only.
    pub track: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AudioParams {
    /// Only from here (ms on the recording's timeline, as utterances and minutes' lines
    /// say) …
    pub from_ms: Option<i64>,
    /// … up to here: that span alone, as a file of its own (at most ten minutes).
    pub to_ms: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityChange {
    /// `private` (who may see the room's meetings) or `public` (everyone of the tenant, and
    /// anyone with its link: `share_key`).
    pub visibility: String,
    /// Public: what people outside the tenant type to play it (4–32 letters or digits;
    /// absent: the link is enough).
    pub password: Option<String>,
}

/// Administrators see their tenant's recordings; others, those of the rooms they own or
/// created, those they started, and public ones of their tenant.
pub(super) async fn visible(conn: &mut Conn, caller: &Caller, r: &Recording) -> ApiResult<bool> {
    if caller.administers(&r.tenant_id) {
        return Ok(true);
    }
    if !caller.sees_tenant(&r.tenant_id) {
        return Ok(false);
    }
    if r.visibility == "public" || r.started_by == caller.user.id {
        return Ok(true);
    }
    manages(conn, caller, r).await
}

/// Administrators, and the room's owner or creator, change and delete its recordings.
pub(super) async fn manages(conn: &mut Conn, caller: &Caller, r: &Recording) -> ApiResult<bool> {
    if !caller.sees_tenant(&r.tenant_id) {
        return Ok(false);
    }
    if caller.administers(&r.tenant_id) {
        return Ok(true);
    }
    let Some(room_id) = &r.room_id else {
        return Ok(false);
    };
    Ok(repo::rooms::get(conn, room_id)
        .await?
        .is_some_and(|room| super::rooms::manages(caller, &room)))
}

pub(super) async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Recording> {
    let r = repo::recordings::get(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    if visible(conn, caller, &r).await? {
        Ok(r)
    } else {
        Err(ApiError::not_found("recording"))
    }
}

/// The tenant's recordings, newest first (administrators; others see the recordings they
/// may play).
#[utoipa::path(get, path = "/recordings", operation_id = "listRecordings", tag = "recordings",
    security(("bearer" = [])), params(RecordingParams),
    responses((status = 200, body = List<Recording>), (status = 422, body = Problem)))]
async fn list_recordings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<RecordingParams>,
) -> ApiResult<Json<List<Recording>>> {
    let limit = page_limit(p.limit)?;
    let mut conn = state.store.conn().await?;
    let filter = repo::recordings::Filter {
        room: p.q.unwrap_or_default().trim().to_owned(),
        speaker: p.speaker.unwrap_or_default().trim().to_owned(),
        since: p.since.unwrap_or(0),
        until: p.until.unwrap_or(i64::MAX),
    };
    let mut cursor = p.cursor.unwrap_or_default();
    let mut items = Vec::new();
    let mut next_cursor = None;
    // Others than administrators see some recordings only: a few pages are read to fill one.
    'pages: for _ in 0..10 {
        let page =
            repo::recordings::list(&mut conn, caller.tenant_id(), &filter, &cursor, limit).await?;
        let more = page.next_cursor.is_some();
        let count = page.items.len();
        for (i, r) in page.items.into_iter().enumerate() {
            cursor = r.id.clone();
            if visible(&mut conn, &caller, &r).await? {
                items.push(r);
            }
            if items.len() as i64 == limit {
                next_cursor = (more || i + 1 < count).then(|| cursor.clone());
                break 'pages;
            }
        }
        if !more {
            next_cursor = None;
            break;
        }
        next_cursor = Some(cursor.clone());
    }
    Ok(Json(List { items, next_cursor }))
}

/// A recording with its tracks.
#[utoipa::path(get, path = "/recordings/{recording_id}", operation_id = "getRecording", tag = "recordings",
    security(("bearer" = [])), params(("recording_id" = String, Path)),
    responses((status = 200, body = RecordingDetail), (status = 404, body = Problem)))]
async fn get_recording(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RecordingDetail>> {
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    let tracks = repo::recordings::tracks(&mut conn, &id).await?;
    Ok(Json(RecordingDetail { recording, tracks }))
}

/// When each member spoke (by voice activity on their own track), in time order.
#[utoipa::path(get, path = "/recordings/{recording_id}/utterances", operation_id = "listUtterances", tag = "recordings",
    security(("bearer" = [])), params(("recording_id" = String, Path), UtteranceParams),
    responses((status = 200, body = Vec<Utterance>), (status = 404, body = Problem)))]
async fn list_utterances(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<UtteranceParams>,
) -> ApiResult<Json<Vec<Utterance>>> {
    let mut conn = state.store.conn().await?;
    load(&mut conn, &caller, &id).await?;
    Ok(Json(
        repo::recordings::utterances(&mut conn, &id, p.track).await?,
    ))
}

/// One track as Ogg Opus (plays in browsers): decrypted in memory, never on disk; or one
/// span of it (`from_ms`, `to_ms`: an utterance, a line of the minutes). Every download is
/// in the audit log, and the file names who fetched it (`DOWNLOADED_BY`).
#[utoipa::path(get, path = "/recordings/{recording_id}/tracks/{track}/audio", operation_id = "downloadRecording", tag = "recordings",
    security(("bearer" = [])), params(("recording_id" = String, Path), ("track" = i64, Path), AudioParams),
    responses((status = 200, description = "the track", content_type = "audio/ogg", body = Vec<u8>),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn download_recording(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, track)): Path<(String, String)>,
    ApiQuery(p): ApiQuery<AudioParams>,
) -> ApiResult<Response> {
    let track: i64 = track.parse().map_err(|_| ApiError::not_found("track"))?;
    let span = match (p.from_ms, p.to_ms) {
        (None, None) => None,
        (Some(from), Some(to)) if from >= 0 && to > from => Some((from, to)),
        _ => {
            return Err(ApiError::field(
                "from_ms",
                "from_ms and to_ms go together, with 0 <= from_ms < to_ms",
            ));
        }
    };
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    let response = track_audio(
        &state,
        &mut conn,
        &recording,
        track,
        span,
        &caller.user.username,
    )
    .await?;
    audit(
        &mut conn,
        &caller,
        Audit {
            action: "downloadRecording",
            tenant_id: &recording.tenant_id,
            target_type: "recording",
            target_id: Some(&recording.id),
            detail: match span {
                Some((from, to)) => {
                    serde_json::json!({ "room": recording.room_number, "track": track,
                                                        "from_ms": from, "to_ms": to })
                }
                None => serde_json::json!({ "room": recording.room_number, "track": track }),
            },
        },
    )
    .await?;
    Ok(response)
}

/// A track of `recording` as Ogg Opus (or the `span` of it, ms on the recording's
/// timeline), its comments naming `who` fetched it (the caller writes the audit event).
pub(super) async fn track_audio(
    state: &AppState,
    conn: &mut Conn,
    recording: &Recording,
    track: i64,
    span: Option<(i64, i64)>,
    who: &str,
) -> ApiResult<Response> {
    let id = &recording.id;
    let tracks = repo::recordings::tracks(conn, id).await?;
    let Some(info) = tracks.iter().find(|t| t.track == track) else {
        return Err(ApiError::not_found("track"));
    };
    if info.kind == "video" {
        return Err(ApiError::conflict(
            "track",
            "this track is the recording's picture: its video is downloadRecordingVideo",
        ));
    }
    let offset = info.offset_ms;
    let service = state
        .meetings
        .recordings()
        .ok_or_else(|| ApiError::internal("recordings are not set up"))?;
    let (ogg, _complete) = service.read_track(recording, track).await.map_err(|err| {
        tracing::error!(
            err = format!("{err:#}"),
            recording = id,
            track,
            "cannot open a track"
        );
        ApiError::conflict(
            "track",
            "the recording's track cannot be opened on this server",
        )
    })?;
    let stamp = format!("DOWNLOADED_BY={who} {}", conclave_store::now_ms());
    let stamped = match span {
        Some((from, to)) => {
            let within = |ms: i64| u64::try_from(ms - offset).unwrap_or(0);
            conclave_media::recording::clip::cut(&ogg, within(from), within(to), &[stamp]).map_err(
                |err| match err {
                    conclave_media::recording::clip::ClipError::Empty(..) => {
                        ApiError::field("from_ms", "the track holds nothing in that span")
                    }
                    err => {
                        tracing::error!(%err, recording = id, track, "cannot cut a track");
                        ApiError::conflict("track", "the recording's track cannot be cut")
                    }
                },
            )?
        }
        None => conclave_media::recording::ogg::with_comment(&ogg, &stamp).unwrap_or(ogg),
    };
    Ok(decrypted_file(
        "audio/ogg",
        &format!("recording-{}-{track}.opus", recording.room_number),
        stamped,
    ))
}

/// A recording's file, decrypted for this caller: never cached on the way.
fn decrypted_file(content_type: &'static str, file_name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The recording's video — the meeting's layout as it was composed, with the mix — as MP4
/// (fragmented; plays in browsers): decrypted in memory, never on disk, and audited. Only a
/// meeting that had video (a camera, a screen, a SIP video terminal) while it was recorded
/// has one.
#[utoipa::path(get, path = "/recordings/{recording_id}/video", operation_id = "downloadRecordingVideo", tag = "recordings",
    security(("bearer" = [])), params(("recording_id" = String, Path)),
    responses((status = 200, description = "the video", content_type = "video/mp4", body = Vec<u8>),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn download_recording_video(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    let tracks = repo::recordings::tracks(&mut conn, &id).await?;
    let video = tracks
        .iter()
        .find(|t| t.kind == "video")
        .ok_or_else(|| ApiError::not_found("video"))?;
    let mix = tracks.iter().find(|t| t.kind == "mix");
    let service = state
        .meetings
        .recordings()
        .ok_or_else(|| ApiError::internal("recordings are not set up"))?;
    let (mp4, _complete) = service
        .read_video(&recording, video, mix)
        .await
        .map_err(|err| {
            tracing::error!(
                err = format!("{err:#}"),
                recording = id,
                "cannot open the video"
            );
            ApiError::conflict(
                "video",
                "the recording's video cannot be opened on this server",
            )
        })?;
    audit(
        &mut conn,
        &caller,
        Audit {
            action: "downloadRecording",
            tenant_id: &recording.tenant_id,
            target_type: "recording",
            target_id: Some(&recording.id),
            detail: serde_json::json!({ "room": recording.room_number, "track": video.track, "video": true }),
        },
    )
    .await?;
    Ok(decrypted_file(
        "video/mp4",
        &format!("recording-{}.mp4", recording.room_number),
        mp4,
    ))
}

/// Who may play it: `private` or `public` (to the tenant's users).
#[utoipa::path(put, path = "/recordings/{recording_id}/visibility", operation_id = "setRecordingVisibility", tag = "recordings",
    security(("bearer" = [])), params(("recording_id" = String, Path)), request_body = VisibilityChange,
    responses((status = 200, body = Recording), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn set_recording_visibility(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<VisibilityChange>,
) -> ApiResult<Json<Recording>> {
    if change.visibility != "private" && change.visibility != "public" {
        return Err(ApiError::field("visibility", "must be private or public"));
    }
    let password = change.password.as_deref().map(str::trim);
    if let Some(p) = password
        && (change.visibility == "private"
            || p.len() < 4
            || p.len() > 32
            || !p.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(ApiError::field(
            "password",
            "4 to 32 letters or digits, for a public recording",
        ));
    }
    let mut conn = state.store.conn().await?;
    let mut recording = load(&mut conn, &caller, &id).await?;
    if !manages(&mut conn, &caller, &recording).await? {
        return Err(ApiError::forbidden(
            "only administrators and the room's owner change its recordings",
        ));
    }
    drop(conn);
    let mut tx = state.store.begin().await?;
    // a public recording keeps its link while it stays public (a new password or none)
    let share = (change.visibility == "public").then(|| {
        (
            recording
                .share_key
                .clone()
                .unwrap_or_else(crate::streaming::token),
            recording
                .share_access
                .clone()
                .unwrap_or_else(crate::streaming::token),
            password.map(str::to_owned),
        )
    });
    repo::recordings::set_visibility(
        &mut tx,
        &id,
        &change.visibility,
        share
            .as_ref()
            .map(|(k, a, p)| (k.as_str(), a.as_str(), p.as_deref())),
    )
    .await?;
    audit(
        &mut tx,
        &caller,
        Audit {
            action: "setRecordingVisibility",
            tenant_id: &recording.tenant_id,
            target_type: "recording",
            target_id: Some(&recording.id),
            detail: serde_json::json!({ "room": recording.room_number, "visibility": change.visibility,
                                        "password": password.is_some() }),
        },
    )
    .await?;
    tx.commit().await?;
    recording.visibility = change.visibility;
    (
        recording.share_key,
        recording.share_access,
        recording.share_password,
    ) = match share {
        Some((k, a, p)) => (Some(k), Some(a), p),
        None => (None, None, None),
    };
    Ok(Json(recording))
}

/// Deletes a recording and its files (not while it records).
#[utoipa::path(delete, path = "/recordings/{recording_id}", operation_id = "deleteRecording", tag = "recordings",
    security(("bearer" = [])), params(("recording_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn delete_recording(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    if !manages(&mut conn, &caller, &recording).await? {
        return Err(ApiError::forbidden(
            "only administrators and the room's owner delete its recordings",
        ));
    }
    if recording.state == "recording" {
        return Err(ApiError::conflict(
            "state",
            "stop the recording before deleting it",
        ));
    }
    let tracks = repo::recordings::tracks(&mut conn, &id).await?;
    drop(conn);
    let mut tx = state.store.begin().await?;
    repo::recordings::delete(&mut tx, &id).await?;
    audit(
        &mut tx,
        &caller,
        Audit {
            action: "deleteRecording",
            tenant_id: &recording.tenant_id,
            target_type: "recording",
            target_id: Some(&recording.id),
            detail: serde_json::json!({ "room": recording.room_number }),
        },
    )
    .await?;
    tx.commit().await?;
    if let Some(service) = state.meetings.recordings()
        && let Err(err) = service.remove_files(&recording, &tracks).await
    {
        tracing::error!(
            err = format!("{err:#}"),
            recording = id,
            "a deleted recording's files remain"
        );
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
