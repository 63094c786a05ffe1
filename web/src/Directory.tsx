import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { all, api, ApiError, asError, type Department, type DirectoryEntry, type Group, type GroupMember, type Page } from './api';
import { DirectoryImportExport, Integrations } from './DirectoryIo';
import type { T } from './i18n';


/// The directory: the organisation tree (administrators add, rename, move and delete
/// departments), the people of the chosen department, a search by name, pinyin initials or
/// number, and groups made by picking people from the results.
export function Directory({ t, admin }: { t: T; admin: boolean }) {
  const [departments, setDepartments] = useState<Department[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [subtree, setSubtree] = useState(true);
  const [query, setQuery] = useState('');
  const [people, setPeople] = useState<DirectoryEntry[]>([]);
  const [picked, setPicked] = useState<DirectoryEntry[]>([]);
  const [error, setError] = useState<ApiError | null>(null);

  const reloadTree = useCallback(() => {
    all<Department>('/departments').then(setDepartments, (e) => setError(asError(e)));
  }, []);
  useEffect(reloadTree, [reloadTree]);

  // Answers can come back out of order (a search typed while a change is saved): only the
  // latest request's answer is shown, and a change reloads with the current search.
  const latest = useRef(0);
  const reloadPeople = useCallback(() => {
    const request = ++latest.current;
    const params = new URLSearchParams({ limit: '200' });
    if (query.trim()) params.set('q', query.trim());
    if (selected) {
      params.set('department_id', selected);
      if (subtree) params.set('subtree', 'true');
    }
    api<Page<DirectoryEntry>>('GET', `/directory?${params}`).then((p) => {
      if (request === latest.current) setPeople(p.items);
    }, (e) => setError(asError(e)));
  }, [query, selected, subtree]);
  const reloadRef = useRef(reloadPeople);
  reloadRef.current = reloadPeople;
  useEffect(() => {
    const timer = setTimeout(reloadPeople, 200);
    return () => clearTimeout(timer);
  }, [reloadPeople]);

  useEffect(() => setError(null), [selected]);
  const byId = useMemo(() => new Map(departments.map((d) => [d.id, d])), [departments]);
  const path = (id: string | null): string => {
    const names: string[] = [];
    for (let d = id ? byId.get(id) : undefined; d && names.length < 50; d = d.parent_id ? byId.get(d.parent_id) : undefined) {
      names.unshift(d.name);
    }
    return names.join(' / ');
  };
  const act = (request: Promise<unknown>, after: () => void) =>
    request.then(() => {
      setError(null);
      after();
    }, (e) => setError(asError(e)));
  const togglePick = (p: DirectoryEntry) =>
    setPicked((list) => (list.some((x) => x.id === p.id) ? list.filter((x) => x.id !== p.id) : [...list, p]));

  return (
    <section data-testid="page-directory" className="directory">
      <h2>{t('directory')}</h2>
      {error && <p className="error" role="alert" data-testid="error">{error.message}</p>}
      <div className="directory-columns">
        <aside className="tree">
          <h3>{t('departments')}</h3>
          <button
            className={`node ${selected === null ? 'selected' : ''}`} data-testid="dept-all"
            onClick={() => setSelected(null)}
          >
            {t('everyone')}
          </button>
          <Tree t={t} departments={departments} parent={null} selected={selected} onSelect={setSelected} />
          {admin && (
            <DepartmentForms
              t={t} departments={departments} selected={selected ? byId.get(selected) ?? null : null} path={path}
              act={act} onChanged={(keep) => {
                reloadTree();
                reloadPeople();
                if (!keep) setSelected(null);
              }}
              onCreated={(d) => {
                reloadTree();
                setSelected(d.id);
              }}
            />
          )}
        </aside>
        <div className="people">
          <h3>{selected ? path(selected) : t('everyone')}</h3>
          <div className="toolbar">
            <input
              type="search" data-testid="directory-search" placeholder={t('searchPeople')} value={query}
              onChange={(e) => setQuery(e.target.value)}
            />
            {selected && (
              <label className="flag">
                <input type="checkbox" data-testid="subtree" checked={subtree} onChange={(e) => setSubtree(e.target.checked)} />
                {t('includeSubdepartments')}
              </label>
            )}
          </div>
          {people.length === 0 ? (
            <p className="empty" data-testid="no-people">{t('noPeople')}</p>
          ) : (
            <table data-testid="people">
              <thead>
                <tr>
                  <th />
                  <th>{t('name')}</th>
                  <th>{t('title')}</th>
                  <th>{t('department')}</th>
                  <th>{t('extension')}</th>
                  <th>{t('mobile')}</th>
                  <th>{t('landline')}</th>
                  <th>{t('entryKind')}</th>
                </tr>
              </thead>
              <tbody>
                {people.map((p) => (
                  <tr key={p.id} data-testid={`person-${p.name}`}>
                    <td>
                      <input
                        type="checkbox" aria-label={t('pick')} data-testid="pick"
                        checked={picked.some((x) => x.id === p.id)} onChange={() => togglePick(p)}
                      />
                    </td>
                    <td>{p.name}</td>
                    <td>{p.title}</td>
                    <td>
                      {admin && p.book !== 'personal' ? (
                        <select
                          data-testid="person-department" aria-label={t('department')} value={p.department_id ?? ''}
                          onChange={(e) => act(
                            api('PATCH', `/${p.kind === 'user' ? 'users' : 'contacts'}/${p.id}`, { department_id: e.target.value || null }),
                            () => reloadRef.current(),
                          )}
                        >
                          <option value="">{t('noDepartment')}</option>
                          {departments.map((d) => <option key={d.id} value={d.id}>{path(d.id)}</option>)}
                        </select>
                      ) : path(p.department_id ?? null)}
                    </td>
                    <td>{p.extension ?? ''}</td>
                    <td>{p.mobile ?? ''}</td>
                    <td>{p.landline ?? ''}</td>
                    <td>{t(p.kind === 'user' ? 'entry_user' : p.book === 'personal' ? 'entry_personal' : 'entry_enterprise')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {admin && <PersonForm t={t} department={selected} onCreated={reloadPeople} />}
          <Groups t={t} admin={admin} picked={picked} onUsed={() => setPicked([])} />
        </div>
      </div>
      {admin && (
        <DirectoryImportExport t={t} onImported={() => {
          reloadTree();
          reloadRef.current();
        }} />
      )}
      {admin && <Integrations t={t} />}
    </section>
  );
}

function Tree({ t, departments, parent, selected, onSelect }: {
  t: T; departments: Department[]; parent: string | null; selected: string | null; onSelect: (id: string) => void;
}) {
  const children = departments
    .filter((d) => d.parent_id === parent)
    .sort((a, b) => a.sort_order - b.sort_order || a.name.localeCompare(b.name));
  if (children.length === 0) return null;
  return (
    <ul>
      {children.map((d) => (
        <li key={d.id}>
          <button className={`node ${selected === d.id ? 'selected' : ''}`} data-testid={`dept-${d.name}`} onClick={() => onSelect(d.id)}>
            {d.name}
          </button>
          <Tree t={t} departments={departments} parent={d.id} selected={selected} onSelect={onSelect} />
        </li>
      ))}
    </ul>
  );
}

/// Add a department (under the selected one), and rename, move or delete the selected one.
function DepartmentForms({ t, departments, selected, path, act, onChanged, onCreated }: {
  t: T; departments: Department[]; selected: Department | null; path: (id: string | null) => string;
  act: (request: Promise<unknown>, after: () => void) => void;
  onChanged: (keepSelection: boolean) => void; onCreated: (d: Department) => void;
}) {
  const [name, setName] = useState('');
  const [rename, setRename] = useState('');
  const [parent, setParent] = useState('');
  const [createError, setCreateError] = useState<ApiError | null>(null);
  useEffect(() => {
    setRename(selected?.name ?? '');
    setParent(selected?.parent_id ?? '');
  }, [selected]);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const d = await api<Department>('POST', '/departments', { name: name.trim(), parent_id: selected?.id ?? null });
      setName('');
      setCreateError(null);
      onCreated(d);
    } catch (err) {
      setCreateError(asError(err));
    }
  };
  const reason = createError?.errors.find((x) => x.field === 'name')?.reason;
  return (
    <>
      <form className="create" onSubmit={create}>
        <h3>{selected ? t('newSubdepartment') : t('newDepartment')}</h3>
        <label>
          {t('name')}
          <input data-testid="dept-name" value={name} required onChange={(e) => setName(e.target.value)} />
          {reason && <small className="error">{reason}</small>}
        </label>
        <button type="submit" data-testid="dept-create">{t('create')}</button>
      </form>
      {selected && (
        <form className="create" onSubmit={(e) => e.preventDefault()}>
          <h3>{selected.name}</h3>
          <label>
            {t('rename')}
            <input data-testid="dept-rename" value={rename} onChange={(e) => setRename(e.target.value)} />
          </label>
          <button type="button" data-testid="dept-rename-save"
            onClick={() => act(api('PATCH', `/departments/${selected.id}`, { name: rename.trim() }), () => onChanged(true))}>
            {t('save')}
          </button>
          <label>
            {t('moveUnder')}
            <select data-testid="dept-parent" value={parent} onChange={(e) => setParent(e.target.value)}>
              <option value="">{t('topLevel')}</option>
              {departments.filter((d) => d.id !== selected.id).map((d) => (
                <option key={d.id} value={d.id}>{path(d.id)}</option>
              ))}
            </select>
          </label>
          <button type="button" data-testid="dept-move"
            onClick={() => act(api('PATCH', `/departments/${selected.id}`, { parent_id: parent || null }), () => onChanged(true))}>
            {t('move')}
          </button>
          <div className="buttons">
            <button type="button" className="secondary" data-testid="dept-delete"
              onClick={() => act(api('DELETE', `/departments/${selected.id}`), () => onChanged(false))}>
              {t('delete')}
            </button>
            <button type="button" className="secondary" data-testid="dept-delete-reassign"
              onClick={() => act(api('DELETE', `/departments/${selected.id}?reassign=true`), () => onChanged(false))}>
              {t('deleteMovingUp')}
            </button>
          </div>
        </form>
      )}
    </>
  );
}

/// An enterprise contact in the selected department.
function PersonForm({ t, department, onCreated }: { t: T; department: string | null; onCreated: () => void }) {
  const [error, setError] = useState<ApiError | null>(null);
  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const body: Record<string, string | null> = { book: 'enterprise', department_id: department };
    new FormData(form).forEach((value, key) => {
      if (typeof value === 'string' && value.trim() !== '') body[key] = value.trim();
    });
    try {
      await api('POST', '/contacts', body);
      form.reset();
      setError(null);
      onCreated();
    } catch (err) {
      setError(asError(err));
    }
  };
  const reason = (field: string) => error?.errors.find((x) => x.field === field)?.reason;
  return (
    <form className="create" onSubmit={create} data-testid="person-form">
      <h3>{t(department ? 'newPerson' : 'newEnterpriseContact')}</h3>
      {(['name', 'title', 'extension', 'mobile', 'landline'] as const).map((field) => (
        <label key={field}>
          {t(field)}
          <input name={field} data-testid={`person-${field}`} required={field === 'name'} />
          {reason(field) && <small className="error">{reason(field)}</small>}
        </label>
      ))}
      <button type="submit" data-testid="person-create">{t('create')}</button>
    </form>
  );
}

function memberOf(p: DirectoryEntry): GroupMember {
  return p.kind === 'user'
    ? { kind: 'user', user_id: p.id, display_name: '' }
    : { kind: 'contact', contact_id: p.id, display_name: '' };
}

/// Groups: the enterprise's (administrators) and the caller's own; people picked in the
/// directory are added to one, members removed one by one.
function Groups({ t, admin, picked, onUsed }: { t: T; admin: boolean; picked: DirectoryEntry[]; onUsed: () => void }) {
  const [groups, setGroups] = useState<Group[]>([]);
  const [name, setName] = useState('');
  const [book, setBook] = useState<'personal' | 'enterprise'>('personal');
  const [error, setError] = useState<ApiError | null>(null);
  const reload = useCallback(() => {
    all<Group>('/groups').then(setGroups, (e) => setError(asError(e)));
  }, []);
  useEffect(reload, [reload]);
  const act = (request: Promise<unknown>) =>
    request.then(() => {
      setError(null);
      reload();
    }, (e) => setError(asError(e)));
  const create = (e: FormEvent) => {
    e.preventDefault();
    act(api('POST', '/groups', { name: name.trim(), book, members: picked.map(memberOf) }).then(() => {
      setName('');
      onUsed();
    }));
  };
  const addPicked = (g: Group) => {
    const present = new Set(g.members.map((m) => m.user_id ?? m.contact_id ?? m.number));
    const added = picked.filter((p) => !present.has(p.id)).map(memberOf);
    act(api('PATCH', `/groups/${g.id}`, { members: [...g.members, ...added] }).then(onUsed));
  };
  const removeMember = (g: Group, index: number) =>
    act(api('PATCH', `/groups/${g.id}`, { members: g.members.filter((_, i) => i !== index) }));
  return (
    <div className="groups" data-testid="groups">
      <h3>{t('groups')}</h3>
      {error && <p className="error" role="alert">{error.message}</p>}
      <form className="create" onSubmit={create}>
        <label>
          {t('groupName')}
          <input data-testid="group-name" value={name} required onChange={(e) => setName(e.target.value)} />
        </label>
        {admin && (
          <label>
            {t('groupBook')}
            <select data-testid="group-book" value={book} onChange={(e) => setBook(e.target.value as 'personal' | 'enterprise')}>
              <option value="personal">{t('book_personal')}</option>
              <option value="enterprise">{t('book_enterprise')}</option>
            </select>
          </label>
        )}
        <button type="submit" data-testid="group-create">
          {picked.length > 0 ? t('createGroupWithPicked').replace('{n}', String(picked.length)) : t('createGroup')}
        </button>
      </form>
      {groups.length === 0 ? (
        <p className="empty">{t('noGroups')}</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>{t('name')}</th>
              <th>{t('groupBook')}</th>
              <th>{t('members')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {groups.map((g) => (
              <tr key={g.id} data-testid={`group-${g.name}`}>
                <td>{g.name}</td>
                <td>{t(g.owner_id ? 'book_personal' : 'book_enterprise')}</td>
                <td>
                  <div className="chips">
                  {g.members.map((m, i) => (
                    <span key={`${m.kind}-${m.user_id ?? m.contact_id ?? m.number}`} className="chip">
                      {m.display_name || m.number}
                      <button className="link" aria-label={t('remove')} title={t('remove')} onClick={() => removeMember(g, i)}>×</button>
                    </span>
                  ))}
                  </div>
                </td>
                <td className="actions">
                  {picked.length > 0 && (
                    <button data-testid="group-add-picked" onClick={() => addPicked(g)}>
                      {t('addPicked').replace('{n}', String(picked.length))}
                    </button>
                  )}
                  <button onClick={() => act(api('DELETE', `/groups/${g.id}`))}>{t('delete')}</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/// On a template's row: add a group's members in one step, with one role.
export function AddGroupToTemplate({ t, templateId, onAdded }: { t: T; templateId: string; onAdded: () => void }) {
  const [groups, setGroups] = useState<Group[]>([]);
  const [group, setGroup] = useState('');
  const [role, setRole] = useState('member');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    all<Group>('/groups').then(setGroups, () => setGroups([]));
  }, []);
  if (groups.length === 0) return null;
  const add = () => {
    if (!group) return;
    api('POST', `/templates/${templateId}/groups`, { group_id: group, role }).then(() => {
      setError(null);
      onAdded();
    }, (e) => setError(asError(e).message));
  };
  return (
    <span className="add-group">
      <select data-testid="template-group" aria-label={t('group')} value={group} onChange={(e) => setGroup(e.target.value)}>
        <option value="">{t('chooseGroup')}</option>
        {groups.map((g) => <option key={g.id} value={g.id}>{g.name}</option>)}
      </select>
      <select data-testid="template-group-role" aria-label={t('role')} value={role} onChange={(e) => setRole(e.target.value)}>
        {['participant', 'member', 'chairman', 'manager'].map((r) => <option key={r} value={r}>{t.word('role', r)}</option>)}
      </select>
      <button data-testid="template-add-group" onClick={add}>{t('addGroup')}</button>
      {error && <small className="error" role="alert">{error}</small>}
    </span>
  );
}
