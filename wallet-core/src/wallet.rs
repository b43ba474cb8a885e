//! A citizen's wallet: its balance and the month's limit counters.

use serde::Serialize;

use crate::calendar::Month;
use crate::money::{Overflow, Won};
use crate::policy::Policy;

/// What the ledger keeps of a wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletState {
    /// Won the citizen holds. Never negative: the core refuses what would make it so.
    pub balance: Won,
    /// The month's counters, as of the month they name. A later month reads them as zero.
    pub counters: MonthCounters,
}

/// A wallet's running totals for one KST month: what the monthly limits are measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthCounters {
    pub month: Month,
    /// Won charged in this month (against `monthly_charge_limit`).
    pub charged: Won,
    /// Spend that earned cashback this month, net of what refunds gave back (against
    /// `cashback_monthly_spend_cap`).
    pub eligible_spent: Won,
    /// Cashback credited this month, before reversals (gross).
    pub cashback_earned: Won,
    /// Of `cashback_earned`, what refunds of this month's payments have taken back since.
    /// Refunds of an earlier month's payment reverse that month's cashback, not this one's.
    pub cashback_reversed: Won,
}

impl MonthCounters {
    pub fn zero(month: Month) -> MonthCounters {
        MonthCounters {
            month,
            charged: Won::ZERO,
            eligible_spent: Won::ZERO,
            cashback_earned: Won::ZERO,
            cashback_reversed: Won::ZERO,
        }
    }
}

impl WalletState {
    /// A new, empty wallet.
    pub fn new(month: Month) -> WalletState {
        WalletState { balance: Won::ZERO, counters: MonthCounters::zero(month) }
    }

    /// The counters for `month`: the stored ones if they are of that month, zero otherwise.
    /// This is how limits reset by month without a job that visits every wallet.
    pub fn counters_in(&self, month: Month) -> MonthCounters {
        if self.counters.month == month {
            self.counters
        } else {
            MonthCounters::zero(month)
        }
    }

    /// What the citizen app shows for this wallet in `month` under `policy`.
    pub fn view(&self, month: Month, policy: &Policy) -> Result<WalletView, Overflow> {
        let counters = self.counters_in(month);
        Ok(WalletView {
            balance: self.balance,
            month,
            charged_this_month: counters.charged,
            charge_limit_remaining: policy.monthly_charge_limit.remaining_after(counters.charged)?,
            cashback_earned_this_month: counters.cashback_earned,
            cashback_net_this_month: counters.cashback_earned.checked_sub(counters.cashback_reversed)?,
            cashback_eligible_spend_remaining: policy
                .cashback_monthly_spend_cap
                .remaining_after(counters.eligible_spent)?,
        })
    }
}

/// A wallet as the citizen sees it (API.md, `GET /v1/wallet`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletView {
    pub balance: Won,
    pub month: Month,
    pub charged_this_month: Won,
    pub charge_limit_remaining: Won,
    /// Gross: every cashback credited this month, whatever refunds took back since.
    pub cashback_earned_this_month: Won,
    /// `cashback_earned_this_month` less what refunds of this month's payments reversed.
    pub cashback_net_this_month: Won,
    pub cashback_eligible_spend_remaining: Won,
}
