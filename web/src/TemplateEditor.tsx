import { useEffect, useState } from 'react';
import {
  all, api, asError, type ApiError, type DirectoryEntry, type Member, type Redialled, type Room, type Template,
  type TemplateSettings, type User,
} from './api';
import type { Key, T } from './i18n';

const roles = ['participant', 'member', 'chairman', 'manager', 'owner'] as const;
const settingFlags: [keyof TemplateSettings, Key][] = [
  ['mute_on_entry', 'muteOnEntry'],
  ['lock_on_start', 'lockOnStart'],
  ['whisper_allowed', 'whisperAllowed'],
  ['record', 'recordMeeting'],
];

/// Where a member is called: an extension or a number, as the editor shows it.
function reach(m: Member, people: Map<string, DirectoryEntry>): string {
  if (m.kind === 'number') return m.number ?? '';
  const p = people.get((m.user_id ?? m.contact_id) as string);
  return p?.extension ?? p?.mobile ?? p?.landline ?? '';
}

/// One click: starts the template's meeting, and the server calls every member in parallel.
export function StartTemplate({ t, template, onStarted }: { t: T; template: Template; onStarted: () => void }) {
  const [note, setNote] = useState<{ text: string; error: boolean } | null>(null);
  const start = () =>
    api<Redialled>('POST', '/conferences', { template_id: template.id }).then(
      (answer) => {
        setNote({
          text: answer.members.length === 0
            ? t('startedNobody')
            : t('startedCalling') + answer.members.map((m) => (m.reason ? `${m.display_name} (${m.reason})` : m.display_name)).join(t('listSeparator')),
          error: false,
        });
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
  const [people, setPeople] = useState<Map<string, DirectoryEntry>>(new Map());
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<DirectoryEntry[]>([]);
  const [number, setNumber] = useState({ number: '', name: '' });
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => setDraft(template), [template]);
  useEffect(() => {
    all<Room>('/rooms').then(setRooms, () => setRooms([]));
    all<User>('/users').then(setUsers, () => setUsers([]));
    all<DirectoryEntry>('/directory').then((list) => setPeople(new Map(list.map((p) => [p.id, p]))), () => setPeople(new Map()));
  }, []);
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setFound([]);
      return;
    }
    let current = true;
    api<{ items: DirectoryEntry[] }>('GET', `/directory?q=${encodeURIComponent(q)}&limit=20`).then(
      (p) => current && setFound(p.items),
      () => current && setFound([]),
    );
    return () => {
      current = false;
    };
  }, [query]);

  const members = draft.members;
  const setMembers = (next: Member[]) => setDraft({ ...draft, members: next });
  const has = (p: DirectoryEntry) => members.some((m) => (p.kind === 'user' ? m.user_id === p.id : m.contact_id === p.id));
  const addPerson = (p: DirectoryEntry) => {
    if (has(p)) return;
    const m: Member = p.kind === 'user'
      ? { kind: 'user', user_id: p.id, display_name: p.name, role: 'member' }
      : { kind: 'contact', contact_id: p.id, display_name: p.name, role: 'member' };
    setMembers([...members, m]);
  };
  const addNumber = () => {
    const n = number.number.trim();
    if (!n) return;
    setMembers([...members, { kind: 'number', number: n, display_name: number.name.trim() || n, role: 'member' }]);
    setNumber({ number: '', name: '' });
  };
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
        </fieldset>
      </div>

      <h4>{t('members')} ({members.length})</h4>
      {fieldError('members') && <small className="error">{fieldError('members')}</small>}
      {members.length === 0 ? (
        <p className="empty">{t('noMembersYet')}</p>
      ) : (
        <table data-testid="tpl-members">
          <thead>
            <tr><th>{t('name')}</th><th>{t('entryKind')}</th><th>{t('number')}</th><th>{t('role')}</th><th /></tr>
          </thead>
          <tbody>
            {members.map((m, i) => (
              <tr key={`${m.kind}-${m.user_id ?? m.contact_id ?? m.number}-${i}`} data-testid={`tpl-member-${m.display_name}`}>
                <td>{m.display_name}</td>
                <td>{t(m.kind === 'user' ? 'entry_user' : m.kind === 'contact' ? 'contact' : 'number')}</td>
                <td>{reach(m, people)}</td>
                <td>
                  <select
                    aria-label={t('role')} data-testid="tpl-member-role" value={m.role}
                    onChange={(e) => setMembers(members.map((x, j) => (j === i ? { ...x, role: e.target.value } : x)))}
                  >
                    {roles.map((r) => <option key={r} value={r}>{t(`role_${r}`)}</option>)}
                  </select>
                </td>
                <td><button data-testid="tpl-member-remove" onClick={() => setMembers(members.filter((_, j) => j !== i))}>{t('removeFromList')}</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="editor-add">
        <label>
          {t('addFromDirectory')}
          <input data-testid="tpl-search" placeholder={t('searchPeople')} value={query} onChange={(e) => setQuery(e.target.value)} />
        </label>
        {found.length > 0 && (
          <ul className="found" data-testid="tpl-found">
            {found.map((p) => (
              <li key={p.id}>
                <button data-testid={`tpl-add-${p.name}`} disabled={has(p)} onClick={() => addPerson(p)}>+ {p.name}</button>
                <small>{[p.title, p.extension ?? p.mobile ?? p.landline].filter(Boolean).join(' · ')}</small>
              </li>
            ))}
          </ul>
        )}
        <span className="add-number">
          <input aria-label={t('number')} data-testid="tpl-number" placeholder={t('number')} value={number.number} onChange={(e) => setNumber({ ...number, number: e.target.value })} />
          <input aria-label={t('name')} data-testid="tpl-number-name" placeholder={t('name')} value={number.name} onChange={(e) => setNumber({ ...number, name: e.target.value })} />
          <button data-testid="tpl-add-number" onClick={addNumber}>{t('addNumber')}</button>
        </span>
      </div>

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
