//! The media plane seen from outside: members of a room share their worker's port; new rooms
//! fill a lightly loaded worker, then go to the other; members are told apart by address and SSRC; a stranger never
//! takes over a member's stream while a member that moves is followed; nothing streams for long
//! to an address that never answers; a call that sends nothing is hung up (one on hold is not).

use crate::common::{Db, TestServer, start_with};
use crate::phone::{HEARD, NOT_HEARD, Phone, talk};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

async fn room(s: &TestServer, number: &str) -> String {
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": number, "name": format!("Room {number}"), "alone_music": false, "entry_chime": false }),
    )
    .await
    .id()
}

fn sip(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().expect("running").sip.udp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_members_share_a_worker_and_other_rooms_go_to_the_other() {
    // Rooms fill one worker up to 3 members (a light load wakes one thread), then spread.
    let s = start_with(Db::Sqlite, "workers", |c| {
        c.media_workers = 2;
        c.media_pack_members = 3;
    })
    .await
    .expect("server");
    for number in ["8001", "8002", "8003"] {
        room(&s, number).await;
    }
    let mut phones = Vec::new();
    for (i, number) in ["8001", "8001", "8002", "8002", "8003", "8003"]
        .iter()
        .enumerate()
    {
        let mut p = Phone::on(sip(&s), "127.0.0.1", &format!("p{i}")).await;
        assert_eq!(p.dial(number, None, "sendrecv").await, 200);
        phones.push(p);
        if i % 2 == 1 {
            // the room's members count before the next room is placed
            let pair = &mut phones[i - 1..=i];
            let (x, y) = pair.split_at_mut(1);
            talk(&mut [&mut x[0], &mut y[0]], &[Some(440.0), Some(880.0)], 10).await;
        }
    }
    let port = |i: usize| phones[i].remote_rtp;
    assert_eq!(port(0), port(1), "one room, one port");
    assert_eq!(port(2), port(3), "one room, one port");
    assert_eq!(port(4), port(5), "one room, one port");
    assert_eq!(port(0), port(2), "a light worker takes the second room too");
    assert_ne!(
        port(0),
        port(4),
        "the third room goes to the idle worker once the first carries 3 members"
    );
    // Every room mixes, each on its own.
    let tones = [440.0, 880.0, 1320.0, 1760.0, 2200.0, 2640.0];
    {
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &tones.map(Some), 60).await;
    }
    assert!(phones[0].power(880.0) > HEARD && phones[0].power(1320.0) < NOT_HEARD);
    assert!(phones[2].power(1760.0) > HEARD && phones[2].power(440.0) < NOT_HEARD);
    assert!(phones[4].power(2640.0) > HEARD && phones[4].power(1760.0) < NOT_HEARD);
    let metrics = s.raw(reqwest::Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    for (worker, members) in [("0", 4), ("1", 2)] {
        assert!(
            text.contains(&format!(
                "conclave_media_members{{worker=\"{worker}\"}} {members}"
            )),
            "{members} members on worker {worker}: {text}"
        );
    }
    for p in &mut phones {
        assert_eq!(p.hang_up().await, 200);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_behind_one_address_are_told_apart_by_ssrc() {
    let s = start_with(Db::Sqlite, "one_address", |_| {})
        .await
        .expect("server");
    room(&s, "8001").await;
    // One RTP socket for both calls: a gateway that multiplexes calls on one address.
    let shared = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    let mut a = Phone::sharing(sip(&s), "127.0.0.1", "gw-a", shared.clone()).await;
    let mut b = Phone::sharing(sip(&s), "127.0.0.1", "gw-b", shared.clone()).await;
    assert_eq!(a.dial("8001", None, "sendrecv").await, 200);
    assert_eq!(b.dial("8001", None, "sendrecv").await, 200);
    talk(&mut [&mut a, &mut b], &[Some(440.0), Some(1000.0)], 80).await;
    // Both phones read the one socket: gather the two streams the server sent back.
    let mut streams = a.heard.clone();
    for (ssrc, pcm) in b.heard.drain() {
        streams.entry(ssrc).or_default().extend(pcm);
    }
    assert_eq!(streams.len(), 2, "one stream back per member");
    let power = |pcm: &Vec<i16>, f| {
        conclave_media::dsp::goertzel_power(&pcm[pcm.len().saturating_sub(8000)..], 8000, f)
    };
    let hears_a: Vec<_> = streams
        .values()
        .filter(|p| power(p, 440.0) > HEARD)
        .collect();
    let hears_b: Vec<_> = streams
        .values()
        .filter(|p| power(p, 1000.0) > HEARD)
        .collect();
    assert_eq!(
        (hears_a.len(), hears_b.len()),
        (1, 1),
        "each hears the other"
    );
    assert!(
        power(hears_a[0], 1000.0) < NOT_HEARD && power(hears_b[0], 440.0) < NOT_HEARD,
        "and not itself"
    );
    assert_eq!(a.hang_up().await, 200);
    assert_eq!(b.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_never_takes_over_a_stream_and_a_member_who_moves_is_followed() {
    let s = start_with(Db::Sqlite, "latching", |_| {})
        .await
        .expect("server");
    room(&s, "8001").await;
    let mut alice = Phone::on(sip(&s), "127.0.0.1", "alice").await;
    let mut bob = Phone::on(sip(&s), "127.0.0.1", "bob").await;
    assert_eq!(alice.dial("8001", None, "sendrecv").await, 200);
    assert_eq!(bob.dial("8001", None, "sendrecv").await, 200);
    talk(&mut [&mut alice, &mut bob], &[Some(440.0), Some(0.0)], 30).await;
    // A stranger elsewhere sends with alice's SSRC (the worst case: it knows it) while she
    // talks, then while she is silent.
    let mut stranger = Phone::on(sip(&s), "127.0.0.2", "stranger").await;
    stranger.ssrc = alice.ssrc;
    stranger.remote_rtp = alice.remote_rtp;
    bob.clear();
    talk(
        &mut [&mut alice, &mut bob, &mut stranger],
        &[Some(440.0), Some(0.0), Some(2500.0)],
        50,
    )
    .await;
    talk(
        &mut [&mut alice, &mut bob, &mut stranger],
        &[None, Some(0.0), Some(2500.0)],
        75,
    )
    .await;
    assert!(
        bob.power(2500.0) < NOT_HEARD,
        "the stranger is never heard: {}",
        bob.power(2500.0)
    );
    assert_eq!(stranger.packets, 0, "and receives nothing of the room");
    // Alice's NAT gives her a new port: after her old one went quiet, her stream follows.
    alice.rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    alice.clear();
    bob.clear();
    talk(
        &mut [&mut alice, &mut bob],
        &[Some(700.0), Some(1200.0)],
        75,
    )
    .await;
    assert!(
        bob.power(700.0) > HEARD,
        "bob hears alice from her new port"
    );
    assert!(
        alice.power(1200.0) > HEARD,
        "alice hears bob at her new port"
    );
    assert_eq!(alice.hang_up().await, 200);
    assert_eq!(bob.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdp_aimed_at_a_third_party_is_streamed_to_only_briefly() {
    let s = start_with(Db::Sqlite, "third_party", |c| c.media_timeout_seconds = 60)
        .await
        .expect("server");
    room(&s, "8001").await;
    let victim = UdpSocket::bind("127.0.0.3:0").await.expect("bind");
    let mut caller = Phone::on(sip(&s), "127.0.0.1", "aimer").await;
    let mut other = Phone::on(sip(&s), "127.0.0.1", "other").await;
    assert_eq!(other.dial("8001", None, "sendrecv").await, 200);
    let aimed = victim.local_addr().expect("addr");
    assert_eq!(caller.dial("8001", Some(aimed), "sendrecv").await, 200);
    // The room has sound for the victim to receive; the caller itself never sends.
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while started.elapsed() < Duration::from_secs(14) {
        tick.tick().await;
        if let Some(to) = other.remote_rtp {
            let packet = other.packet(440.0);
            let _ = other.rtp.send_to(&packet, to).await;
        }
        while let Ok((_, _)) = victim.try_recv_from(&mut buf) {
            received.push(started.elapsed());
        }
    }
    assert!(
        !received.is_empty(),
        "the start window lets a phone be reached"
    );
    let last = received.last().copied().unwrap_or_default();
    assert!(
        last < Duration::from_secs(12),
        "nothing after the window (last at {last:?}, {} packets)",
        received.len()
    );
    assert!(received.len() <= 11 * 50 + 10, "{} packets", received.len());
    assert_eq!(other.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_sends_nothing_is_hung_up_and_one_on_hold_is_not() {
    let s = start_with(Db::Sqlite, "media_timeout", |c| {
        c.media_timeout_seconds = 5;
        c.hold_timeout_seconds = 60;
    })
    .await
    .expect("server");
    let room_id = room(&s, "8001").await;
    let admin = s.admin().await;
    let silent = Phone::on(sip(&s), "127.0.0.1", "silent").await;
    let held = Phone::on(sip(&s), "127.0.0.1", "held").await;
    let (mut silent, mut held) = (silent, held);
    assert_eq!(held.dial("8001", None, "inactive").await, 200);
    assert_eq!(silent.dial("8001", None, "sendrecv").await, 200);
    assert!(
        silent.bye_within(Duration::from_secs(9)).await,
        "hung up after its media timeout"
    );
    assert!(
        !held.bye_within(Duration::from_secs(2)).await,
        "a call on hold stays"
    );
    // The meeting's record says the silent member left.
    let history = s.get("/conference-history", &admin).await;
    let meeting_id = history.body["items"][0]["id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let mut left = false;
    for _ in 0..50 {
        let record = s
            .get(&format!("/conference-history/{meeting_id}"), &admin)
            .await;
        left = record.body["attendance"].as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m["number"] == "silent" && m["left_at"].is_i64())
        });
        if left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "its attendance is closed");
    let live = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(live.body["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(held.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_per_call_ports_each_call_has_its_own_and_the_room_still_mixes() {
    let s = start_with(Db::Sqlite, "per_call_ports", |c| {
        c.media_ports = conclave_server::media::PortMode::PerCall;
    })
    .await
    .expect("server");
    room(&s, "8001").await;
    let mut a = Phone::on(sip(&s), "127.0.0.1", "pa").await;
    let mut b = Phone::on(sip(&s), "127.0.0.1", "pb").await;
    assert_eq!(a.dial("8001", None, "sendrecv").await, 200);
    assert_eq!(b.dial("8001", None, "sendrecv").await, 200);
    assert_ne!(a.remote_rtp, b.remote_rtp, "a port pair per call");
    talk(&mut [&mut a, &mut b], &[Some(440.0), Some(880.0)], 60).await;
    assert!(a.power(880.0) > HEARD && a.power(440.0) < NOT_HEARD);
    assert!(b.power(440.0) > HEARD && b.power(880.0) < NOT_HEARD);
    // A call's own port still admits only the first source: a stranger elsewhere with a's
    // SSRC after a's stream is latched is not heard.
    let mut stranger = Phone::on(sip(&s), "127.0.0.2", "pstranger").await;
    stranger.ssrc = a.ssrc;
    stranger.remote_rtp = a.remote_rtp;
    b.clear();
    talk(
        &mut [&mut a, &mut b, &mut stranger],
        &[Some(440.0), Some(0.0), Some(2500.0)],
        50,
    )
    .await;
    assert!(b.power(2500.0) < NOT_HEARD, "the stranger is not heard");
    assert_eq!(a.hang_up().await, 200);
    assert_eq!(b.hang_up().await, 200);
    s.stop().await;
}
