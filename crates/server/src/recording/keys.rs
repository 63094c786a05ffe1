//! Recording keys: one master key (a file), a key per tenant derived from it, and a random
//! key per recording kept in the database wrapped (AES-256-GCM) by its tenant's key, bound
//! to the recording's id. A copy of the database and the files without the master key
//! gives nothing away; one tenant's key opens no other tenant's recordings.

use anyhow::{Context, Result, bail};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use std::path::Path;

const PREFIX: &str = "v1:";

pub struct MasterKey(hmac::Key);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey")
    }
}

impl MasterKey {
    /// The key in `file`, made (readable by the server's user only) when it does not exist.
    pub fn load_or_create(file: &Path) -> Result<MasterKey> {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let key: [u8; 32] = rand::random();
                crate::secrets::write_private(file, &key)?;
                key.to_vec()
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", file.display()));
            }
        };
        if bytes.len() != 32 {
            bail!("{} is not a 32-byte key", file.display());
        }
        Ok(MasterKey::from_bytes(&bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> MasterKey {
        MasterKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn tenant_key(&self, tenant_id: &str) -> LessSafeKey {
        let mut info = b"conclave recordings v1\0".to_vec();
        info.extend_from_slice(tenant_id.as_bytes());
        let derived = hmac::sign(&self.0, &info);
        // a 32-byte HMAC-SHA256 output is always a valid AES-256 key
        let key = UnboundKey::new(&AES_256_GCM, derived.as_ref())
            .unwrap_or_else(|_| unreachable!("32 bytes"));
        LessSafeKey::new(key)
    }

    /// A new recording's key: its bytes, and the form kept in the database.
    pub fn new_recording_key(&self, tenant_id: &str, recording_id: &str) -> ([u8; 32], String) {
        let key: [u8; 32] = rand::random();
        let wrapped = self.wrap(tenant_id, recording_id, &key);
        (key, wrapped)
    }

    /// A recording's key (`key`) wrapped anew (rotating the master key).
    pub fn wrap(&self, tenant_id: &str, recording_id: &str, key: &[u8; 32]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut data = key.to_vec();
        match self.tenant_key(tenant_id).seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(recording_id.as_bytes()),
            &mut data,
        ) {
            Ok(()) => format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(data)),
            Err(_) => String::new(),
        }
    }

    /// A recording's key from its wrapped form; `None` when another master key, tenant or
    /// recording sealed it, or it was altered.
    pub fn unwrap_key(
        &self,
        tenant_id: &str,
        recording_id: &str,
        wrapped: &str,
    ) -> Option<[u8; 32]> {
        let bytes = hex::decode(wrapped.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() != NONCE_LEN + 32 + 16 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .tenant_key(tenant_id)
            .open_in_place(nonce, Aad::from(recording_id.as_bytes()), &mut sealed)
            .ok()?;
        plain.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_for_its_tenant_and_recording_only() {
        let master = MasterKey::from_bytes(&[3; 32]);
        let (key, wrapped) = master.new_recording_key("t1", "r1");
        assert!(!wrapped.contains(&hex::encode(key)));
        assert_eq!(master.unwrap_key("t1", "r1", &wrapped), Some(key));
        assert_eq!(master.unwrap_key("t2", "r1", &wrapped), None);
        assert_eq!(master.unwrap_key("t1", "r2", &wrapped), None);
        assert_eq!(
            MasterKey::from_bytes(&[4; 32]).unwrap_key("t1", "r1", &wrapped),
            None
        );
        assert_eq!(master.unwrap_key("t1", "r1", "v1:zz"), None);
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("k");
        let a = MasterKey::load_or_create(&file).expect("made");
        let (key, wrapped) = a.new_recording_key("t", "r");
        let b = MasterKey::load_or_create(&file).expect("read");
        assert_eq!(b.unwrap_key("t", "r", &wrapped), Some(key));
    }
}
