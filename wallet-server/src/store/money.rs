//! Amounts as the store keeps them: whole won (the currency has no subunit) in BIGINT columns,
//! and counts in BIGINT too.

use wallet_core::Won;

use super::{corrupt, StoreError, StoreResult};

/// A stored amount as won.
pub fn db_won(value: i64) -> Won {
    Won::from_i64(value)
}

/// `value` as stored; an error if it does not fit a BIGINT.
pub fn won_to_db(value: Won) -> StoreResult<i64> {
    value.to_i64().ok_or_else(|| StoreError::Corrupt(format!("amount {value} does not fit a BIGINT")))
}

/// A count as stored; an error if it does not fit a BIGINT.
pub fn count_to_db(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|error| corrupt("count", error))
}
