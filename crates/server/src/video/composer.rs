//! A room's composed picture: a thread per room whose picture is wanted (the console's
//! preview today; phones with video, recordings and streams next). The media plane's SFU
//! sends it every tile's stream as it would a viewer's; the thread puts them back into frames,
//! decodes them and draws the canvas (`conclave_media::video::compose`). The meeting's actor
//! owns it, tells it the tiles, and stops it when nobody has asked for a while.
//!
//! Bounded everywhere: packets wait in a queue of [`PACKETS`] (the media plane drops beyond
//! it and counts), requests in one of [`REQUESTS`]; a tile that cannot be decoded asks its
//! sender for a keyframe at most once a second.

use crate::media::RoomMedia;
use conclave_media::engine::ComposedPacket;
use conclave_media::video::Tile;
use conclave_media::video::compose::{Composer, jpeg};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Tiles' packets waiting for the thread.
pub const PACKETS: usize = 4096;
/// Requests waiting (tiles, pictures).
pub const REQUESTS: usize = 64;
/// The canvas.
pub const WIDTH: usize = 1280;
pub const HEIGHT: usize = 720;
/// A tile's keyframe asked for at most this often.
const ASK_GAP: Duration = Duration::from_secs(1);

enum Request {
    Tiles(Vec<Tile>),
    /// The canvas as a JPEG.
    Picture(oneshot::Sender<Vec<u8>>),
}

/// The meeting's handle on its composer; dropping it stops the thread.
pub struct ComposerHandle {
    requests: SyncSender<Request>,
    media: RoomMedia,
}

impl std::fmt::Debug for ComposerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ComposerHandle")
    }
}

impl ComposerHandle {
    /// Starts the thread and has the media plane send it the tiles' streams.
    pub fn start(media: RoomMedia, tiles: Vec<Tile>) -> std::io::Result<ComposerHandle> {
        let (packets_tx, packets) = sync_channel(PACKETS);
        let (requests, inbox) = sync_channel(REQUESTS);
        let for_thread = media.clone();
        std::thread::Builder::new()
            .name("composer".into())
            .spawn(move || run(for_thread, tiles, packets, inbox))?;
        media.compose(Some(packets_tx));
        metrics::gauge!("conclave_video_composers").increment(1.0);
        Ok(ComposerHandle { requests, media })
    }

    /// The layout's tiles changed.
    pub fn tiles(&self, tiles: Vec<Tile>) {
        let _ = self.requests.try_send(Request::Tiles(tiles));
    }

    /// Asks for the canvas as a JPEG (the answer comes on `reply`; nothing when busy).
    pub fn picture(&self, reply: oneshot::Sender<Vec<u8>>) {
        let _ = self.requests.try_send(Request::Picture(reply));
    }
}

impl Drop for ComposerHandle {
    fn drop(&mut self) {
        // the thread ends when both its queues close
        self.media.compose(None);
        metrics::gauge!("conclave_video_composers").decrement(1.0);
    }
}

fn run(
    media: RoomMedia,
    tiles: Vec<Tile>,
    packets: Receiver<ComposedPacket>,
    requests: Receiver<Request>,
) {
    let mut composer = Composer::new(WIDTH, HEIGHT);
    composer.set_tiles(tiles);
    let mut asked: HashMap<usize, Instant> = HashMap::new();
    loop {
        let mut next = match packets.recv_timeout(Duration::from_millis(40)) {
            Ok(p) => Some(p),
            Err(RecvTimeoutError::Timeout) => None,
            // the media plane let go of the room: nothing more will come
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // a bounded batch, then the requests
        for _ in 0..512 {
            let Some(p) = next.take() else { break };
            if let Err(err) = composer.push(p.tile, p.codec, p.seq, p.marker, &p.payload) {
                tracing::debug!(tile = p.tile, %err, "a tile's frame was not decoded");
            }
            next = packets.try_recv().ok();
        }
        loop {
            match requests.try_recv() {
                Ok(Request::Tiles(tiles)) => composer.set_tiles(tiles),
                Ok(Request::Picture(reply)) => {
                    let picture = jpeg(composer.compose(), 80);
                    let _ = reply.send(picture);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        for tile in composer.keyframes_wanted() {
            if asked
                .get(&tile)
                .is_none_or(|t| now.duration_since(*t) >= ASK_GAP)
            {
                asked.insert(tile, now);
                media.composer_lost_picture(tile);
            }
        }
    }
}
