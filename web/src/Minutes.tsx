import { useCallback, useEffect, useRef, useState } from 'react';
import { api, asError, blobUrl, download, type Minutes, type MinutesHit, type MinutesLine, type Page } from './api';
import type { T } from './i18n';
import { clock } from './Recordings';

/// An API path as `blobUrl` and `download` take it (without the `/api/v1` prefix).
const apiPath = (audio: string) => audio.replace(/^\/api\/v1/, '');

/// Plays one utterance at a time: the clip of exactly that span, fetched with the session.
export function useClipPlayer(onError: (message: string) => void) {
  const audio = useRef<HTMLAudioElement | null>(null);
  const [playing, setPlaying] = useState<string | null>(null);
  const url = useRef<string | null>(null);
  useEffect(() => () => { if (url.current) URL.revokeObjectURL(url.current); }, []);
  const play = async (path: string) => {
    try {
      const next = await blobUrl(apiPath(path));
      if (url.current) URL.revokeObjectURL(url.current);
      url.current = next;
      setPlaying(path);
      if (audio.current) {
        audio.current.src = next;
        await audio.current.play().catch(() => {});
      }
    } catch (e) {
      onError(asError(e).message);
    }
  };
  const element = <audio data-testid="clip-audio" ref={audio} controls className="clip" onEnded={() => setPlaying(null)} />;
  return { play, playing, element };
}

/// A recording's minutes: a line per utterance — time, speaker, text — each playing
/// exactly what was said; the owner corrects lines (what was recognized stays); exports.
export function MinutesPanel({ t, id, roomNumber, highlight }: {
  t: T; id: string; roomNumber: string; highlight?: { track: number; at: number } | null;
}) {
  const [minutes, setMinutes] = useState<Minutes | null>(null);
  const [error, setError] = useState('');
  const [editing, setEditing] = useState<{ track: number; start_ms: number; text: string } | null>(null);
  const clip = useClipPlayer(setError);
  const load = useCallback(() => {
    api<Minutes>('GET', `/recordings/${id}/minutes`).then(setMinutes, (e) => setError(asError(e).message));
  }, [id]);
  useEffect(load, [load]);
  // not made yet (the worker has not looked at a new recording), waiting, being made, or
  // more to come while the meeting records: look again
  const busy = minutes !== null && (minutes.live || ['none', 'queued', 'working'].includes(minutes.state));
  useEffect(() => {
    if (!busy) return;
    const timer = setInterval(load, 3000);
    return () => clearInterval(timer);
  }, [busy, load]);
  // a link to a line (exported minutes, search) plays it once the minutes are there
  const played = useRef(false);
  useEffect(() => {
    if (!minutes || !highlight || played.current) return;
    const line = minutes.lines.find((l) => l.track === highlight.track && l.start_ms === highlight.at);
    if (!line) return;
    played.current = true;
    document.querySelector(`[data-line="${line.track}-${line.start_ms}"]`)?.scrollIntoView({ block: 'center' });
    clip.play(line.audio);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [minutes, highlight]);
  if (!minutes) return error ? <p className="error" role="alert">{error}</p> : null;
  const save = () => {
    if (!editing) return;
    api<Minutes>('PATCH', `/recordings/${id}/minutes`, { lines: [editing] })
      .then((m) => { setMinutes(m); setEditing(null); }, (e) => setError(asError(e).message));
  };
  const remake = () =>
    api<Minutes>('PATCH', `/recordings/${id}/minutes`, { remake: true })
      .then(setMinutes, (e) => setError(asError(e).message));
  const exportAs = (format: string, extension: string) => {
    const lang = document.documentElement.lang.startsWith('zh') ? 'zh' : 'en';
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    download(`/recordings/${id}/minutes/export?format=${format}&lang=${lang}&tz=${encodeURIComponent(tz)}`, `minutes-${roomNumber}.${extension}`)
      .catch((e) => setError(asError(e).message));
  };
  const key = (l: MinutesLine) => `${l.track}-${l.start_ms}`;
  return (
    <div className="minutes" data-testid="minutes">
      <h4>{t('minutesTitle')}</h4>
      {error && <p className="error" role="alert">{error}</p>}
      <p className="minutes-state" data-testid="minutes-state" data-state={minutes.state}>
        {t(`minutesState_${minutes.state}`)}
        {minutes.total > 0 && minutes.state !== 'done' && ` · ${minutes.done}/${minutes.total}`}
        {minutes.error && <> · <span className="muted">{minutes.error}</span></>}
        {minutes.editable && (minutes.state === 'failed' || minutes.state === 'done') && (
          <> <button className="link" data-testid="minutes-remake" onClick={remake}>{t('minutesRemake')}</button></>
        )}
      </p>
      {minutes.lines.length > 0 && (
        <p className="actions" data-testid="minutes-export">
          {t('minutesExport')}:{' '}
          <button onClick={() => exportAs('markdown', 'md')}>Markdown</button>{' '}
          <button onClick={() => exportAs('docx', 'docx')}>Word</button>{' '}
          <button onClick={() => exportAs('pdf', 'pdf')}>PDF</button>{' '}
          <button onClick={() => exportAs('json', 'json')}>JSON</button>
        </p>
      )}
      {clip.element}
      <ol className="minutes-lines" data-testid="minutes-lines">
        {minutes.lines.map((l) => (
          <li key={key(l)} data-line={key(l)} data-testid={`minutes-line-${key(l)}`}
            className={clip.playing === l.audio ? 'playing' : ''} lang={l.language === 'zh' ? 'zh-CN' : l.language || undefined}>
            <button className="link minutes-time" data-testid="minutes-play" title={t('minutesPlayLine')} onClick={() => clip.play(l.audio)}>
              ▶ {clock(l.start_ms)}
            </button>
            <b className="minutes-speaker">{l.speaker}</b>
            {editing && editing.track === l.track && editing.start_ms === l.start_ms ? (
              <span className="minutes-edit">
                <textarea data-testid="minutes-edit-text" value={editing.text} maxLength={4000} rows={2}
                  onChange={(e) => setEditing({ ...editing, text: e.target.value })} />
                <button data-testid="minutes-save" onClick={save}>{t('save')}</button>{' '}
                <button onClick={() => setEditing(null)}>{t('cancel')}</button>
              </span>
            ) : (
              <span className="minutes-text">
                {l.text}
                {l.edited_by && <span className="muted" title={`${t('minutesRecognized')}: ${l.recognized}`}> ({t('minutesEdited')} · {l.edited_by})</span>}
                {minutes.editable && (
                  <> <button className="link" data-testid="minutes-edit" onClick={() => setEditing({ track: l.track, start_ms: l.start_ms, text: l.text })}>{t('edit')}</button></>
                )}
              </span>
            )}
          </li>
        ))}
      </ol>
    </div>
  );
}

/// Searching every minutes the user may read: lines that hold all the words, each
/// opening its recording at that line.
export function MinutesSearch({ t, onOpen }: { t: T; onOpen: (hit: MinutesHit) => void }) {
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<MinutesHit[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState('');
  const search = (cursor: string | null) => {
    const params = new URLSearchParams({ q: q.trim(), limit: '20' });
    if (cursor) params.set('cursor', cursor);
    api<Page<MinutesHit>>('GET', `/minutes?${params}`).then((p) => {
      setHits((old) => (cursor && old ? [...old, ...p.items] : p.items));
      setNext(p.next_cursor);
      setError('');
    }, (e) => setError(asError(e).message));
  };
  return (
    <div className="minutes-search" data-testid="minutes-search">
      <form className="create" onSubmit={(e) => { e.preventDefault(); if (q.trim()) search(null); }}>
        <label>{t('minutesSearch')} <input data-testid="minutes-search-q" value={q} maxLength={100} onChange={(e) => setQ(e.target.value)} /></label>
        <button type="submit">{t('searchButton')}</button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      {hits && hits.length === 0 && <p className="empty">{t('minutesNothingFound')}</p>}
      {hits && hits.length > 0 && (
        <ul className="minutes-hits" data-testid="minutes-hits">
          {hits.map((h) => (
            <li key={`${h.recording_id}-${h.track}-${h.start_ms}`}>
              <button className="link" onClick={() => onOpen(h)}>
                {h.room_number} · {h.room_name} — {t.time(h.started_at)} · {clock(h.start_ms)}
              </button>{' '}
              <b>{h.speaker}</b>: <Marked text={h.text} terms={q.trim().split(/\s+/)} />
            </li>
          ))}
        </ul>
      )}
      {next && <button onClick={() => search(next)}>{t('more')}</button>}
    </div>
  );
}

/// The text with the searched words marked.
function Marked({ text, terms }: { text: string; terms: string[] }) {
  const words = terms.filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (words.length === 0) return <>{text}</>;
  const parts = text.split(new RegExp(`(${words.join('|')})`, 'gi'));
  return <>{parts.map((p, i) => (i % 2 === 1 ? <mark key={i}>{p}</mark> : p))}</>;
}

/// A link to a line of some minutes (`#recording=<id>&track=<n>&at=<ms>`, as exported
/// minutes carry), or null.
export function lineFromHash(hash: string): { id: string; track: number; at: number } | null {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const id = params.get('recording');
  const track = Number(params.get('track'));
  const at = Number(params.get('at'));
  if (!id || !/^[A-Za-z0-9-]{1,64}$/.test(id) || !Number.isInteger(track) || !Number.isInteger(at)) return null;
  return { id, track, at };
}
