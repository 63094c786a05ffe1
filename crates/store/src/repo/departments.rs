//! The organisation tree.

use super::*;

fn from_row(row: &AnyRow) -> Result<Department> {
    Ok(Department {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        parent_id: row.try_get("parent_id")?,
        name: row.try_get("name")?,
        sort_order: row.try_get("sort_order")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert(conn: &mut Conn, d: &Department) -> Result<()> {
    sqlx::query(
        "INSERT INTO departments (id, tenant_id, parent_id, name, sort_order, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&d.id)
    .bind(&d.tenant_id)
    .bind(&d.parent_id)
    .bind(&d.name)
    .bind(d.sort_order)
    .bind(d.created_at)
    .bind(d.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut Conn, d: &Department) -> Result<()> {
    sqlx::query(
        "UPDATE departments SET parent_id = $2, name = $3, sort_order = $4, updated_at = $5 \
         WHERE id = $1",
    )
    .bind(&d.id)
    .bind(&d.parent_id)
    .bind(&d.name)
    .bind(d.sort_order)
    .bind(d.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Department>> {
    get_by_id(conn, "departments", id, from_row).await
}

/// The sibling of that name (under `parent_id`, or at the top), if any.
pub async fn sibling_named(
    conn: &mut Conn,
    tenant_id: &str,
    parent_id: Option<&str>,
    name: &str,
) -> Result<Option<Department>> {
    let row = sqlx::query(
        "SELECT * FROM departments WHERE tenant_id = $1 AND COALESCE(parent_id, '') = $2 \
         AND name = $3",
    )
    .bind(tenant_id)
    .bind(parent_id.unwrap_or(""))
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of a tenant's departments, in id (creation) order.
pub async fn list(
    conn: &mut Conn,
    tenant_id: &str,
    after: &str,
    limit: i64,
) -> Result<Page<Department>> {
    tenant_page(
        conn,
        "departments",
        tenant_id,
        after,
        limit,
        from_row,
        |d| d.id.clone(),
    )
    .await
}

/// Is `candidate` the department `id` itself or one of its descendants?
pub async fn is_in_subtree(conn: &mut Conn, id: &str, candidate: &str) -> Result<bool> {
    let row = sqlx::query(
        "WITH RECURSIVE sub(id) AS (SELECT id FROM departments WHERE id = $1 \
         UNION SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id) \
         SELECT COUNT(*) AS n FROM sub WHERE id = $2",
    )
    .bind(id)
    .bind(candidate)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// What still hangs on a department: (sub-departments, users, contacts).
pub async fn dependents(conn: &mut Conn, id: &str) -> Result<(i64, i64, i64)> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM departments WHERE parent_id = $1) AS children, \
         (SELECT COUNT(*) FROM users WHERE department_id = $1) AS users, \
         (SELECT COUNT(*) FROM contacts WHERE department_id = $1) AS contacts",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok((
        row.try_get("children")?,
        row.try_get("users")?,
        row.try_get("contacts")?,
    ))
}

/// Moves a department's sub-departments and people to `parent_id` (people to no department
/// when it is absent), before the department is deleted. Search keys do not change.
pub async fn hand_down(conn: &mut Conn, id: &str, parent_id: Option<&str>, at: i64) -> Result<()> {
    sqlx::query("UPDATE departments SET parent_id = $2, updated_at = $3 WHERE parent_id = $1")
        .bind(id)
        .bind(parent_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    for table in ["users", "contacts"] {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET department_id = $2, updated_at = $3 WHERE department_id = $1"
        ));
        sqlx::query(sql)
            .bind(id)
            .bind(parent_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<bool> {
    delete_by_id(conn, "departments", id).await
}
