//! The `payment_codes` table: codes a citizen shows to pay (180 s, single use). Read for the
//! ledger (locked on PostgreSQL); written by the writer's batches (both dialects below) and
//! deleted by the expiry sweep (`expiry`) once past their retention.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use wallet_core::{PaymentCode, PaymentCodeState, WalletId};

use super::fixed::{self, Bind};
use super::schema::*;
use super::time::{instant, millis};
use super::{corrupt, expect_rows, DbConn, StoreResult};

pub fn load_codes(connection: &mut DbConn, codes: &[String]) -> StoreResult<Vec<(PaymentCode, PaymentCodeState)>> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<PaymentCodeRow> =
        load_keyed!(connection, payment_codes::table.select(PaymentCodeRow::as_select()), payment_codes::code, codes)?;
    rows.into_iter()
        .map(|row| {
            let state = PaymentCodeState {
                wallet: WalletId::parse(&row.wallet_id).map_err(|error| corrupt("code wallet", error))?,
                expires_at: instant(row.expires_at_ms)?,
                used: row.used,
            };
            Ok((PaymentCode::parse(&row.code).map_err(|error| corrupt("payment code", error))?, state))
        })
        .collect()
}

/// A payment code, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payment_codes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PaymentCodeRow {
    code: String,
    wallet_id: String,
    expires_at_ms: i64,
    used: bool,
}

/// Writes the batch's codes: a code is new (issued in this batch) or was used. On PostgreSQL one
/// upsert over arrays serves both; on SQLite one kept-prepared statement a code.
pub fn save(connection: &mut DbConn, changed: &[(PaymentCode, PaymentCodeState)]) -> StoreResult<()> {
    if let DbConn::Pg(pg) = connection {
        if changed.is_empty() {
            return Ok(());
        }
        let mut columns: (Vec<&str>, Vec<&str>, Vec<i64>, Vec<bool>) = Default::default();
        for (code, state) in changed {
            columns.0.push(code.as_str());
            columns.1.push(state.wallet.as_str());
            columns.2.push(millis(state.expires_at));
            columns.3.push(state.used);
        }
        let written = diesel::sql_query(
            "INSERT INTO payment_codes (code, wallet_id, expires_at_ms, used) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[]) \
             ON CONFLICT (code) DO UPDATE SET used = excluded.used",
        )
        .bind::<Array<Text>, _>(&columns.0)
        .bind::<Array<Text>, _>(&columns.1)
        .bind::<Array<BigInt>, _>(&columns.2)
        .bind::<Array<diesel::sql_types::Bool>, _>(&columns.3)
        .execute(pg)?;
        return expect_rows("payment codes", written, columns.0.len());
    }
    // On SQLite a used code (loaded by the batch) is an UPDATE and a new one an INSERT: an upsert
    // costs the writer an insert attempt per payment (measured: about 7 % of payments per second,
    // scripts/bench-compare). A code issued and used in one batch is not there yet: the UPDATE
    // touches nothing and it is inserted.
    for (code, state) in changed {
        let updated = if state.used {
            fixed::execute(
                connection,
                fixed!(
                    "UPDATE payment_codes SET used = ? WHERE code = ?",
                    vec![Bind::Bool(state.used), Bind::Text(code.as_str())],
                ),
            )?
        } else {
            0
        };
        if updated == 0 {
            fixed::execute(
                connection,
                fixed!(
                    "INSERT INTO payment_codes (code, wallet_id, expires_at_ms, used) VALUES (?, ?, ?, ?)",
                    vec![
                        Bind::Text(code.as_str()),
                        Bind::Text(state.wallet.as_str()),
                        Bind::BigInt(millis(state.expires_at)),
                        Bind::Bool(state.used),
                    ],
                ),
            )?;
        }
    }
    Ok(())
}

/// Deletes the payment codes that expired before `cutoff_ms` (used or not), about `limit` at
/// most, oldest first; returns how many went.
pub fn delete_codes_expired_before(connection: &mut DbConn, cutoff_ms: i64, limit: i64) -> StoreResult<usize> {
    let boundary: Option<i64> = payment_codes::table
        .filter(payment_codes::expires_at_ms.lt(cutoff_ms))
        .order(payment_codes::expires_at_ms.asc())
        .select(payment_codes::expires_at_ms)
        .offset(limit - 1)
        .first(connection)
        .optional()?;
    let before_ms = boundary.map_or(cutoff_ms, |boundary| boundary + 1);
    super::bookkeeping_transaction(connection, |connection| {
        Ok(diesel::delete(payment_codes::table.filter(payment_codes::expires_at_ms.lt(before_ms)))
            .execute(connection)?)
    })
}
