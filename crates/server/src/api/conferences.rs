//! Live meetings: the roster, and the chair's controls. Every control goes to the room's
//! meeting actor as a command and passes the same permission check as the keypad will.

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::{AppState, Audit, audit};
use crate::meeting::{CallState, DIRECT_CALL_ROOM, LiveConference};
use crate::outbound::{Dialer, Refusal};
use crate::sip::{Callee, InviteError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_conference::Role;
use conclave_conference::layout::{LayoutKind, Polling};
use conclave_conference::live::{Actor, Command, Refused};
use conclave_store::model::{MemberKind, Room, TemplateMember, TemplateSettings, UserStatus};
use conclave_store::{Conn, repo};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conferences))
        .routes(routes!(get_conference))
        .routes(routes!(mute_member))
        .routes(routes!(unmute_member))
        .routes(routes!(kick_member))
        .routes(routes!(mute_all))
        .routes(routes!(unmute_all))
        .routes(routes!(lock_conference))
        .routes(routes!(unlock_conference))
        .routes(routes!(start_recording))
        .routes(routes!(stop_recording))
        .routes(routes!(end_conference))
        .routes(routes!(set_member_speak))
        .routes(routes!(set_member_role))
        .routes(routes!(create_whisper_group))
        .routes(routes!(close_whisper_group))
        .routes(routes!(set_layout))
        .routes(routes!(pin_member, unpin_member))
        .routes(routes!(set_polling))
        .routes(routes!(start_share, stop_share))
        .routes(routes!(get_composed_picture))
        .routes(routes!(invite_member))
        .routes(routes!(redial_missing))
        .routes(routes!(start_conference))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartConference {
    /// A template (meeting scheme) to start: its room, members, roles and settings.
    #[serde(default)]
    pub template_id: Option<String>,
    /// Or a room to meet in, with `members` to call: an ad-hoc meeting (an operator starting
    /// one on behalf of a caller lists the caller among them).
    #[serde(default)]
    pub room_id: Option<String>,
    /// The ad-hoc meeting's members: users, contacts or phone numbers, with their roles.
    #[serde(default)]
    pub members: Vec<TemplateMember>,
    /// The ad-hoc meeting's settings (mute on entry, lock on start).
    #[serde(default)]
    pub settings: Option<TemplateSettings>,
    /// An operator starts the meeting for someone who phoned them: the live direct call's
    /// room id (`call-…`, from `listConferences`). That call ends, then everyone is called —
    /// list its caller among the members.
    #[serde(default)]
    pub replaces_call: Option<String>,
}

/// How calling one member went.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MemberCall {
    pub display_name: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// `calling`; `failed` with the reason; or `refused` with the reason when the tenant's
    /// outbound policy does not allow the call (who may call numbers, which, how many).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<u64>,
    /// The meeting's invitation for this member (its progress is in the roster's
    /// `invitations` and on the WebSocket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<u32>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Started {
    pub room_id: String,
    pub members: Vec<MemberCall>,
}

/// One click: start a stored meeting (a template) or an ad-hoc one (a room and a list of
/// people) and call every member in parallel; each joins, with their role, when they answer.
/// Extensions are called through their registrations, phone numbers through the trunks.
#[utoipa::path(post, path = "/conferences", operation_id = "startConference", tag = "conferences",
    security(("bearer" = [])), request_body = StartConference,
    responses((status = 201, body = Started), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn start_conference(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiJson(body): super::extract::ApiJson<StartConference>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let mut conn = state.store.conn().await?;
    let plan = match (body.template_id, body.room_id) {
        (Some(template_id), None) if body.members.is_empty() && body.settings.is_none() => {
            from_template(&state, &caller, &mut conn, &template_id).await?
        }
        (None, Some(room_id)) => {
            let room = room(&state, &caller, &room_id).await?;
            ad_hoc(&mut conn, &caller, room, body.members, body.settings).await?
        }
        _ => {
            return Err(ApiError::field(
                "template_id",
                "give a template_id, or a room_id with members",
            ));
        }
    };
    drop(conn);
    let replaced = match &body.replaces_call {
        Some(id) => Some(direct_call(&state, &caller, id).await?),
        None => None,
    };
    let origin = match &replaced {
        Some(call) => Origin::ForCaller { call },
        None => Origin::Start,
    };
    start(
        &state,
        &caller,
        origin,
        plan.room,
        plan.members,
        plan.settings,
        plan.template_id,
        plan.allowed,
    )
    .await
}

/// A meeting about to start: where, whom to call, how, and whether the caller may start it.
pub(super) struct Plan {
    pub room: Room,
    pub members: Vec<TemplateMember>,
    pub settings: TemplateSettings,
    pub template_id: Option<String>,
    pub allowed: bool,
}

/// A template's meeting, as `startConference` with `template_id` starts it: the template must
/// be one the caller may use (else 422), and name a room.
pub(super) async fn from_template(
    state: &AppState,
    caller: &Caller,
    conn: &mut Conn,
    template_id: &str,
) -> ApiResult<Plan> {
    let template = repo::templates::get(conn, template_id)
        .await?
        .filter(|t| {
            caller.sees_tenant(&t.tenant_id)
                && (caller.administers(&t.tenant_id)
                    || t.owner_id == caller.user.id
                    || t.shared_with.contains(&caller.user.id))
        })
        .ok_or_else(|| ApiError::field("template_id", "no such template"))?;
    let room_id = template
        .room_id
        .clone()
        .ok_or_else(|| ApiError::field("template_id", "the template names no room to meet in"))?;
    let room = room(state, caller, &room_id).await?;
    // Whoever may use the template and runs the room starts it.
    let allowed = operator_role(caller, &room).is_some()
        || template.shared_with.contains(&caller.user.id)
        || template.owner_id == caller.user.id;
    Ok(Plan {
        room,
        members: template.members,
        settings: template.settings,
        template_id: Some(template.id),
        allowed,
    })
}

/// An ad-hoc meeting in a room, as `startConference` with `room_id` and `members` starts it:
/// the members are checked (422 naming the one refused) and given their directory names.
pub(super) async fn ad_hoc(
    conn: &mut Conn,
    caller: &Caller,
    room: Room,
    mut members: Vec<TemplateMember>,
    settings: Option<TemplateSettings>,
) -> ApiResult<Plan> {
    super::templates::check_content(
        conn,
        &room.tenant_id,
        &caller.user.id,
        None,
        None,
        None,
        Some(&mut members),
    )
    .await?;
    let allowed = operator_role(caller, &room).is_some();
    Ok(Plan {
        room,
        members,
        settings: settings.unwrap_or_default(),
        template_id: None,
        allowed,
    })
}

/// A live direct call the caller may run (its callee, an administrator): the room made up
/// for it.
async fn direct_call(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Room> {
    let call = state
        .meetings
        .live_room(id)
        .filter(|r| r.id.starts_with(DIRECT_CALL_ROOM) && caller.sees_tenant(&r.tenant_id))
        .ok_or_else(|| ApiError::field("replaces_call", "no such call going on"))?;
    if operator_role(caller, &call).is_none() {
        return Err(ApiError::forbidden(
            "only the one called and administrators start a meeting for a call",
        ));
    }
    Ok(call)
}

/// Ends a direct call for the meeting that replaces it, and waits (3 s at most) until it has
/// hung up, so that its caller's phone is free when the meeting calls it.
async fn end_call(state: &AppState, caller: &Caller, call: &Room) {
    state
        .meetings
        .apply(
            &call.id,
            Actor::Operator(Role::Owner),
            Command::End,
            &caller.user.username,
        )
        .await;
    for _ in 0..150 {
        if state.meetings.live_room(&call.id).is_none() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!(call = call.id, "a replaced call did not end in 3 s");
}

/// Which operation starts a meeting, for the audit log.
pub(super) enum Origin<'a> {
    /// `startConference`.
    Start,
    /// `startConference` with `replaces_call`: an operator's meeting for a caller, whose
    /// direct call ends just before.
    ForCaller { call: &'a Room },
    /// `restartConference`: the same meeting as this one of the history.
    Restart { meeting_id: &'a str },
}

/// Starts the room's meeting and calls every member in parallel (the work of
/// `startConference`, once the request is resolved): 403 when not `allowed`, 409 when the room
/// has a live meeting. A meeting whose members all fail to be called ends at once.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start(
    state: &AppState,
    caller: &Caller,
    origin: Origin<'_>,
    room: Room,
    members: Vec<TemplateMember>,
    settings: TemplateSettings,
    template_id: Option<String>,
    allowed: bool,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let mut detail = serde_json::json!({ "room": room.number, "template_id": template_id });
    let action = match origin {
        Origin::Start => "startConference",
        Origin::ForCaller { call } => {
            detail["replaces_call"] = call.id.clone().into();
            detail["caller"] = call.number.clone().into();
            "startConference"
        }
        Origin::Restart { meeting_id } => {
            detail["meeting_id"] = meeting_id.into();
            "restartConference"
        }
    };
    let entry = Audit {
        action,
        tenant_id: &room.tenant_id,
        target_type: "conference",
        target_id: Some(&room.id),
        detail,
    };
    if !allowed {
        return Err(super::deny(
            state,
            caller,
            entry,
            "only those who may use the template and run the room start it",
        )
        .await);
    }
    let mut conn = state.store.conn().await?;
    let trunks = crate::trunks::unsealed(
        repo::trunks::of_tenant(&mut conn, &room.tenant_id).await?,
        &state.sealer,
    );
    let mut callees = Vec::new();
    for m in &members {
        let reachable = match m.kind {
            MemberKind::User => match &m.user_id {
                Some(id) => repo::users::get(&mut conn, id).await?.map(|u| Reachable {
                    frozen: u.status == UserStatus::Frozen,
                    extension: u.extension,
                    numbers: vec![u.mobile, u.landline],
                }),
                None => None,
            },
            MemberKind::Contact => match &m.contact_id {
                Some(id) => repo::contacts::get(&mut conn, id)
                    .await?
                    .map(|c| Reachable {
                        frozen: false,
                        extension: c.extension,
                        numbers: vec![c.mobile, c.landline],
                    }),
                None => None,
            },
            MemberKind::Number => Some(Reachable {
                frozen: false,
                extension: None,
                numbers: vec![m.number.clone()],
            }),
        };
        callees.push(match reachable {
            Some(r) => r.callee(&trunks),
            None => Err("no longer in the directory".to_owned()),
        });
    }
    // Who may call which numbers is checked before anything starts (the limits, when each
    // call is placed).
    let dialer = Dialer::of(&caller.user);
    let policy = repo::outbound_policies::get(&mut conn, &room.tenant_id).await?;
    for callee in callees.iter().flatten() {
        if let Callee::Number { number, .. } = callee
            && let Err(refusal) = crate::outbound::permitted(&dialer, &policy, number)
        {
            return Err(super::deny(state, caller, entry, &refusal.to_string()).await);
        }
    }
    let live = conclave_conference::live::Settings {
        mute_on_entry: settings.mute_on_entry,
        locked: settings.lock_on_start,
        record: settings.record,
        layout: layout_of(settings.layout.as_deref()),
        ..Default::default()
    };
    home_here(state, &room).await?;
    if let Origin::ForCaller { call } = origin {
        if state.meetings.live_room(&room.id).is_some() {
            // refused before the call ends: the caller is not left without either
            return Err(refused(Refused::AlreadyLive));
        }
        end_call(state, caller, call).await;
    }
    state
        .meetings
        .start(&room, live, template_id.clone())
        .map_err(refused)?;
    // No connection is held while calls are placed: placing one reads the policy again.
    drop(conn);
    let mut calls = Vec::new();
    for (m, callee) in members.iter().zip(callees) {
        let (call, _) = call_member(
            state,
            &dialer,
            &room,
            m.display_name.clone(),
            m.role,
            callee,
        )
        .await;
        calls.push(call);
    }
    state.meetings.dispatched(&room.id);
    if calls.iter().all(|m| m.call_id.is_none()) {
        // Nobody to wait for: the meeting ends before it began.
        state
            .meetings
            .apply(
                &room.id,
                conclave_conference::live::Actor::Operator(Role::Owner),
                Command::End,
                &caller.user.username,
            )
            .await;
    }
    let mut conn = state.store.conn().await?;
    audit(&mut conn, caller, entry).await?;
    Ok((
        StatusCode::CREATED,
        Json(Started {
            room_id: room.id,
            members: calls,
        }),
    ))
}

/// A scheduled meeting's occurrence starts (`scheduling::starter`), as its organiser would
/// start it: the room opens and, with `dial_out`, every member is called exactly as
/// `startConference` calls them.
pub(crate) async fn start_booked(
    state: &AppState,
    organiser: conclave_store::model::User,
    booking: &conclave_store::model::Booking,
    room: Room,
) -> ApiResult<Vec<MemberCall>> {
    // The live meeting asks for the booking's PIN (the one in the invitation) when the booking
    // has one; otherwise the room's own. The room itself is not changed.
    let room = match &booking.pin {
        Some(pin) if !pin.is_empty() => Room {
            pin: Some(pin.clone()),
            has_pin: true,
            ..room
        },
        _ => room,
    };
    let caller = Caller {
        user: organiser,
        credential: super::extract::Credential::Schedule {
            booking_id: booking.id.clone(),
        },
        source: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let allowed = operator_role(&caller, &room).is_some();
    let settings = TemplateSettings {
        mute_on_entry: booking.settings.mute_on_entry,
        record: booking.settings.record,
        layout: booking.settings.layout.clone(),
        ..Default::default()
    };
    if !booking.settings.dial_out {
        let entry = Audit {
            action: "startConference",
            tenant_id: &room.tenant_id,
            target_type: "conference",
            target_id: Some(&room.id),
            detail: serde_json::json!({ "room": room.number, "booking_id": booking.id }),
        };
        if !allowed {
            return Err(super::deny(
                state,
                &caller,
                entry,
                "the organiser no longer runs the room",
            )
            .await);
        }
        let live = conclave_conference::live::Settings {
            mute_on_entry: settings.mute_on_entry,
            record: settings.record,
            layout: layout_of(settings.layout.as_deref()),
            ..Default::default()
        };
        // Nobody is called: the room waits for its members to dial in.
        home_here(state, &room).await?;
        state.meetings.start(&room, live, None).map_err(refused)?;
        let mut conn = state.store.conn().await?;
        audit(&mut conn, &caller, entry).await?;
        return Ok(Vec::new());
    }
    let members = booking
        .members
        .iter()
        .map(|m| TemplateMember {
            kind: m.kind,
            user_id: m.user_id.clone(),
            contact_id: m.contact_id.clone(),
            number: m.number.clone(),
            display_name: m.display_name.clone(),
            role: m.role,
        })
        .collect();
    let (_, Json(started)) = start(
        state,
        &caller,
        Origin::Start,
        room,
        members,
        settings,
        None,
        allowed,
    )
    .await?;
    Ok(started.members)
}

/// Lists a member among the meeting's invitations and calls them; with the outbound
/// policy's refusal, when that is why no call was placed.
async fn call_member(
    state: &AppState,
    dialer: &Dialer,
    room: &Room,
    name: String,
    role: Role,
    callee: Result<Callee, String>,
) -> (MemberCall, Option<Refusal>) {
    let number = match &callee {
        Ok(Callee::Extension(extension)) => extension.clone(),
        Ok(Callee::Number { number, .. } | Callee::Node { number, .. }) => number.clone(),
        Err(_) => String::new(),
    };
    let invitation = state
        .meetings
        .invite(&room.id, name.clone(), number, role, callee.clone().ok())
        .await;
    let placed = match callee {
        Ok(callee) => {
            state
                .sip
                .invite(room.clone(), callee, name.clone(), role, invitation, dialer)
                .await
        }
        Err(reason) => Err(InviteError::Failed(reason)),
    };
    let refusal = match &placed {
        Err(InviteError::Refused(refusal)) => Some(refusal.clone()),
        _ => None,
    };
    (
        dialled(state, room, name, role, invitation, placed),
        refusal,
    )
}

/// The outcome of placing a call, for the answer and the invitation.
fn dialled(
    state: &AppState,
    room: &Room,
    name: String,
    role: Role,
    invitation: Option<u32>,
    placed: Result<u64, InviteError>,
) -> MemberCall {
    match placed {
        Ok(call_id) => MemberCall {
            display_name: name,
            role,
            status: "calling".into(),
            reason: None,
            call_id: Some(call_id),
            invitation,
        },
        Err(err) => {
            let status = match err {
                InviteError::Refused(_) => "refused",
                InviteError::Failed(_) => "failed",
            };
            let reason = err.to_string();
            if let Some(id) = invitation {
                state
                    .meetings
                    .invite_state(&room.id, id, CallState::Failed, Some(reason.clone()));
            }
            MemberCall {
                display_name: name,
                role,
                status: status.into(),
                reason: Some(reason),
                call_id: None,
                invitation,
            }
        }
    }
}

/// Call again everyone of the meeting who is not in it: busy, unanswered, refused, failed or
/// dropped (not those a chair removed).
#[utoipa::path(post, path = "/conferences/{room_id}/redial", operation_id = "redialMissing",
    tag = "conferences", security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, body = Started), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn redial_missing(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
) -> ApiResult<Json<Started>> {
    let room = room(&state, &caller, &room_id).await?;
    let entry = Audit {
        action: "redialMissing",
        tenant_id: &room.tenant_id,
        target_type: "conference",
        target_id: Some(&room.id),
        detail: serde_json::json!({ "room": room.number }),
    };
    if operator_role(&caller, &room).is_none() {
        return Err(super::deny(
            &state,
            &caller,
            entry,
            "only administrators and the room's creator or owner run its meetings",
        )
        .await);
    }
    let live = state
        .meetings
        .snapshot(&room.id)
        .await
        .ok_or_else(|| ApiError::not_found("live meeting in this room"))?;
    let dialer = Dialer::of(&caller.user);
    let mut calls = Vec::new();
    for invitation in live.invitations {
        let Some(callee) = invitation.callee.filter(|_| invitation.state.missing()) else {
            continue;
        };
        state
            .meetings
            .invite_state(&room.id, invitation.id, CallState::Calling, None);
        let placed = state
            .sip
            .invite(
                room.clone(),
                callee,
                invitation.name.clone(),
                invitation.role,
                Some(invitation.id),
                &dialer,
            )
            .await;
        calls.push(dialled(
            &state,
            &room,
            invitation.name,
            invitation.role,
            Some(invitation.id),
            placed,
        ));
    }
    let mut conn = state.store.conn().await?;
    audit(&mut conn, &caller, entry).await?;
    Ok(Json(Started {
        room_id: room.id,
        members: calls,
    }))
}

/// Where a member can be called: their extension, else their numbers (in order) through the
/// tenant's trunks.
struct Reachable {
    /// A frozen user is called neither at their extension nor at their numbers.
    frozen: bool,
    extension: Option<String>,
    numbers: Vec<Option<String>>,
}

impl Reachable {
    fn callee(self, trunks: &[conclave_store::model::Trunk]) -> Result<Callee, String> {
        if self.frozen {
            return Err("the account is frozen".to_owned());
        }
        if let Some(extension) = self.extension {
            return Ok(Callee::Extension(extension));
        }
        let numbers: Vec<String> = self.numbers.into_iter().flatten().collect();
        if numbers.is_empty() {
            return Err("no extension or phone number to call".to_owned());
        }
        for raw in &numbers {
            let Some(number) = crate::trunks::dialable(raw) else {
                continue;
            };
            if let Some((trunk, dialled)) = crate::trunks::route(trunks, &number) {
                if crate::trunks::dialable(&dialled).is_none() {
                    return Err(format!(
                        "trunk {} rewrote {number} to {dialled:?}, which is not a number",
                        trunk.name
                    ));
                }
                return Ok(Callee::Number {
                    trunk: Box::new(trunk.clone()),
                    number: dialled,
                });
            }
        }
        Err(format!("no trunk takes {}", numbers.join(" or ")))
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// A user of the tenant: their registered extension, else their phone numbers.
    #[serde(default)]
    pub user_id: Option<String>,
    /// An address-book contact: their extension, else their phone numbers.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// A phone number, called through the tenant's trunks.
    #[serde(default)]
    pub number: Option<String>,
    /// The name the roster shows (default: the user's or contact's name, or the number).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Their role in the meeting. Default: participant.
    #[serde(default)]
    pub role: Option<Role>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Invited {
    /// The call placed; the callee joins the meeting when they answer.
    pub call_id: u64,
}

/// Call one more person into the room (starting its meeting if none is live); they join when
/// they answer.
#[utoipa::path(post, path = "/conferences/{room_id}/invite", operation_id = "inviteMember",
    tag = "conferences", security(("bearer" = [])), request_body = Invite,
    params(("room_id" = String, Path)),
    responses((status = 202, body = Invited), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn invite_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<Invite>,
) -> ApiResult<(StatusCode, Json<Invited>)> {
    let room = room(&state, &caller, &room_id).await?;
    let entry = Audit {
        action: "inviteMember",
        tenant_id: &room.tenant_id,
        target_type: "conference",
        target_id: Some(&room.id),
        detail: serde_json::json!({
            "room": room.number,
            "user_id": body.user_id,
            "contact_id": body.contact_id,
            "number": body.number,
        }),
    };
    if operator_role(&caller, &room).is_none() {
        return Err(super::deny(
            &state,
            &caller,
            entry,
            "only administrators and the room's creator or owner run its meetings",
        )
        .await);
    }
    let mut conn = state.store.conn().await?;
    let (reachable, name, field) = match (&body.user_id, &body.contact_id, &body.number) {
        (Some(id), None, None) => {
            let user = repo::users::get(&mut conn, id)
                .await?
                .filter(|u| u.tenant_id == room.tenant_id)
                .ok_or_else(|| ApiError::field("user_id", "no such user in this tenant"))?;
            let reachable = Reachable {
                frozen: user.status == UserStatus::Frozen,
                extension: user.extension,
                numbers: vec![user.mobile, user.landline],
            };
            (reachable, user.display_name, "user_id")
        }
        (None, Some(id), None) => {
            let contact = repo::contacts::get(&mut conn, id)
                .await?
                .filter(|c| {
                    c.tenant_id == room.tenant_id
                        && c.owner_id.as_ref().is_none_or(|o| *o == caller.user.id)
                })
                .ok_or_else(|| ApiError::field("contact_id", "no such contact"))?;
            let reachable = Reachable {
                frozen: false,
                extension: contact.extension,
                numbers: vec![contact.mobile, contact.landline],
            };
            (reachable, contact.name, "contact_id")
        }
        (None, None, Some(number)) => {
            if crate::trunks::dialable(number).is_none() {
                return Err(ApiError::field(
                    "number",
                    "must be a phone number: an optional +, then digits",
                ));
            }
            let reachable = Reachable {
                frozen: false,
                extension: None,
                numbers: vec![Some(number.clone())],
            };
            (reachable, number.clone(), "number")
        }
        _ => {
            return Err(ApiError::field(
                "user_id",
                "give exactly one of user_id, contact_id and number",
            ));
        }
    };
    let trunks = crate::trunks::unsealed(
        repo::trunks::of_tenant(&mut conn, &room.tenant_id).await?,
        &state.sealer,
    );
    let callee = reachable
        .callee(&trunks)
        .map_err(|reason| ApiError::field(field, reason))?;
    let dialer = Dialer::of(&caller.user);
    if let Callee::Number { number, .. } = &callee {
        let policy = repo::outbound_policies::get(&mut conn, &room.tenant_id).await?;
        if let Err(refusal) = crate::outbound::permitted(&dialer, &policy, number) {
            return Err(super::deny(&state, &caller, entry, &refusal.to_string()).await);
        }
    }
    let name = match body.display_name {
        Some(given) if !given.trim().is_empty() && given.chars().count() <= 100 => given,
        _ => name,
    };
    // No meeting yet: this call starts one (it ends if the call fails).
    home_here(&state, &room).await?;
    let fresh = state
        .meetings
        .start(&room, conclave_conference::live::Settings::default(), None)
        .is_ok();
    drop(conn);
    let (called, refusal) = call_member(
        &state,
        &dialer,
        &room,
        name,
        body.role.unwrap_or(Role::Participant),
        Ok(callee),
    )
    .await;
    if fresh {
        state.meetings.dispatched(&room.id);
    }
    match refusal {
        Some(Refusal::NotAllowed(reason)) => {
            return Err(super::deny(&state, &caller, entry, &reason).await);
        }
        Some(Refusal::Limited {
            reason,
            retry_after,
        }) => return Err(ApiError::too_many(reason, retry_after)),
        None => {}
    }
    let call_id = match (called.call_id, called.reason) {
        (Some(call_id), _) => call_id,
        (None, reason) => {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                ..ApiError::bad_request(reason.unwrap_or_default())
            });
        }
    };
    let mut conn = state.store.conn().await?;
    audit(&mut conn, &caller, entry).await?;
    Ok((StatusCode::ACCEPTED, Json(Invited { call_id })))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSpeak {
    /// False forbids speaking (the member is muted and cannot unmute themself).
    pub allowed: bool,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWhisperGroup {
    /// Member ids: they hear each other and the room (softly); the room does not hear them.
    pub members: Vec<u32>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLayout {
    /// "1", "4", "1+7", "1+21" or "2+21".
    pub layout: LayoutKind,
    /// Whether members (not only chairs) may share their screens.
    pub members_may_share: Option<bool>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinMember {
    /// The tile (0 is the first large one).
    pub tile: usize,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolling {
    /// The polled tiles; empty turns polling off.
    pub tiles: Vec<usize>,
    /// Seconds per turn (2 to 3600).
    #[serde(default = "default_poll_interval")]
    pub interval_secs: u32,
    /// Member ids shown in turn; empty: everyone no other tile shows.
    #[serde(default)]
    pub members: Vec<u32>,
}

fn default_poll_interval() -> u32 {
    10
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartShare {
    /// The member whose screen takes the large tile.
    pub member: u32,
}

/// A stored default layout (checked when stored; anything else is the default).
fn layout_of(stored: Option<&str>) -> LayoutKind {
    stored.and_then(LayoutKind::parse).unwrap_or_default()
}

/// Member ids are numbers; anything else names no member.
fn member_number(raw: &str) -> ApiResult<u32> {
    raw.parse()
        .map_err(|_| ApiError::not_found("member in this meeting"))
}

/// Allow or forbid a member to speak.
#[utoipa::path(post, path = "/conferences/{room_id}/members/{member_id}/speak", operation_id = "setMemberSpeak",
    tag = "conferences", security(("bearer" = [])), request_body = SetSpeak,
    params(("room_id" = String, Path), ("member_id" = u32, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn set_member_speak(
    State(state): State<AppState>,
    caller: Caller,
    Path((room_id, member_id)): Path<(String, String)>,
    super::extract::ApiJson(body): super::extract::ApiJson<SetSpeak>,
) -> ApiResult<Json<LiveConference>> {
    let target = member_number(&member_id)?;
    control(
        &state,
        &caller,
        &room_id,
        "setMemberSpeak",
        Command::SetSpeak {
            target,
            allowed: body.allowed,
        },
    )
    .await
}

/// Change a member's role during the meeting.
#[utoipa::path(post, path = "/conferences/{room_id}/members/{member_id}/role", operation_id = "setMemberRole",
    tag = "conferences", security(("bearer" = [])), request_body = SetRole,
    params(("room_id" = String, Path), ("member_id" = u32, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn set_member_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((room_id, member_id)): Path<(String, String)>,
    super::extract::ApiJson(body): super::extract::ApiJson<SetRole>,
) -> ApiResult<Json<LiveConference>> {
    let target = member_number(&member_id)?;
    control(
        &state,
        &caller,
        &room_id,
        "setMemberRole",
        Command::SetRole {
            target,
            role: body.role,
        },
    )
    .await
}

/// Open a whisper group: its members talk privately, still hearing the room softly.
#[utoipa::path(post, path = "/conferences/{room_id}/whisper-groups", operation_id = "createWhisperGroup",
    tag = "conferences", security(("bearer" = [])), request_body = NewWhisperGroup,
    params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn create_whisper_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<NewWhisperGroup>,
) -> ApiResult<Json<LiveConference>> {
    control(
        &state,
        &caller,
        &room_id,
        "createWhisperGroup",
        Command::OpenWhisper {
            members: body.members,
        },
    )
    .await
}

/// Choose the meeting's video layout (browsers, phones with video, recordings and streams
/// show it), and whether members may share their screens.
#[utoipa::path(put, path = "/conferences/{room_id}/layout", operation_id = "setLayout",
    tag = "conferences", security(("bearer" = [])), request_body = SetLayout,
    params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn set_layout(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<SetLayout>,
) -> ApiResult<Json<LiveConference>> {
    if let Some(members_may_share) = body.members_may_share {
        let _sharing = control(
            &state,
            &caller,
            &room_id,
            "setLayout",
            Command::SetSharing { members_may_share },
        )
        .await?;
    }
    control(
        &state,
        &caller,
        &room_id,
        "setLayout",
        Command::SetLayout { kind: body.layout },
    )
    .await
}

/// Keep a member in a tile whoever speaks (`DELETE` frees the member's tile).
#[utoipa::path(put, path = "/conferences/{room_id}/members/{member_id}/pin", operation_id = "pinMember",
    tag = "conferences", security(("bearer" = [])), request_body = PinMember,
    params(("room_id" = String, Path), ("member_id" = u32, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn pin_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((room_id, member_id)): Path<(String, String)>,
    super::extract::ApiJson(body): super::extract::ApiJson<PinMember>,
) -> ApiResult<Json<LiveConference>> {
    let member = member_number(&member_id)?;
    control(
        &state,
        &caller,
        &room_id,
        "pinMember",
        Command::Pin {
            tile: body.tile,
            member: Some(member),
        },
    )
    .await
}

/// Free the tile a member is pinned to.
#[utoipa::path(delete, path = "/conferences/{room_id}/members/{member_id}/pin", operation_id = "unpinMember",
    tag = "conferences", security(("bearer" = [])),
    params(("room_id" = String, Path), ("member_id" = u32, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn unpin_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((room_id, member_id)): Path<(String, String)>,
) -> ApiResult<Json<LiveConference>> {
    let member = member_number(&member_id)?;
    let room = live_room(&state, &caller, &room_id).await?;
    let tile = state
        .meetings
        .snapshot(&room.id)
        .await
        .and_then(|live| {
            live.layout
                .pins
                .iter()
                .find(|(_, m)| **m == member)
                .map(|(t, _)| *t)
        })
        .ok_or_else(|| ApiError::not_found("pinned member"))?;
    control(
        &state,
        &caller,
        &room_id,
        "unpinMember",
        Command::Pin { tile, member: None },
    )
    .await
}

/// Polling: chosen tiles show members in turn, a turn every interval.
#[utoipa::path(put, path = "/conferences/{room_id}/polling", operation_id = "setPolling",
    tag = "conferences", security(("bearer" = [])), request_body = SetPolling,
    params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn set_polling(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<SetPolling>,
) -> ApiResult<Json<LiveConference>> {
    let polling = (!body.tiles.is_empty()).then_some(Polling {
        tiles: body.tiles,
        interval_secs: body.interval_secs,
        members: body.members,
    });
    control(
        &state,
        &caller,
        &room_id,
        "setPolling",
        Command::SetPolling { polling },
    )
    .await
}

/// Give a member's shared screen the large tile (a browser member starts sharing from its
/// page; this names the presenter).
#[utoipa::path(post, path = "/conferences/{room_id}/share", operation_id = "startShare",
    tag = "conferences", security(("bearer" = [])), request_body = StartShare,
    params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn start_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<StartShare>,
) -> ApiResult<Json<LiveConference>> {
    control(
        &state,
        &caller,
        &room_id,
        "startShare",
        Command::StartShare {
            member: body.member,
            board: false,
        },
    )
    .await
}

/// End the share: the large tile follows the speaker again.
#[utoipa::path(delete, path = "/conferences/{room_id}/share", operation_id = "stopShare",
    tag = "conferences", security(("bearer" = [])),
    params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn stop_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
) -> ApiResult<Json<LiveConference>> {
    control(&state, &caller, &room_id, "stopShare", Command::StopShare).await
}

/// The meeting's composed picture as a JPEG (1280×720): the layout as phones with video,
/// recordings and streams show it. The first ask starts composing (tiles are dark until
/// their senders' keyframes arrive); it stops 30 s after the last ask.
#[utoipa::path(get, path = "/conferences/{room_id}/picture", operation_id = "getComposedPicture",
    tag = "conferences", security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, description = "the picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn get_composed_picture(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let room = live_room(&state, &caller, &room_id).await?;
    if operator_role(&caller, &room).is_none() {
        return Err(ApiError::forbidden(
            "only administrators and the room's creator or owner see its meetings' picture",
        ));
    }
    if !state.meetings.is_live(&room.id) {
        return Err(ApiError::not_found("live meeting in this room"));
    }
    let picture = state
        .meetings
        .picture(&room.id)
        .await
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..ApiError::bad_request("the composed picture is not ready; ask again")
        })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/jpeg"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        picture,
    )
        .into_response())
}

/// Close a whisper group: its members return to the room.
#[utoipa::path(delete, path = "/conferences/{room_id}/whisper-groups/{group_id}", operation_id = "closeWhisperGroup",
    tag = "conferences", security(("bearer" = [])),
    params(("room_id" = String, Path), ("group_id" = u32, Path)),
    responses((status = 200, body = LiveConference), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn close_whisper_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((room_id, group_id)): Path<(String, String)>,
) -> ApiResult<Json<LiveConference>> {
    let group = group_id
        .parse()
        .map_err(|_| ApiError::not_found("whisper group"))?;
    control(
        &state,
        &caller,
        &room_id,
        "closeWhisperGroup",
        Command::CloseWhisper { group },
    )
    .await
}

/// The room, if the caller may see it.
async fn room(state: &AppState, caller: &Caller, room_id: &str) -> ApiResult<Room> {
    let mut conn = state.store.conn().await?;
    repo::rooms::get(&mut conn, room_id)
        .await?
        .filter(|r| caller.sees_tenant(&r.tenant_id))
        .ok_or_else(|| ApiError::not_found("room"))
}

/// The room of a meeting to watch or run: also a room deleted while its meeting goes on (the
/// meeting keeps its members, and the chair keeps control, until it ends).
pub(super) async fn live_room(state: &AppState, caller: &Caller, room_id: &str) -> ApiResult<Room> {
    match room(state, caller, room_id).await {
        Err(err) if err.status == StatusCode::NOT_FOUND => state
            .meetings
            .live_room(room_id)
            .filter(|r| caller.sees_tenant(&r.tenant_id))
            .ok_or(err),
        found => found,
    }
}

/// The role an operator acts with in a room's meeting: administrators, the room's creator and
/// its owner act as the meeting's owner; others have no say from the console.
pub(super) fn operator_role(caller: &Caller, room: &Room) -> Option<Role> {
    let manages = caller.administers(&room.tenant_id)
        || room.creator_id.as_deref() == Some(&caller.user.id)
        || room.owner_id.as_deref() == Some(&caller.user.id);
    manages.then_some(Role::Owner)
}

/// In a cluster, a meeting starts on the node that is (or becomes) the room's home.
async fn home_here(state: &AppState, room: &Room) -> ApiResult<()> {
    super::claim_home(state, room, "room_id").await
}

fn refused(reason: Refused) -> ApiError {
    match reason {
        Refused::Denied(denied) => ApiError::forbidden(denied.to_string()),
        Refused::NoSuchMember(_) | Refused::NoSuchGroup(_) => {
            ApiError::not_found("member in this meeting")
        }
        Refused::Ended => ApiError::not_found("live meeting in this room"),
        other => ApiError {
            status: StatusCode::CONFLICT,
            ..ApiError::bad_request(other.to_string())
        },
    }
}

/// Runs a chair's command on the room's live meeting, and records it.
pub(super) async fn control(
    state: &AppState,
    caller: &Caller,
    room_id: &str,
    action: &'static str,
    command: Command,
) -> ApiResult<Json<LiveConference>> {
    let room = live_room(state, caller, room_id).await?;
    let entry = Audit {
        action,
        tenant_id: &room.tenant_id,
        target_type: "conference",
        target_id: Some(&room.id),
        detail: serde_json::json!({ "room": room.number, "command": format!("{command:?}") }),
    };
    let Some(role) = operator_role(caller, &room) else {
        return Err(super::deny(
            state,
            caller,
            entry,
            "only administrators and the room's creator or owner run its meetings",
        )
        .await);
    };
    let ended = matches!(command, Command::End);
    match state
        .meetings
        .apply(
            &room.id,
            Actor::Operator(role),
            command,
            &caller.user.username,
        )
        .await
    {
        None => return Err(ApiError::not_found("live meeting in this room")),
        Some(Err(reason)) => return Err(refused(reason)),
        Some(Ok(())) => {}
    }
    let mut conn = state.store.conn().await?;
    audit(&mut conn, caller, entry).await?;
    let snapshot = if ended {
        None
    } else {
        state.meetings.snapshot(&room.id).await
    };
    Ok(Json(snapshot.unwrap_or(LiveConference {
        room_id: room.id,
        room_number: room.number,
        room_name: room.name,
        locked: false,
        recording_id: None,
        stream_id: None,
        members: Vec::new(),
        invitations: Vec::new(),
        layout: Default::default(),
        tiles: Vec::new(),
        call: None,
    })))
}

/// The live meetings of the caller's tenant.
#[utoipa::path(get, path = "/conferences", operation_id = "listConferences", tag = "conferences",
    security(("bearer" = [])), responses((status = 200, body = Vec<LiveConference>)))]
async fn list_conferences(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let local = state.meetings.list(caller.tenant_id()).await;
    // who phones whom is seen by the two of them and the tenant's administrators only
    let mut all: Vec<serde_json::Value> = local
        .iter()
        .filter(|m| {
            m.call.as_ref().is_none_or(|call| {
                caller.administers(caller.tenant_id())
                    || call.caller_user_id == caller.user.id
                    || call.callee_user_id == caller.user.id
            })
        })
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();
    // in a cluster, the meetings other nodes hold too, each asked of its home
    if let Some(cluster) = state.meetings.cluster() {
        all.extend(
            crate::cluster::bus::remote_meetings(
                cluster,
                caller.tenant_id(),
                headers.get(axum::http::header::AUTHORIZATION),
                caller.source,
            )
            .await?,
        );
        all.sort_by(|a, b| a["room_number"].as_str().cmp(&b["room_number"].as_str()));
    }
    Ok(Json(all))
}

/// A room's live meeting: who is in, muted, allowed to speak, in which whisper group.
#[utoipa::path(get, path = "/conferences/{room_id}", operation_id = "getConference", tag = "conferences",
    security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, body = LiveConference), (status = 404, body = Problem)))]
async fn get_conference(
    State(state): State<AppState>,
    caller: Caller,
    Path(room_id): Path<String>,
) -> ApiResult<Json<LiveConference>> {
    let room = live_room(&state, &caller, &room_id).await?;
    state
        .meetings
        .snapshot(&room.id)
        .await
        .map(Json)
        .ok_or_else(|| ApiError::not_found("live meeting in this room"))
}

macro_rules! member_control {
    ($name:ident, $method:ident, $path:literal, $op:literal, $doc:literal, $command:expr) => {
        #[doc = $doc]
        #[utoipa::path($method, path = $path, operation_id = $op, tag = "conferences",
            security(("bearer" = [])), params(("room_id" = String, Path), ("member_id" = u32, Path)),
            responses((status = 200, body = LiveConference), (status = 403, body = Problem),
                (status = 404, body = Problem), (status = 409, body = Problem)))]
        async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path((room_id, member_id)): Path<(String, String)>,
        ) -> ApiResult<Json<LiveConference>> {
            let member_id = member_number(&member_id)?;
            let command: fn(u32) -> Command = $command;
            control(&state, &caller, &room_id, $op, command(member_id)).await
        }
    };
}

macro_rules! meeting_control {
    ($name:ident, $path:literal, $op:literal, $doc:literal, $command:expr) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, operation_id = $op, tag = "conferences",
                    security(("bearer" = [])), params(("room_id" = String, Path)),
                    responses((status = 200, body = LiveConference), (status = 403, body = Problem),
                        (status = 404, body = Problem), (status = 409, body = Problem)))]
        async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(room_id): Path<String>,
        ) -> ApiResult<Json<LiveConference>> {
            control(&state, &caller, &room_id, $op, $command).await
        }
    };
}

member_control!(
    mute_member,
    post,
    "/conferences/{room_id}/members/{member_id}/mute",
    "muteMember",
    "Mute a member: the others no longer hear them.",
    |target| Command::Mute { target }
);
member_control!(
    unmute_member,
    post,
    "/conferences/{room_id}/members/{member_id}/unmute",
    "unmuteMember",
    "Unmute a member (refused while they are forbidden to speak).",
    |target| Command::Unmute { target }
);
member_control!(
    kick_member,
    delete,
    "/conferences/{room_id}/members/{member_id}",
    "kickMember",
    "Remove a member: their call is hung up.",
    |target| Command::Kick { target }
);
meeting_control!(
    mute_all,
    "/conferences/{room_id}/mute-all",
    "muteAll",
    "Mute everyone below chairman.",
    Command::MuteAll
);
meeting_control!(
    unmute_all,
    "/conferences/{room_id}/unmute-all",
    "unmuteAll",
    "Unmute everyone below chairman who may speak.",
    Command::UnmuteAll
);
meeting_control!(
    lock_conference,
    "/conferences/{room_id}/lock",
    "lockConference",
    "Lock the meeting: nobody new joins.",
    Command::Lock
);
meeting_control!(
    unlock_conference,
    "/conferences/{room_id}/unlock",
    "unlockConference",
    "Unlock the meeting.",
    Command::Unlock
);
meeting_control!(
    start_recording,
    "/conferences/{room_id}/recording/start",
    "startRecording",
    "Record the meeting: the room's mix and a track per member, sealed at rest; the members \
     hear that it is recorded. The answer's `recording_id` names the recording.",
    Command::Record { on: true }
);
meeting_control!(
    stop_recording,
    "/conferences/{room_id}/recording/stop",
    "stopRecording",
    "Stop recording the meeting (the recording is kept).",
    Command::Record { on: false }
);
meeting_control!(
    end_conference,
    "/conferences/{room_id}/end",
    "endConference",
    "End the meeting: every call is hung up.",
    Command::End
);
