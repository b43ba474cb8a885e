//! The charge bonus program (PROGRAMS.md): a bonus on charges, paid from a budget split into
//! cohorts that open one after another, so that nobody gains by racing the opening and no cohort
//! can spend another's money.
//!
//! Pure rules: which cohort a wallet is in, when its window is open, how a top-up splits into
//! shares, and what one charge earns against the citizen's monthly quota and the cohort's share.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::id::WalletId;
use crate::money::{Overflow, Rate, Won};

/// The most cohorts a program may have: enough to spread a month's opening over every day.
pub const COHORTS_MAX: u32 = 31;
/// The longest gap between two cohorts' openings: a week.
pub const COHORT_INTERVAL_MAX_S: u32 = 7 * 86_400;

/// What a charge bonus program pays and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeBonusRules {
    /// Of the charged won that earn it: 0 < rate ≤ 1.
    pub rate: Rate,
    /// Per citizen and KST month: charged won that earn the bonus.
    pub monthly_charge_cap: Won,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// 1 to [`COHORTS_MAX`].
    pub cohorts: u32,
    /// Cohort c opens `c × cohort_interval_s` after `opens_at`.
    pub cohort_interval_s: u32,
}

/// Why a charge bonus definition was refused; each names its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChargeBonusError {
    #[error("rate must be above 0 and at most 1")]
    Rate,
    #[error("monthly_charge_cap must be at least 1 won")]
    Cap,
    #[error("closes_at must be after opens_at, and after now")]
    Window,
    #[error("cohorts must be from 1 to {COHORTS_MAX}")]
    Cohorts,
    #[error(
        "cohort_interval_s must be from 0 to {COHORT_INTERVAL_MAX_S}, and every cohort must open before closes_at"
    )]
    Interval,
}

impl ChargeBonusError {
    pub fn field(&self) -> &'static str {
        match self {
            ChargeBonusError::Rate => "rate",
            ChargeBonusError::Cap => "monthly_charge_cap",
            ChargeBonusError::Window => "closes_at",
            ChargeBonusError::Cohorts => "cohorts",
            ChargeBonusError::Interval => "cohort_interval_s",
        }
    }
}

impl ChargeBonusRules {
    /// Checks a definition made at `now`.
    pub fn validate(self, now: DateTime<Utc>) -> Result<ChargeBonusRules, ChargeBonusError> {
        if self.rate == Rate::ZERO {
            return Err(ChargeBonusError::Rate);
        }
        if self.monthly_charge_cap <= Won::ZERO {
            return Err(ChargeBonusError::Cap);
        }
        if self.closes_at <= self.opens_at || self.closes_at <= now {
            return Err(ChargeBonusError::Window);
        }
        if !(1..=COHORTS_MAX).contains(&self.cohorts) {
            return Err(ChargeBonusError::Cohorts);
        }
        let last_opens = self.cohort_opens_at(self.cohorts - 1);
        if self.cohort_interval_s > COHORT_INTERVAL_MAX_S || last_opens >= self.closes_at {
            return Err(ChargeBonusError::Interval);
        }
        Ok(self)
    }

    /// The cohort of a wallet: the first four bytes of SHA-256 of its id, big-endian, modulo
    /// the number of cohorts. Any system can compute it, and nobody can choose it.
    pub fn cohort_of(&self, wallet: &WalletId) -> u32 {
        let digest = Sha256::digest(wallet.as_str().as_bytes());
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        first % self.cohorts
    }

    /// When cohort `cohort` may start to earn the bonus.
    pub fn cohort_opens_at(&self, cohort: u32) -> DateTime<Utc> {
        self.opens_at + Duration::seconds(i64::from(cohort) * i64::from(self.cohort_interval_s))
    }

    /// Whether a charge by `wallet` at `now` is in its cohort's window.
    pub fn is_open_for(&self, wallet: &WalletId, now: DateTime<Utc>) -> bool {
        self.cohort_opens_at(self.cohort_of(wallet)) <= now && now < self.closes_at
    }

    /// What a wallet shows of the program: its cohort's window and its quota left this month
    /// (`bonus_quota_used`: the wallet's counter of the KST month of `now`).
    pub fn view_for(&self, wallet: &WalletId, bonus_quota_used: Won) -> Result<ChargeBonusView, Overflow> {
        Ok(ChargeBonusView {
            opens_at: self.cohort_opens_at(self.cohort_of(wallet)),
            closes_at: self.closes_at,
            quota_remaining: self.monthly_charge_cap.remaining_after(bonus_quota_used)?,
        })
    }

    /// Whether two programs' windows overlap (at most one may be open at any instant).
    pub fn overlaps(&self, other: &ChargeBonusRules) -> bool {
        self.opens_at < other.closes_at && other.opens_at < self.closes_at
    }
}

/// A charge bonus program as a wallet sees it (`GET /v1/wallet`'s `charge_bonus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargeBonusView {
    /// When this wallet's cohort opens.
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub quota_remaining: Won,
}

/// A charge bonus program as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeBonusState {
    pub rules: ChargeBonusRules,
    pub budget: ChargeBonusBudget,
}

impl ChargeBonusState {
    /// A new program, its budget empty.
    pub fn new(rules: ChargeBonusRules) -> ChargeBonusState {
        let budget = ChargeBonusBudget::new(rules.cohorts);
        ChargeBonusState { rules, budget }
    }

    /// Whether the program's window (from its first cohort's opening) holds `now`.
    pub fn is_running(&self, now: DateTime<Utc>) -> bool {
        self.rules.opens_at <= now && now < self.rules.closes_at
    }
}

/// One cohort's part of the budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CohortShare {
    pub share: Won,
    pub paid_out: Won,
}

impl CohortShare {
    pub fn remaining(&self) -> Won {
        let remaining = self.share.checked_sub(self.paid_out).expect("shares are far inside the decimal range");
        assert!(!remaining.is_negative(), "a cohort paid out beyond its share: {self:?}");
        remaining
    }
}

/// A charge bonus program's budget: what was funded, split into cohorts' shares.
/// `funded = Σ share`, `paid_out = Σ paid_out`, `remaining = funded − paid_out`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeBonusBudget {
    pub cohorts: Vec<CohortShare>,
}

impl ChargeBonusBudget {
    pub fn new(cohorts: u32) -> ChargeBonusBudget {
        ChargeBonusBudget { cohorts: vec![CohortShare::default(); cohorts as usize] }
    }

    pub fn funded(&self) -> Won {
        self.cohorts.iter().try_fold(Won::ZERO, |sum, cohort| sum.checked_add(cohort.share)).expect("within range")
    }

    pub fn paid_out(&self) -> Won {
        self.cohorts.iter().try_fold(Won::ZERO, |sum, cohort| sum.checked_add(cohort.paid_out)).expect("within range")
    }

    pub fn remaining(&self) -> Won {
        self.funded().checked_sub(self.paid_out()).expect("within range")
    }

    /// A top-up of `amount`: `floor(amount / cohorts)` to each cohort, the remainder to cohort 0.
    pub fn top_up(&mut self, amount: Won) -> Result<(), Overflow> {
        let cohorts = Won::from_i64(self.cohorts.len() as i64);
        let each = amount.floor_share(Won::from_i64(1), cohorts)?;
        let mut given = Won::ZERO;
        for cohort in &mut self.cohorts {
            cohort.share = cohort.share.checked_add(each)?;
            given = given.checked_add(each)?;
        }
        let remainder = amount.checked_sub(given)?;
        self.cohorts[0].share = self.cohorts[0].share.checked_add(remainder)?;
        Ok(())
    }
}

/// What one charge earns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Earned {
    pub bonus: Won,
    /// What of the citizen's monthly quota the charge used.
    pub quota_used: Won,
}

/// The bonus of a charge of `charged` (PROGRAMS.md): `floor(min(charged, quota_left) × rate)`,
/// limited by what is left of the cohort's share. The quota is used by `min(charged,
/// quota_left)` when the share paid the whole bonus, else only by `ceil(bonus / rate)`, so an
/// empty share uses none of it and a later top-up finds the citizen's quota whole.
pub fn earned(charged: Won, quota_left: Won, rate: Rate, share_left: Won) -> Result<Earned, Overflow> {
    let eligible = charged.min(quota_left).max(Won::ZERO);
    let full = eligible.floor_times(rate)?;
    let bonus = full.min(share_left.max(Won::ZERO));
    let quota_used = if bonus == full { eligible } else { bonus.ceil_over(rate)?.min(eligible) };
    assert!(bonus <= full && quota_used <= eligible, "bonus {bonus} of {full}, quota {quota_used} of {eligible}");
    Ok(Earned { bonus, quota_used })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(value: i64) -> Won {
        Won::from_i64(value)
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn rules(cohorts: u32) -> ChargeBonusRules {
        ChargeBonusRules {
            rate: Rate::parse("0.10").unwrap(),
            monthly_charge_cap: won(500_000),
            opens_at: utc("2027-03-01T00:00:00Z"),
            closes_at: utc("2027-04-01T00:00:00Z"),
            cohorts,
            cohort_interval_s: 86_400,
        }
    }

    #[test]
    fn a_cohort_is_the_first_four_bytes_of_sha256_modulo_the_cohorts() {
        // SHA-256("abc") = ba7816bf…: 0xba7816bf = 3128432319; mod 5 = 4, mod 7 = 3.
        let abc = WalletId::parse("abc").unwrap();
        assert_eq!(rules(5).cohort_of(&abc), 3_128_432_319 % 5);
        assert_eq!(rules(7).cohort_of(&abc), 3_128_432_319 % 7);
        assert_eq!(rules(1).cohort_of(&abc), 0);
        let program = rules(5);
        let opens = program.cohort_opens_at(4);
        assert_eq!(opens, utc("2027-03-05T00:00:00Z"));
        assert!(!program.is_open_for(&abc, opens - Duration::seconds(1)));
        assert!(program.is_open_for(&abc, opens));
        assert!(!program.is_open_for(&abc, utc("2027-04-01T00:00:00Z")));
    }

    #[test]
    fn top_ups_split_evenly_with_the_remainder_to_cohort_zero() {
        let mut budget = ChargeBonusBudget::new(3);
        budget.top_up(won(1_000)).unwrap();
        assert_eq!(budget.cohorts.iter().map(|c| c.share).collect::<Vec<_>>(), [won(334), won(333), won(333)]);
        budget.top_up(won(2)).unwrap();
        assert_eq!(budget.cohorts.iter().map(|c| c.share).collect::<Vec<_>>(), [won(336), won(333), won(333)]);
        assert_eq!(budget.funded(), won(1_002));
    }

    #[test]
    fn a_charge_earns_within_quota_and_share() {
        let rate = Rate::parse("0.1").unwrap();
        // Whole bonus: the quota is used by what earned it.
        assert_eq!(
            earned(won(100_000), won(500_000), rate, won(1_000_000)).unwrap(),
            Earned { bonus: won(10_000), quota_used: won(100_000) }
        );
        // The quota limits what earns.
        assert_eq!(
            earned(won(100_000), won(30_000), rate, won(1_000_000)).unwrap(),
            Earned { bonus: won(3_000), quota_used: won(30_000) }
        );
        // The share cuts the bonus: only ceil(bonus / rate) of the quota is used.
        assert_eq!(
            earned(won(100_000), won(500_000), rate, won(2_345)).unwrap(),
            Earned { bonus: won(2_345), quota_used: won(23_450) }
        );
        // An empty share: nothing earned, no quota used; the charge itself is not refused here.
        assert_eq!(
            earned(won(100_000), won(500_000), rate, Won::ZERO).unwrap(),
            Earned { bonus: Won::ZERO, quota_used: Won::ZERO }
        );
        // A rate whose inverse is not whole: ceil(7 / 0.3) = 24.
        let third = Rate::parse("0.3").unwrap();
        assert_eq!(
            earned(won(1_000), won(1_000), third, won(7)).unwrap(),
            Earned { bonus: won(7), quota_used: won(24) }
        );
    }

    #[test]
    fn definitions_are_bounded() {
        let now = utc("2027-02-01T00:00:00Z");
        assert!(rules(5).validate(now).is_ok());
        assert_eq!(ChargeBonusRules { rate: Rate::ZERO, ..rules(1) }.validate(now), Err(ChargeBonusError::Rate));
        assert_eq!(rules(0).validate(now), Err(ChargeBonusError::Cohorts));
        assert_eq!(rules(32).validate(now).unwrap_err().field(), "cohorts");
        let late = ChargeBonusRules { cohort_interval_s: 8 * 86_400, ..rules(2) };
        assert_eq!(late.validate(now), Err(ChargeBonusError::Interval));
        assert_eq!(rules(1).validate(utc("2027-05-01T00:00:00Z")), Err(ChargeBonusError::Window));
        assert!(rules(1).overlaps(&rules(3)));
        let april = ChargeBonusRules {
            opens_at: utc("2027-04-01T00:00:00Z"),
            closes_at: utc("2027-05-01T00:00:00Z"),
            ..rules(1)
        };
        assert!(!rules(1).overlaps(&april), "a program may open as the last closes");
    }
}
