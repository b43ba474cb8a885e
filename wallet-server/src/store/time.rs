//! Instants as the store keeps them: milliseconds since the Unix epoch in BIGINT `*_ms` columns.

use chrono::{DateTime, Utc};

use super::{StoreError, StoreResult};

/// `at` as stored: milliseconds since the epoch.
pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A stored instant; an error if the column holds a time chrono cannot represent.
pub fn instant(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms is out of range")))
}
