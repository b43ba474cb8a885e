//! Every money rule of API.md, with exact won figures. Each test leaves the trial balance at
//! zero after every step (checked by `Ledger::apply`).

mod support;

use support::*;
use wallet_core::*;

#[test]
fn a_charge_moves_won_from_bank_clearing_into_the_wallet() {
    let mut ledger = Ledger::new();
    let outcome = ledger.charge("alice", 50_000).unwrap();
    assert_eq!(ledger.balance("alice"), won(50_000));
    assert_eq!(ledger.book.system().bank_clearing, won(-1_050_000));
    let transaction = outcome.transaction.as_ref().unwrap();
    assert_eq!(transaction.kind(), TxKind::Charge);
    assert_eq!(transaction.net_change(&Account::Wallet(wallet_id("alice"))), won(50_000));
    assert_eq!(transaction.net_change(&Account::BankClearing), won(-50_000));
    assert_eq!(outcome.history.len(), 1);
    assert_eq!(outcome.history[0].kind, HistoryKind::Charge);
    assert_eq!(outcome.history[0].amount, won(50_000));
    assert_eq!(outcome.history[0].balance_after, won(50_000));
    assert!(outcome.balances.contains(&(Account::Wallet(wallet_id("alice")), won(50_000))));
    let view = ledger.view("alice");
    assert_eq!(view.charged_this_month, won(50_000));
    assert_eq!(view.charge_limit_remaining, won(1_950_000));
}

#[test]
fn a_charge_past_the_monthly_limit_is_refused_and_changes_nothing() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 1_500_000).unwrap();
    ledger.pay("bakery", "alice", 1_000_000).unwrap();
    let before = ledger.book.clone();
    let refusal = ledger.charge("alice", 500_001).unwrap_err();
    assert_eq!(
        refusal,
        Rejection::LimitExceeded(Limit::MonthlyCharge { limit: won(2_000_000), remaining: won(500_000) })
    );
    assert_eq!(ledger.book, before);
    ledger.charge("alice", 500_000).unwrap();
    assert_eq!(ledger.view("alice").charge_limit_remaining, won(0));
}

#[test]
fn a_charge_past_the_holding_limit_is_refused() {
    let mut ledger = Ledger::new();
    ledger
        .book
        .apply(&Command::SetPolicy { policy: Policy { holding_limit: won(100_000), ..test_policy() } }, ledger.now)
        .unwrap();
    ledger.charge("alice", 80_000).unwrap();
    let refusal = ledger.charge("alice", 20_001).unwrap_err();
    assert_eq!(refusal, Rejection::LimitExceeded(Limit::Holding { limit: won(100_000), room: won(20_000) }));
    assert_eq!(ledger.balance("alice"), won(80_000));
    ledger.charge("alice", 20_000).unwrap();
}

#[test]
fn monthly_limits_reset_at_midnight_kst_on_the_first() {
    let mut ledger = Ledger::new();
    ledger.now = utc("2026-12-31T14:59:59Z"); // 23:59:59 KST on the 31st
    ledger.charge("alice", 2_000_000).unwrap();
    ledger.pay("bakery", "alice", 600_000).unwrap();
    assert!(ledger.charge("alice", 1).is_err());
    assert_eq!(ledger.view("alice").cashback_eligible_spend_remaining, won(0));
    ledger.now = utc("2026-12-31T15:00:00Z"); // midnight KST, 2027-01-01
    let view = ledger.view("alice");
    assert_eq!(view.month.to_string(), "2027-01");
    assert_eq!(view.charged_this_month, won(0));
    assert_eq!(view.cashback_eligible_spend_remaining, won(500_000));
    assert_eq!(view.cashback_earned_this_month, won(0));
    ledger.charge("alice", 1_000).unwrap();
    assert_eq!(ledger.view("alice").charged_this_month, won(1_000));
}

#[test]
fn a_payment_debits_the_wallet_credits_the_merchant_and_earns_floored_cashback() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 100_000).unwrap();
    let outcome = ledger.pay("bakery", "alice", 12_345).unwrap();
    assert_eq!(cashback_of(&outcome), won(1_234));
    assert_eq!(ledger.balance("alice"), won(100_000 - 12_345 + 1_234));
    assert_eq!(ledger.receivable("bakery"), won(12_345));
    assert_eq!(ledger.book.budget().paid_out, won(1_234));
    assert_eq!(ledger.book.budget().remaining(), won(1_000_000 - 1_234));
    let kinds: Vec<_> = outcome.history.iter().map(|item| (item.kind, item.amount, item.balance_after)).collect();
    assert_eq!(
        kinds,
        vec![(HistoryKind::Payment, won(-12_345), won(87_655)), (HistoryKind::Cashback, won(1_234), won(88_889))]
    );
    let view = ledger.view("alice");
    assert_eq!(view.cashback_earned_this_month, won(1_234));
    assert_eq!(view.cashback_eligible_spend_remaining, won(500_000 - 12_345));
    let sales = ledger.book.sales(BusinessDate::of(ledger.now), &merchant_id("bakery")).unwrap();
    assert_eq!((sales.payments_count, sales.payments_amount), (1, won(12_345)));
}

#[test]
fn cashback_counts_only_spend_up_to_the_monthly_cap() {
    let mut ledger = Ledger::new();
    ledger
        .book
        .apply(
            &Command::SetPolicy { policy: Policy { cashback_monthly_spend_cap: won(20_000), ..test_policy() } },
            ledger.now,
        )
        .unwrap();
    ledger.charge("alice", 100_000).unwrap();
    assert_eq!(cashback_of(&ledger.pay("bakery", "alice", 15_000).unwrap()), won(1_500));
    assert_eq!(cashback_of(&ledger.pay("bakery", "alice", 10_000).unwrap()), won(500));
    let none = ledger.pay("bakery", "alice", 1_000).unwrap();
    assert_eq!(cashback_of(&none), won(0));
    assert_eq!(none.history.len(), 1, "no cashback item for zero cashback");
    assert_eq!(ledger.view("alice").cashback_eligible_spend_remaining, won(0));
    assert_eq!(ledger.book.wallet(&wallet_id("alice")).unwrap().counters.eligible_spent, won(20_000));
}

#[test]
fn cashback_is_limited_by_the_budget_and_an_empty_budget_still_approves() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 2_000_000).unwrap();
    ledger
        .book
        .apply(&Command::SetPolicy { policy: Policy { cashback_rate: rate("1"), ..test_policy() } }, ledger.now)
        .unwrap();
    assert_eq!(cashback_of(&ledger.pay("bakery", "alice", 400_000).unwrap()), won(400_000));
    assert_eq!(cashback_of(&ledger.pay("bakery", "alice", 100_000).unwrap()), won(100_000));
    // The cap is reached; lift it to drain the budget.
    ledger
        .book
        .apply(
            &Command::SetPolicy {
                policy: Policy {
                    cashback_rate: rate("1"),
                    cashback_monthly_spend_cap: won(10_000_000),
                    ..test_policy()
                },
            },
            ledger.now,
        )
        .unwrap();
    assert_eq!(cashback_of(&ledger.pay("bakery", "alice", 600_000).unwrap()), won(500_000));
    assert_eq!(ledger.book.budget().remaining(), won(0));
    let approved = ledger.pay("bakery", "alice", 1_000).unwrap();
    assert_eq!(cashback_of(&approved), won(0));
    assert!(matches!(approved.receipt, Receipt::Paid { .. }));
}

#[test]
fn a_payment_without_funds_is_refused_and_leaves_the_code_usable() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 10_000).unwrap();
    let code = ledger.issue_code("alice");
    let before = ledger.book.clone();
    let refusal = ledger.pay_with("bakery", code.clone(), 10_001).unwrap_err();
    assert_eq!(
        refusal,
        Rejection::InsufficientFunds {
            account: Account::Wallet(wallet_id("alice")),
            available: won(10_000),
            needed: won(10_001)
        }
    );
    assert_eq!(ledger.book, before);
    ledger.pay_with("bakery", code, 10_000).unwrap();
    assert_eq!(ledger.balance("alice"), won(1_000));
}

#[test]
fn payment_codes_are_single_use_expire_and_must_exist() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 10_000).unwrap();
    let code = ledger.issue_code("alice");
    ledger.pay_with("bakery", code.clone(), 100).unwrap();
    assert_eq!(ledger.pay_with("grocer", code, 100).unwrap_err(), Rejection::PaymentCodeInvalid(CodeProblem::Used));
    let late = ledger.issue_code("alice");
    ledger.advance(180);
    assert_eq!(ledger.pay_with("bakery", late, 100).unwrap_err(), Rejection::PaymentCodeInvalid(CodeProblem::Expired));
    let unknown = PaymentCode::parse("never-issued").unwrap();
    assert_eq!(
        ledger.pay_with("bakery", unknown, 100).unwrap_err(),
        Rejection::PaymentCodeInvalid(CodeProblem::Unknown)
    );
    let code = ledger.issue_code("alice");
    ledger.advance(179);
    ledger.pay_with("bakery", code, 100).unwrap();
}

#[test]
fn a_code_is_issued_by_command_to_a_known_wallet_and_moves_no_money() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 10_000).unwrap();
    ledger.book.take_changes();
    let code = PaymentCode::parse("fresh-code").unwrap();
    let issued = ledger.apply(Command::IssueCode { code: code.clone(), wallet: wallet_id("alice") }).unwrap();
    let expires_at = ledger.now + chrono::Duration::seconds(180);
    assert_eq!(
        issued,
        Outcome {
            receipt: Receipt::CodeIssued { code: code.clone(), expires_at },
            transaction: None,
            history: Vec::new(),
            balances: Vec::new(),
        }
    );
    let state = PaymentCodeState { wallet: wallet_id("alice"), expires_at, used: false };
    // The new code is a change like any other: the server writes it from `take_changes`.
    assert_eq!(ledger.book.take_changes(), Changes { codes: vec![(code.clone(), state)], ..Changes::default() });

    let before = ledger.book.clone();
    let stranger = Command::IssueCode { code: PaymentCode::parse("other-code").unwrap(), wallet: wallet_id("nobody") };
    assert_eq!(ledger.apply(stranger).unwrap_err(), Rejection::UnknownWallet(wallet_id("nobody")));
    assert_eq!(ledger.book, before);

    ledger.pay_with("bakery", code.clone(), 100).unwrap();
    assert_eq!(ledger.pay_with("bakery", code, 100).unwrap_err(), Rejection::PaymentCodeInvalid(CodeProblem::Used));
}

#[test]
fn refunds_reverse_the_floored_share_and_the_last_one_the_rest() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 100_000).unwrap();
    let payment = payment_id(&ledger.pay("bakery", "alice", 12_345).unwrap());
    let balance_after_payment = ledger.balance("alice");

    let first = ledger.refund("bakery", &payment, 1_000).unwrap();
    assert_eq!(reversed_of(&first), won(99));
    assert_eq!(ledger.balance("alice"), balance_after_payment.checked_add(won(1_000 - 99)).unwrap());
    let kinds: Vec<_> = first.history.iter().map(|item| (item.kind, item.amount)).collect();
    assert_eq!(kinds, vec![(HistoryKind::Refund, won(1_000)), (HistoryKind::CashbackReversal, won(-99))]);
    assert!(first.history.iter().all(|item| item.related.as_ref() == Some(&payment)), "items name their payment");

    let last = ledger.refund("bakery", &payment, 11_345).unwrap();
    assert_eq!(reversed_of(&last), won(1_135));
    assert_eq!(ledger.balance("alice"), won(100_000), "a full refund restores the wallet exactly");
    assert_eq!(ledger.receivable("bakery"), won(0));
    let budget = ledger.book.budget();
    assert_eq!((budget.paid_out, budget.reversed, budget.remaining()), (won(1_234), won(1_234), won(1_000_000)));
    let state = ledger.book.payment(&payment).unwrap();
    assert_eq!((state.refunded, state.cashback_reversed), (won(12_345), won(1_234)));

    assert_eq!(
        ledger.refund("bakery", &payment, 1).unwrap_err(),
        Rejection::RefundExceedsPayment { refundable: won(0) }
    );
}

#[test]
fn a_refund_beyond_what_is_left_is_refused_and_changes_nothing() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 100_000).unwrap();
    let payment = payment_id(&ledger.pay("bakery", "alice", 30_000).unwrap());
    ledger.refund("bakery", &payment, 10_000).unwrap();
    let before = ledger.book.clone();
    assert_eq!(
        ledger.refund("bakery", &payment, 20_001).unwrap_err(),
        Rejection::RefundExceedsPayment { refundable: won(20_000) }
    );
    assert_eq!(ledger.book, before);
}

#[test]
fn another_merchants_payment_is_unknown_to_a_merchant() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 100_000).unwrap();
    let payment = payment_id(&ledger.pay("bakery", "alice", 30_000).unwrap());
    assert_eq!(ledger.refund("grocer", &payment, 1_000).unwrap_err(), Rejection::UnknownPayment(payment.clone()));
    assert_eq!(
        ledger.refund("grocer", &tx_id("no-such-payment"), 1_000).unwrap_err(),
        Rejection::UnknownPayment(tx_id("no-such-payment"))
    );
}

#[test]
fn a_refund_gives_back_eligible_spend_within_the_payments_month_only() {
    let mut ledger = Ledger::new();
    ledger.now = utc("2026-12-20T01:00:00Z");
    ledger.charge("alice", 200_000).unwrap();
    let payment = payment_id(&ledger.pay("bakery", "alice", 100_000).unwrap());
    assert_eq!(ledger.view("alice").cashback_eligible_spend_remaining, won(400_000));
    ledger.refund("bakery", &payment, 25_000).unwrap();
    assert_eq!(ledger.view("alice").cashback_eligible_spend_remaining, won(425_000));
    ledger.now = utc("2027-01-02T01:00:00Z");
    ledger.refund("bakery", &payment, 25_000).unwrap();
    let view = ledger.view("alice");
    assert_eq!(view.cashback_eligible_spend_remaining, won(500_000), "January's cap is untouched by December's refund");
    assert_eq!(ledger.book.payment(&payment).unwrap().eligible_returned, won(25_000));
}

#[test]
fn a_final_refund_that_reverses_more_than_it_returns_needs_the_funds() {
    // Rate 0.99 on 100 won earns 99; 99 refunds of 1 won reverse floor(99/100) = 0 each, so the
    // last 1-won refund reverses all 99: the wallet pays 98 back to the budget.
    let mut ledger = Ledger::new();
    ledger
        .book
        .apply(&Command::SetPolicy { policy: Policy { cashback_rate: rate("0.99"), ..test_policy() } }, ledger.now)
        .unwrap();
    ledger.charge("alice", 100).unwrap();
    let payment = payment_id(&ledger.pay("bakery", "alice", 100).unwrap());
    for _ in 0..99 {
        assert_eq!(reversed_of(&ledger.refund("bakery", &payment, 1).unwrap()), won(0));
    }
    assert_eq!(ledger.balance("alice"), won(99 + 99));
    assert_eq!(ledger.bonus("alice"), won(99), "the cashback is in the bonus purse, the refunds in own");
    // Spend the wallet down to 48 won of bonus: own (99) gifted, 51 of bonus paid at no cashback.
    ledger.gift("alice", "bob", 99).unwrap();
    ledger
        .book
        .apply(&Command::SetPolicy { policy: Policy { cashback_rate: rate("0"), ..test_policy() } }, ledger.now)
        .unwrap();
    ledger.pay("grocer", "alice", 51).unwrap();
    assert_eq!((ledger.balance("alice"), ledger.bonus("alice")), (won(48), won(48)));
    let refusal = ledger.refund("bakery", &payment, 1).unwrap_err();
    assert_eq!(
        refusal,
        Rejection::InsufficientFunds {
            account: Account::Wallet(wallet_id("alice")),
            available: won(48),
            needed: won(98)
        }
    );
    ledger.gift("bob", "alice", 99).unwrap();
    assert_eq!(reversed_of(&ledger.refund("bakery", &payment, 1).unwrap()), won(99));
    assert_eq!((ledger.balance("alice"), ledger.bonus("alice")), (won(49), won(0)), "taken from bonus, then own");
}

#[test]
fn gifts_move_between_wallets_within_the_receivers_holding_limit() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 50_000).unwrap();
    let outcome = ledger.gift("alice", "bob", 20_000).unwrap();
    assert_eq!((ledger.balance("alice"), ledger.balance("bob")), (won(30_000), won(20_000)));
    let items: Vec<_> = outcome.history.iter().map(|item| (item.wallet.as_str(), item.kind, item.amount)).collect();
    assert_eq!(items, vec![("alice", HistoryKind::GiftOut, won(-20_000)), ("bob", HistoryKind::GiftIn, won(20_000))]);
    assert_eq!(outcome.history[0].counterparty, Some(Counterparty::Wallet(wallet_id("bob"))));
    assert_ne!(outcome.history[0].id, outcome.history[1].id, "each side's history item has its own id");

    assert_eq!(ledger.gift("alice", "alice", 1).unwrap_err(), Rejection::GiftToSelf);
    assert_eq!(ledger.gift("alice", "nobody", 1).unwrap_err(), Rejection::UnknownWallet(wallet_id("nobody")));
    assert!(matches!(ledger.gift("alice", "bob", 30_001).unwrap_err(), Rejection::InsufficientFunds { .. }));

    ledger
        .book
        .apply(&Command::SetPolicy { policy: Policy { holding_limit: won(25_000), ..test_policy() } }, ledger.now)
        .unwrap();
    assert_eq!(
        ledger.gift("alice", "bob", 5_001).unwrap_err(),
        Rejection::LimitExceeded(Limit::Holding { limit: won(25_000), room: won(5_000) })
    );
    ledger.gift("alice", "bob", 5_000).unwrap();
}

#[test]
fn a_budget_top_up_funds_the_budget_from_bank_clearing() {
    let mut ledger = Ledger::new();
    let outcome = ledger.top_up(250_000).unwrap();
    match outcome.receipt {
        Receipt::BudgetToppedUp { budget } => {
            assert_eq!(
                (budget.funded, budget.paid_out, budget.reversed, budget.remaining()),
                (won(1_250_000), won(0), won(0), won(1_250_000))
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ledger.book.system().bank_clearing, won(-1_250_000));
}

#[test]
fn policy_changes_are_validated() {
    let mut ledger = Ledger::new();
    let bad = Policy { monthly_charge_limit: won(-1), ..test_policy() };
    assert!(matches!(ledger.apply(Command::SetPolicy { policy: bad }).unwrap_err(), Rejection::InvalidPolicy(_)));
    assert_eq!(ledger.book.policy(), &test_policy());
    let good = Policy { cashback_rate: rate("0.05"), ..test_policy() };
    ledger.apply(Command::SetPolicy { policy: good.clone() }).unwrap();
    assert_eq!(ledger.book.policy(), &good);
}

#[test]
fn settlement_pays_the_net_keeps_the_fee_and_carries_a_negative_net() {
    let mut ledger = Ledger::new();
    ledger.now = utc("2026-12-10T01:00:00Z");
    ledger.charge("alice", 1_000_000).unwrap();
    ledger.charge("bob", 1_000_000).unwrap();
    // Day 1: the bakery sells 150,000 and refunds 20,000; the grocer sells 10,000.
    let big = payment_id(&ledger.pay("bakery", "alice", 100_000).unwrap());
    ledger.pay("bakery", "bob", 50_000).unwrap();
    ledger.refund("bakery", &big, 20_000).unwrap();
    let small = payment_id(&ledger.pay("grocer", "bob", 10_000).unwrap());
    assert!(matches!(ledger.close("2026-12-10").unwrap_err(), Rejection::DateNotClosable { .. }));

    // Day 2: the grocer refunds the whole 10,000 and sells nothing.
    ledger.now = utc("2026-12-11T01:00:00Z");
    let closed = ledger.close("2026-12-10").unwrap();
    let (settlement, newly) = settlement_of(&closed);
    assert!(newly);
    let lines: Vec<_> = settlement
        .lines
        .iter()
        .map(|l| (l.merchant_id.as_str(), l.payments_amount, l.refunds_amount, l.fee, l.carried_in, l.net_payable))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("bakery", won(150_000), won(20_000), won(1_500), won(0), won(128_500)),
            ("grocer", won(10_000), won(0), won(100), won(0), won(9_900))
        ]
    );
    assert_eq!(settlement.total_net_payable, won(138_400));
    assert_eq!(ledger.receivable("bakery"), won(0));
    assert_eq!(ledger.book.system().settlement_payouts, won(138_400));
    assert_eq!(ledger.book.system().fee_income, won(1_600));

    ledger.refund("grocer", &small, 10_000).unwrap();
    ledger.now = utc("2026-12-12T01:00:00Z");
    let closed_two = ledger.close("2026-12-11").unwrap();
    let (day_two, _) = settlement_of(&closed_two);
    let grocer = &day_two.lines[0];
    assert_eq!((grocer.fee, grocer.carried_in, grocer.net_payable), (won(0), won(0), won(-10_000)));
    assert_eq!(day_two.total_net_payable, won(0));
    assert_eq!(ledger.receivable("grocer"), won(-10_000), "a negative net stays in the receivable");

    // Day 3: the grocer sells 30,000; the carried -10,000 comes off.
    ledger.pay("grocer", "alice", 30_000).unwrap();
    ledger.now = utc("2026-12-13T01:00:00Z");
    let closed_three = ledger.close("2026-12-12").unwrap();
    let (day_three, _) = settlement_of(&closed_three);
    let grocer = &day_three.lines[0];
    assert_eq!((grocer.fee, grocer.carried_in, grocer.net_payable), (won(300), won(-10_000), won(19_700)));
    assert_eq!(ledger.receivable("grocer"), won(0));
    assert_eq!(ledger.book.merchant(&merchant_id("grocer")).unwrap().carried_negative, won(0));
}

#[test]
fn closing_a_date_twice_returns_the_same_settlement_and_moves_nothing() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 100_000).unwrap();
    ledger.pay("bakery", "alice", 40_000).unwrap();
    ledger.now = utc("2026-12-11T01:00:00Z");
    let first = ledger.close("2026-12-10").unwrap();
    let before = ledger.book.clone();
    let second = ledger.close("2026-12-10").unwrap();
    assert_eq!(settlement_of(&first).0, settlement_of(&second).0);
    assert!(!settlement_of(&second).1);
    assert!(second.transaction.is_none());
    assert_eq!(ledger.book, before);
    assert!(matches!(ledger.close("2026-12-11").unwrap_err(), Rejection::DateNotClosable { .. }));
    assert!(matches!(ledger.close("2026-12-30").unwrap_err(), Rejection::DateNotClosable { .. }));
}

#[test]
fn a_batch_applies_each_command_on_its_own() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 10_000).unwrap();
    ledger.book.take_changes();
    let codes: Vec<_> = (0..3).map(|_| ledger.issue_code("alice")).collect();
    let commands: Vec<_> = [(0, 4_000), (1, 7_000), (2, 5_000)]
        .into_iter()
        .map(|(index, value)| Command::Pay {
            id: ledger.fresh_id("pay"),
            cashback_id: ledger.fresh_id("cashback"),
            merchant: merchant_id("bakery"),
            code: codes[index].clone(),
            amount: amount(value),
        })
        .collect();
    let results = ledger.book.apply_all(&commands, ledger.now);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Rejection::InsufficientFunds { .. })), "{:?}", results[1]);
    assert!(results[2].is_ok());
    assert_eq!(ledger.balance("alice"), won(10_000 - 4_000 - 5_000 + 400 + 500));
    assert_trial_balance_zero(&ledger.book);
    let changes = ledger.book.take_changes();
    assert_eq!(changes.wallets.len(), 1, "the wallet is written once for the whole batch");
    assert_eq!(changes.merchants.len(), 1);
    assert_eq!(changes.payments.len(), 2);
    assert_eq!(changes.codes.len(), 3, "three issued, two used");
    assert!(changes.codes.iter().filter(|(_, state)| state.used).count() == 2);
    assert_eq!(changes.budget.unwrap().paid_out, won(900));
    assert!(ledger.book.take_changes().is_empty());
}

#[test]
fn carried_over_balances_are_balanced_against_the_handover_account() {
    let mut ledger = Ledger::new();
    let id = ledger.fresh_id("open");
    let outcome = ledger
        .apply(Command::CarryOver { id, account: CarryOverAccount::Wallet(wallet_id("carol")), amount: won(42_000) })
        .unwrap();
    assert_eq!(outcome.history[0].kind, HistoryKind::MigratedOpeningBalance);
    assert_eq!(ledger.balance("carol"), won(42_000));
    let id = ledger.fresh_id("open");
    ledger
        .apply(Command::CarryOver {
            id,
            account: CarryOverAccount::Merchant(merchant_id("grocer")),
            amount: won(7_000),
        })
        .unwrap();
    let id = ledger.fresh_id("open");
    ledger.apply(Command::CarryOver { id, account: CarryOverAccount::CashbackBudget, amount: won(-300_000) }).unwrap();
    assert_eq!(ledger.book.system().handover_opening, won(-42_000 - 7_000 + 300_000));
    assert_eq!(ledger.book.budget().remaining(), won(700_000));
    let id = ledger.fresh_id("open");
    let refusal = ledger.apply(Command::CarryOver {
        id,
        account: CarryOverAccount::Wallet(wallet_id("carol")),
        amount: won(-42_001),
    });
    assert!(matches!(refusal.unwrap_err(), Rejection::InsufficientFunds { .. }));
    let id = ledger.fresh_id("open");
    let zero = ledger.apply(Command::CarryOver { id, account: CarryOverAccount::CashbackBudget, amount: won(0) });
    assert!(matches!(zero.unwrap_err(), Rejection::InvalidAmount(AmountError::Zero)));
}

/// HANDOVER.md version 2: a wallet's bonus purse, a program's budget and a grant's allowance
/// purse are carried each against the handover account, and each stays at zero or more.
#[test]
fn purses_budgets_and_allowances_are_carried_against_the_handover_account() {
    let mut ledger = Ledger::new();
    let carry = |ledger: &mut Ledger, account: CarryOverAccount, value: i64| {
        let id = ledger.fresh_id("open");
        ledger.apply(Command::CarryOver { id, account, amount: won(value) })
    };
    let carol = || wallet_id("carol");
    carry(&mut ledger, CarryOverAccount::Wallet(carol()), 42_000).unwrap();
    let outcome = carry(&mut ledger, CarryOverAccount::Bonus(carol()), 3_000).unwrap();
    assert_eq!((ledger.balance("carol"), ledger.bonus("carol")), (won(45_000), won(3_000)));
    assert_eq!(outcome.history[0].kind, HistoryKind::MigratedOpeningBalance);
    assert_eq!(outcome.history[0].balance_after, won(45_000));
    // Own and bonus go below zero neither: own holds 42,000, bonus 3,000.
    for (account, value) in [(CarryOverAccount::Wallet(carol()), -42_001), (CarryOverAccount::Bonus(carol()), -3_001)] {
        let refusal = carry(&mut ledger, account, value).unwrap_err();
        assert!(matches!(refusal, Rejection::InsufficientFunds { .. }), "{refusal:?}");
    }

    // A program's remaining budget counts as funded; its purse-less figures stay.
    let program = ledger.open_program("youth", 90, &[]);
    carry(&mut ledger, CarryOverAccount::Program(program.clone()), 50_000).unwrap();
    let budget = ledger.book.program(&program).unwrap().budget;
    assert_eq!((budget.funded, budget.remaining(), budget.outstanding()), (won(50_000), won(50_000), won(0)));
    let refusal = carry(&mut ledger, CarryOverAccount::Program(program.clone()), -50_001).unwrap_err();
    assert!(matches!(refusal, Rejection::InsufficientFunds { .. }), "{refusal:?}");

    // A grant enters empty, then its purse is carried; the citizen sees it and can spend it.
    let grant = GrantId::parse("carried-grant").unwrap();
    let state = GrantState {
        program: program.clone(),
        wallet: carol(),
        amount: won(7_000),
        outstanding: Won::ZERO,
        granted_at: utc("2026-12-01T00:00:00Z"),
        expires_at: utc("2027-03-01T15:00:00Z"),
    };
    ledger.book.open_grant(grant.clone(), state);
    let outcome = carry(&mut ledger, CarryOverAccount::Allowance(grant.clone()), 7_000).unwrap();
    assert_eq!(outcome.history[0].wallet, carol());
    assert_eq!(outcome.history[0].balance_after, won(52_000), "the shown balance counts the allowance");
    assert_eq!(ledger.shown("carol"), won(52_000));
    let refusal = carry(&mut ledger, CarryOverAccount::Allowance(grant.clone()), -7_001).unwrap_err();
    assert!(matches!(refusal, Rejection::InsufficientFunds { .. }), "{refusal:?}");
    let unknown = GrantId::parse("no-such-grant").unwrap();
    let refusal = carry(&mut ledger, CarryOverAccount::Allowance(unknown), 1).unwrap_err();
    assert!(matches!(refusal, Rejection::UnknownGrant(_)), "{refusal:?}");
    let unknown = ProgramId::parse("no-such-program").unwrap();
    let refusal = carry(&mut ledger, CarryOverAccount::Program(unknown), 1).unwrap_err();
    assert!(matches!(refusal, Rejection::UnknownProgram(_)), "{refusal:?}");
    assert_eq!(ledger.book.system().handover_opening, won(-42_000 - 3_000 - 50_000 - 7_000));

    let payment = ledger.pay("bakery", "carol", 8_000).unwrap();
    assert!(matches!(payment.receipt, Receipt::Paid { paid_from, .. }
        if paid_from == PaidFrom { allowances: won(7_000), bonus: won(1_000), own: Won::ZERO }));
    // 2,000 of bonus left and 100 of cashback on what bonus paid. A delta carries a purse down
    // again: the bonus goes back to the handover account.
    carry(&mut ledger, CarryOverAccount::Bonus(carol()), -2_100).unwrap();
    assert_eq!((ledger.balance("carol"), ledger.bonus("carol")), (won(42_000), Won::ZERO));
}

/// The charge bonus of PROGRAMS.md: nothing before the cohort's window, the bonus within the
/// quota and the cohort's share, the charge succeeding with an empty share, the quota used only
/// by what the share paid.
#[test]
fn charges_earn_the_bonus_of_their_cohort_within_its_share_and_quota() {
    let mut ledger = Ledger::new();
    let program = ProgramId::parse("march").unwrap();
    let rules = ChargeBonusRules {
        rate: rate("0.1"),
        monthly_charge_cap: won(50_000),
        opens_at: ledger.now + chrono::Duration::hours(1),
        closes_at: ledger.now + chrono::Duration::days(20),
        cohorts: 1,
        cohort_interval_s: 0,
    };
    ledger.book.open_charge_bonus(program.clone(), rules);
    ledger.top_up_program(&program, 1_500).unwrap();
    let bonus = |outcome: &Outcome| match outcome.receipt {
        Receipt::Charged { bonus, .. } => bonus,
        ref other => panic!("not a charge: {other:?}"),
    };
    // Before the window: nothing earned, no quota used.
    assert_eq!(bonus(&ledger.charge("alice", 10_000).unwrap()), won(0));
    ledger.advance(3_600);
    // In it: 10% of 10,000, into the bonus purse, as its own history item.
    let outcome = ledger.charge("alice", 10_000).unwrap();
    assert_eq!(bonus(&outcome), won(1_000));
    let kinds: Vec<_> = outcome.history.iter().map(|item| (item.kind, item.amount)).collect();
    assert_eq!(kinds, [(HistoryKind::Charge, won(10_000)), (HistoryKind::ChargeBonus, won(1_000))]);
    assert_eq!((ledger.balance("alice"), ledger.bonus("alice")), (won(21_000), won(1_000)));
    // The share has 500 left: the bonus is cut, and only ceil(500 / 0.1) = 5,000 of the quota used.
    assert_eq!(bonus(&ledger.charge("alice", 10_000).unwrap()), won(500));
    // The share is empty: the charge succeeds and earns nothing, using no quota.
    assert_eq!(bonus(&ledger.charge("alice", 10_000).unwrap()), won(0));
    let month = Month::of(ledger.now);
    assert_eq!(ledger.book.wallet(&wallet_id("alice")).unwrap().counters_in(month).bonus_quota_used, won(15_000));
    // A top-up later finds the quota left (50,000 − 15,000 = 35,000): a 40,000 charge earns 3,500.
    ledger.top_up_program(&program, 1_000_000).unwrap();
    assert_eq!(bonus(&ledger.charge("alice", 40_000).unwrap()), won(3_500));
    assert_eq!(bonus(&ledger.charge("alice", 10_000).unwrap()), won(0), "the month's quota is used up");
    let budget = &ledger.book.charge_bonus(&program).unwrap().budget;
    assert_eq!((budget.funded(), budget.paid_out()), (won(1_001_500), won(5_000)));
    assert_trial_balance_zero(&ledger.book);
}

/// A client that chooses its grant ids (the grant-file command) may retry a line that landed:
/// the command is refused as a whole, naming that line, both on the full book and on the rows
/// the writer loads for the command (the keys name the lines' grant ids).
#[test]
fn a_grant_id_granted_before_is_refused_by_name_and_nothing_is_granted() {
    let mut ledger = Ledger::new();
    let program = ledger.open_program("youth", 90, &[]);
    ledger.top_up_program(&program, 100_000).unwrap();
    let line = |grant: &str, wallet: &str| GrantLine {
        grant: GrantId::parse(grant).unwrap(),
        wallet: wallet_id(wallet),
        amount: won(10_000).try_into().unwrap(),
    };
    let first =
        Command::Grant { id: ledger.fresh_id("grant"), program: program.clone(), lines: vec![line("gf-1", "carol")] };
    ledger.apply(first).unwrap();
    let before = ledger.book.program(&program).unwrap().budget;

    let again = Command::Grant {
        id: ledger.fresh_id("grant"),
        program: program.clone(),
        lines: vec![line("gf-2", "bob"), line("gf-1", "carol")],
    };
    let mut keyed = keyed_book(&ledger.book, &again, ledger.now);
    let refusal = keyed.apply(&again, ledger.now).unwrap_err();
    assert_eq!(refusal, Rejection::GrantsRefused { rows: vec![(1, GrantProblem::GrantExists)] });
    let refusal = ledger.apply(again).unwrap_err();
    assert_eq!(refusal, Rejection::GrantsRefused { rows: vec![(1, GrantProblem::GrantExists)] });
    assert_eq!(ledger.book.program(&program).unwrap().budget, before, "nothing was granted");
    assert_eq!(ledger.shown("bob"), ledger.balance("bob"), "bob got no allowance");
}

/// The city's lock, as the server loads it: the flag on the wallet's state.
fn set_locked(ledger: &mut Ledger, name: &str, locked: bool) {
    let mut state = ledger.book.wallet(&wallet_id(name)).unwrap().clone();
    state.locked = locked;
    ledger.book.load_wallet(wallet_id(name), state);
}

/// The city's suspension, as the server loads it: the flag on the merchant's state.
fn set_suspended(ledger: &mut Ledger, name: &str, suspended: bool) {
    let mut state = ledger.book.merchant(&merchant_id(name)).unwrap().clone();
    state.suspended = suspended;
    ledger.book.load_merchant(merchant_id(name), state);
}

#[test]
fn a_locked_wallet_neither_pays_charges_gifts_nor_issues_codes_but_still_receives() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 50_000).unwrap();
    let payment = ledger.pay("bakery", "alice", 10_000).unwrap();
    let Receipt::Paid { payment_id, .. } = payment.receipt else { panic!("a payment receipt") };
    // A code shown before the lock pays nothing after it.
    let early = ledger.issue_code("alice");
    set_locked(&mut ledger, "alice", true);
    let before = ledger.book.clone();
    let locked = Rejection::WalletLocked(wallet_id("alice"));
    assert_eq!(ledger.pay_with("bakery", early.clone(), 100).unwrap_err(), locked);
    assert_eq!(ledger.charge("alice", 100).unwrap_err(), locked);
    assert_eq!(ledger.gift("alice", "bob", 100).unwrap_err(), locked);
    let code = PaymentCode::parse("after-the-lock").unwrap();
    assert_eq!(ledger.apply(Command::IssueCode { code, wallet: wallet_id("alice") }).unwrap_err(), locked);
    assert_eq!(ledger.book, before, "every refusal changed nothing, the code stays unused");
    assert!(locked.to_string().contains("ask the city to unlock it"), "{locked}");
    // It still receives: a gift, and a refund of its payment (less the cashback it reverses).
    let held = ledger.balance("alice");
    ledger.charge("bob", 5_000).unwrap();
    ledger.gift("bob", "alice", 5_000).unwrap();
    assert_eq!(ledger.balance("alice"), held.checked_add(won(5_000)).unwrap());
    let refund = ledger.refund("bakery", &payment_id, 10_000).unwrap();
    let Receipt::Refunded { cashback_reversed, .. } = refund.receipt else { panic!("a refund receipt") };
    let returned = won(10_000).checked_sub(cashback_reversed).unwrap();
    assert_eq!(ledger.balance("alice"), held.checked_add(won(5_000)).unwrap().checked_add(returned).unwrap());
    set_locked(&mut ledger, "alice", false);
    ledger.pay_with("bakery", early, 100).unwrap();
}

#[test]
fn a_suspended_merchant_takes_no_payment_but_refunds_and_is_settled() {
    let mut ledger = Ledger::new();
    ledger.charge("alice", 50_000).unwrap();
    let payment = ledger.pay("bakery", "alice", 10_000).unwrap();
    let Receipt::Paid { payment_id, .. } = payment.receipt else { panic!("a payment receipt") };
    let code = ledger.issue_code("alice");
    set_suspended(&mut ledger, "bakery", true);
    let before = ledger.book.clone();
    let suspended = Rejection::MerchantSuspended(merchant_id("bakery"));
    assert_eq!(ledger.pay_with("bakery", code.clone(), 100).unwrap_err(), suspended);
    // Said before the code is looked at: a fresh code would not help.
    let unknown = PaymentCode::parse("never-issued").unwrap();
    assert_eq!(ledger.pay_with("bakery", unknown, 100).unwrap_err(), suspended);
    assert_eq!(ledger.book, before, "the refusal changed nothing, the code stays usable");
    // Another merchant takes the code the suspended one could not.
    ledger.pay_with("grocer", code, 100).unwrap();
    ledger.refund("bakery", &payment_id, 4_000).unwrap();
    // Its sales of the day close as any merchant's.
    ledger.advance(24 * 3_600);
    let closed = ledger.close("2026-12-10").unwrap();
    let Receipt::DayClosed { settlement, .. } = closed.receipt else { panic!("a close receipt") };
    let line = settlement.lines.iter().find(|line| line.merchant_id == merchant_id("bakery")).expect("bakery's line");
    assert_eq!((line.payments_amount, line.refunds_amount), (won(10_000), won(4_000)));
}
