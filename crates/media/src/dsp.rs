//! Small DSP helpers: tone generation, Goertzel analysis, levels in dBov and a
//! clipping-safe limiter for summed mixes.

/// A time as a count of `rate` Hz clock units, in 64-bit arithmetic that neither
/// overflows for any realistic epoch (the Unix one included) nor panics for any input.
#[inline]
pub fn duration_to_units(d: std::time::Duration, rate: u32) -> u64 {
    d.as_secs()
        .wrapping_mul(rate as u64)
        .wrapping_add(d.subsec_nanos() as u64 * rate as u64 / 1_000_000_000)
}

/// The inverse of [`duration_to_units`].
#[inline]
pub fn units_to_duration(units: u64, rate: u32) -> std::time::Duration {
    let rate = rate.max(1) as u64;
    std::time::Duration::new(units / rate, ((units % rate) * 1_000_000_000 / rate) as u32)
}

/// Generates `n` samples of a sine at `freq` Hz, amplitude `amp`, starting at sample index `start`.
pub fn tone(freq: f64, rate: u32, n: usize, amp: f64, start: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// Goertzel power of `freq` in `samples`, normalised by the block length so that a full
/// scale sine of amplitude A gives about A²/4.
pub fn goertzel_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    p / (n * n)
}

/// Mean power of `samples` (sum of squares / n).
pub fn mean_power(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&s| (s as f64) * (s as f64))
        .sum::<f64>()
        / samples.len() as f64
}

/// The RFC 6464 level of a frame: 0 (loudest, 0 dBov) to 127 (silence), in -dBov.
pub fn level_dbov(samples: &[i16]) -> u8 {
    if samples.is_empty() {
        return 127;
    }
    let mut acc: u64 = 0;
    for &s in samples {
        let v = s as i64;
        acc += (v * v) as u64;
    }
    let rms = (acc as f64 / samples.len() as f64).sqrt();
    if rms < 1.0 {
        return 127;
    }
    // 0 dBov is the RMS of a full-scale square wave (32768)
    let db = 20.0 * (rms / 32768.0).log10();
    (-db).clamp(0.0, 127.0) as u8
}

/// A per-stream limiter that keeps a summed mix inside i16 without hard clipping:
/// the gain drops at once (ramped across the frame) when the peak would clip and
/// recovers slowly afterwards.
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter { gain: 1.0 }
    }
}

impl Limiter {
    /// Converts an i32 sum to i16, writing into `out` (same length as `mix`).
    pub fn process(&mut self, mix: &[i32], out: &mut [i16]) {
        let peak = mix.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0) as f32;
        let limit = 32000.0f32;
        let target = if peak * self.gain > limit {
            limit / peak
        } else {
            // recover ~1 dB per frame
            (self.gain * 1.122)
                .min(1.0)
                .min(if peak > 0.0 { limit / peak } else { 1.0 })
        };
        let n = mix.len().min(out.len());
        if (target - 1.0).abs() < f32::EPSILON && (self.gain - 1.0).abs() < f32::EPSILON {
            for (o, &s) in out.iter_mut().zip(mix) {
                *o = s.clamp(-32768, 32767) as i16;
            }
        } else {
            let start = self.gain.min(target.max(self.gain.min(target)));
            // attack: use the lower of both gains at the start so that nothing clips
            let start = if target < self.gain { target } else { start };
            let step = if n > 0 {
                (target - start) / n as f32
            } else {
                0.0
            };
            for (i, (o, &s)) in out.iter_mut().zip(mix).enumerate() {
                let g = start + step * i as f32;
                *o = (s as f32 * g).clamp(-32768.0, 32767.0) as i16;
            }
        }
        self.gain = target;
    }

    /// Current gain.
    pub fn gain(&self) -> f32 {
        self.gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_tone() {
        let t = tone(440.0, 8000, 800, 10000.0, 0);
        let p = goertzel_power(&t, 8000, 440.0);
        assert!((p - 25_000_000.0).abs() < 2_500_000.0, "{p}");
        assert!(goertzel_power(&t, 8000, 880.0) < p / 1000.0);
    }

    #[test]
    fn time_units() {
        use std::time::Duration;
        let d = Duration::from_millis(1_700_000_000_020);
        assert_eq!(duration_to_units(d, 8000), 1_700_000_000_020 * 8);
        assert_eq!(units_to_duration(160, 8000), Duration::from_millis(20));
        assert_eq!(units_to_duration(duration_to_units(d, 48000), 48000), d);
        let _ = duration_to_units(Duration::MAX, 48000);
        let _ = units_to_duration(u64::MAX, 1);
    }

    #[test]
    fn dbov() {
        assert_eq!(level_dbov(&[0; 160]), 127);
        // full-scale sine is -3 dBov
        let t = tone(1000.0, 8000, 160, 32767.0, 0);
        assert_eq!(level_dbov(&t), 3);
        let t = tone(1000.0, 8000, 160, 327.67, 0);
        assert_eq!(level_dbov(&t), 43);
    }

    #[test]
    fn limiter_never_clips_and_recovers() {
        let mut l = Limiter::default();
        let mix: Vec<i32> = (0..960)
            .map(|i| if i % 2 == 0 { 90000 } else { -90000 })
            .collect();
        let mut out = vec![0i16; 960];
        l.process(&mix, &mut out);
        assert!(out.iter().all(|&s| s.unsigned_abs() <= 32000));
        assert!(l.gain() < 0.4);
        let quiet = vec![1000i32; 960];
        for _ in 0..100 {
            l.process(&quiet, &mut out);
        }
        assert_eq!(l.gain(), 1.0);
        assert_eq!(out[0], 1000);
    }
}
