//! The server's clock: the real time, or (with `WALLET_TEST_CLOCK=1`) the real time moved
//! forward by an offset the test clock endpoint sets. It never moves backward.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

pub struct Clock {
    test_clock: bool,
    offset_us: AtomicI64,
}

impl Clock {
    /// The real clock, or with `test_clock` a test clock `offset_us` ahead of the real time
    /// (the offset kept in the database, so a restart does not set it back).
    pub fn new(test_clock: bool, offset_us: i64) -> Clock {
        let offset_us = if test_clock { offset_us.max(0) } else { 0 };
        Clock { test_clock, offset_us: AtomicI64::new(offset_us) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::microseconds(self.offset_us.load(Ordering::SeqCst))
    }

    pub fn is_test_clock(&self) -> bool {
        self.test_clock
    }

    /// A clock `by` behind this one, never moved: what `serve --demo` dates its seeded history
    /// with (the day before, so that an admin can close and settle it at once). Not a test clock,
    /// and never the server's clock.
    pub fn earlier_by(&self, by: Duration) -> Clock {
        let behind_us = by.num_microseconds().unwrap_or(i64::MAX);
        Clock {
            test_clock: false,
            offset_us: AtomicI64::new(self.offset().num_microseconds().unwrap_or(0) - behind_us),
        }
    }

    /// How far this clock is ahead of the real time (zero unless it is a test clock moved on).
    pub fn offset(&self) -> Duration {
        Duration::microseconds(self.offset_us.load(Ordering::SeqCst))
    }

    /// Moves the clock to `target`; refuses to go backward. Returns the new offset from the
    /// real time in microseconds, for the caller to keep.
    pub fn move_to(&self, target: DateTime<Utc>) -> Result<i64, DateTime<Utc>> {
        let now = self.now();
        if target < now {
            return Err(now);
        }
        let offset = (target - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        Ok(self.offset_us.fetch_max(offset, Ordering::SeqCst).max(offset))
    }
}
