//! The `ledger_state` table: the one city-wide row of policy, cashback budget and system
//! account balances, read (locked, for the writer) and written by the batch that changed it.

use diesel::prelude::*;
use wallet_core::{BudgetState, Changes, Policy, Rate, SystemBalances};

use super::fixed::{self, Bind};
use super::money::{db_won, won_to_db};
use super::schema::*;
use super::{corrupt, DbConn, StoreError, StoreResult};

/// The city row's policy, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger_state, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(super) struct PolicyRow {
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
    let budget = BudgetState {
        funded: db_won(row.budget_funded),
        paid_out: db_won(row.budget_paid_out),
        reversed: db_won(row.budget_reversed),
    };
    let system = SystemBalances {
        bank_clearing: db_won(row.bank_clearing),
        settlement_payouts: db_won(row.settlement_payouts),
        fee_income: db_won(row.fee_income),
        handover_opening: db_won(row.handover_opening),
    };
    Ok((policy, budget, system))
}

pub(super) fn policy_of(row: PolicyRow) -> StoreResult<Policy> {
    Ok(Policy {
        cashback_rate: Rate::parse(&row.cashback_rate).map_err(|error| corrupt("cashback_rate", error))?,
        cashback_monthly_spend_cap: db_won(row.cashback_monthly_spend_cap),
        monthly_charge_limit: db_won(row.monthly_charge_limit),
        holding_limit: db_won(row.holding_limit),
        merchant_fee_rate: Rate::parse(&row.merchant_fee_rate).map_err(|error| corrupt("merchant_fee_rate", error))?,
    })
}

/// Writes the parts of the city row a batch changed, each only when it changed: the budget
/// changes with nearly every payment, the policy rarely.
pub fn save(connection: &mut DbConn, changes: &Changes) -> StoreResult<()> {
    if let Some(policy) = &changes.policy {
        let (cashback_rate, fee_rate) = (policy.cashback_rate.to_string(), policy.merchant_fee_rate.to_string());
        fixed::execute(
            connection,
            fixed!(
                "UPDATE ledger_state SET cashback_rate = ?, cashback_monthly_spend_cap = ?, monthly_charge_limit = ?, \
                 holding_limit = ?, merchant_fee_rate = ? WHERE id = 1",
                vec![
                    Bind::Text(&cashback_rate),
                    Bind::BigInt(won_to_db(policy.cashback_monthly_spend_cap)?),
                    Bind::BigInt(won_to_db(policy.monthly_charge_limit)?),
                    Bind::BigInt(won_to_db(policy.holding_limit)?),
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
                    Bind::BigInt(won_to_db(budget.funded)?),
                    Bind::BigInt(won_to_db(budget.paid_out)?),
                    Bind::BigInt(won_to_db(budget.reversed)?),
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
                    Bind::BigInt(won_to_db(system.bank_clearing)?),
                    Bind::BigInt(won_to_db(system.settlement_payouts)?),
                    Bind::BigInt(won_to_db(system.fee_income)?),
                    Bind::BigInt(won_to_db(system.handover_opening)?),
                ],
            ),
        )?;
    }
    Ok(())
}
