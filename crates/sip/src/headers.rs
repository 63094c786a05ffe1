//! Typed views of the headers the stack interprets. Each parses from and formats to the
//! header value text (without the `Name:` part).

use std::fmt;

use crate::error::ParseError;
use crate::message::Method;
use crate::uri::{Host, Params, Uri, split_host_port, split_quoted, unquote};

/// Magic cookie that starts every RFC 3261 branch.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// Transport protocol, as named in Via and `transport=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        let s = s.trim();
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// Reliable (stream) transports get no retransmissions (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Default port for this transport.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Ws => 80,
            Transport::Wss => 443,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...;rport;received=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: Transport,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn new(transport: Transport, host: Host, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        Via {
            transport,
            host,
            port,
            params,
        }
    }

    pub fn parse(s: &str) -> Result<Via, ParseError> {
        const E: ParseError = ParseError::BadHeader("Via");
        let s = s.trim();
        let (proto, rest) = s.split_once(|c: char| c.is_ascii_whitespace()).ok_or(E)?;
        let mut parts = proto.split('/');
        let name = parts.next().ok_or(E)?.trim();
        let version = parts.next().ok_or(E)?.trim();
        let transport = parts.next().ok_or(E)?.trim();
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || parts.next().is_some() {
            return Err(E);
        }
        let transport = Transport::parse(transport).ok_or(E)?;
        let rest = rest.trim();
        let (hostport, params) = match rest.split_once(';') {
            Some((h, p)) => (h, Params::parse(p)),
            None => (rest, Params::new()),
        };
        let (host, port) = split_host_port(hostport).map_err(|_| E)?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// `rport` present (with or without value).
    pub fn has_rport(&self) -> bool {
        self.params.contains("rport")
    }

    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    pub fn rport(&self) -> Option<u16> {
        self.params.value("rport").and_then(|p| p.parse().ok())
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `"Display" <uri>;params` (From, To, Contact, Route, Record-Route, Refer-To…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let s = s.trim();
        if let Some(lt) = find_unquoted(s, b'<') {
            let display = s[..lt].trim();
            let display = if display.is_empty() {
                None
            } else {
                Some(unquote(display).to_string())
            };
            let after = &s[lt + 1..];
            let gt = after.find('>').ok_or(ParseError::BadUri("missing '>'"))?;
            let uri = Uri::parse(&after[..gt])?;
            let rest = after[gt + 1..].trim();
            let params = match rest.strip_prefix(';') {
                Some(p) => Params::parse(p),
                None if rest.is_empty() => Params::new(),
                None => return Err(ParseError::BadUri("garbage after '>'")),
            };
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: parameters belong to the header, not the URI (§20).
            let (u, p) = match s.split_once(';') {
                Some((u, p)) => (u, Params::parse(p)),
                None => (s, Params::new()),
            };
            let uri = Uri::parse(u)?;
            Ok(NameAddr {
                display: None,
                uri,
                params: p,
            })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }
}

fn find_unquoted(s: &str, c: u8) -> Option<usize> {
    let mut in_quote = false;
    let mut escape = false;
    for (i, b) in s.bytes().enumerate() {
        if escape {
            escape = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escape = true,
            b'"' => in_quote = !in_quote,
            _ if b == c && !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('"', ""))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// `CSeq: 314159 INVITE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        const E: ParseError = ParseError::BadHeader("CSeq");
        let mut it = s.split_ascii_whitespace();
        let seq = it.next().ok_or(E)?.parse::<u32>().map_err(|_| E)?;
        let method = Method::parse(it.next().ok_or(E)?).ok_or(E)?;
        if it.next().is_some() {
            return Err(E);
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// The Contact header: `*` or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    Star,
    List(Vec<NameAddr>),
}

impl Contacts {
    /// Parses one or more Contact header values (each may be a comma list).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Contacts, ParseError> {
        let mut list = Vec::new();
        let mut star = false;
        for v in values {
            for item in split_quoted(v, b',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                if item == "*" {
                    star = true;
                } else {
                    list.push(NameAddr::parse(item)?);
                }
            }
        }
        match (star, list.is_empty()) {
            (true, true) => Ok(Contacts::Star),
            (true, false) => Err(ParseError::BadHeader("Contact")),
            (false, _) => Ok(Contacts::List(list)),
        }
    }
}

/// An `Authorization` / `WWW-Authenticate` style value: scheme and comma-separated params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    pub scheme: String,
    /// Parameters with quotes removed.
    pub params: Vec<(String, String)>,
}

impl AuthParams {
    pub fn parse(s: &str) -> Result<AuthParams, ParseError> {
        const E: ParseError = ParseError::BadHeader("Authorization");
        let s = s.trim();
        let (scheme, rest) = match s.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        if scheme.is_empty() {
            return Err(E);
        }
        let mut params = Vec::new();
        for part in split_quoted(rest, b',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').ok_or(E)?;
            params.push((k.trim().to_ascii_lowercase(), unquote(v).to_string()));
        }
        Ok(AuthParams {
            scheme: scheme.to_string(),
            params,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Session-Expires: 1800;refresher=uac` (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta: u32,
    pub refresher: Option<Refresher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl SessionExpires {
    pub fn parse(s: &str) -> Result<SessionExpires, ParseError> {
        const E: ParseError = ParseError::BadHeader("Session-Expires");
        let (d, p) = match s.split_once(';') {
            Some((d, p)) => (d, Params::parse(p)),
            None => (s, Params::new()),
        };
        let delta = d.trim().parse::<u32>().map_err(|_| E)?;
        let refresher = match p.value("refresher").map(|r| r.to_ascii_lowercase()) {
            Some(r) if r == "uac" => Some(Refresher::Uac),
            Some(r) if r == "uas" => Some(Refresher::Uas),
            Some(_) => return Err(E),
            None => None,
        };
        Ok(SessionExpires { delta, refresher })
    }
}

impl fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.delta)?;
        match self.refresher {
            Some(Refresher::Uac) => f.write_str(";refresher=uac"),
            Some(Refresher::Uas) => f.write_str(";refresher=uas"),
            None => Ok(()),
        }
    }
}

/// Splits a comma-separated token list (Supported, Require, Allow…).
pub fn token_list<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parse_and_format() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776;rport;received=1.2.3.4")
            .unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert!(v.has_rport());
        assert_eq!(v.rport(), None);
        assert_eq!(v.received(), Some("1.2.3.4"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776;rport;received=1.2.3.4"
        );
        let v6 = Via::parse("SIP/2.0/TLS [2001:db8::9]:5061 ; branch=z9hG4bKx").unwrap();
        assert_eq!(v6.transport, Transport::Tls);
        assert_eq!(v6.branch(), Some("z9hG4bKx"));
        assert!(Via::parse("SIP/3.0/UDP a").is_err());
        assert!(Via::parse("SIP/2.0/FOO a").is_err());
        assert!(Via::parse("garbage").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse("\"Alice, A.\" <sip:alice@atlanta.com;transport=tcp>;tag=1928")
            .unwrap();
        assert_eq!(n.display.as_deref(), Some("Alice, A."));
        assert_eq!(n.tag(), Some("1928"));
        assert_eq!(n.uri.transport_param().as_deref(), Some("tcp"));
        let n = NameAddr::parse("sip:bob@biloxi.com;tag=abc").unwrap();
        assert_eq!(n.tag(), Some("abc"));
        assert!(n.uri.params.is_empty());
        let n = NameAddr::parse("Bob <sip:bob@biloxi.com>").unwrap();
        assert_eq!(n.display.as_deref(), Some("Bob"));
        assert!(NameAddr::parse("<sip:bob@biloxi.com").is_err());
    }

    #[test]
    fn contacts_and_auth() {
        let c =
            Contacts::parse(["<sip:a@1.2.3.4>;expires=60, \"x,y\" <sip:b@h>", "sip:c@h"]).unwrap();
        match c {
            Contacts::List(l) => {
                assert_eq!(l.len(), 3);
                assert_eq!(l[0].params.value("expires"), Some("60"));
            }
            Contacts::Star => panic!(),
        }
        assert_eq!(Contacts::parse(["*"]).unwrap(), Contacts::Star);
        assert!(Contacts::parse(["*, <sip:a@b>"]).is_err());
        let a = AuthParams::parse(
            "Digest username=\"bob\", realm=\"x, y\", nonce=\"n\", qop=auth, nc=00000001",
        )
        .unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.get("realm"), Some("x, y"));
        assert_eq!(a.get("NC"), Some("00000001"));
    }

    #[test]
    fn cseq_and_session_expires() {
        let c = CSeq::parse("4711 INVITE").unwrap();
        assert_eq!(c.seq, 4711);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse("x INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        let s = SessionExpires::parse("1800;refresher=uas").unwrap();
        assert_eq!(s.delta, 1800);
        assert_eq!(s.refresher, Some(Refresher::Uas));
        assert_eq!(s.to_string(), "1800;refresher=uas");
    }
}
