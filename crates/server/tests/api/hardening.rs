//! What must hold when the server is exposed on the internet (issue 10, the HTTP/API/store
//! side): a full disk does not break the store for good, a frozen account does not tell,
//! text fields refuse NUL and bidi controls, and so on. docs/security.md says which test
//! proves what.

use crate::both_backends;
use crate::common::{Db, TestServer, start_with};
use reqwest::Method;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

both_backends!(
    a_frozen_account_does_not_tell_a_right_password,
    nul_bytes_are_refused_naming_the_field,
    bidi_controls_are_refused_in_names,
    trivial_passwords_are_refused,
    event_streams_end_with_their_session,
);

/// Opens the events WebSocket with the token in the query string, as the console does.
pub(crate) async fn event_stream(
    s: &TestServer,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/api/v1/events?access_token={token}",
        s.base.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket")
        .0
}

/// Waits (at most `within`) for the stream to be closed by the server; the close code.
pub(crate) async fn closed_by_server(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: Duration,
) -> Option<u16> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => return Some(1006),
            Err(_) => return None,
        }
    }
}

/// An open events WebSocket ends with its credential: logout, expiry, a frozen or deleted
/// account each close it (code 4401); another user's stream stays open.
async fn event_streams_end_with_their_session(s: &TestServer) {
    let admin = s.admin().await;
    let mut bystander = event_stream(s, &admin).await;
    let id = s.user(&admin, "stream.user", "user", None).await;
    let login = || s.token("stream.user", "stream.user-password");

    // Logout: pushed at once.
    let token = login().await;
    let mut socket = event_stream(s, &token).await;
    s.call(Method::POST, "/auth/logout", &token, None)
        .await
        .expect(204);
    assert_eq!(
        closed_by_server(&mut socket, Duration::from_secs(10)).await,
        Some(4401),
        "logout closes the stream"
    );

    // Expiry: found by the periodic check (every 5 s).
    let token = login().await;
    let mut socket = event_stream(s, &token).await;
    let store = &s.running.as_ref().expect("running").store;
    let mut conn = store.conn().await.expect("conn");
    sqlx::query("UPDATE sessions SET expires_at = 1 WHERE token_hash = $1")
        .bind(conclave_server::credentials::token_hash(&token))
        .execute(&mut *conn)
        .await
        .expect("expire the session");
    drop(conn);
    assert_eq!(
        closed_by_server(&mut socket, Duration::from_secs(20)).await,
        Some(4401),
        "an expired session closes the stream"
    );

    // Frozen, then deleted.
    let token = login().await;
    let mut socket = event_stream(s, &token).await;
    s.post(&format!("/users/{id}/freeze"), &admin, json!({}))
        .await
        .expect(200);
    assert_eq!(
        closed_by_server(&mut socket, Duration::from_secs(10)).await,
        Some(4401),
        "freezing closes the stream"
    );
    s.post(&format!("/users/{id}/unfreeze"), &admin, json!({}))
        .await
        .expect(200);
    let token = login().await;
    let mut socket = event_stream(s, &token).await;
    s.delete(&format!("/users/{id}"), &admin).await.expect(204);
    assert_eq!(
        closed_by_server(&mut socket, Duration::from_secs(10)).await,
        Some(4401),
        "deleting the account closes the stream"
    );

    // The administrator's stream saw all that and is still open.
    assert_eq!(
        closed_by_server(&mut bystander, Duration::from_millis(500)).await,
        None,
        "another user's stream stays open"
    );
}

/// Web and SIP passwords have a minimum strength, on creation and on change.
async fn trivial_passwords_are_refused(s: &TestServer) {
    let admin = s.admin().await;
    let create = |username: &str, password: &str| json!({ "username": username, "display_name": "Weak", "password": password });
    for weak in [
        "password1",
        "Password123!",
        "1234567890",
        "qwertyuiop",
        "aaaaaaaaaaaa",
    ] {
        s.post("/users", &admin, create("weak.user", weak))
            .await
            .expect_problem(422, Some("password"));
    }
    s.post("/users", &admin, create("weak.user", "Weak.User2024"))
        .await
        .expect_problem(422, Some("password"));
    let id = s.user(&admin, "strong.user", "user", None).await;
    let token = s.token("strong.user", "strong.user-password").await;
    // Changing one's own password: the same rule.
    s.patch(
        &format!("/users/{id}"),
        &token,
        json!({ "password": "letmein123", "current_password": "strong.user-password" }),
    )
    .await
    .expect_problem(422, Some("password"));
    s.patch(
        &format!("/users/{id}"),
        &admin,
        json!({ "extension": "4321", "sip_password": "4321432143" }),
    )
    .await
    .expect_problem(422, Some("sip_password"));
    s.patch(
        &format!("/users/{id}"),
        &token,
        json!({ "password": "Lantern-river-42", "current_password": "strong.user-password" }),
    )
    .await
    .expect(200);
    s.token("strong.user", "Lantern-river-42").await;
}

/// Bidirectional overrides, isolates and marks make a name display as another ("Trojan
/// Source"): refused in every name, with the field named; C1 controls too.
async fn bidi_controls_are_refused_in_names(s: &TestServer) {
    let admin = s.admin().await;
    let user = s.user(&admin, "bidi.user", "user", None).await;
    s.post(
        "/rooms",
        &admin,
        json!({ "number": "8123", "name": "Board \u{202E}gnp.exe" }),
    )
    .await
    .expect_problem(422, Some("name"));
    s.patch(
        &format!("/users/{user}"),
        &admin,
        json!({ "display_name": "Ali \u{2067}ce" }),
    )
    .await
    .expect_problem(422, Some("display_name"));
    s.post("/contacts", &admin, json!({ "name": "Bob\u{200F}" }))
        .await
        .expect_problem(422, Some("name"));
    s.post("/tenants", &admin, json!({ "name": "Acme\u{2066}" }))
        .await
        .expect_problem(422, Some("name"));
    s.post("/tenants", &admin, json!({ "name": "Acme\u{85}" }))
        .await
        .expect_problem(422, Some("name"));
    s.patch(
        &format!("/users/{user}"),
        &admin,
        json!({ "email": "a\u{202E}b@example.com" }),
    )
    .await
    .expect_problem(422, Some("email"));
    // Names in any script, with the joiners they need, are kept.
    s.room(&admin, "8124", "جلسة می‌خواهم 👩‍💻").await;
}

/// A NUL (U+0000) anywhere in a body, a query parameter or a path answers 422 naming the
/// field (404 for a path): PostgreSQL cannot store it in TEXT and used to answer 500.
async fn nul_bytes_are_refused_naming_the_field(s: &TestServer) {
    let admin = s.admin().await;
    let user = s.user(&admin, "nul.user", "user", None).await;
    let login =
        serde_json::to_vec(&json!({ "username": "ad\u{0}min", "password": "whatever-pass" }))
            .expect("json");
    s.raw(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(("application/json", login)),
    )
    .await
    .expect_problem(422, Some("username"));
    s.patch(
        &format!("/users/{user}"),
        &admin,
        json!({ "email": "a\u{0}b@example.com" }),
    )
    .await
    .expect_problem(422, Some("email"));
    s.post(
        "/contacts",
        &admin,
        json!({ "name": "Contact", "email": "x@exam\u{0}ple.com" }),
    )
    .await
    .expect_problem(422, Some("email"));
    s.get("/users?cursor=%00", &admin)
        .await
        .expect_problem(422, Some("cursor"));
    s.get("/users/abc%00def", &admin)
        .await
        .expect_problem(404, None);
    s.get("/rooms/%00", &admin).await.expect_problem(404, None);
}

/// A frozen account answers a right password exactly as a wrong one, and the limiter counts
/// it as a failure (a right guess does not clear the account's count, which would tell too).
async fn a_frozen_account_does_not_tell_a_right_password(s: &TestServer) {
    let admin = s.admin().await;
    let id = s.user(&admin, "frozen.user", "user", None).await;
    s.post(&format!("/users/{id}/freeze"), &admin, json!({}))
        .await
        .expect(200);
    let right = s.login("frozen.user", "frozen.user-password").await;
    let wrong = s.login("frozen.user", "not-the-password").await;
    right.expect_problem(401, None);
    wrong.expect_problem(401, None);
    assert_eq!(right.body, wrong.body, "the answers must not differ");
    for i in 0..7 {
        s.login("frozen.user", &format!("guess-{i}"))
            .await
            .expect(401);
    }
    // Nine failures so far, the right password among them: the tenth attempt is the last
    // one checked, whatever it is, and then the account is blocked.
    s.login("frozen.user", "frozen.user-password")
        .await
        .expect(401);
    s.login("frozen.user", "frozen.user-password")
        .await
        .expect_problem(429, None);
}

/// A 2 MiB tmpfs, unmounted on drop. None (and the test says SKIPPED) when this process may
/// not mount (not root, or no mount namespace privileges).
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk {
            dir,
            _parent: parent,
        })
    }

    /// Fills what is left of the disk with a ballast file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("ballast");
        let mut file = std::fs::File::create(&path).expect("ballast");
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // Whatever is left is smaller than a chunk: take it byte by byte.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

async fn health(s: &TestServer) -> u16 {
    s.raw(Method::GET, "/healthz", None, None)
        .await
        .status
        .as_u16()
}

/// Polls /healthz until it answers `status` (true) or 10 s have passed (false).
async fn health_becomes(s: &TestServer, status: u16) -> bool {
    for _ in 0..100 {
        if health(s).await == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn create_room(s: &TestServer, token: &str, n: usize) -> u16 {
    s.post(
        "/rooms",
        token,
        json!({ "number": format!("{}", 70000 + n), "name": format!("Room {n} {}", "x".repeat(90)) }),
    )
    .await
    .status
    .as_u16()
}

/// Disk full on SQLite: writes fail with 5xx and /healthz says 503 while it lasts; once space
/// is freed every write succeeds again, on every pooled connection, and /healthz is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_does_not_poison_the_store() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let db = disk.dir.join("conclave.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let s = start_with(Db::Sqlite, "disk_full", |settings| {
        settings.database_url = url;
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    assert_eq!(health(&s).await, 200);
    assert_eq!(create_room(&s, &admin, 0).await, 201);

    let ballast = disk.fill();
    let mut refused = None;
    for n in 1..2000 {
        let status = create_room(&s, &admin, n).await;
        if status != 201 {
            refused = Some((n, status));
            break;
        }
    }
    let (next, status) = refused.expect("a full disk refuses a write");
    assert!(status >= 500, "a full disk answers 5xx, got {status}");
    // A few more failed writes, so that every pooled connection has seen the error.
    for n in next + 1..next + 8 {
        assert_ne!(create_room(&s, &admin, n).await, 201);
    }
    // /healthz reuses its probe's answer for a second: wait for a fresh one.
    assert!(
        health_becomes(&s, 503).await,
        "/healthz must report a store that cannot write"
    );

    std::fs::remove_file(&ballast).expect("free the space");
    // More writes than pooled connections: each must work again.
    for n in next + 8..next + 24 {
        assert_eq!(
            create_room(&s, &admin, n).await,
            201,
            "write {n} after space was freed"
        );
    }
    assert!(
        health_becomes(&s, 200).await,
        "/healthz after space was freed"
    );
    s.stop().await;
    drop(disk);
}

fn free_port() -> u16 {
    crate::common::free_port()
}

/// The real `conclave serve` in a child process, its log (stdout and stderr) in a file.
struct RealServer {
    child: std::process::Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RealServer {
    async fn start(extra: &[&str]) -> RealServer {
        let dir = tempfile::tempdir().expect("tmp");
        let http = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--http-listen", &http])
            .args(["--sip-udp", &format!("127.0.0.1:{}", free_port())])
            .args(["--sip-tcp", &format!("127.0.0.1:{}", free_port())])
            .args(["--sip-tls", &format!("127.0.0.1:{}", free_port())])
            .args(extra)
            .env("CONCLAVE_ADMIN_PASSWORD", crate::common::ADMIN_PASSWORD)
            .env_remove("CONCLAVE_DATABASE_URL")
            .current_dir(dir.path())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("conclave starts");
        let mut server = RealServer {
            child,
            base: format!("http://{http}"),
            log,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            let health = client.get(format!("{}/healthz", server.base)).send().await;
            if health.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("conclave exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("conclave did not become ready");
    }

    async fn admin_token(&self) -> String {
        let reply: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({ "username": "admin", "password": crate::common::ADMIN_PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        reply["token"].as_str().expect("token").to_owned()
    }

    /// Stops it and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).expect("the log")
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// At `--log debug` every request is logged with its URI: the events WebSocket's token (in
/// the query string, as browsers send it) is replaced by REDACTED in every line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_in_query_strings_are_not_logged() {
    let server = RealServer::start(&["--log", "debug"]).await;
    let token = server.admin_token().await;
    let ws = format!(
        "{}/api/v1/events?access_token={token}",
        server.base.replace("http://", "ws://")
    );
    let (socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .expect("websocket");
    drop(socket);
    // The same URL without the upgrade (an error answer is logged too).
    let plain = reqwest::get(format!(
        "{}/api/v1/events?access_token={token}&limit=1",
        server.base
    ))
    .await
    .expect("request");
    assert_eq!(plain.status(), 422, "an unknown parameter is refused");
    let log = server.stop();
    assert!(
        log.contains("access_token=REDACTED"),
        "the request lines are logged, redacted:\n{log}"
    );
    let secret = token.trim_start_matches("cs_");
    assert!(
        !log.contains(secret),
        "the token appears in the log:\n{}",
        log.lines()
            .filter(|l| l.contains(secret))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn metrics_status(s: &TestServer, headers: &[(&str, &str)]) -> u16 {
    let mut req = s.http.get(format!("{}/metrics", s.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("metrics").status().as_u16()
}

/// Without `metrics_token`, /metrics answers loopback clients only, and not through a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_to_loopback_by_default() {
    let s = start_with(Db::Sqlite, "metrics_default", |_| {})
        .await
        .expect("server");
    assert_eq!(metrics_status(&s, &[]).await, 200);
    for proxied in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        assert_eq!(
            metrics_status(&s, &[(proxied, "203.0.113.7")]).await,
            403,
            "a request through a proxy ({proxied}) is not a local one"
        );
    }
    s.stop().await;
}

/// With `metrics_token`, /metrics needs it, from anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set() {
    let s = start_with(Db::Sqlite, "metrics_token", |settings| {
        settings.metrics_token = Some("scrape-token-0123456789".into());
    })
    .await
    .expect("server");
    let no_token = s.raw(Method::GET, "/metrics", None, None).await;
    no_token.expect_problem(401, None);
    s.raw(
        Method::GET,
        "/metrics",
        Some("wrong-token-0123456789"),
        None,
    )
    .await
    .expect_problem(401, None);
    let scraped = s
        .raw(
            Method::GET,
            "/metrics",
            Some("scrape-token-0123456789"),
            None,
        )
        .await;
    scraped.expect(200);
    assert!(
        scraped.body.as_str().unwrap_or("").contains("conclave_"),
        "the metrics themselves"
    );
    s.stop().await;
}

/// Every answer — console, API (success and error), health, metrics, the OpenAPI document —
/// carries the security headers; no HSTS over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let s = start_with(Db::Sqlite, "security_headers", |_| {})
        .await
        .expect("server");
    let admin = s.admin().await;
    for (path, token) in [
        ("/", None),
        ("/rooms/some/console/route", None),
        ("/healthz", None),
        ("/metrics", None),
        ("/api/openapi.json", None),
        ("/api/v1/me", None),
        ("/api/v1/me", Some(admin.as_str())),
        ("/api/v1/nothing-here", Some(admin.as_str())),
        ("/api/v1/users/%00", Some(admin.as_str())),
    ] {
        let mut req = s.http.get(format!("{}{path}", s.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let reply = req.send().await.expect("answer");
        let headers = reply.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'self'")
                && csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe-inline"),
            "{path}: CSP {csp:?}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "{path}: no HSTS over plain HTTP"
        );
    }
    s.stop().await;
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The data directory is 0700 and the SQLite database with its -wal and -shm files 0600, even
/// under a permissive umask (the server embedded in this test does not set one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_readable_by_the_server_only() {
    // SAFETY: sets this test process's file creation mask (one test per process).
    unsafe {
        libc::umask(0o022);
    }
    let parent = tempfile::tempdir().expect("tmp");
    let data = parent.path().join("data");
    let db = data.join("conclave.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let s = start_with(Db::Sqlite, "private_files", |settings| {
        settings.data_dir = data.clone();
        settings.database_url = url;
    })
    .await
    .expect("server");
    let admin = s.admin().await;
    s.room(&admin, "8555", "Private").await;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["conclave.db", "conclave.db-wal", "conclave.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    s.stop().await;

    // An existing world-readable database is made private at the next start.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let s = start_with(Db::Sqlite, "private_files_again", |settings| {
        settings.data_dir = data.clone();
        settings.database_url = url;
    })
    .await
    .expect("server");
    assert_eq!(mode(&data), 0o700, "the data directory, tightened");
    assert_eq!(mode(&db), 0o600, "the database, tightened");
    s.stop().await;
}
