//! Dialogs (RFC 3261 §12) for both roles, session timers (RFC 4028) and DTMF in INFO.
//!
//! A [`Dialog`] is plain state owned by the application's call object. It builds
//! in-dialog requests (route set, CSeq, remote target) and checks and learns from
//! in-dialog requests and responses. It sends nothing: requests it builds go through
//! [`crate::transaction::Endpoint::send_request`] (ACKs for 2xx through
//! [`crate::transaction::Endpoint::send_ack`]).

use std::time::{Duration, Instant};

use crate::error::ParseError;
use crate::headers::{Contacts, NameAddr, Refresher, SessionExpires, Via};
use crate::message::{HeaderName, Method, Request, Response};
use crate::uri::{Scheme, Uri};

/// Which side created the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Dialog identifier: Call-ID and the two tags, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an incoming request belongs to (we are the To side).
    pub fn for_incoming_request(req: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.headers.call_id()?.to_string(),
            local_tag: req.headers.to().ok()?.tag()?.to_string(),
            remote_tag: req.headers.from().ok()?.tag().unwrap_or("").to_string(),
        })
    }

    /// The id of the dialog a response to our request belongs to.
    pub fn for_incoming_response(resp: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.headers.call_id()?.to_string(),
            local_tag: resp.headers.from().ok()?.tag()?.to_string(),
            remote_tag: resp.headers.to().ok()?.tag()?.to_string(),
        })
    }
}

/// Session-timer settings (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Interval we ask for / accept (seconds).
    pub session_expires: u32,
    /// Smallest interval we accept (>= 90).
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig {
            session_expires: 1800,
            min_se: 90,
        }
    }
}

/// Negotiated session timer of a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: u32,
    /// True if we must send the refreshes.
    pub we_refresh: bool,
    /// Last successful refresh (or dialog establishment).
    pub last_refresh: Instant,
}

/// What to do when the session-timer deadline is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerAction {
    /// Send a refresh (re-INVITE or UPDATE).
    Refresh,
    /// The peer did not refresh: send BYE (RFC 4028 §10).
    Expire,
}

impl SessionTimer {
    /// Next deadline and what to do then.
    pub fn deadline(&self) -> (Instant, SessionTimerAction) {
        let i = u64::from(self.interval);
        if self.we_refresh {
            (
                self.last_refresh + Duration::from_secs(i / 2),
                SessionTimerAction::Refresh,
            )
        } else {
            let margin = (i / 3).min(32);
            (
                self.last_refresh + Duration::from_secs(i - margin),
                SessionTimerAction::Expire,
            )
        }
    }
}

/// A dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub role: Role,
    pub state: DialogState,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our address of record (From for UAC, To for UAS), without tag.
    pub local_uri: NameAddr,
    pub remote_uri: NameAddr,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Route set, in the order to put in Route headers.
    pub route_set: Vec<NameAddr>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    /// Our Contact.
    pub local_contact: Uri,
    pub secure: bool,
    pub session_timer: Option<SessionTimer>,
    /// CSeq of the INVITE that established (or last re-negotiated) the session.
    pub invite_seq: u32,
}

fn single_contact(h: &crate::message::Headers) -> Result<Uri, ParseError> {
    match h.contacts()? {
        Some(Contacts::List(l)) if !l.is_empty() => Ok(l[0].uri.clone()),
        _ => Err(ParseError::MissingHeader("Contact")),
    }
}

fn without_tag(mut n: NameAddr) -> NameAddr {
    n.params.remove("tag");
    n
}

impl Dialog {
    /// Dialog created by answering `invite` with a 1xx/2xx carrying `local_tag`.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        local_contact: Uri,
    ) -> Result<Dialog, ParseError> {
        let h = &invite.headers;
        let from = h.from()?;
        let cseq = h.cseq()?;
        Ok(Dialog {
            role: Role::Uas,
            state: DialogState::Early,
            call_id: h
                .call_id()
                .ok_or(ParseError::MissingHeader("Call-ID"))?
                .to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: from.tag().unwrap_or("").to_string(),
            local_uri: without_tag(h.to()?),
            remote_uri: without_tag(from),
            remote_target: single_contact(h)?,
            route_set: h.routes(&HeaderName::RecordRoute)?,
            local_seq: 0,
            remote_seq: Some(cseq.seq),
            secure: invite.uri.scheme == Scheme::Sips,
            local_contact,
            session_timer: None,
            invite_seq: cseq.seq,
        })
    }

    /// Dialog created by a 1xx (with To tag) or 2xx response to our INVITE.
    pub fn uac(
        invite: &Request,
        resp: &Response,
        local_contact: Uri,
    ) -> Result<Dialog, ParseError> {
        let h = &invite.headers;
        let to = resp.headers.to()?;
        let remote_tag = to.tag().ok_or(ParseError::BadHeader("To"))?.to_string();
        let from = h.from()?;
        let mut routes = resp.headers.routes(&HeaderName::RecordRoute)?;
        routes.reverse();
        let cseq = h.cseq()?;
        Ok(Dialog {
            role: Role::Uac,
            state: if resp.is_success() {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            call_id: h
                .call_id()
                .ok_or(ParseError::MissingHeader("Call-ID"))?
                .to_string(),
            local_tag: from.tag().unwrap_or("").to_string(),
            remote_tag,
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            remote_target: single_contact(&resp.headers).unwrap_or_else(|_| invite.uri.clone()),
            route_set: routes,
            local_seq: cseq.seq,
            remote_seq: None,
            secure: invite.uri.scheme == Scheme::Sips,
            local_contact,
            session_timer: None,
            invite_seq: cseq.seq,
        })
    }

    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// The URI the runtime should resolve to find where to send the next in-dialog
    /// request: first route, or the remote target.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&self.remote_target)
    }

    /// Builds an in-dialog request (RFC 3261 §12.2.1.1). `via` is our Via with a new
    /// branch. CSeq is incremented for everything except ACK and CANCEL.
    pub fn create_request(&mut self, method: Method, via: &Via) -> Request {
        let seq = match method {
            Method::Ack | Method::Cancel => self.invite_seq,
            _ => {
                self.local_seq = self.local_seq.wrapping_add(1).max(1);
                self.local_seq
            }
        };
        if method == Method::Invite {
            self.invite_seq = seq;
        }
        let strict = self
            .route_set
            .first()
            .is_some_and(|r| !r.uri.params.contains("lr"));
        let (ruri, routes): (Uri, Vec<String>) = if strict {
            let mut routes: Vec<String> =
                self.route_set[1..].iter().map(|r| r.to_string()).collect();
            routes.push(format!("<{}>", self.remote_target));
            (self.route_set[0].uri.clone(), routes)
        } else {
            (
                self.remote_target.clone(),
                self.route_set.iter().map(|r| r.to_string()).collect(),
            )
        };
        let mut r = Request::new(method.clone(), ruri);
        let h = &mut r.headers;
        h.push(HeaderName::Via, via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        for rt in routes {
            h.push(HeaderName::Route, rt);
        }
        let mut from = self.local_uri.clone();
        from.set_tag(&self.local_tag);
        let mut to = self.remote_uri.clone();
        if !self.remote_tag.is_empty() {
            to.set_tag(&self.remote_tag);
        }
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, to.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Refer
        ) {
            h.push(HeaderName::Contact, format!("<{}>", self.local_contact));
        }
        r
    }

    /// ACK for a 2xx to our INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4).
    pub fn create_ack(&mut self, invite_seq: u32, via: &Via) -> Request {
        let saved = self.invite_seq;
        self.invite_seq = invite_seq;
        let a = self.create_request(Method::Ack, via);
        self.invite_seq = saved;
        a
    }

    /// Checks an incoming in-dialog request (§12.2.2). `Err(status)` means answer with
    /// that status (500 for an out-of-order CSeq). Updates remote CSeq and, for target
    /// refresh requests, the remote target; a BYE terminates the dialog.
    pub fn handle_request(&mut self, req: &Request) -> Result<(), u16> {
        let cseq = req.headers.cseq().map_err(|_| 400u16)?;
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            if let Some(r) = self.remote_seq
                && cseq.seq <= r
            {
                return Err(500);
            }
            self.remote_seq = Some(cseq.seq);
        }
        match req.method {
            Method::Invite | Method::Update => {
                if let Ok(c) = single_contact(&req.headers) {
                    self.remote_target = c;
                }
            }
            Method::Bye => self.state = DialogState::Terminated,
            Method::Ack if self.state == DialogState::Early => {
                self.state = DialogState::Confirmed;
            }
            _ => {}
        }
        Ok(())
    }

    /// Learns from a response to one of our in-dialog requests (or to the initial INVITE).
    pub fn handle_response(&mut self, method: &Method, resp: &Response) {
        if resp.is_success() {
            if matches!(method, Method::Invite | Method::Update)
                && let Ok(c) = single_contact(&resp.headers)
            {
                self.remote_target = c;
            }
            if *method == Method::Invite && self.state == DialogState::Early {
                self.state = DialogState::Confirmed;
            }
            if *method == Method::Bye {
                self.state = DialogState::Terminated;
            }
        } else if matches!(resp.status, 481 | 408) {
            // RFC 3261 §12.2.1.2: the dialog is gone.
            self.state = DialogState::Terminated;
        }
    }

    /// Marks the dialog confirmed (UAS: when sending the 2xx).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }
}

/// UAS side of RFC 4028 for an INVITE/UPDATE: decides the session interval and who
/// refreshes. `Err(response)` is a 422 to send. `Ok(None)`: no session timer.
/// On success, call [`apply_session_timer`] on the 2xx.
pub fn negotiate_session_timer_uas(
    req: &Request,
    cfg: &SessionTimerConfig,
    to_tag: &str,
    now: Instant,
) -> Result<Option<SessionTimer>, Response> {
    let se = req.headers.session_expires().ok().flatten();
    let supports_timer = req.headers.supports("timer");
    let Some(se) = se else {
        // The UAC did not ask; we may still run a timer and refresh ourselves if it
        // supports the extension, otherwise none (we cannot make it refresh).
        if supports_timer {
            return Ok(Some(SessionTimer {
                interval: cfg.session_expires,
                we_refresh: true,
                last_refresh: now,
            }));
        }
        return Ok(None);
    };
    if se.delta < cfg.min_se {
        let mut r = req.response(422, "Session Interval Too Small", Some(to_tag));
        r.headers.push(HeaderName::MinSe, cfg.min_se.to_string());
        return Err(r);
    }
    let interval = se.delta.min(cfg.session_expires.max(cfg.min_se));
    let we_refresh = match se.refresher {
        Some(Refresher::Uas) => true,
        Some(Refresher::Uac) => false,
        // RFC 4028 §9: if the UAC supports timer it should refresh, else we do.
        None => !supports_timer,
    };
    Ok(Some(SessionTimer {
        interval,
        we_refresh,
        last_refresh: now,
    }))
}

/// Adds Session-Expires (and Require: timer when the peer refreshes or supports it) to
/// our 2xx.
pub fn apply_session_timer(resp: &mut Response, st: &SessionTimer, peer_supports_timer: bool) {
    let se = SessionExpires {
        delta: st.interval,
        refresher: Some(if st.we_refresh {
            Refresher::Uas
        } else {
            Refresher::Uac
        }),
    };
    resp.headers.set(HeaderName::SessionExpires, se.to_string());
    if peer_supports_timer {
        resp.headers.push(HeaderName::Require, "timer");
    }
}

/// UAC side: adds Supported: timer, Session-Expires and Min-SE to an INVITE.
pub fn request_session_timer(req: &mut Request, cfg: &SessionTimerConfig) {
    req.headers.push(HeaderName::Supported, "timer");
    req.headers
        .set(HeaderName::SessionExpires, cfg.session_expires.to_string());
    req.headers.set(HeaderName::MinSe, cfg.min_se.to_string());
}

/// UAC side: the session timer resulting from a 2xx to our INVITE.
pub fn session_timer_from_response(resp: &Response, now: Instant) -> Option<SessionTimer> {
    let se = resp.headers.session_expires().ok().flatten()?;
    Some(SessionTimer {
        interval: se.delta.max(90),
        // No refresher in the answer: the UAC (we) refreshes (§7.2).
        we_refresh: se.refresher != Some(Refresher::Uas),
        last_refresh: now,
    })
}

/// Progress of an outgoing call, as reported to the application (trunks, dial-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallProgress {
    Trying,
    Ringing,
    /// 183 Session Progress (early media).
    EarlyMedia,
    Answered,
    Busy,
    /// No answer within the ring timeout, or 408/480.
    NoAnswer,
    /// Declined or refused (403, 404, 486 excluded, 603…).
    Rejected,
    /// Anything else: 5xx, transport error, timeout.
    Failed,
}

impl CallProgress {
    /// Maps a response status to call progress. 401/407 are handled by
    /// [`crate::auth::authorize_request`] first and count as `Rejected` only when the
    /// retry is challenged again.
    pub fn from_status(status: u16) -> CallProgress {
        match status {
            100 => CallProgress::Trying,
            180..=182 => CallProgress::Ringing,
            183 => CallProgress::EarlyMedia,
            101..=199 => CallProgress::Trying,
            200..=299 => CallProgress::Answered,
            486 | 600 => CallProgress::Busy,
            408 | 480 => CallProgress::NoAnswer,
            401 | 403 | 404 | 407 | 484 | 485 | 488 | 603 | 604 | 606 => CallProgress::Rejected,
            300..=499 => CallProgress::Rejected,
            _ => CallProgress::Failed,
        }
    }
}

/// A DTMF digit received in an INFO request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfInfo {
    /// 0-9, *, #, A-D.
    pub digit: char,
    pub duration_ms: Option<u32>,
}

/// Parses an INFO body carrying DTMF: `application/dtmf-relay` (`Signal=5\r\nDuration=160`)
/// or `application/dtmf` (`5`). `None` for other content.
pub fn parse_dtmf_info(content_type: Option<&str>, body: &[u8]) -> Option<DtmfInfo> {
    let ct = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let norm = |c: &str| -> Option<char> {
        let c = c.trim();
        match c {
            "10" => return Some('*'),
            "11" => return Some('#'),
            _ => {}
        }
        let mut chars = c.chars();
        let d = chars.next()?.to_ascii_uppercase();
        if chars.next().is_some() {
            return None;
        }
        matches!(d, '0'..='9' | '*' | '#' | 'A'..='D').then_some(d)
    };
    match ct.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration = None;
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = norm(v),
                    "duration" => duration = v.trim().parse().ok(),
                    _ => {}
                }
            }
            Some(DtmfInfo {
                digit: digit?,
                duration_ms: duration,
            })
        }
        "application/dtmf" => Some(DtmfInfo {
            digit: norm(text)?,
            duration_ms: None,
        }),
        _ => None,
    }
}

/// Parameters for a new out-of-dialog request (initial INVITE, REGISTER, OPTIONS).
#[derive(Debug, Clone)]
pub struct OutgoingRequest<'a> {
    pub method: Method,
    pub request_uri: Uri,
    pub from: NameAddr,
    pub from_tag: &'a str,
    pub to: NameAddr,
    pub call_id: &'a str,
    pub cseq: u32,
    pub contact: Option<Uri>,
    /// Pre-loaded route set (e.g. an outbound proxy), in order.
    pub routes: Vec<NameAddr>,
    pub via: Via,
}

impl OutgoingRequest<'_> {
    pub fn build(self) -> Request {
        let mut r = Request::new(self.method.clone(), self.request_uri);
        let h = &mut r.headers;
        h.push(HeaderName::Via, self.via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        for rt in &self.routes {
            h.push(HeaderName::Route, rt.to_string());
        }
        let mut from = self.from;
        from.set_tag(self.from_tag);
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, self.to.to_string());
        h.push(HeaderName::CallId, self.call_id);
        h.push(HeaderName::CSeq, format!("{} {}", self.cseq, self.method));
        if let Some(c) = self.contact {
            h.push(HeaderName::Contact, format!("<{c}>"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Transport;
    use crate::message::Message;
    use crate::parser::{Limits, parse_datagram};
    use crate::uri::Host;

    const INV: &str = "INVITE sip:conf@10.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
Record-Route: <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a\r\n\
To: <sip:conf@10.0.0.1>\r\n\
Call-ID: d1\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:alice@192.0.2.1:5060>\r\n\
Supported: timer\r\n\
Session-Expires: 1200\r\n\
Content-Length: 0\r\n\r\n";

    fn req(s: &str) -> Request {
        match parse_datagram(s.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    fn via(b: &str) -> Via {
        Via::new(
            Transport::Udp,
            Host::parse("10.0.0.1").unwrap(),
            Some(5060),
            b,
        )
    }

    fn contact() -> Uri {
        Uri::parse("sip:conclave@10.0.0.1:5060").unwrap()
    }

    #[test]
    fn uas_dialog_builds_bye_with_route_set() {
        let inv = req(INV);
        let mut d = Dialog::uas(&inv, "b", contact()).unwrap();
        assert_eq!(d.route_set.len(), 2);
        assert_eq!(d.remote_seq, Some(10));
        let bye = d.create_request(Method::Bye, &via("z9hG4bKbye"));
        assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.1:5060");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        assert_eq!(bye.headers.from().unwrap().tag(), Some("b"));
        assert_eq!(bye.headers.to().unwrap().tag(), Some("a"));
        assert_eq!(bye.headers.cseq().unwrap().seq, 1);
        assert_eq!(d.next_hop().to_string(), "sip:p2.example.com;lr");
        // Incoming in-dialog requests: CSeq must grow.
        let mut reinv = req(&INV.replace("CSeq: 10", "CSeq: 11").replace(
            "Contact: <sip:alice@192.0.2.1:5060>",
            "Contact: <sip:alice@192.0.2.99:5070>",
        ));
        reinv
            .headers
            .set(HeaderName::To, "<sip:conf@10.0.0.1>;tag=b");
        assert_eq!(DialogId::for_incoming_request(&reinv).unwrap(), d.id());
        assert_eq!(d.handle_request(&reinv), Ok(()));
        assert_eq!(d.remote_target.to_string(), "sip:alice@192.0.2.99:5070");
        assert_eq!(d.handle_request(&reinv), Err(500), "old CSeq");
        let bye_in = req(&INV
            .replace("INVITE sip", "BYE sip")
            .replace("10 INVITE", "12 BYE"));
        assert_eq!(d.handle_request(&bye_in), Ok(()));
        assert_eq!(d.state, DialogState::Terminated);
    }

    #[test]
    fn uac_dialog_reverses_record_route_and_acks() {
        let mut inv = req(INV);
        inv.headers.remove(&HeaderName::RecordRoute);
        let resp_text = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a\r\n\
To: <sip:conf@10.0.0.1>;tag=z\r\n\
Call-ID: d1\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:gw@198.51.100.1>\r\n\
Session-Expires: 600;refresher=uac\r\n\r\n";
        let Message::Response(resp) =
            parse_datagram(resp_text.as_bytes(), &Limits::default()).unwrap()
        else {
            panic!()
        };
        let mut d = Dialog::uac(&inv, &resp, contact()).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.route_set[0].uri.to_string(), "sip:p1.example.com;lr");
        assert_eq!(DialogId::for_incoming_response(&resp).unwrap(), d.id());
        let ack = d.create_ack(10, &via("z9hG4bKack"));
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "10 ACK");
        assert_eq!(ack.uri.to_string(), "sip:gw@198.51.100.1");
        let reinv = d.create_request(Method::Invite, &via("z9hG4bKr"));
        assert_eq!(reinv.headers.cseq().unwrap().seq, 11);
        assert!(reinv.headers.get(&HeaderName::Contact).is_some());
        let t0 = Instant::now();
        let st = session_timer_from_response(&resp, t0).unwrap();
        assert!(st.we_refresh);
        assert_eq!(
            st.deadline(),
            (t0 + Duration::from_secs(300), SessionTimerAction::Refresh)
        );
    }

    #[test]
    fn strict_routing() {
        let inv = req(&INV.replace(
            "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n",
            "Record-Route: <sip:strict.example.com>\r\n",
        ));
        let mut d = Dialog::uas(&inv, "b", contact()).unwrap();
        let bye = d.create_request(Method::Bye, &via("z9hG4bKs"));
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        assert_eq!(
            bye.headers.get(&HeaderName::Route),
            Some("<sip:alice@192.0.2.1:5060>")
        );
    }

    #[test]
    fn session_timer_negotiation() {
        let t0 = Instant::now();
        let cfg = SessionTimerConfig::default();
        let inv = req(INV);
        let st = negotiate_session_timer_uas(&inv, &cfg, "b", t0)
            .unwrap()
            .unwrap();
        assert_eq!(st.interval, 1200);
        assert!(
            !st.we_refresh,
            "UAC supports timer and refresher unspecified"
        );
        assert_eq!(
            st.deadline(),
            (t0 + Duration::from_secs(1168), SessionTimerAction::Expire)
        );
        let mut ok = inv.response(200, "OK", Some("b"));
        apply_session_timer(&mut ok, &st, true);
        assert_eq!(
            ok.headers.get(&HeaderName::SessionExpires),
            Some("1200;refresher=uac")
        );
        assert_eq!(ok.headers.require(), vec!["timer"]);
        // Too small: 422 with Min-SE.
        let small = req(&INV.replace("Session-Expires: 1200", "Session-Expires: 30"));
        let r = negotiate_session_timer_uas(&small, &cfg, "b", t0).unwrap_err();
        assert_eq!(r.status, 422);
        assert_eq!(r.headers.get(&HeaderName::MinSe), Some("90"));
        // No timer support at all: none.
        let none = req(&INV
            .replace("Supported: timer\r\n", "")
            .replace("Session-Expires: 1200\r\n", ""));
        assert_eq!(negotiate_session_timer_uas(&none, &cfg, "b", t0), Ok(None));
        let mut out = none.clone();
        request_session_timer(&mut out, &cfg);
        assert_eq!(out.headers.session_expires().unwrap().unwrap().delta, 1800);
    }

    #[test]
    fn call_progress_mapping() {
        assert_eq!(CallProgress::from_status(180), CallProgress::Ringing);
        assert_eq!(CallProgress::from_status(183), CallProgress::EarlyMedia);
        assert_eq!(CallProgress::from_status(200), CallProgress::Answered);
        assert_eq!(CallProgress::from_status(486), CallProgress::Busy);
        assert_eq!(CallProgress::from_status(480), CallProgress::NoAnswer);
        assert_eq!(CallProgress::from_status(603), CallProgress::Rejected);
        assert_eq!(CallProgress::from_status(503), CallProgress::Failed);
    }

    #[test]
    fn dtmf_info_bodies() {
        assert_eq!(
            parse_dtmf_info(
                Some("application/dtmf-relay"),
                b"Signal=5\r\nDuration=160\r\n"
            ),
            Some(DtmfInfo {
                digit: '5',
                duration_ms: Some(160)
            })
        );
        assert_eq!(
            parse_dtmf_info(Some("application/dtmf-relay"), b"Signal= #\nDuration=100")
                .unwrap()
                .digit,
            '#'
        );
        assert_eq!(
            parse_dtmf_info(Some("application/dtmf"), b"11")
                .unwrap()
                .digit,
            '#'
        );
        assert!(parse_dtmf_info(Some("application/dtmf-relay"), b"Signal=55").is_none());
        assert!(parse_dtmf_info(Some("text/plain"), b"5").is_none());
        assert!(parse_dtmf_info(None, b"5").is_none());
    }

    #[test]
    fn outgoing_request_builder() {
        let r = OutgoingRequest {
            method: Method::Invite,
            request_uri: Uri::parse("sip:+4930123@gw.example.com").unwrap(),
            from: NameAddr::parse("\"Conf\" <sip:conf@example.com>").unwrap(),
            from_tag: "t1",
            to: NameAddr::parse("<sip:+4930123@gw.example.com>").unwrap(),
            call_id: "cid",
            cseq: 1,
            contact: Some(contact()),
            routes: vec![],
            via: via("z9hG4bKo"),
        }
        .build();
        r.validate(&[]).unwrap();
        assert_eq!(r.headers.from().unwrap().tag(), Some("t1"));
    }
}
