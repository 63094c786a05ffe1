//! Carrying a meeting on after its node stopped: the state its home saved (settings and
//! whom it had called), a new meeting in the same room on this node, and everyone it had
//! called in, called again. Callers who dialled in call again and land here.

use super::Cluster;
use crate::meeting::{CallState, Meetings};
use crate::sip::Callee;
use conclave_conference::Role;
use conclave_store::model::{AccountKind, RoomHome};
use conclave_store::{now_ms, repo};
use serde::{Deserialize, Serialize};

/// How long a meeting carried on waits, empty, for its callers to call again.
const REJOIN_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// What the server needs of its API once up (to call people again).
pub(super) struct Parts {
    pub state: crate::api::AppState,
}

/// What a home saves of its meeting for another node to carry it on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HomeState {
    pub locked: bool,
    pub record: bool,
    /// Everyone the meeting called and who was in it or being called: called again.
    pub calls: Vec<Called>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Called {
    pub name: String,
    pub number: String,
    pub role: Role,
    pub reach: Reach,
}

/// How to call someone again (a trunk by its id: its password stays sealed in its row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    Extension(String),
    Number { trunk_id: String, number: String },
}

/// The room's meeting as another node would carry it on: its record's id and the state.
pub(super) async fn state_of(meetings: &Meetings, room_id: &str) -> Option<(String, String)> {
    let meeting_id = meetings.meeting_id(room_id)?;
    let live = meetings.snapshot(room_id).await?;
    let calls = live
        .invitations
        .iter()
        .filter(|i| {
            matches!(
                i.state,
                CallState::Calling | CallState::Ringing | CallState::Joined
            )
        })
        .filter_map(|i| {
            let reach = match i.callee.as_ref()? {
                Callee::Extension(extension) => Reach::Extension(extension.clone()),
                Callee::Number { trunk, number } => Reach::Number {
                    trunk_id: trunk.id.clone(),
                    number: number.clone(),
                },
                // a cascade's link belongs to the cascade, not to the meeting carried on
                Callee::Node { .. } => return None,
            };
            Some(Called {
                name: i.name.clone(),
                number: i.number.clone(),
                role: i.role,
                reach,
            })
        })
        .collect();
    let state = HomeState {
        locked: live.locked,
        record: live.recording_id.is_some(),
        calls,
    };
    Some((meeting_id, serde_json::to_string(&state).ok()?))
}

/// Takes an orphaned room on (another node may win it first: then nothing happens here).
pub(super) async fn take(cluster: &Cluster, meetings: &Meetings, orphan: RoomHome) {
    let room = match cluster.store().conn().await {
        Ok(mut conn) => repo::rooms::get(&mut conn, &orphan.room_id).await,
        Err(err) => Err(err),
    };
    match room {
        Ok(Some(room)) => {
            if let Err(err) = meetings.claim(&room, super::Placement::Here).await {
                tracing::debug!(room = room.number, ?err, "an orphaned room went elsewhere");
            }
        }
        Ok(None) => {
            // deleted while its meeting went on: its record is closed, its home released
            if let Err(err) = forget(cluster, &orphan).await {
                tracing::warn!(%err, room = orphan.room_number, "a deleted room's home was kept");
            }
        }
        Err(err) => tracing::warn!(%err, "reading an orphaned room"),
    }
}

async fn forget(cluster: &Cluster, orphan: &RoomHome) -> conclave_store::Result<()> {
    let now = now_ms();
    let mut conn = cluster.store().conn().await?;
    let claim = repo::cluster::claim(
        &mut conn,
        &orphan.room_id,
        &orphan.tenant_id,
        &orphan.room_number,
        cluster.node_id(),
        now,
        now + super::LEASE.as_millis() as i64,
    )
    .await?;
    if let repo::cluster::Claim::Won { epoch, inherited } = claim {
        drop(conn);
        if let Some(old) = inherited {
            close_record(cluster, &old).await;
        }
        let mut conn = cluster.store().conn().await?;
        repo::cluster::release(
            &mut conn,
            &orphan.room_id,
            cluster.node_id(),
            epoch,
            now_ms(),
        )
        .await?;
    }
    Ok(())
}

async fn close_record(cluster: &Cluster, old: &RoomHome) {
    let Some(meeting_id) = &old.meeting_id else {
        return;
    };
    let closed = match cluster.store().conn().await {
        Ok(mut conn) => repo::meetings::end(&mut conn, meeting_id, old.updated_at).await,
        Err(err) => Err(err),
    };
    if let Err(err) = closed {
        tracing::warn!(%err, meeting_id, "the stopped node's meeting record was not closed");
    }
}

/// The room is ours and its last home stopped with a meeting going on: that meeting's
/// record is closed, and a new one carries it on with its settings, calling again everyone
/// it had called in.
pub(crate) async fn carry_on(
    cluster: &Cluster,
    meetings: &Meetings,
    room: &conclave_store::model::Room,
    old: RoomHome,
) {
    let started = now_ms();
    close_record(cluster, &old).await;
    let state: HomeState = serde_json::from_str(&old.state).unwrap_or_default();
    let settings = conclave_conference::live::Settings {
        locked: state.locked,
        record: state.record,
        ..Default::default()
    };
    if let Err(err) = meetings.start(room, settings, None) {
        tracing::warn!(room = room.number, %err, "a meeting could not be carried on");
        return;
    }
    metrics::counter!("conclave_cluster_takeovers_total").increment(1);
    tracing::warn!(
        room = room.number,
        from = old.node_id,
        calls = state.calls.len(),
        "carrying on a meeting whose node stopped"
    );
    // callers who dialled in call again: the meeting waits for them a while even if it is
    // empty meanwhile
    {
        let (meetings, room_id) = (meetings.clone(), room.id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(REJOIN_GRACE).await;
            meetings.dispatched(&room_id);
        });
    }
    let Some(parts) = cluster.inner.parts.get() else {
        return;
    };
    let app = &parts.state;
    let dialer = crate::outbound::Dialer {
        user_id: format!("cluster:{}", cluster.node_id()),
        kind: AccountKind::TenantAdmin,
    };
    let trunks = match app.store.conn().await {
        Ok(mut conn) => repo::trunks::of_tenant(&mut conn, &room.tenant_id)
            .await
            .map(|t| crate::trunks::unsealed(t, &app.sealer))
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for called in state.calls {
        let callee =
            match &called.reach {
                Reach::Extension(extension) => Some(Callee::Extension(extension.clone())),
                Reach::Number { trunk_id, number } => trunks
                    .iter()
                    .find(|t| &t.id == trunk_id)
                    .map(|t| Callee::Number {
                        trunk: Box::new(t.clone()),
                        number: number.clone(),
                    }),
            };
        let Some(callee) = callee else {
            tracing::warn!(
                room = room.number,
                name = called.name,
                "no way to call them again"
            );
            continue;
        };
        let invitation = meetings
            .invite(
                &room.id,
                called.name.clone(),
                called.number.clone(),
                called.role,
                Some(callee.clone()),
            )
            .await;
        if let Err(err) = app
            .sip
            .invite(
                room.clone(),
                callee,
                called.name.clone(),
                called.role,
                invitation,
                &dialer,
            )
            .await
        {
            tracing::warn!(room = room.number, name = called.name, %err, "calling again failed");
            if let Some(id) = invitation {
                meetings.invite_state(&room.id, id, CallState::Failed, Some(err.to_string()));
            }
        }
    }
    metrics::histogram!("conclave_cluster_takeover_seconds")
        .record((now_ms() - started) as f64 / 1000.0);
}
