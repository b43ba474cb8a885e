//! Oversight (extensions of API.md): the Prometheus series of `/metrics`, `GET /v1/admin/status`
//! and the audit log of admin actions (`GET /v1/admin/audit-log`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{
    amount_body, new_key, string, time, Backend, Body, Client, TestApp, ADMIN_LOGIN, PASSWORD, POLICY_STANDARD,
};

/// How long a test waits for the server's first background trial balance (taken at start).
const BOOKS_CHECK_WAIT_MAX: Duration = Duration::from_secs(60);

/// The samples of one scrape: `name{labels}` → value.
fn scrape(api: &Client) -> (BTreeMap<String, f64>, String) {
    let reply = api.get("/metrics", "");
    assert_eq!(reply.status, 200, "{reply}");
    let samples = reply
        .text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            let value = value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}"));
            (key.to_owned(), value)
        })
        .collect();
    (samples, reply.text)
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

fn requests(method: &str, route: &str, status: u16) -> String {
    format!("wallet_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}")
}

/// `(le, cumulative count)` of one histogram's buckets, in `le` order.
fn buckets(samples: &BTreeMap<String, f64>, name: &str, labels: &str) -> Vec<(f64, f64)> {
    let prefix =
        if labels.is_empty() { format!("{name}_bucket{{le=\"") } else { format!("{name}_bucket{{{labels},le=\"") };
    let mut found: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(key, value)| {
            let le = key.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().expect("a numeric le") };
            Some((le, *value))
        })
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found
}

/// Asserts a histogram's shape: fixed buckets ending in `+Inf`, cumulative counts that never
/// fall, `+Inf` equal to `_count`; returns `_count`.
#[track_caller]
fn assert_histogram(samples: &BTreeMap<String, f64>, name: &str, labels: &str) -> f64 {
    let found = buckets(samples, name, labels);
    assert!(found.len() >= 10, "{name}{{{labels}}} has {} buckets: {found:?}", found.len());
    assert_eq!(found.last().map(|bucket| bucket.0), Some(f64::INFINITY), "{name} lacks +Inf: {found:?}");
    assert!(found.windows(2).all(|pair| pair[0].1 <= pair[1].1), "{name} buckets are not cumulative: {found:?}");
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let count = sample(samples, &format!("{name}_count{braces}"));
    assert_eq!(found.last().map(|bucket| bucket.1), Some(count), "+Inf differs from _count: {found:?}");
    count
}

/// The status once the server's first trial balance has been taken (at start, in the background).
fn status_when_checked(app: &TestApp) -> Value {
    let deadline = Instant::now() + BOOKS_CHECK_WAIT_MAX;
    loop {
        let status = app.api.get("/v1/admin/status", &app.admin()).expect(200);
        if !status["books"]["checked_at"].is_null() || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metrics_count_requests_by_route_status_and_batch(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("100000");
    let alice = api.register_citizen("alice");
    api.charge(&alice.token, "50000").expect(201);
    let shop = api.create_merchant(&app.admin(), "shop");

    let (before, _) = scrape(api);
    let code = api.payment_code(&alice.token);
    let paid = api.pay(&shop.token, &code, "10000").expect(201);
    api.pay(&shop.token, "no-such-code", "10000").expect_error(422, "payment_code_invalid");
    // Two payment ids on the route with an id: one series, under the route's pattern.
    api.refund(&shop.token, &string(&paid["payment_id"]), "1000").expect(201);
    api.refund(&shop.token, &crate::support::unknown_id_like(&string(&paid["payment_id"])), "1000").expect(404);
    for path in ["/no/such/path-1", "/no/such/path-2", "/v1/payments/some-id/nothing"] {
        assert_eq!(api.get(path, "").status, 404, "GET {path}");
    }
    let (after, text) = scrape(api);

    let delta = |key: &str| sample(&after, key) - sample(&before, key);
    assert_eq!(delta(&requests("POST", "/v1/payments", 201)), 1.0, "the approved payment:\n{text}");
    assert_eq!(delta(&requests("POST", "/v1/payments", 422)), 1.0, "the refused payment:\n{text}");
    assert_eq!(delta(&requests("POST", "/v1/wallet/payment-codes", 201)), 1.0, "{text}");
    let refunds = "/v1/payments/{payment_id}/refunds";
    assert_eq!(delta(&requests("POST", refunds, 201)), 1.0, "{text}");
    assert_eq!(delta(&requests("POST", refunds, 404)), 1.0, "{text}");
    // Unknown paths are one series, not one per path.
    assert_eq!(delta(&requests("other", "unmatched", 404)), 3.0, "{text}");
    for fragment in ["/no/such", "path-1", "some-id", string(&paid["payment_id"]).as_str()] {
        assert!(!text.contains(fragment), "a raw path made a series ({fragment}):\n{text}");
    }
    // The pattern of a route with an id, not the id.
    let payments = "method=\"POST\",route=\"/v1/payments\"";
    let count = assert_histogram(&after, "wallet_http_request_duration_seconds", payments);
    assert!(count >= 2.0, "two payments were timed: {text}");
    assert!(sample(&after, &format!("wallet_http_request_duration_seconds_sum{{{payments}}}")) > 0.0, "{text}");

    // The writer: five requests (the code, the payments and the refunds, refused or not) in
    // committed batches, one or more.
    let batches = assert_histogram(&after, "wallet_writer_batch_commands", "");
    assert_eq!(delta("wallet_writer_batch_commands_sum"), 5.0, "{text}");
    let new_batches = delta("wallet_writer_batch_commands_count");
    assert!((1.0..=5.0).contains(&new_batches), "5 requests in {new_batches} batches:\n{text}");
    assert_eq!(assert_histogram(&after, "wallet_writer_commit_duration_seconds", ""), batches, "{text}");
    assert_eq!(sample(&after, "wallet_writer_batches_failed_total"), 0.0, "{text}");

    // Admission, sessions and the budget.
    for line in [
        "wallet_sessions_capacity 1000",
        "wallet_sessions_active 1",
        "wallet_waiting_room_tickets 0",
        "wallet_cashback_budget_remaining_won 99100",
    ] {
        assert!(text.lines().any(|seen| seen == line), "/metrics lacks {line:?}:\n{text}");
    }
    assert!(text.contains("wallet_citizen_logins_admitted_total "), "{text}");

    // The books, once the background check has run.
    let status = status_when_checked(&app);
    assert!(!status["books"]["checked_at"].is_null(), "no trial balance was taken: {status}");
    let (samples, text) = scrape(api);
    assert_eq!(sample(&samples, "wallet_books_balanced"), 1.0, "{text}");
    assert!(samples.contains_key("wallet_trial_balance_total_won"), "{text}");
    assert_eq!(sample(&samples, "wallet_trial_balance_total_won"), 0.0, "{text}");
}

fn status_summarises_the_system_for_admins_only(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    let shop = api.create_merchant(&app.admin(), "shop");
    for path in ["/v1/admin/status", "/v1/admin/audit-log"] {
        api.get(path, "").expect_error(401, "unauthorized");
        api.get(path, &alice.token).expect_error(403, "forbidden");
        api.get(path, &shop.token).expect_error(403, "forbidden");
    }

    app.top_up_budget("100000");
    api.charge(&alice.token, "100000").expect(201);
    let first = api.pay_from(&alice.token, &shop.token, "20000");
    api.pay_from(&alice.token, &shop.token, "30000");
    // Half of the first payment back: half of its 2000 cashback is reversed.
    assert_eq!(
        api.refund(&shop.token, &string(&first["payment_id"]), "10000").expect(201)["cashback_reversed"],
        "1000"
    );

    let openapi = api.get("/openapi.json", "").expect(200);
    for path in ["/v1/admin/status", "/v1/admin/audit-log"] {
        assert!(openapi["paths"][path]["get"]["responses"]["200"].is_object(), "the API document lacks GET {path}");
    }

    let status = status_when_checked(&app);
    assert_eq!(status["status"], "ok", "{status}");
    assert_eq!(status["reasons"], json!([]), "{status}");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(status["uptime_s"].is_u64(), "{status}");
    assert!(time(&status["now"]).to_rfc3339().starts_with("2030-01-10T01:"), "{status}");
    let database = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    assert_eq!(status["database"], database, "{status}");
    assert_eq!(status["books"]["balanced"], true, "{status}");
    assert_eq!(status["books"]["trial_balance_total"], "0", "{status}");
    time(&status["books"]["checked_at"]);
    // Cashback 2000 + 3000 paid out, 1000 reversed.
    assert_eq!(
        status["cashback_budget"],
        json!({"funded": "100000", "paid_out": "5000", "reversed": "1000", "remaining": "96000"}),
        "{status}"
    );
    assert_eq!(
        status["today"],
        json!({"business_date": "2030-01-10", "payments_count": 2, "payments_amount": "50000",
               "refunds_count": 1, "refunds_amount": "10000"}),
        "{status}"
    );
    let sessions = &status["sessions"];
    assert_eq!((sessions["active"].as_u64(), sessions["capacity"].as_u64()), (Some(1), Some(1000)), "{status}");
    assert_eq!(sessions["waiting"], 0, "{status}");
    // Every writer request since the start, each in one committed batch: the policy, the
    // top-up, the charge, two codes, two payments and the refund.
    let writer = &status["writer"];
    assert_eq!(writer["commands_total"], 8, "{status}");
    let batches = writer["batches_total"].as_u64().unwrap_or(0);
    assert!((1..=8).contains(&batches), "{status}");
    assert_eq!(writer["recent_batches"].as_u64(), Some(batches), "{status}");
    assert_eq!(writer["batches_failed_total"], 0, "{status}");
    assert!(writer["recent_commands_max"].as_u64().unwrap_or(0) >= 1, "{status}");
    assert!(writer["recent_commit_ms_mean"].is_number(), "{status}");
    time(&writer["last_batch_at"]);
    assert!(writer["last_failure_at"].is_null(), "{status}");
    assert!(status["last_settlement"].is_null(), "{status}");
    assert_eq!(status["handover"], json!({"last_import": null, "last_export": null}), "{status}");

    // The next day: the date is closed and the system exported.
    app.set_clock("2030-01-11T01:00:00Z");
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": "2030-01-10"}), &[]).expect(201);
    let dir = tempfile::tempdir().expect("temporary directory");
    export(&app, &dir.path().join("bundle"));
    let status = api.get("/v1/admin/status", &app.admin()).expect(200);
    let settlement = &status["last_settlement"];
    assert_eq!(settlement["business_date"], "2030-01-10", "{status}");
    assert_eq!(settlement["total_net_payable"], "40000", "{status}");
    assert_eq!(settlement["total_fee"], "0", "{status}");
    assert!(time(&settlement["closed_at"]).to_rfc3339().starts_with("2030-01-11T01:"), "{status}");
    assert_eq!(status["today"]["business_date"], "2030-01-11", "{status}");
    assert_eq!(status["today"]["payments_count"], 0, "{status}");
    let export = &status["handover"]["last_export"];
    assert_eq!((export["sequence"].as_u64(), export["kind"].as_str()), (Some(0), Some("snapshot")), "{status}");
    time(&export["exported_at"]);
    assert!(status["handover"]["last_import"].is_null(), "{status}");
}

fn status_is_degraded_while_the_cashback_budget_is_used_up(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("100");
    let alice = api.register_citizen("alice");
    let shop = api.create_merchant(&app.admin(), "shop");
    api.charge(&alice.token, "10000").expect(201);
    assert_eq!(api.get("/v1/admin/status", &app.admin()).expect(200)["status"], "ok");
    // 10% of 1000 takes the whole budget.
    assert_eq!(api.pay_from(&alice.token, &shop.token, "1000")["cashback"], "100");
    let status = api.get("/v1/admin/status", &app.admin()).expect(200);
    assert_eq!(status["status"], "degraded", "{status}");
    let reasons = status["reasons"].as_array().unwrap_or_else(|| panic!("{status}"));
    assert_eq!(reasons.len(), 1, "{status}");
    assert_eq!(reasons[0]["code"], "cashback_budget_exhausted", "{status}");
    assert!(!string(&reasons[0]["message"]).is_empty(), "{status}");
    app.top_up_budget("100");
    assert_eq!(api.get("/v1/admin/status", &app.admin()).expect(200)["status"], "ok");
}

/// Runs `handover export DIR`, asserting success.
fn export(app: &TestApp, dir: &Path) {
    let output = app.server.run(&["handover", "export", dir.to_str().expect("a UTF-8 path")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every audit row, newest first, in one page (asserting there is no second).
fn audit_rows(app: &TestApp) -> Vec<Value> {
    let page = app.api.get("/v1/admin/audit-log?limit=200", &app.admin()).expect(200);
    assert!(page["next_cursor"].is_null(), "{page}");
    page["items"].as_array().unwrap_or_else(|| panic!("{page}")).clone()
}

fn actions(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|row| string(&row["action"])).collect()
}

fn audit_log_holds_each_admin_action_once(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let admin = app.admin();

    // TestApp::start: the admin created on the command line, the clock moved, the policy put.
    let start = audit_rows(&app);
    assert_eq!(actions(&start), ["policy_changed", "test_clock_moved", "admin_created"], "{start:?}");
    let created = &start[2];
    assert_eq!(
        (created["via"].as_str(), &created["principal_id"], &created["login"]),
        (Some("cli"), &json!(null), &json!(null))
    );
    assert_eq!(created["detail"]["login"], ADMIN_LOGIN, "{created}");
    let admin_id = string(&created["detail"]["admin_id"]);
    for row in &start[..2] {
        assert_eq!((row["via"].as_str(), row["login"].as_str()), (Some("api"), Some(ADMIN_LOGIN)), "{row}");
        assert_eq!(row["principal_id"], admin_id.as_str(), "{row}");
        assert!(row["idempotency_key"].is_null(), "{row}");
    }
    assert_eq!(start[1]["detail"]["to"], "2030-01-10T01:00:00Z", "{}", start[1]);
    let standard: serde_json::Map<String, Value> =
        POLICY_STANDARD.iter().map(|(name, value)| (name.to_string(), json!(value))).collect();
    assert_eq!(start[0]["detail"]["policy"], Value::Object(standard.clone()), "{}", start[0]);

    // Refused actions write nothing.
    let mut bad_policy = Value::Object(standard.clone());
    bad_policy["cashback_rate"] = json!("1.5");
    api.put("/v1/admin/policy", &admin, &bad_policy).expect_error(422, "validation_failed");
    api.post_keyed("/v1/admin/cashback-budget/top-ups", &admin, &amount_body("0")).expect_error(422, "invalid_amount");
    api.post("/v1/admin/settlements", &admin, &json!({"business_date": "2030-01-10"}), &[])
        .expect_error(422, "date_not_closed");
    api.put("/v1/admin/test-clock", &admin, &json!({"now": "2030-01-01T00:00:00Z"}))
        .expect_error(422, "validation_failed");
    api.send("POST", "/v1/admin/citizens/nobody/password-reset", &admin, Body::Empty, &[])
        .expect_error(404, "not_found");
    assert_eq!(audit_rows(&app).len(), 3, "a refused action wrote an audit row");

    // Each action, once.
    let shop = api.create_merchant(&admin, "shop");
    api.post(
        "/v1/admin/merchants",
        &admin,
        &json!({"login": "shop", "password": PASSWORD, "name": "Again",
        "business_number": "214-86-99999", "bank_account": "2"}),
        &[],
    )
    .expect_error(409, "login_taken");
    let key = new_key();
    let top_up = |amount: &str, key: &str| {
        api.post("/v1/admin/cashback-budget/top-ups", &admin, &amount_body(amount), &[("Idempotency-Key", key)])
    };
    let funded = top_up("5000", &key).expect(201);
    assert_eq!(top_up("5000", &key).expect(201), funded, "a replay answers as the first time");
    top_up("7000", &key).expect_error(409, "idempotency_conflict");
    // The same key at once from two threads: one top-up, one row.
    let raced = new_key();
    let replies = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2).map(|_| scope.spawn(|| top_up("3000", &raced))).collect();
        threads.into_iter().map(|thread| thread.join().expect("no panic")).collect::<Vec<_>>()
    });
    assert!(replies.iter().all(|reply| reply.status == 201), "{} / {}", replies[0], replies[1]);
    assert_eq!(replies[0].json, replies[1].json);
    assert_eq!(api.get("/v1/admin/cashback-budget", &admin).expect(200)["funded"], "8000");
    let mut policy = Value::Object(standard.clone());
    policy["merchant_fee_rate"] = json!("0.01");
    // A policy change sent with a key: recorded with it, and its retry answered from its record
    // (no second change, no second row).
    let policy_key = new_key();
    let put_policy =
        || api.send("PUT", "/v1/admin/policy", &admin, Body::Json(&policy), &[("Idempotency-Key", &policy_key)]);
    let changed = put_policy().expect(200);
    assert_eq!(put_policy().expect(200), changed);
    let alice = api.register_citizen("alice");
    let reset = api.send("POST", "/v1/admin/citizens/alice/password-reset", &admin, Body::Empty, &[]).expect(201);
    let reset_code = string(&reset["reset_code"]);
    app.set_clock("2030-01-11T01:00:00Z");
    let admin = app.admin();
    let close = json!({"business_date": "2030-01-10"});
    api.post("/v1/admin/settlements", &admin, &close, &[]).expect(201);
    // Closing it again moves nothing, but the admin asked and was answered: a row says so.
    let reclose_key = new_key();
    api.post("/v1/admin/settlements", &admin, &close, &[("Idempotency-Key", &reclose_key)]).expect(200);
    app.server.create_admin("deputy", PASSWORD);
    let dir = tempfile::tempdir().expect("temporary directory");
    let bundle = dir.path().join("bundle");
    export(&app, &bundle);

    let rows = audit_rows(&app);
    let text = serde_json::to_string(&rows).expect("JSON");
    assert_eq!(
        actions(&rows[..rows.len() - 3]),
        [
            "handover_exported",
            "admin_created",
            "settlement_closed",
            "settlement_closed",
            "test_clock_moved",
            "password_reset_issued",
            "policy_changed",
            "cashback_budget_topped_up",
            "cashback_budget_topped_up",
            "merchant_created",
        ],
        "{text}"
    );
    let ids: Vec<u64> = rows.iter().map(|row| string(&row["id"]).parse().expect("a numeric id")).collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "newest first: {ids:?}");
    for secret in [PASSWORD, reset_code.as_str(), alice.token.as_str(), admin.as_str()] {
        assert!(!text.contains(secret), "the audit log holds a secret ({secret}):\n{text}");
    }
    let (exported, deputy, reclosed, closed, clock, reset_row, policy_row, raced_row, topped, merchant) =
        (&rows[0], &rows[1], &rows[2], &rows[3], &rows[4], &rows[5], &rows[6], &rows[7], &rows[8], &rows[9]);
    assert_eq!(reclosed["detail"]["already_closed"], true, "{reclosed}");
    assert_eq!(reclosed["idempotency_key"], reclose_key.as_str(), "{reclosed}");
    assert_eq!(policy_row["idempotency_key"], policy_key.as_str(), "{policy_row}");
    assert!(closed["idempotency_key"].is_null() && closed["detail"].get("already_closed").is_none(), "{closed}");
    for row in [reclosed, closed, clock, reset_row, policy_row, raced_row, topped, merchant] {
        assert_eq!((row["via"].as_str(), row["login"].as_str()), (Some("api"), Some(ADMIN_LOGIN)), "{row}");
        assert_eq!(row["principal_id"], admin_id.as_str(), "{row}");
        time(&row["at"]);
    }
    assert_eq!(merchant["detail"]["merchant_id"], shop.id.as_str(), "{merchant}");
    assert_eq!(merchant["detail"]["login"], "shop", "{merchant}");
    assert!(merchant["detail"].get("password").is_none(), "{merchant}");
    assert_eq!((topped["idempotency_key"].as_str(), &topped["detail"]["amount"]), (Some(key.as_str()), &json!("5000")));
    assert_eq!(topped["detail"]["budget"]["funded"], "5000", "{topped}");
    assert_eq!(raced_row["idempotency_key"], raced.as_str(), "{raced_row}");
    assert_eq!(policy_row["detail"]["policy"], policy, "{policy_row}");
    assert_eq!(policy_row["detail"]["previous"], Value::Object(standard), "{policy_row}");
    assert_eq!(reset_row["detail"]["citizen_id"], alice.id.as_str(), "{reset_row}");
    assert_eq!(reset_row["detail"]["login"], "alice", "{reset_row}");
    assert_eq!(clock["detail"]["to"], "2030-01-11T01:00:00Z", "{clock}");
    assert!(time(&closed["at"]).to_rfc3339().starts_with("2030-01-11T01:"), "the server clock: {closed}");
    assert_eq!(closed["detail"]["business_date"], "2030-01-10", "{closed}");
    assert_eq!((deputy["via"].as_str(), &deputy["detail"]["login"]), (Some("cli"), &json!("deputy")), "{deputy}");
    assert!(deputy["principal_id"].is_null() && deputy["login"].is_null(), "{deputy}");
    assert_eq!((exported["via"].as_str(), &exported["detail"]["sequence"]), (Some("cli"), &json!(0)), "{exported}");
    assert_eq!(exported["detail"]["kind"], "snapshot", "{exported}");

    // Pages of two, followed by their cursors, give the same rows.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map_or("limit=2".to_owned(), |cursor| format!("limit=2&cursor={cursor}"));
        let page = api.get(&format!("/v1/admin/audit-log?{query}"), &admin).expect(200);
        let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(items.len() <= 2, "{page}");
        paged.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(paged.len() <= rows.len(), "paging does not end");
    }
    assert_eq!(paged, rows);
    assert_eq!(api.get("/v1/admin/audit-log", &admin).expect(200)["items"].as_array().map(Vec::len), Some(rows.len()));
    for query in ["limit=0", "limit=201", "limit=x", "cursor=abc", "cursor=-1", "sort=asc"] {
        api.get(&format!("/v1/admin/audit-log?{query}"), &admin).expect_error(422, "validation_failed");
    }

    // The next operator's import is recorded there, once.
    let next = TestApp::start(backend);
    for _ in 0..2 {
        let imported = next.server.run(&["handover", "import", bundle.to_str().expect("a UTF-8 path")]);
        assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    }
    let rows = audit_rows(&next);
    assert_eq!(actions(&rows), ["handover_imported", "policy_changed", "test_clock_moved", "admin_created"]);
    assert_eq!((rows[0]["via"].as_str(), &rows[0]["detail"]["sequence"]), (Some("cli"), &json!(0)), "{}", rows[0]);
    assert_eq!(rows[0]["detail"]["citizens"], 1, "{}", rows[0]);
}

scenarios!(
    metrics_count_requests_by_route_status_and_batch,
    status_summarises_the_system_for_admins_only,
    status_is_degraded_while_the_cashback_budget_is_used_up,
    audit_log_holds_each_admin_action_once,
);
