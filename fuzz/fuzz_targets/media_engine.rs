#![no_main]
//! The engine behind a shared port fed arbitrary datagrams from a handful of addresses, with
//! members joining, renegotiating and leaving: never panics, never routes a datagram to a
//! member that left, and its deadline heap always names a room that is due.
use conclave_media::codec::CodecKind;
use conclave_media::engine::{Command, Engine, MemberPorts, MemberSetup, PortKind};
use conclave_media::mixer::{MemberConfig, MixerConfig};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::Duration;

fn setup(member: u64, remote: SocketAddr) -> Box<MemberSetup> {
    let kinds = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus];
    let mut config = MemberConfig::new(kinds[(member % 4) as usize], member as u32 + 1);
    config.remote = Some(remote);
    config.source_ips = vec![remote.ip()];
    config.rtcp_mux = member % 2 == 0;
    Box::new(MemberSetup {
        webrtc: None,
        config,
        ports: MemberPorts { rtp: 1, rtcp: Some(2) },
        muted: member % 3 == 0,
        deaf: false,
        group: None,
        rtp_timeout: Some(Duration::from_secs(1)),
        playback: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(MixerConfig::default());
    engine.add_port(1, PortKind::Shared);
    engine.add_port(2, PortKind::SharedRtcp);
    let addrs: Vec<SocketAddr> = (0..4)
        .map(|i| SocketAddr::from(([192, 0, 2, i as u8 + 1], 4000 + (i % 2) as u16)))
        .collect();
    let mut now = Duration::ZERO;
    // records: [selector, len_hi, len_lo, bytes…]; the selector picks an action and an address
    let mut rest = data;
    while rest.len() >= 3 {
        let sel = rest[0];
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize % 1500;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (pkt, r) = rest.split_at(take);
        rest = r;
        let member = u64::from(sel & 3);
        let from = addrs[((sel >> 2) & 3) as usize];
        match sel >> 4 {
            0 => {
                let room = u64::from(sel & 1);
                let _ = engine.handle_command(now, Command::AddMember { room, member, setup: setup(member, from) });
            }
            1 => {
                let _ = engine.handle_command(now, Command::RemoveMember { member });
            }
            2 => {
                let config = Box::new(setup(member, from).config);
                let _ = engine.handle_command(now, Command::UpdateMember { member, config });
            }
            3 => now += Duration::from_millis(20),
            4..=9 => {
                let _ = engine.handle_datagram(now, 1, from, pkt);
            }
            _ => {
                let _ = engine.handle_datagram(now, 2, from, pkt);
            }
        }
        engine.handle_timeout(now);
        engine.drain_transmits().for_each(drop);
        engine.drain_events().for_each(drop);
        if let Some(at) = engine.poll_timeout() {
            assert!(at <= now + Duration::from_millis(20), "a deadline far ahead: {at:?} at {now:?}");
        }
        for m in 0..4 {
            if engine.room_of(m).is_none() {
                assert!(engine.member_report(m).is_none());
            }
        }
    }
});
