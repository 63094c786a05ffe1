//! The directory: the organisation tree, people in it, search by name, pinyin and number,
//! groups (enterprise and personal) and a group added to a template in one step.

use crate::both_backends;
use crate::common::{Reply, TestServer};
use serde_json::{Value, json};

both_backends!(
    department_tree,
    directory_search,
    groups_and_templates,
    directory_permissions,
    contact_labels_stay_labels,
);

async fn department(s: &TestServer, token: &str, name: &str, parent: Option<&str>) -> String {
    s.post(
        "/departments",
        token,
        json!({ "name": name, "parent_id": parent }),
    )
    .await
    .expect(201)
    .id()
}

fn names(reply: &Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {}", reply.body))
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect()
}

async fn tenant_admin(s: &TestServer, sa: &str, name: &str, tenant: Option<&str>) -> String {
    s.user(sa, name, "tenant_admin", tenant).await;
    s.token(name, &format!("{name}-password")).await
}

async fn department_tree(s: &TestServer) {
    let admin = s.admin().await;
    let hq = department(s, &admin, "Headquarters", None).await;
    let sales = department(s, &admin, "Sales", Some(&hq)).await;
    let east = department(s, &admin, "East", Some(&sales)).await;
    // Names are unique among siblings: at the top, and under one parent.
    s.post("/departments", &admin, json!({ "name": "Headquarters" }))
        .await
        .expect_problem(409, Some("name"));
    s.post(
        "/departments",
        &admin,
        json!({ "name": "East", "parent_id": sales }),
    )
    .await
    .expect_problem(409, Some("name"));
    // …but the same name elsewhere in the tree is fine.
    department(s, &admin, "East", Some(&hq)).await;
    // Validation names the field.
    s.post("/departments", &admin, json!({ "name": " " }))
        .await
        .expect_problem(422, Some("name"));
    s.post(
        "/departments",
        &admin,
        json!({ "name": "X", "parent_id": "nope" }),
    )
    .await
    .expect_problem(422, Some("parent_id"));
    // Rename and move; no cycles.
    let renamed = s
        .patch(
            &format!("/departments/{sales}"),
            &admin,
            json!({ "name": "Sales & Marketing" }),
        )
        .await;
    renamed.expect(200);
    assert_eq!(renamed.body["name"], "Sales & Marketing");
    for bad_parent in [&sales, &east] {
        s.patch(
            &format!("/departments/{sales}"),
            &admin,
            json!({ "parent_id": bad_parent }),
        )
        .await
        .expect_problem(422, Some("parent_id"));
    }
    let moved = s
        .patch(
            &format!("/departments/{east}"),
            &admin,
            json!({ "parent_id": null }),
        )
        .await;
    moved.expect(200);
    assert_eq!(moved.body["parent_id"], Value::Null);
    // Moving next to a sibling of the same name is refused.
    s.patch(
        &format!("/departments/{east}"),
        &admin,
        json!({ "parent_id": hq }),
    )
    .await
    .expect_problem(409, Some("name"));
    let list = s.get("/departments?limit=200", &admin).await;
    list.expect(200);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(4));

    // Delete: refused while it has sub-departments or people, unless reassigned.
    let person = s
        .post(
            "/users",
            &admin,
            json!({ "username": "wang", "display_name": "王五", "password": "wang-password-1",
                    "department_id": sales, "title": "Sales lead" }),
        )
        .await;
    person.expect(201);
    assert_eq!(person.body["department_id"], sales.as_str());
    assert_eq!(person.body["title"], "Sales lead");
    let refused = s.delete(&format!("/departments/{sales}"), &admin).await;
    refused.expect_problem(409, None);
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1 user")),
        "{}",
        refused.body
    );
    s.delete(&format!("/departments/{hq}"), &admin)
        .await
        .expect_problem(409, None);
    s.delete(&format!("/departments/{sales}?reassign=true"), &admin)
        .await
        .expect(204);
    let wang = s.get(&format!("/users/{}", person.id()), &admin).await;
    assert_eq!(wang.body["department_id"], hq.as_str(), "moved up");
    s.delete(&format!("/departments/{sales}"), &admin)
        .await
        .expect_problem(404, None);
    // A leaf goes at once.
    s.delete(&format!("/departments/{east}"), &admin)
        .await
        .expect(204);
    // Every change is in the audit log.
    let log = s.get("/audit-events?target_type=department", &admin).await;
    let actions: Vec<_> = log.body["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for action in ["createDepartment", "updateDepartment", "deleteDepartment"] {
        let logged = s
            .get(&format!("/audit-events?action={action}"), &admin)
            .await;
        assert!(
            logged.body["items"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{action} not audited ({actions:?})"
        );
    }
}

async fn directory_search(s: &TestServer) {
    let admin = s.admin().await;
    let rd = department(s, &admin, "研发部", None).await;
    let backend = department(s, &admin, "Backend", Some(&rd)).await;
    s.post(
        "/users",
        &admin,
        json!({ "username": "zhangsan", "display_name": "张三", "password": "zhang-password-1",
                "extension": "1001", "mobile": "+8613800138000", "department_id": backend,
                "title": "工程师" }),
    )
    .await
    .expect(201);
    s.post(
        "/users",
        &admin,
        json!({ "username": "lisi", "display_name": "李四", "password": "lisi-password-1",
                "extension": "1002", "department_id": rd }),
    )
    .await
    .expect(201);
    let desk = s
        .post(
            "/contacts",
            &admin,
            json!({ "book": "enterprise", "name": "Duty Desk", "landline": "01066668888",
                    "department_id": rd, "title": "Front desk" }),
        )
        .await;
    desk.expect(201);
    assert_eq!(desk.body["department_id"], rd.as_str());
    // Pinyin initials, full pinyin, the Chinese name itself, a part of it.
    for q in ["zs", "ZS", "zhangsan", "zhang", "张三", "张"] {
        let found = s
            .get(&format!("/directory?q={}", urlencode(q)), &admin)
            .await;
        found.expect(200);
        assert_eq!(names(&found), ["张三"], "q={q}");
        assert_eq!(found.body["items"][0]["kind"], "user");
        assert_eq!(found.body["items"][0]["title"], "工程师");
    }
    // Any number: extension, mobile (with or without +, typed with spaces), landline.
    for (q, who) in [
        ("1001", "张三"),
        ("138 0013 8000", "张三"),
        ("+86138", "张三"),
        ("66668888", "Duty Desk"),
        ("1002", "李四"),
    ] {
        let found = s
            .get(&format!("/directory?q={}", urlencode(q)), &admin)
            .await;
        assert_eq!(names(&found), [who], "q={q}");
    }
    let desk_found = s.get("/directory?q=duty", &admin).await;
    assert_eq!(desk_found.body["items"][0]["book"], "enterprise");
    // LIKE's wildcards are taken literally.
    assert!(names(&s.get("/directory?q=%25", &admin).await).is_empty());
    assert!(names(&s.get("/directory?q=_", &admin).await).is_empty());
    // By department, and with the departments below it.
    let in_rd = s
        .get(&format!("/directory?department_id={rd}"), &admin)
        .await;
    assert_eq!(names(&in_rd), ["Duty Desk", "李四"]);
    let all_rd = s
        .get(
            &format!("/directory?department_id={rd}&subtree=true"),
            &admin,
        )
        .await;
    assert_eq!(names(&all_rd).len(), 3);
    let zs_in_rd = s
        .get(
            &format!("/directory?department_id={rd}&subtree=true&q=zs"),
            &admin,
        )
        .await;
    assert_eq!(names(&zs_in_rd), ["张三"]);
    // Paging by name.
    let first = s.get("/directory?limit=2", &admin).await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let second = s
        .get(&format!("/directory?limit=2&cursor={cursor}"), &admin)
        .await;
    let mut all = names(&first);
    all.extend(names(&second));
    let everybody = names(&s.get("/directory?limit=200", &admin).await);
    assert_eq!(all, everybody[..all.len()]);
    // Personal contacts: found by their owner only. Renaming updates the key.
    let bob = s.user(&admin, "bob", "user", None).await;
    let _ = bob;
    let bob_token = s.token("bob", "bob-password").await;
    let mine = s
        .post(
            "/contacts",
            &bob_token,
            json!({ "name": "王小明", "mobile": "13911112222" }),
        )
        .await;
    mine.expect(201);
    let found = s.get("/directory?q=wxm", &bob_token).await;
    assert_eq!(names(&found), ["王小明"]);
    assert_eq!(found.body["items"][0]["book"], "personal");
    assert!(names(&s.get("/directory?q=wxm", &admin).await).is_empty());
    s.patch(
        &format!("/contacts/{}", mine.id()),
        &bob_token,
        json!({ "name": "赵六" }),
    )
    .await
    .expect(200);
    assert!(names(&s.get("/directory?q=wxm", &bob_token).await).is_empty());
    assert_eq!(names(&s.get("/directory?q=zl", &bob_token).await), ["赵六"]);
    // A personal contact has no place in the organisation tree.
    s.patch(
        &format!("/contacts/{}", mine.id()),
        &bob_token,
        json!({ "department_id": rd }),
    )
    .await
    .expect_problem(422, Some("department_id"));
    // Bad parameters are 422 naming them; another tenant's department is not found.
    s.get("/directory?limit=0", &admin)
        .await
        .expect_problem(422, Some("limit"));
    s.get("/directory?subtree=maybe", &admin)
        .await
        .expect_problem(422, Some("subtree"));
    let sa = admin.clone();
    let tenant_b = s
        .post("/tenants", &sa, json!({ "name": "Tenant B" }))
        .await
        .id();
    let tb = tenant_admin(s, &sa, "tb", Some(&tenant_b)).await;
    s.get(&format!("/directory?department_id={rd}"), &tb)
        .await
        .expect_problem(404, None);
    assert!(names(&s.get("/directory?q=zs", &tb).await).is_empty());
}

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn groups_and_templates(s: &TestServer) {
    let admin = s.admin().await;
    let alice_id = s.user(&admin, "alice", "user", None).await;
    let bob_id = s.user(&admin, "bob", "user", None).await;
    let alice = s.token("alice", "alice-password").await;
    let bob = s.token("bob", "bob-password").await;
    let desk = s
        .post(
            "/contacts",
            &admin,
            json!({ "book": "enterprise", "name": "Duty Desk", "landline": "01066668888" }),
        )
        .await
        .id();
    // An enterprise group (administrators) seen by everybody of the tenant.
    let team = s
        .post(
            "/groups",
            &admin,
            json!({ "book": "enterprise", "name": "Board", "members": [
                { "kind": "user", "user_id": alice_id },
                { "kind": "contact", "contact_id": desk },
                { "kind": "number", "number": "+8613800000001", "display_name": "Lawyer" },
            ] }),
        )
        .await;
    team.expect(201);
    assert_eq!(team.body["owner_id"], Value::Null);
    assert_eq!(team.body["members"][0]["display_name"], "User alice");
    assert_eq!(team.body["members"][1]["display_name"], "Duty Desk");
    let team = team.id();
    // Members are checked and named in errors; duplicates are refused.
    s.post(
        "/groups",
        &admin,
        json!({ "book": "enterprise", "name": "Bad", "members": [
            { "kind": "user", "user_id": "nobody" },
            { "kind": "number", "number": "call me" },
            { "kind": "number", "number": "123456" },
            { "kind": "number", "number": "123456" },
        ] }),
    )
    .await
    .expect_problem(422, Some("members[0].user_id"));
    s.post(
        "/groups",
        &admin,
        json!({ "book": "enterprise", "name": "Board" }),
    )
    .await
    .expect_problem(409, Some("name"));
    // A personal group: its owner sees it, nobody else does (not even an administrator).
    let mine = s
        .post(
            "/groups",
            &bob,
            json!({ "name": "My team", "members": [{ "kind": "user", "user_id": alice_id }] }),
        )
        .await;
    mine.expect(201);
    assert_eq!(mine.body["owner_id"], bob_id.as_str());
    let mine = mine.id();
    for other in [&alice, &admin] {
        s.get(&format!("/groups/{mine}"), other)
            .await
            .expect_problem(404, None);
        let listed = s.get("/groups", other).await;
        assert!(
            !names(&listed).contains(&"My team".to_owned()),
            "{}",
            listed.body
        );
    }
    let bobs = names(&s.get("/groups", &bob).await);
    assert_eq!(bobs.len(), 2, "{bobs:?}");
    assert!(bobs.contains(&"Board".to_owned()) && bobs.contains(&"My team".to_owned()));
    assert_eq!(
        names(&s.get("/groups?book=personal", &bob).await),
        ["My team"]
    );
    // The same name in another book is fine.
    s.post("/groups", &alice, json!({ "name": "My team" }))
        .await
        .expect(201);
    // Editing the members.
    let edited = s
        .patch(
            &format!("/groups/{mine}"),
            &bob,
            json!({ "members": [
                { "kind": "user", "user_id": alice_id },
                { "kind": "number", "number": "13900000009" },
            ] }),
        )
        .await;
    edited.expect(200);
    assert_eq!(edited.body["members"].as_array().map(Vec::len), Some(2));

    // A group into a template in one step: the group's members with one role, no duplicates.
    let template = s
        .post(
            "/templates",
            &bob,
            json!({ "name": "Weekly", "members": [
                { "kind": "user", "user_id": alice_id, "role": "chairman" },
            ] }),
        )
        .await
        .id();
    let added = s
        .post(
            &format!("/templates/{template}/groups"),
            &bob,
            json!({ "group_id": team, "role": "participant" }),
        )
        .await;
    added.expect(200);
    let members = added.body["members"].as_array().expect("members").clone();
    assert_eq!(members.len(), 3, "alice once: {members:?}");
    assert_eq!(members[0]["role"], "chairman", "alice keeps her role");
    assert_eq!(members[1]["contact_id"], desk.as_str());
    assert_eq!(members[1]["role"], "participant");
    assert_eq!(members[2]["number"], "+8613800000001");
    assert_eq!(members[2]["display_name"], "Lawyer");
    // Again: nothing new.
    let again = s
        .post(
            &format!("/templates/{template}/groups"),
            &bob,
            json!({ "group_id": mine }),
        )
        .await;
    again.expect(200);
    let members = again.body["members"].as_array().expect("members");
    assert_eq!(members.len(), 4, "only the new number: {members:?}");
    assert_eq!(members[3]["role"], "member", "the default role");
    // Someone else's personal group is no group at all.
    let alices_template = s
        .post("/templates", &alice, json!({ "name": "A" }))
        .await
        .id();
    s.post(
        &format!("/templates/{alices_template}/groups"),
        &alice,
        json!({ "group_id": mine }),
    )
    .await
    .expect_problem(422, Some("group_id"));
    // Nor may one change a template one does not manage.
    s.post(
        &format!("/templates/{alices_template}/groups"),
        &bob,
        json!({ "group_id": team }),
    )
    .await
    .expect_problem(404, None);
    // Deleting a group leaves the template's members.
    s.delete(&format!("/groups/{mine}"), &bob).await.expect(204);
    let t = s.get(&format!("/templates/{template}"), &bob).await;
    assert_eq!(t.body["members"].as_array().map(Vec::len), Some(4));
    let logged = s
        .get("/audit-events?action=addGroupToTemplate", &admin)
        .await;
    assert_eq!(logged.body["items"].as_array().map(Vec::len), Some(2));
}

async fn directory_permissions(s: &TestServer) {
    let sa = s.admin().await;
    let tenant_b = s
        .post("/tenants", &sa, json!({ "name": "Tenant B" }))
        .await
        .id();
    let ta = tenant_admin(s, &sa, "ta", None).await;
    let tb = tenant_admin(s, &sa, "tb", Some(&tenant_b)).await;
    let alice_id = s.user(&sa, "alice", "user", None).await;
    let alice = s.token("alice", "alice-password").await;
    let dept = department(s, &ta, "Finance", None).await;
    let group = s
        .post(
            "/groups",
            &ta,
            json!({ "book": "enterprise", "name": "All" }),
        )
        .await
        .id();
    // Ordinary users see the tree and enterprise groups but change neither: 403, audited.
    s.get("/departments", &alice).await.expect(200);
    s.get(&format!("/groups/{group}"), &alice).await.expect(200);
    for reply in [
        s.post("/departments", &alice, json!({ "name": "Mine" }))
            .await,
        s.patch(
            &format!("/departments/{dept}"),
            &alice,
            json!({ "name": "X" }),
        )
        .await,
        s.delete(&format!("/departments/{dept}"), &alice).await,
        s.post(
            "/groups",
            &alice,
            json!({ "book": "enterprise", "name": "G" }),
        )
        .await,
        s.patch(&format!("/groups/{group}"), &alice, json!({ "name": "X" }))
            .await,
        s.delete(&format!("/groups/{group}"), &alice).await,
        s.patch(
            &format!("/users/{alice_id}"),
            &alice,
            json!({ "department_id": dept }),
        )
        .await,
    ] {
        reply.expect_problem(403, None);
    }
    for action in [
        "createDepartment",
        "updateDepartment",
        "deleteDepartment",
        "createGroup",
        "updateGroup",
        "deleteGroup",
    ] {
        let log = s.get(&format!("/audit-events?action={action}"), &sa).await;
        assert!(
            log.body["items"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["outcome"] == "denied")),
            "{action}: no denied event in {}",
            log.body
        );
    }
    // Another tenant's ids answer 404, and its lists hold none of them.
    s.patch(&format!("/departments/{dept}"), &tb, json!({ "name": "X" }))
        .await
        .expect_problem(404, None);
    s.delete(&format!("/departments/{dept}"), &tb)
        .await
        .expect_problem(404, None);
    s.get(&format!("/groups/{group}"), &tb)
        .await
        .expect_problem(404, None);
    s.patch(&format!("/groups/{group}"), &tb, json!({ "name": "X" }))
        .await
        .expect_problem(404, None);
    s.delete(&format!("/groups/{group}"), &tb)
        .await
        .expect_problem(404, None);
    assert!(names(&s.get("/departments", &tb).await).is_empty());
    assert!(names(&s.get("/groups", &tb).await).is_empty());
    // Nor can it be referenced: a parent, a person's department, a group member.
    s.post(
        "/departments",
        &tb,
        json!({ "name": "Under A", "parent_id": dept }),
    )
    .await
    .expect_problem(422, Some("parent_id"));
    s.post(
        "/contacts",
        &tb,
        json!({ "book": "enterprise", "name": "C", "mobile": "123456", "department_id": dept }),
    )
    .await
    .expect_problem(422, Some("department_id"));
    s.post(
        "/groups",
        &tb,
        json!({ "name": "G", "members": [{ "kind": "user", "user_id": alice_id }] }),
    )
    .await
    .expect_problem(422, Some("members[0].user_id"));
    // The system administrator may act in any tenant; the tenant's own administrator too.
    s.patch(
        &format!("/departments/{dept}"),
        &sa,
        json!({ "sort_order": 3 }),
    )
    .await
    .expect(200);
    s.patch(
        &format!("/users/{alice_id}"),
        &ta,
        json!({ "department_id": dept, "title": "Accountant" }),
    )
    .await
    .expect(200);
    // Unknown fields and wrong types are 422 naming the field.
    s.post("/departments", &ta, json!({ "name": "Y", "colour": "red" }))
        .await
        .expect_problem(422, Some("colour"));
    s.post("/groups", &ta, json!({ "name": 5 }))
        .await
        .expect_problem(422, Some("name"));
}

/// A free-text department written through the API stays a label (the upgrade of older rows
/// into the tree is tested in the store's tests).
async fn contact_labels_stay_labels(s: &TestServer) {
    let admin = s.admin().await;
    // A label written through the API stays a label (personal contacts keep theirs).
    let labelled = s
        .post(
            "/contacts",
            &admin,
            json!({ "name": "张三丰", "mobile": "13800000000", "department": "武当" }),
        )
        .await;
    labelled.expect(201);
    assert_eq!(labelled.body["department"], "武当");
    assert_eq!(labelled.body["department_id"], Value::Null);
    // The search key is there from the first write.
    let found = s.get("/directory?q=zsf", &admin).await;
    assert_eq!(names(&found), ["张三丰"]);
}
