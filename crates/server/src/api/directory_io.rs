//! Importing and exporting the directory's people as CSV or XLSX files (administrators).
//!
//! An import is planned against the tenant's directory first: every row is matched (a user
//! by login name; an enterprise contact by extension, else e-mail, else mobile, else
//! landline), checked (the same rules as `createUser`/`createContact`), and reported as
//! `add`, `update` (naming the fields that change), `unchanged` or `refuse` (naming each
//! field and why). A dry run answers that report. Applying writes the whole plan — missing
//! departments, people, the audit event — in one transaction, and only when no row is
//! refused (else 422 naming `rows[i].field`): a bad file changes nothing.

use super::extract::Caller;
use super::problem::{ApiError, ApiResult, FieldError, Problem};
use super::validate::Checks;
use super::{ApiQuery, AppState, Audit, audit, deny};
use crate::directory_io::{self, Column, FileError, Format, Row, Table};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use conclave_store::model::{AccountKind, Contact, Department, User, UserStatus};
use conclave_store::repo::contacts::Books;
use conclave_store::{Conn, new_id, now_ms, repo};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_directory))
        .layer(DefaultBodyLimit::max(directory_io::MAX_UPLOAD))
        .routes(routes!(export_directory))
        .routes(routes!(directory_template))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Csv,
    Xlsx,
}

impl From<FileFormat> for Format {
    fn from(f: FileFormat) -> Format {
        match f {
            FileFormat::Csv => Format::Csv,
            FileFormat::Xlsx => Format::Xlsx,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Only report what would change (default true); `false` applies the file.
    pub dry_run: Option<bool>,
    /// System administrators only: import into another tenant.
    pub tenant_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FileParams {
    /// `csv` (default) or `xlsx`.
    #[param(inline)]
    pub format: Option<FileFormat>,
    /// The language of the header row: `en` (default) or `zh`. Both are read back.
    pub lang: Option<String>,
    /// System administrators only: another tenant's directory.
    pub tenant_id: Option<String>,
}

/// What an import does with a row.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RowAction {
    Add,
    Update,
    Unchanged,
    Refuse,
}

/// One row of the file and what the import does (or would do) with it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportRow {
    /// The row's line in the file (the header is line 1).
    pub line: usize,
    /// `user` or `contact` (as the row says; empty when it says neither).
    pub kind: String,
    pub name: String,
    /// What the row was matched by (`login_name`, `extension`, `email`, `mobile`,
    /// `landline`), absent when it matched nobody.
    pub matched_by: Option<String>,
    pub action: RowAction,
    /// The person it adds or updates (a new id for an addition).
    pub id: Option<String>,
    /// For an update, the fields that change.
    pub changes: Vec<String>,
    /// For a refusal, each field and why.
    pub errors: Vec<FieldError>,
}

/// The outcome of an import (or of its dry run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Whether it was written (never with a refused row).
    pub applied: bool,
    /// `csv` or `xlsx`, as read from the file.
    pub format: String,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub refused: usize,
    /// Departments (paths such as `Sales/North`) that the file's rows need and that do not
    /// exist: they are (or would be) created.
    pub departments_created: Vec<String>,
    pub rows: Vec<ImportRow>,
}

const REFUSAL: &str = "only administrators import and export the directory";

async fn target_tenant(
    conn: &mut Conn,
    caller: &Caller,
    tenant: &Option<String>,
) -> ApiResult<String> {
    match tenant {
        None => Ok(caller.tenant_id().to_owned()),
        Some(id) if caller.sees_tenant(id) => {
            repo::tenants::get(conn, id)
                .await?
                .ok_or_else(|| ApiError::not_found("tenant"))?;
            Ok(id.clone())
        }
        Some(_) => Err(ApiError::not_found("tenant")),
    }
}

fn entry<'a>(action: &'static str, tenant_id: &'a str, detail: serde_json::Value) -> Audit<'a> {
    Audit {
        action,
        tenant_id,
        target_type: "directory",
        target_id: None,
        detail,
    }
}

/// The tenant's directory as the import and export see it.
struct Directory {
    users: Vec<User>,
    contacts: Vec<Contact>,
    departments: Vec<Department>,
}

async fn load_directory(conn: &mut Conn, tenant_id: &str) -> ApiResult<Directory> {
    let mut dir = Directory {
        users: Vec::new(),
        contacts: Vec::new(),
        departments: Vec::new(),
    };
    let mut after = String::new();
    loop {
        let page = repo::users::list(conn, tenant_id, &after, 1000).await?;
        dir.users.extend(page.items);
        match page.next_cursor {
            Some(next) => after = next,
            None => break,
        }
    }
    after.clear();
    loop {
        let page =
            repo::contacts::list(conn, tenant_id, "", Books::Enterprise, &after, 1000).await?;
        dir.contacts.extend(page.items);
        match page.next_cursor {
            Some(next) => after = next,
            None => break,
        }
    }
    after.clear();
    loop {
        let page = repo::departments::list(conn, tenant_id, &after, 1000).await?;
        dir.departments.extend(page.items);
        match page.next_cursor {
            Some(next) => after = next,
            None => break,
        }
    }
    Ok(dir)
}

/// Department ids to paths (`Sales/North`) and back.
struct Tree {
    path_of: HashMap<String, String>,
    by_place: HashMap<(String, String), String>,
}

impl Tree {
    fn new(departments: &[Department]) -> Tree {
        let by_id: HashMap<&str, &Department> =
            departments.iter().map(|d| (d.id.as_str(), d)).collect();
        let mut path_of = HashMap::new();
        for d in departments {
            let mut names = vec![d.name.as_str()];
            let mut at = d.parent_id.as_deref();
            // The API keeps the tree acyclic; the bound only guards against a corrupt one.
            for _ in 0..64 {
                let Some(parent) = at.and_then(|id| by_id.get(id)) else {
                    break;
                };
                names.push(parent.name.as_str());
                at = parent.parent_id.as_deref();
            }
            names.reverse();
            path_of.insert(d.id.clone(), names.join("/"));
        }
        let by_place = departments
            .iter()
            .map(|d| {
                (
                    (d.parent_id.clone().unwrap_or_default(), d.name.clone()),
                    d.id.clone(),
                )
            })
            .collect();
        Tree { path_of, by_place }
    }

    fn path(&self, id: Option<&str>) -> String {
        id.and_then(|id| self.path_of.get(id))
            .cloned()
            .unwrap_or_default()
    }
}

/// A department path's segments, checked: 1–100 characters each, at most 16 deep.
fn segments(path: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('/').map(|s| s.trim().to_owned()).collect();
    if parts.len() > 16 {
        return Err("a department path is at most 16 levels deep".into());
    }
    for part in &parts {
        let mut c = Checks::new();
        c.text("department", part, 1, 100);
        if part.is_empty() || c.finish().is_err() {
            return Err(format!(
                "{path:?} is not a department path such as Sales/North (each part 1 to 100 characters)"
            ));
        }
    }
    Ok(parts)
}

/// The plan of an import: the report, and what applying it writes.
struct Plan {
    report: ImportReport,
    new_departments: Vec<Department>,
    add_users: Vec<User>,
    update_users: Vec<User>,
    add_contacts: Vec<Contact>,
    update_contacts: Vec<Contact>,
}

/// A row's optional cell: `None` when the file has no such column (leave the field), else
/// the value (an empty cell clears it).
fn optional(row: &Row, column: Column) -> Option<Option<String>> {
    row.get(column)
        .map(|v| (!v.is_empty()).then(|| v.to_owned()))
}

fn changed<T: PartialEq>(changes: &mut Vec<String>, field: &str, old: &T, new: &T) {
    if old != new {
        changes.push(field.to_owned());
    }
}

async fn plan(
    conn: &mut Conn,
    caller: &Caller,
    tenant_id: &str,
    table: &Table,
    format: Format,
    dry_run: bool,
) -> ApiResult<Plan> {
    let dir = load_directory(conn, tenant_id).await?;
    let mut tree = Tree::new(&dir.departments);
    let now = now_ms();
    let mut plan = Plan {
        report: ImportReport {
            dry_run,
            applied: false,
            format: format.extension().to_owned(),
            added: 0,
            updated: 0,
            unchanged: 0,
            refused: 0,
            departments_created: Vec::new(),
            rows: Vec::with_capacity(table.rows.len()),
        },
        new_departments: Vec::new(),
        add_users: Vec::new(),
        update_users: Vec::new(),
        add_contacts: Vec::new(),
        update_contacts: Vec::new(),
    };
    let user_by_login: HashMap<&str, &User> =
        dir.users.iter().map(|u| (u.username.as_str(), u)).collect();
    let user_by_extension: HashMap<&str, &User> = dir
        .users
        .iter()
        .filter_map(|u| u.extension.as_deref().map(|e| (e, u)))
        .collect();
    let mut contact_keys: HashMap<(Column, String), Vec<usize>> = HashMap::new();
    for (i, c) in dir.contacts.iter().enumerate() {
        for (column, value) in [
            (Column::Extension, &c.extension),
            (Column::Email, &c.email),
            (Column::Mobile, &c.mobile),
            (Column::Landline, &c.landline),
        ] {
            if let Some(v) = value {
                let v = if column == Column::Email {
                    v.to_lowercase()
                } else {
                    v.clone()
                };
                contact_keys.entry((column, v)).or_default().push(i);
            }
        }
    }
    // Within the file: login names and user extensions, contact keys, each seen once.
    let mut seen: HashMap<(&str, String), usize> = HashMap::new();
    for row in &table.rows {
        let mut c = Checks::new();
        let kind_cell = row.get(Column::Kind).unwrap_or("").to_lowercase();
        let kind = match kind_cell.as_str() {
            "user" | "用户" => "user",
            "contact" | "联系人" => "contact",
            _ => {
                c.fail("kind", "must be user or contact");
                ""
            }
        };
        let name = row.get(Column::Name).unwrap_or("").to_owned();
        c.text("name", &name, 1, 100);
        let title = optional(row, Column::Title);
        if let Some(Some(t)) = &title {
            c.text("title", t, 0, 100);
        }
        let extension = optional(row, Column::Extension);
        if let Some(Some(v)) = &extension {
            c.digits("extension", v, 2, 15);
        }
        let mobile = optional(row, Column::Mobile);
        if let Some(Some(v)) = &mobile {
            c.phone("mobile", v);
        }
        let landline = optional(row, Column::Landline);
        if let Some(Some(v)) = &landline {
            c.phone("landline", v);
        }
        let email = optional(row, Column::Email).map(|e| e.map(|e| e.to_lowercase()));
        if let Some(Some(v)) = &email {
            c.email("email", v);
        }
        let login = row.get(Column::LoginName).unwrap_or("").to_lowercase();
        match kind {
            "user" if login.is_empty() => c.fail("login_name", "a user needs a login name"),
            "user" => c.username("login_name", &login),
            "contact" if !login.is_empty() => c.fail(
                "login_name",
                "only users have a login name; leave it empty for a contact",
            ),
            _ => {}
        }
        // The department: an existing path, or one made of departments to create.
        let mut department_id: Option<Option<String>> = None;
        if let Some(path) = optional(row, Column::Department) {
            match path {
                None => department_id = Some(None),
                Some(path) => match segments(&path) {
                    Err(reason) => c.fail("department", reason),
                    Ok(parts) => {
                        let mut parent = String::new();
                        for (depth, part) in parts.iter().enumerate() {
                            let key = (parent.clone(), part.clone());
                            parent = match tree.by_place.get(&key) {
                                Some(id) => id.clone(),
                                None => {
                                    let d = Department {
                                        id: new_id(),
                                        tenant_id: tenant_id.to_owned(),
                                        parent_id: (!key.0.is_empty()).then(|| key.0.clone()),
                                        name: part.clone(),
                                        sort_order: 0,
                                        created_at: now,
                                        updated_at: now,
                                    };
                                    let full = parts[..=depth].join("/");
                                    tree.path_of.insert(d.id.clone(), full.clone());
                                    tree.by_place.insert(key, d.id.clone());
                                    plan.report.departments_created.push(full);
                                    let id = d.id.clone();
                                    plan.new_departments.push(d);
                                    id
                                }
                            };
                        }
                        department_id = Some(Some(parent));
                    }
                },
            }
        }
        let mut out = ImportRow {
            line: row.line,
            kind: kind.to_owned(),
            name: name.clone(),
            matched_by: None,
            action: RowAction::Refuse,
            id: None,
            changes: Vec::new(),
            errors: Vec::new(),
        };
        let mut duplicate = |c: &mut Checks, field: &str, scope: &'static str, value: &str| {
            if let Some(first) = seen.insert((scope, value.to_owned()), row.line) {
                c.fail(field, format!("the same {field} as line {first}"));
                seen.insert((scope, value.to_owned()), first);
            }
        };
        if kind == "user" {
            if !login.is_empty() {
                duplicate(&mut c, "login_name", "user", &login);
            }
            if let Some(Some(ext)) = &extension {
                duplicate(&mut c, "extension", "user-extension", ext);
            }
            let existing = user_by_login.get(login.as_str()).copied();
            if existing.is_none()
                && !login.is_empty()
                && repo::users::get_by_username(conn, &login).await?.is_some()
            {
                c.fail(
                    "login_name",
                    "is already taken by an account of another tenant",
                );
            }
            if let Some(u) = existing
                && u.kind == AccountKind::SystemAdmin
                && !caller.is_system_admin()
            {
                c.fail(
                    "login_name",
                    "is a system administrator's account, which only system administrators change",
                );
            }
            if let Some(Some(ext)) = &extension
                && let Some(other) = user_by_extension.get(ext.as_str())
                && existing.is_none_or(|u| u.id != other.id)
            {
                c.fail(
                    "extension",
                    format!(
                        "is already the extension of {} ({})",
                        other.display_name, other.username
                    ),
                );
            }
            let mut user = existing.cloned().unwrap_or_else(|| User {
                id: new_id(),
                tenant_id: tenant_id.to_owned(),
                username: login.clone(),
                display_name: String::new(),
                // No password: the account cannot log in until an administrator sets one.
                password_hash: String::new(),
                email: None,
                mobile: None,
                landline: None,
                extension: None,
                department_id: None,
                title: String::new(),
                sip_ha1_md5: None,
                sip_ha1_sha256: None,
                sip_password_set: false,
                language: None,
                kind: AccountKind::User,
                status: UserStatus::Active,
                created_at: now,
                updated_at: now,
            });
            let before = user.clone();
            user.display_name = name.clone();
            if let Some(v) = title {
                user.title = v.unwrap_or_default();
            }
            if let Some(v) = extension {
                if v != user.extension {
                    // The SIP password's digests are bound to the extension.
                    user.sip_ha1_md5 = None;
                    user.sip_ha1_sha256 = None;
                    user.sip_password_set = false;
                }
                user.extension = v;
            }
            if let Some(v) = mobile {
                user.mobile = v;
            }
            if let Some(v) = landline {
                user.landline = v;
            }
            if let Some(v) = email {
                user.email = v;
            }
            if let Some(v) = department_id {
                user.department_id = v;
            }
            out.id = Some(user.id.clone());
            if let Err(e) = c.finish() {
                out.errors = e.errors;
            } else if existing.is_some() {
                out.matched_by = Some("login_name".into());
                let ch = &mut out.changes;
                changed(ch, "name", &before.display_name, &user.display_name);
                changed(ch, "department", &before.department_id, &user.department_id);
                changed(ch, "title", &before.title, &user.title);
                changed(ch, "extension", &before.extension, &user.extension);
                changed(ch, "mobile", &before.mobile, &user.mobile);
                changed(ch, "landline", &before.landline, &user.landline);
                changed(ch, "email", &before.email, &user.email);
                if ch.is_empty() {
                    out.action = RowAction::Unchanged;
                } else {
                    out.action = RowAction::Update;
                    user.updated_at = now;
                    plan.update_users.push(user);
                }
            } else {
                out.action = RowAction::Add;
                plan.add_users.push(user);
            }
        } else if kind == "contact" {
            // The first key the row has that is not empty decides the match.
            let key = [
                (Column::Extension, &extension),
                (Column::Email, &email),
                (Column::Mobile, &mobile),
                (Column::Landline, &landline),
            ]
            .into_iter()
            .find_map(|(column, v)| v.clone().flatten().map(|v| (column, v)));
            let mut existing = None;
            if let Some((column, value)) = &key {
                duplicate(
                    &mut c,
                    column.key(),
                    "contact",
                    &format!("{}:{value}", column.key()),
                );
                match contact_keys.get(&(*column, value.clone())).map(Vec::as_slice) {
                    Some([one]) => existing = Some(&dir.contacts[*one]),
                    Some([_, _, ..]) => c.fail(
                        column.key(),
                        "several contacts of the enterprise book have it: update them in the console",
                    ),
                    _ => {}
                }
                if existing.is_some() {
                    out.matched_by = Some(column.key().to_owned());
                }
            }
            let mut contact = existing.cloned().unwrap_or_else(|| Contact {
                id: new_id(),
                tenant_id: tenant_id.to_owned(),
                owner_id: None,
                name: String::new(),
                department: String::new(),
                department_id: None,
                title: String::new(),
                mobile: None,
                landline: None,
                extension: None,
                email: None,
                created_at: now,
                updated_at: now,
            });
            let before = contact.clone();
            contact.name = name.clone();
            if let Some(v) = title {
                contact.title = v.unwrap_or_default();
            }
            if let Some(v) = extension {
                contact.extension = v;
            }
            if let Some(v) = mobile {
                contact.mobile = v;
            }
            if let Some(v) = landline {
                contact.landline = v;
            }
            if let Some(v) = email {
                contact.email = v;
            }
            if let Some(v) = department_id {
                contact.department_id = v;
            }
            if contact.mobile.is_none() && contact.landline.is_none() && contact.extension.is_none()
            {
                c.fail(
                    "mobile",
                    "a contact needs a mobile, landline or extension number to be called on",
                );
            }
            out.id = Some(contact.id.clone());
            if let Err(e) = c.finish() {
                out.errors = e.errors;
                out.matched_by = None;
            } else if existing.is_some() {
                let ch = &mut out.changes;
                changed(ch, "name", &before.name, &contact.name);
                changed(
                    ch,
                    "department",
                    &before.department_id,
                    &contact.department_id,
                );
                changed(ch, "title", &before.title, &contact.title);
                changed(ch, "extension", &before.extension, &contact.extension);
                changed(ch, "mobile", &before.mobile, &contact.mobile);
                changed(ch, "landline", &before.landline, &contact.landline);
                changed(ch, "email", &before.email, &contact.email);
                if ch.is_empty() {
                    out.action = RowAction::Unchanged;
                } else {
                    out.action = RowAction::Update;
                    contact.updated_at = now;
                    plan.update_contacts.push(contact);
                }
            } else {
                out.action = RowAction::Add;
                plan.add_contacts.push(contact);
            }
        } else {
            out.errors = c.finish().err().map(|e| e.errors).unwrap_or_default();
        }
        if out.action == RowAction::Refuse {
            out.id = None;
        }
        match out.action {
            RowAction::Add => plan.report.added += 1,
            RowAction::Update => plan.report.updated += 1,
            RowAction::Unchanged => plan.report.unchanged += 1,
            RowAction::Refuse => plan.report.refused += 1,
        }
        plan.report.rows.push(out);
    }
    // Departments only rows that were refused needed are not created.
    let used: std::collections::HashSet<&str> = plan
        .add_users
        .iter()
        .chain(&plan.update_users)
        .filter_map(|u| u.department_id.as_deref())
        .chain(
            plan.add_contacts
                .iter()
                .chain(&plan.update_contacts)
                .filter_map(|c| c.department_id.as_deref()),
        )
        .collect();
    let mut needed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let parent_of: HashMap<&str, Option<&str>> = plan
        .new_departments
        .iter()
        .map(|d| (d.id.as_str(), d.parent_id.as_deref()))
        .collect();
    for id in used {
        let mut at = Some(id);
        while let Some(id) = at {
            match parent_of.get(id) {
                Some(parent) => {
                    needed.insert(id.to_owned());
                    at = *parent;
                }
                None => break,
            }
        }
    }
    let keep: Vec<bool> = plan
        .new_departments
        .iter()
        .map(|d| needed.contains(&d.id))
        .collect();
    let mut i = 0;
    plan.report.departments_created.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    plan.new_departments.retain(|d| needed.contains(&d.id));
    Ok(plan)
}

/// The refused rows as a 422 naming `rows[i].field` (i: the row's index in `rows`).
fn refusal(report: &ImportReport) -> ApiError {
    let mut errors = Vec::new();
    for (i, row) in report.rows.iter().enumerate() {
        for e in &row.errors {
            errors.push(FieldError {
                field: format!("rows[{i}].{}", e.field),
                reason: format!("line {}: {}", row.line, e.reason),
            });
        }
    }
    let mut err = ApiError::invalid(errors);
    err.detail = format!(
        "{} of {} rows are refused; nothing was imported (a dry run lists them)",
        report.refused,
        report.rows.len()
    );
    err
}

fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::TooLarge => ApiError {
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            ..ApiError::bad_request(e.to_string())
        },
        _ => {
            let mut err = ApiError::field(e.field(), e.to_string());
            err.detail = e.to_string();
            err
        }
    }
}

/// Import people (users and enterprise contacts) from a CSV or XLSX file made from the
/// template (administrators). The body is the file itself (any content type; XLSX is
/// recognised by its bytes). With `dry_run` (the default) nothing is written: the answer
/// reports row by row what would be added, updated or refused and why. With
/// `dry_run=false` the file is applied in one transaction when no row is refused, else 422
/// naming each refused row's fields (`rows[i].field`) and nothing changes.
#[utoipa::path(post, path = "/directory/import", operation_id = "importDirectory", tag = "directory",
    security(("bearer" = [])), params(ImportParams),
    request_body(content = Vec<u8>, content_type = "text/csv", description = "The CSV or XLSX file"),
    responses((status = 200, body = ImportReport), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn import_directory(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    let dry_run = params.dry_run.unwrap_or(true);
    let tenant_id = {
        let mut conn = state.store.conn().await?;
        target_tenant(&mut conn, &caller, &params.tenant_id).await?
    };
    if !caller.administers(&tenant_id) {
        return Err(deny(
            &state,
            &caller,
            entry(
                "importDirectory",
                &tenant_id,
                serde_json::json!({ "dry_run": dry_run }),
            ),
            REFUSAL,
        )
        .await);
    }
    let format = Format::sniff(&body);
    let table = tokio::task::spawn_blocking(move || directory_io::read(&body))
        .await
        .map_err(|e| ApiError::internal(format!("reading the file failed: {e}")))?
        .map_err(file_error)?;
    let mut tx = state.store.begin().await?;
    let mut plan = plan(&mut tx, &caller, &tenant_id, &table, format, dry_run).await?;
    if dry_run {
        return Ok(Json(plan.report));
    }
    if plan.report.refused > 0 {
        return Err(refusal(&plan.report));
    }
    for d in &plan.new_departments {
        repo::departments::insert(&mut tx, d).await?;
    }
    for u in &plan.add_users {
        repo::users::insert(&mut tx, u).await?;
    }
    for u in &plan.update_users {
        repo::users::update(&mut tx, u).await?;
    }
    for c in &plan.add_contacts {
        repo::contacts::insert(&mut tx, c).await?;
    }
    for c in &plan.update_contacts {
        repo::contacts::update(&mut tx, c).await?;
    }
    let r = &plan.report;
    let detail = serde_json::json!({
        "format": r.format, "rows": r.rows.len(), "added": r.added, "updated": r.updated,
        "unchanged": r.unchanged, "departments_created": r.departments_created.len(),
    });
    audit(
        &mut tx,
        &caller,
        entry("importDirectory", &tenant_id, detail),
    )
    .await?;
    tx.commit().await?;
    plan.report.applied = true;
    Ok(Json(plan.report))
}

fn attachment(format: Format, name: &str, bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{name}.{}\"",
        format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn english(lang: &Option<String>) -> ApiResult<bool> {
    match lang.as_deref() {
        None | Some("en") => Ok(true),
        Some("zh") => Ok(false),
        Some(_) => Err(ApiError::field("lang", "must be en or zh")),
    }
}

/// Export the directory's people (every user of the tenant and the enterprise address book)
/// as CSV or XLSX in the template's columns (administrators). Importing the export again
/// changes nothing.
#[utoipa::path(get, path = "/directory/export", operation_id = "exportDirectory", tag = "directory",
    security(("bearer" = [])), params(FileParams),
    responses((status = 200, description = "The file: CSV or XLSX as `format` says", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn export_directory(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<FileParams>,
) -> ApiResult<Response> {
    let format: Format = params.format.unwrap_or_default().into();
    let english = english(&params.lang)?;
    let mut conn = state.store.conn().await?;
    let tenant_id = target_tenant(&mut conn, &caller, &params.tenant_id).await?;
    if !caller.administers(&tenant_id) {
        drop(conn);
        return Err(deny(
            &state,
            &caller,
            entry(
                "exportDirectory",
                &tenant_id,
                serde_json::json!({ "format": format.extension() }),
            ),
            REFUSAL,
        )
        .await);
    }
    let dir = load_directory(&mut conn, &tenant_id).await?;
    let tree = Tree::new(&dir.departments);
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut users: Vec<&User> = dir.users.iter().collect();
    users.sort_by(|a, b| (&a.display_name, &a.id).cmp(&(&b.display_name, &b.id)));
    let mut contacts: Vec<&Contact> = dir.contacts.iter().collect();
    contacts.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(users.len() + contacts.len());
    for u in users {
        rows.push(vec![
            "user".into(),
            u.display_name.clone(),
            u.username.clone(),
            tree.path(u.department_id.as_deref()),
            u.title.clone(),
            text(&u.extension),
            text(&u.mobile),
            text(&u.landline),
            text(&u.email),
        ]);
    }
    for c in contacts {
        rows.push(vec![
            "contact".into(),
            c.name.clone(),
            String::new(),
            tree.path(c.department_id.as_deref()),
            c.title.clone(),
            text(&c.extension),
            text(&c.mobile),
            text(&c.landline),
            text(&c.email),
        ]);
    }
    let bytes = tokio::task::spawn_blocking(move || directory_io::write(format, english, &rows))
        .await
        .map_err(|e| ApiError::internal(format!("writing the export failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("writing the export failed: {e}")))?;
    Ok(attachment(format, "directory", bytes))
}

/// The blank import template (header row; the XLSX one with a help sheet), in English or
/// Chinese headers (both are read back). Anybody of a tenant may fetch it.
#[utoipa::path(get, path = "/directory/template", operation_id = "directoryTemplate", tag = "directory",
    security(("bearer" = [])), params(FileParams),
    responses((status = 200, description = "The template: CSV or XLSX as `format` says", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 422, body = Problem)))]
async fn directory_template(
    _caller: Caller,
    ApiQuery(params): ApiQuery<FileParams>,
) -> ApiResult<Response> {
    let format: Format = params.format.unwrap_or_default().into();
    let english = english(&params.lang)?;
    let bytes = directory_io::write(format, english, &[])
        .map_err(|e| ApiError::internal(format!("writing the template failed: {e}")))?;
    Ok(attachment(format, "directory-template", bytes))
}
