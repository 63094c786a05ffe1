//! The engine behind shared ports: members found by source address and SSRC, latching that a
//! stranger cannot win, nothing sent for long to an address that never answered, rooms ticked
//! from a deadline heap. Simulated phones send tones; what each receives is analysed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use conclave_media::codec::CodecKind;
use conclave_media::codec::g711::{decode_ulaw, encode_ulaw};
use conclave_media::dsp::{goertzel_power, tone};
use conclave_media::engine::{
    Command, Engine, MemberPorts, MemberSetup, PortId, PortKind, RoomKey,
};
use conclave_media::mixer::{DropReason, Event, MemberConfig, MemberId, MixerConfig, PacketKind};
use conclave_media::rtp::{RtpHeader, RtpPacket};
use conclave_media::srtp::{SrtpKey, SrtpSession, SrtpSuite};

const SHARED: PortId = 1;
const HEARD: f64 = 1.0e6;
const NOT_HEARD: f64 = 2.0e4;

struct Phone {
    member: MemberId,
    addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    pos: usize,
    /// The tone it sends (`None`: it sends nothing at all).
    freq: Option<f64>,
    received: Vec<i16>,
    srtp: Option<SrtpSession>,
}

impl Phone {
    fn packet(&mut self) -> Option<Vec<u8>> {
        let freq = self.freq?;
        let pcm = tone(freq, 8000, 160, 8000.0, self.pos);
        self.pos += 160;
        let mut payload = Vec::new();
        encode_ulaw(&pcm, &mut payload);
        let pkt = RtpHeader {
            payload_type: 0,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
            ..Default::default()
        }
        .to_vec(&payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        Some(match self.srtp.as_mut() {
            Some(s) => s.protect_rtp(&pkt).expect("protect"),
            None => pkt,
        })
    }
}

struct Net {
    engine: Engine,
    now: Duration,
    phones: Vec<Phone>,
    /// RTP datagrams that went to an address no phone has.
    elsewhere: HashMap<SocketAddr, usize>,
    events: Vec<(RoomKey, Event)>,
    drops: Vec<DropReason>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

impl Net {
    fn new() -> Net {
        let mut engine = Engine::new(MixerConfig::default());
        engine.add_port(SHARED, PortKind::Shared);
        Net {
            engine,
            now: Duration::ZERO,
            phones: Vec::new(),
            elsewhere: HashMap::new(),
            events: Vec::new(),
            drops: Vec::new(),
        }
    }

    /// A phone calls into `room`; its SDP names `sdp` (usually its own address).
    fn join(&mut self, room: RoomKey, member: MemberId, at: &str, sdp: &str, freq: Option<f64>) {
        self.join_with(room, member, at, sdp, freq, false, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn join_with(
        &mut self,
        room: RoomKey,
        member: MemberId,
        at: &str,
        sdp: &str,
        freq: Option<f64>,
        srtp: bool,
        lobby: bool,
    ) {
        let mut config = MemberConfig::new(CodecKind::Pcmu, 0x5000 + member as u32);
        config.remote = Some(addr(sdp));
        let mut phone_srtp = None;
        if srtp {
            let ours = SrtpKey::from_material(SrtpSuite::AesCm128HmacSha1_80, &[member as u8; 30])
                .expect("key");
            let theirs =
                SrtpKey::from_material(SrtpSuite::AesCm128HmacSha1_80, &[0x80 | member as u8; 30])
                    .expect("key");
            config.srtp = Some((ours.clone(), theirs.clone()));
            phone_srtp = Some(SrtpSession::new(&theirs, &ours).expect("srtp"));
        }
        let setup = MemberSetup {
            webrtc: None,
            config,
            ports: MemberPorts {
                rtp: SHARED,
                rtcp: None,
            },
            muted: lobby,
            deaf: lobby,
            group: None,
            rtp_timeout: Some(Duration::from_secs(30)),
            playback: None,
        };
        self.engine
            .handle_command(
                self.now,
                Command::AddMember {
                    room,
                    member,
                    setup: Box::new(setup),
                },
            )
            .expect("added");
        self.phones.push(Phone {
            member,
            addr: addr(at),
            ssrc: 0xa000 + member as u32,
            seq: 100,
            ts: 1000,
            pos: 0,
            freq,
            received: Vec::new(),
            srtp: phone_srtp,
        });
    }

    fn phone(&mut self, member: MemberId) -> &mut Phone {
        self.phones
            .iter_mut()
            .find(|p| p.member == member)
            .expect("phone")
    }

    /// Sends a datagram to the shared port as if from `from`.
    fn inject(&mut self, from: SocketAddr, data: &[u8]) -> Result<(), DropReason> {
        self.engine.handle_datagram(self.now, SHARED, from, data)
    }

    fn step(&mut self) {
        let mut packets = Vec::new();
        for p in self.phones.iter_mut() {
            if let Some(pkt) = p.packet() {
                packets.push((p.addr, pkt));
            }
        }
        for (from, pkt) in packets {
            if let Err(e) = self.engine.handle_datagram(self.now, SHARED, from, &pkt) {
                self.drops.push(e);
            }
        }
        self.engine.handle_timeout(self.now);
        let sent: Vec<_> = self.engine.drain_transmits().collect();
        for d in sent {
            assert_eq!(d.port, SHARED);
            if d.kind != PacketKind::Rtp {
                continue;
            }
            match self.phones.iter_mut().find(|p| p.addr == d.to) {
                Some(p) => {
                    let data = match p.srtp.as_mut() {
                        Some(s) => s.unprotect_rtp(&d.data).expect("our SRTP"),
                        None => d.data,
                    };
                    let r = RtpPacket::parse(&data).expect("rtp");
                    // behind one address, a phone takes only its own stream (by our SSRC)
                    if r.ssrc() == 0x5000 + p.member as u32 {
                        decode_ulaw(r.payload(), &mut p.received);
                    } else if let Some(other) = self
                        .phones
                        .iter_mut()
                        .find(|q| q.addr == d.to && r.ssrc() == 0x5000 + q.member as u32)
                    {
                        decode_ulaw(r.payload(), &mut other.received);
                    }
                }
                None => *self.elsewhere.entry(d.to).or_default() += 1,
            }
        }
        self.events.extend(self.engine.drain_events());
        self.now += Duration::from_millis(20);
    }

    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.step();
        }
    }

    fn clear(&mut self) {
        for p in self.phones.iter_mut() {
            p.received.clear();
        }
    }

    fn hears(&mut self, member: MemberId, freq: f64) -> bool {
        let p = self.phone(member);
        let n = 3200.min(p.received.len());
        assert!(n > 0, "member {member} received nothing");
        let power = goertzel_power(&p.received[p.received.len() - n..], 8000, freq);
        assert!(
            !(NOT_HEARD..=HEARD).contains(&power),
            "member {member} at {freq} Hz: ambiguous power {power}"
        );
        power > HEARD
    }
}

#[test]
fn members_of_one_room_behind_one_port_hear_each_other_and_not_themselves() {
    let mut net = Net::new();
    net.join(7, 1, "192.0.2.1:4000", "192.0.2.1:4000", Some(440.0));
    net.join(7, 2, "192.0.2.2:4000", "192.0.2.2:4000", Some(1000.0));
    net.join(8, 3, "192.0.2.3:4000", "192.0.2.3:4000", Some(1800.0));
    net.run(60);
    assert!(net.hears(1, 1000.0) && !net.hears(1, 440.0) && !net.hears(1, 1800.0));
    assert!(net.hears(2, 440.0) && !net.hears(2, 1000.0));
    // another room on the same port hears only itself (alone: nothing)
    assert!(!net.hears(3, 440.0) && !net.hears(3, 1000.0));
    assert!(net.drops.is_empty(), "{:?}", net.drops);
    assert_eq!(net.engine.room_count(), 2);
}

#[test]
fn two_members_behind_the_same_address_are_told_apart_by_ssrc() {
    let mut net = Net::new();
    let gateway = "198.51.100.9:5004";
    net.join(7, 1, gateway, gateway, Some(440.0));
    net.join(7, 2, gateway, gateway, Some(1000.0));
    net.join(7, 3, "192.0.2.3:4000", "192.0.2.3:4000", None);
    net.run(60);
    assert!(net.hears(1, 1000.0) && !net.hears(1, 440.0));
    assert!(net.hears(2, 440.0) && !net.hears(2, 1000.0));
    let source = |net: &Net, m| net.engine.member_report(m).expect("report").source;
    assert_eq!(source(&net, 1).ssrc, Some(0xa001));
    assert_eq!(source(&net, 2).ssrc, Some(0xa002));
}

#[test]
fn a_stranger_never_takes_over_a_members_stream() {
    let mut net = Net::new();
    net.join(7, 1, "192.0.2.1:4000", "192.0.2.1:4000", Some(440.0));
    net.join(7, 2, "192.0.2.2:4000", "192.0.2.2:4000", Some(1000.0));
    net.run(20);
    // The stranger knows member 1's SSRC (the worst case) and sends from elsewhere.
    let mut stranger = Phone {
        member: 1,
        addr: addr("203.0.113.66:6666"),
        ssrc: 0xa001,
        seq: 5000,
        ts: 99_000,
        pos: 0,
        freq: Some(2600.0),
        received: Vec::new(),
        srtp: None,
    };
    for _ in 0..50 {
        let pkt = stranger.packet().expect("packet");
        assert_eq!(
            net.inject(stranger.addr, &pkt),
            Err(DropReason::Stranger),
            "while the member sends"
        );
        net.step();
    }
    // The member goes silent: still, an address it is not known by cannot take over.
    net.phone(1).freq = None;
    net.run(50);
    for _ in 0..50 {
        let pkt = stranger.packet().expect("packet");
        assert!(net.inject(stranger.addr, &pkt).is_err());
        net.step();
    }
    net.clear();
    net.run(25);
    assert!(!net.hears(2, 2600.0), "the stranger is never heard");
    assert_eq!(
        net.engine.member_report(1).expect("report").source.rtp,
        Some(addr("192.0.2.1:4000")),
        "and never receives the member's stream"
    );
    assert!(!net.elsewhere.contains_key(&stranger.addr));
}

#[test]
fn a_member_whose_nat_mapping_changes_is_followed() {
    let mut net = Net::new();
    net.join(7, 1, "192.0.2.1:4000", "10.0.0.5:4000", Some(440.0));
    net.join(7, 2, "192.0.2.2:4000", "192.0.2.2:4000", Some(1000.0));
    // The SDP named a private address: the member is known by its signalling address.
    let mut known = MemberConfig::new(CodecKind::Pcmu, 0x5001);
    known.remote = Some(addr("10.0.0.5:4000"));
    known.source_ips = vec![addr("192.0.2.1:4000").ip()];
    net.engine
        .handle_command(
            net.now,
            Command::UpdateMember {
                member: 1,
                config: Box::new(known),
            },
        )
        .expect("updated");
    net.run(30);
    assert!(net.hears(2, 440.0), "found by its signalling address");
    // The NAT gives the member a new port: while the old one still sends, refused…
    let mut moved = Phone {
        member: 1,
        addr: addr("192.0.2.1:4999"),
        ssrc: 0xa001,
        seq: net.phone(1).seq,
        ts: net.phone(1).ts,
        pos: 0,
        freq: Some(700.0),
        received: Vec::new(),
        srtp: None,
    };
    let pkt = moved.packet().expect("packet");
    assert_eq!(net.inject(moved.addr, &pkt), Err(DropReason::Stranger));
    // …once the old mapping is silent, the stream follows the member.
    net.phones.retain(|p| p.member != 1);
    net.run(40);
    moved.seq = moved.seq.wrapping_add(50);
    moved.ts = moved.ts.wrapping_add(50 * 160);
    net.phones.push(moved);
    net.clear();
    net.run(60);
    assert!(net.hears(2, 700.0), "the moved member is heard");
    assert!(
        net.hears(1, 1000.0),
        "and hears the room at its new address"
    );
}

#[test]
fn srtp_proves_a_member_at_a_new_address() {
    let mut net = Net::new();
    net.join_with(
        7,
        1,
        "192.0.2.1:4000",
        "192.0.2.1:4000",
        Some(440.0),
        true,
        false,
    );
    net.join(7, 2, "192.0.2.2:4000", "192.0.2.2:4000", Some(1000.0));
    net.run(30);
    assert!(net.hears(2, 440.0));
    // A stranger's plain packet with the member's SSRC fails authentication.
    let forged = RtpHeader {
        payload_type: 0,
        sequence: 9,
        timestamp: 9,
        ssrc: 0xa001,
        ..Default::default()
    }
    .to_vec(&[0xffu8; 160]);
    assert!(net.inject(addr("203.0.113.66:6666"), &forged).is_err());
    // The member itself moves to a different network mid-call: authenticated, followed at once.
    net.phone(1).addr = addr("198.51.100.20:7000");
    net.clear();
    net.run(40);
    assert!(net.hears(2, 440.0));
    assert!(net.hears(1, 1000.0));
    assert_eq!(
        net.engine.member_report(1).expect("report").source.rtp,
        Some(addr("198.51.100.20:7000"))
    );
}

#[test]
fn nothing_streams_for_long_to_an_address_that_never_answers() {
    let mut net = Net::new();
    let victim = addr("198.51.100.77:9");
    net.join(7, 1, "192.0.2.1:4000", &victim.to_string(), None);
    net.join(7, 2, "192.0.2.2:4000", "192.0.2.2:4000", Some(1000.0));
    net.run(50 * 30);
    let sent = net.elsewhere.get(&victim).copied().unwrap_or(0);
    // 10 s of 20 ms packets at most (the start window), then nothing.
    assert!(sent > 0 && sent <= 501, "{sent} packets to the victim");
    let before = sent;
    net.run(100);
    assert_eq!(net.elsewhere.get(&victim).copied().unwrap_or(0), before);
    // …and the silent member times out for its owner.
    assert!(
        net.events
            .iter()
            .any(|(room, e)| *room == 7 && *e == Event::MediaTimeout { member: 1 })
    );
}

#[test]
fn a_member_in_the_lobby_neither_hears_nor_is_heard_from_the_first_packet() {
    let mut net = Net::new();
    net.join(7, 1, "192.0.2.1:4000", "192.0.2.1:4000", Some(440.0));
    net.join_with(
        7,
        2,
        "192.0.2.2:4000",
        "192.0.2.2:4000",
        Some(1000.0),
        false,
        true,
    );
    net.run(40);
    let first = net.phone(1).received.clone();
    assert!(
        goertzel_power(&first, 8000, 1000.0) < NOT_HEARD,
        "never heard"
    );
    let lobby = net.phone(2).received.clone();
    assert!(
        goertzel_power(&lobby, 8000, 440.0) < NOT_HEARD,
        "never hears"
    );
}

#[test]
fn an_idle_engine_has_no_deadline_and_rooms_tick_together_on_one_grid() {
    let mut net = Net::new();
    assert_eq!(net.engine.poll_timeout(), None);
    net.join(7, 1, "192.0.2.1:4000", "192.0.2.1:4000", None);
    assert_eq!(net.engine.poll_timeout(), Some(Duration::ZERO));
    net.now = Duration::from_millis(7);
    net.join(8, 2, "192.0.2.2:4000", "192.0.2.2:4000", None);
    net.engine.handle_timeout(Duration::from_millis(7));
    // Room 8, started at 7 ms, first ticks at 20 ms with room 7: one wake-up for both.
    assert_eq!(net.engine.poll_timeout(), Some(Duration::from_millis(20)));
    let ticks = net.engine.stats().ticks;
    net.engine.handle_timeout(Duration::from_millis(20));
    assert_eq!(
        net.engine.stats().ticks,
        ticks + 2,
        "both rooms tick at 20 ms"
    );
    assert_eq!(net.engine.poll_timeout(), Some(Duration::from_millis(40)));
    for member in [1, 2] {
        net.engine
            .handle_command(net.now, Command::RemoveMember { member })
            .expect("removed");
    }
    assert_eq!(net.engine.poll_timeout(), None);
    assert_eq!(net.engine.room_count(), 0);
    assert_eq!(
        net.inject(addr("192.0.2.1:4000"), &[0x80; 40]),
        Err(DropReason::UnknownSource)
    );
}

#[test]
fn music_for_members_alone_is_encoded_once_for_every_room() {
    use conclave_media::codec::CodecConfig;
    use conclave_media::engine::Playback;
    use std::collections::HashSet;
    use std::sync::Arc;
    let mut engine = Engine::new(MixerConfig::default());
    engine.add_port(SHARED, PortKind::Shared);
    // one second of music, looped, at 16 kHz (50 frames)
    let music: Arc<[i16]> = tone(523.0, 16000, 16000, 6000.0, 0).into();
    let join = |engine: &mut Engine, room: u64, member: u64, now: Duration| {
        let mut config = MemberConfig::new(CodecKind::Opus, 0x9000 + member as u32);
        config.remote = Some(addr(&format!("192.0.2.{member}:4000")));
        let setup = MemberSetup {
            webrtc: None,
            config,
            ports: MemberPorts {
                rtp: SHARED,
                rtcp: None,
            },
            muted: false,
            deaf: false,
            group: None,
            rtp_timeout: None,
            playback: Some(Playback {
                samples: music.clone(),
                rate: 16000,
                looped: true,
            }),
        };
        engine
            .handle_command(
                now,
                Command::AddMember {
                    room,
                    member,
                    setup: Box::new(setup),
                },
            )
            .expect("added");
    };
    let mut payloads: HashMap<MemberId, Vec<Vec<u8>>> = HashMap::new();
    let mut now = Duration::ZERO;
    join(&mut engine, 1, 1, now);
    for tick in 0..200 {
        if tick == 17 {
            join(&mut engine, 2, 2, now); // mid-loop, before the loop is recorded
        }
        if tick == 120 {
            join(&mut engine, 3, 3, now); // after
        }
        engine.handle_timeout(now);
        for d in engine.drain_transmits() {
            if d.kind != PacketKind::Rtp {
                continue;
            }
            let member: MemberId = match d.to.ip() {
                std::net::IpAddr::V4(ip) => u64::from(ip.octets()[3]),
                std::net::IpAddr::V6(_) => 0,
            };
            let p = RtpPacket::parse(&d.data).expect("rtp");
            payloads
                .entry(member)
                .or_default()
                .push(p.payload().to_vec());
        }
        now += Duration::from_millis(20);
    }
    // the first member's second lap is the recording everyone shares
    let shared: HashSet<&Vec<u8>> = payloads[&1][60..110].iter().collect();
    let late = &payloads[&3];
    assert!(late.len() > 60);
    assert!(
        late.iter().all(|p| shared.contains(p)),
        "a member alone later gets the loop's shared encodings"
    );
    let early_tail = &payloads[&2][payloads[&2].len() - 50..];
    assert!(
        early_tail.iter().all(|p| shared.contains(p)),
        "so does one that started before"
    );
    // and what they hear is the music
    let codec = CodecConfig::new(CodecKind::Opus, 48000);
    let mut dec = codec.decoder().expect("decoder");
    let mut pcm = Vec::new();
    for p in late {
        dec.decode(p, &mut pcm).expect("opus");
    }
    let tail = &pcm[pcm.len() - 48000..];
    assert!(
        goertzel_power(tail, 48000, 523.0) > HEARD,
        "the music is heard"
    );
}

#[test]
fn a_departed_members_last_packets_do_not_latch_a_newcomer_from_the_same_ip() {
    // Two phones behind one IP (an office NAT, or loopback): 1 hangs up, and its last packets
    // arrive after it was removed, just as 3 joins from another port of the same IP. They
    // must not become 3's first packets (3 would be latched to a dead address: it would hear
    // nothing, and its own stream would be dropped).
    let mut net = Net::new();
    net.join(7, 1, "192.0.2.1:4000", "192.0.2.1:4000", Some(440.0));
    net.join(7, 2, "192.0.2.2:4000", "192.0.2.2:4000", Some(1000.0));
    net.run(20);
    net.engine
        .handle_command(net.now, Command::RemoveMember { member: 1 })
        .expect("removed");
    let at = net
        .phones
        .iter()
        .position(|p| p.member == 1)
        .expect("phone 1");
    let mut late = net.phones.remove(at);
    net.join(7, 3, "192.0.2.1:4010", "192.0.2.1:4010", None);
    for _ in 0..3 {
        let pkt = late.packet().expect("packet");
        assert!(
            net.inject(late.addr, &pkt).is_err(),
            "a departed member's packet is nobody's"
        );
    }
    net.phone(3).freq = Some(700.0);
    net.run(30);
    assert_eq!(
        net.engine.member_report(3).expect("report").source.rtp,
        Some(addr("192.0.2.1:4010")),
        "the newcomer is latched where it sends from"
    );
    assert!(net.hears(2, 700.0), "and heard");
    assert!(net.hears(3, 1000.0), "and hears");
    // After the hold, the address is an ordinary one again: a phone named by IP only (NAT)
    // may latch there.
    net.run(110);
    net.join(7, 4, "192.0.2.1:4000", "192.0.2.1:5555", Some(300.0));
    net.run(30);
    assert_eq!(
        net.engine.member_report(4).expect("report").source.rtp,
        Some(addr("192.0.2.1:4000"))
    );
}
