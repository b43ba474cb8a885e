//! Daily settlement: closing a business date, the fee, the CSV file, and negative carry-over.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::{string, Backend, Merchant, TestApp};

const CSV_HEADER: &str = "business_date,merchant_id,merchant_name,business_number,bank_account,payments_count,\
                          payments_amount,refunds_count,refunds_amount,fee,net_payable";

/// `POST /v1/admin/settlements` for `date`.
fn close(app: &TestApp, date: &str) -> crate::support::Reply {
    app.api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": date}), &[])
}

/// The per-merchant objects of a settlement's JSON form, by merchant id. They sit in an array
/// field of the top-level object (the contract does not name it).
#[track_caller]
fn rows_by_merchant(app: &TestApp, date: &str) -> BTreeMap<String, Value> {
    let settlement = app.api.get(&format!("/v1/admin/settlements/{date}"), &app.admin()).expect(200);
    assert_eq!(settlement["business_date"], date, "{settlement}");
    let arrays = settlement.as_object().into_iter().flat_map(|fields| fields.values()).filter_map(Value::as_array);
    let rows = arrays.flatten().filter(|row| row.get("merchant_id").is_some());
    rows.map(|row| (string(&row["merchant_id"]), row.clone())).collect()
}

/// Asserts a merchant's `(carried_in, net_payable)` in the JSON form.
#[track_caller]
fn assert_carry(rows: &BTreeMap<String, Value>, merchant: &Merchant, carried_in: &str, net_payable: &str) {
    let row = rows.get(&merchant.id).unwrap_or_else(|| panic!("no row for merchant {}: {rows:?}", merchant.id));
    assert_eq!((&row["carried_in"], &row["net_payable"]), (&json!(carried_in), &json!(net_payable)), "{row}");
}

/// Asserts the CSV form is exactly the header and `lines`, given as `(merchant, line)` and
/// expected in merchant id order. Either line ending is accepted if used throughout.
#[track_caller]
fn assert_csv(app: &TestApp, date: &str, mut lines: Vec<(&Merchant, String)>) {
    let reply = app.api.send(
        "GET",
        &format!("/v1/admin/settlements/{date}"),
        &app.admin(),
        crate::support::Body::Empty,
        &[("Accept", "text/csv")],
    );
    assert_eq!(reply.status, 200, "{reply}");
    assert!(reply.header("content-type").starts_with("text/csv"), "{reply}");
    lines.sort_by(|(a, _), (b, _)| (a.id.len(), &a.id).cmp(&(b.id.len(), &b.id)));
    let line_end = if reply.text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut expected = format!("{CSV_HEADER}{line_end}");
    for (_, line) in lines {
        expected.push_str(&line);
        expected.push_str(line_end);
    }
    assert_eq!(reply.text, expected);
}

/// A merchant's expected CSV line: `name_field` as it must appear (quoted where RFC 4180 requires),
/// `figures` from `payments_count` on.
fn csv_line<'a>(date: &str, merchant: &'a Merchant, name_field: &str, figures: &str) -> (&'a Merchant, String) {
    let (id, business_number, bank_account) = (&merchant.id, &merchant.business_number, &merchant.bank_account);
    (merchant, format!("{date},{id},{name_field},{business_number},{bank_account},{figures}"))
}

fn settlement_closes_a_day_with_a_csv_file(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_rate", "0"), ("merchant_fee_rate", "0.01")]);
    let mut alice = api.register_citizen("alice");
    let hanbit = api.create_merchant_named(&app.admin(), "hanbit", "한빛 Bakery, Main St");
    let bean = api.create_merchant_named(&app.admin(), "bean", "Cafe \"Bean\"");
    api.charge(&alice.token, "200000").expect(201);

    let first = api.pay_from(&alice.token, &hanbit.token, "100000");
    api.pay_from(&alice.token, &hanbit.token, "50000");
    api.refund(&hanbit.token, &string(&first["payment_id"]), "20000").expect(201);
    api.pay_from(&alice.token, &bean.token, "10050");

    close(&app, "2030-01-10").expect_error(422, "date_not_closed");
    close(&app, "2030-01-11").expect_error(422, "date_not_closed");
    let quiet_day = close(&app, "2030-01-09").expect(201);
    assert_eq!(quiet_day, json!({"business_date": "2030-01-09", "merchants": 0, "total_net_payable": "0"}));
    assert_csv(&app, "2030-01-09", vec![]);

    app.set_clock("2030-01-11T01:00:00Z");
    alice.relogin(api);
    // hanbit: fee floor(150000 * 0.01) = 1500, net 150000 - 20000 - 1500 = 128500;
    // bean: fee floor(100.5) = 100, net 9950.
    let closed = close(&app, "2030-01-10").expect(201);
    assert_eq!(closed, json!({"business_date": "2030-01-10", "merchants": 2, "total_net_payable": "138450"}));
    assert_eq!(close(&app, "2030-01-10").expect(200), closed, "closing again answers the first close");

    let rows = rows_by_merchant(&app, "2030-01-10");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_carry(&rows, &hanbit, "0", "128500");
    assert_carry(&rows, &bean, "0", "9950");
    assert_csv(
        &app,
        "2030-01-10",
        vec![
            csv_line("2030-01-10", &hanbit, "\"한빛 Bakery, Main St\"", "2,150000,1,20000,1500,128500"),
            csv_line("2030-01-10", &bean, "\"Cafe \"\"Bean\"\"\"", "1,10050,0,0,100,9950"),
        ],
    );

    for unclosed in ["2030-01-08", "2030-01-11"] {
        api.get(&format!("/v1/admin/settlements/{unclosed}"), &app.admin()).expect_error(404, "not_found");
    }
    assert_eq!(api.balance(&alice.token), "59950");
    app.assert_books_balance();
}

fn negative_net_is_carried_into_the_next_close(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_rate", "0"), ("merchant_fee_rate", "0.01")]);
    let mut alice = api.register_citizen("alice");
    let mut steady = api.create_merchant(&app.admin(), "steady");
    let mut refunder = api.create_merchant(&app.admin(), "refunder");
    api.charge(&alice.token, "100000").expect(201);
    let sold = api.pay_from(&alice.token, &refunder.token, "10050");

    app.set_clock("2030-01-11T01:00:00Z");
    alice.relogin(api);
    steady.relogin(api);
    refunder.relogin(api);
    close(&app, "2030-01-10").expect(201);
    api.pay_from(&alice.token, &steady.token, "5000");
    api.refund(&refunder.token, &string(&sold["payment_id"]), "10050").expect(201);

    app.set_clock("2030-01-12T01:00:00Z");
    alice.relogin(api);
    steady.relogin(api);
    refunder.relogin(api);
    assert_eq!(close(&app, "2030-01-11").expect(201)["merchants"], 2);
    let rows = rows_by_merchant(&app, "2030-01-11");
    assert_carry(&rows, &steady, "0", "4950");
    assert_carry(&rows, &refunder, "0", "-10050");
    let (steady_line, refunder_line) = ("1,5000,0,0,50,4950", "0,0,1,10050,0,-10050");
    assert_csv(
        &app,
        "2030-01-11",
        vec![
            csv_line("2030-01-11", &steady, &steady.name, steady_line),
            csv_line("2030-01-11", &refunder, &refunder.name, refunder_line),
        ],
    );
    api.pay_from(&alice.token, &refunder.token, "30000");

    // The carry is taken once, by the next close with activity: 30000 - 300 - 10050.
    app.set_clock("2030-01-13T01:00:00Z");
    alice.relogin(api);
    steady.relogin(api);
    refunder.relogin(api);
    let closed = close(&app, "2030-01-12").expect(201);
    assert_eq!(closed, json!({"business_date": "2030-01-12", "merchants": 1, "total_net_payable": "19650"}));
    assert_carry(&rows_by_merchant(&app, "2030-01-12"), &refunder, "-10050", "19650");
    api.pay_from(&alice.token, &refunder.token, "1000");

    app.set_clock("2030-01-14T01:00:00Z");
    alice.relogin(api);
    steady.relogin(api);
    refunder.relogin(api);
    assert_eq!(close(&app, "2030-01-13").expect(201)["total_net_payable"], "990");
    assert_carry(&rows_by_merchant(&app, "2030-01-13"), &refunder, "0", "990");
    assert_eq!(api.balance(&alice.token), "64000");
    app.assert_books_balance();
}

/// A merchant named `=HYPERLINK(…)` or a bank account `@SUM(1)` landed as a live formula when
/// finance opened the settlement file: text cells a spreadsheet would run start with `'`.
/// And a business number is ten digits where merchants are created through the API.
fn the_settlement_file_is_safe_to_open_in_a_spreadsheet(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_rate", "0")]);
    let admin = app.admin();
    let name = "=HYPERLINK(\"http://x\",\"click\")";
    let merchant = |login: &str, business_number: &str, bank_account: &str| {
        api.post(
            "/v1/admin/merchants",
            &admin,
            &json!({"login": login, "password": crate::support::PASSWORD, "name": name,
                    "business_number": business_number, "bank_account": bank_account}),
            &[],
        )
    };
    for bad in ["1", "123-45-6789", "12345678901", "123-456-7890", "=1+1", "123 45 67890", "１２３４５６７８９０"]
    {
        let reply = merchant("shop", bad, "004-21-00001-01");
        reply.expect_error(422, "validation_failed");
        assert!(string(&reply.json["error"]["message"]).contains("123-45-67890"), "{reply}");
    }
    let created = merchant("shop", "1234567890", "@SUM(1)").expect(201);
    let dashed = merchant("shop2", "123-45-67890", "+82-10").expect(201);
    let shop = crate::support::Merchant {
        login: "shop".into(),
        id: string(&created["merchant_id"]),
        token: api.login("shop", crate::support::PASSWORD),
        name: name.into(),
        business_number: "1234567890".into(),
        bank_account: "@SUM(1)".into(),
    };
    let shop2_token = api.login("shop2", crate::support::PASSWORD);
    let mut alice = api.register_citizen("alice");
    api.charge(&alice.token, "5000").expect(201);
    api.pay_from(&alice.token, &shop.token, "1000");
    api.pay_from(&alice.token, &shop2_token, "500");
    app.set_clock("2030-01-11T01:00:00Z");
    alice.relogin(api);
    close(&app, "2030-01-10").expect(201);
    let reply = api.send(
        "GET",
        "/v1/admin/settlements/2030-01-10",
        &app.admin(),
        crate::support::Body::Empty,
        &[("Accept", "text/csv")],
    );
    assert_eq!(reply.status, 200, "{reply}");
    let formula = "\"'=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\"";
    let first = format!("2030-01-10,{},{formula},1234567890,'@SUM(1),1,1000,0,0,0,1000", shop.id);
    let second =
        format!("2030-01-10,{},{formula},123-45-67890,'+82-10,1,500,0,0,0,500", string(&dashed["merchant_id"]));
    for line in [&first, &second] {
        assert!(reply.text.lines().any(|row| row == line), "expected {line}\nin\n{}", reply.text);
    }
    // The JSON form keeps the names as they are.
    let rows = rows_by_merchant(&app, "2030-01-10");
    assert_eq!(rows[&shop.id]["merchant_name"], name);
    assert_eq!(rows[&shop.id]["bank_account"], "@SUM(1)");
}

/// A past business date with activity left open is invisible until merchants call: from 06:00
/// KST of the next day the status is degraded with `settlement_overdue`, and the closed dates
/// are listed with their totals.
fn an_unclosed_business_day_degrades_the_status(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_rate", "0"), ("merchant_fee_rate", "0.01")]);
    let mut alice = api.register_citizen("alice");
    let mut shop = api.create_merchant(&app.admin(), "shop");
    api.charge(&alice.token, "50000").expect(201);
    api.pay_from(&alice.token, &shop.token, "10000");
    let reasons = |app: &TestApp| -> Vec<String> {
        let status = app.api.get("/v1/admin/status", &app.admin()).expect(200);
        status["reasons"].as_array().unwrap().iter().map(|reason| string(&reason["code"])).collect()
    };
    assert!(!reasons(&app).contains(&"settlement_overdue".to_owned()));
    // 05:59 KST the next day: not overdue yet.
    app.set_clock("2030-01-10T20:59:00Z");
    assert!(!reasons(&app).contains(&"settlement_overdue".to_owned()), "{:?}", reasons(&app));
    // 06:00 KST: overdue, said with the date and what to do.
    app.set_clock("2030-01-10T21:00:00Z");
    let status = api.get("/v1/admin/status", &app.admin()).expect(200);
    assert_eq!(status["status"], "degraded", "{status}");
    let overdue = status["reasons"].as_array().unwrap().iter().find(|reason| reason["code"] == "settlement_overdue");
    let message = string(&overdue.unwrap_or_else(|| panic!("no settlement_overdue: {status}"))["message"]);
    assert!(message.contains("2030-01-10") && message.contains("POST /v1/admin/settlements"), "{message}");
    // A day without activity is never overdue; the oldest open day is named first.
    app.set_clock("2030-01-13T01:00:00Z");
    alice.relogin(api);
    shop.relogin(api);
    api.pay_from(&alice.token, &shop.token, "2000");
    app.set_clock("2030-01-14T01:00:00Z");
    let status = api.get("/v1/admin/status", &app.admin()).expect(200);
    assert!(status.to_string().contains("business date 2030-01-10 had payments"), "{status}");
    close(&app, "2030-01-10").expect(201);
    let status = api.get("/v1/admin/status", &app.admin()).expect(200);
    assert!(status.to_string().contains("business date 2030-01-13 had payments"), "{status}");
    close(&app, "2030-01-13").expect(201);
    assert!(!reasons(&app).contains(&"settlement_overdue".to_owned()), "{:?}", reasons(&app));

    let listed = api.get("/v1/admin/settlements?from=2030-01-01&to=2030-01-31", &app.admin()).expect(200);
    let items = listed["items"].as_array().unwrap();
    let dates: Vec<String> = items.iter().map(|item| string(&item["business_date"])).collect();
    assert_eq!(dates, ["2030-01-10", "2030-01-13"], "{listed}");
    assert_eq!(
        (&items[0]["merchants"], &items[0]["total_net_payable"], &items[0]["total_fee"]),
        (&json!(1), &json!("9900"), &json!("100")),
        "{listed}"
    );
    assert!(string(&items[1]["closed_at"]).starts_with("2030-01-14"), "{listed}");
    let listed = api.get("/v1/admin/settlements?from=2030-01-11&to=2030-01-12", &app.admin()).expect(200);
    assert_eq!(listed["items"], json!([]), "{listed}");
    for query in ["from=2030-01-31&to=2030-01-01", "from=2030-01-01", "from=2029-01-01&to=2030-01-02", "from=x&to=y"] {
        api.get(&format!("/v1/admin/settlements?{query}"), &app.admin()).expect_error(422, "validation_failed");
    }
    alice.relogin(api);
    api.get("/v1/admin/settlements?from=2030-01-01&to=2030-01-31", &alice.token).expect_error(403, "forbidden");
}

scenarios!(
    settlement_closes_a_day_with_a_csv_file,
    negative_net_is_carried_into_the_next_close,
    the_settlement_file_is_safe_to_open_in_a_spreadsheet,
    an_unclosed_business_day_degrades_the_status
);
