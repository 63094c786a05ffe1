//! The cluster as operators see it (system administrators): its nodes, how loaded, whether
//! they take rooms; draining a node for maintenance (docs/cluster.md).

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, Problem};
use super::{AppState, Audit, audit};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use conclave_store::{now_ms, repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_cluster))
        .routes(routes!(drain_node))
}

/// A node as the cluster sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// Where its rooms' calls go.
    pub sip_uri: String,
    pub http_url: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Its heartbeat is recent.
    pub living: bool,
    /// Members on its busiest media worker.
    pub load: i64,
    /// Takes no new rooms.
    pub draining: bool,
    /// Rooms whose home it is now.
    pub rooms: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// False on a single node (then `node` is null and `nodes` empty).
    pub clustered: bool,
    /// The node that answered.
    pub node: Option<String>,
    pub nodes: Vec<NodeView>,
}

fn system_admin(caller: &Caller) -> ApiResult<()> {
    if caller.is_system_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the cluster is for system administrators",
        ))
    }
}

async fn view(state: &AppState) -> ApiResult<ClusterView> {
    let Some(cluster) = state.meetings.cluster() else {
        return Ok(ClusterView {
            clustered: false,
            node: None,
            nodes: Vec::new(),
        });
    };
    let mut conn = state.store.conn().await?;
    let now = now_ms();
    let homes = repo::cluster::live_homes_all(&mut conn, now).await?;
    let nodes = repo::cluster::nodes(&mut conn)
        .await?
        .into_iter()
        .map(|n| NodeView {
            living: n.heartbeat_at > now - crate::cluster::DEAD_AFTER.as_millis() as i64,
            rooms: homes.iter().filter(|h| h.node_id == n.id).count(),
            id: n.id,
            sip_uri: n.sip_uri,
            http_url: n.http_url,
            started_at: n.started_at,
            heartbeat_at: n.heartbeat_at,
            load: n.load,
            draining: n.draining,
        })
        .collect();
    Ok(ClusterView {
        clustered: true,
        node: Some(cluster.node_id().to_owned()),
        nodes,
    })
}

/// The cluster's nodes: alive, loaded, draining, how many rooms each holds.
#[utoipa::path(get, path = "/cluster", operation_id = "getCluster", tag = "cluster",
    security(("bearer" = [])),
    responses((status = 200, body = ClusterView), (status = 403, body = Problem)))]
async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ClusterView>> {
    system_admin(&caller)?;
    Ok(Json(view(&state).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    /// True: the node takes no new rooms (its meetings go on until they end); false: it
    /// takes rooms again.
    pub draining: bool,
    /// Move its meetings to the other nodes now: they carry them on (their dial-out members
    /// are called again; callers who dialled in call again).
    #[serde(default)]
    pub move_meetings: bool,
}

/// Drains a node for maintenance (or ends its draining).
#[utoipa::path(post, path = "/cluster/nodes/{node_id}/drain", operation_id = "drainNode",
    tag = "cluster", security(("bearer" = [])), params(("node_id" = String, Path)),
    request_body = Drain,
    responses((status = 200, body = ClusterView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn drain_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(node_id): Path<String>,
    request: Request,
) -> Response {
    match drain(state, caller, node_id, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn drain(
    state: AppState,
    caller: Caller,
    node_id: String,
    request: Request,
) -> ApiResult<Response> {
    system_admin(&caller)?;
    let Some(cluster) = state.meetings.cluster().cloned() else {
        return Err(ApiError::conflict(
            "node_id",
            "this server is not a cluster's node",
        ));
    };
    if node_id != cluster.node_id()
        && request
            .extensions()
            .get::<crate::cluster::bus::Forwarded>()
            .is_none()
    {
        // the node itself drains (and moves its meetings): sent there
        let mut conn = state.store.conn().await?;
        if !repo::cluster::nodes(&mut conn)
            .await?
            .iter()
            .any(|n| n.id == node_id)
        {
            return Err(ApiError::not_found("node"));
        }
        return Ok(crate::cluster::bus::forward(&cluster, &node_id, request).await);
    }
    let body = axum::body::to_bytes(request.into_body(), 4096)
        .await
        .map_err(|_| ApiError::bad_request("the body is too large"))?;
    let Drain {
        draining,
        move_meetings,
    } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    let mut conn = state.store.conn().await?;
    repo::cluster::set_draining(&mut conn, &node_id, draining).await?;
    cluster.set_draining(draining);
    let moved = if move_meetings {
        cluster
            .move_meetings(&state.meetings)
            .await
            .map_err(ApiError::internal)?
    } else {
        0
    };
    audit(
        &mut conn,
        &caller,
        Audit {
            action: "drainNode",
            tenant_id: &caller.user.tenant_id,
            target_type: "node",
            target_id: Some(&node_id),
            detail: serde_json::json!({ "draining": draining, "moved": moved }),
        },
    )
    .await?;
    drop(conn);
    Ok(Json(view(&state).await?).into_response())
}
