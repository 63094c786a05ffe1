//! Starting a real server on a loopback port, against SQLite or a scratch PostgreSQL schema.

use conclave_server::config::Settings;
pub use conclave_store::testing::{PgScratch, pg_scratch, postgres_url};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running server and a client for it.
pub struct TestServer {
    pub running: Option<conclave_server::Running>,
    pub base: String,
    pub http: reqwest::Client,
    pub _tmp: tempfile::TempDir,
    pub _pg: Option<PgScratch>,
}

pub async fn start(db: Db, test: &str) -> Option<TestServer> {
    start_with(db, test, |_| {}).await
}

/// Like [`start`], with some settings changed first (short timeouts, low limits).
pub async fn start_with(
    db: Db,
    test: &str,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestServer> {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::with_data_dir(tmp.path());
    settings.http_listen = "127.0.0.1:0".parse().expect("addr");
    for sip in [
        &mut settings.sip_udp,
        &mut settings.sip_tcp,
        &mut settings.sip_tls,
    ] {
        *sip = "127.0.0.1:0".parse().expect("addr");
    }
    settings.admin_password = Some(ADMIN_PASSWORD.into());
    configure(&mut settings);
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => {
            let scratch = pg_scratch(postgres_url(test)?).await;
            settings.database_url = scratch.url();
            Some(scratch)
        }
    };
    let running = conclave_server::start(settings)
        .await
        .expect("server starts");
    Some(TestServer {
        base: format!("http://{}", running.http_addr),
        running: Some(running),
        http: reqwest::Client::new(),
        _tmp: tmp,
        _pg: pg,
    })
}

/// A response: status and JSON body (Null when empty).
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub content_type: String,
}

impl Reply {
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }
    /// The field names of a problem+json body.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
    #[track_caller]
    pub fn expect_problem(&self, status: u16, field: Option<&str>) {
        self.expect(status);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert!(
            self.body["title"].is_string() && self.body["detail"].is_string(),
            "{}",
            self.body
        );
        if let Some(field) = field {
            assert!(
                self.fields().iter().any(|f| f == field),
                "field {field} not named in {}",
                self.body
            );
        }
    }
}

impl TestServer {
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            body,
            content_type,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).expect("json")));
        self.raw(method, &format!("/api/v1{path}"), Some(token), body)
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, token, Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        let body = serde_json::to_vec(&json!({ "username": username, "password": password }))
            .expect("json");
        self.raw(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(("application/json", body)),
        )
        .await
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let reply = self.login(username, password).await;
        reply.expect(200);
        reply.body["token"].as_str().expect("token").to_owned()
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user (as `token`) and returns its id.
    pub async fn user(
        &self,
        token: &str,
        username: &str,
        kind: &str,
        tenant_id: Option<&str>,
    ) -> String {
        let mut body = json!({
            "username": username,
            "display_name": format!("User {username}"),
            "password": format!("{username}-password"),
            "kind": kind,
        });
        if let Some(t) = tenant_id {
            body["tenant_id"] = json!(t);
        }
        let reply = self.post("/users", token, body).await;
        reply.expect(201);
        reply.id()
    }

    /// Creates a room (as `token`) with only a number and a name; returns its id.
    pub async fn room(&self, token: &str, number: &str, name: &str) -> String {
        let reply = self
            .post("/rooms", token, json!({ "number": number, "name": name }))
            .await;
        reply.expect(201);
        reply.id()
    }

    /// Creates a trunk (as `token`) to a gateway on 127.0.0.1:`port`.
    pub async fn trunk_to(&self, token: &str, name: &str, port: u16) {
        self.post(
            "/trunks",
            token,
            json!({ "name": name, "host": "127.0.0.1", "port": port }),
        )
        .await
        .expect(201);
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean stop");
        }
    }
}

/// Runs a scenario on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::common::start($crate::common::Db::Sqlite, stringify!($name)).await.expect("sqlite");
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = $crate::common::start($crate::common::Db::Postgres, stringify!($name)).await else { return };
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

/// A UDP port nobody uses right now on loopback (for peers that need one given).
pub fn free_udp_port() -> u16 {
    free_port()
}

/// A port free now for TCP and UDP on 127.0.0.1, for a server a test starts later. Picked at
/// random above the media ports (10000–20000) and below the kernel's ephemeral ports
/// (32768 up): a port the kernel gave away meanwhile (any socket bound to port 0, any
/// outgoing connection) can never be it, as it could be with a port 0 binding's pick.
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for _ in 0..1000 {
        let draw = DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let random = std::collections::hash_map::RandomState::new().hash_one(draw);
        let port = 20_001 + (random % 12_760) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port between 20001 and 32760 on 127.0.0.1");
}

/// Is sipp (Debian's sip-tester) here? Tests that need it say they are skipped when not.
pub fn sipp_installed() -> bool {
    let found = std::process::Command::new("sipp")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("SIPp"))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: sipp is not installed (Debian package sip-tester)");
    }
    found
}
