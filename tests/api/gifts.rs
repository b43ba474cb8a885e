//! Gifts between wallets.

use serde_json::json;

use crate::support::{history_rows, rows, string, unknown_id_like, Backend, TestApp};

fn gifts_move_money_between_wallets(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let bob = api.register_citizen("bob");
    let carol = api.register_citizen("carol");
    api.charge(&alice.token, "50000").expect(201);

    let gift = api.gift(&alice.token, &bob.wallet_id, "20000").expect(201);
    assert!(!string(&gift["gift_id"]).is_empty());
    assert_eq!((&gift["amount"], &gift["balance"]), (&json!("20000"), &json!("30000")));
    assert_eq!(api.balance(&bob.token), "20000");

    api.gift(&alice.token, &alice.wallet_id, "1000").expect_error(422, "validation_failed");
    api.gift(&alice.token, &unknown_id_like(&bob.wallet_id), "1000").expect_error(404, "not_found");
    let refused = api.gift(&alice.token, &bob.wallet_id, "30001");
    refused.expect_error(422, "insufficient_funds");
    // Said in words a citizen can read: no internal account notation, no wallet id.
    assert!(refused.text.contains("the wallet holds 30000 won"), "{refused}");
    assert!(!refused.text.contains("citizen_wallet") && !refused.text.contains(&alice.wallet_id), "{refused}");
    api.gift(&alice.token, &bob.wallet_id, "1.5").expect_error(422, "invalid_amount");

    // The receiver's holding limit: bob holds 20000 of 50000.
    app.set_policy(&[("holding_limit", "50000")]);
    api.charge(&carol.token, "40000").expect(201);
    api.gift(&carol.token, &bob.wallet_id, "30001").expect_error(422, "limit_exceeded");
    assert_eq!(api.gift(&carol.token, &bob.wallet_id, "30000").expect(201)["balance"], "10000");

    assert_eq!(
        history_rows(&api.history(&bob.token, "")),
        rows(&[("gift_in", "30000", "50000"), ("gift_in", "20000", "20000")])
    );
    assert_eq!(
        history_rows(&api.history(&alice.token, "")),
        rows(&[("gift_out", "-20000", "30000"), ("charge", "50000", "50000")])
    );
    app.assert_books_balance();
}

scenarios!(gifts_move_money_between_wallets);
