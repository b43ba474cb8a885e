//! Deleting what has outlived its use, so tables that grow with every payment do not grow
//! forever: idempotency records past their retention (`WALLET_IDEMPOTENCY_RETENTION_S`) and
//! payment codes past their expiry plus `WALLET_PAYMENT_CODE_RETENTION_S`. Each server's sweep
//! (every 5 s, beside the session sweep) deletes at most about [`SWEEP_BATCH_ROWS_MAX`] rows of
//! each table per run, oldest first, so a backlog is worked off in short transactions that never
//! hold the write lock long. The deletions are the tables' own
//! (`idempotency::delete_idempotency_before`, `payment_codes::delete_codes_expired_before`);
//! this holds their bound and what the sweeps did.
//!
//! Neither deletion changes an answer about money: a payment code gone is refused as unknown
//! instead of used or expired (`payment_code_invalid` all the same), and an Idempotency-Key past
//! its retention is treated as new by the writer whether or not its record is gone yet.

use std::sync::atomic::{AtomicU64, Ordering};

/// Rows deleted from each table per sweep at most (plus those sharing the last one's millisecond).
/// At one sweep every 5 s that is 17 million rows a day per table per server.
pub const SWEEP_BATCH_ROWS_MAX: i64 = 1_000;

/// What this server's sweeps have done since it started, for `/metrics`.
#[derive(Default)]
pub struct SweptCounts {
    sweeps: AtomicU64,
    idempotency: AtomicU64,
    payment_codes: AtomicU64,
}

impl SweptCounts {
    pub fn add(&self, idempotency: usize, payment_codes: usize) {
        self.idempotency.fetch_add(idempotency as u64, Ordering::Relaxed);
        self.payment_codes.fetch_add(payment_codes as u64, Ordering::Relaxed);
        self.sweeps.fetch_add(1, Ordering::Relaxed);
    }

    /// (idempotency records, payment codes) deleted.
    pub fn totals(&self) -> (u64, u64) {
        (self.idempotency.load(Ordering::Relaxed), self.payment_codes.load(Ordering::Relaxed))
    }

    /// Sweeps completed.
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Relaxed)
    }
}
