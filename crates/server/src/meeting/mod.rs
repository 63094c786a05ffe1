//! Live meetings. Each room with people in it has one meeting actor ([`actor`]) that owns its
//! participants: signalling hands it legs ([`leg`]), it decides admission (the PIN
//! [`lobby`], turned away, admitted with a role) and is the only one that adds, changes or
//! removes their media. The access number's menu ([`access`]) is a small owner of the same
//! kind. [`Meetings`] is the registry: which room has a live meeting, and the way in.

pub mod access;
mod actor;
pub mod leg;
pub mod lobby;
pub mod types;

pub use actor::SYSTEM;

pub use leg::{
    EndCause, Leg, LegControl, LegEvent, LegId, LegKind, LegSignals, MemberSpec, Outlet, Party,
    WaitingRoom, WaitingTicket,
};
pub use types::{
    CallProgress, CallState, DirectCall, DirectCallState, Invitation, LiveChange, LiveConference,
    LiveEvent, Quality, RosterEntry,
};

use crate::history;
use crate::media::{MediaEvent, MediaPlane};
use conclave_conference::Role;
use conclave_conference::live::{Actor, Command, JoinedVia, Refused, Settings};
use conclave_store::model::{Language, Meeting as MeetingRecord, Room};
use conclave_store::{Store, new_id, now_ms};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// Messages a meeting's inbox holds before senders are refused (a stuck meeting must not
/// grow without bound).
const INBOX: usize = 1024;
/// History records a meeting may have waiting for the database.
const HISTORY_QUEUE: usize = 4096;

/// The rooms of direct calls (a registered phone calling another's extension) have ids with
/// this prefix: made up for the call, never stored, gone when it ends.
pub const DIRECT_CALL_ROOM: &str = "call-";

/// Direct calls one person may be in at once (calling or called).
pub const MAX_CALLS_PER_PERSON: usize = 4;

/// What a meeting actor is told.
pub(crate) enum Msg {
    /// A leg for this meeting: a call into the room, one it placed, one from the menu.
    Arrive(Box<Leg>),
    /// Signalling about one of its legs.
    Leg(LegId, LegEvent),
    /// What the media plane noticed about one of its legs.
    Media(MediaEvent),
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
    /// The composed picture as a JPEG (docs/video.md).
    Picture { reply: oneshot::Sender<Vec<u8>> },
    /// The server stops: end the meeting, hang everyone up, close the record, then answer.
    Shutdown { done: oneshot::Sender<()> },
}

#[derive(Clone)]
struct Entry {
    tenant_id: String,
    /// The room as the meeting began in it (it may be deleted meanwhile).
    room: Box<Room>,
    inbox: mpsc::Sender<Msg>,
    generation: u64,
    /// Its record in the history.
    meeting_id: String,
    /// This node's cascade of a room homed on another (docs/cluster.md).
    cascade: bool,
    /// A direct call's two users (caller, callee).
    call_between: Option<(String, String)>,
}

/// How meetings treat their participants.
#[derive(Debug, Clone)]
pub struct MeetingSettings {
    /// A participant that sends nothing this long is hung up…
    pub media_timeout: Duration,
    /// …or this long while it holds the call.
    pub hold_timeout: Duration,
    /// Silence before the PIN prompt is said again (twice; then goodbye).
    pub pin_timeout: Duration,
    /// Callers keying in a PIN or in the access menu: per address, and in all.
    pub waiting_per_address: usize,
    pub waiting_total: usize,
    /// The access number's menu language.
    pub access_language: Language,
}

impl Default for MeetingSettings {
    fn default() -> Self {
        MeetingSettings {
            media_timeout: Duration::from_secs(30),
            hold_timeout: Duration::from_secs(1800),
            pin_timeout: lobby::REPROMPT_AFTER,
            waiting_per_address: 10,
            waiting_total: 500,
            access_language: Language::English,
        }
    }
}

struct Shared {
    rooms: Mutex<HashMap<String, Entry>>,
    /// Every meeting event, for live subscribers (the console's WebSocket, webhooks).
    events: tokio::sync::broadcast::Sender<LiveEvent>,
    /// Every meeting event but voice activity, for the webhooks' queue: its one consumer
    /// writes events to the database in batches, and never skips one (a full queue is
    /// counted and logged).
    webhooks: std::sync::OnceLock<tokio::sync::mpsc::Sender<LiveEvent>>,
    /// Where meetings are recorded (set once at start).
    recordings: std::sync::OnceLock<crate::recording::Recordings>,
    /// Live streams (served from memory by `api::watch`).
    streams: crate::streaming::Streams,
    /// The recordings' minutes (set once at start).
    minutes: std::sync::OnceLock<crate::minutes::Minutes>,
    /// The cluster this node is one of (set once at start; none on a single node).
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
    store: Store,
    media: MediaPlane,
    /// Room PINs: failures per room and per address (the one limiter type).
    pins: Arc<crate::limiter::Limiter>,
    waiting: WaitingRoom,
    settings: MeetingSettings,
    generation: AtomicU64,
}

/// Every live meeting of this node; cheap to clone.
#[derive(Clone)]
pub struct Meetings {
    shared: Arc<Shared>,
}

impl Meetings {
    pub fn new(media: MediaPlane, store: Store, settings: MeetingSettings) -> Self {
        Meetings {
            shared: Arc::new(Shared {
                rooms: Mutex::default(),
                events: tokio::sync::broadcast::channel(4096).0,
                webhooks: std::sync::OnceLock::new(),
                recordings: std::sync::OnceLock::new(),
                streams: crate::streaming::Streams::new(store.clone()),
                minutes: std::sync::OnceLock::new(),
                cluster: std::sync::OnceLock::new(),
                store,
                media,
                pins: crate::limiter::Limiter::new(
                    "room_pin",
                    crate::limiter::LimiterConfig::room_pin(),
                ),
                waiting: WaitingRoom::new(settings.waiting_per_address, settings.waiting_total),
                settings,
                generation: AtomicU64::new(1),
            }),
        }
    }

    pub fn media(&self) -> &MediaPlane {
        &self.shared.media
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Sets where meetings are recorded (once, at start).
    pub fn set_recordings(&self, recordings: crate::recording::Recordings) {
        let _ = self.shared.recordings.set(recordings);
    }

    pub fn recordings(&self) -> Option<&crate::recording::Recordings> {
        self.shared.recordings.get()
    }

    /// Sets the minutes' service (once, at start).
    pub fn set_minutes(&self, minutes: crate::minutes::Minutes) {
        let _ = self.shared.minutes.set(minutes);
    }

    pub fn minutes(&self) -> Option<&crate::minutes::Minutes> {
        self.shared.minutes.get()
    }

    /// Sets the cluster (once, at start).
    pub fn set_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.shared.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.shared.cluster.get()
    }

    /// Makes this node the room's home before a meeting starts in it (always, on a single
    /// node). A meeting whose home stopped is carried on here first.
    pub async fn claim(
        &self,
        room: &Room,
        placement: crate::cluster::Placement,
    ) -> Result<(), crate::cluster::NotHere> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        if let Some(old) = cluster.claim(room, placement).await? {
            crate::cluster::carry_on(cluster, self, room, old).await;
        }
        Ok(())
    }

    /// Whether this node may hold the room's meeting.
    fn homed_here(&self, room_id: &str) -> bool {
        self.cluster().is_none_or(|c| c.holds(room_id))
    }

    /// The room has gone to another node: its meeting here ends at once (its callers are
    /// hung up and can call again, landing on the new home).
    pub fn fence(&self, room_id: &str) {
        let entry = self
            .shared
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(room_id);
        metrics::gauge!("conclave_meetings_live").set(self.count() as f64);
        if let Some(entry) = entry {
            end_now(&entry);
        }
    }

    /// The history record of the room's live meeting here.
    pub fn meeting_id(&self, room_id: &str) -> Option<String> {
        self.entry(room_id).map(|e| e.meeting_id)
    }

    pub fn is_live(&self, room_id: &str) -> bool {
        self.entry(room_id).is_some()
    }

    /// Another node's meeting event, for this node's WebSocket clients (its webhooks are that
    /// node's to queue).
    pub fn relay(&self, event: LiveEvent) {
        let _ = self.shared.events.send(event);
    }

    pub fn streams(&self) -> &crate::streaming::Streams {
        &self.shared.streams
    }

    pub fn settings(&self) -> &MeetingSettings {
        &self.shared.settings
    }

    /// Bounds on callers not yet in a meeting (PIN lobby, access menu).
    pub fn waiting(&self) -> &WaitingRoom {
        &self.shared.waiting
    }

    /// Room PIN attempts, per room and per address.
    pub fn pins(&self) -> &Arc<crate::limiter::Limiter> {
        &self.shared.pins
    }

    /// (normal, on hold) media timeouts.
    pub(crate) fn media_timeouts(&self) -> (Duration, Duration) {
        (
            self.shared.settings.media_timeout,
            self.shared.settings.hold_timeout,
        )
    }

    fn entry(&self, room_id: &str) -> Option<Entry> {
        self.shared
            .rooms
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
        self.shared.events.subscribe()
    }

    /// The meeting events webhooks deliver (all but voice activity), for their one consumer.
    pub fn webhook_events(&self) -> tokio::sync::mpsc::Receiver<LiveEvent> {
        // Deep enough for any burst the store can absorb; a full queue is counted and logged.
        let (tx, rx) = tokio::sync::mpsc::channel(100_000);
        if self.shared.webhooks.set(tx).is_err() {
            tracing::error!("webhook events were asked for twice; the second consumer gets none");
        }
        rx
    }

    /// Events published for the webhooks and not yet taken by their consumer.
    pub fn webhook_backlog(&self) -> usize {
        self.shared
            .webhooks
            .get()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    pub(crate) fn publish(&self, room: &Room, actor: &str, event: LiveChange) {
        let event = LiveEvent {
            tenant_id: room.tenant_id.clone(),
            room_id: room.id.clone(),
            room_number: room.number.clone(),
            actor: actor.to_owned(),
            at: now_ms(),
            event,
        };
        // Voice activity changes many times a second, and a whiteboard's strokes are for the
        // presenter's page: they stay on the WebSockets.
        let talking = matches!(
            event.event,
            LiveChange::Meeting(
                conclave_conference::live::Event::Talking { .. }
                    | conclave_conference::live::Event::Stroke { .. }
            )
        );
        if !talking && let Some(cluster) = self.cluster() {
            cluster.changed();
        }
        if !talking && let Some(webhooks) = self.shared.webhooks.get() {
            match webhooks.try_send(event.clone()) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(lost)) => {
                    metrics::counter!("conclave_webhook_events_dropped_total").increment(1);
                    tracing::warn!(
                        room = lost.room_number,
                        "webhook queue full: an event will not be delivered"
                    );
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        // Nobody listening is fine.
        let _ = self.shared.events.send(event);
    }

    /// Starts a room's meeting with these settings (one click, from a template); refused when
    /// one is already live.
    pub fn start(
        &self,
        room: &Room,
        settings: Settings,
        template_id: Option<String>,
    ) -> Result<(), Refused> {
        let mut rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if rooms.get(&room.id).is_some_and(|e| e.cascade) {
            // the room has come home here: its cascade ends (its callers call again)
            if let Some(cascade) = rooms.remove(&room.id) {
                end_now(&cascade);
            }
        }
        if rooms.contains_key(&room.id) || !self.homed_here(&room.id) {
            return Err(Refused::AlreadyLive);
        }
        let entry = self.spawn(room, settings, true, template_id, false, None);
        rooms.insert(room.id.clone(), entry);
        metrics::gauge!("conclave_meetings_live").set(rooms.len() as f64);
        Ok(())
    }

    /// Starts a direct call's meeting of two, in a room made up for it (its id begins with
    /// [`DIRECT_CALL_ROOM`]): the callee is invited, [`Meetings::dispatched`] says the
    /// invitation is out, and `answered` is told whether the callee answered (then the
    /// caller's leg comes). It ends when either hangs up or the callee cannot be reached. It
    /// lives on the node the caller reached (never claimed in a cluster: nobody else dials
    /// its room).
    pub fn start_call(
        &self,
        room: &Room,
        call: DirectCall,
        answered: oneshot::Sender<bool>,
    ) -> Result<(), Refused> {
        let mut rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
        // a phone has a few calls at once at most (call waiting, a transfer): more is a
        // flood, and each would hold a meeting
        let calls_of = |user: &str| {
            rooms
                .values()
                .filter_map(|e| e.call_between.as_ref())
                .filter(|(from, to)| from == user || to == user)
                .count()
        };
        if calls_of(&call.caller_user_id) >= MAX_CALLS_PER_PERSON
            || calls_of(&call.callee_user_id) >= MAX_CALLS_PER_PERSON
        {
            metrics::counter!("conclave_direct_calls_refused_total").increment(1);
            return Err(Refused::Full(MAX_CALLS_PER_PERSON));
        }
        let entry = self.spawn(
            room,
            Settings::default(),
            true,
            None,
            false,
            Some((call, answered)),
        );
        rooms.insert(room.id.clone(), entry);
        metrics::gauge!("conclave_meetings_live").set(rooms.len() as f64);
        metrics::counter!("conclave_direct_calls_total").increment(1);
        Ok(())
    }

    /// Hands a leg to the room's meeting (starting one when it is the first). A call the
    /// meeting placed finds no meeting when it has ended meanwhile: it is hung up.
    pub fn arrive(&self, room: &Room, leg: Leg) {
        let mut leg = leg;
        for _ in 0..3 {
            let entry = {
                let mut rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
                match rooms.get(&room.id) {
                    Some(entry) => entry.clone(),
                    None if leg.via == JoinedVia::DialOut => {
                        drop(rooms);
                        tracing::info!(
                            room = room.number,
                            "a call placed for a meeting that has ended"
                        );
                        leg.hang_up();
                        return;
                    }
                    None if room.id.starts_with(DIRECT_CALL_ROOM) => {
                        // a direct call over before its caller's leg came: nothing to join
                        drop(rooms);
                        leg.hang_up();
                        return;
                    }
                    None if !self.homed_here(&room.id) => {
                        drop(rooms);
                        tracing::warn!(room = room.number, "a call for a room homed elsewhere");
                        leg.hang_up();
                        return;
                    }
                    None => {
                        let entry = self.spawn(room, Settings::default(), false, None, false, None);
                        rooms.insert(room.id.clone(), entry.clone());
                        metrics::gauge!("conclave_meetings_live").set(rooms.len() as f64);
                        entry
                    }
                }
            };
            let signals = leg.signals.clone();
            let mut refused = None;
            signals.hand_over(outlet(entry.inbox.clone()), || {
                refused = match entry.inbox.try_send(Msg::Arrive(Box::new(leg))) {
                    Ok(()) => None,
                    Err(TrySendError::Full(msg)) => Some((msg, false)),
                    Err(TrySendError::Closed(msg)) => Some((msg, true)),
                };
            });
            match refused {
                None => return,
                Some((Msg::Arrive(back), closed)) => {
                    leg = *back;
                    if !closed {
                        metrics::counter!("conclave_meeting_busy_total").increment(1);
                        tracing::warn!(
                            room = room.number,
                            "the meeting is too busy to take a caller"
                        );
                        leg.hang_up();
                        return;
                    }
                    // That meeting has just ended: the next loop starts the room's next one.
                }
                Some(_) => return,
            }
        }
        leg.hang_up();
    }

    /// A caller for a room whose home (another node of the cluster) is full joins this node's
    /// cascade of it: a meeting of its own here, linked to the home as one of its members.
    pub fn arrive_cascaded(&self, room: &Room, leg: Leg, home_sip_uri: String) {
        let started = {
            let mut rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
            if rooms.contains_key(&room.id) {
                false
            } else {
                // the home records, streams and keeps the room; the cascade only mixes
                let local = Room {
                    auto_record: false,
                    alone_music: false,
                    release_when_empty: false,
                    ..room.clone()
                };
                let entry = self.spawn(&local, Settings::default(), false, None, true, None);
                rooms.insert(room.id.clone(), entry);
                metrics::gauge!("conclave_meetings_live").set(rooms.len() as f64);
                true
            }
        };
        let cascade = self.entry(&room.id).is_some_and(|e| e.cascade);
        if !cascade {
            // the room came home here meanwhile
            self.arrive(room, leg);
            return;
        }
        self.arrive(room, leg);
        if started && let Some(cluster) = self.cluster() {
            let (cluster, meetings, room) = (cluster.clone(), self.clone(), room.clone());
            tokio::spawn(async move {
                crate::cluster::cascade::link(&cluster, &meetings, &room, &home_sip_uri).await;
            });
        }
    }

    /// A one-click start has placed all its calls: from now on the meeting ends when empty.
    pub fn dispatched(&self, room_id: &str) {
        self.tell(room_id, Msg::Dispatched);
    }

    fn tell(&self, room_id: &str, msg: Msg) {
        if let Some(entry) = self.entry(room_id)
            && entry.inbox.try_send(msg).is_err()
        {
            tracing::warn!(room_id, "a meeting did not take a message");
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
        entry
            .inbox
            .send_timeout(Msg::Invite { invitation, reply }, Duration::from_secs(5))
            .await
            .ok()?;
        tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .ok()?
            .ok()
    }

    /// Sets an invitation's state from outside a call: failed before dialling, or calling again.
    pub fn invite_state(
        &self,
        room_id: &str,
        invitation: u32,
        state: CallState,
        reason: Option<String>,
    ) {
        self.tell(
            room_id,
            Msg::InviteState {
                invitation,
                state,
                reason,
            },
        );
    }

    /// Applies a command to a live meeting; `None` when the room has no live meeting.
    pub async fn apply(
        &self,
        room_id: &str,
        actor: Actor,
        command: Command,
        by: &str,
    ) -> Option<Result<(), Refused>> {
        self.ask(room_id, |reply| Msg::Apply {
            actor,
            command,
            by: by.to_owned(),
            reply,
        })
        .await
    }

    pub async fn snapshot(&self, room_id: &str) -> Option<LiveConference> {
        self.ask(room_id, |reply| Msg::Snapshot { reply }).await
    }

    /// Asks a room's actor something and waits for the answer (5 s each way at most).
    async fn ask<T>(
        &self,
        room_id: &str,
        msg: impl FnOnce(oneshot::Sender<T>) -> Msg,
    ) -> Option<T> {
        let entry = self.entry(room_id)?;
        let (reply, answer) = oneshot::channel();
        entry
            .inbox
            .send_timeout(msg(reply), Duration::from_secs(5))
            .await
            .ok()?;
        tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .ok()?
            .ok()
    }

    /// The meeting's composed picture (a JPEG): what phones with video, recordings and
    /// streams show. The first ask starts the room's composer; until its tiles' keyframes
    /// arrive they are dark.
    pub async fn picture(&self, room_id: &str) -> Option<Vec<u8>> {
        self.ask(room_id, |reply| Msg::Picture { reply }).await
    }

    /// The live meetings of a tenant.
    pub async fn list(&self, tenant_id: &str) -> Vec<LiveConference> {
        let ids: Vec<String> = {
            let rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Live meetings on this node.
    pub fn count(&self) -> usize {
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Ends every meeting (the server stops): each hangs its calls up and closes its record.
    /// Returns once all have, or after `within`.
    pub async fn shutdown(&self, within: Duration) {
        let entries: Vec<Entry> = self
            .shared
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut waits = Vec::new();
        for entry in entries {
            let (done, finished) = oneshot::channel();
            if entry
                .inbox
                .send_timeout(Msg::Shutdown { done }, within)
                .await
                .is_ok()
            {
                waits.push(finished);
            }
        }
        let all = async {
            for w in waits {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("some meetings did not close in time");
        }
    }

    fn spawn(
        &self,
        room: &Room,
        settings: Settings,
        dispatching: bool,
        template_id: Option<String>,
        cascade: bool,
        call: Option<(DirectCall, oneshot::Sender<bool>)>,
    ) -> Entry {
        let (inbox, messages) = mpsc::channel(INBOX);
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed);
        let meeting = MeetingRecord {
            id: new_id(),
            tenant_id: room.tenant_id.clone(),
            room_id: Some(room.id.clone()),
            room_number: room.number.clone(),
            room_name: room.name.clone(),
            started_at: now_ms(),
            ended_at: None,
            template_id,
        };
        let (history_tx, mut records) = mpsc::channel(HISTORY_QUEUE);
        let writer = if call.is_some() {
            // a phone call between two people is not a meeting of the history
            tokio::spawn(async move { while records.recv().await.is_some() {} })
        } else {
            tokio::spawn(history::write(
                self.shared.store.clone(),
                meeting.id.clone(),
                records,
            ))
        };
        let meeting_id = meeting.id.clone();
        let record_id = meeting.id.clone();
        let call_between = call
            .as_ref()
            .map(|(c, _)| (c.caller_user_id.clone(), c.callee_user_id.clone()));
        let _ = history_tx.try_send(history::Record::Started(meeting));
        let media = self.shared.media.room(&room.id);
        let events = inbox.clone();
        media.open(Box::new(move |event| {
            events.try_send(Msg::Media(event)).is_ok()
        }));
        let actor = actor::RoomActor::new(
            self.clone(),
            room.clone(),
            generation,
            media,
            settings,
            dispatching,
            cascade.then(actor::Cascade::default),
            call,
            (record_id, history_tx, writer),
        );
        tokio::spawn(actor.run(messages));
        metrics::counter!("conclave_meetings_started_total").increment(1);
        Entry {
            tenant_id: room.tenant_id.clone(),
            room: Box::new(room.clone()),
            inbox,
            generation,
            meeting_id,
            cascade,
            call_between,
        }
    }

    /// A meeting has ended: the room has no live meeting until someone comes again.
    fn retire(&self, room_id: &str, generation: u64) {
        let mut rooms = self.shared.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if rooms
            .get(room_id)
            .is_some_and(|e| e.generation == generation)
        {
            rooms.remove(room_id);
            metrics::gauge!("conclave_meetings_live").set(rooms.len() as f64);
            if let Some(cluster) = self.cluster() {
                cluster.release(room_id);
            }
        }
    }
}

/// Ends a meeting taken out of the registry (fenced, or a cascade whose room came home): a
/// full inbox does not lose the order, it waits (briefly) for room.
fn end_now(entry: &Entry) {
    let (done, _) = oneshot::channel();
    if entry.inbox.try_send(Msg::Shutdown { done }).is_err() {
        let inbox = entry.inbox.clone();
        tokio::spawn(async move {
            let (done, _) = oneshot::channel();
            let _ = inbox
                .send_timeout(Msg::Shutdown { done }, Duration::from_secs(5))
                .await;
        });
    }
}

/// A meeting's inbox as a leg's way back: signalling's events go there. A full inbox does not
/// lose an ending: that one waits (briefly) for room.
fn outlet(inbox: mpsc::Sender<Msg>) -> Outlet {
    Arc::new(
        move |leg, event| match inbox.try_send(Msg::Leg(leg, event)) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(msg)) => {
                metrics::counter!("conclave_meeting_inbox_full_total").increment(1);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let inbox = inbox.clone();
                    runtime.spawn(async move {
                        let _ = inbox.send_timeout(msg, Duration::from_secs(5)).await;
                    });
                }
            }
        },
    )
}
