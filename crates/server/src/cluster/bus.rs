//! NATS between the nodes: a request about a meeting goes to the meeting's home and is
//! answered there (the home checks the caller itself), and every node's meeting events reach
//! every node's WebSocket clients.
//!
//! Subjects: `conclave.http.<node>` (a forwarded API request, request/reply) and
//! `conclave.events` (a meeting event, with the node it happened on).

use super::Cluster;
use crate::api::problem::ApiError;
use crate::meeting::{LiveChange, LiveEvent, Meetings};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// How long the home has to answer a forwarded request.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// A forwarded request's body and answer are small (meeting control): bounded well under
/// NATS' 1 MB message.
const MAX_BODY: usize = 256 * 1024;
/// Forwarded requests a node serves at once; more wait in NATS' buffer.
const SERVING: usize = 64;
const EVENTS: &str = "conclave.events";
/// Where an extension is registered: asked of every node, answered by the one that has it.
const BINDINGS: &str = "conclave.binding";
/// How long a node waits for another to say it has an extension's registration.
const BINDING_WAIT: Duration = Duration::from_millis(500);

#[derive(Serialize, Deserialize)]
struct BindingAsked {
    node: String,
    tenant_id: String,
    extension: String,
}

#[derive(Serialize, Deserialize)]
struct BindingFound {
    contact: String,
    source: SocketAddr,
}

/// The contact of an extension registered (over UDP) on another node, and where its
/// registration came from: the node that has it answers.
pub async fn find_binding(
    cluster: &Cluster,
    tenant_id: &str,
    extension: &str,
) -> Option<(String, SocketAddr)> {
    let asked = serde_json::to_vec(&BindingAsked {
        node: cluster.node_id().to_owned(),
        tenant_id: tenant_id.to_owned(),
        extension: extension.to_owned(),
    })
    .ok()?;
    let reply = tokio::time::timeout(BINDING_WAIT, cluster.nats().request(BINDINGS, asked.into()))
        .await
        .ok()?
        .ok()?;
    let found: BindingFound = serde_json::from_slice(&reply.payload).ok()?;
    Some((found.contact, found.source))
}

fn subject(node: &str) -> String {
    format!("conclave.http.{node}")
}

/// Marks a request that came from another node: it is answered here, never sent on.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

#[derive(Serialize, Deserialize)]
struct Envelope {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    client: SocketAddr,
    body: String,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Headers that belong to one connection, not to the request.
fn end_to_end(name: &str) -> bool {
    !matches!(
        name,
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "upgrade"
    )
}

/// Sends the request to `node` and returns its answer (504 when it does not answer in time,
/// 503 when nobody is there).
pub async fn forward(cluster: &Cluster, node: &str, request: Request) -> Response {
    let started = Instant::now();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError::bad_request("a request to another node carries at most 256 KiB")
            .into_response();
    };
    let envelope = Envelope {
        method: parts.method.to_string(),
        // inside a nested router the path has lost its prefix: the original is sent
        uri: parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.to_string(), |o| o.0.to_string()),
        headers: parts
            .headers
            .iter()
            .filter(|(n, _)| end_to_end(n.as_str()))
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        client,
        body: STANDARD.encode(&body),
    };
    let Ok(payload) = serde_json::to_vec(&envelope) else {
        return ApiError::internal("a forwarded request could not be encoded").into_response();
    };
    let reply = tokio::time::timeout(
        FORWARD_TIMEOUT,
        cluster.nats().request(subject(node), payload.into()),
    )
    .await;
    let outcome = match reply {
        Err(_) => Err(ApiError::gateway_timeout(format!(
            "node {node}, where the meeting is, did not answer within {} s",
            FORWARD_TIMEOUT.as_secs()
        ))),
        Ok(Err(err)) => Err(match err.kind() {
            async_nats::RequestErrorKind::TimedOut => ApiError::gateway_timeout(format!(
                "node {node}, where the meeting is, did not answer within {} s",
                FORWARD_TIMEOUT.as_secs()
            )),
            _ => ApiError::unavailable(format!(
                "node {node}, where the meeting is, cannot be reached: {err}"
            )),
        }),
        Ok(Ok(message)) => serde_json::from_slice::<Answer>(&message.payload)
            .map_err(|e| ApiError::internal(format!("node {node} answered garbage: {e}"))),
    };
    metrics::histogram!("conclave_cluster_forward_seconds").record(started.elapsed().as_secs_f64());
    let answer = match outcome {
        Ok(answer) => answer,
        Err(err) => {
            metrics::counter!("conclave_cluster_forward_failures_total").increment(1);
            return err.into_response();
        }
    };
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    let body = STANDARD.decode(answer.body).unwrap_or_default();
    response
        .header("x-conclave-node", node)
        .body(Body::from(body))
        .unwrap_or_else(|_| ApiError::internal("a forwarded answer").into_response())
}

/// A GET of this API on `node`, as the caller (their `Authorization`): the JSON it answers
/// 200 with, or nothing.
pub async fn fetch_json(
    cluster: &Cluster,
    node: &str,
    path: String,
    authorization: Option<&axum::http::HeaderValue>,
    client: SocketAddr,
) -> Option<serde_json::Value> {
    let mut request = axum::http::Request::builder().method("GET").uri(path);
    if let Some(value) = authorization {
        request = request.header(axum::http::header::AUTHORIZATION, value);
    }
    let mut request = request.body(Body::empty()).ok()?;
    request.extensions_mut().insert(ConnectInfo(client));
    let response = forward(cluster, node, request).await;
    if response.status() != axum::http::StatusCode::OK {
        return None;
    }
    let body = axum::body::to_bytes(response.into_body(), MAX_BODY)
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}

/// The live meetings of a tenant that other nodes hold, each as its home shows it to the
/// caller (their `Authorization`).
pub async fn remote_meetings(
    cluster: &Cluster,
    tenant_id: &str,
    authorization: Option<&axum::http::HeaderValue>,
    client: SocketAddr,
) -> conclave_store::Result<Vec<serde_json::Value>> {
    let mut conn = cluster.store().conn().await?;
    let homes =
        conclave_store::repo::cluster::live_homes(&mut conn, tenant_id, conclave_store::now_ms())
            .await?;
    drop(conn);
    let asked = homes
        .iter()
        .filter(|h| h.node_id != cluster.node_id())
        .map(|h| {
            fetch_json(
                cluster,
                &h.node_id,
                format!("/api/v1/conferences/{}", h.room_id),
                authorization,
                client,
            )
        });
    Ok(futures::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect())
}

/// Answers requests forwarded to this node, and carries meeting events both ways.
pub(super) fn serve(
    cluster: Cluster,
    meetings: Meetings,
    sip: crate::sip::SipHandle,
    router: axum::Router,
) {
    let nats = cluster.nats().clone();
    let node = cluster.node_id().to_owned();
    let http = subject(&node);
    tokio::spawn({
        let nats = nats.clone();
        async move {
            let mut requests = match nats.subscribe(http.clone()).await {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(%err, "cannot take forwarded requests");
                    return;
                }
            };
            let permits = Arc::new(tokio::sync::Semaphore::new(SERVING));
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply.clone() else {
                    continue;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (nats, router) = (nats.clone(), router.clone());
                tokio::spawn(async move {
                    let answer = answer(router, &message.payload).await;
                    if let Ok(bytes) = serde_json::to_vec(&answer)
                        && let Err(err) = nats.publish(reply, bytes.into()).await
                    {
                        tracing::warn!(%err, "a forwarded request's answer was not sent");
                    }
                    drop(permit);
                });
            }
        }
    });
    // the registrations this node has, for the others' calls
    tokio::spawn({
        let (nats, node) = (nats.clone(), node.clone());
        async move {
            let mut asked = match nats.subscribe(BINDINGS).await {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(%err, "cannot answer for this node's registrations");
                    return;
                }
            };
            while let Some(message) = asked.next().await {
                let (Some(reply), Ok(question)) = (
                    message.reply.clone(),
                    serde_json::from_slice::<BindingAsked>(&message.payload),
                ) else {
                    continue;
                };
                if question.node == node {
                    continue;
                }
                let Ok(bindings) = sip
                    .bindings(&question.tenant_id, vec![question.extension])
                    .await
                else {
                    continue;
                };
                let found = bindings.into_iter().flatten().find_map(|b| {
                    (b.transport == "UDP").then_some(())?;
                    Some(BindingFound {
                        contact: b.contact.split_once('<')?.1.split('>').next()?.to_owned(),
                        source: b.source.parse().ok()?,
                    })
                });
                if let Some(found) = found
                    && let Ok(bytes) = serde_json::to_vec(&found)
                {
                    let _ = nats.publish(reply, bytes.into()).await;
                }
            }
        }
    });
    // this node's events out
    tokio::spawn({
        let (nats, node, meetings) = (nats.clone(), node.clone(), meetings.clone());
        async move {
            let mut events = meetings.subscribe();
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        metrics::counter!("conclave_cluster_events_lost_total").increment(n);
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if matches!(event.event, LiveChange::Relayed(_)) {
                    continue;
                }
                let Ok(event_json) = serde_json::to_value(&event.event) else {
                    continue;
                };
                let wire = Relay {
                    node: node.clone(),
                    tenant_id: event.tenant_id,
                    room_id: event.room_id,
                    room_number: event.room_number,
                    actor: event.actor,
                    at: event.at,
                    event: event_json,
                };
                if let Ok(bytes) = serde_json::to_vec(&wire)
                    && nats.publish(EVENTS, bytes.into()).await.is_err()
                {
                    metrics::counter!("conclave_cluster_events_lost_total").increment(1);
                }
            }
        }
    });
    // the others' events in
    tokio::spawn(async move {
        let mut incoming = match nats.subscribe(EVENTS).await {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(%err, "cannot take the other nodes' events");
                return;
            }
        };
        while let Some(message) = incoming.next().await {
            let Ok(relay) = serde_json::from_slice::<Relay>(&message.payload) else {
                continue;
            };
            if relay.node == node {
                continue;
            }
            meetings.relay(LiveEvent {
                tenant_id: relay.tenant_id,
                room_id: relay.room_id,
                room_number: relay.room_number,
                actor: relay.actor,
                at: relay.at,
                event: LiveChange::Relayed(relay.event),
            });
        }
    });
}

/// A meeting event as it travels between nodes.
#[derive(Serialize, Deserialize)]
struct Relay {
    node: String,
    tenant_id: String,
    room_id: String,
    room_number: String,
    actor: String,
    at: i64,
    event: serde_json::Value,
}

/// Runs a forwarded request through this node's own API.
async fn answer(router: axum::Router, payload: &Bytes) -> Answer {
    let failed = |status: u16, detail: &str| Answer {
        status,
        headers: vec![("content-type".into(), "application/problem+json".into())],
        body: STANDARD.encode(
            serde_json::json!({ "type": "/problems/internal", "title": "Forwarding failed",
                "status": status, "detail": detail })
            .to_string(),
        ),
    };
    let Ok(envelope) = serde_json::from_slice::<Envelope>(payload) else {
        return failed(400, "a forwarded request that cannot be read");
    };
    let Ok(body) = STANDARD.decode(&envelope.body) else {
        return failed(400, "a forwarded request's body that cannot be read");
    };
    let mut request = axum::http::Request::builder()
        .method(envelope.method.as_str())
        .uri(envelope.uri.as_str());
    for (name, value) in &envelope.headers {
        request = request.header(name, value);
    }
    let Ok(mut request) = request.body(Body::from(body)) else {
        return failed(400, "a forwarded request that is not HTTP");
    };
    request
        .extensions_mut()
        .insert(ConnectInfo(envelope.client));
    request.extensions_mut().insert(Forwarded);
    let Ok(response) = router.oneshot(request).await;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(n, _)| end_to_end(n.as_str()))
        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
        .collect();
    match axum::body::to_bytes(response.into_body(), MAX_BODY).await {
        Ok(body) => Answer {
            status,
            headers,
            body: STANDARD.encode(&body),
        },
        Err(_) => failed(502, "the answer was larger than 256 KiB"),
    }
}
