//! The e-mail outbox of scheduled meetings' invitations.

use super::*;

fn from_row(row: &AnyRow) -> Result<MailMessage> {
    Ok(MailMessage {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        booking_id: row.try_get("booking_id")?,
        recipient: row.try_get("recipient")?,
        recipient_name: row.try_get("recipient_name")?,
        language: row.try_get("language")?,
        method: row.try_get("method")?,
        sequence: row.try_get("sequence")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        ics: row.try_get("ics")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        sent_at: row.try_get("sent_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        dedupe_key: row.try_get("dedupe_key")?,
        occurrence_original: row.try_get("occurrence_original")?,
        occurrence_start: row.try_get("occurrence_start")?,
    })
}

pub async fn insert(conn: &mut Conn, m: &MailMessage) -> Result<()> {
    insert_row(conn, m, "").await.map(|_| ())
}

/// Inserts a message unless one with its `dedupe_key` exists (a reminder queued before,
/// maybe by another pass or before a restart); true when it was inserted.
pub async fn insert_once(conn: &mut Conn, m: &MailMessage) -> Result<bool> {
    insert_row(conn, m, " ON CONFLICT (dedupe_key) DO NOTHING").await
}

async fn insert_row(conn: &mut Conn, m: &MailMessage, conflict: &'static str) -> Result<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO mail_outbox (id, tenant_id, booking_id, recipient, recipient_name, language, \
         method, sequence, subject, body, ics, attempts, next_attempt_at, sent_at, last_error, \
         created_at, dedupe_key, occurrence_original, occurrence_start) VALUES ($1, $2, $3, $4, \
         $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, $14, $15, $16, $17){conflict}"
    ));
    Ok(sqlx::query(sql)
        .bind(&m.id)
        .bind(&m.tenant_id)
        .bind(&m.booking_id)
        .bind(&m.recipient)
        .bind(&m.recipient_name)
        .bind(&m.language)
        .bind(&m.method)
        .bind(m.sequence)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(&m.ics)
        .bind(m.attempts)
        .bind(m.next_attempt_at)
        .bind(m.created_at)
        .bind(&m.dedupe_key)
        .bind(m.occurrence_original)
        .bind(m.occurrence_start)
        .execute(conn)
        .await?
        .rows_affected()
        > 0)
}

/// Marks a message as not to be sent (a reminder whose occurrence was moved, cancelled or
/// has begun): kept, with the reason, and never due again.
pub async fn drop_unsent(conn: &mut Conn, id: &str, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE mail_outbox SET sent_at = NULL, next_attempt_at = $2, last_error = $3, \
         method = 'REMINDER-DROPPED' WHERE id = $1 AND sent_at IS NULL",
    )
    .bind(id)
    .bind(i64::MAX)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Messages not yet sent whose attempt is due at `now`, oldest first.
pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<MailMessage>> {
    let rows = sqlx::query(
        "SELECT * FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
         AND method <> 'REMINDER-DROPPED' \
         ORDER BY next_attempt_at, created_at, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// When the next unsent message falls due, if any waits.
pub async fn next_due(conn: &mut Conn) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT MIN(next_attempt_at) AS next FROM mail_outbox WHERE sent_at IS NULL \
             AND method <> 'REMINDER-DROPPED'",
    )
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("next")?)
}

pub async fn sent(conn: &mut Conn, id: &str, attempts: i64, at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE mail_outbox SET sent_at = $2, attempts = $3, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(attempts)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn retry_at(
    conn: &mut Conn,
    id: &str,
    attempts: i64,
    at: i64,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE mail_outbox SET attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(at)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every waiting message falls due now (at start: the mail server may be back).
pub async fn all_due(conn: &mut Conn, now: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE mail_outbox SET next_attempt_at = $1 WHERE sent_at IS NULL AND next_attempt_at > $1 \
         AND method <> 'REMINDER-DROPPED'",
    )
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A booking's messages, newest first (at most `limit`).
pub async fn of_booking(conn: &mut Conn, booking_id: &str, limit: i64) -> Result<Vec<MailMessage>> {
    let rows = sqlx::query(
        "SELECT * FROM mail_outbox WHERE booking_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(booking_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}
