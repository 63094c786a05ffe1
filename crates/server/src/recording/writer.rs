//! A recording's thread: the room's frames in (from its media worker, bounded), one sealed
//! file per track out, flushed every two seconds so that a crash loses at most that much;
//! what the database must know (the recording, each track as it begins, the summary at the
//! end) goes to the recording's database task in order. When the meeting has video, the
//! composed pictures come too (from the room's composer, bounded) and make a track of their
//! own, placed on the audio's timeline.

use super::Who;
use conclave_media::mixer::{TapFrame, TapSource};
use conclave_media::recording::video::VideoTrackWriter;
use conclave_media::recording::{RecordingKey, TrackWriter};
use conclave_media::streaming::fmp4::sample_from_packets;
use conclave_media::video::sip_leg::ComposedFrame;
use conclave_store::model::{RecordingTrack, Utterance};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// How often every track's pages are closed, written and synced.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

pub(super) enum Control {
    /// Who a media member is (sent before its frames can come).
    Identify {
        member: u64,
        who: Who,
    },
    Stop,
}

/// What the database task is told, in order.
pub(super) enum Notice {
    Track(RecordingTrack),
    /// Utterances as they end (the meeting's members may replay them while it goes on).
    Utterances(Vec<Utterance>),
    Ended(Summary),
}

#[derive(Debug, Default)]
pub(super) struct Summary {
    /// (track, offset, duration, bytes)
    pub tracks: Vec<(i64, i64, i64, i64)>,
    pub utterances: Vec<Utterance>,
    /// A file could not be written (disk full…): what was written before stays.
    pub failed: bool,
}

struct Track {
    index: i64,
    writer: TrackWriter,
    file: Option<File>,
    bytes: i64,
    announced: bool,
    who: Who,
    /// When its last frame was taken (a second caller with the same number while the first
    /// is still talking gets a track of their own).
    last_frame: Option<Duration>,
    /// Utterances the database has been told of.
    told: usize,
}

/// The composed picture's track.
struct VideoTrack {
    index: i64,
    writer: VideoTrackWriter,
    file: Option<File>,
    bytes: i64,
    announced: bool,
}

impl VideoTrack {
    /// Appends what the writer sealed.
    fn write(&mut self, failed: &mut bool, id: &str) {
        let bytes = self.writer.take();
        write_file(
            &mut self.file,
            &mut self.bytes,
            &bytes,
            failed,
            id,
            self.index,
        );
    }
}

/// Places pictures on the recording's timeline: the first by when it came (against the
/// audio's clock), the next by their own timestamps — smooth, whatever the queues did —
/// unless those drift from the arrivals (a new composer thread starts a new clock).
#[derive(Debug, Clone, Copy)]
struct PictureClock {
    timestamp: u32,
    at: Duration,
}

/// How far a picture's timestamp may stray from its arrival before the clock is set again.
const PICTURE_DRIFT: Duration = Duration::from_millis(500);

impl PictureClock {
    fn place(clock: &mut Option<PictureClock>, timestamp: u32, arrived: Duration) -> Duration {
        if let Some(c) = *clock {
            let ticks = u64::from(timestamp.wrapping_sub(c.timestamp));
            let t = c.at + Duration::from_micros(ticks * 100 / 9);
            if t.abs_diff(arrived) < PICTURE_DRIFT {
                return t;
            }
        }
        *clock = Some(PictureClock {
            timestamp,
            at: arrived,
        });
        arrived
    }
}

pub(super) struct Writer {
    pub dir: PathBuf,
    pub id: String,
    pub key: [u8; 32],
    pub room_name: String,
    pub frames: Receiver<TapFrame>,
    pub pictures: Receiver<Arc<ComposedFrame>>,
    pub control: Receiver<Control>,
    pub notices: tokio::sync::mpsc::Sender<Notice>,
}

impl Writer {
    pub(super) fn run(self) {
        let Writer {
            dir,
            id,
            key,
            room_name,
            frames,
            pictures,
            control,
            notices,
        } = self;
        let mut state = State {
            dir,
            id,
            key,
            who: HashMap::new(),
            tracks: Vec::new(),
            by_identity: HashMap::new(),
            by_member: HashMap::new(),
            room_name: room_name.clone(),
            origin: None,
            arrival: None,
            next_index: 0,
            mix: None,
            video: None,
            picture_clock: None,
            failed: false,
            notices,
        };
        if let Err(err) = std::fs::create_dir_all(&state.dir) {
            tracing::error!(%err, dir = %state.dir.display(), "cannot create a recording's folder");
            state.failed = true;
        }
        let mix = Who {
            identity: "mix".into(),
            name: room_name,
            number: String::new(),
        };
        let mut last_flush = Instant::now();
        'run: loop {
            let next = frames.recv_timeout(Duration::from_millis(200));
            // who a member is was told before its first frame could come: read it first
            let mut stop = false;
            loop {
                match control.try_recv() {
                    Ok(Control::Identify { member, who }) => {
                        state.who.insert(member, who);
                    }
                    Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            match next {
                Ok(frame) => state.frame(frame, &mix),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break 'run,
            }
            while let Ok(picture) = pictures.try_recv() {
                state.picture(&picture);
            }
            if stop {
                break;
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                state.flush(false);
                last_flush = Instant::now();
            }
        }
        // frames already handed over belong to the recording
        while let Ok(frame) = frames.try_recv() {
            state.frame(frame, &mix);
        }
        while let Ok(picture) = pictures.try_recv() {
            state.picture(&picture);
        }
        state.flush(true);
        let summary = Summary {
            tracks: state
                .tracks
                .iter()
                .map(|t| {
                    (
                        t.index,
                        t.writer.offset().map_or(0, |o| o.as_millis() as i64),
                        t.writer.duration().as_millis() as i64,
                        t.bytes,
                    )
                })
                .chain(state.video.iter().map(|v| {
                    (
                        v.index,
                        v.writer.offset().map_or(0, |o| o.as_millis() as i64),
                        v.writer.duration().as_millis() as i64,
                        v.bytes,
                    )
                }))
                .collect(),
            utterances: state.tracks.iter().flat_map(untold).collect(),
            failed: state.failed,
        };
        let _ = state.notices.blocking_send(Notice::Ended(summary));
    }
}

struct State {
    dir: PathBuf,
    id: String,
    key: [u8; 32],
    who: HashMap<u64, Who>,
    tracks: Vec<Track>,
    by_identity: HashMap<String, usize>,
    by_member: HashMap<u64, usize>,
    room_name: String,
    origin: Option<Duration>,
    /// When the first frame came, and its time: the pictures' timeline hangs on it.
    arrival: Option<(Instant, Duration)>,
    /// The last member (or video) track's number (the mix is 0).
    next_index: i64,
    /// The mix's track, once its first frame came.
    mix: Option<usize>,
    /// The composed picture's track, once its first keyframe came.
    video: Option<VideoTrack>,
    picture_clock: Option<PictureClock>,
    failed: bool,
    notices: tokio::sync::mpsc::Sender<Notice>,
}

impl State {
    /// A composed picture: on the timeline from when it came; the track starts at the first
    /// keyframe after the audio began.
    fn picture(&mut self, picture: &ComposedFrame) {
        let (Some(origin), Some((first_at, first_time))) = (self.origin, self.arrival) else {
            return;
        };
        let arrived = (first_time + first_at.elapsed()).saturating_sub(origin);
        if self.video.is_none() {
            if !picture.keyframe {
                return;
            }
            self.video = self.video_track(picture.size);
        }
        let time = PictureClock::place(&mut self.picture_clock, picture.timestamp, arrived);
        let Some(video) = self.video.as_mut() else {
            return;
        };
        let sample = sample_from_packets(picture.packets.iter().map(|(p, _)| &p[..]));
        video.writer.push(time, picture.keyframe, &sample);
        if !video.announced
            && let Some(offset) = video.writer.offset()
        {
            video.announced = true;
            let _ = self.notices.blocking_send(Notice::Track(RecordingTrack {
                track: video.index,
                kind: "video".into(),
                identity: "video".into(),
                name: self.room_name.clone(),
                number: String::new(),
                offset_ms: offset.as_millis() as i64,
                duration_ms: None,
                bytes: None,
            }));
        }
        video.write(&mut self.failed, &self.id);
    }

    fn video_track(&mut self, (w, h): (usize, usize)) -> Option<VideoTrack> {
        let key = RecordingKey::new(&self.key).ok()?;
        let size = (u16::try_from(w).ok()?, u16::try_from(h).ok()?);
        self.next_index += 1;
        let index = self.next_index;
        let writer = VideoTrackWriter::new(key, self.id.as_bytes(), index as u32, size);
        let path = self.dir.join(super::track_file(index, "video"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .inspect_err(|err| {
                tracing::error!(%err, path = %path.display(), "cannot create the video track's file");
                self.failed = true;
            })
            .ok();
        Some(VideoTrack {
            index,
            writer,
            file,
            bytes: 0,
            announced: false,
        })
    }

    fn frame(&mut self, frame: TapFrame, mix: &Who) {
        let origin = *self.origin.get_or_insert(frame.time);
        self.arrival.get_or_insert((Instant::now(), frame.time));
        let slot = match frame.source {
            TapSource::Room => match self.mix {
                Some(slot) => Some(slot),
                None => {
                    self.mix = self.track_for(None, mix.clone(), origin, &frame);
                    self.mix
                }
            },
            TapSource::Member(member) => match self.by_member.get(&member) {
                Some(&slot) => Some(slot),
                None => {
                    let who = self.who.get(&member).cloned().unwrap_or_else(|| Who {
                        identity: format!("member:{member}"),
                        name: format!("#{member}"),
                        number: String::new(),
                    });
                    let slot = self.track_for(Some(member), who, origin, &frame);
                    if let Some(slot) = slot {
                        self.by_member.insert(member, slot);
                    }
                    slot
                }
            },
        };
        let Some(track) = slot.and_then(|s| self.tracks.get_mut(s)) else {
            return;
        };
        track.last_frame = Some(frame.time);
        if let Err(err) = track.writer.push(frame.time, frame.rate, &frame.samples) {
            tracing::warn!(%err, recording = self.id, "a recorded frame was not encoded");
        }
        if !track.announced
            && let Some(offset) = track.writer.offset()
        {
            track.announced = true;
            let notice = Notice::Track(RecordingTrack {
                track: track.index,
                kind: if track.index == 0 { "mix" } else { "member" }.into(),
                identity: track.who.identity.clone(),
                name: track.who.name.clone(),
                number: track.who.number.clone(),
                offset_ms: offset.as_millis() as i64,
                duration_ms: None,
                bytes: None,
            });
            let _ = self.notices.blocking_send(notice);
        }
        let bytes = track.writer.take();
        write(track, &bytes, &mut self.failed, &self.id);
        let new = untold(track);
        if !new.is_empty() {
            track.told += new.len();
            let _ = self.notices.blocking_send(Notice::Utterances(new));
        }
    }

    /// The track of this person (the mix when `member` is None), made on first use; one per
    /// identity, so that someone who leaves and comes back keeps theirs.
    fn track_for(
        &mut self,
        member: Option<u64>,
        who: Who,
        origin: Duration,
        frame: &TapFrame,
    ) -> Option<usize> {
        let mut identity = if member.is_none() {
            "mix".to_owned()
        } else {
            who.identity.clone()
        };
        if let Some(&slot) = self.by_identity.get(&identity) {
            let busy = member.is_some()
                && self.tracks[slot]
                    .last_frame
                    .is_some_and(|last| frame.time.saturating_sub(last) < Duration::from_secs(2));
            if !busy {
                return Some(slot);
            }
            identity = format!("{identity}#{}", self.tracks.len());
        }
        let rate = frame.rate;
        // the mix is track 0 whenever its first frame comes (members' may come first)
        let index = match member {
            None => 0,
            Some(_) => {
                self.next_index += 1;
                self.next_index
            }
        };
        let key = RecordingKey::new(&self.key).ok()?;
        let comments = vec![
            format!("TITLE={}", who.name),
            format!("CONCLAVE_RECORDING={}", self.id),
            format!("CONCLAVE_TRACK={index}"),
        ];
        let writer = match TrackWriter::new(
            key,
            self.id.as_bytes(),
            index as u32,
            rate,
            origin,
            member.is_some(),
            &comments,
        ) {
            Ok(w) => w,
            Err(err) => {
                tracing::error!(%err, recording = self.id, "cannot start a track");
                return None;
            }
        };
        let path = self.dir.join(super::track_file(index, "member"));
        let file = match std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => Some(f),
            Err(err) => {
                tracing::error!(%err, path = %path.display(), "cannot create a track's file");
                self.failed = true;
                None
            }
        };
        self.tracks.push(Track {
            index,
            writer,
            file,
            bytes: 0,
            announced: false,
            who: Who {
                identity: identity.clone(),
                ..who
            },
            last_frame: None,
            told: 0,
        });
        let slot = self.tracks.len() - 1;
        self.by_identity.insert(identity, slot);
        Some(slot)
    }

    fn flush(&mut self, last: bool) {
        for track in &mut self.tracks {
            if last {
                track.writer.finish();
            } else {
                track.writer.flush();
            }
            let bytes = track.writer.take();
            write(track, &bytes, &mut self.failed, &self.id);
            if let Some(file) = &track.file
                && let Err(err) = file.sync_data()
            {
                tracing::warn!(%err, recording = self.id, "cannot sync a track's file");
            }
        }
        if let Some(video) = self.video.as_mut() {
            if last {
                video.writer.finish();
            } else {
                video.writer.flush();
            }
            video.write(&mut self.failed, &self.id);
            if let Some(file) = &video.file
                && let Err(err) = file.sync_data()
            {
                tracing::warn!(%err, recording = self.id, "cannot sync the video track's file");
            }
        }
    }
}

/// A track's utterances the database has not been told of.
fn untold(track: &Track) -> Vec<Utterance> {
    track.writer.utterances()[track.told.min(track.writer.utterances().len())..]
        .iter()
        .map(|u| Utterance {
            track: track.index,
            start_ms: u.start_ms as i64,
            end_ms: u.end_ms as i64,
        })
        .collect()
}

fn write(track: &mut Track, bytes: &[u8], failed: &mut bool, id: &str) {
    write_file(
        &mut track.file,
        &mut track.bytes,
        bytes,
        failed,
        id,
        track.index,
    );
}

/// Appends to a track's file; on an error (a full disk) the track stops there, what it wrote
/// before stays playable.
fn write_file(
    file: &mut Option<File>,
    written: &mut i64,
    bytes: &[u8],
    failed: &mut bool,
    id: &str,
    index: i64,
) {
    if bytes.is_empty() {
        return;
    }
    let Some(f) = file.as_mut() else {
        return;
    };
    match f.write_all(bytes) {
        Ok(()) => *written += bytes.len() as i64,
        Err(err) => {
            tracing::error!(%err, recording = id, track = index, "cannot write a recording");
            metrics::counter!("conclave_recording_write_errors_total").increment(1);
            *file = None;
            *failed = true;
        }
    }
}
