//! Request extractors: JSON bodies that name the offending field, and the authenticated caller.

use super::AppState;
use super::problem::{ApiError, FieldError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use conclave_store::model::{AccountKind, User, UserStatus};
use conclave_store::{now_ms, repo};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// A JSON body. Syntax errors answer 400; missing, unknown or wrong-typed fields answer 422
/// naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError {
                status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ..ApiError::bad_request(format!(
                    "expected Content-Type: application/json, got {:?}",
                    if content_type.is_empty() {
                        "nothing"
                    } else {
                        &content_type
                    }
                ))
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError {
                status: e.status(),
                ..ApiError::bad_request(format!("cannot read the request body: {e}"))
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                // A missing field is reported at its parent's path; an unknown one at its own.
                let field = if message.starts_with("missing field") {
                    let name = message.split('`').nth(1).unwrap_or("?");
                    if path == "." {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    }
                } else {
                    path
                };
                let reason = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                ApiError::invalid(vec![FieldError { field, reason }])
            }
            _ => ApiError::bad_request(format!("invalid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    refuse_nul(bytes)?;
    Ok(value)
}

/// A NUL (`\u0000`) anywhere in a body is refused, naming where: PostgreSQL cannot store it
/// in TEXT, and no field has a use for it.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    // Cheap test first: a NUL can only arrive escaped in JSON.
    let escaped = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].iter().all(|&b| b == b'0'));
    if !escaped {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match nul_path(&value, String::new()) {
        Some(field) => Err(ApiError::invalid(vec![FieldError {
            field,
            reason: "must not contain NUL (U+0000)".into(),
        }])),
        None => Ok(()),
    }
}

/// The path (as serde_path_to_error writes it: `members[2].name`) of the first string or key
/// holding a NUL.
fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => {
            Some(if at.is_empty() { ".".into() } else { at })
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(join(&key.replace('\0', "\\u0000")))
            } else {
                nul_path(item, join(key))
            }
        }),
        _ => None,
    }
}

/// The client's address, for the audit log and rate limits.
#[derive(Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(ClientAddr(addr))
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    Session {
        id: String,
    },
    ApiKey {
        id: String,
    },
    /// No request: the server starting a scheduled meeting for its organiser.
    Schedule {
        booking_id: String,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
    pub source: SocketAddr,
}

impl Caller {
    /// The caller as the audit log names them (for services shared with other channels).
    pub fn author(&self) -> crate::rooms::Author<'_> {
        crate::rooms::Author {
            user_id: Some(&self.user.id),
            name: &self.user.username,
            source: self.source.ip(),
            api_key_id: match &self.credential {
                Credential::ApiKey { id } => Some(id),
                _ => None,
            },
        }
    }
    pub fn kind(&self) -> AccountKind {
        self.user.kind
    }
    pub fn is_system_admin(&self) -> bool {
        self.user.kind == AccountKind::SystemAdmin
    }
    /// System or tenant administrator.
    pub fn is_admin(&self) -> bool {
        matches!(
            self.user.kind,
            AccountKind::SystemAdmin | AccountKind::TenantAdmin
        )
    }
    pub fn tenant_id(&self) -> &str {
        &self.user.tenant_id
    }
    /// May the caller see objects of this tenant at all?
    pub fn sees_tenant(&self, tenant_id: &str) -> bool {
        self.is_system_admin() || self.user.tenant_id == tenant_id
    }
    /// Administers this tenant (system admins administer all).
    pub fn administers(&self, tenant_id: &str) -> bool {
        self.is_system_admin()
            || (self.user.kind == AccountKind::TenantAdmin && self.sees_tenant(tenant_id))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientAddr(source) = ClientAddr::from_request_parts(parts, state).await?;
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <token or API key>")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        authenticate(state, token, source).await
    }
}

/// Who a session token or API key belongs to (a live credential of an account not frozen).
pub async fn authenticate(
    state: &AppState,
    token: &str,
    source: SocketAddr,
) -> Result<Caller, ApiError> {
    lookup(state, token, source, true).await
}

/// Like [`authenticate`], without noting the API key's use: for checking again that a
/// credential still holds (an open event stream), which is not a new use.
pub async fn recheck(
    state: &AppState,
    token: &str,
    source: SocketAddr,
) -> Result<Caller, ApiError> {
    lookup(state, token, source, false).await
}

async fn lookup(
    state: &AppState,
    token: &str,
    source: SocketAddr,
    note_use: bool,
) -> Result<Caller, ApiError> {
    let hash = crate::credentials::token_hash(token);
    let now = now_ms();
    let mut conn = state.store.conn().await?;
    let (user_id, credential) = if token.starts_with("ck_") {
        let key = repo::api_keys::find_live(&mut conn, &hash, now)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the API key is unknown, revoked or expired"))?;
        if note_use {
            repo::api_keys::touch(&mut conn, &key.id, now).await?;
        }
        (key.user_id, Credential::ApiKey { id: key.id })
    } else {
        let session = repo::sessions::find_live(&mut conn, &hash, now)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the session token is unknown, revoked or expired; log in again",
                )
            })?;
        (session.user_id, Credential::Session { id: session.id })
    };
    let user = repo::users::get(&mut conn, &user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    if user.status == UserStatus::Frozen {
        return Err(ApiError::forbidden("the account is frozen"));
    }
    Ok(Caller {
        user,
        credential,
        source,
    })
}
