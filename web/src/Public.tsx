// What the pages for people without an account share (the watch page, a shared recording):
// the branded header with the language switcher, the language itself, and the form that
// sends a link's password.

import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { BrandMark, useBranding } from './Branding';
import { initialLang, translator, type Lang, type T } from './i18n';

/// The page's language (remembered like the console's) and its translator.
export function usePublicLanguage(): [T, Lang, (l: Lang) => void] {
  const [lang, setLang] = useState<Lang>(initialLang);
  useEffect(() => {
    localStorage.setItem('conclave.lang', lang);
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }, [lang]);
  return [translator(lang), lang, setLang];
}

export function PublicShell({ t, lang, setLang, what, children }: {
  t: T; lang: Lang; setLang: (l: Lang) => void; what: string; children: ReactNode;
}) {
  const [branding] = useBranding(null);
  return (
    <div className="app watch">
      <header>
        <BrandMark t={t} branding={branding} />
        <span className="who">{what}</span>
        <select data-testid="language" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
          <option value="en">English</option>
          <option value="zh">中文</option>
        </select>
      </header>
      <main>{children}</main>
    </div>
  );
}

/// Posts `{password}` to `url`; `onOpen` gets the answer. `prefix` names the test ids.
export function PasswordForm<R>({ t, url, prefix, submit, onOpen }: {
  t: T; url: string; prefix: string; submit: string; onOpen: (answer: R) => void;
}) {
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const send = async (e: FormEvent) => {
    e.preventDefault();
    setError('');
    const r = await fetch(url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password }),
    }).catch(() => null);
    if (r?.ok) onOpen((await r.json()) as R);
    else setError(t(r?.status === 429 ? 'tooManyTries' : 'wrongStreamPassword'));
  };
  return (
    <form onSubmit={send}>
      <label>{t('streamPassword')}
        <input data-testid={`${prefix}-password`} value={password} autoComplete="off" onChange={(e) => setPassword(e.target.value)} />
      </label>
      <button type="submit" data-testid={`${prefix}-submit`}>{submit}</button>
      {error && <p className="error" role="alert" data-testid={`${prefix}-error`}>{error}</p>}
    </form>
  );
}
