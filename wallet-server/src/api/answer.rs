//! The answer of each ledger receipt (API.md's success bodies), and the form every answer is
//! kept in: what the writer sends back, stores for a retry with the same Idempotency-Key, and
//! `http` turns into a response.

use serde_json::{json, Value};
use wallet_core::{BudgetState, Receipt};

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
    json!({"funded": budget.funded, "paid_out": budget.paid_out, "reversed": budget.reversed,
           "remaining": budget.remaining()})
}

/// The API answer for each receipt (API.md's success bodies).
pub fn render(receipt: &Receipt) -> Answer {
    let (status, body) = match receipt {
        Receipt::Charged { charge_id, amount, balance } => {
            (201, json!({"charge_id": charge_id, "amount": amount, "balance": balance}))
        }
        Receipt::Gifted { gift_id, amount, balance } => {
            (201, json!({"gift_id": gift_id, "amount": amount, "balance": balance}))
        }
        Receipt::Paid { payment_id, amount, cashback, at, .. } => (
            201,
            json!({"payment_id": payment_id, "amount": amount, "cashback": cashback, "status": "approved",
                   "at": super::rfc3339(*at)}),
        ),
        Receipt::Refunded { refund_id, amount, cashback_reversed } => {
            (201, json!({"refund_id": refund_id, "amount": amount, "cashback_reversed": cashback_reversed}))
        }
        Receipt::BudgetToppedUp { budget } => (201, budget_body(budget)),
        Receipt::PolicySet { policy } => (200, json!(policy)),
        Receipt::DayClosed { settlement, newly_closed } => (
            if *newly_closed { 201 } else { 200 },
            json!({"business_date": settlement.business_date, "merchants": settlement.lines.len(),
                   "total_net_payable": settlement.total_net_payable}),
        ),
        Receipt::CarriedOver { account, balance } => (201, json!({"account": account.to_string(), "balance": balance})),
        Receipt::CodeIssued { code, expires_at } => {
            (201, json!({"code": code.as_str(), "expires_at": super::rfc3339(*expires_at)}))
        }
    };
    Answer { status, body }
}
