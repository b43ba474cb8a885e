//! The `settlements` and `settlement_lines` tables: a closed business date, its totals and one
//! line per merchant. Read for the ledger (a date closed twice returns the stored settlement),
//! the admin listing, the status page and the settlement file; written once, by the close.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use wallet_core::{BusinessDate, MerchantId, Settlement, TxId};

use super::money::{count_to_db, db_won, won_to_db};
use super::schema::*;
use super::time::millis;
use super::{corrupt, DbConn, StoreResult};

/// A closed date's settlement header, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = settlements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SettlementHeaderRow {
    tx_id: String,
    total_net_payable: i64,
    total_fee: i64,
}

/// One merchant's line of a closed date's settlement, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = settlement_lines, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SettlementLineRow {
    merchant_id: String,
    payments_count: i64,
    payments_amount: i64,
    refunds_count: i64,
    refunds_amount: i64,
    fee: i64,
    carried_in: i64,
    net_payable: i64,
}

/// A closed date's settlement, if the date has been closed.
pub fn load_settlement(connection: &mut DbConn, date: BusinessDate) -> StoreResult<Option<Settlement>> {
    let date_text = date.to_string();
    let header: Option<SettlementHeaderRow> = settlements::table
        .filter(settlements::business_date.eq(&date_text))
        .select(SettlementHeaderRow::as_select())
        .load(connection)?
        .into_iter()
        .next();
    let Some(header) = header else {
        return Ok(None);
    };
    let rows: Vec<SettlementLineRow> = settlement_lines::table
        .filter(settlement_lines::business_date.eq(&date_text))
        .order(settlement_lines::merchant_id)
        .select(SettlementLineRow::as_select())
        .load(connection)?;
    let lines = rows
        .into_iter()
        .map(|row| {
            Ok(wallet_core::SettlementLine {
                merchant_id: MerchantId::parse(&row.merchant_id)
                    .map_err(|error| corrupt("settlement merchant", error))?,
                payments_count: u64::try_from(row.payments_count).map_err(|error| corrupt("payments_count", error))?,
                payments_amount: db_won(row.payments_amount),
                refunds_count: u64::try_from(row.refunds_count).map_err(|error| corrupt("refunds_count", error))?,
                refunds_amount: db_won(row.refunds_amount),
                fee: db_won(row.fee),
                carried_in: db_won(row.carried_in),
                net_payable: db_won(row.net_payable),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Some(Settlement {
        business_date: date,
        tx_id: TxId::parse(&header.tx_id).map_err(|error| corrupt("settlement tx", error))?,
        lines,
        total_net_payable: db_won(header.total_net_payable),
        total_fee: db_won(header.total_fee),
    }))
}

/// Inserts the settlements a batch closed, header and lines, at `now`.
pub fn save(connection: &mut DbConn, closed: &[Settlement], now: DateTime<Utc>) -> StoreResult<()> {
    for settlement in closed {
        let date = settlement.business_date.to_string();
        diesel::insert_into(settlements::table)
            .values((
                settlements::business_date.eq(&date),
                settlements::tx_id.eq(settlement.tx_id.as_str()),
                settlements::total_net_payable.eq(won_to_db(settlement.total_net_payable)?),
                settlements::total_fee.eq(won_to_db(settlement.total_fee)?),
                settlements::closed_at_ms.eq(millis(now)),
            ))
            .execute(connection)?;
        for line in &settlement.lines {
            diesel::insert_into(settlement_lines::table)
                .values((
                    settlement_lines::business_date.eq(&date),
                    settlement_lines::merchant_id.eq(line.merchant_id.as_str()),
                    settlement_lines::payments_count.eq(count_to_db(line.payments_count)?),
                    settlement_lines::payments_amount.eq(won_to_db(line.payments_amount)?),
                    settlement_lines::refunds_count.eq(count_to_db(line.refunds_count)?),
                    settlement_lines::refunds_amount.eq(won_to_db(line.refunds_amount)?),
                    settlement_lines::fee.eq(won_to_db(line.fee)?),
                    settlement_lines::carried_in.eq(won_to_db(line.carried_in)?),
                    settlement_lines::net_payable.eq(won_to_db(line.net_payable)?),
                ))
                .execute(connection)?;
        }
    }
    Ok(())
}

/// A closed business date with its totals.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = settlements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ClosedDateRow {
    pub business_date: String,
    pub total_net_payable: i64,
    pub total_fee: i64,
    pub closed_at_ms: i64,
}

/// Records `date` as closed by the outgoing operator of a handover (its settlement and lines
/// are that operator's): a settlement of no lines, so that this system counts the date as closed
/// (closing it again moves nothing, and an export says it is the last closed) without paying
/// anybody for it. Nothing changes when the date is closed here already.
pub fn record_closed_before_handover(
    connection: &mut DbConn,
    date: BusinessDate,
    tx_id: &TxId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let date = date.to_string();
    let row = (
        settlements::business_date.eq(&date),
        settlements::tx_id.eq(tx_id.as_str()),
        settlements::total_net_payable.eq(0i64),
        settlements::total_fee.eq(0i64),
        settlements::closed_at_ms.eq(millis(now)),
    );
    upsert!(
        connection,
        diesel::insert_into(settlements::table).values(row).on_conflict(settlements::business_date).do_nothing()
    )?;
    Ok(())
}

/// The last business date closed.
pub fn last_settlement(connection: &mut DbConn) -> StoreResult<Option<ClosedDateRow>> {
    Ok(settlements::table
        .order(settlements::business_date.desc())
        .select(ClosedDateRow::as_select())
        .first(connection)
        .optional()?)
}

/// A closed business date with its totals and the number of merchants settled.
pub struct ClosedDate {
    pub closed: ClosedDateRow,
    pub merchants: i64,
}

/// The dates closed from `from` through `to` (`YYYY-MM-DD`), oldest first, with their totals.
pub fn closed_dates(connection: &mut DbConn, from: &str, to: &str) -> StoreResult<Vec<ClosedDate>> {
    let closed: Vec<ClosedDateRow> = settlements::table
        .filter(settlements::business_date.ge(from))
        .filter(settlements::business_date.le(to))
        .order(settlements::business_date.asc())
        .select(ClosedDateRow::as_select())
        .load(connection)?;
    let mut dates = Vec::with_capacity(closed.len());
    for closed in closed {
        let merchants: i64 = settlement_lines::table
            .filter(settlement_lines::business_date.eq(&closed.business_date))
            .count()
            .get_result(connection)?;
        dates.push(ClosedDate { closed, merchants });
    }
    Ok(dates)
}

/// The oldest of `dates` (`YYYY-MM-DD`, oldest first) that had payments or refunds and is not
/// closed: two lookups by key a date, so the status page costs the same in a city of any size.
pub fn oldest_open_date_with_activity(connection: &mut DbConn, dates: &[String]) -> StoreResult<Option<String>> {
    for date in dates {
        let active: Option<String> = daily_sales::table
            .filter(daily_sales::business_date.eq(date))
            .select(daily_sales::business_date)
            .first(connection)
            .optional()?;
        if active.is_none() {
            continue;
        }
        let closed: Option<String> = settlements::table
            .filter(settlements::business_date.eq(date))
            .select(settlements::business_date)
            .first(connection)
            .optional()?;
        if closed.is_none() {
            return Ok(Some(date.clone()));
        }
    }
    Ok(None)
}

/// One line of a closed date's settlement with the merchant's identity: the settlement file's row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = settlement_lines, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SettlementRow {
    pub merchant_id: String,
    #[diesel(select_expression = merchants::name)]
    pub name: String,
    #[diesel(select_expression = merchants::business_number)]
    pub business_number: String,
    #[diesel(select_expression = merchants::bank_account)]
    pub bank_account: String,
    pub payments_count: i64,
    pub payments_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
    pub fee: i64,
    pub carried_in: i64,
    pub net_payable: i64,
}

/// Up to `limit` settlement rows of `business_date` after merchant `after`, in merchant id order:
/// pages of the settlement file, so a city's file is never held in memory whole.
pub fn settlement_rows(
    connection: &mut DbConn,
    business_date: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<SettlementRow>> {
    Ok(settlement_lines::table
        .inner_join(merchants::table.on(merchants::merchant_id.eq(settlement_lines::merchant_id)))
        .filter(settlement_lines::business_date.eq(business_date))
        .filter(settlement_lines::merchant_id.gt(after.unwrap_or("")))
        .order(settlement_lines::merchant_id)
        .limit(limit)
        .select(SettlementRow::as_select())
        .load(connection)?)
}

/// A closed date's totals.
#[derive(Queryable, Selectable, Debug, Clone, Copy)]
#[diesel(table_name = settlements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SettlementTotals {
    pub total_net_payable: i64,
    pub total_fee: i64,
}

/// A closed date's totals, or `None` if it is not closed.
pub fn settlement_totals(connection: &mut DbConn, business_date: &str) -> StoreResult<Option<SettlementTotals>> {
    Ok(settlements::table
        .filter(settlements::business_date.eq(business_date))
        .select(SettlementTotals::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

/// One merchant's line of a closed date, as the merchant's portal shows it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = settlement_lines, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MerchantLineRow {
    pub business_date: String,
    pub payments_amount: i64,
    pub refunds_amount: i64,
    pub fee: i64,
    pub carried_in: i64,
    pub net_payable: i64,
}

/// The merchant's settlement lines of the dates closed from `from` through `to` (`YYYY-MM-DD`,
/// which sort as dates), oldest first: a line exists only for a closed date with activity or a
/// carry. The caller bounds the range, so the answer is at most one row a day.
pub fn merchant_lines(
    connection: &mut DbConn,
    merchant_id: &str,
    from: &str,
    to: &str,
) -> StoreResult<Vec<MerchantLineRow>> {
    Ok(settlement_lines::table
        .filter(settlement_lines::merchant_id.eq(merchant_id))
        .filter(settlement_lines::business_date.ge(from))
        .filter(settlement_lines::business_date.le(to))
        .order(settlement_lines::business_date)
        .select(MerchantLineRow::as_select())
        .load(connection)?)
}
