//! Guessing secrets: web logins and SIP digest against the one limiter (counts per target and
//! per address, taken before the secret is checked), and replays of a captured digest
//! `Authorization` (nonces bound to the flow and AOR, counts tracked, expiry answered stale).
//! Real HTTP clients (from several loopback addresses) and raw UDP SIP.

use crate::both_backends;
use crate::common::{Db, TestServer, start, start_with};
use conclave_sip::headers::AuthParams;
use conclave_sip::message::{HeaderName, Message};
use conclave_sip::parser::{Limits, parse_datagram};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

both_backends!(
    parallel_wrong_logins_are_refused_once_the_limit_is_reached,
    own_logins_between_guesses_do_not_clear_the_guessed_account,
    one_address_guessing_many_accounts_is_blocked,
);

/// A login from a given loopback address (127.0.0.x): the server sees another client.
async fn login_from(s: &TestServer, from: [u8; 4], username: &str, password: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .build()
        .expect("client");
    client
        .post(format!("{}/api/v1/auth/login", s.base))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("login sent")
        .status()
        .as_u16()
}

async fn parallel_wrong_logins_are_refused_once_the_limit_is_reached(s: &TestServer) {
    let admin = s.admin().await;
    s.user(&admin, "target", "user", None).await;
    let guesses: Vec<String> = (0..200).map(|i| format!("guess-{i}")).collect();
    let replies = futures::future::join_all(guesses.iter().map(|g| s.login("target", g))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 200, "only 401 or 429: {statuses:?}");
    assert!(
        checked <= 10,
        "at most the account's 10 slots are checked, however parallel: {checked} were"
    );
    let refusal = replies.iter().find(|r| r.status == 429).expect("a refusal");
    refusal.expect_problem(429, None);
    // The right password is refused while the account is blocked, from anywhere.
    s.login("target", "target-password").await.expect(429);
    assert_eq!(
        login_from(s, [127, 0, 0, 9], "target", "target-password").await,
        429
    );
}

async fn own_logins_between_guesses_do_not_clear_the_guessed_account(s: &TestServer) {
    let admin = s.admin().await;
    s.user(&admin, "victim", "user", None).await;
    s.user(&admin, "me", "user", None).await;
    for i in 0..9 {
        s.login("victim", &format!("guess-{i}")).await.expect(401);
        // The attacker's own account, logged into rightly between guesses.
        s.login("me", "me-password").await.expect(200);
    }
    s.login("victim", "guess-9").await.expect(401);
    // Ten wrong passwords for the victim: blocked, even for the victim at another address.
    assert_eq!(
        login_from(s, [127, 0, 0, 2], "victim", "victim-password").await,
        429,
        "successes on another account cleared nothing"
    );
    // The address itself is not blocked yet: its own account still works.
    s.login("me", "me-password").await.expect(200);
}

async fn one_address_guessing_many_accounts_is_blocked(s: &TestServer) {
    let admin = s.admin().await;
    s.user(&admin, "bystander", "user", None).await;
    let from = [127, 0, 0, 3];
    for i in 0..20 {
        assert_eq!(
            login_from(s, from, &format!("nobody{i}"), "guess").await,
            401
        );
    }
    // Twenty failures from one address: that address is refused, even with a right password…
    assert_eq!(
        login_from(s, from, "bystander", "bystander-password").await,
        429
    );
    // …but no one else is.
    assert_eq!(
        login_from(s, [127, 0, 0, 4], "bystander", "bystander-password").await,
        200
    );
}

/// A phone's REGISTERs over raw UDP from one socket (one flow).
pub(crate) struct Registrant {
    pub(crate) sock: UdpSocket,
    pub(crate) server: SocketAddr,
    extension: String,
    /// The domain in the To URI (a tenant's SIP domain, or the server's address).
    pub(crate) domain: String,
}

impl Registrant {
    pub(crate) async fn new(server: SocketAddr, from: [u8; 4], extension: &str) -> Registrant {
        Registrant {
            sock: UdpSocket::bind(SocketAddr::from((from, 0)))
                .await
                .expect("bind"),
            server,
            extension: extension.into(),
            domain: "127.0.0.1".into(),
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    /// A REGISTER with this CSeq (its own transaction) and optional Authorization value.
    fn message(&self, cseq: u32, auth: Option<&str>) -> String {
        let (local, ext, domain) = (self.local(), &self.extension, &self.domain);
        let auth = auth.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbf{cseq}x{port};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{ext}@{domain}>;tag=r{port}\r\nTo: <sip:{ext}@{domain}>\r\n\
             Call-ID: reg-{ext}-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@{local}>\r\n\
             Expires: 300\r\n{auth}Content-Length: 0\r\n\r\n",
            port = local.port(),
        )
    }

    async fn send(&self, message: &str) {
        self.sock
            .send_to(message.as_bytes(), self.server)
            .await
            .expect("send");
    }

    /// The next final response.
    async fn response(&self) -> conclave_sip::Response {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(10), self.sock.recv_from(&mut buf))
                    .await
                    .expect("an answer within 10 s")
                    .expect("recv");
            if let Ok(Message::Response(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.status >= 200
            {
                return r;
            }
        }
    }

    pub(crate) async fn request(&self, cseq: u32, auth: Option<&str>) -> conclave_sip::Response {
        self.send(&self.message(cseq, auth)).await;
        self.response().await
    }

    /// A fresh challenge for this flow.
    pub(crate) async fn challenge(&self, cseq: u32) -> AuthParams {
        let r = self.request(cseq, None).await;
        assert_eq!(r.status, 401);
        challenge_of(&r)
    }
}

pub(crate) fn challenge_of(r: &conclave_sip::Response) -> AuthParams {
    AuthParams::parse(
        r.headers
            .get(&HeaderName::WwwAuthenticate)
            .expect("a challenge"),
    )
    .expect("a parsable challenge")
}

pub(crate) fn answer(challenge: &AuthParams, extension: &str, password: &str, nc: u32) -> String {
    conclave_sip::auth::client_authorization(
        challenge,
        "REGISTER",
        "sip:127.0.0.1",
        extension,
        password,
        "cnonce",
        nc,
    )
    .expect("answerable")
}

async fn extension(s: &TestServer, admin: &str, extension: &str, password: &str) {
    s.post(
        "/users",
        admin,
        json!({
            "username": format!("u{extension}"), "display_name": "Phone",
            "password": "user-password-1", "extension": extension, "sip_password": password,
        }),
    )
    .await
    .expect(201);
}

/// The contacts registered for an extension, as the API shows them.
async fn contacts(s: &TestServer, admin: &str, extension: &str) -> Vec<String> {
    let list = s.get("/registrations", admin).await;
    list.expect(200);
    list.body
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["extension"] == extension)
        .flat_map(|r| r["bindings"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["contact"].as_str().map(str::to_owned))
        .collect()
}

pub(crate) fn sip_udp(s: &TestServer) -> SocketAddr {
    s.running.as_ref().expect("running").sip.udp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_burst_cannot_get_the_right_password_accepted_after_the_limit() {
    let s = start(Db::Sqlite, "register_burst").await.expect("server");
    let admin = s.admin().await;
    extension(&s, &admin, "2001", "right-secret").await;
    let phone = Registrant::new(sip_udp(&s), [127, 0, 0, 1], "2001").await;
    let challenge = phone.challenge(1).await;
    // Forty answers at once, the right one 31st: all in flight before any is checked.
    let right_cseq = 32;
    for i in 0..40u32 {
        let cseq = i + 2;
        let password = if cseq == right_cseq {
            "right-secret"
        } else {
            "wrong-guess"
        };
        let auth = answer(&challenge, "2001", password, i + 1);
        phone.send(&phone.message(cseq, Some(&auth))).await;
    }
    let mut statuses = HashMap::new();
    while statuses.len() < 40 {
        let r = phone.response().await;
        let cseq = r.headers.cseq().expect("CSeq").seq;
        statuses.insert(cseq, r.status);
    }
    let checked = statuses.values().filter(|s| **s == 401).count();
    assert_ne!(
        statuses[&right_cseq], 200,
        "the right password after the limit is not accepted: {statuses:?}"
    );
    assert!(checked <= 10, "at most 10 answers checked: {statuses:?}");
    assert!(
        statuses.values().all(|s| *s == 401 || *s == 403),
        "{statuses:?}"
    );
    // After the burst the extension is blocked: a fresh nonce and the right password, refused.
    let challenge = phone.challenge(100).await;
    let auth = answer(&challenge, "2001", "right-secret", 1);
    assert_eq!(phone.request(101, Some(&auth)).await.status, 403);
    assert!(contacts(&s, &admin, "2001").await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_register_replayed_elsewhere_or_again_is_refused() {
    let s = start(Db::Sqlite, "digest_replay").await.expect("server");
    let admin = s.admin().await;
    extension(&s, &admin, "2002", "victim-secret").await;
    let victim = Registrant::new(sip_udp(&s), [127, 0, 0, 1], "2002").await;
    let challenge = victim.challenge(1).await;
    let captured = answer(&challenge, "2002", "victim-secret", 1);
    assert_eq!(victim.request(2, Some(&captured)).await.status, 200);
    assert_eq!(contacts(&s, &admin, "2002").await.len(), 1);

    // The attacker replays the captured Authorization with its own Contact: from another
    // port of the same address, and from another address.
    for from in [[127, 0, 0, 1], [127, 0, 0, 5]] {
        let attacker = Registrant::new(sip_udp(&s), from, "2002").await;
        let r = attacker.request(2, Some(&captured)).await;
        assert_eq!(
            r.status,
            401,
            "a replay from {} is challenged",
            attacker.local()
        );
        assert!(
            challenge_of(&r).get("stale").is_none_or(|v| v != "true"),
            "not even as stale: the nonce was never this flow's"
        );
    }
    let registered = contacts(&s, &admin, "2002").await;
    assert_eq!(registered.len(), 1, "no binding was added: {registered:?}");
    assert!(
        registered[0].contains(&victim.local().to_string()),
        "{registered:?}"
    );

    // The same count again on the victim's own flow (a new transaction): stale, not bound.
    let r = victim.request(3, Some(&captured)).await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge_of(&r).get("stale"), Some("true"));
    // Counting up on the same nonce is fine (phones that reuse nonces).
    let next = answer(&challenge, "2002", "victim-secret", 2);
    assert_eq!(victim.request(4, Some(&next)).await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_nonce_is_answered_stale() {
    let s = start_with(Db::Sqlite, "nonce_expiry", |settings| {
        settings.sip_nonce_lifetime_seconds = 1;
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    extension(&s, &admin, "2003", "phone-secret").await;
    let phone = Registrant::new(sip_udp(&s), [127, 0, 0, 1], "2003").await;
    let old = phone.challenge(1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = phone
        .request(2, Some(&answer(&old, "2003", "phone-secret", 1)))
        .await;
    assert_eq!(r.status, 401);
    let fresh = challenge_of(&r);
    assert_eq!(fresh.get("stale"), Some("true"), "a right answer, too late");
    assert_ne!(fresh.get("nonce"), old.get("nonce"));
    // A wrong answer to an expired nonce is just wrong (no stale hint).
    let r = phone
        .request(3, Some(&answer(&old, "2003", "not-it", 2)))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge_of(&r).get("stale"), None);
    let r = phone
        .request(4, Some(&answer(&fresh, "2003", "phone-secret", 1)))
        .await;
    assert_eq!(r.status, 200);
    s.stop().await;
}
