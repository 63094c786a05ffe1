//! Groups of people: the enterprise's and each user's own.

use super::*;

async fn from_row(conn: &mut Conn, row: &AnyRow) -> Result<Group> {
    let id: String = row.try_get("id")?;
    let members =
        sqlx::query("SELECT * FROM directory_group_members WHERE group_id = $1 ORDER BY position")
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(member_from_row)
            .collect::<Result<Vec<_>>>()?;
    Ok(Group {
        tenant_id: row.try_get("tenant_id")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        members,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}

fn member_from_row(row: &AnyRow) -> Result<GroupMember> {
    let kind: String = row.try_get("kind")?;
    Ok(GroupMember {
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
    })
}

async fn write_members(conn: &mut Conn, g: &Group) -> Result<()> {
    sqlx::query("DELETE FROM directory_group_members WHERE group_id = $1")
        .bind(&g.id)
        .execute(&mut *conn)
        .await?;
    for (position, m) in g.members.iter().enumerate() {
        sqlx::query(
            "INSERT INTO directory_group_members (group_id, position, kind, user_id, contact_id, \
             number, display_name) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&g.id)
        .bind(position as i64)
        .bind(m.kind.as_str())
        .bind(&m.user_id)
        .bind(&m.contact_id)
        .bind(&m.number)
        .bind(&m.display_name)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts the group with its members; run it in a transaction.
pub async fn insert(conn: &mut Conn, g: &Group) -> Result<()> {
    sqlx::query(
        "INSERT INTO directory_groups (id, tenant_id, owner_id, name, description, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&g.id)
    .bind(&g.tenant_id)
    .bind(&g.owner_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(&mut *conn)
    .await?;
    write_members(conn, g).await
}

/// Rewrites the group and replaces its members; run it in a transaction.
pub async fn update(conn: &mut Conn, g: &Group) -> Result<()> {
    sqlx::query(
        "UPDATE directory_groups SET name = $2, description = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.updated_at)
    .execute(&mut *conn)
    .await?;
    write_members(conn, g).await
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Group>> {
    let row = sqlx::query("SELECT * FROM directory_groups WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

/// The group of that name with the same owner (or of the enterprise), if any.
pub async fn named(
    conn: &mut Conn,
    tenant_id: &str,
    owner_id: Option<&str>,
    name: &str,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT id FROM directory_groups WHERE tenant_id = $1 AND COALESCE(owner_id, '') = $2 \
         AND name = $3",
    )
    .bind(tenant_id)
    .bind(owner_id.unwrap_or(""))
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

/// The tenant's enterprise groups and/or `user_id`'s own, in id order.
pub async fn list(
    conn: &mut Conn,
    tenant_id: &str,
    user_id: &str,
    books: super::contacts::Books,
    after: &str,
    limit: i64,
) -> Result<Page<Group>> {
    use super::contacts::Books;
    let (enterprise, personal) = match books {
        Books::Enterprise => (1i64, 0i64),
        Books::Personal => (0, 1),
        Books::Both => (1, 1),
    };
    let rows = sqlx::query(
        "SELECT * FROM directory_groups WHERE tenant_id = $1 AND id > $2 \
         AND (($3 = 1 AND owner_id IS NULL) OR ($4 = 1 AND owner_id = $5)) \
         ORDER BY id LIMIT $6",
    )
    .bind(tenant_id)
    .bind(after)
    .bind(enterprise)
    .bind(personal)
    .bind(user_id)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(from_row(conn, row).await?);
    }
    Ok(page(items, limit, |g| g.id.clone()))
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
    delete_by_id(conn, "directory_groups", id).await
}
