#![no_main]
//! What the server reads back of a recording's video: the picture track's plain bytes (maybe
//! cut off by a crash, maybe altered), and the MP4 built from it with a mix. Never panics;
//! nothing read is larger than what came in; the MP4 holds every picture's bytes.
use conclave_media::recording::ogg::read_packets;
use conclave_media::recording::video::{read_pictures, recording_mp4};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(log) = read_pictures(data) else {
        return;
    };
    let pictures: usize = log.pictures.iter().map(|p| p.data.len()).sum();
    assert!(pictures <= data.len());
    let mix = read_packets(data).ok();
    let mp4 = recording_mp4(mix.as_ref().map(|m| (m, Duration::from_millis(20))), log);
    assert!(mp4.len() >= pictures);
});
