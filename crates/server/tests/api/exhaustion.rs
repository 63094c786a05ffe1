//! Exhaustion without credentials, against the real binary in a child process (its memory
//! and descriptors read from /proc): parallel logins and password hashing, silent and stalled
//! connections on every listener, a SIP client that never reads, and a low descriptor limit
//! filled with connections and calls.

use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

const ADMIN_PASSWORD: &str = "admin-password-1";

pub(crate) fn free_port() -> u16 {
    crate::common::free_port()
}

/// Lets this test process open thousands of sockets.
pub(crate) fn raise_own_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The real `conclave serve` in a child process.
pub(crate) struct Server {
    child: Child,
    pub(crate) http: SocketAddr,
    pub(crate) sip_udp: SocketAddr,
    pub(crate) sip_tcp: SocketAddr,
    pub(crate) sip_tls: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts it with these extra flags, under a descriptor limit when given (soft = hard).
    pub(crate) async fn start(extra: &[&str], nofile: Option<u64>) -> Server {
        let dir = tempfile::tempdir().expect("tmp");
        let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (http, sip_udp, sip_tcp, sip_tls) = (
            port(free_port()),
            port(free_port()),
            port(free_port()),
            port(free_port()),
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--http-listen", &http.to_string()])
            .args(["--sip-udp", &sip_udp.to_string()])
            .args(["--sip-tcp", &sip_tcp.to_string()])
            .args(["--sip-tls", &sip_tls.to_string()])
            .args(["--log", "warn"])
            .args(extra)
            .env("CONCLAVE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("CONCLAVE_DATABASE_URL")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit between fork and exec (async-signal-safe).
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut server = Server {
            child: cmd.spawn().expect("conclave starts"),
            http,
            sip_udp,
            sip_tcp,
            sip_tls,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if server.healthz().await == Some(200) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("conclave exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("conclave did not become ready");
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    /// /healthz on a new connection (from 127.0.0.1), if it answers within 5 s.
    pub(crate) async fn healthz(&self) -> Option<u16> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .build()
            .ok()?;
        let r = client
            .get(format!("{}/healthz", self.base()))
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// A value of /proc/<pid>/status, in KiB (VmRSS, VmHWM).
    pub(crate) fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    pub(crate) fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .expect("the server's /proc fd")
    }

    pub(crate) async fn admin_token(&self) -> String {
        let r: serde_json::Value = client()
            .post(format!("{}/api/v1/auth/login", self.base()))
            .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        r["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that gives up after 10 s (a server that stopped answering fails the test
/// rather than hanging it).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A TCP connection from a given local address (given up after 10 s).
pub(crate) async fn connect_from_within(
    from: IpAddr,
    to: SocketAddr,
) -> std::io::Result<TcpStream> {
    tokio::time::timeout(Duration::from_secs(10), connect_from(from, to))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// A TCP connection from a given local address.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Whether the server closes this connection within `within` (EOF or reset), reading and
/// discarding whatever it sends first (a 408, say).
pub(crate) async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A REGISTER over UDP is still answered (a challenge).
async fn sip_answers(server: &Server) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = sock.local_addr().expect("addr");
    let msg = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:4000@127.0.0.1>;tag=p\r\nTo: <sip:4000@127.0.0.1>\r\n\
         Call-ID: probe-{}\r\nCSeq: 1 REGISTER\r\nContact: <sip:4000@{local}>\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    );
    sock.send_to(msg.as_bytes(), server.sip_udp)
        .await
        .expect("send");
    let mut buf = vec![0u8; 65_536];
    match tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 401"),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_keep_password_hashing_memory_bounded() {
    raise_own_descriptor_limit();
    let server = Server::start(&[], None).await;
    let before = server.status_kib("VmRSS");
    // 200 logins at once, each from its own address and for its own (unknown) name, so no
    // limiter stops them: every one reaches the password check (a dummy hash for unknown
    // names, so timing does not reveal them).
    let logins = (0..200u32).map(|i| {
        let base = server.base();
        async move {
            let client = reqwest::Client::builder()
                .local_address(IpAddr::from([127, 0, 1, (i % 250) as u8 + 1]))
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client");
            let r = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({ "username": format!("nobody{i}"), "password": "guess" }))
                .send()
                .await
                .expect("an answer");
            let retry_after = r.headers().contains_key("retry-after");
            (r.status().as_u16(), retry_after)
        }
    });
    let answers = futures::future::join_all(logins).await;
    for (status, retry_after) in &answers {
        assert!(
            *status == 401 || (*status == 503 && *retry_after),
            "401, or 503 with Retry-After when hashing is busy: {answers:?}"
        );
    }
    let peak = server.status_kib("VmHWM");
    // argon2 takes 19 MiB per hash; at most 2 per core run at once (4 on 2 cores, at most
    // 16 anywhere), so the peak stays within 16 × 19 MiB plus slack for 200 connections and
    // the allocator: 400 MiB. Unbounded, 200 parallel hashes took ~750 MB.
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("200 parallel logins: RSS {before} KiB before, peak {peak} KiB");
    assert!(
        grown_mib < 400,
        "the server grew by {grown_mib} MiB (from {before} KiB to a peak of {peak} KiB)"
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let bound = (2 * threads).clamp(2, 16) as u64 * 19 + 120;
    assert!(
        grown_mib < bound,
        "the server grew by {grown_mib} MiB, more than {bound} MiB for {threads} cores"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_stalled_connections_are_closed_while_service_goes_on() {
    raise_own_descriptor_limit();
    let server = Server::start(
        &[
            "--header-timeout-seconds",
            "2",
            "--tls-handshake-timeout-seconds",
            "2",
            "--http-idle-timeout-seconds",
            "3",
            "--sip-idle-timeout-seconds",
            "3",
            "--max-connections-per-address",
            "400",
        ],
        None,
    )
    .await;
    let baseline = server.descriptors();
    // 1,000 of each kind, from three loopback addresses (under the per-address cap).
    let mut silent_sip = Vec::new();
    let mut stalled_tls = Vec::new();
    let mut half_http = Vec::new();
    for i in 0..1000u32 {
        let from = IpAddr::from([127, 0, 2, (i % 3) as u8 + 1]);
        silent_sip.push(connect_from(from, server.sip_tcp).await.expect("SIP TCP"));
        let mut tls = connect_from(from, server.sip_tls).await.expect("SIP TLS");
        // The start of a TLS record that never comes.
        tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
            .await
            .expect("write");
        stalled_tls.push(tls);
        let mut http = connect_from(from, server.http).await.expect("HTTP");
        http.write_all(b"GET /healthz HTTP/1.1\r\nHost: conclave\r\n")
            .await
            .expect("write");
        half_http.push(http);
    }
    // Meanwhile the service works for everyone else.
    assert_eq!(server.healthz().await, Some(200), "/healthz while held");
    assert!(sip_answers(&server).await, "SIP while held");
    // One more from a full address is closed at once (per-address cap).
    let mut crowd = Vec::new();
    for _ in 0..400 {
        crowd.push(
            connect_from(IpAddr::from([127, 0, 2, 9]), server.sip_tcp)
                .await
                .expect("SIP TCP"),
        );
    }
    let mut over = connect_from(IpAddr::from([127, 0, 2, 9]), server.sip_tcp)
        .await
        .expect("connects (then is closed)");
    assert!(
        closed_within(&mut over, Duration::from_secs(1)).await,
        "the 401st connection from one address is closed at once"
    );
    // Every held connection is closed by the server within its timeout (2–3 s; 15 s allowed).
    let within = Duration::from_secs(15);
    for (kind, conns) in [
        ("silent SIP TCP", &mut silent_sip),
        ("stalled TLS handshake", &mut stalled_tls),
        ("half-sent HTTP request", &mut half_http),
        ("crowd", &mut crowd),
    ] {
        let checks = conns.iter_mut().map(|c| closed_within(c, within));
        let closed = futures::future::join_all(checks).await;
        let open = closed.iter().filter(|c| !**c).count();
        assert_eq!(open, 0, "{open} {kind} connections were never closed");
    }
    drop((silent_sip, stalled_tls, half_http, crowd, over));
    // The server let go of their descriptors.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.descriptors() > baseline + 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.descriptors() <= baseline + 20,
        "descriptors back near {baseline}: {}",
        server.descriptors()
    );
    assert_eq!(server.healthz().await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_client_that_never_reads_cannot_grow_the_servers_memory() {
    let server = Server::start(&[], None).await;
    let before = server.status_kib("VmRSS");
    let socket = TcpSocket::new_v4().expect("socket");
    // A small receive buffer: the kernel holds little of what the server sends.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(server.sip_tcp).await.expect("connect");
    let local = stream.local_addr().expect("addr");
    // OPTIONS with a long Call-ID, as fast as it will go, never reading the answers.
    let padding = "x".repeat(4000);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(60) {
        let msg = format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKo{sent}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:flood@127.0.0.1>;tag=f\r\nTo: <sip:127.0.0.1>\r\n\
             Call-ID: {padding}{sent}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(msg.as_bytes())).await {
            Ok(Ok(())) => sent += 1,
            // Reset by the server, or it stopped reading us: either way it gave up on us.
            Ok(Err(_)) | Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let peak = server.status_kib("VmHWM");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "a client that never reads: {sent} requests, RSS {before} KiB before, peak {peak} KiB"
    );
    // At most 1 MiB waits per connection, plus the socket buffers: 64 MiB is a wide margin
    // (unbounded, this grew by 380 MB in 25 s).
    assert!(
        grown_mib < 64,
        "the server grew by {grown_mib} MiB after {sent} requests"
    );
    assert!(
        closed,
        "the connection of a client that never reads is closed ({sent} requests sent)"
    );
    assert_eq!(server.healthz().await, Some(200));
    assert!(sip_answers(&server).await);
}

/// A caller over UDP: INVITE + ACK, never a BYE unless told.
pub(crate) struct Call {
    sip: UdpSocket,
    rtp: UdpSocket,
    to_tag: String,
    call_id: String,
}

impl Call {
    pub(crate) async fn place(server: SocketAddr, room: &str, n: u32) -> (Call, u16) {
        let sip = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut call = Call {
            sip,
            rtp,
            to_tag: String::new(),
            call_id: format!("flood-{n}"),
        };
        let local = call.sip.local_addr().expect("addr");
        let port = call.rtp.local_addr().expect("addr").port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        );
        let invite = format!(
            "INVITE sip:{room}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKi{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller{n}@127.0.0.1>;tag=c{n}\r\nTo: <sip:{room}@127.0.0.1>\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller{n}@{local}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            call.call_id,
            sdp.len()
        );
        call.sip
            .send_to(invite.as_bytes(), server)
            .await
            .expect("send");
        let status = call.final_response(server, room, n).await;
        (call, status)
    }

    async fn final_response(&mut self, server: SocketAddr, room: &str, n: u32) -> u16 {
        let mut buf = vec![0u8; 65_536];
        let local = self.sip.local_addr().expect("addr");
        loop {
            let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_secs(10), self.sip.recv_from(&mut buf)).await
            else {
                return 0;
            };
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            let Some(status) = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|t| t.get(..3))
                .and_then(|s| s.parse::<u16>().ok())
            else {
                continue;
            };
            if status < 200 {
                continue;
            }
            if status == 200 {
                self.to_tag = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                    .and_then(|l| l.split(";tag=").nth(1))
                    .map(|t| t.trim().to_owned())
                    .unwrap_or_default();
                let ack = format!(
                    "ACK sip:{room}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKa{n};rport\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:caller{n}@127.0.0.1>;tag=c{n}\r\n\
                     To: <sip:{room}@127.0.0.1>;tag={}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                    self.to_tag, self.call_id
                );
                self.sip
                    .send_to(ack.as_bytes(), server)
                    .await
                    .expect("send");
            }
            return status;
        }
    }

    pub(crate) async fn bye(&self, server: SocketAddr, room: &str, n: u32) {
        let local = self.sip.local_addr().expect("addr");
        let bye = format!(
            "BYE sip:{room}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKb{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller{n}@127.0.0.1>;tag=c{n}\r\n\
             To: <sip:{room}@127.0.0.1>;tag={}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            self.to_tag, self.call_id
        );
        let _ = self.sip.send_to(bye.as_bytes(), server).await;
    }

    /// RTP packets that reach this call within `within`.
    async fn media_received(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while let Ok(Ok(_)) = tokio::time::timeout_at(deadline, self.rtp.recv_from(&mut buf)).await
        {
            n += 1;
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_descriptor_limit_new_work_is_refused_and_the_rest_keeps_working() {
    raise_own_descriptor_limit();
    let server = Server::start(&[], Some(256)).await;
    let admin = server.admin_token().await;
    for (number, name) in [("8001", "Quiet"), ("8002", "Flooded")] {
        let made = client()
            .post(format!("{}/api/v1/rooms", server.base()))
            .bearer_auth(&admin)
            .json(&json!({ "number": number, "name": name }))
            .send()
            .await
            .expect("create room");
        assert_eq!(made.status().as_u16(), 201);
    }
    // A call that is up before the flood: alone in the room, it hears music.
    let (existing, status) = Call::place(server.sip_udp, "8001", 0).await;
    assert_eq!(status, 200);
    assert!(existing.media_received(Duration::from_secs(2)).await > 10);

    // Flood: SIP TCP connections from several addresses, and calls that never hang up.
    let mut held = Vec::new();
    for i in 0..400u32 {
        let from = IpAddr::from([127, 0, 3, (i % 4) as u8 + 1]);
        if let Ok(c) = connect_from_within(from, server.sip_tcp).await {
            held.push(c);
        }
    }
    let mut calls = Vec::new();
    let mut refused = 0;
    for n in 1..=300u32 {
        let (call, status) = Call::place(server.sip_udp, "8002", n).await;
        match status {
            200 => calls.push((n, call)),
            503 => refused += 1,
            other => panic!("call {n}: {other}"),
        }
    }
    assert!(refused > 0, "new calls are refused with 503 near the limit");
    // New SIP connections are closed at once; most of the flood was never taken on.
    let mut late = connect_from_within(IpAddr::from([127, 0, 3, 9]), server.sip_tcp)
        .await
        .expect("connects (then is closed)");
    assert!(closed_within(&mut late, Duration::from_secs(2)).await);
    assert!(server.descriptors() <= 256);
    // What must keep working does.
    for _ in 0..5 {
        assert_eq!(
            server.healthz().await,
            Some(200),
            "/healthz under the flood"
        );
    }
    let token = server.admin_token().await;
    assert!(!token.is_empty(), "the console's login works");
    assert!(
        existing.media_received(Duration::from_secs(2)).await > 10,
        "the existing call's media still flows"
    );
    // The load goes: the server takes new work again.
    drop(held);
    for (n, call) in &calls {
        call.bye(server.sip_udp, "8002", *n).await;
    }
    drop(late);
    // Both kinds of new work come back. Each is probed until the deadline: a call just taken
    // counts its sockets until the next descriptor sample, so a connection right after it
    // may still be refused for a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut call_taken = false;
    let mut connection_taken = false;
    let mut probe = 1000;
    while Instant::now() < deadline && !(call_taken && connection_taken) {
        if !call_taken {
            probe += 1;
            let (call, status) = Call::place(server.sip_udp, "8002", probe).await;
            if status == 200 {
                call.bye(server.sip_udp, "8002", probe).await;
                call_taken = true;
            }
        }
        if !connection_taken
            && let Ok(mut fresh) =
                connect_from_within(IpAddr::from([127, 0, 3, 9]), server.sip_tcp).await
        {
            connection_taken = !closed_within(&mut fresh, Duration::from_millis(500)).await;
        }
        if !(call_taken && connection_taken) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(
        call_taken,
        "new calls are taken again once the load is gone"
    );
    assert!(connection_taken, "new SIP connections are taken again");
    existing.bye(server.sip_udp, "8001", 0).await;
}
