//! Joining a meeting from a browser: the meeting number, the PIN when the room has one, a
//! name, and the browser's WebRTC offer; the answer comes back once the meeting has taken the
//! browser in (the same admission as a phone's: lock, capacity, roles, mute on entry).
//!
//! A logged-in user joins as themself, with the role the room gives them; anyone else as a
//! guest participant. What the page does afterwards (its roster, muting itself, a raised hand,
//! a chair's controls, leaving) goes with the token the join returned, which is scoped to that
//! one browser in that one meeting and dies with it (`crate::browser`). Every action passes
//! the meeting's one permission check as this member.

use super::extract::{ApiJson, ClientAddr, authenticate};
use super::problem::{ApiError, ApiResult, Problem};
use super::{AppState, host_name};
use crate::browser::{Full, NewSession, Session, Stand};
use crate::meeting::leg::{Leg, LegKind, LegSignals, MemberSpec, Party, next_leg_id};
use crate::meeting::types::RosterEntry;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use conclave_conference::Role;
use conclave_conference::live::{Actor, Command, JoinedVia, MemberId, Refused};
use conclave_media::codec::CodecKind;
use conclave_media::mixer::MemberConfig;
use conclave_media::webrtc::{AUDIO_LEVEL_EXT, WebRtcPeer};
use conclave_store::repo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join_meeting))
        .routes(routes!(my_meeting, leave_meeting))
        .routes(routes!(act_in_meeting))
        .routes(routes!(renegotiate))
        .routes(routes!(super::join_events::watch_my_meeting))
}

/// The longest SDP offer taken (an audio offer is 2–6 KiB; with video, a camera, a screen
/// and 23 receiving tiles, about 40 KiB).
const MAX_OFFER: usize = 96 * 1024;
/// How long the meeting may take to take a browser in.
const ADMISSION_WAIT: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The meeting (room) number.
    pub number: String,
    /// The room's PIN, when it has one (a member of the room may not need it).
    #[serde(default)]
    pub pin: Option<String>,
    /// The name the others see (a logged-in user's own name when left out).
    #[serde(default)]
    pub name: Option<String>,
    /// The browser's SDP offer (audio).
    pub sdp: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Joined {
    /// Scoped to this browser in this meeting: send as `Authorization: Bearer` to `/join/me`.
    pub token: String,
    /// Our SDP answer.
    pub sdp: String,
    pub member_id: MemberId,
    pub role: Role,
    pub room_number: String,
    pub room_name: String,
}

/// Why the meeting turned a browser away: the problem's type ends in a word the page can
/// translate (`locked`, `full`, `ended`, `wrong-pin`, `pin-required`, `blocked`, `busy`).
fn refusal(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError {
        status,
        slug: reason,
        title: "Cannot join the meeting",
        ..ApiError::bad_request(detail.into())
    }
}

/// Join a meeting from a browser (WebRTC).
#[utoipa::path(post, path = "/join", operation_id = "joinMeeting", tag = "join",
    request_body = JoinRequest,
    responses((status = 201, body = Joined), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn join_meeting(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<JoinRequest>,
) -> ApiResult<(StatusCode, Json<Joined>)> {
    let number = body.number.trim();
    if number.is_empty() || number.len() > 32 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field("number", "a meeting number is digits"));
    }
    if body.sdp.len() > MAX_OFFER {
        return Err(ApiError::field("sdp", "the offer is too long"));
    }
    // a logged-in user joins as themself (a stale token is an error, not a guest)
    let user = match bearer(&headers) {
        Some(token) => Some(authenticate(&state, token, source).await?.user),
        None => None,
    };
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| user.as_ref().map(|u| u.display_name.clone()))
        .ok_or_else(|| ApiError::field("name", "say who you are"))?;
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "at most 64 characters, no control characters",
        ));
    }
    let domain = host_name(&headers);
    let meetings = &state.meetings;
    let Some(room) = crate::rooms::find_dialled(&state.store, number, domain).await else {
        return Err(ApiError::not_found("meeting room"));
    };
    let user = user.filter(|u| u.tenant_id == room.tenant_id);
    home_here(&state, &room).await?;
    // a live meeting asks for the PIN it started with (as it does of phones)
    let pin = match meetings.live_room(&room.id) {
        Some(live) => live.pin,
        None => room.pin.clone(),
    };
    let role = match &user {
        Some(u) => {
            let mut conn = state.store.conn().await?;
            repo::rooms::member_role(&mut conn, &room.id, Some(&u.id), None).await?
        }
        None => None,
    };
    if let Some(pin) = pin.filter(|_| !(role.is_some() && room.members_skip_pin)) {
        let Some(keyed) = body.pin.as_deref().map(str::trim).filter(|p| !p.is_empty()) else {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "pin-required",
                "this meeting needs its PIN",
            ));
        };
        let target = crate::limiter::Target::Room(room.id.clone());
        let permit = meetings
            .pins()
            .attempt(target, source.ip())
            .map_err(|blocked| {
                refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    "blocked",
                    format!(
                        "too many wrong PINs: try again in {} s",
                        blocked.retry_after_secs()
                    ),
                )
            })?;
        if keyed != pin {
            permit.failed();
            return Err(refusal(StatusCode::FORBIDDEN, "wrong-pin", "wrong PIN"));
        }
        permit.succeeded();
    }
    // the media: the room's worker answers the offer on its port
    let media = meetings.media().room(&room.id);
    let endpoint = media
        .endpoint(false)
        .map_err(|e| ApiError::unavailable(format!("no media port: {e}")))?;
    let identity = meetings.media().webrtc_identity().clone();
    let tcp = meetings.media().tcp_candidate();
    let (peer, answer) =
        WebRtcPeer::accept(&body.sdp, endpoint.addr, tcp, &identity, Instant::now())
            .map_err(|e| ApiError::field("sdp", e.to_string()))?;
    meetings.media().route_ice_username(peer.ufrag(), &media);
    drop(media);
    let mut config = MemberConfig::new(CodecKind::Opus, rand::random());
    config.payload_type = peer.opus_payload_type();
    config.audio_level_ext = Some(AUDIO_LEVEL_EXT);
    config.rtcp_mux = true;
    config.initial_seq = rand::random();
    config.initial_ts = rand::random();
    let leg_id = next_leg_id();
    let signals = LegSignals::default();
    let (session, token) = state
        .browsers
        .open(NewSession {
            leg: leg_id,
            tenant_id: room.tenant_id.clone(),
            room_id: room.id.clone(),
            room_number: room.number.clone(),
            room_name: room.name.clone(),
            name: name.clone(),
            ip: source.ip(),
            signals: signals.clone(),
        })
        .map_err(|full| {
            let detail = match full {
                Full::Address => "too many browsers from this address",
                Full::Server => "the server has as many browsers as it takes",
            };
            refusal(StatusCode::TOO_MANY_REQUESTS, "busy", detail)
        })?;
    let leg = Leg {
        id: leg_id,
        kind: LegKind::Browser {
            session: session.id,
        },
        who: Party {
            name,
            number: String::new(),
            ip: Some(source.ip()),
            role: role.unwrap_or(Role::Participant),
        },
        via: JoinedVia::Browser,
        video_endpoint: None,
        media: Some(MemberSpec {
            video: None,
            config,
            on_hold: false,
        }),
        endpoint,
        needs_pin: false,
        invitation: None,
        greeting: None,
        signals,
        control: Arc::new(state.browsers.clone()),
        waiting: None,
        webrtc: Some(Box::new(peer)),
    };
    meetings.arrive(&room, leg);
    metrics::counter!("conclave_browser_joins_total").increment(1);
    match session.settled(ADMISSION_WAIT).await {
        Stand::Member(member_id) => Ok((
            StatusCode::CREATED,
            Json(Joined {
                // in a cluster the token names this node: the page's next requests reach it
                // through any node
                token: match state.meetings.cluster() {
                    Some(cluster) => format!("{}~{token}", cluster.node_id()),
                    None => token,
                },
                sdp: answer,
                member_id,
                role: role.unwrap_or(Role::Participant),
                room_number: room.number,
                room_name: room.name,
            }),
        )),
        Stand::Gone(reason) => {
            let reason = reason.unwrap_or_else(|| "the meeting has ended".into());
            let code = if reason.contains("locked") {
                "locked"
            } else if reason.contains("full") {
                "full"
            } else {
                "ended"
            };
            Err(refusal(StatusCode::FORBIDDEN, code, reason))
        }
        Stand::Waiting => {
            session.leave();
            Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the meeting did not answer in time",
            ))
        }
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The browser's session, from its token.
fn session_of(state: &AppState, headers: &HeaderMap) -> Result<Arc<Session>, ApiError> {
    session_by_token(state, bearer(headers))
}

/// The browser's session, from its token (a cluster's `node~token` or the token alone).
pub(super) fn session_by_token(
    state: &AppState,
    token: Option<&str>,
) -> Result<Arc<Session>, ApiError> {
    token
        .map(|t| t.split_once('~').map_or(t, |(_, t)| t))
        .and_then(|t| state.browsers.get(t))
        .ok_or_else(|| ApiError::unauthorized("not in a meeting (it has ended, or you left)"))
}

pub(super) fn member_of(session: &Session) -> Result<MemberId, ApiError> {
    match session.stand() {
        Stand::Member(id) => Ok(id),
        _ => Err(ApiError::unauthorized("not in the meeting")),
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MyMeeting {
    pub member_id: MemberId,
    pub room_number: String,
    pub room_name: String,
    pub locked: bool,
    /// Everyone in the meeting, this browser included, with who is talking.
    pub members: Vec<RosterEntry>,
    /// The chair's video layout.
    pub layout: conclave_conference::layout::Layout,
    /// Who is in which tile: the page's receiving video sections show them in this order
    /// (its own tile is its camera's preview).
    pub tiles: Vec<conclave_conference::layout::TileView>,
}

/// The meeting as this browser's member sees it: the roster, live.
#[utoipa::path(get, path = "/join/me", operation_id = "getMyMeeting", tag = "join",
    security(("bearer" = [])),
    responses((status = 200, body = MyMeeting), (status = 401, body = Problem)))]
async fn my_meeting(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<MyMeeting>> {
    let session = session_of(&state, &headers)?;
    let member_id = member_of(&session)?;
    my_meeting_now(&state, &session, member_id)
        .await
        .map(Json)
        .ok_or_else(|| ApiError::unauthorized("the meeting has ended"))
}

/// The meeting as the member sees it now; None once it has ended.
pub(super) async fn my_meeting_now(
    state: &AppState,
    session: &Session,
    member_id: MemberId,
) -> Option<MyMeeting> {
    let live = state.meetings.snapshot(&session.room_id).await?;
    Some(MyMeeting {
        member_id,
        room_number: live.room_number,
        room_name: live.room_name,
        locked: live.locked,
        members: live.members,
        layout: live.layout,
        tiles: live.tiles,
    })
}

/// Leave the meeting.
#[utoipa::path(delete, path = "/join/me", operation_id = "leaveMyMeeting", tag = "join",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
async fn leave_meeting(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let session = session_of(&state, &headers)?;
    session.leave();
    Ok(StatusCode::NO_CONTENT)
}

/// What a browser's member does in the meeting.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum MemberAction {
    Mute,
    Unmute,
    RaiseHand,
    LowerHand,
    /// A chair's: mute someone.
    MuteMember {
        member: MemberId,
    },
    UnmuteMember {
        member: MemberId,
    },
    /// A chair's: remove someone.
    RemoveMember {
        member: MemberId,
    },
    MuteAll,
    Lock,
    Unlock,
    /// Share one's screen (the page then sends it): it takes the large tile. `board`: what
    /// is shared is the page's whiteboard, on which chairs may draw too.
    StartShare {
        #[serde(default)]
        board: bool,
    },
    /// A stroke on the shared whiteboard (its presenter's, or a chair's): the presenter's page
    /// draws it, over its `/join/me/events` stream.
    Draw {
        stroke: conclave_conference::whiteboard::Stroke,
    },
    /// End the share (one's own, or a chair's ending anyone's).
    StopShare,
    /// A chair's: the layout ("1", "4", "1+7", "1+21", "2+21").
    SetLayout {
        layout: conclave_conference::layout::LayoutKind,
    },
    /// A chair's: keep a member in a tile.
    Pin {
        member: MemberId,
        tile: usize,
    },
    /// A chair's: free a tile.
    Unpin {
        tile: usize,
    },
    /// A chair's: polling on tiles (none: off).
    SetPolling {
        tiles: Vec<usize>,
        interval_secs: u32,
        #[serde(default)]
        members: Vec<MemberId>,
    },
}

/// Act in the meeting as this browser's member (the meeting's permission check decides).
#[utoipa::path(post, path = "/join/me/actions", operation_id = "actInMyMeeting", tag = "join",
    security(("bearer" = [])), request_body = MemberAction,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn act_in_meeting(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(action): ApiJson<MemberAction>,
) -> ApiResult<StatusCode> {
    let session = session_of(&state, &headers)?;
    let me = member_of(&session)?;
    let command = match action {
        MemberAction::Mute => Command::MuteSelf,
        MemberAction::Unmute => Command::UnmuteSelf,
        MemberAction::RaiseHand => Command::RaiseHand { raised: true },
        MemberAction::LowerHand => Command::RaiseHand { raised: false },
        MemberAction::MuteMember { member } => Command::Mute { target: member },
        MemberAction::UnmuteMember { member } => Command::Unmute { target: member },
        MemberAction::RemoveMember { member } => Command::Kick { target: member },
        MemberAction::MuteAll => Command::MuteAll,
        MemberAction::Lock => Command::Lock,
        MemberAction::Unlock => Command::Unlock,
        MemberAction::StartShare { board } => Command::StartShare { member: me, board },
        MemberAction::Draw { stroke } => Command::Draw { stroke },
        MemberAction::StopShare => Command::StopShare,
        MemberAction::SetLayout { layout } => Command::SetLayout { kind: layout },
        MemberAction::Pin { member, tile } => Command::Pin {
            tile,
            member: Some(member),
        },
        MemberAction::Unpin { tile } => Command::Pin { tile, member: None },
        MemberAction::SetPolling {
            tiles,
            interval_secs,
            members,
        } => Command::SetPolling {
            polling: (!tiles.is_empty()).then_some(conclave_conference::layout::Polling {
                tiles,
                interval_secs,
                members,
            }),
        },
    };
    match state
        .meetings
        .apply(&session.room_id, Actor::Member(me), command, &session.name)
        .await
    {
        Some(Ok(())) => Ok(StatusCode::NO_CONTENT),
        Some(Err(
            refused @ (Refused::Denied(_)
            | Refused::ForbiddenToSpeak
            | Refused::SharingClosed
            | Refused::NotSharing),
        )) => Err(ApiError::forbidden(refused.to_string())),
        Some(Err(Refused::BadStroke(why))) => Err(ApiError::field("stroke", why)),
        Some(Err(refused)) => Err(ApiError::conflict("action", refused.to_string())),
        None => Err(ApiError::unauthorized("the meeting has ended")),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOffer {
    /// The browser's new SDP offer (an ICE restart).
    pub sdp: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NewAnswer {
    pub sdp: String,
}

/// After a network change the browser restarts ICE without leaving the meeting: its new
/// offer on the same session, answered by the same media worker.
#[utoipa::path(post, path = "/join/me/offer", operation_id = "renegotiateMyMedia", tag = "join",
    security(("bearer" = [])), request_body = NewOffer,
    responses((status = 200, body = NewAnswer), (status = 401, body = Problem),
        (status = 422, body = Problem)))]
async fn renegotiate(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewOffer>,
) -> ApiResult<Json<NewAnswer>> {
    let session = session_of(&state, &headers)?;
    member_of(&session)?;
    if body.sdp.len() > MAX_OFFER {
        return Err(ApiError::field("sdp", "the offer is too long"));
    }
    let media = state.meetings.media().room(&session.room_id);
    let answer = media
        .renegotiate_webrtc(session.leg, body.sdp)
        .await
        .map_err(|why| ApiError::field("sdp", why))?;
    // its new ICE username may come over TCP too
    if let Some(ufrag) = answer.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")) {
        state
            .meetings
            .media()
            .route_ice_username(ufrag.trim(), &media);
    }
    metrics::counter!("conclave_browser_ice_restarts_total").increment(1);
    Ok(Json(NewAnswer { sdp: answer }))
}

/// In a cluster, a browser joins on the meeting's home node: here, when this node is (or
/// becomes) the home; otherwise the answer names the node.
async fn home_here(state: &AppState, room: &conclave_store::model::Room) -> ApiResult<()> {
    super::claim_home(state, room, "number").await
}
