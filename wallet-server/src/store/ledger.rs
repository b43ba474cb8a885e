//! Loading the accounts a batch touches into a [`Book`], and writing a batch's changes back.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::upsert::excluded;
use wallet_core::{
    Account, BudgetState, BusinessDate, Changes, DaySales, HistoryItem, MerchantId, MerchantState, Month, PaymentCode,
    PaymentCodeState, PaymentState, Policy, Rate, Settlement, SystemBalances, Transaction, TxId, WalletId, WalletState,
    Won,
};

use super::fixed::{self, Bind};
use super::schema::*;
use super::{DbConn, StoreError, StoreResult};

pub fn won(value: i64) -> Won {
    Won::from_i64(value)
}

pub fn cents(value: Won) -> StoreResult<i64> {
    value.to_i64().ok_or_else(|| StoreError::Corrupt(format!("amount {value} does not fit a BIGINT")))
}

pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn instant(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms is out of range")))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

/// The city row's policy, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger_state, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PolicyRow {
    cashback_rate: String,
    cashback_monthly_spend_cap: i64,
    monthly_charge_limit: i64,
    holding_limit: i64,
    merchant_fee_rate: String,
}

/// The city row: policy, budget and system balances, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger_state, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct StateRow {
    #[diesel(embed)]
    policy: PolicyRow,
    budget_funded: i64,
    budget_paid_out: i64,
    budget_reversed: i64,
    bank_clearing: i64,
    settlement_payouts: i64,
    fee_income: i64,
    handover_opening: i64,
}

/// The city-wide row: policy, budget and system balances (locked on PostgreSQL).
pub fn load_state(connection: &mut DbConn, lock: bool) -> StoreResult<(Policy, BudgetState, SystemBalances)> {
    // A macro, not a value: the selection is typed per backend, and the locked load builds it
    // for each.
    macro_rules! query {
        () => {
            ledger_state::table.filter(ledger_state::id.eq(1)).select(StateRow::as_select())
        };
    }
    let rows: Vec<StateRow> = if lock { load_locked!(connection, query!())? } else { query!().load(connection)? };
    let row = rows.into_iter().next().ok_or_else(|| StoreError::Corrupt("ledger_state row is missing".into()))?;
    let policy = policy_of(row.policy)?;
    let budget =
        BudgetState { funded: won(row.budget_funded), paid_out: won(row.budget_paid_out), reversed: won(row.budget_reversed) };
    let system = SystemBalances {
        bank_clearing: won(row.bank_clearing),
        settlement_payouts: won(row.settlement_payouts),
        fee_income: won(row.fee_income),
        handover_opening: won(row.handover_opening),
    };
    Ok((policy, budget, system))
}


/// A wallet as the ledger reads it: its id, balance and this month's counters.
#[derive(Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct WalletRow {
    wallet_id: String,
    #[diesel(embed)]
    state: WalletStateRow,
}

/// A wallet as the writer loads it: with its newest history item.
#[derive(Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LoadedWalletRow {
    #[diesel(embed)]
    wallet: WalletRow,
    history_head: Option<i64>,
}

/// A citizen's wallet with the policy in force (`GET /v1/wallet`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct WalletViewRow {
    #[diesel(embed)]
    wallet: WalletRow,
    #[diesel(embed)]
    policy: PolicyRow,
}

fn policy_of(row: PolicyRow) -> StoreResult<Policy> {
    Ok(Policy {
        cashback_rate: Rate::parse(&row.cashback_rate).map_err(|error| corrupt("cashback_rate", error))?,
        cashback_monthly_spend_cap: won(row.cashback_monthly_spend_cap),
        monthly_charge_limit: won(row.monthly_charge_limit),
        holding_limit: won(row.holding_limit),
        merchant_fee_rate: Rate::parse(&row.merchant_fee_rate).map_err(|error| corrupt("merchant_fee_rate", error))?,
    })
}

/// A citizen's wallet id, its state and the policy in force, in one statement (one read
/// transaction): what `GET /v1/wallet` shows. Not locked: a view, never a basis for a write.
pub fn citizen_wallet_view(
    connection: &mut DbConn,
    citizen_id: &str,
) -> StoreResult<Option<(String, WalletState, Policy)>> {
    let rows: Vec<WalletViewRow> = wallets::table
        .inner_join(ledger_state::table.on(ledger_state::id.eq(1)))
        .filter(wallets::citizen_id.eq(citizen_id))
        .select(WalletViewRow::as_select())
        .load(connection)?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let state = wallet_state(row.wallet.state)?;
    Ok(Some((row.wallet.wallet_id, state, policy_of(row.policy)?)))
}

/// The wallets `ids`, locked on PostgreSQL; their newest history items go into `heads`.
pub fn load_wallets(
    connection: &mut DbConn,
    ids: &[String],
    heads: &mut HistoryHeads,
) -> StoreResult<Vec<(WalletId, WalletState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<LoadedWalletRow> =
        load_keyed!(connection, wallets::table.select(LoadedWalletRow::as_select()), wallets::wallet_id, ids)?;
    rows.into_iter()
        .map(|row| {
            let state = wallet_state(row.wallet.state)?;
            let id = WalletId::parse(&row.wallet.wallet_id).map_err(|error| corrupt("wallet id", error))?;
            heads.loaded(id.as_str(), row.history_head);
            Ok((id, state))
        })
        .collect()
}

/// A wallet's balance and month counters, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct WalletStateRow {
    balance: i64,
    month: String,
    charged: i64,
    eligible_spent: i64,
    cashback_earned: i64,
    cashback_reversed: i64,
}

/// A wallet from its row.
fn wallet_state(row: WalletStateRow) -> StoreResult<WalletState> {
    Ok(WalletState {
        balance: won(row.balance),
        counters: wallet_core::wallet::MonthCounters {
            month: Month::parse(&row.month).map_err(|error| corrupt("wallet month", error))?,
            charged: won(row.charged),
            eligible_spent: won(row.eligible_spent),
            cashback_earned: won(row.cashback_earned),
            cashback_reversed: won(row.cashback_reversed),
        },
    })
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
            Ok((id, MerchantState { receivable: won(row.receivable), carried_negative: won(row.carried_negative) }))
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
            let amount = won(row.amount);
            let state = PaymentState {
                merchant: MerchantId::parse(&row.merchant_id).map_err(|error| corrupt("payment merchant", error))?,
                wallet: WalletId::parse(&row.wallet_id).map_err(|error| corrupt("payment wallet", error))?,
                amount: wallet_core::Amount::try_from(amount).map_err(|error| corrupt("payment amount", error))?,
                cashback: won(row.cashback),
                eligible: won(row.eligible),
                month: Month::parse(&row.month).map_err(|error| corrupt("payment month", error))?,
                at: instant(row.at_ms)?,
                refunded: won(row.refunded),
                cashback_reversed: won(row.cashback_reversed),
                eligible_returned: won(row.eligible_returned),
            };
            Ok((TxId::parse(&row.payment_id).map_err(|error| corrupt("payment id", error))?, state))
        })
        .collect()
}

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
                payments_amount: won(row.payments_amount),
                refunds_count: u64::try_from(row.refunds_count).map_err(|error| corrupt("refunds_count", error))?,
                refunds_amount: won(row.refunds_amount),
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
                payments_amount: won(row.payments_amount),
                refunds_count: u64::try_from(row.refunds_count).map_err(|error| corrupt("refunds_count", error))?,
                refunds_amount: won(row.refunds_amount),
                fee: won(row.fee),
                carried_in: won(row.carried_in),
                net_payable: won(row.net_payable),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Some(Settlement {
        business_date: date,
        tx_id: TxId::parse(&header.tx_id).map_err(|error| corrupt("settlement tx", error))?,
        lines,
        total_net_payable: won(header.total_net_payable),
        total_fee: won(header.total_fee),
    }))
}

/// Writes everything a batch changed, each entity once; a changed wallet's row gets its moved
/// history head (`heads`, from [`chain_history`]) in the same statement.
pub fn save_changes(
    connection: &mut DbConn,
    changes: &Changes,
    heads: &mut HistoryHeads,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // The city row in parts, each only when it changed: the budget changes with nearly every
    // payment, the policy rarely.
    if let Some(policy) = &changes.policy {
        let (cashback_rate, fee_rate) = (policy.cashback_rate.to_string(), policy.merchant_fee_rate.to_string());
        fixed::execute(
            connection,
            fixed!(
                "UPDATE ledger_state SET cashback_rate = ?, cashback_monthly_spend_cap = ?, monthly_charge_limit = ?, \
                 holding_limit = ?, merchant_fee_rate = ? WHERE id = 1",
                vec![
                    Bind::Text(&cashback_rate),
                    Bind::BigInt(cents(policy.cashback_monthly_spend_cap)?),
                    Bind::BigInt(cents(policy.monthly_charge_limit)?),
                    Bind::BigInt(cents(policy.holding_limit)?),
                    Bind::Text(&fee_rate),
                ],
            ),
        )?;
    }
    if let Some(budget) = &changes.budget {
        fixed::execute(
            connection,
            fixed!(
                "UPDATE ledger_state SET budget_funded = ?, budget_paid_out = ?, budget_reversed = ? WHERE id = 1",
                vec![
                    Bind::BigInt(cents(budget.funded)?),
                    Bind::BigInt(cents(budget.paid_out)?),
                    Bind::BigInt(cents(budget.reversed)?),
                ],
            ),
        )?;
    }
    if let Some(system) = &changes.system {
        fixed::execute(
            connection,
            fixed!(
                "UPDATE ledger_state SET bank_clearing = ?, settlement_payouts = ?, fee_income = ?, \
                 handover_opening = ? WHERE id = 1",
                vec![
                    Bind::BigInt(cents(system.bank_clearing)?),
                    Bind::BigInt(cents(system.settlement_payouts)?),
                    Bind::BigInt(cents(system.fee_income)?),
                    Bind::BigInt(cents(system.handover_opening)?),
                ],
            ),
        )?;
    }
    if matches!(connection, DbConn::Pg(_)) {
        save_rows_in_bulk(connection, changes, heads)?;
    } else {
        save_rows_one_by_one(connection, changes, heads)?;
    }
    for settlement in &changes.settlements {
        let date = settlement.business_date.to_string();
        diesel::insert_into(settlements::table)
            .values((
                settlements::business_date.eq(&date),
                settlements::tx_id.eq(settlement.tx_id.as_str()),
                settlements::total_net_payable.eq(cents(settlement.total_net_payable)?),
                settlements::total_fee.eq(cents(settlement.total_fee)?),
                settlements::closed_at_ms.eq(millis(now)),
            ))
            .execute(connection)?;
        for line in &settlement.lines {
            diesel::insert_into(settlement_lines::table)
                .values((
                    settlement_lines::business_date.eq(&date),
                    settlement_lines::merchant_id.eq(line.merchant_id.as_str()),
                    settlement_lines::payments_count.eq(count(line.payments_count)?),
                    settlement_lines::payments_amount.eq(cents(line.payments_amount)?),
                    settlement_lines::refunds_count.eq(count(line.refunds_count)?),
                    settlement_lines::refunds_amount.eq(cents(line.refunds_amount)?),
                    settlement_lines::fee.eq(cents(line.fee)?),
                    settlement_lines::carried_in.eq(cents(line.carried_in)?),
                    settlement_lines::net_payable.eq(cents(line.net_payable)?),
                ))
                .execute(connection)?;
        }
    }
    Ok(())
}

/// The batch's wallets, merchants, payment codes, payments and sales rows, one kept-prepared
/// statement a row (see `fixed`): on SQLite, where a statement costs no round trip, and a
/// multi-row one would be prepared anew for each size. A batch of a few dozen payments touches
/// each wallet and merchant once.
fn save_rows_one_by_one(connection: &mut DbConn, changes: &Changes, heads: &mut HistoryHeads) -> StoreResult<()> {
    for (id, wallet) in &changes.wallets {
        let month = wallet.counters.month.to_string();
        fixed::execute(
            connection,
            fixed!(
                "UPDATE wallets SET balance = ?, month = ?, charged = ?, eligible_spent = ?, cashback_earned = ?, \
                 cashback_reversed = ?, history_head = COALESCE(?, history_head) WHERE wallet_id = ?",
                vec![
                    Bind::BigInt(cents(wallet.balance)?),
                    Bind::Text(&month),
                    Bind::BigInt(cents(wallet.counters.charged)?),
                    Bind::BigInt(cents(wallet.counters.eligible_spent)?),
                    Bind::BigInt(cents(wallet.counters.cashback_earned)?),
                    Bind::BigInt(cents(wallet.counters.cashback_reversed)?),
                    Bind::NullableBigInt(heads.take_moved(id.as_str())),
                    Bind::Text(id.as_str()),
                ],
            ),
        )?;
    }
    for (id, merchant) in &changes.merchants {
        fixed::execute(
            connection,
            fixed!(
                "UPDATE merchants SET receivable = ?, carried_negative = ? WHERE merchant_id = ?",
                vec![
                    Bind::BigInt(cents(merchant.receivable)?),
                    Bind::BigInt(cents(merchant.carried_negative)?),
                    Bind::Text(id.as_str()),
                ],
            ),
        )?;
    }
    // A code is new (issued in this batch) or was used: one upsert serves both.
    for (code, state) in &changes.codes {
        fixed::execute(
            connection,
            fixed!(
                "INSERT INTO payment_codes (code, wallet_id, expires_at_ms, used) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (code) DO UPDATE SET used = excluded.used",
                vec![
                    Bind::Text(code.as_str()),
                    Bind::Text(state.wallet.as_str()),
                    Bind::BigInt(millis(state.expires_at)),
                    Bind::Bool(state.used),
                ],
            ),
        )?;
    }
    for (id, payment) in &changes.payments {
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
                    Bind::BigInt(cents(payment.amount.won())?),
                    Bind::BigInt(cents(payment.cashback)?),
                    Bind::BigInt(cents(payment.eligible)?),
                    Bind::Text(&month),
                    Bind::BigInt(millis(payment.at)),
                    Bind::BigInt(cents(payment.refunded)?),
                    Bind::BigInt(cents(payment.cashback_reversed)?),
                    Bind::BigInt(cents(payment.eligible_returned)?),
                ],
            ),
        )?;
    }
    for ((date, merchant), sales) in &changes.sales {
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
                    Bind::BigInt(count(sales.payments_count)?),
                    Bind::BigInt(cents(sales.payments_amount)?),
                    Bind::BigInt(count(sales.refunds_count)?),
                    Bind::BigInt(cents(sales.refunds_amount)?),
                ],
            ),
        )?;
    }
    Ok(())
}

/// The batch's wallets, merchants, payment codes, payments and sales rows in a few statements:
/// on PostgreSQL each statement is a round trip, and a batch of 60 payments would otherwise make
/// some 170 of them. Wallets, merchants, payment codes and sales rows are each one statement
/// over arrays (`unnest`), of fixed text; the rows were locked in key order when the batch
/// loaded them.
fn save_rows_in_bulk(connection: &mut DbConn, changes: &Changes, heads: &mut HistoryHeads) -> StoreResult<()> {
    let DbConn::Pg(pg) = connection else { unreachable!("only called on PostgreSQL") };
    if !changes.wallets.is_empty() {
        let mut columns = WalletColumns::default();
        for (id, wallet) in &changes.wallets {
            columns.0.push(id.as_str());
            columns.1.push(cents(wallet.balance)?);
            columns.2.push(wallet.counters.month.to_string());
            columns.3.push(cents(wallet.counters.charged)?);
            columns.4.push(cents(wallet.counters.eligible_spent)?);
            columns.5.push(cents(wallet.counters.cashback_earned)?);
            columns.6.push(cents(wallet.counters.cashback_reversed)?);
            columns.7.push(heads.take_moved(id.as_str()));
        }
        let updated = diesel::sql_query(
            "UPDATE wallets AS w SET balance = v.balance, month = v.month, charged = v.charged, \
             eligible_spent = v.eligible_spent, cashback_earned = v.cashback_earned, \
             cashback_reversed = v.cashback_reversed, history_head = COALESCE(v.history_head, w.history_head) \
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
                         $7::bigint[], $8::bigint[]) \
             AS v (wallet_id, balance, month, charged, eligible_spent, cashback_earned, cashback_reversed, history_head) \
             WHERE w.wallet_id = v.wallet_id",
        )
        .bind::<Array<Text>, _>(&columns.0)
        .bind::<Array<BigInt>, _>(&columns.1)
        .bind::<Array<Text>, _>(&columns.2)
        .bind::<Array<BigInt>, _>(&columns.3)
        .bind::<Array<BigInt>, _>(&columns.4)
        .bind::<Array<BigInt>, _>(&columns.5)
        .bind::<Array<BigInt>, _>(&columns.6)
        .bind::<Array<diesel::sql_types::Nullable<BigInt>>, _>(&columns.7)
        .execute(pg)?;
        expect_rows("wallets", updated, columns.0.len())?;
    }
    if !changes.merchants.is_empty() {
        let mut columns: (Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
        for (id, merchant) in &changes.merchants {
            columns.0.push(id.as_str());
            columns.1.push(cents(merchant.receivable)?);
            columns.2.push(cents(merchant.carried_negative)?);
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
        expect_rows("merchants", updated, columns.0.len())?;
    }
    if !changes.sales.is_empty() {
        let mut columns = SalesColumns::default();
        for ((date, merchant), sales) in &changes.sales {
            columns.0.push(date.to_string());
            columns.1.push(merchant.as_str());
            columns.2.push(count(sales.payments_count)?);
            columns.3.push(cents(sales.payments_amount)?);
            columns.4.push(count(sales.refunds_count)?);
            columns.5.push(cents(sales.refunds_amount)?);
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
        expect_rows("daily sales", written, columns.0.len())?;
    }
    if !changes.codes.is_empty() {
        // A code is new (issued in this batch) or was used: one upsert serves both.
        let mut columns: (Vec<&str>, Vec<&str>, Vec<i64>, Vec<bool>) = Default::default();
        for (code, state) in &changes.codes {
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
        expect_rows("payment codes", written, columns.0.len())?;
    }
    let mut rows = Vec::with_capacity(changes.payments.len());
    for (id, payment) in &changes.payments {
        rows.push((
            payments::payment_id.eq(id.as_str()),
            payments::merchant_id.eq(payment.merchant.as_str()),
            payments::wallet_id.eq(payment.wallet.as_str()),
            payments::amount.eq(cents(payment.amount.won())?),
            payments::cashback.eq(cents(payment.cashback)?),
            payments::eligible.eq(cents(payment.eligible)?),
            payments::month.eq(payment.month.to_string()),
            payments::at_ms.eq(millis(payment.at)),
            payments::refunded.eq(cents(payment.refunded)?),
            payments::cashback_reversed.eq(cents(payment.cashback_reversed)?),
            payments::eligible_returned.eq(cents(payment.eligible_returned)?),
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
    Ok(())
}

/// The wallets of a batch as columns, for `unnest` (wallet id, balance, month, charged, eligible
/// spent, cashback earned).
type WalletColumns<'a> =
    (Vec<&'a str>, Vec<i64>, Vec<String>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<Option<i64>>);

/// A batch's daily sales rows as columns, for `unnest` (date, merchant, payments count and
/// amount, refunds count and amount).
type SalesColumns<'a> = (Vec<String>, Vec<&'a str>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);

/// A bulk statement must have written one row per entity: fewer means a row the batch loaded
/// has vanished, and the batch must not commit.
fn expect_rows(what: &str, written: usize, wanted: usize) -> StoreResult<()> {
    if written == wanted {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!("{what}: {written} rows written of {wanted}")))
    }
}

fn count(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|error| corrupt("count", error))
}

/// Rows written by one multi-row `INSERT` at most: 500 rows of up to 11 columns stay well inside
/// the bound-parameter limits of SQLite (32,766) and PostgreSQL (65,535), and on PostgreSQL one
/// statement for hundreds of rows saves most of the round trips of a bulk write (a handover
/// import). The ledger's inserts use it on PostgreSQL (`insert_fixed_rows!`).
pub const ROWS_PER_INSERT: usize = 500;

/// The postings of `transactions` (`insert_fixed_rows!`: a few hundred rows a statement on
/// PostgreSQL, kept-prepared statements of 32, 8 and 1 rows on SQLite).
pub fn save_transactions(connection: &mut DbConn, transactions: &[Transaction]) -> StoreResult<()> {
    let kinds: Vec<String> = transactions.iter().map(|transaction| serde_plain(transaction.kind())).collect();
    let mut values = Vec::new();
    for (transaction, kind) in transactions.iter().zip(&kinds) {
        for posting in transaction.postings() {
            let account_id = match &posting.account {
                Account::Wallet(id) => Some(id.as_str()),
                Account::Merchant(id) => Some(id.as_str()),
                _ => None,
            };
            values.extend([
                Bind::Text(transaction.id().as_str()),
                Bind::Text(kind),
                Bind::Text(posting.account.kind().as_str()),
                Bind::NullableText(account_id),
                Bind::BigInt(cents(posting.amount)?),
                Bind::BigInt(millis(transaction.at())),
            ]);
        }
    }
    insert_fixed_rows!(
        connection,
        "INSERT INTO postings (tx_id, tx_kind, account_kind, account_id, amount, at_ms) VALUES ",
        6,
        &values,
        fixed::SqliteRows::Many
    )?;
    Ok(())
}

/// Each loaded wallet's newest history item (`wallets.history_head`), as it moves while a write
/// appends items, and whether the move is still to be written.
///
/// A wallet's history is a chain, not an index: each item keeps the seq of the wallet's item
/// before it (`prev_seq`), and the wallet the seq of its newest. Why: with an index on
/// (wallet_id, seq), every payment wrote its citizen's own leaf page of that index, nearly half
/// the pages a batch wrote to the log; the wallet row the chain needs instead is one the batch
/// writes anyway (`save_changes` writes a changed wallet's head with it).
#[derive(Debug, Default)]
pub struct HistoryHeads(std::collections::BTreeMap<String, Head>);

#[derive(Debug, Clone, Copy)]
struct Head {
    seq: Option<i64>,
    unwritten: bool,
}

impl HistoryHeads {
    fn loaded(&mut self, wallet: &str, seq: Option<i64>) {
        self.0.insert(wallet.to_owned(), Head { seq, unwritten: false });
    }

    /// The wallet's new head if it moved and is not written yet; from now on it counts as written.
    fn take_moved(&mut self, wallet: &str) -> Option<i64> {
        self.0.get_mut(wallet)?.take_moved()
    }
}

impl Head {
    fn take_moved(&mut self) -> Option<i64> {
        std::mem::take(&mut self.unwritten).then_some(self.seq).flatten()
    }
}

/// Where each of `items` goes in its wallet's chain: (seq, prev_seq), in the order given. The
/// seqs are taken here, after the wallets were read (and on PostgreSQL locked) into `heads`, so
/// along one wallet's chain seqs only grow, even with two servers writing. An item of a wallet
/// not in `heads` is an error (nothing written).
pub fn chain_history(
    connection: &mut DbConn,
    items: &[HistoryItem],
    heads: &mut HistoryHeads,
) -> StoreResult<Vec<(i64, Option<i64>)>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(stranger) = items.iter().find(|item| !heads.0.contains_key(item.wallet.as_str())) {
        return Err(StoreError::Corrupt(format!("history for wallet {} that was not read first", stranger.wallet)));
    }
    let seqs = reserve_history_seqs(connection, items.len())?;
    let mut links = Vec::with_capacity(items.len());
    for (item, seq) in items.iter().zip(seqs) {
        let head = heads.0.get_mut(item.wallet.as_str()).expect("every item's wallet was checked above");
        if let Some(newest) = head.seq.filter(|&newest| newest >= seq) {
            // Not reachable while seqs are taken under the wallet's lock; fail the write rather
            // than link a chain out of order.
            return Err(StoreError::Corrupt(format!(
                "wallet {}: new history seq {seq} is not above its newest item's {newest}",
                item.wallet
            )));
        }
        links.push((seq, head.seq.replace(seq)));
        head.unwritten = true;
    }
    Ok(links)
}

/// Inserts `items` where [`chain_history`] put them (`links`, one per item) (`insert_fixed_rows!`:
/// a few hundred rows a statement on PostgreSQL, kept-prepared statements of 32, 8 and 1 rows on
/// SQLite).
pub fn insert_history(connection: &mut DbConn, items: &[HistoryItem], links: &[(i64, Option<i64>)]) -> StoreResult<()> {
    assert_eq!(items.len(), links.len(), "one chain link per history item");
    let mut values = Vec::with_capacity(items.len() * 10);
    for (item, &(seq, prev_seq)) in items.iter().zip(links) {
        let counterparty = item.counterparty.as_ref().map(|counterparty| match counterparty {
            wallet_core::Counterparty::Wallet(id) => id.as_str(),
            wallet_core::Counterparty::Merchant(id) => id.as_str(),
        });
        values.extend([
            Bind::BigInt(seq),
            Bind::NullableBigInt(prev_seq),
            Bind::Text(item.id.as_str()),
            Bind::Text(item.wallet.as_str()),
            Bind::Text(item.kind.as_str()),
            Bind::BigInt(cents(item.amount)?),
            Bind::BigInt(cents(item.balance_after)?),
            Bind::BigInt(millis(item.at)),
            Bind::NullableText(counterparty),
            Bind::NullableText(item.related.as_ref().map(|id| id.as_str())),
        ]);
    }
    insert_fixed_rows!(
        connection,
        "INSERT INTO history (seq, prev_seq, item_id, wallet_id, kind, amount, balance_after, at_ms, counterparty, \
         related_id) VALUES ",
        10,
        &values,
        fixed::SqliteRows::Many
    )?;
    Ok(())
}

/// Appends `items` to their wallets' history chains on its own: reads the heads, links, inserts,
/// and writes the moved heads (the handover import; the writer links before `save_changes`,
/// which writes the heads with the wallet rows).
pub fn save_history(connection: &mut DbConn, items: &[HistoryItem]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut wallet_ids: Vec<String> = items.iter().map(|item| item.wallet.as_str().to_owned()).collect();
    wallet_ids.sort_unstable();
    wallet_ids.dedup();
    let mut heads = HistoryHeads::default();
    let rows: Vec<HistoryHeadRow> = load_keyed!(
        connection,
        wallets::table.select(HistoryHeadRow::as_select()),
        wallets::wallet_id,
        wallet_ids.as_slice()
    )?;
    for row in rows {
        heads.loaded(&row.wallet_id, row.history_head);
    }
    let links = chain_history(connection, items, &mut heads)?;
    insert_history(connection, items, &links)?;
    save_history_heads(connection, &mut heads)
}

/// A wallet's newest history item, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct HistoryHeadRow {
    wallet_id: String,
    history_head: Option<i64>,
}

/// `count` new history seqs, ascending, that nobody else will use.
fn reserve_history_seqs(connection: &mut DbConn, count: usize) -> StoreResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let count = i64::try_from(count).map_err(|error| corrupt("history items in one write", error))?;
    match connection {
        DbConn::Sqlite(sqlite) => {
            // The write transaction (BEGIN IMMEDIATE) holds the database's one write lock, so
            // the seqs after the highest one here are free until it commits. (History rows are
            // never deleted, so AUTOINCREMENT would hand out the same ones.)
            let last: Option<i64> = history::table.select(diesel::dsl::max(history::seq)).first(sqlite)?;
            let last = last.unwrap_or(0);
            Ok((last + 1..=last + count).collect())
        }
        DbConn::Pg(pg) => {
            let mut seqs: Vec<i64> = diesel::sql_query(
                "SELECT nextval(pg_get_serial_sequence('history', 'seq')) AS seq FROM generate_series(1, $1)",
            )
            .bind::<BigInt, _>(count)
            .load::<Seq>(pg)?
            .into_iter()
            .map(|row| row.seq)
            .collect();
            seqs.sort_unstable();
            if seqs.len() as i64 != count {
                return Err(StoreError::Corrupt(format!("{} history seqs reserved of {count}", seqs.len())));
            }
            Ok(seqs)
        }
    }
}

/// Writes the heads that moved and that `save_changes` did not write with a wallet row.
pub fn save_history_heads(connection: &mut DbConn, heads: &mut HistoryHeads) -> StoreResult<()> {
    let moved: Vec<(&str, i64)> =
        heads.0.iter_mut().filter_map(|(id, head)| Some((id.as_str(), head.take_moved()?))).collect();
    if moved.is_empty() {
        return Ok(());
    }
    match connection {
        DbConn::Sqlite(_) => {
            for &(id, head) in &moved {
                let updated = fixed::execute(
                    connection,
                    fixed!(
                        "UPDATE wallets SET history_head = ? WHERE wallet_id = ?",
                        vec![Bind::BigInt(head), Bind::Text(id)]
                    ),
                )?;
                expect_rows("wallet history head", updated, 1)?;
            }
        }
        DbConn::Pg(pg) => {
            let (ids, seqs): (Vec<&str>, Vec<i64>) = moved.iter().copied().unzip();
            let updated = diesel::sql_query(
                "UPDATE wallets AS w SET history_head = v.head FROM unnest($1::text[], $2::bigint[]) AS v (wallet_id, head) \
                 WHERE w.wallet_id = v.wallet_id",
            )
            .bind::<Array<Text>, _>(&ids)
            .bind::<Array<BigInt>, _>(&seqs)
            .execute(pg)?;
            expect_rows("wallet history heads", updated, ids.len())?;
        }
    }
    Ok(())
}

/// The snake_case name serde gives a unit enum variant.
fn serde_plain<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

/// One wallet, read without locking.
pub fn load_wallets_unlocked(connection: &mut DbConn, id: &str) -> StoreResult<Option<WalletState>> {
    let row: Option<WalletStateRow> = wallets::table
        .filter(wallets::wallet_id.eq(id))
        .select(WalletStateRow::as_select())
        .load(connection)?
        .into_iter()
        .next();
    row.map(wallet_state).transpose()
}
