//! # conclave-sip: a sans-IO SIP stack
//!
//! Messages (RFC 3261), SDP offer/answer (RFC 3264/4566, SDES RFC 4568), digest
//! authentication (RFC 2617/7616/8760), transactions (RFC 3261 §17 + RFC 6026), dialogs
//! with session timers (RFC 4028), and a registrar core. No sockets, threads, async or
//! clock reads: the runtime (`crates/server`) moves bytes and time in and out.
//!
//! ## How the runtime drives it
//!
//! One [`transaction::Endpoint`] per SIP node (or per worker, sharded by Call-ID).
//!
//! **Input**
//! - UDP: every datagram goes to [`transaction::Endpoint::handle_datagram`] with its source
//!   as a [`transaction::Peer`] (transport, address, and `connection: None`).
//! - TCP/TLS: each connection owns a [`parser::StreamFramer`]; push received bytes, then
//!   loop on [`parser::StreamFramer::next_message`]:
//!   `Framed::Message(m)` → [`transaction::Endpoint::handle_message`] with a `Peer` whose
//!   `connection` is the runtime's connection id; `Framed::Ping` (CRLFCRLF) → write
//!   `"\r\n"` back; `Err((error, raw))` → send [`message::error_response`]`(&raw, &error)`
//!   if it returns one, then close the connection.
//! - Application commands: [`transaction::Endpoint::respond`] (answer a server
//!   transaction), [`transaction::Endpoint::send_request`] (start a client transaction),
//!   [`transaction::Endpoint::send_ack`] (ACK a 2xx), [`transaction::Endpoint::cancel`].
//! - Time: every call takes `now: Instant` explicitly. The crate never reads a clock, so
//!   tests drive it with simulated time.
//!
//! **Output** (drain all three after every input)
//! - [`transaction::Endpoint::poll_transmit`] → [`transaction::Transmit`]: bytes and a
//!   destination `Peer`. For `connection: Some(id)` write on that connection; otherwise
//!   send a datagram (UDP) or find/open a connection to `addr` (TCP/TLS). If that fails,
//!   call [`transaction::Endpoint::transport_error`].
//! - [`transaction::Endpoint::poll_event`] → [`transaction::Event`]: new requests, ACKs,
//!   CANCELs, responses, timeouts, bad messages (log them rate-limited).
//! - [`transaction::Endpoint::poll_timeout`] → the next deadline. Sleep until then (or
//!   until the next packet/command) and call [`transaction::Endpoint::handle_timeout`].
//!   There is one deadline for the whole endpoint, kept in a heap: cost is O(log n) per
//!   timer, and an idle endpoint has no deadline.
//!
//! **Calls**: [`ua::UserAgent`] wraps the endpoint with the same input/output shape and
//! turns SIP into call events (incoming, progress, answered, media updated, DTMF, ended),
//! handling ACKs, CANCEL, BYE, re-INVITE/UPDATE, late offers, session timers, ring
//! timeouts and digest retries itself. Requests that are not about calls (REGISTER,
//! OPTIONS) come out as [`ua::UaEvent::Request`].
//!
//! **Above the transactions** (without `ua`) the application keeps, per call, a [`dialog::Dialog`]
//! (builds BYE/re-INVITE/UPDATE/INFO, checks CSeq, session-timer deadlines via
//! [`dialog::SessionTimer::deadline`]) and uses [`offer_answer`] to turn SDP into a
//! [`offer_answer::NegotiatedMedia`] for the media engine. REGISTER goes through
//! [`auth::DigestServer`] (stateless nonces bound to the client's flow, with
//! [`auth::NonceCounts`] against replays; time in Unix seconds) and the
//! [`registrar::Registrar`]; their deadlines ([`registrar::Registrar::next_expiry`]) are
//! the runtime's to schedule as well.
//!
//! Trunks that must REGISTER use [`registration::Registration`] (fed with the endpoint's
//! events for its transactions; its own `poll_timeout`/`handle_timeout` for refreshes);
//! numbers are cleaned and rewritten with [`numbering`].
//!
//! Randomness (branches, tags, SRTP keys, nonce secret) is injected: a seed for
//! [`transaction::Endpoint::new`], key bytes for [`offer_answer::LocalMedia`], a secret
//! for [`auth::DigestServer::new`].
//!
//! ## Example: answering OPTIONS
//!
//! ```
//! use std::time::Instant;
//! use conclave_sip::{Endpoint, Event, Peer, Transport, transaction::Config};
//!
//! let mut ep = Endpoint::new(Config::default(), 0x5eed);
//! let now = Instant::now(); // the runtime's clock, read outside the stack
//! let from = Peer::new(Transport::Udp, "192.0.2.7:5060".parse().unwrap());
//! let datagram = b"OPTIONS sip:conclave@192.0.2.1 SIP/2.0\r\n\
//! Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKping;rport\r\n\
//! From: <sip:1001@192.0.2.1>;tag=p\r\nTo: <sip:conclave@192.0.2.1>\r\n\
//! Call-ID: ka-1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\n\r\n";
//! ep.handle_datagram(now, datagram, from);
//! while let Some(event) = ep.poll_event() {
//!     if let Event::Request { tx, request, .. } = event {
//!         let tag = ep.new_tag();
//!         ep.respond(now, tx, request.response(200, "OK", Some(&tag))).unwrap();
//!     }
//! }
//! let out = ep.poll_transmit().unwrap();
//! assert_eq!(out.peer.addr, from.addr); // rport: back to the source port
//! assert!(out.payload.starts_with(b"SIP/2.0 200 OK\r\n"));
//! // Timer J keeps the transaction to absorb retransmissions; the runtime sleeps until:
//! let _next_deadline = ep.poll_timeout();
//! ```
//!
//! ## Malformed input
//! Nothing derived from the network is unwrapped. Parse failures are values
//! ([`error::ParseError`]); [`error::ParseError::status`] chooses the 4xx/5xx and the
//! endpoint answers when the request carried enough headers to route a response, and
//! drops it otherwise. Limits ([`parser::Limits`]) bound message, header and body sizes.

pub mod auth;
pub mod dialog;
pub mod error;
pub mod headers;
pub mod message;
pub mod numbering;
pub mod offer_answer;
pub mod parser;
pub mod registrar;
pub mod registration;
pub mod sdp;
pub mod transaction;
pub mod ua;
pub mod uri;
pub mod video;

pub use error::ParseError;
pub use headers::{NameAddr, Transport, Via};
pub use message::{HeaderName, Headers, Message, Method, Request, Response};
pub use parser::{Framed, Limits, StreamFramer, parse_datagram};
pub use transaction::{Endpoint, Event, Peer, Transmit, TxId};
pub use uri::{Host, Uri};
