//! H.264 through openh264: decoding browsers' and phones' streams, encoding the composed
//! picture (constrained baseline, which every SIP video endpoint decodes).

use crate::{CodecError, Picture};
use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};

/// One stream's H.264 decoder.
pub struct H264Decoder {
    inner: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H264Decoder")
    }
}

impl H264Decoder {
    pub fn new() -> Result<H264Decoder, CodecError> {
        Decoder::new()
            .map(|inner| H264Decoder { inner })
            .map_err(|e| CodecError::Init("H.264", e.to_string()))
    }

    /// Decodes an access unit (Annex B: NAL units after start codes); the picture, if one
    /// is complete.
    pub fn decode(&mut self, annex_b: &[u8]) -> Result<Option<Picture>, CodecError> {
        match self.inner.decode(annex_b) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                let (sy, su, sv) = yuv.strides();
                Ok(Picture::from_planes(
                    w,
                    h,
                    [(yuv.y(), sy), (yuv.u(), su), (yuv.v(), sv)],
                ))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(CodecError::Decode("H.264", e.to_string())),
        }
    }
}

/// An encoder of one size, frame rate and bitrate: the composer's, once per layout and size.
pub struct H264Encoder {
    inner: Encoder,
    width: usize,
    height: usize,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H264Encoder({}×{})", self.width, self.height)
    }
}

impl H264Encoder {
    /// Constrained baseline, real-time, one thread, a keyframe at least every `gop` frames;
    /// `max_slice` (bytes, 0: one slice a frame) keeps each NAL unit under a packet.
    pub fn new(
        width: usize,
        height: usize,
        fps: f32,
        bitrate_bps: u32,
        gop: u32,
        max_slice: u32,
    ) -> Result<H264Encoder, CodecError> {
        let mut config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(fps))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .profile(Profile::Baseline)
            // rate control needs it: a frame the budget cannot pay for is skipped
            .skip_frames(true)
            .intra_frame_period(IntraFramePeriod::from_num_frames(gop))
            .num_threads(1);
        if max_slice > 0 {
            config = config.max_slice_len(max_slice);
        }
        Encoder::with_api_config(OpenH264API::from_source(), config)
            .map(|inner| H264Encoder {
                inner,
                width: width & !1,
                height: height & !1,
            })
            .map_err(|e| CodecError::Init("H.264", e.to_string()))
    }

    /// Encodes a picture of the encoder's size; its NAL units (no start codes). `keyframe`
    /// forces an IDR (someone's decoder asked for one).
    pub fn encode(
        &mut self,
        picture: &Picture,
        keyframe: bool,
    ) -> Result<Vec<Vec<u8>>, CodecError> {
        if picture.width != self.width || picture.height != self.height {
            return Err(CodecError::Encode(format!(
                "a {}×{} picture for a {}×{} encoder",
                picture.width, picture.height, self.width, self.height
            )));
        }
        if keyframe {
            self.inner.force_intra_frame();
        }
        let (w, h) = (picture.width, picture.height);
        let source = YUVSlices::new(
            (&picture.y, &picture.u, &picture.v),
            (w, h),
            (w, w / 2, w / 2),
        );
        let stream = self
            .inner
            .encode(&source)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        let mut nals = Vec::new();
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                if let Some(nal) = layer.nal_unit(n) {
                    let body = strip_start_code(nal);
                    if !body.is_empty() {
                        nals.push(body.to_vec());
                    }
                }
            }
        }
        Ok(nals)
    }
}

/// A NAL unit without its Annex B start code.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if let Some(rest) = nal.strip_prefix(&[0, 0, 0, 1]) {
        rest
    } else if let Some(rest) = nal.strip_prefix(&[0, 0, 1]) {
        rest
    } else {
        nal
    }
}

/// NAL units as one Annex B access unit (what a decoder takes).
pub fn annex_b(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coloured_picture_comes_back_in_its_colour() {
        let mut enc = H264Encoder::new(320, 180, 15.0, 300_000, 30, 0).expect("encoder");
        let mut dec = H264Decoder::new().expect("decoder");
        let red = Picture::filled(320, 180, (76, 85, 255));
        let nals = enc.encode(&red, true).expect("encode");
        assert!(nals.iter().any(|n| n[0] & 0x1f == 5), "an IDR");
        let out = dec
            .decode(&annex_b(&nals))
            .expect("decode")
            .expect("a picture");
        assert_eq!((out.width, out.height), (320, 180));
        let (y, u, v) = out.at(160, 90).expect("inside");
        assert!(
            y.abs_diff(76) < 8 && u.abs_diff(85) < 8 && v.abs_diff(255) < 8,
            "{y} {u} {v}"
        );
        // garbage is an error or nothing, not a panic
        let _ = dec.decode(&[0, 0, 0, 1, 0x65, 0xff, 0xff, 0x00, 0x12]);
        let _ = dec.decode(&[]);
        // a picture of another size is refused
        assert!(
            enc.encode(&Picture::filled(64, 64, (0, 0, 0)), false)
                .is_err()
        );
    }
}
