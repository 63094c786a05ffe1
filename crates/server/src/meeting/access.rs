//! The conference access number: one number for every room. A small owner of the caller's
//! leg, like a meeting: a voice menu asks for the room number, then hands the leg to that
//! room's meeting, whose own PIN prompt (if any) follows. The same owner says a feature
//! code's outcome ("the room has been deleted", "not allowed") and hangs up.
//! Nobody stays long: each key is awaited for a while, the menu as a whole has a limit, and
//! callers in menus are bounded per address and in all (see [`super::WaitingRoom`]).

use super::Meetings;
use super::leg::{Leg, LegEvent, LegId};
use crate::media::{MediaEvent, MemberJoin, Playback, RoomMedia};
use crate::prompts::{self, Prompt};
use conclave_media::engine;
use conclave_store::model::Language;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Wrong or missing room numbers before the menu says goodbye.
const TRIES: u32 = 3;
/// How long the menu waits for the next key.
const KEY_TIMEOUT: Duration = Duration::from_secs(15);
/// Nobody stays in the menu longer than this.
const MAX_STAY: Duration = Duration::from_secs(120);
/// Messages the menu's inbox holds.
const INBOX: usize = 64;

/// What the menu does with its caller.
#[derive(Debug, Clone)]
pub enum MenuMode {
    /// Ask for a room; the dialled domain names the tenant whose rooms are looked up.
    Access { domain: String },
    /// Say this, then hang up.
    Announce(Prompt),
}

enum MenuMsg {
    Leg(LegId, LegEvent),
    Media(MediaEvent),
}

/// The media room of a call in a menu (a room of its own).
pub fn media_room_name(leg: LegId) -> String {
    format!("menu:{leg}")
}

/// Takes a caller's leg (its media negotiated) into a menu.
pub fn spawn(meetings: &Meetings, leg: Leg, mode: MenuMode) {
    let (inbox, messages) = mpsc::channel(INBOX);
    let media = meetings.media().room(&media_room_name(leg.id));
    let events = inbox.clone();
    media.open(Box::new(move |event| {
        events.try_send(MenuMsg::Media(event)).is_ok()
    }));
    let outlet_inbox = inbox.clone();
    let outlet: super::Outlet = std::sync::Arc::new(move |id, event| {
        let _ = outlet_inbox.try_send(MenuMsg::Leg(id, event));
    });
    let menu = Menu {
        meetings: meetings.clone(),
        language: meetings.settings().access_language,
        media,
        leg: None,
    };
    let signals = leg.signals.clone();
    signals.hand_over(outlet, move || {
        tokio::spawn(menu.run(leg, mode, messages));
    });
}

struct Menu {
    meetings: Meetings,
    language: Language,
    media: RoomMedia,
    /// The caller, while the menu owns it.
    leg: Option<Leg>,
}

/// Why the menu stopped waiting.
enum Stop {
    /// The call ended.
    Gone,
    /// The menu's time is up, or the media stopped.
    TimeUp,
}

impl Menu {
    async fn run(mut self, leg: Leg, mode: MenuMode, mut inbox: mpsc::Receiver<MenuMsg>) {
        let id = leg.id;
        let Some(leg) = self.enter(leg) else {
            return;
        };
        self.leg = Some(leg);
        let deadline = Instant::now() + MAX_STAY;
        let outcome = match mode {
            MenuMode::Announce(prompt) => {
                self.say(prompt);
                match self
                    .pause(&mut inbox, prompt_length(self.language, prompt), deadline)
                    .await
                {
                    Ok(()) | Err(Stop::TimeUp) => None,
                    Err(Stop::Gone) => return self.gone(),
                }
            }
            MenuMode::Access { domain } => match self.ask(&mut inbox, &domain, deadline).await {
                Ok(room) => Some(room),
                Err(Stop::Gone) => return self.gone(),
                Err(Stop::TimeUp) => None,
            },
        };
        let Some(mut leg) = self.leg.take() else {
            return;
        };
        self.media.remove(id);
        match outcome {
            Some(room) => {
                tracing::info!(leg = id, room = room.number, "access menu: room chosen");
                leg.needs_pin = room.pin.is_some();
                // Keep the signals to pass on what arrives before the room's meeting has it.
                let signals = leg.signals.clone();
                if let Err(err) = self
                    .meetings
                    .claim(&room, crate::cluster::Placement::Here)
                    .await
                {
                    // in a cluster, a room held by another node: this call cannot move there
                    tracing::info!(room = room.number, ?err, "access menu: room held elsewhere");
                    leg.hang_up();
                    return;
                }
                self.meetings.arrive(&room, leg);
                inbox.close();
                while let Ok(msg) = inbox.try_recv() {
                    if let MenuMsg::Leg(leg, event) = msg {
                        signals.emit(leg, event);
                    }
                }
            }
            None => leg.hang_up(),
        }
    }

    /// Puts the caller in the menu's own room, hearing only the menu.
    fn enter(&mut self, mut leg: Leg) -> Option<Leg> {
        let Some(endpoint) = leg.endpoint.rehome(&self.media) else {
            tracing::error!(leg = leg.id, "a menu call without its own media ports");
            leg.hang_up();
            return None;
        };
        leg.endpoint = endpoint;
        let spec = leg.media.as_ref()?;
        let join = MemberJoin {
            webrtc: None,
            config: spec.config.clone(),
            muted: true,
            deaf: false,
            group: None,
            rtp_timeout: Some(self.meetings.settings().media_timeout),
            playback: None,
        };
        if !self.media.add(leg.id, &leg.endpoint, join) {
            leg.hang_up();
            return None;
        }
        Some(leg)
    }

    fn gone(self) {
        if let Some(leg) = &self.leg {
            self.media.remove(leg.id);
        }
    }

    /// Asks for a room number until one is found, or the tries or the time run out.
    async fn ask(
        &mut self,
        inbox: &mut mpsc::Receiver<MenuMsg>,
        domain: &str,
        deadline: Instant,
    ) -> Result<conclave_store::model::Room, Stop> {
        let ip = self.leg.as_ref().and_then(|l| l.who.ip);
        for _ in 0..TRIES {
            self.say(Prompt::EnterRoom);
            let Some(number) = self.read_number(inbox, deadline).await? else {
                continue;
            };
            let room = crate::rooms::find_dialled(self.meetings.store(), &number, domain).await;
            match room {
                Some(room)
                    if room.pin.is_some()
                        && ip.is_some_and(|ip| {
                            self.meetings.pins().source_blocked(ip).is_some()
                        }) =>
                {
                    self.say(Prompt::NotAllowed);
                    self.pause(
                        inbox,
                        prompt_length(self.language, Prompt::NotAllowed),
                        deadline,
                    )
                    .await?;
                    return Err(Stop::TimeUp);
                }
                Some(room) => {
                    // A frozen account's extension calling through the access number is
                    // refused like a direct call to the room.
                    let caller = self.leg.as_ref().map(|l| l.who.number.clone());
                    let store = self.meetings.store();
                    if let Some(caller) = caller
                        && crate::sip::calls::frozen_extension(store, &room.tenant_id, &caller)
                            .await
                    {
                        self.say(Prompt::NotAllowed);
                        self.pause(
                            inbox,
                            prompt_length(self.language, Prompt::NotAllowed),
                            deadline,
                        )
                        .await?;
                        return Err(Stop::TimeUp);
                    }
                    return Ok(room);
                }
                None => {
                    self.say(Prompt::NoSuchRoom);
                    self.pause(
                        inbox,
                        prompt_length(self.language, Prompt::NoSuchRoom),
                        deadline,
                    )
                    .await?;
                }
            }
        }
        self.say(Prompt::Goodbye);
        self.pause(
            inbox,
            prompt_length(self.language, Prompt::Goodbye),
            deadline,
        )
        .await?;
        Err(Stop::TimeUp)
    }

    /// Digits up to `#` (at most 12; `*` starts over). `None` when the caller keys nothing in
    /// time.
    async fn read_number(
        &mut self,
        inbox: &mut mpsc::Receiver<MenuMsg>,
        deadline: Instant,
    ) -> Result<Option<String>, Stop> {
        let mut number = String::new();
        loop {
            let until = (Instant::now() + KEY_TIMEOUT).min(deadline);
            let Some(key) = self.next_key(inbox, until).await? else {
                if Instant::now() >= deadline {
                    return Err(Stop::TimeUp);
                }
                return Ok(None);
            };
            match key {
                '#' if !number.is_empty() => return Ok(Some(number)),
                '*' => number.clear(),
                d if d.is_ascii_digit() && number.len() < 12 => number.push(d),
                _ => {}
            }
        }
    }

    /// The next key, or `None` at `until`.
    async fn next_key(
        &mut self,
        inbox: &mut mpsc::Receiver<MenuMsg>,
        until: Instant,
    ) -> Result<Option<char>, Stop> {
        loop {
            let msg = tokio::time::timeout_at(until.into(), inbox.recv()).await;
            match msg {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Stop::Gone),
                Ok(Some(msg)) => match self.handle(msg)? {
                    Some(key) => return Ok(Some(key)),
                    None => continue,
                },
            }
        }
    }

    /// Waits while a prompt is said, still watching the call.
    async fn pause(
        &mut self,
        inbox: &mut mpsc::Receiver<MenuMsg>,
        length: Duration,
        deadline: Instant,
    ) -> Result<(), Stop> {
        let until = (Instant::now() + length).min(deadline);
        while self.next_key(inbox, until).await?.is_some() {}
        Ok(())
    }

    /// A message: a key, or nothing to act on; the end of the call stops the menu.
    fn handle(&mut self, msg: MenuMsg) -> Result<Option<char>, Stop> {
        match msg {
            MenuMsg::Leg(_, LegEvent::Ended(_)) => {
                if let Some(leg) = self.leg.take() {
                    self.media.remove(leg.id);
                }
                Err(Stop::Gone)
            }
            MenuMsg::Leg(_, LegEvent::Digit(key))
            | MenuMsg::Media(MediaEvent::Digit { digit: key, .. }) => Ok(Some(key)),
            MenuMsg::Leg(id, LegEvent::Media(spec)) => {
                if let Some(leg) = self.leg.as_mut() {
                    self.media.send(engine::Command::UpdateMember {
                        member: id,
                        config: Box::new(spec.config.clone()),
                    });
                    leg.media = Some(*spec);
                }
                Ok(None)
            }
            MenuMsg::Media(MediaEvent::Timeout { .. }) => Err(Stop::TimeUp),
            // (the menu is audio: a terminal's video waits for its room)
            MenuMsg::Leg(
                _,
                LegEvent::Ringing | LegEvent::PictureUpdate | LegEvent::VideoOffered,
            )
            | MenuMsg::Media(_) => Ok(None),
        }
    }

    fn say(&self, prompt: Prompt) {
        if let Some(leg) = &self.leg {
            self.media.send(engine::Command::Play {
                member: leg.id,
                playback: Playback {
                    samples: prompts::pcm(self.language, prompt),
                    rate: prompts::RATE,
                    looped: false,
                },
            });
        }
    }
}

fn prompt_length(language: Language, prompt: Prompt) -> Duration {
    let samples = prompts::pcm(language, prompt).len() as u64;
    Duration::from_millis(samples * 1000 / u64::from(prompts::RATE) + 300)
}
