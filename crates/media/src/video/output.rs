//! The composed picture for SIP video terminals (and, next, recordings and streams): encoded
//! **once per size**, whoever receives it — H.264 Constrained Baseline, slices kept under a
//! packet (so one packetization serves terminals of packetization mode 0 and 1), a keyframe
//! every [`GOP`] and whenever a receiver lost the picture (at most every [`KEYFRAME_GAP`]: a
//! terminal sending PLI after PLI cannot make every frame a keyframe).

use std::time::Duration;

use super::compose::Composer;
use super::rtp::packetize_h264;
use super::sip_leg::ComposedFrame;
use conclave_video_codecs::{CodecError, H264Encoder};

/// Frames a second.
pub const FPS: u32 = 30;
/// A keyframe at least this often (terminals that send no feedback recover by it).
pub const GOP: Duration = Duration::from_secs(2);
/// Keyframes on request at most this often.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(500);
/// A slice's largest size, and a packet's payload.
const SLICE: u32 = 1100;
const MTU: usize = 1200;

/// The bitrate of a size, in bit/s.
fn bitrate(width: usize, height: usize) -> u32 {
    match width * height {
        p if p >= 1280 * 720 => 1_500_000,
        p if p >= 640 * 360 => 600_000,
        _ => 250_000,
    }
}

struct Output {
    size: (usize, usize),
    encoder: H264Encoder,
}

/// The sizes wanted now and their encoders.
#[derive(Default)]
pub struct Outputs {
    outputs: Vec<Output>,
    keyframe_wanted: bool,
    last_keyframe: Option<Duration>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<_> = self.outputs.iter().map(|o| o.size).collect();
        write!(f, "Outputs({sizes:?})")
    }
}

impl Outputs {
    /// The sizes receivers want (an encoder per size; one that stays keeps its state).
    pub fn set_sizes(&mut self, sizes: &[(usize, usize)]) -> Result<(), CodecError> {
        self.outputs.retain(|o| sizes.contains(&o.size));
        for &size in sizes {
            if self.outputs.iter().any(|o| o.size == size) {
                continue;
            }
            let gop = GOP.as_secs() as u32 * FPS;
            let encoder = H264Encoder::new(
                size.0,
                size.1,
                FPS as f32,
                bitrate(size.0, size.1),
                gop,
                SLICE,
            )?;
            self.outputs.push(Output { size, encoder });
            // a new receiver starts with a keyframe
            self.keyframe_wanted = true;
        }
        Ok(())
    }

    /// Nothing to encode.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// A receiver lost the picture.
    pub fn want_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }

    /// Encodes the composer's canvas (drawn by the caller) for every size: the frames to
    /// send. `now` is the composer's clock; the frame's RTP time comes from it.
    pub fn encode(&mut self, now: Duration, composer: &mut Composer) -> Vec<ComposedFrame> {
        let key = self.keyframe_wanted
            && self
                .last_keyframe
                .is_none_or(|t| now.saturating_sub(t) >= KEYFRAME_GAP);
        if key {
            self.keyframe_wanted = false;
            self.last_keyframe = Some(now);
        }
        let timestamp = (now.as_micros() * 9 / 100) as u32;
        let mut frames = Vec::with_capacity(self.outputs.len());
        for output in &mut self.outputs {
            let (w, h) = output.size;
            let canvas = composer.canvas();
            let encoded = if (canvas.width, canvas.height) == (w, h) {
                output.encoder.encode(canvas, key)
            } else {
                let picture = composer.scaled(w, h);
                output.encoder.encode(&picture, key)
            };
            let nals = match encoded {
                Ok(nals) => nals,
                Err(err) => {
                    tracing::debug!(%err, "the composed picture was not encoded");
                    continue;
                }
            };
            if nals.is_empty() {
                // rate control skipped the frame
                continue;
            }
            let keyframe = nals
                .iter()
                .any(|n| n.first().is_some_and(|b| b & 0x1f == 5));
            frames.push(ComposedFrame {
                size: output.size,
                timestamp,
                keyframe,
                packets: packetize_h264(&nals, MTU, true),
            });
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::rtp::FrameAssembler;
    use crate::video::{StreamKey, StreamKind, Tile, TileSize, VideoCodec};
    use conclave_video_codecs::H264Decoder;

    #[test]
    fn one_encode_per_size_decodes_back_and_keyframes_come_when_asked() {
        let mut composer = Composer::new(1280, 720);
        composer.set_tiles(vec![Tile {
            stream: Some(StreamKey {
                member: 1,
                kind: StreamKind::Camera,
            }),
            size: TileSize::Big,
        }]);
        composer.compose();
        let mut outputs = Outputs::default();
        outputs.set_sizes(&[(1280, 720), (320, 180)]).unwrap();
        let mut decoders = [H264Decoder::new().unwrap(), H264Decoder::new().unwrap()];
        let mut assemblers = [
            FrameAssembler::new(VideoCodec::H264),
            FrameAssembler::new(VideoCodec::H264),
        ];
        let mut seqs = [0u64; 2];
        let mut keyframes = 0;
        for i in 0..10u64 {
            let now = Duration::from_millis(i * 100);
            if i == 5 {
                outputs.want_keyframe();
            }
            let frames = outputs.encode(now, &mut composer);
            assert_eq!(frames.len(), 2, "a frame per size");
            for (k, frame) in frames.iter().enumerate() {
                keyframes += usize::from(frame.keyframe);
                assert!(frame.packets.iter().all(|(p, _)| p.len() <= MTU));
                let mut whole = None;
                for (payload, marker) in &frame.packets {
                    whole = assemblers[k].push(seqs[k], *marker, payload).or(whole);
                    seqs[k] += 1;
                }
                let decoder = &mut decoders[k];
                let (annex_b, _) = whole.expect("a whole frame");
                let picture = decoder.decode(&annex_b).unwrap().expect("a picture");
                assert_eq!((picture.width, picture.height), frame.size);
            }
        }
        assert_eq!(
            keyframes, 4,
            "the first frame of each size, and the one asked for"
        );
    }
}
