//! SIP and tel URIs (RFC 3261 §19.1, RFC 3966).

use std::fmt;
use std::net::IpAddr;

use crate::error::ParseError;

/// URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

/// Host part of a URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host: `[v6]`, dotted IPv4 or a domain name.
    pub fn parse(s: &str) -> Result<Host, ParseError> {
        if s.is_empty() {
            return Err(ParseError::BadUri("empty host"));
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(ParseError::BadUri("unterminated IPv6 reference"))?;
            return inner
                .parse::<std::net::Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| ParseError::BadUri("bad IPv6 address"));
        }
        if let Ok(a) = s.parse::<std::net::Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(a)));
        }
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            Ok(Host::Name(s.to_ascii_lowercase()))
        } else {
            Err(ParseError::BadUri("bad host"))
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(a) => Some(*a),
            Host::Name(_) => None,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(a: IpAddr) -> Self {
        Host::Ip(a)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A `;name=value` or `;flag` parameter list, order preserved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// Parses `a=b;c;d=e` (without a leading `;`).
    pub fn parse(s: &str) -> Params {
        let mut out = Vec::new();
        for part in split_quoted(s, b';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => out.push((k.trim().to_string(), Some(v.trim().to_string()))),
                None => out.push((part.to_string(), None)),
            }
        }
        Params(out)
    }

    /// Value of a parameter (case-insensitive name). `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Value of a parameter with a value, without surrounding quotes.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(unquote)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (replaces or appends) a parameter.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let v = value.map(str::to_string);
        if let Some(e) = self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            e.1 = v;
        } else {
            self.0.push((name.to_string(), v));
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Params {
    /// Writes each parameter with a leading `;`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

/// Removes one level of double quotes (and backslash escapes) if present.
pub fn unquote(s: &str) -> &str {
    let t = s.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        &t[1..t.len() - 1]
    } else {
        t
    }
}

/// Splits `s` on `sep`, ignoring separators inside double quotes or `<...>`.
pub fn split_quoted(s: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut in_quote = false;
    let mut in_angle = false;
    let mut escape = false;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if escape {
            escape = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escape = true,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            _ if b == sep && !in_quote && !in_angle => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A SIP, SIPS or tel URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    pub scheme: Scheme,
    /// User part (for tel: the number), still %-escaped as received.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host; for tel: URIs an empty name.
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&...` headers, raw.
    pub headers: Vec<(String, String)>,
}

impl Uri {
    /// A `sip:` URI with the given user and host.
    pub fn sip(user: Option<&str>, host: Host, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host,
            port,
            params: Params::new(),
            headers: Vec::new(),
        }
    }

    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let s = s.trim();
        let (scheme, rest) = s
            .split_once(':')
            .ok_or(ParseError::BadUri("missing scheme"))?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            return Err(ParseError::UnsupportedUriScheme);
        };
        if rest.is_empty() {
            return Err(ParseError::BadUri("empty URI"));
        }
        if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ParseError::BadUri("whitespace or control character in URI"));
        }
        if scheme == Scheme::Tel {
            let (num, params) = match rest.split_once(';') {
                Some((n, p)) => (n, Params::parse(p)),
                None => (rest, Params::new()),
            };
            if num.is_empty() {
                return Err(ParseError::BadUri("empty telephone number"));
            }
            return Ok(Uri {
                scheme,
                user: Some(num.to_string()),
                password: None,
                host: Host::Name(String::new()),
                port: None,
                params,
                headers: Vec::new(),
            });
        }
        let (userinfo, hostpart) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        if user.as_deref() == Some("") {
            return Err(ParseError::BadUri("empty user"));
        }
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, q)) => {
                let hs = q
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (p.to_string(), String::new()),
                    })
                    .collect();
                (h, hs)
            }
            None => (hostpart, Vec::new()),
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, Params::parse(p)),
            None => (hostpart, Params::new()),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The `transport` URI parameter, lower-cased.
    pub fn transport_param(&self) -> Option<String> {
        self.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
    }

    /// RFC 3261 §19.1.4 comparison (simplified: scheme, user, host, port, and the
    /// `transport`, `user`, `method`, `ttl`, `maddr` parameters).
    pub fn matches(&self, other: &Uri) -> bool {
        if self.scheme != other.scheme
            || self.user != other.user
            || self.host != other.host
            || self.port != other.port
        {
            return false;
        }
        for p in ["transport", "user", "method", "ttl", "maddr"] {
            let a = self.params.value(p);
            let b = other.params.value(p);
            match (a, b) {
                (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => return false,
                (Some(_), None) | (None, Some(_)) => return false,
                _ => {}
            }
        }
        true
    }
}

/// Splits `host[:port]`, with IPv6 references in brackets.
pub fn split_host_port(s: &str) -> Result<(Host, Option<u16>), ParseError> {
    let s = s.trim();
    if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or(ParseError::BadUri("unterminated IPv6 reference"))?;
        let host = Host::parse(&s[..=end])?;
        let rest = &s[end + 1..];
        if rest.is_empty() {
            return Ok((host, None));
        }
        let port = rest
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or(ParseError::BadUri("bad port"))?;
        return Ok((host, Some(port)));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| ParseError::BadUri("bad port"))?;
            Ok((Host::parse(h)?, Some(port)))
        }
        None => Ok((Host::parse(s)?, None)),
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.as_str())?;
        f.write_str(":")?;
        if self.scheme == Scheme::Tel {
            if let Some(u) = &self.user {
                f.write_str(u)?;
            }
            return write!(f, "{}", self.params);
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, (k, v)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_full_sip_uri() {
        let u = Uri::parse("sip:alice:secret@Example.COM:5070;transport=tcp;lr?subject=hi&x=y")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Name("example.com".into()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport_param().as_deref(), Some("tcp"));
        assert!(u.params.contains("lr"));
        assert_eq!(u.headers.len(), 2);
        assert_eq!(
            u.to_string(),
            "sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi&x=y"
        );
    }

    #[test]
    fn parse_ipv6_and_sips_and_tel() {
        let u = Uri::parse("sips:[2001:db8::1]:5061").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.to_string(), "sips:[2001:db8::1]:5061");
        let t = Uri::parse("tel:+33123456789;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user.as_deref(), Some("+33123456789"));
        assert_eq!(t.to_string(), "tel:+33123456789;phone-context=example.com");
    }

    #[test]
    fn reject_bad_uris() {
        for s in [
            "http://x",
            "sip:",
            "sip:a@",
            "sip:a@b:99999",
            "sip:[::1",
            "sip:a b@c",
            "sip:@host",
        ] {
            assert!(Uri::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn uri_matching() {
        let a = Uri::parse("sip:bob@biloxi.com;transport=UDP").unwrap();
        let b = Uri::parse("sip:bob@BILOXI.com;transport=udp;foo=bar").unwrap();
        assert!(a.matches(&b));
        let c = Uri::parse("sip:bob@biloxi.com").unwrap();
        assert!(!a.matches(&c));
    }
}
