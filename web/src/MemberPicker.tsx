import { useEffect, useState } from 'react';
import { all, api, type DirectoryEntry, type Member } from './api';
import type { T } from './i18n';

const roles = ['participant', 'member', 'chairman', 'manager', 'owner'] as const;

/// Where a member is called: an extension or a number, as the list shows it.
function reach(m: Member, people: Map<string, DirectoryEntry>): string {
  if (m.kind === 'number') return m.number ?? '';
  const p = people.get((m.user_id ?? m.contact_id) as string);
  return p?.extension ?? p?.mobile ?? p?.landline ?? '';
}

/// The people a meeting calls, each with a role: picked from the directory (by name, pinyin
/// initials or number) or typed as a number. Used by the template editor and the ad-hoc start.
export function MemberPicker({ t, members, onChange, error }: {
  t: T; members: Member[]; onChange: (members: Member[]) => void; error?: string;
}) {
  const [people, setPeople] = useState<Map<string, DirectoryEntry>>(new Map());
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<DirectoryEntry[]>([]);
  const [number, setNumber] = useState({ number: '', name: '' });
  useEffect(() => {
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

  const has = (p: DirectoryEntry) => members.some((m) => (p.kind === 'user' ? m.user_id === p.id : m.contact_id === p.id));
  const addPerson = (p: DirectoryEntry) => {
    if (has(p)) return;
    const m: Member = p.kind === 'user'
      ? { kind: 'user', user_id: p.id, display_name: p.name, role: 'member' }
      : { kind: 'contact', contact_id: p.id, display_name: p.name, role: 'member' };
    onChange([...members, m]);
  };
  const addNumber = () => {
    const n = number.number.trim();
    if (!n) return;
    onChange([...members, { kind: 'number', number: n, display_name: number.name.trim() || n, role: 'member' }]);
    setNumber({ number: '', name: '' });
  };

  return (
    <>
      <h4>{t('members')} ({members.length})</h4>
      {error && <small className="error">{error}</small>}
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
                    onChange={(e) => onChange(members.map((x, j) => (j === i ? { ...x, role: e.target.value as Member['role'] } : x)))}
                  >
                    {roles.map((r) => <option key={r} value={r}>{t.word('role', r)}</option>)}
                  </select>
                </td>
                <td><button data-testid="tpl-member-remove" onClick={() => onChange(members.filter((_, j) => j !== i))}>{t('removeFromList')}</button></td>
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
    </>
  );
}
