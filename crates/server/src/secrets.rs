//! Secrets the server must read back (a trunk's digest password, the SIP digests (HA1) of
//! users' extensions) are sealed at rest with
//! AES-256-GCM under a key kept in the data directory (`secret.key`, readable by the server's
//! user only): a copy of the database alone does not give them away.

use anyhow::{Context, Result};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;

const PREFIX: &str = "sealed:v1:";

pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// The data directory's key, made on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Sealer> {
        let path = data_dir.join("secret.key");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("cannot create {}", data_dir.display()))?;
                let key: [u8; 32] = rand::random();
                write_private(&path, &key)?;
                key.to_vec()
            }
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        Sealer::from_key(&bytes).with_context(|| format!("{} is not a 32-byte key", path.display()))
    }

    /// Whether a stored value is sealed (rather than kept from before sealing existed).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    pub fn from_key(key: &[u8]) -> Result<Sealer> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| anyhow::anyhow!("bad key"))?;
        Ok(Sealer {
            key: LessSafeKey::new(key),
        })
    }

    pub fn seal(&self, plain: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.as_bytes().to_vec();
        // Sealing a byte string in memory cannot fail with a valid key and nonce.
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut data,
        );
        if sealed.is_err() {
            return String::new();
        }
        format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(data))
    }

    /// The secret, or `None` when it was sealed with another key or damaged. Values stored
    /// before sealing existed come back as they are.
    pub fn open(&self, stored: &str) -> Option<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Some(stored.to_owned());
        };
        let bytes = hex::decode(rest).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_their_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::load_or_create(dir.path()).unwrap();
        let sealed = sealer.seal("s3cret");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("s3cret"));
        assert_ne!(sealed, sealer.seal("s3cret"), "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed).as_deref(), Some("s3cret"));
        // The same directory gives the same key back.
        let again = Sealer::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).as_deref(), Some("s3cret"));
        let other = Sealer::from_key(&[7u8; 32]).unwrap();
        assert_eq!(other.open(&sealed), None);
        assert_eq!(sealer.open("sealed:v1:zz"), None);
        assert_eq!(sealer.open("plain").as_deref(), Some("plain"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
