#![no_main]
//! RTP parser: never panics; accessors stay within the datagram.
use conclave_media::rtp::{RtpHeader, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        let _ = (p.marker(), p.payload_type(), p.sequence(), p.timestamp(), p.ssrc());
        let csrcs: Vec<u32> = p.csrcs().collect();
        assert_eq!(csrcs.len(), p.csrc_count());
        for e in p.extensions() {
            let _ = e.data.len();
        }
        for id in 0..16 {
            let _ = p.audio_level(id);
        }
        assert!(p.payload().len() <= data.len());
        // rebuilding what we parsed parses again
        let h = RtpHeader {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence: p.sequence(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            csrcs,
            extensions: Vec::new(),
        };
        let v = h.to_vec(p.payload());
        let q = RtpPacket::parse(&v).expect("rebuilt packet parses");
        assert_eq!(q.payload(), p.payload());
    }
});
