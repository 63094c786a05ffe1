//! Whether an Opus packet's SILK layer flags voice, read without decoding it (RFC 6716
//! §4.2.3: the LP layer begins with one VAD flag per SILK frame, each a bit of probability ½
//! in the range coder). CELT-only packets carry no such flag: the answer is "unknown".
//!
//! The flag alone is not a level: SILK also flags a steady tone or music "inactive" once its
//! noise estimate has adapted to it. The mixer therefore skips a member's decode on this flag
//! only while that member's last decoded audio was silent (see `mixer.rs`).

/// The range decoder of RFC 6716 §4.1, as far as reading bits of probability ½ needs.
struct RangeDecoder<'a> {
    data: &'a [u8],
    offset: usize,
    rng: u32,
    val: u32,
    rem: u32,
}

const CODE_BOT: u32 = 1 << 23;
const CODE_TOP: u32 = 1 << 31;

impl<'a> RangeDecoder<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut d = RangeDecoder {
            data,
            offset: 0,
            rng: 128,
            val: 0,
            rem: 0,
        };
        d.rem = d.byte();
        d.val = d.rng - 1 - (d.rem >> 1);
        d.normalize();
        d
    }

    fn byte(&mut self) -> u32 {
        let b = self.data.get(self.offset).copied().unwrap_or(0);
        self.offset += 1;
        u32::from(b)
    }

    fn normalize(&mut self) {
        while self.rng <= CODE_BOT {
            self.rng <<= 8;
            let sym = self.rem;
            self.rem = self.byte();
            let sym = ((sym << 8) | self.rem) >> 1;
            self.val = ((self.val << 8).wrapping_add(255 & !sym)) & (CODE_TOP - 1);
        }
    }

    /// A bit whose probability of being 1 is 1/2^logp.
    fn bit(&mut self, logp: u32) -> bool {
        let s = self.rng >> logp;
        let one = self.val < s;
        if !one {
            self.val -= s;
        }
        self.rng = if one { s } else { self.rng - s };
        self.normalize();
        one
    }
}

/// `Some(true)` when every SILK frame of the packet is flagged inactive (no voice),
/// `Some(false)` when one is active, `None` when the packet does not say (CELT-only, several
/// Opus frames, or too short to read).
pub fn voice_inactive(packet: &[u8]) -> Option<bool> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // SILK-only (0-11) and hybrid (12-15) packets start with the SILK layer.
    let silk_frames = match config {
        0..=11 => match config % 4 {
            0 | 1 => 1, // 10 or 20 ms
            2 => 2,     // 40 ms
            _ => 3,     // 60 ms
        },
        12..=15 => 1,
        _ => return None,
    };
    // Where the first Opus frame starts: one frame (code 0) only; two or more frames would
    // each need their own read.
    if toc & 3 != 0 {
        return None;
    }
    let frame = packet.get(1..).filter(|f| !f.is_empty())?;
    let mut dec = RangeDecoder::new(frame);
    let mut active = false;
    for _ in 0..silk_frames {
        active |= dec.bit(1);
    }
    Some(!active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecConfig, CodecKind};
    use crate::dsp::tone;

    fn encoded(pcm_of: impl Fn(usize) -> Vec<i16>, frames: usize) -> Vec<Vec<u8>> {
        let codec = CodecConfig::new(CodecKind::Opus, 48000);
        let mut enc = codec.encoder().expect("encoder");
        (0..frames)
            .map(|i| {
                let mut out = Vec::new();
                enc.encode(&pcm_of(i), &mut out).expect("encode");
                out
            })
            .collect()
    }

    #[test]
    fn silence_is_flagged_inactive_and_a_sudden_sound_active() {
        let silent = encoded(|_| vec![0; 960], 50);
        assert!(
            silent[10..].iter().all(|p| voice_inactive(p) == Some(true)),
            "digital silence is flagged inactive"
        );
        // silence, then a tone starts: its first frames are flagged active
        let onset = encoded(
            |i| {
                if i < 20 {
                    vec![0; 960]
                } else {
                    tone(700.0, 48000, 960, 6000.0, i * 960)
                }
            },
            30,
        );
        assert_eq!(
            voice_inactive(&onset[20]),
            Some(false),
            "the onset is voice"
        );
    }

    #[test]
    fn packets_that_do_not_say_are_unknown() {
        assert_eq!(voice_inactive(&[]), None);
        assert_eq!(voice_inactive(&[16 << 3, 1, 2, 3]), None, "CELT-only");
        assert_eq!(voice_inactive(&[(1 << 3) | 3, 1]), None, "code 3");
        assert_eq!(voice_inactive(&[1 << 3]), None, "no frame");
        // whatever the bytes, reading never panics
        for len in 1..40 {
            let p: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = voice_inactive(&p);
        }
    }
}
