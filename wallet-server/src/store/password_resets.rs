//! The `password_resets` table: one-time codes the city issues so a citizen can set a password
//! (only a hash of the code is kept; a new code replaces the earlier one).

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::password_resets;
use super::{principals, sessions, DbConn, StoreResult};

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
        principals::set_password_hash(connection, principal_id, password_hash, now_ms)?;
        sessions::end_sessions_of(connection, principal_id, None)?;
        Ok(true)
    })
}
