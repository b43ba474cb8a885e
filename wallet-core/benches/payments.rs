//! How many payments the core applies per second in memory, on one core; and how long it takes
//! to close a day of a city's merchants.
//!
//! `cargo bench -p wallet-core --bench payments`. Each iteration applies a batch of 1,000
//! payments (with cashback, cap and budget rules, a refund every tenth) to a book of 10,000
//! wallets and 100 merchants; criterion reports the throughput in commands per second. The close
//! settles a day on which each of 60,000 merchants had a payment (the writer holds its
//! transaction open meanwhile, so payments wait for it).

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wallet_core::*;

const WALLETS: usize = 10_000;
const MERCHANTS: usize = 100;
const BATCH: usize = 1_000;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-10T01:00:00Z").expect("literal instant").with_timezone(&Utc)
}

fn id<T>(parse: fn(&str) -> Result<T, id::IdError>, text: String) -> T {
    parse(&text).expect("bench ids are valid")
}

/// A book with charged wallets, merchants, a funded budget and one fresh code per payment.
fn setup() -> (Book, Vec<Command>) {
    let now = now();
    let mut book = Book::new(Policy::default());
    let fund =
        Command::TopUpBudget { id: id(TxId::parse, "fund".into()), amount: Amount::from_i64(1_000_000_000).unwrap() };
    book.apply(&fund, now).expect("top-up");
    for wallet in 0..WALLETS {
        let wallet_id = id(WalletId::parse, format!("wallet-{wallet}"));
        book.open_wallet(wallet_id.clone(), now);
        let charge = Command::Charge {
            bonus_id: id(TxId::parse, format!("charge-bonus-{wallet}")),
            id: id(TxId::parse, format!("charge-{wallet}")),
            wallet: wallet_id,
            amount: Amount::from_i64(1_000_000).unwrap(),
        };
        book.apply(&charge, now).expect("charge");
    }
    for merchant in 0..MERCHANTS {
        book.open_merchant(id(MerchantId::parse, format!("merchant-{merchant}")));
    }
    let mut commands = Vec::with_capacity(BATCH);
    for index in 0..BATCH {
        if index % 10 == 9 {
            // Refund part of the payment just before, at the merchant that took it.
            let merchant = id(MerchantId::parse, format!("merchant-{}", (index - 1) % MERCHANTS));
            commands.push(Command::Refund {
                id: id(TxId::parse, format!("refund-{index}")),
                reversal_id: id(TxId::parse, format!("reversal-{index}")),
                merchant,
                payment: id(TxId::parse, format!("payment-{}", index - 1)),
                amount: Amount::from_i64(1_000).unwrap(),
            });
            continue;
        }
        let code = id(PaymentCode::parse, format!("code-{index}"));
        let wallet = id(WalletId::parse, format!("wallet-{}", (index * 7919) % WALLETS));
        book.apply(&Command::IssueCode { code: code.clone(), wallet }, now).expect("the wallet is open");
        commands.push(Command::Pay {
            id: id(TxId::parse, format!("payment-{index}")),
            cashback_id: id(TxId::parse, format!("cashback-{index}")),
            merchant: id(MerchantId::parse, format!("merchant-{}", index % MERCHANTS)),
            code,
            amount: Amount::from_i64(12_345 + index as i64).unwrap(),
        });
    }
    book.take_changes();
    (book, commands)
}

fn payments(criterion: &mut Criterion) {
    let (book, commands) = setup();
    let mut group = criterion.benchmark_group("core");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("apply_1000_payments_and_refunds", |bencher| {
        bencher.iter_batched(
            || book.clone(),
            // The book is returned so that dropping it is not timed.
            |mut book| {
                let results = book.apply_all(&commands, now());
                assert!(results.iter().all(Result::is_ok));
                let changes = book.take_changes();
                (book, results, changes)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Merchants with activity on the closed day.
const CLOSE_MERCHANTS: usize = 60_000;

fn close_day(criterion: &mut Criterion) {
    let date = BusinessDate::of(now());
    let mut book = Book::new(Policy::default());
    for merchant in 0..CLOSE_MERCHANTS {
        let merchant_id = id(MerchantId::parse, format!("merchant-{merchant}"));
        let mut sales = DaySales::default();
        sales.add_payment(Amount::from_i64(10_000).unwrap()).expect("small sums");
        book.load_merchant(
            merchant_id.clone(),
            MerchantState { receivable: Won::from_i64(10_000), ..Default::default() },
        );
        book.load_sales(date, merchant_id, sales);
    }
    let close = Command::CloseDay { id: id(TxId::parse, "close".into()), date };
    let tomorrow = now() + chrono::Duration::days(1);
    let mut group = criterion.benchmark_group("core");
    group.sample_size(10);
    group.bench_function("close_a_day_of_60000_merchants", |bencher| {
        bencher.iter_batched(
            || book.clone(),
            |mut book| {
                let outcome = book.apply(&close, tomorrow).expect("the day closes");
                (book, outcome)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, payments, close_day);
criterion_main!(benches);
