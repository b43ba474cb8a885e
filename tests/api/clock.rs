//! The test clock (`WALLET_TEST_CLOCK=1`): kept across a restart, shown in the start-up log and
//! the admin status, used by `handover export`, and strict about the form it takes.

use serde_json::json;

use crate::support::{string, Backend, TestApp, ADMIN_LOGIN, PASSWORD};

/// A restart fell back to the real time: the month turned back and the counters reset while
/// the status said `ok`. The offset is kept in the database now.
fn the_test_clock_survives_a_restart_and_shows_where_it_stands(backend: Backend) {
    let mut app = TestApp::start(backend);
    let alice = app.api.register_citizen("alice");
    app.api.charge(&alice.token, "1000").expect(201);
    app.set_clock("2030-02-03T01:00:00Z");
    let status = app.api.get("/v1/admin/status", &app.admin()).expect(200);
    assert!(string(&status["test_clock"]["now"]).starts_with("2030-02-03T01:00"), "{status}");
    assert!(status["test_clock"]["ahead_of_real_time_s"].as_i64().unwrap() > 0, "{status}");

    // The server alone restarted (TestApp::restart would move the clock back itself).
    app.server.restart();
    let api = app.server.client();
    let admin = api.login(ADMIN_LOGIN, PASSWORD);
    let status = api.get("/v1/admin/status", &admin).expect(200);
    let now = string(&status["now"]);
    assert!(now.as_str() >= "2030-02-03T01:00:00Z" && now.as_str() < "2030-02-03T02:00:00Z", "{status}");
    assert_eq!(status["test_clock"]["now"], status["now"], "{status}");
    let citizen = api.login("alice", PASSWORD);
    let wallet = api.get("/v1/wallet", &citizen).expect(200);
    assert_eq!((&wallet["month"], &wallet["charged_this_month"]), (&json!("2030-02"), &json!("0")), "{wallet}");
    let log = app.server.log();
    let started = log.lines().filter(|line| line.contains("TEST CLOCK is on")).collect::<Vec<_>>();
    assert_eq!(started.len(), 2, "each start says the test clock is on:\n{log}");
    assert!(started[1].contains("now=2030-02-03"), "the start-up log shows where it stands:\n{log}");

    // The command line uses the same clock: an export is as of the server's time.
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("bundle");
    let output = app.server.run(&["handover", "export", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).expect("manifest is JSON");
    assert!(string(&manifest["as_of"]).starts_with("2030-02-03"), "{manifest}");

    // A date without a time is refused with the form it takes.
    let reply = api.put("/v1/admin/test-clock", &admin, &json!({"now": "2030-02-04"}));
    reply.expect_error(422, "validation_failed");
    assert!(string(&reply.json["error"]["message"]).contains("2030-01-10T00:00:00Z"), "{reply}");
    // And the clock never goes back, across servers too.
    api.put("/v1/admin/test-clock", &admin, &json!({"now": "2030-01-20T00:00:00Z"}))
        .expect_error(422, "validation_failed");
}

/// Without `WALLET_TEST_CLOCK=1` the status shows no test clock.
fn the_status_shows_no_test_clock_on_the_real_clock(backend: Backend) {
    let app = TestApp::start(backend);
    let mut real = app.server.sibling().with_env("WALLET_TEST_CLOCK", "0");
    real.spawn();
    let api = real.client();
    let admin = api.login(ADMIN_LOGIN, PASSWORD);
    let status = api.get("/v1/admin/status", &admin).expect(200);
    assert_eq!(status["test_clock"], serde_json::Value::Null, "{status}");
    assert!(string(&status["now"]).as_str() < "2030-01-01", "the real clock ignores a kept offset: {status}");
}

scenarios!(
    the_test_clock_survives_a_restart_and_shows_where_it_stands,
    the_status_shows_no_test_clock_on_the_real_clock
);
