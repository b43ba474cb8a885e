//! Idempotency records and payment codes are kept for their retention, then swept away in the
//! background, changing no balance and no history; a key past its retention is new again (an
//! extension of API.md). The sweep runs every 5 s; its work shows in `/metrics`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{amount_body, Backend, Client, TestApp};

/// How long a test waits for the background sweep (every 5 s) to run twice.
const SWEEPS_WAIT_MAX: Duration = Duration::from_secs(60);

const SWEEPS: &str = "wallet_expiry_sweeps_total";
const RECORDS_DELETED: &str = "wallet_expired_rows_deleted_total{table=\"idempotency\"}";
const CODES_DELETED: &str = "wallet_expired_rows_deleted_total{table=\"payment_codes\"}";

#[track_caller]
fn metric(api: &Client, series: &str) -> f64 {
    api.metric(series).unwrap_or_else(|| panic!("/metrics has no {series}"))
}

/// Waits until two more sweeps have run, so that one ran wholly after the caller's clock move.
#[track_caller]
fn two_sweeps_later(api: &Client) {
    let target = metric(api, SWEEPS) + 2.0;
    let deadline = Instant::now() + SWEEPS_WAIT_MAX;
    while metric(api, SWEEPS) < target {
        assert!(Instant::now() < deadline, "the expiry sweep did not run twice in {SWEEPS_WAIT_MAX:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What must not change when expired rows go: alice's wallet and history, the budget, the books.
fn money_view(app: &TestApp, token: &str) -> Value {
    let api = &app.api;
    json!({
        "wallet": api.wallet(token),
        "history": api.history(token, "limit=200"),
        "budget": api.get("/v1/admin/cashback-budget", &app.admin()).expect(200),
        "trial": api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200),
    })
}

fn idempotency_records_and_payment_codes_expire(backend: Backend) {
    // Payment codes are kept an hour after they expire; idempotency records 24 hours (the default).
    let app = TestApp::start_with(backend, &[("WALLET_PAYMENT_CODE_RETENTION_S", "3600")]);
    let api = &app.api;
    let mut alice = api.register_citizen("alice");
    let mut shop = api.create_merchant(&app.admin(), "shop");
    let charges = "/v1/wallet/charges";
    let keyed = |token: &str, key: &str, amount: &str| {
        api.post(charges, token, &amount_body(amount), &[("Idempotency-Key", key)])
    };

    // Three idempotency records (a top-up, a charge, a payment) and two codes, one used.
    app.top_up_budget("100000");
    keyed(&alice.token, "charge-day-1", "30000").expect(201);
    let used_code = api.payment_code(&alice.token);
    api.pay(&shop.token, &used_code, "10000").expect(201);
    let unused_code = api.payment_code(&alice.token);
    assert_eq!((metric(api, RECORDS_DELETED), metric(api, CODES_DELETED)), (0.0, 0.0));

    // Two hours on: the codes are past expiry plus retention; the records are kept.
    app.set_clock("2030-01-10T03:00:00Z");
    alice.relogin(api);
    shop.relogin(api);
    let before = money_view(&app, &alice.token);
    two_sweeps_later(api);
    assert_eq!((metric(api, RECORDS_DELETED), metric(api, CODES_DELETED)), (0.0, 2.0));
    assert_eq!(money_view(&app, &alice.token), before, "deleting codes changed money");
    for code in [&used_code, &unused_code] {
        api.pay(&shop.token, code, "1000").expect_error(422, "payment_code_invalid");
    }
    keyed(&alice.token, "charge-day-1", "99999").expect_error(409, "idempotency_conflict");
    let retained = keyed(&alice.token, "charge-hour-2", "5000").expect(201);

    // A day and an hour after the start: the first three records are past 24 hours, the one of
    // hour two is not.
    app.set_clock("2030-01-11T02:00:00Z");
    alice.relogin(api);
    let after_second = money_view(&app, &alice.token);
    two_sweeps_later(api);
    assert_eq!((metric(api, RECORDS_DELETED), metric(api, CODES_DELETED)), (3.0, 2.0));
    // Nothing about money changed with the rows that went.
    assert_eq!(money_view(&app, &alice.token), after_second);
    assert_eq!(after_second["wallet"]["balance"], "26000", "{after_second}");
    assert_eq!(before["history"]["items"].as_array().map(Vec::len), Some(3), "{before}");
    // The retained key still answers as before; the expired one is a new request.
    assert_eq!(keyed(&alice.token, "charge-hour-2", "5000").expect(201), retained);
    keyed(&alice.token, "charge-hour-2", "7000").expect_error(409, "idempotency_conflict");
    let anew = keyed(&alice.token, "charge-day-1", "99999").expect(201);
    assert_eq!(anew["balance"], "125999", "{anew}");
    app.assert_books_balance();
}

scenarios!(idempotency_records_and_payment_codes_expire);
