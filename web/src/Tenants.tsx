import { useCallback, useEffect, useState } from 'react';
import { api, ApiError, type Page, type Tenant } from './api';
import type { T } from './i18n';
import { OutboundPolicyForm } from './OutboundPolicy';

/// Tenants and their SIP settings: the domain that routes registrations and calls to a tenant,
/// and whether its phones must use SHA-256 digest (no MD5 digest of their passwords is kept).
/// System administrators change them; tenant administrators see their own. Below, the
/// tenant's outbound-calling policy, which its administrators set.
export function Tenants({ t, systemAdmin, ownTenant }: { t: T; systemAdmin: boolean; ownTenant: string }) {
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const reload = useCallback(() => {
    api<Page<Tenant>>('GET', '/tenants?limit=100').then((p) => setTenants(p.items), () => setTenants([]));
  }, []);
  useEffect(reload, [reload]);
  return (
    <section data-testid="page-tenants">
      <h2>{t('tenants')}</h2>
      <p className="hint">{t('sha256OnlyHint')}</p>
      <table>
        <thead>
          <tr>
            <th>{t('name')}</th>
            <th>{t('sipDomain')}</th>
            <th>{t('sha256Only')}</th>
            {systemAdmin && <th />}
          </tr>
        </thead>
        <tbody>
          {tenants.map((tenant) => (
            <TenantRow key={tenant.id} t={t} tenant={tenant} editable={systemAdmin} onSaved={reload} />
          ))}
        </tbody>
      </table>
      <OutboundPolicyForm t={t} tenants={tenants} ownTenant={ownTenant} />
    </section>
  );
}

function TenantRow({ t, tenant, editable, onSaved }: { t: T; tenant: Tenant; editable: boolean; onSaved: () => void }) {
  const [domain, setDomain] = useState(tenant.sip_domain ?? '');
  const [strict, setStrict] = useState(tenant.sip_sha256_only);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  const save = async () => {
    setError(null);
    setSaved(false);
    try {
      await api('PATCH', `/tenants/${tenant.id}`, {
        sip_domain: domain.trim() === '' ? null : domain.trim(),
        sip_sha256_only: strict,
      });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err), []));
    }
  };
  const reason = (field: string) => error?.errors.find((e) => e.field === field)?.reason;
  return (
    <tr data-testid={`tenant-${tenant.name}`}>
      <td>{tenant.name}</td>
      <td>
        {editable ? (
          <input data-testid="tenant-sip-domain" value={domain} placeholder="sip.example.com" onChange={(e) => setDomain(e.target.value)} />
        ) : (
          tenant.sip_domain ?? ''
        )}
        {reason('sip_domain') && <small className="error" data-testid="error-sip_domain">{reason('sip_domain')}</small>}
      </td>
      <td>
        <input
          type="checkbox" data-testid="tenant-sha256-only" checked={strict} disabled={!editable}
          onChange={(e) => setStrict(e.target.checked)}
        />
        {reason('sip_sha256_only') && <small className="error" data-testid="error-sip_sha256_only">{reason('sip_sha256_only')}</small>}
      </td>
      {editable && (
        <td>
          <button data-testid="tenant-save" onClick={save}>{t('save')}</button>
          {saved && <span className="badge good" data-testid="tenant-saved">{t('saved')}</span>}
          {error && !reason('sip_domain') && !reason('sip_sha256_only') && (
            <p className="error" role="alert">{error.message}</p>
          )}
        </td>
      )}
    </tr>
  );
}

/// The tenant's rule for its recordings: deleted so many days after they end (0: kept;
/// empty: the server's rule). Tenant administrators set it.
export function RetentionForm({ t, tenantId }: { t: T; tenantId: string }) {
  const [days, setDays] = useState('');
  const [message, setMessage] = useState('');
  useEffect(() => {
    api<Tenant>('GET', `/tenants/${tenantId}`).then((tenant) => setDays(tenant.recording_retention_days?.toString() ?? ''), () => undefined);
  }, [tenantId]);
  const save = () => {
    setMessage('');
    const value = days.trim() === '' ? null : Number(days);
    api('PATCH', `/tenants/${tenantId}`, { recording_retention_days: value })
      .then(() => setMessage(t('saved')), (e) => setMessage(String(e.message ?? e)));
  };
  return (
    <div className="card" data-testid="retention">
      <h3>{t('recordingRetention')}</h3>
      <label>{t('retentionDays')}
        <input data-testid="retention-days" type="number" min={0} max={36500} value={days} placeholder={t('retentionServerRule')} onChange={(e) => setDays(e.target.value)} />
      </label>{' '}
      <button data-testid="retention-save" onClick={save}>{t('save')}</button>
      {message && <span data-testid="retention-message"> {message}</span>}
    </div>
  );
}
