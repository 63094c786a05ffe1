//! Video frames in and out of RTP: VP8 (RFC 7741) and H.264 (RFC 6184) payloads put back
//! together into whole frames for a decoder, and H.264 access units cut into payloads.
//! What comes in is a peer's: every length is checked; a frame with a packet missing is not
//! handed on, and after a loss only a keyframe starts the stream again.

use super::VideoCodec;
use super::keyframe::is_keyframe;

/// The largest frame put together (a 1080p keyframe is well under it); beyond, the frame is
/// dropped (a peer cannot make us hold more).
pub const MAX_FRAME: usize = 2 * 1024 * 1024;

/// Where a VP8 payload's data starts, and whether it starts a frame.
pub fn vp8_payload_start(payload: &[u8]) -> Option<(usize, bool)> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            let pid = *payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    (at <= payload.len()).then_some((at, first & 0x10 != 0 && first & 0x07 == 0))
}

/// Puts one stream's packets back into frames (VP8 frames, H.264 Annex B access units).
#[derive(Debug)]
pub struct FrameAssembler {
    codec: VideoCodec,
    frame: Vec<u8>,
    /// The frame being put together has lost a packet.
    broken: bool,
    /// The frame started (its first packet was seen).
    started: bool,
    /// The frame begins with a keyframe.
    key: bool,
    next_seq: Option<u64>,
    /// A packet was lost since the last keyframe: only a keyframe goes on.
    need_key: bool,
}

impl FrameAssembler {
    /// An assembler waiting for its stream's first keyframe.
    pub fn new(codec: VideoCodec) -> FrameAssembler {
        FrameAssembler {
            codec,
            frame: Vec::new(),
            broken: false,
            started: false,
            key: false,
            next_seq: None,
            need_key: true,
        }
    }

    /// The stream lost its place (a packet missing): it waits for a keyframe.
    pub fn needs_keyframe(&self) -> bool {
        self.need_key
    }

    /// A packet (extended sequence number, marker, payload); a whole frame when this packet
    /// ends one that is complete, with whether it is a keyframe.
    pub fn push(&mut self, seq: u64, marker: bool, payload: &[u8]) -> Option<(Vec<u8>, bool)> {
        if let Some(expected) = self.next_seq {
            if seq < expected {
                return None; // late or repeated: its place is gone
            }
            if seq > expected {
                self.broken = true;
                self.need_key = true;
            }
        }
        self.next_seq = Some(seq + 1);
        let starts = match self.codec {
            VideoCodec::Vp8 => vp8_payload_start(payload).is_some_and(|(_, s)| s),
            // an H.264 access unit starts after a marker: the assembler is empty then
            VideoCodec::H264 => !self.started,
        };
        if starts {
            self.frame.clear();
            self.broken = false;
            self.started = true;
            self.key = is_keyframe(self.codec, payload);
        } else if !self.started {
            self.broken = true;
        }
        if !self.broken && !self.append(payload) {
            self.broken = true;
        }
        if self.frame.len() > MAX_FRAME {
            self.broken = true;
            self.frame.clear();
        }
        if !marker {
            return None;
        }
        self.started = false;
        if self.codec == VideoCodec::H264 && !self.key {
            // a keyframe may start with parameter sets and reach the IDR later
            self.key = h264_has_idr(&self.frame);
        }
        let whole = !self.broken && !self.frame.is_empty();
        self.broken = false;
        if !whole || (self.need_key && !self.key) {
            self.frame.clear();
            return None;
        }
        self.need_key = false;
        Some((std::mem::take(&mut self.frame), self.key))
    }

    /// Appends a payload's media; false when it is not a payload of the codec.
    fn append(&mut self, payload: &[u8]) -> bool {
        match self.codec {
            VideoCodec::Vp8 => match vp8_payload_start(payload) {
                Some((at, _)) => {
                    self.frame.extend_from_slice(&payload[at..]);
                    true
                }
                None => false,
            },
            VideoCodec::H264 => h264_append(&mut self.frame, payload),
        }
    }
}

fn h264_append(out: &mut Vec<u8>, payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        1..=23 => {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(payload);
            true
        }
        24 => {
            let mut at = 1;
            while at < payload.len() {
                let Some(size) = payload
                    .get(at..at + 2)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return false;
                };
                let Some(nal) = payload.get(at + 2..at + 2 + size).filter(|n| !n.is_empty()) else {
                    return false;
                };
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(nal);
                at += 2 + size;
            }
            true
        }
        28 => {
            let Some(&fu) = payload.get(1) else {
                return false;
            };
            if fu & 0x80 != 0 {
                out.extend_from_slice(&[0, 0, 0, 1, (header & 0xe0) | (fu & 0x1f)]);
            }
            out.extend_from_slice(&payload[2..]);
            true
        }
        _ => false,
    }
}

/// An Annex B access unit holds an IDR slice.
fn h264_has_idr(au: &[u8]) -> bool {
    au.windows(5)
        .any(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 5)
}

/// H.264 NAL units (no start codes) as RTP payloads with their marker: a NAL that fits goes
/// alone; a larger one in FU-A fragments (packetization mode 1). In mode 0 a NAL too large
/// for `mtu` cannot be sent and is left out (the encoder is told to keep slices smaller).
pub fn packetize_h264(nals: &[Vec<u8>], mtu: usize, mode1: bool) -> Vec<(Vec<u8>, bool)> {
    let mut out: Vec<(Vec<u8>, bool)> = Vec::new();
    let mtu = mtu.max(16);
    for nal in nals.iter().filter(|n| !n.is_empty()) {
        if nal.len() <= mtu {
            out.push((nal.clone(), false));
            continue;
        }
        if !mode1 {
            continue;
        }
        let (header, body) = (nal[0], &nal[1..]);
        let chunks: Vec<&[u8]> = body.chunks(mtu - 2).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut fu = (header & 0x1f) & 0x1f;
            if i == 0 {
                fu |= 0x80;
            }
            if i == last {
                fu |= 0x40;
            }
            let mut p = Vec::with_capacity(chunk.len() + 2);
            p.push((header & 0xe0) | 28);
            p.push(fu);
            p.extend_from_slice(chunk);
            out.push((p, false));
        }
    }
    if let Some(last) = out.last_mut() {
        last.1 = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_fragments_come_back_whole() {
        let sps = vec![0x67, 0x42, 0xc0, 0x1f];
        let idr: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000).map(|i| i as u8))
            .collect();
        let packets = packetize_h264(&[sps.clone(), idr.clone()], 1200, true);
        assert!(packets.len() >= 4);
        assert!(packets.iter().all(|(p, _)| p.len() <= 1200));
        assert_eq!(packets.iter().filter(|(_, m)| *m).count(), 1);
        let mut asm = FrameAssembler::new(VideoCodec::H264);
        let mut got = None;
        for (i, (p, m)) in packets.iter().enumerate() {
            got = asm.push(100 + i as u64, *m, p);
        }
        let (frame, key) = got.expect("a frame");
        assert!(key);
        let mut want = vec![0, 0, 0, 1];
        want.extend_from_slice(&sps);
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(&idr);
        assert_eq!(frame, want);
        // mode 0 leaves out what does not fit
        assert_eq!(packetize_h264(&[sps, idr], 1200, false).len(), 1);
    }

    #[test]
    fn a_lost_packet_drops_the_frame_and_waits_for_a_keyframe() {
        let mut asm = FrameAssembler::new(VideoCodec::Vp8);
        // a keyframe in two packets
        assert!(asm.push(1, false, &[0x10, 0x00, 1, 2]).is_none());
        let (frame, key) = asm.push(2, true, &[0x00, 3, 4]).expect("frame");
        assert_eq!((frame, key), (vec![0x00, 1, 2, 3, 4], true));
        // a delta frame loses its second packet
        assert!(asm.push(3, false, &[0x10, 0x01, 5]).is_none());
        assert!(
            asm.push(5, true, &[0x10, 0x01, 6]).is_none(),
            "after a loss"
        );
        assert!(asm.needs_keyframe());
        assert!(
            asm.push(6, true, &[0x10, 0x01, 7]).is_none(),
            "a delta still waits"
        );
        assert_eq!(
            asm.push(7, true, &[0x10, 0x00, 8]),
            Some((vec![0x00, 8], true))
        );
        // late and repeated packets are ignored; garbage is no frame
        assert!(asm.push(7, true, &[0x10, 0x01, 8]).is_none());
        assert!(asm.push(8, true, &[0x90]).is_none());
    }
}
