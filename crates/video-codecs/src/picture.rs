//! A decoded picture: 8-bit I420, planes packed tight (stride = width).

/// See the module documentation. Width and height are even.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Picture({}×{})", self.width, self.height)
    }
}

impl Picture {
    /// A picture of one colour (Y, Cb, Cr); odd sizes are rounded down to even.
    pub fn filled(width: usize, height: usize, (y, u, v): (u8, u8, u8)) -> Picture {
        let (width, height) = (width & !1, height & !1);
        let chroma = (width / 2) * (height / 2);
        Picture {
            width,
            height,
            y: vec![y; width * height],
            u: vec![u; chroma],
            v: vec![v; chroma],
        }
    }

    /// Copies strided planes into a tight picture (what decoders hand out).
    pub fn from_planes(
        width: usize,
        height: usize,
        planes: [(&[u8], usize); 3],
    ) -> Option<Picture> {
        let (width, height) = (width & !1, height & !1);
        if width == 0 || height == 0 {
            return None;
        }
        let copy = |(data, stride): (&[u8], usize), w: usize, h: usize| -> Option<Vec<u8>> {
            if stride < w {
                return None;
            }
            let mut out = Vec::with_capacity(w * h);
            for row in 0..h {
                out.extend_from_slice(data.get(row * stride..row * stride + w)?);
            }
            Some(out)
        };
        Some(Picture {
            width,
            height,
            y: copy(planes[0], width, height)?,
            u: copy(planes[1], width / 2, height / 2)?,
            v: copy(planes[2], width / 2, height / 2)?,
        })
    }

    /// The colour (Y, Cb, Cr) at a point, or `None` outside.
    pub fn at(&self, x: usize, y: usize) -> Option<(u8, u8, u8)> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let c = (y / 2) * (self.width / 2) + x / 2;
        Some((self.y[y * self.width + x], self.u[c], self.v[c]))
    }
}
