//! The `payments` table: each payment with what its refunds have taken back so far. Read for
//! the ledger (locked on PostgreSQL); written by the writer's batches (both dialects below).

use diesel::prelude::*;
use diesel::upsert::excluded;
use wallet_core::{MerchantId, Month, PaymentState, TxId, WalletId};

use super::fixed::{self, Bind, ROWS_PER_INSERT};
use super::money::{db_won, won_to_db};
use super::schema::*;
use super::time::{instant, millis};
use super::{corrupt, DbConn, StoreResult};

/// A payment, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PaymentRow {
    payment_id: String,
    merchant_id: String,
    wallet_id: String,
    amount: i64,
    cashback: i64,
    eligible: i64,
    month: String,
    at_ms: i64,
    refunded: i64,
    cashback_reversed: i64,
    eligible_returned: i64,
}

pub fn load_payments(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<(TxId, PaymentState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<PaymentRow> = load_locked!(
        connection,
        payments::table
            .filter(payments::payment_id.eq_any(ids))
            .order(payments::payment_id)
            .select(PaymentRow::as_select())
    )?;
    rows.into_iter()
        .map(|row| {
            let amount = db_won(row.amount);
            let state = PaymentState {
                merchant: MerchantId::parse(&row.merchant_id).map_err(|error| corrupt("payment merchant", error))?,
                wallet: WalletId::parse(&row.wallet_id).map_err(|error| corrupt("payment wallet", error))?,
                amount: wallet_core::Amount::try_from(amount).map_err(|error| corrupt("payment amount", error))?,
                cashback: db_won(row.cashback),
                eligible: db_won(row.eligible),
                month: Month::parse(&row.month).map_err(|error| corrupt("payment month", error))?,
                at: instant(row.at_ms)?,
                refunded: db_won(row.refunded),
                cashback_reversed: db_won(row.cashback_reversed),
                eligible_returned: db_won(row.eligible_returned),
            };
            Ok((TxId::parse(&row.payment_id).map_err(|error| corrupt("payment id", error))?, state))
        })
        .collect()
}

/// Writes the batch's new and refunded payments: one kept-prepared upsert a payment on SQLite, a
/// few hundred rows a statement on PostgreSQL.
pub fn save(connection: &mut DbConn, changed: &[(TxId, PaymentState)]) -> StoreResult<()> {
    if matches!(connection, DbConn::Pg(_)) {
        let mut rows = Vec::with_capacity(changed.len());
        for (id, payment) in changed {
            rows.push((
                payments::payment_id.eq(id.as_str()),
                payments::merchant_id.eq(payment.merchant.as_str()),
                payments::wallet_id.eq(payment.wallet.as_str()),
                payments::amount.eq(won_to_db(payment.amount.won())?),
                payments::cashback.eq(won_to_db(payment.cashback)?),
                payments::eligible.eq(won_to_db(payment.eligible)?),
                payments::month.eq(payment.month.to_string()),
                payments::at_ms.eq(millis(payment.at)),
                payments::refunded.eq(won_to_db(payment.refunded)?),
                payments::cashback_reversed.eq(won_to_db(payment.cashback_reversed)?),
                payments::eligible_returned.eq(won_to_db(payment.eligible_returned)?),
            ));
        }
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            upsert!(
                connection,
                diesel::insert_into(payments::table).values(chunk).on_conflict(payments::payment_id).do_update().set((
                    payments::refunded.eq(excluded(payments::refunded)),
                    payments::cashback_reversed.eq(excluded(payments::cashback_reversed)),
                    payments::eligible_returned.eq(excluded(payments::eligible_returned)),
                ))
            )?;
        }
        return Ok(());
    }
    for (id, payment) in changed {
        let month = payment.month.to_string();
        fixed::execute(
            connection,
            fixed!(
                "INSERT INTO payments (payment_id, merchant_id, wallet_id, amount, cashback, eligible, month, at_ms, \
                 refunded, cashback_reversed, eligible_returned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (payment_id) DO UPDATE SET refunded = excluded.refunded, \
                 cashback_reversed = excluded.cashback_reversed, eligible_returned = excluded.eligible_returned",
                vec![
                    Bind::Text(id.as_str()),
                    Bind::Text(payment.merchant.as_str()),
                    Bind::Text(payment.wallet.as_str()),
                    Bind::BigInt(won_to_db(payment.amount.won())?),
                    Bind::BigInt(won_to_db(payment.cashback)?),
                    Bind::BigInt(won_to_db(payment.eligible)?),
                    Bind::Text(&month),
                    Bind::BigInt(millis(payment.at)),
                    Bind::BigInt(won_to_db(payment.refunded)?),
                    Bind::BigInt(won_to_db(payment.cashback_reversed)?),
                    Bind::BigInt(won_to_db(payment.eligible_returned)?),
                ],
            ),
        )?;
    }
    Ok(())
}
