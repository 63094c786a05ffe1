//! Deterministic mutation testing (a small in-CI complement to the cargo-fuzz targets):
//! mutated real messages through the parser, the SDP code, the stream framer and the
//! endpoint never panic, and the endpoint never keeps a transaction forever.

use std::time::{Duration, Instant};

use conclave_sip::message::error_response;
use conclave_sip::offer_answer::{self, Direction, LocalMedia, MediaConfig, SrtpPolicy};
use conclave_sip::parser::{Limits, StreamFramer, parse_datagram};
use conclave_sip::sdp::SessionDescription;
use conclave_sip::transaction::Config;
use conclave_sip::{Endpoint, Event, Message, Peer, Transport};

const SAMPLES: &[&[u8]] = &[
    include_bytes!("../testdata/invite_sdp.sip"),
    include_bytes!("../testdata/ok_sdp.sip"),
    include_bytes!("../testdata/register.sip"),
    include_bytes!("../testdata/bye.sip"),
    include_bytes!("../testdata/info_dtmf.sip"),
];

const SDPS: &[&[u8]] = &[
    include_bytes!("../testdata/offer.sdp"),
    include_bytes!("../testdata/answer.sdp"),
    include_bytes!("../testdata/srtp_offer.sdp"),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b" ",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b"\"",
    b"@",
    b"[",
    b"]",
    b"=",
    b"\\",
    b"\r\n ",
    b"Content-Length: 99999\r\n",
    b"l: 5\r\n",
    b"\xff\xfe",
    b"\0",
    b"%",
    b"/",
    b"SIP/2.0",
    b"sip:",
    b"tel:",
    b"z9hG4bK",
    b";tag=",
    b"*",
    b"m=audio 0 RTP/SAVP 0\r\n",
    b"a=rtpmap:",
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
    b"c=IN IP4 0.0.0.0\r\n",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let pos = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let p = pos.min(v.len() - 1);
                v[p] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let end = (pos + rng.below(40)).min(v.len());
                v.drain(pos.min(end)..end);
            }
            2 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(pos..pos, s.iter().copied());
            }
            3 if !v.is_empty() => {
                // Duplicate a slice (repeated headers / lines).
                let start = rng.below(v.len());
                let end = (start + rng.below(200)).min(v.len());
                let piece = v[start..end].to_vec();
                v.splice(pos..pos, piece);
            }
            _ => v.truncate(pos),
        }
    }
    v
}

#[test]
fn mutated_messages_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let limits = Limits::default();
    let mut parsed = 0;
    for i in 0..20_000 {
        let m = mutate(&mut rng, SAMPLES[i % SAMPLES.len()]);
        match parse_datagram(&m, &limits) {
            Ok(msg) => {
                parsed += 1;
                let h = msg.headers();
                let _ = (
                    h.vias(),
                    h.cseq(),
                    h.from(),
                    h.to(),
                    h.contacts(),
                    h.expires(),
                );
                if let Message::Request(r) = &msg
                    && let Err(e) = r.validate(&["timer"])
                {
                    let _ = error_response(&m, &e);
                }
                let unlimited = Limits {
                    max_message_size: usize::MAX,
                    max_header_bytes: usize::MAX,
                    max_headers: usize::MAX,
                    max_body_size: usize::MAX,
                };
                let again = parse_datagram(&msg.to_bytes(), &unlimited);
                assert!(
                    again.is_ok(),
                    "reserialization failed for {:?}",
                    String::from_utf8_lossy(&m)
                );
            }
            Err(e) => {
                let _ = error_response(&m, &e);
            }
        }
    }
    assert!(parsed > 1000, "mutations too destructive: {parsed}");
}

#[test]
fn mutated_sdp_never_panics() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let local = LocalMedia {
        video_port: None,
        addr: "203.0.113.5".parse().unwrap(),
        port: 40000,
        session_id: 1,
        session_version: 1,
        srtp_key: Some([1u8; 30]),
        srtp_policy: None,
        direction: Direction::SendRecv,
    };
    for i in 0..20_000 {
        let m = mutate(&mut rng, SDPS[i % SDPS.len()]);
        let Ok(sdp) = SessionDescription::parse(&m) else {
            continue;
        };
        assert!(SessionDescription::parse(&sdp.to_bytes()).is_ok());
        let srtp = [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Mandatory][i % 3];
        let cfg = MediaConfig {
            srtp,
            ..MediaConfig::default()
        };
        if let Ok((ans, _)) = offer_answer::answer(&sdp, &cfg, &local) {
            assert!(SessionDescription::parse(&ans.to_bytes()).is_ok());
        }
        let ours = offer_answer::offer(&cfg, &local);
        let _ = offer_answer::process_answer(&ours, &sdp, &cfg, &local);
    }
}

#[test]
fn mutated_streams_never_panic() {
    let mut rng = Rng(42);
    for i in 0..3_000 {
        let mut stream = Vec::new();
        for j in 0..3 {
            stream.extend(mutate(&mut rng, SAMPLES[(i + j) % SAMPLES.len()]));
            if rng.below(3) == 0 {
                stream.extend_from_slice(b"\r\n\r\n");
            }
        }
        let mut f = StreamFramer::new(Limits::default());
        let chunk = rng.below(100) + 1;
        'outer: for c in stream.chunks(chunk) {
            f.push(c);
            while let Some(r) = f.next_message() {
                if r.is_err() {
                    break 'outer;
                }
            }
        }
    }
}

#[test]
fn endpoint_under_mutated_traffic_ends_all_transactions() {
    let mut rng = Rng(7);
    let t0 = Instant::now();
    let mut now = t0;
    let mut ep = Endpoint::new(Config::default(), 3);
    let src = Peer::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap());
    for i in 0..5_000 {
        let base = SAMPLES[i % SAMPLES.len()];
        let m = if rng.below(2) == 0 {
            base.to_vec()
        } else {
            mutate(&mut rng, base)
        };
        ep.handle_datagram(now, &m, src);
        while let Some(e) = ep.poll_event() {
            if let Event::Request { tx, request, .. } = e {
                match rng.below(4) {
                    0 => {}
                    k => {
                        let st = [180u16, 200, 486][k - 1];
                        let _ = ep.respond(now, tx, request.response(st, "X", Some("t")));
                    }
                }
            }
        }
        while ep.poll_transmit().is_some() {}
        if rng.below(10) == 0 {
            now += Duration::from_millis(rng.below(5000) as u64);
            ep.handle_timeout(now);
        }
    }
    while let Some(t) = ep.poll_timeout() {
        now = now.max(t);
        ep.handle_timeout(now);
        while ep.poll_event().is_some() {}
        while ep.poll_transmit().is_some() {}
    }
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn user_agent_under_mutated_traffic_ends_all_calls() {
    use conclave_sip::offer_answer::LocalMedia;
    use conclave_sip::ua::{LocalAddress, UaConfig, UaEvent, UserAgent};
    let mut rng = Rng(99);
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = UaConfig {
        locals: vec![LocalAddress {
            transport: Transport::Udp,
            host: conclave_sip::Host::Ip("203.0.113.5".parse().unwrap()),
            port: 5060,
        }],
        ..UaConfig::default()
    };
    let mut ua = UserAgent::new(cfg, 5);
    let media = LocalMedia {
        video_port: None,
        addr: "203.0.113.5".parse().unwrap(),
        port: 40000,
        session_id: 1,
        session_version: 1,
        srtp_key: None,
        srtp_policy: None,
        direction: Direction::SendRecv,
    };
    let src = Peer::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap());
    let mut calls = Vec::new();
    for i in 0..3_000 {
        let base = SAMPLES[i % SAMPLES.len()];
        let m = if rng.below(3) == 0 {
            mutate(&mut rng, base)
        } else {
            // Fresh Call-ID and branch so that many calls exist at once.
            String::from_utf8_lossy(base)
                .replace("8f0b1e6c", &format!("c{i}"))
                .replace("z9hG4bK", &format!("z9hG4bK{i}x"))
                .into_bytes()
        };
        ua.handle_datagram(now, &m, src);
        while let Some(e) = ua.poll_event() {
            if let UaEvent::Incoming { call, .. } = e {
                calls.push(call);
                let _ = match rng.below(3) {
                    0 => ua.answer(now, call, media.clone()).map(|_| ()),
                    1 => ua.ring(now, call),
                    _ => ua.reject(now, call, 603, vec![]),
                };
            }
        }
        while ua.poll_transmit().is_some() {}
        if rng.below(20) == 0 {
            now += Duration::from_millis(rng.below(5000) as u64);
            ua.handle_timeout(now);
        }
    }
    assert!(calls.len() > 100);
    for c in calls {
        let _ = ua.hangup(now, c);
    }
    while let Some(t) = ua.poll_timeout() {
        now = now.max(t);
        ua.handle_timeout(now);
        while ua.poll_event().is_some() {}
        while ua.poll_transmit().is_some() {}
    }
    assert_eq!(ua.call_count(), 0);
    assert_eq!(ua.endpoint().transaction_count(), 0);
}
