//! The server's background work, for as long as it runs: one task per module.
//!
//! - `line`: this server's mirror of the waiting line kept in step with the shared one;
//! - `sessions`: citizen sessions idle or past their lifetime deleted, giving their slots back;
//! - `expiry`: idempotency records and payment codes past their retention deleted;
//! - `throttle`: login-throttle records with nothing left to say purged, and the failed logins
//!   shared with the other servers of the database;
//! - `allowances`: expired grants' money returned to their programs;
//! - `books`: the trial balance taken, for the status and metrics endpoints.
//!
//! The first five run on one schedule ([`keep_line_and_sweeps`]): the line every
//! [`LINE_SYNC_INTERVAL`], and every [`SWEEP_EVERY_TICKS`]-th time the four sweeps first, in
//! that order, then the line, so a sweep's effects come in the same order on every tick. The
//! trial balance runs on its own ([`keep_books_checked`]): it is slow and must not hold up the
//! line. So does the throttle's sharing ([`keep_throttle_shared`]), which must not wait for the
//! sweeps either. A job reads and changes the shared state (`crate::state`) and the database; none uses the
//! HTTP layer, and each logs its failure and tries again at its next turn.

mod allowances;
mod books;
mod expiry;
mod line;
mod sessions;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

pub use books::{keep_books_checked, BOOKS_CHECK_INTERVAL};

use crate::state::AppState;

/// How often each server re-reads the shared waiting line.
pub const LINE_SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// The sweeps run every this many line syncs (5 s).
pub const SWEEP_EVERY_TICKS: u64 = 10;

/// How often each server shares its failed logins with the others and charges theirs: a
/// failure on one server counts on all within two of these (`auth::throttle`).
pub const THROTTLE_SHARE_INTERVAL: Duration = Duration::from_millis(500);

/// Keeps the login throttle one for all the servers of the database, for the life of the
/// server: every [`THROTTLE_SHARE_INTERVAL`] the failed logins shared, and every
/// [`SWEEP_EVERY_TICKS`] of those, after them, the shared ones past their time deleted. Returns
/// at once with `WALLET_THROTTLE=off`.
pub async fn keep_throttle_shared(state: Arc<AppState>) {
    if state.throttle.is_none() {
        return;
    }
    let mut sharing = throttle::Sharing::new();
    let mut interval = tokio::time::interval(THROTTLE_SHARE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        interval.tick().await;
        ticks += 1;
        throttle::share(&state, &mut sharing).await;
        if ticks % SWEEP_EVERY_TICKS == 0 {
            throttle::purge_shared(&state).await;
        }
    }
}

/// Keeps this server's mirror of the waiting line in step with the shared one and runs the
/// sweeps, for the life of the server: every [`LINE_SYNC_INTERVAL`] the line, and every
/// [`SWEEP_EVERY_TICKS`] line syncs, before it, the sessions, the expired records, the
/// throttle and the expired allowances.
pub async fn keep_line_and_sweeps(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(LINE_SYNC_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        interval.tick().await;
        ticks += 1;
        if ticks % SWEEP_EVERY_TICKS == 0 {
            sessions::sweep(&state).await;
            expiry::sweep(&state).await;
            throttle::purge(&state);
            allowances::sweep(&state).await;
            let suppressed = crate::log_limits::take_suppressed();
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "malformed requests: log lines suppressed since the last sweep (at most {} a second are \
                     logged; wallet_malformed_requests_total counts them all)",
                    crate::log_limits::LINES_PER_SECOND_MAX
                );
            }
        }
        line::sync(&state).await;
    }
}
