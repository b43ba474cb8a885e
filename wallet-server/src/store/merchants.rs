//! The `merchants` table: a merchant's details and balances (receivable, negative carry).
//! Balances are read for the ledger (locked on PostgreSQL) and written by the writer's batches
//! (both dialects below); details by registration and a handover.

use diesel::prelude::*;
use diesel::upsert::excluded;

use diesel::sql_types::{Array, BigInt, Text};
use wallet_core::{MerchantId, MerchantState};

use super::fixed::{self, Bind, ROWS_PER_INSERT};
use super::money::{db_won, won_to_db};
use super::schema::merchants;
use super::{corrupt, expect_rows, DbConn, StoreResult};

/// A merchant's details as registered.
#[derive(Clone, Copy)]
pub struct MerchantDetails<'a> {
    pub merchant_id: &'a str,
    pub name: &'a str,
    pub business_number: &'a str,
    pub bank_account: &'a str,
    pub category: Option<&'a str>,
}

/// Adds a new merchant (its principal was just created) with nothing receivable.
pub fn put_merchant(connection: &mut DbConn, merchant: &MerchantDetails<'_>) -> StoreResult<()> {
    put_merchants(connection, &[(*merchant, wallet_core::MerchantState::default())])
}

/// Writes merchants whole, details and balances, a few hundred a statement: added, or replaced
/// when here already (a handover delta).
pub fn put_merchants(
    connection: &mut DbConn,
    merchants_in: &[(MerchantDetails<'_>, wallet_core::MerchantState)],
) -> StoreResult<()> {
    for chunk in merchants_in.chunks(ROWS_PER_INSERT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (merchant, state) in chunk {
            rows.push((
                merchants::merchant_id.eq(merchant.merchant_id),
                merchants::name.eq(merchant.name),
                merchants::business_number.eq(merchant.business_number),
                merchants::bank_account.eq(merchant.bank_account),
                merchants::category.eq(merchant.category),
                merchants::receivable.eq(won_to_db(state.receivable)?),
                merchants::carried_negative.eq(won_to_db(state.carried_negative)?),
            ));
        }
        upsert!(
            connection,
            diesel::insert_into(merchants::table).values(&rows).on_conflict(merchants::merchant_id).do_update().set((
                merchants::name.eq(excluded(merchants::name)),
                merchants::business_number.eq(excluded(merchants::business_number)),
                merchants::bank_account.eq(excluded(merchants::bank_account)),
                merchants::category.eq(excluded(merchants::category)),
                merchants::receivable.eq(excluded(merchants::receivable)),
                merchants::carried_negative.eq(excluded(merchants::carried_negative)),
            ))
        )?;
    }
    Ok(())
}

pub fn load_merchants(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<(MerchantId, MerchantState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<MerchantBalanceRow> =
        load_keyed!(connection, merchants::table.select(MerchantBalanceRow::as_select()), merchants::merchant_id, ids)?;
    rows.into_iter()
        .map(|row| {
            let id = MerchantId::parse(&row.merchant_id).map_err(|error| corrupt("merchant id", error))?;
            Ok((
                id,
                MerchantState { receivable: db_won(row.receivable), carried_negative: db_won(row.carried_negative) },
            ))
        })
        .collect()
}

/// A merchant's balances, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MerchantBalanceRow {
    merchant_id: String,
    receivable: i64,
    carried_negative: i64,
}

/// Writes the batch's changed balances: one kept-prepared statement a merchant on SQLite, one
/// statement over arrays (`unnest`) on PostgreSQL (see `wallets::save`).
pub fn save(connection: &mut DbConn, changed: &[(MerchantId, MerchantState)]) -> StoreResult<()> {
    if let DbConn::Pg(pg) = connection {
        if changed.is_empty() {
            return Ok(());
        }
        let mut columns: (Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
        for (id, merchant) in changed {
            columns.0.push(id.as_str());
            columns.1.push(won_to_db(merchant.receivable)?);
            columns.2.push(won_to_db(merchant.carried_negative)?);
        }
        let updated = diesel::sql_query(
            "UPDATE merchants AS m SET receivable = v.receivable, carried_negative = v.carried_negative \
             FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v (merchant_id, receivable, carried_negative) \
             WHERE m.merchant_id = v.merchant_id",
        )
        .bind::<Array<Text>, _>(&columns.0)
        .bind::<Array<BigInt>, _>(&columns.1)
        .bind::<Array<BigInt>, _>(&columns.2)
        .execute(pg)?;
        return expect_rows("merchants", updated, columns.0.len());
    }
    for (id, merchant) in changed {
        fixed::execute(
            connection,
            fixed!(
                "UPDATE merchants SET receivable = ?, carried_negative = ? WHERE merchant_id = ?",
                vec![
                    Bind::BigInt(won_to_db(merchant.receivable)?),
                    Bind::BigInt(won_to_db(merchant.carried_negative)?),
                    Bind::Text(id.as_str()),
                ],
            ),
        )?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// The sum of all merchant receivables, in whole won.
pub fn receivable_sum(connection: &mut DbConn) -> StoreResult<i64> {
    // PostgreSQL's SUM(BIGINT) is NUMERIC; the cast makes one query serve both backends.
    let merchants: Total =
        diesel::sql_query("SELECT CAST(COALESCE(SUM(receivable), 0) AS BIGINT) AS total FROM merchants")
            .get_result(connection)?;
    Ok(merchants.total)
}
