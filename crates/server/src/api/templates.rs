//! Meeting templates ("schemes"): members with roles, and settings. The owner shares a
//! template with other operators, who use it as it is or take their own copy.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, audit, deny, nullable};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::{MemberKind, Template, TemplateMember, TemplateSettings};
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_template, list_templates))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(share_template))
        .routes(routes!(unshare_template))
        .routes(routes!(copy_template))
}

const MAX_MEMBERS: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The room meetings from this template use.
    pub room_id: Option<String>,
    #[serde(default)]
    pub settings: TemplateSettings,
    #[serde(default)]
    pub members: Vec<TemplateMember>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplate {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub room_id: Option<Option<String>>,
    pub settings: Option<TemplateSettings>,
    /// Replaces the whole member list.
    pub members: Option<Vec<TemplateMember>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareTemplate {
    /// Users of the same tenant who may use the template.
    pub user_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CopyTemplate {
    /// Name of the copy (default: the original's name followed by "(copy)").
    pub name: Option<String>,
}

fn sees(caller: &Caller, t: &Template) -> bool {
    caller.administers(&t.tenant_id)
        || t.owner_id == caller.user.id
        || (caller.sees_tenant(&t.tenant_id) && t.shared_with.contains(&caller.user.id))
}

pub(super) fn manages(caller: &Caller, t: &Template) -> bool {
    caller.administers(&t.tenant_id) || t.owner_id == caller.user.id
}

pub(super) async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Template> {
    repo::templates::get(conn, id)
        .await?
        .filter(|t| sees(caller, t))
        .ok_or_else(|| ApiError::not_found("template"))
}

pub(super) fn entry<'a>(action: &'static str, t: &'a Template) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &t.tenant_id,
        target_type: "template",
        target_id: Some(&t.id),
        detail: serde_json::json!({ "name": t.name }),
    }
}

/// Checks the fields and resolves members' names; references must be in the tenant.
pub(super) async fn check_content(
    conn: &mut Conn,
    tenant_id: &str,
    owner_id: &str,
    name: Option<&str>,
    description: Option<&str>,
    room_id: Option<&str>,
    members: Option<&mut Vec<TemplateMember>>,
) -> ApiResult<()> {
    let mut c = Checks::new();
    if let Some(v) = name {
        c.text("name", v, 1, 100);
    }
    if let Some(v) = description {
        c.text("description", v, 0, 2000);
    }
    if let Some(room) = room_id
        && repo::rooms::get(conn, room)
            .await?
            .is_none_or(|r| r.tenant_id != tenant_id)
    {
        c.fail("room_id", "no such room in this tenant");
    }
    if let Some(members) = members {
        if members.len() > MAX_MEMBERS {
            c.fail("members", format!("at most {MAX_MEMBERS} members"));
        }
        for (i, m) in members.iter_mut().enumerate() {
            let at = |f: &str| format!("members[{i}].{f}");
            c.text(&at("display_name"), &m.display_name, 0, 100);
            // Each kind names its member with exactly one field.
            let (needed, set) = match m.kind {
                MemberKind::User => ("user_id", m.user_id.is_some()),
                MemberKind::Contact => ("contact_id", m.contact_id.is_some()),
                MemberKind::Number => ("number", m.number.is_some()),
            };
            if !set {
                c.fail(
                    at(needed),
                    format!("is required for a {} member", m.kind.as_str()),
                );
            }
            for (field, present) in [
                ("user_id", m.user_id.is_some()),
                ("contact_id", m.contact_id.is_some()),
                ("number", m.number.is_some()),
            ] {
                if present && field != needed {
                    c.fail(
                        at(field),
                        format!("must be absent for a {} member", m.kind.as_str()),
                    );
                }
            }
            let name = match m.kind {
                MemberKind::User => match &m.user_id {
                    Some(id) => match repo::users::get(conn, id)
                        .await?
                        .filter(|u| u.tenant_id == tenant_id)
                    {
                        Some(user) => Some(user.display_name),
                        None => {
                            c.fail(at("user_id"), "no such user in this tenant");
                            None
                        }
                    },
                    None => None,
                },
                MemberKind::Contact => match &m.contact_id {
                    Some(id) => {
                        let contact = repo::contacts::get(conn, id).await?.filter(|k| {
                            k.tenant_id == tenant_id
                                && k.owner_id.as_ref().is_none_or(|o| o == owner_id)
                        });
                        match contact {
                            Some(contact) => Some(contact.name),
                            None => {
                                c.fail(
                                    at("contact_id"),
                                    "no such contact in the enterprise book or the owner's own",
                                );
                                None
                            }
                        }
                    }
                    None => None,
                },
                MemberKind::Number => {
                    if let Some(n) = &m.number {
                        c.phone(&at("number"), n);
                    }
                    None
                }
            };
            if let (Some(name), true) = (name, m.display_name.trim().is_empty()) {
                m.display_name = name;
            }
        }
    }
    c.finish()
}

/// Create a template; the caller owns it.
#[utoipa::path(post, path = "/templates", operation_id = "createTemplate", tag = "templates",
    security(("bearer" = [])), request_body = CreateTemplate,
    responses((status = 201, body = Template), (status = 422, body = Problem)))]
async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut body): ApiJson<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    let tenant_id = caller.tenant_id().to_owned();
    let mut c = Checks::new();
    c.layout("settings.layout", body.settings.layout.as_deref());
    c.finish()?;
    let mut tx = state.store.begin().await?;
    check_content(
        &mut tx,
        &tenant_id,
        &caller.user.id,
        Some(&body.name),
        Some(&body.description),
        body.room_id.as_deref(),
        Some(&mut body.members),
    )
    .await?;
    let now = now_ms();
    let template = Template {
        id: new_id(),
        tenant_id,
        owner_id: caller.user.id.clone(),
        name: body.name.trim().to_owned(),
        description: body.description,
        room_id: body.room_id,
        settings: body.settings,
        members: body.members,
        shared_with: Vec::new(),
        copied_from: None,
        created_at: now,
        updated_at: now,
    };
    repo::templates::insert(&mut tx, &template).await?;
    audit(&mut tx, &caller, entry("createTemplate", &template)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(template)))
}

/// Templates the caller may use: their own and those shared with them (administrators: all
/// of the tenant).
#[utoipa::path(get, path = "/templates", operation_id = "listTemplates", tag = "templates",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<Template>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Template>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    let tenant_id = params.tenant(&mut conn, &caller).await?;
    let visible_to = (!caller.administers(&tenant_id)).then_some(caller.user.id.as_str());
    Ok(Json(
        repo::templates::list(&mut conn, &tenant_id, visible_to, params.cursor(), limit)
            .await?
            .into(),
    ))
}

/// One template.
#[utoipa::path(get, path = "/templates/{id}", operation_id = "getTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Template), (status = 404, body = Problem)))]
async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Template>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(load(&mut conn, &caller, &id).await?))
}

/// Change a template (its owner or an administrator). `members` replaces the member list.
#[utoipa::path(patch, path = "/templates/{id}", operation_id = "updateTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateTemplate,
    responses((status = 200, body = Template), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn update_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut body): ApiJson<UpdateTemplate>,
) -> ApiResult<Json<Template>> {
    let mut tx = state.store.begin().await?;
    let mut t = load(&mut tx, &caller, &id).await?;
    if !manages(&caller, &t) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("updateTemplate", &t),
            "only the owner or an administrator changes a template; take a copy instead",
        )
        .await);
    }
    let room_id = body.room_id.clone().flatten();
    let mut c = Checks::new();
    c.layout(
        "settings.layout",
        body.settings.as_ref().and_then(|s| s.layout.as_deref()),
    );
    c.finish()?;
    check_content(
        &mut tx,
        &t.tenant_id,
        &t.owner_id,
        body.name.as_deref(),
        body.description.as_deref(),
        room_id.as_deref(),
        body.members.as_mut(),
    )
    .await?;
    if let Some(v) = body.name {
        t.name = v.trim().to_owned();
    }
    if let Some(v) = body.description {
        t.description = v;
    }
    if let Some(v) = body.room_id {
        t.room_id = v;
    }
    if let Some(v) = body.settings {
        t.settings = v;
    }
    if let Some(v) = body.members {
        t.members = v;
    }
    t.updated_at = now_ms();
    repo::templates::update(&mut tx, &t).await?;
    audit(&mut tx, &caller, entry("updateTemplate", &t)).await?;
    tx.commit().await?;
    Ok(Json(t))
}

/// Delete a template (its owner or an administrator).
#[utoipa::path(delete, path = "/templates/{id}", operation_id = "deleteTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let t = load(&mut tx, &caller, &id).await?;
    if !manages(&caller, &t) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("deleteTemplate", &t),
            "only the owner or an administrator deletes a template",
        )
        .await);
    }
    repo::templates::delete(&mut tx, &t.id).await?;
    audit(&mut tx, &caller, entry("deleteTemplate", &t)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Share a template with other users of the tenant (its owner or an administrator).
#[utoipa::path(post, path = "/templates/{id}/shares", operation_id = "shareTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = ShareTemplate,
    responses((status = 200, body = Template), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn share_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ShareTemplate>,
) -> ApiResult<Json<Template>> {
    let mut tx = state.store.begin().await?;
    let t = load(&mut tx, &caller, &id).await?;
    if !manages(&caller, &t) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("shareTemplate", &t),
            "only the owner or an administrator shares a template",
        )
        .await);
    }
    let mut c = Checks::new();
    if body.user_ids.is_empty() || body.user_ids.len() > MAX_MEMBERS {
        c.fail("user_ids", format!("must name 1 to {MAX_MEMBERS} users"));
    }
    for (i, user_id) in body.user_ids.iter().enumerate() {
        if repo::users::get(&mut tx, user_id)
            .await?
            .is_none_or(|u| u.tenant_id != t.tenant_id)
        {
            c.fail(format!("user_ids[{i}]"), "no such user in this tenant");
        }
    }
    c.finish()?;
    let now = now_ms();
    for user_id in body.user_ids.iter().filter(|u| **u != t.owner_id) {
        repo::templates::share(&mut tx, &t.id, user_id, now).await?;
    }
    let mut logged = entry("shareTemplate", &t);
    logged.detail = serde_json::json!({ "name": t.name, "user_ids": body.user_ids });
    audit(&mut tx, &caller, logged).await?;
    let t = repo::templates::get(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    tx.commit().await?;
    Ok(Json(t))
}

/// Stop sharing a template with a user.
#[utoipa::path(delete, path = "/templates/{id}/shares/{user_id}", operation_id = "unshareTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn unshare_template(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let t = load(&mut tx, &caller, &id).await?;
    if !manages(&caller, &t) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("unshareTemplate", &t),
            "only the owner or an administrator changes sharing",
        )
        .await);
    }
    if !repo::templates::unshare(&mut tx, &t.id, &user_id).await? {
        return Err(ApiError::not_found("share with this user"));
    }
    let mut logged = entry("unshareTemplate", &t);
    logged.detail = serde_json::json!({ "name": t.name, "user_id": user_id });
    audit(&mut tx, &caller, logged).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take one's own copy of a template one may see; the copy belongs to the caller.
#[utoipa::path(post, path = "/templates/{id}/copy", operation_id = "copyTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path)), request_body(content = CopyTemplate, description = "optional"),
    responses((status = 201, body = Template), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn copy_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Template>)> {
    let body: CopyTemplate = if body.iter().all(u8::is_ascii_whitespace) {
        CopyTemplate::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let mut tx = state.store.begin().await?;
    let original = load(&mut tx, &caller, &id).await?;
    let name = body
        .name
        .unwrap_or_else(|| format!("{} (copy)", original.name));
    let mut c = Checks::new();
    c.text("name", &name, 1, 100);
    c.finish()?;
    let now = now_ms();
    let copy = Template {
        id: new_id(),
        owner_id: caller.user.id.clone(),
        name: name.trim().to_owned(),
        shared_with: Vec::new(),
        copied_from: Some(original.id.clone()),
        created_at: now,
        updated_at: now,
        ..original
    };
    repo::templates::insert(&mut tx, &copy).await?;
    let mut logged = entry("copyTemplate", &copy);
    logged.detail = serde_json::json!({ "name": copy.name, "copied_from": copy.copied_from });
    audit(&mut tx, &caller, logged).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(copy)))
}
