#![no_main]
//! SDP parser and offer/answer: never panic; parsed SDP re-serializes to parseable SDP.

use conclave_sip::offer_answer::{self, Direction, LocalMedia, MediaConfig, SrtpPolicy};
use conclave_sip::sdp::SessionDescription;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(data) else {
        return;
    };
    let text = sdp.to_bytes();
    assert!(SessionDescription::parse(&text).is_ok(), "reserialized SDP does not parse");
    let local = LocalMedia {
        video_port: Some(4002),
        addr: "203.0.113.5".parse().unwrap(),
        port: 40000,
        session_id: 1,
        session_version: 1,
        srtp_key: Some([1u8; 30]),
        srtp_policy: None,
        direction: Direction::SendRecv,
    };
    for srtp in [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
        let cfg = MediaConfig { srtp, ..MediaConfig::default() };
        if let Ok((ans, _)) = offer_answer::answer(&sdp, &cfg, &local) {
            assert!(SessionDescription::parse(&ans.to_bytes()).is_ok());
        }
        let ours = offer_answer::offer(&cfg, &local);
        let _ = offer_answer::process_answer(&ours, &sdp, &cfg, &local);
    }
});
