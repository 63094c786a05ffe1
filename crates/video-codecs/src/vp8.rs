//! VP8 decoding through libvpx (Debian's libvpx-dev).

use crate::{CodecError, Picture};
use std::ptr;
use vpx_sys as vpx;

/// One stream's VP8 decoder (a browser's camera or screen, one layer).
pub struct Vp8Decoder {
    // boxed: libvpx keeps pointers into the context, which must not move
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// The context is used from one thread at a time (the composer's); libvpx has no thread
// affinity.
unsafe impl Send for Vp8Decoder {}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vp8Decoder")
    }
}

impl Vp8Decoder {
    /// A decoder on one thread.
    pub fn new() -> Result<Vp8Decoder, CodecError> {
        // SAFETY: an all-zero context is what vpx_codec_dec_init expects to fill in.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        let cfg = vpx::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        // SAFETY: ctx and cfg are valid for the call; the interface is libvpx's static one.
        let err = unsafe {
            vpx::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as i32,
            )
        };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Init("VP8", format!("{err:?}")));
        }
        Ok(Vp8Decoder { ctx })
    }

    /// Decodes one whole frame; the picture it completes, if any.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<Picture>, CodecError> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| CodecError::Decode("VP8", "an empty or huge frame".into()))?;
        // SAFETY: the frame outlives the call; the context was initialised in new().
        let err = unsafe {
            vpx::vpx_codec_decode(&mut *self.ctx, frame.as_ptr(), len, ptr::null_mut(), 0)
        };
        if err != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Decode("VP8", format!("{err:?}")));
        }
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        let mut last = None;
        loop {
            // SAFETY: iter is the iterator libvpx asks for; the image it returns is valid
            // until the next call on this context.
            let img = unsafe { vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: not null, owned by libvpx until the next decode.
            let img = unsafe { &*img };
            if img.fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 {
                continue;
            }
            let (w, h) = (img.d_w as usize, img.d_h as usize);
            let mut planes: [(&[u8], usize); 3] = [(&[], 0); 3];
            let mut ok = true;
            for (i, plane) in planes.iter_mut().enumerate() {
                let Ok(stride) = usize::try_from(img.stride[i]) else {
                    ok = false;
                    break;
                };
                let rows = if i == 0 { h } else { h.div_ceil(2) };
                if img.planes[i].is_null() || stride == 0 {
                    ok = false;
                    break;
                }
                // SAFETY: libvpx's plane holds `rows` rows of `stride` bytes.
                let data = unsafe { std::slice::from_raw_parts(img.planes[i], stride * rows) };
                *plane = (data, stride);
            }
            if ok {
                last = Picture::from_planes(w, h, planes);
            }
        }
        Ok(last)
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in new(), destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vp8_stream_decodes_to_its_colour_and_garbage_is_an_error() {
        let mut enc = vpx_encode::Encoder::new(vpx_encode::Config {
            width: 320,
            height: 180,
            timebase: [1, 1000],
            bitrate: 300,
            codec: vpx_encode::VideoCodecId::VP8,
        })
        .expect("encoder");
        let green = Picture::filled(320, 180, (150, 44, 21));
        let mut i420 = green.y.clone();
        i420.extend_from_slice(&green.u);
        i420.extend_from_slice(&green.v);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for pts in 0..3 {
            for f in enc.encode(pts * 66, &i420).expect("encode") {
                frames.push(f.data.to_vec());
            }
        }
        let mut finish = enc.finish().expect("finish");
        while let Some(f) = finish.next().expect("flush") {
            frames.push(f.data.to_vec());
        }
        assert!(!frames.is_empty());
        let mut dec = Vp8Decoder::new().expect("decoder");
        let mut last = None;
        for f in &frames {
            if let Some(p) = dec.decode(f).expect("decode") {
                last = Some(p);
            }
        }
        let p = last.expect("a picture");
        assert_eq!((p.width, p.height), (320, 180));
        let (y, u, v) = p.at(100, 100).expect("inside");
        assert!(
            y.abs_diff(150) < 8 && u.abs_diff(44) < 8 && v.abs_diff(21) < 8,
            "{y} {u} {v}"
        );
        // garbage: an error or no picture, never a panic
        let _ = dec.decode(&[0xff; 40]);
        assert!(dec.decode(&[]).is_err());
    }
}
