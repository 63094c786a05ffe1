//! A cluster (docs/cluster.md): nodes sharing PostgreSQL, talking over NATS. Each live room
//! has one home — the node whose meeting actor owns it — held by a lease in `room_homes`
//! and changed only by raising its epoch (compare-and-swap, `repo::cluster::claim`):
//!
//! - a node claims a room before a meeting starts there (a call, a one-click start, a
//!   browser); a room another node holds is not started here (SIP answers 302 to the home,
//!   the API forwards to it: [`bus`]);
//! - every half second a node renews its leases; a room whose epoch it no longer holds is
//!   dropped at once (fencing), and so is every room once its lease ran out unrenewed;
//! - a room whose lease ran out with a meeting going on is taken over by a surviving node,
//!   which carries the meeting on from the state its home saved ([`takeover`]).
//!
//! A single node has no `Cluster` and none of this runs.

pub mod bus;
pub mod cascade;
mod heartbeat;
mod takeover;

pub use takeover::HomeState;
pub(crate) use takeover::carry_on;

use crate::config::ClusterSettings;
use anyhow::{Context, Result};
use conclave_store::model::{ClusterNode, Room, RoomHome};
use conclave_store::repo::cluster::Claim;
use conclave_store::{Store, now_ms, repo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a home holds a room without renewing it: a stopped node's rooms are taken over
/// this long after its last renewal (plus a tick).
pub const LEASE: Duration = Duration::from_secs(3);
/// How often leases are renewed, lost rooms dropped and orphans looked for.
pub const TICK: Duration = Duration::from_millis(500);
/// A node whose heartbeat is older than this is not counted among the living.
pub const DEAD_AFTER: Duration = Duration::from_secs(3);

/// Why a room is not started here.
#[derive(Debug, Clone)]
pub enum NotHere {
    /// Another node is its home: its SIP URI and HTTP URL.
    Elsewhere { node: String, sip_uri: String },
    /// The database could not say (a meeting is not started blind).
    Unavailable(String),
    /// This node drains: no new room starts here.
    Draining,
}

/// Where a new room's home may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A call: on another node when this one drains or is much busier (the caller is sent
    /// there with a 302).
    Balanced,
    /// An operator's start or a browser: here (unless this node drains).
    Here,
}

/// A room this node holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    since: Instant,
}

/// This node's part in the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    sip_uri: String,
    /// Members one room may have here before callers cascade to another node (0: any).
    room_members: usize,
    store: Store,
    nats: async_nats::Client,
    held: Mutex<HashMap<String, Held>>,
    /// When the leases were last renewed: past `LEASE`, every room is dropped.
    renewed: Mutex<Instant>,
    /// What is needed to carry a meeting on (set once the server is up).
    parts: OnceLock<takeover::Parts>,
    /// Claims and releases one at a time: a release written after a new claim of the same
    /// room would take the room from its new meeting.
    claims: tokio::sync::Mutex<()>,
    /// A meeting here changed (an invitation, the lock, the recording): its state is saved
    /// now rather than at the next tick.
    changed: tokio::sync::Notify,
    /// Takes no new rooms (set by the operator, seen with each heartbeat): OPTIONS are
    /// answered 503 (Kamailio's dispatcher stops choosing this node) and a call for a room
    /// without a home is sent to another node.
    draining: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// Joins the cluster: connects to NATS, registers the node, and gives up whatever this
    /// node held before a restart (the others take those meetings on at once).
    pub async fn join(
        settings: &ClusterSettings,
        store: Store,
        sip_uri: String,
        http_url: String,
    ) -> Result<Cluster> {
        let nats = async_nats::ConnectOptions::new()
            .name(format!("conclave-{}", settings.node_id))
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(bus::FORWARD_TIMEOUT))
            .connect(settings.nats_url.as_str())
            .await
            .with_context(|| format!("cluster_nats: cannot connect to {}", settings.nats_url))?;
        let now = now_ms();
        let mut conn = store.conn().await?;
        repo::cluster::register(
            &mut conn,
            &ClusterNode {
                id: settings.node_id.clone(),
                sip_uri: sip_uri.clone(),
                http_url,
                started_at: now,
                heartbeat_at: now,
                load: 0,
                draining: false,
            },
        )
        .await
        .context("registering the node")?;
        let orphaned = repo::cluster::abandon_node(&mut conn, &settings.node_id, now).await?;
        if orphaned > 0 {
            tracing::warn!(
                rooms = orphaned,
                "rooms this node held before it restarted are left to the others"
            );
        }
        tracing::info!(node = settings.node_id, sip_uri, "joined the cluster");
        Ok(Cluster {
            inner: Arc::new(Inner {
                node_id: settings.node_id.clone(),
                sip_uri,
                room_members: settings.room_members,
                store,
                nats,
                held: Mutex::default(),
                renewed: Mutex::new(Instant::now()),
                parts: OnceLock::new(),
                claims: tokio::sync::Mutex::new(()),
                changed: tokio::sync::Notify::new(),
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Starts the heartbeat, the takeovers and the bus, once the server is up.
    pub fn run(&self, state: crate::api::AppState, router: axum::Router) {
        let _ = self.inner.parts.set(takeover::Parts {
            state: state.clone(),
        });
        tokio::spawn(heartbeat::run(self.clone(), state.meetings.clone()));
        bus::serve(
            self.clone(),
            state.meetings.clone(),
            state.sip.clone(),
            router,
        );
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node holds the room (a meeting may live here).
    pub fn holds(&self, room_id: &str) -> bool {
        self.held().contains_key(room_id)
    }

    /// Makes this node the room's home unless another node is; a room whose home stopped
    /// with a meeting going on comes with that home's saved state (to be carried on).
    pub async fn claim(
        &self,
        room: &Room,
        placement: Placement,
    ) -> Result<Option<RoomHome>, NotHere> {
        if self.holds(&room.id) {
            return Ok(None);
        }
        let _one = self.inner.claims.lock().await;
        if self.holds(&room.id) {
            return Ok(None);
        }
        let unavailable = |e: conclave_store::StoreError| NotHere::Unavailable(e.to_string());
        let mut conn = self.inner.store.conn().await.map_err(unavailable)?;
        let now = now_ms();
        let home = repo::cluster::home(&mut conn, &room.id)
            .await
            .map_err(unavailable)?
            .filter(|h| h.lease_until > now);
        if home.is_none() {
            // a new home: not on a draining node, and not on one much busier than another
            let nodes = repo::cluster::nodes(&mut conn).await.map_err(unavailable)?;
            let elsewhere = |node: &ClusterNode| NotHere::Elsewhere {
                node: node.id.clone(),
                sip_uri: node.sip_uri.clone(),
            };
            if self.draining() && placement == Placement::Here {
                return Err(NotHere::Draining);
            }
            if self.draining() {
                let nodes = living(nodes, now);
                return Err(match preferred(&room.number, &nodes) {
                    Some(node) => elsewhere(node),
                    None => NotHere::Unavailable(
                        "this node is draining, and no other takes rooms".into(),
                    ),
                });
            }
            if placement == Placement::Balanced
                && let Some(node) = lighter(&self.inner.node_id, &living(nodes, now))
            {
                metrics::counter!("conclave_cluster_placed_elsewhere_total").increment(1);
                return Err(elsewhere(node));
            }
        }
        let claim = repo::cluster::claim(
            &mut conn,
            &room.id,
            &room.tenant_id,
            &room.number,
            &self.inner.node_id,
            now,
            now + LEASE.as_millis() as i64,
        )
        .await
        .map_err(unavailable)?;
        match claim {
            Claim::Won { epoch, inherited } => {
                self.held().insert(
                    room.id.clone(),
                    Held {
                        epoch,
                        since: Instant::now(),
                    },
                );
                metrics::counter!("conclave_cluster_claims_total").increment(1);
                tracing::info!(room = room.number, epoch, "this node is the room's home");
                Ok(inherited)
            }
            Claim::Elsewhere(home) => {
                let node = repo::cluster::nodes(&mut conn)
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .find(|n| n.id == home.node_id);
                match node {
                    Some(node) => Err(NotHere::Elsewhere {
                        node: node.id,
                        sip_uri: node.sip_uri,
                    }),
                    None => Err(NotHere::Unavailable(format!(
                        "room {} is held by an unknown node {}",
                        room.number, home.node_id
                    ))),
                }
            }
        }
    }

    /// A meeting of this node changed: what is saved of it is brought up to date.
    pub fn changed(&self) {
        self.inner.changed.notify_one();
    }

    /// The meeting's record, and what another node needs to carry it on, saved with its home
    /// (only while this node still holds it).
    pub async fn save(&self, room_id: &str, meeting_id: &str, state: &str) -> bool {
        let Some(held) = self.held().get(room_id).copied() else {
            return false;
        };
        let Ok(mut conn) = self.inner.store.conn().await else {
            return false;
        };
        repo::cluster::set_state(
            &mut conn,
            room_id,
            &self.inner.node_id,
            held.epoch,
            meeting_id,
            state,
            now_ms(),
        )
        .await
        .unwrap_or(false)
    }

    /// The room's meeting has ended here: it has no home until someone comes again.
    pub fn release(&self, room_id: &str) {
        let Some(held) = self.held().remove(room_id) else {
            return;
        };
        let this = self.clone();
        let room_id = room_id.to_owned();
        tokio::spawn(async move {
            let _one = this.inner.claims.lock().await;
            if this.holds(&room_id) {
                // claimed again meanwhile: the home goes on
                return;
            }
            let released = match this.inner.store.conn().await {
                Ok(mut conn) => repo::cluster::release(
                    &mut conn,
                    &room_id,
                    &this.inner.node_id,
                    held.epoch,
                    now_ms(),
                )
                .await
                .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(err) = released {
                // its lease runs out by itself
                tracing::warn!(room_id, err, "a room's home was not released");
            }
        });
    }

    /// The node that is the room's home now, when it is another one.
    pub async fn remote_home(&self, room_id: &str) -> Result<Option<ClusterNode>, NotHere> {
        if self.holds(room_id) {
            return Ok(None);
        }
        let unavailable = |e: conclave_store::StoreError| NotHere::Unavailable(e.to_string());
        let mut conn = self.inner.store.conn().await.map_err(unavailable)?;
        let Some(home) = repo::cluster::home(&mut conn, room_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        if home.node_id == self.inner.node_id || home.lease_until <= now_ms() {
            return Ok(None);
        }
        Ok(repo::cluster::nodes(&mut conn)
            .await
            .map_err(unavailable)?
            .into_iter()
            .find(|n| n.id == home.node_id))
    }

    pub fn draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_draining(&self, draining: bool) {
        let was = self
            .inner
            .draining
            .swap(draining, std::sync::atomic::Ordering::Relaxed);
        if was != draining {
            tracing::warn!(draining, "this node's draining changed");
        }
    }

    /// Moves every meeting of this node to the others now (maintenance): their homes are
    /// left as a stopped node's are, and the meetings here end; the others carry them on.
    pub async fn move_meetings(&self, meetings: &crate::meeting::Meetings) -> Result<usize> {
        let _one = self.inner.claims.lock().await;
        let rooms: Vec<String> = self.held().drain().map(|(room, _)| room).collect();
        let mut conn = self.inner.store.conn().await?;
        repo::cluster::abandon_node(&mut conn, &self.inner.node_id, now_ms()).await?;
        for room in &rooms {
            meetings.fence(room);
        }
        tracing::warn!(rooms = rooms.len(), "meetings moved to the other nodes");
        Ok(rooms.len())
    }

    /// This node's SIP URI with a user: where a call for `number` goes when this is its home.
    pub fn sip_uri(&self) -> &str {
        &self.inner.sip_uri
    }
}

/// The nodes that beat and take rooms.
pub fn living(nodes: Vec<ClusterNode>, now: i64) -> Vec<ClusterNode> {
    nodes
        .into_iter()
        .filter(|n| n.heartbeat_at > now - DEAD_AFTER.as_millis() as i64 && !n.draining)
        .collect()
}

/// How much busier (members on the busiest media worker) this node may be than the least
/// loaded one before a new room is placed there instead.
pub const BALANCE_SLACK: i64 = 50;

/// A living node much less loaded than `me`, where a new room should go instead.
pub fn lighter<'a>(me: &str, nodes: &'a [ClusterNode]) -> Option<&'a ClusterNode> {
    let mine = nodes.iter().find(|n| n.id == me)?.load;
    nodes
        .iter()
        .filter(|n| n.id != me)
        .min_by_key(|n| (n.load, n.id.clone()))
        .filter(|n| n.load + BALANCE_SLACK < mine)
}

/// `sip:host:port` with the dialled number as its user.
pub fn contact_for(sip_uri: &str, number: &str) -> String {
    let rest = sip_uri.strip_prefix("sip:").unwrap_or(sip_uri);
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("<sip:{number}@{rest}>")
}

/// Rendezvous hashing: the living node that should take `key` (the same answer on every
/// node that sees the same nodes).
pub fn preferred<'a>(key: &str, nodes: &'a [ClusterNode]) -> Option<&'a ClusterNode> {
    use std::hash::{Hash, Hasher};
    nodes.iter().max_by_key(|n| {
        // FNV-1a: stable across builds, unlike the std hasher's seed
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        key.hash(&mut h);
        n.id.hash(&mut h);
        (h.finish(), n.id.clone())
    })
}

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> ClusterNode {
        ClusterNode {
            id: id.into(),
            sip_uri: format!("sip:{id}"),
            http_url: String::new(),
            started_at: 0,
            heartbeat_at: 0,
            load: 0,
            draining: false,
        }
    }

    #[test]
    fn a_room_prefers_the_same_node_whatever_the_order() {
        let a = [node("a"), node("b"), node("c")];
        let b = [node("c"), node("a"), node("b")];
        for room in ["8001", "8002", "8003", "9999"] {
            assert_eq!(
                preferred(room, &a).map(|n| &n.id),
                preferred(room, &b).map(|n| &n.id)
            );
        }
        // and rooms spread
        let homes: std::collections::HashSet<_> = (0..60)
            .filter_map(|r| preferred(&format!("{r}"), &a).map(|n| n.id.clone()))
            .collect();
        assert_eq!(homes.len(), 3);
    }

    #[test]
    fn a_new_room_goes_to_a_much_lighter_node() {
        let loaded = |id: &str, load: i64| ClusterNode { load, ..node(id) };
        let nodes = [loaded("a", 120), loaded("b", 60), loaded("c", 30)];
        assert_eq!(lighter("a", &nodes).map(|n| n.id.as_str()), Some("c"));
        // within the slack: stays
        assert_eq!(lighter("b", &nodes), None);
        assert_eq!(lighter("c", &nodes), None);
        // a node not among the living places nothing
        assert_eq!(lighter("z", &nodes), None);
    }

    #[test]
    fn the_contact_names_the_room() {
        assert_eq!(
            contact_for("sip:127.0.0.1:5071", "8401"),
            "<sip:8401@127.0.0.1:5071>"
        );
        assert_eq!(
            contact_for("sip:node@10.0.0.2", "8401"),
            "<sip:8401@10.0.0.2>"
        );
    }
}
