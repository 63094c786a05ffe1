//! The recorded picture: the composed layout's H.264 pictures — as the room's composer encoded
//! them for terminals and streams, never encoded again — in a sealed track of their own, and
//! the recording's video file (the mix's Opus beside them in one MP4) built from it for
//! playback and download.
//!
//! The track's plain bytes (a "picture log", made to be appended to and read back after a
//! crash): the header `CNVPICS1`, width and height (u16, big-endian); then per picture its
//! time from the recording's start (u64, 90 kHz), flags (u8: bit 0 keyframe), length (u32)
//! and its NAL units each behind a 4-byte length (as MP4 wants them). A record cut off at
//! the end is left out.

use super::ogg::OggPackets;
use super::sealed::{MAX_CHUNK, RecordingKey, SealedWriter};
use crate::streaming::fmp4::{
    VIDEO_TIMESCALE, VideoSample, fragment_with_video, init_segment_with_video,
};
use std::time::Duration;

/// The picture log's first bytes.
pub const MAGIC: &[u8; 8] = b"CNVPICS1";
const HEADER_LEN: usize = 12;
const RECORD_HEAD: usize = 13;
/// A picture larger than this is not kept (a 720p keyframe of the composer is ~100 kB).
pub const MAX_PICTURE: usize = 512 * 1024;
/// Pending pictures are sealed once they reach this (and at every flush): under a chunk's
/// limit with one whole picture more.
const SEAL_AT: usize = MAX_CHUNK - MAX_PICTURE - RECORD_HEAD;
/// A picture's duration when nothing follows it (the composer's 30 fps).
const LAST_DURATION: u32 = VIDEO_TIMESCALE / 30;
/// A fragment of the MP4 holds this much of the timeline.
const FRAGMENT: Duration = Duration::from_secs(2);
/// Opus in MP4 counts at 48 kHz.
const OPUS_RATE: u64 = 48_000;

fn ticks(d: Duration) -> u64 {
    (d.as_micros() * u128::from(VIDEO_TIMESCALE) / 1_000_000) as u64
}

/// Writes the composed picture's track: pictures in, sealed bytes to append out.
pub struct VideoTrackWriter {
    sealed: SealedWriter,
    pending: Vec<u8>,
    out: Vec<u8>,
    offset: Option<Duration>,
    last: Duration,
    pictures: u64,
}

impl std::fmt::Debug for VideoTrackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoTrackWriter")
            .field("pictures", &self.pictures)
            .finish()
    }
}

impl VideoTrackWriter {
    /// The track `track` of recording `recording` (its id's bytes), of pictures `size`.
    pub fn new(
        key: RecordingKey,
        recording: &[u8],
        track: u32,
        size: (u16, u16),
    ) -> VideoTrackWriter {
        let mut sealed = SealedWriter::new(key, recording, track);
        let mut out = sealed.header();
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&size.0.to_be_bytes());
        head.extend_from_slice(&size.1.to_be_bytes());
        out.extend(sealed.seal(&head, false));
        VideoTrackWriter {
            sealed,
            pending: Vec::new(),
            out,
            offset: None,
            last: Duration::ZERO,
            pictures: 0,
        }
    }

    /// A picture at `time` from the recording's start: NAL units each behind a 4-byte
    /// length. The track starts at a keyframe (a player starts there): pictures before the
    /// first are skipped, as is a picture over [`MAX_PICTURE`]. Time never goes back.
    /// Returns whether it was kept.
    pub fn push(&mut self, time: Duration, keyframe: bool, sample: &[u8]) -> bool {
        if (self.offset.is_none() && !keyframe) || sample.is_empty() || sample.len() > MAX_PICTURE {
            return false;
        }
        let time = time.max(self.last);
        self.offset.get_or_insert(time);
        self.last = time;
        self.pictures += 1;
        self.pending.extend_from_slice(&ticks(time).to_be_bytes());
        self.pending.push(u8::from(keyframe));
        self.pending
            .extend_from_slice(&(sample.len() as u32).to_be_bytes());
        self.pending.extend_from_slice(sample);
        if self.pending.len() >= SEAL_AT {
            self.seal(false);
        }
        true
    }

    /// When its first picture shows, from the recording's start (None: none yet).
    pub fn offset(&self) -> Option<Duration> {
        self.offset
    }

    /// From its first picture to its last.
    pub fn duration(&self) -> Duration {
        self.offset.map_or(Duration::ZERO, |o| self.last - o)
    }

    /// Pictures kept.
    pub fn pictures(&self) -> u64 {
        self.pictures
    }

    fn seal(&mut self, last: bool) {
        if !self.pending.is_empty() || last {
            let plain = std::mem::take(&mut self.pending);
            self.out.extend(self.sealed.seal(&plain, last));
        }
    }

    /// Seals what is pending, so that what is taken next holds every picture so far.
    pub fn flush(&mut self) {
        self.seal(false);
    }

    /// Ends the track (its last chunk).
    pub fn finish(&mut self) {
        self.seal(true);
    }

    /// Sealed bytes to append to the track's file, taken.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// One recorded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// From the recording's start, at 90 kHz.
    pub time: u64,
    /// An IDR picture: playback may start here.
    pub keyframe: bool,
    /// NAL units, each behind its 4-byte length.
    pub data: Vec<u8>,
}

/// A picture track, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PictureLog {
    /// Width and height.
    pub size: (u16, u16),
    /// In order of time.
    pub pictures: Vec<Picture>,
}

/// Why a picture track does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureLogError {
    /// The header is not a picture log's.
    #[error("not a picture track")]
    NotPictures,
    /// A record claims more than [`MAX_PICTURE`] bytes (at this byte).
    #[error("the picture at byte {0} is larger than a picture may be")]
    TooLarge(usize),
}

/// Reads a picture track's plain bytes (a record cut off at the end is left out).
pub fn read_pictures(plain: &[u8]) -> Result<PictureLog, PictureLogError> {
    if plain.len() < HEADER_LEN || &plain[..8] != MAGIC {
        return Err(PictureLogError::NotPictures);
    }
    let size = (
        u16::from_be_bytes([plain[8], plain[9]]),
        u16::from_be_bytes([plain[10], plain[11]]),
    );
    let mut pictures = Vec::new();
    let mut at = HEADER_LEN;
    while let Some(head) = plain.get(at..at + RECORD_HEAD) {
        let mut time = [0u8; 8];
        time.copy_from_slice(&head[..8]);
        let len = u32::from_be_bytes([head[9], head[10], head[11], head[12]]) as usize;
        if len > MAX_PICTURE {
            return Err(PictureLogError::TooLarge(at));
        }
        let Some(data) = plain.get(at + RECORD_HEAD..at + RECORD_HEAD + len) else {
            break;
        };
        pictures.push(Picture {
            time: u64::from_be_bytes(time),
            keyframe: head[8] & 1 != 0,
            data: data.to_vec(),
        });
        at += RECORD_HEAD + len;
    }
    Ok(PictureLog { size, pictures })
}

/// The recording's video: the mix (its Ogg Opus packets and where it starts on the
/// recording's timeline) and the pictures, as one fragmented MP4 — a fragment per two
/// seconds of the timeline — that browsers play and `ffmpeg` reads. The pictures move into
/// the file (a minute of them is megabytes: not copied).
pub fn recording_mp4(mix: Option<(&OggPackets, Duration)>, video: PictureLog) -> Vec<u8> {
    let pre_skip = mix.and_then(|(m, _)| m.pre_skip).unwrap_or(0);
    let mut out = init_segment_with_video(pre_skip, Some(video.size));
    // the audio: (time at 48 kHz, duration, packet), headers left out
    let mut audio: Vec<(u64, u32, &[u8])> = Vec::new();
    if let Some((ogg, offset)) = mix {
        let mut at = offset.as_millis() as u64 * OPUS_RATE / 1000;
        for packet in ogg.packets.iter().skip(2) {
            let Ok(samples) = opus::packet::get_nb_samples(packet, 48_000) else {
                continue;
            };
            audio.push((at, samples as u32, packet));
            at += samples as u64;
        }
    }
    let end = audio
        .last()
        .map_or(0, |(t, d, _)| (t + u64::from(*d)) * 1000 / OPUS_RATE)
        .max(video.pictures.last().map_or(0, |p| p.time * 1000 / 90_000));
    let mut pictures = video.pictures.into_iter().peekable();
    let step = FRAGMENT.as_millis() as u64;
    let mut a = 0;
    let mut sequence = 1;
    let mut from = 0;
    while from <= end {
        let until = from + step;
        let audio_start = audio.get(a).map_or(from * OPUS_RATE / 1000, |s| s.0);
        let mut samples = Vec::new();
        while let Some(&(t, d, p)) = audio.get(a)
            && t * 1000 / OPUS_RATE < until
        {
            samples.push((d, p));
            a += 1;
        }
        let video_start = pictures.peek().map_or(0, |p| p.time);
        let mut shown = Vec::new();
        while let Some(p) = pictures.next_if(|p| p.time * 1000 / 90_000 < until) {
            let duration = pictures.peek().map_or(LAST_DURATION, |n| {
                u32::try_from(n.time.saturating_sub(p.time))
                    .unwrap_or(LAST_DURATION)
                    .max(1)
            });
            shown.push(VideoSample {
                duration,
                data: p.data,
                keyframe: p.keyframe,
            });
        }
        if !samples.is_empty() || !shown.is_empty() {
            out.extend(fragment_with_video(
                sequence,
                audio_start,
                &samples,
                Some((video_start, &shown)),
            ));
            sequence += 1;
        }
        from = until;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sealed::open;
    use super::*;

    fn key() -> RecordingKey {
        RecordingKey::new(&[7; 32]).expect("key")
    }

    fn nal(len: usize, fill: u8) -> Vec<u8> {
        let mut v = (len as u32).to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(fill, len));
        v
    }

    #[test]
    fn pictures_come_back_from_the_sealed_track_from_the_first_keyframe() {
        let mut w = VideoTrackWriter::new(key(), b"rec", 5, (1280, 720));
        assert!(!w.push(Duration::from_millis(10), false, &nal(10, 1)));
        assert!(w.push(Duration::from_millis(40), true, &nal(100, 2)));
        assert!(w.push(Duration::from_millis(73), false, &nal(20, 3)));
        w.flush();
        // time never goes back; an oversized picture is not kept
        assert!(w.push(Duration::from_millis(50), false, &nal(20, 4)));
        assert!(!w.push(Duration::from_millis(90), false, &nal(MAX_PICTURE, 5)));
        w.finish();
        assert_eq!(w.offset(), Some(Duration::from_millis(40)));
        assert_eq!(w.duration(), Duration::from_millis(33));
        let file = w.take();
        let opened = open(&key(), b"rec", 5, &file).expect("opens");
        assert!(opened.complete);
        let log = read_pictures(&opened.plain).expect("reads");
        assert_eq!(log.size, (1280, 720));
        let times: Vec<u64> = log.pictures.iter().map(|p| p.time).collect();
        assert_eq!(times, [3600, 6570, 6570]);
        assert!(log.pictures[0].keyframe && !log.pictures[1].keyframe);
        assert_eq!(log.pictures[1].data, nal(20, 3));
    }

    #[test]
    fn a_log_cut_off_reads_up_to_its_last_whole_picture_and_junk_is_refused() {
        let mut w = VideoTrackWriter::new(key(), b"rec", 1, (640, 360));
        w.push(Duration::ZERO, true, &nal(50, 1));
        w.push(Duration::from_millis(33), false, &nal(50, 2));
        w.flush();
        let plain = open(&key(), b"rec", 1, &w.take()).expect("opens").plain;
        let cut = read_pictures(&plain[..plain.len() - 10]).expect("reads");
        assert_eq!(cut.pictures.len(), 1);
        assert_eq!(
            read_pictures(b"OggS....rest"),
            Err(PictureLogError::NotPictures)
        );
        let mut huge = plain[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&[0; 9]);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            read_pictures(&huge),
            Err(PictureLogError::TooLarge(HEADER_LEN))
        );
    }

    #[test]
    fn the_mp4_has_both_tracks_on_one_timeline_in_two_second_fragments() {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        let mut packets = vec![b"OpusHead".to_vec(), b"OpusTags".to_vec()];
        for _ in 0..250 {
            packets.push(enc.encode_vec(&[0i16; 960], 400).expect("encodes"));
        }
        let mix = OggPackets {
            packets,
            granule: 0,
            pre_skip: Some(312),
            ended: true,
        };
        // pictures from 1 s to 4 s, at 10 fps
        let pictures = (10..40)
            .map(|i| Picture {
                time: i * 9000,
                keyframe: i % 20 == 10,
                data: nal(30, i as u8),
            })
            .collect();
        let log = PictureLog {
            size: (320, 180),
            pictures,
        };
        let mp4 = recording_mp4(Some((&mix, Duration::from_millis(500))), log);
        let init = init_segment_with_video(312, Some((320, 180)));
        assert_eq!(&mp4[..init.len()], &init[..]);
        // 250 packets of 20 ms from 0.5 s: until 5.5 s; three fragments
        let mut rest = &mp4[init.len()..];
        let mut audio_times = Vec::new();
        let mut count = 0;
        while !rest.is_empty() {
            let moof = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let mdat =
                u32::from_be_bytes([rest[moof], rest[moof + 1], rest[moof + 2], rest[moof + 3]])
                    as usize;
            let fragment =
                crate::streaming::fmp4::read_fragment(&rest[..moof + mdat]).expect("a fragment");
            audio_times.push((fragment.sequence, fragment.decode_time));
            count += fragment.samples.len();
            rest = &rest[moof + mdat..];
        }
        assert_eq!(count, 250);
        assert_eq!(
            audio_times,
            [(1, 24_000), (2, 96_000), (3, 192_000)],
            "each fragment's audio starts where its two seconds do (the first at the mix's offset)"
        );
    }
}
