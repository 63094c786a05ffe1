//! The organisation tree: departments nest; each user and enterprise contact may belong to
//! one. Administrators keep the tree; everybody of the tenant sees it.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, audit, deny, nullable};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::Department;
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_department, list_departments))
        .routes(routes!(update_department, delete_department))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDepartment {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The department it belongs under; absent for a top-level department.
    pub parent_id: Option<String>,
    /// Siblings are shown by this, lowest first (default 0).
    #[serde(default)]
    pub sort_order: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDepartment {
    /// A new name (rename).
    pub name: Option<String>,
    /// A new parent (move); null moves it to the top. Not itself nor one of its descendants.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    pub sort_order: Option<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Also when the department still has sub-departments or people: they move up to its
    /// parent (people of a top-level department are then in none). Without it such a
    /// department is not deleted (409).
    #[serde(default)]
    pub reassign: bool,
}

const REFUSAL: &str = "only administrators change the organisation tree";

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Department> {
    repo::departments::get(conn, id)
        .await?
        .filter(|d| caller.sees_tenant(&d.tenant_id))
        .ok_or_else(|| ApiError::not_found("department"))
}

fn entry<'a>(action: &'static str, d: &'a Department) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &d.tenant_id,
        target_type: "department",
        target_id: Some(&d.id),
        detail: serde_json::json!({ "name": d.name, "parent_id": d.parent_id }),
    }
}

/// Checks that `department_id` (of a person or a parent) names a department of the tenant.
pub(super) async fn check_reference(
    conn: &mut Conn,
    c: &mut Checks,
    field: &str,
    tenant_id: &str,
    department_id: Option<&str>,
) -> ApiResult<()> {
    if let Some(id) = department_id
        && repo::departments::get(conn, id)
            .await?
            .is_none_or(|d| d.tenant_id != tenant_id)
    {
        c.fail(field, "no such department in this tenant");
    }
    Ok(())
}

fn check_fields(c: &mut Checks, d: &Department) {
    c.text("name", &d.name, 1, 100);
    c.range("sort_order", d.sort_order, -1_000_000, 1_000_000);
}

/// A sibling already has the name: 409 naming `name` (the unique index guards a race).
async fn check_unique(conn: &mut Conn, d: &Department) -> ApiResult<()> {
    if repo::departments::sibling_named(conn, &d.tenant_id, d.parent_id.as_deref(), &d.name)
        .await?
        .is_some_and(|other| other.id != d.id)
    {
        return Err(ApiError::conflict(
            "name",
            format!(
                "a department named {:?} already exists at this place in the tree",
                d.name
            ),
        ));
    }
    Ok(())
}

/// Add a department to the organisation tree (administrators).
#[utoipa::path(post, path = "/departments", operation_id = "createDepartment", tag = "directory",
    security(("bearer" = [])), request_body = CreateDepartment,
    responses((status = 201, body = Department), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn create_department(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateDepartment>,
) -> ApiResult<(StatusCode, Json<Department>)> {
    let now = now_ms();
    let department = Department {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        parent_id: body.parent_id,
        name: body.name.trim().to_owned(),
        sort_order: body.sort_order,
        created_at: now,
        updated_at: now,
    };
    if !caller.administers(&department.tenant_id) {
        return Err(deny(
            &state,
            &caller,
            entry("createDepartment", &department),
            REFUSAL,
        )
        .await);
    }
    let mut tx = state.store.begin().await?;
    let mut c = Checks::new();
    check_fields(&mut c, &department);
    check_reference(
        &mut tx,
        &mut c,
        "parent_id",
        &department.tenant_id,
        department.parent_id.as_deref(),
    )
    .await?;
    c.finish()?;
    check_unique(&mut tx, &department).await?;
    repo::departments::insert(&mut tx, &department).await?;
    audit(&mut tx, &caller, entry("createDepartment", &department)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(department)))
}

/// The departments of the tenant (the whole tree, page by page; build it from `parent_id`).
#[utoipa::path(get, path = "/departments", operation_id = "listDepartments", tag = "directory",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<Department>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_departments(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Department>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    let tenant_id = params.tenant(&mut conn, &caller).await?;
    Ok(Json(
        repo::departments::list(&mut conn, &tenant_id, params.cursor(), limit)
            .await?
            .into(),
    ))
}

/// Rename, move or reorder a department (administrators). A department cannot move below
/// itself or one of its descendants (422).
#[utoipa::path(patch, path = "/departments/{id}", operation_id = "updateDepartment", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateDepartment,
    responses((status = 200, body = Department), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_department(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateDepartment>,
) -> ApiResult<Json<Department>> {
    let mut tx = state.store.begin().await?;
    let mut department = load(&mut tx, &caller, &id).await?;
    if !caller.administers(&department.tenant_id) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("updateDepartment", &department),
            REFUSAL,
        )
        .await);
    }
    if let Some(name) = body.name {
        department.name = name.trim().to_owned();
    }
    if let Some(order) = body.sort_order {
        department.sort_order = order;
    }
    let mut c = Checks::new();
    if let Some(parent) = body.parent_id {
        check_reference(
            &mut tx,
            &mut c,
            "parent_id",
            &department.tenant_id,
            parent.as_deref(),
        )
        .await?;
        if let Some(p) = &parent
            && repo::departments::is_in_subtree(&mut tx, &department.id, p).await?
        {
            c.fail(
                "parent_id",
                "a department cannot move below itself or one of its own sub-departments",
            );
        }
        department.parent_id = parent;
    }
    check_fields(&mut c, &department);
    c.finish()?;
    check_unique(&mut tx, &department).await?;
    department.updated_at = now_ms();
    repo::departments::update(&mut tx, &department).await?;
    audit(&mut tx, &caller, entry("updateDepartment", &department)).await?;
    tx.commit().await?;
    Ok(Json(department))
}

/// Delete a department (administrators). One that still has sub-departments or people is
/// refused (409) unless `reassign=true` moves them up to its parent first.
#[utoipa::path(delete, path = "/departments/{id}", operation_id = "deleteDepartment", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path), DeleteParams),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn delete_department(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let department = load(&mut tx, &caller, &id).await?;
    if !caller.administers(&department.tenant_id) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("deleteDepartment", &department),
            REFUSAL,
        )
        .await);
    }
    let (children, users, contacts) =
        repo::departments::dependents(&mut tx, &department.id).await?;
    if children + users + contacts > 0 {
        if !params.reassign {
            return Err(ApiError::conflict(
                "id",
                format!(
                    "the department still has {children} sub-department(s), {users} user(s) and \
                     {contacts} contact(s): move them elsewhere first, or delete with \
                     reassign=true to move them up to its parent"
                ),
            ));
        }
        let now = now_ms();
        repo::departments::hand_down(
            &mut tx,
            &department.id,
            department.parent_id.as_deref(),
            now,
        )
        .await
        .map_err(|err| match err {
            conclave_store::StoreError::Conflict { .. } => ApiError::conflict(
                "name",
                "a sub-department has the name of one already under the parent: rename it first",
            ),
            other => other.into(),
        })?;
    }
    repo::departments::delete(&mut tx, &department.id).await?;
    let mut logged = entry("deleteDepartment", &department);
    logged.detail = serde_json::json!({
        "name": department.name,
        "parent_id": department.parent_id,
        "moved_up": { "departments": children, "users": users, "contacts": contacts },
    });
    audit(&mut tx, &caller, logged).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
