//! A SIP video terminal's video stream, beside its call's audio. Sans-IO.
//!
//! In: the terminal's camera (H.264 over plain RTP on the leg's own port pair) goes to the
//! room's SFU as the member's camera, so browsers see it in its tile and the composer draws
//! it; its PLI and FIR (RFC 4585, RFC 5104) ask the composer for a keyframe.
//! Out: the room's composed picture, encoded once per size by the composer
//! ([`ComposedFrame`]); here each packet only gets this leg's RTP header. Keyframe requests
//! to the terminal go as PLI and FIR together (older terminals know only FIR).
//!
//! Latching: the first source on the leg's own port is taken (symmetric RTP) when it comes
//! from an address the terminal is known by (its SDP's, its signalling's: behind NAT the
//! media leaves from the signalling's address); afterwards only the address its SDP named
//! may take over, after a silence — a stranger who finds the port cannot steal the stream,
//! nor be first.

use std::net::SocketAddr;
use std::time::Duration;

use crate::mixer::DropReason;
use crate::rtcp::{RtcpPacket, parse_compound, write_rr};
use crate::rtp::{RtpPacket, SeqUnwrapper, looks_like_rtcp, write_simple};

/// The composed picture of one size, packetized once (RTP payloads: single NAL units, and
/// FU-A fragments for the rare NAL unit larger than a packet), for every leg of that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedFrame {
    /// Width and height.
    pub size: (usize, usize),
    /// The frame's time on the 90 kHz clock (each leg adds its own offset).
    pub timestamp: u32,
    /// It starts with an IDR.
    pub keyframe: bool,
    /// Payloads and marker bits.
    pub packets: Vec<(Vec<u8>, bool)>,
}

/// What a leg was set up with (from the SDP offer/answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoLegConfig {
    /// H.264's payload type.
    pub payload_type: u8,
    /// 0: single NAL units only; 1: FU-A too.
    pub packetization_mode: u8,
    /// The composed picture's size it receives.
    pub size: (usize, usize),
    /// Where its SDP says its RTP goes.
    pub remote: Option<SocketAddr>,
    /// Addresses it is known by besides (its signalling's); empty with the SDP's: anyone
    /// may be first.
    pub known_ips: Vec<std::net::IpAddr>,
    /// Where its SDP says its RTCP goes.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTCP on the RTP port.
    pub rtcp_mux: bool,
    /// We send it the composed picture.
    pub sends: bool,
    /// We take its camera.
    pub receives: bool,
    /// Our SSRC (random).
    pub ssrc: u32,
    /// Our first sequence number (random).
    pub initial_seq: u16,
    /// Our timestamps' offset (random).
    pub initial_ts: u32,
}

/// A leg's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoLegStats {
    /// Its camera's packets taken.
    pub received: u64,
    /// Composed packets sent to it.
    pub sent: u64,
    /// Its keyframe requests (PLI, FIR).
    pub keyframes_wanted: u64,
    /// Keyframe requests sent to it.
    pub keyframes_asked: u64,
}

/// What a datagram from the terminal was.
#[derive(Debug, PartialEq, Eq)]
pub enum VideoLegInput<'a> {
    /// A packet of its camera, for the SFU.
    Camera {
        /// Extended sequence number.
        seq: u64,
        /// 90 kHz.
        timestamp: u32,
        /// End of a frame.
        marker: bool,
        /// H.264 payload.
        payload: &'a [u8],
    },
    /// It asks for a keyframe of what it receives.
    KeyframeWanted,
    /// RTCP without a request (reports).
    Nothing,
}

/// See the module documentation.
#[derive(Debug)]
pub struct VideoLeg {
    config: VideoLegConfig,
    rtp_from: Option<SocketAddr>,
    rtcp_from: Option<SocketAddr>,
    seq: u16,
    fir_seq: u8,
    unwrap: SeqUnwrapper,
    their_ssrc: Option<u32>,
    last_received: Option<Duration>,
    stats: VideoLegStats,
}

/// A PSFB packet: PLI (format 1) and FIR (format 4).
const PSFB: u8 = 206;
const PLI: u8 = 1;
const FIR: u8 = 4;
/// FU-A's NAL unit type: not for mode 0 terminals.
const FU_A: u8 = 28;
/// A stream silent this long may be taken over by the address the SDP named.
const TAKEOVER_AFTER: Duration = Duration::from_secs(2);

impl VideoLeg {
    /// A new leg.
    pub fn new(config: VideoLegConfig) -> VideoLeg {
        VideoLeg {
            seq: config.initial_seq,
            config,
            rtp_from: None,
            rtcp_from: None,
            fir_seq: 0,
            unwrap: SeqUnwrapper::default(),
            their_ssrc: None,
            last_received: None,
            stats: VideoLegStats::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &VideoLegConfig {
        &self.config
    }

    /// Its counters.
    pub fn stats(&self) -> VideoLegStats {
        self.stats
    }

    /// Whether `from` may send on the leg's port (latching it when it is the first).
    fn admit(&mut self, now: Duration, from: SocketAddr, rtcp: bool) -> bool {
        let (latched, named) = if rtcp {
            (self.rtcp_from, self.config.remote_rtcp)
        } else {
            (self.rtp_from, self.config.remote)
        };
        let take = match latched {
            None => {
                let known: Vec<_> = self
                    .config
                    .known_ips
                    .iter()
                    .copied()
                    .chain(self.config.remote.map(|a| a.ip()))
                    .collect();
                known.is_empty() || known.contains(&from.ip())
            }
            Some(addr) if addr == from => return true,
            // a NAT mapping that moved back to where the SDP said, after a silence
            Some(_) => {
                named == Some(from)
                    && self
                        .last_received
                        .is_none_or(|t| now.saturating_sub(t) >= TAKEOVER_AFTER)
            }
        };
        if take {
            if rtcp {
                self.rtcp_from = Some(from);
            } else {
                self.rtp_from = Some(from);
            }
        }
        take
    }

    /// A datagram on the leg's RTP port (`rtcp_port`: on its RTCP port).
    pub fn receive<'a>(
        &mut self,
        now: Duration,
        from: SocketAddr,
        data: &'a [u8],
        rtcp_port: bool,
    ) -> Result<VideoLegInput<'a>, DropReason> {
        let rtcp = rtcp_port || looks_like_rtcp(data);
        if !self.admit(now, from, rtcp) {
            return Err(DropReason::Stranger);
        }
        if rtcp {
            let mut wanted = false;
            for packet in parse_compound(data) {
                match packet {
                    Ok(RtcpPacket::Other {
                        packet_type: PSFB,
                        count: PLI | FIR,
                        ..
                    }) => wanted = true,
                    Ok(_) => {}
                    Err(_) => return Err(DropReason::Malformed),
                }
            }
            if wanted {
                self.stats.keyframes_wanted += 1;
                return Ok(VideoLegInput::KeyframeWanted);
            }
            return Ok(VideoLegInput::Nothing);
        }
        let packet = RtpPacket::parse(data).map_err(|_| DropReason::Malformed)?;
        if packet.payload_type() != self.config.payload_type {
            return Err(DropReason::WrongPayloadType);
        }
        if !self.config.receives || packet.payload().is_empty() {
            return Err(DropReason::NoAudio);
        }
        if self.their_ssrc != Some(packet.ssrc()) {
            // a new stream (the terminal restarted its camera): sequence numbers start over
            self.their_ssrc = Some(packet.ssrc());
            self.unwrap.reset();
        }
        self.last_received = Some(now);
        self.stats.received += 1;
        Ok(VideoLegInput::Camera {
            seq: self.unwrap.unwrap(packet.sequence()),
            timestamp: packet.timestamp(),
            marker: packet.marker(),
            payload: packet.payload(),
        })
    }

    /// The composed frame's packets for this leg, as (destination, datagram), if it receives
    /// this size.
    pub fn send(&mut self, frame: &ComposedFrame, out: &mut dyn FnMut(SocketAddr, Vec<u8>)) {
        if !self.config.sends || frame.size != self.config.size {
            return;
        }
        let Some(to) = self.rtp_from.or(self.config.remote) else {
            return;
        };
        let timestamp = frame.timestamp.wrapping_add(self.config.initial_ts);
        let fragment = |p: &[u8]| p.first().is_some_and(|b| b & 0x1f == FU_A);
        let mode0 = self.config.packetization_mode == 0;
        // the frame's last packet this terminal gets carries the marker
        let last = frame
            .packets
            .iter()
            .rposition(|(p, _)| !(mode0 && fragment(p)))
            .unwrap_or(0);
        for (i, (payload, marker)) in frame.packets.iter().enumerate() {
            if mode0 && fragment(payload) {
                continue;
            }
            let mut data = Vec::new();
            write_simple(
                &mut data,
                *marker || i == last,
                self.config.payload_type,
                self.seq,
                timestamp,
                self.config.ssrc,
                payload,
            );
            self.seq = self.seq.wrapping_add(1);
            self.stats.sent += 1;
            out(to, data);
        }
    }

    /// A keyframe request for the terminal (an RR, a PLI and a FIR in one compound packet),
    /// with where it goes and whether it goes on the RTCP port.
    pub fn keyframe_request(&mut self) -> Option<(SocketAddr, Vec<u8>, bool)> {
        let (to, rtcp_port) = if self.config.rtcp_mux {
            (self.rtp_from.or(self.config.remote)?, false)
        } else {
            (self.rtcp_from.or(self.config.remote_rtcp)?, true)
        };
        let media = self.their_ssrc.unwrap_or(0);
        let mut data = Vec::with_capacity(40);
        write_rr(&mut data, self.config.ssrc, &[]);
        // PLI: header, sender SSRC, media SSRC
        data.extend_from_slice(&[0x80 | PLI, PSFB, 0, 2]);
        data.extend_from_slice(&self.config.ssrc.to_be_bytes());
        data.extend_from_slice(&media.to_be_bytes());
        // FIR: header, sender SSRC, media SSRC 0, then the entry (SSRC, seq, reserved)
        data.extend_from_slice(&[0x80 | FIR, PSFB, 0, 4]);
        data.extend_from_slice(&self.config.ssrc.to_be_bytes());
        data.extend_from_slice(&0u32.to_be_bytes());
        data.extend_from_slice(&media.to_be_bytes());
        data.extend_from_slice(&[self.fir_seq, 0, 0, 0]);
        self.fir_seq = self.fir_seq.wrapping_add(1);
        self.stats.keyframes_asked += 1;
        Some((to, data, rtcp_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::parse_all;

    fn config() -> VideoLegConfig {
        VideoLegConfig {
            payload_type: 102,
            packetization_mode: 1,
            size: (1280, 720),
            remote: Some("192.0.2.7:5002".parse().unwrap()),
            known_ips: vec!["203.0.113.9".parse().unwrap()],
            remote_rtcp: Some("192.0.2.7:5003".parse().unwrap()),
            rtcp_mux: false,
            sends: true,
            receives: true,
            ssrc: 7,
            initial_seq: 65535,
            initial_ts: 1000,
        }
    }

    fn rtp(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut v = Vec::new();
        write_simple(&mut v, true, pt, seq, 90, ssrc, &[0x65, 1, 2, 3]);
        v
    }

    #[test]
    fn the_camera_is_taken_from_the_first_source_and_not_from_strangers() {
        let mut leg = VideoLeg::new(config());
        let nat: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.66:1".parse().unwrap();
        let t = Duration::from_secs(1);
        let data = rtp(102, 65535, 9);
        // a stranger cannot be first either
        assert_eq!(
            leg.receive(t, stranger, &data, false),
            Err(DropReason::Stranger)
        );
        let Ok(VideoLegInput::Camera { seq, marker, .. }) = leg.receive(t, nat, &data, false)
        else {
            panic!("camera packet");
        };
        assert!(marker);
        let next = rtp(102, 0, 9);
        let Ok(VideoLegInput::Camera { seq: after, .. }) = leg.receive(t, nat, &next, false) else {
            panic!("camera packet");
        };
        assert_eq!(after, seq + 1, "sequence numbers go on across the wrap");
        assert_eq!(
            leg.receive(t, stranger, &next, false),
            Err(DropReason::Stranger)
        );
        assert_eq!(
            leg.receive(t, nat, &rtp(96, 1, 9), false),
            Err(DropReason::WrongPayloadType)
        );
        // the SDP's address takes over only after a silence
        let named = config().remote.unwrap();
        assert_eq!(
            leg.receive(t, named, &next, false),
            Err(DropReason::Stranger)
        );
        let later = t + TAKEOVER_AFTER;
        assert!(matches!(
            leg.receive(later, named, &next, false),
            Ok(VideoLegInput::Camera { .. })
        ));
        assert_eq!(
            leg.receive(later, named, &[0x80, 102, 1], false),
            Err(DropReason::Malformed)
        );
    }

    #[test]
    fn pli_and_fir_ask_for_a_keyframe_and_ours_parse_back() {
        let mut leg = VideoLeg::new(config());
        let mut asked = leg.keyframe_request().expect("somewhere to send");
        assert_eq!(asked.0, config().remote_rtcp.unwrap());
        assert!(asked.2, "on the RTCP port");
        let packets = parse_all(&asked.1).expect("valid RTCP");
        assert_eq!(packets.len(), 3);
        let from: SocketAddr = "192.0.2.7:5003".parse().unwrap();
        let t = Duration::ZERO;
        assert_eq!(
            leg.receive(t, from, &asked.1, true),
            Ok(VideoLegInput::KeyframeWanted)
        );
        let mut rr = Vec::new();
        write_rr(&mut rr, 5, &[]);
        assert_eq!(leg.receive(t, from, &rr, true), Ok(VideoLegInput::Nothing));
        asked.1.truncate(asked.1.len() - 3);
        assert_eq!(
            leg.receive(t, from, &asked.1, true),
            Err(DropReason::Malformed)
        );
        assert_eq!(leg.stats().keyframes_wanted, 1);
    }

    #[test]
    fn a_frame_goes_out_with_the_legs_header_and_mode_0_skips_fragments() {
        let frame = ComposedFrame {
            size: (1280, 720),
            timestamp: 3000,
            keyframe: true,
            packets: vec![
                (vec![0x67, 1], false),
                (vec![0x7c, 0x85, 9], false),
                (vec![0x7c, 0x45, 9], true),
            ],
        };
        let mut sent = Vec::new();
        let mut leg = VideoLeg::new(config());
        leg.send(&frame, &mut |to, d| sent.push((to, d)));
        assert_eq!(sent.len(), 3);
        let first = RtpPacket::parse(&sent[0].1).unwrap();
        assert_eq!(first.payload_type(), 102);
        assert_eq!(first.timestamp(), 4000);
        assert_eq!(first.sequence(), 65535);
        assert_eq!(RtpPacket::parse(&sent[1].1).unwrap().sequence(), 0);
        assert!(RtpPacket::parse(&sent[2].1).unwrap().marker());
        let mut mode0 = VideoLeg::new(VideoLegConfig {
            packetization_mode: 0,
            ..config()
        });
        sent.clear();
        mode0.send(&frame, &mut |to, d| sent.push((to, d)));
        assert_eq!(sent.len(), 1);
        assert!(
            RtpPacket::parse(&sent[0].1).unwrap().marker(),
            "the frame still ends"
        );
        let mut small = VideoLeg::new(VideoLegConfig {
            size: (640, 360),
            ..config()
        });
        sent.clear();
        small.send(&frame, &mut |to, d| sent.push((to, d)));
        assert!(sent.is_empty(), "another size's frame is not for it");
    }
}
