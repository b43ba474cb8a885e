//! The session sweep: citizen sessions idle past `WALLET_SESSION_IDLE_S` or past their lifetime
//! are deleted, so their slots are free for the waiting line even when their holders never log
//! out, and the count of slots in use is made exact again.

use std::sync::Arc;

use crate::state::{with_connection, AppState};
use crate::store;

/// Deletes the idle and expired citizen sessions (a failure is logged; the next sweep retries).
pub(super) async fn sweep(state: &Arc<AppState>) {
    let swept = with_connection(state, |connection, state| {
        let now_ms = store::time::millis(state.clock.now());
        store::sessions::sweep_citizen_sessions(connection, now_ms, state.config.session_idle.as_millis() as i64)
    })
    .await;
    if let Err(error) = swept {
        tracing::warn!(%error, "session sweep failed; retrying");
    }
}
