//! Principals (who can log in) and their sessions.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::*;
use super::{is_unique_violation, DbConn, StoreResult};

/// A principal as the login path needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = principals, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PrincipalRow {
    pub principal_id: String,
    pub role: String,
    pub password_hash: String,
}

/// A session as the authentication path needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SessionRow {
    pub principal_id: String,
    pub role: String,
    pub last_seen_ms: i64,
    pub expires_at_ms: i64,
}

/// Inserts a principal; `Ok(false)` when the login is taken.
pub fn insert_principal(
    connection: &mut DbConn,
    principal_id: &str,
    login: &str,
    role: &str,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<bool> {
    let inserted = diesel::insert_into(principals::table)
        .values((
            principals::principal_id.eq(principal_id),
            principals::login.eq(login),
            principals::role.eq(role),
            principals::password_hash.eq(password_hash),
            principals::created_at_ms.eq(now_ms),
        ))
        .execute(connection);
    match inserted {
        Ok(_) => Ok(true),
        Err(error) if is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Adds a wallet at balance 0 (the ledger moves won in), or replaces the month's counters of
/// one already here (a handover delta).
pub fn put_wallet(
    connection: &mut DbConn,
    wallet_id: &str,
    citizen_id: &str,
    month: &str,
    charged: i64,
    eligible_spent: i64,
) -> StoreResult<()> {
    let row = (
        wallets::wallet_id.eq(wallet_id),
        wallets::citizen_id.eq(citizen_id),
        wallets::balance.eq(0i64),
        wallets::month.eq(month),
        wallets::charged.eq(charged),
        wallets::eligible_spent.eq(eligible_spent),
        wallets::cashback_earned.eq(0i64),
    );
    upsert!(
        connection,
        diesel::insert_into(wallets::table).values(row).on_conflict(wallets::wallet_id).do_update().set((
            wallets::month.eq(excluded(wallets::month)),
            wallets::charged.eq(excluded(wallets::charged)),
            wallets::eligible_spent.eq(excluded(wallets::eligible_spent)),
        ))
    )?;
    Ok(())
}

pub fn find_principal(connection: &mut DbConn, login: &str) -> StoreResult<Option<PrincipalRow>> {
    Ok(principals::table
        .filter(principals::login.eq(login))
        .select(PrincipalRow::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

pub fn set_password_hash(
    connection: &mut DbConn,
    principal_id: &str,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<()> {
    diesel::update(principals::table.filter(principals::principal_id.eq(principal_id)))
        .set((principals::password_hash.eq(password_hash), principals::changed_at_ms.eq(now_ms)))
        .execute(connection)?;
    Ok(())
}

pub fn wallet_of(connection: &mut DbConn, citizen_id: &str) -> StoreResult<Option<String>> {
    Ok(wallets::table
        .filter(wallets::citizen_id.eq(citizen_id))
        .select(wallets::wallet_id)
        .load(connection)?
        .into_iter()
        .next())
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

/// Records a password-reset code (its hash) for `principal_id`, replacing an earlier one.
pub fn put_password_reset(
    connection: &mut DbConn,
    principal_id: &str,
    code_hash: &str,
    expires_at_ms: i64,
) -> StoreResult<()> {
    upsert!(
        connection,
        diesel::insert_into(password_resets::table)
            .values((
                password_resets::principal_id.eq(principal_id),
                password_resets::code_hash.eq(code_hash),
                password_resets::expires_at_ms.eq(expires_at_ms),
            ))
            .on_conflict(password_resets::principal_id)
            .do_update()
            .set((
                password_resets::code_hash.eq(excluded(password_resets::code_hash)),
                password_resets::expires_at_ms.eq(excluded(password_resets::expires_at_ms)),
            ))
    )?;
    Ok(())
}

/// Uses up `principal_id`'s reset code if it is `code_hash` and unexpired at `now_ms`: sets the
/// new password hash and ends every session of the principal, in one transaction. False (and
/// nothing changed) when there is no such code.
pub fn redeem_password_reset(
    connection: &mut DbConn,
    principal_id: &str,
    code_hash: &str,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<bool> {
    super::write_transaction(connection, |connection| {
        let used = diesel::delete(
            password_resets::table
                .filter(password_resets::principal_id.eq(principal_id))
                .filter(password_resets::code_hash.eq(code_hash))
                .filter(password_resets::expires_at_ms.gt(now_ms)),
        )
        .execute(connection)?;
        if used == 0 {
            return Ok(false);
        }
        set_password_hash(connection, principal_id, password_hash, now_ms)?;
        let ended =
            diesel::delete(sessions::table.filter(sessions::principal_id.eq(principal_id))).execute(connection)?;
        // A citizen's sessions give their slots back (the sweep makes the count exact anyway).
        let ended = i64::try_from(ended).unwrap_or(i64::MAX);
        if ended > 0 {
            diesel::update(session_slots::table.filter(session_slots::id.eq(1)).filter(session_slots::used.ge(ended)))
                .set(session_slots::used.eq(session_slots::used - ended))
                .execute(connection)?;
        }
        Ok(true)
    })
}
