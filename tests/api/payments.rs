//! Payments by code, cashback (rate, monthly spend cap, budget), and the history they leave.

use chrono::TimeDelta;
use serde_json::json;

use crate::support::{history_rows, rows, string, time, Backend, Body, TestApp, CLOCK_START};

fn payments_take_codes_and_pay_cashback(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let mut alice = api.register_citizen("alice");
    let mut shop = api.create_merchant(&app.admin(), "shop");
    app.top_up_budget("1000000");
    api.charge(&alice.token, "100000").expect(201);

    let issued = api.send("POST", "/v1/wallet/payment-codes", &alice.token, Body::Empty, &[]).expect(201);
    let validity = time(&issued["expires_at"]) - time(&json!(CLOCK_START));
    assert!(
        validity >= TimeDelta::seconds(180) && validity < TimeDelta::seconds(190),
        "a code is valid 180 s: {issued}"
    );
    let code = string(&issued["code"]);
    let spare_code = api.payment_code(&alice.token);
    assert_ne!(code, spare_code);

    let payment = api.pay(&shop.token, &code, "12345").expect(201);
    assert_eq!(
        (&payment["amount"], &payment["cashback"], &payment["status"]),
        (&json!("12345"), &json!("1234"), &json!("approved"))
    );
    assert!(!string(&payment["payment_id"]).is_empty());
    time(&payment["at"]);
    let wallet = api.wallet(&alice.token);
    assert_eq!(wallet["balance"], "88889");
    assert_eq!(wallet["cashback_earned_this_month"], "1234");
    assert_eq!(wallet["cashback_eligible_spend_remaining"], "487655");
    let budget = api.get("/v1/admin/cashback-budget", &app.admin()).expect(200);
    assert_eq!(budget, json!({"funded": "1000000", "paid_out": "1234", "reversed": "0", "remaining": "998766"}));

    api.pay(&shop.token, &code, "100").expect_error(422, "payment_code_invalid");
    api.pay(&shop.token, "no-such-code", "100").expect_error(422, "payment_code_invalid");

    // Codes are independent: the spare one still works 170 s later; one issued then expires 180 s on.
    app.set_clock("2030-01-10T01:02:50Z");
    alice.relogin(api);
    shop.relogin(api);
    assert_eq!(api.pay(&shop.token, &spare_code, "1000").expect(201)["cashback"], "100");
    let late_code = api.payment_code(&alice.token);
    app.set_clock("2030-01-10T01:06:00Z");
    alice.relogin(api);
    shop.relogin(api);
    api.pay(&shop.token, &late_code, "100").expect_error(422, "payment_code_invalid");

    // Exactly the balance can be paid, one won more cannot.
    assert_eq!(api.balance(&alice.token), "87989");
    let code = api.payment_code(&alice.token);
    api.pay(&shop.token, &code, "87990").expect_error(422, "insufficient_funds");
    assert_eq!(api.pay_from(&alice.token, &shop.token, "87989")["cashback"], "8798");
    assert_eq!(api.balance(&alice.token), "8798");

    let history = api.history(&alice.token, "");
    assert_eq!(
        history_rows(&history),
        rows(&[
            ("cashback", "8798", "8798"),
            ("payment", "-87989", "0"),
            ("cashback", "100", "87989"),
            ("payment", "-1000", "87889"),
            ("cashback", "1234", "88889"),
            ("payment", "-12345", "87655"),
            ("charge", "100000", "100000"),
        ]),
        "{history}"
    );
    assert!(history["next_cursor"].is_null());
    app.assert_books_balance();
}

fn cashback_is_limited_by_the_budget(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let shop = api.create_merchant(&app.admin(), "shop");
    api.charge(&alice.token, "10000").expect(201);
    app.top_up_budget("50");

    let payment = api.pay_from(&alice.token, &shop.token, "1000");
    assert_eq!((&payment["cashback"], &payment["status"]), (&json!("50"), &json!("approved")));
    let payment = api.pay_from(&alice.token, &shop.token, "1000");
    assert_eq!((&payment["cashback"], &payment["status"]), (&json!("0"), &json!("approved")));
    assert_eq!(api.balance(&alice.token), "8050");
    let budget = api.get("/v1/admin/cashback-budget", &app.admin()).expect(200);
    assert_eq!(budget, json!({"funded": "50", "paid_out": "50", "reversed": "0", "remaining": "0"}));
    app.assert_books_balance();
}

fn cashback_is_limited_by_the_monthly_spend_cap(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_monthly_spend_cap", "20000")]);
    app.top_up_budget("1000000");
    let alice = api.register_citizen("alice");
    let shop = api.create_merchant(&app.admin(), "shop");
    api.charge(&alice.token, "100000").expect(201);

    assert_eq!(api.pay_from(&alice.token, &shop.token, "15000")["cashback"], "1500");
    assert_eq!(api.wallet(&alice.token)["cashback_eligible_spend_remaining"], "5000");
    assert_eq!(api.pay_from(&alice.token, &shop.token, "10000")["cashback"], "500");
    assert_eq!(api.pay_from(&alice.token, &shop.token, "1000")["cashback"], "0");
    let wallet = api.wallet(&alice.token);
    assert_eq!(wallet["balance"], "76000");
    assert_eq!(wallet["cashback_earned_this_month"], "2000");
    assert_eq!(wallet["cashback_eligible_spend_remaining"], "0");
    app.assert_books_balance();
}

scenarios!(
    payments_take_codes_and_pay_cashback,
    cashback_is_limited_by_the_budget,
    cashback_is_limited_by_the_monthly_spend_cap
);
