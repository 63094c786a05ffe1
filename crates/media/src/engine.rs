//! The media engine of one worker: many rooms' mixers behind a few shared ports. Sans-IO.
//!
//! A worker thread owns one [`Engine`]. Members of every room it owns send to the same UDP
//! port (or, where a network needs it, to a port of their own); the engine finds each
//! datagram's member, feeds its room's [`Mixer`], ticks each room when its deadline comes
//! (a heap, not a scan) and hands back datagrams to send and events for the rooms' owners.
//!
//! ## Finding a datagram's member (demultiplexing and latching)
//!
//! Per port, members are found by the address their media comes from (latched: learnt from
//! their first packets, symmetric RTP), and among members behind one address by SSRC.
//! A datagram from an address nobody is latched to may be:
//! - a latched member's stream moving (a NAT mapping that changed): found by its SSRC, it
//!   takes over only if SRTP authenticates it, or, for plain RTP, if it comes from an address
//!   the member is known by (its SDP, its signalling) after the current source went silent —
//!   a stranger cannot win, and cannot guess the SSRC either;
//! - a member's first packets: matched to members who have not sent yet by the exact address
//!   their SDP named, then by the addresses they are known by, then (SRTP members) by
//!   authenticating; on a member's own port, the first source latches.
//!
//! Nothing goes to an address that never sent anything back beyond a short start window
//! ([`MixerConfig::unverified_send_window`]).
//!
//! A browser member ([`MemberSetup::webrtc`]) is found first by the ICE username of its STUN
//! checks, then by the addresses its peer has accepted: everything from there goes through
//! its [`WebRtcPeer`] (DTLS, SRTP), and only the plain RTP that comes out reaches the mixer.

use rustc_hash::FxHashMap as HashMap;
use rustc_hash::FxHashSet as HashSet;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mixer::{
    Arrival, DropReason, Event, GroupId, MemberConfig, MemberId, MemberStats, Mixer, MixerConfig,
    PacketKind, PlaybackTarget, Source, TapFrame,
};
use crate::video::sfu::{Sfu, SfuStats, VideoPacket};
use crate::video::sip_leg::{
    ComposedFrame, VideoLeg, VideoLegConfig, VideoLegInput, VideoLegStats,
};
use crate::video::{StreamKey, Tile, VideoCodec};
use crate::webrtc::{PeerOutput, WebRtcPeer};

/// Identifies a room on this engine; chosen by the caller.
pub type RoomKey = u64;
/// Identifies a UDP port (a socket) of this engine; chosen by the caller.
pub type PortId = u32;

/// What a port carries and who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// Many members' RTP (and multiplexed RTCP).
    Shared,
    /// Many members' RTCP, for those who do not multiplex it (the shared RTP port + 1).
    SharedRtcp,
    /// One member's RTP: the first source latches, whatever its address.
    Dedicated,
    /// One member's RTCP.
    DedicatedRtcp,
    /// A browser's ICE-TCP connection (RFC 4571 frames, unframed by the caller): bound to
    /// the member whose ICE username its first check names.
    Tcp,
    /// A SIP video leg's RTP (and multiplexed RTCP): one member's, see
    /// [`Command::AddVideoLeg`].
    Video,
    /// A SIP video leg's RTCP.
    VideoRtcp,
}

impl PortKind {
    fn rtcp_only(self) -> bool {
        matches!(self, PortKind::SharedRtcp | PortKind::DedicatedRtcp)
    }
    fn dedicated(self) -> bool {
        matches!(self, PortKind::Dedicated | PortKind::DedicatedRtcp)
    }
}

/// The ports a member's media uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPorts {
    /// RTP and multiplexed RTCP.
    pub rtp: PortId,
    /// RTCP when the member does not multiplex it.
    pub rtcp: Option<PortId>,
}

/// A prompt or music to play to a member from the moment it joins.
#[derive(Debug, Clone)]
pub struct Playback {
    /// Mono PCM.
    pub samples: Arc<[i16]>,
    /// Its sample rate.
    pub rate: u32,
    /// Loops until stopped.
    pub looped: bool,
}

/// Everything a member joins with: nobody hears or is heard before the state says so.
#[derive(Debug)]
pub struct MemberSetup {
    /// The negotiated media.
    pub config: MemberConfig,
    /// Where its media arrives.
    pub ports: MemberPorts,
    /// Not heard.
    pub muted: bool,
    /// Hears nothing but what is played to it alone.
    pub deaf: bool,
    /// Whisper group.
    pub group: Option<GroupId>,
    /// How long it may send nothing before [`Event::MediaTimeout`] (`None`: never).
    pub rtp_timeout: Option<Duration>,
    /// Played to it alone from the start (a PIN prompt, say).
    pub playback: Option<Playback>,
    /// A browser: its media goes through this WebRTC peer (the config is then plain RTP).
    pub webrtc: Option<Box<WebRtcPeer>>,
}

/// What the owner of a room asks of the engine.
#[derive(Debug)]
pub enum Command {
    /// A member joins a room (the room exists from its first member to its last).
    AddMember {
        /// The room.
        room: RoomKey,
        /// The member.
        member: MemberId,
        /// Its media and initial state.
        setup: Box<MemberSetup>,
    },
    /// New media for a member (a re-INVITE): codec, address, keys.
    UpdateMember {
        /// The member.
        member: MemberId,
        /// The renegotiated media.
        config: Box<MemberConfig>,
    },
    /// A member leaves its room.
    RemoveMember {
        /// The member.
        member: MemberId,
    },
    /// Heard or not.
    SetMuted {
        /// The member.
        member: MemberId,
        /// Muted.
        muted: bool,
    },
    /// Hears the room or not.
    SetDeaf {
        /// The member.
        member: MemberId,
        /// Deaf.
        deaf: bool,
    },
    /// Moves a member into a whisper group (`None`: the main room).
    SetGroup {
        /// The member.
        member: MemberId,
        /// The group.
        group: Option<GroupId>,
    },
    /// How long the member may send nothing (`None`: forever; a call on hold).
    SetRtpTimeout {
        /// The member.
        member: MemberId,
        /// The timeout.
        timeout: Option<Duration>,
    },
    /// Plays to one member, replacing what played to it.
    Play {
        /// The member.
        member: MemberId,
        /// What.
        playback: Playback,
    },
    /// Stops what plays to one member.
    StopPlay {
        /// The member.
        member: MemberId,
    },
    /// Plays to everyone in a room (a chime, an announcement).
    PlayToRoom {
        /// The room.
        room: RoomKey,
        /// Mono PCM.
        samples: Arc<[i16]>,
        /// Its sample rate.
        rate: u32,
    },
    /// Records a room or stops: its mix and members' voices come out of [`Engine::drain_taps`]
    /// (kept across the room's empty moments).
    SetTaps {
        /// The room.
        room: RoomKey,
        /// On or off.
        on: bool,
    },
    /// The room's composed picture is wanted (or no longer): its composer receives every
    /// tile's stream as one more viewer would ([`Engine::drain_composed`]).
    SetComposer {
        /// The room.
        room: RoomKey,
        /// On or off.
        on: bool,
    },
    /// The composer cannot decode a tile's stream: its sender is asked for a keyframe.
    ComposerLostPicture {
        /// The room.
        room: RoomKey,
        /// The tile.
        tile: usize,
    },
    /// What each tile of the room's video layout shows (browsers receive them in order).
    SetTiles {
        /// The room.
        room: RoomKey,
        /// The tiles.
        tiles: Vec<Tile>,
    },
    /// A SIP video terminal's video beside the member's audio (the member must be here): its
    /// camera goes to the room's SFU, the room's composed picture to it
    /// ([`crate::video::sip_leg`]). Its ports ([`PortKind::Video`], [`PortKind::VideoRtcp`])
    /// must be registered.
    AddVideoLeg {
        /// The member (its audio's id).
        member: MemberId,
        /// What the SDP said.
        config: Box<VideoLegConfig>,
        /// Its own port pair.
        ports: MemberPorts,
    },
    /// The member's video ends (its audio goes on); also when the member leaves.
    RemoveVideoLeg {
        /// The member.
        member: MemberId,
    },
    /// The room's composed picture of one size, for its video legs of that size.
    SendComposed {
        /// The room.
        room: RoomKey,
        /// The frame, packetized once.
        frame: Arc<ComposedFrame>,
    },
    /// Sends a keypad digit to a member (RFC 4733, or tones without it).
    SendDtmf {
        /// The member.
        member: MemberId,
        /// The digit.
        digit: char,
        /// How long.
        duration: Duration,
    },
}

/// Why a command could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The member is not on this engine.
    #[error("no member {0} here")]
    NoSuchMember(MemberId),
    /// The member is already in a room here.
    #[error("member {0} is already here")]
    AlreadyHere(MemberId),
    /// A port the member would use is not registered.
    #[error("port {0} is not registered")]
    NoSuchPort(PortId),
    /// The codec library refused the member's configuration.
    #[error("the member's media cannot be set up: {0}")]
    Media(String),
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// From which port.
    pub port: PortId,
    /// To where.
    pub to: SocketAddr,
    /// RTP or RTCP.
    pub kind: PacketKind,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What a member's media looks like from outside: where it comes from and how it fares.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberReport {
    /// The room.
    pub room: RoomKey,
    /// The codec's name.
    pub codec: &'static str,
    /// Counters and quality.
    pub stats: MemberStats,
    /// Where its media comes from.
    pub source: Source,
}

/// Engine-wide figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Datagrams no member claimed.
    pub unknown_source: u64,
    /// Datagrams refused because their source may not take over a stream.
    pub strangers: u64,
    /// Other drops (malformed, SRTP, payload type…).
    pub dropped: u64,
    /// Rooms ticked.
    pub ticks: u64,
}

struct Room {
    key: RoomKey,
    generation: u32,
    mixer: Mixer,
    /// Browsers' video, forwarded to the layout's tiles.
    sfu: Sfu,
}

/// The viewer id the room's composer has in its SFU (no member has it).
pub const COMPOSER: MemberId = MemberId::MAX;

/// What the room's composer is told by the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposerInput {
    /// A tile's packet.
    Tile(ComposedPacket),
    /// A video leg lost the picture (PLI, FIR): the next frame is a keyframe.
    KeyframeWanted,
}

/// A tile's packet for the room's composer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedPacket {
    /// The tile.
    pub tile: usize,
    /// Its codec.
    pub codec: VideoCodec,
    /// The tile's sequence number.
    pub seq: u64,
    /// End of a frame.
    pub marker: bool,
    /// The payload (one copy for the composer, shared with viewers' sends).
    pub payload: Arc<[u8]>,
}

/// A SIP video leg, beside its member's audio.
struct VideoLegEntry {
    room: RoomKey,
    leg: VideoLeg,
    ports: MemberPorts,
}

/// A packet the SFU has for a viewer (its payload shared by every viewer).
struct VideoSend {
    viewer: MemberId,
    slot: usize,
    codec: VideoCodec,
    seq: u64,
    timestamp: u32,
    marker: bool,
}

struct MemberEntry {
    slot: usize,
    ports: MemberPorts,
    /// As the demultiplexer knows it (kept in step with the mixer after each datagram).
    source: Source,
    /// What the member's SDP and signalling say, for matching its first packets.
    expect: Option<SocketAddr>,
    expect_rtcp: Option<SocketAddr>,
    known_ips: Vec<IpAddr>,
    srtp: bool,
    rtcp_mux: bool,
    /// A browser's WebRTC session, when the member is one.
    webrtc: Option<Box<WebRtcPeer>>,
    /// Where its peer has accepted datagrams from (at most [`MAX_PEER_ADDRS`]).
    peer_addrs: Vec<SocketAddr>,
    /// Its ICE-TCP connections ICE has accepted, by the browser's address (at most
    /// [`MAX_PEER_ADDRS`]).
    tcp_ports: Vec<(SocketAddr, PortId)>,
    /// The peer's timeout as it stands on the heap.
    peer_due: Option<Duration>,
}

/// Addresses a browser's peer is known at, at most (ICE may try several; a flood of checks
/// from made-up addresses cannot grow it).
const MAX_PEER_ADDRS: usize = 8;

#[derive(Default)]
struct Demux {
    /// Latched sources, with each member's SSRC (several members may share an address).
    by_addr: HashMap<SocketAddr, Vec<(MemberId, Option<u32>)>>,
    /// Members' SSRCs, for a stream that moves.
    by_ssrc: HashMap<u32, Vec<MemberId>>,
    /// Members who have not sent yet, in the order they came.
    waiting: Vec<MemberId>,
    /// Where members that left were latched, until when: their last packets (still in flight
    /// or in the socket when they hang up) must not become a newly joined member's first ones
    /// by the address rule (same IP, another port), which would latch the newcomer to a
    /// dead address — it would hear nothing and never be heard.
    departed: HashMap<SocketAddr, Duration>,
    /// Browsers by the addresses their peers accepted.
    peers_by_addr: HashMap<SocketAddr, MemberId>,
}

/// How long a departed member's address is not taken for a newcomer's (by IP alone).
const DEPARTED_HOLD: Duration = Duration::from_secs(2);
/// Departed addresses remembered per port, at most (a flood of leaving calls cannot grow it).
const MAX_DEPARTED: usize = 16_384;

impl Demux {
    fn depart(&mut self, now: Duration, addr: SocketAddr) {
        if self.departed.len() >= MAX_DEPARTED {
            self.departed.retain(|_, until| *until > now);
        }
        if self.departed.len() < MAX_DEPARTED {
            self.departed.insert(addr, now + DEPARTED_HOLD);
        }
    }

    fn recently_departed(&self, now: Duration, addr: SocketAddr) -> bool {
        self.departed.get(&addr).is_some_and(|until| now < *until)
    }
}

struct Port {
    kind: PortKind,
    demux: Demux,
    /// A TCP port's browser, once its first check named it.
    tcp_member: Option<MemberId>,
}

/// SRTP members tried by authentication for one datagram from an unknown address.
const MAX_SRTP_TRIES: usize = 8;

/// Many rooms' mixers behind shared ports. See the module documentation.
pub struct Engine {
    cfg: MixerConfig,
    rooms: Vec<Option<Room>>,
    free: Vec<usize>,
    room_index: HashMap<RoomKey, usize>,
    members: HashMap<MemberId, MemberEntry>,
    ports: HashMap<PortId, Port>,
    heap: BinaryHeap<Reverse<(Duration, usize, u32)>>,
    generation: u32,
    transmits: Vec<Datagram>,
    /// Where a camera packet goes (kept between packets: no allocation on the hot path).
    video_sends: Vec<VideoSend>,
    events: Vec<(RoomKey, Event)>,
    /// Recorded rooms, and their frames since the last drain.
    tapped: HashSet<RoomKey>,
    taps: Vec<(RoomKey, TapFrame)>,
    composed: Vec<(RoomKey, ComposerInput)>,
    /// SIP video legs, and their ports.
    video_legs: HashMap<MemberId, VideoLegEntry>,
    video_ports: HashMap<PortId, MemberId>,
    stats: EngineStats,
    /// What `now` counts from (WebRTC peers keep time as instants).
    epoch: Instant,
    /// Browsers by our ICE username fragment (their checks name it first).
    peer_ufrags: HashMap<String, MemberId>,
    /// Browsers' next timeouts: (when, member), checked against the peer when popped.
    peer_heap: BinaryHeap<Reverse<(Duration, MemberId)>>,
}

impl Engine {
    /// An engine whose rooms mix with `cfg` (and share one loop cache).
    pub fn new(mut cfg: MixerConfig) -> Self {
        cfg.loops
            .get_or_insert_with(|| Arc::new(crate::mixer::LoopCache::default()));
        Engine {
            cfg,
            rooms: Vec::new(),
            free: Vec::new(),
            room_index: HashMap::default(),
            members: HashMap::default(),
            ports: HashMap::default(),
            heap: BinaryHeap::new(),
            generation: 0,
            transmits: Vec::new(),
            video_sends: Vec::new(),
            events: Vec::new(),
            tapped: HashSet::default(),
            taps: Vec::new(),
            composed: Vec::new(),
            video_legs: HashMap::default(),
            video_ports: HashMap::default(),
            stats: EngineStats::default(),
            epoch: Instant::now(),
            peer_ufrags: HashMap::default(),
            peer_heap: BinaryHeap::new(),
        }
    }

    /// What the `now` given to this engine counts from (by default, when it was made):
    /// browsers' sessions keep time as instants.
    pub fn set_epoch(&mut self, epoch: Instant) {
        self.epoch = epoch;
    }

    fn instant(&self, now: Duration) -> Instant {
        self.epoch + now
    }

    /// Registers a port (a socket the caller reads and sends on).
    pub fn add_port(&mut self, port: PortId, kind: PortKind) {
        self.ports.insert(
            port,
            Port {
                kind,
                demux: Demux::default(),
                tcp_member: None,
            },
        );
    }

    /// Forgets a port (its members must have left; a browser's TCP connection may close
    /// while it stays: it then has only UDP, or nothing until it restarts ICE).
    pub fn remove_port(&mut self, port: PortId) {
        if let Some(p) = self.ports.remove(&port)
            && let Some(member) = p.tcp_member
            && let Some(entry) = self.members.get_mut(&member)
        {
            entry.tcp_ports.retain(|(_, id)| *id != port);
        }
    }

    /// Rooms with members.
    pub fn room_count(&self) -> usize {
        self.room_index.len()
    }

    /// Members in every room.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The room a member is in.
    pub fn room_of(&self, member: MemberId) -> Option<RoomKey> {
        let entry = self.members.get(&member)?;
        self.rooms.get(entry.slot)?.as_ref().map(|r| r.key)
    }

    /// How a member's media fares.
    pub fn member_report(&self, member: MemberId) -> Option<MemberReport> {
        let entry = self.members.get(&member)?;
        let room = self.rooms.get(entry.slot)?.as_ref()?;
        Some(MemberReport {
            room: room.key,
            codec: room.mixer.member_codec(member)?.name(),
            stats: room.mixer.member_stats(member)?,
            source: entry.source,
        })
    }

    /// Applies a command at `now`.
    pub fn handle_command(&mut self, now: Duration, command: Command) -> Result<(), CommandError> {
        match command {
            Command::AddMember {
                room,
                member,
                setup,
            } => self.add_member(now, room, member, *setup),
            Command::UpdateMember { member, config } => self.update_member(now, member, *config),
            Command::RemoveMember { member } => self.remove_member(now, member),
            Command::SetMuted { member, muted } => {
                self.with_mixer(member, |m| m.set_muted(member, muted))
            }
            Command::SetDeaf { member, deaf } => {
                self.with_mixer(member, |m| m.set_deaf(member, deaf))
            }
            Command::SetGroup { member, group } => {
                self.with_mixer(member, |m| m.set_group(member, group))
            }
            Command::SetRtpTimeout { member, timeout } => {
                self.with_mixer(member, |m| m.set_rtp_timeout(member, timeout, now))
            }
            Command::Play { member, playback } => self.with_mixer(member, |m| {
                m.play_shared(
                    PlaybackTarget::Member(member),
                    1,
                    &playback.samples,
                    playback.rate,
                    playback.looped,
                    1.0,
                )
            }),
            Command::StopPlay { member } => self.with_mixer(member, |m| {
                m.stop_playback(PlaybackTarget::Member(member));
                true
            }),
            Command::SetTaps { room, on } => {
                if on {
                    self.tapped.insert(room);
                } else {
                    self.tapped.remove(&room);
                }
                if let Some(&slot) = self.room_index.get(&room)
                    && let Some(r) = self.rooms[slot].as_mut()
                {
                    r.mixer.set_taps(on);
                }
                Ok(())
            }
            Command::PlayToRoom {
                room,
                samples,
                rate,
            } => {
                if let Some(&slot) = self.room_index.get(&room)
                    && let Some(r) = self.rooms[slot].as_mut()
                {
                    r.mixer
                        .play(PlaybackTarget::Room, 1, &samples, rate, false, 1.0);
                }
                Ok(())
            }
            Command::SetComposer { room, on } => self.with_sfu(now, room, |sfu| {
                if on {
                    sfu.add_viewer(now, COMPOSER, crate::video::MAX_TILES);
                } else {
                    sfu.remove_member(COMPOSER);
                }
            }),
            Command::ComposerLostPicture { room, tile } => self.with_sfu(now, room, |sfu| {
                sfu.viewer_lost_picture(now, COMPOSER, tile)
            }),
            Command::SetTiles { room, tiles } => {
                self.with_sfu(now, room, |sfu| sfu.set_tiles(now, tiles))
            }
            Command::SendDtmf {
                member,
                digit,
                duration,
            } => self.with_mixer(member, |m| m.send_dtmf(member, digit, duration)),
            Command::AddVideoLeg {
                member,
                config,
                ports,
            } => {
                let room = self
                    .room_of(member)
                    .ok_or(CommandError::NoSuchMember(member))?;
                for port in [Some(ports.rtp), ports.rtcp].into_iter().flatten() {
                    if !self.ports.contains_key(&port) {
                        return Err(CommandError::NoSuchPort(port));
                    }
                }
                self.remove_video_leg(member);
                for port in [Some(ports.rtp), ports.rtcp].into_iter().flatten() {
                    self.video_ports.insert(port, member);
                }
                let entry = VideoLegEntry {
                    room,
                    leg: VideoLeg::new(*config),
                    ports,
                };
                self.video_legs.insert(member, entry);
                // the terminal's first picture: ask at once rather than wait for its GOP
                self.ask_video_leg(member);
                Ok(())
            }
            Command::RemoveVideoLeg { member } => {
                self.remove_video_leg(member);
                Ok(())
            }
            Command::SendComposed { room, frame } => {
                for entry in self.video_legs.values_mut().filter(|e| e.room == room) {
                    let port = entry.ports.rtp;
                    let transmits = &mut self.transmits;
                    entry.leg.send(&frame, &mut |to, data| {
                        transmits.push(Datagram {
                            port,
                            to,
                            kind: PacketKind::Rtp,
                            data,
                        })
                    });
                }
                Ok(())
            }
        }
    }

    fn remove_video_leg(&mut self, member: MemberId) {
        if let Some(entry) = self.video_legs.remove(&member) {
            for port in [Some(entry.ports.rtp), entry.ports.rtcp]
                .into_iter()
                .flatten()
            {
                self.video_ports.remove(&port);
            }
            if let Some(&slot) = self.room_index.get(&entry.room)
                && let Some(room) = self.rooms[slot].as_mut()
            {
                room.sfu.remove_member(member);
            }
        }
    }

    /// Asks a SIP video terminal for a keyframe (PLI and FIR).
    fn ask_video_leg(&mut self, member: MemberId) -> bool {
        let Some(entry) = self.video_legs.get_mut(&member) else {
            return false;
        };
        if let Some((to, data, rtcp_port)) = entry.leg.keyframe_request() {
            let port = match (rtcp_port, entry.ports.rtcp) {
                (true, Some(rtcp)) => rtcp,
                _ => entry.ports.rtp,
            };
            self.transmits.push(Datagram {
                port,
                to,
                kind: PacketKind::Rtcp,
                data,
            });
        }
        true
    }

    /// A SIP video leg's counters.
    pub fn video_leg_stats(&self, member: MemberId) -> Option<VideoLegStats> {
        Some(self.video_legs.get(&member)?.leg.stats())
    }

    /// A datagram on a SIP video leg's port.
    fn route_video_leg(
        &mut self,
        now: Duration,
        port: PortId,
        kind: PortKind,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let member = *self
            .video_ports
            .get(&port)
            .ok_or(DropReason::UnknownSource)?;
        let entry = self
            .video_legs
            .get_mut(&member)
            .ok_or(DropReason::UnknownSource)?;
        let room = entry.room;
        match entry
            .leg
            .receive(now, from, data, kind == PortKind::VideoRtcp)?
        {
            VideoLegInput::Camera {
                seq,
                timestamp,
                marker,
                payload,
            } => {
                let packet = VideoPacket {
                    codec: VideoCodec::H264,
                    layer: crate::video::Layer::High,
                    seq,
                    timestamp,
                    marker,
                    payload,
                };
                let stream = StreamKey {
                    member,
                    kind: crate::video::StreamKind::Camera,
                };
                if let Some(&slot) = self.room_index.get(&room) {
                    self.route_camera(now, slot, stream, packet);
                }
            }
            VideoLegInput::KeyframeWanted => {
                self.composed.push((room, ComposerInput::KeyframeWanted));
            }
            VideoLegInput::Nothing => {}
        }
        Ok(())
    }

    /// A sender's video packet through its room's SFU to the viewers of its tile.
    fn route_camera(
        &mut self,
        now: Duration,
        slot: usize,
        stream: StreamKey,
        packet: VideoPacket<'_>,
    ) {
        let Some(room) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if !room.sfu.knows(stream) {
            self.events.push((
                room.key,
                Event::VideoStarted {
                    member: stream.member,
                },
            ));
        }
        let mut sends = std::mem::take(&mut self.video_sends);
        sends.clear();
        room.sfu.route(now, stream, packet, &mut |f| {
            sends.push(VideoSend {
                viewer: f.viewer,
                slot: f.slot,
                codec: f.codec,
                seq: f.seq,
                timestamp: f.timestamp,
                marker: f.marker,
            })
        });
        let key = room.key;
        if !sends.is_empty() {
            self.send_video(now, key, &sends, packet.payload);
        }
        self.video_sends = sends;
        self.video_asks(now, slot);
    }

    /// Changes a room's SFU (a room not here has none: nothing to do), then asks for the
    /// keyframes the change needs.
    fn with_sfu(
        &mut self,
        now: Duration,
        room: RoomKey,
        f: impl FnOnce(&mut Sfu),
    ) -> Result<(), CommandError> {
        let Some(&slot) = self.room_index.get(&room) else {
            return Ok(());
        };
        if let Some(r) = self.rooms[slot].as_mut() {
            f(&mut r.sfu);
        }
        self.video_asks(now, slot);
        Ok(())
    }

    fn with_mixer(
        &mut self,
        member: MemberId,
        f: impl FnOnce(&mut Mixer) -> bool,
    ) -> Result<(), CommandError> {
        let slot = self
            .members
            .get(&member)
            .ok_or(CommandError::NoSuchMember(member))?
            .slot;
        let applied = self
            .rooms
            .get_mut(slot)
            .and_then(Option::as_mut)
            .is_some_and(|room| f(&mut room.mixer));
        if applied {
            Ok(())
        } else {
            Err(CommandError::NoSuchMember(member))
        }
    }

    fn add_member(
        &mut self,
        now: Duration,
        key: RoomKey,
        member: MemberId,
        setup: MemberSetup,
    ) -> Result<(), CommandError> {
        if self.members.contains_key(&member) {
            return Err(CommandError::AlreadyHere(member));
        }
        for port in [Some(setup.ports.rtp), setup.ports.rtcp]
            .into_iter()
            .flatten()
        {
            if !self.ports.contains_key(&port) {
                return Err(CommandError::NoSuchPort(port));
            }
        }
        let slot = match self.room_index.get(&key) {
            Some(&slot) => slot,
            None => {
                self.generation = self.generation.wrapping_add(1);
                let mut mixer = Mixer::new(self.cfg.clone());
                mixer.set_taps(self.tapped.contains(&key));
                let room = Room {
                    key,
                    generation: self.generation,
                    mixer,
                    sfu: Sfu::new(),
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.rooms[slot] = Some(room);
                        slot
                    }
                    None => {
                        self.rooms.push(Some(room));
                        self.rooms.len() - 1
                    }
                };
                self.room_index.insert(key, slot);
                slot
            }
        };
        let entry = MemberEntry {
            slot,
            ports: setup.ports,
            source: Source::default(),
            expect: setup.config.remote,
            expect_rtcp: setup.config.rtcp_remote,
            known_ips: setup.config.source_ips.clone(),
            srtp: setup.config.srtp.is_some(),
            rtcp_mux: setup.config.rtcp_mux,
            webrtc: setup.webrtc,
            peer_addrs: Vec::new(),
            tcp_ports: Vec::new(),
            peer_due: None,
        };
        let Some(room) = self.rooms[slot].as_mut() else {
            return Err(CommandError::NoSuchMember(member));
        };
        let added = room.mixer.add_member(member, setup.config, now).map(|()| {
            let m = &mut room.mixer;
            m.set_muted(member, setup.muted);
            m.set_deaf(member, setup.deaf);
            m.set_group(member, setup.group);
            m.set_rtp_timeout(member, setup.rtp_timeout, now);
            if let Some(p) = &setup.playback {
                m.play_shared(
                    PlaybackTarget::Member(member),
                    1,
                    &p.samples,
                    p.rate,
                    p.looped,
                    1.0,
                );
            }
        });
        if let Err(err) = added {
            if room.mixer.is_empty() {
                self.free_room(slot);
            }
            return Err(CommandError::Media(err.to_string()));
        }
        let video_slots = entry.webrtc.as_ref().map_or(0, |p| p.video_slots());
        if video_slots > 0 {
            room.sfu.add_viewer(now, member, video_slots);
        }
        self.enter_demux(member, &entry);
        self.members.insert(member, entry);
        self.schedule(slot);
        self.schedule_peer(member);
        self.video_asks(now, slot);
        Ok(())
    }

    fn update_member(
        &mut self,
        now: Duration,
        member: MemberId,
        config: MemberConfig,
    ) -> Result<(), CommandError> {
        let Some(entry) = self.members.get(&member) else {
            return Err(CommandError::NoSuchMember(member));
        };
        let slot = entry.slot;
        let (expect, expect_rtcp, known_ips, srtp, rtcp_mux) = (
            config.remote,
            config.rtcp_remote,
            config.source_ips.clone(),
            config.srtp.is_some(),
            config.rtcp_mux,
        );
        let Some(room) = self.rooms[slot].as_mut() else {
            return Err(CommandError::NoSuchMember(member));
        };
        room.mixer
            .update_member(member, config, now)
            .map_err(|e| CommandError::Media(e.to_string()))?;
        let source = room.mixer.member_source(member).unwrap_or_default();
        if let Some(mut entry) = self.members.remove(&member) {
            self.leave_demux(member, &entry);
            entry.expect = expect;
            entry.expect_rtcp = expect_rtcp;
            entry.known_ips = known_ips;
            entry.srtp = srtp;
            entry.rtcp_mux = rtcp_mux;
            entry.source = source;
            self.enter_demux(member, &entry);
            self.members.insert(member, entry);
        }
        self.schedule(slot);
        Ok(())
    }

    fn remove_member(&mut self, now: Duration, member: MemberId) -> Result<(), CommandError> {
        let Some(entry) = self.members.remove(&member) else {
            return Err(CommandError::NoSuchMember(member));
        };
        self.remove_video_leg(member);
        for port in [Some(entry.ports.rtp), entry.ports.rtcp]
            .into_iter()
            .flatten()
        {
            if let Some(port) = self.ports.get_mut(&port) {
                for addr in [entry.source.rtp, entry.source.rtcp].into_iter().flatten() {
                    port.demux.depart(now, addr);
                }
            }
        }
        self.leave_demux(member, &entry);
        let mut entry = entry;
        through_peer(&mut entry, &mut self.transmits, |peer, out| peer.close(out));
        let Some(room) = self.rooms[entry.slot].as_mut() else {
            return Ok(());
        };
        room.sfu.remove_member(member);
        if let Some(bye) = room.mixer.remove_member(member)
            && entry.webrtc.is_none()
        {
            let port = match (bye.kind, entry.ports.rtcp, entry.rtcp_mux) {
                (PacketKind::Rtcp, Some(rtcp), false) => rtcp,
                _ => entry.ports.rtp,
            };
            if let Some(to) = bye.to {
                self.transmits.push(Datagram {
                    port,
                    to,
                    kind: bye.kind,
                    data: bye.data,
                });
            }
        }
        // what the mixer noticed last (a talker stopping) still goes to the owner
        let key = room.key;
        let events = room.mixer.take_events();
        self.events.extend(events.into_iter().map(|e| (key, e)));
        if room.mixer.is_empty() {
            self.free_room(entry.slot);
        }
        Ok(())
    }

    fn free_room(&mut self, slot: usize) {
        if let Some(room) = self.rooms[slot].take() {
            self.room_index.remove(&room.key);
            self.free.push(slot);
        }
    }

    /// Puts the room's next tick on the heap.
    fn schedule(&mut self, slot: usize) {
        if let Some(room) = self.rooms[slot].as_ref()
            && let Some(at) = room.mixer.next_deadline()
        {
            self.heap.push(Reverse((at, slot, room.generation)));
        }
    }

    fn is_live(&self, at: Duration, slot: usize, generation: u32) -> bool {
        self.rooms
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.generation == generation && r.mixer.next_deadline() == Some(at))
    }

    /// When [`Engine::handle_timeout`] should next run; `None` with no rooms.
    pub fn poll_timeout(&mut self) -> Option<Duration> {
        let mut next = None;
        while let Some(&Reverse((at, slot, generation))) = self.heap.peek() {
            if self.is_live(at, slot, generation) {
                next = Some(at);
                break;
            }
            self.heap.pop();
        }
        while let Some(&Reverse((at, member))) = self.peer_heap.peek() {
            if self.peer_is_due(at, member) {
                return Some(next.map_or(at, |n: Duration| n.min(at)));
            }
            self.peer_heap.pop();
        }
        next
    }

    fn peer_is_due(&self, at: Duration, member: MemberId) -> bool {
        self.members
            .get(&member)
            .is_some_and(|e| e.peer_due == Some(at))
    }

    /// Puts a browser's next timeout on the heap (when it is sooner than the one there).
    fn schedule_peer(&mut self, member: MemberId) {
        let epoch = self.epoch;
        let Some(entry) = self.members.get_mut(&member) else {
            return;
        };
        let Some(at) = entry.webrtc.as_ref().and_then(|p| p.poll_timeout()) else {
            return;
        };
        let at = at.saturating_duration_since(epoch);
        if entry.peer_due.is_none_or(|due| at < due) {
            entry.peer_due = Some(at);
            self.peer_heap.push(Reverse((at, member)));
        }
    }

    /// A browser's new offer (an ICE restart): our answer. Its new ICE username finds it from
    /// now on; the addresses ICE accepted stay until it accepts others.
    pub fn renegotiate_webrtc(
        &mut self,
        member: MemberId,
        offer: &str,
    ) -> Result<String, CommandError> {
        let Some(mut entry) = self.members.remove(&member) else {
            return Err(CommandError::NoSuchMember(member));
        };
        self.leave_demux(member, &entry);
        let answer = match entry.webrtc.as_mut() {
            Some(peer) => peer
                .renegotiate(offer)
                .map_err(|e| CommandError::Media(e.to_string())),
            None => Err(CommandError::Media("not a browser".into())),
        };
        self.enter_demux(member, &entry);
        self.members.insert(member, entry);
        self.schedule_peer(member);
        answer
    }

    /// Runs browsers' timeouts that have come.
    fn handle_peer_timeouts(&mut self, now: Duration) {
        while let Some(&Reverse((at, member))) = self.peer_heap.peek() {
            if at > now {
                break;
            }
            self.peer_heap.pop();
            if !self.peer_is_due(at, member) {
                continue;
            }
            let instant = self.instant(now);
            let mut outs = Vec::new();
            if let Some(entry) = self.members.get_mut(&member) {
                entry.peer_due = None;
                if let Some(peer) = entry.webrtc.as_mut() {
                    peer.handle_timeout(instant, &mut |o| outs.push(o));
                }
            }
            self.peer_outputs(now, member, outs, None);
            self.schedule_peer(member);
        }
    }

    /// A datagram for a browser's peer (STUN, DTLS, SRTP).
    fn deliver_to_peer(
        &mut self,
        now: Duration,
        port_id: PortId,
        member: MemberId,
        from: SocketAddr,
        data: &[u8],
        tcp: bool,
    ) -> Result<(), DropReason> {
        let instant = self.instant(now);
        let Some(entry) = self.members.get_mut(&member) else {
            return Err(DropReason::UnknownMember);
        };
        let Some(peer) = entry.webrtc.as_mut() else {
            return Err(DropReason::UnknownMember);
        };
        if !peer.accepts(instant, tcp, from, data) {
            return Err(DropReason::Stranger);
        }
        let mut outs = Vec::new();
        peer.handle_datagram(instant, tcp, from, data, &mut |o| outs.push(o));
        // an address is learnt once ICE has seen a check from it succeed (a forged check
        // with our username but not our password teaches nothing)
        if !tcp
            && !entry.peer_addrs.contains(&from)
            && entry.peer_addrs.len() < MAX_PEER_ADDRS
            && peer.knows(instant, false, from)
        {
            entry.peer_addrs.push(from);
            if let Some(port) = self.ports.get_mut(&port_id) {
                port.demux.peers_by_addr.insert(from, member);
            }
        }
        // what answers a check over TCP goes back on the connection it came from
        let via = tcp.then_some((from, port_id));
        self.peer_outputs(now, member, outs, via);
        self.schedule_peer(member);
        Ok(())
    }

    /// What a browser's peer gave back: datagrams to send, RTP for the mix, its end.
    fn peer_outputs(
        &mut self,
        now: Duration,
        member: MemberId,
        outs: Vec<PeerOutput>,
        via: Option<(SocketAddr, PortId)>,
    ) {
        let Some(entry) = self.members.get(&member) else {
            return;
        };
        let (port, slot) = (entry.ports.rtp, entry.slot);
        let tcp_ports = entry.tcp_ports.clone();
        // The mixer knows a browser by one fixed address (the peer's own): the peer has
        // authenticated what it hands over, and it alone knows where the browser is now
        // (ICE may move it), so the mixer's latching has nothing to decide.
        let Some(anchor) = entry.webrtc.as_ref().map(|p| p.local()) else {
            return;
        };
        for out in outs {
            match out {
                PeerOutput::Transmit { tcp, to, data } => {
                    let Some(port) = tcp_port(tcp, port, &tcp_ports, to)
                        .or_else(|| via.filter(|(from, _)| tcp && *from == to).map(|(_, id)| id))
                    else {
                        continue;
                    };
                    self.transmits.push(Datagram {
                        port,
                        to,
                        kind: PacketKind::Rtp,
                        data,
                    });
                }
                PeerOutput::Rtp { from, data } => {
                    let Some(room) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    match room
                        .mixer
                        .receive(now, member, Some(anchor), &data, Arrival::Candidate)
                    {
                        Ok(source) => {
                            if let Some(entry) = self.members.get_mut(&member) {
                                entry.source = Source {
                                    rtp: Some(from),
                                    ..source
                                };
                            }
                        }
                        Err(_) => self.stats.dropped += 1,
                    }
                }
                PeerOutput::Video {
                    kind,
                    codec,
                    layer,
                    seq,
                    timestamp,
                    marker,
                    payload,
                } => {
                    self.route_camera(
                        now,
                        slot,
                        StreamKey { member, kind },
                        VideoPacket {
                            codec,
                            layer,
                            seq,
                            timestamp,
                            marker,
                            payload: &payload,
                        },
                    );
                }
                PeerOutput::LostPicture { slot: tile } => {
                    if let Some(room) = self.rooms.get_mut(slot).and_then(Option::as_mut) {
                        room.sfu.viewer_lost_picture(now, member, tile);
                    }
                    self.video_asks(now, slot);
                }
                PeerOutput::Estimate { bps } => {
                    if let Some(room) = self.rooms.get_mut(slot).and_then(Option::as_mut) {
                        room.sfu.set_estimate(now, member, bps);
                    }
                    self.video_asks(now, slot);
                }
                // the browser is gone: its owner hangs it up as it does a silent call
                PeerOutput::Closed => {
                    if let Some(room) = self.rooms.get(slot).and_then(Option::as_ref) {
                        self.events.push((room.key, Event::MediaTimeout { member }));
                    }
                }
            }
        }
    }

    /// Hands forwarded video to the viewers' peers (one payload, many viewers).
    fn send_video(&mut self, now: Duration, room: RoomKey, sends: &[VideoSend], payload: &[u8]) {
        let instant = self.instant(now);
        for v in sends {
            if v.viewer == COMPOSER {
                self.composed.push((
                    room,
                    ComposerInput::Tile(ComposedPacket {
                        tile: v.slot,
                        codec: v.codec,
                        seq: v.seq,
                        marker: v.marker,
                        payload: payload.into(),
                    }),
                ));
                continue;
            }
            let Some(entry) = self.members.get_mut(&v.viewer) else {
                continue;
            };
            through_peer(entry, &mut self.transmits, |peer, out| {
                peer.send_video(
                    instant,
                    v.slot,
                    v.codec,
                    v.seq,
                    v.timestamp,
                    v.marker,
                    payload,
                    out,
                )
            });
        }
        for v in sends {
            self.schedule_peer(v.viewer);
        }
    }

    /// The room's SFU wants keyframes: its senders' peers ask their browsers (PLI).
    fn video_asks(&mut self, now: Duration, slot: usize) {
        let Some(room) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let asks = room.sfu.take_keyframe_requests();
        if asks.is_empty() {
            return;
        }
        let instant = self.instant(now);
        for (stream, layer) in asks {
            if self.ask_video_leg(stream.member) {
                continue;
            }
            let Some(entry) = self.members.get_mut(&stream.member) else {
                continue;
            };
            through_peer(entry, &mut self.transmits, |peer, out| {
                peer.request_keyframe(instant, stream.kind, layer, out)
            });
            self.schedule_peer(stream.member);
        }
    }

    /// A room's video figures (`None`: no such room here).
    pub fn video_stats(&self, room: RoomKey) -> Option<SfuStats> {
        let slot = *self.room_index.get(&room)?;
        Some(self.rooms[slot].as_ref()?.sfu.stats())
    }

    /// Ticks every room whose deadline has come.
    pub fn handle_timeout(&mut self, now: Duration) {
        while let Some(&Reverse((at, slot, generation))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if !self.is_live(at, slot, generation) {
                continue;
            }
            let Some(room) = self.rooms[slot].as_mut() else {
                continue;
            };
            let out = room.mixer.tick(now);
            self.stats.ticks += 1;
            let key = room.key;
            let instant = self.epoch + now;
            for t in out.transmits {
                let Some(to) = t.to else { continue };
                let Some(entry) = self.members.get_mut(&t.member) else {
                    continue;
                };
                if entry.webrtc.is_some() {
                    // a browser's media goes through its peer; RTCP is the peer's own
                    if t.kind == PacketKind::Rtp {
                        through_peer(entry, &mut self.transmits, |peer, out| {
                            peer.send_rtp(instant, &t.data, out)
                        });
                    }
                    continue;
                }
                let port = match (t.kind, entry.ports.rtcp, entry.rtcp_mux) {
                    (PacketKind::Rtcp, Some(rtcp), false) => rtcp,
                    _ => entry.ports.rtp,
                };
                self.transmits.push(Datagram {
                    port,
                    to,
                    kind: t.kind,
                    data: t.data,
                });
            }
            self.events
                .extend(out.events.into_iter().map(|event| (key, event)));
            self.taps
                .extend(out.taps.into_iter().map(|frame| (key, frame)));
            if let Some(room) = self.rooms[slot].as_mut() {
                room.sfu.handle_timeout(now);
            }
            self.video_asks(now, slot);
            self.schedule(slot);
        }
        self.handle_peer_timeouts(now);
    }

    /// Datagrams to send, in order; the caller sends them (batched) and may keep the vector.
    pub fn drain_transmits(&mut self) -> std::vec::Drain<'_, Datagram> {
        self.transmits.drain(..)
    }

    /// What rooms' composers are told (see [`Command::SetComposer`]), in order.
    pub fn drain_composed(&mut self) -> std::vec::Drain<'_, (RoomKey, ComposerInput)> {
        self.composed.drain(..)
    }

    /// Recorded rooms' frames (see [`Command::SetTaps`]), in order.
    pub fn drain_taps(&mut self) -> std::vec::Drain<'_, (RoomKey, TapFrame)> {
        self.taps.drain(..)
    }

    /// Events for the rooms' owners: talk start/stop, keypad digits, playbacks that ended,
    /// media timeouts, RTCP BYE.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, (RoomKey, Event)> {
        self.events.drain(..)
    }

    /// A datagram arrived on `port` from `from` at `now`: finds its member and feeds it.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        port: PortId,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let result = self.route(now, port, from, data);
        match result {
            Err(DropReason::UnknownSource) => self.stats.unknown_source += 1,
            Err(DropReason::Stranger) => self.stats.strangers += 1,
            Err(_) => self.stats.dropped += 1,
            Ok(()) => {}
        }
        result
    }

    fn route(
        &mut self,
        now: Duration,
        port_id: PortId,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let Some(port) = self.ports.get(&port_id) else {
            return Err(DropReason::UnknownSource);
        };
        let kind = port.kind;
        if matches!(kind, PortKind::Video | PortKind::VideoRtcp) {
            return self.route_video_leg(now, port_id, kind, from, data);
        }
        if kind == PortKind::Tcp {
            // a browser's TCP connection: its first check names the member, the rest is its
            let member = match port.tcp_member {
                Some(member) => Some(member),
                None => crate::webrtc::stun_local_ufrag(data)
                    .and_then(|u| self.peer_ufrags.get(u).copied()),
            };
            let Some(member) = member else {
                return Err(DropReason::UnknownSource);
            };
            self.deliver_to_peer(now, port_id, member, from, data, true)?;
            // the connection is the member's once ICE has accepted a check on it (a forged
            // one, our username without our password, binds nothing)
            let instant = self.instant(now);
            let Some(entry) = self.members.get_mut(&member) else {
                return Ok(());
            };
            let known = entry.tcp_ports.iter().any(|(_, id)| *id == port_id);
            if !known
                && entry.tcp_ports.len() < MAX_PEER_ADDRS
                && entry
                    .webrtc
                    .as_ref()
                    .is_some_and(|p| p.knows(instant, true, from))
            {
                entry.tcp_ports.push((from, port_id));
                if let Some(port) = self.ports.get_mut(&port_id) {
                    port.tcp_member = Some(member);
                }
            }
            return Ok(());
        }
        if !kind.rtcp_only() {
            // browsers: by the addresses their peers accepted, then STUN by ICE username;
            // RFC 7983: a first byte below 4 is STUN, 20–63 DTLS (nobody else's)
            if let Some(&member) = port.demux.peers_by_addr.get(&from) {
                return self.deliver_to_peer(now, port_id, member, from, data, false);
            }
            match data.first() {
                Some(0..=3) => {
                    let member = crate::webrtc::stun_local_ufrag(data)
                        .and_then(|u| self.peer_ufrags.get(u).copied())
                        .filter(|m| self.members.get(m).is_some_and(|e| e.ports.rtp == port_id));
                    return match member {
                        Some(member) => {
                            self.deliver_to_peer(now, port_id, member, from, data, false)
                        }
                        None => Err(DropReason::UnknownSource),
                    };
                }
                Some(20..=63) => return Err(DropReason::UnknownSource),
                _ => {}
            }
        }
        let Some(ssrc) = packet_ssrc(data, kind.rtcp_only()) else {
            return Err(DropReason::Malformed);
        };
        // 1. The latched source (behind one address, told apart by SSRC).
        let mut only = None;
        if let Some(list) = port.demux.by_addr.get(&from) {
            let chosen = list
                .iter()
                .find(|(_, s)| *s == Some(ssrc))
                .or_else(|| list.iter().find(|(_, s)| s.is_none()));
            if let Some(&(member, _)) = chosen {
                return self.deliver(now, kind, member, from, data, Arrival::Known);
            }
            // A new SSRC at a known address: another member behind it, or (if nobody else
            // claims it) the member there restarting its stream.
            if let [(member, _)] = list[..] {
                only = Some(member);
            }
        }
        let port = &self.ports[&port_id];
        let mut last = DropReason::UnknownSource;
        // 2. A member's stream from a new address: its SSRC says whose.
        let claimed: Vec<MemberId> = port.demux.by_ssrc.get(&ssrc).cloned().unwrap_or_default();
        for member in claimed {
            match self.deliver(now, kind, member, from, data, Arrival::Candidate) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        // 3. A member's first packets: by the address its SDP named, then by the addresses it
        //    is known by; on its own port, from anywhere; SRTP members by authenticating.
        let candidates = self.waiting_candidates(now, port_id, kind, from);
        for member in candidates {
            match self.deliver(now, kind, member, from, data, Arrival::Candidate) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        match only {
            Some(member) => self.deliver(now, kind, member, from, data, Arrival::Known),
            None => Err(last),
        }
    }

    fn waiting_candidates(
        &self,
        now: Duration,
        port_id: PortId,
        kind: PortKind,
        from: SocketAddr,
    ) -> Vec<MemberId> {
        let Some(port) = self.ports.get(&port_id) else {
            return Vec::new();
        };
        let rtcp = kind.rtcp_only();
        // A departed member's address is taken only by a member whose SDP names it exactly.
        let departed = port.demux.recently_departed(now, from);
        let mut exact = Vec::new();
        let mut known = Vec::new();
        let mut proven = Vec::new();
        for &member in &port.demux.waiting {
            let Some(entry) = self.members.get(&member) else {
                continue;
            };
            let expected = if rtcp {
                entry.expect_rtcp.or_else(|| {
                    entry
                        .expect
                        .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))
                })
            } else {
                entry.expect
            };
            if expected == Some(from) {
                exact.push(member);
            } else if departed {
                continue;
            } else if kind.dedicated()
                || entry.known_ips.contains(&from.ip())
                || entry.expect.is_some_and(|a| a.ip() == from.ip())
            {
                known.push(member);
            } else if entry.srtp && proven.len() < MAX_SRTP_TRIES {
                proven.push(member);
            }
        }
        exact.extend(known);
        exact.extend(proven);
        exact
    }

    fn deliver(
        &mut self,
        now: Duration,
        kind: PortKind,
        member: MemberId,
        from: SocketAddr,
        data: &[u8],
        arrival: Arrival,
    ) -> Result<(), DropReason> {
        let Some(entry) = self.members.get(&member) else {
            return Err(DropReason::UnknownMember);
        };
        let slot = entry.slot;
        let Some(room) = self.rooms.get_mut(slot).and_then(Option::as_mut) else {
            return Err(DropReason::UnknownMember);
        };
        let source = if kind.rtcp_only() {
            room.mixer
                .receive_rtcp(now, member, Some(from), data, arrival)?
        } else {
            room.mixer.receive(now, member, Some(from), data, arrival)?
        };
        self.follow(member, source);
        Ok(())
    }

    /// Keeps the demultiplexer in step with where the member's media now comes from.
    fn follow(&mut self, member: MemberId, source: Source) {
        let Some(entry) = self.members.get(&member) else {
            return;
        };
        if entry.source == source {
            return;
        }
        if let Some(mut entry) = self.members.remove(&member) {
            self.leave_demux(member, &entry);
            entry.source = source;
            self.enter_demux(member, &entry);
            self.members.insert(member, entry);
        }
    }

    fn enter_demux(&mut self, member: MemberId, entry: &MemberEntry) {
        if let Some(peer) = &entry.webrtc {
            self.peer_ufrags.insert(peer.ufrag().to_owned(), member);
            if let Some(port) = self.ports.get_mut(&entry.ports.rtp) {
                for addr in &entry.peer_addrs {
                    port.demux.peers_by_addr.insert(*addr, member);
                }
            }
            return;
        }
        let separate_rtcp = entry.ports.rtcp.filter(|_| !entry.rtcp_mux);
        let Some(port) = self.ports.get_mut(&entry.ports.rtp) else {
            return;
        };
        let d = &mut port.demux;
        let ssrc = entry.source.ssrc;
        match entry.source.rtp {
            Some(addr) => d.by_addr.entry(addr).or_default().push((member, ssrc)),
            None => d.waiting.push(member),
        }
        if let Some(ssrc) = entry.source.ssrc {
            d.by_ssrc.entry(ssrc).or_default().push(member);
        }
        if let Some(rtcp) = separate_rtcp
            && let Some(port) = self.ports.get_mut(&rtcp)
        {
            let d = &mut port.demux;
            match entry.source.rtcp {
                Some(addr) => d.by_addr.entry(addr).or_default().push((member, ssrc)),
                None => d.waiting.push(member),
            }
            if let Some(ssrc) = entry.source.ssrc {
                d.by_ssrc.entry(ssrc).or_default().push(member);
            }
        }
    }

    fn leave_demux(&mut self, member: MemberId, entry: &MemberEntry) {
        if let Some(peer) = &entry.webrtc {
            if self.peer_ufrags.get(peer.ufrag()) == Some(&member) {
                self.peer_ufrags.remove(peer.ufrag());
            }
            if let Some(port) = self.ports.get_mut(&entry.ports.rtp) {
                port.demux.peers_by_addr.retain(|_, m| *m != member);
            }
            return;
        }
        for port in [Some(entry.ports.rtp), entry.ports.rtcp]
            .into_iter()
            .flatten()
        {
            let Some(port) = self.ports.get_mut(&port) else {
                continue;
            };
            let d = &mut port.demux;
            for addr in [entry.source.rtp, entry.source.rtcp].into_iter().flatten() {
                if let Some(list) = d.by_addr.get_mut(&addr) {
                    list.retain(|(m, _)| *m != member);
                    if list.is_empty() {
                        d.by_addr.remove(&addr);
                    }
                }
            }
            if let Some(ssrc) = entry.source.ssrc
                && let Some(list) = d.by_ssrc.get_mut(&ssrc)
            {
                list.retain(|m| *m != member);
                if list.is_empty() {
                    d.by_ssrc.remove(&ssrc);
                }
            }
            d.waiting.retain(|m| *m != member);
        }
    }
}

/// Where a browser's datagram goes out: its UDP port, or the TCP connection to `to`.
/// Runs `f` on a browser member's peer; what it sends the browser goes onto `transmits`
/// (over UDP, or the ICE-TCP connection the browser is reached by).
fn through_peer(
    entry: &mut MemberEntry,
    transmits: &mut Vec<Datagram>,
    f: impl FnOnce(&mut WebRtcPeer, &mut dyn FnMut(PeerOutput)),
) {
    let (udp, tcp_ports) = (entry.ports.rtp, &entry.tcp_ports);
    let Some(peer) = entry.webrtc.as_mut() else {
        return;
    };
    f(peer, &mut |o| {
        if let PeerOutput::Transmit { tcp, to, data } = o
            && let Some(port) = tcp_port(tcp, udp, tcp_ports, to)
        {
            transmits.push(Datagram {
                port,
                to,
                kind: PacketKind::Rtp,
                data,
            });
        }
    });
}

fn tcp_port(
    tcp: bool,
    udp: PortId,
    tcp_ports: &[(SocketAddr, PortId)],
    to: SocketAddr,
) -> Option<PortId> {
    if !tcp {
        return Some(udp);
    }
    tcp_ports.iter().find(|(a, _)| *a == to).map(|(_, id)| *id)
}

/// The sender's SSRC of an RTP or RTCP datagram (RTCP: multiplexed on an RTP port, or on an
/// RTCP port); `None` when it is too short to be either.
fn packet_ssrc(data: &[u8], rtcp_port: bool) -> Option<u32> {
    let at = if rtcp_port || crate::rtp::looks_like_rtcp(data) {
        4
    } else {
        8
    };
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}
