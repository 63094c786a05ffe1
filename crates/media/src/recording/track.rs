//! One recorded track (the room's mix, or one member's voice): 20 ms frames stamped with the
//! mixer's clock in, sealed Ogg Opus bytes to append to its file out, and — for a member —
//! the utterances its voice activity marks.

use super::ogg::{GRANULE_RATE, OggOpusWriter};
use super::sealed::{RecordingKey, SealedWriter};
use crate::dsp::level_dbov;
use crate::resample::Resampler;
use crate::vad::{Vad, VadConfig, VadEvent};
use std::time::Duration;

const FRAME: Duration = Duration::from_millis(20);
/// Silence inserted for one gap at most (a member muted for hours is not written for hours
/// in one go; time beyond it is dropped from that track).
const MAX_GAP_FRAMES: u64 = 15 * 60 * 50;
/// Frames this quiet or quieter (-dBov) are stored as silence without running the encoder.
const QUIET_LEVEL: u8 = 60;

/// One utterance: when a member's voice started and stopped, from the recording's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utterance {
    /// Start, in milliseconds.
    pub start_ms: u64,
    /// End, in milliseconds.
    pub end_ms: u64,
}

/// Why a track cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The Opus encoder refused.
    #[error("opus: {0}")]
    Opus(String),
}

fn opus_err(e: opus::Error) -> TrackError {
    TrackError::Opus(e.to_string())
}

/// Rates Opus takes as input.
fn opus_rate(rate: u32) -> u32 {
    match rate {
        8000 | 12000 | 16000 | 24000 | 48000 => rate,
        _ => 48000,
    }
}

/// Writes one track. See the module documentation.
pub struct TrackWriter {
    rate: u32,
    encoder: opus::Encoder,
    silence: Vec<u8>,
    ogg: OggOpusWriter,
    sealed: SealedWriter,
    out: Vec<u8>,
    /// The recording's start on the mixer's clock.
    origin: Duration,
    /// This track's first frame, from the recording's start.
    offset: Option<Duration>,
    frames: u64,
    resampler: Option<Resampler>,
    scratch: Vec<i16>,
    packet: Vec<u8>,
    vad: Option<Vad>,
    talk_from: Option<u64>,
    utterances: Vec<Utterance>,
}

impl std::fmt::Debug for TrackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackWriter")
            .field("rate", &self.rate)
            .field("frames", &self.frames)
            .finish()
    }
}

impl TrackWriter {
    /// A track whose frames come at `rate`; `origin` is the recording's start on the
    /// mixer's clock; `utterances`: mark where voice starts and stops (members' tracks).
    pub fn new(
        key: RecordingKey,
        recording: &[u8],
        track: u32,
        rate: u32,
        origin: Duration,
        utterances: bool,
        comments: &[String],
    ) -> Result<TrackWriter, TrackError> {
        let enc_rate = opus_rate(rate);
        let mut encoder =
            opus::Encoder::new(enc_rate, opus::Channels::Mono, opus::Application::Voip)
                .map_err(opus_err)?;
        let bitrate = match enc_rate {
            8000 | 12000 => 16_000,
            16000 | 24000 => 24_000,
            _ => 32_000,
        };
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate))
            .map_err(opus_err)?;
        encoder.set_complexity(5).map_err(opus_err)?;
        let lookahead = encoder.get_lookahead().map_err(opus_err)?;
        let pre_skip = (u64::try_from(lookahead).unwrap_or(0) * GRANULE_RATE / u64::from(enc_rate))
            .min(u64::from(u16::MAX)) as u16;
        let frame = (enc_rate / 50) as usize;
        let mut quiet = opus::Encoder::new(enc_rate, opus::Channels::Mono, opus::Application::Voip)
            .map_err(opus_err)?;
        let silence = quiet
            .encode_vec(&vec![0i16; frame], 1500)
            .map_err(opus_err)?;
        let sealed = SealedWriter::new(key, recording, track);
        let mut out = sealed.header();
        let serial = u32::from_be_bytes(*b"CNCL") ^ track;
        let mut ogg = OggOpusWriter::new(serial, pre_skip, enc_rate, comments);
        let mut sealed = sealed;
        out.extend(sealed.seal(&ogg.take(), false));
        Ok(TrackWriter {
            rate: enc_rate,
            encoder,
            silence,
            ogg,
            sealed,
            out,
            origin,
            offset: None,
            frames: 0,
            resampler: None,
            scratch: Vec::new(),
            packet: vec![0; 1500],
            vad: utterances.then(|| Vad::new(VadConfig::default())),
            talk_from: None,
            utterances: Vec::new(),
        })
    }

    /// Where this track starts on the recording's timeline (None: nothing written yet).
    pub fn offset(&self) -> Option<Duration> {
        self.offset
    }

    /// Its length so far.
    pub fn duration(&self) -> Duration {
        FRAME * u32::try_from(self.frames).unwrap_or(u32::MAX)
    }

    /// Utterances ended so far (and the one going on, if `finish` was called).
    pub fn utterances(&self) -> &[Utterance] {
        &self.utterances
    }

    /// A 20 ms frame at `rate` taken at `time` on the mixer's clock. Gaps (the member was
    /// muted, ticks were skipped) become silence; a frame from before the next expected
    /// one is dropped.
    pub fn push(&mut self, time: Duration, rate: u32, samples: &[i16]) -> Result<(), TrackError> {
        let since = time.saturating_sub(self.origin);
        let offset = *self.offset.get_or_insert_with(|| {
            // on the recording's 20 ms grid
            FRAME * u32::try_from(since.as_millis() / 20).unwrap_or(u32::MAX)
        });
        let expected = offset + self.duration();
        if since + FRAME / 2 < expected {
            return Ok(());
        }
        let gap = (since.saturating_sub(expected).as_millis() / 20) as u64;
        for _ in 0..gap.min(MAX_GAP_FRAMES) {
            self.write_silence(127);
        }
        let frame = (self.rate / 50) as usize;
        let pcm: &[i16] = if rate == self.rate {
            samples
        } else {
            let r = self
                .resampler
                .get_or_insert_with(|| Resampler::new(rate, self.rate));
            if r.from_rate() != rate {
                *r = Resampler::new(rate, self.rate);
            }
            self.scratch.clear();
            r.process(samples, &mut self.scratch);
            self.scratch.resize(frame, 0);
            &self.scratch
        };
        if pcm.len() != frame {
            self.write_silence(127);
            return Ok(());
        }
        let level = level_dbov(pcm);
        if level >= QUIET_LEVEL {
            // most members are quiet most of the time: no encode for them (a noise gate)
            self.write_silence(level);
            return Ok(());
        }
        let n = self
            .encoder
            .encode(pcm, &mut self.packet)
            .map_err(opus_err)?;
        self.ogg.push(&self.packet[..n], GRANULE_RATE / 50);
        self.voice(level);
        self.frames += 1;
        self.seal_pages();
        Ok(())
    }

    /// A frame of silence (`level`: what voice activity is told it was).
    fn write_silence(&mut self, level: u8) {
        self.ogg.push(&self.silence, GRANULE_RATE / 50);
        self.voice(level);
        self.frames += 1;
        self.seal_pages();
    }

    fn voice(&mut self, level: u8) {
        let Some(vad) = self.vad.as_mut() else {
            return;
        };
        let cfg = vad.config();
        let at = |frame: u64| frame * 20;
        let base = self.offset.map_or(0, |o| o.as_millis() as u64);
        match vad.update(level) {
            Some(VadEvent::TalkStart) => {
                self.talk_from =
                    Some((self.frames + 1).saturating_sub(u64::from(cfg.start_frames)));
            }
            Some(VadEvent::TalkStop) => {
                if let Some(from) = self.talk_from.take() {
                    let end = (self.frames + 1).saturating_sub(u64::from(cfg.stop_frames));
                    self.utterances.push(Utterance {
                        start_ms: base + at(from),
                        end_ms: base + at(end.max(from + 1)),
                    });
                }
            }
            None => {}
        }
    }

    fn seal_pages(&mut self) {
        if self.ogg.pending() > 0 {
            let pages = self.ogg.take();
            self.out.extend(self.sealed.seal(&pages, false));
        }
    }

    /// Sealed bytes to append to the track's file, taken.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Closes the page being filled so that what is taken next holds every frame so far
    /// (a flush every few seconds bounds what a crash loses).
    pub fn flush(&mut self) {
        self.ogg.flush();
        self.seal_pages();
    }

    /// Ends the track: the last page and the last chunk; an utterance going on ends here.
    pub fn finish(&mut self) {
        if let Some(from) = self.talk_from.take() {
            let base = self.offset.map_or(0, |o| o.as_millis() as u64);
            self.utterances.push(Utterance {
                start_ms: base + from * 20,
                end_ms: base + self.frames.max(from + 1) * 20,
            });
        }
        self.ogg.finish();
        let pages = self.ogg.take();
        self.out.extend(self.sealed.seal(&pages, true));
    }
}

#[cfg(test)]
mod tests {
    use super::super::ogg::read_packets;
    use super::super::sealed::open;
    use super::*;
    use crate::dsp::{goertzel_power, tone};

    #[test]
    fn a_member_track_decodes_to_its_tone_with_silence_where_it_was_quiet() {
        let key = || RecordingKey::new(&[9; 32]).expect("key");
        let origin = Duration::from_secs(100);
        let mut t = TrackWriter::new(key(), b"r", 1, 8000, origin, true, &[]).expect("track");
        // joins 1 s in, talks 1 s, is muted (no frames) 1 s, talks 1 s
        let mut time = origin + Duration::from_secs(1);
        for i in 0..150 {
            let pcm = if !(50..100).contains(&i) {
                tone(700.0, 8000, 160, 8000.0, i * 160)
            } else {
                vec![0; 160]
            };
            if !(50..100).contains(&i) {
                t.push(time, 8000, &pcm).expect("push");
            }
            time += FRAME;
        }
        t.finish();
        assert_eq!(t.offset(), Some(Duration::from_secs(1)));
        assert_eq!(t.duration(), Duration::from_secs(3));
        let u = t.utterances().to_vec();
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(
            u[0].start_ms.abs_diff(1000) <= 60 && u[0].end_ms.abs_diff(2000) <= 60,
            "{u:?}"
        );
        assert!(
            u[1].start_ms.abs_diff(3000) <= 60 && u[1].end_ms.abs_diff(4000) <= 60,
            "{u:?}"
        );
        let file = t.take();
        let opened = open(&key(), b"r", 1, &file).expect("open");
        assert!(opened.complete);
        let ogg = read_packets(&opened.plain).expect("ogg");
        assert_eq!(ogg.packets.len(), 2 + 150);
        let mut dec = opus::Decoder::new(8000, opus::Channels::Mono).expect("decoder");
        let mut pcm = Vec::new();
        for p in &ogg.packets[2..] {
            let mut buf = [0i16; 960];
            let n = dec.decode(p, &mut buf, false).expect("decode");
            pcm.extend_from_slice(&buf[..n]);
        }
        let talk = goertzel_power(&pcm[2000..7000], 8000, 700.0);
        let quiet = goertzel_power(&pcm[9000..15000], 8000, 700.0);
        assert!(talk > 100.0 * quiet.max(1.0), "{talk} vs {quiet}");
    }
}
