//! Repositories on SQLite and PostgreSQL: expiry, revocation, unique fields, rollback.

use conclave_store::model::*;
use conclave_store::testing::{PgScratch, pg_scratch, postgres_url};
use conclave_store::{Store, StoreError, new_id, now_ms, repo};

async fn open(test: &str, postgres: bool) -> Option<(Store, Option<PgScratch>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tmp");
    if postgres {
        let scratch = pg_scratch(postgres_url(test)?).await;
        let store = Store::open(&scratch.url()).await.expect("open postgres");
        Some((store, Some(scratch), dir))
    } else {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        Some((Store::open(&url).await.expect("open sqlite"), None, dir))
    }
}

fn tenant() -> Tenant {
    Tenant {
        id: new_id(),
        name: new_id(),
        sip_domain: None,
        branding: serde_json::json!({}),
        created_at: 1,
        updated_at: 1,
    }
}

fn user(tenant_id: &str, username: &str, extension: Option<&str>) -> User {
    User {
        id: new_id(),
        tenant_id: tenant_id.into(),
        username: username.into(),
        display_name: username.into(),
        password_hash: "x".into(),
        email: None,
        mobile: None,
        landline: None,
        extension: extension.map(Into::into),
        sip_ha1_md5: None,
        sip_ha1_sha256: None,
        sip_password_set: false,
        kind: AccountKind::User,
        status: UserStatus::Active,
        created_at: 1,
        updated_at: 1,
    }
}

async fn scenario(store: &Store) {
    let mut conn = store.conn().await.expect("conn");
    let t = tenant();
    repo::tenants::insert(&mut conn, &t).await.expect("tenant");
    let u = user(&t.id, "amy", Some("1001"));
    repo::users::insert(&mut conn, &u).await.expect("user");

    // Unique fields are named, whichever backend reports them.
    match repo::users::insert(&mut conn, &user(&t.id, "amy", None)).await {
        Err(StoreError::Conflict { field }) => assert_eq!(field, "username"),
        other => panic!("expected a username conflict, got {other:?}"),
    }
    match repo::users::insert(&mut conn, &user(&t.id, "ben", Some("1001"))).await {
        Err(StoreError::Conflict { field }) => assert_eq!(field, "extension"),
        other => panic!("expected an extension conflict, got {other:?}"),
    }
    // The same extension in another tenant is fine.
    let t2 = tenant();
    repo::tenants::insert(&mut conn, &t2)
        .await
        .expect("tenant 2");
    repo::users::insert(&mut conn, &user(&t2.id, "cat", Some("1001")))
        .await
        .expect("other tenant");
    // A reference to nothing is refused.
    match repo::users::insert(&mut conn, &user("no-such-tenant", "dan", None)).await {
        Err(StoreError::Reference) => {}
        other => panic!("expected a reference error, got {other:?}"),
    }

    // Sessions: live, expired, revoked.
    let now = now_ms();
    let session = |hash: &str, expires_at| Session {
        id: new_id(),
        user_id: u.id.clone(),
        token_hash: hash.into(),
        source: "127.0.0.1".into(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let live = session("live", now + 60_000);
    repo::sessions::insert(&mut conn, &live)
        .await
        .expect("live");
    repo::sessions::insert(&mut conn, &session("old", now - 1))
        .await
        .expect("old");
    assert!(
        repo::sessions::find_live(&mut conn, "live", now)
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        repo::sessions::find_live(&mut conn, "old", now)
            .await
            .expect("q")
            .is_none()
    );
    repo::sessions::revoke(&mut conn, &live.id, now)
        .await
        .expect("revoke");
    assert!(
        repo::sessions::find_live(&mut conn, "live", now)
            .await
            .expect("q")
            .is_none()
    );
    assert_eq!(
        repo::sessions::purge_dead(&mut conn, now)
            .await
            .expect("purge"),
        2
    );

    // API keys: expired and revoked keys stop working.
    let key = |hash: &str, expires_at| ApiKey {
        id: new_id(),
        tenant_id: t.id.clone(),
        user_id: u.id.clone(),
        name: "k".into(),
        prefix: "ck_x".into(),
        key_hash: hash.into(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    let forever = key("forever", None);
    repo::api_keys::insert(&mut conn, &forever)
        .await
        .expect("key");
    repo::api_keys::insert(&mut conn, &key("expired", Some(now - 1)))
        .await
        .expect("key");
    assert!(
        repo::api_keys::find_live(&mut conn, "forever", now)
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        repo::api_keys::find_live(&mut conn, "expired", now)
            .await
            .expect("q")
            .is_none()
    );
    repo::api_keys::revoke(&mut conn, &forever.id, now)
        .await
        .expect("revoke");
    assert!(
        repo::api_keys::find_live(&mut conn, "forever", now)
            .await
            .expect("q")
            .is_none()
    );
    drop(conn);

    // A transaction that is not committed leaves nothing behind.
    let template = Template {
        id: new_id(),
        tenant_id: t.id.clone(),
        owner_id: u.id.clone(),
        name: "Rolled back".into(),
        description: String::new(),
        room_id: None,
        settings: TemplateSettings::default(),
        members: vec![TemplateMember {
            kind: MemberKind::Number,
            user_id: None,
            contact_id: None,
            number: Some("123456".into()),
            display_name: "N".into(),
            role: conclave_conference::Role::Member,
        }],
        shared_with: vec![],
        copied_from: None,
        created_at: now,
        updated_at: now,
    };
    {
        let mut tx = store.begin().await.expect("tx");
        repo::templates::insert(&mut tx, &template)
            .await
            .expect("insert");
        // dropped without commit
    }
    let mut conn = store.conn().await.expect("conn");
    assert!(
        repo::templates::get(&mut conn, &template.id)
            .await
            .expect("q")
            .is_none()
    );
    // Committed, then deleting it takes its members and shares along.
    let mut tx = store.begin().await.expect("tx");
    repo::templates::insert(&mut tx, &template)
        .await
        .expect("insert");
    repo::templates::share(&mut tx, &template.id, &u.id, now)
        .await
        .expect("share");
    repo::templates::share(&mut tx, &template.id, &u.id, now)
        .await
        .expect("share twice is harmless");
    tx.commit().await.expect("commit");
    let got = repo::templates::get(&mut conn, &template.id)
        .await
        .expect("q")
        .expect("stored");
    assert_eq!(got.members, template.members);
    assert_eq!(got.shared_with, vec![u.id.clone()]);
    assert!(
        repo::templates::delete(&mut conn, &template.id)
            .await
            .expect("delete")
    );
    let left: i64 = {
        use sqlx::Row;
        sqlx::query("SELECT COUNT(*) AS n FROM template_members")
            .fetch_one(&mut *conn)
            .await
            .expect("count")
            .try_get("n")
            .expect("n")
    };
    assert_eq!(left, 0);

    // Meeting history: attendance, log, search, end.
    let meeting = Meeting {
        id: new_id(),
        tenant_id: t.id.clone(),
        room_id: None,
        room_number: "8001".into(),
        room_name: "Weekly Sync".into(),
        started_at: now,
        ended_at: None,
    };
    repo::meetings::insert(&mut conn, &meeting)
        .await
        .expect("meeting");
    let attendance = Attendance {
        member_id: 1,
        name: "Amy".into(),
        number: "1001".into(),
        via: "dial_in".into(),
        joined_at: now,
        left_at: None,
    };
    repo::meetings::joined(&mut conn, &meeting.id, &attendance)
        .await
        .expect("joined");
    let entry = MeetingLogEntry {
        id: new_id(),
        at: now,
        actor: "admin".into(),
        kind: "muted".into(),
        detail: serde_json::json!({ "member": 1 }),
    };
    repo::meetings::log(&mut conn, &meeting.id, &entry)
        .await
        .expect("log");
    for q in ["8001", "weekly", "SYNC", ""] {
        let found = repo::meetings::list(&mut conn, &t.id, 0, i64::MAX, q, "", 10)
            .await
            .expect("list");
        assert_eq!(found.items.len(), 1, "{q}");
    }
    assert!(
        repo::meetings::list(&mut conn, &t.id, 0, i64::MAX, "nothing", "", 10)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    repo::meetings::end(&mut conn, &meeting.id, now + 5)
        .await
        .expect("end");
    let stored = repo::meetings::get(&mut conn, &meeting.id)
        .await
        .expect("get")
        .expect("there");
    assert_eq!(stored.ended_at, Some(now + 5));
    assert_eq!(
        repo::meetings::attendance(&mut conn, &meeting.id)
            .await
            .expect("attendance")[0]
            .left_at,
        Some(now + 5)
    );
    assert_eq!(
        repo::meetings::entries(&mut conn, &meeting.id)
            .await
            .expect("entries")[0]
            .detail["member"],
        1
    );
}

#[tokio::test]
async fn repositories_on_sqlite() {
    let (store, _, _dir) = open("repositories", false).await.expect("sqlite");
    scenario(&store).await;
    store.close().await;
}

#[tokio::test]
async fn repositories_on_postgres() {
    let Some((store, _pg, _dir)) = open("repositories", true).await else {
        return;
    };
    scenario(&store).await;
    store.close().await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    Store::open(&url).await.expect("first").close().await;
    Store::open(&url).await.expect("second").close().await;
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::Config(_))
    ));
}
