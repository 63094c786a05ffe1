//! Browsers in a meeting, end to end: Debian's Chromium (Playwright, `web/tests/browser-member.mjs`)
//! opens the join page, its fake microphone plays a tone from a WAV file, and it joins over
//! WebRTC (ICE-lite on the media plane's shared port, DTLS-SRTP, Opus) with a phone caller
//! (plain RTP, PCMU) in the same room.
//!
//! - Each of two browsers and the phone hears the others' tones and not its own.
//! - A browser restarts ICE (as after a network change) without leaving: it still hears.
//! - The chair mutes a browser member from the API (as the console does): the phone stops
//!   hearing its tone; the browser's own mute button does the same.
//! - A wrong PIN is refused with the page's words; a locked meeting refuses the browser too.
//! - A guest's token cannot act as a chair; the room's owner, logged in, joins with a chair's
//!   controls and removes a member from the page, whose page says so.
//! - The member leaves with its Leave button: it is gone from the roster, its token is
//!   worth nothing.

use crate::baresip::write_tone;
use crate::common::{Db, TestServer, start_with};
use crate::room_call::{Caller, talk_and_listen};
use base64::Engine as _;
use conclave_media::dsp::goertzel_power;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Chromium, Node and the built console are here (the test command installs and builds them).
pub(crate) fn browser_ready() -> bool {
    let ready = Path::new("/usr/bin/chromium").exists()
        && repo().join("web/dist/index.html").exists()
        && repo().join("web/node_modules/playwright-core").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium, web/node_modules and web/dist (scripts/install-deps.sh --test, scripts/build-web.sh)"
        );
        eprintln!("skipped: Chromium, web/node_modules or web/dist is missing");
    }
    ready
}

/// One Chromium with the join page open, driven over its stdin.
pub(crate) struct BrowserMember {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl BrowserMember {
    pub(crate) fn start(base: &str, wav: &Path) -> BrowserMember {
        Self::start_with(base, wav, false, None, "en")
    }

    /// A member whose fake camera shows `camera` (a `.y4m` file), joining with it on, its
    /// page in `lang` (`en`, `zh`).
    pub(crate) fn with_camera(base: &str, wav: &Path, camera: &Path, lang: &str) -> BrowserMember {
        Self::start_with(base, wav, false, Some(camera), lang)
    }

    /// A browser without a camera whose pages are in `lang` (`en`, `zh`).
    pub(crate) fn in_language(base: &str, wav: &Path, lang: &str) -> BrowserMember {
        Self::start_with(base, wav, false, None, lang)
    }

    /// `tcp_only`: Chromium uses no UDP for WebRTC, as behind a firewall that blocks it.
    fn start_with(
        base: &str,
        wav: &Path,
        tcp_only: bool,
        camera: Option<&Path>,
        lang: &str,
    ) -> BrowserMember {
        let mut command = Command::new("node");
        if tcp_only {
            command.env("CONCLAVE_BROWSER_TCP_ONLY", "1");
        }
        if let Some(camera) = camera {
            command.env("CONCLAVE_BROWSER_CAMERA", camera);
        }
        let mut child = command
            .arg(repo().join("web/tests/browser-member.mjs"))
            .arg(base)
            .arg(wav)
            .arg(lang)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the browser member");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        BrowserMember {
            child,
            stdin,
            lines,
        }
    }

    pub(crate) async fn ask(&mut self, command: &str) -> String {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write to the browser member");
        let line = tokio::time::timeout(Duration::from_secs(40), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser member answers {command:?} within 40 s"))
            .expect("read")
            .unwrap_or_else(|| panic!("the browser member ended before answering {command:?}"));
        assert!(!line.starts_with("error"), "{command}: {line}");
        line
    }

    /// Joins; the member id, or the page's refusal.
    pub(crate) async fn join(
        &mut self,
        number: &str,
        name: &str,
        pin: Option<&str>,
    ) -> Result<u32, String> {
        let line = self
            .ask(&format!("join {number} {name} {}", pin.unwrap_or("")))
            .await;
        match line.split_once(' ') {
            Some(("joined", id)) => Ok(id.trim().parse().expect("a member id")),
            Some(("refused", why)) => Err(why.to_owned()),
            _ => panic!("join: {line}"),
        }
    }

    /// What it heard since the last mark (mono, at its rate).
    async fn heard(&mut self) -> (Vec<i16>, u32) {
        let line = self.ask("heard").await;
        let mut parts = line.split(' ').skip(1);
        let rate: u32 = parts.next().and_then(|r| r.parse().ok()).expect("rate");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(parts.next().unwrap_or(""))
            .expect("base64");
        let pcm = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        (pcm, rate)
    }

    pub(crate) async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The last `seconds` of what was heard.
fn tail(pcm: &[i16], rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    pcm[pcm.len().saturating_sub(n)..].to_vec()
}

/// `freq` stands out of `pcm` at least `times` over `other` (a tone it must not hold).
fn hears(pcm: &[i16], rate: u32, freq: f64, other: f64, times: f64) -> (bool, f64, f64) {
    let wanted = goertzel_power(pcm, rate, freq);
    let unwanted = goertzel_power(pcm, rate, other);
    (wanted > times * unwanted.max(1e-9), wanted, unwanted)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The join page's roster stream, on a member's token.
async fn roster_stream(s: &TestServer, token: &str) -> Result<Socket, String> {
    let url = format!(
        "{}/api/v1/join/me/events?access_token={token}",
        s.base.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| e.to_string())
}

/// The next roster the stream sends (within 10 s).
async fn next_roster(socket: &mut Socket) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(&text).expect("a roster as JSON");
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no roster within 10 s: {other:?}"),
        }
    }
}

/// Whether a roster the stream sends within 10 s satisfies `wanted`.
async fn next_roster_where(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if wanted(&next_roster(socket).await) {
            return true;
        }
    }
    false
}

async fn roster(s: &TestServer, admin: &str, room_id: &str) -> Vec<Value> {
    s.get(&format!("/conferences/{room_id}"), admin).await.body["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_a_phone_hear_each_other_and_the_chair_mutes_a_browser() {
    if !browser_ready() {
        return;
    }
    let s = start_with(Db::Sqlite, "browser_join", |settings| {
        settings.web_dir = repo().join("web/dist");
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8300", "name": "Harbour crisis room", "pin": "2468" }),
        )
        .await;
    room.expect(201);
    let room_id = room.id();
    let dir = tempfile::tempdir().expect("temp dir");
    let (wav_a, wav_b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    write_tone(&wav_a, 500.0, 48_000, 1, 60);
    write_tone(&wav_b, 1_100.0, 48_000, 1, 60);

    // a wrong PIN is refused in words; then both browsers join with the right one
    let mut a = BrowserMember::start(&s.base, &wav_a);
    let refused = a.join("8300", "Ada", Some("1111")).await;
    assert_eq!(refused, Err("Wrong PIN.".into()));
    let member_a = a
        .join("8300", "Ada", Some("2468"))
        .await
        .expect("Ada joins");
    let mut b = BrowserMember::start(&s.base, &wav_b);
    let member_b = b.join("8300", "Bo", Some("2468")).await.expect("Bo joins");

    // a phone dials in and keys the PIN
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phone = Caller::new(sip, "phone").await;
    assert_eq!(phone.dial("8300").await, 200);
    phone.press("2468#").await;
    let mut in_roster = false;
    for _ in 0..50 {
        let members = roster(&s, &admin, &room_id).await;
        if members.len() == 3 {
            let vias: Vec<&str> = members.iter().filter_map(|m| m["via"].as_str()).collect();
            assert_eq!(
                vias.iter().filter(|v| **v == "browser").count(),
                2,
                "{members:?}"
            );
            in_roster = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(in_roster, "two browsers and the phone in the roster");
    // what plays to the phone alone after its PIN (the welcome) is over before we judge
    talk_and_listen(&phone, 2_000.0, 150).await;

    a.ask("mark").await;
    b.ask("mark").await;
    let heard_by_phone = talk_and_listen(&phone, 2_000.0, 200).await;
    let (heard_a, rate_a) = a.heard().await;
    let (heard_b, rate_b) = b.heard().await;
    let phone_tail = tail(&heard_by_phone, 8_000, 2.0);
    let (a_tail, b_tail) = (tail(&heard_a, rate_a, 2.0), tail(&heard_b, rate_b, 2.0));
    assert!(
        a_tail.len() > rate_a as usize && b_tail.len() > rate_b as usize,
        "the browsers receive audio: {} / {}",
        heard_a.len(),
        heard_b.len()
    );
    for (who, pcm, rate, own, others) in [
        ("Ada", &a_tail, rate_a, 500.0, [1_100.0, 2_000.0]),
        ("Bo", &b_tail, rate_b, 1_100.0, [500.0, 2_000.0]),
        ("the phone", &phone_tail, 8_000, 2_000.0, [500.0, 1_100.0]),
    ] {
        for other in others {
            let (ok, wanted, unwanted) = hears(pcm, rate, other, own, 20.0);
            assert!(
                ok,
                "{who} hears {other} Hz ({wanted:.1}) and not its own {own} Hz ({unwanted:.1})"
            );
        }
    }

    // Bo's network changes: an ICE restart on the same session, and the audio goes on
    let restarted = b.ask("restart").await;
    assert!(
        restarted == "restarted connected" || restarted == "restarted completed",
        "{restarted}"
    );
    b.ask("mark").await;
    talk_and_listen(&phone, 2_000.0, 100).await;
    let (heard_b, rate_b) = b.heard().await;
    let (ok, wanted, unwanted) =
        hears(&tail(&heard_b, rate_b, 1.5), rate_b, 2_000.0, 1_100.0, 20.0);
    assert!(
        ok,
        "after the restart Bo still hears the phone ({wanted:.1}, own {unwanted:.1})"
    );

    // the chair mutes Ada from the API, as the console does: the phone no longer hears 500 Hz
    s.post(
        &format!("/conferences/{room_id}/members/{member_a}/mute"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    talk_and_listen(&phone, 2_000.0, 25).await;
    let heard_by_phone = talk_and_listen(&phone, 2_000.0, 100).await;
    let muted = tail(&heard_by_phone, 8_000, 1.5);
    let (still_bo, bo, _) = hears(&muted, 8_000, 1_100.0, 2_000.0, 20.0);
    let ada = goertzel_power(&muted, 8_000, 500.0);
    assert!(still_bo, "Bo is still heard ({bo:.1})");
    assert!(
        bo > 100.0 * ada.max(1e-9),
        "muted, Ada is not heard ({ada:.1} against Bo's {bo:.1})"
    );
    // Bo mutes himself with his button: the page says so, the roster too
    b.ask("click join-mute").await;
    let mut bo_muted = false;
    for _ in 0..25 {
        let members = roster(&s, &admin, &room_id).await;
        if members
            .iter()
            .any(|m| m["id"] == json!(member_b) && m["muted"] == json!(true))
        {
            bo_muted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(bo_muted, "Bo muted himself");

    // locked: a third browser is turned away
    s.post(&format!("/conferences/{room_id}/lock"), &admin, json!({}))
        .await
        .expect(200);
    let mut c = BrowserMember::start(&s.base, &wav_a);
    let refused = c.join("8300", "Cy", Some("2468")).await;
    assert_eq!(refused, Err("The meeting is locked.".into()));
    c.quit().await;
    s.post(&format!("/conferences/{room_id}/unlock"), &admin, json!({}))
        .await
        .expect(200);

    // a guest may not act as a chair: the meeting's permission check, as for everyone
    let guest = a.ask("token").await;
    let guest = guest.trim_start_matches("token ");
    s.post("/join/me/actions", guest, json!({ "action": "lock" }))
        .await
        .expect(403);
    s.post(
        "/join/me/actions",
        guest,
        json!({ "action": "remove_member", "member": member_b }),
    )
    .await
    .expect(403);
    // the page's roster is pushed over a WebSocket: the meeting at once, then each change;
    // a session holds two streams at most (the page's and this one), a stranger none
    let mut ada_stream = roster_stream(&s, guest).await.expect("Ada's roster stream");
    let first = next_roster(&mut ada_stream).await;
    assert_eq!(first["member_id"], json!(member_a));
    assert!(
        first["members"].as_array().is_some_and(|m| m.len() >= 3),
        "the whole roster at once: {first}"
    );
    let mut third = roster_stream(&s, guest).await.expect("upgraded");
    assert_eq!(
        crate::hardening::closed_by_server(&mut third, Duration::from_secs(5)).await,
        Some(4429),
        "a third stream on one session is turned away"
    );
    assert!(
        roster_stream(&s, "not-a-member-token").await.is_err(),
        "a stranger gets no stream"
    );
    s.post(
        &format!("/conferences/{room_id}/members/{member_b}/unmute"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    let pushed = next_roster_where(&mut ada_stream, |r| {
        r["members"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["id"] == json!(member_b) && m["muted"] == json!(false))
        })
    })
    .await;
    assert!(pushed, "Bo unmuted reaches Ada's stream");
    let bo_token = b.ask("token").await;
    let mut bo_stream = roster_stream(&s, bo_token.trim_start_matches("token "))
        .await
        .expect("Bo's roster stream");
    next_roster(&mut bo_stream).await;

    // the room's creator joins logged in: as its owner, with a chair's controls on the page;
    // they remove Bo, whose page says he is no longer in the meeting (and whose stream ends)
    let mut chair = BrowserMember::start(&s.base, &wav_a);
    chair.ask(&format!("login {admin}")).await;
    chair
        .join("8300", "Chair", Some("2468"))
        .await
        .expect("the owner joins");
    chair.ask(&format!("click join-remove-{member_b}")).await;
    let mut removed = false;
    for _ in 0..25 {
        if !roster(&s, &admin, &room_id)
            .await
            .iter()
            .any(|m| m["id"] == json!(member_b))
        {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(removed, "the owner removed Bo from the page");
    assert_eq!(
        crate::hardening::closed_by_server(&mut bo_stream, Duration::from_secs(10)).await,
        Some(4401),
        "Bo's stream says the meeting let him go"
    );
    let gone = next_roster_where(&mut ada_stream, |r| {
        r["members"]
            .as_array()
            .is_some_and(|m| !m.iter().any(|m| m["id"] == json!(member_b)))
    })
    .await;
    assert!(gone, "Ada's stream no longer lists Bo");
    let told = b.ask("text join-left").await;
    assert!(
        told.contains("no longer in the meeting"),
        "Bo's page says so: {told}"
    );
    chair.quit().await;

    // Ada leaves with her button: gone from the roster
    a.ask("click join-leave").await;
    let mut gone = false;
    for _ in 0..25 {
        let members = roster(&s, &admin, &room_id).await;
        if !members.iter().any(|m| m["id"] == json!(member_a)) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "Ada left");
    assert!(
        a.ask("text join-left").await.contains("left the meeting"),
        "her page says she left"
    );

    a.quit().await;
    b.quit().await;
    assert_eq!(phone.hang_up("8300").await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_whose_network_blocks_udp_joins_over_tcp() {
    if !browser_ready() {
        return;
    }
    // on PostgreSQL when it is configured (the other browser test runs on SQLite)
    let configure = |settings: &mut conclave_server::config::Settings| {
        settings.web_dir = repo().join("web/dist");
        settings.media_tcp_listen = Some("127.0.0.1:0".parse().expect("addr"));
    };
    let s = match start_with(Db::Postgres, "browser_tcp", configure).await {
        Some(s) => s,
        None => start_with(Db::Sqlite, "browser_tcp", configure)
            .await
            .expect("server"),
    };
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8310", "name": "Behind a firewall" }),
    )
    .await
    .expect(201);
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("a.wav");
    write_tone(&wav, 700.0, 48_000, 1, 60);
    let mut browser = BrowserMember::start_with(&s.base, &wav, true, None, "en");
    browser.join("8310", "Remote", None).await.expect("joins");
    assert_eq!(
        browser.ask("transport").await,
        "transport tcp",
        "ICE over TCP"
    );

    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phone = Caller::new(sip, "phone").await;
    assert_eq!(phone.dial("8310").await, 200);
    talk_and_listen(&phone, 2_000.0, 100).await;
    browser.ask("mark").await;
    let heard_by_phone = talk_and_listen(&phone, 2_000.0, 150).await;
    let (heard, rate) = browser.heard().await;
    let (ok, wanted, unwanted) = hears(
        &tail(&heard_by_phone, 8_000, 2.0),
        8_000,
        700.0,
        2_000.0,
        20.0,
    );
    assert!(
        ok,
        "the phone hears the browser over TCP ({wanted:.1}, own {unwanted:.1})"
    );
    let (ok, wanted, unwanted) = hears(&tail(&heard, rate, 2.0), rate, 2_000.0, 700.0, 20.0);
    assert!(
        ok,
        "the browser hears the phone over TCP ({wanted:.1}, own {unwanted:.1})"
    );
    browser.quit().await;
    assert_eq!(phone.hang_up("8310").await, 200);
    s.stop().await;
}

/// A live stream in a real browser: two phones speak in turn while Chromium watches the
/// stream's page — a wrong password is refused in words, the right one plays, and what the
/// page plays holds both phones' tones (HLS, Opus in fMP4, through Media Source Extensions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_watches_a_live_stream_with_its_password() {
    use crate::phone::{Phone, talk};
    if !browser_ready() {
        return;
    }
    let s = start_with(Db::Sqlite, "browser_watch", |settings| {
        settings.web_dir = repo().join("web/dist");
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8310", "name": "Press briefing", "alone_music": false, "entry_chime": false }),
        )
        .await;
    room.expect(201);
    let room_id = room.id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phones = Vec::new();
    for i in 0..2 {
        let mut p = Phone::on(sip, "127.0.0.1", &format!("w{i}")).await;
        assert_eq!(p.dial("8310", None, "sendrecv").await, 200);
        phones.push(p);
    }
    let started = s
        .post(
            &format!("/conferences/{room_id}/stream/start"),
            &admin,
            json!({ "password": "7788" }),
        )
        .await;
    started.expect(200);
    let key = started.body["key"].as_str().expect("key").to_owned();
    // the stream has a few segments before anyone watches
    {
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &[Some(0.0), Some(0.0)], 200).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("quiet.wav");
    write_tone(&wav, 0.0, 48_000, 1, 60);
    let mut viewer = BrowserMember::start(&s.base, &wav);
    let refused = viewer.ask(&format!("watch {key} 7799")).await;
    assert_eq!(refused, "refused Wrong password.");
    assert_eq!(viewer.ask(&format!("watch {key} 7788")).await, "watching");
    {
        let mut all: Vec<&mut Phone> = phones.iter_mut().collect();
        talk(&mut all, &[Some(600.0), Some(0.0)], 400).await;
        talk(&mut all, &[Some(0.0), Some(1_000.0)], 400).await;
        // the page plays a few seconds behind the meeting
        talk(&mut all, &[Some(0.0), Some(0.0)], 400).await;
    }
    let (pcm, rate) = viewer.heard().await;
    assert!(
        pcm.len() as u32 > rate * 10,
        "the page played for at least 10 s: {} samples",
        pcm.len()
    );
    let (first, p600, other) = hears(&pcm, rate, 600.0, 1_700.0, 100.0);
    assert!(first, "the page plays the first phone: {p600} vs {other}");
    let (second, p1000, other) = hears(&pcm, rate, 1_000.0, 1_700.0, 100.0);
    assert!(
        second,
        "the page plays the second phone: {p1000} vs {other}"
    );
    let listeners = s.get("/streams", &admin).await;
    assert_eq!(
        listeners.body["items"][0]["listeners"], 1,
        "{}",
        listeners.body
    );
    viewer.quit().await;
}
