//! Calls, as signalling sees them. An INVITE's number is looked up in the directory
//! ([`admit`]: a room, the access number, a feature code, another user's extension); the call is answered with the
//! address of the media plane that will carry it; once media is negotiated its leg is handed
//! to its owner — the room's meeting or the access menu — which decides everything else.
//! A call the meeting places is a leg of that meeting from the start. Afterwards this side
//! only passes signalling on (re-INVITEs, INFO digits, the end) through the leg's signals.

use crate::media::Endpoint;
use crate::meeting::access::{self, MenuMode};
use crate::meeting::{
    DIRECT_CALL_ROOM, DirectCall, DirectCallState, EndCause, Leg, LegControl, LegEvent, LegId,
    LegKind, LegSignals, Meetings, MemberSpec, Party, WaitingTicket,
};
use crate::prompts::Prompt;
use conclave_conference::Role;
use conclave_conference::live::JoinedVia;
use conclave_media::codec::CodecKind;
use conclave_media::mixer::MemberConfig;
use conclave_media::srtp::{SrtpKey, SrtpSuite};
use conclave_media::video::sip_leg::VideoLegConfig;
use conclave_sip::offer_answer::{Codec, Direction, LocalMedia, NegotiatedMedia, SrtpPolicy};
use conclave_sip::ua::{CallId, Dial, EndReason, UserAgent};
use conclave_store::model::{Room, User, UserStatus};
use conclave_store::{Store, new_id, now_ms, repo};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What the directory says about a dialled number.
pub enum Admission {
    /// The access number: a voice menu asks which room.
    Menu {
        domain: String,
    },
    NoSuchRoom,
    /// The From extension is a frozen account's: refused.
    Frozen,
    /// Too many wrong PINs from this address lately.
    Blocked,
    /// Answer, say this, hang up (a feature code's outcome).
    Announce(Prompt),
    /// In a cluster, the room's meeting is on another node: 302 to it (`Contact`).
    Elsewhere {
        contact: String,
    },
    /// Where the room's meeting is held cannot be told now: 503.
    Unavailable,
    /// Into the room's meeting; with a PIN to key in first when the room has one.
    Room {
        room: Box<Room>,
        needs_pin: bool,
        /// Their role, when the directory knows it (else the caller's).
        role: Option<Role>,
        /// The registered user calling, by name, for the roster.
        name: Option<String>,
        /// Said before the welcome.
        greeting: Option<Prompt>,
        /// In a cluster, a room held by another node whose meeting is full here: the caller
        /// joins this node's cascade of it, linked to the home at this SIP URI.
        satellite_of: Option<String>,
    },
    /// A registered user dialled another user's extension: a direct call, in a room made up
    /// for it (the SIP task checks the callee is registered, then makes it a `Room`).
    Extension {
        room: Box<Room>,
        call: DirectCall,
    },
}

/// Who calls: the From header's display name and user, as signalling saw them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub number: String,
    /// Where the call came from (wrong PINs are counted per address).
    pub ip: Option<IpAddr>,
    /// The role they get in the meeting.
    pub role: Role,
    /// The tenants where the From extension is registered from the call's flow.
    pub registered_in: Vec<String>,
    /// A cascade's proof that another node of the cluster calls (`X-Conclave-Cascade`).
    pub cascade_token: Option<String>,
    /// The call came by a home's 302 asking for a cascade (`;conclave-cascade`).
    pub cascade_asked: bool,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            name: String::new(),
            number: String::new(),
            ip: None,
            role: Role::Participant,
            registered_in: Vec::new(),
            cascade_token: None,
            cascade_asked: false,
        }
    }
}

/// Looks the dialled number up and runs the keypad's feature codes (join, create, delete a
/// room). A meeting decides itself whether it takes the caller (locked, full).
pub async fn admit(meetings: &Meetings, number: &str, domain: &str, caller: &Caller) -> Admission {
    let store = meetings.store();
    let from = caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let (number, keyed_pin) = match feature_code(number) {
        Some(Feature::Join { room, pin }) => (room, Some(pin)),
        Some(Feature::Create { room, pin, minutes }) => {
            let admission = create_room(store, domain, caller, room, pin, minutes).await;
            // a new room: its home is here (in a cluster)
            if let Admission::Room { room, .. } = &admission
                && meetings
                    .claim(room, crate::cluster::Placement::Here)
                    .await
                    .is_err()
            {
                return Admission::Unavailable;
            }
            return admission;
        }
        Some(Feature::Delete { room, pin }) => {
            return delete_room(meetings, domain, caller, room, pin).await;
        }
        None => (number.to_owned(), None),
    };
    let Some(room) = crate::rooms::find_dialled(store, &number, domain).await else {
        if keyed_pin.is_none()
            && let Some(direct) = direct_call(store, &number, domain, caller).await
        {
            return direct;
        }
        return Admission::NoSuchRoom;
    };
    if frozen_extension(store, &room.tenant_id, &caller.number).await {
        return Admission::Frozen;
    }
    // A cascade from another node of the cluster: a member of the home's meeting, with
    // nothing to key in.
    if let Some(token) = &caller.cascade_token {
        return match meetings.cluster() {
            Some(cluster) if cluster.link_is_genuine(token, &room.id) => {
                match meetings.claim(&room, crate::cluster::Placement::Here).await {
                    Ok(()) => Admission::Room {
                        room: Box::new(room),
                        needs_pin: false,
                        role: Some(Role::Participant),
                        name: Some(caller.name.clone()),
                        greeting: None,
                        satellite_of: None,
                    },
                    Err(_) => Admission::Unavailable,
                }
            }
            _ => Admission::Blocked,
        };
    }
    // In a cluster the call goes where the room's meeting is (or starts it here); beyond
    // the room's size on one node, to a cascade of it on another.
    let mut satellite_of = None;
    // (one sent here to be a cascade only ever cascades from the room's real home)
    let placement = if caller.cascade_asked {
        crate::cluster::Placement::Here
    } else {
        crate::cluster::Placement::Balanced
    };
    match meetings.claim(&room, placement).await {
        Ok(()) => {
            if let Some(contact) = crate::cluster::cascade::overflow(meetings, &room).await {
                return Admission::Elsewhere { contact };
            }
        }
        Err(crate::cluster::NotHere::Elsewhere { sip_uri, .. }) if caller.cascade_asked => {
            satellite_of = Some(sip_uri);
        }
        Err(crate::cluster::NotHere::Elsewhere { sip_uri, .. }) => {
            return Admission::Elsewhere {
                contact: crate::cluster::contact_for(&sip_uri, &number),
            };
        }
        Err(crate::cluster::NotHere::Unavailable(why)) => {
            tracing::warn!(
                room = room.number,
                why,
                "a call refused: the room's home is unknown"
            );
            return Admission::Unavailable;
        }
        Err(crate::cluster::NotHere::Draining) => return Admission::Unavailable,
    }
    // A live meeting asks for the PIN it started with (a scheduled meeting's own PIN, or the
    // room's as it was then): the lobby checks that one too.
    let room = match meetings.live_room(&room.id) {
        Some(live) => conclave_store::model::Room {
            pin: live.pin,
            has_pin: live.has_pin,
            ..room
        },
        None => room,
    };
    if room.pin.is_some() && meetings.pins().source_blocked(from).is_some() {
        return Admission::Blocked;
    }
    // A PIN dialled with the feature code is checked now, like one keyed in later: under the
    // room's limiter.
    let needs_pin = match (&room.pin, keyed_pin) {
        (None, _) => false,
        (Some(pin), Some(keyed)) => {
            let target = crate::limiter::Target::Room(room.id.clone());
            let Ok(permit) = meetings.pins().attempt(target, from) else {
                return Admission::Blocked;
            };
            if *pin != keyed {
                permit.failed();
                return Admission::Blocked;
            }
            permit.succeeded();
            false
        }
        (Some(_), None) => true,
    };
    // Caller ID: a registered user (or a known number) who is one of the room's members
    // joins with their role — and without the PIN when the room allows it.
    let user = calling_user(store, domain, caller)
        .await
        .filter(|u| u.tenant_id == room.tenant_id);
    let role = member_role(store, user.as_ref(), caller, &room).await;
    let needs_pin = needs_pin && !(role.is_some() && room.members_skip_pin);
    Admission::Room {
        room: Box::new(room),
        needs_pin,
        role,
        name: user.map(|u| u.display_name),
        greeting: None,
        satellite_of,
    }
}

/// A registered user calling another (active) user's extension in their tenant: a direct
/// call. Only registered phones may ring extensions (an anonymous caller cannot reach a
/// person's desk phone, as rooms are reachable).
async fn direct_call(
    store: &Store,
    number: &str,
    domain: &str,
    caller: &Caller,
) -> Option<Admission> {
    let from = calling_user(store, domain, caller).await?;
    let mut conn = store.conn().await.ok()?;
    let callee = repo::users::get_by_extension(&mut conn, &from.tenant_id, number)
        .await
        .ok()
        .flatten()
        .filter(|u| u.status != UserStatus::Frozen && u.id != from.id)?;
    let now = now_ms();
    let room = Room {
        id: format!("{DIRECT_CALL_ROOM}{}", new_id()),
        tenant_id: from.tenant_id.clone(),
        // the callee's phone shows the room's name and number as the caller's: the caller's
        number: caller.number.clone(),
        name: from.display_name.clone(),
        pin: None,
        has_pin: false,
        capacity: 2,
        max_duration_minutes: None,
        language: callee
            .language
            .or(from.language)
            .unwrap_or(conclave_store::model::Language::English),
        // the callee runs the call from the console (hangs up, makes it a meeting)
        creator_id: Some(callee.id.clone()),
        owner_id: Some(callee.id.clone()),
        entry_chime: false,
        // the caller's phone rings on our 180 until the callee answers; then there are two
        alone_music: false,
        members_skip_pin: false,
        auto_record: false,
        release_when_empty: false,
        created_at: now,
        updated_at: now,
    };
    Some(Admission::Extension {
        room: Box::new(room),
        call: DirectCall {
            caller_name: from.display_name,
            caller_number: caller.number.clone(),
            caller_user_id: from.id,
            callee_name: callee.display_name,
            callee_number: number.to_owned(),
            callee_user_id: callee.id,
            state: DirectCallState::Ringing,
        },
    })
}

/// The caller's role in the room, when caller ID tells who they are: the registered user
/// of the From extension, else the From number as the directory knows it.
async fn member_role(
    store: &Store,
    user: Option<&User>,
    caller: &Caller,
    room: &Room,
) -> Option<Role> {
    let mut conn = store.conn().await.ok()?;
    let number = (!caller.number.is_empty()).then_some(caller.number.as_str());
    repo::rooms::member_role(&mut conn, &room.id, user.map(|u| u.id.as_str()), number)
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

/// Whether the From extension is that of a frozen account of the tenant: such a call is
/// refused even from an unregistered flow (a frozen account has no registrations).
pub(crate) async fn frozen_extension(store: &Store, tenant_id: &str, number: &str) -> bool {
    if number.is_empty() {
        return false;
    }
    let Ok(mut conn) = store.conn().await else {
        return false;
    };
    matches!(
        repo::users::get_by_extension(&mut conn, tenant_id, number).await,
        Ok(Some(u)) if u.status == UserStatus::Frozen
    )
}

/// The registered user calling: the From extension registered from the call's flow, in the
/// tenant of the dialled domain (or the only tenant where it is registered).
async fn calling_user(store: &Store, domain: &str, caller: &Caller) -> Option<User> {
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
        .filter(|u| u.status != UserStatus::Frozen)
}

fn author<'a>(user: &'a User, caller: &Caller) -> crate::rooms::Author<'a> {
    crate::rooms::Author {
        user_id: Some(&user.id),
        name: &user.username,
        source: caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        api_key_id: None,
    }
}

/// `*401*`: creates the room (through the same service as the API) and takes its creator in,
/// as its owner, telling them the room is ready.
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
    let now = now_ms();
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
        auto_record: false,
        // A room made on the phone is for one meeting.
        release_when_empty: true,
        created_at: now,
        updated_at: now,
    };
    if let Err(err) = crate::rooms::create(store, &author(&user, caller), &room).await {
        tracing::info!(%err, "keypad room not created");
        return refused;
    }
    tracing::info!(
        room = room.number,
        user = user.username,
        "room created from the keypad"
    );
    Admission::Room {
        room: Box::new(room),
        needs_pin: false,
        role: Some(Role::Owner),
        name: Some(user.display_name),
        greeting: Some(Prompt::RoomCreated),
        satellite_of: None,
    }
}

/// `*402*`: deletes the room (its creator only, when it has one). A live meeting keeps its
/// members; nobody new can find the room.
async fn delete_room(
    meetings: &Meetings,
    domain: &str,
    caller: &Caller,
    number: String,
    pin: String,
) -> Admission {
    let store = meetings.store();
    let refused = Admission::Announce(Prompt::NotAllowed);
    let from = caller.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if meetings.pins().source_blocked(from).is_some() {
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
    let target = crate::limiter::Target::Room(room.id.clone());
    let Ok(permit) = meetings.pins().attempt(target, from) else {
        return Admission::Blocked;
    };
    if room.pin.as_deref() != Some(pin.as_str()) {
        permit.failed();
        return refused;
    }
    permit.succeeded();
    if room.creator_id.as_ref().is_some_and(|c| *c != user.id) {
        crate::rooms::denied(&mut conn, &author(&user, caller), "deleteRoom", &room).await;
        return refused;
    }
    drop(conn);
    if let Err(err) = crate::rooms::delete(store, &author(&user, caller), &room).await {
        tracing::info!(%err, "keypad room not deleted");
        return refused;
    }
    tracing::info!(
        room = room.number,
        user = user.username,
        "room deleted from the keypad"
    );
    Admission::Announce(Prompt::RoomDeleted)
}

/// What the media engine needs from the negotiation; the signalling's source is an address
/// the member is known by (its media may come from there, behind NAT).
pub fn member_spec(media: &NegotiatedMedia, signalling: Option<IpAddr>) -> Option<MemberSpec> {
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
    config.rtcp_mux = media.rtcp_mux;
    config.rtcp_remote = media.remote_rtcp;
    config.source_ips = signalling.into_iter().collect();
    if let Some(keys) = &media.srtp {
        let suite = SrtpSuite::from_sdes_name(&keys.suite)?;
        let local = SrtpKey::from_material(suite, &keys.local_key).ok()?;
        let remote = SrtpKey::from_material(suite, &keys.remote_key).ok()?;
        config.srtp = Some((local, remote));
    }
    // What we may do says what they do: they send nothing when we may only send, or nothing.
    let on_hold = media.remote.is_none()
        || matches!(media.direction, Direction::SendOnly | Direction::Inactive);
    let video = media.video.as_ref().map(|v| VideoLegConfig {
        payload_type: v.payload_type,
        packetization_mode: v.packetization_mode,
        size: v.picture_size(),
        remote: v.remote,
        known_ips: signalling.into_iter().collect(),
        remote_rtcp: v.remote_rtcp,
        rtcp_mux: v.rtcp_mux,
        sends: v.direction.sends(),
        receives: v.direction.receives(),
        ssrc: rand::random(),
        initial_seq: rand::random(),
        initial_ts: rand::random(),
    });
    Some(MemberSpec {
        config,
        on_hold,
        video,
    })
}

/// Where a call answered by us goes once its media is negotiated.
enum Destination {
    /// The room's meeting; in a cluster perhaps this node's cascade of it (linked to the
    /// home at this SIP URI).
    Room(Box<Room>, Option<String>),
    Menu(MenuMode),
}

/// A call whose leg is not handed over yet (answered, media not negotiated: a late offer).
struct Pending {
    endpoint: Endpoint,
    video_endpoint: Option<Endpoint>,
    who: Party,
    destination: Destination,
    needs_pin: bool,
    greeting: Option<Prompt>,
    waiting: Option<WaitingTicket>,
}

struct SipCall {
    leg: LegId,
    signals: LegSignals,
    /// Where its signalling comes from.
    source: Option<IpAddr>,
    pending: Option<Pending>,
    /// A call to a number: its place under the tenant's limit, given back when it ends.
    _outbound: Option<crate::outbound::Permit>,
}

pub struct Calls {
    meetings: Meetings,
    control: Arc<dyn LegControl>,
    calls: HashMap<CallId, SipCall>,
}

impl Calls {
    pub fn new(meetings: Meetings, control: Arc<dyn LegControl>) -> Self {
        Calls {
            meetings,
            control,
            calls: HashMap::new(),
        }
    }

    /// Calls in progress (answered or being answered, placed or being placed).
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// The directory answered: answer the call with the media plane's address, or refuse.
    pub fn admitted(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        call: CallId,
        caller: Caller,
        admission: Admission,
        srtp: SrtpPolicy,
    ) {
        let leg = crate::meeting::leg::next_leg_id();
        let ip = caller.ip;
        let mut who = Party {
            name: caller.name.clone(),
            number: caller.number.clone(),
            ip,
            role: caller.role,
        };
        let media = self.meetings.media();
        let (destination, endpoint, needs_pin, greeting) = match admission {
            Admission::NoSuchRoom => {
                let _ = ua.reject(now, call, 404, Vec::new());
                return;
            }
            Admission::Blocked | Admission::Frozen => {
                let _ = ua.reject(now, call, 403, Vec::new());
                return;
            }
            Admission::Extension { .. } => {
                // the SIP task makes a direct call a room first; one that slipped through
                // has nowhere to go
                tracing::error!(?call, "a direct call reached admission unresolved");
                let _ = ua.reject(now, call, 500, Vec::new());
                return;
            }
            Admission::Elsewhere { contact } => {
                metrics::counter!("conclave_cluster_redirects_total").increment(1);
                let contact = vec![(conclave_sip::message::HeaderName::Contact, contact)];
                let _ = ua.reject(now, call, 302, contact);
                return;
            }
            Admission::Unavailable => {
                let retry = vec![(
                    conclave_sip::message::HeaderName::RetryAfter,
                    "5".to_owned(),
                )];
                let _ = ua.reject(now, call, 503, retry);
                return;
            }
            Admission::Menu { domain } => (
                Destination::Menu(MenuMode::Access { domain }),
                media.room(&access::media_room_name(leg)).endpoint(true),
                false,
                None,
            ),
            Admission::Announce(prompt) => (
                Destination::Menu(MenuMode::Announce(prompt)),
                media.room(&access::media_room_name(leg)).endpoint(true),
                false,
                None,
            ),
            Admission::Room {
                room,
                needs_pin,
                role,
                name,
                greeting,
                satellite_of,
            } => {
                who.role = role.unwrap_or(who.role);
                if let Some(name) = name {
                    who.name = name;
                }
                let endpoint = media.room(&room.id).endpoint(false);
                (
                    Destination::Room(room, satellite_of),
                    endpoint,
                    needs_pin,
                    greeting,
                )
            }
        };
        // Callers who are not in a meeting yet (PIN, menu) are bounded per address and in all.
        let waiting = if needs_pin || matches!(destination, Destination::Menu(_)) {
            let Some(ticket) = self
                .meetings
                .waiting()
                .enter(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])))
            else {
                tracing::info!(?ip, "too many callers waiting: refused");
                let retry = vec![(
                    conclave_sip::message::HeaderName::RetryAfter,
                    "30".to_owned(),
                )];
                let _ = ua.reject(now, call, 503, retry);
                return;
            };
            Some(ticket)
        } else {
            None
        };
        let endpoint = match endpoint {
            Ok(endpoint) => endpoint,
            Err(err) => {
                tracing::warn!(%err, "no media port for a call");
                let _ = ua.reject(now, call, 503, Vec::new());
                return;
            }
        };
        let mut local = local_media(&endpoint);
        local.srtp_policy = Some(srtp);
        // a video terminal's camera and picture get ports of their own (only into a room:
        // the menu and announcements are audio)
        let video_endpoint = (matches!(destination, Destination::Room(..))
            && ua.offers_video(call))
        .then(|| endpoint.video_endpoint())
        .and_then(|v| {
            v.map_err(|err| tracing::warn!(%err, "no video port: audio only"))
                .ok()
        });
        local.video_port = video_endpoint.as_ref().map(|v| v.addr.port());
        let answered = ua.answer(now, call, local);
        self.calls.insert(
            call,
            SipCall {
                leg,
                signals: LegSignals::default(),
                source: ip,
                pending: Some(Pending {
                    endpoint,
                    video_endpoint,
                    who,
                    destination,
                    needs_pin,
                    greeting,
                    waiting,
                }),
                _outbound: None,
            },
        );
        match answered {
            Ok(Some(media)) => self.media_changed(call, &media),
            Ok(None) => {} // late offer: the media comes with the ACK
            Err(err) => {
                tracing::info!(?err, "call not answered");
                self.calls.remove(&call);
            }
        }
    }

    /// Calls someone into a room's meeting: the call is a leg of the meeting from now on,
    /// and joins when answered. `dial` builds the INVITE around our media description, which
    /// offers video too when `video` (a registered terminal may have a camera; a trunk's
    /// number or a cascade's link has none).
    #[allow(clippy::too_many_arguments)]
    pub fn dial(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        room: &Room,
        callee: Party,
        invitation: Option<u32>,
        permit: Option<crate::outbound::Permit>,
        video: bool,
        dial: impl FnOnce(LocalMedia) -> Dial,
    ) -> Result<CallId, String> {
        let endpoint = self
            .meetings
            .media()
            .room(&room.id)
            .endpoint(false)
            .map_err(|e| format!("no media port: {e}"))?;
        let video_endpoint = video.then(|| endpoint.video_endpoint()).and_then(|v| {
            v.map_err(|err| tracing::warn!(%err, "no video port: audio only"))
                .ok()
        });
        let mut local = local_media(&endpoint);
        local.video_port = video_endpoint.as_ref().map(|v| v.addr.port());
        let call = ua
            .dial(now, dial(local))
            .map_err(|e| format!("cannot place the call: {e:?}"))?;
        let id = crate::meeting::leg::next_leg_id();
        let signals = LegSignals::default();
        let source = callee.ip;
        let leg = Leg {
            id,
            kind: LegKind::Sip { call: call.0 },
            who: callee,
            via: JoinedVia::DialOut,
            media: None,
            endpoint,
            video_endpoint,
            needs_pin: false,
            invitation,
            greeting: None,
            signals: signals.clone(),
            control: self.control.clone(),
            waiting: None,
            webrtc: None,
        };
        self.calls.insert(
            call,
            SipCall {
                leg: id,
                signals,
                source,
                pending: None,
                _outbound: permit,
            },
        );
        self.meetings.arrive(room, leg);
        metrics::counter!("conclave_calls_dialed_total").increment(1);
        Ok(call)
    }

    /// Media negotiated or renegotiated: the leg goes to its owner, or its owner hears of it.
    pub fn media_changed(&mut self, call: CallId, media: &NegotiatedMedia) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(spec) = member_spec(media, c.source) else {
            tracing::warn!(?call, "negotiated media the engine cannot use");
            return;
        };
        let Some(p) = c.pending.take() else {
            c.signals.emit(c.leg, LegEvent::Media(Box::new(spec)));
            return;
        };
        let leg = Leg {
            id: c.leg,
            kind: LegKind::Sip { call: call.0 },
            who: p.who,
            via: JoinedVia::DialIn,
            media: Some(spec),
            endpoint: p.endpoint,
            video_endpoint: p.video_endpoint,
            needs_pin: p.needs_pin,
            invitation: None,
            greeting: p.greeting,
            signals: c.signals.clone(),
            control: self.control.clone(),
            waiting: p.waiting,
            webrtc: None,
        };
        match p.destination {
            Destination::Room(room, None) => {
                metrics::counter!("conclave_calls_joined_total").increment(1);
                self.meetings.arrive(&room, leg);
            }
            Destination::Room(room, Some(home)) => {
                metrics::counter!("conclave_calls_joined_total").increment(1);
                self.meetings.arrive_cascaded(&room, leg, home);
            }
            Destination::Menu(mode) => access::spawn(&self.meetings, leg, mode),
        }
    }

    /// A call the meeting placed rings.
    pub fn ringing(&self, call: CallId) {
        if let Some(c) = self.calls.get(&call) {
            c.signals.emit(c.leg, LegEvent::Ringing);
        }
    }

    /// A terminal asks for a keyframe of the composed picture (SIP INFO).
    pub fn picture_update(&self, call: CallId) {
        if let Some(c) = self.calls.get(&call)
            && c.pending.is_none()
        {
            c.signals.emit(c.leg, LegEvent::PictureUpdate);
        }
    }

    /// The terminal of a call in a meeting offered video by re-INVITE; it began audio-only.
    pub fn video_offered(&self, call: CallId) {
        if let Some(c) = self.calls.get(&call)
            && c.pending.is_none()
        {
            c.signals.emit(c.leg, LegEvent::VideoOffered);
        }
    }

    /// A keypad digit in SIP INFO.
    pub fn digit(&self, call: CallId, digit: char) {
        if let Some(c) = self.calls.get(&call)
            && c.pending.is_none()
        {
            c.signals.emit(c.leg, LegEvent::Digit(digit));
        }
    }

    pub fn ended(&mut self, call: CallId, reason: EndReason) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        if c.pending.is_some() {
            // never handed over: its media port and waiting place go with it
            return;
        }
        let cause = match reason {
            EndReason::Busy => EndCause::Busy,
            EndReason::NoAnswer => EndCause::NoAnswer,
            EndReason::Rejected(_) => EndCause::Rejected,
            EndReason::Timeout | EndReason::MediaFailure => EndCause::Failed,
            _ => EndCause::Hangup,
        };
        c.signals.emit(c.leg, LegEvent::Ended(cause));
    }
}

/// Our SDP's media line: the endpoint's address and port.
fn local_media(endpoint: &Endpoint) -> LocalMedia {
    LocalMedia {
        video_port: None,
        addr: endpoint.addr.ip(),
        port: endpoint.addr.port(),
        session_id: rand::random::<u32>().into(),
        session_version: 1,
        srtp_key: Some(rand::random()),
        srtp_policy: None,
        direction: Direction::SendRecv,
    }
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
