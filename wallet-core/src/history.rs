//! History items: what a citizen sees in the wallet's transaction list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{MerchantId, TxId, WalletId};
use crate::money::Won;

/// The kinds of history item (API.md, Citizen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Charge,
    Payment,
    Cashback,
    Refund,
    CashbackReversal,
    GiftIn,
    GiftOut,
    MigratedOpeningBalance,
    AllowanceGranted,
    AllowanceExpired,
    ChargeBonus,
}

impl HistoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Charge => "charge",
            HistoryKind::Payment => "payment",
            HistoryKind::Cashback => "cashback",
            HistoryKind::Refund => "refund",
            HistoryKind::CashbackReversal => "cashback_reversal",
            HistoryKind::GiftIn => "gift_in",
            HistoryKind::GiftOut => "gift_out",
            HistoryKind::MigratedOpeningBalance => "migrated_opening_balance",
            HistoryKind::AllowanceGranted => "allowance_granted",
            HistoryKind::AllowanceExpired => "allowance_expired",
            HistoryKind::ChargeBonus => "charge_bonus",
        }
    }
}

/// Who was on the other side of a history item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Counterparty {
    Wallet(WalletId),
    Merchant(MerchantId),
}

/// One line of a wallet's history. `amount` is signed as seen from the wallet; `balance_after`
/// is the wallet's balance right after this item, so a list can be audited line by line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryItem {
    pub id: TxId,
    pub wallet: WalletId,
    pub kind: HistoryKind,
    pub amount: Won,
    pub balance_after: Won,
    pub at: DateTime<Utc>,
    pub counterparty: Option<Counterparty>,
    /// The payment a cashback, refund or cashback reversal belongs to.
    pub related: Option<TxId>,
}

impl HistoryItem {
    /// The same item, belonging to `payment`.
    pub fn of_payment(self, payment: &TxId) -> HistoryItem {
        HistoryItem { related: Some(payment.clone()), ..self }
    }
}
