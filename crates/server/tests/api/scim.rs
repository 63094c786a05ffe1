//! SCIM 2.0: create, get, filter, PATCH (deactivate: frozen), PUT, ETags, delete, Groups.

use crate::both_backends;
use crate::common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    scim_users_and_groups,
    scim_identity_providers_replayed,
    scim_keys_tenants_and_sessions,
    scim_bulk,
);

async fn scim(
    s: &TestServer,
    m: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = s
        .http
        .request(m, format!("{}/scim/v2{path}", s.base))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        etag,
    )
}

async fn scim_users_and_groups(s: &TestServer) {
    let admin = s.admin().await;
    let key = s
        .post("/api-keys", &admin, json!({ "name": "scim" }))
        .await
        .expect(201)
        .body["key"]
        .as_str()
        .expect("key")
        .to_owned();
    // A session token is refused.
    assert_eq!(scim(s, Method::GET, "/Users", &admin, None).await.0, 401);
    let (st, user, _) = scim(s, Method::POST, "/Users", &key, Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Bjensen@Example.com",
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }],
        "phoneNumbers": [{ "value": "+8613800138000", "type": "mobile" }],
        "title": "Guide",
        "password": "scim-user-password-1",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Sales/North" },
    }))).await;
    assert_eq!(st, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(user["userName"], "bjensen@example.com");
    assert_eq!(user["displayName"], "Barbara Jensen");
    s.token("bjensen@example.com", "scim-user-password-1").await;
    let (st, list, _) = scim(
        s,
        Method::GET,
        "/Users?filter=userName%20eq%20%22BJENSEN%40example.com%22",
        &key,
        None,
    )
    .await;
    assert_eq!(
        (st, list["totalResults"].clone()),
        (200, json!(1)),
        "{list}"
    );
    let (st, _, _) = scim(
        s,
        Method::GET,
        "/Users?filter=userName%20zz%20x",
        &key,
        None,
    )
    .await;
    assert_eq!(st, 400);
    let (_, got, etag) = scim(s, Method::GET, &format!("/Users/{id}"), &key, None).await;
    assert_eq!(
        got["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Sales/North"
    );
    let etag = etag.expect("etag");
    // Deactivate (Entra's form): frozen, cannot log in.
    let patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Replace", "path": "active", "value": "False" }] });
    let mut req = s
        .http
        .patch(format!("{}/scim/v2/Users/{id}", s.base))
        .bearer_auth(&key)
        .header("if-match", "W/\"stale\"")
        .header("content-type", "application/scim+json")
        .body(patch.to_string());
    assert_eq!(req.send().await.expect("sent").status().as_u16(), 412);
    req = s
        .http
        .patch(format!("{}/scim/v2/Users/{id}", s.base))
        .bearer_auth(&key)
        .header("if-match", &etag)
        .header("content-type", "application/scim+json")
        .body(patch.to_string());
    assert_eq!(req.send().await.expect("sent").status().as_u16(), 200);
    assert_eq!(
        s.login("bjensen@example.com", "scim-user-password-1")
            .await
            .status
            .as_u16(),
        401
    );
    let (_, got, _) = scim(s, Method::GET, &format!("/Users/{id}"), &key, None).await;
    assert_eq!(got["active"], false);
    // PATCH a work e-mail and the title.
    let (st, got, _) = scim(s, Method::PATCH, &format!("/Users/{id}"), &key, Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "barbara@example.com" },
            { "op": "replace", "value": { "title": "Lead" } },
        ] }))).await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["emails"][0]["value"], "barbara@example.com");
    assert_eq!(got["title"], "Lead");
    // Groups.
    let (st, group, _) = scim(
        s,
        Method::POST,
        "/Groups",
        &key,
        Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Tour Guides", "members": [{ "value": id }] })),
    )
    .await;
    assert_eq!(st, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();
    let (st, g, _) = scim(
        s,
        Method::PATCH,
        &format!("/Groups/{gid}"),
        &key,
        Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "remove", "path": format!("members[value eq \"{id}\"]") }] })),
    )
    .await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["members"], json!([]));
    assert_eq!(
        scim(s, Method::DELETE, &format!("/Groups/{gid}"), &key, None)
            .await
            .0,
        204
    );
    assert_eq!(
        scim(s, Method::DELETE, &format!("/Users/{id}"), &key, None)
            .await
            .0,
        204
    );
    assert_eq!(
        scim(s, Method::GET, &format!("/Users/{id}"), &key, None)
            .await
            .0,
        404
    );
}

async fn api_key(s: &TestServer, token: &str) -> String {
    s.post("/api-keys", token, json!({ "name": "scim" }))
        .await
        .expect(201)
        .body["key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// An independent client (Python's standard library, `tests/scim/idp_conformance.py`)
/// replays what Okta and Microsoft Entra ID send, as their provisioning documentation shows.
async fn scim_identity_providers_replayed(s: &TestServer) {
    let admin = s.admin().await;
    let key = api_key(s, &admin).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim/idp_conformance.py");
    let base = format!("{}/scim/v2", s.base);
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--base", &base, "--token", &key])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

/// Only an administrator's API key, of the tenant whose resources it names.
async fn scim_keys_tenants_and_sessions(s: &TestServer) {
    let sa = s.admin().await;
    let tenant_b = s
        .post("/tenants", &sa, json!({ "name": "Tenant B" }))
        .await
        .expect(201)
        .id();
    s.user(&sa, "ta", "tenant_admin", None).await;
    s.user(&sa, "tb", "tenant_admin", Some(&tenant_b)).await;
    // Only administrators create API keys: a user's key is one made while its creator was
    // an administrator, who is one no more.
    let plain = s.user(&sa, "plain", "tenant_admin", None).await;
    let key_a = api_key(s, &s.token("ta", "ta-password").await).await;
    let key_b = api_key(s, &s.token("tb", "tb-password").await).await;
    let key_plain = api_key(s, &s.token("plain", "plain-password").await).await;
    s.patch(&format!("/users/{plain}"), &sa, json!({ "kind": "user" }))
        .await
        .expect(200);
    let plain_session = s.token("plain", "plain-password").await;

    let (st, user, _) = scim(
        s,
        Method::POST,
        "/Users",
        &key_a,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "tenant-a-person", "displayName": "Tenant A person",
        })),
    )
    .await;
    assert_eq!(st, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    let (st, group, _) = scim(
        s,
        Method::POST,
        "/Groups",
        &key_a,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "A team",
        })),
    )
    .await;
    assert_eq!(st, 201, "{group}");
    let gid = group["id"].as_str().expect("id").to_owned();

    // A user's key, a session token (an administrator's too), no key, a wrong one: refused,
    // with SCIM's error schema.
    let (st, body, _) = scim(s, Method::GET, "/Users", &key_plain, None).await;
    assert!(st == 401 || st == 403, "{st} {body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    for token in [plain_session.as_str(), sa.as_str(), "", "ck_not_a_key"] {
        let (st, body, _) = scim(s, Method::GET, "/Users", token, None).await;
        assert_eq!(st, 401, "{token}: {body}");
        assert_eq!(
            body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{body}"
        );
    }
    let (st, _, _) = scim(s, Method::GET, &format!("/Users/{id}"), &key_plain, None).await;
    assert!(st == 401 || st == 403);

    // Another tenant's administrator: the ids are unknown there, lists do not show them.
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "active", "value": false }],
    });
    for (m, path, body) in [
        (Method::GET, format!("/Users/{id}"), None),
        (Method::PATCH, format!("/Users/{id}"), Some(patch.clone())),
        (
            Method::PUT,
            format!("/Users/{id}"),
            Some(
                json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x" }),
            ),
        ),
        (Method::DELETE, format!("/Users/{id}"), None),
        (Method::GET, format!("/Groups/{gid}"), None),
        (Method::PATCH, format!("/Groups/{gid}"), Some(patch.clone())),
        (Method::DELETE, format!("/Groups/{gid}"), None),
    ] {
        let (st, body, _) = scim(s, m.clone(), &path, &key_b, body).await;
        assert_eq!(st, 404, "{m} {path}: {body}");
        assert_eq!(body["status"], "404", "{body}");
    }
    let (st, list, _) = scim(
        s,
        Method::GET,
        "/Users?filter=userName%20eq%20%22tenant-a-person%22",
        &key_b,
        None,
    )
    .await;
    assert_eq!(
        (st, list["totalResults"].clone()),
        (200, json!(0)),
        "{list}"
    );
    // A group of tenant B cannot take tenant A's user.
    let (st, gb, _) = scim(
        s,
        Method::POST,
        "/Groups",
        &key_b,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "B team",
            "members": [{ "value": id }],
        })),
    )
    .await;
    assert!(st == 400 || st == 404, "{st} {gb}");
    // Untouched in tenant A.
    let (st, got, _) = scim(s, Method::GET, &format!("/Users/{id}"), &key_a, None).await;
    assert_eq!((st, got["active"].clone()), (200, json!(true)), "{got}");
}

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// Bulk (RFC 7644 §3.7): a user and a group naming it by bulkId (listed first: it waits for
/// the user), `failOnErrors`, and the advertised limits.
async fn scim_bulk(s: &TestServer) {
    let admin = s.admin().await;
    let key = api_key(s, &admin).await;
    let (st, config, _) = scim(s, Method::GET, "/ServiceProviderConfig", &key, None).await;
    assert_eq!(st, 200);
    assert_eq!(config["bulk"]["supported"], true, "{config}");
    let max_ops = config["bulk"]["maxOperations"]
        .as_u64()
        .expect("maxOperations") as usize;
    let max_payload = config["bulk"]["maxPayloadSize"]
        .as_u64()
        .expect("maxPayloadSize") as usize;

    let (st, out, _) = scim(s, Method::POST, "/Bulk", &key, Some(json!({
        "schemas": [BULK],
        "Operations": [
            { "method": "POST", "path": "/Groups", "bulkId": "g1", "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Bulk team", "members": [{ "type": "User", "value": "bulkId:u1" }] } },
            { "method": "POST", "path": "/Users", "bulkId": "u1", "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bulk.one", "displayName": "Bulk One", "preferredLanguage": "zh-CN",
                "emails": [{ "value": "bulk.one@example.com", "primary": true }] } },
            { "method": "PATCH", "path": "/Users/bulkId:u1", "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "title": "Bulk lead" } }] } },
        ],
    }))).await;
    assert_eq!(st, 200, "{out}");
    let ops = out["Operations"].as_array().expect("Operations");
    assert_eq!(ops.len(), 3, "{out}");
    let by_bulk_id = |b: &str| {
        ops.iter()
            .find(|o| o["bulkId"] == b)
            .unwrap_or_else(|| panic!("{b} in {out}"))
            .clone()
    };
    let u1 = by_bulk_id("u1");
    let g1 = by_bulk_id("g1");
    assert_eq!(
        (u1["status"].as_str(), g1["status"].as_str()),
        (Some("201"), Some("201")),
        "{out}"
    );
    let user_location = u1["location"].as_str().expect("location").to_owned();
    let uid = user_location.rsplit('/').next().expect("id").to_owned();
    let gid = g1["location"]
        .as_str()
        .expect("location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    assert!(
        ops.iter()
            .any(|o| o["method"] == "PATCH" && o["status"] == "200"),
        "{out}"
    );
    let (_, group, _) = scim(s, Method::GET, &format!("/Groups/{gid}"), &key, None).await;
    assert_eq!(group["members"][0]["value"], json!(uid), "{group}");
    let (_, user, _) = scim(s, Method::GET, &format!("/Users/{uid}"), &key, None).await;
    assert_eq!(user["title"], "Bulk lead", "{user}");
    // `preferredLanguage` is the language the user is mailed in.
    assert_eq!(user["preferredLanguage"], "zh", "{user}");
    assert_eq!(
        s.get(&format!("/users/{uid}"), &admin).await.body["language"],
        json!("zh")
    );
    let patched = ops.iter().find(|o| o["method"] == "PATCH").expect("PATCH");
    assert_eq!(patched["version"], user["meta"]["version"], "{out}");
    assert_eq!(patched["location"].as_str(), Some(user_location.as_str()));

    // failOnErrors: 1 — the duplicate fails, what follows is not run.
    let (st, out, _) = scim(
        s,
        Method::POST,
        "/Bulk",
        &key,
        Some(json!({
            "schemas": [BULK], "failOnErrors": 1,
            "Operations": [
                { "method": "POST", "path": "/Users", "bulkId": "dup",
                  "data": { "userName": "bulk.one" } },
                { "method": "DELETE", "path": format!("/Users/{uid}") },
            ],
        })),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let ops = out["Operations"].as_array().expect("Operations");
    assert_eq!(ops.len(), 1, "{out}");
    assert_eq!(ops[0]["status"], "409", "{out}");
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness", "{out}");
    assert_eq!(
        ops[0]["response"]["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(
        scim(s, Method::GET, &format!("/Users/{uid}"), &key, None)
            .await
            .0,
        200
    );
    // Without failOnErrors every operation runs: a reference to a failed one fails too,
    // a stale version is 412, the group is deleted.
    let (st, out, _) = scim(
        s,
        Method::POST,
        "/Bulk",
        &key,
        Some(json!({
            "schemas": [BULK],
            "Operations": [
                { "method": "POST", "path": "/Users", "bulkId": "bad", "data": { "userName": "" } },
                { "method": "PATCH", "path": "/Users/bulkId:bad", "data": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{ "op": "replace", "value": { "title": "x" } }] } },
                { "method": "PUT", "path": format!("/Users/{uid}"), "version": "W/\"stale\"",
                  "data": { "userName": "bulk.one" } },
                { "method": "DELETE", "path": format!("/Groups/{gid}") },
            ],
        })),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let statuses: Vec<&str> = out["Operations"]
        .as_array()
        .expect("Operations")
        .iter()
        .map(|o| o["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["400", "409", "412", "204"], "{out}");
    assert_eq!(
        scim(s, Method::GET, &format!("/Groups/{gid}"), &key, None)
            .await
            .0,
        404
    );

    // The limits, answered in SCIM's error schema.
    let many: Vec<Value> = (0..=max_ops)
        .map(|i| json!({ "method": "DELETE", "path": format!("/Groups/none-{i}") }))
        .collect();
    let (st, err, _) = scim(
        s,
        Method::POST,
        "/Bulk",
        &key,
        Some(json!({ "schemas": [BULK], "Operations": many })),
    )
    .await;
    assert_eq!(st, 413, "{err}");
    assert_eq!(
        err["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{err}"
    );
    assert_eq!(err["status"], "413");
    let big = "x".repeat(max_payload);
    let (st, err, _) = scim(s, Method::POST, "/Bulk", &key, Some(json!({
        "schemas": [BULK],
        "Operations": [{ "method": "POST", "path": "/Users", "bulkId": "b", "data": { "userName": "big", "title": big } }],
    }))).await;
    assert_eq!(st, 413, "{err}");
    assert_eq!(
        err["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{err}"
    );
    let (st, err, _) = scim(s, Method::POST, "/Bulk", &key, Some(json!({
        "schemas": [BULK], "Operations": [{ "method": "POST", "path": "/Users", "data": { "userName": "nobulkid" } }],
    }))).await;
    assert_eq!(
        (st, err["scimType"].as_str()),
        (400, Some("invalidSyntax")),
        "{err}"
    );
    let (st, err, _) = scim(
        s,
        Method::POST,
        "/Bulk",
        &key,
        Some(json!({ "Operations": [] })),
    )
    .await;
    assert_eq!((st, err["status"].as_str()), (400, Some("400")), "{err}");
    // Nothing of the refused requests was created.
    let (_, list, _) = scim(
        s,
        Method::GET,
        "/Users?filter=userName%20eq%20%22nobulkid%22",
        &key,
        None,
    )
    .await;
    assert_eq!(list["totalResults"], 0);
}
