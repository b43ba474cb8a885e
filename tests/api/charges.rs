//! The wallet view, charges, their limits, and the request-level rules (amounts, JSON, keys, size).

use serde_json::{json, Value};

use crate::support::{amount_body, new_key, string, Backend, Body, TestApp};

fn wallet_shows_charges_within_limits(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");

    let wallet = api.wallet(&alice.token);
    assert_eq!(
        wallet,
        json!({
            "wallet_id": alice.wallet_id, "balance": "0", "currency": "KRW", "month": "2030-01",
            "charged_this_month": "0", "charge_limit_remaining": "2000000",
            "cashback_earned_this_month": "0", "cashback_net_this_month": "0",
            "cashback_eligible_spend_remaining": "500000",
            "purses": {"own": "0", "bonus": "0", "allowances": []},
            "charge_bonus": null,
        })
    );

    let charge = api.charge(&alice.token, "50000").expect(201);
    assert!(!string(&charge["charge_id"]).is_empty());
    assert_eq!((&charge["amount"], &charge["balance"]), (&json!("50000"), &json!("50000")));
    let wallet = api.wallet(&alice.token);
    assert_eq!(wallet["charged_this_month"], "50000");
    assert_eq!(wallet["charge_limit_remaining"], "1950000");

    // Monthly charge limit 2,000,000: one won over is refused, exactly up to it is accepted.
    api.charge(&alice.token, "1950001").expect_error(422, "limit_exceeded");
    assert_eq!(api.charge(&alice.token, "1950000").expect(201)["balance"], "2000000");
    api.charge(&alice.token, "1").expect_error(422, "limit_exceeded");
    assert_eq!(api.wallet(&alice.token)["charge_limit_remaining"], "0");

    // Holding limit: raise the monthly limit out of the way.
    app.set_policy(&[("monthly_charge_limit", "5000000"), ("holding_limit", "2000500")]);
    api.charge(&alice.token, "501").expect_error(422, "limit_exceeded");
    assert_eq!(api.charge(&alice.token, "500").expect(201)["balance"], "2000500");
    // The largest valid amount is an amount (not invalid_amount), just over the limits.
    api.charge(&alice.token, "1000000000000").expect_error(422, "limit_exceeded");

    for amount in [
        json!("10.5"),
        json!("1e3"),
        json!("+5"),
        json!("-5"),
        json!(""),
        json!("0"),
        json!(15000),
        json!("1000000000001"),
        json!(" 5"),
        json!("0x10"),
    ] {
        let reply = api.post_keyed("/v1/wallet/charges", &alice.token, &json!({ "amount": amount }));
        reply.expect_error(422, "invalid_amount");
    }
    assert_eq!(api.balance(&alice.token), "2000500", "refused charges moved money");
    app.assert_books_balance();
}

fn charge_requests_are_checked(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let charge = |body: Body<'_>, key: Option<&str>| {
        let headers: Vec<(&str, &str)> = key.map(|key| vec![("Idempotency-Key", key)]).unwrap_or_default();
        api.send("POST", "/v1/wallet/charges", &alice.token, body, &headers)
    };
    let key = new_key();
    let key = Some(key.as_str());

    // Unknown field: 422 (the contract names no code for it).
    let unknown = charge(Body::Json(&json!({"amount": "1000", "memo": "x"})), key);
    assert_eq!(unknown.status, 422, "{unknown}");
    assert!(unknown.json["error"]["code"].is_string(), "{unknown}");

    charge(Body::Raw(b"{\"amount\": \"1000\""), Some(&new_key())).expect_error(400, "invalid_request");
    charge(Body::Json(&amount_body("1000")), None).expect_error(400, "invalid_request");
    charge(Body::Json(&amount_body("1000")), Some("")).expect_error(400, "invalid_request");
    charge(Body::Json(&amount_body("1000")), Some(&"k".repeat(256))).expect_error(400, "invalid_request");
    charge(Body::Json(&amount_body("1000")), Some("has space")).expect_error(400, "invalid_request");

    let oversized: Value = json!({"amount": "1000", "padding": "x".repeat(70 * 1024)});
    charge(Body::Json(&oversized), Some(&new_key())).expect_error(413, "payload_too_large");
    assert_eq!(api.balance(&alice.token), "0", "a refused request moved money");

    // A 255-character key of visible ASCII is valid.
    let longest_key = "~".repeat(255);
    assert_eq!(charge(Body::Json(&amount_body("1000")), Some(&longest_key)).expect(201)["balance"], "1000");
    app.assert_books_balance();
}

scenarios!(wallet_shows_charges_within_limits, charge_requests_are_checked);
