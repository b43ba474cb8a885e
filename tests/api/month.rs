//! Months follow Korea Standard Time: 2030-01-31T15:00:00Z is the first instant of 2030-02.

use serde_json::json;

use crate::support::{Backend, TestApp};

fn monthly_limits_reset_at_kst_midnight(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_monthly_spend_cap", "20000")]);
    app.top_up_budget("100000");
    let mut alice = api.register_citizen("alice");
    let mut shop = api.create_merchant(&app.admin(), "shop");

    app.set_clock("2030-01-31T14:00:00Z");
    alice.relogin(api);
    shop.relogin(api);
    api.charge(&alice.token, "2000000").expect(201);
    assert_eq!(api.pay_from(&alice.token, &shop.token, "20000")["cashback"], "2000");
    api.charge(&alice.token, "1").expect_error(422, "limit_exceeded");
    app.set_clock("2030-01-31T14:59:59Z");
    alice.relogin(api);
    shop.relogin(api);
    api.charge(&alice.token, "1").expect_error(422, "limit_exceeded");
    let wallet = api.wallet(&alice.token);
    assert_eq!((&wallet["month"], &wallet["charge_limit_remaining"]), (&json!("2030-01"), &json!("0")));
    assert_eq!(wallet["cashback_eligible_spend_remaining"], "0");

    app.set_clock("2030-01-31T15:00:00Z");
    alice.relogin(api);
    shop.relogin(api);
    let wallet = api.wallet(&alice.token);
    assert_eq!(
        wallet,
        json!({
            "wallet_id": alice.wallet_id, "balance": "1982000", "currency": "KRW", "month": "2030-02",
            "charged_this_month": "0", "charge_limit_remaining": "2000000",
            "cashback_earned_this_month": "0", "cashback_net_this_month": "0",
            "cashback_eligible_spend_remaining": "20000",
            // December's cashback is in the bonus purse, the rest of the won charged in own.
            "purses": {"own": "1980000", "bonus": "2000", "allowances": []},
            "charge_bonus": null,
        })
    );
    assert_eq!(api.charge(&alice.token, "1000").expect(201)["balance"], "1983000");
    app.assert_books_balance();
}

scenarios!(monthly_limits_reset_at_kst_midnight);
