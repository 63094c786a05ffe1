//! `rtpload`: an RTP load generator that measures a conference server from outside.
//!
//! One process simulates N members of one room, each with its own UDP socket: K talkers
//! send distinct tones, one member sends a click now and then, the others send silence as
//! a phone does. It checks what every member hears (gaps in sequence, timestamps and
//! arrival; tones of a decoded sample: each talker hears the others and not itself) and
//! how long a click takes through the server. Three front ends share the media engine:
//! `conclave` (SIP calls into a room), `webrtc` (Conclave's browser join: WebRTC through
//! str0m) and `janus` (Janus AudioBridge over its HTTP API).
//! See docs/performance.md for how the figures are used.

mod analysis;
mod engine;
mod frontend;
mod janus;
mod net;
mod report;
mod sip;
mod video;
mod webrtc;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Codec, Engine, Plan, Sockets, Timing};

#[derive(Parser)]
#[command(name = "rtpload", about = "RTP load generator for conference servers")]
struct Cli {
    #[command(subcommand)]
    server: Server,
}

#[derive(Subcommand)]
enum Server {
    /// Members call a Conclave room over SIP (UDP).
    Conclave {
        /// The server's SIP UDP address.
        #[arg(long, default_value = "127.0.0.1:5060")]
        sip: SocketAddr,
        /// The room's number.
        #[arg(long, default_value = "8001")]
        room: String,
        /// Spread the members over this many rooms, numbered from --room up (member i calls
        /// room + i mod rooms). With more than one room the mix is not checked (a member
        /// alone hears music), only that every member is set up and, with
        /// --require-clean, receives without gaps: the idle server's cost.
        #[arg(long, default_value_t = 1)]
        rooms: u32,
        /// Members 0..N are SIP video terminals: their calls offer H.264 too, they send a
        /// camera (a moving picture, encoded once before the run) and count the frames of
        /// the composed picture they receive.
        #[arg(long, default_value_t = 0)]
        video_members: usize,
        /// The terminals' camera size.
        #[arg(long, default_value = "640x360")]
        video_size: String,
        /// The camera's bitrate, kbit/s.
        #[arg(long, default_value_t = 600)]
        video_kbps: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Members join a Conclave room as browsers: WebRTC (ICE, DTLS-SRTP, Opus) through
    /// `POST /api/v1/join`. Opus only; needs `--sockets shared`.
    Webrtc {
        /// The server's HTTP address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// The room's number.
        #[arg(long, default_value = "8001")]
        room: String,
        #[command(flatten)]
        common: Common,
    },
    /// Members join a Janus AudioBridge room as plain-RTP participants.
    Janus {
        /// Janus' HTTP transport (base path /janus).
        #[arg(long, default_value = "127.0.0.1:8088")]
        http: SocketAddr,
        /// The room's mixing rate (8000, 16000, 24000 or 48000).
        #[arg(long, default_value_t = 48000)]
        sampling_rate: u32,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SocketsArg {
    Shared,
    PerMember,
}

#[derive(Clone, Copy, ValueEnum)]
enum CodecArg {
    Pcmu,
    Opus,
}

#[derive(Args)]
struct Common {
    /// Members in the room.
    #[arg(long, short = 'n', default_value_t = 100)]
    members: usize,
    /// Members talking (a tone each).
    #[arg(long, short = 'k', default_value_t = 3)]
    talkers: usize,
    #[arg(long, value_enum, default_value = "pcmu")]
    codec: CodecArg,
    /// Tone frequencies of the talkers, Hz (integers keep a 1 s loop exact).
    #[arg(long, value_delimiter = ',', default_value = "400,700,1250")]
    tones: Vec<u32>,
    /// Members set up per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Set-ups waiting for an answer at once, at most.
    #[arg(long, default_value_t = 50)]
    in_flight: usize,
    /// Give up on set-up after this many seconds (default: members / rate + 30).
    #[arg(long)]
    setup_timeout: Option<f64>,
    /// Seconds between the last set-up and the counting window.
    #[arg(long, default_value_t = 4.0)]
    warmup: f64,
    /// Length of the counting window, seconds.
    #[arg(long, default_value_t = 20.0)]
    window: f64,
    /// Listeners decoded (tones and clicks) besides the talkers and the clicker.
    #[arg(long, default_value_t = 20)]
    decode: usize,
    /// Click frequency, Hz; 0: no click and no delay figure.
    #[arg(long, default_value_t = 2600)]
    click_hz: u32,
    /// Time between clicks, ms (must exceed the delay to measure).
    #[arg(long, default_value_t = 500)]
    click_period_ms: u64,
    /// Members' endpoints: `shared` (each member its own loopback address 127.64.x.y, one
    /// shared port and socket, batched sends and receives) or `per-member` (each member its
    /// own socket and port on --local-ip).
    #[arg(long, value_enum, default_value = "shared")]
    sockets: SocketsArg,
    /// Our address for SIP, and for media with `--sockets per-member` (loopback).
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: Ipv4Addr,
    /// The server's process: its CPU time and memory over the window go in the report.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the JSON summary here (else to stdout).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Fail (exit 1) on any gap or silent frame, not only on a wrong mix.
    #[arg(long)]
    require_clean: bool,
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("rtpload: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool> {
    let cli = Cli::parse();
    let (name, common) = match &cli.server {
        Server::Conclave { common, .. } => ("conclave", common),
        Server::Janus { common, .. } => ("janus", common),
        Server::Webrtc { common, .. } => ("conclave-webrtc", common),
    };
    let c = common;
    let rooms = match &cli.server {
        Server::Conclave { room, rooms, .. } => {
            if *rooms == 0 || *rooms > 10_000 {
                bail!("--rooms must be 1..10000");
            }
            if *rooms > 1 && room.parse::<u64>().is_err() {
                bail!("--rooms needs a numeric --room to count from");
            }
            *rooms
        }
        Server::Janus { .. } => 1,
        Server::Webrtc { .. } => {
            if !matches!(common.codec, CodecArg::Opus)
                || !matches!(common.sockets, SocketsArg::Shared)
            {
                bail!(
                    "webrtc: browsers send Opus (--codec opus) from their own addresses (--sockets shared)"
                );
            }
            1
        }
    };
    if c.members == 0 || c.members > 60_000 {
        bail!("--members must be 1..60000");
    }
    if c.talkers > c.tones.len() || c.talkers >= c.members {
        bail!("--talkers must be fewer than the members and at most one per tone");
    }
    if !(0.1..=10_000.0).contains(&c.rate) || c.window <= 0.0 || c.window > 3600.0 || c.warmup < 0.0
    {
        bail!("--rate must be 0.1..10000/s, --window 0..3600 s, --warmup >= 0");
    }
    let codec = match c.codec {
        CodecArg::Pcmu => Codec::Pcmu,
        CodecArg::Opus => Codec::Opus,
    };
    let click = (c.click_hz > 0).then(|| {
        (
            f64::from(c.click_hz),
            Duration::from_millis(c.click_period_ms.max(100)),
        )
    });
    let plan = Plan {
        codec,
        tones: c.tones.iter().map(|&t| f64::from(t)).collect(),
        click,
        decode: c.decode,
        local_ip: c.local_ip,
        sockets: match c.sockets {
            SocketsArg::Shared => Sockets::Shared,
            SocketsArg::PerMember => Sockets::PerMember,
        },
    };
    let setup_timeout = Duration::from_secs_f64(
        c.setup_timeout
            .unwrap_or(c.members as f64 / c.rate + 30.0)
            .clamp(1.0, 7200.0),
    );
    let timing = Timing {
        setup_timeout,
        warmup: Duration::from_secs_f64(c.warmup),
        window: Duration::from_secs_f64(c.window),
    };
    let mut engine = Engine::new(plan, c.members, c.talkers)?;
    let (setup_tx, setup_rx) = mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let stop_video = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut video = None;
    let front = match &cli.server {
        Server::Conclave {
            sip,
            room,
            rooms,
            video_members,
            video_size,
            video_kbps,
            ..
        } => sip::spawn(
            sip::Options {
                server: *sip,
                room: room.clone(),
                rooms: *rooms,
                local_ip: c.local_ip,
                codec,
                rate: c.rate,
                in_flight: c.in_flight.max(1),
                setup_timeout,
                video: if *video_members > 0 {
                    let (w, h) = video_size
                        .split_once('x')
                        .and_then(|(w, h)| {
                            Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?))
                        })
                        .filter(|&(w, h)| (16..=1920).contains(&w) && (16..=1088).contains(&h))
                        .context("--video-size: WxH, 16x16 to 1920x1088")?;
                    let camera = std::sync::Arc::new(video::Camera::encode(w, h, 2, *video_kbps)?);
                    let (tx, rx) = mpsc::channel();
                    video = Some((camera.clone(), video::spawn(camera, rx, stop_video.clone())));
                    Some(((*video_members).min(c.members), tx))
                } else {
                    None
                },
            },
            engine.endpoints(),
            setup_tx,
            cmd_rx,
        ),
        Server::Janus {
            http,
            sampling_rate,
            ..
        } => janus::spawn(
            janus::Options {
                http: *http,
                codec,
                sampling_rate: *sampling_rate,
                rate: c.rate,
                in_flight: c.in_flight.max(1),
                setup_timeout,
            },
            engine.endpoints(),
            setup_tx,
            cmd_rx,
        ),
        Server::Webrtc { http, room, .. } => webrtc::spawn(
            webrtc::Options {
                http: *http,
                room: room.clone(),
                rate: c.rate,
                setup_timeout,
            },
            engine.endpoints(),
            setup_tx,
            cmd_rx,
        ),
    };
    let outcome = engine.run(timing, &setup_rx, &cmd_tx, c.server_pid)?;
    let window_end = std::time::Instant::now();
    drop(cmd_tx);
    let setup = match front.join() {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            eprintln!("rtpload: {name} front end: {e:#}");
            frontend::SetupTimes::default()
        }
        Err(_) => bail!("the {name} front end panicked"),
    };
    let r = report::Report {
        server: name,
        codec,
        talkers: c.talkers,
        tones: &c.tones,
        outcome: &outcome,
        setup: &setup,
        click: click.map(|(f, p)| (f, p.as_millis() as u64)),
    };
    let mut json = r.json();
    if let Some((camera, thread)) = video {
        stop_video.store(true, std::sync::atomic::Ordering::Relaxed);
        let stats = thread
            .join()
            .map_err(|_| anyhow::anyhow!("the video thread panicked"))?;
        let mut v = video::summary(&camera, &stats, window_end, timing.window);
        v["refused"] = serde_json::json!(setup.video_refused);
        json["video"] = v;
    }
    let text = serde_json::to_string_pretty(&json)?;
    match &c.json {
        Some(path) => std::fs::write(path, text + "\n")?,
        None => println!("{text}"),
    }
    eprintln!("{}", r.line());
    let mixed =
        (rooms > 1 || json["checks"]["mix"] == true) && json["checks"]["all_set_up"] == true;
    let clean = json["checks"]["clean"] == true;
    Ok(mixed && (clean || !c.require_clean))
}
