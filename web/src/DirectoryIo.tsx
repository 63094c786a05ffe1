import { useRef, useState } from 'react';
import { api, ApiError, asError, download, upload, type ImportReport } from './api';
import type { T } from './i18n';

/// Import (a template to fill in, a file checked row by row, then applied) and export of the
/// directory, for administrators.
export function DirectoryImportExport({ t, onImported }: { t: T; onImported: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [report, setReport] = useState<ImportReport | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  // The template's header row in the console's language (both are read back).
  const headers = document.documentElement.lang.startsWith('zh') ? 'zh' : 'en';

  const fetchFile = (path: string, name: string) => {
    setError(null);
    download(path, name).catch((e) => setError(asError(e)));
  };
  const check = async (chosen: File | null) => {
    setFile(chosen);
    setReport(null);
    setError(null);
    if (!chosen) return;
    setBusy(true);
    try {
      setReport(await upload<ImportReport>('/directory/import?dry_run=true', chosen));
    } catch (e) {
      setError(asError(e));
    } finally {
      setBusy(false);
    }
  };
  const apply = async () => {
    if (!file) return;
    setBusy(true);
    try {
      const applied = await upload<ImportReport>('/directory/import?dry_run=false', file);
      setReport(applied);
      setError(null);
      setFile(null);
      if (input.current) input.current.value = '';
      onImported();
    } catch (e) {
      setError(asError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="directory-io" data-testid="directory-io">
      <h3>{t('importExport')}</h3>
      <div className="io-steps">
        <div>
          <h4>{t('importStep1')}</h4>
          <button type="button" className="secondary" data-testid="template-csv"
            onClick={() => fetchFile(`/directory/template?format=csv&lang=${headers}`, 'directory-template.csv')}>
            {t('templateCsv')}
          </button>{' '}
          <button type="button" className="secondary" data-testid="template-xlsx"
            onClick={() => fetchFile(`/directory/template?format=xlsx&lang=${headers}`, 'directory-template.xlsx')}>
            {t('templateXlsx')}
          </button>
          <p className="hint">{t('importColumns')}</p>
        </div>
        <div>
          <h4>{t('importStep2')}</h4>
          <input
            ref={input} type="file" data-testid="import-file" aria-label={t('importFile')}
            accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            onChange={(e) => check(e.target.files?.[0] ?? null)}
          />
          <p className="hint">{t('importDryRunHint')}</p>
        </div>
        <div>
          <h4>{t('exportDirectory')}</h4>
          <button type="button" className="secondary" data-testid="export-csv"
            onClick={() => fetchFile('/directory/export?format=csv', 'directory.csv')}>
            {t('exportCsv')}
          </button>{' '}
          <button type="button" className="secondary" data-testid="export-xlsx"
            onClick={() => fetchFile('/directory/export?format=xlsx', 'directory.xlsx')}>
            {t('exportXlsx')}
          </button>
        </div>
      </div>
      {busy && <p className="hint">{t('importChecking')}</p>}
      {error && (
        <div className="error" role="alert" data-testid="import-error">
          <p>{error.message}</p>
          {error.errors.length > 0 && (
            <ul>{error.errors.slice(0, 20).map((e, i) => <li key={i}>{e.field}: {e.reason}</li>)}</ul>
          )}
        </div>
      )}
      {report && (
        <div data-testid="import-report">
          <p data-testid="import-summary" className={report.applied ? 'ok' : undefined}>
            {report.applied ? t('importApplied') : t('importDryRun')}{' '}
            {t('importCounts')
              .replace('{added}', String(report.added))
              .replace('{updated}', String(report.updated))
              .replace('{unchanged}', String(report.unchanged))
              .replace('{refused}', String(report.refused))}
            {report.departments_created.length > 0 &&
              ` ${t('importNewDepartments')} ${report.departments_created.join(', ')}`}
          </p>
          <table data-testid="import-rows">
            <thead>
              <tr>
                <th>{t('importLine')}</th>
                <th>{t('entryKind')}</th>
                <th>{t('name')}</th>
                <th>{t('importAction')}</th>
                <th>{t('importDetails')}</th>
              </tr>
            </thead>
            <tbody>
              {report.rows.map((r) => (
                <tr key={r.line} data-testid={`import-row-${r.line}`} className={`import-${r.action}`}>
                  <td>{r.line}</td>
                  <td>{r.kind === 'user' ? t('entry_user') : r.kind === 'contact' ? t('entry_enterprise') : r.kind}</td>
                  <td>{r.name}</td>
                  <td><span className={`badge import-${r.action}`}>{t(`import_${r.action}`)}</span></td>
                  <td>
                    {r.action === 'refuse'
                      ? r.errors.map((e) => `${t.known(e.field) ?? e.field}: ${e.reason}`).join('; ')
                      : r.action === 'update' ? r.changes.join(', ') : ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {!report.applied && (
            <p>
              <button type="button" data-testid="import-apply" disabled={busy || report.refused > 0 || !file} onClick={apply}>
                {t('importApply')}
              </button>{' '}
              {report.refused > 0 && <span className="hint" data-testid="import-fix">{t('importFixFirst')}</span>}
            </p>
          )}
        </div>
      )}
    </section>
  );
}

/// Where an identity provider (Okta, Microsoft Entra, an HR system) connects for SCIM, and a
/// key for it.
export function Integrations({ t }: { t: T }) {
  const [key, setKey] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const base = `${window.location.origin}/scim/v2`;
  const create = () =>
    api<{ key: string }>('POST', '/api-keys', { name: 'SCIM' }).then((k) => {
      setKey(k.key);
      setError(null);
    }, (e) => setError(asError(e)));
  return (
    <section className="integrations" data-testid="integrations">
      <h3>{t('integrations')}</h3>
      <p>{t('scimIntro')}</p>
      <dl>
        <dt>{t('scimBaseUrl')}</dt>
        <dd><code data-testid="scim-base-url">{base}</code></dd>
        <dt>{t('scimAuth')}</dt>
        <dd>{t('scimAuthHow')}</dd>
      </dl>
      <p className="hint">{t('scimKeyHow')}</p>
      <pre className="example">{`curl -X POST ${window.location.origin}/api/v1/api-keys \\
  -H "Authorization: Bearer <${t('yourSessionToken')}>" \\
  -H "Content-Type: application/json" -d '{"name":"SCIM"}'`}</pre>
      <button type="button" data-testid="scim-key-create" onClick={create}>{t('scimCreateKey')}</button>
      {key && (
        <p data-testid="scim-key">
          {t('scimKeyOnce')} <code>{key}</code>
        </p>
      )}
      {error && <p className="error" role="alert">{error.message}</p>}
    </section>
  );
}
