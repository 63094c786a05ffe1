//! SCIM Groups onto the tenant's enterprise groups (members: users).

use super::*;
use crate::api::validate::Checks;
use crate::api::{Audit, audit};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use conclave_store::model::{Group, GroupMember, MemberKind};
use conclave_store::repo::contacts::Books;
use conclave_store::{Conn, new_id, now_ms, repo};

fn to_json(g: &Group) -> Value {
    let members: Vec<Value> = g
        .members
        .iter()
        .filter_map(|m| {
            m.user_id.as_ref().map(|id| {
                json!({ "value": id, "display": m.display_name, "type": "User", "$ref": format!("/scim/v2/Users/{id}") })
            })
        })
        .collect();
    let mut v =
        json!({ "schemas": [GROUP], "id": g.id, "displayName": g.name, "members": members });
    v["meta"] = super::users::meta("Group", &g.id, g.created_at, g.updated_at, &v);
    v
}

async fn read_group(conn: &mut Conn, v: &Value, g: &mut Group) -> ScimResult<()> {
    let name = filter::get_ci(v, "displayName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned();
    let mut c = Checks::new();
    c.text("displayName", &name, 1, 100);
    c.finish().map_err(ScimError::from)?;
    let members = filter::get_ci(v, "members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if members.len() > 1000 {
        return Err(ScimError::invalid("at most 1000 members"));
    }
    // Members that are not users (contacts, numbers added in the console) are kept.
    let mut out: Vec<GroupMember> = g
        .members
        .iter()
        .filter(|m| m.kind != MemberKind::User)
        .cloned()
        .collect();
    for m in &members {
        let id = filter::get_ci(m, "value")
            .and_then(Value::as_str)
            .unwrap_or("");
        let user = repo::users::get(conn, id)
            .await?
            .filter(|u| u.tenant_id == g.tenant_id)
            .ok_or_else(|| {
                ScimError::invalid(format!("member {id:?} is no user of this tenant"))
            })?;
        if out.iter().any(|o| o.user_id.as_deref() == Some(id)) {
            continue;
        }
        out.push(GroupMember {
            kind: MemberKind::User,
            user_id: Some(user.id),
            contact_id: None,
            number: None,
            display_name: user.display_name,
        });
    }
    g.name = name;
    g.members = out;
    Ok(())
}

fn entry<'a>(action: &'static str, g: &'a Group) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &g.tenant_id,
        target_type: "group",
        target_id: Some(&g.id),
        detail: json!({ "name": g.name, "book": "enterprise", "members": g.members.len(), "via": "scim" }),
    }
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ScimResult<Group> {
    repo::groups::get(conn, id)
        .await?
        .filter(|g| g.tenant_id == caller.tenant_id() && g.owner_id.is_none())
        .ok_or_else(|| ScimError::not_found("group"))
}

async fn save(
    state: &AppState,
    caller: &Caller,
    g: &mut Group,
    new: bool,
    action: &'static str,
) -> ScimResult<()> {
    g.updated_at = now_ms();
    let mut tx = state.store.begin().await?;
    if repo::groups::named(&mut tx, &g.tenant_id, None, &g.name)
        .await?
        .is_some_and(|id| id != g.id)
    {
        return Err(ScimError::conflict(format!(
            "a group named {:?} exists",
            g.name
        )));
    }
    if new {
        repo::groups::insert(&mut tx, g).await?;
    } else {
        repo::groups::update(&mut tx, g).await?;
    }
    audit(&mut tx, caller, entry(action, g))
        .await
        .map_err(ScimError::from)?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    Query(q): ScimQuery,
) -> ScimResult<Response> {
    let mut conn = state.store.conn().await?;
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = repo::groups::list(
            &mut conn,
            caller.tenant_id(),
            "",
            Books::Enterprise,
            &after,
            200,
        )
        .await?;
        all.extend(page.items.iter().map(to_json));
        match page.next_cursor {
            Some(n) => after = n,
            None => break,
        }
    }
    list_response(&q, all)
}

pub async fn get(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    UrlPath(id): UrlPath<String>,
    Query(q): ScimQuery,
) -> ScimResult<Response> {
    let mut conn = state.store.conn().await?;
    Ok(resource(
        StatusCode::OK,
        &super::project(to_json(&load(&mut conn, &caller, &id).await?), &q),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    body: Bytes,
) -> ScimResult<Response> {
    let v = body_json(&body)?;
    Ok(resource(
        StatusCode::CREATED,
        &create_group(&state, &caller, &v).await?,
    ))
}

pub async fn replace(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult<Response> {
    let v = body_json(&body)?;
    let g = replace_group(&state, &caller, &id, if_match(&headers), &v).await?;
    Ok(resource(StatusCode::OK, &g))
}

pub async fn patch(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult<Response> {
    let request = body_json(&body)?;
    let g = patch_group(&state, &caller, &id, if_match(&headers), &request).await?;
    Ok(resource(StatusCode::OK, &g))
}

pub async fn delete(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    delete_group(&state, &caller, &id, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// The operations themselves, shared by the single routes and `/Bulk` (`bulk.rs`).

pub(super) async fn create_group(
    state: &AppState,
    caller: &Caller,
    v: &Value,
) -> ScimResult<Value> {
    let now = now_ms();
    let mut g = Group {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        owner_id: None,
        name: String::new(),
        description: String::new(),
        members: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.store.conn().await?;
    read_group(&mut conn, v, &mut g).await?;
    drop(conn);
    save(state, caller, &mut g, true, "scimCreateGroup").await?;
    Ok(to_json(&g))
}

pub(super) async fn replace_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: Option<&str>,
    v: &Value,
) -> ScimResult<Value> {
    let mut conn = state.store.conn().await?;
    let mut g = load(&mut conn, caller, id).await?;
    check_version(wanted, &version(&to_json(&g)))?;
    read_group(&mut conn, v, &mut g).await?;
    drop(conn);
    save(state, caller, &mut g, false, "scimReplaceGroup").await?;
    Ok(to_json(&g))
}

pub(super) async fn patch_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: Option<&str>,
    request: &Value,
) -> ScimResult<Value> {
    let mut conn = state.store.conn().await?;
    let mut g = load(&mut conn, caller, id).await?;
    let mut current = to_json(&g);
    check_version(wanted, &version(&current))?;
    apply_patch(&mut current, request)?;
    read_group(&mut conn, &current, &mut g).await?;
    drop(conn);
    save(state, caller, &mut g, false, "scimPatchGroup").await?;
    Ok(to_json(&g))
}

pub(super) async fn delete_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: Option<&str>,
) -> ScimResult<()> {
    let mut conn = state.store.conn().await?;
    let g = load(&mut conn, caller, id).await?;
    check_version(wanted, &version(&to_json(&g)))?;
    drop(conn);
    let mut tx = state.store.begin().await?;
    repo::groups::delete(&mut tx, &g.id).await?;
    audit(&mut tx, caller, entry("scimDeleteGroup", &g))
        .await
        .map_err(ScimError::from)?;
    tx.commit().await?;
    Ok(())
}
