#![no_main]
//! A whole conference fed arbitrary datagrams (RTP and RTCP) between ticks:
//! never panics, never stalls, keeps its clock.
use conclave_media::codec::CodecKind;
use conclave_media::mixer::{Mixer, MixerConfig, MemberConfig};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let mut conf = Mixer::new(MixerConfig::default());
    let kinds = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus];
    for (i, k) in kinds.iter().enumerate() {
        let mut mc = MemberConfig::new(*k, i as u32 + 1);
        mc.audio_level_ext = Some(1);
        mc.inband_dtmf = i == 0;
        conf.add_member(i as u64, mc, Duration::ZERO).unwrap();
    }
    let mut now = Duration::ZERO;
    // datagrams separated by 2-byte length prefixes; first byte selects member and tick
    let mut rest = data;
    while rest.len() >= 3 {
        let sel = rest[0];
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize % 1500;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (pkt, r) = rest.split_at(take);
        rest = r;
        let _ = conf.handle_datagram(now, (sel & 3) as u64, None, pkt);
        if sel & 0x80 != 0 {
            now += Duration::from_millis(20);
            // the server's loop: tick while a deadline is due; it must catch up quickly
            let mut n = 0;
            while conf.next_deadline().is_some_and(|d| d <= now) {
                let _ = conf.tick(now);
                n += 1;
                assert!(n <= 5, "the conference does not catch up");
            }
            assert!(conf.next_deadline().is_some_and(|d| d > now));
        }
    }
});
