//! Janus AudioBridge front end: one Janus session over its HTTP API, a room created with
//! plain-RTP participants allowed, and one plugin handle per member joining with an `rtp`
//! object (where the member listens, its payload type); Janus answers, in the `joined`
//! event, with the address and port to send to. Events arrive by long poll on a second
//! thread. Destroying the session at the end makes every member leave.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::engine::{Codec, Command, Setup};
use crate::frontend::SetupTimes;

#[derive(Debug, Clone)]
pub struct Options {
    /// Janus' HTTP transport, e.g. 127.0.0.1:8088 (base path /janus).
    pub http: SocketAddr,
    pub codec: Codec,
    /// The room's mixing rate.
    pub sampling_rate: u32,
    pub rate: f64,
    pub in_flight: usize,
    pub setup_timeout: Duration,
}

pub fn spawn(
    opts: Options,
    endpoints: Vec<SocketAddrV4>,
    events: Sender<Setup>,
    commands: Receiver<Command>,
) -> JoinHandle<Result<SetupTimes>> {
    std::thread::spawn(move || {
        let r = run(&opts, &endpoints, &events, &commands);
        if let Err(e) = &r {
            // the engine must not wait for set-up that will not come
            for member in 0..endpoints.len() {
                let _ = events.send(Setup::Failed {
                    member,
                    reason: format!("janus: {e:#}"),
                });
            }
            let _ = events.send(Setup::Done);
        }
        r
    })
}

/// One HTTP/1.1 exchange with a JSON body, on a fresh connection.
pub fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Value> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.take(64 << 20)
        .read_to_end(&mut raw)
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("{method} {path}: no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("{method} {path}: bad status line"))?;
    let mut content = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        content = dechunk(&content)?;
    }
    if !(200..300).contains(&status) {
        bail!(
            "{method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&content)
        );
    }
    serde_json::from_slice(&content).with_context(|| format!("{method} {path}: JSON"))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

struct Janus {
    http: SocketAddr,
    session: u64,
    tx: u64,
}

impl Janus {
    fn post(&mut self, path: &str, mut body: Value) -> Result<Value> {
        self.tx += 1;
        body["transaction"] = json!(format!("t{}", self.tx));
        let v = http_json(
            self.http,
            "POST",
            path,
            Some(&body),
            Duration::from_secs(10),
        )?;
        if v["janus"] == "error" {
            bail!("janus error: {}", v["error"]);
        }
        Ok(v)
    }
    fn attach(&mut self) -> Result<u64> {
        let path = format!("/janus/{}", self.session);
        let v = self.post(
            &path,
            json!({"janus": "attach", "plugin": "janus.plugin.audiobridge"}),
        )?;
        v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("attach: no handle id in {v}"))
    }
    fn message(&mut self, handle: u64, body: Value) -> Result<Value> {
        let path = format!("/janus/{}/{handle}", self.session);
        self.post(&path, json!({"janus": "message", "body": body}))
    }
}

/// A `joined` event: (handle, where to send, payload type), or an error for a handle.
enum Joined {
    Ok(u64, SocketAddrV4, u8),
    Err(u64, String),
}

fn poll_events(http: SocketAddr, session: u64, out: Sender<Joined>) {
    let path = format!("/janus/{session}?maxev=100");
    // bounded: a long poll returns within 30 s; the session's destruction ends it
    for _ in 0..100_000 {
        let v = match http_json(http, "GET", &path, None, Duration::from_secs(40)) {
            Ok(v) => v,
            Err(_) => return,
        };
        let list = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        for ev in list {
            if ev["janus"] == "error" {
                return; // the session is gone
            }
            let Some(handle) = ev["sender"].as_u64() else {
                continue;
            };
            let data = &ev["plugindata"]["data"];
            if let Some(err) = data["error"].as_str() {
                let _ = out.send(Joined::Err(handle, err.to_string()));
                continue;
            }
            if data["audiobridge"] != "joined" || data["rtp"].is_null() {
                continue;
            }
            let rtp = &data["rtp"];
            let ip = rtp["ip"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
            let port = rtp["port"].as_u64().and_then(|p| u16::try_from(p).ok());
            let pt = rtp["payload_type"].as_u64().unwrap_or(0) as u8;
            let msg = match (ip, port) {
                (Some(ip), Some(port)) => Joined::Ok(handle, SocketAddrV4::new(ip, port), pt),
                _ => Joined::Err(
                    handle,
                    format!("joined without a usable rtp address: {rtp}"),
                ),
            };
            if out.send(msg).is_err() {
                return;
            }
        }
    }
}

fn run(
    opts: &Options,
    endpoints: &[SocketAddrV4],
    events: &Sender<Setup>,
    commands: &Receiver<Command>,
) -> Result<SetupTimes> {
    let v = http_json(
        opts.http,
        "POST",
        "/janus",
        Some(&json!({"janus": "create", "transaction": "t0"})),
        Duration::from_secs(10),
    )
    .context("creating a Janus session")?;
    let session = v["data"]["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("create: no session id in {v}"))?;
    let mut j = Janus {
        http: opts.http,
        session,
        tx: 0,
    };
    let control = j.attach()?;
    let room = 4000 + (std::process::id() as u64 % 100_000);
    let (codec, pt) = match opts.codec {
        Codec::Pcmu => ("pcmu", 0),
        Codec::Opus => ("opus", 111),
    };
    let created = j.message(
        control,
        json!({
            "request": "create",
            "room": room,
            "description": "rtpload",
            "is_private": true,
            "sampling_rate": opts.sampling_rate,
            "allow_rtp_participants": true,
            "audiolevel_ext": false,
        }),
    )?;
    let answer = &created["plugindata"]["data"];
    if answer["audiobridge"] != "created" {
        bail!("creating the room: {created}");
    }
    let (joined_tx, joined_rx) = mpsc::channel();
    let http = opts.http;
    std::thread::spawn(move || poll_events(http, session, joined_tx));

    let started = Instant::now();
    let deadline = started + opts.setup_timeout;
    let interval = Duration::from_secs_f64(1.0 / opts.rate.max(0.1));
    let mut times = SetupTimes::default();
    let mut waiting: HashMap<u64, (usize, Instant)> = HashMap::new();
    let mut next = 0;
    let mut next_at = started;
    let fail = |times: &mut SetupTimes, member: usize, reason: String| {
        times.failed += 1;
        let _ = events.send(Setup::Failed { member, reason });
    };
    while (next < endpoints.len() || !waiting.is_empty()) && Instant::now() < deadline {
        let now = Instant::now();
        if next < endpoints.len() && next_at <= now && waiting.len() < opts.in_flight {
            let member = next;
            next += 1;
            next_at += interval;
            let joined = j.attach().and_then(|handle| {
                let body = json!({
                    "request": "join",
                    "room": room,
                    "display": format!("load{member}"),
                    "codec": codec,
                    "rtp": {
                        "ip": endpoints[member].ip().to_string(),
                        "port": endpoints[member].port(),
                        "payload_type": pt,
                    },
                });
                let ack = j.message(handle, body)?;
                Ok((handle, ack))
            });
            match joined {
                Ok((handle, ack)) if ack["janus"] == "ack" => {
                    waiting.insert(handle, (member, now));
                }
                Ok((_, other)) => fail(&mut times, member, format!("join: {other}")),
                Err(e) => fail(&mut times, member, format!("join: {e:#}")),
            }
            continue;
        }
        let wait = if next < endpoints.len() && waiting.len() < opts.in_flight {
            next_at.saturating_duration_since(now)
        } else {
            Duration::from_millis(100)
        };
        match joined_rx.recv_timeout(wait) {
            Ok(Joined::Ok(handle, remote, payload_type)) => {
                if let Some((member, at)) = waiting.remove(&handle) {
                    times.ms.push(at.elapsed().as_secs_f64() * 1000.0);
                    let _ = events.send(Setup::Ready {
                        member,
                        remote,
                        payload_type,
                    });
                }
            }
            Ok(Joined::Err(handle, e)) => {
                if let Some((member, _)) = waiting.remove(&handle) {
                    fail(&mut times, member, e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("the Janus event poll stopped"),
        }
    }
    for (member, _) in waiting.into_values() {
        fail(
            &mut times,
            member,
            "no joined event before the set-up timeout".into(),
        );
    }
    for member in next..endpoints.len() {
        fail(&mut times, member, "not joined: set-up timeout".into());
    }
    let _ = events.send(Setup::Done);
    // wait for the end of the run (bounded by the engine, which always sends HangUpAll or
    // drops its sender), answering nothing else meanwhile
    loop {
        match commands.recv_timeout(Duration::from_secs(1)) {
            Ok(Command::HangUpAll) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        // late joined events of members already given up on are dropped
        while joined_rx.try_recv().is_ok() {}
    }
    let path = format!("/janus/{session}");
    j.post(&path, json!({"janus": "destroy"}))
        .context("destroying the Janus session")?;
    Ok(times)
}
