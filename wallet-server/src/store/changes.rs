//! Writing a batch's [`Changes`] back, table by table (each table's statements, one dialect
//! beside the other, are in the module named for it).

use chrono::{DateTime, Utc};
use wallet_core::Changes;

use super::wallets::HistoryHeads;
use super::{daily_sales, ledger_state, merchants, payment_codes, payments, settlements, wallets, DbConn, StoreResult};

/// Writes everything a batch changed, each entity once; a changed wallet's row gets its moved
/// history head (`heads`, from [`super::history::chain_history`]) in the same statement. The
/// order is fixed: the city row, wallets, merchants, sales, payment codes, payments, settlements.
pub fn save(
    connection: &mut DbConn,
    changes: &Changes,
    heads: &mut HistoryHeads,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    ledger_state::save(connection, changes)?;
    wallets::save(connection, &changes.wallets, heads)?;
    merchants::save(connection, &changes.merchants)?;
    daily_sales::save(connection, &changes.sales)?;
    payment_codes::save(connection, &changes.codes)?;
    payments::save(connection, &changes.payments)?;
    settlements::save(connection, &changes.settlements, now)
}
