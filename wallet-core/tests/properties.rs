//! Property tests: random sequences of thousands of operations across many citizens and
//! merchants, month boundaries and policy changes, with every invariant checked after every step.

mod support;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use support::*;
use wallet_core::*;

const CITIZENS: usize = 12;
const MERCHANTS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Charge { wallet: usize, amount: i64 },
    Gift { from: usize, to: usize, amount: i64 },
    Pay { merchant: usize, wallet: usize, amount: i64, late: bool },
    IssueCode { wallet: usize },
    Refund { payment: usize, merchant: Option<usize>, share: RefundShare },
    TopUp { amount: i64 },
    SetPolicy { rate: &'static str, cap: i64, charge_limit: i64, holding_limit: i64, fee: &'static str },
    Advance { seconds: i64 },
    Close { days_back: i64 },
    TopUpProgram { program: usize, amount: i64 },
    Grant { program: usize, wallets: Vec<(usize, i64)> },
    Expire { grant: usize },
}

/// The programs every run opens: (name, valid days, categories). Merchant i has category
/// `CATEGORIES[i % 3]`, so each program admits some merchants and not others.
const PROGRAMS: [(&str, u32, &[&str]); 3] =
    [("youth", 1, &[]), ("relief", 3, &["restaurant"]), ("child", 30, &["restaurant", "cafe"])];
const CATEGORIES: [&str; 3] = ["restaurant", "cafe", "mart"];

#[derive(Clone, Copy, Debug)]
enum RefundShare {
    All,
    Half,
    One,
    Won(i64),
}

fn amount_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 1i64..30_000, 2 => 30_000i64..400_000, 1 => Just(12_345i64), 1 => 1i64..10]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..CITIZENS, amount_strategy()).prop_map(|(wallet, amount)| Op::Charge { wallet, amount }),
        2 => (0..CITIZENS, 0..CITIZENS, amount_strategy()).prop_map(|(from, to, amount)| Op::Gift { from, to, amount }),
        8 => (0..MERCHANTS, 0..CITIZENS, amount_strategy(), prop::bool::weighted(0.05))
            .prop_map(|(merchant, wallet, amount, late)| Op::Pay { merchant, wallet, amount, late }),
        1 => (0..CITIZENS + 1).prop_map(|wallet| Op::IssueCode { wallet }),
        4 => (any::<usize>(), prop::option::weighted(0.1, 0..MERCHANTS), prop_oneof![
                Just(RefundShare::All), Just(RefundShare::Half), Just(RefundShare::One), amount_strategy().prop_map(RefundShare::Won)
            ]).prop_map(|(payment, merchant, share)| Op::Refund { payment, merchant, share }),
        1 => (1i64..300_000).prop_map(|amount| Op::TopUp { amount }),
        1 => (
                prop::sample::select(vec!["0", "0.05", "0.1", "0.123", "0.99", "1"]),
                prop::sample::select(vec![0i64, 10_000, 500_000, 2_000_000]),
                prop::sample::select(vec![100_000i64, 2_000_000, 10_000_000]),
                prop::sample::select(vec![50_000i64, 3_000_000]),
                prop::sample::select(vec!["0", "0.005", "0.03"]),
            ).prop_map(|(rate, cap, charge_limit, holding_limit, fee)| Op::SetPolicy { rate, cap, charge_limit, holding_limit, fee }),
        3 => prop_oneof![Just(60i64), Just(3_600), Just(86_400), 0i64..(4 * 86_400)].prop_map(|seconds| Op::Advance { seconds }),
        1 => (1i64..6).prop_map(|days_back| Op::Close { days_back }),
        // Index PROGRAMS.len() is the charge bonus program.
        2 => (0..PROGRAMS.len() + 1, 1i64..500_000).prop_map(|(program, amount)| Op::TopUpProgram { program, amount }),
        2 => (0..PROGRAMS.len(), prop::collection::vec((0..CITIZENS + 1, amount_strategy()), 1..6))
            .prop_map(|(program, wallets)| Op::Grant { program, wallets }),
        2 => any::<usize>().prop_map(|grant| Op::Expire { grant }),
    ]
}

/// The ledger under test, with what the test itself records to check the core against.
struct Run {
    ledger: Ledger,
    payments: Vec<(TxId, usize)>,
    grants: Vec<GrantId>,
    /// Charge bonuses earned, by citizen and KST month.
    bonuses: BTreeMap<(usize, Month), Won>,
    /// Highest spend cap in force at any moment of each month: the month's eligible spend may
    /// not pass it (a lowered cap cannot take back spend already counted).
    cap_ceiling_by_month: BTreeMap<Month, Won>,
    outcomes: Vec<Result<Outcome, Rejection>>,
}

fn citizen(index: usize) -> String {
    format!("citizen-{index}")
}

fn merchant(index: usize) -> String {
    format!("merchant-{index}")
}

impl Run {
    fn new() -> Run {
        let mut ledger = Ledger::new();
        for index in 0..CITIZENS {
            ledger.book.open_wallet(wallet_id(&citizen(index)), ledger.now);
        }
        for index in 0..MERCHANTS {
            let state = MerchantState { category: Some(CATEGORIES[index % 3].to_owned()), ..MerchantState::default() };
            ledger.book.load_merchant(merchant_id(&merchant(index)), state);
        }
        for (name, days, categories) in PROGRAMS {
            ledger.open_program(name, days, categories);
        }
        let rules = ChargeBonusRules {
            rate: rate("0.1"),
            monthly_charge_cap: won(BONUS_CAP),
            // Three cohorts a day apart from an hour in; closed on day sixty.
            opens_at: ledger.now + Duration::hours(1),
            closes_at: ledger.now + Duration::days(60),
            cohorts: 3,
            cohort_interval_s: 86_400,
        };
        ledger.book.open_charge_bonus(program_id(PROGRAMS.len()), rules);
        // Funded from the start, so that charges in the window earn (top-ups add more).
        ledger.top_up_program(&program_id(PROGRAMS.len()), 300_000).expect("a top-up of an open program");
        ledger.book.take_changes();
        let mut run = Run {
            ledger,
            payments: Vec::new(),
            grants: Vec::new(),
            bonuses: BTreeMap::new(),
            cap_ceiling_by_month: BTreeMap::new(),
            outcomes: Vec::new(),
        };
        run.note_cap();
        run
    }

    fn note_cap(&mut self) {
        let month = Month::of(self.ledger.now);
        let cap = self.ledger.book.policy().cashback_monthly_spend_cap;
        let ceiling = self.cap_ceiling_by_month.entry(month).or_insert(cap);
        *ceiling = (*ceiling).max(cap);
    }

    fn step(&mut self, op: &Op) {
        let before = self.ledger.book.clone();
        let result = match *op {
            Op::Charge { wallet, amount: value } => {
                let result = self.ledger.charge(&citizen(wallet), value);
                if let Ok(Outcome { receipt: Receipt::Charged { bonus, .. }, .. }) = &result {
                    self.check_charge_bonus(wallet, *bonus);
                }
                result
            }
            Op::Gift { from, to, amount: value } => self.ledger.gift(&citizen(from), &citizen(to), value),
            Op::Pay { merchant: index, wallet, amount: value, late } => {
                let code = self.ledger.issue_code(&citizen(wallet));
                if late {
                    self.ledger.advance(181);
                    self.note_cap();
                }
                let cap_left = self.cap_left(&citizen(wallet));
                let result = self.ledger.pay_with(&merchant(index), code, value);
                if let Ok(outcome) = &result {
                    self.check_paid_from(outcome, index);
                    self.payments.push((payment_id(outcome), index));
                    let eligible = self.ledger.book.payment(&payment_id(outcome)).unwrap().eligible;
                    assert!(eligible <= cap_left, "eligible {eligible} above the {cap_left} left of the cap");
                    assert!(!late, "a payment with an expired code was approved");
                }
                result
            }
            Op::IssueCode { wallet } => {
                // A code asked for and never shown; wallet CITIZENS was never opened.
                let code = PaymentCode::parse(&format!("code-{}", self.ledger.fresh_id("unused"))).unwrap();
                let result = self.ledger.apply(Command::IssueCode { code, wallet: wallet_id(&citizen(wallet)) });
                assert_eq!(result.is_ok(), wallet < CITIZENS, "a code for citizen {wallet}: {result:?}");
                result
            }
            Op::Refund { payment, merchant: other_merchant, share } => {
                if self.payments.is_empty() {
                    return;
                }
                let (id, owner) = self.payments[payment % self.payments.len()].clone();
                let state = self.ledger.book.payment(&id).unwrap().clone();
                let value = match share {
                    RefundShare::All => state.refundable().to_i64().unwrap(),
                    RefundShare::Half => state.refundable().to_i64().unwrap() / 2,
                    RefundShare::One => 1,
                    RefundShare::Won(value) => value,
                };
                if value == 0 {
                    return;
                }
                let refunder = other_merchant.unwrap_or(owner);
                let result = self.ledger.refund(&merchant(refunder), &id, value);
                if refunder != owner {
                    assert_eq!(result, Err(Rejection::UnknownPayment(id.clone())));
                }
                result
            }
            Op::TopUp { amount: value } => self.ledger.top_up(value),
            Op::SetPolicy { rate: cashback_rate, cap, charge_limit, holding_limit, fee } => {
                let policy = Policy {
                    cashback_rate: rate(cashback_rate),
                    cashback_monthly_spend_cap: won(cap),
                    monthly_charge_limit: won(charge_limit),
                    holding_limit: won(holding_limit),
                    merchant_fee_rate: rate(fee),
                };
                let result = self.ledger.apply(Command::SetPolicy { policy });
                self.note_cap();
                result
            }
            Op::Advance { seconds } => {
                self.ledger.advance(seconds);
                self.note_cap();
                return;
            }
            Op::Close { days_back } => {
                let date = BusinessDate::of(self.ledger.now - Duration::days(days_back));
                self.ledger.close(&date.to_string())
            }
            Op::TopUpProgram { program, amount: value } => self.ledger.top_up_program(&program_id(program), value),
            Op::Grant { program, ref wallets } => {
                let names: Vec<(String, i64)> =
                    wallets.iter().map(|(wallet, value)| (citizen(*wallet), *value)).collect();
                let lines: Vec<(&str, i64)> = names.iter().map(|(name, value)| (name.as_str(), *value)).collect();
                let remaining = self.ledger.book.program(&program_id(program)).unwrap().budget.remaining();
                match self.ledger.grant(&program_id(program), &lines) {
                    Ok((outcome, grants)) => {
                        let total: i64 = lines.iter().map(|(_, value)| value).sum();
                        assert!(won(total) <= remaining, "granted {total} from a budget of {remaining}");
                        assert!(wallets.iter().all(|(wallet, _)| *wallet < CITIZENS));
                        self.grants.extend(grants);
                        Ok(outcome)
                    }
                    Err(rejection) => Err(rejection),
                }
            }
            Op::Expire { grant } => {
                if self.grants.is_empty() {
                    return;
                }
                let id = self.grants[grant % self.grants.len()].clone();
                let state = self.ledger.book.grant_state(&id).unwrap().clone();
                let result = self.ledger.expire(&id);
                match &result {
                    Ok(_) => assert!(!state.is_live(self.ledger.now), "a live grant was expired"),
                    Err(rejection) => assert_eq!(rejection, &Rejection::GrantNotExpired(id.clone())),
                }
                if result.is_ok() {
                    assert!(self.ledger.book.grant_state(&id).unwrap().outstanding.is_zero());
                }
                result
            }
        };
        if result.is_err() {
            // Issuing a code is not part of the refused command; compare the rest.
            let mut after = self.ledger.book.clone();
            after.take_changes();
            let mut expected = before;
            expected.take_changes();
            if let Op::Pay { .. } = op {
                assert_eq!(after.trial_balance(), expected.trial_balance());
                assert_eq!(after.wallets().collect::<BTreeMap<_, _>>(), expected.wallets().collect::<BTreeMap<_, _>>());
            } else {
                assert_eq!(after, expected, "a refused {op:?} changed the book");
            }
        }
        self.outcomes.push(result);
        self.check_invariants();
    }

    /// A charge's bonus: only in the wallet's cohort's window, and never more in a month than
    /// `rate × monthly_charge_cap`.
    fn check_charge_bonus(&mut self, wallet: usize, bonus: Won) {
        if bonus.is_zero() {
            return;
        }
        let program = self.ledger.book.charge_bonus(&program_id(PROGRAMS.len())).unwrap();
        let now = self.ledger.now;
        assert!(program.rules.is_open_for(&wallet_id(&citizen(wallet)), now), "a bonus outside the cohort's window");
        let month = self.bonuses.entry((wallet, Month::of(now))).or_insert(Won::ZERO);
        *month = month.checked_add(bonus).unwrap();
        let ceiling = won(BONUS_CAP).floor_times(rate("0.1")).unwrap();
        assert!(*month <= ceiling, "citizen {wallet} earned {month} in a month, above {ceiling}");
    }

    /// A payment spent only live allowances of programs admitting the merchant, and its purses
    /// paid exactly its amount.
    fn check_paid_from(&self, outcome: &Outcome, merchant_index: usize) {
        let Receipt::Paid { payment_id, amount, paid_from, at, .. } = &outcome.receipt else { panic!("not a payment") };
        let total = paid_from.allowances.checked_add(paid_from.bonus).unwrap().checked_add(paid_from.own).unwrap();
        assert_eq!(total, amount.won(), "paid_from {paid_from:?} does not sum to {amount}");
        let payment = self.ledger.book.payment(payment_id).unwrap();
        for part in &payment.purses.allowances {
            let grant = self.ledger.book.grant_state(&part.grant).unwrap();
            assert!(grant.is_live(*at), "an expired allowance {} was spent", part.grant);
            let program = self.ledger.book.program(&grant.program).unwrap();
            let merchant = self.ledger.book.merchant(&merchant_id(&merchant(merchant_index))).unwrap();
            assert!(program.rules.admits(merchant), "program {} does not admit the merchant", grant.program);
        }
    }

    fn cap_left(&self, wallet: &str) -> Won {
        self.ledger.view(wallet).cashback_eligible_spend_remaining
    }

    fn check_invariants(&self) {
        let book = &self.ledger.book;
        assert_trial_balance_zero(book);
        for (id, wallet) in book.wallets() {
            assert!(!wallet.balance.is_negative(), "wallet {id} is negative");
            assert!(!wallet.bonus.is_negative() && wallet.bonus <= wallet.balance, "wallet {id}'s purses: {wallet:?}");
            let ceiling = self.cap_ceiling_by_month.get(&wallet.counters.month).copied().unwrap_or(Won::ZERO);
            assert!(
                wallet.counters.eligible_spent <= ceiling,
                "wallet {id} spent {:?} past the cap {ceiling}",
                wallet.counters
            );
            assert!(!wallet.counters.eligible_spent.is_negative());
        }
        let budget = book.budget();
        assert!(!budget.remaining().is_negative());
        let net_paid = budget.paid_out.checked_sub(budget.reversed).unwrap();
        assert!(net_paid <= budget.funded, "cashback {net_paid} beyond the budget funded {}", budget.funded);
        let mut cashback_outstanding = Won::ZERO;
        for (id, payment) in book.payments() {
            let purses = &payment.purses;
            assert!(purses.own_restored <= payment.own_paid(), "payment {id} restored more to own than own paid");
            assert!(purses.bonus_restored <= purses.bonus_paid, "payment {id} restored more to bonus than bonus paid");
            for part in &purses.allowances {
                assert!(part.restored <= part.paid, "payment {id} restored more to {} than it paid", part.grant);
            }
            assert!(payment.refunded <= payment.amount.won(), "payment {id} over-refunded");
            assert!(payment.cashback_reversed <= payment.cashback, "payment {id} over-reversed");
            if payment.refunded == payment.amount.won() {
                assert_eq!(
                    payment.cashback_reversed, payment.cashback,
                    "full refund of {id} must reverse all cashback"
                );
            }
            cashback_outstanding = cashback_outstanding
                .checked_add(payment.cashback)
                .unwrap()
                .checked_sub(payment.cashback_reversed)
                .unwrap();
        }
        assert_eq!(cashback_outstanding, net_paid, "the budget's totals disagree with the payments");
        for (_, program) in book.charge_bonuses() {
            let budget = &program.budget;
            for cohort in &budget.cohorts {
                assert!(cohort.paid_out <= cohort.share, "a cohort paid beyond its share: {budget:?}");
            }
            assert!(budget.paid_out() <= budget.funded(), "bonuses beyond the funded budget: {budget:?}");
        }
        for (id, program) in book.programs() {
            let budget = program.budget;
            let mut outstanding = Won::ZERO;
            for (_, grant) in book.grants().filter(|(_, grant)| &grant.program == id) {
                assert!(!grant.outstanding.is_negative(), "grant of {id} below zero");
                outstanding = outstanding.checked_add(grant.outstanding).unwrap();
            }
            // granted = spent + returned + outstanding, outstanding being what the purses hold.
            assert_eq!(budget.outstanding(), outstanding, "program {id}: {budget:?}");
            assert!(!budget.remaining().is_negative() && !budget.spent.is_negative());
        }
    }
}

fn program_id(index: usize) -> ProgramId {
    ProgramId::parse(PROGRAMS.get(index).map_or("bonus", |program| program.0)).unwrap()
}

/// The charge bonus program's monthly charge cap per citizen.
const BONUS_CAP: i64 = 200_000;

fn run(ops: &[Op]) -> Run {
    let mut run = Run::new();
    for op in ops {
        run.step(op);
    }
    run
}

fn start() -> DateTime<Utc> {
    Ledger::new().now
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn every_invariant_holds_after_every_step(ops in prop::collection::vec(op_strategy(), 1_000..3_000)) {
        let first = run(&ops);
        let approved = first.outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        let from_allowances = first.outcomes.iter().filter(|outcome| matches!(outcome, Ok(Outcome { receipt: Receipt::Paid { paid_from, .. }, .. }) if !paid_from.allowances.is_zero())).count();
        let expired = first.outcomes.iter().filter(|outcome| matches!(outcome, Ok(Outcome { receipt: Receipt::GrantExpired { returned, .. }, .. }) if !returned.is_zero())).count();
        // The runs reach the purses' rules: allowances spent and expired (hundreds of each in a run).
        prop_assert!(from_allowances > 0 && expired > 0, "{from_allowances} allowance payments, {expired} expiries");
        let bonuses = first.bonuses.values().filter(|bonus| !bonus.is_zero()).count();
        prop_assert!(bonuses > 0, "no charge earned a bonus");
        prop_assert!(approved > 0);
        prop_assert!(first.ledger.now >= start());
    }

    #[test]
    fn replaying_the_same_commands_gives_the_same_state(ops in prop::collection::vec(op_strategy(), 300..1_000)) {
        let first = run(&ops);
        let second = run(&ops);
        prop_assert_eq!(&first.ledger.book, &second.ledger.book);
        prop_assert_eq!(&first.outcomes, &second.outcomes);
    }
}
