//! SDP offer/answer for a SIP video terminal's camera and the meeting's composed picture:
//! H.264 (RFC 6184), packetization modes 0 and 1, keyframe requests by RTCP PLI and FIR
//! (RFC 4585, RFC 5104).
//!
//! We send Constrained Baseline, which every H.264 decoder (Baseline, Main, High) can show,
//! at the level the terminal names (capped at 3.1, 720p30): the answer keeps the offered
//! payload type's profile-level-id profile bytes only when they are Baseline; otherwise it
//! says `42e0` with the level. Video is plain RTP here (SDES video is refused with port 0,
//! the call's audio unaffected); see docs/video.md.

use std::net::SocketAddr;

use crate::offer_answer::{Direction, LocalMedia};
use crate::sdp::{Attribute, Media, SessionDescription};

/// The payload types of our offer (mode 1 first, then mode 0).
pub const OFFER_PT_MODE1: u8 = 96;
pub const OFFER_PT_MODE0: u8 = 97;
/// The highest level we send: 3.1 (1280×720 at 30 frames a second).
pub const MAX_LEVEL: u8 = 31;
/// What we announce we take (b=AS, kbit/s).
pub const BANDWIDTH_KBPS: u32 = 2048;

/// The outcome of offer/answer for the video stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedVideo {
    /// Where to send RTP (`None`: the terminal gave no address yet, or holds).
    pub remote: Option<SocketAddr>,
    /// Where to send RTCP (the RTP address with rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    /// H.264's payload type (the terminal's number when it offered).
    pub payload_type: u8,
    /// 0: one NAL unit per packet; 1: aggregation and fragmentation too.
    pub packetization_mode: u8,
    /// level_idc (10 × the level): what the terminal can decode.
    pub level: u8,
    /// Our direction.
    pub direction: Direction,
}

impl NegotiatedVideo {
    /// The largest 16:9 picture the terminal's level allows at 30 frames a second.
    pub fn picture_size(&self) -> (usize, usize) {
        match self.level {
            l if l >= 31 => (1280, 720),
            l if l >= 30 => (640, 360),
            _ => (320, 180),
        }
    }
}

/// An H.264 payload type of an offer or answer: its number, mode and level.
fn h264_formats(m: &Media) -> Vec<(u8, u8, u8, bool)> {
    m.payload_types()
        .into_iter()
        .filter_map(|pt| {
            let map = m.rtpmap(pt)?;
            if !map.encoding.eq_ignore_ascii_case("H264") || map.clock_rate != 90000 {
                return None;
            }
            let (mut mode, mut profile, mut level) = (0u8, 0x42u8, 10u8);
            for p in m.fmtp(pt).unwrap_or("").split(';') {
                let Some((k, v)) = p.trim().split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "packetization-mode" => mode = v.trim().parse().ok()?,
                    "profile-level-id" => {
                        let v = v.trim();
                        if v.len() != 6 || !v.is_char_boundary(2) || !v.is_char_boundary(4) {
                            return None;
                        }
                        profile = u8::from_str_radix(&v[..2], 16).ok()?;
                        level = u8::from_str_radix(&v[4..], 16).ok()?;
                    }
                    _ => {}
                }
            }
            // mode 2 (interleaved) is not sent by anyone we meet, and not by us
            (mode <= 1).then_some((pt, mode, level.min(MAX_LEVEL), profile == 0x42))
        })
        .collect()
}

fn their_direction(m: &Media, sdp: &SessionDescription) -> Direction {
    for d in [
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ] {
        if m.has_attr(d.as_str()) || sdp.attr(d.as_str()).is_some() {
            return d;
        }
    }
    Direction::SendRecv
}

fn ours(local: &LocalMedia, theirs: Direction) -> Direction {
    let send = local.direction.sends() && theirs.receives();
    let recv = local.direction.receives() && theirs.sends();
    match (send, recv) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

fn remote(
    sdp: &SessionDescription,
    m: &Media,
    mux: bool,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    if m.port == 0 {
        return (None, None);
    }
    let Some(ip) = sdp.media_connection(m).and_then(|c| c.ip()) else {
        return (None, None);
    };
    if ip.is_unspecified() {
        return (None, None);
    }
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = if mux {
        rtp
    } else {
        let port = m
            .attr("rtcp")
            .and_then(|a| a.value.as_deref())
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(m.port.wrapping_add(1));
        SocketAddr::new(ip, port)
    };
    (Some(rtp), Some(rtcp))
}

fn section(port: u16, proto: &str) -> Media {
    Media {
        media: "video".into(),
        port,
        num_ports: None,
        proto: proto.into(),
        formats: Vec::new(),
        title: None,
        connection: None,
        bandwidth: vec![format!("AS:{BANDWIDTH_KBPS}")],
        attributes: Vec::new(),
    }
}

fn push_format(m: &mut Media, pt: u8, mode: u8, level: u8) {
    m.formats.push(pt.to_string());
    m.attributes
        .push(Attribute::new("rtpmap", format!("{pt} H264/90000")));
    m.attributes.push(Attribute::new(
        "fmtp",
        format!("{pt} profile-level-id=42e0{level:02x};packetization-mode={mode}"),
    ));
    for fb in ["nack pli", "ccm fir"] {
        m.attributes
            .push(Attribute::new("rtcp-fb", format!("{pt} {fb}")));
    }
}

/// Answers an offered video section: `None` when it cannot be taken (no H.264 we can send,
/// SRTP, no port of ours), and the section is then refused with port 0.
pub fn answer(
    offer: &SessionDescription,
    m: &Media,
    local: &LocalMedia,
    rtcp_mux: bool,
) -> Option<(Media, NegotiatedVideo)> {
    let port = local.video_port?;
    let proto = m.proto.to_ascii_uppercase();
    if m.port == 0 || !matches!(proto.as_str(), "RTP/AVP" | "RTP/AVPF") {
        return None;
    }
    let formats = h264_formats(m);
    // Baseline and mode 1 first (the most each side can do), then the offer's order
    let (pt, mode, level, _) = formats
        .iter()
        .copied()
        .min_by_key(|(_, mode, _, baseline)| (!baseline, *mode != 1))?;
    let mux = rtcp_mux && m.has_attr("rtcp-mux");
    let direction = ours(local, their_direction(m, offer));
    let mut out = section(port, &m.proto);
    push_format(&mut out, pt, mode, level);
    out.attributes.push(Attribute::flag(direction.as_str()));
    if mux {
        out.attributes.push(Attribute::flag("rtcp-mux"));
    }
    Some((out, negotiated(offer, m, mux, (pt, mode, level), direction)))
}

/// What both sides agreed, as the media plane takes it.
fn negotiated(
    sdp: &SessionDescription,
    m: &Media,
    mux: bool,
    (payload_type, packetization_mode, level): (u8, u8, u8),
    direction: Direction,
) -> NegotiatedVideo {
    let (remote, remote_rtcp) = remote(sdp, m, mux);
    NegotiatedVideo {
        remote,
        remote_rtcp,
        rtcp_mux: mux,
        payload_type,
        packetization_mode,
        level,
        direction,
    }
}

/// Our video section in an offer (when `local.video_port` is set).
pub fn offer(local: &LocalMedia, rtcp_mux: bool) -> Option<Media> {
    let port = local.video_port?;
    let mut m = section(port, "RTP/AVP");
    push_format(&mut m, OFFER_PT_MODE1, 1, MAX_LEVEL);
    push_format(&mut m, OFFER_PT_MODE0, 0, MAX_LEVEL);
    m.attributes.push(Attribute::flag(local.direction.as_str()));
    if rtcp_mux {
        m.attributes.push(Attribute::flag("rtcp-mux"));
    }
    Some(m)
}

/// The answer's video section to our offer: what was taken, if anything.
pub fn answered(
    answer: &SessionDescription,
    m: &Media,
    local: &LocalMedia,
    rtcp_mux: bool,
) -> Option<NegotiatedVideo> {
    local.video_port?;
    if m.port == 0 {
        return None;
    }
    let (pt, mode, level, _) = h264_formats(m)
        .into_iter()
        .find(|(pt, ..)| [OFFER_PT_MODE1, OFFER_PT_MODE0].contains(pt))?;
    let mux = rtcp_mux && m.has_attr("rtcp-mux");
    let direction = ours(local, their_direction(m, answer));
    Some(negotiated(answer, m, mux, (pt, mode, level), direction))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer_answer::{MediaConfig, answer_body};

    fn local(video: bool) -> LocalMedia {
        LocalMedia {
            addr: "192.0.2.1".parse().unwrap(),
            port: 4000,
            session_id: 1,
            session_version: 1,
            srtp_key: None,
            srtp_policy: None,
            direction: Direction::SendRecv,
            video_port: video.then_some(4002),
        }
    }

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 0\r\na=sendrecv\r\n\
m=video 5002 RTP/AVP 100 101 102\r\nb=AS:1000\r\n\
a=rtpmap:100 VP8/90000\r\n\
a=rtpmap:101 H264/90000\r\na=fmtp:101 packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtcp-fb:101 nack pli\r\na=sendrecv\r\n";

    #[test]
    fn a_terminal_offering_h264_gets_mode_1_at_its_level() {
        let (sdp, n) =
            answer_body(BARESIP.as_bytes(), &MediaConfig::default(), &local(true)).unwrap();
        let v = n.video.expect("video taken");
        assert_eq!(v.payload_type, 102);
        assert_eq!(v.packetization_mode, 1);
        assert_eq!(v.level, 31);
        assert_eq!(v.picture_size(), (1280, 720));
        assert_eq!(v.remote, Some("198.51.100.7:5002".parse().unwrap()));
        assert_eq!(v.remote_rtcp, Some("198.51.100.7:5003".parse().unwrap()));
        let text = sdp.to_string();
        assert!(text.contains("m=video 4002 RTP/AVP 102\r\n"), "{text}");
        assert!(
            text.contains("a=fmtp:102 profile-level-id=42e01f;packetization-mode=1"),
            "{text}"
        );
        assert!(text.contains("a=rtcp-fb:102 ccm fir"), "{text}");
    }

    #[test]
    fn without_a_video_port_or_with_vp8_only_video_is_refused_and_audio_kept() {
        let (sdp, n) =
            answer_body(BARESIP.as_bytes(), &MediaConfig::default(), &local(false)).unwrap();
        assert!(n.video.is_none());
        assert!(sdp.to_string().contains("m=video 0 "));
        let vp8 = BARESIP.replace("100 101 102", "100");
        let (_, n) = answer_body(vp8.as_bytes(), &MediaConfig::default(), &local(true)).unwrap();
        assert!(n.video.is_none());
    }

    #[test]
    fn mode_0_only_and_a_low_level_are_kept() {
        let offer = BARESIP
            .replace("100 101 102", "101")
            .replace("42e01f", "42e00d");
        let (_, n) = answer_body(offer.as_bytes(), &MediaConfig::default(), &local(true)).unwrap();
        let v = n.video.unwrap();
        assert_eq!(
            (v.payload_type, v.packetization_mode, v.level),
            (101, 0, 0x0d)
        );
        assert_eq!(v.picture_size(), (320, 180));
    }

    #[test]
    fn junk_formats_are_skipped_not_trusted() {
        for fmtp in [
            "packetization-mode=9",
            "profile-level-id=zz",
            "profile-level-id=4\u{e9}01f",
            "packetization-mode=1;profile-level-id=42e0ff",
        ] {
            let offer = BARESIP
                .replace("100 101 102", "101")
                .replace("packetization-mode=0;profile-level-id=42e01f", fmtp);
            let result = answer_body(offer.as_bytes(), &MediaConfig::default(), &local(true));
            if let Ok((_, n)) = result
                && let Some(v) = n.video
            {
                assert!(v.level <= MAX_LEVEL, "{fmtp}");
            }
        }
    }

    #[test]
    fn our_offer_and_its_answer() {
        let l = local(true);
        let m = offer(&l, true).unwrap();
        let mut sdp = SessionDescription::parse(BARESIP.as_bytes()).unwrap();
        let text = format!("{}", {
            let mut s = sdp.clone();
            s.media = vec![m];
            s
        });
        assert!(text.contains("a=fmtp:96 profile-level-id=42e01f;packetization-mode=1"));
        sdp.media[1].formats = vec!["96".into()];
        sdp.media[1].attributes = vec![
            Attribute::new("rtpmap", "96 H264/90000"),
            Attribute::new("fmtp", "96 profile-level-id=42e01e;packetization-mode=1"),
        ];
        let v = answered(&sdp, &sdp.media[1], &l, true).unwrap();
        assert_eq!((v.payload_type, v.level), (96, 30));
        assert_eq!(v.picture_size(), (640, 360));
    }
}
