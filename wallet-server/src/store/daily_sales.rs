//! The `daily_sales` table: each merchant's payments and refunds of a business date, what a
//! close settles. Read for the ledger (locked on PostgreSQL), for the merchant's sales and the
//! status page; written by the writer's batches (both dialects below).

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use wallet_core::{BusinessDate, DaySales, MerchantId};

use super::fixed::{self, Bind};
use super::money::{count_to_db, db_won, won_to_db};
use super::schema::*;
use super::{corrupt, expect_rows, DbConn, StoreResult};

/// The sales rows of one business date: of the given merchants, or of every merchant.
pub fn load_sales(
    connection: &mut DbConn,
    date: BusinessDate,
    merchants: Option<&[String]>,
) -> StoreResult<Vec<(MerchantId, DaySales)>> {
    let date_text = date.to_string();
    let base = daily_sales::table.filter(daily_sales::business_date.eq(&date_text));
    let rows: Vec<SalesRow> = match merchants {
        Some([]) => Vec::new(),
        Some(ids) => load_keyed!(connection, base.select(SalesRow::as_select()), daily_sales::merchant_id, ids)?,
        None => load_locked!(connection, base.order(daily_sales::merchant_id).select(SalesRow::as_select()))?,
    };
    rows.into_iter()
        .map(|row| {
            let sales = DaySales {
                payments_count: u64::try_from(row.payments_count).map_err(|error| corrupt("payments_count", error))?,
                payments_amount: db_won(row.payments_amount),
                refunds_count: u64::try_from(row.refunds_count).map_err(|error| corrupt("refunds_count", error))?,
                refunds_amount: db_won(row.refunds_amount),
            };
            Ok((MerchantId::parse(&row.merchant_id).map_err(|error| corrupt("sales merchant", error))?, sales))
        })
        .collect()
}

/// One merchant's sales of a date, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = daily_sales, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SalesRow {
    merchant_id: String,
    payments_count: i64,
    payments_amount: i64,
    refunds_count: i64,
    refunds_amount: i64,
}

/// Writes the batch's sales rows (added, or replaced): one kept-prepared upsert a row on SQLite,
/// one statement over arrays (`unnest`) on PostgreSQL.
pub fn save(connection: &mut DbConn, changed: &[((BusinessDate, MerchantId), DaySales)]) -> StoreResult<()> {
    if let DbConn::Pg(pg) = connection {
        if changed.is_empty() {
            return Ok(());
        }
        let mut columns = SalesColumns::default();
        for ((date, merchant), sales) in changed {
            columns.0.push(date.to_string());
            columns.1.push(merchant.as_str());
            columns.2.push(count_to_db(sales.payments_count)?);
            columns.3.push(won_to_db(sales.payments_amount)?);
            columns.4.push(count_to_db(sales.refunds_count)?);
            columns.5.push(won_to_db(sales.refunds_amount)?);
        }
        let written = diesel::sql_query(
            "INSERT INTO daily_sales (business_date, merchant_id, payments_count, payments_amount, refunds_count, \
             refunds_amount) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], \
             $6::bigint[]) ON CONFLICT (business_date, merchant_id) DO UPDATE SET \
             payments_count = excluded.payments_count, payments_amount = excluded.payments_amount, \
             refunds_count = excluded.refunds_count, refunds_amount = excluded.refunds_amount",
        )
        .bind::<Array<Text>, _>(&columns.0)
        .bind::<Array<Text>, _>(&columns.1)
        .bind::<Array<BigInt>, _>(&columns.2)
        .bind::<Array<BigInt>, _>(&columns.3)
        .bind::<Array<BigInt>, _>(&columns.4)
        .bind::<Array<BigInt>, _>(&columns.5)
        .execute(pg)?;
        return expect_rows("daily sales", written, columns.0.len());
    }
    for ((date, merchant), sales) in changed {
        let date = date.to_string();
        fixed::execute(
            connection,
            fixed!(
                "INSERT INTO daily_sales (business_date, merchant_id, payments_count, payments_amount, \
                 refunds_count, refunds_amount) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (business_date, merchant_id) DO UPDATE SET payments_count = excluded.payments_count, \
                 payments_amount = excluded.payments_amount, refunds_count = excluded.refunds_count, \
                 refunds_amount = excluded.refunds_amount",
                vec![
                    Bind::Text(&date),
                    Bind::Text(merchant.as_str()),
                    Bind::BigInt(count_to_db(sales.payments_count)?),
                    Bind::BigInt(won_to_db(sales.payments_amount)?),
                    Bind::BigInt(count_to_db(sales.refunds_count)?),
                    Bind::BigInt(won_to_db(sales.refunds_amount)?),
                ],
            ),
        )?;
    }
    Ok(())
}

/// A batch's daily sales rows as columns, for `unnest` (date, merchant, payments count and
/// amount, refunds count and amount).
type SalesColumns<'a> = (Vec<String>, Vec<&'a str>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);

/// Sales of a date, of one merchant or summed over all: payments and refunds, counted and in won.
#[derive(Queryable, Selectable, QueryableByName, Default, Debug, Clone, Copy, PartialEq, Eq)]
#[diesel(table_name = daily_sales, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SalesCounts {
    pub payments_count: i64,
    pub payments_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
}

/// One merchant's sales row for a date.
pub fn merchant_sales(
    connection: &mut DbConn,
    merchant_id: &str,
    business_date: &str,
) -> StoreResult<Option<SalesCounts>> {
    Ok(daily_sales::table
        .filter(daily_sales::merchant_id.eq(merchant_id))
        .filter(daily_sales::business_date.eq(business_date))
        .select(SalesCounts::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

/// All merchants' sales of one business date summed. Reads one index range: the merchants with
/// sales that day.
pub fn day_sales(connection: &mut DbConn, business_date: &str) -> StoreResult<SalesCounts> {
    // PostgreSQL's SUM(BIGINT) is NUMERIC; the casts make one query serve both backends.
    let sums: SalesCounts = diesel::sql_query(
        "SELECT CAST(COALESCE(SUM(payments_count), 0) AS BIGINT) AS payments_count, \
         CAST(COALESCE(SUM(payments_amount), 0) AS BIGINT) AS payments_amount, \
         CAST(COALESCE(SUM(refunds_count), 0) AS BIGINT) AS refunds_count, \
         CAST(COALESCE(SUM(refunds_amount), 0) AS BIGINT) AS refunds_amount \
         FROM daily_sales WHERE business_date = $1",
    )
    .bind::<diesel::sql_types::Text, _>(business_date)
    .get_result(connection)?;
    Ok(sums)
}
