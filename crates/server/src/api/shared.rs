//! A public recording for people outside the tenant: its link (`/recording/<key>`), the
//! password when it has one (limited per recording and per address, like room PINs), and its
//! tracks' audio under a path only the password opens. Every playback is audited
//! (`anonymous`, with the address).

use super::extract::{ApiJson, ClientAddr};
use super::problem::{ApiError, ApiResult, Problem};
use super::recordings::track_audio;
use super::{AppState, Audit, write_audit};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use conclave_store::model::Outcome;
use conclave_store::model::Recording;
use conclave_store::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_shared_recording, open_shared_recording))
        .routes(routes!(play_shared_recording))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SharedTrack {
    /// 0 is the whole meeting; then one per person.
    pub track: i64,
    pub name: String,
    pub duration_ms: Option<i64>,
    /// Its audio (Ogg Opus).
    pub audio: String,
}

/// What the shared recording's page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedRecording {
    pub room_name: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// A password must be typed (`openSharedRecording`) before the tracks are listed.
    pub password_required: bool,
    pub tracks: Vec<SharedTrack>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedPassword {
    pub password: String,
}

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn shared(state: &AppState, key: &str) -> ApiResult<Recording> {
    if !valid_token(key) {
        return Err(ApiError::not_found("recording"));
    }
    let mut conn = state.store.conn().await?;
    repo::recordings::by_share_key(&mut conn, key)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))
}

async fn described(state: &AppState, r: &Recording, open: bool) -> ApiResult<SharedRecording> {
    let mut tracks = Vec::new();
    if let (true, Some(key), Some(access)) = (open, &r.share_key, &r.share_access) {
        let mut conn = state.store.conn().await?;
        let stored = repo::recordings::tracks(&mut conn, &r.id).await?;
        for t in stored.into_iter().filter(|t| t.kind != "video") {
            tracks.push(SharedTrack {
                audio: format!("/api/v1/shared/{key}/{access}/tracks/{}/audio", t.track),
                track: t.track,
                name: t.name,
                duration_ms: t.duration_ms,
            });
        }
    }
    Ok(SharedRecording {
        room_name: r.room_name.clone(),
        started_at: r.started_at,
        ended_at: r.ended_at,
        password_required: r.share_password.is_some(),
        tracks,
    })
}

/// A public recording, for anyone with its link (no account); its tracks when it has no
/// password.
#[utoipa::path(get, path = "/shared/{key}", operation_id = "getSharedRecording", tag = "recordings",
    params(("key" = String, Path)),
    responses((status = 200, body = SharedRecording), (status = 404, body = Problem)))]
async fn get_shared_recording(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<SharedRecording>> {
    let r = shared(&state, &key).await?;
    let open = r.share_password.is_none();
    Ok(Json(described(&state, &r, open).await?))
}

/// The password of a public recording: the answer lists its tracks.
#[utoipa::path(post, path = "/shared/{key}", operation_id = "openSharedRecording", tag = "recordings",
    params(("key" = String, Path)), request_body = SharedPassword,
    responses((status = 200, body = SharedRecording), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 429, body = Problem)))]
async fn open_shared_recording(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<SharedPassword>,
) -> ApiResult<Json<SharedRecording>> {
    let r = shared(&state, &key).await?;
    if let Some(password) = &r.share_password {
        let target = crate::limiter::Target::Shared(r.id.clone());
        super::watch::check_password(&state, target, source, &body.password, password)?;
    }
    Ok(Json(described(&state, &r, true).await?))
}

/// One track of a public recording (Ogg Opus), under the path its password opened; audited.
#[utoipa::path(get, path = "/shared/{key}/{access}/tracks/{track}/audio", operation_id = "playSharedRecording", tag = "recordings",
    params(("key" = String, Path), ("access" = String, Path), ("track" = i64, Path)),
    responses((status = 200, description = "the track", content_type = "audio/ogg", body = Vec<u8>),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn play_shared_recording(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    Path((key, access, track)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let r = shared(&state, &key).await?;
    let opens = r
        .share_access
        .as_deref()
        .is_some_and(|a| super::watch::same(&access, a));
    let track: i64 = track.parse().map_err(|_| ApiError::not_found("track"))?;
    if !opens {
        return Err(ApiError::not_found("recording"));
    }
    let mut conn = state.store.conn().await?;
    let response = track_audio(
        &state,
        &mut conn,
        &r,
        track,
        None,
        &format!("anonymous@{}", source.ip()),
    )
    .await?;
    write_audit(
        &mut conn,
        None,
        "anonymous",
        source,
        Audit {
            action: "playSharedRecording",
            tenant_id: &r.tenant_id,
            target_type: "recording",
            target_id: Some(&r.id),
            detail: serde_json::json!({ "room": r.room_number, "track": track }),
        },
        Outcome::Ok,
    )
    .await?;
    Ok(response)
}
