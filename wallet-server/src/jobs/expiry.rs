//! The expiry sweep: idempotency records and payment codes past their retention are deleted, a
//! batch of each at a time (`store::expiry`), so the tables that grow with every payment do not
//! grow forever. Neither deletion changes an answer about money.

use std::sync::Arc;
use std::time::Duration;

use crate::state::{with_connection, AppState};
use crate::store;

/// Deletes a batch of each past its retention and counts them in `AppState::swept` (a failure is
/// logged; the next sweep retries).
pub(super) async fn sweep(state: &Arc<AppState>) {
    let expired = with_connection(state, |connection, state| {
        let now_ms = store::time::millis(state.clock.now());
        let retention_ms = |retention: Duration| i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let records = store::idempotency::delete_idempotency_before(
            connection,
            now_ms.saturating_sub(retention_ms(state.config.idempotency_retention)),
            store::expiry::SWEEP_BATCH_ROWS_MAX,
        )?;
        let codes = store::payment_codes::delete_codes_expired_before(
            connection,
            now_ms.saturating_sub(retention_ms(state.config.payment_code_retention)),
            store::expiry::SWEEP_BATCH_ROWS_MAX,
        )?;
        Ok((records, codes))
    })
    .await;
    match expired {
        Ok((records, codes)) => state.swept.add(records, codes),
        Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying"),
    }
}
