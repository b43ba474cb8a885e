//! City admin: merchants, policy, cashback budget, trial balance, admission, test clock.

use serde_json::{json, Value};

use crate::support::{won, Backend, TestApp, PASSWORD};

fn admin_manages_merchants_policy_and_budget(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;

    let body = |login: &str| {
        json!({"login": login, "password": PASSWORD, "name": "Bakery", "business_number": "214-86-00001",
               "bank_account": "004-21-00001-01", "category": "food"})
    };
    let created = api.post("/v1/admin/merchants", &app.admin(), &body("bakery"), &[]).expect(201);
    assert!(created["merchant_id"].is_string(), "{created}");
    api.post("/v1/admin/merchants", &app.admin(), &body("bakery"), &[]).expect_error(409, "login_taken");
    let session = api.post("/v1/sessions", "", &json!({"login": "bakery", "password": PASSWORD}), &[]).expect(201);
    assert_eq!(session["role"], "merchant");

    // A second admin, created through the CLI while the server runs.
    app.server.create_admin("deputy", PASSWORD);
    let session = api.post("/v1/sessions", "", &json!({"login": "deputy", "password": PASSWORD}), &[]).expect(201);
    assert_eq!(session["role"], "admin");

    let policy = json!({
        "cashback_rate": "0.05", "cashback_monthly_spend_cap": "300000", "monthly_charge_limit": "1000000",
        "holding_limit": "1500000", "merchant_fee_rate": "0.015",
    });
    assert_eq!(api.put("/v1/admin/policy", &app.admin(), &policy).expect(200), policy);
    assert_eq!(api.get("/v1/admin/policy", &app.admin()).expect(200), policy);
    let with = |name: &str, value: &str| -> Value {
        let mut changed = policy.clone();
        changed[name] = json!(value);
        changed
    };
    for (name, value) in [("cashback_rate", "1.5"), ("merchant_fee_rate", "-0.1"), ("cashback_rate", "abc")] {
        api.put("/v1/admin/policy", &app.admin(), &with(name, value)).expect_error(422, "validation_failed");
    }
    // A negative money figure: validation_failed, or invalid_amount by the money convention.
    let negative_cap = api.put("/v1/admin/policy", &app.admin(), &with("cashback_monthly_spend_cap", "-1"));
    assert!(
        negative_cap.status == 422
            && ["validation_failed", "invalid_amount"]
                .contains(&negative_cap.json["error"]["code"].as_str().unwrap_or("")),
        "{negative_cap}"
    );
    assert_eq!(api.get("/v1/admin/policy", &app.admin()).expect(200), policy, "a refused policy changed the policy");
    assert_eq!(
        api.put("/v1/admin/policy", &app.admin(), &with("cashback_rate", "1")).expect(200)["cashback_rate"],
        "1"
    );

    let empty = json!({"funded": "0", "paid_out": "0", "reversed": "0", "remaining": "0"});
    assert_eq!(api.get("/v1/admin/cashback-budget", &app.admin()).expect(200), empty);
    assert_eq!(
        app.top_up_budget("250000"),
        json!({"funded": "250000", "paid_out": "0", "reversed": "0", "remaining": "250000"})
    );
    let budget = app.top_up_budget("50000");
    assert_eq!(budget, json!({"funded": "300000", "paid_out": "0", "reversed": "0", "remaining": "300000"}));
    assert_eq!(api.get("/v1/admin/cashback-budget", &app.admin()).expect(200), budget);
    api.post_keyed("/v1/admin/cashback-budget/top-ups", &app.admin(), &json!({"amount": "0"}))
        .expect_error(422, "invalid_amount");

    let alice = api.register_citizen("alice");
    api.charge(&alice.token, "10000").expect(201);
    let trial = api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200);
    let accounts = trial["accounts"].as_array().unwrap_or_else(|| panic!("{trial}"));
    assert!(accounts.iter().all(|account| account["kind"].is_string()), "{trial}");
    let moved: i128 = accounts.iter().map(|account| won(&account["balance"]).abs()).sum();
    assert_eq!(moved, 2 * (300000 + 10000), "the top-ups and the charge are each booked once on two sides: {trial}");
    app.assert_books_balance();

    let admission = api.get("/v1/admin/admission", &app.admin()).expect(200);
    assert_eq!(admission["session_capacity"], 1000, "{admission}");
    for field in ["active_sessions", "waiting", "admitted_total", "shed_total"] {
        assert!(admission[field].is_u64(), "admission lacks {field}: {admission}");
    }

    let backward = api.put("/v1/admin/test-clock", &app.admin(), &json!({"now": "2030-01-09T00:00:00Z"}));
    assert_eq!(backward.status, 422, "the test clock never moves backward: {backward}");
}

scenarios!(admin_manages_merchants_policy_and_budget);
