//! Video codecs for the composing MCU (docs/video.md), the one place in Conclave with code in
//! C behind it: VP8 decoding through Debian's libvpx, H.264 decoding and encoding through
//! Cisco's openh264 (built from its bundled source; no GPL library is linked).
//!
//! Frames in and out are [`Picture`]s: 8-bit I420 with tight strides. Every input is a
//! peer's: a bitstream the library refuses is an error, never a panic.

mod h264;
mod picture;
mod vp8;

pub use h264::{H264Decoder, H264Encoder, annex_b};
pub use picture::Picture;
pub use vp8::Vp8Decoder;

/// What a codec refused.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The library could not be set up.
    #[error("the {0} codec could not be set up: {1}")]
    Init(&'static str, String),
    /// A bitstream it cannot decode.
    #[error("the {0} bitstream cannot be decoded: {1}")]
    Decode(&'static str, String),
    /// A picture it cannot encode.
    #[error("the picture cannot be encoded: {0}")]
    Encode(String),
}
