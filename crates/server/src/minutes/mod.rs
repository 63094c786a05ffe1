//! Minutes (docs/minutes.md): every recording's utterances recognized, one line each, by a
//! worker thread at the lowest CPU priority (it takes what the media threads and the API
//! leave, and never delays a mix). The database is the queue: a minutes row per recording
//! (`queued` → `working` → `done`), a line per recognized utterance — so a restart resumes
//! where it stopped, and a recording still going on is transcribed as its utterances come
//! (when the worker has nothing older to do), otherwise after the meeting.

use anyhow::{Context, Result};
use conclave_media::recording::clip;
use conclave_minutes::{Recognizer, Session};
use conclave_store::model::{Language, MinuteLine, Recording, RecordingTrack};
use conclave_store::{Store, now_ms, repo};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the worker looks for new recordings (and a live one's new utterances).
const POLL: Duration = Duration::from_secs(3);
/// Heard before and after each utterance (ms).
const MARGIN_MS: i64 = 300;
/// Utterances taken per round (each round reads each speaker's track once).
const ROUND: i64 = 100;

/// The minutes' service; cheap to clone.
#[derive(Clone)]
pub struct Minutes {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    recordings: crate::recording::Recordings,
    /// Why there are no minutes on this server (no model, turned off); `None`: there are.
    unavailable: Option<String>,
    settings: conclave_minutes::Settings,
    /// Minutes are made while a meeting records (when the worker keeps up); false: only
    /// once it has ended.
    live: bool,
    /// Set by `wake` (and `stop`); the idle worker waits on it (no async timer: the worker
    /// must not depend on the runtime's clock while the runtime shuts down).
    wake: (std::sync::Mutex<bool>, std::sync::Condvar),
    stop: AtomicBool,
}

impl Minutes {
    /// Loads the speech model (when there is one and minutes are on), puts back in the
    /// queue what a stop interrupted, and starts the worker.
    pub async fn start(
        store: Store,
        recordings: crate::recording::Recordings,
        settings: &crate::config::Settings,
    ) -> Result<Minutes> {
        let (recognizer, unavailable) = if settings.minutes_threads == 0 {
            (
                None,
                Some("minutes are turned off on this server (minutes_threads = 0)".to_owned()),
            )
        } else {
            let path = settings.speech_model.clone();
            let loaded = tokio::task::spawn_blocking(move || Recognizer::load(&path))
                .await
                .context("loading the speech model")?;
            match loaded {
                Ok(r) => (Some(Arc::new(r)), None),
                Err(err) => {
                    tracing::warn!(
                        %err,
                        "no minutes: the speech model is missing (scripts/fetch-speech-model.sh fetches it)"
                    );
                    (None, Some(err.to_string()))
                }
            }
        };
        let minutes = Minutes {
            inner: Arc::new(Inner {
                store: store.clone(),
                recordings,
                unavailable,
                settings: conclave_minutes::Settings {
                    threads: settings.minutes_threads.max(1),
                    beam: settings.minutes_beam,
                    languages: settings.minutes_languages.clone(),
                },
                live: settings.minutes_live,
                wake: Default::default(),
                stop: AtomicBool::new(false),
            }),
        };
        let mut conn = store.conn().await?;
        let at = now_ms();
        if minutes.inner.unavailable.is_none() {
            let resumed =
                repo::minutes::move_all(&mut conn, &["working", "unavailable"], "queued", at)
                    .await?;
            if resumed > 0 {
                tracing::info!(resumed, "minutes resumed");
            }
        } else {
            repo::minutes::move_all(&mut conn, &["working", "queued"], "unavailable", at).await?;
        }
        drop(conn);
        if let Some(recognizer) = recognizer {
            let this = minutes.clone();
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("minutes".into())
                .spawn(move || this.work(&recognizer, &runtime))
                .context("starting the minutes' thread")?;
        } else {
            // recordings still get their (unavailable) minutes, so the console says why
            let this = minutes.clone();
            tokio::spawn(async move {
                while !this.inner.stop.load(Ordering::Relaxed) {
                    if let Err(err) = this.add_missing("unavailable").await {
                        tracing::warn!(err = format!("{err:#}"), "minutes: cannot list recordings");
                    }
                    tokio::time::sleep(POLL).await;
                }
            });
        }
        Ok(minutes)
    }

    /// Why this server makes no minutes; `None` when it does.
    pub fn unavailable(&self) -> Option<&str> {
        self.inner.unavailable.as_deref()
    }

    /// Looks at the queue now (minutes were asked for again).
    pub fn wake(&self) {
        let (woken, signal) = &self.inner.wake;
        if let Ok(mut w) = woken.lock() {
            *w = true;
        }
        signal.notify_all();
    }

    /// Waits for `wake` or `POLL`, whichever comes first.
    fn idle(&self) {
        let (woken, signal) = &self.inner.wake;
        if let Ok(w) = woken.lock()
            && let Ok((mut w, _)) = signal.wait_timeout_while(w, POLL, |w| !*w)
        {
            *w = false;
        }
    }

    /// Stops the worker after the utterance it is on (what it did is kept).
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.wake();
    }

    async fn add_missing(&self, state: &str) -> Result<u64> {
        let mut conn = self.inner.store.conn().await?;
        Ok(repo::minutes::add_missing(&mut conn, state, now_ms(), 100).await?)
    }

    /// The worker thread: takes queued minutes one at a time.
    fn work(&self, recognizer: &Recognizer, runtime: &tokio::runtime::Handle) {
        lower_priority();
        let mut session = match recognizer.session() {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(%err, "minutes: the speech model cannot run");
                return;
            }
        };
        while !self.inner.stop.load(Ordering::Relaxed) {
            let next = runtime.block_on(async {
                self.add_missing("queued").await?;
                let mut conn = self.inner.store.conn().await?;
                let queued = repo::minutes::queued(&mut conn).await?;
                metrics::gauge!("conclave_minutes_queued").set(queued as f64);
                Ok::<_, anyhow::Error>(repo::minutes::claim(&mut conn, now_ms()).await?)
            });
            match next {
                Ok(Some(job)) => {
                    let id = job.recording_id.clone();
                    if let Err(err) = self.make(&job.recording_id, &mut session, runtime) {
                        metrics::counter!("conclave_minutes_failed_total").increment(1);
                        tracing::warn!(err = format!("{err:#}"), recording = id, "minutes failed");
                        let message = format!("{err:#}");
                        let _ = runtime.block_on(async {
                            let mut conn = self.inner.store.conn().await?;
                            repo::minutes::set_state(
                                &mut conn,
                                &id,
                                "failed",
                                Some(&message),
                                0,
                                now_ms(),
                            )
                            .await?;
                            Ok::<_, anyhow::Error>(())
                        });
                    }
                }
                Ok(None) => self.idle(),
                Err(err) => {
                    tracing::warn!(
                        err = format!("{err:#}"),
                        "minutes: the queue is unreachable"
                    );
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    /// Recognizes what a recording has not had recognized yet; leaves its minutes done,
    /// or queued again while it records.
    fn make(
        &self,
        recording_id: &str,
        session: &mut Session<'_>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<()> {
        let store = &self.inner.store;
        loop {
            if self.inner.stop.load(Ordering::Relaxed) {
                // left `working`: the next start queues it again
                return Ok(());
            }
            let (recording, tracks, pending, backlog, usual) = runtime.block_on(async {
                let mut conn = store.conn().await?;
                let Some(recording) = repo::recordings::get(&mut conn, recording_id).await? else {
                    return Ok::<_, anyhow::Error>((None, vec![], vec![], 0, BTreeMap::new()));
                };
                let tracks = repo::recordings::tracks(&mut conn, recording_id).await?;
                let pending = repo::minutes::pending(&mut conn, recording_id, ROUND).await?;
                let backlog = repo::minutes::queued(&mut conn).await?;
                let usual = usual_languages(&mut conn, &recording, &tracks).await?;
                Ok((Some(recording), tracks, pending, backlog, usual))
            })?;
            let Some(recording) = recording else {
                return Ok(()); // deleted meanwhile: its minutes went with it
            };
            let live = recording.state == "recording";
            if live && !self.inner.live {
                // made once the meeting has ended: looked at again in a while
                runtime.block_on(async {
                    let mut conn = store.conn().await?;
                    let later = now_ms() + POLL.as_millis() as i64;
                    repo::minutes::set_state(
                        &mut conn,
                        recording_id,
                        "queued",
                        None,
                        later,
                        now_ms(),
                    )
                    .await?;
                    Ok::<_, anyhow::Error>(())
                })?;
                return Ok(());
            }
            let mut settings = self.inner.settings.clone();
            if backlog > 1 {
                // others wait: the faster decoding
                settings.beam = 1;
            }
            let mut progressed = false;
            let mut by_track: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            for u in &pending {
                by_track.entry(u.track).or_default().push(u.clone());
            }
            for (track, utterances) in by_track {
                let Some(info) = tracks.iter().find(|t| t.track == track) else {
                    continue;
                };
                let (ogg, _) = runtime
                    .block_on(self.inner.recordings.read_track(&recording, track))
                    .with_context(|| format!("track {track} cannot be read"))?;
                // voice activity marks a word's start once it is under way: a little before
                // and after is heard too
                let spans: Vec<(u64, u64)> = utterances
                    .iter()
                    .map(|u| {
                        (
                            u64::try_from(u.start_ms - info.offset_ms - MARGIN_MS).unwrap_or(0),
                            u64::try_from(u.end_ms - info.offset_ms + MARGIN_MS).unwrap_or(0),
                        )
                    })
                    .collect();
                let audio = clip::decode_spans(
                    &ogg,
                    &spans,
                    conclave_minutes::recognizer::SAMPLE_RATE,
                    !live,
                )
                .with_context(|| format!("track {track} cannot be decoded"))?;
                drop(ogg);
                for (u, pcm) in utterances.iter().zip(audio) {
                    if self.inner.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let line = match pcm {
                        // not written yet: a later round
                        None if live => continue,
                        // the track ends before it (a recording cut short): no line to make
                        None => empty_line(u),
                        Some(pcm) => {
                            let samples: Vec<f32> =
                                pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
                            let started = Instant::now();
                            let heard = session
                                .recognize(
                                    &samples,
                                    &settings,
                                    usual.get(&track).map(String::as_str),
                                )
                                .context("speech recognition")?;
                            let busy = started.elapsed().as_secs_f64();
                            let seconds = samples.len() as f64 / 16_000.0;
                            metrics::counter!("conclave_minutes_audio_seconds_total")
                                .increment(seconds as u64);
                            metrics::histogram!("conclave_minutes_real_time_factor")
                                .record(busy / seconds.max(0.1));
                            metrics::counter!("conclave_minutes_lines_total", "language" => heard.language.clone())
                                .increment(1);
                            MinuteLine {
                                track: u.track,
                                start_ms: u.start_ms,
                                end_ms: u.end_ms,
                                language: heard.language,
                                recognized: heard.text.clone(),
                                text: heard.text,
                                edited_by: None,
                                edited_at: None,
                            }
                        }
                    };
                    runtime.block_on(async {
                        let mut conn = store.conn().await?;
                        repo::minutes::add_line(
                            &mut conn,
                            recording_id,
                            &recording.tenant_id,
                            &line,
                        )
                        .await?;
                        Ok::<_, anyhow::Error>(())
                    })?;
                    progressed = true;
                }
            }
            if progressed && live {
                // a meeting going on: others waiting get their turn between rounds
                runtime.block_on(async {
                    let mut conn = store.conn().await?;
                    repo::minutes::set_state(
                        &mut conn,
                        recording_id,
                        "queued",
                        None,
                        now_ms(),
                        now_ms(),
                    )
                    .await?;
                    Ok::<_, anyhow::Error>(())
                })?;
                return Ok(());
            }
            if !progressed {
                runtime.block_on(async {
                    let mut conn = store.conn().await?;
                    // re-read: it may have ended while this round ran
                    let still_live = repo::recordings::get(&mut conn, recording_id)
                        .await?
                        .is_some_and(|r| r.state == "recording");
                    if still_live || live && !pending.is_empty() {
                        // more comes: another round in a while, others first
                        repo::minutes::set_state(
                            &mut conn,
                            recording_id,
                            "queued",
                            None,
                            now_ms() + POLL.as_millis() as i64,
                            now_ms(),
                        )
                        .await?;
                    } else {
                        repo::minutes::set_state(
                            &mut conn,
                            recording_id,
                            "done",
                            None,
                            0,
                            now_ms(),
                        )
                        .await?;
                        metrics::counter!("conclave_minutes_done_total").increment(1);
                    }
                    Ok::<_, anyhow::Error>(())
                })?;
                return Ok(());
            }
        }
    }
}

/// A line for an utterance with nothing to recognize (so it is not tried again).
fn empty_line(u: &conclave_store::model::Utterance) -> MinuteLine {
    MinuteLine {
        track: u.track,
        start_ms: u.start_ms,
        end_ms: u.end_ms,
        language: String::new(),
        recognized: String::new(),
        text: String::new(),
        edited_by: None,
        edited_at: None,
    }
}

/// The language each speaker usually speaks: their user's (by extension), else the
/// room's — what recognition takes when Whisper cannot tell.
async fn usual_languages(
    conn: &mut conclave_store::Conn,
    recording: &Recording,
    tracks: &[RecordingTrack],
) -> Result<BTreeMap<i64, String>> {
    let room_language = match &recording.room_id {
        Some(id) => repo::rooms::get(conn, id).await?.map(|r| r.language),
        None => None,
    };
    let mut out = BTreeMap::new();
    for t in tracks.iter().filter(|t| t.kind == "member") {
        let mut language: Option<Language> = None;
        if !t.number.is_empty() {
            language = repo::users::get_by_extension(conn, &recording.tenant_id, &t.number)
                .await?
                .and_then(|u| u.language);
        }
        if let Some(l) = language.or(room_language) {
            out.insert(t.track, l.as_str().to_owned());
        }
    }
    Ok(out)
}

/// The minutes' thread (and the threads whisper.cpp starts from it) run only when nothing
/// else wants the CPU: SCHED_IDLE, and the weakest nice level where that is refused.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread with valid arguments.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            tracing::debug!("minutes: SCHED_IDLE refused; nice 19 only");
        }
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}
