import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { api, ApiError, type RewriteRule, type Trunk } from './api';
import type { Key, T } from './i18n';

/// The trunk form as typed: numbers stay text until sent, so a half-typed value is not lost.
type Draft = {
  name: string; host: string; port: string; transport: Trunk['transport']; username: string; password: string;
  clearPassword: boolean; caller_id: string; rewrite: RewriteRule[]; srtp: Trunk['srtp'];
  ring_timeout_seconds: string; register: boolean; enabled: boolean; priority: string; verify_tls: boolean;
};

const blank: Draft = {
  name: '', host: '', port: '5060', transport: 'udp', username: '', password: '', clearPassword: false,
  caller_id: '', rewrite: [], srtp: 'off', ring_timeout_seconds: '60', register: false, enabled: true,
  priority: '0', verify_tls: true,
};

function draftOf(trunk: Trunk): Draft {
  return {
    name: trunk.name, host: trunk.host, port: String(trunk.port), transport: trunk.transport,
    username: trunk.username ?? '', password: '', clearPassword: false, caller_id: trunk.caller_id ?? '',
    rewrite: (trunk.rewrite ?? []).map((r) => ({ ...r })), srtp: trunk.srtp ?? 'off',
    ring_timeout_seconds: String(trunk.ring_timeout_seconds), register: trunk.register ?? false, enabled: trunk.enabled ?? true,
    priority: String(trunk.priority), verify_tls: trunk.verify_tls ?? true,
  };
}

/// The body of createTrunk / updateTrunk. An empty number is left out (the server's default);
/// the password is left out unless typed (kept on update), or sent empty to remove it.
function bodyOf(d: Draft, editing: boolean): Record<string, unknown> {
  const number = (text: string) => (text.trim() === '' ? undefined : Number(text));
  const body: Record<string, unknown> = {
    name: d.name.trim(),
    host: d.host.trim(),
    port: number(d.port),
    transport: d.transport,
    username: d.username.trim() === '' ? null : d.username.trim(),
    caller_id: d.caller_id.trim() === '' ? null : d.caller_id.trim(),
    rewrite: d.rewrite.map((r) => ({ pattern: r.pattern.trim(), replace: r.replace.trim() })),
    srtp: d.srtp,
    ring_timeout_seconds: number(d.ring_timeout_seconds),
    register: d.register,
    enabled: d.enabled,
    priority: number(d.priority),
    verify_tls: d.verify_tls,
  };
  if (d.password !== '') body.password = d.password;
  else if (editing && d.clearPassword) body.password = '';
  return body;
}

/// `off`, `registering`, `registered`, `failed: 403`, `unregistered`, translated and coloured.
function Registration({ t, state }: { t: T; state: string }) {
  const [word, detail] = state.split(/:\s*/, 2);
  const tone = word === 'registered' ? 'good' : word === 'failed' ? 'bad' : word === 'off' ? 'gone' : 'neutral';
  return (
    <span className={`badge ${tone}`} data-testid="registration" data-state={state}>
      {t.word('reg', word)}{detail ? `: ${detail}` : ''}
    </span>
  );
}

/// SIP trunks (administrators): the gateways that carry calls to phone numbers.
export function Trunks({ t }: { t: T }) {
  const [rows, setRows] = useState<Trunk[]>([]);
  const [draft, setDraft] = useState<Draft>(blank);
  const [editing, setEditing] = useState<Trunk | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const reload = useCallback(() => {
    api<Trunk[]>('GET', '/trunks').then(setRows, (e) => setError(e));
  }, []);
  useEffect(() => {
    reload();
    // Registrations move on their own: look again now and then.
    const timer = setInterval(reload, 10000);
    return () => clearInterval(timer);
  }, [reload]);

  const set = <K extends keyof Draft>(name: K, value: Draft[K]) => setDraft((d) => ({ ...d, [name]: value }));
  const setRule = (index: number, part: keyof RewriteRule, value: string) =>
    setDraft((d) => ({ ...d, rewrite: d.rewrite.map((r, i) => (i === index ? { ...r, [part]: value } : r)) }));
  const fieldError = (name: string) => error?.errors?.find((e) => e.field === name)?.reason;
  const below = (name: string) => {
    const reason = fieldError(name);
    return reason ? <small className="error" data-testid={`error-${name}`}>{reason}</small> : null;
  };
  const reset = () => {
    setDraft(blank);
    setEditing(null);
    setError(null);
  };

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    try {
      if (editing) await api('PUT', `/trunks/${editing.id}`, bodyOf(draft, true));
      else await api('POST', '/trunks', bodyOf(draft, false));
      reset();
      reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const remove = (trunk: Trunk) =>
    api('DELETE', `/trunks/${trunk.id}`).then(() => {
      if (editing?.id === trunk.id) reset();
      reload();
    }, (e) => setError(e));

  const text = (name: keyof Draft & string, label: Key, extra: { required?: boolean; type?: string; placeholder?: string } = {}) => (
    <label>
      {t(label)}
      <input
        name={name} data-testid={`field-${name}`} type={extra.type ?? 'text'} required={extra.required}
        placeholder={extra.placeholder} value={draft[name] as string} onChange={(e) => set(name, e.target.value as never)}
        autoComplete={extra.type === 'password' ? 'new-password' : 'off'}
      />
      {below(name)}
    </label>
  );
  const choice = (name: 'transport' | 'srtp', options: string[]) => (
    <label>
      {t(name)}
      <select name={name} data-testid={`field-${name}`} value={draft[name]} onChange={(e) => set(name, e.target.value as never)}>
        {options.map((o) => <option key={o} value={o}>{t.word(name, o)}</option>)}
      </select>
      {below(name)}
    </label>
  );
  const check = (name: 'register' | 'enabled' | 'verify_tls' | 'clearPassword', label: Key) => (
    <label className="check">
      <span>
        <input type="checkbox" name={name} data-testid={`field-${name}`} checked={draft[name]} onChange={(e) => set(name, e.target.checked)} />
        {' '}{t(label)}
      </span>
      {below(name)}
    </label>
  );
  const cells: [Key, (x: Trunk) => ReactNode][] = [
    ['name', (x) => x.name],
    ['gateway', (x) => `${x.host}:${x.port} · ${t.word('transport', x.transport ?? 'udp')}`],
    ['registration', (x) => <Registration t={t} state={x.registration} />],
    ['enabled', (x) => t(x.enabled ? 'yes' : 'no')],
    ['priority', (x) => x.priority],
    ['rules', (x) => (x.rewrite ?? []).map((r) => `${r.pattern} → ${r.replace}`).join(', ') || '—'],
    ['srtpShort', (x) => t.word('srtp', x.srtp ?? 'off')],
    ['password', (x) => t(x.has_password ? 'passwordSet' : 'noPassword')],
  ];

  return (
    <section data-testid="page-trunks">
      <h2>{t('trunks')}</h2>
      <form className="create" onSubmit={submit} data-testid="trunk-form">
        <h3>{editing ? `${t('editTrunk')} · ${editing.name}` : t('newTrunk')}</h3>
        {text('name', 'name', { required: true })}
        {text('host', 'host', { required: true })}
        {text('port', 'port', { type: 'number' })}
        {choice('transport', ['udp', 'tcp', 'tls'])}
        {text('username', 'username')}
        {text('password', 'password', {
          type: 'password',
          placeholder: editing?.has_password ? t('keepPassword') : undefined,
        })}
        {editing?.has_password && check('clearPassword', 'clearPassword')}
        {text('caller_id', 'callerId')}
        {choice('srtp', ['off', 'optional', 'mandatory'])}
        {text('ring_timeout_seconds', 'ringTimeout', { type: 'number' })}
        {text('priority', 'priorityFirst', { type: 'number' })}
        {check('enabled', 'enabled')}
        {check('register', 'register')}
        {check('verify_tls', 'verifyTls')}
        <fieldset className="rules" data-testid="rewrite">
          <legend>{t('rewrite')}</legend>
          {draft.rewrite.length === 0 && <p className="empty">{t('noRules')}</p>}
          {draft.rewrite.map((rule, i) => (
            <div className="rule" key={i} data-testid={`rule-${i}`}>
              <label>
                {t('pattern')}
                <input
                  data-testid={`rule-${i}-pattern`} value={rule.pattern} placeholder="^0(\d+)$"
                  onChange={(e) => setRule(i, 'pattern', e.target.value)}
                />
                {below(`rewrite[${i}].pattern`)}
              </label>
              <label>
                {t('replace')}
                <input
                  data-testid={`rule-${i}-replace`} value={rule.replace} placeholder="+8610$1"
                  onChange={(e) => setRule(i, 'replace', e.target.value)}
                />
                {below(`rewrite[${i}].replace`)}
              </label>
              <button type="button" className="secondary" onClick={() => set('rewrite', draft.rewrite.filter((_, j) => j !== i))}>
                {t('delete')}
              </button>
            </div>
          ))}
          <button type="button" className="secondary" data-testid="add-rule" onClick={() => set('rewrite', [...draft.rewrite, { pattern: '', replace: '' }])}>
            {t('addRule')}
          </button>
          {below('rewrite')}
        </fieldset>
        <div className="buttons">
          <button type="submit" data-testid="save-trunk">{t(editing ? 'save' : 'create')}</button>
          {editing && <button type="button" className="secondary" onClick={reset}>{t('cancel')}</button>}
        </div>
      </form>
      {error && <p className="error" role="alert" data-testid="error">{error.message}</p>}
      {rows.length === 0 ? (
        <p className="empty">{t('empty')}</p>
      ) : (
        <table>
          <thead>
            <tr>
              {cells.map(([label]) => <th key={label}>{t(label)}</th>)}
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.id} data-testid={`trunk-${row.name}`}>
                {cells.map(([label, render]) => <td key={label}>{render(row)}</td>)}
                <td className="actions">
                  <button onClick={() => { setEditing(row); setDraft(draftOf(row)); setError(null); }}>{t('edit')}</button>
                  <button onClick={() => remove(row)}>{t('delete')}</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
