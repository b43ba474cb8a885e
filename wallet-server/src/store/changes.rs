//! Writing a batch's [`Changes`] back, table by table (each table's statements, one dialect
//! beside the other, are in the module named for it).

use chrono::{DateTime, Utc};
use wallet_core::Changes;

use super::wallets::HistoryHeads;
use super::{
    allowances, charge_bonuses, daily_sales, ledger_state, merchants, payment_codes, payments, programs, settlements,
    wallets, DbConn, StoreResult,
};

/// Writes everything a batch changed, each entity once; a changed wallet's row gets its moved
/// history head (`heads`, from [`super::history::chain_history`]) in the same statement. The
/// order is fixed: the city row, programs, wallets, allowances, merchants, sales, payment codes,
/// payments (their allowance parts after the allowances they name), settlements.
pub fn save(
    connection: &mut DbConn,
    changes: &Changes,
    heads: &mut HistoryHeads,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    ledger_state::save(connection, changes)?;
    programs::save(connection, &changes.programs)?;
    charge_bonuses::save(connection, &changes.charge_bonuses)?;
    wallets::save(connection, &changes.wallets, heads)?;
    allowances::save(connection, &changes.grants)?;
    merchants::save(connection, &changes.merchants)?;
    daily_sales::save(connection, &changes.sales)?;
    payment_codes::save(connection, &changes.codes)?;
    payments::save(connection, &changes.payments)?;
    settlements::save(connection, &changes.settlements, now)
}
