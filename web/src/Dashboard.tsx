import { useEffect, useState } from 'react';
import { api, asError } from './api';
import type { ClusterView, Status } from './api-schema';
import type { T } from './i18n';

/// Live resource status: what the tenant has going on now (and, for a system administrator,
/// what the server carries), refreshed every few seconds while the page is open.
export function Dashboard({ t, onOpenLive }: { t: T; onOpenLive: () => void }) {
  const [status, setStatus] = useState<Status | null>(null);
  const [error, setError] = useState('');
  const [at, setAt] = useState(0);
  const [cluster, setCluster] = useState<ClusterView | null>(null);
  const [tick, setTick] = useState(0);
  const isSystem = Boolean(status?.server);
  useEffect(() => {
    if (!isSystem) return;
    let alive = true;
    api<ClusterView>('GET', '/cluster').then((c) => alive && setCluster(c), () => {});
    return () => {
      alive = false;
    };
  }, [isSystem, at, tick]);
  const drain = (node: string, draining: boolean, move_meetings: boolean) =>
    api<ClusterView>('POST', `/cluster/nodes/${encodeURIComponent(node)}/drain`, { draining, move_meetings }).then(
      (c) => {
        setCluster(c);
        setTick((n) => n + 1);
      },
      (e) => setError(asError(e).message),
    );
  useEffect(() => {
    let alive = true;
    const load = () =>
      api<Status>('GET', '/status').then(
        (s) => {
          if (!alive) return;
          setStatus(s);
          setError('');
          setAt(Date.now());
        },
        (e) => alive && setError(asError(e).message),
      );
    load();
    const timer = setInterval(load, 3000);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, []);
  if (!status) return <section data-testid="page-dashboard">{error ? <p className="error" role="alert">{error}</p> : <p>{t('loading')}</p>}</section>;
  const card = (id: string, label: string, value: string | number, detail?: string) => (
    <div className="card" data-testid={`stat-${id}`}>
      <span className="value">{value}</span>
      <span className="label">{label}</span>
      {detail && <small>{detail}</small>}
    </div>
  );
  const c = status.calls;
  return (
    <section data-testid="page-dashboard">
      <h2>{t('dashboard')}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      <div className="cards">
        {card('meetings', t('liveMeetings'), status.live_meetings)}
        {card('people', t('peopleInMeetings'), status.members_in_meetings,
          `${t('dialIn')} ${c.dial_in} · ${t('calledByMeeting')} ${c.dial_out} · ${t('browser')} ${c.browser}`)}
        {card('ringing', t('ringingNow'), c.ringing)}
        {card('direct-calls', t('phoneCalls'), c.direct)}
        {card('rooms', t('roomsInUse'), `${status.rooms_in_use} / ${status.rooms}`)}
        {card('phones', t('phonesRegistered'), `${status.extensions_registered} / ${status.extensions}`)}
      </div>
      {status.server && (
        <>
          <h3>{t('serverLoad')}</h3>
          <div className="cards">
            {status.server.media_workers.map((w, i) => card(`worker-${i}`, `${t('mediaWorker')} ${i + 1} · ${t('members')}`, w.members, `${t('rooms')}: ${w.rooms}`))}
            {card('descriptors', t('descriptors'), `${status.server.descriptors_open} / ${status.server.descriptors_limit}`,
              t('descriptorsHint'))}
            {card('all-meetings', t('allLiveMeetings'), status.server.live_meetings)}
          </div>
        </>
      )}
      {cluster?.clustered && (
        <>
          <h3>{t('cluster')}</h3>
          <table data-testid="cluster-nodes">
            <thead>
              <tr><th>{t('clusterNode')}</th><th>{t('clusterAlive')}</th><th>{t('clusterLoad')}</th><th>{t('clusterRooms')}</th><th>{t('clusterDraining')}</th><th /></tr>
            </thead>
            <tbody>
              {cluster.nodes.map((n) => (
                <tr key={n.id} data-testid={`node-${n.id}`}>
                  <td>{n.id}{n.id === cluster.node ? ` (${t('clusterThisNode')})` : ''}<br /><small>{n.sip_uri}</small></td>
                  <td>{n.living ? t('yes') : t('clusterDown')}</td>
                  <td>{n.load}</td>
                  <td>{n.rooms}</td>
                  <td>{n.draining ? t('yes') : t('no')}</td>
                  <td className="actions">
                    {n.draining ? (
                      <button onClick={() => drain(n.id, false, false)}>{t('clusterResume')}</button>
                    ) : (
                      <>
                        <button onClick={() => drain(n.id, true, false)}>{t('clusterDrain')}</button>
                        <button onClick={() => drain(n.id, true, true)}>{t('clusterDrainMove')}</button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h3>{t('meetingsNow')}</h3>
      {status.meetings.length === 0 ? (
        <p className="empty">{t('noLiveMeetings')}</p>
      ) : (
        <table data-testid="meetings-now">
          <thead>
            <tr><th>{t('room')}</th><th>{t('members')}</th><th>{t('talkingNow')}</th><th>{t('lockedColumn')}</th><th /></tr>
          </thead>
          <tbody>
            {status.meetings.map((m) => (
              <tr key={m.room_id} data-testid={`now-${m.room_number}`}>
                <td>{m.room_number} · {m.room_name}</td>
                <td>{m.members}</td>
                <td>{m.talking}</td>
                <td>{m.locked ? t('yes') : t('no')}</td>
                <td className="actions"><button onClick={onOpenLive}>{t('open')}</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>{t('meetingsNext')}</h3>
      {status.next.length === 0 ? (
        <p className="empty">{t('noMeetingsNext')}</p>
      ) : (
        <table data-testid="meetings-next">
          <thead><tr><th>{t('name')}</th><th>{t('started')}</th><th>{t('ended')}</th></tr></thead>
          <tbody>
            {status.next.map((n) => (
              <tr key={`${n.booking_id}-${n.start_at}`} data-testid={`next-${n.name}`}>
                <td>{n.name}</td><td>{t.time(n.start_at)}</td><td>{t.time(n.end_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="updated"><small>{t('updatedAt')} {t.time(at)}</small></p>
    </section>
  );
}
