//! Whisper (whisper.cpp through `whisper-rs`) on one utterance at a time: 16 kHz mono
//! samples in, its language and text out. The speaker is known from the track the
//! utterance came from, so no diarization is needed; each utterance is short, so the
//! language is detected for it alone (a whole meeting's detection would turn its Chinese
//! parts into English), and only among the languages the server is told to expect.

use std::path::Path;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// The rate Whisper listens at.
pub const SAMPLE_RATE: u32 = 16_000;

/// Without a prompt, Whisper writes Mandarin in traditional characters as often as not;
/// a sentence in simplified characters steers it to simplified.
const ZH_PROMPT: &str = "以下是普通话的句子。";

/// Encoder positions (50 a second) beyond the utterance: see [`audio_ctx`].
const WINDOW_MARGIN: i32 = 300;

/// How sure Whisper's language detection must be to be taken alone.
const SURE: f32 = 0.8;

/// Shorter than this is no speech worth a line (a cough, a click).
const MIN_SAMPLES: usize = SAMPLE_RATE as usize / 4;

/// Whisper wants at least a second; shorter utterances are padded with silence.
const MIN_INPUT: usize = SAMPLE_RATE as usize + SAMPLE_RATE as usize / 10;

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
pub enum RecognizerError {
    #[error("the speech model {path} cannot be loaded: {reason}")]
    Load { path: String, reason: String },
    #[error("the speech model {0} is English only; minutes need the multilingual model")]
    NotMultilingual(String),
    #[error("no language of {0:?} is known to the model")]
    Languages(Vec<String>),
    #[error("speech recognition failed: {0}")]
    Whisper(#[from] whisper_rs::WhisperError),
}

/// How to recognize.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Threads whisper.cpp computes with.
    pub threads: usize,
    /// Beam width: beam search (about half the errors in Chinese) when above 1, greedy
    /// decoding otherwise (about three times faster).
    pub beam: usize,
    /// The languages a meeting may speak (Whisper codes: `en`, `zh`, …), the most likely
    /// first: detection chooses among these only.
    pub languages: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threads: 2,
            beam: 5,
            languages: vec!["zh".into(), "en".into()],
        }
    }
}

/// What one utterance said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognized {
    /// The language detected (a Whisper code).
    pub language: String,
    /// The text; empty when nothing was said.
    pub text: String,
}

/// A loaded model; shared by the sessions that recognize with it.
pub struct Recognizer {
    context: WhisperContext,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer").finish_non_exhaustive()
    }
}

impl Recognizer {
    /// Loads a ggml Whisper model (scripts/fetch-speech-model.sh makes one).
    pub fn load(path: &Path) -> Result<Recognizer, RecognizerError> {
        silence_whisper_logs();
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(RecognizerError::Load {
                path: shown,
                reason: "no such file".into(),
            });
        }
        let text = path.to_str().ok_or_else(|| RecognizerError::Load {
            path: shown.clone(),
            reason: "the path is not UTF-8".into(),
        })?;
        let context = WhisperContext::new_with_params(text, WhisperContextParameters::default())
            .map_err(|e| RecognizerError::Load {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if !context.is_multilingual() {
            return Err(RecognizerError::NotMultilingual(shown));
        }
        Ok(Recognizer { context })
    }

    /// A session: Whisper's working memory (tens of MB), reused utterance after
    /// utterance by one thread.
    pub fn session(&self) -> Result<Session<'_>, RecognizerError> {
        Ok(Session {
            recognizer: self,
            state: self.context.create_state()?,
        })
    }
}

/// One thread's recognizer.
pub struct Session<'a> {
    recognizer: &'a Recognizer,
    state: WhisperState,
}

impl Session<'_> {
    /// Recognizes one utterance (16 kHz mono, -1.0 to 1.0); `usual`: the language this
    /// speaker usually speaks (their profile's, or the room's), taken when Whisper is not
    /// sure which of the expected languages it hears.
    pub fn recognize(
        &mut self,
        audio: &[f32],
        settings: &Settings,
        usual: Option<&str>,
    ) -> Result<Recognized, RecognizerError> {
        let threads = settings.threads.max(1);
        let expected: Vec<(i32, String)> = settings
            .languages
            .iter()
            .filter_map(|l| whisper_rs::get_lang_id(l).map(|id| (id, l.clone())))
            .collect();
        let Some(first) = expected.first().map(|(_, l)| l.clone()) else {
            return Err(RecognizerError::Languages(settings.languages.clone()));
        };
        let mut padded;
        let audio = if audio.len() < MIN_INPUT {
            padded = audio.to_vec();
            padded.resize(MIN_INPUT, 0.0);
            &padded[..]
        } else {
            audio
        };
        if audio.iter().filter(|s| s.abs() > 0.003).count() < MIN_SAMPLES {
            return Ok(Recognized {
                language: first,
                text: String::new(),
            });
        }
        let mut candidates = self.detect(audio, &expected, threads)?;
        if candidates.len() > 1
            && let Some(usual) = usual.filter(|u| candidates.iter().any(|c| c == u))
        {
            candidates = vec![usual.to_owned()];
        }
        // Whisper's detection is sure of natural speech; when it is not (a synthetic or
        // telephone voice, a few words), the likelier of the two best transcripts wins
        let mut best: Option<(Recognized, f32)> = None;
        for language in candidates {
            let (text, score) = self.transcribe(audio, &language, settings, threads)?;
            if best.as_ref().is_none_or(|(_, s)| score > *s) {
                best = Some((Recognized { language, text }, score));
            }
        }
        Ok(best.map_or(
            Recognized {
                language: first,
                text: String::new(),
            },
            |(r, _)| r,
        ))
    }

    /// The utterance in `language`, and how likely the model found its words (mean log
    /// probability of the text's tokens).
    fn transcribe(
        &mut self,
        audio: &[f32],
        language: &str,
        settings: &Settings,
        threads: usize,
    ) -> Result<(String, f32), RecognizerError> {
        let strategy = if settings.beam > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: i32::try_from(settings.beam).unwrap_or(5),
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(i32::try_from(threads).unwrap_or(1));
        params.set_language(Some(language));
        params.set_no_context(true);
        params.set_no_timestamps(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_audio_ctx(audio_ctx(audio.len()));
        // no sampling at higher temperatures when a pass looks unsure: the same audio
        // gives the same minutes, and loops are cut by the token limit instead
        params.set_temperature_inc(0.0);
        params.set_max_tokens(max_tokens(audio.len()));
        quiet(&mut params);
        if language == "zh" {
            params.set_initial_prompt(ZH_PROMPT);
        }
        self.state.full(params, audio)?;
        let eot = self.recognizer.context.token_eot();
        let mut text = String::new();
        let (mut sum, mut count) = (0.0f32, 0u32);
        for segment in self.state.as_iter() {
            if let Ok(part) = segment.to_str_lossy() {
                text.push_str(part.trim());
                text.push(' ');
            }
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    let data = token.token_data();
                    if data.id < eot {
                        sum += data.plog;
                        count += 1;
                    }
                }
            }
        }
        let (text, looped) = collapse_loops(&tidy(&text, language));
        let score = if count == 0 || looped {
            f32::MIN
        } else {
            sum / count as f32
        };
        Ok((text, score))
    }

    /// The languages worth a transcript: the expected one Whisper is sure of, or the two
    /// likeliest of the expected.
    fn detect(
        &mut self,
        audio: &[f32],
        expected: &[(i32, String)],
        threads: usize,
    ) -> Result<Vec<String>, RecognizerError> {
        if expected.len() == 1 {
            return Ok(vec![expected[0].1.clone()]);
        }
        // a detection-only pass sets the encoder's window to this utterance (lang_detect
        // alone would use the last one's)
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(threads).unwrap_or(1));
        params.set_audio_ctx(audio_ctx(audio.len()));
        params.set_detect_language(true);
        quiet(&mut params);
        self.state.full(params, audio)?;
        let (_, probabilities) = self.state.lang_detect(0, threads)?;
        let mut ranked: Vec<(f32, &str)> = expected
            .iter()
            .map(|(id, l)| {
                let p = usize::try_from(*id)
                    .ok()
                    .and_then(|i| probabilities.get(i))
                    .copied()
                    .unwrap_or(0.0);
                (p, l.as_str())
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        if ranked[0].0 >= SURE {
            return Ok(vec![ranked[0].1.to_owned()]);
        }
        Ok(ranked
            .iter()
            .take(2)
            .map(|(_, l)| (*l).to_owned())
            .collect())
    }
}

/// The encoder's window for `samples`: Whisper always listens to 30 s (1500 positions),
/// which for a 3-s utterance is most of the work. A window just the utterance's length
/// loses much in Chinese (measured: CER 99 % against 62 % with 30 s); six seconds more
/// keep nearly all of it (66 %) at a third of the time (docs/minutes.md).
fn audio_ctx(samples: usize) -> i32 {
    let seconds = samples as f64 / f64::from(SAMPLE_RATE);
    ((seconds * 50.0).ceil() as i32 + WINDOW_MARGIN).min(1500)
}

/// Tokens an utterance may take: more than anyone says in that time (Chinese takes up to
/// two a character, five characters a second).
fn max_tokens(samples: usize) -> i32 {
    let seconds = samples as f64 / f64::from(SAMPLE_RATE);
    (seconds * 12.0).ceil() as i32 + 16
}

fn quiet(params: &mut FullParams) {
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
}

/// Whisper without its temperature fallback can loop ("好好好好好…", "here, here, here,
/// …"): a run of the same one to eight characters three times or more (a single
/// character: four) is kept once. Returns whether it looped.
pub fn collapse_loops(text: &str) -> (String, bool) {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let mut looped = false;
    let mut i = 0;
    'scan: while i < chars.len() {
        for unit in 1..=8usize {
            let min_repeats = if unit == 1 { 4 } else { 3 };
            if i + unit * min_repeats > chars.len() {
                break;
            }
            let pattern = &chars[i..i + unit];
            if pattern.iter().all(|c| c.is_whitespace()) {
                continue;
            }
            let mut repeats = 1;
            while i + unit * (repeats + 1) <= chars.len()
                && &chars[i + unit * repeats..i + unit * (repeats + 1)] == pattern
            {
                repeats += 1;
            }
            if repeats >= min_repeats {
                out.extend_from_slice(pattern);
                i += unit * repeats;
                looped = true;
                continue 'scan;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    let text: String = out.into_iter().collect();
    (text.trim().to_owned(), looped)
}

/// One line of text: spaces collapsed; in Chinese, none between two Chinese characters
/// (Whisper's segments are joined with one).
pub fn tidy(text: &str, language: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if language != "zh" {
        return words.join(" ");
    }
    let mut out = String::new();
    for word in words {
        let glue = match (out.chars().last(), word.chars().next()) {
            (Some(a), Some(b)) => !(is_cjk(a) || is_cjk(b)),
            _ => false,
        };
        if glue {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Chinese characters and punctuation (which take no spaces around them).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

/// whisper.cpp writes its progress to stderr; the server's log is for the server.
fn silence_whisper_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_loses_the_spaces_whisper_puts_between_segments() {
        assert_eq!(tidy(" 我们 开会。  明天 见 ", "zh"), "我们开会。明天见");
        assert_eq!(
            tidy("版本 2.0 发布 of Conclave", "zh"),
            "版本2.0发布of Conclave"
        );
        assert_eq!(tidy("  Hello   world ", "en"), "Hello world");
    }

    #[test]
    fn loops_are_kept_once() {
        assert_eq!(collapse_loops("翼翼翼翼翼翼翼翼翼翼"), ("翼".into(), true));
        assert_eq!(
            collapse_loops("Here, here, here, here, here,"),
            ("Here, here,".into(), true)
        );
        assert_eq!(
            collapse_loops("下午三天下午三天下午三天好"),
            ("下午三天好".into(), true)
        );
        assert_eq!(
            collapse_loops("Good morning, good morning."),
            ("Good morning, good morning.".into(), false)
        );
        assert_eq!(collapse_loops("1000 seats"), ("1000 seats".into(), false));
        assert_eq!(collapse_loops(""), (String::new(), false));
    }

    #[test]
    fn a_missing_model_says_which_file() {
        let err = Recognizer::load(Path::new("/nonexistent/ggml-base.bin")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/ggml-base.bin"),
            "{err}"
        );
    }
}
