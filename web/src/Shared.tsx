// A public recording for anyone with its link: /recording/<key>. The page asks for the
// password when there is one, then lists the whole meeting and each person's track to play
// (Ogg Opus, streamed from the server; every playback is in the tenant's audit log).

import { useEffect, useState, type FormEvent } from 'react';
import { BrandMark, useBranding } from './Branding';
import { initialLang, translator, type Lang, type T } from './i18n';

type SharedTrack = { track: number; name: string; duration_ms: number | null; audio: string };
type SharedRecording = { room_name: string; started_at: number; ended_at: number | null; password_required: boolean; tracks: SharedTrack[] };

export function SharedPage() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const t = translator(lang);
  const [branding] = useBranding(null);
  const key = window.location.pathname.split('/')[2] ?? '';
  const [shared, setShared] = useState<SharedRecording | null>(null);
  const [missing, setMissing] = useState(false);

  useEffect(() => {
    localStorage.setItem('conclave.lang', lang);
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }, [lang]);
  useEffect(() => {
    fetch(`/api/v1/shared/${key}`).then(async (r) => {
      if (!r.ok) return setMissing(true);
      setShared((await r.json()) as SharedRecording);
    }, () => setMissing(true));
  }, [key]);

  return (
    <div className="app watch">
      <header>
        <BrandMark t={t} branding={branding} />
        <span className="who">{t('sharedRecording')}</span>
        <select data-testid="language" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
          <option value="en">English</option>
          <option value="zh">中文</option>
        </select>
      </header>
      <main>
        {missing && <p className="error" data-testid="shared-missing">{t('noSuchRecording')}</p>}
        {shared && (
          <section className="card" data-testid="shared">
            <h2>{shared.room_name} — {t.time(shared.started_at)}</h2>
            {shared.tracks.length === 0 && shared.password_required && <Unlock t={t} shareKey={key} onOpen={setShared} />}
            {shared.tracks.length > 0 && (
              <table>
                <tbody>
                  {shared.tracks.map((tr) => (
                    <tr key={tr.track} data-testid={`shared-track-${tr.track}`}>
                      <td>{tr.track === 0 ? t('mixTrack') : tr.name}</td>
                      <td><audio controls preload="none" src={tr.audio} data-testid={`shared-audio-${tr.track}`} /></td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        )}
      </main>
    </div>
  );
}

function Unlock({ t, shareKey, onOpen }: { t: T; shareKey: string; onOpen: (s: SharedRecording) => void }) {
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError('');
    const r = await fetch(`/api/v1/shared/${shareKey}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password }),
    }).catch(() => null);
    if (r?.ok) onOpen((await r.json()) as SharedRecording);
    else setError(t(r?.status === 429 ? 'tooManyTries' : 'wrongStreamPassword'));
  };
  return (
    <form onSubmit={submit}>
      <label>{t('streamPassword')}
        <input data-testid="shared-password" value={password} autoComplete="off" onChange={(e) => setPassword(e.target.value)} />
      </label>
      <button type="submit" data-testid="shared-submit">{t('open')}</button>
      {error && <p className="error" role="alert" data-testid="shared-error">{error}</p>}
    </form>
  );
}
