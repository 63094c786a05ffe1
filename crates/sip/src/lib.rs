//! conclave-sip (work in progress)
pub mod error;
pub mod headers;
pub mod message;
pub mod parser;
pub mod uri;

pub use error::ParseError;
pub use parser::{Limits, StreamFramer, parse_datagram};
pub mod auth;
pub mod offer_answer;
pub mod sdp;
pub mod transaction;
