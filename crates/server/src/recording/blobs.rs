//! Where a recording's sealed files rest once it has ended: the data directory (default), or
//! an S3-compatible object store (`--recording-store s3://…`). While a recording goes on its
//! files are appended to on local disk (a crash loses at most the last flush); when it ends
//! they are uploaded and the local copies removed. A failed upload leaves them local (they
//! still play) and is tried again at the next start.

use anyhow::{Context, Result, anyhow, bail};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use std::path::Path;
use std::sync::Arc;

pub enum Blobs {
    Local,
    S3 {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blobs::Local => f.write_str("Blobs::Local"),
            Blobs::S3 { prefix, .. } => write!(f, "Blobs::S3({prefix})"),
        }
    }
}

impl Blobs {
    /// `None`: the data directory. `s3://[KEY:SECRET@]BUCKET[/PREFIX][?endpoint=URL&region=R]`:
    /// an S3-compatible store (credentials not in the URL come from the usual `AWS_*`
    /// variables; an `http://` endpoint is allowed, for a store on the same host or network).
    pub fn parse(url: Option<&str>) -> Result<Blobs> {
        let Some(url) = url else {
            return Ok(Blobs::Local);
        };
        let parsed = reqwest::Url::parse(url).context("recording_store is not a URL")?;
        if parsed.scheme() != "s3" {
            bail!("recording_store: only s3:// URLs are known");
        }
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| anyhow!("recording_store: the URL names no bucket"))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if !parsed.username().is_empty() {
            let key = percent_decode(parsed.username());
            let secret = percent_decode(parsed.password().unwrap_or(""));
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        let mut region = None;
        for (name, value) in parsed.query_pairs() {
            match name.as_ref() {
                "endpoint" => {
                    let http = value.starts_with("http://");
                    builder = builder
                        .with_endpoint(value.as_ref())
                        .with_allow_http(http)
                        .with_virtual_hosted_style_request(false);
                }
                "region" => region = Some(value.into_owned()),
                other => bail!("recording_store: unknown parameter {other:?}"),
            }
        }
        builder = builder.with_region(region.unwrap_or_else(|| "us-east-1".into()));
        let store = builder.build().context("recording_store")?;
        Ok(Blobs::S3 {
            store: Arc::new(store),
            prefix: parsed.path().trim_matches('/').to_owned(),
        })
    }

    fn key(prefix: &str, tenant: &str, recording: &str, file: &str) -> StorePath {
        let mut parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
        parts.extend([tenant, recording, file]);
        StorePath::from(parts.join("/"))
    }

    /// Uploads a recording's local files (then removes them); nothing to do for the data
    /// directory.
    pub async fn settle(&self, dir: &Path, tenant: &str, recording: &str) -> Result<()> {
        let Blobs::S3 { store, prefix } = self else {
            return Ok(());
        };
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
        };
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            files.push(entry.path());
        }
        for file in &files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("an odd file name in {}", dir.display()))?;
            let bytes = tokio::fs::read(file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            store
                .put(
                    &Self::key(prefix, tenant, recording, name),
                    PutPayload::from(bytes),
                )
                .await
                .with_context(|| format!("cannot upload {name} of recording {recording}"))?;
        }
        tokio::fs::remove_dir_all(dir)
            .await
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        Ok(())
    }

    /// A file of a recording from the store (`None` when it is not there).
    pub async fn get(&self, tenant: &str, recording: &str, file: &str) -> Result<Option<Vec<u8>>> {
        let Blobs::S3 { store, prefix } = self else {
            return Ok(None);
        };
        match store.get(&Self::key(prefix, tenant, recording, file)).await {
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).context("recording_store"),
        }
    }

    /// Deletes a recording's files from the store.
    pub async fn delete(&self, tenant: &str, recording: &str, files: &[String]) -> Result<()> {
        let Blobs::S3 { store, prefix } = self else {
            return Ok(());
        };
        for file in files {
            match store
                .delete(&Self::key(prefix, tenant, recording, file))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err).context("recording_store"),
            }
        }
        Ok(())
    }
}

/// `%xx` escapes of a URL's user and password (a secret may hold `/` or `@`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_read_or_refused_by_name() {
        assert!(matches!(Blobs::parse(None), Ok(Blobs::Local)));
        let s3 = Blobs::parse(Some(
            "s3://key:se%2Fcret@bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1",
        ))
        .expect("s3");
        assert!(matches!(&s3, Blobs::S3 { prefix, .. } if prefix == "some/prefix"));
        assert_eq!(
            Blobs::key("some/prefix", "t", "r", "0.opus.sealed").as_ref(),
            "some/prefix/t/r/0.opus.sealed"
        );
        assert_eq!(Blobs::key("", "t", "r", "1").as_ref(), "t/r/1");
        assert_eq!(percent_decode("se%2Fcret%4"), "se/cret%4");
        for bad in ["ftp://bucket", "s3://", "s3://b?colour=red", "not a url"] {
            assert!(Blobs::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
