//! Is this RTP payload the start of a keyframe? An SFU switches a viewer to another stream
//! or layer only there (anything else would show garbage until the next keyframe).
//! Payloads come from browsers and phones: every length is checked.

use super::VideoCodec;

/// The payload starts a keyframe (VP8: the first packet of a key frame; H.264: an IDR slice
/// or the parameter sets that come before one, alone, aggregated or fragmented).
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
    }
}

/// RFC 7741: the payload descriptor, then (in the first packet of a frame) the VP8 payload
/// header whose lowest bit is 0 for a key frame.
fn vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&x) = payload.get(at) else {
            return false;
        };
        at += 1;
        if x & 0x80 != 0 {
            // picture id: 7 or 15 bits
            let Some(&pid) = payload.get(at) else {
                return false;
            };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    payload.get(at).is_some_and(|h| h & 0x01 == 0)
}

/// RFC 6184: single NAL units, STAP-A aggregates and FU-A fragments.
fn h264_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 | 7 => true,
        // STAP-A: 16-bit sizes, each followed by a NAL unit
        24 => {
            let mut at = 1;
            while at + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                let Some(&nal) = payload.get(at + 2) else {
                    return false;
                };
                if size == 0 {
                    return false;
                }
                if matches!(nal & 0x1f, 5 | 7) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        // FU-A: the start fragment names the type
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == 5),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_key_and_delta_frames_are_told_apart() {
        // S=1, PID=0, no extension; payload header P=0 (key) then P=1 (delta)
        assert!(is_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x01, 0x9d]));
        // extended: I with a 15-bit picture id, L, T
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x00]
        ));
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x01]
        ));
        // not the start of the frame; cut short; empty
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x81]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn h264_idr_sps_stap_and_fu_a() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 1, 2]));
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 1]));
        // STAP-A with an SPS inside
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x78, 0, 2, 0x09, 0x10, 0, 2, 0x67, 0x42]
        ));
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0, 2, 0x09, 0x10]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0, 0, 0x67]));
        // FU-A start of an IDR, and its middle
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 1]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 1]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c]));
        assert!(!is_keyframe(VideoCodec::H264, &[]));
    }
}
