import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type OutboundPolicy, type Page, type Tenant, type User } from './api';
import type { Key, T } from './i18n';

/// What the server takes as "any number" (its default pattern).
const ANY_NUMBER = '\\+?[0-9*#]+';

/// The form as typed (the browser checks only that the limits are whole numbers, not below 0;
/// the rest is the server's to refuse, next to the field): the limits stay text until sent, so a half-typed value is not lost.
type Draft = { patterns: string[]; granted: string[]; concurrent: string; perHour: string };

const draftOf = (p: OutboundPolicy): Draft => ({
  patterns: [...(p.allowed_patterns ?? [])], granted: [...(p.granted_users ?? [])],
  concurrent: String(p.concurrent_calls), perHour: String(p.calls_per_hour),
});

/// A limit as sent: a number when it is one, else the text itself (the server names the field).
const limit = (text: string): unknown => (text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text);

/// The fields whose refusal is shown next to them.
const shownFields = /^(allowed_patterns|granted_users)(\[\d+\])?$|^(concurrent_calls|calls_per_hour)$/;

/// Every user of the tenant (the list comes in pages of at most 200).
async function usersOf(tenantId: string): Promise<User[]> {
  const all: User[] = [];
  let cursor = '';
  for (let i = 0; i < 50; i++) {
    const page = await api<Page<User>>('GET', `/users?tenant_id=${encodeURIComponent(tenantId)}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    all.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return all;
}

/// The tenant's outbound-calling policy (administrators): against toll fraud, calling phone
/// numbers through the trunks is a right of its own, for some numbers, within limits.
export function OutboundPolicyForm({ t, tenants, ownTenant }: { t: T; tenants: Tenant[]; ownTenant: string }) {
  const [tenantId, setTenantId] = useState(ownTenant);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [users, setUsers] = useState<User[]>([]);
  const [filter, setFilter] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  // The reasons refused granted users were given, by user id (the API names them by index).
  const [userErrors, setUserErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  const load = useCallback(() => {
    setDraft(null);
    setError(null);
    setUserErrors({});
    setSaved(false);
    api<OutboundPolicy>('GET', `/tenants/${tenantId}/outbound-policy`).then((p) => setDraft(draftOf(p)), (e) => setError(e));
    usersOf(tenantId).then(setUsers, () => setUsers([]));
  }, [tenantId]);
  useEffect(load, [load]);

  const change = (update: (d: Draft) => Draft) => {
    setSaved(false);
    setDraft((d) => (d ? update(d) : d));
  };
  const fieldError = (name: string) => error?.errors?.find((e) => e.field === name)?.reason;
  const below = (name: string) => {
    const reason = fieldError(name);
    return reason ? <small className="error" data-testid={`error-${name}`}>{reason}</small> : null;
  };

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (!draft) return;
    const body = {
      allowed_patterns: draft.patterns.map((p) => p.trim()),
      granted_users: draft.granted,
      concurrent_calls: limit(draft.concurrent),
      calls_per_hour: limit(draft.perHour),
    };
    setSaved(false);
    try {
      const stored = await api<OutboundPolicy>('PUT', `/tenants/${tenantId}/outbound-policy`, body);
      setDraft(draftOf(stored));
      setError(null);
      setUserErrors({});
      setSaved(true);
    } catch (err) {
      const apiError = err instanceof ApiError ? err : new ApiError(0, String(err), []);
      const byUser: Record<string, string> = {};
      for (const fe of apiError.errors) {
        const index = /^granted_users\[(\d+)\]$/.exec(fe.field)?.[1];
        if (index !== undefined && body.granted_users[Number(index)]) byUser[body.granted_users[Number(index)]] = fe.reason;
      }
      setError(apiError);
      setUserErrors(byUser);
    }
  };

  const admins = users.filter((u) => u.kind !== 'user');
  const plain = users.filter((u) => u.kind === 'user');
  const known = new Set(users.map((u) => u.id));
  // Granted ids no user of the tenant has any more (a deleted user): shown so they can be removed.
  const strangers = draft ? draft.granted.filter((id) => !known.has(id)) : [];
  const words = filter.trim().toLowerCase();
  const shown = plain.filter(
    (u) => !words || [u.username, u.display_name, u.extension ?? ''].some((s) => s.toLowerCase().includes(words)),
  );
  const toggle = (id: string, on: boolean) =>
    change((d) => ({ ...d, granted: on ? [...d.granted.filter((x) => x !== id), id] : d.granted.filter((x) => x !== id) }));
  const setPattern = (index: number, value: string) =>
    change((d) => ({ ...d, patterns: d.patterns.map((p, i) => (i === index ? value : p)) }));
  const number = (name: 'concurrent' | 'perHour', field: string, label: Key, hint: Key) => (
    <label>
      {t(label)}
      <input
        type="number" min={0} step={1} required data-testid={`policy-${field}`} value={draft?.[name] ?? ''}
        onChange={(e) => change((d) => ({ ...d, [name]: e.target.value }))}
      />
      <small className="hint">{t(hint)}</small>
      {below(field)}
    </label>
  );

  return (
    <div className="policy" data-testid="outbound-policy">
      <h3>{t('outboundPolicy')}</h3>
      <p className="hint">{t('outboundPolicyHint')}</p>
      {tenants.length > 1 && (
        <label className="tenant-choice">
          {t('tenant')}
          <select data-testid="policy-tenant" value={tenantId} onChange={(e) => setTenantId(e.target.value)}>
            {tenants.map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
          </select>
        </label>
      )}
      {!draft ? (
        error ? <p className="error" role="alert" data-testid="policy-error">{error.message}</p> : <p className="empty">{t('loading')}</p>
      ) : (
        <form className="create" onSubmit={submit} data-testid="policy-form">
          <fieldset className="rules" data-testid="policy-patterns">
            <legend>{t('allowedNumbers')}</legend>
            <p className="empty">{t(draft.patterns.length === 0 ? 'noPatterns' : 'patternsHint')}</p>
            {draft.patterns.map((pattern, i) => (
              <div className="rule" key={i} data-testid={`policy-pattern-${i}`}>
                <label>
                  {t('pattern')}
                  <input
                    data-testid={`policy-pattern-${i}-input`} value={pattern} placeholder="0\d{10,11}"
                    onChange={(e) => setPattern(i, e.target.value)}
                  />
                  {below(`allowed_patterns[${i}]`)}
                </label>
                <button type="button" className="secondary" onClick={() => change((d) => ({ ...d, patterns: d.patterns.filter((_, j) => j !== i) }))}>
                  {t('delete')}
                </button>
              </div>
            ))}
            <div className="buttons">
              <button type="button" className="secondary" data-testid="add-pattern" onClick={() => change((d) => ({ ...d, patterns: [...d.patterns, ''] }))}>
                {t('addPattern')}
              </button>
              {!draft.patterns.includes(ANY_NUMBER) && (
                <button type="button" className="secondary" data-testid="add-any-number" onClick={() => change((d) => ({ ...d, patterns: [...d.patterns, ANY_NUMBER] }))}>
                  {t('allowAnyNumber')}
                </button>
              )}
            </div>
            {below('allowed_patterns')}
          </fieldset>
          <fieldset className="rules" data-testid="policy-users">
            <legend>{t('grantedUsers')}</legend>
            <p className="empty">{t('grantedUsersHint')}</p>
            {admins.length > 0 && (
              <p className="admins" data-testid="policy-admins">
                {t('alwaysAllowed')}{admins.map((u) => u.display_name).join(t('listSeparator'))}
              </p>
            )}
            {plain.length > 8 && (
              <input
                className="filter" data-testid="policy-user-filter" type="search" placeholder={t('findUser')} value={filter}
                onChange={(e) => setFilter(e.target.value)}
              />
            )}
            <div className="choices">
              {plain.length === 0 && strangers.length === 0 && <p className="empty">{t('noPlainUsers')}</p>}
              {shown.map((u) => (
                <label key={u.id} className="flag" data-testid={`policy-user-${u.username}`}>
                  <span>
                    <input type="checkbox" checked={draft.granted.includes(u.id)} onChange={(e) => toggle(u.id, e.target.checked)} />
                    {' '}{u.display_name}
                    <span className="detail">{u.username}{u.extension ? ` · ${u.extension}` : ''}</span>
                    {u.status !== 'active' && <span className="badge gone">{t.word('status', u.status)}</span>}
                  </span>
                  {userErrors[u.id] && <small className="error">{userErrors[u.id]}</small>}
                </label>
              ))}
              {strangers.map((id) => (
                <label key={id} className="flag" data-testid="policy-user-unknown">
                  <span>
                    <input type="checkbox" checked onChange={() => toggle(id, false)} />
                    {' '}{t('unknownUser')} <span className="detail">{id}</span>
                  </span>
                  {userErrors[id] && <small className="error">{userErrors[id]}</small>}
                </label>
              ))}
            </div>
            {below('granted_users')}
          </fieldset>
          {number('concurrent', 'concurrent_calls', 'concurrentCalls', 'concurrentCallsHint')}
          {number('perHour', 'calls_per_hour', 'callsPerHour', 'callsPerHourHint')}
          <div className="buttons">
            <button type="submit" data-testid="policy-save">{t('save')}</button>
            <button type="button" className="secondary" data-testid="policy-discard" onClick={load}>{t('discardChanges')}</button>
            {saved && <span className="badge good" data-testid="policy-saved">{t('saved')}</span>}
          </div>
          {error && (
            <p className="error" role="alert" data-testid="policy-error">
              {error.status === 422 && error.errors.every((e) => shownFields.test(e.field)) ? t('fieldsRefused') : error.message}
            </p>
          )}
        </form>
      )}
    </div>
  );
}
