//! Thin wrappers over the Linux calls the engine needs: one UDP socket per member, epoll,
//! an absolute sleep, `recvmmsg` with kernel receive timestamps, `sendto`, the file
//! limit, and readings of a process from /proc.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::time::Duration;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Raises the open-file limit to at least `want` (the soft limit up to the hard one, and
/// the hard one too when we may).
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim: libc::rlimit = zeroed();
        check(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
        if lim.rlim_cur >= want {
            return Ok(lim.rlim_cur);
        }
        if lim.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Ok(want);
            }
        }
        lim.rlim_cur = lim.rlim_max.min(want);
        check(libc::setrlimit(libc::RLIMIT_NOFILE, &lim))?;
        Ok(lim.rlim_cur)
    }
}

/// Asks for timer wake-ups to the microsecond (the default slack is 50 µs).
pub fn tight_timer_slack() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

pub fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; zero is a valid value.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    s
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to a local int of the declared size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// A non-blocking UDP socket with kernel receive timestamps and drop counts, bound to `ip`
/// on a port the kernel picks; returns it and its port.
///
/// `shared`: one socket for many members, each with its own loopback address: bound to
/// 0.0.0.0 but to the loopback device only, told each datagram's destination address
/// (IP_PKTINFO) and given large buffers (forced when we may: we are often root).
pub fn udp_socket(ip: Ipv4Addr, rcvbuf: usize, shared: bool) -> io::Result<(RawFd, u16)> {
    // SAFETY: plain socket calls on a descriptor we own; pointers to locals.
    unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let guard = FdGuard(fd);
        set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        set_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
        // don't fragment: the kernel then needs no IP identification for each datagram
        // (a hashed, randomised generator that costs more than the rest of the send)
        set_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )?;
        let buf = rcvbuf as libc::c_int;
        if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, buf).is_err() {
            set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, buf)?;
        }
        let mut bind_ip = ip;
        if shared {
            set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            if set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20).is_err() {
                set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 8 << 20)?;
            }
            let dev = b"lo\0";
            check(libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr() as *const libc::c_void,
                dev.len() as libc::socklen_t,
            ))
            .map_err(|e| {
                io::Error::new(e.kind(), format!("binding to the loopback device: {e}"))
            })?;
            bind_ip = Ipv4Addr::UNSPECIFIED;
        }
        let addr = sockaddr(SocketAddrV4::new(bind_ip, 0));
        check(libc::bind(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ))?;
        let mut bound: libc::sockaddr_in = zeroed();
        let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        check(libc::getsockname(
            fd,
            &mut bound as *mut _ as *mut libc::sockaddr,
            &mut len,
        ))?;
        std::mem::forget(guard);
        Ok((fd, u16::from_be(bound.sin_port)))
    }
}

struct FdGuard(RawFd);
impl Drop for FdGuard {
    fn drop(&mut self) {
        // SAFETY: closing a descriptor we own.
        unsafe {
            libc::close(self.0);
        }
    }
}

/// Sends one datagram; a full socket buffer or an unreachable port is counted by the
/// caller, not fatal.
pub fn send_to(fd: RawFd, data: &[u8], to: &libc::sockaddr_in) -> io::Result<()> {
    // SAFETY: the buffer and address outlive the call.
    let r = unsafe {
        libc::sendto(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_DONTWAIT,
            to as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Datagrams queued for one `sendmmsg` on a shared socket, each from its member's own
/// address (IP_PKTINFO).
pub struct SendBatch {
    bufs: Vec<[u8; 1500]>,
    lens: Vec<usize>,
    dests: Vec<libc::sockaddr_in>,
    ctrl: Vec<[u64; 4]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
}

impl SendBatch {
    pub fn new(capacity: usize) -> SendBatch {
        SendBatch {
            bufs: vec![[0u8; 1500]; capacity],
            lens: vec![0; capacity],
            // SAFETY: plain old data; zero is valid.
            dests: vec![unsafe { zeroed() }; capacity],
            ctrl: vec![[0u64; 4]; capacity],
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                capacity
            ],
            hdrs: vec![unsafe { zeroed() }; capacity],
            len: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Queues `data` (at most 1500 bytes) from `src` to `dst`.
    pub fn push(&mut self, data: &[u8], src: Ipv4Addr, dst: &libc::sockaddr_in) {
        let i = self.len;
        let n = data.len().min(1500);
        self.bufs[i][..n].copy_from_slice(&data[..n]);
        self.lens[i] = n;
        self.dests[i] = *dst;
        let pktinfo = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        // SAFETY: the control buffer (32 bytes, 8-aligned) holds one cmsg of an in_pktinfo
        // (28 bytes with its header); written through the libc macros.
        unsafe {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_control = self.ctrl[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(h);
            (*c).cmsg_level = libc::IPPROTO_IP;
            (*c).cmsg_type = libc::IP_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in_pktinfo, pktinfo);
        }
        self.len += 1;
    }

    /// Sends what is queued; returns (sent, failed).
    pub fn flush(&mut self, fd: RawFd) -> (u64, u64) {
        for i in 0..self.len {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.dests[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_flags = 0;
        }
        let (mut done, mut failed, mut stalls) = (0usize, 0u64, 0);
        while done < self.len {
            // SAFETY: headers done..len point into buffers owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[done..].as_mut_ptr(),
                    (self.len - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                done += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock && stalls < 50 {
                // the send buffer is full: give the kernel 0.1 ms, 5 ms at most in all
                stalls += 1;
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // this datagram cannot go: skip it
            failed += 1;
            done += 1;
        }
        self.len = 0;
        (done as u64 - failed, failed)
    }
}

pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 with a flag.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
        })
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid descriptors, pointer to a local event.
        check(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits (blocking, at most `timeout_ms`) and returns the ready tokens.
    pub fn wait(&mut self, timeout_ms: i32, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        // SAFETY: the events buffer has the capacity we pass.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        out.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// Sleeps until `at` (CLOCK_MONOTONIC), at once if it has passed.
pub fn sleep_until(at: Duration) {
    let ts = libc::timespec {
        tv_sec: at.as_secs() as libc::time_t,
        tv_nsec: at.subsec_nanos() as libc::c_long,
    };
    // SAFETY: clock_nanosleep with a valid timespec; EINTR just wakes us early.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        );
    }
}

fn now(clock: libc::clockid_t) -> Duration {
    // SAFETY: clock_gettime into a local.
    let mut ts: libc::timespec = unsafe { zeroed() };
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CLOCK_MONOTONIC.
pub fn monotonic() -> Duration {
    now(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME, the clock of kernel receive timestamps.
pub fn realtime() -> Duration {
    now(libc::CLOCK_REALTIME)
}

/// One received datagram: its kernel arrival time (CLOCK_REALTIME), its destination address
/// (shared sockets) and the socket's count of datagrams dropped for want of room so far.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    /// Where it came from.
    pub src: Option<SocketAddrV4>,
    pub at: Option<Duration>,
    pub dst: Option<Ipv4Addr>,
    pub drops: Option<u32>,
}

/// Buffers for `recvmmsg` of up to `batch` datagrams with their receive timestamps.
pub struct RecvBatch {
    bufs: Vec<[u8; 2048]>,
    ctrl: Vec<[u64; 16]>,
    names: Vec<libc::sockaddr_in>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    pub fn new(batch: usize) -> RecvBatch {
        let mut b = RecvBatch {
            bufs: vec![[0u8; 2048]; batch],
            ctrl: vec![[0u64; 16]; batch],
            // SAFETY: plain old data; zero is valid.
            names: vec![unsafe { zeroed() }; batch],
            iov: Vec::with_capacity(batch),
            // SAFETY: mmsghdr is plain old data; zero is valid.
            hdrs: vec![unsafe { zeroed() }; batch],
        };
        for i in 0..batch {
            b.iov.push(libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: 2048,
            });
        }
        b
    }

    /// Reads what `fd` has (up to the batch size, without blocking); returns how many.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..self.hdrs.len() {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.names[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = size_of::<[u64; 16]>();
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by self, sized as declared.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // an ICMP error queued on the socket (the peer's port closed): not data
                io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last `recv`.
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let len = (self.hdrs[i].msg_len as usize).min(2048);
        let h = &self.hdrs[i].msg_hdr;
        let name = &self.names[i];
        let src = (h.msg_namelen as usize >= size_of::<libc::sockaddr_in>()
            && name.sin_family == libc::AF_INET as libc::sa_family_t)
            .then(|| {
                SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
                    u16::from_be(name.sin_port),
                )
            });
        let mut d = Datagram {
            data: &self.bufs[i][..len],
            src,
            at: None,
            dst: None,
            drops: None,
        };
        // SAFETY: walking the control buffer the kernel filled, with the libc macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                        let ts = std::ptr::read_unaligned(data as *const libc::timespec);
                        d.at = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                    }
                    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                        d.drops = Some(std::ptr::read_unaligned(data as *const u32));
                    }
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let p = std::ptr::read_unaligned(data as *const libc::in_pktinfo);
                        d.dst = Some(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)));
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        d
    }
}

/// A process's CPU time (user + system, seconds) and resident memory (KiB), from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// From `stat`: counted in clock ticks (10 ms), by sampling on many kernels — a small
    /// load over a short window is only known to ± several percent.
    pub cpu_s: f64,
    /// The scheduler's exact on-CPU time of the threads alive now (`task/*/schedstat`, ns),
    /// and which threads they were: exact when both samples saw the same threads.
    pub run_ns: Option<u64>,
    pub tasks_hash: u64,
    pub rss_kib: u64,
    pub threads: u64,
}

impl ProcSample {
    /// CPU seconds from `self` to `end`: the scheduler's count when the same threads lived
    /// through the window (one that ended would take its time with it), else the ticks.
    pub fn cpu_until(&self, end: &ProcSample) -> f64 {
        match (self.run_ns, end.run_ns) {
            (Some(a), Some(b)) if self.tasks_hash == end.tasks_hash && b >= a => {
                (b - a) as f64 / 1e9
            }
            _ => end.cpu_s - self.cpu_s,
        }
    }
}

/// Sums the threads' `schedstat` run times, and a hash of their ids.
fn run_time(pid: u32) -> Option<(u64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    let mut total = 0u64;
    for tid in &tids {
        let line = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
        total += line.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tids.hash(&mut h);
    Some((total, h.finish()))
}

pub fn proc_sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; f[0] is field 3
    let field = |n: usize| -> u64 { f.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf with a constant.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let run = run_time(pid);
    Ok(ProcSample {
        cpu_s: (field(14) + field(15)) as f64 / tck,
        run_ns: run.map(|(ns, _)| ns),
        tasks_hash: run.map_or(0, |(_, h)| h),
        rss_kib: kib("VmRSS:"),
        threads: kib("Threads:"),
    })
}

/// CPU time (seconds) all cores spent busy since boot (user, nice, system, irq, softirq),
/// and the time the hypervisor gave to other machines (steal), from /proc/stat: with the
/// server's and our own, tells what others used.
pub fn machine_busy() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| v.get(i)).sum();
    let steal = v.get(7).copied().unwrap_or(0);
    // SAFETY: sysconf with a constant.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (busy as f64 / tck, steal as f64 / tck)
}

/// This process's CPU time (user + system, seconds).
pub fn own_cpu() -> f64 {
    // SAFETY: getrusage into a local.
    let mut u: libc::rusage = unsafe { zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}
