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

/// Too many passwords are being hashed: the caller should answer 503 with Retry-After.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many password checks in progress; try again shortly")]
pub struct HashingBusy;

/// How long a request may wait for a hashing thread before it is turned away.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

type HashJob = Box<dyn FnOnce() + Send>;

/// A few dedicated threads hash and verify passwords. argon2 takes about 19 MiB per hash, so
/// how many run at once bounds the memory a burst of logins can take: a fixed set of threads
/// (rather than tokio's blocking pool of up to 512) also keeps the allocator from spreading
/// those buffers over many arenas that each keep theirs.
struct HashPool {
    slots: tokio::sync::Semaphore,
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<HashJob>>,
}

fn hash_pool() -> &'static HashPool {
    static POOL: std::sync::OnceLock<HashPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
            .clamp(2, 16);
        let (jobs, queue) = std::sync::mpsc::channel::<HashJob>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("conclave-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(%err, "cannot start a password hashing thread");
            }
        }
        metrics::gauge!("conclave_password_hash_threads").set(threads as f64);
        HashPool {
            slots: tokio::sync::Semaphore::new(threads),
            jobs: std::sync::Mutex::new(jobs),
        }
    })
}

/// Runs `work` on a hashing thread, waiting at most [`HASH_WAIT`] for one to be free.
async fn on_hash_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingBusy> {
    let pool = hash_pool();
    let Ok(Ok(slot)) = tokio::time::timeout(HASH_WAIT, pool.slots.acquire()).await else {
        metrics::counter!("conclave_password_hash_busy_total").increment(1);
        return Err(HashingBusy);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = reply.send(work());
    });
    let sent = pool
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .is_ok();
    let result = if sent {
        answer.await.map_err(|_| HashingBusy)
    } else {
        Err(HashingBusy)
    };
    drop(slot);
    result
}

/// Hashing with argon2 takes tens of milliseconds and 19 MiB: done on the hashing threads.
pub async fn hash_password_blocking(password: String) -> anyhow::Result<String> {
    on_hash_thread(move || hash_password(&password)).await?
}

/// Verifies on the hashing threads; `Err` when none was free in time.
pub async fn verify_password_blocking(password: String, hash: String) -> Result<bool, HashingBusy> {
    on_hash_thread(move || verify_password(&password, &hash)).await
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

/// A calendar feed's secret token (the credential in its URL); only its hash is stored.
pub fn new_feed_token() -> String {
    format!("cf_{}", random_hex(32))
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
