//! Users: accounts, their SIP extension, freezing.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, audit, deny, nullable};
use crate::credentials;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::{AccountKind, Language, User, UserStatus};
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(freeze_user))
        .routes(routes!(unfreeze_user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name, stored lower-case; unique on the whole installation.
    #[schema(pattern = "^[a-z0-9._@-]{2,64}$")]
    pub username: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    #[schema(format = "email")]
    pub email: Option<String>,
    #[schema(pattern = "^\\+?[0-9]{3,20}$")]
    pub mobile: Option<String>,
    #[schema(pattern = "^\\+?[0-9]{3,20}$")]
    pub landline: Option<String>,
    /// SIP extension (short number), unique in the tenant.
    #[schema(pattern = "^[0-9]{2,15}$")]
    pub extension: Option<String>,
    /// The password the SIP phone registers with; needs `extension`.
    #[schema(min_length = 8, max_length = 256)]
    pub sip_password: Option<String>,
    /// The department of the organisation tree.
    pub department_id: Option<String>,
    /// Job title.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub title: String,
    /// The language mailed to the user (`en`, `zh`); absent: the room's.
    pub language: Option<Language>,
    /// Default `user`. Tenant administrators may create users and tenant administrators.
    pub kind: Option<AccountKind>,
    /// System administrators only: create the user in another tenant.
    pub tenant_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub password: Option<String>,
    /// Required when users change their own password.
    pub current_password: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub landline: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub extension: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub sip_password: Option<Option<String>>,
    pub kind: Option<AccountKind>,
    /// The department (administrators); null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub department_id: Option<Option<String>>,
    /// Job title (administrators).
    pub title: Option<String>,
    /// The language mailed to the user (`en`, `zh`); null: the room's. Users set their own.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Language>)]
    pub language: Option<Option<Language>>,
}

fn check_contact(
    c: &mut Checks,
    email: Option<&str>,
    mobile: Option<&str>,
    landline: Option<&str>,
) {
    if let Some(v) = email {
        c.email("email", v);
    }
    if let Some(v) = mobile {
        c.phone("mobile", v);
    }
    if let Some(v) = landline {
        c.phone("landline", v);
    }
}

/// Which kinds of account the caller may create or give.
fn may_grant(caller: &Caller, kind: AccountKind) -> bool {
    match caller.kind() {
        AccountKind::SystemAdmin => true,
        AccountKind::TenantAdmin => kind != AccountKind::SystemAdmin,
        AccountKind::User => false,
    }
}

/// May the caller administer this account (change it, freeze it, delete it)?
fn administers(caller: &Caller, user: &User) -> bool {
    caller.administers(&user.tenant_id)
        && (caller.is_system_admin() || user.kind != AccountKind::SystemAdmin)
}

/// Both unique fields at once, so the client learns of every clash; the database's unique
/// indexes still guard against a concurrent write.
async fn check_unique(conn: &mut Conn, user: &User) -> ApiResult<()> {
    let mut taken = Vec::new();
    if repo::users::get_by_username(conn, &user.username)
        .await?
        .is_some_and(|u| u.id != user.id)
    {
        taken.push("username");
    }
    if let Some(ext) = &user.extension
        && repo::users::get_by_extension(conn, &user.tenant_id, ext)
            .await?
            .is_some_and(|u| u.id != user.id)
    {
        taken.push("extension");
    }
    if taken.is_empty() {
        Ok(())
    } else {
        Err(ApiError::taken(&taken))
    }
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<User> {
    repo::users::get(conn, id)
        .await?
        .filter(|u| caller.sees_tenant(&u.tenant_id))
        .ok_or_else(|| ApiError::not_found("user"))
}

fn entry<'a>(action: &'static str, user: &'a User) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &user.tenant_id,
        target_type: "user",
        target_id: Some(&user.id),
        detail: serde_json::json!({ "username": user.username }),
    }
}

/// Create a user (administrators).
#[utoipa::path(post, path = "/users", operation_id = "createUser", tag = "users",
    security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = User), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let kind = body.kind.unwrap_or(AccountKind::User);
    let tenant_id = body
        .tenant_id
        .clone()
        .unwrap_or_else(|| caller.tenant_id().to_owned());
    let mut conn = state.store.conn().await?;
    if !caller.sees_tenant(&tenant_id) || repo::tenants::get(&mut conn, &tenant_id).await?.is_none()
    {
        return Err(ApiError::not_found("tenant"));
    }
    drop(conn);
    if !caller.administers(&tenant_id) || !may_grant(&caller, kind) {
        let attempt = Audit {
            action: "createUser",
            tenant_id: &tenant_id,
            target_type: "user",
            target_id: None,
            detail: serde_json::json!({ "username": body.username, "kind": kind }),
        };
        return Err(deny(
            &state,
            &caller,
            attempt,
            "only administrators create users, and only of kinds they may give",
        )
        .await);
    }
    let username = body.username.trim().to_lowercase();
    let mut c = Checks::new();
    c.username("username", &username);
    c.text("display_name", &body.display_name, 1, 100);
    let identity = [
        username.as_str(),
        body.email.as_deref().unwrap_or_default(),
        body.extension.as_deref().unwrap_or_default(),
    ];
    c.password("password", &body.password, &identity);
    check_contact(
        &mut c,
        body.email.as_deref(),
        body.mobile.as_deref(),
        body.landline.as_deref(),
    );
    if let Some(ext) = &body.extension {
        c.digits("extension", ext, 2, 15);
    }
    if let Some(sip) = &body.sip_password {
        c.password("sip_password", sip, &identity);
        if body.extension.is_none() {
            c.fail("extension", "is required to set a SIP password");
        }
    }
    c.text("title", &body.title, 0, 100);
    {
        let mut conn = state.store.conn().await?;
        super::departments::check_reference(
            &mut conn,
            &mut c,
            "department_id",
            &tenant_id,
            body.department_id.as_deref(),
        )
        .await?;
    }
    c.finish()?;
    let (sip_ha1_md5, sip_ha1_sha256) = match (&body.extension, &body.sip_password) {
        (Some(ext), Some(sip)) => stored_sip_digests(&state, &tenant_id, ext, sip).await?,
        _ => (None, None),
    };
    let now = now_ms();
    let user = User {
        id: new_id(),
        tenant_id,
        username,
        display_name: body.display_name.trim().to_owned(),
        password_hash: credentials::hash_password_blocking(body.password).await?,
        email: body.email,
        mobile: body.mobile,
        landline: body.landline,
        extension: body.extension,
        department_id: body.department_id,
        title: body.title.trim().to_owned(),
        sip_password_set: sip_ha1_sha256.is_some(),
        language: body.language,
        sip_ha1_md5,
        sip_ha1_sha256,
        kind,
        status: UserStatus::Active,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    check_unique(&mut tx, &user).await?;
    repo::users::insert(&mut tx, &user).await?;
    audit(&mut tx, &caller, entry("createUser", &user)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// The users of a tenant (the enterprise address book).
#[utoipa::path(get, path = "/users", operation_id = "listUsers", tag = "users",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<User>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<User>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    let tenant_id = params.tenant(&mut conn, &caller).await?;
    Ok(Json(
        repo::users::list(&mut conn, &tenant_id, params.cursor(), limit)
            .await?
            .into(),
    ))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", operation_id = "getUser", tag = "users",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(load(&mut conn, &caller, &id).await?))
}

/// Change a user. Users may change their own name, contact numbers, password and SIP
/// password; administrators may also change the login name, extension and kind.
#[utoipa::path(patch, path = "/users/{id}", operation_id = "updateUser", tag = "users",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    let mut conn = state.store.conn().await?;
    let mut user = load(&mut conn, &caller, &id).await?;
    drop(conn);
    let is_self = user.id == caller.user.id;
    let as_admin = administers(&caller, &user);
    let admin_fields = body.username.is_some()
        || body.extension.is_some()
        || body.kind.is_some()
        || body.department_id.is_some()
        || body.title.is_some();
    let kind_ok = body.kind.is_none_or(|k| may_grant(&caller, k) && !is_self);
    let allowed = (as_admin || (is_self && !admin_fields)) && kind_ok;
    if !allowed {
        let reason = if is_self && body.kind.is_some() {
            "nobody may change their own account kind"
        } else {
            "only administrators change other accounts, login names, extensions, kinds, \
             departments and titles"
        };
        return Err(deny(&state, &caller, entry("updateUser", &user), reason).await);
    }
    let mut c = Checks::new();
    let username = body.username.as_deref().map(|u| u.trim().to_lowercase());
    if let Some(u) = &username {
        c.username("username", u);
    }
    if let Some(n) = &body.display_name {
        c.text("display_name", n, 1, 100);
    }
    let identity_email = match &body.email {
        Some(email) => email.clone(),
        None => user.email.clone(),
    };
    let identity_extension = match &body.extension {
        Some(extension) => extension.clone(),
        None => user.extension.clone(),
    };
    let identity = [
        username.as_deref().unwrap_or(&user.username),
        identity_email.as_deref().unwrap_or_default(),
        identity_extension.as_deref().unwrap_or_default(),
    ];
    if let Some(p) = &body.password {
        c.password("password", p, &identity);
    }
    check_contact(
        &mut c,
        body.email.clone().flatten().as_deref(),
        body.mobile.clone().flatten().as_deref(),
        body.landline.clone().flatten().as_deref(),
    );
    let extension = body.extension.clone().unwrap_or(user.extension.clone());
    if let Some(Some(ext)) = &body.extension {
        c.digits("extension", ext, 2, 15);
    }
    if let Some(Some(sip)) = &body.sip_password {
        c.password("sip_password", sip, &identity);
        if extension.is_none() {
            c.fail("extension", "is required to set a SIP password");
        }
    }
    // HA1 digests hash the extension: a new extension needs the SIP password again.
    let extension_changed = body.extension.is_some() && extension != user.extension;
    if extension_changed
        && user.sip_password_set
        && extension.is_some()
        && body.sip_password.is_none()
    {
        c.fail(
            "sip_password",
            "is required when the extension changes (the stored digest hashes the extension)",
        );
    }
    if let Some(title) = &body.title {
        c.text("title", title, 0, 100);
    }
    if let Some(Some(department)) = &body.department_id {
        let mut conn = state.store.conn().await?;
        super::departments::check_reference(
            &mut conn,
            &mut c,
            "department_id",
            &user.tenant_id,
            Some(department),
        )
        .await?;
    }
    c.finish()?;
    if let (Some(new), true) = (&body.password, is_self) {
        let current = body.current_password.clone().unwrap_or_default();
        if !credentials::verify_password_blocking(current, user.password_hash.clone()).await? {
            return Err(ApiError::field("current_password", "is missing or wrong"));
        }
        user.password_hash = credentials::hash_password_blocking(new.clone()).await?;
    } else if let Some(new) = &body.password {
        user.password_hash = credentials::hash_password_blocking(new.clone()).await?;
    }
    if let Some(u) = username {
        user.username = u;
    }
    if let Some(n) = body.display_name {
        user.display_name = n.trim().to_owned();
    }
    if let Some(v) = body.email {
        user.email = v;
    }
    if let Some(v) = body.mobile {
        user.mobile = v;
    }
    if let Some(v) = body.landline {
        user.landline = v;
    }
    if let Some(kind) = body.kind {
        user.kind = kind;
    }
    if let Some(v) = body.department_id {
        user.department_id = v;
    }
    if let Some(v) = body.title {
        user.title = v.trim().to_owned();
    }
    if let Some(v) = body.language {
        user.language = v;
    }
    user.extension = extension;
    match (&user.extension, body.sip_password) {
        (Some(ext), Some(Some(sip))) => {
            let (md5, sha) = stored_sip_digests(&state, &user.tenant_id, ext, &sip).await?;
            user.sip_ha1_md5 = md5;
            user.sip_ha1_sha256 = sha;
        }
        (None, _) | (_, Some(None)) => {
            user.sip_ha1_md5 = None;
            user.sip_ha1_sha256 = None;
        }
        _ => {}
    }
    user.sip_password_set = user.sip_ha1_md5.is_some() || user.sip_ha1_sha256.is_some();
    user.updated_at = now_ms();
    let mut tx = state.store.begin().await?;
    check_unique(&mut tx, &user).await?;
    repo::users::update(&mut tx, &user).await?;
    if body.password.is_some() && !is_self {
        // A password reset by an administrator logs the user out everywhere.
        repo::sessions::revoke_all_of_user(&mut tx, &user.id, user.updated_at).await?;
    }
    audit(&mut tx, &caller, entry("updateUser", &user)).await?;
    tx.commit().await?;
    if body.password.is_some() && !is_self {
        state.note_credentials_revoked();
    }
    Ok(Json(user))
}

/// Delete a user (administrators; not oneself).
#[utoipa::path(delete, path = "/users/{id}", operation_id = "deleteUser", tag = "users",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut conn = state.store.conn().await?;
    let user = load(&mut conn, &caller, &id).await?;
    drop(conn);
    if !administers(&caller, &user) || user.id == caller.user.id {
        return Err(deny(
            &state,
            &caller,
            entry("deleteUser", &user),
            "only administrators delete accounts, and not their own",
        )
        .await);
    }
    let mut tx = state.store.begin().await?;
    repo::users::delete(&mut tx, &user.id).await?;
    audit(&mut tx, &caller, entry("deleteUser", &user)).await?;
    tx.commit().await?;
    state.note_credentials_revoked();
    if let Some(extension) = &user.extension {
        state.sip.unregister(&user.tenant_id, extension).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn set_status(
    state: AppState,
    caller: Caller,
    id: String,
    status: UserStatus,
    action: &'static str,
) -> ApiResult<Json<User>> {
    let mut conn = state.store.conn().await?;
    let mut user = load(&mut conn, &caller, &id).await?;
    drop(conn);
    if !administers(&caller, &user) || user.id == caller.user.id {
        return Err(deny(
            &state,
            &caller,
            entry(action, &user),
            "only administrators freeze accounts, and not their own",
        )
        .await);
    }
    user.status = status;
    user.updated_at = now_ms();
    let mut tx = state.store.begin().await?;
    repo::users::update(&mut tx, &user).await?;
    if status == UserStatus::Frozen {
        repo::sessions::revoke_all_of_user(&mut tx, &user.id, user.updated_at).await?;
    }
    audit(&mut tx, &caller, entry(action, &user)).await?;
    tx.commit().await?;
    if status == UserStatus::Frozen {
        state.note_credentials_revoked();
        if let Some(extension) = &user.extension {
            state.sip.unregister(&user.tenant_id, extension).await;
        }
    }
    Ok(Json(user))
}

/// Freeze a user: no login, no API key, no SIP registration; open sessions end.
#[utoipa::path(post, path = "/users/{id}/freeze", operation_id = "freezeUser", tag = "users",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn freeze_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    set_status(state, caller, id, UserStatus::Frozen, "freezeUser").await
}

/// Make a frozen user active again.
#[utoipa::path(post, path = "/users/{id}/unfreeze", operation_id = "unfreezeUser", tag = "users",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn unfreeze_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    set_status(state, caller, id, UserStatus::Active, "unfreezeUser").await
}

/// The digests (HA1) kept for a SIP password, sealed at rest like the other secrets the server
/// reads back (an HA1 registers as the user, like the password itself); no MD5 one for a
/// tenant that uses SHA-256 digest only.
async fn stored_sip_digests(
    state: &AppState,
    tenant_id: &str,
    extension: &str,
    password: &str,
) -> ApiResult<(Option<String>, Option<String>)> {
    let sha256_only = {
        let mut conn = state.store.conn().await?;
        repo::tenants::get(&mut conn, tenant_id)
            .await?
            .is_some_and(|t| t.sip_sha256_only)
    };
    let (md5, sha) = credentials::sip_ha1(extension, &state.settings.sip_realm, password);
    let md5 = (!sha256_only).then(|| state.sealer.seal(&md5));
    Ok((md5, Some(state.sealer.seal(&sha))))
}
