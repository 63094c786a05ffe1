//! Codecs (one 20 ms frame), the resampler and the jitter buffer.
//!
//! Times are CPU time of the benchmarking thread.
//!
//! Run: `cargo bench -p conclave-media --bench codecs`

use std::hint::black_box;
use std::time::Duration;

use conclave_media::codec::{CodecConfig, CodecKind};
use conclave_media::dsp::tone;
use conclave_media::jitter::{JitterBuffer, JitterConfig};
use conclave_media::resample::Resampler;
use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use common::ThreadCpuTime;

fn codecs(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("codec_20ms");
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    for (kind, rate, name) in [
        (CodecKind::Pcmu, 8000, "pcmu"),
        (CodecKind::Pcma, 8000, "pcma"),
        (CodecKind::G722, 16000, "g722"),
        (CodecKind::Opus, 48000, "opus48k"),
        (CodecKind::Opus, 16000, "opus16k"),
        (CodecKind::Opus, 48000, "opus48k_c5"),
    ] {
        let mut cfg = CodecConfig::new(kind, rate);
        if name.ends_with("_c5") {
            cfg.complexity = 5;
        }
        let n = cfg.pcm_rate as usize / 50;
        let pcm = tone(440.0, cfg.pcm_rate, n, 8000.0, 0);
        let mut enc = cfg.encoder().unwrap();
        let mut dec = cfg.decoder().unwrap();
        let mut payload = Vec::new();
        enc.encode(&pcm, &mut payload).unwrap();
        let mut out = Vec::with_capacity(1500);
        g.bench_function(format!("{name}_encode"), |b| {
            b.iter(|| {
                out.clear();
                enc.encode(black_box(&pcm), &mut out).unwrap();
            })
        });
        let mut pcm_out = Vec::with_capacity(n);
        g.bench_function(format!("{name}_decode"), |b| {
            b.iter(|| {
                pcm_out.clear();
                dec.decode(black_box(&payload), &mut pcm_out).unwrap();
            })
        });
    }
    g.finish();
}

fn resample(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("resample_20ms");
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    for (from, to) in [
        (8000u32, 48000u32),
        (48000, 8000),
        (16000, 48000),
        (48000, 16000),
    ] {
        let mut r = Resampler::new(from, to);
        let input = tone(440.0, from, from as usize / 50, 8000.0, 0);
        let mut out = Vec::with_capacity(1000);
        g.bench_function(format!("{from}_to_{to}"), |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&input), &mut out);
            })
        });
    }
    g.finish();
}

fn jitter(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("jitter_buffer");
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    let mut jb = JitterBuffer::new(8000, JitterConfig::default());
    let payload = [0xffu8; 160];
    let mut i: u32 = 0;
    g.bench_function("insert_pop_20ms", |b| {
        b.iter(|| {
            // mild reordering: swap every 4th pair
            let k = if i % 4 == 1 {
                i + 1
            } else if i % 4 == 2 {
                i - 1
            } else {
                i
            };
            let now = Duration::from_millis(20 * i as u64);
            jb.insert(k.wrapping_mul(160), 160, &payload, now);
            black_box(jb.pop(now));
            i += 1;
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = codecs, resample, jitter
}
criterion_main!(benches);
