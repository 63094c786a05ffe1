//! The audit log: every management action, who, what, when, from where.

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiQuery, AppState, List};
use axum::Json;
use axum::extract::State;
use conclave_store::model::AuditEvent;
use conclave_store::repo;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// How many events at most (1–200, default 50), newest first.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// System administrators: one tenant's events (default: every tenant's).
    pub tenant_id: Option<String>,
    /// Only this actor's actions (a user id).
    pub actor_id: Option<String>,
    /// Only this action (an operationId such as `createRoom`).
    pub action: Option<String>,
    /// Only actions on this object.
    pub target_id: Option<String>,
    /// From this time (epoch ms, inclusive).
    pub since: Option<i64>,
    /// Up to this time (epoch ms, inclusive).
    pub until: Option<i64>,
}

/// Query the audit log (system administrators: all; tenant administrators: their tenant).
#[utoipa::path(get, path = "/audit-events", operation_id = "listAuditEvents", tag = "audit",
    security(("bearer" = [])), params(AuditParams),
    responses((status = 200, body = List<AuditEvent>), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<Json<List<AuditEvent>>> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden(
            "only administrators read the audit log",
        ));
    }
    let limit = super::page_limit(p.limit)?;
    let tenant_id = if caller.is_system_admin() {
        p.tenant_id
    } else {
        match p.tenant_id {
            Some(t) if t != caller.tenant_id() => return Err(ApiError::not_found("tenant")),
            _ => Some(caller.tenant_id().to_owned()),
        }
    };
    let filter = repo::audit::Filter {
        tenant_id,
        actor_id: p.actor_id,
        action: p.action,
        target_id: p.target_id,
        since: p.since,
        until: p.until,
    };
    let mut conn = state.store.conn().await?;
    Ok(Json(
        repo::audit::list(&mut conn, &filter, p.cursor.as_deref(), limit)
            .await?
            .into(),
    ))
}
