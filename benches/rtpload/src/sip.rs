//! Conclave front end: each member places a SIP call over UDP into a room number, offering
//! one codec (PCMU, or Opus/48000/2 on payload type 111) and telephone-event, with the
//! project's sans-IO call layer (`conclave_sip::ua::UserAgent`) on one signalling socket.
//! Calls are placed at a bounded rate with a bounded number unanswered at once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use conclave_sip::headers::Transport;
use conclave_sip::offer_answer::{Codec as SdpCodec, Direction, LocalMedia, MediaConfig};
use conclave_sip::transaction::{Config, Peer};
use conclave_sip::ua::{CallId, Dial, LocalAddress, UaConfig, UaEvent, UserAgent};
use conclave_sip::{Host, NameAddr, Uri};

use crate::engine::{Codec, Command, Setup};
use crate::frontend::SetupTimes;

#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    pub room: String,
    /// Members spread over this many rooms, numbered from `room` up.
    pub rooms: u32,
    pub local_ip: Ipv4Addr,
    pub codec: Codec,
    /// Calls placed per second.
    pub rate: f64,
    /// Calls unanswered at once, at most.
    pub in_flight: usize,
    /// Give up on set-up after this long.
    pub setup_timeout: Duration,
    /// Members 0..n offer video too, and their terminals go here once answered.
    pub video: Option<(usize, Sender<crate::video::Terminal>)>,
}

pub fn spawn(
    opts: Options,
    endpoints: Vec<SocketAddrV4>,
    events: Sender<Setup>,
    commands: Receiver<Command>,
) -> JoinHandle<Result<SetupTimes>> {
    std::thread::spawn(move || run(opts, endpoints, events, commands))
}

enum CallState {
    Dialing(usize, Instant),
    Up(usize),
}

fn run(
    opts: Options,
    endpoints: Vec<SocketAddrV4>,
    events: Sender<Setup>,
    commands: Receiver<Command>,
) -> Result<SetupTimes> {
    let sock = UdpSocket::bind((opts.local_ip, 0)).context("binding the SIP socket")?;
    let local = sock.local_addr()?;
    let codec = match opts.codec {
        Codec::Pcmu => SdpCodec::Pcmu,
        Codec::Opus => SdpCodec::Opus,
    };
    let cfg = UaConfig {
        locals: vec![LocalAddress {
            transport: Transport::Udp,
            host: Host::Ip(IpAddr::V4(opts.local_ip)),
            port: local.port(),
        }],
        contact_user: "rtpload".into(),
        media: MediaConfig {
            codecs: vec![codec],
            telephone_event: true,
            ..MediaConfig::default()
        },
        // no re-INVITEs in the middle of a measurement
        session_timer: None,
        ring_timeout: Duration::from_secs(30),
        user_agent: "rtpload".into(),
        endpoint: Config::default(),
    };
    let mut ua = UserAgent::new(cfg, 0x5eed ^ local.port() as u64);
    let dest = Peer::new(Transport::Udp, opts.server);
    let targets = (0..opts.rooms.max(1))
        .map(|i| {
            let room = match opts.room.parse::<u64>() {
                Ok(first) if opts.rooms > 1 => (first + u64::from(i)).to_string(),
                _ => opts.room.clone(),
            };
            Uri::parse(&format!("sip:{room}@{}", opts.server))
                .map_err(|e| anyhow::anyhow!("room URI: {e:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let deadline = started + opts.setup_timeout;
    let interval = Duration::from_secs_f64(1.0 / opts.rate.max(0.1));
    let mut calls: HashMap<CallId, CallState> = HashMap::new();
    let mut times = SetupTimes::default();
    let mut next = 0usize;
    let mut next_at = started;
    let mut unresolved = 0usize;
    let mut done_sent = false;
    let mut hanging_up: Option<(Instant, Vec<CallId>, usize)> = None;
    let mut buf = vec![0u8; 65536];
    // the video terminals' sockets, from the offer to the answer
    let mut video_sockets: HashMap<usize, UdpSocket> = HashMap::new();
    loop {
        let now = Instant::now();
        // place calls
        if hanging_up.is_none() {
            while next < endpoints.len()
                && next_at <= now
                && unresolved < opts.in_flight
                && now < deadline
            {
                let from = NameAddr::parse(&format!("<sip:load{next}@{}>", opts.local_ip))
                    .map_err(|e| anyhow::anyhow!("from: {e:?}"))?;
                let video_port = match &opts.video {
                    Some((n, _)) if next < *n => {
                        let v = UdpSocket::bind((opts.local_ip, 0))
                            .context("binding a video socket")?;
                        let port = v.local_addr()?.port();
                        video_sockets.insert(next, v);
                        Some(port)
                    }
                    _ => None,
                };
                let media = LocalMedia {
                    video_port,
                    addr: IpAddr::V4(*endpoints[next].ip()),
                    port: endpoints[next].port(),
                    session_id: next as u64 + 1,
                    session_version: 1,
                    srtp_key: None,
                    srtp_policy: None,
                    direction: Direction::SendRecv,
                };
                let target = &targets[next % targets.len()];
                let d = Dial {
                    target: target.clone(),
                    dest,
                    from,
                    to: NameAddr::new(target.clone()),
                    media,
                    credentials: None,
                    headers: vec![],
                    ring_timeout: None,
                };
                match ua.dial(now, d) {
                    Ok(call) => {
                        calls.insert(call, CallState::Dialing(next, now));
                        unresolved += 1;
                    }
                    Err(e) => {
                        let _ = events.send(Setup::Failed {
                            member: next,
                            reason: format!("dial: {e}"),
                        });
                        times.failed += 1;
                    }
                }
                next += 1;
                next_at += interval;
            }
            if !done_sent && ((next == endpoints.len() && unresolved == 0) || now >= deadline) {
                for (_, st) in calls.iter() {
                    if let CallState::Dialing(m, _) = st {
                        let _ = events.send(Setup::Failed {
                            member: *m,
                            reason: "no answer before the set-up timeout".into(),
                        });
                    }
                }
                for m in next..endpoints.len() {
                    let _ = events.send(Setup::Failed {
                        member: m,
                        reason: "not called: set-up timeout".into(),
                    });
                }
                let _ = events.send(Setup::Done);
                done_sent = true;
            }
            match commands.try_recv() {
                Ok(Command::HangUpAll) | Err(TryRecvError::Disconnected) => {
                    let all: Vec<_> = calls.keys().copied().collect();
                    hanging_up = Some((now, all, 0usize));
                }
                Err(TryRecvError::Empty) => {}
            }
        }
        // hang up, 1000 calls a second at most, then wait 10 s for the last answers
        if let Some((since, pending, hung)) = hanging_up.as_mut() {
            let allowed = ((now - *since).as_secs_f64() * 1000.0) as usize + 1;
            while *hung < allowed {
                let Some(call) = pending.pop() else { break };
                *hung += 1;
                if ua.hangup(now, call).is_err() {
                    calls.remove(&call);
                }
            }
            let limit = Duration::from_secs(10) + Duration::from_millis(endpoints.len() as u64);
            if calls.is_empty() || now - *since > limit {
                times.still_up_at_end = calls.len();
                return Ok(times);
            }
        }
        if ua.poll_timeout().is_some_and(|t| t <= now) {
            ua.handle_timeout(now);
        }
        while let Some(t) = ua.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.peer.addr);
        }
        while let Some(ev) = ua.poll_event() {
            match ev {
                UaEvent::Answered { call, media } => {
                    if let Some(CallState::Dialing(m, at)) = calls.get(&call) {
                        let (m, at) = (*m, *at);
                        unresolved -= 1;
                        match media.remote {
                            Some(SocketAddr::V4(remote)) => {
                                times.ms.push((now - at).as_secs_f64() * 1000.0);
                                calls.insert(call, CallState::Up(m));
                                if let (Some(socket), Some((_, tx))) =
                                    (video_sockets.remove(&m), &opts.video)
                                {
                                    match media
                                        .video
                                        .as_ref()
                                        .and_then(|v| v.remote.map(|r| (v, r)))
                                    {
                                        Some((v, remote)) => {
                                            let _ = tx.send(crate::video::Terminal {
                                                member: m,
                                                socket,
                                                remote,
                                                payload_type: v.payload_type,
                                                mode0: v.packetization_mode == 0,
                                            });
                                        }
                                        None => times.video_refused += 1,
                                    }
                                }
                                let _ = events.send(Setup::Ready {
                                    member: m,
                                    remote,
                                    payload_type: media.payload_type,
                                });
                            }
                            other => {
                                times.failed += 1;
                                let _ = events.send(Setup::Failed {
                                    member: m,
                                    reason: format!(
                                        "answer without an IPv4 media address: {other:?}"
                                    ),
                                });
                                let _ = ua.hangup(now, call);
                            }
                        }
                    }
                }
                UaEvent::Ended { call, reason } => match calls.remove(&call) {
                    Some(CallState::Dialing(m, _)) => {
                        unresolved -= 1;
                        times.failed += 1;
                        let _ = events.send(Setup::Failed {
                            member: m,
                            reason: format!("{reason:?}"),
                        });
                    }
                    Some(CallState::Up(m)) if hanging_up.is_none() => {
                        times.dropped += 1;
                        let _ = events.send(Setup::Ended {
                            member: m,
                            reason: format!("{reason:?}"),
                        });
                    }
                    _ => {}
                },
                UaEvent::Request { tx, request, .. } => {
                    // out-of-dialog OPTIONS and the like: a phone says yes
                    let resp = request.response(200, "OK", None);
                    let _ = ua.respond(now, tx, resp);
                }
                _ => {}
            }
        }
        while let Some(t) = ua.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.peer.addr);
        }
        // wait for input until the next thing to do: 5 ms at most while calls are placed
        // or hung up, 50 ms while the media runs (fewer wake-ups beside the measurement)
        let busy = !done_sent || hanging_up.is_some();
        let mut wait = Duration::from_millis(if busy { 5 } else { 50 });
        if let Some(t) = ua.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if next < endpoints.len() && hanging_up.is_none() {
            wait = wait.min(next_at.saturating_duration_since(now));
        }
        sock.set_read_timeout(Some(wait.max(Duration::from_micros(200))))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let now = Instant::now();
                ua.handle_datagram(now, &buf[..n], Peer::new(Transport::Udp, from));
                // take what else is queued without waiting
                sock.set_nonblocking(true)?;
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    ua.handle_datagram(now, &buf[..n], Peer::new(Transport::Udp, from));
                }
                sock.set_nonblocking(false)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(e).context("reading the SIP socket"),
        }
    }
}
