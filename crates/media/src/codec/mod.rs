//! Audio codecs behind two small traits ([`AudioDecoder`], [`AudioEncoder`]):
//! G.711 µ-law/A-law, G.722 and Opus (libopus via the `opus` crate).

pub mod g711;
pub mod g722;
pub mod opus_vad;

use thiserror::Error;

/// Codec errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The payload could not be decoded.
    #[error("invalid payload")]
    InvalidPayload,
    /// The codec library reported an error.
    #[error("codec library error: {0}")]
    Library(String),
    /// Unsupported parameters (rate, channels).
    #[error("unsupported configuration")]
    Unsupported,
}

/// The codecs the engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodecKind {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// G.722, 16 kHz audio with an 8 kHz RTP clock (RFC 3551).
    G722,
    /// Opus, 48 kHz RTP clock; decoded/encoded at the given rate (8, 12, 16, 24 or 48 kHz).
    Opus,
}

impl CodecKind {
    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8000,
            CodecKind::Opus => 48000,
        }
    }
    /// Static payload type where one exists.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
        }
    }
    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
        }
    }
}

/// Parameters of one codec instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecConfig {
    /// Which codec.
    pub kind: CodecKind,
    /// PCM rate at which the codec exchanges audio with the engine. Fixed for
    /// G.711 (8000) and G.722 (16000); for Opus one of 8000/12000/16000/24000/48000.
    pub pcm_rate: u32,
    /// Opus target bitrate in bit/s (ignored by other codecs).
    pub bitrate: u32,
    /// Opus in-band FEC on the encoder.
    pub fec: bool,
    /// Opus DTX on the encoder.
    pub dtx: bool,
    /// Opus encoder complexity, 0..=10 (CPU against quality).
    pub complexity: u8,
}

impl CodecConfig {
    /// Default configuration for a codec; Opus is decoded at `opus_rate`.
    pub fn new(kind: CodecKind, opus_rate: u32) -> Self {
        let pcm_rate = match kind {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            CodecKind::Opus => opus_rate,
        };
        CodecConfig {
            kind,
            pcm_rate,
            bitrate: 32000,
            fec: true,
            dtx: false,
            complexity: 9,
        }
    }
    /// RTP timestamp units for `pcm_samples` samples at `pcm_rate`.
    pub fn rtp_units(&self, pcm_samples: usize) -> u32 {
        (pcm_samples as u64 * self.kind.clock_rate() as u64 / self.pcm_rate as u64) as u32
    }
    /// PCM samples for `units` RTP timestamp units.
    pub fn pcm_samples(&self, units: u32) -> usize {
        (units as u64 * self.pcm_rate as u64 / self.kind.clock_rate() as u64) as usize
    }
    /// Builds a decoder.
    pub fn decoder(&self) -> Result<Box<dyn AudioDecoder>, CodecError> {
        Ok(match self.kind {
            CodecKind::Pcmu => Box::new(G711Decoder {
                alaw: false,
                plc: RepeatPlc::default(),
            }),
            CodecKind::Pcma => Box::new(G711Decoder {
                alaw: true,
                plc: RepeatPlc::default(),
            }),
            CodecKind::G722 => Box::new(G722Decoder {
                inner: g722::decoder::Decoder::new(g722::Bitrate::Mode1_64000, false, false),
                plc: RepeatPlc::default(),
            }),
            CodecKind::Opus => Box::new(OpusDecoder::new(self.pcm_rate)?),
        })
    }
    /// Builds an encoder.
    pub fn encoder(&self) -> Result<Box<dyn AudioEncoder>, CodecError> {
        Ok(match self.kind {
            CodecKind::Pcmu => Box::new(G711Encoder { alaw: false }),
            CodecKind::Pcma => Box::new(G711Encoder { alaw: true }),
            CodecKind::G722 => Box::new(G722Encoder {
                inner: g722::encoder::Encoder::new(g722::Bitrate::Mode1_64000, false, false),
            }),
            CodecKind::Opus => Box::new(OpusEncoder::new(self)?),
        })
    }
}

/// A decoder: payloads in, PCM at [`AudioDecoder::sample_rate`] out.
pub trait AudioDecoder: Send {
    /// Output PCM rate.
    fn sample_rate(&self) -> u32;
    /// Decodes one payload, appending PCM to `out`; returns the number of samples appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError>;
    /// Packet loss concealment: appends `samples` samples standing in for a lost packet.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// Recovers a lost frame of `samples` samples from the in-band FEC of the packet
    /// that follows it. Returns false (appending nothing) when the codec has no FEC.
    fn decode_fec(&mut self, _next_payload: &[u8], _samples: usize, _out: &mut Vec<i16>) -> bool {
        false
    }
    /// Number of PCM samples a payload decodes to, if known without decoding.
    fn samples_in(&self, payload: &[u8]) -> Option<usize>;
}

/// An encoder: PCM at [`AudioEncoder::sample_rate`] in, one payload out.
pub trait AudioEncoder: Send {
    /// Input PCM rate.
    fn sample_rate(&self) -> u32;
    /// Encodes one frame of PCM, appending the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// A simple concealment for codecs without their own: repeat the last frame with a
/// fade (-6 dB per repetition), then silence.
#[derive(Debug, Clone, Default)]
pub struct RepeatPlc {
    last: Vec<i16>,
    repeats: u32,
}

impl RepeatPlc {
    /// Remembers the last good frame.
    pub fn remember(&mut self, frame: &[i16]) {
        self.last.clear();
        self.last.extend_from_slice(frame);
        self.repeats = 0;
    }
    /// Appends `samples` samples of concealment.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.repeats += 1;
        if self.last.is_empty() || self.repeats > 4 {
            out.resize(out.len() + samples, 0);
            return;
        }
        let start_gain = 1.0f32 / (1 << (self.repeats - 1)) as f32;
        let end_gain = start_gain / 2.0;
        let n = self.last.len();
        for i in 0..samples {
            let g = start_gain + (end_gain - start_gain) * i as f32 / samples as f32;
            out.push((self.last[i % n] as f32 * g) as i16);
        }
    }
}

struct G711Decoder {
    alaw: bool,
    plc: RepeatPlc,
}

impl AudioDecoder for G711Decoder {
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let start = out.len();
        if self.alaw {
            g711::decode_alaw(payload, out);
        } else {
            g711::decode_ulaw(payload, out);
        }
        self.plc.remember(&out[start..]);
        Ok(payload.len())
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.plc.conceal(samples, out);
    }
    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        Some(payload.len())
    }
}

struct G711Encoder {
    alaw: bool,
}

impl AudioEncoder for G711Encoder {
    fn sample_rate(&self) -> u32 {
        8000
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if self.alaw {
            g711::encode_alaw(pcm, out);
        } else {
            g711::encode_ulaw(pcm, out);
        }
        Ok(())
    }
}

struct G722Decoder {
    inner: g722::decoder::Decoder,
    plc: RepeatPlc,
}

impl AudioDecoder for G722Decoder {
    fn sample_rate(&self) -> u32 {
        16000
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let start = out.len();
        self.inner.decode(payload, out);
        self.plc.remember(&out[start..]);
        Ok(out.len() - start)
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.plc.conceal(samples, out);
    }
    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        Some(payload.len() * 2)
    }
}

struct G722Encoder {
    inner: g722::encoder::Encoder,
}

impl AudioEncoder for G722Encoder {
    fn sample_rate(&self) -> u32 {
        16000
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.inner.encode(pcm, out);
        Ok(())
    }
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Library(e.to_string())
}

fn valid_opus_rate(rate: u32) -> bool {
    matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000)
}

/// Opus decoder (mono) with PLC and in-band FEC.
pub struct OpusDecoder {
    inner: opus::Decoder,
    rate: u32,
    scratch: Vec<i16>,
}

impl OpusDecoder {
    /// Creates a mono decoder producing PCM at `rate`.
    pub fn new(rate: u32) -> Result<Self, CodecError> {
        if !valid_opus_rate(rate) {
            return Err(CodecError::Unsupported);
        }
        Ok(OpusDecoder {
            inner: opus::Decoder::new(rate, opus::Channels::Mono).map_err(opus_err)?,
            rate,
            // 120 ms, the longest Opus packet
            scratch: vec![0; rate as usize * 120 / 1000],
        })
    }
}

impl AudioDecoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload);
        }
        let n = self
            .inner
            .decode(payload, &mut self.scratch, false)
            .map_err(|_| CodecError::InvalidPayload)?;
        let n = n.min(self.scratch.len());
        out.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        // libopus PLC works in multiples of 2.5 ms
        let samples = samples.min(self.scratch.len());
        let n = self
            .inner
            .decode(&[], &mut self.scratch[..samples], false)
            .unwrap_or(0)
            .min(samples);
        out.extend_from_slice(&self.scratch[..n]);
        out.resize(out.len() + samples - n, 0);
    }
    fn decode_fec(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) -> bool {
        if next_payload.is_empty() || samples == 0 || samples > self.scratch.len() {
            return false;
        }
        match self
            .inner
            .decode(next_payload, &mut self.scratch[..samples], true)
        {
            Ok(n) if n == samples => {
                out.extend_from_slice(&self.scratch[..n]);
                true
            }
            _ => false,
        }
    }
    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        opus::packet::get_nb_samples(payload, self.rate).ok()
    }
}

/// Opus encoder (mono, VoIP application).
pub struct OpusEncoder {
    inner: opus::Encoder,
    rate: u32,
    buf: Vec<u8>,
}

impl OpusEncoder {
    /// Creates an encoder from a codec configuration.
    pub fn new(cfg: &CodecConfig) -> Result<Self, CodecError> {
        if !valid_opus_rate(cfg.pcm_rate) {
            return Err(CodecError::Unsupported);
        }
        let mut inner =
            opus::Encoder::new(cfg.pcm_rate, opus::Channels::Mono, opus::Application::Voip)
                .map_err(opus_err)?;
        inner
            .set_bitrate(opus::Bitrate::Bits(cfg.bitrate.clamp(6000, 510_000) as i32))
            .map_err(opus_err)?;
        inner.set_inband_fec(cfg.fec).map_err(opus_err)?;
        if cfg.fec {
            inner.set_packet_loss_perc(10).map_err(opus_err)?;
        }
        inner.set_dtx(cfg.dtx).map_err(opus_err)?;
        inner
            .set_complexity(cfg.complexity.min(10) as i32)
            .map_err(opus_err)?;
        Ok(OpusEncoder {
            inner,
            rate: cfg.pcm_rate,
            buf: vec![0; 1500],
        })
    }

    /// Sets the encoder complexity (0..=10).
    pub fn set_complexity(&mut self, c: i32) -> Result<(), CodecError> {
        self.inner.set_complexity(c).map_err(opus_err)
    }
}

impl AudioEncoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let n = self.inner.encode(pcm, &mut self.buf).map_err(opus_err)?;
        out.extend_from_slice(&self.buf[..n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{goertzel_power, tone};

    fn roundtrip(kind: CodecKind, rate: u32) {
        let cfg = CodecConfig::new(kind, rate);
        let mut enc = cfg.encoder().unwrap();
        let mut dec = cfg.decoder().unwrap();
        let r = cfg.pcm_rate;
        let frame = r as usize / 50;
        let input = tone(1000.0, r, frame * 20, 8000.0, 0);
        let mut out = Vec::new();
        for f in input.chunks(frame) {
            let mut p = Vec::new();
            enc.encode(f, &mut p).unwrap();
            assert_eq!(dec.samples_in(&p), Some(frame));
            dec.decode(&p, &mut out).unwrap();
        }
        assert_eq!(out.len(), input.len());
        let tail = &out[out.len() / 2..];
        let on = goertzel_power(tail, r, 1000.0);
        let off = goertzel_power(tail, r, 1700.0);
        assert!(on > 100.0 * off, "{kind:?} on {on} off {off}");
        // concealment produces the requested length
        let before = out.len();
        dec.conceal(frame, &mut out);
        assert_eq!(out.len(), before + frame);
        // garbage never panics
        for n in 0..64 {
            let g: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = dec.decode(&g, &mut out);
        }
    }

    #[test]
    fn pcmu() {
        roundtrip(CodecKind::Pcmu, 48000);
    }
    #[test]
    fn pcma() {
        roundtrip(CodecKind::Pcma, 48000);
    }
    #[test]
    fn g722() {
        roundtrip(CodecKind::G722, 48000);
    }
    #[test]
    fn opus48() {
        roundtrip(CodecKind::Opus, 48000);
    }
    #[test]
    fn opus16() {
        roundtrip(CodecKind::Opus, 16000);
    }

    #[test]
    fn opus_fec_recovers_a_frame() {
        let cfg = CodecConfig::new(CodecKind::Opus, 48000);
        let mut enc = cfg.encoder().unwrap();
        let mut dec = cfg.decoder().unwrap();
        let input = tone(440.0, 48000, 960 * 30, 8000.0, 0);
        let pkts: Vec<Vec<u8>> = input
            .chunks(960)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).unwrap();
                p
            })
            .collect();
        let mut out = Vec::new();
        let mut recovered = 0;
        for (i, p) in pkts.iter().enumerate() {
            if i % 5 == 3 {
                if dec.decode_fec(&pkts[i + 1], 960, &mut out) {
                    recovered += 1;
                } else {
                    dec.conceal(960, &mut out);
                }
            } else {
                dec.decode(p, &mut out).unwrap();
            }
        }
        assert_eq!(out.len(), input.len());
        assert!(recovered > 0);
    }

    #[test]
    fn random_payloads_never_panic_with_overflow_checks() {
        let mut x: u32 = 0x1234_5678;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for kind in [
            CodecKind::Pcmu,
            CodecKind::Pcma,
            CodecKind::G722,
            CodecKind::Opus,
        ] {
            let cfg = CodecConfig::new(kind, 48000);
            let mut dec = cfg.decoder().unwrap();
            let mut enc = cfg.encoder().unwrap();
            let mut out = Vec::new();
            for i in 0..300 {
                let len = (rnd() % 400) as usize;
                let p: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                let _ = dec.decode(&p, &mut out);
                if i % 7 == 0 {
                    dec.conceal(960, &mut out);
                    let _ = dec.decode_fec(&p, 960, &mut out);
                }
                out.clear();
                // full-scale noise and square waves into the encoder
                let n = cfg.pcm_rate as usize / 50;
                let pcm: Vec<i16> = (0..n)
                    .map(|j| {
                        if i % 2 == 0 {
                            rnd() as i16
                        } else if j % 2 == 0 {
                            i16::MAX
                        } else {
                            i16::MIN
                        }
                    })
                    .collect();
                let mut e = Vec::new();
                enc.encode(&pcm, &mut e).unwrap();
                let _ = dec.decode(&e, &mut out);
                out.clear();
            }
        }
    }

    #[test]
    fn repeat_plc_fades_to_silence() {
        let mut p = RepeatPlc::default();
        p.remember(&[1000; 160]);
        let mut out = Vec::new();
        for _ in 0..6 {
            p.conceal(160, &mut out);
        }
        assert_eq!(out.len(), 960);
        assert!(out[0] >= 999);
        assert!(out[400].abs() < 400);
        assert!(out[900..].iter().all(|&s| s == 0));
    }
}
