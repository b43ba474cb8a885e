//! Durability: every acknowledged operation survives a SIGKILL; the one in flight is resolved by
//! retrying it with its key.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{amount_body, history_rows, new_key, Backend, Body, TestApp};

/// Charges streamed; their sum (about 220,000 won) stays within every limit.
const CHARGES_COUNT: usize = 200;
/// Bound on waiting for the streamer to reach the kill point.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Charge `index` is of `1000 + index` won, so each one is recognisable in the history.
fn charge_amount(index: usize) -> usize {
    1000 + index
}

fn acknowledged_charges_survive_a_crash(backend: Backend) {
    let mut app = TestApp::start(backend);
    let mut alice = app.api.register_citizen("alice");

    // Kill once a random-ish number of charges (50..149) has been acknowledged.
    let kill_after = 50 + usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100;
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let streamer = {
        let (api, token, acknowledged_count) = (app.api.clone(), alice.token.clone(), acknowledged_count.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for index in 0..CHARGES_COUNT {
                let (key, amount) = (new_key(), charge_amount(index));
                let body = amount_body(&amount.to_string());
                let headers = [("Idempotency-Key", key.as_str())];
                match api.try_send("POST", "/v1/wallet/charges", &token, Body::Json(&body), &headers) {
                    Ok(reply) => {
                        assert_eq!(reply.status, 201, "{reply}");
                        acknowledged.push(amount);
                        let sum: usize = acknowledged.iter().sum();
                        assert_eq!(reply.json["balance"], sum.to_string(), "{reply}");
                        acknowledged_count.store(acknowledged.len(), Ordering::SeqCst);
                    }
                    Err(_) => return (acknowledged, Some((key, amount))),
                }
            }
            (acknowledged, None)
        })
    };
    let deadline = Instant::now() + STREAM_TIMEOUT;
    while acknowledged_count.load(Ordering::SeqCst) < kill_after && !streamer.is_finished() && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    app.server.kill9();
    let (acknowledged, in_flight) = streamer.join().expect("the streaming thread failed");
    // Shown when the test fails: where the crash hit.
    eprintln!(
        "killed after {} acknowledged charges; in flight: {:?}",
        acknowledged.len(),
        in_flight.as_ref().map(|(_, amount)| amount)
    );
    assert!(acknowledged.len() >= kill_after.min(CHARGES_COUNT), "the stream stalled before the kill point");

    app.restart();
    alice.relogin(&app.api);
    let api = &app.api;
    let acknowledged_sum: usize = acknowledged.iter().sum();
    let balance: usize = api.balance(&alice.token).parse().expect("a balance is a whole number");
    let mut expected: BTreeSet<usize> = acknowledged.iter().copied().collect();
    if let Some((key, amount)) = in_flight {
        assert!(
            balance == acknowledged_sum || balance == acknowledged_sum + amount,
            "after the crash the balance is {balance}; acknowledged {acknowledged_sum}, in flight {amount}"
        );
        // Whether or not it was committed, the retry leaves it done exactly once.
        let body = amount_body(&amount.to_string());
        let retry = api.post("/v1/wallet/charges", &alice.token, &body, &[("Idempotency-Key", &key)]).expect(201);
        assert_eq!(retry["balance"], (acknowledged_sum + amount).to_string(), "{retry}");
        expected.insert(amount);
    } else {
        assert_eq!(balance, acknowledged_sum);
    }

    let expected_sum: usize = expected.iter().sum();
    assert_eq!(api.balance(&alice.token), expected_sum.to_string());
    let history = history_rows(&api.history(&alice.token, "limit=200"));
    let charged: BTreeSet<usize> = history
        .iter()
        .filter(|(kind, _, _)| kind == "charge")
        .map(|(_, amount, _)| amount.parse().expect("won"))
        .collect();
    assert_eq!(history.len(), expected.len(), "each charge is in the history once");
    assert_eq!(charged, expected);
    app.assert_books_balance();
}

/// Payments streamed; each is of `1000 + index` won and earns 10% cashback.
const PAYMENTS_COUNT: usize = 150;
/// What the citizen charges before the stream: more than all the payments together.
const PAYMENTS_FUNDING: usize = 500_000;

/// A payment as the POS saw it acknowledged: (amount, cashback).
type Acknowledged = (usize, usize);

fn acknowledged_payments_survive_a_crash(backend: Backend) {
    let mut app = TestApp::start(backend);
    app.top_up_budget("1000000");
    let admin = app.admin();
    let mut alice = app.api.register_citizen("alice");
    let mut bakery = app.api.create_merchant(&admin, "bakery");
    app.api.charge(&alice.token, &PAYMENTS_FUNDING.to_string()).expect(201);

    let kill_after = 30 + usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100;
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let streamer = {
        let api = app.api.clone();
        let (citizen, merchant) = (alice.token.clone(), bakery.token.clone());
        let acknowledged_count = acknowledged_count.clone();
        std::thread::spawn(move || {
            let mut acknowledged: Vec<Acknowledged> = Vec::new();
            for index in 0..PAYMENTS_COUNT {
                let Ok(code) = api.try_send("POST", "/v1/wallet/payment-codes", &citizen, Body::Empty, &[]) else {
                    return (acknowledged, None);
                };
                assert_eq!(code.status, 201, "{code}");
                let (key, amount) = (new_key(), 1000 + index);
                let body = serde_json::json!({"payment_code": code.json["code"], "amount": amount.to_string()});
                let headers = [("Idempotency-Key", key.as_str())];
                match api.try_send("POST", "/v1/payments", &merchant, Body::Json(&body), &headers) {
                    Ok(reply) => {
                        assert_eq!(reply.status, 201, "{reply}");
                        let cashback: usize =
                            reply.json["cashback"].as_str().and_then(|c| c.parse().ok()).expect("cashback");
                        assert_eq!(cashback, amount / 10, "{reply}");
                        acknowledged.push((amount, cashback));
                        acknowledged_count.store(acknowledged.len(), Ordering::SeqCst);
                    }
                    Err(_) => return (acknowledged, Some((key, body, amount))),
                }
            }
            (acknowledged, None)
        })
    };
    let deadline = Instant::now() + STREAM_TIMEOUT;
    while acknowledged_count.load(Ordering::SeqCst) < kill_after && !streamer.is_finished() && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    app.server.kill9();
    let (mut acknowledged, in_flight) = streamer.join().expect("the streaming thread failed");
    eprintln!("killed after {} acknowledged payments; in flight: {}", acknowledged.len(), in_flight.is_some());
    assert!(acknowledged.len() >= kill_after.min(PAYMENTS_COUNT), "the stream stalled before the kill point");

    app.restart();
    alice.relogin(&app.api);
    bakery.relogin(&app.api);
    let api = &app.api;
    if let Some((key, body, amount)) = in_flight {
        // Committed or not before the kill, the retry with its key leaves it done exactly once.
        let retry = api.post("/v1/payments", &bakery.token, &body, &[("Idempotency-Key", &key)]).expect(201);
        assert_eq!(retry["amount"], amount.to_string(), "{retry}");
        acknowledged.push((amount, amount / 10));
    }
    let paid: usize = acknowledged.iter().map(|(amount, _)| amount).sum();
    let cashback: usize = acknowledged.iter().map(|(_, cashback)| cashback).sum();
    assert_eq!(api.balance(&alice.token), (PAYMENTS_FUNDING - paid + cashback).to_string());
    let sales = api.get("/v1/merchant/sales?date=2030-01-10", &bakery.token).expect(200);
    assert_eq!(sales["payments_count"], acknowledged.len(), "{sales}");
    assert_eq!(sales["payments_amount"], paid.to_string(), "{sales}");
    // Payments and their cashback items pass one page: read every page.
    let mut history = Vec::new();
    let mut query = "limit=200".to_owned();
    loop {
        let page = api.history(&alice.token, &query);
        history.extend(history_rows(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=200&cursor={cursor}"),
            None => break,
        }
    }
    let payments = history.iter().filter(|(kind, _, _)| kind == "payment").count();
    assert_eq!(payments, acknowledged.len(), "each acknowledged payment is in the history once");
    app.assert_books_balance();
}

scenarios!(acknowledged_charges_survive_a_crash, acknowledged_payments_survive_a_crash);
