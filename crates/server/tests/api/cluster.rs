//! A cluster on loopback (docs/cluster.md): three `conclave` processes sharing one PostgreSQL
//! database, NATS between them, Kamailio in front — all real, started here.
//!
//! Callers dial Kamailio; the room's home takes them; a command through another node's API
//! reaches the meeting; `kill -9` of the home brings the room back on a survivor, which calls
//! its dial-out member again; the killed node restarts and never takes the room back while it
//! lives elsewhere — repeated.

use crate::common::free_udp_port;
use crate::phone::{HEARD, NOT_HEARD, Phone, talk};
use crate::restart::{Process, spawn_with};
use conclave_store::testing::postgres_url;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "cluster-admin-pw";
const ROOM: &str = "8601";
const TONE: f64 = 700.0;
/// Kill and restart the home this many times.
const ROUNDS: usize = 3;

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child process killed when the test ends, however it ends; its log shown when the test
/// fails.
struct Daemon(Child, Option<std::path::PathBuf>);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking()
            && let Some(log) = &self.1
        {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- {} (last lines) ---", log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_tcp_port() -> u16 {
    crate::common::free_port()
}

/// A database of its own (Kamailio's PostgreSQL driver knows no search_path): dropped when
/// the test ends well, kept for inspection when it fails.
struct Scratch {
    base: String,
    name: String,
}

impl Scratch {
    fn new(base: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("cluster_{}_{nanos}", std::process::id());
        let made = Command::new("psql")
            .arg(base)
            .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
            .status()
            .expect("psql");
        assert!(made.success(), "CREATE DATABASE {name}");
        Scratch {
            base: base.to_owned(),
            name,
        }
    }

    fn url(&self) -> String {
        let (server, _) = self.base.rsplit_once('/').expect("a database URL");
        format!("{server}/{}", self.name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("leaving database {} for inspection", self.name);
            return;
        }
        let _ = Command::new("psql")
            .arg(&self.base)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn psql(pg: &Scratch, query: &str) -> String {
    let out = Command::new("psql")
        .arg(pg.url())
        .args(["-tAq", "-c", query])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The node holding the room now (a lease that runs), if any.
fn home(pg: &Scratch) -> Option<String> {
    let node = psql(
        pg,
        &format!(
            "SELECT node_id FROM room_homes WHERE room_number = '{ROOM}' \
             AND lease_until > (extract(epoch from now()) * 1000)::bigint"
        ),
    );
    (!node.is_empty()).then_some(node)
}

struct Node {
    id: &'static str,
    dir: tempfile::TempDir,
    sip_port: u16,
    process: Option<Process>,
}

impl Node {
    fn sip(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    fn start(&mut self, database_url: &str, nats: &str) {
        let uri = format!("sip:127.0.0.1:{}", self.sip_port);
        let web = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../web/dist")
            .display()
            .to_string();
        let flags = [
            "--cluster-nats",
            nats,
            "--node-id",
            self.id,
            "--node-sip-uri",
            &uri,
            "--access-number",
            "",
            "--node-room-members",
            "3",
            "--web-dir",
            &web,
        ];
        self.process = Some(spawn_with(
            self.dir.path(),
            Some(database_url),
            Some(PASSWORD),
            self.sip_port,
            &flags,
        ));
    }

    fn api(&self) -> &Process {
        self.process.as_ref().expect("the node runs")
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.child.kill().expect("kill -9");
            let _ = p.child.wait();
            for line in p.printed() {
                eprintln!("[{} before kill -9] {line}", self.id);
            }
        }
    }
}

/// What the nodes logged, for a failure.
fn dump(nodes: &[Node]) {
    for node in nodes {
        if let Some(p) = &node.process {
            eprintln!("--- node {} ---", node.id);
            for line in p.printed() {
                eprintln!("{line}");
            }
        }
    }
}

/// Sends one INVITE (with `extra` headers) and returns the final status.
async fn raw_invite(to: SocketAddr, room: &str, extra: &str) -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let me = socket.local_addr().expect("addr");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        me.port()
    );
    let invite = format!(
        "INVITE sip:{room}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKforged;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Cascade from x\" <sip:cascade@127.0.0.1>;tag=forged\r\n\
         To: <sip:{room}@{to}>\r\nCall-ID: forged@test\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:cascade@{me}>\r\n{extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    socket.send_to(invite.as_bytes(), to).await.expect("send");
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await
        else {
            continue;
        };
        if let Ok(conclave_sip::Message::Response(r)) =
            conclave_sip::parse_datagram(&buf[..n], &conclave_sip::Limits::default())
            && r.status >= 200
        {
            return r.status;
        }
    }
    0
}

/// Meetings live on a node, from its own metrics.
async fn meetings_live(node: &Node) -> f64 {
    let text = reqwest::get(format!("{}/metrics", node.api().base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("conclave_meetings_live "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

async fn get(node: &Node, token: &str, path: &str) -> (u16, Value) {
    node.api()
        .send(reqwest::Method::GET, path, Some(token), None)
        .await
}

/// The room's meeting as its home shows it, waiting up to `within` for `done` to hold.
async fn until(
    node: &Node,
    token: &str,
    room_id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let (status, live) = get(node, token, &format!("/conferences/{room_id}")).await;
        if status == 200 && done(&live) {
            return Some(live);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn members(live: &Value) -> Vec<String> {
    live["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["number"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn dialled_out_joined(live: &Value) -> bool {
    live["invitations"]
        .as_array()
        .is_some_and(|i| i.iter().any(|i| i["state"] == "joined"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_its_meetings_through_kill_9() {
    for program in ["kamailio", "nats-server", "sipp", "psql"] {
        if !installed(program) {
            eprintln!("\n*** SKIPPED the cluster test: {program} is not installed ***\n");
            return;
        }
    }
    let Some(base) = postgres_url("a_cluster_keeps_its_meetings_through_kill_9") else {
        return;
    };
    let pg = Scratch::new(&base);
    let database_url = pg.url();
    let work = tempfile::tempdir().expect("tmp");

    // NATS
    let nats_port = free_tcp_port();
    let _nats = Daemon(
        Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &nats_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts"),
        None,
    );
    let nats = format!("nats://127.0.0.1:{nats_port}");

    // three nodes; the first creates the administrator, the others share its keys
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .into_iter()
        .map(|id| Node {
            id,
            dir: tempfile::tempdir().expect("tmp"),
            sip_port: free_udp_port(),
            process: None,
        })
        .collect();
    nodes[0].start(&database_url, &nats);
    nodes[0].process.as_mut().expect("a").ready().await;
    for key in ["secret.key", "recordings.key"] {
        let from = nodes[0].dir.path().join(key);
        if from.exists() {
            for node in &nodes[1..] {
                std::fs::copy(&from, node.dir.path().join(key)).expect("share a key");
            }
        }
    }
    for node in &mut nodes[1..] {
        node.start(&database_url, &nats);
    }
    for node in &mut nodes {
        node.process.as_mut().expect("node").ready().await;
    }
    let admin = nodes[0].api().login("admin", PASSWORD).await;

    // Kamailio in front: the shipped configuration, with this test's addresses
    let kamailio_port = free_udp_port();
    let list = work.path().join("nodes.list");
    std::fs::write(
        &list,
        nodes
            .iter()
            .map(|n| format!("1 sip:127.0.0.1:{} 0 0\n", n.sip_port))
            .collect::<String>(),
    )
    .expect("write the node list");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kamailio/kamailio.cfg"),
    )
    .expect("the shipped Kamailio configuration");
    let cfg = shipped
        .replace(
            "!CONCLAVE_LISTEN!udp:0.0.0.0:5060!",
            &format!("!CONCLAVE_LISTEN!udp:127.0.0.1:{kamailio_port}!"),
        )
        .replace(
            "!CONCLAVE_DB!postgres://conclave@127.0.0.1/conclave!",
            &format!("!CONCLAVE_DB!{}!", database_url.replace('!', "")),
        )
        .replace(
            "!CONCLAVE_NODES!/etc/kamailio/conclave-nodes.list!",
            &format!("!CONCLAVE_NODES!{}!", list.display()),
        )
        .replace("children=4", "children=2");
    assert_ne!(cfg, shipped, "the test's values went in");
    let cfg_path = work.path().join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).expect("write kamailio.cfg");
    let check = Command::new("kamailio")
        .args(["-c", "-f"])
        .arg(&cfg_path)
        .output()
        .expect("kamailio -c");
    assert!(
        check.status.success(),
        "kamailio -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let kamailio_log_path = work.path().join("kamailio.log");
    let kamailio_log = std::fs::File::create(&kamailio_log_path).expect("log");
    let kamailio = Daemon(
        Command::new("kamailio")
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
            .arg(&cfg_path)
            .args(["-w"])
            .arg(work.path())
            .stdout(Stdio::null())
            .stderr(kamailio_log)
            .spawn()
            .expect("kamailio starts"),
        Some(kamailio_log_path.clone()),
    );
    let mut kamailio = kamailio;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        kamailio.0.try_wait().ok().flatten().is_none(),
        "kamailio runs: {}",
        std::fs::read_to_string(&kamailio_log_path).unwrap_or_default()
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], kamailio_port));

    // the room, a trunk to a gateway (sipp answering), and numbers the tenant may call
    let (status, room) = nodes[0]
        .api()
        .send(
            reqwest::Method::POST,
            "/rooms",
            Some(&admin),
            Some(json!({ "number": ROOM, "name": "Emergency", "alone_music": false, "entry_chime": false })),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().expect("id").to_owned();
    let gateway_port = free_udp_port();
    let gateway_log_path = work.path().join("sipp.log");
    let gateway_log = std::fs::File::create(&gateway_log_path).expect("log");
    let _gateway = Daemon(
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &gateway_port.to_string(),
            ])
            .args(["-nostdin", "-m", "20"])
            .stdout(gateway_log.try_clone().expect("log"))
            .stderr(gateway_log)
            .spawn()
            .expect("sipp starts"),
        Some(gateway_log_path),
    );
    let (status, trunk) = nodes[0]
        .api()
        .send(
            reqwest::Method::POST,
            "/trunks",
            Some(&admin),
            Some(json!({ "name": "Gateway", "host": "127.0.0.1", "port": gateway_port })),
        )
        .await;
    assert_eq!(status, 201, "{trunk}");
    let (_, me) = get(&nodes[0], &admin, "/me").await;
    let tenant = me["tenant_id"].as_str().expect("tenant").to_owned();
    let (status, policy) = nodes[0]
        .api()
        .send(
            reqwest::Method::PUT,
            &format!("/tenants/{tenant}/outbound-policy"),
            Some(&admin),
            Some(
                json!({ "allowed_patterns": ["\\+?[0-9]+"], "granted_users": [],
                         "calls_per_hour": 100, "concurrent_calls": 10 }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{policy}");

    // two callers through Kamailio land on one node
    let mut first = Phone::on(proxy, "127.0.0.1", "first").await;
    let mut second = Phone::on(proxy, "127.0.0.1", "second").await;
    let set_up = Instant::now();
    assert_eq!(first.dial(ROOM, None, "sendrecv").await, 200);
    eprintln!("call set-up through Kamailio: {:?}", set_up.elapsed());
    assert_eq!(second.dial(ROOM, None, "sendrecv").await, 200);
    let home_id = home(&pg).expect("the room has a home");
    let home_at = nodes
        .iter()
        .position(|n| n.id == home_id)
        .expect("a node of ours");
    let other = (home_at + 1) % 3;
    let live = until(
        &nodes[home_at],
        &admin,
        &room_id,
        Duration::from_secs(5),
        |l| members(l).len() == 2,
    )
    .await
    .expect("both callers in the home's meeting");
    assert_eq!(
        psql(&pg, "SELECT count(*) FROM room_homes WHERE lease_until > 0"),
        "1",
        "one home"
    );

    // what Kamailio adds to a call's set-up: calls to the live room, direct and through it
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let (to, times) = if i % 2 == 0 {
            (nodes[home_at].sip(), &mut direct)
        } else {
            (proxy, &mut proxied)
        };
        let mut caller = Phone::on(to, "127.0.0.1", &format!("setup{i}")).await;
        let t = Instant::now();
        assert_eq!(caller.dial(ROOM, None, "sendrecv").await, 200);
        times.push(t.elapsed());
        assert_eq!(caller.hang_up().await, 200);
    }
    eprintln!(
        "call set-up to the live room: direct p50 {:?}, through Kamailio p50 {:?}",
        percentile(&mut direct, 0.5),
        percentile(&mut proxied, 0.5)
    );

    // a phone that calls another node directly is sent to the home (302, Contact)
    let mut astray = Phone::on(nodes[other].sip(), "127.0.0.1", "astray").await;
    assert_eq!(
        astray.dial(ROOM, None, "sendrecv").await,
        302,
        "a node that is not the home redirects"
    );

    // the others hear the first caller…
    talk(&mut [&mut first, &mut second], &[Some(TONE), Some(0.0)], 50).await;
    second.clear();
    talk(&mut [&mut first, &mut second], &[Some(TONE), Some(0.0)], 50).await;
    assert!(
        second.power(TONE) > HEARD,
        "the second caller hears the first"
    );
    // …until a mute through another node's API: it goes to the home
    let first_id = live["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["number"] == "first"))
        .map(|m| m["id"].to_string())
        .expect("the first caller's id");
    // a console connected to yet another node hears of it
    let third = (home_at + 2) % 3;
    let third_token = nodes[third].api().login("admin", PASSWORD).await;
    let (mut events, _) = tokio_tungstenite::connect_async(format!(
        "{}/api/v1/events?access_token={third_token}",
        nodes[third].api().base.replace("http://", "ws://")
    ))
    .await
    .expect("the events WebSocket");
    let started = Instant::now();
    let (status, muted) = nodes[other]
        .api()
        .send(
            reqwest::Method::POST,
            &format!("/conferences/{room_id}/members/{first_id}/mute"),
            Some(&admin),
            None,
        )
        .await;
    eprintln!(
        "a mute through node {}: {:?}",
        nodes[other].id,
        started.elapsed()
    );
    assert_eq!(status, 200, "{muted}");
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        while let Some(Ok(message)) = events.next().await {
            if let Ok(text) = message.into_text()
                && let Ok(event) = serde_json::from_str::<Value>(&text)
                && event["event"]["type"] == "muted"
                && event["room_id"] == room_id.as_str()
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        heard.ok(),
        Some(true),
        "node {}'s WebSocket tells of the mute",
        nodes[third].id
    );
    // a browser opens another node's join page: it joins the meeting on its home, and its
    // page's requests (the roster, leaving) reach the home through that node; it stays for
    // the first kill -9 (it must join the meeting again by itself)
    let is_visitor = |l: &Value| {
        l["members"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "Visitor"))
    };
    let mut browser = None;
    if crate::browser::browser_ready() {
        let wav = work.path().join("browser.wav");
        crate::baresip::write_tone(&wav, 900.0, 48_000, 1, 90);
        let mut member = crate::browser::BrowserMember::start(&nodes[third].api().base, &wav);
        member
            .join(ROOM, "Visitor", None)
            .await
            .unwrap_or_else(|why| {
                panic!("a browser joins through node {}: {why}", nodes[third].id)
            });
        until(
            &nodes[home_at],
            &admin,
            &room_id,
            Duration::from_secs(5),
            is_visitor,
        )
        .await
        .expect("the browser is a member at the home");
        browser = Some(member);
    }
    // every node lists the meeting, whichever holds it
    for node in &nodes {
        let (_, list) = get(node, &admin, "/conferences").await;
        assert!(
            list.as_array()
                .is_some_and(|l| l.iter().any(|c| c["room_id"] == room_id.as_str())),
            "node {} lists the meeting: {list}",
            node.id
        );
    }
    // what a command costs through another node, against the home itself
    let mut direct = Vec::new();
    let mut through = Vec::new();
    for i in 0..40 {
        let (node, times) = if i % 2 == 0 {
            (&nodes[home_at], &mut direct)
        } else {
            (&nodes[other], &mut through)
        };
        let action = if i % 4 < 2 { "unmute" } else { "mute" };
        let t = Instant::now();
        let (status, body) = node
            .api()
            .send(
                reqwest::Method::POST,
                &format!("/conferences/{room_id}/members/{first_id}/{action}"),
                Some(&admin),
                None,
            )
            .await;
        times.push(t.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    eprintln!(
        "a command at the home: p50 {:?} p99 {:?}; through another node: p50 {:?} p99 {:?}",
        percentile(&mut direct, 0.5),
        percentile(&mut direct, 0.99),
        percentile(&mut through, 0.5),
        percentile(&mut through, 0.99)
    );
    let (status, body) = nodes[other]
        .api()
        .send(
            reqwest::Method::POST,
            &format!("/conferences/{room_id}/members/{first_id}/mute"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    talk(&mut [&mut first, &mut second], &[Some(TONE), Some(0.0)], 15).await;
    second.clear();
    talk(&mut [&mut first, &mut second], &[Some(TONE), Some(0.0)], 50).await;
    assert!(
        second.power(TONE) < NOT_HEARD,
        "muted through node {}: {}",
        nodes[other].id,
        second.power(TONE)
    );
    // a member called out through yet another node
    let (status, invited) = nodes[third]
        .api()
        .send(
            reqwest::Method::POST,
            &format!("/conferences/{room_id}/invite"),
            Some(&admin),
            Some(json!({ "number": "+8613900000001", "display_name": "Field team" })),
        )
        .await;
    assert_eq!(status, 202, "{invited}");
    until(
        &nodes[home_at],
        &admin,
        &room_id,
        Duration::from_secs(10),
        dialled_out_joined,
    )
    .await
    .expect("the gateway answers the home's call");

    // kill -9 of the home, again and again
    let mut home_at = home_at;
    for round in 0..ROUNDS {
        let killed_id = nodes[home_at].id;
        nodes[home_at].kill();
        let killed = Instant::now();
        let back = loop {
            if let Some(node) = home(&pg)
                && node != killed_id
            {
                break node;
            }
            if killed.elapsed() > Duration::from_secs(5) {
                dump(&nodes);
                panic!("round {round}: the room was not back within 5 s of kill -9 of {killed_id}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let back_in = killed.elapsed();
        let new_at = nodes
            .iter()
            .position(|n| n.id == back)
            .expect("a node of ours");
        until(
            &nodes[new_at],
            &admin,
            &room_id,
            Duration::from_secs(10) - killed.elapsed(),
            dialled_out_joined,
        )
        .await
        .unwrap_or_else(|| {
            panic!("round {round}: the dial-out member was not called again within 10 s")
        });
        eprintln!(
            "round {round}: {killed_id} killed; room back on {back} in {back_in:?}, \
             its dial-out member in again after {:?}",
            killed.elapsed()
        );
        // the browser's page finds the meeting gone, joins again, and lands on the new home;
        // then it leaves with its button, through the node it talks to
        if let Some(mut member) = browser.take() {
            let rejoined = until(
                &nodes[new_at],
                &admin,
                &room_id,
                Duration::from_secs(20),
                is_visitor,
            )
            .await;
            eprintln!(
                "round {round}: the browser in again after {:?}",
                killed.elapsed()
            );
            rejoined.expect("the browser joined the carried-on meeting by itself");
            member.ask("click join-leave").await;
            member.quit().await;
            until(
                &nodes[new_at],
                &admin,
                &room_id,
                Duration::from_secs(10),
                |l| !is_visitor(l),
            )
            .await
            .expect("the browser left through the node it joined by");
        }
        // a caller who dialled in calls again, through Kamailio, and lands on the new home
        let mut again = Phone::on(proxy, "127.0.0.1", &format!("again{round}")).await;
        assert_eq!(
            again.dial(ROOM, None, "sendrecv").await,
            200,
            "round {round}"
        );
        until(
            &nodes[new_at],
            &admin,
            &room_id,
            Duration::from_secs(5),
            |l| members(l).contains(&format!("again{round}")),
        )
        .await
        .unwrap_or_else(|| panic!("round {round}: the caller is not on the new home"));
        // the killed node comes back: the room stays where it is, with one home
        nodes[home_at].start(&database_url, &nats);
        nodes[home_at]
            .process
            .as_mut()
            .expect("restarted")
            .ready()
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            home(&pg).as_deref(),
            Some(back.as_str()),
            "round {round}: the room stayed"
        );
        let mut live_on = Vec::new();
        for node in &nodes {
            if meetings_live(node).await > 0.0 {
                live_on.push(node.id);
            }
        }
        assert_eq!(
            live_on,
            vec![back.as_str()],
            "round {round}: one live meeting, on the home"
        );
        let _ = again.hang_up().await;
        home_at = new_at;
    }

    // maintenance: the home is drained and its meetings moved, through another node's API
    let drained = nodes[home_at].id;
    let asker = (home_at + 1) % 3;
    let moved = Instant::now();
    let (status, view) = nodes[asker]
        .api()
        .send(
            reqwest::Method::POST,
            &format!("/cluster/nodes/{drained}/drain"),
            Some(&admin),
            Some(json!({ "draining": true, "move_meetings": true })),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let back = loop {
        if let Some(node) = home(&pg)
            && node != drained
        {
            break node;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(5),
            "the drained node's room moved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_at = nodes.iter().position(|n| n.id == back).expect("ours");
    until(
        &nodes[new_at],
        &admin,
        &room_id,
        Duration::from_secs(10),
        dialled_out_joined,
    )
    .await
    .expect("the moved meeting calls its dial-out member again");
    eprintln!(
        "drained {drained}: its room moved to {back} in {:?}",
        moved.elapsed()
    );
    let (_, view) = get(&nodes[asker], &admin, "/cluster").await;
    let drained_view = view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == drained))
        .cloned()
        .expect("the drained node in the view");
    assert_eq!(drained_view["draining"], true, "{view}");
    assert_eq!(drained_view["rooms"], 0, "{view}");
    // a new room's meeting does not start on the drained node (Kamailio's probes get 503)
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, other_room) = nodes[asker]
        .api()
        .send(
            reqwest::Method::POST,
            "/rooms",
            Some(&admin),
            Some(json!({ "number": "8602", "name": "Second", "alone_music": false, "entry_chime": false })),
        )
        .await;
    assert_eq!(status, 201, "{other_room}");
    for i in 0..3 {
        let mut caller = Phone::on(proxy, "127.0.0.1", &format!("newroom{i}")).await;
        assert_eq!(caller.dial("8602", None, "sendrecv").await, 200);
        let node = psql(
            &pg,
            "SELECT node_id FROM room_homes WHERE room_number = '8602'",
        );
        assert_ne!(node, drained, "a new room on the drained node");
        let _ = caller.hang_up().await;
    }
    let _ = first.hang_up().await;
    let _ = second.hang_up().await;

    // a room larger than a node (3 members here): the fourth caller joins through a cascade
    // on another node, and everyone hears everyone
    let second_room = other_room["id"].as_str().expect("id").to_owned();
    let mut callers = Vec::new();
    for i in 0..3 {
        let mut caller = Phone::on(proxy, "127.0.0.1", &format!("big{i}")).await;
        assert_eq!(caller.dial("8602", None, "sendrecv").await, 200);
        callers.push(caller);
    }
    let big_home = psql(
        &pg,
        "SELECT node_id FROM room_homes WHERE room_number = '8602'",
    );
    let big_home_at = nodes.iter().position(|n| n.id == big_home).expect("ours");
    let mut beyond = Phone::on(proxy, "127.0.0.1", "beyond").await;
    assert_eq!(
        beyond.dial("8602", None, "sendrecv").await,
        200,
        "the fourth caller is taken"
    );
    let live = until(
        &nodes[big_home_at],
        &admin,
        &second_room,
        Duration::from_secs(5),
        |l| members(l).len() == 4,
    )
    .await
    .expect("the home's meeting has its three callers and the cascade's link");
    let link = live["members"]
        .as_array()
        .and_then(|m| {
            m.iter().find(|m| {
                m["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("Cascade from "))
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("a cascade link in the home's roster: {live}"));
    // a forged link (the room's id without the cluster's seal, or a stale seal) is refused
    let forged = raw_invite(
        nodes[big_home_at].sip(),
        "8602",
        &format!("X-Conclave-Cascade: {second_room} 99999999999999\r\n"),
    )
    .await;
    assert_eq!(forged, 403, "a forged cascade link");
    eprintln!("cascade: home {big_home}, link {}", link["name"]);
    let [a, b, c] = &mut callers[..] else {
        panic!("three callers");
    };
    // the cascade's caller is heard at the home…
    talk(
        &mut [&mut beyond, a, b, c],
        &[Some(TONE), Some(0.0), Some(0.0), Some(0.0)],
        50,
    )
    .await;
    a.clear();
    talk(
        &mut [&mut beyond, a, b, c],
        &[Some(TONE), Some(0.0), Some(0.0), Some(0.0)],
        50,
    )
    .await;
    assert!(
        a.power(TONE) > HEARD,
        "a caller at the home hears the cascade's: {}",
        a.power(TONE)
    );
    // …and hears the home's
    talk(
        &mut [&mut beyond, a, b, c],
        &[Some(0.0), Some(TONE), Some(0.0), Some(0.0)],
        50,
    )
    .await;
    beyond.clear();
    talk(
        &mut [&mut beyond, a, b, c],
        &[Some(0.0), Some(TONE), Some(0.0), Some(0.0)],
        50,
    )
    .await;
    assert!(
        beyond.power(TONE) > HEARD,
        "the cascade's caller hears the home's: {}",
        beyond.power(TONE)
    );
    let _ = beyond.hang_up().await;
    for caller in &mut callers {
        let _ = caller.hang_up().await;
    }

    // a phone registered through Kamailio (on the node its extension hashes to) is called by
    // a meeting on another node: the call finds the registration and goes the way it came
    let Some(modules) = crate::baresip::baresip_modules() else {
        eprintln!("\n*** SKIPPED the cluster's registered phone: baresip is not installed ***\n");
        return;
    };
    let (status, user) = nodes[asker]
        .api()
        .send(
            reqwest::Method::POST,
            "/users",
            Some(&admin),
            Some(json!({ "username": "ringer", "display_name": "Ringer",
                         "password": "ringer-password-1", "extension": "2601",
                         "sip_password": "ringer-sip-password" })),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().expect("id").to_owned();
    let tone = work.path().join("ringer.wav");
    crate::baresip::write_tone(&tone, 500.0, 8000, 1, 90);
    let ringer = crate::baresip::Baresip::start(
        &modules,
        "ringer",
        &format!(
            "<sip:2601@127.0.0.1:{kamailio_port}>;auth_pass=ringer-sip-password;regint=60;\
             answermode=auto;audio_codecs=PCMU"
        ),
        Some(&tone),
        60,
        &[],
    );
    let registered = Instant::now();
    let registrar = 'found: loop {
        for (i, node) in nodes.iter().enumerate() {
            let (_, list) = get(node, &admin, "/registrations").await;
            let bound = list.as_array().is_some_and(|l| {
                l.iter()
                    .any(|r| r["bindings"].as_array().is_some_and(|b| !b.is_empty()))
            });
            if bound {
                break 'found i;
            }
        }
        assert!(
            registered.elapsed() < Duration::from_secs(10),
            "the phone registers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let caller_at = (0..3)
        .find(|&i| i != registrar && nodes[i].id != drained)
        .expect("a node that is neither the registrar nor drained");
    let (status, room) = nodes[caller_at]
        .api()
        .send(
            reqwest::Method::POST,
            "/rooms",
            Some(&admin),
            Some(json!({ "number": "8603", "name": "Third", "alone_music": false, "entry_chime": false })),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let third_room = room["id"].as_str().expect("id").to_owned();
    let (status, started) = nodes[caller_at]
        .api()
        .send(
            reqwest::Method::POST,
            "/conferences",
            Some(&admin),
            Some(json!({ "room_id": third_room,
                         "members": [{ "kind": "user", "user_id": user_id, "role": "member" }] })),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let joined = until(
        &nodes[caller_at],
        &admin,
        &third_room,
        Duration::from_secs(10),
        dialled_out_joined,
    )
    .await;
    if joined.is_none() {
        eprintln!("--- the phone's log ---\n{}", ringer.log());
    }
    joined.unwrap_or_else(|| {
        panic!(
            "node {} called the phone registered on node {}",
            nodes[caller_at].id, nodes[registrar].id
        )
    });
    eprintln!(
        "a phone registered on node {} was called by a meeting on node {}",
        nodes[registrar].id, nodes[caller_at].id
    );
}
