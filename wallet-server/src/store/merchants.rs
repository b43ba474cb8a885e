//! The `merchants` table's details and balances, as registration and a handover write them.
//! (The ledger writer updates balances in its own batch statements, `ledger::save_changes`.)

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::ledger::{self, ROWS_PER_INSERT};
use super::schema::merchants;
use super::{DbConn, StoreResult};

/// A merchant's details as registered.
#[derive(Clone, Copy)]
pub struct MerchantDetails<'a> {
    pub merchant_id: &'a str,
    pub name: &'a str,
    pub business_number: &'a str,
    pub bank_account: &'a str,
    pub category: Option<&'a str>,
}

/// Adds a new merchant (its principal was just created) with nothing receivable.
pub fn put_merchant(connection: &mut DbConn, merchant: &MerchantDetails<'_>) -> StoreResult<()> {
    put_merchants(connection, &[(*merchant, wallet_core::MerchantState::default())])
}

/// Writes merchants whole, details and balances, a few hundred a statement: added, or replaced
/// when here already (a handover delta).
pub fn put_merchants(
    connection: &mut DbConn,
    merchants_in: &[(MerchantDetails<'_>, wallet_core::MerchantState)],
) -> StoreResult<()> {
    for chunk in merchants_in.chunks(ROWS_PER_INSERT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (merchant, state) in chunk {
            rows.push((
                merchants::merchant_id.eq(merchant.merchant_id),
                merchants::name.eq(merchant.name),
                merchants::business_number.eq(merchant.business_number),
                merchants::bank_account.eq(merchant.bank_account),
                merchants::category.eq(merchant.category),
                merchants::receivable.eq(ledger::cents(state.receivable)?),
                merchants::carried_negative.eq(ledger::cents(state.carried_negative)?),
            ));
        }
        upsert!(
            connection,
            diesel::insert_into(merchants::table).values(&rows).on_conflict(merchants::merchant_id).do_update().set((
                merchants::name.eq(excluded(merchants::name)),
                merchants::business_number.eq(excluded(merchants::business_number)),
                merchants::bank_account.eq(excluded(merchants::bank_account)),
                merchants::category.eq(excluded(merchants::category)),
                merchants::receivable.eq(excluded(merchants::receivable)),
                merchants::carried_negative.eq(excluded(merchants::carried_negative)),
            ))
        )?;
    }
    Ok(())
}
