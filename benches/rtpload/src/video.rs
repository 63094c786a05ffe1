//! SIP video terminals: members whose calls offer H.264 video as well as audio, send a camera
//! and count what they receive (the room's composed picture).
//!
//! The camera is a short loop of frames encoded once at start (openh264, the project's own
//! wrapper, Constrained Baseline, slices under a packet so mode 0 and mode 1 both work), each
//! frame a moving gradient with a moving square: real motion for the server's decoder, nothing
//! for the generator to encode while it measures. One thread sends every terminal's frame on a
//! 30 fps clock (each its own SSRC, sequence numbers and timestamps) and drains what came back:
//! a frame is counted at each RTP packet with the marker bit.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use conclave_media::video::rtp::packetize_h264;
use conclave_video_codecs::{H264Encoder, Picture};
use serde_json::{Value, json};

/// The camera's frame rate.
const FPS: u32 = 30;
/// RTP payloads of one frame, with their marker.
type Frame = Vec<(Vec<u8>, bool)>;

/// The camera loop, encoded once.
pub struct Camera {
    frames: Vec<Frame>,
    pub width: usize,
    pub height: usize,
}

impl Camera {
    /// `seconds` of a `width`×`height` moving picture at 30 fps and `kbps`, a keyframe every
    /// two seconds (the loop starts with one, so looping is seamless for a decoder).
    pub fn encode(width: usize, height: usize, seconds: u32, kbps: u32) -> Result<Camera> {
        let n = (seconds.max(2) * FPS) as usize;
        let mut enc = H264Encoder::new(width, height, FPS as f32, kbps * 1000, 2 * FPS, 1100)
            .context("the camera's H.264 encoder")?;
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            let pic = moving_picture(width, height, i);
            let nals = enc
                .encode(&pic, i == 0)
                .with_context(|| format!("encoding camera frame {i}"))?;
            frames.push(packetize_h264(&nals, 1100, true));
        }
        Ok(Camera {
            frames,
            width,
            height,
        })
    }

    pub fn bytes_per_second(&self) -> usize {
        let total: usize = self
            .frames
            .iter()
            .flat_map(|f| f.iter().map(|(p, _)| p.len()))
            .sum();
        total * FPS as usize / self.frames.len().max(1)
    }
}

/// A gradient that slides and a bright square that crosses the picture.
fn moving_picture(w: usize, h: usize, i: usize) -> Picture {
    let (cw, ch) = (w / 2, h / 2);
    let y: Vec<u8> = (0..w * h)
        .map(|p| {
            let (x, yy) = (p % w, p / w);
            let sq = (i * 8) % w;
            if x >= sq && x < sq + w / 8 && yy >= h / 3 && yy < h / 3 + h / 4 {
                235
            } else {
                (((x + yy + i * 4) % 200) + 16) as u8
            }
        })
        .collect();
    let u: Vec<u8> = (0..cw * ch).map(|p| (96 + (p % cw) / 8) as u8).collect();
    let v: Vec<u8> = (0..cw * ch).map(|p| (160 - (p / cw) / 6) as u8).collect();
    Picture::from_planes(w, h, [(&y, w), (&u, cw), (&v, cw)])
        .unwrap_or_else(|| Picture::filled(w, h, (128, 128, 128)))
}

/// A terminal whose call is up: where its video goes.
pub struct Terminal {
    pub member: usize,
    pub socket: UdpSocket,
    pub remote: SocketAddr,
    pub payload_type: u8,
    /// Packetization mode 0: fragments cannot be sent (the camera's slices fit a packet).
    pub mode0: bool,
}

struct Live {
    t: Terminal,
    ssrc: u32,
    seq: u16,
    sent_frames: u64,
    /// When each received frame ended (a marker bit).
    frames_at: Vec<Instant>,
    bytes: u64,
    keyframes: u64,
}

pub fn spawn(
    camera: Arc<Camera>,
    terminals: Receiver<Terminal>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<TerminalStats>> {
    std::thread::spawn(move || run(&camera, &terminals, &stop))
}

/// What one terminal received.
pub struct TerminalStats {
    pub sent_frames: u64,
    frames_at: Vec<Instant>,
    pub bytes: u64,
    pub keyframes: u64,
}

fn run(camera: &Camera, terminals: &Receiver<Terminal>, stop: &AtomicBool) -> Vec<TerminalStats> {
    let mut live: Vec<Live> = Vec::new();
    let tick = Duration::from_secs(1) / FPS;
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut buf = vec![0u8; 2048];
    let mut packet = Vec::with_capacity(1500);
    while !stop.load(Ordering::Relaxed) {
        while let Ok(t) = terminals.try_recv() {
            let _ = t.socket.set_nonblocking(true);
            let ssrc = 0x7669_0000 | t.member as u32;
            live.push(Live {
                t,
                ssrc,
                seq: 0,
                sent_frames: 0,
                frames_at: Vec::new(),
                bytes: 0,
                keyframes: 0,
            });
        }
        let frame = &camera.frames[(n % camera.frames.len() as u64) as usize];
        let ts = (n as u32).wrapping_mul(90_000 / FPS);
        for l in live.iter_mut() {
            for (payload, marker) in frame {
                if l.t.mode0 && payload.first().is_some_and(|b| b & 0x1f == 28) {
                    continue;
                }
                packet.clear();
                packet.push(0x80);
                packet.push(l.t.payload_type | if *marker { 0x80 } else { 0 });
                packet.extend_from_slice(&l.seq.to_be_bytes());
                packet.extend_from_slice(&ts.to_be_bytes());
                packet.extend_from_slice(&l.ssrc.to_be_bytes());
                packet.extend_from_slice(payload);
                let _ = l.t.socket.send_to(&packet, l.t.remote);
                l.seq = l.seq.wrapping_add(1);
            }
            l.sent_frames += 1;
            // what the server sent since the last tick
            while let Ok((len, _)) = l.t.socket.recv_from(&mut buf) {
                let p = &buf[..len];
                // RTCP (payload types 72–76 with the marker) is not the picture
                if len < 13 || (200..=204).contains(&p[1]) {
                    continue;
                }
                l.bytes += len as u64;
                // an IDR slice, alone or as a fragment's start
                let nal = p[12] & 0x1f;
                if nal == 5 || (nal == 28 && len > 13 && p[13] & 0x9f == 0x85) {
                    l.keyframes += 1;
                }
                if p[1] & 0x80 != 0 {
                    l.frames_at.push(Instant::now());
                }
            }
        }
        n += 1;
        let next = started + tick * (n as u32);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    live.into_iter()
        .map(|l| TerminalStats {
            sent_frames: l.sent_frames,
            frames_at: l.frames_at,
            bytes: l.bytes,
            keyframes: l.keyframes,
        })
        .collect()
}

/// The terminals' figures over the last `window` before `end`: frames a second received
/// (lowest, median, highest) and bits a second.
pub fn summary(camera: &Camera, stats: &[TerminalStats], end: Instant, window: Duration) -> Value {
    let from = end.checked_sub(window).unwrap_or(end);
    let secs = window.as_secs_f64().max(1e-3);
    let mut fps: Vec<f64> = stats
        .iter()
        .map(|s| {
            s.frames_at
                .iter()
                .filter(|t| **t >= from && **t <= end)
                .count() as f64
                / secs
        })
        .collect();
    fps.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| -> f64 {
        if fps.is_empty() {
            0.0
        } else {
            fps[((fps.len() - 1) as f64 * q).round() as usize]
        }
    };
    let received_kbps: f64 = stats.iter().map(|s| s.bytes as f64 * 8.0).sum::<f64>()
        / 1000.0
        / stats.len().max(1) as f64
        / (stats.iter().map(|s| s.sent_frames).max().unwrap_or(0) as f64 / FPS as f64).max(1e-3);
    json!({
        "terminals": stats.len(),
        "camera": format!("{}x{} H.264 {} fps", camera.width, camera.height, FPS),
        "camera_kbps": camera.bytes_per_second() * 8 / 1000,
        "received_fps": { "min": pick(0.0), "median": pick(0.5), "max": pick(1.0) },
        "received_kbps_each": received_kbps.round(),
        "keyframes_received": stats.iter().map(|s| s.keyframes).sum::<u64>(),
    })
}
