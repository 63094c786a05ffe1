//! The meeting's video layout: which member is shown in which tile. Pure: the meeting's
//! state in, tiles out. Browsers show the tiles the SFU fills; the composed picture for
//! phones, recordings and streams is drawn from the same tiles.
//!
//! Who goes where, in this order:
//! 1. a shared screen takes the large tile (content first, as every room system does);
//! 2. pinned members keep their tiles;
//! 3. polled tiles show the polling list in turn (a step every interval);
//! 4. the first large tile still free follows the speaker;
//! 5. the other tiles take the remaining members in the order they came;
//! 6. polling without a list: the polled tiles take turns among those no other tile shows
//!    (more people than tiles).

use crate::live::MemberId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The split-screen modes the chair chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum LayoutKind {
    /// One large tile.
    #[serde(rename = "1")]
    One,
    /// Two by two.
    #[default]
    #[serde(rename = "4")]
    Four,
    /// One large tile and seven small ones.
    #[serde(rename = "1+7")]
    OnePlusSeven,
    /// One large tile and twenty-one small ones.
    #[serde(rename = "1+21")]
    OnePlusTwentyOne,
    /// Two large tiles side by side and twenty-one small ones.
    #[serde(rename = "2+21")]
    TwoPlusTwentyOne,
}

/// How large a tile is (what the SFU sends it and how the composer draws it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TileSize {
    Big,
    Medium,
    Small,
}

impl LayoutKind {
    /// The most tiles a layout has (2+21).
    pub const MAX_TILES: usize = 23;

    /// The tiles' sizes, in order (large ones first).
    pub fn tiles(self) -> Vec<TileSize> {
        let (big, medium, small) = match self {
            LayoutKind::One => (1, 0, 0),
            LayoutKind::Four => (0, 4, 0),
            LayoutKind::OnePlusSeven => (1, 0, 7),
            LayoutKind::OnePlusTwentyOne => (1, 0, 21),
            LayoutKind::TwoPlusTwentyOne => (2, 0, 21),
        };
        std::iter::repeat_n(TileSize::Big, big)
            .chain(std::iter::repeat_n(TileSize::Medium, medium))
            .chain(std::iter::repeat_n(TileSize::Small, small))
            .collect()
    }

    /// How it is written in the API ("1", "4", "1+7", "1+21", "2+21").
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutKind::One => "1",
            LayoutKind::Four => "4",
            LayoutKind::OnePlusSeven => "1+7",
            LayoutKind::OnePlusTwentyOne => "1+21",
            LayoutKind::TwoPlusTwentyOne => "2+21",
        }
    }

    /// The layout an API string names.
    pub fn parse(s: &str) -> Option<LayoutKind> {
        [
            LayoutKind::One,
            LayoutKind::Four,
            LayoutKind::OnePlusSeven,
            LayoutKind::OnePlusTwentyOne,
            LayoutKind::TwoPlusTwentyOne,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Polling: tiles that show the members of a list in turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Polling {
    /// The polled tiles (indexes into the layout).
    pub tiles: Vec<usize>,
    /// Seconds each turn lasts.
    pub interval_secs: u32,
    /// Whom to show in turn; empty: everyone not shown in another tile.
    pub members: Vec<MemberId>,
}

/// The shortest and longest turn of polling.
pub const POLL_INTERVAL: std::ops::RangeInclusive<u32> = 2..=3600;

/// The chair's choices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Layout {
    pub kind: LayoutKind,
    /// Tile → member kept there.
    pub pins: BTreeMap<usize, MemberId>,
    pub polling: Option<Polling>,
    /// Who shares a screen (it takes the large tile).
    pub sharer: Option<MemberId>,
    /// What the sharer shares is a whiteboard: chairs may draw on it too.
    pub board: bool,
    /// Who may share besides chairs: `true` members too (the default), `false` chairs only.
    pub members_may_share: bool,
}

/// One tile as shown: whose video, and whether it is their screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TileView {
    pub size: TileSize,
    pub member: Option<MemberId>,
    /// The member's shared screen, not their camera.
    pub screen: bool,
    /// Shown because polling put it there.
    pub polled: bool,
}

/// The tiles for the members present (in the order they came), the current speaker and the
/// polling turn (see the module documentation).
pub fn assign(
    layout: &Layout,
    present: &[MemberId],
    speaker: Option<MemberId>,
    turn: u64,
) -> Vec<TileView> {
    let sizes = layout.kind.tiles();
    let mut tiles: Vec<TileView> = sizes
        .iter()
        .map(|&size| TileView {
            size,
            member: None,
            screen: false,
            polled: false,
        })
        .collect();
    let here = |m: &MemberId| present.contains(m);
    let mut shown: Vec<MemberId> = Vec::new();
    // 1. the shared screen (the sharer's camera may still have a tile of its own)
    if let Some(sharer) = layout.sharer.filter(here) {
        tiles[0].member = Some(sharer);
        tiles[0].screen = true;
    }
    // 2. pins
    for (&tile, &member) in &layout.pins {
        if let Some(t) = tiles.get_mut(tile)
            && t.member.is_none()
            && here(&member)
            && !shown.contains(&member)
        {
            t.member = Some(member);
            shown.push(member);
        }
    }
    // 3. polling: the tiles it takes; a list's members first, the others fill the rest
    let polled: Vec<usize> = layout.polling.as_ref().map_or_else(Vec::new, |p| {
        p.tiles
            .iter()
            .copied()
            .filter(|&i| tiles.get(i).is_some_and(|t| t.member.is_none()))
            .collect()
    });
    let poll = |pool: Vec<MemberId>, tiles: &mut [TileView], shown: &mut Vec<MemberId>| {
        if pool.is_empty() || polled.is_empty() {
            return;
        }
        let start = (turn as usize).wrapping_mul(polled.len()) % pool.len();
        for (j, &i) in polled.iter().enumerate().take(pool.len()) {
            let member = pool[(start + j) % pool.len()];
            tiles[i].member = Some(member);
            tiles[i].polled = true;
            shown.push(member);
        }
    };
    let list = layout
        .polling
        .as_ref()
        .map(|p| p.members.clone())
        .unwrap_or_default();
    if !list.is_empty() {
        let pool = list
            .into_iter()
            .filter(|m| here(m) && !shown.contains(m))
            .collect();
        poll(pool, &mut tiles, &mut shown);
    }
    let free = |i: usize, t: &TileView| t.member.is_none() && !polled.contains(&i);
    // 4. the speaker on the first free large tile
    if let Some(speaker) = speaker.filter(here).filter(|s| !shown.contains(s))
        && let Some(t) = tiles
            .iter_mut()
            .enumerate()
            .find(|(i, t)| t.size != TileSize::Small && free(*i, t))
            .map(|(_, t)| t)
    {
        t.member = Some(speaker);
        shown.push(speaker);
    }
    // 5. everyone else in order
    let rest: Vec<MemberId> = present
        .iter()
        .copied()
        .filter(|m| !shown.contains(m))
        .collect();
    let mut rest = rest.into_iter();
    for (i, t) in tiles.iter_mut().enumerate() {
        if !free(i, t) {
            continue;
        }
        match rest.next() {
            Some(m) => {
                t.member = Some(m);
                shown.push(m);
            }
            None => break,
        }
    }
    // polling over everyone: the polled tiles take turns among those left over
    if layout.polling.is_some() && tiles.iter().all(|t| !t.polled) {
        let pool = present
            .iter()
            .copied()
            .filter(|m| !shown.contains(m))
            .collect();
        poll(pool, &mut tiles, &mut shown);
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(tiles: &[TileView]) -> Vec<Option<MemberId>> {
        tiles.iter().map(|t| t.member).collect()
    }

    #[test]
    fn layouts_have_their_tiles() {
        assert_eq!(LayoutKind::One.tiles().len(), 1);
        assert_eq!(LayoutKind::Four.tiles(), vec![TileSize::Medium; 4]);
        assert_eq!(LayoutKind::OnePlusSeven.tiles().len(), 8);
        assert_eq!(LayoutKind::OnePlusTwentyOne.tiles().len(), 22);
        let t = LayoutKind::TwoPlusTwentyOne.tiles();
        assert_eq!((t.len(), t[1], t[2]), (23, TileSize::Big, TileSize::Small));
        for k in ["1", "4", "1+7", "1+21", "2+21"] {
            assert_eq!(LayoutKind::parse(k).map(LayoutKind::as_str), Some(k));
        }
        assert_eq!(LayoutKind::parse("3x3"), None);
    }

    #[test]
    fn the_speaker_takes_the_big_tile_and_the_rest_follow_in_order() {
        let layout = Layout {
            kind: LayoutKind::OnePlusSeven,
            ..Layout::default()
        };
        let t = assign(&layout, &[1, 2, 3], Some(3), 0);
        assert_eq!(&members(&t)[..4], &[Some(3), Some(1), Some(2), None]);
        let t = assign(&layout, &[1, 2, 3], None, 0);
        assert_eq!(&members(&t)[..3], &[Some(1), Some(2), Some(3)]);
        // a speaker who left is nobody
        let t = assign(&layout, &[1, 2], Some(9), 0);
        assert_eq!(&members(&t)[..2], &[Some(1), Some(2)]);
    }

    #[test]
    fn a_shared_screen_takes_the_big_tile_and_pins_hold() {
        let mut layout = Layout {
            kind: LayoutKind::OnePlusSeven,
            sharer: Some(2),
            ..Layout::default()
        };
        layout.pins.insert(3, 1);
        let t = assign(&layout, &[1, 2, 3], Some(3), 0);
        assert!(t[0].screen);
        assert_eq!(members(&t)[..4], [Some(2), Some(2), Some(3), Some(1)]);
        // a pin on a member who left leaves the tile to others
        let t = assign(&layout, &[2, 3], None, 0);
        assert_eq!(members(&t)[..3], [Some(2), Some(2), Some(3)]);
    }

    #[test]
    fn polling_shows_the_list_in_turn() {
        let layout = Layout {
            kind: LayoutKind::OnePlusSeven,
            polling: Some(Polling {
                tiles: vec![0],
                interval_secs: 5,
                members: vec![4, 5, 6],
            }),
            ..Layout::default()
        };
        let present = [1, 2, 3, 4, 5, 6];
        let seen: Vec<_> = (0..4)
            .map(|turn| assign(&layout, &present, Some(1), turn)[0])
            .map(|t| (t.member, t.polled))
            .collect();
        assert_eq!(
            seen,
            [
                (Some(4), true),
                (Some(5), true),
                (Some(6), true),
                (Some(4), true)
            ]
        );
        // the others fill the rest, and the polled member is not shown twice
        let t = assign(&layout, &present, Some(1), 1);
        assert_eq!(
            members(&t)[..7],
            [Some(5), Some(1), Some(2), Some(3), Some(4), Some(6), None]
        );
        // two polled tiles over those the others do not show
        let layout = Layout {
            kind: LayoutKind::Four,
            polling: Some(Polling {
                tiles: vec![2, 3],
                interval_secs: 5,
                members: vec![],
            }),
            ..Layout::default()
        };
        let six = [1, 2, 3, 4, 5, 6];
        let t = assign(&layout, &six, None, 0);
        assert_eq!(members(&t), [Some(1), Some(2), Some(3), Some(4)]);
        assert!(t[2].polled && t[3].polled && !t[0].polled);
        let t = assign(&layout, &six, None, 1);
        assert_eq!(members(&t), [Some(1), Some(2), Some(5), Some(6)]);
        let t = assign(&layout, &[1, 2, 3], None, 1);
        assert_eq!(members(&t), [Some(1), Some(2), Some(3), None]);
    }
}
