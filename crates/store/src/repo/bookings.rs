//! Scheduled meetings (bookings), their members, their occurrences' exceptions and start
//! claims, and the users' calendar feeds.

use super::*;
use conclave_conference::Role;

async fn from_row(conn: &mut Conn, row: &AnyRow) -> Result<Booking> {
    let id: String = row.try_get("id")?;
    let members =
        sqlx::query("SELECT * FROM booking_members WHERE booking_id = $1 ORDER BY position")
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(member_from_row)
            .collect::<Result<Vec<_>>>()?;
    let settings = json_column(row, "settings")?;
    let exdates = json_column(row, "exdates")?;
    Ok(Booking {
        tenant_id: row.try_get("tenant_id")?,
        organiser_id: row.try_get("organiser_id")?,
        room_id: row.try_get("room_id")?,
        name: row.try_get("name")?,
        pin: row.try_get("pin")?,
        description: row.try_get("description")?,
        expected_participants: row.try_get("expected_participants")?,
        time_zone: row.try_get("time_zone")?,
        start_local: row.try_get("start_local")?,
        duration_minutes: row.try_get("duration_minutes")?,
        rrule: row.try_get("rrule")?,
        exdates: serde_json::from_value(exdates)
            .map_err(|e| StoreError::Corrupt(format!("booking exdates: {e}")))?,
        first_start: row.try_get("first_start")?,
        last_end: row.try_get("last_end")?,
        settings: serde_json::from_value(settings)
            .map_err(|e| StoreError::Corrupt(format!("booking settings: {e}")))?,
        members,
        cancelled: flag(row, "cancelled")?,
        sequence: row.try_get("sequence")?,
        split_from: row.try_get("split_from")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}

fn member_from_row(row: &AnyRow) -> Result<BookingMember> {
    let kind: String = row.try_get("kind")?;
    let role: String = row.try_get("role")?;
    Ok(BookingMember {
        kind: match kind.as_str() {
            "user" => MemberKind::User,
            "contact" => MemberKind::Contact,
            "number" => MemberKind::Number,
            _ => return Err(corrupt("member kind", &kind)),
        },
        user_id: row.try_get("user_id")?,
        contact_id: row.try_get("contact_id")?,
        number: row.try_get("number")?,
        display_name: row.try_get("display_name")?,
        role: role.parse::<Role>().map_err(|_| corrupt("role", &role))?,
        presenter: flag(row, "presenter")?,
    })
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

async fn write_members(conn: &mut Conn, b: &Booking) -> Result<()> {
    sqlx::query("DELETE FROM booking_members WHERE booking_id = $1")
        .bind(&b.id)
        .execute(&mut *conn)
        .await?;
    for (position, m) in b.members.iter().enumerate() {
        sqlx::query(
            "INSERT INTO booking_members (booking_id, position, kind, user_id, contact_id, \
             number, display_name, role, presenter) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&b.id)
        .bind(position as i64)
        .bind(m.kind.as_str())
        .bind(&m.user_id)
        .bind(&m.contact_id)
        .bind(&m.number)
        .bind(&m.display_name)
        .bind(m.role.as_str())
        .bind(i64::from(m.presenter))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts the booking with its members; run it in a transaction.
pub async fn insert(conn: &mut Conn, b: &Booking) -> Result<()> {
    sqlx::query(
        "INSERT INTO bookings (id, tenant_id, organiser_id, room_id, name, pin, description, \
         expected_participants, time_zone, start_local, duration_minutes, rrule, exdates, \
         first_start, last_end, settings, cancelled, sequence, split_from, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21)",
    )
    .bind(&b.id)
    .bind(&b.tenant_id)
    .bind(&b.organiser_id)
    .bind(&b.room_id)
    .bind(&b.name)
    .bind(&b.pin)
    .bind(&b.description)
    .bind(b.expected_participants)
    .bind(&b.time_zone)
    .bind(&b.start_local)
    .bind(b.duration_minutes)
    .bind(&b.rrule)
    .bind(to_json("booking exdates", &b.exdates)?)
    .bind(b.first_start)
    .bind(b.last_end)
    .bind(to_json("booking settings", &b.settings)?)
    .bind(i64::from(b.cancelled))
    .bind(b.sequence)
    .bind(&b.split_from)
    .bind(b.created_at)
    .bind(b.updated_at)
    .execute(&mut *conn)
    .await?;
    write_members(conn, b).await
}

/// Rewrites the booking and replaces its members; run it in a transaction.
pub async fn update(conn: &mut Conn, b: &Booking) -> Result<()> {
    sqlx::query(
        "UPDATE bookings SET room_id = $2, name = $3, pin = $4, description = $5, \
         expected_participants = $6, time_zone = $7, start_local = $8, duration_minutes = $9, \
         rrule = $10, exdates = $11, first_start = $12, last_end = $13, settings = $14, \
         cancelled = $15, sequence = $16, updated_at = $17 WHERE id = $1",
    )
    .bind(&b.id)
    .bind(&b.room_id)
    .bind(&b.name)
    .bind(&b.pin)
    .bind(&b.description)
    .bind(b.expected_participants)
    .bind(&b.time_zone)
    .bind(&b.start_local)
    .bind(b.duration_minutes)
    .bind(&b.rrule)
    .bind(to_json("booking exdates", &b.exdates)?)
    .bind(b.first_start)
    .bind(b.last_end)
    .bind(to_json("booking settings", &b.settings)?)
    .bind(i64::from(b.cancelled))
    .bind(b.sequence)
    .bind(b.updated_at)
    .execute(&mut *conn)
    .await?;
    write_members(conn, b).await
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Booking>> {
    let row = sqlx::query("SELECT * FROM bookings WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

async fn many(conn: &mut Conn, rows: Vec<AnyRow>) -> Result<Vec<Booking>> {
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(from_row(conn, row).await?);
    }
    Ok(items)
}

/// A page of a tenant's bookings; with `visible_to`, only those the user organises or is
/// invited to.
pub async fn list(
    conn: &mut Conn,
    tenant_id: &str,
    visible_to: Option<&str>,
    after: &str,
    limit: i64,
) -> Result<Page<Booking>> {
    let rows = sqlx::query(
        "SELECT * FROM bookings b WHERE tenant_id = $1 AND id > $2 AND ($3 = '' \
         OR organiser_id = $3 OR EXISTS (SELECT 1 FROM booking_members m \
         WHERE m.booking_id = b.id AND m.user_id = $3)) ORDER BY id LIMIT $4",
    )
    .bind(tenant_id)
    .bind(after)
    .bind(visible_to.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let items = many(conn, rows).await?;
    Ok(page(items, limit, |b| b.id.clone()))
}

/// Bookings not cancelled whose series may have an occurrence in [from, to) — in every
/// tenant (the system's capacity and the starter look at all of them).
pub async fn active_between(conn: &mut Conn, from: i64, to: i64) -> Result<Vec<Booking>> {
    let rows = sqlx::query(
        "SELECT * FROM bookings WHERE cancelled = 0 AND first_start < $2 \
         AND (last_end IS NULL OR last_end > $1) ORDER BY id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    many(conn, rows).await
}

/// Bookings a user organises or is invited to that may have an occurrence in [from, to).
pub async fn of_user_between(
    conn: &mut Conn,
    user_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Booking>> {
    let rows = sqlx::query(
        "SELECT * FROM bookings b WHERE first_start < $3 AND (last_end IS NULL OR last_end > $2) \
         AND (organiser_id = $1 OR EXISTS (SELECT 1 FROM booking_members m \
         WHERE m.booking_id = b.id AND m.user_id = $1)) ORDER BY id",
    )
    .bind(user_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    many(conn, rows).await
}

fn override_from_row(row: &AnyRow) -> Result<OccurrenceOverride> {
    Ok(OccurrenceOverride {
        original_start: row.try_get("original_start")?,
        start_at: row.try_get("start_at")?,
        end_at: row.try_get("end_at")?,
        cancelled: flag(row, "cancelled")?,
        started_at: row.try_get("started_at")?,
    })
}

/// The occurrences of a booking that differ from its rule or started.
pub async fn overrides(conn: &mut Conn, booking_id: &str) -> Result<Vec<OccurrenceOverride>> {
    sqlx::query("SELECT * FROM booking_occurrences WHERE booking_id = $1 ORDER BY original_start")
        .bind(booking_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(override_from_row)
        .collect()
}

/// Moves or cancels one occurrence (keeps its start claim).
pub async fn set_override(conn: &mut Conn, booking_id: &str, o: &OccurrenceOverride) -> Result<()> {
    sqlx::query(
        "INSERT INTO booking_occurrences (booking_id, original_start, start_at, end_at, \
         cancelled, started_at) VALUES ($1, $2, $3, $4, $5, NULL) \
         ON CONFLICT (booking_id, original_start) DO UPDATE SET start_at = $3, end_at = $4, \
         cancelled = $5",
    )
    .bind(booking_id)
    .bind(o.original_start)
    .bind(o.start_at)
    .bind(o.end_at)
    .bind(i64::from(o.cancelled))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops the exceptions of occurrences from `from` on (a series that was split or changed).
pub async fn drop_overrides_from(conn: &mut Conn, booking_id: &str, from: i64) -> Result<()> {
    sqlx::query(
        "DELETE FROM booking_occurrences WHERE booking_id = $1 AND original_start >= $2 \
         AND started_at IS NULL",
    )
    .bind(booking_id)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims an occurrence's start: true for exactly one caller, ever (the row is created when
/// missing, then `started_at` is set only where it is still NULL). Run it in the transaction
/// that records the start.
pub async fn claim_start(
    conn: &mut Conn,
    booking_id: &str,
    original_start: i64,
    start_at: i64,
    end_at: i64,
    now: i64,
) -> Result<bool> {
    sqlx::query(
        "INSERT INTO booking_occurrences (booking_id, original_start, start_at, end_at, \
         cancelled, started_at) VALUES ($1, $2, $3, $4, 0, NULL) \
         ON CONFLICT (booking_id, original_start) DO NOTHING",
    )
    .bind(booking_id)
    .bind(original_start)
    .bind(start_at)
    .bind(end_at)
    .execute(&mut *conn)
    .await?;
    let claimed = sqlx::query(
        "UPDATE booking_occurrences SET started_at = $3 WHERE booking_id = $1 \
         AND original_start = $2 AND started_at IS NULL AND cancelled = 0",
    )
    .bind(booking_id)
    .bind(original_start)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Sets (or replaces) a user's calendar feed token.
pub async fn set_feed(conn: &mut Conn, user_id: &str, token_hash: &str, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO calendar_feeds (user_id, token_hash, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET token_hash = $2, created_at = $3",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn revoke_feed(conn: &mut Conn, user_id: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM calendar_feeds WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0)
}

/// The user whose feed has this token hash.
pub async fn feed_user(conn: &mut Conn, token_hash: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT user_id FROM calendar_feeds WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get("user_id")).transpose()?)
}
