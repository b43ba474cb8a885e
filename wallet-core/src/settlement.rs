//! Merchants' daily sales and the settlement that closes a business date.

use serde::Serialize;

use crate::calendar::BusinessDate;
use crate::id::{MerchantId, TxId};
use crate::money::{Amount, Overflow, Rate, Won};

/// What the ledger keeps of a merchant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerchantState {
    /// What the system owes the merchant: days not yet closed, plus a negative carry.
    pub receivable: Won,
    /// The negative `net_payable` of the merchant's last close, taken into its next close with
    /// activity. Zero or negative.
    pub carried_negative: Won,
    /// What programs decide eligibility by (PROGRAMS.md); the core only reads them.
    pub category: Option<String>,
    pub annual_revenue: Option<Won>,
    /// The city suspended the merchant: it takes no payment, but still refunds (a citizen must
    /// get money back) and is settled for what it sold. Set by the city, never by a command: the
    /// core only reads it, as the server loads it with the balances.
    pub suspended: bool,
}

/// One merchant's activity on one business date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DaySales {
    pub payments_count: u64,
    pub payments_amount: Won,
    pub refunds_count: u64,
    pub refunds_amount: Won,
}

impl DaySales {
    pub fn add_payment(&mut self, amount: Amount) -> Result<(), Overflow> {
        self.payments_amount = self.payments_amount.checked_add(amount.won())?;
        self.payments_count += 1;
        Ok(())
    }

    pub fn add_refund(&mut self, amount: Amount) -> Result<(), Overflow> {
        self.refunds_amount = self.refunds_amount.checked_add(amount.won())?;
        self.refunds_count += 1;
        Ok(())
    }

    /// Payments less refunds, before fees: the day's net as the merchant's terminal shows it.
    pub fn net(&self) -> Won {
        self.payments_amount.checked_sub(self.refunds_amount).expect("daily sums are far inside the range")
    }

    pub fn has_activity(&self) -> bool {
        self.payments_count > 0 || self.refunds_count > 0
    }
}

/// One merchant's line of a settlement (API.md, Settlement CSV).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettlementLine {
    pub merchant_id: MerchantId,
    pub payments_count: u64,
    pub payments_amount: Won,
    pub refunds_count: u64,
    pub refunds_amount: Won,
    /// `floor(payments_amount × merchant_fee_rate)`.
    pub fee: Won,
    /// The merchant's negative `net_payable` from its previous close, or zero.
    pub carried_in: Won,
    /// `payments_amount - refunds_amount - fee + carried_in`. Paid out when positive; carried
    /// to the next close when negative.
    pub net_payable: Won,
}

impl SettlementLine {
    /// The line for a merchant's day, from its sales, its carry and the fee rate in force.
    pub fn compute(
        merchant_id: MerchantId,
        sales: &DaySales,
        carried_in: Won,
        fee_rate: Rate,
    ) -> Result<SettlementLine, Overflow> {
        assert!(carried_in <= Won::ZERO, "a carry is never positive: {carried_in}");
        let fee = sales.payments_amount.floor_times(fee_rate)?;
        let net_payable = sales.net().checked_sub(fee)?.checked_add(carried_in)?;
        Ok(SettlementLine {
            merchant_id,
            payments_count: sales.payments_count,
            payments_amount: sales.payments_amount,
            refunds_count: sales.refunds_count,
            refunds_amount: sales.refunds_amount,
            fee,
            carried_in,
            net_payable,
        })
    }

    /// What is paid out now: the net when positive.
    pub fn payout(&self) -> Won {
        self.net_payable.max(Won::ZERO)
    }

    /// What is carried to the next close: the net when negative.
    pub fn carried_out(&self) -> Won {
        self.net_payable.min(Won::ZERO)
    }
}

/// A closed business date: one line per merchant with activity that day, in merchant id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settlement {
    pub business_date: BusinessDate,
    /// The ledger transaction that moved fees and payouts out of the receivables.
    pub tx_id: TxId,
    pub lines: Vec<SettlementLine>,
    /// Sum of what is paid out: the positive `net_payable`s. Negative nets are carried, not
    /// paid, so they do not reduce it.
    pub total_net_payable: Won,
    pub total_fee: Won,
}
