//! The media engine shared by both front ends: N members, each with its own UDP socket,
//! sending a 20 ms packet on a fixed clock and analysing what it receives.
//!
//! One thread does it all: a CLOCK_MONOTONIC timerfd wakes it every 2 ms to send the
//! members of that slot (member i sends in slot i mod 10, so the N streams are spread
//! over the 20 ms as real phones' would be, not one burst), and epoll hands it the sockets
//! that have input, drained with `recvmmsg`. Kernel receive timestamps (SO_TIMESTAMPNS)
//! date every packet, so the generator's own scheduling does not count as a gap or a delay.
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

/// Packet time.
pub const PTIME: Duration = Duration::from_millis(20);
/// Send slots per packet time.
const SLOTS: u64 = 10;
/// An arrival gap longer than this is a gap.
pub const MAX_GAP: Duration = Duration::from_millis(60);
const TIMER_TOKEN: u64 = u64::MAX;
/// Amplitude of each talker's tone and of the click.
const TONE_AMP: f64 = 6000.0;
const CLICK_AMP: f64 = 8000.0;
/// Tone present in a frame at 20 dB under its sent power.
const TONE_THRESHOLD: f64 = TONE_AMP * TONE_AMP / 4.0 / 100.0;
const CLICK_TRIGGER: f64 = CLICK_AMP * CLICK_AMP / 4.0 / 100.0;
/// Clicks last two packets.
const CLICK_FRAMES: u64 = 2;

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
    pub local_ip: Ipv4Addr,
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
    port: u16,
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
    pub late_slots: u64,
    pub max_lateness_ms: f64,
    pub generator_cpu_s: f64,
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
    epoll: net::Epoll,
    timer: net::Timer,
    batch: net::RecvBatch,
    /// Per-tone frames of talker audio (PCMU: µ-law bytes; Opus: PCM to encode), 1 s loop.
    tone_frames: Vec<Vec<Vec<u8>>>,
    tone_pcm: Vec<Vec<Vec<i16>>>,
    click_pcm: Vec<i16>,
    silence: Vec<u8>,
    clicks_sent: Vec<f64>,
    codec_delay: f64,
    latency: Vec<f64>,
    counting: bool,
    packet: Vec<u8>,
    payload: Vec<u8>,
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
        let timer = net::Timer::new()?;
        epoll.add(timer.fd, TIMER_TOKEN)?;
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
        for i in 0..n {
            let (fd, port) = net::udp_socket(plan.local_ip, 256 * 1024)
                .with_context(|| format!("opening the socket of member {i}"))?;
            epoll.add(fd, i as u64)?;
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
                port,
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
            timer,
            batch: net::RecvBatch::new(8),
            tone_frames,
            tone_pcm,
            click_pcm,
            silence,
            clicks_sent: Vec::new(),
            codec_delay,
            latency: Vec::new(),
            counting: false,
            packet: Vec::with_capacity(1500),
            payload: Vec::with_capacity(1500),
        })
    }

    /// The members' RTP ports, in member order.
    pub fn ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.port).collect()
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
        let mut late_slots = 0;
        let mut max_late = Duration::ZERO;
        let mut sent = 0u64;
        loop {
            let now = net::monotonic();
            // phases
            if setup_done.is_none() {
                loop {
                    match setup.try_recv() {
                        Ok(ev) => {
                            if self.on_setup(ev, now)? {
                                setup_done = Some(now);
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            setup_done = Some(now);
                            break;
                        }
                    }
                }
                if setup_done.is_none() && now >= setup_deadline {
                    setup_done = Some(now);
                }
                if let Some(done) = setup_done {
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
                    at_window = Some((now, server_pid.map(net::proc_sample).transpose()?));
                    late_slots = 0;
                    max_late = Duration::ZERO;
                    sent = 0;
                    self.clicks_sent.clear();
                    self.latency.clear();
                }
                if self.counting && now >= end {
                    break;
                }
            }
            // sends due
            loop {
                let due = start
                    + PTIME * (slot / SLOTS) as u32
                    + PTIME / SLOTS as u32 * (slot % SLOTS) as u32;
                if due > now {
                    self.timer.arm_at(due)?;
                    break;
                }
                let late = now - due;
                max_late = max_late.max(late);
                if late > Duration::from_millis(10) {
                    late_slots += 1;
                }
                sent += self.send_slot(slot % SLOTS)?;
                slot += 1;
            }
            // input
            self.epoll.wait(100, &mut tokens)?;
            for &t in &tokens {
                if t == TIMER_TOKEN {
                    self.timer.drain();
                } else {
                    self.receive(t as usize)?;
                }
            }
        }
        let end = net::monotonic();
        let gen_cpu = net::own_cpu() - gen_cpu0;
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
        o.max_lateness_ms = max_late.as_secs_f64() * 1000.0;
        o.generator_cpu_s = gen_cpu;
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
                    let pcm_frame: &[i16] = if phase < CLICK_FRAMES {
                        &self.click_pcm[phase as usize * frame..(phase as usize + 1) * frame]
                    } else {
                        &[]
                    };
                    match (codec, m.encoder.as_mut()) {
                        (Codec::Opus, Some(enc)) => {
                            if pcm_frame.is_empty() {
                                enc.encode(&vec![0; frame], &mut self.payload)?;
                            } else {
                                enc.encode(pcm_frame, &mut self.payload)?;
                            }
                        }
                        _ if pcm_frame.is_empty() => self.payload.extend_from_slice(&self.silence),
                        _ => g711::encode_ulaw(pcm_frame, &mut self.payload),
                    }
                }
                (Role::Listener, _) => self.payload.extend_from_slice(&self.silence),
            }
            let pt = m.expected_pt;
            self.packet.clear();
            self.packet.push(0x80);
            self.packet.push(if m.frames == 0 { 0x80 | pt } else { pt });
            self.packet.extend_from_slice(&m.seq.to_be_bytes());
            self.packet.extend_from_slice(&m.ts.to_be_bytes());
            self.packet.extend_from_slice(&m.ssrc.to_be_bytes());
            self.packet.extend_from_slice(&self.payload);
            if click_start {
                self.clicks_sent.push(net::realtime().as_secs_f64());
            }
            match net::send_to(m.fd, &self.packet, &remote) {
                Ok(()) => sent += 1,
                Err(_) => m.send_errors += 1,
            }
            m.seq = m.seq.wrapping_add(1);
            m.ts = m.ts.wrapping_add(codec.units());
            m.frames += 1;
        }
        Ok(sent)
    }

    fn receive(&mut self, i: usize) -> Result<()> {
        let codec = self.plan.codec;
        let counting = self.counting;
        let click_period = self.plan.click.map(|(_, p)| p.as_secs_f64());
        loop {
            let m = &mut self.members[i];
            let n = self.batch.recv(m.fd)?;
            for k in 0..n {
                let (data, at) = self.batch.get(k);
                let at = at.unwrap_or_else(net::realtime);
                if looks_like_rtcp(data) {
                    continue;
                }
                let Ok(p) = RtpPacket::parse(data) else {
                    continue;
                };
                if p.payload_type() != m.expected_pt {
                    // telephone-event or comfort noise: not audio
                    if counting {
                        m.wrong_pt += 1;
                    }
                    continue;
                }
                m.gaps
                    .on_packet(p.sequence(), p.timestamp(), at.as_micros() as u64, counting);
                let payload = p.payload();
                let silent = match codec {
                    Codec::Pcmu => payload.iter().all(|&b| b & 0x7f >= 0x7c),
                    Codec::Opus => payload.len() <= 8,
                };
                if counting && silent {
                    m.silent_frames += 1;
                }
                if let Some(ear) = m.ear.as_mut() {
                    ear.pcm.clear();
                    if ear.decoder.decode(payload, &mut ear.pcm).is_err() {
                        continue;
                    }
                    let arrival = at.as_secs_f64();
                    if let Some(finder) = ear.clicks.as_mut()
                        && let Some(onset) = finder.on_frame(&ear.pcm, arrival)
                        && counting
                        && let Some(period) = click_period
                        && let Some(sent) = click_before(&self.clicks_sent, onset, period * 0.8)
                    {
                        self.latency
                            .push((onset - sent - self.codec_delay) * 1000.0);
                    }
                    if let Some((f, _)) = self.plan.click
                        && goertzel_power(&ear.pcm, codec.rate(), f) >= CLICK_TRIGGER
                    {
                        ear.skip = 2;
                    }
                    if ear.skip > 0 {
                        ear.skip -= 1;
                    } else if counting {
                        ear.tones.on_frame(&ear.pcm);
                    }
                }
            }
            if n < 8 {
                return Ok(());
            }
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
