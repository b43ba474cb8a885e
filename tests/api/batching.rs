//! The batching writer (issue 6): batch-mates are independent, and two servers on one database
//! keep balances exact under concurrent payments on the same wallets.

use std::sync::{Arc, Barrier};

use serde_json::json;

use crate::support::{string, Backend, Client, TestApp, PASSWORD};

/// Sends `codes.len()` payments at the same moment, each of `amount`, the i-th through
/// `clients[i % clients.len()]`; their statuses and error codes in order.
fn pay_all_at_once(clients: &[Client], merchant: &str, codes: &[String], amount: &str) -> Vec<(u16, String)> {
    let barrier = Arc::new(Barrier::new(codes.len()));
    let payments: Vec<_> = codes
        .iter()
        .enumerate()
        .map(|(index, code)| {
            let (api, barrier) = (clients[index % clients.len()].clone(), barrier.clone());
            let (merchant, code, amount) = (merchant.to_owned(), code.clone(), amount.to_owned());
            std::thread::spawn(move || {
                barrier.wait();
                let reply = api.pay(&merchant, &code, &amount);
                let error = reply.json["error"]["code"].as_str().unwrap_or_default().to_owned();
                (reply.status, error)
            })
        })
        .collect();
    payments.into_iter().map(|payment| payment.join().expect("payment thread")).collect()
}

fn rejected_batch_mates_leave_the_others_applied(backend: Backend) {
    refusals_stay_with_their_own_request(TestApp::start(backend));
}

/// The same with the writer waiting for company (`WALLET_BATCH_WAIT_US`): bigger batches, same
/// answers.
fn a_batch_wait_keeps_batch_mates_independent(backend: Backend) {
    refusals_stay_with_their_own_request(TestApp::start_with(backend, &[("WALLET_BATCH_WAIT_US", "20000")]));
}

fn refusals_stay_with_their_own_request(app: TestApp) {
    let api = &app.api;
    let citizen = api.register_citizen("spender");
    let shop = api.create_merchant(&app.admin(), "busyshop");
    api.charge(&citizen.token, "10000").expect(201);
    // Sixty payments of 200 won against 10,000: fifty fit, ten must be refused, whatever
    // batches the writer forms; a refusal that spoiled its batch would refuse more.
    let codes: Vec<String> = (0..60).map(|_| api.payment_code(&citizen.token)).collect();
    let answers = pay_all_at_once(std::slice::from_ref(api), &shop.token, &codes, "200");
    let paid = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused = answers.iter().filter(|answer| **answer == (422, "insufficient_funds".to_owned())).count();
    assert_eq!((paid, refused), (50, 10), "{answers:?}");
    assert_eq!(api.balance(&citizen.token), "0");
    let history = api.history(&citizen.token, "limit=100");
    let payments = history["items"].as_array().unwrap().iter().filter(|item| item["kind"] == "payment").count();
    assert_eq!(payments, 50, "{history}");
    app.assert_books_balance();
}

fn two_servers_keep_balances_exact_under_concurrent_payments(backend: Backend) {
    let app = TestApp::start(backend);
    let mut second = app.server.sibling();
    second.spawn();
    let clients = [app.api.clone(), second.client()];
    // Payment codes expire by the test clock: both servers read the same one (kept in the
    // database, so the second starts where the first was moved).
    crate::support::assert_same_clock(&app, &clients[1]);
    let api = &app.api;
    let shop = api.create_merchant(&app.admin(), "twoshop");
    let citizens: Vec<_> = (0..4).map(|index| api.register_citizen(&format!("payer{index}"))).collect();
    for citizen in &citizens {
        api.charge(&citizen.token, "5000").expect(201);
    }
    // Each citizen's 15 codes go out at once, alternating between the servers: 15 x 500 won
    // against 5,000, so exactly 10 of each citizen's payments fit.
    let mut codes = Vec::new();
    for citizen in &citizens {
        codes.extend((0..15).map(|_| (citizen.login.clone(), api.payment_code(&citizen.token))));
    }
    let only_codes: Vec<String> = codes.iter().map(|(_, code)| code.clone()).collect();
    let answers = pay_all_at_once(&clients, &shop.token, &only_codes, "500");
    for citizen in &citizens {
        let paid = codes
            .iter()
            .zip(&answers)
            .filter(|((login, _), (status, _))| *login == citizen.login && *status == 201)
            .count();
        assert_eq!(paid, 10, "{}: {answers:?}", citizen.login);
        for client in &clients {
            let token = client.login(&citizen.login, PASSWORD);
            assert_eq!(client.balance(&token), "0", "{} read through either server", citizen.login);
            // The history chain, written by both servers, is the wallet's order of commits:
            // newest first, each item's balance the next older one's plus its amount.
            let history = client.history(&token, "limit=200");
            let items = history["items"].as_array().unwrap();
            let kinds = |kind: &str| items.iter().filter(|item| item["kind"] == kind).count();
            assert_eq!((kinds("charge"), kinds("payment")), (1, 10), "{history}");
            let number = |value: &serde_json::Value| string(value).parse::<i64>().unwrap();
            for pair in items.windows(2) {
                assert_eq!(
                    number(&pair[1]["balance_after"]) + number(&pair[0]["amount"]),
                    number(&pair[0]["balance_after"]),
                    "{history}"
                );
            }
            assert_eq!(number(&items[0]["balance_after"]), 0, "{history}");
        }
    }
    assert!(answers.iter().all(|(status, code)| *status == 201 || (*status == 422 && code == "insufficient_funds")));
    let sales = api.get("/v1/merchant/sales?date=2030-01-10", &shop.token).expect(200);
    assert_eq!(string(&sales["payments_amount"]), "20000", "{sales}");
    app.assert_books_balance();
}

/// Sends a request again, as a client honouring `Retry-After` would, while the server sheds it
/// with a quick 503 `overloaded` (a 2-core machine running two servers and this race may): that
/// answer changed nothing and is the designed one under overload. Any other answer is returned.
fn until_not_shed(send: impl Fn() -> crate::support::Reply) -> crate::support::Reply {
    for _ in 0..SHED_RETRIES_MAX {
        let reply = send();
        if !(reply.status == 503 && reply.json["error"]["code"] == "overloaded") {
            return reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    send()
}

/// Retries of a shed request before its answer counts as is.
const SHED_RETRIES_MAX: usize = 50;

/// Rounds of the duplicate-key race (the pilot saw the failure in 2 of 4 runs of 320).
const DUPLICATE_RACE_ROUNDS: usize = 320;
/// Raced pairs sent at once.
const DUPLICATE_RACE_PAIRS_AT_ONCE: usize = 16;

/// The same payment with the same Idempotency-Key, sent to two servers on one database at the
/// same instant, again and again, while other citizens fetch payment codes through both. A
/// batch that met the other server's commit of the key failed whole, and its batch-mates (other
/// citizens) got 500. Now the key's conflict is that request's alone: both answers are the one
/// payment, nobody gets a 5xx, and the money moved once per round.
fn a_key_raced_on_two_servers_fails_no_one(backend: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let app = TestApp::start(backend);
    let mut second = app.server.sibling();
    second.spawn();
    let clients = [app.api.clone(), second.client()];
    let api = &app.api;
    app.set_policy(&[("cashback_rate", "0")]);
    let shop = api.create_merchant(&app.admin(), "raceshop");
    let racer = api.register_citizen("racer");
    api.charge(&racer.token, "100000").expect(201);
    let bystanders: Vec<_> = (0..4).map(|index| api.register_citizen(&format!("bystander{index}"))).collect();

    let stop = AtomicBool::new(false);
    let (rounds, bystander_answers) = std::thread::scope(|scope| {
        let fetchers: Vec<_> = bystanders
            .iter()
            .enumerate()
            .map(|(index, bystander)| {
                let (client, stop) = (&clients[index % 2], &stop);
                scope.spawn(move || {
                    let mut statuses = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let key = crate::support::new_key();
                        let reply = until_not_shed(|| {
                            let headers = [("Idempotency-Key", key.as_str())];
                            client.post("/v1/wallet/payment-codes", &bystander.token, &json!({}), &headers)
                        });
                        statuses.push((reply.status, reply.text));
                    }
                    statuses
                })
            })
            .collect();
        // Waves of racing pairs, so that a batch holds several raced keys and a batch run again
        // can meet the other server's commit of another one.
        let mut rounds = Vec::new();
        for _ in 0..DUPLICATE_RACE_ROUNDS / DUPLICATE_RACE_PAIRS_AT_ONCE {
            let bodies: Vec<_> = (0..DUPLICATE_RACE_PAIRS_AT_ONCE)
                .map(|_| {
                    (json!({"payment_code": api.payment_code(&racer.token), "amount": "10"}), crate::support::new_key())
                })
                .collect();
            let barrier = Barrier::new(2 * DUPLICATE_RACE_PAIRS_AT_ONCE);
            let wave: Vec<Vec<_>> = std::thread::scope(|wave| {
                let sent: Vec<Vec<_>> = bodies
                    .iter()
                    .map(|(body, key)| {
                        clients
                            .iter()
                            .map(|client| {
                                let (barrier, token) = (&barrier, &shop.token);
                                wave.spawn(move || {
                                    barrier.wait();
                                    until_not_shed(|| {
                                        client.post("/v1/payments", token, body, &[("Idempotency-Key", key)])
                                    })
                                })
                            })
                            .collect()
                    })
                    .collect();
                sent.into_iter()
                    .map(|pair| pair.into_iter().map(|answer| answer.join().expect("payment thread")).collect())
                    .collect()
            });
            rounds.extend(wave);
        }
        stop.store(true, Ordering::Relaxed);
        let bystander_answers: Vec<_> =
            fetchers.into_iter().flat_map(|fetcher| fetcher.join().expect("fetcher thread")).collect();
        (rounds, bystander_answers)
    });
    for answers in &rounds {
        for answer in answers {
            assert_eq!(answer.status, 201, "{answer}");
        }
        assert_eq!(answers[0].json["payment_id"], answers[1].json["payment_id"], "one payment per key");
    }
    assert!(bystander_answers.len() >= DUPLICATE_RACE_ROUNDS / 10, "the bystanders hardly ran");
    let failed: Vec<_> = bystander_answers.iter().filter(|(status, _)| *status != 201).collect();
    assert!(failed.is_empty(), "batch-mates failed: {failed:?}");
    let moved = 100_000 - 10 * DUPLICATE_RACE_ROUNDS as i64;
    assert_eq!(api.balance(&racer.token), moved.to_string(), "the money moved once per round");
    let sales = api.get("/v1/merchant/sales?date=2030-01-10", &shop.token).expect(200);
    assert_eq!(sales["payments_count"], DUPLICATE_RACE_ROUNDS, "{sales}");
    app.assert_books_balance();
}

scenarios!(
    a_key_raced_on_two_servers_fails_no_one,
    rejected_batch_mates_leave_the_others_applied,
    a_batch_wait_keeps_batch_mates_independent,
    two_servers_keep_balances_exact_under_concurrent_payments
);
