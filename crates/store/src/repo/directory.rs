//! Finding people (users, enterprise contacts and the caller's own) by name, pinyin or
//! number, and the one-time upgrade of rows written before the directory existed.

use super::*;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Search<'a> {
    /// Already normalized (`search::normalize_query`); empty: everybody.
    pub query: &'a str,
    /// Only people of this department…
    pub department_id: Option<&'a str>,
    /// …or of it and every department below it.
    pub subtree: bool,
}

fn entry_from_row(row: &AnyRow) -> Result<DirectoryEntry> {
    let kind: String = row.try_get("kind")?;
    let owner_id: Option<String> = row.try_get("owner_id")?;
    let kind = match kind.as_str() {
        "user" => EntryKind::User,
        "contact" => EntryKind::Contact,
        _ => return Err(corrupt("directory entry kind", &kind)),
    };
    Ok(DirectoryEntry {
        book: (kind == EntryKind::Contact).then(|| {
            if owner_id.is_some() {
                "personal".to_owned()
            } else {
                "enterprise".to_owned()
            }
        }),
        kind,
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        title: row.try_get("title")?,
        department_id: row.try_get("department_id")?,
        extension: row.try_get("extension")?,
        mobile: row.try_get("mobile")?,
        landline: row.try_get("landline")?,
        email: row.try_get("email")?,
    })
}

/// The people of a tenant that `user_id` may see (every user, the enterprise book, their own
/// book) matching `s`, by name then id, after the entry whose id is `after`.
pub async fn search(
    conn: &mut Conn,
    tenant_id: &str,
    user_id: &str,
    s: &Search<'_>,
    after: &str,
    limit: i64,
) -> Result<Page<DirectoryEntry>> {
    let (after_name, after_id) = if after.is_empty() {
        (None, "")
    } else {
        let row = sqlx::query(
            "SELECT display_name AS name FROM users WHERE id = $1 \
             UNION ALL SELECT name FROM contacts WHERE id = $1",
        )
        .bind(after)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => (Some(row.try_get::<String, _>("name")?), after),
            // The entry is gone: start again rather than fail.
            None => (None, ""),
        }
    };
    let department_filter = match (s.department_id, s.subtree) {
        (None, _) => "",
        (Some(_), false) => "AND department_id = $5",
        (Some(_), true) => "AND department_id IN (SELECT id FROM sub)",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE sub(id) AS (SELECT id FROM departments WHERE id = $5 \
         UNION SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id) \
         SELECT * FROM ( \
           SELECT 'user' AS kind, id, display_name AS name, title, department_id, extension, \
             mobile, landline, email, NULL AS owner_id, search_key \
           FROM users WHERE tenant_id = $1 \
           UNION ALL \
           SELECT 'contact' AS kind, id, name, title, department_id, extension, mobile, \
             landline, email, owner_id, search_key \
           FROM contacts WHERE tenant_id = $1 AND (owner_id IS NULL OR owner_id = $2) \
         ) people \
         WHERE ($3 = '' OR search_key LIKE $4 ESCAPE '\\') {department_filter} \
         AND ($6 = 0 OR name > $7 OR (name = $7 AND id > $8)) \
         ORDER BY name, id LIMIT $9"
    ));
    let rows = sqlx::query(sql)
        .bind(tenant_id)
        .bind(user_id)
        .bind(s.query)
        .bind(crate::search::like_pattern(s.query))
        .bind(s.department_id.unwrap_or(""))
        .bind(i64::from(after_name.is_some()))
        .bind(after_name.unwrap_or_default())
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
    let items = rows
        .iter()
        .map(entry_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, |e| e.id.clone()))
}

/// Brings rows written before migration 0013 into the directory, once: each distinct
/// department label of a tenant's enterprise book becomes a top-level department (or joins
/// the one of that name) and the label is cleared; users and contacts without a search key
/// get one. Runs at every start-up and finds nothing to do after the first.
pub async fn upgrade(pool: &sqlx::AnyPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    let labels = sqlx::query(
        "SELECT DISTINCT tenant_id, department FROM contacts \
         WHERE owner_id IS NULL AND department <> '' AND department_id IS NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = crate::now_ms();
    for row in &labels {
        let tenant_id: String = row.try_get("tenant_id")?;
        let label: String = row.try_get("department")?;
        let name: String = label.trim().chars().take(100).collect();
        let id = match super::departments::sibling_named(&mut tx, &tenant_id, None, &name).await? {
            Some(d) => d.id,
            None => {
                let d = Department {
                    id: crate::new_id(),
                    tenant_id: tenant_id.clone(),
                    parent_id: None,
                    name,
                    sort_order: 0,
                    created_at: now,
                    updated_at: now,
                };
                super::departments::insert(&mut tx, &d).await?;
                d.id
            }
        };
        sqlx::query(
            "UPDATE contacts SET department_id = $3, department = '' WHERE tenant_id = $1 \
             AND owner_id IS NULL AND department = $2 AND department_id IS NULL",
        )
        .bind(&tenant_id)
        .bind(&label)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    }
    let users = sqlx::query("SELECT id FROM users WHERE search_key IS NULL")
        .fetch_all(&mut *tx)
        .await?;
    for row in &users {
        let id: String = row.try_get("id")?;
        if let Some(u) = super::users::get(&mut tx, &id).await? {
            sqlx::query("UPDATE users SET search_key = $2 WHERE id = $1")
                .bind(&id)
                .bind(super::users::search_key(&u))
                .execute(&mut *tx)
                .await?;
        }
    }
    let contacts = sqlx::query("SELECT id FROM contacts WHERE search_key IS NULL")
        .fetch_all(&mut *tx)
        .await?;
    for row in &contacts {
        let id: String = row.try_get("id")?;
        if let Some(c) = super::contacts::get(&mut tx, &id).await? {
            sqlx::query("UPDATE contacts SET search_key = $2 WHERE id = $1")
                .bind(&id)
                .bind(super::contacts::search_key(&c))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
