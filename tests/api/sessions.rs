//! Citizen registration and sessions.

use serde_json::json;

use crate::support::{string, time, Backend, Body, TestApp, ADMIN_LOGIN, CLOCK_START, PASSWORD};

fn citizens_register_and_sessions_end(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let register =
        |login: &str, password: &str| api.post("/v1/citizens", "", &json!({"login": login, "password": password}), &[]);

    let alice = register("alice", PASSWORD).expect(201);
    let bob = register("bob.kim_2-x", PASSWORD).expect(201);
    assert!(!string(&alice["citizen_id"]).is_empty() && !string(&alice["wallet_id"]).is_empty(), "{alice}");
    assert_ne!(alice["citizen_id"], bob["citizen_id"]);
    assert_ne!(alice["wallet_id"], bob["wallet_id"]);
    register("alice", "another-password").expect_error(409, "login_taken");

    // Boundaries: login 3-64 chars of [a-z0-9._-], password 8-128 chars.
    register("abc", "12345678").expect(201);
    register(&"z".repeat(64), &"p".repeat(128)).expect(201);
    for (login, password) in [
        ("ab", PASSWORD),
        (&*"y".repeat(65), PASSWORD),
        ("Alice2", PASSWORD),
        ("al ice", PASSWORD),
        ("al@ice", PASSWORD),
        ("한글이름", PASSWORD),
        ("carol", "1234567"),
        ("carol", &*"p".repeat(129)),
    ] {
        register(login, password).expect_error(422, "validation_failed");
    }

    let login =
        |login: &str, password: &str| api.post("/v1/sessions", "", &json!({"login": login, "password": password}), &[]);
    let session = login("alice", PASSWORD).expect(201);
    assert_eq!(session["role"], "citizen");
    assert!(time(&session["expires_at"]) > time(&json!(CLOCK_START)), "a session expires after it starts: {session}");
    let token = string(&session["token"]);
    assert_eq!(login(ADMIN_LOGIN, PASSWORD).expect(201)["role"], "admin");

    login("alice", "wrong-password").expect_error(401, "invalid_credentials");
    login("nobody", PASSWORD).expect_error(401, "invalid_credentials");

    assert_eq!(api.wallet(&token)["wallet_id"], alice["wallet_id"]);
    api.get("/v1/wallet", "").expect_error(401, "unauthorized");
    api.get("/v1/wallet", "not-a-token").expect_error(401, "unauthorized");
    assert_eq!(api.delete("/v1/sessions/current", &token).status, 204);
    api.get("/v1/wallet", &token).expect_error(401, "unauthorized");
    api.delete("/v1/sessions/current", &token).expect_error(401, "unauthorized");

    // A new session works after the old one ended.
    let token = api.login("alice", PASSWORD);
    assert_eq!(api.balance(&token), "0");
    app.assert_books_balance();
}

/// A token in constant use (the server keeps recently checked sessions in memory) is refused
/// the moment its session ends, for every role and every kind of request.
fn a_busy_token_is_refused_right_after_logout(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let citizen = api.register_citizen("busy");
    let shop = api.create_merchant(&app.admin(), "busyshop");
    api.charge(&citizen.token, "5000").expect(201);
    for _ in 0..3 {
        api.wallet(&citizen.token);
        api.get("/v1/merchant/sales", &shop.token).expect(200);
    }
    let code = api.payment_code(&citizen.token);
    api.pay(&shop.token, &code, "1000").expect(201);
    assert_eq!(api.delete("/v1/sessions/current", &shop.token).status, 204);
    let code = api.payment_code(&citizen.token);
    api.pay(&shop.token, &code, "1000").expect_error(401, "unauthorized");
    api.get("/v1/merchant/sales", &shop.token).expect_error(401, "unauthorized");
    assert_eq!(api.delete("/v1/sessions/current", &citizen.token).status, 204);
    api.get("/v1/wallet", &citizen.token).expect_error(401, "unauthorized");
    api.charge(&citizen.token, "1000").expect_error(401, "unauthorized");
    // Nothing moved after the logouts: one payment of 1,000 against 5,000.
    let again = api.login("busy", PASSWORD);
    assert_eq!(api.balance(&again), "4000");
}

/// The scheme of `Authorization` is case-insensitive (RFC 9110 §11.1): a client library that
/// writes `bearer` is let in; any other scheme still is no token.
fn the_bearer_scheme_is_matched_in_any_case(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let citizen = api.register_citizen("anycase");
    api.charge(&citizen.token, "700").expect(201);
    let with = |header: String| api.send("GET", "/v1/wallet", "", Body::Empty, &[("Authorization", &header)]);
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let wallet = with(format!("{scheme} {}", citizen.token)).expect(200);
        assert_eq!(string(&wallet["balance"]), "700", "{scheme}: {wallet}");
    }
    with(format!("Basic {}", citizen.token)).expect_error(401, "unauthorized");
    with(format!("Bearer{}", citizen.token)).expect_error(401, "unauthorized");
    with(format!("Bearerx {}", citizen.token)).expect_error(401, "unauthorized");
}

scenarios!(
    citizens_register_and_sessions_end,
    a_busy_token_is_refused_right_after_logout,
    the_bearer_scheme_is_matched_in_any_case
);
