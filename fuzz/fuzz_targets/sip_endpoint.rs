#![no_main]
//! The whole endpoint state machine: datagrams, answers and time in arbitrary order.

use std::time::{Duration, Instant};

use conclave_sip::transaction::Config;
use conclave_sip::{Endpoint, Event, Peer, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut ep = Endpoint::new(Config::default(), 7);
    let src = Peer::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap());
    // Records separated by 0xff: first byte is an opcode.
    for rec in data.split(|b| *b == 0xff) {
        let Some((&op, body)) = rec.split_first() else { continue };
        match op % 4 {
            0 | 1 => ep.handle_datagram(now, body, src),
            2 => {
                now += Duration::from_millis(u64::from(op) * 37);
                ep.handle_timeout(now);
            }
            _ => {}
        }
        while let Some(e) = ep.poll_event() {
            if let Event::Request { tx, request, .. } = e {
                let status = [100u16, 180, 200, 486][usize::from(op) % 4];
                let _ = ep.respond(now, tx, request.response(status, "X", Some("t")));
            }
        }
        while ep.poll_transmit().is_some() {}
    }
    // Drain all timers: everything must end.
    for _ in 0..1_000_000 {
        let Some(t) = ep.poll_timeout() else { break };
        now = now.max(t);
        ep.handle_timeout(now);
        while ep.poll_event().is_some() {}
        while ep.poll_transmit().is_some() {}
    }
    assert_eq!(ep.transaction_count(), 0, "stuck transaction");
});
