//! Sockets: UDP datagrams and TCP/TLS connections, framed into SIP messages and handed to the
//! SIP task; what the stack sends goes out on the matching socket or connection.

use super::Input;
use crate::limits::{ConnectionCaps, ConnectionSlot, IN_USE_IDLE, ListenerLimits};
use conclave_sip::message::{Message, Method};
use conclave_sip::{Framed, Limits, Peer, StreamFramer, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc};

/// Most bytes waiting to be written on one connection: a peer that does not read gets its
/// connection closed rather than the server's memory.
const MAX_QUEUED_BYTES: usize = 1024 * 1024;
/// Most messages waiting on one connection.
const MAX_QUEUED_MESSAGES: usize = 1024;
/// How long what is queued may take to go out once a connection is closing.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);

/// The way to a connection's writer: bounded in messages and in bytes. When it is full the
/// connection is closed (its reader and writer stop), never grown.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    close: Arc<Notify>,
    /// A registration or a call depends on this flow (a longer idle timeout).
    in_use: Arc<AtomicBool>,
    /// A complete message has arrived on this flow.
    seen: Arc<AtomicBool>,
}

impl Outbox {
    pub fn new() -> (Outbox, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_MESSAGES);
        let outbox = Outbox {
            tx,
            queued: Arc::default(),
            close: Arc::default(),
            in_use: Arc::default(),
            seen: Arc::default(),
        };
        (outbox, rx)
    }

    /// Queues bytes to send; false (and the connection closes) when its queue is full.
    pub fn push(&self, bytes: Vec<u8>) -> bool {
        let len = bytes.len();
        if self.queued.load(Ordering::Relaxed) + len > MAX_QUEUED_BYTES
            || self.tx.try_send(bytes).is_err()
        {
            metrics::counter!("conclave_connections_closed_total", "listener" => "sip", "reason" => "write_queue_full")
                .increment(1);
            self.close.notify_one();
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        true
    }

    fn seen_message(&self) {
        self.seen.store(true, Ordering::Relaxed);
    }

    /// A registration or a call now depends on this flow.
    pub fn mark_in_use(&self) {
        self.in_use.store(true, Ordering::Relaxed);
    }
}

/// Largest UDP datagram we accept (a SIP message over UDP must fit one).
const MAX_DATAGRAM: usize = 65_535;

pub async fn udp_loop(socket: Arc<UdpSocket>, inputs: mpsc::Sender<Input>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                // Keep-alives (CRLF) need no answer over UDP.
                if buf[..n].iter().all(|b| matches!(b, b'\r' | b'\n' | b' ')) {
                    continue;
                }
                let input = Input::Datagram {
                    data: buf[..n].to_vec(),
                    from,
                };
                if inputs.send(input).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                // ICMP port unreachable and the like surface here on Linux: not fatal.
                tracing::debug!(%err, "UDP receive error");
            }
        }
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

pub async fn tcp_accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inputs: mpsc::Sender<Input>,
    limits: ListenerLimits,
    caps: Arc<ConnectionCaps>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, ?transport, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Refused at once: out of descriptors' reserve, or over the caps.
        if !crate::limits::accepting_new_work() {
            continue;
        }
        let Some(slot) = caps.admit(addr.ip()) else {
            continue;
        };
        crate::limits::note_new_work(1);
        let _ = stream.set_nodelay(true);
        let inputs = inputs.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // The header timeout runs from the accept, through the handshake.
            let first = Instant::now() + limits.header_timeout;
            match tls {
                None => connection(stream, addr, transport, inputs, limits, first, slot).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            connection(stream, addr, transport, inputs, limits, first, slot).await
                        }
                        Ok(Err(err)) => tracing::debug!(%err, %addr, "TLS handshake failed"),
                        Err(_) => {
                            metrics::counter!("conclave_connections_closed_total", "listener" => "sip", "reason" => "handshake_timeout")
                                .increment(1);
                            tracing::debug!(%addr, "TLS handshake timed out");
                        }
                    }
                }
            }
        });
    }
}

/// A connection someone opened to us: announced to the SIP task, then served.
async fn connection<S>(
    stream: S,
    addr: SocketAddr,
    transport: Transport,
    inputs: mpsc::Sender<Input>,
    limits: ListenerLimits,
    first_message_by: Instant,
    _slot: ConnectionSlot,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let id = next_connection_id();
    let (out, queue) = Outbox::new();
    let connected = Input::Connected {
        id,
        addr,
        transport,
        out: out.clone(),
    };
    if inputs.send(connected).await.is_err() {
        return;
    }
    let peer = Peer {
        transport,
        addr,
        connection: Some(id),
    };
    let timing = Timing {
        first_message_by: Some(first_message_by),
        idle: limits.sip_idle_timeout,
    };
    serve(stream, peer, out, queue, inputs, timing).await;
}

/// When a connection is given up for silence.
struct Timing {
    /// The first complete message must have arrived by then (connections opened to us).
    first_message_by: Option<Instant>,
    /// Without any bytes for this long (longer when in use), the connection closes.
    idle: Duration,
}

pub fn next_connection_id() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// How long opening a connection to a gateway may take before its messages are given up.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a connection we need (a trunk over TCP or TLS). The SIP task already counts it as
/// connection `peer.connection` and queues on `out`; if it cannot be opened, the task hears
/// `Closed` and the transactions waiting on it time out.
pub async fn connect(
    peer: Peer,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    out: Outbox,
    queue: mpsc::Receiver<Vec<u8>>,
    inputs: mpsc::Sender<Input>,
) {
    let id = peer.connection.unwrap_or_default();
    // Our own connection to a gateway: kept while a trunk uses it.
    out.mark_in_use();
    let timing = Timing {
        first_message_by: None,
        idle: IN_USE_IDLE,
    };
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(peer.addr));
    let stream = match opened.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::info!(%err, to = %peer.addr, "cannot connect");
            let _ = inputs.send(Input::ConnectFailed { id }).await;
            return;
        }
        Err(_) => {
            tracing::info!(to = %peer.addr, "connecting timed out");
            let _ = inputs.send(Input::ConnectFailed { id }).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve(stream, peer, out, queue, inputs, timing).await,
        Some((connector, name)) => {
            let handshake = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream));
            match handshake.await {
                Ok(Ok(stream)) => serve(stream, peer, out, queue, inputs, timing).await,
                Ok(Err(err)) => {
                    tracing::warn!(%err, to = %peer.addr, "TLS handshake with the gateway failed");
                    let _ = inputs.send(Input::ConnectFailed { id }).await;
                }
                Err(_) => {
                    tracing::warn!(to = %peer.addr, "TLS handshake timed out");
                    let _ = inputs.send(Input::ConnectFailed { id }).await;
                }
            }
        }
    }
}

/// One TCP or TLS connection: frames what arrives, writes what the stack sends; closes it
/// when the peer is silent too long, or when its write queue is full.
async fn serve<S>(
    stream: S,
    peer: Peer,
    out: Outbox,
    mut queue: mpsc::Receiver<Vec<u8>>,
    inputs: mpsc::Sender<Input>,
    timing: Timing,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (id, addr) = (peer.connection.unwrap_or_default(), peer.addr);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let queued = out.queued.clone();
    let mut writer_task = tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            queued.fetch_sub(bytes.len(), Ordering::Relaxed);
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = vec![0u8; 16 * 1024];
    let mut last = Instant::now();
    let mut writer_done = false;
    let reason = 'read: loop {
        let deadline = timing.deadline(&out, last);
        let n = tokio::select! {
            read = tokio::time::timeout_at(deadline.into(), reader.read(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => break 'read "closed",
                Ok(Ok(n)) => n,
                // Marked in use since the deadline was set: wait on.
                Err(_) if Instant::now() < timing.deadline(&out, last) => continue,
                Err(_) if timing.waiting_first(&out) => break 'read "first_message_timeout",
                Err(_) => break 'read "idle",
            },
            _ = out.close.notified() => break 'read "write_queue_full",
            _ = &mut writer_task => {
                writer_done = true;
                break 'read "write_failed";
            }
        };
        last = Instant::now();
        framer.push(&buf[..n]);
        while let Some(framed) = framer.next_message() {
            match framed {
                Ok(Framed::Message(msg)) => {
                    out.seen_message();
                    // A call on this flow: its in-dialog requests and our BYE need it.
                    if let Message::Request(request) = &*msg
                        && request.method == Method::Invite
                    {
                        out.mark_in_use();
                    }
                    if inputs.send(Input::Stream { msg, peer }).await.is_err() {
                        break 'read "stopping";
                    }
                }
                Ok(Framed::Ping) => {
                    out.push(b"\r\n".to_vec());
                }
                Ok(Framed::Pong) => {}
                Err((error, raw)) => {
                    tracing::debug!(%addr, ?error, "malformed SIP message on a stream; closing");
                    if let Some(response) = conclave_sip::message::error_response(&raw, &error) {
                        out.push(response.to_bytes());
                    }
                    break 'read "malformed";
                }
            }
        }
    };
    if reason != "closed" {
        metrics::counter!("conclave_connections_closed_total", "listener" => "sip", "reason" => reason)
            .increment(1);
        tracing::debug!(%addr, reason, "closing a SIP connection");
    }
    drop(out);
    let _ = inputs.send(Input::Closed { id }).await;
    if !writer_done {
        // What is queued may go out (our answer to a BYE, a 400), but a peer that does not
        // read does not hold the task.
        if tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer_task)
            .await
            .is_err()
        {
            writer_task.abort();
        }
    }
}

impl Timing {
    fn waiting_first(&self, out: &Outbox) -> bool {
        self.first_message_by.is_some() && !out.seen.load(Ordering::Relaxed)
    }

    /// When the connection is given up if nothing more arrives (`last`: when bytes last did).
    fn deadline(&self, out: &Outbox, last: Instant) -> Instant {
        match self.first_message_by {
            Some(by) if self.waiting_first(out) => by,
            _ if out.in_use.load(Ordering::Relaxed) => last + self.idle.max(IN_USE_IDLE),
            _ => last + self.idle,
        }
    }
}
