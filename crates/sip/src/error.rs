//! Error types for parsing and validation, and the mapping to SIP status codes.

use std::fmt;

/// Why a message (or a part of it) could not be parsed or is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The whole message exceeds [`crate::Limits::max_message_size`].
    MessageTooLarge,
    /// The header section exceeds [`crate::Limits::max_header_bytes`].
    HeadersTooLarge,
    /// More header lines than [`crate::Limits::max_headers`].
    TooManyHeaders,
    /// The body exceeds [`crate::Limits::max_body_size`].
    BodyTooLarge,
    /// No blank line ending the header section.
    Incomplete,
    /// Request or status line malformed.
    BadStartLine(&'static str),
    /// Not `SIP/2.0`.
    BadVersion,
    /// A header line without a colon or with an invalid name.
    BadHeaderLine,
    /// A header value that cannot be parsed.
    BadHeader(&'static str),
    /// A mandatory header is missing.
    MissingHeader(&'static str),
    /// A URI that cannot be parsed.
    BadUri(&'static str),
    /// A URI scheme other than sip/sips/tel.
    UnsupportedUriScheme,
    /// Content-Length larger than the bytes received (datagram) or not a number.
    BadContentLength,
    /// CSeq method differs from the request method.
    CSeqMethodMismatch,
    /// Required extensions we do not support (420 with Unsupported).
    BadExtension(Vec<String>),
    /// Max-Forwards reached zero.
    TooManyHops,
    /// SDP body problems.
    BadSdp(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MessageTooLarge => f.write_str("message too large"),
            ParseError::HeadersTooLarge => f.write_str("header section too large"),
            ParseError::TooManyHeaders => f.write_str("too many headers"),
            ParseError::BodyTooLarge => f.write_str("body too large"),
            ParseError::Incomplete => f.write_str("incomplete message"),
            ParseError::BadStartLine(w) => write!(f, "bad start line: {w}"),
            ParseError::BadVersion => f.write_str("unsupported SIP version"),
            ParseError::BadHeaderLine => f.write_str("malformed header line"),
            ParseError::BadHeader(h) => write!(f, "malformed {h} header"),
            ParseError::MissingHeader(h) => write!(f, "missing {h} header"),
            ParseError::BadUri(w) => write!(f, "bad URI: {w}"),
            ParseError::UnsupportedUriScheme => f.write_str("unsupported URI scheme"),
            ParseError::BadContentLength => f.write_str("bad Content-Length"),
            ParseError::CSeqMethodMismatch => f.write_str("CSeq method does not match"),
            ParseError::BadExtension(e) => write!(f, "unsupported extension(s): {}", e.join(", ")),
            ParseError::TooManyHops => f.write_str("too many hops"),
            ParseError::BadSdp(w) => write!(f, "bad SDP: {w}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The status code and reason phrase with which a request failing this way should be
    /// answered (RFC 3261 §8.2, §16.3, §21.4; RFC 3261 §20.45 for 513).
    ///
    /// Whether an answer can actually be sent depends on whether the headers needed to
    /// build a response (Via, From, To, Call-ID, CSeq) could be read: see
    /// [`crate::message::error_response`].
    pub fn status(&self) -> (u16, String) {
        match self {
            ParseError::MessageTooLarge | ParseError::HeadersTooLarge => {
                (513, "Message Too Large".into())
            }
            ParseError::BodyTooLarge => (413, "Request Entity Too Large".into()),
            ParseError::UnsupportedUriScheme => (416, "Unsupported URI Scheme".into()),
            ParseError::BadExtension(_) => (420, "Bad Extension".into()),
            ParseError::TooManyHops => (483, "Too Many Hops".into()),
            ParseError::BadVersion => (505, "Version Not Supported".into()),
            ParseError::BadSdp(_) => (488, "Not Acceptable Here".into()),
            other => (400, format!("Bad Request - {other}")),
        }
    }
}
