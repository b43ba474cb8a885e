//! The city's cashback budget and the cashback rule.

use serde::Serialize;

use crate::money::{Overflow, Rate, Won};

/// The city's cashback budget, as the back office sees it. The budget account's balance is
/// `remaining`, derived here so that it cannot disagree with the three totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BudgetState {
    /// Everything the city has put in (top-ups, and the balance carried over at a handover).
    pub funded: Won,
    /// Cashback credited to wallets.
    pub paid_out: Won,
    /// Cashback taken back by refunds, which returns to the budget.
    pub reversed: Won,
}

impl BudgetState {
    /// `funded - paid_out + reversed`: what can still be paid. Never negative.
    pub fn remaining(&self) -> Won {
        let remaining = self
            .funded
            .checked_sub(self.paid_out)
            .and_then(|left| left.checked_add(self.reversed))
            .expect("budget totals stay far inside the decimal range");
        assert!(!remaining.is_negative(), "cashback budget below zero: {self:?}");
        remaining
    }
}

/// The cashback of one payment (API.md, Money rules):
/// `eligible = min(amount, what is left of the month's spend cap)`,
/// `cashback = min(floor(eligible × rate), what is left in the budget)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cashback {
    pub eligible: Won,
    pub cashback: Won,
}

impl Cashback {
    pub fn of_payment(
        amount: Won,
        cap_remaining: Won,
        rate: Rate,
        budget_remaining: Won,
    ) -> Result<Cashback, Overflow> {
        let eligible = amount.min(cap_remaining);
        let cashback = eligible.floor_times(rate)?.min(budget_remaining);
        assert!(!eligible.is_negative() && !cashback.is_negative());
        assert!(cashback <= eligible, "cashback {cashback} above eligible spend {eligible}");
        Ok(Cashback { eligible, cashback })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(value: i64) -> Won {
        Won::from_i64(value)
    }

    #[test]
    fn cashback_floors_and_respects_cap_and_budget() {
        let rate = Rate::parse("0.1").unwrap();
        assert_eq!(
            Cashback::of_payment(won(12_345), won(500_000), rate, won(1_000_000)).unwrap(),
            Cashback { eligible: won(12_345), cashback: won(1_234) }
        );
        assert_eq!(
            Cashback::of_payment(won(12_345), won(5_000), rate, won(1_000_000)).unwrap(),
            Cashback { eligible: won(5_000), cashback: won(500) }
        );
        assert_eq!(
            Cashback::of_payment(won(12_345), won(500_000), rate, won(700)).unwrap(),
            Cashback { eligible: won(12_345), cashback: won(700) }
        );
        assert_eq!(
            Cashback::of_payment(won(12_345), won(500_000), rate, won(0)).unwrap(),
            Cashback { eligible: won(12_345), cashback: won(0) }
        );
        assert_eq!(
            Cashback::of_payment(won(12_345), won(0), rate, won(1_000)).unwrap(),
            Cashback { eligible: won(0), cashback: won(0) }
        );
    }
}
