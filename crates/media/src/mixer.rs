//! The conference mixer: members, their incoming streams, and a 20 ms tick that
//! mixes and sends.
//!
//! Media path per member: RTP in -> SSRC / payload type checks -> jitter buffer ->
//! (decode only when the member may be heard) -> voice activity -> resample to the
//! mixing rate -> mix domains (main room, whisper groups) -> per-listener
//! encode -> RTP out. Members who are not among the active speakers and have
//! no personal playback share one encoded payload per (codec, packet time,
//! mix domain); active speakers get their own mix-minus encode.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{AudioDecoder, AudioEncoder, CodecConfig, CodecError, CodecKind};
use crate::dsp::{Limiter, level_dbov};
use crate::dtmf::{InbandDtmfDetector, TelephoneEventReceiver, TelephoneEventSender};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::resample::Resampler;
use crate::rtcp::{
    self, ReceptionStats, ReportBlock, RtcpPacket, SenderInfo, ntp_compact, ntp_from_unix,
};
use crate::rtp::{RtpPacket, write_simple};
use crate::srtp::{SrtpError, SrtpKey, SrtpSession};
use crate::vad::{Vad, VadConfig, VadEvent};

/// Identifies a member; chosen by the caller.
pub type MemberId = u64;
/// Identifies a whisper group; chosen by the caller.
pub type GroupId = u32;

/// Length of one mixing frame.
pub const FRAME: Duration = Duration::from_millis(20);
/// Largest datagram accepted.
pub const MAX_DATAGRAM: usize = 2048;
/// Opus payloads up to this size carry (digital) silence; they are not decoded.
const OPUS_SILENT_MAX: usize = 8;
const LEVEL_UNKNOWN: u8 = u8::MAX;
/// No level, but the codec flags the packet as without voice (Opus' SILK VAD flags).
const LEVEL_NO_VOICE: u8 = u8::MAX - 1;
/// A decoded frame at or below this level (dBov, 127 = digital silence) counts as silent.
const SILENT_LEVEL: u8 = 70;
/// A member whose packets say "no voice" and whose last decoded frame was silent is still
/// decoded every this many frames (a soft onset the flags missed is heard within 200 ms).
const NO_VOICE_RECHECK: u32 = 10;
/// Identical encodes of silence after which the payload is reused.
const QUIET_SETTLED: u8 = 4;
/// Looped sounds the loop cache keeps, resampled and encoded.
const MAX_CACHED_LOOPS: usize = 64;
/// Playback id of in-band DTMF sent with [`Mixer::send_dtmf`] (no event when it ends).
const DTMF_PLAYBACK: u64 = u64::MAX;

/// Which packets `pull` decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodePolicy {
    /// Nothing (muted, listen-only): packets are consumed, not decoded.
    Never,
    /// Packets whose level says voice, or of unknown level, or all while talking.
    IfVoice { on_level: u8, talking: bool },
    /// Everything (in-band DTMF detection, recording).
    Always,
}

/// Mixer-wide settings.
#[derive(Debug, Clone)]
pub struct MixerConfig {
    /// Mixing rate: 48000 (default) or 16000.
    pub mix_rate: u32,
    /// At most this many loudest talkers are mixed at once.
    pub max_speakers: usize,
    /// Gain of the main room as heard inside a whisper group (0.0..=1.0).
    pub whisper_room_gain: f32,
    /// Interval between RTCP reports to each member.
    pub rtcp_interval: Duration,
    /// Jitter buffer settings for every member.
    pub jitter: JitterConfig,
    /// Voice activity settings for every member.
    pub vad: VadConfig,
    /// Unix time at `now == 0` (for NTP timestamps in sender reports).
    pub unix_time_at_zero: Duration,
    /// CNAME sent in SDES.
    pub cname: String,
    /// A different SSRC is accepted after the current one has been silent this long.
    pub ssrc_switch_after: Duration,
    /// [`Event::MediaTimeout`] when a member sent no valid RTP or RTCP for this long
    /// (`None`: never). Each member starts with this; [`Mixer::set_rtp_timeout`] changes it
    /// (a call on hold may legitimately be silent for longer).
    pub rtp_timeout: Option<Duration>,
    /// How long media is sent to the address the member's SDP named before anything came
    /// back from the member. After it, nothing goes to an address that never answered: an
    /// SDP naming a third party's address cannot make the server stream to it for long.
    pub unverified_send_window: Duration,
    /// A member's media moves to a new source address (plain RTP) only after the current
    /// source has been silent this long, and only from an address the member is known by.
    pub relatch_after: Duration,
    /// Looped sounds (music) resampled and encoded once for every mixer that shares the cache
    /// (a media worker's rooms): a lone member hearing music costs a copy, not an encode.
    pub loops: Option<Arc<LoopCache>>,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            mix_rate: 48000,
            max_speakers: 4,
            whisper_room_gain: 0.3,
            rtcp_interval: Duration::from_secs(5),
            jitter: JitterConfig::default(),
            vad: VadConfig::default(),
            unix_time_at_zero: Duration::ZERO,
            cname: "conclave".to_string(),
            ssrc_switch_after: Duration::from_millis(500),
            rtp_timeout: Some(Duration::from_secs(30)),
            unverified_send_window: Duration::from_secs(10),
            relatch_after: Duration::from_millis(500),
            loops: None,
        }
    }
}

/// Per-member media settings, from the SDP negotiation.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// Negotiated codec.
    pub codec: CodecKind,
    /// Payload type of the codec (both directions).
    pub payload_type: u8,
    /// Packet time for what we send, a multiple of 20 ms (20, 40, 60 ...).
    pub ptime_ms: u32,
    /// Payload type of RFC 4733 telephone-event, when negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Header extension id of the RFC 6464 audio level in incoming packets.
    pub audio_level_ext: Option<u8>,
    /// Our SSRC toward this member.
    pub local_ssrc: u32,
    /// First sequence number we send (should be random).
    pub initial_seq: u16,
    /// First timestamp we send (should be random).
    pub initial_ts: u32,
    /// Where to send before any packet was received (from SDP). Replaced by the source
    /// address of valid incoming packets (symmetric RTP). Used only for
    /// [`MixerConfig::unverified_send_window`] unless the member answers.
    pub remote: Option<SocketAddr>,
    /// Where RTCP goes when it is not multiplexed with RTP (`rtcp_mux` false): the SDP's
    /// `a=rtcp` port, or the RTP port + 1.
    pub rtcp_remote: Option<SocketAddr>,
    /// RTCP shares the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Addresses the member is known by besides its latched source: the SDP's connection
    /// address and where its signalling comes from. Plain RTP from elsewhere never takes
    /// over the member's stream.
    pub source_ips: Vec<IpAddr>,
    /// Run the in-band DTMF detector on this member's audio (gateways sending tones).
    pub inband_dtmf: bool,
    /// Opus bitrate, bit/s.
    pub opus_bitrate: u32,
    /// Opus in-band FEC.
    pub opus_fec: bool,
    /// Opus DTX.
    pub opus_dtx: bool,
    /// Opus encoder complexity (0..=10).
    pub opus_complexity: u8,
    /// SRTP (SDES) keys: (ours, to protect what we send; the member's, to verify and
    /// decrypt what it sends). `None` for plain RTP.
    pub srtp: Option<(SrtpKey, SrtpKey)>,
}

impl MemberConfig {
    /// A configuration with the codec's usual payload type and 20 ms packets.
    pub fn new(codec: CodecKind, local_ssrc: u32) -> Self {
        MemberConfig {
            codec,
            payload_type: codec.static_payload_type().unwrap_or(111),
            ptime_ms: 20,
            telephone_event_pt: Some(101),
            audio_level_ext: None,
            local_ssrc,
            initial_seq: 0,
            initial_ts: 0,
            remote: None,
            rtcp_remote: None,
            rtcp_mux: true,
            source_ips: Vec::new(),
            inband_dtmf: false,
            opus_bitrate: 32000,
            opus_fec: true,
            opus_dtx: false,
            opus_complexity: 9,
            srtp: None,
        }
    }
}

/// How a DTMF digit was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event.
    Rfc4733,
    /// Tones detected in the audio.
    Inband,
}

/// Where a playback goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybackTarget {
    /// Everyone (in whisper groups too).
    Room,
    /// One member only.
    Member(MemberId),
}

/// Something that happened, for the conference actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member started talking.
    TalkStart {
        /// Member.
        member: MemberId,
    },
    /// A member stopped talking.
    TalkStop {
        /// Member.
        member: MemberId,
    },
    /// A DTMF digit was received.
    Dtmf {
        /// Member.
        member: MemberId,
        /// The digit (0-9, *, #, A-D).
        digit: char,
        /// How it arrived.
        source: DtmfSource,
    },
    /// A playback reached its end (not sent for looping playbacks).
    PlaybackFinished {
        /// Target.
        target: PlaybackTarget,
        /// The caller's id.
        id: u64,
    },
    /// The member's SSRC changed (the jitter buffer was reset).
    SsrcChanged {
        /// Member.
        member: MemberId,
        /// New SSRC.
        ssrc: u32,
    },
    /// Media now comes from (and goes to) a new address.
    RemoteAddressChanged {
        /// Member.
        member: MemberId,
        /// Address.
        addr: SocketAddr,
    },
    /// The member sent RTCP BYE.
    Bye {
        /// Member.
        member: MemberId,
    },
    /// No valid RTP from the member for [`MixerConfig::rtp_timeout`] (sent once until
    /// media flows again; a call on hold may legitimately be silent).
    MediaTimeout {
        /// Member.
        member: MemberId,
    },
    /// A member's video (camera or screen) reached the room's SFU: the meeting has video.
    VideoStarted {
        /// Member.
        member: MemberId,
    },
}

/// Whether a datagram is RTP or RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP.
    Rtp,
    /// RTCP.
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// To whom.
    pub member: MemberId,
    /// Destination (latched or configured); `None` if not known yet.
    pub to: Option<SocketAddr>,
    /// RTP or RTCP.
    pub kind: PacketKind,
    /// The datagram.
    pub data: Vec<u8>,
}

/// What a recording tap carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapSource {
    /// The main room mix (what a listener in the main room with no voice of their own hears).
    Room,
    /// One member's decoded input.
    Member(MemberId),
}

/// One frame of audio for recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFrame {
    /// Source.
    pub source: TapSource,
    /// Tick time of the frame start.
    pub time: Duration,
    /// Sample rate.
    pub rate: u32,
    /// Mono samples (20 ms).
    pub samples: Vec<i16>,
}

/// Everything one tick produced.
#[derive(Debug, Default)]
pub struct TickOutput {
    /// Datagrams to send.
    pub transmits: Vec<Transmit>,
    /// Events.
    pub events: Vec<Event>,
    /// Recording taps (when enabled).
    pub taps: Vec<TapFrame>,
}

impl TickOutput {
    /// True when nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.events.is_empty() && self.taps.is_empty()
    }
}

/// Why an incoming datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// No such member.
    #[error("unknown member")]
    UnknownMember,
    /// Not parseable.
    #[error("malformed packet")]
    Malformed,
    /// Larger than [`MAX_DATAGRAM`].
    #[error("oversized packet")]
    Oversized,
    /// SSRC other than the member's current one.
    #[error("unexpected SSRC")]
    WrongSsrc,
    /// Payload type not negotiated.
    #[error("unexpected payload type")]
    WrongPayloadType,
    /// Empty payload, or comfort noise (ignored).
    #[error("empty or comfort-noise payload")]
    NoAudio,
    /// SRTP authentication failed.
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// SRTP replay.
    #[error("SRTP replay")]
    Replay,
    /// From an address that may not take over the member's stream (a stranger, or a new
    /// address while the current one still sends).
    #[error("from an address that may not take over the stream")]
    Stranger,
    /// Nobody on this port is known by this source (the engine's demultiplexing).
    #[error("no member for this source")]
    UnknownSource,
}

/// How a datagram reached a member, as the demultiplexer (or a dedicated port) saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// From the member's latched source.
    Known,
    /// From another address the member might be at: it latches when the member has no source
    /// yet; otherwise it takes over only with SRTP authentication, or (plain RTP) from an
    /// address the member is known by after the current source went silent.
    Candidate,
}

/// Where a member's media comes from, after a datagram was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Source {
    /// RTP (and multiplexed RTCP) source.
    pub rtp: Option<SocketAddr>,
    /// The member's SSRC.
    pub ssrc: Option<u32>,
    /// RTCP source when RTCP is not multiplexed.
    pub rtcp: Option<SocketAddr>,
}

/// Per-member counters and quality figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberStats {
    /// RTP packets accepted.
    pub rx_packets: u64,
    /// RTP bytes accepted.
    pub rx_bytes: u64,
    /// Datagrams dropped as malformed or oversized.
    pub malformed: u64,
    /// Packets dropped for a wrong SSRC.
    pub wrong_ssrc: u64,
    /// Packets dropped for an unexpected payload type.
    pub wrong_payload_type: u64,
    /// Payloads the decoder rejected.
    pub decode_errors: u64,
    /// Packets not decoded because the codec flagged them without voice while the member
    /// was silent (Opus without audio levels).
    pub decodes_skipped: u64,
    /// SRTP/SRTCP packets that failed authentication.
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP replays.
    pub srtp_replays: u64,
    /// Datagrams refused because their source may not take over the stream.
    pub strangers: u64,
    /// Jitter buffer counters.
    pub jitter_buffer: JitterStats,
    /// Current jitter buffer target delay.
    pub jitter_delay: Duration,
    /// Packets lost (cumulative, from sequence numbers).
    pub lost: i64,
    /// Interarrival jitter.
    pub jitter: Duration,
    /// What the member reports about our stream (fraction lost in 1/256, cumulative lost, jitter).
    pub remote_report: Option<ReportBlock>,
    /// Round-trip time from the member's reports.
    pub rtt: Option<Duration>,
    /// RTP packets sent.
    pub tx_packets: u64,
    /// RTP payload bytes sent.
    pub tx_bytes: u64,
    /// Currently talking.
    pub talking: bool,
}

#[derive(Debug, Clone)]
struct Playback {
    id: u64,
    samples: Arc<[i16]>,
    pos: usize,
    looped: bool,
    gain: f32,
    /// From the loop cache: its encodings may be shared (the samples' pointer is their key).
    cached: bool,
    /// Encodings of this loop being recorded, a frame at a time, from its start.
    recording: Option<Vec<Vec<u8>>>,
}

/// Looped sounds resampled to the mixing rate, and their encodings per codec, for the mixers
/// of one media worker. A loop's frames are recorded once, as a member first hears it from the
/// start, then copied to every member who hears it alone.
#[derive(Default)]
pub struct LoopCache {
    store: std::sync::Mutex<LoopStore>,
}

impl std::fmt::Debug for LoopCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoopCache")
    }
}

type SourceKey = (usize, usize, u32, u32);
/// A source kept alive (so that its pointer is not reused while cached) and its loop at the
/// mixing rate.
type KeptLoop = (Arc<[i16]>, Arc<[i16]>);

#[derive(Default)]
struct LoopStore {
    /// (source pointer, length, rate, mixing rate) → the source (kept, so that its pointer is
    /// not reused while cached) and the loop at the mixing rate, a whole number of frames long.
    resampled: HashMap<SourceKey, KeptLoop>,
    /// (loop pointer, codec) → one encoded frame per 20 ms of the loop.
    encoded: HashMap<(usize, CodecConfig), Arc<[Vec<u8>]>>,
}

impl LoopCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, LoopStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn encoded(&self, samples: &Arc<[i16]>, codec: CodecConfig) -> Option<Arc<[Vec<u8>]>> {
        let key = (samples.as_ptr() as usize, codec);
        self.lock().encoded.get(&key).cloned()
    }

    fn keep(&self, samples: &Arc<[i16]>, codec: CodecConfig, frames: Vec<Vec<u8>>) {
        let mut store = self.lock();
        if store.encoded.len() < MAX_CACHED_LOOPS * 4 {
            store
                .encoded
                .insert((samples.as_ptr() as usize, codec), frames.into());
        }
    }
}

impl Playback {
    /// Adds the next frame into `mix`; returns true when finished.
    fn mix_into(&mut self, mix: &mut [i32]) -> bool {
        if self.samples.is_empty() {
            return true;
        }
        for m in mix.iter_mut() {
            if self.pos >= self.samples.len() {
                if self.looped {
                    self.pos = 0;
                } else {
                    return true;
                }
            }
            *m += (self.samples[self.pos] as f32 * self.gain) as i32;
            self.pos += 1;
        }
        !self.looped && self.pos >= self.samples.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Domain {
    Main,
    Group(GroupId),
    Silence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey {
    codec: CodecConfig,
    frames_per_packet: u32,
    domain: Domain,
}

/// An encode pipeline: limiter -> resampler -> packet accumulator -> encoder.
struct EncodeChain {
    /// Identical encodes of silence in a row, and the last one: once the encoder is settled,
    /// silence is a copy of that payload, not an encode.
    quiet_run: u8,
    quiet_payload: Vec<u8>,
    limiter: Limiter,
    down: Resampler,
    pcm16: Vec<i16>,
    native: Vec<i16>,
    encoder: Box<dyn AudioEncoder>,
    codec: CodecConfig,
    frames_per_packet: u32,
}

impl EncodeChain {
    fn new(codec: CodecConfig, frames_per_packet: u32, mix_rate: u32) -> Result<Self, CodecError> {
        Ok(EncodeChain {
            quiet_run: 0,
            quiet_payload: Vec::new(),
            limiter: Limiter::default(),
            down: Resampler::new(mix_rate, codec.pcm_rate),
            pcm16: Vec::new(),
            native: Vec::new(),
            encoder: codec.encoder()?,
            codec,
            frames_per_packet,
        })
    }

    /// Pushes a frame of silence (`zeros`: a frame of zeros); at packet boundaries puts the
    /// payload in `out` and returns true. A settled encoder's silence is copied, not encoded.
    fn push_quiet(&mut self, zeros: &[i32], boundary: bool, out: &mut Vec<u8>) -> bool {
        if self.quiet_run >= QUIET_SETTLED {
            if !boundary {
                return false;
            }
            out.clear();
            out.extend_from_slice(&self.quiet_payload);
            return true;
        }
        let run = self.quiet_run;
        let ok = self.push(zeros, boundary, out);
        self.quiet_run = run;
        if boundary && ok {
            if *out == self.quiet_payload {
                self.quiet_run += 1;
            } else {
                self.quiet_payload.clear();
                self.quiet_payload.extend_from_slice(out);
                self.quiet_run = 1;
            }
        }
        ok
    }

    /// Pushes one mix frame; at packet boundaries encodes into `out` and returns true.
    fn push(&mut self, mix: &[i32], boundary: bool, out: &mut Vec<u8>) -> bool {
        self.quiet_run = 0;
        self.pcm16.resize(mix.len(), 0);
        self.limiter.process(mix, &mut self.pcm16);
        self.down.process(&self.pcm16, &mut self.native);
        if !boundary {
            return false;
        }
        let want = self.codec.pcm_rate as usize / 50 * self.frames_per_packet as usize;
        if self.native.len() < want {
            // joined mid-packet: pad the front with silence
            let pad = want - self.native.len();
            self.native.splice(0..0, std::iter::repeat_n(0, pad));
        }
        out.clear();
        let ok = self.encoder.encode(&self.native[..want], out).is_ok();
        self.native.drain(..want);
        self.native.clear();
        ok
    }
}

struct SharedStream {
    chain: EncodeChain,
    payload: Vec<u8>,
    has_payload: bool,
    computed_tick: u64,
    last_used_tick: u64,
}

struct Member {
    id: MemberId,
    srtp: Option<SrtpSession>,
    joined: Duration,
    timed_out: bool,
    cfg: MemberConfig,
    codec: CodecConfig,
    frames_per_packet: u32,
    decoder: Box<dyn AudioDecoder>,
    jb: JitterBuffer,
    remote_ssrc: Option<u32>,
    /// Last accepted RTP (SSRC switches and relatching wait for silence).
    last_rx: Option<Duration>,
    /// Last accepted RTP or RTCP (media timeout).
    last_heard: Option<Duration>,
    rtp_timeout: Option<Duration>,
    reception: ReceptionStats,
    latched: Option<SocketAddr>,
    rtcp_latched: Option<SocketAddr>,
    /// Something authentic came back from the member: its SDP address may keep receiving.
    heard_back: bool,
    muted: bool,
    deaf: bool,
    listen_only: bool,
    group: Option<GroupId>,
    gain: f32,
    auto_gain: bool,
    agc_gain: f32,
    vad: Vad,
    frame_level: Option<u8>,
    /// The last frame decoded was silent, and how many frames flagged "no voice" have been
    /// skipped since: an Opus member's decode is skipped on its voice flags only while it is
    /// silent and not talking (SILK flags a steady tone "no voice" after a few hundred ms:
    /// measured, 255-267 of 300 frames of a 6000-amplitude tone).
    last_silent: bool,
    skipped: u32,
    te_rx: TelephoneEventReceiver,
    dtmf_queue: std::collections::VecDeque<(u8, u32)>,
    dtmf_tx: Option<(TelephoneEventSender, u32)>,
    inband: Option<InbandDtmfDetector>,
    fifo: Vec<i16>,
    pcm: Vec<i16>,
    decoded: bool,
    up: Resampler,
    mix_in: Vec<i16>,
    contributing: bool,
    personal: Option<EncodeChain>,
    playback: Option<Playback>,
    tx_seq: u16,
    tx_ts: u32,
    tx_marker: bool,
    stats: MemberStats,
    next_rtcp: Duration,
    last_sr_ntp: u64,
}

impl Member {
    /// Where RTP goes: the latched source; before one, the SDP address, but only while the
    /// start window lasts or once the member has answered from an address it is known by.
    fn rtp_to(&self, now: Duration, window: Duration) -> Option<SocketAddr> {
        self.latched.or_else(|| {
            (self.heard_back || now.saturating_sub(self.joined) < window)
                .then_some(self.cfg.remote)
                .flatten()
        })
    }

    /// Where RTCP goes: with the RTP when multiplexed, else the RTCP port (latched or from SDP).
    fn rtcp_to(&self, now: Duration, window: Duration) -> Option<SocketAddr> {
        if self.cfg.rtcp_mux {
            return self.rtp_to(now, window);
        }
        self.rtcp_latched.or_else(|| {
            (self.heard_back || now.saturating_sub(self.joined) < window)
                .then(|| {
                    self.cfg.rtcp_remote.or_else(|| {
                        self.cfg
                            .remote
                            .map(|r| SocketAddr::new(r.ip(), r.port().wrapping_add(1)))
                    })
                })
                .flatten()
        })
    }

    /// An address the member is known by (its source, its SDP, its signalling).
    fn knows(&self, ip: IpAddr) -> bool {
        self.latched.is_some_and(|a| a.ip() == ip)
            || self.cfg.remote.is_some_and(|a| a.ip() == ip)
            || self.cfg.source_ips.contains(&ip)
    }

    fn source(&self) -> Source {
        Source {
            rtp: self.latched,
            ssrc: self.remote_ssrc,
            rtcp: self.rtcp_latched,
        }
    }

    fn may_be_heard(&self) -> bool {
        !self.muted && !self.listen_only
    }

    fn domain(&self) -> Domain {
        match self.group {
            Some(g) => Domain::Group(g),
            None => Domain::Main,
        }
    }

    /// Fills `self.pcm` with one native-rate frame from the jitter buffer, decoding what
    /// the policy asks for (zeros otherwise). Sets `decoded` and `frame_level`.
    fn pull(&mut self, now: Duration, policy: DecodePolicy) {
        let need = self.codec.pcm_rate as usize / 50;
        let mut guard = 0;
        let mut decoded_any = false;
        self.frame_level = None;
        while self.fifo.len() < need && guard < 16 {
            guard += 1;
            match self.jb.pop(now) {
                Playout::Packet {
                    payload,
                    duration,
                    tag,
                    ..
                } => {
                    let n = self.codec.pcm_samples(duration);
                    if tag <= 127 {
                        self.frame_level = Some(self.frame_level.map_or(tag, |l| l.min(tag)));
                    }
                    let decode = match policy {
                        DecodePolicy::Never => false,
                        DecodePolicy::Always => true,
                        DecodePolicy::IfVoice { on_level, talking } => {
                            talking
                                || tag == LEVEL_UNKNOWN
                                || tag <= on_level
                                || (tag == LEVEL_NO_VOICE
                                    && (!self.last_silent || self.skipped + 1 >= NO_VOICE_RECHECK))
                        }
                    };
                    if tag == LEVEL_NO_VOICE && !decode {
                        self.skipped += 1;
                        self.stats.decodes_skipped += 1;
                    } else {
                        self.skipped = 0;
                    }
                    if decode {
                        decoded_any = true;
                        let before = self.fifo.len();
                        if self.decoder.decode(&payload, &mut self.fifo).is_err() {
                            self.stats.decode_errors += 1;
                            self.fifo.truncate(before);
                            self.decoder.conceal(n, &mut self.fifo);
                        }
                    } else {
                        self.fifo.resize(self.fifo.len() + n, 0);
                    }
                    self.jb.recycle(payload);
                }
                Playout::Lost { duration, fec } => {
                    let n = self.codec.pcm_samples(duration);
                    let decode = match policy {
                        DecodePolicy::Never => false,
                        DecodePolicy::Always => true,
                        DecodePolicy::IfVoice { talking, .. } => talking || decoded_any,
                    };
                    if decode {
                        decoded_any = true;
                        let recovered = match fec {
                            Some(f) => self.decoder.decode_fec(&f, n, &mut self.fifo),
                            None => false,
                        };
                        if !recovered {
                            self.decoder.conceal(n, &mut self.fifo);
                        }
                    } else {
                        self.fifo.resize(self.fifo.len() + n, 0);
                    }
                }
                Playout::Silence => break,
            }
        }
        if self.fifo.len() >= need {
            self.pcm.clear();
            self.pcm.extend_from_slice(&self.fifo[..need]);
            self.fifo.drain(..need);
            // never let a flood of long packets grow the FIFO without bound
            if self.fifo.len() > need * 8 {
                let excess = self.fifo.len() - need * 8;
                self.fifo.drain(..excess);
            }
            // left-over decoded audio from the previous frame counts as decoded
            self.decoded = decoded_any || (policy != DecodePolicy::Never && guard == 0);
        } else {
            self.fifo.clear();
            self.decoded = false;
        }
    }
}

/// A conference: the mixer and all its members' media state. Sans-IO.
pub struct Mixer {
    cfg: MixerConfig,
    members: Vec<Member>,
    index: rustc_hash::FxHashMap<MemberId, usize>,
    next_tick: Option<Duration>,
    tick_count: u64,
    shared: HashMap<StreamKey, SharedStream>,
    room_playback: Option<Playback>,
    taps: bool,
    events: Vec<Event>,
    frame: usize,
    // scratch
    main_voice: Vec<i32>,
    room_pb: Vec<i32>,
    /// Whether the voice sums (main and groups) or the room playback buffer hold anything
    /// from the last tick: a quiet room does not clear zeros 50 times a second.
    voice_dirty: bool,
    room_pb_dirty: bool,
    groups: Vec<(GroupId, Vec<i32>)>,
    mixbuf: Vec<i32>,
    /// A frame of silence at the mixing rate.
    zeros: Vec<i32>,
    payload: Vec<u8>,
    speakers: Vec<(u8, usize)>,
    ticks_skipped: u64,
}

impl Mixer {
    /// Creates an empty conference. An unsupported mixing rate falls back to 48 kHz.
    pub fn new(mut cfg: MixerConfig) -> Self {
        if cfg.mix_rate != 16000 && cfg.mix_rate != 48000 {
            cfg.mix_rate = 48000;
        }
        cfg.whisper_room_gain = cfg.whisper_room_gain.clamp(0.0, 1.0);
        let frame = cfg.mix_rate as usize / 50;
        Mixer {
            cfg,
            members: Vec::new(),
            index: rustc_hash::FxHashMap::default(),
            next_tick: None,
            tick_count: 0,
            shared: HashMap::new(),
            room_playback: None,
            taps: false,
            events: Vec::new(),
            frame,
            main_voice: vec![0; frame],
            room_pb: vec![0; frame],
            voice_dirty: false,
            room_pb_dirty: false,
            groups: Vec::new(),
            mixbuf: vec![0; frame],
            zeros: vec![0; frame],
            payload: Vec::with_capacity(1500),
            speakers: Vec::new(),
            ticks_skipped: 0,
        }
    }

    /// Mixing rate.
    pub fn mix_rate(&self) -> u32 {
        self.cfg.mix_rate
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True without members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds a member at time `now`. The first member starts the clock.
    pub fn add_member(
        &mut self,
        id: MemberId,
        cfg: MemberConfig,
        now: Duration,
    ) -> Result<(), CodecError> {
        let mut codec = CodecConfig::new(cfg.codec, self.cfg.mix_rate);
        codec.bitrate = cfg.opus_bitrate;
        codec.fec = cfg.opus_fec;
        codec.dtx = cfg.opus_dtx;
        codec.complexity = cfg.opus_complexity;
        let decoder = codec.decoder()?;
        // validate that an encoder can be built too
        drop(codec.encoder()?);
        let frames_per_packet = (cfg.ptime_ms / 20).clamp(1, 6);
        let srtp = match &cfg.srtp {
            Some((local, remote)) => Some(
                SrtpSession::new(local, remote)
                    .map_err(|e| CodecError::Library(format!("SRTP: {e}")))?,
            ),
            None => None,
        };
        if let Some(&i) = self.index.get(&id) {
            self.remove_index(i);
        }
        let member = Member {
            id,
            srtp,
            joined: now,
            timed_out: false,
            codec,
            frames_per_packet,
            decoder,
            jb: JitterBuffer::new(cfg.codec.clock_rate(), self.cfg.jitter),
            remote_ssrc: None,
            last_rx: None,
            last_heard: None,
            rtp_timeout: self.cfg.rtp_timeout,
            reception: ReceptionStats::default(),
            latched: None,
            rtcp_latched: None,
            heard_back: false,
            muted: false,
            deaf: false,
            listen_only: false,
            group: None,
            gain: 1.0,
            auto_gain: false,
            agc_gain: 1.0,
            vad: Vad::new(self.cfg.vad),
            frame_level: None,
            last_silent: false,
            skipped: 0,
            te_rx: TelephoneEventReceiver::default(),
            dtmf_queue: Default::default(),
            dtmf_tx: None,
            inband: cfg
                .inband_dtmf
                .then(|| InbandDtmfDetector::new(codec.pcm_rate)),
            fifo: Vec::new(),
            pcm: Vec::new(),
            decoded: false,
            up: Resampler::new(codec.pcm_rate, self.cfg.mix_rate),
            mix_in: Vec::with_capacity(self.frame),
            contributing: false,
            personal: None,
            playback: None,
            tx_seq: cfg.initial_seq,
            tx_ts: cfg.initial_ts,
            tx_marker: true,
            stats: MemberStats::default(),
            // stagger the first report
            next_rtcp: now + Duration::from_millis(500 + (id % 1000)),
            last_sr_ntp: 0,
            cfg,
        };
        self.index.insert(id, self.members.len());
        self.members.push(member);
        if self.next_tick.is_none() {
            // Rooms tick on one 20 ms grid of the engine's clock: a worker with many small
            // rooms wakes once per frame for all of them, not once per room.
            let frame = FRAME.as_nanos();
            let aligned = now.as_nanos().div_ceil(frame) * frame;
            self.next_tick = Some(Duration::from_nanos(
                u64::try_from(aligned).unwrap_or(u64::MAX),
            ));
        }
        Ok(())
    }

    fn remove_index(&mut self, i: usize) -> Member {
        let m = self.members.swap_remove(i);
        self.index.remove(&m.id);
        if i < self.members.len() {
            let moved = self.members[i].id;
            self.index.insert(moved, i);
        }
        m
    }

    /// Removes a member; returns a final RTCP BYE to send to it. The clock stops with the
    /// last member.
    pub fn remove_member(&mut self, id: MemberId) -> Option<Transmit> {
        let i = *self.index.get(&id)?;
        let mut m = self.remove_index(i);
        if m.vad.reset().is_some() {
            self.events.push(Event::TalkStop { member: id });
        }
        if self.members.is_empty() {
            self.next_tick = None;
            self.shared.clear();
            self.room_playback = None;
        }
        let mut data = Vec::new();
        rtcp::write_rr(&mut data, m.cfg.local_ssrc, &[]);
        rtcp::write_bye(&mut data, &[m.cfg.local_ssrc], None);
        if let Some(srtp) = m.srtp.as_mut() {
            data = srtp.protect_rtcp(&data).ok()?;
        }
        // No clock here: the BYE goes where RTCP would go once the member has answered.
        let to = if m.heard_back {
            m.rtcp_to(m.joined, Duration::MAX)
        } else {
            None
        };
        Some(Transmit {
            member: id,
            to,
            kind: PacketKind::Rtcp,
            data,
        })
    }

    fn member_mut(&mut self, id: MemberId) -> Option<&mut Member> {
        let i = *self.index.get(&id)?;
        self.members.get_mut(i)
    }

    /// Mutes or unmutes (a muted member is not heard and not decoded).
    pub fn set_muted(&mut self, id: MemberId, muted: bool) -> bool {
        self.member_mut(id).map(|m| m.muted = muted).is_some()
    }
    /// Deafens (a deaf member hears nothing; silence is still sent to keep the stream alive).
    pub fn set_deaf(&mut self, id: MemberId, deaf: bool) -> bool {
        self.member_mut(id).map(|m| m.deaf = deaf).is_some()
    }
    /// Listen-only: hears, is never heard.
    pub fn set_listen_only(&mut self, id: MemberId, on: bool) -> bool {
        self.member_mut(id).map(|m| m.listen_only = on).is_some()
    }
    /// Moves a member into a whisper group (`Some`) or back to the main room (`None`).
    pub fn set_group(&mut self, id: MemberId, group: Option<GroupId>) -> bool {
        self.member_mut(id).map(|m| m.group = group).is_some()
    }
    /// Input gain of a member (linear, 0.0..=8.0).
    pub fn set_gain(&mut self, id: MemberId, gain: f32) -> bool {
        self.member_mut(id)
            .map(|m| m.gain = gain.clamp(0.0, 8.0))
            .is_some()
    }
    /// Automatic gain control on a member's input.
    pub fn set_auto_gain(&mut self, id: MemberId, on: bool) -> bool {
        self.member_mut(id).map(|m| m.auto_gain = on).is_some()
    }
    /// How long the member may send nothing before [`Event::MediaTimeout`] (`None`: never);
    /// the clock restarts now.
    pub fn set_rtp_timeout(
        &mut self,
        id: MemberId,
        timeout: Option<Duration>,
        now: Duration,
    ) -> bool {
        self.member_mut(id)
            .map(|m| {
                m.rtp_timeout = timeout;
                m.timed_out = false;
                m.last_heard = Some(m.last_heard.map_or(now, |t| t.max(now)));
            })
            .is_some()
    }
    /// Enables recording taps (room mix and members' decoded input) in [`TickOutput::taps`].
    pub fn set_taps(&mut self, on: bool) {
        self.taps = on;
    }

    /// Queues a DTMF digit to send to a member as RFC 4733 events (audio to that member
    /// pauses while it is sent). Returns false if the member is unknown, has no
    /// telephone-event payload type, or the digit is not DTMF.
    pub fn send_dtmf(&mut self, id: MemberId, digit: char, duration: Duration) -> bool {
        let Some(code) = crate::dtmf::event_code(digit) else {
            return false;
        };
        let mix_rate = self.cfg.mix_rate;
        match self.member_mut(id) {
            Some(m) if m.cfg.telephone_event_pt.is_some() => {
                let units = (duration.as_millis().min(60_000) as u64
                    * m.cfg.codec.clock_rate() as u64
                    / 1000) as u32;
                m.dtmf_queue.push_back((code, units));
                true
            }
            Some(m) => {
                // no telephone-event negotiated: play the tones in-band to this member
                let n = (duration.as_millis().min(5_000) as usize) * mix_rate as usize / 1000;
                let Some(mut pcm) = crate::dtmf::dtmf_tone(digit, mix_rate, n, 0) else {
                    return false;
                };
                // 60 ms of silence after the tone separates repeated digits
                pcm.resize(n + mix_rate as usize * 60 / 1000, 0);
                m.playback = Some(Playback {
                    id: DTMF_PLAYBACK,
                    samples: pcm.into(),
                    pos: 0,
                    looped: false,
                    gain: 1.0,
                    cached: false,
                    recording: None,
                });
                true
            }
            None => false,
        }
    }

    /// Applies a renegotiated configuration (re-INVITE: new codec, address, keys, ptime)
    /// while keeping the member's state in the conference: mute, deaf, listen-only,
    /// whisper group, gains and playback.
    pub fn update_member(
        &mut self,
        id: MemberId,
        cfg: MemberConfig,
        now: Duration,
    ) -> Result<bool, CodecError> {
        let Some(&i) = self.index.get(&id) else {
            return Ok(false);
        };
        let old = &self.members[i];
        let (muted, deaf, listen_only, group, gain, auto_gain) = (
            old.muted,
            old.deaf,
            old.listen_only,
            old.group,
            old.gain,
            old.auto_gain,
        );
        let playback = old.playback.clone();
        let talking = old.vad.is_talking();
        let rtp_timeout = old.rtp_timeout;
        // Same address (hold, resume, a codec change): the member stays where it was found.
        // A new address starts over: the new one must answer like a newcomer.
        let kept = (old.cfg.remote == cfg.remote).then_some((
            old.latched,
            old.rtcp_latched,
            old.heard_back,
        ));
        // The counters go on across a renegotiation (hold, resume, codec change): the roster
        // shows the call's totals, not the last offer's.
        let stats = old.stats.clone();
        self.add_member(id, cfg, now)?;
        if let Some(m) = self.member_mut(id) {
            m.stats = stats;
            m.muted = muted;
            m.deaf = deaf;
            m.listen_only = listen_only;
            m.group = group;
            m.gain = gain;
            m.auto_gain = auto_gain;
            m.playback = playback;
            m.rtp_timeout = rtp_timeout;
            if let Some((latched, rtcp_latched, heard_back)) = kept {
                m.latched = latched;
                m.rtcp_latched = rtcp_latched;
                m.heard_back = heard_back;
            }
        }
        if talking {
            self.events.push(Event::TalkStop { member: id });
        }
        Ok(true)
    }

    /// Starts a playback of mono PCM at `rate` into the room or one member, replacing any
    /// playback there. The PCM is resampled to the mixing rate once here.
    pub fn play(
        &mut self,
        target: PlaybackTarget,
        id: u64,
        pcm: &[i16],
        rate: u32,
        looped: bool,
        gain: f32,
    ) -> bool {
        if !(8000..=48000).contains(&rate) {
            return false;
        }
        let samples: Arc<[i16]> = if rate == self.cfg.mix_rate {
            pcm.into()
        } else {
            let mut r = Resampler::new(rate, self.cfg.mix_rate);
            let mut out = Vec::with_capacity(
                pcm.len() * self.cfg.mix_rate as usize / rate.max(1) as usize + 64,
            );
            r.process(pcm, &mut out);
            if looped {
                // resample a second lap and keep it: it is the steady state of the loop,
                // without the filter's start-up and with a seamless wrap
                let first = out.len();
                r.process(pcm, &mut out);
                out.drain(..first);
            } else {
                r.process(&[0; 64], &mut out);
            }
            out.into()
        };
        let pb = Playback {
            id,
            samples,
            pos: 0,
            looped,
            gain: gain.clamp(0.0, 4.0),
            cached: false,
            recording: None,
        };
        match target {
            PlaybackTarget::Room => {
                self.room_playback = Some(pb);
                true
            }
            PlaybackTarget::Member(m) => {
                self.member_mut(m).map(|m| m.playback = Some(pb)).is_some()
            }
        }
    }

    /// Like [`Mixer::play`], for a sound the caller keeps in an `Arc` (music, prompts): a loop
    /// is resampled once per loop cache and its encodings are shared (see
    /// [`MixerConfig::loops`]).
    pub fn play_shared(
        &mut self,
        target: PlaybackTarget,
        id: u64,
        samples: &Arc<[i16]>,
        rate: u32,
        looped: bool,
        gain: f32,
    ) -> bool {
        let Some(cache) = self.cfg.loops.clone().filter(|_| looped) else {
            return self.play(target, id, samples, rate, looped, gain);
        };
        if !(8000..=48000).contains(&rate) {
            return false;
        }
        let key = (
            samples.as_ptr() as usize,
            samples.len(),
            rate,
            self.cfg.mix_rate,
        );
        let found = cache.lock().resampled.get(&key).map(|(_, r)| r.clone());
        let resampled = match found {
            Some(r) => r,
            None => {
                let mut r = Resampler::new(rate, self.cfg.mix_rate);
                let mut out = Vec::with_capacity(
                    samples.len() * self.cfg.mix_rate as usize / rate as usize + 64,
                );
                r.process(samples, &mut out);
                // the second lap is the loop's steady state (see `play`), cut to whole frames
                // so that each 20 ms frame of it has one encoding
                let first = out.len();
                r.process(samples, &mut out);
                out.drain(..first);
                let whole = out.len() - out.len() % self.frame;
                out.truncate(whole.max(self.frame));
                let loop_: Arc<[i16]> = out.into();
                let mut store = cache.lock();
                if store.resampled.len() < MAX_CACHED_LOOPS {
                    store
                        .resampled
                        .insert(key, (samples.clone(), loop_.clone()));
                }
                loop_
            }
        };
        let pb = Playback {
            id,
            samples: resampled,
            pos: 0,
            looped: true,
            gain: gain.clamp(0.0, 4.0),
            // encodings are shared only for the sound as it is
            cached: gain == 1.0,
            recording: None,
        };
        match target {
            PlaybackTarget::Room => {
                self.room_playback = Some(pb);
                true
            }
            PlaybackTarget::Member(m) => {
                self.member_mut(m).map(|m| m.playback = Some(pb)).is_some()
            }
        }
    }

    /// Stops a playback.
    pub fn stop_playback(&mut self, target: PlaybackTarget) {
        match target {
            PlaybackTarget::Room => self.room_playback = None,
            PlaybackTarget::Member(m) => {
                if let Some(m) = self.member_mut(m) {
                    m.playback = None;
                }
            }
        }
    }

    /// The codec a member uses.
    pub fn member_codec(&self, id: MemberId) -> Option<CodecKind> {
        Some(self.members[*self.index.get(&id)?].cfg.codec)
    }

    /// Events noticed since the last tick (the tick returns them too).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Where a member's media comes from now.
    pub fn member_source(&self, id: MemberId) -> Option<Source> {
        Some(self.members[*self.index.get(&id)?].source())
    }

    /// The member's SSRC key material exists (SRTP): a packet from a new address can prove
    /// itself.
    pub fn member_uses_srtp(&self, id: MemberId) -> bool {
        self.index
            .get(&id)
            .is_some_and(|&i| self.members[i].srtp.is_some())
    }

    /// Statistics of a member.
    pub fn member_stats(&self, id: MemberId) -> Option<MemberStats> {
        let m = &self.members[*self.index.get(&id)?];
        let mut s = m.stats.clone();
        s.jitter_buffer = m.jb.stats();
        s.jitter_delay = m.jb.target_delay();
        s.lost = m.reception.lost();
        s.jitter = Duration::from_micros(
            m.reception.jitter() as u64 * 1_000_000 / m.cfg.codec.clock_rate() as u64,
        );
        s.talking = m.vad.is_talking();
        Some(s)
    }

    /// Ticks skipped because the caller was late by more than a few frames.
    pub fn ticks_skipped(&self) -> u64 {
        self.ticks_skipped
    }

    /// Whether anyone may hear a member: someone else is in the room, or it is recorded. A
    /// member alone is neither buffered nor decoded.
    fn has_audience(&self) -> bool {
        self.members.len() > 1 || self.taps
    }

    /// When [`Mixer::tick`] should next be called; `None` for an empty conference.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.next_tick
    }

    /// Feeds a datagram that may be RTP or RTCP (RFC 5761 demultiplexing), as if it came on
    /// the member's own port: the first source latches, a later one only by the
    /// [`Arrival::Candidate`] rules.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        member: MemberId,
        from: Option<SocketAddr>,
        data: &[u8],
    ) -> Result<Source, DropReason> {
        self.receive(now, member, from, data, Arrival::Candidate)
    }

    /// Feeds a datagram that may be RTP or RTCP, with how the demultiplexer found its member.
    /// `from` is `None` only where there is no address (tests, replays of a capture).
    pub fn receive(
        &mut self,
        now: Duration,
        member: MemberId,
        from: Option<SocketAddr>,
        data: &[u8],
        arrival: Arrival,
    ) -> Result<Source, DropReason> {
        if crate::rtp::looks_like_rtcp(data) {
            self.rtcp_in(now, member, from, data, arrival, true)
        } else {
            self.rtp_in(now, member, from, data, arrival)
        }
    }

    /// Feeds a datagram that arrived on the member's separate RTCP port (no rtcp-mux).
    pub fn receive_rtcp(
        &mut self,
        now: Duration,
        member: MemberId,
        from: Option<SocketAddr>,
        data: &[u8],
        arrival: Arrival,
    ) -> Result<Source, DropReason> {
        self.rtcp_in(now, member, from, data, arrival, false)
    }

    /// Feeds one RTP (or SRTP, for members with keys) datagram from a member.
    pub fn handle_rtp(
        &mut self,
        now: Duration,
        member: MemberId,
        from: Option<SocketAddr>,
        data: &[u8],
    ) -> Result<Source, DropReason> {
        self.rtp_in(now, member, from, data, Arrival::Candidate)
    }

    /// Feeds one RTCP datagram from a member.
    pub fn handle_rtcp(
        &mut self,
        now: Duration,
        member: MemberId,
        data: &[u8],
    ) -> Result<Source, DropReason> {
        self.rtcp_in(now, member, None, data, Arrival::Known, true)
    }

    fn rtp_in(
        &mut self,
        now: Duration,
        member: MemberId,
        from: Option<SocketAddr>,
        data: &[u8],
        arrival: Arrival,
    ) -> Result<Source, DropReason> {
        let (ssrc_switch_after, relatch_after) =
            (self.cfg.ssrc_switch_after, self.cfg.relatch_after);
        let Some(&i) = self.index.get(&member) else {
            return Err(DropReason::UnknownMember);
        };
        // Without an audience its audio is counted and dropped here rather than buffered,
        // played out and thrown away (RFC 4733 digits still count; in-band ones need audio).
        let unheard = !self.has_audience();
        let m = &mut self.members[i];
        if data.len() > MAX_DATAGRAM {
            m.stats.malformed += 1;
            return Err(DropReason::Oversized);
        }
        // Does this packet come from somewhere the stream may move to? Decided before
        // anything changes; an SRTP packet proves itself by authenticating below.
        let moving = match (from, m.latched) {
            (Some(addr), Some(current)) if addr != current => true,
            (Some(_), None) => arrival == Arrival::Candidate,
            _ => false,
        };
        if moving && m.latched.is_some() && m.srtp.is_none() {
            let from_ip = from.map(|a| a.ip());
            let silent = m
                .last_rx
                .is_none_or(|t| now.saturating_sub(t) >= relatch_after);
            if !(silent && from_ip.is_some_and(|ip| m.knows(ip))) {
                m.stats.strangers += 1;
                return Err(DropReason::Stranger);
            }
        }
        let plain;
        let data = match m.srtp.as_mut() {
            None => data,
            Some(s) => match s.unprotect_rtp(data) {
                Ok(p) => {
                    plain = p;
                    &plain[..]
                }
                Err(e) => {
                    if moving {
                        m.stats.strangers += 1;
                    }
                    return Err(srtp_drop(&mut m.stats, e));
                }
            },
        };
        let p = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(_) => {
                m.stats.malformed += 1;
                return Err(DropReason::Malformed);
            }
        };
        let pt = p.payload_type();
        let is_te = m.cfg.telephone_event_pt == Some(pt);
        if pt != m.cfg.payload_type && !is_te {
            if pt == 13 {
                return Err(DropReason::NoAudio);
            }
            m.stats.wrong_payload_type += 1;
            return Err(DropReason::WrongPayloadType);
        }
        let ssrc = p.ssrc();
        match m.remote_ssrc {
            None => m.remote_ssrc = Some(ssrc),
            Some(s) if s == ssrc => {}
            Some(_) => {
                let silent = m
                    .last_rx
                    .is_none_or(|t| now.saturating_sub(t) >= ssrc_switch_after);
                if !silent {
                    m.stats.wrong_ssrc += 1;
                    return Err(DropReason::WrongSsrc);
                }
                m.remote_ssrc = Some(ssrc);
                m.jb.reset();
                m.reception = ReceptionStats::default();
                self.events.push(Event::SsrcChanged { member, ssrc });
            }
        }
        if let Some(addr) = from
            && moving
        {
            m.latched = Some(addr);
            self.events
                .push(Event::RemoteAddressChanged { member, addr });
        }
        m.heard_back = true;
        m.last_rx = Some(now);
        m.last_heard = Some(now);
        m.timed_out = false;
        m.stats.rx_packets += 1;
        m.stats.rx_bytes += data.len() as u64;
        let clock = m.cfg.codec.clock_rate();
        m.reception
            .on_packet(p.sequence(), p.timestamp(), now, clock);
        if is_te {
            if let Some(digit) = m.te_rx.on_packet(p.timestamp(), p.payload()) {
                self.events.push(Event::Dtmf {
                    member,
                    digit,
                    source: DtmfSource::Rfc4733,
                });
            }
            return Ok(m.source());
        }
        let payload = p.payload();
        if payload.is_empty() {
            return Err(DropReason::NoAudio);
        }
        if unheard && m.inband.is_none() {
            return Ok(m.source());
        }
        // the level travels with the packet through the jitter buffer: RFC 6464 when sent;
        // for Opus without it, a tiny payload is digital silence (or a muted handset)
        let level = match m.cfg.audio_level_ext.and_then(|id| p.audio_level(id)) {
            Some((_, l)) => l,
            None if m.cfg.codec == CodecKind::Opus && payload.len() <= OPUS_SILENT_MAX => 127,
            None if m.cfg.codec == CodecKind::Opus
                && crate::codec::opus_vad::voice_inactive(payload) == Some(true) =>
            {
                LEVEL_NO_VOICE
            }
            None => LEVEL_UNKNOWN,
        };
        let units = m
            .decoder
            .samples_in(payload)
            .map(|n| m.codec.rtp_units(n))
            .unwrap_or(0);
        m.jb.insert_tagged(p.timestamp(), units, payload, now, level);
        Ok(m.source())
    }

    /// RTCP from a member: multiplexed on its RTP port (`muxed`) or on its RTCP port. RTCP
    /// never moves the RTP stream; on the RTCP port it latches where RTCP goes back to.
    fn rtcp_in(
        &mut self,
        now: Duration,
        member: MemberId,
        from: Option<SocketAddr>,
        data: &[u8],
        arrival: Arrival,
        muxed: bool,
    ) -> Result<Source, DropReason> {
        let unix = self.cfg.unix_time_at_zero + now;
        let Some(&i) = self.index.get(&member) else {
            return Err(DropReason::UnknownMember);
        };
        let m = &mut self.members[i];
        if data.len() > MAX_DATAGRAM {
            m.stats.malformed += 1;
            return Err(DropReason::Oversized);
        }
        let current = if muxed { m.latched } else { m.rtcp_latched };
        let vouched = match from {
            None => true,
            Some(addr) => {
                Some(addr) == current
                    || (arrival == Arrival::Candidate && current.is_none() && m.srtp.is_some())
                    || m.knows(addr.ip())
            }
        };
        // Plain RTCP from an address the member is not known by is a stranger's; SRTCP
        // proves itself by authenticating.
        if !vouched && m.srtp.is_none() {
            m.stats.strangers += 1;
            return Err(DropReason::Stranger);
        }
        let plain;
        let data = match m.srtp.as_mut() {
            None => data,
            Some(s) => match s.unprotect_rtcp(data) {
                Ok(p) => {
                    plain = p;
                    &plain[..]
                }
                Err(e) => return Err(srtp_drop(&mut m.stats, e)),
            },
        };
        let mut any = false;
        for p in rtcp::parse_compound(data) {
            let Ok(p) = p else {
                m.stats.malformed += 1;
                return Err(DropReason::Malformed);
            };
            any = true;
            let blocks = match &p {
                RtcpPacket::SenderReport { info, reports, .. } => {
                    m.reception.on_sender_report(info.ntp, now);
                    reports.as_slice()
                }
                RtcpPacket::ReceiverReport { reports, .. } => reports.as_slice(),
                RtcpPacket::Bye { .. } => {
                    self.events.push(Event::Bye { member });
                    &[]
                }
                _ => &[],
            };
            for b in blocks {
                if b.ssrc == m.cfg.local_ssrc {
                    m.stats.remote_report = Some(*b);
                    if let Some(rtt) = rtcp::round_trip_time(b, ntp_compact(ntp_from_unix(unix))) {
                        m.stats.rtt = Some(rtt);
                    }
                }
            }
        }
        if !any {
            m.stats.malformed += 1;
            return Err(DropReason::Malformed);
        }
        if !muxed
            && let Some(addr) = from
            && m.rtcp_latched != Some(addr)
        {
            m.rtcp_latched = Some(addr);
        }
        m.heard_back = true;
        m.last_heard = Some(now);
        m.timed_out = false;
        Ok(m.source())
    }

    /// Runs the mixer if a tick is due at `now` and returns what it produced. Calling it
    /// early returns an empty output. When the caller is more than three frames late the
    /// missed frames are skipped (counted) rather than produced in a burst.
    pub fn tick(&mut self, now: Duration) -> TickOutput {
        let mut out = TickOutput::default();
        let Some(mut next) = self.next_tick else {
            out.events = std::mem::take(&mut self.events);
            return out;
        };
        if now < next {
            out.events = std::mem::take(&mut self.events);
            return out;
        }
        if now.saturating_sub(next) > FRAME * 3 {
            let behind = (now - next).as_nanos();
            let frame = FRAME.as_nanos();
            self.ticks_skipped = self
                .ticks_skipped
                .saturating_add((behind / frame).min(u64::MAX as u128) as u64);
            next = now - Duration::from_nanos((behind % frame) as u64);
        }
        self.mix_tick(next, &mut out);
        self.next_tick = Some(next + FRAME);
        let mut ev = std::mem::take(&mut self.events);
        ev.append(&mut out.events);
        out.events = ev;
        out
    }

    fn mix_tick(&mut self, now: Duration, out: &mut TickOutput) {
        let frame = self.frame;
        let window = self.cfg.unverified_send_window;
        let tick = self.tick_count;
        self.tick_count += 1;
        let on_level = self.cfg.vad.on_level;

        // 1. pull, decode who may be heard, voice activity, DTMF
        self.speakers.clear();
        let audience = self.has_audience();
        for (i, m) in self.members.iter_mut().enumerate() {
            m.contributing = false;
            let heard = audience && m.may_be_heard();
            // Recording decodes no more than mixing: a member's silent frames (by their audio
            // level or Opus's own voice flag) are not decoded, and the recorder fills the gaps
            // with silence.
            let policy = if m.inband.is_some() {
                DecodePolicy::Always
            } else if heard {
                DecodePolicy::IfVoice {
                    on_level,
                    talking: m.vad.is_talking(),
                }
            } else {
                DecodePolicy::Never
            };
            m.pull(now, policy);
            let level = match m.frame_level {
                Some(l) => l,
                None if m.decoded => level_dbov(&m.pcm),
                None => 127,
            };
            if m.decoded {
                m.last_silent = level >= SILENT_LEVEL;
            }
            let ev = if heard || m.frame_level.is_some() {
                m.vad.update(level)
            } else {
                m.vad.reset()
            };
            match ev {
                Some(VadEvent::TalkStart) => out.events.push(Event::TalkStart { member: m.id }),
                Some(VadEvent::TalkStop) => out.events.push(Event::TalkStop { member: m.id }),
                None => {}
            }
            if m.decoded {
                if let Some(det) = m.inband.as_mut()
                    && let Some(digit) = det.process(&m.pcm)
                {
                    out.events.push(Event::Dtmf {
                        member: m.id,
                        digit,
                        source: DtmfSource::Inband,
                    });
                }
                if self.taps {
                    out.taps.push(TapFrame {
                        source: TapSource::Member(m.id),
                        time: now,
                        rate: m.codec.pcm_rate,
                        samples: m.pcm.clone(),
                    });
                }
                if heard && (m.vad.is_talking() || level <= on_level) {
                    self.speakers.push((level, i));
                }
            }
        }

        // 2. choose the loudest speakers and bring them to the mixing rate
        self.speakers.sort_unstable();
        self.speakers.truncate(self.cfg.max_speakers);
        if self.voice_dirty {
            self.main_voice.fill(0);
            for (_, g) in self.groups.iter_mut() {
                g.fill(0);
            }
        }
        self.voice_dirty = !self.speakers.is_empty();
        for &(_, i) in &self.speakers {
            let m = &mut self.members[i];
            m.contributing = true;
            m.mix_in.clear();
            m.up.process(&m.pcm, &mut m.mix_in);
            m.mix_in.resize(frame, 0);
            let mut gain = m.gain;
            if m.auto_gain {
                // aim at -20 dBov after the manual gain; adapt slowly (only while the member
                // is a talker, so noise is never pumped up), bounded to ±12 dB
                let lvl = level_dbov(&m.mix_in) as f32 - 20.0 * m.gain.max(1e-3).log10();
                let want = 10f32.powf((lvl - 20.0) / 20.0).clamp(0.25, 4.0);
                m.agc_gain += (want - m.agc_gain) * 0.05;
                gain *= m.agc_gain;
            }
            if (gain - 1.0).abs() > f32::EPSILON {
                for s in m.mix_in.iter_mut() {
                    *s = (*s as f32 * gain).clamp(-32768.0, 32767.0) as i16;
                }
            }
            let target = match m.group {
                None => &mut self.main_voice,
                Some(g) => {
                    let pos = match self.groups.iter().position(|(id, _)| *id == g) {
                        Some(p) => p,
                        None => {
                            self.groups.push((g, vec![0; frame]));
                            self.groups.len() - 1
                        }
                    };
                    &mut self.groups[pos].1
                }
            };
            for (t, &s) in target.iter_mut().zip(&m.mix_in) {
                *t += s as i32;
            }
        }

        // room playback
        if self.room_pb_dirty {
            self.room_pb.fill(0);
        }
        self.room_pb_dirty = self.room_playback.is_some();
        // Nothing to hear in the room this frame (no talker, no sound for everyone): listeners
        // get silence without a mix, and the loop cache may serve a member's music.
        let hush = self.speakers.is_empty() && self.room_playback.is_none();
        if let Some(pb) = self.room_playback.as_mut()
            && pb.mix_into(&mut self.room_pb)
        {
            out.events.push(Event::PlaybackFinished {
                target: PlaybackTarget::Room,
                id: pb.id,
            });
            self.room_playback = None;
        }

        if self.taps {
            let mut room: Vec<i32> = self.main_voice.clone();
            for (r, &p) in room.iter_mut().zip(&self.room_pb) {
                *r += p;
            }
            let mut samples = vec![0i16; frame];
            Limiter::default().process(&room, &mut samples);
            out.taps.push(TapFrame {
                source: TapSource::Room,
                time: now,
                rate: self.cfg.mix_rate,
                samples,
            });
        }

        // 3. per listener: shared or personal encode, then packetize
        let room_gain = self.cfg.whisper_room_gain;
        for mi in 0..self.members.len() {
            let m = &mut self.members[mi];
            let boundary = (tick + 1).is_multiple_of(m.frames_per_packet as u64);
            // RFC 4733 sending replaces audio
            if m.dtmf_tx.is_none()
                && let Some((code, units)) = m.dtmf_queue.pop_front()
            {
                let ptime_units = m.codec.rtp_units(m.codec.pcm_rate as usize / 50);
                m.dtmf_tx = Some((TelephoneEventSender::new(code, units, ptime_units), m.tx_ts));
            }
            let rtp_to = m.rtp_to(now, window);
            if let Some((sender, ts)) = m.dtmf_tx.as_mut() {
                let ts = *ts;
                let te_pt = m.cfg.telephone_event_pt.unwrap_or(101);
                if let Some((p, marker)) = sender.next_packet() {
                    let mut data = Vec::with_capacity(16);
                    write_simple(&mut data, marker, te_pt, m.tx_seq, ts, m.cfg.local_ssrc, &p);
                    m.tx_seq = m.tx_seq.wrapping_add(1);
                    out.transmits.push(Transmit {
                        member: m.id,
                        to: rtp_to,
                        kind: PacketKind::Rtp,
                        data,
                    });
                }
                let units = m.codec.rtp_units(m.codec.pcm_rate as usize / 50);
                m.tx_ts = m.tx_ts.wrapping_add(units);
                if sender.is_done() {
                    m.dtmf_tx = None;
                    m.tx_marker = true;
                }
                continue;
            }

            let own_domain = m.domain();
            let personal_pb = m.playback.is_some();
            // A deaf member still hears a playback meant for them alone (a voice prompt while
            // they wait for their PIN, say), and nothing else.
            let personal = personal_pb || (!m.deaf && m.contributing);
            // Alone with a looped sound (music) and nothing else to hear: the loop's frames
            // are encoded once for the whole worker.
            let only_loop = (hush || m.deaf)
                && !m.contributing
                && m.frames_per_packet == 1
                && m.playback.as_ref().is_some_and(|pb| pb.cached);
            let loop_cache = self.cfg.loops.as_ref().filter(|_| only_loop);
            let has_payload;
            if let Some(cache) = loop_cache
                && let Some(pb) = m.playback.as_mut()
                && let Some(frames) = cache.encoded(&pb.samples, m.codec)
            {
                let index = pb.pos / self.frame;
                self.payload.clear();
                self.payload
                    .extend_from_slice(&frames[index % frames.len().max(1)]);
                pb.pos = (pb.pos + self.frame) % pb.samples.len().max(1);
                pb.recording = None;
                has_payload = !self.payload.is_empty();
            } else if personal {
                if m.deaf {
                    self.mixbuf.fill(0);
                } else {
                    // mix-minus: the domain mix without the member's own voice
                    self.mixbuf.copy_from_slice(&self.room_pb);
                    match own_domain {
                        Domain::Group(g) => {
                            if let Some((_, gs)) = self.groups.iter().find(|(id, _)| *id == g) {
                                for (x, &v) in self.mixbuf.iter_mut().zip(gs) {
                                    *x += v;
                                }
                            }
                            for (x, &v) in self.mixbuf.iter_mut().zip(&self.main_voice) {
                                *x += (v as f32 * room_gain) as i32;
                            }
                        }
                        _ => {
                            for (x, &v) in self.mixbuf.iter_mut().zip(&self.main_voice) {
                                *x += v;
                            }
                        }
                    }
                    if m.contributing {
                        for (x, &v) in self.mixbuf.iter_mut().zip(&m.mix_in) {
                            *x -= v as i32;
                        }
                    }
                }
                let start_pos = m.playback.as_ref().map(|pb| pb.pos);
                if let Some(pb) = m.playback.as_mut()
                    && pb.mix_into(&mut self.mixbuf)
                {
                    if pb.id != DTMF_PLAYBACK {
                        out.events.push(Event::PlaybackFinished {
                            target: PlaybackTarget::Member(m.id),
                            id: pb.id,
                        });
                    }
                    m.playback = None;
                }
                if m.personal.is_none() {
                    m.personal =
                        EncodeChain::new(m.codec, m.frames_per_packet, self.cfg.mix_rate).ok();
                }
                // the loop's position before this frame, when only the loop was heard
                let loop_frame = loop_cache.and(start_pos).map(|p| p / self.frame);
                has_payload = match m.personal.as_mut() {
                    Some(chain) => chain.push(&self.mixbuf, boundary, &mut self.payload),
                    None => false,
                };
                // Record the loop's encodings from its start, then share them.
                if let (Some(cache), Some(index), Some(pb)) =
                    (loop_cache, loop_frame, m.playback.as_mut())
                {
                    let frames = pb.samples.len() / self.frame;
                    if index == 0 {
                        pb.recording = Some(Vec::with_capacity(frames));
                    }
                    if let Some(rec) = pb.recording.as_mut() {
                        if has_payload && rec.len() == index {
                            rec.push(self.payload.clone());
                        } else {
                            pb.recording = None;
                        }
                    }
                    if pb.recording.as_ref().is_some_and(|r| r.len() == frames)
                        && let Some(rec) = pb.recording.take()
                    {
                        cache.keep(&pb.samples, m.codec, rec);
                    }
                }
            } else {
                let domain = if m.deaf { Domain::Silence } else { own_domain };
                let key = StreamKey {
                    codec: m.codec,
                    frames_per_packet: m.frames_per_packet,
                    domain,
                };
                let stream = match self.shared.get_mut(&key) {
                    Some(s) => s,
                    None => {
                        let Ok(chain) =
                            EncodeChain::new(m.codec, m.frames_per_packet, self.cfg.mix_rate)
                        else {
                            continue;
                        };
                        self.shared.entry(key).or_insert(SharedStream {
                            chain,
                            payload: Vec::new(),
                            has_payload: false,
                            computed_tick: u64::MAX,
                            last_used_tick: tick,
                        })
                    }
                };
                stream.last_used_tick = tick;
                if stream.computed_tick != tick && (hush || domain == Domain::Silence) {
                    stream.computed_tick = tick;
                    stream.has_payload =
                        stream
                            .chain
                            .push_quiet(&self.zeros, boundary, &mut stream.payload);
                } else if stream.computed_tick != tick {
                    stream.computed_tick = tick;
                    self.mixbuf.copy_from_slice(&self.room_pb);
                    match domain {
                        Domain::Main => {
                            for (x, &v) in self.mixbuf.iter_mut().zip(&self.main_voice) {
                                *x += v;
                            }
                        }
                        Domain::Group(g) => {
                            if let Some((_, gs)) = self.groups.iter().find(|(id, _)| *id == g) {
                                for (x, &v) in self.mixbuf.iter_mut().zip(gs) {
                                    *x += v;
                                }
                            }
                            for (x, &v) in self.mixbuf.iter_mut().zip(&self.main_voice) {
                                *x += (v as f32 * room_gain) as i32;
                            }
                        }
                        Domain::Silence => self.mixbuf.iter_mut().for_each(|v| *v = 0),
                    }
                    stream.has_payload =
                        stream
                            .chain
                            .push(&self.mixbuf, boundary, &mut stream.payload);
                }
                has_payload = stream.has_payload;
                if has_payload {
                    self.payload.clear();
                    self.payload.extend_from_slice(&stream.payload);
                }
            }
            if !has_payload {
                continue;
            }
            let mut data = Vec::with_capacity(12 + self.payload.len());
            write_simple(
                &mut data,
                m.tx_marker,
                m.cfg.payload_type,
                m.tx_seq,
                m.tx_ts,
                m.cfg.local_ssrc,
                &self.payload,
            );
            m.tx_marker = false;
            m.tx_seq = m.tx_seq.wrapping_add(1);
            m.tx_ts = m.tx_ts.wrapping_add(
                m.codec.rtp_units(m.codec.pcm_rate as usize / 50) * m.frames_per_packet,
            );
            m.stats.tx_packets += 1;
            m.stats.tx_bytes += self.payload.len() as u64;
            out.transmits.push(Transmit {
                member: m.id,
                to: m.rtp_to(now, window),
                kind: PacketKind::Rtp,
                data,
            });
        }

        // drop shared streams nobody used for a second
        if tick.is_multiple_of(50) {
            self.shared
                .retain(|_, s| tick.saturating_sub(s.last_used_tick) < 50);
            self.groups.retain(|(_, g)| g.iter().any(|&v| v != 0));
        }

        // 4. media timeouts, RTCP
        for m in self.members.iter_mut() {
            let Some(limit) = m.rtp_timeout else {
                continue;
            };
            let since = m.last_heard.unwrap_or(m.joined);
            if !m.timed_out && now.saturating_sub(since) >= limit {
                m.timed_out = true;
                out.events.push(Event::MediaTimeout { member: m.id });
            }
        }
        let unix_zero = self.cfg.unix_time_at_zero;
        for m in self.members.iter_mut() {
            if now < m.next_rtcp {
                continue;
            }
            m.next_rtcp = now + self.cfg.rtcp_interval;
            let mut data = Vec::with_capacity(128);
            let blocks: Vec<ReportBlock> = m
                .remote_ssrc
                .map(|s| m.reception.report_block(s, now))
                .into_iter()
                .collect();
            if m.stats.tx_packets > 0 {
                let ntp = ntp_from_unix(unix_zero + now);
                m.last_sr_ntp = ntp;
                let info = SenderInfo {
                    ntp,
                    rtp_ts: m.tx_ts,
                    packet_count: m.stats.tx_packets as u32,
                    octet_count: m.stats.tx_bytes as u32,
                };
                rtcp::write_sr(&mut data, m.cfg.local_ssrc, &info, &blocks);
            } else {
                rtcp::write_rr(&mut data, m.cfg.local_ssrc, &blocks);
            }
            rtcp::write_sdes_cname(&mut data, m.cfg.local_ssrc, &self.cfg.cname);
            out.transmits.push(Transmit {
                member: m.id,
                to: m.rtcp_to(now, window),
                kind: PacketKind::Rtcp,
                data,
            });
        }

        // 5. SRTP
        for t in out.transmits.iter_mut() {
            let Some(&i) = self.index.get(&t.member) else {
                continue;
            };
            if let Some(s) = self.members[i].srtp.as_mut() {
                let r = match t.kind {
                    PacketKind::Rtp => s.protect_rtp(&t.data),
                    PacketKind::Rtcp => s.protect_rtcp(&t.data),
                };
                match r {
                    Ok(d) => t.data = d,
                    Err(_) => t.data.clear(),
                }
            }
        }
        out.transmits.retain(|t| !t.data.is_empty());
    }
}

fn srtp_drop(stats: &mut MemberStats, e: SrtpError) -> DropReason {
    match e {
        SrtpError::AuthFailed => {
            stats.srtp_auth_failures += 1;
            DropReason::AuthFailed
        }
        SrtpError::Replay => {
            stats.srtp_replays += 1;
            DropReason::Replay
        }
        _ => {
            stats.malformed += 1;
            DropReason::Malformed
        }
    }
}
