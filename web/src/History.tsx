import { useCallback, useEffect, useState } from 'react';
import { api, asError, download, type Meeting, type Page, type Redialled } from './api';
import type { Attendance } from './api-schema';
import type { T } from './i18n';
import { startedText } from './TemplateEditor';

type LogEntry = { at: number; actor: string; kind: string; detail: unknown };
type Filters = { from: string; to: string; room: string; participant: string };
const noFilters: Filters = { from: '', to: '', room: '', participant: '' };

/// The query string of a search: a day's start and the next day's start, in local time.
function query(f: Filters, cursor: string | null, limit: number): string {
  const q = new URLSearchParams({ limit: String(limit) });
  if (f.from) q.set('since', String(new Date(`${f.from}T00:00`).getTime()));
  if (f.to) q.set('until', String(new Date(`${f.to}T00:00`).getTime() + 86_400_000 - 1));
  if (f.room.trim()) q.set('q', f.room.trim());
  if (f.participant.trim()) q.set('participant', f.participant.trim());
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

/// The tenant's meetings (administrators), newest first, each of which can be started again in
/// one click: the same template, or the same room calling back whoever was called into it.
/// `full`: the History page — filters (dates, room, attendee), more pages, a meeting's
/// attendance and log, exports. Otherwise the live page's recent list. `live` changes when a
/// meeting starts or ends, which is when to look again.
/// `open`/`onOpen`: the meeting whose details show, when the address names it (`/history/<id>`).
export function History({ t, live, onStarted, full = false, open: routed, onOpen }: {
  t: T; live: string; onStarted: () => void; full?: boolean; open?: string | null; onOpen?: (id: string | null) => void;
}) {
  const [meetings, setMeetings] = useState<Meeting[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [filters, setFilters] = useState<Filters>(noFilters);
  const [applied, setApplied] = useState<Filters>(noFilters);
  const [own, setOwn] = useState<string | null>(null);
  const open = onOpen ? routed ?? null : own;
  const setOpen = onOpen ?? setOwn;
  const [started, setStarted] = useState<{ meeting: string; answer: Redialled } | null>(null);
  const [error, setError] = useState('');
  const limit = full ? 50 : 20;
  const reload = useCallback(() => {
    api<Page<Meeting>>('GET', `/conference-history?${query(applied, null, limit)}`).then((p) => {
      setMeetings(p.items);
      setNext(p.next_cursor);
    }, (e) => setError(asError(e).message));
  }, [applied, limit]);
  useEffect(() => {
    reload();
    const timer = setInterval(reload, 10000);
    return () => clearInterval(timer);
  }, [reload, live]);
  const more = () =>
    next && api<Page<Meeting>>('GET', `/conference-history?${query(applied, next, limit)}`).then((p) => {
      setMeetings((m) => [...m, ...p.items]);
      setNext(p.next_cursor);
    }, (e) => setError(asError(e).message));
  const again = (m: Meeting) =>
    api<Redialled>('POST', `/conference-history/${m.id}/restart`).then(
      (answer) => {
        setError('');
        setStarted({ meeting: m.id, answer });
        onStarted();
        // The new meeting's record is written a moment later.
        setTimeout(reload, 500);
      },
      (e) => {
        setStarted(null);
        setError(asError(e).message);
      },
    );
  const notice = started && startedText(t, started.answer, true);
  const field = (name: keyof Filters, label: Parameters<T>[0], type = 'text') => (
    <label>
      {t(label)}
      <input type={type} data-testid={`history-${name}`} value={filters[name]} onChange={(e) => setFilters({ ...filters, [name]: e.target.value })} />
    </label>
  );
  return (
    <div className="history" data-testid={full ? 'page-history' : 'history'}>
      {full ? <h2>{t('meetingHistory')}</h2> : <h3>{t('history')}</h3>}
      {full && (
        <form
          className="create" data-testid="history-filters"
          onSubmit={(e) => {
            e.preventDefault();
            setApplied(filters);
          }}
        >
          {field('from', 'fromDate', 'date')}
          {field('to', 'toDate', 'date')}
          {field('room', 'roomNumberOrName')}
          {field('participant', 'attendee')}
          <span className="buttons">
            <button type="submit" data-testid="history-search">{t('searchButton')}</button>
            <button type="button" onClick={() => { setFilters(noFilters); setApplied(noFilters); }}>{t('clear')}</button>
            <button
              type="button" data-testid="history-export"
              onClick={() => download(`/conference-history?${query(applied, null, 200)}&format=csv`, 'meetings.csv').catch((e) => setError(String(e)))}
            >
              {t('exportCsv')}
            </button>
          </span>
        </form>
      )}
      {notice && <p className="notice" data-testid="restart-notice">{notice}</p>}
      {error && <p className="error" role="alert" data-testid="restart-error">{error}</p>}
      {meetings.length === 0 ? (
        <p className="empty">{t('noHistory')}</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>{t('room')}</th><th>{t('started')}</th><th>{t('ended')}</th><th>{t('origin')}</th><th />
            </tr>
          </thead>
          <tbody>
            {meetings.map((m) => (
              <HistoryRow key={m.id} t={t} m={m} full={full} open={open === m.id} onToggle={() => setOpen(open === m.id ? null : m.id)} onAgain={() => again(m)} />
            ))}
          </tbody>
        </table>
      )}
      {full && next && <button data-testid="history-more" onClick={more}>{t('more')}</button>}
    </div>
  );
}

function HistoryRow({ t, m, full, open, onToggle, onAgain }: {
  t: T; m: Meeting; full: boolean; open: boolean; onToggle: () => void; onAgain: () => void;
}) {
  return (
    <>
      <tr data-testid={`meeting-${m.id}`} data-room={m.room_number}>
        <td>{m.room_number} · {m.room_name}</td>
        <td>{t.time(m.started_at)}</td>
        <td>{m.ended_at ? t.time(m.ended_at) : t('inProgress')}</td>
        <td>{t(m.template_id ? 'fromTemplate' : 'adHoc')}</td>
        <td className="actions">
          {full && <button data-testid="history-details" onClick={onToggle}>{t(open ? 'close' : 'details')}</button>}
          {m.ended_at && <button data-testid="restart" onClick={onAgain}>{t('startAgain')}</button>}
        </td>
      </tr>
      {open && (
        <tr className="details">
          <td colSpan={5}><MeetingDetails t={t} meeting={m} /></td>
        </tr>
      )}
    </>
  );
}

/// Who attended (how they came, when, for how long) and what happened, with the log as CSV.
function MeetingDetails({ t, meeting }: { t: T; meeting: Meeting }) {
  const [attendance, setAttendance] = useState<Attendance[]>([]);
  const [log, setLog] = useState<LogEntry[]>([]);
  const [error, setError] = useState('');
  useEffect(() => {
    api<{ attendance: Attendance[] }>('GET', `/conference-history/${meeting.id}`).then((r) => setAttendance(r.attendance), (e) => setError(asError(e).message));
    api<LogEntry[]>('GET', `/conference-history/${meeting.id}/log`).then(setLog, (e) => setError(asError(e).message));
  }, [meeting.id]);
  const minutes = (a: Attendance) => (a.left_at ? Math.max(1, Math.round((a.left_at - a.joined_at) / 60_000)) : null);
  return (
    <div className="meeting-details" data-testid="meeting-details">
      {error && <p className="error" role="alert">{error}</p>}
      <h4>{t('attendance')} ({attendance.length})</h4>
      <table data-testid="attendance">
        <thead><tr><th>{t('name')}</th><th>{t('number')}</th><th>{t('how')}</th><th>{t('joined')}</th><th>{t('left')}</th><th>{t('minutes')}</th></tr></thead>
        <tbody>
          {attendance.map((a) => (
            <tr key={a.member_id}>
              <td>{a.name}</td><td>{a.number}</td><td>{t.word('via', a.via)}</td>
              <td>{t.time(a.joined_at)}</td><td>{a.left_at ? t.time(a.left_at) : t('inProgress')}</td><td>{minutes(a) ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h4>{t('meetingLog')} ({log.length})</h4>
      <ul className="log" data-testid="meeting-log">
        {log.map((e, i) => {
          // `member` is the member (joined) or its id (the rest).
          const member = (e.detail as { member?: number | { name?: string } } | null)?.member;
          const who = typeof member === 'object' ? member?.name : attendance.find((a) => a.member_id === member)?.name;
          return <li key={i}><small>{t.time(e.at)}</small> {e.actor === 'system' ? t('systemActor') : e.actor}: {t.word('event', e.kind)}{who ? ` — ${who}` : ''}</li>;
        })}
      </ul>
      <button data-testid="log-export" onClick={() => download(`/conference-history/${meeting.id}/log?format=csv`, `meeting-${meeting.id}-log.csv`).catch((e) => setError(String(e)))}>
        {t('exportLogCsv')}
      </button>
    </div>
  );
}
