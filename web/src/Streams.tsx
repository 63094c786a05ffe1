// Live streams in the console: the panel of a live meeting (go live, the link and password
// to share, who is listening, stop) and the streams page — the tenant's scheduled, live and
// ended streams, to watch, share, schedule ahead or cancel.

import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { all, api, type LiveConference, type Room, type Stream } from './api';
import type { T } from './i18n';

/// The watch link as one pastes it into a message.
const shareable = (s: Stream) => `${window.location.origin}${s.link}`;

function copy(text: string) {
  void navigator.clipboard?.writeText(text).catch(() => undefined);
}

/// What a viewer needs: the link, the password, and a button to copy both.
function Share({ t, stream }: { t: T; stream: Stream }) {
  const text = stream.password ? `${shareable(stream)}  ${t('streamPassword')}: ${stream.password}` : shareable(stream);
  return (
    <span className="share" data-testid="stream-share">
      <a href={stream.link} target="_blank" rel="noopener" data-testid="stream-link">{shareable(stream)}</a>
      {stream.password && <> · {t('streamPassword')}: <b data-testid="stream-password">{stream.password}</b></>}
      {' '}<button type="button" onClick={() => copy(text)}>{t('copyLink')}</button>
    </span>
  );
}

/// The live meeting's stream: a button to go live, then the link, the listeners and stop.
export function StreamPanel({ t, conference, onChange, onError }: {
  t: T; conference: LiveConference; onChange: () => void; onError: (message: string) => void;
}) {
  const [stream, setStream] = useState<Stream | null>(null);
  const id = conference.stream_id;
  useEffect(() => {
    if (!id) {
      setStream(null);
      return;
    }
    const load = () => api<Stream>('GET', `/streams/${id}`).then(setStream, () => undefined);
    load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, [id]);
  const base = `/conferences/${conference.room_id}/stream`;
  const fail = (e: { message?: string }) => onError(String(e.message ?? e));
  if (!id) {
    return (
      <button data-testid="stream" onClick={() => api<Stream>('POST', `${base}/start`, {}).then((s) => { setStream(s); onChange(); }, fail)}>
        {t('goLive')}
      </button>
    );
  }
  return (
    <div className="stream-panel" data-testid="stream-on">
      <b className="recording-on">● {t('streamingNow')}</b>{' '}
      {stream && <><Share t={t} stream={stream} /> · <span data-testid="stream-listeners">{t('listeners')}: {stream.listeners}</span>{' '}</>}
      <button data-testid="stream-stop" onClick={() => api('POST', `${base}/stop`).then(onChange, fail)}>{t('stopStream')}</button>
    </div>
  );
}

const STATES = ['live', 'scheduled', 'ended'] as const;

/// The tenant's streams.
export function Streams({ t }: { t: T }) {
  const [streams, setStreams] = useState<Stream[]>([]);
  const [rooms, setRooms] = useState<Room[]>([]);
  const [error, setError] = useState('');
  const reload = useCallback(() => {
    api<{ items: Stream[] }>('GET', '/streams').then((p) => setStreams(p.items), (e) => setError(String(e.message ?? e)));
  }, []);
  useEffect(() => {
    reload();
    all<Room>('/rooms').then(setRooms, () => undefined);
    const timer = setInterval(reload, 10000);
    return () => clearInterval(timer);
  }, [reload]);

  const [room, setRoom] = useState('');
  const [title, setTitle] = useState('');
  const [at, setAt] = useState('');
  const [password, setPassword] = useState('');
  const [open, setOpen] = useState(false);
  const schedule = (e: FormEvent) => {
    e.preventDefault();
    setError('');
    const body: Record<string, unknown> = { room_id: room || rooms[0]?.id, title, open };
    if (at) body.starts_at = new Date(at).getTime();
    if (password && !open) body.password = password;
    api<Stream>('POST', '/streams', body).then(() => {
      setTitle('');
      setPassword('');
      reload();
    }, (err) => setError(String(err.message ?? err)));
  };
  const remove = (s: Stream) => {
    if (!window.confirm(t('confirmDeleteStream'))) return;
    api('DELETE', `/streams/${s.id}`).then(reload, (err) => setError(String(err.message ?? err)));
  };

  return (
    <section data-testid="page-streams">
      <h2>{t('streams')}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      {STATES.map((state) => {
        const list = streams.filter((s) => s.state === state);
        return (
          <div key={state} data-testid={`streams-${state}`}>
            <h3>{t(`stream_${state}`)}</h3>
            {list.length === 0 ? <p className="empty">{t('noStreams')}</p> : (
              <table>
                <thead>
                  <tr><th>{t('streamTitle')}</th><th>{t('room')}</th><th>{t('when')}</th><th>{t('listeners')}</th><th>{t('shareStream')}</th><th /></tr>
                </thead>
                <tbody>
                  {list.map((s) => (
                    <tr key={s.id} data-testid={`stream-${s.id}`}>
                      <td>{s.title}</td>
                      <td>{s.room_number} · {s.room_name}</td>
                      <td>{s.state === 'scheduled' ? (s.starts_at ? t.time(s.starts_at) : '') : s.started_at ? t.time(s.started_at) : ''}</td>
                      <td>{s.state === 'live' ? s.listeners : s.state === 'ended' ? `${t('peak')} ${s.peak_listeners}` : ''}</td>
                      <td><Share t={t} stream={s} /></td>
                      <td className="actions">
                        {s.state !== 'ended' && <a className="button-link" href={s.link} target="_blank" rel="noopener">{t('watch')}</a>}
                        {s.state !== 'live' && <button onClick={() => remove(s)}>{t('delete')}</button>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
      <form className="card" onSubmit={schedule} data-testid="schedule-stream">
        <h3>{t('scheduleStream')}</h3>
        <label>{t('room')}
          <select data-testid="stream-room" value={room} onChange={(e) => setRoom(e.target.value)}>
            {rooms.map((r) => <option key={r.id} value={r.id}>{r.number} · {r.name}</option>)}
          </select>
        </label>
        <label>{t('streamTitle')}<input data-testid="stream-title" value={title} maxLength={100} onChange={(e) => setTitle(e.target.value)} /></label>
        <label>{t('startsAt')}<input data-testid="stream-at" type="datetime-local" value={at} onChange={(e) => setAt(e.target.value)} /></label>
        <label>{t('streamPassword')}
          <input data-testid="stream-password-input" value={password} disabled={open} placeholder={t('passwordMadeUp')} maxLength={32} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <label className="check"><input type="checkbox" checked={open} onChange={(e) => setOpen(e.target.checked)} /> {t('openStream')}</label>
        <button type="submit" data-testid="stream-schedule">{t('schedule')}</button>
      </form>
    </section>
  );
}
