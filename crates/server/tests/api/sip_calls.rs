//! Calls into a room end to end with a real SIP peer (sipp): INVITE/ACK/BYE with an SDP
//! answer checked, a BYE from the server when the chair removes the caller, hold/resume and a
//! codec change by re-INVITE, UPDATE, a late offer (answer in the ACK) with RTP played into the
//! room, OPTIONS, keypad digits in INFO, CANCEL (whichever way the race goes), unknown methods
//! and rooms, and a call over IPv6. Each scenario is written to a temp file and run once
//! (`-m 1`) under a global timeout; the test asserts sipp's exit status and the live roster.

use crate::common::{Db, TestServer, free_udp_port, sipp_installed, start};
use conclave_server::config::Settings;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ sipp scenarios

/// The SDP of our offers and answers: one audio stream on sipp's media port.
fn sdp(version: u32, payloads: &str, rtpmaps: &[&str], direction: &str) -> String {
    let maps: String = rtpmaps.iter().map(|m| format!("a=rtpmap:{m}\n")).collect();
    format!(
        "v=0\n\
         o=sipp 53655765 {version} IN IP[local_ip_type] [local_ip]\n\
         s=-\n\
         c=IN IP[media_ip_type] [media_ip]\n\
         t=0 0\n\
         m=audio [media_port] RTP/AVP {payloads}\n\
         {maps}a=ptime:20\n\
         a={direction}\n"
    )
}

/// PCMU with telephone-event, as a desk phone offers.
fn pcmu(version: u32, direction: &str) -> String {
    sdp(
        version,
        "0 101",
        &["0 PCMU/8000", "101 telephone-event/8000"],
        direction,
    )
}

/// An `<ereg>` that must match (the call fails otherwise). Every check stores its match in
/// `$chk` (sipp refuses variables that are set but never read; [`Scenario::xml`] reads it).
fn must_match(regexp: &str, search_in: &str) -> String {
    let header = match search_in.split_once(':') {
        Some((_, header)) => format!(" search_in=\"hdr\" header=\"{header}:\""),
        None => " search_in=\"body\"".to_owned(),
    };
    format!("<ereg regexp=\"{regexp}\"{header} check_it=\"true\" assign_to=\"chk\"/>")
}

/// An `<ereg>` that may fail to match: sets `var` when it does (for `test=`).
fn may_match(var: &str, regexp: &str, header: &str) -> String {
    format!(
        "<ereg regexp=\"{regexp}\" search_in=\"hdr\" header=\"{header}:\" assign_to=\"{var}\"/>"
    )
}

/// A scenario of sipp dialling `[service]` (the room number given with `-s`) from `user`.
pub(crate) struct Scenario {
    user: String,
    steps: Vec<String>,
    /// Files the scenario reads (pcap audio), written next to it.
    files: Vec<(String, Vec<u8>)>,
}

impl Scenario {
    pub(crate) fn new(user: &str) -> Scenario {
        Scenario {
            user: user.to_owned(),
            steps: Vec::new(),
            files: Vec::new(),
        }
    }

    pub(crate) fn raw(mut self, step: &str) -> Self {
        self.steps.push(step.to_owned());
        self
    }

    /// A request from the caller. `to_tag`: inside the dialog (the tag sipp learnt from the
    /// answer). `branch`: a fixed branch (INVITE, its CANCEL and the ACK of a failure share
    /// it), else a fresh one. Non-INVITE requests and the INVITE are retransmitted (UDP).
    fn request(
        self,
        method: &str,
        cseq: &str,
        to_tag: bool,
        branch: Option<&str>,
        headers: &[&str],
        body: Option<(&str, &str)>,
    ) -> Self {
        let user = self.user.clone();
        let to_tag = if to_tag { "[peer_tag_param]" } else { "" };
        let branch = branch
            .map(|b| format!("z9hG4bK-[pid]-[call_number]-{b}"))
            .unwrap_or_else(|| "[branch]".to_owned());
        let retrans = if method == "ACK" {
            ""
        } else {
            " retrans=\"500\""
        };
        let mut extra: String = headers.iter().map(|h| format!("{h}\n")).collect();
        let body = match body {
            Some((content_type, body)) => {
                extra.push_str(&format!("Content-Type: {content_type}\n"));
                body.to_owned()
            }
            None => String::new(),
        };
        let step = format!(
            "<send{retrans}><![CDATA[\n\
             {method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}\n\
             From: \"{user}\" <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
             To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}\n\
             Call-ID: [call_id]\n\
             CSeq: {cseq} {method}\n\
             Contact: <sip:{user}@[local_ip]:[local_port]>\n\
             Max-Forwards: 70\n\
             User-Agent: sipp\n\
             {extra}Content-Length: [len]\n\
             \n\
             {body}]]></send>"
        );
        self.raw(&step)
    }

    /// INVITE (with an SDP offer, or none for a late offer) on the branch `inv`.
    fn invite(self, offer: Option<&str>) -> Self {
        self.request(
            "INVITE",
            "1",
            false,
            Some("inv"),
            &[],
            offer.map(|o| ("application/sdp", o)),
        )
    }

    /// Provisional answers that may come (100 Trying after 200 ms, ringing).
    fn provisional(self) -> Self {
        self.raw("<recv response=\"100\" optional=\"true\"/>")
            .raw("<recv response=\"180\" optional=\"true\"/>")
    }

    /// A final answer, with checks on it.
    fn expect(self, status: u16, checks: &[String]) -> Self {
        let step = if checks.is_empty() {
            format!("<recv response=\"{status}\"/>")
        } else {
            format!(
                "<recv response=\"{status}\"><action>{}</action></recv>",
                checks.concat()
            )
        };
        self.raw(&step)
    }

    /// ACK of a 2xx (a new transaction), with the answer for a late offer.
    fn ack(self, cseq: &str, answer: Option<&str>) -> Self {
        self.request(
            "ACK",
            cseq,
            true,
            None,
            &[],
            answer.map(|a| ("application/sdp", a)),
        )
    }

    /// INVITE with PCMU, 200 with a PCMU answer, ACK.
    pub(crate) fn connect(self) -> Self {
        self.invite(Some(&pcmu(1, "sendrecv")))
            .provisional()
            .expect(200, &answer_has(0, "PCMU"))
            .ack("1", None)
    }

    /// Plays RTP from a pcap (sipp rewrites the addresses to the negotiated ones).
    fn play(mut self, pcap: Vec<u8>) -> Self {
        let name = format!("audio{}.pcap", self.files.len());
        let step = format!("<nop><action><exec play_pcap_audio=\"{name}\"/></action></nop>");
        self.files.push((name, pcap));
        self.raw(&step)
    }

    pub(crate) fn pause(self, ms: u64) -> Self {
        self.raw(&format!("<pause milliseconds=\"{ms}\"/>"))
    }

    /// BYE from the caller, answered 200.
    fn bye(self, cseq: u32) -> Self {
        self.request("BYE", &cseq.to_string(), true, None, &[], None)
            .expect(200, &[])
    }

    /// Answer a request from the server (e.g. its BYE) with 200.
    pub(crate) fn answer_request(self, method: &str) -> Self {
        self.raw(&format!(
            "<recv request=\"{method}\"/>\
             <send><![CDATA[\n\
             SIP/2.0 200 OK\n\
             [last_Via:]\n\
             [last_From:]\n\
             [last_To:]\n\
             [last_Call-ID:]\n\
             [last_CSeq:]\n\
             Content-Length: 0\n\
             \n\
             ]]></send>"
        ))
    }

    pub(crate) fn xml(&self, name: &str) -> String {
        let mut steps = self.steps.join("\n");
        if steps.contains("assign_to=\"chk\"") {
            steps.push_str("\n<nop test=\"chk\"/>");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n\
             <scenario name=\"{name}\">\n{}\n</scenario>\n",
            steps
        )
    }
}

/// Checks that an SDP answer carries this codec (and an audio stream on RTP/AVP).
fn answer_has(payload: u8, name: &str) -> Vec<String> {
    vec![
        must_match(&format!("m=audio [0-9]+ RTP/AVP {payload}[^0-9]"), "body"),
        must_match(&format!("a=rtpmap:{payload} {name}/8000"), "body"),
    ]
}

// ------------------------------------------------------------------ running sipp

/// G.711 A-law audio (payload type 8, 7 s) shipped with Debian's sip-tester.
const SIPP_PCMA: &str = "/usr/share/sip-tester/g711a.pcap";

/// What one sipp run produced.
struct SippRun {
    out: Output,
    /// Every message sent and received (`-trace_msg`).
    messages: String,
    errors: String,
}

impl SippRun {
    fn ok(&self) -> bool {
        self.out.status.success()
    }

    fn report(&self) -> String {
        let stdout = String::from_utf8_lossy(&self.out.stdout);
        let tail: Vec<&str> = stdout.lines().rev().take(12).collect();
        format!(
            "sipp exit {:?}\n--- errors ---\n{}\n--- stderr ---\n{}\n--- screen (end) ---\n{}\n--- messages ---\n{}",
            self.out.status.code(),
            self.errors,
            String::from_utf8_lossy(&self.out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            self.messages
        )
    }

    #[track_caller]
    fn assert_ok(&self, what: &str) {
        assert!(
            self.ok(),
            "{what}: the sipp scenario failed\n{}",
            self.report()
        );
    }
}

/// A free UDP port on this address (the port pair for media starts even).
fn free_port_on(ip: &str) -> u16 {
    if ip == "127.0.0.1" {
        return free_udp_port();
    }
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs one call of `scenario` against `server`, from `local_ip`, dialling `service`.
fn run_sipp(
    server: SocketAddr,
    local_ip: &str,
    service: &str,
    name: &str,
    scenario: &Scenario,
    dir: &Path,
) -> SippRun {
    let xml = dir.join(format!("{name}.xml"));
    std::fs::write(&xml, scenario.xml(name)).expect("write scenario");
    for (file, bytes) in &scenario.files {
        std::fs::write(dir.join(file), bytes).expect("write pcap");
    }
    let (messages, errors) = (
        dir.join(format!("{name}_messages.log")),
        dir.join(format!("{name}_errors.log")),
    );
    // The ports are picked free, then released for sipp: a parallel test may take one in
    // between, and sipp then exits at once ("Unable to bind"). Try again with others.
    let mut attempts = 0;
    let out = loop {
        attempts += 1;
        let out = sipp_once(server, local_ip, service, &xml, &messages, &errors, dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("Unable to bind") || attempts == 3 {
            break out;
        }
    };
    SippRun {
        out,
        messages: std::fs::read_to_string(&messages).unwrap_or_default(),
        errors: std::fs::read_to_string(&errors).unwrap_or_default(),
    }
}

fn sipp_once(
    server: SocketAddr,
    local_ip: &str,
    service: &str,
    xml: &Path,
    messages: &Path,
    errors: &Path,
    dir: &Path,
) -> std::process::Output {
    Command::new("sipp")
        .arg(server.to_string())
        .arg("-sf")
        .arg(xml)
        .args(["-s", service, "-i", local_ip, "-m", "1", "-l", "1"])
        .args([
            "-timeout",
            "25s",
            "-timeout_error",
            "-recv_timeout",
            "10000",
        ])
        .args(["-nostdin", "-trace_msg", "-trace_err"])
        .arg("-message_file")
        .arg(messages)
        .arg("-error_file")
        .arg(errors)
        .args(["-p", &free_port_on(local_ip).to_string()])
        .args(["-mp", &(free_port_on(local_ip) & !1).to_string()])
        .current_dir(dir)
        .output()
        .expect("sipp runs")
}

/// A running server with a PIN-less room, and sipp runs against it.
struct Bench {
    s: TestServer,
    admin: String,
    room_id: String,
    sip: SocketAddr,
    local_ip: &'static str,
    dir: tempfile::TempDir,
}

impl Bench {
    async fn new(test: &str) -> Option<Bench> {
        if !sipp_installed() {
            return None;
        }
        let s = start(Db::Sqlite, test).await.expect("server");
        let sip = s.running.as_ref().expect("running").sip.udp;
        Some(Bench::with_room(s, sip, "127.0.0.1").await)
    }

    async fn with_room(s: TestServer, sip: SocketAddr, local_ip: &'static str) -> Bench {
        let admin = s.admin().await;
        let room_id = s
            .post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
            .await
            .id();
        Bench {
            s,
            admin,
            room_id,
            sip,
            local_ip,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    /// Starts sipp on `scenario` dialling `service`; await the handle for its outcome.
    fn spawn(
        &self,
        service: &str,
        name: &str,
        scenario: Scenario,
    ) -> tokio::task::JoinHandle<SippRun> {
        let (sip, local_ip, service, name, dir) = (
            self.sip,
            self.local_ip,
            service.to_owned(),
            name.to_owned(),
            self.dir.path().to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            run_sipp(sip, local_ip, &service, &name, &scenario, &dir)
        })
    }

    async fn run(&self, service: &str, name: &str, scenario: Scenario) -> SippRun {
        self.spawn(service, name, scenario)
            .await
            .expect("sipp thread")
    }

    /// The room's roster (empty when no meeting is live).
    async fn members(&self) -> Vec<Value> {
        let live = self
            .s
            .get(&format!("/conferences/{}", self.room_id), &self.admin)
            .await;
        if live.status == 404 {
            return Vec::new();
        }
        live.expect(200);
        live.body["members"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the roster until `user`'s entry satisfies `ok`, for `secs` at most. On timeout,
    /// the last entry seen for `user` (or the whole roster when they were never in it).
    async fn poll_member(
        &self,
        user: &str,
        secs: u64,
        ok: impl Fn(&Value) -> bool,
    ) -> Result<Value, Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = Value::Null;
        loop {
            let members = self.members().await;
            match members.iter().find(|m| m["number"] == user) {
                Some(m) if ok(m) => return Ok(m.clone()),
                Some(m) => last = m.clone(),
                None if last.is_null() => last = json!({ "roster": members }),
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (10 s at most) for `user` to be in the roster.
    async fn wait_joined(&self, user: &str) -> Value {
        self.poll_member(user, 10, |_| true)
            .await
            .unwrap_or_else(|roster| panic!("{user} never joined: {roster}"))
    }

    /// Polls until nobody is in the room (5 s at most).
    async fn wait_empty(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let members = self.members().await;
            if members.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: members stay in the roster: {members:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.s.stop().await;
    }
}

// ------------------------------------------------------------------ 1. basic call

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_answer_ack_bye_with_pcmu() {
    let Some(b) = Bench::new("sipp_basic_call").await else {
        return;
    };
    let scenario = Scenario::new("alice").connect().pause(2500).bye(2);
    let sipp = b.spawn("8001", "basic", scenario);
    let member = b.wait_joined("alice").await;
    assert_eq!(member["via"], "dial_in", "{member}");
    let run = sipp.await.expect("sipp thread");
    run.assert_ok("INVITE/200 with PCMU/ACK/BYE");
    b.wait_empty("after the caller's BYE").await;
    b.stop().await;
}

// ------------------------------------------------------------------ 2. BYE from the server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chair_removes_the_caller_and_the_server_sends_bye() {
    let Some(b) = Bench::new("sipp_kick").await else {
        return;
    };
    let scenario = Scenario::new("bob").connect().answer_request("BYE");
    let sipp = b.spawn("8001", "kicked", scenario);
    let member = match b.poll_member("bob", 10, |_| true).await {
        Ok(member) => member,
        Err(roster) => {
            // Say why: what sipp saw and printed.
            let run = sipp.await.expect("sipp thread");
            panic!(
                "bob never joined: {roster}\nsipp: {}\n{}\n{}",
                String::from_utf8_lossy(&run.out.stderr),
                run.messages,
                run.errors
            );
        }
    };
    let id = member["id"].as_u64().expect("member id");
    b.s.delete(
        &format!("/conferences/{}/members/{id}", b.room_id),
        &b.admin,
    )
    .await
    .expect(200);
    let run = sipp.await.expect("sipp thread");
    run.assert_ok("BYE from the server after kickMember");
    assert!(
        run.messages.contains("BYE sip:bob@"),
        "the BYE targets the caller's Contact\n{}",
        run.messages
    );
    b.wait_empty("after the removal").await;
    b.stop().await;
}

// ------------------------------------------------------------------ 3. re-INVITE

/// Re-INVITE with this SDP; the 200 must carry `checks`.
fn reinvite(s: Scenario, cseq: u32, offer: &str, checks: &[String]) -> Scenario {
    s.request(
        "INVITE",
        &cseq.to_string(),
        true,
        None,
        &[],
        Some(("application/sdp", offer)),
    )
    .provisional()
    .expect(200, checks)
    .ack(&cseq.to_string(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_holds_and_resumes() {
    let Some(b) = Bench::new("sipp_hold").await else {
        return;
    };
    let s = Scenario::new("carol").connect().pause(500);
    let s = reinvite(
        s,
        2,
        &pcmu(2, "sendonly"),
        &[must_match("a=recvonly", "body")],
    );
    let s = reinvite(
        s.pause(300),
        3,
        &pcmu(3, "sendrecv"),
        &[must_match("a=sendrecv", "body")],
    );
    let run = b.run("8001", "hold", s.pause(300).bye(4)).await;
    run.assert_ok("hold (sendonly → recvonly) and resume (sendrecv → sendrecv)");
    b.wait_empty("after BYE").await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_changes_the_codec_and_the_roster_follows() {
    let Some(b) = Bench::new("sipp_codec_change").await else {
        return;
    };
    let pcma = sdp(
        2,
        "8 101",
        &["8 PCMA/8000", "101 telephone-event/8000"],
        "sendrecv",
    );
    // PCMU audio for 1.5 s, a re-INVITE to PCMA at 2 s, then sipp's PCMA recording for 4 s.
    let s = Scenario::new("dave")
        .connect()
        .play(pcmu_pcap(75))
        .pause(2000);
    let s = reinvite(s, 2, &pcma, &answer_has(8, "PCMA"))
        .raw(&format!(
            "<nop><action><exec play_pcap_audio=\"{SIPP_PCMA}\"/></action></nop>"
        ))
        .pause(4000)
        .bye(3);
    let started = Instant::now();
    let sipp = b.spawn("8001", "codec", s);
    let before = b
        .poll_member("dave", 10, |m| m["quality"]["codec"] == "PCMU")
        .await;
    // 1.5 s into the PCMA audio (the mixer's counters restart with the new media).
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed())).await;
    let flowing = b
        .poll_member("dave", 2, |m| {
            m["quality"]["packets_received"].as_u64().unwrap_or(0) > 20
        })
        .await;
    let after = b
        .poll_member("dave", 1, |m| m["quality"]["codec"] == "PCMA")
        .await;
    let run = sipp.await.expect("sipp thread");
    run.assert_ok("re-INVITE PCMU → PCMA answered with PCMA");
    assert!(
        run.messages.contains("CSeq: 2 INVITE") && run.messages.contains("PCMA/8000"),
        "{}",
        run.messages
    );
    assert!(before.is_ok(), "PCMU in the roster at first: {before:?}");
    assert!(
        flowing.is_ok(),
        "PCMA audio reaches the mix after the re-INVITE: {flowing:?}"
    );
    if let Err(last) = after {
        panic!(
            "the roster's codec should follow the re-INVITE to PCMA (sipp got a PCMA answer \
             and its PCMA audio is received); the roster says: {last}"
        );
    }
    b.wait_empty("after BYE").await;
    b.stop().await;
}

// ------------------------------------------------------------------ 4. UPDATE

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_in_the_dialog_is_answered() {
    let Some(b) = Bench::new("sipp_update").await else {
        return;
    };
    let s = Scenario::new("erin")
        .connect()
        .pause(300)
        .request(
            "UPDATE",
            "2",
            true,
            None,
            &[],
            Some(("application/sdp", &pcmu(2, "sendrecv"))),
        )
        .expect(200, &answer_has(0, "PCMU"))
        .pause(300)
        .bye(3);
    let run = b.run("8001", "update", s).await;
    run.assert_ok("UPDATE with SDP answered 200 with an answer");
    b.wait_empty("after BYE").await;
    b.stop().await;
}

// ------------------------------------------------------------------ 5. late offer

/// A pcap of `frames` × 20 ms of a 440 Hz tone in PCMU (payload type 0), Ethernet/IPv4/UDP,
/// for sipp's `play_pcap_audio` (which rewrites the addresses).
fn pcmu_pcap(frames: usize) -> Vec<u8> {
    use conclave_media::codec::g711::encode_ulaw;
    use conclave_media::dsp::tone;
    let mut pcap = Vec::new();
    for v in [0xa1b2_c3d4u32.to_le_bytes().as_slice(), &2u16.to_le_bytes()] {
        pcap.extend_from_slice(v);
    }
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]); // time zone, accuracy
    pcap.extend_from_slice(&65_535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for i in 0..frames {
        let mut rtp = vec![0x80, 0];
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&((i * 160) as u32).to_be_bytes());
        rtp.extend_from_slice(&0x5151_0001u32.to_be_bytes());
        encode_ulaw(&tone(440.0, 8000, 160, 8000.0, i * 160), &mut rtp);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&6002u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&rtp);
        let micros = i * 20_000;
        pcap.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        pcap.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
    }
    pcap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_offer_answer_in_ack_joins_the_mix() {
    let Some(b) = Bench::new("sipp_late_offer").await else {
        return;
    };
    let s = Scenario::new("frank")
        .invite(None)
        .provisional()
        .expect(
            200,
            &[
                must_match("m=audio [0-9]+ RTP/S?AVP", "body"),
                must_match("a=rtpmap:0 PCMU/8000", "body"),
            ],
        )
        .ack("1", Some(&pcmu(1, "sendrecv")))
        .play(pcmu_pcap(150))
        .pause(4000)
        .bye(2);
    let sipp = b.spawn("8001", "late_offer", s);
    let member = b
        .poll_member("frank", 10, |m| {
            m["quality"]["packets_received"].as_u64().unwrap_or(0) > 20
        })
        .await;
    let run = sipp.await.expect("sipp thread");
    run.assert_ok("INVITE without SDP, offer in 200, answer in ACK");
    let member =
        member.unwrap_or_else(|last| panic!("the late-offer caller's RTP reaches the mix: {last}"));
    assert_eq!(member["quality"]["codec"], "PCMU", "{member}");
    b.wait_empty("after BYE").await;
    b.stop().await;
}

// ------------------------------------------------------------------ 6. OPTIONS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_out_of_dialog_lists_the_methods() {
    let Some(b) = Bench::new("sipp_options").await else {
        return;
    };
    let allow: Vec<String> = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"]
        .iter()
        .map(|m| must_match(m, "hdr:Allow"))
        .collect();
    let s = Scenario::new("grace")
        .request(
            "OPTIONS",
            "1",
            false,
            None,
            &["Accept: application/sdp"],
            None,
        )
        .expect(200, &allow);
    let run = b.run("8001", "options", s).await;
    run.assert_ok("OPTIONS answered 200 with Allow");
    b.stop().await;
}

// ------------------------------------------------------------------ 7. INFO DTMF

fn info(s: Scenario, cseq: u32, signal: &str) -> Scenario {
    let body = format!("Signal={signal}\nDuration=160\n");
    s.request(
        "INFO",
        &cseq.to_string(),
        true,
        None,
        &[],
        Some(("application/dtmf-relay", &body)),
    )
    .expect(200, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_digits_star_six_mute_the_caller() {
    let Some(b) = Bench::new("sipp_info_dtmf").await else {
        return;
    };
    let s = Scenario::new("heidi").connect().pause(1000);
    let s = info(info(s, 2, "*"), 3, "6").pause(3000).bye(4);
    let sipp = b.spawn("8001", "info", s);
    let joined = b.wait_joined("heidi").await;
    assert_eq!(joined["muted"], false, "{joined}");
    let muted = b.poll_member("heidi", 8, |m| m["muted"] == true).await;
    let run = sipp.await.expect("sipp thread");
    run.assert_ok("INFO answered 200");
    if let Err(last) = muted {
        panic!(
            "*6 sent as INFO (application/dtmf-relay) should mute the caller like RFC 4733 digits: {last}"
        );
    }
    b.wait_empty("after BYE").await;
    b.stop().await;
}

// ------------------------------------------------------------------ 8. CANCEL, unknown method, unknown room

/// INVITE then CANCEL. Either the CANCEL wins (200 to it, 487 to the INVITE, which we ACK) or
/// the 200 to the INVITE went first (we ACK it and hang up with BYE; a CANCEL sent meanwhile
/// gets its own 200 and changes nothing). With `after_answer` the CANCEL is sent only once
/// the 200 arrived (the second outcome for sure).
///
/// sipp yields between two consecutive sends, and the server answers within a millisecond,
/// so a response can arrive "while sending", where sipp finds no step to match it and fails
/// the call. Before each run of sends stands a guard: an `optional="global"` reception of a
/// 200 that goes to the answered path, passed after 1 ms. sipp looks behind for a global
/// reception when nothing ahead matches, so a 200 arriving between the sends lands there.
fn cancel_scenario(user: &str, after_answer: bool) -> Scenario {
    let is_invite = may_match("inv200", "INVITE", "CSeq");
    let is_cancel = may_match("cancel_ok", "CANCEL", "CSeq");
    let cancel = |s: Scenario| s.request("CANCEL", "1", false, Some("inv"), &[], None);
    let guard = |s: Scenario, name: &str| {
        s.raw(&format!(
            "<recv response=\"200\" optional=\"global\" timeout=\"1\" ontimeout=\"{name}\" \
             next=\"answered\"/>"
        ))
        // sipp wants a mandatory reception before a send; this one is never reached.
        .raw("<recv request=\"NEVER\"/>")
        .raw(&format!("<label id=\"{name}\"/>"))
    };
    let mut s = Scenario::new(user).invite(Some(&pcmu(1, "sendrecv")));
    if after_answer {
        // (The CANCEL's 200 then takes us from `wait_final` to the answered path.)
        s = s.provisional().raw(&format!(
            "<recv response=\"200\"><action>{is_invite}</action></recv>"
        ));
        s = cancel(guard(s, "cancel_late"));
    } else {
        s = cancel(guard(s, "cancel_now"));
    }
    s = s
        .raw("<label id=\"wait_final\"/>")
        .provisional()
        .raw("<recv response=\"487\" optional=\"true\" next=\"rejected\"/>")
        // A 200: to the CANCEL (wait on) or to the INVITE (answered before the CANCEL).
        .raw(&format!(
            "<recv response=\"200\"><action>{is_invite}{is_cancel}</action></recv>"
        ))
        .raw("<nop test=\"inv200\" next=\"answered\"/>")
        .raw("<nop next=\"wait_final\"/>")
        // The CANCEL won: ACK the 487 on the INVITE's branch; make sure the CANCEL got its 200.
        .raw("<label id=\"rejected\"/>")
        .request("ACK", "1", true, Some("inv"), &[], None)
        .raw("<nop test=\"cancel_ok\" next=\"done\"/>")
        .expect(200, &[])
        .raw("<nop next=\"done\"/>")
        // The 200 won: ACK it and hang up. (A 200 caught by a guard comes back here: the ACK
        // and the BYE are then sent again, as retransmissions.)
        .raw("<label id=\"answered\"/>");
    guard(s, "hang_up")
        .ack("1", None)
        .request("BYE", "2", true, None, &[], None)
        // Until the BYE's 200 (the CANCEL's may come before or after it).
        .raw("<label id=\"wait_bye\"/>")
        .raw(&format!(
            "<recv response=\"200\"><action>{}</action></recv>",
            may_match("bye_ok", "BYE", "CSeq")
        ))
        .raw("<nop test=\"bye_ok\" next=\"done\"/>")
        .raw("<nop next=\"wait_bye\"/>")
        .raw("<label id=\"done\"/>")
        .pause(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_the_caller_leaves_nobody_behind() {
    let Some(b) = Bench::new("sipp_cancel").await else {
        return;
    };
    let run = b
        .run("8001", "cancel_now", cancel_scenario("ivan", false))
        .await;
    run.assert_ok("CANCEL right after INVITE");
    let outcome = if run.messages.contains("SIP/2.0 487") {
        "CANCEL won: 200 + 487"
    } else {
        "200 went first: ACK + BYE"
    };
    eprintln!("CANCEL race: {outcome}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.wait_empty("after the CANCEL").await;

    let run = b
        .run("8001", "cancel_late", cancel_scenario("judy", true))
        .await;
    run.assert_ok("CANCEL after the 200");
    assert!(
        !run.messages.contains("SIP/2.0 487"),
        "no 487 after a 200\n{}",
        run.messages
    );
    b.wait_empty("after the late CANCEL and BYE").await;

    // sipp sends its CANCEL a turn after the INVITE, by which time the server has answered;
    // sent back to back from a socket, the CANCEL usually arrives while the room is still
    // being looked up. Either way, no member may stay.
    for attempt in 0..3 {
        let outcome = cancel_back_to_back(b.sip, &format!("kim{attempt}")).await;
        eprintln!("CANCEL back to back: {outcome}");
        // (Long enough for the room lookup of a cancelled call to come back.)
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.wait_empty(&format!("after a back-to-back CANCEL ({outcome})"))
            .await;
    }
    b.stop().await;
}

/// INVITE and CANCEL in two datagrams sent back to back; plays the caller's part to the end
/// of either outcome and says which it was.
async fn cancel_back_to_back(server: SocketAddr, user: &str) -> &'static str {
    use conclave_sip::{Limits, Message, parse_datagram};
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = sock.local_addr().expect("addr");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        local.port() + 2
    );
    let request = |method: &str, cseq: &str, branch: &str, to_tag: &str, body: &str| {
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:8001@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag={user}\r\nTo: <sip:8001@127.0.0.1>{to_tag}\r\n\
             Call-ID: {user}@cancel\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@{local}>\r\n{content_type}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let invite_branch = format!("{user}inv");
    for message in [
        request("INVITE", "1", &invite_branch, "", &sdp),
        request("CANCEL", "1", &invite_branch, "", ""),
    ] {
        sock.send_to(message.as_bytes(), server)
            .await
            .expect("send");
    }
    let mut buf = vec![0u8; 65_536];
    let mut finals: Vec<(u16, String, String)> = Vec::new();
    let (mut invite_final, mut cancel_final) = (None, None);
    while invite_final.is_none() || cancel_final.is_none() {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("answers to INVITE and CANCEL within 5 s: {finals:?}"))
            .expect("recv");
        let Ok(Message::Response(r)) = parse_datagram(&buf[..n], &Limits::default()) else {
            continue;
        };
        let method = r.headers.cseq().expect("CSeq").method.as_str().to_owned();
        let tag = r
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_default();
        if r.status < 200 {
            continue;
        }
        finals.push((r.status, method.clone(), tag.clone()));
        match method.as_str() {
            "INVITE" => invite_final = Some((r.status, tag)),
            _ => cancel_final = Some(r.status),
        }
    }
    assert_eq!(cancel_final, Some(200), "the CANCEL gets 200: {finals:?}");
    let (status, tag) = invite_final.expect("INVITE answered");
    let to_tag = format!(";tag={tag}");
    match status {
        487 => {
            let ack = request("ACK", "1", &invite_branch, &to_tag, "");
            sock.send_to(ack.as_bytes(), server).await.expect("ack");
            "CANCEL won: 200 + 487"
        }
        200 => {
            let ack = request("ACK", "1", &format!("{user}ack"), &to_tag, "");
            sock.send_to(ack.as_bytes(), server).await.expect("ack");
            let bye = request("BYE", "2", &format!("{user}bye"), &to_tag, "");
            sock.send_to(bye.as_bytes(), server).await.expect("bye");
            loop {
                let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
                    .await
                    .expect("the BYE is answered within 5 s")
                    .expect("recv");
                if let Ok(Message::Response(r)) = parse_datagram(&buf[..n], &Limits::default())
                    && r.headers.cseq().is_ok_and(|c| c.method.as_str() == "BYE")
                {
                    assert_eq!(r.status, 200, "BYE answered");
                    break;
                }
            }
            "200 went first: ACK + BYE"
        }
        other => panic!("the INVITE got {other}: {finals:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_and_unknown_room_are_refused() {
    let Some(b) = Bench::new("sipp_refusals").await else {
        return;
    };
    let s = Scenario::new("mallory")
        .request("FOO", "1", false, None, &[], None)
        .raw("<recv response=\"501\" optional=\"true\" next=\"done\"/>")
        .expect(405, &[])
        .raw("<label id=\"done\"/>")
        .pause(100);
    let run = b.run("8001", "foo", s).await;
    run.assert_ok("an unknown method gets 405 or 501");

    let s = Scenario::new("mallory")
        .invite(Some(&pcmu(1, "sendrecv")))
        .provisional()
        .expect(404, &[])
        .request("ACK", "1", true, Some("inv"), &[], None)
        .pause(100);
    let run = b.run("9999", "no_room", s).await;
    run.assert_ok("INVITE to an unknown room gets 404");
    assert!(b.members().await.is_empty());
    b.stop().await;
}

// ------------------------------------------------------------------ 9. IPv6

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_ipv6() {
    if !sipp_installed() {
        return;
    }
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback here");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::with_data_dir(tmp.path());
    settings.http_listen = "127.0.0.1:0".parse().expect("addr");
    settings.sip_udp = "[::1]:0".parse().expect("addr");
    settings.sip_tcp = "[::1]:0".parse().expect("addr");
    settings.sip_tls = "[::1]:0".parse().expect("addr");
    settings.admin_password = Some(crate::common::ADMIN_PASSWORD.into());
    let running = conclave_server::start(settings)
        .await
        .expect("the server listens on [::1]");
    let sip = running.sip.udp;
    assert!(sip.is_ipv6(), "{sip}");
    let s = TestServer {
        base: format!("http://{}", running.http_addr),
        running: Some(running),
        http: reqwest::Client::new(),
        _tmp: tmp,
        _pg: None,
    };
    let b = Bench::with_room(s, sip, "::1").await;
    let scenario = Scenario::new("oscar").connect().pause(2500).bye(2);
    let sipp = b.spawn("8001", "ipv6", scenario);
    let member = b.poll_member("oscar", 10, |_| true).await;
    let run = sipp.await.expect("sipp thread");
    run.assert_ok("a call over UDP to [::1]");
    assert!(
        member.is_ok(),
        "the IPv6 caller is in the roster: {member:?}"
    );
    assert!(
        run.messages.contains("c=IN IP6 ::1"),
        "our SDP answer carries an IPv6 address\n{}",
        run.messages
    );
    b.wait_empty("after BYE").await;
    b.stop().await;
}
