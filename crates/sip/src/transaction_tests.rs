//! Deterministic transaction tests with simulated time.

use std::time::{Duration, Instant};

use super::*;
use crate::message::Message;
use crate::parser::{Limits, parse_datagram};

fn udp(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse().unwrap())
}

fn tcp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: addr.parse().unwrap(),
        connection: Some(7),
    }
}

struct H {
    ep: Endpoint,
    t0: Instant,
    now: Instant,
}

impl H {
    fn new() -> H {
        let t0 = Instant::now();
        H {
            ep: Endpoint::new(Config::default(), 1),
            t0,
            now: t0,
        }
    }

    /// Advances simulated time to `ms` after start, firing timers on the way exactly at
    /// their deadlines. Returns (time in ms, transmitted message) pairs.
    fn run_until(&mut self, ms: u64) -> Vec<(u64, Message)> {
        let end = self.t0 + Duration::from_millis(ms);
        let mut out = self.drain_at();
        while let Some(t) = self.ep.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t;
            self.ep.handle_timeout(t);
            out.extend(self.drain_at());
        }
        self.now = end;
        out
    }

    fn drain_at(&mut self) -> Vec<(u64, Message)> {
        let ms = (self.now - self.t0).as_millis() as u64;
        let mut v = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            v.push((ms, parse_datagram(&t.payload, &Limits::default()).unwrap()));
        }
        v
    }

    fn drain(&mut self) -> Vec<Message> {
        self.drain_at().into_iter().map(|(_, m)| m).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.ep.poll_event() {
            v.push(e);
        }
        v
    }

    fn feed(&mut self, msg: &str, from: Peer) {
        self.ep.handle_datagram(self.now, msg.as_bytes(), from);
    }
}

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:bob@10.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@192.0.2.1>;tag=a1\r\n\
To: <sip:bob@10.0.0.1>\r\n\
Call-ID: call-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.1>\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn ack(branch: &str, to_tag: &str) -> String {
    format!(
        "ACK sip:bob@10.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@192.0.2.1>;tag=a1\r\n\
To: <sip:bob@10.0.0.1>;tag={to_tag}\r\n\
Call-ID: call-1\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn out_request(ep: &mut Endpoint, method: Method) -> Request {
    let branch = ep.new_branch();
    let mut r = Request::new(
        method.clone(),
        crate::uri::Uri::parse("sip:gw@10.9.9.9").unwrap(),
    );
    r.headers.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport"),
    );
    r.headers.push(HeaderName::MaxForwards, "70");
    r.headers
        .push(HeaderName::From, "<sip:conclave@10.0.0.1>;tag=c1");
    r.headers.push(HeaderName::To, "<sip:gw@10.9.9.9>");
    r.headers.push(HeaderName::CallId, "out-1");
    r.headers.push(HeaderName::CSeq, format!("1 {method}"));
    r
}

fn response_to(req: &Request, status: u16, to_tag: Option<&str>) -> String {
    String::from_utf8(
        req.response(status, reason_phrase(status), to_tag)
            .to_bytes(),
    )
    .unwrap()
}

fn status(m: &Message) -> u16 {
    match m {
        Message::Response(r) => r.status,
        Message::Request(_) => 0,
    }
}

fn method(m: &Message) -> Option<Method> {
    match m {
        Message::Request(r) => Some(r.method.clone()),
        Message::Response(_) => None,
    }
}

#[test]
fn invite_client_timer_a_schedule_and_timer_b() {
    let mut h = H::new();
    let req = out_request(&mut h.ep, Method::Invite);
    let tx = h.ep.send_request(h.now, req, udp("10.9.9.9:5060")).unwrap();
    let sent = h.run_until(40_000);
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    let ev = h.events();
    assert_eq!(ev, vec![Event::Timeout { tx }, Event::Terminated { tx }]);
    assert_eq!(h.ep.transaction_count(), 0);
    // Timeout exactly at 64*T1.
    assert!(h.ep.poll_timeout().is_none());
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_then_f() {
    let mut h = H::new();
    let req = out_request(&mut h.ep, Method::Options);
    let tx = h.ep.send_request(h.now, req, udp("10.9.9.9:5060")).unwrap();
    let sent = h.run_until(33_000);
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(
        h.events(),
        vec![Event::Timeout { tx }, Event::Terminated { tx }]
    );
}

#[test]
fn non_invite_client_proceeding_retransmits_at_t2_and_completes() {
    let mut h = H::new();
    let req = out_request(&mut h.ep, Method::Register);
    let tx =
        h.ep.send_request(h.now, req.clone(), udp("10.9.9.9:5060"))
            .unwrap();
    h.run_until(600); // one retransmit at 500
    h.feed(&response_to(&req, 100, None), udp("10.9.9.9:5060"));
    let sent = h.run_until(10_000);
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![1500, 5500, 9500]);
    h.feed(&response_to(&req, 200, Some("x")), udp("10.9.9.9:5060"));
    let ev = h.events();
    assert!(matches!(&ev[0], Event::Response { response, .. } if response.status == 100));
    assert!(matches!(&ev[1], Event::Response { response, .. } if response.status == 200));
    // Response retransmission absorbed; Timer K = T4 ends it.
    h.feed(&response_to(&req, 200, Some("x")), udp("10.9.9.9:5060"));
    assert!(h.events().is_empty());
    assert!(h.run_until(16_000).is_empty());
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
}

#[test]
fn reliable_transport_has_no_retransmissions() {
    let mut h = H::new();
    let req = out_request(&mut h.ep, Method::Options);
    let tx =
        h.ep.send_request(h.now, req.clone(), tcp("10.9.9.9:5060"))
            .unwrap();
    let sent = h.run_until(31_000);
    assert_eq!(sent.len(), 1);
    h.feed(&response_to(&req, 200, Some("x")), tcp("10.9.9.9:5060"));
    h.run_until(31_000);
    let ev = h.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1], Event::Terminated { tx }, "Timer K is zero on TCP");
}

#[test]
fn invite_server_trying_after_200ms_and_non2xx_retransmit_until_ack() {
    let mut h = H::new();
    let src = udp("192.0.2.1:40000");
    h.feed(&invite("z9hG4bKs1"), src);
    let ev = h.events();
    let Event::Request { tx, request, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    let tx = *tx;
    // received/rport were stamped: responses go to the source port.
    let via = request.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("192.0.2.1"));
    assert_eq!(via.rport(), Some(40000));
    let sent = h.run_until(199);
    assert!(sent.is_empty());
    let sent = h.run_until(300);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 200);
    assert_eq!(status(&sent[0].1), 100);
    // Retransmitted INVITE gets the last provisional again.
    h.feed(&invite("z9hG4bKs1"), src);
    assert_eq!(status(&h.drain()[0]), 100);
    assert!(h.events().is_empty(), "retransmission is not a new request");
    let req = h.ep.request_of(tx).unwrap().clone();
    h.ep.respond(h.now, tx, req.response(486, "Busy Here", Some("b1")))
        .unwrap();
    assert_eq!(status(&h.drain()[0]), 486);
    // Cannot answer twice.
    assert_eq!(
        h.ep.respond(h.now, tx, req.response(200, "OK", Some("b1"))),
        Err(TxError::InvalidState)
    );
    let sent = h.run_until(2_000);
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![800, 1800]); // Timer G: T1, 2*T1
    // All to the source port (rport).
    while h.ep.poll_transmit().is_some() {}
    h.feed(&ack("z9hG4bKs1", "b1"), src);
    assert!(h.events().is_empty(), "ACK for non-2xx is absorbed");
    assert!(h.run_until(6_000).is_empty(), "no more retransmissions");
    h.run_until(7_000); // Timer I = T4
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
}

#[test]
fn invite_server_timer_h_when_ack_never_comes() {
    let mut h = H::new();
    h.feed(&invite("z9hG4bKs2"), udp("192.0.2.1:5060"));
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(603, "Decline", Some("t")))
        .unwrap();
    let sent = h.run_until(40_000);
    let times: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
}

#[test]
fn invite_server_2xx_retransmitted_until_ack_with_new_branch() {
    let mut h = H::new();
    let src = udp("192.0.2.1:5060");
    h.feed(&invite("z9hG4bKs3"), src);
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(180, "Ringing", Some("b2")))
        .unwrap();
    h.ep.respond(h.now, tx, request.response(200, "OK", Some("b2")))
        .unwrap();
    let sent = h.run_until(3_600);
    let st: Vec<(u64, u16)> = sent.iter().map(|(t, m)| (*t, status(m))).collect();
    assert_eq!(
        st,
        vec![(0, 180), (0, 200), (500, 200), (1500, 200), (3500, 200)]
    );
    // ACK for 2xx is a new transaction (new branch), matched by dialog ids.
    h.feed(&ack("z9hG4bKother", "b2"), src);
    let ev = h.events();
    assert!(matches!(&ev[..], [Event::Ack { tx: Some(t), .. }] if *t == tx));
    // Duplicate ACK absorbed; no more 2xx retransmissions.
    h.feed(&ack("z9hG4bKother", "b2"), src);
    assert!(h.events().is_empty());
    assert!(h.run_until(20_000).is_empty());
    h.run_until(40_000);
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
    // A late ACK after the transaction is gone is passed up unmatched.
    h.feed(&ack("z9hG4bKlate", "b2"), src);
    assert!(matches!(&h.events()[..], [Event::Ack { tx: None, .. }]));
}

#[test]
fn invite_server_2xx_without_ack_reports_ack_timeout() {
    let mut h = H::new();
    h.feed(&invite("z9hG4bKs4"), udp("192.0.2.1:5060"));
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(200, "OK", Some("b")))
        .unwrap();
    let sent = h.run_until(40_000);
    // 0, .5, 1.5, 3.5, 7.5, then every 4 s up to 32 s.
    assert_eq!(sent.len(), 11);
    assert_eq!(
        h.events(),
        vec![Event::AckTimeout { tx }, Event::Terminated { tx }]
    );
}

#[test]
fn cancel_of_ringing_invite() {
    let mut h = H::new();
    let src = udp("192.0.2.1:5060");
    h.feed(&invite("z9hG4bKc1"), src);
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(180, "Ringing", Some("r1")))
        .unwrap();
    h.drain();
    let cancel = invite("z9hG4bKc1")
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    h.feed(&cancel, src);
    let sent = h.drain();
    assert_eq!(sent.len(), 2);
    let Message::Response(ok) = &sent[0] else {
        panic!()
    };
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.cseq().unwrap().method, Method::Cancel);
    assert_eq!(ok.headers.to().unwrap().tag(), Some("r1"));
    let Message::Response(r487) = &sent[1] else {
        panic!()
    };
    assert_eq!(r487.status, 487);
    assert_eq!(r487.headers.to().unwrap().tag(), Some("r1"));
    let ev = h.events();
    assert!(matches!(&ev[..], [Event::Cancelled { tx: t, .. }] if *t == tx));
    // The application's late 200 is refused.
    assert_eq!(
        h.ep.respond(h.now, tx, request.response(200, "OK", Some("r1"))),
        Err(TxError::InvalidState)
    );
    // ACK for the 487 is absorbed.
    h.feed(&ack("z9hG4bKc1", "r1"), src);
    assert!(h.events().is_empty());
    // CANCEL for an unknown transaction: 481.
    let stray = cancel.replace("z9hG4bKc1", "z9hG4bKnone");
    h.feed(&stray, src);
    assert_eq!(status(&h.drain()[0]), 481);
}

#[test]
fn invite_client_forked_2xx_and_ack_retransmission() {
    let mut h = H::new();
    let gw = udp("10.9.9.9:5060");
    let req = out_request(&mut h.ep, Method::Invite);
    let tx = h.ep.send_request(h.now, req.clone(), gw).unwrap();
    h.drain();
    h.feed(&response_to(&req, 180, Some("f1")), gw);
    h.feed(&response_to(&req, 183, Some("f2")), gw);
    h.feed(&response_to(&req, 200, Some("f1")), gw);
    let ev = h.events();
    assert_eq!(ev.len(), 3);
    // The application ACKs the 2xx.
    let mut a = Request::new(Method::Ack, req.uri.clone());
    a.headers
        .push(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKack1");
    a.headers.push(HeaderName::To, "<sip:gw@10.9.9.9>;tag=f1");
    h.ep.send_ack(Some(tx), &a, gw);
    assert_eq!(method(&h.drain()[0]), Some(Method::Ack));
    // Retransmitted 2xx: the endpoint repeats the ACK, no new event.
    h.feed(&response_to(&req, 200, Some("f1")), gw);
    assert_eq!(method(&h.drain()[0]), Some(Method::Ack));
    assert!(h.events().is_empty());
    // A 2xx from another fork is reported.
    h.feed(&response_to(&req, 200, Some("f2")), gw);
    let ev = h.events();
    assert!(
        matches!(&ev[..], [Event::Response { response, .. }] if response.headers.to().unwrap().tag() == Some("f2"))
    );
    // Timer M ends the transaction; later 2xx are stray.
    h.run_until(33_000);
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
    h.feed(&response_to(&req, 200, Some("f1")), gw);
    assert!(matches!(&h.events()[..], [Event::StrayResponse { .. }]));
}

#[test]
fn invite_client_non2xx_is_acked_by_the_transaction() {
    let mut h = H::new();
    let gw = udp("10.9.9.9:5060");
    let req = out_request(&mut h.ep, Method::Invite);
    let tx = h.ep.send_request(h.now, req.clone(), gw).unwrap();
    h.drain();
    h.feed(&response_to(&req, 486, Some("z")), gw);
    let sent = h.drain();
    let Message::Request(a) = &sent[0] else {
        panic!()
    };
    assert_eq!(a.method, Method::Ack);
    assert_eq!(
        a.headers.top_via().unwrap().branch(),
        req.headers.top_via().unwrap().branch()
    );
    assert_eq!(a.headers.to().unwrap().tag(), Some("z"));
    assert_eq!(a.headers.cseq().unwrap().method, Method::Ack);
    h.feed(&response_to(&req, 486, Some("z")), gw);
    assert_eq!(method(&h.drain()[0]), Some(Method::Ack));
    let ev = h.events();
    assert_eq!(ev.len(), 1, "retransmitted final not reported again");
    h.run_until(33_000);
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
}

#[test]
fn client_cancel_waits_for_provisional() {
    let mut h = H::new();
    let gw = udp("10.9.9.9:5060");
    let req = out_request(&mut h.ep, Method::Invite);
    let tx = h.ep.send_request(h.now, req.clone(), gw).unwrap();
    h.drain();
    h.ep.cancel(h.now, tx).unwrap();
    assert!(h.drain().is_empty(), "no CANCEL before a provisional");
    h.feed(&response_to(&req, 180, Some("r")), gw);
    let sent = h.drain();
    let Message::Request(c) = &sent[0] else {
        panic!()
    };
    assert_eq!(c.method, Method::Cancel);
    assert_eq!(
        c.headers.top_via().unwrap().branch(),
        req.headers.top_via().unwrap().branch()
    );
    assert_eq!(c.headers.cseq().unwrap().seq, 1);
    // The gateway answers CANCEL and the INVITE.
    let cancel_resp = response_to(c, 200, Some("r"));
    h.feed(&cancel_resp, gw);
    h.feed(&response_to(&req, 487, Some("r")), gw);
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, Event::Response { tx: t, response, .. } if *t == tx && response.status == 487)));
    // INVITE that never answers after CANCEL times out.
    let req2 = out_request(&mut h.ep, Method::Invite);
    let tx2 = h.ep.send_request(h.now, req2.clone(), gw).unwrap();
    h.feed(&response_to(&req2, 180, Some("q")), gw);
    h.ep.cancel(h.now, tx2).unwrap();
    h.run_until(100_000);
    let ev = h.events();
    assert!(ev.contains(&Event::Timeout { tx: tx2 }), "{ev:?}");
}

#[test]
fn bad_requests_get_4xx_through_a_transaction() {
    let mut h = H::new();
    let src = udp("192.0.2.1:5060");
    let bad = invite("z9hG4bKb1").replace("CSeq: 1 INVITE", "CSeq: x INVITE");
    h.feed(&bad, src);
    let sent = h.drain();
    assert_eq!(status(&sent[0]), 400);
    let ev = h.events();
    assert!(matches!(
        &ev[..],
        [Event::BadMessage { answered: true, .. }]
    ));
    // Unsupported Require: 420 with Unsupported.
    let r = invite("z9hG4bKb2").replace("Max-Forwards: 70", "Require: 100rel");
    h.feed(&r, src);
    let Message::Response(resp) = &h.drain()[0] else {
        panic!()
    };
    assert_eq!(resp.status, 420);
    assert_eq!(resp.headers.get(&HeaderName::Unsupported), Some("100rel"));
    h.events();
    // Garbage is dropped.
    h.feed("\u{0}\u{1}garbage\r\n\r\n", src);
    assert!(h.drain().is_empty());
    assert!(matches!(
        &h.events()[..],
        [
            Event::BadMessage {
                answered: false,
                ..
            },
            ..
        ]
    ));
    // Wrong Content-Length: 400.
    let r = invite("z9hG4bKb3").replace("Content-Length: 0", "Content-Length: 50");
    h.feed(&r, src);
    assert_eq!(status(&h.drain()[0]), 400);
    // Oversized: 513.
    let big = invite("z9hG4bKb4").replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Pad: {}\r\n", "a".repeat(20_000)),
    );
    h.feed(&big, src);
    assert_eq!(status(&h.drain()[0]), 513);
    h.events();
    // Unknown method: passed to the application (which answers 405/501).
    let m = invite("z9hG4bKb5")
        .replace("INVITE sip", "FOO sip")
        .replace("1 INVITE", "1 FOO");
    h.feed(&m, src);
    assert!(matches!(&h.events()[..], [Event::Request { .. }]));
}

#[test]
fn stuck_application_is_guarded() {
    let mut h = H::new();
    h.feed(&invite("z9hG4bKg1"), udp("192.0.2.1:5060"));
    let Event::Request { tx, .. } = h.events().remove(0) else {
        panic!()
    };
    let sent = h.run_until(301_000);
    assert!(sent.iter().any(|(_, m)| status(m) == 408));
    h.feed(&ack("z9hG4bKg1", "x"), udp("192.0.2.1:5060"));
    h.run_until(400_000);
    assert!(h.events().contains(&Event::Terminated { tx }));
    assert_eq!(h.ep.transaction_count(), 0);
}

#[test]
fn many_parallel_transactions() {
    let mut h = H::new();
    for i in 0..1000 {
        let req = invite(&format!("z9hG4bKp{i}")).replace("call-1", &format!("call-{i}"));
        h.feed(&req, udp("192.0.2.1:5060"));
    }
    let ev = h.events();
    assert_eq!(ev.len(), 1000);
    for e in ev {
        if let Event::Request { tx, request, .. } = e {
            h.ep.respond(h.now, tx, request.response(200, "OK", Some("t")))
                .unwrap();
        }
    }
    assert_eq!(h.drain().len(), 1000);
    for i in 0..1000 {
        let a = ack(&format!("z9hG4bKa{i}"), "t").replace("call-1", &format!("call-{i}"));
        h.feed(&a, udp("192.0.2.1:5060"));
    }
    assert_eq!(h.events().len(), 1000);
    assert!(
        h.run_until(1000).is_empty(),
        "no retransmissions after ACKs"
    );
    h.run_until(40_000);
    assert_eq!(h.ep.transaction_count(), 0);
}

#[test]
fn merged_request_gets_482() {
    let mut h = H::new();
    let src = udp("192.0.2.1:5060");
    h.feed(&invite("z9hG4bKm1"), src);
    assert!(matches!(&h.events()[..], [Event::Request { .. }]));
    // Same From tag, Call-ID and CSeq, other branch: the request was forked to us twice.
    h.feed(&invite("z9hG4bKm2"), udp("192.0.2.2:5060"));
    assert!(h.events().is_empty());
    let sent = h.drain();
    assert_eq!(status(sent.last().unwrap()), 482);
}

#[test]
fn server_over_tcp_answers_on_the_connection_without_retransmissions() {
    let mut h = H::new();
    let src = tcp("192.0.2.1:40001");
    let m = invite("z9hG4bKt1").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    h.feed(&m, src);
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(486, "Busy Here", Some("q")))
        .unwrap();
    let t = h.ep.poll_transmit().unwrap();
    assert_eq!(t.peer, src, "same connection");
    // No Timer G on TCP; Timer H still waits for the ACK.
    assert!(h.run_until(31_000).is_empty());
    h.feed(
        &ack("z9hG4bKt1", "q").replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
        src,
    );
    h.run_until(31_001); // Timer I is zero on TCP
    assert_eq!(h.events(), vec![Event::Terminated { tx }]);
}

#[test]
fn cancel_after_2xx_gets_200_but_no_487() {
    let mut h = H::new();
    let src = udp("192.0.2.1:5060");
    h.feed(&invite("z9hG4bKx1"), src);
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(200, "OK", Some("k")))
        .unwrap();
    h.drain();
    let cancel = invite("z9hG4bKx1")
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    h.feed(&cancel, src);
    let sent = h.drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0]), 200);
    assert!(h.events().is_empty(), "no Cancelled event once answered");
}

#[test]
fn late_and_reordered_messages_after_2xx() {
    let mut h = H::new();
    let src = udp("192.0.2.1:5060");
    h.feed(&invite("z9hG4bKo1"), src);
    let Event::Request { tx, request, .. } = h.events().remove(0) else {
        panic!()
    };
    h.ep.respond(h.now, tx, request.response(200, "OK", Some("k")))
        .unwrap();
    h.drain();
    // The ACK overtakes a delayed retransmission of the INVITE.
    h.feed(&ack("z9hG4bKo2", "k"), src);
    assert!(matches!(&h.events()[..], [Event::Ack { tx: Some(_), .. }]));
    h.feed(&invite("z9hG4bKo1"), src);
    assert!(h.events().is_empty(), "late INVITE retransmission absorbed");
    assert!(h.drain().is_empty(), "and not answered again");
    // An ACK for a CSeq we never answered is passed up unmatched.
    h.feed(
        &ack("z9hG4bKo3", "k").replace("CSeq: 1 ACK", "CSeq: 9 ACK"),
        src,
    );
    assert!(matches!(&h.events()[..], [Event::Ack { tx: None, .. }]));
}

#[test]
fn transport_error_ends_client_transaction() {
    let mut h = H::new();
    let req = out_request(&mut h.ep, Method::Invite);
    let tx = h.ep.send_request(h.now, req, tcp("10.9.9.9:5060")).unwrap();
    h.ep.transport_error(tx);
    assert_eq!(
        h.events(),
        vec![Event::Timeout { tx }, Event::Terminated { tx }]
    );
    assert!(h.ep.poll_timeout().is_none());
}

#[test]
fn keepalives_crlf_ignored_and_stun_answered() {
    let mut h = H::new();
    let src = udp("198.51.100.9:40000");
    h.feed("\r\n\r\n", src);
    assert!(h.events().is_empty());
    assert!(h.ep.poll_transmit().is_none());
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&[7u8; 12]);
    h.ep.handle_datagram(h.now, &req, src);
    let t = h.ep.poll_transmit().unwrap();
    assert_eq!(t.peer, src);
    let r = t.payload;
    assert_eq!(&r[0..2], &[0x01, 0x01]);
    assert_eq!(&r[8..20], &[7u8; 12]);
    // XOR-MAPPED-ADDRESS decodes to the source.
    let port = u16::from_be_bytes([r[26], r[27]]) ^ 0x2112;
    let ip: Vec<u8> = r[28..32]
        .iter()
        .zip([0x21, 0x12, 0xA4, 0x42])
        .map(|(a, b)| a ^ b)
        .collect();
    assert_eq!(port, 40000);
    assert_eq!(ip, vec![198, 51, 100, 9]);
    // Truncated STUN is treated as a bad SIP message, not answered.
    h.ep.handle_datagram(h.now, &req[..10], src);
    assert!(h.ep.poll_transmit().is_none());
    // IPv6 source.
    let r6 = stun_binding_response(&req, "[2001:db8::1]:5060".parse().unwrap()).unwrap();
    assert_eq!(r6.len(), 20 + 24);
}

#[test]
fn two_clients_with_the_same_branch_get_two_transactions() {
    // RFC 3261 §17.2.3: a request matches a server transaction by branch *and* sent-by.
    let mut h = H::new();
    let first = invite("z9hG4bKsame");
    let second = first
        .replace("192.0.2.1:5060;branch", "192.0.2.2:5062;branch")
        .replace("call-1", "call-2");
    h.feed(&first, udp("192.0.2.1:5060"));
    h.feed(&second, udp("192.0.2.2:5062"));
    let requests = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(
        requests, 2,
        "the second is not a retransmission of the first"
    );
    assert_eq!(h.ep.transaction_count(), 2);
    // A true retransmission (same branch, same sent-by) is still absorbed.
    h.feed(&first, udp("192.0.2.1:5060"));
    assert!(
        h.events()
            .iter()
            .all(|e| !matches!(e, Event::Request { .. }))
    );
}

#[test]
fn a_connection_that_never_opens_fails_its_transactions_at_once() {
    let mut h = H::new();
    let req = out_request(&mut h.ep, Method::Invite);
    let tx = h.ep.send_request(h.now, req, tcp("10.9.9.9:5061")).unwrap();
    let other = out_request(&mut h.ep, Method::Options);
    let elsewhere =
        h.ep.send_request(h.now, other, tcp("10.9.9.8:5061"))
            .unwrap();
    h.events();
    h.ep.connection_failed("10.9.9.9:5061".parse().unwrap(), Transport::Tcp);
    assert_eq!(
        h.events(),
        vec![Event::Timeout { tx }, Event::Terminated { tx }]
    );
    assert_eq!(
        h.ep.transaction_count(),
        1,
        "the other destination's goes on"
    );
    let _ = elsewhere;
}
