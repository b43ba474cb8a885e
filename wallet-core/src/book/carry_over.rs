//! Balances carried over by a handover (HANDOVER.md): each moves one purse or account of the
//! book against the handover account, by the difference between what the outgoing operator's
//! bundle says and what the book holds.

use chrono::{DateTime, Utc};

use super::Book;
use crate::cashback::BudgetState;
use crate::command::{CarryOverAccount, Outcome, Receipt, Rejection};
use crate::history::HistoryKind;
use crate::id::{GrantId, MerchantId, ProgramId, TxId, WalletId};
use crate::ledger::{Account, Transaction, Transfer, TxKind};
use crate::money::{Amount, Won};
use crate::program::ProgramBudget;

/// What one carry leaves in the account it moves, computed before anything is written.
enum Carried {
    /// The wallet account after a carry into its own or its bonus purse.
    Wallet {
        wallet: WalletId,
        balance: Won,
        bonus: Won,
    },
    Merchant {
        merchant: MerchantId,
        receivable: Won,
    },
    CashbackBudget(BudgetState),
    Program {
        program: ProgramId,
        budget: ProgramBudget,
    },
    /// The allowance purse after, and the wallet it is in (whose history records the carry).
    Allowance {
        grant: GrantId,
        outstanding: Won,
        wallet: WalletId,
    },
}

impl Book {
    pub(super) fn carry_over(
        &mut self,
        id: &TxId,
        account: &CarryOverAccount,
        amount: Won,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        let magnitude = Amount::try_from(if amount.is_negative() { amount.negate() } else { amount })?;
        let (target, purse) = self.carried_purse(account)?;
        let purse_after = purse.checked_add(amount)?;
        // Every purse that may not go negative is refused below zero; a receivable may.
        if purse_after.is_negative() && target.kind().must_not_go_negative() {
            return Err(Rejection::InsufficientFunds { account: target, available: purse, needed: magnitude.won() });
        }
        let carried = self.carried_state(account, amount)?;
        let handover_after = self.system.handover_opening.checked_sub(amount)?;

        let history_wallet = match carried {
            Carried::Wallet { wallet, balance, bonus } => {
                let state = self.wallet_mut(&wallet);
                state.balance = balance;
                state.bonus = bonus;
                Some(wallet)
            }
            Carried::Merchant { merchant, receivable } => {
                self.merchant_mut(&merchant).receivable = receivable;
                None
            }
            Carried::CashbackBudget(budget) => {
                self.budget = budget;
                self.dirty.budget = true;
                None
            }
            Carried::Program { program, budget } => {
                self.program_mut(&program).budget = budget;
                None
            }
            Carried::Allowance { grant, outstanding, wallet } => {
                self.grant_mut(&grant).outstanding = outstanding;
                Some(wallet)
            }
        };
        self.system.handover_opening = handover_after;
        self.dirty.system = true;
        let (_, purse_now) = self.carried_purse(account).expect("the carried account is loaded");
        assert_eq!(purse_now, purse_after, "carry {id} left {target}'s purse at {purse_now}, not {purse_after}");

        let mut history = Vec::new();
        if let Some(wallet) = history_wallet {
            let purses = self.wallets[&wallet].balance;
            let shown = self.shown_balance(&wallet, purses, now)?;
            let kind = HistoryKind::MigratedOpeningBalance;
            history.push(self.history_item(id, &wallet, kind, amount, shown, now, None));
        }
        let transfer = if amount.is_negative() {
            Transfer { from: target.clone(), to: Account::HandoverOpening, amount: magnitude }
        } else {
            Transfer { from: Account::HandoverOpening, to: target.clone(), amount: magnitude }
        };
        let balance = self.balance(&target).expect("the carried account is loaded");
        Ok(self.outcome(
            Receipt::CarriedOver { account: target, balance },
            Transaction::from_transfers(id.clone(), TxKind::OpeningBalance, now, [transfer]),
            history,
        ))
    }

    /// The ledger account a carry moves, and the purse of it that moves: a wallet's own or
    /// bonus purse (both in the wallet account), or the whole of any other account.
    fn carried_purse(&self, account: &CarryOverAccount) -> Result<(Account, Won), Rejection> {
        let wallet = |id: &WalletId| self.wallets.get(id).ok_or_else(|| Rejection::UnknownWallet(id.clone()));
        Ok(match account {
            CarryOverAccount::Wallet(id) => (Account::Wallet(id.clone()), wallet(id)?.own()),
            CarryOverAccount::Bonus(id) => (Account::Wallet(id.clone()), wallet(id)?.bonus),
            CarryOverAccount::Merchant(id) => {
                let merchant = self.merchants.get(id).ok_or_else(|| Rejection::UnknownMerchant(id.clone()))?;
                (Account::Merchant(id.clone()), merchant.receivable)
            }
            CarryOverAccount::CashbackBudget => (Account::CashbackBudget, self.budget.remaining()),
            CarryOverAccount::Program(id) => {
                let program = self.programs.get(id).ok_or_else(|| Rejection::UnknownProgram(id.clone()))?;
                (Account::Program(id.clone()), program.budget.remaining())
            }
            CarryOverAccount::Allowance(id) => {
                let grant = self.grants.get(id).ok_or_else(|| Rejection::UnknownGrant(id.clone()))?;
                (Account::Allowance(id.clone()), grant.outstanding)
            }
        })
    }

    /// The state the carry leaves (the caller checked the purse stays at zero or more). Money
    /// carried into a budget counts as funded: it is what the city put in, through the
    /// outgoing operator.
    fn carried_state(&self, account: &CarryOverAccount, amount: Won) -> Result<Carried, Rejection> {
        Ok(match account {
            CarryOverAccount::Wallet(id) | CarryOverAccount::Bonus(id) => {
                let state = &self.wallets[id];
                let bonus = match account {
                    CarryOverAccount::Bonus(_) => state.bonus.checked_add(amount)?,
                    _ => state.bonus,
                };
                Carried::Wallet { wallet: id.clone(), balance: state.balance.checked_add(amount)?, bonus }
            }
            CarryOverAccount::Merchant(id) => Carried::Merchant {
                merchant: id.clone(),
                receivable: self.merchants[id].receivable.checked_add(amount)?,
            },
            CarryOverAccount::CashbackBudget => {
                Carried::CashbackBudget(BudgetState { funded: self.budget.funded.checked_add(amount)?, ..self.budget })
            }
            CarryOverAccount::Program(id) => {
                let budget = self.programs[id].budget;
                let budget = ProgramBudget { funded: budget.funded.checked_add(amount)?, ..budget };
                Carried::Program { program: id.clone(), budget }
            }
            CarryOverAccount::Allowance(id) => {
                let grant = &self.grants[id];
                if !self.wallets.contains_key(&grant.wallet) {
                    return Err(Rejection::UnknownWallet(grant.wallet.clone()));
                }
                let outstanding = grant.outstanding.checked_add(amount)?;
                Carried::Allowance { grant: id.clone(), outstanding, wallet: grant.wallet.clone() }
            }
        })
    }
}
