//! Minutes of recordings (docs/minutes.md): read them (`getMinutes`), correct lines
//! (`updateMinutes`, what was recognized is kept), take them away as Markdown, Word, PDF
//! or JSON (`exportMinutes`, audited), and search a tenant's minutes (`searchMinutes`).
//! Who may: whoever may play the recording reads, searches and exports its minutes; those
//! who manage it (administrators, the room's owner) edit them.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::recordings::{load, manages, visible};
use super::{ApiQuery, AppState, Audit, List, audit, page_limit};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use conclave_minutes::document::{self, Document, Labels, Line};
use conclave_store::model::{MinuteLine, Recording, RecordingTrack};
use conclave_store::{Conn, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_minutes, update_minutes))
        .routes(routes!(export_minutes))
        .routes(routes!(search_minutes))
}

/// Lines one edit may change.
const MAX_EDITS: usize = 200;
/// Characters a line may hold.
const MAX_LINE: usize = 4000;

/// A recording's minutes as the console shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinutesView {
    pub recording_id: String,
    /// `queued`, `working`, `done`, `failed`, `unavailable` (this server has no speech
    /// model, or minutes are off), or `none` (not looked at yet).
    pub state: String,
    /// Why it failed or is unavailable.
    pub error: Option<String>,
    /// Utterances recognized so far, of how many.
    pub done: i64,
    pub total: i64,
    /// The recording is still going on (lines keep coming).
    pub live: bool,
    pub room_number: String,
    pub room_name: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// Who spoke: each person's track.
    pub members: Vec<MinutesMember>,
    /// In time order; utterances that held no words are left out.
    pub lines: Vec<MinutesLineView>,
    /// The caller may edit the lines.
    pub editable: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MinutesMember {
    pub track: i64,
    pub name: String,
    pub number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MinutesLineView {
    #[serde(flatten)]
    pub line: MinuteLine,
    /// The speaker as the minutes name them ("Alice (1001)").
    pub speaker: String,
    /// Plays exactly this utterance (`downloadRecording` with its span).
    pub audio: String,
}

/// A person as the minutes name them: "Alice (1001)", or whichever of the two there is.
fn named(name: &str, number: &str) -> String {
    match (name.is_empty(), number.is_empty()) {
        (false, false) if name != number => format!("{name} ({number})"),
        (false, _) => name.to_owned(),
        (true, _) => number.to_owned(),
    }
}

fn speaker(t: Option<&RecordingTrack>) -> String {
    t.map_or_else(String::new, |t| named(&t.name, &t.number))
}

fn audio_path(recording_id: &str, l: &MinuteLine) -> String {
    format!(
        "/api/v1/recordings/{recording_id}/tracks/{}/audio?from_ms={}&to_ms={}",
        l.track, l.start_ms, l.end_ms
    )
}

async fn view(
    state: &AppState,
    conn: &mut Conn,
    caller: &Caller,
    recording: &Recording,
) -> ApiResult<MinutesView> {
    let minutes = repo::minutes::get(conn, &recording.id).await?;
    let tracks = repo::recordings::tracks(conn, &recording.id).await?;
    let lines = repo::minutes::lines(conn, &recording.id).await?;
    let (total, done) = repo::minutes::progress(conn, &recording.id).await?;
    let service = state.meetings.minutes();
    let (state_name, error) = match (&minutes, service.and_then(|m| m.unavailable())) {
        (Some(m), Some(why)) if m.state == "unavailable" => (m.state.clone(), Some(why.to_owned())),
        (Some(m), _) => (m.state.clone(), m.error.clone()),
        (None, Some(why)) => ("unavailable".to_owned(), Some(why.to_owned())),
        (None, None) => ("none".to_owned(), None),
    };
    Ok(MinutesView {
        recording_id: recording.id.clone(),
        state: state_name,
        error,
        done,
        total,
        live: recording.state == "recording",
        room_number: recording.room_number.clone(),
        room_name: recording.room_name.clone(),
        started_at: recording.started_at,
        ended_at: recording.ended_at,
        members: tracks
            .iter()
            .filter(|t| t.kind == "member")
            .map(|t| MinutesMember {
                track: t.track,
                name: t.name.clone(),
                number: t.number.clone(),
            })
            .collect(),
        lines: lines
            .into_iter()
            .filter(|l| !l.text.trim().is_empty())
            .map(|l| MinutesLineView {
                speaker: speaker(tracks.iter().find(|t| t.track == l.track)),
                audio: audio_path(&recording.id, &l),
                line: l,
            })
            .collect(),
        editable: manages(conn, caller, recording).await?,
    })
}

/// A recording's minutes: how far they are, who spoke, and each line with the audio of
/// exactly that utterance.
#[utoipa::path(get, path = "/recordings/{recording_id}/minutes", operation_id = "getMinutes", tag = "minutes",
    security(("bearer" = [])), params(("recording_id" = String, Path)),
    responses((status = 200, body = MinutesView), (status = 404, body = Problem)))]
async fn get_minutes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MinutesView>> {
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    Ok(Json(view(&state, &mut conn, &caller, &recording).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MinutesUpdate {
    /// Lines to correct, each named by its track and start.
    #[serde(default)]
    pub lines: Vec<LineEdit>,
    /// Make the minutes again from the audio: lines nobody edited are recognized anew
    /// (after a failure, or once the server has its speech model).
    #[serde(default)]
    pub remake: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineEdit {
    pub track: i64,
    pub start_ms: i64,
    /// The corrected text (what was recognized stays, as `recognized`).
    pub text: String,
}

/// Corrects lines of the minutes (administrators and the room's owner), or has them made
/// again. Each edit names who made it; the original recognition is kept.
#[utoipa::path(patch, path = "/recordings/{recording_id}/minutes", operation_id = "updateMinutes", tag = "minutes",
    security(("bearer" = [])), params(("recording_id" = String, Path)), request_body = MinutesUpdate,
    responses((status = 200, body = MinutesView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_minutes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<MinutesUpdate>,
) -> ApiResult<Json<MinutesView>> {
    if update.lines.len() > MAX_EDITS {
        return Err(ApiError::field("lines", "at most 200 lines at once"));
    }
    for (i, edit) in update.lines.iter().enumerate() {
        if edit.text.chars().count() > MAX_LINE {
            return Err(ApiError::field(
                format!("lines[{i}].text"),
                "at most 4000 characters",
            ));
        }
        if edit.text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ApiError::field(
                format!("lines[{i}].text"),
                "no control characters",
            ));
        }
    }
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    if !manages(&mut conn, &caller, &recording).await? {
        return Err(ApiError::forbidden(
            "only administrators and the room's owner edit its minutes",
        ));
    }
    drop(conn);
    let mut tx = state.store.begin().await?;
    let at = now_ms();
    let who = if caller.user.display_name.is_empty() {
        caller.user.username.clone()
    } else {
        caller.user.display_name.clone()
    };
    for (i, edit) in update.lines.iter().enumerate() {
        let text = edit.text.trim();
        if !repo::minutes::edit_line(&mut tx, &id, edit.track, edit.start_ms, text, &who, at)
            .await?
        {
            return Err(ApiError::field(
                format!("lines[{i}]"),
                "the minutes have no line at that track and start",
            ));
        }
    }
    if update.remake {
        if let Some(why) = state.meetings.minutes().and_then(|m| m.unavailable()) {
            return Err(ApiError::conflict("remake", why));
        }
        repo::minutes::clear_unedited(&mut tx, &id).await?;
        if repo::minutes::get(&mut tx, &id).await?.is_some() {
            repo::minutes::set_state(&mut tx, &id, "queued", None, 0, at).await?;
        }
    }
    audit(
        &mut tx,
        &caller,
        Audit {
            action: "updateMinutes",
            tenant_id: &recording.tenant_id,
            target_type: "recording",
            target_id: Some(&recording.id),
            detail: serde_json::json!({ "room": recording.room_number, "lines": update.lines.len(),
                                        "remake": update.remake }),
        },
    )
    .await?;
    tx.commit().await?;
    if update.remake
        && let Some(m) = state.meetings.minutes()
    {
        m.wake();
    }
    let mut conn = state.store.conn().await?;
    Ok(Json(view(&state, &mut conn, &caller, &recording).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `markdown`, `docx`, `pdf` or `json`.
    pub format: String,
    /// The headings' language: `en` (default) or `zh`.
    pub lang: Option<String>,
    /// The time zone times are written in (IANA, `Asia/Shanghai`); default UTC.
    pub tz: Option<String>,
}

/// The minutes as a file to take away: Markdown, Word (.docx), PDF or JSON; every line
/// links to the console, where it plays. Audited.
#[utoipa::path(get, path = "/recordings/{recording_id}/minutes/export", operation_id = "exportMinutes", tag = "minutes",
    security(("bearer" = [])), params(("recording_id" = String, Path), ExportParams),
    responses((status = 200, description = "the minutes as a file", content(
            (String = "text/markdown"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            (Vec<u8> = "application/pdf"),
            (MinutesView = "application/json"))),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn export_minutes(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    let zh = match p.lang.as_deref() {
        None | Some("en") => false,
        Some("zh") => true,
        Some(_) => return Err(ApiError::field("lang", "en or zh")),
    };
    let tz = match p.tz.as_deref() {
        None => chrono_tz::UTC,
        Some(name) => {
            crate::scheduling::recurrence::parse_tz(name).map_err(|e| ApiError::field("tz", e))?
        }
    };
    let (content_type, extension) = match p.format.as_str() {
        "markdown" => ("text/markdown; charset=utf-8", "md"),
        "docx" => (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        ),
        "pdf" => ("application/pdf", "pdf"),
        "json" => ("application/json", "json"),
        _ => return Err(ApiError::field("format", "markdown, docx, pdf or json")),
    };
    let mut conn = state.store.conn().await?;
    let recording = load(&mut conn, &caller, &id).await?;
    let minutes = view(&state, &mut conn, &caller, &recording).await?;
    let origin = origin(&headers);
    let link = |l: &MinuteLine| {
        format!(
            "{origin}/#recording={}&track={}&at={}",
            recording.id, l.track, l.start_ms
        )
    };
    let body: Vec<u8> = if p.format == "json" {
        serde_json::to_vec_pretty(&minutes).map_err(ApiError::internal)?
    } else {
        let clock = |ms: i64| {
            let s = ms.max(0) / 1000;
            format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        };
        let minutes_long = recording
            .ended_at
            .map(|e| ((e - recording.started_at).max(0) + 59_999) / 60_000);
        let started =
            crate::scheduling::recurrence::local_of(tz, recording.started_at).replace('T', " ");
        let doc = Document {
            title: if zh {
                format!(
                    "会议纪要 — {} {}",
                    recording.room_number, recording.room_name
                )
            } else {
                format!(
                    "Minutes — {} {}",
                    recording.room_number, recording.room_name
                )
            },
            when: match (minutes_long, zh) {
                (Some(m), true) => format!("{started}（{}），{m} 分钟", tz.name()),
                (Some(m), false) => format!("{started} ({}), {m} min", tz.name()),
                (None, _) => format!("{started} ({})", tz.name()),
            },
            members: minutes
                .members
                .iter()
                .map(|m| named(&m.name, &m.number))
                .collect(),
            lines: minutes
                .lines
                .iter()
                .map(|l| Line {
                    at: clock(l.line.start_ms),
                    speaker: l.speaker.clone(),
                    text: l.line.text.clone(),
                    link: link(&l.line),
                })
                .collect(),
            labels: if zh {
                Labels {
                    when: "时间".into(),
                    members: "参会人".into(),
                    minutes: "纪要".into(),
                    play: "播放".into(),
                }
            } else {
                Labels::default()
            },
        };
        match p.format.as_str() {
            "markdown" => document::markdown(&doc).into_bytes(),
            "docx" => document::docx(&doc).map_err(ApiError::internal)?,
            _ => document::pdf(&doc),
        }
    };
    audit(
        &mut conn,
        &caller,
        Audit {
            action: "exportMinutes",
            tenant_id: &recording.tenant_id,
            target_type: "recording",
            target_id: Some(&recording.id),
            detail: serde_json::json!({ "room": recording.room_number, "format": p.format }),
        },
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"minutes-{}-{}.{extension}\"",
                    recording.room_number.replace(['"', '\\'], ""),
                    crate::scheduling::recurrence::local_of(tz, recording.started_at)
                        .replace([':', 'T'], "")
                ),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// Where the console is, as the caller reached it (links in exported minutes).
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words to find (all of them, anywhere in a line: Chinese needs no spaces), 1 to 100
    /// characters.
    pub q: String,
    /// How many at most (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A line found, with its recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinutesHit {
    pub recording_id: String,
    pub room_number: String,
    pub room_name: String,
    pub started_at: i64,
    pub speaker: String,
    #[serde(flatten)]
    pub line: MinuteLine,
    pub audio: String,
}

/// Searches the tenant's minutes (every recording the caller may play): lines holding all
/// the words, newest recording first.
#[utoipa::path(get, path = "/minutes", operation_id = "searchMinutes", tag = "minutes",
    security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = List<MinutesHit>), (status = 422, body = Problem)))]
async fn search_minutes(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> ApiResult<Json<List<MinutesHit>>> {
    let limit = page_limit(p.limit)?;
    let q = p.q.trim();
    if q.is_empty() || q.chars().count() > 100 {
        return Err(ApiError::field("q", "1 to 100 characters"));
    }
    let terms: Vec<String> = q
        .to_lowercase()
        .split_whitespace()
        .take(8)
        .map(str::to_owned)
        .collect();
    let cursor = match p.cursor.as_deref() {
        None => None,
        Some(c) => {
            let mut parts = c.splitn(3, ':');
            match (
                parts.next(),
                parts.next().and_then(|s| s.parse::<i64>().ok()),
                parts.next().and_then(|s| s.parse::<i64>().ok()),
            ) {
                (Some(id), Some(ms), Some(track)) if !id.is_empty() => {
                    Some((id.to_owned(), ms, track))
                }
                _ => return Err(ApiError::field("cursor", "not a cursor of this list")),
            }
        }
    };
    let mut conn = state.store.conn().await?;
    let mut items = Vec::new();
    let mut cursor = cursor;
    let mut next_cursor = None;
    let mut recordings: std::collections::HashMap<
        String,
        Option<(Recording, Vec<RecordingTrack>)>,
    > = Default::default();
    // lines of recordings the caller may not play are skipped: a few pages fill one
    'pages: for _ in 0..10 {
        let hits = repo::minutes::search(
            &mut conn,
            caller.tenant_id(),
            &terms,
            cursor.as_ref().map(|(id, ms, t)| (id.as_str(), *ms, *t)),
            limit + 1,
        )
        .await?;
        let more = hits.len() as i64 > limit;
        for hit in hits.into_iter().take(limit as usize) {
            cursor = Some((hit.recording_id.clone(), hit.line.start_ms, hit.line.track));
            if hit.line.text.trim().is_empty() {
                continue;
            }
            if !recordings.contains_key(&hit.recording_id) {
                let found = match repo::recordings::get(&mut conn, &hit.recording_id).await? {
                    Some(r) if visible(&mut conn, &caller, &r).await? => {
                        let tracks = repo::recordings::tracks(&mut conn, &r.id).await?;
                        Some((r, tracks))
                    }
                    _ => None,
                };
                recordings.insert(hit.recording_id.clone(), found);
            }
            let Some(Some((r, tracks))) = recordings.get(&hit.recording_id) else {
                continue;
            };
            items.push(MinutesHit {
                recording_id: r.id.clone(),
                room_number: r.room_number.clone(),
                room_name: r.room_name.clone(),
                started_at: r.started_at,
                speaker: speaker(tracks.iter().find(|t| t.track == hit.line.track)),
                audio: audio_path(&r.id, &hit.line),
                line: hit.line,
            });
            if items.len() as i64 == limit {
                next_cursor = cursor.as_ref().map(|(id, ms, t)| format!("{id}:{ms}:{t}"));
                break 'pages;
            }
        }
        if !more {
            break;
        }
    }
    Ok(Json(List { items, next_cursor }))
}
