//! Persistence: one portable schema (TEXT ids, BIGINT epoch-ms times) that runs unchanged on
//! SQLite — the embedded default — and PostgreSQL, through sqlx's `Any` driver.
//!
//! Repositories are plain async functions over a connection (`&mut AnyConnection`), so a caller
//! can run several of them — and the audit event that records them — in one transaction.

mod error;
pub mod model;
pub mod repo;
pub mod search;
#[cfg(feature = "testing")]
pub mod testing;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::StoreError;
pub use sqlx::AnyConnection as Conn;
pub use sqlx::Error as SqlError;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database: cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// When the write probe last ran, and what it found.
    last_probe: Arc<Mutex<Option<ProbeResult>>>,
}

/// When a write probe ran, and what it found.
type ProbeResult = (Instant, Result<(), String>);

/// How long a write probe's answer is reused: /healthz may be polled often, by anyone.
const PROBE_REUSE: Duration = Duration::from_secs(1);
/// How much the write probe writes: a few pages, like a request that creates an object.
const PROBE_BYTES: usize = 32 * 1024;

impl Store {
    /// Connects (creating an SQLite file when needed) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme in {url:?}: expected sqlite:// or postgres://"
            )));
        };
        if backend == Backend::Sqlite {
            private_sqlite_files(url)?;
        }
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time is all SQLite does anyway; a few readers help.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL sync so an answered write survives a crash.
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                             PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            // A transaction whose COMMIT or ROLLBACK failed leaves sqlx's transaction depth
            // above zero: SQLite rolls back by itself on a full disk or an I/O error and then
            // refuses our ROLLBACK ("no transaction is active"). Pooled again, that connection
            // would refuse every later `BEGIN IMMEDIATE` ("begin_with at non-zero transaction
            // depth") for good. Such a connection is closed instead; the pool opens a new one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    // The rollback of a dropped transaction may still be queued: let it run.
                    conn.ping().await?;
                    let clean = !conn.is_in_transaction();
                    if !clean {
                        tracing::warn!(
                            "closing a database connection left inside a failed transaction"
                        );
                    }
                    Ok(clean)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        repo::directory::upgrade(&pool)
            .await
            .map_err(|e| StoreError::Migrate(format!("directory upgrade: {e}")))?;
        Ok(Store {
            pool,
            backend,
            last_probe: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes can deadlock with another
    /// writer and fail with "database is locked" instead of waiting its turn.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Commits a one-row write, to prove the store can still write (a full disk, a read-only
    /// file or a lost primary fail it, where a read would still work). The answer is reused
    /// for a second, so polling this often costs at most one small write a second.
    pub async fn probe_write(&self) -> Result<(), String> {
        if let Ok(last) = self.last_probe.lock()
            && let Some((at, result)) = last.as_ref()
            && at.elapsed() < PROBE_REUSE
        {
            return result.clone();
        }
        let result = self.write_probe_row().await.map_err(|e| e.to_string());
        if let Err(err) = &result {
            tracing::warn!(%err, "the database cannot commit a write");
        }
        if let Ok(mut last) = self.last_probe.lock() {
            *last = Some((Instant::now(), result.clone()));
        }
        result
    }

    async fn write_probe_row(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query("UPDATE health_probe SET checked_at = $1, padding = $2 WHERE id = 1")
            .bind(now)
            // Changes every time, so every page of it is written again.
            .bind(format!("{now:016}").repeat(PROBE_BYTES / 16))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Closed by [`Store::close`]: background work on this store should stop.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// Takes group and other permissions away from an existing file or directory (`mode`: 0o600
/// or 0o700), logging when it had any. A missing path is left alone.
pub fn make_private(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            StoreError::Config(format!("cannot make {} private: {e}", path.display()))
        })?;
        tracing::info!(path = %path.display(), was = format!("{current:o}"), now = format!("{mode:o}"), "made private");
    }
    Ok(())
}

/// The SQLite database and its -wal and -shm files are readable by the server's user only.
/// SQLite gives the -wal and -shm files the database file's permissions, so the database file
/// is created 0600 before SQLite opens it.
fn private_sqlite_files(url: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    if !path.exists() && url.contains("mode=rwc") {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", path.display())))?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        make_private(std::path::Path::new(&file), 0o600)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: the one time format in the schema.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new id: UUID v7, so ids sort by creation time and serve as pagination cursors.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
