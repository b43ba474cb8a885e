//! Persistence: the only place with SQL. One set of diesel queries for SQLite (the embedded
//! default) and PostgreSQL (production), through diesel's `MultiConnection`.
//!
//! Ids are TEXT and money is BIGINT whole won on both backends (diesel's MultiConnection cannot
//! carry `Uuid` or `Numeric`); conversion to core types happens in this module's functions.
//! Lookups by a unique key `load` and take the first row rather than use diesel's `first()`:
//! `first()` binds `LIMIT ?`, and SQLite re-prepares a statement whose LIMIT is a bound
//! parameter every time it is bound (the planner reads the value), which was a quarter of the
//! CPU time of a balance read.
//!
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

/// A [`fixed::Fixed`] statement: `$sql` (a literal, one `?` per value) with the values `$binds`.
/// Each use defines its own type for the text, so diesel keeps each text prepared under a type
/// of its own.
macro_rules! fixed {
    ($sql:expr, $binds:expr $(,)?) => {{
        struct Text;
        impl $crate::store::fixed::Sql for Text {
            const SQL: &'static str = $sql;
        }
        $crate::store::fixed::Fixed::<Text>::new($binds)
    }};
}

/// Loads the rows whose `$column` is one of `$keys` from `$query` (a table with its `select`).
/// On PostgreSQL one `IN` query, the rows locked in key order for the rest of the transaction
/// (one round trip; the order is what keeps two servers' batches from deadlocking). On SQLite
/// (`BEGIN IMMEDIATE` already holds the write lock) one kept-prepared lookup per key: an `IN`
/// list is prepared anew for every length, which cost the writer more than the lookups.
macro_rules! load_keyed {
    ($connection:expr, $query:expr, $column:expr, $keys:expr) => {
        match $connection {
            DbConn::Pg(pg) => $query.filter($column.eq_any($keys)).order($column).for_update().load(pg),
            DbConn::Sqlite(sqlite) => {
                let mut rows = Vec::with_capacity($keys.len());
                for key in $keys.iter() {
                    rows.extend($query.filter($column.eq(key)).load(sqlite)?);
                }
                Ok::<_, diesel::result::Error>(rows)
            }
        }
    };
}

/// Inserts `values` (`$columns` [`fixed::Bind`]s a row, in the order of the text's columns) with
/// `$into`, a literal `INSERT INTO t (a, b, …) VALUES `; `$sqlite` is a [`fixed::SqliteRows`].
/// `fixed::insert_rows` says how many rows a statement on each backend. Each use defines its own
/// type for the text.
macro_rules! insert_fixed_rows {
    ($connection:expr, $into:expr, $columns:expr, $values:expr, $sqlite:expr) => {{
        struct Text;
        impl $crate::store::fixed::RowsSql for Text {
            const INTO: &'static str = $into;
            const COLUMNS: usize = $columns;
        }
        $crate::store::fixed::insert_rows::<Text>($connection, $values, $crate::store::fixed::ROWS_PER_INSERT, $sqlite)
    }};
}

pub mod allowances;
pub mod audit;
pub mod balances;
pub mod changes;
pub mod charge_bonuses;
pub mod citizen_references;
pub mod daily_sales;
pub mod directory;
pub mod expiry;
pub mod fixed;
pub mod handover_bundles;
pub mod handover_exports;
pub mod history;
pub mod idempotency;
pub mod ledger_state;
pub mod login_failures;
pub mod merchants;
pub mod money;
pub mod password_resets;
pub mod payment_codes;
pub mod payments;
pub mod postings;
pub mod principals;
pub mod programs;
pub mod schema;
#[cfg(test)]
mod schema_check;
pub mod sessions;
pub mod settlements;
pub mod test_clock;
pub mod thread_reader;
pub mod time;
pub mod waiting;
pub mod wallets;

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
/// WAL pages after which the committing connection checkpoints by itself (SQLite's default is
/// 1,000). Raised so that the ledger writer, whose commits are the server's bottleneck, does not
/// copy the WAL into the database inside its commits: [`start_checkpointer`] does that on its own
/// thread. Should the checkpointer stall, the WAL still stops growing here (about 80 MiB).
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 20_000;
/// How often the checkpointer copies the WAL into the database file.
const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// How long a request waits for a pooled connection before it is answered `overloaded`.
const POOL_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend a database URL names: `postgres://` or `postgresql://` is PostgreSQL, anything
/// else is a SQLite file path (an optional `sqlite://` prefix is removed). Its `Debug` form, the
/// one logged, never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => formatter.debug_tuple("Sqlite").field(path).finish(),
            DatabaseUrl::Postgres(url) => formatter.debug_tuple("Postgres").field(&redacted(url)).finish(),
        }
    }
}

/// `url` with the password of its user part and any `password=` parameter replaced by `***`.
fn redacted(url: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(head, query)| (head, Some(query)));
    let scheme_end = head.find("://").map_or(0, |index| index + 3);
    let mut out = head.to_owned();
    if let Some(at) = head[scheme_end..].rfind('@').map(|index| scheme_end + index) {
        if let Some(colon) = head[scheme_end..at].find(':').map(|index| scheme_end + index) {
            out = format!("{}:***{}", &head[..colon], &head[at..]);
        }
    }
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{out}?{}", parameters.join("&"));
    }
    out
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
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                     PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES};"
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
        // A PostgreSQL connection can die under the pool (a server restart): check it before
        // use. A SQLite connection is a file handle that cannot, and the check (`SELECT 1`)
        // would be one more statement on every read.
        .test_on_check_out(matches!(url, DatabaseUrl::Postgres(_)))
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

/// Held by this process's SQLite write transactions for their whole length (see
/// [`write_transaction`]).
/// (parking_lot's, for a bounded wait and because it hands over fairly under contention.)
static SQLITE_WRITE_TURN: parking_lot::Mutex<()> = parking_lot::const_mutex(());

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
        DbConn::Sqlite(_) => {}
        DbConn::Pg(_) => return connection.transaction(body),
    }
    // SQLite has one write lock, and its busy handler polls for it with sleeps of up to 100 ms:
    // while the ledger writer commits batch after batch, a session write polling that way can
    // miss every gap for the whole busy timeout and fail. Within this process, writers queue on
    // a mutex instead, which hands the lock over as soon as it is released.
    // Bounded like SQLite's own wait, so a stuck lock is an error, never a hang.
    let _turn =
        SQLITE_WRITE_TURN.try_lock_for(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS.into())).ok_or_else(|| {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::Unknown,
                Box::new(format!("database is locked: no write turn within {SQLITE_BUSY_TIMEOUT_MS} ms")),
            )
        })?;
    if let DbConn::Sqlite(sqlite) = connection {
        AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
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

/// Page cache of the ledger writer's SQLite connection, in KiB (SQLite's default is 2,000). The
/// writer touches index pages all over the payment codes, idempotency records and history of a
/// busy day; with the default cache it read many of them back from the WAL in every batch.
const SQLITE_WRITER_CACHE_KIB: u32 = 65_536;

/// Gives the writer's connection its larger page cache (SQLite; nothing on PostgreSQL). Only
/// that connection: the pool's others keep SQLite's default (unless the writer gave its
/// connection back after a failure). A failure is logged, not fatal: the cache is a matter of
/// speed.
pub fn writer_cache(connection: &mut DbConn) {
    if let DbConn::Sqlite(sqlite) = connection {
        if let Err(error) = sqlite.batch_execute(&format!("PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB};")) {
            tracing::warn!(%error, "could not enlarge the writer's page cache");
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

/// On SQLite, a thread that checkpoints the WAL every [`SQLITE_CHECKPOINT_INTERVAL`] on its own
/// connection (`PASSIVE`: it never blocks a writer or a reader, and does what it can). Without
/// it, the commit that pushes the WAL past the limit does the copying and the fsync of the
/// database file, and the payments of that batch wait for it. Nothing on PostgreSQL.
pub fn start_checkpointer(url: &DatabaseUrl) {
    let DatabaseUrl::Sqlite(path) = url else { return };
    let path = path.clone();
    let spawned = std::thread::Builder::new().name("wal-checkpointer".into()).spawn(move || {
        let mut connection = None;
        loop {
            std::thread::sleep(SQLITE_CHECKPOINT_INTERVAL);
            if connection.is_none() {
                connection = diesel::SqliteConnection::establish(&path)
                    .and_then(|mut sqlite| {
                        sqlite
                            .batch_execute(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"))
                            .map_err(|error| diesel::ConnectionError::BadConnection(error.to_string()))?;
                        Ok(sqlite)
                    })
                    .map_err(|error| tracing::warn!(%error, "the WAL checkpointer cannot open the database"))
                    .ok();
            }
            let Some(sqlite) = connection.as_mut() else { continue };
            if let Err(error) = sqlite.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::warn!(%error, "WAL checkpoint failed; trying again with a fresh connection");
                connection = None;
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no WAL checkpointer thread; commits will checkpoint by themselves");
    }
}

/// Runs `body` in a read-only transaction that sees one consistent state: a deferred transaction
/// on SQLite (WAL gives it a snapshot from its first read, and it takes no write lock, so the
/// writer is never held up), `REPEATABLE READ, READ ONLY` on PostgreSQL.
pub fn read_snapshot<T, E, F>(connection: &mut DbConn, body: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    connection.transaction(|connection| {
        if let DbConn::Pg(pg) = connection {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(pg)?;
        }
        body(connection)
    })
}

/// A stored value the core refuses: the data is corrupt, and the operation must fail.
fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

/// A bulk statement must have written one row per entity: fewer means a row the batch loaded
/// has vanished, and the batch must not commit.
fn expect_rows(what: &str, written: usize, wanted: usize) -> StoreResult<()> {
    if written == wanted {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!("{what}: {written} rows written of {wanted}")))
    }
}

pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(error, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_logged_database_url_shows_no_password() {
        let shown = |url: &str| format!("{:?}", DatabaseUrl::parse(url));
        assert_eq!(
            shown("postgres://wallet:s3cret@db:5432/wallet"),
            "Postgres(\"postgres://wallet:***@db:5432/wallet\")"
        );
        assert_eq!(
            shown("postgresql://w:p%40ss@db/w?sslmode=disable&password=x"),
            "Postgres(\"postgresql://w:***@db/w?sslmode=disable&password=***\")"
        );
        assert_eq!(shown("postgres://wallet@db/wallet"), "Postgres(\"postgres://wallet@db/wallet\")");
        assert_eq!(shown("wallet.sqlite3"), "Sqlite(\"wallet.sqlite3\")");
    }
}
