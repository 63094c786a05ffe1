//! Live events over a WebSocket: every meeting event of the caller's tenant as it happens
//! (joined, left, muted, talking, locked, …), as JSON text messages.

use super::extract::{ClientAddr, authenticate, recheck};
use super::problem::{ApiError, Problem};
use super::{ApiQuery, AppState};
use crate::meeting::{DIRECT_CALL_ROOM, LiveChange, LiveEvent};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::Response;
use conclave_conference::live::Event;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(subscribe_events))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// The session token or API key, for browsers that cannot set an Authorization header on a
    /// WebSocket.
    pub access_token: Option<String>,
}

/// Subscribe to the tenant's live meeting events (WebSocket upgrade; each message is one
/// `LiveEvent` as JSON).
#[utoipa::path(get, path = "/events", operation_id = "subscribeEvents", tag = "conferences",
    security(("bearer" = [])), params(EventParams),
    responses((status = 101, description = "switching to the WebSocket protocol", body = LiveEvent),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn subscribe_events(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<EventParams>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = bearer
        .or(p.access_token)
        .ok_or_else(|| ApiError::unauthorized("a token is needed"))?;
    let caller = authenticate(&state, token.trim(), source).await?;
    let upgrade = upgrade.map_err(|_| {
        ApiError::bad_request("this is a WebSocket endpoint: send an Upgrade request")
    })?;
    let events = state.meetings.subscribe();
    let tenant = caller.tenant_id().to_owned();
    let viewer = Viewer {
        user_id: caller.user.id.clone(),
        admin: caller.administers(&tenant),
        calls: HashMap::new(),
    };
    let credential = Credential {
        state,
        token: token.trim().to_owned(),
        source,
    };
    Ok(upgrade.on_upgrade(move |socket| forward(socket, events, tenant, viewer, credential)))
}

/// How often an open stream checks that its credential still holds: a session that expires
/// ends its stream within this time. Revocations (logout, freeze, deletion) are pushed at once.
const RECHECK: Duration = Duration::from_secs(5);

/// WebSocket close code for "the credential ended" (4000–4999 are the application's).
const CLOSE_CREDENTIAL_ENDED: u16 = 4401;

/// What an open stream was authenticated with, to check it again.
struct Credential {
    state: AppState,
    token: String,
    source: std::net::SocketAddr,
}

impl Credential {
    /// Why the credential no longer holds (expired, revoked, account frozen or deleted), or
    /// None while it does. A store that cannot answer is not a reason to drop the stream.
    async fn ended(&self) -> Option<String> {
        match recheck(&self.state, &self.token, self.source).await {
            Ok(_) => None,
            Err(err) if matches!(err.status.as_u16(), 401 | 403) => Some(err.detail),
            Err(err) => {
                tracing::debug!(?err, "could not check an event stream's credential");
                None
            }
        }
    }
}

async fn close_ended(mut socket: WebSocket, reason: String) {
    metrics::counter!("conclave_event_streams_closed_total", "reason" => "credential").increment(1);
    let frame = CloseFrame {
        code: CLOSE_CREDENTIAL_ENDED,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Who reads the stream: a direct call's events (who phones whom) go only to its two parties
/// and the tenant's administrators, as `listConferences` shows calls.
struct Viewer {
    user_id: String,
    admin: bool,
    /// Per direct call's room: whether this user is one of its parties (decided while the
    /// call is live, kept for its last events). Bounded: cleared past [`MAX_CALLS_KEPT`].
    calls: HashMap<String, bool>,
}

const MAX_CALLS_KEPT: usize = 1024;

impl Viewer {
    async fn sees(&mut self, state: &AppState, tenant: &str, room_id: &str) -> bool {
        if self.admin || !room_id.starts_with(DIRECT_CALL_ROOM) {
            return true;
        }
        if let Some(seen) = self.calls.get(room_id) {
            return *seen;
        }
        let party = state
            .meetings
            .list(tenant)
            .await
            .iter()
            .find(|m| m.room_id == room_id)
            .and_then(|m| m.call.as_ref())
            .is_some_and(|call| {
                call.caller_user_id == self.user_id || call.callee_user_id == self.user_id
            });
        if self.calls.len() >= MAX_CALLS_KEPT {
            self.calls.clear();
        }
        self.calls.insert(room_id.to_owned(), party);
        party
    }
}

async fn forward(
    mut socket: WebSocket,
    mut events: tokio::sync::broadcast::Receiver<LiveEvent>,
    tenant: String,
    mut viewer: Viewer,
    credential: Credential,
) {
    let mut revoked = credential.state.credentials_revoked.subscribe();
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Some(reason) = credential.ended().await {
                    return close_ended(socket, reason).await;
                }
            }
            changed = revoked.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(reason) = credential.ended().await {
                    return close_ended(socket, reason).await;
                }
            }
            event = events.recv() => match event {
                // a whiteboard's strokes are for the presenter's page alone
                Ok(LiveEvent {
                    event: LiveChange::Meeting(Event::Stroke { .. }),
                    ..
                }) => {}
                Ok(event) if event.tenant_id == tenant => {
                    if !viewer.sees(&credential.state, &tenant, &event.room_id).await {
                        continue;
                    }
                    let Ok(text) = serde_json::to_string(&event) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    let note = serde_json::json!({ "lagged": missed }).to_string();
                    if socket.send(Message::Text(note.into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
