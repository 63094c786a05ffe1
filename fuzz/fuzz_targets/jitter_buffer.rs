#![no_main]
//! Jitter buffer driven by arbitrary inserts (timestamps, durations, arrival times) and pops.
use conclave_media::jitter::{JitterBuffer, JitterConfig};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let mut jb = JitterBuffer::new(8000, JitterConfig::default());
    let mut now = 0u64;
    for c in data.chunks(8) {
        if c.len() < 8 {
            break;
        }
        now += (c[0] as u64) % 64;
        let t = Duration::from_millis(now);
        if c[1] & 1 == 0 {
            let ts = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
            let dur = u16::from_be_bytes([c[6], c[7]]) as u32;
            jb.insert(ts, dur, &c[2..], t);
        } else {
            let _ = jb.pop(t);
        }
        assert!(jb.len() <= JitterConfig::default().max_packets);
    }
});
