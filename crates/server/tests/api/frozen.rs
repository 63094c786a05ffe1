//! A frozen user — by the API's `freezeUser` or SCIM's `active: false` — loses their SIP
//! registrations at once, cannot log in or register again, is called by nobody (one click,
//! a template, an invitation: "the account is frozen") and cannot call in.

use crate::both_backends;
use crate::common::TestServer;
use crate::room_call::Caller;
use serde_json::{Value, json};

both_backends!(frozen_by_the_api, frozen_by_scim);

async fn frozen_by_the_api(s: &TestServer) {
    frozen(s, false).await;
}

async fn frozen_by_scim(s: &TestServer) {
    frozen(s, true).await;
}

async fn registrations_of(s: &TestServer, admin: &str, extension: &str) -> Vec<Value> {
    let list = s.get("/registrations", admin).await;
    list.expect(200);
    list.body
        .as_array()
        .and_then(|all| all.iter().find(|r| r["extension"] == extension))
        .and_then(|r| r["bindings"].as_array().cloned())
        .unwrap_or_default()
}

async fn frozen(s: &TestServer, via_scim: bool) {
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8300", "name": "Frozen" }),
        )
        .await
        .id();
    let user = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "leaver", "display_name": "Leaver", "password": "leaver-password",
                "extension": "1010", "sip_password": "sip-secret-1010",
                "mobile": "+8613800000010",
            }),
        )
        .await
        .id();
    let template = s
        .post(
            "/templates",
            &admin,
            json!({
                "name": "Call the leaver", "room_id": room_id,
                "members": [{ "kind": "user", "user_id": user, "role": "member" }],
            }),
        )
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;

    // Before: the user logs in and registers (and calls in: see the end, once unfrozen).
    s.login("leaver", "leaver-password").await.expect(200);
    let mut phone = Caller::new(sip, "1010").await;
    assert_eq!(phone.register("1010", "sip-secret-1010").await, 200);
    assert_eq!(registrations_of(s, &admin, "1010").await.len(), 1);

    if via_scim {
        let key = s
            .post("/api-keys", &admin, json!({ "name": "scim" }))
            .await
            .expect(201)
            .body["key"]
            .as_str()
            .expect("key")
            .to_owned();
        let resp = s
            .http
            .patch(format!("{}/scim/v2/Users/{user}", s.base))
            .bearer_auth(&key)
            .header("content-type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{ "op": "replace", "path": "active", "value": false }],
                })
                .to_string(),
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200);
    } else {
        s.post(&format!("/users/{user}/freeze"), &admin, json!({}))
            .await
            .expect(200);
    }

    // Registrations are gone at once.
    assert!(
        registrations_of(s, &admin, "1010").await.is_empty(),
        "freezing removes the registrations"
    );
    // No login, no new registration (answered as a wrong password).
    s.login("leaver", "leaver-password").await.expect(401);
    let mut again = Caller::new(sip, "1010").await;
    assert_eq!(again.register("1010", "sip-secret-1010").await, 401);
    assert_eq!(phone.register("1010", "sip-secret-1010").await, 401);
    assert!(registrations_of(s, &admin, "1010").await.is_empty());

    // Nobody calls them: not by invitation, not in a one-click start, not from a template
    // (not at their extension, not at their mobile).
    let invited = s
        .post(
            &format!("/conferences/{room_id}/invite"),
            &admin,
            json!({ "user_id": user }),
        )
        .await;
    invited.expect_problem(422, Some("user_id"));
    assert!(
        invited.body.to_string().contains("frozen"),
        "{}",
        invited.body
    );
    for start in [
        json!({ "template_id": template }),
        json!({ "room_id": room_id, "members": [{ "kind": "user", "user_id": user, "role": "member" }] }),
    ] {
        let started = s.post("/conferences", &admin, start).await;
        started.expect(201);
        let member = &started.body["members"][0];
        assert_eq!(member["status"], "failed", "{}", started.body);
        assert!(member["call_id"].is_null(), "{}", started.body);
        assert!(
            member["reason"]
                .as_str()
                .is_some_and(|r| r.contains("frozen")),
            "{}",
            started.body
        );
    }

    // Their extension cannot call in: not from the old flow, not from a new one.
    assert_eq!(phone.dial("8300").await, 403);
    let mut other = Caller::new(sip, "1010").await;
    assert_eq!(other.dial("8300").await, 403);

    // Unfrozen (by the API): they register and call in again.
    s.post(&format!("/users/{user}/unfreeze"), &admin, json!({}))
        .await
        .expect(200);
    let mut back = Caller::new(sip, "1010").await;
    assert_eq!(back.register("1010", "sip-secret-1010").await, 200);
    assert_eq!(back.dial("8300").await, 200);
    assert_eq!(back.hang_up("8300").await, 200);
}
