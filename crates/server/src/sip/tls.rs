//! The TLS identity of the SIP listener: a configured certificate, or a self-signed one made on
//! first start and kept in the data directory (so phones that pinned it keep working).

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn server_config(
    identity: Option<&(PathBuf, PathBuf)>,
    data_dir: &Path,
) -> Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match identity {
        Some((cert, key)) => (cert.clone(), key.clone()),
        None => self_signed(data_dir)?,
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("sip_tls_cert: cannot read {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("sip_tls_key: cannot read {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("sip_tls_cert/sip_tls_key: the key does not match the certificate")?;
    Ok(Arc::new(config))
}

fn self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let cert = dir.join("sip-selfsigned.crt");
    let key = dir.join("sip-selfsigned.key");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("data_dir: cannot create {}", dir.display()))?;
    let names = vec![
        "localhost".to_owned(),
        "conclave".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    std::fs::write(&cert, generated.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    tracing::warn!(cert = %cert.display(), "SIP TLS uses a self-signed certificate; set sip_tls_cert and sip_tls_key for production");
    Ok((cert, key))
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
