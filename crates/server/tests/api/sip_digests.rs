//! SIP credentials at rest and SHA-256-only tenants: the HA1 digests (which register as the
//! user if leaked) are sealed in the database, digests stored in clear before are sealed at
//! start, and a tenant can refuse MD5 altogether. Raw UDP REGISTERs against the server.

use crate::both_backends;
use crate::brute_force::{Registrant, answer, challenge_of, sip_udp};
use crate::common::TestServer;
use conclave_server::secrets::Sealer;
use conclave_store::repo;
use serde_json::json;

both_backends!(
    sip_digests_are_sealed_at_rest_and_clear_ones_are_sealed_at_start,
    a_sha256_only_tenant_never_challenges_or_keeps_md5,
);

async fn digests(s: &TestServer, user_id: &str) -> (Option<String>, Option<String>) {
    let store = &s.running.as_ref().expect("running").store;
    let mut conn = store.conn().await.expect("conn");
    repo::users::sip_digests(&mut conn)
        .await
        .expect("digests")
        .into_iter()
        .find(|(id, ..)| id == user_id)
        .map(|(_, md5, sha)| (md5, sha))
        .unwrap_or_default()
}

async fn registers(s: &TestServer, domain: &str, extension: &str, password: &str) -> u16 {
    let mut phone = Registrant::new(sip_udp(s), [127, 0, 0, 1], extension).await;
    phone.domain = domain.into();
    let challenge = phone.challenge(1).await;
    phone
        .request(2, Some(&answer(&challenge, extension, password, 1)))
        .await
        .status
}

async fn sip_digests_are_sealed_at_rest_and_clear_ones_are_sealed_at_start(s: &TestServer) {
    let admin = s.admin().await;
    let user = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "desk", "display_name": "Desk", "password": "desk-password-1",
                "extension": "3001", "sip_password": "sip-secret-3001",
            }),
        )
        .await;
    user.expect(201);
    assert_eq!(user.body["sip_password_set"], true);
    let id = user.id();
    let (clear_md5, clear_sha) =
        conclave_server::credentials::sip_ha1("3001", "conclave", "sip-secret-3001");
    let (md5, sha) = digests(s, &id).await;
    for (stored, clear) in [(&md5, &clear_md5), (&sha, &clear_sha)] {
        let stored = stored.as_deref().expect("a digest is kept");
        assert!(Sealer::is_sealed(stored), "sealed: {stored}");
        assert!(!stored.contains(clear.as_str()));
    }
    assert_eq!(
        registers(s, "127.0.0.1", "3001", "sip-secret-3001").await,
        200
    );

    // Digests kept in clear by an older version are sealed at start, and still register.
    let store = &s.running.as_ref().expect("running").store;
    {
        let mut conn = store.conn().await.expect("conn");
        repo::users::set_sip_digests(&mut conn, &id, Some(&clear_md5), Some(&clear_sha))
            .await
            .expect("store clear digests");
    }
    let sealer = Sealer::load_or_create(s._tmp.path()).expect("the data directory's key");
    conclave_server::app::seal_sip_digests(store, &sealer)
        .await
        .expect("sealing");
    let (md5, sha) = digests(s, &id).await;
    assert!(md5.as_deref().is_some_and(Sealer::is_sealed), "{md5:?}");
    assert!(sha.as_deref().is_some_and(Sealer::is_sealed), "{sha:?}");
    assert_eq!(sealer.open(md5.as_deref().unwrap_or("")), Some(clear_md5));
    let mut phone = Registrant::new(sip_udp(s), [127, 0, 0, 1], "3001").await;
    phone.domain = "127.0.0.1".into();
    let challenge = phone.challenge(10).await;
    let ok = phone
        .request(11, Some(&answer(&challenge, "3001", "sip-secret-3001", 1)))
        .await;
    assert_eq!(ok.status, 200);
}

async fn a_sha256_only_tenant_never_challenges_or_keeps_md5(s: &TestServer) {
    let admin = s.admin().await;
    // It needs a SIP domain: the challenge is chosen by the domain a REGISTER names.
    s.post(
        "/tenants",
        &admin,
        json!({ "name": "No domain", "sip_sha256_only": true }),
    )
    .await
    .expect_problem(422, Some("sip_sha256_only"));
    let tenant = s
        .post(
            "/tenants",
            &admin,
            json!({ "name": "Strict", "sip_domain": "strict.example" }),
        )
        .await;
    tenant.expect(201);
    assert_eq!(tenant.body["sip_sha256_only"], false);
    let tenant_id = tenant.id();
    let user = s
        .post(
            "/users",
            &admin,
            json!({
                "username": "strictdesk", "display_name": "Desk", "password": "desk-password-1",
                "extension": "3002", "sip_password": "sip-secret-3002", "tenant_id": tenant_id,
            }),
        )
        .await;
    user.expect(201);
    let id = user.id();
    assert!(digests(s, &id).await.0.is_some(), "MD5 kept while allowed");

    // Turned on: the MD5 digests go, and the registrar offers SHA-256 alone for the domain.
    let strict = s
        .patch(
            &format!("/tenants/{tenant_id}"),
            &admin,
            json!({ "sip_sha256_only": true }),
        )
        .await;
    strict.expect(200);
    assert_eq!(strict.body["sip_sha256_only"], true);
    assert_eq!(digests(s, &id).await.0, None, "no MD5 digest is kept");
    let mut phone = Registrant::new(sip_udp(s), [127, 0, 0, 1], "3002").await;
    phone.domain = "strict.example".into();
    let first = phone.request(1, None).await;
    let offered: Vec<String> = first
        .headers
        .get_all(&conclave_sip::HeaderName::WwwAuthenticate)
        .map(str::to_owned)
        .collect();
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert!(offered[0].contains("algorithm=SHA-256"), "{offered:?}");
    // An MD5 answer (as a phone that ignores the algorithm would send) does not register.
    let challenge = challenge_of(&first);
    let as_md5 = conclave_sip::headers::AuthParams::parse(
        &offered[0].replace("algorithm=SHA-256", "algorithm=MD5"),
    )
    .expect("params");
    let md5 = phone
        .request(2, Some(&answer(&as_md5, "3002", "sip-secret-3002", 1)))
        .await;
    assert_eq!(md5.status, 401);
    assert!(
        md5.headers
            .get_all(&conclave_sip::HeaderName::WwwAuthenticate)
            .all(|c| c.contains("algorithm=SHA-256")),
        "challenged again with SHA-256 only"
    );
    let sha = phone
        .request(3, Some(&answer(&challenge, "3002", "sip-secret-3002", 1)))
        .await;
    assert_eq!(sha.status, 200);
    // A new SIP password in a strict tenant keeps no MD5 either.
    s.patch(
        &format!("/users/{id}"),
        &admin,
        json!({ "sip_password": "sip-secret-3002b" }),
    )
    .await
    .expect(200);
    let (md5, sha) = digests(s, &id).await;
    assert_eq!(md5, None);
    assert!(sha.as_deref().is_some_and(Sealer::is_sealed));
    // Other domains keep the installation's algorithms.
    assert!(
        Registrant::new(sip_udp(s), [127, 0, 0, 1], "3999")
            .await
            .request(1, None)
            .await
            .headers
            .get(&conclave_sip::HeaderName::WwwAuthenticate)
            .is_some_and(|c| c.contains("algorithm=MD5"))
    );
}
