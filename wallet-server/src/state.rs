//! What one server shares between its request handlers and its background jobs (`jobs`): the
//! configuration, the database pool, the writer, the clock, the password threads, the waiting
//! room, the session count and cache, the login throttle, and what the jobs last found.
//!
//! Neither HTTP nor a job owns it: `main.rs` builds it once, the HTTP layer hands it to the
//! handlers (as actix data) and the jobs hold it, so a job never reaches into the HTTP layer.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use wallet_core::Won;

use crate::admission::gate::Gate;
use crate::admission::waiting_room::WaitingRoom;
use crate::api::ApiError;
use crate::auth::sessions::{SessionCache, SessionCount};
use crate::auth::throttle::Throttle;
use crate::auth::PasswordPool;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::expiry::SweptCounts;
use crate::store::{DbConn, DbPool, StoreError};
use crate::writer::Writer;

/// The state of one server.
pub struct AppState {
    pub config: Config,
    pub pool: DbPool,
    pub writer: Writer,
    pub clock: Arc<Clock>,
    pub passwords: PasswordPool,
    /// One waiting room for the whole server (not one per worker).
    pub waiting_room: Mutex<WaitingRoom>,
    pub sessions_active: SessionCount,
    pub gate: Arc<Gate>,
    /// Sessions checked in the last second (see `auth::sessions::cache`).
    pub session_cache: SessionCache,
    /// When this server started (for its uptime).
    pub started: Instant,
    /// The last trial balance taken in the background (`jobs::books`).
    pub books: BooksCheck,
    /// The login throttle, one for the whole server; `None` with `WALLET_THROTTLE=off`.
    pub throttle: Option<Mutex<Throttle>>,
    /// Rows the periodic sweep deleted since the start: (idempotency records, payment codes).
    pub swept: SweptCounts,
}

/// Runs blocking database work on a pooled connection, off the async workers (on the blocking
/// threads of the runtime that awaits it).
pub async fn with_connection<T, F>(state: &Arc<AppState>, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &AppState) -> Result<T, StoreError> + Send + 'static,
{
    let state = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut connection = state.pool.get()?;
        work(&mut connection, &state)
    })
    .await;
    done.map_err(|_| ApiError::overloaded("the server's worker pool is saturated; try again shortly"))?
        .map_err(ApiError::from)
}

/// A trial balance taken.
#[derive(Clone, Copy, Debug)]
pub struct BooksChecked {
    /// The sum of every account kind's balance: zero in sound books.
    pub total: Won,
    /// When, for ages (monotonic).
    pub taken: Instant,
    /// When, on the server's clock.
    pub at: DateTime<Utc>,
}

#[derive(Default)]
struct BooksInner {
    last: Option<BooksChecked>,
    failures_total: u64,
}

/// The last trial balance this server took.
#[derive(Default)]
pub struct BooksCheck {
    inner: Mutex<BooksInner>,
}

impl BooksCheck {
    pub fn last(&self) -> Option<BooksChecked> {
        self.inner.lock().ok().and_then(|inner| inner.last)
    }

    pub fn failures_total(&self) -> u64 {
        self.inner.lock().map(|inner| inner.failures_total).unwrap_or(0)
    }

    /// A trial balance was taken: it is the last one.
    pub fn taken(&self, checked: BooksChecked) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.last = Some(checked);
        }
    }

    /// A trial balance could not be taken.
    pub fn failed(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.failures_total += 1;
        }
    }
}
