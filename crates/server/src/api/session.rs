//! Log in for a bearer token; log out to revoke it.

use super::extract::{ApiJson, Caller, ClientAddr, Credential};
use super::problem::{ApiError, ApiResult, Problem};
use super::{AppState, Audit, audit, write_audit};
use crate::credentials;
use crate::limiter::Target;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use conclave_store::model::{Outcome, Session, User, UserStatus};
use conclave_store::{new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(get_current_user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Epoch milliseconds.
    pub expires_at: i64,
    pub user: User,
}

/// Log in with a username and password for a session token.
#[utoipa::path(post, path = "/auth/login", operation_id = "login", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "wrong username or password, or the account is frozen (not told apart)", body = Problem),
        (status = 429, description = "too many failed attempts for this account or from this address", body = Problem),
        (status = 503, description = "too many password checks in progress; retry after Retry-After", body = Problem),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let username = body.username.trim().to_lowercase();
    // The attempt takes its slot before the password is checked: parallel guesses cannot all
    // pass a check that none of them has failed yet.
    let permit = state
        .login_limiter
        .attempt(Target::Account(username.clone()), source.ip())
        .map_err(|blocked| {
            let wait = blocked.retry_after_secs();
            ApiError::too_many(
                format!("too many failed logins; try again in {wait} s"),
                wait,
            )
        })?;
    let mut conn = match state.store.conn().await {
        Ok(conn) => conn,
        Err(err) => {
            permit.not_checked();
            return Err(err.into());
        }
    };
    let user = match repo::users::get_by_username(&mut conn, &username).await {
        Ok(user) => user,
        Err(err) => {
            permit.not_checked();
            return Err(err.into());
        }
    };
    // Verify against a real hash even for unknown users, so timing does not reveal them.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(dummy_hash);
    let ok = match credentials::verify_password_blocking(body.password, hash).await {
        Ok(ok) => ok && user.is_some(),
        Err(busy) => {
            permit.not_checked();
            return Err(busy.into());
        }
    };
    // A frozen account is refused exactly like a wrong password — same answer, and counted
    // as a failure by the limiter — so a guesser cannot tell that a password was right.
    let frozen = user
        .as_ref()
        .is_some_and(|u| u.status == UserStatus::Frozen);
    let Some(user) = user.filter(|_| ok && !frozen) else {
        permit.failed();
        let mut detail = serde_json::json!({ "username": username });
        if ok && frozen {
            detail["reason"] = "frozen".into();
        }
        let audit = Audit {
            action: "login",
            tenant_id: "",
            target_type: "session",
            target_id: None,
            detail,
        };
        write_audit(&mut conn, None, &username, source, audit, Outcome::Failed).await?;
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    permit.succeeded();
    let token = credentials::new_session_token();
    let now = now_ms();
    let session = Session {
        id: new_id(),
        user_id: user.id.clone(),
        token_hash: credentials::token_hash(&token),
        source: source.ip().to_string(),
        created_at: now,
        expires_at: now + i64::from(state.settings.session_ttl_minutes) * 60_000,
        revoked_at: None,
    };
    drop(conn);
    let mut tx = state.store.begin().await?;
    repo::sessions::insert(&mut tx, &session).await?;
    let caller = Caller {
        user: user.clone(),
        credential: Credential::Session {
            id: session.id.clone(),
        },
        source,
    };
    let audit_entry = Audit {
        action: "login",
        tenant_id: &user.tenant_id,
        target_type: "session",
        target_id: Some(&session.id),
        detail: serde_json::json!({}),
    };
    audit(&mut tx, &caller, audit_entry).await?;
    if now % 64 == 0 {
        repo::sessions::purge_dead(&mut tx, now).await?;
    }
    tx.commit().await?;
    Ok(Json(LoginResponse {
        token,
        expires_at: session.expires_at,
        user,
    }))
}

fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| credentials::hash_password("not a real password").unwrap_or_default())
        .clone()
}

/// Revoke the session token this request carries.
#[utoipa::path(post, path = "/auth/logout", operation_id = "logout", tag = "session",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let Credential::Session { id } = &caller.credential else {
        return Err(ApiError::bad_request(
            "API keys are revoked with revokeApiKey, not logout",
        ));
    };
    let mut tx = state.store.begin().await?;
    repo::sessions::revoke(&mut tx, id, now_ms()).await?;
    let entry = Audit {
        action: "logout",
        tenant_id: caller.tenant_id(),
        target_type: "session",
        target_id: Some(id),
        detail: serde_json::json!({}),
    };
    audit(&mut tx, &caller, entry).await?;
    tx.commit().await?;
    state.note_credentials_revoked();
    Ok(StatusCode::NO_CONTENT)
}

/// The account behind the token.
#[utoipa::path(get, path = "/me", operation_id = "getCurrentUser", tag = "session",
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
async fn get_current_user(caller: Caller) -> Json<User> {
    Json(caller.user)
}
