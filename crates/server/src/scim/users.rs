//! SCIM Users onto the tenant's users.

use super::*;
use crate::api::validate::Checks;
use crate::api::{Audit, audit};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use conclave_store::model::{AccountKind, Department, Language, User, UserStatus};
use conclave_store::{Conn, new_id, now_ms, repo};

fn ms_to_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

pub(super) fn meta(kind: &str, id: &str, created: i64, updated: i64, body: &Value) -> Value {
    json!({
        "resourceType": kind,
        "created": ms_to_rfc3339(created),
        "lastModified": ms_to_rfc3339(updated),
        "location": format!("/scim/v2/{kind}s/{id}"),
        "version": version(body),
    })
}

/// A department's path (`Sales/North`).
pub(super) async fn department_path(conn: &mut Conn, id: Option<&str>) -> ScimResult<String> {
    let mut names = Vec::new();
    let mut at = id.map(str::to_owned);
    for _ in 0..64 {
        let Some(id) = at else { break };
        match repo::departments::get(conn, &id).await? {
            Some(d) => {
                names.push(d.name);
                at = d.parent_id;
            }
            None => break,
        }
    }
    names.reverse();
    Ok(names.join("/"))
}

/// The department of a path, created (with its parents) as needed.
async fn department_of(conn: &mut Conn, tenant_id: &str, path: &str) -> ScimResult<Option<String>> {
    let path = path.trim();
    if path.is_empty() {
        return Ok(None);
    }
    let mut parent: Option<String> = None;
    for part in path.split('/').map(str::trim).take(16) {
        let mut c = Checks::new();
        c.text("department", part, 1, 100);
        c.finish().map_err(ScimError::from)?;
        parent = Some(
            match repo::departments::sibling_named(conn, tenant_id, parent.as_deref(), part).await?
            {
                Some(d) => d.id,
                None => {
                    let now = now_ms();
                    let d = Department {
                        id: new_id(),
                        tenant_id: tenant_id.to_owned(),
                        parent_id: parent.clone(),
                        name: part.to_owned(),
                        sort_order: 0,
                        created_at: now,
                        updated_at: now,
                    };
                    repo::departments::insert(conn, &d).await?;
                    d.id
                }
            },
        );
    }
    Ok(parent)
}

pub(super) async fn to_json(conn: &mut Conn, u: &User) -> ScimResult<Value> {
    let mut phones = Vec::new();
    if let Some(m) = &u.mobile {
        phones.push(json!({ "value": m, "type": "mobile" }));
    }
    if let Some(l) = &u.landline {
        phones.push(json!({ "value": l, "type": "work" }));
    }
    let mut v = json!({
        "schemas": [USER, ENTERPRISE, CONCLAVE],
        "id": u.id,
        "userName": u.username,
        "name": { "formatted": u.display_name },
        "displayName": u.display_name,
        "title": u.title,
        "active": u.status == UserStatus::Active,
        "emails": u.email.as_ref().map(|e| vec![json!({ "value": e, "type": "work", "primary": true })]).unwrap_or_default(),
        "phoneNumbers": phones,
        ENTERPRISE: { "department": department_path(conn, u.department_id.as_deref()).await? },
        CONCLAVE: { "extension": u.extension },
    });
    if let Some(lang) = u.language {
        v["preferredLanguage"] = json!(lang.as_str());
    }
    if let Some(external) = repo::scim_external_ids::get(conn, &u.id).await? {
        v["externalId"] = json!(external);
    }
    v["meta"] = meta("User", &u.id, u.created_at, u.updated_at, &v);
    Ok(v)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    filter::get_ci(v, key).and_then(Value::as_str)
}

/// Reads a user's fields from a SCIM representation (POST, PUT, or a PATCHed form) onto
/// `u`; the password, if any, is returned to be hashed.
async fn read_user(conn: &mut Conn, v: &Value, u: &mut User) -> ScimResult<Option<String>> {
    let mut c = Checks::new();
    let user_name = text(v, "userName").unwrap_or("").trim().to_lowercase();
    c.username("userName", &user_name);
    let name = filter::get_ci(v, "name");
    let formatted = name.and_then(|n| text(n, "formatted")).map(str::to_owned);
    let given = name.and_then(|n| text(n, "givenName")).unwrap_or("");
    let family = name.and_then(|n| text(n, "familyName")).unwrap_or("");
    let display = text(v, "displayName")
        .map(str::to_owned)
        .filter(|s| !s.trim().is_empty())
        .or(formatted.filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| format!("{given} {family}").trim().to_owned());
    let display = if display.is_empty() {
        user_name.clone()
    } else {
        display
    };
    c.text("displayName", &display, 1, 100);
    let title = text(v, "title").unwrap_or("").to_owned();
    c.text("title", &title, 0, 100);
    let active = match filter::get_ci(v, "active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        Some(_) => {
            c.fail("active", "must be true or false");
            true
        }
    };
    let list = |key: &str| {
        filter::get_ci(v, key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let emails = list("emails");
    let email = emails
        .iter()
        .find(|e| e["primary"] == true)
        .or_else(|| emails.first())
        .and_then(|e| text(e, "value"))
        .map(|e| e.to_lowercase());
    if let Some(e) = &email {
        c.email("emails", e);
    }
    let phones = list("phoneNumbers");
    let phone = |kinds: &[&str]| {
        phones
            .iter()
            .find(|p| {
                text(p, "type").is_some_and(|t| kinds.iter().any(|k| t.eq_ignore_ascii_case(k)))
            })
            .and_then(|p| text(p, "value"))
            .map(|s| {
                s.chars()
                    .filter(|c| !" -()".contains(*c))
                    .collect::<String>()
            })
    };
    let mobile = phone(&["mobile"]);
    let landline = phone(&["work", "other", "home"]);
    if let Some(m) = &mobile {
        c.phone("phoneNumbers", m);
    }
    if let Some(l) = &landline {
        c.phone("phoneNumbers", l);
    }
    let ext = filter::get_ci(v, CONCLAVE)
        .and_then(|x| text(x, "extension"))
        .map(str::to_owned);
    if let Some(e) = &ext {
        c.digits("extension", e, 2, 15);
    }
    let department = filter::get_ci(v, ENTERPRISE)
        .and_then(|x| text(x, "department"))
        .unwrap_or("")
        .to_owned();
    // RFC 7643's `preferredLanguage` (`zh-CN`, `en-US`, …) is the language the user is
    // mailed in; one Conclave does not write (or none) leaves the room's.
    let language = text(v, "preferredLanguage").and_then(|l| {
        let l = l.trim().to_ascii_lowercase();
        if l.starts_with("zh") {
            Some(Language::Chinese)
        } else if l.starts_with("en") {
            Some(Language::English)
        } else {
            None
        }
    });
    let password = text(v, "password").map(str::to_owned);
    if let Some(p) = &password {
        c.password("password", p, &[&user_name]);
    }
    c.finish().map_err(ScimError::from)?;
    if ext != u.extension {
        u.sip_ha1_md5 = None;
        u.sip_ha1_sha256 = None;
        u.sip_password_set = false;
    }
    u.username = user_name;
    u.display_name = display;
    u.title = title;
    u.status = if active {
        UserStatus::Active
    } else {
        UserStatus::Frozen
    };
    u.email = email;
    u.mobile = mobile;
    u.landline = landline;
    u.extension = ext;
    u.language = language;
    u.department_id = department_of(conn, &u.tenant_id, &department).await?;
    Ok(password)
}

async fn check_unique(conn: &mut Conn, u: &User) -> ScimResult<()> {
    if repo::users::get_by_username(conn, &u.username)
        .await?
        .is_some_and(|o| o.id != u.id)
    {
        return Err(ScimError::conflict(format!(
            "userName {} is taken",
            u.username
        )));
    }
    if let Some(ext) = &u.extension
        && repo::users::get_by_extension(conn, &u.tenant_id, ext)
            .await?
            .is_some_and(|o| o.id != u.id)
    {
        return Err(ScimError::conflict(format!("extension {ext} is taken")));
    }
    Ok(())
}

fn entry<'a>(action: &'static str, u: &'a User) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &u.tenant_id,
        target_type: "user",
        target_id: Some(&u.id),
        detail: json!({ "username": u.username, "via": "scim", "active": u.status == UserStatus::Active }),
    }
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ScimResult<User> {
    repo::users::get(conn, id)
        .await?
        .filter(|u| u.tenant_id == caller.tenant_id())
        .ok_or_else(|| ScimError::not_found("user"))
}

/// Writes `u` (new or changed) with its audit event; freezing ends the user's sessions.
/// The `externalId` a request (or a patched resource) gives: kept as sent, at most 256
/// characters; absent or empty clears it.
fn external_id(v: &Value) -> ScimResult<Option<String>> {
    match filter::get_ci(v, "externalId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= 256 => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid(
            "externalId must be a string of at most 256 characters",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn save(
    state: &AppState,
    caller: &Caller,
    u: &mut User,
    password: Option<String>,
    external: Option<String>,
    new: bool,
    action: &'static str,
) -> ScimResult<()> {
    if u.id == caller.user.id && u.status == UserStatus::Frozen {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "the key's own account cannot be deactivated",
        ));
    }
    if u.kind == AccountKind::SystemAdmin && !caller.is_system_admin() {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "a system administrator's account is not changed through SCIM",
        ));
    }
    if let Some(p) = password {
        u.password_hash = crate::credentials::hash_password_blocking(p)
            .await
            .map_err(|e| ScimError::from(crate::api::problem::ApiError::from(e)))?;
    }
    u.updated_at = now_ms();
    let mut tx = state.store.begin().await?;
    check_unique(&mut tx, u).await?;
    if new {
        repo::users::insert(&mut tx, u).await?;
    } else {
        repo::users::update(&mut tx, u).await?;
    }
    repo::scim_external_ids::set(&mut tx, &u.tenant_id, &u.id, external.as_deref()).await?;
    if u.status == UserStatus::Frozen {
        repo::sessions::revoke_all_of_user(&mut tx, &u.id, u.updated_at).await?;
    }
    audit(&mut tx, caller, entry(action, u))
        .await
        .map_err(ScimError::from)?;
    tx.commit().await?;
    if u.status == UserStatus::Frozen {
        state.note_credentials_revoked();
        if let Some(extension) = &u.extension {
            state.sip.unregister(&u.tenant_id, extension).await;
        }
    }
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
        let page = repo::users::list(&mut conn, caller.tenant_id(), &after, 1000).await?;
        for u in &page.items {
            all.push(to_json(&mut conn, u).await?);
        }
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
    let u = load(&mut conn, &caller, &id).await?;
    Ok(resource(
        StatusCode::OK,
        &super::project(to_json(&mut conn, &u).await?, &q),
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
        &create_user(&state, &caller, &v).await?,
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
    let u = replace_user(&state, &caller, &id, if_match(&headers), &v).await?;
    Ok(resource(StatusCode::OK, &u))
}

pub async fn patch(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult<Response> {
    let request = body_json(&body)?;
    let u = patch_user(&state, &caller, &id, if_match(&headers), &request).await?;
    Ok(resource(StatusCode::OK, &u))
}

pub async fn delete(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    delete_user(&state, &caller, &id, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// The operations themselves, shared by the single routes and `/Bulk` (`bulk.rs`). Each
// answers the resource as it is afterwards; `wanted` is the `If-Match` (or a bulk
// operation's `version`).

pub(super) async fn create_user(state: &AppState, caller: &Caller, v: &Value) -> ScimResult<Value> {
    let now = now_ms();
    let mut u = User {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        username: String::new(),
        display_name: String::new(),
        password_hash: String::new(),
        email: None,
        mobile: None,
        landline: None,
        extension: None,
        department_id: None,
        title: String::new(),
        sip_ha1_md5: None,
        sip_ha1_sha256: None,
        sip_password_set: false,
        language: None,
        kind: AccountKind::User,
        status: UserStatus::Active,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.store.conn().await?;
    let password = read_user(&mut conn, v, &mut u).await?;
    drop(conn);
    let external = external_id(v)?;
    save(
        state,
        caller,
        &mut u,
        password,
        external,
        true,
        "scimCreateUser",
    )
    .await?;
    let mut conn = state.store.conn().await?;
    to_json(&mut conn, &u).await
}

pub(super) async fn replace_user(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: Option<&str>,
    v: &Value,
) -> ScimResult<Value> {
    let mut conn = state.store.conn().await?;
    let mut u = load(&mut conn, caller, id).await?;
    check_version(wanted, &version(&to_json(&mut conn, &u).await?))?;
    let password = read_user(&mut conn, v, &mut u).await?;
    drop(conn);
    let external = external_id(v)?;
    save(
        state,
        caller,
        &mut u,
        password,
        external,
        false,
        "scimReplaceUser",
    )
    .await?;
    let mut conn = state.store.conn().await?;
    to_json(&mut conn, &u).await
}

pub(super) async fn patch_user(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: Option<&str>,
    request: &Value,
) -> ScimResult<Value> {
    let mut conn = state.store.conn().await?;
    let mut u = load(&mut conn, caller, id).await?;
    let mut current = to_json(&mut conn, &u).await?;
    check_version(wanted, &version(&current))?;
    apply_patch(&mut current, request)?;
    let password = read_user(&mut conn, &current, &mut u).await?;
    drop(conn);
    let external = external_id(&current)?;
    save(
        state,
        caller,
        &mut u,
        password,
        external,
        false,
        "scimPatchUser",
    )
    .await?;
    let mut conn = state.store.conn().await?;
    to_json(&mut conn, &u).await
}

pub(super) async fn delete_user(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: Option<&str>,
) -> ScimResult<()> {
    let mut conn = state.store.conn().await?;
    let u = load(&mut conn, caller, id).await?;
    check_version(wanted, &version(&to_json(&mut conn, &u).await?))?;
    drop(conn);
    if u.id == caller.user.id || (u.kind == AccountKind::SystemAdmin && !caller.is_system_admin()) {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "this account is not deleted through SCIM",
        ));
    }
    let mut tx = state.store.begin().await?;
    repo::users::delete(&mut tx, &u.id).await?;
    audit(&mut tx, caller, entry("scimDeleteUser", &u))
        .await
        .map_err(ScimError::from)?;
    tx.commit().await?;
    state.note_credentials_revoked();
    if let Some(extension) = &u.extension {
        state.sip.unregister(&u.tenant_id, extension).await;
    }
    Ok(())
}
