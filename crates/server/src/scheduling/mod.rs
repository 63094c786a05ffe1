//! Scheduled meetings: when their occurrences are (recurrence.rs), what clashes with them
//! (conflicts.rs), and the task that starts them at their time (starter.rs). The API is
//! `api/bookings.rs`; the tables are the store's `bookings` and `booking_*`.

pub mod conflicts;
pub mod mail;
pub mod recurrence;
pub mod starter;

pub use conflicts::Conflict;

/// The conflicts a 409 answer lists.
#[derive(Debug, Clone)]
pub struct ConflictList(pub Vec<Conflict>);

use conclave_store::model::{Booking, OccurrenceOverride};
pub use recurrence::Series;
use serde::Serialize;
use utoipa::ToSchema;

/// One occurrence of a scheduled meeting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Occurrence {
    pub booking_id: String,
    /// The start the rule gives it (epoch ms): how the occurrence is named when edited.
    pub original_start: i64,
    /// When it starts and ends (epoch ms), moved if it was moved.
    pub start_at: i64,
    pub end_at: i64,
    /// Its start as wall-clock time in the organiser's time zone.
    pub start_local: String,
    pub moved: bool,
    pub cancelled: bool,
    /// When the server started it (absent: not yet).
    pub started_at: Option<i64>,
}

/// The series a booking's fields describe.
pub fn series(b: &Booking) -> Series<'_> {
    Series {
        time_zone: &b.time_zone,
        start_local: &b.start_local,
        duration_minutes: b.duration_minutes,
        rrule: b.rrule.as_deref(),
        exdates: &b.exdates,
    }
}

/// A booking's occurrences that overlap [from, to), exceptions applied, in start order
/// (cancelled ones included, marked).
pub fn occurrences(
    b: &Booking,
    overrides: &[OccurrenceOverride],
    from: i64,
    to: i64,
) -> Result<Vec<Occurrence>, String> {
    let tz = recurrence::parse_tz(&b.time_zone)?;
    let duration = b.duration_minutes * 60_000;
    let mut out = Vec::new();
    for start in recurrence::starts(&series(b), from - duration + 1, to)? {
        if overrides.iter().any(|o| o.original_start == start) {
            continue;
        }
        out.push(Occurrence {
            booking_id: b.id.clone(),
            original_start: start,
            start_at: start,
            end_at: start + duration,
            start_local: recurrence::local_of(tz, start),
            moved: false,
            cancelled: b.cancelled,
            started_at: None,
        });
    }
    for o in overrides {
        if o.start_at < to && o.end_at > from && !b.exdates.contains(&o.original_start) {
            out.push(Occurrence {
                booking_id: b.id.clone(),
                original_start: o.original_start,
                start_at: o.start_at,
                end_at: o.end_at,
                start_local: recurrence::local_of(tz, o.start_at),
                moved: o.start_at != o.original_start || o.end_at != o.original_start + duration,
                cancelled: b.cancelled || o.cancelled,
                started_at: o.started_at,
            });
        }
    }
    out.sort_by_key(|o| (o.start_at, o.original_start));
    Ok(out)
}
