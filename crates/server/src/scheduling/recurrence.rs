//! When a scheduled meeting's occurrences are: its first start (a wall-clock time in the
//! organiser's IANA time zone) repeated by an RFC 5545 RRULE, expanded in that time zone so a
//! 09:00 meeting stays at 09:00 local across DST changes. Expansion is bounded: never past
//! [`HORIZON_MS`] after the first start, never more than [`MAX_OCCURRENCES`].

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// A series ends at most this long after its first start (about two years).
pub const HORIZON_MS: i64 = 731 * 86_400_000;
/// At most this many occurrences in a series.
pub const MAX_OCCURRENCES: u16 = 1000;
/// The longest occurrence.
pub const MAX_DURATION_MINUTES: i64 = 24 * 60;

/// What the occurrences are computed from.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub time_zone: &'a str,
    /// `YYYY-MM-DDTHH:MM` (seconds allowed).
    pub start_local: &'a str,
    pub duration_minutes: i64,
    /// The RRULE value, without `RRULE:`.
    pub rrule: Option<&'a str>,
    /// Original starts (epoch ms) taken out.
    pub exdates: &'a [i64],
}

pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone (like Europe/Berlin)"))
}

pub fn parse_local(value: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("{value:?} is not a local time like 2026-03-27T09:00"))
}

/// The instant of a wall-clock time: the earlier one when the clock goes back (ambiguous),
/// an hour later when it skips (the time does not exist that day).
pub fn local_to_ms(tz: Tz, local: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(a, _) => a.timestamp_millis(),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(
                || local.and_utc().timestamp_millis(),
                |t| t.timestamp_millis(),
            ),
    }
}

/// An instant as wall-clock time in a zone, `YYYY-MM-DDTHH:MM`.
pub fn local_of(tz: Tz, ms: i64) -> String {
    match tz.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(t) => t.format("%Y-%m-%dT%H:%M").to_string(),
        _ => String::new(),
    }
}

/// An instant in iCalendar's UTC form, `YYYYMMDDTHHMMSSZ`.
pub fn ical_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default()
}

/// The rule's parts, upper-cased, `RRULE:` stripped.
fn parts(rule: &str) -> Vec<(String, String)> {
    let rule = rule.trim();
    let rule = rule.strip_prefix("RRULE:").unwrap_or(rule);
    rule.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim().to_ascii_uppercase(), v.trim().to_ascii_uppercase())
        })
        .collect()
}

/// Checks a rule: daily, weekly, monthly or yearly only (a meeting every minute is not a
/// meeting), no DTSTART of its own, and valid for the crate that expands it.
pub fn check_rule(rule: &str, tz: Tz, start_local: NaiveDateTime) -> Result<(), String> {
    if rule.len() > 500 || rule.contains(['\n', '\r']) {
        return Err("must be one RRULE value of at most 500 characters".into());
    }
    let parts = parts(rule);
    match parts
        .iter()
        .find(|(k, _)| k == "FREQ")
        .map(|(_, v)| v.as_str())
    {
        Some("DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY") => {}
        Some(other) => {
            return Err(format!(
                "FREQ={other} is not allowed: DAILY, WEEKLY, MONTHLY or YEARLY"
            ));
        }
        None => return Err("FREQ is required".into()),
    }
    if parts.iter().any(|(k, _)| k == "DTSTART") {
        return Err("DTSTART is given by start_local, not in the rule".into());
    }
    set(tz, start_local, rule).map(|_| ())
}

fn set(tz: Tz, start_local: NaiveDateTime, rule: &str) -> Result<rrule::RRuleSet, String> {
    let text = format!(
        "DTSTART;TZID={}:{}\nRRULE:{}",
        tz.name(),
        start_local.format("%Y%m%dT%H%M%S"),
        rule.trim()
            .strip_prefix("RRULE:")
            .unwrap_or(rule.trim())
            .to_ascii_uppercase()
    );
    text.parse::<rrule::RRuleSet>().map_err(|e| e.to_string())
}

/// The original starts (epoch ms) of the series' occurrences in [from, to), exceptions left
/// out; bounded by the horizon and the maximum count.
pub fn starts(s: &Series<'_>, from: i64, to: i64) -> Result<Vec<i64>, String> {
    let tz = parse_tz(s.time_zone)?;
    let local = parse_local(s.start_local)?;
    let first = local_to_ms(tz, local);
    let to = to.min(first + HORIZON_MS);
    if to <= from {
        return Ok(Vec::new());
    }
    let all: Vec<i64> = match s.rrule {
        None => vec![first],
        Some(rule) => {
            let rtz = rrule::Tz::Tz(tz);
            let at = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.with_timezone(&rtz))
                    .ok_or_else(|| "time out of range".to_owned())
            };
            // Only the window is expanded: the iterator stops at `before`.
            set(tz, local, rule)?
                .after(at(from.max(first) - 1)?)
                .before(at(to)?)
                .all(MAX_OCCURRENCES)
                .dates
                .into_iter()
                .map(|d| d.timestamp_millis())
                .collect()
        }
    };
    Ok(all
        .into_iter()
        .filter(|t| *t >= from && *t < to && !s.exdates.contains(t))
        .collect())
}

/// The first occurrence's start and the last one's end (within the horizon); None when the
/// rule yields no occurrence at all.
pub fn bounds(s: &Series<'_>) -> Result<Option<(i64, i64)>, String> {
    let tz = parse_tz(s.time_zone)?;
    let first = local_to_ms(tz, parse_local(s.start_local)?);
    let all = starts(&Series { exdates: &[], ..*s }, first, first + HORIZON_MS)?;
    Ok(match (all.first(), all.last()) {
        (Some(a), Some(b)) => Some((*a, *b + s.duration_minutes * 60_000)),
        _ => None,
    })
}

/// The rule with its end replaced: `UNTIL` (an instant) or `COUNT`, or neither.
pub fn with_end(rule: &str, until: Option<i64>, count: Option<u32>) -> String {
    let mut kept: Vec<String> = parts(rule)
        .into_iter()
        .filter(|(k, _)| k != "UNTIL" && k != "COUNT")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(until) = until {
        kept.push(format!("UNTIL={}", ical_utc(until)));
    }
    if let Some(count) = count {
        kept.push(format!("COUNT={count}"));
    }
    kept.join(";")
}

/// The rule's COUNT, if any.
pub fn count(rule: &str) -> Option<u32> {
    parts(rule)
        .into_iter()
        .find(|(k, _)| k == "COUNT")
        .and_then(|(_, v)| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(ms: i64) -> String {
        ical_utc(ms)
    }

    fn series<'a>(tz: &'a str, start: &'a str, rule: &'a str) -> Series<'a> {
        Series {
            time_zone: tz,
            start_local: start,
            duration_minutes: 60,
            rrule: Some(rule),
            exdates: &[],
        }
    }

    fn all(s: &Series<'_>) -> Vec<String> {
        let tz = parse_tz(s.time_zone).expect("tz");
        let first = local_to_ms(tz, parse_local(s.start_local).expect("local"));
        starts(s, first, first + HORIZON_MS)
            .expect("expands")
            .into_iter()
            .map(utc)
            .collect()
    }

    #[test]
    fn weekly_in_berlin_keeps_nine_o_clock_across_both_changes() {
        // Summer time starts 2026-03-29 and ends 2026-10-25.
        let s = series(
            "Europe/Berlin",
            "2026-03-23T09:00",
            "FREQ=WEEKLY;BYDAY=MO;COUNT=2",
        );
        assert_eq!(all(&s), ["20260323T080000Z", "20260330T070000Z"]);
        let s = series(
            "Europe/Berlin",
            "2026-10-19T09:00",
            "FREQ=WEEKLY;BYDAY=MO;COUNT=2",
        );
        assert_eq!(all(&s), ["20261019T070000Z", "20261026T080000Z"]);
        let tz = parse_tz("Europe/Berlin").expect("tz");
        let local: Vec<String> = starts(&s, 0, i64::MAX / 2)
            .expect("expands")
            .into_iter()
            .map(|t| local_of(tz, t))
            .collect();
        assert_eq!(local, ["2026-10-19T09:00", "2026-10-26T09:00"]);
    }

    #[test]
    fn daily_in_new_york_across_the_march_change_with_until() {
        // DST starts 2026-03-08 in the United States.
        let s = series(
            "America/New_York",
            "2026-03-06T09:00",
            "FREQ=DAILY;UNTIL=20260309T235959Z",
        );
        assert_eq!(
            all(&s),
            [
                "20260306T140000Z",
                "20260307T140000Z",
                "20260308T130000Z",
                "20260309T130000Z"
            ]
        );
    }

    #[test]
    fn monthly_by_weekday_and_by_date_in_shanghai() {
        // The second Tuesday of each month, 10:00 (UTC+8, no DST).
        let s = series(
            "Asia/Shanghai",
            "2026-01-13T10:00",
            "FREQ=MONTHLY;BYDAY=2TU;COUNT=3",
        );
        assert_eq!(
            all(&s),
            ["20260113T020000Z", "20260210T020000Z", "20260310T020000Z"]
        );
        // The 31st: months without one are skipped (RFC 5545).
        let s = series(
            "Asia/Shanghai",
            "2026-01-31T10:00",
            "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=3",
        );
        assert_eq!(
            all(&s),
            ["20260131T020000Z", "20260331T020000Z", "20260531T020000Z"]
        );
    }

    #[test]
    fn weekly_on_chosen_days_with_exceptions() {
        let tz = parse_tz("Europe/Berlin").expect("tz");
        let skip = local_to_ms(tz, parse_local("2026-03-25T09:00").expect("local"));
        let s = Series {
            exdates: &[skip],
            ..series(
                "Europe/Berlin",
                "2026-03-23T09:00",
                "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4",
            )
        };
        assert_eq!(
            all(&s),
            ["20260323T080000Z", "20260330T070000Z", "20260401T070000Z"]
        );
    }

    #[test]
    fn expansion_is_bounded() {
        let s = series("Europe/Berlin", "2026-01-01T09:00", "FREQ=DAILY");
        let got = all(&s);
        assert_eq!(got.len(), 731, "two years of days, not forever");
        let b = bounds(&s).expect("bounds").expect("some");
        assert!(b.1 - b.0 <= HORIZON_MS + 3_600_000);
        let tz = parse_tz("Europe/Berlin").expect("tz");
        let local = parse_local("2026-01-01T09:00").expect("local");
        assert!(check_rule("FREQ=SECONDLY", tz, local).is_err());
        assert!(check_rule("FREQ=MINUTELY;COUNT=5", tz, local).is_err());
        assert!(check_rule("BYDAY=MO", tz, local).is_err());
        assert!(check_rule("FREQ=WEEKLY;BYDAY=XX", tz, local).is_err());
        assert!(check_rule("FREQ=WEEKLY;BYDAY=MO,FR;INTERVAL=2", tz, local).is_ok());
    }

    #[test]
    fn a_time_skipped_by_the_change_moves_an_hour_later() {
        let tz = parse_tz("Europe/Berlin").expect("tz");
        let t = local_to_ms(tz, parse_local("2026-03-29T02:30").expect("local"));
        assert_eq!(utc(t), "20260329T013000Z");
    }

    #[test]
    fn the_end_of_a_rule_is_replaced() {
        assert_eq!(
            with_end("FREQ=WEEKLY;BYDAY=MO;COUNT=10", Some(0), None),
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=19700101T000000Z"
        );
        assert_eq!(count("FREQ=DAILY;COUNT=7"), Some(7));
    }
}
