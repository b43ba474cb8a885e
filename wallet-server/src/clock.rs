//! The server's clock: the real time, or (with `WALLET_TEST_CLOCK=1`) the real time moved
//! forward by an offset the test clock endpoint sets. It never moves backward.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

pub struct Clock {
    test_clock: bool,
    offset_us: AtomicI64,
}

impl Clock {
    pub fn new(test_clock: bool) -> Clock {
        Clock { test_clock, offset_us: AtomicI64::new(0) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::microseconds(self.offset_us.load(Ordering::SeqCst))
    }

    pub fn is_test_clock(&self) -> bool {
        self.test_clock
    }

    /// Moves the clock to `target`; refuses to go backward.
    pub fn move_to(&self, target: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let now = self.now();
        if target < now {
            return Err(now);
        }
        let offset = (target - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        self.offset_us.fetch_max(offset, Ordering::SeqCst);
        Ok(())
    }
}
