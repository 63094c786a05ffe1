#![no_main]
//! Every decoder fed arbitrary payloads, with FEC and concealment in between; and the Opus
//! voice-flag reader.
use conclave_media::codec::{CodecConfig, CodecKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = conclave_media::codec::opus_vad::voice_inactive(data);
    for kind in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus] {
        let cfg = CodecConfig::new(kind, 48000);
        let mut dec = cfg.decoder().unwrap();
        let mut out = Vec::new();
        for chunk in data.chunks(97) {
            let _ = dec.samples_in(chunk);
            let _ = dec.decode(chunk, &mut out);
            let _ = dec.decode_fec(chunk, 960, &mut out);
            dec.conceal(960, &mut out);
            out.clear();
        }
    }
});
