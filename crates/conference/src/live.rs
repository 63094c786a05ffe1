//! The state of one live meeting, as a pure state machine: commands in, events out.
//!
//! The server runs one actor task per live meeting that owns a [`Meeting`]; REST calls,
//! WebSocket messages, keypad digits and SIP events all become [`Command`]s applied here, and
//! the resulting [`Event`]s drive the mixer, the roster, webhooks and history. Every command
//! passes the one permission check ([`crate::check`]) before it changes anything.

use crate::layout::{Layout, LayoutKind, POLL_INTERVAL, Polling, TileView};
use crate::permissions::{Action, Denied, Role, check, check_role_change};
use serde::Serialize;
use std::collections::BTreeMap;

/// A member's id within one meeting (assigned by the meeting, never reused in it).
pub type MemberId = u32;
/// A whisper group's id within one meeting.
pub type GroupId = u32;

/// How someone came into the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinedVia {
    DialIn,
    DialOut,
    Browser,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub number: String,
    pub role: Role,
    pub via: JoinedVia,
    pub muted: bool,
    /// False while a chair forbids the member to speak: they cannot unmute themself.
    pub may_speak: bool,
    pub hand_raised: bool,
    pub whisper_group: Option<GroupId>,
    /// Voice activity, as the mixer hears it.
    pub talking: bool,
}

/// Who issues a command: a member of the meeting, or an operator from the console or API whose
/// account gives them a role in it (administrators act as owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Member(MemberId),
    Operator(Role),
    /// The server itself: admission, a room's time limit, a media timeout. Logged as `system`.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Join {
        name: String,
        number: String,
        role: Role,
        via: JoinedVia,
    },
    Leave {
        member: MemberId,
    },
    MuteSelf,
    UnmuteSelf,
    RaiseHand {
        raised: bool,
    },
    Mute {
        target: MemberId,
    },
    Unmute {
        target: MemberId,
    },
    MuteAll,
    UnmuteAll,
    SetSpeak {
        target: MemberId,
        allowed: bool,
    },
    Kick {
        target: MemberId,
    },
    SetRole {
        target: MemberId,
        role: Role,
    },
    Lock,
    Unlock,
    /// Starts (`on`) or stops recording the meeting.
    Record {
        on: bool,
    },
    /// Starts (`on`) or stops the meeting's live stream.
    Stream {
        on: bool,
    },
    OpenWhisper {
        members: Vec<MemberId>,
    },
    MoveToWhisper {
        target: MemberId,
        group: Option<GroupId>,
    },
    CloseWhisper {
        group: GroupId,
    },
    /// A member asks how many are in the meeting (the keypad says it).
    Count,
    /// The video layout.
    SetLayout {
        kind: LayoutKind,
    },
    /// Keeps a member in a tile (`None`: the tile is free again).
    Pin {
        tile: usize,
        member: Option<MemberId>,
    },
    /// Polling on some tiles (`None`: off).
    SetPolling {
        polling: Option<Polling>,
    },
    /// Whether members (not only chairs) may share their screens.
    SetSharing {
        members_may_share: bool,
    },
    /// A member shares a screen: its screen takes the large tile. A member asks for itself;
    /// a chair may hand the large tile to someone.
    StartShare {
        member: MemberId,
        /// What is shared is a whiteboard: chairs may draw on it too.
        board: bool,
    },
    /// The share ends (the sharer, or a chair).
    StopShare,
    /// A stroke on the shared whiteboard, from its presenter or a chair.
    Draw {
        stroke: crate::whiteboard::Stroke,
    },
    /// Polling's next turn (the meeting's timer).
    PollTurn,
    End,
}

/// What changed; each event is published to the roster, webhooks, history and the mixer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Joined {
        member: Member,
    },
    Left {
        member: MemberId,
    },
    Removed {
        member: MemberId,
    },
    Muted {
        member: MemberId,
    },
    Unmuted {
        member: MemberId,
    },
    SpeakAllowed {
        member: MemberId,
        allowed: bool,
    },
    HandRaised {
        member: MemberId,
        raised: bool,
    },
    RoleChanged {
        member: MemberId,
        role: Role,
    },
    Talking {
        member: MemberId,
        talking: bool,
    },
    Locked {
        locked: bool,
    },
    /// The meeting is being recorded, or no longer.
    Recording {
        on: bool,
    },
    /// The meeting is streamed live, or no longer.
    Streaming {
        on: bool,
    },
    /// The answer to a member's [`Command::Count`].
    Counted {
        member: MemberId,
        count: usize,
    },
    WhisperOpened {
        group: GroupId,
        members: Vec<MemberId>,
    },
    WhisperMoved {
        member: MemberId,
        group: Option<GroupId>,
    },
    WhisperClosed {
        group: GroupId,
    },
    /// A stroke for the presenter's page to draw on the shared whiteboard.
    Stroke {
        presenter: MemberId,
        by: MemberId,
        stroke: crate::whiteboard::Stroke,
    },
    /// The layout, pins, polling or share changed (tiles are derived from it).
    LayoutChanged {
        layout: Layout,
    },
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("the meeting is locked")]
    Locked,
    #[error("the meeting is full ({0} members)")]
    Full(usize),
    #[error("the meeting has ended")]
    Ended,
    #[error("no member {0} in this meeting")]
    NoSuchMember(MemberId),
    #[error("no whisper group {0} in this meeting")]
    NoSuchGroup(GroupId),
    #[error("a chair has forbidden this member to speak")]
    ForbiddenToSpeak,
    #[error("this command needs a member of the meeting, not an operator")]
    NotAMember,
    #[error("a whisper group needs at least one member")]
    EmptyGroup,
    #[error("a meeting is already in progress in this room")]
    AlreadyLive,
    /// Polling needs its tiles in the layout and an interval within bounds.
    #[error("that polling cannot be set: {0}")]
    BadPolling(&'static str),
    #[error("the layout has no tile {0}")]
    NoSuchTile(usize),
    #[error("only chairs may share a screen in this meeting")]
    SharingClosed,
    #[error("only the member sharing or a chair can stop a share")]
    NotSharing,
    #[error("no whiteboard is shared in this meeting")]
    NoBoard,
    #[error("that stroke cannot be drawn: {0}")]
    BadStroke(&'static str),
}

/// Settings a meeting starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub capacity: usize,
    /// Members below chairman join muted.
    pub mute_on_entry: bool,
    pub locked: bool,
    /// Recorded from its first member on (a template's or booking's setting).
    pub record: bool,
    /// The video layout it starts with.
    pub layout: LayoutKind,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            capacity: 100,
            mute_on_entry: false,
            locked: false,
            record: false,
            layout: LayoutKind::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Meeting {
    settings: Settings,
    members: BTreeMap<MemberId, Member>,
    groups: BTreeMap<GroupId, Vec<MemberId>>,
    locked: bool,
    recording: bool,
    streaming: bool,
    ended: bool,
    next_member: MemberId,
    next_group: GroupId,
    layout: Layout,
    /// Who spoke last (the big tile follows them).
    speaker: Option<MemberId>,
    /// Polling's turn.
    turn: u64,
}

impl Meeting {
    pub fn new(settings: Settings) -> Self {
        let layout_kind = settings.layout;
        Meeting {
            locked: settings.locked,
            settings,
            members: BTreeMap::new(),
            groups: BTreeMap::new(),
            recording: false,
            streaming: false,
            ended: false,
            next_member: 1,
            next_group: 1,
            layout: Layout {
                kind: layout_kind,
                members_may_share: true,
                ..Layout::default()
            },
            speaker: None,
            turn: 0,
        }
    }

    /// The chair's layout choices.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Who is shown in which tile now.
    pub fn tiles(&self) -> Vec<TileView> {
        let present: Vec<MemberId> = self.members.keys().copied().collect();
        crate::layout::assign(&self.layout, &present, self.speaker, self.turn)
    }

    /// Who the tiles will show at the next polling turn, if polling runs: the media plane
    /// switches a little early, so the next member's keyframe arrives for their turn.
    pub fn next_turn_tiles(&self) -> Option<Vec<TileView>> {
        self.layout.polling.as_ref()?;
        let present: Vec<MemberId> = self.members.keys().copied().collect();
        Some(crate::layout::assign(
            &self.layout,
            &present,
            self.speaker,
            self.turn + 1,
        ))
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn is_locked(&self) -> bool {
        self.locked
    }

    pub fn is_recording(&self) -> bool {
        self.recording
    }

    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Whether the meeting was started to be recorded (from its first member on).
    pub fn records_from_the_start(&self) -> bool {
        self.settings.record
    }

    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// The members of a whisper group.
    pub fn group(&self, id: GroupId) -> Option<&[MemberId]> {
        self.groups.get(&id).map(Vec::as_slice)
    }

    fn role_of(&self, actor: Actor) -> Result<Role, Refused> {
        match actor {
            Actor::Operator(role) => Ok(role),
            Actor::System => Ok(Role::Owner),
            Actor::Member(id) => self
                .members
                .get(&id)
                .map(|m| m.role)
                .ok_or(Refused::NoSuchMember(id)),
        }
    }

    fn target(&self, id: MemberId) -> Result<&Member, Refused> {
        self.members.get(&id).ok_or(Refused::NoSuchMember(id))
    }

    fn self_id(actor: Actor) -> Result<MemberId, Refused> {
        match actor {
            Actor::Member(id) => Ok(id),
            Actor::Operator(_) | Actor::System => Err(Refused::NotAMember),
        }
    }

    /// Applies a command for an actor; on refusal nothing changes.
    pub fn apply(&mut self, actor: Actor, command: Command) -> Result<Vec<Event>, Refused> {
        if self.ended {
            return Err(Refused::Ended);
        }
        let role = match &command {
            // Joining is decided by the room's admission rules, not by a role in the meeting.
            Command::Join { .. } => Role::Participant,
            _ => self.role_of(actor)?,
        };
        let command_is_lock = command == Command::Lock;
        let mut events = Vec::new();
        match command {
            Command::Join {
                name,
                number,
                role,
                via,
            } => {
                // A lock keeps out those who dial in; people the meeting itself calls still come.
                if self.locked && via != JoinedVia::DialOut {
                    return Err(Refused::Locked);
                }
                if self.members.len() >= self.settings.capacity {
                    return Err(Refused::Full(self.settings.capacity));
                }
                let id = self.next_member;
                self.next_member += 1;
                let member = Member {
                    id,
                    name,
                    number,
                    role,
                    via,
                    muted: self.settings.mute_on_entry && role < Role::Chairman,
                    may_speak: true,
                    hand_raised: false,
                    whisper_group: None,
                    talking: false,
                };
                self.members.insert(id, member.clone());
                events.push(Event::Joined { member });
            }
            Command::Leave { member } => {
                self.target(member)?;
                self.drop_member(member);
                events.push(Event::Left { member });
                self.forget_in_layout(member, &mut events);
            }
            Command::MuteSelf => {
                check(role, Action::MuteSelf, None)?;
                let id = Self::self_id(actor)?;
                self.set_muted(id, true, &mut events);
            }
            Command::UnmuteSelf => {
                check(role, Action::SpeakSelf, None)?;
                let id = Self::self_id(actor)?;
                if !self.target(id)?.may_speak {
                    return Err(Refused::ForbiddenToSpeak);
                }
                self.set_muted(id, false, &mut events);
            }
            Command::RaiseHand { raised } => {
                check(role, Action::RaiseHand, None)?;
                let id = Self::self_id(actor)?;
                if let Some(m) = self
                    .members
                    .get_mut(&id)
                    .filter(|m| m.hand_raised != raised)
                {
                    m.hand_raised = raised;
                    events.push(Event::HandRaised { member: id, raised });
                }
            }
            Command::Mute { target } => {
                check(role, Action::MuteMember, Some(self.target(target)?.role))?;
                self.set_muted(target, true, &mut events);
            }
            Command::Unmute { target } => {
                check(role, Action::UnmuteMember, Some(self.target(target)?.role))?;
                if !self.target(target)?.may_speak {
                    return Err(Refused::ForbiddenToSpeak);
                }
                self.set_muted(target, false, &mut events);
            }
            Command::Count => {
                check(role, Action::ViewRoster, None)?;
                let member = Self::self_id(actor)?;
                events.push(Event::Counted {
                    member,
                    count: self.members.len(),
                });
            }
            Command::MuteAll => {
                check(role, Action::MuteAll, None)?;
                self.mute_all(true, &mut events);
            }
            Command::UnmuteAll => {
                check(role, Action::MuteAll, None)?;
                self.mute_all(false, &mut events);
            }
            Command::SetSpeak { target, allowed } => {
                check(
                    role,
                    Action::SetMemberSpeak,
                    Some(self.target(target)?.role),
                )?;
                if let Some(m) = self
                    .members
                    .get_mut(&target)
                    .filter(|m| m.may_speak != allowed)
                {
                    m.may_speak = allowed;
                    events.push(Event::SpeakAllowed {
                        member: target,
                        allowed,
                    });
                }
                // Allowing answers a raised hand and opens the microphone; forbidding closes it.
                self.set_muted(target, !allowed, &mut events);
                if allowed && let Some(m) = self.members.get_mut(&target).filter(|m| m.hand_raised)
                {
                    m.hand_raised = false;
                    events.push(Event::HandRaised {
                        member: target,
                        raised: false,
                    });
                }
            }
            Command::Kick { target } => {
                check(role, Action::KickMember, Some(self.target(target)?.role))?;
                self.drop_member(target);
                events.push(Event::Removed { member: target });
                self.forget_in_layout(target, &mut events);
            }
            Command::SetLayout { kind } => {
                check(role, Action::SetLayout, None)?;
                if self.layout.kind != kind {
                    self.layout.kind = kind;
                    // pins and polled tiles past the new layout's end go
                    let n = kind.tiles().len();
                    self.layout.pins.retain(|tile, _| *tile < n);
                    if let Some(p) = self.layout.polling.as_mut() {
                        p.tiles.retain(|tile| *tile < n);
                    }
                    if self
                        .layout
                        .polling
                        .as_ref()
                        .is_some_and(|p| p.tiles.is_empty())
                    {
                        self.layout.polling = None;
                    }
                    self.layout_changed(&mut events);
                }
            }
            Command::Pin { tile, member } => {
                check(role, Action::SetLayout, None)?;
                if tile >= self.layout.kind.tiles().len() {
                    return Err(Refused::NoSuchTile(tile));
                }
                match member {
                    Some(m) => {
                        self.target(m)?;
                        // a member is pinned to one tile at a time
                        self.layout.pins.retain(|_, pinned| *pinned != m);
                        self.layout.pins.insert(tile, m);
                    }
                    None => {
                        self.layout.pins.remove(&tile);
                    }
                }
                self.layout_changed(&mut events);
            }
            Command::SetPolling { polling } => {
                check(role, Action::SetLayout, None)?;
                if let Some(p) = &polling {
                    let n = self.layout.kind.tiles().len();
                    if p.tiles.is_empty() {
                        return Err(Refused::BadPolling("name at least one tile"));
                    }
                    if let Some(&bad) = p.tiles.iter().find(|t| **t >= n) {
                        return Err(Refused::NoSuchTile(bad));
                    }
                    if !POLL_INTERVAL.contains(&p.interval_secs) {
                        return Err(Refused::BadPolling(
                            "the interval is from 2 seconds to an hour",
                        ));
                    }
                    for m in &p.members {
                        self.target(*m)?;
                    }
                }
                self.layout.polling = polling;
                self.turn = 0;
                self.layout_changed(&mut events);
            }
            Command::SetSharing { members_may_share } => {
                check(role, Action::SetLayout, None)?;
                if self.layout.members_may_share != members_may_share {
                    self.layout.members_may_share = members_may_share;
                    self.layout_changed(&mut events);
                }
            }
            Command::StartShare { member, board } => {
                self.target(member)?;
                match actor {
                    // for oneself: the sharing rule, and chairs-only when the chair said so
                    Actor::Member(id) if id == member => {
                        check(role, Action::ShareScreen, None)?;
                        if !self.layout.members_may_share && role < Role::Chairman {
                            return Err(Refused::SharingClosed);
                        }
                    }
                    // for someone else: the chair's
                    _ => check(role, Action::SetLayout, None)?,
                }
                if self.layout.sharer != Some(member) || self.layout.board != board {
                    self.layout.sharer = Some(member);
                    self.layout.board = board;
                    self.layout_changed(&mut events);
                }
            }
            Command::Draw { stroke } => {
                let presenter = self
                    .layout
                    .sharer
                    .filter(|_| self.layout.board)
                    .ok_or(Refused::NoBoard)?;
                let by = match actor {
                    Actor::Member(id) => id,
                    _ => return Err(Refused::NotAMember),
                };
                if by != presenter {
                    check(role, Action::DrawOnBoard, None)?;
                }
                stroke.check().map_err(Refused::BadStroke)?;
                events.push(Event::Stroke {
                    presenter,
                    by,
                    stroke,
                });
            }
            Command::StopShare => {
                let own = matches!(actor, Actor::Member(id) if Some(id) == self.layout.sharer);
                if !own {
                    check(role, Action::SetLayout, None).map_err(|_| Refused::NotSharing)?;
                }
                self.layout.board = false;
                if self.layout.sharer.take().is_some() {
                    self.layout_changed(&mut events);
                }
            }
            Command::PollTurn => {
                if self.layout.polling.is_some() {
                    self.turn += 1;
                    self.layout_changed(&mut events);
                }
            }
            Command::SetRole { target, role: new } => {
                check_role_change(role, self.target(target)?.role, new)?;
                if let Some(m) = self.members.get_mut(&target).filter(|m| m.role != new) {
                    m.role = new;
                    events.push(Event::RoleChanged {
                        member: target,
                        role: new,
                    });
                }
            }
            Command::Lock | Command::Unlock => {
                check(role, Action::Lock, None)?;
                let locked = command_is_lock;
                if self.locked != locked {
                    self.locked = locked;
                    events.push(Event::Locked { locked });
                }
            }
            Command::Record { on } => {
                check(role, Action::Record, None)?;
                if self.recording != on {
                    self.recording = on;
                    events.push(Event::Recording { on });
                }
            }
            Command::Stream { on } => {
                check(role, Action::Stream, None)?;
                if self.streaming != on {
                    self.streaming = on;
                    events.push(Event::Streaming { on });
                }
            }
            Command::OpenWhisper { members } => {
                check(role, Action::WhisperGroup, None)?;
                if members.is_empty() {
                    return Err(Refused::EmptyGroup);
                }
                for id in &members {
                    self.target(*id)?;
                }
                let group = self.next_group;
                self.next_group += 1;
                self.groups.insert(group, Vec::new());
                events.push(Event::WhisperOpened {
                    group,
                    members: members.clone(),
                });
                for id in members {
                    self.move_to(id, Some(group), &mut events);
                }
            }
            Command::MoveToWhisper { target, group } => {
                check(role, Action::WhisperGroup, None)?;
                self.target(target)?;
                if let Some(g) = group
                    && !self.groups.contains_key(&g)
                {
                    return Err(Refused::NoSuchGroup(g));
                }
                self.move_to(target, group, &mut events);
            }
            Command::CloseWhisper { group } => {
                check(role, Action::WhisperGroup, None)?;
                let members = self
                    .groups
                    .get(&group)
                    .cloned()
                    .ok_or(Refused::NoSuchGroup(group))?;
                for id in members {
                    self.move_to(id, None, &mut events);
                }
                self.groups.remove(&group);
                events.push(Event::WhisperClosed { group });
            }
            Command::End => {
                check(role, Action::EndMeeting, None)?;
                self.ended = true;
                events.push(Event::Ended);
            }
        }
        Ok(events)
    }

    /// Voice activity reported by the mixer (not a command: nobody is asked for permission).
    pub fn set_talking(&mut self, id: MemberId, talking: bool) -> Option<Event> {
        let m = self.members.get_mut(&id).filter(|m| m.talking != talking)?;
        m.talking = talking;
        if talking {
            self.speaker = Some(id);
        }
        Some(Event::Talking {
            member: id,
            talking,
        })
    }

    fn set_muted(&mut self, id: MemberId, muted: bool, events: &mut Vec<Event>) {
        if let Some(m) = self.members.get_mut(&id).filter(|m| m.muted != muted) {
            m.muted = muted;
            // The mixer stops listening to a muted member: they are not talking any more.
            if muted && m.talking {
                m.talking = false;
                events.push(Event::Talking {
                    member: id,
                    talking: false,
                });
            }
            events.push(if muted {
                Event::Muted { member: id }
            } else {
                Event::Unmuted { member: id }
            });
        }
    }

    /// Mutes or unmutes everyone below chairman; unmuting spares those forbidden to speak.
    fn mute_all(&mut self, mute: bool, events: &mut Vec<Event>) {
        let targets: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| m.role < Role::Chairman && (mute || m.may_speak))
            .map(|m| m.id)
            .collect();
        for id in targets {
            self.set_muted(id, mute, events);
        }
    }

    fn move_to(&mut self, id: MemberId, group: Option<GroupId>, events: &mut Vec<Event>) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        if member.whisper_group == group {
            return;
        }
        if let Some(old) = member.whisper_group.and_then(|g| self.groups.get_mut(&g)) {
            old.retain(|m| *m != id);
        }
        if let Some(new) = group.and_then(|g| self.groups.get_mut(&g)) {
            new.push(id);
        }
        member.whisper_group = group;
        events.push(Event::WhisperMoved { member: id, group });
    }

    fn layout_changed(&self, events: &mut Vec<Event>) {
        events.push(Event::LayoutChanged {
            layout: self.layout.clone(),
        });
    }

    /// A member who left is no longer pinned, polled, sharing or the speaker.
    fn forget_in_layout(&mut self, id: MemberId, events: &mut Vec<Event>) {
        if self.speaker == Some(id) {
            self.speaker = None;
        }
        let before = self.layout.clone();
        self.layout.pins.retain(|_, m| *m != id);
        if self.layout.sharer == Some(id) {
            self.layout.sharer = None;
            self.layout.board = false;
        }
        if let Some(p) = self.layout.polling.as_mut() {
            p.members.retain(|m| *m != id);
        }
        if self.layout != before {
            self.layout_changed(events);
        }
    }

    fn drop_member(&mut self, id: MemberId) {
        if let Some(group) = self.members.get(&id).and_then(|m| m.whisper_group)
            && let Some(g) = self.groups.get_mut(&group)
        {
            g.retain(|m| *m != id);
        }
        self.members.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(c: &mut Meeting, name: &str, role: Role) -> MemberId {
        let events = c
            .apply(
                Actor::Operator(Role::Owner),
                Command::Join {
                    name: name.into(),
                    number: "1001".into(),
                    role,
                    via: JoinedVia::DialIn,
                },
            )
            .expect("join");
        match &events[..] {
            [Event::Joined { member }] => member.id,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn meeting() -> (Meeting, MemberId, MemberId, MemberId) {
        let mut c = Meeting::new(Settings {
            mute_on_entry: true,
            ..Settings::default()
        });
        let chair = join(&mut c, "chair", Role::Chairman);
        let a = join(&mut c, "a", Role::Member);
        let b = join(&mut c, "b", Role::Participant);
        (c, chair, a, b)
    }

    #[test]
    fn a_shared_whiteboard_takes_strokes_from_its_presenter_and_chairs_only() {
        use crate::whiteboard::Stroke;
        let (mut c, chair, a, b) = meeting();
        let stroke = Stroke {
            pen: 1,
            points: vec![[0, 0], [5000, 5000]],
        };
        let draw = |c: &mut Meeting, who: MemberId, stroke: &Stroke| {
            c.apply(
                Actor::Member(who),
                Command::Draw {
                    stroke: stroke.clone(),
                },
            )
        };
        // a screen is no board: nothing to draw on
        c.apply(
            Actor::Member(a),
            Command::StartShare {
                member: a,
                board: false,
            },
        )
        .unwrap();
        assert_eq!(draw(&mut c, chair, &stroke), Err(Refused::NoBoard));
        c.apply(
            Actor::Member(a),
            Command::StartShare {
                member: a,
                board: true,
            },
        )
        .unwrap();
        assert!(c.layout().board);
        for who in [a, chair] {
            assert_eq!(
                draw(&mut c, who, &stroke).unwrap(),
                vec![Event::Stroke {
                    presenter: a,
                    by: who,
                    stroke: stroke.clone()
                }]
            );
        }
        assert!(matches!(draw(&mut c, b, &stroke), Err(Refused::Denied(_))));
        let wild = Stroke {
            pen: 9,
            ..stroke.clone()
        };
        assert!(matches!(
            draw(&mut c, chair, &wild),
            Err(Refused::BadStroke(_))
        ));
        assert_eq!(
            c.apply(
                Actor::Operator(Role::Owner),
                Command::Draw {
                    stroke: stroke.clone()
                }
            ),
            Err(Refused::NotAMember)
        );
        // the presenter stops: the board is gone
        c.apply(Actor::Member(a), Command::StopShare).unwrap();
        assert!(!c.layout().board);
        assert_eq!(draw(&mut c, chair, &stroke), Err(Refused::NoBoard));
    }

    #[test]
    fn the_next_polling_turn_is_known_before_it_comes() {
        let (mut c, chair, a, b) = meeting();
        assert_eq!(c.next_turn_tiles(), None, "no polling, no turn");
        c.apply(
            Actor::Member(chair),
            Command::SetPolling {
                polling: Some(crate::layout::Polling {
                    tiles: vec![3],
                    interval_secs: 5,
                    members: vec![a, b],
                }),
            },
        )
        .unwrap();
        let now = c.tiles();
        let next = c.next_turn_tiles().expect("polling");
        assert_ne!(now[3].member, next[3].member);
        c.apply(Actor::System, Command::PollTurn).unwrap();
        assert_eq!(c.tiles(), next);
    }

    #[test]
    fn anyone_may_ask_the_count_but_operators_have_no_self() {
        let (mut c, _, _, b) = meeting();
        assert_eq!(
            c.apply(Actor::Member(b), Command::Count).unwrap(),
            vec![Event::Counted {
                member: b,
                count: 3
            }]
        );
        assert!(
            c.apply(Actor::Operator(Role::Owner), Command::Count)
                .is_err()
        );
    }

    #[test]
    fn mute_on_entry_spares_chairs() {
        let (c, chair, a, b) = meeting();
        assert!(!c.member(chair).unwrap().muted);
        assert!(c.member(a).unwrap().muted && c.member(b).unwrap().muted);
    }

    #[test]
    fn chair_mutes_members_but_members_cannot_mute_the_chair() {
        let (mut c, chair, a, _) = meeting();
        c.apply(Actor::Member(a), Command::UnmuteSelf).unwrap();
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Mute { target: a })
                .unwrap(),
            vec![Event::Muted { member: a }]
        );
        assert!(matches!(
            c.apply(Actor::Member(a), Command::Mute { target: chair }),
            Err(Refused::Denied(_))
        ));
        // Muting twice changes nothing and says nothing.
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Mute { target: a })
                .unwrap(),
            vec![]
        );
    }

    #[test]
    fn forbidden_members_cannot_unmute_themselves_until_allowed() {
        let (mut c, chair, a, _) = meeting();
        c.apply(
            Actor::Member(chair),
            Command::SetSpeak {
                target: a,
                allowed: false,
            },
        )
        .unwrap();
        assert_eq!(
            c.apply(Actor::Member(a), Command::UnmuteSelf),
            Err(Refused::ForbiddenToSpeak)
        );
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Unmute { target: a }),
            Err(Refused::ForbiddenToSpeak)
        );
        c.apply(Actor::Member(a), Command::RaiseHand { raised: true })
            .unwrap();
        let events = c
            .apply(
                Actor::Member(chair),
                Command::SetSpeak {
                    target: a,
                    allowed: true,
                },
            )
            .unwrap();
        assert_eq!(
            events,
            vec![
                Event::SpeakAllowed {
                    member: a,
                    allowed: true
                },
                Event::Unmuted { member: a },
                Event::HandRaised {
                    member: a,
                    raised: false
                },
            ]
        );
    }

    #[test]
    fn mute_all_spares_chairs_and_unmute_all_spares_the_forbidden() {
        let (mut c, chair, a, b) = meeting();
        c.apply(Actor::Member(chair), Command::UnmuteAll).unwrap();
        c.apply(
            Actor::Member(chair),
            Command::SetSpeak {
                target: b,
                allowed: false,
            },
        )
        .unwrap();
        c.apply(Actor::Member(chair), Command::MuteAll).unwrap();
        assert!(!c.member(chair).unwrap().muted && c.member(a).unwrap().muted);
        let events = c.apply(Actor::Member(chair), Command::UnmuteAll).unwrap();
        assert_eq!(events, vec![Event::Unmuted { member: a }]);
        assert!(c.member(b).unwrap().muted);
        assert!(c.apply(Actor::Member(a), Command::MuteAll).is_err());
    }

    #[test]
    fn chairs_start_and_stop_streaming_and_members_may_not() {
        let (mut c, chair, a, _) = meeting();
        assert!(
            c.apply(Actor::Member(a), Command::Stream { on: true })
                .is_err()
        );
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Stream { on: true })
                .expect("chair"),
            vec![Event::Streaming { on: true }]
        );
        assert!(c.is_streaming());
        // once is enough
        assert!(
            c.apply(Actor::Member(chair), Command::Stream { on: true })
                .expect("chair")
                .is_empty()
        );
        assert_eq!(
            c.apply(Actor::System, Command::Stream { on: false })
                .expect("system"),
            vec![Event::Streaming { on: false }]
        );
    }

    #[test]
    fn chairs_start_and_stop_recording_and_members_may_not() {
        let (mut c, chair, a, _) = meeting();
        assert!(
            c.apply(Actor::Member(a), Command::Record { on: true })
                .is_err()
        );
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Record { on: true })
                .unwrap(),
            vec![Event::Recording { on: true }]
        );
        assert!(c.is_recording());
        assert!(
            c.apply(Actor::Member(chair), Command::Record { on: true })
                .unwrap()
                .is_empty()
        );
        assert!(
            c.apply(Actor::Member(a), Command::Record { on: false })
                .is_err()
        );
        assert_eq!(
            c.apply(Actor::System, Command::Record { on: false })
                .unwrap(),
            vec![Event::Recording { on: false }]
        );
        assert!(!c.is_recording());
    }

    #[test]
    fn locked_and_full_meetings_refuse_newcomers() {
        let (mut c, chair, _, _) = meeting();
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Lock).unwrap(),
            vec![Event::Locked { locked: true }]
        );
        let join = Command::Join {
            name: "late".into(),
            number: "9".into(),
            role: Role::Member,
            via: JoinedVia::DialIn,
        };
        assert_eq!(
            c.apply(Actor::Operator(Role::Owner), join.clone()),
            Err(Refused::Locked)
        );
        let invited = Command::Join {
            name: "invited".into(),
            number: "8".into(),
            role: Role::Member,
            via: JoinedVia::DialOut,
        };
        assert!(
            c.apply(Actor::Operator(Role::Owner), invited).is_ok(),
            "invitees come in despite the lock"
        );
        c.apply(Actor::Member(chair), Command::Unlock).unwrap();
        c.apply(Actor::Operator(Role::Owner), join.clone()).unwrap();
        let mut small = Meeting::new(Settings {
            capacity: 1,
            ..Settings::default()
        });
        small
            .apply(Actor::Operator(Role::Owner), join.clone())
            .unwrap();
        assert_eq!(
            small.apply(Actor::Operator(Role::Owner), join),
            Err(Refused::Full(1))
        );
    }

    #[test]
    fn roles_change_within_rank() {
        let (mut c, chair, a, b) = meeting();
        assert_eq!(
            c.apply(
                Actor::Member(chair),
                Command::SetRole {
                    target: b,
                    role: Role::Member
                }
            )
            .unwrap(),
            vec![Event::RoleChanged {
                member: b,
                role: Role::Member
            }]
        );
        assert!(
            c.apply(
                Actor::Member(chair),
                Command::SetRole {
                    target: a,
                    role: Role::Chairman
                }
            )
            .is_err()
        );
        assert!(
            c.apply(
                Actor::Operator(Role::Owner),
                Command::SetRole {
                    target: a,
                    role: Role::Manager
                }
            )
            .is_ok()
        );
        // Now a manager, `a` outranks the chairman, who can no longer mute them.
        assert!(
            c.apply(Actor::Member(chair), Command::Mute { target: a })
                .is_err()
        );
    }

    #[test]
    fn whisper_groups_open_move_and_close() {
        let (mut c, chair, a, b) = meeting();
        let events = c
            .apply(
                Actor::Member(chair),
                Command::OpenWhisper { members: vec![a] },
            )
            .unwrap();
        assert_eq!(
            events,
            vec![
                Event::WhisperOpened {
                    group: 1,
                    members: vec![a]
                },
                Event::WhisperMoved {
                    member: a,
                    group: Some(1)
                },
            ]
        );
        c.apply(
            Actor::Member(chair),
            Command::MoveToWhisper {
                target: b,
                group: Some(1),
            },
        )
        .unwrap();
        assert_eq!(c.group(1), Some(&[a, b][..]));
        c.apply(
            Actor::Member(chair),
            Command::MoveToWhisper {
                target: a,
                group: None,
            },
        )
        .unwrap();
        assert_eq!(c.group(1), Some(&[b][..]));
        assert_eq!(
            c.apply(
                Actor::Member(chair),
                Command::MoveToWhisper {
                    target: a,
                    group: Some(7)
                }
            ),
            Err(Refused::NoSuchGroup(7))
        );
        let events = c
            .apply(Actor::Member(chair), Command::CloseWhisper { group: 1 })
            .unwrap();
        assert_eq!(
            events,
            vec![
                Event::WhisperMoved {
                    member: b,
                    group: None
                },
                Event::WhisperClosed { group: 1 }
            ]
        );
        assert!(c.members().all(|m| m.whisper_group.is_none()));
        assert_eq!(
            c.apply(
                Actor::Member(chair),
                Command::OpenWhisper { members: vec![] }
            ),
            Err(Refused::EmptyGroup)
        );
        assert!(
            c.apply(Actor::Member(a), Command::OpenWhisper { members: vec![b] })
                .is_err()
        );
    }

    #[test]
    fn removal_leaving_and_the_end() {
        let (mut c, chair, a, b) = meeting();
        c.apply(
            Actor::Member(chair),
            Command::OpenWhisper { members: vec![a] },
        )
        .unwrap();
        assert_eq!(
            c.apply(Actor::Member(chair), Command::Kick { target: a })
                .unwrap(),
            vec![Event::Removed { member: a }]
        );
        assert_eq!(c.group(1), Some(&[][..]));
        assert_eq!(
            c.apply(Actor::Member(a), Command::MuteSelf),
            Err(Refused::NoSuchMember(a))
        );
        c.apply(Actor::Operator(Role::Owner), Command::Leave { member: b })
            .unwrap();
        assert!(c.apply(Actor::Member(b), Command::End).is_err());
        assert_eq!(
            c.apply(Actor::Operator(Role::Manager), Command::End)
                .unwrap(),
            vec![Event::Ended]
        );
        assert!(c.has_ended());
        assert_eq!(
            c.apply(Actor::Member(chair), Command::MuteSelf),
            Err(Refused::Ended)
        );
    }

    #[test]
    fn a_muted_member_stops_talking() {
        let (mut c, chair, a, _) = meeting();
        c.apply(Actor::Member(a), Command::UnmuteSelf).unwrap();
        assert_eq!(
            c.set_talking(a, true),
            Some(Event::Talking {
                member: a,
                talking: true
            })
        );
        let events = c
            .apply(Actor::Member(chair), Command::Mute { target: a })
            .unwrap();
        assert_eq!(
            events,
            vec![
                Event::Talking {
                    member: a,
                    talking: false
                },
                Event::Muted { member: a }
            ]
        );
        assert!(!c.member(a).unwrap().talking);
    }

    #[test]
    fn operators_cannot_use_member_only_commands() {
        let (mut c, ..) = meeting();
        assert_eq!(
            c.apply(Actor::Operator(Role::Owner), Command::UnmuteSelf),
            Err(Refused::NotAMember)
        );
    }
}
