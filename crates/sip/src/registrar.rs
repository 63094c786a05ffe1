//! Registrar core (RFC 3261 §10.3, RFC 3581 NAT data). All time is explicit. (Failed
//! authentications are limited by the server's one limiter for every guessable secret.)
//!
//! The application authenticates the REGISTER (see [`crate::auth`]), checks that the user
//! exists and is not frozen, maps the To URI to an address of record, then calls
//! [`Registrar::register`] and answers with [`Registrar::ok_response`] or the error's
//! response.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::headers::{Contacts, NameAddr};
use crate::message::{HeaderName, Request, Response};
use crate::transaction::Peer;
use crate::uri::Uri;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest accepted registration (423 below), seconds.
    pub min_expires: u32,
    /// Longest granted registration, seconds (longer requests are shortened).
    pub max_expires: u32,
    /// Used when the request gives no expiry.
    pub default_expires: u32,
    /// Most contacts per address of record.
    pub max_bindings_per_aor: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_bindings_per_aor: 10,
        }
    }
}

/// One contact registered for an address of record.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact as registered (URI and parameters, without `expires`).
    pub contact: NameAddr,
    pub expires_at: Instant,
    /// Granted lifetime in seconds.
    pub expires: u32,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER really came from (transport, address, connection): reach the
    /// UA through this flow when it is behind NAT.
    pub source: Peer,
    /// True if the Contact's address differs from the source address (NAT).
    pub behind_nat: bool,
    /// `q` parameter (0.0–1.0), 1.0 if absent.
    pub q: f32,
    /// `+sip.instance` (RFC 5626), if given.
    pub instance: Option<String>,
    pub user_agent: Option<String>,
}

impl Binding {
    /// Where requests for this binding should be sent: the source flow when behind NAT
    /// (or over a stream), else the Contact's own address (resolved by the runtime).
    pub fn use_source_flow(&self) -> bool {
        self.behind_nat || self.source.transport.is_reliable()
    }

    /// Seconds left at `now`.
    pub fn remaining(&self, now: Instant) -> u32 {
        self.expires_at.saturating_duration_since(now).as_secs() as u32
    }
}

/// Why a REGISTER was refused; [`RegisterError::response`] builds the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Expiry below the minimum: 423 with Min-Expires.
    IntervalTooBrief(u32),
    /// `Contact: *` with Expires other than 0 or with other contacts: 400.
    InvalidWildcard,
    /// Same Call-ID with a CSeq not higher than the stored one: 500.
    OutOfOrder,
    /// Too many contacts for this AOR: 403.
    TooManyBindings,
    /// Malformed Contact or Expires: 400.
    Malformed,
}

impl RegisterError {
    pub fn response(&self, req: &Request, to_tag: &str) -> Response {
        match self {
            RegisterError::IntervalTooBrief(min) => {
                let mut r = req.response(423, "Interval Too Brief", Some(to_tag));
                r.headers.push(HeaderName::MinExpires, min.to_string());
                r
            }
            RegisterError::InvalidWildcard => {
                req.response(400, "Bad Request - invalid wildcard", Some(to_tag))
            }
            RegisterError::OutOfOrder => {
                req.response(500, "Server Internal Error - out of order", Some(to_tag))
            }
            RegisterError::TooManyBindings => {
                req.response(403, "Forbidden - too many contacts", Some(to_tag))
            }
            RegisterError::Malformed => req.response(400, "Bad Request", Some(to_tag)),
        }
    }
}

/// What a successful REGISTER changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegisterOutcome {
    pub added: Vec<Binding>,
    pub refreshed: Vec<Binding>,
    pub removed: Vec<Binding>,
}

/// Bindings per address of record.
#[derive(Debug, Default)]
pub struct Registrar {
    pub cfg: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
}

fn contact_key(u: &Uri) -> Uri {
    let mut k = u.clone();
    k.headers.clear();
    k
}

impl Registrar {
    pub fn new(cfg: RegistrarConfig) -> Registrar {
        Registrar {
            cfg,
            bindings: HashMap::new(),
        }
    }

    /// Applies an (authenticated) REGISTER for `aor` received from `source`.
    /// A REGISTER without Contact is a query: nothing changes.
    pub fn register(
        &mut self,
        now: Instant,
        aor: &str,
        req: &Request,
        source: Peer,
    ) -> Result<RegisterOutcome, RegisterError> {
        let h = &req.headers;
        let call_id = h.call_id().ok_or(RegisterError::Malformed)?.to_string();
        let cseq = h.cseq().map_err(|_| RegisterError::Malformed)?.seq;
        let header_expires = h.expires().map_err(|_| RegisterError::Malformed)?;
        let contacts = h.contacts().map_err(|_| RegisterError::Malformed)?;
        let user_agent = h.get(&HeaderName::UserAgent).map(str::to_string);
        let mut out = RegisterOutcome::default();
        let list = match contacts {
            None => return Ok(out),
            Some(Contacts::Star) => {
                if header_expires != Some(0) {
                    return Err(RegisterError::InvalidWildcard);
                }
                let existing = self.bindings.get(aor);
                if let Some(b) = existing.and_then(|v| v.iter().find(|b| b.call_id == call_id))
                    && cseq <= b.cseq
                {
                    return Err(RegisterError::OutOfOrder);
                }
                out.removed = self.bindings.remove(aor).unwrap_or_default();
                return Ok(out);
            }
            Some(Contacts::List(l)) => l,
        };
        // Validate everything before changing anything.
        let mut plan = Vec::with_capacity(list.len());
        for c in list {
            let exp = match c.params.value("expires") {
                Some(v) => v
                    .parse::<u64>()
                    .map(|e| e.min(u64::from(u32::MAX)) as u32)
                    .map_err(|_| RegisterError::Malformed)?,
                None => header_expires.unwrap_or(self.cfg.default_expires),
            };
            if exp != 0 && exp < self.cfg.min_expires {
                return Err(RegisterError::IntervalTooBrief(self.cfg.min_expires));
            }
            plan.push((c, exp.min(self.cfg.max_expires)));
        }
        let empty = Vec::new();
        let existing: Vec<&Binding> = self
            .bindings
            .get(aor)
            .unwrap_or(&empty)
            .iter()
            .filter(|b| b.expires_at > now)
            .collect();
        for (c, _) in &plan {
            let key = contact_key(&c.uri);
            if let Some(b) = existing
                .iter()
                .find(|b| contact_key(&b.contact.uri).matches(&key))
                && b.call_id == call_id
                && cseq <= b.cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
        }
        let new_count = plan
            .iter()
            .filter(|(c, e)| {
                *e != 0
                    && !existing
                        .iter()
                        .any(|b| contact_key(&b.contact.uri).matches(&contact_key(&c.uri)))
            })
            .count();
        if existing.len() + new_count > self.cfg.max_bindings_per_aor {
            return Err(RegisterError::TooManyBindings);
        }
        let current = self.bindings.entry(aor.to_string()).or_default();
        current.retain(|b| b.expires_at > now);
        for (mut c, exp) in plan {
            let key = contact_key(&c.uri);
            let pos = current
                .iter()
                .position(|b| contact_key(&b.contact.uri).matches(&key));
            if exp == 0 {
                if let Some(p) = pos {
                    out.removed.push(current.remove(p));
                }
                continue;
            }
            let q = c
                .params
                .value("q")
                .and_then(|q| q.parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            let instance = c.params.value("+sip.instance").map(str::to_string);
            c.params.remove("expires");
            let behind_nat = match c.uri.host.ip() {
                Some(ip) => {
                    ip != source.addr.ip() || c.uri.port.unwrap_or(5060) != source.addr.port()
                }
                None => true,
            };
            let b = Binding {
                contact: c,
                expires_at: now + Duration::from_secs(u64::from(exp)),
                expires: exp,
                call_id: call_id.clone(),
                cseq,
                source,
                behind_nat,
                q,
                instance,
                user_agent: user_agent.clone(),
            };
            match pos {
                Some(p) => {
                    current[p] = b.clone();
                    out.refreshed.push(b);
                }
                None => {
                    current.push(b.clone());
                    out.added.push(b);
                }
            }
        }
        if current.is_empty() {
            self.bindings.remove(aor);
        }
        Ok(out)
    }

    /// Live bindings of an AOR, best `q` first.
    pub fn lookup(&self, now: Instant, aor: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.total_cmp(&a.q));
        v
    }

    /// The 200 OK for a REGISTER: all current bindings with their remaining time.
    pub fn ok_response(&self, now: Instant, aor: &str, req: &Request, to_tag: &str) -> Response {
        let mut r = req.response(200, "OK", Some(to_tag));
        for b in self.lookup(now, aor) {
            r.headers.push(
                HeaderName::Contact,
                format!("{};expires={}", b.contact, b.remaining(now).max(1)),
            );
        }
        r
    }

    /// Removes expired bindings and returns them (AOR, binding).
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Binding)> {
        let mut gone = Vec::new();
        self.bindings.retain(|aor, v| {
            let (dead, live): (Vec<Binding>, Vec<Binding>) =
                v.drain(..).partition(|b| b.expires_at <= now);
            gone.extend(dead.into_iter().map(|b| (aor.clone(), b)));
            *v = live;
            !v.is_empty()
        });
        gone
    }

    /// The addresses of record with a live binding registered from exactly this flow (the
    /// same transport, address and port, and for streams the same connection) whose AOR
    /// starts with `prefix` (e.g. `sip:1001@`): who a request on that flow may be. The same IP
    /// address alone is not enough: anyone behind the same NAT, or anyone who could replay a
    /// registration from elsewhere, would pass.
    pub fn registered_from(&self, now: Instant, prefix: &str, source: Peer) -> Vec<String> {
        let mut aors: Vec<String> = self
            .bindings
            .iter()
            .filter(|(aor, bindings)| {
                aor.starts_with(prefix)
                    && bindings
                        .iter()
                        .any(|b| b.source == source && b.remaining(now) > 0)
            })
            .map(|(aor, _)| aor.clone())
            .collect();
        aors.sort();
        aors
    }

    /// When the next binding expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings
            .values()
            .flat_map(|v| v.iter().map(|b| b.expires_at))
            .min()
    }

    /// Number of AORs with bindings.
    pub fn aor_count(&self) -> usize {
        self.bindings.len()
    }

    /// Removes every binding of an address of record (its account was frozen or deleted);
    /// how many there were.
    pub fn remove(&mut self, aor: &str) -> usize {
        self.bindings.remove(aor).map_or(0, |v| v.len())
    }

    /// Restores a binding (e.g. loaded from the store after a restart).
    pub fn restore(&mut self, aor: &str, b: Binding) {
        self.bindings.entry(aor.to_string()).or_default().push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Transport;
    use crate::message::Message;
    use crate::parser::{Limits, parse_datagram};

    fn reg(contact: &str, expires: Option<u32>, call_id: &str, cseq: u32) -> Request {
        let mut s = format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKr{cseq};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@example.com>;tag=x\r\n\
To: <sip:1001@example.com>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n\
User-Agent: test\r\n"
        );
        if !contact.is_empty() {
            s.push_str(&format!("Contact: {contact}\r\n"));
        }
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        match parse_datagram(s.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    fn nat_source() -> Peer {
        Peer::new(Transport::Udp, "203.0.113.9:61000".parse().unwrap())
    }

    #[test]
    fn register_refresh_query_unregister() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        let req = reg("<sip:1001@192.168.1.10:5060>", Some(600), "c1", 1);
        let out = r.register(t0, "1001", &req, nat_source()).unwrap();
        assert_eq!(out.added.len(), 1);
        let b = &out.added[0];
        assert!(b.behind_nat && b.use_source_flow());
        assert_eq!(b.expires, 600);
        assert_eq!(b.user_agent.as_deref(), Some("test"));
        // Second device with per-contact expires; max_expires caps.
        let req2 = reg("<sip:1001@10.1.1.1>;expires=99999;q=0.5", None, "c2", 1);
        r.register(t0, "1001", &req2, nat_source()).unwrap();
        let l = r.lookup(t0, "1001");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].expires, 3600);
        assert_eq!(l[1].q, 0.5);
        // Refresh from the first device.
        let req3 = reg("<sip:1001@192.168.1.10:5060>", Some(300), "c1", 2);
        let out = r.register(t0, "1001", &req3, nat_source()).unwrap();
        assert_eq!(out.refreshed.len(), 1);
        // Out of order.
        assert_eq!(
            r.register(t0, "1001", &req, nat_source()),
            Err(RegisterError::OutOfOrder)
        );
        // Query: no Contact.
        let q = reg("", None, "c9", 1);
        assert_eq!(
            r.register(t0, "1001", &q, nat_source()),
            Ok(RegisterOutcome::default())
        );
        let ok = r.ok_response(t0, "1001", &q, "tt");
        assert_eq!(ok.headers.get_all(&HeaderName::Contact).count(), 2);
        // Who may a request from the registering address be?
        let from = nat_source();
        assert_eq!(r.registered_from(t0, "100", from), ["1001"]);
        // Same address, another port: another flow.
        let mut other_port = from;
        other_port.addr.set_port(61001);
        assert!(r.registered_from(t0, "100", other_port).is_empty());
        let tcp = Peer::new(Transport::Tcp, from.addr);
        assert!(r.registered_from(t0, "100", tcp).is_empty());
        assert!(r.registered_from(t0, "2", from).is_empty());
        // Un-register one.
        let un = reg("<sip:1001@10.1.1.1>", Some(0), "c2", 2);
        let out = r.register(t0, "1001", &un, nat_source()).unwrap();
        assert_eq!(out.removed.len(), 1);
        assert_eq!(r.lookup(t0, "1001").len(), 1);
        // Expiry.
        assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(300)));
        assert_eq!(r.expire(t0 + Duration::from_secs(299)).len(), 0);
        let gone = r.expire(t0 + Duration::from_secs(300));
        assert_eq!(gone.len(), 1);
        assert_eq!(r.aor_count(), 0);
    }

    #[test]
    fn wildcard_and_errors() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        for (i, c) in ["<sip:a@1.1.1.1>", "<sip:b@1.1.1.2>"].iter().enumerate() {
            let req = reg(c, Some(600), &format!("w{i}"), 1);
            r.register(t0, "1001", &req, nat_source()).unwrap();
        }
        assert_eq!(
            r.register(t0, "1001", &reg("*", Some(10), "w0", 5), nat_source()),
            Err(RegisterError::InvalidWildcard)
        );
        assert_eq!(
            r.register(t0, "1001", &reg("*", None, "w0", 5), nat_source()),
            Err(RegisterError::InvalidWildcard)
        );
        let out = r
            .register(t0, "1001", &reg("*", Some(0), "w0", 5), nat_source())
            .unwrap();
        assert_eq!(out.removed.len(), 2);
        assert!(r.lookup(t0, "1001").is_empty());
        let brief = reg("<sip:a@1.1.1.1>", Some(10), "b", 1);
        let e = r.register(t0, "1001", &brief, nat_source()).unwrap_err();
        assert_eq!(e, RegisterError::IntervalTooBrief(60));
        let resp = e.response(&brief, "t");
        assert_eq!(resp.status, 423);
        assert_eq!(resp.headers.get(&HeaderName::MinExpires), Some("60"));
        // Too many bindings.
        let mut r = Registrar::new(RegistrarConfig {
            max_bindings_per_aor: 1,
            ..RegistrarConfig::default()
        });
        r.register(
            t0,
            "x",
            &reg("<sip:a@1.1.1.1>", None, "m1", 1),
            nat_source(),
        )
        .unwrap();
        assert_eq!(
            r.register(
                t0,
                "x",
                &reg("<sip:b@1.1.1.1>", None, "m2", 1),
                nat_source()
            ),
            Err(RegisterError::TooManyBindings)
        );
    }

    #[test]
    fn not_behind_nat_when_contact_matches_source() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        let src = Peer::new(Transport::Udp, "192.168.1.10:5060".parse().unwrap());
        let out = r
            .register(t0, "a", &reg("<sip:1001@192.168.1.10>", None, "n", 1), src)
            .unwrap();
        assert!(!out.added[0].behind_nat);
    }
}
