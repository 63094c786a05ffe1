//! The Conclave runtime: configuration and start-up, the HTTP management API, SIP, the
//! media plane's workers and the live meetings that own their participants.

pub mod api;
pub mod app;
pub mod browser;
pub mod cluster;
pub mod config;
pub mod credentials;
/// Directory files (CSV, XLSX): in `conclave-directory-formats`, so they can be fuzzed alone.
pub use conclave_directory_formats as directory_io;
pub mod history;
pub mod http;
pub mod limiter;
pub mod limits;
pub mod media;
pub mod meeting;
pub mod minutes;
pub mod outbound;
pub mod prompts;
pub mod recording;
pub mod rooms;
pub mod scheduling;
pub mod scim;
pub mod secrets;
pub mod sip;
pub mod streaming;
pub mod telemetry;
pub mod trunks;
pub mod video;
pub mod webhooks;

pub use app::{Running, serve, start};
