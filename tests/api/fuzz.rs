//! Regressions found by fuzzing (docs/RELIABILITY.md, "Fuzzing"): each test failed before its fix.

use serde_json::json;

use crate::support::{Backend, Body, TestApp, TestServer, PASSWORD};

/// Merchant text fields are limited to 200 characters, as documented, not 200 bytes: a Hangul
/// syllable is 3 bytes of UTF-8, so a 70-syllable name was refused. (Found by schemathesis:
/// a schema-valid name refused with 422.)
fn merchant_text_fields_are_counted_in_characters(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let body = |login: &str, name: String| {
        json!({"login": login, "password": PASSWORD, "name": name, "business_number": "214-86-00001",
               "bank_account": "004-21-00001-01", "category": "빵집"})
    };
    let longest = "빵".repeat(200);
    let created = api.post("/v1/admin/merchants", &app.admin(), &body("bakery.200", longest), &[]).expect(201);
    assert!(created["merchant_id"].is_string(), "{created}");
    // Surrounding spaces are trimmed before counting.
    let padded = format!("  {}  ", "빵".repeat(200));
    api.post("/v1/admin/merchants", &app.admin(), &body("bakery.pad", padded), &[]).expect(201);
    let over = "빵".repeat(201);
    api.post("/v1/admin/merchants", &app.admin(), &body("bakery.201", over), &[])
        .expect_error(422, "validation_failed");
    let control = "빵\u{85}빵".to_owned();
    api.post("/v1/admin/merchants", &app.admin(), &body("bakery.c1", control), &[])
        .expect_error(422, "validation_failed");
}

scenarios!(merchant_text_fields_are_counted_in_characters);

/// A documented path asked with a method it does not take is 405 with `Allow` naming the ones
/// it does (RFC 9110), not 404 as if the path did not exist. (Found by schemathesis's
/// unsupported_method check: TRACE, PATCH and others on every path answered 404.)
#[test]
fn a_documented_path_with_another_method_is_405_with_allow() {
    let server = TestServer::start(Backend::Sqlite);
    let api = server.client();
    for (method, path, allowed) in [
        ("DELETE", "/v1/wallet", "GET"),
        ("PATCH", "/v1/admin/policy", "GET, PUT"),
        ("GET", "/v1/payments", "POST"),
        ("GET", "/v1/payments/0f1e2d3c/refunds", "POST"),
        ("PUT", "/v1/admin/settlements/2025-03-14", "GET"),
        ("TRACE", "/healthz", "GET"),
        ("POST", "/v1/sessions/current", "DELETE"),
    ] {
        let reply = api.send(method, path, "", Body::Empty, &[]);
        reply.expect_error(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), allowed, "{reply}");
    }
    for path in ["/v1/nothing", "/v1/wallet/", "/v1/payments//refunds", "/v1/payments/x/refunds/y"] {
        api.send("GET", path, "", Body::Empty, &[]).expect_error(404, "not_found");
    }
}

/// A body must be a JSON object: serde's derived structs also take an array of the fields'
/// values in order, so `["5"]` charged 5 won and `["<code>", "15000"]` paid. (Found by the
/// request_bodies fuzz target: `["5"]` accepted as a charge.)
fn bodies_that_are_not_objects_are_refused(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let bakery = api.create_merchant(&app.admin(), "bakery");
    api.charge(&alice.token, "10000").expect(201);
    let keyed = [("Idempotency-Key", "array-body")];
    api.send("POST", "/v1/wallet/charges", &alice.token, Body::Raw(br#"["5"]"#), &keyed)
        .expect_error(422, "validation_failed");
    let code = api.payment_code(&alice.token);
    let pay = format!(r#"["{code}", "3000"]"#);
    api.send("POST", "/v1/payments", &bakery.token, Body::Raw(pay.as_bytes()), &keyed)
        .expect_error(422, "validation_failed");
    api.send("POST", "/v1/admin/cashback-budget/top-ups", &app.admin(), Body::Raw(br#"["100"]"#), &keyed)
        .expect_error(422, "validation_failed");
    for body in [&br#""5""#[..], b"5", b"null", b"true"] {
        api.send("POST", "/v1/wallet/charges", &alice.token, Body::Raw(body), &keyed)
            .expect_error(422, "validation_failed");
    }
    assert_eq!(api.balance(&alice.token), "10000", "a refused body moved money");
    app.assert_books_balance();
}

scenarios!(bodies_that_are_not_objects_are_refused);
