//! Payments and refunds across a wallet's purses (PROGRAMS.md): a payment spends the allowances
//! the merchant is admitted by, then `bonus`, then `own`; a refund restores them in reverse.
//!
//! Each command is planned (read and computed, every rule checked) before anything is written,
//! so a refusal changes nothing.

use chrono::{DateTime, Utc};

use super::Book;
use crate::calendar::{BusinessDate, Month};
use crate::cashback::Cashback;
use crate::command::{Outcome, PaidFrom, Receipt, Rejection};
use crate::history::{Counterparty, HistoryKind};
use crate::id::{GrantId, MerchantId, PaymentCode, ProgramId, TxId, WalletId};
use crate::ledger::{Account, Transaction, Transfer, TxKind};
use crate::money::{Amount, Overflow, Won};
use crate::payment::{AllowancePart, CodeProblem, PaymentState, PurseParts, RefundShares};
use crate::program::ProgramBudget;
use crate::settlement::DaySales;
use crate::wallet::MonthCounters;

/// A payment checked and computed by `Book::plan_payment`, to be written by `Book::pay`.
struct PaymentPlan {
    wallet_id: WalletId,
    counters: MonthCounters,
    eligible: Won,
    cashback: Won,
    paid_from: PaidFrom,
    /// The allowances spent, in spending order, with the purse's balance after.
    allowances: Vec<(GrantId, Won, Won)>,
    programs: Vec<(ProgramId, ProgramBudget)>,
    /// The wallet account (`own + bonus`) after the payment, before its cashback.
    balance_paid: Won,
    balance_after: Won,
    bonus_after: Won,
    receivable_after: Won,
    paid_out_after: Won,
    sales: DaySales,
}

/// A refund checked and computed by `Book::plan_refund`, to be written by `Book::refund`.
struct RefundPlan {
    wallet_id: WalletId,
    counters: MonthCounters,
    /// Restored to `own` and `bonus`.
    to_wallet: Won,
    balance_after: Won,
    bonus_after: Won,
    /// Allowances restored (live grants only), and each purse's balance after the refund and
    /// after the reversal.
    allowances_restored: Vec<(GrantId, Won)>,
    allowances_after: Vec<(GrantId, Won)>,
    /// Restored to the budget of an expired grant's program.
    to_programs: Vec<(ProgramId, Won)>,
    programs: Vec<(ProgramId, ProgramBudget)>,
    /// The reversal as taken from the wallet account and from allowances.
    reversed_from_wallet: Won,
    reversed_from_allowances: Vec<(GrantId, Won)>,
    cashback_reversed: Won,
    receivable_after: Won,
    reversed_after: Won,
    payment_after: PaymentState,
    sales: DaySales,
}

impl Book {
    pub(super) fn pay(
        &mut self,
        id: &TxId,
        cashback_id: &TxId,
        merchant_id: &MerchantId,
        code: &PaymentCode,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        assert!(!self.payments.contains_key(id), "payment id {id} used twice");
        let plan = self.plan_payment(merchant_id, code, amount, now)?;
        let wallet_id = plan.wallet_id.clone();

        self.codes.get_mut(code).expect("checked by plan_payment").used = true;
        self.dirty.codes.insert(code.clone());
        let wallet = self.wallet_mut(&wallet_id);
        wallet.balance = plan.balance_after;
        wallet.bonus = plan.bonus_after;
        wallet.counters = plan.counters;
        for (grant, _, outstanding) in &plan.allowances {
            self.grant_mut(grant).outstanding = *outstanding;
        }
        for (program, budget) in &plan.programs {
            self.program_mut(program).budget = *budget;
        }
        self.merchant_mut(merchant_id).receivable = plan.receivable_after;
        self.budget.paid_out = plan.paid_out_after;
        self.dirty.budget = true;
        self.put_sales(BusinessDate::of(now), merchant_id, plan.sales);
        let mut payment =
            PaymentState::new(merchant_id.clone(), wallet_id.clone(), amount, plan.cashback, plan.eligible, now);
        payment.purses = PurseParts {
            bonus_paid: plan.paid_from.bonus,
            allowances: plan
                .allowances
                .iter()
                .map(|(grant, paid, _)| AllowancePart { grant: grant.clone(), paid: *paid, restored: Won::ZERO })
                .collect(),
            ..PurseParts::default()
        };
        self.payments.insert(id.clone(), payment);
        self.dirty.payments.insert(id.clone());
        self.payment_outcome(id, cashback_id, merchant_id, amount, plan, now)
    }

    /// The history, transfers and receipt of a payment already written.
    fn payment_outcome(
        &self,
        id: &TxId,
        cashback_id: &TxId,
        merchant_id: &MerchantId,
        amount: Amount,
        plan: PaymentPlan,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let wallet_id = plan.wallet_id;
        let merchant = Some(Counterparty::Merchant(merchant_id.clone()));
        let to_merchant = Account::Merchant(merchant_id.clone());
        let mut transfers = Vec::with_capacity(plan.allowances.len() + 2);
        for (grant, paid, _) in &plan.allowances {
            let amount = Amount::try_from(*paid).expect("only allowances that paid are listed");
            transfers.push(Transfer { from: Account::Allowance(grant.clone()), to: to_merchant.clone(), amount });
        }
        let from_wallet = plan.paid_from.bonus.checked_add(plan.paid_from.own)?;
        if let Ok(from_wallet) = Amount::try_from(from_wallet) {
            let wallet = Account::Wallet(wallet_id.clone());
            transfers.push(Transfer { from: wallet, to: to_merchant, amount: from_wallet });
        }
        let shown_paid = self.shown_balance(&wallet_id, plan.balance_paid, now)?;
        let paid = amount.won().negate();
        let mut history =
            vec![self.history_item(id, &wallet_id, HistoryKind::Payment, paid, shown_paid, now, merchant.clone())];
        if let Ok(cashback_amount) = Amount::try_from(plan.cashback) {
            let kind = HistoryKind::Cashback;
            let shown = self.shown_balance(&wallet_id, plan.balance_after, now)?;
            // The cashback item belongs to its payment.
            let item = self.history_item(cashback_id, &wallet_id, kind, plan.cashback, shown, now, merchant);
            history.push(item.of_payment(id));
            let to_wallet = Account::Wallet(wallet_id.clone());
            transfers.push(Transfer { from: Account::CashbackBudget, to: to_wallet, amount: cashback_amount });
        }
        let receipt = Receipt::Paid {
            payment_id: id.clone(),
            wallet: wallet_id,
            amount,
            cashback: plan.cashback,
            at: now,
            paid_from: plan.paid_from,
        };
        Ok(self.outcome(receipt, Transaction::from_transfers(id.clone(), TxKind::Payment, now, transfers), history))
    }

    /// What a payment would change, checked (the code, the funds) and computed; nothing written.
    fn plan_payment(
        &self,
        merchant_id: &MerchantId,
        code: &PaymentCode,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<PaymentPlan, Rejection> {
        let merchant =
            self.merchants.get(merchant_id).ok_or_else(|| Rejection::UnknownMerchant(merchant_id.clone()))?;
        // A suspended merchant hears so whatever the code, so the terminal does not ask the
        // customer for a fresh one in vain.
        if merchant.suspended {
            return Err(Rejection::MerchantSuspended(merchant_id.clone()));
        }
        let code_state = self.codes.get(code).ok_or(Rejection::PaymentCodeInvalid(CodeProblem::Unknown))?;
        code_state.check(now).map_err(Rejection::PaymentCodeInvalid)?;
        let wallet_id = code_state.wallet.clone();
        let wallet = self.wallets.get(&wallet_id).ok_or_else(|| Rejection::UnknownWallet(wallet_id.clone()))?;
        // Checked here, at commit, not when the code was issued: a code shown before the lock
        // pays nothing after it.
        if wallet.locked {
            return Err(Rejection::WalletLocked(wallet_id));
        }

        // Allowances the merchant is admitted by, in spending order, then bonus, then own.
        let spendable: Vec<(GrantId, Won)> = self
            .live_grants(&wallet_id, now)
            .filter(|(_, grant)| {
                self.programs.get(&grant.program).is_some_and(|program| program.rules.admits(merchant))
            })
            .map(|(id, grant)| (id.clone(), grant.outstanding))
            .collect();
        let mut available = wallet.balance;
        for (_, outstanding) in &spendable {
            available = available.checked_add(*outstanding)?;
        }
        if available < amount.won() {
            return Err(Rejection::InsufficientFunds {
                account: Account::Wallet(wallet_id),
                available,
                needed: amount.won(),
            });
        }
        let mut left = amount.won();
        let mut allowances = Vec::new();
        let mut programs: Vec<(ProgramId, ProgramBudget)> = Vec::new();
        let mut from_allowances = Won::ZERO;
        for (grant_id, outstanding) in spendable {
            if left.is_zero() {
                break;
            }
            let paid = left.min(outstanding);
            left = left.checked_sub(paid)?;
            from_allowances = from_allowances.checked_add(paid)?;
            let program = self.grants[&grant_id].program.clone();
            self.budget_of(&mut programs, &program).add_spent(paid)?;
            allowances.push((grant_id, paid, outstanding.checked_sub(paid)?));
        }
        let from_bonus = left.min(wallet.bonus);
        let from_own = left.checked_sub(from_bonus)?;
        let paid_from = PaidFrom { allowances: from_allowances, bonus: from_bonus, own: from_own };

        // Cashback counts only what `bonus` and `own` paid, and is credited to `bonus`.
        let mut counters = wallet.counters_in(Month::of(now));
        let cap_remaining = self.policy.cashback_monthly_spend_cap.remaining_after(counters.eligible_spent)?;
        let Cashback { eligible, cashback } =
            Cashback::of_payment(left, cap_remaining, self.policy.cashback_rate, self.budget.remaining())?;
        let balance_paid = wallet.balance.checked_sub(left)?;
        let balance_after = balance_paid.checked_add(cashback)?;
        let bonus_after = wallet.bonus.checked_sub(from_bonus)?.checked_add(cashback)?;
        counters.eligible_spent = counters.eligible_spent.checked_add(eligible)?;
        counters.cashback_earned = counters.cashback_earned.checked_add(cashback)?;
        let mut sales = self.sales.get(&(BusinessDate::of(now), merchant_id.clone())).copied().unwrap_or_default();
        sales.add_payment(amount)?;
        Ok(PaymentPlan {
            receivable_after: merchant.receivable.checked_add(amount.won())?,
            paid_out_after: self.budget.paid_out.checked_add(cashback)?,
            wallet_id,
            counters,
            eligible,
            cashback,
            paid_from,
            allowances,
            programs,
            balance_paid,
            balance_after,
            bonus_after,
            sales,
        })
    }

    pub(super) fn refund(
        &mut self,
        id: &TxId,
        reversal_id: &TxId,
        merchant_id: &MerchantId,
        payment_id: &TxId,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let plan = self.plan_refund(id, merchant_id, payment_id, amount, now)?;
        let wallet_id = plan.wallet_id.clone();

        let wallet = self.wallet_mut(&wallet_id);
        wallet.balance = plan.balance_after;
        wallet.bonus = plan.bonus_after;
        wallet.counters = plan.counters;
        for (grant, outstanding) in &plan.allowances_after {
            self.grant_mut(grant).outstanding = *outstanding;
        }
        for (program, budget) in &plan.programs {
            self.program_mut(program).budget = *budget;
        }
        self.merchant_mut(merchant_id).receivable = plan.receivable_after;
        self.budget.reversed = plan.reversed_after;
        self.dirty.budget = true;
        self.payments.insert(payment_id.clone(), plan.payment_after.clone());
        self.dirty.payments.insert(payment_id.clone());
        self.put_sales(BusinessDate::of(now), merchant_id, plan.sales);
        self.refund_outcome(id, reversal_id, merchant_id, payment_id, amount, plan, now)
    }

    /// The history, transfers and receipt of a refund already written.
    #[allow(clippy::too_many_arguments)]
    fn refund_outcome(
        &self,
        id: &TxId,
        reversal_id: &TxId,
        merchant_id: &MerchantId,
        payment_id: &TxId,
        amount: Amount,
        plan: RefundPlan,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let wallet_id = plan.wallet_id;
        let wallet = Account::Wallet(wallet_id.clone());
        let from_merchant = Account::Merchant(merchant_id.clone());
        let mut transfers = Vec::new();
        let mut push = |from: &Account, to: Account, won: Won| {
            if let Ok(amount) = Amount::try_from(won) {
                transfers.push(Transfer { from: from.clone(), to, amount });
            }
        };
        let to_wallet = plan.to_wallet;
        push(&from_merchant, wallet.clone(), to_wallet);
        let mut to_allowances = Won::ZERO;
        for (grant, restored) in &plan.allowances_restored {
            push(&from_merchant, Account::Allowance(grant.clone()), *restored);
            to_allowances = to_allowances.checked_add(*restored)?;
        }
        for (program, returned) in &plan.to_programs {
            push(&from_merchant, Account::Program(program.clone()), *returned);
        }
        push(&wallet, Account::CashbackBudget, plan.reversed_from_wallet);
        let mut reversed_from_allowances = Won::ZERO;
        for (grant, taken) in &plan.reversed_from_allowances {
            push(&Account::Allowance(grant.clone()), Account::CashbackBudget, *taken);
            reversed_from_allowances = reversed_from_allowances.checked_add(*taken)?;
        }

        // The refund and its reversal belong to the payment. The refund item shows what came
        // back into the wallet's purses (a part restored to an expired grant went to its
        // program instead), before the reversal.
        let merchant = Some(Counterparty::Merchant(merchant_id.clone()));
        let into_wallet = to_wallet.checked_add(to_allowances)?;
        let shown_after = self.shown_balance(&wallet_id, plan.balance_after, now)?;
        let shown_refunded = shown_after.checked_add(plan.cashback_reversed)?;
        let item =
            self.history_item(id, &wallet_id, HistoryKind::Refund, into_wallet, shown_refunded, now, merchant.clone());
        let mut history = vec![item.of_payment(payment_id)];
        if !plan.cashback_reversed.is_zero() {
            let kind = HistoryKind::CashbackReversal;
            let taken = plan.cashback_reversed.negate();
            let item = self.history_item(reversal_id, &wallet_id, kind, taken, shown_after, now, merchant);
            history.push(item.of_payment(payment_id));
        }
        debug_assert_eq!(plan.reversed_from_wallet.checked_add(reversed_from_allowances), Ok(plan.cashback_reversed));
        let receipt = Receipt::Refunded { refund_id: id.clone(), amount, cashback_reversed: plan.cashback_reversed };
        Ok(self.outcome(receipt, Transaction::from_transfers(id.clone(), TxKind::Refund, now, transfers), history))
    }

    /// What a refund would change, checked (the payment, what is left of it, the funds for the
    /// reversal) and computed; nothing written.
    fn plan_refund(
        &self,
        id: &TxId,
        merchant_id: &MerchantId,
        payment_id: &TxId,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<RefundPlan, Rejection> {
        // Another merchant's payment is reported as unknown, so payment ids cannot be probed.
        let payment = self
            .payments
            .get(payment_id)
            .filter(|payment| &payment.merchant == merchant_id)
            .ok_or_else(|| Rejection::UnknownPayment(payment_id.clone()))?;
        let refundable = payment.refundable();
        if amount.won() > refundable {
            return Err(Rejection::RefundExceedsPayment { refundable });
        }
        let shares = payment.refund_shares(amount)?;
        let merchant =
            self.merchants.get(merchant_id).ok_or_else(|| Rejection::UnknownMerchant(merchant_id.clone()))?;
        let wallet_id = payment.wallet.clone();
        let wallet = self.wallets.get(&wallet_id).ok_or_else(|| Rejection::UnknownWallet(wallet_id.clone()))?;
        let restore = payment.restore(amount, |grant| self.loaded_grant(grant).expires_at)?;

        let mut payment_after = payment.clone();
        payment_after.purses.own_restored = payment_after.purses.own_restored.checked_add(restore.own)?;
        payment_after.purses.bonus_restored = payment_after.purses.bonus_restored.checked_add(restore.bonus)?;
        let mut programs: Vec<(ProgramId, ProgramBudget)> = Vec::new();
        let mut allowances_restored = Vec::new();
        let mut to_programs: Vec<(ProgramId, Won)> = Vec::new();
        for (grant_id, restored) in &restore.allowances {
            let part = payment_after.purses.allowances.iter_mut().find(|part| &part.grant == grant_id);
            let part = part.expect("restore names the payment's own parts");
            part.restored = part.restored.checked_add(*restored)?;
            let grant = self.loaded_grant(grant_id);
            let budget = self.budget_of(&mut programs, &grant.program);
            budget.spent = budget.spent.checked_sub(*restored)?;
            if grant.is_live(now) {
                allowances_restored.push((grant_id.clone(), *restored));
            } else {
                // An expired grant's share goes back to the program, not to the wallet.
                budget.returned = budget.returned.checked_add(*restored)?;
                to_programs.push((grant.program.clone(), *restored));
            }
        }

        // The cashback reversal: from `bonus`, then `own`, then what this refund restored to
        // allowances. None of them may go below zero.
        let reversal = shares.cashback_reversed;
        let bonus_refunded = wallet.bonus.checked_add(restore.bonus)?;
        let balance_refunded = wallet.balance.checked_add(restore.own)?.checked_add(restore.bonus)?;
        let from_wallet = reversal.min(balance_refunded);
        let mut short = reversal.checked_sub(from_wallet)?;
        let mut reversed_from_allowances = Vec::new();
        for (grant_id, restored) in &allowances_restored {
            if short.is_zero() {
                break;
            }
            let taken = short.min(*restored);
            short = short.checked_sub(taken)?;
            reversed_from_allowances.push((grant_id.clone(), taken));
            let program = self.loaded_grant(grant_id).program.clone();
            self.budget_of(&mut programs, &program).add_spent(taken)?;
        }
        // The reversal can exceed the refund only in a corner of the floor rule (many tiny
        // refunds, then the last one takes back all the cashback); the wallet must cover it.
        if !short.is_zero() {
            return Err(Rejection::InsufficientFunds {
                account: Account::Wallet(wallet_id),
                available: wallet.balance,
                needed: reversal.checked_sub(amount.won())?.max(Won::ZERO),
            });
        }
        let bonus_after = bonus_refunded.checked_sub(from_wallet.min(bonus_refunded))?;
        let balance_after = balance_refunded.checked_sub(from_wallet)?;
        let allowances_after = self.allowances_after(&allowances_restored, &reversed_from_allowances)?;

        // Eligible spend and the month's net cashback come back only while the payment's month lasts.
        let same_month = payment.month == Month::of(now);
        let eligible_returned = if same_month { shares.eligible_returned } else { Won::ZERO };
        let counters =
            refunded_counters(wallet.counters_in(Month::of(now)), eligible_returned, &shares, same_month, id)?;
        payment_after.refunded = payment_after.refunded.checked_add(amount.won())?;
        payment_after.cashback_reversed = payment_after.cashback_reversed.checked_add(reversal)?;
        payment_after.eligible_returned = payment_after.eligible_returned.checked_add(eligible_returned)?;
        assert!(payment_after.refunded <= payment_after.amount.won());
        assert!(!shares.completes || payment_after.cashback_reversed == payment_after.cashback);
        let mut sales = self.sales.get(&(BusinessDate::of(now), merchant_id.clone())).copied().unwrap_or_default();
        sales.add_refund(amount)?;
        Ok(RefundPlan {
            receivable_after: merchant.receivable.checked_sub(amount.won())?,
            reversed_after: self.budget.reversed.checked_add(reversal)?,
            cashback_reversed: reversal,
            reversed_from_wallet: from_wallet,
            reversed_from_allowances,
            wallet_id,
            counters,
            to_wallet: restore.own.checked_add(restore.bonus)?,
            balance_after,
            bonus_after,
            allowances_restored,
            allowances_after,
            to_programs,
            programs,
            payment_after,
            sales,
        })
    }

    /// Each touched allowance's purse after a refund restored to it and its reversal took from it.
    fn allowances_after(
        &self,
        restored: &[(GrantId, Won)],
        reversed: &[(GrantId, Won)],
    ) -> Result<Vec<(GrantId, Won)>, Overflow> {
        let mut after = Vec::with_capacity(restored.len());
        for (grant_id, won) in restored {
            let taken = reversed.iter().find(|(id, _)| id == grant_id).map_or(Won::ZERO, |(_, taken)| *taken);
            let outstanding = self.loaded_grant(grant_id).outstanding.checked_add(*won)?.checked_sub(taken)?;
            after.push((grant_id.clone(), outstanding));
        }
        Ok(after)
    }
}

/// The wallet's month counters after a refund: eligible spend given back (`eligible_returned`,
/// zero once the payment's month is over) and, within the payment's month, the cashback taken
/// back, counted only up to what the month earned (a wallet carried over from another operator
/// starts its month at zero earned: the bundle has no such column).
fn refunded_counters(
    mut counters: MonthCounters,
    eligible_returned: Won,
    shares: &RefundShares,
    same_month: bool,
    id: &TxId,
) -> Result<MonthCounters, Rejection> {
    counters.eligible_spent = counters.eligible_spent.checked_sub(eligible_returned)?;
    assert!(!counters.eligible_spent.is_negative(), "eligible spend below zero after refund {id}");
    if same_month {
        let reversible = counters.cashback_earned.checked_sub(counters.cashback_reversed)?;
        let counted = shares.cashback_reversed.min(reversible);
        counters.cashback_reversed = counters.cashback_reversed.checked_add(counted)?;
    }
    assert!(counters.cashback_reversed <= counters.cashback_earned, "net cashback below zero after refund {id}");
    Ok(counters)
}
