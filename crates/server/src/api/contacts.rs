//! Address books: the enterprise's, kept by administrators and seen by the whole tenant, and
//! each user's personal book, seen only by its owner. Template members can be contacts.

use super::extract::{ApiJson, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, List, audit, deny, nullable};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::model::Contact;
use conclave_store::repo::contacts::Books;
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_contact, list_contacts))
        .routes(routes!(get_contact, update_contact, delete_contact))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Book {
    /// The tenant's shared book (administrators write it).
    Enterprise,
    /// The caller's own book.
    #[default]
    Personal,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    /// Which book: `personal` (default) or `enterprise`.
    #[serde(default)]
    pub book: Book,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// A free-text department label (personal contacts); enterprise contacts use
    /// `department_id`.
    #[serde(default)]
    pub department: String,
    /// The department of the organisation tree (enterprise contacts only).
    pub department_id: Option<String>,
    /// Job title.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub title: String,
    #[schema(pattern = "^\\+?[0-9]{3,20}$")]
    pub mobile: Option<String>,
    #[schema(pattern = "^\\+?[0-9]{3,20}$")]
    pub landline: Option<String>,
    #[schema(pattern = "^[0-9]{2,15}$")]
    pub extension: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    pub name: Option<String>,
    pub department: Option<String>,
    /// The department of the organisation tree (enterprise contacts only); null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub department_id: Option<Option<String>>,
    pub title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub landline: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub extension: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactParams {
    /// `enterprise`, `personal`, or both when absent.
    pub book: Option<Book>,
    /// How many items at most (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Enterprise entries are seen by the tenant; personal ones by their owner only.
pub fn sees(caller: &Caller, c: &Contact) -> bool {
    match &c.owner_id {
        None => caller.sees_tenant(&c.tenant_id),
        Some(owner) => *owner == caller.user.id,
    }
}

fn writes(caller: &Caller, c: &Contact) -> bool {
    match &c.owner_id {
        None => caller.administers(&c.tenant_id),
        Some(owner) => *owner == caller.user.id,
    }
}

async fn check(conn: &mut Conn, c: &mut Checks, contact: &Contact) -> ApiResult<()> {
    c.text("name", &contact.name, 1, 100);
    c.text("department", &contact.department, 0, 100);
    c.text("title", &contact.title, 0, 100);
    if contact.department_id.is_some() && contact.owner_id.is_some() {
        c.fail(
            "department_id",
            "only enterprise contacts belong to the organisation tree (use department, a label)",
        );
    } else {
        super::departments::check_reference(
            conn,
            c,
            "department_id",
            &contact.tenant_id,
            contact.department_id.as_deref(),
        )
        .await?;
    }
    if let Some(v) = &contact.mobile {
        c.phone("mobile", v);
    }
    if let Some(v) = &contact.landline {
        c.phone("landline", v);
    }
    if let Some(v) = &contact.extension {
        c.digits("extension", v, 2, 15);
    }
    if let Some(v) = &contact.email {
        c.email("email", v);
    }
    if contact.mobile.is_none() && contact.landline.is_none() && contact.extension.is_none() {
        c.fail(
            "mobile",
            "a contact needs a mobile, landline or extension number to be called on",
        );
    }
    Ok(())
}

async fn load(conn: &mut Conn, caller: &Caller, id: &str) -> ApiResult<Contact> {
    repo::contacts::get(conn, id)
        .await?
        .filter(|c| sees(caller, c))
        .ok_or_else(|| ApiError::not_found("contact"))
}

fn entry<'a>(action: &'static str, c: &'a Contact) -> Audit<'a> {
    Audit {
        action,
        tenant_id: &c.tenant_id,
        target_type: "contact",
        target_id: Some(&c.id),
        detail: serde_json::json!({ "name": c.name, "book": if c.owner_id.is_some() { "personal" } else { "enterprise" } }),
    }
}

/// Add a contact to the caller's personal book, or (administrators) to the enterprise book.
#[utoipa::path(post, path = "/contacts", operation_id = "createContact", tag = "contacts",
    security(("bearer" = [])), request_body = CreateContact,
    responses((status = 201, body = Contact), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let now = now_ms();
    let contact = Contact {
        id: new_id(),
        tenant_id: caller.tenant_id().to_owned(),
        owner_id: (body.book == Book::Personal).then(|| caller.user.id.clone()),
        name: body.name.trim().to_owned(),
        department: body.department.trim().to_owned(),
        department_id: body.department_id,
        title: body.title.trim().to_owned(),
        mobile: body.mobile,
        landline: body.landline,
        extension: body.extension,
        email: body.email,
        created_at: now,
        updated_at: now,
    };
    if !writes(&caller, &contact) {
        return Err(deny(
            &state,
            &caller,
            entry("createContact", &contact),
            "only administrators write the enterprise address book",
        )
        .await);
    }
    let mut tx = state.store.begin().await?;
    let mut c = Checks::new();
    check(&mut tx, &mut c, &contact).await?;
    c.finish()?;
    repo::contacts::insert(&mut tx, &contact).await?;
    audit(&mut tx, &caller, entry("createContact", &contact)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

/// The enterprise address book and the caller's personal one.
#[utoipa::path(get, path = "/contacts", operation_id = "listContacts", tag = "contacts",
    security(("bearer" = [])), params(ContactParams),
    responses((status = 200, body = List<Contact>), (status = 422, body = Problem)))]
async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ContactParams>,
) -> ApiResult<Json<List<Contact>>> {
    let limit = super::page_limit(p.limit)?;
    let books = match p.book {
        None => Books::Both,
        Some(Book::Enterprise) => Books::Enterprise,
        Some(Book::Personal) => Books::Personal,
    };
    let mut conn = state.store.conn().await?;
    let cursor = p.cursor.as_deref().unwrap_or("");
    Ok(Json(
        repo::contacts::list(
            &mut conn,
            caller.tenant_id(),
            &caller.user.id,
            books,
            cursor,
            limit,
        )
        .await?
        .into(),
    ))
}

/// One contact.
#[utoipa::path(get, path = "/contacts/{id}", operation_id = "getContact", tag = "contacts",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Contact), (status = 404, body = Problem)))]
async fn get_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Contact>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(load(&mut conn, &caller, &id).await?))
}

/// Change a contact (its owner; administrators for the enterprise book).
#[utoipa::path(patch, path = "/contacts/{id}", operation_id = "updateContact", tag = "contacts",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = UpdateContact,
    responses((status = 200, body = Contact), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn update_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateContact>,
) -> ApiResult<Json<Contact>> {
    let mut tx = state.store.begin().await?;
    let mut contact = load(&mut tx, &caller, &id).await?;
    if !writes(&caller, &contact) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("updateContact", &contact),
            "only administrators write the enterprise address book",
        )
        .await);
    }
    if let Some(v) = body.name {
        contact.name = v.trim().to_owned();
    }
    if let Some(v) = body.department {
        contact.department = v.trim().to_owned();
    }
    if let Some(v) = body.department_id {
        contact.department_id = v;
    }
    if let Some(v) = body.title {
        contact.title = v.trim().to_owned();
    }
    if let Some(v) = body.mobile {
        contact.mobile = v;
    }
    if let Some(v) = body.landline {
        contact.landline = v;
    }
    if let Some(v) = body.extension {
        contact.extension = v;
    }
    if let Some(v) = body.email {
        contact.email = v;
    }
    let mut c = Checks::new();
    check(&mut tx, &mut c, &contact).await?;
    c.finish()?;
    contact.updated_at = now_ms();
    repo::contacts::update(&mut tx, &contact).await?;
    audit(&mut tx, &caller, entry("updateContact", &contact)).await?;
    tx.commit().await?;
    Ok(Json(contact))
}

/// Delete a contact; templates that named it lose that member.
#[utoipa::path(delete, path = "/contacts/{id}", operation_id = "deleteContact", tag = "contacts",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let contact = load(&mut tx, &caller, &id).await?;
    if !writes(&caller, &contact) {
        drop(tx);
        return Err(deny(
            &state,
            &caller,
            entry("deleteContact", &contact),
            "only administrators write the enterprise address book",
        )
        .await);
    }
    repo::contacts::delete(&mut tx, &contact.id).await?;
    audit(&mut tx, &caller, entry("deleteContact", &contact)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
