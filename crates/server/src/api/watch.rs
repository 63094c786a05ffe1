//! Watching a live stream, for anyone with its link: what the watch page needs to know, the
//! password (limited per stream and per address), and the HLS files themselves under
//! `/live/<key>/<access>/` — the same bytes for every listener, cacheable by any HTTP cache
//! or CDN (the access token is in the path, not in a cookie).

use super::AppState;
use super::extract::{ApiJson, ClientAddr};
use super::problem::{ApiError, ApiResult, Problem};
use super::streams::playlist_path;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_store::model::Stream;
use conclave_store::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_watch, open_watch))
}

/// The HLS files (not in the API document: players fetch them).
pub fn files() -> axum::Router<AppState> {
    axum::Router::new().route("/live/{key}/{access}/{file}", axum::routing::get(live_file))
}

/// What the watch page shows before playing.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatchInfo {
    pub title: String,
    /// `scheduled`, `live` or `ended`.
    pub state: String,
    pub starts_at: Option<i64>,
    /// A password must be typed (`openWatch`).
    pub password_required: bool,
    /// The playlist, when no password is needed and there is something to play.
    pub playlist: Option<String>,
    /// Listening now.
    pub listeners: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchPassword {
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchAccess {
    pub playlist: String,
}

async fn stream_by_key(state: &AppState, key: &str) -> ApiResult<Stream> {
    if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("stream"));
    }
    let mut conn = state.store.conn().await?;
    repo::streams::by_key(&mut conn, key)
        .await?
        .ok_or_else(|| ApiError::not_found("stream"))
}

/// A stream's title and state, for its watch page (no account needed).
#[utoipa::path(get, path = "/watch/{key}", operation_id = "getWatch", tag = "streams",
    params(("key" = String, Path)),
    responses((status = 200, body = WatchInfo), (status = 404, body = Problem)))]
async fn get_watch(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<WatchInfo>> {
    let stream = stream_by_key(&state, &key).await?;
    let served = state.meetings.streams().served(&stream.key);
    let listeners = served
        .as_ref()
        .filter(|l| !l.channel.ended())
        .map_or(0, |l| l.channel.listeners());
    let playable = served.is_some();
    Ok(Json(WatchInfo {
        title: stream.title.clone(),
        state: if stream.state == "live" && !playable {
            // claimed by a meeting, not served yet
            "scheduled".into()
        } else {
            stream.state.clone()
        },
        starts_at: stream.starts_at,
        password_required: stream.password.is_some(),
        playlist: (stream.password.is_none() && playable).then(|| playlist_path(&stream)),
        listeners,
    }))
}

/// A shared link's password (a stream's, a recording's): wrong ones are limited per link and
/// per address, like room PINs (429 once blocked, without looking at the password).
pub(super) fn check_password(
    state: &AppState,
    target: crate::limiter::Target,
    source: std::net::SocketAddr,
    given: &str,
    expected: &str,
) -> ApiResult<()> {
    let permit = state
        .meetings
        .streams()
        .passwords()
        .attempt(target, source.ip())
        .map_err(|blocked| {
            ApiError::too_many(
                format!(
                    "too many wrong passwords: try again in {} s",
                    blocked.retry_after_secs()
                ),
                blocked.retry_after_secs(),
            )
        })?;
    if !same(given.trim(), expected) {
        permit.failed();
        return Err(ApiError::forbidden("wrong password"));
    }
    permit.succeeded();
    Ok(())
}

/// Constant time: how much of a password matched says nothing.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The password: the answer is the playlist (wrong passwords are limited per stream and
/// per address, like room PINs).
#[utoipa::path(post, path = "/watch/{key}", operation_id = "openWatch", tag = "streams",
    params(("key" = String, Path)), request_body = WatchPassword,
    responses((status = 200, body = WatchAccess), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 429, body = Problem)))]
async fn open_watch(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<WatchPassword>,
) -> ApiResult<Json<WatchAccess>> {
    let stream = stream_by_key(&state, &key).await?;
    if let Some(password) = &stream.password {
        let target = crate::limiter::Target::Stream(stream.id.clone());
        check_password(&state, target, source, &body.password, password)?;
    }
    Ok(Json(WatchAccess {
        playlist: playlist_path(&stream),
    }))
}

#[derive(Debug, Deserialize)]
struct ListenerParam {
    /// A listener's id (the page makes one up), to count listeners behind one address.
    l: Option<String>,
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such stream or segment").into_response()
}

/// `index.m3u8`, `init.mp4` or `<sequence>.m4s` of a stream being served.
async fn live_file(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    Path((key, access, file)): Path<(String, String, String)>,
    Query(listener): Query<ListenerParam>,
) -> Response {
    let Some(live) = state.meetings.streams().served(&key) else {
        return not_found();
    };
    if !same(&access, &live.stream.access) {
        return not_found();
    }
    let (body, kind, cache) = if file == "index.m3u8" {
        let who = listener
            .l
            .filter(|l| {
                !l.is_empty() && l.len() <= 32 && l.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .unwrap_or_else(|| source.ip().to_string());
        let cache = if live.channel.ended() {
            "public, max-age=60"
        } else {
            // one second: a cache in front serves a thousand listeners with one fetch
            "public, max-age=1"
        };
        (
            live.channel.playlist(&who),
            "application/vnd.apple.mpegurl",
            cache,
        )
    } else if file == "init.mp4" {
        (
            live.channel.init(),
            "audio/mp4",
            "public, max-age=86400, immutable",
        )
    } else if let Some(sequence) = file
        .strip_suffix(".m4s")
        .filter(|n| !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
    {
        match live.channel.segment(sequence) {
            Some(data) => (data, "audio/mp4", "public, max-age=86400, immutable"),
            None => return not_found(),
        }
    } else {
        return not_found();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // players on other sites (and the CDN's) may fetch it: the token in the path is the key
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
