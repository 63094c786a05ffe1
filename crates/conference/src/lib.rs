//! The conference domain: who may do what in a meeting.
//!
//! This crate knows nothing of SIP, HTTP or storage. The REST API, the WebSocket, the keypad
//! and SIP all turn a user's wish into an [`Action`] and ask [`check`] whether the actor's
//! [`Role`] allows it — one rule book for every channel.

pub mod keypad;
pub mod layout;
pub mod live;
pub mod permissions;
pub mod whiteboard;

pub use permissions::{Action, Denied, Role, check, check_role_change};
