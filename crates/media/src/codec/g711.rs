//! G.711 µ-law (PCMU) and A-law (PCMA), with compile-time lookup tables.

const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = (((u & 0x0f) as i32) << 3) + 0x84;
    let t = t << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn linear_to_ulaw(pcm: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = pcm as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    if s > CLIP {
        s = CLIP;
    }
    s += BIAS;
    let mut exp = 7;
    let mut mask = 0x4000;
    while exp > 0 && s & mask == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mant = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mant) as u8
}

const fn linear_to_alaw(pcm: i16) -> u8 {
    let mut s = pcm as i32;
    let mask = if s >= 0 {
        0xd5
    } else {
        s = -s - 1;
        0x55
    };
    if s > 32767 {
        s = 32767;
    }
    let s = s >> 3; // 13-bit magnitude
    let aval = if s < 32 {
        s >> 1
    } else {
        let mut seg = 1;
        let mut lim = 64;
        while seg < 7 && s >= lim {
            seg += 1;
            lim <<= 1;
        }
        (seg << 4) | ((s >> seg) & 0x0f)
    };
    (aval ^ mask) as u8
}

const fn build_dec(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

const fn build_enc(alaw: bool) -> [u8; 65536] {
    let mut t = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        let s = (i as u16) as i16;
        t[i] = if alaw {
            linear_to_alaw(s)
        } else {
            linear_to_ulaw(s)
        };
        i += 1;
    }
    t
}

/// µ-law byte to linear PCM.
pub static ULAW_DECODE: [i16; 256] = build_dec(false);
/// A-law byte to linear PCM.
pub static ALAW_DECODE: [i16; 256] = build_dec(true);
static ULAW_ENCODE: [u8; 65536] = build_enc(false);
static ALAW_ENCODE: [u8; 65536] = build_enc(true);

/// Encodes one sample to µ-law.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    ULAW_ENCODE[s as u16 as usize]
}

/// Encodes one sample to A-law.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    ALAW_ENCODE[s as u16 as usize]
}

/// Decodes µ-law bytes, appending to `out`.
pub fn decode_ulaw(data: &[u8], out: &mut Vec<i16>) {
    out.extend(data.iter().map(|&b| ULAW_DECODE[b as usize]));
}

/// Decodes A-law bytes, appending to `out`.
pub fn decode_alaw(data: &[u8], out: &mut Vec<i16>) {
    out.extend(data.iter().map(|&b| ALAW_DECODE[b as usize]));
}

/// Encodes PCM to µ-law, appending to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| ulaw_encode(s)));
}

/// Encodes PCM to A-law, appending to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| alaw_encode(s)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ULAW_DECODE[0xff], 0);
        assert_eq!(ULAW_DECODE[0x7f], 0);
        assert_eq!(ULAW_DECODE[0x00], -32124);
        assert_eq!(ULAW_DECODE[0x80], 32124);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(ALAW_DECODE[0xd5], 8);
        assert_eq!(ALAW_DECODE[0x55], -8);
        assert_eq!(ALAW_DECODE[0xaa], 32256);
        assert_eq!(ALAW_DECODE[0x2a], -32256);
    }

    #[test]
    fn roundtrip_is_idempotent_and_close() {
        for b in 0..=255u8 {
            // decode then encode gives back the same code (except µ-law's two zeros)
            let s = ULAW_DECODE[b as usize];
            let back = ulaw_encode(s);
            assert_eq!(ULAW_DECODE[back as usize], s);
            let s = ALAW_DECODE[b as usize];
            assert_eq!(alaw_encode(s), b);
        }
        for s in (-32768i32..32768).step_by(7) {
            let s = s as i16;
            let eu = (ULAW_DECODE[ulaw_encode(s) as usize] as i32 - s as i32).abs();
            let ea = (ALAW_DECODE[alaw_encode(s) as usize] as i32 - s as i32).abs();
            let tol = (s as i32).abs() / 16 + 16;
            assert!(eu <= tol.max(140), "ulaw {s} err {eu}");
            assert!(ea <= tol.max(140), "alaw {s} err {ea}");
        }
    }
}
