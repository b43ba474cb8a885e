//! The `idempotency` table: the stored answer of every money-moving request under its
//! Idempotency-Key, written in the same transaction as its effect. The writer locks and looks
//! up a batch's keys (both dialects below); the expiry sweep deletes records past retention.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::fixed::Bind;
use super::schema::*;
use super::{DbConn, StoreResult};

/// Takes, until the transaction ends, a lock on each `(principal_id, key)` of a batch, in one
/// order, on PostgreSQL; a no-op on SQLite, where `BEGIN IMMEDIATE` already holds the one write
/// lock. Why: with two servers on one database, both could find no answer stored for a key,
/// both apply the request, and the later commit failed on the key's unique index, taking its
/// whole batch (other citizens' requests) with it. With the lock, the second server's batch waits
/// for the first's commit and then finds its answer, as a retry would. Locks are taken in
/// ascending order before any row lock, so two batches cannot deadlock on them.
pub fn lock_idempotency_keys(connection: &mut DbConn, pairs: &[(&str, &str)]) -> StoreResult<()> {
    use sha2::{Digest, Sha256};
    let DbConn::Pg(pg) = connection else { return Ok(()) };
    if pairs.is_empty() {
        return Ok(());
    }
    let mut locks: Vec<i64> = pairs
        .iter()
        .map(|(principal, key)| {
            let digest = Sha256::new().chain_update(principal).chain_update([0]).chain_update(key).finalize();
            i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
        })
        .collect();
    locks.sort_unstable();
    locks.dedup();
    diesel::sql_query("SELECT pg_advisory_xact_lock(lock) FROM unnest($1::bigint[]) AS lock")
        .bind::<diesel::sql_types::Array<BigInt>, _>(&locks)
        .execute(pg)?;
    Ok(())
}

/// A stored idempotent answer.
#[derive(Queryable, Selectable)]
#[diesel(table_name = idempotency, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct StoredAnswer {
    pub principal_id: String,
    pub idem_key: String,
    pub request_hash: String,
    pub status: i32,
    pub body: String,
    pub created_at_ms: i64,
}

/// The stored answers of a batch's `(principal_id, key)` pairs, in one query: the rows whose
/// key is among the keys and whose principal is among the principals, then only the exact pairs.
pub fn idempotent_answers(
    connection: &mut DbConn,
    pairs: &[(&str, &str)],
) -> StoreResult<HashMap<(String, String), StoredAnswer>> {
    let mut found = HashMap::new();
    if pairs.is_empty() {
        return Ok(found);
    }
    let wanted: HashSet<(&str, &str)> = pairs.iter().copied().collect();
    let mut rows: Vec<StoredAnswer> = Vec::new();
    if let DbConn::Sqlite(sqlite) = connection {
        // One kept-prepared lookup a pair (an `IN` list is prepared anew for every length).
        for (principal, key) in &wanted {
            rows.extend(
                idempotency::table
                    .filter(idempotency::principal_id.eq(*principal))
                    .filter(idempotency::idem_key.eq(*key))
                    .select(StoredAnswer::as_select())
                    .load(sqlite)?,
            );
        }
    } else {
        // One round trip on PostgreSQL; the pairs are picked out of the rows below.
        let principals: BTreeSet<&str> = pairs.iter().map(|(principal, _)| *principal).collect();
        let keys: BTreeSet<&str> = pairs.iter().map(|(_, key)| *key).collect();
        rows = idempotency::table
            .filter(idempotency::idem_key.eq_any(keys))
            .filter(idempotency::principal_id.eq_any(principals))
            .select(StoredAnswer::as_select())
            .load(connection)?;
    }
    for row in rows {
        if wanted.contains(&(row.principal_id.as_str(), row.idem_key.as_str())) {
            found.insert((row.principal_id.clone(), row.idem_key.clone()), row);
        }
    }
    Ok(found)
}

/// An answer to store under its Idempotency-Key.
pub struct NewAnswer<'a> {
    pub principal_id: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub status: u16,
    pub body: String,
}

/// Stores a batch's answers (`insert_fixed_rows!`: a few hundred rows a statement on PostgreSQL,
/// one kept-prepared statement a row on SQLite: the keys are random, see `SqliteRows::One`).
pub fn save_idempotent_answers(connection: &mut DbConn, answers: &[NewAnswer<'_>], now_ms: i64) -> StoreResult<()> {
    let mut values = Vec::with_capacity(answers.len() * 6);
    for answer in answers {
        values.extend([
            Bind::Text(answer.principal_id),
            Bind::Text(answer.key),
            Bind::Text(answer.request_hash),
            Bind::BigInt(i64::from(answer.status)),
            Bind::Text(&answer.body),
            Bind::BigInt(now_ms),
        ]);
    }
    insert_fixed_rows!(
        connection,
        "INSERT INTO idempotency (principal_id, idem_key, request_hash, status, body, created_at_ms) VALUES ",
        6,
        &values,
        super::fixed::SqliteRows::One
    )?;
    Ok(())
}

/// Deletes the oldest idempotency records created before `cutoff_ms`, about `limit` at most;
/// returns how many went.
pub fn delete_idempotency_before(connection: &mut DbConn, cutoff_ms: i64, limit: i64) -> StoreResult<usize> {
    // The batch ends at the creation time of the limit-th oldest record, so the delete is one
    // range on the index, the same SQL on both backends.
    let boundary: Option<i64> = idempotency::table
        .filter(idempotency::created_at_ms.lt(cutoff_ms))
        .order(idempotency::created_at_ms.asc())
        .select(idempotency::created_at_ms)
        .offset(limit - 1)
        .first(connection)
        .optional()?;
    let before_ms = boundary.map_or(cutoff_ms, |boundary| boundary + 1);
    super::bookkeeping_transaction(connection, |connection| {
        Ok(diesel::delete(idempotency::table.filter(idempotency::created_at_ms.lt(before_ms))).execute(connection)?)
    })
}

/// Deletes one idempotency record (the writer's, for a key found past its retention, in the
/// transaction that then uses the key anew).
pub fn forget_idempotent_answer(connection: &mut DbConn, principal_id: &str, key: &str) -> StoreResult<()> {
    diesel::delete(
        idempotency::table.filter(idempotency::principal_id.eq(principal_id)).filter(idempotency::idem_key.eq(key)),
    )
    .execute(connection)?;
    Ok(())
}
