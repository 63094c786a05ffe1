//! API keys for integrations (OA, HR systems). A key acts with the rights of the
//! administrator who created it; it is shown once and stored hashed.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, audit, deny};
use crate::credentials;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::ApiKey;
use conclave_store::{new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, e.g. "OA sync".
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Days until the key expires (1–3650); omit for a key that lasts until revoked.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The secret: shown this once, never again. Send as `Authorization: Bearer <key>`.
    pub key: String,
    pub api_key: ApiKey,
}

/// Create an API key (administrators). The key acts with the creator's rights.
#[utoipa::path(post, path = "/api-keys", operation_id = "createApiKey", tag = "api-keys",
    security(("bearer" = [])), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    if !caller.is_admin() {
        let attempt = Audit {
            action: "createApiKey",
            tenant_id: caller.tenant_id(),
            target_type: "api_key",
            target_id: None,
            detail: serde_json::json!({ "name": body.name }),
        };
        return Err(deny(
            &state,
            &caller,
            attempt,
            "only administrators create API keys",
        )
        .await);
    }
    let mut c = Checks::new();
    c.text("name", &body.name, 1, 100);
    if let Some(days) = body.expires_in_days {
        c.range("expires_in_days", days, 1, 3650);
    }
    c.finish()?;
    let (key, prefix) = credentials::new_api_key();
    let now = now_ms();
    let api_key = ApiKey {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        user_id: caller.user.id.clone(),
        name: body.name.trim().to_owned(),
        prefix,
        key_hash: credentials::token_hash(&key),
        created_at: now,
        expires_at: body.expires_in_days.map(|d| now + d * 86_400_000),
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = state.store.begin().await?;
    repo::api_keys::insert(&mut tx, &api_key).await?;
    let entry = Audit {
        action: "createApiKey",
        tenant_id: &api_key.tenant_id,
        target_type: "api_key",
        target_id: Some(&api_key.id),
        detail: serde_json::json!({ "name": api_key.name, "prefix": api_key.prefix }),
    };
    audit(&mut tx, &caller, entry).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, api_key })))
}

/// The API keys of a tenant (administrators).
#[utoipa::path(get, path = "/api-keys", operation_id = "listApiKeys", tag = "api-keys",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<ApiKey>), (status = 403, body = Problem)))]
async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<ApiKey>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    let tenant_id = params.tenant(&mut conn, &caller).await?;
    if !caller.administers(&tenant_id) {
        return Err(ApiError::forbidden("only administrators see API keys"));
    }
    Ok(Json(
        repo::api_keys::list(&mut conn, &tenant_id, None, params.cursor(), limit)
            .await?
            .into(),
    ))
}

/// Revoke an API key (administrators of its tenant): it stops working at once.
#[utoipa::path(delete, path = "/api-keys/{id}", operation_id = "revokeApiKey", tag = "api-keys",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let key = repo::api_keys::get(&mut tx, &id)
        .await?
        .filter(|k| caller.sees_tenant(&k.tenant_id))
        .ok_or_else(|| ApiError::not_found("API key"))?;
    let entry = Audit {
        action: "revokeApiKey",
        tenant_id: &key.tenant_id,
        target_type: "api_key",
        target_id: Some(&key.id),
        detail: serde_json::json!({ "name": key.name, "prefix": key.prefix }),
    };
    if !caller.administers(&key.tenant_id) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry,
            "only administrators revoke API keys",
        )
        .await);
    }
    repo::api_keys::revoke(&mut tx, &key.id, now_ms()).await?;
    audit(&mut tx, &caller, entry).await?;
    tx.commit().await?;
    state.note_credentials_revoked();
    Ok(StatusCode::NO_CONTENT)
}
