//! The Conclave runtime: configuration, start-up, and the HTTP management API.
//! SIP transports, media threads and the conference actors plug in here as they land.

pub mod access;
pub mod api;
pub mod app;
pub mod config;
pub mod credentials;
pub mod history;
pub mod http;
pub mod limiter;
pub mod limits;
pub mod live;
pub mod media;
pub mod prompts;
pub mod secrets;
pub mod sip;
pub mod telemetry;
pub mod trunks;
pub mod webhooks;

pub use app::{Running, serve, start};
