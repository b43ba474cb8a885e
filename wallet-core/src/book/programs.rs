//! Allowance programs in the book: budget top-ups, grants (all lines or none), the expiry that
//! returns what is left of a grant, and the purse helpers payments and history share.

use chrono::{DateTime, Utc};

use super::{Book, Set};
use crate::command::{GrantLine, GrantProblem, Outcome, Receipt, Rejection};
use crate::history::HistoryKind;
use crate::id::{GrantId, ProgramId, TxId, WalletId};
use crate::ledger::{Account, Transaction, Transfer, TxKind};
use crate::money::{Amount, Overflow, Won};
use crate::program::{spending_order, GrantState, ProgramBudget, GRANTS_PER_COMMAND_MAX};

impl Book {
    pub(super) fn top_up_program(
        &mut self,
        id: &TxId,
        program_id: &ProgramId,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        if self.charge_bonuses.contains_key(program_id) {
            return self.top_up_charge_bonus(id, program_id, amount, now);
        }
        let program = self.programs.get(program_id).ok_or_else(|| Rejection::UnknownProgram(program_id.clone()))?;
        let mut budget = program.budget;
        budget.funded = budget.funded.checked_add(amount.won())?;
        let clearing_after = self.system.bank_clearing.checked_sub(amount.won())?;

        self.program_mut(program_id).budget = budget;
        self.system.bank_clearing = clearing_after;
        self.dirty.system = true;
        let transfer = Transfer { from: Account::BankClearing, to: Account::Program(program_id.clone()), amount };
        Ok(self.outcome(
            Receipt::ProgramToppedUp { program: program_id.clone(), budget },
            Transaction::from_transfers(id.clone(), TxKind::ProgramTopUp, now, [transfer]),
            Vec::new(),
        ))
    }

    pub(super) fn grant(
        &mut self,
        id: &TxId,
        program_id: &ProgramId,
        lines: &[GrantLine],
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        assert!((1..=GRANTS_PER_COMMAND_MAX).contains(&lines.len()), "{} grant lines in one command", lines.len());
        let program = self.programs.get(program_id).ok_or_else(|| Rejection::UnknownProgram(program_id.clone()))?;
        let expires_at = program.rules.expires_at(now).filter(|expires_at| *expires_at > now);
        let expires_at = expires_at.ok_or_else(|| Rejection::ProgramOver(program_id.clone()))?;
        let amount_total = self.check_grant_lines(program.budget.remaining(), lines)?;
        let mut budget = program.budget;
        budget.granted = budget.granted.checked_add(amount_total)?;

        self.program_mut(program_id).budget = budget;
        let mut transfers = Vec::with_capacity(lines.len());
        for line in lines {
            // `check_grant_lines` refused ids granted before (the keys load them); one granted
            // twice here is a broken caller repeating an id within one command.
            assert!(!self.grants.contains_key(&line.grant), "grant {} made twice", line.grant);
            let state = GrantState {
                program: program_id.clone(),
                wallet: line.wallet.clone(),
                amount: line.amount.won(),
                outstanding: line.amount.won(),
                granted_at: now,
                expires_at,
            };
            self.insert_grant(line.grant.clone(), state);
            self.dirty.grants.insert(line.grant.clone());
            let to = Account::Allowance(line.grant.clone());
            transfers.push(Transfer { from: Account::Program(program_id.clone()), to, amount: line.amount });
        }
        let mut history = Vec::with_capacity(lines.len());
        for line in lines {
            let item_id = grant_item_id(&line.grant);
            let purses = self.wallets[&line.wallet].balance;
            let shown = self.shown_balance(&line.wallet, purses, now)?;
            let kind = HistoryKind::AllowanceGranted;
            history.push(self.history_item(&item_id, &line.wallet, kind, line.amount.won(), shown, now, None));
        }
        let receipt = Receipt::Granted { program: program_id.clone(), granted: lines.len(), amount_total, budget };
        Ok(self.outcome(
            receipt,
            Transaction::from_transfers(id.clone(), TxKind::AllowanceGrant, now, transfers),
            history,
        ))
    }

    /// The lines' total, or every line at fault: unknown and repeated wallets first; only when
    /// there are none, the lines from which the running total passes `remaining`.
    fn check_grant_lines(&self, remaining: Won, lines: &[GrantLine]) -> Result<Won, Rejection> {
        let mut rows = Vec::new();
        let mut seen: Set<&WalletId> = Set::default();
        for (index, line) in lines.iter().enumerate() {
            if !self.wallets.contains_key(&line.wallet) {
                rows.push((index, GrantProblem::UnknownWallet));
            } else if self.grants.contains_key(&line.grant) {
                rows.push((index, GrantProblem::GrantExists));
            } else if !seen.insert(&line.wallet) {
                rows.push((index, GrantProblem::DuplicateWallet));
            }
        }
        let mut total = Won::ZERO;
        for (index, line) in lines.iter().enumerate() {
            total = total.checked_add(line.amount.won())?;
            if rows.is_empty() && total > remaining {
                rows.extend((index..lines.len()).map(|index| (index, GrantProblem::BudgetExhausted)));
                break;
            }
        }
        if rows.is_empty() {
            Ok(total)
        } else {
            Err(Rejection::GrantsRefused { rows })
        }
    }

    pub(super) fn expire_grant(
        &mut self,
        id: &TxId,
        grant_id: &GrantId,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let grant = self.grants.get(grant_id).ok_or_else(|| Rejection::UnknownGrant(grant_id.clone()))?;
        if grant.is_live(now) {
            return Err(Rejection::GrantNotExpired(grant_id.clone()));
        }
        let returned = grant.outstanding;
        let Ok(amount) = Amount::try_from(returned) else {
            let receipt = Receipt::GrantExpired { grant: grant_id.clone(), returned: Won::ZERO };
            return Ok(Outcome { receipt, transaction: None, history: Vec::new(), balances: Vec::new() });
        };
        let (program_id, wallet_id) = (grant.program.clone(), grant.wallet.clone());
        let program = self.programs.get(&program_id).ok_or_else(|| Rejection::UnknownProgram(program_id.clone()))?;
        let purses = self.wallets.get(&wallet_id).ok_or_else(|| Rejection::UnknownWallet(wallet_id.clone()))?.balance;
        let mut budget = program.budget;
        budget.returned = budget.returned.checked_add(returned)?;

        self.grant_mut(grant_id).outstanding = Won::ZERO;
        self.program_mut(&program_id).budget = budget;
        let shown = self.shown_balance(&wallet_id, purses, now)?;
        let kind = HistoryKind::AllowanceExpired;
        let item = self.history_item(id, &wallet_id, kind, returned.negate(), shown, now, None);
        let transfer =
            Transfer { from: Account::Allowance(grant_id.clone()), to: Account::Program(program_id), amount };
        Ok(self.outcome(
            Receipt::GrantExpired { grant: grant_id.clone(), returned },
            Transaction::from_transfers(id.clone(), TxKind::AllowanceExpiry, now, [transfer]),
            vec![item],
        ))
    }

    // Purse helpers.

    /// The wallet's grants that may be shown and spent at `now`, in spending order.
    pub(super) fn live_grants<'a>(
        &'a self,
        wallet: &WalletId,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (&'a GrantId, &'a GrantState)> + 'a {
        let mut live: Vec<(&GrantId, &GrantState)> = self
            .wallet_grants
            .get(wallet)
            .into_iter()
            .flatten()
            .map(|id| (id, &self.grants[id]))
            .filter(|(_, grant)| grant.is_live(now) && !grant.outstanding.is_zero())
            .collect();
        live.sort_unstable_by(|left, right| spending_order(*left, *right));
        live.into_iter()
    }

    /// What the citizen sees as the balance: the wallet account's `purses` (own and bonus) plus
    /// the live allowances as they stand in the book.
    pub(super) fn shown_balance(&self, wallet: &WalletId, purses: Won, now: DateTime<Utc>) -> Result<Won, Overflow> {
        self.live_grants(wallet, now).try_fold(purses, |total, (_, grant)| total.checked_add(grant.outstanding))
    }

    /// The budget of `program` as a command is changing it: the entry in `changed` if there is
    /// one, else a new entry copied from the book.
    pub(super) fn budget_of<'a>(
        &self,
        changed: &'a mut Vec<(ProgramId, ProgramBudget)>,
        program: &ProgramId,
    ) -> &'a mut ProgramBudget {
        let index = match changed.iter().position(|(id, _)| id == program) {
            Some(index) => index,
            None => {
                let budget = self.programs.get(program).expect("a loaded grant's program is loaded").budget;
                changed.push((program.clone(), budget));
                changed.len() - 1
            }
        };
        &mut changed[index].1
    }

    pub(super) fn loaded_grant(&self, grant: &GrantId) -> &GrantState {
        self.grants.get(grant).expect("a loaded payment's grants are loaded with its wallet")
    }

    pub(super) fn grant_mut(&mut self, grant: &GrantId) -> &mut GrantState {
        self.dirty.grants.insert(grant.clone());
        self.grants.get_mut(grant).expect("the caller checked the grant is loaded")
    }

    pub(super) fn program_mut(&mut self, program: &ProgramId) -> &mut crate::program::ProgramState {
        self.dirty.programs.insert(program.clone());
        self.programs.get_mut(program).expect("the caller checked the program is loaded")
    }

    pub(super) fn insert_grant(&mut self, id: GrantId, state: GrantState) {
        let wallet = state.wallet.clone();
        if self.grants.insert(id.clone(), state).is_none() {
            self.wallet_grants.entry(wallet).or_default().push(id);
        }
    }
}

/// A grant's history item has the grant's id: both are ids of 1 to 64 characters.
fn grant_item_id(grant: &GrantId) -> TxId {
    TxId::parse(grant.as_str()).expect("a grant id is a valid transaction id")
}
