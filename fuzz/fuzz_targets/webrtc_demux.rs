#![no_main]
//! What the engine reads of a datagram before a browser's WebRTC session sees it: the STUN
//! username it is routed by. Never panics, never reads past the datagram.
use conclave_media::webrtc::{stun_local_ufrag, stun_username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(username) = stun_username(data) {
        assert!(username.len() <= data.len());
        let local = stun_local_ufrag(data).expect("a username has a local part");
        assert!(username.starts_with(local));
    }
});
