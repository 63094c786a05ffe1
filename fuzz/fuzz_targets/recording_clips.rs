#![no_main]
//! A recorded track cut into parts (the minutes' speech recognition, the audio of one
//! line): whatever the file and the span, no panic; a clip is an Ogg stream that reads back
//! and is no bigger than the file it came from plus its headers.
use conclave_media::recording::clip::{cut, decode_spans};
use conclave_media::recording::ogg::read_packets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let from = u64::from(u16::from_le_bytes([data[0], data[1]])) * 10;
    let to = from + u64::from(u16::from_le_bytes([data[2], data[3]]));
    let file = &data[4..];
    let _ = decode_spans(file, &[(from, to), (to, from), (0, u64::MAX)], 16_000, true);
    let _ = decode_spans(file, &[(from, to)], 48_000, false);
    if let Ok(clip) = cut(file, from, to, &["FUZZ=1".into()]) {
        let read = read_packets(&clip).expect("a clip reads back");
        assert!(read.packets.iter().skip(2).map(Vec::len).sum::<usize>() <= file.len());
    }
});
