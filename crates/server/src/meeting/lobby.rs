//! Keying in a room's PIN: keys and time in, a verdict out. A right PIN is complete as soon as
//! it is keyed; a wrong one on `#` or after a pause, so `1234#` and `12345#` each cost one
//! try. A lone `#` (the access menu's, or one after a PIN that was already taken) is nothing.
//! A caller who keys nothing is asked again, then told goodbye; nobody waits forever.
//! A complete PIN is judged by the caller of this module under the room's limiter (one slot
//! per attempt, per room and per address), then told back here: [`PinEntry::wrong`].

use std::time::{Duration, Instant};

/// Wrong PINs before the call ends.
pub const MAX_TRIES: u8 = 3;
/// Silence before the PIN prompt is repeated (the default of `pin_timeout_seconds`).
pub const REPROMPT_AFTER: Duration = Duration::from_secs(10);
/// Repeats of the prompt before goodbye.
pub const MAX_REPROMPTS: u8 = 2;
/// A pause after some digits completes the PIN, as `#` would.
pub const PAUSE_COMPLETES: Duration = Duration::from_secs(5);
/// Nobody stays in the lobby longer than this.
pub const MAX_STAY: Duration = Duration::from_secs(90);
/// Longest PIN kept.
const MAX_DIGITS: usize = 16;

/// What a key or the clock decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep listening.
    Pending,
    /// A PIN is complete: right or not (to be counted by the limiter, then, when wrong,
    /// told with [`PinEntry::wrong`]).
    Complete { right: bool },
    /// Wrong; ask again.
    Wrong,
    /// Wrong for the last time: the call ends.
    TooMany,
    /// Nothing keyed in for a while: say the prompt again.
    Reprompt,
    /// Waited too long: goodbye.
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct PinEntry {
    /// Silence before the prompt is repeated.
    reprompt_after: Duration,
    digits: String,
    tries: u8,
    reprompts: u8,
    arrived: Instant,
    /// The last key, or the last prompt: what the pause is measured from.
    last: Instant,
}

impl PinEntry {
    pub fn new(now: Instant, reprompt_after: Duration) -> PinEntry {
        PinEntry {
            reprompt_after,
            digits: String::new(),
            tries: 0,
            reprompts: 0,
            arrived: now,
            last: now,
        }
    }

    pub fn tries(&self) -> u8 {
        self.tries
    }

    pub fn key(&mut self, now: Instant, key: char, pin: &str) -> Verdict {
        self.last = now;
        match key {
            '*' => {
                self.digits.clear();
                Verdict::Pending
            }
            '#' if self.digits.is_empty() => Verdict::Pending,
            '#' => self.complete(pin),
            d if d.is_ascii_digit() => {
                if self.digits.len() < MAX_DIGITS {
                    self.digits.push(d);
                }
                if self.digits == pin {
                    self.complete(pin)
                } else {
                    Verdict::Pending
                }
            }
            _ => Verdict::Pending,
        }
    }

    fn complete(&mut self, pin: &str) -> Verdict {
        let right = std::mem::take(&mut self.digits) == pin;
        Verdict::Complete { right }
    }

    /// A complete PIN was wrong: one try fewer.
    pub fn wrong(&mut self) -> Verdict {
        self.tries += 1;
        if self.tries >= MAX_TRIES {
            Verdict::TooMany
        } else {
            Verdict::Wrong
        }
    }

    /// When [`PinEntry::tick`] has something to decide.
    pub fn deadline(&self) -> Instant {
        let pause = if self.digits.is_empty() {
            self.reprompt_after
        } else {
            PAUSE_COMPLETES
        };
        (self.last + pause).min(self.arrived + MAX_STAY)
    }

    /// The clock: a pause after digits completes them; silence repeats the prompt, then
    /// gives up.
    pub fn tick(&mut self, now: Instant, pin: &str) -> Verdict {
        if now >= self.arrived + MAX_STAY {
            return Verdict::GiveUp;
        }
        if now < self.deadline() {
            return Verdict::Pending;
        }
        self.last = now;
        if !self.digits.is_empty() {
            return self.complete(pin);
        }
        if self.reprompts >= MAX_REPROMPTS {
            return Verdict::GiveUp;
        }
        self.reprompts += 1;
        Verdict::Reprompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_right_pin_is_taken_at_once_and_a_lone_hash_is_nothing() {
        let t = Instant::now();
        let mut p = PinEntry::new(t, REPROMPT_AFTER);
        assert_eq!(p.key(t, '#', "1234"), Verdict::Pending, "the menu's #");
        for d in ['1', '2', '3'] {
            assert_eq!(p.key(t, d, "1234"), Verdict::Pending);
        }
        assert_eq!(p.key(t, '4', "1234"), Verdict::Complete { right: true });
        assert_eq!(p.tries(), 0);
    }

    /// Keys a sequence; a complete wrong PIN is counted as the actor does.
    fn keyed(p: &mut PinEntry, t: Instant, keys: &str, pin: &str) -> Vec<Verdict> {
        let mut out = Vec::new();
        for d in keys.chars() {
            match p.key(t, d, pin) {
                Verdict::Complete { right: false } => out.push(p.wrong()),
                Verdict::Pending => {}
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn a_wrong_pin_costs_one_try_with_or_without_the_hash() {
        let t = Instant::now();
        let mut p = PinEntry::new(t, REPROMPT_AFTER);
        assert_eq!(keyed(&mut p, t, "4321#", "1234"), [Verdict::Wrong]);
        assert_eq!(p.tries(), 1, "4321# is one try");
        assert_eq!(keyed(&mut p, t, "12345#", "9999"), [Verdict::Wrong]);
        assert_eq!(p.tries(), 2, "12345# is one try");
        assert!(keyed(&mut p, t, "5555", "1234").is_empty());
        assert_eq!(
            p.tick(t + PAUSE_COMPLETES, "1234"),
            Verdict::Complete { right: false },
            "a pause completes the third"
        );
        assert_eq!(p.wrong(), Verdict::TooMany);
    }

    #[test]
    fn silence_is_asked_again_then_goodbye() {
        let t = Instant::now();
        let mut p = PinEntry::new(t, REPROMPT_AFTER);
        assert_eq!(p.tick(t + Duration::from_secs(1), "1"), Verdict::Pending);
        let first = p.deadline();
        assert_eq!(p.tick(first, "1"), Verdict::Reprompt);
        let second = p.deadline();
        assert_eq!(p.tick(second, "1"), Verdict::Reprompt);
        assert_eq!(p.tick(p.deadline(), "1"), Verdict::GiveUp);
    }

    #[test]
    fn nobody_stays_longer_than_the_limit_however_they_key() {
        let t = Instant::now();
        let mut p = PinEntry::new(t, REPROMPT_AFTER);
        let mut now = t;
        while now < t + MAX_STAY {
            now += Duration::from_secs(4);
            let _ = p.key(now, '*', "1");
        }
        assert!(p.deadline() <= t + MAX_STAY);
        assert_eq!(p.tick(t + MAX_STAY, "1"), Verdict::GiveUp);
    }
}
