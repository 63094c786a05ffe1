//! One media worker thread: its engine, its sockets, an epoll loop. While rooms are mixing it
//! wakes for commands (an eventfd) and once per 20 ms tick (its rooms tick together), reading
//! what the sockets hold just before the tick; when nothing mixes it waits for datagrams.
//!
//! Why not wake for every datagram: a member's packet is mixed at its room's next 20 ms tick
//! whenever it is read, so reading it sooner buys nothing, while one wake-up per packet (a
//! context switch, an epoll_wait and a recvmmsg of one) was most of the server's CPU per
//! member. Reading once per tick takes many packets per system call.

use super::io::{Poller, RecvBatch, Waker, send_batch};
use super::{Command, ComposerSink, Dedicated, EventSink, MediaEvent, MemberId, Taps};
use conclave_media::engine::{
    self, Datagram, Engine, MemberPorts, MemberSetup, PortId, PortKind, RoomKey,
};
use conclave_media::mixer::{DropReason, Event, MixerConfig, PlaybackTarget};
use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

const SHARED_RTP: PortId = 0;
const SHARED_RTCP: PortId = 1;
const WAKER: u64 = u64::MAX;
/// Batches read from one socket before the loop looks at its deadlines again.
const BATCHES_PER_WAKE: usize = 16;
/// Commands applied before the loop looks at sockets and deadlines again.
const COMMANDS_PER_WAKE: usize = 4096;
/// The longest wait in the kernel an arrival time is corrected by (a larger gap between the
/// kernel's stamp and the wall clock read after it is a clock step, not a wait).
const MAX_KERNEL_WAIT: Duration = Duration::from_millis(500);

/// The worker's counters, looked up once: a registry lookup per read or flush was a visible
/// share of the media thread's time.
struct Counters {
    received: metrics::Counter,
    unknown_source: metrics::Counter,
    stranger: metrics::Counter,
    sent: metrics::Counter,
    send_dropped: metrics::Counter,
    events_dropped: metrics::Counter,
    taps_dropped: metrics::Counter,
    composed_dropped: metrics::Counter,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            received: metrics::counter!("conclave_media_packets_received_total"),
            unknown_source: metrics::counter!("conclave_media_dropped_total", "reason" => "unknown_source"),
            stranger: metrics::counter!("conclave_media_dropped_total", "reason" => "stranger"),
            sent: metrics::counter!("conclave_media_packets_sent_total"),
            send_dropped: metrics::counter!("conclave_media_send_dropped_total"),
            events_dropped: metrics::counter!("conclave_media_events_dropped_total"),
            taps_dropped: metrics::counter!("conclave_recording_frames_dropped_total"),
            composed_dropped: metrics::counter!("conclave_video_composer_packets_dropped_total"),
        }
    }
}

pub(super) struct Worker {
    counters: Counters,
    index: usize,
    epoch: Instant,
    engine: Engine,
    /// The waker and every socket.
    poller: Poller,
    /// The waker only: what the loop sleeps on between reads while rooms are mixing.
    commands_poller: Poller,
    waker: Arc<Waker>,
    members: Arc<AtomicUsize>,
    /// Every socket the worker reads, by port id.
    fds: HashMap<PortId, RawFd>,
    shared: Option<(UdpSocket, UdpSocket)>,
    /// Calls with ports of their own: the sockets and their port ids.
    dedicated: HashMap<MemberId, (Arc<Dedicated>, PortId, PortId)>,
    /// SIP video legs' own sockets and their port ids.
    video: HashMap<MemberId, (Arc<Dedicated>, PortId, PortId)>,
    /// Browsers' ICE-TCP connections: where their frames are written (`super::tcp`).
    tcp: HashMap<PortId, tokio::sync::mpsc::Sender<Vec<u8>>>,
    next_port: PortId,
    sinks: HashMap<RoomKey, EventSink>,
    /// Recorded rooms' recording threads.
    taps: HashMap<RoomKey, Taps>,
    /// Rooms' composers: their tiles' packets (docs/video.md).
    composers: HashMap<RoomKey, ComposerSink>,
    batch: RecvBatch,
    outbox: Vec<Datagram>,
    /// A read stopped with datagrams still waiting (more than [`BATCHES_PER_WAKE`] batches):
    /// the next read comes at once instead of at the next tick, or a large room's packets
    /// would queue in the kernel and reach their tick ever later.
    backlog: bool,
}

impl Worker {
    pub(super) fn new(
        index: usize,
        shared: Option<(UdpSocket, UdpSocket)>,
        waker: Arc<Waker>,
        members: Arc<AtomicUsize>,
    ) -> std::io::Result<Worker> {
        let poller = Poller::new()?;
        poller.add(waker.fd(), WAKER)?;
        let commands_poller = Poller::new()?;
        commands_poller.add(waker.fd(), WAKER)?;
        let epoch = Instant::now();
        let mut engine = Engine::new(MixerConfig {
            unix_time_at_zero: unix_now(),
            ..MixerConfig::default()
        });
        engine.set_epoch(epoch);
        let mut fds = HashMap::new();
        if let Some((rtp, rtcp)) = &shared {
            engine.add_port(SHARED_RTP, PortKind::Shared);
            engine.add_port(SHARED_RTCP, PortKind::SharedRtcp);
            poller.add(rtp.as_raw_fd(), u64::from(SHARED_RTP))?;
            poller.add(rtcp.as_raw_fd(), u64::from(SHARED_RTCP))?;
            fds.insert(SHARED_RTP, rtp.as_raw_fd());
            fds.insert(SHARED_RTCP, rtcp.as_raw_fd());
        }
        Ok(Worker {
            counters: Counters::new(),
            index,
            epoch,
            engine,
            poller,
            commands_poller,
            waker,
            members,
            fds,
            shared,
            dedicated: HashMap::new(),
            video: HashMap::new(),
            tcp: HashMap::new(),
            next_port: 2,
            sinks: HashMap::new(),
            taps: HashMap::new(),
            composers: HashMap::new(),
            batch: RecvBatch::new(),
            outbox: Vec::new(),
            backlog: false,
        })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub(super) fn run(mut self, commands: Receiver<Command>) {
        let mut ready = Vec::new();
        loop {
            for _ in 0..COMMANDS_PER_WAKE {
                match commands.try_recv() {
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                    Ok(command) => self.command(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.engine.handle_timeout(self.now());
            self.flush();
            let waited = match self.engine.poll_timeout() {
                // Rooms are mixing: sleep (woken only by commands) until the next tick, then
                // read what arrived meanwhile (one zero-timeout epoll_wait says where) just
                // before it. Datagrams wait in the kernel for up to a frame — the receive
                // buffers hold that — and keep their arrival time in the kernel's stamp, so
                // a worker wakes once per frame for all its rooms (they tick on one grid).
                Some(deadline) => {
                    let wait = if std::mem::take(&mut self.backlog) {
                        Duration::ZERO
                    } else {
                        deadline.saturating_sub(self.now())
                    };
                    self.commands_poller
                        .wait(Some(wait), &mut ready)
                        .and_then(|()| self.poller.wait(Some(Duration::ZERO), &mut ready))
                }
                None => self.poller.wait(None, &mut ready),
            };
            if let Err(err) = waited {
                tracing::error!(%err, worker = self.index, "media worker cannot wait");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            for &token in &ready {
                if token == WAKER {
                    self.waker.reset();
                } else if let Ok(port) = PortId::try_from(token) {
                    self.read(port);
                }
            }
        }
    }

    /// Reads what waits on a socket, in batches, into the engine.
    fn read(&mut self, port: PortId) {
        let Some(&fd) = self.fds.get(&port) else {
            return;
        };
        let mut received = 0u64;
        let mut unknown = 0u64;
        let mut strangers = 0u64;
        let mut drained = false;
        for _ in 0..BATCHES_PER_WAKE {
            let now = self.epoch.elapsed();
            let wall = unix_now();
            let engine = &mut self.engine;
            let n = match self.batch.recv(fd, |from, data, stamp| {
                // On the engine's clock: now, less how long the datagram waited in the
                // kernel (bounded: a step of the wall clock must not throw it far off).
                let arrival = stamp.map_or(now, |stamp| {
                    now.saturating_sub(wall.saturating_sub(stamp).min(MAX_KERNEL_WAIT))
                });
                match engine.handle_datagram(arrival, port, from, data) {
                    Ok(()) => {}
                    Err(DropReason::UnknownSource) => unknown += 1,
                    Err(DropReason::Stranger) => strangers += 1,
                    Err(_) => {}
                }
            }) {
                Ok(n) => n,
                Err(err) => {
                    tracing::debug!(%err, port, "media receive error");
                    drained = true;
                    break;
                }
            };
            received += n as u64;
            if n < super::io::RECV_BATCH {
                drained = true;
                break;
            }
        }
        self.backlog |= !drained;
        self.counters.received.increment(received);
        if unknown > 0 {
            self.counters.unknown_source.increment(unknown);
        }
        if strangers > 0 {
            self.counters.stranger.increment(strangers);
        }
    }

    /// Sends what the engine produced (grouped per socket) and hands its events to the rooms'
    /// owners.
    fn flush(&mut self) {
        self.outbox.extend(self.engine.drain_transmits());
        if !self.outbox.is_empty() {
            self.outbox.sort_by_key(|d| d.port);
            let mut sent = 0usize;
            let total = self.outbox.len();
            let mut start = 0;
            while start < total {
                let port = self.outbox[start].port;
                let end = start
                    + self.outbox[start..]
                        .iter()
                        .take_while(|d| d.port == port)
                        .count();
                if let Some(conn) = self.tcp.get(&port) {
                    // a browser's ICE-TCP connection: RFC 4571 frames to its writer; one
                    // that cannot keep up loses packets, never stalls the worker
                    for d in &self.outbox[start..end] {
                        let Ok(len) = u16::try_from(d.data.len()) else {
                            continue;
                        };
                        let mut frame = Vec::with_capacity(2 + d.data.len());
                        frame.extend_from_slice(&len.to_be_bytes());
                        frame.extend_from_slice(&d.data);
                        if conn.try_send(frame).is_ok() {
                            sent += 1;
                        }
                    }
                } else if let Some(&fd) = self.fds.get(&port) {
                    let batch = self.outbox[start..end]
                        .iter()
                        .map(|d| (d.to, d.data.as_slice()));
                    match send_batch(fd, batch) {
                        Ok(n) => sent += n,
                        Err(err) => tracing::debug!(%err, port, "media send error"),
                    }
                }
                start = end;
            }
            self.outbox.clear();
            self.counters.sent.increment(sent as u64);
            if sent < total {
                self.counters.send_dropped.increment((total - sent) as u64);
            }
        }
        for (room, packet) in self.engine.drain_composed() {
            if let Some(sink) = self.composers.get(&room)
                && sink.try_send(packet).is_err()
            {
                self.counters.composed_dropped.increment(1);
            }
        }
        for (room, frame) in self.engine.drain_taps() {
            let Some(taps) = self.taps.get(&room) else {
                continue;
            };
            // the mix goes to both; members' voices only to a recording
            if let Some(stream) = &taps.stream
                && frame.source == conclave_media::mixer::TapSource::Room
                && stream.try_send(frame.clone()).is_err()
            {
                self.counters.taps_dropped.increment(1);
            }
            if let Some(recording) = &taps.recording
                && recording.try_send(frame).is_err()
            {
                self.counters.taps_dropped.increment(1);
            }
        }
        let events: Vec<(RoomKey, Event)> = self.engine.drain_events().collect();
        for (room, event) in events {
            let notice = match event {
                Event::TalkStart { member } => MediaEvent::Talking {
                    member,
                    talking: true,
                },
                Event::TalkStop { member } => MediaEvent::Talking {
                    member,
                    talking: false,
                },
                Event::Dtmf { member, digit, .. } => MediaEvent::Digit { member, digit },
                Event::PlaybackFinished {
                    target: PlaybackTarget::Member(member),
                    ..
                } => MediaEvent::PlaybackDone { member },
                Event::MediaTimeout { member } => MediaEvent::Timeout { member },
                Event::VideoStarted { member } => MediaEvent::VideoStarted { member },
                other => {
                    tracing::trace!(?other, "media event");
                    continue;
                }
            };
            if let Some(sink) = self.sinks.get(&room)
                && !sink(notice)
            {
                self.counters.events_dropped.increment(1);
            }
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Open { room, sink } => {
                self.sinks.insert(room, sink);
            }
            Command::Close { room } => {
                self.sinks.remove(&room);
                self.composers.remove(&room);
                if self.taps.remove(&room).is_some() {
                    let _ = self
                        .engine
                        .handle_command(now, engine::Command::SetTaps { room, on: false });
                }
            }
            Command::Composer { room, sink } => {
                let on = sink.is_some();
                match sink {
                    Some(sink) => self.composers.insert(room, sink),
                    None => self.composers.remove(&room),
                };
                let _ = self
                    .engine
                    .handle_command(now, engine::Command::SetComposer { room, on });
            }
            Command::Tap { room, kind, sink } => {
                let taps = self.taps.entry(room).or_default();
                taps.set(kind, sink);
                let on = !taps.is_empty();
                if !on {
                    self.taps.remove(&room);
                }
                let _ = self
                    .engine
                    .handle_command(now, engine::Command::SetTaps { room, on });
            }
            Command::Add {
                room,
                member,
                join,
                dedicated,
            } => {
                let ports = match dedicated {
                    Some(sockets) => match self.register(member, sockets) {
                        Some(ports) => ports,
                        None => return,
                    },
                    None if self.shared.is_some() => MemberPorts {
                        rtp: SHARED_RTP,
                        rtcp: Some(SHARED_RTCP),
                    },
                    None => {
                        tracing::error!(member, "a member without ports on a per-call worker");
                        return;
                    }
                };
                let setup = MemberSetup {
                    config: join.config,
                    ports,
                    muted: join.muted,
                    deaf: join.deaf,
                    group: join.group,
                    rtp_timeout: join.rtp_timeout,
                    playback: join.playback,
                    webrtc: join.webrtc,
                };
                let added = self.engine.handle_command(
                    now,
                    engine::Command::AddMember {
                        room,
                        member,
                        setup: Box::new(setup),
                    },
                );
                if let Err(err) = added {
                    tracing::warn!(%err, member, "cannot add a member to the mix");
                    self.unregister(member);
                }
            }
            Command::Remove { member } => {
                let _ = self
                    .engine
                    .handle_command(now, engine::Command::RemoveMember { member });
                // the RTCP BYE goes out before the call's own sockets close
                self.flush();
                self.unregister(member);
                self.unregister_video(member);
            }
            Command::AddVideo {
                member,
                config,
                sockets,
            } => {
                let ports = match self.video.get(&member) {
                    Some((known, rtp, rtcp)) if Arc::ptr_eq(known, &sockets) => MemberPorts {
                        rtp: *rtp,
                        rtcp: Some(*rtcp),
                    },
                    _ => {
                        self.unregister_video(member);
                        match self.register_video(member, sockets) {
                            Some(ports) => ports,
                            None => return,
                        }
                    }
                };
                let added = self.engine.handle_command(
                    now,
                    engine::Command::AddVideoLeg {
                        member,
                        config,
                        ports,
                    },
                );
                if let Err(err) = added {
                    tracing::warn!(%err, member, "cannot add a video leg");
                    self.unregister_video(member);
                }
            }
            Command::RemoveVideo { member } => {
                let _ = self
                    .engine
                    .handle_command(now, engine::Command::RemoveVideoLeg { member });
                self.unregister_video(member);
            }
            Command::Engine(command) => {
                if let Err(err) = self.engine.handle_command(now, command) {
                    tracing::debug!(%err, "media command for a member that is gone");
                }
            }
            Command::Reports { members, reply } => {
                let reports = members
                    .into_iter()
                    .filter_map(|m| Some((m, self.engine.member_report(m)?)))
                    .collect();
                let _ = reply.send(reports);
            }
            Command::TcpOpen { port, writer } => {
                self.engine.add_port(port, PortKind::Tcp);
                self.tcp.insert(port, writer);
            }
            Command::TcpFrame { port, from, data } => {
                if self.tcp.contains_key(&port) {
                    let _ = self.engine.handle_datagram(now, port, from, &data);
                }
            }
            Command::TcpClose { port } => {
                self.tcp.remove(&port);
                self.engine.remove_port(port);
            }
            Command::WebRtcOffer {
                member,
                offer,
                reply,
            } => {
                let _ = reply.send(
                    self.engine
                        .renegotiate_webrtc(member, &offer)
                        .map_err(|e| e.to_string()),
                );
            }
            Command::Stop => {}
        }
        self.members
            .store(self.engine.member_count(), Ordering::Relaxed);
        metrics::gauge!("conclave_media_members", "worker" => self.index.to_string())
            .set(self.engine.member_count() as f64);
        metrics::gauge!("conclave_media_rooms", "worker" => self.index.to_string())
            .set(self.engine.room_count() as f64);
    }

    /// Starts reading a call's own sockets.
    fn register(&mut self, member: MemberId, sockets: Arc<Dedicated>) -> Option<MemberPorts> {
        let (ports, rtp, rtcp) = self.watch(
            member,
            &sockets,
            PortKind::Dedicated,
            PortKind::DedicatedRtcp,
        )?;
        self.dedicated.insert(member, (sockets, rtp, rtcp));
        Some(ports)
    }

    /// Starts reading a SIP video leg's sockets.
    fn register_video(&mut self, member: MemberId, sockets: Arc<Dedicated>) -> Option<MemberPorts> {
        let (ports, rtp, rtcp) =
            self.watch(member, &sockets, PortKind::Video, PortKind::VideoRtcp)?;
        self.video.insert(member, (sockets, rtp, rtcp));
        Some(ports)
    }

    fn watch(
        &mut self,
        member: MemberId,
        sockets: &Dedicated,
        rtp_kind: PortKind,
        rtcp_kind: PortKind,
    ) -> Option<(MemberPorts, PortId, PortId)> {
        let (rtp_fd, rtcp_fd) = sockets.fds();
        let (rtp, rtcp) = (self.next_port, self.next_port.wrapping_add(1));
        self.next_port = self.next_port.wrapping_add(2).max(2);
        let added = self
            .poller
            .add(rtp_fd, u64::from(rtp))
            .and_then(|()| self.poller.add(rtcp_fd, u64::from(rtcp)));
        if let Err(err) = added {
            tracing::warn!(%err, member, "cannot watch a call's media sockets");
            self.poller.remove(rtp_fd);
            return None;
        }
        self.engine.add_port(rtp, rtp_kind);
        self.engine.add_port(rtcp, rtcp_kind);
        self.fds.insert(rtp, rtp_fd);
        self.fds.insert(rtcp, rtcp_fd);
        let ports = MemberPorts {
            rtp,
            rtcp: Some(rtcp),
        };
        Some((ports, rtp, rtcp))
    }

    fn unregister(&mut self, member: MemberId) {
        let sockets = self.dedicated.remove(&member);
        self.unwatch(sockets);
    }

    fn unregister_video(&mut self, member: MemberId) {
        let sockets = self.video.remove(&member);
        self.unwatch(sockets);
    }

    fn unwatch(&mut self, sockets: Option<(Arc<Dedicated>, PortId, PortId)>) {
        if let Some((sockets, rtp, rtcp)) = sockets {
            let (rtp_fd, rtcp_fd) = sockets.fds();
            self.poller.remove(rtp_fd);
            self.poller.remove(rtcp_fd);
            for port in [rtp, rtcp] {
                self.engine.remove_port(port);
                self.fds.remove(&port);
            }
        }
    }
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
