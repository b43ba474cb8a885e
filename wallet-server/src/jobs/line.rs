//! The waiting line's sync: each server mirrors the line shared through the database
//! (`store::waiting`) in its own `WaitingRoom`. A sync writes the polls this server saw, drops
//! tickets unpolled for [`TICKET_POLL_GRACE_MS`], and rebuilds the mirror from the shared order,
//! so every server answers a ticket with the same place.

use std::sync::Arc;

use crate::admission::waiting_room::{LineEntry, TICKET_POLL_GRACE_MS};
use crate::state::{with_connection, AppState};
use crate::store;

/// Syncs the mirror with the shared line once (a failure is logged; the next sync retries).
pub(super) async fn sync(state: &Arc<AppState>) {
    let Ok(touched) = state.waiting_room.lock().map(|mut room| room.take_touched()) else { return };
    let cutoff_ms = store::time::millis(state.clock.now()) - TICKET_POLL_GRACE_MS;
    let line = with_connection(state, move |connection, _| store::waiting::sync(connection, &touched, cutoff_ms)).await;
    match line {
        Ok(line) => {
            if let Ok(mut room) = state.waiting_room.lock() {
                room.rebuild(
                    line.into_iter()
                        .map(|row| LineEntry {
                            ticket: row.ticket,
                            login: row.login,
                            polled_ms: row.polled_ms,
                            line_seq: row.seq,
                        })
                        .collect(),
                );
            }
        }
        Err(error) => tracing::warn!(%error, "waiting line sync failed; retrying"),
    }
}
