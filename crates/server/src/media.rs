//! The media thread: it owns every room's mixer (`conclave-media`, sans-IO), feeds it the RTP
//! that members' sockets receive, ticks it at the deadlines it asks for, and sends what it
//! emits. One OS thread keeps the 20 ms clock away from the async workers; a room with no
//! members has no deadline and costs nothing.

use conclave_media::conference::{
    Conference, ConferenceConfig, Event, MemberConfig, MemberId, PacketKind, PlaybackTarget,
};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

pub enum Command {
    /// A member joins a room's mix; RTP for it is sent from `socket`.
    Join {
        room: String,
        member: MemberId,
        config: Box<MemberConfig>,
        socket: Arc<UdpSocket>,
        /// Where RTCP goes when it is not multiplexed with RTP (RFC 3605/5761).
        rtcp_to: Option<SocketAddr>,
    },
    /// New media for a member (re-INVITE): codec, address or keys changed.
    Update {
        member: MemberId,
        config: Box<MemberConfig>,
        rtcp_to: Option<SocketAddr>,
    },
    Leave {
        member: MemberId,
    },
    /// A datagram a member's socket received.
    Packet {
        member: MemberId,
        from: SocketAddr,
        data: Vec<u8>,
        at: Instant,
    },
    SetMuted {
        member: MemberId,
        muted: bool,
    },
    /// Plays a prompt (or, looped, music) to one member, replacing what played to them.
    Play {
        member: MemberId,
        samples: Arc<[i16]>,
        rate: u32,
        looped: bool,
    },
    /// Stops what plays to one member.
    StopPlay {
        member: MemberId,
    },
    /// Plays a sound to everyone in a room (a join or leave chime).
    PlayToRoom {
        room: String,
        samples: Arc<[i16]>,
        rate: u32,
    },
    /// How each member's media is doing, for the roster.
    Quality {
        members: Vec<MemberId>,
        reply: tokio::sync::oneshot::Sender<Vec<(MemberId, Quality)>>,
    },
    /// A deaf member hears nothing (waiting for their PIN, for example).
    SetDeaf {
        member: MemberId,
        deaf: bool,
    },
    /// Moves a member into a whisper group (`None`: back to the main room).
    SetGroup {
        member: MemberId,
        group: Option<u32>,
    },
}

/// Sends commands to the media thread; cheap to clone.
#[derive(Clone)]
pub struct MediaHandle {
    commands: Sender<Command>,
}

impl MediaHandle {
    pub fn send(&self, command: Command) {
        // The thread only stops with the process.
        let _ = self.commands.send(command);
    }
}

/// A member's media as the roster shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Quality {
    pub codec: String,
    pub packets_received: u64,
    /// Packets lost on the way to us (from RTP sequence numbers).
    pub packets_lost: i64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Round trip from the member's RTCP reports, milliseconds, when known.
    pub rtt_ms: Option<f64>,
}

/// What the mixer noticed about a member (known by its call id), for the room's meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noticed {
    Talking(bool),
    Digit(char),
    /// What played to the member has ended.
    PlaybackDone,
}

/// Starts the media thread; what it notices goes to `notices`.
pub fn start(
    notices: tokio::sync::mpsc::UnboundedSender<(MemberId, Noticed)>,
) -> std::io::Result<MediaHandle> {
    let (commands, inbox) = channel();
    std::thread::Builder::new()
        .name("conclave-media".into())
        .spawn(move || MediaThread::new(notices).run(inbox))?;
    Ok(MediaHandle { commands })
}

struct Member {
    room: String,
    socket: Arc<UdpSocket>,
    codec: &'static str,
    rtcp_to: Option<SocketAddr>,
}

struct MediaThread {
    /// The media clock's zero.
    epoch: Instant,
    notices: tokio::sync::mpsc::UnboundedSender<(MemberId, Noticed)>,
    rooms: HashMap<String, Conference>,
    members: HashMap<MemberId, Member>,
}

impl MediaThread {
    fn new(notices: tokio::sync::mpsc::UnboundedSender<(MemberId, Noticed)>) -> Self {
        MediaThread {
            epoch: Instant::now(),
            notices,
            rooms: HashMap::new(),
            members: HashMap::new(),
        }
    }

    fn since_epoch(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    fn run(mut self, inbox: Receiver<Command>) {
        loop {
            let next = self
                .rooms
                .values()
                .filter_map(Conference::next_deadline)
                .min();
            let command = match next {
                Some(deadline) => {
                    let wait = deadline.saturating_sub(self.since_epoch(Instant::now()));
                    match inbox.recv_timeout(wait) {
                        Ok(command) => Some(command),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match inbox.recv() {
                    Ok(command) => Some(command),
                    Err(_) => return,
                },
            };
            if let Some(command) = command {
                self.handle(command);
            }
            // A packet rarely lands on a deadline: look at the rooms only when one is due.
            if next.is_some_and(|deadline| deadline <= self.since_epoch(Instant::now())) {
                self.tick_due();
            }
        }
    }

    fn handle(&mut self, command: Command) {
        let now = self.since_epoch(Instant::now());
        match command {
            Command::Join {
                room,
                member,
                config,
                socket,
                rtcp_to,
            } => {
                let conference = self.rooms.entry(room.clone()).or_insert_with(|| {
                    Conference::new(ConferenceConfig {
                        unix_time_at_zero: unix_now().saturating_sub(now),
                        ..ConferenceConfig::default()
                    })
                });
                let codec = config.codec.name();
                match conference.add_member(member, *config, now) {
                    Ok(()) => {
                        self.members.insert(
                            member,
                            Member {
                                room,
                                socket,
                                codec,
                                rtcp_to,
                            },
                        );
                        metrics::gauge!("conclave_media_members").increment(1.0);
                    }
                    Err(err) => tracing::warn!(?err, member, "cannot add a member to the mix"),
                }
            }
            Command::Update {
                member,
                config,
                rtcp_to,
            } => {
                let codec = config.codec.name();
                if let Some(conference) = self.conference_of(member)
                    && let Err(err) = conference.update_member(member, *config, now)
                {
                    tracing::warn!(?err, member, "cannot update a member's media");
                    return;
                }
                if let Some(m) = self.members.get_mut(&member) {
                    m.codec = codec;
                    m.rtcp_to = rtcp_to;
                }
            }
            Command::Leave { member } => {
                let Some(m) = self.members.remove(&member) else {
                    return;
                };
                metrics::gauge!("conclave_media_members").decrement(1.0);
                if let Some(conference) = self.rooms.get_mut(&m.room) {
                    if let Some(bye) = conference.remove_member(member)
                        && let Some(to) = m.rtcp_to.or(bye.to)
                    {
                        let _ = m.socket.send_to(&bye.data, to);
                    }
                    if conference.is_empty() {
                        self.rooms.remove(&m.room);
                    }
                }
            }
            Command::Packet {
                member,
                from,
                data,
                at,
            } => {
                let at = self.since_epoch(at);
                if let Some(conference) = self.conference_of(member)
                    && let Err(reason) = conference.handle_datagram(at, member, Some(from), &data)
                {
                    metrics::counter!("conclave_media_dropped_total", "reason" => format!("{reason:?}")).increment(1);
                }
            }
            Command::SetMuted { member, muted } => {
                if let Some(conference) = self.conference_of(member) {
                    conference.set_muted(member, muted);
                }
            }
            Command::Play {
                member,
                samples,
                rate,
                looped,
            } => {
                if let Some(conference) = self.conference_of(member) {
                    conference.play(
                        PlaybackTarget::Member(member),
                        1,
                        &samples,
                        rate,
                        looped,
                        1.0,
                    );
                }
            }
            Command::StopPlay { member } => {
                if let Some(conference) = self.conference_of(member) {
                    conference.stop_playback(PlaybackTarget::Member(member));
                }
            }
            Command::PlayToRoom {
                room,
                samples,
                rate,
            } => {
                if let Some(conference) = self.rooms.get_mut(&room) {
                    conference.play(PlaybackTarget::Room, 1, &samples, rate, false, 1.0);
                }
            }
            Command::Quality { members, reply } => {
                let quality = members
                    .into_iter()
                    .filter_map(|id| {
                        let m = self.members.get(&id)?;
                        let stats = self.rooms.get(&m.room)?.member_stats(id)?;
                        Some((
                            id,
                            Quality {
                                codec: m.codec.to_owned(),
                                packets_received: stats.rx_packets,
                                packets_lost: stats.lost,
                                jitter_ms: stats.jitter.as_secs_f64() * 1000.0,
                                rtt_ms: stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
                            },
                        ))
                    })
                    .collect();
                let _ = reply.send(quality);
            }
            Command::SetDeaf { member, deaf } => {
                if let Some(conference) = self.conference_of(member) {
                    conference.set_deaf(member, deaf);
                }
            }
            Command::SetGroup { member, group } => {
                if let Some(conference) = self.conference_of(member) {
                    conference.set_group(member, group);
                }
            }
        }
    }

    fn conference_of(&mut self, member: MemberId) -> Option<&mut Conference> {
        let room = &self.members.get(&member)?.room;
        self.rooms.get_mut(room)
    }

    fn tick_due(&mut self) {
        let now = self.since_epoch(Instant::now());
        for conference in self.rooms.values_mut() {
            let Some(deadline) = conference.next_deadline() else {
                continue;
            };
            if deadline > now {
                continue;
            }
            let out = conference.tick(deadline);
            for transmit in out.transmits {
                let Some(member) = self.members.get(&transmit.member) else {
                    continue;
                };
                let to = match transmit.kind {
                    PacketKind::Rtcp => member.rtcp_to.or(transmit.to),
                    PacketKind::Rtp => transmit.to,
                };
                let Some(to) = to else {
                    continue;
                };
                if let Err(err) = member.socket.send_to(&transmit.data, to) {
                    tracing::trace!(%err, %to, "RTP send failed");
                }
            }
            for event in out.events {
                let notice = match event {
                    Event::TalkStart { member } => (member, Noticed::Talking(true)),
                    Event::TalkStop { member } => (member, Noticed::Talking(false)),
                    Event::Dtmf { member, digit, .. } => (member, Noticed::Digit(digit)),
                    Event::PlaybackFinished {
                        target: PlaybackTarget::Member(member),
                        ..
                    } => (member, Noticed::PlaybackDone),
                    Event::MediaTimeout { member } => {
                        tracing::info!(member, "no RTP from member for a while");
                        continue;
                    }
                    other => {
                        tracing::trace!(?other, "media event");
                        continue;
                    }
                };
                let _ = self.notices.send(notice);
            }
        }
    }
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
