//! Voice prompts in English and Mandarin, made by `scripts/make-prompts.sh` (espeak-ng) and
//! built into the binary: 16 kHz mono 16-bit WAV.

use conclave_store::model::Language;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    EnterPin,
    WrongPin,
    Welcome,
    First,
    Muted,
    Unmuted,
    RoomLocked,
    RoomFull,
    EndsSoon,
    Ended,
    /// "Participants in the meeting:", before the count's digits.
    Count,
    Digit(u8),
    /// The access number's menu: which room?
    EnterRoom,
    NoSuchRoom,
    Goodbye,
    RoomCreated,
    RoomDeleted,
    NotAllowed,
    MeetingLocked,
    MeetingUnlocked,
    RecordingStarted,
    RecordingStopped,
}

/// Sounds without words, the same in every language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sound {
    /// Someone joined the meeting.
    Join,
    /// Someone left.
    Leave,
    /// Played, looped, to a member alone in the meeting.
    Alone,
}

pub const RATE: u32 = 16_000;

macro_rules! wav {
    ($path:literal) => {
        include_bytes!(concat!("../../../assets/", $path, ".wav"))
    };
}

/// Each prompt's file in English and in Chinese.
const PROMPTS: [(Prompt, &[u8], &[u8]); 31] = [
    (
        Prompt::EnterPin,
        wav!("prompts/en/enter_pin"),
        wav!("prompts/zh/enter_pin"),
    ),
    (
        Prompt::WrongPin,
        wav!("prompts/en/wrong_pin"),
        wav!("prompts/zh/wrong_pin"),
    ),
    (
        Prompt::Welcome,
        wav!("prompts/en/welcome"),
        wav!("prompts/zh/welcome"),
    ),
    (
        Prompt::First,
        wav!("prompts/en/first"),
        wav!("prompts/zh/first"),
    ),
    (
        Prompt::Muted,
        wav!("prompts/en/muted"),
        wav!("prompts/zh/muted"),
    ),
    (
        Prompt::Unmuted,
        wav!("prompts/en/unmuted"),
        wav!("prompts/zh/unmuted"),
    ),
    (
        Prompt::RoomLocked,
        wav!("prompts/en/room_locked"),
        wav!("prompts/zh/room_locked"),
    ),
    (
        Prompt::RoomFull,
        wav!("prompts/en/room_full"),
        wav!("prompts/zh/room_full"),
    ),
    (
        Prompt::EndsSoon,
        wav!("prompts/en/ends_soon"),
        wav!("prompts/zh/ends_soon"),
    ),
    (
        Prompt::Ended,
        wav!("prompts/en/ended"),
        wav!("prompts/zh/ended"),
    ),
    (
        Prompt::Count,
        wav!("prompts/en/count"),
        wav!("prompts/zh/count"),
    ),
    (
        Prompt::Digit(0),
        wav!("prompts/en/d0"),
        wav!("prompts/zh/d0"),
    ),
    (
        Prompt::Digit(1),
        wav!("prompts/en/d1"),
        wav!("prompts/zh/d1"),
    ),
    (
        Prompt::Digit(2),
        wav!("prompts/en/d2"),
        wav!("prompts/zh/d2"),
    ),
    (
        Prompt::Digit(3),
        wav!("prompts/en/d3"),
        wav!("prompts/zh/d3"),
    ),
    (
        Prompt::Digit(4),
        wav!("prompts/en/d4"),
        wav!("prompts/zh/d4"),
    ),
    (
        Prompt::Digit(5),
        wav!("prompts/en/d5"),
        wav!("prompts/zh/d5"),
    ),
    (
        Prompt::Digit(6),
        wav!("prompts/en/d6"),
        wav!("prompts/zh/d6"),
    ),
    (
        Prompt::Digit(7),
        wav!("prompts/en/d7"),
        wav!("prompts/zh/d7"),
    ),
    (
        Prompt::Digit(8),
        wav!("prompts/en/d8"),
        wav!("prompts/zh/d8"),
    ),
    (
        Prompt::Digit(9),
        wav!("prompts/en/d9"),
        wav!("prompts/zh/d9"),
    ),
    (
        Prompt::EnterRoom,
        wav!("prompts/en/enter_room"),
        wav!("prompts/zh/enter_room"),
    ),
    (
        Prompt::NoSuchRoom,
        wav!("prompts/en/no_such_room"),
        wav!("prompts/zh/no_such_room"),
    ),
    (
        Prompt::Goodbye,
        wav!("prompts/en/goodbye"),
        wav!("prompts/zh/goodbye"),
    ),
    (
        Prompt::RoomCreated,
        wav!("prompts/en/room_created"),
        wav!("prompts/zh/room_created"),
    ),
    (
        Prompt::RoomDeleted,
        wav!("prompts/en/room_deleted"),
        wav!("prompts/zh/room_deleted"),
    ),
    (
        Prompt::NotAllowed,
        wav!("prompts/en/not_allowed"),
        wav!("prompts/zh/not_allowed"),
    ),
    (
        Prompt::MeetingLocked,
        wav!("prompts/en/meeting_locked"),
        wav!("prompts/zh/meeting_locked"),
    ),
    (
        Prompt::MeetingUnlocked,
        wav!("prompts/en/meeting_unlocked"),
        wav!("prompts/zh/meeting_unlocked"),
    ),
    (
        Prompt::RecordingStarted,
        wav!("prompts/en/recording_started"),
        wav!("prompts/zh/recording_started"),
    ),
    (
        Prompt::RecordingStopped,
        wav!("prompts/en/recording_stopped"),
        wav!("prompts/zh/recording_stopped"),
    ),
];

const SOUNDS: [(Sound, &[u8]); 3] = [
    (Sound::Join, wav!("sounds/join")),
    (Sound::Leave, wav!("sounds/leave")),
    (Sound::Alone, wav!("sounds/alone")),
];

/// The samples of a 16-bit PCM WAV file (its `data` chunk); empty if it is not one.
fn samples(wav: &[u8]) -> Vec<i16> {
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]) as usize;
        let body = &wav[at + 8..(at + 8 + len).min(wav.len())];
        if id == b"data" {
            return body
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    Vec::new()
}

/// A prompt's samples at [`RATE`], decoded once.
pub fn pcm(language: Language, prompt: Prompt) -> Arc<[i16]> {
    type Decoded = (Prompt, Arc<[i16]>, Arc<[i16]>);
    static DECODED: OnceLock<Vec<Decoded>> = OnceLock::new();
    let all = DECODED.get_or_init(|| {
        PROMPTS
            .iter()
            .map(|(p, en, zh)| (*p, samples(en).into(), samples(zh).into()))
            .collect()
    });
    all.iter()
        .find(|(p, _, _)| *p == prompt)
        .map(|(_, en, zh)| match language {
            Language::English => en.clone(),
            Language::Chinese => zh.clone(),
        })
        .unwrap_or_else(|| Arc::from(Vec::new()))
}

/// Several prompts one after the other, as one playback (a count: "participants", "1", "2").
pub fn sequence(language: Language, prompts: &[Prompt]) -> Arc<[i16]> {
    let mut out = Vec::new();
    for prompt in prompts {
        out.extend_from_slice(&pcm(language, *prompt));
    }
    out.into()
}

/// Decodes every prompt and sound now, so that the first caller does not wait for it.
pub fn preload() {
    for (prompt, _, _) in PROMPTS.iter() {
        let _ = pcm(Language::English, *prompt);
    }
    for (sound, _) in SOUNDS.iter() {
        let _ = self::sound(*sound);
    }
}

/// The prompts that say a number, digit by digit.
pub fn number(n: usize) -> Vec<Prompt> {
    n.to_string()
        .bytes()
        .map(|b| Prompt::Digit(b - b'0'))
        .collect()
}

/// A sound's samples at [`RATE`], decoded once.
pub fn sound(sound: Sound) -> Arc<[i16]> {
    static DECODED: OnceLock<Vec<(Sound, Arc<[i16]>)>> = OnceLock::new();
    let all = DECODED.get_or_init(|| {
        SOUNDS
            .iter()
            .map(|(s, wav)| (*s, samples(wav).into()))
            .collect()
    });
    all.iter()
        .find(|(s, _)| *s == sound)
        .map(|(_, pcm)| pcm.clone())
        .unwrap_or_else(|| Arc::from(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_is_speech_of_a_few_seconds() {
        for language in [Language::English, Language::Chinese] {
            for prompt in PROMPTS.map(|(p, _, _)| p) {
                let pcm = pcm(language, prompt);
                let seconds = pcm.len() as f64 / f64::from(RATE);
                assert!(
                    (0.3..15.0).contains(&seconds),
                    "{language:?} {prompt:?}: {seconds} s"
                );
                assert!(
                    pcm.iter().any(|s| s.unsigned_abs() > 5_000),
                    "{language:?} {prompt:?} is silent"
                );
            }
        }
    }

    #[test]
    fn sounds_and_numbers() {
        for s in [Sound::Join, Sound::Leave, Sound::Alone] {
            assert!(sound(s).len() > RATE as usize / 10, "{s:?}");
        }
        assert_eq!(
            number(205),
            [Prompt::Digit(2), Prompt::Digit(0), Prompt::Digit(5)]
        );
        let count = sequence(Language::English, &[Prompt::Count, Prompt::Digit(3)]);
        assert_eq!(
            count.len(),
            pcm(Language::English, Prompt::Count).len()
                + pcm(Language::English, Prompt::Digit(3)).len()
        );
    }

    #[test]
    fn a_file_without_data_gives_nothing() {
        assert!(samples(b"RIFF\\0\\0\\0\\0WAVEjunk").is_empty());
        assert!(samples(&[]).is_empty());
    }
}
