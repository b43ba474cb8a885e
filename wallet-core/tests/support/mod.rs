//! A ledger with a few citizens and merchants, and one-line helpers for each operation.

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use wallet_core::*;

pub fn won(value: i64) -> Won {
    Won::from_i64(value)
}

pub fn amount(value: i64) -> Amount {
    Amount::from_i64(value).expect("test amounts are positive")
}

pub fn rate(text: &str) -> Rate {
    Rate::parse(text).expect("test rates are valid")
}

pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("test instants are RFC 3339").with_timezone(&Utc)
}

pub fn wallet_id(name: &str) -> WalletId {
    WalletId::parse(name).expect("test ids are valid")
}

pub fn merchant_id(name: &str) -> MerchantId {
    MerchantId::parse(name).expect("test ids are valid")
}

pub fn tx_id(name: &str) -> TxId {
    TxId::parse(name).expect("test ids are valid")
}

/// The policy the example tests use: round figures that make each rule visible.
pub fn test_policy() -> Policy {
    Policy {
        cashback_rate: rate("0.1"),
        cashback_monthly_spend_cap: won(500_000),
        monthly_charge_limit: won(2_000_000),
        holding_limit: won(3_000_000),
        merchant_fee_rate: rate("0.01"),
    }
}

/// A book, a clock that the test moves, and a counter for the ids the core never mints itself.
pub struct Ledger {
    pub book: Book,
    pub now: DateTime<Utc>,
    next_id: u64,
}

impl Ledger {
    /// Citizens `alice`, `bob`, `carol`, merchants `bakery`, `grocer`, a budget of 1,000,000 won,
    /// at 10:00 KST on 2026-12-10.
    pub fn new() -> Ledger {
        let now = utc("2026-12-10T01:00:00Z");
        let mut book = Book::new(test_policy());
        for name in ["alice", "bob", "carol"] {
            book.open_wallet(wallet_id(name), now);
        }
        for name in ["bakery", "grocer"] {
            book.open_merchant(merchant_id(name));
        }
        let mut ledger = Ledger { book, now, next_id: 0 };
        ledger.top_up(1_000_000).expect("budget top-up");
        ledger.book.take_changes();
        ledger
    }

    pub fn fresh_id(&mut self, prefix: &str) -> TxId {
        self.next_id += 1;
        tx_id(&format!("{prefix}-{}", self.next_id))
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now += Duration::seconds(seconds);
    }

    /// Applies `command`, and checks that its [`Keys`] are complete: a book holding only the
    /// rows they name applies it exactly as the whole book does.
    pub fn apply(&mut self, command: Command) -> Result<Outcome, Rejection> {
        let mut keyed = keyed_book(&self.book, &command, self.now);
        let keyed_outcome = keyed.apply(&command, self.now);
        let outcome = self.book.apply(&command, self.now);
        assert_eq!(keyed_outcome, outcome, "the keys of {command:?} left out a row it reads");
        assert_changes_agree(&keyed.take_changes(), &self.book);
        assert_trial_balance_zero(&self.book);
        outcome
    }

    pub fn charge(&mut self, wallet: &str, value: i64) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("charge");
        let bonus_id = self.fresh_id("charge-bonus");
        self.apply(Command::Charge { id, bonus_id, wallet: wallet_id(wallet), amount: amount(value) })
    }

    pub fn gift(&mut self, from: &str, to: &str, value: i64) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("gift");
        let gift_in_id = self.fresh_id("gift-in");
        self.apply(Command::Gift { id, gift_in_id, from: wallet_id(from), to: wallet_id(to), amount: amount(value) })
    }

    pub fn issue_code(&mut self, wallet: &str) -> PaymentCode {
        let code = PaymentCode::parse(&format!("code-{}", self.fresh_id("c"))).expect("valid code");
        self.apply(Command::IssueCode { code: code.clone(), wallet: wallet_id(wallet) }).expect("the wallet is open");
        code
    }

    pub fn pay_with(&mut self, merchant: &str, code: PaymentCode, value: i64) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("pay");
        let cashback_id = self.fresh_id("cashback");
        self.apply(Command::Pay { id, cashback_id, merchant: merchant_id(merchant), code, amount: amount(value) })
    }

    /// Issues a code for `wallet` and pays `merchant` with it.
    pub fn pay(&mut self, merchant: &str, wallet: &str, value: i64) -> Result<Outcome, Rejection> {
        let code = self.issue_code(wallet);
        self.pay_with(merchant, code, value)
    }

    pub fn refund(&mut self, merchant: &str, payment: &TxId, value: i64) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("refund");
        let reversal_id = self.fresh_id("reversal");
        self.apply(Command::Refund {
            id,
            reversal_id,
            merchant: merchant_id(merchant),
            payment: payment.clone(),
            amount: amount(value),
        })
    }

    pub fn top_up(&mut self, value: i64) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("topup");
        self.apply(Command::TopUpBudget { id, amount: amount(value) })
    }

    pub fn close(&mut self, date: &str) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("settlement");
        self.apply(Command::CloseDay { id, date: BusinessDate::parse(date).expect("test dates are valid") })
    }

    pub fn balance(&self, wallet: &str) -> Won {
        self.book.wallet(&wallet_id(wallet)).expect("wallet exists").balance
    }

    pub fn receivable(&self, merchant: &str) -> Won {
        self.book.merchant(&merchant_id(merchant)).expect("merchant exists").receivable
    }

    pub fn view(&self, wallet: &str) -> WalletView {
        let policy = self.book.policy().clone();
        self.book
            .wallet(&wallet_id(wallet))
            .expect("wallet exists")
            .view(self.now, &policy, self.book.grants_of(&wallet_id(wallet)))
            .expect("view")
    }

    /// What the citizen sees as the balance: `own + bonus` and the live allowances.
    pub fn shown(&self, wallet: &str) -> Won {
        self.view(wallet).balance
    }

    pub fn bonus(&self, wallet: &str) -> Won {
        self.book.wallet(&wallet_id(wallet)).expect("wallet exists").bonus
    }

    /// Opens an allowance program valid `days` days, admitting `categories` (all when empty).
    pub fn open_program(&mut self, name: &str, days: u32, categories: &[&str]) -> ProgramId {
        let id = ProgramId::parse(name).expect("test ids are valid");
        let rules = AllowanceRules {
            validity: Validity::Days(days),
            merchant_categories: categories.iter().map(|category| category.to_string()).collect(),
            excluded_merchant_categories: Vec::new(),
            merchant_annual_revenue_max: None,
        };
        self.book.open_program(id.clone(), rules);
        id
    }

    pub fn top_up_program(&mut self, program: &ProgramId, value: i64) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("program-topup");
        self.apply(Command::TopUpProgram { id, program: program.clone(), amount: amount(value) })
    }

    /// Grants `value` of `program` to each wallet; the grant ids are returned in the same order.
    pub fn grant(
        &mut self,
        program: &ProgramId,
        wallets: &[(&str, i64)],
    ) -> Result<(Outcome, Vec<GrantId>), Rejection> {
        let id = self.fresh_id("grant-tx");
        let mut lines = Vec::new();
        for (wallet, value) in wallets {
            let grant = GrantId::parse(self.fresh_id("grant").as_str()).expect("valid id");
            lines.push(GrantLine { grant, wallet: wallet_id(wallet), amount: amount(*value) });
        }
        let grants = lines.iter().map(|line| line.grant.clone()).collect();
        let outcome = self.apply(Command::Grant { id, program: program.clone(), lines })?;
        Ok((outcome, grants))
    }

    pub fn expire(&mut self, grant: &GrantId) -> Result<Outcome, Rejection> {
        let id = self.fresh_id("expiry");
        self.apply(Command::ExpireGrant { id, grant: grant.clone() })
    }
}

/// What the server's writer loads for `command`: the rows its [`Keys`] name, in both stages,
/// taken from `full`, plus the city row and each keyed merchant's sales of the day of `now`.
pub fn keyed_book(full: &Book, command: &Command, now: DateTime<Utc>) -> Book {
    let mut keys = Keys::of([command]);
    let mut book = Book::new(full.policy().clone());
    book.load_budget(full.budget());
    book.load_system(full.system());
    for id in &keys.payments.clone() {
        if let Some(payment) = full.payment(id) {
            keys.follow_payment(payment);
            book.load_payment(id.clone(), payment.clone());
        }
    }
    for code in &keys.codes.clone() {
        if let Some(state) = full.code(code) {
            keys.follow_code(state);
            book.load_code(code.clone(), state.clone());
        }
    }
    for id in &keys.grants.clone() {
        if let Some(grant) = full.grant_state(id) {
            keys.follow_grant(grant);
        }
    }
    for id in &keys.wallets.clone() {
        if let Some(wallet) = full.wallet(id) {
            book.load_wallet(id.clone(), wallet.clone());
            for (grant_id, grant) in full.grants_of(id) {
                keys.follow_grant(grant);
                book.load_grant(grant_id.clone(), grant.clone());
            }
        }
    }
    for id in &keys.programs {
        if let Some(program) = full.program(id) {
            book.load_program(id.clone(), program.clone());
        }
        if let Some(program) = full.charge_bonus(id) {
            book.load_charge_bonus(id.clone(), program.clone());
        }
    }
    if keys.running_charge_bonus {
        for (id, program) in full.charge_bonuses().filter(|(_, program)| program.is_running(now)) {
            book.load_charge_bonus(id.clone(), program.clone());
        }
    }
    for &date in &keys.close_dates.clone() {
        match full.settlement(date) {
            Some(settlement) => book.load_settlement(settlement.clone()),
            None => {
                for (merchant, _) in full.merchants() {
                    if let Some(sales) = full.sales(date, merchant) {
                        keys.follow_close_sales(merchant);
                        book.load_sales(date, merchant.clone(), *sales);
                    }
                }
            }
        }
    }
    let today = BusinessDate::of(now);
    for id in &keys.merchants {
        if let Some(merchant) = full.merchant(id) {
            book.load_merchant(id.clone(), merchant.clone());
        }
        if let Some(sales) = full.sales(today, id) {
            book.load_sales(today, id.clone(), *sales);
        }
    }
    book
}

/// Every entity the keyed book changed is in the same state in the whole book.
fn assert_changes_agree(changes: &Changes, full: &Book) {
    assert_eq!(changes.policy.as_ref(), changes.policy.as_ref().map(|_| full.policy()));
    assert_eq!(changes.budget, changes.budget.map(|_| full.budget()));
    assert_eq!(changes.system, changes.system.map(|_| full.system()));
    for (id, wallet) in &changes.wallets {
        assert_eq!(Some(wallet), full.wallet(id), "wallet {id}");
    }
    for (id, merchant) in &changes.merchants {
        assert_eq!(Some(merchant), full.merchant(id), "merchant {id}");
    }
    for (id, payment) in &changes.payments {
        assert_eq!(Some(payment), full.payment(id), "payment {id}");
    }
    for (code, state) in &changes.codes {
        assert_eq!(Some(state), full.code(code), "code {code:?}");
    }
    for ((date, merchant), sales) in &changes.sales {
        assert_eq!(Some(sales), full.sales(*date, merchant), "sales of {merchant} on {date}");
    }
    for settlement in &changes.settlements {
        assert_eq!(Some(settlement), full.settlement(settlement.business_date));
    }
    for (id, program) in &changes.programs {
        assert_eq!(Some(program), full.program(id), "program {id}");
    }
    for (id, program) in &changes.charge_bonuses {
        assert_eq!(Some(program), full.charge_bonus(id), "charge bonus {id}");
    }
    for (id, grant) in &changes.grants {
        assert_eq!(Some(grant), full.grant_state(id), "grant {id}");
    }
}

pub fn assert_trial_balance_zero(book: &Book) {
    let trial_balance = book.trial_balance();
    let total = trial_balance.balances().fold(Won::ZERO, |sum, (_, value)| sum.checked_add(value).unwrap());
    assert_eq!(total, Won::ZERO, "trial balance {trial_balance:?}");
    assert_eq!((trial_balance.total(), trial_balance.check()), (total, Ok(())));
}

pub fn payment_id(outcome: &Outcome) -> TxId {
    match &outcome.receipt {
        Receipt::Paid { payment_id, .. } => payment_id.clone(),
        other => panic!("not a payment: {other:?}"),
    }
}

pub fn cashback_of(outcome: &Outcome) -> Won {
    match &outcome.receipt {
        Receipt::Paid { cashback, .. } => *cashback,
        other => panic!("not a payment: {other:?}"),
    }
}

pub fn reversed_of(outcome: &Outcome) -> Won {
    match &outcome.receipt {
        Receipt::Refunded { cashback_reversed, .. } => *cashback_reversed,
        other => panic!("not a refund: {other:?}"),
    }
}

pub fn settlement_of(outcome: &Outcome) -> (&Settlement, bool) {
    match &outcome.receipt {
        Receipt::DayClosed { settlement, newly_closed } => (settlement, *newly_closed),
        other => panic!("not a settlement: {other:?}"),
    }
}
