import { useEffect, useState } from 'react';
import {
  all, api, asError, type ApiError, type Redialled, type Room, type Template, type TemplateSettings, type User,
} from './api';
import type { Key, T } from './i18n';
import { MemberPicker } from './MemberPicker';
import { LayoutSelect } from './Join';

export const settingFlags: [Exclude<keyof TemplateSettings, 'layout'>, Key][] = [
  ['mute_on_entry', 'muteOnEntry'],
  ['lock_on_start', 'lockOnStart'],
  ['whisper_allowed', 'whisperAllowed'],
  ['record', 'recordMeeting'],
];

/// What a start (or, `again`, a start of a past meeting) said: who the server is calling, and
/// why someone cannot be called.
export function startedText(t: T, answer: Redialled, again = false): string {
  if (answer.members.length === 0) return t(again ? 'startedAgainNobody' : 'startedNobody');
  return t(again ? 'startedAgain' : 'startedCalling')
    + answer.members.map((m) => (m.reason ? `${m.display_name} (${m.reason})` : m.display_name)).join(t('listSeparator'));
}

/// One click: starts the template's meeting, and the server calls every member in parallel.
export function StartTemplate({ t, template, onStarted }: { t: T; template: Template; onStarted: () => void }) {
  const [note, setNote] = useState<{ text: string; error: boolean } | null>(null);
  const start = () =>
    api<Redialled>('POST', '/conferences', { template_id: template.id }).then(
      (answer) => {
        setNote({ text: startedText(t, answer), error: false });
        onStarted();
      },
      (e) => setNote({ text: asError(e).message, error: true }),
    );
  return (
    <>
      <button className="primary" data-testid={`start-${template.name}`} onClick={start} disabled={!template.room_id} title={template.room_id ? '' : t('templateNeedsRoom')}>
        {t('startMeeting')}
      </button>
      {note && <small className={note.error ? 'error' : 'notice'} role={note.error ? 'alert' : 'status'} data-testid="start-note">{note.text}</small>}
    </>
  );
}

/// A template, whole: name, description, the room it meets in, the settings a meeting
/// starts with, the members (from the directory or by number) each with a role, and who it
/// is shared with. Saved in one request (and the sharing changes after it).
export function TemplateEditor({ t, template, onClose }: { t: T; template: Template; onClose: (saved: boolean) => void }) {
  const [draft, setDraft] = useState<Template>(template);
  const [rooms, setRooms] = useState<Room[]>([]);
  const [users, setUsers] = useState<User[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => setDraft(template), [template]);
  useEffect(() => {
    all<Room>('/rooms').then(setRooms, () => setRooms([]));
    all<User>('/users').then(setUsers, () => setUsers([]));
  }, []);
  const fieldError = (name: string) =>
    error?.errors?.filter((e) => e.field === name || e.field.startsWith(`${name}[`) || e.field.startsWith(`${name}.`))
      .map((e) => `${e.field}: ${e.reason}`).join('; ');

  const save = async () => {
    try {
      await api('PATCH', `/templates/${template.id}`, {
        name: draft.name,
        description: draft.description,
        room_id: draft.room_id,
        settings: draft.settings,
        members: draft.members,
      });
      const before = new Set(template.shared_with);
      const after = new Set(draft.shared_with);
      const added = [...after].filter((id) => !before.has(id));
      if (added.length > 0) await api('POST', `/templates/${template.id}/shares`, { user_ids: added });
      for (const id of before) if (!after.has(id)) await api('DELETE', `/templates/${template.id}/shares/${id}`);
      setError(null);
      onClose(true);
    } catch (e) {
      setError(asError(e));
    }
  };

  return (
    <section className="editor" data-testid="template-editor" aria-label={t('editTemplate')}>
      <h3>{t('editTemplate')}: {template.name}</h3>
      {error && <p className="error" role="alert" data-testid="editor-error">{error.errors.length > 0 ? t('fieldsRefused') : error.message}</p>}
      <div className="editor-grid">
        <label>
          {t('name')}
          <input data-testid="tpl-name" value={draft.name} onChange={(e) => setDraft({ ...draft, name: e.target.value })} />
          {fieldError('name') && <small className="error">{fieldError('name')}</small>}
        </label>
        <label>
          {t('description')}
          <input data-testid="tpl-description" value={draft.description} onChange={(e) => setDraft({ ...draft, description: e.target.value })} />
        </label>
        <label>
          {t('room')}
          <select data-testid="tpl-room" value={draft.room_id ?? ''} onChange={(e) => setDraft({ ...draft, room_id: e.target.value || null })}>
            <option value="">{t('noRoom')}</option>
            {rooms.map((r) => <option key={r.id} value={r.id}>{r.number} · {r.name}</option>)}
          </select>
          {fieldError('room_id') && <small className="error">{fieldError('room_id')}</small>}
        </label>
        <fieldset className="flags">
          <legend>{t('meetingSettings')}</legend>
          {settingFlags.map(([flag, label]) => (
            <label key={flag} className="flag">
              <input
                type="checkbox" data-testid={`tpl-${flag}`} checked={draft.settings[flag]}
                onChange={(e) => setDraft({ ...draft, settings: { ...draft.settings, [flag]: e.target.checked } })}
              />
              {t(label)}
            </label>
          ))}
          <label className="flag">
            {t('startLayout')}{' '}
            <LayoutSelect
              t={t}
              testId="tpl-layout"
              value={draft.settings.layout ?? '4'}
              onChange={(layout) => setDraft({ ...draft, settings: { ...draft.settings, layout } })}
            />
          </label>
        </fieldset>
      </div>

      <MemberPicker t={t} members={draft.members} onChange={(members) => setDraft({ ...draft, members })} error={fieldError('members')} />

      <h4>{t('sharedWith')}</h4>
      <div className="flags" data-testid="tpl-shares">
        {users.filter((u) => u.id !== template.owner_id).map((u) => (
          <label key={u.id} className="flag">
            <input
              type="checkbox" checked={draft.shared_with.includes(u.id)}
              onChange={(e) => setDraft({
                ...draft,
                shared_with: e.target.checked ? [...draft.shared_with, u.id] : draft.shared_with.filter((id) => id !== u.id),
              })}
            />
            {u.display_name}
          </label>
        ))}
      </div>

      <div className="editor-actions">
        <button className="primary" data-testid="tpl-save" onClick={save}>{t('save')}</button>
        <button data-testid="tpl-cancel" onClick={() => onClose(false)}>{t('cancel')}</button>
      </div>
    </section>
  );
}
