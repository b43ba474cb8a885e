//! The operations of the city console and the merchant portal (issue 19; docs/API.md,
//! "Operations"): the lists of merchants and citizens, a merchant's suspension, a wallet's lock,
//! more admins, one's own password, and a merchant's own settlement lines and payments. Each
//! state change is looked for in the audit log with its Idempotency-Key.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{new_key, string, Backend, Client, Merchant, TestApp, ADMIN_LOGIN, PASSWORD};

scenarios!(
    merchants_and_citizens_are_listed_searched_and_walked_page_by_page,
    a_suspended_merchant_takes_no_payment_but_refunds_and_is_settled,
    a_locked_wallet_loses_its_sessions_and_pays_nothing_but_keeps_its_balance,
    a_second_admin_acts_and_anyone_changes_their_own_password,
    a_merchant_sees_its_own_settlement_lines_and_payments_only,
);

/// The test clock's first three business dates (it starts at 10:00 KST on the first).
const DAY_1: &str = "2030-01-10";
const DAY_2: &str = "2030-01-11";
const DAY_3: &str = "2030-01-12";

/// Walks a list from its first page, `limit` rows a page; returns the logins in the order seen
/// and asserts each page has at most `limit` rows and only the last a null cursor.
#[track_caller]
fn walk(api: &Client, token: &str, path: &str, limit: usize) -> Vec<String> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut logins = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={}", crate::support::query_escape(cursor)));
        }
        let page = api.get(&url, token).expect(200);
        let items = page["items"].as_array().unwrap_or_else(|| panic!("no items: {page}"));
        assert!(items.len() <= limit, "{page}");
        logins.extend(items.iter().map(|item| string(&item["login"])));
        match &page["next_cursor"] {
            Value::Null => return logins,
            next => {
                assert_eq!(items.len(), limit, "a page before the last is full: {page}");
                cursor = Some(string(next));
            }
        }
    }
    panic!("{path}: more than 100 pages")
}

/// The audit rows (newest first) of `action`.
fn audit_rows(app: &TestApp, action: &str) -> Vec<Value> {
    let log = app.api.get("/v1/admin/audit-log?limit=200", &app.admin()).expect(200);
    log["items"].as_array().expect("items").iter().filter(|row| row["action"] == action).cloned().collect()
}

fn merchants_and_citizens_are_listed_searched_and_walked_page_by_page(backend: Backend) {
    let app = TestApp::start(backend);
    let (api, admin) = (&app.api, app.admin());
    // Logins out of order, with the characters a login may hold, and one name that is not its
    // login's prefix.
    let merchant_logins = ["m.zeta", "m-alpha", "m_beta", "m00", "m.alpha", "mx9", "m-gamma"];
    for login in merchant_logins {
        let name = if login == "mx9" { "Bakery Jung".to_owned() } else { format!("Shop {login}") };
        api.create_merchant_named(&admin, login, &name);
    }
    let citizen_logins = ["c.kim", "c-lee", "c_park", "c00", "czz", "c.kang", "d.first"];
    let mut charged = None;
    for login in citizen_logins {
        let citizen = api.register_citizen(login);
        if login == "c.kim" {
            api.charge(&citizen.token, "12000").expect(201);
            charged = Some(citizen);
        }
    }

    // A cursor walk sees everyone once, in login order, whatever the page size.
    let mut merchants_sorted: Vec<String> = merchant_logins.iter().map(|login| login.to_string()).collect();
    merchants_sorted.sort();
    let mut citizens_sorted: Vec<String> = citizen_logins.iter().map(|login| login.to_string()).collect();
    citizens_sorted.sort();
    for limit in [1, 2, 3, 7, 200] {
        assert_eq!(walk(api, &admin, "/v1/admin/merchants", limit), merchants_sorted, "limit {limit}");
        assert_eq!(walk(api, &admin, "/v1/admin/citizens", limit), citizens_sorted, "limit {limit}");
    }
    // A search walks the same way: by login prefix, or a merchant's name prefix.
    assert_eq!(walk(api, &admin, "/v1/admin/merchants?q=m.", 1), ["m.alpha", "m.zeta"]);
    assert_eq!(walk(api, &admin, "/v1/admin/merchants?q=Bakery", 1), ["mx9"]);
    assert_eq!(walk(api, &admin, "/v1/admin/merchants?q=Shop%20m-", 1), ["m-alpha", "m-gamma"]);
    assert_eq!(walk(api, &admin, "/v1/admin/citizens?q=c.", 1), ["c.kang", "c.kim"]);
    assert_eq!(walk(api, &admin, "/v1/admin/citizens?q=c_", 2), ["c_park"]);
    assert!(walk(api, &admin, "/v1/admin/citizens?q=m", 5).is_empty(), "merchants are no citizens");
    assert!(walk(api, &admin, "/v1/admin/merchants?q=bakery", 5).is_empty(), "a search is exact, case and all");

    // An item has every field of the contract.
    let page = api.get("/v1/admin/merchants?q=mx9", &admin).expect(200);
    let item = &page["items"][0];
    let fields: BTreeSet<&str> = item.as_object().expect("an object").keys().map(String::as_str).collect();
    let expected =
        ["merchant_id", "login", "name", "business_number", "bank_account", "category", "annual_revenue", "status"];
    assert_eq!(fields, expected.into_iter().collect(), "{item}");
    assert_eq!((&item["name"], &item["status"]), (&json!("Bakery Jung"), &json!("active")));
    let one = api.get(&format!("/v1/admin/merchants/{}", string(&item["merchant_id"])), &admin).expect(200);
    assert_eq!(&one, item);
    let kim = charged.expect("c.kim registered");
    let citizen = api.get("/v1/admin/citizens/c.kim", &admin).expect(200);
    assert_eq!(
        citizen,
        json!({"citizen_id": kim.id, "login": "c.kim", "wallet_id": kim.wallet_id, "balance": "12000", "status": "active"})
    );
    let listed = api.get("/v1/admin/citizens?q=c.kim", &admin).expect(200);
    assert_eq!(listed["items"], json!([citizen]));

    // Unknown ones are 404; bad parameters 422 naming the field.
    api.get("/v1/admin/merchants/no-such-merchant", &admin).expect_error(404, "not_found");
    api.get("/v1/admin/citizens/nobody", &admin).expect_error(404, "not_found");
    for (path, field) in [
        ("/v1/admin/merchants?limit=0", "limit"),
        ("/v1/admin/citizens?limit=201", "limit"),
        ("/v1/admin/citizens?limit=x", "limit"),
        ("/v1/admin/merchants?q=", "q"),
        (&format!("/v1/admin/citizens?q={}", "a".repeat(65)), "q"),
        ("/v1/admin/citizens?cursor=NOT%20A%20LOGIN", "cursor"),
    ] {
        let reply = api.get(path, &admin);
        reply.expect_error(422, "validation_failed");
        assert!(string(&reply.json["error"]["message"]).contains(field), "{reply}");
    }
    api.get("/v1/admin/citizens?sort=login", &admin).expect_error(422, "validation_failed");
}

fn a_suspended_merchant_takes_no_payment_but_refunds_and_is_settled(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("100000");
    let mut shop = api.create_merchant(&app.admin(), "shop");
    let mut alice = api.register_citizen("alice");
    api.charge(&alice.token, "50000").expect(201);
    let paid = api.pay_from(&alice.token, &shop.token, "10000");
    let payment_id = string(&paid["payment_id"]);

    let key = new_key();
    let path = format!("/v1/admin/merchants/{}/suspension", shop.id);
    let suspended = api.send(
        "PUT",
        &path,
        &app.admin(),
        crate::support::Body::Json(&json!({"reason": "  unpaid registration fee "})),
        &[("Idempotency-Key", &key)],
    );
    let suspended = suspended.expect(200);
    assert_eq!((&suspended["merchant_id"], &suspended["status"]), (&json!(shop.id), &json!("suspended")));
    // Again: unchanged, and not a second audit row.
    assert_eq!(api.put(&path, &app.admin(), &json!({"reason": "again"})).expect(200), suspended);
    api.put(&path, &app.admin(), &json!({"reason": ""})).expect_error(422, "validation_failed");
    api.put(&path, &app.admin(), &json!({"reason": "x".repeat(201)})).expect_error(422, "validation_failed");
    api.put(&path, &app.admin(), &json!({})).expect_error(422, "validation_failed");
    api.put("/v1/admin/merchants/no-such/suspension", &app.admin(), &json!({"reason": "r"}))
        .expect_error(404, "not_found");

    // Payments are refused and change nothing; the code stays good for another merchant.
    let code = api.payment_code(&alice.token);
    api.pay(&shop.token, &code, "5000").expect_error(422, "merchant_suspended");
    assert_eq!(api.balance(&alice.token), "41000");
    let grocer = api.create_merchant(&app.admin(), "grocer");
    api.pay(&grocer.token, &code, "1000").expect(201);
    // Refunds still work, and the day's sales are the merchant's as before.
    api.refund(&shop.token, &payment_id, "4000").expect(201);
    let sales = api.get(&format!("/v1/merchant/sales?date={DAY_1}"), &shop.token).expect(200);
    assert_eq!((&sales["payments_amount"], &sales["refunds_amount"]), (&json!("10000"), &json!("4000")));

    // The close pays the suspended merchant out like any other.
    app.set_clock("2030-01-11T01:00:00Z");
    shop.relogin(api);
    alice.relogin(api);
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": DAY_1}), &[]).expect(201);
    let lines = api.get(&format!("/v1/merchant/settlements?from={DAY_1}&to={DAY_1}"), &shop.token).expect(200);
    assert_eq!(lines["items"][0]["net_payable"], "6000", "{lines}");

    let reinstated = api.delete(&path, &app.admin()).expect(200);
    assert_eq!(reinstated["status"], "active");
    assert_eq!(api.delete(&path, &app.admin()).expect(200), reinstated, "again: unchanged");
    api.pay_from(&alice.token, &shop.token, "3000");

    let suspensions = audit_rows(&app, "merchant_suspended");
    assert_eq!(suspensions.len(), 1, "{suspensions:?}");
    assert_eq!(suspensions[0]["idempotency_key"], json!(key));
    assert_eq!(suspensions[0]["login"], ADMIN_LOGIN);
    assert_eq!(suspensions[0]["detail"], json!({"merchant_id": shop.id, "reason": "unpaid registration fee"}));
    let reinstatements = audit_rows(&app, "merchant_reinstated");
    assert_eq!(reinstatements.len(), 1, "{reinstatements:?}");
    assert_eq!(reinstatements[0]["detail"]["merchant_id"], json!(shop.id));
    app.assert_books_balance();
}

fn a_locked_wallet_loses_its_sessions_and_pays_nothing_but_keeps_its_balance(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let shop = api.create_merchant(&app.admin(), "shop");
    let alice = api.register_citizen("alice");
    let bob = api.register_citizen("bob");
    api.charge(&alice.token, "50000").expect(201);
    api.charge(&bob.token, "5000").expect(201);
    let second_session = api.login("alice", PASSWORD);
    // Shown at the counter before the lock, presented after it.
    let early_code = api.payment_code(&alice.token);

    let key = new_key();
    let locked = api.send(
        "PUT",
        "/v1/admin/citizens/alice/lock",
        &app.admin(),
        crate::support::Body::Json(&json!({"reason": "phone reported lost"})),
        &[("Idempotency-Key", &key)],
    );
    let locked = locked.expect(200);
    assert_eq!(
        locked,
        json!({"citizen_id": alice.id, "login": "alice", "wallet_id": alice.wallet_id, "balance": "50000", "status": "locked"})
    );
    // Every session ends at once.
    api.get("/v1/wallet", &alice.token).expect_error(401, "unauthorized");
    api.get("/v1/wallet", &second_session).expect_error(401, "unauthorized");
    // A login is refused as locked only with the right password.
    api.post("/v1/sessions", "", &json!({"login": "alice", "password": PASSWORD}), &[])
        .expect_error(403, "wallet_locked");
    api.post("/v1/sessions", "", &json!({"login": "alice", "password": "wrong-password"}), &[])
        .expect_error(401, "invalid_credentials");
    // The code shown before the lock pays nothing; the balance is kept and a gift still arrives.
    api.pay(&shop.token, &early_code, "1000").expect_error(422, "wallet_locked");
    api.gift(&bob.token, &alice.wallet_id, "2000").expect(201);
    let held = api.get("/v1/admin/citizens/alice", &app.admin()).expect(200);
    assert_eq!((&held["balance"], &held["status"]), (&json!("52000"), &json!("locked")));
    assert_eq!(api.put("/v1/admin/citizens/alice/lock", &app.admin(), &json!({"reason": "again"})).expect(200), held);
    api.put("/v1/admin/citizens/nobody/lock", &app.admin(), &json!({"reason": "r"})).expect_error(404, "not_found");

    let unlocked = api.delete("/v1/admin/citizens/alice/lock", &app.admin()).expect(200);
    assert_eq!(unlocked["status"], "active");
    let token = api.login("alice", PASSWORD);
    assert_eq!(api.balance(&token), "52000");
    // The refused payment did not use the code up.
    api.pay(&shop.token, &early_code, "1000").expect(201);
    api.charge(&token, "1000").expect(201);

    let locks = audit_rows(&app, "wallet_locked");
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["idempotency_key"], json!(key));
    assert_eq!(locks[0]["detail"]["reason"], "phone reported lost");
    assert_eq!(locks[0]["detail"]["citizen_id"], json!(alice.id));
    assert_eq!(audit_rows(&app, "wallet_unlocked").len(), 1);
    app.assert_books_balance();
}

fn a_second_admin_acts_and_anyone_changes_their_own_password(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let key = new_key();
    let body = json!({"login": "park.clerk", "password": PASSWORD});
    let created = api.post("/v1/admin/admins", &app.admin(), &body, &[("Idempotency-Key", &key)]).expect(201);
    assert_eq!(created["login"], "park.clerk");
    api.post("/v1/admin/admins", &app.admin(), &body, &[]).expect_error(409, "login_taken");
    api.post("/v1/admin/admins", &app.admin(), &json!({"login": "Bad Login", "password": PASSWORD}), &[])
        .expect_error(422, "validation_failed");
    api.post("/v1/admin/admins", &app.admin(), &json!({"login": "short.pw", "password": "short"}), &[])
        .expect_error(422, "validation_failed");
    // The new admin logs in and acts, under its own name in the audit log.
    let clerk = api.login("park.clerk", PASSWORD);
    let shop = api.create_merchant(&clerk, "shop");
    api.get(&format!("/v1/admin/merchants/{}", shop.id), &clerk).expect(200);
    // The first admin was created on the command line (`via` "cli").
    let created_rows: Vec<Value> =
        audit_rows(&app, "admin_created").into_iter().filter(|row| row["via"] == "api").collect();
    assert_eq!(created_rows.len(), 1, "{created_rows:?}");
    assert_eq!(created_rows[0]["login"], ADMIN_LOGIN);
    assert_eq!(created_rows[0]["idempotency_key"], json!(key));
    assert_eq!(created_rows[0]["detail"], json!({"admin_id": created["admin_id"], "login": "park.clerk"}));
    assert_eq!(audit_rows(&app, "merchant_created")[0]["login"], "park.clerk");

    // A citizen's password change: this session stays, the others end.
    let alice = api.register_citizen("alice");
    let other = api.login("alice", PASSWORD);
    let change = |token: &str, current: &str, new: &str| {
        api.post("/v1/me/password", token, &json!({"current_password": current, "new_password": new}), &[])
    };
    change(&alice.token, "not-the-password", "new-password-1").expect_error(401, "invalid_credentials");
    api.get("/v1/wallet", &other).expect(200);
    change(&alice.token, PASSWORD, "short").expect_error(422, "validation_failed");
    api.post("/v1/me/password", &alice.token, &json!({"current_password": PASSWORD}), &[])
        .expect_error(422, "validation_failed");
    assert_eq!(change(&alice.token, PASSWORD, "new-password-1").status, 204);
    api.get("/v1/wallet", &alice.token).expect(200);
    api.get("/v1/wallet", &other).expect_error(401, "unauthorized");
    api.post("/v1/sessions", "", &json!({"login": "alice", "password": PASSWORD}), &[])
        .expect_error(401, "invalid_credentials");
    api.login("alice", "new-password-1");
    // A merchant's and an admin's too; the admin's is audited, without the password.
    assert_eq!(change(&shop.token, PASSWORD, "new-password-2").status, 204);
    api.login("shop", "new-password-2");
    assert_eq!(change(&clerk, PASSWORD, "new-password-3").status, 204);
    api.get("/v1/admin/merchants", &clerk).expect(200);
    let changed = audit_rows(&app, "password_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(
        (&changed[0]["login"], &changed[0]["detail"]),
        (&json!("park.clerk"), &json!({"admin_id": created["admin_id"]}))
    );
    api.login("park.clerk", "new-password-3");
    api.post("/v1/me/password", "", &json!({"current_password": PASSWORD, "new_password": "x-new-password"}), &[])
        .expect_error(401, "unauthorized");
}

/// `GET /v1/merchant/settlements` of `merchant` as JSON items and as CSV text.
fn settlement_forms(api: &Client, merchant: &Merchant, query: &str) -> (Vec<Value>, crate::support::Reply) {
    let path = format!("/v1/merchant/settlements?{query}");
    let items = api.get(&path, &merchant.token).expect(200)["items"].as_array().expect("items").clone();
    let csv = api.send("GET", &path, &merchant.token, crate::support::Body::Empty, &[("Accept", "text/csv")]);
    (items, csv)
}

/// The JSON items written as the CSV must write them.
fn as_csv(items: &[Value]) -> String {
    let fields = ["business_date", "payments_amount", "refunds_amount", "fee", "carried_in", "net_payable"];
    let mut text = format!("{}\n", fields.join(","));
    for item in items {
        let row: Vec<String> = fields.iter().map(|field| string(&item[*field])).collect();
        text.push_str(&format!("{}\n", row.join(",")));
    }
    text
}

fn a_merchant_sees_its_own_settlement_lines_and_payments_only(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("merchant_fee_rate", "0.01")]);
    let mut shop = api.create_merchant(&app.admin(), "shop");
    let mut other = api.create_merchant(&app.admin(), "other");
    let mut alice = api.register_citizen("alice");
    api.charge(&alice.token, "200000").expect(201);
    // Day 1: three payments at shop (one refunded in part), one at the other merchant.
    let mut shop_day_1 = Vec::new();
    for amount in ["10000", "20000", "30000"] {
        shop_day_1.push(string(&api.pay_from(&alice.token, &shop.token, amount)["payment_id"]));
    }
    let other_payment = string(&api.pay_from(&alice.token, &other.token, "7000")["payment_id"]);
    api.refund(&shop.token, &shop_day_1[1], "5000").expect(201);

    // The payments list: its own, newest first, the refund shown, every page walk the same.
    let page = api.get(&format!("/v1/merchant/payments?date={DAY_1}"), &shop.token).expect(200);
    let ids: Vec<String> =
        page["items"].as_array().expect("items").iter().map(|item| string(&item["payment_id"])).collect();
    assert_eq!(ids, shop_day_1.iter().rev().cloned().collect::<Vec<_>>(), "{page}");
    assert_eq!(page["next_cursor"], Value::Null);
    let second = &page["items"][1];
    assert_eq!((&second["amount"], &second["refunded"]), (&json!("20000"), &json!("5000")), "{page}");
    assert!(second["cashback"].is_string() && second["at"].is_string(), "{page}");
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let query = if cursor.is_empty() {
            String::new()
        } else {
            format!("&cursor={}", crate::support::query_escape(&cursor))
        };
        let page = api.get(&format!("/v1/merchant/payments?date={DAY_1}&limit=1{query}"), &shop.token).expect(200);
        walked.extend(page["items"].as_array().expect("items").iter().map(|item| string(&item["payment_id"])));
        match &page["next_cursor"] {
            Value::Null => break,
            next => cursor = string(next),
        }
    }
    assert_eq!(walked, ids);
    let others = api.get(&format!("/v1/merchant/payments?date={DAY_1}"), &other.token).expect(200);
    assert_eq!(others["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(others["items"][0]["payment_id"], json!(other_payment));
    // Today's by default; another day's are not today's.
    assert_eq!(api.get("/v1/merchant/payments", &shop.token).expect(200)["items"], page["items"]);
    assert_eq!(api.get(&format!("/v1/merchant/payments?date={DAY_2}"), &shop.token).expect(200)["items"], json!([]));
    for query in ["date=2030-13-01", "limit=0", "cursor=nonsense", "shop=x"] {
        api.get(&format!("/v1/merchant/payments?{query}"), &shop.token).expect_error(422, "validation_failed");
    }

    // Day 2: only a refund of the rest of day 1's payment at shop: a negative net, carried.
    app.set_clock("2030-01-11T01:00:00Z");
    for merchant in [&mut shop, &mut other] {
        merchant.relogin(api);
    }
    alice.relogin(api);
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": DAY_1}), &[]).expect(201);
    api.refund(&shop.token, &shop_day_1[2], "30000").expect(201);
    // Day 3: a payment that the carry is taken from.
    app.set_clock("2030-01-12T01:00:00Z");
    for merchant in [&mut shop, &mut other] {
        merchant.relogin(api);
    }
    alice.relogin(api);
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": DAY_2}), &[]).expect(201);
    api.pay_from(&alice.token, &shop.token, "50000");
    app.set_clock("2030-01-13T01:00:00Z");
    for merchant in [&mut shop, &mut other] {
        merchant.relogin(api);
    }
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": DAY_3}), &[]).expect(201);

    let (items, csv) = settlement_forms(api, &shop, &format!("from={DAY_1}&to={DAY_3}"));
    let line = |date: &str, paid: &str, refunded: &str, fee: &str, carried: &str, net: &str| {
        json!({"business_date": date, "payments_amount": paid, "refunds_amount": refunded, "fee": fee,
               "carried_in": carried, "net_payable": net})
    };
    assert_eq!(
        items,
        [
            line(DAY_1, "60000", "5000", "600", "0", "54400"),
            line(DAY_2, "0", "30000", "0", "0", "-30000"),
            line(DAY_3, "50000", "0", "500", "-30000", "19500"),
        ]
    );
    assert_eq!(csv.status, 200, "{csv}");
    assert!(csv.header("Content-Type").starts_with("text/csv"), "{}", csv.header("Content-Type"));
    assert_eq!(csv.text, as_csv(&items), "the CSV holds the JSON's rows");
    // The same figures as the city's settlement report of the date.
    let report = api.get(&format!("/v1/admin/settlements/{DAY_3}"), &app.admin()).expect(200);
    assert!(report.to_string().contains("\"net_payable\":\"19500\""), "{report}");
    // The other merchant's are its own; a range shows only the dates in it.
    let (others, others_csv) = settlement_forms(api, &other, &format!("from={DAY_1}&to={DAY_3}"));
    assert_eq!(others, [line(DAY_1, "7000", "0", "70", "0", "6930")]);
    assert_eq!(others_csv.text, as_csv(&others));
    let (middle, _) = settlement_forms(api, &shop, &format!("from={DAY_2}&to={DAY_2}"));
    assert_eq!(middle, [line(DAY_2, "0", "30000", "0", "0", "-30000")]);
    let (none, none_csv) = settlement_forms(api, &shop, "from=2029-01-01&to=2029-12-31");
    assert!(none.is_empty());
    assert_eq!(none_csv.text, as_csv(&[]), "an empty CSV is its header line");
    // At most 366 days, both counted; dates in order.
    settlement_forms(api, &shop, "from=2029-01-12&to=2030-01-12");
    for query in
        ["from=2029-01-11&to=2030-01-12", "from=2030-01-12&to=2030-01-11", "from=2030-01-12", "from=x&to=2030-01-12"]
    {
        api.get(&format!("/v1/merchant/settlements?{query}"), &shop.token).expect_error(422, "validation_failed");
    }
}
