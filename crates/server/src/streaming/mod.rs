//! Live streams of meetings (docs/streaming.md). A meeting's actor starts one: a thread
//! takes the room's mix from its media worker (the recording's tap; members' frames are
//! ignored), encodes it once (Opus), takes the composed picture of the meeting's layout from
//! its composer (H.264, encoded there once) and publishes two-second HLS segments in memory;
//! the
//! HTTP handlers (`api::watch`) serve the same bytes to every listener. A task keeps the
//! database's row: the scheduled stream of the room that is due, or a new one.

use anyhow::Result;
use axum::body::Bytes;
use conclave_media::mixer::{TapFrame, TapSource};
use conclave_media::streaming::fmp4::sample_from_packets;
use conclave_media::streaming::{LiveEncoder, Segment, media_playlist};
use conclave_media::video::sip_leg::ComposedFrame;
use conclave_store::model::{Room, Stream};
use conclave_store::{Store, new_id, now_ms, repo};
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Frames waiting for a stream's thread (the recording's tap carries members' voices too:
/// room for 2 s of a 100-member room); beyond it the media worker drops frames (counted).
const FRAME_QUEUE: usize = 10_000;
/// Segments served: 6 × 2 s (RFC 8216 wants three target durations at least).
const WINDOW: usize = 6;
/// The mix's bitrate.
const BITRATE: i32 = 48_000;
/// A listener is counted while they fetched the playlist within this time.
const LISTENING: Duration = Duration::from_secs(15);
/// Listeners remembered at most (a flood of made-up ids does not grow memory without end).
const MAX_LISTENERS: usize = 100_000;
/// How long an ended stream's last segments stay served (players finish what they have).
const LINGER: Duration = Duration::from_secs(60);
/// Composed pictures waiting for a stream's thread (a second and a half); beyond, the
/// composer drops them (counted).
const PICTURE_QUEUE: usize = 45;
/// The composed picture's size in streams.
pub const PICTURE: (usize, usize) = (1280, 720);

/// A scheduled stream starts with its room's meeting when it is due within this time.
const EARLY: Duration = Duration::from_secs(30 * 60);

/// A random token for links anyone may be given (streams, shared recordings): 22 letters
/// and digits, about 128 bits.
pub fn token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A password viewers can type: six digits.
pub fn new_password() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000))
}

/// A new scheduled stream's row.
pub fn scheduled(
    room: &Room,
    title: &str,
    starts_at: Option<i64>,
    password: Option<String>,
    created_by: &str,
) -> Stream {
    Stream {
        id: new_id(),
        tenant_id: room.tenant_id.clone(),
        room_id: room.id.clone(),
        title: if title.trim().is_empty() {
            room.name.clone()
        } else {
            title.trim().to_owned()
        },
        key: token(),
        access: token(),
        password,
        state: "scheduled".into(),
        starts_at,
        started_at: None,
        ended_at: None,
        meeting_id: None,
        created_by: created_by.to_owned(),
        peak_listeners: 0,
        created_at: now_ms(),
    }
}

/// Streams a stop (a crash, `kill -9`) left live have ended: their segments were in memory.
pub async fn end_abandoned(store: &Store) -> Result<()> {
    let mut conn = store.conn().await?;
    let ended = repo::streams::end_abandoned(&mut conn, now_ms()).await?;
    if ended > 0 {
        tracing::warn!(ended, "streams were ended by the server's stop");
    }
    Ok(())
}

/// One segment as served.
struct Served {
    sequence: u64,
    duration: u32,
    discontinuity: bool,
    data: Bytes,
}

#[derive(Default)]
struct Published {
    init: Bytes,
    segments: VecDeque<Served>,
    /// Discontinuities before the first segment served.
    discontinuities: u64,
    ended: bool,
    playlist: Bytes,
}

/// A stream's segments and listeners, shared by its thread and the HTTP handlers.
pub struct Channel {
    published: RwLock<Published>,
    listeners: Mutex<Listeners>,
    current: AtomicU64,
    peak: AtomicU64,
}

struct Listeners {
    seen: HashMap<String, Instant>,
    swept: Instant,
}

impl Channel {
    fn new(init: Bytes) -> Channel {
        let mut published = Published {
            init,
            ..Published::default()
        };
        published.playlist = media_playlist([], 0, false).into();
        Channel {
            published: RwLock::new(published),
            listeners: Mutex::new(Listeners {
                seen: HashMap::new(),
                swept: Instant::now(),
            }),
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    fn publish(&self, segment: Segment) {
        let Ok(mut p) = self.published.write() else {
            return;
        };
        p.segments.push_back(Served {
            sequence: segment.sequence,
            duration: segment.duration,
            discontinuity: segment.discontinuity,
            data: segment.data.into(),
        });
        // a discontinuity tag that leaves the playlist is counted in its
        // EXT-X-DISCONTINUITY-SEQUENCE (RFC 8216 §4.3.3.3)
        while p.segments.len() > WINDOW {
            if let Some(old) = p.segments.pop_front()
                && old.discontinuity
            {
                p.discontinuities += 1;
            }
        }
        Self::relist(&mut p);
    }

    fn end(&self) {
        if let Ok(mut p) = self.published.write() {
            p.ended = true;
            Self::relist(&mut p);
        }
    }

    fn relist(p: &mut Published) {
        let playlist = media_playlist(
            p.segments
                .iter()
                .map(|s| (s.sequence, s.duration, s.discontinuity)),
            p.discontinuities,
            p.ended,
        );
        p.playlist = playlist.into();
    }

    /// The playlist, counting `listener` (an id the page made, or an address).
    pub fn playlist(&self, listener: &str) -> Bytes {
        self.listen(listener);
        self.published
            .read()
            .map(|p| p.playlist.clone())
            .unwrap_or_default()
    }

    pub fn init(&self) -> Bytes {
        self.published
            .read()
            .map(|p| p.init.clone())
            .unwrap_or_default()
    }

    /// A segment still served.
    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        let p = self.published.read().ok()?;
        let first = p.segments.front()?.sequence;
        let at = usize::try_from(sequence.checked_sub(first)?).ok()?;
        p.segments.get(at).map(|s| s.data.clone())
    }

    pub fn ended(&self) -> bool {
        self.published.read().map(|p| p.ended).unwrap_or(true)
    }

    fn listen(&self, listener: &str) {
        let Ok(mut l) = self.listeners.lock() else {
            return;
        };
        let now = Instant::now();
        if l.seen.len() < MAX_LISTENERS || l.seen.contains_key(listener) {
            l.seen.insert(listener.to_owned(), now);
        }
        // counted at most once a second: a thousand listeners cost one sweep, not a
        // thousand counts
        if now.duration_since(l.swept) >= Duration::from_secs(1) || l.seen.len() >= MAX_LISTENERS {
            l.swept = now;
            l.seen
                .retain(|_, seen| now.duration_since(*seen) < LISTENING);
            let current = l.seen.len() as u64;
            self.current.store(current, Ordering::Relaxed);
            self.peak.fetch_max(current, Ordering::Relaxed);
        }
    }

    /// Listeners now (as of the last second).
    pub fn listeners(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

/// A stream being served: its row and its channel.
pub struct Live {
    pub stream: Stream,
    pub channel: Arc<Channel>,
}

/// The streams of this server; cheap to clone.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Served streams by key (live ones, and ended ones for a minute).
    /// Shared, not cloned: every HLS request of every listener looks its stream up here.
    served: Mutex<HashMap<String, Arc<Live>>>,
    /// Wrong passwords of shared links (streams, recordings) per link and address.
    passwords: Arc<crate::limiter::Limiter>,
}

impl Streams {
    pub fn new(store: Store) -> Streams {
        Streams {
            inner: Arc::new(Inner {
                store,
                served: Mutex::new(HashMap::new()),
                passwords: crate::limiter::Limiter::new(
                    "stream_password",
                    crate::limiter::LimiterConfig::room_pin(),
                ),
            }),
        }
    }

    /// Wrong passwords of shared links (streams, recordings), per link and per address.
    pub fn passwords(&self) -> &Arc<crate::limiter::Limiter> {
        &self.inner.passwords
    }

    /// The stream served under `key`, if any.
    pub fn served(&self, key: &str) -> Option<Arc<Live>> {
        self.inner.served.lock().ok()?.get(key).cloned()
    }

    /// The live stream of a room, if any.
    pub fn live_in(&self, room_id: &str) -> Option<Arc<Live>> {
        let served = self.inner.served.lock().ok()?;
        served
            .values()
            .find(|l| l.stream.room_id == room_id && !l.channel.ended())
            .cloned()
    }

    /// Whether the room has a scheduled stream due now (its meeting starts streaming).
    pub async fn due(&self, room_id: &str) -> Result<bool> {
        let mut conn = self.inner.store.conn().await?;
        let by = now_ms() + EARLY.as_millis() as i64;
        Ok(repo::streams::due(&mut conn, room_id, by).await?.is_some())
    }

    /// Streams a room's meeting from its next tick; the returned handle's `sink` goes to
    /// the media plane. Never blocks: the stream's task finds or makes its row.
    pub fn start(&self, room: &Room, meeting_id: &str, started_by: &str) -> ActiveStream {
        let (frames_tx, frames) = sync_channel(FRAME_QUEUE);
        let (pictures_tx, pictures) = sync_channel(PICTURE_QUEUE);
        let encoder = LiveEncoder::with_video(BITRATE, (PICTURE.0 as u16, PICTURE.1 as u16));
        let channel = Arc::new(Channel::new(
            encoder
                .as_ref()
                .map(|e| Bytes::copy_from_slice(e.init()))
                .unwrap_or_default(),
        ));
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        match encoder {
            Ok(encoder) => {
                let c = channel.clone();
                let thread = std::thread::Builder::new()
                    .name("stream".into())
                    .spawn(move || {
                        run(encoder, frames, pictures, &c);
                        let _ = ended_tx.send(());
                    });
                if let Err(err) = thread {
                    tracing::error!(%err, "cannot start a stream's thread");
                }
            }
            Err(err) => tracing::error!(%err, "cannot make a stream's encoder"),
        }
        let id = Arc::new(OnceLock::new());
        let database = tokio::spawn(keep(
            self.clone(),
            room.clone(),
            meeting_id.to_owned(),
            started_by.to_owned(),
            channel,
            id.clone(),
            ended,
        ));
        metrics::counter!("conclave_streams_started_total").increment(1);
        ActiveStream {
            id,
            sink: frames_tx,
            pictures: pictures_tx,
            database,
        }
    }
}

/// The stream's thread: frames in (and the composed pictures between them), segments
/// published, until its sink is dropped.
fn run(
    mut encoder: LiveEncoder,
    frames: Receiver<TapFrame>,
    pictures: Receiver<Arc<ComposedFrame>>,
    channel: &Channel,
) {
    let encoded = metrics::counter!("conclave_stream_segments_total");
    let start = Instant::now();
    loop {
        // pictures on the stream's clock (the audio's starts with the thread too)
        while let Ok(picture) = pictures.try_recv() {
            let time = (start.elapsed().as_micros() * 9 / 100) as u64;
            let sample = sample_from_packets(picture.packets.iter().map(|(p, _)| p.as_slice()));
            encoder.push_video(time, sample, picture.keyframe);
        }
        match frames.recv_timeout(Duration::from_millis(500)) {
            Ok(frame) => {
                if frame.source != TapSource::Room {
                    continue;
                }
                match encoder.push(frame.time, frame.rate, &frame.samples) {
                    Ok(Some(segment)) => {
                        encoded.increment(1);
                        channel.publish(segment);
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(%err, "a streamed frame was not encoded"),
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(segment) = encoder.finish() {
        channel.publish(segment);
    }
    channel.end();
}

/// The stream's database task: claims the room's due scheduled stream (or makes one), serves
/// it under its key, and ends it when the thread has.
async fn keep(
    service: Streams,
    room: Room,
    meeting_id: String,
    started_by: String,
    channel: Arc<Channel>,
    id: Arc<OnceLock<String>>,
    ended: tokio::sync::oneshot::Receiver<()>,
) {
    let store = service.inner.store.clone();
    let claimed: Result<Stream> = async {
        let mut conn = store.conn().await?;
        let now = now_ms();
        // a scheduled one due (the API's startStream made one due now when asked)
        while let Some(mut s) =
            repo::streams::due(&mut conn, &room.id, now + EARLY.as_millis() as i64).await?
        {
            if repo::streams::go_live(&mut conn, &s.id, &meeting_id, now).await? {
                s.state = "live".into();
                s.started_at = Some(now);
                s.meeting_id = Some(meeting_id.clone());
                return Ok(s);
            }
        }
        let mut s = scheduled(&room, "", None, Some(new_password()), &started_by);
        s.state = "live".into();
        s.started_at = Some(now);
        s.meeting_id = Some(meeting_id.clone());
        repo::streams::insert(&mut conn, &s).await?;
        Ok(s)
    }
    .await;
    let stream = match claimed {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(
                err = format!("{err:#}"),
                room = room.number,
                "a stream has no row: it is not served"
            );
            let _ = ended.await;
            return;
        }
    };
    let _ = id.set(stream.id.clone());
    let key = stream.key.clone();
    tracing::info!(room = room.number, stream = stream.id, "streaming");
    if let Ok(mut served) = service.inner.served.lock() {
        served.insert(
            key.clone(),
            Arc::new(Live {
                stream: stream.clone(),
                channel: channel.clone(),
            }),
        );
    }
    let _ = ended.await;
    let peak = i64::try_from(channel.peak()).unwrap_or(i64::MAX);
    let result: Result<()> = async {
        let mut conn = store.conn().await?;
        repo::streams::end(&mut conn, &stream.id, now_ms(), peak).await?;
        Ok(())
    }
    .await;
    if let Err(err) = result {
        tracing::error!(
            err = format!("{err:#}"),
            stream = stream.id,
            "a stream's end was not kept"
        );
    }
    tracing::info!(stream = stream.id, peak, "stream ended");
    // players finish the last segments, then the stream is no longer served
    let inner = service.inner.clone();
    tokio::spawn(async move {
        tokio::time::sleep(LINGER).await;
        if let Ok(mut served) = inner.served.lock()
            && served
                .get(&key)
                .is_some_and(|l| Arc::ptr_eq(&l.channel, &channel))
        {
            served.remove(&key);
        }
    });
}

/// A stream going on: what the meeting's actor holds.
pub struct ActiveStream {
    /// Its row's id, once its task has it.
    id: Arc<OnceLock<String>>,
    sink: SyncSender<TapFrame>,
    /// Where the room's composer sends the picture.
    pictures: SyncSender<Arc<ComposedFrame>>,
    database: tokio::task::JoinHandle<()>,
}

impl ActiveStream {
    /// Where the room's composer sends the composed picture ([`PICTURE`] sized).
    pub fn pictures(&self) -> crate::video::composer::PictureSink {
        (PICTURE, self.pictures.clone())
    }

    /// Where the media plane sends the room's frames.
    pub fn sink(&self) -> crate::media::TapSink {
        self.sink.clone()
    }

    pub fn id(&self) -> Option<String> {
        self.id.get().cloned()
    }

    /// Stops: the thread closes the last segment; the returned task ends once the database
    /// knows.
    pub fn stop(self) -> tokio::task::JoinHandle<()> {
        drop(self.sink);
        self.database
    }
}
