//! Secrets: password hashes (argon2), opaque tokens and API keys (stored as SHA-256), and the
//! HA1 digests SIP authentication needs (RFC 2617 MD5, RFC 8760 SHA-256).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hashing with argon2 takes tens of milliseconds: keep it off the async workers.
pub async fn hash_password_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

pub async fn verify_password_blocking(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A fresh session token; only its hash is stored.
pub fn new_session_token() -> String {
    format!("cs_{}", random_hex(32))
}

/// A fresh API key and its displayable prefix; only its hash is stored.
pub fn new_api_key() -> (String, String) {
    let prefix = random_hex(4);
    (
        format!("ck_{prefix}_{}", random_hex(32)),
        format!("ck_{prefix}"),
    )
}

/// A webhook's signing secret.
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", random_hex(24))
}

/// A random password for the first administrator when none is configured.
pub fn new_password() -> String {
    random_hex(12)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// HA1 = H(username:realm:password), for MD5 and SHA-256 digest authentication.
pub fn sip_ha1(username: &str, realm: &str, password: &str) -> (String, String) {
    let input = format!("{username}:{realm}:{password}");
    (
        hex::encode(md5::Md5::digest(input.as_bytes())),
        hex::encode(Sha256::digest(input.as_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life
        let (md5, _) = sip_ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(md5, "939e7578ed9e3c518a452acee763bce9");
    }

    #[test]
    fn keys_have_their_prefix_and_differ() {
        let (a, prefix) = new_api_key();
        assert!(a.starts_with(&prefix));
        assert_ne!(new_api_key().0, a);
        assert_ne!(token_hash(&a), token_hash(&new_api_key().0));
    }
}
