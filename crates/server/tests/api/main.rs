//! End-to-end tests of the management API over real HTTP, on SQLite and on PostgreSQL.
//! One test binary (modules below) keeps link time low.

mod authz;
mod baresip;
mod browser;
mod brute_force;
mod cli;
mod cluster;
mod common;
mod directory;
mod directory_io;
mod exhaustion;
mod faults;
mod frozen;
mod hardening;
mod history;
mod media_plane;
mod minutes;
mod operations;
mod participants;
mod phone;
mod recording;
mod restart;
mod room_call;
mod scheduling;
mod scim;
mod session_timers;
mod sip_calls;
mod sip_digests;
mod sip_register;
mod sip_transports;
mod soak;
mod status;
mod streaming;
mod trunks;
mod video;
mod webhooks;
