//! Sockets: UDP datagrams and TCP/TLS connections, framed into SIP messages and handed to the
//! SIP task; what the stack sends goes out on the matching socket or connection.

use super::Input;
use conclave_sip::{Framed, Limits, Peer, StreamFramer, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

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
        let _ = stream.set_nodelay(true);
        let inputs = inputs.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, addr, transport, inputs).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => connection(stream, addr, transport, inputs).await,
                    Err(err) => tracing::debug!(%err, %addr, "TLS handshake failed"),
                },
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
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let id = next_connection_id();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let connected = Input::Connected {
        id,
        addr,
        transport,
        out: out_tx.clone(),
    };
    if inputs.send(connected).await.is_err() {
        return;
    }
    let peer = Peer {
        transport,
        addr,
        connection: Some(id),
    };
    serve(stream, peer, out_tx, out_rx, inputs).await;
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
    out_tx: mpsc::UnboundedSender<Vec<u8>>,
    out_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    inputs: mpsc::Sender<Input>,
) {
    let id = peer.connection.unwrap_or_default();
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
        None => serve(stream, peer, out_tx, out_rx, inputs).await,
        Some((connector, name)) => {
            let handshake = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream));
            match handshake.await {
                Ok(Ok(stream)) => serve(stream, peer, out_tx, out_rx, inputs).await,
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

/// One TCP or TLS connection: frames what arrives, writes what the stack sends.
async fn serve<S>(
    stream: S,
    peer: Peer,
    out_tx: mpsc::UnboundedSender<Vec<u8>>,
    mut out_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    inputs: mpsc::Sender<Input>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (id, addr) = (peer.connection.unwrap_or_default(), peer.addr);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        while let Some(framed) = framer.next_message() {
            match framed {
                Ok(Framed::Message(msg)) => {
                    if inputs.send(Input::Stream { msg, peer }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Framed::Ping) => {
                    let _ = out_tx.send(b"\r\n".to_vec());
                }
                Ok(Framed::Pong) => {}
                Err((error, raw)) => {
                    tracing::debug!(%addr, ?error, "malformed SIP message on a stream; closing");
                    if let Some(response) = conclave_sip::message::error_response(&raw, &error) {
                        let _ = out_tx.send(response.to_bytes());
                    }
                    break 'read;
                }
            }
        }
    }
    drop(out_tx);
    let _ = inputs.send(Input::Closed { id }).await;
    let _ = writer_task.await;
}
