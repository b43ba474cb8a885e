//! The chart of accounts and balanced transactions.
//!
//! Sign convention: every account has one signed balance, and the balances of all accounts sum
//! to zero at every instant (the trial balance). What the system owes somebody is positive:
//! a citizen's wallet, a merchant's receivable, the city's unspent cashback budget, the merchant
//! fees earned, the money paid out in settlement. Where money came from is negative: bank
//! clearing (won charged in by citizens and funded by the city) and the handover account
//! (balances carried over from the outgoing operator).
//!
//! A [`Transaction`] can only be built from [`Transfer`]s, each of which moves one amount from one
//! account to another, so an unbalanced transaction cannot be constructed.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{GrantId, MerchantId, ProgramId, TxId, WalletId};
use crate::money::{Amount, Won};

/// The kinds of account in the chart, without the owner. One row each in the trial balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A citizen's won. Never negative.
    CitizenWallet,
    /// What the system owes a merchant for payments not yet settled. Negative when refunds
    /// outran payments (the negative net carried to the next settlement).
    MerchantReceivable,
    /// The city's unspent cashback budget. Never negative.
    CashbackBudget,
    /// The banks' side of every won that came in: charges and budget top-ups. Negative.
    BankClearing,
    /// Everything ever paid out to merchants' bank accounts in settlement. Positive.
    SettlementPayouts,
    /// Merchant fees retained at settlement. Positive.
    FeeIncome,
    /// The counterpart of balances carried over from the outgoing operator.
    HandoverOpening,
    /// One grant's allowance purse: program money in a wallet, not yet spent. Never negative.
    CitizenAllowance,
    /// A program's budget not yet granted. Never negative.
    ProgramBudget,
}

impl AccountKind {
    pub const ALL: [AccountKind; 9] = [
        AccountKind::CitizenWallet,
        AccountKind::MerchantReceivable,
        AccountKind::CashbackBudget,
        AccountKind::BankClearing,
        AccountKind::SettlementPayouts,
        AccountKind::FeeIncome,
        AccountKind::HandoverOpening,
        AccountKind::CitizenAllowance,
        AccountKind::ProgramBudget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::CitizenWallet => "citizen_wallet",
            AccountKind::MerchantReceivable => "merchant_receivable",
            AccountKind::CashbackBudget => "cashback_budget",
            AccountKind::BankClearing => "bank_clearing",
            AccountKind::SettlementPayouts => "settlement_payouts",
            AccountKind::FeeIncome => "fee_income",
            AccountKind::HandoverOpening => "handover_opening",
            AccountKind::CitizenAllowance => "citizen_allowance",
            AccountKind::ProgramBudget => "program_budget",
        }
    }

    /// Whether the core refuses any operation that would take such an account below zero.
    pub fn must_not_go_negative(self) -> bool {
        matches!(
            self,
            AccountKind::CitizenWallet
                | AccountKind::CashbackBudget
                | AccountKind::CitizenAllowance
                | AccountKind::ProgramBudget
        )
    }
}

/// One account of the ledger: a kind, and the owner for the kinds that have many accounts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    Wallet(WalletId),
    Merchant(MerchantId),
    CashbackBudget,
    BankClearing,
    SettlementPayouts,
    FeeIncome,
    HandoverOpening,
    Allowance(GrantId),
    Program(ProgramId),
}

impl Account {
    pub fn kind(&self) -> AccountKind {
        match self {
            Account::Wallet(_) => AccountKind::CitizenWallet,
            Account::Merchant(_) => AccountKind::MerchantReceivable,
            Account::CashbackBudget => AccountKind::CashbackBudget,
            Account::BankClearing => AccountKind::BankClearing,
            Account::SettlementPayouts => AccountKind::SettlementPayouts,
            Account::FeeIncome => AccountKind::FeeIncome,
            Account::HandoverOpening => AccountKind::HandoverOpening,
            Account::Allowance(_) => AccountKind::CitizenAllowance,
            Account::Program(_) => AccountKind::ProgramBudget,
        }
    }
}

impl Account {
    /// The account in words for a person reading an error (the citizen at the counter, the
    /// merchant at the till): no internal notation, no ids they did not send.
    pub fn in_words(&self) -> &'static str {
        match self {
            Account::Wallet(_) => "the wallet",
            Account::Merchant(_) => "the merchant's account",
            Account::CashbackBudget => "the cashback budget",
            Account::Allowance(_) => "the allowance",
            Account::Program(_) => "the program's budget",
            Account::BankClearing | Account::SettlementPayouts | Account::FeeIncome | Account::HandoverOpening => {
                "the city's account"
            }
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Wallet(id) => write!(formatter, "citizen_wallet:{id}"),
            Account::Merchant(id) => write!(formatter, "merchant_receivable:{id}"),
            Account::Allowance(id) => write!(formatter, "citizen_allowance:{id}"),
            Account::Program(id) => write!(formatter, "program_budget:{id}"),
            other => formatter.write_str(other.kind().as_str()),
        }
    }
}

/// What a transaction is, for the books and for the export of history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    Charge,
    Gift,
    Payment,
    Refund,
    CashbackBudgetTopUp,
    Settlement,
    OpeningBalance,
    ProgramTopUp,
    AllowanceGrant,
    AllowanceExpiry,
    ChargeBonus,
}

/// One amount moved from one account to another: the atom of a balanced transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: Account,
    pub to: Account,
    pub amount: Amount,
}

/// One line of a transaction: a signed change to one account's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    pub amount: Won,
}

/// A balanced double-entry transaction: its postings sum to zero by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    id: TxId,
    kind: TxKind,
    at: DateTime<Utc>,
    postings: Vec<Posting>,
}

impl Transaction {
    /// Builds a transaction from transfers; each transfer becomes a debit and a credit of the
    /// same amount, so the postings sum to zero whatever the transfers are.
    pub fn from_transfers(
        id: TxId,
        kind: TxKind,
        at: DateTime<Utc>,
        transfers: impl IntoIterator<Item = Transfer>,
    ) -> Transaction {
        let transfers = transfers.into_iter();
        let mut postings = Vec::with_capacity(transfers.size_hint().0 * 2);
        for transfer in transfers {
            assert_ne!(transfer.from, transfer.to, "a transfer from an account to itself");
            postings.push(Posting { account: transfer.from, amount: transfer.amount.won().negate() });
            postings.push(Posting { account: transfer.to, amount: transfer.amount.won() });
        }
        let transaction = Transaction { id, kind, at, postings };
        debug_assert!(transaction.sum().is_zero(), "unbalanced transaction {transaction:?}");
        transaction
    }

    pub fn id(&self) -> &TxId {
        &self.id
    }

    pub fn kind(&self) -> TxKind {
        self.kind
    }

    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// The sum of the postings; zero for every transaction that exists.
    pub fn sum(&self) -> Won {
        self.postings
            .iter()
            .try_fold(Won::ZERO, |total, posting| total.checked_add(posting.amount))
            .expect("a transaction's amounts are each at most 10^12")
    }

    /// The net change this transaction makes to one account.
    pub fn net_change(&self, account: &Account) -> Won {
        self.postings
            .iter()
            .filter(|posting| &posting.account == account)
            .try_fold(Won::ZERO, |total, posting| total.checked_add(posting.amount))
            .expect("a transaction's amounts are each at most 10^12")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_from_transfers_are_balanced() {
        let wallet = Account::Wallet(WalletId::parse("w1").unwrap());
        let merchant = Account::Merchant(MerchantId::parse("m1").unwrap());
        let transaction = Transaction::from_transfers(
            TxId::parse("t1").unwrap(),
            TxKind::Payment,
            DateTime::UNIX_EPOCH,
            [
                Transfer { from: wallet.clone(), to: merchant.clone(), amount: Amount::from_i64(12_345).unwrap() },
                Transfer {
                    from: Account::CashbackBudget,
                    to: wallet.clone(),
                    amount: Amount::from_i64(1_234).unwrap(),
                },
            ],
        );
        assert!(transaction.sum().is_zero());
        assert_eq!(transaction.postings().len(), 4);
        assert_eq!(transaction.net_change(&wallet), Won::from_i64(-11_111));
        assert_eq!(transaction.net_change(&merchant), Won::from_i64(12_345));
        assert_eq!(transaction.net_change(&Account::CashbackBudget), Won::from_i64(-1_234));
    }

    #[test]
    #[should_panic(expected = "to itself")]
    fn a_transfer_to_the_same_account_is_a_bug() {
        let wallet = Account::Wallet(WalletId::parse("w1").unwrap());
        Transaction::from_transfers(
            TxId::parse("t1").unwrap(),
            TxKind::Gift,
            DateTime::UNIX_EPOCH,
            [Transfer { from: wallet.clone(), to: wallet, amount: Amount::from_i64(1).unwrap() }],
        );
    }
}
