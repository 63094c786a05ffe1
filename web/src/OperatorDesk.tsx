import { useEffect, useState } from 'react';
import { all, type LiveConference, type Member, type Room } from './api';
import type { T } from './i18n';
import { AdHocStart } from './RoomEditor';

/// The operator desk: phones calling each other by extension (a caller ringing the operator,
/// say), each with who calls whom. "Start a meeting for this caller" opens an ad-hoc start
/// already listing the caller; the operator picks a room and adds people, and the server
/// ends the call and calls everyone, the caller too.
export function DirectCalls({ t, calls, onChange, hangUp }: {
  t: T; calls: LiveConference[]; onChange: () => void; hangUp: (roomId: string) => void;
}) {
  const [forCall, setForCall] = useState<LiveConference | null>(null);
  // the call being made a meeting may have ended meanwhile (the caller hung up)
  const open = forCall && calls.find((c) => c.room_id === forCall.room_id);
  if (calls.length === 0 && !open) return null;
  return (
    <section className="direct-calls" data-testid="direct-calls" aria-label={t('phoneCalls')}>
      <h3>{t('phoneCalls')}</h3>
      <table>
        <thead>
          <tr>
            <th>{t('caller')}</th><th>{t('called')}</th><th>{t('status')}</th><th />
          </tr>
        </thead>
        <tbody>
          {calls.map((c) => c.call && (
            <tr key={c.room_id} data-testid={`direct-call-${c.call.caller_number}`}>
              <td>{c.call.caller_name} ({c.call.caller_number})</td>
              <td>{c.call.callee_name} ({c.call.callee_number})</td>
              <td data-testid="direct-call-state">{t.word('call', c.call.state)}</td>
              <td className="actions">
                <button className="primary" data-testid={`meeting-for-${c.call.caller_number}`} onClick={() => setForCall(c)}>
                  {t('meetingForCaller')}
                </button>
                <button data-testid={`hang-up-${c.call.caller_number}`} onClick={() => hangUp(c.room_id)}>{t('hangUp')}</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && open.call && (
        <MeetingForCaller
          key={open.room_id}
          t={t}
          call={open}
          onClose={() => setForCall(null)}
          onStarted={() => {
            setForCall(null);
            onChange();
          }}
        />
      )}
    </section>
  );
}

function MeetingForCaller({ t, call, onClose, onStarted }: {
  t: T; call: LiveConference; onClose: () => void; onStarted: () => void;
}) {
  const [rooms, setRooms] = useState<Room[]>([]);
  const [roomId, setRoomId] = useState('');
  useEffect(() => {
    all<Room>('/rooms').then(setRooms, () => setRooms([]));
  }, []);
  const room = rooms.find((r) => r.id === roomId);
  const caller: Member[] = call.call
    ? [{ kind: 'user', user_id: call.call.caller_user_id, display_name: call.call.caller_name, role: 'member' }]
    : [];
  return (
    <div className="editor" data-testid="meeting-for-caller">
      <p className="hint">{t('meetingForCallerHint')}</p>
      <label>
        {t('room')}{' '}
        <select data-testid="meeting-for-caller-room" value={roomId} onChange={(e) => setRoomId(e.target.value)}>
          <option value="">{t('chooseRoom')}</option>
          {rooms.map((r) => (
            <option key={r.id} value={r.id}>{r.number} · {r.name}</option>
          ))}
        </select>
      </label>
      {room ? (
        <AdHocStart key={room.id} t={t} room={room} initial={caller} replacesCall={call.room_id} onClose={onClose} onStarted={onStarted} />
      ) : (
        <div className="editor-actions">
          <button data-testid="meeting-for-caller-close" onClick={onClose}>{t('close')}</button>
        </div>
      )}
    </div>
  );
}
