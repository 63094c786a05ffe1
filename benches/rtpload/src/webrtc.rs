//! Conclave's browser front end: each member is a WebRTC peer (str0m, as a browser would
//! be: ICE controlling agent, DTLS client or server as the answer says, SRTP) that joins
//! with `POST /api/v1/join` — an SDP offer with one sendrecv Opus audio section and a host
//! candidate at the member's own address — and takes the server's answer.
//!
//! Signalling runs on this front end's thread; the peer itself ([`Peer`]) is then handed to
//! the media engine, which owns every socket: it feeds the peer what arrives at the member's
//! address, sends what the peer transmits (STUN, DTLS, SRTP, RTCP) in its batches, writes
//! the member's Opus frames through the peer (str0m's RTP mode: the engine already numbers
//! and times its packets) and analyses the plain RTP that comes out, as for a phone. A member
//! counts as set up once ICE and DTLS are through (str0m's `Connected`).
//!
//! Each member's HTTP request comes from its own loopback address too (127.64.x.y), as
//! distinct browsers' would: the server caps browsers per address.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::engine::{Command, Setup};
use crate::frontend::SetupTimes;

#[derive(Debug, Clone)]
pub struct Options {
    /// The server's HTTP address (the API under /api/v1).
    pub http: SocketAddr,
    /// The room's number.
    pub room: String,
    /// Joins per second.
    pub rate: f64,
    /// Give up on set-up after this long.
    pub setup_timeout: Duration,
}

/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn spawn(
    opts: Options,
    endpoints: Vec<SocketAddrV4>,
    events: Sender<Setup>,
    commands: Receiver<Command>,
) -> JoinHandle<Result<SetupTimes>> {
    std::thread::spawn(move || {
        let r = run(&opts, &endpoints, &events, &commands);
        if let Err(e) = &r {
            // the engine must not wait for set-up that will not come
            for member in 0..endpoints.len() {
                let _ = events.send(Setup::Failed {
                    member,
                    reason: format!("webrtc: {e:#}"),
                });
            }
            let _ = events.send(Setup::Done);
        }
        r
    })
}

fn run(
    opts: &Options,
    endpoints: &[SocketAddrV4],
    events: &Sender<Setup>,
    commands: &Receiver<Command>,
) -> Result<SetupTimes> {
    // one certificate for every member: a key generation per member would only load us
    let cert = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| anyhow!("no DTLS certificate could be made"))?;
    let mut times = SetupTimes::default();
    let mut tokens: Vec<(SocketAddrV4, String)> = Vec::new();
    let start = Instant::now();
    let deadline = start + opts.setup_timeout;
    for (member, &local) in endpoints.iter().enumerate() {
        // paced: member i joins at i / rate
        let due = start + Duration::from_secs_f64(member as f64 / opts.rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if Instant::now() >= deadline {
            let _ = events.send(Setup::Failed {
                member,
                reason: "not tried: the set-up timeout passed".into(),
            });
            times.failed += 1;
            continue;
        }
        let asked = Instant::now();
        match join(opts, member, local, &cert) {
            Ok((peer, token)) => {
                times.ms.push(asked.elapsed().as_secs_f64() * 1000.0);
                tokens.push((local, token));
                events
                    .send(Setup::Browser { member, peer })
                    .context("the engine is gone")?;
            }
            Err(e) => {
                times.failed += 1;
                let _ = events.send(Setup::Failed {
                    member,
                    reason: format!("{e:#}"),
                });
            }
        }
    }
    let _ = events.send(Setup::Done);
    // hold on until the engine is done, then leave (bounded: the engine's run is)
    loop {
        match commands.recv_timeout(Duration::from_secs(1)) {
            Ok(Command::HangUpAll) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    for (local, token) in &tokens {
        let path = "/api/v1/join/me";
        if http(opts.http, *local, "DELETE", path, Some(token), None).is_err() {
            times.still_up_at_end += 1;
        }
    }
    Ok(times)
}

/// One member's join: an offer, the server's answer, a peer ready to connect.
fn join(
    opts: &Options,
    member: usize,
    local: SocketAddrV4,
    cert: &DtlsCert,
) -> Result<(Box<Peer>, String)> {
    let now = Instant::now();
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .set_dtls_cert(cert.clone())
        .build(now);
    let candidate = Candidate::host(SocketAddr::V4(local), "udp")
        .map_err(|e| anyhow!("our host candidate: {e}"))?;
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending): (_, SdpPendingOffer) =
        api.apply().ok_or_else(|| anyhow!("str0m made no offer"))?;
    let body = json!({
        "number": opts.room,
        "name": format!("browser {member}"),
        "sdp": offer.to_sdp_string(),
    });
    let answer = http(opts.http, local, "POST", "/api/v1/join", None, Some(&body))?;
    let sdp = answer["sdp"]
        .as_str()
        .ok_or_else(|| anyhow!("the join's answer has no sdp"))?;
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the join's answer has no token"))?
        .to_owned();
    let sdp = SdpAnswer::from_sdp_string(sdp).map_err(|e| anyhow!("the server's SDP: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, sdp)
        .map_err(|e| anyhow!("accepting the server's answer: {e}"))?;
    let pt = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == str0m::format::Codec::Opus)
        .map(|p| p.pt())
        .ok_or_else(|| anyhow!("no Opus in the negotiated codecs"))?;
    Ok((
        Box::new(Peer {
            rtc,
            mid,
            pt,
            local: SocketAddr::V4(local),
            remote: None,
            seq: None,
            due: Some(now),
            connected: false,
            newly_connected: false,
            closed: None,
        }),
        token,
    ))
}

/// One HTTP/1.1 exchange from `from`'s address (a fresh connection; JSON either way).
fn http(
    server: SocketAddr,
    from: SocketAddrV4,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value> {
    let mut s = connect_from(from, server).with_context(|| format!("connecting to {server}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut raw)
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("{method} {path}: no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("{method} {path}: bad status line"))?;
    let content = &raw[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        bail!("{method} {path}: a chunked answer (not expected)");
    }
    if !(200..300).contains(&status) {
        bail!(
            "{method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(content)
        );
    }
    if content.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(content).with_context(|| format!("{method} {path}: JSON"))
}

/// A TCP connection from a given local address (std cannot bind before connecting).
fn connect_from(from: SocketAddrV4, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other(
            "the server's HTTP address must be IPv4",
        ));
    };
    // SAFETY: plain socket calls on a descriptor we own until TcpStream takes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        // bounds connect() too (Linux): a full backlog would otherwise block for minutes
        let tv = libc::timeval {
            tv_sec: HTTP_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            size_of::<libc::timeval>() as libc::socklen_t,
        );
        let bind = crate::net::sockaddr(SocketAddrV4::new(*from.ip(), 0));
        if libc::bind(
            fd,
            &bind as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let dst = crate::net::sockaddr(to);
        if libc::connect(
            fd,
            &dst as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// A member's WebRTC peer, driven by the engine (see the module documentation).
pub struct Peer {
    rtc: Rtc,
    mid: Mid,
    pt: Pt,
    /// Our host candidate: the member's address.
    local: SocketAddr,
    /// Where str0m last sent to (the server's candidate).
    remote: Option<SocketAddrV4>,
    /// The next extended sequence number (from the engine's first one).
    seq: Option<u64>,
    /// When str0m wants its next timeout.
    due: Option<Instant>,
    connected: bool,
    newly_connected: bool,
    /// Why the peer ended, once it has.
    closed: Option<String>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

/// A datagram the peer wants sent, and where.
pub type Transmit<'a> = &'a mut dyn FnMut(SocketAddrV4, &[u8]);

impl Peer {
    /// The negotiated Opus payload type.
    pub fn payload_type(&self) -> u8 {
        *self.pt
    }

    /// Whether str0m's timeout has come.
    pub fn due(&self, now: Instant) -> bool {
        self.closed.is_none() && self.due.is_some_and(|d| d <= now)
    }

    /// ICE and DTLS got through since the last call (once).
    pub fn take_connected(&mut self) -> Option<SocketAddrV4> {
        if !std::mem::take(&mut self.newly_connected) {
            return None;
        }
        self.remote
    }

    /// Why the peer ended, when it has.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    pub fn handle_timeout(&mut self, now: Instant, out: Transmit, rtp: &mut Vec<Vec<u8>>) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.closed = Some(format!("str0m timeout: {e}"));
            return;
        }
        self.drain(out, rtp);
    }

    /// A datagram that arrived at the member's address.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        data: &[u8],
        out: Transmit,
        rtp: &mut Vec<Vec<u8>>,
    ) {
        if self.closed.is_some() {
            return;
        }
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: SocketAddr::V4(from),
                destination: self.local,
                contents,
            },
        );
        // what str0m refuses (a stray datagram) is not the member's
        if self.rtc.handle_input(input).is_ok() {
            self.drain(out, rtp);
        }
    }

    /// Sends one Opus frame with the engine's sequence number and timestamp, and the audio
    /// level a browser would put on it (RFC 6464: -dBov, and whether it is voice).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        level: (i8, bool),
        out: Transmit,
    ) {
        if self.closed.is_some() || !self.connected {
            return;
        }
        // extended from the engine's first number: str0m's SRTP needs the rollovers
        let next = match self.seq {
            Some(prev) => prev + u64::from(seq.wrapping_sub(prev as u16)),
            None => u64::from(seq),
        };
        self.seq = Some(next);
        let ext = ExtensionValues {
            audio_level: Some(level.0),
            voice_activity: Some(level.1),
            ..Default::default()
        };
        let write = RtpWrite::new(self.pt, SeqNo::from(next), timestamp, now, payload.to_vec())
            .marker(marker)
            .ext_vals(ext);
        match self.rtc.direct_api().stream_tx_by_mid(self.mid, None) {
            Some(tx) => tx.write_rtp(write),
            None => {
                self.closed = Some("no stream to send on".into());
                return;
            }
        }
        let mut rtp = Vec::new();
        self.drain(out, &mut rtp);
        // str0m may hold the packet for a timeout that is already due: let it go now, so
        // it leaves with its send slot (and a click's time stays true)
        if self.due(now) {
            self.handle_timeout(now, out, &mut rtp);
        }
    }

    fn drain(&mut self, out: Transmit, rtp: &mut Vec<Vec<u8>>) {
        // bounded: str0m ends every round of output with a timeout
        for _ in 0..10_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.due = Some(at);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if let SocketAddr::V4(to) = t.destination {
                        self.remote = Some(to);
                        out(to, &t.contents);
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.newly_connected = true;
                    }
                    Event::RtpPacket(p) => rtp.push(plain_rtp(&p)),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.closed = Some("ICE disconnected".into());
                        return;
                    }
                    _ => {}
                },
                Err(e) => {
                    self.closed = Some(format!("str0m: {e}"));
                    return;
                }
            }
        }
        self.closed = Some("str0m's output did not end".into());
    }
}

/// A received packet as plain RTP bytes for the analysis (no extensions: it reads none).
fn plain_rtp(p: &str0m::rtp::RtpPacket) -> Vec<u8> {
    let h = &p.header;
    let mut b = Vec::with_capacity(12 + p.payload.len());
    b.push(0x80);
    b.push((u8::from(h.marker) << 7) | (*h.payload_type & 0x7f));
    b.extend_from_slice(&h.sequence_number.to_be_bytes());
    b.extend_from_slice(&h.timestamp.to_be_bytes());
    b.extend_from_slice(&(*h.ssrc).to_be_bytes());
    b.extend_from_slice(&p.payload);
    b
}
