//! Webhooks for integrations (OA systems, dashboards): meeting events POSTed as signed JSON.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{AppState, Audit, audit, deny};
use crate::credentials;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::Webhook;
use conclave_store::{new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An http:// or https:// URL that accepts POSTed JSON.
    #[schema(format = "uri")]
    pub url: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Verify each delivery: `X-Conclave-Signature` is `sha256=` and the hex HMAC-SHA256 of
    /// the body with this secret. Shown this once.
    pub secret: String,
    pub webhook: Webhook,
}

fn entry<'a>(action: &'static str, w: &'a Webhook) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &w.tenant_id,
        target_type: "webhook",
        target_id: Some(&w.id),
        detail: serde_json::json!({ "url": w.url }),
    }
}

/// Subscribe a URL to the tenant's meeting events (administrators). The URL must point to a
/// public address unless the installation allows private targets
/// (`webhooks_allow_private_targets`); deliveries do not follow redirects.
#[utoipa::path(post, path = "/webhooks", operation_id = "createWebhook", tag = "conferences",
    security(("bearer" = [])), request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let webhook = Webhook {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        url: body.url.trim().to_owned(),
        secret: credentials::new_webhook_secret(),
        created_by: Some(caller.user.id.clone()),
        created_at: now_ms(),
    };
    if !caller.is_admin() {
        return Err(deny(
            &state,
            &caller,
            entry("createWebhook", &webhook),
            "only administrators create webhooks",
        )
        .await);
    }
    let mut c = Checks::new();
    let url = &webhook.url;
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok
        || url.len() > 2000
        || url.contains(char::is_whitespace)
        || url.split("://").nth(1).is_none_or(str::is_empty)
    {
        c.fail("url", "must be an http:// or https:// URL");
    } else if let Err(reason) =
        crate::webhooks::check_target(url, state.settings.webhooks_allow_private_targets).await
    {
        c.fail("url", reason);
    }
    c.finish()?;
    let mut tx = state.store.begin().await?;
    let stored = Webhook {
        secret: state.sealer.seal(&webhook.secret),
        ..webhook.clone()
    };
    repo::webhooks::insert(&mut tx, &stored).await?;
    audit(&mut tx, &caller, entry("createWebhook", &webhook)).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            secret: webhook.secret.clone(),
            webhook,
        }),
    ))
}

/// The tenant's webhooks (administrators).
#[utoipa::path(get, path = "/webhooks", operation_id = "listWebhooks", tag = "conferences",
    security(("bearer" = [])), responses((status = 200, body = Vec<Webhook>), (status = 403, body = Problem)))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Webhook>>> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden("only administrators see webhooks"));
    }
    let mut conn = state.store.conn().await?;
    Ok(Json(
        repo::webhooks::of_tenant(&mut conn, caller.tenant_id()).await?,
    ))
}

/// Stop a webhook (administrators).
#[utoipa::path(delete, path = "/webhooks/{id}", operation_id = "deleteWebhook", tag = "conferences",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let webhook = repo::webhooks::get(&mut tx, &id)
        .await?
        .filter(|w| caller.sees_tenant(&w.tenant_id))
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if !caller.administers(&webhook.tenant_id) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("deleteWebhook", &webhook),
            "only administrators delete webhooks",
        )
        .await);
    }
    repo::webhooks::delete(&mut tx, &webhook.id).await?;
    audit(&mut tx, &caller, entry("deleteWebhook", &webhook)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
