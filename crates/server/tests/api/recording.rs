//! Recording with real calls: three phones speak in turn; the mix holds all three, each
//! member's track only that member, the utterances match who spoke when; nothing readable is
//! on disk; other tenants and users without the right get nothing; downloads are audited and
//! play in a real player (opusdec); `kill -9` while recording leaves a playable, interrupted
//! recording.

use crate::common::{ADMIN_PASSWORD, Db, TestServer, free_udp_port, start_with};
use crate::phone::{Phone, talk};
use crate::restart::{Process, spawn_on, spawn_with};
use conclave_media::codec::{AudioDecoder, OpusDecoder};
use conclave_media::dsp::goertzel_power;
use conclave_media::recording::ogg::read_packets;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TONES: [f64; 3] = [500.0, 900.0, 1300.0];

fn sip(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().expect("running").sip.udp
}

/// A track's audio, decoded at 48 kHz, with the Ogg stream's packets.
fn decode(ogg: &[u8]) -> Vec<i16> {
    let read = read_packets(ogg).expect("an Ogg stream");
    assert!(read.packets.len() >= 2, "headers");
    assert!(read.packets[0].starts_with(b"OpusHead") && read.packets[1].starts_with(b"OpusTags"));
    let mut decoder = OpusDecoder::new(48_000).expect("decoder");
    let mut pcm = Vec::new();
    for p in &read.packets[2..] {
        decoder.decode(p, &mut pcm).expect("an Opus packet");
    }
    let skip = usize::from(read.pre_skip.unwrap_or(0)).min(pcm.len());
    pcm.drain(..skip);
    pcm
}

/// Power of `freq` in the audio between two times (ms from the track's start).
fn power(pcm: &[i16], from_ms: i64, to_ms: i64, freq: f64) -> f64 {
    let at = |ms: i64| (ms.max(0) as usize * 48).min(pcm.len());
    let part = &pcm[at(from_ms)..at(to_ms)];
    if part.is_empty() {
        return 0.0;
    }
    goertzel_power(part, 48_000, freq)
}

async fn audio(s: &TestServer, token: &str, id: &str, track: i64) -> (u16, Vec<u8>) {
    let r = s
        .http
        .get(format!(
            "{}/api/v1/recordings/{id}/tracks/{track}/audio",
            s.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

fn sealed_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sealed_files(&path, out);
        } else if path.to_string_lossy().ends_with(".sealed") {
            out.push(path);
        }
    }
}

/// Shannon entropy in bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

async fn three_speak_in_turn(db: Db) {
    let Some(s) = start_with(db, "recording", |_| {}).await else {
        return;
    };
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8301", "name": "Recorded", "alone_music": false, "entry_chime": false }),
        )
        .await
        .id();
    let mut phones = Vec::new();
    for i in 0..3 {
        let mut p = Phone::on(sip(&s), "127.0.0.1", &format!("rec{i}")).await;
        assert_eq!(p.dial("8301", None, "sendrecv").await, 200);
        phones.push(p);
    }
    // everyone is in and quiet
    {
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &[Some(0.0); 3], 40).await;
    }
    let started = s
        .post(
            &format!("/conferences/{room}/recording/start"),
            &admin,
            json!({}),
        )
        .await;
    started.expect(200);
    let origin = Instant::now();
    let id = started.body["recording_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a recording id: {}", started.body))
        .to_owned();
    // the announcement ends, then each speaks 1.5 s in turn with a second of quiet between
    {
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &[Some(0.0); 3], 150).await;
    }
    let mut spoke = Vec::new();
    for speaker in 0..3 {
        let mut tones = [Some(0.0); 3];
        tones[speaker] = Some(TONES[speaker]);
        let from = origin.elapsed().as_millis() as i64;
        {
            let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
            talk(&mut all, &tones, 75).await;
        }
        let to = origin.elapsed().as_millis() as i64;
        spoke.push((from, to));
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &[Some(0.0); 3], 50).await;
    }
    // while it records, the live meeting says so; a participant may not stop it
    let live = s.get(&format!("/conferences/{room}"), &admin).await;
    assert_eq!(live.body["recording_id"], json!(id), "{}", live.body);
    let stopped = s
        .post(
            &format!("/conferences/{room}/recording/stop"),
            &admin,
            json!({}),
        )
        .await;
    stopped.expect(200);
    assert!(stopped.body["recording_id"].is_null());

    // the recording is finished once its tracks are closed
    let deadline = Instant::now() + Duration::from_secs(15);
    let detail = loop {
        let r = s.get(&format!("/recordings/{id}"), &admin).await;
        if r.status == 200 && r.body["recording"]["state"] == "finished" {
            break r.body;
        }
        assert!(
            Instant::now() < deadline,
            "the recording never finished: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tracks = detail["tracks"].as_array().expect("tracks").clone();
    assert_eq!(tracks.len(), 4, "the mix and three members: {detail}");
    // phones without video: no picture is recorded
    s.get(&format!("/recordings/{id}/video"), &admin)
        .await
        .expect(404);
    assert_eq!(tracks[0]["kind"], "mix");
    let list = s.get("/recordings", &admin).await;
    assert_eq!(list.body["items"][0]["id"], json!(id), "{}", list.body);
    // found by room, speaker and date; not by someone who did not speak or another day
    let found = |q: &'static str| {
        let s = &s;
        let admin = &admin;
        async move {
            let list = s.get(&format!("/recordings?{q}"), admin).await;
            list.body["items"].as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(found("q=8301&speaker=rec1").await, 1);
    assert_eq!(found("speaker=nobody").await, 0);
    assert_eq!(found("since=0&until=1000").await, 0);
    assert_eq!(found("q=Recorded&since=1000").await, 1);

    // the mix holds everyone, each member's track only its own voice
    let (status, mix) = audio(&s, &admin, &id, 0).await;
    assert_eq!(status, 200);
    let mix = decode(&mix);
    let mix_offset = tracks[0]["offset_ms"].as_i64().unwrap_or(0);
    for (speaker, (from, to)) in spoke.iter().enumerate() {
        let (from, to) = (from + 300 - mix_offset, to - 300 - mix_offset);
        let own = power(&mix, from, to, TONES[speaker]);
        assert!(own > 1.0e6, "the mix holds speaker {speaker}: {own}");
    }
    let utterances = s.get(&format!("/recordings/{id}/utterances"), &admin).await;
    let utterances = utterances.body.as_array().expect("utterances").clone();
    for track in &tracks[1..] {
        let index = track["track"].as_i64().expect("index");
        let offset = track["offset_ms"].as_i64().expect("offset");
        let (status, ogg) = audio(&s, &admin, &id, index).await;
        assert_eq!(status, 200);
        let pcm = decode(&ogg);
        // which phone this is: the tone it holds
        let powers: Vec<f64> = spoke
            .iter()
            .enumerate()
            .map(|(k, (from, to))| power(&pcm, from + 300 - offset, to - 300 - offset, TONES[k]))
            .collect();
        let speaker = (0..3)
            .max_by(|&a, &b| powers[a].total_cmp(&powers[b]))
            .expect("a speaker");
        assert!(
            powers[speaker] > 1.0e6,
            "track {index} holds a voice: {powers:?}"
        );
        for (k, p) in powers.iter().enumerate() {
            if k != speaker {
                assert!(
                    *p < 1.0e4,
                    "track {index} holds only its member: {powers:?}"
                );
            }
        }
        // one utterance, within 300 ms of when that phone spoke
        let own: Vec<&Value> = utterances
            .iter()
            .filter(|u| u["track"].as_i64() == Some(index))
            .collect();
        assert_eq!(own.len(), 1, "track {index}: {own:?}");
        let (from, to) = spoke[speaker];
        let start = own[0]["start_ms"].as_i64().expect("start");
        let end = own[0]["end_ms"].as_i64().expect("end");
        assert!(
            (start - from).abs() <= 300,
            "started at {start}, spoke from {from}"
        );
        assert!((end - to).abs() <= 300, "ended at {end}, spoke until {to}");
        // a real player plays it
        if std::process::Command::new("opusdec")
            .arg("--version")
            .output()
            .is_ok()
        {
            let dir = tempfile::tempdir().expect("tmp");
            let file = dir.path().join("t.opus");
            std::fs::write(&file, &ogg).expect("write");
            let played = std::process::Command::new("opusdec")
                .arg("--quiet")
                .arg(&file)
                .arg(dir.path().join("t.wav"))
                .status()
                .expect("opusdec");
            assert!(played.success(), "opusdec plays track {index}");
        }
    }

    // nothing readable on disk
    let mut files = Vec::new();
    sealed_files(&s._tmp.path().join("recordings"), &mut files);
    assert_eq!(files.len(), 4, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        assert!(
            !bytes.windows(4).any(|w| w == b"OggS" || w == b"Opus"),
            "{file:?}"
        );
        assert!(
            entropy(&bytes[16..]) > 7.5,
            "{file:?}: {}",
            entropy(&bytes[16..])
        );
    }

    // other tenants and plain users get nothing; the download is audited and stamped
    let other = s
        .post("/tenants", &admin, json!({ "name": "Elsewhere" }))
        .await
        .id();
    s.user(&admin, "rec-outsider", "tenant_admin", Some(&other))
        .await;
    let outsider = s.token("rec-outsider", "rec-outsider-password").await;
    s.get(&format!("/recordings/{id}"), &outsider)
        .await
        .expect(404);
    assert_eq!(audio(&s, &outsider, &id, 0).await.0, 404);
    s.user(&admin, "rec-user", "user", None).await;
    let user = s.token("rec-user", "rec-user-password").await;
    s.get(&format!("/recordings/{id}"), &user).await.expect(404);
    assert_eq!(audio(&s, &user, &id, 1).await.0, 404);
    s.put(
        &format!("/recordings/{id}/visibility"),
        &user,
        json!({ "visibility": "public" }),
    )
    .await
    .expect(404);
    s.put(
        &format!("/recordings/{id}/visibility"),
        &admin,
        json!({ "visibility": "public", "password": "x" }),
    )
    .await
    .expect_problem(422, Some("password"));
    let public = s
        .put(
            &format!("/recordings/{id}/visibility"),
            &admin,
            json!({ "visibility": "public", "password": "sesame42" }),
        )
        .await;
    public.expect(200);
    // anyone with the link and the password plays it; a wrong password gets nothing
    let key = public.body["share_key"]
        .as_str()
        .expect("a link")
        .to_owned();
    assert_eq!(public.body["share_password"], "sesame42");
    let outside = |path: String| s.http.get(format!("{}/api/v1{path}", s.base)).send();
    let page: Value = outside(format!("/shared/{key}"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(page["password_required"], true, "{page}");
    assert_eq!(page["tracks"], json!([]), "no names before the password");
    let open = |password: &str| {
        s.http
            .post(format!("{}/api/v1/shared/{key}", s.base))
            .json(&json!({ "password": password }))
            .send()
    };
    assert_eq!(open("sesame43").await.expect("post").status(), 403);
    let opened: Value = open("sesame42")
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let tracks = opened["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 4, "the mix and three people: {opened}");
    let path = tracks[2]["audio"].as_str().expect("audio").to_owned();
    let fetched = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .expect("audio");
    assert_eq!(fetched.status(), 200);
    let ogg = fetched.bytes().await.expect("body");
    let tags = &read_packets(&ogg).expect("ogg").packets[1];
    assert!(
        tags.windows(23).any(|w| w == b"DOWNLOADED_BY=anonymous"),
        "stamped"
    );
    // "/api/v1/shared/<key>/<access>/tracks/2/audio" with another access
    let access = path.split('/').nth(5).expect("access");
    let forged = path.replace(access, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        outside(forged.trim_start_matches("/api/v1").to_owned())
            .await
            .expect("get")
            .status(),
        404
    );
    let log = s
        .get("/audit-events?action=playSharedRecording", &admin)
        .await;
    assert_eq!(
        log.body["items"][0]["actor_name"], "anonymous",
        "{}",
        log.body
    );
    let (status, stamped) = audio(&s, &user, &id, 1).await;
    assert_eq!(
        status, 200,
        "a public recording plays for the tenant's users"
    );
    let tags = &read_packets(&stamped).expect("ogg").packets[1];
    assert!(
        tags.windows(22).any(|w| w == b"DOWNLOADED_BY=rec-user"),
        "the file names who fetched it"
    );
    assert_eq!(
        s.delete(&format!("/recordings/{id}"), &user).await.status,
        403
    );
    // private again: the link is dead
    s.put(
        &format!("/recordings/{id}/visibility"),
        &admin,
        json!({ "visibility": "private" }),
    )
    .await
    .expect(200);
    assert_eq!(
        outside(format!("/shared/{key}"))
            .await
            .expect("get")
            .status(),
        404
    );
    assert_eq!(
        outside(path.trim_start_matches("/api/v1").to_owned())
            .await
            .expect("get")
            .status(),
        404
    );
    let log = s
        .get("/audit-events?action=downloadRecording", &admin)
        .await;
    assert!(
        log.body["items"]
            .as_array()
            .is_some_and(|items| items.len() >= 5),
        "every download is audited: {}",
        log.body
    );
    s.delete(&format!("/recordings/{id}"), &admin)
        .await
        .expect(204);
    s.get(&format!("/recordings/{id}"), &admin)
        .await
        .expect(404);
    let mut left = Vec::new();
    sealed_files(&s._tmp.path().join("recordings"), &mut left);
    assert!(left.is_empty(), "deleted with its files: {left:?}");
    for p in &mut phones {
        p.hang_up().await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_speak_in_turn_and_each_track_holds_its_own_sqlite() {
    three_speak_in_turn(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_speak_in_turn_and_each_track_holds_its_own_postgres() {
    three_speak_in_turn(Db::Postgres).await;
}

/// The real binary on `dir` with a room `number` (recording every meeting when
/// `auto_record`) and a phone in its meeting: the process, an administrator's token, the
/// room's id and the phone.
async fn a_binary_with_a_call(
    dir: &std::path::Path,
    number: &str,
    auto_record: bool,
) -> (Process, String, String, Phone) {
    let sip_port = free_udp_port();
    let mut p = spawn_on(dir, None, Some(ADMIN_PASSWORD), sip_port);
    p.ready().await;
    let admin = p.login("admin", ADMIN_PASSWORD).await;
    let body = json!({ "number": number, "name": "Recorded", "alone_music": false,
                       "auto_record": auto_record });
    let (status, room) = p
        .send(reqwest::Method::POST, "/rooms", Some(&admin), Some(body))
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().expect("id").to_owned();
    let server: std::net::SocketAddr = format!("127.0.0.1:{sip_port}").parse().expect("addr");
    let mut phone = Phone::on(server, "127.0.0.1", &format!("p{number}")).await;
    assert_eq!(phone.dial(number, None, "sendrecv").await, 200);
    (p, admin, room_id, phone)
}

/// `kill -9` while recording: after the restart the recording is listed as interrupted, and
/// what was written up to the last flush decrypts and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_by_kill_9_plays_up_to_its_last_flush() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut p, admin, room_id, mut phone) = a_binary_with_a_call(dir.path(), "8302", false).await;
    talk(&mut [&mut phone], &[Some(0.0)], 25).await;
    let (status, live) = p
        .send(
            reqwest::Method::POST,
            &format!("/conferences/{room_id}/recording/start"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{live}");
    let id = live["recording_id"]
        .as_str()
        .expect("recording id")
        .to_owned();
    // 5 s of a tone: at least two flushes (every 2 s) reach the disk
    talk(&mut [&mut phone], &[Some(700.0)], 250).await;
    p.child.kill().expect("kill -9");
    let _ = p.child.wait();
    drop(p);

    let mut again = spawn_on(dir.path(), None, None, free_udp_port());
    again.ready().await;
    let admin = again.login("admin", ADMIN_PASSWORD).await;
    let (status, detail) = again
        .send(
            reqwest::Method::GET,
            &format!("/recordings/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["recording"]["state"], "interrupted", "{detail}");
    assert!(detail["recording"]["ended_at"].is_i64());
    let tracks = detail["tracks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tracks.len(), 2, "the mix and the phone: {detail}");
    for track in tracks {
        let index = track["track"].as_i64().expect("index");
        let r = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/recordings/{id}/tracks/{index}/audio",
                again.base
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status().as_u16(), 200);
        let pcm = decode(&r.bytes().await.expect("body"));
        assert!(
            pcm.len() >= 48 * 2500,
            "track {index}: at least 2.5 s survived ({} ms)",
            pcm.len() / 48
        );
        if index == 1 {
            let tail = &pcm[pcm.len() - 48 * 1000..];
            assert!(
                goertzel_power(tail, 48_000, 700.0) > 1.0e6,
                "the phone's tone plays"
            );
        }
    }
    again.stop();
}

/// A room that records every meeting starts recording with its first member (by the
/// server); a chair who stops it is not overruled by the next member who comes.
async fn a_room_that_records_every_meeting(db: Db) {
    let Some(s) = start_with(db, "auto_record", |_| {}).await else {
        return;
    };
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8303", "name": "Always", "alone_music": false, "entry_chime": false,
                    "auto_record": true }),
        )
        .await;
    room.expect(201);
    assert_eq!(room.body["auto_record"], true, "{}", room.body);
    let room = room.id();
    let mut first = Phone::on(sip(&s), "127.0.0.1", "auto1").await;
    assert_eq!(first.dial("8303", None, "sendrecv").await, 200);
    talk(&mut [&mut first], &[Some(0.0)], 10).await;
    let live = s.get(&format!("/conferences/{room}"), &admin).await;
    let id = live.body["recording_id"]
        .as_str()
        .unwrap_or_else(|| panic!("recorded from the first member on: {}", live.body))
        .to_owned();
    talk(&mut [&mut first], &[Some(600.0)], 50).await;
    s.post(
        &format!("/conferences/{room}/recording/stop"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    let mut second = Phone::on(sip(&s), "127.0.0.1", "auto2").await;
    assert_eq!(second.dial("8303", None, "sendrecv").await, 200);
    talk(&mut [&mut first, &mut second], &[Some(0.0), Some(0.0)], 10).await;
    let live = s.get(&format!("/conferences/{room}"), &admin).await;
    assert!(
        live.body["recording_id"].is_null(),
        "stopped stays stopped: {}",
        live.body
    );
    first.hang_up().await;
    second.hang_up().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = s.get(&format!("/recordings/{id}"), &admin).await;
        if r.body["recording"]["state"] == "finished" {
            assert_eq!(r.body["recording"]["started_by"], "system", "{}", r.body);
            assert_eq!(
                r.body["tracks"].as_array().map(Vec::len),
                Some(2),
                "{}",
                r.body
            );
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = s.get("/recordings?q=8303", &admin).await;
    assert_eq!(
        all.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        all.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_records_every_meeting_sqlite() {
    a_room_that_records_every_meeting(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_records_every_meeting_postgres() {
    a_room_that_records_every_meeting(Db::Postgres).await;
}

async fn track_status(p: &Process, token: &str, id: &str, track: i64) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/recordings/{id}/tracks/{track}/audio",
            p.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
}

/// Rotating the master key re-wraps every recording's key and leaves the audio as it was:
/// afterwards the old key opens nothing and the new one everything. A retention rule then
/// (the tenant's own) deletes the recording once it is old enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_rotates_without_touching_the_audio_and_retention_deletes_old_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let (p, admin, _, mut phone) = a_binary_with_a_call(dir.path(), "8304", true).await;
    talk(&mut [&mut phone], &[Some(700.0)], 100).await;
    phone.hang_up().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let (_, list) = p
            .send(reqwest::Method::GET, "/recordings", Some(&admin), None)
            .await;
        if list["items"][0]["state"] == "finished" {
            break list["items"][0]["id"].as_str().expect("id").to_owned();
        }
        assert!(Instant::now() < deadline, "never finished: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut files = Vec::new();
    sealed_files(&dir.path().join("recordings"), &mut files);
    files.sort();
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    p.stop();

    let new_key = dir.path().join("rotated.key");
    let rotate = |key: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["rotate-recording-key", "--data-dir"])
            .arg(dir.path())
            .arg("--new-key-file")
            .arg(key)
            .env_remove("CONCLAVE_DATABASE_URL")
            .env_remove("CONCLAVE_RECORDING_KEY_FILE")
            .current_dir(dir.path())
            .output()
            .expect("conclave rotate-recording-key")
    };
    let out = rotate(&new_key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("1 recording keys re-wrapped"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    assert!(before == after, "the audio files are not touched");
    // the current key file cannot be its own successor
    let same = rotate(&dir.path().join("recordings.key"));
    assert!(!same.status.success());

    let mut old = spawn_on(dir.path(), None, None, free_udp_port());
    old.ready().await;
    let admin = old.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        track_status(&old, &admin, &id, 1).await.0,
        409,
        "the old key opens nothing"
    );
    old.stop();
    let key = new_key.to_string_lossy().into_owned();
    let mut new = spawn_with(
        dir.path(),
        None,
        None,
        free_udp_port(),
        &["--recording-key-file", &key],
    );
    new.ready().await;
    let admin = new.login("admin", ADMIN_PASSWORD).await;
    let (status, ogg) = track_status(&new, &admin, &id, 1).await;
    assert_eq!(status, 200);
    let pcm = decode(&ogg);
    assert!(goertzel_power(&pcm[pcm.len() / 4..pcm.len() * 3 / 4], 48_000, 700.0) > 1.0e6);
    // the tenant keeps its recordings two days (the server has no rule of its own)
    let (_, me) = new
        .send(reqwest::Method::GET, "/me", Some(&admin), None)
        .await;
    let tenant = me["tenant_id"].as_str().expect("tenant").to_owned();
    let (status, body) = new
        .send(
            reqwest::Method::PATCH,
            &format!("/tenants/{tenant}"),
            Some(&admin),
            Some(json!({ "recording_retention_days": -1 })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = new
        .send(
            reqwest::Method::PATCH,
            &format!("/tenants/{tenant}"),
            Some(&admin),
            Some(json!({ "recording_retention_days": 2 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recording_retention_days"], 2);
    new.stop();

    // three days later, the tenant's retention of two deletes it: its rows, its audio, in
    // the audit log
    {
        let url = format!("sqlite://{}", dir.path().join("conclave.db").display());
        let store = conclave_store::Store::open(&url).await.expect("database");
        let mut conn = store.conn().await.expect("connection");
        sqlx::query("UPDATE recordings SET ended_at = ended_at - 3 * 86400000")
            .execute(&mut *conn)
            .await
            .expect("aged");
    }
    let mut kept = spawn_with(
        dir.path(),
        None,
        None,
        free_udp_port(),
        &["--recording-key-file", &key],
    );
    kept.ready().await;
    let admin = kept.login("admin", ADMIN_PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = kept
            .send(
                reqwest::Method::GET,
                &format!("/recordings/{id}"),
                Some(&admin),
                None,
            )
            .await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "kept past its retention: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut left = Vec::new();
    sealed_files(&dir.path().join("recordings"), &mut left);
    assert!(left.is_empty(), "its audio is gone: {left:?}");
    let (_, log) = kept
        .send(
            reqwest::Method::GET,
            "/audit-events?action=deleteRecording",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(log["items"][0]["actor_name"], "system", "{log}");
    assert_eq!(log["items"][0]["target_id"], json!(id), "{log}");
    kept.stop();
}

/// moto's S3 server (from the tests' venv, installed by `scripts/install-deps.sh --test`) on
/// a loopback port, with a bucket `recordings`; stopped when dropped.
struct S3Server {
    child: std::process::Child,
    base: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_server() -> S3Server {
    let venv = std::path::PathBuf::from(std::env::var("HOME").expect("HOME"))
        .join(".cache/conclave/venv/bin/moto_server");
    assert!(
        venv.exists(),
        "moto_server is missing: run scripts/install-deps.sh --test"
    );
    let port = crate::common::free_port();
    let child = std::process::Command::new(venv)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let server = S3Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.put(format!("{}/recordings", server.base)).send().await
            && r.status().is_success()
        {
            return server;
        }
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An object of the bucket, read by a real S3 client (boto3, moto's own dependency): moto
/// refuses unsigned reads.
fn s3_object(s3: &S3Server, key: &str) -> Vec<u8> {
    let python = std::path::PathBuf::from(std::env::var("HOME").expect("HOME"))
        .join(".cache/conclave/venv/bin/python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                 aws_access_key_id='test', aws_secret_access_key='secret')\n\
             sys.stdout.buffer.write(s3.get_object(Bucket='recordings', Key=sys.argv[2])['Body'].read())",
            &s3.base,
            key,
        ])
        .output()
        .expect("boto3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The keys under a prefix of the bucket.
async fn s3_keys(s3: &S3Server, prefix: &str) -> Vec<String> {
    let body = reqwest::get(format!(
        "{}/recordings?list-type=2&prefix={prefix}",
        s3.base
    ))
    .await
    .expect("list")
    .text()
    .await
    .expect("body");
    body.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

/// Ended recordings rest in an S3-compatible store: uploaded sealed (no plaintext there
/// either), the local copies gone, played from the store, deleted from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_recordings_rest_in_an_s3_compatible_store() {
    let s3 = s3_server().await;
    let store = format!("s3://test:secret@recordings/conclave?endpoint={}", s3.base);
    let Some(s) = start_with(Db::Sqlite, "s3", |c| c.recording_store = Some(store)).await else {
        return;
    };
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8305", "name": "Stored", "alone_music": false, "auto_record": true }),
    )
    .await
    .expect(201);
    let mut phone = Phone::on(sip(&s), "127.0.0.1", "stored").await;
    assert_eq!(phone.dial("8305", None, "sendrecv").await, 200);
    talk(&mut [&mut phone], &[Some(700.0)], 100).await;
    phone.hang_up().await;
    let local = s._tmp.path().join("recordings");
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let list = s.get("/recordings", &admin).await;
        let mut files = Vec::new();
        sealed_files(&local, &mut files);
        if list.body["items"][0]["state"] == "finished" && files.is_empty() {
            break list.body["items"][0]["id"].as_str().expect("id").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "never uploaded: {} {files:?}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let keys = s3_keys(&s3, "conclave/").await;
    assert_eq!(keys.len(), 2, "the mix and the phone: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.contains(&id) && k.ends_with(".opus.sealed")),
        "{keys:?}"
    );
    for key in &keys {
        let object = s3_object(&s3, key);
        assert!(
            object.len() > 1000 && !object.windows(4).any(|w| w == b"OggS"),
            "{key}: {} bytes, {:?}",
            object.len(),
            String::from_utf8_lossy(&object[..object.len().min(200)])
        );
    }
    let (status, ogg) = audio(&s, &admin, &id, 1).await;
    assert_eq!(status, 200, "played from the store");
    let pcm = decode(&ogg);
    assert!(goertzel_power(&pcm[pcm.len() / 4..pcm.len() * 3 / 4], 48_000, 700.0) > 1.0e6);
    s.delete(&format!("/recordings/{id}"), &admin)
        .await
        .expect(204);
    assert!(
        s3_keys(&s3, "conclave/").await.is_empty(),
        "deleted from the store"
    );
    s.stop().await;
}
