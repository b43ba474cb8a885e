//! A citizen's wallet: its purses and the month's limit counters.
//!
//! A wallet holds its money in purses (PROGRAMS.md): `own` (charges, gifts received), `bonus`
//! (cashback: city money that may not be gifted) and one allowance purse per grant. The wallet
//! account of the ledger is `own + bonus` (the `balance` here); each allowance is an account of
//! its own ([`crate::program::GrantState`]), so what the citizen sees as the balance is the sum
//! of the three.

use chrono::{DateTime, Utc};

use crate::calendar::Month;
use crate::id::{GrantId, ProgramId};
use crate::money::{Overflow, Won};
use crate::policy::Policy;
use crate::program::GrantState;

/// What the ledger keeps of a wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletState {
    /// `own + bonus`: the wallet account's balance, what counts toward the holding limit.
    /// Never negative: the core refuses what would make it so.
    pub balance: Won,
    /// The bonus purse, part of `balance`: `0 <= bonus <= balance`.
    pub bonus: Won,
    /// The month's counters, as of the month they name. A later month reads them as zero.
    pub counters: MonthCounters,
    /// The city locked the wallet (a lost phone, suspected fraud): it charges, gifts, issues
    /// payment codes and pays no more, and a code issued before the lock pays nothing; it still
    /// receives (gifts, refunds, grants) and keeps its balance. Set by the city, never by a
    /// command: the core only reads it, as the server loads it with the balance.
    pub locked: bool,
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
    /// Charged won that used the charge bonus quota this month (against a charge bonus
    /// program's `monthly_charge_cap`).
    pub bonus_quota_used: Won,
}

impl MonthCounters {
    pub fn zero(month: Month) -> MonthCounters {
        MonthCounters {
            month,
            charged: Won::ZERO,
            eligible_spent: Won::ZERO,
            cashback_earned: Won::ZERO,
            cashback_reversed: Won::ZERO,
            bonus_quota_used: Won::ZERO,
        }
    }
}

impl WalletState {
    /// A new, empty wallet.
    pub fn new(month: Month) -> WalletState {
        WalletState { balance: Won::ZERO, bonus: Won::ZERO, counters: MonthCounters::zero(month), locked: false }
    }

    /// The own purse: what may be gifted.
    pub fn own(&self) -> Won {
        let own = self.balance.checked_sub(self.bonus).expect("purses are far inside the decimal range");
        assert!(!own.is_negative() && !self.bonus.is_negative(), "wallet purses below zero: {self:?}");
        own
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

    /// What the citizen app shows for this wallet at `now` under `policy`, with its grants
    /// (the live ones are shown, in spending order; expired ones are not, swept or not).
    pub fn view<'a>(
        &self,
        now: DateTime<Utc>,
        policy: &Policy,
        grants: impl IntoIterator<Item = (&'a GrantId, &'a GrantState)>,
    ) -> Result<WalletView, Overflow> {
        let month = Month::of(now);
        let counters = self.counters_in(month);
        let mut live: Vec<_> =
            grants.into_iter().filter(|(_, grant)| grant.is_live(now) && !grant.outstanding.is_zero()).collect();
        live.sort_unstable_by(|left, right| crate::program::spending_order(*left, *right));
        let mut balance = self.balance;
        let mut allowances = Vec::with_capacity(live.len());
        for (id, grant) in live {
            balance = balance.checked_add(grant.outstanding)?;
            allowances.push(AllowanceView {
                grant_id: id.clone(),
                program_id: grant.program.clone(),
                amount: grant.outstanding,
                expires_at: grant.expires_at,
            });
        }
        Ok(WalletView {
            balance,
            own: self.own(),
            bonus: self.bonus,
            allowances,
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

/// A wallet as the citizen sees it (API.md, `GET /v1/wallet`, with PROGRAMS.md's purses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletView {
    /// The sum of the purses shown.
    pub balance: Won,
    pub own: Won,
    pub bonus: Won,
    /// The live allowances, in spending order.
    pub allowances: Vec<AllowanceView>,
    pub month: Month,
    pub charged_this_month: Won,
    pub charge_limit_remaining: Won,
    /// Gross: every cashback credited this month, whatever refunds took back since.
    pub cashback_earned_this_month: Won,
    /// `cashback_earned_this_month` less what refunds of this month's payments reversed.
    pub cashback_net_this_month: Won,
    pub cashback_eligible_spend_remaining: Won,
}

/// One allowance purse as the citizen sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowanceView {
    pub grant_id: GrantId,
    pub program_id: ProgramId,
    pub amount: Won,
    pub expires_at: DateTime<Utc>,
}
