//! Persistence: the only place with SQL. One set of diesel queries for SQLite (the embedded
//! default) and PostgreSQL (production), through diesel's `MultiConnection`.
//!
//! Ids are TEXT and money is BIGINT whole won on both backends (diesel's MultiConnection cannot
//! carry `Uuid` or `Numeric`); conversion to core types happens in this module's functions.
//! The few places where the dialects differ (`BEGIN IMMEDIATE`, `FOR UPDATE`) match on
//! [`DbConn`] side by side.

// The dialect-bridging macros come first, so that the modules below can use them.
/// Loads rows locked for the rest of the transaction on PostgreSQL (SQLite's `BEGIN IMMEDIATE`
/// already holds the write lock). The query is written once and built in each arm, because
/// diesel fixes its backend type per arm.
macro_rules! load_locked {
    ($connection:expr, $query:expr) => {
        match $connection {
            DbConn::Pg(pg) => $query.for_update().load(pg),
            DbConn::Sqlite(sqlite) => $query.load(sqlite),
        }
    };
}

/// `INSERT … ON CONFLICT … DO UPDATE`: the same SQL on both backends, but diesel's
/// MultiConnection does not offer upserts, so the statement is built in each arm.
macro_rules! upsert {
    ($connection:expr, $statement:expr) => {
        match $connection {
            DbConn::Pg(pg) => $statement.execute(pg),
            DbConn::Sqlite(sqlite) => $statement.execute(sqlite),
        }
    };
}

pub mod auth;
pub mod expiry;
pub mod handover;
pub mod ledger;
pub mod reads;
pub mod schema;
pub mod waiting;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

pub type DbPool = Pool<DbManager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// How long a SQLite connection waits for the write lock before reporting the database busy.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// How long a request waits for a pooled connection before it is answered `overloaded`.
const POOL_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend a database URL names: `postgres://` or `postgresql://` is PostgreSQL, anything
/// else is a SQLite file path (an optional `sqlite://` prefix is removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> DatabaseUrl {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseUrl::Postgres(url.to_owned())
        } else {
            DatabaseUrl::Sqlite(url.strip_prefix("sqlite://").unwrap_or(url).to_owned())
        }
    }
}

/// Opens connections of the backend the URL names, keeping the real error (diesel's derived
/// manager tries each backend in turn and reports only that none fitted).
pub struct DbManager {
    url: DatabaseUrl,
}

impl ManageConnection for DbManager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        let connection = match &self.url {
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url).map(DbConn::Pg),
            DatabaseUrl::Sqlite(path) => diesel::SqliteConnection::establish(path).map(DbConn::Sqlite),
        };
        connection.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, connection: &mut DbConn) -> Result<(), Self::Error> {
        use diesel::r2d2::R2D2Connection;
        connection.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, connection: &mut DbConn) -> bool {
        use diesel::r2d2::R2D2Connection;
        std::thread::panicking() || connection.is_broken()
    }
}

/// Sets SQLite's pragmas on every connection as it is opened: WAL with `synchronous=FULL`, so an
/// acknowledged commit survives a kill -9 and a power loss; a busy timeout; foreign keys on.
#[derive(Debug)]
struct ConnectionSetup;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, connection: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        match connection {
            DbConn::Sqlite(sqlite) => sqlite
                .batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                ))
                .map_err(diesel::r2d2::Error::QueryError),
            DbConn::Pg(_) => Ok(()),
        }
    }
}

/// A pool of `size` connections to `url`.
pub fn open_pool(url: &DatabaseUrl, size: u32) -> StoreResult<DbPool> {
    Ok(Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(POOL_CONNECTION_TIMEOUT)
        .connection_customizer(Box::new(ConnectionSetup))
        .build(DbManager { url: url.clone() })?)
}

/// Applies the backend's pending migrations; returns how many ran.
pub fn migrate(connection: &mut DbConn) -> StoreResult<usize> {
    let applied = match connection {
        DbConn::Sqlite(sqlite) => sqlite.run_pending_migrations(SQLITE_MIGRATIONS).map(|done| done.len()),
        DbConn::Pg(pg) => pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(|done| done.len()),
    };
    applied.map_err(|error| StoreError::Migration(error.to_string()))
}

/// Runs `body` in a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken
/// up front (a deferred transaction that reads then writes can fail at once with SQLITE_BUSY);
/// an ordinary transaction on PostgreSQL, where rows are locked with `FOR UPDATE` as they are
/// read.
pub fn write_transaction<T, E, F>(connection: &mut DbConn, body: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match connection {
        DbConn::Sqlite(sqlite) => AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?,
        DbConn::Pg(_) => return connection.transaction(body),
    }
    match body(connection) {
        Ok(value) => {
            <DbConn as TransactionManager<DbConn>>::commit_transaction(connection)?;
            Ok(value)
        }
        Err(error) => {
            <DbConn as TransactionManager<DbConn>>::rollback_transaction(connection)?;
            Err(error)
        }
    }
}

/// Runs `body` as [`write_transaction`] for session and waiting-line bookkeeping, committed
/// without waiting for the disk: `synchronous=NORMAL` for it on SQLite (WAL), `SET LOCAL
/// synchronous_commit = off` on PostgreSQL. A kill -9 of the server loses none of it (the commit
/// is in the log, in the operating system's cache); a power loss or OS crash may forget the last
/// of these writes: a citizen logs in again or takes a ticket again. Never money: a money commit
/// flushes in full, and with it every commit before it. Why: a login storm makes thousands of
/// these small commits a minute, and payments queued behind their flushes for the write lock
/// (payment p99 twice its quiet value). Logouts do not use it: a logout must not come undone.
pub fn bookkeeping_transaction<T, E, F>(connection: &mut DbConn, body: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    if matches!(connection, DbConn::Pg(_)) {
        return write_transaction(connection, |connection| {
            diesel::sql_query("SET LOCAL synchronous_commit = off").execute(connection)?;
            body(connection)
        });
    }
    diesel::sql_query("PRAGMA synchronous = NORMAL").execute(connection)?;
    let result = write_transaction(connection, body);
    // Back to full durability before the connection serves anything else; should that fail, the
    // connection must not go back to the pool as it is.
    if let Err(error) = diesel::sql_query("PRAGMA synchronous = FULL").execute(connection) {
        tracing::error!(%error, "could not restore synchronous=FULL on a connection; closing it");
        panic!("a SQLite connection could not be set back to synchronous=FULL: {error}");
    }
    result
}

pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(error, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}
