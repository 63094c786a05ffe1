//! The real binary: first start creates the administrator; what was created survives a restart.

use crate::common::{PgScratch, pg_scratch, postgres_url};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) base: String,
    stdout: std::sync::mpsc::Receiver<String>,
}

fn spawn(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    admin_password: Option<&str>,
) -> Process {
    spawn_on(data_dir, database_url, admin_password, 0)
}

/// Starts `conclave serve` with SIP over UDP on this loopback port (0: any).
pub(crate) fn spawn_on(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    admin_password: Option<&str>,
    sip_udp_port: u16,
) -> Process {
    spawn_with(data_dir, database_url, admin_password, sip_udp_port, &[])
}

/// Like [`spawn_on`], with more flags for `conclave serve`.
pub(crate) fn spawn_with(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    admin_password: Option<&str>,
    sip_udp_port: u16,
    extra: &[&str],
) -> Process {
    let port = crate::common::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.args(["serve", "--data-dir"])
        .arg(data_dir)
        .args([
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--log",
            "warn",
        ])
        .args([
            "--sip-udp",
            &format!("127.0.0.1:{sip_udp_port}"),
            "--sip-tcp",
            "127.0.0.1:0",
            "--sip-tls",
            "127.0.0.1:0",
        ])
        .env_remove("CONCLAVE_ADMIN_PASSWORD")
        .env_remove("CONCLAVE_DATABASE_URL")
        .current_dir(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    cmd.args(extra);
    if let Some(p) = admin_password {
        cmd.env("CONCLAVE_ADMIN_PASSWORD", p);
    }
    let mut child = cmd.spawn().expect("conclave starts");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Process {
        child,
        base: format!("http://127.0.0.1:{port}"),
        stdout: rx,
    }
}

/// A test that fails must not leave the server running.
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub(crate) async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base)).await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("conclave exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("conclave did not become ready");
    }

    pub(crate) fn printed(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    /// SIGTERM, as systemd or an operator would stop it; it must exit cleanly.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "conclave exited with {status} on SIGTERM");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "conclave did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

async fn survive_restart(database_url: Option<String>, _pg: Option<PgScratch>) {
    let dir = tempfile::tempdir().expect("tmp");
    // First start without CONCLAVE_ADMIN_PASSWORD: a password is printed once.
    let mut first = spawn(dir.path(), database_url.as_deref(), None);
    first.ready().await;
    let printed = first.printed();
    let password = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed: {printed:?}"))
        .to_owned();
    let admin = first.login("admin", &password).await;
    let (status, room) = first
        .send(
            reqwest::Method::POST,
            "/rooms",
            Some(&admin),
            Some(json!({ "number": "8001", "name": "Persistent", "pin": "1357" })),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let (status, user) = first
        .send(reqwest::Method::POST, "/users", Some(&admin), Some(json!({ "username": "kept", "display_name": "Kept", "password": "kept-password", "extension": "2001", "sip_password": "kept-sip-pw" })))
        .await;
    assert_eq!(status, 201, "{user}");
    let (status, template) = first
        .send(reqwest::Method::POST, "/templates", Some(&admin), Some(json!({ "name": "Kept scheme", "members": [{ "kind": "user", "user_id": user["id"], "role": "chairman" }] })))
        .await;
    assert_eq!(status, 201, "{template}");
    first.stop();

    // Second start: nothing new printed, everything still there, the old session still valid.
    let mut second = spawn(dir.path(), database_url.as_deref(), None);
    second.ready().await;
    assert!(
        second.printed().iter().all(|l| !l.contains("password:")),
        "the password is printed only once"
    );
    let (status, got) = second
        .send(
            reqwest::Method::GET,
            &format!("/rooms/{}", room["id"].as_str().unwrap_or("")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "session survives a restart: {got}");
    assert_eq!(got["pin"], "1357");
    let (_, got) = second
        .send(
            reqwest::Method::GET,
            &format!("/templates/{}", template["id"].as_str().unwrap_or("")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(got["members"][0]["role"], "chairman");
    second.login("kept", "kept-password").await;
    let (_, events) = second
        .send(
            reqwest::Method::GET,
            "/audit-events?action=createRoom",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(events["items"].as_array().map(Vec::len), Some(1));
    second.stop();
}

#[tokio::test]
async fn restart_keeps_everything_sqlite() {
    survive_restart(None, None).await;
}

#[tokio::test]
async fn restart_keeps_everything_postgres() {
    let Some(base) = postgres_url("restart_keeps_everything") else {
        return;
    };
    let scratch = pg_scratch(base).await;
    survive_restart(Some(scratch.url()), Some(scratch)).await;
}
