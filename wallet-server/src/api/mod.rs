//! What the API sends and receives, apart from HTTP: the answer of each ledger receipt, the
//! error answers and their codes, the wire form of times and ids. The write path (`writer`),
//! the handover tools and `http` depend on it; it depends on no actix type and never on `http`,
//! so the answer a payment gets is decided in one place whichever path committed it.

pub mod answer;
pub mod error;
pub mod wire;

pub use answer::{budget_body, render, Answer};
pub use error::{rejection, ApiError, ErrorCode};

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with a `Z`, as API.md writes times.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A fresh id for a transaction or history item this server mints: a UUIDv7, so ids minted
/// later sort later and each batch's rows land at the right-hand edge of the id indexes (a
/// random v4 id dirties a random index page per row, and every dirty page is written to the WAL
/// at each commit). Ids are not secrets: every read checks who asks.
pub fn new_tx_id() -> wallet_core::TxId {
    wallet_core::TxId::parse(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a valid id")
}
