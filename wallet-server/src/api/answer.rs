//! The answer of each ledger receipt (API.md's success bodies), and the form every answer is
//! kept in: what the writer sends back, stores for a retry with the same Idempotency-Key, and
//! `http` turns into a response.

use serde_json::{json, Value};
use wallet_core::{BudgetState, Receipt};

use super::wire::{self, to_json};
use super::ApiError;

/// A stored or fresh answer: status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Answer {
        Answer { status: error.status, body: error.body() }
    }
}

/// The cashback budget as API.md shows it.
pub fn budget_body(budget: &BudgetState) -> Value {
    to_json(&wire::Budget::from(budget))
}

/// The API answer for each receipt (API.md's success bodies).
pub fn render(receipt: &Receipt) -> Answer {
    let (status, body) = match receipt {
        Receipt::Charged { charge_id, amount, balance, bonus } => (
            201,
            to_json(&wire::ChargeReceipt {
                charge_id: charge_id.to_string(),
                amount: amount.to_string(),
                balance: balance.to_string(),
                bonus: bonus.to_string(),
            }),
        ),
        Receipt::Gifted { gift_id, amount, balance } => (
            201,
            to_json(&wire::GiftReceipt {
                gift_id: gift_id.to_string(),
                amount: amount.to_string(),
                balance: balance.to_string(),
            }),
        ),
        Receipt::Paid { payment_id, amount, cashback, at, paid_from, .. } => (
            201,
            to_json(&wire::PaymentReceipt {
                payment_id: payment_id.to_string(),
                amount: amount.to_string(),
                cashback: cashback.to_string(),
                status: wire::PaymentStatus::Approved,
                at: super::rfc3339(*at),
                paid_from: wire::PaidFrom {
                    allowances: paid_from.allowances.to_string(),
                    bonus: paid_from.bonus.to_string(),
                    own: paid_from.own.to_string(),
                },
            }),
        ),
        Receipt::Refunded { refund_id, amount, cashback_reversed } => (
            201,
            to_json(&wire::RefundReceipt {
                refund_id: refund_id.to_string(),
                amount: amount.to_string(),
                cashback_reversed: cashback_reversed.to_string(),
            }),
        ),
        Receipt::BudgetToppedUp { budget } => (201, budget_body(budget)),
        Receipt::PolicySet { policy } => (200, to_json(&wire::Policy::from(policy))),
        Receipt::DayClosed { settlement, newly_closed } => (
            if *newly_closed { 201 } else { 200 },
            to_json(&wire::DayClosed {
                business_date: settlement.business_date.to_string(),
                merchants: settlement.lines.len() as u64,
                total_net_payable: settlement.total_net_payable.to_string(),
            }),
        ),
        // Only the handover import carries balances over, and it answers no request.
        Receipt::CarriedOver { account, balance } => (201, json!({"account": account.to_string(), "balance": balance})),
        Receipt::ProgramToppedUp { budget, .. } => {
            (201, to_json(&wire::ProgramToppedUp { budget: wire::ProgramBudget::from(budget) }))
        }
        Receipt::ChargeBonusToppedUp { rules, budget, .. } => {
            (201, to_json(&wire::ProgramToppedUp { budget: wire::ProgramBudget::charge_bonus(rules, budget) }))
        }
        Receipt::Granted { granted, amount_total, budget, .. } => (
            201,
            to_json(&wire::Granted {
                granted: *granted as u64,
                amount_total: amount_total.to_string(),
                budget: wire::ProgramBudget::from(budget),
            }),
        ),
        // Only the sweep expires grants, and it answers no request.
        Receipt::GrantExpired { grant, returned } => {
            (200, json!({"grant_id": grant.to_string(), "returned": returned.to_string()}))
        }
        Receipt::CodeIssued { code, expires_at } => (
            201,
            to_json(&wire::PaymentCodeIssued {
                code: code.as_str().to_owned(),
                expires_at: super::rfc3339(*expires_at),
            }),
        ),
    };
    Answer { status, body }
}
