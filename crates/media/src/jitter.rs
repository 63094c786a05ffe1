//! An adaptive jitter buffer for one incoming audio stream.
//!
//! Packets go in with their arrival time; the playout side pops one packet (or a
//! loss marker, or silence) at a time. The target delay follows the RFC 3550
//! interarrival jitter estimate (three times the jitter plus one frame, within
//! configured bounds). The buffer handles reordering, duplicates, late
//! packets, sequence and timestamp wrap, timestamp jumps (resynchronisation),
//! talk spurts after silence or DTX, overflow, and clock drift (it drops a
//! frame when it has held too much for too long).

use std::collections::BTreeMap;
use std::time::Duration;

/// Configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Lowest target delay.
    pub min_delay: Duration,
    /// Highest target delay.
    pub max_delay: Duration,
    /// Most packets held; the oldest are dropped beyond it.
    pub max_packets: usize,
    /// Consecutive missing frames concealed before the buffer goes back to buffering.
    pub max_conceal: u32,
    /// A timestamp this far from the playout point (either way) restarts the buffer.
    pub resync_after: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            // One frame: with a steady stream a packet plays at the first tick after it
            // arrives; jitter raises the target from there.
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            max_packets: 100,
            max_conceal: 5,
            resync_after: Duration::from_secs(3),
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Frames reported lost to the decoder.
    pub lost: u64,
    /// Frames dropped because the buffer was full.
    pub overflow: u64,
    /// Frames dropped to reduce the delay (clock drift, jitter spike over).
    pub drift_drops: u64,
    /// Times the buffer restarted on a timestamp jump.
    pub resyncs: u64,
    /// Packets played out.
    pub played: u64,
    /// Frames concealed while waiting for a late packet or on an empty buffer.
    pub underruns: u64,
}

/// What the playout side gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The next packet.
    Packet {
        /// RTP timestamp.
        timestamp: u32,
        /// The tag given at insertion (the engine stores the RFC 6464 level there).
        tag: u8,
        /// Duration in RTP units.
        duration: u32,
        /// Payload.
        payload: Vec<u8>,
    },
    /// The next packet is missing: conceal `duration` units. `fec` holds the packet that
    /// follows (a copy), from which a codec with in-band FEC may recover the loss.
    Lost {
        /// Duration in RTP units.
        duration: u32,
        /// The following packet, when buffered.
        fec: Option<Vec<u8>>,
    },
    /// Nothing to play (buffering, or the stream is silent).
    Silence,
}

#[derive(Debug, Clone)]
struct Entry {
    ts: u32,
    tag: u8,
    duration: u32,
    payload: Vec<u8>,
    arrival: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Buffering,
    Playing { next: i64, conceal_run: u32 },
}

/// The jitter buffer.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    clock_rate: u32,
    packets: BTreeMap<i64, Entry>,
    ts_base: Option<(u32, i64)>,
    state: State,
    jitter_q4: i64,
    last_transit: Option<i64>,
    last_duration: u32,
    high_run: u32,
    played_until: Option<i64>,
    stats: JitterStats,
    /// Payload buffers given back with [`JitterBuffer::recycle`]: a packet in, a packet out
    /// every 20 ms would otherwise be an allocation and a free per packet.
    spare: Vec<Vec<u8>>,
}

/// Spare payload buffers kept per stream.
const SPARE_BUFFERS: usize = 4;

impl JitterBuffer {
    /// Gives back a payload buffer from [`Playout::Packet`] for a later packet.
    pub fn recycle(&mut self, mut payload: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && payload.capacity() <= 2048 {
            payload.clear();
            self.spare.push(payload);
        }
    }

    /// Creates a buffer for a stream with the given RTP clock rate.
    pub fn new(clock_rate: u32, cfg: JitterConfig) -> Self {
        JitterBuffer {
            cfg,
            clock_rate: clock_rate.max(1),
            packets: BTreeMap::new(),
            ts_base: None,
            state: State::Buffering,
            jitter_q4: 0,
            last_transit: None,
            last_duration: clock_rate / 50,
            high_run: 0,
            played_until: None,
            stats: JitterStats::default(),
            spare: Vec::new(),
        }
    }

    fn units(&self, d: Duration) -> i64 {
        crate::dsp::duration_to_units(d, self.clock_rate) as i64
    }

    fn to_duration(&self, units: i64) -> Duration {
        crate::dsp::units_to_duration(units.max(0) as u64, self.clock_rate)
    }

    /// Extends a 32-bit timestamp relative to the last one seen.
    fn extend_ts(&mut self, ts: u32) -> i64 {
        match self.ts_base {
            None => {
                let e = 1i64 << 40;
                self.ts_base = Some((ts, e));
                e
            }
            Some((last, last_ext)) => {
                let e = last_ext + ts.wrapping_sub(last) as i32 as i64;
                if e > last_ext {
                    self.ts_base = Some((ts, e));
                }
                e
            }
        }
    }

    /// Interarrival jitter estimate, in RTP units.
    pub fn jitter_units(&self) -> u32 {
        (self.jitter_q4 >> 4) as u32
    }

    /// The current target delay.
    pub fn target_delay(&self) -> Duration {
        let units = 3 * (self.jitter_q4 >> 4) + self.last_duration as i64;
        self.to_duration(units)
            .clamp(self.cfg.min_delay, self.cfg.max_delay)
    }

    /// Audio buffered ahead of the playout point, in RTP units.
    pub fn depth_units(&self) -> i64 {
        let (Some((&first, _)), Some((&last, e))) = (
            self.packets.first_key_value(),
            self.packets.last_key_value(),
        ) else {
            return 0;
        };
        let start = match self.state {
            State::Playing { next, .. } => next,
            State::Buffering => first,
        };
        (last + e.duration as i64 - start).max(0)
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// True while playing out (as opposed to buffering).
    pub fn is_playing(&self) -> bool {
        matches!(self.state, State::Playing { .. })
    }

    /// Forgets everything (for example on an SSRC change).
    pub fn reset(&mut self) {
        self.packets.clear();
        self.ts_base = None;
        self.state = State::Buffering;
        self.played_until = None;
        self.last_transit = None;
        self.high_run = 0;
    }

    /// Inserts a packet: RTP timestamp, duration in RTP units, payload, arrival time.
    pub fn insert(&mut self, ts: u32, duration: u32, payload: &[u8], arrival: Duration) {
        self.insert_tagged(ts, duration, payload, arrival, u8::MAX)
    }

    /// Inserts a packet with a tag that comes back with it in [`Playout::Packet`].
    pub fn insert_tagged(
        &mut self,
        ts: u32,
        duration: u32,
        payload: &[u8],
        arrival: Duration,
        tag: u8,
    ) {
        let duration = if duration == 0 || duration > self.clock_rate {
            self.last_duration
        } else {
            duration
        };
        let ext = self.extend_ts(ts);
        let resync = self.units(self.cfg.resync_after);
        if let State::Playing { next, .. } = self.state
            && (ext < next - resync || ext > next + resync)
        {
            self.resync();
            return self.insert_tagged(ts, duration, payload, arrival, tag);
        }
        if self.state == State::Buffering
            && let Some((&first, _)) = self.packets.first_key_value()
            && (ext < first - resync || ext > first + resync)
        {
            self.resync();
            return self.insert_tagged(ts, duration, payload, arrival, tag);
        }
        // jitter estimate (RFC 3550 A.8) from arrival time and timestamp
        let transit = self.units(arrival).wrapping_sub(ext);
        if let Some(last) = self.last_transit {
            let d = transit
                .wrapping_sub(last)
                .unsigned_abs()
                .min(self.clock_rate as u64) as i64;
            self.jitter_q4 += d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);

        if self.state == State::Buffering
            && let Some(p) = self.played_until
            && (ext < p - resync || ext > p + resync)
        {
            self.played_until = None;
        }
        let played = match self.state {
            State::Playing { next, .. } => Some(next),
            State::Buffering => self.played_until,
        };
        if let Some(next) = played
            && ext < next
        {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        if self.packets.len() >= self.cfg.max_packets {
            self.packets.pop_first();
            self.stats.overflow += 1;
            if let State::Playing { next, conceal_run } = self.state
                && let Some((&first, _)) = self.packets.first_key_value()
            {
                self.state = State::Playing {
                    next: next.max(first),
                    conceal_run,
                };
            }
        }
        self.stats.received += 1;
        self.last_duration = duration;
        self.packets.insert(
            ext,
            Entry {
                ts,
                tag,
                duration,
                payload: {
                    let mut buf = self.spare.pop().unwrap_or_default();
                    buf.extend_from_slice(payload);
                    buf
                },
                arrival,
            },
        );
    }

    fn resync(&mut self) {
        self.stats.resyncs += 1;
        self.packets.clear();
        self.ts_base = None;
        self.state = State::Buffering;
        self.played_until = None;
        self.last_transit = None;
    }

    /// Pops what to play next.
    pub fn pop(&mut self, now: Duration) -> Playout {
        let target = self.target_delay();
        let State::Playing { next, conceal_run } = self.state else {
            // buffering: start once the oldest packet has waited the target delay, or
            // enough audio is queued. The frame it starts is heard over the next tick, so
            // that tick counts towards the wait: a steady stream (target one frame) plays
            // at the first tick after its packet arrived, not a whole frame later.
            let Some((&first, e)) = self.packets.first_key_value() else {
                return Playout::Silence;
            };
            let frame = self.to_duration(e.duration as i64);
            if now.saturating_sub(e.arrival) + frame + Duration::from_micros(1) >= target
                || self.to_duration(self.depth_units()) >= target
            {
                self.state = State::Playing {
                    next: first,
                    conceal_run: 0,
                };
                self.high_run = 0;
                return self.pop(now);
            }
            return Playout::Silence;
        };
        // anything left behind the playout point (overlapping durations) is late
        while let Some((&k, _)) = self.packets.first_key_value() {
            if k < next {
                self.packets.pop_first();
                self.stats.late += 1;
            } else {
                break;
            }
        }
        // drift control: held too much for too long -> skip a frame
        let depth = self.to_duration(self.depth_units());
        if depth > target + Duration::from_millis(60) {
            self.high_run += 1;
        } else {
            self.high_run = 0;
        }
        if self.high_run > 25 {
            self.high_run = 0;
            if let Some(e) = self.packets.remove(&next) {
                self.stats.drift_drops += 1;
                self.state = State::Playing {
                    next: next + e.duration as i64,
                    conceal_run: 0,
                };
                return self.pop(now);
            }
        }
        if let Some(e) = self.packets.remove(&next) {
            self.state = State::Playing {
                next: next + e.duration as i64,
                conceal_run: 0,
            };
            self.stats.played += 1;
            return Playout::Packet {
                timestamp: e.ts,
                tag: e.tag,
                duration: e.duration,
                payload: e.payload,
            };
        }
        let dur = self.last_duration;
        match self.packets.first_key_value() {
            None => {
                // underrun: conceal without moving the playout point, so that a delayed
                // packet still plays (this grows the delay); give up after a while
                if conceal_run >= self.cfg.max_conceal {
                    self.state = State::Buffering;
                    self.played_until = Some(next);
                    return Playout::Silence;
                }
                self.state = State::Playing {
                    next,
                    conceal_run: conceal_run + 1,
                };
                self.stats.underruns += 1;
                Playout::Lost {
                    duration: dur,
                    fec: None,
                }
            }
            Some((&first, e)) => {
                let gap = first - next;
                if conceal_run >= self.cfg.max_conceal || self.to_duration(gap) > target * 2 {
                    // a new talk spurt after silence/DTX: jump to it
                    self.state = State::Playing {
                        next: first,
                        conceal_run: 0,
                    };
                    return self.pop(now);
                }
                if self.to_duration(self.depth_units()) < target && conceal_run < 2 {
                    // the packet may only be late: wait one frame for it (grows the delay)
                    self.state = State::Playing {
                        next,
                        conceal_run: conceal_run + 1,
                    };
                    self.stats.underruns += 1;
                    return Playout::Lost {
                        duration: dur,
                        fec: None,
                    };
                }
                let step = (dur as i64).min(gap).max(1);
                let fec = if gap == step {
                    Some(e.payload.clone())
                } else {
                    None
                };
                self.state = State::Playing {
                    next: next + step,
                    conceal_run: conceal_run + 1,
                };
                self.stats.lost += 1;
                Playout::Lost {
                    duration: step as u32,
                    fec,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn payload(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    fn id(p: &Playout) -> Option<u32> {
        match p {
            Playout::Packet { payload, .. } => Some(u32::from_be_bytes([
                payload[0], payload[1], payload[2], payload[3],
            ])),
            _ => None,
        }
    }

    /// Feeds packets i (ts = base + 160 i) at the given arrival times and pops every 20 ms.
    fn run(arrivals: &[(u32, u64)], base: u32, ticks: u64) -> (Vec<Playout>, JitterBuffer) {
        let mut jb = JitterBuffer::new(8000, JitterConfig::default());
        let mut out = Vec::new();
        let mut k = 0;
        let mut sorted = arrivals.to_vec();
        sorted.sort_by_key(|a| a.1);
        for t in 0..ticks {
            let now = MS(t * 20);
            while k < sorted.len() && sorted[k].1 <= t * 20 {
                let (i, at) = sorted[k];
                jb.insert(base.wrapping_add(i * 160), 160, &payload(i), MS(at));
                k += 1;
            }
            out.push(jb.pop(now));
        }
        (out, jb)
    }

    #[test]
    fn in_order_plays_everything_in_order() {
        let arr: Vec<(u32, u64)> = (0..50).map(|i| (i, i as u64 * 20)).collect();
        let (out, jb) = run(&arr, u32::MAX - 1000, 60);
        let ids: Vec<u32> = out.iter().filter_map(id).collect();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn reordering_and_duplicates() {
        let mut arr: Vec<(u32, u64)> = (0..50).map(|i| (i, i as u64 * 20)).collect();
        // swap pairs and duplicate some
        for i in (0..48).step_by(4) {
            arr[i].1 += 25;
        }
        arr.push((10, 210));
        arr.push((11, 230));
        let (out, jb) = run(&arr, 1000, 70);
        let ids: Vec<u32> = out.iter().filter_map(id).collect();
        // The buffer starts at one frame: the first reorderings come too late, then the
        // target has grown past them and every packet plays, in order.
        let settled = ids.iter().position(|&i| i == 9).expect("packet 9 plays");
        assert_eq!(ids[settled..], (9..50).collect::<Vec<_>>());
        assert!(ids[..settled].windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(settled >= 6, "at most three lost while adapting: {ids:?}");
        assert_eq!(jb.stats().duplicate, 2);
    }

    #[test]
    fn a_steady_stream_plays_at_the_first_tick_after_it_arrives() {
        // Packets arrive 5 ms after each 20 ms tick, without jitter: each plays at the next
        // tick, 15 ms after it arrived (before, the buffer held a whole frame more).
        let mut jb = JitterBuffer::new(8000, JitterConfig::default());
        let mut waits = Vec::new();
        for t in 1..100u64 {
            let i = (t - 1) as u32;
            jb.insert(i * 160, 160, &payload(i), MS(t * 20 - 15));
            if let Playout::Packet { payload: p, .. } = jb.pop(MS(t * 20)) {
                let played = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                waits.push(t * 20 - (played as u64 * 20 + 5));
            }
        }
        assert_eq!(waits.len(), 99);
        assert!(waits.iter().all(|&w| w == 15), "{waits:?}");
    }

    #[test]
    fn loss_is_reported_with_fec_candidate() {
        let arr: Vec<(u32, u64)> = (0..50)
            .filter(|i| i % 10 != 5)
            .map(|i| (i, i as u64 * 20))
            .collect();
        let (out, jb) = run(&arr, 0, 60);
        let with_fec = out
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Playout::Lost {
                        duration: 160,
                        fec: Some(_)
                    }
                )
            })
            .count();
        assert_eq!(with_fec, 5);
        assert_eq!(jb.stats().lost, 5);
        let ids: Vec<u32> = out.iter().filter_map(id).collect();
        assert_eq!(ids.len(), 45);
    }

    #[test]
    fn late_packets_are_dropped() {
        let mut arr: Vec<(u32, u64)> = (0..50).map(|i| (i, i as u64 * 20)).collect();
        arr[20].1 += 300; // far too late
        let (out, jb) = run(&arr, 0, 70);
        assert_eq!(jb.stats().late, 1);
        assert_eq!(out.iter().filter_map(id).count(), 49);
    }

    #[test]
    fn adapts_to_jitter() {
        // arrival jitter of up to 60 ms
        let arr: Vec<(u32, u64)> = (0..300)
            .map(|i| (i, i as u64 * 20 + [0, 60, 10, 45, 30][i as usize % 5]))
            .collect();
        let (out, jb) = run(&arr, 0, 330);
        assert!(jb.target_delay() > MS(60), "{:?}", jb.target_delay());
        // after adaptation, (almost) nothing is late
        let late = jb.stats().late;
        assert!(late < 15, "late {late}");
        assert!(out.iter().filter_map(id).count() > 280);
    }

    #[test]
    fn timestamp_jump_resyncs() {
        let mut jb = JitterBuffer::new(8000, JitterConfig::default());
        let mut played = 0;
        for t in 0..100u32 {
            let ts = if t < 50 {
                t * 160
            } else {
                0x8000_0000 + t * 160
            };
            jb.insert(ts, 160, &payload(t), MS(t as u64 * 20));
            if matches!(jb.pop(MS(t as u64 * 20)), Playout::Packet { .. }) {
                played += 1;
            }
        }
        assert_eq!(jb.stats().resyncs, 1);
        assert!(played > 90, "{played}");
    }

    #[test]
    fn talk_spurts_after_silence() {
        // 20 packets, 2 s of silence (DTX), 20 more
        let mut arr: Vec<(u32, u64)> = (0..20).map(|i| (i, i as u64 * 20)).collect();
        arr.extend((120..140).map(|i| (i, i as u64 * 20)));
        let (out, jb) = run(&arr, 0, 160);
        assert_eq!(out.iter().filter_map(id).count(), 40);
        assert!(jb.stats().lost <= 5);
    }

    #[test]
    fn unix_epoch_times_do_not_overflow() {
        let mut jb = JitterBuffer::new(48000, JitterConfig::default());
        let base = Duration::from_secs(1_700_000_000);
        let mut played = 0;
        for i in 0..50u32 {
            let now = base + MS(i as u64 * 20);
            jb.insert(i * 960, 960, &payload(i), now);
            if matches!(jb.pop(now), Playout::Packet { .. }) {
                played += 1;
            }
        }
        assert!(played > 45);
        let mut jb = JitterBuffer::new(8000, JitterConfig::default());
        jb.insert(0, 160, &[1], Duration::MAX);
        let _ = jb.pop(Duration::MAX);
    }

    #[test]
    fn drift_is_corrected() {
        // the sender's clock runs 2 % fast: packets arrive every 19.6 ms
        let arr: Vec<(u32, u64)> = (0..1000).map(|i| (i, i as u64 * 196 / 10)).collect();
        let (_, jb) = run(&arr, 0, 1000);
        assert!(jb.stats().drift_drops > 0);
        assert!(jb.to_duration(jb.depth_units()) < MS(200));
    }
}
