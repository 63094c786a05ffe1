//! Meeting history: what took place, who attended, and the log — as JSON or CSV.

use super::conferences::{self, Origin, Started};
use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, List, page_limit};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_conference::Role;
use conclave_store::model::{Attendance, Meeting, MeetingLogEntry, MemberKind, TemplateMember};
use conclave_store::{Conn, repo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conference_history))
        .routes(routes!(get_conference_record))
        .routes(routes!(get_conference_log))
        .routes(routes!(restart_conference))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Meetings that started from this time (epoch ms).
    pub since: Option<i64>,
    /// Meetings that started up to this time (epoch ms).
    pub until: Option<i64>,
    /// A room number, or part of a room name.
    pub q: Option<String>,
    /// Part of an attendee's name or number.
    pub participant: Option<String>,
    /// `json` (default) or `csv` (the page as a spreadsheet: room, start, end, minutes,
    /// attendees).
    pub format: Option<String>,
    /// How many at most (1–200, default 50), newest first.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingRecord {
    pub meeting: Meeting,
    pub attendance: Vec<Attendance>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Administrators see their tenant's history; others, that of the rooms they run.
async fn visible(conn: &mut Conn, caller: &Caller, meeting: &Meeting) -> ApiResult<bool> {
    if caller.administers(&meeting.tenant_id) {
        return Ok(true);
    }
    if !caller.sees_tenant(&meeting.tenant_id) {
        return Ok(false);
    }
    let Some(room_id) = &meeting.room_id else {
        return Ok(false);
    };
    Ok(repo::rooms::get(conn, room_id).await?.is_some_and(|r| {
        r.creator_id.as_deref() == Some(&caller.user.id)
            || r.owner_id.as_deref() == Some(&caller.user.id)
    }))
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Meeting> {
    let meeting = repo::meetings::get(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("meeting"))?;
    if visible(conn, caller, &meeting).await? {
        Ok(meeting)
    } else {
        Err(ApiError::not_found("meeting"))
    }
}

/// Past and current meetings of the tenant, newest first (administrators).
#[utoipa::path(get, path = "/conference-history", operation_id = "listConferenceHistory", tag = "conferences",
    security(("bearer" = [])), params(HistoryParams),
    responses((status = 200, description = "the meetings", content((List<Meeting> = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_conference_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> ApiResult<Response> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden(
            "only administrators list the history; room owners open their meetings by id",
        ));
    }
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::field("format", "must be json or csv")),
    };
    let limit = page_limit(p.limit)?;
    let mut conn = state.store.conn().await?;
    let page = repo::meetings::list(
        &mut conn,
        caller.tenant_id(),
        p.since.unwrap_or(0),
        p.until.unwrap_or(i64::MAX),
        p.q.as_deref().unwrap_or("").trim(),
        p.participant.as_deref().unwrap_or("").trim(),
        p.cursor.as_deref().unwrap_or(""),
        limit,
    )
    .await?;
    if !csv {
        return Ok(Json(List::from(page)).into_response());
    }
    let mut out = String::from("room_number,room_name,started_at,ended_at,minutes,attendees\n");
    for m in &page.items {
        let attendees = repo::meetings::attendance(&mut conn, &m.id).await?;
        // Each person once, in the order they first joined.
        let mut names: Vec<&str> = Vec::new();
        for a in &attendees {
            if !names.contains(&a.name.as_str()) {
                names.push(&a.name);
            }
        }
        let minutes = m
            .ended_at
            .map(|end| ((end - m.started_at).max(0) / 60_000).to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_field(&m.room_number),
            csv_field(&m.room_name),
            m.started_at,
            m.ended_at.map(|e| e.to_string()).unwrap_or_default(),
            minutes,
            csv_field(&names.join("; "))
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"meetings.csv\"".to_owned(),
            ),
        ],
        out,
    )
        .into_response())
}

/// One meeting: when, where, and who attended (joined, left, how).
#[utoipa::path(get, path = "/conference-history/{id}", operation_id = "getConferenceRecord", tag = "conferences",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = MeetingRecord), (status = 404, body = Problem)))]
async fn get_conference_record(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MeetingRecord>> {
    let mut conn = state.store.conn().await?;
    let meeting = load(&mut conn, &caller, &id).await?;
    let attendance = repo::meetings::attendance(&mut conn, &meeting.id).await?;
    Ok(Json(MeetingRecord {
        meeting,
        attendance,
    }))
}

/// A meeting's log — who did what, when — as JSON, or as CSV to download (`format=csv`).
#[utoipa::path(get, path = "/conference-history/{id}/log", operation_id = "getConferenceLog", tag = "conferences",
    security(("bearer" = [])), params(("id" = String, Path), LogParams),
    responses((status = 200, description = "the log", content((Vec<MeetingLogEntry> = "application/json"), (String = "text/csv"))),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn get_conference_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<Response> {
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::field("format", "must be json or csv")),
    };
    let mut conn = state.store.conn().await?;
    let meeting = load(&mut conn, &caller, &id).await?;
    let entries = repo::meetings::entries(&mut conn, &meeting.id).await?;
    if !csv {
        return Ok(Json(entries).into_response());
    }
    let mut out = String::from("at,actor,kind,detail\n");
    for e in &entries {
        out.push_str(&format!(
            "{},{},{},{}\n",
            e.at,
            csv_field(&e.actor),
            csv_field(&e.kind),
            csv_field(&e.detail.to_string())
        ));
    }
    let disposition = format!("attachment; filename=\"meeting-{}-log.csv\"", meeting.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response())
}

/// Start the same meeting again, in one call. A meeting started from a template that still
/// exists starts again exactly as `startConference` with that `template_id` does (its room,
/// members, roles and settings as they are now); any other meeting starts again ad hoc in the
/// same room (as `startConference` with `room_id` and `members`), calling the people who were
/// called into it and answered: a number that is the extension of a user of the tenant calls
/// that user, any other number is called as such. Each takes the role they have in the room
/// (its templates, its owner and creator), else participant.
#[utoipa::path(post, path = "/conference-history/{id}/restart", operation_id = "restartConference",
    tag = "conferences", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 201, body = Started), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn restart_conference(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let mut conn = state.store.conn().await?;
    let meeting = load(&mut conn, &caller, &id).await?;
    let template = match &meeting.template_id {
        Some(template_id) => repo::templates::get(&mut conn, template_id)
            .await?
            .filter(|t| t.tenant_id == meeting.tenant_id),
        None => None,
    };
    let plan = match template {
        Some(template) => {
            conferences::from_template(&state, &caller, &mut conn, &template.id).await?
        }
        None => {
            let room = match &meeting.room_id {
                Some(room_id) => repo::rooms::get(&mut conn, room_id)
                    .await?
                    .filter(|r| r.tenant_id == meeting.tenant_id),
                None => None,
            }
            .ok_or_else(|| ApiError::field("room_id", "the meeting's room no longer exists"))?;
            let attendance = repo::meetings::attendance(&mut conn, &meeting.id).await?;
            let members = called_back(&mut conn, &room, &attendance).await?;
            conferences::ad_hoc(&mut conn, &caller, room, members, None).await?
        }
    };
    drop(conn);
    conferences::start(
        &state,
        &caller,
        Origin::Restart {
            meeting_id: &meeting.id,
        },
        plan.room,
        plan.members,
        plan.settings,
        plan.template_id,
        plan.allowed,
    )
    .await
}

/// Whom an ad-hoc restart calls: those who joined the meeting by dial-out, once each, in the
/// order they joined.
async fn called_back(
    conn: &mut Conn,
    room: &conclave_store::model::Room,
    attendance: &[Attendance],
) -> ApiResult<Vec<TemplateMember>> {
    let mut seen = std::collections::HashSet::new();
    let mut members = Vec::new();
    for a in attendance {
        let number = a.number.trim();
        if a.via != "dial_out" || number.is_empty() || !seen.insert(number.to_owned()) {
            continue;
        }
        let user = repo::users::get_by_extension(conn, &room.tenant_id, number).await?;
        let role = repo::rooms::member_role(
            conn,
            &room.id,
            user.as_ref().map(|u| u.id.as_str()),
            Some(number),
        )
        .await?
        .unwrap_or(Role::Participant);
        let name: String = a.name.trim().chars().take(100).collect();
        let member = match user {
            Some(user) => TemplateMember {
                kind: MemberKind::User,
                user_id: Some(user.id),
                contact_id: None,
                number: None,
                display_name: String::new(),
                role,
            },
            None => {
                // A number the history holds but no call could be placed to (the checks of
                // `startConference` would refuse it) is left out rather than fail the restart.
                let mut c = Checks::new();
                c.phone("number", number);
                if c.finish().is_err() {
                    continue;
                }
                TemplateMember {
                    kind: MemberKind::Number,
                    user_id: None,
                    contact_id: None,
                    number: Some(number.to_owned()),
                    display_name: name,
                    role,
                }
            }
        };
        members.push(member);
    }
    Ok(members)
}

/// RFC 4180 quoting, and a leading quote for text a spreadsheet would run as a formula.
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("=cmd()"), "'=cmd()");
    }
}
