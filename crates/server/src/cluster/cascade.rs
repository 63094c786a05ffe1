//! Rooms larger than a node (docs/cluster.md). With `--node-room-members N`, a room's home
//! takes N callers; the next is answered 302 to another node with `;conclave-cascade`. That
//! node runs a **cascade** of the room: a meeting of its own that mixes its callers and calls
//! the home as one member (the link). The home hears the cascade's callers through the link,
//! and the link hears the home's mix minus itself — which the cascade mixes for its callers:
//! everyone hears everyone, with no new media code. The home stays the meeting's authority
//! (its roster shows the link as one member); a cascade ends with its last caller or its link.

use super::{Cluster, living, preferred};
use crate::meeting::Meetings;
use crate::sip::{CASCADE_PARAM, Callee};
use conclave_conference::Role;
use conclave_store::model::Room;
use conclave_store::{now_ms, repo};
use std::net::SocketAddr;

/// How long a link's proof holds (a captured one is worthless after this).
const PROOF_MS: i64 = 60_000;

/// Where a caller beyond the room's size on this node (its home) goes: the `Contact` of a
/// 302 to the cascade node; `None` while there is room here, or no other node takes rooms.
pub async fn overflow(meetings: &Meetings, room: &Room) -> Option<String> {
    let cluster = meetings.cluster()?;
    let limit = cluster.inner.room_members;
    if limit == 0 {
        return None;
    }
    let members = meetings
        .snapshot(&room.id)
        .await
        .map_or(0, |l| l.members.len());
    if members < limit {
        return None;
    }
    let mut conn = cluster.store().conn().await.ok()?;
    let now = now_ms();
    let others: Vec<_> = living(repo::cluster::nodes(&mut conn).await.ok()?, now)
        .into_iter()
        .filter(|n| n.id != cluster.node_id())
        .collect();
    let node = preferred(&room.number, &others)?;
    metrics::counter!("conclave_cluster_cascaded_calls_total").increment(1);
    tracing::info!(
        room = room.number,
        to = node.id,
        members,
        "a caller joins through a cascade"
    );
    let contact = super::contact_for(&node.sip_uri, &room.number);
    Some(format!(
        "{};{CASCADE_PARAM}>",
        contact.trim_end_matches('>')
    ))
}

/// Calls the room's home from this node's cascade of it: the link.
pub async fn link(cluster: &Cluster, meetings: &Meetings, room: &Room, home_sip_uri: &str) {
    let Some(parts) = cluster.inner.parts.get() else {
        return;
    };
    let host = home_sip_uri.strip_prefix("sip:").unwrap_or(home_sip_uri);
    let host = host.split_once('@').map_or(host, |(_, h)| h);
    let Ok(dest) = host.parse::<SocketAddr>() else {
        tracing::warn!(home_sip_uri, "a cascade's home is not an address:port");
        return;
    };
    let token = parts
        .state
        .sealer
        .seal(&format!("{} {}", room.id, now_ms() + PROOF_MS));
    let name = format!("Cascade from {}", cluster.node_id());
    let callee = Callee::Node {
        dest,
        number: room.number.clone(),
        token,
    };
    let invitation = meetings
        .invite(
            &room.id,
            name.clone(),
            room.number.clone(),
            Role::Participant,
            Some(callee.clone()),
        )
        .await;
    let dialer = crate::outbound::Dialer {
        user_id: format!("cluster:{}", cluster.node_id()),
        kind: conclave_store::model::AccountKind::TenantAdmin,
    };
    if let Err(err) = parts
        .state
        .sip
        .invite(
            room.clone(),
            callee,
            name,
            Role::Participant,
            invitation,
            &dialer,
        )
        .await
    {
        tracing::warn!(room = room.number, %err, "a cascade could not call the room's home");
        if let Some(id) = invitation {
            meetings.invite_state(
                &room.id,
                id,
                crate::meeting::CallState::Failed,
                Some(err.to_string()),
            );
        }
    }
}

impl Cluster {
    /// Whether a link's proof was made by a node of this cluster, for this room, lately.
    pub fn link_is_genuine(&self, token: &str, room_id: &str) -> bool {
        let Some(parts) = self.inner.parts.get() else {
            return false;
        };
        if !crate::secrets::Sealer::is_sealed(token) {
            return false;
        }
        let Some(opened) = parts.state.sealer.open(token) else {
            return false;
        };
        let Some((room, until)) = opened.split_once(' ') else {
            return false;
        };
        room == room_id && until.parse::<i64>().is_ok_and(|until| until > now_ms())
    }
}
