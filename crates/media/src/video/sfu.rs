//! The selective forwarding unit of one room. Sans-IO: packets and time in, packets for
//! viewers and keyframe requests out.
//!
//! Every viewer (a browser that receives video) has one receiving slot per tile of the
//! meeting's layout; slot *i* shows tile *i*'s stream (not its own camera: the page shows
//! that itself). For each slot the router picks one simulcast layer of the stream:
//! - the layer the tile's size wants (the big tile the full layer, small tiles the quarter),
//!   else the nearest one the sender has;
//! - within the viewer's bandwidth estimate (90 % of it): small tiles give way first;
//! - with hysteresis: a layer goes up only when the estimate leaves a quarter spare and
//!   nothing went down for [`UPGRADE_HOLD`];
//! - switched only at a keyframe of the new layer (the sender is asked for one, at most
//!   every [`KEYFRAME_GAP`]); until it comes the old layer goes on.
//!
//! A tile that shows someone else (a polling turn, a new speaker, a pin) switches the same
//! way: the slot keeps forwarding the member it showed until the next one's keyframe comes
//! (asked for at once), so the tile never freezes on a picture nor shows a half-decoded one;
//! after [`PENDING_MAX`] without it (a sender that sends no keyframe), the old stream stops
//! anyway. The meeting starts a polling turn's switch [`POLL_LEAD`] early, so the next
//! member's keyframe arrives about when their turn comes.
//!
//! What a slot sends is one continuous RTP stream whatever it forwards: at each switch the
//! sender's sequence numbers and timestamps are moved to follow on from the last ones sent
//! (a retransmission keeps its place; what came before the switch is not sent).

use std::time::Duration;

use rustc_hash::FxHashMap as HashMap;

use super::keyframe::is_keyframe;
use super::{Layer, StreamKey, Tile, VideoCodec};
use crate::mixer::MemberId;

/// How often the layers are chosen again (a sender's layers come and go, bitrates change).
pub const RESELECT: Duration = Duration::from_millis(500);
/// A layer not heard for this long is not there.
pub const LAYER_GONE: Duration = Duration::from_millis(1500);
/// After a layer went down for lack of bandwidth, none goes up for this long.
pub const UPGRADE_HOLD: Duration = Duration::from_secs(4);
/// Keyframe requests for one layer of one stream, at most this often.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(500);
/// The longest a slot waits for its next stream's keyframe while it forwards the previous one.
pub const PENDING_MAX: Duration = Duration::from_secs(2);
/// How much earlier than a polling turn the media plane is given the turn's tiles: about a
/// keyframe request's round trip and a sender's encoding of the keyframe.
pub const POLL_LEAD: Duration = Duration::from_millis(300);
/// The timestamp step put between the last frame forwarded and the first of a new layer
/// (a frame at 30 fps on the 90 kHz clock).
const SWITCH_STEP: u32 = 3000;

/// A video packet from a sender.
#[derive(Debug, Clone, Copy)]
pub struct VideoPacket<'a> {
    /// Its codec.
    pub codec: VideoCodec,
    /// Its simulcast layer.
    pub layer: Layer,
    /// Its sequence number, extended (so a retransmission keeps its place).
    pub seq: u64,
    /// Its RTP timestamp (90 kHz).
    pub timestamp: u32,
    /// End of a frame.
    pub marker: bool,
    /// The RTP payload.
    pub payload: &'a [u8],
}

/// A packet for one viewer's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward<'a> {
    /// Who receives it.
    pub viewer: MemberId,
    /// In which of its slots.
    pub slot: usize,
    /// Its codec (the viewer's payload type for it is the transport's business).
    pub codec: VideoCodec,
    /// The slot's sequence number (extended).
    pub seq: u64,
    /// The slot's timestamp.
    pub timestamp: u32,
    /// End of a frame.
    pub marker: bool,
    /// The payload, as the sender sent it.
    pub payload: &'a [u8],
}

/// The router's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Packets forwarded to viewers.
    pub forwarded: u64,
    /// Layer switches made (at keyframes).
    pub switches: u64,
    /// Keyframe requests sent to senders.
    pub keyframe_requests: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct LayerStats {
    last_seen: Option<Duration>,
    window_start: Duration,
    window_bytes: u64,
    /// Bits per second over the last whole second.
    bitrate: u64,
}

impl LayerStats {
    fn present(&self, now: Duration) -> bool {
        self.last_seen
            .is_some_and(|t| now.saturating_sub(t) < LAYER_GONE)
    }
}

#[derive(Debug, Default)]
struct StreamState {
    layers: [LayerStats; 3],
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// What the slot forwards.
    stream: Option<StreamKey>,
    current: Option<Layer>,
    /// What it will forward from the next stream's (or else this stream's) keyframe on.
    target: Option<Layer>,
    /// The stream the tile shows now, while the slot still forwards the one it showed,
    /// waiting for this one's keyframe (since `pending_since`).
    pending: Option<StreamKey>,
    pending_since: Duration,
    next_seq: u64,
    /// Sequence numbers of the layer forwarded are moved by this much (wrapping).
    seq_offset: u64,
    /// The layer's first packet forwarded since the switch: earlier ones are not sent.
    first_seq: u64,
    last_ts: Option<u32>,
    ts_offset: u32,
}

#[derive(Debug)]
struct Viewer {
    slots: Vec<Slot>,
    estimate: Option<u64>,
    last_down: Option<Duration>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Sfu {
    tiles: Vec<Tile>,
    streams: HashMap<StreamKey, StreamState>,
    viewers: HashMap<MemberId, Viewer>,
    asks: Vec<(StreamKey, Layer)>,
    last_ask: HashMap<(StreamKey, Layer), Duration>,
    next_select: Duration,
    stats: SfuStats,
}

impl Sfu {
    /// An empty router: no tiles, no viewers.
    pub fn new() -> Sfu {
        Sfu::default()
    }

    /// A member that receives video in `slots` slots (its page's receiving transceivers).
    pub fn add_viewer(&mut self, now: Duration, member: MemberId, slots: usize) {
        let start = 1 + u64::from(crate::webrtc::rand_u16());
        let slots = vec![
            Slot {
                next_seq: start,
                ..Slot::default()
            };
            slots
        ];
        self.viewers.insert(
            member,
            Viewer {
                slots,
                estimate: None,
                last_down: None,
            },
        );
        self.assign(now, member);
    }

    /// A member leaves: it neither views nor sends any more.
    pub fn remove_member(&mut self, member: MemberId) {
        self.viewers.remove(&member);
        self.streams.retain(|k, _| k.member != member);
        self.last_ask.retain(|(k, _), _| k.member != member);
    }

    /// Whether packets of `stream` came since its member arrived.
    pub fn knows(&self, stream: StreamKey) -> bool {
        self.streams.contains_key(&stream)
    }

    /// The meeting's layout changed: what each tile shows, in order.
    pub fn set_tiles(&mut self, now: Duration, tiles: Vec<Tile>) {
        if tiles == self.tiles {
            return;
        }
        self.tiles = tiles;
        let viewers: Vec<MemberId> = self.viewers.keys().copied().collect();
        for v in viewers {
            self.assign(now, v);
        }
    }

    /// The tiles as set.
    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// A viewer's bandwidth estimate (bits per second) changed.
    pub fn set_estimate(&mut self, now: Duration, viewer: MemberId, bps: u64) {
        if let Some(v) = self.viewers.get_mut(&viewer) {
            v.estimate = Some(bps);
            self.select(now, viewer);
        }
    }

    /// A viewer's decoder lost its picture on `slot` (a PLI or FIR from it): the sender of
    /// what the slot shows is asked for a keyframe.
    pub fn viewer_lost_picture(&mut self, now: Duration, viewer: MemberId, slot: usize) {
        let Some(s) = self.viewers.get(&viewer).and_then(|v| v.slots.get(slot)) else {
            return;
        };
        let wanted = match s.pending {
            Some(next) => s.target.map(|l| (next, l)),
            None => s.stream.zip(s.target.or(s.current)),
        };
        if let Some((stream, layer)) = wanted {
            self.ask(now, stream, layer);
        }
    }

    /// Time passes: layers are chosen again now and then.
    pub fn handle_timeout(&mut self, now: Duration) {
        if now < self.next_select || self.viewers.is_empty() {
            return;
        }
        self.next_select = now + RESELECT;
        let viewers: Vec<MemberId> = self.viewers.keys().copied().collect();
        for v in viewers {
            self.select(now, v);
        }
    }

    /// Keyframe requests for senders: (stream, layer).
    pub fn take_keyframe_requests(&mut self) -> Vec<(StreamKey, Layer)> {
        std::mem::take(&mut self.asks)
    }

    /// Figures so far.
    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    /// What viewer `viewer`'s slot shows now (a stream, once its first keyframe went out).
    pub fn showing(&self, viewer: MemberId, slot: usize) -> Option<(StreamKey, Layer)> {
        let s = self.viewers.get(&viewer)?.slots.get(slot)?;
        Some((s.stream?, s.current?))
    }

    /// A packet from `stream`: handed to every slot that shows it at this layer.
    pub fn route<'a>(
        &mut self,
        now: Duration,
        stream: StreamKey,
        packet: VideoPacket<'a>,
        out: &mut dyn FnMut(Forward<'a>),
    ) {
        let state = self.streams.entry(stream).or_default();
        let stats = &mut state.layers[packet.layer as usize];
        let first = !stats.present(now);
        stats.last_seen = Some(now);
        stats.window_bytes += packet.payload.len() as u64 + 12;
        let elapsed = now.saturating_sub(stats.window_start);
        if elapsed >= Duration::from_secs(1) {
            stats.bitrate = stats.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            stats.window_bytes = 0;
            stats.window_start = now;
        }
        if first {
            // a layer (re)appears: somebody may be waiting for it
            self.next_select = now;
        }
        let mut keyframe = None;
        for (&viewer, v) in self.viewers.iter_mut() {
            for (i, slot) in v.slots.iter_mut().enumerate() {
                let next = slot.pending == Some(stream);
                if !next && slot.stream != Some(stream) {
                    continue;
                }
                // the target is the next stream's while one is pending, else this one's
                if slot.target == Some(packet.layer) && (next || slot.pending.is_none()) {
                    let key =
                        *keyframe.get_or_insert_with(|| is_keyframe(packet.codec, packet.payload));
                    if key {
                        if next {
                            slot.stream = slot.pending.take();
                        }
                        slot.current = Some(packet.layer);
                        slot.target = None;
                        slot.seq_offset = slot.next_seq.wrapping_sub(packet.seq);
                        slot.first_seq = packet.seq;
                        slot.ts_offset = match slot.last_ts {
                            Some(last) => last
                                .wrapping_add(SWITCH_STEP)
                                .wrapping_sub(packet.timestamp),
                            None => 0,
                        };
                        self.stats.switches += 1;
                    }
                }
                if slot.stream != Some(stream)
                    || slot.current != Some(packet.layer)
                    || packet.seq < slot.first_seq
                {
                    continue;
                }
                let timestamp = packet.timestamp.wrapping_add(slot.ts_offset);
                let seq = packet.seq.wrapping_add(slot.seq_offset);
                if seq >= slot.next_seq {
                    slot.next_seq = seq + 1;
                    slot.last_ts = Some(timestamp);
                }
                self.stats.forwarded += 1;
                out(Forward {
                    viewer,
                    slot: i,
                    codec: packet.codec,
                    seq,
                    timestamp,
                    marker: packet.marker,
                    payload: packet.payload,
                });
            }
        }
        self.handle_timeout(now);
    }

    /// Slot streams from the tiles (a viewer does not receive its own camera).
    fn assign(&mut self, now: Duration, viewer: MemberId) {
        let Some(v) = self.viewers.get_mut(&viewer) else {
            return;
        };
        for (i, slot) in v.slots.iter_mut().enumerate() {
            let stream = self
                .tiles
                .get(i)
                .and_then(|t| t.stream)
                .filter(|s| s.member != viewer);
            if slot.stream == stream {
                if slot.pending.take().is_some() {
                    // back to what it forwards: the layer is chosen for it again
                    slot.target = None;
                }
            } else if stream.is_some() && slot.current.is_some() {
                // someone else: the one shown goes on until the next one's keyframe
                if slot.pending != stream {
                    slot.pending = stream;
                    slot.pending_since = now;
                    slot.target = None;
                }
            } else {
                slot.stream = stream;
                slot.pending = None;
                slot.current = None;
                slot.target = None;
            }
        }
        self.select(now, viewer);
    }

    /// Chooses each slot's layer for one viewer (see the module documentation).
    fn select(&mut self, now: Duration, viewer: MemberId) {
        let Some(v) = self.viewers.get_mut(&viewer) else {
            return;
        };
        for slot in v.slots.iter_mut() {
            let Some(next) = slot.pending else { continue };
            let has_layers = self
                .streams
                .get(&next)
                .is_some_and(|s| s.layers.iter().any(|l| l.present(now)));
            if !has_layers || now.saturating_sub(slot.pending_since) >= PENDING_MAX {
                // nothing to wait for (it sends nothing), or waited long enough
                slot.stream = slot.pending.take();
                slot.current = None;
                slot.target = None;
            }
        }
        let v = &*v;
        // the layers are chosen for the stream each slot will show
        let shown = |slot: &Slot| slot.pending.or(slot.stream);
        let mut choice: Vec<Option<Layer>> = Vec::with_capacity(v.slots.len());
        for (i, slot) in v.slots.iter().enumerate() {
            let wanted = self.tiles.get(i).map(|t| t.size.layer());
            let pick = match (shown(slot), wanted) {
                (Some(stream), Some(wanted)) => self.streams.get(&stream).and_then(|s| {
                    let present = |l: &Layer| s.layers[*l as usize].present(now);
                    Layer::ALL
                        .iter()
                        .rev()
                        .filter(|l| **l <= wanted)
                        .find(|l| present(l))
                        .or_else(|| Layer::ALL.iter().find(|l| present(l)))
                        .copied()
                }),
                _ => None,
            };
            choice.push(pick);
        }
        let rate = |slot: &Slot, layer: Option<Layer>| -> u64 {
            match (shown(slot), layer) {
                (Some(stream), Some(layer)) => self
                    .streams
                    .get(&stream)
                    .map_or(0, |s| s.layers[layer as usize].bitrate),
                _ => 0,
            }
        };
        let total = |choice: &[Option<Layer>]| -> u64 {
            v.slots
                .iter()
                .zip(choice)
                .map(|(s, c)| rate(s, *c))
                .sum::<u64>()
        };
        let mut went_down = false;
        if let Some(estimate) = v.estimate {
            let budget = estimate * 9 / 10;
            // small tiles give way first, then the larger ones, one step at a time
            while total(&choice) > budget {
                let candidate = (0..choice.len())
                    .filter_map(|i| {
                        let layer = choice[i]?;
                        let stream = shown(&v.slots[i])?;
                        let s = self.streams.get(&stream)?;
                        let lower = Layer::ALL
                            .iter()
                            .rev()
                            .find(|l| **l < layer && s.layers[**l as usize].present(now))?;
                        let size = self.tiles.get(i).map_or(Layer::Low, |t| t.size.layer());
                        Some((size, std::cmp::Reverse(layer), i, *lower))
                    })
                    .min_by_key(|(size, layer, i, _)| (*size, *layer, *i));
                let Some((_, _, i, lower)) = candidate else {
                    break;
                };
                choice[i] = Some(lower);
            }
        }
        // hysteresis: a layer goes up only with room to spare and after a quiet while
        let calm = v
            .last_down
            .is_none_or(|t| now.saturating_sub(t) >= UPGRADE_HOLD);
        let spare = v.estimate.is_none_or(|e| total(&choice) <= e * 3 / 4);
        for (i, slot) in v.slots.iter().enumerate() {
            if slot.pending.is_some() {
                // the layer in `current` is the previous stream's: nothing to compare
                continue;
            }
            let still_there = |layer: Layer| {
                slot.stream
                    .and_then(|k| self.streams.get(&k))
                    .is_some_and(|s| s.layers[layer as usize].present(now))
            };
            if let (Some(cur), Some(new)) = (slot.current, choice[i])
                && new > cur
                && !(calm && spare)
                && still_there(cur)
            {
                choice[i] = Some(cur);
            }
            if let (Some(cur), Some(new)) = (slot.current, choice[i])
                && new < cur
            {
                went_down = true;
            }
        }
        let mut asks = Vec::new();
        let Some(v) = self.viewers.get_mut(&viewer) else {
            return;
        };
        if went_down {
            v.last_down = Some(now);
        }
        for (slot, pick) in v.slots.iter_mut().zip(choice) {
            if pick == slot.current && slot.pending.is_none() {
                slot.target = None;
                continue;
            }
            if slot.target != pick {
                slot.target = pick;
            }
            if let (Some(stream), Some(layer)) = (slot.pending.or(slot.stream), pick) {
                asks.push((stream, layer));
            }
        }
        for (stream, layer) in asks {
            self.ask(now, stream, layer);
        }
    }

    fn ask(&mut self, now: Duration, stream: StreamKey, layer: Layer) {
        let key = (stream, layer);
        if self
            .last_ask
            .get(&key)
            .is_some_and(|t| now.saturating_sub(*t) < KEYFRAME_GAP)
        {
            return;
        }
        self.last_ask.insert(key, now);
        self.asks.push(key);
        self.stats.keyframe_requests += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::{StreamKind, TileSize};

    const KEY: &[u8] = &[0x10, 0x00, 0x9d, 0x01, 0x2a];
    const DELTA: &[u8] = &[0x10, 0x01, 0x00];

    fn cam(member: MemberId) -> StreamKey {
        StreamKey {
            member,
            kind: StreamKind::Camera,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn send(
        sfu: &mut Sfu,
        now: Duration,
        stream: StreamKey,
        layer: Layer,
        ts: u32,
        payload: &'static [u8],
    ) -> Vec<(MemberId, usize, u64, u32)> {
        send_seq(sfu, now, stream, layer, u64::from(ts), ts, payload)
    }

    fn send_seq(
        sfu: &mut Sfu,
        now: Duration,
        stream: StreamKey,
        layer: Layer,
        seq: u64,
        ts: u32,
        payload: &'static [u8],
    ) -> Vec<(MemberId, usize, u64, u32)> {
        let mut got = Vec::new();
        sfu.route(
            now,
            stream,
            VideoPacket {
                codec: VideoCodec::Vp8,
                layer,
                seq,
                timestamp: ts,
                marker: true,
                payload,
            },
            &mut |f| got.push((f.viewer, f.slot, f.seq, f.timestamp)),
        );
        got
    }

    fn tiles(list: &[(Option<MemberId>, TileSize)]) -> Vec<Tile> {
        list.iter()
            .map(|(m, size)| Tile {
                stream: m.map(cam),
                size: *size,
            })
            .collect()
    }

    #[test]
    fn a_slot_starts_at_a_keyframe_of_the_layer_its_tile_wants() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 1, 4);
        sfu.set_tiles(
            ms(0),
            tiles(&[(Some(2), TileSize::Big), (Some(3), TileSize::Small)]),
        );
        // both layers of 2 and 3 appear; nothing goes out before a keyframe
        for (m, layer) in [
            (2, Layer::Low),
            (2, Layer::High),
            (3, Layer::Low),
            (3, Layer::High),
        ] {
            assert!(send(&mut sfu, ms(10), cam(m), layer, 100, DELTA).is_empty());
        }
        sfu.handle_timeout(ms(600));
        let asks = sfu.take_keyframe_requests();
        assert!(asks.contains(&(cam(2), Layer::High)), "{asks:?}");
        assert!(asks.contains(&(cam(3), Layer::Low)), "{asks:?}");
        // the big tile takes 2's full layer, the small one 3's quarter layer
        assert_eq!(
            send(&mut sfu, ms(620), cam(2), Layer::Low, 200, KEY),
            vec![]
        );
        assert_eq!(
            send(&mut sfu, ms(620), cam(2), Layer::High, 200, KEY).len(),
            1
        );
        assert_eq!(
            send(&mut sfu, ms(630), cam(3), Layer::High, 200, KEY),
            vec![]
        );
        assert_eq!(
            send(&mut sfu, ms(630), cam(3), Layer::Low, 200, KEY).len(),
            1
        );
        assert_eq!(sfu.showing(1, 0), Some((cam(2), Layer::High)));
        assert_eq!(sfu.showing(1, 1), Some((cam(3), Layer::Low)));
        // deltas follow on, numbered in sequence; a late retransmission keeps its place,
        // and what came before the keyframe is not sent
        let a = send_seq(&mut sfu, ms(660), cam(2), Layer::High, 201, 3200, DELTA);
        let b = send_seq(&mut sfu, ms(700), cam(2), Layer::High, 203, 6200, DELTA);
        assert_eq!(b[0].2, a[0].2 + 2);
        assert_eq!(b[0].3.wrapping_sub(a[0].3), 3000);
        let late = send_seq(&mut sfu, ms(710), cam(2), Layer::High, 202, 3200, DELTA);
        assert_eq!(late[0].2, a[0].2 + 1);
        assert!(send_seq(&mut sfu, ms(710), cam(2), Layer::High, 199, 100, DELTA).is_empty());
    }

    #[test]
    fn a_viewer_never_receives_its_own_camera() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 2, 2);
        sfu.set_tiles(ms(0), tiles(&[(Some(2), TileSize::Big)]));
        send(&mut sfu, ms(10), cam(2), Layer::High, 1, KEY);
        sfu.handle_timeout(ms(600));
        assert!(send(&mut sfu, ms(620), cam(2), Layer::High, 2, KEY).is_empty());
        assert!(sfu.take_keyframe_requests().is_empty());
    }

    #[test]
    fn a_new_stream_on_a_slot_continues_its_numbering_and_timestamps() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 1, 1);
        sfu.set_tiles(ms(0), tiles(&[(Some(2), TileSize::Big)]));
        send(&mut sfu, ms(0), cam(2), Layer::High, 5000, KEY);
        sfu.handle_timeout(ms(600));
        let first = send(&mut sfu, ms(600), cam(2), Layer::High, 90_000, KEY);
        sfu.take_keyframe_requests();
        // the tile now shows 3 (polling, say): 3's stream, far off in time, follows on
        sfu.set_tiles(ms(700), tiles(&[(Some(3), TileSize::Big)]));
        assert!(
            sfu.take_keyframe_requests().is_empty(),
            "3 has sent nothing yet"
        );
        assert!(send(&mut sfu, ms(710), cam(3), Layer::High, 7, DELTA).is_empty());
        sfu.handle_timeout(ms(1200));
        assert_eq!(sfu.take_keyframe_requests(), vec![(cam(3), Layer::High)]);
        assert!(send(&mut sfu, ms(1210), cam(2), Layer::High, 93_000, KEY).is_empty());
        let next = send(&mut sfu, ms(1220), cam(3), Layer::High, 1_000_000, KEY);
        assert_eq!(next[0].2, first[0].2 + 1);
        assert_eq!(next[0].3, first[0].3 + SWITCH_STEP);
    }

    #[test]
    fn a_tile_that_shows_someone_else_goes_on_with_the_previous_one_until_the_next_keyframe() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 1, 1);
        sfu.set_tiles(ms(0), tiles(&[(Some(2), TileSize::Big)]));
        for m in [2, 3] {
            send(&mut sfu, ms(0), cam(m), Layer::High, 10, DELTA);
        }
        sfu.handle_timeout(ms(600));
        sfu.take_keyframe_requests();
        let first = send_seq(&mut sfu, ms(600), cam(2), Layer::High, 11, 3000, KEY);
        assert_eq!(first.len(), 1);
        // the tile is 3's now (a polling turn): 3 is asked for a keyframe at once, and 2
        // goes on meanwhile, numbered in sequence; 3's deltas are not sent
        sfu.set_tiles(ms(700), tiles(&[(Some(3), TileSize::Big)]));
        assert_eq!(sfu.take_keyframe_requests(), vec![(cam(3), Layer::High)]);
        assert!(send_seq(&mut sfu, ms(710), cam(3), Layer::High, 21, 20, DELTA).is_empty());
        let more = send_seq(&mut sfu, ms(720), cam(2), Layer::High, 12, 6000, DELTA);
        assert_eq!(more[0].2, first[0].2 + 1);
        assert_eq!(sfu.showing(1, 0), Some((cam(2), Layer::High)));
        // 3's keyframe: the slot switches, following on; 2 is no longer sent
        let next = send_seq(&mut sfu, ms(760), cam(3), Layer::High, 22, 50_000, KEY);
        assert_eq!(next[0].2, more[0].2 + 1);
        assert_eq!(next[0].3, more[0].3 + SWITCH_STEP);
        assert_eq!(sfu.showing(1, 0), Some((cam(3), Layer::High)));
        assert!(send_seq(&mut sfu, ms(770), cam(2), Layer::High, 13, 9000, DELTA).is_empty());
        // back to 2 and at once to 3 again: nothing changes hands, 3 goes on
        sfu.set_tiles(ms(800), tiles(&[(Some(2), TileSize::Big)]));
        sfu.set_tiles(ms(810), tiles(&[(Some(3), TileSize::Big)]));
        assert_eq!(
            send_seq(&mut sfu, ms(820), cam(3), Layer::High, 23, 53_000, DELTA).len(),
            1
        );
        // a next member that never sends a keyframe: the previous one stops after a while
        sfu.set_tiles(ms(900), tiles(&[(Some(2), TileSize::Big)]));
        let mut t = 900;
        while t < 900 + PENDING_MAX.as_millis() as u64 - 100 {
            t += 100;
            send(&mut sfu, ms(t), cam(2), Layer::High, t as u32 * 90, DELTA);
            assert_eq!(
                send(&mut sfu, ms(t), cam(3), Layer::High, t as u32 * 90, DELTA).len(),
                1,
                "3 goes on at {t} ms"
            );
        }
        sfu.handle_timeout(ms(900) + PENDING_MAX + RESELECT);
        assert!(send(&mut sfu, ms(3500), cam(3), Layer::High, 315_000, DELTA).is_empty());
        assert_eq!(sfu.showing(1, 0), None);
    }

    #[test]
    fn a_low_estimate_takes_the_big_tile_down_a_layer_and_it_comes_back_only_after_a_while() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 1, 1);
        sfu.set_tiles(ms(0), tiles(&[(Some(2), TileSize::Big)]));
        // 2 sends 1 kB of high and 125 B of low every 10 ms: about 800 and 110 kbit/s
        static HIGH: [u8; 1000] = {
            let mut p = [0u8; 1000];
            p[0] = 0x10;
            p
        };
        static LOW: [u8; 125] = {
            let mut p = [0u8; 125];
            p[0] = 0x10;
            p
        };
        let mut t = 0u64;
        let run = |sfu: &mut Sfu, until: u64, t: &mut u64| {
            let mut out = Vec::new();
            while *t < until {
                for (layer, p) in [(Layer::High, &HIGH[..]), (Layer::Low, &LOW[..])] {
                    let mut got = Vec::new();
                    sfu.route(
                        ms(*t),
                        cam(2),
                        VideoPacket {
                            codec: VideoCodec::Vp8,
                            layer,
                            seq: *t,
                            timestamp: (*t * 90) as u32,
                            marker: true,
                            payload: p,
                        },
                        &mut |f| got.push(f.payload.len()),
                    );
                    out.extend(got);
                }
                *t += 10;
            }
            out
        };
        let got = run(&mut sfu, 2000, &mut t);
        assert!(got.iter().all(|n| *n == 1000) && !got.is_empty());
        sfu.set_estimate(ms(t), 1, 300_000);
        let got = run(&mut sfu, 3000, &mut t);
        assert_eq!(got.last(), Some(&125), "down to the low layer");
        // the estimate recovers: not back at once (hysteresis)…
        sfu.set_estimate(ms(t), 1, 2_000_000);
        let got = run(&mut sfu, 5000, &mut t);
        assert_eq!(got.last(), Some(&125), "held low for a while");
        // …but after the hold
        let got = run(&mut sfu, 8000, &mut t);
        assert_eq!(got.last(), Some(&1000), "back up");
        assert!(sfu.stats().switches >= 3);
    }

    #[test]
    fn keyframe_requests_are_spaced() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 1, 1);
        sfu.set_tiles(ms(0), tiles(&[(Some(2), TileSize::Big)]));
        send(&mut sfu, ms(0), cam(2), Layer::High, 0, DELTA);
        sfu.handle_timeout(ms(600));
        sfu.take_keyframe_requests();
        for n in 0..10 {
            sfu.viewer_lost_picture(ms(600 + n * 10), 1, 0);
        }
        assert!(
            sfu.take_keyframe_requests().is_empty(),
            "asked at 600 ms already"
        );
        sfu.viewer_lost_picture(ms(1200), 1, 0);
        assert_eq!(sfu.take_keyframe_requests().len(), 1);
        sfu.viewer_lost_picture(ms(1200), 1, 9);
        sfu.viewer_lost_picture(ms(1200), 7, 0);
        assert!(sfu.take_keyframe_requests().is_empty());
    }

    #[test]
    fn a_member_that_leaves_is_forgotten() {
        let mut sfu = Sfu::new();
        sfu.add_viewer(ms(0), 1, 1);
        sfu.add_viewer(ms(0), 2, 1);
        sfu.set_tiles(ms(0), tiles(&[(Some(2), TileSize::Big)]));
        send(&mut sfu, ms(0), cam(2), Layer::High, 0, KEY);
        sfu.remove_member(2);
        sfu.remove_member(1);
        assert!(sfu.viewers.is_empty() && sfu.streams.is_empty());
    }
}
