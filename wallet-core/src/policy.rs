//! The city's policy: cashback rate and cap, charge and holding limits, merchant fee.

use serde::{Deserialize, Serialize};

use crate::money::{Rate, Won};

/// The rules in force. Rates are from 0 to 1 by their type; caps and limits are checked to be
/// non-negative by [`Policy::validate`], which every change goes through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Cashback credited per won of eligible spend.
    pub cashback_rate: Rate,
    /// Spend per citizen per KST month that earns cashback.
    pub cashback_monthly_spend_cap: Won,
    /// Total a citizen may charge per KST month.
    pub monthly_charge_limit: Won,
    /// Most a wallet may hold after a charge or a received gift.
    pub holding_limit: Won,
    /// Share of a merchant's daily payments kept as a fee at settlement.
    pub merchant_fee_rate: Rate,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field} is {value}; it must be zero or more")]
    Negative { field: &'static str, value: Won },
}

impl Policy {
    /// Checks what the types cannot: caps and limits are not negative.
    pub fn validate(self) -> Result<Policy, PolicyError> {
        for (field, value) in [
            ("cashback_monthly_spend_cap", self.cashback_monthly_spend_cap),
            ("monthly_charge_limit", self.monthly_charge_limit),
            ("holding_limit", self.holding_limit),
        ] {
            if value.is_negative() {
                return Err(PolicyError::Negative { field, value });
            }
        }
        Ok(self)
    }
}

impl Default for Policy {
    /// A starting policy in the range regional currencies use: 10% cashback on up to
    /// 500,000 won a month, 2,000,000 won charged a month, 3,000,000 won held, no fee.
    fn default() -> Policy {
        Policy {
            cashback_rate: Rate::parse("0.1").expect("literal rate"),
            cashback_monthly_spend_cap: Won::from_i64(500_000),
            monthly_charge_limit: Won::from_i64(2_000_000),
            holding_limit: Won::from_i64(3_000_000),
            merchant_fee_rate: Rate::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_caps_are_refused_and_named() {
        let policy = Policy { holding_limit: Won::from_i64(-1), ..Policy::default() };
        let error = policy.validate().unwrap_err();
        assert_eq!(error, PolicyError::Negative { field: "holding_limit", value: Won::from_i64(-1) });
        assert!(error.to_string().contains("holding_limit"));
        assert!(Policy { cashback_monthly_spend_cap: Won::ZERO, ..Policy::default() }.validate().is_ok());
    }
}
