import type { WatchInfo } from './api-schema';
// Watching a live stream: /watch/<key>, for anyone with the link. The page asks for the
// password when there is one, then plays the HLS stream — the meeting's layout (H.264) and
// its mix (Opus) in fragmented MP4 — through Media Source Extensions (Chromium, Firefox,
// Safari 17+), or the browser's own HLS player (Safari on iPhone). A scheduled stream waits on
// the page until it starts.

import { useEffect, useRef, useState } from 'react';
import type { T } from './i18n';
import { PasswordForm, PublicShell, usePublicLanguage } from './Public';

// avc3: the picture's parameter sets travel in the stream (docs/streaming.md)
const CODEC = 'video/mp4; codecs="avc3.42e01f,opus"';
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/// The media playlist's segments (RFC 8216), as this server writes them.
function parsePlaylist(text: string): { first: number; names: string[]; ended: boolean; init: string } {
  let first = 0;
  let init = 'init.mp4';
  const names: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) first = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-MAP:')) init = /URI="([^"]+)"/.exec(line)?.[1] ?? init;
    else if (line && !line.startsWith('#')) names.push(line.trim());
  }
  return { first, names, ended: text.includes('#EXT-X-ENDLIST'), init };
}

/// Plays a live HLS playlist into `audio` (a video element) until it ends or `stop()`;
/// `onEnd` when the stream is over (or gone).
function playLive(audio: HTMLVideoElement, playlist: string, listener: string, onEnd: () => void): () => void {
  let stopped = false;
  const dir = playlist.slice(0, playlist.lastIndexOf('/') + 1);
  if (!('MediaSource' in window) || !MediaSource.isTypeSupported(CODEC)) {
    // the browser's own HLS (Safari on iPhone)
    audio.src = playlist;
    void audio.play().catch(() => undefined);
    return () => { audio.removeAttribute('src'); audio.load(); };
  }
  const source = new MediaSource();
  audio.src = URL.createObjectURL(source);
  source.addEventListener('sourceopen', async () => {
    const buffer = source.addSourceBuffer(CODEC);
    // one timeline whatever the segments' times (a stream that jumped plays on)
    buffer.mode = 'sequence';
    const append = (data: ArrayBuffer) => new Promise<void>((done, fail) => {
      buffer.addEventListener('updateend', () => done(), { once: true });
      buffer.addEventListener('error', () => fail(new Error('append')), { once: true });
      buffer.appendBuffer(data);
    });
    let next = -1;
    while (!stopped) {
      const response = await fetch(`${playlist}?l=${listener}`).catch(() => null);
      if (!response?.ok) {
        if (response?.status === 404) break;
        await sleep(2000);
        continue;
      }
      const list = parsePlaylist(await response.text());
      if (next < 0) {
        const init = await fetch(dir + list.init).then((r) => r.arrayBuffer()).catch(() => null);
        if (!init) break;
        await append(init);
        // start near the live edge: a few seconds behind, as every HLS player does
        next = list.ended ? list.first : Math.max(list.first, list.first + list.names.length - 3);
      }
      for (let i = 0; i < list.names.length && !stopped; i++) {
        const sequence = list.first + i;
        if (sequence < next) continue;
        const data = await fetch(dir + list.names[i]).then((r) => (r.ok ? r.arrayBuffer() : null)).catch(() => null);
        next = sequence + 1;
        if (data) await append(data).catch(() => undefined);
      }
      // what was heard long ago is let go (memory stays bounded however long it runs)
      if (buffer.buffered.length && audio.currentTime > 90 && !buffer.updating) {
        await new Promise<void>((done) => {
          buffer.addEventListener('updateend', () => done(), { once: true });
          buffer.remove(0, audio.currentTime - 60);
        });
      }
      if (list.ended) {
        if (source.readyState === 'open' && !buffer.updating) source.endOfStream();
        break;
      }
      await sleep(1000);
    }
    if (!stopped) onEnd();
  }, { once: true });
  return () => {
    stopped = true;
    audio.pause();
  };
}

export function WatchPage() {
  const [t, lang, setLang] = usePublicLanguage();
  const key = window.location.pathname.split('/')[2] ?? '';
  const [info, setInfo] = useState<WatchInfo | null>(null);
  const [missing, setMissing] = useState(false);
  const [playlist, setPlaylist] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    const load = () => fetch(`/api/v1/watch/${key}`).then(async (r) => {
      if (!alive) return;
      if (r.status === 404) return setMissing(true);
      const data = (await r.json()) as WatchInfo;
      setInfo(data);
      const playlist = data.playlist;
      if (playlist) setPlaylist((p) => p ?? playlist);
    }, () => undefined);
    load();
    const timer = setInterval(load, 5000);
    return () => { alive = false; clearInterval(timer); };
  }, [key]);

  return (
    <PublicShell t={t} lang={lang} setLang={setLang} what={t('liveStream')}>
        {missing && <p className="error" data-testid="watch-missing">{t('noSuchStream')}</p>}
        {info && (
          <section className="card" data-testid="watch">
            <h2 data-testid="watch-title">{info.title}</h2>
            <p data-testid="watch-state">
              {info.state === 'live' ? <b className="recording-on">● {t('stream_live')}</b> : t.word('stream', info.state)}
              {info.state === 'scheduled' && info.starts_at ? ` · ${t('startsAt')} ${t.time(info.starts_at)}` : ''}
              {/* this page is one of them as soon as it plays (the count is taken every few seconds) */}
              {info.state === 'live' && ` · ${t('listeners')}: ${Math.max(info.listeners, playlist ? 1 : 0)}`}
            </p>
            {!playlist && info.password_required && info.state !== 'ended' && (
              <PasswordForm<{ playlist: string }> t={t} url={`/api/v1/watch/${key}`} prefix="watch" submit={t('watch')}
                onOpen={(a) => setPlaylist(a.playlist)} />
            )}
            {playlist && <Player t={t} playlist={playlist} waiting={info.state === 'scheduled'} />}
          </section>
        )}
    </PublicShell>
  );
}

function Player({ t, playlist, waiting }: { t: T; playlist: string; waiting: boolean }) {
  const audio = useRef<HTMLVideoElement>(null);
  const [playing, setPlaying] = useState(false);
  const [over, setOver] = useState(false);
  const [started, setStarted] = useState(false);
  useEffect(() => {
    const el = audio.current;
    if (!el || waiting || !started) return;
    const listener = Math.random().toString(36).slice(2, 14);
    (window as unknown as { conclaveWatch: unknown }).conclaveWatch = { audio: el };
    const onPlaying = () => setPlaying(true);
    el.addEventListener('playing', onPlaying);
    const stop = playLive(el, playlist, listener, () => setOver(true));
    void el.play().catch(() => undefined);
    return () => { el.removeEventListener('playing', onPlaying); stop(); };
  }, [playlist, waiting, started]);
  return (
    <div className="player">
      <video ref={audio} controls playsInline data-testid="watch-player" />
      {!started && !waiting && <button data-testid="watch-play" onClick={() => setStarted(true)}>▶ {t('listen')}</button>}
      {waiting && <p>{t('streamWaiting')}</p>}
      {playing && !over && <p data-testid="watch-playing">{t('nowPlaying')}</p>}
      {over && <p data-testid="watch-ended">{t('streamOver')}</p>}
    </div>
  );
}
