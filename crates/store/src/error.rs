use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// A unique constraint refused the write; `field` names the API field it guards.
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// A foreign key refused the write: something referenced does not exist.
    #[error("a referenced object does not exist")]
    Reference,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// Unique indexes and the API field each one guards. PostgreSQL names the index; SQLite names
/// the columns ("UNIQUE constraint failed: users.username").
const UNIQUE_FIELDS: &[(&str, &str, &str)] = &[
    ("users_username", "users.username", "username"),
    ("users_extension", "users.extension", "extension"),
    ("rooms_number", "rooms.number", "number"),
    ("tenants_name", "tenants.name", "name"),
    ("tenants_sip_domain", "tenants.sip_domain", "sip_domain"),
    ("trunks_name", "trunks.name", "name"),
    ("departments_name", "departments_name", "name"),
    ("directory_groups_name", "directory_groups_name", "name"),
];

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(db) = err.as_database_error() {
            if db.is_unique_violation() {
                let constraint = db.constraint().unwrap_or_default();
                let message = db.message();
                for (index, columns, field) in UNIQUE_FIELDS {
                    if constraint == *index || message.contains(columns) {
                        return StoreError::Conflict { field };
                    }
                }
                return StoreError::Conflict { field: "id" };
            }
            if db.is_foreign_key_violation() {
                return StoreError::Reference;
            }
        }
        StoreError::Database(err)
    }
}
