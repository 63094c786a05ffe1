//! Live streaming, sans-IO: the room's mix becomes HLS — Opus in fragmented MP4 ([`fmp4`]),
//! two-second segments and their playlist ([`hls`]). The caller serves the bytes.
//!
//! Why Opus in fMP4 and not AAC: the mixer already speaks Opus, no patent-free AAC encoder
//! of broadcast quality exists in Rust or Debian's libraries, and Opus in fMP4 plays through
//! Media Source Extensions in Chromium, Firefox and Safari 17+ (the console's player), and
//! natively in Safari's HLS since iOS 17 / macOS 14.

pub mod fmp4;
pub mod hls;

pub use hls::{LiveEncoder, Segment, StreamError, media_playlist};
