//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760):
//! MD5 and SHA-256, `qop=auth`.
//!
//! Server side: nonces are stateless: `hex(timestamp) . hex(HMAC-SHA256(secret, timestamp
//! | realm | scope))[..32]`, so any node holding the secret can verify them and they expire
//! without bookkeeping. The scope binds a nonce to what it was issued for (the registrar uses
//! the client's transport, address and connection and the address of record): an
//! `Authorization` captured and replayed from anywhere else carries a nonce that is not valid
//! there. Within its flow and lifetime a nonce's counts are tracked ([`NonceCounts`]): a
//! replayed or non-increasing `nc` is refused as stale. Time is passed in (seconds since the
//! Unix epoch).
//!
//! Client side (trunks): [`client_authorization`] answers a 401/407 challenge.

use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::headers::AuthParams;

/// Digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an algorithm token; absent means MD5 (RFC 2617).
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s {
            None => Some(Algorithm::Md5),
            Some(s) if s.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(s) if s.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data)),
            Algorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }
}

/// Lower-case hex.
pub fn hex(data: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// `H(username:realm:password)`: what a user store may keep instead of the password.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The digest `response` value for qop=auth (or no qop when `qop` is `None`).
#[allow(clippy::too_many_arguments)]
pub fn compute_response(
    alg: Algorithm,
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>, // (nc, cnonce)
) -> String {
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some((nc, cnonce)) => {
            alg.hash_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes())
        }
        None => alg.hash_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials a client sent, parsed from Authorization / Proxy-Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Not a Digest header or missing parameters.
    Malformed,
    /// Unsupported algorithm or qop.
    Unsupported,
    /// Nonce not issued by us (bad MAC) or for another realm.
    BadNonce,
    /// Nonce expired: challenge again with `stale=true` (not a failed attempt).
    Stale,
    /// Wrong password (or wrong user): a failed attempt.
    BadResponse,
}

impl DigestCredentials {
    pub fn parse(p: &AuthParams) -> Result<DigestCredentials, AuthError> {
        if !p.scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::Malformed);
        }
        let req = |n: &str| p.get(n).map(str::to_string).ok_or(AuthError::Malformed);
        let algorithm = Algorithm::parse(p.get("algorithm")).ok_or(AuthError::Unsupported)?;
        let qop = p.get("qop").map(str::to_string);
        if let Some(q) = &qop
            && !q.eq_ignore_ascii_case("auth")
        {
            return Err(AuthError::Unsupported);
        }
        let c = DigestCredentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response: req("response")?,
            algorithm,
            qop,
            nc: p.get("nc").map(str::to_string),
            cnonce: p.get("cnonce").map(str::to_string),
            opaque: p.get("opaque").map(str::to_string),
        };
        if c.qop.is_some() && (c.nc.is_none() || c.cnonce.is_none()) {
            return Err(AuthError::Malformed);
        }
        Ok(c)
    }
}

/// Server-side digest: issues challenges and verifies credentials.
#[derive(Clone)]
pub struct DigestServer {
    secret: Vec<u8>,
    /// Realm announced in challenges.
    pub realm: String,
    /// Nonce lifetime in seconds.
    pub nonce_lifetime: u64,
    /// Algorithms offered, in header order (each gets its own challenge header; all share
    /// one nonce). The default is MD5 first, then SHA-256: RFC 8760 asks for the
    /// preferred one first, but Debian 12's sipp (3.6) reads only the first challenge, and
    /// baresip's libre gives up when *any* challenge names an algorithm it does not know —
    /// so a server for such phones offers MD5 alone (Conclave's `sip_digest` setting).
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl DigestServer {
    /// `secret`: random bytes, the same on all nodes that must accept each other's nonces.
    pub fn new(secret: &[u8], realm: &str) -> DigestServer {
        DigestServer {
            secret: secret.to_vec(),
            realm: realm.to_string(),
            nonce_lifetime: 300,
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        }
    }

    fn mac(&self, ts: &str, scope: &str) -> String {
        // new_from_slice accepts any key length for HMAC.
        let mut m = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        m.update(ts.as_bytes());
        m.update(b"|");
        m.update(self.realm.as_bytes());
        if !scope.is_empty() {
            m.update(b"|");
            m.update(scope.as_bytes());
        }
        hex(&m.finalize().into_bytes()[..16])
    }

    /// A new nonce for time `now_secs` (Unix seconds).
    pub fn nonce(&self, now_secs: u64) -> String {
        self.nonce_for(now_secs, "")
    }

    /// A new nonce valid only for `scope` (e.g. the client's flow and address of record).
    pub fn nonce_for(&self, now_secs: u64, scope: &str) -> String {
        let ts = format!("{now_secs:016x}");
        let mac = self.mac(&ts, scope);
        format!("{ts}{mac}")
    }

    /// Checks a nonce: Ok if ours and fresh, `Stale` if ours but expired.
    pub fn check_nonce(&self, nonce: &str, now_secs: u64) -> Result<(), AuthError> {
        self.check_nonce_for(nonce, now_secs, "")
    }

    /// Checks a nonce issued for `scope`: `BadNonce` if not ours or issued for another scope,
    /// `Stale` if ours but expired.
    pub fn check_nonce_for(
        &self,
        nonce: &str,
        now_secs: u64,
        scope: &str,
    ) -> Result<(), AuthError> {
        let t = self.nonce_time(nonce, scope)?;
        if t > now_secs.saturating_add(5) || now_secs - t.min(now_secs) > self.nonce_lifetime {
            return Err(AuthError::Stale);
        }
        Ok(())
    }

    /// When a nonce issued for `scope` was issued (Unix seconds), if it is ours.
    pub fn nonce_time(&self, nonce: &str, scope: &str) -> Result<u64, AuthError> {
        if nonce.len() != 48 || !nonce.is_ascii() {
            return Err(AuthError::BadNonce);
        }
        let (ts, mac) = nonce.split_at(16);
        if !ct_eq(self.mac(ts, scope).as_bytes(), mac.as_bytes()) {
            return Err(AuthError::BadNonce);
        }
        u64::from_str_radix(ts, 16).map_err(|_| AuthError::BadNonce)
    }

    /// WWW-Authenticate (or Proxy-Authenticate) header values, one per algorithm.
    pub fn challenges(&self, now_secs: u64, stale: bool) -> Vec<String> {
        self.challenges_for(now_secs, stale, "", &self.algorithms)
    }

    /// Challenges whose nonce is valid only for `scope`, offering `algorithms`.
    pub fn challenges_for(
        &self,
        now_secs: u64,
        stale: bool,
        scope: &str,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.nonce_for(now_secs, scope);
        algorithms
            .iter()
            .map(|a| {
                let mut s = format!(
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    nonce,
                    a.as_str()
                );
                if stale {
                    s.push_str(", stale=true");
                }
                s
            })
            .collect()
    }

    /// Verifies credentials against the user's password.
    pub fn verify_password(
        &self,
        c: &DigestCredentials,
        method: &str,
        password: &str,
        now_secs: u64,
    ) -> Result<(), AuthError> {
        let h = ha1(c.algorithm, &c.username, &c.realm, password);
        self.verify_ha1(c, method, &h, now_secs)
    }

    /// Verifies credentials against a stored HA1 (`H(user:realm:password)` for
    /// `c.algorithm`).
    pub fn verify_ha1(
        &self,
        c: &DigestCredentials,
        method: &str,
        ha1: &str,
        now_secs: u64,
    ) -> Result<(), AuthError> {
        if c.realm != self.realm {
            return Err(AuthError::BadNonce);
        }
        self.check_nonce(&c.nonce, now_secs)?;
        self.verify_response(c, method, ha1)
    }

    /// Only the digest arithmetic: is `c.response` right for this HA1? (The caller checks
    /// the nonce, its scope and its count.)
    pub fn verify_response(
        &self,
        c: &DigestCredentials,
        method: &str,
        ha1: &str,
    ) -> Result<(), AuthError> {
        if c.realm != self.realm {
            return Err(AuthError::BadNonce);
        }
        let qop = match (&c.qop, &c.nc, &c.cnonce) {
            (Some(_), Some(nc), Some(cn)) => Some((nc.as_str(), cn.as_str())),
            (Some(_), _, _) => return Err(AuthError::Malformed),
            (None, _, _) => None,
        };
        let expected = compute_response(c.algorithm, ha1, method, &c.uri, &c.nonce, qop);
        if ct_eq(
            expected.as_bytes(),
            c.response.to_ascii_lowercase().as_bytes(),
        ) {
            Ok(())
        } else {
            Err(AuthError::BadResponse)
        }
    }
}

/// The highest `nc` seen per nonce, so that a captured `Authorization` cannot be sent again
/// even from its own flow: a request must count up (RFC 7616 §3.4: the server "should" check;
/// here it must). A response without `qop` has no count: its nonce is good for one use.
///
/// Bounded: entries older than the nonce lifetime are dropped, and when the table is full the
/// oldest nonces are forgotten *and refused from then on* (a floor on issue times), so
/// forgetting never reopens a replay.
#[derive(Debug)]
pub struct NonceCounts {
    seen: std::collections::HashMap<String, (u32, u64)>,
    max_entries: usize,
    /// Nonces issued at or before this time that are not in `seen` are refused as stale.
    floor: u64,
}

impl NonceCounts {
    pub fn new(max_entries: usize) -> NonceCounts {
        NonceCounts {
            seen: std::collections::HashMap::new(),
            max_entries: max_entries.max(1),
            floor: 0,
        }
    }

    /// Accepts this use of `nonce` (issued at `issued`) with count `nc` (`None`: no qop), or
    /// says it is stale (a replay, a count that does not go up, or a forgotten nonce).
    pub fn accept(
        &mut self,
        nonce: &str,
        nc: Option<&str>,
        issued: u64,
        now_secs: u64,
        lifetime: u64,
    ) -> Result<(), AuthError> {
        let count = match nc {
            Some(nc) => u32::from_str_radix(nc, 16).map_err(|_| AuthError::Malformed)?,
            None => 0,
        };
        match self.seen.get_mut(nonce) {
            Some((last, _)) => {
                if count <= *last || count == 0 {
                    return Err(AuthError::Stale);
                }
                *last = count;
                return Ok(());
            }
            None if issued <= self.floor => return Err(AuthError::Stale),
            None => {}
        }
        if self.seen.len() >= self.max_entries {
            let horizon = now_secs.saturating_sub(lifetime);
            self.seen.retain(|_, (_, at)| *at >= horizon);
            self.floor = self.floor.max(horizon.saturating_sub(1));
            while self.seen.len() >= self.max_entries {
                let Some((oldest, at)) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, (_, at))| (k.clone(), *at))
                else {
                    break;
                };
                self.seen.remove(&oldest);
                self.floor = self.floor.max(at);
            }
            if issued <= self.floor {
                return Err(AuthError::Stale);
            }
        }
        // Without qop the nonce is used up now: any later use finds count 0 <= 0.
        self.seen.insert(nonce.to_owned(), (count, issued));
        Ok(())
    }

    /// Forgets nonces that have expired anyway.
    pub fn purge(&mut self, now_secs: u64, lifetime: u64) {
        let horizon = now_secs.saturating_sub(lifetime + 5);
        self.seen.retain(|_, (_, at)| *at >= horizon);
    }

    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

/// Client side: builds the Authorization / Proxy-Authorization value answering
/// `challenge`. `cnonce` is caller-supplied randomness; `nc` the use count of this nonce
/// (1 for the first request). `None` if the challenge is unusable (unknown algorithm,
/// not Digest, no nonce).
pub fn client_authorization(
    challenge: &AuthParams,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    if !challenge.scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let alg = Algorithm::parse(challenge.get("algorithm"))?;
    let realm = challenge.get("realm")?;
    let nonce = challenge.get("nonce")?;
    let qop_auth = challenge
        .get("qop")
        .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
    let h1 = ha1(alg, username, realm, password);
    let nc_s = format!("{nc:08x}");
    let resp = compute_response(
        alg,
        &h1,
        method,
        uri,
        nonce,
        qop_auth.then_some((nc_s.as_str(), cnonce)),
    );
    let mut s = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        alg.as_str()
    );
    if qop_auth {
        s.push_str(&format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = challenge.get("opaque") {
        s.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(s)
}

/// Picks the best challenge among several WWW-Authenticate values (SHA-256 over MD5).
pub fn best_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<AuthParams> {
    let mut best: Option<(u8, AuthParams)> = None;
    for v in values {
        let Ok(p) = AuthParams::parse(v) else {
            continue;
        };
        if !p.scheme.eq_ignore_ascii_case("Digest") {
            continue;
        }
        let rank = match Algorithm::parse(p.get("algorithm")) {
            Some(Algorithm::Sha256) => 2,
            Some(Algorithm::Md5) => 1,
            None => continue,
        };
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, p));
        }
    }
    best.map(|(_, p)| p)
}

/// Client side: the request to send again after a 401/407 `challenge_response` to
/// `original` (RFC 3261 §22.2): same Call-ID, CSeq + 1, a new Via branch, and an
/// Authorization (401) or Proxy-Authorization (407) header. `None` if the response
/// carries no usable challenge. Do not retry more than once per challenge: a second 401
/// to credentials just sent means the password is wrong.
pub fn authorize_request(
    original: &crate::message::Request,
    challenge_response: &crate::message::Response,
    username: &str,
    password: &str,
    cnonce: &str,
    new_branch: &str,
) -> Option<crate::message::Request> {
    use crate::message::HeaderName;
    let (challenge_h, auth_h) = match challenge_response.status {
        401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
        407 => (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        ),
        _ => return None,
    };
    let ch = best_challenge(challenge_response.headers.get_all(&challenge_h))?;
    let uri = original.uri.to_string();
    let value = client_authorization(
        &ch,
        original.method.as_str(),
        &uri,
        username,
        password,
        cnonce,
        1,
    )?;
    let mut r = original.clone();
    let cseq = r.headers.cseq().ok()?;
    r.headers.set(
        HeaderName::CSeq,
        format!("{} {}", cseq.seq.wrapping_add(1), cseq.method),
    );
    let mut via = r.headers.top_via().ok()?;
    via.params.set("branch", Some(new_branch));
    r.headers.set_top_via(&via);
    r.headers.remove(&auth_h);
    r.headers.push(auth_h, value);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 §3.5 example (HTTP, but the computation is the same).
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = compute_response(
            Algorithm::Md5,
            &h1,
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let h1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = compute_response(
            Algorithm::Sha256,
            &h1,
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn server_client_roundtrip_and_failures() {
        let srv = DigestServer::new(b"0123456789abcdef", "conclave");
        let now = 1_700_000_000;
        for (i, ch) in srv.challenges(now, false).iter().enumerate() {
            let p = AuthParams::parse(ch).unwrap();
            let auth =
                client_authorization(&p, "REGISTER", "sip:conclave", "1001", "pw", "abcd", 1)
                    .unwrap();
            let creds = DigestCredentials::parse(&AuthParams::parse(&auth).unwrap()).unwrap();
            assert_eq!(
                creds.algorithm,
                [Algorithm::Md5, Algorithm::Sha256][i],
                "{auth}"
            );
            assert_eq!(
                srv.verify_password(&creds, "REGISTER", "pw", now + 10),
                Ok(())
            );
            assert_eq!(
                srv.verify_password(&creds, "REGISTER", "wrong", now + 10),
                Err(AuthError::BadResponse)
            );
            assert_eq!(
                srv.verify_password(&creds, "INVITE", "pw", now + 10),
                Err(AuthError::BadResponse)
            );
            assert_eq!(
                srv.verify_password(&creds, "REGISTER", "pw", now + 301),
                Err(AuthError::Stale)
            );
            // HA1 storage works too.
            let h = ha1(creds.algorithm, "1001", "conclave", "pw");
            assert_eq!(srv.verify_ha1(&creds, "REGISTER", &h, now), Ok(()));
            // A nonce from another secret is rejected.
            let other = DigestServer::new(b"another secret!!", "conclave");
            assert_eq!(
                other.verify_password(&creds, "REGISTER", "pw", now),
                Err(AuthError::BadNonce)
            );
        }
        assert!(srv.challenges(now, true)[0].contains("stale=true"));
        assert_eq!(srv.check_nonce("zz", now), Err(AuthError::BadNonce));
        assert_eq!(
            srv.check_nonce(&"é".repeat(24), now),
            Err(AuthError::BadNonce)
        );
    }

    #[test]
    fn scoped_nonces_and_counts() {
        let srv = DigestServer::new(b"0123456789abcdef", "conclave");
        let now = 1_700_000_000;
        let here = "udp|192.0.2.1:5060|-|1001@example.com";
        let nonce = srv.nonce_for(now, here);
        assert_eq!(srv.check_nonce_for(&nonce, now + 1, here), Ok(()));
        // The same nonce from another address or for another AOR is not ours.
        for elsewhere in [
            "udp|192.0.2.2:5060|-|1001@example.com",
            "udp|192.0.2.1:5061|-|1001@example.com",
            "udp|192.0.2.1:5060|-|1002@example.com",
        ] {
            assert_eq!(
                srv.check_nonce_for(&nonce, now + 1, elsewhere),
                Err(AuthError::BadNonce)
            );
        }
        assert_eq!(srv.check_nonce(&nonce, now), Err(AuthError::BadNonce));
        assert_eq!(
            srv.check_nonce_for(&nonce, now + 301, here),
            Err(AuthError::Stale)
        );
        let mut counts = NonceCounts::new(3);
        assert_eq!(
            counts.accept(&nonce, Some("00000001"), now, now, 300),
            Ok(())
        );
        assert_eq!(
            counts.accept(&nonce, Some("00000001"), now, now, 300),
            Err(AuthError::Stale)
        );
        assert_eq!(
            counts.accept(&nonce, Some("00000002"), now, now, 300),
            Ok(())
        );
        assert_eq!(
            counts.accept(&nonce, Some("00000001"), now, now, 300),
            Err(AuthError::Stale)
        );
        // Without qop a nonce is good once.
        assert_eq!(counts.accept("n2", None, now, now, 300), Ok(()));
        assert_eq!(
            counts.accept("n2", None, now, now, 300),
            Err(AuthError::Stale)
        );
        // Full: the oldest are forgotten and refused from then on.
        assert_eq!(counts.accept("n3", None, now + 1, now + 1, 300), Ok(()));
        assert_eq!(counts.accept("n4", None, now + 2, now + 2, 300), Ok(()));
        assert!(counts.tracked() <= 3);
        assert_eq!(
            counts.accept("never seen", Some("00000001"), now, now + 2, 300),
            Err(AuthError::Stale)
        );
    }

    #[test]
    fn trunk_retry_after_407() {
        use crate::message::{HeaderName, Message};
        use crate::parser::{Limits, parse_datagram};
        let inv = "INVITE sip:+4930123@gw.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
From: <sip:conf@example.com>;tag=f\r\nTo: <sip:+4930123@gw.example.com>\r\n\
Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let Ok(Message::Request(inv)) = parse_datagram(inv.as_bytes(), &Limits::default()) else {
            panic!()
        };
        let srv = DigestServer::new(b"k", "gw");
        let mut resp = inv.response(407, "Proxy Authentication Required", Some("t"));
        for c in srv.challenges(1000, false) {
            resp.headers.push(HeaderName::ProxyAuthenticate, c);
        }
        let again = authorize_request(&inv, &resp, "trunk", "pw", "cn", "z9hG4bK2").unwrap();
        assert_eq!(again.headers.cseq().unwrap().seq, 2);
        assert_eq!(again.headers.top_via().unwrap().branch(), Some("z9hG4bK2"));
        let p = again
            .headers
            .authorization(&HeaderName::ProxyAuthorization)
            .unwrap()
            .unwrap();
        let creds = DigestCredentials::parse(&p).unwrap();
        assert_eq!(srv.verify_password(&creds, "INVITE", "pw", 1001), Ok(()));
        assert!(
            authorize_request(&inv, &inv.response(486, "Busy", None), "u", "p", "c", "b").is_none()
        );
    }

    #[test]
    fn malformed_credentials() {
        for s in [
            "Basic abc",
            "Digest username=\"a\"",
            "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", algorithm=SHA-512",
            "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=auth",
        ] {
            if let Ok(p) = AuthParams::parse(s) {
                assert!(DigestCredentials::parse(&p).is_err(), "{s}");
            }
        }
        let best = best_challenge([
            "Digest realm=\"a\", nonce=\"1\"",
            "Digest realm=\"a\", nonce=\"2\", algorithm=SHA-256",
            "Basic realm=\"x\"",
        ])
        .unwrap();
        assert_eq!(best.get("nonce"), Some("2"));
    }
}
