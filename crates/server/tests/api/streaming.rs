//! Live streaming with real calls: two phones speak in turn while a listener follows the
//! stream over HTTP as a player does (watch page info → password → playlist → init segment
//! → segments); what it hears holds both voices. Wrong passwords, wrong links, other tenants
//! and plain users get nothing; a scheduled stream starts with its room's meeting under the
//! link shared before; `kill -9` leaves no stream live.

use crate::common::{ADMIN_PASSWORD, Db, TestServer, free_udp_port, start_with};
use crate::phone::{Phone, talk};
use crate::restart::spawn_on;
use conclave_media::codec::{AudioDecoder, OpusDecoder};
use conclave_media::dsp::goertzel_power;
use conclave_media::streaming::fmp4::read_fragment;
use serde_json::{Value, json};
use std::time::Duration;

fn sip(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().expect("running").sip.udp
}

/// A public GET (no token): status and body.
async fn fetch(s: &TestServer, path: &str) -> (u16, Vec<u8>, String) {
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .expect("fetch");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, r.bytes().await.expect("body").to_vec(), kind)
}

/// What the watch page learns of a stream (no token).
async fn watch_info(s: &TestServer, key: &str) -> Value {
    let (status, body, _) = fetch(s, &format!("/api/v1/watch/{key}")).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("json")
}

async fn public_post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let r = s
        .http
        .post(format!("{}/api/v1{path}", s.base))
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Everything the playlist lists, decoded at 48 kHz, as a player would play it.
async fn listen(s: &TestServer, playlist: &str) -> (String, Vec<i16>) {
    let (status, body, kind) = fetch(s, &format!("{playlist}?l=tester")).await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/vnd.apple.mpegurl");
    let text = String::from_utf8(body).expect("text");
    let dir = playlist.trim_end_matches("index.m3u8");
    let (status, init, _) = fetch(s, &format!("{dir}init.mp4")).await;
    assert_eq!(status, 200);
    assert!(init.windows(4).any(|w| w == b"dOps"), "an Opus track");
    let mut decoder = OpusDecoder::new(48_000).expect("decoder");
    let mut pcm = Vec::new();
    let mut last = None;
    for name in text.lines().filter(|l| l.ends_with(".m4s")) {
        let (status, data, _) = fetch(s, &format!("{dir}{name}")).await;
        assert_eq!(status, 200, "{name}");
        let f = read_fragment(&data).expect("a fragment");
        if let Some((time, length)) = last {
            assert_eq!(f.decode_time, time + length, "one timeline");
        }
        let length: u64 = f.samples.iter().map(|(d, _)| u64::from(*d)).sum();
        last = Some((f.decode_time, length));
        for (_, p) in f.samples {
            decoder.decode(&p, &mut pcm).expect("opus");
        }
    }
    (text, pcm)
}

async fn a_meeting_streams_to_its_listeners(db: Db) {
    let Some(s) = start_with(db, "streaming", |_| {}).await else {
        return;
    };
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8401", "name": "Town hall", "alone_music": false, "entry_chime": false }),
        )
        .await
        .id();
    let mut phones = Vec::new();
    for i in 0..2 {
        let mut p = Phone::on(sip(&s), "127.0.0.1", &format!("st{i}")).await;
        assert_eq!(p.dial("8401", None, "sendrecv").await, 200);
        phones.push(p);
    }
    // a plain user may not stream the meeting; an administrator may
    s.user(&admin, "st-user", "user", None).await;
    let user = s.token("st-user", "st-user-password").await;
    s.post(
        &format!("/conferences/{room}/stream/start"),
        &user,
        json!({}),
    )
    .await
    .expect(403);
    s.post(
        &format!("/conferences/{room}/stream/start"),
        &admin,
        json!({ "password": "x" }),
    )
    .await
    .expect_problem(422, Some("password"));
    // a burst of starts (a double click, two chairs): one stream, nothing left scheduled
    let path = format!("/conferences/{room}/stream/start");
    let body = json!({ "password": "4242", "title": "All hands" });
    let burst =
        futures::future::join_all((0..5).map(|_| s.post(&path, &admin, body.clone()))).await;
    for started in &burst {
        started.expect(200);
        assert_eq!(started.body["id"], burst[0].body["id"], "one stream");
    }
    let left = s.get("/streams?state=scheduled", &admin).await;
    assert_eq!(left.body["items"], json!([]), "{}", left.body);
    let stream = burst[0].body.clone();
    assert_eq!(stream["state"], "live", "{stream}");
    assert_eq!(stream["password"], "4242");
    assert_eq!(stream["title"], "All hands");
    let id = stream["id"].as_str().expect("id").to_owned();
    let key = stream["key"].as_str().expect("key").to_owned();
    assert_eq!(stream["link"], format!("/watch/{key}"));
    let live = s.get(&format!("/conferences/{room}"), &admin).await;
    assert_eq!(live.body["stream_id"], id.as_str(), "{}", live.body);

    // a viewer: the watch page asks for the password, a wrong one is refused
    let info = watch_info(&s, &key).await;
    assert_eq!(info["password_required"], true, "{info}");
    assert!(
        info["playlist"].is_null(),
        "no playlist before the password"
    );
    assert_eq!(info["title"], "All hands");
    let (status, _) =
        public_post(&s, &format!("/watch/{key}"), json!({ "password": "4243" })).await;
    assert_eq!(status, 403);
    let (status, _) = public_post(&s, "/watch/nosuchstream", json!({ "password": "4242" })).await;
    assert_eq!(status, 404);
    let (status, access) =
        public_post(&s, &format!("/watch/{key}"), json!({ "password": "4242" })).await;
    assert_eq!(status, 200, "{access}");
    let playlist = access["playlist"].as_str().expect("playlist").to_owned();
    assert_eq!(playlist, stream["playlist"].as_str().expect("playlist"));
    // the link without its access part, or with another's, finds nothing
    let forged = format!("/live/{key}/{}/index.m3u8", "A".repeat(22));
    assert_eq!(fetch(&s, &forged).await.0, 404);
    assert_eq!(
        fetch(&s, &playlist.replace("index.m3u8", "99999.m4s"))
            .await
            .0,
        404
    );
    assert_eq!(
        fetch(&s, &playlist.replace("index.m3u8", "keys.txt"))
            .await
            .0,
        404
    );

    // the two speak in turn, then are quiet long enough for the last segment to close
    {
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &[Some(600.0), Some(0.0)], 150).await;
        talk(&mut all, &[Some(0.0), Some(1000.0)], 150).await;
        talk(&mut all, &[Some(0.0), Some(0.0)], 125).await;
    }
    let (text, pcm) = listen(&s, &playlist).await;
    assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "live: {text}");
    assert!(
        pcm.len() >= 48_000 * 6,
        "at least three segments: {}",
        pcm.len()
    );
    let noise = goertzel_power(&pcm, 48_000, 1700.0).max(1.0);
    let (first, second) = (
        goertzel_power(&pcm, 48_000, 600.0),
        goertzel_power(&pcm, 48_000, 1000.0),
    );
    assert!(
        first > 100.0 * noise,
        "the first voice is heard: {first} vs {noise}"
    );
    assert!(
        second > 100.0 * noise,
        "the second voice is heard: {second} vs {noise}"
    );

    // the listener is counted (once, however often it fetches)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = listen(&s, &playlist).await;
    let got = s.get(&format!("/streams/{id}"), &admin).await;
    got.expect(200);
    assert_eq!(got.body["listeners"], 1, "{}", got.body);
    // the tenant's users see it (to watch and share); other tenants do not
    let listed = s.get("/streams?state=live", &user).await;
    listed.expect(200);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert_eq!(listed.body["items"][0]["room_number"], "8401");
    let other = s
        .post("/tenants", &admin, json!({ "name": "Elsewhere" }))
        .await
        .id();
    s.user(&admin, "st-outsider", "tenant_admin", Some(&other))
        .await;
    let outsider = s.token("st-outsider", "st-outsider-password").await;
    s.get(&format!("/streams/{id}"), &outsider)
        .await
        .expect(404);
    let theirs = s.get("/streams", &outsider).await;
    assert_eq!(theirs.body["items"], json!([]));
    s.delete(&format!("/streams/{id}"), &admin)
        .await
        .expect(409);

    // stopped: the playlist ends, the row says so with its listeners
    s.post(
        &format!("/conferences/{room}/stream/stop"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    let mut ended = Value::Null;
    for _ in 0..100 {
        ended = s.get(&format!("/streams/{id}"), &admin).await.body;
        if ended["state"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ended["state"], "ended", "{ended}");
    assert_eq!(ended["peak_listeners"], 1);
    let (text, _) = listen(&s, &playlist).await;
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");

    // a stream scheduled for the room: its link exists before, and the next meeting
    // streams under it
    for p in &mut phones {
        p.hang_up().await;
    }
    let mut gone = false;
    for _ in 0..100 {
        if s.get(&format!("/conferences/{room}"), &admin).await.status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the meeting ended");
    let planned = s
        .post(
            "/streams",
            &admin,
            json!({ "room_id": room, "title": "Weekly", "open": true,
                    "starts_at": conclave_store::now_ms() + 10 * 60 * 1000 }),
        )
        .await;
    planned.expect(201);
    let planned_id = planned.body["id"].as_str().expect("id").to_owned();
    let planned_key = planned.body["key"].as_str().expect("key").to_owned();
    assert_eq!(planned.body["state"], "scheduled");
    assert!(planned.body["password"].is_null());
    let info = watch_info(&s, &planned_key).await;
    assert_eq!(info["state"], "scheduled", "{info}");
    let mut phone = Phone::on(sip(&s), "127.0.0.1", "st-again").await;
    assert_eq!(phone.dial("8401", None, "sendrecv").await, 200);
    let mut info = Value::Null;
    for _ in 0..100 {
        talk(&mut [&mut phone], &[Some(0.0)], 5).await;
        info = watch_info(&s, &planned_key).await;
        if info["state"] == "live" {
            break;
        }
    }
    assert_eq!(info["state"], "live", "{info}");
    // open: the page gets the playlist without a password
    assert!(
        info["playlist"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("/live/{planned_key}/")))
    );
    let live = s.get(&format!("/conferences/{room}"), &admin).await;
    assert_eq!(live.body["stream_id"], planned_id.as_str());

    // guessing a password in a parallel burst: ten wrong tries from an address, then refused
    // without looking (even the right one)
    let guarded = s
        .post(
            "/streams",
            &admin,
            json!({ "room_id": room, "password": "9876" }),
        )
        .await;
    guarded.expect(201);
    let guarded_key = guarded.body["key"].as_str().expect("key").to_owned();
    let path = format!("/watch/{guarded_key}");
    let tries = futures::future::join_all(
        (0..10).map(|i| public_post(&s, &path, json!({ "password": format!("{i:04}") }))),
    )
    .await;
    // ten failures per address in all, however parallel: one was spent on the first stream
    let refused = |code: u16| tries.iter().filter(|(status, _)| *status == code).count();
    assert_eq!((refused(403), refused(429)), (9, 1), "{tries:?}");
    assert_eq!(
        public_post(&s, &path, json!({ "password": "0000" }))
            .await
            .0,
        429
    );
    assert_eq!(
        public_post(&s, &path, json!({ "password": "9876" }))
            .await
            .0,
        429
    );
    phone.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_streams_to_its_listeners_sqlite() {
    a_meeting_streams_to_its_listeners(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_streams_to_its_listeners_postgres() {
    a_meeting_streams_to_its_listeners(Db::Postgres).await;
}

/// `kill -9` while streaming: after the restart, the stream is ended (its segments were in
/// memory), not live for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_kill_9_is_ended_after_the_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let sip_port = free_udp_port();
    let mut p = spawn_on(dir.path(), None, Some(ADMIN_PASSWORD), sip_port);
    p.ready().await;
    let admin = p.login("admin", ADMIN_PASSWORD).await;
    let body = json!({ "number": "8402", "name": "Streamed", "alone_music": false });
    let (status, room) = p
        .send(reqwest::Method::POST, "/rooms", Some(&admin), Some(body))
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().expect("id").to_owned();
    let server: std::net::SocketAddr = format!("127.0.0.1:{sip_port}").parse().expect("addr");
    let mut phone = Phone::on(server, "127.0.0.1", "p8402").await;
    assert_eq!(phone.dial("8402", None, "sendrecv").await, 200);
    let (status, stream) = p
        .send(
            reqwest::Method::POST,
            &format!("/conferences/{room_id}/stream/start"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{stream}");
    let id = stream["id"].as_str().expect("id").to_owned();
    assert_eq!(
        stream["password"].as_str().map(str::len),
        Some(6),
        "six digits made up"
    );
    talk(&mut [&mut phone], &[Some(500.0)], 50).await;
    p.child.kill().expect("kill -9");
    let _ = p.child.wait();
    drop(p);

    let mut again = spawn_on(dir.path(), None, None, free_udp_port());
    again.ready().await;
    let admin = again.login("admin", ADMIN_PASSWORD).await;
    let (status, s) = again
        .send(
            reqwest::Method::GET,
            &format!("/streams/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["state"], "ended", "{s}");
    assert!(s["ended_at"].as_i64().is_some());
}
