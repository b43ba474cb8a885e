//! What the ledger is asked to do, and what it answers.

use chrono::{DateTime, Utc};

use crate::calendar::BusinessDate;
use crate::cashback::BudgetState;
use crate::history::HistoryItem;
use crate::id::{GrantId, MerchantId, PaymentCode, ProgramId, TxId, WalletId};
use crate::ledger::{Account, Transaction};
use crate::money::{Amount, AmountError, Overflow, Won};
use crate::payment::CodeProblem;
use crate::policy::{Policy, PolicyError};
use crate::program::ProgramBudget;
use crate::settlement::Settlement;

/// One command to the ledger. Every id the command creates is passed in by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A citizen tops up the wallet from a linked bank account. `bonus_id` names the charge
    /// bonus history item, if the charge earns one.
    Charge { id: TxId, bonus_id: TxId, wallet: WalletId, amount: Amount },
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
    /// The city funds an allowance program's budget.
    TopUpProgram { id: TxId, program: ProgramId, amount: Amount },
    /// The city grants allowances of a program: all lines or none (PROGRAMS.md). `id` names the
    /// transaction; each line's grant id names its allowance and its history item.
    Grant { id: TxId, program: ProgramId, lines: Vec<GrantLine> },
    /// What is left of an expired grant returns to its program's budget (the sweep's command).
    ExpireGrant { id: TxId, grant: GrantId },
}

/// One wallet's share of a [`Command::Grant`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantLine {
    pub grant: GrantId,
    pub wallet: WalletId,
    pub amount: Amount,
}

/// The accounts (or, in a wallet, the purses) a handover carries balances into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CarryOverAccount {
    /// The wallet's own purse.
    Wallet(WalletId),
    /// The wallet's bonus purse (HANDOVER.md version 2: `bonus`).
    Bonus(WalletId),
    Merchant(MerchantId),
    CashbackBudget,
    /// A program's budget: carried money counts as funded, like the cashback budget's.
    Program(ProgramId),
    /// A grant's allowance purse; a grant new to the book enters it first through
    /// [`crate::Book::open_grant`].
    Allowance(GrantId),
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
    /// `bonus` is the charge bonus the charge earned (0 without an open program).
    Charged {
        charge_id: TxId,
        amount: Amount,
        balance: Won,
        bonus: Won,
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
        paid_from: PaidFrom,
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
    ProgramToppedUp {
        program: ProgramId,
        budget: ProgramBudget,
    },
    ChargeBonusToppedUp {
        program: ProgramId,
        rules: crate::charge_bonus::ChargeBonusRules,
        budget: crate::charge_bonus::ChargeBonusBudget,
    },
    Granted {
        program: ProgramId,
        granted: usize,
        amount_total: Won,
        budget: ProgramBudget,
    },
    /// `returned` is zero when the grant had nothing left (spent, or swept before).
    GrantExpired {
        grant: GrantId,
        returned: Won,
    },
}

/// Which purses paid a payment (PROGRAMS.md): the three sum to its amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PaidFrom {
    pub allowances: Won,
    pub bonus: Won,
    pub own: Won,
}

/// Why one line of a grant command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantProblem {
    UnknownWallet,
    /// The wallet is on an earlier line of the same command.
    DuplicateWallet,
    /// The lines up to this one total more than the budget has left.
    BudgetExhausted,
    /// The line names a grant id that was granted already (a client that chooses its grant
    /// ids, as `wallet-server programs grant` does, retried a line that had landed).
    GrantExists,
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
    #[error(
        "wallet {0} is locked by the city: it cannot pay, charge, gift or issue payment codes; the citizen must \
             ask the city to unlock it"
    )]
    WalletLocked(WalletId),
    #[error(
        "merchant {0} is suspended by the city: it cannot take payments (refunds still work); ask the city to \
             reinstate it"
    )]
    MerchantSuspended(MerchantId),
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
    #[error("no program {0}")]
    UnknownProgram(ProgramId),
    #[error("no grant {0}")]
    UnknownGrant(GrantId),
    #[error("program {0} grants nothing any more: its last day is over")]
    ProgramOver(ProgramId),
    #[error("the grants were refused, none was made: {}", describe_grant_problems(.rows))]
    GrantsRefused { rows: Vec<(usize, GrantProblem)> },
    #[error("grant {0} has not expired yet")]
    GrantNotExpired(GrantId),
}

fn describe_grant_problems(rows: &[(usize, GrantProblem)]) -> String {
    let count = |wanted: GrantProblem| rows.iter().filter(|(_, problem)| *problem == wanted).count();
    let mut parts = Vec::new();
    for (problem, words) in [
        (GrantProblem::UnknownWallet, "an unknown wallet"),
        (GrantProblem::DuplicateWallet, "a wallet already on an earlier line"),
        (GrantProblem::BudgetExhausted, "more than the budget has left, counting the lines before"),
        (GrantProblem::GrantExists, "a grant id granted already"),
    ] {
        let rows = count(problem);
        if rows > 0 {
            parts.push(format!("{rows} line(s) name {words}"));
        }
    }
    format!("{}; see \"rows\"", parts.join(", "))
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
