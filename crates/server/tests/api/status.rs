//! The dashboard's figures (`getStatus`): a live meeting with a phone in it is counted by how
//! the phone came; rooms, extensions and registrations of the tenant; booked meetings of the
//! next day; the server's own load
//! only for system administrators; nothing of another tenant, nothing for a plain user.

use crate::common::{Db, start};
use crate::phone::{Phone, talk};
use serde_json::json;

async fn status_counts_what_is_live(db: Db) {
    let Some(s) = start(db, "status").await else {
        return;
    };
    let sa = s.admin().await;
    let room = s.room(&sa, "8500", "Status room").await;
    s.room(&sa, "8501", "Idle room").await;
    s.post(
        "/users",
        &sa,
        json!({ "username": "desk", "display_name": "Desk", "password": "desk-phone-password", "extension": "2501" }),
    )
    .await
    .expect(201);

    // A meeting booked for two hours from now is among the next ones; one in three days is not.
    let idle = s.get("/rooms?limit=200", &sa).await.body["items"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["number"] == "8501").cloned())
        .expect("room 8501");
    for (name, secs) in [("Soon", 7200), ("Later", 3 * 86_400)] {
        s.post(
            "/bookings",
            &sa,
            json!({ "name": name, "room_id": idle["id"], "time_zone": "UTC",
                    "start_local": crate::scheduling::utc_in(secs), "duration_minutes": 30 }),
        )
        .await
        .expect(201);
    }
    let before = s.get("/status", &sa).await;
    before.expect(200);
    assert_eq!(before.body["live_meetings"], 0, "{}", before.body);
    assert_eq!(before.body["rooms"], 2);
    assert_eq!(before.body["extensions"], 1);
    assert_eq!(before.body["extensions_registered"], 0);
    let next: Vec<&str> = before.body["next"]
        .as_array()
        .expect("next")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(next, ["Soon"], "{}", before.body);

    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut phone = Phone::on(sip, "127.0.0.1", "status-caller").await;
    assert_eq!(phone.dial("8500", None, "sendrecv").await, 200);
    talk(&mut [&mut phone], &[Some(440.0)], 10).await;
    let now = s.get("/status", &sa).await;
    now.expect(200);
    let b = &now.body;
    assert_eq!(b["live_meetings"], 1, "{b}");
    assert_eq!(b["rooms_in_use"], 1);
    assert_eq!(b["members_in_meetings"], 1);
    assert_eq!(b["calls"]["dial_in"], 1);
    assert_eq!(b["calls"]["dial_out"], 0);
    assert_eq!(b["meetings"][0]["room_id"], room.as_str());
    assert_eq!(b["meetings"][0]["members"], 1);
    // The system administrator also sees the server: the member is on one media worker.
    let workers = b["server"]["media_workers"].as_array().expect("workers");
    let members: u64 = workers
        .iter()
        .map(|w| w["members"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(members, 1, "{b}");
    assert!(
        b["server"]["descriptors_limit"].as_u64().unwrap_or(0) > 0,
        "{b}"
    );

    // A tenant administrator sees the tenant, not the server; a user sees nothing; another
    // tenant's figures are not found.
    s.user(&sa, "ta", "tenant_admin", None).await;
    let ta = s.token("ta", "ta-password").await;
    let as_ta = s.get("/status", &ta).await;
    as_ta.expect(200);
    assert_eq!(as_ta.body["live_meetings"], 1);
    assert!(as_ta.body.get("server").is_none(), "{}", as_ta.body);
    s.user(&sa, "plain", "user", None).await;
    let plain = s.token("plain", "plain-password").await;
    s.get("/status", &plain).await.expect_problem(403, None);
    let other = s
        .post("/tenants", &sa, json!({ "name": "Other" }))
        .await
        .id();
    s.get(&format!("/status?tenant_id={other}"), &ta)
        .await
        .expect_problem(404, None);
    let theirs = s.get(&format!("/status?tenant_id={other}"), &sa).await;
    theirs.expect(200);
    assert_eq!(theirs.body["live_meetings"], 0, "{}", theirs.body);

    assert_eq!(phone.hang_up().await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_what_is_live_sqlite() {
    status_counts_what_is_live(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_what_is_live_postgres() {
    status_counts_what_is_live(Db::Postgres).await;
}
