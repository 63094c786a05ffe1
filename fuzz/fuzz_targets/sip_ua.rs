#![no_main]
//! The call layer: arbitrary datagrams, call commands and time; never panics and every
//! call and transaction ends once time runs long enough.

use std::time::{Duration, Instant};

use conclave_sip::offer_answer::{Direction, LocalMedia};
use conclave_sip::ua::{LocalAddress, UaConfig, UaEvent, UserAgent};
use conclave_sip::{Host, Peer, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = UaConfig {
        locals: vec![LocalAddress {
            transport: Transport::Udp,
            host: Host::Ip("203.0.113.5".parse().unwrap()),
            port: 5060,
        }],
        ..UaConfig::default()
    };
    let mut ua = UserAgent::new(cfg, 9);
    let src = Peer::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap());
    let media = LocalMedia {
        video_port: None,
        addr: "203.0.113.5".parse().unwrap(),
        port: 40000,
        session_id: 1,
        session_version: 1,
        srtp_key: Some([5u8; 30]),
        srtp_policy: None,
        direction: Direction::SendRecv,
    };
    let mut calls = Vec::new();
    for rec in data.split(|b| *b == 0xff) {
        let Some((&op, body)) = rec.split_first() else { continue };
        match op % 8 {
            0..=3 => ua.handle_datagram(now, body, src),
            4 => {
                now += Duration::from_millis(u64::from(op) * 97);
                ua.handle_timeout(now);
            }
            5 => {
                if let Some(&c) = calls.get(usize::from(op) % calls.len().max(1)) {
                    let _ = ua.hangup(now, c);
                }
            }
            6 => {
                if let Some(&c) = calls.get(usize::from(op) % calls.len().max(1)) {
                    let _ = ua.hold(now, c, op & 0x10 != 0);
                }
            }
            _ => {}
        }
        while let Some(e) = ua.poll_event() {
            match e {
                UaEvent::Incoming { call, .. } => {
                    calls.push(call);
                    match op % 3 {
                        0 => {
                            let _ = ua.answer(now, call, media.clone());
                        }
                        1 => {
                            let _ = ua.ring(now, call);
                        }
                        _ => {
                            let _ = ua.reject(now, call, 486, vec![]);
                        }
                    }
                }
                UaEvent::Request { tx, request, .. } => {
                    let _ = ua.respond(now, tx, request.response(200, "OK", Some("t")));
                }
                _ => {}
            }
        }
        while ua.poll_transmit().is_some() {}
    }
    // Hang everything up and let time run: everything must end.
    for c in calls {
        let _ = ua.hangup(now, c);
    }
    for _ in 0..1_000_000 {
        let Some(t) = ua.poll_timeout() else { break };
        now = now.max(t);
        ua.handle_timeout(now);
        while ua.poll_event().is_some() {}
        while ua.poll_transmit().is_some() {}
    }
    assert_eq!(ua.call_count(), 0, "stuck call");
    assert_eq!(ua.endpoint().transaction_count(), 0, "stuck transaction");
});
