//! Parser for SIP messages (RFC 3261 §7, §25): datagrams, and incremental framing of
//! stream transports (TCP/TLS) by Content-Length, with CRLF keep-alives (RFC 5626 §3.5.1).

use crate::error::ParseError;
use crate::message::{HeaderName, Headers, Message, Method, Request, Response};
use crate::uri::Uri;

/// Size limits applied by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (headers + body) accepted.
    pub max_message_size: usize,
    /// Largest header section (start line + headers) accepted.
    pub max_header_bytes: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
    /// Largest body accepted.
    pub max_body_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 128,
            max_body_size: 48 * 1024,
        }
    }
}

/// Finds the end of the header section. Returns (index of first body byte, length of the
/// header text excluding the blank line).
fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    find_header_end_from(buf, 0)
}

/// Like [`find_header_end`], starting the search at `start`.
fn find_header_end_from(buf: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut i = start;
    while i < buf.len() {
        if buf[i] == b'\n' {
            // "\n\n" or "\n\r\n"
            if buf.get(i + 1) == Some(&b'\n') {
                let hl = if i > 0 && buf[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                return Some((i + 2, hl));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                let hl = if i > 0 && buf[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                return Some((i + 3, hl));
            }
        }
        i += 1;
    }
    None
}

/// Parses a complete message from a datagram (UDP). Extra bytes after Content-Length are
/// ignored (RFC 3261 §18.3); a missing Content-Length means "the rest of the datagram".
pub fn parse_datagram(buf: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_size {
        return Err(ParseError::MessageTooLarge);
    }
    let (body_start, head_len) = match find_header_end(buf) {
        Some(v) => v,
        None => {
            // Tolerate a datagram ending right after the last header's CRLF.
            if buf.ends_with(b"\r\n") || buf.ends_with(b"\n") {
                (buf.len(), buf.len())
            } else {
                return Err(ParseError::Incomplete);
            }
        }
    };
    if head_len > limits.max_header_bytes {
        return Err(ParseError::HeadersTooLarge);
    }
    let (mut msg, cl) = parse_head(&buf[..head_len], limits)?;
    let avail = &buf[body_start.min(buf.len())..];
    let body = match cl {
        Some(n) if n > avail.len() => return Err(ParseError::BadContentLength),
        Some(n) => &avail[..n],
        None => avail,
    };
    if body.len() > limits.max_body_size {
        return Err(ParseError::BodyTooLarge);
    }
    set_body(&mut msg, body.to_vec());
    Ok(msg)
}

fn set_body(msg: &mut Message, body: Vec<u8>) {
    match msg {
        Message::Request(r) => r.body = body,
        Message::Response(r) => r.body = body,
    }
}

/// Parses the start line and headers. Returns the message (empty body) and the declared
/// Content-Length.
fn parse_head(head: &[u8], limits: &Limits) -> Result<(Message, Option<usize>), ParseError> {
    let text: std::borrow::Cow<'_, str> = match std::str::from_utf8(head) {
        Ok(s) => s.into(),
        // Some devices send Latin-1 display names; keep going with replacement chars.
        Err(_) => String::from_utf8_lossy(head),
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    // Skip leading empty lines (RFC 3261 §7.5: SHOULD ignore CRLFs before the start line).
    let start = loop {
        match lines.next() {
            Some("") => continue,
            Some(l) => break l,
            None => return Err(ParseError::BadStartLine("empty message")),
        }
    };
    let mut headers = Headers::new();
    let mut current: Option<(HeaderName, String)> = None;
    let mut count = 0usize;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Folded continuation line.
            match current.as_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Err(ParseError::BadHeaderLine),
            }
            continue;
        }
        if let Some((n, v)) = current.take() {
            headers.push(n, v);
        }
        if line.is_empty() {
            continue;
        }
        count += 1;
        if count > limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::BadHeaderLine)?;
        let name = name.trim_end();
        if name.is_empty() || !name.bytes().all(crate::message::is_token_char) {
            return Err(ParseError::BadHeaderLine);
        }
        current = Some((HeaderName::parse(name), value.trim().to_string()));
    }
    if let Some((n, v)) = current.take() {
        headers.push(n, v);
    }
    // Several Content-Length headers that disagree: refuse (request smuggling).
    {
        let mut lengths = headers.get_all(&HeaderName::ContentLength).map(str::trim);
        if let Some(first) = lengths.next()
            && lengths.any(|l| l != first)
        {
            return Err(ParseError::BadContentLength);
        }
    }
    let cl = match headers.get(&HeaderName::ContentLength) {
        Some(v) => Some(
            v.trim()
                .parse::<usize>()
                .map_err(|_| ParseError::BadContentLength)?,
        ),
        None => None,
    };
    let msg = if let Some(rest) = start.strip_prefix("SIP/") {
        let (ver, rest) = rest
            .split_once(' ')
            .ok_or(ParseError::BadStartLine("status line"))?;
        if ver != "2.0" {
            return Err(ParseError::BadVersion);
        }
        let (code, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if code.len() != 3 {
            return Err(ParseError::BadStartLine("status code"));
        }
        let status = code
            .parse::<u16>()
            .map_err(|_| ParseError::BadStartLine("status code"))?;
        if !(100..700).contains(&status) {
            return Err(ParseError::BadStartLine("status code"));
        }
        Message::Response(Response {
            status,
            reason: reason.trim().to_string(),
            headers,
            body: Vec::new(),
        })
    } else {
        let mut it = start.split(' ');
        let method = it.next().ok_or(ParseError::BadStartLine("method"))?;
        let uri = it.next().ok_or(ParseError::BadStartLine("request URI"))?;
        let ver = it.next().ok_or(ParseError::BadStartLine("version"))?;
        if it.next().is_some() {
            return Err(ParseError::BadStartLine("extra fields"));
        }
        let method = Method::parse(method).ok_or(ParseError::BadStartLine("method"))?;
        if !ver.starts_with("SIP/") {
            return Err(ParseError::BadStartLine("version"));
        }
        if ver != "SIP/2.0" {
            return Err(ParseError::BadVersion);
        }
        let uri = Uri::parse(uri)?;
        Message::Request(Request {
            method,
            uri,
            headers,
            body: Vec::new(),
        })
    };
    Ok((msg, cl))
}

/// What the stream framer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A complete message.
    Message(Box<Message>),
    /// A double-CRLF keep-alive ping; answer it with a single CRLF ("pong").
    Ping,
    /// A single CRLF: a pong for a ping we sent.
    Pong,
}

/// Incremental framer for stream transports: feed bytes with [`StreamFramer::push`], take
/// complete messages with [`StreamFramer::next_message`].
///
/// A framing error (oversized headers, bad Content-Length) is fatal for the connection:
/// the runtime should send the error response if one is due (see
/// [`crate::message::error_response`]) and close it.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
    failed: bool,
    /// Bytes of `buf` already searched for the end of the header section (so feeding a
    /// message byte by byte stays linear).
    scanned: usize,
    /// Head parsed, waiting for the body: (message, body start, Content-Length).
    pending: Option<(Box<Message>, usize, usize)>,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: Vec::new(),
            limits,
            failed: false,
            scanned: 0,
            pending: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Next complete unit, `None` if more bytes are needed. After an `Err` the framer stays
    /// failed (returns `None`); the runtime should close the connection. The error carries
    /// the raw header bytes seen so an error response can be built.
    pub fn next_message(&mut self) -> Option<Result<Framed, (ParseError, Vec<u8>)>> {
        if self.failed {
            return None;
        }
        if let Some((_, body_start, cl)) = &self.pending {
            if self.buf.len() < body_start + cl {
                return None;
            }
            let (body_start, cl) = (*body_start, *cl);
            let (mut msg, _, _) = self.pending.take()?;
            set_body(&mut msg, self.buf[body_start..body_start + cl].to_vec());
            self.buf.drain(..body_start + cl);
            self.scanned = 0;
            return Some(Ok(Framed::Message(msg)));
        }
        // Keep-alives between messages.
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            self.scanned = 0;
            return Some(Ok(Framed::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf) {
                // Either the start of a ping or a pong: wait for the next byte.
                return None;
            }
            self.buf.drain(..2);
            self.scanned = 0;
            return Some(Ok(Framed::Pong));
        }
        // Stray line feeds before a start line are skipped.
        let stray = self.buf.iter().take_while(|b| **b == b'\n').count();
        if stray > 0 {
            self.buf.drain(..stray);
            self.scanned = 0;
            if self.buf.is_empty() {
                return None;
            }
        }
        let from = self.scanned.saturating_sub(3);
        let Some((body_start, head_len)) = find_header_end_from(&self.buf, from) else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limits.max_header_bytes {
                return Some(Err(self.fail(ParseError::HeadersTooLarge)));
            }
            return None;
        };
        if head_len > self.limits.max_header_bytes {
            return Some(Err(self.fail(ParseError::HeadersTooLarge)));
        }
        let (msg, cl) = match parse_head(&self.buf[..head_len], &self.limits) {
            Ok(v) => v,
            Err(e) => return Some(Err(self.fail(e))),
        };
        // RFC 3261 §18.3: Content-Length is mandatory on streams; treat absence as 0.
        let cl = cl.unwrap_or(0);
        if cl > self.limits.max_body_size || body_start + cl > self.limits.max_message_size {
            return Some(Err(self.fail(ParseError::BodyTooLarge)));
        }
        self.pending = Some((Box::new(msg), body_start, cl));
        self.next_message()
    }

    fn fail(&mut self, e: ParseError) -> (ParseError, Vec<u8>) {
        self.failed = true;
        self.pending = None;
        let raw = std::mem::take(&mut self.buf);
        (e, raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Transport;
    use crate::message::error_response;

    pub const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn p(s: &str) -> Result<Message, ParseError> {
        parse_datagram(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn parse_invite() {
        let Message::Request(r) = p(INVITE).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.to_string(), "sip:bob@biloxi.com");
        assert_eq!(r.headers.len(), 9);
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.headers.cseq().unwrap().seq, 314159);
        assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(r.headers.top_via().unwrap().transport, Transport::Udp);
        r.validate(&[]).unwrap();
        // Round trip.
        let bytes = r.to_bytes();
        let again = parse_datagram(&bytes, &Limits::default()).unwrap();
        assert_eq!(again, Message::Request(r));
    }

    #[test]
    fn compact_forms_folding_and_case() {
        let m = "OPTIONS sip:x@y SIP/2.0\r\n\
v: SIP/2.0/TCP h;branch=z9hG4bK1,\r\n SIP/2.0/UDP g;branch=z9hG4bK2\r\n\
VIA: SIP/2.0/UDP k;branch=z9hG4bK3\r\n\
f: <sip:a@b>;tag=1\r\nt: <sip:x@y>\r\ni: abc\r\nCSEQ: 1 OPTIONS\r\n\
m: <sip:a@1.2.3.4>, <sip:a@5.6.7.8>;expires=3\r\nk: timer,\r\n\t100rel\r\nl: 0\r\n\r\n";
        let Message::Request(r) = p(m).unwrap() else {
            panic!()
        };
        let vias = r.headers.vias().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[1].branch(), Some("z9hG4bK2"));
        assert_eq!(r.headers.call_id(), Some("abc"));
        assert_eq!(r.headers.supported(), vec!["timer", "100rel"]);
        match r.headers.contacts().unwrap().unwrap() {
            crate::headers::Contacts::List(l) => assert_eq!(l.len(), 2),
            _ => panic!(),
        }
        r.validate(&[]).unwrap();
    }

    #[test]
    fn response_parse() {
        let m = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let Message::Response(r) = p(m).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 180);
        assert_eq!(r.reason, "Ringing");
        r.validate().unwrap();
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Incomplete),
            ("INVITE\r\n\r\n", ParseError::BadStartLine("request URI")),
            ("INVITE sip:a@b SIP/3.0\r\n\r\n", ParseError::BadVersion),
            (
                "SIP/2.0 99 X\r\n\r\n",
                ParseError::BadStartLine("status code"),
            ),
            (
                "INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                "INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc",
                ParseError::BadContentLength,
            ),
            (
                "INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (
                "INVITE http://a SIP/2.0\r\n\r\n",
                ParseError::UnsupportedUriScheme,
            ),
            (
                "INVITE sip:a@b SIP/2.0\r\n folded-first\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                "INVITE sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 3\r\n\r\nabc",
                ParseError::BadContentLength,
            ),
        ];
        for (m, e) in cases {
            assert_eq!(p(m).unwrap_err(), *e, "{m:?}");
        }
    }

    #[test]
    fn limits() {
        let lim = Limits {
            max_message_size: 2000,
            max_header_bytes: 1000,
            max_headers: 5,
            max_body_size: 10,
        };
        let big = "x".repeat(2001);
        assert_eq!(
            parse_datagram(big.as_bytes(), &lim),
            Err(ParseError::MessageTooLarge)
        );
        let many = format!("OPTIONS sip:a@b SIP/2.0\r\n{}\r\n", "X-A: 1\r\n".repeat(6));
        assert_eq!(
            parse_datagram(many.as_bytes(), &lim),
            Err(ParseError::TooManyHeaders)
        );
        let long = format!("OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(1000));
        assert_eq!(
            parse_datagram(long.as_bytes(), &lim),
            Err(ParseError::HeadersTooLarge)
        );
        let body = "OPTIONS sip:a@b SIP/2.0\r\n\r\n01234567890";
        assert_eq!(
            parse_datagram(body.as_bytes(), &lim),
            Err(ParseError::BodyTooLarge)
        );
    }

    #[test]
    fn validation_errors_map_to_status() {
        let base = INVITE.replace("Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", "");
        let Message::Request(r) = p(&base).unwrap() else {
            panic!()
        };
        let e = r.validate(&[]).unwrap_err();
        assert_eq!(e, ParseError::MissingHeader("Call-ID"));
        assert_eq!(e.status().0, 400);
        // Call-ID missing: cannot build a response.
        assert!(error_response(base.as_bytes(), &e).is_none());

        let req = INVITE.replace("Max-Forwards: 70\r\n", "Require: foo, timer\r\n");
        let Message::Request(r) = p(&req).unwrap() else {
            panic!()
        };
        let e = r.validate(&["timer"]).unwrap_err();
        assert_eq!(e, ParseError::BadExtension(vec!["foo".into()]));
        let resp = error_response(req.as_bytes(), &e).unwrap();
        assert_eq!(resp.status, 420);
        assert_eq!(resp.headers.get(&HeaderName::Unsupported), Some("foo"));
        assert!(resp.headers.to().unwrap().tag().is_some());

        let req = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        let Message::Request(r) = p(&req).unwrap() else {
            panic!()
        };
        assert_eq!(r.validate(&[]).unwrap_err(), ParseError::CSeqMethodMismatch);

        let req = INVITE.replace("Max-Forwards: 70", "Max-Forwards: 0");
        let Message::Request(r) = p(&req).unwrap() else {
            panic!()
        };
        assert_eq!(r.validate(&[]).unwrap_err().status().0, 483);

        // Content-Length too big: 400 with the headers we could read.
        let req = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        let e = p(&req).unwrap_err();
        let resp = error_response(req.as_bytes(), &e).unwrap();
        assert_eq!(resp.status, 400);
        assert!(resp.reason.contains("Content-Length"));
        // Responses and ACKs are never answered.
        let ack = INVITE.replace("INVITE sip", "ACK sip");
        assert!(error_response(ack.as_bytes(), &e).is_none());
    }

    #[test]
    fn stream_framing_partial_and_keepalive() {
        let mut f = StreamFramer::new(Limits::default());
        let two = format!("\r\n\r\n{INVITE}{INVITE}\r\n");
        let bytes = two.as_bytes();
        let mut out = Vec::new();
        // Feed one byte at a time.
        for b in bytes {
            f.push(std::slice::from_ref(b));
            while let Some(r) = f.next_message() {
                out.push(r.unwrap());
            }
        }
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], Framed::Ping);
        assert!(matches!(&out[1], Framed::Message(m) if matches!(**m, Message::Request(_))));
        assert!(matches!(&out[2], Framed::Message(m) if matches!(**m, Message::Request(_))));
        // A trailing lone CRLF waits: it may be the start of a ping.
        assert_eq!(f.buffered(), 2);
        f.push(b"OPTIONS");
        assert_eq!(f.next_message(), Some(Ok(Framed::Pong)));
        assert_eq!(f.next_message(), None);
    }

    #[test]
    fn stream_framing_byte_by_byte_is_linear() {
        // 15 kB of headers fed one byte at a time: must not rescan from the start.
        let mut m = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        while m.len() < 15_000 {
            m.push_str("X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        m.push_str("Content-Length: 3\r\n\r\nabc");
        let mut f = StreamFramer::new(Limits {
            max_headers: 1000,
            ..Limits::default()
        });
        let t = std::time::Instant::now();
        let mut got = 0;
        for b in m.as_bytes() {
            f.push(std::slice::from_ref(b));
            if let Some(r) = f.next_message() {
                assert!(matches!(r, Ok(Framed::Message(_))));
                got += 1;
            }
        }
        assert_eq!(got, 1);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn stream_framing_errors() {
        let mut f = StreamFramer::new(Limits {
            max_header_bytes: 100,
            ..Limits::default()
        });
        f.push(&[b'a'; 200]);
        assert!(matches!(
            f.next_message(),
            Some(Err((ParseError::HeadersTooLarge, _)))
        ));
        assert!(f.next_message().is_none());
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Some(Err((ParseError::BodyTooLarge, _)))
        ));
    }
}
