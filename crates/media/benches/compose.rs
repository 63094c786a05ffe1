//! The composed picture's cost per frame (docs/performance.md): drawing a 720p canvas of
//! 1+7 and 1+21 tiles from the tiles' last pictures, encoding it once in H.264 (openh264,
//! constrained baseline, real time), and decoding one tile's 960×540 camera stream (what each
//! visible tile costs per frame). The pictures move (a gradient that shifts every frame), so
//! the encoder works as it would on cameras, not on a still image.
//!
//! Times are CPU time of the benchmarking thread. At 30 fps a canvas costs
//! 30 × (compose + encode + Σ decode of its visible tiles) per second.
//!
//! The rest of the path, per receiver: what each SIP video terminal adds to a canvas encoded
//! once (`fan_out`: the frame's packets with the terminal's RTP header, 100 terminals a frame),
//! the canvas scaled for a terminal of a lower level (`scale_720p_to_360p`), and what each
//! browser subscriber costs the SFU (`sfu_forward`: one camera packet to 50 viewers).
//!
//! Run: `cargo bench -p conclave-media --bench compose`

use std::hint::black_box;
use std::time::Duration;

use conclave_media::video::Layer;
use conclave_media::video::compose::Composer;
use conclave_media::video::rtp::packetize_h264;
use conclave_media::video::sfu::{Sfu, VideoPacket};
use conclave_media::video::sip_leg::{ComposedFrame, VideoLeg, VideoLegConfig};
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
        let mut enc = H264Encoder::new(w, h, 30.0, 1_500_000, 300, 0).expect("encoder");
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
    let mut encoder = H264Encoder::new(1280, 720, 30.0, 2_000_000, 300, 0).expect("encoder");
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
        let mut enc = H264Encoder::new(w, h, 30.0, rate, 300, 0).expect("encoder");
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
    // each terminal of a canvas: its RTP headers on the frame encoded once (a P frame of
    // moving content at 1.5 Mbit/s, slices under a packet as the composer's), 100 terminals
    let mut canvas = composer(1, 7);
    canvas.compose();
    let mut slices = H264Encoder::new(1280, 720, 30.0, 1_500_000, 300, 1100).expect("encoder");
    let mut nals = Vec::new();
    for i in 0..10 {
        let encoded = slices
            .encode(&moving(1280, 720, i), i == 0)
            .expect("encode");
        if !encoded.is_empty() {
            nals = encoded;
        }
    }
    let frame = ComposedFrame {
        size: (1280, 720),
        timestamp: 3000,
        keyframe: false,
        packets: packetize_h264(&nals, 1200, true),
    };
    let mut legs: Vec<VideoLeg> = (0..100u16)
        .map(|i| {
            VideoLeg::new(VideoLegConfig {
                payload_type: 96,
                packetization_mode: 1,
                size: (1280, 720),
                remote: Some(([127, 0, 0, 1], 20_000 + i).into()),
                known_ips: Vec::new(),
                remote_rtcp: None,
                rtcp_mux: true,
                sends: true,
                receives: true,
                ssrc: u32::from(i),
                initial_seq: i,
                initial_ts: 0,
            })
        })
        .collect();
    g.bench_function("fan_out_720p_frame_100_terminals", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for leg in &mut legs {
                leg.send(&frame, &mut |_, d| bytes += d.len());
            }
            black_box(bytes)
        })
    });
    g.bench_function("scale_720p_to_360p", |b| {
        b.iter(|| black_box(canvas.scaled(640, 360).y.len()))
    });
    // one camera packet to 50 browser viewers (each shows it in a tile)
    let mut sfu = Sfu::new();
    let camera = StreamKey {
        member: 1,
        kind: StreamKind::Camera,
    };
    sfu.set_tiles(
        Duration::ZERO,
        vec![Tile {
            stream: Some(camera),
            size: TileSize::Big,
        }],
    );
    for viewer in 2..52 {
        sfu.add_viewer(Duration::ZERO, viewer, 1);
    }
    let key = packetize_h264(
        &H264Encoder::new(320, 180, 30.0, 300_000, 300, 0)
            .expect("encoder")
            .encode(&moving(320, 180, 0), true)
            .expect("encode"),
        1200,
        true,
    );
    let payload = vec![0x41u8; 1100];
    let mut seq = 0u64;
    let mut now = Duration::ZERO;
    // the viewers' slots start at a keyframe
    for (p, m) in &key {
        sfu.route(
            now,
            camera,
            VideoPacket {
                codec: VideoCodec::H264,
                layer: Layer::High,
                seq,
                timestamp: 0,
                marker: *m,
                payload: p,
            },
            &mut |_| {},
        );
        seq += 1;
    }
    g.bench_function("sfu_forward_packet_50_viewers", |b| {
        b.iter(|| {
            seq += 1;
            now += Duration::from_micros(300);
            let mut n = 0;
            sfu.route(
                now,
                camera,
                VideoPacket {
                    codec: VideoCodec::H264,
                    layer: Layer::High,
                    seq,
                    timestamp: (seq * 3000) as u32,
                    marker: seq.is_multiple_of(8),
                    payload: &payload,
                },
                &mut |_| n += 1,
            );
            black_box(n)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
