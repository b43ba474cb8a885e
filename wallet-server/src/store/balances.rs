//! The balance of every account kind at one instant: what the trial balance sums. Wallets and
//! receivables, allowance purses and program budgets are summed over their tables, the rest is
//! the city row (`ledger_state`).

use wallet_core::{AccountKind, Won};

use super::money::db_won;
use super::{allowances, ledger_state, merchants, programs, wallets, DbConn, StoreResult};

/// The balance of every account kind: wallets and receivables summed, the rest from the city
/// row. Run it in one transaction so that the figures are of one instant.
pub fn account_balances(connection: &mut DbConn) -> StoreResult<[(AccountKind, Won); 9]> {
    let (_, budget, system) = ledger_state::load_state(connection, false)?;
    let wallet_sum = wallets::balance_sum(connection)?;
    let receivable_sum = merchants::receivable_sum(connection)?;
    let allowance_sum = allowances::outstanding_sum(connection)?;
    let program_sum = programs::remaining_sum(connection)?;
    Ok([
        (AccountKind::CitizenWallet, db_won(wallet_sum)),
        (AccountKind::MerchantReceivable, db_won(receivable_sum)),
        (AccountKind::CashbackBudget, budget.remaining()),
        (AccountKind::BankClearing, system.bank_clearing),
        (AccountKind::SettlementPayouts, system.settlement_payouts),
        (AccountKind::FeeIncome, system.fee_income),
        (AccountKind::HandoverOpening, system.handover_opening),
        (AccountKind::CitizenAllowance, db_won(allowance_sum)),
        (AccountKind::ProgramBudget, db_won(program_sum)),
    ])
}
