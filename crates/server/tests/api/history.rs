//! Meeting history: starting the same meeting again in one call (`restartConference`), from a
//! template or from who was called into it.

use crate::both_backends;
use crate::common::TestServer;
use conclave_sip::{Limits, Message, parse_datagram};
use reqwest::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

both_backends!(
    a_template_meeting_starts_again_from_history,
    an_ad_hoc_meeting_calls_back_who_was_called,
    the_history_is_found_by_attendee_and_exported,
);

/// Two meetings with different callers: the history finds each by who attended (name or
/// number), and the page exports as CSV with its attendees.
async fn the_history_is_found_by_attendee_and_exported(s: &TestServer) {
    let admin = s.admin().await;
    s.room(&admin, "8601", "North office").await;
    s.room(&admin, "8602", "South office").await;
    let sip = s.running.as_ref().expect("running").sip.udp;
    for (room, who) in [("8601", "amelia"), ("8602", "bertrand")] {
        let mut phone = crate::phone::Phone::on(sip, "127.0.0.1", who).await;
        assert_eq!(phone.dial(room, None, "sendrecv").await, 200);
        crate::phone::talk(&mut [&mut phone], &[Some(440.0)], 10).await;
        assert_eq!(phone.hang_up().await, 200);
        ended_meetings(s, &admin, room, 1).await;
    }
    let found = s.get("/conference-history?participant=BERT", &admin).await;
    found.expect(200);
    let rooms: Vec<&str> = found.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["room_number"].as_str())
        .collect();
    assert_eq!(rooms, ["8602"], "{}", found.body);
    let none = s
        .get("/conference-history?participant=nobody-here", &admin)
        .await;
    assert_eq!(none.body["items"].as_array().map(Vec::len), Some(0));
    let csv = s
        .get("/conference-history?format=csv&q=office", &admin)
        .await;
    csv.expect(200);
    let text = csv.body.as_str().unwrap_or_default().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "room_number,room_name,started_at,ended_at,minutes,attendees"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].starts_with("8602,South office,") && lines[1].contains("bertrand"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("8601,North office,") && lines[2].contains("amelia"),
        "{text}"
    );
    s.get("/conference-history?format=xml", &admin)
        .await
        .expect_problem(422, Some("format"));
}

/// The history's meetings in this room, newest first, once `count` of them have ended (the
/// history is written off the meeting, a moment later).
async fn ended_meetings(
    s: &TestServer,
    admin: &str,
    room_number: &str,
    count: usize,
) -> Vec<Value> {
    for _ in 0..100 {
        let list = s
            .get(&format!("/conference-history?q={room_number}"), admin)
            .await;
        list.expect(200);
        let items = list.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= count && items.iter().all(|m| m["ended_at"].is_i64()) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} ended meetings in room {room_number} in the history");
}

async fn restart(s: &TestServer, token: &str, meeting_id: &str) -> crate::common::Reply {
    s.call(
        Method::POST,
        &format!("/conference-history/{meeting_id}/restart"),
        token,
        None,
    )
    .await
}

/// (display_name, role, status, reason) of each member of a `Started` answer.
fn calls(started: &Value) -> Vec<(String, String, String, String)> {
    started["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members in {started}"))
        .iter()
        .map(|m| {
            let text = |f: &str| m[f].as_str().unwrap_or("").to_owned();
            (
                text("display_name"),
                text("role"),
                text("status"),
                text("reason"),
            )
        })
        .collect()
}

async fn a_template_meeting_starts_again_from_history(s: &TestServer) {
    let admin = s.admin().await;
    let room_id = s
        .post(
            "/rooms",
            &admin,
            json!({ "number": "8001", "name": "Flood response" }),
        )
        .await
        .id();
    // Phone numbers and no trunk to call them: every call fails, and the meeting ends at once,
    // leaving its record in the history.
    let template = s
        .post(
            "/templates",
            &admin,
            json!({
                "name": "Flood call-out", "room_id": room_id,
                "members": [
                    { "kind": "number", "number": "+8613900000000", "display_name": "Field team", "role": "chairman" },
                    { "kind": "number", "number": "5550100", "display_name": "Duty desk", "role": "member" },
                ],
            }),
        )
        .await;
    template.expect(201);
    let template_id = template.id();
    let started = s
        .post(
            "/conferences",
            &admin,
            json!({ "template_id": template_id }),
        )
        .await;
    started.expect(201);
    let expected = vec![
        (
            "Field team".to_owned(),
            "chairman".to_owned(),
            "failed".to_owned(),
            "no trunk takes +8613900000000".to_owned(),
        ),
        (
            "Duty desk".to_owned(),
            "member".to_owned(),
            "failed".to_owned(),
            "no trunk takes 5550100".to_owned(),
        ),
    ];
    assert_eq!(calls(&started.body), expected, "{}", started.body);
    let history = ended_meetings(s, &admin, "8001", 1).await;
    let meeting = history[0].clone();
    let meeting_id = meeting["id"].as_str().expect("id").to_owned();
    assert_eq!(meeting["room_id"], room_id);
    assert_eq!(
        meeting["template_id"], template_id,
        "the history records the template a meeting started from: {meeting}"
    );

    // Started again: the same template, so the same members, roles and outcome.
    let again = restart(s, &admin, &meeting_id).await;
    again.expect(201);
    assert_eq!(again.body["room_id"], room_id);
    assert_eq!(calls(&again.body), expected, "{}", again.body);
    let history = ended_meetings(s, &admin, "8001", 2).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["template_id"], template_id);
    assert_ne!(history[0]["id"], meeting["id"]);
    let audit = s
        .get("/audit-events?action=restartConference", &admin)
        .await;
    assert_eq!(
        audit.body["items"][0]["detail"]["meeting_id"], meeting_id,
        "{}",
        audit.body
    );
    assert_eq!(audit.body["items"][0]["target_id"], room_id);

    // The template as it is now: an edit shows in the next restart.
    s.patch(
        &format!("/templates/{template_id}"),
        &admin,
        json!({ "members": [{ "kind": "number", "number": "5550101", "display_name": "Night desk", "role": "manager" }] }),
    )
    .await
    .expect(200);
    let edited = restart(s, &admin, &meeting_id).await;
    edited.expect(201);
    assert_eq!(
        calls(&edited.body),
        [(
            "Night desk".to_owned(),
            "manager".to_owned(),
            "failed".to_owned(),
            "no trunk takes 5550101".to_owned()
        )]
    );
    ended_meetings(s, &admin, "8001", 3).await;

    // Nobody else's: another tenant's administrator, a user who does not run the room, an
    // unknown id — all 404.
    let other = s
        .post("/tenants", &admin, json!({ "name": "Elsewhere" }))
        .await
        .id();
    s.user(&admin, "elsewhere-admin", "tenant_admin", Some(&other))
        .await;
    let outsider = s.token("elsewhere-admin", "elsewhere-admin-password").await;
    restart(s, &outsider, &meeting_id)
        .await
        .expect_problem(404, None);
    s.user(&admin, "bystander", "user", None).await;
    let bystander = s.token("bystander", "bystander-password").await;
    restart(s, &bystander, &meeting_id)
        .await
        .expect_problem(404, None);
    restart(s, &admin, "no-such-meeting")
        .await
        .expect_problem(404, None);

    // The template gone: an ad-hoc meeting in the same room, calling those who were called in
    // by dial-out — nobody here (no call went through), so it ends at once.
    s.delete(&format!("/templates/{template_id}"), &admin)
        .await
        .expect(204);
    let ad_hoc = restart(s, &admin, &meeting_id).await;
    ad_hoc.expect(201);
    assert_eq!(ad_hoc.body["room_id"], room_id);
    assert_eq!(ad_hoc.body["members"], json!([]));
    let history = ended_meetings(s, &admin, "8001", 4).await;
    assert!(history[0]["template_id"].is_null(), "{}", history[0]);

    // While the room has a live meeting: 409. A gateway that never answers keeps a call (and
    // so the meeting) going.
    let gateway = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = gateway.local_addr().expect("addr").port();
    s.trunk_to(&admin, "Silent", port).await;
    let live = s
        .post(
            "/conferences",
            &admin,
            json!({ "room_id": room_id, "members": [{ "kind": "number", "number": "5550102", "role": "member" }] }),
        )
        .await;
    live.expect(201);
    assert_eq!(
        live.body["members"][0]["status"], "calling",
        "{}",
        live.body
    );
    restart(s, &admin, &meeting_id)
        .await
        .expect_problem(409, None);
    s.post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await
        .expect(200);
    ended_meetings(s, &admin, "8001", 5).await;

    // The room gone: nowhere to meet (422).
    s.delete(&format!("/rooms/{room_id}"), &admin)
        .await
        .expect(204);
    restart(s, &admin, &meeting_id)
        .await
        .expect_problem(422, Some("room_id"));
}

/// A desk phone: registers its extension and answers the server's calls.
struct Phone {
    sip: UdpSocket,
    rtp: UdpSocket,
    extension: String,
}

impl Phone {
    async fn recv(&self, what: &str) -> Message {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sip.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("phone {} gets {what} within 5 s", self.extension))
                .expect("recv");
            if let Ok(message) = parse_datagram(&buf[..n], &Limits::default()) {
                return message;
            }
        }
    }

    async fn final_response(&self) -> conclave_sip::Response {
        loop {
            if let Message::Response(r) = self.recv("a response").await
                && r.status >= 200
            {
                return r;
            }
        }
    }

    async fn register(server: SocketAddr, extension: &str, password: &str) -> Phone {
        let phone = Phone {
            sip: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            rtp: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            extension: extension.into(),
        };
        let local = phone.sip.local_addr().expect("addr");
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKreg{cseq};rport\r\nMax-Forwards: 70\r\n\
                 From: <sip:{extension}@127.0.0.1>;tag=r\r\nTo: <sip:{extension}@127.0.0.1>\r\nCall-ID: reg-{extension}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{extension}@{local}>\r\nExpires: 300\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        phone
            .sip
            .send_to(register(1, "").as_bytes(), server)
            .await
            .expect("send");
        let challenge = phone.final_response().await;
        assert_eq!(challenge.status, 401);
        let params = conclave_sip::headers::AuthParams::parse(
            challenge
                .headers
                .get(&conclave_sip::HeaderName::WwwAuthenticate)
                .expect("challenge"),
        )
        .expect("challenge");
        let auth = conclave_sip::auth::client_authorization(
            &params,
            "REGISTER",
            "sip:127.0.0.1",
            extension,
            password,
            "cn",
            1,
        )
        .expect("answerable");
        phone
            .sip
            .send_to(
                register(2, &format!("Authorization: {auth}\r\n")).as_bytes(),
                server,
            )
            .await
            .expect("send");
        assert_eq!(phone.final_response().await.status, 200);
        phone
    }

    async fn expect_request(&self, method: &str) -> (conclave_sip::Request, SocketAddr) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(5), self.sip.recv_from(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("phone gets a {method} within 5 s"))
                    .expect("recv");
            if let Ok(Message::Request(r)) = parse_datagram(&buf[..n], &Limits::default())
                && r.method.as_str() == method
            {
                return (r, from);
            }
        }
    }

    /// Waits for an INVITE, answers it, and waits for the ACK.
    async fn answer(&self) {
        let (request, from) = self.expect_request("INVITE").await;
        let rtp = self.rtp.local_addr().expect("addr").port();
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp} RTP/AVP 0\r\n\
             a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        );
        let local = self.sip.local_addr().expect("addr");
        let mut ok = request.response(200, "OK", Some("phone"));
        ok.headers.push(
            conclave_sip::HeaderName::Contact,
            format!("<sip:{}@{local}>", self.extension),
        );
        ok.headers
            .push(conclave_sip::HeaderName::ContentType, "application/sdp");
        ok.body = sdp.into_bytes();
        self.sip
            .send_to(&ok.to_bytes(), from)
            .await
            .expect("send 200");
        self.expect_request("ACK").await;
    }
}

async fn an_ad_hoc_meeting_calls_back_who_was_called(s: &TestServer) {
    let admin = s.admin().await;
    let room_id = s
        .post("/rooms", &admin, json!({ "number": "8002", "name": "Ops" }))
        .await
        .id();
    let desk = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "desk", "display_name": "Desk phone", "password": "desk-password",
                "extension": "1002", "sip_password": "sip-secret-2",
            }),
        )
        .await
        .id();
    // A template of the room makes the desk its chairman (the role a restart gives them); it
    // is not what the meeting starts from.
    s.post(
        "/templates",
        &admin,
        json!({ "name": "Ops roles", "room_id": room_id, "members": [{ "kind": "user", "user_id": desk, "role": "chairman" }] }),
    )
    .await
    .expect(201);
    let sip = s.running.as_ref().expect("running").sip.udp;
    let phone = Phone::register(sip, "1002", "sip-secret-2").await;

    // An ad-hoc meeting: the desk answers, and is in it by dial-out.
    let started = s
        .post(
            "/conferences",
            &admin,
            json!({ "room_id": room_id, "members": [{ "kind": "user", "user_id": desk, "role": "member" }] }),
        )
        .await;
    started.expect(201);
    assert_eq!(started.body["members"][0]["status"], "calling");
    phone.answer().await;
    let mut joined = false;
    for _ in 0..100 {
        let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
        if roster.body["members"][0]["via"] == "dial_out" {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(joined, "the desk joined the meeting");
    s.post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await
        .expect(200);
    phone.expect_request("BYE").await;
    let history = ended_meetings(s, &admin, "8002", 1).await;
    let meeting_id = history[0]["id"].as_str().expect("id").to_owned();
    assert!(history[0]["template_id"].is_null(), "{}", history[0]);
    let record = s
        .get(&format!("/conference-history/{meeting_id}"), &admin)
        .await;
    assert_eq!(
        record.body["attendance"][0]["via"], "dial_out",
        "{}",
        record.body
    );
    assert_eq!(record.body["attendance"][0]["number"], "1002");

    // Started again: the desk's extension is a user's, who is called again, with the role
    // they have in the room.
    let again = restart(s, &admin, &meeting_id).await;
    again.expect(201);
    assert_eq!(again.body["room_id"], room_id);
    assert_eq!(
        calls(&again.body),
        [(
            "Desk phone".to_owned(),
            "chairman".to_owned(),
            "calling".to_owned(),
            String::new()
        )],
        "{}",
        again.body
    );
    phone.answer().await;
    let mut role = Value::Null;
    for _ in 0..100 {
        let roster = s.get(&format!("/conferences/{room_id}"), &admin).await;
        role = roster.body["members"][0]["role"].clone();
        if !role.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(role, "chairman");
    // Once is enough: while it goes on, it cannot start again.
    restart(s, &admin, &meeting_id)
        .await
        .expect_problem(409, None);
    s.post(&format!("/conferences/{room_id}/end"), &admin, json!({}))
        .await
        .expect(200);
    phone.expect_request("BYE").await;
}
