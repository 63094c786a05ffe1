// The console uses only the public API: whatever it can do, an integration can.
// The API's own types, generated from its OpenAPI document (scripts/check-web.sh).
export type {
  FieldError,
  Tenant,
  User,
  Room,
  TemplateMember as Member,
  TemplateSettings,
  Template,
  Contact,
  CallState,
  Invitation,
  LiveConference,
  TileView,
  StreamView as Stream,
  LiveEvent,
  Meeting,
  RewriteRule,
  TrunkView as Trunk,
  AuditEvent,
  OutboundPolicy,
  Department,
  DirectoryEntry,
  GroupMember,
  Group,
  Conflict,
  BookingMember,
  BookingSettings,
  Booking,
  Occurrence,
  MyOccurrence,
  MailMessage,
  ImportRow,
  ImportReport,
  Recording,
  RecordingTrack,
  RecordingDetail,
  Utterance,
  MinutesHit,
  RosterEntry as LiveMember,
  Layout as VideoLayout,
} from './api-schema';
import type { Conflict, FieldError } from './api-schema';

export class ApiError extends Error {
  status: number;
  errors: FieldError[];
  /// A booking's conflicts (409 from createMeeting, updateMeeting, updateOccurrence).
  conflicts: Conflict[];
  /// The problem's type (`/problems/locked`): what kind of refusal, for the page to word.
  problemType: string | undefined;
  constructor(status: number, detail: string, errors: FieldError[], conflicts: Conflict[] = [], problemType?: string) {
    super(detail);
    this.status = status;
    this.errors = errors;
    this.conflicts = conflicts;
    this.problemType = problemType;
  }
}

export type Page<T> = { items: T[]; next_cursor: string | null };

const TOKEN_KEY = 'conclave.token';
export const session = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const token = session.get();
  if (token) headers['Authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return undefined as T;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) session.clear();
    throw new ApiError(response.status, data.detail ?? response.statusText, data.errors ?? [], data.conflicts ?? [], data.type);
  }
  return data as T;
}

/// The settings of a room the console switches on and off.
export type RoomFlag = 'entry_chime' | 'alone_music' | 'members_skip_pin' | 'auto_record';
/// Someone the meeting called, and how the call stands.
/// The chair's video layout (`setLayout`, `pinMember`, `setPolling`, `startShare`).
/// One tile: whose video, their screen or camera, shown by polling.
/// A live stream (`StreamView`): its row, where to watch it, who listens.
/// What the event WebSocket carries: a meeting event, or (`type: call`) an invitation's progress.
/// The answer of `redialMissing`, `startConference` and `restartConference`: how calling each
/// member went.
export type Redialled = { room_id: string; members: { display_name: string; status: string; reason?: string }[] };
/// A meeting of the history (`listConferenceHistory`).
/// Who of a tenant may call phone numbers through its trunks, which numbers, and how many
/// (`getOutboundPolicy` / `setOutboundPolicy`).
/// A department of the organisation tree (`listDepartments`).
/// A person the directory found (`searchDirectory`).
/// A group: the enterprise's (`owner_id` null) or the caller's own.
/// A conflict of a booking's occurrence: the room taken, someone double-booked, or the capacity.
/// A scheduled meeting (`getMeeting`): once, or repeating by an RRULE in the organiser's time zone.
/// An occurrence of a meeting the user organises or is invited to (`listMyMeetings`).
/// An e-mail invitation and what became of it (`listMeetingMail`).
/// Every page of a list.
export async function all<R>(path: string): Promise<R[]> {
  const items: R[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page: Page<R> = await api<Page<R>>('GET', `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

export const asError = (err: unknown) => (err instanceof ApiError ? err : new ApiError(0, String(err), []));

/// One row of an import and what it does (or would do) with it (`importDirectory`).
/// A file the API answers, as a URL the page can use: the API wants the bearer token, which
/// an `<a href>` or `<audio src>` cannot send.
export async function blobUrl(path: string): Promise<string> {
  const headers: Record<string, string> = {};
  const token = session.get();
  if (token) headers['Authorization'] = `Bearer ${token}`;
  const response = await fetch(`/api/v1${path}`, { headers });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(response.status, data.detail ?? response.statusText, data.errors ?? []);
  }
  return URL.createObjectURL(await response.blob());
}

/// A file the API answers (a template, an export), saved by the browser under `filename`.
export async function download(path: string, filename: string): Promise<void> {
  const url = await blobUrl(path);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/// Sends a file as the request body (an import); answers like `api`.
export async function upload<T>(path: string, file: Blob): Promise<T> {
  const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
  const token = session.get();
  if (token) headers['Authorization'] = `Bearer ${token}`;
  const response = await fetch(`/api/v1${path}`, { method: 'POST', headers, body: file });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) session.clear();
    throw new ApiError(response.status, data.detail ?? response.statusText, data.errors ?? []);
  }
  return data as T;
}

/// A recorded meeting (`listRecordings`, `getRecording`).
/// One line of a recording's minutes: what one person said in one utterance.
export type MinutesLine = {
  track: number; start_ms: number; end_ms: number; language: string;
  /// What speech recognition heard, and what the minutes say (edited or not).
  recognized: string; text: string; edited_by: string | null; edited_at: number | null;
  speaker: string;
  /// Plays exactly this utterance (an API path).
  audio: string;
};
export type Minutes = {
  recording_id: string;
  state: 'queued' | 'working' | 'done' | 'failed' | 'unavailable' | 'none';
  error: string | null; done: number; total: number; live: boolean;
  room_number: string; room_name: string; started_at: number; ended_at: number | null;
  members: { track: number; name: string; number: string }[];
  lines: MinutesLine[];
  editable: boolean;
};
