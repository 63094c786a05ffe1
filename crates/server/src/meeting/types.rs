//! What the API, the WebSocket and webhooks show of a live meeting: the roster, the calls the
//! meeting placed, and its events.

use conclave_conference::Role;
use conclave_conference::live::{Event, Member};
use serde::Serialize;
use utoipa::ToSchema;

/// A live meeting as the roster shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveConference {
    pub room_id: String,
    pub room_number: String,
    pub room_name: String,
    pub locked: bool,
    /// The recording going on, if the meeting is being recorded.
    pub recording_id: Option<String>,
    /// The live stream going on, if the meeting is streamed (`getStream`).
    pub stream_id: Option<String>,
    pub members: Vec<RosterEntry>,
    /// Everyone the meeting called, and how each call went.
    pub invitations: Vec<Invitation>,
    /// The chair's video layout (`setLayout`, `pinMember`, `setPolling`, `startShare`).
    pub layout: conclave_conference::layout::Layout,
    /// Who is shown in which tile now (browsers receive them in this order).
    pub tiles: Vec<conclave_conference::layout::TileView>,
    /// Set when this is not a meeting but one registered phone calling another by extension
    /// (an operator's console shows it, and starts a meeting for the caller from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<DirectCall>,
}

/// One registered phone calling another's extension: a meeting of two in a room of its
/// own (`call-…`, never stored) that ends when either hangs up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DirectCall {
    pub caller_name: String,
    pub caller_number: String,
    /// The calling user (a call from a registered extension is always a user's).
    pub caller_user_id: String,
    pub callee_name: String,
    pub callee_number: String,
    pub callee_user_id: String,
    /// `ringing` until the callee answers, then `talking`.
    pub state: DirectCallState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectCallState {
    Ringing,
    Talking,
}

/// How a call to an invitee stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Calling,
    Ringing,
    Joined,
    Busy,
    NoAnswer,
    Rejected,
    Failed,
    /// Joined, then hung up.
    Left,
    /// Joined, then removed by a chair.
    Removed,
}

impl CallState {
    /// Not in the meeting and not being called: `redialMissing` calls them again.
    pub fn missing(self) -> bool {
        matches!(
            self,
            CallState::Busy
                | CallState::NoAnswer
                | CallState::Rejected
                | CallState::Failed
                | CallState::Left
        )
    }
}

/// Someone the meeting called (one-click start, invitation, redial).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: u32,
    pub name: String,
    pub number: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub state: CallState,
    /// Why the call failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The call in progress or the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<u64>,
    /// How to call them again; `None` when they cannot be reached.
    #[serde(skip)]
    pub callee: Option<crate::sip::Callee>,
}

/// A change of an invitee's call, as the WebSocket and webhooks carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallProgress {
    /// Always `call`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub invitation: Invitation,
}

/// What a live event is about: the meeting, or a call the meeting placed.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum LiveChange {
    Meeting(Event),
    Call(CallProgress),
    /// An event of a meeting on another node of the cluster, as that node serialized it (one
    /// of the two above).
    Relayed(serde_json::Value),
}

// Written by hand: a relayed event is one of the other two, so the schema is their `oneOf`
// (derived, the relayed JSON would make the whole event an untyped object).
impl utoipa::PartialSchema for LiveChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{OneOfBuilder, Schema};
        use utoipa::openapi::{Ref, RefOr};
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(Ref::from_schema_name("Event"))
                .item(Ref::from_schema_name("CallProgress"))
                .description(Some(
                    "A meeting event (`type`: joined, muted, talking, …) or a call's progress (`type`: call).",
                ))
                .build(),
        ))
    }
}

impl ToSchema for LiveChange {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((Event::name().into_owned(), Event::schema()));
        Event::schemas(schemas);
        schemas.push((CallProgress::name().into_owned(), CallProgress::schema()));
        CallProgress::schemas(schemas);
    }
}

/// A member's media as the roster shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quality {
    pub codec: String,
    pub packets_received: u64,
    /// Packets lost on the way to us (from RTP sequence numbers).
    pub packets_lost: i64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Round trip from the member's RTCP reports, milliseconds, when known.
    pub rtt_ms: Option<f64>,
}

impl From<&conclave_media::engine::MemberReport> for Quality {
    fn from(r: &conclave_media::engine::MemberReport) -> Quality {
        Quality {
            codec: r.codec.to_owned(),
            packets_received: r.stats.rx_packets,
            packets_lost: r.stats.lost,
            jitter_ms: r.stats.jitter.as_secs_f64() * 1000.0,
            rtt_ms: r.stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// One member in the roster: their state in the meeting and how their media is doing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RosterEntry {
    #[serde(flatten)]
    pub member: Member,
    /// Codec, packets, loss, jitter, round trip (absent before media flows).
    pub quality: Option<Quality>,
}

/// What the WebSocket and webhooks carry: a meeting event, where and by whom.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveEvent {
    #[serde(skip)]
    pub tenant_id: String,
    pub room_id: String,
    pub room_number: String,
    /// Who acted (an operator, a member on the keypad, or `system`).
    pub actor: String,
    pub at: i64,
    /// A meeting event (`type`: joined, muted, talking, …) or a call's progress (`type`: call).
    pub event: LiveChange,
}
