import { useState } from 'react';
import { api, asError, type ApiError, type Member, type Redialled, type Room, type RoomFlag, type TemplateSettings, type User } from './api';
import type { Key, T } from './i18n';
import { MemberPicker } from './MemberPicker';
import { settingFlags, startedText } from './TemplateEditor';

/// The settings of a room the console switches on and off.
export const roomFlags: [RoomFlag, Key][] = [
  ['entry_chime', 'entryChime'],
  ['alone_music', 'aloneMusic'],
  ['members_skip_pin', 'membersSkipPin'],
  ['auto_record', 'autoRecord'],
];

/// Every setting of a room, as the API has them: number, name, PIN, capacity, the longest a
/// meeting may last, the prompts' language, the owner, chimes, music while alone and whether
/// invited members skip the PIN.
export function RoomEditor({ t, room, users, onClose }: { t: T; room: Room; users: User[]; onClose: (saved: boolean) => void }) {
  const [draft, setDraft] = useState({
    number: room.number,
    name: room.name,
    pin: room.pin ?? '',
    capacity: String(room.capacity),
    max_duration_minutes: room.max_duration_minutes === null ? '' : String(room.max_duration_minutes),
    language: room.language,
    owner_id: room.owner_id ?? '',
    entry_chime: room.entry_chime,
    alone_music: room.alone_music,
    members_skip_pin: room.members_skip_pin,
    auto_record: room.auto_record,
  });
  const [error, setError] = useState<ApiError | null>(null);
  const fieldError = (name: string) => error?.errors?.filter((e) => e.field === name).map((e) => e.reason).join('; ');
  const number = (v: string) => (/^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v);
  const save = () =>
    api('PATCH', `/rooms/${room.id}`, {
      number: draft.number.trim(),
      name: draft.name.trim(),
      pin: draft.pin.trim() === '' ? null : draft.pin.trim(),
      capacity: number(draft.capacity),
      max_duration_minutes: draft.max_duration_minutes.trim() === '' ? null : number(draft.max_duration_minutes),
      language: draft.language,
      owner_id: draft.owner_id === '' ? null : draft.owner_id,
      entry_chime: draft.entry_chime,
      alone_music: draft.alone_music,
      members_skip_pin: draft.members_skip_pin,
      auto_record: draft.auto_record,
    }).then(() => onClose(true), (e) => setError(asError(e)));
  const text = (name: 'number' | 'name' | 'pin' | 'capacity' | 'max_duration_minutes', label: Key, hint?: string) => (
    <label>
      {t(label)}
      <input
        data-testid={`room-edit-${name}`} value={draft[name]} placeholder={hint}
        inputMode={name === 'name' ? undefined : 'numeric'}
        onChange={(e) => setDraft({ ...draft, [name]: e.target.value })}
      />
      {fieldError(name) && <small className="error">{fieldError(name)}</small>}
    </label>
  );
  return (
    <section className="editor" data-testid="room-editor" aria-label={t('editRoom')}>
      <h3>{t('editRoom')}: {room.number} · {room.name}</h3>
      {error && <p className="error" role="alert" data-testid="editor-error">{error.errors.length > 0 ? t('fieldsRefused') : error.message}</p>}
      <div className="editor-grid">
        {text('number', 'number')}
        {text('name', 'name')}
        {text('pin', 'pin', t('noPin'))}
        {text('capacity', 'capacity')}
        {text('max_duration_minutes', 'maxDuration', t('unlimited'))}
        <label>
          {t('language')}
          <select data-testid="room-edit-language" value={draft.language} onChange={(e) => setDraft({ ...draft, language: e.target.value as Room['language'] })}>
            <option value="en">{t('lang_en')}</option>
            <option value="zh">{t('lang_zh')}</option>
          </select>
        </label>
        <label>
          {t('owner')}
          <select data-testid="room-edit-owner" value={draft.owner_id} onChange={(e) => setDraft({ ...draft, owner_id: e.target.value })}>
            <option value="">{t('noOwner')}</option>
            {users.map((u) => <option key={u.id} value={u.id}>{u.display_name}</option>)}
          </select>
          {fieldError('owner_id') && <small className="error">{fieldError('owner_id')}</small>}
        </label>
        <fieldset className="flags">
          <legend>{t('roomSettings')}</legend>
          {roomFlags.map(([flag, label]) => (
            <label key={flag} className="flag">
              <input type="checkbox" data-testid={`room-edit-${flag}`} checked={draft[flag]} onChange={(e) => setDraft({ ...draft, [flag]: e.target.checked })} />
              {t(label)}
            </label>
          ))}
        </fieldset>
      </div>
      <div className="editor-actions">
        <button className="primary" data-testid="room-edit-save" onClick={save}>{t('save')}</button>
        <button data-testid="room-edit-cancel" onClick={() => onClose(false)}>{t('cancel')}</button>
      </div>
    </section>
  );
}

/// A meeting now in this room, without a template: pick the people (the directory or
/// numbers), their roles and how the meeting starts; the server calls them all at once.
/// For someone who phoned the operator: `initial` lists the caller, and `replacesCall` is
/// their call, which ends when the meeting starts (the meeting calls them back at once).
export function AdHocStart({ t, room, onClose, onStarted, initial = [], replacesCall }: {
  t: T; room: Room; onClose: () => void; onStarted: () => void; initial?: Member[]; replacesCall?: string;
}) {
  const [members, setMembers] = useState<Member[]>(initial);
  const [settings, setSettings] = useState<TemplateSettings>({ mute_on_entry: false, record: false, lock_on_start: false, whisper_allowed: false, layout: null });
  const [error, setError] = useState<ApiError | null>(null);
  const [note, setNote] = useState('');
  const start = () =>
    api<Redialled>('POST', '/conferences', { room_id: room.id, members, settings, ...(replacesCall ? { replaces_call: replacesCall } : {}) }).then(
      (answer) => {
        setError(null);
        setNote(startedText(t, answer));
        onStarted();
      },
      (e) => setError(asError(e)),
    );
  const fieldError = (name: string) =>
    error?.errors?.filter((e) => e.field === name || e.field.startsWith(`${name}[`) || e.field.startsWith(`${name}.`))
      .map((e) => `${e.field}: ${e.reason}`).join('; ');
  return (
    <section className="editor" data-testid="adhoc-start" aria-label={t('startNowIn')}>
      <h3>{t('startNowIn')} {room.number} · {room.name}</h3>
      {error && <p className="error" role="alert" data-testid="adhoc-error">{error.message}</p>}
      {note && <p className="notice" role="status" data-testid="adhoc-note">{note}</p>}
      <fieldset className="flags">
        <legend>{t('meetingSettings')}</legend>
        {settingFlags.filter(([flag]) => flag !== 'record').map(([flag, label]) => (
          <label key={flag} className="flag">
            <input type="checkbox" data-testid={`adhoc-${flag}`} checked={settings[flag]} onChange={(e) => setSettings({ ...settings, [flag]: e.target.checked })} />
            {t(label)}
          </label>
        ))}
      </fieldset>
      <MemberPicker t={t} members={members} onChange={setMembers} error={fieldError('members')} />
      <div className="editor-actions">
        <button className="primary" data-testid="adhoc-start-button" onClick={start} disabled={members.length === 0}>{t('startMeeting')}</button>
        <button data-testid="adhoc-close" onClick={onClose}>{t('close')}</button>
      </div>
    </section>
  );
}
