//! SIP trunks: the gateways that carry calls to phone numbers (administrators).

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{AppState, Audit, audit, deny};
use crate::trunks;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::{Trunk, TrunkSettings};
use conclave_store::{new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_trunk, list_trunks))
        .routes(routes!(get_trunk, update_trunk, delete_trunk))
}

/// A trunk as written by an administrator.
#[derive(Deserialize, ToSchema)]
pub struct TrunkBody {
    pub name: String,
    /// Digest password for the gateway's challenges. On update, absent keeps the current one
    /// and an empty string removes it.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(flatten)]
    pub settings: TrunkSettings,
    /// Whatever else came: refused by name (serde cannot deny unknown fields next to a
    /// flattened struct).
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

impl TrunkBody {
    fn refuse_unknown(&self) -> ApiResult<()> {
        match self.unknown.keys().next() {
            Some(field) => Err(ApiError::field(field.clone(), "unknown field")),
            None => Ok(()),
        }
    }
}

/// A trunk and, when it registers, how its registration stands.
#[derive(Serialize, ToSchema)]
pub struct TrunkView {
    #[serde(flatten)]
    pub trunk: Trunk,
    /// `off` (it does not register), `registering`, `registered`, `failed: <status>` or
    /// `unregistered`.
    pub registration: String,
}

fn entry<'a>(action: &'static str, t: &'a Trunk) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &t.tenant_id,
        target_type: "trunk",
        target_id: Some(&t.id),
        detail: serde_json::json!({ "name": t.name, "host": t.settings.host }),
    }
}

/// Every refusal of a trunk's settings at once.
fn check(t: &Trunk, c: &mut Checks) {
    let s = &t.settings;
    c.text("name", &t.name, 1, 100);
    let host_ok = !s.host.is_empty()
        && s.host.len() <= 253
        && s.host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !host_ok {
        c.fail("host", "must be a host name or an IP address");
    }
    if s.port == 0 {
        c.fail("port", "must be 1 to 65535");
    }
    if let Some(user) = &s.username {
        c.text("username", user, 1, 100);
        if user.contains(['"', '\\']) {
            c.fail("username", "must not contain quotes or backslashes");
        }
    }
    if let Some(password) = &t.password {
        c.text("password", password, 1, 200);
    }
    if let Some(id) = &s.caller_id
        && trunks::dialable(id).is_none_or(|d| d != *id)
    {
        c.fail(
            "caller_id",
            "must be a phone number: an optional +, then digits",
        );
    }
    if s.rewrite.len() > 50 {
        c.fail("rewrite", "at most 50 rules");
    }
    for (i, rule) in s.rewrite.iter().enumerate() {
        if rule.pattern.is_empty() || rule.pattern.len() > 200 {
            c.fail(
                format!("rewrite[{i}].pattern"),
                "must be 1 to 200 characters",
            );
        } else if let Err(err) = trunks::compile(&rule.pattern) {
            c.fail(
                format!("rewrite[{i}].pattern"),
                format!("not a regular expression: {err}"),
            );
        }
        let replace_ok = rule.replace.len() <= 100
            && rule
                .replace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+*#${}_".contains(&b));
        if !replace_ok {
            c.fail(
                format!("rewrite[{i}].replace"),
                "up to 100 characters: digits, + * #, and $1 or ${name} for the pattern's groups",
            );
        }
    }
    if !(5..=600).contains(&s.ring_timeout_seconds) {
        c.fail("ring_timeout_seconds", "must be 5 to 600");
    }
    if !(-1000..=1000).contains(&s.priority) {
        c.fail("priority", "must be -1000 to 1000");
    }
    if s.register && (s.username.is_none() || t.password.is_none()) {
        c.fail("register", "registering needs a username and a password");
    }
}

/// The trunk as stored: its password sealed.
fn sealed(state: &AppState, trunk: &Trunk) -> Trunk {
    Trunk {
        password: trunk.password.as_deref().map(|p| state.sealer.seal(p)),
        ..trunk.clone()
    }
}

async fn view(state: &AppState, trunks: Vec<Trunk>) -> Vec<TrunkView> {
    let ids = trunks.iter().map(|t| t.id.clone()).collect();
    let states = state.sip.trunk_states(ids).await;
    trunks
        .into_iter()
        .zip(states.into_iter().chain(std::iter::repeat(None)))
        .map(|(trunk, registration)| TrunkView {
            registration: registration.unwrap_or_else(|| "off".into()),
            trunk,
        })
        .collect()
}

/// Add a gateway for calls to phone numbers (administrators).
#[utoipa::path(post, path = "/trunks", operation_id = "createTrunk", tag = "sip",
    security(("bearer" = [])), request_body = TrunkBody,
    responses((status = 201, body = TrunkView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_trunk(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TrunkBody>,
) -> ApiResult<(StatusCode, Json<TrunkView>)> {
    body.refuse_unknown()?;
    let now = now_ms();
    let password = body.password.filter(|p| !p.is_empty());
    let trunk = Trunk {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        name: body.name.trim().to_owned(),
        settings: body.settings,
        has_password: password.is_some(),
        password,
        created_at: now,
        updated_at: now,
    };
    if !caller.is_admin() {
        return Err(deny(
            &state,
            &caller,
            entry("createTrunk", &trunk),
            "only administrators manage trunks",
        )
        .await);
    }
    let mut c = Checks::new();
    check(&trunk, &mut c);
    c.finish()?;
    let mut tx = state.store.begin().await?;
    repo::trunks::insert(&mut tx, &sealed(&state, &trunk)).await?;
    audit(&mut tx, &caller, entry("createTrunk", &trunk)).await?;
    tx.commit().await?;
    state
        .sip
        .trunk_changed(trunk.id.clone(), Some(trunk.clone()));
    let mut views = view(&state, vec![trunk]).await;
    let created = views
        .pop()
        .ok_or_else(|| ApiError::internal("no trunk view"))?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The tenant's trunks, with their registrations (administrators).
#[utoipa::path(get, path = "/trunks", operation_id = "listTrunks", tag = "sip",
    security(("bearer" = [])), responses((status = 200, body = Vec<TrunkView>), (status = 403, body = Problem)))]
async fn list_trunks(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TrunkView>>> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden("only administrators see trunks"));
    }
    let mut conn = state.store.conn().await?;
    let trunks = repo::trunks::of_tenant(&mut conn, caller.tenant_id()).await?;
    drop(conn);
    Ok(Json(view(&state, trunks).await))
}

/// A trunk the caller administers, or 404.
async fn administered(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Trunk> {
    let mut conn = state.store.conn().await?;
    repo::trunks::get(&mut conn, id)
        .await?
        .filter(|t| caller.sees_tenant(&t.tenant_id) && caller.is_admin())
        .ok_or_else(|| ApiError::not_found("trunk"))
}

/// One trunk and its registration (administrators).
#[utoipa::path(get, path = "/trunks/{id}", operation_id = "getTrunk", tag = "sip",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TrunkView), (status = 404, body = Problem)))]
async fn get_trunk(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TrunkView>> {
    let trunk = administered(&state, &caller, &id).await?;
    let mut views = view(&state, vec![trunk]).await;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("no trunk view"))
}

/// Replace a trunk's settings (administrators); the password stays unless given.
#[utoipa::path(put, path = "/trunks/{id}", operation_id = "updateTrunk", tag = "sip",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = TrunkBody,
    responses((status = 200, body = TrunkView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_trunk(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TrunkBody>,
) -> ApiResult<Json<TrunkView>> {
    body.refuse_unknown()?;
    let old = administered(&state, &caller, &id).await?;
    let password = match body.password {
        None => old.password.as_deref().and_then(|p| state.sealer.open(p)),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p),
    };
    let trunk = Trunk {
        name: body.name.trim().to_owned(),
        settings: body.settings,
        has_password: password.is_some(),
        password,
        updated_at: now_ms(),
        ..old
    };
    if !caller.administers(&trunk.tenant_id) {
        return Err(deny(
            &state,
            &caller,
            entry("updateTrunk", &trunk),
            "only administrators manage trunks",
        )
        .await);
    }
    let mut c = Checks::new();
    check(&trunk, &mut c);
    c.finish()?;
    let mut tx = state.store.begin().await?;
    repo::trunks::update(&mut tx, &sealed(&state, &trunk)).await?;
    audit(&mut tx, &caller, entry("updateTrunk", &trunk)).await?;
    tx.commit().await?;
    state
        .sip
        .trunk_changed(trunk.id.clone(), Some(trunk.clone()));
    let mut views = view(&state, vec![trunk]).await;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("no trunk view"))
}

/// Remove a trunk (administrators); its registration ends.
#[utoipa::path(delete, path = "/trunks/{id}", operation_id = "deleteTrunk", tag = "sip",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_trunk(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let trunk = administered(&state, &caller, &id).await?;
    if !caller.administers(&trunk.tenant_id) {
        return Err(deny(
            &state,
            &caller,
            entry("deleteTrunk", &trunk),
            "only administrators manage trunks",
        )
        .await);
    }
    let mut tx = state.store.begin().await?;
    repo::trunks::delete(&mut tx, &trunk.id).await?;
    audit(&mut tx, &caller, entry("deleteTrunk", &trunk)).await?;
    tx.commit().await?;
    state.sip.trunk_changed(trunk.id.clone(), None);
    Ok(StatusCode::NO_CONTENT)
}
