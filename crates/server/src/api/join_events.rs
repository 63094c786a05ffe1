//! The join page's roster, pushed: a WebSocket that sends the meeting as the browser's member
//! sees it (`MyMeeting`) when it opens and again whenever the meeting changes, and closes when
//! the meeting lets the member go. Before it the page asked `/join/me` every second.
//!
//! Bursts (everyone's voice activity in a busy room) are gathered: at most one roster every
//! [`GATHER`], always the latest. The stream holds no credential of its own: it lives exactly
//! as long as the member's session, and one session holds at most
//! [`crate::browser::MAX_WATCHERS`] streams.

use super::join::{MyMeeting, bearer, member_of, my_meeting_now, session_by_token};
use super::problem::{ApiError, Problem};
use super::{ApiQuery, AppState};
use crate::browser::{Session, Stand, Watcher};
use crate::meeting::{LiveChange, LiveEvent};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use conclave_conference::live::{Event, MemberId};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use utoipa::IntoParams;

/// The shortest gap between two rosters sent.
const GATHER: Duration = Duration::from_millis(150);
/// How often the roster is looked at without an event: what changes without one (each
/// member's media figures, who is in which tile) goes out when it differs.
const REFRESH: Duration = Duration::from_secs(2);
/// How long a send to a slow page may take before the stream is dropped (the page then
/// opens a new one, or falls back to asking).
const SEND_WITHIN: Duration = Duration::from_secs(10);
/// WebSocket close code: the meeting let the member go (ended, removed, left).
const CLOSE_LET_GO: u16 = 4401;
/// WebSocket close code: this session already holds its streams.
const CLOSE_TOO_MANY: u16 = 4429;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// The token `joinMeeting` returned, for browsers that cannot set an Authorization header
    /// on a WebSocket.
    pub access_token: Option<String>,
}

/// The meeting as this browser's member sees it, pushed (WebSocket upgrade; each message is a
/// `MyMeeting` as JSON: one at once, then one after each change). Closes with 4401 when the
/// meeting lets the member go, 4429 when the session already has two streams open.
#[utoipa::path(get, path = "/join/me/events", operation_id = "watchMyMeeting", tag = "join",
    security(("bearer" = [])), params(WatchParams),
    responses((status = 101, description = "switching to the WebSocket protocol", body = MyMeeting),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
pub(super) async fn watch_my_meeting(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<WatchParams>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers).map(str::to_owned).or(p.access_token);
    let session = session_by_token(&state, token.as_deref().map(str::trim))?;
    let member = member_of(&session)?;
    let upgrade = upgrade.map_err(|_| {
        ApiError::bad_request("this is a WebSocket endpoint: send an Upgrade request")
    })?;
    let watcher = session.watch();
    Ok(upgrade
        .max_message_size(4096)
        .on_upgrade(move |socket| async move {
            match watcher {
                Some(watcher) => push(socket, state, session, member, watcher).await,
                None => {
                    close(
                        socket,
                        CLOSE_TOO_MANY,
                        "this session's roster streams are open already",
                    )
                    .await
                }
            }
        }))
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    metrics::counter!("conclave_join_streams_closed_total", "code" => code.to_string())
        .increment(1);
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(SEND_WITHIN, socket.send(Message::Close(Some(frame)))).await;
}

/// Why the meeting let the member go, or None while it has not.
fn let_go(stand: &Stand) -> Option<String> {
    match stand {
        Stand::Member(_) => None,
        Stand::Waiting => Some("not in the meeting".to_owned()),
        Stand::Gone(reason) => Some(
            reason
                .clone()
                .unwrap_or_else(|| "you left the meeting".into()),
        ),
    }
}

async fn push(
    mut socket: WebSocket,
    state: AppState,
    session: Arc<Session>,
    member: MemberId,
    _watcher: Watcher,
) {
    let mut events = state.meetings.subscribe();
    let mut stand = session.stand_changes();
    // the first roster goes at once; after an event, the next at most GATHER after the last
    let mut due = Instant::now();
    let mut changed_since = true;
    let mut last_sent: Option<(Instant, String)> = None;
    loop {
        let gone = let_go(&stand.borrow_and_update());
        if let Some(reason) = gone {
            return close(socket, CLOSE_LET_GO, &reason).await;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {
                let Some(now) = my_meeting_now(&state, &session, member).await else {
                    return close(socket, CLOSE_LET_GO, "the meeting has ended").await;
                };
                changed_since = false;
                due = Instant::now() + REFRESH;
                let Ok(text) = serde_json::to_string(&now) else { continue };
                if last_sent.as_ref().is_some_and(|(_, sent)| *sent == text) {
                    continue;
                }
                let message = Message::Text(text.clone().into());
                match tokio::time::timeout(SEND_WITHIN, socket.send(message)).await {
                    Ok(Ok(())) => last_sent = Some((Instant::now(), text)),
                    _ => return,
                }
            }
            changed = stand.changed() => {
                if changed.is_err() {
                    return close(socket, CLOSE_LET_GO, "you left the meeting").await;
                }
            }
            event = events.recv() => match event {
                Ok(event) if event.room_id != session.room_id => {}
                // a stroke for our whiteboard: drawn at once by the page (not a roster)
                Ok(LiveEvent {
                    event: LiveChange::Meeting(Event::Stroke { presenter, by, stroke }),
                    ..
                }) => {
                    if presenter != member {
                        continue;
                    }
                    let text = serde_json::json!({ "stroke": { "by": by, "pen": stroke.pen, "points": stroke.points } })
                        .to_string();
                    match tokio::time::timeout(SEND_WITHIN, socket.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => metrics::counter!("conclave_whiteboard_strokes_total").increment(1),
                        _ => return,
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) if !changed_since => {
                    changed_since = true;
                    let next = last_sent.as_ref().map_or(Instant::now(), |(at, _)| *at + GATHER);
                    due = next.max(Instant::now());
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
