//! Repositories on SQLite and PostgreSQL: expiry, revocation, unique fields, rollback.

use conclave_conference::Role;
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
        sip_sha256_only: false,
        recording_retention_days: None,
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
        template_id: Some("a-template".into()),
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
        let found = repo::meetings::list(&mut conn, &t.id, 0, i64::MAX, q, "", "", 10)
            .await
            .expect("list");
        assert_eq!(found.items.len(), 1, "{q}");
    }
    assert!(
        repo::meetings::list(&mut conn, &t.id, 0, i64::MAX, "nothing", "", "", 10)
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
    assert_eq!(stored.template_id.as_deref(), Some("a-template"));
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

fn room(tenant_id: &str, number: &str, creator: Option<&str>, owner: Option<&str>) -> Room {
    Room {
        id: new_id(),
        tenant_id: tenant_id.into(),
        number: number.into(),
        name: format!("Room {number}"),
        pin: Some("2468".into()),
        has_pin: true,
        capacity: 10,
        max_duration_minutes: None,
        language: Language::English,
        creator_id: creator.map(Into::into),
        owner_id: owner.map(Into::into),
        entry_chime: true,
        alone_music: true,
        members_skip_pin: false,
        auto_record: false,
        release_when_empty: false,
        created_at: 1,
        updated_at: 1,
    }
}

fn template(
    t: &Tenant,
    owner: &str,
    room_id: Option<&str>,
    members: Vec<TemplateMember>,
) -> Template {
    Template {
        id: new_id(),
        tenant_id: t.id.clone(),
        owner_id: owner.into(),
        name: "T".into(),
        description: String::new(),
        room_id: room_id.map(Into::into),
        settings: TemplateSettings::default(),
        members,
        shared_with: vec![],
        copied_from: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn member(kind: MemberKind, id: Option<&str>, number: Option<&str>, role: Role) -> TemplateMember {
    TemplateMember {
        kind,
        user_id: id.filter(|_| kind == MemberKind::User).map(Into::into),
        contact_id: id.filter(|_| kind == MemberKind::Contact).map(Into::into),
        number: number.map(Into::into),
        display_name: "m".into(),
        role,
    }
}

/// Room settings round-trip; a room's members are found by user id or number, with the highest
/// role of the room's templates, and its owner and creator are owners.
async fn room_settings_and_members(store: &Store) {
    let mut conn = store.conn().await.expect("conn");
    let t = tenant();
    repo::tenants::insert(&mut conn, &t).await.expect("tenant");
    let creator = user(&t.id, &format!("creator-{}", new_id()), Some("1000"));
    let owner = user(&t.id, &format!("owner-{}", new_id()), None);
    let mut amy = user(&t.id, &format!("amy-{}", new_id()), Some("1001"));
    amy.mobile = Some("+8613800000001".into());
    let ben = user(&t.id, &format!("ben-{}", new_id()), Some("1002"));
    let stranger = user(&t.id, &format!("stranger-{}", new_id()), Some("1003"));
    for u in [&creator, &owner, &amy, &ben, &stranger] {
        repo::users::insert(&mut conn, u).await.expect("user");
    }
    let contact = Contact {
        id: new_id(),
        tenant_id: t.id.clone(),
        owner_id: None,
        name: "Duty desk".into(),
        department: String::new(),
        department_id: None,
        title: String::new(),
        mobile: Some("13900000002".into()),
        landline: Some("01066668888".into()),
        extension: None,
        email: None,
        created_at: 1,
        updated_at: 1,
    };
    repo::contacts::insert(&mut conn, &contact)
        .await
        .expect("contact");

    // Defaults, then every setting changed and read back.
    let mut r = room(&t.id, "8001", Some(&creator.id), Some(&owner.id));
    repo::rooms::insert(&mut conn, &r).await.expect("room");
    let got = repo::rooms::get(&mut conn, &r.id)
        .await
        .expect("q")
        .expect("room");
    assert_eq!(
        (
            got.entry_chime,
            got.alone_music,
            got.members_skip_pin,
            got.release_when_empty
        ),
        (true, true, false, false)
    );
    r.entry_chime = false;
    r.alone_music = false;
    r.members_skip_pin = true;
    r.release_when_empty = true;
    repo::rooms::update(&mut conn, &r).await.expect("update");
    let got = repo::rooms::get(&mut conn, &r.id)
        .await
        .expect("q")
        .expect("room");
    assert_eq!(
        (
            got.entry_chime,
            got.alone_music,
            got.members_skip_pin,
            got.release_when_empty
        ),
        (false, false, true, true)
    );
    // A room written by an older version (no settings given) takes the defaults.
    let old_id = new_id();
    sqlx::query(
        "INSERT INTO rooms (id, tenant_id, number, name, capacity, language, created_at, \
         updated_at) VALUES ($1, $2, '8009', 'Old', 10, 'en', 1, 1)",
    )
    .bind(&old_id)
    .bind(&t.id)
    .execute(&mut *conn)
    .await
    .expect("old room");
    let old = repo::rooms::get(&mut conn, &old_id)
        .await
        .expect("q")
        .expect("room");
    assert_eq!(
        (
            old.entry_chime,
            old.alone_music,
            old.members_skip_pin,
            old.release_when_empty
        ),
        (true, true, false, false)
    );

    // Two templates meet in the room, one elsewhere; Amy is in two of the room's (the higher
    // role wins) and, as chairman, in the other room's.
    let other = room(&t.id, "8002", None, None);
    repo::rooms::insert(&mut conn, &other).await.expect("room");
    let templates = [
        template(
            &t,
            &creator.id,
            Some(&r.id),
            vec![
                member(MemberKind::User, Some(&amy.id), None, Role::Member),
                member(
                    MemberKind::Contact,
                    Some(&contact.id),
                    None,
                    Role::Participant,
                ),
                member(
                    MemberKind::Number,
                    None,
                    Some("+8613700000003"),
                    Role::Manager,
                ),
            ],
        ),
        template(
            &t,
            &creator.id,
            Some(&r.id),
            vec![
                member(MemberKind::User, Some(&amy.id), None, Role::Chairman),
                member(MemberKind::User, Some(&ben.id), None, Role::Participant),
            ],
        ),
        template(
            &t,
            &creator.id,
            Some(&other.id),
            vec![
                member(MemberKind::User, Some(&stranger.id), None, Role::Owner),
                member(
                    MemberKind::Number,
                    None,
                    Some("+8613700000004"),
                    Role::Owner,
                ),
            ],
        ),
        template(
            &t,
            &creator.id,
            None,
            vec![member(
                MemberKind::User,
                Some(&stranger.id),
                None,
                Role::Owner,
            )],
        ),
    ];
    for x in &templates {
        repo::templates::insert(&mut conn, x)
            .await
            .expect("template");
    }
    let role = |user: Option<&str>, number: Option<&str>| {
        let room_id = r.id.clone();
        let user = user.map(str::to_owned);
        let number = number.map(str::to_owned);
        let store = store.clone();
        async move {
            let mut conn = store.conn().await.expect("conn");
            repo::rooms::member_role(&mut conn, &room_id, user.as_deref(), number.as_deref())
                .await
                .expect("member_role")
        }
    };
    // By user id: the highest of their roles in the room's templates.
    assert_eq!(role(Some(&amy.id), None).await, Some(Role::Chairman));
    assert_eq!(role(Some(&ben.id), None).await, Some(Role::Participant));
    // By a phone number of theirs; an extension alone is not proof (only a registration
    // from the call's own flow names the user).
    assert_eq!(role(None, Some("1001")).await, None);
    assert_eq!(
        role(None, Some("+8613800000001")).await,
        Some(Role::Chairman)
    );
    // A contact by any of its numbers; a raw number member.
    assert_eq!(
        role(None, Some("13900000002")).await,
        Some(Role::Participant)
    );
    assert_eq!(
        role(None, Some("01066668888")).await,
        Some(Role::Participant)
    );
    assert_eq!(
        role(None, Some("+8613700000003")).await,
        Some(Role::Manager)
    );
    // The owner and the creator, by id (not by an extension in From).
    assert_eq!(role(Some(&owner.id), None).await, Some(Role::Owner));
    assert_eq!(role(Some(&creator.id), None).await, Some(Role::Owner));
    assert_eq!(role(None, Some("1000")).await, None);
    // A user id and a number together: the higher of the two.
    assert_eq!(
        role(Some(&ben.id), Some("+8613700000003")).await,
        Some(Role::Manager)
    );
    // Not members of this room: members of another room's template or of none, unknown
    // numbers, nobody.
    assert_eq!(role(Some(&stranger.id), None).await, None);
    assert_eq!(role(None, Some("1003")).await, None);
    assert_eq!(role(None, Some("+8613700000004")).await, None);
    assert_eq!(role(None, Some("5550100")).await, None);
    assert_eq!(role(Some("nobody"), None).await, None);
    assert_eq!(role(None, None).await, None);
    assert_eq!(role(Some(""), Some("")).await, None);
    let mut conn = store.conn().await.expect("conn");
    assert_eq!(
        repo::rooms::member_role(&mut conn, "no-such-room", Some(&amy.id), None)
            .await
            .expect("q"),
        None
    );
    // A number is matched only within the room's tenant.
    let t2 = tenant();
    repo::tenants::insert(&mut conn, &t2).await.expect("tenant");
    let mut elsewhere = user(&t2.id, &format!("eve-{}", new_id()), Some("1002"));
    elsewhere.mobile = Some("+8613800000009".into());
    repo::users::insert(&mut conn, &elsewhere)
        .await
        .expect("user");
    assert_eq!(
        repo::rooms::member_role(&mut conn, &r.id, None, Some("+8613800000009"))
            .await
            .expect("q"),
        None
    );
    // A deleted template no longer makes members.
    repo::templates::delete(&mut conn, &templates[1].id)
        .await
        .expect("delete");
    assert_eq!(role(Some(&amy.id), None).await, Some(Role::Member));
    assert_eq!(role(Some(&ben.id), None).await, None);
}

#[tokio::test]
async fn room_settings_and_members_on_sqlite() {
    let (store, _, _dir) = open("room_settings_and_members", false)
        .await
        .expect("sqlite");
    room_settings_and_members(&store).await;
    store.close().await;
}

#[tokio::test]
async fn room_settings_and_members_on_postgres() {
    let Some((store, _pg, _dir)) = open("room_settings_and_members", true).await else {
        return;
    };
    room_settings_and_members(&store).await;
    store.close().await;
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

/// Rooms' homes: one node wins a room, the epoch only grows, a lease that runs is respected,
/// a node that lost a room cannot renew, save or release it, and a burst of parallel claims
/// has exactly one winner.
async fn room_homes(store: &Store) {
    use repo::cluster::Claim;
    let mut c = store.conn().await.expect("conn");
    let now = 1_000_000;
    for id in ["a", "b"] {
        repo::cluster::register(
            &mut c,
            &ClusterNode {
                id: id.into(),
                sip_uri: format!("sip:{id}"),
                http_url: String::new(),
                started_at: now,
                heartbeat_at: now,
                load: 0,
                draining: false,
            },
        )
        .await
        .expect("register");
    }
    let claim = |node: &'static str, at: i64| {
        let store = store.clone();
        async move {
            let mut c = store.conn().await.expect("conn");
            repo::cluster::claim(&mut c, "r1", "t", "8001", node, at, at + 3000)
                .await
                .expect("claim")
        }
    };
    assert_eq!(
        claim("a", now).await,
        Claim::Won {
            epoch: 1,
            inherited: None
        }
    );
    // held: b is told where it is; a keeps its epoch
    assert!(matches!(claim("b", now + 1000).await, Claim::Elsewhere(h) if h.node_id == "a"));
    assert!(matches!(
        claim("a", now + 1000).await,
        Claim::Won { epoch: 1, .. }
    ));
    assert!(
        repo::cluster::set_state(&mut c, "r1", "a", 1, "m1", "{\"locked\":true}", now)
            .await
            .expect("save")
    );
    // a stops renewing: after its lease, the room is an orphan that b takes, with a's state
    assert!(
        repo::cluster::orphans(&mut c, now + 2000)
            .await
            .expect("orphans")
            .is_empty()
    );
    let orphans = repo::cluster::orphans(&mut c, now + 3000)
        .await
        .expect("orphans");
    assert_eq!(orphans.len(), 1);
    match claim("b", now + 3001).await {
        Claim::Won {
            epoch: 2,
            inherited: Some(old),
        } => {
            assert_eq!(old.node_id, "a");
            assert_eq!(old.meeting_id.as_deref(), Some("m1"));
            assert_eq!(old.state, "{\"locked\":true}");
        }
        other => panic!("b takes the orphan: {other:?}"),
    }
    // fenced: a holds nothing any more, and cannot save or release what b holds
    assert!(
        repo::cluster::renew(&mut c, "a", now + 3002, now + 9000)
            .await
            .expect("renew")
            .is_empty()
    );
    assert!(
        !repo::cluster::set_state(&mut c, "r1", "a", 1, "m1", "{}", now)
            .await
            .expect("save")
    );
    assert!(
        !repo::cluster::release(&mut c, "r1", "a", 1, now)
            .await
            .expect("release")
    );
    assert_eq!(
        repo::cluster::renew(&mut c, "b", now + 3002, now + 9000)
            .await
            .expect("renew"),
        vec![("r1".to_owned(), 2)]
    );
    // released: no home, and the next claim raises the epoch again, inheriting nothing
    assert!(
        repo::cluster::release(&mut c, "r1", "b", 2, now + 4000)
            .await
            .expect("release")
    );
    assert!(
        repo::cluster::orphans(&mut c, now + 99_000)
            .await
            .expect("orphans")
            .is_empty()
    );
    assert_eq!(
        claim("a", now + 5000).await,
        Claim::Won {
            epoch: 3,
            inherited: None
        }
    );
    // a restarted node gives up what it held: an orphan at once
    assert!(
        repo::cluster::set_state(&mut c, "r1", "a", 3, "m2", "{}", now)
            .await
            .expect("save")
    );
    assert_eq!(
        repo::cluster::abandon_node(&mut c, "a", now + 5001)
            .await
            .expect("abandon"),
        1
    );
    assert_eq!(
        repo::cluster::orphans(&mut c, now + 5002)
            .await
            .expect("orphans")
            .len(),
        1
    );
    drop(c);
    // a burst: twenty claims of an orphan at once, one winner
    // (a node that already holds the room is told so: Won at the same epoch)
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let node = if i % 2 == 0 { "a" } else { "b" };
            let claimed = tokio::spawn(claim(node, now + 6000));
            (node, claimed)
        })
        .collect();
    let mut won = std::collections::BTreeSet::new();
    for (node, task) in burst {
        if let Claim::Won { epoch, .. } = task.await.expect("task") {
            won.insert((node, epoch));
        }
    }
    assert_eq!(won.len(), 1, "one node won, at one epoch: {won:?}");
    assert_eq!(won.iter().next().map(|w| w.1), Some(4));
    let mut c = store.conn().await.expect("conn");
    let home = repo::cluster::home(&mut c, "r1")
        .await
        .expect("home")
        .expect("row");
    assert_eq!(home.epoch, 4);
}

#[tokio::test]
async fn room_homes_on_sqlite() {
    let (store, _, _dir) = open("room_homes", false).await.expect("sqlite");
    room_homes(&store).await;
    store.close().await;
}

#[tokio::test]
async fn room_homes_on_postgres() {
    let Some((store, _pg, _dir)) = open("room_homes", true).await else {
        return;
    };
    room_homes(&store).await;
    store.close().await;
}
