//! The engine of one media worker: 20 ms of datagrams in (found by source address, as on a
//! shared port) and the ticks of every room that is due, for
//! - 100 rooms with one member each, alone with music (an idle server's live rooms), the
//!   members sending silence, or nothing at all;
//! - one room of 1,000 PCMU members, 3 talking (compare with the mixer bench: the difference
//!   is the demultiplexing).
//!
//! Times are CPU time of the benchmarking thread. Run: `cargo bench -p conclave-media --bench engine`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use conclave_media::codec::{CodecConfig, CodecKind};
use conclave_media::dsp::tone;
use conclave_media::engine::{Command, Engine, MemberPorts, MemberSetup, Playback, PortKind};
use conclave_media::mixer::{MemberConfig, MixerConfig};
use conclave_media::rtp::RtpHeader;
use criterion::{Criterion, criterion_group, criterion_main};

mod common;
use common::ThreadCpuTime;

struct Setup {
    engine: Engine,
    /// (source, ring of packets) per member that sends.
    senders: Vec<(SocketAddr, Vec<Vec<u8>>)>,
    now: Duration,
    tick: usize,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000))
}

fn setup(kind: CodecKind, rooms: usize, per_room: usize, speakers: usize, send: bool) -> Setup {
    let mut engine = Engine::new(MixerConfig::default());
    engine.add_port(0, PortKind::Shared);
    let codec = CodecConfig::new(kind, 48000);
    let frame = codec.pcm_rate as usize / 50;
    let encode = |freq: Option<f64>| -> Vec<Vec<u8>> {
        let mut enc = codec.encoder().expect("encoder");
        (0..50)
            .map(|i| {
                let pcm = match freq {
                    Some(f) => tone(f, codec.pcm_rate, frame, 8000.0, i * frame),
                    None => vec![0; frame],
                };
                let mut p = Vec::new();
                enc.encode(&pcm, &mut p).expect("encode");
                p
            })
            .collect()
    };
    let silence = encode(None);
    let music: Arc<[i16]> = tone(440.0, 16000, 16000, 3000.0, 0).into();
    let mut senders = Vec::new();
    let mut id = 0usize;
    for room in 0..rooms {
        for k in 0..per_room {
            let mut config = MemberConfig::new(kind, id as u32 + 1);
            config.remote = Some(addr(id));
            let alone = per_room == 1;
            let setup = MemberSetup {
                webrtc: None,
                config: config.clone(),
                ports: MemberPorts { rtp: 0, rtcp: None },
                muted: false,
                deaf: false,
                group: None,
                rtp_timeout: None,
                playback: alone.then(|| Playback {
                    samples: music.clone(),
                    rate: 16000,
                    looped: true,
                }),
            };
            engine
                .handle_command(
                    Duration::ZERO,
                    Command::AddMember {
                        room: room as u64,
                        member: id as u64,
                        setup: Box::new(setup),
                    },
                )
                .expect("added");
            if send {
                let payloads = if k < speakers {
                    encode(Some(440.0 * (k + 1) as f64))
                } else {
                    silence.clone()
                };
                let ring = payloads
                    .iter()
                    .map(|p| {
                        RtpHeader {
                            payload_type: config.payload_type,
                            ssrc: 0x10000 + id as u32,
                            ..Default::default()
                        }
                        .to_vec(p)
                    })
                    .collect();
                senders.push((addr(id), ring));
            }
            id += 1;
        }
    }
    let mut s = Setup {
        engine,
        senders,
        now: Duration::ZERO,
        tick: 0,
    };
    for _ in 0..20 {
        step(&mut s);
    }
    s
}

fn step(s: &mut Setup) -> usize {
    let seq = s.tick as u16;
    let ts = (s.tick as u32).wrapping_mul(160);
    for (from, ring) in s.senders.iter_mut() {
        let k = s.tick % ring.len();
        let p = &mut ring[k];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        let _ = s.engine.handle_datagram(s.now, 0, *from, p);
    }
    s.engine.handle_timeout(s.now);
    let sent = s.engine.drain_transmits().count();
    s.engine.drain_events().for_each(drop);
    s.now += Duration::from_millis(20);
    s.tick += 1;
    sent
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("engine_20ms");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for (name, rooms, per_room, speakers, send, kind) in [
        (
            "100_lone_rooms_music_pcmu_silent",
            100,
            1,
            0,
            true,
            CodecKind::Pcmu,
        ),
        (
            "100_lone_rooms_music_pcmu_quiet",
            100,
            1,
            0,
            false,
            CodecKind::Pcmu,
        ),
        (
            "100_lone_rooms_music_opus_quiet",
            100,
            1,
            0,
            false,
            CodecKind::Opus,
        ),
        (
            "1_room_1000_pcmu_3_talking",
            1,
            1000,
            3,
            true,
            CodecKind::Pcmu,
        ),
        (
            "40_rooms_of_5_pcmu_all_talking",
            40,
            5,
            5,
            true,
            CodecKind::Pcmu,
        ),
    ] {
        let mut s = setup(kind, rooms, per_room, speakers, send);
        g.bench_function(name, |b| b.iter(|| black_box(step(&mut s))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
