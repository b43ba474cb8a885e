//! Login throttling (an extension of API.md): repeated failed logins earn 429
//! `too_many_attempts` with `Retry-After`, refused before any password check; the login's owner
//! is not kept out for long. The servers trust 127.0.0.1 as a proxy, so each request can say
//! which client address it comes from in `X-Forwarded-For`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Backend, Client, Reply, TestApp, TestServer, PASSWORD};

/// Where the guesses come from.
const GUESSER: &str = "198.51.100.7";
/// Where the login's owner is, an address that has not been failing.
const HOME: &str = "203.0.113.9";

/// How long a test waits for a failure on one server to count on another (the servers share
/// them about twice a second).
const SHARED_WAIT_MAX: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Failures of other servers charged on a server.
const SHARED_IN: &str = "wallet_login_failures_shared_total{way=\"in\"}";

fn start(backend: Backend) -> TestApp {
    TestApp::start_with(backend, &[("WALLET_TRUSTED_PROXIES", "127.0.0.1")])
}

fn login_from(api: &Client, address: &str, login: &str, password: &str) -> Reply {
    api.post("/v1/sessions", "", &json!({"login": login, "password": password}), &[("X-Forwarded-For", address)])
}

/// Asserts a 429 `too_many_attempts` with a Retry-After within `1..=max_s`; returns it.
#[track_caller]
fn throttled(reply: &Reply, max_s: u64) -> u64 {
    reply.expect_error(429, "too_many_attempts");
    let retry_after: u64 = reply.header("retry-after").parse().unwrap_or_else(|_| panic!("no Retry-After: {reply}"));
    assert!((1..=max_s).contains(&retry_after), "Retry-After {retry_after} outside 1..={max_s}: {reply}");
    retry_after
}

fn guessing_one_login_is_throttled_and_its_owner_gets_back_in(backend: Backend) {
    let app = start(backend);
    let api = &app.api;
    api.register_citizen("alice");
    let throttled_before = api.metric("wallet_login_attempts_throttled_total").expect("the throttle's counter");

    for guess in 0..5 {
        login_from(api, GUESSER, "alice", &format!("guess-{guess}-wrong")).expect_error(401, "invalid_credentials");
    }
    // Now even the right password is refused: the throttle answers before the password check.
    throttled(&login_from(api, GUESSER, "alice", PASSWORD), 60);
    for guess in 5..25 {
        throttled(&login_from(api, GUESSER, "alice", &format!("guess-{guess}-wrong")), 60);
    }
    let throttled_after = api.metric("wallet_login_attempts_throttled_total").expect("the throttle's counter");
    assert_eq!(throttled_after - throttled_before, 21.0, "every refused attempt is counted");

    // The owner, from an address that has not been failing, gets in while the guessing goes on,
    // and that hands the guesser no fresh guesses.
    for _ in 0..3 {
        login_from(api, HOME, "alice", PASSWORD).expect(201);
        throttled(&login_from(api, GUESSER, "alice", "guess-after-the-owner"), 60);
    }
    // Another login from the same address is not affected by alice's record.
    api.register_citizen("bob");
    login_from(api, GUESSER, "bob", PASSWORD).expect(201);

    // The wait is over within a minute: ten minutes later the right password works from there too.
    app.set_clock("2030-01-10T01:10:00Z");
    login_from(api, GUESSER, "alice", PASSWORD).expect(201);
}

fn failures_over_many_logins_from_one_address_are_throttled(backend: Backend) {
    // The address's burst as by default (50), but refilled at 2 a minute instead of 30, so that
    // a stalled test machine cannot see the wait run out between two requests.
    let app = TestApp::start_with(
        backend,
        &[("WALLET_TRUSTED_PROXIES", "127.0.0.1"), ("WALLET_THROTTLE_ADDRESS_PER_MIN", "2")],
    );
    let api = &app.api;
    let carol = api.register_citizen("carol");
    // Failures against 50 logins are let through (the address's burst; the bucket refills one
    // every 30 s meanwhile, so one more may be), then the address waits.
    let mut failed = 0;
    let refusal = loop {
        let reply = login_from(api, GUESSER, &format!("nobody{failed}"), "not-the-password");
        if reply.status != 401 {
            break reply;
        }
        reply.expect_error(401, "invalid_credentials");
        failed += 1;
        assert!(failed < 100, "100 failed logins from one address, none throttled");
    };
    assert!(failed >= 50, "throttled after only {failed} failures: {refusal}");
    throttled(&refusal, 30);
    // The address is held back whatever login it tries, carol's right password included ...
    throttled(&login_from(api, GUESSER, "carol", PASSWORD), 30);
    // ... but not other addresses, nor carol's record.
    login_from(api, HOME, "carol", PASSWORD).expect(201);
    assert_eq!(api.balance(&carol.token), "0");

    app.set_clock("2030-01-10T01:10:00Z");
    login_from(api, GUESSER, "carol", PASSWORD).expect(201);
}

fn only_failures_count(backend: Backend) {
    let app = start(backend);
    let api = &app.api;
    api.register_citizen("dave");
    // Many logins in a row, all right, from one address: none is throttled.
    for _ in 0..30 {
        login_from(api, GUESSER, "dave", PASSWORD).expect(201);
    }
    // Five failures are let through whatever logins came before and between them; the sixth
    // attempt waits.
    for guess in 0..4 {
        login_from(api, GUESSER, "dave", &format!("guess-{guess}")).expect_error(401, "invalid_credentials");
        login_from(api, GUESSER, "dave", PASSWORD).expect(201);
    }
    login_from(api, GUESSER, "dave", "guess-4").expect_error(401, "invalid_credentials");
    throttled(&login_from(api, GUESSER, "dave", PASSWORD), 60);
}

/// A second server on `app`'s database, running.
fn second_server(app: &TestApp) -> TestServer {
    let mut second = app.server.sibling();
    second.spawn();
    second
}

/// Tries `login`'s right password on `api` from `address` until it is refused, and returns the
/// refusal. A right password never counts as a failure, so only failures counted elsewhere can
/// make it refuse; every try let in is logged out again.
#[track_caller]
fn refused_once_shared(api: &Client, address: &str, login: &str) -> Reply {
    let deadline = Instant::now() + SHARED_WAIT_MAX;
    loop {
        let reply = login_from(api, address, login, PASSWORD);
        if reply.status != 201 {
            return reply;
        }
        api.delete("/v1/sessions/current", reply.json["token"].as_str().expect("a session has a token")).expect(204);
        assert!(Instant::now() < deadline, "{login} from {address} still let in after {SHARED_WAIT_MAX:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until `api`'s server has charged at least `count` failures of other servers.
#[track_caller]
fn wait_until_charged(api: &Client, count: f64) {
    let deadline = Instant::now() + SHARED_WAIT_MAX;
    while api.metric(SHARED_IN).unwrap_or(0.0) < count {
        assert!(Instant::now() < deadline, "{count} shared failures not charged within {SHARED_WAIT_MAX:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Issue 21, item 3: with two servers on one database, a login's failures on one are refused on
/// the other once they have been shared; before, each server let its own 5 through.
fn a_login_s_failures_on_one_server_are_refused_on_another(backend: Backend) {
    let app = start(backend);
    let second = second_server(&app);
    let (one, other) = (&app.api, &second.client());
    one.register_citizen("alice");
    // The other server lets the right password in from the guesser's address before the guessing.
    login_from(other, GUESSER, "alice", PASSWORD).expect(201);
    for guess in 0..5 {
        login_from(one, GUESSER, "alice", &format!("guess-{guess}-wrong")).expect_error(401, "invalid_credentials");
    }
    throttled(&login_from(one, GUESSER, "alice", PASSWORD), 60);
    let refusal = refused_once_shared(other, GUESSER, "alice");
    throttled(&refusal, 60);
    assert!(refusal.text.contains("for this login"), "refused for the login: {refusal}");
    // The owner still gets in there from an address that has not been failing.
    login_from(other, HOME, "alice", PASSWORD).expect(201);
}

/// The login's budget of 5 is one for both servers: 3 failures on one and 2 on the other spend
/// it, and both refuse the next.
fn a_login_s_budget_is_spent_across_servers(backend: Backend) {
    let app = start(backend);
    let second = second_server(&app);
    let (one, other) = (&app.api, &second.client());
    one.register_citizen("alice");
    for guess in 0..3 {
        login_from(one, GUESSER, "alice", &format!("guess-{guess}-wrong")).expect_error(401, "invalid_credentials");
    }
    wait_until_charged(other, 3.0);
    for guess in 3..5 {
        login_from(other, GUESSER, "alice", &format!("guess-{guess}-wrong")).expect_error(401, "invalid_credentials");
    }
    throttled(&login_from(other, GUESSER, "alice", "guess-5-wrong"), 60);
    wait_until_charged(one, 2.0);
    throttled(&login_from(one, GUESSER, "alice", "guess-6-wrong"), 60);
    throttled(&login_from(one, GUESSER, "alice", PASSWORD), 60);
}

/// An address's failures on one server are refused on the other once shared.
fn an_address_s_failures_on_one_server_are_refused_on_another(backend: Backend) {
    // Refilled at 2 a minute, as in `failures_over_many_logins_from_one_address_are_throttled`.
    let app = TestApp::start_with(
        backend,
        &[("WALLET_TRUSTED_PROXIES", "127.0.0.1"), ("WALLET_THROTTLE_ADDRESS_PER_MIN", "2")],
    );
    let second = second_server(&app);
    let (one, other) = (&app.api, &second.client());
    one.register_citizen("carol");
    let mut failed = 0;
    let refusal = loop {
        let reply = login_from(one, GUESSER, &format!("nobody{failed}"), "not-the-password");
        if reply.status != 401 {
            break reply;
        }
        failed += 1;
        assert!(failed < 100, "100 failed logins from one address, none throttled");
    };
    throttled(&refusal, 30);
    // carol's right password from there: refused on the other server too, once shared.
    let refusal = refused_once_shared(other, GUESSER, "carol");
    throttled(&refusal, 30);
    assert!(refusal.text.contains("network address"), "refused for the address: {refusal}");
    login_from(other, HOME, "carol", PASSWORD).expect(201);
}

fn the_throttle_can_be_turned_off(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_THROTTLE", "off")]);
    let api = &app.api;
    api.register_citizen("erin");
    for guess in 0..12 {
        let reply = api.post("/v1/sessions", "", &json!({"login": "erin", "password": format!("wrong-{guess}")}), &[]);
        reply.expect_error(401, "invalid_credentials");
    }
    api.login("erin", PASSWORD);
    assert_eq!(api.metric("wallet_login_attempts_throttled_total"), None, "no throttle, no counter");
    assert_eq!(api.metric(SHARED_IN), None, "no throttle, nothing shared");
}

scenarios!(
    guessing_one_login_is_throttled_and_its_owner_gets_back_in,
    failures_over_many_logins_from_one_address_are_throttled,
    only_failures_count,
    the_throttle_can_be_turned_off,
    a_login_s_failures_on_one_server_are_refused_on_another,
    a_login_s_budget_is_spent_across_servers,
    an_address_s_failures_on_one_server_are_refused_on_another,
);
