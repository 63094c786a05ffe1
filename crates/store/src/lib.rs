//! Persistence: one portable schema (TEXT ids, BIGINT epoch-ms times) that runs unchanged on
//! SQLite — the embedded default — and PostgreSQL, through sqlx's `Any` driver.
//!
//! Repositories are plain async functions over a connection (`&mut AnyConnection`), so a caller
//! can run several of them — and the audit event that records them — in one transaction.

mod error;
pub mod model;
pub mod repo;
#[cfg(feature = "testing")]
pub mod testing;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

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
}

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
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Store { pool, backend })
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

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Closed by [`Store::close`]: background work on this store should stop.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
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
