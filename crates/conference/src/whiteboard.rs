//! Strokes on a shared whiteboard. The board is the presenter's picture: their page draws it
//! and shares it as its screen, so every page, SIP video terminal, recording and stream shows
//! it like any share. A chair draws on it too by sending strokes: the meeting checks them
//! (who, and that a board is shared) and hands them to the presenter's page, which draws
//! them on the board. Strokes are small and bounded; nothing of them is kept.

use serde::{Deserialize, Serialize};

/// Points of one stroke (a page sends a long line as several strokes).
pub const MAX_POINTS: usize = 256;
/// Coordinates run from 0 to this across the board's width and height.
pub const SCALE: u16 = 10_000;
/// The pens (black, red, blue).
pub const PENS: u8 = 3;

/// A line through points, in one pen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stroke {
    /// 0 black, 1 red, 2 blue.
    pub pen: u8,
    /// `[x, y]`, each 0–10000 across the board.
    pub points: Vec<[u16; 2]>,
}

impl Stroke {
    /// Why the stroke cannot be drawn, if it cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.pen >= PENS {
            return Err("a pen is 0, 1 or 2");
        }
        if self.points.is_empty() || self.points.len() > MAX_POINTS {
            return Err("a stroke has 1 to 256 points");
        }
        if self.points.iter().flatten().any(|c| *c > SCALE) {
            return Err("points lie within 0–10000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_within_bounds_pass_and_the_others_say_why() {
        let ok = Stroke {
            pen: 2,
            points: vec![[0, 0], [10_000, 10_000]],
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = [
            Stroke {
                pen: 3,
                ..ok.clone()
            },
            Stroke {
                pen: 0,
                points: vec![],
            },
            Stroke {
                pen: 0,
                points: vec![[1, 1]; 257],
            },
            Stroke {
                pen: 0,
                points: vec![[10_001, 5]],
            },
        ];
        for s in bad {
            assert!(s.check().is_err(), "{s:?}");
        }
    }
}
