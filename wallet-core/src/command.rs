//! What the ledger is asked to do, and what it answers.

use chrono::{DateTime, Utc};

use crate::calendar::BusinessDate;
use crate::cashback::BudgetState;
use crate::history::HistoryItem;
use crate::id::{MerchantId, PaymentCode, TxId, WalletId};
use crate::ledger::{Account, Transaction};
use crate::money::{Amount, AmountError, Overflow, Won};
use crate::payment::CodeProblem;
use crate::policy::{Policy, PolicyError};
use crate::settlement::Settlement;

/// One command to the ledger. Every id the command creates is passed in by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A citizen tops up the wallet from a linked bank account.
    Charge { id: TxId, wallet: WalletId, amount: Amount },
    /// Wallet to wallet. `gift_in_id` names the receiver's history item (`id` the sender's), so
    /// every history item has its own id.
    Gift { id: TxId, gift_in_id: TxId, from: WalletId, to: WalletId, amount: Amount },
    /// A merchant takes a payment against a citizen's payment code. `cashback_id` names the
    /// cashback history item, if the payment earns any.
    Pay { id: TxId, cashback_id: TxId, merchant: MerchantId, code: PaymentCode, amount: Amount },
    /// A merchant refunds part or all of one of its payments. `reversal_id` names the cashback
    /// reversal history item, if any cashback is reversed.
    Refund { id: TxId, reversal_id: TxId, merchant: MerchantId, payment: TxId, amount: Amount },
    /// The city funds the cashback budget.
    TopUpBudget { id: TxId, amount: Amount },
    /// The city changes the policy; validated before it takes effect.
    SetPolicy { policy: Policy },
    /// The city closes a past business date: fees and payouts leave the receivables.
    CloseDay { id: TxId, date: BusinessDate },
    /// A balance carried over from the outgoing operator (or adjusted by a handover delta):
    /// moves `amount` (signed, non-zero) between the handover account and `account`.
    CarryOver { id: TxId, account: CarryOverAccount, amount: Won },
    /// A citizen asks for a payment code for `wallet`: single use, valid for 180 seconds. The
    /// caller mints `code` from a secure random source (it is the citizen's authorisation), so it
    /// is new: the core does not look it up.
    IssueCode { code: PaymentCode, wallet: WalletId },
}

/// The accounts a handover carries balances into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CarryOverAccount {
    Wallet(WalletId),
    Merchant(MerchantId),
    CashbackBudget,
}

/// What an applied command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub receipt: Receipt,
    /// The balanced transaction, if money moved.
    pub transaction: Option<Transaction>,
    /// History items, in the order they happened.
    pub history: Vec<HistoryItem>,
    /// The balance of every account the transaction touched, after it.
    pub balances: Vec<(Account, Won)>,
}

/// The answer to each command, with the figures API.md returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    Charged {
        charge_id: TxId,
        amount: Amount,
        balance: Won,
    },
    Gifted {
        gift_id: TxId,
        amount: Amount,
        balance: Won,
    },
    Paid {
        payment_id: TxId,
        wallet: WalletId,
        amount: Amount,
        cashback: Won,
        at: DateTime<Utc>,
    },
    Refunded {
        refund_id: TxId,
        amount: Amount,
        cashback_reversed: Won,
    },
    BudgetToppedUp {
        budget: BudgetState,
    },
    PolicySet {
        policy: Policy,
    },
    /// `newly_closed` is false when the date had been closed before: the stored settlement is
    /// returned again and nothing moves.
    DayClosed {
        settlement: Settlement,
        newly_closed: bool,
    },
    CarriedOver {
        account: Account,
        balance: Won,
    },
    CodeIssued {
        code: PaymentCode,
        expires_at: DateTime<Utc>,
    },
}

/// Why a command was refused. A refused command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("insufficient funds: {} holds {available} won, {needed} won are needed", account.in_words())]
    InsufficientFunds { account: Account, available: Won, needed: Won },
    #[error("{0}")]
    LimitExceeded(Limit),
    #[error("{}", match .0 {
        CodeProblem::Unknown => "the payment code is unknown; ask the customer to show a fresh code",
        CodeProblem::Expired => "the payment code has expired; codes are valid for 180 seconds, ask for a fresh one",
        CodeProblem::Used => "the payment code was already used; each code pays once, ask for a fresh one",
    })]
    PaymentCodeInvalid(CodeProblem),
    #[error("the refund is more than what is left to refund of the payment: {refundable} won")]
    RefundExceedsPayment { refundable: Won },
    #[error("no wallet {0}")]
    UnknownWallet(WalletId),
    #[error("no merchant {0}")]
    UnknownMerchant(MerchantId),
    #[error("no payment {0} of this merchant")]
    UnknownPayment(TxId),
    #[error("a gift to one's own wallet is not possible; choose another wallet")]
    GiftToSelf,
    #[error("business date {date} cannot be closed yet: only dates before today ({today}, KST) can be closed")]
    DateNotClosable { date: BusinessDate, today: BusinessDate },
    #[error("policy refused: {0}")]
    InvalidPolicy(#[from] PolicyError),
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("the amounts involved are beyond what the ledger can hold")]
    Overflow,
}

impl From<Overflow> for Rejection {
    fn from(_: Overflow) -> Rejection {
        Rejection::Overflow
    }
}

/// Which limit a command would have passed, with the figures a person needs to act.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error(
        "the monthly charge limit of {limit} won would be passed: {remaining} won can still be charged this month"
    )]
    MonthlyCharge { limit: Won, remaining: Won },
    #[error("the holding limit of {limit} won would be passed: the wallet can receive {room} won more")]
    Holding { limit: Won, room: Won },
}
