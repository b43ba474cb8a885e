//! The background trial balance: the sum of every account kind's balance, taken in a read-only
//! snapshot that does not hold up the writer. It grows with the city, so it is not taken per
//! request (`/metrics` is unauthenticated and never shed): each server takes it every
//! [`BOOKS_CHECK_INTERVAL`], and the status and metrics endpoints show the last one
//! (`state::BooksCheck`) with its time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::state::{with_connection, AppState, BooksChecked};
use crate::store::{self, StoreError};

/// How often each server takes the trial balance.
pub const BOOKS_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Takes the trial balance now and every [`BOOKS_CHECK_INTERVAL`] after; logs an error when it
/// does not total zero (a broken invariant: the books must be examined before anything else).
pub async fn keep_books_checked(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(BOOKS_CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let taken = with_connection(&state, |connection, _| {
            let balances = store::read_snapshot(connection, store::balances::account_balances)?;
            let trial_balance = wallet_core::TrialBalance::sum(balances);
            trial_balance.map_err(|_| StoreError::Corrupt("the trial balance overflows".into()))
        })
        .await;
        match taken {
            Ok(trial_balance) => {
                // Reported, not asserted: the server keeps serving the reads that examine the books.
                if let Err(unbalanced) = trial_balance.check() {
                    let total = unbalanced.total;
                    tracing::error!(%total, "the trial balance does not total zero; the books must be examined");
                }
                let total = trial_balance.total();
                state.books.taken(BooksChecked { total, taken: Instant::now(), at: state.clock.now() });
            }
            Err(error) => {
                tracing::warn!(%error, "trial-balance check failed; retrying");
                state.books.failed();
            }
        }
    }
}
