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
    /// Whole won; what allowance programs with a revenue ceiling decide by.
    pub annual_revenue: Option<i64>,
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
                merchants::annual_revenue.eq(merchant.annual_revenue),
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
                // Not `annual_revenue`: a version 1 handover bundle has none, and a delta must
                // not erase what the city set since.
                merchants::receivable.eq(excluded(merchants::receivable)),
                merchants::carried_negative.eq(excluded(merchants::carried_negative)),
            ))
        )?;
    }
    Ok(())
}

/// Sets the annual revenue of merchants carried over by a handover bundle of version 2, which
/// says it (`None`: unknown); [`put_merchants`] keeps what is here, as a version 1 bundle has none.
pub fn set_annual_revenues(connection: &mut DbConn, revenues: &[(&str, Option<i64>)]) -> StoreResult<()> {
    for (merchant_id, revenue) in revenues {
        let updated = diesel::update(merchants::table.filter(merchants::merchant_id.eq(*merchant_id)))
            .set(merchants::annual_revenue.eq(*revenue))
            .execute(connection)?;
        expect_rows("merchant annual revenue", updated, 1)?;
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
                MerchantState {
                    receivable: db_won(row.receivable),
                    carried_negative: db_won(row.carried_negative),
                    category: row.category,
                    annual_revenue: row.annual_revenue.map(db_won),
                    suspended: row.suspended_at_ms.is_some(),
                },
            ))
        })
        .collect()
}

/// A merchant's balances and what programs decide eligibility by, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MerchantBalanceRow {
    merchant_id: String,
    receivable: i64,
    carried_negative: i64,
    category: Option<String>,
    annual_revenue: Option<i64>,
    /// Since when the city has suspended the merchant (`store::directory`); the ledger refuses
    /// its payments by it.
    suspended_at_ms: Option<i64>,
}

/// A merchant's details, as stored and shown to the city.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = merchants, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MerchantRecord {
    pub merchant_id: String,
    pub name: String,
    pub business_number: String,
    pub bank_account: String,
    pub category: Option<String>,
    pub annual_revenue: Option<i64>,
}

/// What `PATCH /v1/admin/merchants/{id}` may change; `None` leaves a field as it is, and
/// `Some(None)` clears an optional one.
#[derive(Debug, Default, Clone)]
pub struct MerchantPatch {
    pub name: Option<String>,
    pub bank_account: Option<String>,
    pub category: Option<Option<String>>,
    pub annual_revenue: Option<Option<i64>>,
}

/// One merchant's details.
pub fn record(connection: &mut DbConn, merchant_id: &str) -> StoreResult<Option<MerchantRecord>> {
    Ok(merchants::table
        .filter(merchants::merchant_id.eq(merchant_id))
        .select(MerchantRecord::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

/// Changes a merchant's details (never its balances, which only the writer writes) and returns
/// them before and after; `None` for an unknown merchant. The writer reads category and revenue
/// with the balances, so a payment after this commit decides eligibility by the new values.
pub fn patch(
    connection: &mut DbConn,
    merchant_id: &str,
    change: &MerchantPatch,
) -> StoreResult<Option<(MerchantRecord, MerchantRecord)>> {
    let Some(before) = record(connection, merchant_id)? else {
        return Ok(None);
    };
    let after = MerchantRecord {
        merchant_id: before.merchant_id.clone(),
        name: change.name.clone().unwrap_or_else(|| before.name.clone()),
        business_number: before.business_number.clone(),
        bank_account: change.bank_account.clone().unwrap_or_else(|| before.bank_account.clone()),
        category: change.category.clone().unwrap_or_else(|| before.category.clone()),
        annual_revenue: change.annual_revenue.unwrap_or(before.annual_revenue),
    };
    let updated = diesel::update(merchants::table.filter(merchants::merchant_id.eq(merchant_id)))
        .set((
            merchants::name.eq(&after.name),
            merchants::bank_account.eq(&after.bank_account),
            merchants::category.eq(&after.category),
            merchants::annual_revenue.eq(after.annual_revenue),
        ))
        .execute(connection)?;
    expect_rows("merchant details", updated, 1)?;
    Ok(Some((before, after)))
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
