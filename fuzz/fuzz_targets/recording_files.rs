#![no_main]
//! What the server reads back of a recording: a sealed track file (maybe cut off by a crash,
//! maybe altered) and the Ogg stream inside it, and the download's comment stamp. Never
//! panics; a cut-off file opens to its whole chunks.
use conclave_media::recording::ogg::{read_packets, with_comment};
use conclave_media::recording::sealed::{RecordingKey, open};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = RecordingKey::new(&[7; 32]) {
        if let Ok(opened) = open(&key, b"fuzz", 0, data) {
            assert!(opened.plain.len() <= data.len());
        }
    }
    if let Ok(read) = read_packets(data) {
        assert!(read.packets.iter().map(Vec::len).sum::<usize>() <= data.len());
    }
    if let Some(stamped) = with_comment(data, "DOWNLOADED_BY=fuzz") {
        assert!(stamped.len() > data.len());
    }
});
