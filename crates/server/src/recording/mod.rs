//! Recording meetings (docs/recording.md). A meeting's actor starts a recording: a thread
//! (`writer`) takes the room's frames from its media worker and writes a sealed Ogg Opus
//! file per track — the mix, then one per person — under DATA_DIR/recordings/<tenant>/<id>/;
//! a task writes what the database must know, in order. Keys: `keys`.

mod blobs;
mod keys;
mod writer;

use anyhow::{Context, Result, anyhow};
use conclave_media::recording::{RecordingKey, sealed, video};
use conclave_store::model::{Recording, RecordingTrack, Room};
use conclave_store::{Store, new_id, now_ms, repo};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use writer::{Control, Notice};

pub use keys::MasterKey;

/// Frames a recording's thread may have waiting (about 2 s of a 100-member room); beyond
/// it the media worker drops frames (counted) rather than wait.
const FRAME_QUEUE: usize = 10_000;
/// Composed pictures waiting for the recording's thread (a second and a half); beyond, the
/// composer drops them (counted).
const PICTURE_QUEUE: usize = 45;

/// Who a track is: one per person (`identity`), named as the roster names them.
#[derive(Debug, Clone)]
pub struct Who {
    pub identity: String,
    pub name: String,
    pub number: String,
}

/// The file of a recording's track of this kind (`mix`, `member`: Ogg Opus; `video`: the
/// composed pictures).
pub fn track_file(track: i64, kind: &str) -> String {
    match kind {
        "video" => format!("{track}.video.sealed"),
        _ => format!("{track}.opus.sealed"),
    }
}

/// Recordings of this server: where they are kept and their keys; cheap to clone.
#[derive(Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    root: PathBuf,
    master: MasterKey,
    blobs: blobs::Blobs,
}

impl Recordings {
    /// Recordings under `data_dir/recordings` while they go on, then in `store_url` (or
    /// there), keyed by `key_file` (default `data_dir/recordings.key`, made on first start).
    pub fn open(
        store: Store,
        data_dir: &Path,
        key_file: Option<&Path>,
        store_url: Option<&str>,
    ) -> Result<Recordings> {
        let key_file = key_file.map_or_else(|| data_dir.join("recordings.key"), Path::to_path_buf);
        let master = MasterKey::load_or_create(&key_file).context("recording_key_file")?;
        Ok(Recordings {
            inner: Arc::new(Inner {
                store,
                root: data_dir.join("recordings"),
                master,
                blobs: blobs::Blobs::parse(store_url)?,
            }),
        })
    }

    /// Recordings a stop (a crash, `kill -9`) left open are marked interrupted: what they
    /// wrote plays.
    pub async fn recover(&self) -> Result<usize> {
        let mut conn = self.inner.store.conn().await?;
        let ids = repo::recordings::interrupt_abandoned(&mut conn, now_ms()).await?;
        for id in &ids {
            tracing::warn!(
                recording = id,
                "a recording was interrupted by the server's stop"
            );
        }
        // what ended but is still local (interrupted, or an upload that failed) goes to the
        // store now, off the start-up path
        if matches!(self.inner.blobs, blobs::Blobs::S3 { .. }) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(err) = this.settle_leftovers().await {
                    tracing::warn!(
                        err = format!("{err:#}"),
                        "recordings left local were not uploaded"
                    );
                }
            });
        }
        Ok(ids.len())
    }

    /// Uploads the local recordings that have ended (bounded: a thousand per start).
    async fn settle_leftovers(&self) -> Result<()> {
        let mut tenants = match tokio::fs::read_dir(&self.inner.root).await {
            Ok(t) => t,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let mut seen = 0;
        while let Some(tenant) = tenants.next_entry().await? {
            let mut recordings = tokio::fs::read_dir(tenant.path()).await?;
            while let Some(entry) = recordings.next_entry().await? {
                seen += 1;
                if seen > 1000 {
                    return Ok(());
                }
                let id = entry.file_name().to_string_lossy().into_owned();
                let mut conn = self.inner.store.conn().await?;
                let Some(r) = repo::recordings::get(&mut conn, &id).await? else {
                    continue;
                };
                drop(conn);
                if r.state != "recording" {
                    self.settle(&r).await;
                }
            }
        }
        Ok(())
    }

    /// Moves an ended recording's files to the store (a failure leaves them local).
    async fn settle(&self, r: &Recording) {
        let dir = self.dir(&r.tenant_id, &r.id);
        if let Err(err) = self.inner.blobs.settle(&dir, &r.tenant_id, &r.id).await {
            metrics::counter!("conclave_recording_upload_errors_total").increment(1);
            tracing::warn!(
                err = format!("{err:#}"),
                recording = r.id,
                "a recording stays local"
            );
        }
    }

    fn dir(&self, tenant_id: &str, recording_id: &str) -> PathBuf {
        self.inner.root.join(tenant_id).join(recording_id)
    }

    /// Starts recording a room's meeting; the returned handle's `sink` goes to the media
    /// plane. Never blocks: the database learns of it from the recording's own task.
    pub fn start(&self, room: &Room, meeting_id: &str, started_by: &str) -> ActiveRecording {
        let id = new_id();
        let (key, wrapped_key) = self.inner.master.new_recording_key(&room.tenant_id, &id);
        let record = Recording {
            id: id.clone(),
            tenant_id: room.tenant_id.clone(),
            meeting_id: Some(meeting_id.to_owned()),
            room_id: Some(room.id.clone()),
            room_number: room.number.clone(),
            room_name: room.name.clone(),
            started_by: started_by.to_owned(),
            started_at: now_ms(),
            ended_at: None,
            state: "recording".into(),
            visibility: "private".into(),
            wrapped_key,
            share_key: None,
            share_access: None,
            share_password: None,
        };
        let (frames_tx, frames) = sync_channel(FRAME_QUEUE);
        let (pictures_tx, pictures) = sync_channel(PICTURE_QUEUE);
        let (control_tx, control) = sync_channel(1024);
        let (notices_tx, notices) = tokio::sync::mpsc::channel(256);
        let writer = writer::Writer {
            dir: self.dir(&room.tenant_id, &id),
            id: id.clone(),
            key,
            room_name: room.name.clone(),
            frames,
            pictures,
            control,
            notices: notices_tx,
        };
        let database = tokio::spawn(keep(self.clone(), record, notices));
        let thread = std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || writer.run());
        if let Err(err) = &thread {
            tracing::error!(%err, "cannot start a recording's thread");
        }
        metrics::counter!("conclave_recordings_started_total").increment(1);
        ActiveRecording {
            id,
            sink: frames_tx,
            pictures: pictures_tx,
            control: control_tx,
            database,
        }
    }

    /// A recording's key, unwrapped.
    fn key(&self, r: &Recording) -> Result<RecordingKey> {
        let bytes = self
            .inner
            .master
            .unwrap_key(&r.tenant_id, &r.id, &r.wrapped_key)
            .ok_or_else(|| anyhow!("the recording's key does not open with this master key"))?;
        RecordingKey::new(&bytes).map_err(|e| anyhow!("{e}"))
    }

    /// One audio track as Ogg Opus, decrypted in memory (nothing readable touches the disk),
    /// and whether the file was complete.
    pub async fn read_track(&self, r: &Recording, track: i64) -> Result<(Vec<u8>, bool)> {
        self.read_sealed(r, track, "member").await
    }

    /// The recording's video (its picture track `video` and its mix) as one MP4, built in
    /// memory; and whether both files were complete.
    pub async fn read_video(
        &self,
        r: &Recording,
        video: &RecordingTrack,
        mix: Option<&RecordingTrack>,
    ) -> Result<(Vec<u8>, bool)> {
        let (pictures, mut complete) = self.read_sealed(r, video.track, "video").await?;
        let mix = match mix {
            Some(m) => {
                let (ogg, whole) = self.read_track(r, m.track).await?;
                complete &= whole;
                Some((ogg, m.offset_ms))
            }
            None => None,
        };
        tokio::task::spawn_blocking(move || {
            let log = video::read_pictures(&pictures).context("the picture track")?;
            let mix = match &mix {
                Some((ogg, offset)) => Some((
                    conclave_media::recording::ogg::read_packets(ogg).context("the mix")?,
                    std::time::Duration::from_millis(u64::try_from(*offset).unwrap_or(0)),
                )),
                None => None,
            };
            Ok((
                video::recording_mp4(mix.as_ref().map(|(p, o)| (p, *o)), log),
                complete,
            ))
        })
        .await
        .context("building the video")?
    }

    /// One track's file, opened.
    async fn read_sealed(&self, r: &Recording, track: i64, kind: &str) -> Result<(Vec<u8>, bool)> {
        let key = self.key(r)?;
        let file_name = track_file(track, kind);
        let path = self.dir(&r.tenant_id, &r.id).join(&file_name);
        let id = r.id.clone();
        let stored = match tokio::fs::try_exists(&path).await {
            Ok(true) => None,
            _ => {
                self.inner
                    .blobs
                    .get(&r.tenant_id, &r.id, &file_name)
                    .await?
            }
        };
        tokio::task::spawn_blocking(move || {
            let file = match stored {
                Some(bytes) => bytes,
                None => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            };
            let index = u32::try_from(track).context("track")?;
            let opened = sealed::open(&key, id.as_bytes(), index, &file)
                .with_context(|| format!("{} does not open", path.display()))?;
            Ok((opened.plain, opened.complete))
        })
        .await
        .context("reading a track")?
    }

    /// Deletes the recordings past their retention — their tenant's rule, else `days` (0:
    /// kept) — their rows with an audit event (by the system) in one transaction each, then
    /// their files. Returns how many.
    pub async fn purge(&self, days: u32) -> Result<usize> {
        let mut purged = 0;
        // bounded passes: what is left waits for the next hour
        for _ in 0..100 {
            let old = {
                let mut conn = self.inner.store.conn().await?;
                repo::recordings::expired(&mut conn, now_ms(), i64::from(days), 100).await?
            };
            if old.is_empty() {
                break;
            }
            for r in old {
                let tracks = {
                    let mut conn = self.inner.store.conn().await?;
                    repo::recordings::tracks(&mut conn, &r.id).await?
                };
                let mut tx = self.inner.store.begin().await?;
                repo::recordings::delete(&mut tx, &r.id).await?;
                repo::audit::insert(
                    &mut tx,
                    &conclave_store::model::AuditEvent {
                        id: new_id(),
                        tenant_id: Some(r.tenant_id.clone()),
                        actor_id: None,
                        actor_name: "system".into(),
                        action: "deleteRecording".into(),
                        target_type: "recording".into(),
                        target_id: Some(r.id.clone()),
                        outcome: "ok".into(),
                        source: "retention".into(),
                        detail: serde_json::json!({ "room": r.room_number, "server_retention_days": days }),
                        at: now_ms(),
                    },
                )
                .await?;
                tx.commit().await?;
                self.remove_files(&r, &tracks).await?;
                purged += 1;
            }
        }
        if purged > 0 {
            tracing::info!(purged, days, "recordings past their retention deleted");
            metrics::counter!("conclave_recordings_purged_total").increment(purged as u64);
        }
        Ok(purged)
    }

    /// Deletes a recording's files, local and stored (its rows go with the caller's
    /// transaction).
    pub async fn remove_files(&self, r: &Recording, tracks: &[RecordingTrack]) -> Result<()> {
        let dir = self.dir(&r.tenant_id, &r.id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot delete {}", dir.display()));
            }
        }
        let files: Vec<String> = tracks
            .iter()
            .map(|t| track_file(t.track, &t.kind))
            .collect();
        self.inner.blobs.delete(&r.tenant_id, &r.id, &files).await
    }
}

/// Re-wraps every recording's key under a new master key (`new_key_file`, made when it does
/// not exist), in one transaction: the audio is not touched. Run with the server stopped,
/// then start it with `--recording-key-file` naming the new file. Refused while a
/// recording is marked as going on (a server is running, or its crash is not yet cleared).
pub async fn rotate_master_key(
    settings: &crate::config::Settings,
    new_key_file: &Path,
) -> Result<usize> {
    let old_file = settings
        .recording_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("recordings.key"));
    if !old_file.exists() {
        anyhow::bail!(
            "there is no current recording key at {}",
            old_file.display()
        );
    }
    if old_file == new_key_file {
        anyhow::bail!(
            "the new key file must not be the current one ({})",
            old_file.display()
        );
    }
    let old = MasterKey::load_or_create(&old_file).context("the current recording key")?;
    let new = MasterKey::load_or_create(new_key_file).context("the new recording key")?;
    let store = Store::open(&settings.database_url)
        .await
        .context("database_url")?;
    let mut tx = store.begin().await?;
    let keys = repo::recordings::keys(&mut tx).await?;
    if let Some((id, ..)) = keys.iter().find(|k| k.3 == "recording") {
        anyhow::bail!(
            "recording {id} is going on: stop the server first (a server that crashed marks it \
             interrupted when it starts)"
        );
    }
    for (id, tenant_id, wrapped, _) in &keys {
        let key = old.unwrap_key(tenant_id, id, wrapped).ok_or_else(|| {
            anyhow!(
                "recording {id}'s key does not open with {}",
                old_file.display()
            )
        })?;
        repo::recordings::set_wrapped_key(&mut tx, id, &new.wrap(tenant_id, id, &key)).await?;
    }
    tx.commit().await?;
    Ok(keys.len())
}

/// A recording going on: what the meeting's actor holds.
pub struct ActiveRecording {
    pub id: String,
    sink: SyncSender<conclave_media::mixer::TapFrame>,
    pictures: SyncSender<std::sync::Arc<conclave_media::video::sip_leg::ComposedFrame>>,
    control: SyncSender<Control>,
    database: tokio::task::JoinHandle<()>,
}

impl ActiveRecording {
    /// Where the media plane sends the room's frames.
    pub fn sink(&self) -> crate::media::TapSink {
        self.sink.clone()
    }

    /// Where the room's composer sends the pictures the recording shows.
    pub fn pictures(&self) -> crate::video::composer::PictureSink {
        (crate::streaming::PICTURE, self.pictures.clone())
    }

    /// Names a media member's track (before its frames come).
    pub fn identify(&self, member: u64, who: Who) {
        let _ = self.control.try_send(Control::Identify { member, who });
    }

    /// Stops: the thread closes every track; the returned task ends once the database
    /// holds the whole recording.
    pub fn stop(self) -> tokio::task::JoinHandle<()> {
        if self.control.try_send(Control::Stop).is_err() {
            // a full queue: dropping the senders stops the thread too
            tracing::debug!(
                recording = self.id,
                "stopping a recording by closing its queues"
            );
        }
        drop(self.control);
        drop(self.sink);
        drop(self.pictures);
        self.database
    }
}

/// The recording's database task: its row, each track as it begins, then the summary; then
/// its files go to where ended recordings rest.
async fn keep(
    service: Recordings,
    record: Recording,
    mut notices: tokio::sync::mpsc::Receiver<Notice>,
) {
    let store = service.inner.store.clone();
    let id = record.id.clone();
    let ended = std::sync::atomic::AtomicBool::new(false);
    let result: Result<()> = async {
        let mut conn = store.conn().await?;
        repo::recordings::insert(&mut conn, &record).await?;
        drop(conn);
        while let Some(notice) = notices.recv().await {
            let mut conn = store.conn().await?;
            match notice {
                Notice::Track(track) => repo::recordings::add_track(&mut conn, &id, &track).await?,
                Notice::Utterances(u) => {
                    repo::recordings::add_utterances(&mut conn, &id, &u).await?
                }
                Notice::Ended(summary) => {
                    let mut tx = store.begin().await?;
                    for (track, offset, duration, bytes) in &summary.tracks {
                        repo::recordings::close_track(
                            &mut tx, &id, *track, *offset, *duration, *bytes,
                        )
                        .await?;
                    }
                    repo::recordings::add_utterances(&mut tx, &id, &summary.utterances).await?;
                    let state = if summary.failed {
                        "interrupted"
                    } else {
                        "finished"
                    };
                    repo::recordings::end(&mut tx, &id, state, now_ms()).await?;
                    tx.commit().await?;
                    ended.store(true, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(err) = result {
        tracing::error!(%err, recording = id, "a recording's record was not kept");
    }
    if ended.load(std::sync::atomic::Ordering::Relaxed) {
        service.settle(&record).await;
    }
}
