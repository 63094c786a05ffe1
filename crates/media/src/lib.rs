//! # conclave-media
//!
//! The sans-IO media engine of Conclave: RTP/RTCP, jitter buffers, codecs,
//! resampling, voice activity, DTMF and the conference mixer. No sockets, no
//! threads, no async, no clock reads: datagrams and explicit time go in,
//! datagrams, events and recording frames come out. Everything is
//! deterministic and testable with simulated time, loss and jitter.
//!
//! ## How the server drives it
//!
//! One [`mixer::Mixer`] per live conference, owned by one media
//! thread (many conferences per thread). Time is a [`std::time::Duration`]
//! since any epoch the caller picks (monotonic); set
//! [`mixer::MixerConfig::unix_time_at_zero`] so that RTCP sender
//! reports carry wall-clock NTP time.
//!
//! ```
//! use std::time::Duration;
//! use conclave_media::codec::CodecKind;
//! use conclave_media::mixer::{Mixer, MixerConfig, MemberConfig, PacketKind};
//!
//! let mut conf = Mixer::new(MixerConfig::default());
//! // after the SDP answer: codec, payload types, our SSRC, where to send
//! let mut member = MemberConfig::new(CodecKind::Pcmu, 0x1234_5678);
//! member.remote = Some("192.0.2.10:4000".parse().unwrap());
//! conf.add_member(7, member, Duration::ZERO).unwrap();
//!
//! // a datagram arrived on member 7's RTP port (RTP or muxed RTCP):
//! # let datagram = [0u8; 0];
//! let _ = conf.handle_datagram(Duration::from_millis(3), 7, None, &datagram); // Err = counted + dropped
//!
//! // the timer: sleep until next_deadline(), then tick. None = empty conference, no timer.
//! while let Some(deadline) = conf.next_deadline() {
//!     let out = conf.tick(deadline);
//!     for tx in out.transmits {
//!         // send tx.data to tx.to (RTP or RTCP, see tx.kind) from member tx.member's socket
//!         let _ = (tx.member, tx.to, tx.kind == PacketKind::Rtp);
//!     }
//!     for _event in out.events { /* talk start/stop, DTMF, playback finished, ... */ }
//!     for _frame in out.taps { /* recording: room mix and members' decoded input */ }
//!     # break;
//! }
//! ```
//!
//! Control goes through methods on the conference: `set_muted`, `set_deaf`,
//! `set_listen_only`, `set_group` (whisper groups), `set_gain`,
//! `set_auto_gain`, `play` / `stop_playback` (prompts and music into the room
//! or one member), `send_dtmf` (RFC 4733 out, in-band tones without it),
//! `set_taps` (recording), `update_member` (re-INVITE) and `member_stats`
//! (loss, jitter, RTT, counters). SRTP (SDES) is per member: put the keys in
//! [`mixer::MemberConfig::srtp`] and datagrams are unprotected on the way
//! in and protected on the way out.
//!
//! ## What the tick does
//!
//! Every 20 ms: each member's jitter buffer yields a frame (or concealment);
//! only members who may be heard are decoded (not muted, not listen-only, and
//! voice present per their RFC 6464 audio level if they send one); voice
//! activity with hysteresis produces talk events; the loudest
//! `max_speakers` talkers are resampled to the mixing rate (48 kHz, or 16 kHz)
//! and summed per mix domain (main room, each whisper group). Listeners who
//! are not speaking share one encode per (codec, packet time, domain);
//! speakers and members with a personal playback get their own mix-minus.
//! Sums are i32 and pass through a limiter, so nothing clips. An empty
//! conference has no deadline.
//!
//! ## Modules
//!
//! * [`rtp`], [`rtcp`]: zero-copy parsers and builders (RFC 3550, RFC 8285
//!   header extensions, RFC 6464 audio level), reception statistics, RTT.
//! * [`srtp`]: SRTP/SRTCP with SDES keys (AES-CM-HMAC-SHA1-80/32, AEAD-AES-GCM
//!   128/256), replay protection.
//! * [`jitter`]: adaptive jitter buffer.
//! * [`codec`]: G.711, G.722, Opus behind [`codec::AudioDecoder`] /
//!   [`codec::AudioEncoder`], with PLC and Opus FEC.
//! * [`resample`]: polyphase FIR resampler.
//! * [`vad`], [`dtmf`], [`dsp`]: voice activity, RFC 4733 and in-band DTMF,
//!   Goertzel, levels, limiter.
//! * [`mixer`]: the mixer (mix-minus, whisper groups, shared encodes).
//! * [`engine`]: many mixers behind shared ports: demultiplexing, latching, a deadline heap.
#![warn(missing_docs)]

pub mod codec;
pub mod dsp;
pub mod dtmf;
pub mod engine;
pub mod jitter;
pub mod mixer;
pub mod recording;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod streaming;
pub mod vad;
pub mod video;
pub mod webrtc;
