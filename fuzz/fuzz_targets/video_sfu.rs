#![no_main]
//! Video from browsers: keyframe detection and frame assembly on any payload never panic,
//! and the SFU fed arbitrary packets, layers, tiles and estimates keeps its output
//! consistent.
use conclave_media::video::keyframe::is_keyframe;
use conclave_media::video::rtp::{FrameAssembler, MAX_FRAME};
use conclave_media::video::sfu::{Sfu, VideoPacket};
use conclave_media::video::{Layer, StreamKey, StreamKind, Tile, TileSize, VideoCodec};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let _ = is_keyframe(VideoCodec::Vp8, data);
    let _ = is_keyframe(VideoCodec::H264, data);
    // frames put back together from any packets: bounded, never a panic
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let mut frames = FrameAssembler::new(codec);
        for (i, chunk) in data.chunks(7).enumerate() {
            let marker = chunk.first().is_some_and(|b| b & 1 == 1);
            if let Some((frame, _)) = frames.push(i as u64, marker, chunk) {
                assert!(frame.len() <= MAX_FRAME);
            }
        }
    }
    let mut sfu = Sfu::new();
    sfu.add_viewer(Duration::ZERO, 1, 4);
    sfu.add_viewer(Duration::ZERO, 2, 2);
    let mut now = Duration::ZERO;
    for (i, chunk) in data.chunks(8).enumerate() {
        let b = |n: usize| chunk.get(n).copied().unwrap_or(0);
        now += Duration::from_millis(u64::from(b(0)));
        let stream = StreamKey {
            member: u64::from(b(1) % 3),
            kind: if b(2) & 1 == 0 { StreamKind::Camera } else { StreamKind::Screen },
        };
        match b(3) % 4 {
            0 => sfu.set_tiles(
                now,
                (0..usize::from(b(4) % 5))
                    .map(|t| Tile {
                        stream: (b(5) >> t & 1 == 1).then_some(stream),
                        size: [TileSize::Big, TileSize::Medium, TileSize::Small][t % 3],
                    })
                    .collect(),
            ),
            1 => sfu.set_estimate(now, u64::from(b(4) % 3), u64::from(b(5)) * 10_000),
            2 => sfu.viewer_lost_picture(now, u64::from(b(4) % 3), usize::from(b(5))),
            _ => {
                let mut out = Vec::new();
                sfu.route(
                    now,
                    stream,
                    VideoPacket {
                        codec: if b(4) & 1 == 0 { VideoCodec::Vp8 } else { VideoCodec::H264 },
                        layer: Layer::ALL[usize::from(b(5) % 3)],
                        seq: i as u64 + u64::from(b(6)),
                        timestamp: u32::from(b(7)) * 3000,
                        marker: true,
                        payload: chunk,
                    },
                    &mut |f| out.push((f.viewer, f.slot)),
                );
                for (viewer, slot) in out {
                    assert!(viewer != stream.member, "nobody receives its own stream");
                    assert!(slot < 4);
                }
            }
        }
        sfu.handle_timeout(now);
        let _ = sfu.take_keyframe_requests();
    }
});
