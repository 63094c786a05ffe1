//! A browser member's transport: WebRTC in front of the mixer. Sans-IO, over str0m.
//!
//! The server is ICE-lite on the media plane's own ports: the browser sends its connectivity
//! checks to the worker's shared port, the engine finds the peer by the ICE username in the
//! STUN request (then by the address the checks came from), and everything from that address
//! goes through the peer: DTLS, then SRTP. What comes out is plain RTP, which the mixer takes
//! like any member's; what the mixer sends the member goes back through the peer, encrypted.
//! str0m answers RTCP (receiver reports, NACK) itself; the mixer's own RTCP is not sent.
//!
//! One DTLS certificate serves every peer ([`WebRtcIdentity`]): generating one per browser
//! would cost a key generation for every join, which an anonymous client could repeat.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::rtp::{RtpHeader, RtpPacket};
use crate::video::{Layer, StreamKind, VideoCodec};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{Extension, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// The header extension id the peer writes the browser's audio level with, in the RTP it
/// hands the mixer (the mixer skips decoding members who are quiet).
pub const AUDIO_LEVEL_EXT: u8 = 1;

/// The estimate a video peer's bandwidth estimation starts from (bits per second).
const START_ESTIMATE: f64 = 2_500_000.0;
/// What it probes towards: the big tile's full layer and many small ones.
const DESIRED_BITRATE: f64 = 4_000_000.0;

/// A browser's video sections, by what the page put in its offer: the first section it
/// sends is its camera, the second its screen; the sections it receives are the layout's
/// tiles, in order.
#[derive(Debug, Default, Clone)]
struct VideoMids {
    camera: Option<Mid>,
    screen: Option<Mid>,
    slots: Vec<Mid>,
}

/// Why a browser's offer cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// Not SDP.
    #[error("the offer is not valid SDP: {0}")]
    Sdp(String),
    /// SDP that cannot be answered.
    #[error("the offer cannot be answered: {0}")]
    Offer(String),
    /// No Opus audio in it.
    #[error("the offer has no audio this server can take (Opus)")]
    NoAudio,
    /// Our address cannot be a candidate.
    #[error("the media address cannot be announced: {0}")]
    Candidate(String),
}

/// The server's DTLS identity, made once and shared by every peer.
#[derive(Clone)]
pub struct WebRtcIdentity {
    cert: Arc<DtlsCert>,
}

impl std::fmt::Debug for WebRtcIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebRtcIdentity")
    }
}

impl WebRtcIdentity {
    /// A new self-signed certificate (browsers check it against the fingerprint in our SDP).
    pub fn generate() -> Result<WebRtcIdentity, WebRtcError> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| WebRtcError::Offer("no DTLS certificate could be made".into()))?;
        Ok(WebRtcIdentity {
            cert: Arc::new(cert),
        })
    }
}

/// What a peer gives back: bytes for the network, RTP for the mixer.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerOutput {
    /// A datagram to send to the browser.
    Transmit {
        /// Over the browser's TCP connection (ICE-TCP), not UDP.
        tcp: bool,
        /// Where.
        to: SocketAddr,
        /// What.
        data: Vec<u8>,
    },
    /// A plain RTP packet from the browser (with its audio level as a header extension).
    Rtp {
        /// The address ICE chose.
        from: SocketAddr,
        /// The packet.
        data: Vec<u8>,
    },
    /// A video packet from the browser's camera or screen.
    Video {
        /// Which stream.
        kind: StreamKind,
        /// Its codec.
        codec: VideoCodec,
        /// Its simulcast layer.
        layer: Layer,
        /// Its sequence number, extended.
        seq: u64,
        /// Its RTP timestamp.
        timestamp: u32,
        /// End of a frame.
        marker: bool,
        /// The payload.
        payload: Arc<[u8]>,
    },
    /// The browser cannot decode what a receiving slot shows (PLI or FIR).
    LostPicture {
        /// The slot.
        slot: usize,
    },
    /// The bandwidth toward the browser, as estimated (bits per second).
    Estimate {
        /// The estimate.
        bps: u64,
    },
    /// The session failed (DTLS closed or broke). A browser ICE lost is not this: it may
    /// come back with an ICE restart; its media timeout ends it if it does not.
    Closed,
}

/// One browser's WebRTC session. See the module documentation.
pub struct WebRtcPeer {
    rtc: Rtc,
    /// Our candidate: where the browser sends (what arrives is addressed to it).
    local: SocketAddr,
    /// Our passive TCP candidate, when the server listens for ICE over TCP.
    local_tcp: Option<SocketAddr>,
    ufrag: String,
    mid: Option<Mid>,
    opus_pt: u8,
    video: VideoMids,
    vp8_pt: Option<u8>,
    h264_pt: Option<u8>,
    next_seq: u64,
    /// Where the last datagram that got through came from.
    last_from: Option<SocketAddr>,
    timeout: Option<Instant>,
    closed: bool,
}

impl std::fmt::Debug for WebRtcPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcPeer")
            .field("local", &self.local)
            .field("ufrag", &self.ufrag)
            .field("opus_pt", &self.opus_pt)
            .finish_non_exhaustive()
    }
}

impl WebRtcPeer {
    /// Answers a browser's offer: Opus audio, and when the offer has video sections, VP8 or
    /// H.264 video (see [`VideoMids`] for what each section is) with bandwidth estimation;
    /// ICE-lite with a UDP host candidate at `local` (the worker's port as the browser must
    /// reach it) and, for networks that block UDP, a passive TCP one at `local_tcp`.
    /// Returns the peer and the SDP answer.
    pub fn accept(
        offer: &str,
        local: SocketAddr,
        local_tcp: Option<SocketAddr>,
        identity: &WebRtcIdentity,
        now: Instant,
    ) -> Result<(WebRtcPeer, String), WebRtcError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Sdp(e.to_string()))?;
        let with_video = offer_has_video(&offer.to_sdp_string());
        let mut builder = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            // the audio level (quiet members are not decoded) and the media id; not, for a
            // member without video, the transport-wide sequence numbers: their feedback
            // (dozens of packets a second each way) serves a bandwidth estimate only video
            // needs
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(4, Extension::RtpMid)
            .set_dtls_cert((*identity.cert).clone());
        if with_video {
            builder = builder
                .enable_vp8(true)
                .enable_h264(true)
                .set_extension(3, Extension::TransportSequenceNumber)
                .set_extension(10, Extension::RtpStreamId)
                .set_extension(11, Extension::RepairedRtpStreamId)
                .enable_bwe(Some(Bitrate::bps(START_ESTIMATE as u64)));
        }
        let mut rtc = builder.build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| WebRtcError::Candidate(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        if let Some(tcp) = local_tcp {
            let candidate = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| WebRtcError::Candidate(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let answer = answer.to_sdp_string();
        let ufrag = answer_ufrag(&answer)
            .ok_or_else(|| WebRtcError::Offer("the answer has no ICE username".into()))?;
        let mid = audio_mid(&answer).ok_or(WebRtcError::NoAudio)?;
        let pt_of = |codec: str0m::format::Codec| {
            rtc.codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == codec)
                .map(|p| *p.pt())
        };
        let opus_pt = pt_of(str0m::format::Codec::Opus).ok_or(WebRtcError::NoAudio)?;
        let (vp8_pt, h264_pt) = (
            pt_of(str0m::format::Codec::Vp8),
            pt_of(str0m::format::Codec::H264),
        );
        let video = video_mids(&answer);
        if with_video {
            rtc.bwe()
                .set_bitrate(Bitrate::bps(0), Bitrate::bps(DESIRED_BITRATE as u64));
        }
        let mut peer = WebRtcPeer {
            rtc,
            local,
            local_tcp,
            ufrag,
            mid: Some(mid),
            opus_pt,
            video,
            vp8_pt,
            h264_pt,
            next_seq: 1 + u64::from(rand_u16()),
            last_from: None,
            timeout: None,
            closed: false,
        };
        peer.drain(&mut |_| {});
        Ok((peer, answer))
    }

    /// A new offer from the same browser: an ICE restart after its network changed (new
    /// credentials, the same DTLS session and streams). Returns our answer.
    pub fn renegotiate(&mut self, offer: &str) -> Result<String, WebRtcError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Sdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Offer(e.to_string()))?
            .to_sdp_string();
        if let Some(ufrag) = answer_ufrag(&answer) {
            self.ufrag = ufrag;
        }
        self.drain(&mut |_| {});
        Ok(answer)
    }

    /// Our ICE username fragment: a STUN request for this peer names it first.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Our candidate's address (where the browser sends).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The Opus payload type the browser and we agreed on.
    pub fn opus_payload_type(&self) -> u8 {
        self.opus_pt
    }

    /// How many tiles the browser can receive (its receiving video sections).
    pub fn video_slots(&self) -> usize {
        self.video.slots.len()
    }

    /// The browser sends video (a camera or screen section).
    pub fn sends_video(&self) -> bool {
        self.video.camera.is_some() || self.video.screen.is_some()
    }

    /// A video packet for one of the browser's receiving slots (from the SFU).
    #[allow(clippy::too_many_arguments)]
    pub fn send_video(
        &mut self,
        now: Instant,
        slot: usize,
        codec: VideoCodec,
        seq: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        out: &mut dyn FnMut(PeerOutput),
    ) {
        if self.closed {
            return;
        }
        let Some(&mid) = self.video.slots.get(slot) else {
            return;
        };
        let pt = match codec {
            VideoCodec::Vp8 => self.vp8_pt,
            VideoCodec::H264 => self.h264_pt,
        };
        let Some(pt) = pt else { return };
        let write = RtpWrite::new(
            pt.into(),
            SeqNo::from(seq),
            timestamp,
            now,
            payload.to_vec(),
        )
        .marker(marker)
        .nackable(true);
        match self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            Some(tx) => tx.write_rtp(write),
            None => return,
        }
        if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%err, "a WebRTC peer's video send failed");
        }
        self.drain(out);
    }

    /// Asks the browser for a keyframe of one layer of its camera or screen.
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        kind: StreamKind,
        layer: Layer,
        out: &mut dyn FnMut(PeerOutput),
    ) {
        if self.closed {
            return;
        }
        let mid = match kind {
            StreamKind::Camera => self.video.camera,
            StreamKind::Screen => self.video.screen,
        };
        let Some(mid) = mid else { return };
        let mut api = self.rtc.direct_api();
        let rid = Rid::from(layer.rid());
        // a stream without simulcast has no stream id
        let rx = if api.stream_rx_by_mid(mid, Some(rid)).is_some() {
            api.stream_rx_by_mid(mid, Some(rid))
        } else {
            api.stream_rx_by_mid(mid, None)
        };
        if let Some(rx) = rx {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%err, "a WebRTC peer's keyframe request failed");
        }
        self.drain(out);
    }

    /// When [`WebRtcPeer::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed { None } else { self.timeout }
    }

    /// It takes this datagram: a STUN request with our credentials, or anything from an
    /// address ICE has seen succeed.
    pub fn accepts(&self, now: Instant, tcp: bool, from: SocketAddr, data: &[u8]) -> bool {
        match self.input(now, tcp, from, data) {
            Some(input) => self.rtc.accepts(&input),
            None => false,
        }
    }

    /// ICE has accepted `from`: media from there is this peer's.
    pub fn knows(&self, now: Instant, tcp: bool, from: SocketAddr) -> bool {
        // what an RTP packet from there would be taken for
        const PROBE: [u8; 12] = [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        self.accepts(now, tcp, from, &PROBE)
    }

    fn input<'a>(
        &self,
        now: Instant,
        tcp: bool,
        from: SocketAddr,
        data: &'a [u8],
    ) -> Option<Input<'a>> {
        let contents = data.try_into().ok()?;
        let (proto, destination) = match (tcp, self.local_tcp) {
            (false, _) => (Protocol::Udp, self.local),
            (true, Some(local_tcp)) => (Protocol::Tcp, local_tcp),
            (true, None) => return None,
        };
        Some(Input::Receive(
            now,
            Receive {
                proto,
                source: from,
                destination,
                contents,
            },
        ))
    }

    /// A datagram from the browser.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        tcp: bool,
        from: SocketAddr,
        data: &[u8],
        out: &mut dyn FnMut(PeerOutput),
    ) {
        if self.closed {
            return;
        }
        let Some(input) = self.input(now, tcp, from, data) else {
            return;
        };
        if let Err(err) = self.rtc.handle_input(input) {
            tracing::debug!(%from, %err, "a WebRTC datagram refused");
            return;
        }
        self.last_from = Some(from);
        self.drain(out);
    }

    /// Time passes (ICE consent, DTLS retransmissions, RTCP reports).
    pub fn handle_timeout(&mut self, now: Instant, out: &mut dyn FnMut(PeerOutput)) {
        if self.closed {
            return;
        }
        if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%err, "a WebRTC peer's timeout failed");
        }
        self.drain(out);
    }

    /// A packet the mixer sends the member (plain RTP from the mixer); RTCP is str0m's own.
    pub fn send_rtp(&mut self, now: Instant, packet: &[u8], out: &mut dyn FnMut(PeerOutput)) {
        if self.closed {
            return;
        }
        let Some(mid) = self.mid else { return };
        let Some((marker, timestamp, payload)) = rtp_parts(packet) else {
            return;
        };
        let seq = SeqNo::from(self.next_seq);
        self.next_seq += 1;
        let write = RtpWrite::new(self.opus_pt.into(), seq, timestamp, now, payload).marker(marker);
        match self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            Some(tx) => tx.write_rtp(write),
            None => return,
        }
        // str0m queues the packet and asks for a timeout that is already due: run it now,
        // or the packet would wait for the worker's next wake-up (a frame late)
        if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%err, "a WebRTC peer's send failed");
        }
        self.drain(out);
    }

    /// Ends the session (DTLS close); what it sends last comes out.
    pub fn close(&mut self, out: &mut dyn FnMut(PeerOutput)) {
        if self.closed {
            return;
        }
        let _ = self.rtc.close();
        self.drain(out);
        self.closed = true;
    }

    fn drain(&mut self, out: &mut dyn FnMut(PeerOutput)) {
        // bounded: str0m ends every poll with a timeout; a runaway is cut off
        for _ in 0..10_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.timeout = Some(at);
                    return;
                }
                Ok(Output::Transmit(t)) => out(PeerOutput::Transmit {
                    tcp: t.proto == Protocol::Tcp,
                    to: t.destination,
                    data: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => self.event(event, out),
                Err(err) => {
                    tracing::debug!(%err, "a WebRTC peer failed");
                    self.closed = true;
                    out(PeerOutput::Closed);
                    return;
                }
            }
        }
    }

    fn event(&mut self, event: Event, out: &mut dyn FnMut(PeerOutput)) {
        // str0m's other events (ICE states, stats) change nothing here: a browser ICE has
        // lost may come back with an ICE restart, and its media timeout ends it otherwise
        match event {
            Event::RtpPacket(p) => {
                let pt = *p.header.payload_type;
                if pt == self.opus_pt {
                    if let Some(from) = self.last_from {
                        out(PeerOutput::Rtp {
                            from,
                            data: rebuild_rtp(&p),
                        });
                    }
                    return;
                }
                let codec = if Some(pt) == self.vp8_pt {
                    VideoCodec::Vp8
                } else if Some(pt) == self.h264_pt {
                    VideoCodec::H264
                } else {
                    return;
                };
                let Some(rx) = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|rx| (rx.mid(), rx.rid()))
                else {
                    return;
                };
                let (mid, rid) = rx;
                let kind = if Some(mid) == self.video.camera {
                    StreamKind::Camera
                } else if Some(mid) == self.video.screen {
                    StreamKind::Screen
                } else {
                    return;
                };
                out(PeerOutput::Video {
                    kind,
                    codec,
                    layer: Layer::from_rid(rid.as_deref()),
                    seq: *p.seq_no,
                    timestamp: p.header.timestamp,
                    marker: p.header.marker,
                    payload: p.payload,
                });
            }
            Event::KeyframeRequest(req) => {
                if let Some(slot) = self.video.slots.iter().position(|m| *m == req.mid) {
                    out(PeerOutput::LostPicture { slot });
                }
            }
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => out(PeerOutput::Estimate {
                bps: estimate.as_u64(),
            }),
            _ => {}
        }
    }
}

/// Our ICE username fragment, from our answer.
fn answer_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}

/// The media id of the answer's first audio section that is not refused (port 0).
fn audio_mid(sdp: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ") && !m.starts_with("audio 0 ");
        } else if in_audio && let Some(mid) = line.strip_prefix("a=mid:") {
            return Some(Mid::from(mid.trim()));
        }
    }
    None
}

/// The offer has a video section that is not refused.
fn offer_has_video(sdp: &str) -> bool {
    sdp.lines()
        .any(|l| l.starts_with("m=video ") && !l.starts_with("m=video 0 "))
}

/// The answer's video sections: those we receive (the browser's camera, then its screen)
/// and those we send (the tiles), each in order; refused ones (port 0) left out.
fn video_mids(sdp: &str) -> VideoMids {
    let mut mids = VideoMids::default();
    let mut section: Option<(Option<Mid>, Option<bool>)> = None;
    let finish = |section: Option<(Option<Mid>, Option<bool>)>, mids: &mut VideoMids| {
        if let Some((Some(mid), Some(receive))) = section {
            if receive {
                if mids.camera.is_none() {
                    mids.camera = Some(mid);
                } else if mids.screen.is_none() {
                    mids.screen = Some(mid);
                }
            } else {
                mids.slots.push(mid);
            }
        }
    };
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            finish(section.take(), &mut mids);
            if m.starts_with("video ") && !m.starts_with("video 0 ") {
                section = Some((None, None));
            }
        } else if let Some((mid, dir)) = section.as_mut() {
            if let Some(v) = line.strip_prefix("a=mid:") {
                *mid = Some(Mid::from(v.trim()));
            } else if line.starts_with("a=recvonly") {
                *dir = Some(true);
            } else if line.starts_with("a=sendonly") {
                *dir = Some(false);
            }
        }
    }
    finish(section.take(), &mut mids);
    mids
}

/// The ICE username a STUN binding request carries ("ours:theirs"), or `None`.
pub fn stun_username(data: &[u8]) -> Option<&str> {
    // RFC 5389: type 0x0001 (binding request), length, magic cookie, transaction id
    if data.len() < 20 || data[0] > 3 || data[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + length)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == 0x0006 {
            return std::str::from_utf8(value).ok();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// The local part of a STUN username ("ours:theirs" names ours first).
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    stun_username(data).and_then(|u| u.split(':').next())
}

/// Marker, timestamp and payload of a plain RTP packet.
fn rtp_parts(packet: &[u8]) -> Option<(bool, u32, Vec<u8>)> {
    let p = RtpPacket::parse(packet).ok()?;
    Some((p.marker(), p.timestamp(), p.payload().to_vec()))
}

/// A received packet as RTP bytes for the mixer, its audio level (RFC 6464) kept.
fn rebuild_rtp(p: &str0m::rtp::RtpPacket) -> Vec<u8> {
    let h = &p.header;
    let extensions = h
        .ext_vals
        .audio_level
        .map(|level| {
            let voice = h.ext_vals.voice_activity.unwrap_or(false);
            let magnitude = level.unsigned_abs().min(127);
            vec![(AUDIO_LEVEL_EXT, vec![magnitude | (u8::from(voice) << 7)])]
        })
        .unwrap_or_default();
    RtpHeader {
        marker: h.marker,
        payload_type: *h.payload_type & 0x7f,
        sequence: h.sequence_number,
        timestamp: h.timestamp,
        ssrc: *h.ssrc,
        csrcs: Vec::new(),
        extensions,
    }
    .to_vec(&p.payload)
}

/// A random start for what we number (not secret: SRTP protects the stream).
pub(crate) fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ (nanos >> 16)) as u16 & 0x7fff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stun_username_is_found_and_garbage_is_not() {
        // a binding request with USERNAME "abcd:efgh"
        let mut m = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        m.extend_from_slice(b"abcd:efgh\0\0\0");
        assert_eq!(stun_username(&m), Some("abcd:efgh"));
        assert_eq!(stun_local_ufrag(&m), Some("abcd"));
        assert_eq!(stun_username(&m[..30]), None, "cut short");
        assert_eq!(stun_username(&[0x80; 40]), None, "RTP is not STUN");
        let mut long = m.clone();
        long[3] = 0xff;
        assert_eq!(stun_username(&long), None, "a length past the end");
    }

    #[test]
    fn rtp_parts_skip_csrcs_and_extensions() {
        let mut p = vec![0x91, 0xef, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4];
        p.extend_from_slice(&[0, 0, 0, 5]); // one CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x7f, 0, 0]);
        p.extend_from_slice(b"opus");
        let (marker, ts, payload) = rtp_parts(&p).expect("parts");
        assert!(marker);
        assert_eq!(ts, 9);
        assert_eq!(payload, b"opus");
        assert!(rtp_parts(&p[..14]).is_none());
    }
}
