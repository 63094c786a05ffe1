//! Calls into rooms: the dialled number names a room; the call is answered with our SDP, its
//! audio joins the room's mix on the media thread, and the caller joins the room's live
//! meeting. (Rooms with a PIN wait for the voice menu that asks for it.)

use crate::live::{CallControl, CallState, Conferences, Newcomer};
use crate::media::{Command, MediaHandle};
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
use std::time::Instant;
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
    NoSuchRoom,
    /// Too many wrong PINs from this address lately.
    Blocked,
    /// Come in; with a PIN to key in first when the room has one.
    Admitted {
        room: Box<Room>,
        needs_pin: bool,
    },
}

/// Looks the room up and asks its live meeting (if any) whether newcomers may join.
pub async fn admit(
    store: &Store,
    conferences: &Conferences,
    number: &str,
    domain: &str,
    from: IpAddr,
) -> Admission {
    let (number, keyed_pin) = match feature_join(number) {
        Some((room, pin)) => (room, Some(pin)),
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
    // A locked or full meeting turns the caller away with a prompt once answered (the
    // meeting decides, when they join).
    Admission::Admitted {
        room: Box::new(room),
        needs_pin,
    }
}

/// `*400*<room>*<PIN>` dials a room and its PIN in one go (`*` may arrive as `%2A`).
pub fn feature_join(dialled: &str) -> Option<(String, String)> {
    let dialled = dialled.replace("%2A", "*").replace("%2a", "*");
    let rest = dialled.strip_prefix("*400*")?;
    let (room, pin) = rest.split_once('*')?;
    let pin = pin.trim_end_matches('#');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(room) && digits(pin)).then(|| (room.to_owned(), pin.to_owned()))
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
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            name: String::new(),
            number: String::new(),
            ip: None,
            role: Role::Participant,
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

/// A call's media leg: its RTP socket and the task that reads it.
struct Leg {
    socket: Arc<UdpSocket>,
    reader: Option<JoinHandle<()>>,
    room: Room,
    caller: Caller,
    needs_pin: bool,
    /// We called them (one-click start, invite) rather than they us.
    outgoing: bool,
    joined: bool,
}

pub struct Calls {
    media: MediaHandle,
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
    ) -> Self {
        Calls {
            media,
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
        let (room, needs_pin) = match admission {
            Admission::Admitted { room, needs_pin } => (*room, needs_pin),
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
        let Some(config) = member_config(media) else {
            tracing::warn!(?call, "negotiated media the engine cannot use");
            return;
        };
        if leg.joined {
            self.media.send(Command::Update {
                member: call.0,
                config: Box::new(config),
            });
            return;
        }
        leg.joined = true;
        self.media.send(Command::Join {
            room: leg.room.id.clone(),
            member: call.0,
            config: Box::new(config),
            socket: leg.socket.clone(),
        });
        leg.reader = spawn_reader(&leg.socket, call, self.media.clone());
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

    pub fn ended(&mut self, call: CallId, reason: EndReason) {
        if let Some(leg) = self.legs.remove(&call) {
            if let Some(reader) = leg.reader {
                reader.abort();
            }
            if leg.joined {
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
    #[test]
    fn feature_code_names_room_and_pin() {
        assert_eq!(
            super::feature_join("*400*8001*1234"),
            Some(("8001".into(), "1234".into()))
        );
        assert_eq!(
            super::feature_join("%2A400%2A8001%2A1234%23".replace("%23", "#").as_str()),
            Some(("8001".into(), "1234".into()))
        );
        assert_eq!(super::feature_join("*400*8001"), None);
        assert_eq!(super::feature_join("*401*8001*1234"), None);
        assert_eq!(super::feature_join("*400*80a1*1234"), None);
        assert_eq!(super::feature_join("8001"), None);
    }
}
