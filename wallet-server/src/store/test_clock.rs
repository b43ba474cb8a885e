//! The test clock's offset (`WALLET_TEST_CLOCK=1` only), kept so that a restart, a second
//! server on the same database and `handover export` all see the time the server was moved to.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::test_clock;
use super::{DbConn, StoreResult};

/// The offset from the real time in microseconds, or `None` if the clock was never moved.
pub fn offset_us(connection: &mut DbConn) -> StoreResult<Option<i64>> {
    Ok(test_clock::table.filter(test_clock::id.eq(1)).select(test_clock::offset_us).first(connection).optional()?)
}

/// Keeps `offset_us`; never less than the offset already kept (the clock only moves forward,
/// whichever server moved it).
pub fn keep_offset_us(connection: &mut DbConn, offset_us: i64) -> StoreResult<()> {
    let kept = self::offset_us(connection)?.unwrap_or(0).max(offset_us);
    upsert!(
        connection,
        diesel::insert_into(test_clock::table)
            .values((test_clock::id.eq(1), test_clock::offset_us.eq(kept)))
            .on_conflict(test_clock::id)
            .do_update()
            .set(test_clock::offset_us.eq(excluded(test_clock::offset_us)))
    )?;
    Ok(())
}
