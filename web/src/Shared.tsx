import type { SharedRecording } from './api-schema';
// A public recording for anyone with its link: /recording/<key>. The page asks for the
// password when there is one, then lists the whole meeting and each person's track to play
// (Ogg Opus, streamed from the server; every playback is in the tenant's audit log).

import { useEffect, useState } from 'react';
import { PasswordForm, PublicShell, usePublicLanguage } from './Public';

export function SharedPage() {
  const [t, lang, setLang] = usePublicLanguage();
  const key = window.location.pathname.split('/')[2] ?? '';
  const [shared, setShared] = useState<SharedRecording | null>(null);
  const [missing, setMissing] = useState(false);

  useEffect(() => {
    fetch(`/api/v1/shared/${key}`).then(async (r) => {
      if (!r.ok) return setMissing(true);
      setShared((await r.json()) as SharedRecording);
    }, () => setMissing(true));
  }, [key]);

  return (
    <PublicShell t={t} lang={lang} setLang={setLang} what={t('sharedRecording')}>
        {missing && <p className="error" data-testid="shared-missing">{t('noSuchRecording')}</p>}
        {shared && (
          <section className="card" data-testid="shared">
            <h2>{shared.room_name} — {t.time(shared.started_at)}</h2>
            {shared.tracks.length === 0 && shared.password_required && (
              <PasswordForm<SharedRecording> t={t} url={`/api/v1/shared/${key}`} prefix="shared" submit={t('open')} onOpen={setShared} />
            )}
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
    </PublicShell>
  );
}
