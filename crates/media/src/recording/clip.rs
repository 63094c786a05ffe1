//! Parts of a recorded track: the audio of an utterance, decoded for speech recognition
//! ([`decode_spans`]), or cut out as an Ogg Opus file of its own that plays exactly that
//! span ([`cut`]). Times are on the track's own timeline (its first sample is 0 ms). Reads
//! files: fuzzed with the Ogg reader.

use super::ogg::{GRANULE_RATE, OggError, OggOpusWriter, read_packets};

/// Decoded before a span's start and thrown away: the decoder's state settles in it.
const PREROLL_MS: u64 = 80;

/// The longest clip or span (a monologue beyond it is cut): ten minutes.
pub const MAX_SPAN_MS: u64 = 10 * 60 * 1000;

/// Why a part cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    /// The file is not Ogg.
    #[error(transparent)]
    Ogg(#[from] OggError),
    /// The file is Ogg but not Opus.
    #[error("not an Ogg Opus track")]
    NotOpus,
    /// A packet is not Opus.
    #[error("opus: {0}")]
    Opus(String),
    /// The track holds nothing there.
    #[error("the span {0}–{1} ms is empty")]
    Empty(u64, u64),
}

/// A packet: where it starts in the decoder's output, how many samples it makes (48 kHz),
/// and its bytes.
type Timed = (u64, u64, Vec<u8>);

/// The track's audio packets with where each starts in the decoder's output and how long
/// it is (48 kHz samples), and the pre-skip (the track's time 0 is that far in).
fn timeline(ogg: &[u8]) -> Result<(Vec<Timed>, u64), ClipError> {
    let read = read_packets(ogg)?;
    let mut packets = read.packets.into_iter();
    let head = packets.next().ok_or(ClipError::NotOpus)?;
    if !head.starts_with(b"OpusHead") {
        return Err(ClipError::NotOpus);
    }
    let pre_skip = read.pre_skip.unwrap_or(0);
    let _tags = packets.next();
    let mut at = 0u64;
    let mut out = Vec::new();
    for packet in packets {
        let samples = opus::packet::get_nb_samples(&packet, GRANULE_RATE as u32)
            .map_err(|e| ClipError::Opus(e.to_string()))? as u64;
        out.push((at, samples, packet));
        at += samples;
    }
    Ok((out, u64::from(pre_skip)))
}

fn ms_to_samples(ms: u64, rate: u64) -> u64 {
    ms.saturating_mul(rate) / 1000
}

/// Decodes each span (`from_ms`, `to_ms`) of a track at `rate` (8, 12, 16, 24 or 48 kHz),
/// mono. A span the track does not hold to its end is `None` — unless `whole` (the track
/// is complete: what it holds of the span is decoded; nothing of it, `None`). Spans
/// longer than [`MAX_SPAN_MS`] are cut there.
pub fn decode_spans(
    ogg: &[u8],
    spans: &[(u64, u64)],
    rate: u32,
    whole: bool,
) -> Result<Vec<Option<Vec<i16>>>, ClipError> {
    let (packets, pre_skip) = timeline(ogg)?;
    let end = packets.last().map_or(0, |(at, n, _)| at + n);
    let mut out = Vec::with_capacity(spans.len());
    for &(from_ms, to_ms) in spans {
        let to_ms = to_ms.min(from_ms.saturating_add(MAX_SPAN_MS));
        let from = ms_to_samples(from_ms, GRANULE_RATE) + pre_skip;
        let mut to = ms_to_samples(to_ms, GRANULE_RATE) + pre_skip;
        if to <= from {
            out.push(Some(Vec::new()));
            continue;
        }
        if to > end {
            if !whole || from >= end {
                out.push(None);
                continue;
            }
            to = end;
        }
        let mut decoder = opus::Decoder::new(rate, opus::Channels::Mono)
            .map_err(|e| ClipError::Opus(e.to_string()))?;
        let start = from.saturating_sub(ms_to_samples(PREROLL_MS, GRANULE_RATE));
        let first = packets.partition_point(|(at, n, _)| at + n <= start);
        let mut pcm: Vec<i16> = Vec::new();
        let mut scratch = vec![0i16; rate as usize * 120 / 1000];
        let mut decoded_from = None;
        for (at, _, packet) in &packets[first..] {
            if *at >= to {
                break;
            }
            decoded_from.get_or_insert(*at);
            let got = decoder
                .decode(packet, &mut scratch, false)
                .map_err(|e| ClipError::Opus(e.to_string()))?;
            pcm.extend_from_slice(&scratch[..got.min(scratch.len())]);
        }
        let base = decoded_from.unwrap_or(from);
        let scale = |s: u64| (s.saturating_sub(base) * u64::from(rate) / GRANULE_RATE) as usize;
        let (a, b) = (scale(from).min(pcm.len()), scale(to).min(pcm.len()));
        out.push(Some(pcm[a..b].to_vec()));
    }
    Ok(out)
}

/// The span as an Ogg Opus file of its own (the packets copied, not re-encoded; the
/// pre-skip hides what comes before `from_ms`), with `comments`.
pub fn cut(
    ogg: &[u8],
    from_ms: u64,
    to_ms: u64,
    comments: &[String],
) -> Result<Vec<u8>, ClipError> {
    let (packets, pre_skip) = timeline(ogg)?;
    let to_ms = to_ms.min(from_ms.saturating_add(MAX_SPAN_MS));
    let from = ms_to_samples(from_ms, GRANULE_RATE) + pre_skip;
    let to = ms_to_samples(to_ms, GRANULE_RATE) + pre_skip;
    let start = from.saturating_sub(ms_to_samples(PREROLL_MS, GRANULE_RATE));
    let first = packets.partition_point(|(at, n, _)| at + n <= start);
    let chosen: Vec<&Timed> = packets[first..]
        .iter()
        .take_while(|(at, _, _)| *at < to)
        .collect();
    let Some((begins, _, _)) = chosen.first() else {
        return Err(ClipError::Empty(from_ms, to_ms));
    };
    // the encoder's delay and the preroll are skipped
    let pre_skip = u16::try_from(from.saturating_sub(*begins)).unwrap_or(u16::MAX);
    let mut writer = OggOpusWriter::new(0x636c_6970, pre_skip, GRANULE_RATE as u32, comments);
    let total = to.min(chosen.last().map_or(to, |(at, n, _)| at + n)) - begins;
    let mut written = 0;
    for (_, n, packet) in &chosen {
        // the last page's granule ends the clip at `to_ms` exactly
        let n = (*n).min(total.saturating_sub(written));
        writer.push(packet, n);
        written += n;
    }
    writer.finish();
    Ok(writer.take())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::sealed::{RecordingKey, open};
    use crate::recording::track::TrackWriter;
    use std::time::Duration;

    /// A track of 3 s: silence, then a 440 Hz tone from 1.0 to 2.0 s, then silence.
    fn track() -> Vec<u8> {
        let key = || RecordingKey::new(&[7; 32]).unwrap();
        let mut w = TrackWriter::new(key(), b"rec", 1, 16_000, Duration::ZERO, false, &[]).unwrap();
        let mut out = Vec::new();
        for frame in 0..150u64 {
            let samples: Vec<i16> = (0..320)
                .map(|i| {
                    if (50..100).contains(&frame) {
                        let t = (frame * 320 + i) as f64 / 16_000.0;
                        (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
                    } else {
                        0
                    }
                })
                .collect();
            w.push(Duration::from_millis(frame * 20), 16_000, &samples)
                .unwrap();
            out.extend(w.take());
        }
        w.finish();
        out.extend(w.take());
        open(&key(), b"rec", 1, &out).unwrap().plain
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    #[test]
    fn spans_decode_where_the_voice_is() {
        let ogg = track();
        let got =
            decode_spans(&ogg, &[(1000, 2000), (0, 900), (2900, 4000)], 16_000, false).unwrap();
        let tone = got[0].as_ref().unwrap();
        assert_eq!(tone.len(), 16_000);
        assert!(rms(&tone[800..15_200]) > 3000.0, "{}", rms(tone));
        let quiet = got[1].as_ref().unwrap();
        assert!(rms(quiet) < 100.0);
        assert!(got[2].is_none(), "beyond the track's end");
        let whole = decode_spans(&ogg, &[(2900, 4000), (3100, 4000)], 16_000, true).unwrap();
        // the track ends at 3 s less the encoder's delay
        let there = whole[0].as_ref().map_or(0, Vec::len);
        assert!(
            (1400..=1600).contains(&there),
            "what there is of it: {there}"
        );
        assert!(whole[1].is_none(), "nothing of it");
    }

    #[test]
    fn a_cut_plays_exactly_its_span() {
        let ogg = track();
        let clip = cut(&ogg, 1000, 2000, &["TITLE=x".into()]).unwrap();
        let read = read_packets(&clip).unwrap();
        let pre_skip = u64::from(read.pre_skip.unwrap());
        // one second of 48 kHz samples once the pre-skip is taken away
        assert_eq!(read.granule - pre_skip, 48_000);
        assert!(read.ended);
        let pcm = decode_spans(&clip, &[(0, 1000)], 48_000, false).unwrap();
        let pcm = pcm[0].as_ref().unwrap();
        assert!(rms(&pcm[4800..43_200]) > 3000.0);
        assert!(matches!(
            cut(&ogg, 10_000, 11_000, &[]),
            Err(ClipError::Empty(..))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_spans(b"not ogg at all, sorry", &[(0, 10)], 16_000, true).is_err());
        assert!(cut(b"", 0, 10, &[]).is_err());
        let ogg = track();
        for n in [0, 27, 100, ogg.len() / 2] {
            let _ = decode_spans(
                &ogg[..n],
                &[(0, 3000), (u64::MAX - 5, u64::MAX)],
                16_000,
                true,
            );
            let _ = cut(&ogg[..n], u64::MAX - 5, u64::MAX, &[]);
        }
    }
}
