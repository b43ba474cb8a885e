//! Payments, their refunds, and the single-use codes that authorise them.

use chrono::{DateTime, Duration, Utc};

use crate::calendar::Month;
use crate::id::{GrantId, MerchantId, WalletId};
use crate::money::{Amount, Overflow, Won};

/// How long a payment code is valid after it is issued (API.md: 180 seconds).
pub const PAYMENT_CODE_TTL_SECONDS: i64 = 180;

/// A payment code as the ledger keeps it. The code text itself is minted by the server from a
/// secure random source; the core only decides whether it may still pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentCodeState {
    pub wallet: WalletId,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

/// Why a payment code cannot pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeProblem {
    Unknown,
    Expired,
    Used,
}

impl PaymentCodeState {
    /// A fresh code for `wallet`, valid for [`PAYMENT_CODE_TTL_SECONDS`] from `now`.
    pub fn issue(wallet: WalletId, now: DateTime<Utc>) -> PaymentCodeState {
        PaymentCodeState { wallet, expires_at: now + Duration::seconds(PAYMENT_CODE_TTL_SECONDS), used: false }
    }

    /// Whether the code may pay at `now`: unused and not yet expired.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), CodeProblem> {
        if self.used {
            Err(CodeProblem::Used)
        } else if now >= self.expires_at {
            Err(CodeProblem::Expired)
        } else {
            Ok(())
        }
    }
}

/// A payment as the ledger keeps it, with what its refunds have taken back so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentState {
    pub merchant: MerchantId,
    pub wallet: WalletId,
    pub amount: Amount,
    pub cashback: Won,
    /// The part of `amount` that counted against the month's spend cap.
    pub eligible: Won,
    /// The KST month of the payment: its eligible spend is given back only within it.
    pub month: Month,
    pub at: DateTime<Utc>,
    pub refunded: Won,
    pub cashback_reversed: Won,
    pub eligible_returned: Won,
    /// What each purse paid, and what refunds gave back to each.
    pub purses: PurseParts,
}

/// Which purses paid a payment, and what its refunds restored to each (PROGRAMS.md). The own
/// purse paid the rest: `amount − bonus_paid − Σ allowances' paid`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurseParts {
    pub bonus_paid: Won,
    pub own_restored: Won,
    pub bonus_restored: Won,
    /// In the order they were spent.
    pub allowances: Vec<AllowancePart>,
}

/// What one allowance paid of a payment, and what refunds restored of it (to the purse, or to
/// the program's budget once the grant had expired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowancePart {
    pub grant: GrantId,
    pub paid: Won,
    pub restored: Won,
}

/// Where one refund goes back to: the reverse of the spending order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restore {
    pub own: Won,
    pub bonus: Won,
    /// Latest expiry first; each at most what that allowance paid and has not had back.
    pub allowances: Vec<(GrantId, Won)>,
}

/// What one refund takes back, by the refund rule of API.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundShares {
    /// `floor(C × R / P)`, or on the refund that completes the payment, all of `C` not yet
    /// reversed.
    pub cashback_reversed: Won,
    /// The same share of the payment's eligible spend.
    pub eligible_returned: Won,
    /// Whether this refund makes the payment fully refunded.
    pub completes: bool,
}

impl PaymentState {
    /// A payment just made (or carried over), nothing of it refunded yet; its month is the KST
    /// month of `at`.
    pub fn new(
        merchant: MerchantId,
        wallet: WalletId,
        amount: Amount,
        cashback: Won,
        eligible: Won,
        at: DateTime<Utc>,
    ) -> PaymentState {
        PaymentState {
            merchant,
            wallet,
            amount,
            cashback,
            eligible,
            month: Month::of(at),
            at,
            refunded: Won::ZERO,
            cashback_reversed: Won::ZERO,
            eligible_returned: Won::ZERO,
            purses: PurseParts::default(),
        }
    }

    /// What the own purse paid.
    pub fn own_paid(&self) -> Won {
        let mut own = self.amount.won().checked_sub(self.purses.bonus_paid).expect("parts within the amount");
        for part in &self.purses.allowances {
            own = own.checked_sub(part.paid).expect("parts within the amount");
        }
        assert!(!own.is_negative(), "purse parts above the payment: {self:?}");
        own
    }

    /// Where a refund of `refund` goes back to (PROGRAMS.md): `own` first, up to what it paid
    /// and has not had back, then `bonus`, then the allowances, latest `expires_at` first (as
    /// `expires_at` tells of each). The caller has checked `refund <= refundable()`, and the
    /// parts sum to `refund`.
    pub fn restore(&self, refund: Amount, expires_at: impl Fn(&GrantId) -> DateTime<Utc>) -> Result<Restore, Overflow> {
        let mut left = refund.won();
        let mut take = |open: Won| -> Result<Won, Overflow> {
            let taken = left.min(open);
            left = left.checked_sub(taken)?;
            Ok(taken)
        };
        let own = take(self.own_paid().checked_sub(self.purses.own_restored)?)?;
        let bonus = take(self.purses.bonus_paid.checked_sub(self.purses.bonus_restored)?)?;
        let mut parts: Vec<&AllowancePart> = self.purses.allowances.iter().collect();
        parts.sort_by(|left, right| {
            expires_at(&right.grant).cmp(&expires_at(&left.grant)).then(right.grant.cmp(&left.grant))
        });
        let mut allowances = Vec::new();
        for part in parts {
            let taken = take(part.paid.checked_sub(part.restored)?)?;
            if !taken.is_zero() {
                allowances.push((part.grant.clone(), taken));
            }
        }
        assert!(left.is_zero(), "refund {refund} beyond what the purses paid of {self:?}");
        Ok(Restore { own, bonus, allowances })
    }

    /// What may still be refunded.
    pub fn refundable(&self) -> Won {
        let left = self.amount.won().checked_sub(self.refunded).expect("refunded is at most the amount");
        assert!(!left.is_negative(), "payment refunded beyond its amount: {self:?}");
        left
    }

    /// The shares a refund of `refund` takes back. The caller has checked
    /// `refund <= refundable()`.
    pub fn refund_shares(&self, refund: Amount) -> Result<RefundShares, Overflow> {
        let refund = refund.won();
        assert!(refund <= self.refundable(), "refund {refund} above refundable {}", self.refundable());
        let payment = self.amount.won();
        let completes = self.refunded.checked_add(refund)? == payment;
        let (cashback_reversed, eligible_returned) = if completes {
            (self.cashback.checked_sub(self.cashback_reversed)?, self.eligible.checked_sub(self.eligible_returned)?)
        } else {
            (self.cashback.floor_share(refund, payment)?, self.eligible.floor_share(refund, payment)?)
        };
        assert!(!cashback_reversed.is_negative() && !eligible_returned.is_negative());
        assert!(
            self.cashback_reversed.checked_add(cashback_reversed)? <= self.cashback,
            "reversal beyond the cashback"
        );
        Ok(RefundShares { cashback_reversed, eligible_returned, completes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(value: i64) -> Won {
        Won::from_i64(value)
    }

    fn payment(amount: i64, cashback: i64) -> PaymentState {
        PaymentState {
            merchant: MerchantId::parse("m").unwrap(),
            wallet: WalletId::parse("w").unwrap(),
            amount: Amount::from_i64(amount).unwrap(),
            cashback: won(cashback),
            eligible: won(amount),
            month: Month::parse("2026-12").unwrap(),
            at: DateTime::UNIX_EPOCH,
            refunded: Won::ZERO,
            cashback_reversed: Won::ZERO,
            eligible_returned: Won::ZERO,
            purses: PurseParts::default(),
        }
    }

    #[test]
    fn refunds_restore_own_then_bonus_then_the_latest_allowance() {
        let grant = |name: &str| GrantId::parse(name).unwrap();
        let mut paid = payment(10_000, 0);
        paid.purses = PurseParts {
            bonus_paid: won(1_000),
            own_restored: Won::ZERO,
            bonus_restored: Won::ZERO,
            allowances: vec![
                AllowancePart { grant: grant("early"), paid: won(3_000), restored: Won::ZERO },
                AllowancePart { grant: grant("late"), paid: won(2_000), restored: Won::ZERO },
            ],
        };
        assert_eq!(paid.own_paid(), won(4_000));
        let expiry = |id: &GrantId| DateTime::UNIX_EPOCH + Duration::days(if id.as_str() == "early" { 1 } else { 2 });
        let restore = paid.restore(Amount::from_i64(7_500).unwrap(), expiry).unwrap();
        assert_eq!(
            restore,
            Restore {
                own: won(4_000),
                bonus: won(1_000),
                allowances: vec![(grant("late"), won(2_000)), (grant("early"), won(500))]
            }
        );
    }

    #[test]
    fn partial_refund_reverses_the_floored_share_and_the_last_one_the_rest() {
        let mut paid = payment(12_345, 1_234);
        let first = paid.refund_shares(Amount::from_i64(1_000).unwrap()).unwrap();
        assert_eq!(first, RefundShares { cashback_reversed: won(99), eligible_returned: won(1_000), completes: false });
        paid.refunded = won(1_000);
        paid.cashback_reversed = won(99);
        paid.eligible_returned = won(1_000);
        let last = paid.refund_shares(Amount::from_i64(11_345).unwrap()).unwrap();
        assert_eq!(
            last,
            RefundShares { cashback_reversed: won(1_135), eligible_returned: won(11_345), completes: true }
        );
    }

    #[test]
    fn codes_expire_after_180_seconds_and_pay_once() {
        let issued = DateTime::UNIX_EPOCH;
        let mut code = PaymentCodeState::issue(WalletId::parse("w").unwrap(), issued);
        assert_eq!(code.check(issued + Duration::seconds(179)), Ok(()));
        assert_eq!(code.check(issued + Duration::seconds(180)), Err(CodeProblem::Expired));
        code.used = true;
        assert_eq!(code.check(issued), Err(CodeProblem::Used));
    }
}
