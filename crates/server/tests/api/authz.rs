//! The authorization matrix: every account kind against every operation, and tenant isolation
//! (another tenant's objects answer 404).

use crate::both_backends;
use crate::common::TestServer;
use serde_json::json;

both_backends!(authorization_matrix);

/// Who acts. Tenant A holds the objects; `Tb` administers tenant B.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Actor {
    /// System administrator.
    Sa,
    /// Tenant A's administrator.
    Ta,
    /// Ordinary user of A who created (owns) the room and template acted on.
    Alice,
    /// Ordinary user of A with no rights on them.
    Bob,
    /// Tenant B's administrator: A's objects must not exist for them.
    Tb,
}

use Actor::*;
const ACTORS: [Actor; 5] = [Sa, Ta, Alice, Bob, Tb];

struct Fixture {
    tenant_a: String,
    tokens: Vec<(Actor, String)>,
    bob_id: String,
    alice_id: String,
}

impl Fixture {
    fn token(&self, actor: Actor) -> &str {
        self.tokens
            .iter()
            .find(|(a, _)| *a == actor)
            .map(|(_, t)| t.as_str())
            .expect("token")
    }
}

async fn fixture(s: &TestServer) -> Fixture {
    let sa = s.admin().await;
    let tenant_a = s.get("/me", &sa).await.body["tenant_id"]
        .as_str()
        .expect("tenant")
        .to_owned();
    let tenant_b = s
        .post("/tenants", &sa, json!({ "name": "Tenant B" }))
        .await
        .id();
    s.user(&sa, "ta", "tenant_admin", None).await;
    let alice_id = s.user(&sa, "alice", "user", None).await;
    let bob_id = s.user(&sa, "bob", "user", None).await;
    s.user(&sa, "tb", "tenant_admin", Some(&tenant_b)).await;
    s.user(&sa, "carol", "user", Some(&tenant_b)).await;
    let mut tokens = vec![(Sa, sa)];
    for (actor, name) in [(Ta, "ta"), (Alice, "alice"), (Bob, "bob"), (Tb, "tb")] {
        tokens.push((actor, s.token(name, &format!("{name}-password")).await));
    }
    Fixture {
        tenant_a,
        tokens,
        bob_id,
        alice_id,
    }
}

/// Fresh objects in tenant A, made by their rightful owners, for one attempt.
async fn alice_room(s: &TestServer, fx: &Fixture, n: &mut u32) -> String {
    *n += 1;
    s.post(
        "/rooms",
        fx.token(Alice),
        json!({ "number": format!("5{n:04}"), "name": "Alice's room" }),
    )
    .await
    .id()
}

async fn alice_template(s: &TestServer, fx: &Fixture, shared_with_bob: bool) -> String {
    let id = s
        .post(
            "/templates",
            fx.token(Alice),
            json!({ "name": "Alice's scheme" }),
        )
        .await
        .id();
    if shared_with_bob {
        s.post(
            &format!("/templates/{id}/shares"),
            fx.token(Alice),
            json!({ "user_ids": [fx.bob_id] }),
        )
        .await
        .expect(200);
    }
    id
}

async fn plain_user(s: &TestServer, fx: &Fixture, n: &mut u32) -> String {
    *n += 1;
    s.user(fx.token(Sa), &format!("victim{n}"), "user", None)
        .await
}

async fn api_key(s: &TestServer, fx: &Fixture) -> String {
    let created = s
        .post("/api-keys", fx.token(Ta), json!({ "name": "k" }))
        .await;
    created.body["api_key"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// A contact in tenant A: the enterprise book's when made by the system admin, else Alice's own.
async fn contact(s: &TestServer, fx: &Fixture, by: Actor) -> String {
    let book = if by == Sa { "enterprise" } else { "personal" };
    s.post(
        "/contacts",
        fx.token(by),
        json!({ "book": book, "name": "C", "mobile": "123456" }),
    )
    .await
    .id()
}

async fn authorization_matrix(s: &TestServer) {
    let fx = fixture(s).await;
    let mut n = 0u32;
    // (operation, expected status for Sa, Ta, Alice, Bob, Tb)
    let matrix: &[(&str, [u16; 5])] = &[
        ("createTenant", [201, 403, 403, 403, 403]),
        ("listTenants", [200, 200, 200, 200, 200]),
        ("getTenant", [200, 200, 200, 200, 404]),
        ("updateTenant", [200, 403, 403, 403, 404]),
        ("createUser", [201, 201, 403, 403, 404]),
        ("listUsers", [200, 200, 200, 200, 404]),
        ("getUser", [200, 200, 200, 200, 404]),
        ("updateUser", [200, 200, 403, 200, 404]),
        ("updateUserKind", [200, 200, 403, 403, 404]),
        ("deleteUser", [204, 204, 403, 403, 404]),
        ("freezeUser", [200, 200, 403, 403, 404]),
        ("unfreezeUser", [200, 200, 403, 403, 404]),
        ("createRoom", [201, 201, 201, 201, 201]),
        ("listRooms", [200, 200, 200, 200, 404]),
        ("getRoom", [200, 200, 200, 200, 404]),
        ("updateRoom", [200, 200, 200, 403, 404]),
        ("deleteRoom", [204, 204, 204, 403, 404]),
        ("createTemplate", [201, 201, 201, 201, 201]),
        ("listTemplates", [200, 200, 200, 200, 404]),
        ("getTemplate", [200, 200, 200, 404, 404]),
        ("getSharedTemplate", [200, 200, 200, 200, 404]),
        ("updateTemplate", [200, 200, 200, 404, 404]),
        ("updateSharedTemplate", [200, 200, 200, 403, 404]),
        ("deleteTemplate", [204, 204, 204, 404, 404]),
        ("shareTemplate", [200, 200, 200, 404, 404]),
        ("unshareTemplate", [204, 204, 204, 403, 404]),
        ("copyTemplate", [201, 201, 201, 404, 404]),
        ("copySharedTemplate", [201, 201, 201, 201, 404]),
        ("createApiKey", [201, 201, 403, 403, 201]),
        ("listApiKeys", [200, 200, 403, 403, 404]),
        ("revokeApiKey", [204, 204, 403, 403, 404]),
        ("listAuditEvents", [200, 200, 403, 403, 404]),
        ("getCurrentUser", [200, 200, 200, 200, 200]),
        ("listRegistrations", [200, 200, 403, 403, 404]),
        ("createEnterpriseContact", [201, 201, 403, 403, 201]),
        ("createPersonalContact", [201, 201, 201, 201, 201]),
        ("listContacts", [200, 200, 200, 200, 200]),
        ("getEnterpriseContact", [200, 200, 200, 200, 404]),
        ("getPersonalContact", [404, 404, 200, 404, 404]),
        ("updateEnterpriseContact", [200, 200, 403, 403, 404]),
        ("updatePersonalContact", [404, 404, 200, 404, 404]),
        ("deleteEnterpriseContact", [204, 204, 403, 403, 404]),
    ];
    let mut failures = Vec::new();
    for (op, expected) in matrix {
        for (actor, want) in ACTORS.iter().zip(expected) {
            let t = fx.token(*actor);
            let a = &fx.tenant_a;
            let reply = match *op {
                "createTenant" => {
                    s.post(
                        "/tenants",
                        t,
                        json!({ "name": format!("T{}", { n += 1; n }) }),
                    )
                    .await
                }
                "listTenants" => s.get("/tenants", t).await,
                "getTenant" => s.get(&format!("/tenants/{a}"), t).await,
                "updateTenant" => {
                    s.patch(
                        &format!("/tenants/{a}"),
                        t,
                        json!({ "name": format!("A{}", { n += 1; n }) }),
                    )
                    .await
                }
                "createUser" => {
                    n += 1;
                    s.post("/users", t, json!({ "username": format!("new{n}"), "display_name": "N", "password": "staff-password-1", "tenant_id": a })).await
                }
                "listUsers" => s.get(&format!("/users?tenant_id={a}"), t).await,
                "getUser" => s.get(&format!("/users/{}", fx.bob_id), t).await,
                "updateUser" => {
                    s.patch(
                        &format!("/users/{}", fx.bob_id),
                        t,
                        json!({ "display_name": "Bob B." }),
                    )
                    .await
                }
                "updateUserKind" => {
                    let id = plain_user(s, &fx, &mut n).await;
                    s.patch(
                        &format!("/users/{id}"),
                        t,
                        json!({ "kind": "tenant_admin" }),
                    )
                    .await
                }
                "deleteUser" => {
                    s.delete(&format!("/users/{}", plain_user(s, &fx, &mut n).await), t)
                        .await
                }
                "freezeUser" => {
                    s.post(
                        &format!("/users/{}/freeze", plain_user(s, &fx, &mut n).await),
                        t,
                        json!({}),
                    )
                    .await
                }
                "unfreezeUser" => {
                    let id = plain_user(s, &fx, &mut n).await;
                    s.post(&format!("/users/{id}/freeze"), fx.token(Sa), json!({}))
                        .await
                        .expect(200);
                    s.post(&format!("/users/{id}/unfreeze"), t, json!({})).await
                }
                "createRoom" => {
                    n += 1;
                    s.post(
                        "/rooms",
                        t,
                        json!({ "number": format!("4{n:04}"), "name": "R" }),
                    )
                    .await
                }
                "listRooms" => s.get(&format!("/rooms?tenant_id={a}"), t).await,
                "getRoom" => {
                    s.get(&format!("/rooms/{}", alice_room(s, &fx, &mut n).await), t)
                        .await
                }
                "updateRoom" => {
                    s.patch(
                        &format!("/rooms/{}", alice_room(s, &fx, &mut n).await),
                        t,
                        json!({ "name": "Renamed" }),
                    )
                    .await
                }
                "deleteRoom" => {
                    s.delete(&format!("/rooms/{}", alice_room(s, &fx, &mut n).await), t)
                        .await
                }
                "createTemplate" => s.post("/templates", t, json!({ "name": "Mine" })).await,
                "listTemplates" => s.get(&format!("/templates?tenant_id={a}"), t).await,
                "getTemplate" => {
                    s.get(
                        &format!("/templates/{}", alice_template(s, &fx, false).await),
                        t,
                    )
                    .await
                }
                "getSharedTemplate" => {
                    s.get(
                        &format!("/templates/{}", alice_template(s, &fx, true).await),
                        t,
                    )
                    .await
                }
                "updateTemplate" => {
                    s.patch(
                        &format!("/templates/{}", alice_template(s, &fx, false).await),
                        t,
                        json!({ "name": "X" }),
                    )
                    .await
                }
                "updateSharedTemplate" => {
                    s.patch(
                        &format!("/templates/{}", alice_template(s, &fx, true).await),
                        t,
                        json!({ "name": "X" }),
                    )
                    .await
                }
                "deleteTemplate" => {
                    s.delete(
                        &format!("/templates/{}", alice_template(s, &fx, false).await),
                        t,
                    )
                    .await
                }
                "shareTemplate" => {
                    let id = alice_template(s, &fx, false).await;
                    s.post(
                        &format!("/templates/{id}/shares"),
                        t,
                        json!({ "user_ids": [fx.bob_id] }),
                    )
                    .await
                }
                "unshareTemplate" => {
                    let id = alice_template(s, &fx, true).await;
                    s.delete(&format!("/templates/{id}/shares/{}", fx.bob_id), t)
                        .await
                }
                "copyTemplate" => {
                    s.post(
                        &format!("/templates/{}/copy", alice_template(s, &fx, false).await),
                        t,
                        json!({}),
                    )
                    .await
                }
                "copySharedTemplate" => {
                    s.post(
                        &format!("/templates/{}/copy", alice_template(s, &fx, true).await),
                        t,
                        json!({}),
                    )
                    .await
                }
                "createApiKey" => s.post("/api-keys", t, json!({ "name": "k" })).await,
                "listApiKeys" => s.get(&format!("/api-keys?tenant_id={a}"), t).await,
                "revokeApiKey" => {
                    s.delete(&format!("/api-keys/{}", api_key(s, &fx).await), t)
                        .await
                }
                "listAuditEvents" => s.get(&format!("/audit-events?tenant_id={a}"), t).await,
                "getCurrentUser" => s.get("/me", t).await,
                "listRegistrations" => s.get(&format!("/registrations?tenant_id={a}"), t).await,
                "createEnterpriseContact" => {
                    s.post(
                        "/contacts",
                        t,
                        json!({ "book": "enterprise", "name": "E", "mobile": "123456" }),
                    )
                    .await
                }
                "createPersonalContact" => {
                    s.post("/contacts", t, json!({ "name": "P", "mobile": "123456" }))
                        .await
                }
                "listContacts" => s.get("/contacts", t).await,
                "getEnterpriseContact" => {
                    s.get(&format!("/contacts/{}", contact(s, &fx, Sa).await), t)
                        .await
                }
                "getPersonalContact" => {
                    s.get(&format!("/contacts/{}", contact(s, &fx, Alice).await), t)
                        .await
                }
                "updateEnterpriseContact" => {
                    s.patch(
                        &format!("/contacts/{}", contact(s, &fx, Sa).await),
                        t,
                        json!({ "name": "N" }),
                    )
                    .await
                }
                "updatePersonalContact" => {
                    s.patch(
                        &format!("/contacts/{}", contact(s, &fx, Alice).await),
                        t,
                        json!({ "name": "N" }),
                    )
                    .await
                }
                "deleteEnterpriseContact" => {
                    s.delete(&format!("/contacts/{}", contact(s, &fx, Sa).await), t)
                        .await
                }
                other => panic!("no case for {other}"),
            };
            if reply.status.as_u16() != *want {
                failures.push(format!(
                    "{op} as {actor:?}: got {}, want {want}: {}",
                    reply.status, reply.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix mismatches:\n{}",
        failures.join("\n")
    );

    // Isolation in lists: B's administrator sees none of A's users, rooms or templates.
    let tb = fx.token(Tb);
    let users = s.get("/users", tb).await;
    let names: Vec<_> = users.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert!(
        names.iter().all(|n| ["tb", "carol"].contains(n)),
        "{names:?}"
    );
    let rooms = s.get("/rooms", tb).await.body["items"]
        .as_array()
        .map(Vec::len);
    assert_eq!(rooms, Some(1), "only the room tb created");
    // A user of A cannot name someone of B as a template member or share target.
    let carol = s.get("/users", tb).await.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|u| u["username"] == "carol")
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .expect("carol");
    s.post(
        "/templates",
        fx.token(Alice),
        json!({ "name": "x", "members": [{ "kind": "user", "user_id": carol, "role": "member" }] }),
    )
    .await
    .expect_problem(422, Some("members[0].user_id"));
    // Tenant administrators cannot make or touch system administrators.
    s.post("/users", fx.token(Ta), json!({ "username": "evil", "display_name": "E", "password": "staff-password-1", "kind": "system_admin" }))
        .await
        .expect_problem(403, None);
    let sa_id = s.get("/me", fx.token(Sa)).await.id();
    s.post(&format!("/users/{sa_id}/freeze"), fx.token(Ta), json!({}))
        .await
        .expect_problem(403, None);
    s.patch(
        &format!("/users/{}", fx.alice_id),
        fx.token(Alice),
        json!({ "kind": "tenant_admin" }),
    )
    .await
    .expect_problem(403, None);
    // Denied attempts are in the audit log.
    let denied = s.get("/audit-events?action=freezeUser", fx.token(Sa)).await;
    assert!(
        denied.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["outcome"] == "denied")
    );
}
