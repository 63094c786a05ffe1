//! The directory's store side on SQLite and PostgreSQL: rows written before migration 0013
//! (a free-text department, no search key) are brought into the directory at start-up.

use conclave_store::model::*;
use conclave_store::repo::directory::Search;
use conclave_store::testing::{pg_scratch, postgres_url};
use conclave_store::{Store, new_id, repo};

fn contact(tenant_id: &str, owner_id: Option<&str>, name: &str, department: &str) -> Contact {
    Contact {
        id: new_id(),
        tenant_id: tenant_id.into(),
        owner_id: owner_id.map(Into::into),
        name: name.into(),
        department: department.into(),
        department_id: None,
        title: String::new(),
        mobile: Some("13800000000".into()),
        landline: None,
        extension: None,
        email: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// Writes contacts as they were before the directory, reopens the store, checks the upgrade.
async fn legacy_rows_upgrade(url: &str) {
    let store = Store::open(url).await.expect("open");
    let tenant = Tenant {
        id: new_id(),
        name: new_id(),
        sip_domain: None,
        sip_sha256_only: false,
        recording_retention_days: None,
        branding: serde_json::json!({}),
        created_at: 1,
        updated_at: 1,
    };
    let owner = User {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        username: new_id(),
        display_name: "Owner".into(),
        password_hash: "x".into(),
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
        created_at: 1,
        updated_at: 1,
    };
    let sales_a = contact(&tenant.id, None, "张三", "Sales");
    let sales_b = contact(&tenant.id, None, "李四", " Sales");
    let support = contact(&tenant.id, None, "Wang", "Support");
    let personal = contact(&tenant.id, Some(&owner.id), "赵六", "Friends");
    {
        let mut conn = store.conn().await.expect("conn");
        repo::tenants::insert(&mut conn, &tenant)
            .await
            .expect("tenant");
        repo::users::insert(&mut conn, &owner).await.expect("user");
        for c in [&sales_a, &sales_b, &support, &personal] {
            repo::contacts::insert(&mut conn, c).await.expect("contact");
        }
        // As the rows were before 0013's upgrade ran.
        sqlx::query("UPDATE contacts SET search_key = NULL")
            .execute(&mut *conn)
            .await
            .expect("forget keys");
        sqlx::query("UPDATE users SET search_key = NULL")
            .execute(&mut *conn)
            .await
            .expect("forget keys");
    }
    store.close().await;

    let store = Store::open(url).await.expect("reopen");
    let mut conn = store.conn().await.expect("conn");
    let departments = repo::departments::list(&mut conn, &tenant.id, "", 100)
        .await
        .expect("list")
        .items;
    let mut names: Vec<_> = departments.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["Sales", "Support"],
        "one per distinct label, trimmed"
    );
    assert!(departments.iter().all(|d| d.parent_id.is_none()));
    let sales = departments
        .iter()
        .find(|d| d.name == "Sales")
        .expect("sales");
    for c in [&sales_a, &sales_b] {
        let c = repo::contacts::get(&mut conn, &c.id)
            .await
            .expect("get")
            .expect("contact");
        assert_eq!(c.department_id.as_deref(), Some(sales.id.as_str()));
        assert_eq!(c.department, "", "the label is cleared");
    }
    let personal = repo::contacts::get(&mut conn, &personal.id)
        .await
        .expect("get")
        .expect("contact");
    assert_eq!(personal.department, "Friends", "personal labels stay");
    assert_eq!(personal.department_id, None);
    // Search keys were computed: 张三 by its initials, the owner by name.
    let found = repo::directory::search(
        &mut conn,
        &tenant.id,
        &owner.id,
        &Search {
            query: "zs",
            ..Search::default()
        },
        "",
        10,
    )
    .await
    .expect("search");
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].name, "张三");
    let found = repo::directory::search(
        &mut conn,
        &tenant.id,
        &owner.id,
        &Search {
            query: "owner",
            ..Search::default()
        },
        "",
        10,
    )
    .await
    .expect("search");
    assert_eq!(found.items.len(), 1);
    drop(conn);
    store.close().await;
    // A third start finds nothing more to do.
    let store = Store::open(url).await.expect("third open");
    let mut conn = store.conn().await.expect("conn");
    let again = repo::departments::list(&mut conn, &tenant.id, "", 100)
        .await
        .expect("list");
    assert_eq!(again.items.len(), 2);
    drop(conn);
    store.close().await;
}

#[tokio::test]
async fn legacy_rows_upgrade_on_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
    legacy_rows_upgrade(&url).await;
}

#[tokio::test]
async fn legacy_rows_upgrade_on_postgres() {
    let Some(base) = postgres_url("directory_upgrade") else {
        return;
    };
    let scratch = pg_scratch(base).await;
    legacy_rows_upgrade(&scratch.url()).await;
}
