import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { api, ApiError, session, type AuditEvent, type Contact, type LiveConference, type Page, type Room, type Template, type User } from './api';
import { initialLang, translator, type Key, type Lang } from './i18n';

type T = ReturnType<typeof translator>;

export function App() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const [me, setMe] = useState<User | null>(null);
  const [tab, setTab] = useState<Tab>('rooms');
  const t = translator(lang);

  useEffect(() => {
    localStorage.setItem('conclave.lang', lang);
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }, [lang]);
  useEffect(() => {
    if (session.get()) api<User>('GET', '/me').then(setMe, () => setMe(null));
  }, []);

  const switcher = (
    <select data-testid="language" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
      <option value="en">English</option>
      <option value="zh">中文</option>
    </select>
  );
  if (!me) return <Login t={t} onLogin={setMe} switcher={switcher} />;
  const admin = me.kind !== 'user';
  const tabs: Tab[] = admin
    ? ['live', 'rooms', 'templates', 'users', 'contacts', 'audit']
    : ['live', 'rooms', 'templates', 'users', 'contacts'];
  return (
    <div className="app">
      <header>
        <strong>{t('appName')}</strong>
        <nav>
          {tabs.map((name) => (
            <button key={name} data-testid={`tab-${name}`} className={tab === name ? 'active' : ''} onClick={() => setTab(name)}>
              {t(name)}
            </button>
          ))}
        </nav>
        <span className="who">{me.display_name}</span>
        {switcher}
        <button
          data-testid="logout"
          onClick={() => {
            api('POST', '/auth/logout').finally(() => {
              session.clear();
              setMe(null);
            });
          }}
        >
          {t('logout')}
        </button>
      </header>
      <main>{page(tab, t, admin)}</main>
    </div>
  );
}

type Tab = 'live' | 'rooms' | 'templates' | 'users' | 'contacts' | 'audit';

function page(tab: Tab, t: T, admin: boolean): ReactNode {
  switch (tab) {
    case 'live':
      return <Live t={t} />;
    case 'rooms':
      return (
        <Resource<Room>
          key="rooms" t={t} path="/rooms" title="rooms" createTitle="newRoom"
          columns={[
            ['number', (r) => r.number],
            ['name', (r) => r.name],
            ['pin', (r) => r.pin ?? (r.has_pin ? '••••' : t('noPin'))],
            ['capacity', (r) => r.capacity],
            ['language', (r) => t(`lang_${r.language}`)],
          ]}
          fields={[
            { name: 'number', label: 'number', required: true },
            { name: 'name', label: 'name', required: true },
            { name: 'pin', label: 'pin' },
            { name: 'language', label: 'language', options: [['en', 'lang_en'], ['zh', 'lang_zh']] },
          ]}
          canDelete={() => true}
        />
      );
    case 'templates':
      return (
        <Resource<Template>
          key="templates" t={t} path="/templates" title="templates" createTitle="newTemplate"
          columns={[
            ['name', (x) => x.name],
            ['description', (x) => x.description],
            ['members', (x) => x.members.length],
            ['sharedWith', (x) => x.shared_with.length],
          ]}
          fields={[
            { name: 'name', label: 'name', required: true },
            { name: 'description', label: 'description' },
          ]}
          extra={(x, reload) => (
            <button onClick={() => api('POST', `/templates/${x.id}/copy`).then(reload)}>{t('copy')}</button>
          )}
          canDelete={() => true}
        />
      );
    case 'users':
      return (
        <Resource<User>
          key="users" t={t} path="/users" title="users" createTitle={admin ? 'newUser' : undefined}
          columns={[
            ['username', (u) => u.username],
            ['displayName', (u) => u.display_name],
            ['extension', (u) => u.extension ?? ''],
            ['mobile', (u) => u.mobile ?? ''],
            ['kind', (u) => t(`kind_${u.kind}`)],
            ['status', (u) => t(`status_${u.status}`)],
          ]}
          fields={[
            { name: 'username', label: 'username', required: true },
            { name: 'display_name', label: 'displayName', required: true },
            { name: 'password', label: 'password', required: true, secret: true },
            { name: 'extension', label: 'extension' },
            { name: 'sip_password', label: 'sipPassword', secret: true },
            { name: 'mobile', label: 'mobile' },
            { name: 'kind', label: 'kind', options: [['user', 'kind_user'], ['tenant_admin', 'kind_tenant_admin']] },
          ]}
          extra={(u, reload) =>
            admin ? (
              <button onClick={() => api('POST', `/users/${u.id}/${u.status === 'active' ? 'freeze' : 'unfreeze'}`).then(reload)}>
                {t(u.status === 'active' ? 'freeze' : 'unfreeze')}
              </button>
            ) : null
          }
          canDelete={() => admin}
        />
      );
    case 'contacts':
      return (
        <Resource<Contact>
          key="contacts" t={t} path="/contacts" title="contacts" createTitle="newContact"
          columns={[
            ['name', (c) => c.name],
            ['department', (c) => c.department],
            ['mobile', (c) => c.mobile ?? ''],
            ['landline', (c) => c.landline ?? ''],
            ['book', (c) => t(c.owner_id ? 'personal' : 'enterprise')],
          ]}
          fields={[
            { name: 'name', label: 'name', required: true },
            { name: 'department', label: 'department' },
            { name: 'mobile', label: 'mobile' },
            { name: 'landline', label: 'landline' },
            { name: 'book', label: 'book', options: admin ? [['personal', 'personal'], ['enterprise', 'enterprise']] : [['personal', 'personal']] },
          ]}
          canDelete={(c) => admin || c.owner_id !== null}
        />
      );
    case 'audit':
      return (
        <Resource<AuditEvent>
          key="audit" t={t} path="/audit-events" title="audit"
          columns={[
            ['time', (e) => new Date(e.at).toLocaleString()],
            ['actor', (e) => e.actor_name],
            ['action', (e) => e.action],
            ['target', (e) => `${e.target_type} ${e.target_id ?? ''}`],
            ['outcome', (e) => e.outcome],
            ['source', (e) => e.source],
          ]}
          fields={[]}
          canDelete={() => false}
        />
      );
  }
}

function Login({ t, onLogin, switcher }: { t: T; onLogin: (u: User) => void; switcher: ReactNode }) {
  const [error, setError] = useState('');
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    try {
      const r = await api<{ token: string; user: User }>('POST', '/auth/login', {
        username: form.get('username'),
        password: form.get('password'),
      });
      session.set(r.token);
      onLogin(r.user);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <div className="login">
      <h1>{t('appName')}</h1>
      <p>{t('tagline')}</p>
      <form onSubmit={submit}>
        <label>{t('username')}<input name="username" data-testid="username" autoComplete="username" required /></label>
        <label>{t('password')}<input name="password" data-testid="password" type="password" autoComplete="current-password" required /></label>
        <button type="submit" data-testid="login">{t('login')}</button>
        {error && <p className="error" role="alert">{error}</p>}
      </form>
      {switcher}
    </div>
  );
}

type Field = { name: string; label: Key; required?: boolean; secret?: boolean; options?: [string, Key][] };

function Resource<R extends { id: string }>(props: {
  t: T;
  path: string;
  title: Key;
  createTitle?: Key;
  columns: [Key, (row: R) => ReactNode][];
  fields: Field[];
  canDelete: (row: R) => boolean;
  extra?: (row: R, reload: () => void) => ReactNode;
}) {
  const { t, path } = props;
  const [rows, setRows] = useState<R[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const reload = useCallback(() => {
    api<Page<R>>('GET', `${path}?limit=200`).then((p) => setRows(p.items), (e) => setError(e));
  }, [path]);
  useEffect(reload, [reload]);

  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const body: Record<string, string> = {};
    new FormData(form).forEach((value, key) => {
      if (typeof value === 'string' && value.trim() !== '') body[key] = value.trim();
    });
    try {
      await api('POST', path, body);
      form.reset();
      setError(null);
      reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const remove = (row: R) => api('DELETE', `${path}/${row.id}`).then(reload, (e) => setError(e));
  const fieldError = (name: string) => error?.errors?.find((e) => e.field === name)?.reason;

  return (
    <section data-testid={`page-${props.title}`}>
      <h2>{t(props.title)}</h2>
      {props.createTitle && props.fields.length > 0 && (
        <form className="create" onSubmit={create} data-testid="create-form">
          <h3>{t(props.createTitle)}</h3>
          {props.fields.map((f) => (
            <label key={f.name}>
              {t(f.label)}
              {f.options ? (
                <select name={f.name}>
                  {f.options.map(([value, label]) => <option key={value} value={value}>{t(label)}</option>)}
                </select>
              ) : (
                <input name={f.name} data-testid={`field-${f.name}`} type={f.secret ? 'password' : 'text'} required={f.required} />
              )}
              {fieldError(f.name) && <small className="error">{fieldError(f.name)}</small>}
            </label>
          ))}
          <button type="submit" data-testid="create">{t('create')}</button>
        </form>
      )}
      {error && <p className="error" role="alert" data-testid="error">{error.message}</p>}
      {rows.length === 0 ? (
        <p className="empty">{t('empty')}</p>
      ) : (
        <table>
          <thead>
            <tr>
              {props.columns.map(([label]) => <th key={label}>{t(label)}</th>)}
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.id}>
                {props.columns.map(([label, render]) => <td key={label}>{render(row)}</td>)}
                <td className="actions">
                  {props.extra?.(row, reload)}
                  {props.canDelete(row) && <button onClick={() => remove(row)}>{t('delete')}</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/// Live meetings: the roster, kept current by the event WebSocket, and the chair's controls.
function Live({ t }: { t: T }) {
  const [live, setLive] = useState<LiveConference[]>([]);
  const [error, setError] = useState('');
  const reload = useCallback(() => {
    api<LiveConference[]>('GET', '/conferences').then(setLive, (e) => setError(String(e.message ?? e)));
  }, []);
  useEffect(() => {
    reload();
    // Meeting events arrive over the WebSocket as they happen; a slow poll covers a lost socket.
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/events?access_token=${encodeURIComponent(session.get() ?? '')}`);
    socket.onmessage = () => reload();
    const timer = setInterval(reload, 10000);
    return () => {
      clearInterval(timer);
      socket.close();
    };
  }, [reload]);
  const act = (method: string, path: string, body?: unknown) =>
    api<LiveConference>(method, path, body).then(reload, (e) => setError(String(e.message ?? e)));

  return (
    <section data-testid="page-live">
      <h2>{t('live')}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      {live.length === 0 && <p className="empty">{t('noLive')}</p>}
      {live.map((c) => {
        const base = `/conferences/${c.room_id}`;
        return (
          <div key={c.room_id} className="conference" data-testid={`conference-${c.room_number}`}>
            <h3>
              {c.room_number} · {c.room_name} {c.locked && <small>({t('locked')})</small>}
            </h3>
            <div className="toolbar">
              <button onClick={() => act('POST', `${base}/mute-all`)}>{t('muteAll')}</button>
              <button onClick={() => act('POST', `${base}/unmute-all`)}>{t('unmuteAll')}</button>
              <button onClick={() => act('POST', `${base}/${c.locked ? 'unlock' : 'lock'}`)}>{t(c.locked ? 'unlock' : 'lock')}</button>
              <button onClick={() => act('POST', `${base}/end`)}>{t('end')}</button>
            </div>
            <table>
              <thead>
                <tr>
                  <th>{t('name')}</th><th>{t('number')}</th><th>{t('role')}</th><th>{t('status')}</th><th>{t('media')}</th><th />
                </tr>
              </thead>
              <tbody>
                {c.members.map((m) => (
                  <tr key={m.id} data-testid={`member-${m.number}`}>
                    <td>{m.talking && <span className="talk" title={t('talking')}>● </span>}{m.name}</td>
                    <td>{m.number}</td>
                    <td>{t(`role_${m.role}`)}</td>
                    <td>
                      {[m.talking && t('talking'), m.muted && t('muted'), !m.may_speak && t('mayNotSpeak')].filter(Boolean).join(' · ')}
                    </td>
                    <td>
                      {m.quality && `${m.quality.codec} · ${m.quality.packets_lost} lost · ${m.quality.jitter_ms.toFixed(1)} ms jitter`}
                    </td>
                    <td className="actions">
                      <button onClick={() => act('POST', `${base}/members/${m.id}/${m.muted ? 'unmute' : 'mute'}`)}>{t(m.muted ? 'unmute' : 'mute')}</button>
                      <button onClick={() => act('POST', `${base}/members/${m.id}/speak`, { allowed: !m.may_speak })}>{t(m.may_speak ? 'forbid' : 'allow')}</button>
                      <button onClick={() => act('DELETE', `${base}/members/${m.id}`)}>{t('remove')}</button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        );
      })}
    </section>
  );
}
