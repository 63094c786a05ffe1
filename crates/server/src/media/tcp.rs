//! Browsers' ICE over TCP, for networks that block UDP (RFC 6544: our candidate is passive;
//! RFC 4571: each packet framed by its 16-bit length). One port serves every media worker.
//!
//! A connection's first frame must be a STUN check naming one of our browsers' ICE usernames
//! (within a few seconds); that tells which worker owns the browser's room. From then on the
//! connection is a port of that worker's engine: frames in as datagrams, the engine's
//! datagrams for it out as frames. The engine, not this module, decides whether the check
//! proves anything (the browser's peer checks the ICE password). Bounded everywhere: so many
//! connections in all and per address, frames of at most [`MAX_FRAME`] bytes, a slow reader
//! loses packets rather than holding the worker.

use super::{Command, MediaPlane};
use conclave_media::engine::PortId;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest frame taken (a browser's DTLS flight or SRTP packet is under 1,500 bytes).
const MAX_FRAME: usize = 4096;
/// Connections at once, in all and per address.
const MAX_CONNECTIONS: usize = 5_000;
const MAX_PER_ADDRESS: usize = 50;
/// The first check must come this soon; then anything this often (ICE consent is every ~5 s).
const FIRST_FRAME: Duration = Duration::from_secs(5);
const IDLE: Duration = Duration::from_secs(60);
/// ICE usernames remembered (the oldest forgotten first: one per browser join or restart).
const MAX_ROUTES: usize = 50_000;
/// Frames waiting to be written to one connection.
const WRITE_QUEUE: usize = 256;
/// TCP connections' port ids, far from the workers' own (which count up from 2).
const FIRST_PORT: PortId = 1 << 30;

#[derive(Default)]
struct Table {
    workers: HashMap<String, usize>,
    order: VecDeque<String>,
    per_address: HashMap<IpAddr, usize>,
    connections: usize,
}

/// Which worker each browser's ICE username belongs to, and the connections' bounds.
#[derive(Clone)]
pub struct TcpRoutes {
    announced: SocketAddr,
    table: Arc<Mutex<Table>>,
    next_port: Arc<AtomicU32>,
}

impl TcpRoutes {
    pub fn new(announced: SocketAddr) -> TcpRoutes {
        TcpRoutes {
            announced,
            table: Arc::default(),
            next_port: Arc::new(AtomicU32::new(FIRST_PORT)),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address browsers are told (the public IP, the listening port).
    pub fn announced(&self) -> SocketAddr {
        self.announced
    }

    pub fn insert(&self, ufrag: &str, worker: usize) {
        let mut t = self.table();
        if t.workers.insert(ufrag.to_owned(), worker).is_none() {
            t.order.push_back(ufrag.to_owned());
        }
        while t.order.len() > MAX_ROUTES {
            if let Some(old) = t.order.pop_front() {
                t.workers.remove(&old);
            }
        }
    }

    fn worker_of(&self, ufrag: &str) -> Option<usize> {
        self.table().workers.get(ufrag).copied()
    }

    /// A place for a connection from `ip`, or `None` at a limit (checked and counted at once).
    fn enter(&self, ip: IpAddr) -> Option<Place> {
        let mut t = self.table();
        let here = t.per_address.get(&ip).copied().unwrap_or(0);
        if here >= MAX_PER_ADDRESS || t.connections >= MAX_CONNECTIONS {
            metrics::counter!("conclave_ice_tcp_refused_total").increment(1);
            return None;
        }
        *t.per_address.entry(ip).or_default() += 1;
        t.connections += 1;
        metrics::gauge!("conclave_ice_tcp_connections").set(t.connections as f64);
        Some(Place {
            routes: self.clone(),
            ip,
        })
    }
}

/// A connection's place, given back when it ends.
struct Place {
    routes: TcpRoutes,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut t = self.routes.table();
        if let Some(n) = t.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_address.remove(&self.ip);
            }
        }
        t.connections = t.connections.saturating_sub(1);
        metrics::gauge!("conclave_ice_tcp_connections").set(t.connections as f64);
    }
}

/// Takes connections until the listener fails.
pub async fn serve(listener: TcpListener, plane: MediaPlane, routes: TcpRoutes) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // out of descriptors, say: wait a little rather than spin
                tracing::warn!(%err, "ICE over TCP cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = routes.enter(from.ip()) else {
            continue;
        };
        let (plane, routes) = (plane.clone(), routes.clone());
        tokio::spawn(async move {
            connection(stream, from, &plane, &routes).await;
            drop(place);
        });
    }
}

async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let n = usize::from(u16::from_be_bytes(length));
    if n == 0 || n > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {n} bytes")));
    }
    let mut frame = vec![0u8; n];
    stream.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn connection(stream: TcpStream, from: SocketAddr, plane: &MediaPlane, routes: &TcpRoutes) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let first = match tokio::time::timeout(FIRST_FRAME, read_frame(&mut reader)).await {
        Ok(Ok(frame)) => frame,
        _ => return,
    };
    let Some(worker) =
        conclave_media::webrtc::stun_local_ufrag(&first).and_then(|ufrag| routes.worker_of(ufrag))
    else {
        tracing::debug!(%from, "an ICE-TCP connection that names no browser of ours");
        return;
    };
    let port = routes.next_port.fetch_add(1, Ordering::Relaxed);
    let (frames, mut outgoing) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if !plane.send_to_worker(
        worker,
        Command::TcpOpen {
            port,
            writer: frames,
        },
    ) {
        return;
    }
    let mut data = first;
    let read = async move {
        loop {
            if !plane.send_to_worker(worker, Command::TcpFrame { port, from, data }) {
                return;
            }
            data = match tokio::time::timeout(IDLE, read_frame(&mut reader)).await {
                Ok(Ok(frame)) => frame,
                _ => return,
            };
        }
    };
    let write = async move {
        while let Some(frame) = outgoing.recv().await {
            match tokio::time::timeout(Duration::from_secs(5), writer.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    };
    tokio::select! {
        () = read => {}
        () = write => {}
    }
    plane.send_to_worker(worker, Command::TcpClose { port });
}
