//! A sans-IO call layer ("user agent") on top of [`Endpoint`], [`Dialog`] and
//! [`offer_answer`]: incoming and outgoing calls with ringing, answer, CANCEL, BYE both
//! ways, hold/resume by re-INVITE, re-INVITE/UPDATE from the peer, late offers, INFO DTMF,
//! session timers, ring timeout and digest retry for trunks.
//!
//! It is optional: the runtime may drive [`Endpoint`] directly. With it, the runtime feeds
//! datagrams/messages and time to [`UserAgent`] (same shape as the endpoint: `handle_*`,
//! `poll_transmit`, `poll_event`, `poll_timeout`, `handle_timeout`) and gets
//! [`UaEvent`]s: call events, plus every request that is not about a call (REGISTER,
//! out-of-dialog OPTIONS, …) as [`UaEvent::Request`] to answer with
//! [`UserAgent::respond`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::auth::authorize_request;
use crate::dialog::{
    self, CallProgress, Dialog, OutgoingRequest, SessionTimer, SessionTimerAction,
    SessionTimerConfig, parse_dtmf_info,
};
use crate::headers::{NameAddr, Transport, Via};
use crate::message::{HeaderName, Message, Method, Request, Response, reason_phrase};
use crate::offer_answer::{
    self, Direction, LocalMedia, MediaConfig, NegotiatedMedia, NegotiationError,
};
use crate::sdp::SessionDescription;
use crate::transaction::{Config, Endpoint, Event, Peer, Transmit, TxError, TxId};
use crate::uri::{Host, Uri};

/// Methods we allow (Allow header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";

/// Identifies a call inside one [`UserAgent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// One of our listening addresses (what goes in Via and Contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    pub transport: Transport,
    pub host: Host,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct UaConfig {
    /// One per transport we listen on.
    pub locals: Vec<LocalAddress>,
    /// User part of our Contact.
    pub contact_user: String,
    pub media: MediaConfig,
    /// `None` disables session timers.
    pub session_timer: Option<SessionTimerConfig>,
    /// Outgoing calls not answered within this are cancelled ([`EndReason::NoAnswer`]).
    pub ring_timeout: Duration,
    pub user_agent: String,
    pub endpoint: Config,
}

impl Default for UaConfig {
    fn default() -> Self {
        UaConfig {
            locals: Vec::new(),
            contact_user: "conclave".into(),
            media: MediaConfig::default(),
            session_timer: Some(SessionTimerConfig::default()),
            ring_timeout: Duration::from_secs(60),
            user_agent: "Conclave".into(),
            endpoint: Config::default(),
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    LocalHangup,
    RemoteHangup,
    /// The caller cancelled before answer.
    Cancelled,
    /// Outgoing: ring timeout, 408 or 480.
    NoAnswer,
    /// Outgoing: 486/600.
    Busy,
    /// Outgoing: another final failure status; incoming: rejected by us with this status.
    Rejected(u16),
    /// No response at all (Timer B) or transport failure.
    Timeout,
    /// Media could not be negotiated (488).
    MediaFailure,
    /// Session timer expired without refresh.
    SessionExpired,
    /// Our 2xx was never acknowledged.
    AckTimeout,
}

/// Events from the call layer.
#[derive(Debug, Clone, PartialEq)]
pub enum UaEvent {
    /// A new incoming call: answer with [`UserAgent::answer`], [`UserAgent::ring`] or
    /// [`UserAgent::reject`] (e.g. 401 with a challenge from [`crate::auth`]).
    Incoming {
        call: CallId,
        request: Request,
        source: Peer,
    },
    /// Outgoing call progress (trying, ringing, early media…).
    Progress {
        call: CallId,
        progress: CallProgress,
        status: u16,
        /// Early media negotiated from a 18x with SDP.
        media: Option<NegotiatedMedia>,
    },
    /// Outgoing call answered.
    Answered {
        call: CallId,
        media: NegotiatedMedia,
    },
    /// Media changed: peer re-INVITE/UPDATE, answer to our hold/resume, or the answer in
    /// the ACK of a late-offer call.
    MediaUpdated {
        call: CallId,
        media: NegotiatedMedia,
    },
    /// The peer lost the video picture it receives and asks for a keyframe (INFO with
    /// `picture_fast_update`, RFC 5168: terminals that send no RTCP feedback).
    PictureUpdate { call: CallId },
    /// The peer's re-INVITE/UPDATE offers video on a call that has no video port (it began
    /// audio-only): it was answered without video; give the call a port with
    /// [`UserAgent::offer_video`] and the video is offered back by re-INVITE.
    VideoOffered { call: CallId },
    /// A keypad digit received in INFO.
    Dtmf {
        call: CallId,
        digit: char,
        duration_ms: Option<u32>,
    },
    /// The call is over; the id is no longer valid.
    Ended { call: CallId, reason: EndReason },
    /// A request that does not belong to a call (REGISTER, OPTIONS, MESSAGE…).
    Request {
        tx: TxId,
        request: Request,
        source: Peer,
    },
    /// Responses/timeouts for requests the application sent itself with
    /// [`UserAgent::endpoint`], and bad-message reports.
    Endpoint(Event),
}

/// Errors of call commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaError {
    UnknownCall,
    InvalidState,
    /// No local address configured for this transport.
    NoLocalAddress,
    Negotiation(NegotiationError),
    Transaction(TxError),
    /// The stack answered the request with this status itself and the call ended (e.g.
    /// 422 Session Interval Too Small).
    Refused(u16),
}

impl From<TxError> for UaError {
    fn from(e: TxError) -> Self {
        UaError::Transaction(e)
    }
}

impl std::fmt::Display for UaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for UaError {}

/// Parameters for an outgoing call.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Request-URI.
    pub target: Uri,
    /// Where to send (resolved by the runtime: trunk gateway or registered contact flow).
    pub dest: Peer,
    pub from: NameAddr,
    pub to: NameAddr,
    pub media: LocalMedia,
    /// Digest credentials for 401/407 (trunks).
    pub credentials: Option<(String, String)>,
    /// Extra headers (e.g. P-Asserted-Identity).
    pub headers: Vec<(HeaderName, String)>,
    /// This call's ring timeout (a trunk's); `None`: the stack's default.
    pub ring_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Incoming, not answered yet.
    Offered,
    /// Outgoing INVITE sent.
    Dialing,
    /// We sent CANCEL; the reason to report.
    Cancelling(EndReason),
    /// Incoming: 200 sent, waiting for ACK.
    Answered,
    Confirmed,
    /// BYE sent.
    Ending(EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxPurpose {
    InitialInvite,
    ReInvite,
    Bye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallTimer {
    Ring,
    Session,
}

#[derive(Debug)]
struct Call {
    state: State,
    outgoing: bool,
    /// Initial INVITE (incoming) or the last one we sent (outgoing, after auth retries).
    invite: Request,
    invite_tx: TxId,
    local_tag: String,
    dialog: Option<Dialog>,
    peer: Peer,
    local_addr: LocalAddress,
    media: Option<LocalMedia>,
    /// Our pending offer (outgoing INVITE, late-offer 200, hold re-INVITE).
    our_offer: Option<SessionDescription>,
    /// The last SDP we sent (for session refreshes and versioning).
    last_sdp: Option<SessionDescription>,
    negotiated: Option<NegotiatedMedia>,
    session: Option<SessionTimer>,
    ring_deadline: Option<Instant>,
    credentials: Option<(String, String)>,
    auth_tried: bool,
    /// Our re-INVITE in progress (glare detection).
    reinvite_tx: Option<TxId>,
    /// Incoming re-INVITE answered with an offer (peer re-INVITE without SDP).
    awaiting_ack_answer: bool,
    /// Transactions of this call (keys of `by_tx`).
    txs: Vec<TxId>,
    /// Hang-up requested before the ACK of our 2xx arrived (RFC 3261 §15: BYE waits).
    pending_bye: Option<EndReason>,
    /// Already retried after a 422.
    se_retried: bool,
}

/// The call layer.
#[derive(Debug)]
pub struct UserAgent {
    ep: Endpoint,
    cfg: UaConfig,
    calls: HashMap<CallId, Call>,
    /// (Call-ID, local tag) → call.
    by_dialog: HashMap<(String, String), CallId>,
    by_tx: HashMap<TxId, (CallId, TxPurpose)>,
    timers: BinaryHeap<Reverse<(Instant, CallId, u8)>>,
    events: VecDeque<UaEvent>,
    next_call: u64,
}

fn timer_code(t: CallTimer) -> u8 {
    match t {
        CallTimer::Ring => 0,
        CallTimer::Session => 1,
    }
}

impl UserAgent {
    pub fn new(cfg: UaConfig, seed: u64) -> UserAgent {
        UserAgent {
            ep: Endpoint::new(cfg.endpoint.clone(), seed),
            cfg,
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_tx: HashMap::new(),
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            next_call: 1,
        }
    }

    /// The underlying endpoint, for requests outside calls (registrar answers, OPTIONS
    /// pings, outbound REGISTER…).
    pub fn endpoint(&mut self) -> &mut Endpoint {
        &mut self.ep
    }

    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The negotiated media of a call, if any.
    pub fn media(&self, call: CallId) -> Option<&NegotiatedMedia> {
        self.calls.get(&call)?.negotiated.as_ref()
    }

    /// The caller's INVITE offers video (a section with a port), so a video port is worth
    /// setting aside before [`UserAgent::answer`]. A late offer (no SDP) says no.
    pub fn offers_video(&self, call: CallId) -> bool {
        self.calls.get(&call).is_some_and(|c| {
            !c.invite.body.is_empty()
                && SessionDescription::parse(&c.invite.body).is_ok_and(|sdp| {
                    sdp.media
                        .iter()
                        .any(|m| m.media.eq_ignore_ascii_case("video") && m.port != 0)
                })
        })
    }

    /// The dialog of a call, once established.
    pub fn dialog(&self, call: CallId) -> Option<&Dialog> {
        self.calls.get(&call)?.dialog.as_ref()
    }

    // ------------------------------------------------------------- I/O plumbing

    pub fn handle_datagram(&mut self, now: Instant, data: &[u8], source: Peer) {
        self.ep.handle_datagram(now, data, source);
        self.process(now);
    }

    pub fn handle_message(&mut self, now: Instant, msg: Message, source: Peer) {
        self.ep.handle_message(now, msg, source);
        self.process(now);
    }

    /// A connection the runtime opened to `addr` never came up: the requests waiting to go
    /// there fail now (a call ends with [`EndReason::Timeout`]).
    pub fn connection_failed(
        &mut self,
        now: Instant,
        addr: std::net::SocketAddr,
        transport: Transport,
    ) {
        self.ep.connection_failed(addr, transport);
        self.process(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, call, code))) = self.timers.peek().copied() {
            if self.timer_live(at, call, code) {
                break;
            }
            self.timers.pop();
        }
        let ours = self.timers.peek().map(|Reverse((at, _, _))| *at);
        match (ours, self.ep.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn timer_live(&self, at: Instant, call: CallId, code: u8) -> bool {
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        match code {
            0 => c.ring_deadline == Some(at),
            _ => c.session.map(|s| s.deadline().0) == Some(at),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.process(now);
        while let Some(Reverse((at, call, code))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_live(at, call, code) {
                continue;
            }
            if code == 0 {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.ring_deadline = None;
                }
                self.cancel_outgoing(now, call, EndReason::NoAnswer);
            } else {
                self.session_timer_fired(now, call);
            }
            self.process(now);
        }
    }

    fn arm(&mut self, at: Instant, call: CallId, t: CallTimer) {
        self.timers.push(Reverse((at, call, timer_code(t))));
    }

    fn arm_session(&mut self, call: CallId) {
        if let Some(st) = self.calls.get(&call).and_then(|c| c.session) {
            self.arm(st.deadline().0, call, CallTimer::Session);
        }
    }

    fn local_for(&self, t: Transport) -> Option<LocalAddress> {
        self.cfg.locals.iter().find(|l| l.transport == t).cloned()
    }

    fn contact_for(&self, l: &LocalAddress, sips: bool) -> Uri {
        contact_uri(&self.cfg.contact_user, l, sips)
    }

    fn new_via(&mut self, l: &LocalAddress) -> Via {
        let b = self.ep.new_branch();
        let mut v = Via::new(l.transport, l.host.clone(), Some(l.port), &b);
        v.params.set("rport", None);
        v
    }

    fn track(&mut self, tx: TxId, call: CallId, purpose: TxPurpose) {
        self.by_tx.insert(tx, (call, purpose));
        if let Some(c) = self.calls.get_mut(&call) {
            c.txs.retain(|t| self.by_tx.contains_key(t));
            c.txs.push(tx);
        }
    }

    fn end(&mut self, call: CallId, reason: EndReason) {
        if let Some(c) = self.calls.remove(&call) {
            self.by_dialog
                .remove(&(c.invite_call_id(), c.local_tag.clone()));
            for t in &c.txs {
                if self.by_tx.get(t).is_some_and(|(id, _)| *id == call) {
                    self.by_tx.remove(t);
                }
            }
            self.events.push_back(UaEvent::Ended { call, reason });
        }
    }

    // ------------------------------------------------------------- endpoint events

    fn process(&mut self, now: Instant) {
        while let Some(e) = self.ep.poll_event() {
            match e {
                Event::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(now, tx, request, source),
                Event::Ack {
                    tx: _,
                    request,
                    source: _,
                } => self.on_ack(now, request),
                Event::Cancelled { tx, .. } => {
                    if let Some((call, _)) = self.by_tx.get(&tx).copied() {
                        self.end(call, EndReason::Cancelled);
                    }
                }
                Event::Response {
                    tx,
                    response,
                    source,
                } => self.on_response(now, tx, response, source),
                Event::StrayResponse { response, source } => {
                    self.on_stray_response(now, response, source)
                }
                Event::Timeout { tx } => self.on_timeout(now, tx),
                Event::AckTimeout { tx } => {
                    if let Some((call, _)) = self.by_tx.get(&tx).copied() {
                        let reason = self
                            .calls
                            .get_mut(&call)
                            .and_then(|c| c.pending_bye.take())
                            .unwrap_or(EndReason::AckTimeout);
                        self.send_bye(now, call, reason);
                    }
                }
                Event::Terminated { tx } => {
                    if let Some((call, _)) = self.by_tx.remove(&tx) {
                        let Some(c) = self.calls.get_mut(&call) else {
                            continue;
                        };
                        if c.reinvite_tx == Some(tx) {
                            c.reinvite_tx = None;
                        }
                        // An incoming INVITE that ended unanswered (the endpoint's guard
                        // answered 408): the call is over.
                        if c.invite_tx == tx && c.state == State::Offered {
                            self.end(call, EndReason::Timeout);
                        }
                    } else {
                        self.events
                            .push_back(UaEvent::Endpoint(Event::Terminated { tx }));
                    }
                }
                other => self.events.push_back(UaEvent::Endpoint(other)),
            }
        }
    }

    fn on_request(&mut self, now: Instant, tx: TxId, req: Request, source: Peer) {
        let to_tag = req
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string));
        let Some(to_tag) = to_tag else {
            if req.method == Method::Invite {
                self.new_incoming(now, tx, req, source);
            } else {
                self.events.push_back(UaEvent::Request {
                    tx,
                    request: req,
                    source,
                });
            }
            return;
        };
        let key = (
            req.headers.call_id().unwrap_or("").to_string(),
            to_tag.clone(),
        );
        let Some(&call) = self.by_dialog.get(&key) else {
            // In-dialog request for no dialog we know.
            let r = req.response(481, reason_phrase(481), None);
            let _ = self.ep.respond(now, tx, r);
            return;
        };
        self.in_dialog_request(now, call, tx, req);
    }

    fn new_incoming(&mut self, now: Instant, tx: TxId, req: Request, source: Peer) {
        let local_tag = self.ep.new_tag();
        let local_addr = match self.local_for(source.transport) {
            Some(l) => l,
            None => match self.cfg.locals.first() {
                Some(l) => LocalAddress {
                    transport: source.transport,
                    ..l.clone()
                },
                None => {
                    let r = req.response(
                        500,
                        "Server Internal Error - no local address",
                        Some(&local_tag),
                    );
                    let _ = self.ep.respond(now, tx, r);
                    return;
                }
            },
        };
        let contact = self.contact_for(&local_addr, is_sips(&req.uri));
        let dialog = match Dialog::uas(&req, &local_tag, contact) {
            Ok(d) => d,
            Err(e) => {
                // e.g. no Contact: we could never reach the caller in the dialog.
                let r = req.response(400, &format!("Bad Request - {e}"), Some(&local_tag));
                let _ = self.ep.respond(now, tx, r);
                return;
            }
        };
        let call = CallId(self.next_call);
        self.next_call += 1;
        let c = Call {
            state: State::Offered,
            outgoing: false,
            invite: req.clone(),
            invite_tx: tx,
            local_tag: local_tag.clone(),
            dialog: Some(dialog),
            peer: source,
            local_addr,
            media: None,
            our_offer: None,
            last_sdp: None,
            negotiated: None,
            session: None,
            ring_deadline: None,
            credentials: None,
            auth_tried: false,
            reinvite_tx: None,
            awaiting_ack_answer: false,
            txs: Vec::new(),
            pending_bye: None,
            se_retried: false,
        };
        self.by_dialog.insert((c.invite_call_id(), local_tag), call);
        self.calls.insert(call, c);
        self.track(tx, call, TxPurpose::InitialInvite);
        self.events.push_back(UaEvent::Incoming {
            call,
            request: req,
            source,
        });
    }

    fn base_response(&self, c: &Call, req: &Request, status: u16) -> Response {
        let mut r = req.response(status, reason_phrase(status), Some(&c.local_tag));
        if (101..300).contains(&status) && req.method != Method::Bye {
            r.headers.push(
                HeaderName::Contact,
                format!(
                    "<{}>",
                    self.contact_for(&c.local_addr, is_sips(&c.invite.uri))
                ),
            );
        }
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        r
    }

    /// Sends 180 Ringing for an incoming call.
    pub fn ring(&mut self, now: Instant, call: CallId) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.state != State::Offered {
            return Err(UaError::InvalidState);
        }
        let r = self.base_response(c, &c.invite, 180);
        let tx = c.invite_tx;
        self.ep.respond(now, tx, r)?;
        Ok(())
    }

    /// Rejects an incoming call (or answers it with a challenge: pass the
    /// WWW-Authenticate/Proxy-Authenticate headers in `headers`).
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallId,
        status: u16,
        headers: Vec<(HeaderName, String)>,
    ) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.state != State::Offered || status < 300 {
            return Err(UaError::InvalidState);
        }
        let mut r = self.base_response(c, &c.invite, status);
        for (n, v) in headers {
            r.headers.push(n, v);
        }
        let tx = c.invite_tx;
        self.ep.respond(now, tx, r)?;
        self.end(call, EndReason::Rejected(status));
        Ok(())
    }

    /// Answers an incoming call with 200 OK. With an SDP offer in the INVITE the result is
    /// the negotiated media; with a late offer (no SDP) we offer and the media arrives
    /// with the ACK as [`UaEvent::MediaUpdated`]. If the offer is unacceptable the call is
    /// rejected with 488 and ends.
    pub fn answer(
        &mut self,
        now: Instant,
        call: CallId,
        media: LocalMedia,
    ) -> Result<Option<NegotiatedMedia>, UaError> {
        let mcfg = self.cfg.media.clone();
        let st_cfg = self.cfg.session_timer;
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.state != State::Offered {
            return Err(UaError::InvalidState);
        }
        let invite = c.invite.clone();
        let tx = c.invite_tx;
        let mut resp = self.base_response(c, &invite, 200);
        // Session timer (RFC 4028).
        let mut session = None;
        if let Some(st_cfg) = st_cfg {
            match dialog::negotiate_session_timer_uas(&invite, &st_cfg, &c.local_tag, now) {
                Ok(Some(st)) => {
                    dialog::apply_session_timer(&mut resp, &st, invite.headers.supports("timer"));
                    session = Some(st);
                }
                Ok(None) => {}
                Err(r422) => {
                    self.ep.respond(now, tx, r422)?;
                    self.end(call, EndReason::Rejected(422));
                    return Err(UaError::Refused(422));
                }
            }
        }
        let (sdp, negotiated, offer) = if invite.body.is_empty() {
            let o = offer_answer::offer(&mcfg, &media);
            (o.clone(), None, Some(o))
        } else {
            match offer_answer::answer_body(&invite.body, &mcfg, &media) {
                Ok((a, n)) => (a, Some(n), None),
                Err(e) => {
                    let Some(c) = self.calls.get(&call) else {
                        return Err(UaError::UnknownCall);
                    };
                    let mut r = self.base_response(c, &invite, e.status());
                    r.reason = format!("{} - {e}", r.reason);
                    self.ep.respond(now, tx, r)?;
                    self.end(call, EndReason::MediaFailure);
                    return Err(UaError::Negotiation(e));
                }
            }
        };
        let contact = {
            let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
            self.contact_for(&c.local_addr, is_sips(&c.invite.uri))
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(UaError::UnknownCall);
        };
        let sdp = stamp(&mut c.last_sdp, sdp);
        resp.headers
            .push(HeaderName::ContentType, "application/sdp");
        resp.body = sdp.to_bytes();
        if c.dialog.is_none() {
            c.dialog = Some(
                Dialog::uas(&invite, &c.local_tag, contact).map_err(|_| UaError::InvalidState)?,
            );
        }
        if let Some(d) = c.dialog.as_mut() {
            d.confirm();
            d.session_timer = session;
        }
        c.state = State::Answered;
        c.media = Some(media);
        c.our_offer = offer;
        c.awaiting_ack_answer = c.our_offer.is_some();
        c.negotiated = negotiated.clone();
        c.session = session;
        self.ep.respond(now, tx, resp)?;
        self.arm_session(call);
        Ok(negotiated)
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(id) = crate::dialog::DialogId::for_incoming_request(&ack) else {
            return;
        };
        let Some(&call) = self.by_dialog.get(&(id.call_id, id.local_tag)) else {
            return;
        };
        let mcfg = self.cfg.media.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(d) = c.dialog.as_mut() {
            let _ = d.handle_request(&ack);
        }
        if c.state == State::Answered {
            c.state = State::Confirmed;
        }
        if let Some(reason) = c.pending_bye.take() {
            c.awaiting_ack_answer = false;
            self.send_bye(now, call, reason);
            return;
        }
        if c.awaiting_ack_answer {
            c.awaiting_ack_answer = false;
            let offer = c.our_offer.take();
            let media = c.media.clone();
            if let (Some(o), Some(m)) = (offer, media) {
                match SessionDescription::parse(&ack.body)
                    .map_err(NegotiationError::Malformed)
                    .and_then(|a| offer_answer::process_answer(&o, &a, &mcfg, &m))
                {
                    Ok(n) => {
                        c.negotiated = Some(n.clone());
                        self.events
                            .push_back(UaEvent::MediaUpdated { call, media: n });
                    }
                    Err(_) => self.send_bye(now, call, EndReason::MediaFailure),
                }
            }
        }
    }

    fn in_dialog_request(&mut self, now: Instant, call: CallId, tx: TxId, req: Request) {
        let mcfg = self.cfg.media.clone();
        let st_cfg = self.cfg.session_timer;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let check = match c.dialog.as_mut() {
            Some(d) => d.handle_request(&req),
            None => Err(481),
        };
        if let Err(status) = check {
            let r = req.response(status, reason_phrase(status), None);
            let _ = self.ep.respond(now, tx, r);
            return;
        }
        match req.method {
            Method::Bye => {
                let r = req.response(200, "OK", None);
                let _ = self.ep.respond(now, tx, r);
                if c.state == State::Offered {
                    // BYE in an early dialog: the INVITE gets 487 (RFC 3261 §15.1.2).
                    let r = c
                        .invite
                        .response(487, reason_phrase(487), Some(&c.local_tag));
                    let itx = c.invite_tx;
                    let _ = self.ep.respond(now, itx, r);
                }
                self.end(call, EndReason::RemoteHangup);
            }
            Method::Invite | Method::Update => {
                if req.method == Method::Invite && c.reinvite_tx.is_some() {
                    let mut r = req.response(491, reason_phrase(491), None);
                    r.headers.push(HeaderName::RetryAfter, "2");
                    let _ = self.ep.respond(now, tx, r);
                    return;
                }
                let Some(media) = c.media.clone() else {
                    let r = req.response(491, reason_phrase(491), None);
                    let _ = self.ep.respond(now, tx, r);
                    return;
                };
                let mut resp = req.response(200, "OK", None);
                resp.headers.push(
                    HeaderName::Contact,
                    format!(
                        "<{}>",
                        contact_uri(
                            &self.cfg.contact_user,
                            &c.local_addr,
                            is_sips(&c.invite.uri)
                        )
                    ),
                );
                resp.headers.push(HeaderName::Allow, ALLOW);
                // Session refresh bookkeeping.
                if let Some(st_cfg) = st_cfg
                    && c.session.is_some()
                {
                    match dialog::negotiate_session_timer_uas(&req, &st_cfg, &c.local_tag, now) {
                        Ok(Some(st)) => {
                            dialog::apply_session_timer(
                                &mut resp,
                                &st,
                                req.headers.supports("timer"),
                            );
                            c.session = Some(st);
                        }
                        Ok(None) => {
                            if let Some(s) = c.session.as_mut() {
                                s.last_refresh = now;
                            }
                        }
                        Err(r422) => {
                            let _ = self.ep.respond(now, tx, r422);
                            return;
                        }
                    }
                }
                let mut updated = None;
                let video_offered = media.video_port.is_none()
                    && !req.body.is_empty()
                    && SessionDescription::parse(&req.body).is_ok_and(|sdp| {
                        sdp.media
                            .iter()
                            .any(|m| m.media.eq_ignore_ascii_case("video") && m.port != 0)
                    });
                if !req.body.is_empty() {
                    match offer_answer::answer_body(&req.body, &mcfg, &media) {
                        Ok((a, n)) => {
                            let a = {
                                let mut cc = std::mem::take(&mut c.last_sdp);
                                let out = stamp(&mut cc, a);
                                c.last_sdp = cc;
                                out
                            };
                            resp.headers
                                .push(HeaderName::ContentType, "application/sdp");
                            resp.body = a.to_bytes();
                            c.negotiated = Some(n.clone());
                            updated = Some(n);
                        }
                        Err(e) => {
                            // The old session stays (RFC 3261 §14.2).
                            let r = req.response(e.status(), reason_phrase(488), None);
                            let _ = self.ep.respond(now, tx, r);
                            return;
                        }
                    }
                } else if req.method == Method::Invite {
                    // Offer in our 2xx, answer in the ACK.
                    let o = offer_answer::offer(&mcfg, &media);
                    let o = {
                        let mut cc = std::mem::take(&mut c.last_sdp);
                        let out = stamp(&mut cc, o);
                        c.last_sdp = cc;
                        out
                    };
                    resp.headers
                        .push(HeaderName::ContentType, "application/sdp");
                    resp.body = o.to_bytes();
                    c.our_offer = Some(o);
                    c.awaiting_ack_answer = true;
                }
                let _ = self.ep.respond(now, tx, resp);
                self.arm_session(call);
                if let Some(n) = updated {
                    self.events
                        .push_back(UaEvent::MediaUpdated { call, media: n });
                }
                if video_offered {
                    self.events.push_back(UaEvent::VideoOffered { call });
                }
            }
            Method::Info => {
                let d = parse_dtmf_info(req.headers.content_type(), &req.body);
                let picture = is_picture_fast_update(req.headers.content_type(), &req.body);
                let r = req.response(200, "OK", None);
                let _ = self.ep.respond(now, tx, r);
                if picture {
                    self.events.push_back(UaEvent::PictureUpdate { call });
                }
                if let Some(d) = d {
                    self.events.push_back(UaEvent::Dtmf {
                        call,
                        digit: d.digit,
                        duration_ms: d.duration_ms,
                    });
                }
            }
            Method::Options => {
                let mut r = req.response(200, "OK", None);
                r.headers.push(HeaderName::Allow, ALLOW);
                let _ = self.ep.respond(now, tx, r);
            }
            _ => {
                let mut r = req.response(501, reason_phrase(501), None);
                r.headers.push(HeaderName::Allow, ALLOW);
                let _ = self.ep.respond(now, tx, r);
            }
        }
    }

    // ------------------------------------------------------------- outgoing calls

    /// Starts an outgoing call with an SDP offer.
    pub fn dial(&mut self, now: Instant, d: Dial) -> Result<CallId, UaError> {
        let local = self
            .local_for(d.dest.transport)
            .ok_or(UaError::NoLocalAddress)?;
        let call = CallId(self.next_call);
        self.next_call += 1;
        let local_tag = self.ep.new_tag();
        let call_id = format!("{}@conclave", self.ep.new_token());
        let via = self.new_via(&local);
        let contact = self.contact_for(&local, is_sips(&d.target));
        let mut req = OutgoingRequest {
            method: Method::Invite,
            request_uri: d.target.clone(),
            from: d.from.clone(),
            from_tag: &local_tag,
            to: d.to.clone(),
            call_id: &call_id,
            cseq: 1,
            contact: Some(contact),
            routes: vec![],
            via,
        }
        .build();
        req.headers.push(HeaderName::Allow, ALLOW);
        req.headers
            .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        if let Some(st) = &self.cfg.session_timer {
            dialog::request_session_timer(&mut req, st);
        }
        for (n, v) in d.headers {
            req.headers.push(n, v);
        }
        let offer = offer_answer::offer(&self.cfg.media, &d.media);
        req.headers.push(HeaderName::ContentType, "application/sdp");
        req.body = offer.to_bytes();
        let tx = self.ep.send_request(now, req.clone(), d.dest)?;
        let ring = now + d.ring_timeout.unwrap_or(self.cfg.ring_timeout);
        let c = Call {
            state: State::Dialing,
            outgoing: true,
            invite: req,
            invite_tx: tx,
            local_tag: local_tag.clone(),
            dialog: None,
            peer: d.dest,
            local_addr: local,
            media: Some(d.media),
            our_offer: Some(offer.clone()),
            last_sdp: Some(offer),
            negotiated: None,
            session: None,
            ring_deadline: Some(ring),
            credentials: d.credentials,
            auth_tried: false,
            reinvite_tx: None,
            awaiting_ack_answer: false,
            txs: Vec::new(),
            pending_bye: None,
            se_retried: false,
        };
        self.by_dialog.insert((call_id, local_tag), call);
        self.calls.insert(call, c);
        self.track(tx, call, TxPurpose::InitialInvite);
        self.arm(ring, call, CallTimer::Ring);
        Ok(call)
    }

    fn cancel_outgoing(&mut self, now: Instant, call: CallId, reason: EndReason) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != State::Dialing {
            return;
        }
        c.state = State::Cancelling(reason);
        c.ring_deadline = None;
        let tx = c.invite_tx;
        if self.ep.cancel(now, tx).is_err() {
            self.end(call, reason);
        }
    }

    fn on_response(&mut self, now: Instant, tx: TxId, resp: Response, source: Peer) {
        let Some((call, purpose)) = self.by_tx.get(&tx).copied() else {
            // Answers to CANCELs the endpoint sent for our calls are of no interest.
            if resp
                .headers
                .cseq()
                .is_ok_and(|c| c.method == Method::Cancel)
            {
                return;
            }
            self.events.push_back(UaEvent::Endpoint(Event::Response {
                tx,
                response: resp,
                source,
            }));
            return;
        };
        match purpose {
            TxPurpose::InitialInvite => self.on_invite_response(now, call, tx, resp),
            TxPurpose::ReInvite => self.on_reinvite_response(now, call, tx, resp),
            TxPurpose::Bye => {
                if resp.status >= 200
                    && let Some(c) = self.calls.get(&call)
                    && let State::Ending(r) = c.state
                {
                    self.end(call, r);
                }
            }
        }
    }

    fn on_invite_response(&mut self, now: Instant, call: CallId, tx: TxId, resp: Response) {
        let mcfg = self.cfg.media.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let status = resp.status;
        if status < 200 {
            let mut media = None;
            if !resp.body.is_empty()
                && let (Some(o), Some(m)) = (&c.our_offer, &c.media)
                && let Ok(a) = SessionDescription::parse(&resp.body)
                && let Ok(n) = offer_answer::process_answer(o, &a, &mcfg, m)
            {
                c.negotiated = Some(n.clone());
                media = Some(n);
            }
            if matches!(c.state, State::Dialing) {
                self.events.push_back(UaEvent::Progress {
                    call,
                    progress: CallProgress::from_status(status),
                    status,
                    media,
                });
            }
            return;
        }
        if (200..300).contains(&status) {
            let contact = contact_uri(
                &self.cfg.contact_user,
                &c.local_addr,
                is_sips(&c.invite.uri),
            );
            let first = c.dialog.is_none();
            let Ok(mut d) = Dialog::uac(&c.invite, &resp, contact) else {
                return;
            };
            // ACK every 2xx (each fork).
            let b = self.ep.new_branch();
            let mut via = Via::new(
                c.local_addr.transport,
                c.local_addr.host.clone(),
                Some(c.local_addr.port),
                &b,
            );
            via.params.set("rport", None);
            let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let ack = d.create_ack(seq, &via);
            let peer = c.peer;
            self.ep.send_ack(Some(tx), &ack, peer);
            if !first {
                // A second fork answered: hang it up (we keep the first).
                let b = self.ep.new_branch();
                let via2 = Via::new(
                    c.local_addr.transport,
                    c.local_addr.host.clone(),
                    Some(c.local_addr.port),
                    &b,
                );
                let bye = d.create_request(Method::Bye, &via2);
                if let Ok(btx) = self.ep.send_request(now, bye, peer) {
                    self.track(btx, call, TxPurpose::Bye);
                }
                return;
            }
            let cancelled = match c.state {
                State::Cancelling(r) => Some(r),
                _ => None,
            };
            d.session_timer = dialog::session_timer_from_response(&resp, now);
            c.session = d.session_timer;
            c.dialog = Some(d);
            c.ring_deadline = None;
            // Register the dialog under its local tag (already done at dial time).
            if let Some(r) = cancelled {
                // 200 crossed our CANCEL: end the call properly.
                c.state = State::Confirmed;
                self.send_bye(now, call, r);
                return;
            }
            c.state = State::Confirmed;
            let answer = SessionDescription::parse(&resp.body).map_err(NegotiationError::Malformed);
            let result = match (&c.our_offer, &c.media, answer) {
                (Some(o), Some(m), Ok(a)) => offer_answer::process_answer(o, &a, &mcfg, m),
                (_, _, Err(e)) => Err(e),
                _ => Err(NegotiationError::NoCommonCodec),
            };
            c.our_offer = None;
            match result {
                Ok(n) => {
                    c.negotiated = Some(n.clone());
                    self.arm_session(call);
                    self.events.push_back(UaEvent::Answered { call, media: n });
                }
                Err(_) => self.send_bye(now, call, EndReason::MediaFailure),
            }
            return;
        }
        // Final failure.
        let state = c.state;
        // 422: retry once with the interval the peer asks for (RFC 4028 §7.4).
        if status == 422
            && !c.se_retried
            && matches!(state, State::Dialing)
            && let Ok(Some(min)) = resp.headers.min_se()
        {
            c.se_retried = true;
            let mut req = c.invite.clone();
            let branch = self.ep.new_branch();
            if let (Ok(cseq), Ok(mut via)) = (req.headers.cseq(), req.headers.top_via()) {
                req.headers.set(
                    HeaderName::CSeq,
                    format!("{} {}", cseq.seq.wrapping_add(1), cseq.method),
                );
                via.params.set("branch", Some(&branch));
                req.headers.set_top_via(&via);
                req.headers.set(HeaderName::SessionExpires, min.to_string());
                req.headers.set(HeaderName::MinSe, min.to_string());
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.invite = req.clone();
                let peer = c.peer;
                if let Ok(ntx) = self.ep.send_request(now, req, peer) {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.invite_tx = ntx;
                    }
                    self.track(ntx, call, TxPurpose::InitialInvite);
                    return;
                }
            }
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let creds = if matches!(status, 401 | 407) && !c.auth_tried {
            c.credentials.clone()
        } else {
            None
        };
        {
            if let Some((user, pass)) = creds {
                let cnonce = self.ep.new_token();
                let branch = self.ep.new_branch();
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                if let Some(req) =
                    authorize_request(&c.invite, &resp, &user, &pass, &cnonce, &branch)
                {
                    c.auth_tried = true;
                    c.invite = req.clone();
                    let peer = c.peer;
                    match self.ep.send_request(now, req, peer) {
                        Ok(ntx) => {
                            if let Some(c) = self.calls.get_mut(&call) {
                                c.invite_tx = ntx;
                            }
                            self.track(ntx, call, TxPurpose::InitialInvite);
                            return;
                        }
                        Err(_) => {
                            self.end(call, EndReason::Rejected(status));
                            return;
                        }
                    }
                }
            }
        }
        let reason = match state {
            State::Cancelling(r) => r,
            _ => match CallProgress::from_status(status) {
                CallProgress::Busy => EndReason::Busy,
                CallProgress::NoAnswer => EndReason::NoAnswer,
                _ if status == 488 => EndReason::MediaFailure,
                _ => EndReason::Rejected(status),
            },
        };
        self.end(call, reason);
    }

    fn on_stray_response(&mut self, _now: Instant, resp: Response, source: Peer) {
        // A 2xx retransmission after the INVITE transaction ended: ACK it again.
        if resp.is_success()
            && resp
                .headers
                .cseq()
                .is_ok_and(|c| c.method == Method::Invite)
            && let Some(id) = crate::dialog::DialogId::for_incoming_response(&resp)
            && let Some(&call) = self.by_dialog.get(&(id.call_id, id.local_tag))
            && let Some(c) = self.calls.get_mut(&call)
            && let Some(d) = c.dialog.as_mut()
        {
            let b = self.ep.new_branch();
            let via = Via::new(
                c.local_addr.transport,
                c.local_addr.host.clone(),
                Some(c.local_addr.port),
                &b,
            );
            let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let ack = d.create_ack(seq, &via);
            let peer = c.peer;
            self.ep.send_ack(None, &ack, peer);
            return;
        }
        self.events
            .push_back(UaEvent::Endpoint(Event::StrayResponse {
                response: resp,
                source,
            }));
    }

    fn on_timeout(&mut self, now: Instant, tx: TxId) {
        let Some((call, purpose)) = self.by_tx.get(&tx).copied() else {
            self.events
                .push_back(UaEvent::Endpoint(Event::Timeout { tx }));
            return;
        };
        match purpose {
            TxPurpose::InitialInvite => {
                let reason = match self.calls.get(&call).map(|c| c.state) {
                    Some(State::Cancelling(r)) => r,
                    _ => EndReason::Timeout,
                };
                self.end(call, reason);
            }
            TxPurpose::Bye => {
                let reason = match self.calls.get(&call).map(|c| c.state) {
                    Some(State::Ending(r)) => r,
                    _ => EndReason::Timeout,
                };
                self.end(call, reason);
            }
            // A re-INVITE or other in-dialog request timed out: the peer is gone
            // (RFC 3261 §12.2.1.2).
            _ => self.send_bye(now, call, EndReason::Timeout),
        }
    }

    fn on_reinvite_response(&mut self, now: Instant, call: CallId, tx: TxId, resp: Response) {
        let mcfg = self.cfg.media.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if resp.status < 200 {
            return;
        }
        c.reinvite_tx = None;
        if resp.is_success() {
            let Some(d) = c.dialog.as_mut() else { return };
            d.handle_response(&Method::Invite, &resp);
            let b = self.ep.new_branch();
            let via = Via::new(
                c.local_addr.transport,
                c.local_addr.host.clone(),
                Some(c.local_addr.port),
                &b,
            );
            let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let ack = d.create_ack(seq, &via);
            let peer = c.peer;
            self.ep.send_ack(Some(tx), &ack, peer);
            if let Some(st) = dialog::session_timer_from_response(&resp, now) {
                c.session = Some(st);
            } else if let Some(s) = c.session.as_mut() {
                s.last_refresh = now;
            }
            let offer = c.our_offer.take();
            if let (Some(o), Some(m)) = (offer, c.media.clone())
                && let Ok(a) = SessionDescription::parse(&resp.body)
                && let Ok(n) = offer_answer::process_answer(&o, &a, &mcfg, &m)
            {
                let changed = c.negotiated.as_ref() != Some(&n);
                c.negotiated = Some(n.clone());
                if changed {
                    self.events
                        .push_back(UaEvent::MediaUpdated { call, media: n });
                }
            }
            self.arm_session(call);
        } else {
            c.our_offer = None;
            if matches!(resp.status, 481 | 408) {
                self.end(call, EndReason::RemoteHangup);
            }
        }
    }

    // ------------------------------------------------------------- commands in a call

    /// Hangs up: BYE when established, CANCEL when dialing, 480 when offered to us.
    pub fn hangup(&mut self, now: Instant, call: CallId) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        match c.state {
            State::Offered => self.reject(now, call, 480, vec![]),
            State::Dialing => {
                self.cancel_outgoing(now, call, EndReason::LocalHangup);
                Ok(())
            }
            State::Cancelling(_) | State::Ending(_) => Ok(()),
            State::Answered => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.pending_bye = Some(EndReason::LocalHangup);
                }
                Ok(())
            }
            State::Confirmed => {
                self.send_bye(now, call, EndReason::LocalHangup);
                Ok(())
            }
        }
    }

    fn send_bye(&mut self, now: Instant, call: CallId, reason: EndReason) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let local = c.local_addr.clone();
        let via = self.new_via(&local);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else {
            self.end(call, reason);
            return;
        };
        let bye = d.create_request(Method::Bye, &via);
        c.state = State::Ending(reason);
        let peer = c.peer;
        match self.ep.send_request(now, bye, peer) {
            Ok(tx) => {
                self.track(tx, call, TxPurpose::Bye);
            }
            Err(_) => self.end(call, reason),
        }
    }

    /// Puts the peer on hold (`hold = true`: we only send) or resumes, by re-INVITE.
    pub fn hold(&mut self, now: Instant, call: CallId, hold: bool) -> Result<(), UaError> {
        let dir = if hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        if let Some(m) = c.media.as_mut() {
            m.direction = dir;
        }
        self.reinvite(now, call)
    }

    /// Gives a call that began audio-only a video port, offered to the peer by re-INVITE now
    /// (after [`UaEvent::VideoOffered`]). While a re-INVITE of ours is under way the port
    /// waits for the next one (`InvalidState`).
    pub fn offer_video(&mut self, now: Instant, call: CallId, port: u16) -> Result<(), UaError> {
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let m = c.media.as_mut().ok_or(UaError::InvalidState)?;
        m.video_port = Some(port);
        self.reinvite(now, call)
    }

    /// Sends a re-INVITE with our current media (also used for session refresh).
    pub fn reinvite(&mut self, now: Instant, call: CallId) -> Result<(), UaError> {
        let mcfg = self.cfg.media.clone();
        let st_cfg = self.cfg.session_timer;
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.state != State::Confirmed || c.reinvite_tx.is_some() {
            return Err(UaError::InvalidState);
        }
        let local = c.local_addr.clone();
        let via = self.new_via(&local);
        let c = self.calls.get_mut(&call).ok_or(UaError::UnknownCall)?;
        let media = c.media.clone().ok_or(UaError::InvalidState)?;
        let d = c.dialog.as_mut().ok_or(UaError::InvalidState)?;
        let mut req = d.create_request(Method::Invite, &via);
        if let (Some(st), Some(cur)) = (st_cfg, c.session) {
            req.headers.push(HeaderName::Supported, "timer");
            // We are the UAC of this re-INVITE.
            let refresher = if cur.we_refresh { "uac" } else { "uas" };
            req.headers.set(
                HeaderName::SessionExpires,
                format!("{};refresher={refresher}", cur.interval.max(st.min_se)),
            );
        }
        let o = offer_answer::offer(&mcfg, &media);
        let o = stamp(&mut c.last_sdp, o);
        req.headers.push(HeaderName::ContentType, "application/sdp");
        req.body = o.to_bytes();
        c.our_offer = Some(o);
        let peer = c.peer;
        let tx = self.ep.send_request(now, req, peer)?;
        if let Some(c) = self.calls.get_mut(&call) {
            c.reinvite_tx = Some(tx);
        }
        self.track(tx, call, TxPurpose::ReInvite);
        Ok(())
    }

    fn session_timer_fired(&mut self, now: Instant, call: CallId) {
        let Some(st) = self.calls.get(&call).and_then(|c| c.session) else {
            return;
        };
        match st.deadline().1 {
            SessionTimerAction::Refresh => {
                if self.reinvite(now, call).is_err() {
                    // Busy with another re-INVITE: try again a little later.
                    if let Some(c) = self.calls.get_mut(&call)
                        && let Some(s) = c.session.as_mut()
                    {
                        s.last_refresh += Duration::from_secs(10);
                    }
                    self.arm_session(call);
                } else if let Some(c) = self.calls.get_mut(&call)
                    && let Some(s) = c.session.as_mut()
                {
                    // Until the answer arrives, watch for expiry as the refresher.
                    s.last_refresh = now;
                }
            }
            SessionTimerAction::Expire => self.send_bye(now, call, EndReason::SessionExpired),
        }
    }

    /// Answers a non-call request reported as [`UaEvent::Request`].
    pub fn respond(&mut self, now: Instant, tx: TxId, resp: Response) -> Result<(), UaError> {
        self.ep.respond(now, tx, resp)?;
        Ok(())
    }

    /// Whether a call is outgoing.
    pub fn is_outgoing(&self, call: CallId) -> Option<bool> {
        self.calls.get(&call).map(|c| c.outgoing)
    }
}

/// Our Contact on this listener. A `sips:` Contact only in a dialog whose request URI was
/// `sips:` (RFC 3261 §12.1.1); otherwise `sip:…;transport=tls` — phones that route only
/// `sip:` URIs (libre/baresip among them) could not send us their ACK or BYE.
fn contact_uri(user: &str, l: &LocalAddress, sips: bool) -> Uri {
    let mut u = Uri::sip(Some(user), l.host.clone(), Some(l.port));
    match l.transport {
        Transport::Udp => {}
        Transport::Tls if sips => u.scheme = crate::uri::Scheme::Sips,
        t => u
            .params
            .set("transport", Some(&t.as_str().to_ascii_lowercase())),
    }
    u
}

fn is_sips(uri: &Uri) -> bool {
    uri.scheme == crate::uri::Scheme::Sips
}

/// Keeps `o=` version rules: same SDP → same version; changed → version + 1.
fn stamp(last: &mut Option<SessionDescription>, mut sdp: SessionDescription) -> SessionDescription {
    if let Some(prev) = last {
        let mut cmp = sdp.clone();
        cmp.origin = prev.origin.clone();
        if cmp == *prev {
            return prev.clone();
        }
        sdp.origin.session_version = prev.origin.session_version + 1;
    }
    *last = Some(sdp.clone());
    sdp
}

impl Call {
    fn invite_call_id(&self) -> String {
        self.invite.headers.call_id().unwrap_or("").to_string()
    }
}

#[cfg(test)]
#[path = "ua_tests.rs"]
mod tests;

/// An INFO asking for a keyframe (RFC 5168's XML schema: `<media_control><vc_primitive>
/// <to_encoder><picture_fast_update/>`); only the element's name is looked for.
fn is_picture_fast_update(content_type: Option<&str>, body: &[u8]) -> bool {
    content_type.is_some_and(|t| {
        t.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/media_control+xml")
        })
    }) && body.len() <= 4096
        && body
            .windows(b"picture_fast_update".len())
            .any(|w| w == b"picture_fast_update")
}
