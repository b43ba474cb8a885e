//! The pure ledger of a regional currency.
//!
//! Money ([`money`]), the chart of accounts and balanced transactions ([`ledger`]), the city's
//! [`policy`], wallets, payments, cashback, settlement, the [`book`] that applies
//! [`command::Command`]s to the state of the accounts they touch, the [`keys`] of what a
//! batch of commands needs loaded, and the [`trial_balance`] that checks the books.
//!
//! This crate does no I/O, reads no clock and draws no random numbers: the caller passes in the
//! instant and every id, so the same commands on the same state always give the same result.
//! That is what lets the server apply batches in memory, the handover importer replay history,
//! and the property tests check every invariant after every step.

pub mod book;
pub mod calendar;
pub mod cashback;
pub mod charge_bonus;
pub mod command;
pub mod history;
pub mod id;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod payment;
pub mod policy;
pub mod program;
pub mod settlement;
pub mod trial_balance;
pub mod wallet;

pub use book::{Book, Changes, SystemBalances};
pub use calendar::{BusinessDate, Month};
pub use cashback::BudgetState;
pub use charge_bonus::{ChargeBonusBudget, ChargeBonusRules, ChargeBonusState, CohortShare};
pub use command::{CarryOverAccount, Command, GrantLine, GrantProblem, Limit, Outcome, PaidFrom, Receipt, Rejection};
pub use history::{Counterparty, HistoryItem, HistoryKind};
pub use id::{GrantId, MerchantId, PaymentCode, ProgramId, TxId, WalletId};
pub use keys::Keys;
pub use ledger::{Account, AccountKind, Posting, Transaction, TxKind};
pub use money::{Amount, AmountError, Rate, Won};
pub use payment::{AllowancePart, CodeProblem, PaymentCodeState, PaymentState, PurseParts};
pub use policy::Policy;
pub use program::{AllowanceRules, GrantState, ProgramBudget, ProgramError, ProgramState, Validity};
pub use settlement::{DaySales, MerchantState, Settlement, SettlementLine};
pub use trial_balance::{TrialBalance, Unbalanced};
pub use wallet::{AllowanceView, WalletState, WalletView};
