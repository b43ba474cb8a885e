//! City programs (PROGRAMS.md): allowance programs, their budgets, and the grants they pay into
//! wallets.
//!
//! A program's budget is an account of the ledger (money the city funded and has not granted),
//! and so is every grant's allowance purse (money granted to one wallet and not yet spent,
//! expired or refunded back). The rules here are pure: which merchants a program admits, when a
//! grant expires, what a budget has left.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::calendar::BusinessDate;
use crate::id::{GrantId, ProgramId, WalletId};
use crate::money::{Overflow, Won};
use crate::settlement::MerchantState;

/// The longest validity a grant may have: ten years.
pub const VALID_DAYS_MAX: u32 = 3_650;
/// At most this many categories in each of a program's category lists.
pub const CATEGORIES_MAX: usize = 64;
/// A merchant category is a short word of the city's own list ("restaurant", "mart").
pub const CATEGORY_LEN_MAX: usize = 64;
/// The most wallets one grant command may pay into (PROGRAMS.md: 1 to 1,000 per request).
pub const GRANTS_PER_COMMAND_MAX: usize = 1_000;

/// How long each grant of a program may be spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// Until 24:00 KST, this many days after the business date of the grant.
    Days(u32),
    /// Until 24:00 KST of this date, whenever the grant was made.
    Until(BusinessDate),
}

/// Why a program definition was refused; each names the field of PROGRAMS.md at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("valid_days must be from 1 to {VALID_DAYS_MAX}")]
    ValidDays,
    #[error("expires_on {0} is already over; give a date from today (KST) on")]
    ExpiresInThePast(BusinessDate),
    #[error("{field} holds at most {CATEGORIES_MAX} categories, each of 1 to {CATEGORY_LEN_MAX} characters")]
    Categories { field: &'static str },
}

impl ProgramError {
    /// The field of the program's JSON this error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ProgramError::ValidDays => "valid_days",
            ProgramError::ExpiresInThePast(_) => "expires_on",
            ProgramError::Categories { field } => field,
        }
    }
}

/// What an allowance program admits and how long its grants last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowanceRules {
    pub validity: Validity,
    /// Only merchants of these categories; empty admits every category.
    pub merchant_categories: Vec<String>,
    pub excluded_merchant_categories: Vec<String>,
    /// Merchants above this annual revenue, or of unknown revenue, are not admitted.
    pub merchant_annual_revenue_max: Option<Won>,
}

impl AllowanceRules {
    /// Checks a definition made at `now`: a validity that can still be spent, bounded lists.
    pub fn validate(self, now: DateTime<Utc>) -> Result<AllowanceRules, ProgramError> {
        match self.validity {
            Validity::Days(days) if !(1..=VALID_DAYS_MAX).contains(&days) => return Err(ProgramError::ValidDays),
            Validity::Until(date) if date < BusinessDate::of(now) => return Err(ProgramError::ExpiresInThePast(date)),
            _ => {}
        }
        for (field, list) in [
            ("merchant_categories", &self.merchant_categories),
            ("excluded_merchant_categories", &self.excluded_merchant_categories),
        ] {
            let bad = |category: &String| category.is_empty() || category.chars().count() > CATEGORY_LEN_MAX;
            if list.len() > CATEGORIES_MAX || list.iter().any(bad) {
                return Err(ProgramError::Categories { field });
            }
        }
        Ok(self)
    }

    /// Whether money of this program may pay `merchant`.
    pub fn admits(&self, merchant: &MerchantState) -> bool {
        let category = merchant.category.as_deref();
        let listed = |list: &[String]| category.is_some_and(|category| list.iter().any(|entry| entry == category));
        let category_admitted = self.merchant_categories.is_empty() || listed(&self.merchant_categories);
        let revenue_admitted = match self.merchant_annual_revenue_max {
            None => true,
            Some(max) => merchant.annual_revenue.is_some_and(|revenue| revenue <= max),
        };
        category_admitted && !listed(&self.excluded_merchant_categories) && revenue_admitted
    }

    /// When a grant made at `granted_at` expires: the end (24:00 KST) of its last day. `None`
    /// only past the end of the calendar.
    pub fn expires_at(&self, granted_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let last_day = match self.validity {
            Validity::Days(days) => BusinessDate::of(granted_at).plus_days(days)?,
            Validity::Until(date) => date,
        };
        last_day.end()
    }
}

/// An allowance program's budget (PROGRAMS.md): `remaining = funded − granted + returned`,
/// `granted = spent + returned + outstanding`. The budget account's balance is `remaining`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgramBudget {
    /// Everything the city put in.
    pub funded: Won,
    /// Everything granted to wallets.
    pub granted: Won,
    /// Paid to merchants from its allowances, net of refunds.
    pub spent: Won,
    /// Come back to the budget: by expiry, or by refunds after a grant's expiry.
    pub returned: Won,
}

impl ProgramBudget {
    /// What can still be granted. Never negative.
    pub fn remaining(&self) -> Won {
        let remaining = self
            .funded
            .checked_sub(self.granted)
            .and_then(|left| left.checked_add(self.returned))
            .expect("program totals stay far inside the decimal range");
        assert!(!remaining.is_negative(), "program budget below zero: {self:?}");
        remaining
    }

    /// What its grants still hold in wallets. Never negative.
    pub fn outstanding(&self) -> Won {
        let outstanding = self
            .granted
            .checked_sub(self.spent)
            .and_then(|left| left.checked_sub(self.returned))
            .expect("program totals stay far inside the decimal range");
        assert!(!outstanding.is_negative(), "program outstanding below zero: {self:?}");
        outstanding
    }

    pub fn add_spent(&mut self, won: Won) -> Result<(), Overflow> {
        self.spent = self.spent.checked_add(won)?;
        Ok(())
    }
}

/// A program as the ledger keeps it. Only allowance programs move money through grants; the
/// charge bonus program of PROGRAMS.md is not built yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramState {
    pub rules: AllowanceRules,
    pub budget: ProgramBudget,
}

/// One grant: an allowance purse of one wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantState {
    pub program: ProgramId,
    pub wallet: WalletId,
    /// What was granted.
    pub amount: Won,
    /// What the purse holds now (granted, less spent, plus refunds restored). Zero once swept.
    pub outstanding: Won,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl GrantState {
    /// Whether the purse may be shown and spent at `now`. An expired grant is neither, whether
    /// or not the sweep has returned its money yet.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// The order allowances are spent in (PROGRAMS.md): earliest expiry first, then the older
/// grant; ties by id, so the order is total.
pub fn spending_order(left: (&GrantId, &GrantState), right: (&GrantId, &GrantState)) -> std::cmp::Ordering {
    (left.1.expires_at, left.1.granted_at, left.0).cmp(&(right.1.expires_at, right.1.granted_at, right.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn rules(categories: &[&str], excluded: &[&str], revenue_max: Option<i64>) -> AllowanceRules {
        AllowanceRules {
            validity: Validity::Days(90),
            merchant_categories: categories.iter().map(|c| c.to_string()).collect(),
            excluded_merchant_categories: excluded.iter().map(|c| c.to_string()).collect(),
            merchant_annual_revenue_max: revenue_max.map(Won::from_i64),
        }
    }

    fn merchant(category: Option<&str>, revenue: Option<i64>) -> MerchantState {
        MerchantState {
            category: category.map(str::to_owned),
            annual_revenue: revenue.map(Won::from_i64),
            ..MerchantState::default()
        }
    }

    #[test]
    fn eligibility_by_category_exclusion_and_revenue() {
        let open = rules(&[], &["mart"], Some(3_000_000_000));
        assert!(open.admits(&merchant(Some("restaurant"), Some(3_000_000_000))));
        assert!(!open.admits(&merchant(Some("restaurant"), Some(3_000_000_001))));
        assert!(!open.admits(&merchant(Some("restaurant"), None)), "unknown revenue is excluded");
        assert!(!open.admits(&merchant(Some("mart"), Some(1))));
        assert!(open.admits(&merchant(None, Some(1))), "no category lists: any category");
        let listed = rules(&["restaurant"], &[], None);
        assert!(listed.admits(&merchant(Some("restaurant"), None)));
        assert!(!listed.admits(&merchant(Some("cafe"), None)));
        assert!(!listed.admits(&merchant(None, None)), "a listed program needs the merchant's category");
    }

    #[test]
    fn grants_expire_at_the_end_of_a_kst_day() {
        // 2027-01-10 23:30 KST: the grant's day is the 10th; 90 days later is 2027-04-10.
        let granted_at = utc("2027-01-10T14:30:00Z");
        assert_eq!(rules(&[], &[], None).expires_at(granted_at), Some(utc("2027-04-10T15:00:00Z")));
        let until = AllowanceRules {
            validity: Validity::Until(BusinessDate::parse("2027-12-31").unwrap()),
            ..rules(&[], &[], None)
        };
        assert_eq!(until.expires_at(granted_at), Some(utc("2027-12-31T15:00:00Z")));
    }

    #[test]
    fn definitions_are_bounded() {
        let now = utc("2027-01-10T00:00:00Z");
        let days = |days| AllowanceRules { validity: Validity::Days(days), ..rules(&[], &[], None) };
        assert_eq!(days(0).validate(now), Err(ProgramError::ValidDays));
        assert_eq!(days(VALID_DAYS_MAX + 1).validate(now), Err(ProgramError::ValidDays));
        assert!(days(1).validate(now).is_ok());
        let past = BusinessDate::parse("2027-01-09").unwrap();
        let until = AllowanceRules { validity: Validity::Until(past), ..rules(&[], &[], None) };
        assert_eq!(until.validate(now), Err(ProgramError::ExpiresInThePast(past)));
        assert_eq!(rules(&[""], &[], None).validate(now).unwrap_err().field(), "merchant_categories");
    }

    #[test]
    fn budget_identities() {
        let budget = ProgramBudget {
            funded: Won::from_i64(1_000),
            granted: Won::from_i64(700),
            spent: Won::from_i64(300),
            returned: Won::from_i64(100),
        };
        assert_eq!(budget.remaining(), Won::from_i64(400));
        assert_eq!(budget.outstanding(), Won::from_i64(300));
    }
}
