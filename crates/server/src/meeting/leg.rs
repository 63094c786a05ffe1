//! A leg is whatever carries a participant: today a SIP dialog (a phone, a trunk call); next a
//! WebRTC peer, a recorder or a stream. Signalling creates it and hands it to an owner — a
//! room's meeting, or the access menu — which alone decides what happens to it and alone
//! tells the media plane about it. Signalling keeps only the way back to the owner
//! ([`LegSignals`]), so "which room is this call in" is written in one place: the owner.

use crate::media::{Endpoint, MemberId};
use conclave_conference::Role;
use conclave_conference::live::JoinedVia;
use conclave_media::mixer::MemberConfig;
use conclave_media::video::sip_leg::VideoLegConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A leg's id: unique in the process; the media plane knows the member by it.
pub type LegId = MemberId;

static NEXT_LEG: AtomicU64 = AtomicU64::new(1);

pub fn next_leg_id() -> LegId {
    NEXT_LEG.fetch_add(1, Ordering::Relaxed)
}

/// What carries the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegKind {
    /// A SIP dialog, by the SIP task's call id.
    Sip { call: u64 },
    /// A browser over WebRTC, by its session's id.
    Browser { session: u64 },
}

impl LegKind {
    /// The call id the console and the API show (the SIP call's, the browser session's).
    pub fn call_id(&self) -> u64 {
        match self {
            LegKind::Sip { call } => *call,
            LegKind::Browser { session } => *session,
        }
    }
}

/// Who a leg brings, as signalling and the directory tell.
#[derive(Debug, Clone)]
pub struct Party {
    /// The name the roster shows (a registered user's display name, else the caller's).
    pub name: String,
    pub number: String,
    /// Where the signalling came from (wrong PINs count against it).
    pub ip: Option<IpAddr>,
    /// Their role: the template's, the room's members', else participant.
    pub role: Role,
}

/// A leg's negotiated media.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub config: MemberConfig,
    /// The far end sends nothing (hold, recvonly, inactive): its media timeout is the hold's.
    pub on_hold: bool,
    /// A SIP video terminal's video, when negotiated (on the leg's `video_endpoint`).
    pub video: Option<VideoLegConfig>,
}

/// How a leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// Hung up (either side), or never established for another reason.
    Hangup,
    Busy,
    NoAnswer,
    Rejected,
    Failed,
}

/// What signalling tells a leg's owner.
#[derive(Debug, Clone)]
pub enum LegEvent {
    /// The far end rings (a call the meeting placed).
    Ringing,
    /// Media negotiated (an answer) or renegotiated (re-INVITE, hold, resume).
    Media(Box<MemberSpec>),
    /// A keypad digit that came in signalling (SIP INFO).
    Digit(char),
    /// The terminal lost the composed picture (SIP INFO picture_fast_update).
    PictureUpdate,
    /// A call that began audio-only offered video (re-INVITE): the owner may give it a
    /// video port ([`LegControl::offer_video`]).
    VideoOffered,
    Ended(EndCause),
}

/// How an owner acts on the signalling of a leg.
pub trait LegControl: Send + Sync {
    fn hang_up(&self, kind: &LegKind);
    /// The meeting took the leg in as this member (a browser's page is told).
    fn admitted(&self, _kind: &LegKind, _member: conclave_conference::live::MemberId) {}
    /// The meeting turned the leg away, for this reason (before hanging up).
    fn refused(&self, _kind: &LegKind, _reason: &conclave_conference::live::Refused) {}
    /// Offers the far end video on this port of the leg's own (after it offered video).
    fn offer_video(&self, _kind: &LegKind, _port: u16) {}
}

/// Where a leg's events go: its owner's inbox.
pub type Outlet = Arc<dyn Fn(LegId, LegEvent) + Send + Sync>;

/// The way back from signalling to a leg's current owner. Emitting and handing over hold
/// the same lock, so an owner that takes a leg over sees its events after the leg itself.
#[derive(Clone, Default)]
pub struct LegSignals(Arc<Mutex<Option<Outlet>>>);

impl LegSignals {
    pub fn emit(&self, leg: LegId, event: LegEvent) {
        let outlet = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match outlet.as_ref() {
            Some(outlet) => outlet(leg, event),
            None => tracing::debug!(leg, ?event, "a leg event with no owner"),
        }
    }

    /// Points the leg at a new owner; `then` runs under the same lock (it delivers the leg
    /// itself, so nothing overtakes it).
    pub fn hand_over(&self, outlet: Outlet, then: impl FnOnce()) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(outlet);
        then();
    }
}

/// A participant's leg, owned by exactly one owner at a time.
pub struct Leg {
    pub id: LegId,
    pub kind: LegKind,
    pub who: Party,
    pub via: JoinedVia,
    /// Negotiated media; `None` for a call the meeting placed that has not been answered.
    pub media: Option<MemberSpec>,
    /// Where its media arrives.
    pub endpoint: Endpoint,
    /// Where its video arrives, when its call may carry video (ports of its own).
    pub video_endpoint: Option<Endpoint>,
    /// Admission said it must key in the room's PIN first.
    pub needs_pin: bool,
    /// For a call the meeting placed: the invitation it answers.
    pub invitation: Option<u32>,
    /// Said before the welcome (a room made from the keypad: "your room is ready").
    pub greeting: Option<crate::prompts::Prompt>,
    pub signals: LegSignals,
    pub control: Arc<dyn LegControl>,
    /// A browser's WebRTC session, until its media joins the mix.
    pub webrtc: Option<Box<conclave_media::webrtc::WebRtcPeer>>,
    /// Its place among the callers waiting in a lobby or a menu (released when it leaves).
    pub waiting: Option<WaitingTicket>,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("who", &self.who)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Leg {
    pub fn hang_up(&self) {
        self.control.hang_up(&self.kind);
    }
}

/// Bounds on callers who are not in a meeting yet (keying in a PIN, or in the access
/// menu): so many per source address and so many in all. Cheap to clone.
#[derive(Clone)]
pub struct WaitingRoom {
    inner: Arc<Mutex<Waiting>>,
    per_address: usize,
    total: usize,
}

#[derive(Default)]
struct Waiting {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// A place in the [`WaitingRoom`]; given back when dropped.
pub struct WaitingTicket {
    room: WaitingRoom,
    ip: IpAddr,
}

impl WaitingRoom {
    pub fn new(per_address: usize, total: usize) -> WaitingRoom {
        WaitingRoom {
            inner: Arc::default(),
            per_address,
            total,
        }
    }

    /// A place for a caller from `ip`, or `None` when its address or everyone is at the limit.
    pub fn enter(&self, ip: IpAddr) -> Option<WaitingTicket> {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let here = w.by_address.get(&ip).copied().unwrap_or(0);
        if here >= self.per_address || w.total >= self.total {
            metrics::counter!("conclave_waiting_refused_total").increment(1);
            return None;
        }
        *w.by_address.entry(ip).or_default() += 1;
        w.total += 1;
        metrics::gauge!("conclave_waiting_callers").set(w.total as f64);
        Some(WaitingTicket {
            room: self.clone(),
            ip,
        })
    }
}

impl Drop for WaitingTicket {
    fn drop(&mut self) {
        let mut w = self.room.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = w.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                w.by_address.remove(&self.ip);
            }
        }
        w.total = w.total.saturating_sub(1);
        metrics::gauge!("conclave_waiting_callers").set(w.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_room_is_bounded_per_address_and_in_all() {
        let room = WaitingRoom::new(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t1 = room.enter(a).expect("first");
        let _t2 = room.enter(a).expect("second");
        assert!(room.enter(a).is_none(), "two per address");
        let _t3 = room.enter(b).expect("another address");
        assert!(room.enter(b).is_none(), "three in all");
        drop(t1);
        assert!(room.enter(b).is_some(), "a place given back is taken again");
    }
}
