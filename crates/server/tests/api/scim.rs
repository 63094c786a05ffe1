//! SCIM 2.0: create, get, filter, PATCH (deactivate: frozen), PUT, ETags, delete, Groups.

use crate::both_backends;
use crate::common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(scim_users_and_groups);

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
