//! What is stored. These types are also what the API returns: secrets are never serialized.

use conclave_conference::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An enterprise. Nothing of one tenant is visible to another.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// The SIP domain that routes calls and registrations to this tenant.
    pub sip_domain: Option<String>,
    /// SIP digest with SHA-256 only (RFC 8760) for this tenant's domain: the registrar never
    /// challenges with MD5 there, and no MD5 digest of its users' SIP passwords is kept. Needs
    /// `sip_domain` (the challenge is chosen by the domain a REGISTER names).
    #[serde(default)]
    pub sip_sha256_only: bool,
    /// Branding for the console (logo, colours): free-form JSON kept for later use.
    #[schema(value_type = Object)]
    pub branding: serde_json::Value,
    /// Its recordings are deleted this many days after they end (0: kept); absent: the
    /// server's rule.
    pub recording_retention_days: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Runs the whole installation: every tenant.
    SystemAdmin,
    /// Runs one tenant: its users, rooms, templates, keys and audit log.
    TenantAdmin,
    /// An ordinary user: own rooms and templates, the tenant's address book.
    User,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::SystemAdmin => "system_admin",
            AccountKind::TenantAdmin => "tenant_admin",
            AccountKind::User => "user",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            AccountKind::SystemAdmin,
            AccountKind::TenantAdmin,
            AccountKind::User,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    /// Cannot log in, use keys or register a SIP extension.
    Frozen,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Frozen => "frozen",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "frozen" => Some(UserStatus::Frozen),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub display_name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub landline: Option<String>,
    /// The SIP extension (short number) this user registers and is called on.
    pub extension: Option<String>,
    /// The department of the organisation tree this user belongs to.
    pub department_id: Option<String>,
    /// Job title, as the directory shows it.
    pub title: String,
    /// HA1 digests of the SIP password (MD5 and SHA-256, RFC 8760): never the password itself.
    #[serde(skip)]
    pub sip_ha1_md5: Option<String>,
    #[serde(skip)]
    pub sip_ha1_sha256: Option<String>,
    /// Whether a SIP password is set (the extension can register).
    pub sip_password_set: bool,
    /// The language mailed to this user (invitations, reminders); absent: the room's.
    pub language: Option<Language>,
    pub kind: AccountKind,
    pub status: UserStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Languages the voice prompts and the console speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Language {
    #[serde(rename = "en")]
    English,
    #[serde(rename = "zh")]
    Chinese,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Chinese => "zh",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Language::English),
            "zh" => Some(Language::Chinese),
            _ => None,
        }
    }
}

/// A persistent "cloud meeting room", kept until deleted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Room {
    pub id: String,
    pub tenant_id: String,
    /// The number callers dial (digits, unique in the tenant).
    pub number: String,
    pub name: String,
    /// Digits; absent when the room needs none. Shown only to those who may manage the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    pub has_pin: bool,
    pub capacity: i64,
    pub max_duration_minutes: Option<i64>,
    pub language: Language,
    pub creator_id: Option<String>,
    /// When set, the room is reserved to this user.
    pub owner_id: Option<String>,
    /// A chime when someone joins or leaves the meeting.
    pub entry_chime: bool,
    /// Music for a member alone in the meeting.
    pub alone_music: bool,
    /// Callers recognised by their caller ID (a user calling from their extension, or the
    /// number of a known user or contact) who are members of the room — in a template of the
    /// room, or its owner or creator — join without the PIN, with their role.
    pub members_skip_pin: bool,
    /// Its meetings are recorded from their first member on (docs/recording.md).
    pub auto_record: bool,
    /// The room is deleted when its meeting ends (rooms created from the keypad; not settable
    /// through the API).
    pub release_when_empty: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Settings a meeting started from a template begins with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateSettings {
    pub mute_on_entry: bool,
    pub record: bool,
    pub lock_on_start: bool,
    pub whisper_allowed: bool,
    /// The video layout its meetings start with ("1", "4", "1+7", "1+21", "2+21"; none: 2×2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    /// A user of the tenant: called on their extension (or numbers).
    User,
    /// An entry of the enterprise's or the template owner's address book.
    Contact,
    /// A raw phone number, called through a trunk.
    Number,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "user",
            MemberKind::Contact => "contact",
            MemberKind::Number => "number",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateMember {
    pub kind: MemberKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default)]
    pub display_name: String,
    pub role: Role,
}

/// A reusable meeting scheme: members with roles, and settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Template {
    pub id: String,
    pub tenant_id: String,
    /// The operator who owns it; others use it through shares.
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub room_id: Option<String>,
    pub settings: TemplateSettings,
    pub members: Vec<TemplateMember>,
    /// Users the owner shared it with: they may use it or take their own copy.
    pub shared_with: Vec<String>,
    pub copied_from: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A login session; only the hash of its token is stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub source: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A key for integrations; acts with the rights of the user who created it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it; the rest is never stored.
    pub prefix: String,
    #[serde(skip)]
    pub key_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One management action: who, what, when, from where.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub tenant_id: Option<String>,
    pub actor_id: Option<String>,
    pub actor_name: String,
    /// The operationId of the API call (e.g. `createRoom`).
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub outcome: String,
    /// The client address the request came from.
    pub source: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub at: i64,
}

/// An address-book entry: in the enterprise's book (`owner_id` absent, seen by the whole
/// tenant) or in one user's personal book.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contact {
    pub id: String,
    pub tenant_id: String,
    /// The user whose personal book holds it; absent for the enterprise book.
    pub owner_id: Option<String>,
    pub name: String,
    /// A free-text department label: the only one a personal contact has. Enterprise contacts
    /// belong to the organisation tree through `department_id`.
    pub department: String,
    /// The department of the organisation tree (enterprise contacts only).
    pub department_id: Option<String>,
    /// Job title.
    pub title: String,
    pub mobile: Option<String>,
    pub landline: Option<String>,
    /// A SIP extension (short number) to call.
    pub extension: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A meeting that took place (or is taking place) in a room.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meeting {
    pub id: String,
    pub tenant_id: String,
    pub room_id: Option<String>,
    pub room_number: String,
    pub room_name: String,
    /// The template it was started from; absent for other meetings.
    pub template_id: Option<String>,
    pub started_at: i64,
    /// Absent while the meeting goes on.
    pub ended_at: Option<i64>,
}

/// Who attended a meeting, how they came, and when they joined and left.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attendance {
    pub member_id: i64,
    pub name: String,
    pub number: String,
    /// `dial_in`, `dial_out` or `browser`.
    pub via: String,
    pub joined_at: i64,
    pub left_at: Option<i64>,
}

/// One line of a meeting's log: who did what, when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeetingLogEntry {
    pub id: String,
    pub at: i64,
    /// Who acted: an operator's login name, a member (`member 3`), or `system`.
    pub actor: String,
    /// What happened: `joined`, `left`, `muted`, `locked`, `ended`, …
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// An integration's subscription to the tenant's meeting events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub tenant_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The key of the HMAC-SHA256 signature of every delivery; shown only when created.
    #[serde(skip)]
    pub secret: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// How a trunk's SIP messages travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SipTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// Whether calls encrypt their media (SDES-SRTP, RFC 4568).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SrtpMode {
    /// Plain RTP; offers of SRTP are refused.
    #[default]
    Off,
    /// SRTP when the other side offers or accepts it.
    Optional,
    /// SRTP or no call.
    Mandatory,
}

/// Rewrites a dialled number before it goes to the trunk: the first rule whose `pattern` (a
/// regular expression matched against the whole number) matches applies `replace`, where
/// `$1`… are its groups. E.g. `^0(\d+)$` → `+8610$1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteRule {
    pub pattern: String,
    pub replace: String,
}

fn default_sip_port() -> u16 {
    5060
}
fn default_ring_timeout() -> u32 {
    60
}
fn yes() -> bool {
    true
}

/// A trunk's settings, as the API takes and shows them. (Unknown fields are refused by the
/// API's body, which flattens these: serde cannot deny them here.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrunkSettings {
    /// The gateway's host name or IP address.
    pub host: String,
    #[serde(default = "default_sip_port")]
    pub port: u16,
    #[serde(default)]
    pub transport: SipTransport,
    /// Digest user name, for the gateway's challenges and for registering.
    #[serde(default)]
    pub username: Option<String>,
    /// The number presented to the people called (From); the room's number when absent.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Which numbers this trunk takes, and how they are rewritten. No rules: every number,
    /// unchanged.
    #[serde(default)]
    pub rewrite: Vec<RewriteRule>,
    #[serde(default)]
    pub srtp: SrtpMode,
    /// Calls unanswered after this many seconds are given up (no answer).
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_seconds: u32,
    /// Keep a registration with the gateway (needs a user name and password).
    #[serde(default)]
    pub register: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Trunks are tried lowest first.
    #[serde(default)]
    pub priority: i32,
    /// Check the gateway's TLS certificate against the public roots (TLS only).
    #[serde(default = "yes")]
    pub verify_tls: bool,
}

/// An outbound gateway to phone numbers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trunk {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    #[serde(flatten)]
    pub settings: TrunkSettings,
    /// The digest password; never shown.
    #[serde(skip)]
    pub password: Option<String>,
    pub has_password: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who of a tenant may call phone numbers through its trunks (toll fraud is the risk: a
/// trunk bills the tenant), which numbers, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundPolicy {
    /// Numbers that may be called, as regular expressions over the whole number sent to the
    /// gateway (after the trunk's rewrite rules). Empty: no phone number at all (extensions
    /// only).
    #[serde(default = "any_number")]
    pub allowed_patterns: Vec<String>,
    /// Users who may call phone numbers besides the administrators (system and tenant).
    #[serde(default)]
    pub granted_users: Vec<String>,
    /// Calls placed through the trunks in any hour (sliding), for the whole tenant.
    #[serde(default = "default_calls_per_hour")]
    pub calls_per_hour: u32,
    /// Calls through the trunks up at once (ringing or answered), for the whole tenant.
    #[serde(default = "default_concurrent_calls")]
    pub concurrent_calls: u32,
}

fn any_number() -> Vec<String> {
    vec![r"\+?[0-9*#]+".to_owned()]
}
fn default_calls_per_hour() -> u32 {
    100
}
fn default_concurrent_calls() -> u32 {
    10
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allowed_patterns: any_number(),
            granted_users: Vec::new(),
            calls_per_hour: default_calls_per_hour(),
            concurrent_calls: default_concurrent_calls(),
        }
    }
}

/// An e-mail invitation of a scheduled meeting: queued in the transaction of the change, sent
/// with retries (`listMeetingMail` shows the organiser what became of each).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailMessage {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub booking_id: String,
    /// The address it goes to.
    pub recipient: String,
    pub recipient_name: String,
    /// `en` or `zh`.
    pub language: String,
    /// iCalendar METHOD: `REQUEST` (an invitation or an update) or `CANCEL`; `REMINDER` for
    /// a reminder before an occurrence (plain text, no attachment).
    pub method: String,
    /// iCalendar SEQUENCE (the booking's, when the message was queued).
    pub sequence: i64,
    pub subject: String,
    #[serde(skip)]
    pub body: String,
    #[serde(skip)]
    pub ics: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due (epoch ms; meaningless once sent).
    pub next_attempt_at: i64,
    /// When the mail server took it (absent: not yet).
    pub sent_at: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: i64,
    /// Reminders only: `reminder:<booking>:<original start>:<start>:<address>`, unique, so
    /// that each is queued once.
    #[serde(skip)]
    pub dedupe_key: Option<String>,
    /// Reminders only: the occurrence (its original and its actual start, epoch ms).
    #[serde(skip)]
    pub occurrence_original: Option<i64>,
    #[serde(skip)]
    pub occurrence_start: Option<i64>,
}

/// A webhook delivery waiting to be made (the event's JSON, signed when sent).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event_kind: String,
    pub body: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
}

/// A department of the organisation tree; `parent_id` absent for a top-level one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Department {
    pub id: String,
    pub tenant_id: String,
    pub parent_id: Option<String>,
    /// Unique among its siblings.
    pub name: String,
    /// Siblings are shown by this, lowest first, then by name.
    pub sort_order: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A member of a group: a user, a contact or a raw number (like a template's members, without
/// a role: the role is given when the group is added to a meeting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    pub kind: MemberKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Filled from the user or contact when left empty.
    #[serde(default)]
    pub display_name: String,
}

/// A group of people: the enterprise's (`owner_id` absent, kept by administrators, seen by the
/// tenant) or one user's own (seen by that user only).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub tenant_id: String,
    pub owner_id: Option<String>,
    pub name: String,
    pub description: String,
    pub members: Vec<GroupMember>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    User,
    Contact,
}

/// A person the directory found: a user, an enterprise contact or one of the caller's own.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DirectoryEntry {
    pub kind: EntryKind,
    /// The user's or the contact's id.
    pub id: String,
    pub name: String,
    pub title: String,
    pub department_id: Option<String>,
    /// For contacts: `enterprise` or `personal`; absent for users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book: Option<String>,
    pub extension: Option<String>,
    pub mobile: Option<String>,
    pub landline: Option<String>,
    pub email: Option<String>,
}

/// How a scheduled meeting runs when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BookingSettings {
    /// Members join muted.
    pub mute_on_entry: bool,
    /// The server calls every member at the start; otherwise they dial the room's number.
    pub dial_out: bool,
    /// Record the meeting (kept for when recording lands).
    pub record: bool,
    /// The video layout it starts with ("1", "4", "1+7", "1+21", "2+21"; none: 2×2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// Someone invited to a scheduled meeting: a user, a contact or a raw number, with a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookingMember {
    pub kind: MemberKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default)]
    pub display_name: String,
    #[schema(value_type = String)]
    pub role: conclave_conference::Role,
    /// The meeting's presenter (at most one).
    #[serde(default)]
    pub presenter: bool,
}

/// A scheduled meeting (a booking): a meeting booked ahead in a room, once or repeating by
/// an RFC 5545 rule in the organiser's time zone. The history of meetings that took place is
/// `Meeting`; a booking's occurrences start meetings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Booking {
    pub id: String,
    pub tenant_id: String,
    pub organiser_id: String,
    pub room_id: String,
    pub name: String,
    /// Digits the organiser shares with the invitation; absent: none.
    pub pin: Option<String>,
    pub description: String,
    pub expected_participants: i64,
    /// IANA time zone of `start_local` and of the rule (`Europe/Berlin`).
    pub time_zone: String,
    /// Wall-clock start of the first occurrence, `YYYY-MM-DDTHH:MM`.
    pub start_local: String,
    pub duration_minutes: i64,
    /// RFC 5545 RRULE value (`FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`); absent: once.
    pub rrule: Option<String>,
    /// Occurrences taken out of the series, by the start the rule gives them (epoch ms).
    pub exdates: Vec<i64>,
    /// First occurrence's start and last one's end (epoch ms; absent: no end).
    pub first_start: i64,
    pub last_end: Option<i64>,
    pub settings: BookingSettings,
    pub members: Vec<BookingMember>,
    pub cancelled: bool,
    /// Rises with every change (iCalendar SEQUENCE).
    pub sequence: i64,
    /// The series this one was split from ("this and following").
    pub split_from: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An occurrence that differs from its rule, or that started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OccurrenceOverride {
    pub original_start: i64,
    pub start_at: i64,
    pub end_at: i64,
    pub cancelled: bool,
    pub started_at: Option<i64>,
}

/// A meeting's recording: the room's mix and a track per member.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recording {
    pub id: String,
    pub tenant_id: String,
    /// The meeting it recorded.
    pub meeting_id: Option<String>,
    pub room_id: Option<String>,
    pub room_number: String,
    pub room_name: String,
    /// Who started it (a user id, or `system`).
    pub started_by: String,
    pub started_at: i64,
    /// Absent while it records.
    pub ended_at: Option<i64>,
    /// `recording`, `finished`, or `interrupted` (the server stopped while it recorded:
    /// what was written plays).
    pub state: String,
    /// `private` (the tenant's users with the right) or `public`.
    pub visibility: String,
    /// The recording's key, sealed with the tenant's key (never shown).
    #[serde(skip)]
    pub wrapped_key: String,
    /// A public recording's link for anyone (`/recording/<share_key>`).
    pub share_key: Option<String>,
    /// Names its audio once the password was given (never shown).
    #[serde(skip)]
    pub share_access: Option<String>,
    /// What outsiders type (none: the link is enough).
    pub share_password: Option<String>,
}

/// A live stream of a room's meetings: HLS for anyone with its link (and password).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stream {
    pub id: String,
    pub tenant_id: String,
    pub room_id: String,
    pub title: String,
    /// Names the watch page: `/watch/<key>`.
    pub key: String,
    /// Names the segments (`/live/<key>/<access>/…`): given to whoever knows the password.
    #[serde(skip)]
    pub access: String,
    /// What a viewer types (none: the link is enough). Shown to the room's managers.
    pub password: Option<String>,
    /// `scheduled`, `live` or `ended`.
    pub state: String,
    /// When it is planned to start (scheduled streams; epoch ms).
    pub starts_at: Option<i64>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// The meeting it carried (once live).
    pub meeting_id: Option<String>,
    pub created_by: String,
    /// The most listeners at once.
    pub peak_listeners: i64,
    pub created_at: i64,
}

/// One track of a recording.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordingTrack {
    /// 0 is the room's mix; members' tracks follow.
    pub track: i64,
    /// `mix` or `member`.
    pub kind: String,
    /// Whose voice (a user's id, a number, or a name): one track per person.
    #[serde(skip)]
    pub identity: String,
    pub name: String,
    pub number: String,
    /// Where it starts on the recording's timeline.
    pub offset_ms: i64,
    /// Its length, once the recording has ended.
    pub duration_ms: Option<i64>,
    /// Bytes stored (sealed).
    pub bytes: Option<i64>,
}

/// When a member spoke, from the recording's start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Utterance {
    /// The speaker's track.
    pub track: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A recording's minutes: how far their making is (docs/minutes.md).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Minutes {
    pub recording_id: String,
    #[serde(skip)]
    pub tenant_id: String,
    /// `queued`, `working`, `done`, `failed` or `unavailable` (no speech model).
    pub state: String,
    /// Why it failed or is unavailable.
    pub error: Option<String>,
    #[serde(skip)]
    pub not_before: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One line of the minutes: what one person said in one utterance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MinuteLine {
    /// The speaker's track.
    pub track: i64,
    /// On the recording's timeline.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The language detected (`en`, `zh`, …).
    pub language: String,
    /// What speech recognition heard (kept when the line is edited).
    pub recognized: String,
    /// What the minutes say.
    pub text: String,
    /// Who edited it last (a user's name), and when.
    pub edited_by: Option<String>,
    pub edited_at: Option<i64>,
}

/// A node of a cluster, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub sip_uri: String,
    pub http_url: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub load: i64,
    pub draining: bool,
}

/// Where a room's meeting lives in a cluster, and until when that node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHome {
    pub room_id: String,
    pub tenant_id: String,
    pub room_number: String,
    pub node_id: String,
    pub epoch: i64,
    pub lease_until: i64,
    pub meeting_id: Option<String>,
    pub state: String,
    pub updated_at: i64,
}
