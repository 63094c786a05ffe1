//! SIP registration end to end: a real peer (sipp) registers an extension created through the
//! API, with the right password, a wrong one, and as a frozen user (answered as a wrong one).

use crate::common::{Db, TestServer, free_udp_port, start};
use serde_json::json;
use std::process::Command;

/// REGISTER, answer the digest challenge with these credentials, expect `status`.
fn scenario(extension: &str, password: &str, status: u16) -> String {
    let register = |cseq: u32, auth: &str| {
        format!(
            "<send retrans=\"500\"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:{extension}@[remote_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:{extension}@[remote_ip]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:{extension}@[local_ip]:[local_port]>
Expires: 300
{auth}
User-Agent: sipp
Content-Length: 0

]]></send>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"register\">\n{}\n\
         <recv response=\"401\" auth=\"true\"/>\n{}\n<recv response=\"{status}\"/>\n</scenario>\n",
        register(1, ""),
        register(
            2,
            &format!("[authentication username={extension} password={password}]")
        ),
    )
}

/// Runs sipp once; true when the scenario went as written.
fn sipp(server: &TestServer, extension: &str, password: &str, status: u16) -> bool {
    let dir = tempfile::tempdir().expect("tmp");
    let xml = dir.path().join("register.xml");
    std::fs::write(&xml, scenario(extension, password, status)).expect("write scenario");
    let sip = server.running.as_ref().expect("running").sip.udp;
    let out = Command::new("sipp")
        .arg(sip.to_string())
        .arg("-sf")
        .arg(&xml)
        .args([
            "-m",
            "1",
            "-l",
            "1",
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
            "-timeout",
            "10s",
            "-timeout_error",
            "-nostdin",
        ])
        .args(["-p", &free_udp_port().to_string()])
        .current_dir(dir.path())
        .output()
        .expect("sipp runs (package sip-tester)");
    if !out.status.success() {
        eprintln!(
            "sipp: {}\n{}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_an_extension_with_digest_auth() {
    let server = start(Db::Sqlite, "sipp_register").await.expect("server");
    let admin = server.admin().await;
    let user = server
        .post(
            "/users",
            &admin,
            json!({
                "username": "desk1001", "display_name": "Desk phone", "password": "desk-password",
                "extension": "1001", "sip_password": "sip-secret-1",
            }),
        )
        .await;
    user.expect(201);
    let server = std::sync::Arc::new(server);
    let s = server.clone();
    let results = tokio::task::spawn_blocking(move || {
        (
            sipp(&s, "1001", "sip-secret-1", 200),
            sipp(&s, "1001", "wrong-password", 401),
            sipp(&s, "1001", "wrong-password", 200),
            sipp(&s, "1999", "sip-secret-1", 401),
        )
    })
    .await
    .expect("sipp thread");
    assert!(results.0, "the right password registers");
    assert!(results.1, "a wrong password is challenged again");
    assert!(!results.2, "a wrong password never registers");
    assert!(results.3, "an unknown extension is challenged again");

    // A frozen user cannot register, and is told no more than for a wrong password.
    server
        .post(&format!("/users/{}/freeze", user.id()), &admin, json!({}))
        .await
        .expect(200);
    let s = server.clone();
    let frozen = tokio::task::spawn_blocking(move || sipp(&s, "1001", "sip-secret-1", 401))
        .await
        .expect("sipp thread");
    assert!(
        frozen,
        "a frozen user is challenged again, as for a wrong password"
    );
    let s = server.clone();
    let registered = tokio::task::spawn_blocking(move || sipp(&s, "1001", "sip-secret-1", 200))
        .await
        .expect("sipp thread");
    assert!(!registered, "a frozen user never registers");
    if let Ok(server) = std::sync::Arc::try_unwrap(server) {
        server.stop().await;
    }
}
