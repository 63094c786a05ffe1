//! RFC 4028 session timers: our answer to an INVITE that supports timers carries
//! Session-Expires with a refresher, a call whose refreshes stop is ended with BYE (a sipp
//! caller that never refreshes), and the calls we place offer timers.

use crate::brute_force::{Registrant, answer, sip_udp};
use crate::common::{Db, free_udp_port, sipp_installed, start, start_with};
use conclave_sip::HeaderName;
use conclave_sip::message::Message;
use conclave_sip::parser::{Limits, parse_datagram};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// sipp calls the room asking for a 90 s session refreshed by itself (the UAC), checks the
/// 200's Session-Expires and Require, ACKs, then never refreshes: the server must hang up.
const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="session timer expires">
<send retrans="500"><![CDATA[
INVITE sip:8001@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:timer@[local_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:8001@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:timer@[local_ip]:[local_port]>
Supported: timer
Session-Expires: 90;refresher=uac
Min-SE: 90
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv

]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="200" rtd="true">
  <action>
    <ereg regexp="Session-Expires: *90;refresher=uac" search_in="msg" check_it="true" assign_to="se"/>
    <ereg regexp="Require: *timer" search_in="msg" check_it="true" assign_to="req"/>
  </action>
</recv>
<Reference variables="se,req"/>
<send><![CDATA[
ACK sip:8001@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:timer@[local_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:8001@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
<recv request="BYE" timeout="120000"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_refreshes_stop_is_ended_with_bye() {
    if !sipp_installed() {
        return;
    }
    // The call sends no media: its media timeout must not end it before the session timer.
    let s = start_with(Db::Sqlite, "session_timer", |c| {
        c.media_timeout_seconds = 600
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    s.room(&admin, "8001", "Timed").await;
    let sip = sip_udp(&s);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("tmp");
        let xml = dir.path().join("timer.xml");
        std::fs::write(&xml, SCENARIO).expect("write scenario");
        Command::new("sipp")
            .arg(sip.to_string())
            .arg("-sf")
            .arg(&xml)
            .args(["-m", "1", "-l", "1", "-t", "u1", "-i", "127.0.0.1"])
            .args(["-p", &free_udp_port().to_string()])
            .args(["-mp", &free_udp_port().to_string()])
            .args([
                "-timeout",
                "150s",
                "-timeout_error",
                "-nostdin",
                "-trace_msg",
            ])
            .current_dir(dir.path())
            .output()
            .inspect(|_| {
                // sipp's message trace, shown when the test fails.
                for entry in std::fs::read_dir(dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if entry.path().to_string_lossy().ends_with("_messages.log") {
                        eprintln!(
                            "{}",
                            std::fs::read_to_string(entry.path()).unwrap_or_default()
                        );
                    }
                }
            })
            .expect("sipp runs")
    })
    .await
    .expect("sipp thread");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "sipp: {}\n{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    // RFC 4028 §10: the BYE comes before the session expires (90 s), not long before.
    assert!(
        elapsed >= Duration::from_secs(50) && elapsed < Duration::from_secs(95),
        "BYE after {elapsed:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_we_place_offer_session_timers() {
    let s = start(Db::Sqlite, "timer_offer").await.expect("server");
    let admin = s.admin().await;
    let user = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "callee", "display_name": "Callee", "password": "callee-password-1",
                "extension": "3101", "sip_password": "sip-secret-3101",
            }),
        )
        .await;
    user.expect(201);
    let room = s
        .post("/rooms", &admin, json!({ "number": "8002", "name": "Out" }))
        .await;
    room.expect(201);
    let phone = Registrant::new(sip_udp(&s), [127, 0, 0, 1], "3101").await;
    let challenge = phone.challenge(1).await;
    let ok = phone
        .request(2, Some(&answer(&challenge, "3101", "sip-secret-3101", 1)))
        .await;
    assert_eq!(ok.status, 200);
    s.post(
        &format!("/conferences/{}/invite", room.id()),
        &admin,
        json!({ "user_id": user.id() }),
    )
    .await
    .expect(202);
    let invite = phone.next_request("INVITE").await;
    let supported: Vec<&str> = invite.headers.get_all(&HeaderName::Supported).collect();
    assert!(
        supported
            .iter()
            .any(|s| s.split(',').any(|t| t.trim() == "timer")),
        "Supported: timer in {supported:?}"
    );
    let se = invite
        .headers
        .session_expires()
        .ok()
        .flatten()
        .expect("Session-Expires");
    assert!(se.delta >= 90, "{se:?}");
    // Busy: the call ends at once.
    let busy = invite.response(486, "Busy Here", Some("callee"));
    phone.reply(&busy.to_bytes()).await;
    s.stop().await;
}

impl Registrant {
    /// The next request of this method the server sends us.
    pub(crate) async fn next_request(&self, method: &str) -> conclave_sip::Request {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(10), self.sock.recv_from(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("a {method} within 10 s"))
                    .expect("recv");
            if let Ok(Message::Request(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.method.as_str() == method
            {
                return r;
            }
        }
    }

    pub(crate) async fn reply(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).await.expect("send");
    }
}
