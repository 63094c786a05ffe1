//! SDP (RFC 4566 / RFC 8866): parse and serialize session descriptions.
//!
//! The model keeps what offer/answer needs typed (origin, connection, media lines,
//! attributes) and carries other lines through unchanged.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::error::ParseError;

/// Largest SDP body accepted.
pub const MAX_SDP_SIZE: usize = 32 * 1024;
/// Most media sections accepted.
pub const MAX_MEDIA: usize = 16;
/// Most attributes per section.
pub const MAX_ATTRIBUTES: usize = 256;

/// `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// Address, possibly with `/ttl` for multicast.
    pub address: String,
}

impl Connection {
    pub fn from_ip(ip: IpAddr) -> Connection {
        Connection {
            net_type: "IN".into(),
            addr_type: if ip.is_ipv4() { "IP4" } else { "IP6" }.into(),
            address: ip.to_string(),
        }
    }

    /// The unicast address, if it parses.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }

    fn parse(v: &str) -> Result<Connection, ParseError> {
        let mut it = v.split_ascii_whitespace();
        let (Some(n), Some(a), Some(addr), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(ParseError::BadSdp("c= line"));
        };
        Ok(Connection {
            net_type: n.into(),
            addr_type: a.into(),
            address: addr.into(),
        })
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

/// `a=name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Attribute {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    pub fn new(name: &str, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// An `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub media: String,
    pub port: u16,
    pub num_ports: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub title: Option<String>,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    pub attributes: Vec<Attribute>,
}

/// rtpmap entry: encoding name, clock rate, channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl Media {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn attrs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// The `a=rtpmap` for a payload type, or the static RFC 3551 mapping.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        for a in self.attrs("rtpmap") {
            let Some(v) = &a.value else { continue };
            let Some((p, rest)) = v.split_once(' ') else {
                continue;
            };
            if p.trim().parse::<u8>().ok() != Some(pt) {
                continue;
            }
            let mut parts = rest.trim().split('/');
            let encoding = parts.next().unwrap_or("").to_string();
            let clock_rate = parts.next().and_then(|c| c.parse().ok())?;
            let channels = parts.next().and_then(|c| c.parse().ok());
            return Some(RtpMap {
                encoding,
                clock_rate,
                channels,
            });
        }
        let (enc, rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            18 => ("G729", 8000),
            _ => return None,
        };
        Some(RtpMap {
            encoding: enc.into(),
            clock_rate: rate,
            channels: None,
        })
    }

    /// The `a=fmtp` parameters for a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attrs("fmtp").find_map(|a| {
            let v = a.value.as_deref()?;
            let (p, rest) = v.split_once(' ')?;
            (p.trim().parse::<u8>().ok() == Some(pt)).then_some(rest.trim())
        })
    }

    /// Payload types in format order (non-numeric formats skipped).
    pub fn payload_types(&self) -> Vec<u8> {
        self.formats.iter().filter_map(|f| f.parse().ok()).collect()
    }

    pub fn ptime(&self) -> Option<u32> {
        self.attr("ptime")?.value.as_deref()?.trim().parse().ok()
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    pub bandwidth: Vec<String>,
    /// `t=` start and stop.
    pub timing: (u64, u64),
    /// Other session-level lines (`i=`, `u=`, `e=`, `p=`, `r=`, `z=`, `k=`), kept in order.
    pub other: Vec<(char, String)>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

impl SessionDescription {
    pub fn parse(body: &[u8]) -> Result<SessionDescription, ParseError> {
        if body.len() > MAX_SDP_SIZE {
            return Err(ParseError::BadSdp("too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| ParseError::BadSdp("not UTF-8"))?;
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty());
        let first = lines.next().ok_or(ParseError::BadSdp("empty"))?;
        if first.trim() != "v=0" {
            return Err(ParseError::BadSdp("v= line"));
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut bandwidth = Vec::new();
        let mut timing = None;
        let mut other = Vec::new();
        let mut attributes = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for line in lines {
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(ParseError::BadSdp("malformed line"));
            }
            let kind = b[0] as char;
            let value = &line[2..];
            if let Some(m) = media.last_mut() {
                match kind {
                    'm' => {}
                    'c' => {
                        m.connection = Some(Connection::parse(value)?);
                        continue;
                    }
                    'b' => {
                        m.bandwidth.push(value.to_string());
                        continue;
                    }
                    'i' => {
                        m.title = Some(value.to_string());
                        continue;
                    }
                    'a' => {
                        if m.attributes.len() >= MAX_ATTRIBUTES {
                            return Err(ParseError::BadSdp("too many attributes"));
                        }
                        m.attributes.push(parse_attr(value));
                        continue;
                    }
                    _ => continue, // k= and unknown media-level lines are ignored
                }
            }
            match kind {
                'o' => {
                    let mut it = value.split_ascii_whitespace();
                    let mut next = || it.next().ok_or(ParseError::BadSdp("o= line"));
                    origin = Some(Origin {
                        username: next()?.into(),
                        session_id: next()?.into(),
                        session_version: next()?
                            .parse()
                            .map_err(|_| ParseError::BadSdp("o= version"))?,
                        net_type: next()?.into(),
                        addr_type: next()?.into(),
                        address: next()?.into(),
                    });
                }
                's' => session_name = Some(value.to_string()),
                'c' => connection = Some(Connection::parse(value)?),
                'b' => bandwidth.push(value.to_string()),
                't' => {
                    let mut it = value.split_ascii_whitespace();
                    let start = it.next().and_then(|v| v.parse().ok());
                    let stop = it.next().and_then(|v| v.parse().ok());
                    match (start, stop) {
                        (Some(a), Some(b)) => timing = Some((a, b)),
                        _ => return Err(ParseError::BadSdp("t= line")),
                    }
                }
                'a' => {
                    if attributes.len() >= MAX_ATTRIBUTES {
                        return Err(ParseError::BadSdp("too many attributes"));
                    }
                    attributes.push(parse_attr(value))
                }
                'm' => {
                    if media.len() >= MAX_MEDIA {
                        return Err(ParseError::BadSdp("too many media"));
                    }
                    media.push(parse_media_line(value)?);
                }
                'v' => return Err(ParseError::BadSdp("duplicate v=")),
                k => other.push((k, value.to_string())),
            }
        }
        Ok(SessionDescription {
            origin: origin.ok_or(ParseError::BadSdp("missing o="))?,
            session_name: session_name.unwrap_or_else(|| "-".into()),
            connection,
            bandwidth,
            timing: timing.unwrap_or((0, 0)),
            other,
            attributes,
            media,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Connection address for a media section (media-level `c=` first, then session).
    pub fn media_connection<'a>(&'a self, m: &'a Media) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

fn parse_attr(v: &str) -> Attribute {
    match v.split_once(':') {
        Some((n, val)) => Attribute {
            name: n.to_string(),
            value: Some(val.to_string()),
        },
        None => Attribute {
            name: v.to_string(),
            value: None,
        },
    }
}

fn parse_media_line(v: &str) -> Result<Media, ParseError> {
    const E: ParseError = ParseError::BadSdp("m= line");
    let mut it = v.split_ascii_whitespace();
    let media = it.next().ok_or(E)?.to_string();
    let port_s = it.next().ok_or(E)?;
    let (port, num_ports) = match port_s.split_once('/') {
        Some((p, n)) => (p.parse().map_err(|_| E)?, Some(n.parse().map_err(|_| E)?)),
        None => (port_s.parse().map_err(|_| E)?, None),
    };
    let proto = it.next().ok_or(E)?.to_string();
    let formats: Vec<String> = it.map(str::to_string).collect();
    if formats.len() > 64 {
        return Err(E);
    }
    Ok(Media {
        media,
        port,
        num_ports,
        proto,
        formats,
        title: None,
        connection: None,
        bandwidth: Vec::new(),
        attributes: Vec::new(),
    })
}

fn write_attrs(f: &mut fmt::Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {} {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.net_type,
            o.addr_type,
            o.address,
            self.session_name
        )?;
        for (k, v) in self.other.iter().filter(|(k, _)| "iuep".contains(*k)) {
            write!(f, "{k}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidth {
            write!(f, "b={b}\r\n")?;
        }
        write!(f, "t={} {}\r\n", self.timing.0, self.timing.1)?;
        for (k, v) in self.other.iter().filter(|(k, _)| !"iuep".contains(*k)) {
            write!(f, "{k}={v}\r\n")?;
        }
        write_attrs(f, &self.attributes)?;
        for m in &self.media {
            let mut fmts = String::new();
            for x in &m.formats {
                let _ = write!(fmts, " {x}");
            }
            match m.num_ports {
                Some(n) => write!(f, "m={} {}/{} {}{}\r\n", m.media, m.port, n, m.proto, fmts)?,
                None => write!(f, "m={} {} {}{}\r\n", m.media, m.port, m.proto, fmts)?,
            }
            if let Some(t) = &m.title {
                write!(f, "i={t}\r\n")?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for b in &m.bandwidth {
                write!(f, "b={b}\r\n")?;
            }
            write_attrs(f, &m.attributes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 111 9 0 8 101\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 useinbandfec=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
m=video 0 RTP/AVP 96\r\n";

    #[test]
    fn parse_and_roundtrip() {
        let s = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.origin.session_version, 2890844526);
        assert_eq!(s.media.len(), 2);
        let m = &s.media[0];
        assert_eq!(m.port, 49170);
        assert_eq!(m.payload_types(), vec![111, 9, 0, 8, 101]);
        assert_eq!(m.rtpmap(111).unwrap().clock_rate, 48000);
        assert_eq!(m.rtpmap(111).unwrap().channels, Some(2));
        assert_eq!(m.rtpmap(0).unwrap().encoding, "PCMU");
        assert_eq!(m.fmtp(101), Some("0-16"));
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(s.to_string(), OFFER);
        let again = SessionDescription::parse(s.to_string().as_bytes()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn broken_sdp() {
        for b in [
            "",
            "v=1\r\n",
            "v=0\r\nxx\r\n",
            "v=0\r\ns=-\r\n",
            "v=0\r\no=a b\r\n",
            "v=0\r\no=a 1 x IN IP4 1.2.3.4\r\n",
            "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN IP4\r\n",
            "v=0\r\no=a 1 1 IN IP4 h\r\nt=x\r\n",
        ] {
            assert!(SessionDescription::parse(b.as_bytes()).is_err(), "{b:?}");
        }
    }
}
