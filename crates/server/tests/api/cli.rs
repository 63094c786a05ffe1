//! `conclave serve` refuses bad settings with their name and the reason.

use std::process::Command;

fn serve(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env_remove("CONCLAVE_ADMIN_PASSWORD")
        .env_remove("CONCLAVE_DATABASE_URL")
        .output()
        .expect("conclave runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_stop_start_up_with_a_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let (code, err) = serve(&["--http-listen", "not-an-address"], dir.path());
    assert_ne!(code, 0);
    assert!(
        err.contains("--http-listen") && err.contains("invalid"),
        "{err}"
    );

    std::fs::write(dir.path().join("conclave.toml"), "sip_udp = \"nowhere\"\n").expect("write");
    let (code, err) = serve(&[], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("sip_udp"), "{err}");

    std::fs::write(
        dir.path().join("conclave.toml"),
        "http_lisen = \"127.0.0.1:1\"\n",
    )
    .expect("write");
    let (code, err) = serve(&[], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("http_lisen"), "{err}");
    std::fs::remove_file(dir.path().join("conclave.toml")).expect("rm");

    let (code, err) = serve(&["--database-url", "mysql://x"], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("database_url"), "{err}");

    let (code, err) = serve(
        &["--database-url", "postgres://nobody@127.0.0.1:1/none"],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(err.contains("database_url"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, err) = serve(&["--http-listen", &addr, "--data-dir", "d"], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("http_listen"), "{err}");

    let (code, err) = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["serve", "--help"])
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )
        })
        .expect("help");
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--data-dir",
        "--database-url",
        "--http-listen",
        "--sip-udp",
        "--sip-tcp",
        "--sip-tls",
        "--sip-nonce-lifetime-seconds",
        "--tls-handshake-timeout-seconds",
        "--header-timeout-seconds",
        "--http-idle-timeout-seconds",
        "--sip-idle-timeout-seconds",
        "--max-connections-per-address",
        "--max-connections",
        "CONCLAVE_DATA_DIR",
    ] {
        assert!(err.contains(flag), "--help does not document {flag}");
    }
}
