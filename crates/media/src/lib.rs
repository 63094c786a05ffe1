//! conclave-media
pub mod codec;
pub mod conference;
pub mod dsp;
pub mod dtmf;
pub mod jitter;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod vad;
