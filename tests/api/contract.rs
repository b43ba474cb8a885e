//! The served OpenAPI document as a client generator reads it, and the request rules every
//! endpoint shares: answers fit the document (checked by a real JSON Schema validator, formats
//! included), error codes and operation ids are what programs can rely on, a repeated JSON key
//! is refused, and every answer carries an `X-Request-Id` that is also in the log.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{amount_body, new_key, string, Backend, Body, Reply, TestApp};

/// The served document.
pub(crate) fn document(app: &TestApp) -> Value {
    app.api.get("/openapi.json", "").expect(200)
}

/// Asserts that `reply` fits what the document says `method path` answers with its status:
/// the schema of that answer, with `$ref`s resolved in the document and formats checked (a
/// client generated from the document checks `format: uuid`, `date-time` and the rest).
#[track_caller]
pub(crate) fn assert_fits(document: &Value, method: &str, path: &str, reply: &Reply) {
    // A JSON pointer in a URI fragment: `~` and `/` escaped, then the braces percent-encoded.
    let escaped = path.replace('~', "~0").replace('/', "~1").replace('{', "%7B").replace('}', "%7D");
    let status = reply.status.to_string();
    let answer = &document["paths"][path][method]["responses"][&status];
    assert!(answer.is_object(), "the document has no {status} answer for {method} {path}: {reply}");
    assert!(
        answer["content"]["application/json"]["schema"].is_object(),
        "the document gives no JSON schema for {method} {path} {status}"
    );
    let pointer = format!("#/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema");
    // The whole document is the schema's root, so `#/components/schemas/…` resolves in it; its
    // other members are unknown keywords to JSON Schema and ignored.
    let mut schema = document.clone();
    schema["$ref"] = json!(pointer);
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("the document is not a valid schema for {method} {path}: {error}"));
    let errors: Vec<String> =
        validator.iter_errors(&reply.json).map(|error| format!("{} at {}", error, error.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} answered what the document does not allow: {errors:?}\n{reply}");
}

/// The outgoing operator's ids are any string of 1 to 64 characters (`W-1`, `M-1`, `T-2`): every
/// answer a migrated citizen, merchant and admin gets must fit the document, or a generated
/// client refuses it ("badly formed hexadecimal UUID string").
fn answers_to_migrated_users_fit_the_served_document(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let bundle = crate::handover::import::snapshot();
    let dir = tempfile::tempdir().expect("temporary directory");
    bundle.write(dir.path());
    let output = app.server.run(&["handover", "import", dir.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let document = document(&app);
    let check = |method: &str, path: &str, reply: Reply| -> Value {
        assert_fits(&document, method, path, &reply);
        reply.json
    };

    let citizen = api.login("citizen1", "old-pass-argon2id");
    let wallet = check("get", "/v1/wallet", api.get("/v1/wallet", &citizen));
    assert_eq!(wallet["wallet_id"], "W-1", "{wallet}");
    check("get", "/v1/wallet/transactions", api.get("/v1/wallet/transactions?limit=10", &citizen));
    check("post", "/v1/wallet/charges", api.post_keyed("/v1/wallet/charges", &citizen, &amount_body("1000")));
    let gift = json!({"to_wallet_id": "W-2", "amount": "500"});
    check("post", "/v1/wallet/gifts", api.post_keyed("/v1/wallet/gifts", &citizen, &gift));
    let code =
        check("post", "/v1/wallet/payment-codes", api.post_keyed("/v1/wallet/payment-codes", &citizen, &json!({})));

    let shop = api.login("oldshop", "old-pass-merchant");
    let pay = json!({"payment_code": code["code"], "amount": "1000"});
    check("post", "/v1/payments", api.post_keyed("/v1/payments", &shop, &pay));
    let refund = api.post_keyed("/v1/payments/T-2/refunds", &shop, &amount_body("1000"));
    check("post", "/v1/payments/{payment_id}/refunds", refund);
    check("get", "/v1/merchant/sales", api.get("/v1/merchant/sales", &shop));
    check(
        "post",
        "/v1/payments/{payment_id}/refunds",
        api.post_keyed("/v1/payments/T-404/refunds", &shop, &amount_body("1")),
    );

    app.set_clock("2030-01-11T01:00:00Z");
    let admin = app.admin();
    let close = api.post_keyed("/v1/admin/settlements", &admin, &json!({"business_date": "2030-01-10"}));
    assert_eq!(close.status, 201, "{close}");
    check("post", "/v1/admin/settlements", close);
    let settlement =
        check("get", "/v1/admin/settlements/{business_date}", api.get("/v1/admin/settlements/2030-01-10", &admin));
    assert_eq!(settlement["merchants"][0]["merchant_id"], "M-1", "{settlement}");
    check("get", "/v1/admin/settlements", api.get("/v1/admin/settlements?from=2030-01-01&to=2030-01-31", &admin));
    check("get", "/v1/admin/status", api.get("/v1/admin/status", &admin));
    check("get", "/v1/admin/audit-log", api.get("/v1/admin/audit-log", &admin));
    check("get", "/v1/admin/ledger/trial-balance", api.get("/v1/admin/ledger/trial-balance", &admin));
    let nopassword = api.post("/v1/sessions", "", &json!({"login": "nopassword", "password": "anything-at-all"}), &[]);
    check("post", "/v1/sessions", nopassword);
}

/// Every error code the server sends is in the document's enum, and each operation id says what
/// the operation does.
fn error_codes_are_an_enum_and_operation_ids_say_what_they_do(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_THROTTLE_LOGIN_BURST", "1")]);
    let api = &app.api;
    let document = document(&app);
    let codes: BTreeSet<String> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("ErrorCode is not an enum: {}", document["components"]["schemas"]["ErrorDetail"]))
        .iter()
        .map(string)
        .collect();
    for code in
        ["too_many_attempts", "request_timeout", "method_not_allowed", "password_reset_required", "waiting_room"]
    {
        assert!(codes.contains(code), "{code} is not in the ErrorCode enum: {codes:?}");
    }
    assert_eq!(
        document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );

    // Codes seen on the wire, from several kinds of refusal, are each in the enum.
    let alice = api.register_citizen("alice");
    let seen = [
        api.send("DELETE", "/v1/wallet", &alice.token, Body::Empty, &[]),
        api.post("/v1/sessions", "", &json!({"login": "alice", "password": "wrong-password"}), &[]),
        api.post("/v1/sessions", "", &json!({"login": "alice", "password": "wrong-password"}), &[]),
        api.get("/v1/wallet", ""),
        api.get("/v1/admin/policy", &alice.token),
        api.post_keyed("/v1/wallet/charges", &alice.token, &amount_body("0")),
        api.post("/v1/wallet/charges", &alice.token, &amount_body("1"), &[]),
        api.post_keyed("/v1/wallet/gifts", &alice.token, &json!({"to_wallet_id": alice.wallet_id, "amount": "1"})),
        api.get("/v1/nothing-here", ""),
    ];
    let expected = [
        "method_not_allowed",
        "invalid_credentials",
        "too_many_attempts",
        "unauthorized",
        "forbidden",
        "invalid_amount",
        "invalid_request",
        "validation_failed",
        "not_found",
    ];
    for (reply, code) in seen.iter().zip(expected) {
        assert_eq!(reply.json["error"]["code"], code, "{reply}");
        assert!(codes.contains(code), "{code} sent but not in the enum");
    }

    let vague = ["issue", "poll", "scrape", "status", "wallet", "budget", "admission", "settlement", "sales"];
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = string(&operation["operationId"]);
            assert!(!vague.contains(&id.as_str()), "{method} {path}: operationId {id:?} does not say what it does");
            assert!(id.contains('_'), "{method} {path}: operationId {id:?} is not verb_object");
            assert!(ids.insert(id.clone()), "operationId {id:?} is used twice");
        }
    }
}

/// `{"amount":"100","amount":"200"}` charged 200 while a proxy or log reading the first value
/// saw 100: a key given twice, at any depth, is refused and nothing is done.
fn a_repeated_json_key_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    for body in [
        r#"{"amount":"100","amount":"200"}"#,
        r#"{"amount":"100","extra":{"a":1,"a":2}}"#,
        r#"{"amount":"100","list":[{"b":1,"b":1}]}"#,
    ] {
        let reply = api.send(
            "POST",
            "/v1/wallet/charges",
            &alice.token,
            Body::Raw(body.as_bytes()),
            &[("Idempotency-Key", &new_key())],
        );
        reply.expect_error(400, "invalid_request");
        let key = if body.contains("\"a\"") {
            "\"a\""
        } else if body.contains("\"b\"") {
            "\"b\""
        } else {
            "\"amount\""
        };
        let message = string(&reply.json["error"]["message"]);
        assert!(message.contains(key) && message.contains("twice"), "the key is not named: {reply}");
    }
    let login = br#"{"login":"alice","password":"x","password":"correct-horse-battery"}"#;
    api.send("POST", "/v1/sessions", "", Body::Raw(login), &[]).expect_error(400, "invalid_request");
    assert_eq!(api.balance(&alice.token), "0");
    let history = api.history(&alice.token, "limit=5");
    assert_eq!(history["items"], json!([]), "{history}");
    // The same body without the repeat goes through.
    let once = api.send(
        "POST",
        "/v1/wallet/charges",
        &alice.token,
        Body::Raw(br#"{"amount":"100"}"#),
        &[("Idempotency-Key", &new_key())],
    );
    assert_eq!(once.status, 201, "{once}");
}

/// Every answer carries `X-Request-Id`: a valid incoming one is kept, else one is made; the
/// request's log line has the same id, so a helpdesk can find a complaint.
fn every_answer_carries_a_request_id_that_is_in_the_log(backend: Backend) {
    // Request lines are logged at INFO (the tests' default is WARN).
    let app = TestApp::start_with(backend, &[("RUST_LOG", "info")]);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let sent = "pos-17.receipt-2030:0001";
    let kept = api.send("GET", "/v1/wallet", &alice.token, Body::Empty, &[("X-Request-Id", sent)]);
    assert_eq!((kept.status, kept.header("X-Request-Id")), (200, sent), "{kept}");

    let mut made = BTreeSet::new();
    for reply in [
        api.get("/v1/wallet", &alice.token),
        api.get("/v1/wallet", ""),
        api.get("/no/such/path", ""),
        api.send("GET", "/healthz", "", Body::Empty, &[("X-Request-Id", "has space")]),
        api.send("GET", "/healthz", "", Body::Empty, &[("X-Request-Id", &"x".repeat(129))]),
        api.send("POST", "/v1/wallet/charges", &alice.token, Body::Raw(b"{"), &[("Idempotency-Key", "k")]),
    ] {
        let id = reply.header("X-Request-Id").to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "no request id made: {reply} {:?}", reply.headers);
        assert!(made.insert(id), "a request id was given twice");
    }
    let failed = api.get("/v1/wallet", "");
    let id = failed.header("X-Request-Id").to_owned();
    // The log line is written when the request's span closes, just after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = app.server.log();
        let sent_line =
            log.lines().any(|line| line.contains(&format!("request_id={sent}")) && line.contains("/v1/wallet"));
        let failed_line = log.lines().any(|line| line.contains(&format!("request_id={id}")) && line.contains("401"));
        if sent_line && failed_line {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "request ids {sent} and {id} not in the log:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

scenarios!(
    answers_to_migrated_users_fit_the_served_document,
    error_codes_are_an_enum_and_operation_ids_say_what_they_do,
    a_repeated_json_key_is_refused_and_changes_nothing,
    every_answer_carries_a_request_id_that_is_in_the_log,
);
