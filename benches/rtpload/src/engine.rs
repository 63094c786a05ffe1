//! The media engine shared by both front ends: N members, each its own RTP endpoint,
//! sending a 20 ms packet on a fixed clock and analysing what it receives.
//!
//! One thread does it all, waking every 2 ms on an absolute CLOCK_MONOTONIC sleep: it sends
//! for the members of that slot (member i sends in slot i mod 10, so the N streams are
//! spread over the 20 ms as real phones' would be, not one burst), then drains what has
//! arrived with `recvmmsg` (epoll, polled without waiting, says which sockets have input).
//! It never wakes for a packet: what arrives waits at most a slot in the socket, and the
//! kernel's receive timestamp (SO_TIMESTAMPNS) dates every packet, so the generator's own
//! scheduling counts neither as a gap nor as a delay.
//!
//! Two ways to give members their endpoints ([`Sockets`]):
//! * `Shared` (the default): member i has its own loopback address (127.64.0.0 + i + 1) and
//!   all members share one UDP port on one socket. Each member is still a distinct source
//!   and destination for the server (symmetric RTP and latching see N peers), but sends go
//!   out in batches with `sendmmsg` (the source address of each datagram set with
//!   IP_PKTINFO) and receives come in batches with `recvmmsg` (the destination address
//!   says whose it is): a few system calls per slot instead of two per packet.
//! * `PerMember`: member i has its own socket on 127.0.0.1 (or `--local-ip`) and an
//!   ephemeral port; one `sendto` per packet, `recvmmsg` per ready socket. Costs the
//!   generator about twice as much CPU; for servers that must see one address.
//!
//! Roles: members 0..K talk (tone k), member K clicks (a 40 ms burst every click period,
//! silence otherwise), everyone else sends silence, as a phone does (G.711 silence samples,
//! or Opus-encoded silence every 20 ms, no DTX). Every member's stream is checked for gaps
//! and for silent frames; a sample of members (all talkers, the clicker and `decode`
//! listeners spread over the room) is decoded: tones heard, and clicks found for the
//! server-added delay.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use conclave_media::codec::{AudioDecoder, AudioEncoder, CodecConfig, CodecKind, g711};
use conclave_media::dsp::{goertzel_power, tone};
use conclave_media::rtp::{RtpPacket, looks_like_rtcp};

use crate::analysis::{ClickFinder, GapCounts, GapTracker, Heard, ToneMeter, click_before};
use crate::net;
use crate::webrtc::Peer;

/// Packet time.
pub const PTIME: Duration = Duration::from_millis(20);
/// Send slots per packet time.
const SLOTS: u64 = 10;
/// An arrival gap longer than this is a gap.
pub const MAX_GAP: Duration = Duration::from_millis(60);
/// Amplitude of each talker's tone and of the click.
const TONE_AMP: f64 = 6000.0;
const CLICK_AMP: f64 = 8000.0;
/// Tone present in a frame at 20 dB under its sent power.
const TONE_THRESHOLD: f64 = TONE_AMP * TONE_AMP / 4.0 / 100.0;
const CLICK_TRIGGER: f64 = CLICK_AMP * CLICK_AMP / 4.0 / 100.0;
/// Clicks last two packets.
const CLICK_FRAMES: u64 = 2;

/// How members get their RTP endpoints (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    Shared,
    PerMember,
}

/// The first member's address in `Shared` mode; member i has this + i.
const SHARED_BASE: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Opus,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Opus => "opus",
        }
    }
    fn kind(self) -> CodecKind {
        match self {
            Codec::Pcmu => CodecKind::Pcmu,
            Codec::Opus => CodecKind::Opus,
        }
    }
    /// PCM rate the generator works at (Opus at 48 kHz).
    pub fn rate(self) -> u32 {
        match self {
            Codec::Pcmu => 8000,
            Codec::Opus => 48000,
        }
    }
    /// RTP clock units per packet.
    pub fn units(self) -> u32 {
        self.kind().clock_rate() / 50
    }
    fn frame(self) -> usize {
        self.rate() as usize / 50
    }
    fn config(self) -> CodecConfig {
        CodecConfig::new(self.kind(), 48000)
    }
}

/// What the media does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub codec: Codec,
    pub tones: Vec<f64>,
    /// Click frequency and period; `None`: no click, no latency figure.
    pub click: Option<(f64, Duration)>,
    /// Listeners decoded besides the talkers and the clicker.
    pub decode: usize,
    /// Members' address in `PerMember` mode.
    pub local_ip: Ipv4Addr,
    pub sockets: Sockets,
}

/// From a front end to the engine.
#[derive(Debug)]
pub enum Setup {
    /// The member's call is up: send to `remote` with `payload_type`.
    Ready {
        member: usize,
        remote: SocketAddrV4,
        payload_type: u8,
    },
    /// A browser member has joined: its WebRTC peer, to connect (ICE, DTLS) and then send
    /// and receive through; the member is ready once it has connected.
    Browser { member: usize, peer: Box<Peer> },
    /// The member could not join.
    Failed { member: usize, reason: String },
    /// A member's call ended without our asking.
    Ended { member: usize, reason: String },
    /// Every member has been tried.
    Done,
}

/// From the engine to a front end.
#[derive(Debug)]
pub enum Command {
    /// Hang every call up and finish.
    HangUpAll,
}

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub setup_timeout: Duration,
    pub warmup: Duration,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Talker(usize),
    Clicker,
    Listener,
}

/// A decoded member's analysis.
struct Ear {
    decoder: Box<dyn AudioDecoder>,
    pcm: Vec<i16>,
    tones: ToneMeter,
    clicks: Option<ClickFinder>,
    /// Frames left to keep out of the tone analysis (a click is in them).
    skip: u32,
}

struct Member {
    fd: RawFd,
    /// Where the member listens (and sends from).
    local: SocketAddrV4,
    /// Datagrams the member's socket dropped for want of room, as last reported.
    drops: u32,
    role: Role,
    remote: Option<libc::sockaddr_in>,
    expected_pt: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    frames: u64,
    encoder: Option<Box<dyn AudioEncoder>>,
    gaps: GapTracker,
    silent_frames: u64,
    wrong_pt: u64,
    ear: Option<Box<Ear>>,
    ready_at: Option<Duration>,
    ended: Option<String>,
    failed: Option<String>,
    send_errors: u64,
    /// A browser member's WebRTC peer (its packets go through it).
    peer: Option<Box<Peer>>,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub members: usize,
    pub ready: usize,
    pub failed: Vec<String>,
    pub ended: Vec<String>,
    pub setup_s: f64,
    pub window_s: f64,
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    pub totals: GapCounts,
    pub members_clean: usize,
    pub members_with_gaps: Vec<(usize, GapCounts)>,
    pub members_silent: usize,
    pub silent_frames: u64,
    pub wrong_pt: u64,
    pub decoded: Vec<DecodedMember>,
    pub latency_ms: Vec<f64>,
    pub clicks_sent: usize,
    pub codec_delay_ms: f64,
    pub silence_payload: usize,
    pub generator_drops: u64,
    pub late_slots: u64,
    pub max_lateness_ms: f64,
    pub generator_cpu_s: f64,
    /// CPU time all cores were busy during the window, whoever used it.
    pub machine_busy_s: f64,
    /// CPU time the hypervisor gave to other machines during the window.
    pub steal_s: f64,
    pub server: Option<(net::ProcSample, net::ProcSample, net::ProcSample)>,
}

#[derive(Debug)]
pub struct DecodedMember {
    pub member: usize,
    pub role: Role,
    pub frames: u64,
    pub heard: Vec<Heard>,
    pub right: bool,
}

pub struct Engine {
    plan: Plan,
    members: Vec<Member>,
    /// The members' sockets (`Sockets::PerMember`).
    epoll: net::Epoll,
    batch: net::RecvBatch,
    /// The shared socket and its outgoing batch (`Sockets::Shared`).
    shared: Option<(RawFd, net::SendBatch)>,
    shared_drops: u32,
    /// Datagrams of the shared socket's batches the kernel refused.
    shared_send_errors: u64,
    /// Per-tone frames of talker audio (PCMU: µ-law bytes; Opus: PCM to encode), 1 s loop.
    tone_frames: Vec<Vec<Vec<u8>>>,
    tone_pcm: Vec<Vec<Vec<i16>>>,
    click_pcm: Vec<i16>,
    /// A frame of silence, for the clicker's encoder between clicks.
    zeros: Vec<i16>,
    silence: Vec<u8>,
    clicks_sent: Vec<f64>,
    codec_delay: f64,
    latency: Vec<f64>,
    counting: bool,
    packet: Vec<u8>,
    payload: Vec<u8>,
    /// Browser members handed over but not connected yet.
    connecting: usize,
    /// Plain RTP a peer gave back, for the analysis.
    peer_rtp: Vec<Vec<u8>>,
    /// Datagrams peers sent outside `send_slot` (answers, RTCP, timers' sends).
    peer_sent: u64,
}

impl Engine {
    /// Opens `n` member sockets and prepares the audio.
    pub fn new(plan: Plan, n: usize, talkers: usize) -> Result<Engine> {
        if talkers > plan.tones.len() {
            bail!("{talkers} talkers but only {} tones", plan.tones.len());
        }
        net::raise_nofile(n as u64 + 256).context("raising the open-file limit")?;
        net::tight_timer_slack();
        let epoll = net::Epoll::new(1024)?;
        let codec = plan.codec;
        let cfg = codec.config();
        let sender_cfg = sender_config(codec);
        let clicker = plan.click.is_some().then_some(talkers);
        // the sample of listeners to decode, spread over the room
        let first_listener = talkers + clicker.is_some() as usize;
        let listeners = n.saturating_sub(first_listener);
        let step = if plan.decode == 0 {
            usize::MAX
        } else {
            listeners.div_ceil(plan.decode).max(1)
        };
        let mut seed: u32 = 0x9e37_79b9;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut members = Vec::with_capacity(n);
        let shared = match plan.sockets {
            Sockets::Shared => {
                // room for two 20 ms rounds of everyone's packets
                let rcvbuf = (n * 2 * 2048).clamp(4 << 20, 256 << 20);
                let (fd, port) = net::udp_socket(plan.local_ip, rcvbuf, true)
                    .context("opening the shared socket")?;
                Some((fd, port))
            }
            Sockets::PerMember => None,
        };
        for i in 0..n {
            let (fd, local) = match shared {
                Some((fd, port)) => {
                    let ip = Ipv4Addr::from(u32::from(SHARED_BASE) + i as u32);
                    (fd, SocketAddrV4::new(ip, port))
                }
                None => {
                    let (fd, port) = net::udp_socket(plan.local_ip, 256 * 1024, false)
                        .with_context(|| format!("opening the socket of member {i}"))?;
                    epoll.add(fd, i as u64)?;
                    (fd, SocketAddrV4::new(plan.local_ip, port))
                }
            };
            let role = if i < talkers {
                Role::Talker(i)
            } else if Some(i) == clicker {
                Role::Clicker
            } else {
                Role::Listener
            };
            let decoded = match role {
                Role::Listener => (i - first_listener).is_multiple_of(step),
                _ => true,
            };
            let ear = if decoded {
                Some(Box::new(Ear {
                    decoder: cfg.decoder()?,
                    pcm: Vec::with_capacity(codec.frame()),
                    tones: ToneMeter::new(codec.rate(), &plan.tones, TONE_THRESHOLD),
                    clicks: plan
                        .click
                        .filter(|_| role != Role::Clicker)
                        .map(|(f, _)| ClickFinder::new(codec.rate(), f, CLICK_TRIGGER)),
                    skip: 0,
                }))
            } else {
                None
            };
            let encoder = match (codec, role) {
                (Codec::Opus, Role::Talker(_) | Role::Clicker) => Some(sender_cfg.encoder()?),
                _ => None,
            };
            members.push(Member {
                fd,
                local,
                drops: 0,
                role,
                remote: None,
                expected_pt: 0,
                ssrc: rnd(),
                seq: rnd() as u16,
                ts: rnd(),
                frames: 0,
                encoder,
                gaps: GapTracker::new(codec.units(), MAX_GAP.as_micros() as u64),
                silent_frames: 0,
                wrong_pt: 0,
                ear,
                ready_at: None,
                ended: None,
                failed: None,
                send_errors: 0,
                peer: None,
            });
        }
        let rate = codec.rate();
        let frame = codec.frame();
        let mut tone_frames = Vec::new();
        let mut tone_pcm = Vec::new();
        for &f in &plan.tones[..talkers] {
            // one second of the tone: an integer frequency loops exactly
            let pcm = tone(f, rate, rate as usize, TONE_AMP, 0);
            let frames: Vec<Vec<i16>> = pcm.chunks(frame).map(<[i16]>::to_vec).collect();
            tone_frames.push(
                frames
                    .iter()
                    .map(|f| {
                        let mut b = Vec::new();
                        g711::encode_ulaw(f, &mut b);
                        b
                    })
                    .collect(),
            );
            tone_pcm.push(frames);
        }
        let click_pcm = plan
            .click
            .map(|(f, _)| tone(f, rate, frame * CLICK_FRAMES as usize, CLICK_AMP, 0))
            .unwrap_or_default();
        // what a phone sends when nobody speaks: a steady encoder's silence frame
        let silence = match codec {
            Codec::Pcmu => vec![0xff; frame],
            Codec::Opus => {
                let mut enc = cfg.encoder()?;
                let zeros = vec![0i16; frame];
                let mut p = Vec::new();
                for _ in 0..50 {
                    p.clear();
                    enc.encode(&zeros, &mut p)?;
                }
                p
            }
        };
        let codec_delay = match plan.click {
            Some((f, _)) => own_codec_delay(codec, f)?,
            None => 0.0,
        };
        Ok(Engine {
            plan,
            members,
            epoll,
            batch: net::RecvBatch::new(if shared.is_some() { 256 } else { 8 }),
            shared: shared.map(|(fd, _)| (fd, net::SendBatch::new(1024))),
            shared_drops: 0,
            shared_send_errors: 0,
            tone_frames,
            tone_pcm,
            click_pcm,
            zeros: vec![0; frame],
            silence,
            clicks_sent: Vec::new(),
            codec_delay,
            latency: Vec::new(),
            counting: false,
            packet: Vec::with_capacity(1500),
            payload: Vec::with_capacity(1500),
            connecting: 0,
            peer_rtp: Vec::new(),
            peer_sent: 0,
        })
    }

    /// The members' RTP endpoints, in member order.
    pub fn endpoints(&self) -> Vec<SocketAddrV4> {
        self.members.iter().map(|m| m.local).collect()
    }

    /// Datagrams our sockets dropped for want of room, so far.
    fn drops(&self) -> u64 {
        self.shared_drops as u64 + self.members.iter().map(|m| m.drops as u64).sum::<u64>()
    }

    /// Runs set-up, warm-up and the counting window; then asks the front end to hang up.
    pub fn run(
        &mut self,
        timing: Timing,
        setup: &Receiver<Setup>,
        commands: &Sender<Command>,
        server_pid: Option<u32>,
    ) -> Result<Outcome> {
        let start = net::monotonic();
        let setup_deadline = start + timing.setup_timeout;
        let server_before = server_pid.map(net::proc_sample).transpose()?;
        let mut slot: u64 = 0;
        let mut tokens = Vec::new();
        let mut setup_done: Option<Duration> = None;
        let mut window: Option<(Duration, Duration)> = None;
        let mut at_window = None;
        let mut gen_cpu0 = 0.0;
        let mut busy0 = (0.0, 0.0);
        let mut late_slots = 0;
        let mut max_late = Duration::ZERO;
        let mut sent = 0u64;
        let mut drops0 = 0;
        let mut front_done = false;
        loop {
            let now = net::monotonic();
            // phases
            if setup_done.is_none() {
                loop {
                    match setup.try_recv() {
                        Ok(ev) => {
                            if self.on_setup(ev, now)? {
                                front_done = true;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            front_done = true;
                            break;
                        }
                    }
                }
                // browsers are set up once connected (ICE, DTLS), after their join
                if front_done && self.connecting == 0 {
                    setup_done = Some(now);
                }
                if setup_done.is_none() && now >= setup_deadline {
                    setup_done = Some(now);
                    self.give_up_connecting();
                }
                if let Some(done) = setup_done {
                    if self.members.iter().all(|m| m.ready_at.is_none()) {
                        // nobody to measure: report the failures at once
                        break;
                    }
                    let begin = done + timing.warmup;
                    window = Some((begin, begin + timing.window));
                }
            } else {
                while let Ok(ev) = setup.try_recv() {
                    self.on_setup(ev, now)?;
                }
            }
            if let Some((begin, end)) = window {
                if !self.counting && at_window.is_none() && now >= begin {
                    self.counting = true;
                    gen_cpu0 = net::own_cpu();
                    busy0 = net::machine_busy();
                    at_window = Some((now, server_pid.map(net::proc_sample).transpose()?));
                    late_slots = 0;
                    max_late = Duration::ZERO;
                    drops0 = self.drops();
                    sent = 0;
                    self.clicks_sent.clear();
                    self.latency.clear();
                }
                if self.counting && now >= end {
                    break;
                }
            }
            // sends due
            let next_due = loop {
                let due = start
                    + PTIME * (slot / SLOTS) as u32
                    + PTIME / SLOTS as u32 * (slot % SLOTS) as u32;
                if due > now {
                    break due;
                }
                let late = now - due;
                max_late = max_late.max(late);
                if late > Duration::from_millis(10) {
                    late_slots += 1;
                }
                sent += self.send_slot(slot % SLOTS)?;
                slot += 1;
            };
            // input
            if self.shared.is_some() {
                self.receive_shared(now)?;
                self.peer_timeouts(now);
                sent += std::mem::take(&mut self.peer_sent);
            } else {
                // bounded: every socket at most once or twice
                for _ in 0..self.members.len() / 1024 + 2 {
                    self.epoll.wait(0, &mut tokens)?;
                    for &t in &tokens {
                        self.receive(t as usize)?;
                    }
                    if tokens.len() < 1024 {
                        break;
                    }
                }
            }
            net::sleep_until(next_due);
        }
        let end = net::monotonic();
        // nothing was counted when the window never began (nobody set up)
        let (gen_cpu, busy) = if at_window.is_some() {
            let b = net::machine_busy();
            (net::own_cpu() - gen_cpu0, (b.0 - busy0.0, b.1 - busy0.1))
        } else {
            (0.0, (0.0, 0.0))
        };
        let server_after = server_pid.map(net::proc_sample).transpose()?;
        let (window_start, server_start) = at_window.unwrap_or((end, None));
        let close_at = net::realtime().as_micros() as u64;
        self.counting = false;
        for m in self.members.iter_mut().filter(|m| m.remote.is_some()) {
            m.gaps.close(close_at);
        }
        // stop sending and let the front end hang up
        for m in &mut self.members {
            m.remote = None;
        }
        let _ = commands.send(Command::HangUpAll);
        let mut o = self.outcome(start, setup_done.unwrap_or(end));
        o.window_s = (end - window_start).as_secs_f64();
        o.sent = sent;
        o.late_slots = late_slots;
        o.generator_drops = self.drops() - drops0;
        o.max_lateness_ms = max_late.as_secs_f64() * 1000.0;
        o.generator_cpu_s = gen_cpu;
        (o.machine_busy_s, o.steal_s) = busy;
        o.server = match (server_before, server_start, server_after) {
            (Some(a), Some(b), Some(c)) => Some((a, b, c)),
            _ => None,
        };
        Ok(o)
    }

    /// Returns true when the front end says every member was tried.
    fn on_setup(&mut self, ev: Setup, now: Duration) -> Result<bool> {
        match ev {
            Setup::Ready {
                member,
                remote,
                payload_type,
            } => {
                let m = self
                    .members
                    .get_mut(member)
                    .with_context(|| format!("front end named member {member}"))?;
                m.remote = Some(net::sockaddr(remote));
                m.expected_pt = payload_type;
                m.ready_at = Some(now);
            }
            Setup::Browser { member, peer } => {
                if self.shared.is_none() {
                    bail!("browser members need --sockets shared");
                }
                let m = self
                    .members
                    .get_mut(member)
                    .with_context(|| format!("front end named member {member}"))?;
                m.expected_pt = peer.payload_type();
                // m.remote stays unset (no media) until the peer has connected
                m.peer = Some(peer);
                self.connecting += 1;
            }
            Setup::Failed { member, reason } => {
                if let Some(m) = self.members.get_mut(member) {
                    m.failed = Some(reason);
                }
            }
            Setup::Ended { member, reason } => {
                if let Some(m) = self.members.get_mut(member) {
                    m.remote = None;
                    if self.counting || m.ended.is_none() {
                        m.ended = Some(reason);
                    }
                }
            }
            Setup::Done => return Ok(true),
        }
        Ok(false)
    }

    /// Sends one packet for each ready member of `slot`; returns how many were sent.
    fn send_slot(&mut self, slot: u64) -> Result<u64> {
        let codec = self.plan.codec;
        let click_every = self
            .plan
            .click
            .map(|(_, p)| (p.as_millis() / PTIME.as_millis()).max(CLICK_FRAMES as u128 + 1) as u64);
        let mut sent = 0;
        let frame = codec.frame();
        for i in (slot as usize..self.members.len()).step_by(SLOTS as usize) {
            let m = &mut self.members[i];
            let Some(remote) = m.remote else { continue };
            self.payload.clear();
            let mut click_start = false;
            let mut clicking = false;
            match (m.role, codec) {
                (Role::Talker(k), Codec::Pcmu) => {
                    let f = &self.tone_frames[k];
                    self.payload
                        .extend_from_slice(&f[m.frames as usize % f.len()]);
                }
                (Role::Talker(k), Codec::Opus) => {
                    let f = &self.tone_pcm[k];
                    if let Some(enc) = m.encoder.as_mut() {
                        enc.encode(&f[m.frames as usize % f.len()], &mut self.payload)?;
                    }
                }
                (Role::Clicker, _) => {
                    let phase = m.frames % click_every.unwrap_or(u64::MAX);
                    click_start = phase == 0;
                    clicking = phase < CLICK_FRAMES;
                    let pcm_frame: &[i16] = if phase < CLICK_FRAMES {
                        &self.click_pcm[phase as usize * frame..(phase as usize + 1) * frame]
                    } else {
                        &[]
                    };
                    match (codec, m.encoder.as_mut()) {
                        (Codec::Opus, Some(enc)) => {
                            let pcm = if pcm_frame.is_empty() {
                                &self.zeros
                            } else {
                                pcm_frame
                            };
                            enc.encode(pcm, &mut self.payload)?;
                        }
                        _ if pcm_frame.is_empty() => self.payload.extend_from_slice(&self.silence),
                        _ => g711::encode_ulaw(pcm_frame, &mut self.payload),
                    }
                }
                (Role::Listener, _) => self.payload.extend_from_slice(&self.silence),
            }
            if let Some(peer) = m.peer.as_mut() {
                // a browser: the frame goes through its peer (SRTP), with its audio level
                let Some((fd, batch)) = self.shared.as_mut() else {
                    continue;
                };
                if click_start {
                    let (ok, failed) = batch.flush(*fd);
                    sent += ok;
                    self.shared_send_errors += failed;
                    self.clicks_sent.push(net::realtime().as_secs_f64());
                }
                let level = match m.role {
                    // a 6000-amplitude tone: -18 dBov; the click (8000): -15
                    Role::Talker(_) => (-18, true),
                    Role::Clicker if clicking => (-15, true),
                    _ => (-127, false),
                };
                let src = *m.local.ip();
                let errors = &mut self.shared_send_errors;
                peer.send(
                    std::time::Instant::now(),
                    m.seq,
                    m.ts,
                    m.frames == 0,
                    &self.payload,
                    level,
                    &mut |to, data| {
                        if batch.is_full() {
                            let (ok, failed) = batch.flush(*fd);
                            sent += ok;
                            *errors += failed;
                        }
                        batch.push(data, src, &net::sockaddr(to));
                    },
                );
                if click_start {
                    let (ok, failed) = batch.flush(*fd);
                    sent += ok;
                    self.shared_send_errors += failed;
                }
                m.seq = m.seq.wrapping_add(1);
                m.ts = m.ts.wrapping_add(codec.units());
                m.frames += 1;
                continue;
            }
            let pt = m.expected_pt;
            self.packet.clear();
            self.packet.push(0x80);
            self.packet.push(if m.frames == 0 { 0x80 | pt } else { pt });
            self.packet.extend_from_slice(&m.seq.to_be_bytes());
            self.packet.extend_from_slice(&m.ts.to_be_bytes());
            self.packet.extend_from_slice(&m.ssrc.to_be_bytes());
            self.packet.extend_from_slice(&self.payload);
            match self.shared.as_mut() {
                Some((fd, batch)) => {
                    if click_start {
                        // the click leaves with this batch: flush it now, timed
                        let (ok, failed) = batch.flush(*fd);
                        sent += ok;
                        self.shared_send_errors += failed;
                        self.clicks_sent.push(net::realtime().as_secs_f64());
                    }
                    batch.push(&self.packet, *m.local.ip(), &remote);
                    if batch.is_full() || click_start {
                        let (ok, failed) = batch.flush(*fd);
                        sent += ok;
                        self.shared_send_errors += failed;
                    }
                }
                None => {
                    if click_start {
                        self.clicks_sent.push(net::realtime().as_secs_f64());
                    }
                    match net::send_to(m.fd, &self.packet, &remote) {
                        Ok(()) => sent += 1,
                        Err(_) => m.send_errors += 1,
                    }
                }
            }
            m.seq = m.seq.wrapping_add(1);
            m.ts = m.ts.wrapping_add(codec.units());
            m.frames += 1;
        }
        if let Some((fd, batch)) = self.shared.as_mut() {
            let (ok, failed) = batch.flush(*fd);
            sent += ok;
            self.shared_send_errors += failed;
        }
        Ok(sent)
    }

    /// Drains member `i`'s own socket (`Sockets::PerMember`).
    fn receive(&mut self, i: usize) -> Result<()> {
        let Engine {
            members,
            batch,
            plan,
            clicks_sent,
            latency,
            codec_delay,
            counting,
            ..
        } = self;
        let mut rx = Rx {
            codec: plan.codec,
            click: plan.click.map(|(f, p)| (f, p.as_secs_f64())),
            counting: *counting,
            clicks_sent,
            latency,
            codec_delay: *codec_delay,
        };
        let m = &mut members[i];
        loop {
            let n = batch.recv(m.fd)?;
            for k in 0..n {
                let d = batch.get(k);
                if let Some(drops) = d.drops {
                    m.drops = drops;
                }
                rx.datagram(m, d.data, d.at.unwrap_or_else(net::realtime));
            }
            if n < 8 {
                return Ok(());
            }
        }
    }

    /// Drains the shared socket; the destination address says whose each datagram is.
    fn receive_shared(&mut self, now: Duration) -> Result<()> {
        let Engine {
            members,
            batch,
            plan,
            clicks_sent,
            latency,
            codec_delay,
            counting,
            shared,
            shared_drops,
            shared_send_errors,
            connecting,
            peer_rtp,
            peer_sent,
            ..
        } = self;
        let Some((fd, send)) = shared else {
            return Ok(());
        };
        let instant = std::time::Instant::now();
        let mut rx = Rx {
            codec: plan.codec,
            click: plan.click.map(|(f, p)| (f, p.as_secs_f64())),
            counting: *counting,
            clicks_sent,
            latency,
            codec_delay: *codec_delay,
        };
        let base = u32::from(SHARED_BASE);
        // bounded: at most a second's worth of everyone's packets in one go
        for _ in 0..(members.len() / 5).max(4) {
            let n = batch.recv(*fd)?;
            for k in 0..n {
                let d = batch.get(k);
                if let Some(drops) = d.drops {
                    *shared_drops = drops;
                }
                let Some(i) = d.dst.and_then(|ip| u32::from(ip).checked_sub(base)) else {
                    continue;
                };
                let Some(m) = members.get_mut(i as usize) else {
                    continue;
                };
                let at = d.at.unwrap_or_else(net::realtime);
                let Some(peer) = m.peer.as_mut() else {
                    rx.datagram(m, d.data, at);
                    continue;
                };
                let Some(from) = d.src else { continue };
                let src = *m.local.ip();
                peer.receive(
                    instant,
                    from,
                    d.data,
                    &mut |to, data| {
                        if send.is_full() {
                            let (ok, failed) = send.flush(*fd);
                            *peer_sent += ok;
                            *shared_send_errors += failed;
                        }
                        send.push(data, src, &net::sockaddr(to));
                    },
                    peer_rtp,
                );
                for p in peer_rtp.drain(..) {
                    rx.datagram(m, &p, at);
                }
                peer_state(m, now, connecting);
            }
            if n < 256 {
                break;
            }
        }
        // answers (STUN, DTLS, RTCP) leave now, not with the next slot's sends
        let (ok, failed) = send.flush(*fd);
        *peer_sent += ok;
        *shared_send_errors += failed;
        Ok(())
    }

    /// Runs the browser peers' timeouts that have come (ICE checks, DTLS retransmissions,
    /// RTCP); bounded: each peer once.
    fn peer_timeouts(&mut self, now: Duration) {
        let Some((fd, send)) = self.shared.as_mut() else {
            return;
        };
        let instant = std::time::Instant::now();
        let errors = &mut self.shared_send_errors;
        let peer_sent = &mut self.peer_sent;
        for m in &mut self.members {
            let Some(peer) = m.peer.as_mut().filter(|p| p.due(instant)) else {
                continue;
            };
            let src = *m.local.ip();
            peer.handle_timeout(
                instant,
                &mut |to, data| {
                    if send.is_full() {
                        let (ok, failed) = send.flush(*fd);
                        *peer_sent += ok;
                        *errors += failed;
                    }
                    send.push(data, src, &net::sockaddr(to));
                },
                &mut self.peer_rtp,
            );
            // RTP comes out of received datagrams only; nothing to analyse here
            self.peer_rtp.clear();
            peer_state(m, now, &mut self.connecting);
        }
        let (ok, failed) = send.flush(*fd);
        *peer_sent += ok;
        *errors += failed;
    }

    /// Browsers still connecting when set-up time is over have failed.
    fn give_up_connecting(&mut self) {
        for m in &mut self.members {
            if m.peer.is_some() && m.ready_at.is_none() && m.failed.is_none() {
                m.failed = Some("ICE and DTLS did not connect within the set-up timeout".into());
                m.peer = None;
            }
        }
        self.connecting = 0;
    }
}

/// A browser's peer after it ran: connected (the member is ready, its media starts) or
/// ended (by the server, or broken).
fn peer_state(m: &mut Member, now: Duration, connecting: &mut usize) {
    let Some(peer) = m.peer.as_mut() else { return };
    if let Some(remote) = peer.take_connected()
        && m.ready_at.is_none()
    {
        m.remote = Some(net::sockaddr(remote));
        m.ready_at = Some(now);
        *connecting = connecting.saturating_sub(1);
    }
    if let Some(why) = peer.closed() {
        let why = format!("webrtc: {why}");
        if m.ready_at.is_none() {
            *connecting = connecting.saturating_sub(1);
            m.failed = Some(why);
        } else if m.remote.is_some() {
            m.ended = Some(why);
        }
        m.remote = None;
        m.peer = None;
    }
}

/// What the analysis of a received datagram needs besides its member.
struct Rx<'a> {
    codec: Codec,
    click: Option<(f64, f64)>,
    counting: bool,
    clicks_sent: &'a [f64],
    latency: &'a mut Vec<f64>,
    codec_delay: f64,
}

impl Rx<'_> {
    fn datagram(&mut self, m: &mut Member, data: &[u8], at: Duration) {
        let counting = self.counting;
        if looks_like_rtcp(data) {
            return;
        }
        let Ok(p) = RtpPacket::parse(data) else {
            return;
        };
        if p.payload_type() != m.expected_pt {
            // telephone-event or comfort noise: not audio
            if counting {
                m.wrong_pt += 1;
            }
            return;
        }
        m.gaps
            .on_packet(p.sequence(), p.timestamp(), at.as_micros() as u64, counting);
        let payload = p.payload();
        let silent = match self.codec {
            Codec::Pcmu => payload.iter().all(|&b| b & 0x7f >= 0x7c),
            Codec::Opus => payload.len() <= 8,
        };
        if counting && silent {
            m.silent_frames += 1;
        }
        let Some(ear) = m.ear.as_mut() else { return };
        ear.pcm.clear();
        if ear.decoder.decode(payload, &mut ear.pcm).is_err() {
            return;
        }
        if let Some((freq, period)) = self.click {
            if let Some(finder) = ear.clicks.as_mut()
                && let Some(onset) = finder.on_frame(&ear.pcm, at.as_secs_f64())
                && counting
                && let Some(sent) = click_before(self.clicks_sent, onset, period * 0.8)
            {
                self.latency
                    .push((onset - sent - self.codec_delay) * 1000.0);
            }
            if goertzel_power(&ear.pcm, self.codec.rate(), freq) >= CLICK_TRIGGER {
                ear.skip = 2;
            }
        }
        if ear.skip > 0 {
            ear.skip -= 1;
        } else if counting {
            ear.tones.on_frame(&ear.pcm);
        }
    }
}

/// The encoder of talkers and the clicker: the project's, at a lower complexity than its
/// default (9), which halves the generator's CPU for the same tones. The silence every other
/// member sends is the project's default encoder's (see `silence` in [`Engine::new`]).
fn sender_config(codec: Codec) -> CodecConfig {
    CodecConfig {
        complexity: 5,
        ..codec.config()
    }
}

/// The delay our own encoder and decoder put between a click sent at a packet's start and
/// where the finder places it (Opus: the encoder's look-ahead; G.711: none), found by
/// running clicks through them. Subtracted from every measured delay.
fn own_codec_delay(codec: Codec, freq: f64) -> Result<f64> {
    let cfg = sender_config(codec);
    let mut enc = cfg.encoder()?;
    let mut dec = cfg.decoder()?;
    let frame = codec.frame();
    let rate = codec.rate();
    let click = tone(freq, rate, frame * CLICK_FRAMES as usize, CLICK_AMP, 0);
    let mut finder = ClickFinder::new(rate, freq, CLICK_TRIGGER);
    let mut found = Vec::new();
    let (mut payload, mut pcm) = (Vec::new(), Vec::new());
    for k in 0..100usize {
        // a click every 25 packets, at packets 10, 35, 60, 85
        let phase = (k + 15) % 25;
        let f: Vec<i16> = if phase < CLICK_FRAMES as usize {
            click[phase * frame..(phase + 1) * frame].to_vec()
        } else {
            vec![0; frame]
        };
        payload.clear();
        enc.encode(&f, &mut payload)?;
        pcm.clear();
        dec.decode(&payload, &mut pcm)?;
        if let Some(on) = finder.on_frame(&pcm, k as f64 * 0.020) {
            found.push(on - (k - k % 25 + 10) as f64 * 0.020);
        }
    }
    if found.len() != 4 {
        bail!(
            "calibration: {} of 4 clicks found through our own codec",
            found.len()
        );
    }
    found.sort_by(f64::total_cmp);
    Ok(found[found.len() / 2])
}

impl Engine {
    fn outcome(&self, start: Duration, setup_done: Duration) -> Outcome {
        let mut o = Outcome {
            members: self.members.len(),
            send_errors: self.shared_send_errors,
            setup_s: (setup_done - start).as_secs_f64(),
            clicks_sent: self.clicks_sent.len(),
            codec_delay_ms: self.codec_delay * 1000.0,
            silence_payload: self.silence.len(),
            ..Outcome::default()
        };
        let n_tones = self.plan.tones.len();
        let talkers = self.tone_frames.len();
        for (i, m) in self.members.iter().enumerate() {
            if let Some(r) = &m.failed {
                o.failed.push(format!("member {i}: {r}"));
            }
            if let Some(r) = &m.ended {
                o.ended.push(format!("member {i}: {r}"));
            }
            if m.ready_at.is_none() {
                continue;
            }
            o.ready += 1;
            o.send_errors += m.send_errors;
            o.totals.add(&m.gaps.counts);
            o.silent_frames += m.silent_frames;
            o.wrong_pt += m.wrong_pt;
            if m.silent_frames > 0 {
                o.members_silent += 1;
            }
            if m.gaps.counts.clean() && m.gaps.counts.packets > 0 {
                o.members_clean += 1;
            } else {
                o.members_with_gaps.push((i, m.gaps.counts));
            }
            if let Some(ear) = &m.ear {
                let heard: Vec<Heard> = (0..n_tones).map(|t| ear.tones.heard(t)).collect();
                let right = heard.iter().enumerate().all(|(t, h)| {
                    // a tone nobody sends, or one's own, must not be heard
                    let expected = if t >= talkers || m.role == Role::Talker(t) {
                        Heard::No
                    } else {
                        Heard::Yes
                    };
                    *h == expected
                });
                o.decoded.push(DecodedMember {
                    member: i,
                    role: m.role,
                    frames: ear.tones.frames,
                    heard,
                    right,
                });
            }
        }
        o.received = o.totals.packets;
        let mut lat = self.latency.clone();
        lat.sort_by(f64::total_cmp);
        o.latency_ms = lat;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generators_own_codec_delay_is_measured() {
        // G.711 adds nothing: what is left is the finder's bias, well under a millisecond
        let pcmu = own_codec_delay(Codec::Pcmu, 2600.0).unwrap();
        assert!((0.0..0.001).contains(&pcmu), "{pcmu}");
        // Opus: the encoder's look-ahead, 6.5 ms at 48 kHz
        let opus = own_codec_delay(Codec::Opus, 2600.0).unwrap();
        assert!((0.0055..0.0085).contains(&opus), "{opus}");
    }

    #[test]
    fn opus_silence_is_sent_as_the_projects_encoder_makes_it() {
        let plan = Plan {
            codec: Codec::Opus,
            tones: vec![400.0, 700.0, 1250.0],
            click: Some((2600.0, Duration::from_millis(500))),
            decode: 2,
            local_ip: Ipv4Addr::LOCALHOST,
            sockets: Sockets::PerMember,
        };
        let e = Engine::new(plan, 10, 3).unwrap();
        // a steady encoder's silence frame, not a hand-made tiny payload
        assert!(
            !e.silence.is_empty() && e.silence.len() < 100,
            "{}",
            e.silence.len()
        );
        let roles: Vec<Role> = e.members.iter().map(|m| m.role).collect();
        assert_eq!(
            &roles[..4],
            &[
                Role::Talker(0),
                Role::Talker(1),
                Role::Talker(2),
                Role::Clicker
            ]
        );
        // talkers, the clicker and two listeners spread over the other six are decoded
        let decoded: Vec<usize> = (0..10).filter(|&i| e.members[i].ear.is_some()).collect();
        assert_eq!(decoded, vec![0, 1, 2, 3, 4, 7]);
        // each member its own endpoint
        let mut ends = e.endpoints();
        ends.sort();
        ends.dedup();
        assert_eq!(ends.len(), 10);
    }
}
