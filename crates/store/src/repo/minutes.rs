//! Minutes: one row per recording (how far they are), one line per recognized utterance.

use super::*;

fn from_row(row: &AnyRow) -> Result<Minutes> {
    Ok(Minutes {
        recording_id: row.try_get("recording_id")?,
        tenant_id: row.try_get("tenant_id")?,
        state: row.try_get("state")?,
        error: row.try_get("error")?,
        not_before: row.try_get("not_before")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn line_from_row(row: &AnyRow) -> Result<MinuteLine> {
    Ok(MinuteLine {
        track: row.try_get("track")?,
        start_ms: row.try_get("start_ms")?,
        end_ms: row.try_get("end_ms")?,
        language: row.try_get("language")?,
        recognized: row.try_get("recognized")?,
        text: row.try_get("text")?,
        edited_by: row.try_get("edited_by")?,
        edited_at: row.try_get("edited_at")?,
    })
}

/// Gives minutes (in `state`) to up to `limit` recordings that have none yet; how many.
pub async fn add_missing(conn: &mut Conn, state: &str, at: i64, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO minutes (recording_id, tenant_id, state, not_before, created_at, updated_at) \
         SELECT r.id, r.tenant_id, $1, 0, $2, $2 FROM recordings r \
         WHERE NOT EXISTS (SELECT 1 FROM minutes m WHERE m.recording_id = r.id) \
         ORDER BY r.started_at LIMIT $3",
    )
    .bind(state)
    .bind(at)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Moves every minutes row in one of `from` to `to` (a start: `working` left by a stop
/// goes back to the queue; with a model, `unavailable` ones are queued).
pub async fn move_all(conn: &mut Conn, from: &[&str], to: &str, at: i64) -> Result<u64> {
    let mut total = 0;
    for state in from {
        let done = sqlx::query(
            "UPDATE minutes SET state = $2, error = NULL, not_before = 0, updated_at = $3 \
             WHERE state = $1",
        )
        .bind(state)
        .bind(to)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        total += done.rows_affected();
    }
    Ok(total)
}

/// Takes the oldest queued minutes that may start now (`working`); None when none.
pub async fn claim(conn: &mut Conn, at: i64) -> Result<Option<Minutes>> {
    // a candidate, then a conditional update: two workers never take the same one
    for _ in 0..5 {
        let Some(row) = sqlx::query(
            "SELECT * FROM minutes WHERE state = 'queued' AND not_before <= $1 \
             ORDER BY not_before, created_at LIMIT 1",
        )
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let m = from_row(&row)?;
        let done = sqlx::query(
            "UPDATE minutes SET state = 'working', updated_at = $2 \
             WHERE recording_id = $1 AND state = 'queued'",
        )
        .bind(&m.recording_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Some(Minutes {
                state: "working".into(),
                updated_at: at,
                ..m
            }));
        }
    }
    Ok(None)
}

/// Sets the minutes' state (`not_before`: when a queued one may be taken again).
pub async fn set_state(
    conn: &mut Conn,
    recording_id: &str,
    state: &str,
    error: Option<&str>,
    not_before: i64,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE minutes SET state = $2, error = $3, not_before = $4, updated_at = $5 \
         WHERE recording_id = $1",
    )
    .bind(recording_id)
    .bind(state)
    .bind(error)
    .bind(not_before)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, recording_id: &str) -> Result<Option<Minutes>> {
    let row = sqlx::query("SELECT * FROM minutes WHERE recording_id = $1")
        .bind(recording_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// How many minutes wait for a worker.
pub async fn queued(conn: &mut Conn) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM minutes WHERE state IN ('queued', 'working')")
            .fetch_one(conn)
            .await?
            .try_get("n")?,
    )
}

/// The lines, in time order.
pub async fn lines(conn: &mut Conn, recording_id: &str) -> Result<Vec<MinuteLine>> {
    let rows =
        sqlx::query("SELECT * FROM minute_lines WHERE recording_id = $1 ORDER BY start_ms, track")
            .bind(recording_id)
            .fetch_all(conn)
            .await?;
    rows.iter().map(line_from_row).collect()
}

/// Utterances with no line yet, in time order (at most `limit`).
pub async fn pending(conn: &mut Conn, recording_id: &str, limit: i64) -> Result<Vec<Utterance>> {
    let rows = sqlx::query(
        "SELECT u.track, u.start_ms, u.end_ms FROM recording_utterances u \
         WHERE u.recording_id = $1 AND NOT EXISTS (SELECT 1 FROM minute_lines l \
           WHERE l.recording_id = u.recording_id AND l.track = u.track AND l.start_ms = u.start_ms) \
         ORDER BY u.start_ms, u.track LIMIT $2",
    )
    .bind(recording_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Utterance {
                track: row.try_get("track")?,
                start_ms: row.try_get("start_ms")?,
                end_ms: row.try_get("end_ms")?,
            })
        })
        .collect()
}

/// Utterances in all, and those with a line.
pub async fn progress(conn: &mut Conn, recording_id: &str) -> Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM recording_utterances WHERE recording_id = $1) AS total, \
         (SELECT COUNT(*) FROM minute_lines WHERE recording_id = $1) AS done",
    )
    .bind(recording_id)
    .fetch_one(conn)
    .await?;
    Ok((row.try_get("total")?, row.try_get("done")?))
}

/// A recognized line (a second one for the same utterance is ignored: a restart may
/// recognize it again).
pub async fn add_line(
    conn: &mut Conn,
    recording_id: &str,
    tenant_id: &str,
    line: &MinuteLine,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO minute_lines (recording_id, tenant_id, track, start_ms, end_ms, language, \
         recognized, text, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (recording_id, track, start_ms) DO NOTHING",
    )
    .bind(recording_id)
    .bind(tenant_id)
    .bind(line.track)
    .bind(line.start_ms)
    .bind(line.end_ms)
    .bind(&line.language)
    .bind(&line.recognized)
    .bind(&line.text)
    .bind(line.text.to_lowercase())
    .execute(conn)
    .await?;
    Ok(())
}

/// Edits a line's text (what was recognized stays); false when there is no such line.
pub async fn edit_line(
    conn: &mut Conn,
    recording_id: &str,
    track: i64,
    start_ms: i64,
    text: &str,
    by: &str,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE minute_lines SET text = $4, search_text = $5, edited_by = $6, edited_at = $7 \
         WHERE recording_id = $1 AND track = $2 AND start_ms = $3",
    )
    .bind(recording_id)
    .bind(track)
    .bind(start_ms)
    .bind(text)
    .bind(text.to_lowercase())
    .bind(by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets a recording's lines nobody edited (its minutes are made again).
pub async fn clear_unedited(conn: &mut Conn, recording_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM minute_lines WHERE recording_id = $1 AND edited_by IS NULL")
        .bind(recording_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A line found by a search, with its recording.
#[derive(Debug, Clone)]
pub struct Hit {
    pub recording_id: String,
    pub line: MinuteLine,
}

/// A tenant's lines that hold every one of `terms` (lower case; matched anywhere, so a
/// Chinese word needs no word breaks), newest recording first; `before` is the cursor
/// (the last hit's recording id, `start_ms` and track).
pub async fn search(
    conn: &mut Conn,
    tenant_id: &str,
    terms: &[String],
    before: Option<(&str, i64, i64)>,
    limit: i64,
) -> Result<Vec<Hit>> {
    let mut sql = String::from(
        "SELECT * FROM minute_lines WHERE tenant_id = $1 \
         AND ($2 = '' OR recording_id < $2 OR (recording_id = $2 AND (start_ms > $3 \
           OR (start_ms = $3 AND track > $4))))",
    );
    // a query holds at most eight terms (the caller's limit)
    for i in 0..terms.len().min(8) {
        sql.push_str(&format!(" AND search_text LIKE ${} ESCAPE '\\'", i + 6));
    }
    sql.push_str(" ORDER BY recording_id DESC, start_ms, track LIMIT $5");
    let (cursor_id, cursor_ms, cursor_track) = before.unwrap_or(("", 0, 0));
    // only placeholders are added to it, one per term
    let sql = sqlx::AssertSqlSafe(sql);
    let mut query = sqlx::query(sql)
        .bind(tenant_id)
        .bind(cursor_id)
        .bind(cursor_ms)
        .bind(cursor_track)
        .bind(limit);
    for term in terms.iter().take(8) {
        query = query.bind(crate::search::like_pattern(term));
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(Hit {
                recording_id: row.try_get("recording_id")?,
                line: line_from_row(row)?,
            })
        })
        .collect()
}
