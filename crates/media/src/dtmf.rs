//! DTMF: RFC 4733 telephone-event payloads (decode with de-duplication, encode
//! as a packet sequence) and an in-band Goertzel detector for gateways that
//! send tones in the audio.

use crate::dsp::goertzel_power;

/// The 16 DTMF events as characters (event codes 0..=15).
pub const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// Event code of a digit character.
pub fn event_code(digit: char) -> Option<u8> {
    DIGITS
        .iter()
        .position(|&d| d == digit.to_ascii_uppercase())
        .map(|p| p as u8)
}

/// One RFC 4733 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0..=15 for DTMF).
    pub event: u8,
    /// End bit.
    pub end: bool,
    /// Volume, -dBm0 (0..=63).
    pub volume: u8,
    /// Duration in RTP units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses a payload (the first 4 bytes; more are ignored, fewer are an error).
    pub fn parse(p: &[u8]) -> Option<Self> {
        let b = p.get(..4)?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }
    /// The 4-byte payload.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            if self.end { 0x80 } else { 0 } | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
    /// The digit, for DTMF events.
    pub fn digit(&self) -> Option<char> {
        DIGITS.get(self.event as usize).copied()
    }
}

/// De-duplicates received telephone events: reports each event once, on its first
/// packet (events are identified by their RTP timestamp).
#[derive(Debug, Clone, Default)]
pub struct TelephoneEventReceiver {
    last_ts: Option<u32>,
}

impl TelephoneEventReceiver {
    /// Feeds one telephone-event packet; returns the digit when a new event starts.
    pub fn on_packet(&mut self, ts: u32, payload: &[u8]) -> Option<char> {
        let ev = TelephoneEvent::parse(payload)?;
        if self.last_ts == Some(ts) {
            return None;
        }
        self.last_ts = Some(ts);
        ev.digit()
    }
}

/// Generates the packet sequence of one event: every `ptime_units` a packet with the
/// growing duration (the first with the marker bit), then the end packet three times.
#[derive(Debug, Clone)]
pub struct TelephoneEventSender {
    event: u8,
    total: u32,
    step: u32,
    sent: u32,
    end_sent: u32,
    /// Volume in -dBm0.
    pub volume: u8,
}

impl TelephoneEventSender {
    /// Starts an event lasting `duration_units` (RTP units), sent every `ptime_units`.
    pub fn new(event: u8, duration_units: u32, ptime_units: u32) -> Self {
        TelephoneEventSender {
            event,
            total: duration_units.clamp(ptime_units.max(1), 0xffff),
            step: ptime_units.max(1),
            sent: 0,
            end_sent: 0,
            volume: 10,
        }
    }

    /// The next packet payload and whether it carries the marker bit; `None` when done.
    pub fn next_packet(&mut self) -> Option<([u8; 4], bool)> {
        if self.end_sent >= 3 {
            return None;
        }
        let marker = self.sent == 0;
        self.sent = (self.sent + self.step).min(self.total);
        let end = self.sent >= self.total;
        if end {
            self.end_sent += 1;
        }
        let ev = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.sent as u16,
        };
        Some((ev.to_bytes(), marker))
    }

    /// True once all packets were produced.
    pub fn is_done(&self) -> bool {
        self.end_sent >= 3
    }
}

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// In-band DTMF detector over frames of PCM (any rate; 20 ms frames recommended).
#[derive(Debug, Clone)]
pub struct InbandDtmfDetector {
    rate: u32,
    candidate: Option<char>,
    run: u32,
    reported: Option<char>,
    gap: u32,
}

impl InbandDtmfDetector {
    /// Creates a detector for PCM at `rate`.
    pub fn new(rate: u32) -> Self {
        InbandDtmfDetector {
            rate,
            candidate: None,
            run: 0,
            reported: None,
            gap: 0,
        }
    }

    fn classify(&self, frame: &[i16]) -> Option<char> {
        let total = crate::dsp::mean_power(frame);
        // below about -45 dBm0 per tone: nothing
        if total < 2.0e4 {
            return None;
        }
        let r: Vec<f64> = ROWS
            .iter()
            .map(|&f| goertzel_power(frame, self.rate, f))
            .collect();
        let c: Vec<f64> = COLS
            .iter()
            .map(|&f| goertzel_power(frame, self.rate, f))
            .collect();
        let best = |v: &[f64]| {
            let mut idx = 0;
            for i in 1..v.len() {
                if v[i] > v[idx] {
                    idx = i;
                }
            }
            let second = v
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != idx)
                .map(|(_, &p)| p)
                .fold(0.0f64, f64::max);
            (idx, v[idx], second)
        };
        let (ri, rp, r2) = best(&r);
        let (ci, cp, c2) = best(&c);
        // each tone clearly dominates its group (6 dB)
        if rp < 4.0 * r2 || cp < 4.0 * c2 {
            return None;
        }
        // twist within 8 dB either way
        if rp > 6.3 * cp || cp > 6.3 * rp {
            return None;
        }
        // both tones carry most of the energy (a sine of amplitude A has mean power
        // A²/2 and Goertzel power about A²/4)
        if 2.0 * (rp + cp) < 0.6 * total {
            return None;
        }
        Some(KEYPAD[ri][ci])
    }

    /// Feeds a frame; returns a digit once when it has been present in two frames in a row.
    pub fn process(&mut self, frame: &[i16]) -> Option<char> {
        let d = self.classify(frame);
        if d.is_some() && d == self.candidate {
            self.run += 1;
        } else {
            self.candidate = d;
            self.run = u32::from(d.is_some());
        }
        match d {
            None => {
                self.gap += 1;
                if self.gap >= 2 {
                    self.reported = None;
                }
                None
            }
            Some(ch) => {
                self.gap = 0;
                if self.run >= 2 && self.reported != Some(ch) {
                    self.reported = Some(ch);
                    Some(ch)
                } else {
                    None
                }
            }
        }
    }
}

/// Generates a DTMF tone pair for `digit` (for tests and for in-band playout).
pub fn dtmf_tone(digit: char, rate: u32, n: usize, start: usize) -> Option<Vec<i16>> {
    let (ri, ci) = KEYPAD.iter().enumerate().find_map(|(ri, row)| {
        row.iter()
            .position(|&d| d == digit.to_ascii_uppercase())
            .map(|ci| (ri, ci))
    })?;
    let a = crate::dsp::tone(ROWS[ri], rate, n, 6000.0, start);
    let b = crate::dsp::tone(COLS[ci], rate, n, 6000.0, start);
    Some(
        a.iter()
            .zip(&b)
            .map(|(&x, &y)| x.saturating_add(y))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4733_roundtrip_and_dedup() {
        let mut s = TelephoneEventSender::new(event_code('#').unwrap(), 800, 160);
        let mut pkts = Vec::new();
        while let Some(p) = s.next_packet() {
            pkts.push(p);
        }
        // 5 packets of growing duration (last one is end) + 2 more end packets
        assert_eq!(pkts.len(), 7);
        assert!(pkts[0].1);
        assert!(pkts[1..].iter().all(|p| !p.1));
        let last = TelephoneEvent::parse(&pkts[6].0).unwrap();
        assert!(last.end);
        assert_eq!(last.duration, 800);
        assert_eq!(last.digit(), Some('#'));
        let mut r = TelephoneEventReceiver::default();
        let digits: Vec<char> = pkts
            .iter()
            .filter_map(|p| r.on_packet(1000, &p.0))
            .collect();
        assert_eq!(digits, vec!['#']);
        // next event, new timestamp
        assert_eq!(r.on_packet(2000, &pkts[0].0), Some('#'));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        assert_eq!(event_code('d'), Some(15));
    }

    #[test]
    fn inband_detects_each_digit_once() {
        for rate in [8000u32, 16000, 48000] {
            let mut det = InbandDtmfDetector::new(rate);
            let frame = rate as usize / 50;
            let mut got = Vec::new();
            let mut pos = 0;
            for d in "159#*0D".chars() {
                let t = dtmf_tone(d, rate, frame * 5, pos).unwrap();
                pos += t.len();
                for f in t.chunks(frame) {
                    got.extend(det.process(f));
                }
                for _ in 0..3 {
                    got.extend(det.process(&vec![0; frame]));
                }
            }
            assert_eq!(got.iter().collect::<String>(), "159#*0D", "rate {rate}");
        }
    }

    #[test]
    fn speech_like_tones_are_not_digits() {
        let mut det = InbandDtmfDetector::new(8000);
        let t = crate::dsp::tone(440.0, 8000, 8000, 8000.0, 0);
        assert!(t.chunks(160).all(|f| det.process(f).is_none()));
    }
}
