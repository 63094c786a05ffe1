//! One 20 ms mixer tick (packets in for every member + tick) for 10, 100 and 1000
//! members with 1 and 3 active speakers, G.711 µ-law and Opus.
//!
//! G.711 members are plain SIP phones: every member sends a packet every 20 ms
//! (silence for the listeners) and no audio-level extension, so every member's
//! packet is decoded for voice activity. Opus members are browsers: they send
//! the RFC 6464 audio level, so silent members are not decoded; the
//! `opus_nolevel` cases are Opus phones without it whose listeners send room
//! noise (so everyone is decoded every frame: the worst case).
//!
//! Times are CPU time of the benchmarking thread (not wall time).
//!
//! Run: `cargo bench -p conclave-media --bench mixer`

use std::hint::black_box;
use std::time::Duration;

use conclave_media::codec::{CodecConfig, CodecKind};
use conclave_media::dsp::tone;
use conclave_media::mixer::{MemberConfig, Mixer, MixerConfig};
use conclave_media::rtp::RtpHeader;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;
use common::ThreadCpuTime;

struct Setup {
    conf: Mixer,
    /// Per member: a ring of ready packets (header patched with seq/ts each tick).
    packets: Vec<Vec<Vec<u8>>>,
    now: Duration,
    n: usize,
    tick: usize,
}

fn setup(kind: CodecKind, members: usize, speakers: usize, level_ext: bool) -> Setup {
    let mut conf = Mixer::new(MixerConfig::default());
    let codec = CodecConfig::new(kind, 48000);
    let frame = codec.pcm_rate as usize / 50;
    let opus = kind == CodecKind::Opus && level_ext;
    // pre-encode 50 frames of tone for speakers and of silence for listeners
    let encode = |freq: Option<f64>| -> Vec<Vec<u8>> {
        let mut enc = codec.encoder().unwrap();
        (0..50)
            .map(|i| {
                let pcm = match freq {
                    Some(f) => tone(f, codec.pcm_rate, frame, 8000.0, i * frame),
                    // without the level extension, listeners send room noise (about
                    // -50 dBov), the worst case: a codec cannot tell it from voice
                    None if kind == CodecKind::Opus && !level_ext => {
                        let mut x = (i as u32 + 1).wrapping_mul(2_654_435_761);
                        (0..frame)
                            .map(|_| {
                                x ^= x << 13;
                                x ^= x >> 17;
                                x ^= x << 5;
                                (x % 200) as i16 - 100
                            })
                            .collect()
                    }
                    None => vec![0; frame],
                };
                let mut p = Vec::new();
                enc.encode(&pcm, &mut p).unwrap();
                p
            })
            .collect()
    };
    let silence = encode(None);
    let mut packets = Vec::new();
    for id in 0..members {
        let mut mc = MemberConfig::new(kind, id as u32 + 1);
        if opus {
            mc.audio_level_ext = Some(1);
        }
        conf.add_member(id as u64, mc.clone(), Duration::ZERO)
            .unwrap();
        let speaking = id < speakers;
        let payloads = if speaking {
            encode(Some(440.0 * (id + 1) as f64))
        } else {
            silence.clone()
        };
        let pk = payloads
            .iter()
            .map(|p| {
                let mut h = RtpHeader {
                    payload_type: mc.payload_type,
                    ssrc: 0x10000 + id as u32,
                    ..Default::default()
                };
                if opus {
                    h.extensions
                        .push((1, vec![if speaking { 0x80 | 20 } else { 127 }]));
                }
                h.to_vec(p)
            })
            .collect();
        packets.push(pk);
    }
    let mut s = Setup {
        conf,
        packets,
        now: Duration::ZERO,
        n: frame,
        tick: 0,
    };
    // warm up: fill jitter buffers, start talkers
    for _ in 0..20 {
        step(&mut s);
    }
    s
}

fn step(s: &mut Setup) -> usize {
    let units = if s.n == 960 { 960u32 } else { 160 };
    let seq = s.tick as u16;
    let ts = (s.tick as u32).wrapping_mul(units);
    for (id, ring) in s.packets.iter_mut().enumerate() {
        let k = s.tick % ring.len();
        let p = &mut ring[k];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        let _ = s.conf.handle_rtp(s.now, id as u64, None, p);
    }
    let out = s.conf.tick(s.now);
    s.now += Duration::from_millis(20);
    s.tick += 1;
    out.transmits.len()
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("mixer_tick");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for (kind, name) in [(CodecKind::Pcmu, "pcmu"), (CodecKind::Opus, "opus")] {
        for members in [10usize, 100, 1000] {
            for speakers in [1usize, 3] {
                let mut s = setup(kind, members, speakers, true);
                g.bench_function(
                    BenchmarkId::new(format!("{name}_{speakers}spk"), members),
                    |b| b.iter(|| black_box(step(&mut s))),
                );
            }
        }
    }
    // the goal sizes: 3,000 G.711 and 250 Opus members with 3 talking
    for (kind, name, members) in [
        (CodecKind::Pcmu, "pcmu", 3000usize),
        (CodecKind::Opus, "opus", 250),
    ] {
        let mut s = setup(kind, members, 3, true);
        g.bench_function(BenchmarkId::new(format!("{name}_3spk"), members), |b| {
            b.iter(|| black_box(step(&mut s)))
        });
    }
    // Opus phones that send no audio level: every member is decoded for voice activity
    for members in [100usize, 1000] {
        let mut s = setup(CodecKind::Opus, members, 3, false);
        g.bench_function(BenchmarkId::new("opus_nolevel_3spk", members), |b| {
            b.iter(|| black_box(step(&mut s)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
