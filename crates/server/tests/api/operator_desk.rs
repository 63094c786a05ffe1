//! The operator desk, end to end: registered phones call each other by extension, and an
//! operator starts a meeting for the one who phoned them, from the console in Chromium.
//!
//! - Ada's phone dials the operator's extension: it rings (180) until the operator's phone
//!   answers, then Ada is answered; the operator's phone shows Ada as the caller; the two
//!   hear each other. The console's Live page shows the call with who calls whom.
//! - Only registered phones ring extensions (a stranger gets 404), an unregistered
//!   extension is 480, and calling oneself is no call.
//! - The operator clicks "Start a meeting for this caller", picks a room, adds Bo from the
//!   directory and starts: the call ends, and the meeting calls Ada and Bo, who hear each
//!   other. The start is audited with the call it replaced; someone who is neither the one
//!   called nor an administrator cannot take a call over or see it, nor name something not
//!   a call.
//!   The history holds the meeting, not the call. A busy callee makes the call busy (486);
//!   a caller who gives up while it rings stops the callee's phone ringing (CANCEL).
//!   One phone holds four calls at most.

use crate::baresip::write_tone;
use crate::browser::{BrowserMember, browser_ready, repo};
use crate::common::{Db, TestServer, start_with};
use crate::room_call::{Caller, Phone, talk_and_listen};
use conclave_media::dsp::goertzel_power;
use serde_json::{Value, json};
use std::time::Duration;

async fn person(s: &TestServer, admin: &str, name: &str, ext: &str, kind: &str) -> String {
    s.post(
        "/users",
        admin,
        json!({
            "username": name.to_lowercase(), "display_name": name, "kind": kind,
            "password": format!("{}-password", name.to_lowercase()),
            "extension": ext, "sip_password": format!("sip-secret-{ext}"),
        }),
    )
    .await
    .id()
}

/// The live direct calls the console lists (within 5 s of `want` being true of them).
async fn calls_until(s: &TestServer, token: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut calls = Vec::new();
    for _ in 0..50 {
        let live = s.get("/conferences", token).await;
        calls = live.body.as_array().map_or_else(Vec::new, |all| {
            all.iter()
                .filter(|c| c.get("call").is_some())
                .cloned()
                .collect()
        });
        if want(&calls) {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    calls
}

/// The events a stream has delivered so far (and within `quiet` of the last).
async fn received(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    quiet: Duration,
) -> Vec<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut got = Vec::new();
    for _ in 0..10_000 {
        match tokio::time::timeout(quiet, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                got.extend(serde_json::from_str::<Value>(&text).ok());
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    got
}

/// The power of `freq` in the last second of `pcm` (8 kHz) against the tone `other`.
fn stands_out(pcm: &[i16], freq: f64, other: f64) -> bool {
    let last = &pcm[pcm.len().saturating_sub(8_000)..];
    goertzel_power(last, 8000, freq) > 10.0 * goertzel_power(last, 8000, other).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_phones_the_operator_who_starts_a_meeting_for_them_from_the_console() {
    if !browser_ready() {
        return;
    }
    let Some(s) = start_with(Db::Postgres, "operator_desk", |settings| {
        settings.web_dir = repo().join("web/dist");
    })
    .await
    else {
        return;
    };
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8100", "name": "Crisis" }),
        )
        .await
        .id();
    person(&s, &admin, "Olga", "1000", "tenant_admin").await;
    person(&s, &admin, "Ada", "1001", "user").await;
    person(&s, &admin, "Bo", "1002", "user").await;
    person(&s, &admin, "Cy", "1003", "user").await; // never registers
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut olga = Phone::register(sip, "1000", "sip-secret-1000").await;
    let mut ada = Phone::register(sip, "1001", "sip-secret-1001").await;
    let mut bo = Phone::register(sip, "1002", "sip-secret-1002").await;

    // only a registered phone rings a person; an unregistered one cannot be reached; nobody
    // calls themselves
    let mut stranger = Caller::new(sip, "stranger").await;
    assert_eq!(stranger.dial("1000").await, 404, "an anonymous caller");
    assert_eq!(ada.caller.dial("1003").await, 480, "Cy is not registered");
    assert_eq!(ada.caller.dial("1001").await, 404, "Ada calls herself");

    // the console's event streams: who phones whom goes to the administrators (and the two
    // parties), not to Bo
    let bo_watch = s.token("bo", "bo-password").await;
    let mut bo_events = crate::hardening::event_stream(&s, &bo_watch).await;
    let mut admin_events = crate::hardening::event_stream(&s, &admin).await;

    // Ada phones the operator: her phone rings (180) until Olga's answers; meanwhile the
    // console's list shows the call ringing, with who calls whom
    let ada_answered = std::sync::atomic::AtomicBool::new(false);
    let dialled = async {
        let status = ada.caller.dial("1000").await;
        ada_answered.store(true, std::sync::atomic::Ordering::SeqCst);
        status
    };
    let (status, (call_room, invite)) = tokio::join!(dialled, async {
        let calls = calls_until(&s, &admin, |c| c.len() == 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !ada_answered.load(std::sync::atomic::Ordering::SeqCst),
            "Ada is not answered while Olga's phone rings"
        );
        assert_eq!(calls.len(), 1, "{calls:?}");
        let call = &calls[0]["call"];
        assert_eq!(call["state"], "ringing", "{call}");
        assert_eq!(
            (&call["caller_name"], &call["caller_number"]),
            (&json!("Ada"), &json!("1001"))
        );
        assert_eq!(
            (&call["callee_name"], &call["callee_number"]),
            (&json!("Olga"), &json!("1000"))
        );
        let room = calls[0]["room_id"].as_str().expect("room id").to_owned();
        (room, olga.answer().await)
    });
    assert_eq!(status, 200, "Ada is answered when Olga answers");
    let from = invite.headers.from().expect("From");
    assert_eq!(
        (from.display.as_deref(), from.uri.user.as_deref()),
        (Some("Ada"), Some("1001")),
        "the operator's phone shows who calls"
    );
    let calls = calls_until(&s, &admin, |c| {
        c.first().is_some_and(|c| c["call"]["state"] == "talking")
    })
    .await;
    assert_eq!(calls[0]["call"]["state"], "talking", "{calls:?}");
    let rooms = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e["room_id"].as_str().map(str::to_owned))
            .collect()
    };
    let admin_saw = rooms(received(&mut admin_events, Duration::from_millis(500)).await);
    assert!(admin_saw.contains(&call_room), "{admin_saw:?}");
    let bo_saw = rooms(received(&mut bo_events, Duration::from_millis(500)).await);
    assert!(
        bo_saw.iter().all(|r| !r.starts_with("call-")),
        "Bo's stream carries no direct call: {bo_saw:?}"
    );
    let (ada_heard, olga_heard) = tokio::join!(
        talk_and_listen(&ada.caller, 880.0, 75),
        talk_and_listen(&olga.caller, 1320.0, 75)
    );
    assert!(stands_out(&ada_heard, 1320.0, 880.0), "Ada hears Olga");
    assert!(stands_out(&olga_heard, 880.0, 1320.0), "Olga hears Ada");

    // Someone neither called nor an administrator cannot take the call over; nor can a
    // meeting replace what is not a call.
    let bo_token = s.token("bo", "bo-password").await;
    let start = |call: &str| {
        json!({
            "room_id": room_id, "replaces_call": call,
            "members": [{ "kind": "number", "number": "5550100", "display_name": "X", "role": "member" }],
        })
    };
    s.post("/conferences", &bo_token, start(&call_room))
        .await
        .expect(403);
    // (nor see who phones whom: only the two of them and administrators do)
    let seen = s.get("/conferences", &bo_token).await;
    assert!(
        seen.body
            .as_array()
            .is_some_and(|all| all.iter().all(|c| c.get("call").is_none())),
        "{}",
        seen.body
    );
    let olga_sees = s
        .get("/conferences", &s.token("olga", "olga-password").await)
        .await;
    assert_eq!(olga_sees.body[0]["room_id"], json!(call_room));
    s.post("/conferences", &admin, start("call-nothing"))
        .await
        .expect_problem(422, Some("replaces_call"));
    s.post("/conferences", &admin, start(&room_id))
        .await
        .expect_problem(422, Some("replaces_call"));
    assert_eq!(calls_until(&s, &admin, |c| c.len() == 1).await.len(), 1);

    // The operator, in the console: the call is listed; a meeting for the caller, in room
    // 8100, with Bo from the directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("quiet.wav");
    write_tone(&wav, 300.0, 48_000, 1, 5);
    let olga_token = s.token("olga", "olga-password").await;
    let mut desk = BrowserMember::start(&s.base, &wav);
    desk.ask(&format!("login {olga_token}")).await;
    desk.ask("open /live").await;
    desk.ask("wait direct-call-1001").await;
    let row = desk.ask("text direct-call-1001").await;
    assert!(
        row.contains("Ada (1001)") && row.contains("Olga (1000)") && row.contains("Talking"),
        "{row}"
    );
    desk.ask("click meeting-for-1001").await;
    desk.ask(&format!("select meeting-for-caller-room {room_id}"))
        .await;
    desk.ask("wait tpl-member-Ada").await;
    desk.ask("fill tpl-search Bo").await;
    desk.ask("click tpl-add-Bo").await;
    // what the operator sees (docs/screenshots/operator-desk-{en,zh}.png)
    if let Some(shots) = std::env::var_os("CONCLAVE_SCREENSHOTS") {
        let shots = std::path::Path::new(&shots);
        desk.ask(&format!(
            "shot {}",
            shots.join("operator-desk-en.png").display()
        ))
        .await;
        let mut zh = BrowserMember::in_language(&s.base, &wav, "zh");
        zh.ask(&format!("login {olga_token}")).await;
        zh.ask("open /live").await;
        zh.ask("click meeting-for-1001").await;
        zh.ask(&format!("select meeting-for-caller-room {room_id}"))
            .await;
        zh.ask("wait tpl-member-Ada").await;
        zh.ask(&format!(
            "shot {}",
            shots.join("operator-desk-zh.png").display()
        ))
        .await;
        zh.quit().await;
    }
    desk.ask("click adhoc-start-button").await;

    // the call ends (both phones are hung up), then the meeting calls Ada and Bo
    olga.caller.expect_request("BYE").await;
    ada.answer().await;
    bo.answer().await;
    let mut names = Vec::new();
    for _ in 0..50 {
        let live = s.get(&format!("/conferences/{room_id}"), &admin).await;
        names = live.body["members"].as_array().map_or_else(Vec::new, |m| {
            m.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_owned))
                .collect()
        });
        if names.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    names.sort();
    assert_eq!(names, ["Ada", "Bo"]);
    assert!(
        calls_until(&s, &admin, <[Value]>::is_empty)
            .await
            .is_empty(),
        "the call has ended"
    );
    let (ada_heard, bo_heard) = tokio::join!(
        talk_and_listen(&ada.caller, 880.0, 75),
        talk_and_listen(&bo.caller, 660.0, 75)
    );
    assert!(stands_out(&ada_heard, 660.0, 880.0), "Ada hears Bo");
    assert!(stands_out(&bo_heard, 880.0, 660.0), "Bo hears Ada");
    // the console shows the meeting now, and no call
    desk.ask("wait conference-8100").await;

    // the history holds the meeting, not the phone call before it
    let history = s.get("/conference-history", &admin).await;
    let rooms: Vec<&str> = history.body["items"]
        .as_array()
        .map_or_else(Vec::new, |items| {
            items
                .iter()
                .filter_map(|m| m["room_number"].as_str())
                .collect()
        });
    assert_eq!(rooms, ["8100"], "{}", history.body);

    // audited with the call it replaced
    let log = s.get("/audit-events?action=startConference", &admin).await;
    let replaced = log.body["items"].as_array().is_some_and(|items| {
        items.iter().any(|e| {
            e["detail"]["replaces_call"] == json!(call_room) && e["detail"]["caller"] == "1001"
        })
    });
    assert!(replaced, "{}", log.body);

    // Ada calls Bo, whose phone is busy: so is Ada's call, and nothing is left of it
    let (status, ()) = tokio::join!(ada.caller.dial("1002"), bo.refuse_busy());
    assert_eq!(status, 486, "Bo's phone is busy");
    let left = calls_until(&s, &admin, <[Value]>::is_empty).await;
    assert!(left.is_empty(), "the busy call has ended: {left:?}");

    // Ada gives up while Olga's phone rings: Olga's phone stops ringing, nothing is left
    let (status, ()) = tokio::join!(
        ada.caller.dial_and_give_up("1000"),
        olga.ring_until_cancelled()
    );
    assert_eq!(status, 487, "Ada's INVITE ends cancelled");
    let left = calls_until(&s, &admin, <[Value]>::is_empty).await;
    assert!(left.is_empty(), "the cancelled call has ended: {left:?}");

    // a flood of calls from one phone: four at once at most (each holds a meeting), then busy
    for _ in 0..4 {
        let (status, _) = tokio::join!(bo.caller.dial("1000"), olga.answer());
        assert_eq!(status, 200);
    }
    assert_eq!(bo.caller.dial("1000").await, 486, "a fifth call at once");
    desk.quit().await;
    s.stop().await;
}
