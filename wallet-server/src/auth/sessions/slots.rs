//! Citizen session slots as this server counts them, and the slot a citizen login holds from
//! the moment the waiting room lets it in.
//!
//! The count decides who may try to log in; the slot itself is taken in the database,
//! atomically with the session (`store::sessions::insert_citizen_session_within`), so a count that
//! is off for a moment lets one login too many try or keeps one waiting, never more sessions
//! than the capacity.

use std::future::Future;
use std::sync::Mutex;

use crate::api::ApiError;

/// How long a count of active citizen sessions is used before it is taken again.
const SESSION_COUNT_REFRESH_MS: i64 = 250;

/// Citizen sessions holding a slot: read from the database (shared by every server on it) at
/// most every [`SESSION_COUNT_REFRESH_MS`], plus the logins let in and the logouts seen here
/// since. It decides who may try; the slot itself is taken atomically with the session.
#[derive(Default)]
pub struct SessionCount {
    /// (counted in the database, when, change seen here since).
    inner: Mutex<(i64, i64, i64)>,
}

impl SessionCount {
    /// The slots in use at `now_ms`: the last count with the changes seen since, or, when that
    /// count is older than [`SESSION_COUNT_REFRESH_MS`], what `count_stored` (a read of the
    /// database) says now.
    pub async fn current<F, Counted>(&self, now_ms: i64, count_stored: F) -> Result<i64, ApiError>
    where
        F: FnOnce() -> Counted,
        Counted: Future<Output = Result<i64, ApiError>>,
    {
        {
            let inner = self.inner.lock().map_err(|_| ApiError::internal())?;
            if inner.1 > 0 && now_ms - inner.1 < SESSION_COUNT_REFRESH_MS && now_ms >= inner.1 {
                return Ok(inner.0 + inner.2);
            }
        }
        let counted = count_stored().await?;
        let mut inner = self.inner.lock().map_err(|_| ApiError::internal())?;
        *inner = (counted, now_ms, 0);
        Ok(counted)
    }

    /// A citizen login let in by the waiting room: counted as holding a slot while the
    /// [`SessionSlot`] lives, and after it for good if the session is made.
    pub fn admit(&self) -> SessionSlot<'_> {
        self.change(1);
        SessionSlot { count: Some(self) }
    }

    /// A citizen session ended here (a logout): its slot is free.
    pub fn note_released(&self) {
        self.change(-1);
    }

    fn change(&self, by: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.2 += by;
        }
    }
}

/// The slot of a citizen login let in. Dropped, it is given back to the count: the login
/// ended without a session (no password yet, a wrong one, the password queue full, another
/// server took the last slot, an error, or the client went away). [`SessionSlot::keep`] when
/// the session is made: the session holds the slot from then on, until its logout or its sweep.
#[must_use = "a slot dropped at once is given back at once"]
pub struct SessionSlot<'a> {
    /// `None` once kept.
    count: Option<&'a SessionCount>,
}

impl SessionSlot<'_> {
    /// The session was made: the slot stays counted.
    pub fn keep(mut self) {
        self.count = None;
    }
}

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.count.take() {
            count.note_released();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_now(count: &SessionCount, now_ms: i64) -> i64 {
        let current = count.current(now_ms, || async { Ok(10) });
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(current).expect("a count")
    }

    #[test]
    fn a_slot_is_given_back_when_dropped_and_stays_when_kept() {
        let count = SessionCount::default();
        assert_eq!(count_now(&count, 1_000), 10);
        let dropped = count.admit();
        assert_eq!(count_now(&count, 1_001), 11);
        drop(dropped);
        assert_eq!(count_now(&count, 1_002), 10);
        count.admit().keep();
        assert_eq!(count_now(&count, 1_003), 11);
        count.note_released();
        assert_eq!(count_now(&count, 1_004), 10);
    }

    #[test]
    fn the_count_is_taken_again_once_it_is_old() {
        let count = SessionCount::default();
        assert_eq!(count_now(&count, 1_000), 10);
        count.admit().keep();
        assert_eq!(count_now(&count, 1_000 + SESSION_COUNT_REFRESH_MS - 1), 11);
        assert_eq!(count_now(&count, 1_000 + SESSION_COUNT_REFRESH_MS), 10, "the database's count again");
        // A clock that went backward does not trust the count either.
        assert_eq!(count_now(&count, 999), 10);
    }
}
