//! The directory: one search over the people a caller may see — every user of the tenant,
//! the enterprise address book and the caller's own — by name, pinyin (full or initials:
//! 张三 is found by `zs` and `zhangsan`) or any number, optionally within a department.

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiQuery, AppState, List};
use axum::Json;
use axum::extract::State;
use conclave_store::model::DirectoryEntry;
use conclave_store::repo::directory::Search;
use conclave_store::{repo, search};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_directory))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DirectoryParams {
    /// A name or part of one, pinyin (full or initials), or a number (spaces and dashes are
    /// ignored); absent: everybody.
    pub q: Option<String>,
    /// Only the people of this department.
    pub department_id: Option<String>,
    /// With `department_id`: also the people of every department below it.
    #[serde(default)]
    pub subtree: bool,
    /// How many items at most (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Find people by name, pinyin initials or number, by name order.
#[utoipa::path(get, path = "/directory", operation_id = "searchDirectory", tag = "directory",
    security(("bearer" = [])), params(DirectoryParams),
    responses((status = 200, body = List<DirectoryEntry>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn search_directory(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<DirectoryParams>,
) -> ApiResult<Json<List<DirectoryEntry>>> {
    let limit = super::page_limit(p.limit)?;
    let query = search::normalize_query(p.q.as_deref().unwrap_or(""));
    if query.chars().count() > 100 {
        return Err(ApiError::field("q", "must be at most 100 characters"));
    }
    let mut conn = state.store.conn().await?;
    if let Some(id) = &p.department_id
        && repo::departments::get(&mut conn, id)
            .await?
            .is_none_or(|d| d.tenant_id != caller.tenant_id())
    {
        return Err(ApiError::not_found("department"));
    }
    let s = Search {
        query: &query,
        department_id: p.department_id.as_deref(),
        subtree: p.subtree,
    };
    let cursor = p.cursor.as_deref().unwrap_or("");
    Ok(Json(
        repo::directory::search(
            &mut conn,
            caller.tenant_id(),
            &caller.user.id,
            &s,
            cursor,
            limit,
        )
        .await?
        .into(),
    ))
}
