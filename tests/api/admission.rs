//! Admission: the citizen waiting room (capacity, FIFO tickets, dropped tickets, merchants never
//! wait) and the request limiter (low classes shed with 503 + Retry-After, changing nothing,
//! while POS payments go on). No assertion depends on how fast the machine is.

use serde_json::json;

use crate::support::{string, Backend, Body, Client, TestApp, PASSWORD};

/// Logs `login` in, optionally with a waiting-room ticket; the raw reply.
fn try_login(api: &Client, login: &str, ticket: Option<&str>) -> crate::support::Reply {
    let mut body = json!({"login": login, "password": PASSWORD});
    if let Some(ticket) = ticket {
        body["ticket"] = json!(ticket);
    }
    api.post("/v1/sessions", "", &body, &[])
}

/// A 503 `waiting_room` answer: its ticket and position, after checking Retry-After.
#[track_caller]
fn queued(reply: &crate::support::Reply) -> (String, u64) {
    reply.expect_error(503, "waiting_room");
    let retry_after: u64 = reply.header("retry-after").parse().unwrap_or_else(|_| panic!("no Retry-After: {reply}"));
    assert!(retry_after >= 1, "{reply}");
    let room = &reply.json["waiting_room"];
    let position = room["position"].as_u64().unwrap_or_else(|| panic!("no position: {reply}"));
    assert!(room["estimated_wait_s"].as_u64().is_some(), "{reply}");
    (string(&room["ticket"]), position)
}

/// Registers a citizen without logging in (a login would take a session slot).
fn register(api: &Client, login: &str) -> String {
    api.post("/v1/citizens", "", &json!({"login": login, "password": PASSWORD}), &[]).expect(201);
    login.to_owned()
}

fn position_of(api: &Client, ticket: &str) -> u64 {
    let poll = api.get(&format!("/v1/waiting-room/{ticket}"), "").expect(200);
    poll["position"].as_u64().unwrap_or_else(|| panic!("no position in {poll}"))
}

fn a_full_server_queues_citizens_first_in_first_out(backend: Backend) {
    // Two workers, so a ticket must be known to whichever worker a retry or poll lands on.
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "2"), ("WALLET_WORKERS", "2")]);
    let api = &app.api;
    let citizens: Vec<String> = (0..4).map(|index| register(api, &format!("citizen{index}"))).collect();

    let first = api.login(&citizens[0], PASSWORD);
    let second = api.login(&citizens[1], PASSWORD);
    let (third_ticket, third_position) = queued(&try_login(api, &citizens[2], None));
    let (fourth_ticket, fourth_position) = queued(&try_login(api, &citizens[3], None));
    assert_eq!((third_position, fourth_position), (1, 2));
    // Re-polling never changes a place, whichever worker answers.
    for _ in 0..6 {
        assert_eq!(position_of(api, &third_ticket), 1);
        assert_eq!(position_of(api, &fourth_ticket), 2);
    }
    // Merchants and admins never wait in the citizen waiting room.
    let merchant = api.create_merchant(&app.admin(), "shop");
    api.delete("/v1/sessions/current", &merchant.token).expect(204);
    api.login(&merchant.login, PASSWORD);
    let admission = api.get("/v1/admin/admission", &app.admin()).expect(200);
    assert_eq!(
        (admission["active_sessions"].as_u64(), admission["waiting"].as_u64()),
        (Some(2), Some(2)),
        "{admission}"
    );

    // A slot frees: the fourth, retrying first, does not jump the third.
    api.delete("/v1/sessions/current", &first).expect(204);
    assert_eq!(queued(&try_login(api, &citizens[3], Some(&fourth_ticket))).1, 2);
    let third = try_login(api, &citizens[2], Some(&third_ticket)).expect(201);
    assert_eq!(third["role"], "citizen");
    assert_eq!(position_of(api, &fourth_ticket), 1, "the line moved up");
    queued(&try_login(api, &citizens[3], Some(&fourth_ticket)));
    api.delete("/v1/sessions/current", &second).expect(204);
    try_login(api, &citizens[3], Some(&fourth_ticket)).expect(201);
    api.get(&format!("/v1/waiting-room/{fourth_ticket}"), "").expect_error(404, "not_found");

    let admission = api.get("/v1/admin/admission", &app.admin()).expect(200);
    assert_eq!(
        (admission["active_sessions"].as_u64(), admission["waiting"].as_u64()),
        (Some(2), Some(0)),
        "{admission}"
    );
    assert!(admission["shed_total"].as_u64() >= Some(3), "{admission}");
}

fn a_ticket_not_polled_for_a_minute_is_dropped(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "1")]);
    let api = &app.api;
    let holder = api.register_citizen("holder"); // its session holds the one slot
    let late = register(api, "late");
    let patient = register(api, "patient");
    let (late_ticket, _) = queued(&try_login(api, &late, None));
    app.set_clock("2030-01-10T01:00:30Z");
    let (patient_ticket, patient_position) = queued(&try_login(api, &patient, None));
    assert_eq!(patient_position, 2);
    app.set_clock("2030-01-10T01:01:20Z"); // 80 s after the late ticket was last polled, 50 s after the patient one
    assert_eq!(position_of(api, &patient_ticket), 1, "the dropped ticket freed its place");
    api.get(&format!("/v1/waiting-room/{late_ticket}"), "").expect_error(404, "not_found");
    // 80 s is within the session idle timeout: the holder still holds the slot.
    api.get("/v1/wallet", &holder.token).expect(200);
    queued(&try_login(api, &patient, Some(&patient_ticket)));
}

fn shedding_refuses_low_classes_quickly_and_changes_nothing(backend: Backend) {
    // A limit of 2 requests in flight: logins may fill 1, POS payments 2. Real argon2 cost makes
    // each registration slow enough that a burst of 40 cannot all get through.
    let app = TestApp::start_with(
        backend,
        &[("WALLET_CONCURRENCY_MAX", "2"), ("WALLET_ARGON2", "m=19456,t=3,p=1"), ("WALLET_WORKERS", "4")],
    );
    let api = &app.api;
    app.top_up_budget("1000000");
    let payer = api.register_citizen("payer");
    api.charge(&payer.token, "500000").expect(201);
    let shop = api.create_merchant(&app.admin(), "shop");

    let burst: Vec<_> = (0..40)
        .map(|index| {
            let api = api.clone();
            std::thread::spawn(move || {
                let login = format!("burst{index}");
                let body = json!({"login": login, "password": PASSWORD});
                (login, api.send("POST", "/v1/citizens", "", Body::Json(&body), &[]))
            })
        })
        .collect();
    // POS payments go on during the burst.
    for _ in 0..5 {
        let code = api.payment_code(&payer.token);
        api.pay(&shop.token, &code, "1000").expect(201);
    }
    let answers: Vec<_> = burst.into_iter().map(|thread| thread.join().expect("burst thread")).collect();
    let mut shed = 0;
    for (login, reply) in &answers {
        match reply.status {
            201 => assert_eq!(try_login(api, login, None).status, 201, "{login} was registered"),
            503 => {
                shed += 1;
                reply.expect_error(503, "overloaded");
                assert!(reply.header("retry-after").parse::<u64>().is_ok(), "no Retry-After: {reply}");
                // Refused means nothing was created.
                try_login(api, login, None).expect_error(401, "invalid_credentials");
            }
            _ => panic!("unexpected answer to a registration in the burst: {reply}"),
        }
    }
    assert!(shed > 0, "a burst of 40 slow registrations against a limit of 1 shed nothing");
    let admission = api.get("/v1/admin/admission", &app.admin()).expect(200);
    let logins = &admission["request_limiter"]["classes"]["logins"];
    assert!(logins["shed_total"].as_u64() >= Some(shed), "{admission}");
    assert_eq!(admission["request_limiter"]["classes"]["pos"]["shed_total"], 0, "{admission}");
    app.assert_books_balance();
}

fn session_capacity_holds_across_two_servers(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "3")]);
    let mut second = app.server.sibling();
    second.spawn();
    let clients = [app.api.clone(), second.client()];
    // The second server's test clock matches the first one's (sessions follow it): it starts
    // where the first one moved it, kept in the database.
    crate::support::assert_same_clock(&app, &clients[1]);
    let logins: Vec<String> = (0..8).map(|index| register(&app.api, &format!("rush{index}"))).collect();

    // Eight citizens log in at the same moment, alternating between the two servers.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(logins.len()));
    let rush: Vec<_> = logins
        .iter()
        .enumerate()
        .map(|(index, login)| {
            let (api, barrier, login) = (clients[index % 2].clone(), barrier.clone(), login.clone());
            std::thread::spawn(move || {
                barrier.wait();
                try_login(&api, &login, None)
            })
        })
        .collect();
    let answers: Vec<_> = rush.into_iter().map(|thread| thread.join().expect("login thread")).collect();
    let admitted = answers.iter().filter(|reply| reply.status == 201).count();
    for reply in answers.iter().filter(|reply| reply.status != 201) {
        queued(reply);
    }
    assert_eq!(admitted, 3, "two servers together let in {admitted} citizens against a capacity of 3");
    for api in &clients {
        let admin = api.login(crate::support::ADMIN_LOGIN, PASSWORD);
        let admission = api.get("/v1/admin/admission", &admin).expect(200);
        assert_eq!(admission["active_sessions"].as_u64(), Some(3), "{admission}");
    }
}

/// Polls `ticket` on `api` until its position is `expected` (the servers re-read the shared
/// line about twice a second); panics after ten seconds.
#[track_caller]
fn settles_at(api: &Client, ticket: &str, expected: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let position = position_of(api, ticket);
        if position == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "ticket stayed at {position}, expected {expected}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Polls until the server says `ticket` may log in now (its count of sessions is re-read at
/// most every 250 ms); panics after ten seconds.
#[track_caller]
fn ready(api: &Client, ticket: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while api.get(&format!("/v1/waiting-room/{ticket}"), "").expect(200)["ready"] != json!(true) {
        assert!(std::time::Instant::now() < deadline, "ticket {ticket} never became ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn ticket_order_holds_across_two_servers(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "1")]);
    let mut second = app.server.sibling();
    second.spawn();
    let (one, two) = (app.api.clone(), second.client());
    crate::support::assert_same_clock(&app, &two);
    let holder = one.login(&register(&one, "holder"), PASSWORD);
    let (first, second_in_line, third) = (register(&one, "first"), register(&one, "second"), register(&one, "third"));

    // In line through alternating servers: first (server one), second (two), third (one).
    let (first_ticket, _) = queued(&try_login(&one, &first, None));
    let (second_ticket, _) = queued(&try_login(&two, &second_in_line, None));
    let (third_ticket, _) = queued(&try_login(&one, &third, None));
    // Both servers agree on one order, whichever is asked.
    for api in [&one, &two] {
        settles_at(api, &first_ticket, 1);
        settles_at(api, &second_ticket, 2);
        settles_at(api, &third_ticket, 3);
    }
    // A slot frees: neither the second nor the third may take it before the first, on either server.
    one.delete("/v1/sessions/current", &holder).expect(204);
    for api in [&one, &two] {
        ready(api, &first_ticket);
    }
    queued(&try_login(&two, &second_in_line, Some(&second_ticket)));
    queued(&try_login(&one, &third, Some(&third_ticket)));
    let first_session = try_login(&two, &first, Some(&first_ticket)).expect(201);
    settles_at(&one, &second_ticket, 1);
    settles_at(&two, &third_ticket, 2);
    two.delete("/v1/sessions/current", &string(&first_session["token"])).expect(204);
    ready(&one, &second_ticket);
    try_login(&one, &second_in_line, Some(&second_ticket)).expect(201);
}

fn an_idle_session_gives_its_slot_back(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "1")]);
    let api = &app.api;
    let idle = api.register_citizen("idle"); // holds the one slot, then goes quiet
    let next = register(api, "next");
    let (ticket, _) = queued(&try_login(api, &next, None));
    // Past the 15-minute idle timeout, polling the ticket on the way so it is kept: the sweep
    // ends the idle session and frees its slot.
    let start = chrono::DateTime::parse_from_rfc3339(crate::support::CLOCK_START).unwrap();
    for step in 1..=17 {
        let now = start + chrono::Duration::seconds(step * 55);
        app.set_clock(&now.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        position_of(api, &ticket);
    }
    ready(api, &ticket);
    try_login(api, &next, Some(&ticket)).expect(201);
    api.get("/v1/wallet", &idle.token).expect_error(401, "unauthorized");
}

/// The first tickets of a storm are told a wait from what the server knows before it has let
/// anyone in from the line (its session capacity, and how long a slot is held: by default the
/// idle timeout), not two seconds a place; a place further back is told longer; `Retry-After`
/// never sends an app back later than the wait it was told. Password checks at the tests' argon2
/// cost take about a millisecond, so the wait is the slots' turnover; the upper bounds leave
/// room for checks slower by a thousandfold.
fn the_first_waits_of_a_storm_start_from_what_the_server_knows(backend: Backend) {
    // Two slots, each held up to the 60 s idle timeout: a place beyond them waits 30 s a place
    // for the slots to turn over, told with a margin of 1.5: 45 s a place.
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "2"), ("WALLET_SESSION_IDLE_S", "60")]);
    let api = &app.api;
    api.register_citizen("holder1");
    api.register_citizen("holder2");
    let mut told = Vec::new();
    for index in 0..4u64 {
        let login = register(api, &format!("storm{index}"));
        let reply = try_login(api, &login, None);
        let (ticket, position) = queued(&reply);
        assert_eq!(position, index + 1);
        let estimate = reply.json["waiting_room"]["estimated_wait_s"].as_u64().expect("an estimate");
        assert!((45 * position..=90 * position).contains(&estimate), "place {position} told {estimate} s: {reply}");
        let retry_after: u64 = reply.header("retry-after").parse().expect("Retry-After in seconds");
        assert!((1..=estimate.min(30)).contains(&retry_after), "Retry-After {retry_after} past {estimate} s: {reply}");
        let polled = api.get(&format!("/v1/waiting-room/{ticket}"), "").expect(200);
        assert_eq!(polled["estimated_wait_s"].as_u64(), Some(estimate), "a poll tells the same wait: {polled}");
        told.push(estimate);
    }
    assert!(told.windows(2).all(|pair| pair[0] < pair[1]), "further back, longer: {told:?}");
    // The operator's own expectation of how long a slot is held replaces the idle timeout.
    let app = TestApp::start_with(
        backend,
        &[("WALLET_MAX_SESSIONS", "2"), ("WALLET_SESSION_IDLE_S", "60"), ("WALLET_SESSION_HOLD_EXPECTED_S", "8")],
    );
    let api = &app.api;
    api.register_citizen("holder1");
    api.register_citizen("holder2");
    let login = register(api, "storm0");
    let reply = try_login(api, &login, None);
    queued(&reply);
    let estimate = reply.json["waiting_room"]["estimated_wait_s"].as_u64().expect("an estimate");
    assert!((6..=12).contains(&estimate), "told {estimate} s with slots held 8 s: {reply}");
    let retry_after: u64 = reply.header("retry-after").parse().expect("Retry-After in seconds");
    assert!((1..=estimate).contains(&retry_after), "Retry-After {retry_after} past {estimate} s: {reply}");
}

scenarios!(
    the_first_waits_of_a_storm_start_from_what_the_server_knows,
    an_idle_session_gives_its_slot_back,
    ticket_order_holds_across_two_servers,
    session_capacity_holds_across_two_servers,
    a_full_server_queues_citizens_first_in_first_out,
    a_ticket_not_polled_for_a_minute_is_dropped,
    shedding_refuses_low_classes_quickly_and_changes_nothing
);
