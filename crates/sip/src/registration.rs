//! Client-side registration (RFC 3261 §10.2) for trunks whose provider wants Conclave to
//! REGISTER: digest retry, 423 handling, refresh before expiry, retry after failure,
//! un-register. Sans-IO on top of an [`Endpoint`]: it sends through the endpoint and
//! consumes the endpoint's [`Event`]s for its own transactions.

use std::time::{Duration, Instant};

use crate::auth::authorize_request;
use crate::dialog::OutgoingRequest;
use crate::headers::{Contacts, NameAddr, Via};
use crate::message::{HeaderName, Method, Request, Response};
use crate::transaction::{Endpoint, Event, Peer, TxError, TxId};
use crate::uri::{Host, Uri};

#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// Request-URI, e.g. `sip:provider.example.com`.
    pub registrar: Uri,
    /// Address of record (To and From), e.g. `sip:4930123@provider.example.com`.
    pub aor: Uri,
    /// Our Contact.
    pub contact: Uri,
    /// Where to send (resolved by the runtime).
    pub dest: Peer,
    /// Our Via sent-by.
    pub via_host: Host,
    pub via_port: u16,
    pub username: String,
    pub password: String,
    /// Requested lifetime in seconds.
    pub expires: u32,
    /// Wait before trying again after a failure.
    pub retry_after: Duration,
}

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    Idle,
    Registering,
    Registered {
        expires_at: Instant,
    },
    /// Last attempt failed with this status (408 for no answer); retrying later.
    Failed {
        status: u16,
    },
    Unregistering,
    Unregistered,
}

/// One client registration.
#[derive(Debug)]
pub struct Registration {
    cfg: RegistrationConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegistrationState,
    tx: Option<TxId>,
    /// The request of `tx` (for digest retries).
    request: Option<Request>,
    auth_tried: bool,
    next: Option<Instant>,
    expires: u32,
}

impl Registration {
    /// `call_id` and `from_tag` should be random (e.g. from [`Endpoint::new_token`]); the
    /// same Call-ID is kept for all refreshes.
    pub fn new(cfg: RegistrationConfig, call_id: String, from_tag: String) -> Registration {
        let expires = cfg.expires;
        Registration {
            cfg,
            call_id,
            from_tag,
            cseq: 0,
            state: RegistrationState::Idle,
            tx: None,
            request: None,
            auth_tried: false,
            next: None,
            expires,
        }
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// When [`Registration::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    fn build(&mut self, ep: &mut Endpoint, expires: u32) -> Request {
        self.cseq += 1;
        let branch = ep.new_branch();
        let mut via = Via::new(
            self.cfg.dest.transport,
            self.cfg.via_host.clone(),
            Some(self.cfg.via_port),
            &branch,
        );
        via.params.set("rport", None);
        let aor = NameAddr::new(self.cfg.aor.clone());
        let mut r = OutgoingRequest {
            method: Method::Register,
            request_uri: self.cfg.registrar.clone(),
            from: aor.clone(),
            from_tag: &self.from_tag,
            to: aor,
            call_id: &self.call_id,
            cseq: self.cseq,
            contact: Some(self.cfg.contact.clone()),
            routes: vec![],
            via,
        }
        .build();
        r.headers.push(HeaderName::Expires, expires.to_string());
        r
    }

    fn send(&mut self, now: Instant, ep: &mut Endpoint, req: Request) -> Result<(), TxError> {
        let tx = ep.send_request(now, req.clone(), self.cfg.dest)?;
        self.tx = Some(tx);
        self.request = Some(req);
        self.next = None;
        Ok(())
    }

    /// Sends the first REGISTER (or one right now, e.g. after a network change).
    pub fn start(&mut self, now: Instant, ep: &mut Endpoint) -> Result<(), TxError> {
        self.auth_tried = false;
        self.state = RegistrationState::Registering;
        let req = self.build(ep, self.expires);
        self.send(now, ep, req)
    }

    /// Removes our binding (`Expires: 0`).
    pub fn unregister(&mut self, now: Instant, ep: &mut Endpoint) -> Result<(), TxError> {
        self.auth_tried = false;
        self.state = RegistrationState::Unregistering;
        let req = self.build(ep, 0);
        self.send(now, ep, req)
    }

    /// Offers an endpoint event; returns true if it was about this registration.
    pub fn handle_event(&mut self, now: Instant, ep: &mut Endpoint, event: &Event) -> bool {
        match event {
            Event::Response { tx, response, .. } if Some(*tx) == self.tx => {
                self.on_response(now, ep, response);
                true
            }
            Event::Timeout { tx } if Some(*tx) == self.tx => {
                self.tx = None;
                self.fail(now, 408);
                true
            }
            Event::Terminated { tx } if Some(*tx) == self.tx => true,
            _ => false,
        }
    }

    fn fail(&mut self, now: Instant, status: u16) {
        if self.state == RegistrationState::Unregistering {
            self.state = RegistrationState::Unregistered;
            self.next = None;
            return;
        }
        self.state = RegistrationState::Failed { status };
        self.next = Some(now + self.cfg.retry_after);
    }

    fn on_response(&mut self, now: Instant, ep: &mut Endpoint, resp: &Response) {
        let status = resp.status;
        if status < 200 {
            return;
        }
        self.tx = None;
        if (200..300).contains(&status) {
            self.auth_tried = false;
            if self.state == RegistrationState::Unregistering {
                self.state = RegistrationState::Unregistered;
                self.next = None;
                return;
            }
            let granted = granted_expires(resp, &self.cfg.contact).unwrap_or(self.expires);
            if granted == 0 {
                self.fail(now, status);
                return;
            }
            let expires_at = now + Duration::from_secs(u64::from(granted));
            self.state = RegistrationState::Registered { expires_at };
            // Refresh well before expiry: at half-time for short lifetimes, a minute or
            // more ahead for long ones.
            let ahead = (granted / 2).min(120).max(granted.min(5));
            self.next = Some(now + Duration::from_secs(u64::from(granted - ahead)));
            return;
        }
        if matches!(status, 401 | 407) && !self.auth_tried {
            self.auth_tried = true;
            if let Some(orig) = self.request.clone() {
                self.cseq += 1;
                let cnonce = ep.new_token();
                let branch = ep.new_branch();
                if let Some(r) = authorize_request(
                    &orig,
                    resp,
                    &self.cfg.username,
                    &self.cfg.password,
                    &cnonce,
                    &branch,
                ) && self.send(now, ep, r).is_ok()
                {
                    return;
                }
            }
        }
        if status == 423
            && let Some(min) = resp
                .headers
                .get(&HeaderName::MinExpires)
                .and_then(|v| v.trim().parse::<u32>().ok())
            && min > self.expires
        {
            self.expires = min;
            self.auth_tried = false;
            let req = self.build(ep, min);
            if self.send(now, ep, req).is_ok() {
                return;
            }
        }
        self.fail(now, status);
    }

    /// Refreshes or retries when due.
    pub fn handle_timeout(&mut self, now: Instant, ep: &mut Endpoint) {
        if let Some(t) = self.next
            && t <= now
        {
            self.next = None;
            if self.start(now, ep).is_err() {
                self.fail(now, 500);
            }
        }
    }
}

/// The lifetime the registrar granted our contact: its `expires` parameter in the 200's
/// Contact list, else the Expires header.
fn granted_expires(resp: &Response, ours: &Uri) -> Option<u32> {
    if let Ok(Some(Contacts::List(l))) = resp.headers.contacts() {
        for c in l {
            if (c.uri.matches(ours) || (c.uri.user == ours.user && c.uri.host == ours.host))
                && let Some(e) = c.params.value("expires").and_then(|v| v.parse().ok())
            {
                return Some(e);
            }
        }
    }
    resp.headers.expires().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{DigestCredentials, DigestServer};
    use crate::headers::Transport;
    use crate::registrar::{Registrar, RegistrarConfig};
    use crate::transaction::Config;

    struct Pair {
        client: Endpoint,
        server: Endpoint,
        now: Instant,
    }

    const C: &str = "10.0.0.1:5060";
    const S: &str = "198.51.100.1:5060";

    impl Pair {
        /// Moves messages; returns client events and server requests.
        fn pump(&mut self) -> (Vec<Event>, Vec<Event>) {
            let (mut ce, mut se) = (Vec::new(), Vec::new());
            loop {
                let mut moved = false;
                while let Some(t) = self.client.poll_transmit() {
                    moved = true;
                    self.server.handle_datagram(
                        self.now,
                        &t.payload,
                        Peer::new(Transport::Udp, C.parse().unwrap()),
                    );
                }
                while let Some(t) = self.server.poll_transmit() {
                    moved = true;
                    self.client.handle_datagram(
                        self.now,
                        &t.payload,
                        Peer::new(Transport::Udp, S.parse().unwrap()),
                    );
                }
                ce.extend(std::iter::from_fn(|| self.client.poll_event()));
                se.extend(std::iter::from_fn(|| self.server.poll_event()));
                if !moved {
                    return (ce, se);
                }
            }
        }
    }

    fn cfg() -> RegistrationConfig {
        RegistrationConfig {
            registrar: Uri::parse("sip:provider.example.com").unwrap(),
            aor: Uri::parse("sip:4930123@provider.example.com").unwrap(),
            contact: Uri::parse("sip:4930123@10.0.0.1:5060").unwrap(),
            dest: Peer::new(Transport::Udp, S.parse().unwrap()),
            via_host: Host::parse("10.0.0.1").unwrap(),
            via_port: 5060,
            username: "4930123".into(),
            password: "pw".into(),
            expires: 300,
            retry_after: Duration::from_secs(30),
        }
    }

    /// A provider: digest auth, then the registrar core; `min_expires` enforced.
    fn serve(p: &mut Pair, reg: &mut Registrar, digest: &DigestServer, events: Vec<Event>) {
        for e in events {
            let Event::Request {
                tx,
                request,
                source,
            } = e
            else {
                continue;
            };
            let creds = request
                .headers
                .authorization(&HeaderName::Authorization)
                .ok()
                .flatten()
                .and_then(|a| DigestCredentials::parse(&a).ok());
            let ok =
                creds.is_some_and(|c| digest.verify_password(&c, "REGISTER", "pw", 100).is_ok());
            let resp = if !ok {
                let mut r = request.response(401, "Unauthorized", Some("s"));
                for c in digest.challenges(100, false) {
                    r.headers.push(HeaderName::WwwAuthenticate, c);
                }
                r
            } else {
                match reg.register(p.now, "4930123", &request, source) {
                    Ok(_) => reg.ok_response(p.now, "4930123", &request, "s"),
                    Err(e) => e.response(&request, "s"),
                }
            };
            p.server.respond(p.now, tx, resp).unwrap();
        }
    }

    #[test]
    fn register_with_auth_423_refresh_and_unregister() {
        let mut p = Pair {
            client: Endpoint::new(Config::default(), 1),
            server: Endpoint::new(Config::default(), 2),
            now: Instant::now(),
        };
        let digest = DigestServer::new(b"k", "provider");
        let mut reg = Registrar::new(RegistrarConfig {
            min_expires: 600,
            ..RegistrarConfig::default()
        });
        let mut r = Registration::new(cfg(), "reg-call".into(), "ft".into());
        r.start(p.now, &mut p.client).unwrap();
        // 401 → retry with credentials → 423 → retry with 600 → 200.
        for _ in 0..10 {
            let (ce, se) = p.pump();
            for e in &ce {
                r.handle_event(p.now, &mut p.client, e);
            }
            serve(&mut p, &mut reg, &digest, se);
        }
        let (ce, _) = p.pump();
        for e in &ce {
            r.handle_event(p.now, &mut p.client, e);
        }
        let t0 = p.now;
        assert_eq!(
            r.state(),
            RegistrationState::Registered {
                expires_at: t0 + Duration::from_secs(600)
            },
            "{:?}",
            r.state()
        );
        assert_eq!(reg.lookup(t0, "4930123").len(), 1);
        // Refresh 2 minutes before expiry; the nonce is reused only through a new 401.
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(480)));
        p.now = t0 + Duration::from_secs(480);
        r.handle_timeout(p.now, &mut p.client);
        for _ in 0..10 {
            let (ce, se) = p.pump();
            for e in &ce {
                r.handle_event(p.now, &mut p.client, e);
            }
            serve(&mut p, &mut reg, &digest, se);
        }
        assert!(
            matches!(r.state(), RegistrationState::Registered { expires_at } if expires_at == p.now + Duration::from_secs(600))
        );
        // Un-register.
        r.unregister(p.now, &mut p.client).unwrap();
        for _ in 0..10 {
            let (ce, se) = p.pump();
            for e in &ce {
                r.handle_event(p.now, &mut p.client, e);
            }
            serve(&mut p, &mut reg, &digest, se);
        }
        assert_eq!(r.state(), RegistrationState::Unregistered);
        assert!(reg.lookup(p.now, "4930123").is_empty());
    }

    #[test]
    fn wrong_password_and_timeouts_retry_later() {
        let mut p = Pair {
            client: Endpoint::new(Config::default(), 1),
            server: Endpoint::new(Config::default(), 2),
            now: Instant::now(),
        };
        let digest = DigestServer::new(b"k", "provider");
        let mut reg = Registrar::new(RegistrarConfig::default());
        let mut c = cfg();
        c.password = "wrong".into();
        let mut r = Registration::new(c, "reg-2".into(), "ft".into());
        r.start(p.now, &mut p.client).unwrap();
        for _ in 0..10 {
            let (ce, se) = p.pump();
            for e in &ce {
                r.handle_event(p.now, &mut p.client, e);
            }
            serve(&mut p, &mut reg, &digest, se);
        }
        assert_eq!(r.state(), RegistrationState::Failed { status: 401 });
        assert_eq!(r.poll_timeout(), Some(p.now + Duration::from_secs(30)));
        // No server at all: Timer F → 408, retry scheduled.
        let mut lonely = Endpoint::new(Config::default(), 3);
        let mut r = Registration::new(cfg(), "reg-3".into(), "ft".into());
        let t0 = Instant::now();
        r.start(t0, &mut lonely).unwrap();
        let mut now = t0;
        while let Some(t) = lonely.poll_timeout() {
            now = t;
            lonely.handle_timeout(now);
            while let Some(e) = lonely.poll_event() {
                r.handle_event(now, &mut lonely, &e);
            }
            while lonely.poll_transmit().is_some() {}
            if r.state() != RegistrationState::Registering {
                break;
            }
        }
        assert_eq!(r.state(), RegistrationState::Failed { status: 408 });
        assert_eq!(now - t0, Duration::from_secs(32));
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(30)));
    }
}
