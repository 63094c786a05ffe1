//! Every meeting leaves a record: a writer task per live meeting stores, in order, when it
//! started and ended, who attended (joined, left, how), and the log of what happened — off the
//! meeting actor, so a slow database never delays the meeting.

use conclave_conference::live::Event;
use conclave_store::model::{Attendance, Meeting, MeetingLogEntry};
use conclave_store::{Store, new_id, now_ms, repo};
use tokio::sync::mpsc;

pub enum Record {
    Started(Meeting),
    Event {
        at: i64,
        actor: String,
        event: Event,
    },
    Ended {
        at: i64,
    },
}

impl Record {
    pub fn event(actor: &str, event: &Event) -> Record {
        Record::Event {
            at: now_ms(),
            actor: actor.to_owned(),
            event: event.clone(),
        }
    }
}

pub async fn write(store: Store, meeting_id: String, mut records: mpsc::Receiver<Record>) {
    while let Some(record) = records.recv().await {
        if let Err(err) = store_record(&store, &meeting_id, record).await {
            tracing::warn!(%err, meeting_id, "cannot record the meeting's history");
        }
    }
}

async fn store_record(
    store: &Store,
    meeting_id: &str,
    record: Record,
) -> conclave_store::Result<()> {
    let mut conn = store.conn().await?;
    match record {
        Record::Started(meeting) => repo::meetings::insert(&mut conn, &meeting).await,
        Record::Ended { at } => repo::meetings::end(&mut conn, meeting_id, at).await,
        Record::Event { at, actor, event } => {
            match &event {
                // Voice activity is for the roster, a count for the one who asked: not the log.
                Event::Talking { .. } | Event::Counted { .. } | Event::Stroke { .. } => {
                    return Ok(());
                }
                Event::Joined { member } => {
                    let via = serde_json::to_value(member.via)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    let attendance = Attendance {
                        member_id: i64::from(member.id),
                        name: member.name.clone(),
                        number: member.number.clone(),
                        via,
                        joined_at: at,
                        left_at: None,
                    };
                    repo::meetings::joined(&mut conn, meeting_id, &attendance).await?;
                }
                Event::Left { member } | Event::Removed { member } => {
                    repo::meetings::left(&mut conn, meeting_id, i64::from(*member), at).await?;
                }
                _ => {}
            }
            let mut detail = serde_json::to_value(&event).unwrap_or_default();
            let kind = detail
                .as_object_mut()
                .and_then(|o| o.remove("type"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "event".into());
            let entry = MeetingLogEntry {
                id: new_id(),
                at,
                actor,
                kind,
                detail,
            };
            repo::meetings::log(&mut conn, meeting_id, &entry).await
        }
    }
}

/// At start, before any meeting can be live: meetings a crash (`kill -9`, power loss) left
/// open are ended, and their attendees' stays closed, at the time of the meeting's last known
/// activity — not "now", which would count the downtime as meeting time.
pub async fn close_abandoned(store: &Store) -> conclave_store::Result<usize> {
    let mut tx = store.begin().await?;
    let abandoned = repo::meetings::abandoned(&mut tx).await?;
    for (meeting_id, last_activity) in &abandoned {
        repo::meetings::end(&mut tx, meeting_id, *last_activity).await?;
    }
    tx.commit().await?;
    if !abandoned.is_empty() {
        metrics::counter!("conclave_meetings_recovered_total").increment(abandoned.len() as u64);
        tracing::warn!(
            meetings = abandoned.len(),
            "closed meetings left open by an unclean stop, at their last known activity"
        );
    }
    Ok(abandoned.len())
}
