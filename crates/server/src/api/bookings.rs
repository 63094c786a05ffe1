//! Scheduled meetings ("bookings"): book a meeting in a room at a time, once or repeating;
//! edit the series, one occurrence, or this and the following ones; the conflict check; a
//! user's own meetings and their personal iCalendar feed. Starting them at their time is
//! `scheduling::starter`.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, audit, deny};
use crate::scheduling::conflicts::{self, Conflict, Slot};
use crate::scheduling::{Occurrence, mail, occurrences, recurrence};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_store::model::{
    Booking, BookingMember, BookingSettings, MemberKind, OccurrenceOverride, TemplateMember,
};
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_meeting, list_meetings))
        .routes(routes!(propose_meeting))
        .routes(routes!(check_conflicts))
        .routes(routes!(get_meeting, update_meeting, cancel_meeting))
        .routes(routes!(list_occurrences))
        .routes(routes!(update_occurrence))
        .routes(routes!(list_meeting_mail))
        .routes(routes!(list_my_meetings))
        .routes(routes!(create_calendar_feed, revoke_calendar_feed))
        .routes(routes!(calendar_feed))
}

/// A group invited as a whole: its members are added when the meeting is booked.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInvite {
    pub group_id: String,
    #[schema(value_type = String)]
    pub role: conclave_conference::Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    /// Default: the proposed name.
    pub name: Option<String>,
    /// 4–8 digits; absent: a proposed one; empty: none.
    pub pin: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Default: the number of members.
    pub expected_participants: Option<i64>,
    /// The room (its number is what people dial).
    pub room_id: String,
    /// IANA time zone of `start_local` and the rule.
    pub time_zone: String,
    /// Wall-clock start, `YYYY-MM-DDTHH:MM`.
    pub start_local: String,
    pub duration_minutes: i64,
    /// RFC 5545 RRULE value (`FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261231T230000Z`).
    pub rrule: Option<String>,
    #[serde(default)]
    pub members: Vec<BookingMember>,
    #[serde(default)]
    pub groups: Vec<GroupInvite>,
    #[serde(default)]
    pub settings: BookingSettings,
    /// Book even though the conflict check found conflicts.
    #[serde(default)]
    pub ignore_conflicts: bool,
}

/// Changes to the whole series; absent fields stay.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateBooking {
    pub name: Option<String>,
    pub pin: Option<String>,
    pub description: Option<String>,
    pub expected_participants: Option<i64>,
    pub room_id: Option<String>,
    pub time_zone: Option<String>,
    pub start_local: Option<String>,
    pub duration_minutes: Option<i64>,
    /// Empty: no longer repeats.
    pub rrule: Option<String>,
    /// Replaces the occurrences taken out (original starts, epoch ms).
    pub exdates: Option<Vec<i64>>,
    pub members: Option<Vec<BookingMember>>,
    pub groups: Option<Vec<GroupInvite>>,
    pub settings: Option<BookingSettings>,
    #[serde(default)]
    pub ignore_conflicts: bool,
}

/// One occurrence changed, or this and the following ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOccurrence {
    /// `this` (default): only this occurrence; `following`: this and every later one (the
    /// series is split in two).
    #[serde(default)]
    pub scope: Option<String>,
    /// Cancel it (with `following`: end the series before it).
    #[serde(default)]
    pub cancelled: bool,
    /// New wall-clock start (for `following`: of each of them).
    pub start_local: Option<String>,
    pub duration_minutes: Option<i64>,
    #[serde(default)]
    pub ignore_conflicts: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Proposal {
    pub name: String,
    pub pin: String,
}

#[derive(Serialize, ToSchema)]
pub struct Conflicts {
    pub conflicts: Vec<Conflict>,
}

#[derive(Serialize, ToSchema)]
pub struct Occurrences {
    pub items: Vec<Occurrence>,
}

/// An occurrence of a meeting the user organises or is invited to.
#[derive(Serialize, ToSchema)]
pub struct MyOccurrence {
    #[serde(flatten)]
    pub occurrence: Occurrence,
    pub name: String,
    pub room_id: String,
    pub room_number: String,
    pub organiser_id: String,
    /// `organiser`, or the role the user is invited with.
    pub role: String,
    pub time_zone: String,
}

#[derive(Serialize, ToSchema)]
pub struct MyOccurrences {
    pub items: Vec<MyOccurrence>,
}

#[derive(Serialize, ToSchema)]
pub struct CalendarFeed {
    /// The secret token; shown once.
    pub token: String,
    /// The path a calendar app subscribes to (`/api/v1/calendar/<token>.ics`).
    pub path: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// From (epoch ms; default: now).
    pub from: Option<i64>,
    /// To (epoch ms; default: 31 days after `from`; at most 400 days after it).
    pub to: Option<i64>,
}

impl Range {
    fn resolve(&self) -> ApiResult<(i64, i64)> {
        let from = self.from.unwrap_or_else(now_ms);
        let to = self.to.unwrap_or(from.saturating_add(31 * 86_400_000));
        if !(0..=253_402_300_799_000).contains(&from) {
            return Err(ApiError::field("from", "must be an instant in epoch ms"));
        }
        if to <= from || to - from > 400 * 86_400_000 {
            return Err(ApiError::field(
                "to",
                "must be after from, by at most 400 days",
            ));
        }
        Ok((from, to))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictParams {
    /// The booking being edited (its own occurrences are not conflicts).
    pub booking_id: Option<String>,
}

fn sees(caller: &Caller, b: &Booking) -> bool {
    caller.administers(&b.tenant_id)
        || (caller.sees_tenant(&b.tenant_id)
            && (b.organiser_id == caller.user.id
                || b.members
                    .iter()
                    .any(|m| m.user_id.as_deref() == Some(&caller.user.id))))
}

fn manages(caller: &Caller, b: &Booking) -> bool {
    caller.administers(&b.tenant_id) || b.organiser_id == caller.user.id
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Booking> {
    repo::bookings::get(conn, id)
        .await?
        .filter(|b| sees(caller, b))
        .ok_or_else(|| ApiError::not_found("scheduled meeting"))
}

fn entry<'a>(action: &'static str, b: &'a Booking) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &b.tenant_id,
        target_type: "booking",
        target_id: Some(&b.id),
        detail: serde_json::json!({ "name": b.name, "room_id": b.room_id, "sequence": b.sequence }),
    }
}

fn proposed_pin() -> String {
    use rand::Rng;
    format!("{:06}", rand::rng().random_range(0..1_000_000))
}

fn proposed_name(caller: &Caller) -> String {
    let who = if caller.user.display_name.trim().is_empty() {
        &caller.user.username
    } else {
        &caller.user.display_name
    };
    format!("{who}'s meeting")
}

/// Checks a booking's fields (every refusal at once), expands groups, names members, and
/// computes the series' bounds.
async fn check(
    conn: &mut Conn,
    caller: &Caller,
    b: &mut Booking,
    groups: &[GroupInvite],
) -> ApiResult<()> {
    let mut c = Checks::new();
    c.text("name", &b.name, 1, 100);
    c.layout("settings.layout", b.settings.layout.as_deref());
    c.text("description", &b.description, 0, 2000);
    if let Some(pin) = &b.pin {
        c.digits("pin", pin, 4, 8);
    }
    c.range("expected_participants", b.expected_participants, 1, 10_000);
    c.range(
        "duration_minutes",
        b.duration_minutes,
        5,
        recurrence::MAX_DURATION_MINUTES,
    );
    let room = repo::rooms::get(conn, &b.room_id)
        .await?
        .filter(|r| r.tenant_id == b.tenant_id);
    if room.is_none() {
        c.fail("room_id", "no such room in this tenant");
    }
    let tz = recurrence::parse_tz(&b.time_zone)
        .map_err(|e| c.fail("time_zone", e))
        .ok();
    let local = recurrence::parse_local(&b.start_local)
        .map_err(|e| c.fail("start_local", e))
        .ok();
    if let (Some(rule), Some(tz), Some(local)) = (&b.rrule, tz, local)
        && let Err(e) = recurrence::check_rule(rule, tz, local)
    {
        c.fail("rrule", e);
    }
    for (i, g) in groups.iter().enumerate() {
        let group = repo::groups::get(conn, &g.group_id).await?.filter(|grp| {
            grp.tenant_id == b.tenant_id
                && grp.owner_id.as_ref().is_none_or(|o| *o == caller.user.id)
        });
        match group {
            None => c.fail(format!("groups[{i}].group_id"), "no such group"),
            Some(group) => {
                for m in group.members {
                    let dup = b.members.iter().any(|x| {
                        x.kind == m.kind
                            && x.user_id == m.user_id
                            && x.contact_id == m.contact_id
                            && x.number == m.number
                    });
                    if !dup {
                        b.members.push(BookingMember {
                            kind: m.kind,
                            user_id: m.user_id,
                            contact_id: m.contact_id,
                            number: m.number,
                            display_name: m.display_name,
                            role: g.role,
                            presenter: false,
                        });
                    }
                }
            }
        }
    }
    if b.members.iter().filter(|m| m.presenter).count() > 1 {
        c.fail("members", "at most one presenter");
    }
    // Members are checked (and named) as a template's are.
    let mut as_template: Vec<TemplateMember> = b
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
    let members_checked = super::templates::check_content(
        conn,
        &b.tenant_id,
        &b.organiser_id,
        None,
        None,
        None,
        Some(&mut as_template),
    )
    .await;
    if let Err(err) = members_checked {
        for e in err.errors {
            c.fail(e.field, e.reason);
        }
    }
    for (m, t) in b.members.iter_mut().zip(as_template) {
        m.display_name = t.display_name;
    }
    c.finish()?;
    match recurrence::bounds(&crate::scheduling::series(b)) {
        Ok(Some((first, last))) => {
            b.first_start = first;
            b.last_end = Some(last);
            Ok(())
        }
        Ok(None) => Err(ApiError::field("rrule", "the rule gives no occurrence")),
        Err(e) => Err(ApiError::field("rrule", e)),
    }
}

fn person_key(m: &BookingMember) -> String {
    match m.kind {
        MemberKind::User => format!("user:{}", m.user_id.as_deref().unwrap_or("")),
        MemberKind::Contact => format!("contact:{}", m.contact_id.as_deref().unwrap_or("")),
        MemberKind::Number => format!(
            "number:{}",
            m.number
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        ),
    }
}

/// A booking's occurrences as the conflict check sees them. Its members are the people who
/// attend; the organiser (often an operator booking for others) only when also a member.
fn slots(b: &Booking, occ: &[Occurrence]) -> Vec<Slot> {
    let people: Vec<(String, String)> = b
        .members
        .iter()
        .map(|m| (person_key(m), m.display_name.clone()))
        .collect();
    let size = b.expected_participants.max(b.members.len() as i64);
    occ.iter()
        .filter(|o| !o.cancelled)
        .map(|o| Slot {
            booking_id: b.id.clone(),
            name: b.name.clone(),
            room_id: b.room_id.clone(),
            start: o.start_at,
            end: o.end_at,
            people: people.clone(),
            size,
        })
        .collect()
}

/// The conflicts of a booking's future occurrences (those of `exclude` and its own aside).
async fn conflicts_of(
    state: &AppState,
    conn: &mut Conn,
    b: &Booking,
    exclude: Option<&str>,
) -> ApiResult<Vec<Conflict>> {
    let from = b.first_start.max(now_ms());
    let to = b.last_end.unwrap_or(from);
    if to <= from {
        return Ok(Vec::new());
    }
    let overrides = repo::bookings::overrides(conn, &b.id).await?;
    let own = occurrences(b, &overrides, from, to).map_err(|e| ApiError::field("rrule", e))?;
    let candidate = slots(b, &own);
    let mut others = Vec::new();
    for o in repo::bookings::active_between(conn, from, to).await? {
        if o.id == b.id || Some(o.id.as_str()) == exclude {
            continue;
        }
        let ov = repo::bookings::overrides(conn, &o.id).await?;
        let Ok(occ) = occurrences(&o, &ov, from, to) else {
            continue;
        };
        let same = o.tenant_id == b.tenant_id;
        others.extend(slots(&o, &occ).into_iter().map(|s| (s, same)));
    }
    Ok(conflicts::find(
        &candidate,
        &others,
        i64::from(state.settings.scheduling_capacity),
    ))
}

fn refuse_conflicts(found: Vec<Conflict>) -> ApiError {
    let mut err = ApiError::conflict(
        "conflicts",
        format!(
            "{} conflict(s); book anyway with ignore_conflicts: true",
            found.len()
        ),
    );
    err.conflicts = Some(Box::new(crate::scheduling::ConflictList(found)));
    err
}

/// What a new booking would be.
async fn from_request(
    conn: &mut Conn,
    caller: &Caller,
    body: CreateBooking,
) -> ApiResult<(Booking, Vec<GroupInvite>)> {
    let now = now_ms();
    let expected = body.expected_participants;
    let mut b = Booking {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        organiser_id: caller.user.id.clone(),
        room_id: body.room_id,
        name: body
            .name
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| proposed_name(caller)),
        pin: match body.pin {
            None => Some(proposed_pin()),
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p),
        },
        description: body.description,
        expected_participants: expected.unwrap_or(1),
        time_zone: body.time_zone,
        start_local: body.start_local,
        duration_minutes: body.duration_minutes,
        rrule: body.rrule.filter(|r| !r.trim().is_empty()),
        exdates: Vec::new(),
        first_start: 0,
        last_end: None,
        settings: body.settings,
        members: body.members,
        cancelled: false,
        sequence: 0,
        split_from: None,
        created_at: now,
        updated_at: now,
    };
    check(conn, caller, &mut b, &body.groups).await?;
    if expected.is_none() {
        b.expected_participants = (b.members.len() as i64 + 1).max(1);
    }
    Ok((b, body.groups))
}

/// May the caller book this room? Whoever may start meetings in it (its owner or creator, an
/// administrator).
async fn may_book(conn: &mut Conn, caller: &Caller, room_id: &str) -> ApiResult<bool> {
    Ok(match repo::rooms::get(conn, room_id).await? {
        Some(room) => super::conferences::operator_role(caller, &room).is_some(),
        None => true,
    })
}

/// A name and a PIN for a new meeting (the console fills the form with them; both editable).
#[utoipa::path(get, path = "/bookings/proposal", operation_id = "proposeMeeting", tag = "scheduling",
    security(("bearer" = [])), responses((status = 200, body = Proposal)))]
async fn propose_meeting(caller: Caller) -> Json<Proposal> {
    Json(Proposal {
        name: proposed_name(&caller),
        pin: proposed_pin(),
    })
}

/// Book a meeting: once, or repeating by an RRULE in the organiser's time zone. Conflicts
/// (the room booked, a member busy, the system's capacity) answer 409 listing them, unless
/// `ignore_conflicts` is true.
#[utoipa::path(post, path = "/bookings", operation_id = "createMeeting", tag = "scheduling",
    security(("bearer" = [])), request_body = CreateBooking,
    responses((status = 201, body = Booking), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_meeting(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBooking>,
) -> ApiResult<(StatusCode, Json<Booking>)> {
    let ignore = body.ignore_conflicts;
    let mut tx = state.store.begin().await?;
    let (b, _) = from_request(&mut tx, &caller, body).await?;
    if !may_book(&mut tx, &caller, &b.room_id).await? {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("createMeeting", &b),
            "only the room's owner or creator, or an administrator, books it",
        )
        .await);
    }
    if !ignore {
        let found = conflicts_of(&state, &mut tx, &b, None).await?;
        if !found.is_empty() {
            return Err(refuse_conflicts(found));
        }
    }
    repo::bookings::insert(&mut tx, &b).await?;
    audit(&mut tx, &caller, entry("createMeeting", &b)).await?;
    mail::enqueue(&state, &mut tx, &b, false).await?;
    tx.commit().await?;
    state.schedule_changed.notify_one();
    state.mail_queued.notify_one();
    Ok((StatusCode::CREATED, Json(b)))
}

/// The conflicts a booking would have (nothing is stored). With `booking_id`, as an edit of
/// that booking.
#[utoipa::path(post, path = "/bookings/conflicts", operation_id = "checkConflicts", tag = "scheduling",
    security(("bearer" = [])), params(ConflictParams), request_body = CreateBooking,
    responses((status = 200, body = Conflicts), (status = 422, body = Problem)))]
async fn check_conflicts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ConflictParams>,
    ApiJson(body): ApiJson<CreateBooking>,
) -> ApiResult<Json<Conflicts>> {
    let mut conn = state.store.conn().await?;
    if let Some(id) = &params.booking_id
        && repo::bookings::get(&mut conn, id)
            .await?
            .is_none_or(|b| !sees(&caller, &b))
    {
        return Err(ApiError::field("booking_id", "no such scheduled meeting"));
    }
    let (b, _) = from_request(&mut conn, &caller, body).await?;
    let conflicts = conflicts_of(&state, &mut conn, &b, params.booking_id.as_deref()).await?;
    Ok(Json(Conflicts { conflicts }))
}

/// Scheduled meetings the caller organises or is invited to (administrators: the tenant's).
#[utoipa::path(get, path = "/bookings", operation_id = "listMeetings", tag = "scheduling",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<Booking>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_meetings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Booking>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    let tenant_id = params.tenant(&mut conn, &caller).await?;
    let visible_to = (!caller.administers(&tenant_id)).then_some(caller.user.id.as_str());
    Ok(Json(
        repo::bookings::list(&mut conn, &tenant_id, visible_to, params.cursor(), limit)
            .await?
            .into(),
    ))
}

/// One scheduled meeting.
#[utoipa::path(get, path = "/bookings/{id}", operation_id = "getMeeting", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Booking), (status = 404, body = Problem)))]
async fn get_meeting(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Booking>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(load(&mut conn, &caller, &id).await?))
}

/// A scheduled meeting's occurrences in a time range, exceptions applied.
#[utoipa::path(get, path = "/bookings/{id}/occurrences", operation_id = "listOccurrences", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path), Range),
    responses((status = 200, body = Occurrences), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_occurrences(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(range): ApiQuery<Range>,
) -> ApiResult<Json<Occurrences>> {
    let mut conn = state.store.conn().await?;
    let b = load(&mut conn, &caller, &id).await?;
    let (from, to) = range.resolve()?;
    let overrides = repo::bookings::overrides(&mut conn, &b.id).await?;
    let items = occurrences(&b, &overrides, from, to).map_err(ApiError::internal)?;
    Ok(Json(Occurrences { items }))
}

/// 403 (audited as denied) unless the caller organises the meeting or administers the
/// tenant. The transaction is ended first: the denial is written on its own connection.
async fn refuse_unless_manages(
    state: &AppState,
    caller: &Caller,
    b: &Booking,
    action: &'static str,
    tx: conclave_store::Tx,
) -> ApiResult<conclave_store::Tx> {
    if manages(caller, b) {
        return Ok(tx);
    }
    drop(tx);
    Err(deny(
        state,
        caller,
        entry(action, b),
        "only the organiser or an administrator changes a scheduled meeting",
    )
    .await)
}

/// Change the whole series (its organiser or an administrator). Checked for conflicts like
/// a new booking.
#[utoipa::path(patch, path = "/bookings/{id}", operation_id = "updateMeeting", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateBooking,
    responses((status = 200, body = Booking), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_meeting(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBooking>,
) -> ApiResult<Json<Booking>> {
    let mut tx = state.store.begin().await?;
    let mut b = load(&mut tx, &caller, &id).await?;
    let mut tx = refuse_unless_manages(&state, &caller, &b, "updateMeeting", tx).await?;
    if b.cancelled {
        return Err(ApiError::conflict("cancelled", "the meeting was cancelled"));
    }
    let timing_changed = body.time_zone.is_some()
        || body.start_local.is_some()
        || body.rrule.is_some()
        || body.duration_minutes.is_some();
    if let Some(v) = body.name {
        b.name = v.trim().to_owned();
    }
    if let Some(v) = body.pin {
        b.pin = (!v.is_empty()).then_some(v);
    }
    if let Some(v) = body.description {
        b.description = v;
    }
    if let Some(v) = body.expected_participants {
        b.expected_participants = v;
    }
    if let Some(v) = body.room_id {
        if !may_book(&mut tx, &caller, &v).await? {
            drop(tx);
            return Err(deny(
                &state,
                &caller,
                entry("updateMeeting", &b),
                "only the room's owner or creator, or an administrator, books it",
            )
            .await);
        }
        b.room_id = v;
    }
    if let Some(v) = body.time_zone {
        b.time_zone = v;
    }
    if let Some(v) = body.start_local {
        b.start_local = v;
    }
    if let Some(v) = body.duration_minutes {
        b.duration_minutes = v;
    }
    if let Some(v) = body.rrule {
        b.rrule = (!v.trim().is_empty()).then_some(v);
    }
    if let Some(v) = body.exdates {
        b.exdates = v;
    }
    if let Some(v) = body.settings {
        b.settings = v;
    }
    if let Some(v) = body.members {
        b.members = v;
    }
    let groups = body.groups.unwrap_or_default();
    check(&mut tx, &caller, &mut b, &groups).await?;
    if timing_changed {
        // The rule's occurrences changed: exceptions of those not started no longer apply.
        repo::bookings::drop_overrides_from(&mut tx, &b.id, i64::MIN).await?;
    }
    if !body.ignore_conflicts {
        let found = conflicts_of(&state, &mut tx, &b, None).await?;
        if !found.is_empty() {
            return Err(refuse_conflicts(found));
        }
    }
    b.sequence += 1;
    b.updated_at = now_ms();
    repo::bookings::update(&mut tx, &b).await?;
    audit(&mut tx, &caller, entry("updateMeeting", &b)).await?;
    mail::enqueue(&state, &mut tx, &b, false).await?;
    tx.commit().await?;
    state.schedule_changed.notify_one();
    state.mail_queued.notify_one();
    Ok(Json(b))
}

/// Cancel a scheduled meeting, every occurrence (its organiser or an administrator). It is
/// kept, marked cancelled, so invitations can say so.
#[utoipa::path(delete, path = "/bookings/{id}", operation_id = "cancelMeeting", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Booking), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn cancel_meeting(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Booking>> {
    let mut tx = state.store.begin().await?;
    let mut b = load(&mut tx, &caller, &id).await?;
    let mut tx = refuse_unless_manages(&state, &caller, &b, "cancelMeeting", tx).await?;
    if !b.cancelled {
        b.cancelled = true;
        b.sequence += 1;
        b.updated_at = now_ms();
        repo::bookings::update(&mut tx, &b).await?;
        audit(&mut tx, &caller, entry("cancelMeeting", &b)).await?;
        mail::enqueue(&state, &mut tx, &b, true).await?;
    }
    tx.commit().await?;
    state.schedule_changed.notify_one();
    state.mail_queued.notify_one();
    Ok(Json(b))
}

/// Move or cancel one occurrence (`scope: this`), or change this and every following one
/// (`scope: following`: the series ends before it and a new one, returned, begins with it).
/// The occurrence is named by the start its rule gives it.
#[utoipa::path(patch, path = "/bookings/{id}/occurrences/{original_start}", operation_id = "updateOccurrence",
    tag = "scheduling", security(("bearer" = [])),
    params(("id" = String, Path), ("original_start" = i64, Path, description = "epoch ms")),
    request_body = UpdateOccurrence,
    responses((status = 200, body = Booking), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_occurrence(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, original_start)): Path<(String, i64)>,
    ApiJson(body): ApiJson<UpdateOccurrence>,
) -> ApiResult<Json<Booking>> {
    let mut tx = state.store.begin().await?;
    let mut b = load(&mut tx, &caller, &id).await?;
    let mut tx = refuse_unless_manages(&state, &caller, &b, "updateOccurrence", tx).await?;
    let is_occurrence = recurrence::starts(
        &crate::scheduling::series(&b),
        original_start,
        original_start.saturating_add(1),
    )
    .is_ok_and(|s| s == [original_start]);
    if !is_occurrence || b.cancelled {
        return Err(ApiError::not_found("occurrence"));
    }
    let tz = recurrence::parse_tz(&b.time_zone).map_err(ApiError::internal)?;
    let mut c = Checks::new();
    let new_start = match &body.start_local {
        Some(s) => match recurrence::parse_local(s) {
            Ok(local) => Some(recurrence::local_to_ms(tz, local)),
            Err(e) => {
                c.fail("start_local", e);
                None
            }
        },
        None => None,
    };
    if let Some(d) = body.duration_minutes {
        c.range("duration_minutes", d, 5, recurrence::MAX_DURATION_MINUTES);
    }
    let scope = body.scope.as_deref().unwrap_or("this");
    if !matches!(scope, "this" | "following") {
        c.fail("scope", "must be this or following");
    }
    c.finish()?;
    let duration = body.duration_minutes.unwrap_or(b.duration_minutes);
    if scope == "this" {
        let o = OccurrenceOverride {
            original_start,
            start_at: new_start.unwrap_or(original_start),
            end_at: new_start.unwrap_or(original_start) + duration * 60_000,
            cancelled: body.cancelled,
            started_at: None,
        };
        repo::bookings::set_override(&mut tx, &b.id, &o).await?;
        if !body.cancelled && !body.ignore_conflicts {
            let found = conflicts_of(&state, &mut tx, &b, None).await?;
            let found: Vec<Conflict> = found
                .into_iter()
                .filter(|f| f.occurrence_start == o.start_at)
                .collect();
            if !found.is_empty() {
                return Err(refuse_conflicts(found));
            }
        }
        b.sequence += 1;
        b.updated_at = now_ms();
        repo::bookings::update(&mut tx, &b).await?;
        let mut e = entry("updateOccurrence", &b);
        e.detail["original_start"] = original_start.into();
        e.detail["cancelled"] = body.cancelled.into();
        audit(&mut tx, &caller, e).await?;
        mail::enqueue(&state, &mut tx, &b, false).await?;
        tx.commit().await?;
        state.schedule_changed.notify_one();
        state.mail_queued.notify_one();
        return Ok(Json(b));
    }
    // This and the following: the series ends before it; the rest becomes a new series.
    let Some(rule) = b.rrule.clone() else {
        return Err(ApiError::field(
            "scope",
            "the meeting does not repeat: use this",
        ));
    };
    let before = recurrence::starts(
        &crate::scheduling::series(&b),
        b.first_start,
        original_start,
    )
    .map_err(ApiError::internal)?;
    let earlier = recurrence::starts(
        &crate::scheduling::Series {
            exdates: &[],
            ..crate::scheduling::series(&b)
        },
        b.first_start,
        original_start,
    )
    .map_err(ApiError::internal)?
    .len();
    let remaining = recurrence::count(&rule).map(|n| n.saturating_sub(earlier as u32));
    let mut next = b.clone();
    next.id = new_id();
    next.split_from = Some(b.id.clone());
    next.sequence = 0;
    next.exdates.retain(|t| *t > original_start);
    next.start_local = recurrence::local_of(tz, new_start.unwrap_or(original_start));
    next.duration_minutes = duration;
    next.rrule = Some(match remaining {
        Some(n) => recurrence::with_end(&rule, None, Some(n)),
        None => rule.clone(),
    });
    next.created_at = now_ms();
    next.updated_at = next.created_at;
    if before.is_empty() {
        // Nothing stays before it: the whole series is the following ones.
        b.cancelled = true;
    } else {
        b.rrule = Some(recurrence::with_end(
            &rule,
            Some(original_start - 1000),
            None,
        ));
        b.exdates.retain(|t| *t < original_start);
        if let Some((first, last)) = recurrence::bounds(&crate::scheduling::series(&b))
            .ok()
            .flatten()
        {
            b.first_start = first;
            b.last_end = Some(last);
        }
    }
    repo::bookings::drop_overrides_from(&mut tx, &b.id, original_start).await?;
    b.sequence += 1;
    b.updated_at = next.updated_at;
    repo::bookings::update(&mut tx, &b).await?;
    let mut e = entry("updateOccurrence", &b);
    e.detail["original_start"] = original_start.into();
    e.detail["scope"] = "following".into();
    audit(&mut tx, &caller, e).await?;
    mail::enqueue(&state, &mut tx, &b, b.cancelled).await?;
    if body.cancelled {
        tx.commit().await?;
        state.schedule_changed.notify_one();
        state.mail_queued.notify_one();
        return Ok(Json(b));
    }
    check(&mut tx, &caller, &mut next, &[]).await?;
    if !body.ignore_conflicts {
        let found = conflicts_of(&state, &mut tx, &next, Some(&b.id)).await?;
        if !found.is_empty() {
            return Err(refuse_conflicts(found));
        }
    }
    repo::bookings::insert(&mut tx, &next).await?;
    audit(&mut tx, &caller, entry("createMeeting", &next)).await?;
    mail::enqueue(&state, &mut tx, &next, false).await?;
    tx.commit().await?;
    state.schedule_changed.notify_one();
    state.mail_queued.notify_one();
    Ok(Json(next))
}

/// Every occurrence, in a time range, of the meetings the caller organises or is invited to.
#[derive(Serialize, ToSchema)]
pub struct MailList {
    /// Newest first (at most 500).
    pub items: Vec<conclave_store::model::MailMessage>,
}

/// The invitations mailed for a scheduled meeting and what became of each (sent, or waiting
/// with the last failure): its organiser and administrators.
#[utoipa::path(get, path = "/bookings/{id}/mail", operation_id = "listMeetingMail", tag = "scheduling",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = MailList), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_meeting_mail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MailList>> {
    let mut conn = state.store.conn().await?;
    let b = load(&mut conn, &caller, &id).await?;
    if b.organiser_id != caller.user.id && !caller.administers(&b.tenant_id) {
        return Err(ApiError::forbidden(
            "only the organiser and administrators see the meeting's mail",
        ));
    }
    Ok(Json(MailList {
        items: repo::mail::of_booking(&mut conn, &b.id, 500).await?,
    }))
}

#[utoipa::path(get, path = "/my/meetings", operation_id = "listMyMeetings", tag = "scheduling",
    security(("bearer" = [])), params(Range),
    responses((status = 200, body = MyOccurrences), (status = 422, body = Problem)))]
async fn list_my_meetings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(range): ApiQuery<Range>,
) -> ApiResult<Json<MyOccurrences>> {
    let (from, to) = range.resolve()?;
    let mut conn = state.store.conn().await?;
    let items = my_occurrences(&mut conn, &caller.user.id, from, to).await?;
    Ok(Json(MyOccurrences { items }))
}

async fn my_occurrences(
    conn: &mut Conn,
    user_id: &str,
    from: i64,
    to: i64,
) -> ApiResult<Vec<MyOccurrence>> {
    let mut items = Vec::new();
    for b in repo::bookings::of_user_between(conn, user_id, from, to).await? {
        let overrides = repo::bookings::overrides(conn, &b.id).await?;
        let Ok(occ) = occurrences(&b, &overrides, from, to) else {
            continue;
        };
        let room_number = repo::rooms::get(conn, &b.room_id)
            .await?
            .map(|r| r.number)
            .unwrap_or_default();
        let role = if b.organiser_id == user_id {
            "organiser".to_owned()
        } else {
            b.members
                .iter()
                .find(|m| m.user_id.as_deref() == Some(user_id))
                .map(|m| m.role.as_str().to_owned())
                .unwrap_or_default()
        };
        for o in occ {
            items.push(MyOccurrence {
                occurrence: o,
                name: b.name.clone(),
                room_id: b.room_id.clone(),
                room_number: room_number.clone(),
                organiser_id: b.organiser_id.clone(),
                role: role.clone(),
                time_zone: b.time_zone.clone(),
            });
        }
    }
    items.sort_by_key(|i| i.occurrence.start_at);
    Ok(items)
}

/// A new secret URL for the caller's calendar feed (any earlier one stops working).
#[utoipa::path(post, path = "/my/calendar-feed", operation_id = "createCalendarFeed", tag = "scheduling",
    security(("bearer" = [])), responses((status = 201, body = CalendarFeed)))]
async fn create_calendar_feed(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<CalendarFeed>)> {
    let token = crate::credentials::new_feed_token();
    let mut tx = state.store.begin().await?;
    repo::bookings::set_feed(
        &mut tx,
        &caller.user.id,
        &crate::credentials::token_hash(&token),
        now_ms(),
    )
    .await?;
    audit(
        &mut tx,
        &caller,
        Audit {
            action: "createCalendarFeed",
            tenant_id: caller.tenant_id(),
            target_type: "user",
            target_id: Some(&caller.user.id),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CalendarFeed {
            path: format!("/api/v1/calendar/{token}.ics"),
            token,
        }),
    ))
}

/// Revoke the caller's calendar feed URL.
#[utoipa::path(delete, path = "/my/calendar-feed", operation_id = "revokeCalendarFeed", tag = "scheduling",
    security(("bearer" = [])), responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_calendar_feed(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    if !repo::bookings::revoke_feed(&mut tx, &caller.user.id).await? {
        return Err(ApiError::not_found("calendar feed"));
    }
    audit(
        &mut tx,
        &caller,
        Audit {
            action: "revokeCalendarFeed",
            tenant_id: caller.tenant_id(),
            target_type: "user",
            target_id: Some(&caller.user.id),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's meetings as an iCalendar feed (`text/calendar`), for calendar apps: the secret
/// token in the path is the credential (`<token>.ics`). Every occurrence from 30 days ago to
/// a year ahead, one event each.
#[utoipa::path(get, path = "/calendar/{file}", operation_id = "getCalendarFeed", tag = "scheduling",
    params(("file" = String, Path, description = "the feed token followed by .ics")),
    responses((status = 200, content_type = "text/calendar", body = String), (status = 404, body = Problem)))]
async fn calendar_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let token = file.strip_suffix(".ics").unwrap_or(&file);
    let mut conn = state.store.conn().await?;
    let user_id = repo::bookings::feed_user(&mut conn, &crate::credentials::token_hash(token))
        .await?
        .ok_or_else(|| ApiError::not_found("calendar feed"))?;
    let user = repo::users::get(&mut conn, &user_id)
        .await?
        .filter(|u| u.status != conclave_store::model::UserStatus::Frozen)
        .ok_or_else(|| ApiError::not_found("calendar feed"))?;
    let now = now_ms();
    let items = my_occurrences(
        &mut conn,
        &user.id,
        now - 30 * 86_400_000,
        now + 365 * 86_400_000,
    )
    .await?;
    let mut ics = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Conclave//Scheduled meetings//EN\r\nCALSCALE:GREGORIAN\r\n",
    );
    let stamp = recurrence::ical_utc(now);
    for i in items {
        let o = &i.occurrence;
        let mut lines = vec![
            "BEGIN:VEVENT".to_owned(),
            format!("UID:{}-{}@conclave", o.booking_id, o.original_start),
            format!("DTSTAMP:{stamp}"),
            format!("DTSTART:{}", recurrence::ical_utc(o.start_at)),
            format!("DTEND:{}", recurrence::ical_utc(o.end_at)),
            format!("SUMMARY:{}", ical_text(&i.name)),
            format!("LOCATION:{}", ical_text(&format!("Room {}", i.room_number))),
        ];
        if o.cancelled {
            lines.push("STATUS:CANCELLED".into());
        }
        lines.push("END:VEVENT".into());
        for line in lines {
            ics.push_str(&fold(&line));
        }
    }
    ics.push_str("END:VCALENDAR\r\n");
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        ics,
    )
        .into_response())
}

/// iCalendar TEXT escaping (RFC 5545 3.3.11).
fn ical_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace(['\r', '\n'], "\\n")
}

/// A content line folded at 75 octets (never inside a UTF-8 character), CRLF-terminated.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for ch in line.chars() {
        let n = ch.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += n;
    }
    out.push_str("\r\n");
    out
}
