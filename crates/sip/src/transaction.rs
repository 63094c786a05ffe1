//! The transaction layer (RFC 3261 §17, with the RFC 6026 "Accepted" states) and the
//! sans-IO [`Endpoint`] that hosts it.
//!
//! Input: received messages with their source [`Peer`], requests and responses from the
//! application, and timer ticks. Output: [`Transmit`]s, [`Event`]s and the next deadline.
//! Timers A–M, the 200 ms "100 Trying" timer and safety guards are kept in one heap;
//! [`Endpoint::poll_timeout`] tells the runtime when to call [`Endpoint::handle_timeout`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::ParseError;
use crate::headers::{BRANCH_COOKIE, Transport, Via};
use crate::message::{
    HeaderName, Message, Method, Request, Response, error_response, reason_phrase,
};
use crate::parser::{Limits, parse_datagram};

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// For stream transports: the runtime's connection id the message arrived on (responses
    /// go back on the same connection). `None`: the runtime picks or opens one.
    pub connection: Option<u64>,
}

impl Peer {
    pub fn new(transport: Transport, addr: SocketAddr) -> Peer {
        Peer {
            transport,
            addr,
            connection: None,
        }
    }
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub payload: Vec<u8>,
}

/// Identifies a transaction inside one [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Timer values and limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (5 s).
    pub t4: Duration,
    /// Delay before an INVITE server transaction sends "100 Trying" itself (200 ms).
    pub trying_delay: Duration,
    /// Longest time an INVITE server transaction may stay without a final response
    /// before the endpoint answers 408 itself (a guard against a stuck application).
    pub invite_server_max: Duration,
    pub limits: Limits,
    /// Option tags we support (checked against Require).
    pub supported: Vec<String>,
    /// Most concurrent transactions; new requests beyond get 503.
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying_delay: Duration::from_millis(200),
            invite_server_max: Duration::from_secs(300),
            limits: Limits::default(),
            supported: vec!["timer".into(), "replaces".into(), "outbound".into()],
            max_transactions: 100_000,
        }
    }
}

/// What the endpoint reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request (not ACK). Answer it with [`Endpoint::respond`].
    Request {
        tx: TxId,
        request: Request,
        source: Peer,
    },
    /// An ACK for a 2xx (or an ACK matching nothing: `tx: None`).
    Ack {
        tx: Option<TxId>,
        request: Request,
        source: Peer,
    },
    /// A CANCEL matched INVITE transaction `tx`; the endpoint answered the CANCEL with 200
    /// and the INVITE with 487.
    Cancelled { tx: TxId, cancel: Request },
    /// A response for client transaction `tx` (provisional, final, or a forked 2xx).
    Response {
        tx: TxId,
        response: Response,
        source: Peer,
    },
    /// A response that matched no transaction (e.g. a 2xx retransmission after the INVITE
    /// transaction ended): the dialog layer may re-ACK it.
    StrayResponse { response: Response, source: Peer },
    /// Client transaction timed out (Timer B/F, or no answer after CANCEL): act as on 408.
    Timeout { tx: TxId },
    /// A 2xx we sent to an INVITE was never ACKed (Timer L): end the dialog with BYE.
    AckTimeout { tx: TxId },
    /// The transaction is gone; no further events for it.
    Terminated { tx: TxId },
    /// A message that could not be parsed or validated. `answered` tells whether an error
    /// response was sent. For the application's (rate-limited) log.
    BadMessage {
        source: Peer,
        error: ParseError,
        answered: bool,
    },
}

/// Errors of application calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// No such transaction (finished or never existed).
    UnknownTransaction,
    /// The transaction is not in a state that allows this (e.g. a second final response).
    InvalidState,
    /// The request has no top Via with a branch, or lacks mandatory headers.
    InvalidRequest,
}

impl std::fmt::Display for TxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TxError::UnknownTransaction => "unknown transaction",
            TxError::InvalidState => "invalid transaction state",
            TxError::InvalidRequest => "invalid request",
        })
    }
}

impl std::error::Error for TxError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    /// INVITE client retransmit.
    A,
    /// INVITE client timeout.
    B,
    /// INVITE client wait for final retransmits.
    D,
    /// Non-INVITE client retransmit.
    E,
    /// Non-INVITE client timeout.
    F,
    /// INVITE server final response retransmit.
    G,
    /// INVITE server ACK wait.
    H,
    /// INVITE server wait for ACK retransmits.
    I,
    /// Non-INVITE server wait for request retransmits.
    J,
    /// Non-INVITE client wait for response retransmits.
    K,
    /// INVITE server Accepted (2xx sent) lifetime; also drives 2xx retransmission.
    L,
    /// 2xx retransmission (server, Accepted).
    Retransmit2xx,
    /// INVITE client Accepted lifetime.
    M,
    /// 200 ms "100 Trying".
    Trying,
    /// Application did not answer in time / no final response after CANCEL.
    Guard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client INVITE: Calling; client non-INVITE and server non-INVITE: Trying.
    Initial,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TxKey {
    branch: String,
    /// INVITE for ACK.
    method: Method,
    client: bool,
    /// The top Via's sent-by (server transactions, RFC 3261 §17.2.3): two clients may pick
    /// the same branch.
    sent_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: String,
    cseq: u32,
    from_tag: String,
}

/// An ACK we sent for a 2xx, and where.
type SentAck = (Vec<u8>, Peer);

#[derive(Debug)]
enum CancelState {
    None,
    /// CANCEL requested before any provisional response: send it when one arrives.
    Pending,
    Sent,
}

#[derive(Debug)]
struct Tx {
    id: TxId,
    key: TxKey,
    client: bool,
    method: Method,
    state: State,
    /// Destination (client) or response destination (server).
    peer: Peer,
    request: Request,
    /// Client: the request bytes; server: the last response bytes.
    bytes: Vec<u8>,
    last_status: u16,
    interval: Duration,
    timers: Vec<(Timer, Instant)>,
    /// Client INVITE: ACK for a non-2xx final.
    ack: Option<Vec<u8>>,
    /// Client INVITE in Accepted: (to-tag, ACK bytes if the application sent one).
    accepted: Vec<(String, Option<SentAck>)>,
    cancel: CancelState,
    /// Server INVITE: key to match the ACK of our 2xx.
    ack_key: Option<AckKey>,
    acked: bool,
    /// Server: key for merged-request detection.
    merge_key: Option<AckKey>,
}

impl Tx {
    fn arm(
        &mut self,
        t: Timer,
        at: Instant,
        heap: &mut BinaryHeap<Reverse<(Instant, TxId, Timer)>>,
    ) {
        self.timers.retain(|(k, _)| *k != t);
        self.timers.push((t, at));
        heap.push(Reverse((at, self.id, t)));
    }

    fn disarm(&mut self, t: Timer) {
        self.timers.retain(|(k, _)| *k != t);
    }

    fn armed(&self, t: Timer, at: Instant) -> bool {
        self.timers.iter().any(|(k, a)| *k == t && *a == at)
    }

    fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }
}

/// The sans-IO SIP endpoint: transaction layer plus message parsing and validation.
#[derive(Debug)]
pub struct Endpoint {
    cfg: Config,
    txs: HashMap<TxId, Tx>,
    keys: HashMap<TxKey, TxId>,
    ack_keys: HashMap<AckKey, TxId>,
    /// Out-of-dialog requests in progress, for merged-request detection (§8.2.2.2).
    merge_keys: HashMap<AckKey, TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId, Timer)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_id: u64,
    rng: u64,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where to send responses to a request that arrived from `source` with top Via `via`
/// (RFC 3261 §18.2.2, RFC 3581).
pub fn response_destination(via: &Via, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    let port = if via.has_rport() {
        source.addr.port()
    } else {
        via.port.unwrap_or(via.transport.default_port())
    };
    Peer {
        addr: SocketAddr::new(source.addr.ip(), port),
        ..source
    }
}

/// Adds `received` and fills `rport` in the top Via of a received request (RFC 3581).
pub fn stamp_via(req: &mut Request, source: &Peer) {
    let Ok(mut via) = req.headers.top_via() else {
        return;
    };
    let ip = source.addr.ip();
    let mut changed = false;
    if via.host.ip() != Some(ip) || via.has_rport() {
        via.params.set("received", Some(&ip.to_string()));
        changed = true;
    }
    if via.has_rport() {
        via.params
            .set("rport", Some(&source.addr.port().to_string()));
        changed = true;
    }
    if changed {
        req.headers.set_top_via(&via);
    }
}

fn server_key(req: &Request) -> Option<TxKey> {
    let via = req.headers.top_via().ok()?;
    let method = if req.method == Method::Ack {
        Method::Invite
    } else {
        req.method.clone()
    };
    let branch = match via.branch() {
        Some(b) if b.starts_with(BRANCH_COOKIE) => b.to_string(),
        // RFC 2543 peer: build a key from what identifies the request.
        other => {
            let cseq = req.headers.cseq().ok()?;
            let from_tag = req.headers.from().ok()?.tag().unwrap_or("").to_string();
            format!(
                "2543|{}|{}|{}|{}|{}",
                other.unwrap_or(""),
                req.headers.call_id().unwrap_or(""),
                cseq.seq,
                from_tag,
                via
            )
        }
    };
    let sent_by = format!("{}:{}", via.host, via.port.unwrap_or(0));
    Some(TxKey {
        branch,
        method,
        client: false,
        sent_by,
    })
}

fn ack_key(req: &Request) -> Option<AckKey> {
    Some(AckKey {
        call_id: req.headers.call_id()?.to_string(),
        cseq: req.headers.cseq().ok()?.seq,
        from_tag: req.headers.from().ok()?.tag().unwrap_or("").to_string(),
    })
}

impl Endpoint {
    /// `seed` makes generated branches and tags unique across endpoints and restarts:
    /// pass random bytes from the runtime (tests pass a constant).
    pub fn new(cfg: Config, seed: u64) -> Endpoint {
        Endpoint {
            cfg,
            txs: HashMap::new(),
            keys: HashMap::new(),
            ack_keys: HashMap::new(),
            merge_keys: HashMap::new(),
            heap: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            rng: seed,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A fresh random-looking token (16 hex digits).
    pub fn new_token(&mut self) -> String {
        format!("{:016x}", splitmix(&mut self.rng))
    }

    /// A new RFC 3261 branch (`z9hG4bK…`).
    pub fn new_branch(&mut self) -> String {
        format!("{BRANCH_COOKIE}{}", self.new_token())
    }

    /// A new tag for From/To.
    pub fn new_tag(&mut self) -> String {
        let t = splitmix(&mut self.rng);
        format!("{:x}", t & 0xffff_ffff_ffff)
    }

    /// Number of live transactions.
    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    // ------------------------------------------------------------------ outputs

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Endpoint::handle_timeout`] must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop stale heap entries so the answer is exact.
        while let Some(Reverse((at, id, t))) = self.heap.peek().copied() {
            match self.txs.get(&id) {
                Some(tx) if tx.armed(t, at) => return Some(at),
                _ => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    // ------------------------------------------------------------------ inputs

    /// Feeds a received datagram (UDP) or a message framed by
    /// [`crate::parser::StreamFramer`] (pass its raw bytes the same way).
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8], source: Peer) {
        // NAT keep-alives on UDP: CRLFs (or NULs) are ignored; a STUN Binding request
        // (RFC 5626 §4.4.2) gets a Binding success response with the mapped address.
        if data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b'\0' | b' '))
        {
            return;
        }
        if let Some(resp) = stun_binding_response(data, source.addr) {
            self.transmits.push_back(Transmit {
                peer: source,
                payload: resp,
            });
            return;
        }
        match parse_datagram(data, &self.cfg.limits) {
            Ok(m) => self.handle_message(now, m, source),
            Err(error) => {
                let resp = error_response(data, &error);
                let answered = resp.is_some();
                if let Some(r) = resp {
                    self.send_direct(&r, source);
                }
                self.events.push_back(Event::BadMessage {
                    source,
                    error,
                    answered,
                });
            }
        }
    }

    fn send_direct(&mut self, r: &Response, source: Peer) {
        let dest = match r.headers.top_via() {
            Ok(v) => response_destination(&v, source),
            Err(_) => source,
        };
        self.transmits.push_back(Transmit {
            peer: dest,
            payload: r.to_bytes(),
        });
    }

    /// Feeds a parsed message.
    pub fn handle_message(&mut self, now: Instant, msg: Message, source: Peer) {
        match msg {
            Message::Request(r) => self.on_request(now, r, source),
            Message::Response(r) => self.on_response(now, r, source),
        }
    }

    fn on_request(&mut self, now: Instant, mut req: Request, source: Peer) {
        let supported: Vec<&str> = self.cfg.supported.iter().map(String::as_str).collect();
        if let Err(error) = req.validate(&supported) {
            let h = &req.headers;
            let answered = req.method != Method::Ack
                && h.top_via().is_ok()
                && h.call_id().is_some()
                && h.get(&HeaderName::CSeq).is_some()
                && h.get(&HeaderName::From).is_some()
                && h.get(&HeaderName::To).is_some();
            if answered {
                stamp_via(&mut req, &source);
                let (status, reason) = error.status();
                let tag = self.new_tag();
                let mut resp = req.response(status, &reason, Some(&tag));
                if let ParseError::BadExtension(ext) = &error {
                    resp.headers.push(HeaderName::Unsupported, ext.join(", "));
                }
                // Through a transaction when possible, so retransmissions get the same
                // answer.
                match self.new_server_tx(now, &req, source) {
                    Some(id) => {
                        let _ = self.respond(now, id, resp);
                    }
                    None => self.send_direct(&resp, source),
                }
            }
            self.events.push_back(Event::BadMessage {
                source,
                error,
                answered,
            });
            return;
        }
        stamp_via(&mut req, &source);
        let Some(key) = server_key(&req) else {
            return;
        };
        if req.method == Method::Ack {
            self.on_ack(now, req, key, source);
            return;
        }
        if let Some(&id) = self.keys.get(&key) {
            // Retransmission.
            self.on_request_retransmit(id);
            return;
        }
        if req.method == Method::Cancel {
            self.on_cancel(now, req, key, source);
            return;
        }
        if self.txs.len() >= self.cfg.max_transactions {
            let tag = self.new_tag();
            let mut r = req.response(503, "Service Unavailable", Some(&tag));
            r.headers.push(HeaderName::RetryAfter, "5");
            self.send_direct(&r, source);
            return;
        }
        // Merged request: same request reached us twice over different paths (forking
        // proxy) with different branches.
        let merge_key = match req.headers.to() {
            Ok(to) if to.tag().is_none() => ack_key(&req),
            _ => None,
        };
        // Only while the first copy is unanswered: lenient with clients that reuse a CSeq
        // after a final response.
        let merged = merge_key
            .as_ref()
            .and_then(|mk| self.merge_keys.get(mk))
            .and_then(|id| self.txs.get(id))
            .is_some_and(|tx| matches!(tx.state, State::Initial | State::Proceeding));
        if merged {
            let tag = self.new_tag();
            let r = req.response(482, reason_phrase(482), Some(&tag));
            match self.new_server_tx(now, &req, source) {
                Some(id) => {
                    let _ = self.respond(now, id, r);
                }
                None => self.send_direct(&r, source),
            }
            return;
        }
        if let Some(id) = self.new_server_tx(now, &req, source) {
            if let Some(mk) = merge_key {
                self.merge_keys.insert(mk.clone(), id);
                if let Some(tx) = self.txs.get_mut(&id) {
                    tx.merge_key = Some(mk);
                }
            }
            self.events.push_back(Event::Request {
                tx: id,
                request: req,
                source,
            });
        }
    }

    fn new_server_tx(&mut self, now: Instant, req: &Request, source: Peer) -> Option<TxId> {
        let key = server_key(req)?;
        if let Some(&id) = self.keys.get(&key) {
            return Some(id);
        }
        let via = req.headers.top_via().ok()?;
        let id = TxId(self.next_id);
        self.next_id += 1;
        let invite = req.method == Method::Invite;
        let mut tx = Tx {
            id,
            key: key.clone(),
            client: false,
            method: req.method.clone(),
            state: if invite {
                State::Proceeding
            } else {
                State::Initial
            },
            peer: response_destination(&via, source),
            request: req.clone(),
            bytes: Vec::new(),
            last_status: 0,
            interval: self.cfg.t1,
            timers: Vec::new(),
            ack: None,
            accepted: Vec::new(),
            cancel: CancelState::None,
            ack_key: None,
            acked: false,
            merge_key: None,
        };
        if invite {
            tx.arm(Timer::Trying, now + self.cfg.trying_delay, &mut self.heap);
            tx.arm(
                Timer::Guard,
                now + self.cfg.invite_server_max,
                &mut self.heap,
            );
        } else {
            tx.arm(Timer::Guard, now + self.cfg.t1 * 64, &mut self.heap);
        }
        self.keys.insert(key, id);
        self.txs.insert(id, tx);
        Some(id)
    }

    fn on_request_retransmit(&mut self, id: TxId) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if tx.method == Method::Invite && tx.state == State::Proceeding && tx.bytes.is_empty() {
            // The peer retransmits before our 200 ms timer: say "100 Trying" now.
            tx.bytes = tx.request.response(100, "Trying", None).to_bytes();
            tx.disarm(Timer::Trying);
        }
        match tx.state {
            State::Proceeding | State::Completed if !tx.bytes.is_empty() => {
                let t = Transmit {
                    peer: tx.peer,
                    payload: tx.bytes.clone(),
                };
                self.transmits.push_back(t);
            }
            _ => {}
        }
    }

    fn on_ack(&mut self, now: Instant, req: Request, key: TxKey, source: Peer) {
        // ACK for a non-2xx final: same branch as the INVITE.
        if let Some(&id) = self.keys.get(&key) {
            let t4 = self.cfg.t4;
            if let Some(tx) = self.txs.get_mut(&id) {
                match tx.state {
                    State::Completed => {
                        tx.state = State::Confirmed;
                        tx.disarm(Timer::G);
                        tx.disarm(Timer::H);
                        let wait = if tx.reliable() { Duration::ZERO } else { t4 };
                        tx.arm(Timer::I, now + wait, &mut self.heap);
                        return;
                    }
                    State::Confirmed => return,
                    _ => {}
                }
            }
        }
        // ACK for a 2xx: new branch, matched by dialog identifiers.
        if let Some(ak) = ack_key(&req)
            && let Some(&id) = self.ack_keys.get(&ak)
            && let Some(tx) = self.txs.get_mut(&id)
            && tx.state == State::Accepted
        {
            if tx.acked {
                return; // duplicate ACK
            }
            tx.acked = true;
            tx.disarm(Timer::Retransmit2xx);
            self.events.push_back(Event::Ack {
                tx: Some(id),
                request: req,
                source,
            });
            return;
        }
        self.events.push_back(Event::Ack {
            tx: None,
            request: req,
            source,
        });
    }

    fn on_cancel(&mut self, now: Instant, req: Request, key: TxKey, source: Peer) {
        let invite_key = TxKey {
            method: Method::Invite,
            ..key
        };
        let target = self.keys.get(&invite_key).copied();
        let Some(cancel_tx) = self.new_server_tx(now, &req, source) else {
            return;
        };
        let tag = self.new_tag();
        let Some(invite_id) = target else {
            let r = req.response(481, reason_phrase(481), Some(&tag));
            let _ = self.respond(now, cancel_tx, r);
            return;
        };
        let (state, invite_req) = match self.txs.get(&invite_id) {
            Some(tx) => (tx.state, tx.request.clone()),
            None => return,
        };
        // The To tag of the 200 to CANCEL should equal that of the INVITE's responses.
        let invite_tag = self
            .txs
            .get(&invite_id)
            .and_then(|tx| {
                crate::parser::parse_datagram(&tx.bytes, &self.cfg.limits)
                    .ok()
                    .and_then(|m| m.headers().to().ok())
                    .and_then(|t| t.tag().map(str::to_string))
            })
            .unwrap_or(tag);
        let ok = req.response(200, "OK", Some(&invite_tag));
        let _ = self.respond(now, cancel_tx, ok);
        if state == State::Proceeding {
            let r487 = invite_req.response(487, reason_phrase(487), Some(&invite_tag));
            let _ = self.respond(now, invite_id, r487);
            self.events.push_back(Event::Cancelled {
                tx: invite_id,
                cancel: req,
            });
        }
    }

    /// Sends a response on server transaction `tx`. A 2xx to an INVITE is retransmitted
    /// by the endpoint until the ACK arrives (or Timer L fires: [`Event::AckTimeout`]).
    pub fn respond(&mut self, now: Instant, id: TxId, resp: Response) -> Result<(), TxError> {
        let cfg_t1 = self.cfg.t1;
        let tx = self.txs.get_mut(&id).ok_or(TxError::UnknownTransaction)?;
        if tx.client {
            return Err(TxError::UnknownTransaction);
        }
        let status = resp.status;
        match tx.state {
            State::Initial | State::Proceeding => {}
            _ => return Err(TxError::InvalidState),
        }
        tx.bytes = resp.to_bytes();
        tx.last_status = status;
        self.transmits.push_back(Transmit {
            peer: tx.peer,
            payload: tx.bytes.clone(),
        });
        tx.disarm(Timer::Trying);
        if status < 200 {
            tx.state = State::Proceeding;
            return Ok(());
        }
        tx.disarm(Timer::Guard);
        let reliable = tx.reliable();
        if tx.method == Method::Invite {
            if (200..300).contains(&status) {
                tx.state = State::Accepted;
                tx.interval = cfg_t1;
                tx.arm(Timer::L, now + cfg_t1 * 64, &mut self.heap);
                if !reliable {
                    tx.arm(Timer::Retransmit2xx, now + cfg_t1, &mut self.heap);
                }
                if let Some(ak) = ack_key(&tx.request) {
                    tx.ack_key = Some(ak.clone());
                    self.ack_keys.insert(ak, id);
                }
            } else {
                tx.state = State::Completed;
                tx.interval = cfg_t1;
                if !reliable {
                    tx.arm(Timer::G, now + cfg_t1, &mut self.heap);
                }
                tx.arm(Timer::H, now + cfg_t1 * 64, &mut self.heap);
            }
        } else {
            tx.state = State::Completed;
            let wait = if reliable {
                Duration::ZERO
            } else {
                cfg_t1 * 64
            };
            tx.arm(Timer::J, now + wait, &mut self.heap);
        }
        Ok(())
    }

    /// The request that created server or client transaction `tx`.
    pub fn request_of(&self, id: TxId) -> Option<&Request> {
        self.txs.get(&id).map(|t| &t.request)
    }

    /// Starts a client transaction. The request must carry a top Via with an RFC 3261
    /// branch (see [`Endpoint::new_branch`]) and the mandatory headers.
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Request,
        dest: Peer,
    ) -> Result<TxId, TxError> {
        if req.method == Method::Ack {
            return Err(TxError::InvalidRequest);
        }
        let via = req.headers.top_via().map_err(|_| TxError::InvalidRequest)?;
        let branch = via
            .branch()
            .filter(|b| b.starts_with(BRANCH_COOKIE))
            .ok_or(TxError::InvalidRequest)?
            .to_string();
        if req.headers.cseq().is_err() || req.headers.call_id().is_none() {
            return Err(TxError::InvalidRequest);
        }
        let key = TxKey {
            branch,
            method: req.method.clone(),
            client: true,
            sent_by: String::new(),
        };
        if self.keys.contains_key(&key) {
            return Err(TxError::InvalidRequest);
        }
        let id = TxId(self.next_id);
        self.next_id += 1;
        let bytes = req.to_bytes();
        let mut tx = Tx {
            id,
            key: key.clone(),
            client: true,
            method: req.method.clone(),
            state: State::Initial,
            peer: dest,
            request: req,
            bytes,
            last_status: 0,
            interval: self.cfg.t1,
            timers: Vec::new(),
            ack: None,
            accepted: Vec::new(),
            cancel: CancelState::None,
            ack_key: None,
            acked: false,
            merge_key: None,
        };
        let reliable = dest.transport.is_reliable();
        if tx.method == Method::Invite {
            if !reliable {
                tx.arm(Timer::A, now + self.cfg.t1, &mut self.heap);
            }
            tx.arm(Timer::B, now + self.cfg.t1 * 64, &mut self.heap);
        } else {
            if !reliable {
                tx.arm(Timer::E, now + self.cfg.t1, &mut self.heap);
            }
            tx.arm(Timer::F, now + self.cfg.t1 * 64, &mut self.heap);
        }
        self.transmits.push_back(Transmit {
            peer: dest,
            payload: tx.bytes.clone(),
        });
        self.keys.insert(key, id);
        self.txs.insert(id, tx);
        Ok(id)
    }

    /// Sends an ACK for a 2xx response received on INVITE client transaction `tx` (the
    /// dialog layer builds it). The endpoint re-sends it when the same 2xx is
    /// retransmitted. `tx` may be `None` for a stray 2xx.
    pub fn send_ack(&mut self, tx: Option<TxId>, ack: &Request, dest: Peer) {
        let bytes = ack.to_bytes();
        if let Some(t) = tx.and_then(|id| self.txs.get_mut(&id)) {
            let tag = ack
                .headers
                .to()
                .ok()
                .and_then(|t| t.tag().map(str::to_string))
                .unwrap_or_default();
            if let Some(e) = t.accepted.iter_mut().find(|(tg, _)| *tg == tag) {
                e.1 = Some((bytes.clone(), dest));
            }
        }
        self.transmits.push_back(Transmit {
            peer: dest,
            payload: bytes,
        });
    }

    /// Sends a message outside any transaction (e.g. a keep-alive or a stateless reply).
    pub fn send_raw(&mut self, peer: Peer, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, payload });
    }

    /// Cancels INVITE client transaction `tx` (RFC 3261 §9.1). The CANCEL is sent once a
    /// provisional response has arrived. If no final response arrives within 64*T1 the
    /// INVITE transaction times out ([`Event::Timeout`]).
    pub fn cancel(&mut self, now: Instant, id: TxId) -> Result<(), TxError> {
        let tx = self.txs.get_mut(&id).ok_or(TxError::UnknownTransaction)?;
        if !tx.client || tx.method != Method::Invite {
            return Err(TxError::InvalidState);
        }
        match (tx.state, &tx.cancel) {
            (_, CancelState::Sent | CancelState::Pending) => Ok(()),
            (State::Initial, _) => {
                tx.cancel = CancelState::Pending;
                Ok(())
            }
            (State::Proceeding, _) => {
                self.send_cancel(now, id);
                Ok(())
            }
            _ => Err(TxError::InvalidState),
        }
    }

    fn send_cancel(&mut self, now: Instant, id: TxId) {
        let guard = now + self.cfg.t1 * 64;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        tx.cancel = CancelState::Sent;
        tx.arm(Timer::Guard, guard, &mut self.heap);
        let inv = &tx.request;
        let mut c = Request::new(Method::Cancel, inv.uri.clone());
        for h in inv.headers.iter() {
            match h.name {
                HeaderName::Via => {
                    // Only the top Via.
                    if c.headers.get(&HeaderName::Via).is_none()
                        && let Ok(v) = inv.headers.top_via()
                    {
                        c.headers.push(HeaderName::Via, v.to_string());
                    }
                }
                HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::Route
                | HeaderName::MaxForwards => c.headers.push(h.name.clone(), h.value.clone()),
                HeaderName::CSeq => {
                    if let Ok(cs) = inv.headers.cseq() {
                        c.headers
                            .push(HeaderName::CSeq, format!("{} CANCEL", cs.seq));
                    }
                }
                _ => {}
            }
        }
        let peer = tx.peer;
        let _ = self.send_request(now, c, peer);
    }

    fn on_response(&mut self, now: Instant, resp: Response, source: Peer) {
        if let Err(error) = resp.validate() {
            self.events.push_back(Event::BadMessage {
                source,
                error,
                answered: false,
            });
            return;
        }
        let (Ok(via), Ok(cseq)) = (resp.headers.top_via(), resp.headers.cseq()) else {
            return;
        };
        let key = TxKey {
            branch: via.branch().unwrap_or("").to_string(),
            method: cseq.method.clone(),
            client: true,
            sent_by: String::new(),
        };
        let Some(&id) = self.keys.get(&key) else {
            self.events.push_back(Event::StrayResponse {
                response: resp,
                source,
            });
            return;
        };
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let status = resp.status;
        let reliable = tx.reliable();
        let t1 = self.cfg.t1;
        let t2 = self.cfg.t2;
        let t4 = self.cfg.t4;
        if tx.method == Method::Invite {
            match (tx.state, status) {
                (State::Initial | State::Proceeding, 100..=199) => {
                    tx.state = State::Proceeding;
                    tx.disarm(Timer::A);
                    tx.disarm(Timer::B);
                    let pending = matches!(tx.cancel, CancelState::Pending);
                    self.events.push_back(Event::Response {
                        tx: id,
                        response: resp,
                        source,
                    });
                    if pending {
                        self.send_cancel(now, id);
                    }
                }
                (State::Initial | State::Proceeding, 200..=299) => {
                    tx.state = State::Accepted;
                    tx.disarm(Timer::A);
                    tx.disarm(Timer::B);
                    tx.disarm(Timer::Guard);
                    tx.arm(Timer::M, now + t1 * 64, &mut self.heap);
                    let tag = to_tag(&resp);
                    tx.accepted.push((tag, None));
                    self.events.push_back(Event::Response {
                        tx: id,
                        response: resp,
                        source,
                    });
                }
                (State::Initial | State::Proceeding, _) => {
                    tx.state = State::Completed;
                    tx.disarm(Timer::A);
                    tx.disarm(Timer::B);
                    tx.disarm(Timer::Guard);
                    let ack = build_non2xx_ack(&tx.request, &resp).to_bytes();
                    self.transmits.push_back(Transmit {
                        peer: tx.peer,
                        payload: ack.clone(),
                    });
                    tx.ack = Some(ack);
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    tx.arm(Timer::D, now + wait, &mut self.heap);
                    self.events.push_back(Event::Response {
                        tx: id,
                        response: resp,
                        source,
                    });
                }
                (State::Completed, 300..) => {
                    if let Some(a) = &tx.ack {
                        self.transmits.push_back(Transmit {
                            peer: tx.peer,
                            payload: a.clone(),
                        });
                    }
                }
                (State::Accepted, 200..=299) => {
                    let tag = to_tag(&resp);
                    match tx.accepted.iter().find(|(t, _)| *t == tag) {
                        Some((_, Some((ack, peer)))) => {
                            // Retransmitted 2xx: repeat our ACK.
                            self.transmits.push_back(Transmit {
                                peer: *peer,
                                payload: ack.clone(),
                            });
                        }
                        Some((_, None)) => {}
                        None => {
                            // A forked 2xx from another UAS.
                            tx.accepted.push((tag, None));
                            self.events.push_back(Event::Response {
                                tx: id,
                                response: resp,
                                source,
                            });
                        }
                    }
                }
                _ => {}
            }
        } else {
            match (tx.state, status) {
                (State::Initial | State::Proceeding, 100..=199) => {
                    tx.state = State::Proceeding;
                    if !reliable && tx.timers.iter().any(|(t, _)| *t == Timer::E) {
                        tx.interval = t2;
                    }
                    self.events.push_back(Event::Response {
                        tx: id,
                        response: resp,
                        source,
                    });
                }
                (State::Initial | State::Proceeding, 200..) => {
                    tx.state = State::Completed;
                    tx.disarm(Timer::E);
                    tx.disarm(Timer::F);
                    let wait = if reliable { Duration::ZERO } else { t4 };
                    tx.arm(Timer::K, now + wait, &mut self.heap);
                    self.events.push_back(Event::Response {
                        tx: id,
                        response: resp,
                        source,
                    });
                }
                _ => {}
            }
        }
    }

    /// Processes expired timers. Call at (or after) [`Endpoint::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, t))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let live = self.txs.get(&id).is_some_and(|tx| tx.armed(t, at));
            if live {
                if let Some(tx) = self.txs.get_mut(&id) {
                    tx.disarm(t);
                }
                self.fire(now, id, t);
            }
        }
    }

    fn fire(&mut self, now: Instant, id: TxId, t: Timer) {
        let t2 = self.cfg.t2;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match t {
            Timer::A | Timer::E => {
                self.transmits.push_back(Transmit {
                    peer: tx.peer,
                    payload: tx.bytes.clone(),
                });
                tx.interval = if t == Timer::A {
                    tx.interval * 2
                } else if tx.state == State::Proceeding {
                    t2
                } else {
                    (tx.interval * 2).min(t2)
                };
                let next = now + tx.interval;
                tx.arm(t, next, &mut self.heap);
            }
            Timer::G | Timer::Retransmit2xx => {
                self.transmits.push_back(Transmit {
                    peer: tx.peer,
                    payload: tx.bytes.clone(),
                });
                tx.interval = (tx.interval * 2).min(t2);
                let next = now + tx.interval;
                tx.arm(t, next, &mut self.heap);
            }
            Timer::B | Timer::F => {
                self.events.push_back(Event::Timeout { tx: id });
                self.terminate(id);
            }
            Timer::Guard => {
                if tx.client {
                    // No final response after our CANCEL.
                    self.events.push_back(Event::Timeout { tx: id });
                    self.terminate(id);
                } else if tx.method == Method::Invite {
                    let tag = self.new_tag();
                    let Some(tx) = self.txs.get(&id) else { return };
                    let r = tx.request.response(408, reason_phrase(408), Some(&tag));
                    let _ = self.respond(now, id, r);
                } else {
                    // The application never answered a non-INVITE request: the client has
                    // given up by now (Timer F), so just forget it.
                    self.terminate(id);
                }
            }
            Timer::H => {
                // ACK never came for our non-2xx final.
                self.terminate(id);
            }
            Timer::L => {
                let acked = tx.acked;
                if !acked {
                    self.events.push_back(Event::AckTimeout { tx: id });
                }
                self.terminate(id);
            }
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::M => self.terminate(id),
            Timer::Trying => {
                if tx.state == State::Proceeding && tx.bytes.is_empty() {
                    let r = tx.request.response(100, "Trying", None);
                    tx.bytes = r.to_bytes();
                    self.transmits.push_back(Transmit {
                        peer: tx.peer,
                        payload: tx.bytes.clone(),
                    });
                }
            }
        }
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            self.keys.remove(&tx.key);
            if let Some(ak) = &tx.ack_key
                && self.ack_keys.get(ak) == Some(&id)
            {
                self.ack_keys.remove(ak);
            }
            if let Some(mk) = &tx.merge_key
                && self.merge_keys.get(mk) == Some(&id)
            {
                self.merge_keys.remove(mk);
            }
            self.events.push_back(Event::Terminated { tx: id });
        }
    }

    /// A connection to `addr` over `transport` could not be opened (refused, TLS handshake
    /// failed): the client transactions waiting to go there end now with [`Event::Timeout`]
    /// rather than at Timer B.
    pub fn connection_failed(&mut self, addr: SocketAddr, transport: Transport) {
        let failed: Vec<TxId> = self
            .txs
            .values()
            .filter(|tx| {
                tx.client
                    && tx.peer.addr == addr
                    && tx.peer.transport == transport
                    && matches!(tx.state, State::Initial | State::Proceeding)
            })
            .map(|tx| tx.id)
            .collect();
        for id in failed {
            self.transport_error(id);
        }
    }

    /// Tells the endpoint that sending on transaction `tx` failed (connection refused or
    /// closed): a client transaction ends with [`Event::Timeout`] (RFC 3261 §8.1.3.1).
    pub fn transport_error(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get(&id) {
            if tx.client && matches!(tx.state, State::Initial | State::Proceeding) {
                self.events.push_back(Event::Timeout { tx: id });
            }
            self.terminate(id);
        }
    }
}

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// If `data` is a STUN Binding request (RFC 5389), the Binding success response carrying
/// XOR-MAPPED-ADDRESS = `source`.
pub fn stun_binding_response(data: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    if data.len() < 20 || data[0..2] != [0x00, 0x01] || data[4..8] != STUN_MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if len % 4 != 0 || data.len() != 20 + len {
        return None;
    }
    let txid = &data[8..20];
    let port = source.port() ^ 0x2112;
    let mut attr = Vec::with_capacity(24);
    attr.extend_from_slice(&[0x00, 0x20]); // XOR-MAPPED-ADDRESS
    match source.ip() {
        std::net::IpAddr::V4(ip) => {
            attr.extend_from_slice(&8u16.to_be_bytes());
            attr.extend_from_slice(&[0x00, 0x01]);
            attr.extend_from_slice(&port.to_be_bytes());
            for (b, m) in ip.octets().iter().zip(STUN_MAGIC) {
                attr.push(b ^ m);
            }
        }
        std::net::IpAddr::V6(ip) => {
            attr.extend_from_slice(&20u16.to_be_bytes());
            attr.extend_from_slice(&[0x00, 0x02]);
            attr.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&STUN_MAGIC);
            key[4..].copy_from_slice(txid);
            for (b, k) in ip.octets().iter().zip(key) {
                attr.push(b ^ k);
            }
        }
    }
    let mut out = Vec::with_capacity(20 + attr.len());
    out.extend_from_slice(&[0x01, 0x01]);
    out.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    out.extend_from_slice(&STUN_MAGIC);
    out.extend_from_slice(txid);
    out.extend_from_slice(&attr);
    Some(out)
}

fn to_tag(r: &Response) -> String {
    r.headers
        .to()
        .ok()
        .and_then(|t| t.tag().map(str::to_string))
        .unwrap_or_default()
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch as the INVITE.
fn build_non2xx_ack(inv: &Request, resp: &Response) -> Request {
    let mut a = Request::new(Method::Ack, inv.uri.clone());
    if let Ok(v) = inv.headers.top_via() {
        a.headers.push(HeaderName::Via, v.to_string());
    }
    for h in inv.headers.iter() {
        match h.name {
            HeaderName::From | HeaderName::CallId | HeaderName::Route | HeaderName::MaxForwards => {
                a.headers.push(h.name.clone(), h.value.clone())
            }
            _ => {}
        }
    }
    if let Some(to) = resp.headers.get(&HeaderName::To) {
        a.headers.push(HeaderName::To, to);
    }
    if let Ok(cs) = inv.headers.cseq() {
        a.headers.push(HeaderName::CSeq, format!("{} ACK", cs.seq));
    }
    a
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
