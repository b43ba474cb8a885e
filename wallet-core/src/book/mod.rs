//! The book: the state of the accounts a batch touches, and the one place commands are applied.
//!
//! The server loads into a [`Book`] the wallets, merchants, payments, codes and sales a batch of
//! commands names, applies the whole batch in memory with [`Book::apply_all`], and persists
//! [`Book::take_changes`] in one database transaction. Tests and benchmarks load everything.
//! Either way the rules are the same code.
//!
//! Every command is applied all or nothing: each `apply_*` first computes and checks, and only
//! then writes, so a rejected command leaves the book exactly as it was and its batch-mates
//! unaffected.

mod carry_over;
mod charges;
mod payments;
mod programs;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::calendar::{BusinessDate, Month};
use crate::cashback::BudgetState;
use crate::charge_bonus::{ChargeBonusRules, ChargeBonusState};
use crate::command::{Command, Limit, Outcome, Receipt, Rejection};
use crate::history::{Counterparty, HistoryItem, HistoryKind};
use crate::id::{GrantId, MerchantId, PaymentCode, ProgramId, TxId, WalletId};
use crate::ledger::{Account, AccountKind, Transaction, Transfer, TxKind};
use crate::money::{Amount, Won};
use crate::payment::{PaymentCodeState, PaymentState};
use crate::policy::Policy;
use crate::program::{AllowanceRules, GrantState, ProgramBudget, ProgramState};
use crate::settlement::{DaySales, MerchantState, Settlement, SettlementLine};
use crate::trial_balance::TrialBalance;
use crate::wallet::WalletState;

/// Hash maps with a fixed-seed fast hasher: the core draws no random numbers (so a run replays
/// exactly), and the server's books hold only the few entities one batch touches, so there is
/// no large table for crafted keys to degrade.
type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
type Set<K> = HashSet<K, foldhash::fast::FixedState>;

/// Balances of the accounts there is one of, other than the cashback budget (whose balance is
/// derived from [`BudgetState`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemBalances {
    pub bank_clearing: Won,
    pub settlement_payouts: Won,
    pub fee_income: Won,
    pub handover_opening: Won,
}

/// The loaded state of the ledger, and what changed since it was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Book {
    policy: Policy,
    budget: BudgetState,
    system: SystemBalances,
    wallets: Map<WalletId, WalletState>,
    merchants: Map<MerchantId, MerchantState>,
    payments: Map<TxId, PaymentState>,
    codes: Map<PaymentCode, PaymentCodeState>,
    sales: Map<(BusinessDate, MerchantId), DaySales>,
    settlements: BTreeMap<BusinessDate, Settlement>,
    programs: Map<ProgramId, ProgramState>,
    charge_bonuses: Map<ProgramId, ChargeBonusState>,
    grants: Map<GrantId, GrantState>,
    /// The grants of each wallet, an index over `grants`.
    wallet_grants: Map<WalletId, Vec<GrantId>>,
    dirty: Dirty,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Dirty {
    policy: bool,
    budget: bool,
    system: bool,
    wallets: Set<WalletId>,
    merchants: Set<MerchantId>,
    payments: Set<TxId>,
    codes: Set<PaymentCode>,
    sales: Set<(BusinessDate, MerchantId)>,
    settlements: Set<BusinessDate>,
    programs: Set<ProgramId>,
    charge_bonuses: Set<ProgramId>,
    grants: Set<GrantId>,
}

/// Everything a batch changed, each entity once with its state after the batch, in key order:
/// what the server writes back (in a fixed order, so that concurrent writers lock rows alike). Hot accounts (the budget, a busy merchant) appear once however many
/// commands touched them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub policy: Option<Policy>,
    pub budget: Option<BudgetState>,
    pub system: Option<SystemBalances>,
    pub wallets: Vec<(WalletId, WalletState)>,
    pub merchants: Vec<(MerchantId, MerchantState)>,
    pub payments: Vec<(TxId, PaymentState)>,
    pub codes: Vec<(PaymentCode, PaymentCodeState)>,
    pub sales: Vec<((BusinessDate, MerchantId), DaySales)>,
    pub settlements: Vec<Settlement>,
    /// Programs new or with a changed budget (a program's rules never change).
    pub programs: Vec<(ProgramId, ProgramState)>,
    /// Charge bonus programs whose budget changed.
    pub charge_bonuses: Vec<(ProgramId, ChargeBonusState)>,
    /// Grants new or with a changed purse.
    pub grants: Vec<(GrantId, GrantState)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl Book {
    /// An empty book under `policy`, with every system account at zero.
    pub fn new(policy: Policy) -> Book {
        Book {
            policy,
            budget: BudgetState::default(),
            system: SystemBalances::default(),
            wallets: Map::default(),
            merchants: Map::default(),
            payments: Map::default(),
            codes: Map::default(),
            sales: Map::default(),
            settlements: BTreeMap::new(),
            programs: Map::default(),
            charge_bonuses: Map::default(),
            grants: Map::default(),
            wallet_grants: Map::default(),
            dirty: Dirty::default(),
        }
    }

    // Loading. What is loaded is not a change; only what commands do is.

    pub fn load_budget(&mut self, budget: BudgetState) {
        self.budget = budget;
    }

    pub fn load_system(&mut self, system: SystemBalances) {
        self.system = system;
    }

    pub fn load_wallet(&mut self, id: WalletId, state: WalletState) {
        assert!(!state.balance.is_negative(), "wallet {id} loaded with a negative balance");
        assert!(
            !state.bonus.is_negative() && state.bonus <= state.balance,
            "wallet {id} loaded with bonus outside its balance"
        );
        self.wallets.insert(id, state);
    }

    pub fn load_merchant(&mut self, id: MerchantId, state: MerchantState) {
        self.merchants.insert(id, state);
    }

    pub fn load_payment(&mut self, id: TxId, state: PaymentState) {
        self.payments.insert(id, state);
    }

    pub fn load_code(&mut self, code: PaymentCode, state: PaymentCodeState) {
        self.codes.insert(code, state);
    }

    pub fn load_sales(&mut self, date: BusinessDate, merchant: MerchantId, sales: DaySales) {
        self.sales.insert((date, merchant), sales);
    }

    pub fn load_settlement(&mut self, settlement: Settlement) {
        self.settlements.insert(settlement.business_date, settlement);
    }

    pub fn load_program(&mut self, id: ProgramId, state: ProgramState) {
        self.programs.insert(id, state);
    }

    pub fn load_charge_bonus(&mut self, id: ProgramId, state: ChargeBonusState) {
        assert_eq!(state.budget.cohorts.len(), state.rules.cohorts as usize, "program {id}'s cohorts");
        self.charge_bonuses.insert(id, state);
    }

    /// A new charge bonus program enters the book, its budget empty. Recorded as a change.
    pub fn open_charge_bonus(&mut self, id: ProgramId, rules: ChargeBonusRules) {
        assert!(
            !self.programs.contains_key(&id) && !self.charge_bonuses.contains_key(&id),
            "program {id} opened twice"
        );
        self.charge_bonuses.insert(id.clone(), ChargeBonusState::new(rules));
        self.dirty.charge_bonuses.insert(id);
    }

    pub fn load_grant(&mut self, id: GrantId, state: GrantState) {
        assert!(!state.outstanding.is_negative(), "grant {id} loaded with a negative purse");
        self.insert_grant(id, state);
    }

    /// A new allowance program enters the book, its budget empty. Recorded as a change.
    pub fn open_program(&mut self, id: ProgramId, rules: AllowanceRules) {
        assert!(!self.programs.contains_key(&id), "program {id} opened twice");
        self.programs.insert(id.clone(), ProgramState { rules, budget: ProgramBudget::default() });
        self.dirty.programs.insert(id);
    }

    /// A grant carried over by a handover enters the book with an empty purse (a
    /// [`Command::CarryOver`] into [`crate::CarryOverAccount::Allowance`] then fills it).
    /// Recorded as a change. Its wallet and program need not be loaded: the carry checks them.
    pub fn open_grant(&mut self, id: GrantId, state: GrantState) {
        assert!(!self.grants.contains_key(&id), "grant {id} opened twice");
        assert!(state.outstanding.is_zero(), "grant {id} opened with money in its purse");
        self.insert_grant(id.clone(), state);
        self.dirty.grants.insert(id);
    }

    /// A new wallet enters the book (a registration). Recorded as a change.
    pub fn open_wallet(&mut self, id: WalletId, now: DateTime<Utc>) {
        assert!(!self.wallets.contains_key(&id), "wallet {id} opened twice");
        self.wallets.insert(id.clone(), WalletState::new(Month::of(now)));
        self.dirty.wallets.insert(id);
    }

    /// A new merchant enters the book. Recorded as a change.
    pub fn open_merchant(&mut self, id: MerchantId) {
        assert!(!self.merchants.contains_key(&id), "merchant {id} opened twice");
        self.merchants.insert(id.clone(), MerchantState::default());
        self.dirty.merchants.insert(id);
    }

    // Reading.

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn budget(&self) -> BudgetState {
        self.budget
    }

    pub fn system(&self) -> SystemBalances {
        self.system
    }

    pub fn wallet(&self, id: &WalletId) -> Option<&WalletState> {
        self.wallets.get(id)
    }

    pub fn merchant(&self, id: &MerchantId) -> Option<&MerchantState> {
        self.merchants.get(id)
    }

    pub fn payment(&self, id: &TxId) -> Option<&PaymentState> {
        self.payments.get(id)
    }

    pub fn code(&self, code: &PaymentCode) -> Option<&PaymentCodeState> {
        self.codes.get(code)
    }

    pub fn sales(&self, date: BusinessDate, merchant: &MerchantId) -> Option<&DaySales> {
        self.sales.get(&(date, merchant.clone()))
    }

    pub fn settlement(&self, date: BusinessDate) -> Option<&Settlement> {
        self.settlements.get(&date)
    }

    pub fn wallets(&self) -> impl Iterator<Item = (&WalletId, &WalletState)> {
        self.wallets.iter()
    }

    pub fn merchants(&self) -> impl Iterator<Item = (&MerchantId, &MerchantState)> {
        self.merchants.iter()
    }

    pub fn payments(&self) -> impl Iterator<Item = (&TxId, &PaymentState)> {
        self.payments.iter()
    }

    pub fn program(&self, id: &ProgramId) -> Option<&ProgramState> {
        self.programs.get(id)
    }

    pub fn programs(&self) -> impl Iterator<Item = (&ProgramId, &ProgramState)> {
        self.programs.iter()
    }

    pub fn charge_bonus(&self, id: &ProgramId) -> Option<&ChargeBonusState> {
        self.charge_bonuses.get(id)
    }

    pub fn charge_bonuses(&self) -> impl Iterator<Item = (&ProgramId, &ChargeBonusState)> {
        self.charge_bonuses.iter()
    }

    pub fn grant_state(&self, id: &GrantId) -> Option<&GrantState> {
        self.grants.get(id)
    }

    pub fn grants(&self) -> impl Iterator<Item = (&GrantId, &GrantState)> {
        self.grants.iter()
    }

    /// A wallet's grants, live or not, in no order.
    pub fn grants_of<'a>(&'a self, wallet: &WalletId) -> impl Iterator<Item = (&'a GrantId, &'a GrantState)> + 'a {
        self.wallet_grants.get(wallet).into_iter().flatten().map(|id| (id, &self.grants[id]))
    }

    /// The balance of one account, if it is loaded.
    pub fn balance(&self, account: &Account) -> Option<Won> {
        match account {
            Account::Wallet(id) => self.wallets.get(id).map(|wallet| wallet.balance),
            Account::Merchant(id) => self.merchants.get(id).map(|merchant| merchant.receivable),
            Account::CashbackBudget => Some(self.budget.remaining()),
            Account::BankClearing => Some(self.system.bank_clearing),
            Account::SettlementPayouts => Some(self.system.settlement_payouts),
            Account::FeeIncome => Some(self.system.fee_income),
            Account::HandoverOpening => Some(self.system.handover_opening),
            Account::Allowance(id) => self.grants.get(id).map(|grant| grant.outstanding),
            Account::Program(id) => match self.programs.get(id) {
                Some(program) => Some(program.budget.remaining()),
                None => self.charge_bonuses.get(id).map(|program| program.budget.remaining()),
            },
        }
    }

    /// The loaded accounts' balances summed by kind. For a book that holds every account (tests
    /// and benchmarks), the total is zero; the server's books hold only what a batch touches.
    pub fn trial_balance(&self) -> TrialBalance {
        let wallets = self.wallets.values().map(|wallet| (AccountKind::CitizenWallet, wallet.balance));
        let merchants = self.merchants.values().map(|merchant| (AccountKind::MerchantReceivable, merchant.receivable));
        let city = [
            (AccountKind::CashbackBudget, self.budget.remaining()),
            (AccountKind::BankClearing, self.system.bank_clearing),
            (AccountKind::SettlementPayouts, self.system.settlement_payouts),
            (AccountKind::FeeIncome, self.system.fee_income),
            (AccountKind::HandoverOpening, self.system.handover_opening),
        ];
        let allowances = self.grants.values().map(|grant| (AccountKind::CitizenAllowance, grant.outstanding));
        let programs = self.programs.values().map(|program| (AccountKind::ProgramBudget, program.budget.remaining()));
        let bonuses =
            self.charge_bonuses.values().map(|program| (AccountKind::ProgramBudget, program.budget.remaining()));
        let programs = programs.chain(bonuses);
        TrialBalance::sum(wallets.chain(merchants).chain(city).chain(allowances).chain(programs))
            .expect("ledger totals stay inside the decimal range")
    }

    /// What changed since the last call (or since loading), each entity once; clears the record.
    pub fn take_changes(&mut self) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        Changes {
            policy: dirty.policy.then(|| self.policy.clone()),
            budget: dirty.budget.then_some(self.budget),
            system: dirty.system.then_some(self.system),
            wallets: sorted_states(dirty.wallets, &self.wallets),
            merchants: sorted_states(dirty.merchants, &self.merchants),
            payments: sorted_states(dirty.payments, &self.payments),
            codes: sorted_states(dirty.codes, &self.codes),
            sales: sorted_states(dirty.sales, &self.sales),
            settlements: {
                let mut dates: Vec<_> = dirty.settlements.into_iter().collect();
                dates.sort_unstable();
                dates.into_iter().map(|date| self.settlements[&date].clone()).collect()
            },
            programs: sorted_states(dirty.programs, &self.programs),
            charge_bonuses: sorted_states(dirty.charge_bonuses, &self.charge_bonuses),
            grants: sorted_states(dirty.grants, &self.grants),
        }
    }

    // Applying.

    /// Applies commands in order, each on the state the ones before it left. A rejected command
    /// changes nothing and does not stop the others.
    pub fn apply_all(&mut self, commands: &[Command], now: DateTime<Utc>) -> Vec<Result<Outcome, Rejection>> {
        commands.iter().map(|command| self.apply(command, now)).collect()
    }

    /// Applies one command at the instant `now`.
    pub fn apply(&mut self, command: &Command, now: DateTime<Utc>) -> Result<Outcome, Rejection> {
        let outcome = match command {
            Command::Charge { id, bonus_id, wallet, amount } => self.charge(id, bonus_id, wallet, *amount, now),
            Command::Gift { id, gift_in_id, from, to, amount } => self.gift(id, gift_in_id, from, to, *amount, now),
            Command::Pay { id, cashback_id, merchant, code, amount } => {
                self.pay(id, cashback_id, merchant, code, *amount, now)
            }
            Command::Refund { id, reversal_id, merchant, payment, amount } => {
                self.refund(id, reversal_id, merchant, payment, *amount, now)
            }
            Command::TopUpBudget { id, amount } => Ok(self.top_up_budget(id, *amount, now)),
            Command::SetPolicy { policy } => self.set_policy(policy),
            Command::CloseDay { id, date } => self.close_day(id, *date, now),
            Command::CarryOver { id, account, amount } => self.carry_over(id, account, *amount, now),
            Command::IssueCode { code, wallet } => self.issue_code(code, wallet, now),
            Command::TopUpProgram { id, program, amount } => self.top_up_program(id, program, *amount, now),
            Command::Grant { id, program, lines } => self.grant(id, program, lines, now),
            Command::ExpireGrant { id, grant } => self.expire_grant(id, grant, now),
        }?;
        if let Some(transaction) = &outcome.transaction {
            assert!(transaction.sum().is_zero(), "unbalanced transaction {transaction:?}");
        }
        Ok(outcome)
    }

    fn gift(
        &mut self,
        id: &TxId,
        gift_in_id: &TxId,
        from: &WalletId,
        to: &WalletId,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Rejection> {
        if from == to {
            return Err(Rejection::GiftToSelf);
        }
        let sender = self.wallets.get(from).ok_or_else(|| Rejection::UnknownWallet(from.clone()))?;
        let receiver = self.wallets.get(to).ok_or_else(|| Rejection::UnknownWallet(to.clone()))?;
        // A locked wallet gives nothing; a gift to one still arrives (its balance is kept).
        if sender.locked {
            return Err(Rejection::WalletLocked(from.clone()));
        }
        // Only the own purse may be gifted (PROGRAMS.md): bonus and allowances are city money.
        if sender.own() < amount.won() {
            return Err(Rejection::InsufficientFunds {
                account: Account::Wallet(from.clone()),
                available: sender.own(),
                needed: amount.won(),
            });
        }
        let sender_after = sender.balance.checked_sub(amount.won())?;
        let receiver_after = receiver.balance.checked_add(amount.won())?;
        self.check_holding_limit(receiver.balance, receiver_after)?;

        self.wallet_mut(from).balance = sender_after;
        self.wallet_mut(to).balance = receiver_after;
        let sender_shown = self.shown_balance(from, sender_after, now)?;
        let receiver_shown = self.shown_balance(to, receiver_after, now)?;

        let history = vec![
            self.history_item(
                id,
                from,
                HistoryKind::GiftOut,
                amount.won().negate(),
                sender_shown,
                now,
                Some(Counterparty::Wallet(to.clone())),
            ),
            self.history_item(
                gift_in_id,
                to,
                HistoryKind::GiftIn,
                amount.won(),
                receiver_shown,
                now,
                Some(Counterparty::Wallet(from.clone())),
            ),
        ];
        let transfer = Transfer { from: Account::Wallet(from.clone()), to: Account::Wallet(to.clone()), amount };
        Ok(self.outcome(
            Receipt::Gifted { gift_id: id.clone(), amount, balance: sender_shown },
            Transaction::from_transfers(id.clone(), TxKind::Gift, now, [transfer]),
            history,
        ))
    }

    fn issue_code(&mut self, code: &PaymentCode, wallet: &WalletId, now: DateTime<Utc>) -> Result<Outcome, Rejection> {
        let state = self.wallets.get(wallet).ok_or_else(|| Rejection::UnknownWallet(wallet.clone()))?;
        if state.locked {
            return Err(Rejection::WalletLocked(wallet.clone()));
        }
        // The caller mints codes from 128 random bits: one issued twice is a broken caller.
        assert!(!self.codes.contains_key(code), "payment code issued twice");
        let state = PaymentCodeState::issue(wallet.clone(), now);
        let expires_at = state.expires_at;
        self.codes.insert(code.clone(), state);
        self.dirty.codes.insert(code.clone());
        Ok(Outcome {
            receipt: Receipt::CodeIssued { code: code.clone(), expires_at },
            transaction: None,
            history: Vec::new(),
            balances: Vec::new(),
        })
    }

    fn top_up_budget(&mut self, id: &TxId, amount: Amount, now: DateTime<Utc>) -> Outcome {
        // Both sums stay far below the decimal range (at most 10^12 per top-up).
        self.budget.funded = self.budget.funded.checked_add(amount.won()).expect("budget within range");
        self.system.bank_clearing = self.system.bank_clearing.checked_sub(amount.won()).expect("clearing within range");
        self.dirty.budget = true;
        self.dirty.system = true;
        let transfer = Transfer { from: Account::BankClearing, to: Account::CashbackBudget, amount };
        self.outcome(
            Receipt::BudgetToppedUp { budget: self.budget },
            Transaction::from_transfers(id.clone(), TxKind::CashbackBudgetTopUp, now, [transfer]),
            Vec::new(),
        )
    }

    fn set_policy(&mut self, policy: &Policy) -> Result<Outcome, Rejection> {
        self.policy = policy.clone().validate()?;
        self.dirty.policy = true;
        Ok(Outcome {
            receipt: Receipt::PolicySet { policy: self.policy.clone() },
            transaction: None,
            history: Vec::new(),
            balances: Vec::new(),
        })
    }

    fn close_day(&mut self, id: &TxId, date: BusinessDate, now: DateTime<Utc>) -> Result<Outcome, Rejection> {
        let today = BusinessDate::of(now);
        if date >= today {
            return Err(Rejection::DateNotClosable { date, today });
        }
        if let Some(settlement) = self.settlements.get(&date) {
            return Ok(Outcome {
                receipt: Receipt::DayClosed { settlement: settlement.clone(), newly_closed: false },
                transaction: None,
                history: Vec::new(),
                balances: Vec::new(),
            });
        }
        let mut day_sales: Vec<_> =
            self.sales.iter().filter(|((day, _), sales)| *day == date && sales.has_activity()).collect();
        day_sales.sort_unstable_by(|((_, left), _), ((_, right), _)| left.cmp(right));
        let mut lines = Vec::with_capacity(day_sales.len());
        for ((_, merchant_id), sales) in day_sales {
            let merchant =
                self.merchants.get(merchant_id).ok_or_else(|| Rejection::UnknownMerchant(merchant_id.clone()))?;
            lines.push(SettlementLine::compute(
                merchant_id.clone(),
                sales,
                merchant.carried_negative,
                self.policy.merchant_fee_rate,
            )?);
        }
        let mut total_net_payable = Won::ZERO;
        let mut total_fee = Won::ZERO;
        let mut transfers = Vec::with_capacity(lines.len() * 2);
        let mut receivables_after = Vec::with_capacity(lines.len());
        for line in &lines {
            let receivable = self.merchants[&line.merchant_id].receivable;
            let receivable_after = receivable.checked_sub(line.fee)?.checked_sub(line.payout())?;
            receivables_after.push(receivable_after);
            total_net_payable = total_net_payable.checked_add(line.payout())?;
            total_fee = total_fee.checked_add(line.fee)?;
            let from = Account::Merchant(line.merchant_id.clone());
            if let Ok(fee) = Amount::try_from(line.fee) {
                transfers.push(Transfer { from: from.clone(), to: Account::FeeIncome, amount: fee });
            }
            if let Ok(payout) = Amount::try_from(line.payout()) {
                transfers.push(Transfer { from, to: Account::SettlementPayouts, amount: payout });
            }
        }
        let fee_income_after = self.system.fee_income.checked_add(total_fee)?;
        let payouts_after = self.system.settlement_payouts.checked_add(total_net_payable)?;

        for (line, receivable_after) in lines.iter().zip(receivables_after) {
            let merchant = self.merchant_mut(&line.merchant_id);
            merchant.receivable = receivable_after;
            merchant.carried_negative = line.carried_out();
        }
        self.system.fee_income = fee_income_after;
        self.system.settlement_payouts = payouts_after;
        self.dirty.system = true;
        let settlement = Settlement { business_date: date, tx_id: id.clone(), lines, total_net_payable, total_fee };
        self.settlements.insert(date, settlement.clone());
        self.dirty.settlements.insert(date);
        let transaction = Transaction::from_transfers(id.clone(), TxKind::Settlement, now, transfers);
        let mut outcome = self.outcome(Receipt::DayClosed { settlement, newly_closed: true }, transaction, Vec::new());
        if outcome.transaction.as_ref().is_some_and(|transaction| transaction.postings().is_empty()) {
            outcome.transaction = None;
        }
        Ok(outcome)
    }

    // Helpers: they compute or fetch, and never decide.

    fn check_holding_limit(&self, balance_before: Won, balance_after: Won) -> Result<(), Rejection> {
        let limit = self.policy.holding_limit;
        if balance_after > limit {
            return Err(Rejection::LimitExceeded(Limit::Holding {
                limit,
                room: limit.remaining_after(balance_before)?,
            }));
        }
        Ok(())
    }

    fn wallet_mut(&mut self, id: &WalletId) -> &mut WalletState {
        self.dirty.wallets.insert(id.clone());
        self.wallets.get_mut(id).expect("the caller checked the wallet is loaded")
    }

    fn merchant_mut(&mut self, id: &MerchantId) -> &mut MerchantState {
        self.dirty.merchants.insert(id.clone());
        self.merchants.get_mut(id).expect("the caller checked the merchant is loaded")
    }

    fn put_sales(&mut self, date: BusinessDate, merchant: &MerchantId, sales: DaySales) {
        let key = (date, merchant.clone());
        self.sales.insert(key.clone(), sales);
        self.dirty.sales.insert(key);
    }

    #[allow(clippy::too_many_arguments)]
    fn history_item(
        &self,
        id: &TxId,
        wallet: &WalletId,
        kind: HistoryKind,
        amount: Won,
        balance_after: Won,
        at: DateTime<Utc>,
        counterparty: Option<Counterparty>,
    ) -> HistoryItem {
        assert!(!balance_after.is_negative(), "history item {id} leaves wallet {wallet} negative");
        HistoryItem {
            id: id.clone(),
            wallet: wallet.clone(),
            kind,
            amount,
            balance_after,
            at,
            counterparty,
            related: None,
        }
    }

    /// Wraps a transaction with the balances after it of the accounts it touched.
    fn outcome(&self, receipt: Receipt, transaction: Transaction, history: Vec<HistoryItem>) -> Outcome {
        let mut balances: Vec<(Account, Won)> = Vec::with_capacity(transaction.postings().len());
        // A set beside the list (which keeps the postings' order): a day's close posts to every
        // merchant of the day, and a scan of the list per posting was quadratic in them.
        let mut listed: HashSet<&Account> = HashSet::with_capacity(transaction.postings().len());
        for posting in transaction.postings() {
            if listed.insert(&posting.account) {
                let balance = self.balance(&posting.account).expect("a posted account is loaded");
                if posting.account.kind().must_not_go_negative() {
                    assert!(!balance.is_negative(), "{} below zero after {}", posting.account, transaction.id());
                }
                balances.push((posting.account.clone(), balance));
            }
        }
        Outcome { receipt, transaction: Some(transaction), history, balances }
    }
}

/// The states of the keys in `keys`, sorted by key.
fn sorted_states<K: Ord + Clone + std::hash::Hash, V: Clone>(keys: Set<K>, states: &Map<K, V>) -> Vec<(K, V)> {
    let mut keys: Vec<K> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.into_iter()
        .map(|key| {
            let state = states.get(&key).expect("a changed entity is loaded").clone();
            (key, state)
        })
        .collect()
}
