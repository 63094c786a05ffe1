//! Calling a room: two callers dial its number, each sends a tone, and each hears the other's
//! tone and not its own (frequency analysis of the RTP they receive). Unknown rooms answer
//! 404; rooms with a PIN are refused until the voice menu collects it.

use crate::common::{Db, TestServer, free_udp_port, start};
use conclave_media::codec::g711::{decode_ulaw, encode_ulaw};
use conclave_media::dsp::{goertzel_power, mean_power, tone};
use conclave_sip::{Limits, Message, parse_datagram};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

pub(crate) struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    server: SocketAddr,
    tag: String,
    to_tag: String,
    remote_rtp: Option<SocketAddr>,
    /// RTP frames sent so far.
    sent: std::sync::atomic::AtomicUsize,
    /// REGISTERs sent so far (each takes two CSeqs).
    registers: u32,
    /// Calls placed so far: each is a dialog of its own (Call-ID, branches).
    calls: u32,
}

impl Caller {
    /// Waits for the server to send us this request method (e.g. a BYE when removed).
    pub(crate) async fn expect_request(&self, method: &str) -> (conclave_sip::Request, SocketAddr) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(5), self.sip.recv_from(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("{} gets a {method} within 5 s", self.tag))
                    .expect("recv");
            if let Ok(Message::Request(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.method.as_str() == method
            {
                return (r, from);
            }
        }
    }

    /// The current call's part of its Call-ID and branches: the first call as it always
    /// was, later ones a dialog each.
    fn dialog(&self) -> String {
        if self.calls > 1 {
            format!("-{}", self.calls)
        } else {
            String::new()
        }
    }

    pub(crate) async fn new(server: SocketAddr, tag: &str) -> Caller {
        Caller {
            sip: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            rtp: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            server,
            tag: tag.into(),
            to_tag: String::new(),
            remote_rtp: None,
            sent: Default::default(),
            registers: 0,
            calls: 0,
        }
    }

    fn request(&self, method: &str, room: &str, cseq: u32, body: &str) -> String {
        let sip = self.sip.local_addr().expect("addr");
        let to_tag = if self.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.to_tag)
        };
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:{room}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {sip};branch=z9hG4bK{tag}{port}{method}{cseq}{dialog};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{tag}@127.0.0.1>;tag={tag}\r\nTo: <sip:{room}@127.0.0.1>{to_tag}\r\n\
             Call-ID: {tag}-{port}{dialog}@test\r\nCSeq: {cseq} {method}\r\nContact: <sip:{tag}@{sip}>\r\n{content_type}\
             Content-Length: {len}\r\n\r\n{body}",
            server = self.server,
            tag = self.tag,
            port = sip.port(),
            len = body.len(),
            dialog = self.dialog(),
        )
    }

    /// Sends a request and returns the final response.
    /// (A final response to an earlier request — the server resends a refusal until it is
    /// acknowledged — is passed over: it must answer this one, by Call-ID and CSeq.)
    async fn send(&mut self, request: String) -> conclave_sip::Response {
        let (call_id, cseq) = (header(&request, "Call-ID:"), header(&request, "CSeq:"));
        self.sip
            .send_to(request.as_bytes(), self.server)
            .await
            .expect("send");
        loop {
            let r = self.next_response("an answer").await;
            if r.status >= 200
                && r.headers.call_id().map(str::to_owned) == call_id
                && r.headers
                    .get(&conclave_sip::HeaderName::CSeq)
                    .map(|v| v.trim().to_owned())
                    == cseq
            {
                return r;
            }
        }
    }

    /// The next response that comes (requests are passed over), within 5 s.
    async fn next_response(&self, waiting_for: &str) -> conclave_sip::Response {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sip.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{waiting_for} within 5 s"))
                .expect("recv");
            if let Ok(Message::Response(r)) = parse_datagram(&buf[..n], &Limits::default()) {
                return r;
            }
        }
    }

    fn offer(&self) -> String {
        let rtp = self.rtp.local_addr().expect("addr").port();
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
        )
    }

    /// INVITE, then, once it rings (180) and a moment more, CANCEL (same branch, as RFC 3261
    /// wants): the INVITE's final status (487 when the cancel won).
    pub(crate) async fn dial_and_give_up(&mut self, room: &str) -> u16 {
        self.calls += 1;
        self.to_tag.clear();
        let invite = self.request("INVITE", room, 1, &self.offer());
        self.sip
            .send_to(invite.as_bytes(), self.server)
            .await
            .expect("send");
        let call_id = header(&invite, "Call-ID:").expect("Call-ID");
        loop {
            let r = self.next_response("a 180").await;
            if r.headers.call_id() == Some(&call_id) {
                assert!(r.status < 200, "{}", r.status);
                if r.status == 180 {
                    break;
                }
            }
        }
        // (a moment later, as a person gives up: the callee's phone rings by then)
        tokio::time::sleep(Duration::from_millis(700)).await;
        let cancel = invite
            .replacen("INVITE ", "CANCEL ", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
        let cancel = match cancel.find("Content-Type") {
            Some(at) => format!("{}Content-Length: 0\r\n\r\n", &cancel[..at]),
            None => cancel,
        };
        assert_eq!(self.send(cancel).await.status, 200, "the CANCEL is taken");
        loop {
            let r = self.next_response("the INVITE's final answer").await;
            if r.status >= 200 && r.headers.call_id() == Some(&call_id) {
                return r.status;
            }
        }
    }

    /// INVITE with a PCMU offer; ACK a 2xx. Returns the final status.
    pub(crate) async fn dial(&mut self, room: &str) -> u16 {
        self.calls += 1;
        self.to_tag.clear();
        let sdp = self.offer();
        let response = self.send(self.request("INVITE", room, 1, &sdp)).await;
        if response.status == 200 {
            let to = response.headers.to().expect("To");
            self.to_tag = to
                .params
                .get("tag")
                .flatten()
                .unwrap_or_default()
                .to_string();
            self.remote_rtp = Some(rtp_address(&response.body));
            let ack = self.request("ACK", room, 1, "");
            self.sip
                .send_to(ack.as_bytes(), self.server)
                .await
                .expect("ack");
        }
        response.status
    }

    /// REGISTERs `extension` from this caller's socket, answering the digest challenge with
    /// `password`: the final status of the authenticated attempt (401 again when refused).
    pub(crate) async fn register(&mut self, extension: &str, password: &str) -> u16 {
        let local = self.sip.local_addr().expect("addr");
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKreg{cseq};rport\r\nMax-Forwards: 70\r\n\
                 From: <sip:{extension}@127.0.0.1>;tag=r\r\nTo: <sip:{extension}@127.0.0.1>\r\nCall-ID: reg-{extension}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{extension}@{local}>\r\nExpires: 300\r\n{auth}\r\n"
            )
        };
        let cseq = self.registers * 2 + 1;
        self.registers += 1;
        let challenge = self.send(register(cseq, "")).await;
        assert_eq!(challenge.status, 401);
        let params = conclave_sip::headers::AuthParams::parse(
            challenge
                .headers
                .get(&conclave_sip::HeaderName::WwwAuthenticate)
                .expect("challenge"),
        )
        .expect("challenge");
        let auth = conclave_sip::auth::client_authorization(
            &params,
            "REGISTER",
            "sip:127.0.0.1",
            extension,
            password,
            "cn",
            1,
        )
        .expect("answerable");
        self.send(register(cseq + 1, &format!("Authorization: {auth}\r\n")))
            .await
            .status
    }

    /// Presses keys: RFC 4733 telephone-events on the RTP stream (payload type 101).
    pub(crate) async fn press(&self, keys: &str) {
        let to = self.remote_rtp.expect("answered");
        let ssrc = rand_u32(&self.tag);
        for key in keys.chars() {
            let event = match key {
                '*' => 10,
                '#' => 11,
                d => d.to_digit(10).expect("a keypad key") as u8,
            };
            let first = self.sent.fetch_add(5, std::sync::atomic::Ordering::Relaxed);
            let timestamp = (first * 160) as u32;
            for i in 0..5u16 {
                let end = i >= 2;
                let mut packet = vec![
                    0x80,
                    101 | if i == 0 { 0x80 } else { 0 },
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ];
                packet[2..4].copy_from_slice(&((first + usize::from(i)) as u16).to_be_bytes());
                packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
                packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
                let duration = 160 * (i.min(2) + 1);
                packet.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
                packet.extend_from_slice(&duration.to_be_bytes());
                self.rtp.send_to(&packet, to).await.expect("rtp");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    pub(crate) async fn hang_up(&mut self, room: &str) -> u16 {
        self.send(self.request("BYE", room, 2, "")).await.status
    }
}

/// Sends `freq` as PCMU for `frames` × 20 ms while collecting what comes back; returns the
/// decoded audio received.
pub(crate) async fn talk_and_listen(caller: &Caller, freq: f64, frames: usize) -> Vec<i16> {
    // RTP numbering continues across calls of this function, as a phone's stream would.
    let first = caller
        .sent
        .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
    let to = caller.remote_rtp.expect("answered");
    let ssrc: u32 = rand_u32(&caller.tag);
    let mut heard = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in first..first + frames {
        tick.tick().await;
        let pcm = tone(freq, 8000, 160, 8000.0, i * 160);
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        packet[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        packet[4..8].copy_from_slice(&((i * 160) as u32).to_be_bytes());
        packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
        encode_ulaw(&pcm, &mut packet);
        caller.rtp.send_to(&packet, to).await.expect("rtp");
        while let Ok((n, _)) = caller.rtp.try_recv_from(&mut buf) {
            // RTP version 2, PCMU payload (RTCP has payload types 200-204).
            if n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0 {
                let header = 12 + 4 * usize::from(buf[0] & 0x0f);
                if n > header {
                    decode_ulaw(&buf[header..n], &mut heard);
                }
            }
        }
    }
    heard
}

/// A header's value in a request we wrote.
fn header(request: &str, name: &str) -> Option<String> {
    request
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
}

fn rand_u32(seed: &str) -> u32 {
    seed.bytes()
        .fold(0x1234_5678u32, |h, b| h.rotate_left(5) ^ u32::from(b))
}

async fn room(s: &TestServer, number: &str, pin: Option<&str>) {
    let admin = s.admin().await;
    let mut body = json!({ "number": number, "name": format!("Room {number}") });
    if let Some(pin) = pin {
        body["pin"] = json!(pin);
    }
    s.post("/rooms", &admin, body).await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_in_a_room_hear_each_other_and_not_themselves() {
    let s = start(Db::Sqlite, "room_call").await.expect("server");
    room(&s, "8001", None).await;
    let sip = s.running.as_ref().expect("running").sip.udp;

    let mut stranger = Caller::new(sip, "stranger").await;
    assert_eq!(stranger.dial("9999").await, 404, "no such room");

    let mut a = Caller::new(sip, "alice").await;
    let mut b = Caller::new(sip, "bob").await;
    assert_eq!(a.dial("8001").await, 200);
    assert_eq!(b.dial("8001").await, 200);
    let (heard_by_a, heard_by_b) = tokio::join!(
        talk_and_listen(&a, 440.0, 150),
        talk_and_listen(&b, 880.0, 150)
    );
    // Judge the last two seconds, after the jitter buffers settled.
    let tail = |v: &[i16]| v[v.len().saturating_sub(16_000)..].to_vec();
    let (ha, hb) = (tail(&heard_by_a), tail(&heard_by_b));
    assert!(
        ha.len() >= 8_000 && hb.len() >= 8_000,
        "each caller receives audio: {} / {}",
        ha.len(),
        hb.len()
    );
    let (a_other, a_self) = (
        goertzel_power(&ha, 8000, 880.0),
        goertzel_power(&ha, 8000, 440.0),
    );
    let (b_other, b_self) = (
        goertzel_power(&hb, 8000, 440.0),
        goertzel_power(&hb, 8000, 880.0),
    );
    assert!(
        a_other > 100.0 * a_self.max(1e-9),
        "alice hears bob ({a_other}) and not herself ({a_self})"
    );
    assert!(
        b_other > 100.0 * b_self.max(1e-9),
        "bob hears alice ({b_other}) and not himself ({b_self})"
    );

    assert_eq!(a.hang_up("8001").await, 200);
    assert_eq!(b.hang_up("8001").await, 200);
    s.stop().await;
}

/// sipp's own call scenario (INVITE, ACK, G.711 A-law audio and RFC 2833 digits from its pcap
/// files, BYE), with the pcap paths of Debian's package.
fn sipp_pcap_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let out = std::process::Command::new("sipp")
        .args(["-sd", "uac_pcap"])
        .output()
        .expect("sipp runs (package sip-tester)");
    let xml = String::from_utf8_lossy(&out.stdout)
        .replace("pcap/g711a.pcap", "/usr/share/sip-tester/g711a.pcap")
        .replace(
            "pcap/dtmf_2833_1.pcap",
            "/usr/share/sip-tester/dtmf_2833_1.pcap",
        );
    let path = dir.join("uac_pcap.xml");
    std::fs::write(&path, xml).expect("write scenario");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sipp_caller_is_heard_in_the_room() {
    let s = start(Db::Sqlite, "sipp_room_call").await.expect("server");
    room(&s, "8001", None).await;
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut listener = Caller::new(sip, "listener").await;
    assert_eq!(listener.dial("8001").await, 200);
    // A silent second member, so that the listener is not alone (and hears no music); the
    // join chime passes before the quiet is measured.
    let mut silent = Caller::new(sip, "silent").await;
    assert_eq!(silent.dial("8001").await, 200);
    talk_and_listen(&listener, 0.0, 40).await;
    let quiet = talk_and_listen(&listener, 0.0, 50).await;

    let dir = tempfile::tempdir().expect("tmp");
    let scenario = sipp_pcap_scenario(dir.path());
    let (sip_port, media_port) = (free_udp_port(), free_udp_port() & !1);
    let sipp = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sipp")
            .arg(sip.to_string())
            .arg("-sf")
            .arg(&scenario)
            .args([
                "-s",
                "8001",
                "-m",
                "1",
                "-l",
                "1",
                "-i",
                "127.0.0.1",
                "-timeout",
                "30s",
                "-timeout_error",
                "-nostdin",
            ])
            .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
            .current_dir(scenario.parent().expect("dir"))
            .output()
            .expect("sipp runs")
    });
    // While sipp plays its recording into the room, the listener hears it.
    let heard = talk_and_listen(&listener, 0.0, 250).await;
    let out = sipp.await.expect("sipp thread");
    assert!(
        out.status.success(),
        "sipp's call failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (before, during) = (mean_power(&quiet), mean_power(&heard));
    assert!(
        during > 1000.0 && during > 100.0 * before.max(1.0),
        "the room carries sipp's audio: {before} before, {during} during"
    );
    assert_eq!(listener.hang_up("8001").await, 200);
    let metrics = s.raw(reqwest::Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or("")
            .contains("conclave_calls_joined_total 3"),
        "{}",
        metrics.body
    );
    s.stop().await;
}

/// The member id of a caller in a room's roster.
async fn member_id(s: &TestServer, admin: &str, room_id: &str, number: &str) -> u64 {
    let roster = s.get(&format!("/conferences/{room_id}"), admin).await;
    roster.expect(200);
    roster.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["number"] == number)
        .and_then(|m| m["id"].as_u64())
        .unwrap_or_else(|| panic!("{number} not in {}", roster.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chair_mutes_locks_removes_and_ends_from_the_api() {
    let s = start(Db::Sqlite, "live_control").await.expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut a = Caller::new(sip, "alice").await;
    let mut b = Caller::new(sip, "bob").await;
    assert_eq!(a.dial("8001").await, 200);
    assert_eq!(b.dial("8001").await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = s.get("/conferences", &admin).await;
    live.expect(200);
    assert_eq!(
        live.body[0]["members"].as_array().map(Vec::len),
        Some(2),
        "{}",
        live.body
    );
    let alice = member_id(&s, &admin, &room_id, "alice").await;
    let roster_of = |body: &serde_json::Value, key: &str| {
        body["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["number"] == "alice")
            .map(|m| m[key].clone())
    };

    // The roster shows who talks.
    let (_, talking) = tokio::join!(talk_and_listen(&a, 440.0, 50), async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.get(&format!("/conferences/{room_id}"), &admin).await
    });
    assert_eq!(
        roster_of(&talking.body, "talking"),
        Some(json!(true)),
        "{}",
        talking.body
    );
    // ...and how each member's media is doing.
    let quality = roster_of(&talking.body, "quality").expect("alice");
    assert_eq!(quality["codec"], "PCMU", "{quality}");
    assert!(
        quality["packets_received"].as_u64().unwrap_or(0) > 10,
        "{quality}"
    );
    assert_eq!(quality["packets_lost"], 0, "{quality}");

    // The keypad: *6 mutes oneself, *6 again unmutes.
    a.press("*6").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(
        roster_of(&roster.body, "muted"),
        Some(json!(true)),
        "{}",
        roster.body
    );
    a.press("*6").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(
        roster_of(&roster.body, "muted"),
        Some(json!(false)),
        "{}",
        roster.body
    );

    // Muted, Alice is not heard; unmuted, she is again.
    let muted = s
        .post(
            &format!("/conferences/{room_id}/members/{alice}/mute"),
            &admin,
            json!({}),
        )
        .await;
    muted.expect(200);
    let (_, heard) = tokio::join!(talk_and_listen(&a, 440.0, 75), talk_and_listen(&b, 0.0, 75));
    let silence = goertzel_power(&heard[heard.len().saturating_sub(8_000)..], 8000, 440.0);
    s.post(
        &format!("/conferences/{room_id}/members/{alice}/unmute"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    let (_, heard) = tokio::join!(talk_and_listen(&a, 440.0, 75), talk_and_listen(&b, 0.0, 75));
    let voice = goertzel_power(&heard[heard.len().saturating_sub(8_000)..], 8000, 440.0);
    assert!(
        voice > 100.0 * silence.max(1e-9),
        "muted {silence}, unmuted {voice}"
    );

    // Locked, the meeting takes nobody new.
    s.post(&format!("/conferences/{room_id}/lock"), &admin, json!({}))
        .await
        .expect(200);
    let mut late = Caller::new(sip, "carol").await;
    assert_eq!(late.dial("8001").await, 200, "answered, to be told");
    late.expect_request("BYE").await;
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_eq!(roster.body["members"].as_array().map(Vec::len), Some(2));
    s.post(&format!("/conferences/{room_id}/unlock"), &admin, json!({}))
        .await
        .expect(200);

    // Removing Bob hangs up his call; ending the meeting hangs up Alice's.
    let bob = member_id(&s, &admin, &room_id, "bob").await;
    s.delete(&format!("/conferences/{room_id}/members/{bob}"), &admin)
        .await
        .expect(200);
    b.expect_request("BYE").await;
    s.delete(&format!("/conferences/{room_id}/members/{bob}"), &admin)
        .await
        .expect_problem(404, None);
    s.post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await
        .expect(200);
    a.expect_request("BYE").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get("/conferences", &admin).await.body, json!([]));
    s.get(&format!("/conferences/{room_id}"), &admin)
        .await
        .expect_problem(404, None);

    // The meeting left a record: who attended, and who did what.
    let history = s.get("/conference-history", &admin).await;
    history.expect(200);
    let meeting = history.body["items"][0].clone();
    assert_eq!(meeting["room_number"], "8001");
    assert!(meeting["ended_at"].is_i64(), "{meeting}");
    let id = meeting["id"].as_str().expect("id");
    let record = s.get(&format!("/conference-history/{id}"), &admin).await;
    let attendance = record.body["attendance"].as_array().expect("attendance");
    assert_eq!(attendance.len(), 2, "{}", record.body);
    assert!(
        attendance
            .iter()
            .all(|a| a["left_at"].is_i64() && a["via"] == "dial_in"),
        "{}",
        record.body
    );
    let log = s
        .get(&format!("/conference-history/{id}/log"), &admin)
        .await;
    let lines: Vec<(String, String)> = log
        .body
        .as_array()
        .expect("log")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for expected in [
        ("system", "joined"),
        ("alice (keypad)", "muted"),
        ("admin", "muted"),
        ("admin", "locked"),
        ("admin", "removed"),
        ("admin", "ended"),
    ] {
        assert!(
            lines
                .iter()
                .any(|(a, k)| a == expected.0 && k == expected.1),
            "{expected:?} not in {lines:?}"
        );
    }
    let csv = s
        .raw(
            reqwest::Method::GET,
            &format!("/api/v1/conference-history/{id}/log?format=csv"),
            Some(&admin),
            None,
        )
        .await;
    csv.expect(200);
    assert!(csv.content_type.starts_with("text/csv"));
    assert!(
        csv.body
            .as_str()
            .unwrap_or("")
            .starts_with("at,actor,kind,detail\n"),
        "{}",
        csv.body
    );
    s.get(&format!("/conference-history/{id}/log?format=xml"), &admin)
        .await
        .expect_problem(422, Some("format"));

    // Only those who run the room control it; the attempt is audited.
    s.user(&admin, "guest", "user", None).await;
    let guest = s.token("guest", "guest-password").await;
    s.post(&format!("/conferences/{room_id}/lock"), &guest, json!({}))
        .await
        .expect_problem(403, None);
    let audit = s.get("/audit-events?action=muteMember", &admin).await;
    assert_eq!(audit.body["items"].as_array().map(Vec::len), Some(1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_groups_and_speaking_rights_from_the_api() {
    let s = start(Db::Sqlite, "whisper").await.expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let (mut a, mut b, mut c) = (
        Caller::new(sip, "alice").await,
        Caller::new(sip, "bob").await,
        Caller::new(sip, "carol").await,
    );
    for caller in [&mut a, &mut b, &mut c] {
        assert_eq!(caller.dial("8001").await, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alice = member_id(&s, &admin, &room_id, "alice").await;
    let bob = member_id(&s, &admin, &room_id, "bob").await;
    let power = |heard: &[i16], f: f64| {
        goertzel_power(&heard[heard.len().saturating_sub(8_000)..], 8000, f)
    };

    // Alice and Bob whisper: they hear each other; Carol, in the room, hears neither.
    let group = s
        .post(
            &format!("/conferences/{room_id}/whisper-groups"),
            &admin,
            json!({ "members": [alice, bob] }),
        )
        .await;
    group.expect(200);
    let (by_a, _, by_c) = tokio::join!(
        talk_and_listen(&a, 440.0, 100),
        talk_and_listen(&b, 880.0, 100),
        talk_and_listen(&c, 1320.0, 100)
    );
    assert!(
        power(&by_a, 880.0) > 100.0 * power(&by_a, 440.0).max(1e-9),
        "alice hears bob"
    );
    assert!(power(&by_a, 1320.0) > 0.0, "the group still hears the room");
    assert!(
        power(&by_c, 440.0) < power(&by_a, 880.0) / 1000.0,
        "carol does not hear alice"
    );
    assert!(
        power(&by_c, 880.0) < power(&by_a, 880.0) / 1000.0,
        "carol does not hear bob"
    );

    // Closed, everyone hears everyone again.
    s.delete(&format!("/conferences/{room_id}/whisper-groups/1"), &admin)
        .await
        .expect(200);
    let (_, _, by_c) = tokio::join!(
        talk_and_listen(&a, 440.0, 75),
        talk_and_listen(&b, 0.0, 75),
        talk_and_listen(&c, 0.0, 75)
    );
    assert!(power(&by_c, 440.0) > 1000.0, "carol hears alice again");

    // Forbidden to speak, Bob is muted and his keypad cannot unmute him; allowed, he speaks.
    s.post(
        &format!("/conferences/{room_id}/members/{bob}/speak"),
        &admin,
        json!({ "allowed": false }),
    )
    .await
    .expect(200);
    b.press("*6").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    let bob_state = roster.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["number"] == "bob")
        .cloned()
        .expect("bob");
    assert_eq!(
        (bob_state["muted"].clone(), bob_state["may_speak"].clone()),
        (json!(true), json!(false))
    );
    s.post(
        &format!("/conferences/{room_id}/members/{bob}/unmute"),
        &admin,
        json!({}),
    )
    .await
    .expect_problem(409, None);
    s.post(
        &format!("/conferences/{room_id}/members/{bob}/speak"),
        &admin,
        json!({ "allowed": true }),
    )
    .await
    .expect(200);
    // Roles change live, within rank; a bad role is named.
    let promoted = s
        .post(
            &format!("/conferences/{room_id}/members/{bob}/role"),
            &admin,
            json!({ "role": "chairman" }),
        )
        .await;
    promoted.expect(200);
    s.post(
        &format!("/conferences/{room_id}/members/{bob}/role"),
        &admin,
        json!({ "role": "owner" }),
    )
    .await
    .expect_problem(403, None);
    s.post(
        &format!("/conferences/{room_id}/members/{bob}/role"),
        &admin,
        json!({ "role": "king" }),
    )
    .await
    .expect_problem(422, Some("role"));
    for (caller, name) in [(&mut a, "8001"), (&mut b, "8001"), (&mut c, "8001")] {
        assert_eq!(caller.hang_up(name).await, 200);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_key_in_the_pin_and_three_wrong_pins_end_the_call() {
    let s = start(Db::Sqlite, "pin").await.expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8002", "name": "Board", "pin": "1234" }),
        )
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let (mut a, mut b, mut c) = (
        Caller::new(sip, "alice").await,
        Caller::new(sip, "bob").await,
        Caller::new(sip, "carol").await,
    );
    assert_eq!(a.dial("8002").await, 200, "answered, to key in the PIN");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        roster_len(&s, &admin, &room_id).await,
        0,
        "not in the meeting before the PIN"
    );
    // Waiting for the PIN, the caller hears the voice prompt asking for it.
    let waiting = talk_and_listen(&a, 0.0, 50).await;
    assert!(
        mean_power(&waiting) > 1000.0,
        "the PIN prompt is heard: {}",
        mean_power(&waiting)
    );
    a.press("1111#").await;
    a.press("1234#").await;
    assert_eq!(b.dial("8002").await, 200);
    b.press("1234").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        roster_len(&s, &admin, &room_id).await,
        2,
        "both keyed in the PIN"
    );
    // Now in, they hear each other.
    let (heard_by_a, _) =
        tokio::join!(talk_and_listen(&a, 0.0, 75), talk_and_listen(&b, 880.0, 75));
    assert!(
        goertzel_power(
            &heard_by_a[heard_by_a.len().saturating_sub(8_000)..],
            8000,
            880.0
        ) > 1000.0
    );
    // The feature code dials room and PIN in one go; a wrong PIN there is refused.
    let mut direct = Caller::new(sip, "dave").await;
    assert_eq!(direct.dial("*400*8002*1234").await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        roster_len(&s, &admin, &room_id).await,
        3,
        "in at once, without the lobby"
    );
    let mut wrong = Caller::new(sip, "eve").await;
    assert_eq!(wrong.dial("*400*8002*9999").await, 403);
    assert_eq!(direct.hang_up("*400*8002*1234").await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Three wrong PINs: the call ends.
    assert_eq!(c.dial("8002").await, 200);
    c.press("0000#0000#0000#").await;
    c.expect_request("BYE").await;
    assert_eq!(roster_len(&s, &admin, &room_id).await, 2);
    assert_eq!(a.hang_up("8002").await, 200);
    assert_eq!(b.hang_up("8002").await, 200);
    s.stop().await;
}

/// How many members a room's live meeting has (callers still keying in the PIN are not).
async fn roster_len(s: &TestServer, admin: &str, room_id: &str) -> usize {
    let live = s.get(&format!("/conferences/{room_id}"), admin).await;
    live.body["members"].as_array().map(Vec::len).unwrap_or(0)
}

/// A desk phone: registers its extension, then answers the server's INVITE with a PCMU answer.
pub(crate) struct Phone {
    pub(crate) caller: Caller,
    extension: String,
}

impl Phone {
    pub(crate) async fn register(sip: SocketAddr, extension: &str, password: &str) -> Phone {
        let mut caller = Caller::new(sip, extension).await;
        assert_eq!(caller.register(extension, password).await, 200);
        Phone {
            caller,
            extension: extension.into(),
        }
    }

    /// Waits for the INVITE, answers it, and waits for the ACK; the INVITE.
    pub(crate) async fn answer(&mut self) -> conclave_sip::Request {
        let (request, from) = self.caller.expect_request("INVITE").await;
        self.caller.remote_rtp = Some(rtp_address(&request.body));
        let rtp = self.caller.rtp.local_addr().expect("addr").port();
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp} RTP/AVP 0 101\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        );
        let local = self.caller.sip.local_addr().expect("addr");
        let mut ok = request.response(200, "OK", Some("phone"));
        ok.headers.push(
            conclave_sip::HeaderName::Contact,
            format!("<sip:{}@{local}>", self.extension),
        );
        ok.headers
            .push(conclave_sip::HeaderName::ContentType, "application/sdp");
        ok.body = sdp.into_bytes();
        self.reply(&ok, from).await;
        self.caller.expect_request("ACK").await;
        request
    }

    /// Waits for the INVITE, rings (180) and waits for its CANCEL, answered as a phone does
    /// (200 to the CANCEL, 487 to the INVITE).
    pub(crate) async fn ring_until_cancelled(&mut self) {
        let (invite, from) = self.caller.expect_request("INVITE").await;
        self.reply(&invite.response(180, "Ringing", Some("phone")), from)
            .await;
        let (cancel, from) = self.caller.expect_request("CANCEL").await;
        self.reply(&cancel.response(200, "OK", Some("phone")), from)
            .await;
        self.reply(
            &invite.response(487, "Request Terminated", Some("phone")),
            from,
        )
        .await;
    }

    /// Waits for the INVITE and refuses it (486: busy).
    pub(crate) async fn refuse_busy(&mut self) {
        let (invite, from) = self.caller.expect_request("INVITE").await;
        self.reply(&invite.response(486, "Busy Here", Some("phone")), from)
            .await;
    }

    async fn reply(&self, response: &conclave_sip::Response, to: SocketAddr) {
        self.caller
            .sip
            .send_to(&response.to_bytes(), to)
            .await
            .expect("send a response");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chair_calls_a_registered_phone_into_the_meeting() {
    let s = start(Db::Sqlite, "dial_out").await.expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
        .await
        .id();
    let desk = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "desk", "display_name": "Desk phone", "password": "desk-password",
                "extension": "1002", "sip_password": "sip-secret-2",
            }),
        )
        .await
        .id();
    s.user(&admin, "mobile-only", "user", None).await;
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phone = Phone::register(sip, "1002", "sip-secret-2").await;
    let mut alice = Caller::new(sip, "alice").await;
    assert_eq!(alice.dial("8001").await, 200);

    let invited = s
        .post(
            &format!("/conferences/{room_id}/invite"),
            &admin,
            json!({ "user_id": desk }),
        )
        .await;
    invited.expect(202);
    phone.answer().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    let called = roster.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["number"] == "1002")
        .cloned();
    assert_eq!(
        called.as_ref().map(|m| m["via"].clone()),
        Some(json!("dial_out")),
        "{}",
        roster.body
    );
    assert_eq!(called.map(|m| m["name"].clone()), Some(json!("Desk phone")));
    // The phone is in the mix: Alice hears it.
    let (heard, _) = tokio::join!(
        talk_and_listen(&alice, 0.0, 75),
        talk_and_listen(&phone.caller, 880.0, 75)
    );
    assert!(
        goertzel_power(&heard[heard.len().saturating_sub(8_000)..], 8000, 880.0) > 1000.0,
        "alice hears the phone"
    );

    // Someone without a registered extension cannot be called yet.
    let users = s.get("/users", &admin).await;
    let mobile = users.body["items"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "mobile-only")
        .expect("user")["id"]
        .clone();
    s.post(
        &format!("/conferences/{room_id}/invite"),
        &admin,
        json!({ "user_id": mobile }),
    )
    .await
    .expect_problem(422, Some("user_id"));
    s.post(
        &format!("/conferences/{room_id}/invite"),
        &admin,
        json!({ "user_id": "nobody" }),
    )
    .await
    .expect_problem(422, Some("user_id"));
    assert_eq!(alice.hang_up("8001").await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_starts_a_template_and_calls_its_members() {
    let s = start(Db::Sqlite, "one_click").await.expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8001", "name": "Flood response" }),
        )
        .await
        .id();
    let desk = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "desk", "display_name": "Desk phone", "password": "desk-password",
                "extension": "1002", "sip_password": "sip-secret-2",
            }),
        )
        .await
        .id();
    let away = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "away", "display_name": "Away", "password": "away-password",
                "extension": "1003", "sip_password": "sip-secret-3",
            }),
        )
        .await
        .id();
    let template = s
        .post("/templates", &admin, json!({
            "name": "Flood call-out", "room_id": room_id, "settings": { "lock_on_start": true },
            "members": [
                { "kind": "user", "user_id": desk, "role": "chairman" },
                { "kind": "user", "user_id": away, "role": "member" },
                { "kind": "number", "number": "+8613900000000", "display_name": "Field team", "role": "member" },
            ],
        }))
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phone = Phone::register(sip, "1002", "sip-secret-2").await;

    let started = s
        .post("/conferences", &admin, json!({ "template_id": template }))
        .await;
    started.expect(201);
    let statuses: Vec<(String, String)> = started.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["display_name"].as_str().unwrap_or("").to_owned(),
                m["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("Desk phone".to_owned(), "calling".to_owned()),
            ("Away".to_owned(), "failed".to_owned()),
            ("Field team".to_owned(), "failed".to_owned()),
        ],
        "{}",
        started.body
    );
    s.post("/conferences", &admin, json!({ "template_id": template }))
        .await
        .expect_problem(409, None);
    phone.answer().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    let member = roster.body["members"][0].clone();
    assert_eq!(
        (member["role"].clone(), member["via"].clone()),
        (json!("chairman"), json!("dial_out")),
        "{}",
        roster.body
    );
    // Locked from the start (the template says so): invitees come, others cannot dial in.
    assert_eq!(roster.body["locked"], true);
    // An outsider is answered, told the meeting is locked, and hung up on.
    let mut outsider = Caller::new(sip, "outsider").await;
    assert_eq!(outsider.dial("8001").await, 200);
    let told = talk_and_listen(&outsider, 0.0, 100).await;
    assert!(mean_power(&told) > 1000.0, "the outsider hears why");
    outsider.expect_request("BYE").await;
    // The chair on the phone runs the meeting from the keypad: *5 unlocks it.
    phone.caller.press("*5").await;
    let mut locked = json!(true);
    for _ in 0..50 {
        locked = s.get(&format!("/conferences/{room_id}"), &admin).await.body["locked"].clone();
        if locked == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(locked, false, "*5 unlocks the meeting (within 5 s)");
    s.post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await
        .expect(200);
    phone.caller.expect_request("BYE").await;
    s.post("/conferences", &admin, json!({ "template_id": "nope" }))
        .await
        .expect_problem(422, Some("template_id"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_receive_signed_events_and_failures_are_retried() {
    use hmac::Mac;
    // An integration's receiver: refuses the very first delivery, accepts the rest.
    let (tx, mut received) =
        tokio::sync::mpsc::unbounded_channel::<(u16, String, String, String, Vec<u8>)>();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (tx, seen) = (tx.clone(), seen.clone());
                async move {
                    let get = |h: &str| {
                        headers
                            .get(h)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let status = if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        500
                    } else {
                        200
                    };
                    let _ = tx.send((
                        status,
                        get("x-conclave-signature"),
                        get("x-conclave-event"),
                        get("x-conclave-delivery"),
                        body.to_vec(),
                    ));
                    axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The receiver is on loopback: the installation allows private targets.
    let s = crate::common::start_with(Db::Sqlite, "webhooks", |s| {
        s.webhooks_allow_private_targets = true
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    s.post("/webhooks", &admin, json!({ "url": "ftp://nope" }))
        .await
        .expect_problem(422, Some("url"));
    let created = s.post("/webhooks", &admin, json!({ "url": hook })).await;
    created.expect(201);
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    assert_eq!(
        s.get("/webhooks", &admin)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(
        !s.get("/webhooks", &admin)
            .await
            .body
            .to_string()
            .contains(&secret),
        "the secret is shown once"
    );
    s.post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
        .await
        .expect(201);
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut a = Caller::new(sip, "alice").await;
    assert_eq!(a.dial("8001").await, 200);

    let (status, signature, kind, first_delivery, body) = next_delivery(&mut received).await;
    assert_eq!((status, kind.as_str()), (500, "joined"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&body);
    assert_eq!(
        signature,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        "a valid signature"
    );
    let event: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        (
            event["room_number"].clone(),
            event["event"]["member"]["number"].clone()
        ),
        (json!("8001"), json!("alice"))
    );
    // Refused once, the same delivery comes again.
    let (status, _, kind, retried, _) = next_delivery(&mut received).await;
    assert_eq!(
        (status, kind.as_str(), retried),
        (200, "joined", first_delivery)
    );
    assert_eq!(a.hang_up("8001").await, 200);
    let (_, _, kind, _, _) = next_delivery(&mut received).await;
    assert_eq!(kind, "left");
    let id = created.body["webhook"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.delete(&format!("/webhooks/{id}"), &admin)
        .await
        .expect(204);
    s.stop().await;
}

/// What a webhook receiver got: status it answered, signature, event, delivery id, body.
type Delivery = (u16, String, String, String, Vec<u8>);

async fn next_delivery(received: &mut tokio::sync::mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("the receiver is open")
}

/// Where an SDP body wants its RTP: its `c=` address and `m=audio` port.
fn rtp_address(sdp: &[u8]) -> SocketAddr {
    let sdp = String::from_utf8_lossy(sdp);
    let addr = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("a c= line")
        .trim()
        .to_owned();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .expect("an m= line");
    format!("{addr}:{port}").parse().expect("an RTP address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn music_while_alone_chimes_and_the_count_on_the_keypad() {
    let s = start(Db::Sqlite, "alone_music").await.expect("server");
    room(&s, "8001", None).await;
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut first = Caller::new(sip, "first").await;
    assert_eq!(first.dial("8001").await, 200);
    // Alone: after "you are the first participant"… music (the prompt is short; by 3 s it
    // is music that plays).
    talk_and_listen(&first, 0.0, 150).await;
    let music = talk_and_listen(&first, 0.0, 50).await;
    assert!(mean_power(&music) > 1000.0, "the lone member hears music");
    // A second member: the music stops (after the join chime).
    let mut second = Caller::new(sip, "second").await;
    assert_eq!(second.dial("8001").await, 200);
    talk_and_listen(&first, 0.0, 40).await;
    let together = talk_and_listen(&first, 0.0, 50).await;
    assert!(
        mean_power(&together) < 100.0,
        "no music once someone else is here: {}",
        mean_power(&together)
    );
    // *8: the second member hears how many are in the meeting; the first hears nothing of it.
    second.press("*8").await;
    let count = talk_and_listen(&second, 0.0, 75).await;
    let other = talk_and_listen(&first, 0.0, 10).await;
    assert!(mean_power(&count) > 1000.0, "the count is said");
    assert!(mean_power(&other) < 100.0, "only to the one who asked");
    // The second leaves: the first hears the leave chime, then music again.
    assert_eq!(second.hang_up("8001").await, 200);
    let chime = talk_and_listen(&first, 0.0, 25).await;
    assert!(mean_power(&chime) > 1000.0, "the leave chime");
    let music = talk_and_listen(&first, 0.0, 50).await;
    assert!(mean_power(&music) > 1000.0, "music again when alone");
    assert_eq!(first.hang_up("8001").await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_number_asks_for_the_room_then_its_pin() {
    let s = start(Db::Sqlite, "access_number").await.expect("server");
    room(&s, "8001", Some("4321")).await;
    let admin = s.admin().await;
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut caller = Caller::new(sip, "menu").await;
    assert_eq!(caller.dial("8000").await, 200, "the access number answers");
    let menu = talk_and_listen(&caller, 0.0, 50).await;
    assert!(mean_power(&menu) > 1000.0, "the menu asks which room");
    // A room that does not exist: the menu says so and asks again.
    caller.press("9999#").await;
    let refused = talk_and_listen(&caller, 0.0, 50).await;
    assert!(
        mean_power(&refused) > 1000.0,
        "the menu says there is no such room"
    );
    let live = s.get("/conferences", &admin).await;
    assert_eq!(live.body, json!([]), "nobody is in any meeting yet");
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The room: then its own PIN prompt, then the meeting.
    caller.press("8001#").await;
    let asked = talk_and_listen(&caller, 0.0, 75).await;
    assert!(mean_power(&asked) > 1000.0, "the room asks for its PIN");
    caller.press("4321#").await;
    let mut members = 0;
    for _ in 0..30 {
        let live = s.get("/conferences", &admin).await;
        members = live.body[0]["members"].as_array().map_or(0, Vec::len);
        if members == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(members, 1, "the caller is in room 8001");
    assert_eq!(caller.hang_up("8000").await, 200);
    s.stop().await;
}

/// A user with a SIP extension (password `{username}-password`, SIP password `sip-secret-{ext}`).
async fn extension_user(s: &TestServer, admin: &str, username: &str, ext: &str) -> String {
    s.post(
        "/users",
        admin,
        json!({
            "username": username, "display_name": format!("User {username}"),
            "password": format!("{username}-password"),
            "extension": ext, "sip_password": format!("sip-secret-{ext}"),
        }),
    )
    .await
    .id()
}

/// The room with this number, if it exists.
async fn room_numbered(s: &TestServer, admin: &str, number: &str) -> Option<serde_json::Value> {
    let rooms = s.get("/rooms?limit=100", admin).await;
    rooms.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|r| r["number"] == number).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_phones_create_and_delete_rooms_from_the_keypad_and_members_skip_the_pin() {
    let s = start(Db::Sqlite, "keypad_rooms").await.expect("server");
    let admin = s.admin().await;
    let sip = s.running.as_ref().expect("running").sip.udp;
    for (name, ext) in [
        ("creator", "1002"),
        ("other", "1003"),
        ("owner", "1004"),
        ("chair", "1005"),
    ] {
        extension_user(&s, &admin, name, ext).await;
    }
    // Each phone calls from the flow it registered from: caller ID is trusted on that flow
    // only (the same address from another port is a stranger).
    let [p1002, p1003, p1004, p1005] = [
        Phone::register(sip, "1002", "sip-secret-1002").await,
        Phone::register(sip, "1003", "sip-secret-1003").await,
        Phone::register(sip, "1004", "sip-secret-1004").await,
        Phone::register(sip, "1005", "sip-secret-1005").await,
    ];

    // *401: a registered user creates a room and is its owner in the meeting…
    let mut creator = p1002.caller;
    assert_eq!(creator.dial("*401*8100*5555*30").await, 200);
    let created = room_numbered(&s, &admin, "8100")
        .await
        .expect("room 8100 created");
    assert_eq!(
        (
            created["max_duration_minutes"].clone(),
            created["has_pin"].clone()
        ),
        (json!(30), json!(true)),
        "{created}"
    );
    let roster = s
        .get(
            &format!("/conferences/{}", created["id"].as_str().unwrap_or("")),
            &admin,
        )
        .await;
    assert_eq!(
        roster.body["members"][0]["role"], "owner",
        "{}",
        roster.body
    );
    assert_eq!(
        roster.body["members"][0]["name"], "User creator",
        "a registered phone shows its owner's name: {}",
        roster.body
    );
    // The room is in the audit log exactly as one made through the API.
    let by_api = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8199", "name": "By API" }),
        )
        .await
        .id();
    let audit = s
        .get("/audit-events?action=createRoom&limit=100", &admin)
        .await;
    let entries = audit.body["items"].as_array().cloned().unwrap_or_default();
    let entry = |id: &str| {
        entries
            .iter()
            .find(|e| e["target_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no createRoom entry for {id}: {}", audit.body))
    };
    let (keypad, api) = (entry(created["id"].as_str().unwrap_or("")), entry(&by_api));
    let shape = |e: &serde_json::Value| {
        let mut keys: Vec<String> = e
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        let mut detail: Vec<String> = e["detail"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        detail.sort();
        (keys, detail, e["target_type"].clone(), e["outcome"].clone())
    };
    assert_eq!(shape(&keypad), shape(&api), "{keypad} vs {api}");
    assert_eq!(keypad["actor_name"], "creator");
    assert!(keypad["actor_id"].is_string());
    assert_eq!(keypad["detail"]["number"], "8100");
    // …and the room is released when its meeting ends.
    assert_eq!(creator.hang_up("*401*8100*5555*30").await, 200);
    let mut released = false;
    for _ in 0..30 {
        if room_numbered(&s, &admin, "8100").await.is_none() {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(released, "the keypad room is gone after its meeting");

    // An unregistered caller cannot create rooms: told so, hung up on.
    let mut stranger = Caller::new(sip, "9999").await;
    assert_eq!(stranger.dial("*401*8105*1111").await, 200);
    let told = talk_and_listen(&stranger, 0.0, 50).await;
    assert!(mean_power(&told) > 1000.0, "the stranger hears why");
    stranger.expect_request("BYE").await;
    assert!(room_numbered(&s, &admin, "8105").await.is_none());

    // *402: only a room's creator deletes it.
    room(&s, "8102", Some("2222")).await;
    let mut other = p1003.caller;
    assert_eq!(other.dial("*402*8102*2222").await, 200);
    other.expect_request("BYE").await;
    assert!(
        room_numbered(&s, &admin, "8102").await.is_some(),
        "not theirs to delete"
    );
    let owner = s.token("owner", "owner-password").await;
    s.post(
        "/rooms",
        &owner,
        json!({ "number": "8104", "name": "Mine", "pin": "1111" }),
    )
    .await
    .expect(201);
    let mut deleter = p1004.caller;
    assert_eq!(deleter.dial("*402*8104*1111").await, 200);
    deleter.expect_request("BYE").await;
    assert!(
        room_numbered(&s, &admin, "8104").await.is_none(),
        "the creator deleted it"
    );

    // Caller ID: a member of the room's meeting scheme skips the PIN, with their role.
    let chair_id = s.get("/users?limit=100", &admin).await.body["items"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["username"] == "chair").cloned())
        .expect("chair")["id"]
        .clone();
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8103", "name": "Board", "pin": "3333", "members_skip_pin": true }),
        )
        .await
        .id();
    s.post(
        "/templates",
        &admin,
        json!({ "name": "Board", "room_id": room_id, "members": [{ "kind": "user", "user_id": chair_id, "role": "chairman" }] }),
    )
    .await
    .expect(201);
    // The same extension from another port of the same address is not recognised.
    let mut impostor = Caller::new(sip, "1005").await;
    assert_eq!(impostor.dial("8103").await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lobby = s.get(&format!("/conferences/{room_id}"), &admin).await;
    assert_ne!(
        lobby.body["members"][0]["role"], "chairman",
        "caller ID from another flow is not trusted: {}",
        lobby.body
    );
    assert_eq!(impostor.hang_up("8103").await, 200);
    let mut chair = p1005.caller;
    assert_eq!(chair.dial("8103").await, 200);
    let mut role = serde_json::Value::Null;
    for _ in 0..30 {
        role = s.get(&format!("/conferences/{room_id}"), &admin).await.body["members"][0]["role"]
            .clone();
        if role == "chairman" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(role, "chairman", "recognised, in without the PIN");
    assert_eq!(chair.hang_up("8103").await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_keeps_its_meeting_but_takes_no_one_new() {
    let s = start(Db::Sqlite, "deleted_live").await.expect("server");
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8001", "name": "Doomed" }),
        )
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut inside = Caller::new(sip, "inside").await;
    assert_eq!(inside.dial("8001").await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.delete(&format!("/rooms/{room_id}"), &admin)
        .await
        .expect(204);
    // The meeting goes on, under the chair's control…
    let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
    roster.expect(200);
    assert_eq!(roster.body["members"].as_array().map(Vec::len), Some(1));
    let member = roster.body["members"][0]["id"].clone();
    s.post(
        &format!("/conferences/{room_id}/members/{member}/mute"),
        &admin,
        json!({}),
    )
    .await
    .expect(200);
    // …but nobody new finds the room.
    let mut late = Caller::new(sip, "late").await;
    assert_eq!(late.dial("8001").await, 404);
    s.post(
        &format!("/conferences/{room_id}/invite"),
        &admin,
        json!({ "number": "+8613800138000" }),
    )
    .await
    .expect_problem(404, None);
    let ended = s
        .post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    inside.expect_request("BYE").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_s_maximum_duration_warns_then_ends_the_meeting() {
    let s = start(Db::Sqlite, "max_duration").await.expect("server");
    let admin = s.admin().await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8001", "name": "Short", "max_duration_minutes": 1 }),
    )
    .await
    .expect(201);
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut a = Caller::new(sip, "a").await;
    let mut b = Caller::new(sip, "b").await;
    assert_eq!(a.dial("8001").await, 200);
    assert_eq!(b.dial("8001").await, 200);
    // Two members, so no music: what they hear at 30 s is the warning.
    tokio::time::sleep(Duration::from_secs(28)).await;
    let warned = talk_and_listen(&a, 0.0, 200).await;
    assert!(
        mean_power(&warned) > 1000.0,
        "the warning is heard half-way"
    );
    // At one minute, a goodbye, then the calls end.
    tokio::time::sleep(Duration::from_secs(28)).await;
    a.expect_request("BYE").await;
    b.expect_request("BYE").await;
    // The record is closed right after the calls (its writer works off the meeting).
    let mut meeting = serde_json::Value::Null;
    for _ in 0..50 {
        let history = s.get("/conference-history", &admin).await;
        meeting = history.body["items"][0].clone();
        if meeting["ended_at"].is_i64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lasted =
        meeting["ended_at"].as_i64().unwrap_or(0) - meeting["started_at"].as_i64().unwrap_or(0);
    assert!(
        (60_000..70_000).contains(&lasted),
        "one minute and a goodbye: {lasted} ms"
    );
    s.stop().await;
}
