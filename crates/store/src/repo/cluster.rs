//! A cluster's nodes and rooms' homes (docs/cluster.md). Every change of a home is a
//! compare-and-swap on its epoch: two nodes never both win a room.

use super::*;

fn node_from_row(row: &AnyRow) -> Result<ClusterNode> {
    Ok(ClusterNode {
        id: row.try_get("id")?,
        sip_uri: row.try_get("sip_uri")?,
        http_url: row.try_get("http_url")?,
        started_at: row.try_get("started_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        load: row.try_get("load")?,
        draining: flag(row, "draining")?,
    })
}

fn home_from_row(row: &AnyRow) -> Result<RoomHome> {
    Ok(RoomHome {
        room_id: row.try_get("room_id")?,
        tenant_id: row.try_get("tenant_id")?,
        room_number: row.try_get("room_number")?,
        node_id: row.try_get("node_id")?,
        epoch: row.try_get("epoch")?,
        lease_until: row.try_get("lease_until")?,
        meeting_id: row.try_get("meeting_id")?,
        state: row.try_get("state")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A node (re)starts: its row, fresh. Whether it drains is kept (the operator's choice).
pub async fn register(conn: &mut Conn, node: &ClusterNode) -> Result<()> {
    sqlx::query(
        "INSERT INTO cluster_nodes (id, sip_uri, http_url, started_at, heartbeat_at, load, draining) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
         sip_uri = excluded.sip_uri, http_url = excluded.http_url, \
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, load = 0",
    )
    .bind(&node.id)
    .bind(&node.sip_uri)
    .bind(&node.http_url)
    .bind(node.started_at)
    .bind(node.heartbeat_at)
    .bind(node.load)
    .bind(i64::from(node.draining))
    .execute(conn)
    .await?;
    Ok(())
}

/// The node is alive at `at`, carrying `load` members; whether it drains.
pub async fn heartbeat(conn: &mut Conn, id: &str, at: i64, load: i64) -> Result<bool> {
    let row = sqlx::query(
        "UPDATE cluster_nodes SET heartbeat_at = $2, load = $3 WHERE id = $1 RETURNING draining",
    )
    .bind(id)
    .bind(at)
    .bind(load)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => flag(&row, "draining"),
        None => Err(StoreError::Corrupt(format!(
            "cluster node {id} is not registered"
        ))),
    }
}

pub async fn set_draining(conn: &mut Conn, id: &str, draining: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE cluster_nodes SET draining = $2 WHERE id = $1")
        .bind(id)
        .bind(i64::from(draining))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn nodes(conn: &mut Conn) -> Result<Vec<ClusterNode>> {
    let rows = sqlx::query("SELECT * FROM cluster_nodes ORDER BY id")
        .fetch_all(conn)
        .await?;
    rows.iter().map(node_from_row).collect()
}

pub async fn home(conn: &mut Conn, room_id: &str) -> Result<Option<RoomHome>> {
    let row = sqlx::query("SELECT * FROM room_homes WHERE room_id = $1")
        .bind(room_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(home_from_row).transpose()
}

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The room is ours at this epoch. `inherited`: the home as it was when its node stopped
    /// renewing it with a meeting going on (that meeting is to be carried on).
    Won {
        epoch: i64,
        inherited: Option<RoomHome>,
    },
    /// Another node holds it, its lease running.
    Elsewhere(RoomHome),
}

/// Takes a room for `node` until `lease_until` unless another node's lease runs at `at`. A
/// room this node already holds stays held at its epoch.
pub async fn claim(
    conn: &mut Conn,
    room_id: &str,
    tenant_id: &str,
    room_number: &str,
    node: &str,
    at: i64,
    lease_until: i64,
) -> Result<Claim> {
    // a read, then an update on the epoch read: a rival that got in between makes it fail,
    // and the next round sees the rival's home
    for _ in 0..5 {
        let Some(current) = home(&mut *conn, room_id).await? else {
            let done = sqlx::query(
                "INSERT INTO room_homes (room_id, tenant_id, room_number, node_id, epoch, \
                 lease_until, meeting_id, state, updated_at) \
                 VALUES ($1, $2, $3, $4, 1, $5, NULL, '{}', $6) ON CONFLICT (room_id) DO NOTHING",
            )
            .bind(room_id)
            .bind(tenant_id)
            .bind(room_number)
            .bind(node)
            .bind(lease_until)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Claim::Won {
                    epoch: 1,
                    inherited: None,
                });
            }
            continue;
        };
        if current.lease_until > at {
            if current.node_id == node {
                return Ok(Claim::Won {
                    epoch: current.epoch,
                    inherited: None,
                });
            }
            return Ok(Claim::Elsewhere(current));
        }
        let done = sqlx::query(
            "UPDATE room_homes SET node_id = $3, epoch = epoch + 1, lease_until = $4, \
             tenant_id = $5, room_number = $6, updated_at = $7 \
             WHERE room_id = $1 AND epoch = $2 AND lease_until <= $7",
        )
        .bind(room_id)
        .bind(current.epoch)
        .bind(node)
        .bind(lease_until)
        .bind(tenant_id)
        .bind(room_number)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            let epoch = current.epoch + 1;
            let inherited = current.meeting_id.is_some().then_some(current);
            return Ok(Claim::Won { epoch, inherited });
        }
    }
    Err(StoreError::Conflict { field: "room_id" })
}

/// Extends the leases `node` holds that still run at `at`; the rooms (and epochs) it still
/// holds. A lease that ran out is not renewed: another node may be taking that room.
pub async fn renew(
    conn: &mut Conn,
    node: &str,
    at: i64,
    lease_until: i64,
) -> Result<Vec<(String, i64)>> {
    sqlx::query("UPDATE room_homes SET lease_until = $3 WHERE node_id = $1 AND lease_until > $2")
        .bind(node)
        .bind(at)
        .bind(lease_until)
        .execute(&mut *conn)
        .await?;
    let rows = sqlx::query(
        "SELECT room_id, epoch FROM room_homes WHERE node_id = $1 AND lease_until > $2",
    )
    .bind(node)
    .bind(at)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("room_id")?, r.try_get("epoch")?)))
        .collect()
}

/// The meeting a home carries and what another node needs to carry it on; false when the
/// room is no longer this node's at this epoch.
pub async fn set_state(
    conn: &mut Conn,
    room_id: &str,
    node: &str,
    epoch: i64,
    meeting_id: &str,
    state: &str,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE room_homes SET meeting_id = $4, state = $5, updated_at = $6 \
         WHERE room_id = $1 AND node_id = $2 AND epoch = $3 AND lease_until > 0",
    )
    .bind(room_id)
    .bind(node)
    .bind(epoch)
    .bind(meeting_id)
    .bind(state)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The meeting has ended: the room has no home (its epoch stays).
pub async fn release(
    conn: &mut Conn,
    room_id: &str,
    node: &str,
    epoch: i64,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE room_homes SET lease_until = 0, meeting_id = NULL, state = '{}', updated_at = $4 \
         WHERE room_id = $1 AND node_id = $2 AND epoch = $3",
    )
    .bind(room_id)
    .bind(node)
    .bind(epoch)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Homes whose lease has run out with a meeting going on: their node stopped.
pub async fn orphans(conn: &mut Conn, at: i64) -> Result<Vec<RoomHome>> {
    let rows = sqlx::query(
        "SELECT * FROM room_homes WHERE lease_until > 0 AND lease_until <= $1 \
         AND meeting_id IS NOT NULL ORDER BY lease_until",
    )
    .bind(at)
    .fetch_all(conn)
    .await?;
    rows.iter().map(home_from_row).collect()
}

/// A node starts again: whatever it held before is orphaned now (for the others to take
/// on at once), and released where no meeting went on.
pub async fn abandon_node(conn: &mut Conn, node: &str, at: i64) -> Result<u64> {
    sqlx::query(
        "UPDATE room_homes SET lease_until = 0, updated_at = $2 \
         WHERE node_id = $1 AND lease_until > 0 AND meeting_id IS NULL",
    )
    .bind(node)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(
        "UPDATE room_homes SET lease_until = 1, updated_at = $2 \
         WHERE node_id = $1 AND lease_until > 1",
    )
    .bind(node)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The rooms of a tenant with a home whose lease runs at `at`.
pub async fn live_homes(conn: &mut Conn, tenant_id: &str, at: i64) -> Result<Vec<RoomHome>> {
    let rows = sqlx::query(
        "SELECT * FROM room_homes WHERE tenant_id = $1 AND lease_until > $2 ORDER BY room_number",
    )
    .bind(tenant_id)
    .bind(at)
    .fetch_all(conn)
    .await?;
    rows.iter().map(home_from_row).collect()
}

/// Every room with a home whose lease runs at `at`.
pub async fn live_homes_all(conn: &mut Conn, at: i64) -> Result<Vec<RoomHome>> {
    let rows = sqlx::query("SELECT * FROM room_homes WHERE lease_until > $1 ORDER BY room_number")
        .bind(at)
        .fetch_all(conn)
        .await?;
    rows.iter().map(home_from_row).collect()
}
