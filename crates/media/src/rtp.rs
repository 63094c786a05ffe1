//! RTP (RFC 3550) zero-copy parsing and building, with header extensions
//! (RFC 8285 one-byte and two-byte forms) and the RFC 6464 client-to-mixer
//! audio level extension.

use thiserror::Error;

/// Errors returned by [`RtpPacket::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Fewer than 12 bytes, or the declared CSRCs / extension / padding do not fit.
    #[error("packet truncated")]
    Truncated,
    /// The version field is not 2.
    #[error("bad RTP version {0}")]
    BadVersion(u8),
    /// The padding length is zero or larger than the payload.
    #[error("bad padding")]
    BadPadding,
}

/// Minimum RTP header size.
pub const RTP_HEADER_LEN: usize = 12;

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    data: &'a [u8],
    csrc_count: u8,
    ext: Option<(u16, &'a [u8])>,
    payload_start: usize,
    payload_end: usize,
}

impl<'a> RtpPacket<'a> {
    /// Parses `data` as an RTP packet. Never panics; any inconsistency is an error.
    pub fn parse(data: &'a [u8]) -> Result<Self, RtpError> {
        if data.len() < RTP_HEADER_LEN {
            return Err(RtpError::Truncated);
        }
        let version = data[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = data[0] & 0x20 != 0;
        let has_ext = data[0] & 0x10 != 0;
        let csrc_count = data[0] & 0x0f;
        let mut pos = RTP_HEADER_LEN + 4 * csrc_count as usize;
        if data.len() < pos {
            return Err(RtpError::Truncated);
        }
        let mut ext = None;
        if has_ext {
            if data.len() < pos + 4 {
                return Err(RtpError::Truncated);
            }
            let profile = u16::from_be_bytes([data[pos], data[pos + 1]]);
            let words = u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
            let start = pos + 4;
            let end = start + words * 4;
            if data.len() < end {
                return Err(RtpError::Truncated);
            }
            ext = Some((profile, &data[start..end]));
            pos = end;
        }
        let mut end = data.len();
        if padding {
            let pad = data[data.len() - 1] as usize;
            if pad == 0 || pad > end - pos {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(RtpPacket {
            data,
            csrc_count,
            ext,
            payload_start: pos,
            payload_end: end,
        })
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }
    /// Padding bit.
    pub fn has_padding(&self) -> bool {
        self.data[0] & 0x20 != 0
    }
    /// Marker bit.
    pub fn marker(&self) -> bool {
        self.data[1] & 0x80 != 0
    }
    /// Payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.data[1] & 0x7f
    }
    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.data[2], self.data[3]])
    }
    /// RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.data[4], self.data[5], self.data[6], self.data[7]])
    }
    /// Synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.data[8], self.data[9], self.data[10], self.data[11]])
    }
    /// Number of contributing sources.
    pub fn csrc_count(&self) -> usize {
        self.csrc_count as usize
    }
    /// Contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let data = self.data;
        (0..self.csrc_count as usize).map(move |i| {
            let o = RTP_HEADER_LEN + 4 * i;
            u32::from_be_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
        })
    }
    /// The raw header extension: (profile, data).
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        self.ext
    }
    /// The RFC 8285 header extension elements (one-byte 0xBEDE or two-byte 0x100x forms).
    pub fn extensions(&self) -> ExtensionIter<'a> {
        match self.ext {
            Some((0xBEDE, d)) => ExtensionIter {
                data: d,
                pos: 0,
                two_byte: false,
            },
            Some((p, d)) if p & 0xfff0 == 0x1000 => ExtensionIter {
                data: d,
                pos: 0,
                two_byte: true,
            },
            _ => ExtensionIter {
                data: &[],
                pos: 0,
                two_byte: false,
            },
        }
    }
    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.data[self.payload_start..self.payload_end]
    }
    /// The RFC 6464 audio level carried in extension `id`:
    /// (voice activity flag, level in -dBov 0..=127).
    pub fn audio_level(&self, id: u8) -> Option<(bool, u8)> {
        self.extensions()
            .find(|e| e.id == id)
            .and_then(|e| e.data.first().map(|b| (b & 0x80 != 0, b & 0x7f)))
    }
}

/// One RFC 8285 header extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Local identifier (1..=14 one-byte, 1..=255 two-byte).
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

/// Iterator over RFC 8285 header extension elements. Stops at the first malformed element.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    data: &'a [u8],
    pos: usize,
    two_byte: bool,
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = ExtensionElement<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let b = *self.data.get(self.pos)?;
            if b == 0 {
                // padding byte
                self.pos += 1;
                continue;
            }
            if self.two_byte {
                let len = *self.data.get(self.pos + 1)? as usize;
                let start = self.pos + 2;
                let d = self.data.get(start..start + len)?;
                self.pos = start + len;
                return Some(ExtensionElement { id: b, data: d });
            }
            let id = b >> 4;
            if id == 15 {
                // reserved: stop processing
                self.pos = self.data.len();
                return None;
            }
            let len = (b & 0x0f) as usize + 1;
            let start = self.pos + 1;
            let d = self.data.get(start..start + len)?;
            self.pos = start + len;
            return Some(ExtensionElement { id, data: d });
        }
    }
}

/// Fields of an RTP header to build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// CSRC list (at most 15 are written).
    pub csrcs: Vec<u32>,
    /// One-byte (RFC 8285) extension elements: (id 1..=14, data 1..=16 bytes).
    pub extensions: Vec<(u8, Vec<u8>)>,
}

impl RtpHeader {
    /// Appends header + payload to `out`, padding the packet to a multiple of
    /// `pad_to` bytes when `pad_to > 1`.
    pub fn write(&self, payload: &[u8], pad_to: usize, out: &mut Vec<u8>) {
        let start = out.len();
        let cc = self.csrcs.len().min(15);
        let exts: Vec<&(u8, Vec<u8>)> = self
            .extensions
            .iter()
            .filter(|(id, d)| (1..=14).contains(id) && (1..=16).contains(&d.len()))
            .collect();
        let has_ext = !exts.is_empty();
        out.push(0x80 | if has_ext { 0x10 } else { 0 } | cc as u8);
        out.push(if self.marker { 0x80 } else { 0 } | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrcs[..cc] {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if has_ext {
            let body: usize = exts.iter().map(|(_, d)| 1 + d.len()).sum();
            let words = body.div_ceil(4);
            out.extend_from_slice(&0xBEDEu16.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            for (id, d) in exts {
                out.push((id << 4) | (d.len() as u8 - 1));
                out.extend_from_slice(d);
            }
            out.resize(out.len() + words * 4 - body, 0);
        }
        out.extend_from_slice(payload);
        if pad_to > 1 && pad_to < 256 {
            let len = out.len() - start;
            let pad = (pad_to - len % pad_to) % pad_to;
            if pad > 0 {
                out[start] |= 0x20;
                out.resize(out.len() + pad - 1, 0);
                out.push(pad as u8);
            }
        }
    }

    /// Builds header + payload into a new vector.
    pub fn to_vec(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(RTP_HEADER_LEN + payload.len() + 8);
        self.write(payload, 0, &mut v);
        v
    }
}

/// Writes a minimal 12-byte RTP header followed by `payload` (the hot path of the mixer).
pub fn write_simple(
    out: &mut Vec<u8>,
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.reserve(RTP_HEADER_LEN + payload.len());
    out.push(0x80);
    out.push(if marker { 0x80 } else { 0 } | (pt & 0x7f));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Length of the RTP header (fixed part, CSRCs and extension) if `data` starts with a
/// well-formed one; padding is not looked at (in SRTP the last byte is part of the tag).
pub fn header_len(data: &[u8]) -> Option<usize> {
    if data.len() < RTP_HEADER_LEN || data[0] >> 6 != 2 {
        return None;
    }
    let mut pos = RTP_HEADER_LEN + 4 * (data[0] & 0x0f) as usize;
    if data[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]) as usize;
        pos += 4 + words * 4;
    }
    (pos <= data.len()).then_some(pos)
}

/// Quick check used to demultiplex RTP from RTCP on one port (RFC 5761):
/// payload types 64..=95 (with marker) are RTCP.
pub fn looks_like_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// Extends 16-bit sequence numbers to 64-bit, handling wrap-around (RFC 3550 A.1 style).
#[derive(Debug, Clone, Default)]
pub struct SeqUnwrapper {
    last: Option<u64>,
}

impl SeqUnwrapper {
    /// Returns the extended sequence number of `seq`, relative to the highest seen.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        match self.last {
            None => {
                // start in the middle of the u64 range so that earlier packets stay positive
                let v = (1u64 << 32) + seq as u64;
                self.last = Some(v);
                v
            }
            Some(last) => {
                let diff = seq.wrapping_sub(last as u16) as i16 as i64;
                let v = (last as i64 + diff).max(0) as u64;
                if v > last {
                    self.last = Some(v);
                }
                v
            }
        }
    }
    /// Forgets the history.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_everything() {
        let h = RtpHeader {
            marker: true,
            payload_type: 111,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
            csrcs: vec![1, 2, 3],
            extensions: vec![(1, vec![0x80 | 42]), (3, vec![1, 2, 3])],
        };
        let mut out = Vec::new();
        h.write(b"hello", 4, &mut out);
        assert_eq!(out.len() % 4, 0);
        let p = RtpPacket::parse(&out).unwrap();
        assert!(p.marker());
        assert!(p.has_padding());
        assert_eq!(p.payload_type(), 111);
        assert_eq!(p.sequence(), 65535);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), 0x1234_5678);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.payload(), b"hello");
        assert_eq!(p.audio_level(1), Some((true, 42)));
        assert_eq!(p.audio_level(2), None);
        let e: Vec<_> = p.extensions().collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].data, &[1, 2, 3]);
    }

    #[test]
    fn two_byte_extension() {
        // profile 0x1000, id 5 len 1 (level 30, no voice), then padding
        let mut d = vec![0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[0x10, 0x00, 0, 1, 5, 1, 30, 0]);
        d.extend_from_slice(&[9, 9]);
        let p = RtpPacket::parse(&d).unwrap();
        assert_eq!(p.audio_level(5), Some((false, 30)));
        assert_eq!(p.payload(), &[9, 9]);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(
            RtpPacket::parse(&[0x40; 12]).unwrap_err(),
            RtpError::BadVersion(1)
        );
        // 15 CSRCs declared, none present
        assert_eq!(
            RtpPacket::parse(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated)
        );
        // extension declared, too long
        let d = [0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 9];
        assert_eq!(RtpPacket::parse(&d), Err(RtpError::Truncated));
        // padding larger than payload
        let d = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5];
        assert_eq!(RtpPacket::parse(&d), Err(RtpError::BadPadding));
        let d = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(RtpPacket::parse(&d), Err(RtpError::BadPadding));
        // every short prefix of a valid packet is handled
        let mut v = Vec::new();
        RtpHeader {
            csrcs: vec![7],
            extensions: vec![(1, vec![5])],
            ..Default::default()
        }
        .write(b"abc", 4, &mut v);
        for n in 0..v.len() {
            let _ = RtpPacket::parse(&v[..n]);
        }
    }

    #[test]
    fn malformed_extension_elements_stop_iteration() {
        let mut d = vec![0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        // one-byte element id 1 claims 16 bytes but only 3 follow
        d.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x1f, 1, 2, 3]);
        let p = RtpPacket::parse(&d).unwrap();
        assert_eq!(p.extensions().count(), 0);
        assert_eq!(p.audio_level(1), None);
    }

    #[test]
    fn header_length() {
        let mut v = Vec::new();
        RtpHeader {
            csrcs: vec![1, 2],
            extensions: vec![(1, vec![9])],
            ..Default::default()
        }
        .write(&[1, 2, 3], 0, &mut v);
        assert_eq!(header_len(&v), Some(12 + 8 + 8));
        assert_eq!(header_len(&v[..27]), None);
        assert_eq!(header_len(&[0x80; 11]), None);
    }

    #[test]
    fn seq_unwrap() {
        let mut u = SeqUnwrapper::default();
        let a = u.unwrap(65534);
        let b = u.unwrap(65535);
        let c = u.unwrap(0);
        let d = u.unwrap(1);
        assert_eq!(b, a + 1);
        assert_eq!(c, a + 2);
        assert_eq!(d, a + 3);
        // a late packet from before the wrap
        assert_eq!(u.unwrap(65535), b);
    }

    #[test]
    fn demux() {
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
        assert!(!looks_like_rtcp(&[0x80, 0, 0, 6]));
    }
}
