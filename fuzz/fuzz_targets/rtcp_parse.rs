#![no_main]
//! RTCP compound parser: never panics, and what it parses can be rebuilt.
use conclave_media::rtcp::{self, RtcpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for p in rtcp::parse_compound(data) {
        let Ok(p) = p else { break };
        let mut out = Vec::new();
        match &p {
            RtcpPacket::SenderReport { ssrc, info, reports } => {
                rtcp::write_sr(&mut out, *ssrc, info, reports)
            }
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                rtcp::write_rr(&mut out, *ssrc, reports)
            }
            _ => {}
        }
        if !out.is_empty() {
            let again = rtcp::parse_all(&out).expect("rebuilt report parses");
            assert_eq!(again.len(), 1);
        }
    }
});
