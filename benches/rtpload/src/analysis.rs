//! What a member's received stream says: sequence and timing gaps ([`GapTracker`]), which
//! tones it carries ([`ToneMeter`]), when a click first appears in it ([`ClickFinder`]),
//! and percentiles of the delays found ([`percentile`]). Pure functions of what they are
//! fed, so the tests drive them with real signals.

use conclave_media::dsp::goertzel_power;
use conclave_media::rtp::SeqUnwrapper;

/// Counts of one stream's defects while counting is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GapCounts {
    /// Packets received.
    pub packets: u64,
    /// Sequence numbers skipped (packets never seen).
    pub lost: u64,
    /// Packets older than one already seen (late or duplicated).
    pub late: u64,
    /// Packets whose RTP timestamp is not where the sequence number says it should be.
    pub ts_jumps: u64,
    /// Times the stream fell silent for longer than the allowed arrival gap.
    pub arrival_gaps: u64,
    /// Longest time between two packets, in microseconds.
    pub max_arrival_gap_us: u64,
}

impl GapCounts {
    /// No loss, no timestamp jump, no arrival gap.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.ts_jumps == 0 && self.arrival_gaps == 0
    }
    /// Adds another stream's counts (for totals).
    pub fn add(&mut self, o: &GapCounts) {
        self.packets += o.packets;
        self.lost += o.lost;
        self.late += o.late;
        self.ts_jumps += o.ts_jumps;
        self.arrival_gaps += o.arrival_gaps;
        self.max_arrival_gap_us = self.max_arrival_gap_us.max(o.max_arrival_gap_us);
    }
}

/// Follows one RTP stream packet by packet: sequence gaps, timestamp jumps (the timestamp
/// must advance by `units_per_packet` per sequence number) and arrival gaps longer than
/// `max_gap_us`. The state always follows the stream; counts grow only while `counting`.
#[derive(Debug, Clone)]
pub struct GapTracker {
    units_per_packet: u32,
    max_gap_us: u64,
    seq: SeqUnwrapper,
    last: Option<(u64, u32, u64)>,
    /// What was counted so far.
    pub counts: GapCounts,
}

impl GapTracker {
    /// A tracker for packets of `units_per_packet` RTP clock units (160 for 20 ms of G.711,
    /// 960 for 20 ms of Opus), flagging silences longer than `max_gap_us`.
    pub fn new(units_per_packet: u32, max_gap_us: u64) -> Self {
        GapTracker {
            units_per_packet,
            max_gap_us,
            seq: SeqUnwrapper::default(),
            last: None,
            counts: GapCounts::default(),
        }
    }

    /// One packet: its sequence number, RTP timestamp and arrival time (µs, any epoch).
    pub fn on_packet(&mut self, seq: u16, ts: u32, arrival_us: u64, counting: bool) {
        let ext = self.seq.unwrap(seq);
        let Some((last_seq, last_ts, last_at)) = self.last else {
            self.last = Some((ext, ts, arrival_us));
            if counting {
                self.counts.packets += 1;
            }
            return;
        };
        if ext <= last_seq {
            if counting {
                self.counts.packets += 1;
                self.counts.late += 1;
            }
            return;
        }
        let step = ext - last_seq;
        let expected_ts = last_ts.wrapping_add((step as u32).wrapping_mul(self.units_per_packet));
        let gap = arrival_us.saturating_sub(last_at);
        if counting {
            self.counts.packets += 1;
            self.counts.lost += step - 1;
            if ts != expected_ts {
                self.counts.ts_jumps += 1;
            }
            if gap > self.max_gap_us {
                self.counts.arrival_gaps += 1;
            }
            self.counts.max_arrival_gap_us = self.counts.max_arrival_gap_us.max(gap);
        }
        self.last = Some((ext, ts, arrival_us));
    }

    /// Counts an arrival gap that is still open at `now_us` (the stream stopped); call at
    /// the end of the counting window.
    pub fn close(&mut self, now_us: u64) {
        match self.last {
            Some((_, _, at)) => {
                let gap = now_us.saturating_sub(at);
                if gap > self.max_gap_us {
                    self.counts.arrival_gaps += 1;
                }
                self.counts.max_arrival_gap_us = self.counts.max_arrival_gap_us.max(gap);
            }
            None => {
                // nothing ever arrived: one gap as long as the window
                self.counts.arrival_gaps += 1;
            }
        }
    }
}

/// Whether a member heard a tone over the frames analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// In at least 90 % of the frames.
    Yes,
    /// In at most 10 % of the frames.
    No,
    /// In between, or no frame analysed: the mix is not what it should be.
    Unclear,
}

/// Per-frame tone presence (Goertzel) for a set of frequencies. A tone is present in a
/// frame when its power reaches `threshold` (absolute, in [`goertzel_power`] units: a sine
/// of amplitude A gives about A²/4).
#[derive(Debug, Clone)]
pub struct ToneMeter {
    rate: u32,
    freqs: Vec<f64>,
    threshold: f64,
    /// Frames analysed.
    pub frames: u64,
    /// Frames in which each tone was present.
    pub present: Vec<u64>,
}

impl ToneMeter {
    /// A meter for PCM at `rate` Hz.
    pub fn new(rate: u32, freqs: &[f64], threshold: f64) -> Self {
        ToneMeter {
            rate,
            freqs: freqs.to_vec(),
            threshold,
            frames: 0,
            present: vec![0; freqs.len()],
        }
    }

    /// Analyses one frame.
    pub fn on_frame(&mut self, pcm: &[i16]) {
        self.frames += 1;
        for (f, n) in self.freqs.iter().zip(self.present.iter_mut()) {
            if goertzel_power(pcm, self.rate, *f) >= self.threshold {
                *n += 1;
            }
        }
    }

    /// The verdict for tone `i`.
    pub fn heard(&self, i: usize) -> Heard {
        if self.frames == 0 {
            return Heard::Unclear;
        }
        let share = self.present[i] as f64 / self.frames as f64;
        if share >= 0.9 {
            Heard::Yes
        } else if share <= 0.1 {
            Heard::No
        } else {
            Heard::Unclear
        }
    }
}

/// Finds the onset of a click (a burst of `freq` after quiet at that frequency) in a
/// stream of decoded packets, to a fraction of a millisecond.
///
/// A frame whose power at `freq` reaches `trigger` says a click started in it or at the
/// end of the frame before; one frame later (when the click has grown to full strength)
/// the last three frames are searched with a sliding window of `window` samples: the onset
/// is where the window's power first reaches a quarter of the strongest window, i.e. where
/// half the window holds the click. The onset time is the arrival time of the packet that
/// holds it plus its offset inside the packet.
#[derive(Debug, Clone)]
pub struct ClickFinder {
    rate: u32,
    freq: f64,
    trigger: f64,
    window: usize,
    hop: usize,
    /// The last three frames and their arrival times (seconds), oldest first.
    frames: Vec<(Vec<i16>, f64)>,
    /// The frame that triggered; searched for at the next frame.
    pending: bool,
    /// Frames below the trigger since the last click (re-armed after two).
    quiet: u32,
}

impl ClickFinder {
    /// A finder for PCM at `rate`, a click at `freq` Hz, triggering at `trigger` power.
    pub fn new(rate: u32, freq: f64, trigger: f64) -> Self {
        ClickFinder {
            rate,
            freq,
            trigger,
            // 5 ms window, 0.25 ms hop
            window: rate as usize / 200,
            hop: (rate as usize / 4000).max(1),
            frames: Vec::with_capacity(3),
            pending: false,
            quiet: 2,
        }
    }

    /// One decoded packet that arrived at `arrival` (seconds, any epoch). Returns the
    /// onset time of a click found, in the same epoch.
    pub fn on_frame(&mut self, pcm: &[i16], arrival: f64) -> Option<f64> {
        if self.frames.len() == 3 {
            let mut oldest = self.frames.remove(0);
            oldest.0.clear();
            oldest.0.extend_from_slice(pcm);
            oldest.1 = arrival;
            self.frames.push(oldest);
        } else {
            self.frames.push((pcm.to_vec(), arrival));
        }
        let mut found = None;
        if self.pending {
            self.pending = false;
            found = self.search();
        }
        let loud = goertzel_power(pcm, self.rate, self.freq) >= self.trigger;
        if loud {
            if self.quiet >= 2 && found.is_none() {
                self.pending = true;
            }
            self.quiet = 0;
        } else {
            self.quiet = self.quiet.saturating_add(1);
        }
        found
    }

    fn search(&self) -> Option<f64> {
        let total: usize = self.frames.iter().map(|f| f.0.len()).sum();
        if total < self.window {
            return None;
        }
        let mut all = Vec::with_capacity(total);
        for f in &self.frames {
            all.extend_from_slice(&f.0);
        }
        let powers: Vec<f64> = (0..=total - self.window)
            .step_by(self.hop)
            .map(|s| goertzel_power(&all[s..s + self.window], self.rate, self.freq))
            .collect();
        let peak = powers.iter().cloned().fold(0.0, f64::max);
        if peak < self.trigger {
            return None;
        }
        let first = powers.iter().position(|&p| p >= peak / 4.0)?;
        let onset = first * self.hop + self.window / 2;
        // which packet holds that sample
        let mut start = 0;
        for (pcm, arrival) in &self.frames {
            if onset < start + pcm.len() {
                return Some(arrival + (onset - start) as f64 / self.rate as f64);
            }
            start += pcm.len();
        }
        None
    }
}

/// The most recent of `sent` (ascending times) at or before `at`, if within `max_age`.
pub fn click_before(sent: &[f64], at: f64, max_age: f64) -> Option<f64> {
    let i = sent.partition_point(|&t| t <= at);
    let t = *sent.get(i.checked_sub(1)?)?;
    (at - t <= max_age).then_some(t)
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_media::codec::{CodecConfig, CodecKind};
    use conclave_media::dsp::tone;

    const MS: u64 = 1000;

    fn feed(t: &mut GapTracker, packets: &[(u16, u32, u64)]) {
        for &(s, ts, at) in packets {
            t.on_packet(s, ts, at, true);
        }
    }

    #[test]
    fn a_regular_stream_is_clean_across_wraps() {
        let mut t = GapTracker::new(160, 60 * MS);
        for i in 0..200u32 {
            let seq = 65500u16.wrapping_add(i as u16);
            let ts = (u32::MAX - 1000).wrapping_add(i * 160);
            t.on_packet(seq, ts, i as u64 * 20 * MS, true);
        }
        t.close(200 * 20 * MS);
        assert_eq!(t.counts.packets, 200);
        assert!(t.counts.clean(), "{:?}", t.counts);
        assert_eq!(t.counts.max_arrival_gap_us, 20 * MS);
    }

    #[test]
    fn loss_jumps_late_packets_and_silences_are_counted() {
        let mut t = GapTracker::new(160, 60 * MS);
        feed(
            &mut t,
            &[
                (1, 0, 0),
                (2, 160, 20 * MS),
                // 3 and 4 lost, arriving 60 ms later: not a gap (limit is > 60 ms)
                (5, 640, 80 * MS),
                // timestamp restarted by the sender
                (6, 90_000, 100 * MS),
                // 3 arrives late
                (3, 320, 101 * MS),
                // 70 ms of nothing
                (7, 90_160, 171 * MS),
            ],
        );
        assert_eq!(t.counts.packets, 6);
        assert_eq!(t.counts.lost, 2);
        assert_eq!(t.counts.late, 1);
        assert_eq!(t.counts.ts_jumps, 1);
        assert_eq!(t.counts.arrival_gaps, 1);
        assert_eq!(t.counts.max_arrival_gap_us, 71 * MS);
        assert!(!t.counts.clean());
        // the stream stops: the open silence at the end of the window counts too
        t.close(300 * MS);
        assert_eq!(t.counts.arrival_gaps, 2);
    }

    #[test]
    fn nothing_counts_before_the_window_and_a_mute_stream_is_a_gap() {
        let mut t = GapTracker::new(960, 60 * MS);
        t.on_packet(10, 0, 0, false);
        // a loss during the warm-up is not counted, but the state follows
        t.on_packet(14, 3840, 80 * MS, false);
        t.on_packet(15, 4800, 100 * MS, true);
        assert!(t.counts.clean());
        assert_eq!(t.counts.packets, 1);
        let mut silent = GapTracker::new(960, 60 * MS);
        silent.close(1000 * MS);
        assert_eq!(silent.counts.arrival_gaps, 1);
    }

    const TONES: [f64; 3] = [400.0, 700.0, 1250.0];

    /// Encodes and decodes `pcm` through `kind`, 20 ms at a time, like a server's output.
    fn through_codec(kind: CodecKind, pcm: &[i16]) -> (Vec<Vec<i16>>, u32) {
        let cfg = CodecConfig::new(kind, 48000);
        let mut enc = cfg.encoder().unwrap();
        let mut dec = cfg.decoder().unwrap();
        let frame = cfg.pcm_rate as usize / 50;
        let frames = pcm
            .chunks(frame)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).unwrap();
                let mut out = Vec::new();
                dec.decode(&p, &mut out).unwrap();
                out
            })
            .collect();
        (frames, cfg.pcm_rate)
    }

    fn mix(rate: u32, tones: &[f64], n: usize) -> Vec<i16> {
        let mut out = vec![0i32; n];
        for &f in tones {
            for (o, s) in out.iter_mut().zip(tone(f, rate, n, 6000.0, 0)) {
                *o += s as i32;
            }
        }
        out.into_iter().map(|s| s as i16).collect()
    }

    fn verdicts(kind: CodecKind, heard: &[f64]) -> Vec<Heard> {
        let rate = if kind == CodecKind::Opus { 48000 } else { 8000 };
        let (frames, rate) = through_codec(kind, &mix(rate, heard, rate as usize * 2));
        // threshold: 20 dB under a 6000-amplitude tone
        let mut m = ToneMeter::new(rate, &TONES, 6000.0 * 6000.0 / 4.0 / 100.0);
        // the first frames of a codec are its start-up
        for f in &frames[5..] {
            m.on_frame(f);
        }
        (0..TONES.len()).map(|i| m.heard(i)).collect()
    }

    #[test]
    fn a_talker_hears_the_other_two_tones_through_g711_and_opus() {
        for kind in [CodecKind::Pcmu, CodecKind::Opus] {
            assert_eq!(
                verdicts(kind, &[400.0, 1250.0]),
                vec![Heard::Yes, Heard::No, Heard::Yes],
                "{kind:?}"
            );
            assert_eq!(
                verdicts(kind, &TONES),
                vec![Heard::Yes, Heard::Yes, Heard::Yes],
                "{kind:?}"
            );
            assert_eq!(verdicts(kind, &[]), vec![Heard::No; 3], "{kind:?}");
        }
    }

    #[test]
    fn a_tone_heard_half_the_time_is_unclear() {
        let rate = 8000;
        let mut m = ToneMeter::new(rate, &[700.0], 90_000.0);
        for i in 0..100 {
            let f = if i % 2 == 0 { 700.0 } else { 1250.0 };
            m.on_frame(&tone(f, rate, 160, 6000.0, 0));
        }
        assert_eq!(m.heard(0), Heard::Unclear);
        assert_eq!(ToneMeter::new(rate, &[700.0], 1.0).heard(0), Heard::Unclear);
    }

    /// A stream of 20 ms packets carrying three tones, with a 40 ms click of 2600 Hz
    /// starting at sample `onset`; packet k arrives at k × 20 ms + 3 ms.
    fn click_stream(rate: u32, onset: usize) -> Vec<(Vec<i16>, f64)> {
        let n = rate as usize / 2;
        let mut pcm: Vec<i32> = mix(rate, &TONES, n).into_iter().map(i32::from).collect();
        let click_len = rate as usize / 25;
        for (i, s) in tone(2600.0, rate, click_len, 8000.0, 0)
            .into_iter()
            .enumerate()
        {
            pcm[onset + i] += s as i32;
        }
        let pcm: Vec<i16> = pcm.into_iter().map(|s| s as i16).collect();
        pcm.chunks(rate as usize / 50)
            .enumerate()
            .map(|(k, f)| (f.to_vec(), k as f64 * 0.020 + 0.003))
            .collect()
    }

    #[test]
    fn a_click_is_found_where_it_starts() {
        for (kind, rate) in [(CodecKind::Pcmu, 8000u32), (CodecKind::Opus, 48000)] {
            // onsets at a packet's start, its middle and its last millisecond
            for onset_ms in [100.0, 130.0, 179.0] {
                let onset = (onset_ms * rate as f64 / 1000.0) as usize;
                let stream = click_stream(rate, onset);
                let pcm: Vec<i16> = stream.iter().flat_map(|f| f.0.clone()).collect();
                let (decoded, _) = through_codec(kind, &pcm);
                let mut finder = ClickFinder::new(rate, 2600.0, 8000.0 * 8000.0 / 4.0 / 100.0);
                let found: Vec<f64> = decoded
                    .iter()
                    .zip(&stream)
                    .filter_map(|(pcm, (_, at))| finder.on_frame(pcm, *at))
                    .collect();
                assert_eq!(found.len(), 1, "{kind:?} at {onset_ms} ms: {found:?}");
                // the packet holding the onset arrived 3 ms after its start: onset + 3 ms,
                // plus the codec's own delay (Opus: its 6.5 ms look-ahead, and a little more
                // while a fresh encoder settles); the engine measures and subtracts it
                let expected = onset_ms / 1000.0 + 0.003;
                let slack = if kind == CodecKind::Opus {
                    0.010
                } else {
                    0.001
                };
                assert!(
                    found[0] >= expected - 0.001 && found[0] <= expected + slack,
                    "{kind:?} at {onset_ms} ms: found {:.4}, expected {expected:.4}",
                    found[0]
                );
            }
        }
    }

    #[test]
    fn clicks_are_found_once_each_and_tones_alone_find_none() {
        let rate = 8000;
        let mut finder = ClickFinder::new(rate, 2600.0, 160_000.0);
        let mut found = 0;
        for round in 0..5 {
            let stream = click_stream(rate, 800 + round * 8);
            for (pcm, at) in &stream {
                found += finder.on_frame(pcm, *at + round as f64).is_some() as usize;
            }
        }
        assert_eq!(found, 5);
        let mut quiet = ClickFinder::new(rate, 2600.0, 160_000.0);
        let tones = mix(rate, &TONES, rate as usize * 2);
        let hits = tones
            .chunks(160)
            .enumerate()
            .filter(|(k, f)| quiet.on_frame(f, *k as f64 * 0.02).is_some())
            .count();
        assert_eq!(hits, 0);
    }

    #[test]
    fn each_onset_is_paired_with_the_click_sent_before_it() {
        let sent = [1.0, 1.5, 2.0, 2.5];
        assert_eq!(click_before(&sent, 1.52, 0.4), Some(1.5));
        assert_eq!(click_before(&sent, 2.0, 0.4), Some(2.0));
        assert_eq!(click_before(&sent, 0.9, 0.4), None);
        // too long after the last click: no pairing
        assert_eq!(click_before(&sent, 3.0, 0.4), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
