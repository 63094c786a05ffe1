//! One room's meeting: a task that owns its participants — their legs, their place in the
//! meeting (lobby, member, leaving) and their membership of the mix — and the meeting's state
//! (`conference::live::Meeting`). Every command, from the API, the console, the keypad or
//! the server itself, passes the one permission check there; the resulting events become
//! effects: the mixer, prompts, hanging up, history, the WebSocket and webhooks.

use super::leg::{EndCause, Leg, LegEvent, LegId, LegKind, MemberSpec};
use super::lobby::{PinEntry, Verdict};
use super::types::{
    CallProgress, CallState, DirectCall, DirectCallState, Invitation, LiveChange, LiveConference,
    RosterEntry,
};
use super::{Meetings, Msg};
use crate::history;
use crate::media::TapKind;
use crate::media::{MediaEvent, MemberJoin, Playback, RoomMedia};
use crate::prompts::{self, Prompt, Sound};
use crate::recording::{ActiveRecording, Who};
use crate::streaming::ActiveStream;
use crate::video::composer::{ComposerHandle, Sink};
use conclave_conference::keypad::Keypad;
use conclave_conference::layout::TileSize;
use conclave_conference::live::{Actor, Command, Event, Meeting, MemberId, Refused, Settings};
use conclave_media::engine;
use conclave_media::video::sfu::POLL_LEAD;
use conclave_media::video::sip_leg::VideoLegConfig;
use conclave_media::video::{StreamKey, StreamKind, Tile, TileSize as MediaTileSize};
use conclave_store::model::Room;
use conclave_store::now_ms;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The log's name for what the server does on its own.
pub const SYSTEM: &str = "system";

/// Where a participant stands.
enum Stage {
    /// A call the meeting placed, not answered yet.
    Dialing,
    /// Keying in the room's PIN: neither heard nor hearing but its prompts.
    Lobby(PinEntry),
    Member(MemberId),
    /// Turned away or removed: hung up once its prompt is said.
    Leaving,
}

struct Part {
    leg: Leg,
    stage: Stage,
    /// Its media is in the room's mix.
    in_media: bool,
    /// When something is due for it (the lobby's clock, a hang-up after a prompt).
    due: Option<Instant>,
}

/// A room's maximum duration: a warning before the end, then the end (after a goodbye).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timers {
    warn_at: Option<Instant>,
    end_at: Option<Instant>,
    /// The goodbye has been said: the next deadline ends the meeting.
    closing: bool,
}

/// A composed picture nobody has asked for this long stops being made.
const COMPOSER_IDLE: Duration = Duration::from_secs(30);

/// A direct call's caller is answered once the callee has: their leg comes within this, or
/// the call ends (their phone never confirmed the answer).
const CALLER_AFTER_ANSWER: Duration = Duration::from_secs(15);

/// How long the goodbye takes before the calls end.
const GOODBYE: Duration = Duration::from_secs(4);

impl Timers {
    /// Warns five minutes before the end (half-way for meetings of ten minutes or less).
    pub(super) fn for_room(room: &Room, started: Instant) -> Timers {
        let Some(minutes) = room.max_duration_minutes.filter(|m| *m > 0) else {
            return Timers::default();
        };
        let length = Duration::from_secs(u64::try_from(minutes).unwrap_or(0) * 60);
        let warning = Duration::from_secs(300).min(length / 2);
        Timers {
            warn_at: Some(started + length - warning),
            end_at: Some(started + length),
            closing: false,
        }
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.warn_at.or(self.end_at)
    }
}

pub(super) struct RoomActor {
    room: Room,
    generation: u64,
    meetings: Meetings,
    media: RoomMedia,
    /// The meeting's id in the history.
    meeting_id: String,
    /// Writes the meeting's history, in order, off the actor.
    history: mpsc::Sender<history::Record>,
    writer: tokio::task::JoinHandle<()>,
    /// The recording going on, if any.
    recording: Option<ActiveRecording>,
    /// Stopped recordings still being closed (awaited before the meeting's end is final).
    closing: Vec<tokio::task::JoinHandle<()>>,
    /// The meeting's own recording has been started once (a chair who stops it is not
    /// overruled by the next member who comes in).
    recorded: bool,
    /// The live stream going on, if any.
    stream: Option<ActiveStream>,
    /// Whether a scheduled stream was looked for (when the first member came).
    stream_checked: bool,
    /// Who the message being handled acts for (the log's `actor`).
    acting_for: String,
    state: Meeting,
    parts: HashMap<LegId, Part>,
    by_member: HashMap<MemberId, LegId>,
    keypads: HashMap<MemberId, Keypad>,
    /// Everyone the meeting called; an invitation's id is its index.
    invitations: Vec<Invitation>,
    /// Legs hearing a prompt right now (music waits for it to end).
    speaking: HashSet<LegId>,
    /// The member alone in the meeting, hearing music.
    music_for: Option<LegId>,
    timers: Timers,
    /// A one-click start is still placing its calls: the empty meeting must not end yet.
    dispatching: bool,
    /// Asked to stop (the server shuts down): who to tell once the record is written.
    stopping: Option<oneshot::Sender<()>>,
    /// A cascade of a room homed on another node (docs/cluster.md): its first invitation is
    /// the link to the home (a member there, whose mix-minus carries the home's members
    /// here); it ends when its own callers have gone or the link has.
    cascade: Option<Cascade>,
    /// A direct call (one phone calling another's extension), not a meeting: it ends when
    /// either side goes or the callee cannot be reached.
    call: Option<DirectCall>,
    /// Someone of the direct call has gone.
    call_over: bool,
    /// Told once whether the direct call's callee answered (the caller waits, ringing).
    call_answered: Option<oneshot::Sender<bool>>,
    /// The callee answered then: the caller's leg must come soon after.
    call_answered_at: Option<Instant>,
    /// The video tiles as the media plane last heard them.
    media_tiles: Vec<Tile>,
    /// The composed picture's thread while someone looks at it (and when they last did) or
    /// a SIP video terminal receives it.
    composer: Option<(ComposerHandle, Instant)>,
    /// SIP video legs on in the media plane, as they were set up.
    video_legs: HashMap<LegId, VideoLegConfig>,
    /// The meeting has had video (a camera, a screen, a SIP video terminal): its recording
    /// shows the layout too.
    has_video: bool,
    /// Polling's next turn.
    poll_at: Option<Instant>,
    /// The media plane has the next turn's tiles already ([`POLL_LEAD`] before it).
    poll_early: bool,
}

#[derive(Debug, Default)]
pub(super) struct Cascade {
    /// The link's leg, once it has come.
    link: Option<LegId>,
}

impl RoomActor {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        meetings: Meetings,
        room: Room,
        generation: u64,
        media: RoomMedia,
        settings: Settings,
        dispatching: bool,
        cascade: Option<Cascade>,
        call: Option<(DirectCall, oneshot::Sender<bool>)>,
        // the meeting's id in the history, and its writer
        history: (
            String,
            mpsc::Sender<history::Record>,
            tokio::task::JoinHandle<()>,
        ),
    ) -> RoomActor {
        let (call, call_answered) = match call {
            Some((call, answered)) => (Some(call), Some(answered)),
            None => (None, None),
        };
        RoomActor {
            state: Meeting::new(Settings {
                capacity: usize::try_from(room.capacity).unwrap_or(100),
                ..settings
            }),
            timers: Timers::for_room(&room, Instant::now()),
            room,
            generation,
            meetings,
            media,
            meeting_id: history.0,
            history: history.1,
            writer: history.2,
            recording: None,
            closing: Vec::new(),
            recorded: false,
            stream: None,
            stream_checked: false,
            acting_for: SYSTEM.into(),
            parts: HashMap::new(),
            by_member: HashMap::new(),
            keypads: HashMap::new(),
            invitations: Vec::new(),
            speaking: HashSet::new(),
            music_for: None,
            dispatching,
            stopping: None,
            cascade,
            call_answered,
            call,
            call_over: false,
            call_answered_at: None,
            media_tiles: Vec::new(),
            composer: None,
            video_legs: HashMap::new(),
            has_video: false,
            poll_at: None,
            poll_early: false,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.parts
            .values()
            .filter_map(|p| p.due)
            .chain(self.timers.next())
            .chain(self.poll_at)
            .chain(
                self.poll_at
                    .filter(|_| !self.poll_early)
                    .map(|at| at.checked_sub(POLL_LEAD).unwrap_or(at)),
            )
            .chain(self.call_answered_at.map(|at| at + CALLER_AFTER_ANSWER))
            .chain(self.composer.as_ref().map(|(_, at)| *at + COMPOSER_IDLE))
            .min()
    }

    pub(super) async fn run(mut self, mut inbox: mpsc::Receiver<Msg>) {
        loop {
            let msg = match self.next_deadline() {
                Some(at) => tokio::select! {
                    msg = inbox.recv() => msg,
                    _ = tokio::time::sleep_until(at.into()) => {
                        self.clock(Instant::now());
                        self.after_each();
                        if self.over() {
                            break;
                        }
                        continue;
                    }
                },
                None => inbox.recv().await,
            };
            let Some(msg) = msg else { break };
            self.handle(msg);
            self.after_each();
            if self.over() {
                break;
            }
        }
        self.finish(inbox).await;
    }

    fn over(&self) -> bool {
        self.state.has_ended()
            || (self.parts.is_empty() && !self.dispatching)
            || self.cascade_over()
            || self.direct_call_over()
    }

    /// A direct call ends with either side, when its callee cannot be reached, or when its
    /// caller's leg does not come after the callee answered.
    fn direct_call_over(&self) -> bool {
        self.call_over
            || self.call_answered_at.is_some_and(|at| {
                self.by_member.len() < 2 && at + CALLER_AFTER_ANSWER <= Instant::now()
            })
    }

    /// The caller of a direct call waits, ringing, for this: the callee answered (they are
    /// answered into the call now), or is busy, rejects, does not answer or cannot be called
    /// (once the invitation is out; they are refused, and the call ends).
    fn direct_call_progress(&mut self) {
        if self.call.is_none() || self.dispatching || self.call_answered.is_none() {
            return;
        }
        let state = self.invitations.first().map(|i| i.state);
        let answered = match state {
            Some(CallState::Joined) => true,
            Some(CallState::Calling | CallState::Ringing) => return,
            _ => false,
        };
        if let Some(tell) = self.call_answered.take() {
            let _ = tell.send(answered);
        }
        if answered {
            self.call_answered_at = Some(Instant::now());
        } else {
            self.call_over = true;
        }
    }

    /// A cascade ends with its last own caller, or when its link to the home fails or ends.
    fn cascade_over(&self) -> bool {
        let Some(cascade) = &self.cascade else {
            return false;
        };
        let link_in = cascade.link.is_some_and(|l| self.parts.contains_key(&l));
        let own = self.parts.len() - usize::from(link_in);
        let link_lost = self
            .invitations
            .first()
            .is_some_and(|i| i.state.missing() || i.state == CallState::Removed);
        own == 0 || link_lost
    }

    fn after_each(&mut self) {
        self.acting_for = SYSTEM.into();
        self.direct_call_progress();
        self.music();
        self.video();
        self.video_legs();
    }

    /// Members' SIP video legs follow their calls: on in the media plane once they are
    /// members (not in the PIN lobby: the picture is the meeting's), again when a re-INVITE
    /// changes them, off when they leave; the composer encodes the sizes they receive.
    fn video_legs(&mut self) {
        let wanted = self.parts.iter().filter_map(|(id, part)| {
            let config = part.leg.media.as_ref()?.video.as_ref()?;
            let endpoint = part.leg.video_endpoint.as_ref()?;
            (part.in_media && matches!(part.stage, Stage::Member(_)))
                .then_some((*id, config, endpoint))
        });
        let mut changed = false;
        let mut seen = 0;
        for (id, config, endpoint) in wanted {
            seen += 1;
            if self.video_legs.get(&id) != Some(config) {
                self.media.add_video(id, endpoint, config.clone());
                self.video_legs.insert(id, config.clone());
                changed = true;
                self.has_video = true;
            }
        }
        if seen != self.video_legs.len() {
            let parts = &self.parts;
            let media = &self.media;
            self.video_legs.retain(|id, _| {
                let keep = parts.get(id).is_some_and(|p| {
                    p.in_media
                        && matches!(p.stage, Stage::Member(_))
                        && p.leg.media.as_ref().is_some_and(|m| m.video.is_some())
                });
                if !keep && parts.contains_key(id) {
                    media.remove_video(*id);
                }
                keep
            });
            changed = true;
        }
        if changed {
            let sizes = self.composed_sizes();
            if let Some(composer) = self.composer() {
                composer.sizes(sizes);
            }
            self.record_video();
        }
    }

    /// The recording takes the composed picture while the meeting has video.
    fn recording_video(&self) -> bool {
        self.has_video && self.recording.is_some()
    }

    /// A recording going on in a meeting with video: the composer encodes its size too and
    /// hands it the pictures (again is harmless).
    fn record_video(&mut self) {
        if !self.recording_video() {
            return;
        }
        let sink = self.recording.as_ref().map(ActiveRecording::pictures);
        let sizes = self.composed_sizes();
        if let Some(composer) = self.composer() {
            composer.sink(Sink::Recording, sink);
            composer.sizes(sizes);
        }
    }

    /// The sizes of the composed picture the video legs receive.
    fn composed_sizes(&self) -> Vec<(usize, usize)> {
        let mut sizes: Vec<(usize, usize)> = self
            .video_legs
            .values()
            .filter(|c| c.sends)
            .map(|c| c.size)
            .chain(self.stream.is_some().then_some(crate::streaming::PICTURE))
            .chain(self.recording_video().then_some(crate::streaming::PICTURE))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// The composed picture's thread, started if need be.
    fn composer(&mut self) -> Option<&ComposerHandle> {
        if self.composer.is_none() {
            match ComposerHandle::start(self.media.clone(), self.media_tiles.clone()) {
                Ok(handle) => {
                    handle.sizes(self.composed_sizes());
                    if let Some(stream) = &self.stream {
                        handle.sink(Sink::Stream, Some(stream.pictures()));
                    }
                    if self.recording_video()
                        && let Some(recording) = &self.recording
                    {
                        handle.sink(Sink::Recording, Some(recording.pictures()));
                    }
                    self.composer = Some((handle, Instant::now()));
                }
                Err(err) => {
                    tracing::warn!(room = self.room.number, %err, "no composer thread");
                }
            }
        }
        self.composer.as_ref().map(|(c, _)| c)
    }

    /// The tiles follow the meeting (layout, speaker, polling, comings and goings): the
    /// media plane's SFU hears of each change. Shortly before a polling turn it hears of the
    /// turn's tiles: the next members' keyframes are asked for then, and each slot goes on
    /// showing the previous member until the next one's keyframe comes (about at the turn).
    fn video(&mut self) {
        let tiles = match self.poll_early {
            true => self.state.next_turn_tiles(),
            false => None,
        }
        .unwrap_or_else(|| self.state.tiles());
        let engine_tiles: Vec<Tile> = tiles
            .iter()
            .map(|t| Tile {
                stream: t
                    .member
                    .and_then(|m| self.by_member.get(&m))
                    .map(|&leg| StreamKey {
                        member: leg,
                        kind: if t.screen {
                            StreamKind::Screen
                        } else {
                            StreamKind::Camera
                        },
                    }),
                size: match t.size {
                    TileSize::Big => MediaTileSize::Big,
                    TileSize::Medium => MediaTileSize::Medium,
                    TileSize::Small => MediaTileSize::Small,
                },
            })
            .collect();
        if engine_tiles == self.media_tiles {
            return;
        }
        self.media.set_tiles(engine_tiles.clone());
        if let Some((composer, _)) = &self.composer {
            composer.tiles(engine_tiles.clone());
        }
        self.media_tiles = engine_tiles;
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Arrive(leg) => self.arrive(*leg),
            Msg::Leg(id, event) => self.leg_event(id, event),
            Msg::Media(event) => self.media_event(event),
            Msg::Invite { invitation, reply } => {
                let id = u32::try_from(self.invitations.len()).unwrap_or(u32::MAX);
                self.invitations.push(Invitation { id, ..*invitation });
                self.published_invitation(id as usize);
                let _ = reply.send(id);
            }
            Msg::InviteState {
                invitation,
                state,
                reason,
            } => {
                if let Some(i) = self.invitations.get_mut(invitation as usize) {
                    i.state = state;
                    i.reason = reason;
                    self.published_invitation(invitation as usize);
                }
            }
            Msg::Dispatched => self.dispatching = false,
            Msg::Apply {
                actor,
                command,
                by,
                reply,
            } => {
                self.acting_for = by;
                let result = self
                    .state
                    .apply(actor, command)
                    .map(|events| self.effects(events));
                let _ = reply.send(result);
            }
            Msg::Snapshot { reply } => {
                // The media plane answers on its own; the actor does not wait for it.
                let (legs, base) = self.roster();
                let media = self.media.clone();
                tokio::spawn(async move {
                    let reports: HashMap<LegId, _> =
                        media.reports(legs).await.into_iter().collect();
                    let mut snapshot = base;
                    for entry in snapshot.1.iter_mut() {
                        if let Some(report) = reports.get(&entry.0) {
                            entry.1.quality = Some(report.into());
                        }
                    }
                    let mut live = snapshot.0;
                    live.members = snapshot.1.into_iter().map(|(_, e)| e).collect();
                    let _ = reply.send(live);
                });
            }
            Msg::Picture { reply } => {
                self.composer();
                if let Some((composer, used)) = &mut self.composer {
                    *used = Instant::now();
                    composer.picture(reply);
                }
            }
            Msg::Shutdown { done } => {
                self.stopping = Some(done);
                if let Ok(events) = self.state.apply(Actor::System, Command::End) {
                    self.effects(events);
                }
            }
        }
    }

    /// The roster without media figures: the legs to ask about, and the entries.
    #[allow(clippy::type_complexity)]
    fn roster(&self) -> (Vec<LegId>, (LiveConference, Vec<(LegId, RosterEntry)>)) {
        let entries: Vec<(LegId, RosterEntry)> = self
            .state
            .members()
            .map(|m| {
                (
                    self.by_member.get(&m.id).copied().unwrap_or(0),
                    RosterEntry {
                        member: m.clone(),
                        quality: None,
                    },
                )
            })
            .collect();
        let legs = entries.iter().map(|(l, _)| *l).collect();
        let live = LiveConference {
            room_id: self.room.id.clone(),
            room_number: self.room.number.clone(),
            room_name: self.room.name.clone(),
            locked: self.state.is_locked(),
            recording_id: self.recording.as_ref().map(|r| r.id.clone()),
            stream_id: self.stream.as_ref().and_then(ActiveStream::id),
            invitations: self.invitations.clone(),
            members: Vec::new(),
            layout: self.state.layout().clone(),
            tiles: self.state.tiles(),
            call: self.call.clone().map(|call| DirectCall {
                state: if self.by_member.len() >= 2 {
                    DirectCallState::Talking
                } else {
                    DirectCallState::Ringing
                },
                ..call
            }),
        };
        (legs, (live, entries))
    }

    /// A leg handed to this meeting: a call answered into the room, one the meeting placed,
    /// or one the access menu sends.
    fn arrive(&mut self, mut leg: Leg) {
        if let Some(cascade) = &mut self.cascade
            && leg.invitation == Some(0)
        {
            cascade.link = Some(leg.id);
        }
        // Its media must live on this room's worker (a video endpoint has ports of its own).
        leg.video_endpoint = leg
            .video_endpoint
            .take()
            .and_then(|v| v.rehome(&self.media));
        match leg.endpoint.rehome(&self.media) {
            Some(endpoint) => leg.endpoint = endpoint,
            None => {
                tracing::error!(
                    leg = leg.id,
                    room = self.room.number,
                    "a leg on another media worker"
                );
                leg.hang_up();
                return;
            }
        }
        if leg.media.is_none() {
            // A call we placed: the meeting waits for its answer.
            if let Some(id) = leg.invitation
                && let Some(i) = self.invitations.get_mut(id as usize)
            {
                i.call_id = Some(leg.kind.call_id());
            }
            let call = leg.kind.call_id();
            self.parts.insert(
                leg.id,
                Part {
                    leg,
                    stage: Stage::Dialing,
                    in_media: false,
                    due: None,
                },
            );
            self.call_state(call, CallState::Calling, None);
            return;
        }
        self.admit(leg);
    }

    /// Media is there: into the lobby when the room wants a PIN, else into the meeting.
    fn admit(&mut self, leg: Leg) {
        let id = leg.id;
        let now = Instant::now();
        if leg.needs_pin {
            let entry = PinEntry::new(now, self.meetings.settings().pin_timeout);
            let due = Some(entry.deadline());
            self.parts.insert(
                id,
                Part {
                    leg,
                    stage: Stage::Lobby(entry),
                    in_media: false,
                    due,
                },
            );
            self.add_media(id, true, true, Some(vec![Prompt::EnterPin]));
            return;
        }
        self.parts.insert(
            id,
            Part {
                leg,
                stage: Stage::Dialing,
                in_media: false,
                due: None,
            },
        );
        match self.enter(id) {
            Ok(()) => {}
            Err(reason @ (Refused::Locked | Refused::Full(_))) => {
                self.add_media(id, true, true, None);
                self.refuse(id, &reason);
            }
            Err(reason) => {
                tracing::info!(%reason, room = self.room.number, "the meeting refused a caller");
                if let Some(part) = self.parts.get(&id) {
                    part.leg.control.refused(&part.leg.kind, &reason);
                }
                self.drop_part(id);
            }
        }
    }

    /// Adds a participant's media to the mix with the state it starts in, and what it hears
    /// first.
    fn add_media(&mut self, id: LegId, muted: bool, deaf: bool, said: Option<Vec<Prompt>>) {
        let timeouts = self.meetings.media_timeouts();
        let Some(part) = self.parts.get_mut(&id) else {
            return;
        };
        let Some(spec) = part.leg.media.as_ref() else {
            return;
        };
        let playback = said.map(|said| Playback {
            samples: prompts::sequence(self.room.language, &said),
            rate: prompts::RATE,
            looped: false,
        });
        if playback.is_some() {
            self.speaking.insert(id);
        }
        if let Some(recording) = &self.recording {
            recording.identify(id, who(&part.leg));
        }
        let join = MemberJoin {
            config: spec.config.clone(),
            muted,
            deaf,
            group: None,
            rtp_timeout: Some(if spec.on_hold { timeouts.1 } else { timeouts.0 }),
            playback,
            webrtc: part.leg.webrtc.take(),
        };
        part.in_media = self.media.add(id, &part.leg.endpoint, join);
    }

    /// A participant becomes a member of the meeting (its media may already be in the mix,
    /// from the lobby: then it starts to hear and be heard).
    fn enter(&mut self, id: LegId) -> Result<(), Refused> {
        let Some(part) = self.parts.get(&id) else {
            return Err(Refused::Ended);
        };
        let join = Command::Join {
            name: part.leg.who.name.clone(),
            number: part.leg.who.number.clone(),
            role: part.leg.who.role,
            via: part.leg.via,
        };
        let was_in_media = part.in_media;
        let greeting = part.leg.greeting;
        let call = part.leg.kind.call_id();
        let events = self.state.apply(Actor::System, join)?;
        let member = events
            .iter()
            .find_map(|e| match e {
                Event::Joined { member } => Some(member.clone()),
                _ => None,
            })
            .ok_or(Refused::Ended)?;
        let first = self.by_member.is_empty();
        self.by_member.insert(member.id, id);
        // Who waited in the lobby is told they are in; who came straight in hears the room
        // (and a room made from the keypad says it is ready).
        let mut said = Vec::new();
        said.extend(greeting);
        if was_in_media {
            said.push(if first {
                Prompt::First
            } else {
                Prompt::Welcome
            });
        }
        if let Some(part) = self.parts.get_mut(&id) {
            part.stage = Stage::Member(member.id);
            part.due = None;
            // no longer waiting: its place among the waiting callers is free
            part.leg.waiting = None;
            part.leg.control.admitted(&part.leg.kind, member.id);
        }
        if was_in_media {
            self.media.send(engine::Command::SetDeaf {
                member: id,
                deaf: false,
            });
            self.media.send(engine::Command::SetMuted {
                member: id,
                muted: member.muted,
            });
            self.say(id, &said);
        } else {
            self.add_media(id, member.muted, false, (!said.is_empty()).then_some(said));
        }
        self.call_state(call, CallState::Joined, None);
        self.effects(events);
        if (self.room.auto_record || self.state.records_from_the_start())
            && !self.state.is_recording()
            && !self.recorded
        {
            // the room, template or booking records the meeting from its first member on
            self.recorded = true;
            let asked = std::mem::replace(&mut self.acting_for, SYSTEM.into());
            if let Ok(events) = self
                .state
                .apply(Actor::System, Command::Record { on: true })
            {
                self.effects(events);
            }
            self.acting_for = asked;
        }
        if !std::mem::replace(&mut self.stream_checked, true) {
            // a stream scheduled for this room starts with its meeting
            let (meetings, room) = (self.meetings.clone(), self.room.id.clone());
            tokio::spawn(async move {
                match meetings.streams().due(&room).await {
                    Ok(true) => {
                        let _ = meetings
                            .apply(&room, Actor::System, Command::Stream { on: true }, SYSTEM)
                            .await;
                    }
                    Ok(false) => {}
                    Err(err) => tracing::warn!(
                        err = format!("{err:#}"),
                        "cannot look for a scheduled stream"
                    ),
                }
            });
        }
        Ok(())
    }

    /// Turns a participant away with a prompt (the meeting is locked or full), then hangs up.
    fn refuse(&mut self, id: LegId, reason: &Refused) {
        tracing::info!(%reason, room = self.room.number, "a caller is turned away");
        if let Some(part) = self.parts.get(&id) {
            part.leg.control.refused(&part.leg.kind, reason);
        }
        let prompt = if matches!(reason, Refused::Locked) {
            Prompt::RoomLocked
        } else {
            Prompt::RoomFull
        };
        self.leave_saying(id, &[prompt]);
    }

    /// Says goodbye (these prompts), then hangs up.
    fn leave_saying(&mut self, id: LegId, said: &[Prompt]) {
        self.say(id, said);
        let length = prompts::sequence(self.room.language, said).len() as u64 * 1000
            / u64::from(prompts::RATE);
        if let Some(part) = self.parts.get_mut(&id) {
            part.stage = Stage::Leaving;
            part.due = Some(Instant::now() + Duration::from_millis(length + 500));
        }
    }

    /// Forgets a participant: out of the mix, out of the meeting, and hung up.
    fn drop_part(&mut self, id: LegId) {
        if let Some(part) = self.parts.remove(&id) {
            if part.in_media {
                self.media.remove(id);
            }
            part.leg.hang_up();
            self.forget(id, &part);
        }
    }

    /// What leaving means for the meeting's state (the part is already out of `parts`).
    fn forget(&mut self, id: LegId, part: &Part) {
        // (the callee's call ending unanswered is not the end: the caller is told busy first)
        self.call_over |=
            self.call.is_some() && matches!(part.stage, Stage::Member(_) | Stage::Leaving);
        self.speaking.remove(&id);
        if self.music_for == Some(id) {
            self.music_for = None;
        }
        if let Stage::Member(member) = part.stage {
            self.by_member.remove(&member);
            self.keypads.remove(&member);
            if let Ok(events) = self.state.apply(Actor::System, Command::Leave { member }) {
                self.effects(events);
            }
        }
    }

    fn leg_event(&mut self, id: LegId, event: LegEvent) {
        match event {
            LegEvent::Ringing => {
                if let Some(part) = self.parts.get(&id)
                    && matches!(part.stage, Stage::Dialing)
                {
                    let call = part.leg.kind.call_id();
                    self.call_state(call, CallState::Ringing, None);
                }
            }
            LegEvent::Media(spec) => self.media_changed(id, *spec),
            LegEvent::Digit(digit) => self.digit(id, digit),
            LegEvent::VideoOffered => {
                // a terminal that began audio-only turns its camera on: a port pair of its own
                // on this room's worker, offered back by re-INVITE (rooms only, once a call)
                if let Some(part) = self.parts.get_mut(&id)
                    && part.leg.video_endpoint.is_none()
                    && matches!(part.leg.kind, LegKind::Sip { .. })
                {
                    match part.leg.endpoint.video_endpoint() {
                        Ok(endpoint) => {
                            tracing::info!(
                                leg = id,
                                room = self.room.number,
                                "video added to a call"
                            );
                            part.leg
                                .control
                                .offer_video(&part.leg.kind, endpoint.addr.port());
                            part.leg.video_endpoint = Some(endpoint);
                        }
                        Err(err) => {
                            tracing::warn!(leg = id, %err, "no video port: the call stays audio");
                        }
                    }
                }
            }
            LegEvent::PictureUpdate => {
                if self.video_legs.contains_key(&id)
                    && let Some((composer, _)) = &self.composer
                {
                    composer.keyframe();
                }
            }
            LegEvent::Ended(cause) => {
                let Some(part) = self.parts.remove(&id) else {
                    return;
                };
                if part.in_media {
                    self.media.remove(id);
                }
                let call = part.leg.kind.call_id();
                let state = match (&part.stage, cause) {
                    (Stage::Member(_), _) => CallState::Left,
                    (Stage::Dialing, EndCause::Busy) => CallState::Busy,
                    (Stage::Dialing, EndCause::NoAnswer) => CallState::NoAnswer,
                    (Stage::Dialing, EndCause::Rejected) => CallState::Rejected,
                    (Stage::Dialing, _) => CallState::Failed,
                    _ => CallState::Left,
                };
                self.call_state(call, state, None);
                self.forget(id, &part);
            }
        }
    }

    /// New or renegotiated media for a participant.
    fn media_changed(&mut self, id: LegId, spec: MemberSpec) {
        let timeouts = self.meetings.media_timeouts();
        let Some(part) = self.parts.get_mut(&id) else {
            return;
        };
        let on_hold = spec.on_hold;
        let config = spec.config.clone();
        if spec.video.is_none() && matches!(part.stage, Stage::Dialing) {
            // a call we placed, answered without video: its video ports go (a re-INVITE
            // that drops video keeps them, for the one that brings it back)
            part.leg.video_endpoint = None;
        }
        part.leg.media = Some(spec);
        if matches!(part.stage, Stage::Dialing) && !part.in_media {
            // A call the meeting placed was answered: it joins with its role.
            let Some(part) = self.parts.remove(&id) else {
                return;
            };
            self.admit(part.leg);
            return;
        }
        if part.in_media {
            self.media.send(engine::Command::UpdateMember {
                member: id,
                config: Box::new(config),
            });
            self.media.send(engine::Command::SetRtpTimeout {
                member: id,
                timeout: Some(if on_hold { timeouts.1 } else { timeouts.0 }),
            });
        }
    }

    fn media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::Talking { member, talking } => {
                if let Some(Part {
                    stage: Stage::Member(m),
                    ..
                }) = self.parts.get(&member)
                    && let Some(event) = self.state.set_talking(*m, talking)
                {
                    // voice activity goes to the roster, the WebSocket and webhooks (not the log)
                    self.meetings
                        .publish(&self.room, SYSTEM, LiveChange::Meeting(event));
                }
            }
            MediaEvent::Digit { member, digit } => self.digit(member, digit),
            MediaEvent::PlaybackDone { member } => {
                self.speaking.remove(&member);
            }
            MediaEvent::VideoStarted { member } => {
                if !self.has_video {
                    tracing::debug!(
                        leg = member,
                        room = self.room.number,
                        "the meeting has video"
                    );
                    self.has_video = true;
                    self.record_video();
                }
            }
            MediaEvent::Timeout { member } => {
                if self.parts.contains_key(&member) {
                    tracing::info!(
                        leg = member,
                        room = self.room.number,
                        "no media: hanging up"
                    );
                    metrics::counter!("conclave_calls_media_timeout_total").increment(1);
                    self.drop_part(member);
                }
            }
        }
    }

    /// A keypad digit: the PIN in the lobby, a command in the meeting.
    fn digit(&mut self, id: LegId, digit: char) {
        let now = Instant::now();
        let pin = self.room.pin.clone().unwrap_or_default();
        let Some(part) = self.parts.get_mut(&id) else {
            return;
        };
        match &mut part.stage {
            Stage::Lobby(entry) => {
                let verdict = entry.key(now, digit, &pin);
                part.due = Some(entry.deadline());
                self.lobby_verdict(id, verdict);
            }
            Stage::Member(member) => {
                let member = *member;
                self.keypad(member, digit);
            }
            Stage::Dialing | Stage::Leaving => {}
        }
    }

    fn lobby_verdict(&mut self, id: LegId, verdict: Verdict) {
        let Some(ip) = self.parts.get(&id).and_then(|p| p.leg.who.ip) else {
            return;
        };
        match verdict {
            Verdict::Pending => {}
            Verdict::Complete { right } => {
                // One slot of the room's limiter per PIN judged, taken before it counts: a
                // blocked room or address is refused even the right PIN.
                let target = crate::limiter::Target::Room(self.room.id.clone());
                match self.meetings.pins().attempt(target, ip) {
                    Err(blocked) => {
                        tracing::info!(room = self.room.number, %ip, ?blocked, "PIN attempts blocked");
                        self.leave_saying(id, &[Prompt::Goodbye]);
                    }
                    Ok(permit) if right => {
                        permit.succeeded();
                        self.pin_right(id);
                    }
                    Ok(permit) => {
                        permit.failed();
                        tracing::info!(room = self.room.number, %ip, "wrong PIN");
                        let next = match self.parts.get_mut(&id).map(|p| &mut p.stage) {
                            Some(Stage::Lobby(entry)) => entry.wrong(),
                            _ => return,
                        };
                        self.lobby_verdict(id, next);
                    }
                }
            }
            Verdict::Wrong => self.say(id, &[Prompt::WrongPin]),
            Verdict::TooMany => self.leave_saying(id, &[Prompt::Goodbye]),
            Verdict::Reprompt => self.say(id, &[Prompt::EnterPin]),
            Verdict::GiveUp => self.leave_saying(id, &[Prompt::Goodbye]),
        }
    }

    /// The right PIN: the caller leaves the lobby for the meeting (or is turned away).
    fn pin_right(&mut self, id: LegId) {
        match self.enter(id) {
            Ok(()) => {}
            Err(reason @ (Refused::Locked | Refused::Full(_))) => self.refuse(id, &reason),
            Err(reason) => {
                tracing::info!(%reason, room = self.room.number, "PIN right, but the meeting refused the caller");
                self.drop_part(id);
            }
        }
    }

    /// The clock: the room's maximum duration, each lobby's pauses, hang-ups after prompts.
    fn clock(&mut self, now: Instant) {
        if self.timers.next().is_some_and(|at| at <= now) {
            self.timer_fired(now);
        }
        if self.video_legs.is_empty()
            && self.stream.is_none()
            && !self.recording_video()
            && self
                .composer
                .as_ref()
                .is_some_and(|(_, at)| *at + COMPOSER_IDLE <= now)
        {
            // nobody has looked for a while, and no terminal receives it: its decoding stops
            self.composer = None;
        }
        if !self.poll_early && self.poll_at.is_some_and(|at| at <= now + POLL_LEAD) {
            // the next turn's members are asked for keyframes now (see `video`)
            self.poll_early = true;
        }
        if self.poll_at.is_some_and(|at| at <= now) {
            self.poll_at = None;
            self.poll_early = false;
            if let Ok(events) = self.state.apply(Actor::System, Command::PollTurn) {
                self.effects(events);
            }
        }
        let due: Vec<LegId> = self
            .parts
            .iter()
            .filter(|(_, p)| p.due.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        let pin = self.room.pin.clone().unwrap_or_default();
        for id in due {
            let Some(part) = self.parts.get_mut(&id) else {
                continue;
            };
            match &mut part.stage {
                Stage::Lobby(entry) => {
                    let verdict = entry.tick(now, &pin);
                    part.due = Some(entry.deadline());
                    self.lobby_verdict(id, verdict);
                }
                Stage::Leaving => {
                    part.due = None;
                    self.drop_part(id);
                }
                _ => part.due = None,
            }
        }
    }

    /// Keypad commands: applied with the member's own role; refused ones are said to be.
    fn keypad(&mut self, member: MemberId, digit: char) {
        let Some(m) = self.state.member(member).cloned() else {
            return;
        };
        self.acting_for = format!("{} (keypad)", m.name);
        let (locked, recording) = (self.state.is_locked(), self.state.is_recording());
        let command = self
            .keypads
            .entry(member)
            .or_default()
            .digit(digit, &m, locked, recording);
        let Some(command) = command else {
            return;
        };
        match self.state.apply(Actor::Member(member), command) {
            Ok(events) => self.effects(events),
            Err(reason) => {
                tracing::info!(%reason, room = self.room.number, "keypad command refused");
                if let Some(&leg) = self.by_member.get(&member) {
                    self.say(leg, &[Prompt::NotAllowed]);
                }
            }
        }
    }

    /// Speaks prompts one after the other to one participant (it stops their music, if any;
    /// the music comes back when they have been said).
    fn say(&mut self, id: LegId, said: &[Prompt]) {
        if said.is_empty() {
            return;
        }
        self.media.send(engine::Command::Play {
            member: id,
            playback: Playback {
                samples: prompts::sequence(self.room.language, said),
                rate: prompts::RATE,
                looped: false,
            },
        });
        self.speaking.insert(id);
        if self.music_for == Some(id) {
            self.music_for = None;
        }
    }

    /// A sound everyone in the meeting hears.
    fn chime(&self, sound: Sound) {
        if self.room.entry_chime {
            self.media
                .play_to_room(prompts::sound(sound), prompts::RATE);
        }
    }

    /// A prompt everyone in the meeting hears.
    fn announce(&self, prompt: Prompt) {
        self.media
            .play_to_room(prompts::pcm(self.room.language, prompt), prompts::RATE);
    }

    /// Music for whoever is alone in the meeting (once their prompts are said), silence
    /// when a second one arrives.
    fn music(&mut self) {
        let alone = match (self.by_member.len(), self.by_member.values().next()) {
            (1, Some(leg)) if self.room.alone_music => Some(*leg),
            _ => None,
        };
        if let Some(leg) = self.music_for.filter(|l| Some(*l) != alone) {
            self.media.send(engine::Command::StopPlay { member: leg });
            self.music_for = None;
        }
        if let Some(leg) = alone.filter(|l| !self.speaking.contains(l))
            && self.music_for != Some(leg)
        {
            self.media.send(engine::Command::Play {
                member: leg,
                playback: Playback {
                    samples: prompts::sound(Sound::Alone),
                    rate: prompts::RATE,
                    looped: true,
                },
            });
            self.music_for = Some(leg);
        }
    }

    /// The room's maximum duration: warn everyone, then say goodbye, then end.
    fn timer_fired(&mut self, now: Instant) {
        if self.timers.warn_at.is_some_and(|at| at <= now) {
            self.timers.warn_at = None;
            self.announce(Prompt::EndsSoon);
            return;
        }
        if self.timers.end_at.is_some_and(|at| at <= now) {
            if !self.timers.closing {
                self.timers.closing = true;
                self.timers.end_at = Some(now + GOODBYE);
                self.announce(Prompt::Ended);
                return;
            }
            self.timers.end_at = None;
            self.acting_for = SYSTEM.into();
            if let Ok(events) = self.state.apply(Actor::System, Command::End) {
                self.effects(events);
            }
        }
    }

    /// Makes the events happen outside the meeting's state, and logs them.
    fn effects(&mut self, events: Vec<Event>) {
        for event in events {
            self.record(history::Record::event(&self.acting_for, &event));
            self.meetings.publish(
                &self.room,
                &self.acting_for,
                LiveChange::Meeting(event.clone()),
            );
            match event {
                Event::Joined { .. } => {
                    if self.by_member.len() > 1 {
                        self.chime(Sound::Join);
                    }
                }
                Event::Left { .. } if !self.by_member.is_empty() => self.chime(Sound::Leave),
                Event::Counted { member, count } => {
                    if let Some(&leg) = self.by_member.get(&member) {
                        let mut said = vec![Prompt::Count];
                        said.extend(prompts::number(count));
                        self.say(leg, &said);
                    }
                }
                Event::Muted { member } => self.mute(member, true),
                Event::Unmuted { member } => self.mute(member, false),
                Event::WhisperMoved { member, group } => {
                    if let Some(&leg) = self.by_member.get(&member) {
                        self.media
                            .send(engine::Command::SetGroup { member: leg, group });
                    }
                }
                Event::Locked { locked } => self.announce(if locked {
                    Prompt::MeetingLocked
                } else {
                    Prompt::MeetingUnlocked
                }),
                Event::LayoutChanged { layout } => {
                    // polling's clock starts again with each change of it
                    self.poll_at = layout
                        .polling
                        .as_ref()
                        .map(|p| Instant::now() + Duration::from_secs(u64::from(p.interval_secs)));
                    self.poll_early = false;
                }
                Event::Streaming { on: true } => self.start_stream(),
                Event::Streaming { on: false } => self.stop_stream(),
                Event::Recording { on: true } => self.start_recording(),
                Event::Recording { on: false } => {
                    self.stop_recording();
                    self.announce(Prompt::RecordingStopped);
                }
                Event::Removed { member } => {
                    self.chime(Sound::Leave);
                    if let Some(leg) = self.by_member.remove(&member) {
                        self.keypads.remove(&member);
                        if let Some(part) = self.parts.get_mut(&leg) {
                            let call = part.leg.kind.call_id();
                            part.stage = Stage::Leaving;
                            part.due = None;
                            if std::mem::take(&mut part.in_media) {
                                self.media.remove(leg);
                            }
                            part.leg.hang_up();
                            self.call_state(call, CallState::Removed, None);
                        }
                    }
                }
                other => tracing::debug!(room = self.room.number, ?other, "meeting event"),
            }
        }
    }

    /// Records the room from its next tick: a track for the mix and for each person (named
    /// before their voice arrives), and everyone hears that it is recorded.
    fn start_recording(&mut self) {
        let Some(service) = self.meetings.recordings() else {
            tracing::error!(
                room = self.room.number,
                "recording asked for, but not set up"
            );
            return;
        };
        let active = service.start(&self.room, &self.meeting_id, &self.acting_for);
        for (&leg, part) in &self.parts {
            if part.in_media {
                active.identify(leg, who(&part.leg));
            }
        }
        self.media.tap(TapKind::Recording, Some(active.sink()));
        tracing::info!(room = self.room.number, recording = active.id, "recording");
        self.recording = Some(active);
        self.record_video();
        self.announce(Prompt::RecordingStarted);
    }

    fn stop_recording(&mut self) {
        if let Some(active) = self.recording.take() {
            if let Some((composer, _)) = &self.composer {
                composer.sink(Sink::Recording, None);
                composer.sizes(self.composed_sizes());
            }
            self.media.tap(TapKind::Recording, None);
            tracing::info!(
                room = self.room.number,
                recording = active.id,
                "recording stopped"
            );
            self.closing.push(active.stop());
        }
    }

    /// Streams the room's mix live from its next tick (the room's scheduled stream that is
    /// due, or a new one).
    fn start_stream(&mut self) {
        let active = self
            .meetings
            .streams()
            .start(&self.room, &self.meeting_id, &self.acting_for);
        self.media.tap(TapKind::Stream, Some(active.sink()));
        tracing::info!(room = self.room.number, "stream started");
        let pictures = active.pictures();
        self.stream = Some(active);
        // the stream shows the meeting's layout: its composer encodes the stream's size too
        let sizes = self.composed_sizes();
        if let Some(composer) = self.composer() {
            composer.sink(Sink::Stream, Some(pictures));
            composer.sizes(sizes);
        }
    }

    fn stop_stream(&mut self) {
        if let Some(active) = self.stream.take() {
            if let Some((composer, _)) = &self.composer {
                composer.sink(Sink::Stream, None);
                composer.sizes(self.composed_sizes());
            }
            self.media.tap(TapKind::Stream, None);
            tracing::info!(room = self.room.number, "stream stopped");
            self.closing.push(active.stop());
        }
    }

    fn record(&self, record: history::Record) {
        if self.history.try_send(record).is_err() {
            metrics::counter!("conclave_history_dropped_total").increment(1);
            tracing::warn!(
                room = self.room.number,
                "the meeting's history writer is behind: a record is lost"
            );
        }
    }

    /// The invitation whose call this is moves on (and the console hears of it).
    fn call_state(&mut self, call: u64, state: CallState, reason: Option<String>) {
        let Some(index) = self
            .invitations
            .iter()
            .position(|i| i.call_id == Some(call))
        else {
            return;
        };
        let invitation = &mut self.invitations[index];
        // A call that ended in the meeting stays left or removed.
        if invitation.state == state
            || (state == CallState::Left && invitation.state == CallState::Removed)
        {
            return;
        }
        invitation.state = state;
        invitation.reason = reason;
        self.published_invitation(index);
    }

    fn published_invitation(&self, index: usize) {
        if let Some(invitation) = self.invitations.get(index) {
            let progress = CallProgress {
                kind: "call",
                invitation: invitation.clone(),
            };
            self.meetings
                .publish(&self.room, SYSTEM, LiveChange::Call(progress));
        }
    }

    /// Mutes or unmutes in the mixer, and tells the member so.
    fn mute(&mut self, member: MemberId, muted: bool) {
        if let Some(&leg) = self.by_member.get(&member) {
            self.media
                .send(engine::Command::SetMuted { member: leg, muted });
            self.say(
                leg,
                &[if muted {
                    Prompt::Muted
                } else {
                    Prompt::Unmuted
                }],
            );
        }
    }

    /// The meeting is over: nobody new reaches this actor, what was on its way goes to the
    /// room's next meeting, everyone still here is hung up, and the record is closed.
    async fn finish(mut self, mut inbox: mpsc::Receiver<Msg>) {
        self.meetings.retire(&self.room.id, self.generation);
        self.composer = None;
        inbox.close();
        while let Ok(msg) = inbox.try_recv() {
            match msg {
                Msg::Arrive(leg) => self.meetings.arrive(&self.room, *leg),
                Msg::Apply { reply, .. } => {
                    let _ = reply.send(Err(Refused::Ended));
                }
                Msg::Shutdown { done } => {
                    let _ = done.send(());
                }
                _ => {}
            }
        }
        let legs: Vec<LegId> = self.parts.keys().copied().collect();
        for id in legs {
            if let Some(part) = self.parts.remove(&id) {
                if part.in_media {
                    self.media.remove(id);
                }
                part.leg.hang_up();
            }
        }
        self.stop_recording();
        self.stop_stream();
        self.record(history::Record::Ended { at: now_ms() });
        if self.room.release_when_empty {
            // A room made from the keypad served this one meeting.
            let (store, room) = (self.meetings.store().clone(), self.room.clone());
            tokio::spawn(async move {
                if let Err(err) = crate::rooms::release(&store, &room).await {
                    tracing::warn!(%err, room = room.number, "cannot release a keypad room");
                }
            });
        }
        // The record is written before the server may stop.
        let RoomActor {
            history,
            writer,
            stopping,
            closing,
            ..
        } = self;
        drop(history);
        let written = async {
            let _ = writer.await;
            for recording in closing {
                let _ = recording.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), written)
            .await
            .is_err()
        {
            tracing::warn!("a meeting's history or recording was not written in time");
        }
        if let Some(done) = stopping {
            let _ = done.send(());
        }
    }
}

/// Who a leg's voice belongs to, for its recorded track: one track per number (or name).
fn who(leg: &Leg) -> Who {
    let identity = if leg.who.number.is_empty() {
        format!("name:{}", leg.who.name)
    } else {
        format!("number:{}", leg.who.number)
    };
    Who {
        identity,
        name: leg.who.name.clone(),
        number: leg.who.number.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(max_duration_minutes: Option<i64>) -> Room {
        Room {
            id: "r".into(),
            tenant_id: "t".into(),
            number: "8001".into(),
            name: "Room".into(),
            pin: None,
            has_pin: false,
            capacity: 10,
            max_duration_minutes,
            language: conclave_store::model::Language::English,
            creator_id: None,
            owner_id: None,
            entry_chime: true,
            alone_music: true,
            members_skip_pin: false,
            auto_record: false,
            release_when_empty: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_long_meeting_is_warned_five_minutes_before_its_end() {
        let t0 = Instant::now();
        let t = Timers::for_room(&room(Some(60)), t0);
        assert_eq!(t.end_at, Some(t0 + Duration::from_secs(3600)));
        assert_eq!(t.warn_at, Some(t0 + Duration::from_secs(3300)));
        assert_eq!(t.next(), t.warn_at);
    }

    #[test]
    fn a_short_meeting_is_warned_half_way_and_no_limit_means_no_timer() {
        let t0 = Instant::now();
        let t = Timers::for_room(&room(Some(4)), t0);
        assert_eq!(t.warn_at, Some(t0 + Duration::from_secs(120)));
        assert_eq!(Timers::for_room(&room(None), t0), Timers::default());
        assert_eq!(Timers::for_room(&room(Some(0)), t0).next(), None);
    }
}
