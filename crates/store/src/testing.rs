//! Helpers for tests that run on both backends: a scratch PostgreSQL schema per test.

use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL URL under test (`CONCLAVE_TEST_POSTGRES_URL`), or a loud skip.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("CONCLAVE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "\n*** SKIPPED {test} on PostgreSQL: CONCLAVE_TEST_POSTGRES_URL is not set ***\n"
            );
            None
        }
    }
}

/// A schema of its own for one test, dropped when the test ends well (kept for inspection
/// when it panics).
pub struct PgScratch {
    pub base_url: String,
    pub schema: String,
}

impl PgScratch {
    /// A URL whose connections use the scratch schema.
    pub fn url(&self) -> String {
        let sep = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.base_url, self.schema
        )
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("leaving PostgreSQL schema {} for inspection", self.schema);
            return;
        }
        let _ = std::process::Command::new("psql")
            .arg(&self.base_url)
            .args([
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .output();
    }
}

/// Creates a fresh schema on the server at `base_url`.
pub async fn pg_scratch(base_url: String) -> PgScratch {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "t_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let out = tokio::process::Command::new("psql")
        .arg(&base_url)
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE SCHEMA {schema}"),
        ])
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => PgScratch { base_url, schema },
        Ok(out) => panic!(
            "cannot create schema: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => panic!("cannot run psql (package postgresql-client): {err}"),
    }
}
