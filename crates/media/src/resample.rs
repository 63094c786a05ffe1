//! Rational polyphase FIR resampler for the fixed ratios between member rates
//! (8, 12, 16, 24, 48 kHz) and the mixing rate (48 or 16 kHz).
//!
//! The prototype low-pass is a Blackman-windowed sinc designed at the
//! up-sampled rate; each output sample costs `taps_per_phase * max(1, M/L)`
//! multiply-adds. Streams of whole 20 ms frames come out as whole frames.

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A streaming resampler from one rate to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    l: usize,
    m: usize,
    taps: usize,
    /// coeffs[phase * taps + k]
    coeffs: Vec<f32>,
    buf: Vec<f32>,
    pos: usize,
}

const TAPS_PER_PHASE: usize = 24;

impl Resampler {
    /// Creates a resampler; `from == to` gives a pass-through.
    pub fn new(from: u32, to: u32) -> Self {
        let from = from.max(1);
        let to = to.max(1);
        let g = gcd(from, to);
        let l = (to / g) as usize;
        let m = (from / g) as usize;
        // filter length at the up-sampled rate, and taps per polyphase branch
        let n = TAPS_PER_PHASE * l.max(m);
        let taps = n.div_ceil(l);
        let n = taps * l;
        let fc = 0.5 / l.max(m) as f64 * 0.92;
        let c = (n - 1) as f64 / 2.0;
        let mut h = vec![0f64; n];
        for (i, v) in h.iter_mut().enumerate() {
            let x = i as f64 - c;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos()
                + 0.08 * (4.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
            *v = sinc * w;
        }
        let sum: f64 = h.iter().sum();
        let scale = l as f64 / sum;
        let mut coeffs = vec![0f32; n];
        // stored reversed per phase, so that each output is a plain dot product with the
        // input history in time order (vectorises)
        for phase in 0..l {
            for k in 0..taps {
                coeffs[phase * taps + (taps - 1 - k)] = (h[phase + k * l] * scale) as f32;
            }
        }
        Resampler {
            from,
            to,
            l,
            m,
            taps,
            coeffs,
            buf: vec![0.0; taps - 1],
            pos: (taps - 1) * l,
        }
    }

    /// Input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }
    /// Output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Resamples `input`, appending the output to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.l == self.m {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend(input.iter().map(|&s| s as f32));
        let limit = self.buf.len() * self.l;
        out.reserve((input.len() * self.l).div_ceil(self.m));
        while self.pos < limit {
            let base = self.pos / self.l;
            let phase = self.pos % self.l;
            let h = &self.coeffs[phase * self.taps..(phase + 1) * self.taps];
            let x = &self.buf[base + 1 - self.taps..=base];
            let acc = dot(h, x);
            // Half away from zero, as f32::round, without its libm call (no SSE4.1 in the
            // baseline x86-64 target); `as` saturates.
            out.push((acc + 0.5f32.copysign(acc)) as i16);
            self.pos += self.m;
        }
        let keep = self.taps - 1;
        let drop = self.buf.len() - keep;
        self.buf.drain(..drop);
        self.pos -= drop * self.l;
    }

    /// Clears the history.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.taps - 1, 0.0);
        self.pos = (self.taps - 1) * self.l;
    }
}

/// Dot product with eight independent accumulators (lets the compiler use SIMD).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{goertzel_power, tone};

    fn check(from: u32, to: u32, freq: f64) {
        let mut r = Resampler::new(from, to);
        let fin = from as usize / 50;
        let fout = to as usize / 50;
        let input = tone(freq, from, fin * 10, 10000.0, 0);
        let mut out = Vec::new();
        for f in input.chunks(fin) {
            let before = out.len();
            r.process(f, &mut out);
            assert_eq!(out.len() - before, fout, "{from}->{to}");
        }
        let tail = &out[out.len() / 2..];
        let p = goertzel_power(tail, to, freq);
        assert!((p - 25_000_000.0).abs() < 2_500_000.0, "{from}->{to}: {p}");
    }

    #[test]
    fn ratios() {
        check(8000, 48000, 440.0);
        check(16000, 48000, 1320.0);
        check(48000, 8000, 880.0);
        check(48000, 16000, 3000.0);
        check(8000, 16000, 440.0);
        check(16000, 8000, 440.0);
        check(48000, 48000, 440.0);
        check(24000, 16000, 440.0);
    }

    #[test]
    fn anti_aliasing() {
        // 6 kHz at 48 kHz must not fold into the 8 kHz output (it would appear at 2 kHz)
        let mut r = Resampler::new(48000, 8000);
        let input = tone(6000.0, 48000, 9600, 10000.0, 0);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let p = goertzel_power(&out[800..], 8000, 2000.0);
        assert!(p < 25_000.0, "{p}");
    }
}
