//! Live streams: scheduled ahead, live while a meeting streams, ended.

use super::*;

fn from_row(row: &AnyRow) -> Result<Stream> {
    Ok(Stream {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        room_id: row.try_get("room_id")?,
        title: row.try_get("title")?,
        key: row.try_get("stream_key")?,
        access: row.try_get("access")?,
        password: row.try_get("password")?,
        state: row.try_get("state")?,
        starts_at: row.try_get("starts_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        meeting_id: row.try_get("meeting_id")?,
        created_by: row.try_get("created_by")?,
        peak_listeners: row.try_get("peak_listeners")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn insert(conn: &mut Conn, s: &Stream) -> Result<()> {
    sqlx::query(
        "INSERT INTO streams (id, tenant_id, room_id, title, stream_key, access, password, \
         state, starts_at, started_at, ended_at, meeting_id, created_by, peak_listeners, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&s.id)
    .bind(&s.tenant_id)
    .bind(&s.room_id)
    .bind(&s.title)
    .bind(&s.key)
    .bind(&s.access)
    .bind(&s.password)
    .bind(&s.state)
    .bind(s.starts_at)
    .bind(s.started_at)
    .bind(s.ended_at)
    .bind(&s.meeting_id)
    .bind(&s.created_by)
    .bind(s.peak_listeners)
    .bind(s.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Stream>> {
    get_by_id(conn, "streams", id, from_row).await
}

pub async fn by_key(conn: &mut Conn, key: &str) -> Result<Option<Stream>> {
    let row = sqlx::query("SELECT * FROM streams WHERE stream_key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The room's next scheduled stream due by `by` (epoch ms), the earliest first.
pub async fn due(conn: &mut Conn, room_id: &str, by: i64) -> Result<Option<Stream>> {
    let row = sqlx::query(
        "SELECT * FROM streams WHERE room_id = $1 AND state = 'scheduled' \
         AND COALESCE(starts_at, 0) <= $2 ORDER BY starts_at, id LIMIT 1",
    )
    .bind(room_id)
    .bind(by)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A scheduled stream goes live for a meeting; false when it was no longer scheduled.
pub async fn go_live(conn: &mut Conn, id: &str, meeting_id: &str, at: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE streams SET state = 'live', started_at = $3, meeting_id = $2 \
         WHERE id = $1 AND state = 'scheduled'",
    )
    .bind(id)
    .bind(meeting_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A live stream ends (with the most listeners it had at once).
pub async fn end(conn: &mut Conn, id: &str, at: i64, peak: i64) -> Result<()> {
    sqlx::query(
        "UPDATE streams SET state = 'ended', ended_at = $2, \
         peak_listeners = CASE WHEN peak_listeners > $3 THEN peak_listeners ELSE $3 END \
         WHERE id = $1 AND state = 'live'",
    )
    .bind(id)
    .bind(at)
    .bind(peak)
    .execute(conn)
    .await?;
    Ok(())
}

/// Streams a stop left `live` end (the server stopped while they streamed).
pub async fn end_abandoned(conn: &mut Conn, at: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE streams SET state = 'ended', ended_at = $1 WHERE state = 'live' \
             AND NOT EXISTS (SELECT 1 FROM room_homes h WHERE h.room_id = streams.room_id \
               AND h.lease_until > $1)",
    )
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
    delete_by_id(conn, "streams", id).await
}

/// Deletes a stream unless it has gone live meanwhile.
pub async fn delete_scheduled(conn: &mut Conn, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM streams WHERE id = $1 AND state = 'scheduled'")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A tenant's streams: live first, then scheduled (soonest first), then ended (newest first);
/// `state` narrows (empty: all).
pub async fn list(
    conn: &mut Conn,
    tenant_id: &str,
    state: &str,
    limit: i64,
) -> Result<Vec<Stream>> {
    let rows = sqlx::query(
        "SELECT * FROM streams WHERE tenant_id = $1 AND ($2 = '' OR state = $2) \
         ORDER BY CASE state WHEN 'live' THEN 0 WHEN 'scheduled' THEN 1 ELSE 2 END, \
         CASE WHEN state = 'scheduled' THEN COALESCE(starts_at, 0) ELSE 0 END, \
         COALESCE(started_at, created_at) DESC, id DESC LIMIT $3",
    )
    .bind(tenant_id)
    .bind(state)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}
