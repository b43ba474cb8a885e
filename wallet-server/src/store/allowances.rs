//! The `allowances` table: one row a grant, the allowance purse it opened in a wallet (an account
//! of the ledger). Read for the ledger with the wallet it belongs to: every command that changes
//! a purse loads (and on PostgreSQL locks) that wallet's row first, so the wallet's lock guards
//! its purses and their rows need none of their own. Written by the writer's batches.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use wallet_core::{GrantId, GrantState, ProgramId, WalletId};

use super::fixed::ROWS_PER_INSERT;
use super::money::{db_won, won_to_db};
use super::schema::{allowances, programs};
use super::time::{instant, millis};
use super::{corrupt, DbConn, StoreResult};

#[derive(Queryable, Selectable)]
#[diesel(table_name = allowances, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AllowanceRow {
    grant_id: String,
    program_id: String,
    wallet_id: String,
    amount: i64,
    outstanding: i64,
    granted_at_ms: i64,
    expires_at_ms: i64,
}

fn grant_of(row: AllowanceRow) -> StoreResult<(GrantId, GrantState)> {
    let state = GrantState {
        program: ProgramId::parse(&row.program_id).map_err(|error| corrupt("allowance program", error))?,
        wallet: WalletId::parse(&row.wallet_id).map_err(|error| corrupt("allowance wallet", error))?,
        amount: db_won(row.amount),
        outstanding: db_won(row.outstanding),
        granted_at: instant(row.granted_at_ms)?,
        expires_at: instant(row.expires_at_ms)?,
    };
    Ok((GrantId::parse(&row.grant_id).map_err(|error| corrupt("grant id", error))?, state))
}

/// Every grant of the wallets `ids`, spent, expired and swept ones included.
pub fn load_for_wallets(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<(GrantId, GrantState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<AllowanceRow> = allowances::table
        .filter(allowances::wallet_id.eq_any(ids))
        .order(allowances::grant_id)
        .select(AllowanceRow::as_select())
        .load(connection)?;
    rows.into_iter().map(grant_of).collect()
}

/// The grants `ids` (an expiry names its grant; the writer then loads its wallet).
pub fn load_grants(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<(GrantId, GrantState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<AllowanceRow> = allowances::table
        .filter(allowances::grant_id.eq_any(ids))
        .select(AllowanceRow::as_select())
        .load(connection)?;
    rows.into_iter().map(grant_of).collect()
}

/// A wallet's grants with their programs' names, for `GET /v1/wallet` (the core decides which
/// are shown: live, with money left). No `outstanding > 0` here: a bound constant that a
/// partial index's `WHERE` names makes SQLite prepare the statement again at every bind (31 % of
/// the server's CPU in reads, measured by `perf`).
pub fn of_wallet_with_names(
    connection: &mut DbConn,
    wallet_id: &str,
) -> StoreResult<Vec<(GrantId, GrantState, String)>> {
    let rows: Vec<(AllowanceRow, String)> = allowances::table
        .inner_join(programs::table)
        .filter(allowances::wallet_id.eq(wallet_id))
        .select((AllowanceRow::as_select(), programs::name))
        .load(connection)?;
    rows.into_iter()
        .map(|(row, name)| {
            let (id, state) = grant_of(row)?;
            Ok((id, state, name))
        })
        .collect()
}

/// Writes the batch's new grants and changed purses, a few hundred rows a statement.
pub fn save(connection: &mut DbConn, changed: &[(GrantId, GrantState)]) -> StoreResult<()> {
    let mut rows = Vec::with_capacity(changed.len());
    for (id, grant) in changed {
        rows.push((
            allowances::grant_id.eq(id.as_str()),
            allowances::program_id.eq(grant.program.as_str()),
            allowances::wallet_id.eq(grant.wallet.as_str()),
            allowances::amount.eq(won_to_db(grant.amount)?),
            allowances::outstanding.eq(won_to_db(grant.outstanding)?),
            allowances::granted_at_ms.eq(millis(grant.granted_at)),
            allowances::expires_at_ms.eq(millis(grant.expires_at)),
        ));
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        upsert!(
            connection,
            diesel::insert_into(allowances::table)
                .values(chunk)
                .on_conflict(allowances::grant_id)
                .do_update()
                .set(allowances::outstanding.eq(excluded(allowances::outstanding)))
        )?;
    }
    Ok(())
}

/// Up to `limit` grants expired at `now` with money left, the oldest expiry first: the sweep's
/// next batch.
pub fn expired_with_money_left(connection: &mut DbConn, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<String>> {
    Ok(allowances::table
        .filter(allowances::outstanding.gt(0))
        .filter(allowances::expires_at_ms.le(millis(now)))
        .order((allowances::expires_at_ms, allowances::grant_id))
        .limit(limit)
        .select(allowances::grant_id)
        .load(connection)?)
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
}

/// The sum of every allowance purse (the `citizen_allowance` accounts), in whole won.
pub fn outstanding_sum(connection: &mut DbConn) -> StoreResult<i64> {
    let total: Total =
        diesel::sql_query("SELECT CAST(COALESCE(SUM(outstanding), 0) AS BIGINT) AS total FROM allowances")
            .get_result(connection)?;
    Ok(total.total)
}

/// What the grants unexpired at `at` hold (the total `allowances.csv` of a handover carries),
/// in whole won.
pub fn live_outstanding_sum(connection: &mut DbConn, at: DateTime<Utc>) -> StoreResult<i64> {
    let sql = |parameter: &str| {
        format!(
            "SELECT CAST(COALESCE(SUM(outstanding), 0) AS BIGINT) AS total FROM allowances \
             WHERE outstanding > 0 AND expires_at_ms > {parameter}"
        )
    };
    let query = |parameter| diesel::sql_query(sql(parameter)).bind::<diesel::sql_types::BigInt, _>(millis(at));
    let total: Total = match connection {
        DbConn::Sqlite(sqlite) => query("?1").get_result(sqlite)?,
        DbConn::Pg(pg) => query("$1").get_result(pg)?,
    };
    Ok(total.total)
}
