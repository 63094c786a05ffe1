//! Persistent meeting rooms.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, ListParams, deny, nullable};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::{Language, Room};
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(get_room, update_room, delete_room))
}

const DEFAULT_CAPACITY: i64 = 100;
const MAX_CAPACITY: i64 = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Digits callers dial; unique in the tenant.
    #[schema(pattern = "^[0-9]{2,12}$")]
    pub number: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// 4 to 12 digits; omit for a room without PIN.
    #[schema(pattern = "^[0-9]{4,12}$")]
    pub pin: Option<String>,
    /// Most members at once (default 100).
    #[schema(minimum = 2, maximum = 10000)]
    pub capacity: Option<i64>,
    /// A meeting in this room ends after this many minutes.
    #[schema(minimum = 1, maximum = 10080)]
    pub max_duration_minutes: Option<i64>,
    /// Language of the voice prompts: `en` (default) or `zh`.
    pub language: Option<Language>,
    /// Reserve the room to this user.
    pub owner_id: Option<String>,
    /// A chime when someone joins or leaves (default true).
    pub entry_chime: Option<bool>,
    /// Music for a member alone in the meeting (default true).
    pub alone_music: Option<bool>,
    /// Members of the room recognised by their caller ID (a user calling from their
    /// extension, or the number of a known user or contact, named in a template of this room,
    /// or the room's owner or creator) join without the PIN, with their role (default false).
    pub members_skip_pin: Option<bool>,
    /// Record its meetings from their first member on (default false; everyone hears it).
    pub auto_record: Option<bool>,
    /// System administrators only: create the room in another tenant.
    pub tenant_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    pub number: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub pin: Option<Option<String>>,
    pub capacity: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub max_duration_minutes: Option<Option<i64>>,
    pub language: Option<Language>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub owner_id: Option<Option<String>>,
    pub entry_chime: Option<bool>,
    pub alone_music: Option<bool>,
    pub members_skip_pin: Option<bool>,
    pub auto_record: Option<bool>,
}

/// Administrators, the creator and the owner manage a room and see its PIN.
pub(super) fn manages(caller: &Caller, room: &Room) -> bool {
    caller.administers(&room.tenant_id)
        || room.creator_id.as_deref() == Some(&caller.user.id)
        || room.owner_id.as_deref() == Some(&caller.user.id)
}

fn shown_to(caller: &Caller, mut room: Room) -> Room {
    if !manages(caller, &room) {
        room.pin = None;
    }
    room
}

fn check_fields(
    c: &mut Checks,
    number: Option<&str>,
    name: Option<&str>,
    pin: Option<&str>,
    capacity: Option<i64>,
    max_duration: Option<i64>,
) {
    if let Some(v) = number {
        c.digits("number", v, 2, 12);
    }
    if let Some(v) = name {
        c.text("name", v, 1, 100);
    }
    if let Some(v) = pin {
        c.digits("pin", v, 4, 12);
    }
    if let Some(v) = capacity {
        c.range("capacity", v, 2, MAX_CAPACITY);
    }
    if let Some(v) = max_duration {
        c.range("max_duration_minutes", v, 1, 7 * 24 * 60);
    }
}

/// The owner must be a user of the room's tenant; a non-administrator may only name themself.
async fn check_owner(
    conn: &mut Conn,
    caller: &Caller,
    tenant_id: &str,
    owner: &str,
) -> ApiResult<()> {
    let exists = repo::users::get(conn, owner)
        .await?
        .is_some_and(|u| u.tenant_id == tenant_id);
    if !exists {
        return Err(ApiError::field("owner_id", "no such user in this tenant"));
    }
    if owner != caller.user.id && !caller.administers(tenant_id) {
        return Err(ApiError::forbidden(
            "only administrators reserve a room to someone else",
        ));
    }
    Ok(())
}

fn entry<'a>(action: &'static str, room: &'a Room) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &room.tenant_id,
        target_type: "room",
        target_id: Some(&room.id),
        detail: serde_json::json!({ "number": room.number, "name": room.name }),
    }
}

/// Create a room; the caller is its creator.
#[utoipa::path(post, path = "/rooms", operation_id = "createRoom", tag = "rooms",
    security(("bearer" = [])), request_body = CreateRoom,
    responses((status = 201, body = Room), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_room(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRoom>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let tenant_id = body
        .tenant_id
        .clone()
        .unwrap_or_else(|| caller.tenant_id().to_owned());
    let mut conn = state.store.conn().await?;
    if !caller.sees_tenant(&tenant_id) || repo::tenants::get(&mut conn, &tenant_id).await?.is_none()
    {
        return Err(ApiError::not_found("tenant"));
    }
    let mut c = Checks::new();
    check_fields(
        &mut c,
        Some(&body.number),
        Some(&body.name),
        body.pin.as_deref(),
        body.capacity,
        body.max_duration_minutes,
    );
    c.finish()?;
    if let Some(owner) = &body.owner_id {
        check_owner(&mut conn, &caller, &tenant_id, owner).await?;
    }
    drop(conn);
    let now = now_ms();
    let room = Room {
        id: new_id(),
        tenant_id,
        number: body.number,
        name: body.name.trim().to_owned(),
        has_pin: body.pin.is_some(),
        pin: body.pin,
        capacity: body.capacity.unwrap_or(DEFAULT_CAPACITY),
        max_duration_minutes: body.max_duration_minutes,
        language: body.language.unwrap_or(Language::English),
        creator_id: Some(caller.user.id.clone()),
        owner_id: body.owner_id,
        entry_chime: body.entry_chime.unwrap_or(true),
        alone_music: body.alone_music.unwrap_or(true),
        members_skip_pin: body.members_skip_pin.unwrap_or(false),
        auto_record: body.auto_record.unwrap_or(false),
        // Only rooms created from the keypad go when their meeting ends.
        release_when_empty: false,
        created_at: now,
        updated_at: now,
    };
    crate::rooms::create(&state.store, &caller.author(), &room).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// The rooms of a tenant. PINs are shown only to those who manage the room.
#[utoipa::path(get, path = "/rooms", operation_id = "listRooms", tag = "rooms",
    security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = List<Room>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_rooms(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<List<Room>>> {
    let limit = params.limit()?;
    let mut conn = state.store.conn().await?;
    let tenant_id = params.tenant(&mut conn, &caller).await?;
    let mut page: List<Room> = repo::rooms::list(&mut conn, &tenant_id, params.cursor(), limit)
        .await?
        .into();
    page.items = page
        .items
        .into_iter()
        .map(|r| shown_to(&caller, r))
        .collect();
    Ok(Json(page))
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Room> {
    repo::rooms::get(conn, id)
        .await?
        .filter(|r| caller.sees_tenant(&r.tenant_id))
        .ok_or_else(|| ApiError::not_found("room"))
}

/// One room.
#[utoipa::path(get, path = "/rooms/{id}", operation_id = "getRoom", tag = "rooms",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Room), (status = 404, body = Problem)))]
async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Room>> {
    let mut conn = state.store.conn().await?;
    let room = load(&mut conn, &caller, &id).await?;
    Ok(Json(shown_to(&caller, room)))
}

/// Change a room (administrators, its creator, its owner).
#[utoipa::path(patch, path = "/rooms/{id}", operation_id = "updateRoom", tag = "rooms",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateRoom,
    responses((status = 200, body = Room), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRoom>,
) -> ApiResult<Json<Room>> {
    let mut conn = state.store.conn().await?;
    let mut room = load(&mut conn, &caller, &id).await?;
    if !manages(&caller, &room) {
        drop(conn);
        return Err(deny(
            &state,
            &caller,
            entry("updateRoom", &room),
            "only administrators, the creator and the owner change a room",
        )
        .await);
    }
    let mut c = Checks::new();
    check_fields(
        &mut c,
        body.number.as_deref(),
        body.name.as_deref(),
        body.pin.clone().flatten().as_deref(),
        body.capacity,
        body.max_duration_minutes.flatten(),
    );
    c.finish()?;
    if let Some(Some(owner)) = &body.owner_id {
        check_owner(&mut conn, &caller, &room.tenant_id, owner).await?;
    }
    drop(conn);
    if let Some(v) = body.number {
        room.number = v;
    }
    if let Some(v) = body.name {
        room.name = v.trim().to_owned();
    }
    if let Some(v) = body.pin {
        room.pin = v;
    }
    room.has_pin = room.pin.is_some();
    if let Some(v) = body.capacity {
        room.capacity = v;
    }
    if let Some(v) = body.max_duration_minutes {
        room.max_duration_minutes = v;
    }
    if let Some(v) = body.language {
        room.language = v;
    }
    if let Some(v) = body.owner_id {
        room.owner_id = v;
    }
    if let Some(v) = body.entry_chime {
        room.entry_chime = v;
    }
    if let Some(v) = body.alone_music {
        room.alone_music = v;
    }
    if let Some(v) = body.members_skip_pin {
        room.members_skip_pin = v;
    }
    if let Some(v) = body.auto_record {
        room.auto_record = v;
    }
    room.updated_at = now_ms();
    crate::rooms::update(&state.store, &caller.author(), &room).await?;
    Ok(Json(room))
}

/// Delete a room (administrators, its creator, its owner).
#[utoipa::path(delete, path = "/rooms/{id}", operation_id = "deleteRoom", tag = "rooms",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut conn = state.store.conn().await?;
    let room = load(&mut conn, &caller, &id).await?;
    drop(conn);
    if !manages(&caller, &room) {
        return Err(deny(
            &state,
            &caller,
            entry("deleteRoom", &room),
            "only administrators, the creator and the owner delete a room",
        )
        .await);
    }
    crate::rooms::delete(&state.store, &caller.author(), &room).await?;
    Ok(StatusCode::NO_CONTENT)
}
