//! Charges, and the charge bonus they may earn (PROGRAMS.md): a charge of C in the window of the
//! charging wallet's cohort earns `floor(min(C, quota left) × rate)`, limited by what is left of
//! the cohort's share (and by the room the holding limit leaves, the bonus purse counting toward
//! it). The charge itself succeeds whatever the bonus; the bonus is its own history item.

use chrono::{DateTime, Utc};

use super::Book;
use crate::calendar::Month;
use crate::charge_bonus::{earned, ChargeBonusBudget, Earned};
use crate::command::{Limit, Outcome, Receipt, Rejection};
use crate::history::HistoryKind;
use crate::id::{ProgramId, TxId, WalletId};
use crate::ledger::{Account, Transaction, Transfer, TxKind};
use crate::money::{Amount, Won};
use crate::wallet::MonthCounters;

/// A charge's bonus, computed: the program, the cohort, and what was earned.
struct BonusPlan {
    program: ProgramId,
    cohort: usize,
    earned: Earned,
}

impl Book {
    pub(super) fn charge(
        &mut self,
        id: &TxId,
        bonus_id: &TxId,
        wallet_id: &WalletId,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let wallet = self.wallets.get(wallet_id).ok_or_else(|| Rejection::UnknownWallet(wallet_id.clone()))?;
        if wallet.locked {
            return Err(Rejection::WalletLocked(wallet_id.clone()));
        }
        let mut counters = wallet.counters_in(Month::of(now));
        let limit = self.policy.monthly_charge_limit;
        let charged_after = counters.charged.checked_add(amount.won())?;
        if charged_after > limit {
            return Err(Rejection::LimitExceeded(Limit::MonthlyCharge {
                limit,
                remaining: limit.remaining_after(counters.charged)?,
            }));
        }
        let charged_balance = wallet.balance.checked_add(amount.won())?;
        self.check_holding_limit(wallet.balance, charged_balance)?;
        counters.charged = charged_after;
        let bonus = self.plan_bonus(wallet_id, amount, &counters, charged_balance, now)?;
        let bonus_won = bonus.as_ref().map_or(Won::ZERO, |plan| plan.earned.bonus);
        if let Some(plan) = &bonus {
            counters.bonus_quota_used = counters.bonus_quota_used.checked_add(plan.earned.quota_used)?;
        }
        let balance_after = charged_balance.checked_add(bonus_won)?;
        let bonus_after = wallet.bonus.checked_add(bonus_won)?;
        let clearing_after = self.system.bank_clearing.checked_sub(amount.won())?;

        let wallet = self.wallet_mut(wallet_id);
        wallet.balance = balance_after;
        wallet.bonus = bonus_after;
        wallet.counters = counters;
        self.system.bank_clearing = clearing_after;
        self.dirty.system = true;
        let account = Account::Wallet(wallet_id.clone());
        let mut transfers = vec![Transfer { from: Account::BankClearing, to: account.clone(), amount }];
        let shown_charged = self.shown_balance(wallet_id, charged_balance, now)?;
        let mut history =
            vec![self.history_item(id, wallet_id, HistoryKind::Charge, amount.won(), shown_charged, now, None)];
        if let (Some(plan), Ok(paid)) = (bonus, Amount::try_from(bonus_won)) {
            let state = self.charge_bonus_mut(&plan.program);
            let cohort = &mut state.budget.cohorts[plan.cohort];
            cohort.paid_out = cohort.paid_out.checked_add(bonus_won)?;
            assert!(!cohort.remaining().is_negative());
            transfers.push(Transfer { from: Account::Program(plan.program), to: account, amount: paid });
            let shown = self.shown_balance(wallet_id, balance_after, now)?;
            let item = self.history_item(bonus_id, wallet_id, HistoryKind::ChargeBonus, bonus_won, shown, now, None);
            history.push(item.of_payment(id));
        }
        let shown = self.shown_balance(wallet_id, balance_after, now)?;
        Ok(self.outcome(
            Receipt::Charged { charge_id: id.clone(), amount, balance: shown, bonus: bonus_won },
            Transaction::from_transfers(id.clone(), TxKind::Charge, now, transfers),
            history,
        ))
    }

    /// The bonus of a charge, if a charge bonus program runs at `now` and the wallet's cohort is
    /// open: `None` otherwise (no quota used either).
    fn plan_bonus(
        &self,
        wallet_id: &WalletId,
        amount: Amount,
        counters: &MonthCounters,
        charged_balance: Won,
        now: DateTime<Utc>,
    ) -> Result<Option<BonusPlan>, Rejection> {
        let mut running = self.charge_bonuses.iter().filter(|(_, program)| program.is_running(now));
        let Some((program_id, program)) = running.next() else {
            return Ok(None);
        };
        assert!(running.next().is_none(), "two charge bonus programs run at {now}");
        let rules = &program.rules;
        if !rules.is_open_for(wallet_id, now) {
            return Ok(None);
        }
        let cohort = rules.cohort_of(wallet_id) as usize;
        let quota_left = rules.monthly_charge_cap.remaining_after(counters.bonus_quota_used)?;
        // The bonus purse counts toward the holding limit: a bonus is cut to the room left.
        let room = self.policy.holding_limit.remaining_after(charged_balance)?;
        let share_left = program.budget.cohorts[cohort].remaining().min(room);
        let earned = earned(amount.won(), quota_left, rules.rate, share_left)?;
        Ok(Some(BonusPlan { program: program_id.clone(), cohort, earned }))
    }

    /// A top-up of a charge bonus program: split into its cohorts' shares.
    pub(super) fn top_up_charge_bonus(
        &mut self,
        id: &TxId,
        program_id: &ProgramId,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let program =
            self.charge_bonuses.get(program_id).ok_or_else(|| Rejection::UnknownProgram(program_id.clone()))?;
        let mut budget: ChargeBonusBudget = program.budget.clone();
        budget.top_up(amount.won())?;
        let clearing_after = self.system.bank_clearing.checked_sub(amount.won())?;

        self.charge_bonus_mut(program_id).budget = budget.clone();
        self.system.bank_clearing = clearing_after;
        self.dirty.system = true;
        let transfer = Transfer { from: Account::BankClearing, to: Account::Program(program_id.clone()), amount };
        Ok(self.outcome(
            Receipt::ChargeBonusToppedUp {
                program: program_id.clone(),
                rules: self.charge_bonuses[program_id].rules.clone(),
                budget,
            },
            Transaction::from_transfers(id.clone(), TxKind::ProgramTopUp, now, [transfer]),
            Vec::new(),
        ))
    }

    fn charge_bonus_mut(&mut self, program: &ProgramId) -> &mut crate::charge_bonus::ChargeBonusState {
        self.dirty.charge_bonuses.insert(program.clone());
        self.charge_bonuses.get_mut(program).expect("the caller checked the program is loaded")
    }
}
