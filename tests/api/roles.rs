//! Roles: each endpoint answers only its role (403 for the others, 401 without a token), and no
//! citizen or merchant sees another's data.

use serde_json::{json, Value};

use crate::support::{amount_body, new_key, Backend, Body, TestApp, PASSWORD, POLICY_STANDARD};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Citizen,
    Merchant,
    Admin,
}

fn endpoints_admit_only_their_role(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("1000");
    let alice = api.register_citizen("alice");
    let bob = api.register_citizen("bob");
    let shop = api.create_merchant(&app.admin(), "shop");
    let other_shop = api.create_merchant(&app.admin(), "other-shop");
    api.charge(&alice.token, "50000").expect(201);
    let payment_id = crate::support::string(&api.pay_from(&alice.token, &shop.token, "10000")["payment_id"]);
    let code = api.payment_code(&alice.token);
    assert_ne!(alice.id, bob.id);

    let merchant_body = json!({"login": "intruder", "password": PASSWORD, "name": "Intruder",
                               "business_number": "214-86-99999", "bank_account": "004-21-99999-01"});
    let refunds_path = format!("/v1/payments/{payment_id}/refunds");
    let endpoints: Vec<(Role, &str, &str, Option<Value>)> = vec![
        (Role::Citizen, "GET", "/v1/wallet", None),
        (Role::Citizen, "POST", "/v1/wallet/charges", Some(amount_body("1000"))),
        (Role::Citizen, "POST", "/v1/wallet/gifts", Some(json!({"to_wallet_id": bob.wallet_id, "amount": "1000"}))),
        (Role::Citizen, "POST", "/v1/wallet/payment-codes", None),
        (Role::Citizen, "GET", "/v1/wallet/transactions", None),
        (Role::Merchant, "POST", "/v1/payments", Some(json!({"payment_code": code, "amount": "1000"}))),
        (Role::Merchant, "POST", &refunds_path, Some(amount_body("1000"))),
        (Role::Merchant, "GET", "/v1/merchant/sales?date=2030-01-10", None),
        (Role::Admin, "POST", "/v1/admin/merchants", Some(merchant_body.clone())),
        (Role::Admin, "GET", "/v1/admin/policy", None),
        (
            Role::Admin,
            "PUT",
            "/v1/admin/policy",
            Some(json!({"cashback_rate": "1", "cashback_monthly_spend_cap": "1",
            "monthly_charge_limit": "1", "holding_limit": "1", "merchant_fee_rate": "1"})),
        ),
        (Role::Admin, "POST", "/v1/admin/cashback-budget/top-ups", Some(amount_body("1000"))),
        (Role::Admin, "GET", "/v1/admin/cashback-budget", None),
        (Role::Admin, "POST", "/v1/admin/settlements", Some(json!({"business_date": "2030-01-09"}))),
        (Role::Admin, "GET", "/v1/admin/settlements/2030-01-09", None),
        (Role::Admin, "GET", "/v1/admin/ledger/trial-balance", None),
        (Role::Admin, "GET", "/v1/admin/admission", None),
        (Role::Admin, "PUT", "/v1/admin/test-clock", Some(json!({"now": "2030-02-10T01:00:00Z"}))),
    ];
    let admin = app.admin();
    let tokens = [(Role::Citizen, &alice.token), (Role::Merchant, &shop.token), (Role::Admin, &admin)];
    for (role, method, path, body) in &endpoints {
        let body = body.as_ref().map_or(Body::Empty, Body::Json);
        let key = new_key();
        let headers = [("Idempotency-Key", key.as_str())];
        api.send(method, path, "", body, &headers).expect_error(401, "unauthorized");
        for (other_role, token) in &tokens {
            if other_role != role {
                api.send(method, path, token, body, &headers).expect_error(403, "forbidden");
            }
        }
    }

    // Nothing the refused requests asked for happened.
    let wallet = api.wallet(&alice.token);
    assert_eq!((&wallet["balance"], &wallet["month"]), (&json!("41000"), &json!("2030-01")), "{wallet}");
    assert_eq!(api.balance(&bob.token), "0");
    let policy: serde_json::Map<String, Value> =
        POLICY_STANDARD.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    assert_eq!(api.get("/v1/admin/policy", &admin).expect(200), Value::Object(policy));
    assert_eq!(api.get("/v1/admin/cashback-budget", &admin).expect(200)["funded"], "1000");
    api.get("/v1/admin/settlements/2030-01-09", &admin).expect_error(404, "not_found");
    api.post("/v1/admin/merchants", &admin, &merchant_body, &[]).expect(201);
    assert_eq!(api.pay(&shop.token, &code, "1000").expect(201)["amount"], "1000", "a refused payment used the code");
    assert_eq!(api.refund(&shop.token, &payment_id, "10000").expect(201)["cashback_reversed"], "1000");

    // Another's data is invisible.
    let bobs_history = api.history(&bob.token, "");
    assert_eq!(bobs_history["items"], json!([]), "{bobs_history}");
    api.refund(&other_shop.token, &payment_id, "1").expect_error(404, "not_found");
    let sales = api.get("/v1/merchant/sales?date=2030-01-10", &other_shop.token).expect(200);
    assert_eq!((&sales["payments_count"], &sales["net"]), (&json!(0), &json!("0")), "{sales}");

    assert_eq!(api.delete("/v1/sessions/current", &other_shop.token).status, 204);
    app.assert_books_balance();
}

scenarios!(endpoints_admit_only_their_role);
