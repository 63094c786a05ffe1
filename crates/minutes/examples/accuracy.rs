//! How well the minutes hear: recognizes a fixed set of spoken sentences and prints the
//! English word error rate, the Chinese character error rate and the real-time factor.
//! benches/minutes-accuracy.sh makes the sentences' audio (espeak-ng) and runs it:
//!   accuracy <model> <sentences.tsv: language TAB reference TAB file.wav> [beam] [threads] [languages]

use conclave_minutes::score::{char_error_rate, word_error_rate};
use conclave_minutes::{Recognizer, Settings};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: accuracy <model> <sentences.tsv> [beam] [threads] [languages]".into());
    }
    let beam = args.get(3).map_or(Ok(5), |b| b.parse())?;
    let threads = args.get(4).map_or(Ok(2), |t| t.parse())?;
    let recognizer = Recognizer::load(std::path::Path::new(&args[1]))?;
    let mut session = recognizer.session()?;
    let mut settings = Settings {
        threads,
        beam,
        ..Settings::default()
    };
    if let Some(languages) = args.get(5) {
        settings.languages = languages.split(',').map(str::to_owned).collect();
    }
    // each speaker's usual language known (as users' profiles tell it), or not
    let hinted = std::env::var_os("USUAL_LANGUAGE").is_some();
    let list = std::fs::read_to_string(&args[2])?;
    let (mut audio_s, mut busy_s) = (0.0, 0.0);
    let mut rates: std::collections::BTreeMap<String, (f64, usize, usize)> = Default::default();
    for row in list.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let [language, reference, wav] = cols[..] else {
            return Err(format!("bad row: {row}").into());
        };
        let samples = read_wav_16k(wav)?;
        audio_s += samples.len() as f64 / 16_000.0;
        let started = Instant::now();
        let usual = hinted.then_some(language);
        let got = session.recognize(&samples, &settings, usual)?;
        busy_s += started.elapsed().as_secs_f64();
        let rate = if language == "zh" {
            char_error_rate(reference, &got.text)
        } else {
            word_error_rate(reference, &got.text)
        };
        let entry = rates.entry(language.to_owned()).or_default();
        entry.0 += rate;
        entry.1 += 1;
        if got.language != language {
            entry.2 += 1;
        }
        println!(
            "{language} {:>5.1}% | {reference} | {} [{}]",
            rate * 100.0,
            got.text,
            got.language
        );
    }
    for (language, (sum, n, wrong)) in &rates {
        let what = if language == "zh" { "CER" } else { "WER" };
        println!(
            "{language}: {what} {:.1} % over {n} sentences; language mistaken {wrong} times",
            sum / *n as f64 * 100.0
        );
    }
    println!(
        "beam {beam}, {threads} threads: {audio_s:.1} s of speech in {busy_s:.1} s (real-time factor {:.2})",
        busy_s / audio_s
    );
    Ok(())
}

/// A 16-bit mono WAV file at any rate, as 16 kHz samples.
fn read_wav_16k(path: &str) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{path}: not a WAV file").into());
    }
    let (mut rate, mut at, mut data) = (0u32, 12, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into()?) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " && body.len() >= 16 {
            rate = u32::from_le_bytes(body[4..8].try_into()?);
        } else if id == b"data" {
            data = Some(body);
        }
        at += 8 + len + (len & 1);
    }
    let data = data.ok_or(format!("{path}: no data"))?;
    let input: Vec<i16> = data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut out = Vec::new();
    conclave_media::resample::Resampler::new(rate.max(1), 16_000).process(&input, &mut out);
    Ok(out.iter().map(|&s| f32::from(s) / 32768.0).collect())
}
