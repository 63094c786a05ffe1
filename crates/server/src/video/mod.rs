//! Video beyond the SFU (docs/video.md): the room's composed picture.

pub mod composer;
