//! Idempotency keys: replays answer the original, conflicts are refused, races move money once,
//! and keys belong to their principal.

use std::sync::Barrier;

use serde_json::{json, Value};

use crate::support::{amount_body, new_key, string, Backend, Client, Reply, TestApp, PASSWORD};

fn keyed(api: &Client, path: &str, token: &str, body: &Value, key: &str) -> Reply {
    api.post(path, token, body, &[("Idempotency-Key", key)])
}

/// Sends the same keyed request twice, the second right after the first.
#[track_caller]
fn assert_replay(api: &Client, path: &str, token: &str, body: &Value) -> Value {
    let key = new_key();
    let first = keyed(api, path, token, body, &key).expect(201);
    let again = keyed(api, path, token, body, &key);
    assert_eq!((again.status, &again.json), (201, &first), "a replay answers the original: {again}");
    first
}

/// Sends the same keyed request from two threads at once; both must get the same 201 answer.
#[track_caller]
fn assert_race(api: &Client, path: &str, token: &str, body: &Value) -> Value {
    let key = new_key();
    let barrier = Barrier::new(2);
    let send = || {
        barrier.wait();
        keyed(api, path, token, body, &key)
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(send);
        let b = scope.spawn(send);
        (a.join().expect("request thread panicked"), b.join().expect("request thread panicked"))
    });
    assert_eq!((a.status, b.status), (201, 201), "racing replays: {a} / {b}");
    assert_eq!(a.json, b.json, "racing replays answer alike");
    a.json
}

fn keys_make_money_move_once(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let bob = api.register_citizen("bob");
    let shop = api.create_merchant(&app.admin(), "shop");
    app.top_up_budget("1000000");
    let budget = assert_replay(api, "/v1/admin/cashback-budget/top-ups", &app.admin(), &amount_body("5000"));
    assert_eq!(budget["funded"], "1005000");

    let key = new_key();
    let charges = "/v1/wallet/charges";
    let first = keyed(api, charges, &alice.token, &amount_body("10000"), &key).expect(201);
    assert_eq!(first["balance"], "10000");
    let again = keyed(api, charges, &alice.token, &amount_body("10000"), &key);
    assert_eq!((again.status, &again.json), (201, &first), "{again}");
    keyed(api, charges, &alice.token, &amount_body("20000"), &key).expect_error(409, "idempotency_conflict");
    // The key belongs to the citizen, not to one session of hers.
    let second_session = api.login("alice", PASSWORD);
    assert_eq!(keyed(api, charges, &second_session, &amount_body("10000"), &key).expect(201), first);
    // Another principal's use of the same key is independent.
    let bobs = keyed(api, charges, &bob.token, &amount_body("10000"), &key).expect(201);
    assert_ne!(bobs["charge_id"], first["charge_id"]);
    assert_eq!((api.balance(&alice.token), api.balance(&bob.token)), ("10000".into(), "10000".into()));

    // A replayed payment answers the original even though its code is used now.
    let code = api.payment_code(&alice.token);
    let payment = assert_replay(api, "/v1/payments", &shop.token, &json!({"payment_code": code, "amount": "5000"}));
    assert_eq!(payment["cashback"], "500");
    let refunds = format!("/v1/payments/{}/refunds", string(&payment["payment_id"]));
    assert_eq!(assert_replay(api, &refunds, &shop.token, &amount_body("1000"))["cashback_reversed"], "100");
    let gift = json!({"to_wallet_id": bob.wallet_id, "amount": "400"});
    assert_eq!(assert_replay(api, "/v1/wallet/gifts", &alice.token, &gift)["balance"], "6000");

    for round in 1..=3 {
        let charge = assert_race(api, charges, &alice.token, &amount_body("1000"));
        assert_eq!(charge["balance"], (6000 + round * 1000).to_string());
    }
    let code = api.payment_code(&alice.token);
    let payment = assert_race(api, "/v1/payments", &shop.token, &json!({"payment_code": code, "amount": "2000"}));
    assert_eq!(payment["cashback"], "200");

    assert_eq!((api.balance(&alice.token), api.balance(&bob.token)), ("7200".into(), "10400".into()));
    let budget = api.get("/v1/admin/cashback-budget", &app.admin()).expect(200);
    assert_eq!(budget, json!({"funded": "1005000", "paid_out": "700", "reversed": "100", "remaining": "1004400"}));
    app.assert_books_balance();
}

scenarios!(keys_make_money_move_once);
