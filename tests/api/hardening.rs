//! What every answer carries and what no client can make the server hold: security headers,
//! body and header size limits, slow clients cut off while others are served, and a log that
//! never holds a token or a password.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{string, Backend, Body, Reply, TestApp, TestServer, ADMIN_LOGIN, PASSWORD};

/// The headers every response must carry, with their values.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// How long a raw-socket test waits for the server to end a slow client's connection: far more
/// than the 2 s timeouts those servers are given, far less than the client's own 60 s timeout.
const SLOW_CLIENT_CUT_OFF_WITHIN: Duration = Duration::from_secs(30);
/// How often a slow client sends its next byte.
const SLOW_CLIENT_BYTE_INTERVAL: Duration = Duration::from_millis(250);

#[track_caller]
fn assert_security_headers(reply: &Reply) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(reply.header(name), value, "{name} on {reply}");
    }
    // HSTS is the TLS terminator's to set (docs/ARCHITECTURE.md).
    assert_eq!(reply.header("strict-transport-security"), "", "{reply}");
}

fn every_answer_carries_the_security_headers(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let citizen = api.register_citizen("alice");
    let oversized = vec![b' '; 70 * 1024];
    let mut replies = vec![
        api.get("/healthz", ""),
        api.get("/metrics", ""),
        api.get("/openapi.json", ""),
        api.get("/no/such/endpoint", ""),
        api.send("PATCH", "/v1/wallet", "", Body::Empty, &[]),
        api.get("/v1/wallet", ""),
        api.get("/v1/wallet", &citizen.token),
        api.get("/v1/admin/policy", &citizen.token),
        api.send("POST", "/v1/sessions", "", Body::Raw(b"{not json"), &[]),
        api.send("POST", "/v1/citizens", "", Body::Raw(&oversized), &[]),
        api.post("/v1/citizens", "", &json!({"login": "NO", "password": PASSWORD}), &[]),
        api.post("/v1/wallet/charges", &citizen.token, &json!({"amount": "1000"}), &[]),
        api.charge(&citizen.token, "1000"),
    ];
    for guess in 0..6 {
        replies.push(api.post(
            "/v1/sessions",
            "",
            &json!({"login": "alice", "password": format!("wrong-{guess}")}),
            &[],
        ));
    }
    replies.push(api.delete("/v1/sessions/current", &citizen.token));
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 404, 405, 401, 200, 403, 400, 413, 422, 400, 201, 401, 401, 401, 401, 401, 429, 204],
        "the answers' statuses"
    );
    for reply in &replies {
        assert_security_headers(reply);
    }
}

/// Sends `request` on a new connection and returns all the server sends back until it closes
/// the connection (or 30 s pass). A write the server cut short is not an error: its answer is.
fn raw_exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
    stream.set_read_timeout(Some(SLOW_CLIENT_CUT_OFF_WITHIN)).expect("a read timeout can be set");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn bodies_and_heads_over_their_limits_are_refused(backend: Backend) {
    let server = TestServer::start(backend);
    let address = server.address();

    // A chunked body without Content-Length is held to the same 64 KiB.
    let mut chunked = format!(
        "POST /v1/citizens HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    let body = format!("{{\"login\":\"alice\",\"password\":\"{}\"}}", "p".repeat(70 * 1024));
    for piece in body.as_bytes().chunks(8 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(&address, &chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "a 70 KiB chunked body: {answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    // Nothing was registered.
    let api = server.client();
    api.post("/v1/sessions", "", &json!({"login": "alice", "password": "p".repeat(100)}), &[])
        .expect_error(401, "invalid_credentials");

    // A chunked body within the limit goes through.
    let small = json!({"login": "bob", "password": PASSWORD}).to_string();
    let request = format!(
        "POST /v1/citizens HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{small}\r\n0\r\n\r\n",
        small.len()
    );
    let answer = raw_exchange(&address, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 201"), "a small chunked body: {answer}");

    // A request head of 128 KiB that has not ended yet is refused 431 (actix-http's bound). It is
    // sent exactly so, so that the server reads all of it before it answers and closes.
    let mut head = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Padding: ").into_bytes();
    head.resize(128 * 1024, b'a');
    let answer = raw_exchange(&address, &head);
    assert!(answer.starts_with("HTTP/1.1 431"), "a 128 KiB head: {answer:.200}");

    // More than 96 header fields: 431 as well (actix-http's bound on fields).
    let mut many = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for index in 0..100 {
        many.push_str(&format!("X-Field-{index}: {index}\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_exchange(&address, many.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "100 header fields: {answer}");

    // The server is still up and serving.
    assert_eq!(api.get("/healthz", "").expect(200), json!({"status": "ok"}));
    api.register_citizen("carol");
}

/// Whether `answer` holds a whole HTTP response (its head, and as much body as it announced).
fn is_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    body.len() >= length.unwrap_or(0)
}

/// Sends `start` on a new connection, then one byte of `trickle` every 250 ms (from the start
/// again when it runs out), and returns what the server answered once it closed the connection
/// or sent a whole answer.
/// Panics if the connection is still open after [`SLOW_CLIENT_CUT_OFF_WITHIN`]. `meanwhile` runs
/// once, a second in.
fn trickle_until_cut_off(address: &str, start: &[u8], trickle: &[u8], meanwhile: impl FnOnce()) -> String {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
    stream.set_read_timeout(Some(SLOW_CLIENT_BYTE_INTERVAL)).expect("a read timeout can be set");
    stream.write_all(start).expect("the start of the request is sent");
    let began = Instant::now();
    let mut meanwhile = Some(meanwhile);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    for byte in trickle.iter().cycle() {
        assert!(
            began.elapsed() < SLOW_CLIENT_CUT_OFF_WITHIN,
            "a slow client was still connected after {SLOW_CLIENT_CUT_OFF_WITHIN:?}; answer so far: {}",
            String::from_utf8_lossy(&answer)
        );
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                answer.extend_from_slice(&buffer[..read]);
                if is_complete(&answer) {
                    break;
                }
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break, // reset: closed
        }
        if began.elapsed() > Duration::from_secs(1) {
            if let Some(meanwhile) = meanwhile.take() {
                meanwhile();
            }
        }
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            // Closed; read what was answered before.
            let _ = stream.read_to_end(&mut answer);
            break;
        }
    }
    assert!(meanwhile.is_none(), "the slow client was cut off within a second; the test checks nothing meanwhile");
    String::from_utf8_lossy(&answer).into_owned()
}

fn slow_clients_are_cut_off_while_others_are_served(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_CLIENT_REQUEST_TIMEOUT_S", "2"), ("WALLET_BODY_TIMEOUT_S", "2")]);
    let api = &app.api;
    let address = app.server.address();
    api.register_citizen("alice");

    // A request head that never ends: 408, closed.
    let start = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Slow: ");
    let answer = trickle_until_cut_off(&address, start.as_bytes(), b"abcdefgh", || {
        assert_eq!(api.get("/healthz", "").expect(200), json!({"status": "ok"}));
        api.login("alice", PASSWORD);
    });
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "a slow head: {answer}");

    // A body that never ends: 408 request_timeout, and nothing done.
    let start = format!(
        "POST /v1/citizens HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n\
         {{\"login\":\"slowpoke\",\"password\":\"{PASSWORD}\""
    );
    let answer = trickle_until_cut_off(&address, start.as_bytes(), b" ", || {
        let admin = api.login(ADMIN_LOGIN, PASSWORD);
        assert_eq!(api.get("/v1/admin/ledger/trial-balance", &admin).expect(200)["total"], "0");
    });
    assert!(answer.starts_with("HTTP/1.1 408"), "a slow body: {answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    api.post("/v1/sessions", "", &json!({"login": "slowpoke", "password": PASSWORD}), &[])
        .expect_error(401, "invalid_credentials");
    assert_eq!(api.get("/healthz", "").expect(200), json!({"status": "ok"}));
}

fn tokens_and_passwords_never_reach_the_log(backend: Backend) {
    let app = TestApp::start_with(backend, &[("RUST_LOG", "trace")]);
    let api = &app.api;
    let admin = app.admin();
    let first_password = "first-Password-8f3a91";
    let second_password = "second-Password-2c77e0";
    let wrong_password = "wrong-Password-5d10b4";

    api.post("/v1/citizens", "", &json!({"login": "alice", "password": first_password}), &[]).expect(201);
    let first_token = api.login("alice", first_password);
    api.charge(&first_token, "50000").expect(201);
    let shop = api.create_merchant(&admin, "shop");
    let code = api.payment_code(&first_token);
    api.pay(&shop.token, &code, "1000").expect(201);
    api.post("/v1/sessions", "", &json!({"login": "alice", "password": wrong_password}), &[])
        .expect_error(401, "invalid_credentials");
    let issued = api.post("/v1/admin/citizens/alice/password-reset", &admin, &json!({}), &[]).expect(201);
    let reset_code = string(&issued["reset_code"]);
    let body = json!({"login": "alice", "reset_code": reset_code, "password": second_password});
    assert_eq!(api.post("/v1/citizens/password", "", &body, &[]).status, 204);
    api.get("/v1/wallet", &first_token).expect_error(401, "unauthorized");
    let second_token = api.login("alice", second_password);
    assert_eq!(api.balance(&second_token), "49000");
    assert_eq!(api.delete("/v1/sessions/current", &second_token).status, 204);

    let log = app.server.log();
    // The log did record these requests at this level, so its silence below means something.
    assert!(log.contains("/v1/sessions") && log.contains("/v1/citizens/password"), "nothing logged:\n{log:.2000}");
    for (what, secret) in [
        ("a password", first_password),
        ("a changed password", second_password),
        ("a wrong password", wrong_password),
        ("the admin's password", PASSWORD),
        ("a token", &first_token),
        ("a second token", &second_token),
        ("the admin's token", &admin),
        ("a merchant's token", &shop.token),
        ("a reset code", &reset_code),
        ("a payment code", &code),
    ] {
        assert!(!log.contains(secret), "{what} is in the server's log ({} bytes at RUST_LOG=trace)", log.len());
    }
}

/// Inputs at their edges are refused with a clear 4xx before any work: a history cursor or
/// limit not written as the server writes numbers, a login or password longer than any this
/// server keeps, an `Authorization` or other header value over its cap.
fn inputs_past_their_edges_are_refused_before_any_work(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    for _ in 0..3 {
        api.charge(&alice.token, "1000").expect(201);
    }
    // The cursor the server gives is a plain decimal; `+5`, `05` and ` 5` parse as 5 in Rust's
    // `i64::from_str` and were taken as it.
    let page = api.history(&alice.token, "limit=1");
    let cursor = string(&page["next_cursor"]);
    api.get(&format!("/v1/wallet/transactions?limit=1&cursor={cursor}"), &alice.token).expect(200);
    for bad in [format!("%2B{cursor}"), format!("0{cursor}"), format!("%20{cursor}"), "-1".to_owned(), "".to_owned()] {
        api.get(&format!("/v1/wallet/transactions?cursor={bad}"), &alice.token).expect_error(422, "validation_failed");
    }
    for bad in ["%2B5", "05", "1e1", "201"] {
        api.get(&format!("/v1/wallet/transactions?limit={bad}"), &alice.token).expect_error(422, "validation_failed");
    }

    // A login or password longer than any kept here: 422, and not a failure the throttle counts
    // (the throttle allows 5 failures a login, then 1 a minute; 8 of these are all answered 422).
    let long_login = "a".repeat(65);
    for _ in 0..8 {
        let reply = api.post("/v1/sessions", "", &json!({"login": long_login, "password": PASSWORD}), &[]);
        reply.expect_error(422, "validation_failed");
    }
    let long_password = "p".repeat(129);
    for _ in 0..8 {
        let reply = api.post("/v1/sessions", "", &json!({"login": alice.login, "password": long_password}), &[]);
        reply.expect_error(422, "validation_failed");
    }
    // Alice still logs in at once: none of those counted against her login or this address.
    api.login(&alice.login, PASSWORD);

    // Header values: a 2 KiB Authorization is refused 431 before authentication; one within the
    // cap that is not a token is the usual 401; a 9 KiB value of any other header is 431 too.
    let long_token = "t".repeat(2_048);
    let reply = api.send("GET", "/v1/wallet", &long_token, Body::Empty, &[]);
    reply.expect_error(431, "invalid_request");
    assert!(!reply.header("x-request-id").is_empty(), "a refused request keeps its request id");
    api.send("GET", "/v1/wallet", &"t".repeat(900), Body::Empty, &[]).expect_error(401, "unauthorized");
    let long_value = "v".repeat(9 * 1_024);
    let reply = api.send("GET", "/v1/wallet", &alice.token, Body::Empty, &[("X-Client-Note", &long_value)]);
    reply.expect_error(431, "invalid_request");
    assert!(reply.text.contains("x-client-note"), "the refusal names the header: {}", reply.text);
    api.get("/v1/wallet", &alice.token).expect(200);
}

/// Malformed request heads cannot flood the log: actix-http logs an ERROR line for each, so a
/// client sending garbage could fill the disk and drown real errors. They are all counted in
/// `/metrics`, a few a second reach the log, and the sweep says how many it left out.
fn malformed_requests_are_counted_not_logged_one_by_one(backend: Backend) {
    let app = TestApp::start(backend);
    const SENT: usize = 200;
    let started = Instant::now();
    for _ in 0..SENT {
        raw_exchange(&app.server.address(), b"GARBAGE\r\n\r\n");
    }
    let seconds = started.elapsed().as_secs() + 1;
    // The sweep runs every 5 s; wait for the one that reports what it left out.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !app.server.log().contains("log lines suppressed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = app.server.log();
    let lines = log.lines().filter(|line| line.contains("request parse error")).count();
    // 5 a second at most (the sending took `seconds`), and a second's slack at each edge.
    assert!(lines as u64 <= 5 * (seconds + 2), "{lines} parse-error lines for {SENT} requests in {seconds} s");
    assert!(log.contains("log lines suppressed"), "no summary of the suppressed lines:\n{log}");
    let counted = app.api.metric("wallet_malformed_requests_total").expect("the counter is in /metrics");
    assert!(counted >= SENT as f64, "counted {counted} of {SENT}");
    // The server still serves.
    app.api.get("/healthz", "").expect(200);
}

scenarios!(
    malformed_requests_are_counted_not_logged_one_by_one,
    inputs_past_their_edges_are_refused_before_any_work,
    every_answer_carries_the_security_headers,
    bodies_and_heads_over_their_limits_are_refused,
    slow_clients_are_cut_off_while_others_are_served,
    tokens_and_passwords_never_reach_the_log,
);
