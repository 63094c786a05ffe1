//! SIP over TCP and TLS (with the self-signed certificate made on first start), keep-alives,
//! and bad input: the server answers or drops it and keeps serving.

use crate::common::{Db, TestServer, start};
use conclave_sip::auth::client_authorization;
use conclave_sip::headers::AuthParams;
use conclave_sip::message::HeaderName;
use conclave_sip::{Framed, Limits, Message, Response, StreamFramer};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn register(transport: &str, local: &str, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-{transport}-{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=t1\r\nTo: <sip:1001@127.0.0.1>\r\n\
         Call-ID: reg-{transport}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@{local};transport={transport}>\r\n\
         Expires: 120\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// Reads one SIP response from a stream.
async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    framer: &mut StreamFramer,
) -> Response {
    let mut buf = [0u8; 8192];
    loop {
        while let Some(framed) = framer.next_message() {
            if let Ok(Framed::Message(message)) = framed
                && let Message::Response(r) = *message
            {
                return r;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(n > 0, "the server closed the connection");
        framer.push(&buf[..n]);
    }
}

/// REGISTER, answer the challenge, expect 200 with our binding.
async fn register_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    transport: &str,
    local: &str,
) {
    let mut framer = StreamFramer::new(Limits::default());
    stream
        .write_all(register(transport, local, 1, None).as_bytes())
        .await
        .expect("write");
    let challenge = read_response(&mut stream, &mut framer).await;
    assert_eq!(challenge.status, 401);
    let value = challenge
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .expect("a challenge");
    let params = AuthParams::parse(value).expect("a parsable challenge");
    let auth = client_authorization(
        &params,
        "REGISTER",
        "sip:127.0.0.1",
        "1001",
        "sip-secret-1",
        "c0ffee",
        1,
    )
    .expect("an answerable challenge");
    stream
        .write_all(register(transport, local, 2, Some(&auth)).as_bytes())
        .await
        .expect("write");
    let ok = read_response(&mut stream, &mut framer).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // Every binding of the extension is listed: this one among them.
    assert!(
        ok.headers
            .get_all(&HeaderName::Contact)
            .any(|c| c.contains(local)),
        "{ok:?}"
    );
    // A CRLF CRLF keep-alive is answered with CRLF (RFC 5626).
    stream.write_all(b"\r\n\r\n").await.expect("write");
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut pong))
        .await
        .expect("pong")
        .expect("read");
    assert_eq!(&pong, b"\r\n");
}

async fn with_extension(s: &TestServer) {
    let admin = s.admin().await;
    s.post(
        "/users",
        &admin,
        json!({
            "username": "desk", "display_name": "Desk", "password": "desk-password",
            "extension": "1001", "sip_password": "sip-secret-1",
        }),
    )
    .await
    .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_over_tcp_and_tls() {
    let s = start(Db::Sqlite, "sip_tcp_tls").await.expect("server");
    with_extension(&s).await;
    let sip = &s.running.as_ref().expect("running").sip;

    let tcp = TcpStream::connect(sip.tcp).await.expect("tcp connect");
    let local = tcp.local_addr().expect("addr").to_string();
    register_on(tcp, "TCP", &local).await;

    // TLS, trusting the certificate the server generated in its data directory.
    let cert = s._tmp.path().join("tls").join("sip-selfsigned.crt");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(sip.tls).await.expect("tls connect");
    let local = tcp.local_addr().expect("addr").to_string();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    register_on(tls, "TLS", &local).await;

    // The API shows both registrations of the extension, to administrators only.
    let admin = s.admin().await;
    let list = s.get("/registrations", &admin).await;
    list.expect(200);
    let mut transports: Vec<&str> = list.body[0]["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .filter_map(|b| b["transport"].as_str())
        .collect();
    transports.sort();
    assert_eq!(transports, ["TCP", "TLS"], "{}", list.body);
    assert_eq!(list.body[0]["extension"], "1001");
    let desk = s.token("desk", "desk-password").await;
    s.get("/registrations", &desk)
        .await
        .expect_problem(403, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_or_dropped_and_the_server_keeps_serving() {
    let s = start(Db::Sqlite, "sip_bad_input").await.expect("server");
    let sip = &s.running.as_ref().expect("running").sip;
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = udp.local_addr().expect("addr");
    let options = |branch: &str, extra: &str| {
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
        )
    };
    let mut garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02 not sip at all".to_vec(),
        vec![0xff; 1400],
        b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
        options("big", &format!("Subject: {}\r\n", "x".repeat(70_000))).into_bytes(),
        // Says 500 bytes of body, carries none.
        options("cl", "Content-Length: 500\r\n").into_bytes(),
    ];
    let mut seed = 7u32;
    for _ in 0..200 {
        let len = (seed % 300) as usize + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|i| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8 ^ i as u8
            })
            .collect();
        garbage.push(bytes);
    }
    for g in &garbage {
        let _ = udp.send_to(g, sip.udp).await;
    }
    // The malformed request with a Via gets its 400 (drain whatever came back first).
    let mut buf = vec![0u8; 65_536];
    let mut statuses = Vec::new();
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), udp.recv_from(&mut buf)).await
    {
        statuses.push(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert!(
        statuses.iter().any(|l| l.starts_with("SIP/2.0 400")),
        "{statuses:?}"
    );
    // Still alive: OPTIONS is answered with what we allow.
    udp.send_to(options("alive", "").as_bytes(), sip.udp)
        .await
        .expect("send");
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
        .await
        .expect("answer")
        .expect("recv");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
    assert!(
        text.contains("REGISTER") && text.contains("INVITE"),
        "{text}"
    );

    // A stream that sends garbage is closed; new connections are still served.
    let mut tcp = TcpStream::connect(sip.tcp).await.expect("connect");
    tcp.write_all(b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("closed");
    let mut tcp = TcpStream::connect(sip.tcp).await.expect("connect again");
    let local = tcp.local_addr().expect("addr");
    let probe = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tcp@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(probe.as_bytes()).await.expect("write");
    let mut framer = StreamFramer::new(Limits::default());
    assert_eq!(read_response(&mut tcp, &mut framer).await.status, 200);
    // The HTTP API is unaffected too.
    s.raw(reqwest::Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    s.stop().await;
}
