//! The allowance sweep: what is left of each expired grant goes back to its program's budget, as
//! an `allowance_expired` history item. An expired grant is already never shown or spent (the
//! core checks `expires_at` itself), so the sweep changes no answer about what a citizen may
//! spend; it makes the books say where the money is.
//!
//! Each grant is one `Command::ExpireGrant` through the writer, like any money. With several
//! servers on one database each may pick the same grant: the first batch to commit returns the
//! money, and the other finds nothing left (the core's expiry of an empty grant moves nothing and
//! writes no history), so it happens once.

use std::sync::Arc;

use futures_util::future::join_all;
use wallet_core::{Command, GrantId};

use crate::api::new_tx_id;
use crate::state::{with_connection, AppState};
use crate::store;
use crate::writer::WriteOp;

/// Grants swept at most per sweep (every 5 s): a city-wide program expiring at one midnight is
/// returned over a few minutes rather than in one burst that would crowd out payments.
pub const SWEEP_GRANTS_MAX: i64 = 512;
/// Expiries in the writer's queue at once, so the sweep never fills the queue payments share.
const IN_FLIGHT_MAX: usize = 32;
/// Who the writer is told asks (no Idempotency-Key: a retry finds the grant empty).
const SWEEPER: &str = "system:allowance-sweep";

/// Returns a batch of expired grants' money (a failure is logged; the next sweep retries).
pub(super) async fn sweep(state: &Arc<AppState>) {
    let due = with_connection(state, |connection, state| {
        store::allowances::expired_with_money_left(connection, state.clock.now(), SWEEP_GRANTS_MAX)
    })
    .await;
    let due = match due {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "allowance sweep failed to read; retrying");
            return;
        }
    };
    let mut returned = 0usize;
    for chunk in due.chunks(IN_FLIGHT_MAX) {
        let expiries = chunk.iter().filter_map(|grant| GrantId::parse(grant).ok()).map(|grant| {
            let command = Command::ExpireGrant { id: new_tx_id(), grant };
            state.writer.submit(SWEEPER.to_owned(), None, WriteOp::Ledger(command))
        });
        for answer in join_all(expiries).await {
            if answer.status >= 300 {
                // Overloaded or failed: the grant is still due, and the next sweep takes it.
                tracing::warn!(status = answer.status, body = %answer.body, "allowance expiry not applied; retrying");
                return;
            }
            returned += 1;
        }
    }
    if returned > 0 {
        tracing::info!(grants = returned, "expired allowances returned to their programs");
    }
}
