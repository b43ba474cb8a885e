//! On SQLite, a read-only connection per HTTP worker thread, for reads of one row.
//!
//! Why: handing a read to the blocking pool and back costs two thread wake-ups, about as much
//! as the read itself, which from SQLite's page cache takes microseconds (issue 6's profile of
//! a balance read: the hand-off was a fifth of its CPU time). A read of one row by key is
//! cheaper done where the request is, on the worker's own connection; in WAL mode it never
//! waits for the writer. Anything that may read many rows still goes to the blocking pool, so a
//! worker is never held up for long. Not for PostgreSQL, where every read is a network round
//! trip that must not block a worker.

use std::cell::RefCell;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;

use super::{DatabaseUrl, DbConn, StoreError, StoreResult};

/// How long such a read waits on a lock before it gives up. A WAL reader waits only in rare
/// moments (another connection recovering the WAL index); a worker must not hang on one.
const BUSY_TIMEOUT: Duration = Duration::from_millis(200);

thread_local! {
    /// The database file and this thread's connection to it.
    static READER: RefCell<Option<(String, DbConn)>> = const { RefCell::new(None) };
}

/// Runs `read` on this thread's read connection to `url` when it is a SQLite file; `None` on
/// PostgreSQL (the caller uses the pool). The connection is opened on first use and reopened
/// after an error, and it refuses writes (`query_only`).
pub fn read_here<T>(url: &DatabaseUrl, read: impl FnOnce(&mut DbConn) -> StoreResult<T>) -> Option<StoreResult<T>> {
    let DatabaseUrl::Sqlite(path) = url else { return None };
    Some(READER.with(|slot| {
        let mut slot = slot.borrow_mut();
        if !matches!(&*slot, Some((open, _)) if open == path) {
            *slot = Some((path.clone(), open(path)?));
        }
        let (_, connection) = slot.as_mut().expect("opened above");
        let result = read(connection);
        if result.is_err() {
            // A fresh connection next time, in case this one is what failed.
            *slot = None;
        }
        result
    }))
}

fn open(path: &str) -> StoreResult<DbConn> {
    let mut sqlite = diesel::SqliteConnection::establish(path).map_err(|error| StoreError::Open(error.to_string()))?;
    sqlite.batch_execute(&format!("PRAGMA busy_timeout = {}; PRAGMA query_only = ON;", BUSY_TIMEOUT.as_millis()))?;
    Ok(DbConn::Sqlite(sqlite))
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;

    use super::*;

    #[test]
    fn reads_a_sqlite_file_on_this_thread_and_refuses_to_write_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3").to_string_lossy().into_owned();
        let mut writer = diesel::SqliteConnection::establish(&path).unwrap();
        writer
            .batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (n BIGINT NOT NULL); INSERT INTO t VALUES (7);")
            .unwrap();
        let url = DatabaseUrl::Sqlite(path);
        let count = |connection: &mut DbConn| -> StoreResult<i64> {
            Ok(diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT SUM(n) FROM t)"))
                .get_result(connection)?)
        };
        assert_eq!(read_here(&url, count).unwrap().unwrap(), 7);
        // A commit by another connection is seen by the next read on the same thread connection.
        writer.batch_execute("INSERT INTO t VALUES (35);").unwrap();
        assert_eq!(read_here(&url, count).unwrap().unwrap(), 42);
        let write =
            read_here(&url, |connection| Ok(diesel::sql_query("INSERT INTO t VALUES (1)").execute(connection)?));
        assert!(write.unwrap().is_err(), "the thread's read connection must refuse writes");
        assert_eq!(read_here(&url, count).unwrap().unwrap(), 42);
    }

    #[test]
    fn leaves_postgresql_to_the_pool() {
        let url = DatabaseUrl::Postgres("postgres://nowhere/none".into());
        assert!(read_here(&url, |_| Ok(())).is_none());
    }
}
