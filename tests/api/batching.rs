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
    // Payment codes expire by the test clock: both servers must read the same one.
    let admin_there = clients[1].login(crate::support::ADMIN_LOGIN, PASSWORD);
    let moved = clients[1].put("/v1/admin/test-clock", &admin_there, &json!({"now": crate::support::CLOCK_START}));
    assert_eq!(moved.status, 200, "{moved}");
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

scenarios!(
    rejected_batch_mates_leave_the_others_applied,
    a_batch_wait_keeps_batch_mates_independent,
    two_servers_keep_balances_exact_under_concurrent_payments
);
