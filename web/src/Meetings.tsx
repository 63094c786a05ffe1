import { LayoutSelect } from './Join';
import { useCallback, useEffect, useState } from 'react';
import {
  all, api, asError, type ApiError, type Booking, type BookingMember, type Conflict, type Group, type MailMessage, type Member,
  type MyOccurrence, type Occurrence, type Room,
} from './api';
import type { Key, T } from './i18n';
import { MemberPicker } from './MemberPicker';

const DAY = 86_400_000;
const weekdays = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'] as const;
type Weekday = (typeof weekdays)[number];

/// The browser's time zone: the default for a booking.
const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
const zones = (): string[] => {
  const f = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf;
  return f ? f('timeZone') : [];
};

const pad = (n: number) => String(n).padStart(2, '0');
const isoDate = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
/// Monday 00:00 (browser time) of the week of `d`.
const weekStart = (d: Date) => {
  const x = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  x.setDate(x.getDate() - ((x.getDay() + 6) % 7));
  return x;
};
const addDays = (d: Date, n: number) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);

// ---------------------------------------------------------------- recurrence

type Freq = 'none' | 'daily' | 'weekly' | 'monthly_date' | 'monthly_weekday';
type Rule = { freq: Freq; days: Weekday[]; end: 'never' | 'until' | 'count'; until: string; count: number };
const noRule: Rule = { freq: 'none', days: [], end: 'never', until: '', count: 10 };

/// Which weekday of its month a date is: `2TU` (the 2nd Tuesday), `-1TU` for a fifth one (the last).
function nthWeekday(date: string): { n: number; day: Weekday } | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const n = Math.ceil(d.getDate() / 7);
  return { n: n >= 5 ? -1 : n, day: weekdays[(d.getDay() + 6) % 7] };
}

/// The RRULE value the editor's choices make (the start date gives the month's day or weekday).
export function toRrule(rule: Rule, startDate: string): string | null {
  let parts: string[];
  switch (rule.freq) {
    case 'none':
      return null;
    case 'daily':
      parts = ['FREQ=DAILY'];
      break;
    case 'weekly':
      parts = ['FREQ=WEEKLY'];
      if (rule.days.length > 0) parts.push(`BYDAY=${weekdays.filter((d) => rule.days.includes(d)).join(',')}`);
      break;
    case 'monthly_date':
      parts = ['FREQ=MONTHLY', `BYMONTHDAY=${Number(startDate.slice(8, 10)) || 1}`];
      break;
    case 'monthly_weekday': {
      const w = nthWeekday(startDate);
      parts = ['FREQ=MONTHLY'];
      if (w) parts.push(`BYDAY=${w.n}${w.day}`);
      break;
    }
  }
  if (rule.end === 'until' && /^\d{4}-\d{2}-\d{2}$/.test(rule.until)) parts.push(`UNTIL=${rule.until.replace(/-/g, '')}T235959Z`);
  if (rule.end === 'count') parts.push(`COUNT=${Math.max(1, Math.floor(rule.count) || 1)}`);
  return parts.join(';');
}

/// The editor's choices for a stored RRULE (what it cannot show stays as the rule says).
export function fromRrule(rrule: string | null): Rule {
  if (!rrule) return noRule;
  const kv = new Map(rrule.split(';').map((p) => p.split('=') as [string, string]));
  const rule: Rule = { ...noRule };
  const byday = kv.get('BYDAY') ?? '';
  switch (kv.get('FREQ')) {
    case 'DAILY': rule.freq = 'daily'; break;
    case 'WEEKLY':
      rule.freq = 'weekly';
      rule.days = byday.split(',').filter((d): d is Weekday => (weekdays as readonly string[]).includes(d));
      break;
    case 'MONTHLY': rule.freq = /\d/.test(byday) ? 'monthly_weekday' : 'monthly_date'; break;
    default: rule.freq = 'none';
  }
  const until = kv.get('UNTIL');
  const count = kv.get('COUNT');
  if (until) {
    rule.end = 'until';
    rule.until = `${until.slice(0, 4)}-${until.slice(4, 6)}-${until.slice(6, 8)}`;
  } else if (count) {
    rule.end = 'count';
    rule.count = Number(count) || 1;
  }
  return rule;
}

function RecurrenceEditor({ t, rule, startDate, onChange }: { t: T; rule: Rule; startDate: string; onChange: (r: Rule) => void }) {
  const w = nthWeekday(startDate);
  const nth = w ? (w.n === -1 ? t('nth_last') : t.word('nth', w.n)) : '';
  const monthlyWeekday = w ? t('monthlyOnWeekday').replace('{nth}', nth).replace('{day}', t(`day_${w.day}`)) : t('monthlyOnWeekday');
  const monthlyDate = t('monthlyOnDay').replace('{n}', String(Number(startDate.slice(8, 10)) || 1));
  return (
    <fieldset className="recurrence" data-testid="recurrence">
      <legend>{t('repeats')}</legend>
      <select data-testid="bk-freq" aria-label={t('repeats')} value={rule.freq} onChange={(e) => onChange({ ...rule, freq: e.target.value as Freq })}>
        <option value="none">{t('freq_none')}</option>
        <option value="daily">{t('freq_daily')}</option>
        <option value="weekly">{t('freq_weekly')}</option>
        <option value="monthly_date">{monthlyDate}</option>
        <option value="monthly_weekday">{monthlyWeekday}</option>
      </select>
      {rule.freq === 'weekly' && (
        <span className="flags" data-testid="bk-days">
          {weekdays.map((d) => (
            <label key={d} className="flag">
              <input
                type="checkbox" data-testid={`bk-day-${d}`} checked={rule.days.includes(d)}
                onChange={(e) => onChange({ ...rule, days: e.target.checked ? [...rule.days, d] : rule.days.filter((x) => x !== d) })}
              />
              {t(`day_${d}`)}
            </label>
          ))}
        </span>
      )}
      {rule.freq !== 'none' && (
        <span className="flags">
          <select data-testid="bk-end" aria-label={t('ends')} value={rule.end} onChange={(e) => onChange({ ...rule, end: e.target.value as Rule['end'] })}>
            <option value="never">{t('ends_never')}</option>
            <option value="until">{t('ends_until')}</option>
            <option value="count">{t('ends_count')}</option>
          </select>
          {rule.end === 'until' && (
            <input type="date" data-testid="bk-until" aria-label={t('ends_until')} value={rule.until} onChange={(e) => onChange({ ...rule, until: e.target.value })} />
          )}
          {rule.end === 'count' && (
            <>
              <input
                type="number" min={1} max={1000} data-testid="bk-count" aria-label={t('ends_count')} value={rule.count}
                onChange={(e) => onChange({ ...rule, count: Number(e.target.value) })}
              />
              {t('occurrencesWord')}
            </>
          )}
        </span>
      )}
    </fieldset>
  );
}

// ---------------------------------------------------------------- conflicts

/// A conflict in words: which occurrence, and what is in the way.
export function conflictText(t: T, c: Conflict): string {
  const when = t.time(c.occurrence_start);
  const other = c.booking_name ? `“${c.booking_name}”` : '';
  const otherWhen = c.other_start !== undefined && c.other_start !== null ? ` (${t.time(c.other_start)})` : '';
  switch (c.kind) {
    case 'room':
      return t('conflict_room').replace('{when}', when).replace('{other}', other + otherWhen);
    case 'member':
      return t('conflict_member').replace('{when}', when).replace('{who}', (c.members ?? []).join(t('listSeparator'))).replace('{other}', other + otherWhen);
    case 'capacity': {
      const m = /(\d+) people expected with (\d+) in other meetings at once: more than the capacity of (\d+)/.exec(c.detail);
      return m
        ? t('conflict_capacity').replace('{when}', when).replace('{size}', m[1]).replace('{peak}', m[2]).replace('{capacity}', m[3])
        : `${when}: ${c.detail}`;
    }
    default:
      return `${when}: ${c.detail}`;
  }
}

function ConflictList({ t, conflicts, onAnyway, onBack }: { t: T; conflicts: Conflict[]; onAnyway: () => void; onBack: () => void }) {
  return (
    <div className="conflicts" role="alert" data-testid="conflicts">
      <strong>{t('conflictsFound').replace('{n}', String(conflicts.length))}</strong>
      <ul>
        {conflicts.map((c, i) => <li key={i} data-testid="conflict">{conflictText(t, c)}</li>)}
      </ul>
      <div className="editor-actions">
        <button className="primary" data-testid="book-anyway" onClick={onAnyway}>{t('bookAnyway')}</button>
        <button data-testid="conflicts-back" onClick={onBack}>{t('changeBooking')}</button>
      </div>
    </div>
  );
}

/// Shows an API error in words; a 409 with conflicts as a list the user decides on.
function useOutcome() {
  const [error, setError] = useState<ApiError | null>(null);
  const [retry, setRetry] = useState<(() => void) | null>(null);
  return { error, setError, retry, setRetry };
}

// ---------------------------------------------------------------- the booking form

type Draft = {
  name: string; pin: string; description: string; expected: string; room_id: string; time_zone: string;
  date: string; time: string; duration: number; rule: Rule; members: Member[]; presenter: number;
  groups: string[]; mute_on_entry: boolean; dial_out: boolean; record: boolean; layout: string;
};

function draftOf(b: Booking | null): Draft {
  if (!b) {
    const start = new Date(Date.now() + DAY);
    return {
      name: '', pin: '', description: '', expected: '', room_id: '', time_zone: browserZone(),
      date: isoDate(start), time: '09:00', duration: 60, rule: noRule, members: [], presenter: -1, groups: [],
      mute_on_entry: false, dial_out: true, record: false, layout: '4',
    };
  }
  return {
    name: b.name, pin: b.pin ?? '', description: b.description, expected: String(b.expected_participants),
    room_id: b.room_id, time_zone: b.time_zone, date: b.start_local.slice(0, 10), time: b.start_local.slice(11, 16),
    duration: b.duration_minutes, rule: fromRrule(b.rrule ?? null),
    members: b.members.map((m) => ({ kind: m.kind, user_id: m.user_id, contact_id: m.contact_id, number: m.number, display_name: m.display_name, role: m.role as Member['role'] })),
    presenter: b.members.findIndex((m) => m.presenter), groups: [],
    mute_on_entry: b.settings.mute_on_entry, dial_out: b.settings.dial_out, record: b.settings.record,
    layout: b.settings.layout ?? '4',
  };
}

export function BookingForm({ t, booking, onClose }: { t: T; booking: Booking | null; onClose: (saved: boolean) => void }) {
  const [draft, setDraft] = useState<Draft>(() => draftOf(booking));
  const [rooms, setRooms] = useState<Room[]>([]);
  const [groups, setGroups] = useState<Group[]>([]);
  const { error, setError } = useOutcome();
  const [conflicts, setConflicts] = useState<Conflict[] | null>(null);
  useEffect(() => {
    all<Room>('/rooms').then((list) => {
      setRooms(list);
      setDraft((d) => (d.room_id || list.length === 0 ? d : { ...d, room_id: list[0].id }));
    }, (e) => setError(asError(e)));
    all<Group>('/groups').then(setGroups, () => setGroups([]));
    if (!booking) {
      api<{ name: string; pin: string }>('GET', '/bookings/proposal').then(
        (p) => setDraft((d) => ({ ...d, name: d.name || p.name, pin: d.pin || p.pin })),
        (e) => setError(asError(e)),
      );
    }
  }, [booking, setError]);
  const set = (patch: Partial<Draft>) => setDraft((d) => ({ ...d, ...patch }));
  const fieldError = (name: string) =>
    error?.errors?.filter((e) => e.field === name || e.field.startsWith(`${name}[`) || e.field.startsWith(`${name}.`))
      .map((e) => `${e.field}: ${e.reason}`).join('; ');

  const save = async (ignore: boolean) => {
    const members: BookingMember[] = draft.members.map((m, i) => ({ ...m, presenter: i === draft.presenter }));
    const body = {
      name: draft.name, pin: draft.pin, description: draft.description,
      expected_participants: draft.expected.trim() === '' ? undefined : Number(draft.expected),
      room_id: draft.room_id, time_zone: draft.time_zone, start_local: `${draft.date}T${draft.time}`,
      duration_minutes: Number(draft.duration), rrule: toRrule(draft.rule, draft.date) ?? (booking ? '' : undefined),
      members, groups: draft.groups.map((group_id) => ({ group_id, role: 'member' })),
      settings: { mute_on_entry: draft.mute_on_entry, dial_out: draft.dial_out, record: draft.record, layout: draft.layout },
      ignore_conflicts: ignore,
    };
    try {
      if (booking) {
        // Only what changed of the timing is sent: changing it drops the series' moved and
        // cancelled occurrences, which editing only the name must not do.
        const before = draftOf(booking);
        const patch: Record<string, unknown> = { ...body };
        if (draft.time_zone === before.time_zone) delete patch.time_zone;
        if (draft.date === before.date && draft.time === before.time) delete patch.start_local;
        if (Number(draft.duration) === before.duration) delete patch.duration_minutes;
        if (JSON.stringify(draft.rule) === JSON.stringify(before.rule)) delete patch.rrule;
        await api('PATCH', `/bookings/${booking.id}`, patch);
      }
      else await api('POST', '/bookings', body);
      setError(null);
      setConflicts(null);
      onClose(true);
    } catch (e) {
      const err = asError(e);
      if (err.status === 409 && err.conflicts.length > 0) {
        setConflicts(err.conflicts);
        setError(null);
      } else {
        setError(err);
      }
    }
  };

  return (
    <section className="editor" data-testid="booking-form" aria-label={booking ? t('editSeries') : t('bookMeeting')}>
      <h3>{booking ? `${t('editSeries')}: ${booking.name}` : t('bookMeeting')}</h3>
      {error && <p className="error" role="alert" data-testid="booking-error">{error.errors.length > 0 ? t('fieldsRefused') : error.message}</p>}
      {conflicts && <ConflictList t={t} conflicts={conflicts} onAnyway={() => save(true)} onBack={() => setConflicts(null)} />}
      <div className="editor-grid">
        <label>
          {t('name')}
          <input data-testid="bk-name" value={draft.name} onChange={(e) => set({ name: e.target.value })} />
          {fieldError('name') && <small className="error">{fieldError('name')}</small>}
        </label>
        <label>
          {t('pin')}
          <input data-testid="bk-pin" inputMode="numeric" value={draft.pin} onChange={(e) => set({ pin: e.target.value })} />
          {fieldError('pin') && <small className="error">{fieldError('pin')}</small>}
        </label>
        <label>
          {t('room')}
          <select data-testid="bk-room" value={draft.room_id} onChange={(e) => set({ room_id: e.target.value })}>
            {rooms.length === 0 && <option value="">{t('noRoom')}</option>}
            {rooms.map((r) => <option key={r.id} value={r.id}>{r.number} · {r.name}</option>)}
          </select>
          {fieldError('room_id') && <small className="error">{fieldError('room_id')}</small>}
        </label>
        <label>
          {t('description')}
          <input data-testid="bk-description" value={draft.description} onChange={(e) => set({ description: e.target.value })} />
        </label>
        <label>
          {t('expectedParticipants')}
          <input
            type="number" min={0} data-testid="bk-expected" placeholder={t('expectedDefault')} value={draft.expected}
            onChange={(e) => set({ expected: e.target.value })}
          />
          {fieldError('expected_participants') && <small className="error">{fieldError('expected_participants')}</small>}
        </label>
        <label>
          {t('timeZone')}
          <input data-testid="bk-zone" list="time-zones" value={draft.time_zone} onChange={(e) => set({ time_zone: e.target.value })} />
          <datalist id="time-zones">{zones().map((z) => <option key={z} value={z} />)}</datalist>
          {fieldError('time_zone') && <small className="error">{fieldError('time_zone')}</small>}
        </label>
        <label>
          {t('date')}
          <input type="date" data-testid="bk-date" value={draft.date} onChange={(e) => set({ date: e.target.value })} />
          {fieldError('start_local') && <small className="error">{fieldError('start_local')}</small>}
        </label>
        <label>
          {t('startTime')}
          <input type="time" data-testid="bk-time" value={draft.time} onChange={(e) => set({ time: e.target.value })} />
        </label>
        <label>
          {t('durationMinutes')}
          <input type="number" min={5} max={1440} step={5} data-testid="bk-duration" value={draft.duration} onChange={(e) => set({ duration: Number(e.target.value) })} />
          {fieldError('duration_minutes') && <small className="error">{fieldError('duration_minutes')}</small>}
        </label>
        <RecurrenceEditor t={t} rule={draft.rule} startDate={draft.date} onChange={(rule) => set({ rule })} />
        {fieldError('rrule') && <small className="error">{fieldError('rrule')}</small>}
        <fieldset className="flags">
          <legend>{t('meetingSettings')}</legend>
          {([['mute_on_entry', 'muteOnEntry'], ['dial_out', 'dialOut'], ['record', 'recordMeeting']] as [keyof Draft, Key][]).map(([flag, label]) => (
            <label key={flag} className="flag">
              <input type="checkbox" data-testid={`bk-${flag}`} checked={draft[flag] as boolean} onChange={(e) => set({ [flag]: e.target.checked })} />
              {t(label)}
            </label>
          ))}
          <label className="flag">
            {t('startLayout')}{' '}
            <LayoutSelect t={t} testId="bk-layout" value={draft.layout} onChange={(layout) => set({ layout })} />
          </label>
        </fieldset>
      </div>

      <MemberPicker t={t} members={draft.members} onChange={(members) => set({ members, presenter: draft.presenter < members.length ? draft.presenter : -1 })} error={fieldError('members')} />
      <div className="editor-add">
        <label>
          {t('presenter')}
          <select data-testid="bk-presenter" value={draft.presenter} onChange={(e) => set({ presenter: Number(e.target.value) })}>
            <option value={-1}>{t('noPresenter')}</option>
            {draft.members.map((m, i) => <option key={i} value={i}>{m.display_name}</option>)}
          </select>
        </label>
        {groups.length > 0 && (
          <fieldset className="flags" data-testid="bk-groups">
            <legend>{t('inviteGroups')}</legend>
            {groups.map((g) => (
              <label key={g.id} className="flag">
                <input
                  type="checkbox" checked={draft.groups.includes(g.id)}
                  onChange={(e) => set({ groups: e.target.checked ? [...draft.groups, g.id] : draft.groups.filter((x) => x !== g.id) })}
                />
                {g.name} ({g.members.length})
              </label>
            ))}
          </fieldset>
        )}
      </div>

      <div className="editor-actions">
        <button className="primary" data-testid="bk-save" onClick={() => save(false)}>{booking ? t('save') : t('bookIt')}</button>
        <button data-testid="bk-cancel" onClick={() => onClose(false)}>{t('cancel')}</button>
      </div>
    </section>
  );
}

// ---------------------------------------------------------------- one occurrence

function OccurrencePanel({ t, occ, canEdit, onEditSeries, onClose }: {
  t: T; occ: MyOccurrence; canEdit: boolean; onEditSeries: (b: Booking) => void; onClose: (changed: boolean) => void;
}) {
  const [date, setDate] = useState(occ.start_local.slice(0, 10));
  const [time, setTime] = useState(occ.start_local.slice(11, 16));
  const [duration, setDuration] = useState(Math.round((occ.end_at - occ.start_at) / 60000));
  const [scope, setScope] = useState<'this' | 'following'>('this');
  const { error, setError } = useOutcome();
  const [conflicts, setConflicts] = useState<{ list: Conflict[]; again: () => void } | null>(null);
  const path = `/bookings/${occ.booking_id}/occurrences/${occ.original_start}`;

  const run = async (request: (ignore: boolean) => Promise<unknown>, ignore = false) => {
    try {
      await request(ignore);
      onClose(true);
    } catch (e) {
      const err = asError(e);
      if (err.status === 409 && err.conflicts.length > 0) {
        setConflicts({ list: err.conflicts, again: () => run(request, true) });
        setError(null);
      } else setError(err);
    }
  };
  const move = () => run((ignore) => api('PATCH', path, { scope, start_local: `${date}T${time}`, duration_minutes: duration, ignore_conflicts: ignore }));
  const cancelOne = () => run(() => api('PATCH', path, { scope: 'this', cancelled: true }));
  const cancelFollowing = () => run(() => api('PATCH', path, { scope: 'following', cancelled: true }));
  const cancelSeries = () => window.confirm(t('confirmCancelSeries')) && run(() => api('DELETE', `/bookings/${occ.booking_id}`));
  const editSeries = () => api<Booking>('GET', `/bookings/${occ.booking_id}`).then(onEditSeries, (e) => setError(asError(e)));

  return (
    <section className="editor" data-testid="occurrence" aria-label={occ.name}>
      <h3>{occ.name}</h3>
      <p>
        <span data-testid="occ-when">{t.time(occ.start_at)} – {t.time(occ.end_at)}</span>
        {' · '}{t('room')} {occ.room_number}
        {' · '}{occ.role === 'organiser' ? t('organiser') : t.word('role', occ.role)}
        {occ.moved && <> · <em>{t('moved')}</em></>}
        {occ.cancelled && <> · <em>{t('cancelled')}</em></>}
        {occ.started_at && <> · {t('started')} {t.time(occ.started_at)}</>}
      </p>
      {occ.time_zone !== browserZone() && <p className="notice">{t('organiserTime')}: {occ.start_local.replace('T', ' ')} ({occ.time_zone})</p>}
      {error && <p className="error" role="alert" data-testid="occ-error">{error.errors.length > 0 ? error.errors.map((e) => `${e.field}: ${e.reason}`).join('; ') : error.message}</p>}
      {conflicts && <ConflictList t={t} conflicts={conflicts.list} onAnyway={conflicts.again} onBack={() => setConflicts(null)} />}
      {canEdit && !occ.cancelled && (
        <>
          <h4>{t('moveOccurrence')} ({occ.time_zone})</h4>
          <div className="editor-add">
            <label>{t('date')}<input type="date" data-testid="occ-date" value={date} onChange={(e) => setDate(e.target.value)} /></label>
            <label>{t('startTime')}<input type="time" data-testid="occ-time" value={time} onChange={(e) => setTime(e.target.value)} /></label>
            <label>{t('durationMinutes')}<input type="number" min={5} max={1440} data-testid="occ-duration" value={duration} onChange={(e) => setDuration(Number(e.target.value))} /></label>
            <label>
              {t('applyTo')}
              <select data-testid="occ-scope" value={scope} onChange={(e) => setScope(e.target.value as 'this' | 'following')}>
                <option value="this">{t('scope_this')}</option>
                <option value="following">{t('scope_following')}</option>
              </select>
            </label>
            <button className="primary" data-testid="occ-move" onClick={move}>{t('save')}</button>
          </div>
        </>
      )}
      <div className="editor-actions">
        {canEdit && <button data-testid="occ-edit-series" onClick={editSeries}>{t('editSeries')}</button>}
        {canEdit && !occ.cancelled && <button data-testid="occ-cancel-one" onClick={cancelOne}>{t('cancelOccurrence')}</button>}
        {canEdit && !occ.cancelled && <button data-testid="occ-cancel-following" onClick={cancelFollowing}>{t('cancelFollowing')}</button>}
        {canEdit && <button data-testid="occ-cancel-series" onClick={cancelSeries}>{t('cancelSeries')}</button>}
        <button data-testid="occ-close" onClick={() => onClose(false)}>{t('close')}</button>
      </div>
      {canEdit && <MailStatus t={t} bookingId={occ.booking_id} />}
    </section>
  );
}

// ---------------------------------------------------------------- invitations

/// The e-mail invitations of a booking and what became of each (its organiser and administrators).
function MailStatus({ t, bookingId }: { t: T; bookingId: string }) {
  const [items, setItems] = useState<MailMessage[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ items: MailMessage[] }>('GET', `/bookings/${bookingId}/mail`).then(
      (r) => setItems(r.items),
      (e) => setError(asError(e).message),
    );
  }, [bookingId]);
  if (error) return <p className="error" role="alert">{error}</p>;
  if (!items) return null;
  return (
    <>
      <h4>{t('invitationsByMail')}</h4>
      {items.length === 0 ? (
        <p className="empty">{t('noMail')}</p>
      ) : (
        <table data-testid="mail-status">
          <thead><tr><th>{t('recipient')}</th><th>{t('mailKind')}</th><th>{t('status')}</th></tr></thead>
          <tbody>
            {items.map((m) => (
              <tr key={m.id}>
                <td>{m.recipient_name} &lt;{m.recipient}&gt;</td>
                <td>{t(m.method === 'CANCEL' ? 'mail_cancel' : m.sequence === 0 ? 'mail_invite' : 'mail_update')}</td>
                <td>
                  {m.sent_at != null
                    ? `${t('mailSent')} ${t.time(m.sent_at)}`
                    : (
                      <span className={m.last_error ? 'error' : ''}>
                        {t('mailWaiting').replace('{n}', String(m.attempts)).replace('{at}', t.time(m.next_attempt_at))}
                        {m.last_error && <small className="error"> {m.last_error}</small>}
                      </span>
                    )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

// ---------------------------------------------------------------- the feed

function CalendarFeed({ t }: { t: T }) {
  const [url, setUrl] = useState<string | null>(null);
  const [note, setNote] = useState<{ text: string; error: boolean } | null>(null);
  const create = () =>
    api<{ token: string; path: string }>('POST', '/my/calendar-feed').then(
      (f) => {
        setUrl(`${location.origin}${f.path}`);
        setNote(null);
      },
      (e) => setNote({ text: asError(e).message, error: true }),
    );
  const revoke = () =>
    api('DELETE', '/my/calendar-feed').then(
      () => {
        setUrl(null);
        setNote({ text: t('feedRevoked'), error: false });
      },
      (e) => setNote({ text: asError(e).message, error: true }),
    );
  return (
    <section className="feed" data-testid="calendar-feed">
      <h3>{t('calendarFeed')}</h3>
      <p className="hint">{t('calendarFeedHint')}</p>
      {url && <p><input readOnly className="feed-url" data-testid="feed-url" value={url} onFocus={(e) => e.target.select()} /></p>}
      <div className="editor-actions">
        <button data-testid="feed-create" onClick={create}>{url ? t('feedNew') : t('feedCreate')}</button>
        <button data-testid="feed-revoke" onClick={revoke}>{t('feedRevoke')}</button>
      </div>
      {note && <small className={note.error ? 'error' : 'notice'} role={note.error ? 'alert' : 'status'}>{note.text}</small>}
    </section>
  );
}

// ---------------------------------------------------------------- the page

export function Meetings({ t, admin, me }: { t: T; admin: boolean; me: string }) {
  const [view, setView] = useState<'week' | 'month'>('week');
  const [anchor, setAnchor] = useState(() => new Date());
  const [everyone, setEveryone] = useState(false);
  const [items, setItems] = useState<MyOccurrence[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [form, setForm] = useState<{ booking: Booking | null } | null>(null);
  const [open, setOpen] = useState<MyOccurrence | null>(null);
  const [version, setVersion] = useState(0);

  const first = view === 'week' ? weekStart(anchor) : weekStart(new Date(anchor.getFullYear(), anchor.getMonth(), 1));
  const days = view === 'week' ? 7 : 42;
  const from = first.getTime();
  const to = addDays(first, days).getTime();

  const load = useCallback(async () => {
    try {
      let list: MyOccurrence[];
      if (everyone) {
        const bookings = (await all<Booking>('/bookings')).filter((b) => !b.cancelled);
        const each = await Promise.all(bookings.map(async (b) => {
          const o = await api<{ items: Occurrence[] }>('GET', `/bookings/${b.id}/occurrences?from=${from}&to=${to}`);
          return o.items.map((x): MyOccurrence => ({
            ...x, name: b.name, room_id: b.room_id, room_number: '', organiser_id: b.organiser_id,
            role: b.organiser_id === me ? 'organiser' : 'member', time_zone: b.time_zone,
          }));
        }));
        const rooms = new Map((await all<Room>('/rooms')).map((r) => [r.id, r.number]));
        list = each.flat().map((x) => ({ ...x, room_number: rooms.get(x.room_id) ?? '' }));
      } else {
        list = (await api<{ items: MyOccurrence[] }>('GET', `/my/meetings?from=${from}&to=${to}`)).items;
      }
      setItems(list.sort((a, b) => a.start_at - b.start_at));
      setError(null);
    } catch (e) {
      setError(asError(e));
    }
  }, [everyone, from, to, me]);
  useEffect(() => {
    load();
  }, [load, version]);

  const step = (n: number) =>
    setAnchor((a) => (view === 'week' ? addDays(a, 7 * n) : new Date(a.getFullYear(), a.getMonth() + n, 1)));
  const locale = t.lang === 'zh' ? 'zh-CN' : 'en-GB';
  const title = view === 'week'
    ? `${first.toLocaleDateString(locale, { dateStyle: 'medium' })} – ${addDays(first, 6).toLocaleDateString(locale, { dateStyle: 'medium' })}`
    : anchor.toLocaleDateString(locale, { year: 'numeric', month: 'long' });
  const hhmm = (at: number) => new Date(at).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
  const closed = (changed: boolean) => {
    setOpen(null);
    setForm(null);
    if (changed) setVersion((v) => v + 1);
  };

  const cells = Array.from({ length: days }, (_, i) => addDays(first, i));
  return (
    <section className="meetings" data-testid="page-meetings">
      <div className="toolbar">
        <button className="primary" data-testid="book-new" onClick={() => { setOpen(null); setForm({ booking: null }); }}>{t('bookMeeting')}</button>
        <span className="view-switch">
          <button data-testid="view-week" className={view === 'week' ? 'active' : ''} onClick={() => setView('week')}>{t('week')}</button>
          <button data-testid="view-month" className={view === 'month' ? 'active' : ''} onClick={() => setView('month')}>{t('month')}</button>
        </span>
        <button data-testid="cal-prev" aria-label={t('previous')} onClick={() => step(-1)}>‹</button>
        <button data-testid="cal-today" onClick={() => setAnchor(new Date())}>{t('today')}</button>
        <button data-testid="cal-next" aria-label={t('next')} onClick={() => step(1)}>›</button>
        <strong data-testid="cal-title">{title}</strong>
        {admin && (
          <label className="flag">
            <input type="checkbox" data-testid="cal-everyone" checked={everyone} onChange={(e) => setEveryone(e.target.checked)} />
            {t('allTenantMeetings')}
          </label>
        )}
      </div>
      {error && <p className="error" role="alert" data-testid="meetings-error">{error.message}</p>}
      {form && <BookingForm key={form.booking?.id ?? 'new'} t={t} booking={form.booking} onClose={closed} />}
      {open && (
        <OccurrencePanel
          key={`${open.booking_id}-${open.original_start}`} t={t} occ={open} canEdit={admin || open.organiser_id === me}
          onEditSeries={(b) => { setOpen(null); setForm({ booking: b }); }} onClose={closed}
        />
      )}
      <div className={`calendar ${view}`} data-testid={`calendar-${view}`}>
        {cells.slice(0, 7).map((d) => (
          <div key={`h${d.getDay()}`} className="dow">{d.toLocaleDateString(locale, { weekday: 'short' })}</div>
        ))}
        {cells.map((d) => {
          const start = d.getTime();
          const end = addDays(d, 1).getTime();
          const here = items.filter((o) => o.start_at >= start && o.start_at < end);
          const outside = view === 'month' && d.getMonth() !== anchor.getMonth();
          const today = isoDate(d) === isoDate(new Date());
          return (
            <div key={start} className={`day${outside ? ' outside' : ''}${today ? ' today' : ''}`} data-testid={`day-${isoDate(d)}`}>
              <div className="date">{view === 'week' ? d.toLocaleDateString(locale, { month: 'short', day: 'numeric' }) : d.getDate()}</div>
              {here.map((o) => (
                <button
                  key={`${o.booking_id}-${o.original_start}`} data-testid="occ" data-booking={o.booking_id} data-start={o.original_start}
                  className={`occ${o.cancelled ? ' cancelled' : ''}${o.moved ? ' moved' : ''}`}
                  title={`${o.name} · ${t.time(o.start_at)} – ${t.time(o.end_at)}`}
                  onClick={() => { setForm(null); setOpen(o); }}
                >
                  <span className="at">{hhmm(o.start_at)}</span> {o.name}
                  {view === 'week' && <small>{t('room')} {o.room_number}</small>}
                </button>
              ))}
            </div>
          );
        })}
      </div>
      {items.length === 0 && !error && <p className="empty">{t('noMeetingsHere')}</p>}
      <CalendarFeed t={t} />
    </section>
  );
}
