// The console uses only the public API: whatever it can do, an integration can.

export type FieldError = { field: string; reason: string };
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

export type Tenant = {
  id: string; name: string; sip_domain: string | null; sip_sha256_only: boolean; created_at: number; updated_at: number;
  branding: Record<string, unknown>;
  /// Days its recordings are kept after they end (0: kept; null: the server's rule).
  recording_retention_days: number | null;
};

export type User = {
  id: string; username: string; display_name: string; email: string | null; mobile: string | null;
  extension: string | null; sip_password_set: boolean; kind: string; status: string; tenant_id: string;
  /** The language mailed to the user; null: the room's. */
  language: 'en' | 'zh' | null;
};
export type Room = {
  id: string; number: string; name: string; pin?: string; has_pin: boolean; capacity: number;
  max_duration_minutes: number | null; language: string; owner_id: string | null;
  entry_chime: boolean; alone_music: boolean; members_skip_pin: boolean; auto_record: boolean;
  /// Rooms created from the keypad: deleted when their meeting ends (not settable here).
  release_when_empty: boolean;
};
/// The settings of a room the console switches on and off.
export type RoomFlag = 'entry_chime' | 'alone_music' | 'members_skip_pin' | 'auto_record';
export type Member = { kind: string; user_id?: string; contact_id?: string; number?: string; display_name: string; role: string };
export type TemplateSettings = { mute_on_entry: boolean; record: boolean; lock_on_start: boolean; whisper_allowed: boolean; layout?: string };
export type Template = {
  id: string; name: string; description: string; owner_id: string; room_id: string | null; settings: TemplateSettings;
  members: Member[]; shared_with: string[];
};
export type Contact = {
  id: string; name: string; department: string; mobile: string | null; landline: string | null;
  extension: string | null; email: string | null; owner_id: string | null;
};
export type LiveMember = {
  id: number; name: string; number: string; role: string; muted: boolean; may_speak: boolean;
  hand_raised: boolean; whisper_group: number | null; talking: boolean;
  quality: { codec: string; packets_received: number; packets_lost: number; jitter_ms: number; rtt_ms: number | null } | null;
};
export type CallState = 'calling' | 'ringing' | 'joined' | 'busy' | 'no_answer' | 'rejected' | 'failed' | 'left' | 'removed';
/// Someone the meeting called, and how the call stands.
export type Invitation = {
  id: number; name: string; number: string; role: string; state: CallState; reason?: string | null; call_id?: number | null;
};
export type LiveConference = {
  room_id: string; room_number: string; room_name: string; locked: boolean; recording_id: string | null;
  stream_id: string | null; members: LiveMember[]; invitations: Invitation[];
  layout?: VideoLayout; tiles: TileView[];
};
/// The chair's video layout (`setLayout`, `pinMember`, `setPolling`, `startShare`).
export type VideoLayout = {
  kind: string; pins: Record<string, number>; sharer: number | null; members_may_share: boolean;
  polling: { tiles: number[]; interval_secs: number; members: number[] } | null;
};
/// One tile: whose video, their screen or camera, shown by polling.
export type TileView = { size: 'big' | 'medium' | 'small'; member: number | null; screen: boolean; polled: boolean };
/// A live stream (`StreamView`): its row, where to watch it, who listens.
export type Stream = {
  id: string; room_id: string; room_number: string; room_name: string; title: string; key: string;
  password: string | null; state: 'scheduled' | 'live' | 'ended'; starts_at: number | null;
  started_at: number | null; ended_at: number | null; peak_listeners: number; link: string; playlist: string;
  listeners: number;
};
/// What the event WebSocket carries: a meeting event, or (`type: call`) an invitation's progress.
export type LiveEvent = {
  room_id: string; room_number: string; actor: string; at: number;
  event: { type: string; invitation?: Invitation };
};
/// The answer of `redialMissing`, `startConference` and `restartConference`: how calling each
/// member went.
export type Redialled = { room_id: string; members: { display_name: string; status: string; reason?: string }[] };
/// A meeting of the history (`listConferenceHistory`).
export type Meeting = {
  id: string; room_id: string | null; room_number: string; room_name: string; template_id: string | null;
  started_at: number; ended_at: number | null;
};
export type RewriteRule = { pattern: string; replace: string };
export type Trunk = {
  id: string; name: string; host: string; port: number; transport: 'udp' | 'tcp' | 'tls'; username: string | null;
  has_password: boolean; caller_id: string | null; rewrite: RewriteRule[]; srtp: 'off' | 'optional' | 'mandatory';
  ring_timeout_seconds: number; register: boolean; enabled: boolean; priority: number; verify_tls: boolean;
  /// `off`, `registering`, `registered`, `failed: <status>` or `unregistered`.
  registration: string;
};
export type AuditEvent = {
  id: string; actor_name: string; action: string; target_type: string; target_id: string | null;
  outcome: string; source: string; at: number; detail?: Record<string, unknown>;
};
/// Who of a tenant may call phone numbers through its trunks, which numbers, and how many
/// (`getOutboundPolicy` / `setOutboundPolicy`).
export type OutboundPolicy = {
  /// Regular expressions over the whole number sent to the gateway; none: extensions only.
  allowed_patterns: string[];
  /// Users who may call numbers besides the administrators.
  granted_users: string[];
  calls_per_hour: number;
  concurrent_calls: number;
};
/// A department of the organisation tree (`listDepartments`).
export type Department = {
  id: string; tenant_id: string; parent_id: string | null; name: string; sort_order: number;
};
/// A person the directory found (`searchDirectory`).
export type DirectoryEntry = {
  kind: 'user' | 'contact'; id: string; name: string; title: string; department_id: string | null;
  book?: 'enterprise' | 'personal'; extension: string | null; mobile: string | null; landline: string | null; email: string | null;
};
export type GroupMember = { kind: string; user_id?: string; contact_id?: string; number?: string; display_name: string };
/// A group: the enterprise's (`owner_id` null) or the caller's own.
export type Group = { id: string; name: string; description: string; owner_id: string | null; members: GroupMember[] };

/// A conflict of a booking's occurrence: the room taken, someone double-booked, or the capacity.
export type Conflict = {
  occurrence_start: number; kind: 'room' | 'member' | 'capacity' | string; booking_id?: string; booking_name?: string;
  other_start?: number; members?: string[]; detail: string;
};
export type BookingMember = Member & { presenter?: boolean };
export type BookingSettings = { mute_on_entry: boolean; dial_out: boolean; record: boolean; layout?: string };
/// A scheduled meeting (`getMeeting`): once, or repeating by an RRULE in the organiser's time zone.
export type Booking = {
  id: string; tenant_id: string; organiser_id: string; room_id: string; name: string; pin: string | null;
  description: string; expected_participants: number; time_zone: string; start_local: string; duration_minutes: number;
  rrule: string | null; exdates: number[]; first_start: number; last_end: number | null; settings: BookingSettings;
  members: BookingMember[]; cancelled: boolean; sequence: number; split_from: string | null; created_at: number; updated_at: number;
};
export type Occurrence = {
  booking_id: string; original_start: number; start_at: number; end_at: number; start_local: string;
  moved: boolean; cancelled: boolean; started_at: number | null;
};
/// An occurrence of a meeting the user organises or is invited to (`listMyMeetings`).
export type MyOccurrence = Occurrence & {
  name: string; room_id: string; room_number: string; organiser_id: string; role: string; time_zone: string;
};

/// An e-mail invitation and what became of it (`listMeetingMail`).
export type MailMessage = {
  id: string; booking_id: string; recipient: string; recipient_name: string; language: string;
  method: 'REQUEST' | 'CANCEL' | string; sequence: number; subject: string; attempts: number;
  next_attempt_at: number; sent_at: number | null; last_error: string | null; created_at: number;
};

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
export type ImportRow = {
  line: number; kind: string; name: string; matched_by: string | null;
  action: 'add' | 'update' | 'unchanged' | 'refuse'; id: string | null; changes: string[]; errors: FieldError[];
};
export type ImportReport = {
  dry_run: boolean; applied: boolean; format: string; added: number; updated: number; unchanged: number;
  refused: number; departments_created: string[]; rows: ImportRow[];
};

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
export type Recording = {
  id: string; tenant_id: string; meeting_id: string | null; room_id: string | null; room_number: string; room_name: string;
  started_by: string; started_at: number; ended_at: number | null; state: 'recording' | 'finished' | 'interrupted';
  visibility: 'private' | 'public';
  /// A public recording's link for anyone (`/recording/<share_key>`), and its password.
  share_key: string | null; share_password: string | null;
};
export type RecordingTrack = {
  track: number; kind: 'mix' | 'member' | 'video'; name: string; number: string; offset_ms: number; duration_ms: number | null; bytes: number | null;
};
export type RecordingDetail = { recording: Recording; tracks: RecordingTrack[] };
export type Utterance = { track: number; start_ms: number; end_ms: number };

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
export type MinutesHit = MinutesLine & { recording_id: string; room_number: string; room_name: string; started_at: number };

