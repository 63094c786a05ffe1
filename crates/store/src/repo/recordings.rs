//! Recordings, their tracks and utterances.

use super::*;

fn from_row(row: &AnyRow) -> Result<Recording> {
    Ok(Recording {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        meeting_id: row.try_get("meeting_id")?,
        room_id: row.try_get("room_id")?,
        room_number: row.try_get("room_number")?,
        room_name: row.try_get("room_name")?,
        started_by: row.try_get("started_by")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        state: row.try_get("state")?,
        visibility: row.try_get("visibility")?,
        wrapped_key: row.try_get("wrapped_key")?,
        share_key: row.try_get("share_key")?,
        share_access: row.try_get("share_access")?,
        share_password: row.try_get("share_password")?,
    })
}

fn track_from_row(row: &AnyRow) -> Result<RecordingTrack> {
    Ok(RecordingTrack {
        track: row.try_get("track")?,
        kind: row.try_get("kind")?,
        identity: row.try_get("identity")?,
        name: row.try_get("name")?,
        number: row.try_get("number")?,
        offset_ms: row.try_get("offset_ms")?,
        duration_ms: row.try_get("duration_ms")?,
        bytes: row.try_get("bytes")?,
    })
}

pub async fn insert(conn: &mut Conn, r: &Recording) -> Result<()> {
    sqlx::query(
        "INSERT INTO recordings (id, tenant_id, meeting_id, room_id, room_number, room_name, \
         started_by, started_at, ended_at, state, wrapped_key, visibility) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&r.id)
    .bind(&r.tenant_id)
    .bind(&r.meeting_id)
    .bind(&r.room_id)
    .bind(&r.room_number)
    .bind(&r.room_name)
    .bind(&r.started_by)
    .bind(r.started_at)
    .bind(r.ended_at)
    .bind(&r.state)
    .bind(&r.wrapped_key)
    .bind(&r.visibility)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Recording>> {
    get_by_id(conn, "recordings", id, from_row).await
}

/// Ends a recording (`finished`, or `interrupted`) unless it has ended already.
pub async fn end(conn: &mut Conn, id: &str, state: &str, at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE recordings SET state = $2, ended_at = $3 WHERE id = $1 AND state = 'recording'",
    )
    .bind(id)
    .bind(state)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recordings a stop left `recording` become `interrupted`; their ids.
pub async fn interrupt_abandoned(conn: &mut Conn, at: i64) -> Result<Vec<String>> {
    // a meeting another node of a cluster carries on is not abandoned
    let rows = sqlx::query(
        "SELECT id FROM recordings r WHERE state = 'recording' AND NOT EXISTS \
         (SELECT 1 FROM room_homes h WHERE h.meeting_id = r.meeting_id AND h.lease_until > $1)",
    )
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    let ids = rows
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for id in &ids {
        end(conn, id, "interrupted", at).await?;
    }
    Ok(ids)
}

/// Every recording's id, tenant, wrapped key and state (to re-wrap the keys).
pub async fn keys(conn: &mut Conn) -> Result<Vec<(String, String, String, String)>> {
    let rows = sqlx::query("SELECT id, tenant_id, wrapped_key, state FROM recordings ORDER BY id")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("tenant_id")?,
                r.try_get("wrapped_key")?,
                r.try_get("state")?,
            ))
        })
        .collect()
}

pub async fn set_wrapped_key(conn: &mut Conn, id: &str, wrapped_key: &str) -> Result<()> {
    sqlx::query("UPDATE recordings SET wrapped_key = $2 WHERE id = $1")
        .bind(id)
        .bind(wrapped_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Recordings past their tenant's retention at `now` (epoch ms) — the tenant's own days, or
/// `server_days` when it has none (0: kept) — oldest first, at most `limit`.
pub async fn expired(
    conn: &mut Conn,
    now: i64,
    server_days: i64,
    limit: i64,
) -> Result<Vec<Recording>> {
    let rows = sqlx::query(
        "SELECT r.* FROM recordings r JOIN tenants t ON t.id = r.tenant_id \
         WHERE r.state <> 'recording' AND r.ended_at IS NOT NULL \
         AND COALESCE(t.recording_retention_days, $2) > 0 \
         AND r.ended_at < $1 - COALESCE(t.recording_retention_days, $2) * 86400000 \
         ORDER BY r.ended_at LIMIT $3",
    )
    .bind(now)
    .bind(server_days)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Who may play it; a public one's link (key, access, password), or none.
pub async fn set_visibility(
    conn: &mut Conn,
    id: &str,
    visibility: &str,
    share: Option<(&str, &str, Option<&str>)>,
) -> Result<()> {
    sqlx::query(
        "UPDATE recordings SET visibility = $2, share_key = $3, share_access = $4, \
         share_password = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(visibility)
    .bind(share.map(|s| s.0))
    .bind(share.map(|s| s.1))
    .bind(share.and_then(|s| s.2))
    .execute(conn)
    .await?;
    Ok(())
}

/// The public recording shared under `key`.
pub async fn by_share_key(conn: &mut Conn, key: &str) -> Result<Option<Recording>> {
    let row =
        sqlx::query("SELECT * FROM recordings WHERE share_key = $1 AND visibility = 'public'")
            .bind(key)
            .fetch_optional(conn)
            .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
    sqlx::query("DELETE FROM recording_utterances WHERE recording_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM recording_tracks WHERE recording_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    delete_by_id(conn, "recordings", id).await
}

/// What a list of recordings is narrowed to (empty strings: anything).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A room number, or part of a room's name.
    pub room: String,
    /// Part of a speaker's name or number.
    pub speaker: String,
    /// Started from / up to (epoch ms).
    pub since: i64,
    pub until: i64,
}

/// A tenant's recordings, newest first, narrowed by `f`; `before` is the cursor (an id).
pub async fn list(
    conn: &mut Conn,
    tenant_id: &str,
    f: &Filter,
    before: &str,
    limit: i64,
) -> Result<Page<Recording>> {
    let rows = sqlx::query(
        "SELECT * FROM recordings WHERE tenant_id = $1 \
         AND ($2 = '' OR room_number = $2 OR LOWER(room_name) LIKE '%' || LOWER($2) || '%') \
         AND ($3 = '' OR id < $3) AND started_at >= $5 AND started_at <= $6 \
         AND ($7 = '' OR EXISTS (SELECT 1 FROM recording_tracks t WHERE \
           t.recording_id = recordings.id AND t.kind = 'member' \
           AND (LOWER(t.name) LIKE '%' || LOWER($7) || '%' OR t.number LIKE '%' || $7 || '%'))) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(&f.room)
    .bind(before)
    .bind(limit + 1)
    .bind(f.since)
    .bind(f.until)
    .bind(&f.speaker)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, |r| r.id.clone()))
}

/// A track as it begins (its length comes when the recording ends).
pub async fn add_track(conn: &mut Conn, recording_id: &str, t: &RecordingTrack) -> Result<()> {
    sqlx::query(
        "INSERT INTO recording_tracks (recording_id, track, kind, identity, name, number, \
         offset_ms, duration_ms, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(recording_id)
    .bind(t.track)
    .bind(&t.kind)
    .bind(&t.identity)
    .bind(&t.name)
    .bind(&t.number)
    .bind(t.offset_ms)
    .bind(t.duration_ms)
    .bind(t.bytes)
    .execute(conn)
    .await?;
    Ok(())
}

/// A track's length and size once it is closed.
pub async fn close_track(
    conn: &mut Conn,
    recording_id: &str,
    track: i64,
    offset_ms: i64,
    duration_ms: i64,
    bytes: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE recording_tracks SET offset_ms = $3, duration_ms = $4, bytes = $5 \
         WHERE recording_id = $1 AND track = $2",
    )
    .bind(recording_id)
    .bind(track)
    .bind(offset_ms)
    .bind(duration_ms)
    .bind(bytes)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn tracks(conn: &mut Conn, recording_id: &str) -> Result<Vec<RecordingTrack>> {
    let rows = sqlx::query("SELECT * FROM recording_tracks WHERE recording_id = $1 ORDER BY track")
        .bind(recording_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(track_from_row).collect()
}

pub async fn add_utterances(conn: &mut Conn, recording_id: &str, u: &[Utterance]) -> Result<()> {
    for u in u {
        sqlx::query(
            "INSERT INTO recording_utterances (recording_id, track, start_ms, end_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(recording_id)
        .bind(u.track)
        .bind(u.start_ms)
        .bind(u.end_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Utterances in time order (of one track when `track` is given).
pub async fn utterances(
    conn: &mut Conn,
    recording_id: &str,
    track: Option<i64>,
) -> Result<Vec<Utterance>> {
    let rows = sqlx::query(
        "SELECT track, start_ms, end_ms FROM recording_utterances WHERE recording_id = $1 \
         AND ($2 < 0 OR track = $2) ORDER BY start_ms, track",
    )
    .bind(recording_id)
    .bind(track.unwrap_or(-1))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Utterance {
                track: r.try_get("track")?,
                start_ms: r.try_get("start_ms")?,
                end_ms: r.try_get("end_ms")?,
            })
        })
        .collect()
}
