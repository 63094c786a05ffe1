//! The media plane: worker threads (by default one per core), each owning a share of the
//! rooms — their mixers, in a sans-IO [`Engine`] — and one pair of shared UDP ports (RTP, and
//! RTCP on the next port for members who do not multiplex it). A room never spans workers;
//! every member of a room sends to its worker's port, where the engine finds the member by
//! source address and SSRC. Datagrams move in batches (`recvmmsg`/`sendmmsg`) straight from
//! the worker that owns the room: no task or channel hop per packet.
//!
//! Why distinct ports rather than one `SO_REUSEPORT` port for all workers: the kernel spreads
//! a reuse-port group by a hash of the 4-tuple, which knows nothing of rooms, so a member's
//! packets would often land on a worker that does not own its room. A port per worker keeps
//! the owner and the socket together; members learn the port from our SDP like any port.
//!
//! Where a network needs a port per call (some firewalls, SIP proxies that do not rewrite
//! SDP behind NAT), `media_ports = per-call` gives each call its own pair, read by the same
//! worker. A call in the access number's menu always has its own pair, because the room it
//! picks may live on another worker: the pair moves there with it.
//!
//! Only a room's owner (its meeting actor, or the access menu) adds, changes or removes its
//! members: [`RoomMedia`] is the owner's handle.

pub mod io;
pub mod tcp;
mod worker;

use conclave_media::engine::{self, MemberReport, RoomKey};
use conclave_media::mixer::{GroupId, MemberConfig};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use conclave_media::engine::Playback;
use conclave_media::webrtc::{WebRtcIdentity, WebRtcPeer};

/// A member of a room on the media plane: the leg that carries it.
pub type MemberId = u64;

/// What the media plane noticed about a member, for its room's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    Talking {
        member: MemberId,
        talking: bool,
    },
    Digit {
        member: MemberId,
        digit: char,
    },
    /// What played to the member alone has ended.
    PlaybackDone {
        member: MemberId,
    },
    /// The member sent nothing for its media timeout.
    Timeout {
        member: MemberId,
    },
    /// The member's camera or screen reached the room: the meeting has video.
    VideoStarted {
        member: MemberId,
    },
}

/// Where a room's events go: returns false when the owner cannot take more (it is counted).
pub type EventSink = Box<dyn Fn(MediaEvent) -> bool + Send>;

/// Where a recorded room's frames go (the room's recording thread); bounded, never waited on:
/// a frame that does not fit is dropped and counted.
pub type TapSink = SyncSender<conclave_media::mixer::TapFrame>;
/// Where a room's tiles' packets go: its composer's thread (docs/video.md).
pub type ComposerSink = SyncSender<conclave_media::engine::ComposerInput>;

/// Who takes a room's frames: a recording (the mix and every member's voice) or a live
/// stream (the mix only). A room has at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    Recording,
    Stream,
}

/// A room's taps.
#[derive(Default)]
pub(crate) struct Taps {
    pub recording: Option<TapSink>,
    pub stream: Option<TapSink>,
}

impl Taps {
    pub fn set(&mut self, kind: TapKind, sink: Option<TapSink>) {
        match kind {
            TapKind::Recording => self.recording = sink,
            TapKind::Stream => self.stream = sink,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.recording.is_none() && self.stream.is_none()
    }
}

/// One shared port pair per worker, or a pair per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMode {
    Shared,
    PerCall,
}

/// How the media plane is set up.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// Worker threads (at least one).
    pub workers: usize,
    /// New rooms go to the busiest worker still under this many members (0: never).
    pub pack_members: usize,
    /// The address the sockets bind to.
    pub bind_ip: IpAddr,
    /// The address SDP announces.
    pub public_ip: IpAddr,
    pub ports: PortMode,
    /// Ports are chosen in this range (even RTP ports, RTCP on the next).
    pub port_min: u16,
    pub port_max: u16,
    /// Where browsers' ICE over TCP is taken (one port for every worker), if anywhere.
    pub tcp_listen: Option<SocketAddr>,
}

/// What a media worker carries now.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct WorkerLoad {
    pub members: usize,
    pub rooms: usize,
}

/// A member's media and the state it joins with (nobody hears or is heard before this says).
#[derive(Debug)]
pub struct MemberJoin {
    pub config: MemberConfig,
    pub muted: bool,
    pub deaf: bool,
    pub group: Option<GroupId>,
    pub rtp_timeout: Option<Duration>,
    pub playback: Option<Playback>,
    /// A browser's WebRTC session: its media goes through it.
    pub webrtc: Option<Box<WebRtcPeer>>,
}

/// The sockets of a call that has its own ports.
pub(crate) struct Dedicated {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

enum Command {
    Open {
        room: RoomKey,
        sink: EventSink,
    },
    Close {
        room: RoomKey,
    },
    Add {
        room: RoomKey,
        member: MemberId,
        join: Box<MemberJoin>,
        dedicated: Option<Arc<Dedicated>>,
    },
    Remove {
        member: MemberId,
    },
    /// A SIP video leg beside the member's audio, on its own port pair (again: a re-INVITE).
    AddVideo {
        member: MemberId,
        config: Box<conclave_media::video::sip_leg::VideoLegConfig>,
        sockets: Arc<Dedicated>,
    },
    /// The member's video ends; its sockets close.
    RemoveVideo {
        member: MemberId,
    },
    Engine(engine::Command),
    /// The room's composer receives its tiles' packets, or no longer (`None`).
    Composer {
        room: RoomKey,
        sink: Option<ComposerSink>,
    },
    /// Records (or streams) the room into `sink`, or stops (`None`).
    Tap {
        room: RoomKey,
        kind: TapKind,
        sink: Option<TapSink>,
    },
    Reports {
        members: Vec<MemberId>,
        reply: tokio::sync::oneshot::Sender<Vec<(MemberId, MemberReport)>>,
    },
    /// A browser's ICE-TCP connection opens (its frames come on `TcpFrame`, ours go to
    /// `writer`), and closes.
    TcpOpen {
        port: engine::PortId,
        writer: tokio::sync::mpsc::Sender<Vec<u8>>,
    },
    TcpFrame {
        port: engine::PortId,
        from: SocketAddr,
        data: Vec<u8>,
    },
    TcpClose {
        port: engine::PortId,
    },
    /// A browser's new offer (ICE restart): the answer, or why not.
    WebRtcOffer {
        member: MemberId,
        offer: String,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    },
    Stop,
}

/// Commands a worker may have waiting; beyond it senders are refused (and it is counted).
const COMMAND_QUEUE: usize = 65_536;

struct WorkerLink {
    commands: SyncSender<Command>,
    waker: Arc<io::Waker>,
    /// Members on the worker (placement weighs by it).
    members: Arc<AtomicUsize>,
    /// The shared RTP port, as announced (None with per-call ports).
    shared: Option<SocketAddr>,
}

impl WorkerLink {
    fn send(&self, command: Command) -> bool {
        let sent = match self.commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                metrics::counter!("conclave_media_commands_refused_total").increment(1);
                tracing::error!("a media worker's command queue is full");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        self.waker.wake();
        sent
    }
}

struct Placement {
    worker: usize,
    key: RoomKey,
    refs: usize,
}

struct Inner {
    settings: MediaSettings,
    workers: Vec<WorkerLink>,
    placements: Mutex<HashMap<Arc<str>, Placement>>,
    next_key: AtomicU64,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The DTLS certificate every browser's session shows (made once: see `webrtc`).
    identity: WebRtcIdentity,
    /// ICE over TCP: the address browsers are told, and which worker each browser's ICE
    /// username belongs to (`tcp`).
    tcp: Option<tcp::TcpRoutes>,
}

/// The media plane; cheap to clone.
#[derive(Clone)]
pub struct MediaPlane {
    inner: Arc<Inner>,
}

impl MediaPlane {
    /// Starts the workers (and, with shared ports, binds each one's port pair).
    pub fn start(settings: MediaSettings) -> std::io::Result<MediaPlane> {
        let count = settings.workers.max(1);
        let mut workers = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let shared = match settings.ports {
                PortMode::Shared => Some(bind_pair(&settings, 16 << 20)?),
                PortMode::PerCall => None,
            };
            let announced = shared
                .as_ref()
                .map(|(rtp, _)| {
                    rtp.local_addr()
                        .map(|a| SocketAddr::new(settings.public_ip, a.port()))
                })
                .transpose()?;
            let (commands, inbox): (SyncSender<Command>, Receiver<Command>) =
                sync_channel(COMMAND_QUEUE);
            let waker = Arc::new(io::Waker::new()?);
            let members = Arc::new(AtomicUsize::new(0));
            let worker = worker::Worker::new(index, shared, waker.clone(), members.clone())?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("conclave-media-{index}"))
                    .spawn(move || worker.run(inbox))?,
            );
            if let Some(addr) = announced {
                tracing::info!(worker = index, %addr, "media worker listening");
            }
            workers.push(WorkerLink {
                commands,
                waker,
                members,
                shared: announced,
            });
        }
        Ok(MediaPlane {
            inner: Arc::new(Inner {
                settings,
                workers,
                placements: Mutex::new(HashMap::new()),
                next_key: AtomicU64::new(1),
                threads: Mutex::new(threads),
                identity: WebRtcIdentity::generate().map_err(std::io::Error::other)?,
                tcp: None,
            }),
        })
    }

    /// The room's media: on the worker that already has it, else on the busiest worker still
    /// under `pack_members` (a light load on one thread: the others sleep — every wake-up is a
    /// timer and a context switch, dear under virtualisation), else on the least loaded one.
    /// The room stays there while any handle to it lives.
    pub fn room(&self, name: &str) -> RoomMedia {
        let mut placements = self
            .inner
            .placements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = placements.get_mut(name) {
            p.refs += 1;
            return RoomMedia {
                inner: self.inner.clone(),
                name: name.into(),
                worker: p.worker,
                key: p.key,
            };
        }
        // members weigh most; rooms break ties (a new room brings its members, and a burst
        // of new rooms counts before their members arrive)
        let loads = self.loads(&placements);
        let load = |w: usize| {
            let l = loads[w];
            (l.members.max(l.rooms), l.rooms)
        };
        let pack = self.inner.settings.pack_members;
        let workers = 0..self.inner.workers.len();
        let worker = workers
            .clone()
            .filter(|&w| load(w).0 < pack)
            .max_by_key(|&w| (load(w), std::cmp::Reverse(w)))
            .or_else(|| workers.min_by_key(|&w| load(w)))
            .unwrap_or(0);
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = name.into();
        placements.insert(
            name.clone(),
            Placement {
                worker,
                key,
                refs: 1,
            },
        );
        RoomMedia {
            inner: self.inner.clone(),
            name,
            worker,
            key,
        }
    }

    /// Takes browsers' ICE over TCP on `listener` (its address, with the public IP, is what
    /// their answers name). Runs until the plane stops.
    pub fn with_tcp(self, listener: tokio::net::TcpListener) -> std::io::Result<MediaPlane> {
        let local = listener.local_addr()?;
        let announced = SocketAddr::new(self.inner.settings.public_ip, local.port());
        let routes = tcp::TcpRoutes::new(announced);
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(_) => return Err(std::io::Error::other("the media plane is already shared")),
        };
        inner.tcp = Some(routes.clone());
        let plane = MediaPlane {
            inner: Arc::new(inner),
        };
        tracing::info!(%local, %announced, "ICE over TCP for browsers");
        tokio::spawn(tcp::serve(listener, plane.clone(), routes));
        Ok(plane)
    }

    /// Where browsers reach ICE over TCP (`None`: not taken).
    pub fn tcp_candidate(&self) -> Option<SocketAddr> {
        self.inner.tcp.as_ref().map(|r| r.announced())
    }

    /// A browser's ICE username now belongs to this room's worker (for its TCP connections).
    pub fn route_ice_username(&self, ufrag: &str, room: &RoomMedia) {
        if let Some(routes) = &self.inner.tcp {
            routes.insert(ufrag, room.worker);
        }
    }

    fn send_to_worker(&self, worker: usize, command: Command) -> bool {
        self.inner
            .workers
            .get(worker)
            .is_some_and(|link| link.send(command))
    }

    /// The DTLS identity browsers' sessions use.
    pub fn webrtc_identity(&self) -> &WebRtcIdentity {
        &self.inner.identity
    }

    /// Each worker's load now: members in its mix and rooms placed on it.
    pub fn load(&self) -> Vec<WorkerLoad> {
        let placements = self
            .inner
            .placements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.loads(&placements)
    }

    fn loads(&self, placements: &HashMap<Arc<str>, Placement>) -> Vec<WorkerLoad> {
        let mut loads: Vec<WorkerLoad> = self
            .inner
            .workers
            .iter()
            .map(|w| WorkerLoad {
                members: w.members.load(Ordering::Relaxed),
                rooms: 0,
            })
            .collect();
        for p in placements.values() {
            loads[p.worker].rooms += 1;
        }
        loads
    }

    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    /// Stops the workers (at shutdown).
    pub fn stop(&self) {
        for w in &self.inner.workers {
            w.send(Command::Stop);
        }
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Binds an even RTP port and the RTCP port after it, somewhere in the range.
fn bind_pair(settings: &MediaSettings, buffers: usize) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let min = (settings.port_min.max(1024) + 1) & !1;
    let pairs = u32::from(settings.port_max.saturating_sub(min).saturating_add(1)) / 2;
    if pairs == 0 {
        return Err(std::io::Error::other(
            "the media port range holds no pair of ports",
        ));
    }
    let start = rand::random::<u32>() % pairs;
    let mut last = std::io::Error::other("no free pair of ports in the media range");
    for i in 0..pairs.min(1024) {
        let port = min + (((start + i) % pairs) * 2) as u16;
        let rtp = match io::udp_socket(SocketAddr::new(settings.bind_ip, port), buffers) {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match io::udp_socket(SocketAddr::new(settings.bind_ip, port + 1), buffers) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A room's media, for its owner: where members send, and the commands that add, change and
/// remove them. Cloning keeps the room on its worker; the last handle dropped releases it.
pub struct RoomMedia {
    inner: Arc<Inner>,
    name: Arc<str>,
    worker: usize,
    key: RoomKey,
}

impl Clone for RoomMedia {
    fn clone(&self) -> Self {
        let mut placements = self
            .inner
            .placements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = placements.get_mut(&self.name) {
            p.refs += 1;
        }
        RoomMedia {
            inner: self.inner.clone(),
            name: self.name.clone(),
            worker: self.worker,
            key: self.key,
        }
    }
}

impl Drop for RoomMedia {
    fn drop(&mut self) {
        let mut placements = self
            .inner
            .placements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = placements.get_mut(&self.name) {
            p.refs = p.refs.saturating_sub(1);
            if p.refs == 0 {
                placements.remove(&self.name);
                drop(placements);
                self.link().send(Command::Close { room: self.key });
            }
        }
    }
}

impl std::fmt::Debug for RoomMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomMedia")
            .field("room", &self.name)
            .field("worker", &self.worker)
            .finish()
    }
}

impl RoomMedia {
    fn link(&self) -> &WorkerLink {
        &self.inner.workers[self.worker]
    }

    /// The worker the room lives on.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Where the room's media events go (its owner's inbox).
    pub fn open(&self, sink: EventSink) {
        self.link().send(Command::Open {
            room: self.key,
            sink,
        });
    }

    /// An address for a new member to send to: the worker's shared port, or a pair of its own
    /// (`dedicated`, or when the plane runs with per-call ports).
    pub fn endpoint(&self, dedicated: bool) -> std::io::Result<Endpoint> {
        let settings = &self.inner.settings;
        match (
            self.link().shared,
            dedicated || settings.ports == PortMode::PerCall,
        ) {
            (Some(addr), false) => Ok(Endpoint {
                addr,
                dedicated: None,
                room: self.clone(),
            }),
            _ => {
                let (rtp, rtcp) = bind_pair(settings, 256 << 10)?;
                let port = rtp.local_addr()?.port();
                Ok(Endpoint {
                    addr: SocketAddr::new(settings.public_ip, port),
                    dedicated: Some(Arc::new(Dedicated { rtp, rtcp })),
                    room: self.clone(),
                })
            }
        }
    }

    /// Adds a member with its state, on the endpoint it was given (which must be this room's:
    /// see [`Endpoint::rehome`]).
    pub fn add(&self, member: MemberId, endpoint: &Endpoint, join: MemberJoin) -> bool {
        if endpoint.room.worker != self.worker {
            tracing::error!(member, "an endpoint of another worker: not added");
            return false;
        }
        self.link().send(Command::Add {
            room: self.key,
            member,
            join: Box::new(join),
            dedicated: endpoint.dedicated.clone(),
        })
    }

    /// Removes a member (its own ports, if any, are released by the worker).
    pub fn remove(&self, member: MemberId) {
        self.link().send(Command::Remove { member });
    }

    /// A SIP video terminal's video beside the member's audio (the member must be added
    /// first), on `endpoint`'s own ports (see [`RoomMedia::endpoint`] with `dedicated`).
    pub fn add_video(
        &self,
        member: MemberId,
        endpoint: &Endpoint,
        config: conclave_media::video::sip_leg::VideoLegConfig,
    ) -> bool {
        let Some(sockets) = endpoint.dedicated.clone() else {
            tracing::error!(member, "a video leg without ports of its own");
            return false;
        };
        self.link().send(Command::AddVideo {
            member,
            config: Box::new(config),
            sockets,
        })
    }

    /// The member's video ends (its audio goes on).
    pub fn remove_video(&self, member: MemberId) {
        self.link().send(Command::RemoveVideo { member });
    }

    /// The room's composed picture of one size, for its video legs of that size.
    pub fn send_composed(&self, frame: Arc<conclave_media::video::sip_leg::ComposedFrame>) {
        self.send(engine::Command::SendComposed {
            room: self.key,
            frame,
        });
    }

    /// What the room's video tiles show (the SFU forwards browsers' video to them).
    pub fn set_tiles(&self, tiles: Vec<conclave_media::video::Tile>) {
        self.send(engine::Command::SetTiles {
            room: self.key,
            tiles,
        });
    }

    /// Sends the room's tiles' packets to its composer, or stops (`None`).
    pub fn compose(&self, sink: Option<ComposerSink>) {
        self.link().send(Command::Composer {
            room: self.key,
            sink,
        });
    }

    /// The composer cannot decode a tile: its sender is asked for a keyframe.
    pub fn composer_lost_picture(&self, tile: usize) {
        self.send(engine::Command::ComposerLostPicture {
            room: self.key,
            tile,
        });
    }

    /// A command for one of the room's members, or the room.
    pub fn send(&self, command: engine::Command) {
        self.link().send(Command::Engine(command));
    }

    /// Sends the room's mix (and, to a recording, each member's voice) to `sink` from the
    /// next tick (`None`: stops).
    pub fn tap(&self, kind: TapKind, sink: Option<TapSink>) {
        self.link().send(Command::Tap {
            room: self.key,
            kind,
            sink,
        });
    }

    /// Plays to everyone in the room.
    pub fn play_to_room(&self, samples: Arc<[i16]>, rate: u32) {
        self.send(engine::Command::PlayToRoom {
            room: self.key,
            samples,
            rate,
        });
    }

    /// A browser member's new offer (an ICE restart after a network change): the answer.
    pub async fn renegotiate_webrtc(
        &self,
        member: MemberId,
        offer: String,
    ) -> Result<String, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if !self.link().send(Command::WebRtcOffer {
            member,
            offer,
            reply,
        }) {
            return Err("the media worker is busy".into());
        }
        match tokio::time::timeout(Duration::from_secs(2), answer).await {
            Ok(Ok(answer)) => answer,
            _ => Err("the media worker did not answer".into()),
        }
    }

    /// How each member's media fares (members not on the worker are left out).
    pub async fn reports(&self, members: Vec<MemberId>) -> Vec<(MemberId, MemberReport)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if !self.link().send(Command::Reports { members, reply }) {
            return Vec::new();
        }
        tokio::time::timeout(Duration::from_secs(2), answer)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

/// Where a member's media arrives: a worker's shared port, or a pair of the call's own.
/// Holding it keeps its room on its worker.
pub struct Endpoint {
    /// The RTP address to announce (RTCP is on the next port).
    pub addr: SocketAddr,
    dedicated: Option<Arc<Dedicated>>,
    room: RoomMedia,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("dedicated", &self.dedicated.is_some())
            .field("room", &self.room)
            .finish()
    }
}

impl Endpoint {
    /// The RTCP address to announce when RTCP is not multiplexed.
    pub fn rtcp_addr(&self) -> SocketAddr {
        let port = match &self.dedicated {
            Some(d) => d.rtcp.local_addr().map(|a| a.port()).unwrap_or(0),
            None => self
                .room
                .inner
                .workers
                .get(self.room.worker)
                .and_then(|w| w.shared)
                .map_or(0, |a| a.port().wrapping_add(1)),
        };
        SocketAddr::new(self.addr.ip(), port)
    }

    /// The same media for another room: a call's own ports move to the room's worker; a
    /// shared port only serves rooms of its own worker (`None` otherwise).
    pub fn rehome(&self, room: &RoomMedia) -> Option<Endpoint> {
        if self.dedicated.is_none() && room.worker != self.room.worker {
            return None;
        }
        Some(Endpoint {
            addr: self.addr,
            dedicated: self.dedicated.clone(),
            room: room.clone(),
        })
    }

    /// A pair of ports of its own for the same room's video (a SIP video terminal's).
    pub fn video_endpoint(&self) -> std::io::Result<Endpoint> {
        let settings = &self.room.inner.settings;
        let (rtp, rtcp) = bind_pair(settings, 1 << 20)?;
        let port = rtp.local_addr()?.port();
        Ok(Endpoint {
            addr: SocketAddr::new(settings.public_ip, port),
            dedicated: Some(Arc::new(Dedicated { rtp, rtcp })),
            room: self.room.clone(),
        })
    }

    /// It has ports of its own.
    pub fn is_dedicated(&self) -> bool {
        self.dedicated.is_some()
    }
}

impl Dedicated {
    fn fds(&self) -> (std::os::fd::RawFd, std::os::fd::RawFd) {
        (self.rtp.as_raw_fd(), self.rtcp.as_raw_fd())
    }
}
