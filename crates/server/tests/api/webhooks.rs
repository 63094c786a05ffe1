//! Webhooks with a real local HTTP receiver: a burst of events while the receiver is down,
//! across a restart, all arrive (durable queue, retries); private targets are refused unless
//! the installation allows them; redirects are not followed.

use crate::both_backends;
use crate::common::{Db, TestServer, start_with};
use crate::room_call::Caller;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver on loopback: what it accepted (delivery id → event kind), how many
/// attempts it saw, and a switch between refusing (503) and accepting (200).
#[derive(Clone, Default)]
struct Receiver {
    accepted: Arc<Mutex<HashMap<String, String>>>,
    /// Refusals per delivery id.
    refused: Arc<Mutex<HashMap<String, usize>>>,
    attempts: Arc<AtomicUsize>,
    accepting: Arc<AtomicBool>,
    /// Hits on the redirect's target (it must see none).
    redirected: Arc<AtomicUsize>,
}

impl Receiver {
    /// Serves `/hook` (and `/moved`, which redirects to `/target`); the URL of `/hook`.
    async fn serve(&self) -> String {
        let me = self.clone();
        let hook = move |headers: axum::http::HeaderMap| {
            let me = me.clone();
            async move {
                me.attempts.fetch_add(1, Ordering::SeqCst);
                let get = |h: &str| {
                    headers
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                if !me.accepting.load(Ordering::SeqCst) {
                    *me.refused
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(get("x-conclave-delivery"))
                        .or_default() += 1;
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                me.accepted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(get("x-conclave-delivery"), get("x-conclave-event"));
                axum::http::StatusCode::OK
            }
        };
        let attempts = self.attempts.clone();
        let moved = move || {
            let attempts = attempts.clone();
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/target")],
                )
            }
        };
        let redirected = self.redirected.clone();
        let target = move || {
            let redirected = redirected.clone();
            async move {
                redirected.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .route("/moved", axum::routing::post(moved))
            .route("/target", axum::routing::any(target));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn accepted_of(&self, kinds: &[&str]) -> usize {
        self.accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|k| kinds.contains(&k.as_str()))
            .count()
    }
}

async fn start_allowing(db: Db, test: &str) -> Option<TestServer> {
    start_with(db, test, |s| s.webhooks_allow_private_targets = true).await
}

/// Stops the server and starts it again on the same data (and database).
async fn restart(s: &mut TestServer) {
    let running = s.running.take().expect("running");
    running.stop().await.expect("a clean stop");
    let mut settings = conclave_server::config::Settings::with_data_dir(s._tmp.path());
    settings.http_listen = "127.0.0.1:0".parse().expect("addr");
    for a in [
        &mut settings.sip_udp,
        &mut settings.sip_tcp,
        &mut settings.sip_tls,
    ] {
        *a = "127.0.0.1:0".parse().expect("addr");
    }
    settings.webhooks_allow_private_targets = true;
    if let Some(pg) = &s._pg {
        settings.database_url = pg.url();
    }
    let again = conclave_server::start(settings).await.expect("restarts");
    s.base = format!("http://{}", again.http_addr);
    s.running = Some(again);
}

async fn a_burst_survives_a_down_receiver_and_a_restart(db: Db) {
    const N: usize = 300;
    let receiver = Receiver::default();
    let hook = receiver.serve().await;
    let Some(mut s) = start_allowing(db, "webhook_burst").await else {
        return;
    };
    let admin = s.admin().await;
    s.post("/webhooks", &admin, json!({ "url": hook }))
        .await
        .expect(201);
    let room = s
        .post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
        .await
        .id();
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut caller = Caller::new(sip, "alice").await;
    assert_eq!(caller.dial("8001").await, 200);
    let live = s.get(&format!("/conferences/{room}"), &admin).await;
    let member = live.body["members"][0]["id"].clone();
    assert!(member.is_u64(), "{}", live.body);

    // The receiver is down: N events in a burst (mute, unmute, …).
    for i in 0..N {
        let action = if i % 2 == 0 { "mute" } else { "unmute" };
        s.post(
            &format!("/conferences/{room}/members/{member}/{action}"),
            &admin,
            json!({}),
        )
        .await
        .expect(200);
    }
    // Deliveries are tried again and again while the receiver is down (5 times for one of
    // them: more than a fixed retry budget of 1 + 3 would allow).
    let most_refused = || {
        receiver
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while most_refused() < 5 {
        assert!(
            Instant::now() < deadline,
            "deliveries stopped being retried after {} attempts",
            most_refused()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    restart(&mut s).await;
    // Back up: every one of the N arrives, once per delivery id.
    receiver.accepting.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    let arrived = || {
        (
            receiver.accepted_of(&["muted", "unmuted"]),
            receiver.accepted_of(&["joined"]),
        )
    };
    while arrived() < (N, 1) {
        assert!(
            Instant::now() < deadline,
            "of {N} mutes and a join, {:?} arrived",
            arrived()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(arrived(), (N, 1), "each once (by delivery id)");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_a_down_receiver_and_a_restart_sqlite() {
    a_burst_survives_a_down_receiver_and_a_restart(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_a_down_receiver_and_a_restart_postgres() {
    a_burst_survives_a_down_receiver_and_a_restart(Db::Postgres).await;
}

both_backends!(private_targets_are_refused);

/// By default (no `webhooks_allow_private_targets`), loopback, private and link-local
/// targets are refused when the webhook is created.
async fn private_targets_are_refused(s: &TestServer) {
    let admin = s.admin().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:9/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]:9/hook",
    ] {
        s.post("/webhooks", &admin, json!({ "url": url }))
            .await
            .expect_problem(422, Some("url"));
    }
    assert_eq!(s.get("/webhooks", &admin).await.body, json!([]));
}

async fn redirects_are_not_followed(db: Db) {
    let receiver = Receiver::default();
    let hook = receiver.serve().await.replace("/hook", "/moved");
    let Some(s) = start_allowing(db, "webhook_redirect").await else {
        return;
    };
    let admin = s.admin().await;
    s.post("/webhooks", &admin, json!({ "url": hook }))
        .await
        .expect(201);
    s.post("/rooms", &admin, json!({ "number": "8001", "name": "Ops" }))
        .await
        .expect(201);
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut caller = Caller::new(sip, "alice").await;
    assert_eq!(caller.dial("8001").await, 200);
    // The redirect is an answer that is not a success: the delivery is tried again (so at
    // least two attempts), and its target is never reached.
    let deadline = Instant::now() + Duration::from_secs(15);
    while receiver.attempts.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the delivery was not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        receiver.redirected.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    assert_eq!(caller.hang_up("8001").await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_sqlite() {
    redirects_are_not_followed(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_postgres() {
    redirects_are_not_followed(Db::Postgres).await;
}

/// Every directory change reaches the tenant's webhooks (departments, people, enterprise
/// groups, imports); a personal contact does not.
async fn directory_changes_reach_webhooks(db: Db) {
    let receiver = Receiver::default();
    receiver.accepting.store(true, Ordering::SeqCst);
    let hook = receiver.serve().await;
    let Some(s) = start_allowing(db, "webhook_directory").await else {
        return;
    };
    let admin = s.admin().await;
    s.post("/webhooks", &admin, json!({ "url": hook }))
        .await
        .expect(201);
    let dept = s
        .post("/departments", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201)
        .id();
    s.patch(
        &format!("/departments/{dept}"),
        &admin,
        json!({ "name": "Sales & Marketing" }),
    )
    .await
    .expect(200);
    s.post(
        "/contacts",
        &admin,
        json!({ "name": "Mine", "mobile": "13800000000", "book": "personal" }),
    )
    .await
    .expect(201);
    let csv = "kind,name,mobile\ncontact,Imported,13900000000\n";
    s.raw(
        reqwest::Method::POST,
        "/api/v1/directory/import?dry_run=false",
        Some(&admin),
        Some(("text/csv", csv.as_bytes().to_vec())),
    )
    .await
    .expect(200);
    let kinds = [
        "directory.createDepartment",
        "directory.updateDepartment",
        "directory.importDirectory",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.accepted_of(&kinds) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.accepted_of(&kinds), 3);
    assert_eq!(receiver.accepted_of(&["directory.createContact"]), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_changes_reach_webhooks_sqlite() {
    directory_changes_reach_webhooks(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_changes_reach_webhooks_postgres() {
    directory_changes_reach_webhooks(Db::Postgres).await;
}
