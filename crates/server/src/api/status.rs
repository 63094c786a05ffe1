//! What is happening now, for the dashboard: a tenant's live meetings and calls, its rooms in
//! use and registered phones; for system administrators also the server's own load.

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiQuery, AppState};
use crate::media::WorkerLoad;
use axum::Json;
use axum::extract::State;
use conclave_conference::live::JoinedVia;
use conclave_store::repo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_status))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusParams {
    /// System administrators only: another tenant's figures.
    pub tenant_id: Option<String>,
}

/// People in meetings, by how they came.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CallsByKind {
    /// Phones that called in (desk phones, softphones, trunks' callers).
    pub dial_in: usize,
    /// People the meetings called (extensions and numbers through trunks).
    pub dial_out: usize,
    /// Browsers.
    pub browser: usize,
    /// Calls placed that have not been answered yet (calling or ringing).
    pub ringing: usize,
    /// Phones calling each other by extension (docs/operator.md): calls, not meetings.
    pub direct: usize,
}

/// A live meeting, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingNow {
    pub room_id: String,
    pub room_number: String,
    pub room_name: String,
    pub members: usize,
    pub talking: usize,
    pub locked: bool,
}

/// A booked meeting about to happen.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeetingNext {
    pub booking_id: String,
    pub name: String,
    pub room_id: String,
    pub start_at: i64,
    pub end_at: i64,
}

/// How far ahead the dashboard looks for booked meetings, and how many it lists.
const NEXT_WINDOW_MS: i64 = 24 * 3600 * 1000;
const NEXT_MAX: usize = 10;

/// The server's own load (system administrators).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerStatus {
    /// Live meetings of every tenant on this node.
    pub live_meetings: usize,
    /// Per media worker (one per core by default).
    pub media_workers: Vec<WorkerLoad>,
    pub descriptors_open: usize,
    /// The limit; new calls are refused from about seven eighths of it.
    pub descriptors_limit: usize,
}

/// The dashboard's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub tenant_id: String,
    pub live_meetings: usize,
    pub members_in_meetings: usize,
    pub calls: CallsByKind,
    pub rooms: i64,
    pub rooms_in_use: usize,
    /// Users with an extension, and how many of them have a phone registered now.
    pub extensions: usize,
    pub extensions_registered: usize,
    pub meetings: Vec<MeetingNow>,
    /// Booked meetings starting in the next 24 hours (at most ten), soonest first.
    pub next: Vec<MeetingNext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerStatus>,
}

/// Live resource status: meetings, calls by kind, rooms in use, registered phones (and, for
/// system administrators, the server's media load and descriptors). Administrators.
#[utoipa::path(get, path = "/status", operation_id = "getStatus", tag = "status",
    security(("bearer" = [])), params(StatusParams),
    responses((status = 200, body = Status), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<StatusParams>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Status>> {
    let tenant_id = match p.tenant_id {
        Some(t) if caller.sees_tenant(&t) => t,
        Some(_) => return Err(ApiError::not_found("tenant")),
        None => caller.tenant_id().to_owned(),
    };
    if !caller.administers(&tenant_id) {
        return Err(ApiError::forbidden("only administrators see the status"));
    }
    let mut conn = state.store.conn().await?;
    let rooms = repo::rooms::count_of_tenant(&mut conn, &tenant_id).await?;
    let users = repo::users::with_extension(&mut conn, &tenant_id).await?;
    let next = next_meetings(&mut conn, &tenant_id).await?;
    drop(conn);
    let extensions: Vec<String> = users.iter().filter_map(|u| u.extension.clone()).collect();
    let registered = state
        .sip
        .bindings(&tenant_id, extensions.clone())
        .await?
        .iter()
        .filter(|b| !b.is_empty())
        .count();
    let live = state.meetings.list(&tenant_id).await;
    let mut calls = CallsByKind::default();
    let mut meetings = Vec::with_capacity(live.len());
    for c in &live {
        if c.call.is_some() {
            calls.direct += 1;
            continue;
        }
        for m in &c.members {
            match m.member.via {
                JoinedVia::DialIn => calls.dial_in += 1,
                JoinedVia::DialOut => calls.dial_out += 1,
                JoinedVia::Browser => calls.browser += 1,
            }
        }
        calls.ringing += c
            .invitations
            .iter()
            .filter(|i| {
                matches!(
                    i.state,
                    crate::meeting::CallState::Calling | crate::meeting::CallState::Ringing
                )
            })
            .count();
        meetings.push(MeetingNow {
            room_id: c.room_id.clone(),
            room_number: c.room_number.clone(),
            room_name: c.room_name.clone(),
            members: c.members.len(),
            talking: c.members.iter().filter(|m| m.member.talking).count(),
            locked: c.locked,
        });
    }
    // in a cluster, the meetings other nodes hold, as their homes show them
    if let Some(cluster) = state.meetings.cluster() {
        let remote = crate::cluster::bus::remote_meetings(
            cluster,
            &tenant_id,
            headers.get(axum::http::header::AUTHORIZATION),
            caller.source,
        )
        .await?;
        for c in remote {
            let members = c["members"].as_array().cloned().unwrap_or_default();
            for m in &members {
                match m["via"].as_str() {
                    Some("dial_out") => calls.dial_out += 1,
                    Some("browser") => calls.browser += 1,
                    _ => calls.dial_in += 1,
                }
            }
            calls.ringing += c["invitations"].as_array().map_or(0, |i| {
                i.iter()
                    .filter(|i| matches!(i["state"].as_str(), Some("calling" | "ringing")))
                    .count()
            });
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
            meetings.push(MeetingNow {
                room_id: text("room_id"),
                room_number: text("room_number"),
                room_name: text("room_name"),
                members: members.len(),
                talking: members.iter().filter(|m| m["talking"] == true).count(),
                locked: c["locked"] == true,
            });
        }
        meetings.sort_by(|a, b| a.room_number.cmp(&b.room_number));
    }
    let server = caller.is_system_admin().then(|| {
        let (descriptors_open, descriptors_limit) = crate::limits::descriptors();
        ServerStatus {
            live_meetings: state.meetings.count(),
            media_workers: state.meetings.media().load(),
            descriptors_open,
            descriptors_limit,
        }
    });
    Ok(Json(Status {
        tenant_id,
        live_meetings: meetings.len(),
        members_in_meetings: meetings.iter().map(|m| m.members).sum(),
        calls,
        rooms,
        rooms_in_use: meetings.len(),
        extensions: extensions.len(),
        extensions_registered: registered,
        meetings,
        next,
        server,
    }))
}

/// The tenant's booked occurrences starting from now to a day ahead (not cancelled).
async fn next_meetings(
    conn: &mut conclave_store::Conn,
    tenant_id: &str,
) -> ApiResult<Vec<MeetingNext>> {
    let now = conclave_store::now_ms();
    let mut next = Vec::new();
    for b in repo::bookings::active_between(conn, now, now + NEXT_WINDOW_MS).await? {
        if b.tenant_id != tenant_id {
            continue;
        }
        let overrides = repo::bookings::overrides(conn, &b.id).await?;
        // A booking whose rule no longer expands is skipped, not an error of the dashboard.
        let Ok(occurrences) =
            crate::scheduling::occurrences(&b, &overrides, now, now + NEXT_WINDOW_MS)
        else {
            continue;
        };
        next.extend(
            occurrences
                .into_iter()
                .filter(|o| !o.cancelled && o.start_at >= now)
                .map(|o| MeetingNext {
                    booking_id: b.id.clone(),
                    name: b.name.clone(),
                    room_id: b.room_id.clone(),
                    start_at: o.start_at,
                    end_at: o.end_at,
                }),
        );
    }
    next.sort_by_key(|n| n.start_at);
    next.truncate(NEXT_MAX);
    Ok(next)
}
