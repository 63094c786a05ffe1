//! What keeps an anonymous client from taking the server down: caps on connections (per
//! address and in total, per kind of listener), the timeouts every connection lives under, and
//! a watch on file descriptors so that new work is refused before the process runs out.
//!
//! Descriptors: at start the server raises its soft `RLIMIT_NOFILE` to the hard limit. A
//! sampler counts the open descriptors (`/proc/self/fd`) a few times a second; work taken on
//! since the last sample is added as it is noted. New SIP connections and new calls stop at
//! the *work watermark* (the limit less a reserve of an eighth, at least 32); new HTTP
//! connections only at the *HTTP watermark* (a quarter of that reserve from the limit), so
//! `/healthz`, the console and the calls already up keep what they need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Timeouts and caps of the listeners (settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// HTTP: a request's headers must arrive within this (also how long a kept-alive
    /// connection may wait for its next request). SIP over TCP/TLS: the first message.
    pub header_timeout: Duration,
    /// HTTP: a connection on which nothing moves for this long is closed.
    pub http_idle_timeout: Duration,
    /// SIP over TCP/TLS: a connection without any message or keep-alive for this long is
    /// closed, unless a registration or a call uses it (then [`IN_USE_IDLE`]).
    pub sip_idle_timeout: Duration,
    /// Open connections from one address, per kind of listener (HTTP; SIP TCP and TLS).
    pub per_address: usize,
    /// Open connections in all, per kind of listener.
    pub total: usize,
}

/// A flow a registration or a call depends on stays open without traffic for this long: a
/// phone refreshes its registration (at most an hour, the registrar's maximum) on it.
pub const IN_USE_IDLE: Duration = Duration::from_secs(3600 + 300);

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            tls_handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            sip_idle_timeout: Duration::from_secs(300),
            per_address: 256,
            total: 10_000,
        }
    }
}

/// Open connections of one kind of listener, by address.
#[derive(Debug)]
pub struct ConnectionCaps {
    kind: &'static str,
    per_address: usize,
    total: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl ConnectionCaps {
    pub fn new(kind: &'static str, limits: &ListenerLimits) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            kind,
            per_address: limits.per_address.max(1),
            total: limits.total.max(1),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for a new connection from `ip`, or `None` (close it at once) when the address
    /// or the listener is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_ip) = &mut *open;
        let mine = by_ip.get(&ip).copied().unwrap_or(0);
        if *total >= self.total || mine >= self.per_address {
            drop(open);
            let reason = if mine >= self.per_address {
                "per_address"
            } else {
                "total"
            };
            metrics::counter!("conclave_connections_refused_total", "listener" => self.kind, "reason" => reason)
                .increment(1);
            return None;
        }
        *total += 1;
        by_ip.insert(ip, mine + 1);
        metrics::gauge!("conclave_connections_open", "listener" => self.kind).set(*total as f64);
        Some(ConnectionSlot {
            caps: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// One open connection's place under the caps; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_ip) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
        metrics::gauge!("conclave_connections_open", "listener" => self.caps.kind)
            .set(*total as f64);
    }
}

/// glibc raises its mmap threshold after a large block is freed; from then on argon2's
/// 19 MiB buffers come from the allocator's heaps and stay resident (twenty logins left the
/// server 400 MB larger). A fixed threshold keeps large buffers in mappings of their own,
/// given back to the system when freed.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before heavy allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// The soft descriptor limit in force (0 until [`raise_descriptor_limit`] ran: no refusals).
static FD_LIMIT: AtomicUsize = AtomicUsize::new(0);
/// Descriptors open at the last sample.
static FD_SAMPLED: AtomicUsize = AtomicUsize::new(0);
/// Descriptors taken on since the last sample (an estimate: noted by whoever opens them).
static FD_SINCE: AtomicUsize = AtomicUsize::new(0);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (logged), remembers it, and starts the
/// sampler. Returns the limit now in force.
pub fn raise_descriptor_limit() -> usize {
    let limit = raise_nofile();
    FD_LIMIT.store(limit, Ordering::Relaxed);
    sample();
    metrics::gauge!("conclave_descriptors_limit").set(limit as f64);
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(async move {
            loop {
                // Idle (nothing opened since the last sample, far from the watermark): wait
                // for new work or a slow timer, not a 100 ms tick — an idle server should
                // not wake ten times a second. Openings count at once in the estimate, so
                // sampling only corrects for descriptors closed meanwhile.
                let near =
                    limit > 0 && FD_SAMPLED.load(Ordering::Relaxed) >= work_watermark(limit) / 2;
                if FD_SINCE.load(Ordering::Relaxed) == 0 && !near {
                    let _ = tokio::time::timeout(IDLE_SAMPLE, NEW_WORK.notified()).await;
                }
                tokio::time::sleep(BUSY_SAMPLE).await;
                sample();
            }
        });
    }
    limit
}

/// How often descriptors are counted while work comes in (and near the watermark).
const BUSY_SAMPLE: Duration = Duration::from_millis(100);
/// How often they are counted on an idle server.
const IDLE_SAMPLE: Duration = Duration::from_secs(5);
/// Wakes the sampler when descriptors are taken on after a quiet spell.
static NEW_WORK: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[cfg(target_os = "linux")]
fn raise_nofile() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!("cannot read the descriptor limit");
        return 0;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(
                soft = before,
                hard = lim.rlim_max,
                "cannot raise the descriptor limit"
            );
        }
    }
    let limit = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    tracing::info!(
        limit,
        was = before,
        work_watermark = work_watermark(limit),
        "descriptor limit"
    );
    limit
}

#[cfg(not(target_os = "linux"))]
fn raise_nofile() -> usize {
    0
}

fn reserve(limit: usize) -> usize {
    (limit / 8).max(32)
}

fn work_watermark(limit: usize) -> usize {
    limit.saturating_sub(reserve(limit))
}

fn http_watermark(limit: usize) -> usize {
    limit.saturating_sub(reserve(limit) / 4)
}

fn sample() {
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor is among those listed.
        let open = dir.count().saturating_sub(1);
        FD_SAMPLED.store(open, Ordering::Relaxed);
        FD_SINCE.store(0, Ordering::Relaxed);
        metrics::gauge!("conclave_descriptors_open").set(open as f64);
    }
}

/// Descriptors open at the last sample, and the limit in force (0: unknown).
pub fn descriptors() -> (usize, usize) {
    (
        FD_SAMPLED.load(Ordering::Relaxed),
        FD_LIMIT.load(Ordering::Relaxed),
    )
}

fn estimate() -> usize {
    FD_SAMPLED.load(Ordering::Relaxed) + FD_SINCE.load(Ordering::Relaxed)
}

/// Counts descriptors about to be opened (a call's media sockets, a connection) until the
/// next sample sees them.
pub fn note_new_work(descriptors: usize) {
    if FD_SINCE.fetch_add(descriptors, Ordering::Relaxed) == 0 {
        NEW_WORK.notify_one();
    }
}

/// Whether new calls and new SIP connections may be taken on: false when descriptors run
/// short (answer new INVITEs 503 with Retry-After, close new connections at once).
pub fn accepting_new_work() -> bool {
    let limit = FD_LIMIT.load(Ordering::Relaxed);
    let ok = limit == 0 || estimate() < work_watermark(limit);
    if !ok {
        metrics::counter!("conclave_work_refused_total", "reason" => "descriptors").increment(1);
    }
    ok
}

/// Whether a new HTTP connection may be taken on (a smaller reserve than new work's, so the
/// console and `/healthz` keep working while calls and SIP connections are refused).
pub fn accepting_http() -> bool {
    let limit = FD_LIMIT.load(Ordering::Relaxed);
    limit == 0 || estimate() < http_watermark(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total() {
        let limits = ListenerLimits {
            per_address: 2,
            total: 3,
            ..ListenerLimits::default()
        };
        let caps = ConnectionCaps::new("test", &limits);
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let c = IpAddr::from([192, 0, 2, 3]);
        let a1 = caps.admit(a).expect("first");
        let _a2 = caps.admit(a).expect("second");
        assert!(caps.admit(a).is_none(), "per address");
        let _b1 = caps.admit(b).expect("another address");
        assert!(caps.admit(c).is_none(), "in total");
        drop(a1);
        let _c1 = caps.admit(c).expect("a slot came back");
        assert_eq!(caps.open(), 3);
    }

    #[test]
    fn watermarks_keep_a_reserve_for_http() {
        assert_eq!(work_watermark(256), 224);
        assert_eq!(http_watermark(256), 248);
        assert_eq!(work_watermark(65_536), 57_344);
        assert!(http_watermark(1024) > work_watermark(1024));
    }
}
