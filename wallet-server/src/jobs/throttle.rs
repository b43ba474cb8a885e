//! The throttle purge: records of the login throttle that have nothing left to say are dropped,
//! so its maps stay well under `WALLET_THROTTLE_ENTRIES_MAX` (see `auth::throttle`).

use crate::state::AppState;
use crate::store;

/// Purges the throttle's spent records (nothing to do with `WALLET_THROTTLE=off`).
pub(super) fn purge(state: &AppState) {
    if let Some(throttle) = state.throttle.as_ref() {
        let now_ms = store::time::millis(state.clock.now());
        if let Ok(mut throttle) = throttle.lock() {
            throttle.purge(now_ms);
        }
    }
}
