//! The HTTP listener: our own accept loop over hyper's HTTP/1 server (axum::serve has no
//! timeouts or caps). Every connection is admitted under the per-address and total caps and
//! the descriptor watermark, must send its request headers within the header timeout (also
//! the keep-alive wait for the next request), and is closed when nothing moves on it for the
//! idle timeout. Upgraded connections (the events WebSocket) keep their slot until they close.

use crate::limits::{ConnectionCaps, ConnectionSlot, ListenerLimits};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a stop waits for requests in flight before closing what is left.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` resolves, then lets requests in flight finish
/// (for at most a few seconds).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let caps = ConnectionCaps::new("http", &limits);
    let (stopping, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, or the peer gave up: not fatal; don't spin.
                    tracing::warn!(%err, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        if !crate::limits::accepting_http() {
            metrics::counter!("conclave_connections_refused_total", "listener" => "http", "reason" => "descriptors")
                .increment(1);
            continue;
        }
        let Some(slot) = caps.admit(addr.ip()) else {
            continue;
        };
        crate::limits::note_new_work(1);
        tasks.spawn(connection(
            stream,
            addr,
            slot,
            app.clone(),
            limits,
            stopped.clone(),
        ));
    }
    let _ = stopping.send(true);
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tasks.abort_all();
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    slot: ConnectionSlot,
    app: Router,
    limits: ListenerLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        _slot: slot,
    });
    let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(addr));
        app.clone().oneshot(request)
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let idle = limits.http_idle_timeout;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, %addr, "HTTP connection ended");
                }
                return;
            }
            _ = activity.idle_for(idle) => {
                metrics::counter!("conclave_connections_closed_total", "listener" => "http", "reason" => "idle")
                    .increment(1);
                tracing::debug!(%addr, "HTTP connection idle; closing");
                return;
            }
            changed = stopping.changed() => {
                if changed.is_err() || *stopping.borrow() {
                    conn.as_mut().graceful_shutdown();
                    // Let the request in flight finish (bounded by the server's drain).
                    if let Err(err) = conn.as_mut().await {
                        tracing::debug!(%err, %addr, "HTTP connection ended while stopping");
                    }
                    return;
                }
            }
        }
    }
}

/// When bytes last moved on a connection.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once nothing has moved for `idle`.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            let due = self.last() + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// A stream that notes when bytes move, and holds its connection's slot under the caps for
/// as long as it lives (through an upgrade too).
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: ConnectionSlot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
