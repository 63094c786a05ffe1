//! A browser member through the engine, sans-IO: a str0m peer plays the browser (ICE
//! controlling, DTLS client, Opus over SRTP) against the engine's shared port, with a phone
//! (plain PCMU) in the same room; simulated time, no sockets.
//!
//! - ICE, DTLS and SRTP complete; the phone hears the browser's tone and the browser the
//!   phone's.
//! - An attacker who knows the ICE username but not the password (a forged check), or who
//!   replays the browser's SRTP from another address, or sends DTLS from nowhere, changes
//!   nothing: the browser's media keeps its path, the packets are counted as dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_media::codec::g711::{decode_ulaw, encode_ulaw};
use conclave_media::codec::{AudioDecoder, AudioEncoder};
use conclave_media::codec::{CodecConfig, CodecKind, OpusDecoder, OpusEncoder};
use conclave_media::dsp::{goertzel_power, tone};
use conclave_media::engine::{Command, Engine, MemberPorts, MemberSetup, PortKind};
use conclave_media::mixer::{MemberConfig, MixerConfig};
use conclave_media::rtp::{RtpHeader, RtpPacket};
use conclave_media::webrtc::{AUDIO_LEVEL_EXT, WebRtcIdentity, WebRtcPeer, stun_local_ufrag};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

const PORT: u32 = 0;
const ROOM: u64 = 1;
const BROWSER_MEMBER: u64 = 1;
const PHONE_MEMBER: u64 = 2;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

struct World {
    t0: Instant,
    now: Duration,
    engine: Engine,
    browser: Rtc,
    browser_addr: SocketAddr,
    server_addr: SocketAddr,
    phone_addr: SocketAddr,
    mid: Mid,
    connected: bool,
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    sent: u64,
    /// What the browser heard (decoded at 16 kHz) and the phone (8 kHz).
    browser_heard: Vec<i16>,
    phone_heard: Vec<i16>,
    /// The browser's datagrams as sent: STUN checks and SRTP, for the attacker to replay.
    browser_sent: Vec<Vec<u8>>,
}

impl World {
    fn new() -> World {
        let t0 = Instant::now();
        let mut engine = Engine::new(MixerConfig::default());
        engine.set_epoch(t0);
        engine.add_port(PORT, PortKind::Shared);
        let (server_addr, browser_addr, phone_addr) = (
            addr("192.0.2.1:40000"),
            addr("198.51.100.7:50000"),
            addr("203.0.113.5:30000"),
        );

        let mut browser = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(t0);
        browser.add_local_candidate(Candidate::host(browser_addr, "udp").expect("candidate"));
        let mut change = browser.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");

        let identity = WebRtcIdentity::generate().expect("identity");
        let (peer, answer) =
            WebRtcPeer::accept(&offer.to_sdp_string(), server_addr, None, &identity, t0)
                .expect("answer");
        browser
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).expect("sdp"))
            .expect("the browser takes the answer");

        let mut config = MemberConfig::new(CodecKind::Opus, 0x1111);
        config.payload_type = peer.opus_payload_type();
        config.audio_level_ext = Some(AUDIO_LEVEL_EXT);
        config.rtcp_mux = true;
        let add = |member, config, webrtc| Command::AddMember {
            room: ROOM,
            member,
            setup: Box::new(MemberSetup {
                config,
                ports: MemberPorts {
                    rtp: PORT,
                    rtcp: None,
                },
                muted: false,
                deaf: false,
                group: None,
                rtp_timeout: Some(Duration::from_secs(30)),
                playback: None,
                webrtc,
            }),
        };
        engine
            .handle_command(
                Duration::ZERO,
                add(BROWSER_MEMBER, config, Some(Box::new(peer))),
            )
            .expect("the browser joins");
        let mut phone = MemberConfig::new(CodecKind::Pcmu, 0x2222);
        phone.remote = Some(phone_addr);
        engine
            .handle_command(Duration::ZERO, add(PHONE_MEMBER, phone, None))
            .expect("the phone joins");

        let opus = CodecConfig::new(CodecKind::Opus, 16_000);
        World {
            t0,
            now: Duration::ZERO,
            engine,
            browser,
            browser_addr,
            server_addr,
            phone_addr,
            mid,
            connected: false,
            encoder: OpusEncoder::new(&opus).expect("encoder"),
            decoder: OpusDecoder::new(16_000).expect("decoder"),
            sent: 0,
            browser_heard: Vec::new(),
            phone_heard: Vec::new(),
            browser_sent: Vec::new(),
        }
    }

    /// Everything the browser has to send goes to the engine; what it received is noted.
    fn pump_browser(&mut self) {
        for _ in 0..1000 {
            match self.browser.poll_output().expect("browser output") {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    let data = t.contents.to_vec();
                    self.browser_sent.push(data.clone());
                    let _ = self
                        .engine
                        .handle_datagram(self.now, PORT, self.browser_addr, &data);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::RtpPacket(p)) => {
                    let _ = self.decoder.decode(&p.payload, &mut self.browser_heard);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// What the engine sends: to the browser (through its str0m), to the phone (decoded).
    fn deliver(&mut self) {
        let out: Vec<_> = self.engine.drain_transmits().collect();
        for d in out {
            if d.to == self.browser_addr {
                let input = Input::Receive(
                    self.t0 + self.now,
                    Receive {
                        proto: Protocol::Udp,
                        source: self.server_addr,
                        destination: self.browser_addr,
                        contents: d.data.as_slice().try_into().expect("a datagram"),
                    },
                );
                self.browser.handle_input(input).expect("browser input");
            } else if d.to == self.phone_addr
                && let Ok(p) = RtpPacket::parse(&d.data)
                && p.payload_type() == 0
            {
                decode_ulaw(p.payload(), &mut self.phone_heard);
            }
        }
    }

    /// Runs `ms` of simulated time in 10 ms steps: both talk every 20 ms once connected.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += Duration::from_millis(10);
            let at = self.t0 + self.now;
            self.browser
                .handle_input(Input::Timeout(at))
                .expect("browser timeout");
            if self.connected && self.now.as_millis().is_multiple_of(20) {
                self.talk(at);
            }
            self.pump_browser();
            if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
                self.engine.handle_timeout(self.now);
            }
            self.deliver();
            self.pump_browser();
        }
    }

    fn talk(&mut self, at: Instant) {
        let n = self.sent;
        self.sent += 1;
        // the browser: 500 Hz in Opus at 16 kHz
        let pcm = tone(500.0, 16_000, 320, 8000.0, n as usize * 320);
        let mut payload = Vec::new();
        self.encoder.encode(&pcm, &mut payload).expect("encode");
        let write = RtpWrite::new(
            111.into(),
            SeqNo::from(n + 1),
            (n * 960) as u32,
            at,
            payload,
        );
        if let Some(tx) = self.browser.direct_api().stream_tx_by_mid(self.mid, None) {
            tx.write_rtp(write);
        }
        // the phone: 1100 Hz in PCMU
        let pcm = tone(1_100.0, 8_000, 160, 8000.0, n as usize * 160);
        let mut packet = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: n as u16,
            timestamp: (n * 160) as u32,
            ssrc: 0xCAFE,
            csrcs: Vec::new(),
            extensions: Vec::new(),
        }
        .to_vec(&[]);
        encode_ulaw(&pcm, &mut packet);
        let _ = self
            .engine
            .handle_datagram(self.now, PORT, self.phone_addr, &packet);
    }
}

fn last(pcm: &[i16], n: usize) -> &[i16] {
    &pcm[pcm.len().saturating_sub(n)..]
}

#[test]
fn a_browser_and_a_phone_hear_each_other_through_the_engine() {
    let mut w = World::new();
    w.run(3_000);
    assert!(w.connected, "ICE and DTLS complete");
    let phone = last(&w.phone_heard, 8_000);
    let (browser_tone, own) = (
        goertzel_power(phone, 8_000, 500.0),
        goertzel_power(phone, 8_000, 1_100.0),
    );
    assert!(
        phone.len() == 8_000 && browser_tone > 100.0 * own.max(1e-9),
        "the phone hears the browser ({browser_tone:.1}) and not itself ({own:.1}), {} samples",
        phone.len()
    );
    let browser = last(&w.browser_heard, 16_000);
    let (phone_tone, own) = (
        goertzel_power(browser, 16_000, 1_100.0),
        goertzel_power(browser, 16_000, 500.0),
    );
    assert!(
        browser.len() == 16_000 && phone_tone > 100.0 * own.max(1e-9),
        "the browser hears the phone ({phone_tone:.1}) and not itself ({own:.1}), {} samples",
        browser.len()
    );
}

#[test]
fn an_attacker_neither_takes_over_nor_disturbs_a_browsers_media() {
    let mut w = World::new();
    w.run(1_000);
    assert!(w.connected);
    let stranger = addr("192.0.2.66:6666");
    let ufrag = w
        .browser_sent
        .iter()
        .find_map(|d| stun_local_ufrag(d).map(str::to_owned))
        .expect("the browser sent checks naming our username");
    let srtp = w
        .browser_sent
        .iter()
        .rev()
        .find(|d| d.first().is_some_and(|b| (128..192).contains(b)))
        .cloned()
        .expect("the browser sent SRTP");

    let before = w.engine.stats();
    // a check with our username and a made-up password: answered by nobody, learnt by nobody
    let username = format!("{ufrag}:evil");
    let mut forged = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    forged.extend_from_slice(&[9; 12]);
    let padded = username.len().div_ceil(4) * 4;
    forged.extend_from_slice(&[0x00, 0x06, 0, username.len() as u8]);
    forged.extend_from_slice(username.as_bytes());
    forged.resize(20 + 4 + padded, 0);
    forged.extend_from_slice(&[0x00, 0x08, 0, 20]); // MESSAGE-INTEGRITY: wrong
    forged.extend_from_slice(&[0xAB; 20]);
    let length = (forged.len() - 20) as u16;
    forged[2..4].copy_from_slice(&length.to_be_bytes());
    // the browser's own SRTP, replayed from elsewhere; DTLS from nowhere
    let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 0..50 {
        for attack in [&forged[..], &srtp[..], &dtls[..]] {
            let _ = w.engine.handle_datagram(w.now, PORT, stranger, attack);
        }
    }
    let sent_to_stranger = w
        .engine
        .drain_transmits()
        .filter(|d| d.to == stranger)
        .count();
    assert_eq!(sent_to_stranger, 0, "nothing is sent to the attacker");
    let after = w.engine.stats();
    assert!(
        after.unknown_source + after.strangers + after.dropped
            >= before.unknown_source + before.strangers + before.dropped + 150,
        "every attacking datagram is counted as dropped: {before:?} → {after:?}"
    );

    // the browser's media keeps its path: the phone still hears it, it still hears the phone
    w.phone_heard.clear();
    w.browser_heard.clear();
    w.run(1_500);
    let phone = last(&w.phone_heard, 4_000);
    let browser = last(&w.browser_heard, 8_000);
    assert!(
        goertzel_power(phone, 8_000, 500.0)
            > 100.0 * goertzel_power(phone, 8_000, 1_100.0).max(1e-9),
        "the phone still hears the browser"
    );
    assert!(
        goertzel_power(browser, 16_000, 1_100.0)
            > 100.0 * goertzel_power(browser, 16_000, 500.0).max(1e-9),
        "the browser still hears the phone"
    );
    assert!(w.engine.drain_transmits().all(|d| d.to != stranger));
}
