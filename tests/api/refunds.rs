//! Refunds: proportional cashback reversal, the full-refund remainder, bounds, and merchant sales.

use serde_json::json;

use crate::support::{history_rows, rows, string, unknown_id_like, Backend, TestApp};

fn refunds_reverse_cashback_in_proportion(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("1000000");
    let alice = api.register_citizen("alice");
    let shop = api.create_merchant(&app.admin(), "shop");
    let other_shop = api.create_merchant(&app.admin(), "other-shop");
    api.charge(&alice.token, "100000").expect(201);
    let payment = api.pay_from(&alice.token, &shop.token, "12345");
    assert_eq!(payment["cashback"], "1234");
    let payment_id = string(&payment["payment_id"]);

    // floor(1234 * 1000 / 12345) = 99
    let refund = api.refund(&shop.token, &payment_id, "1000").expect(201);
    assert!(!string(&refund["refund_id"]).is_empty());
    assert_eq!((&refund["amount"], &refund["cashback_reversed"]), (&json!("1000"), &json!("99")));
    assert_eq!(api.balance(&alice.token), "89790");
    // Earned is gross; net is what the refund left of it (and the message of a refusal names
    // no internal account).
    let wallet = api.wallet(&alice.token);
    assert_eq!(
        (&wallet["cashback_earned_this_month"], &wallet["cashback_net_this_month"]),
        (&json!("1234"), &json!("1135"))
    );

    api.refund(&other_shop.token, &payment_id, "1").expect_error(404, "not_found");
    api.refund(&shop.token, &payment_id, "11346").expect_error(422, "refund_exceeds_payment");

    // The refund completing the payment reverses all the rest: 1234 - 99.
    let refund = api.refund(&shop.token, &payment_id, "11345").expect(201);
    assert_eq!(refund["cashback_reversed"], "1135");
    api.refund(&shop.token, &payment_id, "1").expect_error(422, "refund_exceeds_payment");

    let wallet = api.wallet(&alice.token);
    assert_eq!(wallet["balance"], "100000");
    assert_eq!(wallet["cashback_eligible_spend_remaining"], "500000", "a full refund gives the eligible spend back");
    assert_eq!(
        (&wallet["cashback_earned_this_month"], &wallet["cashback_net_this_month"]),
        (&json!("1234"), &json!("0"))
    );
    let budget = api.get("/v1/admin/cashback-budget", &app.admin()).expect(200);
    assert_eq!(budget, json!({"funded": "1000000", "paid_out": "1234", "reversed": "1234", "remaining": "1000000"}));
    let history = history_rows(&api.history(&alice.token, "limit=4"));
    assert_eq!(
        history,
        rows(&[
            ("cashback_reversal", "-1135", "100000"),
            ("refund", "11345", "101135"),
            ("cashback_reversal", "-99", "89790"),
            ("refund", "1000", "89889"),
        ])
    );

    assert_eq!(api.pay_from(&alice.token, &shop.token, "5000")["cashback"], "500");
    let sales = api.get("/v1/merchant/sales?date=2030-01-10", &shop.token).expect(200);
    assert_eq!(
        sales,
        json!({
            "business_date": "2030-01-10", "payments_count": 2, "payments_amount": "17345",
            "refunds_count": 2, "refunds_amount": "12345", "net": "5000",
        })
    );
    let empty = json!({
        "business_date": "2030-01-10", "payments_count": 0, "payments_amount": "0",
        "refunds_count": 0, "refunds_amount": "0", "net": "0",
    });
    assert_eq!(api.get("/v1/merchant/sales?date=2030-01-10", &other_shop.token).expect(200), empty);
    let day_before = api.get("/v1/merchant/sales?date=2030-01-09", &shop.token).expect(200);
    assert_eq!((&day_before["payments_count"], &day_before["net"]), (&json!(0), &json!("0")));

    api.refund(&shop.token, &unknown_id_like(&payment_id), "1").expect_error(404, "not_found");
    app.assert_books_balance();
}

scenarios!(refunds_reverse_cashback_in_proportion);
