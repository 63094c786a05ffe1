//! Recording, sans-IO: the mixer's taps (the room's mix, each member's decoded voice) become
//! one track each — Opus in Ogg ([`ogg`]), sealed chunk by chunk with the recording's key
//! ([`sealed`]) — and members' tracks are cut into utterances by voice activity
//! ([`track`]); the composed picture, when the meeting has video, is a sealed track of its own
//! that becomes an MP4 with the mix ([`video`]). The caller appends the bytes to files and
//! keeps the keys.

pub mod clip;
pub mod ogg;
pub mod sealed;
pub mod track;
pub mod video;

pub use sealed::{RecordingKey, SealedError};
pub use track::{TrackError, TrackWriter, Utterance};
