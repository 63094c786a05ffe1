//! A live stream's encoder, sans-IO: the room's mix (20 ms frames stamped with the mixer's
//! clock) in, HLS media segments out — Opus in fragmented MP4, two seconds each — and the
//! media playlist for the segments the caller still serves.
//!
//! One encode per stream, whatever the number of listeners: they all fetch the same bytes.

use super::fmp4::{self, TIMESCALE, VideoSample};
use crate::resample::Resampler;
use std::fmt::Write as _;
use std::time::Duration;

const FRAME: Duration = Duration::from_millis(20);
/// 20 ms at 48 kHz.
const FRAME_SAMPLES: u32 = TIMESCALE / 50;
/// Frames per segment: two seconds (short enough for a live delay of a few seconds, long
/// enough that 1,000 listeners make one request a second each, not more).
pub const SEGMENT_FRAMES: usize = 100;
/// A gap longer than this (the room was empty) is not filled with silence: the stream's
/// time jumps instead, with a discontinuity.
const MAX_GAP_FRAMES: u64 = 10 * 50;

/// Why the stream cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("opus: {0}")]
pub struct StreamError(String);

fn opus_err(e: opus::Error) -> StreamError {
    StreamError(e.to_string())
}

/// One media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its media sequence number (counts from 1).
    pub sequence: u64,
    /// Its length, in 48 kHz samples.
    pub duration: u32,
    /// A discontinuity comes before it (the stream's time jumped).
    pub discontinuity: bool,
    /// The fragment (`moof` + `mdat`).
    pub data: Vec<u8>,
}

/// Encodes one stream. See the module documentation.
pub struct LiveEncoder {
    encoder: opus::Encoder,
    resampler: Option<Resampler>,
    scratch: Vec<i16>,
    packet: Vec<u8>,
    init: Vec<u8>,
    /// The mixer time the next frame is expected at.
    next: Option<Duration>,
    /// Packets of the segment being filled.
    packets: Vec<u8>,
    sizes: Vec<u32>,
    /// Where the segment being filled starts (48 kHz samples since the stream began).
    decode_time: u64,
    sequence: u64,
    discontinuity: bool,
    /// The meeting's composed picture, when the stream shows it.
    video: Option<VideoTrack>,
}

/// Pictures waiting for their segment, at most this many (a minute at 30 fps, should the
/// mix stop coming).
const MAX_PICTURES: usize = 1800;

/// The video track's pictures not yet in a segment: (time at 90 kHz, sample, keyframe).
#[derive(Debug, Default)]
struct VideoTrack {
    pending: Vec<(u64, Vec<u8>, bool)>,
}

impl LiveEncoder {
    /// A mono Opus encoder at `bitrate` bits per second.
    pub fn new(bitrate: i32) -> Result<LiveEncoder, StreamError> {
        let mut encoder =
            opus::Encoder::new(TIMESCALE, opus::Channels::Mono, opus::Application::Audio)
                .map_err(opus_err)?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate))
            .map_err(opus_err)?;
        encoder.set_complexity(5).map_err(opus_err)?;
        let pre_skip = encoder.get_lookahead().map_err(opus_err)?;
        Ok(LiveEncoder {
            encoder,
            resampler: None,
            scratch: Vec::new(),
            packet: vec![0; 1500],
            init: fmp4::init_segment(u16::try_from(pre_skip).unwrap_or(0)),
            next: None,
            packets: Vec::new(),
            sizes: Vec::with_capacity(SEGMENT_FRAMES),
            decode_time: 0,
            sequence: 0,
            discontinuity: false,
            video: None,
        })
    }

    /// The same with a video track of the meeting's composed picture (H.264 of this size):
    /// pictures come by [`LiveEncoder::push_video`].
    pub fn with_video(bitrate: i32, size: (u16, u16)) -> Result<LiveEncoder, StreamError> {
        let mut encoder = LiveEncoder::new(bitrate)?;
        let pre_skip = encoder.encoder.get_lookahead().map_err(opus_err)?;
        encoder.init =
            fmp4::init_segment_with_video(u16::try_from(pre_skip).unwrap_or(0), Some(size));
        encoder.video = Some(VideoTrack::default());
        Ok(encoder)
    }

    /// A picture of the composed video (its NAL units each behind a 4-byte length), shown at
    /// `time` on the stream's clock (90 kHz, the audio's zero). The track starts at a
    /// keyframe; each segment's pictures end before the last keyframe it could hold, so every
    /// segment's video starts with one.
    pub fn push_video(&mut self, time: u64, sample: Vec<u8>, keyframe: bool) {
        let Some(video) = self.video.as_mut() else {
            return;
        };
        if video.pending.is_empty() && !keyframe {
            return;
        }
        if video.pending.last().is_some_and(|(t, ..)| *t >= time) {
            return;
        }
        if video.pending.len() >= MAX_PICTURES {
            video.pending.clear();
            if !keyframe {
                return;
            }
        }
        video.pending.push((time, sample, keyframe));
    }

    /// The pictures of the segment being closed: from the first waiting up to the last
    /// keyframe after it (that one starts the next segment), when the audio's end is past it.
    fn take_pictures(&mut self, audio_end: u64) -> Option<(u64, Vec<VideoSample>)> {
        let video = self.video.as_mut()?;
        let cut = video
            .pending
            .iter()
            .enumerate()
            .skip(1)
            .rfind(|(_, (t, _, key))| *key && *t <= audio_end)
            .map(|(i, _)| i)?;
        let first = video.pending.first()?.0;
        let taken: Vec<(u64, Vec<u8>, bool)> = video.pending.drain(..cut).collect();
        let next = video.pending.first().map(|(t, ..)| *t);
        let samples = taken
            .iter()
            .enumerate()
            .map(|(i, (t, data, keyframe))| {
                let end = taken
                    .get(i + 1)
                    .map(|(t, ..)| *t)
                    .or(next)
                    .unwrap_or(t + 3000);
                VideoSample {
                    duration: u32::try_from(end.saturating_sub(*t)).unwrap_or(3000),
                    data: data.clone(),
                    keyframe: *keyframe,
                }
            })
            .collect();
        Some((first, samples))
    }

    /// The init segment (`EXT-X-MAP`).
    pub fn init(&self) -> &[u8] {
        &self.init
    }

    /// A 20 ms frame of the mix at `rate`, taken at `time` on the mixer's clock; a segment
    /// when this frame completes one. Short gaps become silence; a frame from before the
    /// expected one is dropped.
    pub fn push(
        &mut self,
        time: Duration,
        rate: u32,
        samples: &[i16],
    ) -> Result<Option<Segment>, StreamError> {
        let mut done = None;
        if let Some(next) = self.next {
            if time + FRAME / 2 < next {
                return Ok(None);
            }
            let gap = (time.saturating_sub(next).as_millis() / 20) as u64;
            if gap > MAX_GAP_FRAMES {
                done = self.finish();
                self.discontinuity = true;
            } else {
                for _ in 0..gap {
                    if let Some(s) = self.encode_silence()? {
                        done = Some(s);
                    }
                }
            }
        }
        self.next = Some(time + FRAME);
        let pcm: &[i16] = if rate == TIMESCALE {
            samples
        } else {
            let r = self
                .resampler
                .get_or_insert_with(|| Resampler::new(rate, TIMESCALE));
            if r.from_rate() != rate {
                *r = Resampler::new(rate, TIMESCALE);
            }
            self.scratch.clear();
            r.process(samples, &mut self.scratch);
            self.scratch.resize(FRAME_SAMPLES as usize, 0);
            &self.scratch
        };
        if pcm.len() != FRAME_SAMPLES as usize {
            return Ok(self.encode_silence()?.or(done));
        }
        let n = self
            .encoder
            .encode(pcm, &mut self.packet)
            .map_err(opus_err)?;
        Ok(self.add(n).or(done))
    }

    fn encode_silence(&mut self) -> Result<Option<Segment>, StreamError> {
        let silence = [0i16; FRAME_SAMPLES as usize];
        let n = self
            .encoder
            .encode(&silence, &mut self.packet)
            .map_err(opus_err)?;
        Ok(self.add(n))
    }

    fn add(&mut self, n: usize) -> Option<Segment> {
        self.packets.extend_from_slice(&self.packet[..n]);
        self.sizes.push(u32::try_from(n).unwrap_or(0));
        if self.sizes.len() >= SEGMENT_FRAMES {
            self.finish()
        } else {
            None
        }
    }

    /// Closes the segment being filled (the stream ends, or jumps), if it holds anything.
    pub fn finish(&mut self) -> Option<Segment> {
        if self.sizes.is_empty() {
            return None;
        }
        self.sequence += 1;
        // the audio's end on the video's clock: the pictures before it go with this segment
        let frames = u64::try_from(self.sizes.len()).unwrap_or(0);
        let audio_end = (self.decode_time + u64::from(FRAME_SAMPLES) * frames)
            * u64::from(fmp4::VIDEO_TIMESCALE)
            / u64::from(TIMESCALE);
        let pictures = self.take_pictures(audio_end);
        let mut at = 0;
        let samples: Vec<(u32, &[u8])> = self
            .sizes
            .iter()
            .map(|&size| {
                let packet = &self.packets[at..at + size as usize];
                at += size as usize;
                (FRAME_SAMPLES, packet)
            })
            .collect();
        let duration = FRAME_SAMPLES * u32::try_from(samples.len()).unwrap_or(0);
        let data = fmp4::fragment_with_video(
            u32::try_from(self.sequence).unwrap_or(u32::MAX),
            self.decode_time,
            &samples,
            pictures.as_ref().map(|(t, p)| (*t, p.as_slice())),
        );
        self.decode_time += u64::from(duration);
        self.packets.clear();
        self.sizes.clear();
        Some(Segment {
            sequence: self.sequence,
            duration,
            discontinuity: std::mem::take(&mut self.discontinuity),
            data,
        })
    }
}

/// The media playlist (RFC 8216) for the segments still served, oldest first, each as
/// (sequence, duration in 48 kHz samples, a discontinuity before it), named
/// `<sequence>.m4s` with the init segment `init.mp4`; `discontinuities`: how many came before
/// the first one listed; `ended` closes it.
pub fn media_playlist(
    segments: impl IntoIterator<Item = (u64, u32, bool)>,
    discontinuities: u64,
    ended: bool,
) -> String {
    let segments: Vec<(u64, u32, bool)> = segments.into_iter().collect();
    let first = segments.first().map_or(1, |s| s.0);
    let seconds = |samples: u32| f64::from(samples) / f64::from(TIMESCALE);
    let longest = segments.iter().map(|s| seconds(s.1)).fold(2.0f64, f64::max);
    let mut out = String::with_capacity(256 + segments.len() * 32);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init.mp4\"\n",
        longest.ceil() as u64
    );
    for (sequence, duration, discontinuity) in segments {
        if discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = write!(out, "#EXTINF:{:.3},\n{sequence}.m4s\n", seconds(duration));
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AudioDecoder, OpusDecoder};
    use crate::dsp::goertzel_power;
    use crate::streaming::fmp4::read_fragment;

    fn tone(freq: f64, rate: u32, frame: u64) -> Vec<i16> {
        let n = (rate / 50) as usize;
        (0..n)
            .map(|i| {
                let t = (frame as f64 * n as f64 + i as f64) / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// The video track's pictures of a fragment: (time of the first, [(duration, keyframe)]).
    fn pictures(data: &[u8]) -> Option<(u64, Vec<(u32, bool)>)> {
        // the second traf: tfdt (version 1) then trun with four fields a sample
        let at = data.windows(4).rposition(|w| w == b"tfdt")?;
        let tfdt = &data[at + 4..];
        let time = u64::from_be_bytes(tfdt[4..12].try_into().ok()?);
        let run = &data[data.windows(4).rposition(|w| w == b"trun")? + 4..];
        let count = u32::from_be_bytes(run[4..8].try_into().ok()?) as usize;
        let samples = (0..count)
            .map(|i| {
                let s = &run[12 + i * 12..];
                let duration = u32::from_be_bytes(s[0..4].try_into().unwrap());
                let flags = u32::from_be_bytes(s[8..12].try_into().unwrap());
                (duration, flags & 0x0001_0000 == 0)
            })
            .collect();
        Some((time, samples))
    }

    #[test]
    fn a_stream_with_video_cuts_its_pictures_at_keyframes_on_one_timeline() {
        let mut enc = LiveEncoder::with_video(32_000, (1280, 720)).expect("encoder");
        assert!(enc.init().windows(4).any(|w| w == b"avc3"));
        assert!(enc.init().windows(4).any(|w| w == b"dOps"));
        let mut segments = Vec::new();
        // 8 s: audio every 20 ms, a picture every 33 ms (3000 ticks) with a keyframe every
        // 60 (2 s) — the first one a delta, which the track does not start with
        for f in 0..400u64 {
            let at = Duration::from_millis(20 * f);
            let ticks = 90 * 20 * f;
            let n = ticks / 3000;
            if ticks % 3000 < 1800 {
                enc.push_video(n * 3000 + 1, vec![0, 0, 0, 1, 0x41], n % 60 == 1);
            }
            if let Some(s) = enc.push(at, 48_000, &tone(700.0, 48_000, f)).expect("push") {
                segments.push(s);
            }
        }
        assert_eq!(segments.len(), 4);
        let mut next = None;
        let mut with_video = 0;
        for s in &segments {
            // the audio track still reads as before
            read_fragment(&s.data).expect("a fragment");
            if s.data.windows(4).filter(|w| w == b"traf").count() < 2 {
                continue;
            }
            let (time, samples) = pictures(&s.data).expect("pictures");
            with_video += 1;
            assert!(samples[0].1, "a segment's pictures start at a keyframe");
            assert!(samples[1..].iter().all(|(_, key)| !key));
            if let Some(next) = next {
                assert_eq!(time, next, "one timeline");
            }
            next = Some(time + samples.iter().map(|(d, _)| u64::from(*d)).sum::<u64>());
        }
        assert!(with_video >= 2, "pictures in the segments: {with_video}");
    }

    #[test]
    fn two_seconds_make_a_segment_that_decodes_to_the_mix() {
        for rate in [48_000, 16_000] {
            let mut enc = LiveEncoder::new(32_000).expect("encoder");
            let mut segments = Vec::new();
            for f in 0..250u64 {
                let at = Duration::from_millis(1000 + 20 * f);
                if let Some(s) = enc.push(at, rate, &tone(700.0, rate, f)).expect("push") {
                    segments.push(s);
                }
            }
            assert_eq!(segments.len(), 2, "250 frames: two whole segments");
            segments.extend(enc.finish());
            assert_eq!(
                segments.iter().map(|s| s.duration).collect::<Vec<_>>(),
                [96_000, 96_000, 48_000]
            );
            let mut decoder = OpusDecoder::new(48_000).expect("decoder");
            let mut pcm = Vec::new();
            let mut time = 0;
            for s in &segments {
                let f = read_fragment(&s.data).expect("a fragment");
                assert_eq!(f.decode_time, time, "one timeline");
                time += u64::from(s.duration);
                for (_, p) in f.samples {
                    decoder.decode(&p, &mut pcm).expect("opus");
                }
            }
            let tail = &pcm[48_000..];
            assert!(
                goertzel_power(tail, 48_000, 700.0) > 100.0 * goertzel_power(tail, 48_000, 1500.0)
            );
        }
    }

    #[test]
    fn gaps_become_silence_and_long_ones_a_discontinuity() {
        let mut enc = LiveEncoder::new(32_000).expect("encoder");
        let pcm = tone(500.0, 48_000, 0);
        assert!(
            enc.push(Duration::ZERO, 48_000, &pcm)
                .expect("push")
                .is_none()
        );
        // a frame from the past is dropped
        assert!(
            enc.push(Duration::ZERO, 48_000, &pcm)
                .expect("push")
                .is_none()
        );
        // 1.98 s later: the gap fills the first segment
        let s = enc
            .push(Duration::from_millis(1980), 48_000, &pcm)
            .expect("push")
            .expect("a segment");
        assert_eq!(
            (s.sequence, s.duration, s.discontinuity),
            (1, 96_000, false)
        );
        // an hour later: no hour of silence; the next segment follows a discontinuity
        assert!(
            enc.push(Duration::from_secs(3600), 48_000, &pcm)
                .expect("push")
                .is_none()
        );
        let last = enc.finish().expect("the frame after the jump");
        assert!(last.discontinuity);
        assert_eq!(last.duration, 960);
    }

    #[test]
    fn the_playlist_lists_the_window_and_ends() {
        let window = [(5, 96_000, false), (6, 96_000, true)];
        let live = media_playlist(window, 2, false);
        assert!(live.contains("#EXT-X-MEDIA-SEQUENCE:5\n"));
        assert!(live.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"));
        assert!(live.contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(
            live.contains("#EXTINF:2.000,\n5.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n6.m4s\n")
        );
        assert!(!live.contains("ENDLIST"));
        assert!(media_playlist(window, 0, true).ends_with("#EXT-X-ENDLIST\n"));
        assert!(media_playlist([], 0, false).contains("#EXT-X-MEDIA-SEQUENCE:1\n"));
    }
}
