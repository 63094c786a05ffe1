//! A participant belongs to its meeting: admission decides before anyone hears or is heard;
//! the PIN lobby and the access menu time out and are bounded; the keypad says what it refuses
//! and locking is announced; the room a phone creates is audited like one made by the API.

use crate::common::{Db, TestServer, start_with};
use crate::phone::{HEARD, NOT_HEARD, Phone, talk};
use conclave_media::dsp::{goertzel_power, mean_power};
use serde_json::json;
use std::time::Duration;

fn sip(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().expect("running").sip.udp
}

async fn pin_room(s: &TestServer, number: &str, pin: &str) -> String {
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": number, "name": "Board", "pin": pin, "alone_music": false, "entry_chime": false }),
    )
    .await
    .id()
}

async fn members(s: &TestServer, room_id: &str) -> usize {
    let admin = s.admin().await;
    let live = s.get(&format!("/conferences/{room_id}"), &admin).await;
    live.body["members"].as_array().map_or(0, Vec::len)
}

/// Presses keys as RFC 4733 events on the phone's RTP stream.
async fn press(phone: &mut Phone, keys: &str) {
    let to = phone.remote_rtp.expect("answered");
    for key in keys.chars() {
        let event = match key {
            '*' => 10,
            '#' => 11,
            d => d.to_digit(10).expect("a key") as u8,
        };
        let first = phone.packet(0.0);
        let (seq, ts) = (
            u16::from_be_bytes([first[2], first[3]]),
            u32::from_be_bytes([first[4], first[5], first[6], first[7]]),
        );
        for i in 0..5u16 {
            let mut packet = first[..12].to_vec();
            packet[1] = 101 | if i == 0 { 0x80 } else { 0 };
            packet[2..4].copy_from_slice(&seq.wrapping_add(i).to_be_bytes());
            packet[4..8].copy_from_slice(&ts.to_be_bytes());
            let end = i >= 2;
            packet.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
            packet.extend_from_slice(&(160 * (i.min(2) + 1)).to_be_bytes());
            let _ = phone.rtp.send_to(&packet, to).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            phone.collect();
        }
        // keep the stream's numbering ahead of the event's packets
        for _ in 0..4 {
            let _ = phone.packet(0.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_in_the_lobby_is_never_heard_and_never_hears_the_room() {
    let s = start_with(Db::Sqlite, "lobby_isolation", |_| {})
        .await
        .expect("server");
    let room_id = pin_room(&s, "8002", "1234").await;
    let mut inside = Phone::on(sip(&s), "127.0.0.1", "inside").await;
    assert_eq!(inside.dial("*400*8002*1234", None, "sendrecv").await, 200);
    let mut waiting = Phone::on(sip(&s), "127.0.0.1", "waiting").await;
    assert_eq!(waiting.dial("8002", None, "sendrecv").await, 200);
    // From its very first packet, the waiting caller sends a tone the room must not hear,
    // while the room's tone must not reach it (it hears only the PIN prompt).
    talk(
        &mut [&mut inside, &mut waiting],
        &[Some(3000.0), Some(1900.0)],
        150,
    )
    .await;
    let heard_inside = inside.all_heard();
    let heard_waiting = waiting.all_heard();
    assert!(!heard_inside.is_empty() && !heard_waiting.is_empty());
    let leaked_in = goertzel_power(&heard_inside, 8000, 1900.0);
    let leaked_out = goertzel_power(&heard_waiting, 8000, 3000.0);
    assert!(
        leaked_in < NOT_HEARD,
        "the room heard the lobby: {leaked_in}"
    );
    assert!(
        leaked_out < NOT_HEARD,
        "the lobby heard the room: {leaked_out}"
    );
    assert!(mean_power(&heard_waiting) > 1000.0, "it hears its prompt");
    assert_eq!(members(&s, &room_id).await, 1);
    // The right PIN: now both ways.
    press(&mut waiting, "1234").await;
    inside.clear();
    waiting.clear();
    talk(
        &mut [&mut inside, &mut waiting],
        &[Some(3000.0), Some(1900.0)],
        100,
    )
    .await;
    assert!(inside.power(1900.0) > HEARD, "admitted, heard");
    assert!(waiting.power(3000.0) > HEARD, "admitted, hears");
    assert_eq!(members(&s, &room_id).await, 2);
    assert_eq!(inside.hang_up().await, 200);
    assert_eq!(waiting.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_asks_again_then_says_goodbye() {
    let s = start_with(Db::Sqlite, "lobby_timeout", |c| c.pin_timeout_seconds = 2)
        .await
        .expect("server");
    pin_room(&s, "8002", "1234").await;
    let mut quiet = Phone::on(sip(&s), "127.0.0.1", "quiet").await;
    assert_eq!(quiet.dial("8002", None, "sendrecv").await, 200);
    // The prompt (5.5 s), two seconds of silence, the prompt again…
    talk(&mut [&mut quiet], &[Some(0.0)], 375).await;
    let heard = quiet.all_heard();
    let second = &heard[heard.len().saturating_sub(8000 * 2)..];
    assert!(mean_power(second) > 1000.0, "asked again after the pause");
    // …then, still nothing keyed in, goodbye.
    assert!(
        quiet.bye_within(Duration::from_secs(15)).await,
        "hung up after two repeats"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_for_a_pin_are_bounded_per_address() {
    let s = start_with(Db::Sqlite, "waiting_bound", |c| c.waiting_per_address = 3)
        .await
        .expect("server");
    pin_room(&s, "8002", "1234").await;
    let mut waiting = Vec::new();
    for i in 0..3 {
        let mut p = Phone::on(sip(&s), "127.0.0.1", &format!("w{i}")).await;
        assert_eq!(p.dial("8002", None, "sendrecv").await, 200);
        waiting.push(p);
    }
    let mut fourth = Phone::on(sip(&s), "127.0.0.1", "w3").await;
    assert_eq!(
        fourth.dial("8002", None, "sendrecv").await,
        503,
        "a fourth from one address waits elsewhere"
    );
    let mut other = Phone::on(sip(&s), "127.0.0.4", "elsewhere").await;
    assert_eq!(
        other.dial("8002", None, "sendrecv").await,
        200,
        "another address is not held back"
    );
    // One keys the PIN (once its prompt has begun) and is in: its place is free again.
    talk(&mut [&mut waiting[0]], &[Some(0.0)], 25).await;
    press(&mut waiting[0], "1234").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fifth = Phone::on(sip(&s), "127.0.0.1", "w4").await;
    assert_eq!(fifth.dial("8002", None, "sendrecv").await, 200);
    for p in waiting.iter_mut().chain([&mut other, &mut fifth]) {
        assert_eq!(p.hang_up().await, 200);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_menus_hash_key_costs_no_pin_try() {
    let s = start_with(Db::Sqlite, "menu_hash", |_| {})
        .await
        .expect("server");
    let room_id = pin_room(&s, "8002", "1234").await;
    let mut caller = Phone::on(sip(&s), "127.0.0.1", "menu").await;
    assert_eq!(caller.dial("8000", None, "sendrecv").await, 200);
    talk(&mut [&mut caller], &[Some(0.0)], 25).await;
    press(&mut caller, "8002#").await;
    talk(&mut [&mut caller], &[Some(0.0)], 25).await;
    // Two wrong PINs, each with its #, and the right one: the third try lets them in (the
    // menu's # counting as a wrong PIN would have ended the call on the second).
    press(&mut caller, "1111#").await;
    talk(&mut [&mut caller], &[Some(0.0)], 25).await;
    press(&mut caller, "2222#").await;
    talk(&mut [&mut caller], &[Some(0.0)], 25).await;
    press(&mut caller, "1234#").await;
    let mut inside = 0;
    for _ in 0..30 {
        inside = members(&s, &room_id).await;
        if inside == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(inside, 1, "in on the third try");
    assert_eq!(caller.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keypad_says_what_it_refuses_and_locking_is_announced() {
    let s = start_with(Db::Sqlite, "keypad_prompts", |_| {})
        .await
        .expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8001", "name": "Open", "alone_music": false, "entry_chime": false }),
        )
        .await
        .id();
    let mut chair = Phone::on(sip(&s), "127.0.0.1", "chair").await;
    let mut member = Phone::on(sip(&s), "127.0.0.1", "member").await;
    assert_eq!(chair.dial("8001", None, "sendrecv").await, 200);
    assert_eq!(member.dial("8001", None, "sendrecv").await, 200);
    talk(&mut [&mut chair, &mut member], &[Some(0.0), Some(0.0)], 25).await;
    // A participant may not lock: they are told so (the prompt), and nothing changes.
    member.clear();
    press(&mut member, "*5").await;
    talk(&mut [&mut chair, &mut member], &[Some(0.0), Some(0.0)], 60).await;
    assert!(
        mean_power(&member.all_heard()) > 1000.0,
        "'not allowed' is said"
    );
    let live = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(live.body["locked"], false);
    // The chair (promoted from the console) locks from the keypad: everyone hears it.
    let roster = live.body["members"].as_array().cloned().unwrap_or_default();
    let chair_id = roster
        .iter()
        .find(|m| m["number"] == "chair")
        .map(|m| m["id"].clone())
        .expect("chair in roster");
    s.post(
        &format!("/conferences/{room_id}/members/{chair_id}/role"),
        &admin,
        json!({ "role": "chairman" }),
    )
    .await
    .expect(200);
    chair.clear();
    member.clear();
    press(&mut chair, "*5").await;
    talk(&mut [&mut chair, &mut member], &[Some(0.0), Some(0.0)], 60).await;
    let live = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(live.body["locked"], true, "locked from the keypad");
    assert!(
        mean_power(&member.all_heard()) > 1000.0,
        "the lock is announced to the room"
    );
    assert_eq!(chair.hang_up().await, 200);
    assert_eq!(member.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_says_bye_to_every_caller_and_closes_the_record() {
    let s = start_with(Db::Sqlite, "graceful_stop", |_| {})
        .await
        .expect("server");
    let admin = s.admin().await;
    s.post("/rooms", &admin, json!({ "number": "8001", "name": "A" }))
        .await
        .expect(201);
    pin_room(&s, "8002", "1234").await;
    let mut member = Phone::on(sip(&s), "127.0.0.1", "member").await;
    let mut waiting = Phone::on(sip(&s), "127.0.0.1", "waiting").await;
    assert_eq!(member.dial("8001", None, "sendrecv").await, 200);
    assert_eq!(waiting.dial("8002", None, "sendrecv").await, 200);
    talk(
        &mut [&mut member, &mut waiting],
        &[Some(0.0), Some(0.0)],
        10,
    )
    .await;
    let data = s._tmp.path().to_owned();
    // What SIGTERM does: stop the running server.
    let mut s = s;
    let running = s.running.take().expect("running");
    let stopping = tokio::spawn(running.stop());
    assert!(
        member.bye_within(Duration::from_secs(5)).await,
        "a BYE for the member"
    );
    assert!(
        waiting.bye_within(Duration::from_secs(5)).await,
        "and for the caller in the lobby"
    );
    stopping.await.expect("join").expect("a clean stop");
    // Started again on the same data: the meeting has an end and its member a leave time.
    let mut settings = conclave_server::config::Settings::with_data_dir(&data);
    settings.http_listen = "127.0.0.1:0".parse().expect("addr");
    for a in [
        &mut settings.sip_udp,
        &mut settings.sip_tcp,
        &mut settings.sip_tls,
    ] {
        *a = "127.0.0.1:0".parse().expect("addr");
    }
    let again = conclave_server::start(settings).await.expect("restarts");
    s.base = format!("http://{}", again.http_addr);
    s.running = Some(again);
    let admin = s.admin().await;
    let history = s.get("/conference-history", &admin).await;
    let ours = history.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|m| m["room_number"] == "8001").cloned())
        .expect("the meeting is recorded");
    assert!(ours["ended_at"].is_i64(), "it has an end: {ours}");
    let record = s
        .get(
            &format!("/conference-history/{}", ours["id"].as_str().unwrap_or("")),
            &admin,
        )
        .await;
    let attendance = record.body["attendance"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!attendance.is_empty(), "{}", record.body);
    assert!(
        attendance.iter().all(|a| a["left_at"].is_i64()),
        "everyone has left: {}",
        record.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_talking_reaches_the_websocket() {
    use futures::StreamExt;
    let s = start_with(Db::Sqlite, "talking_events", |_| {})
        .await
        .expect("server");
    let admin = s.admin().await;
    s.post("/rooms", &admin, json!({ "number": "8001", "name": "A" }))
        .await
        .expect(201);
    let url = format!(
        "{}/api/v1/events?access_token={admin}",
        s.base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let mut talker = Phone::on(sip(&s), "127.0.0.1", "talker").await;
    let mut listener = Phone::on(sip(&s), "127.0.0.1", "listener").await;
    assert_eq!(talker.dial("8001", None, "sendrecv").await, 200);
    assert_eq!(listener.dial("8001", None, "sendrecv").await, 200);
    let talking = tokio::spawn(async move {
        talk(
            &mut [&mut talker, &mut listener],
            &[Some(440.0), Some(0.0)],
            60,
        )
        .await;
        (talker, listener)
    });
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, socket.next()).await {
        let Ok(text) = msg.into_text() else { continue };
        let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        if event["event"]["type"] == "talking" && event["event"]["talking"] == true {
            seen = Some(event);
            break;
        }
    }
    let event = seen.expect("a talking event on the WebSocket");
    assert_eq!(event["room_number"], "8001");
    let (mut talker, mut listener) = talking.await.expect("join");
    assert_eq!(talker.hang_up().await, 200);
    assert_eq!(listener.hang_up().await, 200);
    s.stop().await;
}
