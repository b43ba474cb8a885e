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

scenarios!(settlement_closes_a_day_with_a_csv_file, negative_net_is_carried_into_the_next_close);
