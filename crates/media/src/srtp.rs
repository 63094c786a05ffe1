//! SRTP and SRTCP with SDES-negotiated keys (RFC 3711, RFC 4568, RFC 7714), on top of
//! the sans-IO `rtc-srtp` crate (ring backend): AES_CM_128_HMAC_SHA1_80 and _32,
//! AEAD_AES_128_GCM and AEAD_AES_256_GCM, with replay protection on the receiving side.

use base64::Engine as _;
use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;
use thiserror::Error;

/// SRTP errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// The authentication tag did not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// A packet that was already received (or is too old for the replay window).
    #[error("replayed packet")]
    Replay,
    /// The packet is too short or otherwise malformed.
    #[error("malformed packet")]
    Malformed,
    /// Key or salt of the wrong length, bad base64, or unknown suite.
    #[error("bad key: {0}")]
    BadKey(String),
}

/// The SDES crypto suites supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES_CM_128_HMAC_SHA1_80.
    AesCm128HmacSha1_80,
    /// AES_CM_128_HMAC_SHA1_32.
    AesCm128HmacSha1_32,
    /// AEAD_AES_128_GCM.
    AeadAes128Gcm,
    /// AEAD_AES_256_GCM.
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// All suites, in order of preference for offers.
    pub const ALL: [SrtpSuite; 4] = [
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The name used in SDP `a=crypto` lines.
    pub fn sdes_name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Parses an SDP suite name.
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.sdes_name() == name)
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        self.profile().key_len()
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        self.profile().salt_len()
    }
}

/// A master key and salt for one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// Suite.
    pub suite: SrtpSuite,
    /// Master key.
    pub key: Vec<u8>,
    /// Master salt.
    pub salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl SrtpKey {
    /// Builds a key from `key || salt` material (as carried in SDES), checking lengths.
    pub fn from_material(suite: SrtpSuite, material: &[u8]) -> Result<Self, SrtpError> {
        let (kl, sl) = (suite.key_len(), suite.salt_len());
        if material.len() != kl + sl {
            return Err(SrtpError::BadKey(format!(
                "{} needs {} bytes of key material, got {}",
                suite.sdes_name(),
                kl + sl,
                material.len()
            )));
        }
        Ok(SrtpKey {
            suite,
            key: material[..kl].to_vec(),
            salt: material[kl..].to_vec(),
        })
    }

    /// Parses the key parameters of an SDP crypto attribute value, for example
    /// `1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4`.
    /// Returns the tag and the key. Lifetime and MKI parameters are accepted and ignored
    /// (MKI values other than none are rejected, as one key per direction is used).
    pub fn parse_sdes(attr: &str) -> Result<(u32, Self), SrtpError> {
        let attr = attr.trim().trim_start_matches("a=crypto:");
        let mut parts = attr.split_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or_else(|| SrtpError::BadKey("missing tag".into()))?;
        let suite = parts
            .next()
            .and_then(SrtpSuite::from_sdes_name)
            .ok_or_else(|| SrtpError::BadKey("unknown suite".into()))?;
        let params = parts
            .next()
            .and_then(|p| p.strip_prefix("inline:"))
            .ok_or_else(|| SrtpError::BadKey("missing inline key".into()))?;
        let mut fields = params.split('|');
        let b64 = fields.next().unwrap_or_default();
        for f in fields {
            if f.contains(':') && !f.starts_with("2^") {
                return Err(SrtpError::BadKey("MKI is not supported".into()));
            }
        }
        let material = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
            .map_err(|_| SrtpError::BadKey("bad base64".into()))?;
        Ok((tag, Self::from_material(suite, &material)?))
    }

    /// Formats the SDP crypto attribute value for this key.
    pub fn to_sdes(&self, tag: u32) -> String {
        let mut m = self.key.clone();
        m.extend_from_slice(&self.salt);
        format!(
            "{tag} {} inline:{}",
            self.suite.sdes_name(),
            base64::engine::general_purpose::STANDARD.encode(m)
        )
    }
}

fn map_err(e: rtc_shared::error::Error) -> SrtpError {
    use rtc_shared::error::Error as E;
    match e {
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) => SrtpError::Replay,
        E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::ErrFailedToVerifyAuthTag => SrtpError::AuthFailed,
        _ => SrtpError::Malformed,
    }
}

/// Counters of one SRTP session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// Packets that failed authentication.
    pub auth_failures: u64,
    /// Replayed packets.
    pub replays: u64,
    /// Malformed packets.
    pub malformed: u64,
}

/// One SRTP session: an outbound context (our key) and an inbound one (the peer's key).
pub struct SrtpSession {
    outbound: Context,
    inbound: Context,
    stats: SrtpStats,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Replay window (packets).
pub const REPLAY_WINDOW: usize = 128;

impl SrtpSession {
    /// Creates a session from our key (to protect what we send) and the peer's key.
    pub fn new(local: &SrtpKey, remote: &SrtpKey) -> Result<Self, SrtpError> {
        let provider =
            rtc_srtp::crypto::default_provider().map_err(|e| SrtpError::BadKey(e.to_string()))?;
        let crypto = provider.crypto();
        let outbound = Context::new(
            &local.key,
            &local.salt,
            local.suite.profile(),
            None,
            None,
            crypto,
        )
        .map_err(|e| SrtpError::BadKey(e.to_string()))?;
        let inbound = Context::new(
            &remote.key,
            &remote.salt,
            remote.suite.profile(),
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
            crypto,
        )
        .map_err(|e| SrtpError::BadKey(e.to_string()))?;
        Ok(SrtpSession {
            outbound,
            inbound,
            stats: SrtpStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    fn count(&mut self, e: SrtpError) -> SrtpError {
        match e {
            SrtpError::AuthFailed => self.stats.auth_failures += 1,
            SrtpError::Replay => self.stats.replays += 1,
            _ => self.stats.malformed += 1,
        }
        e
    }

    /// Encrypts and authenticates an RTP packet.
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if crate::rtp::RtpPacket::parse(rtp).is_err() {
            return Err(SrtpError::Malformed);
        }
        self.outbound
            .encrypt_rtp(rtp)
            .map(|b| b.to_vec())
            .map_err(map_err)
    }

    /// Verifies and decrypts an SRTP packet.
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if srtp.len() < crate::rtp::RTP_HEADER_LEN + 4 || srtp.len() > crate::mixer::MAX_DATAGRAM {
            return Err(self.count(SrtpError::Malformed));
        }
        // the header (CSRCs, extension) must be sound before the library looks at it
        if crate::rtp::header_len(srtp).is_none() {
            return Err(self.count(SrtpError::Malformed));
        }
        match self.inbound.decrypt_rtp(srtp) {
            Ok(b) => Ok(b.to_vec()),
            Err(e) => Err(self.count(map_err(e))),
        }
    }

    /// Encrypts and authenticates a compound RTCP packet.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if rtcp.len() < 8 {
            return Err(SrtpError::Malformed);
        }
        self.outbound
            .encrypt_rtcp(rtcp)
            .map(|b| b.to_vec())
            .map_err(map_err)
    }

    /// Verifies and decrypts an SRTCP packet.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if srtcp.len() < 8 + 4 || srtcp.len() > crate::mixer::MAX_DATAGRAM {
            return Err(self.count(SrtpError::Malformed));
        }
        match self.inbound.decrypt_rtcp(srtcp) {
            Ok(b) => Ok(b.to_vec()),
            Err(e) => Err(self.count(map_err(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpHeader, RtpPacket};

    fn key(suite: SrtpSuite, seed: u8) -> SrtpKey {
        let m: Vec<u8> = (0..suite.key_len() + suite.salt_len())
            .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
            .collect();
        SrtpKey::from_material(suite, &m).unwrap()
    }

    #[test]
    fn roundtrip_all_suites_with_replay_and_tamper() {
        for suite in SrtpSuite::ALL {
            let a = key(suite, 1);
            let b = key(suite, 2);
            let mut alice = SrtpSession::new(&a, &b).unwrap();
            let mut bob = SrtpSession::new(&b, &a).unwrap();
            for seq in [65530u16, 65531, 65535, 0, 1, 2] {
                let rtp = RtpHeader {
                    payload_type: 0,
                    sequence: seq,
                    timestamp: seq as u32 * 160,
                    ssrc: 0x1234,
                    ..Default::default()
                }
                .to_vec(&[0x55; 160]);
                let s = alice.protect_rtp(&rtp).unwrap();
                assert_ne!(&s[12..172], &rtp[12..172], "{suite:?} encrypts");
                let p = bob.unprotect_rtp(&s).unwrap();
                assert_eq!(p, rtp);
                let parsed = RtpPacket::parse(&p).unwrap();
                assert_eq!(parsed.sequence(), seq);
                // replay
                assert_eq!(bob.unprotect_rtp(&s), Err(SrtpError::Replay), "{suite:?}");
                // tamper
                let mut t = alice
                    .protect_rtp(&{
                        let mut r = rtp.clone();
                        r[2..4].copy_from_slice(&seq.wrapping_add(3).to_be_bytes());
                        r
                    })
                    .unwrap();
                let n = t.len();
                t[n - 1] ^= 1;
                assert_eq!(
                    bob.unprotect_rtp(&t),
                    Err(SrtpError::AuthFailed),
                    "{suite:?}"
                );
            }
            assert!(bob.stats().replays >= 6);
            assert!(bob.stats().auth_failures >= 6);
            // tag lengths: 80-bit = 10 bytes, 32-bit = 4, GCM = 16
            let rtp = RtpHeader::default().to_vec(&[0; 10]);
            let s = alice.protect_rtp(&rtp).unwrap();
            let expected = match suite {
                SrtpSuite::AesCm128HmacSha1_80 => 10,
                SrtpSuite::AesCm128HmacSha1_32 => 4,
                _ => 16,
            };
            assert_eq!(s.len() - rtp.len(), expected, "{suite:?}");
            // RTCP
            let mut rr = Vec::new();
            crate::rtcp::write_rr(&mut rr, 0x1234, &[]);
            let s = alice.protect_rtcp(&rr).unwrap();
            assert_eq!(bob.unprotect_rtcp(&s).unwrap(), rr);
            assert_eq!(bob.unprotect_rtcp(&s), Err(SrtpError::Replay));
            // garbage
            for n in 0..80 {
                let g: Vec<u8> = (0..n).map(|i| (i * 7 + 128) as u8).collect();
                let _ = bob.unprotect_rtp(&g);
                let _ = bob.unprotect_rtcp(&g);
            }
            // the wrong key fails authentication
            let mut eve = SrtpSession::new(&key(suite, 9), &a).unwrap();
            let rtp = RtpHeader {
                sequence: 100,
                ssrc: 0x99,
                ..Default::default()
            }
            .to_vec(&[1; 20]);
            let s = eve.protect_rtp(&rtp).unwrap();
            assert_eq!(bob.unprotect_rtp(&s), Err(SrtpError::AuthFailed));
        }
    }

    #[test]
    fn padded_and_extended_packets_roundtrip() {
        for suite in SrtpSuite::ALL {
            let k = key(suite, 5);
            let mut a = SrtpSession::new(&k, &k).unwrap();
            for (pt, pad, ext) in [
                (0u8, 4usize, false),
                (73, 0, false),
                (0, 0, true),
                (96, 8, true),
            ] {
                let mut v = Vec::new();
                RtpHeader {
                    payload_type: pt,
                    sequence: 10 + pt as u16 + pad as u16,
                    ssrc: 1,
                    extensions: if ext {
                        vec![(1, vec![0x80 | 30])]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                }
                .write(&[1, 2, 3, 4, 5], pad, &mut v);
                let p = a.protect_rtp(&v).unwrap();
                assert_eq!(
                    a.unprotect_rtp(&p).as_deref().ok(),
                    Some(&v[..]),
                    "{suite:?} pt {pt} pad {pad} ext {ext}"
                );
            }
        }
    }

    #[test]
    fn sdes_attribute() {
        // RFC 4568 example key, with an MKI (not supported: rejected, not misread)
        assert!(
            SrtpKey::parse_sdes(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            )
            .is_err()
        );
        let (tag, k) = SrtpKey::parse_sdes(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20",
        )
        .unwrap();
        assert_eq!(tag, 1);
        assert_eq!(k.key.len(), 16);
        assert_eq!(k.salt.len(), 14);
        let line = k.to_sdes(1);
        assert_eq!(
            line,
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
        );
        let g = key(SrtpSuite::AeadAes256Gcm, 3);
        let (_, back) = SrtpKey::parse_sdes(&g.to_sdes(2)).unwrap();
        assert_eq!(back, g);
        assert!(SrtpKey::parse_sdes("1 NULL_CIPHER inline:AAAA").is_err());
        assert!(SrtpKey::parse_sdes("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA").is_err());
        assert!(SrtpKey::parse_sdes("x").is_err());
    }
}
