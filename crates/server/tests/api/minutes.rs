//! Minutes with real phones and the real speech model: three baresips call a room that
//! records every meeting, each playing a WAV file in which it speaks one sentence in its
//! turn — two in English (espeak-ng), one in Mandarin (numbered pinyin from pypinyin,
//! spoken by espeak-ng's cmn-latn-pinyin voice). Once the meeting ends its minutes are
//! made: each line is the right speaker's, in the right language, and its link plays that
//! speaker's audio for that span. Edits keep what was recognized; exports (Markdown, DOCX,
//! PDF, JSON) carry the lines; search finds them, for those who may play the recording
//! only. A server without the model says so.

use crate::baresip::{Baresip, G722, baresip_modules, write_wav};
use crate::common::{ADMIN_PASSWORD, Db, TestServer, free_udp_port, start_with};
use crate::phone::{Phone, talk};
use crate::restart::{Process, spawn_with};
use conclave_media::codec::{AudioDecoder, OpusDecoder};
use conclave_media::recording::ogg::read_packets;
use conclave_media::resample::Resampler;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Who speaks what, when (seconds into their call).
const SPEAKERS: [(&str, &str, &str, f64); 3] = [
    (
        "2001",
        "en",
        "The quarterly budget was approved by the board on Monday.",
        3.0,
    ),
    (
        "2002",
        "en",
        "We need to finish the testing before the end of this month.",
        9.0,
    ),
    ("2003", "zh", "我同意这个方案，但是需要更多的时间。", 15.0),
];
const CALL_SECONDS: u64 = 24;

fn model() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = PathBuf::from(home).join(".cache/conclave/models/whisper-base.bin");
    assert!(
        path.is_file(),
        "the speech model is missing: scripts/fetch-speech-model.sh ~/.cache/conclave/models \
         (scripts/install-deps.sh --test runs it)"
    );
    path
}

fn venv_python() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/conclave/venv/bin/python")
}

/// `text` spoken by espeak-ng, as 16 kHz samples.
fn speak(language: &str, text: &str) -> Vec<i16> {
    let spoken = if language == "zh" {
        let out = std::process::Command::new(venv_python())
            .args([
                "-c",
                "import sys\nfrom pypinyin import lazy_pinyin, Style\n\
                 s = sys.argv[1].replace('，', ', ').replace('。', '. ')\n\
                 print(' '.join(lazy_pinyin(s, style=Style.TONE3, neutral_tone_with_five=True)))",
                text,
            ])
            .output()
            .expect("the tests' venv has pypinyin (scripts/install-deps.sh --test)");
        assert!(
            out.status.success(),
            "pypinyin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    } else {
        text.to_owned()
    };
    let voice = if language == "zh" {
        "cmn-latn-pinyin"
    } else {
        "en-us"
    };
    let out = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "--stdout", &spoken])
        .output()
        .expect("espeak-ng is installed (scripts/debian-packages-test.txt)");
    assert!(out.status.success());
    let wav = out.stdout;
    // espeak-ng writes a 22050 Hz mono WAV; its data chunk's length may be left unset
    let rate = u32::from_le_bytes(wav[24..28].try_into().expect("rate"));
    let data = wav
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk")
        + 8;
    let samples: Vec<i16> = wav[data..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut out = Vec::new();
    Resampler::new(rate, 16_000).process(&samples, &mut out);
    out
}

/// A 16 kHz mono WAV of `seconds`: silence, then `speech` from `at` seconds.
fn write_speech(path: &Path, speech: &[i16], at: f64, seconds: u32) {
    let mut samples = vec![0i16; 16_000 * seconds as usize];
    let from = (at * 16_000.0) as usize;
    for (slot, s) in samples.iter_mut().skip(from).zip(speech) {
        *slot = *s;
    }
    write_wav(path, &samples, G722.rate, G722.channels);
}

async fn bytes(s: &TestServer, token: &str, path: &str) -> (u16, Vec<u8>, String) {
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, r.bytes().await.expect("body").to_vec(), kind)
}

/// Decoded 48 kHz samples of an Ogg Opus file, after its pre-skip.
fn decode(ogg: &[u8]) -> (Vec<i16>, u64) {
    let read = read_packets(ogg).expect("Ogg");
    let pre_skip = read.pre_skip.unwrap_or(0) as usize;
    let mut decoder = OpusDecoder::new(48_000).expect("decoder");
    let mut pcm = Vec::new();
    for p in &read.packets[2..] {
        decoder.decode(p, &mut pcm).expect("opus");
    }
    let length = read.granule.saturating_sub(pre_skip as u64);
    (pcm.split_off(pre_skip.min(pcm.len())), length)
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

fn cjk(s: &str) -> usize {
    s.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count()
}

async fn minutes_of_a_meeting(db: Db) {
    let Some(modules) = baresip_modules() else {
        return;
    };
    let model = model();
    let Some(s) = start_with(db, "minutes", |settings| {
        settings.speech_model = model;
        settings.minutes_threads = 2;
    })
    .await
    else {
        return;
    };
    let admin = s.admin().await;
    for (number, language, ..) in SPEAKERS {
        s.post(
            "/users",
            &admin,
            json!({ "username": format!("u{number}"), "display_name": format!("Speaker {number}"),
                    "password": "speaker-password-1", "extension": number, "language": language }),
        )
        .await
        .expect(201);
    }
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8401", "name": "Minutes", "auto_record": true, "language": "en",
                "alone_music": false, "entry_chime": false }),
    )
    .await
    .expect(201);
    let sip = s.running.as_ref().expect("running").sip.udp;
    let files = tempfile::tempdir().expect("tmp");
    let mut phones = Vec::new();
    for (number, language, text, at) in SPEAKERS {
        let wav = files.path().join(format!("{number}.wav"));
        write_speech(&wav, &speak(language, text), at, 40);
        phones.push(Baresip::start(
            &modules,
            number,
            &format!(
                "\"Speaker {number}\" <sip:{number}@127.0.0.1>;regint=0;audio_codecs={}",
                G722.account
            ),
            Some(&wav),
            CALL_SECONDS,
            &[format!("/dial sip:8401@{sip}")],
        ));
    }
    let mut logs = String::new();
    for phone in &mut phones {
        logs.push_str(&phone.finish(Duration::from_secs(CALL_SECONDS + 15)).await);
    }

    // the meeting ended with its last member: its recording finishes, then its minutes
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let list = s.get("/recordings", &admin).await;
        let first = &list.body["items"][0];
        if first["state"] == "finished" {
            break first["id"].as_str().expect("id").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no finished recording: {}\n{logs}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let minutes = loop {
        let m = s.get(&format!("/recordings/{id}/minutes"), &admin).await;
        m.expect(200);
        if m.body["state"] == "done" {
            break m.body;
        }
        assert!(
            m.body["state"] != "failed" && m.body["state"] != "unavailable",
            "{}",
            m.body
        );
        assert!(
            Instant::now() < deadline,
            "the minutes are not done: {}",
            m.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for l in minutes["lines"].as_array().into_iter().flatten() {
        eprintln!(
            "{} {}-{} [{}] {}",
            l["speaker"], l["start_ms"], l["end_ms"], l["language"], l["text"]
        );
    }
    assert_eq!(minutes["done"], minutes["total"], "{minutes}");
    assert_eq!(minutes["editable"], true);
    let members = minutes["members"].as_array().expect("members").clone();
    assert_eq!(members.len(), 3, "{minutes}");
    let lines = minutes["lines"].as_array().expect("lines").clone();
    let track_of = |number: &str| {
        members
            .iter()
            .find(|m| m["number"] == number)
            .and_then(|m| m["track"].as_i64())
            .unwrap_or_else(|| panic!("a track for {number}: {minutes}"))
    };
    let said = |number: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["track"].as_i64() == Some(track_of(number)))
            .collect()
    };
    // every line is its speaker's: within the time that speaker spoke (by the calls'
    // clocks, a second either way for the calls' set-up), in their language
    let mut spans = Vec::new();
    for (number, language, text, _) in SPEAKERS {
        let own = said(number);
        assert!(!own.is_empty(), "{number} said something: {minutes}");
        let heard: String = own
            .iter()
            .map(|l| l["text"].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        for l in &own {
            assert_eq!(l["language"], language, "{number}: {l}");
            assert_eq!(l["speaker"], format!("Speaker {number} ({number})"), "{l}");
        }
        if language == "zh" {
            assert!(
                cjk(&heard) >= 6,
                "{number} is heard in Chinese: {heard:?} (said {text})"
            );
        } else {
            let lower = heard.to_lowercase();
            let words: Vec<&str> = text
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                .filter(|w| w.len() > 4)
                .collect();
            let found = words
                .iter()
                .filter(|w| lower.contains(&w.to_lowercase()))
                .count();
            assert!(
                found * 4 >= words.len() * 3,
                "{number} is heard (three words in four): {heard:?} (said {text})"
            );
        }
        let from = own
            .iter()
            .filter_map(|l| l["start_ms"].as_i64())
            .min()
            .expect("start");
        let to = own
            .iter()
            .filter_map(|l| l["end_ms"].as_i64())
            .max()
            .expect("end");
        spans.push((number, from, to));
    }
    // the turns do not overlap: nobody's line is in another's turn
    for (i, (a, from_a, to_a)) in spans.iter().enumerate() {
        for (b, from_b, to_b) in &spans[i + 1..] {
            assert!(
                to_a <= from_b || to_b <= from_a,
                "{a} {from_a}-{to_a} and {b} {from_b}-{to_b}"
            );
        }
    }

    // a line's link plays exactly that utterance, from its speaker's track
    let first = said("2001")[0].clone();
    let (from, to) = (
        first["start_ms"].as_i64().expect("start"),
        first["end_ms"].as_i64().expect("end"),
    );
    let (status, clip, kind) = bytes(&s, &admin, first["audio"].as_str().expect("audio")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&clip));
    assert_eq!(kind, "audio/ogg");
    let (pcm, length) = decode(&clip);
    let expected = (to - from) as u64 * 48;
    assert!(
        length.abs_diff(expected) <= 48 * 25,
        "{length} samples for {expected}"
    );
    assert!(
        rms(&pcm) > 300.0,
        "the clip holds the voice: rms {}",
        rms(&pcm)
    );
    // the same span of the others' tracks is quiet
    for other in ["2002", "2003"] {
        let path = format!(
            "/api/v1/recordings/{id}/tracks/{}/audio?from_ms={from}&to_ms={to}",
            track_of(other)
        );
        let (status, clip, _) = bytes(&s, &admin, &path).await;
        assert_eq!(status, 200);
        let (pcm, _) = decode(&clip);
        assert!(
            rms(&pcm) < 100.0,
            "{other} was quiet then: rms {}",
            rms(&pcm)
        );
    }
    // a span that is not one is refused, clearly
    let bad = s
        .get(
            &format!(
                "/recordings/{id}/tracks/{}/audio?from_ms=5&to_ms=2",
                track_of("2001")
            ),
            &admin,
        )
        .await;
    bad.expect(422);

    // the owner corrects a line: the minutes show the correction, the recognition stays
    let chinese = said("2003")[0].clone();
    let recognized = chinese["recognized"]
        .as_str()
        .expect("recognized")
        .to_owned();
    let edited = s
        .patch(
            &format!("/recordings/{id}/minutes"),
            &admin,
            json!({ "lines": [{ "track": chinese["track"], "start_ms": chinese["start_ms"],
                                "text": "我同意这个方案，但是需要更多的时间。" }] }),
        )
        .await;
    edited.expect(200);
    let line = edited.body["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["track"] == chinese["track"]))
        .expect("the line")
        .clone();
    assert_eq!(line["text"], "我同意这个方案，但是需要更多的时间。");
    assert_eq!(line["recognized"], recognized.as_str());
    assert!(line["edited_by"].is_string(), "{line}");
    s.patch(
        &format!("/recordings/{id}/minutes"),
        &admin,
        json!({ "lines": [{ "track": 99, "start_ms": 0, "text": "x" }] }),
    )
    .await
    .expect(422);

    // exports carry every line, its speaker and a link to it
    let (status, md, _) = bytes(
        &s,
        &admin,
        &format!("/api/v1/recordings/{id}/minutes/export?format=markdown"),
    )
    .await;
    assert_eq!(status, 200);
    let md = String::from_utf8(md).expect("UTF-8");
    assert!(
        md.contains("**Speaker 2003 (2003):** 我同意这个方案"),
        "{md}"
    );
    assert!(
        md.contains(&format!("#recording={id}&track={}", track_of("2001"))),
        "{md}"
    );
    let (status, docx, kind) = bytes(
        &s,
        &admin,
        &format!("/api/v1/recordings/{id}/minutes/export?format=docx&lang=zh"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.contains("wordprocessingml"), "{kind}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(docx)).expect("a docx is a zip");
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("word/document.xml").expect("document.xml"),
        &mut xml,
    )
    .expect("read");
    assert!(
        xml.contains("会议纪要") && xml.contains("我同意这个方案"),
        "{xml}"
    );
    let (status, pdf, kind) = bytes(
        &s,
        &admin,
        &format!("/api/v1/recordings/{id}/minutes/export?format=pdf&tz=Asia/Shanghai"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/pdf");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("m.pdf"), &pdf).expect("write");
    let text = std::process::Command::new("pdftotext")
        .arg(dir.path().join("m.pdf"))
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) reads the PDF");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Speaker 2001") && text.contains("我同意这个方案"),
        "{text}"
    );
    let (status, json_export, _) = bytes(
        &s,
        &admin,
        &format!("/api/v1/recordings/{id}/minutes/export?format=json"),
    )
    .await;
    assert_eq!(status, 200);
    let parsed: Value = serde_json::from_slice(&json_export).expect("JSON");
    assert_eq!(parsed["lines"].as_array().map(Vec::len), Some(lines.len()));
    s.get(
        &format!("/recordings/{id}/minutes/export?format=exe"),
        &admin,
    )
    .await
    .expect(422);

    // search finds lines in both languages, for whoever may play the recording only
    let found = s.get("/minutes?q=%E6%96%B9%E6%A1%88", &admin).await; // 方案
    found.expect(200);
    let items = found.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{}", found.body);
    assert_eq!(items[0]["recording_id"], id.as_str());
    assert_eq!(items[0]["speaker"], "Speaker 2003 (2003)");
    let found = s.get("/minutes?q=BUDGET%20approved", &admin).await;
    assert_eq!(
        found.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.body
    );
    assert_eq!(
        s.get("/minutes?q=budget%20nothing", &admin).await.body["items"],
        json!([])
    );
    s.get("/minutes?q=%20", &admin).await.expect(422);
    s.user(&admin, "bystander", "user", None).await;
    let bystander = s.token("bystander", "bystander-password").await;
    assert_eq!(
        s.get("/minutes?q=budget", &bystander).await.body["items"],
        json!([])
    );
    s.get(&format!("/recordings/{id}/minutes"), &bystander)
        .await
        .expect(404);
    s.patch(
        &format!("/recordings/{id}/minutes"),
        &bystander,
        json!({ "lines": [] }),
    )
    .await
    .expect(404);
    // every export is in the audit log
    let audit = s.get("/audit-events?action=exportMinutes", &admin).await;
    assert!(
        audit.body["items"].as_array().map_or(0, Vec::len) >= 4,
        "{}",
        audit.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minutes_say_who_said_what_sqlite() {
    minutes_of_a_meeting(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minutes_say_who_said_what_postgres() {
    minutes_of_a_meeting(Db::Postgres).await;
}

/// Without the speech model the server runs and records, and the minutes say why they
/// are missing; asking for them again is refused with that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_model_the_minutes_say_so() {
    let s = start_with(Db::Sqlite, "minutes_unavailable", |settings| {
        settings.speech_model = "/nonexistent/whisper-base.bin".into();
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8402", "name": "No model", "auto_record": true,
                "alone_music": false, "entry_chime": false }),
    )
    .await
    .expect(201);
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phone = Phone::on(sip, "127.0.0.1", "nomodel").await;
    assert_eq!(phone.dial("8402", None, "sendrecv").await, 200);
    talk(&mut [&mut phone], &[Some(700.0)], 100).await;
    assert_eq!(phone.hang_up().await, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let minutes = loop {
        let list = s.get("/recordings", &admin).await;
        if let Some(id) = list.body["items"][0]["id"].as_str() {
            let m = s.get(&format!("/recordings/{id}/minutes"), &admin).await;
            m.expect(200);
            if m.body["state"] == "unavailable" {
                break m.body;
            }
        }
        assert!(Instant::now() < deadline, "no minutes: {}", list.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let why = minutes["error"].as_str().unwrap_or_default();
    assert!(why.contains("/nonexistent/whisper-base.bin"), "{minutes}");
    assert_eq!(minutes["lines"], json!([]));
    let id = minutes["recording_id"].as_str().expect("id");
    let again = s
        .patch(
            &format!("/recordings/{id}/minutes"),
            &admin,
            json!({ "remake": true }),
        )
        .await;
    again.expect(409);
    assert_eq!(
        s.get("/minutes?q=anything", &admin).await.body["items"],
        json!([])
    );
    s.stop().await;
}

async fn minutes_of(p: &Process, admin: &str) -> Option<Value> {
    let (_, list) = p
        .send(reqwest::Method::GET, "/recordings", Some(admin), None)
        .await;
    let id = list["items"][0]["id"].as_str()?.to_owned();
    let (status, m) = p
        .send(
            reqwest::Method::GET,
            &format!("/recordings/{id}/minutes"),
            Some(admin),
            None,
        )
        .await;
    (status == 200).then_some(m)
}

/// A counter of the server's /metrics (loopback needs no token), 0 when absent.
async fn counter(p: &Process, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", p.base))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `kill -9` while minutes are being made: after the restart they resume where they
/// stopped — what was recognized is not recognized again — and end done, a line for every
/// utterance and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minutes_cut_by_kill_9_resume_where_they_stopped() {
    let model = model();
    let model = model.to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().expect("tmp");
    // one language (no detection pass), one thread, and only after the meeting: so that
    // some are surely left when the server is killed, however fast the machine is
    let flags = [
        "--minutes-live",
        "false",
        "--speech-model",
        model,
        "--minutes-threads",
        "1",
        "--minutes-beam",
        "5",
        "--minutes-languages",
        "en",
    ];
    let sip_port = free_udp_port();
    let mut p = spawn_with(dir.path(), None, Some(ADMIN_PASSWORD), sip_port, &flags);
    p.ready().await;
    let admin = p.login("admin", ADMIN_PASSWORD).await;
    let (status, room) = p
        .send(
            reqwest::Method::POST,
            "/rooms",
            Some(&admin),
            Some(
                json!({ "number": "8403", "name": "Resumed", "auto_record": true,
                         "alone_music": false, "entry_chime": false }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let server: std::net::SocketAddr = format!("127.0.0.1:{sip_port}").parse().expect("addr");
    let mut phone = Phone::on(server, "127.0.0.1", "resumed").await;
    assert_eq!(phone.dial("8403", None, "sendrecv").await, 200);
    // ten utterances: a second of sound, most of a second of quiet
    for _ in 0..10 {
        talk(&mut [&mut phone], &[Some(700.0)], 50).await;
        talk(&mut [&mut phone], &[Some(0.0)], 45).await;
    }
    assert_eq!(phone.hang_up().await, 200);
    // some are recognized, not all: then the server is killed
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        if let Some(m) = minutes_of(&p, &admin).await {
            let done = m["done"].as_i64().unwrap_or(0);
            if m["state"] == "working"
                && m["live"] == false
                && done >= 2
                && done + 3 < m["total"].as_i64().unwrap_or(0)
            {
                break m;
            }
            assert!(
                m["state"] != "done",
                "the minutes were done before the kill: {m}"
            );
        }
        assert!(Instant::now() < deadline, "the minutes never got under way");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    p.child.kill().expect("kill -9");
    let _ = p.child.wait();
    drop(p);
    let total = before["total"].as_i64().expect("total");
    assert!(total >= 7, "{before}");
    let done_before = before["done"].as_i64().expect("done");

    let mut again = spawn_with(dir.path(), None, None, free_udp_port(), &flags);
    again.ready().await;
    let admin = again.login("admin", ADMIN_PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let after = loop {
        if let Some(m) = minutes_of(&again, &admin).await
            && m["state"] == "done"
        {
            break m;
        }
        assert!(Instant::now() < deadline, "the minutes did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after["done"], after["total"], "{after}");
    assert_eq!(after["total"].as_i64(), Some(total), "{after}");
    // only what was left was recognized after the restart
    let recognized = counter(&again, "conclave_minutes_lines_total").await;
    assert!(
        recognized >= 1.0 && recognized <= (total - done_before) as f64,
        "{recognized} recognized after the restart, {done_before} of {total} before"
    );
    again.stop();
}
