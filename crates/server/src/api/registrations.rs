//! Who is registered: the live SIP bindings of a tenant's extensions.

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiQuery, AppState};
use crate::sip::BindingView;
use axum::Json;
use axum::extract::State;
use conclave_store::repo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_registrations))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RegistrationParams {
    /// System administrators only: another tenant's extensions.
    pub tenant_id: Option<String>,
}

/// An extension and where it is registered (no bindings: not registered).
#[derive(Debug, Serialize, ToSchema)]
pub struct Registration {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub extension: String,
    pub bindings: Vec<BindingView>,
}

/// Every extension of the tenant with its live registrations (administrators).
#[utoipa::path(get, path = "/registrations", operation_id = "listRegistrations", tag = "sip",
    security(("bearer" = [])), params(RegistrationParams),
    responses((status = 200, body = Vec<Registration>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_registrations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<RegistrationParams>,
) -> ApiResult<Json<Vec<Registration>>> {
    let tenant_id = match p.tenant_id {
        Some(t) if caller.sees_tenant(&t) => t,
        Some(_) => return Err(ApiError::not_found("tenant")),
        None => caller.tenant_id().to_owned(),
    };
    if !caller.administers(&tenant_id) {
        return Err(ApiError::forbidden("only administrators see registrations"));
    }
    let mut conn = state.store.conn().await?;
    let users = repo::users::with_extension(&mut conn, &tenant_id).await?;
    drop(conn);
    let extensions = users.iter().filter_map(|u| u.extension.clone()).collect();
    let bindings = state.sip.bindings(&tenant_id, extensions).await?;
    Ok(Json(
        users
            .into_iter()
            .zip(bindings)
            .filter_map(|(u, bindings)| {
                Some(Registration {
                    extension: u.extension?,
                    user_id: u.id,
                    username: u.username,
                    display_name: u.display_name,
                    bindings,
                })
            })
            .collect(),
    ))
}
