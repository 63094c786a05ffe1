//! Batched UDP for the media workers (Linux): `recvmmsg` and `sendmmsg` move up to a batch of
//! datagrams per system call, `epoll` waits on a worker's sockets and its wake-up `eventfd`.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Datagrams read per `recvmmsg`.
pub const RECV_BATCH: usize = 64;
/// Largest datagram read (bigger ones are truncated and then dropped as malformed).
pub const MAX_DATAGRAM: usize = 2048;
/// Datagrams written per `sendmmsg`.
const SEND_BATCH: usize = 256;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A non-blocking UDP socket bound to `addr`, with large kernel buffers (a worker's shared
/// port carries every member of its rooms).
pub fn udp_socket(addr: SocketAddr, buffers: usize) -> io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max, unless the process may
    // raise them past it (CAP_NET_ADMIN: SO_RCVBUFFORCE). The worker reads its sockets every
    // few milliseconds, not per packet, so the receive buffer holds those milliseconds.
    let forced = libc::c_int::try_from(buffers).unwrap_or(libc::c_int::MAX);
    if socket.set_recv_buffer_size(buffers).is_ok() && socket.recv_buffer_size()? < buffers {
        set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, forced);
    }
    if socket.set_send_buffer_size(buffers).is_ok() && socket.send_buffer_size()? < buffers {
        set_int_option(&socket, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, forced);
    }
    // The kernel stamps each datagram as it arrives: the worker reads once per 20 ms tick,
    // and the jitter buffers need the arrival time, not the read time.
    set_int_option(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    if addr.is_ipv4() {
        // Don't-fragment on every datagram (media is far below any MTU): the kernel then
        // leaves the IP ID at 0 instead of drawing one from its shared, hashed generator for
        // every packet of an unconnected socket — a visible share of the send path.
        set_int_option(
            &socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Best effort: an option the socket works without (no privilege, an old kernel) is left
/// at its default.
fn set_int_option(
    socket: &socket2::Socket,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) {
    // SAFETY: a valid socket and a c_int option value of the right length.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Wakes a worker blocked in [`Poller::wait`] from another thread.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: the descriptor is new and ours.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd; a full counter (EAGAIN)
        // means a wake-up is pending anyway.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Clears pending wake-ups.
    pub fn reset(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8);
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An epoll instance: level-triggered readiness of a worker's descriptors, by token.
pub struct Poller {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: returns a new descriptor or -1.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Poller {
            // SAFETY: the descriptor is new and ours.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid epoll and target descriptors, a valid event.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })
            .map(|_| ())
    }

    pub fn remove(&self, fd: RawFd) {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; a descriptor that is not registered is an error we ignore.
        unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event);
        }
    }

    /// Waits until a descriptor is readable or `timeout` passes (`None`: forever); returns
    /// the tokens of the ready ones.
    pub fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<u64>) -> io::Result<()> {
        ready.clear();
        // epoll counts whole milliseconds: round up so a deadline is never missed early.
        let ms = match timeout {
            None => -1,
            Some(t) => t.as_micros().div_ceil(1000).min(60_000) as libc::c_int,
        };
        // SAFETY: the buffer holds `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn from_socket_addr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let s: &mut libc::sockaddr_in =
                unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let s: &mut libc::sockaddr_in6 =
                unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            s.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Receive buffers for [`RecvBatch::recv`], reused across calls.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// Ancillary data per datagram (the kernel's receive timestamp); u64s keep the cmsg
    /// headers aligned.
    controls: Vec<[u64; CONTROL_WORDS]>,
}

/// Room for one `SCM_TIMESTAMPNS` message (a cmsghdr and a timespec: 32 bytes) and spare.
const CONTROL_WORDS: usize = 8;

// SAFETY: the raw pointers inside point into the batch's own vectors and are rebuilt before
// every call; the batch moves with its worker thread.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![[0; MAX_DATAGRAM]; RECV_BATCH],
            // SAFETY: all-zero is a valid sockaddr_storage.
            addrs: vec![unsafe { MaybeUninit::zeroed().assume_init() }; RECV_BATCH],
            iovecs: Vec::with_capacity(RECV_BATCH),
            headers: Vec::with_capacity(RECV_BATCH),
            controls: vec![[0; CONTROL_WORDS]; RECV_BATCH],
        }
    }

    /// Reads what is waiting on `fd` (up to a batch), without blocking; calls `each` with the
    /// source, bytes and kernel arrival time (`CLOCK_REALTIME` since the Unix epoch, when the
    /// socket has `SO_TIMESTAMPNS`) of every datagram. Returns how many were read.
    pub fn recv(
        &mut self,
        fd: RawFd,
        mut each: impl FnMut(SocketAddr, &[u8], Option<Duration>),
    ) -> io::Result<usize> {
        self.iovecs.clear();
        self.headers.clear();
        for buf in self.bufs.iter_mut() {
            self.iovecs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            });
        }
        for (i, (addr, control)) in self.addrs.iter_mut().zip(&mut self.controls).enumerate() {
            // SAFETY: all-zero is a valid msghdr; the pointers set below stay valid for the
            // call (they point into this batch's vectors, which are not resized meanwhile).
            let mut hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            hdr.msg_hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = std::mem::size_of_val(control) as _;
            self.headers.push(hdr);
        }
        // SAFETY: `headers` holds RECV_BATCH valid entries pointing at valid buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // ICMP errors (port unreachable) surface on the next receive: not fatal.
                io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(err),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let len = self.headers[i].msg_len as usize;
            let truncated = self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            if truncated {
                continue;
            }
            if let Some(from) = to_socket_addr(&self.addrs[i]) {
                let stamp = arrival_stamp(&self.headers[i].msg_hdr);
                each(from, &self.bufs[i][..len.min(MAX_DATAGRAM)], stamp);
            }
        }
        Ok(n)
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, if the kernel gave one.
fn arrival_stamp(hdr: &libc::msghdr) -> Option<Duration> {
    if hdr.msg_controllen == 0 || hdr.msg_flags & libc::MSG_CTRUNC != 0 {
        return None;
    }
    // SAFETY: the kernel filled `msg_control` (a buffer of this batch) with `msg_controllen`
    // bytes of well-formed cmsgs; CMSG_FIRSTHDR/CMSG_NXTHDR stay within it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let secs = u64::try_from(ts.tv_sec).ok()?;
                let nanos = u32::try_from(ts.tv_nsec).ok()?;
                return Some(Duration::new(secs, nanos));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// Sends datagrams from `fd` in batches, without blocking. Returns how many the kernel took;
/// the rest are dropped (a full send buffer is congestion, and media is not retransmitted).
pub fn send_batch<'a>(
    fd: RawFd,
    datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> io::Result<usize> {
    let datagrams: Vec<(SocketAddr, &[u8])> = datagrams.collect();
    let mut sent = 0;
    for chunk in datagrams.chunks(SEND_BATCH) {
        // SAFETY: all-zero is a valid sockaddr_storage and mmsghdr.
        let mut addrs: Vec<libc::sockaddr_storage> =
            vec![unsafe { MaybeUninit::zeroed().assume_init() }; chunk.len()];
        let mut iovecs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(_, data)| libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(chunk.len());
        for (i, (to, _)) in chunk.iter().enumerate() {
            let len = from_socket_addr(*to, &mut addrs[i]);
            // SAFETY: as above.
            let mut hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = len;
            hdr.msg_hdr.msg_iov = &mut iovecs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            headers.push(hdr);
        }
        let mut offset = 0;
        while offset < headers.len() {
            // SAFETY: the headers point at addresses and buffers alive for this call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    headers[offset..].as_mut_ptr(),
                    (headers.len() - offset) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(sent),
                    // One bad destination (unreachable, refused) must not stop the others.
                    _ => {
                        offset += 1;
                        continue;
                    }
                }
            }
            sent += n as usize;
            offset += n as usize;
        }
    }
    Ok(sent)
}

/// The address other hosts reach us at, when listening on every interface: the source the
/// kernel would pick for a route out (no packet is sent).
pub fn outbound_ip(v6: bool) -> Option<IpAddr> {
    let (bind, probe): (SocketAddr, SocketAddr) = if v6 {
        ("[::]:0".parse().ok()?, "[2001:db8::1]:9".parse().ok()?)
    } else {
        ("0.0.0.0:0".parse().ok()?, "192.0.2.1:9".parse().ok()?)
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    socket
        .local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_and_comes_back_with_its_sources() {
        let a = udp_socket("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let b = udp_socket("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let to = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 20 + i as usize]).collect();
        let sent = send_batch(a.as_raw_fd(), payloads.iter().map(|p| (to, p.as_slice()))).unwrap();
        assert_eq!(sent, 100);
        let mut poller = Poller::new().unwrap();
        poller.add(b.as_raw_fd(), 7).unwrap();
        let mut ready = Vec::new();
        poller
            .wait(Some(Duration::from_secs(2)), &mut ready)
            .unwrap();
        assert_eq!(ready, vec![7]);
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        let mut stamps = Vec::new();
        let sent_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        while got.len() < 100 {
            let n = batch
                .recv(b.as_raw_fd(), |from, data, stamp| {
                    stamps.push(stamp);
                    got.push((from, data.to_vec()))
                })
                .unwrap();
            assert!(n > 0, "all 100 arrive on loopback");
        }
        assert!(got.iter().all(|(from, _)| *from == a.local_addr().unwrap()));
        // Each datagram carries the kernel's arrival time: within a second of the send.
        assert!(
            stamps
                .iter()
                .all(|s| s.is_some_and(|s| s.abs_diff(sent_at) < Duration::from_secs(1))),
            "{stamps:?}"
        );
        assert_eq!(
            got.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
            payloads
        );
        assert_eq!(
            batch.recv(b.as_raw_fd(), |_, _, _| {}).unwrap(),
            0,
            "nothing blocks"
        );
    }

    #[test]
    fn a_waker_interrupts_a_wait() {
        let mut poller = Poller::new().unwrap();
        let waker = Waker::new().unwrap();
        poller.add(waker.fd(), 1).unwrap();
        let mut ready = Vec::new();
        poller.wait(Some(Duration::ZERO), &mut ready).unwrap();
        assert!(ready.is_empty());
        waker.wake();
        poller
            .wait(Some(Duration::from_secs(2)), &mut ready)
            .unwrap();
        assert_eq!(ready, vec![1]);
        waker.reset();
        poller.wait(Some(Duration::ZERO), &mut ready).unwrap();
        assert!(ready.is_empty());
    }
}
