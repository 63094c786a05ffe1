//! Cost of a whole call through the stack: two `UserAgent`s exchange INVITE (with SDP
//! offer/answer), 100, 180, 200, ACK, BYE, 200 over an in-memory "network".
//!
//! Run: `cargo bench -p conclave-sip --bench call`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use conclave_sip::offer_answer::{Direction, LocalMedia};
use conclave_sip::ua::{Dial, LocalAddress, UaConfig, UaEvent, UserAgent};
use conclave_sip::{Host, NameAddr, Peer, Transport, Uri};

fn ua(addr: SocketAddr, seed: u64) -> UserAgent {
    let cfg = UaConfig {
        locals: vec![LocalAddress {
            transport: Transport::Udp,
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }],
        ..UaConfig::default()
    };
    UserAgent::new(cfg, seed)
}

fn media(addr: SocketAddr) -> LocalMedia {
    LocalMedia {
        video_port: None,
        addr: addr.ip(),
        port: 40000,
        session_id: 1,
        session_version: 1,
        srtp_key: None,
        srtp_policy: None,
        direction: Direction::SendRecv,
    }
}

/// Moves all pending datagrams both ways; returns (a events, b events).
fn pump(
    a: &mut UserAgent,
    b: &mut UserAgent,
    now: Instant,
    pa: Peer,
    pb: Peer,
    ea: &mut Vec<UaEvent>,
    eb: &mut Vec<UaEvent>,
) {
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            b.handle_datagram(now, &t.payload, pa);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_datagram(now, &t.payload, pb);
        }
        ea.extend(std::iter::from_fn(|| a.poll_event()));
        eb.extend(std::iter::from_fn(|| b.poll_event()));
        if !moved {
            break;
        }
    }
}

fn bench(c: &mut Criterion) {
    let a_addr: SocketAddr = "192.0.2.10:5060".parse().expect("addr");
    let b_addr: SocketAddr = "203.0.113.5:5060".parse().expect("addr");
    let pa = Peer::new(Transport::Udp, a_addr);
    let pb = Peer::new(Transport::Udp, b_addr);
    let mut a = ua(a_addr, 1);
    let mut b = ua(b_addr, 2);
    let t0 = Instant::now();
    let mut now = t0;
    let mut g = c.benchmark_group("ua");
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_setup_and_teardown", |bench| {
        bench.iter(|| {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            let call = a
                .dial(
                    now,
                    Dial {
                        target: Uri::parse("sip:3000@203.0.113.5").expect("uri"),
                        dest: pb,
                        from: NameAddr::parse("<sip:alice@example.com>").expect("from"),
                        to: NameAddr::parse("<sip:3000@203.0.113.5>").expect("to"),
                        media: media(a_addr),
                        credentials: None,
                        headers: vec![],
                        ring_timeout: None,
                    },
                )
                .expect("dial");
            pump(&mut a, &mut b, now, pa, pb, &mut ea, &mut eb);
            let Some(UaEvent::Incoming { call: cb, .. }) = eb.pop() else {
                panic!("no incoming call")
            };
            b.ring(now, cb).expect("ring");
            b.answer(now, cb, media(b_addr)).expect("answer");
            pump(&mut a, &mut b, now, pa, pb, &mut ea, &mut eb);
            a.hangup(now, call).expect("hangup");
            pump(&mut a, &mut b, now, pa, pb, &mut ea, &mut eb);
            // Let transaction timers run out now and then so state stays bounded.
            now += Duration::from_millis(50);
            a.handle_timeout(now);
            b.handle_timeout(now);
            black_box((ea, eb));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
