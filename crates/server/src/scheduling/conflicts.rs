//! What clashes with a scheduled meeting's occurrences: the room booked then, a member with
//! another meeting then, or more people at once than the system's capacity. Pure: the API
//! gathers the occurrences, this compares them.

use serde::Serialize;
use utoipa::ToSchema;

/// An occurrence as the check sees it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub booking_id: String,
    pub name: String,
    pub room_id: String,
    pub start: i64,
    pub end: i64,
    /// Who attends, as keys (`user:<id>`, `contact:<id>`, `number:<digits>`) with names.
    pub people: Vec<(String, String)>,
    /// How many people to expect.
    pub size: i64,
}

/// One conflict of one occurrence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conflict {
    /// The occurrence of the meeting being booked (its start, epoch ms).
    pub occurrence_start: i64,
    /// `room`, `member` or `capacity`.
    pub kind: String,
    /// The other scheduled meeting (absent for capacity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_name: Option<String>,
    /// Its occurrence's start (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_start: Option<i64>,
    /// The members who are in both.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    pub detail: String,
}

/// Every conflict of `candidate`'s occurrences with `others` (occurrences of other bookings,
/// every tenant's for the capacity; only `same_tenant` ones count for rooms and members).
pub fn find(candidate: &[Slot], others: &[(Slot, bool)], capacity: i64) -> Vec<Conflict> {
    let mut out = Vec::new();
    for c in candidate {
        let overlapping: Vec<&(Slot, bool)> = others
            .iter()
            .filter(|(o, _)| o.start < c.end && o.end > c.start)
            .collect();
        for (o, same_tenant) in &overlapping {
            if !same_tenant {
                continue;
            }
            if o.room_id == c.room_id {
                out.push(Conflict {
                    occurrence_start: c.start,
                    kind: "room".into(),
                    booking_id: Some(o.booking_id.clone()),
                    booking_name: Some(o.name.clone()),
                    other_start: Some(o.start),
                    members: Vec::new(),
                    detail: format!("the room is booked for {:?}", o.name),
                });
            }
            let both: Vec<String> = c
                .people
                .iter()
                .filter(|(key, _)| o.people.iter().any(|(k, _)| k == key))
                .map(|(_, name)| name.clone())
                .collect();
            if !both.is_empty() {
                out.push(Conflict {
                    occurrence_start: c.start,
                    kind: "member".into(),
                    booking_id: Some(o.booking_id.clone()),
                    booking_name: Some(o.name.clone()),
                    other_start: Some(o.start),
                    detail: format!("{} already in {:?} then", both.join(", "), o.name),
                    members: both,
                });
            }
        }
        // The most people at once during the occurrence: the load changes only where another
        // occurrence starts.
        let mut peak = 0;
        let points = std::iter::once(c.start).chain(
            overlapping
                .iter()
                .map(|(o, _)| o.start)
                .filter(|s| *s > c.start && *s < c.end),
        );
        for p in points {
            let load: i64 = overlapping
                .iter()
                .filter(|(o, _)| o.start <= p && o.end > p)
                .map(|(o, _)| o.size)
                .sum();
            peak = peak.max(load);
        }
        if peak + c.size > capacity {
            out.push(Conflict {
                occurrence_start: c.start,
                kind: "capacity".into(),
                booking_id: None,
                booking_name: None,
                other_start: None,
                members: Vec::new(),
                detail: format!(
                    "{} people expected with {} in other meetings at once: more than the capacity of {}",
                    c.size, peak, capacity
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: &str, room: &str, start: i64, end: i64, people: &[&str], size: i64) -> Slot {
        Slot {
            booking_id: id.into(),
            name: id.into(),
            room_id: room.into(),
            start,
            end,
            people: people.iter().map(|p| ((*p).into(), (*p).into())).collect(),
            size,
        }
    }

    #[test]
    fn room_member_and_capacity() {
        let c = [slot("new", "r1", 100, 200, &["user:a", "user:b"], 10)];
        let others = [
            (slot("x", "r1", 150, 250, &[], 5), true),
            (slot("y", "r2", 0, 101, &["user:b"], 5), true),
            (slot("z", "r3", 200, 300, &["user:a"], 500), true),
            (slot("w", "r1", 120, 160, &["user:a"], 5), false),
        ];
        let found = find(&c, &others, 19);
        let kinds: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|f| (f.kind.as_str(), f.booking_id.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("room", Some("x")),
                ("member", Some("y")),
                ("capacity", None)
            ],
            "{found:?}"
        );
        // y ends at 101; x and the other tenant's w overlap from 150: 10 at once at most.
        assert!(found[2].detail.contains("with 10"), "{}", found[2].detail);
        assert!(find(&c, &others, 20).iter().all(|f| f.kind != "capacity"));
    }
}
