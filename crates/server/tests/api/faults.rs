//! Faults with the real binary and a real caller (sipp): `kill -9` with a live meeting, then a
//! restart on the same database, closes the meeting and the caller's stay at the last known
//! activity (never after the kill); SIGTERM says BYE to the caller and closes the record.

use crate::common::{
    ADMIN_PASSWORD, PgScratch, free_udp_port, pg_scratch, postgres_url, sipp_installed,
};
use crate::restart::{Process, spawn_on};
use crate::sip_calls::Scenario;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// sipp calling `room` on the server's SIP port, running `scenario` once, as a child we can
/// wait for or kill.
fn sipp(sip_port: u16, room: &str, scenario: &Scenario, dir: &std::path::Path) -> Child {
    let xml = dir.join("scenario.xml");
    std::fs::write(&xml, scenario.xml("fault")).expect("write scenario");
    Command::new("sipp")
        .arg(format!("127.0.0.1:{sip_port}"))
        .arg("-sf")
        .arg(&xml)
        .args(["-s", room, "-i", "127.0.0.1", "-m", "1", "-l", "1"])
        .args([
            "-timeout",
            "40s",
            "-timeout_error",
            "-recv_timeout",
            "30000",
        ])
        .args(["-nostdin", "-trace_err"])
        .args(["-p", &free_udp_port().to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs")
}

/// A sipp run that a failing test does not leave behind.
struct Caller(Child);

impl Drop for Caller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (`secs` at most) for a child to exit on its own.
fn exited_within(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The room's meeting in the history, once it shows `caller` among its attendees.
async fn recorded_meeting(p: &Process, admin: &str) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = p
            .send(
                reqwest::Method::GET,
                "/conference-history",
                Some(admin),
                None,
            )
            .await;
        let found = list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|m| m["room_number"] == "8001").cloned());
        if let Some(meeting) = found {
            let (_, record) = p
                .send(
                    reqwest::Method::GET,
                    &format!(
                        "/conference-history/{}",
                        meeting["id"].as_str().unwrap_or("")
                    ),
                    Some(admin),
                    None,
                )
                .await;
            let attendance = record["attendance"].as_array().cloned().unwrap_or_default();
            if !attendance.is_empty() {
                return (meeting, attendance);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the meeting and its caller never reached the history: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A started binary with a room `8001` and a sipp caller in its meeting.
async fn a_live_meeting(
    dir: &std::path::Path,
    database_url: Option<&str>,
    scenario: &Scenario,
) -> (Process, String, Caller) {
    let sip_port = free_udp_port();
    let mut p = spawn_on(dir, database_url, Some(ADMIN_PASSWORD), sip_port);
    p.ready().await;
    let admin = p.login("admin", ADMIN_PASSWORD).await;
    let (status, room) = p
        .send(
            reqwest::Method::POST,
            "/rooms",
            Some(&admin),
            Some(json!({ "number": "8001", "name": "Faults" })),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let caller = Caller(sipp(sip_port, "8001", scenario, dir));
    let (meeting, attendance) = recorded_meeting(&p, &admin).await;
    assert!(meeting["ended_at"].is_null(), "still live: {meeting}");
    assert!(attendance.iter().all(|a| a["left_at"].is_null()));
    (p, admin, caller)
}

/// The room's meeting is closed, and so is every stay in it, no later than `until`.
async fn assert_closed(p: &Process, admin: &str, until: Option<i64>) {
    let (meeting, attendance) = recorded_meeting(p, admin).await;
    let ended = meeting["ended_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("the meeting has an end: {meeting}"));
    let started = meeting["started_at"].as_i64().unwrap_or(i64::MAX);
    assert!(ended >= started, "{meeting}");
    if let Some(until) = until {
        assert!(
            ended <= until,
            "ended at {ended}, after the kill at {until}"
        );
    }
    for stay in &attendance {
        let left = stay["left_at"]
            .as_i64()
            .unwrap_or_else(|| panic!("the caller has left: {stay}"));
        assert!(
            left >= stay["joined_at"].as_i64().unwrap_or(i64::MAX),
            "{stay}"
        );
        assert!(left <= ended, "left at {left}, after the end {ended}");
    }
}

async fn kill_9_then_restart(database_url: Option<String>, _pg: Option<PgScratch>) {
    if !sipp_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    // The caller stays until the server hangs up on it (it never will: it is killed).
    let scenario = Scenario::new("crash").connect().answer_request("BYE");
    let (mut p, _, caller) = a_live_meeting(dir.path(), database_url.as_deref(), &scenario).await;
    let killed_at = conclave_store::now_ms();
    p.child.kill().expect("kill -9");
    let _ = p.child.wait();
    drop(caller);

    let mut again = spawn_on(dir.path(), database_url.as_deref(), None, free_udp_port());
    again.ready().await;
    let admin = again.login("admin", ADMIN_PASSWORD).await;
    assert_closed(&again, &admin, Some(killed_at)).await;
    again.stop();
}

async fn sigterm_says_bye(database_url: Option<String>, _pg: Option<PgScratch>) {
    if !sipp_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    // sipp succeeds only when the server's BYE comes (and is answered).
    let scenario = Scenario::new("graceful").connect().answer_request("BYE");
    let (p, _, mut caller) = a_live_meeting(dir.path(), database_url.as_deref(), &scenario).await;
    p.stop();
    let status = exited_within(&mut caller.0, 20);
    assert!(
        status.is_some_and(|s| s.success()),
        "the caller got a BYE on SIGTERM (sipp: {status:?})"
    );

    let mut again = spawn_on(dir.path(), database_url.as_deref(), None, free_udp_port());
    again.ready().await;
    let admin = again.login("admin", ADMIN_PASSWORD).await;
    assert_closed(&again, &admin, None).await;
    again.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_live_meeting_is_closed_at_restart_sqlite() {
    kill_9_then_restart(None, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_live_meeting_is_closed_at_restart_postgres() {
    let Some(base) = postgres_url("kill_9_live_meeting") else {
        return;
    };
    let scratch = pg_scratch(base).await;
    kill_9_then_restart(Some(scratch.url()), Some(scratch)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_bye_and_closes_the_record_sqlite() {
    sigterm_says_bye(None, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_bye_and_closes_the_record_postgres() {
    let Some(base) = postgres_url("sigterm_live_meeting") else {
        return;
    };
    let scratch = pg_scratch(base).await;
    sigterm_says_bye(Some(scratch.url()), Some(scratch)).await;
}
