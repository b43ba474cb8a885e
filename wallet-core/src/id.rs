//! Identifiers of wallets, citizens, merchants, transactions and payment codes.
//!
//! Ids are opaque text, not UUIDs: a handover keeps the outgoing operator's identifiers valid
//! (HANDOVER.md: "any non-empty string up to 64 characters"), so cards, QR codes and bookmarks
//! keep working. Ids this system mints itself are UUIDs written as text. The core never mints
//! an id: the caller passes them in, so that every run is reproducible.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id accepted, in bytes.
pub const ID_LEN_MAX: usize = 64;

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the {kind} id is empty")]
    Empty { kind: &'static str },
    #[error("the {kind} id is {len} bytes long; at most {ID_LEN_MAX} are allowed")]
    TooLong { kind: &'static str, len: usize },
    #[error("the {kind} id contains a control character")]
    ControlCharacter { kind: &'static str },
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Non-empty, at most [`ID_LEN_MAX`] bytes, no control characters. Cheap to clone: the
        /// text is shared, because ids are copied into postings and history items.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(text: &str) -> Result<$name, IdError> {
                if text.is_empty() {
                    return Err(IdError::Empty { kind: $kind });
                }
                if text.len() > ID_LEN_MAX {
                    return Err(IdError::TooLong { kind: $kind, len: text.len() });
                }
                if text.chars().any(char::is_control) {
                    return Err(IdError::ControlCharacter { kind: $kind });
                }
                Ok($name(Arc::from(text)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A citizen's wallet: the account that holds the citizen's won.
    WalletId,
    "wallet"
);
id_type!(
    /// A merchant, and so its receivable account.
    MerchantId,
    "merchant"
);
id_type!(
    /// A ledger transaction, and the history items it writes (charge, gift, payment, refund,
    /// cashback, reversal, budget top-up, settlement, opening balance).
    TxId,
    "transaction"
);
id_type!(
    /// A single-use payment code shown by the citizen app to a merchant's terminal.
    PaymentCode,
    "payment code"
);
id_type!(
    /// A city program (PROGRAMS.md): its budget is an account of the ledger.
    ProgramId,
    "program"
);
id_type!(
    /// One grant of an allowance program to one wallet: the allowance purse it opens is an
    /// account of the ledger, and the grant's history item has the same id.
    GrantId,
    "grant"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_opaque_text_up_to_the_limit() {
        assert_eq!(WalletId::parse("W-000123").unwrap().as_str(), "W-000123");
        assert!(WalletId::parse("지갑-1").is_ok());
        assert!(WalletId::parse(&"x".repeat(ID_LEN_MAX)).is_ok());
        assert_eq!(
            MerchantId::parse(&"x".repeat(ID_LEN_MAX + 1)),
            Err(IdError::TooLong { kind: "merchant", len: ID_LEN_MAX + 1 })
        );
        assert_eq!(TxId::parse(""), Err(IdError::Empty { kind: "transaction" }));
        assert!(TxId::parse("a\nb").is_err());
    }
}
