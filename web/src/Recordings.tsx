import { useCallback, useEffect, useRef, useState } from 'react';
import {
  api, asError, blobUrl, download, type Page, type Recording, type RecordingDetail, type RecordingTrack, type Utterance,
} from './api';
import type { T } from './i18n';
import { MinutesPanel, MinutesSearch, lineFromHash } from './Minutes';

type Filters = { room: string; speaker: string; from: string; to: string };
const noFilters: Filters = { room: '', speaker: '', from: '', to: '' };

/// The query of a search: days from their start in local time to the next day's start.
function query(f: Filters, cursor: string | null): string {
  const q = new URLSearchParams({ limit: '50' });
  if (f.room.trim()) q.set('q', f.room.trim());
  if (f.speaker.trim()) q.set('speaker', f.speaker.trim());
  if (f.from) q.set('since', String(new Date(`${f.from}T00:00`).getTime()));
  if (f.to) q.set('until', String(new Date(`${f.to}T00:00`).getTime() + 86_400_000 - 1));
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

/// 83 s → "1:23"; an hour and more → "1:02:03".
export function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`;
}

/// The recordings library: the tenant's recordings (or those the user may play), newest first,
/// found by room; one opens to its tracks — the whole meeting and each person — and who spoke
/// when, each utterance played from its start.
/// `open`: the recording the address names (`/recordings/<id>`); `onOpen` changes it.
export function Recordings({ t, open: routed, onOpen }: { t: T; open: string | null; onOpen: (id: string | null) => void }) {
  const [items, setItems] = useState<Recording[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [search, setSearch] = useState<Filters>(noFilters);
  const [applied, setApplied] = useState<Filters>(noFilters);
  // a link to a line of minutes (#recording=…&track=…&at=…) opens that recording there
  const [linked] = useState(() => lineFromHash(window.location.hash));
  // the line's recording opens until the user opens or closes another
  const [followLink, setFollowLink] = useState(true);
  const open = routed ?? (followLink ? linked?.id ?? null : null);
  const setOpen = (id: string | null) => {
    setFollowLink(false);
    onOpen(id);
  };
  const [highlight, setHighlight] = useState<{ track: number; at: number } | null>(linked ? { track: linked.track, at: linked.at } : null);
  useEffect(() => {
    if (linked) window.history.replaceState(null, '', window.location.pathname);
  }, [linked]);
  const [error, setError] = useState('');
  const path = (cursor: string | null) => `/recordings?${query(applied, cursor)}`;
  const reload = useCallback(() => {
    api<Page<Recording>>('GET', path(null)).then((p) => {
      setItems(p.items);
      setNext(p.next_cursor);
    }, (e) => setError(asError(e).message));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [applied]);
  useEffect(() => {
    reload();
    const timer = setInterval(reload, 10000);
    return () => clearInterval(timer);
  }, [reload]);
  const more = () =>
    next && api<Page<Recording>>('GET', path(next)).then((p) => {
      setItems((list) => [...list, ...p.items]);
      setNext(p.next_cursor);
    }, (e) => setError(asError(e).message));

  return (
    <section data-testid="page-recordings">
      <h2>{t('recordings')}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      <form className="create" data-testid="recordings-filters" onSubmit={(e) => { e.preventDefault(); setApplied(search); }}>
        <label>{t('roomSearch')} <input data-testid="recordings-search" value={search.room} onChange={(e) => setSearch({ ...search, room: e.target.value })} /></label>
        <label>{t('speakerSearch')} <input data-testid="recordings-speaker" value={search.speaker} onChange={(e) => setSearch({ ...search, speaker: e.target.value })} /></label>
        <label>{t('fromDate')} <input type="date" data-testid="recordings-from" value={search.from} onChange={(e) => setSearch({ ...search, from: e.target.value })} /></label>
        <label>{t('toDate')} <input type="date" data-testid="recordings-to" value={search.to} onChange={(e) => setSearch({ ...search, to: e.target.value })} /></label>
        <button type="submit">{t('searchButton')}</button>
      </form>
      <MinutesSearch t={t} onOpen={(hit) => { setHighlight({ track: hit.track, at: hit.start_ms }); setOpen(hit.recording_id); }} />
      {items.length === 0 && <p className="empty">{t('noRecordings')}</p>}
      {items.length > 0 && (
        <table>
          <thead>
            <tr><th>{t('room')}</th><th>{t('started')}</th><th>{t('length')}</th><th>{t('status')}</th><th /></tr>
          </thead>
          <tbody>
            {items.map((r) => (
              <tr key={r.id} data-testid={`recording-${r.id}`}>
                <td>{r.room_number} · {r.room_name}</td>
                <td>{t.time(r.started_at)}</td>
                <td>{r.ended_at ? clock(r.ended_at - r.started_at) : ''}</td>
                <td>{t.word('recState', r.state)} · {t.word('visibility', r.visibility)}</td>
                <td className="actions">
                  <button data-testid={`open-recording-${r.id}`} onClick={() => { setHighlight(null); setOpen(open === r.id ? null : r.id); }}>{t('open')}</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && <button onClick={more}>{t('more')}</button>}
      {open && (
        <RecordingView key={`${open}-${highlight?.track}-${highlight?.at}`} t={t} id={open} highlight={highlight}
          onChanged={reload} onDeleted={() => { setOpen(null); reload(); }} />
      )}
    </section>
  );
}

function RecordingView({ t, id, highlight, onChanged, onDeleted }: {
  t: T; id: string; highlight: { track: number; at: number } | null; onChanged: () => void; onDeleted: () => void;
}) {
  const [detail, setDetail] = useState<RecordingDetail | null>(null);
  const [utterances, setUtterances] = useState<Utterance[]>([]);
  const [urls, setUrls] = useState<Record<number, string>>({});
  const players = useRef<Record<number, HTMLAudioElement | null>>({});
  const [videoUrl, setVideoUrl] = useState<string | null>(null);
  const videoPlayer = useRef<HTMLVideoElement | null>(null);
  const [error, setError] = useState('');
  const [sharePassword, setSharePassword] = useState('');
  const load = useCallback(() => {
    api<RecordingDetail>('GET', `/recordings/${id}`).then(setDetail, (e) => setError(asError(e).message));
    api<Utterance[]>('GET', `/recordings/${id}/utterances`).then(setUtterances, () => setUtterances([]));
  }, [id]);
  useEffect(load, [load]);
  useEffect(() => () => Object.values(urls).forEach((u) => URL.revokeObjectURL(u)), [urls]);
  useEffect(() => () => { if (videoUrl) URL.revokeObjectURL(videoUrl); }, [videoUrl]);
  if (!detail) return error ? <p className="error" role="alert">{error}</p> : null;
  const r = detail.recording;
  const name = (tr: RecordingTrack) =>
    tr.kind === 'mix' ? t('mixTrack') : tr.kind === 'video' ? t('videoTrack') : tr.number ? `${tr.name} (${tr.number})` : tr.name;
  const video = detail.tracks.find((tr) => tr.kind === 'video');
  const playVideo = async () => {
    try {
      const url = videoUrl ?? (await blobUrl(`/recordings/${id}/video`));
      setVideoUrl(url);
      setTimeout(() => videoPlayer.current?.play().catch(() => {}), 0);
    } catch (e) {
      setError(asError(e).message);
    }
  };
  /// Fetches a track once, then plays it from `at` ms of the recording's timeline.
  const play = async (tr: RecordingTrack, at?: number) => {
    try {
      const url = urls[tr.track] ?? (await blobUrl(`/recordings/${id}/tracks/${tr.track}/audio`));
      if (!urls[tr.track]) setUrls((u) => ({ ...u, [tr.track]: url }));
      // the element exists once its URL is set
      setTimeout(() => {
        const el = players.current[tr.track];
        if (!el) return;
        if (at !== undefined) el.currentTime = Math.max(0, (at - tr.offset_ms) / 1000);
        el.play().catch(() => {});
      }, 0);
    } catch (e) {
      setError(asError(e).message);
    }
  };
  const visibility = (v: 'private' | 'public') =>
    api<Recording>('PUT', `/recordings/${id}/visibility`, v === 'public' && sharePassword ? { visibility: v, password: sharePassword } : { visibility: v })
      .then(() => { load(); onChanged(); }, (e) => setError(asError(e).message));
  const remove = () => {
    if (!window.confirm(t('deleteRecordingConfirm'))) return;
    api('DELETE', `/recordings/${id}`).then(onDeleted, (e) => setError(asError(e).message));
  };
  const byTrack = new Map(detail.tracks.map((tr) => [tr.track, tr]));
  return (
    <div className="recording" data-testid="recording-detail">
      <h3>{r.room_number} · {r.room_name} — {t.time(r.started_at)}</h3>
      {error && <p className="error" role="alert">{error}</p>}
      <p>
        {t.word('recState', r.state)} · {t.word('visibility', r.visibility)}{' '}
        <button data-testid="recording-visibility" onClick={() => visibility(r.visibility === 'public' ? 'private' : 'public')}>
          {t(r.visibility === 'public' ? 'makePrivate' : 'makePublic')}
        </button>{' '}
        {r.visibility === 'private' && (
          <input data-testid="share-password" value={sharePassword} maxLength={32} placeholder={t('sharePasswordOptional')}
            onChange={(e) => setSharePassword(e.target.value)} />
        )}{' '}
        {r.state !== 'recording' && <button data-testid="recording-delete" onClick={remove}>{t('delete')}</button>}
      </p>
      {r.share_key && (
        <p data-testid="recording-share">
          {t('shareLink')}: <a href={`/recording/${r.share_key}`} target="_blank" rel="noopener" data-testid="share-link">{`${window.location.origin}/recording/${r.share_key}`}</a>
          {r.share_password && <> · {t('streamPassword')}: <b data-testid="share-password-shown">{r.share_password}</b></>}
        </p>
      )}
      {video && (
        <div className="recording-video" data-testid="recording-video">
          <h4>{t('videoTrack')}{video.duration_ms != null ? ` · ${clock(video.duration_ms)}` : ''}</h4>
          <p className="actions">
            <button data-testid="play-video" onClick={playVideo}>{t('playVideo')}</button>{' '}
            <button data-testid="download-video" onClick={() => download(`/recordings/${id}/video`, `${r.room_number}.mp4`).catch((e) => setError(asError(e).message))}>
              {t('downloadVideo')}
            </button>
          </p>
          {videoUrl && <video data-testid="video-player" controls src={videoUrl} ref={videoPlayer} />}
        </div>
      )}
      <h4>{t('tracks')}</h4>
      <table>
        <tbody>
          {detail.tracks.filter((tr) => tr.kind !== 'video').map((tr) => (
            <tr key={tr.track} data-testid={`track-${tr.track}`}>
              <td>{name(tr)}</td>
              <td>{tr.duration_ms != null ? clock(tr.duration_ms) : ''}</td>
              <td className="actions">
                <button data-testid={`play-${tr.track}`} onClick={() => play(tr)}>{t('play')}</button>
                <button onClick={() => download(`/recordings/${id}/tracks/${tr.track}/audio`, `${r.room_number}-${tr.track}.opus`).catch((e) => setError(asError(e).message))}>
                  {t('downloadAudio')}
                </button>
                {urls[tr.track] && (
                  <audio data-testid={`audio-${tr.track}`} controls src={urls[tr.track]} ref={(el) => { players.current[tr.track] = el; }} />
                )}
                {urls[tr.track] && tr.kind === 'mix' && (
                  <Waveform url={urls[tr.track]} onSeek={(fraction) => {
                    const el = players.current[tr.track];
                    if (el && Number.isFinite(el.duration)) el.currentTime = fraction * el.duration;
                  }} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="recording-columns">
      <div>
      {utterances.length > 0 && (
        <>
          <h4>{t('utterancesTitle')}</h4>
          <Lanes tracks={detail.tracks} utterances={utterances} name={name} onPick={(tr, at) => play(tr, at)} />
          <ol className="utterances" data-testid="utterances">
            {utterances.map((u, i) => {
              const tr = byTrack.get(u.track);
              if (!tr) return null;
              return (
                <li key={i}>
                  <button className="link" onClick={() => play(tr, u.start_ms)}>
                    {clock(u.start_ms)}–{clock(u.end_ms)}
                  </button>{' '}
                  {name(tr)}
                </li>
              );
            })}
          </ol>
        </>
      )}
      </div>
      <MinutesPanel t={t} id={id} roomNumber={r.room_number} highlight={highlight} />
      </div>
    </div>
  );
}

/// One lane per person along the recording's timeline, a bar for each time they spoke; a
/// click on a bar plays that person from there.
function Lanes({ tracks, utterances, name, onPick }: {
  tracks: RecordingTrack[]; utterances: Utterance[]; name: (tr: RecordingTrack) => string;
  onPick: (tr: RecordingTrack, at: number) => void;
}) {
  const total = Math.max(1, ...tracks.map((tr) => tr.offset_ms + (tr.duration_ms ?? 0)), ...utterances.map((u) => u.end_ms));
  const pct = (ms: number) => `${Math.min(100, (100 * ms) / total)}%`;
  return (
    <div className="lanes" data-testid="lanes">
      {tracks.filter((tr) => tr.kind === 'member').map((tr) => (
        <div key={tr.track} className="lane">
          <span className="lane-name">{name(tr)}</span>
          <span className="lane-bar">
            {utterances.filter((u) => u.track === tr.track).map((u, i) => (
              <button
                key={i} className="utterance" title={`${clock(u.start_ms)}–${clock(u.end_ms)}`}
                data-testid={`lane-${tr.track}-${i}`}
                style={{ left: pct(u.start_ms), width: pct(Math.max(u.end_ms - u.start_ms, total / 200)) }}
                onClick={() => onPick(tr, u.start_ms)}
              />
            ))}
          </span>
        </div>
      ))}
    </div>
  );
}

/// The whole meeting's loudness along its length, drawn from the decoded audio; a click
/// seeks there.
function Waveform({ url, onSeek }: { url: string; onSeek: (fraction: number) => void }) {
  const canvas = useRef<HTMLCanvasElement | null>(null);
  useEffect(() => {
    let cancelled = false;
    (async () => {
      const data = await (await fetch(url)).arrayBuffer();
      const context = new AudioContext();
      const audio = await context.decodeAudioData(data);
      void context.close();
      const el = canvas.current;
      if (cancelled || !el) return;
      const samples = audio.getChannelData(0);
      const g = el.getContext('2d');
      if (!g) return;
      const { width, height } = el;
      g.clearRect(0, 0, width, height);
      g.fillStyle = '#2a5a86';
      const step = Math.max(1, Math.floor(samples.length / width));
      for (let x = 0; x < width; x++) {
        let peak = 0;
        for (let i = x * step; i < Math.min(samples.length, (x + 1) * step); i++) peak = Math.max(peak, Math.abs(samples[i]));
        const h = Math.max(1, peak * height);
        g.fillRect(x, (height - h) / 2, 1, h);
      }
      el.dataset.drawn = 'yes';
    })().catch(() => {});
    return () => { cancelled = true; };
  }, [url]);
  return (
    <canvas
      ref={canvas} className="waveform" data-testid="waveform" width={600} height={48}
      onClick={(e) => {
        const box = e.currentTarget.getBoundingClientRect();
        onSeek(Math.min(1, Math.max(0, (e.clientX - box.left) / box.width)));
      }}
    />
  );
}
