//! The history of a generated handover bundle: what citizens do, applied to a
//! `wallet_core::Book`, so every figure a bundle carries is the ledger's own.
//!
//! The generator only chooses: who acts, what they try and how much. Whether it may happen, and
//! what it moves, is the book's: the month's charge limit and the holding limit, the payment's
//! cashback under the spend cap and the budget, a refund's proportional reversal and the whole
//! rest on the refund that completes a payment, settlement of each business date. A command the
//! book refuses for a reason a citizen could meet (a limit, the funds) is tried smaller or
//! replaced; any other refusal is a fault of the generator, and stops it.
//!
//! [`City`] works as the server's writer does, a business day being its batch: it keeps every
//! account's state in plain vectors (its "store"), loads into one day's `Book` the accounts the
//! day's commands touch, and writes them back when the day closes. One book of the whole city
//! (every wallet, payment, code and day of sales) wrote the same bytes for the benchmark's
//! default city in 26 to 32 s and 0.8 to 1 GiB, against 14 s and 0.4 GiB: lookups among a
//! million wallets miss the caches, and settling a day scanned every day's sales (measured on
//! the same busy two-core machine).

use chrono::{DateTime, Utc};
use handover_format::write::HashedCsv;
use wallet_core::{
    AccountKind, Amount, Book, BudgetState, BusinessDate, Command, Counterparty, HistoryKind, MerchantId,
    MerchantState, Outcome, PaymentCode, PaymentState, Policy, Receipt, Rejection, SystemBalances, TrialBalance, TxId,
    WalletId, WalletState, Won,
};

const CHARGE_AMOUNTS_WON: [i64; 8] = [10_000, 20_000, 30_000, 50_000, 100_000, 200_000, 300_000, 500_000];
const GIFT_AMOUNTS_WON: [i64; 5] = [1_000, 5_000, 10_000, 20_000, 50_000];
/// Payments are whole hundreds of won, from 100 up to this (or the balance, if less).
const PAYMENT_AMOUNT_WON_MAX: i64 = 80_000;
/// A payment's first refund is a part of it (whole hundreds) one time in this many; otherwise a
/// refund takes back all that is left.
const PARTIAL_REFUND_ONE_IN: u32 = 3;
/// Event kinds by weight (percent): what a citizen does when picked.
const KIND_WEIGHTS_PERCENT: [(Kind, u32); 4] =
    [(Kind::Charge, 28), (Kind::Payment, 55), (Kind::Gift, 10), (Kind::Refund, 7)];

/// What a picked citizen tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Charge,
    Payment,
    Gift,
    Refund,
}

pub fn pick_kind(rng: &mut fastrand::Rng) -> Kind {
    let total: u32 = KIND_WEIGHTS_PERCENT.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.u32(..total);
    for (kind, weight) in KIND_WEIGHTS_PERCENT {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the sum of the weights")
}

/// How a bundle names what a command creates at its n-th history row.
pub struct Ids<'a> {
    /// The id of the n-th history row (a command's second row, if any, is the next one).
    pub tx: &'a dyn Fn(u64) -> String,
    /// The payment code a payment made at the n-th row is paid with.
    pub code: &'a dyn Fn(u64) -> String,
}

impl Ids<'_> {
    fn tx(&self, row: u64) -> TxId {
        TxId::parse(&(self.tx)(row)).expect("generated ids are short and printable")
    }

    fn code(&self, row: u64) -> PaymentCode {
        PaymentCode::parse(&(self.code)(row)).expect("generated codes are short and printable")
    }
}

/// A wallet's last payment, the one a refund takes back: its id and its state.
pub type LastPayment = (TxId, PaymentState);

/// The accounts of a city at the start of a history: each wallet with its state and last
/// payment (the one a refund takes back), each merchant, and the city's own accounts.
pub struct Accounts {
    pub wallets: Vec<(WalletId, WalletState, Option<LastPayment>)>,
    pub merchants: Vec<(MerchantId, MerchantState)>,
    pub budget: BudgetState,
    pub system: SystemBalances,
}

/// A city's books as its history is applied: the store of every account (as of the last day's
/// end) and the day's book, which holds what the day's commands touched.
pub struct City {
    policy: Policy,
    book: Book,
    wallet_ids: Vec<WalletId>,
    wallets: Vec<WalletState>,
    last_payments: Vec<Option<Box<LastPayment>>>,
    merchant_ids: Vec<MerchantId>,
    merchants: Vec<MerchantState>,
    merchant_of_id: std::collections::HashMap<MerchantId, usize>,
    /// What the day's book holds: the indexes loaded, and a flag per account.
    wallets_loaded: Vec<usize>,
    wallet_is_loaded: Vec<bool>,
    merchants_loaded: Vec<usize>,
    merchant_is_loaded: Vec<bool>,
    /// The business date whose sales are open in the day's book.
    open_date: Option<BusinessDate>,
}

impl City {
    pub fn new(policy: Policy, accounts: Accounts) -> City {
        let mut book = Book::new(policy.clone());
        book.load_budget(accounts.budget);
        book.load_system(accounts.system);
        let (mut wallet_ids, mut wallets, mut last_payments) = (Vec::new(), Vec::new(), Vec::new());
        for (id, state, last_payment) in accounts.wallets {
            wallet_ids.push(id);
            wallets.push(state);
            last_payments.push(last_payment.map(Box::new));
        }
        let (merchant_ids, merchants): (Vec<MerchantId>, Vec<MerchantState>) = accounts.merchants.into_iter().unzip();
        let merchant_of_id = merchant_ids.iter().enumerate().map(|(index, id)| (id.clone(), index)).collect();
        City {
            policy,
            book,
            wallet_is_loaded: vec![false; wallet_ids.len()],
            merchant_is_loaded: vec![false; merchant_ids.len()],
            wallet_ids,
            wallets,
            last_payments,
            merchant_ids,
            merchants,
            merchant_of_id,
            wallets_loaded: Vec::new(),
            merchants_loaded: Vec::new(),
            open_date: None,
        }
    }

    pub fn wallets(&self) -> usize {
        self.wallet_ids.len()
    }

    /// A wallet as of the last day's end ([`City::end_day`]).
    pub fn wallet(&self, index: usize) -> (&WalletId, &WalletState) {
        (&self.wallet_ids[index], &self.wallets[index])
    }

    /// A merchant as of the last day's end.
    pub fn merchant(&self, index: usize) -> (&MerchantId, &MerchantState) {
        (&self.merchant_ids[index], &self.merchants[index])
    }

    /// The cashback budget as the history leaves it so far.
    pub fn budget(&self) -> BudgetState {
        self.book.budget()
    }

    /// Every account of the city summed by kind, after [`City::end_day`]: it totals zero.
    pub fn trial_balance(&self) -> TrialBalance {
        assert!(self.wallets_loaded.is_empty() && self.merchants_loaded.is_empty(), "the day has ended");
        // The day's book holds the city's own accounts; the store, the wallets and merchants.
        let wallets = self.wallets.iter().map(|wallet| (AccountKind::CitizenWallet, wallet.balance));
        let merchants = self.merchants.iter().map(|merchant| (AccountKind::MerchantReceivable, merchant.receivable));
        TrialBalance::sum(self.book.trial_balance().balances().chain(wallets).chain(merchants))
            .expect("a city's balances stay inside the decimal range")
    }

    /// Ends the day once `now` is on a later business date: closes the open date in the day's
    /// book, as the city closes each day (fees, none under the default policy, and payouts
    /// leave the receivables; a negative net is carried), and writes the day back. The last date
    /// stays open: its sales are what a snapshot's merchants are still owed.
    pub fn close_days_before(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        let today = BusinessDate::of(now);
        if let Some(open) = self.open_date.filter(|open| *open < today) {
            let id = TxId::parse(&format!("close-{open}")).expect("a date is a short id");
            self.apply(&Command::CloseDay { id, date: open }, now, |_| false)?;
            self.end_day();
        }
        self.open_date = Some(today);
        Ok(())
    }

    /// Writes what the day's book holds back to the store and starts an empty book with the
    /// city's own accounts. Used codes and the day's sales stay behind.
    pub fn end_day(&mut self) {
        for index in std::mem::take(&mut self.wallets_loaded) {
            let id = &self.wallet_ids[index];
            self.wallets[index] = self.book.wallet(id).expect("a loaded wallet is in the book").clone();
            if let Some(last) = self.last_payments[index].as_deref_mut() {
                if let Some(payment) = self.book.payment(&last.0) {
                    last.1 = payment.clone();
                }
            }
            self.wallet_is_loaded[index] = false;
        }
        for index in std::mem::take(&mut self.merchants_loaded) {
            let id = &self.merchant_ids[index];
            self.merchants[index] = self.book.merchant(id).expect("a loaded merchant is in the book").clone();
            self.merchant_is_loaded[index] = false;
        }
        let mut book = Book::new(self.policy.clone());
        book.load_budget(self.book.budget());
        book.load_system(self.book.system());
        self.book = book;
    }

    fn load_wallet(&mut self, index: usize) {
        if !self.wallet_is_loaded[index] {
            self.wallet_is_loaded[index] = true;
            self.wallets_loaded.push(index);
            self.book.load_wallet(self.wallet_ids[index].clone(), self.wallets[index].clone());
        }
    }

    fn load_merchant(&mut self, index: usize) {
        if !self.merchant_is_loaded[index] {
            self.merchant_is_loaded[index] = true;
            self.merchants_loaded.push(index);
            self.book.load_merchant(self.merchant_ids[index].clone(), self.merchants[index].clone());
        }
    }

    /// One turn of `wallet` at the bundle's history row `row`: `kind`, or failing that a charge,
    /// or a payment. `None` when the book refused all of them. With fewer than two rows left,
    /// only a charge (one row) is tried, so a bundle has exactly the rows asked for.
    #[allow(clippy::too_many_arguments)]
    pub fn turn(
        &mut self,
        rng: &mut fastrand::Rng,
        kind: Kind,
        wallet: usize,
        partner: usize,
        row: u64,
        rows_left: u64,
        now: DateTime<Utc>,
        ids: &Ids,
    ) -> Result<Option<Outcome>, String> {
        self.load_wallet(wallet);
        let kinds: &[Kind] = if rows_left < 2 { &[Kind::Charge] } else { &[kind, Kind::Charge, Kind::Payment] };
        for kind in kinds {
            let outcome = match kind {
                Kind::Charge => self.charge(rng, wallet, row, now, ids)?,
                Kind::Payment => self.pay(rng, wallet, row, now, ids)?,
                Kind::Gift => self.gift(rng, wallet, partner, row, now, ids)?,
                Kind::Refund => self.refund(rng, wallet, row, now, ids)?,
            };
            if let Some(outcome) = outcome {
                assert!(outcome.history.len() as u64 <= rows_left, "a turn writes at most the rows left");
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }

    /// A charge of an amount drawn, or the largest smaller one the book accepts.
    fn charge(
        &mut self,
        rng: &mut fastrand::Rng,
        wallet: usize,
        row: u64,
        now: DateTime<Utc>,
        ids: &Ids,
    ) -> Result<Option<Outcome>, String> {
        let wanted_won = CHARGE_AMOUNTS_WON[rng.usize(..CHARGE_AMOUNTS_WON.len())];
        for amount_won in CHARGE_AMOUNTS_WON.iter().rev().filter(|amount| **amount <= wanted_won) {
            let command = Command::Charge {
                id: ids.tx(row),
                // No charge bonus program runs in a generated history: no bonus item is written.
                bonus_id: ids.tx(row),
                wallet: self.wallet_ids[wallet].clone(),
                amount: amount(*amount_won),
            };
            let expected = |rejection: &Rejection| matches!(rejection, Rejection::LimitExceeded(_));
            if let Some(outcome) = self.apply(&command, now, expected)? {
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }

    /// A payment of up to the balance at a merchant drawn (a few merchants take most payments),
    /// with a payment code issued for it first.
    fn pay(
        &mut self,
        rng: &mut fastrand::Rng,
        wallet: usize,
        row: u64,
        now: DateTime<Utc>,
        ids: &Ids,
    ) -> Result<Option<Outcome>, String> {
        let wallet_id = self.wallet_ids[wallet].clone();
        let balance = self.book.wallet(&wallet_id).expect("the turn's wallet is loaded").balance;
        let hundreds_max = whole_won(balance.min(Won::from_i64(PAYMENT_AMOUNT_WON_MAX))) / 100;
        if hundreds_max == 0 {
            return Ok(None);
        }
        let amount_won = rng.i64(1..=hundreds_max) * 100;
        let draw = rng.f64();
        let merchant = ((draw * draw * self.merchant_ids.len() as f64) as usize).min(self.merchant_ids.len() - 1);
        self.load_merchant(merchant);
        let code = ids.code(row);
        self.apply(&Command::IssueCode { code: code.clone(), wallet: wallet_id }, now, |_| false)?;
        let id = ids.tx(row);
        let command = Command::Pay {
            id: id.clone(),
            cashback_id: ids.tx(row + 1),
            merchant: self.merchant_ids[merchant].clone(),
            code,
            amount: amount(amount_won),
        };
        // Within the balance, with a fresh code: nothing a citizen could meet refuses it.
        let outcome = self.apply(&command, now, |_| false)?;
        let payment = self.book.payment(&id).expect("a payment made is in the book").clone();
        self.last_payments[wallet] = Some(Box::new((id, payment)));
        Ok(outcome)
    }

    /// A gift to `partner` of an amount drawn, or the largest smaller one the book accepts.
    fn gift(
        &mut self,
        rng: &mut fastrand::Rng,
        wallet: usize,
        partner: usize,
        row: u64,
        now: DateTime<Utc>,
        ids: &Ids,
    ) -> Result<Option<Outcome>, String> {
        if partner == wallet {
            return Ok(None);
        }
        self.load_wallet(partner);
        let wanted_won = GIFT_AMOUNTS_WON[rng.usize(..GIFT_AMOUNTS_WON.len())];
        for amount_won in GIFT_AMOUNTS_WON.iter().rev().filter(|amount| **amount <= wanted_won) {
            let command = Command::Gift {
                id: ids.tx(row),
                gift_in_id: ids.tx(row + 1),
                from: self.wallet_ids[wallet].clone(),
                to: self.wallet_ids[partner].clone(),
                amount: amount(*amount_won),
            };
            let expected = |rejection: &Rejection| {
                matches!(rejection, Rejection::InsufficientFunds { .. } | Rejection::LimitExceeded(_))
            };
            if let Some(outcome) = self.apply(&command, now, expected)? {
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }

    /// A refund of the wallet's last payment: all that is left of it, or on a first refund now
    /// and then a part. The book reverses the cashback's share.
    fn refund(
        &mut self,
        rng: &mut fastrand::Rng,
        wallet: usize,
        row: u64,
        now: DateTime<Utc>,
        ids: &Ids,
    ) -> Result<Option<Outcome>, String> {
        let Some(last) = self.last_payments[wallet].as_deref() else { return Ok(None) };
        let payment_id = last.0.clone();
        if self.book.payment(&payment_id).is_none() {
            self.book.load_payment(payment_id.clone(), last.1.clone());
        }
        let payment = self.book.payment(&payment_id).expect("loaded above");
        let refundable_won = whole_won(payment.refundable());
        if refundable_won == 0 {
            return Ok(None);
        }
        let partial = payment.refunded.is_zero() && refundable_won >= 200 && rng.u32(..PARTIAL_REFUND_ONE_IN) == 0;
        let amount_won = if partial { rng.i64(1..refundable_won / 100) * 100 } else { refundable_won };
        let merchant = payment.merchant.clone();
        let merchant_index = *self.merchant_of_id.get(&merchant).expect("a payment's merchant is the city's");
        self.load_merchant(merchant_index);
        let command = Command::Refund {
            id: ids.tx(row),
            reversal_id: ids.tx(row + 1),
            merchant,
            payment: payment_id,
            amount: amount(amount_won),
        };
        // A reversal beyond the refund (a corner of the floor rule) needs the wallet to cover it.
        self.apply(&command, now, |rejection| matches!(rejection, Rejection::InsufficientFunds { .. }))
    }

    /// Applies `command`: its outcome, or `None` for a rejection `expected` allows. Any other
    /// rejection means the generator asked for something it should not have: it stops.
    fn apply(
        &mut self,
        command: &Command,
        now: DateTime<Utc>,
        expected: impl Fn(&Rejection) -> bool,
    ) -> Result<Option<Outcome>, String> {
        match self.book.apply(command, now) {
            Ok(outcome) => Ok(Some(outcome)),
            Err(rejection) if expected(&rejection) => Ok(None),
            Err(rejection) => Err(format!("the ledger refused a generated command ({rejection}): {command:?}")),
        }
    }
}

/// Writes an applied command's history items as rows of transactions.csv; `at` is the command's
/// instant as the bundle writes it.
pub fn write_history(out: &mut HashedCsv, outcome: &Outcome, at: &str) -> Result<(), String> {
    let cashback = match &outcome.receipt {
        Receipt::Paid { cashback, .. } => cashback.to_string(),
        _ => String::new(),
    };
    for item in &outcome.history {
        let merchant = match &item.counterparty {
            Some(Counterparty::Merchant(merchant)) => merchant.as_str(),
            Some(Counterparty::Wallet(_)) | None => "",
        };
        out.row(&[
            item.id.as_str(),
            at,
            item.kind.as_str(),
            item.wallet.as_str(),
            merchant,
            &item.amount.to_string(),
            if item.kind == HistoryKind::Payment { &cashback } else { "" },
            item.related.as_ref().map_or("", TxId::as_str),
        ])?;
    }
    Ok(())
}

fn amount(won: i64) -> Amount {
    Amount::from_i64(won).expect("generated amounts are from 100 won to 500,000 won")
}

/// A balance or payment the generator handles, as whole won.
fn whole_won(won: Won) -> i64 {
    won.to_i64().expect("a wallet's figures stay far inside i64")
}
