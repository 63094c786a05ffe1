import { useEffect, useState } from 'react';
import { api, ApiError, asError, type Tenant } from './api';
import type { T } from './i18n';

export type Branding = { tenant_name?: string; product_name?: string; slogan?: string; color?: string; logo?: string };

/// The look before login: the tenant whose domain the server was reached by, else the server's.
export function useBranding(tenantId: string | null): [Branding, (b: Branding) => void] {
  const [branding, setBranding] = useState<Branding>({});
  useEffect(() => {
    const fromTenant = (tenant: Tenant) => ({ tenant_name: tenant.name, ...(tenant.branding as Branding) });
    const request = tenantId ? api<Tenant>('GET', `/tenants/${tenantId}`).then(fromTenant) : api<Branding>('GET', '/branding');
    request.then(setBranding, () => setBranding({}));
  }, [tenantId]);
  useEffect(() => {
    // Through the CSSOM (allowed by the Content-Security-Policy, unlike a style attribute).
    const root = document.documentElement.style;
    if (branding.color) root.setProperty('--brand', branding.color);
    else root.removeProperty('--brand');
    document.title = branding.product_name || 'Conclave';
  }, [branding]);
  return [branding, setBranding];
}

/// The brand as the header and the login page show it: the logo, the product's name.
export function BrandMark({ t, branding }: { t: T; branding: Branding }) {
  return (
    <span className="brand" data-testid="brand">
      {branding.logo && <img src={branding.logo} alt="" className="logo" />}
      <strong>{branding.product_name || t('appName')}</strong>
    </span>
  );
}

const LOGO_MAX = 96 * 1024;

/// A tenant administrator chooses the tenant's look: product name, slogan, colour and logo,
/// with a preview of the header.
export function BrandingEditor({ t, tenant, onSaved }: { t: T; tenant: Tenant; onSaved: (b: Branding) => void }) {
  const initial = tenant.branding as Branding;
  const [draft, setDraft] = useState<Branding>({
    product_name: initial.product_name ?? '', slogan: initial.slogan ?? '', color: initial.color ?? '#12324f', logo: initial.logo ?? '',
  });
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  const fieldError = (name: string) => error?.errors?.filter((e) => e.field === `branding.${name}`).map((e) => e.reason).join('; ');
  const pick = (file: File | undefined) => {
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      if (url.length > LOGO_MAX) {
        setError(new ApiError(422, '', [{ field: 'branding.logo', reason: t('logoTooLarge') }]));
        return;
      }
      setDraft((d) => ({ ...d, logo: url }));
    };
    reader.readAsDataURL(file);
  };
  const save = () =>
    api<Tenant>('PATCH', `/tenants/${tenant.id}`, { branding: draft }).then(
      (updated) => {
        setError(null);
        setSaved(true);
        onSaved({ tenant_name: updated.name, ...(updated.branding as Branding) });
      },
      (e) => {
        setSaved(false);
        setError(asError(e));
      },
    );
  return (
    <section className="editor" data-testid="branding-editor">
      <h3>{t('branding')}: {tenant.name}</h3>
      <p className="hint">{t('brandingHint')}</p>
      {error && <p className="error" role="alert">{error.errors.length > 0 ? t('fieldsRefused') : error.message}</p>}
      {saved && <p className="notice" role="status" data-testid="branding-saved">{t('saved')}</p>}
      <div className="editor-grid">
        <label>
          {t('productName')}
          <input data-testid="brand-product" value={draft.product_name} onChange={(e) => setDraft({ ...draft, product_name: e.target.value })} />
          {fieldError('product_name') && <small className="error">{fieldError('product_name')}</small>}
        </label>
        <label>
          {t('slogan')}
          <input data-testid="brand-slogan" value={draft.slogan} onChange={(e) => setDraft({ ...draft, slogan: e.target.value })} />
          {fieldError('slogan') && <small className="error">{fieldError('slogan')}</small>}
        </label>
        <label>
          {t('themeColor')}
          <input type="color" data-testid="brand-color" value={draft.color} onChange={(e) => setDraft({ ...draft, color: e.target.value })} />
          {fieldError('color') && <small className="error">{fieldError('color')}</small>}
        </label>
        <label>
          {t('logo')}
          <input type="file" accept="image/png,image/jpeg,image/webp" data-testid="brand-logo" onChange={(e) => pick(e.target.files?.[0])} />
          {fieldError('logo') && <small className="error" data-testid="brand-logo-error">{fieldError('logo')}</small>}
        </label>
      </div>
      <div className="brand-preview" data-testid="brand-preview">
        <header className="preview">
          {draft.logo && <img src={draft.logo} alt="" className="logo" />}
          <strong>{draft.product_name || t('appName')}</strong>
          <span className="slogan">{draft.slogan}</span>
        </header>
      </div>
      <div className="editor-actions">
        <button className="primary" data-testid="brand-save" onClick={save}>{t('save')}</button>
        {draft.logo && <button data-testid="brand-logo-remove" onClick={() => setDraft({ ...draft, logo: '' })}>{t('removeLogo')}</button>}
      </div>
    </section>
  );
}
