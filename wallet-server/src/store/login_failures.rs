//! Failed logins shared by the servers of a database, so that the login throttle's budgets hold
//! across all of them (`auth::throttle`, `jobs::throttle`): each server appends the failures it
//! saw and reads on from the last row it read. Logins and addresses are in the form the throttle
//! keys them, salted digests (`auth::throttle::Keys` says why), with the salt kept here too.

use diesel::prelude::*;

use super::fixed::{self, Bind};
use super::schema::{login_failures, throttle_salt};
use super::{DbConn, StoreResult};

/// A failure as written: the throttle's keys and when it failed, on the writer's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewFailure {
    pub login_key: Option<i64>,
    pub address_key: Option<i64>,
    pub failed_ms: i64,
}

/// A failure as read back, with its place in the table and the server that wrote it.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = login_failures, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct FailureRow {
    pub seq: i64,
    pub server_id: i64,
    pub login_key: Option<i64>,
    pub address_key: Option<i64>,
    pub failed_ms: i64,
}

/// The database's salt for the throttle's keys: the one kept, or `new_salt` if none is yet (the
/// first server to start keeps its own; all read back the one kept). Committed in full: a salt
/// forgotten after a crash would key the next server's logins differently from the others'.
pub fn salt(connection: &mut DbConn, new_salt: &str) -> StoreResult<String> {
    super::write_transaction(connection, |connection| {
        upsert!(
            connection,
            diesel::insert_into(throttle_salt::table)
                .values((throttle_salt::id.eq(1), throttle_salt::salt.eq(new_salt)))
                .on_conflict(throttle_salt::id)
                .do_nothing()
        )?;
        Ok(throttle_salt::table.filter(throttle_salt::id.eq(1)).select(throttle_salt::salt).first(connection)?)
    })
}

/// Appends `failures`, seen by the server `server_id`, in one transaction.
///
/// The writers take turns on PostgreSQL (a lock on the table, held to the commit, which readers
/// never wait for), so rows are committed in the order of their `seq`, and a reader that reads on
/// from the last `seq` it read misses none. Without it, a row given a lower `seq` could commit
/// after a reader had read past a higher one committed first, and be skipped for good. SQLite's
/// one write lock does the same there. Committed without waiting for the disk (bookkeeping): a
/// power loss may forget the last failures, which the servers that saw them still count.
pub fn append(connection: &mut DbConn, server_id: i64, failures: &[NewFailure]) -> StoreResult<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut values = Vec::with_capacity(failures.len() * 4);
    for failure in failures {
        values.extend([
            Bind::BigInt(server_id),
            Bind::NullableBigInt(failure.login_key),
            Bind::NullableBigInt(failure.address_key),
            Bind::BigInt(failure.failed_ms),
        ]);
    }
    super::bookkeeping_transaction(connection, |connection| {
        if matches!(connection, DbConn::Pg(_)) {
            diesel::sql_query("LOCK TABLE login_failures IN SHARE ROW EXCLUSIVE MODE").execute(connection)?;
        }
        insert_fixed_rows!(
            connection,
            "INSERT INTO login_failures (server_id, login_key, address_key, failed_ms) VALUES ",
            4,
            &values,
            fixed::SqliteRows::Many
        )?;
        Ok(())
    })
}

/// The first `limit` failures after `after_seq`, in order, whichever server wrote them (the
/// reader skips its own, and reads on after them too).
pub fn read_after(connection: &mut DbConn, after_seq: i64, limit: i64) -> StoreResult<Vec<FailureRow>> {
    Ok(login_failures::table
        .filter(login_failures::seq.gt(after_seq))
        .order(login_failures::seq)
        .limit(limit)
        .select(FailureRow::as_select())
        .load(connection)?)
}

/// Deletes the failures from before `cutoff_ms`; how many. A read first, so that a database
/// with none to delete is not written: a `DELETE` on SQLite takes the write lock even when it
/// deletes nothing, and the ledger writer wants that lock.
pub fn purge(connection: &mut DbConn, cutoff_ms: i64) -> StoreResult<usize> {
    let old = login_failures::table
        .filter(login_failures::failed_ms.lt(cutoff_ms))
        .select(login_failures::seq)
        .limit(1)
        .load::<i64>(connection)?;
    if old.is_empty() {
        return Ok(0);
    }
    super::bookkeeping_transaction(connection, |connection| {
        Ok(diesel::delete(login_failures::table.filter(login_failures::failed_ms.lt(cutoff_ms))).execute(connection)?)
    })
}
