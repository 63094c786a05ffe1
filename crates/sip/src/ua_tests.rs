//! Two user agents over a simulated network with simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::auth::{DigestCredentials, DigestServer};
use crate::dialog::DialogState;
use crate::offer_answer::Codec;
use crate::parser::{Limits, parse_datagram};

const A: &str = "192.0.2.10:5060";
const B: &str = "203.0.113.5:5060";

fn ua(addr: &str, seed: u64, tweak: impl FnOnce(&mut UaConfig)) -> UserAgent {
    let a: SocketAddr = addr.parse().unwrap();
    let mut cfg = UaConfig {
        locals: vec![LocalAddress {
            transport: Transport::Udp,
            host: Host::Ip(a.ip()),
            port: a.port(),
        }],
        ..UaConfig::default()
    };
    tweak(&mut cfg);
    UserAgent::new(cfg, seed)
}

fn media(addr: &str) -> LocalMedia {
    let a: SocketAddr = addr.parse().unwrap();
    LocalMedia {
        video_port: None,
        addr: a.ip(),
        port: a.port(),
        session_id: 7,
        session_version: 1,
        srtp_key: None,
        srtp_policy: None,
        direction: Direction::SendRecv,
    }
}

struct Net {
    a: UserAgent,
    b: UserAgent,
    now: Instant,
    /// Drop everything from a to b while true.
    cut_a_to_b: bool,
    a_to_b_methods: Vec<String>,
}

fn summary(payload: &[u8]) -> String {
    match parse_datagram(payload, &Limits::default()) {
        Ok(Message::Request(r)) => r.method.to_string(),
        Ok(Message::Response(r)) => format!(
            "{} {}",
            r.status,
            r.headers
                .cseq()
                .map(|c| c.method.to_string())
                .unwrap_or_default()
        ),
        Err(e) => format!("bad: {e}"),
    }
}

impl Net {
    fn new(a: UserAgent, b: UserAgent) -> Net {
        Net {
            a,
            b,
            now: Instant::now(),
            cut_a_to_b: false,
            a_to_b_methods: Vec::new(),
        }
    }

    /// Runs until quiet or until events are pending; returns them (a's, b's).
    fn step(&mut self, max: Duration) -> (Vec<UaEvent>, Vec<UaEvent>) {
        let end = self.now + max;
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.a_to_b_methods.push(summary(&t.payload));
                if !self.cut_a_to_b {
                    self.b.handle_datagram(
                        self.now,
                        &t.payload,
                        Peer::new(Transport::Udp, A.parse().unwrap()),
                    );
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.a.handle_datagram(
                    self.now,
                    &t.payload,
                    Peer::new(Transport::Udp, B.parse().unwrap()),
                );
            }
            while let Some(e) = self.a.poll_event() {
                ea.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                eb.push(e);
            }
            if moved {
                continue;
            }
            if !ea.is_empty() || !eb.is_empty() {
                return (ea, eb);
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    return (ea, eb);
                }
            }
        }
    }

    /// Runs for `d` collecting all events.
    fn run(&mut self, d: Duration) -> (Vec<UaEvent>, Vec<UaEvent>) {
        let end = self.now + d;
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        while self.now < end {
            let (a, b) = self.step(end - self.now);
            ea.extend(a);
            eb.extend(b);
        }
        (ea, eb)
    }
}

fn dial_b(net: &mut Net) -> CallId {
    let now = net.now;
    net.a
        .dial(
            now,
            Dial {
                target: Uri::parse("sip:3000@203.0.113.5").unwrap(),
                dest: Peer::new(Transport::Udp, B.parse().unwrap()),
                from: NameAddr::parse("<sip:alice@example.com>").unwrap(),
                to: NameAddr::parse("<sip:3000@203.0.113.5>").unwrap(),
                media: media("192.0.2.10:30000"),
                credentials: Some(("alice".into(), "pw".into())),
                headers: vec![],
                ring_timeout: None,
            },
        )
        .unwrap()
}

fn incoming(ev: &[UaEvent]) -> (CallId, Request) {
    ev.iter()
        .find_map(|e| match e {
            UaEvent::Incoming { call, request, .. } => Some((*call, request.clone())),
            _ => None,
        })
        .expect("incoming call")
}

fn ended(ev: &[UaEvent]) -> Option<EndReason> {
    ev.iter().find_map(|e| match e {
        UaEvent::Ended { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn call_ring_answer_hold_resume_hangup() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    let ca = dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    net.b.ring(now, cb).unwrap();
    let (ea, _) = net.step(Duration::from_secs(1));
    // 100 Trying from the endpoint's 200 ms timer may come first.
    let ringing = ea.iter().any(|e| {
        matches!(
            e,
            UaEvent::Progress {
                progress: CallProgress::Ringing,
                ..
            }
        )
    }) || {
        let (ea2, _) = net.step(Duration::from_secs(1));
        ea2.iter().any(|e| {
            matches!(
                e,
                UaEvent::Progress {
                    progress: CallProgress::Ringing,
                    ..
                }
            )
        })
    };
    assert!(ringing);
    let now = net.now;
    let nb = net
        .b
        .answer(now, cb, media("203.0.113.5:40000"))
        .unwrap()
        .unwrap();
    assert_eq!(nb.codec, Codec::Opus);
    let (ea, _) = net.run(Duration::from_secs(1));
    let na = ea
        .iter()
        .find_map(|e| match e {
            UaEvent::Answered { media, .. } => Some(media.clone()),
            _ => None,
        })
        .expect("answered");
    assert_eq!(na.remote, Some("203.0.113.5:40000".parse().unwrap()));
    assert_eq!(net.b.dialog(cb).unwrap().state, DialogState::Confirmed);

    // A puts B on hold, then resumes.
    let now = net.now;
    net.a.hold(now, ca, true).unwrap();
    let (ea, eb) = net.run(Duration::from_secs(1));
    let mb = eb
        .iter()
        .find_map(|e| match e {
            UaEvent::MediaUpdated { media, .. } => Some(media.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(mb.direction, Direction::RecvOnly);
    let ma = ea
        .iter()
        .find_map(|e| match e {
            UaEvent::MediaUpdated { media, .. } => Some(media.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(ma.direction, Direction::SendOnly);
    let now = net.now;
    net.a.hold(now, ca, false).unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    assert!(eb.iter().any(|e| matches!(e, UaEvent::MediaUpdated { media, .. } if media.direction == Direction::SendRecv)));

    // B hangs up.
    let now = net.now;
    net.b.hangup(now, cb).unwrap();
    let (ea, eb) = net.run(Duration::from_secs(2));
    assert_eq!(ended(&ea), Some(EndReason::RemoteHangup));
    assert_eq!(ended(&eb), Some(EndReason::LocalHangup));
    net.run(Duration::from_secs(60));
    assert_eq!(net.a.call_count(), 0);
    assert_eq!(net.b.call_count(), 0);
    assert_eq!(net.a.endpoint().transaction_count(), 0);
    assert_eq!(net.b.endpoint().transaction_count(), 0);
}

#[test]
fn ring_timeout_cancels() {
    let mut net = Net::new(
        ua(A, 1, |c| c.ring_timeout = Duration::from_secs(5)),
        ua(B, 2, |_| {}),
    );
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    net.b.ring(now, cb).unwrap();
    let (ea, eb) = net.run(Duration::from_secs(10));
    assert_eq!(ended(&eb), Some(EndReason::Cancelled));
    assert_eq!(ended(&ea), Some(EndReason::NoAnswer));
    assert!(net.a_to_b_methods.contains(&"CANCEL".to_string()));
    assert!(
        net.a_to_b_methods.contains(&"ACK".to_string()),
        "487 is ACKed"
    );
}

#[test]
fn busy_and_rejection() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    net.b.reject(now, cb, 486, vec![]).unwrap();
    let (ea, eb) = net.run(Duration::from_secs(1));
    assert_eq!(ended(&eb), Some(EndReason::Rejected(486)));
    assert_eq!(ended(&ea), Some(EndReason::Busy));
}

#[test]
fn trunk_auth_retry() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    let server = DigestServer::new(b"secret", "gw");
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, req) = incoming(&eb);
    assert!(req.headers.get(&HeaderName::ProxyAuthorization).is_none());
    let now = net.now;
    let challenge = server
        .challenges(1000, false)
        .into_iter()
        .map(|c| (HeaderName::ProxyAuthenticate, c))
        .collect();
    net.b.reject(now, cb, 407, challenge).unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    let (cb2, req2) = incoming(&eb);
    let p = req2
        .headers
        .authorization(&HeaderName::ProxyAuthorization)
        .unwrap()
        .unwrap();
    let creds = DigestCredentials::parse(&p).unwrap();
    assert_eq!(server.verify_password(&creds, "INVITE", "pw", 1001), Ok(()));
    assert_eq!(req2.headers.cseq().unwrap().seq, 2);
    let now = net.now;
    net.b.answer(now, cb2, media("203.0.113.5:40000")).unwrap();
    let (ea, _) = net.run(Duration::from_secs(1));
    assert!(ea.iter().any(|e| matches!(e, UaEvent::Answered { .. })));
}

#[test]
fn peer_gone_session_timer_expires() {
    let st = SessionTimerConfig {
        session_expires: 90,
        min_se: 90,
    };
    let mut net = Net::new(
        ua(A, 1, |c| c.session_timer = Some(st)),
        ua(B, 2, |c| c.session_timer = Some(st)),
    );
    let ca = dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    net.b.answer(now, cb, media("203.0.113.5:40000")).unwrap();
    net.run(Duration::from_secs(1));
    // A refreshes (it asked, refresher unspecified, and supports timer): after 45 s a
    // re-INVITE; the call survives several intervals.
    net.run(Duration::from_secs(200));
    let reinvites = net.a_to_b_methods.iter().filter(|m| *m == "INVITE").count();
    assert!(reinvites >= 4, "{:?}", net.a_to_b_methods);
    assert!(net.a.media(ca).is_some());
    assert!(net.b.media(cb).is_some());
    // Now A's packets are lost: B's session expires and it hangs up; A's refresh times
    // out and it ends too.
    net.cut_a_to_b = true;
    let (ea, eb) = net.run(Duration::from_secs(200));
    assert_eq!(ended(&eb), Some(EndReason::SessionExpired));
    assert!(ended(&ea).is_some());
    assert_eq!(net.b.call_count(), 0);
    assert_eq!(net.a.call_count(), 0);
}

#[test]
fn late_offer_answered_in_ack() {
    let mut b = ua(B, 2, |_| {});
    let now = Instant::now();
    let src = Peer::new(Transport::Udp, A.parse().unwrap());
    let inv = "INVITE sip:3000@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKlate1;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=lt\r\nTo: <sip:3000@203.0.113.5>\r\n\
Call-ID: late-1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.10>\r\nContent-Length: 0\r\n\r\n";
    b.handle_datagram(now, inv.as_bytes(), src);
    let UaEvent::Incoming { call, .. } = b.poll_event().unwrap() else {
        panic!()
    };
    assert_eq!(
        b.answer(now, call, media("203.0.113.5:40000")).unwrap(),
        None
    );
    let t = b.poll_transmit().unwrap();
    let Ok(Message::Response(ok)) = parse_datagram(&t.payload, &Limits::default()) else {
        panic!()
    };
    assert_eq!(ok.status, 200);
    let offer = SessionDescription::parse(&ok.body).unwrap();
    let (ans, _) = offer_answer::answer(
        &offer,
        &MediaConfig {
            codecs: vec![Codec::Pcma],
            ..MediaConfig::default()
        },
        &media("192.0.2.10:30000"),
    )
    .unwrap();
    let to = ok.headers.get(&HeaderName::To).unwrap();
    let body = ans.to_string();
    let ack = format!(
        "ACK sip:conclave@203.0.113.5:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKlate2;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=lt\r\nTo: {to}\r\n\
Call-ID: late-1\r\nCSeq: 1 ACK\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    b.handle_datagram(now, ack.as_bytes(), src);
    let ev = b.poll_event().unwrap();
    let UaEvent::MediaUpdated { media, .. } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(media.codec, Codec::Pcma);
    assert_eq!(media.remote, Some("192.0.2.10:30000".parse().unwrap()));
    // A BYE for an unknown dialog gets 481.
    let bye = inv
        .replace("INVITE sip", "BYE sip")
        .replace("1 INVITE", "2 BYE")
        .replace(
            "To: <sip:3000@203.0.113.5>",
            "To: <sip:3000@203.0.113.5>;tag=nope",
        )
        .replace("z9hG4bKlate1", "z9hG4bKlate3");
    while b.poll_transmit().is_some() {}
    b.handle_datagram(now, bye.as_bytes(), src);
    let t = b.poll_transmit().unwrap();
    assert!(summary(&t.payload).starts_with("481"));
}

#[test]
fn info_dtmf_and_non_call_requests_pass_through() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    let ca = dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    net.b.answer(now, cb, media("203.0.113.5:40000")).unwrap();
    net.run(Duration::from_secs(1));
    // A sends INFO through its dialog using the endpoint directly.
    let d = net.a.dialog(ca).unwrap().clone();
    let mut d = d;
    let via = Via::new(
        Transport::Udp,
        Host::parse("192.0.2.10").unwrap(),
        Some(5060),
        "z9hG4bKinfo",
    );
    let mut info = d.create_request(Method::Info, &via);
    info.headers
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.body = b"Signal=#\r\nDuration=100\r\n".to_vec();
    let now = net.now;
    net.a
        .endpoint()
        .send_request(now, info, Peer::new(Transport::Udp, B.parse().unwrap()))
        .unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    assert!(
        eb.iter()
            .any(|e| matches!(e, UaEvent::Dtmf { digit: '#', .. }))
    );
    // A video terminal that lost the picture asks for a keyframe (RFC 5168).
    let via = Via::new(
        Transport::Udp,
        Host::parse("192.0.2.10").unwrap(),
        Some(5060),
        "z9hG4bKfpu",
    );
    let mut info = d.create_request(Method::Info, &via);
    info.headers
        .push(HeaderName::ContentType, "application/media_control+xml");
    info.body = b"<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n<media_control><vc_primitive>\
<to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>\r\n"
        .to_vec();
    let now = net.now;
    net.a
        .endpoint()
        .send_request(now, info, Peer::new(Transport::Udp, B.parse().unwrap()))
        .unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    assert!(
        eb.iter()
            .any(|e| matches!(e, UaEvent::PictureUpdate { .. })),
        "{eb:?}"
    );
    // An out-of-dialog OPTIONS reaches the application.
    let opt = "OPTIONS sip:203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKopt\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=o\r\nTo: <sip:203.0.113.5>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let now = net.now;
    net.b.handle_datagram(
        now,
        opt.as_bytes(),
        Peer::new(Transport::Udp, A.parse().unwrap()),
    );
    let ev = net.b.poll_event().unwrap();
    let UaEvent::Request { tx, request, .. } = ev else {
        panic!("{ev:?}")
    };
    net.b
        .respond(now, tx, request.response(200, "OK", Some("x")))
        .unwrap();
}

#[test]
fn ended_calls_release_their_transactions() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    for _ in 0..20 {
        let ca = dial_b(&mut net);
        let (_, eb) = net.step(Duration::from_secs(1));
        let (cb, _) = incoming(&eb);
        let now = net.now;
        net.b.answer(now, cb, media("203.0.113.5:40000")).unwrap();
        net.run(Duration::from_secs(1));
        let now = net.now;
        net.a.hangup(now, ca).unwrap();
        net.run(Duration::from_secs(1));
    }
    net.run(Duration::from_secs(60));
    assert_eq!(net.a.call_count() + net.b.call_count(), 0);
    assert!(net.a.by_tx.is_empty(), "{:?}", net.a.by_tx);
    assert!(net.b.by_tx.is_empty(), "{:?}", net.b.by_tx);
    assert!(net.a.by_dialog.is_empty() && net.b.by_dialog.is_empty());
}

#[test]
fn bye_in_early_dialog_terminates_the_invite() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, inv) = incoming(&eb);
    let now = net.now;
    net.b.ring(now, cb).unwrap();
    net.step(Duration::from_secs(1));
    // Build the caller's BYE in the early dialog by hand.
    let mut d = net.b.dialog(cb).unwrap().clone();
    std::mem::swap(&mut d.local_tag, &mut d.remote_tag);
    std::mem::swap(&mut d.local_uri, &mut d.remote_uri);
    let via = Via::new(
        Transport::Udp,
        Host::parse("192.0.2.10").unwrap(),
        Some(5060),
        "z9hG4bKearlybye",
    );
    d.local_seq = inv.headers.cseq().unwrap().seq;
    let bye = d.create_request(Method::Bye, &via);
    let now = net.now;
    net.b.handle_datagram(
        now,
        &bye.to_bytes(),
        Peer::new(Transport::Udp, A.parse().unwrap()),
    );
    let mut statuses = Vec::new();
    while let Some(t) = net.b.poll_transmit() {
        statuses.push(summary(&t.payload));
    }
    assert_eq!(statuses, vec!["200 BYE", "487 INVITE"]);
    let ev: Vec<UaEvent> = std::iter::from_fn(|| net.b.poll_event()).collect();
    assert_eq!(ended(&ev), Some(EndReason::RemoteHangup));
}

#[test]
fn hangup_before_ack_waits_for_it() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    net.b.answer(now, cb, media("203.0.113.5:40000")).unwrap();
    // B hangs up at once, before A's ACK is delivered.
    net.b.hangup(now, cb).unwrap();
    assert!(net.b.poll_event().is_none(), "not ended yet");
    let (ea, eb) = net.run(Duration::from_secs(2));
    assert!(ea.iter().any(|e| matches!(e, UaEvent::Answered { .. })));
    assert_eq!(ended(&ea), Some(EndReason::RemoteHangup));
    assert_eq!(ended(&eb), Some(EndReason::LocalHangup));
}

#[test]
fn invite_without_contact_is_refused() {
    let mut b = ua(B, 2, |_| {});
    let inv = "INVITE sip:3000@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnc\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=lt\r\nTo: <sip:3000@203.0.113.5>\r\n\
Call-ID: nc-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    b.handle_datagram(
        Instant::now(),
        inv.as_bytes(),
        Peer::new(Transport::Udp, A.parse().unwrap()),
    );
    assert!(b.poll_event().is_none());
    assert!(summary(&b.poll_transmit().unwrap().payload).starts_with("400"));
    assert_eq!(b.call_count(), 0);
}

#[test]
fn session_interval_too_small_is_retried() {
    // B insists on at least 1800 s; A asks for 90 s.
    let mut net = Net::new(
        ua(A, 1, |c| {
            c.session_timer = Some(SessionTimerConfig {
                session_expires: 90,
                min_se: 90,
            })
        }),
        ua(B, 2, |c| {
            c.session_timer = Some(SessionTimerConfig {
                session_expires: 1800,
                min_se: 1800,
            })
        }),
    );
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    assert_eq!(
        net.b.answer(now, cb, media("203.0.113.5:40000")),
        Err(UaError::Refused(422))
    );
    let (_, eb) = net.run(Duration::from_secs(1));
    let (cb2, req) = incoming(&eb);
    assert_eq!(req.headers.session_expires().unwrap().unwrap().delta, 1800);
    let now = net.now;
    net.b.answer(now, cb2, media("203.0.113.5:40000")).unwrap();
    let (ea, _) = net.run(Duration::from_secs(1));
    assert!(ea.iter().any(|e| matches!(e, UaEvent::Answered { .. })));
}

#[test]
fn unanswered_incoming_call_is_not_kept_forever() {
    let mut net = Net::new(
        ua(A, 1, |c| c.ring_timeout = Duration::from_secs(3600)),
        ua(B, 2, |_| {}),
    );
    dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    incoming(&eb);
    // B's application never answers: the endpoint's guard answers 408 after 300 s.
    let (ea, eb) = net.run(Duration::from_secs(400));
    assert_eq!(ended(&eb), Some(EndReason::Timeout));
    assert_eq!(ended(&ea), Some(EndReason::NoAnswer), "408 at the caller");
    assert_eq!(net.b.call_count(), 0);
    assert_eq!(net.a.call_count(), 0);
}

#[test]
fn tls_contacts_are_sips_only_in_sips_dialogs() {
    let tls = LocalAddress {
        transport: Transport::Tls,
        host: Host::Ip("192.0.2.10".parse().unwrap()),
        port: 5061,
    };
    assert_eq!(
        contact_uri("conclave", &tls, false).to_string(),
        "sip:conclave@192.0.2.10:5061;transport=tls"
    );
    assert_eq!(
        contact_uri("conclave", &tls, true).to_string(),
        "sips:conclave@192.0.2.10:5061"
    );
    assert!(is_sips(&Uri::parse("sips:8001@example.com").unwrap()));
    assert!(!is_sips(
        &Uri::parse("sip:8001@example.com;transport=tls").unwrap()
    ));
}

#[test]
fn video_added_by_re_invite_to_a_call_that_began_audio_only() {
    let mut net = Net::new(ua(A, 1, |_| {}), ua(B, 2, |_| {}));
    let ca = dial_b(&mut net);
    let (_, eb) = net.step(Duration::from_secs(1));
    let (cb, _) = incoming(&eb);
    let now = net.now;
    let answered = net
        .b
        .answer(now, cb, media("203.0.113.5:40000"))
        .unwrap()
        .unwrap();
    assert!(answered.video.is_none());
    net.run(Duration::from_secs(1));

    // A (a softphone) turns its camera on: a re-INVITE offering video. B has no video port
    // for the call: it answers audio as before and says video was offered.
    let now = net.now;
    net.a.offer_video(now, ca, 30002).unwrap();
    let (ea, eb) = net.run(Duration::from_secs(1));
    assert!(
        eb.iter()
            .any(|e| matches!(e, UaEvent::VideoOffered { call } if *call == cb)),
        "{eb:?}"
    );
    assert!(
        !ea.iter()
            .any(|e| matches!(e, UaEvent::MediaUpdated { media, .. } if media.video.is_some()))
    );

    // B gives the call a video port and offers it back: both sides now have video
    let now = net.now;
    net.b.offer_video(now, cb, 40002).unwrap();
    let (ea, eb) = net.run(Duration::from_secs(1));
    let video_at_b = eb
        .iter()
        .find_map(|e| match e {
            UaEvent::MediaUpdated { media, .. } => media.video.clone(),
            _ => None,
        })
        .expect("B's re-INVITE answered with video");
    assert_eq!(video_at_b.remote, Some("192.0.2.10:30002".parse().unwrap()));
    let video_at_a = ea
        .iter()
        .find_map(|e| match e {
            UaEvent::MediaUpdated { media, .. } => media.video.clone(),
            _ => None,
        })
        .expect("A answered the offer with video");
    assert_eq!(
        video_at_a.remote,
        Some("203.0.113.5:40002".parse().unwrap())
    );
    // a call that has video is not told again
    let now = net.now;
    net.a.reinvite(now, ca).unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    assert!(!eb.iter().any(|e| matches!(e, UaEvent::VideoOffered { .. })));
}
