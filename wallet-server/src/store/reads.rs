//! Queries that only read: the citizen's history, a merchant's sales, the trial balance, the
//! settlement file, and the idempotency records the writer consults.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::schema::*;
use super::{DbConn, StoreResult};

pub struct HistoryRow {
    pub seq: i64,
    pub item_id: String,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub at_ms: i64,
    pub counterparty: Option<String>,
}

type HistoryTuple = (i64, String, String, i64, i64, i64, Option<String>);

/// Up to `limit` items of a wallet's history older than `before_seq`, newest first.
pub fn history_page(
    connection: &mut DbConn,
    wallet_id: &str,
    before_seq: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<HistoryRow>> {
    let rows: Vec<HistoryTuple> = history::table
        .filter(history::wallet_id.eq(wallet_id))
        .filter(history::seq.lt(before_seq.unwrap_or(i64::MAX)))
        .order(history::seq.desc())
        .limit(limit)
        .select((
            history::seq,
            history::item_id,
            history::kind,
            history::amount,
            history::balance_after,
            history::at_ms,
            history::counterparty,
        ))
        .load(connection)?;
    Ok(rows
        .into_iter()
        .map(|(seq, item_id, kind, amount, balance_after, at_ms, counterparty)| HistoryRow {
            seq,
            item_id,
            kind,
            amount,
            balance_after,
            at_ms,
            counterparty,
        })
        .collect())
}

/// One merchant's sales row for a date: (payments_count, payments_amount, refunds_count, refunds_amount).
pub fn merchant_sales(
    connection: &mut DbConn,
    merchant_id: &str,
    business_date: &str,
) -> StoreResult<Option<(i64, i64, i64, i64)>> {
    Ok(daily_sales::table
        .filter(daily_sales::merchant_id.eq(merchant_id))
        .filter(daily_sales::business_date.eq(business_date))
        .select((
            daily_sales::payments_count,
            daily_sales::payments_amount,
            daily_sales::refunds_count,
            daily_sales::refunds_amount,
        ))
        .first(connection)
        .optional()?)
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// Sum of all wallet balances and of all merchant receivables, in whole won.
pub fn account_sums(connection: &mut DbConn) -> StoreResult<(i64, i64)> {
    // PostgreSQL's SUM(BIGINT) is NUMERIC; the cast makes one query serve both backends.
    let wallets: Total = diesel::sql_query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS total FROM wallets")
        .get_result(connection)?;
    let merchants: Total =
        diesel::sql_query("SELECT CAST(COALESCE(SUM(receivable), 0) AS BIGINT) AS total FROM merchants")
            .get_result(connection)?;
    Ok((wallets.total, merchants.total))
}

/// A stored idempotent answer: (request_hash, status, body, created_at_ms).
pub fn idempotent_answer(
    connection: &mut DbConn,
    principal_id: &str,
    key: &str,
) -> StoreResult<Option<(String, i32, String, i64)>> {
    Ok(idempotency::table
        .filter(idempotency::principal_id.eq(principal_id))
        .filter(idempotency::idem_key.eq(key))
        .select((idempotency::request_hash, idempotency::status, idempotency::body, idempotency::created_at_ms))
        .first(connection)
        .optional()?)
}

pub fn save_idempotent_answer(
    connection: &mut DbConn,
    principal_id: &str,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &str,
    now_ms: i64,
) -> StoreResult<()> {
    diesel::insert_into(idempotency::table)
        .values((
            idempotency::principal_id.eq(principal_id),
            idempotency::idem_key.eq(key),
            idempotency::request_hash.eq(request_hash),
            idempotency::status.eq(i32::from(status)),
            idempotency::body.eq(body),
            idempotency::created_at_ms.eq(now_ms),
        ))
        .execute(connection)?;
    Ok(())
}

/// One line of a closed date's settlement with the merchant's identity: the settlement file's row.
pub struct SettlementRow {
    pub merchant_id: String,
    pub name: String,
    pub business_number: String,
    pub bank_account: String,
    pub payments_count: i64,
    pub payments_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
    pub fee: i64,
    pub carried_in: i64,
    pub net_payable: i64,
}

type SettlementTuple = (String, String, String, String, i64, i64, i64, i64, i64, i64, i64);

/// Up to `limit` settlement rows of `business_date` after merchant `after`, in merchant id order:
/// pages of the settlement file, so a city's file is never held in memory whole.
pub fn settlement_rows(
    connection: &mut DbConn,
    business_date: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<SettlementRow>> {
    let rows: Vec<SettlementTuple> = settlement_lines::table
        .inner_join(merchants::table.on(merchants::merchant_id.eq(settlement_lines::merchant_id)))
        .filter(settlement_lines::business_date.eq(business_date))
        .filter(settlement_lines::merchant_id.gt(after.unwrap_or("")))
        .order(settlement_lines::merchant_id)
        .limit(limit)
        .select((
            settlement_lines::merchant_id,
            merchants::name,
            merchants::business_number,
            merchants::bank_account,
            settlement_lines::payments_count,
            settlement_lines::payments_amount,
            settlement_lines::refunds_count,
            settlement_lines::refunds_amount,
            settlement_lines::fee,
            settlement_lines::carried_in,
            settlement_lines::net_payable,
        ))
        .load(connection)?;
    Ok(rows
        .into_iter()
        .map(|row| SettlementRow {
            merchant_id: row.0,
            name: row.1,
            business_number: row.2,
            bank_account: row.3,
            payments_count: row.4,
            payments_amount: row.5,
            refunds_count: row.6,
            refunds_amount: row.7,
            fee: row.8,
            carried_in: row.9,
            net_payable: row.10,
        })
        .collect())
}

/// A closed date's totals: (total_net_payable, total_fee), or `None` if it is not closed.
pub fn settlement_totals(connection: &mut DbConn, business_date: &str) -> StoreResult<Option<(i64, i64)>> {
    Ok(settlements::table
        .filter(settlements::business_date.eq(business_date))
        .select((settlements::total_net_payable, settlements::total_fee))
        .first(connection)
        .optional()?)
}
