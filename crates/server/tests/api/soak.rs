//! The soak, against the real binary in a child process: 200 members in 40 rooms call in, talk
//! and hang up over and over for `CONCLAVE_SOAK_SECONDS` (default 600, bounded to 3600), while
//! every listener takes garbage and floods at the same time — datagrams of junk on SIP and on
//! the media port, a stranger's RTP, anonymous calls that never send media nor hang up, wrong
//! logins, half-sent HTTP requests, silent SIP TCP connections and stalled TLS handshakes.
//! Every member's call must be answered, carry media and end cleanly; /healthz must answer all
//! along; afterwards no meeting is left, every flooding connection was closed, and the server's
//! descriptors and memory are back to the baseline taken after one warm-up round.
//!
//! It runs alone (.config/nextest.toml): its load would slow the other tests' timing.

use crate::exhaustion::{
    Call, Server, client, closed_within, connect_from_within, raise_own_descriptor_limit,
};
use crate::phone::Phone;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::time::Instant;

const ROOMS: usize = 40;
const MEMBERS: usize = 200;
const FIRST_ROOM: usize = 7100;

#[derive(Default)]
struct Tally {
    cycles: AtomicU64,
    failures: AtomicU64,
    healthz_failures: AtomicU64,
    not_closed: AtomicU64,
    flood_calls: AtomicU64,
    junk_datagrams: AtomicU64,
    stalled: AtomicU64,
    /// The first failures, said.
    why: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut w) = self.why.lock()
            && w.len() < 10
        {
            w.push(why);
        }
    }
}

fn soak_seconds() -> u64 {
    std::env::var("CONCLAVE_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
        .clamp(10, 3600)
}

/// A small deterministic generator (xorshift): junk that differs every time, reproducibly.
struct Junk(u64);
impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize % max) + 1;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// One member: call its room, talk (or stay silent) a few seconds, hang up; again until
/// `until`. Anything but a clean cycle is a failure.
async fn member(server: SocketAddr, index: usize, until: Instant, tally: Arc<Tally>) {
    let room = (FIRST_ROOM + index % ROOMS).to_string();
    let talker = index.is_multiple_of(5);
    let mut cycle = 0u64;
    while Instant::now() < until {
        cycle += 1;
        let mut phone = Phone::on(server, "127.0.0.1", &format!("soak{index}c{cycle}")).await;
        let ok = async {
            let status = phone.dial(&room, None, "sendrecv").await;
            if status != 200 {
                return Err(format!("dial answered {status}"));
            }
            let frames = 50 + (index * 7 + cycle as usize * 13) % 200;
            let Some(to) = phone.remote_rtp else {
                return Err("no media address".into());
            };
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..frames {
                tick.tick().await;
                let packet = phone.packet(if talker { 500.0 } else { 0.0 });
                let _ = phone.rtp.send_to(&packet, to).await;
                phone.collect();
            }
            if phone.packets <= frames / 4 {
                return Err(format!(
                    "{} packets heard in {frames} frames (SIP {:?}, RTP {:?}, sent to {to})",
                    phone.packets,
                    phone.sip.local_addr().ok(),
                    phone.rtp.local_addr().ok()
                ));
            }
            match phone.hang_up().await {
                200 => Ok(()),
                status => Err(format!("BYE answered {status}")),
            }
        };
        let result = tokio::time::timeout(Duration::from_secs(30), ok)
            .await
            .unwrap_or_else(|_| Err("no end within 30 s".into()));
        match result {
            Ok(()) => {
                tally.cycles.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => tally.fail(format!("member {index} call {cycle}: {why}")),
        }
    }
}

/// All members, until `until`.
async fn members(server: &Server, until: Instant, tally: &Arc<Tally>) {
    let mut tasks = Vec::new();
    for i in 0..MEMBERS {
        let (sip, tally) = (server.sip_udp, tally.clone());
        tasks.push(tokio::spawn(async move {
            // spread the first calls over a second
            tokio::time::sleep(Duration::from_millis((i as u64 * 5) % 1000)).await;
            member(sip, i, until, tally).await;
        }));
    }
    for t in tasks {
        if let Err(err) = t.await {
            tally.fail(format!("a member's task ended: {err}"));
        }
    }
}

/// Junk datagrams on SIP and on the media port (with some RTP-looking ones from strangers),
/// 1,500 a second in all.
async fn junk_datagrams(sip: SocketAddr, media: SocketAddr, until: Instant, tally: Arc<Tally>) {
    let mut socks = Vec::new();
    for i in 0..8u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 9, 10 + i));
        socks.push(UdpSocket::bind((ip, 0)).await.expect("bind"));
    }
    let mut junk = Junk(0x9e37_79b9_7f4a_7c15);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while Instant::now() < until {
        tick.tick().await;
        for k in 0..15usize {
            let sock = &socks[k % socks.len()];
            let mut data = junk.bytes(1400);
            let to = match k % 3 {
                0 => sip,
                1 => media,
                _ => {
                    // RTP from a stranger: version 2, PCMU, a random SSRC
                    data.resize(172, 0xff);
                    data[0] = 0x80;
                    data[1] = 0;
                    media
                }
            };
            let _ = sock.send_to(&data, to).await;
            tally.junk_datagrams.fetch_add(1, Ordering::Relaxed);
        }
        if junk.next().is_multiple_of(50) {
            // a SIP request with an oversized header
            let big = format!(
                "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK{}\r\nX-Big: {}\r\n\r\n",
                junk.next(),
                "a".repeat(60_000)
            );
            let _ = socks[0].send_to(big.as_bytes(), sip).await;
        }
    }
}

/// Anonymous calls that are answered, then never send media nor hang up: 4 a second.
async fn silent_calls(sip: SocketAddr, until: Instant, tally: Arc<Tally>) {
    let mut n = 1_000_000u32;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let room = (FIRST_ROOM + n as usize % ROOMS).to_string();
        tokio::spawn(async move {
            // the call's sockets close when it is dropped: the server must hang up by itself
            let _ = Call::place(sip, &room, n).await;
        });
        tally.flood_calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connections that stall on every TCP listener (HTTP half-sent, SIP TCP silent, TLS stalled
/// mid-handshake), at most 30 open at once; each must be closed by the server.
async fn stalled_connections(server: &Server, until: Instant, tally: Arc<Tally>) {
    let targets = [server.http, server.sip_tcp, server.sip_tls];
    let open = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0usize;
    let mut tasks = Vec::new();
    while Instant::now() < until {
        tick.tick().await;
        if open.load(Ordering::Relaxed) >= 30 {
            continue;
        }
        n += 1;
        let to = targets[n % targets.len()];
        let (open, tally) = (open.clone(), tally.clone());
        open.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 8, 1 + (n % 200) as u8));
            if let Ok(mut stream) = connect_from_within(from, to).await {
                let first: &[u8] = match n % 3 {
                    0 => b"GET /api/v1/rooms HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                    1 => b"",
                    _ => &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00],
                };
                let _ = stream.write_all(first).await;
                tally.stalled.fetch_add(1, Ordering::Relaxed);
                if !closed_within(&mut stream, Duration::from_secs(40)).await {
                    tally.not_closed.fetch_add(1, Ordering::Relaxed);
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Wrong logins and junk requests, 20 a second; /healthz once a second must answer 200.
async fn http_abuse(server: &Server, until: Instant, tally: Arc<Tally>) {
    let http = client();
    let base = server.base();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut n = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let _ = match n % 4 {
            0 => {
                http.post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({ "username": "admin", "password": format!("guess-{n}") }))
                    .send()
                    .await
            }
            1 => {
                http.post(format!("{base}/api/v1/rooms"))
                    .header("authorization", "Bearer cs_forged")
                    .body(vec![0xffu8; 2048])
                    .send()
                    .await
            }
            2 => http.get(format!("{base}/%00%ff/../..")).send().await,
            _ => {
                http.get(format!("{base}/api/v1/events?access_token=nope"))
                    .send()
                    .await
            }
        };
        if n.is_multiple_of(20) && server.healthz().await != Some(200) {
            tally.healthz_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn live_meetings(server: &Server, admin: &str) -> usize {
    let r: serde_json::Value = client()
        .get(format!("{}/api/v1/conferences", server.base()))
        .bearer_auth(admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    r.as_array().map(|a| a.len()).unwrap_or(usize::MAX)
}

/// Waits up to `within` for `done`, checking every 250 ms.
async fn eventually(within: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_members_churn_under_floods_and_resources_return_to_baseline() {
    raise_own_descriptor_limit();
    let seconds = soak_seconds();
    let server = Server::start(
        &[
            "--media-timeout-seconds",
            "5",
            "--header-timeout-seconds",
            "2",
            "--tls-handshake-timeout-seconds",
            "2",
            "--sip-idle-timeout-seconds",
            "5",
            "--http-idle-timeout-seconds",
            "5",
        ],
        None,
    )
    .await;
    let admin = server.admin_token().await;
    for r in 0..ROOMS {
        let number = FIRST_ROOM + r;
        let made = client()
            .post(format!("{}/api/v1/rooms", server.base()))
            .bearer_auth(&admin)
            .json(&json!({ "number": number.to_string(), "name": format!("Soak {r}"), "capacity": 40 }))
            .send()
            .await
            .expect("create room");
        assert_eq!(made.status(), 201, "room {number}");
    }

    // Warm-up: every member calls once, then all leave; what the server builds lazily (media
    // workers' buffers, prompt caches, pools) is in the baseline.
    let warm = Arc::new(Tally::default());
    members(&server, Instant::now() + Duration::from_secs(3), &warm).await;
    // Known defect (docs/security.md, "The soak"): under the first burst — 200 calls into
    // 40 new meetings within a second — a few calls stop receiving media after about a
    // second. Bounded here and printed, so that it is seen, until it is fixed.
    let warm_failures = warm.failures.load(Ordering::Relaxed);
    let warm_calls = warm.cycles.load(Ordering::Relaxed) + warm_failures;
    eprintln!(
        "soak warm-up: {warm_calls} calls, {warm_failures} failed: {:?}",
        warm.why.lock().map(|w| w.clone())
    );
    assert!(
        warm_failures * 50 <= warm_calls,
        "warm-up calls failed beyond the known defect's 2 %: {:?}",
        warm.why.lock().map(|w| w.clone())
    );
    assert!(
        eventually(Duration::from_secs(20), async || live_meetings(
            &server, &admin
        )
        .await
            == 0)
        .await
    );
    let base_fds = server.descriptors();
    let base_rss = server.status_kib("VmRSS");

    // Where the media goes: the address the server answers with.
    let mut probe = Phone::on(server.sip_udp, "127.0.0.1", "soakprobe").await;
    assert_eq!(
        probe.dial(&FIRST_ROOM.to_string(), None, "sendrecv").await,
        200
    );
    let media = probe.remote_rtp.expect("media address");
    assert_eq!(probe.hang_up().await, 200);

    let until = Instant::now() + Duration::from_secs(seconds);
    let tally = Arc::new(Tally::default());
    let halfway = async {
        tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
        server.status_kib("VmRSS")
    };
    let (.., mid_rss) = tokio::join!(
        members(&server, until, &tally),
        junk_datagrams(server.sip_udp, media, until, tally.clone()),
        silent_calls(server.sip_udp, until, tally.clone()),
        stalled_connections(&server, until, tally.clone()),
        http_abuse(&server, until, tally.clone()),
        halfway,
    );

    let cycles = tally.cycles.load(Ordering::Relaxed);
    eprintln!(
        "soak {seconds} s: {cycles} member calls, {} silent anonymous calls, {} junk datagrams, \
         {} stalled connections; baseline {base_fds} descriptors, {base_rss} KiB; mid-soak {} KiB",
        tally.flood_calls.load(Ordering::Relaxed),
        tally.junk_datagrams.load(Ordering::Relaxed),
        tally.stalled.load(Ordering::Relaxed),
        mid_rss,
    );
    let failures = tally.failures.load(Ordering::Relaxed);
    eprintln!(
        "soak: {failures} member calls failed: {:?}",
        tally.why.lock().map(|w| w.clone())
    );
    assert!(
        failures * 1000 <= cycles,
        "member calls failed beyond 0.1 %: {:?}",
        tally.why.lock().map(|w| w.clone())
    );
    assert!(cycles >= MEMBERS as u64, "every member completed calls");
    assert_eq!(
        tally.healthz_failures.load(Ordering::Relaxed),
        0,
        "/healthz answered 200 all along"
    );
    assert_eq!(
        tally.not_closed.load(Ordering::Relaxed),
        0,
        "every stalled connection was closed by the server"
    );

    // The anonymous silent calls are hung up (5 s without media) and their meetings end.
    assert!(
        eventually(Duration::from_secs(30), async || live_meetings(
            &server, &admin
        )
        .await
            == 0)
        .await,
        "no meeting is left"
    );
    let settled = eventually(Duration::from_secs(30), async || {
        server.descriptors() <= base_fds + 4
    })
    .await;
    assert!(
        settled,
        "descriptors back to the baseline: {} now, {base_fds} before",
        server.descriptors()
    );
    let end_rss = server.status_kib("VmRSS");
    eprintln!(
        "soak: after {end_rss} KiB, {} descriptors",
        server.descriptors()
    );
    // Freed memory is not always returned to the system, so the bound is the baseline plus a
    // margin far below what leaking one call's state per call would add (thousands of calls).
    assert!(
        end_rss <= base_rss + 48 * 1024,
        "memory back near the baseline: {end_rss} KiB after, {base_rss} KiB before"
    );
    assert_eq!(server.healthz().await, Some(200));
}
