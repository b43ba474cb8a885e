//! The `postings` table: the journal, every posting of every transaction in commit order.
//! Only ever appended to, by the writer's batches and a handover import.

use wallet_core::{Account, Transaction};

use super::fixed::{self, Bind};
use super::money::won_to_db;
use super::time::millis;
use super::{DbConn, StoreResult};

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
                Bind::BigInt(won_to_db(posting.amount)?),
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

/// The snake_case name serde gives a unit enum variant.
fn serde_plain<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}
