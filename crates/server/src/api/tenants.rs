//! Tenants (enterprises). Only system administrators create or change them.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, audit, deny, nullable};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::{OutboundPolicy, Tenant};
use conclave_store::{new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant))
        .routes(routes!(get_outbound_policy, set_outbound_policy))
        .routes(routes!(get_branding))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    pub sip_domain: Option<String>,
    /// SIP digest with SHA-256 only for this tenant's domain (needs `sip_domain`). Phones that
    /// know only MD5 cannot register then.
    #[serde(default)]
    pub sip_sha256_only: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub branding: Option<serde_json::Value>,
    /// Its recordings are deleted this many days after they end (0: kept; absent: the
    /// server's rule).
    #[serde(default)]
    pub recording_retention_days: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub sip_domain: Option<Option<String>>,
    /// SIP digest with SHA-256 only (needs a SIP domain). Turning it on forgets the MD5
    /// digests of the tenant's users.
    pub sip_sha256_only: Option<bool>,
    #[schema(value_type = Object)]
    pub branding: Option<serde_json::Value>,
    /// Days its recordings are kept after they end (0: kept; null: the server's rule).
    /// Tenant administrators may change it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub recording_retention_days: Option<Option<i64>>,
}

fn check_retention(c: &mut Checks, days: Option<i64>) {
    if let Some(days) = days {
        c.range("recording_retention_days", days, 0, 36_500);
    }
}

fn check_fields(
    c: &mut Checks,
    name: Option<&str>,
    sip_domain: Option<&str>,
    branding: Option<&serde_json::Value>,
) {
    if let Some(name) = name {
        c.text("name", name, 1, 100);
    }
    if let Some(domain) = sip_domain {
        let ok = (1..=253).contains(&domain.len())
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            c.fail(
                "sip_domain",
                "must be a domain name such as sip.example.com",
            );
        }
    }
    if let Some(branding) = branding {
        check_branding(c, branding);
    }
}

/// What a tenant's branding may hold (see [`Branding`]): each field checked, anything else
/// refused by name — the console, the login and join pages show it to anonymous visitors.
fn check_branding(c: &mut Checks, branding: &serde_json::Value) {
    let Some(fields) = branding.as_object() else {
        c.fail("branding", "must be a JSON object");
        return;
    };
    for (key, value) in fields {
        let field = format!("branding.{key}");
        let text = value.as_str();
        match (key.as_str(), text) {
            ("product_name", Some(v)) => c.text(&field, v, 0, 60),
            ("slogan", Some(v)) => c.text(&field, v, 0, 160),
            ("color", Some(v)) => {
                let hex = v.strip_prefix('#').unwrap_or("");
                if !(matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())) {
                    c.fail(&field, "must be a colour like #1f4e79");
                }
            }
            ("logo", Some(v)) => {
                if let Err(why) = check_logo(v) {
                    c.fail(&field, why);
                }
            }
            ("product_name" | "slogan" | "color" | "logo", None) => {
                c.fail(&field, "must be a string")
            }
            _ => c.fail(
                &field,
                "unknown: branding has product_name, slogan, color and logo",
            ),
        }
    }
}

/// The largest logo, as its data URL.
const LOGO_MAX: usize = 96 * 1024;

/// A logo is a PNG, JPEG or WebP picture as a base64 data URL, small enough to send with
/// every login page (no SVG: a picture that can carry script is not taken from tenants).
fn check_logo(url: &str) -> Result<(), &'static str> {
    if url.is_empty() {
        return Ok(());
    }
    if url.len() > LOGO_MAX {
        return Err("must be at most 96 KiB");
    }
    let data = ["image/png", "image/jpeg", "image/webp"]
        .iter()
        .find_map(|mime| url.strip_prefix(&format!("data:{mime};base64,")))
        .ok_or("must be a data:image/png, image/jpeg or image/webp;base64 URL")?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "is not valid base64")?;
    let known = bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xff, 0xd8, 0xff])
        || (bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP");
    if known {
        Ok(())
    } else {
        Err("is not a PNG, JPEG or WebP picture")
    }
}

/// A tenant's look on the console, the login page and the join page.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Branding {
    /// The tenant it belongs to (absent: the server's own look).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slogan: Option<String>,
    /// The header's colour, `#rgb` or `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// A PNG, JPEG or WebP as a data URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
}

impl Branding {
    fn of(tenant: &Tenant) -> Branding {
        let field = |k: &str| {
            tenant.branding[k]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Branding {
            tenant_name: Some(tenant.name.clone()),
            product_name: field("product_name"),
            slogan: field("slogan"),
            color: field("color"),
            logo: field("logo"),
        }
    }
}

/// The look of the console and the join page before anyone logs in: the tenant whose SIP
/// domain is the name this server was reached by (the `Host` header), else the server's own.
/// No authentication.
#[utoipa::path(get, path = "/branding", operation_id = "getBranding", tag = "tenants",
    responses((status = 200, body = Branding)))]
async fn get_branding(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Branding>> {
    let name = super::host_name(&headers);
    if name.is_empty() {
        return Ok(Json(Branding::default()));
    }
    let mut conn = state.store.conn().await?;
    let tenant = repo::tenants::get_by_sip_domain(&mut conn, name).await?;
    Ok(Json(tenant.as_ref().map(Branding::of).unwrap_or_default()))
}

/// Create a tenant (system administrators only).
#[utoipa::path(post, path = "/tenants", operation_id = "createTenant", tag = "tenants",
    security(("bearer" = [])), request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let entry = |id| Audit {
        action: "createTenant",
        tenant_id: caller.tenant_id(),
        target_type: "tenant",
        target_id: id,
        detail: serde_json::json!({ "name": body.name }),
    };
    if !caller.is_system_admin() {
        return Err(deny(
            &state,
            &caller,
            entry(None),
            "only system administrators create tenants",
        )
        .await);
    }
    let mut c = Checks::new();
    check_fields(
        &mut c,
        Some(&body.name),
        body.sip_domain.as_deref(),
        body.branding.as_ref(),
    );
    check_retention(&mut c, body.recording_retention_days);
    if body.sip_sha256_only == Some(true) && body.sip_domain.is_none() {
        c.fail(
            "sip_sha256_only",
            "needs a sip_domain (registrations are challenged by the domain they name)",
        );
    }
    c.finish()?;
    let now = now_ms();
    let tenant = Tenant {
        id: new_id(),
        name: body.name.trim().to_owned(),
        sip_domain: body.sip_domain.as_deref().map(str::to_lowercase),
        sip_sha256_only: body.sip_sha256_only.unwrap_or(false),
        branding: body
            .branding
            .clone()
            .unwrap_or_else(|| serde_json::json!({})),
        recording_retention_days: body.recording_retention_days,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    repo::tenants::insert(&mut tx, &tenant).await?;
    audit(
        &mut tx,
        &caller,
        Audit {
            tenant_id: &tenant.id,
            ..entry(Some(&tenant.id))
        },
    )
    .await?;
    tx.commit().await?;
    refresh_digest_policy(&state).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// List tenants: every tenant for system administrators, one's own for others.
#[utoipa::path(get, path = "/tenants", operation_id = "listTenants", tag = "tenants",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<Tenant>)))]
async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Tenant>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    if caller.is_system_admin() {
        return Ok(Json(
            repo::tenants::list(&mut conn, params.cursor(), limit)
                .await?
                .into(),
        ));
    }
    let own = repo::tenants::get(&mut conn, caller.tenant_id()).await?;
    let items = own
        .into_iter()
        .filter(|t| t.id.as_str() > params.cursor())
        .collect();
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Tenant> {
    let mut conn = state.store.conn().await?;
    repo::tenants::get(&mut conn, id)
        .await?
        .filter(|t| caller.sees_tenant(&t.id))
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// One tenant (one's own, or any for system administrators).
#[utoipa::path(get, path = "/tenants/{id}", operation_id = "getTenant", tag = "tenants",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = Problem)))]
async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(load(&state, &caller, &id).await?))
}

/// Change a tenant's name, SIP domain or branding (system administrators; a tenant
/// administrator may change the branding of their own tenant).
#[utoipa::path(patch, path = "/tenants/{id}", operation_id = "updateTenant", tag = "tenants",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateTenant,
    responses((status = 200, body = Tenant), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> ApiResult<Json<Tenant>> {
    let mut tenant = load(&state, &caller, &id).await?;
    let entry = Audit {
        action: "updateTenant",
        tenant_id: &id,
        target_type: "tenant",
        target_id: Some(&id),
        detail: serde_json::json!({}),
    };
    let tenant_admins_may =
        body.name.is_none() && body.sip_domain.is_none() && body.sip_sha256_only.is_none();
    if !(caller.is_system_admin() || (tenant_admins_may && caller.administers(&id))) {
        return Err(deny(&state, &caller, entry, "only system administrators change tenants; tenant administrators may change the branding and the recordings' retention").await);
    }
    let mut c = Checks::new();
    check_retention(&mut c, body.recording_retention_days.flatten());
    check_fields(
        &mut c,
        body.name.as_deref(),
        body.sip_domain.clone().flatten().as_deref(),
        body.branding.as_ref(),
    );
    c.finish()?;
    if let Some(name) = body.name {
        tenant.name = name.trim().to_owned();
    }
    if let Some(domain) = body.sip_domain {
        tenant.sip_domain = domain.map(|d| d.to_lowercase());
    }
    if let Some(branding) = body.branding {
        tenant.branding = branding;
    }
    if let Some(days) = body.recording_retention_days {
        tenant.recording_retention_days = days;
    }
    let went_strict = body.sip_sha256_only == Some(true) && !tenant.sip_sha256_only;
    if let Some(strict) = body.sip_sha256_only {
        tenant.sip_sha256_only = strict;
    }
    if tenant.sip_sha256_only && tenant.sip_domain.is_none() {
        return Err(ApiError::field(
            "sip_sha256_only",
            "needs a sip_domain (registrations are challenged by the domain they name)",
        ));
    }
    tenant.updated_at = now_ms();
    let mut tx = state.store.begin().await?;
    repo::tenants::update(&mut tx, &tenant).await?;
    if went_strict {
        // No MD5 digest is kept for a SHA-256-only tenant: phones answer in SHA-256 now.
        let dropped = repo::users::drop_md5_digests(&mut tx, &tenant.id).await?;
        tracing::info!(
            tenant = tenant.id,
            users = dropped,
            "dropped MD5 SIP digests"
        );
    }
    audit(&mut tx, &caller, entry).await?;
    tx.commit().await?;
    refresh_digest_policy(&state).await?;
    Ok(Json(tenant))
}

/// Tells the registrar which SIP domains are SHA-256 only (after a tenant changed).
async fn refresh_digest_policy(state: &AppState) -> ApiResult<()> {
    let mut conn = state.store.conn().await?;
    let domains = repo::tenants::sha256_only_domains(&mut conn).await?;
    state.sip.set_sha256_only_domains(domains);
    Ok(())
}

/// Who of the tenant may call phone numbers through its trunks, which numbers, and how many
/// (the tenant's administrators, and system administrators).
#[utoipa::path(get, path = "/tenants/{id}/outbound-policy", operation_id = "getOutboundPolicy",
    tag = "tenants", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OutboundPolicy), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
async fn get_outbound_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<OutboundPolicy>> {
    let tenant = load(&state, &caller, &id).await?;
    if !caller.administers(&tenant.id) {
        return Err(ApiError::forbidden(
            "only administrators see the tenant's outbound policy",
        ));
    }
    let mut conn = state.store.conn().await?;
    Ok(Json(
        repo::outbound_policies::get(&mut conn, &tenant.id).await?,
    ))
}

/// Set who of the tenant may call phone numbers, which numbers (patterns over the whole
/// number sent to the gateway; none: extensions only) and how many (at once, per hour).
/// Fields left out take their defaults.
#[utoipa::path(put, path = "/tenants/{id}/outbound-policy", operation_id = "setOutboundPolicy",
    tag = "tenants", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = OutboundPolicy,
    responses((status = 200, body = OutboundPolicy), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_outbound_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<OutboundPolicy>,
) -> ApiResult<Json<OutboundPolicy>> {
    let tenant = load(&state, &caller, &id).await?;
    let entry = Audit {
        action: "setOutboundPolicy",
        tenant_id: &tenant.id,
        target_type: "tenant",
        target_id: Some(&tenant.id),
        detail: serde_json::to_value(&policy).unwrap_or_default(),
    };
    if !caller.administers(&tenant.id) {
        return Err(deny(
            &state,
            &caller,
            entry,
            "only administrators set the tenant's outbound policy",
        )
        .await);
    }
    let mut c = Checks::new();
    if policy.allowed_patterns.len() > 50 {
        c.fail("allowed_patterns", "at most 50 patterns");
    }
    for (i, pattern) in policy.allowed_patterns.iter().enumerate() {
        let field = format!("allowed_patterns[{i}]");
        if pattern.is_empty() || pattern.len() > 200 {
            c.fail(&field, "must be 1 to 200 characters");
        } else if let Err(err) = crate::trunks::compile(pattern) {
            c.fail(&field, format!("not a regular expression: {err}"));
        }
    }
    if policy.granted_users.len() > 1000 {
        c.fail("granted_users", "at most 1000 users");
    }
    let mut conn = state.store.conn().await?;
    for (i, user_id) in policy.granted_users.iter().enumerate() {
        let known = repo::users::get(&mut conn, user_id)
            .await?
            .is_some_and(|u| u.tenant_id == tenant.id);
        if !known {
            c.fail(format!("granted_users[{i}]"), "no such user in this tenant");
        }
    }
    drop(conn);
    c.range("calls_per_hour", policy.calls_per_hour.into(), 0, 100_000);
    c.range(
        "concurrent_calls",
        policy.concurrent_calls.into(),
        0,
        10_000,
    );
    c.finish()?;
    let mut tx = state.store.begin().await?;
    repo::outbound_policies::set(&mut tx, &tenant.id, &policy, now_ms()).await?;
    audit(&mut tx, &caller, entry).await?;
    tx.commit().await?;
    Ok(Json(policy))
}
