//! Trunks: their API, and calls to phone numbers through a real gateway (a sipp UAS that
//! challenges, rings, answers, plays audio, and takes the BYE or the CANCEL).

use crate::both_backends;
use crate::common::sipp_installed;
use crate::common::{Db, TestServer, free_udp_port, start};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::Duration;

both_backends!(trunks_are_managed_by_administrators);

async fn trunks_are_managed_by_administrators(s: &TestServer) {
    let admin = s.admin().await;
    // Every refusal at once.
    let bad = s
        .post(
            "/trunks",
            &admin,
            json!({
                "name": "", "host": "gw example", "port": 0, "register": true,
                "rewrite": [{ "pattern": "(", "replace": "+86$1" }, { "pattern": "0(\\d+)", "replace": "sip:$1" }],
                "ring_timeout_seconds": 1, "caller_id": "abc",
            }),
        )
        .await;
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "caller_id",
            "host",
            "name",
            "port",
            "register",
            "rewrite[0].pattern",
            "rewrite[1].replace",
            "ring_timeout_seconds"
        ],
        "{}",
        bad.body
    );
    s.post(
        "/trunks",
        &admin,
        json!({ "name": "x", "host": "gw", "colour": "red" }),
    )
    .await
    .expect_problem(422, None);

    let created = s
        .post(
            "/trunks",
            &admin,
            json!({
                "name": "Carrier", "host": "gw.example.com", "transport": "tcp",
                "username": "acct", "password": "s3cret", "caller_id": "+861065529988",
                "rewrite": [{ "pattern": "0(\\d+)", "replace": "+8610$1" }], "srtp": "optional",
            }),
        )
        .await;
    created.expect(201);
    let id = created.id();
    let body = &created.body;
    assert_eq!(body["has_password"], true, "{body}");
    assert!(
        body.get("password").is_none(),
        "the password is never shown"
    );
    assert_eq!(
        (body["port"].clone(), body["registration"].clone()),
        (json!(5060), json!("off"))
    );
    s.post(
        "/trunks",
        &admin,
        json!({ "name": "Carrier", "host": "other" }),
    )
    .await
    .expect_problem(409, Some("name"));
    // Updating without a password keeps it; an empty one removes it.
    let updated = s
        .call(
            Method::PUT,
            &format!("/trunks/{id}"),
            &admin,
            Some(json!({
                "name": "Carrier", "host": "gw2.example.com", "username": "acct",
            })),
        )
        .await;
    updated.expect(200);
    assert_eq!(
        (
            updated.body["host"].clone(),
            updated.body["has_password"].clone()
        ),
        (json!("gw2.example.com"), json!(true))
    );
    let cleared = s
        .call(
            Method::PUT,
            &format!("/trunks/{id}"),
            &admin,
            Some(json!({
                "name": "Carrier", "host": "gw2.example.com", "password": "",
            })),
        )
        .await;
    assert_eq!(cleared.body["has_password"], false, "{}", cleared.body);
    let listed = s.get("/trunks", &admin).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));

    // Ordinary users neither see nor change trunks; the audit log has every change.
    s.user(&admin, "plain", "user", None).await;
    let token = s.token("plain", "plain-password").await;
    s.get("/trunks", &token).await.expect_problem(403, None);
    s.post("/trunks", &token, json!({ "name": "Mine", "host": "gw" }))
        .await
        .expect_problem(403, None);
    s.get(&format!("/trunks/{id}"), &token)
        .await
        .expect_problem(404, None);
    s.delete(&format!("/trunks/{id}"), &admin).await.expect(204);
    s.get(&format!("/trunks/{id}"), &admin)
        .await
        .expect_problem(404, None);
    let audit = s
        .get(&format!("/audit-events?target_id={id}"), &admin)
        .await;
    let actions: Vec<String> = audit.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|e| e["action"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for action in ["createTrunk", "updateTrunk", "deleteTrunk"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} audited: {actions:?}"
        );
    }
}

/// The gateway: REGISTER is challenged (401) then accepted; the INVITE is challenged too,
/// then rung, answered with PCMU, fed sipp's recording, and hung up by us. Each message
/// checks the digest credentials. (No `qop`: sipp's verifyauth computes the plain RFC 2069
/// response only, and only from Authorization, so the INVITE gets a 401 rather than a 407;
/// qop=auth and 407 are covered by the stack's unit tests.)
const GATEWAY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="gateway">
  <recv request="REGISTER" optional="true" next="register"/>
  <recv request="INVITE">
    <action><ereg regexp="^INVITE sip:\+8610(65529988)@" search_in="msg" check_it="true" assign_to="dialled,digits"/></action>
  </recv>
  <nop><action><log message="dialled [$dialled] [$digits]"/></action></nop>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="gw.test", nonce="n0nce[call_number]", algorithm=MD5
Content-Length: 0

]]></send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action><verifyauth assign_to="invite_ok" username="acct" password="s3cret"/></action>
  </recv>
  <nop test="invite_ok" next="invite_accepted"/>
  <nop next="refuse"/>
  <label id="invite_accepted"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:gw@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:gw@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=gw 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
]]></send>
  <recv request="ACK"/>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>
  <recv request="BYE" timeout="30000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop next="end"/>

  <label id="register"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="gw.test", nonce="r3g[call_number]", algorithm=MD5
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action><verifyauth assign_to="register_ok" username="acct" password="s3cret"/></action>
  </recv>
  <nop test="register_ok" next="register_accepted"/>
  <nop next="refuse"/>
  <label id="register_accepted"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=600
Content-Length: 0

]]></send>
  <nop next="end"/>

  <label id="refuse"/>
  <send><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]no[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"#;

/// A gateway that rings and never answers: the ring timeout CANCELs the call.
const RINGING_GATEWAY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ringing gateway">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:gw@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <recv request="CANCEL" timeout="20000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
CSeq: [cseq] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"#;

/// A gateway whose callee is busy.
const BUSY_GATEWAY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy gateway">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"#;

/// A gateway whose callee answers at once, and stays until we hang up.
pub(crate) const ANSWERING_GATEWAY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answering gateway">
  <recv request="INVITE"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]gw[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:gw@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=gw 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK"/>
  <recv request="BYE" timeout="30000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#;

/// Starts a sipp UAS gateway on `port`, handling `calls` calls, in the background.
pub(crate) fn gateway(
    scenario: &'static str,
    port: u16,
    transport: &'static str,
    calls: u32,
) -> tokio::task::JoinHandle<Output> {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("tmp");
        let xml = dir.path().join("gateway.xml");
        std::fs::write(&xml, scenario).expect("write scenario");
        let media_port = free_udp_port() & !1;
        Command::new("sipp")
            .arg("-sf")
            .arg(&xml)
            .args(["-m", &calls.to_string(), "-t", transport, "-i", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args([
                "-timeout",
                "40s",
                "-timeout_error",
                "-nostdin",
                "-trace_err",
            ])
            .current_dir(dir.path())
            .output()
            .expect("sipp runs")
    })
}

pub(crate) fn explain(out: &Output) -> String {
    let tail: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or("")
        .lines()
        .rev()
        .take(20)
        .collect();
    format!(
        "{}\n{}",
        tail.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `path` until `ok` holds (at most ~10 s); the last answer.
pub(crate) async fn wait_for(
    s: &TestServer,
    token: &str,
    path: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = s.get(path, token).await.body;
        if ok(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

async fn room_and_template(s: &TestServer, admin: &str, number: &str) -> (String, String) {
    let room = s
        .post(
            "/rooms",
            admin,
            json!({ "number": "8001", "name": "Flood response" }),
        )
        .await
        .id();
    let template = s
        .post(
            "/templates",
            admin,
            json!({
                "name": "Call the field team", "room_id": room,
                "members": [{ "kind": "number", "number": number, "display_name": "Field team", "role": "member" }],
            }),
        )
        .await
        .id();
    (room, template)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_number_is_called_through_a_registered_trunk() {
    if !sipp_installed() {
        return;
    }
    let s = start(Db::Sqlite, "trunk_call").await.expect("server");
    let admin = s.admin().await;
    let port = free_udp_port();
    let sipp = gateway(GATEWAY, port, "u1", 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trunk = s
        .post(
            "/trunks",
            &admin,
            json!({
                "name": "Carrier", "host": "127.0.0.1", "port": port,
                "username": "acct", "password": "s3cret", "register": true,
                "rewrite": [{ "pattern": "0(\\d+)", "replace": "+8610$1" }],
            }),
        )
        .await;
    trunk.expect(201);
    let path = format!("/trunks/{}", trunk.id());
    let registered = wait_for(&s, &admin, &path, |t| t["registration"] == "registered").await;
    assert_eq!(registered["registration"], "registered", "{registered}");
    // The password is sealed at rest: nowhere in the database's files.
    for entry in std::fs::read_dir(s._tmp.path())
        .expect("data dir")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("conclave.db")
        {
            let bytes = std::fs::read(entry.path()).expect("read the database");
            assert!(
                !bytes.windows(6).any(|w| w == b"s3cret"),
                "{:?} holds the trunk's password in clear",
                entry.file_name()
            );
        }
    }

    let (room, template) = room_and_template(&s, &admin, "065529988").await;
    let started = s
        .post("/conferences", &admin, json!({ "template_id": template }))
        .await;
    started.expect(201);
    assert_eq!(
        started.body["members"][0]["status"], "calling",
        "{}",
        started.body
    );
    // The gateway answers and plays its recording into the room.
    let roster = wait_for(&s, &admin, &format!("/conferences/{room}"), |r| {
        r["members"][0]["quality"]["packets_received"]
            .as_u64()
            .unwrap_or(0)
            > 20
    })
    .await;
    let member = &roster["members"][0];
    let invitation = &roster["invitations"][0];
    assert_eq!(
        (invitation["state"].clone(), invitation["number"].clone()),
        (json!("joined"), json!("+861065529988")),
        "{roster}"
    );
    assert_eq!(
        (
            member["name"].clone(),
            member["number"].clone(),
            member["via"].clone(),
            member["quality"]["codec"].clone()
        ),
        (
            json!("Field team"),
            json!("+861065529988"),
            json!("dial_out"),
            json!("PCMA")
        ),
        "{roster}"
    );
    let ended = s
        .post(&format!("/conferences/{room}/end"), &admin, json!({}))
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    let out = sipp.await.expect("sipp");
    assert!(
        out.status.success(),
        "the gateway's scenario: {}",
        explain(&out)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_number_is_cancelled_after_the_trunks_ring_timeout() {
    if !sipp_installed() {
        return;
    }
    let s = start(Db::Sqlite, "trunk_cancel").await.expect("server");
    let admin = s.admin().await;
    let port = free_udp_port();
    // Over TCP: the server opens the connection to the gateway itself.
    let sipp = gateway(RINGING_GATEWAY, port, "t1", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.post(
        "/trunks",
        &admin,
        json!({ "name": "Carrier", "host": "127.0.0.1", "port": port, "transport": "tcp", "ring_timeout_seconds": 5 }),
    )
    .await
    .expect(201);
    let (room, template) = room_and_template(&s, &admin, "13800138000").await;
    s.post("/conferences", &admin, json!({ "template_id": template }))
        .await
        .expect(201);
    let out = sipp.await.expect("sipp");
    assert!(
        out.status.success(),
        "the gateway saw the CANCEL: {}",
        explain(&out)
    );
    // Nobody answered: the meeting that waited only for them is over.
    let gone = wait_for(&s, &admin, &format!("/conferences/{room}"), |r| {
        r["status"] == 404
    })
    .await;
    assert_eq!(gone["status"], 404, "{gone}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redial_missing_calls_the_busy_again() {
    if !sipp_installed() {
        return;
    }
    let s = start(Db::Sqlite, "trunk_redial").await.expect("server");
    let admin = s.admin().await;
    let port = free_udp_port();
    s.trunk_to(&admin, "Carrier", port).await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8001", "name": "Flood response" }),
        )
        .await
        .id();
    // Someone dials in; then the chair calls a number, which is busy.
    let sip = s.running.as_ref().expect("running").sip.udp;
    let mut caller = crate::room_call::Caller::new(sip, "chair").await;
    assert_eq!(caller.dial("8001").await, 200);
    let busy = gateway(BUSY_GATEWAY, port, "u1", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let invited = s
        .post(
            &format!("/conferences/{room}/invite"),
            &admin,
            json!({ "number": "13800138000", "display_name": "Field team", "role": "member" }),
        )
        .await;
    invited.expect(202);
    let out = busy.await.expect("sipp");
    assert!(out.status.success(), "busy gateway: {}", explain(&out));
    let path = format!("/conferences/{room}");
    let roster = wait_for(&s, &admin, &path, |r| {
        r["invitations"][0]["state"] == "busy"
    })
    .await;
    assert_eq!(roster["invitations"][0]["state"], "busy", "{roster}");

    // Call again everyone missing: this time they answer.
    let answering = gateway(ANSWERING_GATEWAY, port, "u1", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let redialled = s
        .post(&format!("/conferences/{room}/redial"), &admin, json!({}))
        .await;
    redialled.expect(200);
    assert_eq!(
        redialled.body["members"][0]["status"], "calling",
        "{}",
        redialled.body
    );
    let roster = wait_for(&s, &admin, &path, |r| {
        r["invitations"][0]["state"] == "joined"
    })
    .await;
    assert_eq!(roster["invitations"][0]["state"], "joined", "{roster}");
    assert_eq!(
        roster["members"].as_array().map(Vec::len),
        Some(2),
        "{roster}"
    );
    // Nobody is missing now: redialling calls no one.
    let again = s
        .post(&format!("/conferences/{room}/redial"), &admin, json!({}))
        .await;
    assert_eq!(again.body["members"], json!([]), "{}", again.body);
    let ended = s
        .post(&format!("/conferences/{room}/end"), &admin, json!({}))
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    let out = answering.await.expect("sipp");
    assert!(out.status.success(), "answering gateway: {}", explain(&out));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_starts_an_ad_hoc_meeting_for_a_caller() {
    if !sipp_installed() {
        return;
    }
    let s = start(Db::Sqlite, "trunk_ad_hoc").await.expect("server");
    let admin = s.admin().await;
    let port = free_udp_port();
    s.trunk_to(&admin, "Carrier", port).await;
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8002", "name": "Ad hoc" }),
        )
        .await
        .id();
    // Bad lists are refused before anyone is called.
    s.post(
        "/conferences",
        &admin,
        json!({ "room_id": room, "members": [{ "kind": "number", "role": "member" }] }),
    )
    .await
    .expect_problem(422, Some("members[0].number"));
    s.post("/conferences", &admin, json!({ "members": [] }))
        .await
        .expect_problem(422, Some("template_id"));
    let answering = gateway(ANSWERING_GATEWAY, port, "u1", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = s
        .post(
            "/conferences",
            &admin,
            json!({
                "room_id": room, "settings": { "mute_on_entry": true },
                "members": [{ "kind": "number", "number": "+8613900000000", "display_name": "The caller", "role": "chairman" }],
            }),
        )
        .await;
    started.expect(201);
    let roster = wait_for(&s, &admin, &format!("/conferences/{room}"), |r| {
        r["members"][0]["role"] == "chairman"
    })
    .await;
    let member = &roster["members"][0];
    assert_eq!(
        (
            member["name"].clone(),
            member["number"].clone(),
            member["role"].clone()
        ),
        (
            json!("The caller"),
            json!("+8613900000000"),
            json!("chairman")
        ),
        "{roster}"
    );
    let ended = s
        .post(&format!("/conferences/{room}/end"), &admin, json!({}))
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    let out = answering.await.expect("sipp");
    assert!(out.status.success(), "answering gateway: {}", explain(&out));
    s.stop().await;
}

// ------------------------------------------------------------------ toll fraud

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_numbers_is_a_permission_with_limits_sqlite() {
    calling_numbers_is_a_permission_with_limits(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_numbers_is_a_permission_with_limits_postgres() {
    calling_numbers_is_a_permission_with_limits(Db::Postgres).await;
}

/// Who may call numbers through the trunks (administrators, and users the tenant grants it),
/// which numbers (the tenant's patterns), and how many at once: a plain user is refused, a
/// number outside the patterns is refused, and of a parallel burst exactly the limit is
/// placed (sipp is the gateway and counts what reaches it).
async fn calling_numbers_is_a_permission_with_limits(db: Db) {
    if !sipp_installed() {
        return;
    }
    let Some(s) = start(db, "toll_fraud").await else {
        return;
    };
    let admin = s.admin().await;
    let tenant = s.get("/me", &admin).await.body["tenant_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    let policy_path = format!("/tenants/{tenant}/outbound-policy");
    let port = free_udp_port();
    s.trunk_to(&admin, "Carrier", port).await;

    // A plain user runs their own room, but may not call numbers through the trunks.
    let plain_id = s.user(&admin, "plain", "user", None).await;
    let plain = s.token("plain", "plain-password").await;
    let own_room = s
        .post(
            "/rooms",
            &plain,
            json!({ "number": "8101", "name": "Mine" }),
        )
        .await;
    own_room.expect(201);
    let own_room = own_room.id();
    s.post(
        "/conferences",
        &plain,
        json!({ "room_id": own_room, "members": [{ "kind": "number", "number": "+882345678901", "role": "member" }] }),
    )
    .await
    .expect_problem(403, None);
    s.post(
        &format!("/conferences/{own_room}/invite"),
        &plain,
        json!({ "number": "+882345678901" }),
    )
    .await
    .expect_problem(403, None);
    assert_eq!(
        s.get(&format!("/conferences/{own_room}"), &plain)
            .await
            .status,
        404,
        "no meeting was started for a refused call"
    );
    let denied = s.get("/audit-events?action=inviteMember", &admin).await;
    assert!(
        denied.body["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["outcome"] == "denied")),
        "the refusal is audited: {}",
        denied.body
    );
    // Only administrators see or set the policy; what they set is checked.
    s.get(&policy_path, &plain).await.expect_problem(403, None);
    s.call(
        Method::PUT,
        &policy_path,
        &plain,
        Some(json!({ "granted_users": [plain_id] })),
    )
    .await
    .expect_problem(403, None);
    let mut fields = s
        .call(
            Method::PUT,
            &policy_path,
            &admin,
            Some(json!({ "allowed_patterns": ["("], "granted_users": ["nobody"] })),
        )
        .await
        .fields();
    fields.sort();
    assert_eq!(fields, ["allowed_patterns[0]", "granted_users[0]"]);
    let defaults = s.get(&policy_path, &admin).await;
    defaults.expect(200);
    assert_eq!(defaults.body["concurrent_calls"], 10, "{}", defaults.body);

    // Granted, and only Beijing numbers: another number is still refused.
    s.call(
        Method::PUT,
        &policy_path,
        &admin,
        Some(json!({ "granted_users": [plain_id], "allowed_patterns": ["\\+8610\\d{8}"], "concurrent_calls": 3 })),
    )
    .await
    .expect(200);
    s.post(
        &format!("/conferences/{own_room}/invite"),
        &plain,
        json!({ "number": "+882345678901" }),
    )
    .await
    .expect_problem(403, None);
    // The patterns hold for administrators too.
    let room = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8001", "name": "Flood response" }),
        )
        .await
        .id();
    s.post(
        &format!("/conferences/{room}/invite"),
        &admin,
        json!({ "number": "+882345678901" }),
    )
    .await
    .expect_problem(403, None);

    // Eight calls at once, three allowed up at once: exactly three reach the gateway.
    let answering = gateway(ANSWERING_GATEWAY, port, "u1", 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let invite = |i: usize| {
        let path = format!("/conferences/{room}/invite");
        let (s, admin) = (&s, &admin);
        async move {
            s.post(
                &path,
                admin,
                json!({ "number": format!("+861065529{i:03}"), "display_name": format!("Desk {i}") }),
            )
            .await
        }
    };
    let replies = futures::future::join_all((0..8).map(invite)).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [202, 202, 202, 429, 429, 429, 429, 429],
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for refused in replies.iter().filter(|r| r.status == 429) {
        refused.expect_problem(429, None);
    }
    let path = format!("/conferences/{room}");
    let roster = wait_for(&s, &admin, &path, |r| {
        r["members"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    assert_eq!(
        roster["members"].as_array().map(Vec::len),
        Some(3),
        "{roster}"
    );
    let ended = s
        .post(&format!("/conferences/{room}/end"), &admin, json!({}))
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    let out = answering.await.expect("sipp");
    assert!(out.status.success(), "answering gateway: {}", explain(&out));

    // The calls ended: their places are free again.
    let busy = gateway(BUSY_GATEWAY, port, "u1", 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.post(
        &format!("/conferences/{room}/invite"),
        &plain,
        json!({ "number": "+861065529988" }),
    )
    .await
    .expect_problem(403, None); // plain does not run the admin's room
    s.post(
        &format!("/conferences/{own_room}/invite"),
        &plain,
        json!({ "number": "+861065529988" }),
    )
    .await
    .expect(202);
    let out = busy.await.expect("sipp");
    assert!(out.status.success(), "busy gateway: {}", explain(&out));
    s.stop().await;
}
