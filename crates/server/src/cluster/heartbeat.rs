//! Every tick: the node's heartbeat, its leases renewed, rooms it lost dropped (fencing), the
//! state of its meetings saved for whoever may carry them on, and orphans taken over.

use super::{Cluster, LEASE, TICK, preferred, takeover};
use crate::meeting::Meetings;
use conclave_store::{now_ms, repo};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A claim whose meeting never began (the caller went away first) is given back after this.
const UNUSED_CLAIM: Duration = Duration::from_secs(30);
/// An orphan is taken by its preferred node at once, by any living node after this.
const BACKUP_AFTER_MS: i64 = 2000;

pub(super) async fn run(cluster: Cluster, meetings: Meetings) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // what was last saved of each room's meeting
    let mut saved: HashMap<String, String> = HashMap::new();
    loop {
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            () = cluster.inner.changed.notified() => false,
        };
        if !ticked {
            // a change: saved now (a moment later, so that a burst is saved once)
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tokio::time::timeout(LEASE, save(&cluster, &meetings, &mut saved)).await;
            continue;
        }
        let pass = tokio::time::timeout(LEASE, once(&cluster, &meetings, &mut saved)).await;
        match pass {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                metrics::counter!("conclave_cluster_heartbeat_failures_total").increment(1);
                tracing::warn!(err = format!("{err:#}"), "cluster heartbeat failed");
            }
            Err(_) => {
                metrics::counter!("conclave_cluster_heartbeat_failures_total").increment(1);
                tracing::warn!("cluster heartbeat took longer than a lease");
            }
        }
        // A lease that ran out unrenewed may have been taken: nothing is kept that another
        // node may now own.
        let renewed = *cluster
            .inner
            .renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if renewed.elapsed() > LEASE {
            let lost: Vec<String> = cluster.held().drain().map(|(room, _)| room).collect();
            for room in lost {
                tracing::error!(room, "the room's lease ran out unrenewed: it is dropped");
                metrics::counter!("conclave_cluster_fenced_total").increment(1);
                meetings.fence(&room);
            }
        }
        saved.retain(|room, _| cluster.holds(room));
    }
}

/// What another node needs to carry each meeting on, where it changed.
async fn save(cluster: &Cluster, meetings: &Meetings, saved: &mut HashMap<String, String>) {
    let rooms: Vec<String> = cluster.held().keys().cloned().collect();
    for room in rooms {
        let Some((meeting_id, state)) = takeover::state_of(meetings, &room).await else {
            continue;
        };
        if saved.get(&room) != Some(&state) && cluster.save(&room, &meeting_id, &state).await {
            saved.insert(room, state);
        }
    }
}

async fn once(
    cluster: &Cluster,
    meetings: &Meetings,
    saved: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let node = cluster.node_id().to_owned();
    let started = Instant::now();
    let now = now_ms();
    let mut conn = cluster.store().conn().await?;
    // the busiest media worker's members: what a new room would be added to
    let load = meetings
        .media()
        .load()
        .iter()
        .map(|w| w.members)
        .max()
        .unwrap_or(0);
    let draining = repo::cluster::heartbeat(&mut conn, &node, now, load as i64).await?;
    cluster.set_draining(draining);
    let homes: HashMap<String, i64> =
        repo::cluster::renew(&mut conn, &node, now, now + LEASE.as_millis() as i64)
            .await?
            .into_iter()
            .collect();
    *cluster
        .inner
        .renewed
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = started;

    // fencing: a room held here whose epoch is gone belongs to another node now (only rooms
    // claimed before this renewal are judged by it)
    let lost: Vec<String> = cluster
        .held()
        .iter()
        .filter(|(room, held)| held.since < started && homes.get(*room) != Some(&held.epoch))
        .map(|(room, _)| room.clone())
        .collect();
    for room in lost {
        cluster.held().remove(&room);
        tracing::error!(room, "another node has taken the room: it is dropped here");
        metrics::counter!("conclave_cluster_fenced_total").increment(1);
        meetings.fence(&room);
    }
    // claims that never became a meeting
    let unused: Vec<String> = cluster
        .held()
        .iter()
        .filter(|(room, held)| held.since.elapsed() > UNUSED_CLAIM && !meetings.is_live(room))
        .map(|(room, _)| room.clone())
        .collect();
    for room in unused {
        cluster.release(&room);
    }
    drop(conn);
    save(cluster, meetings, saved).await;
    // orphans: homes whose node stopped renewing them with a meeting going on
    if draining {
        return Ok(());
    }
    let mut conn = cluster.store().conn().await?;
    let now = now_ms();
    let living = super::living(repo::cluster::nodes(&mut conn).await?, now);
    let orphans = repo::cluster::orphans(&mut conn, now).await?;
    drop(conn);
    for orphan in orphans {
        let mine = preferred(&orphan.room_number, &living).is_some_and(|n| n.id == node);
        if mine || now - orphan.lease_until > BACKUP_AFTER_MS {
            takeover::take(cluster, meetings, orphan).await;
        }
    }
    Ok(())
}
