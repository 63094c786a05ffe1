//! A room's composed picture: a thread per room whose picture is wanted (the console's
//! preview, SIP video terminals, live streams and recordings). The media plane's SFU sends it
//! every tile's stream as it would a viewer's; the thread puts them back into frames, decodes
//! them and draws the canvas (`conclave_media::video::compose`). While terminals receive it,
//! it draws [`FPS`] times a second and encodes once per size they want
//! (`conclave_media::video::output`), the media plane adding each terminal's RTP header.
//! The meeting's actor owns it, tells it the tiles and the sizes, and stops it when nobody
//! has asked for a while and no terminal receives it.
//!
//! Bounded everywhere: packets wait in a queue of [`PACKETS`] (the media plane drops beyond
//! it and counts), requests in one of [`REQUESTS`]; a tile that cannot be decoded asks its
//! sender for a keyframe at most once a second.

use crate::media::RoomMedia;
use conclave_media::engine::ComposerInput;
use conclave_media::video::Tile;
use conclave_media::video::compose::{Composer, jpeg};
use conclave_media::video::output::{FPS, Outputs};
use conclave_media::video::sip_leg::ComposedFrame;
use std::collections::HashMap;
use std::sync::Arc;
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

/// Who else takes the encoded pictures (besides the terminals, through the media plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stream,
    Recording,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::Stream => "stream",
            Sink::Recording => "recording",
        }
    }
}

/// A sink's picture size and where its pictures go (its thread's queue).
pub type PictureSink = ((usize, usize), SyncSender<Arc<ComposedFrame>>);

enum Request {
    Tiles(Vec<Tile>),
    /// The sizes terminals receive (none: the thread only draws when asked).
    Sizes(Vec<(usize, usize)>),
    /// A terminal lost the picture (SIP INFO picture_fast_update).
    Keyframe,
    /// A live stream or a recording takes the pictures of its size (or no longer).
    Sink(Sink, Option<PictureSink>),
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

    /// The sizes terminals receive.
    pub fn sizes(&self, sizes: Vec<(usize, usize)>) {
        let _ = self.requests.try_send(Request::Sizes(sizes));
    }

    /// A live stream or a recording takes the pictures of `size` (its thread's queue), or
    /// no longer.
    pub fn sink(&self, sink: Sink, to: Option<PictureSink>) {
        let _ = self.requests.try_send(Request::Sink(sink, to));
    }

    /// A terminal asks for a keyframe.
    pub fn keyframe(&self) {
        let _ = self.requests.try_send(Request::Keyframe);
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
    packets: Receiver<ComposerInput>,
    requests: Receiver<Request>,
) {
    let mut composer = Composer::new(WIDTH, HEIGHT);
    composer.set_tiles(tiles);
    let mut outputs = Outputs::default();
    let mut sinks: Vec<(Sink, PictureSink)> = Vec::new();
    let mut asked: HashMap<usize, Instant> = HashMap::new();
    let epoch = Instant::now();
    let frame = Duration::from_secs(1) / FPS;
    let mut next_frame = epoch;
    loop {
        let wait = if outputs.is_empty() {
            Duration::from_millis(40)
        } else {
            next_frame.saturating_duration_since(Instant::now())
        };
        let mut next = match packets.recv_timeout(wait) {
            Ok(p) => Some(p),
            Err(RecvTimeoutError::Timeout) => None,
            // the media plane let go of the room: nothing more will come
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // a bounded batch, then the requests
        for _ in 0..512 {
            match next.take() {
                Some(ComposerInput::Tile(p)) => {
                    if let Err(err) = composer.push(p.tile, p.codec, p.seq, p.marker, &p.payload) {
                        tracing::debug!(tile = p.tile, %err, "a tile's frame was not decoded");
                    }
                }
                Some(ComposerInput::KeyframeWanted) => outputs.want_keyframe(),
                None => break,
            }
            next = packets.try_recv().ok();
        }
        let now = Instant::now();
        if !outputs.is_empty() && now >= next_frame {
            composer.compose();
            for encoded in outputs.encode(now.duration_since(epoch), &mut composer) {
                let encoded = Arc::new(encoded);
                for (kind, (size, sink)) in &sinks {
                    if *size == encoded.size && sink.try_send(encoded.clone()).is_err() {
                        metrics::counter!("conclave_video_sink_pictures_dropped_total", "sink" => kind.name())
                            .increment(1);
                    }
                }
                media.send_composed(encoded);
            }
            // a late frame is not made up for: the next one comes a frame's time later
            next_frame += frame;
            if next_frame < now {
                next_frame = now + frame;
            }
        }
        loop {
            match requests.try_recv() {
                Ok(Request::Tiles(tiles)) => composer.set_tiles(tiles),
                Ok(Request::Sizes(sizes)) => {
                    if let Err(err) = outputs.set_sizes(&sizes) {
                        tracing::warn!(%err, "no encoder for the composed picture");
                    }
                }
                Ok(Request::Keyframe) => outputs.want_keyframe(),
                Ok(Request::Sink(kind, to)) => {
                    sinks.retain(|(k, _)| *k != kind);
                    if let Some(to) = to {
                        // a player starts at a keyframe
                        outputs.want_keyframe();
                        sinks.push((kind, to));
                    }
                }
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
