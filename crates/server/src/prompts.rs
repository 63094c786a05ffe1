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
}

pub const RATE: u32 = 16_000;

macro_rules! wav {
    ($lang:literal, $name:literal) => {
        include_bytes!(concat!(
            "../../../assets/prompts/",
            $lang,
            "/",
            $name,
            ".wav"
        ))
    };
}

const ALL: [Prompt; 6] = [
    Prompt::EnterPin,
    Prompt::WrongPin,
    Prompt::Welcome,
    Prompt::First,
    Prompt::Muted,
    Prompt::Unmuted,
];

fn file(language: Language, prompt: Prompt) -> &'static [u8] {
    match (language, prompt) {
        (Language::English, Prompt::EnterPin) => wav!("en", "enter_pin"),
        (Language::English, Prompt::WrongPin) => wav!("en", "wrong_pin"),
        (Language::English, Prompt::Welcome) => wav!("en", "welcome"),
        (Language::English, Prompt::First) => wav!("en", "first"),
        (Language::English, Prompt::Muted) => wav!("en", "muted"),
        (Language::English, Prompt::Unmuted) => wav!("en", "unmuted"),
        (Language::Chinese, Prompt::EnterPin) => wav!("zh", "enter_pin"),
        (Language::Chinese, Prompt::WrongPin) => wav!("zh", "wrong_pin"),
        (Language::Chinese, Prompt::Welcome) => wav!("zh", "welcome"),
        (Language::Chinese, Prompt::First) => wav!("zh", "first"),
        (Language::Chinese, Prompt::Muted) => wav!("zh", "muted"),
        (Language::Chinese, Prompt::Unmuted) => wav!("zh", "unmuted"),
    }
}

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

/// A prompt's samples, decoded once.
type Decoded = (Language, Prompt, Arc<[i16]>);

/// A prompt's samples at [`RATE`], decoded once.
pub fn pcm(language: Language, prompt: Prompt) -> Arc<[i16]> {
    static DECODED: OnceLock<Vec<Decoded>> = OnceLock::new();
    let all = DECODED.get_or_init(|| {
        [Language::English, Language::Chinese]
            .into_iter()
            .flat_map(|l| {
                ALL.into_iter()
                    .map(move |p| (l, p, samples(file(l, p)).into()))
            })
            .collect()
    });
    all.iter()
        .find(|(l, p, _)| *l == language && *p == prompt)
        .map(|(_, _, pcm)| pcm.clone())
        .unwrap_or_else(|| Arc::from(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_is_speech_of_a_few_seconds() {
        for language in [Language::English, Language::Chinese] {
            for prompt in ALL {
                let pcm = pcm(language, prompt);
                let seconds = pcm.len() as f64 / f64::from(RATE);
                assert!(
                    (0.5..15.0).contains(&seconds),
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
    fn a_file_without_data_gives_nothing() {
        assert!(samples(b"RIFF\\0\\0\\0\\0WAVEjunk").is_empty());
        assert!(samples(&[]).is_empty());
    }
}
