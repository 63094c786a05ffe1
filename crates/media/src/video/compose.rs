//! The composed picture of a room: what phones with video, recordings and live streams show.
//! Each tile's stream is put back into frames and decoded (only the tiles shown), scaled into
//! its place on the canvas (I420), and the canvas is encoded **once** per codec and size for
//! everyone who receives it.
//!
//! The geometry follows the tiles' sizes (the meeting's layout): 1, 2×2, 1+7 (a 4×4 grid, the
//! large tile 3×3), 1+21 (5×5, the large tile 2×2: every tile 16:9), 2+21 (9×5, two large
//! tiles 4×3). A camera fills its tile (cropped to fit), a shared screen is shown whole
//! (letterboxed); an empty tile, or one whose stream has not sent a picture yet, is dark.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rustc_hash::FxHashMap as HashMap;

use super::rtp::FrameAssembler;
use super::{StreamKind, Tile, TileSize, VideoCodec};
use conclave_video_codecs::{CodecError, H264Decoder, Picture, Vp8Decoder};

/// Where a tile is drawn, in pixels (even).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: usize,
    /// Top.
    pub y: usize,
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
}

/// The dark grey of an empty tile, and the black around a letterboxed screen (Y, Cb, Cr).
const EMPTY: (u8, u8, u8) = (32, 128, 128);
const BLACK: (u8, u8, u8) = (16, 128, 128);
/// The gap between tiles, in pixels.
const GAP: usize = 2;

/// A large tile's cells in a layout's grid: column, row, columns wide, rows high.
type Span = (usize, usize, usize, usize);

/// The tiles' places on a `width`×`height` canvas, in the tiles' order.
pub fn geometry(tiles: &[TileSize], width: usize, height: usize) -> Vec<Rect> {
    let big = tiles.iter().filter(|t| **t == TileSize::Big).count();
    let (cols, rows, spans): (usize, usize, &[Span]) = match (big, tiles.len()) {
        (0, 1) | (1, 1) => (1, 1, &[(0, 0, 1, 1)]),
        (1, 8) => (4, 4, &[(0, 0, 3, 3)]),
        (1, 22) => (5, 5, &[(0, 0, 2, 2)]),
        (2, 23) => (9, 5, &[(0, 0, 4, 3), (4, 0, 4, 3)]),
        // 2×2 and anything else: a square-ish grid of equal tiles
        (_, n) => {
            let cols = (1..=n.max(1)).find(|c| c * c >= n).unwrap_or(1);
            (cols, n.max(1).div_ceil(cols), &[])
        }
    };
    let cell = |col: usize, row: usize, wspan: usize, hspan: usize| {
        let x0 = width * col / cols;
        let x1 = width * (col + wspan) / cols;
        let y0 = height * row / rows;
        let y1 = height * (row + hspan) / rows;
        let even = |v: usize| v & !1;
        Rect {
            x: even(x0 + GAP / 2),
            y: even(y0 + GAP / 2),
            w: even(x1.saturating_sub(x0 + GAP)).max(2),
            h: even(y1.saturating_sub(y0 + GAP)).max(2),
        }
    };
    let mut taken = vec![false; cols * rows];
    let mut rects = Vec::with_capacity(tiles.len());
    for &(c, r, w, h) in spans {
        for row in r..r + h {
            for col in c..c + w {
                taken[row * cols + col] = true;
            }
        }
        rects.push(cell(c, r, w, h));
    }
    let mut free = (0..cols * rows).filter(|i| !taken[*i]);
    while rects.len() < tiles.len() {
        match free.next() {
            Some(i) => rects.push(cell(i % cols, i / cols, 1, 1)),
            None => break,
        }
    }
    rects
}

enum Decoder {
    Vp8(Vp8Decoder),
    H264(H264Decoder),
}

/// One tile's incoming stream: its frames and decoder, its last picture.
struct TileStream {
    codec: VideoCodec,
    frames: FrameAssembler,
    decoder: Decoder,
    picture: Option<Picture>,
    /// The decoder failed or a packet was lost: a keyframe is wanted.
    wants_key: bool,
    /// The tile shows someone else now and no keyframe came since: the previous member's
    /// stream may still come (the SFU forwards it until the next one's keyframe).
    awaiting: bool,
    /// Canvases drawn since a frame was last decoded.
    idle: u32,
}

/// A tile waiting for its next member's first keyframe goes dark after this many canvases
/// without any frame (half a second at 30 fps): the previous member's picture is not shown
/// for someone who sends none.
const AWAITING_IDLE: u32 = 15;

/// The composer's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComposerStats {
    /// Frames decoded.
    pub decoded: u64,
    /// Frames a decoder refused.
    pub decode_errors: u64,
    /// Canvases drawn.
    pub composed: u64,
}

/// See the module documentation. One per room that has a composed picture.
pub struct Composer {
    width: usize,
    height: usize,
    tiles: Vec<Tile>,
    rects: Vec<Rect>,
    /// By tile: the stream it receives (the SFU sends each tile one continuous stream).
    streams: HashMap<usize, TileStream>,
    canvas: Picture,
    resizer: Resizer,
    scratch: Vec<u8>,
    stats: ComposerStats,
}

impl std::fmt::Debug for Composer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Composer({}×{}, {} tiles)",
            self.width,
            self.height,
            self.tiles.len()
        )
    }
}

impl Composer {
    /// A canvas of this size (even).
    pub fn new(width: usize, height: usize) -> Composer {
        let canvas = Picture::filled(width, height, EMPTY);
        Composer {
            width: canvas.width,
            height: canvas.height,
            tiles: Vec::new(),
            rects: Vec::new(),
            streams: HashMap::default(),
            canvas,
            resizer: Resizer::new(),
            scratch: Vec::new(),
            stats: ComposerStats::default(),
        }
    }

    /// The layout's tiles changed. A tile that shows someone else keeps its decoder and last
    /// picture: the SFU goes on sending the previous member until the next one's keyframe,
    /// on the same continuous stream, so the tile changes at that keyframe without going
    /// dark; an empty tile starts afresh.
    pub fn set_tiles(&mut self, tiles: Vec<Tile>) {
        let sizes: Vec<TileSize> = tiles.iter().map(|t| t.size).collect();
        self.rects = geometry(&sizes, self.width, self.height);
        for (i, tile) in tiles.iter().enumerate() {
            if self.tiles.get(i).map(|t| t.stream) == Some(tile.stream) {
                continue;
            }
            match (tile.stream, self.streams.get_mut(&i)) {
                (Some(_), Some(stream)) => {
                    stream.awaiting = true;
                    stream.idle = 0;
                }
                _ => {
                    self.streams.remove(&i);
                }
            }
        }
        self.streams.retain(|i, _| *i < tiles.len());
        self.tiles = tiles;
    }

    /// A packet of the stream shown in `tile` (from the SFU, its slot numbering).
    pub fn push(
        &mut self,
        tile: usize,
        codec: VideoCodec,
        seq: u64,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), CodecError> {
        if tile >= self.tiles.len() {
            return Ok(());
        }
        if self.streams.get(&tile).is_some_and(|s| s.codec != codec) {
            self.streams.remove(&tile);
        }
        let stream = match self.streams.entry(tile) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(TileStream {
                codec,
                frames: FrameAssembler::new(codec),
                decoder: match codec {
                    VideoCodec::Vp8 => Decoder::Vp8(Vp8Decoder::new()?),
                    VideoCodec::H264 => Decoder::H264(H264Decoder::new()?),
                },
                picture: None,
                wants_key: true,
                awaiting: false,
                idle: 0,
            }),
        };
        let Some((frame, key)) = stream.frames.push(seq, marker, payload) else {
            if stream.frames.needs_keyframe() {
                stream.wants_key = true;
            }
            return Ok(());
        };
        let decoded = match &mut stream.decoder {
            Decoder::Vp8(d) => d.decode(&frame),
            Decoder::H264(d) => d.decode(&frame),
        };
        match decoded {
            Ok(Some(picture)) => {
                stream.picture = Some(picture);
                stream.wants_key = false;
                stream.idle = 0;
                if key {
                    stream.awaiting = false;
                }
                self.stats.decoded += 1;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(err) => {
                stream.wants_key = true;
                self.stats.decode_errors += 1;
                Err(err)
            }
        }
    }

    /// Tiles whose stream needs a keyframe (lost packets, a decoder error, a new stream).
    pub fn keyframes_wanted(&self) -> Vec<usize> {
        let mut tiles: Vec<usize> = self
            .streams
            .iter()
            .filter(|(_, s)| s.wants_key)
            .map(|(i, _)| *i)
            .collect();
        tiles.sort_unstable();
        tiles
    }

    /// Draws the canvas from every tile's last picture.
    pub fn compose(&mut self) -> &Picture {
        for stream in self.streams.values_mut() {
            stream.idle = stream.idle.saturating_add(1);
            if stream.awaiting && stream.idle > AWAITING_IDLE {
                stream.picture = None;
            }
        }
        fill(&mut self.canvas, None, EMPTY);
        for i in 0..self.tiles.len().min(self.rects.len()) {
            let rect = self.rects[i];
            let screen = self.tiles[i]
                .stream
                .is_some_and(|s| s.kind == StreamKind::Screen);
            let Some(picture) = self.streams.get(&i).and_then(|s| s.picture.as_ref()) else {
                continue;
            };
            let target = if screen {
                fill(&mut self.canvas, Some(rect), BLACK);
                letterbox(rect, picture.width, picture.height)
            } else {
                rect
            };
            let crop = if screen {
                None
            } else {
                Some(cover(picture.width, picture.height, rect.w, rect.h))
            };
            draw(
                &mut self.resizer,
                &mut self.scratch,
                &mut self.canvas,
                picture,
                target,
                crop,
            );
        }
        self.stats.composed += 1;
        &self.canvas
    }

    /// The canvas as last drawn, at another size (for terminals whose level takes less).
    pub fn scaled(&mut self, width: usize, height: usize) -> Picture {
        let mut out = Picture::filled(width, height, BLACK);
        let rect = Rect {
            x: 0,
            y: 0,
            w: out.width,
            h: out.height,
        };
        draw(
            &mut self.resizer,
            &mut self.scratch,
            &mut out,
            &self.canvas,
            rect,
            None,
        );
        out
    }

    /// The canvas as last drawn.
    pub fn canvas(&self) -> &Picture {
        &self.canvas
    }

    /// Where each tile is drawn.
    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    /// Figures so far.
    pub fn stats(&self) -> ComposerStats {
        self.stats
    }
}

/// A picture as a JPEG (what a console shows of the composed picture): the studio-range
/// I420 widened to JPEG's full range.
pub fn jpeg(picture: &Picture, quality: u8) -> Vec<u8> {
    let (w, h) = (picture.width, picture.height);
    let luma = |y: u8| ((i32::from(y) - 16) * 255 / 219).clamp(0, 255) as u8;
    let chroma = |c: u8| ((i32::from(c) - 128) * 255 / 224 + 128).clamp(0, 255) as u8;
    let mut data = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let c = (row / 2) * (w / 2) + col / 2;
            data.push(luma(picture.y[row * w + col]));
            data.push(chroma(picture.u[c]));
            data.push(chroma(picture.v[c]));
        }
    }
    let mut out = Vec::new();
    let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
        return out;
    };
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    if encoder
        .encode(&data, w16, h16, jpeg_encoder::ColorType::Ycbcr)
        .is_err()
    {
        out.clear();
    }
    out
}

/// The part of a `sw`×`sh` picture that fills a `tw`×`th` tile (its centre, same aspect).
fn cover(sw: usize, sh: usize, tw: usize, th: usize) -> (f64, f64, f64, f64) {
    let (sw, sh, tw, th) = (sw as f64, sh as f64, tw as f64, th as f64);
    if sw * th > tw * sh {
        let w = sh * tw / th;
        ((sw - w) / 2.0, 0.0, w, sh)
    } else {
        let h = sw * th / tw;
        (0.0, (sh - h) / 2.0, sw, h)
    }
}

/// Where a `sw`×`sh` picture goes whole inside a tile (even).
fn letterbox(rect: Rect, sw: usize, sh: usize) -> Rect {
    let (sw, sh) = (sw.max(1), sh.max(1));
    let (w, h) = if sw * rect.h > rect.w * sh {
        (rect.w, (rect.w * sh / sw) & !1)
    } else {
        ((rect.h * sw / sh) & !1, rect.h)
    };
    let (w, h) = (w.max(2), h.max(2));
    Rect {
        x: (rect.x + (rect.w - w) / 2) & !1,
        y: (rect.y + (rect.h - h) / 2) & !1,
        w,
        h,
    }
}

/// Fills the canvas (or a rectangle of it) with one colour.
fn fill(canvas: &mut Picture, rect: Option<Rect>, (y, u, v): (u8, u8, u8)) {
    let r = rect.unwrap_or(Rect {
        x: 0,
        y: 0,
        w: canvas.width,
        h: canvas.height,
    });
    let cw = canvas.width;
    for row in r.y..(r.y + r.h).min(canvas.height) {
        let start = row * cw + r.x;
        let end = (start + r.w).min(row * cw + cw);
        canvas.y[start..end].fill(y);
    }
    let (hw, cx, cy, chw, chh) = (cw / 2, r.x / 2, r.y / 2, r.w / 2, r.h / 2);
    for row in cy..(cy + chh).min(canvas.height / 2) {
        let start = row * hw + cx;
        let end = (start + chw).min(row * hw + hw);
        canvas.u[start..end].fill(u);
        canvas.v[start..end].fill(v);
    }
}

/// Scales a picture (or the `crop` of it) into a rectangle of the canvas, plane by plane.
fn draw(
    resizer: &mut Resizer,
    scratch: &mut Vec<u8>,
    canvas: &mut Picture,
    picture: &Picture,
    rect: Rect,
    crop: Option<(f64, f64, f64, f64)>,
) {
    // per plane: source, its size, the canvas's plane, the subsampling, the canvas stride
    #[allow(clippy::type_complexity)]
    let planes: [(&[u8], usize, usize, &mut Vec<u8>, usize, usize); 3] = [
        (
            &picture.y,
            picture.width,
            picture.height,
            &mut canvas.y,
            1,
            canvas.width,
        ),
        (
            &picture.u,
            picture.width / 2,
            picture.height / 2,
            &mut canvas.u,
            2,
            canvas.width / 2,
        ),
        (
            &picture.v,
            picture.width / 2,
            picture.height / 2,
            &mut canvas.v,
            2,
            canvas.width / 2,
        ),
    ];
    for (src, sw, sh, dst, div, dst_stride) in planes {
        let (tw, th) = (rect.w / div, rect.h / div);
        if sw == 0 || sh == 0 || tw == 0 || th == 0 {
            continue;
        }
        let Ok(source) = ImageRef::new(sw as u32, sh as u32, src, PixelType::U8) else {
            continue;
        };
        scratch.clear();
        scratch.resize(tw * th, 0);
        let Ok(mut target) = Image::from_slice_u8(tw as u32, th as u32, scratch, PixelType::U8)
        else {
            continue;
        };
        // a fixed-size bilinear kernel: scaling down several times over is where the time
        // goes, and a wide convolution kernel costs several times as much (docs/performance.md)
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear));
        if let Some((x, y, w, h)) = crop {
            let d = div as f64;
            options = options.crop(x / d, y / d, w / d, h / d);
        }
        if resizer.resize(&source, &mut target, &options).is_err() {
            continue;
        }
        let (x0, y0) = (rect.x / div, rect.y / div);
        for row in 0..th {
            let at = (y0 + row) * dst_stride + x0;
            if let Some(line) = dst.get_mut(at..at + tw) {
                line.copy_from_slice(&scratch[row * tw..row * tw + tw]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::StreamKey;
    use crate::video::rtp::packetize_h264;
    use conclave_video_codecs::H264Encoder;

    const RED: (u8, u8, u8) = (76, 85, 255);
    const GREEN: (u8, u8, u8) = (150, 44, 21);
    const BLUE: (u8, u8, u8) = (29, 255, 107);

    fn close((a, b, c): (u8, u8, u8), (x, y, z): (u8, u8, u8)) -> bool {
        a.abs_diff(x) < 12 && b.abs_diff(y) < 12 && c.abs_diff(z) < 12
    }

    #[test]
    fn every_layout_has_its_tiles_inside_the_canvas_without_overlap() {
        for (big, medium, small) in [(1, 0, 0), (0, 4, 0), (1, 0, 7), (1, 0, 21), (2, 0, 21)] {
            let sizes: Vec<TileSize> = std::iter::repeat_n(TileSize::Big, big)
                .chain(std::iter::repeat_n(TileSize::Medium, medium))
                .chain(std::iter::repeat_n(TileSize::Small, small))
                .collect();
            let rects = geometry(&sizes, 1280, 720);
            assert_eq!(rects.len(), sizes.len(), "{sizes:?}");
            for (i, a) in rects.iter().enumerate() {
                assert!(a.x + a.w <= 1280 && a.y + a.h <= 720, "{a:?}");
                for b in &rects[i + 1..] {
                    let apart = a.x + a.w <= b.x
                        || b.x + b.w <= a.x
                        || a.y + a.h <= b.y
                        || b.y + b.h <= a.y;
                    assert!(apart, "{a:?} {b:?}");
                }
            }
            // the large tiles are the largest
            if big > 0 && rects.len() > big {
                assert!(rects[0].w > rects[big].w * 2 - 10, "{rects:?}");
            }
        }
    }

    /// A tile that shows someone else (a polling turn) keeps the previous member's picture
    /// while the SFU still sends it, changes at the next member's keyframe, and goes dark
    /// when the next member sends nothing.
    #[test]
    fn a_tile_changes_member_at_the_keyframe_without_going_dark() {
        let who = |m: u64| Tile {
            stream: Some(StreamKey {
                member: m,
                kind: StreamKind::Camera,
            }),
            size: TileSize::Big,
        };
        let mut composer = Composer::new(320, 180);
        composer.set_tiles(vec![who(1)]);
        let mut red = H264Encoder::new(320, 180, 15.0, 300_000, 300, 0).expect("encoder");
        let mut green = H264Encoder::new(320, 180, 15.0, 300_000, 300, 0).expect("encoder");
        let mut seq = 10u64;
        let mut send = |composer: &mut Composer, enc: &mut H264Encoder, colour, key| {
            let nals = enc
                .encode(&Picture::filled(320, 180, colour), key)
                .expect("encode");
            for (p, m) in packetize_h264(&nals, 1200, true) {
                composer
                    .push(0, VideoCodec::H264, seq, m, &p)
                    .expect("push");
                seq += 1;
            }
        };
        let centre = |c: &mut Composer| c.compose().at(160, 90).expect("inside");
        send(&mut composer, &mut red, RED, true);
        assert!(close(centre(&mut composer), RED));
        // member 2's turn: 1's frames still come (the SFU waits for 2's keyframe)
        composer.set_tiles(vec![who(2)]);
        send(&mut composer, &mut red, RED, false);
        assert!(close(centre(&mut composer), RED), "not dark meanwhile");
        send(&mut composer, &mut green, GREEN, true);
        assert!(close(centre(&mut composer), GREEN));
        // member 3 sends nothing: after a while the tile is dark, not 2's
        composer.set_tiles(vec![who(3)]);
        for _ in 0..AWAITING_IDLE {
            assert!(close(centre(&mut composer), GREEN));
        }
        assert!(close(centre(&mut composer), EMPTY));
        // an empty tile is dark at once
        composer.set_tiles(vec![who(2)]);
        send(&mut composer, &mut green, GREEN, true);
        composer.set_tiles(vec![Tile {
            stream: None,
            size: TileSize::Big,
        }]);
        assert!(close(centre(&mut composer), EMPTY));
    }

    /// Browsers' streams (H.264 here, as a phone's would be) through the composer: each
    /// tile has its sender's colour, and the encoded canvas decodes to the same.
    #[test]
    fn three_streams_make_a_canvas_with_each_colour_in_its_tile() {
        let tiles: Vec<Tile> = [1u64, 2, 3, 0]
            .iter()
            .map(|&m| Tile {
                stream: (m > 0).then_some(StreamKey {
                    member: m,
                    kind: StreamKind::Camera,
                }),
                size: TileSize::Medium,
            })
            .collect();
        let mut composer = Composer::new(640, 360);
        composer.set_tiles(tiles);
        for (tile, colour) in [(0, RED), (1, GREEN), (2, BLUE)] {
            let mut enc = H264Encoder::new(320, 180, 15.0, 300_000, 30, 0).expect("encoder");
            let nals = enc
                .encode(&Picture::filled(320, 180, colour), true)
                .expect("encode");
            for (i, (p, m)) in packetize_h264(&nals, 1200, true).iter().enumerate() {
                composer
                    .push(tile, VideoCodec::H264, 10 + i as u64, *m, p)
                    .expect("push");
            }
        }
        assert!(composer.keyframes_wanted().is_empty());
        let rects = composer.rects().to_vec();
        let canvas = composer.compose().clone();
        let centre = |r: Rect| (r.x + r.w / 2, r.y + r.h / 2);
        for (i, colour) in [(0, RED), (1, GREEN), (2, BLUE), (3, EMPTY)] {
            let (x, y) = centre(rects[i]);
            let got = canvas.at(x, y).expect("inside");
            assert!(close(got, colour), "tile {i}: {got:?}");
        }
        // encoded once, decoded as a phone would: the same colours
        let mut enc = H264Encoder::new(640, 360, 15.0, 800_000, 30, 0).expect("encoder");
        let nals = enc.encode(&canvas, true).expect("encode");
        let mut dec = conclave_video_codecs::H264Decoder::new().expect("decoder");
        let out = dec
            .decode(&conclave_video_codecs::annex_b(&nals))
            .expect("decode")
            .expect("picture");
        for (i, colour) in [(0, RED), (1, GREEN), (2, BLUE)] {
            let (x, y) = centre(rects[i]);
            assert!(
                close(out.at(x, y).expect("inside"), colour),
                "tile {i} after coding"
            );
        }
        assert_eq!(composer.stats().decoded, 3);
        // garbage in a tile is an error (and a keyframe wanted), not a panic
        let _ = composer.push(
            3,
            VideoCodec::Vp8,
            1,
            true,
            &[0x10, 0x00, 0x9d, 0x01, 0x2a, 0xff],
        );
    }
}
