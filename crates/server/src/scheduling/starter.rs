//! Starts scheduled meetings at their time, exactly once: each occurrence is claimed in the
//! database (`booking_occurrences.started_at`, set by a conditional UPDATE in the transaction
//! that records the start in the audit log) before its meeting starts, so a restart never
//! starts it twice. A server that was down at the start and comes back while the occurrence
//! lasts starts it late; after its end, never. The task sleeps until the next start (at most
//! a minute), woken early when a booking changes.

use super::occurrences;
use crate::api::AppState;
use conclave_store::model::{Booking, Outcome};
use conclave_store::{now_ms, repo};
use std::time::Duration;

/// Look ahead this far for the next start.
const LOOKAHEAD_MS: i64 = 60_000;

/// Runs until the task is aborted.
pub async fn run(state: AppState) {
    loop {
        let next = match tick(&state).await {
            Ok(next) => next,
            Err(err) => {
                tracing::warn!(%err, "scheduled meetings: could not look for due ones");
                Some(now_ms() + 5_000)
            }
        };
        let wait = next.map_or(LOOKAHEAD_MS, |t| (t - now_ms()).clamp(0, LOOKAHEAD_MS));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = state.schedule_changed.notified() => {}
        }
    }
}

/// Starts what is due; the next start within the look-ahead.
async fn tick(state: &AppState) -> anyhow::Result<Option<i64>> {
    let now = now_ms();
    let mut conn = state.store.conn().await?;
    let longest = super::recurrence::MAX_DURATION_MINUTES * 60_000;
    let mut due = Vec::new();
    let mut next: Option<i64> = None;
    for b in repo::bookings::active_between(&mut conn, now - longest, now + LOOKAHEAD_MS).await? {
        let overrides = repo::bookings::overrides(&mut conn, &b.id).await?;
        let Ok(occ) = occurrences(&b, &overrides, now, now + LOOKAHEAD_MS) else {
            continue;
        };
        for o in occ {
            if o.cancelled || o.started_at.is_some() {
                continue;
            }
            if o.start_at <= now && now < o.end_at {
                due.push((b.clone(), o));
            } else if o.start_at > now {
                next = Some(next.map_or(o.start_at, |n| n.min(o.start_at)));
            }
        }
    }
    drop(conn);
    for (b, o) in due {
        if let Err(err) = start(state, &b, o.original_start, o.start_at, o.end_at).await {
            tracing::warn!(%err, booking = %b.id, "a scheduled meeting did not start");
        }
    }
    Ok(next)
}

/// Claims the occurrence and, when this is the one claim, starts its meeting.
async fn start(
    state: &AppState,
    b: &Booking,
    original_start: i64,
    start_at: i64,
    end_at: i64,
) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    if !repo::bookings::claim_start(&mut tx, &b.id, original_start, start_at, end_at, now).await? {
        return Ok(());
    }
    let organiser = repo::users::get(&mut tx, &b.organiser_id).await?;
    let room = repo::rooms::get(&mut tx, &b.room_id).await?;
    crate::api::write_audit(
        &mut tx,
        None,
        "scheduler",
        std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        crate::api::Audit {
            action: "startScheduledMeeting",
            tenant_id: &b.tenant_id,
            target_type: "booking",
            target_id: Some(&b.id),
            detail: serde_json::json!({
                "original_start": original_start,
                "late_ms": now - start_at,
            }),
        },
        Outcome::Ok,
    )
    .await
    .map_err(|e| anyhow::anyhow!("audit: {}", e.detail))?;
    tx.commit().await?;
    let (Some(organiser), Some(room)) = (organiser, room) else {
        anyhow::bail!("the organiser or the room is gone");
    };
    if organiser.status == conclave_store::model::UserStatus::Frozen {
        anyhow::bail!("the organiser's account is frozen");
    }
    tracing::info!(booking = %b.id, room = %room.number, "a scheduled meeting starts");
    crate::api::conferences::start_booked(state, organiser, b, room)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    Ok(())
}
