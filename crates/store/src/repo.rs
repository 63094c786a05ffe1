//! Repositories: plain async functions over a connection, one module per table.
//!
//! Queries use `$n` placeholders, which both SQLite and PostgreSQL accept through sqlx.

use crate::model::*;
use crate::{Conn, Result, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} {value:?}"))
}

/// A BIGINT 0/1 flag.
fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn json_column(row: &AnyRow, column: &str) -> Result<serde_json::Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub mod bookings;
pub mod cluster;
pub mod departments;
pub mod directory;
pub mod groups;
pub mod mail;
pub mod minutes;
pub mod recordings;
pub mod streams;

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

fn page<T>(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// One row by id from `table` (a constant of this module, never user input).
async fn get_by_id<T>(
    conn: &mut Conn,
    table: &'static str,
    id: &str,
    from_row: fn(&AnyRow) -> Result<T>,
) -> Result<Option<T>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM {table} WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Deletes one row by id; false when there was none.
async fn delete_by_id(conn: &mut Conn, table: &'static str, id: &str) -> Result<bool> {
    let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE id = $1"));
    Ok(sqlx::query(sql)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        > 0)
}

/// A page of a tenant's rows from `table`, in id (creation) order after the cursor.
async fn tenant_page<T>(
    conn: &mut Conn,
    table: &'static str,
    tenant_id: &str,
    after: &str,
    limit: i64,
    from_row: fn(&AnyRow) -> Result<T>,
    id: fn(&T) -> String,
) -> Result<Page<T>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {table} WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ));
    let rows = sqlx::query(sql)
        .bind(tenant_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(conn)
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, id))
}

pub mod tenants {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<Tenant> {
        Ok(Tenant {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            sip_domain: row.try_get("sip_domain")?,
            sip_sha256_only: row.try_get::<i64, _>("sip_sha256_only")? != 0,
            branding: json_column(row, "branding")?,
            recording_retention_days: row.try_get("recording_retention_days")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, t: &Tenant) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenants (id, name, sip_domain, branding, created_at, updated_at, \
             sip_sha256_only, recording_retention_days) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.sip_domain)
        .bind(t.branding.to_string())
        .bind(t.created_at)
        .bind(t.updated_at)
        .bind(i64::from(t.sip_sha256_only))
        .bind(t.recording_retention_days)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn update(conn: &mut Conn, t: &Tenant) -> Result<()> {
        sqlx::query(
            "UPDATE tenants SET name = $2, sip_domain = $3, branding = $4, updated_at = $5, \
             sip_sha256_only = $6, recording_retention_days = $7 WHERE id = $1",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.sip_domain)
        .bind(t.branding.to_string())
        .bind(t.updated_at)
        .bind(i64::from(t.sip_sha256_only))
        .bind(t.recording_retention_days)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Tenant>> {
        get_by_id(conn, "tenants", id, from_row).await
    }

    pub async fn get_by_sip_domain(conn: &mut Conn, domain: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE sip_domain = $1")
            .bind(domain.to_ascii_lowercase())
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list(conn: &mut Conn, after: &str, limit: i64) -> Result<Page<Tenant>> {
        let rows = sqlx::query("SELECT * FROM tenants WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit + 1)
            .fetch_all(conn)
            .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |t| t.id.clone()))
    }

    /// The SIP domains of tenants that use SHA-256 digest only.
    pub async fn sha256_only_domains(conn: &mut Conn) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT sip_domain FROM tenants WHERE sip_sha256_only <> 0 AND sip_domain IS NOT NULL",
        )
        .fetch_all(conn)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("sip_domain")?)).collect()
    }

    pub async fn count(conn: &mut Conn) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM tenants")
            .fetch_one(conn)
            .await?
            .try_get("n")?)
    }
}

pub mod users {
    use super::*;

    /// Every user's stored SIP digests (id, MD5 HA1, SHA-256 HA1), for re-sealing them.
    pub async fn sip_digests(
        conn: &mut Conn,
    ) -> Result<Vec<(String, Option<String>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT id, sip_ha1_md5, sip_ha1_sha256 FROM users \
             WHERE sip_ha1_md5 IS NOT NULL OR sip_ha1_sha256 IS NOT NULL",
        )
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("sip_ha1_md5")?,
                    r.try_get("sip_ha1_sha256")?,
                ))
            })
            .collect()
    }

    /// Replaces one user's stored SIP digests (nothing else changes).
    pub async fn set_sip_digests(
        conn: &mut Conn,
        id: &str,
        md5: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE users SET sip_ha1_md5 = $2, sip_ha1_sha256 = $3 WHERE id = $1")
            .bind(id)
            .bind(md5)
            .bind(sha256)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Forgets the MD5 digests of a tenant's users (the tenant went SHA-256 only).
    pub async fn drop_md5_digests(conn: &mut Conn, tenant_id: &str) -> Result<u64> {
        let done = sqlx::query("UPDATE users SET sip_ha1_md5 = NULL WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }

    fn from_row(row: &AnyRow) -> Result<User> {
        let kind: String = row.try_get("kind")?;
        let status: String = row.try_get("status")?;
        let sip_ha1_md5: Option<String> = row.try_get("sip_ha1_md5")?;
        let sip_ha1_sha256: Option<String> = row.try_get("sip_ha1_sha256")?;
        Ok(User {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            password_hash: row.try_get("password_hash")?,
            email: row.try_get("email")?,
            mobile: row.try_get("mobile")?,
            landline: row.try_get("landline")?,
            extension: row.try_get("extension")?,
            department_id: row.try_get("department_id")?,
            title: row.try_get("title")?,
            sip_password_set: sip_ha1_md5.is_some() || sip_ha1_sha256.is_some(),
            language: row
                .try_get::<Option<String>, _>("language")?
                .as_deref()
                .and_then(Language::parse),
            sip_ha1_md5,
            sip_ha1_sha256,
            kind: AccountKind::parse(&kind).ok_or_else(|| corrupt("account kind", &kind))?,
            status: UserStatus::parse(&status).ok_or_else(|| corrupt("user status", &status))?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, u: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, username, display_name, password_hash, email, \
             mobile, landline, extension, sip_ha1_md5, sip_ha1_sha256, kind, status, created_at, \
             updated_at, department_id, title, search_key, language) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(&u.id)
        .bind(&u.tenant_id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(&u.email)
        .bind(&u.mobile)
        .bind(&u.landline)
        .bind(&u.extension)
        .bind(&u.sip_ha1_md5)
        .bind(&u.sip_ha1_sha256)
        .bind(u.kind.as_str())
        .bind(u.status.as_str())
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(&u.department_id)
        .bind(&u.title)
        .bind(search_key(u))
        .bind(u.language.map(Language::as_str))
        .execute(conn)
        .await?;
        Ok(())
    }

    /// What the directory search matches for a user.
    pub fn search_key(u: &User) -> String {
        crate::search::search_key(
            &u.display_name,
            &[
                Some(&u.username),
                u.extension.as_deref(),
                u.mobile.as_deref(),
                u.landline.as_deref(),
                u.email.as_deref(),
            ],
        )
    }

    /// Writes every mutable field of the user.
    pub async fn update(conn: &mut Conn, u: &User) -> Result<()> {
        sqlx::query(
            "UPDATE users SET username = $2, display_name = $3, password_hash = $4, email = $5, \
             mobile = $6, landline = $7, extension = $8, sip_ha1_md5 = $9, sip_ha1_sha256 = $10, \
             kind = $11, status = $12, updated_at = $13, department_id = $14, title = $15, \
             search_key = $16, language = $17 WHERE id = $1",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(&u.email)
        .bind(&u.mobile)
        .bind(&u.landline)
        .bind(&u.extension)
        .bind(&u.sip_ha1_md5)
        .bind(&u.sip_ha1_sha256)
        .bind(u.kind.as_str())
        .bind(u.status.as_str())
        .bind(u.updated_at)
        .bind(&u.department_id)
        .bind(&u.title)
        .bind(search_key(u))
        .bind(u.language.map(Language::as_str))
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<User>> {
        get_by_id(conn, "users", id, from_row).await
    }

    pub async fn get_by_username(conn: &mut Conn, username: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn get_by_extension(
        conn: &mut Conn,
        tenant_id: &str,
        extension: &str,
    ) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND extension = $2")
            .bind(tenant_id)
            .bind(extension)
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The users of a tenant that have an extension, by extension.
    pub async fn with_extension(conn: &mut Conn, tenant_id: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE tenant_id = $1 AND extension IS NOT NULL ORDER BY extension",
        )
        .bind(tenant_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Users with this extension in any tenant (for SIP requests whose domain names none).
    pub async fn find_by_extension(conn: &mut Conn, extension: &str) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE extension = $1 ORDER BY id LIMIT 2")
            .bind(extension)
            .fetch_all(conn)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn list(
        conn: &mut Conn,
        tenant_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Page<User>> {
        tenant_page(conn, "users", tenant_id, after, limit, from_row, |x| {
            x.id.clone()
        })
        .await
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
        delete_by_id(conn, "users", id).await
    }

    pub async fn count(conn: &mut Conn) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(conn)
            .await?
            .try_get("n")?)
    }
}

pub mod rooms {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<Room> {
        let language: String = row.try_get("language")?;
        let pin: Option<String> = row.try_get("pin")?;
        Ok(Room {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            number: row.try_get("number")?,
            name: row.try_get("name")?,
            has_pin: pin.is_some(),
            pin,
            capacity: row.try_get("capacity")?,
            max_duration_minutes: row.try_get("max_duration_minutes")?,
            language: Language::parse(&language).ok_or_else(|| corrupt("language", &language))?,
            creator_id: row.try_get("creator_id")?,
            owner_id: row.try_get("owner_id")?,
            entry_chime: flag(row, "entry_chime")?,
            alone_music: flag(row, "alone_music")?,
            members_skip_pin: flag(row, "members_skip_pin")?,
            auto_record: flag(row, "auto_record")?,
            release_when_empty: flag(row, "release_when_empty")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, r: &Room) -> Result<()> {
        sqlx::query(
            "INSERT INTO rooms (id, tenant_id, number, name, pin, capacity, max_duration_minutes, \
             language, creator_id, owner_id, entry_chime, alone_music, members_skip_pin, \
             release_when_empty, created_at, updated_at, auto_record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&r.id)
        .bind(&r.tenant_id)
        .bind(&r.number)
        .bind(&r.name)
        .bind(&r.pin)
        .bind(r.capacity)
        .bind(r.max_duration_minutes)
        .bind(r.language.as_str())
        .bind(&r.creator_id)
        .bind(&r.owner_id)
        .bind(i64::from(r.entry_chime))
        .bind(i64::from(r.alone_music))
        .bind(i64::from(r.members_skip_pin))
        .bind(i64::from(r.release_when_empty))
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(i64::from(r.auto_record))
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Writes every mutable field of the room.
    pub async fn update(conn: &mut Conn, r: &Room) -> Result<()> {
        sqlx::query(
            "UPDATE rooms SET number = $2, name = $3, pin = $4, capacity = $5, \
             max_duration_minutes = $6, language = $7, owner_id = $8, entry_chime = $9, \
             alone_music = $10, members_skip_pin = $11, release_when_empty = $12, \
             updated_at = $13, auto_record = $14 WHERE id = $1",
        )
        .bind(&r.id)
        .bind(&r.number)
        .bind(&r.name)
        .bind(&r.pin)
        .bind(r.capacity)
        .bind(r.max_duration_minutes)
        .bind(r.language.as_str())
        .bind(&r.owner_id)
        .bind(i64::from(r.entry_chime))
        .bind(i64::from(r.alone_music))
        .bind(i64::from(r.members_skip_pin))
        .bind(i64::from(r.release_when_empty))
        .bind(r.updated_at)
        .bind(i64::from(r.auto_record))
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Room>> {
        get_by_id(conn, "rooms", id, from_row).await
    }

    pub async fn get_by_number(
        conn: &mut Conn,
        tenant_id: &str,
        number: &str,
    ) -> Result<Option<Room>> {
        let row = sqlx::query("SELECT * FROM rooms WHERE tenant_id = $1 AND number = $2")
            .bind(tenant_id)
            .bind(number)
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Rooms with this number in any tenant (for calls whose domain names no tenant).
    pub async fn find_by_number(conn: &mut Conn, number: &str) -> Result<Vec<Room>> {
        let rows = sqlx::query("SELECT * FROM rooms WHERE number = $1 ORDER BY id LIMIT 2")
            .bind(number)
            .fetch_all(conn)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn list(
        conn: &mut Conn,
        tenant_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Page<Room>> {
        tenant_page(conn, "rooms", tenant_id, after, limit, from_row, |x| {
            x.id.clone()
        })
        .await
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
        delete_by_id(conn, "rooms", id).await
    }

    /// How many rooms a tenant has.
    pub async fn count_of_tenant(conn: &mut Conn, tenant_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rooms WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(conn)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The role a person has in a room, or `None` when they are no member of it. The person is
    /// a user (`user_id`) and/or a caller's number (`number`, matched exactly). Members are
    /// those of the templates that meet in the room — a user member by their user id (or a
    /// number of that user: mobile, landline or extension, in the room's tenant), a contact
    /// member whose contact has that number as mobile, landline or extension, a number member
    /// with that number — with the template's role, and the room's owner and creator, who are
    /// owners. The highest role wins.
    pub async fn member_role(
        conn: &mut Conn,
        room_id: &str,
        user_id: Option<&str>,
        number: Option<&str>,
    ) -> Result<Option<conclave_conference::Role>> {
        use conclave_conference::Role;
        let user_id = user_id.filter(|u| !u.is_empty()).unwrap_or("");
        let number = number.filter(|n| !n.is_empty()).unwrap_or("");
        if user_id.is_empty() && number.is_empty() {
            return Ok(None);
        }
        let Some(room) = get(conn, room_id).await? else {
            return Ok(None);
        };
        // The users this person is: the one named (a registered extension, authenticated on
        // the call's own flow), and those of the tenant with this phone number. An extension
        // in From alone proves nothing (anyone can write it), so it is not a number here.
        let by_number = "SELECT id FROM users WHERE tenant_id = $3 AND $2 <> '' \
                         AND (mobile = $2 OR landline = $2)";
        let owners = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 AS n FROM rooms r WHERE r.id = $1 AND ( \
             ($4 <> '' AND (r.owner_id = $4 OR r.creator_id = $4)) \
             OR r.owner_id IN ({by_number}) OR r.creator_id IN ({by_number}))"
        )))
        .bind(room_id)
        .bind(number)
        .bind(&room.tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
        if owners.is_some() {
            return Ok(Some(Role::Owner));
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT tm.role FROM template_members tm \
             JOIN templates t ON t.id = tm.template_id \
             LEFT JOIN contacts c ON c.id = tm.contact_id \
             WHERE t.room_id = $1 AND ( \
             (tm.kind = 'user' AND (($4 <> '' AND tm.user_id = $4) OR tm.user_id IN ({by_number}))) \
             OR (tm.kind = 'contact' AND $2 <> '' \
                 AND (c.mobile = $2 OR c.landline = $2 OR c.extension = $2)) \
             OR (tm.kind = 'number' AND $2 <> '' AND tm.number = $2))"
        )))
        .bind(room_id)
        .bind(number)
        .bind(&room.tenant_id)
        .bind(user_id)
        .fetch_all(conn)
        .await?;
        let mut best: Option<Role> = None;
        for row in &rows {
            let role: String = row.try_get("role")?;
            let role = role.parse::<Role>().map_err(|_| corrupt("role", &role))?;
            best = best.max(Some(role));
        }
        Ok(best)
    }
}

pub mod templates {
    use super::*;
    use conclave_conference::Role;

    async fn from_row(conn: &mut Conn, row: &AnyRow) -> Result<Template> {
        let id: String = row.try_get("id")?;
        let settings: String = row.try_get("settings")?;
        let members =
            sqlx::query("SELECT * FROM template_members WHERE template_id = $1 ORDER BY position")
                .bind(&id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(member_from_row)
                .collect::<Result<Vec<_>>>()?;
        let shared_with = sqlx::query(
            "SELECT user_id FROM template_shares WHERE template_id = $1 ORDER BY user_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("user_id"))
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Template {
            tenant_id: row.try_get("tenant_id")?,
            owner_id: row.try_get("owner_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            room_id: row.try_get("room_id")?,
            settings: serde_json::from_str(&settings)
                .map_err(|e| StoreError::Corrupt(format!("template settings: {e}")))?,
            members,
            shared_with,
            copied_from: row.try_get("copied_from")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            id,
        })
    }

    fn member_from_row(row: &AnyRow) -> Result<TemplateMember> {
        let kind: String = row.try_get("kind")?;
        let role: String = row.try_get("role")?;
        Ok(TemplateMember {
            kind: match kind.as_str() {
                "user" => MemberKind::User,
                "contact" => MemberKind::Contact,
                "number" => MemberKind::Number,
                _ => return Err(corrupt("member kind", &kind)),
            },
            user_id: row.try_get("user_id")?,
            contact_id: row.try_get("contact_id")?,
            number: row.try_get("number")?,
            display_name: row.try_get("display_name")?,
            role: role.parse::<Role>().map_err(|_| corrupt("role", &role))?,
        })
    }

    async fn write_members(conn: &mut Conn, t: &Template) -> Result<()> {
        sqlx::query("DELETE FROM template_members WHERE template_id = $1")
            .bind(&t.id)
            .execute(&mut *conn)
            .await?;
        for (position, m) in t.members.iter().enumerate() {
            sqlx::query(
                "INSERT INTO template_members (template_id, position, kind, user_id, contact_id, \
                 number, display_name, role) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.id)
            .bind(position as i64)
            .bind(m.kind.as_str())
            .bind(&m.user_id)
            .bind(&m.contact_id)
            .bind(&m.number)
            .bind(&m.display_name)
            .bind(m.role.as_str())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    fn settings_json(t: &Template) -> Result<String> {
        serde_json::to_string(&t.settings)
            .map_err(|e| StoreError::Corrupt(format!("template settings: {e}")))
    }

    /// Inserts the template with its members; run it in a transaction.
    pub async fn insert(conn: &mut Conn, t: &Template) -> Result<()> {
        sqlx::query(
            "INSERT INTO templates (id, tenant_id, owner_id, name, description, room_id, \
             settings, copied_from, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.owner_id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(&t.room_id)
        .bind(settings_json(t)?)
        .bind(&t.copied_from)
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&mut *conn)
        .await?;
        write_members(conn, t).await
    }

    /// Rewrites the template and replaces its members; run it in a transaction.
    pub async fn update(conn: &mut Conn, t: &Template) -> Result<()> {
        sqlx::query(
            "UPDATE templates SET name = $2, description = $3, room_id = $4, settings = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(&t.room_id)
        .bind(settings_json(t)?)
        .bind(t.updated_at)
        .execute(&mut *conn)
        .await?;
        write_members(conn, t).await
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Template>> {
        let row = sqlx::query("SELECT * FROM templates WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(row) => Ok(Some(from_row(conn, &row).await?)),
            None => Ok(None),
        }
    }

    /// Templates of a tenant; with `visible_to`, only those the user owns or was shared.
    pub async fn list(
        conn: &mut Conn,
        tenant_id: &str,
        visible_to: Option<&str>,
        after: &str,
        limit: i64,
    ) -> Result<Page<Template>> {
        let rows = sqlx::query(
            "SELECT * FROM templates t WHERE tenant_id = $1 AND id > $2 AND ($3 = '' \
             OR owner_id = $3 OR EXISTS (SELECT 1 FROM template_shares s \
             WHERE s.template_id = t.id AND s.user_id = $3)) ORDER BY id LIMIT $4",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(visible_to.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(from_row(conn, row).await?);
        }
        Ok(page(items, limit, |t| t.id.clone()))
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
        delete_by_id(conn, "templates", id).await
    }

    /// Shares with a user; sharing twice is harmless.
    pub async fn share(conn: &mut Conn, template_id: &str, user_id: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO template_shares (template_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (template_id, user_id) DO NOTHING",
        )
        .bind(template_id)
        .bind(user_id)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn unshare(conn: &mut Conn, template_id: &str, user_id: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM template_shares WHERE template_id = $1 AND user_id = $2")
                .bind(template_id)
                .bind(user_id)
                .execute(conn)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}

pub mod sessions {
    use super::*;

    pub async fn insert(conn: &mut Conn, s: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, source, created_at, expires_at, \
             revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.token_hash)
        .bind(&s.source)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The live (unexpired, unrevoked) session with this token hash.
    pub async fn find_live(conn: &mut Conn, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT * FROM sessions WHERE token_hash = $1 AND revoked_at IS NULL \
             AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(conn)
        .await?;
        row.map(|row| {
            Ok(Session {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                token_hash: row.try_get("token_hash")?,
                source: row.try_get("source")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .transpose()
    }

    pub async fn revoke(conn: &mut Conn, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Ends every session of a user (frozen, deleted, password changed).
    pub async fn revoke_all_of_user(conn: &mut Conn, user_id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Forgets sessions that can no longer be used.
    pub async fn purge_dead(conn: &mut Conn, now: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL")
                .bind(now)
                .execute(conn)
                .await?;
        Ok(done.rows_affected())
    }
}

pub mod api_keys {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<ApiKey> {
        Ok(ApiKey {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            user_id: row.try_get("user_id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            key_hash: row.try_get("key_hash")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, k: &ApiKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, created_at, \
             expires_at, revoked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.key_hash)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.revoked_at)
        .bind(k.last_used_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<ApiKey>> {
        get_by_id(conn, "api_keys", id, from_row).await
    }

    /// The usable key with this hash: not revoked, not expired.
    pub async fn find_live(conn: &mut Conn, key_hash: &str, now: i64) -> Result<Option<ApiKey>> {
        let row = sqlx::query(
            "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(key_hash)
        .bind(now)
        .fetch_optional(conn)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Keys of a tenant; with `user_id`, only that user's.
    pub async fn list(
        conn: &mut Conn,
        tenant_id: &str,
        user_id: Option<&str>,
        after: &str,
        limit: i64,
    ) -> Result<Page<ApiKey>> {
        let rows = sqlx::query(
            "SELECT * FROM api_keys WHERE tenant_id = $1 AND ($2 = '' OR user_id = $2) \
             AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(tenant_id)
        .bind(user_id.unwrap_or(""))
        .bind(after)
        .bind(limit + 1)
        .fetch_all(conn)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |k| k.id.clone()))
    }

    pub async fn revoke(conn: &mut Conn, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn touch(conn: &mut Conn, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }
}

pub mod audit {
    use super::*;

    /// Filters for the audit log; empty strings and zeros mean "any".
    #[derive(Debug, Default, Clone)]
    pub struct Filter {
        pub tenant_id: Option<String>,
        pub actor_id: Option<String>,
        pub action: Option<String>,
        pub target_id: Option<String>,
        pub since: Option<i64>,
        pub until: Option<i64>,
    }

    pub async fn insert(conn: &mut Conn, e: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, tenant_id, actor_id, actor_name, action, target_type, \
             target_id, outcome, source, detail, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.id)
        .bind(&e.tenant_id)
        .bind(&e.actor_id)
        .bind(&e.actor_name)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(&e.outcome)
        .bind(&e.source)
        .bind(e.detail.to_string())
        .bind(e.at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Newest first; `before` is the cursor (an event id).
    pub async fn list(
        conn: &mut Conn,
        filter: &Filter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Page<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE ($1 = '' OR tenant_id = $1) \
             AND ($2 = '' OR actor_id = $2) AND ($3 = '' OR action = $3) \
             AND ($4 = '' OR target_id = $4) AND at >= $5 AND at <= $6 \
             AND ($7 = '' OR id < $7) ORDER BY id DESC LIMIT $8",
        )
        .bind(filter.tenant_id.as_deref().unwrap_or(""))
        .bind(filter.actor_id.as_deref().unwrap_or(""))
        .bind(filter.action.as_deref().unwrap_or(""))
        .bind(filter.target_id.as_deref().unwrap_or(""))
        .bind(filter.since.unwrap_or(0))
        .bind(filter.until.unwrap_or(i64::MAX))
        .bind(before.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(conn)
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(AuditEvent {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    actor_id: row.try_get("actor_id")?,
                    actor_name: row.try_get("actor_name")?,
                    action: row.try_get("action")?,
                    target_type: row.try_get("target_type")?,
                    target_id: row.try_get("target_id")?,
                    outcome: row.try_get("outcome")?,
                    source: row.try_get("source")?,
                    detail: json_column(row, "detail")?,
                    at: row.try_get("at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |e| e.id.clone()))
    }
}

pub mod contacts {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<Contact> {
        Ok(Contact {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            owner_id: row.try_get("owner_id")?,
            name: row.try_get("name")?,
            department: row.try_get("department")?,
            department_id: row.try_get("department_id")?,
            title: row.try_get("title")?,
            mobile: row.try_get("mobile")?,
            landline: row.try_get("landline")?,
            extension: row.try_get("extension")?,
            email: row.try_get("email")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, c: &Contact) -> Result<()> {
        sqlx::query(
            "INSERT INTO contacts (id, tenant_id, owner_id, name, department, mobile, landline, \
             extension, email, created_at, updated_at, department_id, title, search_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.owner_id)
        .bind(&c.name)
        .bind(&c.department)
        .bind(&c.mobile)
        .bind(&c.landline)
        .bind(&c.extension)
        .bind(&c.email)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(&c.department_id)
        .bind(&c.title)
        .bind(search_key(c))
        .execute(conn)
        .await?;
        Ok(())
    }

    /// What the directory search matches for a contact.
    pub fn search_key(c: &Contact) -> String {
        crate::search::search_key(
            &c.name,
            &[
                c.extension.as_deref(),
                c.mobile.as_deref(),
                c.landline.as_deref(),
                c.email.as_deref(),
            ],
        )
    }

    pub async fn update(conn: &mut Conn, c: &Contact) -> Result<()> {
        sqlx::query(
            "UPDATE contacts SET name = $2, department = $3, mobile = $4, landline = $5, \
             extension = $6, email = $7, updated_at = $8, department_id = $9, title = $10, \
             search_key = $11 WHERE id = $1",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.department)
        .bind(&c.mobile)
        .bind(&c.landline)
        .bind(&c.extension)
        .bind(&c.email)
        .bind(c.updated_at)
        .bind(&c.department_id)
        .bind(&c.title)
        .bind(search_key(c))
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Contact>> {
        get_by_id(conn, "contacts", id, from_row).await
    }

    /// Which books to list.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Books {
        Enterprise,
        Personal,
        Both,
    }

    /// The tenant's enterprise book and/or `user_id`'s personal book.
    pub async fn list(
        conn: &mut Conn,
        tenant_id: &str,
        user_id: &str,
        books: Books,
        after: &str,
        limit: i64,
    ) -> Result<Page<Contact>> {
        let (enterprise, personal) = match books {
            Books::Enterprise => (1, 0),
            Books::Personal => (0, 1),
            Books::Both => (1, 1),
        };
        let rows = sqlx::query(
            "SELECT * FROM contacts WHERE tenant_id = $1 AND id > $2 \
             AND (($3 = 1 AND owner_id IS NULL) OR ($4 = 1 AND owner_id = $5)) \
             ORDER BY id LIMIT $6",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(enterprise as i64)
        .bind(personal as i64)
        .bind(user_id)
        .bind(limit + 1)
        .fetch_all(conn)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |c| c.id.clone()))
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
        delete_by_id(conn, "contacts", id).await
    }
}

pub mod meetings {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<Meeting> {
        Ok(Meeting {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            room_id: row.try_get("room_id")?,
            room_number: row.try_get("room_number")?,
            room_name: row.try_get("room_name")?,
            template_id: row.try_get("template_id")?,
            started_at: row.try_get("started_at")?,
            ended_at: row.try_get("ended_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, m: &Meeting) -> Result<()> {
        sqlx::query(
            "INSERT INTO meetings (id, tenant_id, room_id, room_number, room_name, template_id, \
             started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&m.id)
        .bind(&m.tenant_id)
        .bind(&m.room_id)
        .bind(&m.room_number)
        .bind(&m.room_name)
        .bind(&m.template_id)
        .bind(m.started_at)
        .bind(m.ended_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn end(conn: &mut Conn, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE meetings SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE meeting_attendance SET left_at = $2 WHERE meeting_id = $1 AND left_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Meeting>> {
        get_by_id(conn, "meetings", id, from_row).await
    }

    /// Meetings a crash left open (no end), each with the time of its last known activity:
    /// its start, the latest join or leave of its attendance, the latest entry of its log.
    pub async fn abandoned(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT m.id, m.started_at, \
             (SELECT MAX(a.joined_at) FROM meeting_attendance a WHERE a.meeting_id = m.id) \
               AS last_joined, \
             (SELECT MAX(a.left_at) FROM meeting_attendance a WHERE a.meeting_id = m.id) \
               AS last_left, \
             (SELECT MAX(l.at) FROM meeting_log l WHERE l.meeting_id = m.id) AS last_logged \
             FROM meetings m WHERE m.ended_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM room_homes h WHERE h.meeting_id = m.id \
               AND h.lease_until > $1)",
        )
        .bind(crate::now_ms())
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|row| {
                let mut last: i64 = row.try_get("started_at")?;
                for column in ["last_joined", "last_left", "last_logged"] {
                    if let Some(at) = row.try_get::<Option<i64>, _>(column)? {
                        last = last.max(at);
                    }
                }
                Ok((row.try_get("id")?, last))
            })
            .collect()
    }

    /// A tenant's meetings, newest first, optionally within a time range and matching a room
    /// number or name; `before` is the cursor (a meeting id).
    /// A tenant's meetings, newest first: started between `since` and `until`, in a room
    /// whose number is `text` or whose name holds it, attended by someone whose name or
    /// number holds `participant` (empty: anyone).
    #[allow(clippy::too_many_arguments)]
    pub async fn list(
        conn: &mut Conn,
        tenant_id: &str,
        since: i64,
        until: i64,
        text: &str,
        participant: &str,
        before: &str,
        limit: i64,
    ) -> Result<Page<Meeting>> {
        let rows = sqlx::query(
            "SELECT * FROM meetings WHERE tenant_id = $1 AND started_at >= $2 AND started_at <= $3 \
             AND ($4 = '' OR room_number = $4 OR LOWER(room_name) LIKE '%' || LOWER($4) || '%') \
             AND ($5 = '' OR id < $5) \
             AND ($7 = '' OR EXISTS (SELECT 1 FROM meeting_attendance a WHERE \
               a.meeting_id = meetings.id AND (LOWER(a.name) LIKE '%' || LOWER($7) || '%' \
               OR a.number LIKE '%' || $7 || '%'))) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind(tenant_id)
        .bind(since)
        .bind(until)
        .bind(text)
        .bind(before)
        .bind(limit + 1)
        .bind(participant)
        .fetch_all(conn)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |m| m.id.clone()))
    }

    pub async fn joined(conn: &mut Conn, meeting_id: &str, a: &Attendance) -> Result<()> {
        sqlx::query(
            "INSERT INTO meeting_attendance (meeting_id, member_id, name, number, via, joined_at, \
             left_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(meeting_id)
        .bind(a.member_id)
        .bind(&a.name)
        .bind(&a.number)
        .bind(&a.via)
        .bind(a.joined_at)
        .bind(a.left_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn left(conn: &mut Conn, meeting_id: &str, member_id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE meeting_attendance SET left_at = $3 WHERE meeting_id = $1 AND member_id = $2 \
             AND left_at IS NULL",
        )
        .bind(meeting_id)
        .bind(member_id)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn attendance(conn: &mut Conn, meeting_id: &str) -> Result<Vec<Attendance>> {
        let rows = sqlx::query(
            "SELECT * FROM meeting_attendance WHERE meeting_id = $1 ORDER BY joined_at, member_id",
        )
        .bind(meeting_id)
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Attendance {
                    member_id: row.try_get("member_id")?,
                    name: row.try_get("name")?,
                    number: row.try_get("number")?,
                    via: row.try_get("via")?,
                    joined_at: row.try_get("joined_at")?,
                    left_at: row.try_get("left_at")?,
                })
            })
            .collect()
    }

    pub async fn log(conn: &mut Conn, meeting_id: &str, e: &MeetingLogEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO meeting_log (id, meeting_id, at, actor, kind, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&e.id)
        .bind(meeting_id)
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.kind)
        .bind(e.detail.to_string())
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn entries(conn: &mut Conn, meeting_id: &str) -> Result<Vec<MeetingLogEntry>> {
        let rows = sqlx::query("SELECT * FROM meeting_log WHERE meeting_id = $1 ORDER BY id")
            .bind(meeting_id)
            .fetch_all(conn)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MeetingLogEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    kind: row.try_get("kind")?,
                    detail: json_column(row, "detail")?,
                })
            })
            .collect()
    }
}

pub mod webhooks {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<Webhook> {
        Ok(Webhook {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            url: row.try_get("url")?,
            secret: row.try_get("secret")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, w: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, tenant_id, url, secret, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id)
        .bind(&w.tenant_id)
        .bind(&w.url)
        .bind(&w.secret)
        .bind(&w.created_by)
        .bind(w.created_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Webhook>> {
        get_by_id(conn, "webhooks", id, from_row).await
    }

    /// Every webhook of a tenant (they are few: no paging).
    pub async fn of_tenant(conn: &mut Conn, tenant_id: &str) -> Result<Vec<Webhook>> {
        let rows = sqlx::query("SELECT * FROM webhooks WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant_id)
            .fetch_all(conn)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
        delete_by_id(conn, "webhooks", id).await
    }
}

pub mod trunks {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<Trunk> {
        let settings = serde_json::from_value(json_column(row, "settings")?)
            .map_err(|e| StoreError::Corrupt(format!("trunk settings: {e}")))?;
        let password: Option<String> = row.try_get("password")?;
        Ok(Trunk {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            settings,
            has_password: password.is_some(),
            password,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn settings_json(t: &Trunk) -> Result<String> {
        serde_json::to_string(&t.settings)
            .map_err(|e| StoreError::Corrupt(format!("trunk settings: {e}")))
    }

    pub async fn insert(conn: &mut Conn, t: &Trunk) -> Result<()> {
        sqlx::query(
            "INSERT INTO trunks (id, tenant_id, name, settings, password, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.name)
        .bind(settings_json(t)?)
        .bind(&t.password)
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn update(conn: &mut Conn, t: &Trunk) -> Result<()> {
        sqlx::query(
            "UPDATE trunks SET name = $2, settings = $3, password = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(settings_json(t)?)
        .bind(&t.password)
        .bind(t.updated_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Trunk>> {
        get_by_id(conn, "trunks", id, from_row).await
    }

    /// A tenant's trunks (they are few: no paging), by name.
    pub async fn of_tenant(conn: &mut Conn, tenant_id: &str) -> Result<Vec<Trunk>> {
        let rows = sqlx::query("SELECT * FROM trunks WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(conn)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Every trunk of the installation (the SIP service registers those that want it).
    pub async fn all(conn: &mut Conn) -> Result<Vec<Trunk>> {
        let rows = sqlx::query("SELECT * FROM trunks ORDER BY id")
            .fetch_all(conn)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
        delete_by_id(conn, "trunks", id).await
    }
}

pub mod outbound_policies {
    use super::*;

    /// The tenant's policy; the defaults when none was set.
    pub async fn get(conn: &mut Conn, tenant_id: &str) -> Result<OutboundPolicy> {
        let row = sqlx::query("SELECT settings FROM outbound_policies WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(conn)
            .await?;
        match row {
            Some(row) => serde_json::from_value(json_column(&row, "settings")?)
                .map_err(|e| StoreError::Corrupt(format!("outbound policy: {e}"))),
            None => Ok(OutboundPolicy::default()),
        }
    }

    pub async fn set(conn: &mut Conn, tenant_id: &str, p: &OutboundPolicy, at: i64) -> Result<()> {
        let settings = serde_json::to_string(p)
            .map_err(|e| StoreError::Corrupt(format!("outbound policy: {e}")))?;
        sqlx::query(
            "INSERT INTO outbound_policies (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(settings)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

pub mod webhook_deliveries {
    use super::*;

    fn from_row(row: &AnyRow) -> Result<WebhookDelivery> {
        Ok(WebhookDelivery {
            id: row.try_get("id")?,
            webhook_id: row.try_get("webhook_id")?,
            event_kind: row.try_get("event_kind")?,
            body: row.try_get("body")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            created_at: row.try_get("created_at")?,
        })
    }

    pub async fn insert(conn: &mut Conn, d: &WebhookDelivery) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_kind, body, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&d.id)
        .bind(&d.webhook_id)
        .bind(&d.event_kind)
        .bind(&d.body)
        .bind(d.attempts)
        .bind(d.next_attempt_at)
        .bind(d.created_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Deliveries due at `now`, oldest first.
    pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<WebhookDelivery>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// When the next delivery falls due, if any is waiting.
    pub async fn next_due(conn: &mut Conn) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS next FROM webhook_deliveries")
            .fetch_one(conn)
            .await?;
        Ok(row.try_get("next")?)
    }

    pub async fn retry_at(conn: &mut Conn, id: &str, attempts: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $2, next_attempt_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(attempts)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Every waiting delivery falls due now (at start: the receiver may be back).
    pub async fn all_due(conn: &mut Conn, now: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE next_attempt_at > $1",
        )
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected())
    }

    /// Whether a delivery is visible to this connection (its transaction committed).
    pub async fn exists(conn: &mut Conn, id: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(conn)
                .await?
                .is_some(),
        )
    }

    pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// SCIM's `externalId` of users (migration 0015).
pub mod scim_external_ids {
    use super::*;

    pub async fn get(conn: &mut Conn, resource_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT external_id FROM scim_external_ids WHERE resource_id = $1")
            .bind(resource_id)
            .fetch_optional(conn)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("external_id")?),
            None => None,
        })
    }

    /// Sets (or, with `None`, removes) a resource's external id.
    pub async fn set(
        conn: &mut Conn,
        tenant_id: &str,
        resource_id: &str,
        external_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query("DELETE FROM scim_external_ids WHERE resource_id = $1")
            .bind(resource_id)
            .execute(&mut *conn)
            .await?;
        if let Some(external_id) = external_id {
            sqlx::query(
                "INSERT INTO scim_external_ids (resource_id, tenant_id, external_id) \
                 VALUES ($1, $2, $3)",
            )
            .bind(resource_id)
            .bind(tenant_id)
            .bind(external_id)
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}
