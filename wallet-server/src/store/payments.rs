//! The `payments` table: each payment with what its refunds have taken back so far. Read for
//! the ledger (locked on PostgreSQL); written by the writer's batches (both dialects below).

use diesel::prelude::*;
use diesel::upsert::excluded;
use wallet_core::{AllowancePart, GrantId, MerchantId, Month, PaymentState, PurseParts, TxId, WalletId};

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
    bonus_paid: i64,
    own_restored: i64,
    bonus_restored: i64,
}

/// What one allowance paid of a payment, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payment_allowances, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PaymentAllowanceRow {
    payment_id: String,
    grant_id: String,
    paid: i64,
    restored: i64,
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
    let mut parts = load_allowance_parts(connection, ids)?;
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
                purses: PurseParts {
                    bonus_paid: db_won(row.bonus_paid),
                    own_restored: db_won(row.own_restored),
                    bonus_restored: db_won(row.bonus_restored),
                    allowances: parts.remove(&row.payment_id).unwrap_or_default(),
                },
            };
            Ok((TxId::parse(&row.payment_id).map_err(|error| corrupt("payment id", error))?, state))
        })
        .collect()
}

/// The allowance parts of the payments `ids`, by payment, each in spending order. Most payments
/// have none; the rows are read without a lock, since their payment's row holds it.
fn load_allowance_parts(
    connection: &mut DbConn,
    ids: &[String],
) -> StoreResult<std::collections::HashMap<String, Vec<AllowancePart>>> {
    let rows: Vec<PaymentAllowanceRow> = payment_allowances::table
        .filter(payment_allowances::payment_id.eq_any(ids))
        .order((payment_allowances::payment_id, payment_allowances::position))
        .select(PaymentAllowanceRow::as_select())
        .load(connection)?;
    let mut parts: std::collections::HashMap<String, Vec<AllowancePart>> = Default::default();
    for row in rows {
        let grant = GrantId::parse(&row.grant_id).map_err(|error| corrupt("payment allowance grant", error))?;
        let part = AllowancePart { grant, paid: db_won(row.paid), restored: db_won(row.restored) };
        parts.entry(row.payment_id).or_default().push(part);
    }
    Ok(parts)
}

/// Writes the allowance parts of the batch's payments: new, or with what refunds restored.
fn save_allowance_parts(connection: &mut DbConn, changed: &[(TxId, PaymentState)]) -> StoreResult<()> {
    let mut rows = Vec::new();
    for (id, payment) in changed {
        for (position, part) in payment.purses.allowances.iter().enumerate() {
            rows.push((
                payment_allowances::payment_id.eq(id.as_str()),
                payment_allowances::grant_id.eq(part.grant.as_str()),
                payment_allowances::position.eq(i32::try_from(position).expect("a payment spends few allowances")),
                payment_allowances::paid.eq(won_to_db(part.paid)?),
                payment_allowances::restored.eq(won_to_db(part.restored)?),
            ));
        }
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        upsert!(
            connection,
            diesel::insert_into(payment_allowances::table)
                .values(chunk)
                .on_conflict((payment_allowances::payment_id, payment_allowances::grant_id))
                .do_update()
                .set(payment_allowances::restored.eq(excluded(payment_allowances::restored)))
        )?;
    }
    Ok(())
}

/// Writes the batch's new and refunded payments: one kept-prepared upsert a payment on SQLite, a
/// few hundred rows a statement on PostgreSQL; then their allowance parts.
pub fn save(connection: &mut DbConn, changed: &[(TxId, PaymentState)]) -> StoreResult<()> {
    save_payments(connection, changed)?;
    save_allowance_parts(connection, changed)
}

fn save_payments(connection: &mut DbConn, changed: &[(TxId, PaymentState)]) -> StoreResult<()> {
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
                payments::bonus_paid.eq(won_to_db(payment.purses.bonus_paid)?),
                payments::own_restored.eq(won_to_db(payment.purses.own_restored)?),
                payments::bonus_restored.eq(won_to_db(payment.purses.bonus_restored)?),
            ));
        }
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            upsert!(
                connection,
                diesel::insert_into(payments::table).values(chunk).on_conflict(payments::payment_id).do_update().set((
                    payments::refunded.eq(excluded(payments::refunded)),
                    payments::cashback_reversed.eq(excluded(payments::cashback_reversed)),
                    payments::eligible_returned.eq(excluded(payments::eligible_returned)),
                    payments::own_restored.eq(excluded(payments::own_restored)),
                    payments::bonus_restored.eq(excluded(payments::bonus_restored)),
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
                 refunded, cashback_reversed, eligible_returned, bonus_paid, own_restored, bonus_restored) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (payment_id) DO UPDATE SET refunded = excluded.refunded, \
                 cashback_reversed = excluded.cashback_reversed, eligible_returned = excluded.eligible_returned, \
                 own_restored = excluded.own_restored, bonus_restored = excluded.bonus_restored",
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
                    Bind::BigInt(won_to_db(payment.purses.bonus_paid)?),
                    Bind::BigInt(won_to_db(payment.purses.own_restored)?),
                    Bind::BigInt(won_to_db(payment.purses.bonus_restored)?),
                ],
            ),
        )?;
    }
    Ok(())
}

/// One of a merchant's payments as its portal lists them.
#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MerchantPaymentRow {
    pub payment_id: String,
    pub amount: i64,
    pub refunded: i64,
    pub cashback: i64,
    pub at_ms: i64,
}

/// Up to `limit` of the merchant's payments made in `[from_ms, until_ms)`, newest first (ties
/// by payment id, descending), after `before` = (at_ms, payment_id) of the previous page's last.
/// Served by the index `payments_by_merchant`.
pub fn merchant_payments(
    connection: &mut DbConn,
    merchant_id: &str,
    (from_ms, until_ms): (i64, i64),
    before: Option<(i64, &str)>,
    limit: i64,
) -> StoreResult<Vec<MerchantPaymentRow>> {
    let mut query = payments::table
        .filter(payments::merchant_id.eq(merchant_id))
        .filter(payments::at_ms.ge(from_ms))
        .filter(payments::at_ms.lt(until_ms))
        .order((payments::at_ms.desc(), payments::payment_id.desc()))
        .limit(limit)
        .select(MerchantPaymentRow::as_select())
        .into_boxed();
    if let Some((at_ms, payment_id)) = before {
        query = query.filter(
            payments::at_ms.lt(at_ms).or(payments::at_ms.eq(at_ms).and(payments::payment_id.lt(payment_id.to_owned()))),
        );
    }
    Ok(query.load(connection)?)
}
