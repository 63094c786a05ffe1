//! Invitations by e-mail. Every change of a booking queues, in its own transaction, one
//! message per invited person with an address (`mail_outbox`): METHOD:REQUEST with the
//! booking's UID and its SEQUENCE (which rises with every change), METHOD:CANCEL when it is
//! cancelled. One task sends them through the configured SMTP server (`smtp_url`), retrying
//! with backoff and never giving up; a restart resumes what was waiting. The organiser reads
//! what became of each with `listMeetingMail`.

use super::recurrence;
use crate::api::AppState;
use chrono::{Duration as Minutes, NaiveDateTime, Utc};
use conclave_store::model::{Booking, Language, MailMessage, MemberKind, OccurrenceOverride, Room};
use conclave_store::{Conn, new_id, now_ms, repo};
use icalendar::{Calendar, CalendarDateTime, Component, Event, EventLike, EventStatus, Property};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Backoff after the n-th failed attempt: 2 s, 4 s, 8 s … at most 15 minutes.
fn backoff(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    (2_000i64 << exp).min(15 * 60_000)
}

fn parse_local(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
}

/// The booking as an iCalendar object: the series (in the organiser's time zone, its RRULE,
/// the occurrences taken out as EXDATE) and each moved occurrence (RECURRENCE-ID).
pub fn ics(
    b: &Booking,
    room: &Room,
    overrides: &[OccurrenceOverride],
    cancel: bool,
    from: &str,
    to: &str,
) -> String {
    let uid = format!("{}@conclave", b.id);
    let sequence = u32::try_from(b.sequence).unwrap_or(u32::MAX);
    let location = format!("{} {}", room.number, room.name);
    let mut cal = Calendar::new();
    cal.append_property(Property::new(
        "METHOD",
        if cancel { "CANCEL" } else { "REQUEST" },
    ));
    let start = parse_local(&b.start_local).unwrap_or_default();
    let mut ev = Event::new();
    ev.uid(&uid)
        .sequence(sequence)
        .summary(&b.name)
        .location(&location)
        .timestamp(Utc::now())
        .starts(CalendarDateTime::WithTimezone {
            date_time: start,
            tzid: b.time_zone.clone(),
        })
        .ends(CalendarDateTime::WithTimezone {
            date_time: start + Minutes::minutes(b.duration_minutes),
            tzid: b.time_zone.clone(),
        })
        .add_property("ORGANIZER", format!("mailto:{from}"))
        .add_property("ATTENDEE", format!("mailto:{to}"));
    if !b.description.is_empty() {
        ev.description(&b.description);
    }
    if let Some(rule) = b.rrule.as_deref().filter(|r| !r.is_empty()) {
        ev.add_property("RRULE", rule);
    }
    let taken_out: Vec<i64> = b
        .exdates
        .iter()
        .copied()
        .chain(
            overrides
                .iter()
                .filter(|o| o.cancelled)
                .map(|o| o.original_start),
        )
        .collect();
    for t in taken_out {
        ev.add_multi_property("EXDATE", &recurrence::ical_utc(t));
    }
    if cancel {
        ev.status(EventStatus::Cancelled);
    } else {
        ev.status(EventStatus::Confirmed);
    }
    cal.push(ev.done());
    if !cancel {
        for o in overrides
            .iter()
            .filter(|o| !o.cancelled && o.start_at != o.original_start)
        {
            let mut moved = Event::new();
            moved
                .uid(&uid)
                .sequence(sequence)
                .summary(&b.name)
                .location(&location)
                .timestamp(Utc::now())
                .add_property("RECURRENCE-ID", recurrence::ical_utc(o.original_start))
                .add_property("DTSTART", recurrence::ical_utc(o.start_at))
                .add_property("DTEND", recurrence::ical_utc(o.end_at));
            cal.push(moved.done());
        }
    }
    cal.done().to_string()
}

fn texts(lang: Language, b: &Booking, room: &Room, cancel: bool) -> (String, String) {
    let when = format!(
        "{} ({}), {} min",
        b.start_local.replace('T', " "),
        b.time_zone,
        b.duration_minutes
    );
    let pin = b.pin.clone().unwrap_or_default();
    match (lang, cancel) {
        (Language::Chinese, false) => (
            format!("会议邀请：{}", b.name),
            format!(
                "您被邀请参加会议“{}”。\n时间：{when}\n{}\n拨入会议室：{}{}\n\n日历邀请见附件。",
                b.name,
                if b.rrule.is_some() {
                    "（周期会议）"
                } else {
                    ""
                },
                room.number,
                if pin.is_empty() {
                    String::new()
                } else {
                    format!("，密码：{pin}")
                },
            ),
        ),
        (Language::Chinese, true) => (
            format!("会议已取消：{}", b.name),
            format!("会议“{}”（{when}）已取消。", b.name),
        ),
        (Language::English, false) => (
            format!("Invitation: {}", b.name),
            format!(
                "You are invited to \"{}\".\nWhen: {when}{}\nDial room {}{}\n\nThe calendar invitation is attached.",
                b.name,
                if b.rrule.is_some() { ", repeating" } else { "" },
                room.number,
                if pin.is_empty() {
                    String::new()
                } else {
                    format!(", PIN {pin}")
                },
            ),
        ),
        (Language::English, true) => (
            format!("Cancelled: {}", b.name),
            format!("\"{}\" ({when}) is cancelled.", b.name),
        ),
    }
}

/// A reminder's subject and text: the occurrence's start in the organiser's time zone.
fn reminder_texts(
    lang: Language,
    b: &Booking,
    room: &Room,
    start_local: &str,
    minutes: u32,
) -> (String, String) {
    let when = format!("{} ({})", start_local.replace('T', " "), b.time_zone);
    let pin = b.pin.clone().unwrap_or_default();
    match lang {
        Language::Chinese => (
            format!("会议提醒：{}（{minutes} 分钟后开始）", b.name),
            format!(
                "会议“{}”将于 {when} 开始。\n拨入会议室：{}{}",
                b.name,
                room.number,
                if pin.is_empty() {
                    String::new()
                } else {
                    format!("，密码：{pin}")
                },
            ),
        ),
        Language::English => (
            format!("Reminder: {} starts in {minutes} min", b.name),
            format!(
                "\"{}\" starts at {when}.\nDial room {}{}",
                b.name,
                room.number,
                if pin.is_empty() {
                    String::new()
                } else {
                    format!(", PIN {pin}")
                },
            ),
        ),
    }
}

/// Who is mailed about a booking: the invited users and contacts with an address (each
/// address once), each with their language — a user's own, else the room's (the one its
/// prompts speak); contacts have none of their own.
async fn recipients(
    conn: &mut Conn,
    b: &Booking,
    room: &Room,
) -> conclave_store::Result<Vec<(String, String, Language)>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for m in &b.members {
        let found = match (m.kind, &m.user_id, &m.contact_id) {
            (MemberKind::User, Some(id), _) => repo::users::get(conn, id)
                .await?
                .and_then(|u| u.email.map(|e| (e, u.language.unwrap_or(room.language)))),
            (MemberKind::Contact, _, Some(id)) => repo::contacts::get(conn, id)
                .await?
                .and_then(|c| c.email.map(|e| (e, room.language))),
            _ => None,
        };
        let Some((address, language)) = found.filter(|(a, _)| a.contains('@')) else {
            continue;
        };
        if seen.insert(address.to_lowercase()) {
            out.push((address, m.display_name.clone(), language));
        }
    }
    Ok(out)
}

/// Queues the invitations of a booking's change (in the caller's transaction). Nothing is
/// queued when no mail server is configured. The recipients are the invited users and
/// contacts with an e-mail address, each in their language (`recipients`).
pub async fn enqueue(
    state: &AppState,
    conn: &mut Conn,
    b: &Booking,
    cancel: bool,
) -> conclave_store::Result<usize> {
    if state.settings.smtp_url.is_none() {
        return Ok(0);
    }
    let Some(room) = repo::rooms::get(conn, &b.room_id).await? else {
        return Ok(0);
    };
    let overrides = repo::bookings::overrides(conn, &b.id).await?;
    let now = now_ms();
    let mut queued = 0;
    for (address, name, language) in recipients(conn, b, &room).await? {
        let (subject, body) = texts(language, b, &room, cancel);
        let msg = MailMessage {
            id: new_id(),
            tenant_id: b.tenant_id.clone(),
            booking_id: b.id.clone(),
            ics: ics(
                b,
                &room,
                &overrides,
                cancel,
                &state.settings.mail_from,
                &address,
            ),
            recipient: address,
            recipient_name: name,
            language: language.as_str().to_owned(),
            method: if cancel { "CANCEL" } else { "REQUEST" }.to_owned(),
            sequence: b.sequence,
            subject,
            body,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
            created_at: now,
            dedupe_key: None,
            occurrence_original: None,
            occurrence_start: None,
        };
        repo::mail::insert(conn, &msg).await?;
        queued += 1;
    }
    Ok(queued)
}

/// How far ahead of its due time a reminder is queued (then it waits in the outbox, due at
/// the start minus the lead).
const REMINDER_LOOKAHEAD_MS: i64 = 2 * 60_000;

/// Queues the reminders of occurrences starting within the lead (plus the look-ahead), due
/// `lead` minutes before each start (at once when the start is nearer). Each occurrence and
/// address once: the outbox's unique `dedupe_key` holds across passes and restarts; a moved
/// occurrence has a new start, so a new key. Cancelled occurrences and those already begun
/// get none. Answers how many were queued.
pub async fn queue_reminders(state: &AppState) -> anyhow::Result<usize> {
    let lead = i64::from(state.settings.mail_reminder_minutes) * 60_000;
    if state.settings.smtp_url.is_none() || lead == 0 {
        return Ok(0);
    }
    let now = now_ms();
    let horizon = now + lead + REMINDER_LOOKAHEAD_MS;
    let mut conn = state.store.conn().await?;
    let mut queued = 0;
    for b in repo::bookings::active_between(&mut conn, now, horizon).await? {
        let overrides = repo::bookings::overrides(&mut conn, &b.id).await?;
        let Ok(occ) = super::occurrences(&b, &overrides, now, horizon) else {
            continue;
        };
        let occ: Vec<_> = occ
            .into_iter()
            .filter(|o| {
                !o.cancelled && o.started_at.is_none() && o.start_at > now && o.start_at <= horizon
            })
            .collect();
        if occ.is_empty() {
            continue;
        }
        let Some(room) = repo::rooms::get(&mut conn, &b.room_id).await? else {
            continue;
        };
        let people = recipients(&mut conn, &b, &room).await?;
        for o in &occ {
            for (address, name, language) in &people {
                let (subject, body) = reminder_texts(
                    *language,
                    &b,
                    &room,
                    &o.start_local,
                    state.settings.mail_reminder_minutes,
                );
                let msg = MailMessage {
                    id: new_id(),
                    tenant_id: b.tenant_id.clone(),
                    booking_id: b.id.clone(),
                    recipient: address.clone(),
                    recipient_name: name.clone(),
                    language: language.as_str().to_owned(),
                    method: "REMINDER".to_owned(),
                    sequence: b.sequence,
                    subject,
                    body,
                    ics: String::new(),
                    attempts: 0,
                    next_attempt_at: (o.start_at - lead).max(now),
                    sent_at: None,
                    last_error: None,
                    created_at: now,
                    dedupe_key: Some(format!(
                        "reminder:{}:{}:{}:{}",
                        b.id,
                        o.original_start,
                        o.start_at,
                        address.to_lowercase()
                    )),
                    occurrence_original: Some(o.original_start),
                    occurrence_start: Some(o.start_at),
                };
                if repo::mail::insert_once(&mut conn, &msg).await? {
                    queued += 1;
                }
            }
        }
    }
    Ok(queued)
}

/// Why a reminder due now must not go (its occurrence was cancelled, moved or has begun
/// since it was queued), if so.
async fn stale_reminder(
    conn: &mut Conn,
    m: &MailMessage,
    now: i64,
) -> anyhow::Result<Option<&'static str>> {
    let (Some(original), Some(start)) = (m.occurrence_original, m.occurrence_start) else {
        return Ok(None);
    };
    if start <= now {
        return Ok(Some("the occurrence has begun"));
    }
    let Some(b) = repo::bookings::get(conn, &m.booking_id).await? else {
        return Ok(Some("the booking is gone"));
    };
    let overrides = repo::bookings::overrides(conn, &b.id).await?;
    let still = super::occurrences(&b, &overrides, start, start + 1)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .any(|o| {
            o.original_start == original
                && o.start_at == start
                && !o.cancelled
                && o.started_at.is_none()
        });
    Ok((!still).then_some("the occurrence was cancelled or moved"))
}

fn message(from: &str, m: &MailMessage) -> Result<Message, String> {
    let from: Mailbox = from.parse().map_err(|e| format!("sender: {e}"))?;
    let to: Mailbox = format!(
        "{} <{}>",
        m.recipient_name.replace(['<', '>', '"'], ""),
        m.recipient
    )
    .parse()
    .or_else(|_| m.recipient.parse())
    .map_err(|e| format!("recipient: {e}"))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(m.subject.clone());
    if m.method == "REMINDER" {
        return builder
            .singlepart(SinglePart::plain(m.body.clone()))
            .map_err(|e| e.to_string());
    }
    let calendar = ContentType::parse(&format!(
        "text/calendar; charset=utf-8; method={}",
        m.method
    ))
    .map_err(|e| e.to_string())?;
    builder
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(m.body.clone()))
                .singlepart(Attachment::new("invite.ics".to_owned()).body(m.ics.clone(), calendar)),
        )
        .map_err(|e| e.to_string())
}

/// Sends what is due, then sleeps until the next is due (at most a minute) or mail is queued.
pub async fn run(state: AppState) {
    let Some(url) = state.settings.smtp_url.clone() else {
        return;
    };
    let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(&url) {
        Ok(t) => t.timeout(Some(Duration::from_secs(30))).build(),
        Err(err) => {
            tracing::error!(%err, "smtp_url is not usable: invitations are not mailed");
            return;
        }
    };
    if let Ok(mut conn) = state.store.conn().await
        && let Err(err) = repo::mail::all_due(&mut conn, now_ms()).await
    {
        tracing::warn!(%err, "mail outbox");
    }
    loop {
        match queue_reminders(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "reminders queued"),
            Err(err) => tracing::warn!(%err, "reminders could not be queued"),
        }
        let now = now_ms();
        let due = match state.store.conn().await {
            Ok(mut conn) => repo::mail::due(&mut conn, now, 50)
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for m in &due {
            if m.method == "REMINDER" {
                let stale = match state.store.conn().await {
                    Ok(mut conn) => stale_reminder(&mut conn, m, now_ms()).await,
                    Err(err) => Err(err.into()),
                };
                match stale {
                    Ok(None) => {}
                    Ok(Some(reason)) => {
                        if let Ok(mut conn) = state.store.conn().await
                            && let Err(err) =
                                repo::mail::drop_unsent(&mut conn, &m.id, reason).await
                        {
                            tracing::warn!(%err, "mail outbox");
                        }
                        continue;
                    }
                    Err(err) => {
                        // Tried again later, as a failed send would be.
                        tracing::warn!(%err, "a reminder's occurrence could not be checked");
                        if let Ok(mut conn) = state.store.conn().await {
                            let attempts = m.attempts + 1;
                            let at = now_ms() + backoff(attempts);
                            let why = format!("not checked: {err}");
                            if let Err(err) =
                                repo::mail::retry_at(&mut conn, &m.id, attempts, at, &why).await
                            {
                                tracing::warn!(%err, "mail outbox");
                            }
                        }
                        continue;
                    }
                }
            }
            let attempts = m.attempts + 1;
            let outcome = match message(&state.settings.mail_from, m) {
                Ok(msg) => transport
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let Ok(mut conn) = state.store.conn().await else {
                continue;
            };
            let stored = match &outcome {
                Ok(()) => repo::mail::sent(&mut conn, &m.id, attempts, now_ms()).await,
                Err(err) => {
                    tracing::info!(to = %m.recipient, %err, attempts, "invitation not sent yet");
                    repo::mail::retry_at(
                        &mut conn,
                        &m.id,
                        attempts,
                        now_ms() + backoff(attempts),
                        err,
                    )
                    .await
                }
            };
            if let Err(err) = stored {
                tracing::warn!(%err, "mail outbox");
            }
        }
        if due.len() == 50 {
            continue;
        }
        let next = match state.store.conn().await {
            Ok(mut conn) => repo::mail::next_due(&mut conn).await.ok().flatten(),
            Err(_) => None,
        };
        // At most a minute: reminders entering their window are queued on the next pass
        // (ahead of their due time by REMINDER_LOOKAHEAD_MS, so none is late).
        let wait = next.map_or(60_000, |t| (t - now_ms()).clamp(0, 60_000));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = state.mail_queued.notified() => {}
        }
    }
}
