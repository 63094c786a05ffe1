import { useCallback, useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import {
  all, api, ApiError, session, type AuditEvent, type CallState, type Contact, type Invitation, type LiveConference,
  type LiveEvent, type Page, type Redialled, type Room, type RoomFlag, type Template, type Tenant, type User,
} from './api';
import { initialLang, translator, type Key, type Lang, type T } from './i18n';
import { BrandingEditor, BrandMark, useBranding, type Branding } from './Branding';
import { Dashboard } from './Dashboard';
import { History } from './History';
import { AddGroupToTemplate, Directory } from './Directory';
import { Meetings } from './Meetings';
import { Recordings } from './Recordings';
import { StreamPanel, Streams } from './Streams';
import { AdHocStart, RoomEditor, roomFlags } from './RoomEditor';
import { StartTemplate, TemplateEditor } from './TemplateEditor';
import { RetentionForm, Tenants } from './Tenants';
import { Trunks } from './Trunks';
import { lineFromHash } from './Minutes';
import { LayoutSelect } from './Join';
import { useRoute } from './router';
import { DirectCalls } from './OperatorDesk';

export function App() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const [me, setMe] = useState<User | null>(null);
  const [route, go] = useRoute();
  // a link to a line of minutes opens the recordings on that line: at once, and anew when one
  // is followed while the console is open
  const [linked, setLinked] = useState(0);
  useEffect(() => {
    const follow = () => {
      if (!lineFromHash(window.location.hash)) return;
      go({ page: 'recordings', id: null }, true);
      setLinked((n) => n + 1);
    };
    follow();
    window.addEventListener('hashchange', follow);
    return () => window.removeEventListener('hashchange', follow);
  }, [go]);
  const t = translator(lang);
  const [branding, setBranding] = useBranding(me?.tenant_id ?? null);

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
  if (!me) return <Login t={t} onLogin={setMe} switcher={switcher} branding={branding} />;
  const admin = me.kind !== 'user';
  const tabs: Tab[] = admin
    ? ['dashboard', 'live', 'meetings', 'historyTab', 'recordings', 'streams', 'rooms', 'templates', 'directory', 'users', 'contacts', 'trunks', 'tenants', 'audit']
    : ['live', 'meetings', 'recordings', 'streams', 'rooms', 'templates', 'directory', 'users', 'contacts'];
  // an address this user has no page for shows the rooms
  const asked = tabs.find((name) => pagePath(name) === route.page);
  const tab: Tab = asked ?? 'rooms';
  const setTab = (name: Tab, id: string | null = null) => go({ page: pagePath(name), id });
  const opened = asked ? route.id : null;
  return (
    <div className="app">
      <header>
        <BrandMark t={t} branding={branding} />
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
      <main>
        {page(tab, t, admin, me.kind === 'system_admin', me.tenant_id, setTab, me.id, linked, opened)}
        {tab === 'tenants' && admin && <OwnBranding t={t} tenantId={me.tenant_id} onSaved={setBranding} />}
        {tab === 'tenants' && admin && <RetentionForm t={t} tenantId={me.tenant_id} />}
      </main>
    </div>
  );
}

type Tab = 'dashboard' | 'live' | 'meetings' | 'historyTab' | 'recordings' | 'streams' | 'rooms' | 'templates' | 'directory' | 'users' | 'contacts' | 'trunks' | 'tenants' | 'audit';
type Go = (tab: Tab, id?: string | null) => void;

/// The page's address: `/history` for the history tab, else the tab's own name.
function pagePath(tab: Tab): string {
  return tab === 'historyTab' ? 'history' : tab;
}

/// The rooms: created, switched and edited whole; a meeting started now in one of them, with
/// people picked on the spot.
function Rooms({ t, go }: { t: T; go: Go }) {
  const [panel, setPanel] = useState<{ kind: 'edit' | 'start'; room: Room } | null>(null);
  const [generation, setGeneration] = useState(0);
  const [users, setUsers] = useState<User[]>([]);
  useEffect(() => {
    all<User>('/users').then(setUsers, () => setUsers([]));
  }, []);
  return (
    <>
      {panel?.kind === 'edit' && (
        <RoomEditor
          key={panel.room.id} t={t} room={panel.room} users={users}
          onClose={(saved) => {
            setPanel(null);
            if (saved) setGeneration((g) => g + 1);
          }}
        />
      )}
      {panel?.kind === 'start' && (
        <AdHocStart key={panel.room.id} t={t} room={panel.room} onClose={() => setPanel(null)} onStarted={() => setTimeout(() => go('live'), 1500)} />
      )}
      <Resource<Room>
        key={`rooms-${generation}`} t={t} path="/rooms" title="rooms" createTitle="newRoom"
        columns={[
          ['number', (r) => r.number],
          ['name', (r) => r.name],
          ['pin', (r) => r.pin ?? (r.has_pin ? '••••' : t('noPin'))],
          ['capacity', (r) => r.capacity],
          ['language', (r) => t.word('lang', r.language)],
          ['roomSettings', (r, act) => <RoomSettings t={t} room={r} act={act} />],
        ]}
        fields={[
          { name: 'number', label: 'number', required: true },
          { name: 'name', label: 'name', required: true },
          { name: 'pin', label: 'pin' },
          { name: 'language', label: 'language', options: [['en', 'lang_en'], ['zh', 'lang_zh']] },
          ...roomFlags.map(([name, label]) => ({ name, label, checkbox: true, checked: roomFlagDefaults[name] })),
        ]}
        extra={(r) => (
          <>
            <button className="primary" data-testid={`start-now-${r.number}`} onClick={() => setPanel({ kind: 'start', room: r })}>{t('startNow')}</button>
            <button data-testid={`edit-room-${r.number}`} onClick={() => setPanel({ kind: 'edit', room: r })}>{t('edit')}</button>
            {/* the link to share: anyone with it (and the PIN) joins from a browser */}
            <a className="button-link" data-testid={`join-room-${r.number}`} href={`/join/${r.number}`} target="_blank" rel="noopener">{t('joinRoomLink')}</a>
          </>
        )}
        canDelete={() => true}
      />
    </>
  );
}

/// The stored meetings: each can be edited whole and started with one click (the meeting
/// then shows on the live page).
function Templates({ t, go }: { t: T; go: Go }) {
  const [editing, setEditing] = useState<Template | null>(null);
  const [generation, setGeneration] = useState(0);
  const [rooms, setRooms] = useState<Map<string, Room>>(new Map());
  useEffect(() => {
    all<Room>('/rooms').then((list) => setRooms(new Map(list.map((r) => [r.id, r]))), () => setRooms(new Map()));
  }, [generation]);
  return (
    <>
      {editing && (
        <TemplateEditor
          t={t} template={editing}
          onClose={(saved) => {
            setEditing(null);
            if (saved) setGeneration((g) => g + 1);
          }}
        />
      )}
      <Resource<Template>
        key={`templates-${generation}`} t={t} path="/templates" title="templates" createTitle="newTemplate"
        columns={[
          ['name', (x) => x.name],
          ['description', (x) => x.description],
          ['room', (x) => (x.room_id ? rooms.get(x.room_id)?.number ?? '' : t('noRoom'))],
          ['members', (x) => x.members.length],
          ['sharedWith', (x) => x.shared_with.length],
        ]}
        fields={[
          { name: 'name', label: 'name', required: true },
          { name: 'description', label: 'description' },
        ]}
        extra={(x, reload) => (
          <>
            <StartTemplate t={t} template={x} onStarted={() => setTimeout(() => go('live'), 1200)} />
            <button data-testid={`edit-${x.name}`} onClick={() => setEditing(x)}>{t('edit')}</button>
            <AddGroupToTemplate t={t} templateId={x.id} onAdded={reload} />
            <button onClick={() => api('POST', `/templates/${x.id}/copy`).then(reload)}>{t('copy')}</button>
          </>
        )}
        canDelete={() => true}
      />
    </>
  );
}

function page(tab: Tab, t: T, admin: boolean, systemAdmin: boolean, ownTenant: string, go: Go, meId: string, linked: number, opened: string | null): ReactNode {
  switch (tab) {
    case 'dashboard':
      return <Dashboard t={t} onOpenLive={() => go('live')} />;
    case 'meetings':
      return <Meetings t={t} admin={admin} me={meId} />;
    case 'live':
      return <Live t={t} admin={admin} />;
    case 'historyTab':
      return <History t={t} live="" onStarted={() => go('live')} full open={opened} onOpen={(id) => go('historyTab', id)} />;
    case 'recordings':
      return <Recordings key={linked} t={t} open={opened} onOpen={(id) => go('recordings', id)} />;
    case 'streams':
      return <Streams t={t} />;
    case 'rooms':
      return <Rooms t={t} go={go} />;
    case 'templates':
      return <Templates t={t} go={go} />;
    case 'directory':
      return <Directory t={t} admin={admin} />;
    case 'users':
      return (
        <Resource<User>
          key="users" t={t} path="/users" title="users" createTitle={admin ? 'newUser' : undefined}
          columns={[
            ['username', (u) => u.username],
            ['displayName', (u) => u.display_name],
            ['extension', (u) => u.extension ?? ''],
            ['mobile', (u) => u.mobile ?? ''],
            ['kind', (u) => t.word('kind', u.kind)],
            ['status', (u) => t.word('status', u.status)],
            // The language invitations and reminders are mailed in; none: the room's.
            ['mailLanguage', (u, act) => (
              <select
                key={u.language ?? ''} data-testid={`user-language-${u.username}`} defaultValue={u.language ?? ''}
                onChange={(e) => act(api('PATCH', `/users/${u.id}`, { language: e.target.value || null }))}
              >
                <option value="">{t('lang_room')}</option>
                <option value="en">{t('lang_en')}</option>
                <option value="zh">{t('lang_zh')}</option>
              </select>
            )],
          ]}
          fields={[
            { name: 'username', label: 'username', required: true },
            { name: 'display_name', label: 'displayName', required: true },
            { name: 'password', label: 'password', required: true, secret: true },
            { name: 'extension', label: 'extension' },
            { name: 'sip_password', label: 'sipPassword', secret: true },
            { name: 'mobile', label: 'mobile' },
            { name: 'email', label: 'emailAddress' },
            { name: 'language', label: 'mailLanguage', options: [['', 'lang_room'], ['en', 'lang_en'], ['zh', 'lang_zh']] },
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
    case 'trunks':
      return <Trunks t={t} />;
    case 'tenants':
      return <Tenants t={t} systemAdmin={systemAdmin} ownTenant={ownTenant} />;
    case 'audit':
      return (
        <Resource<AuditEvent>
          key="audit" t={t} path="/audit-events" title="audit"
          columns={[
            ['time', (e) => t.time(e.at)],
            ['actor', (e) => e.actor_name],
            ['action', (e) => <span title={e.action}>{t.action(e.action)}</span>],
            ['target', (e) => <span title={e.target_id ?? ''}>{auditTarget(t, e)}</span>],
            ['outcome', (e) => t.word('outcome', e.outcome)],
            ['source', (e) => e.source],
          ]}
          fields={[]}
          canDelete={() => false}
        />
      );
  }
}

/// What an audit event acted on, by name where its detail says it (the id is the tooltip).
function auditTarget(t: T, e: AuditEvent): string {
  const d = (e.detail ?? {}) as Record<string, unknown>;
  const label = [d.number ?? d.room ?? d.room_number, d.name ?? d.display_name ?? d.username]
    .filter((v) => typeof v === 'string' && v !== '').join(' · ');
  const kind = t.word('target', e.target_type);
  // Ids begin with their creation time: the end tells them apart.
  return label ? `${kind} ${label}` : e.target_id && e.target_type !== 'session' ? `${kind} …${e.target_id.slice(-6)}` : kind;
}

/// The tenant's look, edited by its administrators (under the tenants page).
function OwnBranding({ t, tenantId, onSaved }: { t: T; tenantId: string; onSaved: (b: Branding) => void }) {
  const [tenant, setTenant] = useState<Tenant | null>(null);
  useEffect(() => {
    api<Tenant>('GET', `/tenants/${tenantId}`).then(setTenant, () => setTenant(null));
  }, [tenantId]);
  return tenant ? <BrandingEditor t={t} tenant={tenant} onSaved={onSaved} /> : null;
}

function Login({ t, onLogin, switcher, branding }: { t: T; onLogin: (u: User) => void; switcher: ReactNode; branding: Branding }) {
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
      <h1><BrandMark t={t} branding={branding} /></h1>
      {branding.slogan && <p className="slogan" data-testid="slogan">{branding.slogan}</p>}
      {!branding.slogan && <p>{t('tagline')}</p>}
      <form onSubmit={submit}>
        <label>{t('username')}<input name="username" data-testid="username" autoComplete="username" required /></label>
        <label>{t('password')}<input name="password" data-testid="password" type="password" autoComplete="current-password" required /></label>
        <button type="submit" data-testid="login">{t('login')}</button>
        {error && <p className="error" role="alert">{error}</p>}
      </form>
      <p><a href="/join" data-testid="join-link">{t('joinInBrowser')}</a></p>
      {switcher}
    </div>
  );
}

/// A form field: text, a choice among `options`, or a `checkbox` (sent as true or false).
type Field = {
  name: string; label: Key; required?: boolean; secret?: boolean; options?: [string, Key][];
  checkbox?: boolean; checked?: boolean;
};

/// Runs a request a row made, then lists the rows again (or shows why it was refused).
type Act = (request: Promise<unknown>) => void;

/// The room settings the console switches, and their defaults for a new room.
const roomFlagDefaults: Record<RoomFlag, boolean> = { entry_chime: true, alone_music: true, members_skip_pin: false, auto_record: false };

/// A room's settings, each switched on or off in place (shown switched at once; the room as
/// read again afterwards has the last word).
function RoomSettings({ t, room, act }: { t: T; room: Room; act: Act }) {
  const [pending, setPending] = useState<Partial<Record<RoomFlag, boolean>>>({});
  useEffect(() => setPending({}), [room]);
  return (
    <div className="flags" data-testid={`room-settings-${room.number}`}>
      {roomFlags.map(([flag, label]) => (
        <label key={flag} className="flag">
          <input
            type="checkbox" data-testid={`room-${flag}`} checked={pending[flag] ?? room[flag]}
            onChange={(e) => {
              const on = e.target.checked;
              setPending((p) => ({ ...p, [flag]: on }));
              act(api('PATCH', `/rooms/${room.id}`, { [flag]: on }));
            }}
          />
          {t(label)}
        </label>
      ))}
      {room.release_when_empty && <span className="badge gone">{t('releaseWhenEmpty')}</span>}
    </div>
  );
}

function Resource<R extends { id: string }>(props: {
  t: T;
  path: string;
  title: Key;
  createTitle?: Key;
  columns: [Key, (row: R, act: Act) => ReactNode][];
  fields: Field[];
  canDelete: (row: R) => boolean;
  extra?: (row: R, reload: () => void) => ReactNode;
}) {
  const { t, path } = props;
  const [rows, setRows] = useState<R[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const reload = useCallback(() => {
    api<Page<R>>('GET', `${path}?limit=${PAGE}`).then((p) => {
      setRows(p.items);
      setNext(p.next_cursor);
    }, (e) => setError(e));
  }, [path]);
  const more = () =>
    next && api<Page<R>>('GET', `${path}?limit=${PAGE}&cursor=${encodeURIComponent(next)}`).then((p) => {
      setRows((r) => [...r, ...p.items]);
      setNext(p.next_cursor);
    }, (e) => setError(e));
  useEffect(reload, [reload]);

  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const body: Record<string, string | boolean> = {};
    new FormData(form).forEach((value, key) => {
      if (typeof value === 'string' && value.trim() !== '') body[key] = value.trim();
    });
    for (const f of props.fields) {
      const input = form.elements.namedItem(f.name);
      if (f.checkbox && input instanceof HTMLInputElement) body[f.name] = input.checked;
    }
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
  const act: Act = (request) => {
    request.then(() => {
      setError(null);
      reload();
    }, (e) => {
      setError(e);
      reload();
    });
  };
  const fieldError = (name: string) => error?.errors?.find((e) => e.field === name)?.reason;

  return (
    <section data-testid={`page-${props.title}`}>
      <h2>{t(props.title)}</h2>
      {props.createTitle && props.fields.length > 0 && (
        <form className="create" onSubmit={create} data-testid="create-form">
          <h3>{t(props.createTitle)}</h3>
          {props.fields.map((f) => f.checkbox ? (
            <label key={f.name} className="check">
              <span>
                <input type="checkbox" name={f.name} data-testid={`field-${f.name}`} defaultChecked={f.checked} />
                {t(f.label)}
              </span>
              {fieldError(f.name) && <small className="error">{fieldError(f.name)}</small>}
            </label>
          ) : (
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
                {props.columns.map(([label, render]) => <td key={label}>{render(row, act)}</td>)}
                <td className="actions">
                  {props.extra?.(row, reload)}
                  {props.canDelete(row) && <button onClick={() => remove(row)}>{t('delete')}</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && <button data-testid="more" onClick={more}>{t('more')}</button>}
    </section>
  );
}

/// Rows a list shows at first and adds per "More" (the API's cursor pages).
const PAGE = 100;

/// Live meetings: the roster and the calls the meeting placed, kept current by the event
/// WebSocket, and the chair's controls.
function Live({ t, admin }: { t: T; admin: boolean }) {
  const [live, setLive] = useState<LiveConference[]>([]);
  const [users, setUsers] = useState<User[]>([]);
  const [error, setError] = useState('');
  const current = useRef<LiveConference[]>([]);
  current.current = live;
  const reload = useCallback(() => {
    api<LiveConference[]>('GET', '/conferences').then(setLive, (e) => setError(String(e.message ?? e)));
  }, []);
  useEffect(() => {
    reload();
    // Whom the invite form offers; without the right to list users, numbers only.
    api<Page<User>>('GET', '/users?limit=200').then((p) => setUsers(p.items), () => setUsers([]));
    // Meeting events arrive over the WebSocket as they happen; a slow poll covers a lost socket.
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/events?access_token=${encodeURIComponent(session.get() ?? '')}`);
    socket.onmessage = (message) => {
      let data: Partial<LiveEvent> = {};
      try {
        data = JSON.parse(String(message.data));
      } catch {}
      const invitation = data.event?.type === 'call' ? data.event.invitation : undefined;
      // A call's progress replaces that invitation in place; anything else (or a meeting the
      // page does not show yet) asks for the roster again.
      if (invitation && current.current.some((c) => c.room_id === data.room_id)) {
        setLive((list) => list.map((c) => (c.room_id === data.room_id ? withInvitation(c, invitation) : c)));
      } else {
        reload();
      }
    };
    const timer = setInterval(reload, 10000);
    return () => {
      clearInterval(timer);
      socket.close();
    };
  }, [reload]);
  const act = (method: string, path: string, body?: unknown) =>
    api<LiveConference>(method, path, body).then(reload, (e) => setError(String(e.message ?? e)));
  // phones calling each other (the operator desk) apart from the meetings
  const calls = live.filter((c) => c.call);
  const meetings = live.filter((c) => !c.call);

  return (
    <section data-testid="page-live">
      <h2>{t('live')}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      <DirectCalls t={t} calls={calls} onChange={reload} hangUp={(id) => act('POST', `/conferences/${id}/end`)} />
      {meetings.length === 0 && <p className="empty">{t('noLive')}</p>}
      {meetings.map((c) => {
        const base = `/conferences/${c.room_id}`;
        return (
          <div key={c.room_id} className="conference" data-testid={`conference-${c.room_number}`}>
            <h3>
              {c.room_number} · {c.room_name} {c.locked && <small>({t('locked')})</small>}{' '}
              {c.recording_id && <small className="recording-on" data-testid="recording-on">● {t('recordingNow')}</small>}
            </h3>
            <div className="toolbar">
              <button onClick={() => act('POST', `${base}/mute-all`)}>{t('muteAll')}</button>
              <button onClick={() => act('POST', `${base}/unmute-all`)}>{t('unmuteAll')}</button>
              <button onClick={() => act('POST', `${base}/${c.locked ? 'unlock' : 'lock'}`)}>{t(c.locked ? 'unlock' : 'lock')}</button>
              <button data-testid="record" onClick={() => act('POST', `${base}/recording/${c.recording_id ? 'stop' : 'start'}`)}>
                {t(c.recording_id ? 'stopRecording' : 'record')}
              </button>
              <button onClick={() => act('POST', `${base}/end`)}>{t('end')}</button>
            </div>
            <StreamPanel t={t} conference={c} onChange={reload} onError={setError} />
            <VideoPanel t={t} conference={c} act={act} />
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
                    <td>{t.word('role', m.role)}</td>
                    <td>
                      {[m.talking && t('talking'), m.muted && t('muted'), !m.may_speak && t('mayNotSpeak')].filter(Boolean).join(' · ')}
                    </td>
                    <td>
                      {m.quality && `${m.quality.codec} · ${m.quality.packets_lost} ${t('lostPackets')} · ${t('jitter')} ${m.quality.jitter_ms.toFixed(1)} ms`}
                    </td>
                    <td className="actions">
                      <button onClick={() => act('POST', `${base}/members/${m.id}/${m.muted ? 'unmute' : 'mute'}`)}>{t(m.muted ? 'unmute' : 'mute')}</button>
                      <button onClick={() => act('POST', `${base}/members/${m.id}/speak`, { allowed: !m.may_speak })}>{t(m.may_speak ? 'forbid' : 'allow')}</button>
                      {c.layout && (Object.values(c.layout.pins).includes(m.id)
                        ? <button data-testid={`unpin-${m.number}`} onClick={() => act('DELETE', `${base}/members/${m.id}/pin`)}>{t('unpin')}</button>
                        : <button data-testid={`pin-${m.number}`} onClick={() => act('PUT', `${base}/members/${m.id}/pin`, { tile: 0 })}>{t('pinBig')}</button>)}
                      <button onClick={() => act('DELETE', `${base}/members/${m.id}`)}>{t('remove')}</button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Calls t={t} conference={c} onChange={reload} />
            <InviteForm t={t} roomId={c.room_id} users={users} onInvited={reload} />
          </div>
        );
      })}
      {admin && <History t={t} live={live.map((c) => c.room_id).sort().join(' ')} onStarted={reload} />}
    </section>
  );
}


/// The meeting's video: the layout, polling, who may share, the share going on, and who is
/// in which tile (browsers, phones with video, recordings and streams show the same).
function VideoPanel({ t, conference: c, act }: {
  t: T; conference: LiveConference; act: (method: string, path: string, body?: unknown) => Promise<unknown>;
}) {
  const base = `/conferences/${c.room_id}`;
  const [tiles, setTiles] = useState('');
  const [interval, setInterval_] = useState('10');
  const [showPicture, setShowPicture] = useState(false);
  if (!c.layout) return null;
  const layout = c.layout;
  const nameOf = (id: number | null) => c.members.find((m) => m.id === id)?.name ?? '';
  const setPolling = (on: boolean) => {
    const list = on ? tiles.split(/[ ,]+/).filter(Boolean).map((x) => Number(x) - 1) : [];
    return act('PUT', `${base}/polling`, { tiles: list, interval_secs: Number(interval) || 10 });
  };
  return (
    <div className="video-panel" data-testid="video-panel">
      <div className="toolbar">
        <label>
          {t('layout')}{' '}
          <LayoutSelect t={t} testId="layout" value={layout.kind} onChange={(l) => act('PUT', `${base}/layout`, { layout: l })} />
        </label>
        <label className="check">
          <input
            type="checkbox"
            data-testid="members-may-share"
            checked={layout.members_may_share}
            onChange={(e) => act('PUT', `${base}/layout`, { layout: layout.kind, members_may_share: e.target.checked })}
          />
          {t('membersMayShare')}
        </label>
        {layout.sharer !== null && (
          <button data-testid="stop-share" onClick={() => act('DELETE', `${base}/share`)}>
            {t('stopShare')} ({nameOf(layout.sharer ?? null)})
          </button>
        )}
      </div>
      <div className="toolbar">
        <span>{t('polling')}:</span>
        <label>
          {t('pollingTiles')}{' '}
          <input data-testid="polling-tiles" size={8} placeholder="8" value={tiles} onChange={(e) => setTiles(e.target.value)} />
        </label>
        <label>
          {t('pollingInterval')}{' '}
          <input data-testid="polling-interval" size={4} inputMode="numeric" value={interval} onChange={(e) => setInterval_(e.target.value)} />
        </label>
        <button data-testid="polling-set" onClick={() => setPolling(true)}>{t('pollingSet')}</button>
        {layout.polling && <button data-testid="polling-off" onClick={() => setPolling(false)}>{t('pollingOff')}</button>}
      </div>
      <label className="check">
        <input type="checkbox" data-testid="show-picture" checked={showPicture} onChange={(e) => setShowPicture(e.target.checked)} />
        {t('showComposedPicture')}
      </label>
      {showPicture && <ComposedPicture t={t} roomId={c.room_id} />}
      <ol className={`tile-map layout-${layout.kind.replace('+', 'p')}`} data-testid="tile-map">
        {c.tiles.map((tile, i) => (
          <li key={i} className={`tile-${tile.size}`} data-testid={`tile-${i + 1}`}>
            {tile.member == null ? '—' : nameOf(tile.member)}
            {tile.screen && ` · ${t('sharedScreen')}`}
            {tile.polled && ' ⟳'}
          </li>
        ))}
      </ol>
    </div>
  );
}

/// What phones with video, recordings and streams show: the composed picture, every 2 s.
function ComposedPicture({ t, roomId }: { t: T; roomId: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    let current: string | null = null;
    const load = async () => {
      const token = session.get();
      const response = await fetch(`/api/v1/conferences/${roomId}/picture`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      }).catch(() => null);
      if (stopped || !response?.ok) return;
      const next = URL.createObjectURL(await response.blob());
      if (current) URL.revokeObjectURL(current);
      current = next;
      setUrl(next);
    };
    void load();
    const timer = window.setInterval(() => void load(), 2000);
    return () => {
      stopped = true;
      window.clearInterval(timer);
      if (current) URL.revokeObjectURL(current);
    };
  }, [roomId]);
  return url
    ? <img className="composed-picture" data-testid="composed-picture" src={url} alt={t('showComposedPicture')} />
    : <p className="empty">{t('composedPictureWait')}</p>;
}

/// The conference with one invitation replaced (or added, when new).
function withInvitation(c: LiveConference, invitation: Invitation): LiveConference {
  const invitations = c.invitations ?? [];
  return {
    ...c,
    invitations: invitations.some((i) => i.id === invitation.id)
      ? invitations.map((i) => (i.id === invitation.id ? invitation : i))
      : [...invitations, invitation],
  };
}

/// Not in the meeting and not being called: what `redialMissing` calls again.
const missing: CallState[] = ['busy', 'no_answer', 'rejected', 'failed', 'left'];
const tone: Record<CallState, string> = {
  calling: 'neutral', ringing: 'neutral', joined: 'good', busy: 'bad', no_answer: 'bad', rejected: 'bad', failed: 'bad',
  left: 'gone', removed: 'gone',
};

/// Everyone the meeting called and how each call stands, with "call again everyone missing".
function Calls({ t, conference, onChange }: { t: T; conference: LiveConference; onChange: () => void }) {
  const [redialled, setRedialled] = useState<Redialled | null>(null);
  const [error, setError] = useState('');
  const invitations = conference.invitations ?? [];
  useEffect(() => {
    if (!redialled) return;
    const timer = setTimeout(() => setRedialled(null), 15000);
    return () => clearTimeout(timer);
  }, [redialled]);
  const redial = () =>
    api<Redialled>('POST', `/conferences/${conference.room_id}/redial`).then(
      (r) => {
        setError('');
        setRedialled(r);
        onChange();
      },
      (e) => setError(String(e.message ?? e)),
    );
  const notice = redialled && (redialled.members.length === 0
    ? t('redialNobody')
    : t('redialled') + redialled.members.map((m) => (m.reason ? `${m.display_name} (${m.reason})` : m.display_name)).join(t('listSeparator')));
  return (
    <div className="calls" data-testid="calls">
      <div className="heading">
        <h4>{t('calls')}</h4>
        {invitations.some((i) => missing.includes(i.state)) && (
          <button data-testid="redial" onClick={redial}>{t('redial')}</button>
        )}
      </div>
      {notice && <p className="notice" data-testid="redial-notice">{notice}</p>}
      {error && <p className="error" role="alert">{error}</p>}
      {invitations.length === 0 ? (
        <p className="empty">{t('noCalls')}</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>{t('name')}</th><th>{t('number')}</th><th>{t('role')}</th><th>{t('status')}</th><th>{t('reason')}</th>
            </tr>
          </thead>
          <tbody>
            {invitations.map((i) => (
              <tr key={i.id} data-testid={`invitation-${i.number || i.id}`} data-call-id={i.call_id ?? ''}>
                <td>{i.name}</td>
                <td>{i.number}</td>
                <td>{t.word('role', i.role)}</td>
                <td>
                  <span className={`badge ${tone[i.state] ?? 'neutral'}`} data-testid="call-state" data-state={i.state}>
                    {t(`call_${i.state}`)}
                  </span>
                </td>
                <td>{i.reason ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/// Calls one more person into the meeting: a phone number (through the trunks) or a user.
function InviteForm({ t, roomId, users, onInvited }: { t: T; roomId: string; users: User[]; onInvited: () => void }) {
  const [whom, setWhom] = useState<'number' | 'user'>('number');
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const value = (name: string) => String(data.get(name) ?? '').trim();
    const body: Record<string, string> = whom === 'number' ? { number: value('number') } : { user_id: value('user_id') };
    if (value('display_name')) body.display_name = value('display_name');
    body.role = value('role') || 'participant';
    try {
      await api('POST', `/conferences/${roomId}/invite`, body);
      form.reset();
      setError(null);
      onInvited();
    } catch (err) {
      setError(err as ApiError);
      // A call that failed before ringing is listed among the calls with its reason.
      onInvited();
    }
  };
  const fieldError = (name: string) => {
    const reason = error?.errors?.find((e) => e.field === name)?.reason;
    return reason ? <small className="error" data-testid={`invite-error-${name}`}>{reason}</small> : null;
  };
  const fieldNames = ['number', 'user_id', 'display_name', 'role'];
  const general = error && !error.errors?.some((e) => fieldNames.includes(e.field));
  return (
    <form className="create invite" onSubmit={submit} data-testid="invite-form">
      <h3>{t('invite')}</h3>
      <label>
        {t('inviteWhom')}
        <select data-testid="invite-whom" value={whom} onChange={(e) => { setWhom(e.target.value as 'number' | 'user'); setError(null); }}>
          <option value="number">{t('whom_number')}</option>
          <option value="user">{t('whom_user')}</option>
        </select>
      </label>
      {whom === 'number' ? (
        <label>
          {t('whom_number')}
          <input name="number" data-testid="invite-number" inputMode="tel" required />
          {fieldError('number')}
        </label>
      ) : (
        <label>
          {t('whom_user')}
          <select name="user_id" data-testid="invite-user" required defaultValue="">
            <option value="" disabled>{t('chooseUser')}</option>
            {users.map((u) => (
              <option key={u.id} value={u.id}>{u.display_name}{u.extension ? ` (${u.extension})` : ''}</option>
            ))}
          </select>
          {fieldError('user_id')}
        </label>
      )}
      <label>
        {t('displayName')}
        <input name="display_name" data-testid="invite-display-name" />
        {fieldError('display_name')}
      </label>
      <label>
        {t('role')}
        <select name="role" data-testid="invite-role" defaultValue="participant">
          {['participant', 'member', 'chairman', 'manager'].map((r) => <option key={r} value={r}>{t.word('role', r)}</option>)}
        </select>
        {fieldError('role')}
      </label>
      <button type="submit" data-testid="invite">{t('call')}</button>
      {general && <p className="error" role="alert" data-testid="invite-error">{error.message}</p>}
    </form>
  );
}
