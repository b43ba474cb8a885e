//! The login throttle's upkeep (see `auth::throttle`): the purge, which drops records that have
//! nothing left to say, so its maps stay well under `WALLET_THROTTLE_ENTRIES_MAX`; and the
//! sharing, which makes it one throttle for all the servers of the database: every
//! [`super::THROTTLE_SHARE_INTERVAL`] a server writes the failures it saw since the last time and
//! charges the ones the other servers wrote (`store::login_failures`). Nothing with
//! `WALLET_THROTTLE=off`.

use std::sync::Arc;

use crate::auth::throttle::{AddressKey, Failure, LoginKey};
use crate::state::{with_connection, AppState};
use crate::store;
use crate::store::login_failures::{FailureRow, NewFailure};

/// Shared failures read by one sync at most (10,000 a second): far more than the servers of a
/// database check passwords in that time, so a sync reads all there are except when a server
/// starts and reads the last [`SHARED_KEPT_MS`] back; what is left is read by the next.
pub const SHARED_READ_ROWS_MAX: i64 = 5_000;

/// Shared failures are deleted this long after they failed (every few seconds, by every server).
/// A server reads them within a second; the rest of the minute lets a server that starts charge
/// the failures of the minute before (a restart hands a guesser no fresh burst) and bounds the
/// table by the failures of one minute.
pub const SHARED_KEPT_MS: i64 = 60_000;

/// Purges the throttle's spent records.
pub(super) fn purge(state: &AppState) {
    if let Some(throttle) = state.throttle.as_ref() {
        let now_ms = store::time::millis(state.clock.now());
        if let Ok(mut throttle) = throttle.lock() {
            throttle.purge(now_ms);
        }
    }
}

/// What this server's sharing knows: its own id in the table, and how far it has read.
pub(super) struct Sharing {
    /// Random, new at every start: a server skips its own rows (it charged them when they
    /// failed) and, once restarted, charges its former self's like any other server's.
    server_id: i64,
    /// The last row read.
    read_seq: i64,
}

impl Sharing {
    pub(super) fn new() -> Sharing {
        Sharing { server_id: rand::random(), read_seq: 0 }
    }
}

/// Writes the failures seen here since the last sync and charges the ones other servers wrote
/// since then (a failure is logged; unwritten failures wait for the next sync, unread rows too).
pub(super) async fn share(state: &Arc<AppState>, sharing: &mut Sharing) {
    let Some(throttle) = state.throttle.as_ref() else { return };
    let Ok(unshared) = throttle.lock().map(|mut throttle| throttle.take_unshared()) else { return };
    let rows: Vec<NewFailure> = unshared
        .iter()
        .map(|failure| NewFailure {
            login_key: failure.login.map(|key| key.0),
            address_key: failure.address.map(|key| key.0),
            failed_ms: failure.failed_ms,
        })
        .collect();
    let (server_id, read_seq) = (sharing.server_id, sharing.read_seq);
    let done = with_connection(state, move |connection, _| {
        let written = store::login_failures::append(connection, server_id, &rows);
        let read = store::login_failures::read_after(connection, read_seq, SHARED_READ_ROWS_MAX);
        Ok((written, read))
    })
    .await;
    let (written, read) = match done {
        Ok((written, read)) => (written.map_err(|error| error.to_string()), read.map_err(|error| error.to_string())),
        Err(error) => (Err(error.to_string()), Err(error.to_string())),
    };
    let Ok(mut throttle) = throttle.lock() else { return };
    match written {
        Ok(()) => throttle.return_unshared(unshared.len(), Vec::new()),
        Err(error) => {
            tracing::warn!(%error, failures = unshared.len(), "could not share failed logins; retrying");
            throttle.return_unshared(0, unshared);
        }
    }
    match read {
        Ok(rows) => {
            let now_ms = store::time::millis(state.clock.now());
            for row in rows {
                sharing.read_seq = row.seq;
                if row.server_id != sharing.server_id {
                    throttle.charge_shared(failure_of(&row), now_ms);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "could not read the failed logins of the other servers; retrying"),
    }
}

fn failure_of(row: &FailureRow) -> Failure {
    Failure { login: row.login_key.map(LoginKey), address: row.address_key.map(AddressKey), failed_ms: row.failed_ms }
}

/// Deletes the shared failures older than [`SHARED_KEPT_MS`].
pub(super) async fn purge_shared(state: &Arc<AppState>) {
    if state.throttle.is_none() {
        return;
    }
    let cutoff_ms = store::time::millis(state.clock.now()) - SHARED_KEPT_MS;
    let purged = with_connection(state, move |connection, _| store::login_failures::purge(connection, cutoff_ms)).await;
    if let Err(error) = purged {
        tracing::warn!(%error, "could not delete old shared failed logins; retrying");
    }
}
