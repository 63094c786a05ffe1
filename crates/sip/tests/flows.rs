//! End-to-end flows between two sans-IO endpoints over a simulated network with
//! simulated time: REGISTER with digest auth, an INVITE with SDP offer/answer, re-INVITE
//! for hold, INFO DTMF and BYE; plus the sample messages in `testdata/`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_sip::auth::{DigestCredentials, DigestServer, best_challenge, client_authorization};
use conclave_sip::dialog::{Dialog, DialogState, OutgoingRequest, parse_dtmf_info};
use conclave_sip::headers::AuthParams;
use conclave_sip::offer_answer::{
    self, Codec, Direction, LocalMedia, MediaConfig, SrtpPolicy, answer_body,
};
use conclave_sip::parser::{Framed, Limits, StreamFramer, parse_datagram};
use conclave_sip::registrar::{Registrar, RegistrarConfig};
use conclave_sip::sdp::SessionDescription;
use conclave_sip::transaction::Config;
use conclave_sip::{
    Endpoint, Event, HeaderName, Host, Message, Method, NameAddr, Peer, Request, Transport, TxId,
    Uri, Via,
};

const SAMPLES: &[(&str, &[u8])] = &[
    ("invite_sdp", include_bytes!("../testdata/invite_sdp.sip")),
    ("ok_sdp", include_bytes!("../testdata/ok_sdp.sip")),
    ("register", include_bytes!("../testdata/register.sip")),
    ("bye", include_bytes!("../testdata/bye.sip")),
    ("info_dtmf", include_bytes!("../testdata/info_dtmf.sip")),
];

#[test]
fn samples_parse_validate_and_roundtrip() {
    for (name, raw) in SAMPLES {
        let m = parse_datagram(raw, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        match &m {
            Message::Request(r) => r.validate(&["timer", "replaces"]).unwrap(),
            Message::Response(r) => r.validate().unwrap(),
        }
        let again = parse_datagram(&m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(again, m, "{name}");
        // The same bytes split at every position through the stream framer.
        for split in [1, 7, raw.len() / 2, raw.len() - 1] {
            let mut f = StreamFramer::new(Limits::default());
            f.push(&raw[..split]);
            let first = f.next_message();
            f.push(&raw[split..]);
            let got = match first {
                Some(x) => x,
                None => f.next_message().expect("complete"),
            };
            match got {
                Ok(Framed::Message(b)) => assert_eq!(*b, m, "{name} split {split}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    let inv = parse_datagram(SAMPLES[0].1, &Limits::default()).unwrap();
    let sdp = SessionDescription::parse(inv.body()).unwrap();
    assert_eq!(sdp.media[0].payload_types(), vec![111, 9, 0, 8, 101]);
    let info = parse_datagram(SAMPLES[4].1, &Limits::default()).unwrap();
    let d = parse_dtmf_info(info.headers().content_type(), info.body()).unwrap();
    assert_eq!(d.digit, '5');
    let srtp = SessionDescription::parse(include_bytes!("../testdata/srtp_offer.sdp")).unwrap();
    let cfg = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        codecs: vec![Codec::G722, Codec::Pcmu],
        prefer_local_order: true,
        ..MediaConfig::default()
    };
    let (_, n) = offer_answer::answer(&srtp, &cfg, &local("203.0.113.5:40000")).unwrap();
    assert_eq!(n.codec, Codec::G722);
    assert_eq!(n.dtmf_payload_type, Some(101));
    // The _80 line carries an MKI (unsupported), so the _32 line is chosen.
    assert_eq!(n.srtp.unwrap().suite, "AES_CM_128_HMAC_SHA1_32");
}

fn local(addr: &str) -> LocalMedia {
    let a: SocketAddr = addr.parse().unwrap();
    LocalMedia {
        video_port: None,
        addr: a.ip(),
        port: a.port(),
        session_id: 1,
        session_version: 1,
        srtp_key: Some([3u8; 30]),
        srtp_policy: None,
        direction: Direction::SendRecv,
    }
}

/// Two endpoints and a lossless network with 10 ms latency.
struct Net {
    a: Endpoint,
    b: Endpoint,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
    /// Messages delivered (for assertions), as (to_b, message).
    log: Vec<(bool, Message)>,
    /// Drop the next n datagrams from a to b (loss simulation).
    drop_a_to_b: usize,
}

impl Net {
    fn new() -> Net {
        Net {
            a: Endpoint::new(Config::default(), 11),
            b: Endpoint::new(Config::default(), 22),
            a_addr: "192.0.2.10:5060".parse().unwrap(),
            b_addr: "203.0.113.5:5060".parse().unwrap(),
            now: Instant::now(),
            log: Vec::new(),
            drop_a_to_b: 0,
        }
    }

    /// Moves packets and time until both sides are quiet or `max` elapsed; returns the
    /// events of each side.
    fn run(&mut self, max: Duration) -> (Vec<Event>, Vec<Event>) {
        let end = self.now + max;
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                assert_eq!(t.peer.addr, self.b_addr);
                if self.drop_a_to_b > 0 {
                    self.drop_a_to_b -= 1;
                    continue;
                }
                self.log.push((
                    true,
                    parse_datagram(&t.payload, &Limits::default()).unwrap(),
                ));
                self.b.handle_datagram(
                    self.now,
                    &t.payload,
                    Peer::new(Transport::Udp, self.a_addr),
                );
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                assert_eq!(t.peer.addr, self.a_addr);
                self.log.push((
                    false,
                    parse_datagram(&t.payload, &Limits::default()).unwrap(),
                ));
                self.a.handle_datagram(
                    self.now,
                    &t.payload,
                    Peer::new(Transport::Udp, self.b_addr),
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
            // Stop at quiet points where the caller has events to handle.
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

    fn via_a(&mut self) -> Via {
        let br = self.a.new_branch();
        let mut v = Via::new(
            Transport::Udp,
            Host::Ip(self.a_addr.ip()),
            Some(self.a_addr.port()),
            &br,
        );
        v.params.set("rport", None);
        v
    }

    fn via_b(&mut self) -> Via {
        let br = self.b.new_branch();
        Via::new(
            Transport::Udp,
            Host::Ip(self.b_addr.ip()),
            Some(self.b_addr.port()),
            &br,
        )
    }

    fn peer_b(&self) -> Peer {
        Peer::new(Transport::Udp, self.b_addr)
    }

    fn peer_a(&self) -> Peer {
        Peer::new(Transport::Udp, self.a_addr)
    }
}

fn only_request(ev: Vec<Event>) -> (TxId, Request, Peer) {
    let mut it = ev.into_iter().filter_map(|e| match e {
        Event::Request {
            tx,
            request,
            source,
        } => Some((tx, request, source)),
        _ => None,
    });
    it.next().expect("a request event")
}

fn responses(ev: &[Event]) -> Vec<u16> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => Some(response.status),
            _ => None,
        })
        .collect()
}

#[test]
fn register_with_digest_auth() {
    let mut net = Net::new();
    let digest = DigestServer::new(b"cluster secret 0123456789", "conclave");
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let unix = 1_750_000_000u64;
    let password = "s3cret";

    let mut cseq = 1;
    let register = |net: &mut Net, auth: Option<String>, cseq: u32| {
        let via = net.via_a();
        let mut r = OutgoingRequest {
            method: Method::Register,
            request_uri: Uri::parse("sip:conclave").unwrap(),
            from: NameAddr::parse("<sip:1001@conclave>").unwrap(),
            from_tag: "ft",
            to: NameAddr::parse("<sip:1001@conclave>").unwrap(),
            call_id: "reg-call",
            cseq,
            contact: Some(Uri::parse("sip:1001@192.168.0.7:5060").unwrap()),
            routes: vec![],
            via,
        }
        .build();
        r.headers.push(HeaderName::Expires, "600");
        if let Some(a) = auth {
            r.headers.push(HeaderName::Authorization, a);
        }
        let dest = net.peer_b();
        net.a.send_request(net.now, r, dest).unwrap()
    };

    // The server side: what `crates/server` would do with a REGISTER event.
    let serve = |net: &mut Net, registrar: &mut Registrar, ev: Vec<Event>| -> u16 {
        let (tx, req, src) = only_request(ev);
        let tag = net.b.new_tag();
        let creds = req
            .headers
            .authorization(&HeaderName::Authorization)
            .ok()
            .flatten()
            .and_then(|p| DigestCredentials::parse(&p).ok());
        let ok = creds
            .as_ref()
            .map(|c| digest.verify_password(c, "REGISTER", password, unix));
        match ok {
            Some(Ok(())) => {
                registrar.register(net.now, "1001", &req, src).unwrap();
                let r = registrar.ok_response(net.now, "1001", &req, &tag);
                net.b.respond(net.now, tx, r).unwrap();
                200
            }
            _ => {
                let mut r = req.response(401, "Unauthorized", Some(&tag));
                for c in digest.challenges(unix, false) {
                    r.headers.push(HeaderName::WwwAuthenticate, c);
                }
                net.b.respond(net.now, tx, r).unwrap();
                401
            }
        }
    };

    register(&mut net, None, cseq);
    let (_, eb) = net.run(Duration::from_secs(1));
    assert_eq!(serve(&mut net, &mut registrar, eb), 401);
    let (ea, _) = net.run(Duration::from_secs(1));
    let Some(Event::Response { response, .. }) = ea.first() else {
        panic!("{ea:?}")
    };
    assert_eq!(response.status, 401);
    let ch = best_challenge(response.headers.get_all(&HeaderName::WwwAuthenticate)).unwrap();
    assert_eq!(ch.get("algorithm"), Some("SHA-256"));

    // Wrong password twice, then right.
    for (pw, expect) in [("nope", 401), ("nope", 401), (password, 200)] {
        cseq += 1;
        let a = client_authorization(&ch, "REGISTER", "sip:conclave", "1001", pw, "cn", 1);
        register(&mut net, a, cseq);
        let (_, eb) = net.run(Duration::from_secs(1));
        assert_eq!(serve(&mut net, &mut registrar, eb), expect);
        let (ea, _) = net.run(Duration::from_secs(1));
        assert_eq!(responses(&ea), vec![expect]);
    }
    let b = registrar.lookup(net.now, "1001");
    assert_eq!(b.len(), 1);
    assert!(b[0].behind_nat, "contact 192.168.0.7 but source 192.0.2.10");
    assert_eq!(b[0].source.addr, net.a_addr);
}

#[test]
fn call_with_offer_answer_hold_dtmf_and_bye() {
    let mut net = Net::new();
    // Lose the first INVITE: Timer A retransmits it.
    net.drop_a_to_b = 1;
    let cfg = MediaConfig::default();
    let a_media = local("192.0.2.10:30000");
    let b_media = local("203.0.113.5:40000");
    let offer = offer_answer::offer(&cfg, &a_media);
    let via = net.via_a();
    let a_contact = Uri::parse("sip:alice@192.0.2.10:5060").unwrap();
    let mut inv = OutgoingRequest {
        method: Method::Invite,
        request_uri: Uri::parse("sip:3000@203.0.113.5").unwrap(),
        from: NameAddr::parse("\"Alice\" <sip:alice@example.com>").unwrap(),
        from_tag: "a-tag",
        to: NameAddr::parse("<sip:3000@203.0.113.5>").unwrap(),
        call_id: "call-xyz",
        cseq: 1,
        contact: Some(a_contact.clone()),
        routes: vec![],
        via,
    }
    .build();
    inv.headers.push(HeaderName::ContentType, "application/sdp");
    inv.body = offer.to_bytes();
    let dest = net.peer_b();
    let inv_tx = net.a.send_request(net.now, inv.clone(), dest).unwrap();

    // B receives it after the 500 ms retransmission; after 200 ms it sends 100 Trying.
    let (_, eb) = net.run(Duration::from_secs(2));
    let (b_tx, b_inv, _) = only_request(eb);
    assert!(net.now >= Instant::now() - Duration::from_secs(3600));
    let (_, ea) = {
        let r = net.run(Duration::from_millis(300));
        (r.1, r.0)
    };
    assert_eq!(responses(&ea), vec![100]);

    // B rings and answers with SDP.
    let b_tag = net.b.new_tag();
    let b_contact = Uri::parse("sip:conclave@203.0.113.5:5060").unwrap();
    let mut b_dialog = Dialog::uas(&b_inv, &b_tag, b_contact.clone()).unwrap();
    net.b
        .respond(net.now, b_tx, b_inv.response(180, "Ringing", Some(&b_tag)))
        .unwrap();
    let (answer_sdp, b_neg) = answer_body(&b_inv.body, &cfg, &b_media).unwrap();
    assert_eq!(b_neg.codec, Codec::Opus);
    assert_eq!(b_neg.remote, Some("192.0.2.10:30000".parse().unwrap()));
    let mut ok = b_inv.response(200, "OK", Some(&b_tag));
    ok.headers
        .push(HeaderName::Contact, format!("<{b_contact}>"));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = answer_sdp.to_bytes();
    net.b.respond(net.now, b_tx, ok).unwrap();
    b_dialog.confirm();

    let (ea, _) = net.run(Duration::from_secs(1));
    assert_eq!(responses(&ea), vec![180, 200]);
    let Some(Event::Response { response: ok, .. }) = ea.last().cloned() else {
        panic!()
    };
    let mut a_dialog = Dialog::uac(&inv, &ok, a_contact).unwrap();
    assert_eq!(a_dialog.state, DialogState::Confirmed);
    let a_neg = offer_answer::process_answer(
        &offer,
        &SessionDescription::parse(&ok.body).unwrap(),
        &cfg,
        &a_media,
    )
    .unwrap();
    assert_eq!(a_neg.codec, Codec::Opus);
    assert_eq!(a_neg.remote, Some("203.0.113.5:40000".parse().unwrap()));
    assert_eq!(a_neg.dtmf_payload_type, Some(110));
    // A ACKs the 2xx.
    let via = net.via_a();
    let ack = a_dialog.create_ack(1, &via);
    let dest = net.peer_b();
    net.a.send_ack(Some(inv_tx), &ack, dest);
    let (_, eb) = net.run(Duration::from_secs(1));
    assert!(
        matches!(&eb[..], [Event::Ack { tx: Some(t), .. }] if *t == b_tx),
        "{eb:?}"
    );
    b_dialog
        .handle_request(match &eb[0] {
            Event::Ack { request, .. } => request,
            _ => unreachable!(),
        })
        .unwrap();

    // B puts A on hold with a re-INVITE (sendonly).
    let hold = LocalMedia {
        video_port: None,
        direction: Direction::SendOnly,
        session_version: 2,
        ..b_media.clone()
    };
    let via = net.via_b();
    let mut reinv = b_dialog.create_request(Method::Invite, &via);
    assert_eq!(reinv.uri.to_string(), "sip:alice@192.0.2.10:5060");
    reinv
        .headers
        .push(HeaderName::ContentType, "application/sdp");
    let hold_offer = offer_answer::offer(&cfg, &hold);
    reinv.body = hold_offer.to_bytes();
    let dest = net.peer_a();
    let re_tx = net.b.send_request(net.now, reinv, dest).unwrap();
    let (ea, _) = net.run(Duration::from_secs(1));
    let (a_tx, a_req, _) = only_request(ea);
    a_dialog.handle_request(&a_req).unwrap();
    let (ans, neg) = answer_body(&a_req.body, &cfg, &a_media).unwrap();
    assert_eq!(neg.direction, Direction::RecvOnly);
    let mut ok = a_req.response(200, "OK", None);
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = ans.to_bytes();
    net.a.respond(net.now, a_tx, ok).unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    let Some(Event::Response { tx, response, .. }) = eb.first() else {
        panic!("{eb:?}")
    };
    assert_eq!((*tx, response.status), (re_tx, 200));
    let n = offer_answer::process_answer(
        &hold_offer,
        &SessionDescription::parse(&response.body).unwrap(),
        &cfg,
        &hold,
    )
    .unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    let seq = response.headers.cseq().unwrap().seq;
    let via = net.via_b();
    let ack = b_dialog.create_ack(seq, &via);
    net.b.send_ack(Some(re_tx), &ack, dest);
    let (ea, _) = net.run(Duration::from_secs(1));
    assert!(
        matches!(&ea[..], [Event::Ack { tx: Some(_), .. }]),
        "{ea:?}"
    );

    // A sends DTMF 7 in INFO.
    let via = net.via_a();
    let mut info = a_dialog.create_request(Method::Info, &via);
    info.headers
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.body = b"Signal=7\r\nDuration=250\r\n".to_vec();
    let dest = net.peer_b();
    net.a.send_request(net.now, info, dest).unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    let (tx, req, _) = only_request(eb);
    b_dialog.handle_request(&req).unwrap();
    let d = parse_dtmf_info(req.headers.content_type(), &req.body).unwrap();
    assert_eq!((d.digit, d.duration_ms), ('7', Some(250)));
    net.b
        .respond(net.now, tx, req.response(200, "OK", None))
        .unwrap();
    net.run(Duration::from_secs(1));

    // A hangs up.
    let via = net.via_a();
    let bye = a_dialog.create_request(Method::Bye, &via);
    net.a.send_request(net.now, bye, dest).unwrap();
    let (_, eb) = net.run(Duration::from_secs(1));
    let (tx, req, _) = only_request(eb);
    assert_eq!(req.method, Method::Bye);
    b_dialog.handle_request(&req).unwrap();
    assert_eq!(b_dialog.state, DialogState::Terminated);
    net.b
        .respond(net.now, tx, req.response(200, "OK", None))
        .unwrap();
    let (ea, _) = net.run(Duration::from_secs(1));
    let Some(Event::Response { response, .. }) = ea.first() else {
        panic!()
    };
    a_dialog.handle_response(&Method::Bye, response);
    assert_eq!(a_dialog.state, DialogState::Terminated);

    // Everything winds down: no transactions left, no timers.
    let end = net.now + Duration::from_secs(60);
    while net.now < end {
        let left = end - net.now;
        net.run(left);
    }
    assert_eq!(net.a.transaction_count(), 0);
    assert_eq!(net.b.transaction_count(), 0);
    assert!(net.a.poll_timeout().is_none() && net.b.poll_timeout().is_none());
    // The INVITE was sent twice (first one lost), answered once.
    let invites = net
        .log
        .iter()
        .filter(|(to_b, m)| {
            *to_b && matches!(m, Message::Request(r) if r.method == Method::Invite && r.headers.cseq().unwrap().seq == 1)
        })
        .count();
    assert_eq!(invites, 1, "one delivered (the first was dropped)");
}

#[test]
fn auth_challenge_parse_from_header_sample() {
    let reg = parse_datagram(SAMPLES[2].1, &Limits::default()).unwrap();
    let p: AuthParams = reg
        .headers()
        .authorization(&HeaderName::Authorization)
        .unwrap()
        .unwrap();
    let c = DigestCredentials::parse(&p).unwrap();
    assert_eq!(c.username, "1001");
    assert_eq!(c.algorithm, conclave_sip::auth::Algorithm::Sha256);
}
