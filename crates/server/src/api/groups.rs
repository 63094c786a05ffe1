//! Groups of people: the enterprise's, kept by administrators and seen by the whole tenant,
//! and each user's own, seen only by that user. A group goes into a meeting template in one
//! step (`addGroupToTemplate`): its members become the template's, with one role, once each.

use super::contacts::Book;
use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, audit, deny};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_conference::Role;
use conclave_store::model::{Group, GroupMember, MemberKind, Template, TemplateMember};
use conclave_store::repo::contacts::Books;
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(add_group_to_template))
}

const MAX_MEMBERS: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// `personal` (default: the caller's own) or `enterprise` (administrators).
    #[serde(default)]
    pub book: Book,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<GroupMember>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces the whole member list.
    pub members: Option<Vec<GroupMember>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupParams {
    /// `enterprise`, `personal`, or both when absent.
    pub book: Option<Book>,
    /// How many items at most (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddGroup {
    /// A group the caller sees.
    pub group_id: String,
    /// The role its members get in the template (default `member`).
    #[serde(default = "member")]
    pub role: Role,
}

fn member() -> Role {
    Role::Member
}

/// Enterprise groups are seen by the tenant; personal ones by their owner only.
fn sees(caller: &Caller, g: &Group) -> bool {
    match &g.owner_id {
        None => caller.sees_tenant(&g.tenant_id),
        Some(owner) => *owner == caller.user.id,
    }
}

fn writes(caller: &Caller, g: &Group) -> bool {
    match &g.owner_id {
        None => caller.administers(&g.tenant_id),
        Some(owner) => *owner == caller.user.id,
    }
}

const REFUSAL: &str = "only administrators change enterprise groups";

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Group> {
    repo::groups::get(conn, id)
        .await?
        .filter(|g| sees(caller, g))
        .ok_or_else(|| ApiError::not_found("group"))
}

fn entry<'a>(action: &'static str, g: &'a Group) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &g.tenant_id,
        target_type: "group",
        target_id: Some(&g.id),
        detail: serde_json::json!({
            "name": g.name,
            "book": if g.owner_id.is_some() { "personal" } else { "enterprise" },
            "members": g.members.len(),
        }),
    }
}

/// Checks the fields and resolves members' names. Users must be of the tenant; contacts of
/// the enterprise book or, for a personal group, of its owner's book.
async fn check(conn: &mut Conn, g: &mut Group) -> ApiResult<()> {
    let mut c = Checks::new();
    c.text("name", &g.name, 1, 100);
    c.text("description", &g.description, 0, 2000);
    if g.members.len() > MAX_MEMBERS {
        c.fail("members", format!("at most {MAX_MEMBERS} members"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in g.members.iter_mut().enumerate() {
        let at = |f: &str| format!("members[{i}].{f}");
        c.text(&at("display_name"), &m.display_name, 0, 100);
        let (needed, value) = match m.kind {
            MemberKind::User => ("user_id", &m.user_id),
            MemberKind::Contact => ("contact_id", &m.contact_id),
            MemberKind::Number => ("number", &m.number),
        };
        let Some(value) = value.clone() else {
            c.fail(
                at(needed),
                format!("is required for a {} member", m.kind.as_str()),
            );
            continue;
        };
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
        if !seen.insert((m.kind, value.clone())) {
            c.fail(at(needed), "is already a member of the group");
            continue;
        }
        let name = match m.kind {
            MemberKind::User => {
                match repo::users::get(conn, &value)
                    .await?
                    .filter(|u| u.tenant_id == g.tenant_id)
                {
                    Some(user) => Some(user.display_name),
                    None => {
                        c.fail(at("user_id"), "no such user in this tenant");
                        None
                    }
                }
            }
            MemberKind::Contact => {
                let contact = repo::contacts::get(conn, &value).await?.filter(|k| {
                    k.tenant_id == g.tenant_id && (k.owner_id.is_none() || k.owner_id == g.owner_id)
                });
                match contact {
                    Some(contact) => Some(contact.name),
                    None => {
                        c.fail(
                            at("contact_id"),
                            "no such contact in the enterprise book (or, for a personal group, \
                             the owner's own)",
                        );
                        None
                    }
                }
            }
            MemberKind::Number => {
                c.phone(&at("number"), &value);
                None
            }
        };
        if let (Some(name), true) = (name, m.display_name.trim().is_empty()) {
            m.display_name = name;
        }
    }
    c.finish()
}

async fn check_unique(conn: &mut Conn, g: &Group) -> ApiResult<()> {
    if repo::groups::named(conn, &g.tenant_id, g.owner_id.as_deref(), &g.name)
        .await?
        .is_some_and(|id| id != g.id)
    {
        return Err(ApiError::conflict(
            "name",
            format!("a group named {:?} already exists in this book", g.name),
        ));
    }
    Ok(())
}

/// Create a group: the caller's own, or (administrators) an enterprise group.
#[utoipa::path(post, path = "/groups", operation_id = "createGroup", tag = "directory",
    security(("bearer" = [])), request_body = CreateGroup,
    responses((status = 201, body = Group), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    let now = now_ms();
    let mut group = Group {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        owner_id: (body.book == Book::Personal).then(|| caller.user.id.clone()),
        name: body.name.trim().to_owned(),
        description: body.description,
        members: body.members,
        created_at: now,
        updated_at: now,
    };
    if !writes(&caller, &group) {
        return Err(deny(&state, &caller, entry("createGroup", &group), REFUSAL).await);
    }
    let mut tx = state.store.begin().await?;
    check(&mut tx, &mut group).await?;
    check_unique(&mut tx, &group).await?;
    repo::groups::insert(&mut tx, &group).await?;
    audit(&mut tx, &caller, entry("createGroup", &group)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// The enterprise groups and the caller's own.
#[utoipa::path(get, path = "/groups", operation_id = "listGroups", tag = "directory",
    security(("bearer" = [])), params(GroupParams),
    responses((status = 200, body = List<Group>), (status = 422, body = Problem)))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<GroupParams>,
) -> ApiResult<Json<List<Group>>> {
    let limit = super::page_limit(p.limit)?;
    let books = match p.book {
        None => Books::Both,
        Some(Book::Enterprise) => Books::Enterprise,
        Some(Book::Personal) => Books::Personal,
    };
    let mut conn = state.store.conn().await?;
    let cursor = p.cursor.as_deref().unwrap_or("");
    Ok(Json(
        repo::groups::list(
            &mut conn,
            caller.tenant_id(),
            &caller.user.id,
            books,
            cursor,
            limit,
        )
        .await?
        .into(),
    ))
}

/// One group.
#[utoipa::path(get, path = "/groups/{id}", operation_id = "getGroup", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Group), (status = 404, body = Problem)))]
async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Group>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(load(&mut conn, &caller, &id).await?))
}

/// Change a group (its owner; administrators for enterprise groups). `members` replaces the
/// member list.
#[utoipa::path(patch, path = "/groups/{id}", operation_id = "updateGroup", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateGroup,
    responses((status = 200, body = Group), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> ApiResult<Json<Group>> {
    let mut tx = state.store.begin().await?;
    let mut group = load(&mut tx, &caller, &id).await?;
    if !writes(&caller, &group) {
        drop(tx);
        return Err(deny(&state, &caller, entry("updateGroup", &group), REFUSAL).await);
    }
    if let Some(v) = body.name {
        group.name = v.trim().to_owned();
    }
    if let Some(v) = body.description {
        group.description = v;
    }
    if let Some(v) = body.members {
        group.members = v;
    }
    check(&mut tx, &mut group).await?;
    check_unique(&mut tx, &group).await?;
    group.updated_at = now_ms();
    repo::groups::update(&mut tx, &group).await?;
    audit(&mut tx, &caller, entry("updateGroup", &group)).await?;
    tx.commit().await?;
    Ok(Json(group))
}

/// Delete a group (its owner; administrators for enterprise groups). Templates it was added
/// to keep the members it gave them.
#[utoipa::path(delete, path = "/groups/{id}", operation_id = "deleteGroup", tag = "directory",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let group = load(&mut tx, &caller, &id).await?;
    if !writes(&caller, &group) {
        drop(tx);
        return Err(deny(&state, &caller, entry("deleteGroup", &group), REFUSAL).await);
    }
    repo::groups::delete(&mut tx, &group.id).await?;
    audit(&mut tx, &caller, entry("deleteGroup", &group)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The template's members and the group's, without duplicates: a user, contact or number
/// already there keeps its place and role.
fn merged(t: &Template, g: &Group, role: Role) -> (Vec<TemplateMember>, usize) {
    let key = |kind: MemberKind, u: &Option<String>, c: &Option<String>, n: &Option<String>| {
        (
            kind,
            u.clone().or(c.clone()).or(n.clone()).unwrap_or_default(),
        )
    };
    let mut members = t.members.clone();
    let mut present: std::collections::HashSet<_> = members
        .iter()
        .map(|m| key(m.kind, &m.user_id, &m.contact_id, &m.number))
        .collect();
    let mut added = 0;
    for m in &g.members {
        if present.insert(key(m.kind, &m.user_id, &m.contact_id, &m.number)) {
            members.push(TemplateMember {
                kind: m.kind,
                user_id: m.user_id.clone(),
                contact_id: m.contact_id.clone(),
                number: m.number.clone(),
                display_name: m.display_name.clone(),
                role,
            });
            added += 1;
        }
    }
    (members, added)
}

/// Add a group's members to a meeting template in one step, with one role (default
/// `member`); people already in the template are left as they are. Answers the template.
#[utoipa::path(post, path = "/templates/{id}/groups", operation_id = "addGroupToTemplate", tag = "templates",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = AddGroup,
    responses((status = 200, body = Template), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn add_group_to_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddGroup>,
) -> ApiResult<Json<Template>> {
    let mut tx = state.store.begin().await?;
    let mut t = super::templates::load(&mut tx, &caller, &id).await?;
    if !super::templates::manages(&caller, &t) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            super::templates::entry("addGroupToTemplate", &t),
            "only the owner or an administrator changes a template; take a copy instead",
        )
        .await);
    }
    let group = repo::groups::get(&mut tx, &body.group_id)
        .await?
        .filter(|g| sees(&caller, g) && g.tenant_id == t.tenant_id)
        .ok_or_else(|| ApiError::field("group_id", "no such group"))?;
    let (mut members, added) = merged(&t, &group, body.role);
    super::templates::check_content(
        &mut tx,
        &t.tenant_id,
        &t.owner_id,
        None,
        None,
        None,
        Some(&mut members),
    )
    .await?;
    t.members = members;
    t.updated_at = now_ms();
    repo::templates::update(&mut tx, &t).await?;
    let mut logged = super::templates::entry("addGroupToTemplate", &t);
    logged.detail = serde_json::json!({
        "name": t.name, "group_id": group.id, "group": group.name, "added": added,
    });
    audit(&mut tx, &caller, logged).await?;
    tx.commit().await?;
    Ok(Json(t))
}
