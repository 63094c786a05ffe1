//! Live meetings: one actor task per room with people in it. It owns the meeting's state
//! (`conference::live::Conference`), applies every command — from the API, and later the
//! WebSocket and keypad — through the one permission check, and turns the resulting events
//! into effects: mute in the mixer, hang up a removed caller, end everyone's call.

use crate::history;
use crate::media::{self, MediaHandle};
use crate::prompts::{self, Prompt, Sound};
use conclave_conference::Role;
use conclave_conference::keypad::Keypad;
use conclave_conference::live::{
    Actor, Command, Conference, Event, JoinedVia, Member, MemberId, Refused, Settings,
};
use conclave_store::model::Meeting;
use conclave_store::model::Room;
use conclave_store::{Store, new_id, now_ms};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

/// Acts on calls (implemented by the SIP task).
pub trait CallControl: Send + Sync {
    fn hang_up(&self, call: u64);
    /// A call in the access number's menu goes into the room the caller chose.
    fn enter_room(&self, call: u64, room: Room);
}

/// A live meeting as the roster shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveConference {
    pub room_id: String,
    pub room_number: String,
    pub room_name: String,
    pub locked: bool,
    pub members: Vec<RosterEntry>,
    /// Everyone the meeting called, and how each call went.
    pub invitations: Vec<Invitation>,
}

/// How a call to an invitee stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Calling,
    Ringing,
    Joined,
    Busy,
    NoAnswer,
    Rejected,
    Failed,
    /// Joined, then hung up.
    Left,
    /// Joined, then removed by a chair.
    Removed,
}

impl CallState {
    /// Not in the meeting and not being called: `redialMissing` calls them again.
    pub fn missing(self) -> bool {
        matches!(
            self,
            CallState::Busy
                | CallState::NoAnswer
                | CallState::Rejected
                | CallState::Failed
                | CallState::Left
        )
    }
}

/// Someone the meeting called (one-click start, invitation, redial).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: u32,
    pub name: String,
    pub number: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub state: CallState,
    /// Why the call failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The call in progress or the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<u64>,
    /// How to call them again; `None` when they cannot be reached.
    #[serde(skip)]
    pub callee: Option<crate::sip::Callee>,
}

/// A change of an invitee's call, as the WebSocket and webhooks carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallProgress {
    /// Always `call`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub invitation: Invitation,
}

/// What a live event is about: the meeting, or a call the meeting placed.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum LiveChange {
    Meeting(Event),
    Call(CallProgress),
}

/// One member in the roster: their state in the meeting and how their media is doing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RosterEntry {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub member: Member,
    /// Codec, packets, loss, jitter, round trip (absent before media flows).
    pub quality: Option<media::Quality>,
}

/// What the WebSocket and (later) webhooks carry: a meeting event, where and by whom.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveEvent {
    #[serde(skip)]
    pub tenant_id: String,
    pub room_id: String,
    pub room_number: String,
    /// Who acted (an operator, a member on the keypad, or `system`).
    pub actor: String,
    pub at: i64,
    /// A meeting event (`type`: joined, muted, …) or a call's progress (`type`: call).
    #[schema(value_type = Object)]
    pub event: LiveChange,
}

/// Someone arriving in a room's meeting.
#[derive(Debug, Clone)]
pub struct Newcomer {
    /// The call that brings them (the mixer knows them by it).
    pub call: u64,
    pub name: String,
    pub number: String,
    /// Their role: from the template that called them, else participant.
    pub role: Role,
    pub via: JoinedVia,
    /// They must key in the room's PIN first; wrong PINs are counted for this address.
    pub pin_from: Option<IpAddr>,
}

enum Msg {
    Noticed {
        call: u64,
        noticed: media::Noticed,
    },
    Joined {
        who: Newcomer,
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    Left {
        call: u64,
    },
    /// A call placed to an invitee; the meeting waits for its answer.
    Awaiting {
        call: u64,
        invitation: Option<u32>,
    },
    /// An invitee's call rings.
    Ringing {
        call: u64,
    },
    /// An invitee's call ended before they joined.
    GaveUp {
        call: u64,
        state: CallState,
    },
    /// Someone to call: the meeting lists them and answers their invitation's id.
    Invite {
        invitation: Box<Invitation>,
        reply: oneshot::Sender<u32>,
    },
    /// Calling an invitee failed before any call was placed (or is being placed again).
    InviteState {
        invitation: u32,
        state: CallState,
        reason: Option<String>,
    },
    /// Every invitation of a one-click start has been placed.
    Dispatched,
    Apply {
        actor: Actor,
        command: Command,
        /// Who asked, for the meeting's log.
        by: String,
        reply: oneshot::Sender<Result<(), Refused>>,
    },
    Snapshot {
        reply: oneshot::Sender<LiveConference>,
    },
}

#[derive(Clone)]
struct Entry {
    tenant_id: String,
    /// The room as the meeting began in it (it may be deleted meanwhile).
    room: Box<Room>,
    inbox: mpsc::UnboundedSender<Msg>,
}

/// Every live meeting of this node; cheap to clone.
#[derive(Clone)]
pub struct Conferences {
    rooms: Arc<Mutex<HashMap<String, Entry>>>,
    /// Every meeting event, for live subscribers (the console's WebSocket).
    events: tokio::sync::broadcast::Sender<LiveEvent>,
    store: Store,
    /// Which room each call is in (the mixer knows members by call).
    calls_in: Arc<Mutex<HashMap<u64, String>>>,
    /// Wrong PINs per source address: (count, last), for blocking brute force.
    pin_failures: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
    media: MediaHandle,
    calls: Arc<OnceLock<Arc<dyn CallControl>>>,
    /// Calls in the access number's menu: where their keys go.
    menus: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<char>>>>,
}

impl Conferences {
    pub fn new(media: MediaHandle, store: Store) -> Self {
        Conferences {
            rooms: Arc::default(),
            events: tokio::sync::broadcast::channel(1024).0,
            store,
            calls_in: Arc::default(),
            pin_failures: Arc::default(),
            media,
            calls: Arc::default(),
            menus: Arc::default(),
        }
    }

    /// A call enters the access number's menu: its keys come out of the receiver.
    pub fn open_menu(&self, call: u64) -> mpsc::UnboundedReceiver<char> {
        let (keys, receiver) = mpsc::unbounded_channel();
        self.menus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(call, keys);
        receiver
    }

    pub fn close_menu(&self, call: u64) {
        self.menus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&call);
    }

    /// Is this address blocked after too many wrong PINs?
    pub fn pin_blocked(&self, ip: IpAddr) -> bool {
        let failures = self.pin_failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&ip)
            .is_some_and(|(count, last)| *count >= MAX_PIN_FAILURES && last.elapsed() < PIN_BLOCK)
    }

    /// Counts a wrong PIN from this address.
    pub fn pin_failed(&self, ip: IpAddr) {
        let mut failures = self.pin_failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, (_, last)| last.elapsed() < PIN_BLOCK);
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    pub fn pin_succeeded(&self, ip: IpAddr) {
        self.pin_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }

    /// Routes what the mixer noticed to the member's meeting.
    pub async fn route_notices(self, mut notices: mpsc::UnboundedReceiver<(u64, media::Noticed)>) {
        while let Some((call, noticed)) = notices.recv().await {
            self.notice(call, noticed);
        }
    }

    /// Tells a call's meeting what was noticed about it (by the mixer, or a keypad digit that
    /// came in SIP INFO).
    pub fn notice(&self, call: u64, noticed: media::Noticed) {
        if let media::Noticed::Digit(key) = noticed
            && let Some(menu) = self
                .menus
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&call)
        {
            let _ = menu.send(key);
            return;
        }
        let room = self
            .calls_in
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&call)
            .cloned();
        if let Some(entry) = room.and_then(|room| self.entry(&room)) {
            let _ = entry.inbox.send(Msg::Noticed { call, noticed });
        }
    }

    /// Who hangs up calls: set once the SIP side is running.
    pub fn set_call_control(&self, calls: Arc<dyn CallControl>) {
        let _ = self.calls.set(calls);
    }

    fn entry(&self, room_id: &str) -> Option<Entry> {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room_id)
            .cloned()
    }

    /// The room of a live meeting, even when it has been deleted since.
    pub fn live_room(&self, room_id: &str) -> Option<Room> {
        self.entry(room_id).map(|e| *e.room)
    }

    /// Meeting events as they happen (subscribers that fall behind miss some, and are told).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    fn publish(&self, room: &Room, actor: &str, event: LiveChange) {
        // Nobody listening is fine.
        let _ = self.events.send(LiveEvent {
            tenant_id: room.tenant_id.clone(),
            room_id: room.id.clone(),
            room_number: room.number.clone(),
            actor: actor.to_owned(),
            at: now_ms(),
            event,
        });
    }

    /// Starts a room's meeting with these settings (one click, from a template); refused when
    /// one is already live.
    pub fn start(
        &self,
        room: &Room,
        settings: Settings,
        template_id: Option<String>,
    ) -> Result<(), Refused> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if rooms.contains_key(&room.id) {
            return Err(Refused::AlreadyLive);
        }
        rooms.insert(
            room.id.clone(),
            self.spawn(room, settings, true, template_id),
        );
        Ok(())
    }

    /// A one-click start has placed all its calls: from now on the meeting ends when empty.
    pub fn dispatched(&self, room_id: &str) {
        if let Some(entry) = self.entry(room_id) {
            let _ = entry.inbox.send(Msg::Dispatched);
        }
    }

    /// The meeting waits for this call's answer (or for it to fail); `invitation` is whom
    /// it calls.
    pub fn awaiting(&self, room_id: &str, call: u64, invitation: Option<u32>) {
        if let Some(entry) = self.entry(room_id) {
            let _ = entry.inbox.send(Msg::Awaiting { call, invitation });
        }
    }

    /// An invitee's phone rings.
    pub fn ringing(&self, room_id: &str, call: u64) {
        if let Some(entry) = self.entry(room_id) {
            let _ = entry.inbox.send(Msg::Ringing { call });
        }
    }

    /// An invitee's call ended before they joined (busy, no answer…).
    pub fn gave_up(&self, room_id: &str, call: u64, state: CallState) {
        if let Some(entry) = self.entry(room_id) {
            let _ = entry.inbox.send(Msg::GaveUp { call, state });
        }
    }

    /// Lists someone the meeting calls; their invitation's id (`None`: no live meeting).
    pub async fn invite(
        &self,
        room_id: &str,
        name: String,
        number: String,
        role: Role,
        callee: Option<crate::sip::Callee>,
    ) -> Option<u32> {
        let entry = self.entry(room_id)?;
        let invitation = Box::new(Invitation {
            id: 0,
            name,
            number,
            role,
            state: CallState::Calling,
            reason: None,
            call_id: None,
            callee,
        });
        let (reply, answer) = oneshot::channel();
        entry.inbox.send(Msg::Invite { invitation, reply }).ok()?;
        answer.await.ok()
    }

    /// Sets an invitation's state from outside a call: failed before dialling, or calling again.
    pub fn invite_state(
        &self,
        room_id: &str,
        invitation: u32,
        state: CallState,
        reason: Option<String>,
    ) {
        if let Some(entry) = self.entry(room_id) {
            let _ = entry.inbox.send(Msg::InviteState {
                invitation,
                state,
                reason,
            });
        }
    }

    /// A caller joins the room's meeting (starting it when it is the first).
    pub async fn join(&self, room: &Room, who: Newcomer) -> Result<(), Refused> {
        let entry = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms
                .entry(room.id.clone())
                .or_insert_with(|| self.spawn(room, Settings::default(), false, None))
                .clone()
        };
        let call = who.call;
        let (reply, answer) = oneshot::channel();
        entry
            .inbox
            .send(Msg::Joined { who, reply })
            .map_err(|_| Refused::Ended)?;
        let joined = answer.await.unwrap_or(Err(Refused::Ended));
        if joined.is_ok() {
            self.calls_in
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(call, room.id.clone());
        }
        joined
    }

    pub fn left(&self, room_id: &str, call: u64) {
        self.calls_in
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&call);
        if let Some(entry) = self.entry(room_id) {
            let _ = entry.inbox.send(Msg::Left { call });
        }
    }

    /// Applies a command to a live meeting; `None` when the room has no live meeting.
    pub async fn apply(
        &self,
        room_id: &str,
        actor: Actor,
        command: Command,
        by: &str,
    ) -> Option<Result<(), Refused>> {
        let entry = self.entry(room_id)?;
        let (reply, answer) = oneshot::channel();
        entry
            .inbox
            .send(Msg::Apply {
                actor,
                command,
                by: by.to_owned(),
                reply,
            })
            .ok()?;
        answer.await.ok()
    }

    pub async fn snapshot(&self, room_id: &str) -> Option<LiveConference> {
        let entry = self.entry(room_id)?;
        let (reply, answer) = oneshot::channel();
        entry.inbox.send(Msg::Snapshot { reply }).ok()?;
        answer.await.ok()
    }

    /// The live meetings of a tenant.
    pub async fn list(&self, tenant_id: &str) -> Vec<LiveConference> {
        let ids: Vec<String> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms
                .iter()
                .filter(|(_, e)| e.tenant_id == tenant_id)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(snapshot) = self.snapshot(&id).await {
                out.push(snapshot);
            }
        }
        out.sort_by(|a, b| a.room_number.cmp(&b.room_number));
        out
    }

    fn spawn(
        &self,
        room: &Room,
        settings: Settings,
        dispatching: bool,
        template_id: Option<String>,
    ) -> Entry {
        let (inbox, messages) = mpsc::unbounded_channel();
        let meeting = Meeting {
            id: new_id(),
            tenant_id: room.tenant_id.clone(),
            room_id: Some(room.id.clone()),
            room_number: room.number.clone(),
            room_name: room.name.clone(),
            started_at: now_ms(),
            ended_at: None,
            template_id,
        };
        let (recorder, records) = mpsc::unbounded_channel();
        tokio::spawn(history::write(
            self.store.clone(),
            meeting.id.clone(),
            records,
        ));
        let _ = recorder.send(history::Record::Started(meeting));
        let actor = RoomActor {
            recorder,
            acting_for: SYSTEM.into(),
            room: room.clone(),
            state: Conference::new(Settings {
                capacity: usize::try_from(room.capacity).unwrap_or(100),
                ..settings
            }),
            awaiting: HashSet::new(),
            invitations: Vec::new(),
            speaking: HashSet::new(),
            music_for: None,
            leaving: HashSet::new(),
            timers: Timers::for_room(room, Instant::now()),
            dispatching,
            calls: HashMap::new(),
            members: HashMap::new(),
            keypads: HashMap::new(),
            lobby: HashMap::new(),
            owner: self.clone(),
        };
        tokio::spawn(actor.run(messages));
        Entry {
            tenant_id: room.tenant_id.clone(),
            room: Box::new(room.clone()),
            inbox,
        }
    }

    fn finished(&self, room_id: &str) {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(room_id);
    }
}

/// The log's name for what the server does on its own.
const SYSTEM: &str = "system";

struct RoomActor {
    room: Room,
    /// Writes the meeting's record, in order, off the actor.
    recorder: mpsc::UnboundedSender<history::Record>,
    /// Who the message being handled acts for (the log's `actor`).
    acting_for: String,
    state: Conference,
    /// Meeting member → call (the mixer knows members by call id).
    calls: HashMap<MemberId, u64>,
    members: HashMap<u64, MemberId>,
    keypads: HashMap<MemberId, Keypad>,
    /// Callers keying in the PIN.
    lobby: HashMap<u64, Lobby>,
    /// Calls placed to invitees who have not answered yet: the meeting waits for them.
    awaiting: HashSet<u64>,
    /// Everyone the meeting called; an invitation's id is its index.
    invitations: Vec<Invitation>,
    /// Calls hearing a prompt right now (music waits for it to end).
    speaking: HashSet<u64>,
    /// The member alone in the meeting, hearing music.
    music_for: Option<u64>,
    /// Calls refused with a prompt, hung up when it has been said.
    leaving: HashSet<u64>,
    /// The room's maximum duration: when to warn, when to end.
    timers: Timers,
    /// A one-click start is still placing its calls: the empty meeting must not end yet.
    dispatching: bool,
    owner: Conferences,
}

/// A room's maximum duration: a warning before the end, then the end (after a goodbye).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Timers {
    warn_at: Option<Instant>,
    end_at: Option<Instant>,
    /// The goodbye has been said: the next deadline ends the meeting.
    closing: bool,
}

/// How long the goodbye takes before the calls end.
const GOODBYE: Duration = Duration::from_secs(4);

impl Timers {
    /// Warns five minutes before the end (half-way for meetings of ten minutes or less).
    fn for_room(room: &Room, started: Instant) -> Timers {
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

    fn next(&self) -> Option<Instant> {
        self.warn_at.or(self.end_at)
    }
}

/// A caller who has not yet keyed in the room's PIN.
struct Lobby {
    who: Newcomer,
    ip: IpAddr,
    digits: String,
    tries: u8,
}

/// Wrong PINs before the call is ended.
const MAX_PIN_TRIES: u8 = 3;
/// Wrong PINs from one address before it is blocked for a while (across calls).
const MAX_PIN_FAILURES: u32 = 10;
const PIN_BLOCK: Duration = Duration::from_secs(600);

impl RoomActor {
    async fn run(mut self, mut messages: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let msg = match self.timers.next() {
                Some(at) => tokio::select! {
                    msg = messages.recv() => msg,
                    _ = tokio::time::sleep_until(at.into()) => {
                        self.timer_fired();
                        if self.state.has_ended() {
                            break;
                        }
                        continue;
                    }
                },
                None => messages.recv().await,
            };
            let Some(msg) = msg else { break };
            match msg {
                Msg::Noticed { call, noticed } => self.noticed(call, noticed),
                Msg::Awaiting { call, invitation } => {
                    self.awaiting.insert(call);
                    if let Some(i) = invitation.and_then(|id| self.invitations.get_mut(id as usize))
                    {
                        i.call_id = Some(call);
                    }
                    self.call_state(call, CallState::Calling, None);
                }
                Msg::Ringing { call } => self.call_state(call, CallState::Ringing, None),
                Msg::GaveUp { call, state } => {
                    self.awaiting.remove(&call);
                    self.call_state(call, state, None);
                }
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
                Msg::Joined { who, reply } => {
                    let call = who.call;
                    let arrived = match self.arrive(who) {
                        Err(reason @ (Refused::Locked | Refused::Full(_))) => {
                            self.refuse(call, &reason);
                            Ok(())
                        }
                        other => other,
                    };
                    let _ = reply.send(arrived);
                }
                Msg::Left { call } => {
                    self.lobby.remove(&call);
                    self.leaving.remove(&call);
                    self.speaking.remove(&call);
                    self.call_state(call, CallState::Left, None);
                    if let Some(member) = self.members.remove(&call) {
                        self.calls.remove(&member);
                        let events = self
                            .state
                            .apply(Actor::Operator(Role::Owner), Command::Leave { member });
                        self.effects(events.unwrap_or_default());
                    }
                }
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
                    let snapshot = self.snapshot().await;
                    let _ = reply.send(snapshot);
                }
            }
            self.acting_for = SYSTEM.into();
            self.music();
            let nobody = self.members.is_empty()
                && self.lobby.is_empty()
                && self.awaiting.is_empty()
                && !self.dispatching;
            if self.state.has_ended() || nobody {
                break;
            }
        }
        // Ended or empty: the room's meeting is over.
        let _ = self.recorder.send(history::Record::Ended { at: now_ms() });
        if self.room.release_when_empty {
            // A room made from the keypad served this one meeting.
            let (store, room) = (self.owner.store.clone(), self.room.clone());
            tokio::spawn(async move {
                let released = match store.conn().await {
                    Ok(mut conn) => conclave_store::repo::rooms::delete(&mut conn, &room.id).await,
                    Err(err) => Err(err),
                };
                match released {
                    Ok(_) => tracing::info!(room = room.number, "keypad room released"),
                    Err(err) => {
                        tracing::warn!(%err, room = room.number, "cannot release a keypad room")
                    }
                }
            });
        }
        self.owner.finished(&self.room.id);
        let calls: Vec<u64> = self
            .members
            .keys()
            .chain(self.lobby.keys())
            .chain(self.leaving.iter())
            .copied()
            .collect();
        if let Some(control) = self.owner.calls.get() {
            for call in calls {
                control.hang_up(call);
            }
        }
    }

    /// The roster, with each member's media quality from the mixer.
    async fn snapshot(&self) -> LiveConference {
        let (reply, answer) = oneshot::channel();
        let calls = self.calls.values().copied().collect();
        self.owner.media.send(media::Command::Quality {
            members: calls,
            reply,
        });
        let quality: HashMap<u64, media::Quality> =
            answer.await.unwrap_or_default().into_iter().collect();
        LiveConference {
            room_id: self.room.id.clone(),
            room_number: self.room.number.clone(),
            room_name: self.room.name.clone(),
            locked: self.state.is_locked(),
            invitations: self.invitations.clone(),
            members: self
                .state
                .members()
                .map(|m| RosterEntry {
                    member: m.clone(),
                    quality: self
                        .calls
                        .get(&m.id)
                        .and_then(|call| quality.get(call).cloned()),
                })
                .collect(),
        }
    }

    /// A caller becomes a member of the meeting.
    /// Someone arrives: into the lobby when the room wants a PIN, else into the meeting.
    fn arrive(&mut self, who: Newcomer) -> Result<(), Refused> {
        let Some(ip) = who.pin_from else {
            return self.enter(who);
        };
        let call = who.call;
        // In the lobby: neither heard nor hearing (but for the prompts) until the PIN is right.
        self.owner.media.send(media::Command::SetMuted {
            member: call,
            muted: true,
        });
        self.owner.media.send(media::Command::SetDeaf {
            member: call,
            deaf: true,
        });
        self.prompt(call, Prompt::EnterPin);
        self.lobby.insert(
            call,
            Lobby {
                who,
                ip,
                digits: String::new(),
                tries: 0,
            },
        );
        Ok(())
    }

    /// A caller becomes a member of the meeting.
    fn enter(&mut self, who: Newcomer) -> Result<(), Refused> {
        let call = who.call;
        let join = Command::Join {
            name: who.name,
            number: who.number,
            role: who.role,
            via: who.via,
        };
        let events = self.state.apply(Actor::Operator(Role::Owner), join)?;
        self.awaiting.remove(&call);
        self.call_state(call, CallState::Joined, None);
        for event in &events {
            if let Event::Joined { member } = event {
                self.calls.insert(member.id, call);
                self.members.insert(call, member.id);
            }
        }
        self.effects(events);
        Ok(())
    }

    /// A digit from a caller in the lobby: `#` ends the PIN, `*` starts over; three wrong PINs
    /// end the call.
    fn pin_digit(&mut self, call: u64, digit: char) {
        let pin = self.room.pin.clone().unwrap_or_default();
        let Some(lobby) = self.lobby.get_mut(&call) else {
            return;
        };
        match digit {
            '*' => {
                lobby.digits.clear();
                return;
            }
            '#' => {}
            d if lobby.digits.len() < 16 => lobby.digits.push(d),
            _ => {}
        }
        let complete = digit == '#' || lobby.digits.len() == pin.len();
        if !complete {
            return;
        }
        if lobby.digits == pin {
            let Some(lobby) = self.lobby.remove(&call) else {
                return;
            };
            self.owner.pin_succeeded(lobby.ip);
            let first = self.members.is_empty();
            self.prompt(
                call,
                if first {
                    Prompt::First
                } else {
                    Prompt::Welcome
                },
            );
            self.owner.media.send(media::Command::SetDeaf {
                member: call,
                deaf: false,
            });
            self.owner.media.send(media::Command::SetMuted {
                member: call,
                muted: false,
            });
            match self.enter(lobby.who) {
                Err(reason @ (Refused::Locked | Refused::Full(_))) => self.refuse(call, &reason),
                Err(reason) => {
                    tracing::info!(%reason, room = self.room.number, "PIN right, but the meeting refused the caller");
                    self.hang_up(call);
                }
                Ok(()) => {}
            }
            return;
        }
        lobby.digits.clear();
        lobby.tries += 1;
        let (ip, tries) = (lobby.ip, lobby.tries);
        self.owner.pin_failed(ip);
        tracing::info!(room = self.room.number, %ip, tries, "wrong PIN");
        if tries < MAX_PIN_TRIES {
            self.prompt(call, Prompt::WrongPin);
        } else {
            self.lobby.remove(&call);
            self.hang_up(call);
        }
    }

    /// Speaks a prompt, in the room's language, to one caller.
    fn prompt(&mut self, call: u64, prompt: Prompt) {
        self.say(call, &[prompt]);
    }

    /// Speaks prompts one after the other to one caller (it stops their music, if any; the
    /// music comes back when they have been said).
    fn say(&mut self, call: u64, said: &[Prompt]) {
        let samples = prompts::sequence(self.room.language, said);
        self.owner.media.send(media::Command::Play {
            member: call,
            samples,
            rate: prompts::RATE,
            looped: false,
        });
        self.speaking.insert(call);
        if self.music_for == Some(call) {
            self.music_for = None;
        }
    }

    /// A sound everyone in the meeting hears.
    fn chime(&self, sound: Sound) {
        if !self.room.entry_chime {
            return;
        }
        self.owner.media.send(media::Command::PlayToRoom {
            room: self.room.id.clone(),
            samples: prompts::sound(sound),
            rate: prompts::RATE,
        });
    }

    /// Music for whoever is alone in the meeting (once their prompts are said), silence
    /// when a second one arrives.
    fn music(&mut self) {
        let alone = match (self.members.len(), self.members.keys().next()) {
            (1, Some(call)) if self.room.alone_music => Some(*call),
            _ => None,
        };
        if let Some(call) = self.music_for.filter(|c| Some(*c) != alone) {
            self.owner
                .media
                .send(media::Command::StopPlay { member: call });
            self.music_for = None;
        }
        if let Some(call) = alone.filter(|c| !self.speaking.contains(c))
            && self.music_for != Some(call)
        {
            self.owner.media.send(media::Command::Play {
                member: call,
                samples: prompts::sound(Sound::Alone),
                rate: prompts::RATE,
                looped: true,
            });
            self.music_for = Some(call);
        }
    }

    /// Turns a caller away with a prompt (the meeting is locked or full), then hangs up.
    fn refuse(&mut self, call: u64, reason: &Refused) {
        tracing::info!(%reason, room = self.room.number, "a caller is turned away");
        self.owner.media.send(media::Command::SetMuted {
            member: call,
            muted: true,
        });
        self.owner.media.send(media::Command::SetDeaf {
            member: call,
            deaf: true,
        });
        let prompt = if matches!(reason, Refused::Locked) {
            Prompt::RoomLocked
        } else {
            Prompt::RoomFull
        };
        self.prompt(call, prompt);
        self.leaving.insert(call);
        let said =
            prompts::pcm(self.room.language, prompt).len() as u64 * 1000 / u64::from(prompts::RATE);
        let control = self.owner.calls.get().cloned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(said + 500)).await;
            if let Some(control) = control {
                control.hang_up(call);
            }
        });
    }

    /// The room's maximum duration: warn everyone, then say goodbye, then end.
    fn timer_fired(&mut self) {
        let now = Instant::now();
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
            if let Ok(events) = self.state.apply(Actor::Operator(Role::Owner), Command::End) {
                self.effects(events);
            }
        }
    }

    /// A prompt everyone in the meeting hears.
    fn announce(&self, prompt: Prompt) {
        self.owner.media.send(media::Command::PlayToRoom {
            room: self.room.id.clone(),
            samples: prompts::pcm(self.room.language, prompt),
            rate: prompts::RATE,
        });
    }

    fn hang_up(&self, call: u64) {
        if let Some(control) = self.owner.calls.get() {
            control.hang_up(call);
        }
    }

    /// Voice activity updates the roster; keypad digits become the member's own commands.
    fn noticed(&mut self, call: u64, noticed: media::Noticed) {
        if noticed == media::Noticed::PlaybackDone {
            self.speaking.remove(&call);
            return;
        }
        if let (true, media::Noticed::Digit(digit)) = (self.lobby.contains_key(&call), noticed) {
            self.pin_digit(call, digit);
            return;
        }
        let Some(&member) = self.members.get(&call) else {
            return;
        };
        match noticed {
            media::Noticed::PlaybackDone => {}
            media::Noticed::Talking(talking) => {
                self.state.set_talking(member, talking);
            }
            media::Noticed::Digit(digit) => {
                let Some(m) = self.state.member(member).cloned() else {
                    return;
                };
                self.acting_for = format!("{} (keypad)", m.name);
                let locked = self.state.is_locked();
                let command = self
                    .keypads
                    .entry(member)
                    .or_default()
                    .digit(digit, &m, locked);
                if let Some(command) = command {
                    match self.state.apply(Actor::Member(member), command) {
                        Ok(events) => self.effects(events),
                        Err(reason) => {
                            tracing::info!(%reason, room = self.room.number, "keypad command refused")
                        }
                    }
                }
            }
        }
    }

    /// Makes the events happen outside the meeting's state, and logs them.
    fn effects(&mut self, events: Vec<Event>) {
        for event in events {
            let _ = self
                .recorder
                .send(history::Record::event(&self.acting_for, &event));
            self.owner.publish(
                &self.room,
                &self.acting_for,
                LiveChange::Meeting(event.clone()),
            );
            match event {
                Event::Joined { member } => {
                    if self.members.len() > 1 {
                        self.chime(Sound::Join);
                    }
                    if member.muted {
                        self.mute(member.id, true);
                    }
                }
                Event::Left { .. } if !self.members.is_empty() => self.chime(Sound::Leave),
                Event::Counted { member, count } => {
                    if let Some(&call) = self.calls.get(&member) {
                        let mut said = vec![Prompt::Count];
                        said.extend(prompts::number(count));
                        self.say(call, &said);
                    }
                }
                Event::Muted { member } => self.mute(member, true),
                Event::Unmuted { member } => self.mute(member, false),
                Event::WhisperMoved { member, group } => {
                    if let Some(call) = self.calls.get(&member) {
                        self.owner.media.send(media::Command::SetGroup {
                            member: *call,
                            group,
                        });
                    }
                }
                Event::Removed { member } => {
                    self.chime(Sound::Leave);
                    if let Some(call) = self.calls.remove(&member) {
                        self.call_state(call, CallState::Removed, None);
                        self.members.remove(&call);
                        if let Some(control) = self.owner.calls.get() {
                            control.hang_up(call);
                        }
                    }
                }
                other => tracing::debug!(room = self.room.number, ?other, "meeting event"),
            }
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
            self.owner
                .publish(&self.room, SYSTEM, LiveChange::Call(progress));
        }
    }

    /// Mutes or unmutes in the mixer, and tells the member so.
    fn mute(&mut self, member: MemberId, muted: bool) {
        if let Some(call) = self.calls.get(&member) {
            self.owner.media.send(media::Command::SetMuted {
                member: *call,
                muted,
            });
            self.prompt(
                *call,
                if muted {
                    Prompt::Muted
                } else {
                    Prompt::Unmuted
                },
            );
        }
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
