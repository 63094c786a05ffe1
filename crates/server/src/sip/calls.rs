//! Calls into rooms: the dialled number names a room; the call is answered with our SDP, its
//! audio joins the room's mix on the media thread, and the caller joins the room's live
//! meeting. (Rooms with a PIN wait for the voice menu that asks for it.)

use crate::live::{CallControl, CallState, Conferences, Newcomer};
use crate::media::{Command, MediaHandle};
use crate::prompts::Prompt;
use conclave_conference::Role;
use conclave_conference::live::JoinedVia;
use conclave_media::codec::CodecKind;
use conclave_media::conference::MemberConfig;
use conclave_media::srtp::{SrtpKey, SrtpSuite};
use conclave_sip::offer_answer::{Codec, Direction, LocalMedia, NegotiatedAudio, SrtpPolicy};
use conclave_sip::ua::{CallId, Dial, EndReason, UserAgent};
use conclave_store::model::Room;
use conclave_store::{Store, repo};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The room a call dials: by the tenant that owns the request's domain, otherwise the one room
/// on the installation with that number.
pub async fn find_room(store: &Store, number: &str, domain: &str) -> Option<Room> {
    let mut conn = store.conn().await.ok()?;
    match repo::tenants::get_by_sip_domain(&mut conn, domain).await {
        Ok(Some(tenant)) => repo::rooms::get_by_number(&mut conn, &tenant.id, number)
            .await
            .ok()
            .flatten(),
        Ok(None) => {
            let mut rooms = repo::rooms::find_by_number(&mut conn, number).await.ok()?;
            (rooms.len() == 1).then(|| rooms.remove(0))
        }
        Err(err) => {
            tracing::warn!(%err, "room lookup failed");
            None
        }
    }
}

/// What the directory and the room's live meeting say about a dialled number.
pub enum Admission {
    /// The access number: a voice menu asks which room.
    Menu {
        domain: String,
    },
    NoSuchRoom,
    /// Too many wrong PINs from this address lately.
    Blocked,
    /// Answer, say this, hang up (a feature code's outcome).
    Announce(Prompt),
    /// Come in; with a PIN to key in first when the room has one.
    Admitted {
        room: Box<Room>,
        needs_pin: bool,
        /// Their role, when the directory knows it (else the caller's).
        role: Option<Role>,
    },
}

/// Looks the room up and asks its live meeting (if any) whether newcomers may join; runs
/// the keypad's feature codes (join, create, delete a room).
pub async fn admit(
    store: &Store,
    conferences: &Conferences,
    number: &str,
    domain: &str,
    caller: &Caller,
) -> Admission {
    let from = caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let (number, keyed_pin) = match feature_code(number) {
        Some(Feature::Join { room, pin }) => (room, Some(pin)),
        Some(Feature::Create { room, pin, minutes }) => {
            return create_room(store, domain, caller, room, pin, minutes).await;
        }
        Some(Feature::Delete { room, pin }) => {
            return delete_room(store, conferences, domain, caller, room, pin).await;
        }
        None => (number.to_owned(), None),
    };
    let Some(room) = find_room(store, &number, domain).await else {
        return Admission::NoSuchRoom;
    };
    if room.pin.is_some() && conferences.pin_blocked(from) {
        return Admission::Blocked;
    }
    // A PIN dialled with the feature code is checked now, like one keyed in later.
    let needs_pin = match (&room.pin, keyed_pin) {
        (None, _) => false,
        (Some(pin), Some(keyed)) if *pin == keyed => {
            conferences.pin_succeeded(from);
            false
        }
        (Some(_), Some(_)) => {
            conferences.pin_failed(from);
            return Admission::Blocked;
        }
        (Some(_), None) => true,
    };
    // Caller ID: a registered user (or a known number) who is one of the room's members
    // joins with their role — and without the PIN when the room allows it.
    let role = member_role(store, domain, caller, &room).await;
    let needs_pin = needs_pin && !(role.is_some() && room.members_skip_pin);
    // A locked or full meeting turns the caller away with a prompt once answered (the
    // meeting decides, when they join).
    Admission::Admitted {
        room: Box::new(room),
        needs_pin,
        role,
    }
}

/// The caller's role in the room, when caller ID tells who they are: the registered user
/// of the From extension, else the From number as the directory knows it.
async fn member_role(store: &Store, domain: &str, caller: &Caller, room: &Room) -> Option<Role> {
    let user = calling_user(store, domain, caller)
        .await
        .filter(|u| u.tenant_id == room.tenant_id);
    let mut conn = store.conn().await.ok()?;
    let number = (!caller.number.is_empty()).then_some(caller.number.as_str());
    repo::rooms::member_role(
        &mut conn,
        &room.id,
        user.as_ref().map(|u| u.id.as_str()),
        number,
    )
    .await
    .ok()
    .flatten()
}

/// A keypad feature code dialled in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// `*400*<room>*<PIN>`
    Join { room: String, pin: String },
    /// `*401*<room>*<PIN>[*<minutes>]`: a registered user creates a room (60 minutes unless
    /// said).
    Create {
        room: String,
        pin: String,
        minutes: u32,
    },
    /// `*402*<room>*<PIN>`: its creator deletes a room.
    Delete { room: String, pin: String },
}

/// Parses a feature code (`*` may arrive as `%2A`, and a trailing `#` is ignored).
pub fn feature_code(dialled: &str) -> Option<Feature> {
    let dialled = dialled.replace("%2A", "*").replace("%2a", "*");
    let dialled = dialled.trim_end_matches("%23").trim_end_matches('#');
    let rest = dialled.strip_prefix('*')?;
    let parts: Vec<&str> = rest.split('*').collect();
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    match parts[..] {
        ["400", room, pin] if digits(room, 20) && digits(pin, 16) => Some(Feature::Join {
            room: room.into(),
            pin: pin.into(),
        }),
        ["401", room, pin] if digits(room, 20) && digits(pin, 16) => Some(Feature::Create {
            room: room.into(),
            pin: pin.into(),
            minutes: 60,
        }),
        ["401", room, pin, minutes]
            if digits(room, 20) && digits(pin, 16) && digits(minutes, 4) =>
        {
            let minutes: u32 = minutes.parse().ok().filter(|m| (1..=1440).contains(m))?;
            Some(Feature::Create {
                room: room.into(),
                pin: pin.into(),
                minutes,
            })
        }
        ["402", room, pin] if digits(room, 20) && digits(pin, 16) => Some(Feature::Delete {
            room: room.into(),
            pin: pin.into(),
        }),
        _ => None,
    }
}

/// The registered user calling: the From extension registered from the call's address, in
/// the tenant of the dialled domain (or the only tenant where it is registered).
async fn calling_user(
    store: &Store,
    domain: &str,
    caller: &Caller,
) -> Option<conclave_store::model::User> {
    let mut conn = store.conn().await.ok()?;
    let tenant_id = match repo::tenants::get_by_sip_domain(&mut conn, domain)
        .await
        .ok()?
    {
        Some(tenant) => caller
            .registered_in
            .contains(&tenant.id)
            .then_some(tenant.id)?,
        None if caller.registered_in.len() == 1 => caller.registered_in[0].clone(),
        None => return None,
    };
    repo::users::get_by_extension(&mut conn, &tenant_id, &caller.number)
        .await
        .ok()
        .flatten()
}

/// Records what a phone user did from the keypad in the audit log.
async fn audit_keypad(
    conn: &mut conclave_store::Conn,
    user: &conclave_store::model::User,
    caller: &Caller,
    action: &str,
    room: &Room,
) {
    let event = conclave_store::model::AuditEvent {
        id: conclave_store::new_id(),
        tenant_id: Some(room.tenant_id.clone()),
        actor_id: Some(user.id.clone()),
        actor_name: user.username.clone(),
        action: action.into(),
        target_type: "room".into(),
        target_id: Some(room.id.clone()),
        outcome: "ok".into(),
        source: caller.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        detail: serde_json::json!({ "number": room.number, "via": "keypad" }),
        at: conclave_store::now_ms(),
    };
    if let Err(err) = repo::audit::insert(conn, &event).await {
        tracing::warn!(%err, "cannot audit a keypad action");
    }
}

/// `*401*`: creates the room and takes its creator in, as its owner.
async fn create_room(
    store: &Store,
    domain: &str,
    caller: &Caller,
    number: String,
    pin: String,
    minutes: u32,
) -> Admission {
    let refused = Admission::Announce(Prompt::NotAllowed);
    let Some(user) = calling_user(store, domain, caller).await else {
        return refused;
    };
    let Ok(mut conn) = store.conn().await else {
        return refused;
    };
    if let Ok(Some(_)) = repo::rooms::get_by_number(&mut conn, &user.tenant_id, &number).await {
        return refused;
    }
    let now = conclave_store::now_ms();
    let room = Room {
        id: conclave_store::new_id(),
        tenant_id: user.tenant_id.clone(),
        name: format!("{number} ({})", user.display_name),
        number,
        pin: Some(pin),
        has_pin: true,
        capacity: 100,
        max_duration_minutes: Some(i64::from(minutes)),
        language: conclave_store::model::Language::English,
        creator_id: Some(user.id.clone()),
        owner_id: None,
        entry_chime: true,
        alone_music: true,
        members_skip_pin: false,
        // A room made on the phone is for one meeting.
        release_when_empty: true,
        created_at: now,
        updated_at: now,
    };
    if let Err(err) = repo::rooms::insert(&mut conn, &room).await {
        tracing::info!(%err, "keypad room not created");
        return refused;
    }
    audit_keypad(&mut conn, &user, caller, "createRoom", &room).await;
    tracing::info!(
        room = room.number,
        user = user.username,
        "room created from the keypad"
    );
    Admission::Admitted {
        room: Box::new(room),
        needs_pin: false,
        role: Some(Role::Owner),
    }
}

/// `*402*`: deletes the room (its creator only, when it has one). A live meeting keeps its
/// members; nobody new can find the room.
async fn delete_room(
    store: &Store,
    conferences: &Conferences,
    domain: &str,
    caller: &Caller,
    number: String,
    pin: String,
) -> Admission {
    let refused = Admission::Announce(Prompt::NotAllowed);
    let from = caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if conferences.pin_blocked(from) {
        return Admission::Blocked;
    }
    let Some(user) = calling_user(store, domain, caller).await else {
        return refused;
    };
    let Ok(mut conn) = store.conn().await else {
        return refused;
    };
    let Ok(Some(room)) = repo::rooms::get_by_number(&mut conn, &user.tenant_id, &number).await
    else {
        return refused;
    };
    if room.pin.as_deref() != Some(pin.as_str()) {
        conferences.pin_failed(from);
        return refused;
    }
    if room.creator_id.as_ref().is_some_and(|c| *c != user.id) {
        return refused;
    }
    if let Err(err) = repo::rooms::delete(&mut conn, &room.id).await {
        tracing::info!(%err, "keypad room not deleted");
        return refused;
    }
    audit_keypad(&mut conn, &user, caller, "deleteRoom", &room).await;
    tracing::info!(
        room = room.number,
        user = user.username,
        "room deleted from the keypad"
    );
    Admission::Announce(Prompt::RoomDeleted)
}

/// Who calls: the From header's display name and user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub number: String,
    /// Where the call came from (wrong PINs are counted per address).
    pub ip: Option<IpAddr>,
    /// The role they get in the meeting.
    pub role: Role,
    /// The tenants where the From extension is registered from the call's address.
    pub registered_in: Vec<String>,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            name: String::new(),
            number: String::new(),
            ip: None,
            role: Role::Participant,
            registered_in: Vec::new(),
        }
    }
}

/// What the media engine needs from the negotiation.
fn member_config(media: &NegotiatedAudio) -> Option<MemberConfig> {
    let codec = match media.codec {
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
        Codec::G722 => CodecKind::G722,
        Codec::Opus => CodecKind::Opus,
    };
    let mut config = MemberConfig::new(codec, rand::random());
    config.payload_type = media.payload_type;
    config.ptime_ms = (media.ptime.max(20) / 20) * 20;
    config.telephone_event_pt = media.dtmf_payload_type;
    config.initial_seq = rand::random();
    config.initial_ts = rand::random();
    config.remote = media.remote;
    if let Some(keys) = &media.srtp {
        let suite = SrtpSuite::from_sdes_name(&keys.suite)?;
        let local = SrtpKey::from_material(suite, &keys.local_key).ok()?;
        let remote = SrtpKey::from_material(suite, &keys.remote_key).ok()?;
        config.srtp = Some((local, remote));
    }
    Some(config)
}

/// Where our RTCP goes: the peer's RTCP port when it did not take rtcp-mux.
fn rtcp_to(media: &NegotiatedAudio) -> Option<std::net::SocketAddr> {
    (!media.rtcp_mux).then_some(media.remote_rtcp).flatten()
}

/// A call's media leg: its RTP socket and the task that reads it.
struct Leg {
    socket: Arc<UdpSocket>,
    reader: Option<JoinHandle<()>>,
    /// The room the call is in; for a call in the access menu, a room of its own.
    room: Room,
    /// In the access number's menu, or hearing a feature code's outcome.
    menu: Option<MenuKind>,
    /// The media negotiated last (a call leaving the menu joins its room with it).
    media: Option<NegotiatedAudio>,
    caller: Caller,
    needs_pin: bool,
    /// We called them (one-click start, invite) rather than they us.
    outgoing: bool,
    joined: bool,
}

/// A call that is in no room yet.
#[derive(Debug, Clone)]
enum MenuKind {
    /// The access number's menu; the dialled domain names the tenant.
    Access { domain: String },
    /// A prompt, then the call ends.
    Announce(Prompt),
}

/// What the access number's menu needs.
pub struct MenuSettings {
    pub store: Store,
    pub language: conclave_store::model::Language,
}

/// A room of its own for a call in the access menu: the mixer plays it the menu's prompts
/// and hears its keys there.
fn menu_room(call: CallId, language: conclave_store::model::Language) -> Room {
    Room {
        id: format!("menu:{}", call.0),
        tenant_id: String::new(),
        number: String::new(),
        name: "access menu".into(),
        pin: None,
        has_pin: false,
        capacity: 1,
        max_duration_minutes: None,
        language,
        creator_id: None,
        owner_id: None,
        entry_chime: false,
        alone_music: false,
        members_skip_pin: false,
        release_when_empty: false,
        created_at: 0,
        updated_at: 0,
    }
}

pub struct Calls {
    media: MediaHandle,
    menu: MenuSettings,
    conferences: Conferences,
    control: Arc<dyn CallControl>,
    /// The address RTP sockets bind to and SDP announces.
    media_ip: IpAddr,
    legs: HashMap<CallId, Leg>,
}

impl Calls {
    pub fn new(
        media: MediaHandle,
        conferences: Conferences,
        control: Arc<dyn CallControl>,
        media_ip: IpAddr,
        menu: MenuSettings,
    ) -> Self {
        Calls {
            media,
            menu,
            conferences,
            control,
            media_ip,
            legs: HashMap::new(),
        }
    }

    /// The directory answered: answer into the room, or refuse.
    pub fn admitted(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        call: CallId,
        caller: Caller,
        admission: Admission,
        srtp: SrtpPolicy,
    ) {
        let mut caller = caller;
        let (room, needs_pin, menu) = match admission {
            Admission::Admitted {
                room,
                needs_pin,
                role,
            } => {
                caller.role = role.unwrap_or(caller.role);
                (*room, needs_pin, None)
            }
            Admission::Menu { domain } => (
                menu_room(call, self.menu.language),
                false,
                Some(MenuKind::Access { domain }),
            ),
            Admission::Announce(prompt) => (
                menu_room(call, self.menu.language),
                false,
                Some(MenuKind::Announce(prompt)),
            ),
            Admission::NoSuchRoom => {
                let _ = ua.reject(now, call, 404, Vec::new());
                return;
            }
            Admission::Blocked => {
                let _ = ua.reject(now, call, 403, Vec::new());
                return;
            }
        };
        let (socket, mut local) = match self.local_media() {
            Ok(media) => media,
            Err(err) => {
                tracing::warn!(%err, "cannot open an RTP socket");
                let _ = ua.reject(now, call, 503, Vec::new());
                return;
            }
        };
        local.srtp_policy = Some(srtp);
        let answered = ua.answer(now, call, local);
        self.legs.insert(
            call,
            Leg {
                socket,
                reader: None,
                room,
                menu,
                media: None,
                caller,
                needs_pin,
                outgoing: false,
                joined: false,
            },
        );
        match answered {
            Ok(Some(media)) => self.media_changed(call, &media),
            Ok(None) => {} // late offer: the media comes with the ACK
            Err(err) => {
                tracing::info!(?err, "call not answered");
                self.ended(call, EndReason::MediaFailure);
            }
        }
    }

    /// Opens an RTP socket and describes it for SDP.
    fn local_media(&self) -> std::io::Result<(Arc<UdpSocket>, LocalMedia)> {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(self.media_ip, 0))?);
        let port = socket.local_addr()?.port();
        let local = LocalMedia {
            addr: self.media_ip,
            port,
            session_id: rand::random::<u32>().into(),
            session_version: 1,
            srtp_key: Some(rand::random()),
            srtp_policy: None,
            direction: Direction::SendRecv,
        };
        Ok((socket, local))
    }

    /// Calls someone into a room; they join its meeting when they answer. `dial` builds the
    /// INVITE around our media description.
    pub fn dial(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        room: Room,
        callee: Caller,
        invitation: Option<u32>,
        dial: impl FnOnce(LocalMedia) -> Dial,
    ) -> Result<CallId, String> {
        let (socket, local) = self
            .local_media()
            .map_err(|e| format!("cannot open an RTP socket: {e}"))?;
        let call = ua
            .dial(now, dial(local))
            .map_err(|e| format!("cannot place the call: {e:?}"))?;
        let leg = Leg {
            socket,
            reader: None,
            room,
            menu: None,
            media: None,
            caller: callee,
            needs_pin: false,
            outgoing: true,
            joined: false,
        };
        self.conferences.awaiting(&leg.room.id, call.0, invitation);
        self.legs.insert(call, leg);
        metrics::counter!("conclave_calls_dialed_total").increment(1);
        Ok(call)
    }

    /// Media negotiated or renegotiated: join the mix and the meeting, or update the member.
    pub fn media_changed(&mut self, call: CallId, media: &NegotiatedAudio) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        leg.media = Some(media.clone());
        let Some(config) = member_config(media) else {
            tracing::warn!(?call, "negotiated media the engine cannot use");
            return;
        };
        if leg.joined {
            self.media.send(Command::Update {
                member: call.0,
                config: Box::new(config),
                rtcp_to: rtcp_to(media),
            });
            return;
        }
        leg.joined = true;
        self.media.send(Command::Join {
            room: leg.room.id.clone(),
            member: call.0,
            config: Box::new(config),
            socket: leg.socket.clone(),
            rtcp_to: rtcp_to(media),
        });
        if leg.reader.is_none() {
            leg.reader = spawn_reader(&leg.socket, call, self.media.clone());
        }
        if let Some(MenuKind::Announce(prompt)) = leg.menu {
            let samples = crate::prompts::pcm(self.menu.language, prompt);
            let said = Duration::from_millis(
                samples.len() as u64 * 1000 / u64::from(crate::prompts::RATE) + 500,
            );
            self.media.send(Command::Play {
                member: call.0,
                samples,
                rate: crate::prompts::RATE,
                looped: false,
            });
            let control = self.control.clone();
            tokio::spawn(async move {
                tokio::time::sleep(said).await;
                control.hang_up(call.0);
            });
            return;
        }
        if let Some(MenuKind::Access { domain }) = leg.menu.clone() {
            // The access number: the menu asks which room; the call moves there.
            let menu = crate::access::Menu {
                call: call.0,
                domain,
                from: leg.caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                language: self.menu.language,
                store: self.menu.store.clone(),
                conferences: self.conferences.clone(),
                media: self.media.clone(),
                control: self.control.clone(),
            };
            let keys = self.conferences.open_menu(call.0);
            tokio::spawn(menu.run(keys));
            return;
        }
        metrics::counter!("conclave_calls_joined_total").increment(1);
        // The meeting learns of the newcomer; if it refuses (locked or full meanwhile), hang up.
        let (conferences, control) = (self.conferences.clone(), self.control.clone());
        let (room, caller) = (leg.room.clone(), leg.caller.clone());
        let pin_from = leg
            .needs_pin
            .then(|| caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0])));
        let via = if leg.outgoing {
            JoinedVia::DialOut
        } else {
            JoinedVia::DialIn
        };
        let who = Newcomer {
            call: call.0,
            name: caller.name,
            number: caller.number,
            role: caller.role,
            via,
            pin_from,
        };
        tokio::spawn(async move {
            if let Err(reason) = conferences.join(&room, who).await {
                tracing::info!(%reason, room = room.number, "the meeting refused a caller");
                control.hang_up(call.0);
            }
        });
    }

    /// An invitee's phone rings.
    pub fn ringing(&self, call: CallId) {
        if let Some(leg) = self.legs.get(&call)
            && leg.outgoing
            && !leg.joined
        {
            self.conferences.ringing(&leg.room.id, call.0);
        }
    }

    /// A call leaves the access menu for the room the caller chose (its PIN, if any, next).
    pub fn enter_room(&mut self, call: CallId, room: Room) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        if leg.menu.take().is_none() {
            return;
        }
        self.media.send(Command::Leave { member: call.0 });
        leg.joined = false;
        leg.needs_pin = room.pin.is_some();
        leg.room = room;
        if let Some(media) = leg.media.clone() {
            self.media_changed(call, &media);
        }
    }

    pub fn ended(&mut self, call: CallId, reason: EndReason) {
        if let Some(leg) = self.legs.remove(&call) {
            if let Some(reader) = leg.reader {
                reader.abort();
            }
            if leg.menu.is_some() {
                self.conferences.close_menu(call.0);
                if leg.joined {
                    self.media.send(Command::Leave { member: call.0 });
                }
            } else if leg.joined {
                self.media.send(Command::Leave { member: call.0 });
                self.conferences.left(&leg.room.id, call.0);
            } else if leg.outgoing {
                let state = match reason {
                    EndReason::Busy => CallState::Busy,
                    EndReason::NoAnswer => CallState::NoAnswer,
                    EndReason::Rejected(_) => CallState::Rejected,
                    _ => CallState::Failed,
                };
                self.conferences.gave_up(&leg.room.id, call.0, state);
            }
        }
    }
}

/// Reads a leg's RTP and hands it to the media thread with its arrival time.
fn spawn_reader(socket: &UdpSocket, call: CallId, media: MediaHandle) -> Option<JoinHandle<()>> {
    let socket = socket.try_clone().and_then(|s| {
        s.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(s)
    });
    let socket = match socket {
        Ok(socket) => socket,
        Err(err) => {
            tracing::warn!(%err, "cannot read an RTP socket");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => media.send(Command::Packet {
                    member: call.0,
                    from,
                    data: buf[..n].to_vec(),
                    at: Instant::now(),
                }),
                Err(err) => tracing::trace!(%err, "RTP receive error"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::{Feature, feature_code};

    #[test]
    fn feature_codes_name_the_room_and_the_pin() {
        let join = Some(Feature::Join {
            room: "8001".into(),
            pin: "1234".into(),
        });
        assert_eq!(feature_code("*400*8001*1234"), join);
        assert_eq!(feature_code("%2A400%2A8001%2A1234%23"), join);
        assert_eq!(feature_code("*400*8001*1234#"), join);
        assert_eq!(
            feature_code("*401*8001*1234"),
            Some(Feature::Create {
                room: "8001".into(),
                pin: "1234".into(),
                minutes: 60
            })
        );
        assert_eq!(
            feature_code("*401*8001*1234*90"),
            Some(Feature::Create {
                room: "8001".into(),
                pin: "1234".into(),
                minutes: 90
            })
        );
        assert_eq!(
            feature_code("*402*8001*1234"),
            Some(Feature::Delete {
                room: "8001".into(),
                pin: "1234".into()
            })
        );
        for bad in [
            "*400*8001",
            "*400*80a1*1234",
            "8001",
            "*401*8001*1234*0",
            "*401*8001*1234*99999",
            "*403*8001*1234",
            "*402*8001*1234*5",
            "**",
        ] {
            assert_eq!(feature_code(bad), None, "{bad}");
        }
    }
}
