//! The SIP message model: requests, responses, headers; serialization; typed accessors;
//! validation of mandatory headers and construction of responses.

use std::fmt::{self, Write as _};

use crate::error::ParseError;
use crate::headers::{AuthParams, CSeq, Contacts, NameAddr, SessionExpires, Via, token_list};
use crate::uri::{Uri, split_quoted};

/// SIP request methods.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token (case-sensitive per RFC 3261).
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Parses a method token; `None` if it is not a valid token.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            _ if !s.is_empty() && s.bytes().all(is_token_char) => Method::Other(s.to_string()),
            _ => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

macro_rules! header_names {
    ($( $var:ident => $name:literal, $lower:literal $(, $compact:literal)? ;)*) => {
        /// Header names: the ones the stack knows, in canonical spelling, plus any other
        /// (compared case-insensitively, spelled as received).
        #[derive(Debug, Clone)]
        pub enum HeaderName {
            $( $var, )*
            Other(String),
        }

        impl HeaderName {
            /// Canonical (long-form) spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$var => $name, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Parses a header name, case-insensitively, accepting compact forms.
            pub fn parse(s: &str) -> HeaderName {
                let b = s.as_bytes();
                let mut buf = [0u8; 24];
                if b.len() > buf.len() {
                    return HeaderName::Other(s.to_string());
                }
                for (d, c) in buf.iter_mut().zip(b) {
                    *d = c.to_ascii_lowercase();
                }
                match &buf[..b.len()] {
                    $(
                        $lower $( | $compact )? => HeaderName::$var,
                    )*
                    _ => HeaderName::Other(s.to_string()),
                }
            }
        }
    };
}

header_names! {
    Via => "Via", b"via", b"v";
    From => "From", b"from", b"f";
    To => "To", b"to", b"t";
    CallId => "Call-ID", b"call-id", b"i";
    CSeq => "CSeq", b"cseq";
    Contact => "Contact", b"contact", b"m";
    MaxForwards => "Max-Forwards", b"max-forwards";
    ContentLength => "Content-Length", b"content-length", b"l";
    ContentType => "Content-Type", b"content-type", b"c";
    ContentEncoding => "Content-Encoding", b"content-encoding", b"e";
    Authorization => "Authorization", b"authorization";
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    Expires => "Expires", b"expires";
    MinExpires => "Min-Expires", b"min-expires";
    Route => "Route", b"route";
    RecordRoute => "Record-Route", b"record-route";
    SessionExpires => "Session-Expires", b"session-expires", b"x";
    MinSe => "Min-SE", b"min-se";
    Supported => "Supported", b"supported", b"k";
    Require => "Require", b"require";
    ProxyRequire => "Proxy-Require", b"proxy-require";
    Unsupported => "Unsupported", b"unsupported";
    Allow => "Allow", b"allow";
    Accept => "Accept", b"accept";
    UserAgent => "User-Agent", b"user-agent";
    Server => "Server", b"server";
    Subject => "Subject", b"subject", b"s";
    Event => "Event", b"event", b"o";
    ReferTo => "Refer-To", b"refer-to", b"r";
    Date => "Date", b"date";
    RetryAfter => "Retry-After", b"retry-after";
    Warning => "Warning", b"warning";
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for HeaderName {}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let HeaderName::Other(s) = self {
            for b in s.bytes() {
                state.write_u8(b.to_ascii_lowercase());
            }
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line (after unfolding). `value` is trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
}

/// Ordered header list. Lookups are by [`HeaderName`], so case and compact forms do not
/// matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::with_capacity(12))
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Replaces all headers of that name with one value (appended if absent).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        if let Some(i) = self.0.iter().position(|h| h.name == name) {
            self.0[i].value = value;
            let mut j = 0;
            self.0.retain(|h| {
                j += 1;
                j - 1 <= i || h.name != name
            });
        } else {
            self.push(name, value);
        }
    }

    /// Inserts a header before all others (e.g. a new top Via).
    pub fn prepend(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// First value of a header.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// All header lines with that name.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// All comma-separated values of a list header (Via, Route, Contact…), in order.
    pub fn list<'a>(&'a self, name: &'a HeaderName) -> Vec<&'a str> {
        self.get_all(name)
            .flat_map(|v| split_quoted(v, b','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    // ---- typed accessors ----

    pub fn call_id(&self) -> Option<&str> {
        self.get(&HeaderName::CallId)
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(
            self.get(&HeaderName::CSeq)
                .ok_or(ParseError::MissingHeader("CSeq"))?,
        )
    }

    pub fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            self.get(&HeaderName::From)
                .ok_or(ParseError::MissingHeader("From"))?,
        )
        .map_err(|_| ParseError::BadHeader("From"))
    }

    pub fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            self.get(&HeaderName::To)
                .ok_or(ParseError::MissingHeader("To"))?,
        )
        .map_err(|_| ParseError::BadHeader("To"))
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let v = self
            .get(&HeaderName::Via)
            .ok_or(ParseError::MissingHeader("Via"))?;
        let first = split_quoted(v, b',').into_iter().next().unwrap_or("");
        Via::parse(first)
    }

    /// All Vias, top first.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.list(&HeaderName::Via)
            .into_iter()
            .map(Via::parse)
            .collect()
    }

    /// Replaces the topmost Via value (keeps others on the same line).
    pub fn set_top_via(&mut self, via: &Via) {
        if let Some(h) = self.0.iter_mut().find(|h| h.name == HeaderName::Via) {
            let parts = split_quoted(&h.value, b',');
            let mut s = via.to_string();
            for p in parts.iter().skip(1) {
                s.push_str(", ");
                s.push_str(p.trim());
            }
            h.value = s;
        } else {
            self.prepend(HeaderName::Via, via.to_string());
        }
    }

    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.get(&HeaderName::MaxForwards)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| ParseError::BadHeader("Max-Forwards"))
            })
            .transpose()
    }

    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        self.get(&HeaderName::ContentLength)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| ParseError::BadContentLength)
            })
            .transpose()
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get(&HeaderName::ContentType)
    }

    /// `Expires` header in seconds.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.get(&HeaderName::Expires)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(|e| e.min(u64::from(u32::MAX)) as u32)
                    .map_err(|_| ParseError::BadHeader("Expires"))
            })
            .transpose()
    }

    pub fn contacts(&self) -> Result<Option<Contacts>, ParseError> {
        if self.get(&HeaderName::Contact).is_none() {
            return Ok(None);
        }
        Contacts::parse(self.get_all(&HeaderName::Contact))
            .map(Some)
            .map_err(|_| ParseError::BadHeader("Contact"))
    }

    /// Route (or Record-Route) set, in header order.
    pub fn routes(&self, name: &HeaderName) -> Result<Vec<NameAddr>, ParseError> {
        self.list(name)
            .into_iter()
            .map(|r| NameAddr::parse(r).map_err(|_| ParseError::BadHeader("Route")))
            .collect()
    }

    pub fn session_expires(&self) -> Result<Option<SessionExpires>, ParseError> {
        self.get(&HeaderName::SessionExpires)
            .map(SessionExpires::parse)
            .transpose()
    }

    pub fn min_se(&self) -> Result<Option<u32>, ParseError> {
        self.get(&HeaderName::MinSe)
            .map(|v| {
                let n = v.split(';').next().unwrap_or("").trim();
                n.parse::<u32>()
                    .map_err(|_| ParseError::BadHeader("Min-SE"))
            })
            .transpose()
    }

    pub fn supported(&self) -> Vec<String> {
        token_list(self.get_all(&HeaderName::Supported))
    }

    pub fn require(&self) -> Vec<String> {
        token_list(self.get_all(&HeaderName::Require))
    }

    pub fn authorization(&self, name: &HeaderName) -> Result<Option<AuthParams>, ParseError> {
        self.get(name).map(AuthParams::parse).transpose()
    }

    /// True if `opt` is listed in Supported or Require.
    pub fn supports(&self, opt: &str) -> bool {
        self.supported()
            .iter()
            .chain(self.require().iter())
            .any(|t| t.eq_ignore_ascii_case(opt))
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Serializes to wire format (Content-Length always recomputed).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    let mut buf = itoa_buf(body.len());
    out.extend_from_slice(buf.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    buf.clear();
}

fn itoa_buf(n: usize) -> String {
    let mut s = String::with_capacity(8);
    let _ = write!(s, "{n}");
    s
}

fn estimate(headers: &Headers, body: &[u8]) -> usize {
    headers
        .iter()
        .map(|h| h.name.as_str().len() + h.value.len() + 4)
        .sum::<usize>()
        + body.len()
        + 96
}

impl Request {
    /// A request with no headers; see [`crate::dialog::OutgoingRequest`] for a complete one.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(estimate(&self.headers, &self.body));
        let _ = write!(
            VecWriter(&mut out),
            "{} {} SIP/2.0\r\n",
            self.method,
            self.uri
        );
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// Checks what RFC 3261 §8.2 asks a UAS to check before processing: mandatory headers
    /// present and well-formed, CSeq method equal to the request method, Max-Forwards not
    /// exhausted, no unsupported extension in Require (`supported` lists ours).
    pub fn validate(&self, supported: &[&str]) -> Result<(), ParseError> {
        validate_common(&self.headers)?;
        let cseq = self.headers.cseq()?;
        if cseq.method != self.method
            && !(self.method == Method::Ack && cseq.method == Method::Invite)
        {
            return Err(ParseError::CSeqMethodMismatch);
        }
        if let Some(0) = self.headers.max_forwards()?
            && !matches!(self.method, Method::Options | Method::Register)
        {
            return Err(ParseError::TooManyHops);
        }
        if !matches!(self.method, Method::Ack | Method::Cancel) {
            let unsupported: Vec<String> = self
                .headers
                .require()
                .into_iter()
                .filter(|r| !supported.iter().any(|s| s.eq_ignore_ascii_case(r)))
                .collect();
            if !unsupported.is_empty() {
                return Err(ParseError::BadExtension(unsupported));
            }
        }
        self.headers.expires()?;
        self.headers.contacts()?;
        self.headers.session_expires()?;
        Ok(())
    }

    /// Builds a response to this request per RFC 3261 §8.2.6: Via, From, To, Call-ID and
    /// CSeq copied; a To tag added if `to_tag` is given and the To has none.
    pub fn response(&self, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut h = Headers::new();
        for hd in self.headers.iter() {
            match hd.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    h.push(hd.name.clone(), hd.value.clone())
                }
                HeaderName::To => {
                    let mut v = hd.value.clone();
                    if let Some(tag) = to_tag
                        && status != 100
                        && let Ok(na) = NameAddr::parse(&v)
                        && na.tag().is_none()
                    {
                        v.push_str(";tag=");
                        v.push_str(tag);
                    }
                    h.push(HeaderName::To, v)
                }
                HeaderName::RecordRoute if (101..300).contains(&status) => {
                    h.push(hd.name.clone(), hd.value.clone())
                }
                _ => {}
            }
        }
        Response {
            status,
            reason: reason.to_string(),
            headers: h,
            body: Vec::new(),
        }
    }
}

fn validate_common(h: &Headers) -> Result<(), ParseError> {
    if h.call_id().is_none_or(|c| c.trim().is_empty()) {
        return Err(ParseError::MissingHeader("Call-ID"));
    }
    h.cseq()?;
    h.from()?;
    h.to()?;
    h.top_via()?;
    h.content_length()?;
    Ok(())
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(estimate(&self.headers, &self.body));
        let _ = write!(
            VecWriter(&mut out),
            "SIP/2.0 {} {}\r\n",
            self.status,
            self.reason
        );
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// Checks that the headers needed to match a response to a transaction are there.
    pub fn validate(&self) -> Result<(), ParseError> {
        validate_common(&self.headers)
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Default reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match status / 100 {
            1 => "Trying",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Decides whether a received request that failed to parse or validate deserves an error
/// response, and builds it (RFC 3261 §8.2, §21.4).
///
/// `raw` is the received bytes, `err` the failure. The function re-reads the header section
/// leniently (ignoring broken lines) to collect Via, From, To, Call-ID and CSeq; if any of
/// them is missing or if the message is a response or an ACK, no answer is due and `None`
/// is returned: drop the message.
pub fn error_response(raw: &[u8], err: &ParseError) -> Option<Response> {
    let limit = raw.len().min(64 * 1024);
    let text = String::from_utf8_lossy(&raw[..limit]);
    let mut lines = text.split('\n');
    let start = lines.next()?.trim();
    if start.starts_with("SIP/") {
        return None;
    }
    let method = start.split(' ').next()?;
    if method == "ACK" || method.is_empty() {
        return None;
    }
    let mut headers = Headers::new();
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = HeaderName::parse(name.trim());
        if matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) {
            headers.push(name, value.trim());
        }
    }
    for n in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        headers.get(&n)?;
    }
    headers.top_via().ok()?;
    let cseq = headers.get(&HeaderName::CSeq)?;
    if cseq.split_ascii_whitespace().nth(1) == Some("ACK") {
        return None;
    }
    let (status, reason) = err.status();
    let mut resp = Response {
        status,
        reason,
        headers: Headers::new(),
        body: Vec::new(),
    };
    for h in headers.iter() {
        let mut v = h.value.clone();
        if h.name == HeaderName::To && !v.contains(";tag=") {
            v.push_str(";tag=err");
        }
        resp.headers.push(h.name.clone(), v);
    }
    if let ParseError::BadExtension(ext) = err {
        resp.headers.push(HeaderName::Unsupported, ext.join(", "));
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_case_insensitive_with_compact_forms() {
        assert_eq!(HeaderName::parse("CALL-ID"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(
            HeaderName::parse("www-authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(
            HeaderName::parse("Session-Expires"),
            HeaderName::SessionExpires
        );
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(
            HeaderName::parse("X-Custom"),
            HeaderName::Other("X-Custom".into())
        );
        assert_eq!(HeaderName::parse("x-CUSTOM"), HeaderName::parse("X-Custom"));
        assert_eq!(HeaderName::parse("x-CUSTOM").as_str(), "x-CUSTOM");
        let long = "X-".repeat(40);
        assert_eq!(HeaderName::parse(&long), HeaderName::Other(long.clone()));
    }

    #[test]
    fn headers_set_and_prepend() {
        let mut h = Headers::new();
        h.push(HeaderName::Route, "<sip:a>");
        h.push(HeaderName::Route, "<sip:b>");
        h.push(
            HeaderName::Via,
            "SIP/2.0/UDP x;branch=z9hG4bK1, SIP/2.0/UDP y;branch=z9hG4bK2",
        );
        h.set(HeaderName::Route, "<sip:c>");
        assert_eq!(
            h.get_all(&HeaderName::Route).collect::<Vec<_>>(),
            vec!["<sip:c>"]
        );
        let mut v = h.top_via().unwrap();
        v.params.set("received", Some("1.2.3.4"));
        h.set_top_via(&v);
        let vias = h.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].received(), Some("1.2.3.4"));
        h.prepend(HeaderName::Via, "SIP/2.0/TCP z;branch=z9hG4bK0");
        assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK0"));
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(487), "Request Terminated");
        assert_eq!(reason_phrase(499), "Client Error");
    }
}
