//! The composed picture's cost per frame (docs/performance.md): drawing a 720p canvas of
//! 1+7 and 1+21 tiles from the tiles' last pictures, encoding it once in H.264 (openh264,
//! constrained baseline, real time), and decoding one tile's 960×540 camera stream (what each
//! visible tile costs per frame). The pictures move (a gradient that shifts every frame), so
//! the encoder works as it would on cameras, not on a still image.
//!
//! Times are CPU time of the benchmarking thread. At 30 fps a canvas costs
//! 30 × (compose + encode + Σ decode of its visible tiles) per second.
//!
//! Run: `cargo bench -p conclave-media --bench compose`

use std::hint::black_box;
use std::time::Duration;

use conclave_media::video::compose::Composer;
use conclave_media::video::rtp::packetize_h264;
use conclave_media::video::{StreamKey, StreamKind, Tile, TileSize, VideoCodec};
use conclave_video_codecs::{H264Decoder, H264Encoder, Picture, annex_b};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod common;
use common::ThreadCpuTime;

/// A picture with a gradient shifted by `step` (moving content, like a camera's).
fn moving(width: usize, height: usize, step: usize) -> Picture {
    let mut p = Picture::filled(width, height, (128, 128, 128));
    for y in 0..height {
        for x in 0..width {
            p.y[y * width + x] = ((x + y + step * 3) % 220 + 16) as u8;
        }
    }
    for y in 0..height / 2 {
        for x in 0..width / 2 {
            p.u[y * (width / 2) + x] = ((x * 2 + step) % 200 + 28) as u8;
        }
    }
    p
}

fn tiles(big: usize, small: usize) -> Vec<Tile> {
    (0..big + small)
        .map(|i| Tile {
            stream: Some(StreamKey {
                member: i as u64 + 1,
                kind: StreamKind::Camera,
            }),
            size: if i < big {
                TileSize::Big
            } else {
                TileSize::Small
            },
        })
        .collect()
}

/// A composer whose tiles have had the pictures the SFU sends them: the full 960×540 layer
/// for a large tile, the quarter (240×135 → 240×134 even) for a small one.
fn composer(big: usize, small: usize) -> Composer {
    let mut c = Composer::new(1280, 720);
    c.set_tiles(tiles(big, small));
    for tile in 0..big + small {
        let (w, h) = if tile < big { (960, 540) } else { (240, 134) };
        let mut enc = H264Encoder::new(w, h, 30.0, 1_500_000, 300).expect("encoder");
        let nals = enc.encode(&moving(w, h, tile), true).expect("encode");
        for (i, (p, m)) in packetize_h264(&nals, 1200, true).iter().enumerate() {
            c.push(tile, VideoCodec::H264, i as u64, *m, p)
                .expect("push");
        }
    }
    c
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("compose");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for (name, big, small) in [("1+7", 1, 7), ("1+21", 1, 21)] {
        let mut composer = composer(big, small);
        g.bench_function(BenchmarkId::new("draw_720p", name), |b| {
            b.iter(|| black_box(composer.compose().y.len()))
        });
    }
    // one encode per canvas: moving 720p pictures, 2 Mbit/s, a keyframe every 10 s
    let frames: Vec<Picture> = (0..30).map(|i| moving(1280, 720, i)).collect();
    let mut encoder = H264Encoder::new(1280, 720, 30.0, 2_000_000, 300).expect("encoder");
    let mut n = 0;
    g.bench_function("encode_h264_720p", |b| {
        b.iter(|| {
            n = (n + 1) % frames.len();
            black_box(encoder.encode(&frames[n], false).expect("encode").len())
        })
    });
    // one visible tile's decode per frame: the large tile's 960×540 layer, a small tile's
    // 240×134
    for (name, w, h, rate) in [
        ("decode_h264_540p", 960, 540, 1_500_000),
        ("decode_h264_134p", 240, 134, 150_000),
    ] {
        let mut enc = H264Encoder::new(w, h, 30.0, rate, 300).expect("encoder");
        let stream: Vec<Vec<u8>> = (0..60)
            .map(|i| annex_b(&enc.encode(&moving(w, h, i), i == 0).expect("encode")))
            .collect();
        let mut decoder = H264Decoder::new().expect("decoder");
        let mut k = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                if k == 0 {
                    decoder = H264Decoder::new().expect("decoder");
                }
                let out = decoder.decode(&stream[k]).expect("decode");
                k = (k + 1) % stream.len();
                black_box(out.is_some())
            })
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
