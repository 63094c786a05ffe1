#![no_main]
//! A SIP video terminal's datagrams (RTP, RTCP, anything) on its leg's ports, from several
//! sources: never a panic, a stranger never takes the stream, and what goes out of a
//! composed frame keeps the leg's payload type and the frame's end.
use conclave_media::rtp::RtpPacket;
use conclave_media::video::sip_leg::{ComposedFrame, VideoLeg, VideoLegConfig, VideoLegInput};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let named: SocketAddr = "192.0.2.7:5002".parse().unwrap();
    let mut leg = VideoLeg::new(VideoLegConfig {
        payload_type: 102,
        packetization_mode: data.first().map_or(1, |b| b & 1),
        size: (320, 180),
        remote: Some(named),
        known_ips: vec!["203.0.113.9".parse().unwrap()],
        remote_rtcp: Some("192.0.2.7:5003".parse().unwrap()),
        rtcp_mux: data.get(1).is_some_and(|b| b & 1 == 1),
        sends: true,
        receives: true,
        ssrc: 1,
        initial_seq: 65530,
        initial_ts: 0,
    });
    let sources: [SocketAddr; 3] = [
        "203.0.113.9:40000".parse().unwrap(),
        named,
        "198.51.100.66:1".parse().unwrap(),
    ];
    let mut first = None;
    for (i, chunk) in data.chunks(48).enumerate() {
        let from = sources[usize::from(chunk[0]) % 3];
        let now = Duration::from_millis(i as u64 * 500);
        if let Ok(VideoLegInput::Camera { payload, .. }) = leg.receive(now, from, chunk, i % 5 == 4)
        {
            assert!(payload.len() <= chunk.len());
            let first = *first.get_or_insert(from);
            // only a known first source, or the SDP's after a silence, is ever taken
            assert!(from == first || from == named);
            assert_ne!(from, sources[2], "a stranger is never taken");
        }
    }
    let packets: Vec<(Vec<u8>, bool)> = data
        .chunks(64)
        .map(|c| (c.to_vec(), c.len() < 64))
        .collect();
    let frame = ComposedFrame {
        size: (320, 180),
        timestamp: 9000,
        keyframe: false,
        packets,
    };
    let mut sent = Vec::new();
    leg.send(&frame, &mut |_, d| sent.push(d));
    for d in &sent {
        let p = RtpPacket::parse(d).expect("our own packets parse");
        assert_eq!(p.payload_type(), 102);
    }
    if let Some(last) = sent.last() {
        assert!(RtpPacket::parse(last).expect("parses").marker());
    }
    let _ = leg.keyframe_request();
});
