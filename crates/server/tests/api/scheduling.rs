//! Scheduled meetings: booking, recurrence and its exceptions, conflicts, permissions and
//! tenancy, my meetings and the calendar feed (both backends); a meeting that starts by itself
//! and calls a sipp UAS; a server killed and restarted around the start starts it once.

use crate::both_backends;
use crate::common::{Db, TestServer, free_udp_port, sipp_installed, start};
use crate::restart::spawn_on;
use crate::room_call::Caller;
use crate::trunks::{ANSWERING_GATEWAY, explain, gateway, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    booking_a_series,
    conflicts_and_exceptions,
    permissions_and_tenancy
);

fn weekly(room: &str, start_local: &str, extra: Value) -> Value {
    let mut body = json!({
        "room_id": room, "time_zone": "Europe/Berlin", "start_local": start_local,
        "duration_minutes": 60, "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

fn starts(occ: &Value) -> Vec<String> {
    occ["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["start_local"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn booking_a_series(s: &TestServer) {
    let admin = s.admin().await;
    let room = s.room(&admin, "8101", "Board room").await;
    // Refusals name their fields, all at once.
    s.post(
        "/bookings",
        &admin,
        json!({ "room_id": "nope", "time_zone": "Mars/Base", "start_local": "tomorrow",
                "duration_minutes": 1, "rrule": "FREQ=SECONDLY", "pin": "12" }),
    )
    .await
    .expect_problem(422, Some("time_zone"));
    let bad = s
        .post(
            "/bookings",
            &admin,
            weekly(
                &room,
                "2026-03-23T09:00",
                json!({ "rrule": "FREQ=MINUTELY", "pin": "1x" }),
            ),
        )
        .await;
    bad.expect_problem(422, Some("rrule"));
    assert!(bad.fields().contains(&"pin".to_owned()), "{}", bad.body);
    let proposal = s.get("/bookings/proposal", &admin).await;
    proposal.expect(200);
    assert_eq!(proposal.body["pin"].as_str().map(str::len), Some(6));
    // Weekly on Mondays at 09:00 Berlin, across the change to summer time (29 March).
    let b = s
        .post(
            "/bookings",
            &admin,
            weekly(&room, "2026-03-23T09:00", json!({ "name": "Weekly" })),
        )
        .await;
    b.expect(201);
    let id = b.id();
    assert_eq!(b.body["pin"].as_str().map(str::len), Some(6), "{}", b.body);
    let occ = s
        .get(
            &format!("/bookings/{id}/occurrences?from=1774000000000&to=1780000000000"),
            &admin,
        )
        .await;
    occ.expect(200);
    assert_eq!(
        starts(&occ.body),
        [
            "2026-03-23T09:00",
            "2026-03-30T09:00",
            "2026-04-06T09:00",
            "2026-04-13T09:00"
        ]
    );
    let utc: Vec<i64> = occ.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["start_at"].as_i64().expect("start_at"))
        .collect();
    assert_eq!(
        utc[1] - utc[0],
        7 * 86_400_000 - 3_600_000,
        "one hour less across the change"
    );
    // The whole series moves to 10:00.
    let moved = s
        .patch(
            &format!("/bookings/{id}"),
            &admin,
            json!({ "start_local": "2026-03-23T10:00" }),
        )
        .await;
    moved.expect(200);
    assert_eq!(moved.body["sequence"], 1);
    let listed = s.get("/bookings", &admin).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    // Cancelled: kept, marked, sequence rises.
    let cancelled = s.delete(&format!("/bookings/{id}"), &admin).await;
    cancelled.expect(200);
    assert_eq!(
        (
            cancelled.body["cancelled"].clone(),
            cancelled.body["sequence"].clone()
        ),
        (json!(true), json!(2))
    );
}

async fn conflicts_and_exceptions(s: &TestServer) {
    let admin = s.admin().await;
    let alice_id = s.user(&admin, "alice", "user", None).await;
    let room = s.room(&admin, "8201", "Room A").await;
    let other_room = s.room(&admin, "8202", "Room B").await;
    let member = json!([{ "kind": "user", "user_id": alice_id, "role": "member" }]);
    let first = s
        .post(
            "/bookings",
            &admin,
            weekly(
                &room,
                "2027-03-22T09:00",
                json!({ "name": "First", "members": member }),
            ),
        )
        .await;
    first.expect(201);
    let first_id = first.id();
    // The same room at an overlapping time (New York's 03:30 is Berlin's 09:30 that week:
    // both have changed to summer time).
    let clash = json!({
        "room_id": room, "time_zone": "America/New_York", "start_local": "2027-03-29T03:30",
        "duration_minutes": 30, "name": "Clash",
    });
    let refused = s.post("/bookings", &admin, clash.clone()).await;
    refused.expect_problem(409, Some("conflicts"));
    let conflicts = refused.body["conflicts"]
        .as_array()
        .expect("conflicts")
        .clone();
    assert!(
        conflicts
            .iter()
            .any(|c| c["kind"] == "room" && c["booking_id"] == json!(first_id)),
        "{conflicts:?}"
    );
    // A member busy in another room; checked without booking.
    let busy = json!({
        "room_id": other_room, "time_zone": "Asia/Shanghai", "start_local": "2027-03-29T15:00",
        "duration_minutes": 30, "members": member,
    });
    let checked = s.post("/bookings/conflicts", &admin, busy).await;
    checked.expect(200);
    let found = checked.body["conflicts"].as_array().expect("conflicts");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0]["kind"].clone(), found[0]["members"].clone()),
        (json!("member"), json!(["User alice"]))
    );
    // The user decides: booked anyway.
    let mut anyway = clash.clone();
    anyway["ignore_conflicts"] = json!(true);
    s.post("/bookings", &admin, anyway).await.expect(201);
    // One occurrence cancelled, another moved; occurrences show it.
    let occ_path = format!("/bookings/{first_id}/occurrences?from=1805000000000&to=1812000000000");
    let occ = s.get(&occ_path, &admin).await;
    let items = occ.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 4, "{}", occ.body);
    let second = items[1]["original_start"].as_i64().expect("start");
    let third = items[2]["original_start"].as_i64().expect("start");
    s.patch(
        &format!("/bookings/{first_id}/occurrences/{second}"),
        &admin,
        json!({ "cancelled": true }),
    )
    .await
    .expect(200);
    s.patch(
        &format!("/bookings/{first_id}/occurrences/{third}"),
        &admin,
        json!({ "start_local": "2027-04-05T14:00", "duration_minutes": 30 }),
    )
    .await
    .expect(200);
    s.patch(
        &format!("/bookings/{first_id}/occurrences/{}", third + 1),
        &admin,
        json!({ "cancelled": true }),
    )
    .await
    .expect_problem(404, None);
    let occ = s.get(&occ_path, &admin).await;
    let items = occ.body["items"].as_array().expect("items").clone();
    assert_eq!(items[1]["cancelled"], true, "{}", occ.body);
    assert_eq!(
        (items[2]["start_local"].clone(), items[2]["moved"].clone()),
        (json!("2027-04-05T14:00"), json!(true))
    );
    // This and the following: the series ends before the fourth; a new one starts at 11:00.
    let fourth = items[3]["original_start"].as_i64().expect("start");
    let split = s
        .patch(
            &format!("/bookings/{first_id}/occurrences/{fourth}"),
            &admin,
            json!({ "scope": "following", "start_local": "2027-04-12T11:00" }),
        )
        .await;
    split.expect(200);
    assert_eq!(split.body["split_from"], json!(first_id));
    assert_eq!(
        split.body["rrule"], "FREQ=WEEKLY;BYDAY=MO;COUNT=1",
        "{}",
        split.body
    );
    let old = s.get(&occ_path, &admin).await;
    assert_eq!(
        starts(&old.body),
        ["2027-03-22T09:00", "2027-03-29T09:00", "2027-04-05T14:00"]
    );
    let new_occ = s
        .get(
            &format!(
                "/bookings/{}/occurrences?from=1805000000000&to=1812000000000",
                split.id()
            ),
            &admin,
        )
        .await;
    assert_eq!(starts(&new_occ.body), ["2027-04-12T11:00"]);
    // Alice sees every occurrence she is invited to, and subscribes to them.
    let alice = s.token("alice", "alice-password").await;
    let mine = s
        .get("/my/meetings?from=1805000000000&to=1812000000000", &alice)
        .await;
    mine.expect(200);
    let names: Vec<&str> = mine.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, ["First", "First", "First", "First"], "{}", mine.body);
    assert_eq!(mine.body["items"][0]["role"], "member");
    s.get("/my/meetings?from=5&to=1", &alice)
        .await
        .expect_problem(422, Some("to"));
    let feed = s.post("/my/calendar-feed", &alice, json!({})).await;
    feed.expect(201);
    let path = feed.body["path"].as_str().expect("path").to_owned();
    let ics = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .expect("feed");
    assert_eq!(ics.status().as_u16(), 200);
    assert!(
        ics.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/calendar")
    );
    let text = ics.text().await.expect("text");
    assert!(
        text.starts_with("BEGIN:VCALENDAR\r\n") && text.contains("SUMMARY:First"),
        "{text}"
    );
    s.delete("/my/calendar-feed", &alice).await.expect(204);
    let gone = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .expect("feed");
    assert_eq!(gone.status().as_u16(), 404);
}

async fn permissions_and_tenancy(s: &TestServer) {
    let admin = s.admin().await;
    let alice_id = s.user(&admin, "alice", "user", None).await;
    s.user(&admin, "bob", "user", None).await;
    let room = s.room(&admin, "8301", "Room").await;
    let b = s
        .post(
            "/bookings",
            &admin,
            weekly(
                &room,
                "2027-06-07T09:00",
                json!({ "members": [{ "kind": "user", "user_id": alice_id, "role": "member" }] }),
            ),
        )
        .await;
    b.expect(201);
    let id = b.id();
    let alice = s.token("alice", "alice-password").await;
    let bob = s.token("bob", "bob-password").await;
    // Invited: sees it, may not change it (403, audited); not invited: not found.
    s.get(&format!("/bookings/{id}"), &alice).await.expect(200);
    s.patch(
        &format!("/bookings/{id}"),
        &alice,
        json!({ "name": "Mine now" }),
    )
    .await
    .expect_problem(403, None);
    s.get(&format!("/bookings/{id}"), &bob)
        .await
        .expect_problem(404, None);
    // Booking a room one does not run is refused and audited.
    s.post(
        "/bookings",
        &bob,
        weekly(&room, "2027-06-08T09:00", json!({})),
    )
    .await
    .expect_problem(403, None);
    let denied = s.get("/audit-events?action=updateMeeting", &admin).await;
    assert!(
        denied.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["outcome"] == "denied"),
        "{}",
        denied.body
    );
    // Another tenant sees nothing of it.
    let tenant_b = s
        .post("/tenants", &admin, json!({ "name": "Tenant B" }))
        .await
        .id();
    s.user(&admin, "tb", "tenant_admin", Some(&tenant_b)).await;
    let tb = s.token("tb", "tb-password").await;
    s.get(&format!("/bookings/{id}"), &tb)
        .await
        .expect_problem(404, None);
    s.delete(&format!("/bookings/{id}"), &tb)
        .await
        .expect_problem(404, None);
    s.post(
        "/bookings",
        &tb,
        weekly(&room, "2027-06-08T09:00", json!({})),
    )
    .await
    .expect_problem(422, Some("room_id"));
}

/// Now plus `secs`, as UTC wall-clock time with seconds.
pub(crate) fn utc_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        + secs;
    let days = now.div_euclid(86_400);
    let rem = now.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A meeting started from a booking asks callers for the booking's PIN (the one in the
/// invitation), in the lobby and with the feature code; the room's own PIN does not let them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_meeting_asks_for_the_bookings_pin() {
    let s = start(Db::Sqlite, "scheduled_pin").await.expect("server");
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8402", "name": "Board", "pin": "1234" }),
        )
        .await
        .id();
    s.post(
        "/bookings",
        &admin,
        json!({
            "room_id": room, "time_zone": "UTC", "start_local": utc_in(1), "duration_minutes": 30,
            "pin": "5678", "settings": { "dial_out": false },
        }),
    )
    .await
    .expect(201);
    let live = wait_for(&s, &admin, &format!("/conferences/{room}"), |r| {
        r["room_id"] == json!(room)
    })
    .await;
    assert_eq!(live["room_id"], json!(room), "{live}");
    let sip = s.running.as_ref().expect("running").sip.udp;
    let roster = async || {
        s.get(&format!("/conferences/{room}"), &admin).await.body["members"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let mut a = Caller::new(sip, "alice").await;
    assert_eq!(a.dial("8402").await, 200, "answered, to key in the PIN");
    a.press("1234#").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(roster().await, 0, "the room's own PIN does not let her in");
    a.press("5678#").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(roster().await, 1, "the booking's PIN does");
    let mut wrong = Caller::new(sip, "eve").await;
    assert_eq!(wrong.dial("*400*8402*1234").await, 403);
    let mut direct = Caller::new(sip, "dave").await;
    assert_eq!(direct.dial("*400*8402*5678").await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(roster().await, 2);
    assert_eq!(a.hang_up("8402").await, 200);
    assert_eq!(direct.hang_up("*400*8402*5678").await, 200);
    s.post(&format!("/conferences/{room}/end"), &admin, json!({}))
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_meeting_starts_by_itself_and_calls_its_members() {
    if !sipp_installed() {
        return;
    }
    let s = start(Db::Sqlite, "scheduled_start").await.expect("server");
    let admin = s.admin().await;
    let port = free_udp_port();
    s.trunk_to(&admin, "Carrier", port).await;
    let room = s.room(&admin, "8401", "Scheduled").await;
    let answering = gateway(ANSWERING_GATEWAY, port, "u1", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = s
        .post(
            "/bookings",
            &admin,
            json!({
                "room_id": room, "time_zone": "UTC", "start_local": utc_in(2), "duration_minutes": 30,
                "settings": { "dial_out": true, "mute_on_entry": true },
                "members": [{ "kind": "number", "number": "+8613900000001", "display_name": "Field", "role": "chairman" }],
            }),
        )
        .await;
    b.expect(201);
    let roster = wait_for(&s, &admin, &format!("/conferences/{room}"), |r| {
        r["members"][0]["role"] == "chairman"
    })
    .await;
    assert_eq!(
        (
            roster["members"][0]["name"].clone(),
            roster["members"][0]["number"].clone()
        ),
        (json!("Field"), json!("+8613900000001")),
        "{roster}"
    );
    let occ = s
        .get(
            &format!("/bookings/{}/occurrences?from=0&to=9000000000000", b.id()),
            &admin,
        )
        .await;
    let _ = occ;
    s.post(&format!("/conferences/{room}/end"), &admin, json!({}))
        .await;
    let out = answering.await.expect("sipp");
    assert!(out.status.success(), "answering gateway: {}", explain(&out));
    s.stop().await;
}

async fn send(
    p: &crate::restart::Process,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    p.send(method, path, Some(token), body).await
}

async fn started_count(p: &crate::restart::Process, token: &str, booking: &str) -> usize {
    let (_, events) = send(
        p,
        reqwest::Method::GET,
        "/audit-events?action=startScheduledMeeting&limit=200",
        token,
        None,
    )
    .await;
    events["items"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|e| e["target_id"] == json!(booking))
            .count()
    })
}

/// Polls until `ok` (at most ~15 s).
async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    for _ in 0..150 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_around_the_start_starts_it_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = spawn_on(dir.path(), None, Some("admin-password-1"), 0);
    p.ready().await;
    let admin = p.login("admin", "admin-password-1").await;
    let (_, room) = send(
        &p,
        reqwest::Method::POST,
        "/rooms",
        &admin,
        Some(json!({ "number": "8501", "name": "R" })),
    )
    .await;
    let room = room["id"].as_str().expect("room").to_owned();
    let (_, probe_room) = send(
        &p,
        reqwest::Method::POST,
        "/rooms",
        &admin,
        Some(json!({ "number": "8502", "name": "P" })),
    )
    .await;
    let probe_room = probe_room["id"].as_str().expect("room").to_owned();
    // Booked to start in 3 s; the server is killed before.
    let (status, b) = send(
        &p,
        reqwest::Method::POST,
        "/bookings",
        &admin,
        Some(json!({ "room_id": room, "time_zone": "UTC", "start_local": utc_in(3), "duration_minutes": 30 })),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_owned();
    drop(p); // SIGKILL
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Back within the meeting's time: it starts, late.
    let mut p = spawn_on(dir.path(), None, None, 0);
    p.ready().await;
    let admin = p.login("admin", "admin-password-1").await;
    until("the late start", async || {
        send(
            &p,
            reqwest::Method::GET,
            &format!("/conferences/{room}"),
            &admin,
            None,
        )
        .await
        .0 == 200
    })
    .await;
    assert_eq!(started_count(&p, &admin, &id).await, 1);
    // Killed during the meeting and restarted: not started again. A probe booked after the
    // restart starts, so the starter has looked at everything due since.
    drop(p);
    let mut p = spawn_on(dir.path(), None, None, 0);
    p.ready().await;
    let admin = p.login("admin", "admin-password-1").await;
    let (status, probe) = send(
        &p,
        reqwest::Method::POST,
        "/bookings",
        &admin,
        Some(json!({ "room_id": probe_room, "time_zone": "UTC", "start_local": utc_in(-1), "duration_minutes": 30 })),
    )
    .await;
    assert_eq!(status, 201, "{probe}");
    let probe_id = probe["id"].as_str().expect("id").to_owned();
    until("the probe's start", async || {
        started_count(&p, &admin, &probe_id).await == 1
    })
    .await;
    assert_eq!(
        started_count(&p, &admin, &id).await,
        1,
        "started once, never twice"
    );
    let (live, _) = send(
        &p,
        reqwest::Method::GET,
        &format!("/conferences/{room}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(live, 404, "the killed meeting is not started again");
    p.stop();
}

/// The Python with `aiosmtpd` (scripts/install-deps.sh --test puts it in the venv).
fn smtp_python() -> Option<String> {
    let python = std::env::var("CONCLAVE_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conclave/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: no {python} with aiosmtpd (scripts/install-deps.sh --test)");
    }
    ok.then_some(python)
}

/// A real SMTP server (aiosmtpd) that stores what it receives in a Maildir.
fn smtp_server(python: &str, port: u16, maildir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("aiosmtpd")
}

/// What arrived: each message's To, Subject, the calendar part's METHOD and text, and the
/// plain text (decoded by Python's email package).
fn received(python: &str, maildir: &std::path::Path) -> Vec<Value> {
    let script = r#"
import email, email.policy, json, os, sys
out = []
for sub in ("new", "cur"):
    d = os.path.join(sys.argv[1], sub)
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, f), "rb") as fh:
            m = email.message_from_binary_file(fh, policy=email.policy.default)
        item = {"to": str(m["To"]), "subject": str(m["Subject"])}
        for part in m.walk():
            if part.get_content_type() == "text/calendar":
                item["method"] = part.get_param("method")
                item["ics"] = part.get_content()
            elif part.get_content_type() == "text/plain" and "text" not in item:
                item["text"] = part.get_content()
        out.append(item)
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(maildir)
        .output()
        .expect("python");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// A property of the first VEVENT of an iCalendar text, parsed back with the `icalendar` parser.
fn vevent_property(ics: &str, name: &str) -> Option<String> {
    let text = icalendar::parser::unfold(ics);
    let cal = icalendar::parser::read_calendar(&text).ok()?;
    let event = cal.components.iter().find(|c| c.name == "VEVENT")?;
    event
        .properties
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.val.to_string())
}

fn calendar_method(ics: &str) -> Option<String> {
    let text = icalendar::parser::unfold(ics);
    let cal = icalendar::parser::read_calendar(&text).ok()?;
    cal.properties
        .iter()
        .find(|p| p.name == "METHOD")
        .map(|p| p.val.to_string())
}

async fn mail_of(s: &TestServer, token: &str, booking: &str) -> Vec<Value> {
    s.get(&format!("/bookings/{booking}/mail"), token)
        .await
        .body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits (up to 40 s) until `ok` holds for the booking's mail.
async fn mail_until(
    s: &TestServer,
    token: &str,
    booking: &str,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..400 {
        last = mail_of(s, token, booking).await;
        if ok(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Invitations by e-mail through a real SMTP server (aiosmtpd) that is down at first: the
/// failure is shown to the organiser, the mail is retried and arrives once the server is up;
/// an update (same UID, higher SEQUENCE) while the server is stopped again arrives when it is
/// started again; the cancellation is METHOD:CANCEL. Chinese, as the room speaks it.
async fn invitations_by_mail(db: Db) {
    let Some(python) = smtp_python() else {
        return;
    };
    let port = crate::common::free_port();
    let Some(s) = crate::common::start_with(db, "invitations_by_mail", |settings| {
        settings.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        settings.mail_from = "conclave@example.org".into();
    })
    .await
    else {
        return;
    };
    let mailtmp = tempfile::tempdir().expect("maildir");
    // Created by aiosmtpd's Mailbox (with its tmp, new and cur).
    let maildir = mailtmp.path().join("box");
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8403", "name": "Mail", "language": "zh" }),
        )
        .await
        .id();
    let grace = s
        .post(
            "/users",
            &admin,
            json!({ "username": "grace", "display_name": "Grace Hopper", "password": "cobol-compiler-1959",
                    "email": "grace@example.org" }),
        )
        .await
        .id();
    let b = s
        .post(
            "/bookings",
            &admin,
            weekly(
                &room,
                "2027-06-07T09:00",
                json!({ "pin": "4321", "members": [
                    { "kind": "user", "user_id": grace, "role": "member" },
                    { "kind": "number", "number": "+8613900000009", "display_name": "No mail", "role": "member" },
                ] }),
            ),
        )
        .await;
    b.expect(201);
    let id = b.id();
    // The mail server is down: the organiser sees the failure, and the mail waits.
    let mail = mail_until(&s, &admin, &id, |m| {
        m.len() == 1 && m[0]["attempts"].as_i64() >= Some(1) && m[0]["last_error"].is_string()
    })
    .await;
    assert_eq!(
        mail.len(),
        1,
        "one invitation (the number has no address): {mail:?}"
    );
    assert_eq!(mail[0]["recipient"], json!("grace@example.org"));
    assert!(
        mail[0]["sent_at"].is_null() && mail[0]["last_error"].is_string(),
        "{mail:?}"
    );
    let mut smtp = smtp_server(&python, port, &maildir);
    let mail = mail_until(&s, &admin, &id, |m| m[0]["sent_at"].is_i64()).await;
    assert!(
        mail[0]["sent_at"].is_i64(),
        "sent once the server is up: {mail:?}"
    );
    let got = received(&python, &maildir);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]["to"]
            .as_str()
            .unwrap_or_default()
            .contains("grace@example.org")
    );
    assert!(
        got[0]["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("会议邀请"),
        "{got:?}"
    );
    assert!(
        got[0]["text"].as_str().unwrap_or_default().contains("4321"),
        "{got:?}"
    );
    assert_eq!(got[0]["method"], json!("REQUEST"));
    let ics = got[0]["ics"].as_str().unwrap_or_default().to_owned();
    let uid = format!("{id}@conclave");
    assert_eq!(calendar_method(&ics).as_deref(), Some("REQUEST"), "{ics}");
    assert_eq!(
        vevent_property(&ics, "UID").as_deref(),
        Some(uid.as_str()),
        "{ics}"
    );
    assert_eq!(
        vevent_property(&ics, "SEQUENCE").as_deref(),
        Some("0"),
        "{ics}"
    );
    assert!(
        vevent_property(&ics, "RRULE").is_some_and(|r| r.contains("FREQ=WEEKLY")),
        "{ics}"
    );
    assert_eq!(
        vevent_property(&ics, "DTSTART").as_deref(),
        Some("20270607T090000"),
        "{ics}"
    );

    // Stopped again: an update waits, then arrives when the server is started again.
    smtp.kill().expect("kill aiosmtpd");
    let _ = smtp.wait();
    s.patch(
        &format!("/bookings/{id}"),
        &admin,
        json!({ "name": "Weekly (moved)", "start_local": "2027-06-07T10:00" }),
    )
    .await
    .expect(200);
    let mail = mail_until(&s, &admin, &id, |m| {
        m.len() == 2 && m[0]["last_error"].is_string()
    })
    .await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(mail[0]["sent_at"].is_null(), "{mail:?}");
    let mut smtp = smtp_server(&python, port, &maildir);
    let mail = mail_until(&s, &admin, &id, |m| m[0]["sent_at"].is_i64()).await;
    assert!(mail[0]["sent_at"].is_i64(), "{mail:?}");
    // Cancelled: METHOD:CANCEL, the same UID, a higher SEQUENCE.
    s.delete(&format!("/bookings/{id}"), &admin)
        .await
        .expect(200);
    let mail = mail_until(&s, &admin, &id, |m| {
        m.len() == 3 && m[0]["sent_at"].is_i64()
    })
    .await;
    assert_eq!(mail[0]["method"], json!("CANCEL"), "{mail:?}");
    let got = received(&python, &maildir);
    assert_eq!(got.len(), 3, "{got:?}");
    let by_sequence = |n: &str| {
        got.iter()
            .find(|g| {
                vevent_property(g["ics"].as_str().unwrap_or_default(), "SEQUENCE").as_deref()
                    == Some(n)
            })
            .cloned()
            .unwrap_or_default()
    };
    let update = by_sequence("1");
    let ics = update["ics"].as_str().unwrap_or_default();
    assert_eq!(calendar_method(ics).as_deref(), Some("REQUEST"), "{ics}");
    assert_eq!(vevent_property(ics, "UID").as_deref(), Some(uid.as_str()));
    assert_eq!(
        vevent_property(ics, "SUMMARY").as_deref(),
        Some("Weekly (moved)")
    );
    assert_eq!(
        vevent_property(ics, "DTSTART").as_deref(),
        Some("20270607T100000"),
        "{ics}"
    );
    let cancel = by_sequence("2");
    let ics = cancel["ics"].as_str().unwrap_or_default();
    assert_eq!(cancel["method"], json!("CANCEL"));
    assert_eq!(calendar_method(ics).as_deref(), Some("CANCEL"), "{ics}");
    assert_eq!(vevent_property(ics, "UID").as_deref(), Some(uid.as_str()));
    assert_eq!(vevent_property(ics, "STATUS").as_deref(), Some("CANCELLED"));
    assert!(
        cancel["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("会议已取消"),
        "{cancel:?}"
    );
    // An unknown meeting has no mail list.
    s.get("/bookings/nope/mail", &admin)
        .await
        .expect_problem(404, None);
    smtp.kill().expect("kill aiosmtpd");
    let _ = smtp.wait();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_by_mail_sqlite() {
    invitations_by_mail(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_by_mail_postgres() {
    invitations_by_mail(Db::Postgres).await;
}

/// Each invitee is mailed in their own language (a user's `language`, else the room's), and
/// reminded once, before the start: `mail_reminder_minutes` = 1 and an occurrence 70 s ahead,
/// so the reminder is queued at once and due 10 s later. A second booking cancelled after its
/// reminder was queued gets none.
async fn reminders_in_the_recipients_language(db: Db) {
    let Some(python) = smtp_python() else {
        return;
    };
    let port = crate::common::free_port();
    let Some(s) = crate::common::start_with(db, "reminders", |settings| {
        settings.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        settings.mail_from = "conclave@example.org".into();
        settings.mail_reminder_minutes = 1;
    })
    .await
    else {
        return;
    };
    let mailtmp = tempfile::tempdir().expect("maildir");
    let maildir = mailtmp.path().join("box");
    let mut smtp = smtp_server(&python, port, &maildir);
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8404", "name": "Remind", "language": "en" }),
        )
        .await
        .id();
    // Li reads Chinese (set on creation); Ann is set to English, then to the room's again.
    let li = s
        .post(
            "/users",
            &admin,
            json!({ "username": "li", "display_name": "李雷", "password": "li-password-2027",
                    "email": "li@example.org", "language": "zh" }),
        )
        .await;
    li.expect(201);
    assert_eq!(li.body["language"], json!("zh"));
    let li = li.id();
    let ann = s
        .post(
            "/users",
            &admin,
            json!({ "username": "ann", "display_name": "Ann", "password": "ann-password-2027",
                    "email": "ann@example.org" }),
        )
        .await;
    ann.expect(201);
    assert!(ann.body["language"].is_null(), "{}", ann.body);
    let ann = ann.id();
    let got = s
        .patch(
            &format!("/users/{ann}"),
            &admin,
            json!({ "language": "zh" }),
        )
        .await;
    got.expect(200);
    assert_eq!(got.body["language"], json!("zh"));
    let got = s
        .patch(
            &format!("/users/{ann}"),
            &admin,
            json!({ "language": null }),
        )
        .await;
    got.expect(200);
    assert!(got.body["language"].is_null());
    s.patch(
        &format!("/users/{ann}"),
        &admin,
        json!({ "language": "fr" }),
    )
    .await
    .expect_problem(422, Some("language"));

    let booked_at = std::time::Instant::now();
    let members = json!([
        { "kind": "user", "user_id": li, "role": "member" },
        { "kind": "user", "user_id": ann, "role": "member" },
    ]);
    let b = s
        .post(
            "/bookings",
            &admin,
            json!({ "name": "Standup", "room_id": room, "time_zone": "UTC", "start_local": utc_in(70),
                    "duration_minutes": 15, "pin": "2468", "settings": { "dial_out": false },
                    "members": members }),
        )
        .await;
    b.expect(201);
    let id = b.id();
    let other = s
        .post(
            "/bookings",
            &admin,
            json!({ "name": "Called off", "room_id": room, "time_zone": "UTC", "start_local": utc_in(70),
                    "duration_minutes": 15, "settings": { "dial_out": false }, "members": members,
                    "ignore_conflicts": true }),
        )
        .await;
    other.expect(201);
    let other = other.id();
    // Its reminders are queued with the invitations (the same pass), then it is cancelled.
    let queued = mail_until(&s, &admin, &other, |m| {
        m.iter().filter(|x| x["method"] == "REMINDER").count() == 2
    })
    .await;
    assert_eq!(
        queued.iter().filter(|x| x["method"] == "REMINDER").count(),
        2,
        "{queued:?}"
    );
    s.delete(&format!("/bookings/{other}"), &admin)
        .await
        .expect(200);

    // The reminders go before the start (70 s after booking).
    let mail = mail_until(&s, &admin, &id, |m| {
        m.iter()
            .filter(|x| x["method"] == "REMINDER" && x["sent_at"].is_i64())
            .count()
            == 2
    })
    .await;
    let sent_reminders = mail
        .iter()
        .filter(|x| x["method"] == "REMINDER" && x["sent_at"].is_i64())
        .count();
    assert_eq!(sent_reminders, 2, "{mail:?}");
    let reminded_after = booked_at.elapsed();
    assert!(
        reminded_after < Duration::from_secs(65),
        "reminded {reminded_after:?} after booking, the start is at 70 s"
    );
    // Past the start: no second reminder, nothing of the cancelled booking but its
    // invitation and cancellation.
    let rest = Duration::from_secs(75).saturating_sub(booked_at.elapsed());
    tokio::time::sleep(rest).await;
    let mail = mail_of(&s, &admin, &id).await;
    assert_eq!(
        mail.iter().filter(|x| x["method"] == "REMINDER").count(),
        2,
        "{mail:?}"
    );
    let dropped = mail_of(&s, &admin, &other).await;
    assert!(
        dropped
            .iter()
            .filter(|x| x["method"] != "REQUEST" && x["method"] != "CANCEL")
            .all(|x| x["method"] == "REMINDER-DROPPED" && x["sent_at"].is_null()),
        "{dropped:?}"
    );
    let got = received(&python, &maildir);
    let to = |who: &str, subject: &str| -> Vec<Value> {
        got.iter()
            .filter(|g| {
                g["to"].as_str().unwrap_or_default().contains(who)
                    && g["subject"].as_str().unwrap_or_default().contains(subject)
            })
            .cloned()
            .collect()
    };
    // Li: Chinese; Ann: the room's English.
    assert_eq!(to("li@", "会议邀请：Standup").len(), 1, "{got:?}");
    assert_eq!(to("ann@", "Invitation: Standup").len(), 1, "{got:?}");
    let li_reminders = to("li@", "会议提醒：Standup");
    let ann_reminders = to("ann@", "Reminder: Standup");
    assert_eq!((li_reminders.len(), ann_reminders.len()), (1, 1), "{got:?}");
    assert!(
        li_reminders[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("将于")
            && li_reminders[0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("2468"),
        "{li_reminders:?}"
    );
    assert!(
        ann_reminders[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("starts at")
            && ann_reminders[0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("8404"),
        "{ann_reminders:?}"
    );
    assert!(
        li_reminders[0].get("ics").is_none(),
        "a reminder has no attachment"
    );
    assert_eq!(to("li@", "会议已取消：Called off").len(), 1, "{got:?}");
    assert_eq!(to("ann@", "Cancelled: Called off").len(), 1, "{got:?}");
    assert!(
        to("", "Called off").iter().all(|g| !g["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("Reminder")
            && !g["subject"]
                .as_str()
                .unwrap_or_default()
                .contains("会议提醒")),
        "{got:?}"
    );
    assert_eq!(
        got.len(),
        8,
        "2 invitations, 2 reminders, 2 invitations, 2 cancellations: {got:?}"
    );
    smtp.kill().expect("kill aiosmtpd");
    let _ = smtp.wait();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_in_the_recipients_language_sqlite() {
    reminders_in_the_recipients_language(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_in_the_recipients_language_postgres() {
    reminders_in_the_recipients_language(Db::Postgres).await;
}

/// Mail waiting for a mail server that is down survives the server being killed: after a
/// restart it is sent as soon as the mail server is up (the real binary, SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waiting_survives_a_restart() {
    let Some(python) = smtp_python() else {
        return;
    };
    let port = crate::common::free_port();
    let dir = tempfile::tempdir().expect("tmp");
    // The binary reads conclave.toml from its working directory (the data directory here).
    std::fs::write(
        dir.path().join("conclave.toml"),
        format!("smtp_url = \"smtp://127.0.0.1:{port}\"\nmail_from = \"conclave@example.org\"\n"),
    )
    .expect("conclave.toml");
    let mut p = spawn_on(dir.path(), None, Some("admin-password-2"), 0);
    p.ready().await;
    let admin = p.login("admin", "admin-password-2").await;
    let (_, room) = send(
        &p,
        reqwest::Method::POST,
        "/rooms",
        &admin,
        Some(json!({ "number": "8502", "name": "R" })),
    )
    .await;
    let room = room["id"].as_str().expect("room").to_owned();
    let (_, ada) = send(
        &p,
        reqwest::Method::POST,
        "/users",
        &admin,
        Some(
            json!({ "username": "ada", "display_name": "Ada", "password": "analytical-engine-1843",
                     "email": "ada@example.org" }),
        ),
    )
    .await;
    let ada = ada["id"].as_str().expect("user").to_owned();
    let (status, b) = send(
        &p,
        reqwest::Method::POST,
        "/bookings",
        &admin,
        Some(weekly(
            &room,
            "2027-06-07T09:00",
            json!({ "members": [{ "kind": "user", "user_id": ada, "role": "member" }] }),
        )),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("booking").to_owned();
    let path = format!("/bookings/{id}/mail");
    until("a failed attempt", async || {
        let (_, m) = send(&p, reqwest::Method::GET, &path, &admin, None).await;
        m["items"][0]["last_error"].is_string()
    })
    .await;
    // Killed while the mail waits; started again.
    p.child.kill().expect("kill");
    let _ = p.child.wait();
    drop(p);
    let mut p = spawn_on(dir.path(), None, None, 0);
    p.ready().await;
    let admin = p.login("admin", "admin-password-2").await;
    let maildir = dir.path().join("box");
    let mut smtp = smtp_server(&python, port, &maildir);
    for _ in 0..300 {
        if received(&python, &maildir).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received(&python, &maildir);
    assert_eq!(got.len(), 1, "{got:?}");
    let ics = got[0]["ics"].as_str().unwrap_or_default();
    assert_eq!(
        vevent_property(ics, "UID"),
        Some(format!("{id}@conclave")),
        "{ics}"
    );
    let (_, m) = send(&p, reqwest::Method::GET, &path, &admin, None).await;
    assert!(m["items"][0]["sent_at"].is_i64(), "{m}");
    smtp.kill().expect("kill aiosmtpd");
    let _ = smtp.wait();
    p.stop();
}
