//! The trial balance: each account kind's balance summed over its accounts, and their total.
//!
//! Every transaction sums to zero (`Transaction::from_transfers`), so the balances of all
//! accounts total zero at every instant. A trial balance checks that over balances as they are
//! stored, so a non-zero total is a broken invariant found in data read back, not a step the
//! core just took: [`TrialBalance::check`] reports it as [`Unbalanced`] instead of panicking,
//! and the caller decides. The server logs it and shows itself degraded (the books must be
//! examined, and it keeps serving the reads that examine them); `serve --demo` refuses to start;
//! the tests assert it.

use std::collections::BTreeMap;

use crate::ledger::AccountKind;
use crate::money::{Overflow, Won};

/// The balance of every account kind, in the order of [`AccountKind::ALL`], and their total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialBalance {
    balances: BTreeMap<AccountKind, Won>,
    total: Won,
}

/// A trial balance that does not total zero: the books must be examined before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the trial balance totals {total} won, not 0; examine the books before anything else")]
pub struct Unbalanced {
    pub total: Won,
}

impl TrialBalance {
    /// Sums `balances` by kind. A kind may come once (a sum already taken, as a database query
    /// gives it) or once per account (as a book holds them); a kind that does not come is zero.
    /// `Err` only when a sum leaves the decimal range.
    pub fn sum(balances: impl IntoIterator<Item = (AccountKind, Won)>) -> Result<TrialBalance, Overflow> {
        let mut sums: BTreeMap<AccountKind, Won> = AccountKind::ALL.iter().map(|kind| (*kind, Won::ZERO)).collect();
        let mut total = Won::ZERO;
        for (kind, balance) in balances {
            let sum = sums.get_mut(&kind).expect("every kind is in AccountKind::ALL");
            *sum = sum.checked_add(balance)?;
            total = total.checked_add(balance)?;
        }
        Ok(TrialBalance { balances: sums, total })
    }

    /// The balance of every kind, in the order of [`AccountKind::ALL`].
    pub fn balances(&self) -> impl Iterator<Item = (AccountKind, Won)> + '_ {
        self.balances.iter().map(|(kind, balance)| (*kind, *balance))
    }

    pub fn balance(&self, kind: AccountKind) -> Won {
        self.balances[&kind]
    }

    /// The sum of every balance: zero while the books hold together.
    pub fn total(&self) -> Won {
        self.total
    }

    /// `Ok` when the total is zero; else the total, for the caller to report.
    pub fn check(&self) -> Result<(), Unbalanced> {
        if self.total.is_zero() {
            Ok(())
        } else {
            Err(Unbalanced { total: self.total })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(value: i64) -> Won {
        Won::from_i64(value)
    }

    #[test]
    fn balances_are_summed_by_kind_in_chart_order() {
        let trial_balance = TrialBalance::sum([
            (AccountKind::BankClearing, won(-1_000)),
            (AccountKind::CitizenWallet, won(300)),
            (AccountKind::CitizenWallet, won(500)),
            (AccountKind::CashbackBudget, won(200)),
        ])
        .unwrap();
        assert_eq!(trial_balance.balance(AccountKind::CitizenWallet), won(800));
        assert_eq!(trial_balance.balance(AccountKind::FeeIncome), Won::ZERO);
        let kinds: Vec<AccountKind> = trial_balance.balances().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, AccountKind::ALL);
        assert_eq!(trial_balance.total(), Won::ZERO);
        assert_eq!(trial_balance.check(), Ok(()));
    }

    #[test]
    fn a_total_other_than_zero_is_reported_with_its_figure() {
        let trial_balance =
            TrialBalance::sum([(AccountKind::CitizenWallet, won(700)), (AccountKind::BankClearing, won(-500))])
                .unwrap();
        assert_eq!(trial_balance.total(), won(200));
        let unbalanced = trial_balance.check().unwrap_err();
        assert_eq!(unbalanced, Unbalanced { total: won(200) });
        assert_eq!(
            unbalanced.to_string(),
            "the trial balance totals 200 won, not 0; examine the books before anything else"
        );
    }

    #[test]
    fn sums_beyond_the_decimal_range_are_an_error() {
        let huge = Won::from_decimal(rust_decimal::Decimal::MAX).unwrap();
        assert_eq!(
            TrialBalance::sum([(AccountKind::FeeIncome, huge), (AccountKind::FeeIncome, won(1))]),
            Err(Overflow)
        );
        assert_eq!(
            TrialBalance::sum([(AccountKind::FeeIncome, huge), (AccountKind::SettlementPayouts, huge)]),
            Err(Overflow)
        );
        assert!(TrialBalance::sum([]).unwrap().check().is_ok());
    }
}
