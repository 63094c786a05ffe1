//! SDP offer/answer for audio (RFC 3264): PCMU, PCMA, G.722, Opus, telephone-event
//! (RFC 4733), ptime, direction (hold), rtcp-mux, and SDES-SRTP (RFC 4568) with a policy.
//!
//! The result of a negotiation is a [`NegotiatedMedia`] that the media engine consumes:
//! remote address, one send codec and its payload type, DTMF payload type, packet time,
//! direction, and SRTP keys.

use std::net::{IpAddr, SocketAddr};

use crate::error::ParseError;
use crate::sdp::{Attribute, Connection, Media, Origin, SessionDescription};

/// Audio codecs the stack can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl Codec {
    /// Static payload type, if any.
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// RTP clock rate as written in SDP (G.722 says 8000 for historical reasons).
    pub fn sdp_clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    fn channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    fn matches(self, enc: &str, rate: u32) -> bool {
        enc.eq_ignore_ascii_case(self.encoding()) && rate == self.sdp_clock_rate()
    }
}

/// SRTP policy per listener or trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only; SRTP offers are refused.
    #[default]
    Off,
    /// Use SRTP when the peer offers or accepts it.
    Optional,
    /// Refuse media that is not SRTP.
    Mandatory,
}

/// Media direction (RFC 3264 §5.1, §8.4 for hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_media(m: &Media, session: &SessionDescription) -> Direction {
        for d in [
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
            Direction::SendRecv,
        ] {
            if m.has_attr(d.as_str()) {
                return d;
            }
        }
        for d in [
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            if session.attr(d.as_str()).is_some() {
                return d;
            }
        }
        Direction::SendRecv
    }

    /// The direction seen from the other side.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Intersection of what we want and what the peer allows (peer's view reversed).
    fn intersect(self, other: Direction) -> Direction {
        let send = self.sends() && other.sends();
        let recv = self.receives() && other.receives();
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// SDES crypto suites we accept, most preferred first.
pub const CRYPTO_SUITES: [&str; 2] = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"];

/// A parsed `a=crypto` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: String,
    /// Master key || master salt (30 bytes for AES_CM_128).
    pub key: Vec<u8>,
    /// Extra session parameters, raw.
    pub session_params: Option<String>,
    /// The key carries an MKI: SRTP packets then carry an MKI field, which we do not
    /// support, so such lines are not chosen.
    pub mki: bool,
}

impl Crypto {
    /// Parses `1 AES_CM_128_HMAC_SHA1_80 inline:base64[|lifetime][|MKI:len] [params]`.
    pub fn parse(v: &str) -> Option<Crypto> {
        let mut it = v.split_ascii_whitespace();
        let tag = it.next()?.parse().ok()?;
        let suite = it.next()?.to_string();
        let keyp = it.next()?;
        let inline = keyp.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let b64 = parts.next()?;
        let key = base64_decode(b64)?;
        // `|lifetime` and/or `|MKI:length`; the MKI form contains a colon.
        let mki = parts.any(|p| p.contains(':'));
        let rest: Vec<&str> = it.collect();
        Some(Crypto {
            tag,
            suite,
            key,
            session_params: (!rest.is_empty()).then(|| rest.join(" ")),
            mki,
        })
    }

    pub fn to_attribute(&self) -> Attribute {
        Attribute::new(
            "crypto",
            format!(
                "{} {} inline:{}",
                self.tag,
                self.suite,
                base64_encode(&self.key)
            ),
        )
    }
}

/// Our media configuration for a listener/trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Codecs we support, in our order of preference.
    pub codecs: Vec<Codec>,
    /// When answering, prefer our order over the offerer's.
    pub prefer_local_order: bool,
    /// Offer/accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Dynamic payload type used for Opus in our offers.
    pub opus_pt: u8,
    /// Dynamic payload types used for telephone-event in our offers (8 kHz and 48 kHz).
    pub dtmf_pt: u8,
    pub dtmf_pt_48k: u8,
    /// Packet time we prefer, in ms.
    pub ptime: u32,
    pub srtp: SrtpPolicy,
    /// Offer and accept rtcp-mux.
    pub rtcp_mux: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            codecs: vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma],
            prefer_local_order: false,
            telephone_event: true,
            opus_pt: 111,
            dtmf_pt: 101,
            dtmf_pt_48k: 110,
            ptime: 20,
            srtp: SrtpPolicy::Off,
            rtcp_mux: true,
        }
    }
}

/// Where our media is, and keys for SRTP (supplied by the caller: the stack draws no
/// randomness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub addr: IpAddr,
    pub port: u16,
    /// SDP session id and version for `o=` (bump the version on each new offer).
    pub session_id: u64,
    pub session_version: u64,
    /// 30 random bytes (AES-128 master key + 112-bit salt) used if SRTP is negotiated.
    pub srtp_key: Option<[u8; 30]>,
    /// This call's SRTP policy (its listener's or trunk's); `None`: the stack's default.
    pub srtp_policy: Option<SrtpPolicy>,
    /// The direction we want (SendOnly to put the peer on hold).
    pub direction: Direction,
    /// Our video port (RTCP on the next), when the call may carry video: offered, and a
    /// video section with H.264 answered (see [`crate::video`]).
    pub video_port: Option<u16>,
}

/// The outcome of offer/answer: the audio stream, and video when both sides have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP; `None` when the peer gave port 0 or a 0.0.0.0 address (hold).
    pub remote: Option<SocketAddr>,
    /// RTCP address (port + 1 unless rtcp-mux or a=rtcp).
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub codec: Codec,
    /// Payload type to send the codec with (the peer's number when it offered).
    pub payload_type: u8,
    pub clock_rate: u32,
    pub fmtp: Option<String>,
    /// telephone-event payload type, if negotiated.
    pub dtmf_payload_type: Option<u8>,
    /// Clock rate of the telephone-event payload (normally equal to `clock_rate`; 8000
    /// with an Opus call when the peer offered only 8 kHz events).
    pub dtmf_clock_rate: Option<u32>,
    pub ptime: u32,
    /// Our direction (what we may do).
    pub direction: Direction,
    /// SRTP parameters, if negotiated.
    pub srtp: Option<SrtpKeys>,
    /// The video stream, if one was negotiated (H.264, plain RTP).
    pub video: Option<crate::video::NegotiatedVideo>,
}

/// SDES keys: ours to protect, theirs to unprotect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: String,
    pub local_key: Vec<u8>,
    pub remote_key: Vec<u8>,
}

/// Why an offer or answer cannot be accepted (answer the request with 488).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// SDP syntax.
    Malformed(ParseError),
    /// No audio stream with a common codec.
    NoCommonCodec,
    /// SRTP policy mismatch (plain RTP offered but mandatory, or SRTP only but off).
    SrtpPolicy,
    /// The answer does not match our offer (wrong number of m-lines, unknown PT…).
    InvalidAnswer(&'static str),
}

impl NegotiationError {
    /// Status code for a request whose offer failed (RFC 3261 §13.3.1.1, RFC 3264).
    pub fn status(&self) -> u16 {
        match self {
            NegotiationError::Malformed(_) => 400,
            _ => 488,
        }
    }
}

impl std::fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NegotiationError::Malformed(e) => write!(f, "{e}"),
            NegotiationError::NoCommonCodec => f.write_str("no common codec"),
            NegotiationError::SrtpPolicy => f.write_str("SRTP policy mismatch"),
            NegotiationError::InvalidAnswer(w) => write!(f, "invalid answer: {w}"),
        }
    }
}

impl std::error::Error for NegotiationError {}

fn is_savp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

fn is_rtp(proto: &str) -> bool {
    matches!(
        proto.to_ascii_uppercase().as_str(),
        "RTP/AVP" | "RTP/SAVP" | "RTP/AVPF" | "RTP/SAVPF"
    )
}

fn remote_addr(sdp: &SessionDescription, m: &Media) -> Option<SocketAddr> {
    if m.port == 0 {
        return None;
    }
    let ip = sdp.media_connection(m)?.ip()?;
    if ip.is_unspecified() {
        return None;
    }
    Some(SocketAddr::new(ip, m.port))
}

fn remote_rtcp(sdp: &SessionDescription, m: &Media, mux: bool) -> Option<SocketAddr> {
    let rtp = remote_addr(sdp, m)?;
    if mux {
        return Some(rtp);
    }
    if let Some(v) = m.attr("rtcp").and_then(|a| a.value.as_deref()) {
        let mut it = v.split_ascii_whitespace();
        let port = it.next().and_then(|p| p.parse::<u16>().ok());
        let ip = it.nth(2).and_then(|a| a.parse::<IpAddr>().ok());
        if let Some(port) = port {
            return Some(SocketAddr::new(ip.unwrap_or(rtp.ip()), port));
        }
    }
    Some(SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)))
}

fn find_pt(m: &Media, codec: Codec) -> Option<u8> {
    m.payload_types().into_iter().find(|&pt| {
        m.rtpmap(pt)
            .is_some_and(|r| codec.matches(&r.encoding, r.clock_rate))
    })
}

/// telephone-event payload type and its clock rate: the one at the codec's rate if
/// offered (RFC 4733 §7.1.1), else any (many peers offer only 8 kHz events alongside
/// Opus; the media engine scales timestamps).
fn find_dtmf(m: &Media, rate: u32) -> Option<(u8, u32)> {
    let events: Vec<(u8, u32)> = m
        .payload_types()
        .into_iter()
        .filter_map(|pt| {
            let r = m.rtpmap(pt)?;
            r.encoding
                .eq_ignore_ascii_case("telephone-event")
                .then_some((pt, r.clock_rate))
        })
        .collect();
    events
        .iter()
        .copied()
        .find(|(_, r)| *r == rate)
        .or_else(|| events.first().copied())
}

fn pick_crypto(m: &Media) -> Option<Crypto> {
    let offered: Vec<Crypto> = m
        .attrs("crypto")
        .filter_map(|a| a.value.as_deref().and_then(Crypto::parse))
        .collect();
    for suite in CRYPTO_SUITES {
        if let Some(c) = offered
            .iter()
            .find(|c| c.suite == suite && c.key.len() == 30 && c.session_params.is_none() && !c.mki)
        {
            return Some(c.clone());
        }
    }
    None
}

fn origin(local: &LocalMedia) -> Origin {
    Origin {
        username: "conclave".into(),
        session_id: local.session_id.to_string(),
        session_version: local.session_version,
        net_type: "IN".into(),
        addr_type: if local.addr.is_ipv4() { "IP4" } else { "IP6" }.into(),
        address: local.addr.to_string(),
    }
}

fn push_codec_attrs(m: &mut Media, codec: Codec, pt: u8, fmtp: Option<&str>) {
    let mut map = format!("{pt} {}/{}", codec.encoding(), codec.sdp_clock_rate());
    if let Some(ch) = codec.channels() {
        map.push_str(&format!("/{ch}"));
    }
    m.attributes.push(Attribute::new("rtpmap", map));
    if let Some(f) = fmtp {
        m.attributes
            .push(Attribute::new("fmtp", format!("{pt} {f}")));
    }
}

fn push_dtmf_attrs(m: &mut Media, pt: u8, rate: u32) {
    m.attributes.push(Attribute::new(
        "rtpmap",
        format!("{pt} telephone-event/{rate}"),
    ));
    m.attributes
        .push(Attribute::new("fmtp", format!("{pt} 0-16")));
}

fn new_session(local: &LocalMedia) -> SessionDescription {
    SessionDescription {
        origin: origin(local),
        session_name: "Conclave".into(),
        connection: Some(Connection::from_ip(local.addr)),
        bandwidth: Vec::new(),
        timing: (0, 0),
        other: Vec::new(),
        attributes: Vec::new(),
        media: Vec::new(),
    }
}

/// Answers an offer (RFC 3264 §6). Exactly one audio stream is accepted (the first one
/// with a common codec that satisfies the SRTP policy), and one video stream when
/// `local.video_port` is set and it offers H.264 ([`crate::video`]); every other m-line is
/// rejected with port 0. The answer carries a single codec (plus telephone-event).
pub fn answer(
    offer: &SessionDescription,
    cfg: &MediaConfig,
    local: &LocalMedia,
) -> Result<(SessionDescription, NegotiatedMedia), NegotiationError> {
    let mut out = new_session(local);
    let mut negotiated = None;
    let mut video = None;
    let mut srtp_refused = false;
    for m in &offer.media {
        let mut rejected = Media {
            media: m.media.clone(),
            port: 0,
            num_ports: None,
            proto: m.proto.clone(),
            formats: m.formats.iter().take(1).cloned().collect(),
            title: None,
            connection: None,
            bandwidth: Vec::new(),
            attributes: Vec::new(),
        };
        if rejected.formats.is_empty() {
            rejected.formats.push("0".into());
        }
        if m.media.eq_ignore_ascii_case("video") {
            match video
                .is_none()
                .then(|| crate::video::answer(offer, m, local, cfg.rtcp_mux))
                .flatten()
            {
                Some((section, negotiated)) => {
                    out.media.push(section);
                    video = Some(negotiated);
                }
                None => out.media.push(rejected),
            }
            continue;
        }
        if negotiated.is_some()
            || !m.media.eq_ignore_ascii_case("audio")
            || m.port == 0
            || !is_rtp(&m.proto)
        {
            out.media.push(rejected);
            continue;
        }
        // SRTP policy.
        let crypto = pick_crypto(m);
        let savp = is_savp(&m.proto);
        let use_srtp = match (
            local.srtp_policy.unwrap_or(cfg.srtp),
            savp,
            crypto.is_some(),
        ) {
            (SrtpPolicy::Off, true, _) => None,
            (SrtpPolicy::Off, false, _) => Some(false),
            (_, true, true) => Some(true),
            (_, true, false) => None,
            (SrtpPolicy::Optional, false, has) => Some(has),
            (SrtpPolicy::Mandatory, false, true) => Some(true),
            (SrtpPolicy::Mandatory, false, false) => None,
        };
        let Some(use_srtp) = use_srtp else {
            srtp_refused = true;
            out.media.push(rejected);
            continue;
        };
        if use_srtp && local.srtp_key.is_none() {
            srtp_refused = true;
            out.media.push(rejected);
            continue;
        }
        // Codec choice.
        let mut candidates: Vec<(Codec, u8, usize)> = Vec::new();
        for (li, &c) in cfg.codecs.iter().enumerate() {
            if let Some(pt) = find_pt(m, c) {
                let oi = m
                    .payload_types()
                    .iter()
                    .position(|p| *p == pt)
                    .unwrap_or(usize::MAX);
                candidates.push((c, pt, if cfg.prefer_local_order { li } else { oi }));
            }
        }
        candidates.sort_by_key(|c| c.2);
        let Some(&(codec, pt, _)) = candidates.first() else {
            out.media.push(rejected);
            continue;
        };
        let dtmf = if cfg.telephone_event {
            find_dtmf(m, codec.sdp_clock_rate())
        } else {
            None
        };
        let ptime = m.ptime().unwrap_or(cfg.ptime).clamp(10, 120);
        let their_dir = Direction::from_media(m, offer);
        // An old-style hold (c=0.0.0.0) means they will not receive.
        let their_dir = match offer.media_connection(m).and_then(|c| c.ip()) {
            Some(ip) if ip.is_unspecified() => their_dir.intersect(Direction::SendOnly),
            _ => their_dir,
        };
        let our_dir = local.direction.intersect(their_dir.reverse());
        let mux = cfg.rtcp_mux && m.has_attr("rtcp-mux");
        let fmtp = m.fmtp(pt).map(str::to_string);

        let mut am = Media {
            media: "audio".into(),
            port: local.port,
            num_ports: None,
            proto: m.proto.clone(),
            formats: vec![pt.to_string()],
            title: None,
            connection: None,
            bandwidth: Vec::new(),
            attributes: Vec::new(),
        };
        let answer_fmtp = if codec == Codec::Opus {
            Some("useinbandfec=1")
        } else {
            None
        };
        push_codec_attrs(&mut am, codec, pt, answer_fmtp);
        if let Some((d, rate)) = dtmf {
            am.formats.push(d.to_string());
            push_dtmf_attrs(&mut am, d, rate);
        }
        am.attributes
            .push(Attribute::new("ptime", ptime.to_string()));
        am.attributes.push(Attribute::flag(our_dir.as_str()));
        if mux {
            am.attributes.push(Attribute::flag("rtcp-mux"));
        }
        let mut srtp = None;
        if use_srtp && let (Some(c), Some(key)) = (crypto, local.srtp_key) {
            let ours = Crypto {
                tag: c.tag,
                suite: c.suite.clone(),
                key: key.to_vec(),
                session_params: None,
                mki: false,
            };
            am.attributes.push(ours.to_attribute());
            srtp = Some(SrtpKeys {
                suite: c.suite,
                local_key: key.to_vec(),
                remote_key: c.key,
            });
        }
        out.media.push(am);
        negotiated = Some(NegotiatedMedia {
            remote: remote_addr(offer, m),
            remote_rtcp: remote_rtcp(offer, m, mux),
            rtcp_mux: mux,
            codec,
            payload_type: pt,
            clock_rate: codec.sdp_clock_rate(),
            fmtp,
            dtmf_payload_type: dtmf.map(|d| d.0),
            dtmf_clock_rate: dtmf.map(|d| d.1),
            ptime,
            direction: our_dir,
            srtp,
            video: None,
        });
    }
    match negotiated {
        Some(n) => Ok((out, NegotiatedMedia { video, ..n })),
        None if srtp_refused => Err(NegotiationError::SrtpPolicy),
        None => Err(NegotiationError::NoCommonCodec),
    }
}

/// Builds an offer with one audio stream listing all our codecs.
/// With SRTP `Mandatory` the profile is RTP/SAVP; with `Optional`, RTP/AVP with
/// `a=crypto` (best-effort SRTP, accepted by most PBXes and phones).
pub fn offer(cfg: &MediaConfig, local: &LocalMedia) -> SessionDescription {
    let mut s = new_session(local);
    let policy = local.srtp_policy.unwrap_or(cfg.srtp);
    let srtp = local.srtp_key.filter(|_| policy != SrtpPolicy::Off);
    let mut m = Media {
        media: "audio".into(),
        port: local.port,
        num_ports: None,
        proto: if policy == SrtpPolicy::Mandatory {
            "RTP/SAVP".into()
        } else {
            "RTP/AVP".into()
        },
        formats: Vec::new(),
        title: None,
        connection: None,
        bandwidth: Vec::new(),
        attributes: Vec::new(),
    };
    let mut rates = Vec::new();
    for &c in &cfg.codecs {
        let pt = c.static_pt().unwrap_or(cfg.opus_pt);
        m.formats.push(pt.to_string());
        let fmtp = (c == Codec::Opus).then_some("useinbandfec=1");
        push_codec_attrs(&mut m, c, pt, fmtp);
        if !rates.contains(&c.sdp_clock_rate()) {
            rates.push(c.sdp_clock_rate());
        }
    }
    if cfg.telephone_event {
        for rate in rates {
            let pt = if rate == 48000 {
                cfg.dtmf_pt_48k
            } else {
                cfg.dtmf_pt
            };
            m.formats.push(pt.to_string());
            push_dtmf_attrs(&mut m, pt, rate);
        }
    }
    m.attributes
        .push(Attribute::new("ptime", cfg.ptime.to_string()));
    m.attributes.push(Attribute::flag(local.direction.as_str()));
    if cfg.rtcp_mux {
        m.attributes.push(Attribute::flag("rtcp-mux"));
    }
    if let Some(key) = srtp {
        let c = Crypto {
            tag: 1,
            suite: CRYPTO_SUITES[0].into(),
            key: key.to_vec(),
            session_params: None,
            mki: false,
        };
        m.attributes.push(c.to_attribute());
    }
    s.media.push(m);
    if let Some(v) = crate::video::offer(local, cfg.rtcp_mux) {
        s.media.push(v);
    }
    s
}

/// Processes the answer to an offer we made with [`offer`].
pub fn process_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
    cfg: &MediaConfig,
    local: &LocalMedia,
) -> Result<NegotiatedMedia, NegotiationError> {
    // RFC 3264 wants every offered section answered; an audio phone that leaves out our
    // video section (the last) instead of refusing it with port 0 is taken as refusing it
    let video_left_out = answer.media.len() + 1 == our_offer.media.len()
        && our_offer
            .media
            .last()
            .is_some_and(|m| m.media.eq_ignore_ascii_case("video"));
    if answer.media.len() != our_offer.media.len() && !video_left_out {
        return Err(NegotiationError::InvalidAnswer("m-line count differs"));
    }
    let Some(m) = answer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
    else {
        return Err(NegotiationError::NoCommonCodec);
    };
    let mut chosen = None;
    for pt in m.payload_types() {
        if let Some(r) = m.rtpmap(pt)
            && let Some(c) = cfg
                .codecs
                .iter()
                .copied()
                .find(|c| c.matches(&r.encoding, r.clock_rate))
        {
            chosen = Some((c, pt));
            break;
        }
    }
    let (codec, pt) = chosen.ok_or(NegotiationError::NoCommonCodec)?;
    let crypto = pick_crypto(m);
    let srtp = match (
        local.srtp_policy.unwrap_or(cfg.srtp),
        crypto,
        local.srtp_key,
    ) {
        (SrtpPolicy::Off, _, _) => None,
        (_, Some(c), Some(key)) => Some(SrtpKeys {
            suite: c.suite,
            local_key: key.to_vec(),
            remote_key: c.key,
        }),
        (SrtpPolicy::Mandatory, _, _) => return Err(NegotiationError::SrtpPolicy),
        (SrtpPolicy::Optional, _, _) => None,
    };
    if srtp.is_none() && is_savp(&m.proto) {
        return Err(NegotiationError::SrtpPolicy);
    }
    let their_dir = Direction::from_media(m, answer);
    let mux = cfg.rtcp_mux && m.has_attr("rtcp-mux");
    let video = our_offer
        .media
        .iter()
        .zip(&answer.media)
        .find(|(ours, _)| ours.media.eq_ignore_ascii_case("video"))
        .and_then(|(_, theirs)| crate::video::answered(answer, theirs, local, cfg.rtcp_mux));
    let dtmf = if cfg.telephone_event {
        find_dtmf(m, codec.sdp_clock_rate())
    } else {
        None
    };
    Ok(NegotiatedMedia {
        remote: remote_addr(answer, m),
        remote_rtcp: remote_rtcp(answer, m, mux),
        rtcp_mux: mux,
        codec,
        payload_type: pt,
        clock_rate: codec.sdp_clock_rate(),
        fmtp: m.fmtp(pt).map(str::to_string),
        dtmf_payload_type: dtmf.map(|d| d.0),
        dtmf_clock_rate: dtmf.map(|d| d.1),
        ptime: m.ptime().unwrap_or(cfg.ptime).clamp(10, 120),
        direction: local.direction.intersect(their_dir.reverse()),
        srtp,
        video,
    })
}

/// Parses an SDP body and answers it; convenience for the UAS.
pub fn answer_body(
    body: &[u8],
    cfg: &MediaConfig,
    local: &LocalMedia,
) -> Result<(SessionDescription, NegotiatedMedia), NegotiationError> {
    let offer = SessionDescription::parse(body).map_err(NegotiationError::Malformed)?;
    answer(&offer, cfg, local)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional). `None` on invalid input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::tests::OFFER;

    fn local() -> LocalMedia {
        LocalMedia {
            video_port: None,
            addr: "203.0.113.5".parse().unwrap(),
            port: 40000,
            session_id: 42,
            session_version: 1,
            srtp_key: Some([7u8; 30]),
            srtp_policy: None,
            direction: Direction::SendRecv,
        }
    }

    fn sdp(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn base64_roundtrip() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let e = base64_encode(&data);
            assert_eq!(base64_decode(&e).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn answer_follows_offerer_order_by_default() {
        let (ans, n) = answer(&sdp(OFFER), &MediaConfig::default(), &local()).unwrap();
        assert_eq!(n.codec, Codec::Opus);
        assert_eq!(n.payload_type, 111);
        // Only 8 kHz events offered with Opus: accepted at their own rate.
        assert_eq!(n.dtmf_payload_type, Some(101));
        assert_eq!(n.dtmf_clock_rate, Some(8000));
        assert!(
            ans.to_string()
                .contains("a=rtpmap:101 telephone-event/8000\r\n")
        );
        assert_eq!(n.remote, Some("192.0.2.10:49170".parse().unwrap()));
        assert_eq!(n.remote_rtcp, Some("192.0.2.10:49171".parse().unwrap()));
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[1].port, 0);
        assert_eq!(ans.media[0].formats, vec!["111", "101"]);
        assert!(ans.media[0].has_attr("sendrecv"));
        // Answer parses back.
        let again = sdp(&ans.to_string());
        assert_eq!(again, ans);
    }

    #[test]
    fn answer_with_local_preference_and_dtmf() {
        let cfg = MediaConfig {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            prefer_local_order: true,
            ..MediaConfig::default()
        };
        let (ans, n) = answer(&sdp(OFFER), &cfg, &local()).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.payload_type, 8);
        assert_eq!(n.dtmf_payload_type, Some(101));
        assert_eq!(ans.media[0].formats, vec!["8", "101"]);
    }

    #[test]
    fn no_common_codec_is_488() {
        let cfg = MediaConfig {
            codecs: vec![Codec::G722],
            ..MediaConfig::default()
        };
        let o = OFFER.replace("111 9 0 8 101", "111 0 8 101");
        let e = answer(&sdp(&o), &cfg, &local()).unwrap_err();
        assert_eq!(e, NegotiationError::NoCommonCodec);
        assert_eq!(e.status(), 488);
    }

    #[test]
    fn hold_directions() {
        let o = OFFER.replace("a=sendrecv", "a=sendonly");
        let (ans, n) = answer(&sdp(&o), &MediaConfig::default(), &local()).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(ans.media[0].has_attr("recvonly"));
        let o = OFFER.replace("a=sendrecv", "a=inactive");
        let (_, n) = answer(&sdp(&o), &MediaConfig::default(), &local()).unwrap();
        assert_eq!(n.direction, Direction::Inactive);
        let o = OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let (_, n) = answer(&sdp(&o), &MediaConfig::default(), &local()).unwrap();
        assert_eq!(n.remote, None);
        assert_eq!(n.direction, Direction::RecvOnly);
        // We put them on hold.
        let mut l = local();
        l.direction = Direction::SendOnly;
        let (_, n) = answer(&sdp(OFFER), &MediaConfig::default(), &l).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);
    }

    #[test]
    fn srtp_policies() {
        let key = base64_encode(&[1u8; 30]);
        let savp = OFFER.replace("RTP/AVP 111", "RTP/SAVP 111").replace(
            "a=sendrecv\r\n",
            &format!(
                "a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=rtcp-mux\r\n"
            ),
        );
        let mut cfg = MediaConfig::default();
        // Off: SAVP refused.
        assert_eq!(
            answer(&sdp(&savp), &cfg, &local()).unwrap_err(),
            NegotiationError::SrtpPolicy
        );
        cfg.srtp = SrtpPolicy::Optional;
        let (ans, n) = answer(&sdp(&savp), &cfg, &local()).unwrap();
        let keys = n.srtp.unwrap();
        assert_eq!(keys.remote_key, vec![1u8; 30]);
        assert_eq!(keys.local_key, vec![7u8; 30]);
        assert!(n.rtcp_mux);
        assert_eq!(n.remote_rtcp, n.remote);
        assert_eq!(ans.media[0].proto, "RTP/SAVP");
        let c = Crypto::parse(
            ans.media[0]
                .attr("crypto")
                .unwrap()
                .value
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(c.key, vec![7u8; 30]);
        // Optional + plain offer: plain.
        let (_, n) = answer(&sdp(OFFER), &cfg, &local()).unwrap();
        assert!(n.srtp.is_none());
        // Mandatory + plain offer: refused.
        cfg.srtp = SrtpPolicy::Mandatory;
        assert_eq!(
            answer(&sdp(OFFER), &cfg, &local()).unwrap_err(),
            NegotiationError::SrtpPolicy
        );
        // A call's own policy (its listener's or trunk's) wins over the stack's default.
        let mut relaxed = local();
        relaxed.srtp_policy = Some(SrtpPolicy::Off);
        assert!(
            answer(&sdp(OFFER), &cfg, &relaxed)
                .unwrap()
                .1
                .srtp
                .is_none()
        );
        let mut strict = local();
        strict.srtp_policy = Some(SrtpPolicy::Mandatory);
        let plain_cfg = MediaConfig::default();
        assert_eq!(offer(&plain_cfg, &strict).media[0].proto, "RTP/SAVP");
        assert_eq!(
            answer(&sdp(OFFER), &plain_cfg, &strict).unwrap_err(),
            NegotiationError::SrtpPolicy
        );
    }

    #[test]
    fn crypto_with_mki_is_not_chosen() {
        let key = base64_encode(&[1u8; 30]);
        let c = Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4")).unwrap();
        assert!(c.mki);
        let c = Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20")).unwrap();
        assert!(!c.mki);
        let savp = OFFER.replace("RTP/AVP 111", "RTP/SAVP 111").replace(
            "a=sendrecv\r\n",
            &format!("a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4\r\n"),
        );
        let cfg = MediaConfig {
            srtp: SrtpPolicy::Optional,
            ..MediaConfig::default()
        };
        assert_eq!(
            answer(&sdp(&savp), &cfg, &local()).unwrap_err(),
            NegotiationError::SrtpPolicy
        );
    }

    #[test]
    fn offer_and_process_answer() {
        let cfg = MediaConfig {
            srtp: SrtpPolicy::Optional,
            ..MediaConfig::default()
        };
        let o = offer(&cfg, &local());
        let text = o.to_string();
        assert!(text.contains("m=audio 40000 RTP/AVP 111 9 0 8 110 101\r\n"));
        assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        // The peer answers with PCMU and its own key, using our offer.
        let peer_local = LocalMedia {
            video_port: None,
            addr: "198.51.100.7".parse().unwrap(),
            port: 5004,
            srtp_key: Some([9u8; 30]),
            srtp_policy: None,
            ..local()
        };
        let peer_cfg = MediaConfig {
            codecs: vec![Codec::Pcmu],
            srtp: SrtpPolicy::Optional,
            ..MediaConfig::default()
        };
        let (ans, _) = answer(&sdp(&text), &peer_cfg, &peer_local).unwrap();
        let n = process_answer(&o, &ans, &cfg, &local()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.dtmf_payload_type, Some(101));
        assert_eq!(n.remote, Some("198.51.100.7:5004".parse().unwrap()));
        assert_eq!(n.srtp.unwrap().remote_key, vec![9u8; 30]);
        let bad = SessionDescription {
            media: vec![],
            ..ans
        };
        assert!(process_answer(&o, &bad, &cfg, &local()).is_err());
    }
}
