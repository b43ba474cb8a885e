//! The `sessions` and `session_slots` tables: who is logged in (a token's hash, never the
//! token), and how many citizen session slots are in use, kept with every citizen session added
//! or ended so that taking one is a single conditional update for every server on the database.

use diesel::prelude::*;

use super::schema::*;
use super::{DbConn, StoreResult};

/// A session as the authentication path needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SessionRow {
    pub principal_id: String,
    pub role: String,
    pub last_seen_ms: i64,
    pub expires_at_ms: i64,
}

pub fn insert_session(
    connection: &mut DbConn,
    token_hash: &str,
    principal_id: &str,
    role: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> StoreResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash),
            sessions::principal_id.eq(principal_id),
            sessions::role.eq(role),
            sessions::created_at_ms.eq(now_ms),
            sessions::last_seen_ms.eq(now_ms),
            sessions::expires_at_ms.eq(expires_at_ms),
        ))
        .execute(connection)?;
    Ok(())
}

pub fn find_session(connection: &mut DbConn, token_hash: &str) -> StoreResult<Option<SessionRow>> {
    Ok(sessions::table
        .filter(sessions::token_hash.eq(token_hash))
        .select(SessionRow::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

pub fn touch_session(connection: &mut DbConn, token_hash: &str, now_ms: i64) -> StoreResult<()> {
    diesel::update(sessions::table.filter(sessions::token_hash.eq(token_hash)))
        .set(sessions::last_seen_ms.eq(now_ms))
        .execute(connection)?;
    Ok(())
}

/// Ends a session; a citizen's frees its slot at once.
pub fn delete_session(connection: &mut DbConn, token_hash: &str) -> StoreResult<()> {
    super::write_transaction(connection, |connection| {
        let deleted = diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash)))
            .returning(sessions::role)
            .get_results::<String>(connection);
        let roles = match deleted {
            Ok(roles) => roles,
            Err(error) => return Err(error.into()),
        };
        if roles.iter().any(|role| role == "citizen") {
            diesel::update(session_slots::table.filter(session_slots::id.eq(1)).filter(session_slots::used.gt(0)))
                .set(session_slots::used.eq(session_slots::used - 1))
                .execute(connection)?;
        }
        Ok(())
    })
}

/// Inserts a citizen session only while fewer than `capacity` citizen sessions hold a slot:
/// taking the slot is one conditional update of the `session_slots` row, atomic for every
/// server on the database. A `ticket` let in from the waiting line leaves it in the same
/// transaction.
pub fn insert_citizen_session_within(
    connection: &mut DbConn,
    token_hash: &str,
    principal_id: &str,
    now_ms: i64,
    expires_at_ms: i64,
    capacity: i64,
    ticket: Option<&str>,
) -> StoreResult<bool> {
    super::bookkeeping_transaction(connection, |connection| {
        let taken = diesel::update(
            session_slots::table.filter(session_slots::id.eq(1)).filter(session_slots::used.lt(capacity)),
        )
        .set(session_slots::used.eq(session_slots::used + 1))
        .execute(connection)?;
        if taken == 0 {
            return Ok(false);
        }
        insert_session(connection, token_hash, principal_id, "citizen", now_ms, expires_at_ms)?;
        if let Some(ticket) = ticket {
            super::waiting::remove_ticket(connection, ticket)?;
        }
        Ok(true)
    })
}

/// Citizen session slots in use now (sessions idle or expired since the last sweep included).
pub fn citizen_slots_used(connection: &mut DbConn) -> StoreResult<i64> {
    Ok(session_slots::table.filter(session_slots::id.eq(1)).select(session_slots::used).first(connection)?)
}

/// Ends citizen sessions idle or expired at `now_ms` and sets the slots in use to the count of
/// those left: run every few seconds by each server, it keeps `session_slots` exact.
pub fn sweep_citizen_sessions(connection: &mut DbConn, now_ms: i64, idle_timeout_ms: i64) -> StoreResult<i64> {
    super::bookkeeping_transaction(connection, |connection| {
        diesel::delete(
            sessions::table
                .filter(sessions::role.eq("citizen"))
                .filter(sessions::last_seen_ms.le(now_ms - idle_timeout_ms).or(sessions::expires_at_ms.le(now_ms))),
        )
        .execute(connection)?;
        let left: i64 = sessions::table.filter(sessions::role.eq("citizen")).count().get_result(connection)?;
        diesel::update(session_slots::table.filter(session_slots::id.eq(1)))
            .set(session_slots::used.eq(left))
            .execute(connection)?;
        Ok(left)
    })
}

/// Ends every session of `principal_id` but `keeping` (a token hash), if given: a password reset
/// or a lock ends them all, a password change all but the caller's. A citizen's give their slots
/// back (the sweep makes the count exact anyway). Call it inside the caller's write transaction.
pub fn end_sessions_of(connection: &mut DbConn, principal_id: &str, keeping: Option<&str>) -> StoreResult<()> {
    let ended: Vec<String> = diesel::delete(
        sessions::table
            .filter(sessions::principal_id.eq(principal_id))
            .filter(sessions::token_hash.ne(keeping.unwrap_or(""))),
    )
    .returning(sessions::role)
    .get_results(connection)?;
    // Only citizens' sessions hold a slot.
    let ended = i64::try_from(ended.iter().filter(|role| *role == "citizen").count()).unwrap_or(i64::MAX);
    if ended > 0 {
        diesel::update(session_slots::table.filter(session_slots::id.eq(1)).filter(session_slots::used.ge(ended)))
            .set(session_slots::used.eq(session_slots::used - ended))
            .execute(connection)?;
    }
    Ok(())
}
