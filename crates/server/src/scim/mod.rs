//! SCIM 2.0 (RFC 7643/7644) under `/scim/v2`, for HR/OA systems and identity providers
//! (Okta, Entra ID) that keep the directory: Users map onto the tenant's users (the
//! enterprise extension's `department` is a department path, created as needed; `active:
//! false` freezes the account), Groups onto the tenant's enterprise groups of users.
//!
//! Authentication: `Authorization: Bearer <API key>` of an administrator of the tenant (a
//! session token is refused: SCIM is for integrations). Every change writes its audit event
//! (`scimCreateUser`, …) in its transaction, which also queues the directory webhook.
//! Versions (`meta.version`, the `ETag` header) are a digest of the resource's JSON form;
//! `If-Match` with another version answers 412. Errors use SCIM's JSON error form.

/// SCIM filters: in `conclave-directory-formats`, so the parser can be fuzzed alone.
pub use conclave_directory_formats::scim_filter as filter;
mod bulk;
mod groups;
mod patch;
mod users;

use crate::api::AppState;
use crate::api::extract::{Caller, ClientAddr, Credential, authenticate};
use axum::Router;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const CONCLAVE: &str = "urn:conclave:params:scim:schemas:extension:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most resources one page lists.
pub const MAX_COUNT: usize = 200;
/// The most operations of one PATCH.
pub const MAX_PATCH_OPS: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/Schemas", get(schemas))
        .route("/Users", get(users::list).post(users::create))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/Bulk", axum::routing::post(bulk::bulk))
        .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint") })
}

/// A SCIM error answer (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("no such {what}"))
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        scim_json(self.status, &body)
    }
}

impl From<conclave_store::StoreError> for ScimError {
    fn from(err: conclave_store::StoreError) -> Self {
        match err {
            conclave_store::StoreError::Conflict { field } => {
                ScimError::conflict(format!("{field} is already taken"))
            }
            other => {
                tracing::warn!(%other, "SCIM request failed in the store");
                ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
            }
        }
    }
}

impl From<conclave_store::SqlError> for ScimError {
    fn from(err: conclave_store::SqlError) -> Self {
        conclave_store::StoreError::from(err).into()
    }
}

impl From<crate::api::problem::ApiError> for ScimError {
    fn from(err: crate::api::problem::ApiError) -> Self {
        let scim_type = match err.status.as_u16() {
            400 | 422 => Some("invalidValue"),
            409 => Some("uniqueness"),
            _ => None,
        };
        let mut detail = err.detail.clone();
        for e in &err.errors {
            detail.push_str(&format!("; {}: {}", e.field, e.reason));
        }
        let status = if err.status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            err.status
        };
        ScimError::new(status, scim_type, detail)
    }
}

pub type ScimResult<T> = Result<T, ScimError>;

pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    r
}

/// A resource answer with its `ETag`.
pub fn resource(status: StatusCode, body: &Value) -> Response {
    let mut r = scim_json(status, body);
    if let Some(v) = body["meta"]["version"].as_str()
        && let Ok(v) = HeaderValue::from_str(v)
    {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The version of a resource: a digest of its JSON form without `meta`.
pub fn version(body: &Value) -> String {
    let mut b = body.clone();
    if let Some(map) = b.as_object_mut() {
        map.remove("meta");
    }
    let digest = sha2::Sha256::digest(b.to_string().as_bytes());
    format!("W/\"{}\"", hex::encode(&digest[..8]))
}

/// The `If-Match` header's value, if any.
pub fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

/// `If-Match` (or a bulk operation's `version`) against the current version: 412 when it
/// names another.
pub fn check_version(wanted: Option<&str>, current: &str) -> ScimResult<()> {
    let Some(wanted) = wanted else {
        return Ok(());
    };
    let strip = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned()
    };
    let ok = wanted
        .split(',')
        .any(|w| w.trim() == "*" || strip(w) == strip(current));
    if ok {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("the resource's version is {current}, not {wanted}"),
        ))
    }
}

/// The caller of a SCIM request: an administrator's API key.
pub struct ScimCaller(pub Caller);

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let unauthorized = |d: &str| ScimError::new(StatusCode::UNAUTHORIZED, None, d);
        let ClientAddr(source) = ClientAddr::from_request_parts(parts, state)
            .await
            .map_err(ScimError::from)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("expected Authorization: Bearer <API key>"))?;
        let caller = authenticate(state, token, source)
            .await
            .map_err(ScimError::from)?;
        if !matches!(caller.credential, Credential::ApiKey { .. }) {
            return Err(unauthorized("SCIM takes an API key, not a session token"));
        }
        if !caller.is_admin() {
            return Err(ScimError::new(
                StatusCode::FORBIDDEN,
                None,
                "the API key must belong to an administrator of the tenant",
            ));
        }
        Ok(ScimCaller(caller))
    }
}

/// A request body as JSON, with SCIM's errors.
pub fn body_json(bytes: &[u8]) -> ScimResult<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("invalid JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "expected a JSON object",
        ));
    }
    if v.to_string().contains("\\u0000") {
        return Err(ScimError::invalid("must not contain NUL (U+0000)"));
    }
    Ok(v)
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub filter: Option<String>,
    #[serde(rename = "startIndex")]
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    pub excluded_attributes: Option<String>,
}

/// Filters and pages resources (startIndex 1-based, count at most [`MAX_COUNT`]).
pub fn list_response(query: &ListQuery, resources: Vec<Value>) -> ScimResult<Response> {
    let filter = match query.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(
            filter::parse(f)
                .map_err(|e| ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), e))?,
        ),
        None => None,
    };
    let number = |v: &Option<String>, default: i64| -> ScimResult<i64> {
        match v {
            None => Ok(default),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| ScimError::invalid(format!("{s:?} is not a number"))),
        }
    };
    let start = number(&query.start_index, 1)?.max(1) as usize;
    let count = number(&query.count, MAX_COUNT as i64)?.clamp(0, MAX_COUNT as i64) as usize;
    let matching: Vec<Value> = resources
        .into_iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r)))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|r| project(r, query))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// One name of `attributes`/`excludedAttributes`: a top-level key of the resource's JSON
/// (an extension's attributes sit under its schema URN) and, maybe, a sub-attribute.
fn attribute_path(name: &str) -> Option<(String, Option<String>)> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    // `urn:…:User:attr[.sub]`: the core schemas' attributes are top-level, an extension's
    // are under its URN.
    let (schema, rest) = if lower.starts_with("urn:") {
        let i = name.rfind(':')?;
        (Some(&name[..i]), &name[i + 1..])
    } else {
        (None, name)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s.to_owned())),
        None => (rest, None),
    };
    match schema {
        Some(s) if !s.to_ascii_lowercase().contains(":core:") => {
            Some((s.to_owned(), Some(attr.to_owned())))
        }
        _ => Some((attr.to_owned(), sub)),
    }
}

/// Applies `attributes` (only these, besides what is always returned: `id`, `schemas`,
/// `meta`) or `excludedAttributes` (all but these) to a resource, case-insensitively
/// (RFC 7644 §3.9). Unknown names are ignored.
pub fn project(mut resource: Value, query: &ListQuery) -> Value {
    const ALWAYS: [&str; 3] = ["id", "schemas", "meta"];
    let names = |list: &Option<String>| -> Vec<(String, Option<String>)> {
        list.as_deref()
            .map(|l| l.split(',').filter_map(attribute_path).collect())
            .unwrap_or_default()
    };
    let Some(map) = resource.as_object_mut() else {
        return resource;
    };
    let wanted = names(&query.attributes);
    if !wanted.is_empty() {
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&key)) {
                continue;
            }
            let picks: Vec<&Option<String>> = wanted
                .iter()
                .filter(|(a, _)| a.eq_ignore_ascii_case(&key))
                .map(|(_, sub)| sub)
                .collect();
            if picks.is_empty() {
                map.remove(&key);
            } else if picks.iter().all(|s| s.is_some())
                && let Some(Value::Object(inner)) = map.get_mut(&key)
            {
                inner.retain(|k, _| {
                    picks
                        .iter()
                        .any(|s| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(k)))
                });
            }
        }
        return resource;
    }
    for (attr, sub) in names(&query.excluded_attributes) {
        if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&attr)) {
            continue;
        }
        let Some(key) = map.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned() else {
            continue;
        };
        match sub {
            None => {
                map.remove(&key);
            }
            Some(sub) => {
                if let Some(Value::Object(inner)) = map.get_mut(&key)
                    && let Some(k) = inner.keys().find(|k| k.eq_ignore_ascii_case(&sub)).cloned()
                {
                    inner.remove(&k);
                }
            }
        }
    }
    resource
}

fn base(_state: &AppState) -> String {
    "/scim/v2".to_owned()
}

async fn service_provider_config(_c: ScimCaller) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/conclave/conclave/blob/main/docs/directory.md",
            "patch": { "supported": true },
            "bulk": {
                "supported": true,
                "maxOperations": bulk::MAX_OPERATIONS,
                "maxPayloadSize": bulk::MAX_PAYLOAD,
            },
            "filter": { "supported": true, "maxResults": MAX_COUNT },
            "changePassword": { "supported": true },
            "sort": { "supported": false },
            "etag": { "supported": true },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "API key",
                "description": "An API key of a tenant administrator, as a bearer token",
                "primary": true,
            }],
            "meta": { "resourceType": "ServiceProviderConfig" },
        }),
    )
}

async fn resource_types(
    _c: ScimCaller,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    let base = base(&state);
    let types = json!([
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "schema": USER,
            "schemaExtensions": [
                { "schema": ENTERPRISE, "required": false },
                { "schema": CONCLAVE, "required": false },
            ],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") },
        },
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group") },
        },
    ]);
    let n = types.as_array().map_or(0, Vec::len);
    scim_json(
        StatusCode::OK,
        &json!({ "schemas": [LIST], "totalResults": n, "itemsPerPage": n, "startIndex": 1, "Resources": types }),
    )
}

fn attribute(name: &str, kind: &str, multi: bool, required: bool, uniqueness: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": "readWrite", "returned": "default",
        "uniqueness": uniqueness,
    })
}

async fn schemas(_c: ScimCaller) -> Response {
    let mut name = attribute("name", "complex", false, false, "none");
    name["subAttributes"] = json!([
        attribute("formatted", "string", false, false, "none"),
        attribute("givenName", "string", false, false, "none"),
        attribute("familyName", "string", false, false, "none"),
    ]);
    let mut emails = attribute("emails", "complex", true, false, "none");
    emails["subAttributes"] = json!([
        attribute("value", "string", false, false, "none"),
        attribute("type", "string", false, false, "none"),
        attribute("primary", "boolean", false, false, "none"),
    ]);
    let mut phones = attribute("phoneNumbers", "complex", true, false, "none");
    phones["subAttributes"] = json!([
        attribute("value", "string", false, false, "none"),
        attribute("type", "string", false, false, "none"),
    ]);
    let mut members = attribute("members", "complex", true, false, "none");
    members["subAttributes"] = json!([
        attribute("value", "string", false, false, "none"),
        attribute("display", "string", false, false, "none"),
    ]);
    let all = json!([
        { "id": USER, "name": "User", "description": "A user account", "attributes": [
            attribute("userName", "string", false, true, "server"), name,
            attribute("displayName", "string", false, false, "none"),
            attribute("title", "string", false, false, "none"),
            attribute("active", "boolean", false, false, "none"),
            attribute("preferredLanguage", "string", false, false, "none"),
            attribute("password", "string", false, false, "none"),
            emails, phones,
        ]},
        { "id": ENTERPRISE, "name": "EnterpriseUser", "description": "Enterprise user",
          "attributes": [attribute("department", "string", false, false, "none")] },
        { "id": CONCLAVE, "name": "ConclaveUser", "description": "Conclave's SIP extension",
          "attributes": [attribute("extension", "string", false, false, "server")] },
        { "id": GROUP, "name": "Group", "description": "An enterprise group", "attributes": [
            attribute("displayName", "string", false, true, "server"), members,
        ]},
    ]);
    let n = all.as_array().map_or(0, Vec::len);
    scim_json(
        StatusCode::OK,
        &json!({ "schemas": [LIST], "totalResults": n, "itemsPerPage": n, "startIndex": 1, "Resources": all }),
    )
}

pub(crate) use patch::apply_patch;

/// Query parameters as SCIM reads them (unknown ones ignored, as clients add their own).
pub type ScimQuery = Query<ListQuery>;
