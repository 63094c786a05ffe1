//! Voice activity / talker detection with hysteresis, from RFC 6464 audio levels
//! or from the energy of decoded audio.

/// Thresholds in -dBov (0 is loudest, 127 silence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VadConfig {
    /// A frame at or above this loudness (level <= on_level) counts as voice.
    pub on_level: u8,
    /// A frame quieter than this (level > off_level) counts as silence.
    pub off_level: u8,
    /// Consecutive voice frames to start talking.
    pub start_frames: u32,
    /// Consecutive silent frames to stop talking (hang-over).
    pub stop_frames: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            on_level: 45,
            off_level: 52,
            start_frames: 2,
            stop_frames: 20,
        }
    }
}

/// A talk state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// The member started talking.
    TalkStart,
    /// The member stopped talking.
    TalkStop,
}

/// Per-member detector.
#[derive(Debug, Clone, Default)]
pub struct Vad {
    cfg: VadConfig,
    talking: bool,
    voice_run: u32,
    silence_run: u32,
    last_level: u8,
}

impl Vad {
    /// Creates a detector.
    pub fn new(cfg: VadConfig) -> Self {
        Vad {
            cfg,
            talking: false,
            voice_run: 0,
            silence_run: 0,
            last_level: 127,
        }
    }

    /// Its thresholds.
    pub fn config(&self) -> VadConfig {
        self.cfg
    }

    /// True while the member is talking.
    pub fn is_talking(&self) -> bool {
        self.talking
    }

    /// The last level fed (-dBov).
    pub fn last_level(&self) -> u8 {
        self.last_level
    }

    /// True when a level is loud enough to be voice.
    pub fn is_voice(&self, level: u8) -> bool {
        level <= self.cfg.on_level
    }

    /// Feeds the level of one frame (-dBov; 127 for a missing frame).
    pub fn update(&mut self, level: u8) -> Option<VadEvent> {
        self.last_level = level;
        if level <= self.cfg.on_level {
            self.voice_run += 1;
            self.silence_run = 0;
        } else if level > self.cfg.off_level {
            self.silence_run += 1;
            self.voice_run = 0;
        } else {
            // between both thresholds: keep the current state
            self.voice_run = 0;
            self.silence_run = if self.talking { 0 } else { self.silence_run };
        }
        if !self.talking && self.voice_run >= self.cfg.start_frames {
            self.talking = true;
            return Some(VadEvent::TalkStart);
        }
        if self.talking && self.silence_run >= self.cfg.stop_frames {
            self.talking = false;
            return Some(VadEvent::TalkStop);
        }
        None
    }

    /// Forces the silent state (for example when a member is removed or muted),
    /// returning `TalkStop` if the member was talking.
    pub fn reset(&mut self) -> Option<VadEvent> {
        self.voice_run = 0;
        self.silence_run = 0;
        self.last_level = 127;
        if self.talking {
            self.talking = false;
            Some(VadEvent::TalkStop)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis() {
        let mut v = Vad::new(VadConfig::default());
        assert_eq!(v.update(30), None);
        assert_eq!(v.update(30), Some(VadEvent::TalkStart));
        // brief pauses and mid levels do not stop
        for _ in 0..10 {
            assert_eq!(v.update(80), None);
        }
        assert_eq!(v.update(48), None);
        for _ in 0..19 {
            assert_eq!(v.update(90), None);
        }
        assert_eq!(v.update(90), Some(VadEvent::TalkStop));
        // a single loud click does not start
        assert_eq!(v.update(10), None);
        assert_eq!(v.update(100), None);
        assert!(!v.is_talking());
    }
}
