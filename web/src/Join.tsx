// Joining a meeting from a browser: /join, or /join/<number> as a link to share. The page
// asks for the number, the PIN when the room has one and a name, lets the user pick a
// microphone and a speaker, and is then in the meeting: the roster with who is talking, the
// member's own controls, and a chair's controls when the member's role allows them (the
// server's one permission check decides either way).

import { useEffect, useRef, useState } from 'react';
import { api, ApiError, session, type LiveMember, type User } from './api';
import type { Joined, Layout, MyMeeting, TileView } from './api-schema';
import { BrandMark, useBranding } from './Branding';
import { initialLang, translator, type Lang, type T } from './i18n';

type Media = { pc: RTCPeerConnection; mic: MediaStream; camera: MediaStream | null };

/// The layouts a chair chooses from, and how many tiles the page can receive (2+21).
const LAYOUTS = ['1', '4', '1+7', '1+21', '2+21'];
const TILES = 23;

/// The layout chooser (the meeting page, the console's live meeting, templates, bookings).
export function LayoutSelect({ t, value, testId, onChange }: {
  t: T; value: string; testId: string; onChange: (layout: string) => void;
}) {
  return (
    <select data-testid={testId} value={value} onChange={(e) => onChange(e.target.value)}>
      {LAYOUTS.map((l) => <option key={l} value={l}>{t.word('layout', l)}</option>)}
    </select>
  );
}
/// The camera's simulcast layers: the server sends each viewer the one its tile needs.
const CAMERA_LAYERS: RTCRtpEncodingParameters[] = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'h', maxBitrate: 1_500_000 },
];

/// VP8 and H.264 only (what the server forwards), which also keeps a 25-section offer small.
function preferCodecs(t: RTCRtpTransceiver) {
  const caps = RTCRtpReceiver.getCapabilities?.('video');
  if (!caps || !t.setCodecPreferences) return;
  const keep = caps.codecs.filter((c) => ['video/VP8', 'video/H264', 'video/rtx'].includes(c.mimeType)
    && (c.mimeType !== 'video/H264' || (c.sdpFmtpLine ?? '').includes('packetization-mode=1')));
  try { t.setCodecPreferences(keep); } catch { /* the browser's own order then */ }
}

/// The offer's sections, in the order the server reads them: audio, the camera (sent in
/// simulcast), the screen, then a receiving section per tile.
function addSections(pc: RTCPeerConnection, mic: MediaStream, camera: MediaStream | null) {
  for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
  const cam = pc.addTransceiver(camera?.getVideoTracks()[0] ?? 'video', { direction: 'sendonly', sendEncodings: CAMERA_LAYERS });
  preferCodecs(cam);
  preferCodecs(pc.addTransceiver('video', { direction: 'sendonly' }));
  for (let i = 0; i < TILES; i++) preferCodecs(pc.addTransceiver('video', { direction: 'recvonly' }));
}
type Quality = 'good' | 'fair' | 'poor' | 'unknown';

/// Requests as the member (the token the join gave, not a console login).
async function asMember<R>(token: string, method: string, path: string, body?: unknown): Promise<R> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return undefined as R;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.detail ?? response.statusText, data.errors ?? []);
  return data as R;
}

/// The last word of a problem's type: why the meeting refused (locked, full, wrong-pin...).
function refusalOf(err: unknown): string | null {
  return err instanceof ApiError && err.problemType ? err.problemType.split('/').pop() ?? null : null;
}

const CHAIR_ROLES = ['owner', 'manager', 'chairman'];

/// The number in /join/<number>.
function numberInPath(): string {
  const m = window.location.pathname.match(/^\/join\/(\d{1,32})\/?$/);
  return m ? m[1] : '';
}

export function JoinPage() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const t = translator(lang);
  const [branding] = useBranding(null);
  const [me, setMe] = useState<User | null>(null);
  const [joined, setJoined] = useState<{ joined: Joined } & Media | null>(null);
  const [left, setLeft] = useState<string | null>(null);
  // what the last join was, to join again by itself when the meeting moves (a cluster's
  // node stopped): the room's number, PIN and name
  const [last, setLast] = useState<{ number: string; pin: string; name: string } | null>(null);
  const [rejoin, setRejoin] = useState(0);

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
  return (
    <div className="join-page">
      <header className="join-header">
        <BrandMark t={t} branding={branding} />
        {switcher}
      </header>
      {branding.slogan && <p className="slogan">{branding.slogan}</p>}
      {joined ? (
        <InMeeting
          t={t}
          joined={joined.joined}
          pc={joined.pc}
          mic={joined.mic}
          camera={joined.camera}
          onLeft={(why, moved) => {
            joined.pc.close();
            joined.mic.getTracks().forEach((track) => track.stop());
            joined.camera?.getTracks().forEach((track) => track.stop());
            setJoined(null);
            setLeft(why);
            if (moved) setRejoin((n) => n + 1);
          }}
        />
      ) : (
        <JoinForm
          key={rejoin}
          t={t}
          me={me}
          left={left}
          last={rejoin > 0 ? last : null}
          onJoined={(j, asked) => { setLeft(null); setLast(asked); setJoined(j); }}
        />
      )}
    </div>
  );
}

function JoinForm({ t, me, left, last, onJoined }: {
  t: T; me: User | null; left: string | null;
  /// Set: join this meeting again at once (it moved), trying for a while.
  last: { number: string; pin: string; name: string } | null;
  onJoined: (j: { joined: Joined } & Media, asked: { number: string; pin: string; name: string }) => void;
}) {
  const [number, setNumber] = useState(() => last?.number ?? numberInPath());
  const [pin, setPin] = useState(() => last?.pin ?? '');
  // the name given last time on this device (a guest should not type it at every meeting)
  const [name, setName] = useState(() => last?.name ?? localStorage.getItem('conclave.joinName') ?? '');
  const [mics, setMics] = useState<MediaDeviceInfo[]>([]);
  const [mic, setMic] = useState('');
  const [withCamera, setWithCamera] = useState(() => localStorage.getItem('conclave.joinCamera') !== 'off');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [invalid, setInvalid] = useState<Record<string, string>>({});

  useEffect(() => {
    navigator.mediaDevices?.enumerateDevices().then(
      (devices) => setMics(devices.filter((d) => d.kind === 'audioinput' && d.deviceId)),
      () => setMics([]),
    );
  }, []);

  // the meeting moved: joined again, every 2 s for half a minute while its new home is found
  useEffect(() => {
    if (!last) return;
    let cancelled = false;
    let tries = 0;
    const attempt = async () => {
      if (cancelled) return;
      const ok = await join();
      if (!ok && !cancelled && ++tries < 15) window.setTimeout(() => void attempt(), 2000);
    };
    void attempt();
    return () => { cancelled = true; };
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  const join = async (): Promise<boolean> => {
    const problems: Record<string, string> = {};
    if (!/^\d{1,32}$/.test(number.trim())) problems.number = t('joinNumberInvalid');
    if (!me && !name.trim()) problems.name = t('joinNameRequired');
    setInvalid(problems);
    if (Object.keys(problems).length) return false;
    setBusy(true);
    setError(null);
    let stream: MediaStream | null = null;
    let camera: MediaStream | null = null;
    let pc: RTCPeerConnection | null = null;
    try {
      if (!navigator.mediaDevices) throw new Error(t('joinNeedsSecureContext'));
      stream = await navigator.mediaDevices.getUserMedia({ audio: mic ? { deviceId: { exact: mic } } : true });
      // without a camera (or its permission) the member still sees the others
      if (withCamera) camera = await navigator.mediaDevices.getUserMedia({ video: true }).catch(() => null);
      pc = new RTCPeerConnection();
      addSections(pc, stream, camera);
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const body = { number: number.trim(), pin: pin.trim() || undefined, name: name.trim() || undefined, sdp: offer.sdp };
      // a console login that has expired meanwhile is dropped (api() forgets it): join as a guest
      const joined = await api<Joined>('POST', '/join', body).catch((err) => {
        if (err instanceof ApiError && err.status === 401 && body.name) return api<Joined>('POST', '/join', body);
        throw err;
      });
      await pc.setRemoteDescription({ type: 'answer', sdp: joined.sdp });
      if (name.trim()) localStorage.setItem('conclave.joinName', name.trim());
      localStorage.setItem('conclave.joinCamera', withCamera ? 'on' : 'off');
      onJoined({ joined, pc, mic: stream, camera }, { number: number.trim(), pin: pin.trim(), name: name.trim() });
      return true;
    } catch (err) {
      pc?.close();
      stream?.getTracks().forEach((track) => track.stop());
      camera?.getTracks().forEach((track) => track.stop());
      const why = refusalOf(err);
      if (err instanceof DOMException && (err.name === 'NotAllowedError' || err.name === 'SecurityError')) setError(t('joinMicDenied'));
      else if (why && t.known(`joinRefused_${why}`)) setError(t.word('joinRefused', why));
      else if (err instanceof ApiError && err.status === 404) setError(t('joinNoSuchMeeting'));
      else setError(err instanceof Error ? err.message : String(err));
      return false;
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      className="join-form card"
      data-testid="join-form"
      onSubmit={(e) => { e.preventDefault(); void join(); }}
    >
      <h1>{t('joinTitle')}</h1>
      {left !== null && <p className="notice" data-testid="join-left">{left || t('joinYouLeft')}</p>}
      <label>
        {t('joinNumber')}
        <input data-testid="join-number" inputMode="numeric" autoComplete="off" value={number} onChange={(e) => setNumber(e.target.value)} />
        {invalid.number && <span className="field-error">{invalid.number}</span>}
      </label>
      <label>
        {t('joinPin')}
        <input data-testid="join-pin" inputMode="numeric" type="password" autoComplete="off" value={pin} onChange={(e) => setPin(e.target.value)} placeholder={t('joinPinHint')} />
      </label>
      <label>
        {t('joinName')}
        <input data-testid="join-name" value={name} maxLength={64} onChange={(e) => setName(e.target.value)} placeholder={me ? me.display_name : ''} />
        {invalid.name && <span className="field-error">{invalid.name}</span>}
      </label>
      {mics.length > 1 && (
        <label>
          {t('joinMicrophone')}
          <select data-testid="join-mic" value={mic} onChange={(e) => setMic(e.target.value)}>
            <option value="">{t('joinDefaultDevice')}</option>
            {mics.map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `${t('joinMicrophone')} ${i + 1}`}</option>)}
          </select>
        </label>
      )}
      <label className="check">
        <input type="checkbox" data-testid="join-camera" checked={withCamera} onChange={(e) => setWithCamera(e.target.checked)} />
        {t('joinWithCamera')}
      </label>
      {error && <p className="error" data-testid="join-error">{error}</p>}
      <button type="submit" className="primary big" data-testid="join-submit" disabled={busy}>
        {busy ? t('joinJoining') : t('joinButton')}
      </button>
      {me && <p className="hint">{t('joinAs')} {me.display_name}</p>}
    </form>
  );
}

function InMeeting({ t, joined, pc, mic, camera: initialCamera, onLeft }: {
  t: T; joined: Joined; onLeft: (why: string, moved?: boolean) => void;
} & Media) {
  const [camera, setCamera] = useState<MediaStream | null>(initialCamera);
  const [screen, setScreen] = useState<MediaStream | null>(null);
  // our whiteboard, while we present one (it goes out as our shared screen)
  const [board, setBoard] = useState<Board | null>(null);
  // the WebSocket's handler draws a chair's strokes on it
  const boardRef = useRef<Board | null>(null);
  boardRef.current = board;
  // the pen a chair draws with on someone else's whiteboard
  const [pen, setPen] = useState(0);
  const audio = useRef<HTMLAudioElement>(null);
  const [meeting, setMeeting] = useState<MyMeeting | null>(null);
  const [level, setLevel] = useState(0);
  const [quality, setQuality] = useState<Quality>('unknown');
  const [error, setError] = useState<string | null>(null);
  const [speakers, setSpeakers] = useState<MediaDeviceInfo[]>([]);
  const [speaker, setSpeaker] = useState('');
  const token = joined.token;

  // what the others say: the remote track plays in the page
  useEffect(() => {
    const remote = new MediaStream();
    const play = () => {
      if (audio.current) {
        audio.current.srcObject = remote;
        void audio.current.play().catch(() => undefined);
      }
    };
    pc.ontrack = (e) => { remote.addTrack(e.track); play(); };
    for (const r of pc.getReceivers()) if (r.track) remote.addTrack(r.track);
    play();
    // After a network change (Wi-Fi to mobile, a VPN): an ICE restart on the same session,
    // without leaving the meeting. Once at a time; tried again while the link stays down.
    let restarting = false;
    let lostTimer: number | undefined;
    const restart = async () => {
      if (restarting || pc.signalingState === 'closed') return;
      restarting = true;
      try {
        const offer = await pc.createOffer({ iceRestart: true });
        await pc.setLocalDescription(offer);
        const answer = await asMember<{ sdp: string }>(token, 'POST', '/join/me/offer', { sdp: offer.sdp });
        await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      } catch {
        // the roster's poll tells when the meeting has let us go; otherwise the next loss retries
      } finally {
        restarting = false;
      }
    };
    pc.oniceconnectionstatechange = () => {
      window.clearTimeout(lostTimer);
      if (pc.iceConnectionState === 'failed') void restart();
      if (pc.iceConnectionState === 'disconnected') lostTimer = window.setTimeout(() => void restart(), 2000);
      if (pc.iceConnectionState === 'failed' || pc.iceConnectionState === 'disconnected') setQuality('poor');
    };
    const online = () => void restart();
    window.addEventListener('online', online);
    // for tests and troubleshooting: the connection, what it receives, and a restart
    (window as unknown as { conclaveJoin: unknown }).conclaveJoin = { pc, remote, mic, member: joined.member_id, token, restart, tiles: tileStreams(pc) };
    return () => { window.removeEventListener('online', online); window.clearTimeout(lostTimer); };
  }, [pc, mic, joined.member_id, token]);

  // the roster, live: pushed over a WebSocket (`/join/me/events`) as the meeting changes; its
  // close code 4401, or a 401 from `/join/me`, means the meeting let us go (removed, ended).
  // While the stream is down the page asks once and opens it again two seconds later (in a
  // cluster, the meeting's node out of reach three times running — 502/503/504 — means it
  // stopped: the meeting goes on on another, joined again).
  useEffect(() => {
    let stopped = false;
    let unreachable = 0;
    let socket: WebSocket | null = null;
    let retry: number | undefined;
    const poll = async () => {
      try {
        const m = await asMember<MyMeeting>(token, 'GET', '/join/me');
        unreachable = 0;
        if (!stopped) setMeeting(m);
      } catch (err) {
        if (stopped || !(err instanceof ApiError)) return;
        if (err.status === 401) onLeft(t('joinMeetingOver'));
        else if ([502, 503, 504].includes(err.status) && ++unreachable >= 3) {
          stopped = true;
          onLeft(t('joinMeetingMoved'), true);
        }
      }
    };
    const connect = () => {
      if (stopped) return;
      const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
      const stream = new WebSocket(`${scheme}://${window.location.host}/api/v1/join/me/events?access_token=${encodeURIComponent(token)}`);
      socket = stream;
      stream.onmessage = (message) => {
        try {
          const m = JSON.parse(String(message.data)) as MyMeeting | { stroke: Stroke };
          if ('stroke' in m) {
            // a chair drew on our whiteboard: it goes on the board, and out with it
            if (boardRef.current) drawStroke(boardRef.current.canvas, m.stroke);
            return;
          }
          unreachable = 0;
          if (!stopped) setMeeting(m);
        } catch {
          // not a roster: ignored
        }
      };
      stream.onclose = (closed) => {
        if (stopped) return;
        if (closed.code === 4401) {
          stopped = true;
          onLeft(t('joinMeetingOver'));
          return;
        }
        void poll();
        retry = window.setTimeout(connect, 2000);
      };
    };
    connect();
    return () => { stopped = true; window.clearTimeout(retry); socket?.close(); };
  }, [token]); // eslint-disable-line react-hooks/exhaustive-deps

  // the microphone's level
  useEffect(() => {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(mic).connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    const timer = window.setInterval(() => {
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const v of data) sum += v * v;
      setLevel(Math.min(1, Math.sqrt(sum / data.length) * 4));
    }, 100);
    return () => { window.clearInterval(timer); void context.close(); };
  }, [mic]);

  // network quality, from what the browser measures of our stream to it
  useEffect(() => {
    const timer = window.setInterval(async () => {
      const stats = await pc.getStats();
      let lost = 0, received = 0, jitter = 0, rtt: number | null = null;
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') { lost += s.packetsLost ?? 0; received += s.packetsReceived ?? 0; jitter = s.jitter ?? 0; }
        if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
      });
      if (received === 0) { setQuality('unknown'); return; }
      const loss = lost / (lost + received);
      const bad = loss > 0.05 || jitter > 0.06 || (rtt ?? 0) > 0.4;
      const fair = loss > 0.01 || jitter > 0.03 || (rtt ?? 0) > 0.2;
      setQuality(bad ? 'poor' : fair ? 'fair' : 'good');
    }, 2000);
    return () => window.clearInterval(timer);
  }, [pc]);

  useEffect(() => {
    navigator.mediaDevices?.enumerateDevices().then(
      (devices) => setSpeakers(devices.filter((d) => d.kind === 'audiooutput' && d.deviceId)),
      () => setSpeakers([]),
    );
  }, []);

  const act = async (action: string | Record<string, unknown>, member?: number) => {
    setError(null);
    try {
      const body = typeof action !== 'string' ? action : member === undefined ? { action } : { action, member };
      await asMember(token, 'POST', '/join/me/actions', body);
      setMeeting(await asMember<MyMeeting>(token, 'GET', '/join/me'));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const leave = async () => {
    await asMember(token, 'DELETE', '/join/me').catch(() => undefined);
    onLeft(t('joinYouLeft'));
  };
  const pickSpeaker = (id: string) => {
    setSpeaker(id);
    const el = audio.current as (HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> }) | null;
    void el?.setSinkId?.(id).catch(() => undefined);
  };

  const senders = pc.getTransceivers().filter((x) => x.receiver.track.kind === 'video');
  const toggleCamera = async () => {
    setError(null);
    if (camera) {
      camera.getTracks().forEach((track) => track.stop());
      await senders[0]?.sender.replaceTrack(null);
      setCamera(null);
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      await senders[0]?.sender.replaceTrack(stream.getVideoTracks()[0]);
      setCamera(stream);
    } catch {
      setError(t('joinCameraDenied'));
    }
  };
  const stopShare = async (tell: boolean) => {
    screen?.getTracks().forEach((track) => track.stop());
    if (board) window.clearInterval(board.keepAlive);
    setBoard(null);
    await senders[1]?.sender.replaceTrack(null);
    setScreen(null);
    if (tell) await act('stop_share');
  };
  /// A whiteboard: a canvas we draw on, sent as our shared screen — everyone sees it large,
  /// and so do SIP video terminals, recordings and streams (the composer draws it like any
  /// share).
  const whiteboard = async () => {
    setError(null);
    if (screen) return stopShare(true);
    const canvas = document.createElement('canvas');
    canvas.width = 1280;
    canvas.height = 720;
    canvas.className = 'whiteboard-canvas';
    canvas.dataset.testid = 'whiteboard-canvas';
    const g = canvas.getContext('2d');
    if (!g) return;
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, canvas.width, canvas.height);
    const stream = canvas.captureStream(15);
    const track = stream.getVideoTracks()[0];
    // a canvas sends frames only when it changes: a stroke nobody sees changes it a little,
    // so that a still board keeps its tile
    const keepAlive = window.setInterval(() => {
      const tick = Date.now() & 1;
      g.fillStyle = tick ? '#ffffff' : '#fefefe';
      g.fillRect(canvas.width - 1, canvas.height - 1, 1, 1);
    }, 200);
    try {
      await asMember(token, 'POST', '/join/me/actions', { action: 'start_share', board: true });
      await senders[1]?.sender.replaceTrack(track);
      setBoard({ canvas, keepAlive, pen: { current: PENS[0] } });
      setScreen(stream);
    } catch (err) {
      window.clearInterval(keepAlive);
      track.stop();
      setError(err instanceof ApiError ? err.message : t('joinShareDenied'));
    }
  };
  const share = async () => {
    setError(null);
    if (screen) return stopShare(true);
    let stream: MediaStream | null = null;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0];
      // the meeting decides first (a chair may keep sharing to chairs)
      await asMember(token, 'POST', '/join/me/actions', { action: 'start_share' });
      await senders[1]?.sender.replaceTrack(track);
      track.onended = () => void stopShare(true);
      setScreen(stream);
    } catch (err) {
      stream?.getTracks().forEach((track) => track.stop());
      setError(err instanceof ApiError ? err.message : t('joinShareDenied'));
    }
  };
  // a chair ended our share: stop sending it
  useEffect(() => {
    if (screen && meeting && meeting.layout.sharer !== meeting.member_id) void stopShare(false);
  }, [meeting?.layout.sharer]); // eslint-disable-line react-hooks/exhaustive-deps
  const chairAct = (body: Record<string, unknown>) => act(body);

  const self = meeting?.members.find((m) => m.id === meeting.member_id);
  const chair = !!self && CHAIR_ROLES.includes(self.role);
  const nameOf = (id: number | null) => {
    const m = meeting?.members.find((x) => x.id === id);
    return m ? m.name || m.number : '';
  };
  return (
    <section className="in-meeting" data-testid="in-meeting">
      <audio ref={audio} autoPlay data-testid="join-audio" />
      <h1>
        {joined.room_name} <small>{joined.room_number}</small>
        {meeting?.locked && <span className="badge" data-testid="join-locked">{t('locked')}</span>}
      </h1>
      <div className="self-bar">
        <div className="meter" title={t('joinLevel')}><div className="meter-fill" data-testid="join-level" data-level={level.toFixed(2)} style={{ width: `${Math.round(level * 100)}%` }} /></div>
        <span className={`quality quality-${quality}`} data-testid="join-quality">{t(`joinQuality_${quality}`)}</span>
        {self && (
          <>
            <button
              className="big"
              data-testid="join-mute"
              disabled={self.muted && !self.may_speak}
              onClick={() => act(self.muted ? 'unmute' : 'mute')}
            >
              {self.muted ? t('joinUnmute') : t('joinMute')}
            </button>
            <button className="big" data-testid="join-hand" onClick={() => act(self.hand_raised ? 'lower_hand' : 'raise_hand')}>
              {self.hand_raised ? t('joinLowerHand') : t('joinRaiseHand')}
            </button>
          </>
        )}
        <button className="big" data-testid="join-camera-toggle" onClick={() => void toggleCamera()}>
          {camera ? t('joinCameraOff') : t('joinCameraOn')}
        </button>
        {navigator.mediaDevices?.getDisplayMedia !== undefined && (
          <button className="big" data-testid="join-share" disabled={!!board} onClick={() => void share()}>
            {screen && !board ? t('joinStopShare') : t('joinShare')}
          </button>
        )}
        {typeof HTMLCanvasElement.prototype.captureStream === 'function' && (
          <button className="big" data-testid="join-whiteboard" disabled={!!screen && !board} onClick={() => void whiteboard()}>
            {board ? t('joinCloseWhiteboard') : t('joinWhiteboard')}
          </button>
        )}
        <button className="big danger" data-testid="join-leave" onClick={leave}>{t('joinLeave')}</button>
      </div>
      {board && <WhiteboardTools t={t} board={board} />}
      {!board && chair && meeting?.layout.board && (
        <div className="whiteboard-tools" data-testid="whiteboard-draw">
          <span>{t('whiteboardDrawOn')}</span>
          <Pens t={t} pen={PENS[pen]} choose={(p) => setPen(PENS.indexOf(p))} />
        </div>
      )}
      {meeting && (
        <Tiles
          t={t}
          pc={pc}
          meeting={meeting}
          camera={camera}
          screen={screen}
          board={board}
          nameOf={nameOf}
          draw={chair && meeting.layout.board ? (points) => void asMember(token, 'POST', '/join/me/actions', { action: 'draw', stroke: { pen, points } }).catch(() => undefined) : null}
          pen={PENS[pen]}
        />
      )}
      {self && !self.may_speak && <p className="notice">{t('joinForbidden')}</p>}
      {speakers.length > 1 && (
        <label>
          {t('joinSpeaker')}
          <select value={speaker} onChange={(e) => pickSpeaker(e.target.value)}>
            <option value="">{t('joinDefaultDevice')}</option>
            {speakers.map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `${t('joinSpeaker')} ${i + 1}`}</option>)}
          </select>
        </label>
      )}
      {error && <p className="error" data-testid="join-action-error">{error}</p>}
      {chair && meeting && (
        <div className="chair-bar">
          <button onClick={() => act(meeting.locked ? 'unlock' : 'lock')} data-testid="join-lock">{meeting.locked ? t('unlock') : t('lock')}</button>
          <button onClick={() => act('mute_all')}>{t('muteAll')}</button>
          <label>
            {t('layout')}
            <LayoutSelect t={t} testId="join-layout" value={meeting.layout.kind} onChange={(layout) => void chairAct({ action: 'set_layout', layout })} />
          </label>
          <label className="check">
            <input
              type="checkbox"
              data-testid="join-polling"
              checked={!!meeting.layout.polling}
              onChange={(e) => void chairAct(e.target.checked
                ? { action: 'set_polling', tiles: [meeting.tiles.length - 1], interval_secs: 10 }
                : { action: 'set_polling', tiles: [], interval_secs: 10 })}
            />
            {t('pollingLastTile')}
          </label>
          {meeting.layout.sharer !== null && meeting.layout.sharer !== meeting.member_id && (
            <button data-testid="join-stop-share" onClick={() => act('stop_share')}>{t('stopShare')}</button>
          )}
        </div>
      )}
      <ul className="roster" data-testid="join-roster">
        {meeting?.members.map((m) => (
          <li key={m.id} data-testid={`join-member-${m.id}`} className={m.talking ? 'talking' : ''}>
            <span className="name">{m.name || m.number}</span>
            {m.id === meeting.member_id && <small> ({t('joinYou')})</small>}
            <small className="role"> {t.word('role', m.role)}</small>
            {m.talking && <span className="badge talking-badge">{t('talking')}</span>}
            {m.muted && <span className="badge">{t('muted')}</span>}
            {m.hand_raised && <span className="badge" data-testid={`join-hand-${m.id}`}>✋</span>}
            {chair && m.id !== meeting.member_id && (
              <span className="actions">
                <button data-testid={`join-mute-${m.id}`} onClick={() => act(m.muted ? 'unmute_member' : 'mute_member', m.id)}>{m.muted ? t('unmute') : t('mute')}</button>
                <button data-testid={`join-pin-${m.id}`} onClick={() => {
                  const pinned = Object.entries(meeting.layout.pins).find(([, id]) => id === m.id);
                  void chairAct(pinned ? { action: 'unpin', tile: Number(pinned[0]) } : { action: 'pin', member: m.id, tile: 0 });
                }}>
                  {Object.values(meeting.layout.pins).includes(m.id) ? t('unpin') : t('pinBig')}
                </button>
                <button className="danger" data-testid={`join-remove-${m.id}`} onClick={() => act('remove_member', m.id)}>{t('remove')}</button>
              </span>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

/// The streams of the receiving sections: tile i is the i-th.
function tileStreams(pc: RTCPeerConnection): MediaStream[] {
  return pc.getTransceivers()
    .filter((x) => x.receiver.track.kind === 'video' && x.direction === 'recvonly')
    .map((x) => new MediaStream([x.receiver.track]));
}

/// The meeting's layout as the chair chose it: each tile the server fills (the member's own
/// tile is its camera's preview, or its screen when it shares).
function Tiles({ t, pc, meeting, camera, screen, board, nameOf, draw, pen }: {
  t: T; pc: RTCPeerConnection; meeting: MyMeeting; camera: MediaStream | null; screen: MediaStream | null;
  board: Board | null; nameOf: (id: number | null) => string;
  /// A chair's strokes on the whiteboard someone else presents (null: not ours to draw on).
  draw: ((points: [number, number][]) => void) | null; pen: string;
}) {
  const [streams] = useState(() => tileStreams(pc));
  return (
    <div className={`tiles layout-${meeting.layout.kind.replace('+', 'p')}`} data-testid="join-tiles" data-layout={meeting.layout.kind}>
      {meeting.tiles.map((tile, i) => {
        const own = tile.member === meeting.member_id;
        const stream = own ? (tile.screen ? screen : camera) : streams[i] ?? null;
        return (
          <figure
            key={i}
            className={`tile tile-${tile.size}${tile.screen ? ' tile-screen' : ''}`}
            data-testid={`join-tile-${i}`}
            data-member={tile.member ?? ''}
            data-screen={tile.screen ? 'yes' : 'no'}
            data-polled={tile.polled ? 'yes' : 'no'}
          >
            {own && tile.screen && board ? (
              <WhiteboardSurface board={board} />
            ) : (
              tile.member !== null && <TileVideo stream={stream} mirror={own && !tile.screen} />
            )}
            {!own && tile.screen && draw && <DrawOver send={draw} pen={pen} />}
            {tile.member !== null && (
              <figcaption>
                {`${nameOf(tile.member ?? null)}${own ? ` (${t('joinYou')})` : ''}`}
                {tile.screen && ` · ${t('sharedScreen')}`}
                {tile.polled && ' ⟳'}
              </figcaption>
            )}
          </figure>
        );
      })}
    </div>
  );
}

/// Our whiteboard while we present it.
type Board = { canvas: HTMLCanvasElement; keepAlive: number; pen: { current: string } };

const PENS = ['#111111', '#d93025', '#1a73e8'];

/// The presenter's whiteboard tools: a pen's colour, and Clear to start again.
function WhiteboardTools({ t, board }: { t: T; board: Board }) {
  const [pen, setPen] = useState(board.pen.current);
  const choose = (p: string) => {
    board.pen.current = p;
    setPen(p);
  };
  return (
    <div className="whiteboard-tools" data-testid="whiteboard">
      <Pens t={t} pen={pen} choose={choose} />
      <button data-testid="whiteboard-clear" onClick={() => clearBoard(board)}>{t('whiteboardClear')}</button>
    </div>
  );
}

function clearBoard(board: Board) {
  const g = board.canvas.getContext('2d');
  if (!g) return;
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, board.canvas.width, board.canvas.height);
}

function Pens({ t, pen, choose }: { t: T; pen: string; choose: (p: string) => void }) {
  return (
    <>
      {PENS.map((p, i) => (
        <button key={p} data-testid={`whiteboard-pen-${i}`} aria-pressed={pen === p} title={t.word('whiteboardPen', i)}
          aria-label={t.word('whiteboardPen', i)} style={{ background: p }} className="pen" onClick={() => choose(p)} />
      ))}
    </>
  );
}

/// A stroke as the server carries it: a pen and points 0–10000 across the board.
type Stroke = { pen: number; points: [number, number][] };
const SCALE = 10000;
const LINE = 16;

/// Draws a chair's stroke on our board (the presenter's page).
function drawStroke(canvas: HTMLCanvasElement, stroke: Stroke) {
  const g = canvas.getContext('2d');
  const colour = PENS[stroke.pen];
  if (!g || !colour || stroke.points.length === 0) return;
  const at = ([x, y]: [number, number]): [number, number] => [(x / SCALE) * canvas.width, (y / SCALE) * canvas.height];
  g.strokeStyle = colour;
  g.lineWidth = LINE;
  g.lineCap = 'round';
  g.lineJoin = 'round';
  g.beginPath();
  g.moveTo(...at(stroke.points[0]));
  for (const p of stroke.points.length > 1 ? stroke.points.slice(1) : stroke.points) g.lineTo(...at(p));
  g.stroke();
}

/// A chair draws on the whiteboard someone else presents: the pointer's path over the
/// board's picture goes to the meeting as strokes (every 100 ms while drawing), the
/// presenter's page draws them, and everyone sees them in the board's picture. Shown here at
/// once too, until the picture brings them back.
function DrawOver({ send, pen }: { send: (points: [number, number][]) => void; pen: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const penRef = useRef(pen);
  penRef.current = pen;
  const sendRef = useRef(send);
  sendRef.current = send;
  useEffect(() => {
    const canvas = ref.current;
    const video = canvas?.parentElement?.querySelector('video');
    if (!canvas) return;
    const g = canvas.getContext('2d');
    let path: [number, number][] = [];
    let drawing = false;
    let flush: number | undefined;
    let fade: number | undefined;
    // the board's picture inside the tile (the video is letterboxed: object-fit contain)
    const picture = () => {
      const r = canvas.getBoundingClientRect();
      const vw = video?.videoWidth || 16, vh = video?.videoHeight || 9;
      const scale = Math.min(r.width / vw, r.height / vh);
      const w = vw * scale, h = vh * scale;
      return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, w, h, r };
    };
    const at = (e: PointerEvent): [number, number] => {
      const p = picture();
      const clamp = (v: number) => Math.max(0, Math.min(SCALE, Math.round(v)));
      return [clamp(((e.clientX - p.left) / p.w) * SCALE), clamp(((e.clientY - p.top) / p.h) * SCALE)];
    };
    const echo = (from: [number, number], to: [number, number]) => {
      if (!g) return;
      const p = picture();
      const px = ([x, y]: [number, number]): [number, number] => [p.left - p.r.left + (x / SCALE) * p.w, p.top - p.r.top + (y / SCALE) * p.h];
      g.strokeStyle = penRef.current;
      g.lineWidth = Math.max(2, (LINE * p.w) / 1280);
      g.lineCap = 'round';
      g.beginPath();
      g.moveTo(...px(from));
      g.lineTo(...px(to));
      g.stroke();
    };
    const send = () => {
      if (path.length > 1 || (!drawing && path.length === 1)) sendRef.current(path);
      // the next piece starts where this one ended, so the line has no gap
      path = path.length > 0 && drawing ? [path[path.length - 1]] : [];
    };
    const down = (e: PointerEvent) => {
      canvas.setPointerCapture?.(e.pointerId);
      window.clearTimeout(fade);
      const r = canvas.getBoundingClientRect();
      canvas.width = Math.round(r.width);
      canvas.height = Math.round(r.height);
      drawing = true;
      path = [at(e)];
      flush = window.setInterval(send, 100);
    };
    const move = (e: PointerEvent) => {
      if (!drawing) return;
      const next = at(e);
      const last = path[path.length - 1];
      if (last) echo(last, next);
      path.push(next);
      if (path.length >= 200) send();
    };
    const up = () => {
      if (!drawing) return;
      drawing = false;
      window.clearInterval(flush);
      send();
      // the board's picture shows the line by now
      fade = window.setTimeout(() => g?.clearRect(0, 0, canvas.width, canvas.height), 1500);
    };
    canvas.addEventListener('pointerdown', down);
    canvas.addEventListener('pointermove', move);
    canvas.addEventListener('pointerup', up);
    canvas.addEventListener('pointerleave', up);
    return () => {
      window.clearInterval(flush);
      window.clearTimeout(fade);
      canvas.removeEventListener('pointerdown', down);
      canvas.removeEventListener('pointermove', move);
      canvas.removeEventListener('pointerup', up);
      canvas.removeEventListener('pointerleave', up);
    };
  }, []);
  return <canvas ref={ref} className="draw-over" data-testid="whiteboard-draw-over" />;
}

/// The whiteboard itself, in the presenter's own large tile: drawn on with the pointer
/// (mouse, pen, finger) in the chosen pen's colour.
function WhiteboardSurface({ board }: { board: Board }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const canvas = board.canvas;
    host.current?.appendChild(canvas);
    const g = canvas.getContext('2d');
    let last: [number, number] | null = null;
    const at = (e: PointerEvent): [number, number] => {
      const r = canvas.getBoundingClientRect();
      return [((e.clientX - r.left) / r.width) * canvas.width, ((e.clientY - r.top) / r.height) * canvas.height];
    };
    const down = (e: PointerEvent) => {
      canvas.setPointerCapture?.(e.pointerId);
      last = at(e);
    };
    const move = (e: PointerEvent) => {
      if (!last || !g) return;
      const next = at(e);
      g.strokeStyle = board.pen.current;
      g.lineWidth = 16;
      g.lineCap = 'round';
      g.beginPath();
      g.moveTo(...last);
      g.lineTo(...next);
      g.stroke();
      last = next;
    };
    const up = () => { last = null; };
    canvas.addEventListener('pointerdown', down);
    canvas.addEventListener('pointermove', move);
    canvas.addEventListener('pointerup', up);
    canvas.addEventListener('pointerleave', up);
    return () => {
      canvas.removeEventListener('pointerdown', down);
      canvas.removeEventListener('pointermove', move);
      canvas.removeEventListener('pointerup', up);
      canvas.removeEventListener('pointerleave', up);
      canvas.remove();
    };
  }, [board]);
  return <div ref={host} className="whiteboard-surface" />;
}

function TileVideo({ stream, mirror }: { stream: MediaStream | null; mirror: boolean }) {
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (video.current && video.current.srcObject !== stream) {
      video.current.srcObject = stream;
      if (stream) void video.current.play().catch(() => undefined);
    }
  }, [stream]);
  return <video ref={video} autoPlay playsInline muted className={mirror ? 'mirror' : ''} />;
}
