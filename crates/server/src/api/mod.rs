//! The management API under `/api/v1`, described by the OpenAPI 3.1 document at
//! `/api/openapi.json` that utoipa generates from these handlers.

mod api_keys;
mod audit;
mod bookings;
mod cluster;
pub(crate) mod conferences;
mod contacts;
mod departments;
mod directory;
mod directory_io;
mod events;
pub mod extract;
mod groups;
mod history;
mod join;
mod join_events;
mod minutes;
pub mod problem;
mod recordings;
mod registrations;
mod rooms;
mod session;
mod shared;
mod status;
mod streams;
mod templates;
mod tenants;
mod trunks;
mod users;
pub mod validate;
mod watch;
mod webhooks;

use crate::config::Settings;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use conclave_store::Store;
use conclave_store::model::{AuditEvent, Outcome};
use conclave_store::{Conn, new_id, now_ms, repo};
use extract::Caller;
use problem::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub sip: crate::sip::SipHandle,
    pub meetings: crate::meeting::Meetings,
    pub settings: Arc<Settings>,
    /// Wrong passwords per account and per address (see `crate::limiter`).
    pub login_limiter: Arc<crate::limiter::Limiter>,
    /// Seals the secrets the server must read back (trunk passwords) at rest.
    pub sealer: Arc<crate::secrets::Sealer>,
    /// Bumped when sessions or API keys are revoked (logout, freeze, deletion, password
    /// change): open event streams check their credential again at once.
    pub credentials_revoked: Arc<tokio::sync::watch::Sender<u64>>,
    /// Woken when a scheduled meeting is booked, changed or cancelled: the starter looks
    /// again at what is due next.
    pub schedule_changed: Arc<tokio::sync::Notify>,
    /// Woken when invitations are queued: the mailer sends them.
    pub mail_queued: Arc<tokio::sync::Notify>,
    /// Browsers in meetings (their tokens, bounded per address and in all).
    pub browsers: crate::browser::Sessions,
}

impl AppState {
    pub fn new(
        store: Store,
        sip: crate::sip::SipHandle,
        meetings: crate::meeting::Meetings,
        settings: Arc<Settings>,
        sealer: Arc<crate::secrets::Sealer>,
    ) -> Self {
        AppState {
            store,
            sip,
            meetings,
            settings,
            login_limiter: crate::limiter::Limiter::new(
                "login",
                crate::limiter::LimiterConfig::login(),
            ),
            sealer,
            credentials_revoked: Arc::new(tokio::sync::watch::Sender::new(0)),
            schedule_changed: Arc::new(tokio::sync::Notify::new()),
            mail_queued: Arc::new(tokio::sync::Notify::new()),
            // an office behind one address may bring many browsers; an anonymous flood
            // stops at the total
            browsers: crate::browser::Sessions::new(200, 5_000),
        }
    }

    /// Tells open event streams that some credential was revoked.
    pub fn note_credentials_revoked(&self) {
        self.credentials_revoked
            .send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conclave management API",
        description = "Tenants, users, rooms, meeting templates, API keys and the audit log. \
                       Errors are RFC 9457 problem+json documents.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "session", description = "Log in and out"),
        (name = "tenants", description = "Enterprises; nothing of one is visible to another"),
        (name = "users", description = "Accounts, SIP extensions"),
        (name = "rooms", description = "Persistent meeting rooms"),
        (name = "templates", description = "Reusable meeting schemes"),
        (name = "contacts", description = "Enterprise and personal address books"),
        (name = "directory", description = "The organisation tree, finding people, groups"),
        (name = "api-keys", description = "Keys for integrations"),
        (name = "audit", description = "Who did what, when, from where"),
        (name = "sip", description = "SIP registrations of the users' extensions, and trunks to phone numbers"),
        (name = "conferences", description = "Live meetings: roster and the chair's controls"),
        (name = "cluster", description = "A cluster's nodes; draining one for maintenance"),
        (name = "recordings", description = "Recorded meetings: the mix and a track per member, utterances, playback and download"),
        (name = "minutes", description = "Minutes of recordings: a line per utterance by speech recognition, edits, exports and search"),
        (name = "streams", description = "Live streams of meetings (HLS): scheduling, starting and stopping, and watching with a link and a password"),
        (name = "status", description = "What is happening now: meetings, calls, phones, load"),
        (name = "scheduling", description = "Meetings booked ahead, once or repeating; my meetings and their calendar feed"),
        (name = "join", description = "Browsers in meetings: join by number over WebRTC, then the roster and the member's own controls"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token from `login`, or an API key"))
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest(
        "/api/v1",
        OpenApiRouter::new()
            .merge(session::routes())
            .merge(tenants::routes())
            .merge(users::routes())
            .merge(rooms::routes())
            .merge(templates::routes())
            .merge(contacts::routes())
            .merge(departments::routes())
            .merge(directory::routes())
            .merge(directory_io::routes())
            .merge(groups::routes())
            .merge(api_keys::routes())
            .merge(audit::routes())
            .merge(registrations::routes())
            .merge(status::routes())
            .merge(cluster::routes())
            .merge(conferences::routes())
            .merge(history::routes())
            .merge(recordings::routes())
            .merge(minutes::routes())
            .merge(events::routes())
            .merge(webhooks::routes())
            .merge(trunks::routes())
            .merge(bookings::routes())
            .merge(join::routes())
            .merge(streams::routes())
            .merge(shared::routes())
            .merge(watch::routes()),
    )
}

/// Every error answer is problem+json, and every operation documents the errors that any
/// request can meet (malformed body, missing token, frozen account, internal error), so the
/// document tells the whole truth of what a client may receive.
fn document_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = || {
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.put,
        ];
        for op in ops.into_iter().flatten() {
            let mut common = vec![("500", "Internal error")];
            if op.security.is_some() {
                common.push(("401", "Missing, unknown, revoked or expired token or key"));
                common.push(("403", "Not allowed, or the account is frozen"));
            }
            if op.request_body.is_some() {
                common.push(("400", "Malformed JSON"));
                common.push(("413", "Body too large"));
                common.push(("415", "Not application/json"));
                common.push(("422", "A field was refused"));
            }
            let params = op.parameters.as_deref().unwrap_or_default();
            if params
                .iter()
                .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
            {
                common.push(("422", "A query parameter was refused"));
            }
            if params.iter().any(|p| p.name == "tenant_id") {
                common.push(("404", "No such tenant (or another tenant's)"));
            }
            if params
                .iter()
                .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
            {
                common.push(("404", "No such object (or it belongs to another tenant)"));
            }
            for (code, description) in common {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| {
                        RefOr::T(ResponseBuilder::new().description(description).build())
                    });
            }
            for (code, response) in op.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (code.as_str() >= "400", response) {
                    response.content.clear();
                    response
                        .content
                        .insert("application/problem+json".into(), problem());
                }
            }
        }
    }
}

fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut openapi) = api_routes().split_for_parts();
    document_errors(&mut openapi);
    openapi
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi_json() -> String {
    openapi().to_pretty_json().unwrap_or_default()
}

/// The name a request reached this server by (its `Host` without the port): it picks the
/// tenant whose SIP domain it is, for branding and for meeting numbers.
pub fn host_name(headers: &axum::http::HeaderMap) -> &str {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    // An IPv6 literal's brackets never match a domain.
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    if name.len() > 253 { "" } else { name }
}

/// The web console: the built single-page app, with `index.html` for every path it routes.
fn console(web_dir: &std::path::Path) -> Router<AppState> {
    let index = web_dir.join("index.html");
    if !index.exists() {
        tracing::warn!(dir = %web_dir.display(), "the web console is not built: run `npm --prefix web ci && npm --prefix web run build` (scripts/run.sh does)");
        return Router::new().fallback(|| async {
            axum::response::Html(
                "<h1>Conclave</h1><p>The web console is not built. Run <code>scripts/run.sh</code>, \
                 or <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>. \
                 The API is at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>",
            )
        });
    }
    let files = tower_http::services::ServeDir::new(web_dir)
        .fallback(tower_http::services::ServeFile::new(index));
    Router::new().fallback_service(files)
}

pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let openapi = Arc::new(openapi_json());
    let console = console(&state.settings.web_dir);
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = openapi.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
        }),
    )
    .nest("/scim/v2", crate::scim::routes())
    .merge(watch::files())
    .route("/healthz", get(healthz))
    .route("/metrics", get(metrics))
    .route("/api", get(api_not_found))
    .route(
        "/api/{*rest}",
        get(api_not_found)
            .post(api_not_found)
            .patch(api_not_found)
            .delete(api_not_found)
            .put(api_not_found),
    )
    .merge(console)
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        to_the_meetings_home,
    ))
    .layer(axum::middleware::from_fn(refuse_nul_in_path))
    .layer(axum::middleware::map_response(problem_for_bare_errors))
    .layer(axum::middleware::from_fn(count_requests))
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
        ApiError::internal("a request handler panicked").into_response()
    }))
    .layer(DefaultBodyLimit::max(1024 * 1024))
    .layer(axum::middleware::map_response(security_headers))
    .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
    .with_state(state)
}

/// In a cluster, a request about one live meeting (`/api/v1/conferences/<room>/…`) is
/// answered by the meeting's home node: sent there over NATS when that is another node (which
/// checks the caller itself), answered here otherwise.
async fn to_the_meetings_home(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(cluster) = state.meetings.cluster() else {
        return next.run(req).await;
    };
    if req
        .extensions()
        .get::<crate::cluster::bus::Forwarded>()
        .is_some()
    {
        return next.run(req).await;
    }
    if req.uri().path() == "/api/v1/join" || req.uri().path().starts_with("/api/v1/join/") {
        return browser_to_home(&state, cluster, req, next).await;
    }
    let room_id = req
        .uri()
        .path()
        .strip_prefix("/api/v1/conferences/")
        .and_then(|rest| rest.split('/').next())
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(str::to_owned);
    let Some(room_id) = room_id else {
        return next.run(req).await;
    };
    match cluster.remote_home(&room_id).await {
        Ok(Some(node)) => crate::cluster::bus::forward(cluster, &node.id, req).await,
        Ok(None) => next.run(req).await,
        Err(crate::cluster::NotHere::Unavailable(why)) => ApiError::unavailable(format!(
            "where this meeting is held cannot be told now: {why}"
        ))
        .into_response(),
        Err(crate::cluster::NotHere::Elsewhere { .. } | crate::cluster::NotHere::Draining) => {
            next.run(req).await
        }
    }
}

/// In a cluster, makes this node the room's home for a meeting the API starts or a browser
/// joins (on a single node, always so): 409 naming the node that holds it, 503 when that
/// cannot be told or this node drains.
pub(crate) async fn claim_home(
    state: &AppState,
    room: &conclave_store::model::Room,
    field: &str,
) -> ApiResult<()> {
    use crate::cluster::{NotHere, Placement};
    match state.meetings.claim(room, Placement::Here).await {
        Ok(()) => Ok(()),
        Err(NotHere::Elsewhere { node, .. }) => Err(ApiError::conflict(
            field,
            format!("this room's meeting is held on node {node}"),
        )),
        Err(NotHere::Unavailable(why)) => Err(ApiError::unavailable(format!(
            "where this room's meeting is held cannot be told now: {why}"
        ))),
        Err(NotHere::Draining) => Err(ApiError::unavailable(
            "this node is being drained for maintenance: use another",
        )),
    }
}

/// A browser's join goes to the home of the meeting it names (its body's `number`); its
/// next requests to the node its token names.
async fn browser_to_home(
    state: &AppState,
    cluster: &crate::cluster::Cluster,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path() == "/api/v1/join" {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
            return ApiError::bad_request("a join's body is at most 256 KiB").into_response();
        };
        let number = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["number"].as_str().map(|n| n.trim().to_owned()));
        let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let Some(number) = number.filter(|n| !n.is_empty() && n.len() <= 32) else {
            return next.run(req).await;
        };
        let room =
            crate::rooms::find_dialled(&state.store, &number, host_name(req.headers())).await;
        return match room {
            Some(room) => match cluster.remote_home(&room.id).await {
                Ok(Some(node)) => crate::cluster::bus::forward(cluster, &node.id, req).await,
                _ => next.run(req).await,
            },
            None => next.run(req).await,
        };
    }
    let node = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| t.split_once('~'))
        .map(|(node, _)| node.to_owned());
    match node {
        Some(node) if node != cluster.node_id() => {
            crate::cluster::bus::forward(cluster, &node, req).await
        }
        _ => next.run(req).await,
    }
}

/// No object's id or path holds a NUL (`%00`), and PostgreSQL cannot compare TEXT with one:
/// such a path is not found, before any handler sees it.
async fn refuse_nul_in_path(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().as_bytes();
    let nul = path
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if nul {
        return ApiError::not_found("resource at this path").into_response();
    }
    next.run(req).await
}

/// The span every HTTP log line carries: the request's method and URI, with the values of
/// secret query parameters (`access_token`, the events WebSocket's credential) replaced, so
/// no log holds a credential. Headers (Authorization) are not logged at all.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redacted_uri(req.uri()),
        version = ?req.version(),
    )
}

/// A URI for the logs: secret query values replaced by `REDACTED`.
pub fn redacted_uri(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|part| {
            let raw_name = part.split('=').next().unwrap_or("");
            let name: String = form_urlencoded::parse(raw_name.as_bytes())
                .next()
                .map(|(n, _)| n.to_lowercase())
                .unwrap_or_default();
            let secret = ["token", "key", "password", "secret"]
                .iter()
                .any(|s| name.contains(s));
            if secret {
                format!("{raw_name}=REDACTED")
            } else {
                part.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("resource at this path")
}

/// How long /healthz waits for the store's write probe.
const HEALTH_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Ready when the store can commit a write (a store that answers reads but cannot write — a
/// full disk — is not healthy), within a few seconds.
async fn healthz(State(state): State<AppState>) -> Response {
    let failure = match tokio::time::timeout(HEALTH_PROBE_TIMEOUT, state.store.probe_write()).await
    {
        Ok(Ok(())) => return (StatusCode::OK, "ok").into_response(),
        Ok(Err(err)) => format!("the database cannot write: {err}"),
        Err(_) => format!(
            "the database did not commit a write within {} s",
            HEALTH_PROBE_TIMEOUT.as_secs()
        ),
    };
    metrics::counter!("conclave_health_store_failures_total").increment(1);
    ApiError::unavailable(failure).into_response()
}

/// Prometheus metrics, for the scraper only: with `metrics_token` set, to a request bearing
/// it; without, to a loopback client that came through no proxy (a reverse proxy on the same
/// host would make every client look local).
async fn metrics(
    State(state): State<AppState>,
    extract::ClientAddr(source): extract::ClientAddr,
    headers: axum::http::HeaderMap,
) -> Response {
    let allowed = match &state.settings.metrics_token {
        Some(expected) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            // Digests compared, so the comparison's time tells nothing about the token.
            let digest = |t: &str| <sha2::Sha256 as sha2::Digest>::digest(t.as_bytes());
            if digest(given) != digest(expected) {
                let mut refused =
                    ApiError::unauthorized("/metrics needs the metrics token").into_response();
                refused.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
                return refused;
            }
            true
        }
        None => {
            let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
                .iter()
                .any(|h| headers.contains_key(*h));
            source.ip().is_loopback() && !proxied
        }
    };
    if !allowed {
        return ApiError::forbidden(
            "/metrics is served only to loopback clients; set metrics_token to scrape from elsewhere",
        )
        .into_response();
    }
    crate::telemetry::metrics().render().into_response()
}

/// The console's Content-Security-Policy: the Vite build loads only its own module scripts
/// and style sheets (no inline script or style element), talks to its own origin (fetch and
/// the events WebSocket), plays and draws recordings it fetched itself (blob: URLs: the API wants a
/// bearer token an `<audio src>` cannot send), and may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self' blob:; \
    media-src 'self' blob:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer, console and API alike. No HSTS: the HTTP listener has
/// no TLS of its own (a TLS-terminating proxy in front sets it).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// Errors raised outside our handlers (405, 413, …) still answer problem+json. SCIM's own
/// errors (`application/scim+json`, RFC 7644's error schema) are left as they are: identity
/// providers read `scimType` (e.g. `uniqueness` on a 409).
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"application/scim+json")
        });
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut err = ApiError::bad_request(reason.to_lowercase());
    err.status = status;
    err.slug = "http-error";
    err.title = reason;
    err.into_response()
}

async fn count_requests(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("conclave_http_requests_total", "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("conclave_http_request_seconds").record(started.elapsed().as_secs_f64());
    response
}

/// Query parameters with errors as problem+json naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // PostgreSQL cannot compare TEXT with a NUL: refuse it here, naming the parameter.
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::field(
                name.replace('\0', "\\u0000"),
                "must not contain NUL (U+0000)",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| {
                let field = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = match message.split('`').nth(1) {
                    Some(name) if message.starts_with("missing field") => name.to_owned(),
                    _ => field,
                };
                ApiError::field(field, message)
            })
    }
}

/// Paging of every list: `limit` (1–200, default 50) and the `cursor` from the previous page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// How many items at most (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// System administrators only: list another tenant's objects.
    pub tenant_id: Option<String>,
}

impl ListParams {
    pub fn limit(&self) -> ApiResult<i64> {
        page_limit(self.limit)
    }
    pub fn cursor(&self) -> &str {
        self.cursor.as_deref().unwrap_or("")
    }
    /// The tenant to list: the caller's own, or for a system administrator any existing one.
    pub async fn tenant(&self, conn: &mut Conn, caller: &Caller) -> ApiResult<String> {
        match &self.tenant_id {
            None => Ok(caller.tenant_id().to_owned()),
            Some(id) if caller.sees_tenant(id) => {
                repo::tenants::get(conn, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("tenant"))?;
                Ok(id.clone())
            }
            Some(_) => Err(ApiError::not_found("tenant")),
        }
    }
}

/// The `limit` of a list: 1–200, 50 when absent.
pub fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field("limit", "must be between 1 and 200")),
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> From<conclave_store::repo::Page<T>> for List<T> {
    fn from(page: conclave_store::repo::Page<T>) -> Self {
        List {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

/// What an audit event says about the action.
pub struct Audit<'a> {
    pub action: &'static str,
    pub tenant_id: &'a str,
    pub target_type: &'static str,
    pub target_id: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// Records an action in the audit log, in the caller's transaction.
/// A directory change (department, person, enterprise group, import, SCIM) also queues its
/// webhook deliveries here, in the same transaction; personal contacts and groups are
/// nobody else's business and queue nothing.
pub async fn audit(conn: &mut Conn, caller: &Caller, a: Audit<'_>) -> ApiResult<()> {
    if crate::webhooks::DIRECTORY_TARGETS.contains(&a.target_type)
        && a.detail["book"] != "personal"
        && !a.tenant_id.is_empty()
    {
        crate::webhooks::queue_directory_change(
            conn,
            a.tenant_id,
            &caller.user.username,
            a.action,
            a.target_type,
            a.target_id,
            &a.detail,
        )
        .await?;
    }
    write_audit(
        conn,
        Some(caller),
        &caller.user.username,
        caller.source,
        a,
        Outcome::Ok,
    )
    .await
}

pub async fn write_audit(
    conn: &mut Conn,
    caller: Option<&Caller>,
    actor_name: &str,
    source: std::net::SocketAddr,
    a: Audit<'_>,
    outcome: Outcome,
) -> ApiResult<()> {
    let mut detail = a.detail;
    if let (Some(caller), Some(map)) = (caller, detail.as_object_mut())
        && let extract::Credential::ApiKey { id } = &caller.credential
    {
        map.insert("api_key_id".into(), id.clone().into());
    }
    let event = AuditEvent {
        id: new_id(),
        tenant_id: (!a.tenant_id.is_empty()).then(|| a.tenant_id.to_owned()),
        actor_id: caller.map(|c| c.user.id.clone()),
        actor_name: actor_name.to_owned(),
        action: a.action.to_owned(),
        target_type: a.target_type.to_owned(),
        target_id: a.target_id.map(str::to_owned),
        outcome: outcome.as_str().to_owned(),
        source: source.ip().to_string(),
        detail,
        at: now_ms(),
    };
    repo::audit::insert(conn, &event).await?;
    Ok(())
}

/// Refuses an action: records the attempt in the audit log and answers 403.
pub async fn deny(state: &AppState, caller: &Caller, a: Audit<'_>, reason: &str) -> ApiError {
    let action = a.action;
    let mut conn = match state.store.conn().await {
        Ok(conn) => conn,
        Err(err) => return err.into(),
    };
    if let Err(err) = write_audit(
        &mut conn,
        Some(caller),
        &caller.user.username,
        caller.source,
        a,
        Outcome::Denied,
    )
    .await
    {
        tracing::warn!(?err, action, "could not record a denied action");
    }
    ApiError::forbidden(reason.to_owned())
}

/// Deserializes a field that may be absent (outer None), null (Some(None)) or set.
pub fn nullable<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::redacted_uri;

    #[test]
    fn secrets_in_query_strings_are_redacted() {
        let uri = "/api/v1/events?access_token=cs_secret123&x=1&api%5Fkey=ck_abc"
            .parse()
            .expect("uri");
        let shown = redacted_uri(&uri);
        assert_eq!(
            shown,
            "/api/v1/events?access_token=REDACTED&x=1&api%5Fkey=REDACTED"
        );
        let plain = "/api/v1/users?limit=5".parse().expect("uri");
        assert_eq!(redacted_uri(&plain), "/api/v1/users?limit=5");
    }
}
