//! Video. Sans-IO like the rest of the media crate.
//!
//! - [`sfu`]: the selective forwarding unit of one room — browsers' cameras and screens to
//!   the tiles of the layout the meeting chose, one simulcast layer per viewer and tile,
//!   switched only at keyframes, within the viewer's bandwidth estimate;
//! - [`compose`]: the composed picture for phones, recordings and streams — the tiles'
//!   streams decoded, scaled into the layout's places, encoded once;
//! - [`rtp`]: video frames in and out of RTP payloads (VP8, H.264);
//! - [`keyframe`]: where a VP8 or H.264 keyframe starts (RTP payloads).
//!
//! Which member is in which tile is the meeting's business (`conference::layout`); the
//! router only forwards what the tiles name.

pub mod compose;
pub mod keyframe;
pub mod output;
pub mod rtp;
pub mod sfu;
pub mod sip_leg;

/// The most tiles a layout has (2+21): a browser receives in this many slots.
pub const MAX_TILES: usize = 23;

/// The video codecs browsers send and the router forwards (never transcoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 (RFC 6184), constrained baseline.
    H264,
}

/// Which of a member's video streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    /// The camera (simulcast: up to three layers).
    Camera,
    /// A shared screen or window (one layer).
    Screen,
}

/// A member's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Whose.
    pub member: crate::mixer::MemberId,
    /// Which.
    pub kind: StreamKind,
}

/// A simulcast layer: browsers name them by RTP stream id (`l`, `m`, `h`); a stream without
/// simulcast is one `High` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// A quarter of the size.
    Low = 0,
    /// Half.
    Mid = 1,
    /// Full.
    High = 2,
}

impl Layer {
    /// All, lowest first.
    pub const ALL: [Layer; 3] = [Layer::Low, Layer::Mid, Layer::High];

    /// The layer an RTP stream id names (unknown ids and none are the full layer).
    pub fn from_rid(rid: Option<&str>) -> Layer {
        match rid {
            Some("l" | "q" | "0") => Layer::Low,
            Some("m" | "1") => Layer::Mid,
            _ => Layer::High,
        }
    }

    /// The stream id the page gives the layer.
    pub fn rid(self) -> &'static str {
        match self {
            Layer::Low => "l",
            Layer::Mid => "m",
            Layer::High => "h",
        }
    }
}

/// How large a tile is shown: what layer it deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileSize {
    /// The large tile of 1, 1+7, 1+21 and 2+21.
    Big,
    /// A quarter of the canvas (2×2).
    Medium,
    /// The small tiles around a big one.
    Small,
}

impl TileSize {
    /// The layer a tile this size wants.
    pub fn layer(self) -> Layer {
        match self {
            TileSize::Big => Layer::High,
            TileSize::Medium => Layer::Mid,
            TileSize::Small => Layer::Low,
        }
    }
}

/// One tile of the meeting's layout: whose stream it shows (none: an empty tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// The stream shown.
    pub stream: Option<StreamKey>,
    /// Its size.
    pub size: TileSize,
}
