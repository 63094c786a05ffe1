//! Every operation, as a user would call it, with its bad inputs.

use crate::both_backends;
use crate::common::{ADMIN_PASSWORD, TestServer};
use reqwest::Method;
use serde_json::json;

both_backends!(
    health_and_openapi,
    login_logout_and_bad_credentials,
    bad_bodies_get_problem_details,
    tenants,
    branding_is_checked_and_shown_by_the_name_the_server_is_reached_by,
    users_and_extensions,
    freezing_a_user_locks_them_out,
    rooms,
    templates_share_and_copy,
    api_keys,
    audit_log_records_who_did_what,
    pagination_walks_every_page,
    concurrent_writes_all_succeed,
    address_books_and_contact_members,
);

async fn health_and_openapi(s: &TestServer) {
    let health = s.raw(Method::GET, "/healthz", None, None).await;
    health.expect(200);
    let doc = s.raw(Method::GET, "/api/openapi.json", None, None).await;
    doc.expect(200);
    assert!(
        doc.body["openapi"]
            .as_str()
            .unwrap_or("")
            .starts_with("3.1"),
        "{}",
        doc.body["openapi"]
    );
    let ids: Vec<String> = doc.body["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|p| p.as_object().expect("path item").values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect();
    for required in [
        "login",
        "createTenant",
        "createUser",
        "listUsers",
        "getUser",
        "updateUser",
        "deleteUser",
        "freezeUser",
        "createRoom",
        "listRooms",
        "getRoom",
        "updateRoom",
        "deleteRoom",
        "createTemplate",
        "listTemplates",
        "getTemplate",
        "updateTemplate",
        "deleteTemplate",
        "shareTemplate",
        "copyTemplate",
        "createApiKey",
        "revokeApiKey",
        "listAuditEvents",
        // The conference bridge.
        "startConference",
        "listConferences",
        "getConference",
        "endConference",
        "inviteMember",
        "redialMissing",
        "muteMember",
        "unmuteMember",
        "muteAll",
        "unmuteAll",
        "setMemberSpeak",
        "kickMember",
        "setMemberRole",
        "lockConference",
        "unlockConference",
        "createWhisperGroup",
        "closeWhisperGroup",
        "listConferenceHistory",
        "getConferenceLog",
        "restartConference",
        "createWebhook",
        // Trunks.
        "createTrunk",
        "listTrunks",
        "getTrunk",
        "updateTrunk",
        "deleteTrunk",
        // The directory.
        "listDepartments",
        "createDepartment",
        "updateDepartment",
        "deleteDepartment",
        "listGroups",
        "createGroup",
        "updateGroup",
        "deleteGroup",
        "searchDirectory",
        "addGroupToTemplate",
    ] {
        assert!(
            ids.iter().any(|id| id == required),
            "operationId {required} missing"
        );
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "operationIds must be unique");
    let metrics = s.raw(Method::GET, "/metrics", None, None).await;
    metrics.expect(200);
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or("")
            .contains("conclave_http_requests_total")
    );
}

async fn login_logout_and_bad_credentials(s: &TestServer) {
    s.login("admin", "wrong-password")
        .await
        .expect_problem(401, None);
    s.login("nobody", "whatever-password")
        .await
        .expect_problem(401, None);
    let ok = s.login("ADMIN", ADMIN_PASSWORD).await;
    ok.expect(200);
    assert_eq!(ok.body["user"]["username"], "admin");
    assert!(
        ok.body["user"].get("password_hash").is_none(),
        "secrets must not leak"
    );
    let token = ok.body["token"].as_str().expect("token").to_owned();
    s.get("/me", &token).await.expect(200);
    s.call(Method::POST, "/auth/logout", &token, None)
        .await
        .expect(204);
    s.get("/me", &token).await.expect_problem(401, None);
    s.get("/me", "cs_forged").await.expect_problem(401, None);
    let no_auth = s.raw(Method::GET, "/api/v1/me", None, None).await;
    no_auth.expect_problem(401, None);
}

async fn bad_bodies_get_problem_details(s: &TestServer) {
    let admin = s.admin().await;
    let json_ct = |b: &str| Some(("application/json", b.as_bytes().to_vec()));
    s.raw(
        Method::POST,
        "/api/v1/rooms",
        Some(&admin),
        json_ct("{not json"),
    )
    .await
    .expect_problem(400, None);
    s.raw(Method::POST, "/api/v1/rooms", Some(&admin), json_ct(""))
        .await
        .expect_problem(400, None);
    s.raw(
        Method::POST,
        "/api/v1/rooms",
        Some(&admin),
        Some(("text/plain", b"{}".to_vec())),
    )
    .await
    .expect_problem(415, None);
    s.post("/rooms", &admin, json!({ "name": "No number" }))
        .await
        .expect_problem(422, Some("number"));
    s.post("/rooms", &admin, json!({ "number": 8001, "name": "x" }))
        .await
        .expect_problem(422, Some("number"));
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8001", "name": "x", "colour": "red" }),
    )
    .await
    .expect_problem(422, Some("colour"));
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8001", "name": "x", "language": "fr" }),
    )
    .await
    .expect_problem(422, Some("language"));
    s.raw(Method::GET, "/api/v1/nowhere", Some(&admin), None)
        .await
        .expect_problem(404, None);
    s.raw(Method::PUT, "/api/v1/rooms", Some(&admin), None)
        .await
        .expect_problem(405, None);
    s.get("/rooms?limit=0", &admin)
        .await
        .expect_problem(422, Some("limit"));
    s.get("/rooms?limit=abc", &admin)
        .await
        .expect_problem(422, Some("limit"));
    s.get("/rooms?bogus=1", &admin)
        .await
        .expect_problem(422, Some("bogus"));
    // Nothing was written by any of it.
    let rooms = s.get("/rooms", &admin).await;
    assert_eq!(rooms.body["items"].as_array().map(Vec::len), Some(0));
    // An oversized body is refused before it is read (on a connection of its own: the server
    // closes it rather than read the rest).
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(1_100_000));
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/rooms", s.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 413);
}

async fn tenants(s: &TestServer) {
    let admin = s.admin().await;
    let created = s
        .post("/tenants", &admin, json!({ "name": "Acme", "sip_domain": "acme.example", "branding": { "color": "#c00" } }))
        .await;
    created.expect(201);
    let id = created.id();
    s.post("/tenants", &admin, json!({ "name": "Acme" }))
        .await
        .expect_problem(409, Some("name"));
    s.post(
        "/tenants",
        &admin,
        json!({ "name": "Other", "sip_domain": "bad domain!" }),
    )
    .await
    .expect_problem(422, Some("sip_domain"));
    s.post("/tenants", &admin, json!({ "name": "" }))
        .await
        .expect_problem(422, Some("name"));
    let got = s.get(&format!("/tenants/{id}"), &admin).await;
    got.expect(200);
    assert_eq!(got.body["branding"]["color"], "#c00");
    let list = s.get("/tenants", &admin).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    let updated = s
        .patch(
            &format!("/tenants/{id}"),
            &admin,
            json!({ "name": "Acme Corp", "sip_domain": null }),
        )
        .await;
    updated.expect(200);
    assert_eq!(updated.body["name"], "Acme Corp");
    assert!(updated.body["sip_domain"].is_null());
    s.get("/tenants/no-such-id", &admin)
        .await
        .expect_problem(404, None);
}

async fn users_and_extensions(s: &TestServer) {
    let admin = s.admin().await;
    let body = json!({
        "username": "Zhang.Wei", "display_name": "张伟", "password": "zhang-password",
        "email": "zhang@example.com", "mobile": "+8613800138000", "landline": "01088886666",
        "extension": "1001", "sip_password": "sip-secret-1",
    });
    let created = s.post("/users", &admin, body.clone()).await;
    created.expect(201);
    let id = created.id();
    assert_eq!(created.body["username"], "zhang.wei");
    assert_eq!(created.body["display_name"], "张伟");
    assert_eq!(created.body["sip_password_set"], true);
    assert_eq!(created.body["kind"], "user");
    assert!(created.body.get("sip_ha1_md5").is_none());
    // Duplicates and bad fields.
    let dup = s.post("/users", &admin, body.clone()).await;
    dup.expect_problem(409, Some("username"));
    assert_eq!(dup.fields(), ["username", "extension"]);
    let mut dup_ext = body.clone();
    dup_ext["username"] = json!("other");
    s.post("/users", &admin, dup_ext)
        .await
        .expect_problem(409, Some("extension"));
    let bad = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "x y", "display_name": "", "password": "short", "email": "nope",
                "mobile": "12ab", "extension": "10a", "sip_password": "s",
            }),
        )
        .await;
    bad.expect_problem(422, None);
    for field in [
        "username",
        "display_name",
        "password",
        "email",
        "mobile",
        "extension",
        "sip_password",
    ] {
        assert!(
            bad.fields().iter().any(|f| f == field),
            "{field} not named in {}",
            bad.body
        );
    }
    s.post("/users", &admin, json!({ "username": "nosip", "display_name": "n", "password": "staff-password-1", "sip_password": "sip-secret" }))
        .await
        .expect_problem(422, Some("extension"));
    s.post("/users", &admin, json!({ "username": "k", "display_name": "k", "password": "staff-password-1", "kind": "emperor" }))
        .await
        .expect_problem(422, Some("kind"));
    // Read, list, update.
    let got = s.get(&format!("/users/{id}"), &admin).await;
    got.expect(200);
    assert_eq!(got.body["extension"], "1001");
    let list = s.get("/users", &admin).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    // Changing the extension needs the SIP password again (the digest hashes it).
    s.patch(
        &format!("/users/{id}"),
        &admin,
        json!({ "extension": "1002" }),
    )
    .await
    .expect_problem(422, Some("sip_password"));
    let updated = s
        .patch(
            &format!("/users/{id}"),
            &admin,
            json!({ "extension": "1002", "sip_password": "sip-secret-2", "email": null }),
        )
        .await;
    updated.expect(200);
    assert_eq!(updated.body["extension"], "1002");
    assert!(updated.body["email"].is_null());
    // The user changes their own password, which needs the current one.
    let own = s.token("zhang.wei", "zhang-password").await;
    s.patch(
        &format!("/users/{id}"),
        &own,
        json!({ "password": "new-password-1" }),
    )
    .await
    .expect_problem(422, Some("current_password"));
    s.patch(
        &format!("/users/{id}"),
        &own,
        json!({ "password": "new-password-1", "current_password": "zhang-password" }),
    )
    .await
    .expect(200);
    s.login("zhang.wei", "zhang-password").await.expect(401);
    s.token("zhang.wei", "new-password-1").await;
    // Delete.
    s.delete(&format!("/users/{id}"), &admin).await.expect(204);
    s.get(&format!("/users/{id}"), &admin)
        .await
        .expect_problem(404, None);
    s.delete(&format!("/users/{id}"), &admin)
        .await
        .expect_problem(404, None);
    s.patch("/users/unknown", &admin, json!({ "display_name": "x" }))
        .await
        .expect_problem(404, None);
}

async fn freezing_a_user_locks_them_out(s: &TestServer) {
    let admin = s.admin().await;
    let id = s.user(&admin, "li.na", "user", None).await;
    let token = s.token("li.na", "li.na-password").await;
    let frozen = s
        .post(&format!("/users/{id}/freeze"), &admin, json!({}))
        .await;
    frozen.expect(200);
    assert_eq!(frozen.body["status"], "frozen");
    s.get("/me", &token).await.expect_problem(401, None);
    s.login("li.na", "li.na-password")
        .await
        .expect_problem(401, None);
    s.post(&format!("/users/{id}/unfreeze"), &admin, json!({}))
        .await
        .expect(200);
    s.token("li.na", "li.na-password").await;
    // Nobody freezes themself.
    let me = s.get("/me", &admin).await.id();
    s.post(&format!("/users/{me}/freeze"), &admin, json!({}))
        .await
        .expect_problem(403, None);
}

async fn rooms(s: &TestServer) {
    let admin = s.admin().await;
    let owner = s.user(&admin, "wang.fang", "user", None).await;
    let created = s
        .post(
            "/rooms",
            &admin,
            json!({
                "number": "8001", "name": "周例会 Weekly", "pin": "2468", "capacity": 30,
                "max_duration_minutes": 90, "language": "zh", "owner_id": owner,
            }),
        )
        .await;
    created.expect(201);
    let id = created.id();
    assert_eq!(created.body["pin"], "2468");
    assert_eq!(created.body["language"], "zh");
    // The conference bridge's settings: chimes and music on, the PIN for everyone, kept.
    let settings = |body: &serde_json::Value| {
        [
            "entry_chime",
            "alone_music",
            "members_skip_pin",
            "release_when_empty",
        ]
        .map(|f| body[f].as_bool())
    };
    assert_eq!(
        settings(&created.body),
        [Some(true), Some(true), Some(false), Some(false)],
        "{}",
        created.body
    );
    let quiet = s
        .post(
            "/rooms",
            &admin,
            json!({
                "number": "8003", "name": "Quiet", "entry_chime": false, "alone_music": false,
                "members_skip_pin": true,
            }),
        )
        .await;
    quiet.expect(201);
    assert_eq!(
        settings(&quiet.body),
        [Some(false), Some(false), Some(true), Some(false)]
    );
    let quiet_id = quiet.id();
    assert_eq!(
        settings(&s.get(&format!("/rooms/{quiet_id}"), &admin).await.body),
        [Some(false), Some(false), Some(true), Some(false)]
    );
    // Only what is given changes.
    let changed = s
        .patch(
            &format!("/rooms/{quiet_id}"),
            &admin,
            json!({ "entry_chime": true, "members_skip_pin": false }),
        )
        .await;
    changed.expect(200);
    assert_eq!(
        settings(&changed.body),
        [Some(true), Some(false), Some(false), Some(false)]
    );
    assert_eq!(
        settings(&s.get(&format!("/rooms/{quiet_id}"), &admin).await.body),
        [Some(true), Some(false), Some(false), Some(false)]
    );
    // Flags are booleans; release_when_empty belongs to rooms made from the keypad.
    for (field, value) in [
        ("entry_chime", json!("yes")),
        ("alone_music", json!(1)),
        ("members_skip_pin", json!("true")),
    ] {
        let mut body = json!({ "number": "8004", "name": "Typed" });
        body[field] = value.clone();
        s.post("/rooms", &admin, body)
            .await
            .expect_problem(422, Some(field));
        let mut change = json!({});
        change[field] = value;
        s.patch(&format!("/rooms/{quiet_id}"), &admin, change)
            .await
            .expect_problem(422, Some(field));
    }
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8004", "name": "x", "release_when_empty": true }),
    )
    .await
    .expect_problem(422, Some("release_when_empty"));
    s.patch(
        &format!("/rooms/{quiet_id}"),
        &admin,
        json!({ "release_when_empty": true }),
    )
    .await
    .expect_problem(422, Some("release_when_empty"));
    assert_eq!(
        settings(&s.get(&format!("/rooms/{quiet_id}"), &admin).await.body),
        [Some(true), Some(false), Some(false), Some(false)]
    );
    s.delete(&format!("/rooms/{quiet_id}"), &admin)
        .await
        .expect(204);
    s.post("/rooms", &admin, json!({ "number": "8001", "name": "dup" }))
        .await
        .expect_problem(409, Some("number"));
    let bad = s
        .post("/rooms", &admin, json!({ "number": "80-01", "name": "x", "pin": "12ab", "capacity": 0, "max_duration_minutes": -5 }))
        .await;
    bad.expect_problem(422, None);
    for field in ["number", "pin", "capacity", "max_duration_minutes"] {
        assert!(
            bad.fields().iter().any(|f| f == field),
            "{field} not named in {}",
            bad.body
        );
    }
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8002", "name": "x", "owner_id": "nobody" }),
    )
    .await
    .expect_problem(422, Some("owner_id"));
    // A user who does not manage the room sees it without its PIN.
    s.user(&admin, "guest", "user", None).await;
    let guest = s.token("guest", "guest-password").await;
    let seen = s.get(&format!("/rooms/{id}"), &guest).await;
    seen.expect(200);
    assert!(seen.body.get("pin").is_none(), "{}", seen.body);
    assert_eq!(seen.body["has_pin"], true);
    // The owner manages it.
    let owner_token = s.token("wang.fang", "wang.fang-password").await;
    let updated = s
        .patch(
            &format!("/rooms/{id}"),
            &owner_token,
            json!({ "pin": null, "name": "Weekly" }),
        )
        .await;
    updated.expect(200);
    assert_eq!(updated.body["has_pin"], false);
    s.patch(&format!("/rooms/{id}"), &owner_token, json!({ "pin": "x" }))
        .await
        .expect_problem(422, Some("pin"));
    let list = s.get("/rooms", &guest).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    s.delete(&format!("/rooms/{id}"), &owner_token)
        .await
        .expect(204);
    s.get(&format!("/rooms/{id}"), &admin)
        .await
        .expect_problem(404, None);
}

async fn templates_share_and_copy(s: &TestServer) {
    let admin = s.admin().await;
    let op1 = s.user(&admin, "operator1", "user", None).await;
    let op2 = s.user(&admin, "operator2", "user", None).await;
    let t1 = s.token("operator1", "operator1-password").await;
    let t2 = s.token("operator2", "operator2-password").await;
    let room = s
        .post(
            "/rooms",
            &t1,
            json!({ "number": "9001", "name": "Emergency" }),
        )
        .await
        .id();
    let body = json!({
        "name": "Emergency call-out",
        "description": "Flood response",
        "room_id": room,
        "settings": { "mute_on_entry": true, "record": true, "lock_on_start": false, "whisper_allowed": true },
        "members": [
            { "kind": "user", "user_id": op2, "role": "chairman" },
            { "kind": "number", "number": "+8613900000000", "display_name": "Field team", "role": "member" },
        ],
    });
    let created = s.post("/templates", &t1, body).await;
    created.expect(201);
    let id = created.id();
    assert_eq!(created.body["owner_id"], op1);
    assert_eq!(created.body["members"][0]["display_name"], "User operator2");
    assert_eq!(created.body["settings"]["record"], true);
    // Bad members are named by position; nothing is written.
    let bad = s
        .post(
            "/templates",
            &t1,
            json!({ "name": "Bad", "members": [
                { "kind": "user", "user_id": "nobody", "role": "member" },
                { "kind": "number", "role": "member" },
                { "kind": "number", "number": "123456", "role": "king" },
            ]}),
        )
        .await;
    bad.expect_problem(422, Some("members[2].role"));
    let bad = s
        .post(
            "/templates",
            &t1,
            json!({ "name": "Bad", "members": [
                { "kind": "user", "user_id": "nobody", "role": "member" },
                { "kind": "number", "role": "member" },
            ]}),
        )
        .await;
    bad.expect_problem(422, Some("members[0].user_id"));
    assert!(
        bad.fields().iter().any(|f| f == "members[1].number"),
        "{}",
        bad.body
    );
    s.post(
        "/templates",
        &t1,
        json!({ "name": "Bad", "room_id": "nowhere" }),
    )
    .await
    .expect_problem(422, Some("room_id"));
    // operator2 cannot see it until it is shared.
    s.get(&format!("/templates/{id}"), &t2)
        .await
        .expect_problem(404, None);
    assert_eq!(
        s.get("/templates", &t2).await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    s.post(
        &format!("/templates/{id}/shares"),
        &t1,
        json!({ "user_ids": ["nobody"] }),
    )
    .await
    .expect_problem(422, Some("user_ids[0]"));
    let shared = s
        .post(
            &format!("/templates/{id}/shares"),
            &t1,
            json!({ "user_ids": [op2] }),
        )
        .await;
    shared.expect(200);
    assert_eq!(shared.body["shared_with"], json!([op2]));
    s.get(&format!("/templates/{id}"), &t2).await.expect(200);
    // Shared users use it but do not change it; they take their own copy.
    s.patch(
        &format!("/templates/{id}"),
        &t2,
        json!({ "name": "Mine now" }),
    )
    .await
    .expect_problem(403, None);
    let copy = s
        .post(
            &format!("/templates/{id}/copy"),
            &t2,
            json!({ "name": "My emergency" }),
        )
        .await;
    copy.expect(201);
    assert_eq!(copy.body["owner_id"], op2);
    assert_eq!(copy.body["copied_from"], id);
    assert_eq!(copy.body["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(copy.body["shared_with"], json!([]));
    let copy_id = copy.id();
    let default_copy = s
        .call(Method::POST, &format!("/templates/{id}/copy"), &t2, None)
        .await;
    default_copy.expect(201);
    assert_eq!(default_copy.body["name"], "Emergency call-out (copy)");
    // The owner edits; a failed edit leaves the template as it was.
    s.patch(
        &format!("/templates/{id}"),
        &t1,
        json!({ "name": "Renamed", "members": [{ "kind": "user", "role": "member" }] }),
    )
    .await
    .expect_problem(422, Some("members[0].user_id"));
    assert_eq!(
        s.get(&format!("/templates/{id}"), &t1).await.body["name"],
        "Emergency call-out"
    );
    let edited = s
        .patch(
            &format!("/templates/{id}"),
            &t1,
            json!({ "name": "Renamed", "members": [], "settings": { "record": false } }),
        )
        .await;
    edited.expect(200);
    assert_eq!(edited.body["members"], json!([]));
    // The copy is independent of the original.
    assert_eq!(
        s.get(&format!("/templates/{copy_id}"), &t2).await.body["members"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    s.delete(&format!("/templates/{id}/shares/{op2}"), &t1)
        .await
        .expect(204);
    s.delete(&format!("/templates/{id}/shares/{op2}"), &t1)
        .await
        .expect_problem(404, None);
    s.get(&format!("/templates/{id}"), &t2)
        .await
        .expect_problem(404, None);
    assert_eq!(
        s.get("/templates", &admin).await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    s.delete(&format!("/templates/{id}"), &t1).await.expect(204);
    s.get(&format!("/templates/{id}"), &t1)
        .await
        .expect_problem(404, None);
}

async fn api_keys(s: &TestServer) {
    let admin = s.admin().await;
    let created = s
        .post(
            "/api-keys",
            &admin,
            json!({ "name": "OA sync", "expires_in_days": 30 }),
        )
        .await;
    created.expect(201);
    let key = created.body["key"].as_str().expect("key").to_owned();
    let id = created.body["api_key"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(key.starts_with(created.body["api_key"]["prefix"].as_str().expect("prefix")));
    // The key works like its creator's session.
    let via_key = s
        .post(
            "/rooms",
            &key,
            json!({ "number": "7001", "name": "From OA" }),
        )
        .await;
    via_key.expect(201);
    let listed = s.get("/api-keys", &admin).await;
    listed.expect(200);
    assert!(
        !listed.body.to_string().contains(&key),
        "the secret is shown only once"
    );
    assert!(listed.body["items"][0]["last_used_at"].is_i64());
    s.post(
        "/api-keys",
        &admin,
        json!({ "name": "x", "expires_in_days": 0 }),
    )
    .await
    .expect_problem(422, Some("expires_in_days"));
    s.call(Method::POST, "/auth/logout", &key, None)
        .await
        .expect_problem(400, None);
    s.delete(&format!("/api-keys/{id}"), &admin)
        .await
        .expect(204);
    s.get("/rooms", &key).await.expect_problem(401, None);
    s.delete("/api-keys/unknown", &admin)
        .await
        .expect_problem(404, None);
}

async fn audit_log_records_who_did_what(s: &TestServer) {
    let admin = s.admin().await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8100", "name": "Audited" }),
        )
        .await
        .id();
    s.patch(
        &format!("/rooms/{room}"),
        &admin,
        json!({ "name": "Audited 2" }),
    )
    .await
    .expect(200);
    s.user(&admin, "intruder", "user", None).await;
    let intruder = s.token("intruder", "intruder-password").await;
    s.delete(&format!("/rooms/{room}"), &intruder)
        .await
        .expect_problem(403, None);
    s.login("admin", "bad-password").await.expect(401);
    let events = s
        .get(&format!("/audit-events?target_id={room}"), &admin)
        .await;
    events.expect(200);
    let actions: Vec<(&str, &str)> = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("deleteRoom", "denied"),
            ("updateRoom", "ok"),
            ("createRoom", "ok")
        ]
    );
    let first = &events.body["items"][2];
    assert_eq!(first["actor_name"], "admin");
    assert_eq!(first["source"], "127.0.0.1");
    assert!(first["at"].as_i64().unwrap_or(0) > 1_700_000_000_000);
    let failed = s.get("/audit-events?action=login", &admin).await;
    assert!(
        failed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["outcome"] == "failed")
    );
    let none = s.get("/audit-events?since=9999999999999", &admin).await;
    assert_eq!(none.body["items"].as_array().map(Vec::len), Some(0));
    s.get("/audit-events", &intruder)
        .await
        .expect_problem(403, None);
}

async fn pagination_walks_every_page(s: &TestServer) {
    let admin = s.admin().await;
    for n in 0..5 {
        s.post(
            "/rooms",
            &admin,
            json!({ "number": format!("60{n}"), "name": format!("Room {n}") }),
        )
        .await
        .expect(201);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let page = s
            .get(&format!("/rooms?limit=2&cursor={cursor}"), &admin)
            .await;
        page.expect(200);
        for item in page.body["items"].as_array().expect("items") {
            seen.push(item["number"].as_str().unwrap_or("").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["600", "601", "602", "603", "604"]);
}

async fn concurrent_writes_all_succeed(s: &TestServer) {
    let admin = s.admin().await;
    // Many writers at once, each reading before it writes in one transaction: on SQLite each
    // must wait its turn for the write lock rather than fail with "database is locked".
    let replies = futures::future::join_all((0..24).map(|n| {
        let admin = admin.clone();
        async move {
            let room = json!({ "number": format!("77{n:02}"), "name": "Busy" });
            let room = s.post("/rooms", &admin, room).await;
            let members =
                json!([{ "kind": "number", "number": format!("1390000{n:04}"), "role": "member" }]);
            let template =
                json!({ "name": format!("T{n}"), "room_id": room.body["id"], "members": members });
            let template = s.post("/templates", &admin, template).await;
            let id = template.body["id"].as_str().unwrap_or("").to_owned();
            let edited = s
                .patch(
                    &format!("/templates/{id}"),
                    &admin,
                    json!({ "name": "Edited" }),
                )
                .await;
            (
                room.status.as_u16(),
                template.status.as_u16(),
                edited.status.as_u16(),
            )
        }
    }))
    .await;
    assert!(replies.iter().all(|r| *r == (201, 201, 200)), "{replies:?}");
    let events = s
        .get("/audit-events?action=createRoom&limit=200", &admin)
        .await;
    assert_eq!(events.body["items"].as_array().map(Vec::len), Some(24));
}

async fn address_books_and_contact_members(s: &TestServer) {
    let admin = s.admin().await;
    s.user(&admin, "alice", "user", None).await;
    s.user(&admin, "bob", "user", None).await;
    let alice = s.token("alice", "alice-password").await;
    let bob = s.token("bob", "bob-password").await;
    let shared = s
        .post("/contacts", &admin, json!({ "book": "enterprise", "name": "应急办 Duty desk", "department": "Ops", "landline": "01066668888" }))
        .await;
    shared.expect(201);
    assert!(shared.body["owner_id"].is_null());
    let mine = s
        .post(
            "/contacts",
            &alice,
            json!({ "name": "Plumber", "mobile": "+8613700000000", "email": "p@example.com" }),
        )
        .await;
    mine.expect(201);
    let mine_id = mine.id();
    s.post(
        "/contacts",
        &alice,
        json!({ "book": "enterprise", "name": "x", "mobile": "123456" }),
    )
    .await
    .expect_problem(403, None);
    s.post("/contacts", &alice, json!({ "name": "No number" }))
        .await
        .expect_problem(422, Some("mobile"));
    s.post(
        "/contacts",
        &alice,
        json!({ "name": "x", "mobile": "123456", "email": "nope" }),
    )
    .await
    .expect_problem(422, Some("email"));
    // Alice sees both books; Bob sees only the enterprise book.
    let count = |r: &crate::common::Reply| r.body["items"].as_array().map(Vec::len);
    assert_eq!(count(&s.get("/contacts", &alice).await), Some(2));
    assert_eq!(
        count(&s.get("/contacts?book=personal", &alice).await),
        Some(1)
    );
    assert_eq!(count(&s.get("/contacts", &bob).await), Some(1));
    s.get(&format!("/contacts/{mine_id}"), &bob)
        .await
        .expect_problem(404, None);
    s.patch(
        &format!("/contacts/{}", shared.id()),
        &bob,
        json!({ "name": "Mine" }),
    )
    .await
    .expect_problem(403, None);
    let renamed = s
        .patch(
            &format!("/contacts/{mine_id}"),
            &alice,
            json!({ "name": "Good plumber", "email": null }),
        )
        .await;
    renamed.expect(200);
    assert!(renamed.body["email"].is_null());
    s.patch(
        &format!("/contacts/{mine_id}"),
        &alice,
        json!({ "mobile": null }),
    )
    .await
    .expect_problem(422, Some("mobile"));
    // Contacts as template members: the enterprise book and the owner's own book.
    let members = json!([
        { "kind": "contact", "contact_id": mine_id, "role": "member" },
        { "kind": "contact", "contact_id": shared.id(), "role": "chairman" },
    ]);
    let template = s
        .post(
            "/templates",
            &alice,
            json!({ "name": "With contacts", "members": members }),
        )
        .await;
    template.expect(201);
    assert_eq!(template.body["members"][0]["display_name"], "Good plumber");
    s.post("/templates", &bob, json!({ "name": "Borrowed", "members": [{ "kind": "contact", "contact_id": mine_id, "role": "member" }] }))
        .await
        .expect_problem(422, Some("members[0].contact_id"));
    s.post("/templates", &bob, json!({ "name": "Both", "members": [{ "kind": "contact", "contact_id": mine_id, "number": "123456", "role": "member" }] }))
        .await
        .expect_problem(422, Some("members[0].number"));
    // Deleting a contact takes it out of the templates that named it.
    s.delete(&format!("/contacts/{mine_id}"), &alice)
        .await
        .expect(204);
    let after = s
        .get(&format!("/templates/{}", template.id()), &alice)
        .await;
    assert_eq!(after.body["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(after.body["members"][0]["kind"], "contact");
}

/// A tenant's branding: each field checked (a colour, a small PNG/JPEG/WebP logo — no SVG —,
/// nothing unknown), changed by its own administrator, and shown before login to whoever
/// reaches the server by the tenant's domain (the Host header); others see the server's look.
async fn branding_is_checked_and_shown_by_the_name_the_server_is_reached_by(s: &TestServer) {
    let admin = s.admin().await;
    let id = s
        .post(
            "/tenants",
            &admin,
            json!({ "name": "Harbour Authority", "sip_domain": "harbour.example" }),
        )
        .await
        .id();
    s.user(&admin, "hadmin", "tenant_admin", Some(&id)).await;
    let ta = s.token("hadmin", "hadmin-password").await;
    let patch = |branding: serde_json::Value| {
        let (s, ta, id) = (s, ta.clone(), id.clone());
        async move {
            s.patch(
                &format!("/tenants/{id}"),
                &ta,
                json!({ "branding": branding }),
            )
            .await
        }
    };
    patch(json!({ "color": "blue" }))
        .await
        .expect_problem(422, Some("branding.color"));
    patch(json!({ "logo": "data:image/svg+xml;base64,PHN2Zy8+" }))
        .await
        .expect_problem(422, Some("branding.logo"));
    // Says PNG, is not one.
    patch(json!({ "logo": "data:image/png;base64,aGVsbG8=" }))
        .await
        .expect_problem(422, Some("branding.logo"));
    patch(json!({ "script": "<script>" }))
        .await
        .expect_problem(422, Some("branding.script"));
    patch(json!({ "logo": format!("data:image/png;base64,{}", "A".repeat(100_000)) }))
        .await
        .expect_problem(422, Some("branding.logo"));
    // A 1x1 PNG.
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    patch(json!({ "product_name": "Harbour Meet", "slogan": "Every ship, every voice", "color": "#1f4e79", "logo": png }))
        .await
        .expect(200);
    let by_host = |host: &'static str| async move {
        let resp = s
            .http
            .get(format!("{}/api/v1/branding", s.base))
            .header("host", host)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json::<serde_json::Value>().await.expect("json")
    };
    let theirs = by_host("harbour.example:8080").await;
    assert_eq!(theirs["product_name"], "Harbour Meet", "{theirs}");
    assert_eq!(theirs["tenant_name"], "Harbour Authority");
    assert_eq!(theirs["logo"], png);
    let ours = by_host("conference.example").await;
    assert_eq!(ours, json!({}), "another name: the server's own look");
    // Only the tenant's own administrator (or a system administrator) changes it.
    s.patch(
        &format!("/tenants/{id}"),
        &admin,
        json!({ "branding": { "color": "#000" } }),
    )
    .await
    .expect(200);
}
