//! The charge bonus program (docs/API.md Part 2, issue 17): cohorts by SHA-256 of the wallet id,
//! each cohort's window and share, the bonus cut by the share and the quota, the charge itself
//! never refused for it, and at most one program open at any instant.
//!
//! Cohorts are computed here from the contract's definition, independently of the server.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{amount_body, history_rows, string, Backend, Citizen, TestApp};

const PROGRAMS: &str = "/v1/admin/programs";
const COHORTS: u32 = 3;

/// The contract's cohort: the first four bytes of SHA-256 of the wallet id, big-endian, modulo
/// the cohorts.
fn cohort_of(wallet_id: &str) -> u32 {
    let digest = Sha256::digest(wallet_id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % COHORTS
}

fn program(opens_at: &str, closes_at: &str) -> Value {
    json!({"kind": "charge_bonus", "name": "3월 충전 인센티브", "rate": "0.10", "monthly_charge_cap": "100000",
           "opens_at": opens_at, "closes_at": closes_at, "cohorts": COHORTS, "cohort_interval_s": 3600})
}

fn charge_bonus(app: &TestApp, citizen: &Citizen, amount: &str) -> String {
    let reply = app.api.charge(&citizen.token, amount).expect(201);
    string(&reply["bonus"])
}

fn shares(app: &TestApp, program_id: &str) -> Vec<(String, String)> {
    let program = app.api.get(&format!("{PROGRAMS}/{program_id}"), &app.admin()).expect(200);
    program["budget"]["cohorts"]
        .as_array()
        .expect("cohorts")
        .iter()
        .map(|cohort| (string(&cohort["share"]), string(&cohort["paid_out"])))
        .collect()
}

fn charges_earn_their_cohorts_bonus(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    // Citizens until each cohort has three.
    let mut by_cohort: Vec<Vec<Citizen>> = (0..COHORTS).map(|_| Vec::new()).collect();
    let mut index = 0;
    while by_cohort.iter().any(|citizens| citizens.len() < 3) {
        let citizen = api.register_citizen(&format!("citizen-{index}"));
        index += 1;
        let cohort = cohort_of(&citizen.wallet_id) as usize;
        if by_cohort[cohort].len() < 3 {
            by_cohort[cohort].push(citizen);
        }
        assert!(index < 200, "the cohorts are not filling");
    }
    // The clock is at 2030-01-10T01:00Z; cohorts open at 02:00, 03:00 and 04:00.
    let created =
        api.post(PROGRAMS, &app.admin(), &program("2030-01-10T02:00:00Z", "2030-02-10T00:00:00Z"), &[]).expect(201);
    let program_id = string(&created["program_id"]);
    assert_eq!(created["kind"], "charge_bonus");
    let opens: Vec<String> =
        created["budget"]["cohorts"].as_array().unwrap().iter().map(|c| string(&c["opens_at"])).collect();
    assert_eq!(opens, ["2030-01-10T02:00:00Z", "2030-01-10T03:00:00Z", "2030-01-10T04:00:00Z"]);
    // Each wallet sees its own cohort's opening and the whole quota.
    for (cohort, citizens) in by_cohort.iter().enumerate() {
        let shown = &api.wallet(&citizens[0].token)["charge_bonus"];
        assert_eq!(shown["program_id"], json!(program_id));
        assert_eq!(shown["opens_at"], json!(opens[cohort]), "cohort {cohort}");
        assert_eq!(shown["quota_remaining"], "100000");
    }
    // 30,001: 10,000 to each cohort and the remainder, 1, to cohort 0.
    let top_up = |amount: &str| {
        api.post_keyed(&format!("{PROGRAMS}/{program_id}/budget-top-ups"), &app.admin(), &amount_body(amount))
    };
    top_up("30001").expect(201);
    assert_eq!(
        shares(&app, &program_id),
        [("10001".into(), "0".into()), ("10000".into(), "0".into()), ("10000".into(), "0".into())]
    );

    // Before any window: the charge succeeds and earns nothing.
    assert_eq!(charge_bonus(&app, &by_cohort[0][0], "10000"), "0");
    app.set_clock("2030-01-10T02:30:00Z");
    let mut by_cohort = by_cohort;
    for citizen in by_cohort.iter_mut().flatten() {
        citizen.relogin(api);
    }
    // Cohort 0 is open, cohort 1 not yet.
    assert_eq!(charge_bonus(&app, &by_cohort[1][0], "10000"), "0");
    assert_eq!(
        api.wallet(&by_cohort[1][0].token)["charge_bonus"]["quota_remaining"],
        "100000",
        "no quota used outside the window"
    );
    assert_eq!(charge_bonus(&app, &by_cohort[0][0], "10000"), "1000");
    let wallet = api.wallet(&by_cohort[0][0].token);
    assert_eq!((&wallet["balance"], &wallet["purses"]["bonus"]), (&json!("21000"), &json!("1000")));
    assert_eq!(wallet["charge_bonus"]["quota_remaining"], "90000");
    let rows = history_rows(&api.history(&by_cohort[0][0].token, ""));
    assert_eq!(rows[0].0, "charge_bonus", "{rows:?}");
    assert_eq!(rows[0].1, "1000");

    // A top-up after opening splits across the cohorts as before: 3 → 1 each.
    top_up("3").expect(201);
    assert_eq!(
        shares(&app, &program_id),
        [("10002".into(), "1000".into()), ("10001".into(), "0".into()), ("10001".into(), "0".into())]
    );

    // Every cohort open. Cohort 2: a 100,000 charge earns 10,000 of its 10,001; the next charge
    // gets the 1 won left (the share cut it); the one after, nothing, and succeeds all the same.
    app.set_clock("2030-01-10T04:30:00Z");
    for citizen in by_cohort.iter_mut().flatten() {
        citizen.relogin(api);
    }
    assert_eq!(charge_bonus(&app, &by_cohort[2][0], "100000"), "10000");
    assert_eq!(charge_bonus(&app, &by_cohort[2][1], "50000"), "1");
    // The cut bonus used ceil(1 / 0.1) = 10 won of the quota, not 50,000.
    assert_eq!(api.wallet(&by_cohort[2][1].token)["charge_bonus"]["quota_remaining"], "99990");
    assert_eq!(charge_bonus(&app, &by_cohort[2][2], "50000"), "0");
    assert_eq!(api.wallet(&by_cohort[2][2].token)["charge_bonus"]["quota_remaining"], "100000");
    // Cohort 2's empty share took nothing from cohort 1's: its citizens still earn.
    assert_eq!(charge_bonus(&app, &by_cohort[1][1], "20000"), "2000");
    assert_eq!(
        shares(&app, &program_id),
        [("10002".into(), "1000".into()), ("10001".into(), "2000".into()), ("10001".into(), "10001".into())]
    );
    let budget = &api.get(&format!("{PROGRAMS}/{program_id}"), &app.admin()).expect(200)["budget"];
    assert_eq!(
        (&budget["funded"], &budget["paid_out"], &budget["remaining"]),
        (&json!("30004"), &json!("13001"), &json!("17003"))
    );
    app.assert_books_balance();
}

fn charge_bonus_programs_may_not_overlap(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let admin = app.admin();
    api.post(PROGRAMS, &admin, &program("2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z"), &[]).expect(201);
    for (opens, closes) in [
        ("2030-02-15T00:00:00Z", "2030-03-02T00:00:00Z"),
        ("2030-03-10T00:00:00Z", "2030-03-20T00:00:00Z"),
        ("2030-03-31T23:59:59Z", "2030-05-01T00:00:00Z"),
    ] {
        api.post(PROGRAMS, &admin, &program(opens, closes), &[]).expect_error(422, "validation_failed");
    }
    // Back to back is not overlapping: one closes as the next opens.
    api.post(PROGRAMS, &admin, &program("2030-04-01T00:00:00Z", "2030-05-01T00:00:00Z"), &[]).expect(201);
    // Definitions the contract refuses: fields of the other kind, a zero rate, too many cohorts,
    // a last cohort opening after the close.
    let mut bad = program("2030-06-01T00:00:00Z", "2030-07-01T00:00:00Z");
    bad["valid_days"] = json!(30);
    api.post(PROGRAMS, &admin, &bad, &[]).expect_error(422, "validation_failed");
    for (field, value) in [("rate", json!("0")), ("cohorts", json!(32)), ("cohort_interval_s", json!(604_800))] {
        let mut bad = program("2030-06-01T00:00:00Z", "2030-06-10T00:00:00Z");
        bad[field] = value;
        api.post(PROGRAMS, &admin, &bad, &[]).expect_error(422, "validation_failed");
    }
    let list = api.get(PROGRAMS, &admin).expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
}

/// Citizens waiting in line are told when their cohort opens (nothing to gain by racing it), and
/// Retry-After is spread so a crowd told the same estimate does not come back at one instant.
fn the_waiting_room_tells_each_citizen_their_cohorts_opening(backend: Backend) {
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", "1")]);
    let api = &app.api;
    // The one slot is taken.
    let _holder = api.register_citizen("holder");
    let created =
        api.post(PROGRAMS, &app.admin(), &program("2030-01-11T00:00:00Z", "2030-02-10T00:00:00Z"), &[]).expect(201);
    let opens: Vec<String> =
        created["budget"]["cohorts"].as_array().unwrap().iter().map(|c| string(&c["opens_at"])).collect();
    let mut first_ticket = String::new();
    for index in 0..8 {
        let login = format!("waiting-{index}");
        let registered = api
            .post("/v1/citizens", "", &json!({"login": login, "password": crate::support::PASSWORD}), &[])
            .expect(201);
        let wallet_id = string(&registered["wallet_id"]);
        let reply = api.post("/v1/sessions", "", &json!({"login": login, "password": crate::support::PASSWORD}), &[]);
        reply.expect_error(503, "waiting_room");
        let expected = &opens[cohort_of(&wallet_id) as usize];
        assert_eq!(reply.json["waiting_room"]["charge_bonus_opens_at"], json!(expected), "{reply}");
        let retry_after: u64 = reply.header("retry-after").parse().expect("Retry-After in seconds");
        let estimate = reply.json["waiting_room"]["estimated_wait_s"].as_u64().expect("an estimate").clamp(1, 30);
        // Within the wait told, at most a quarter (at least a second) sooner, never under a second.
        assert!(
            retry_after <= estimate && retry_after + (estimate / 4).max(1) >= estimate && retry_after >= 1,
            "{retry_after} for {estimate}"
        );
        if index == 0 {
            first_ticket = string(&reply.json["waiting_room"]["ticket"]);
        }
    }
    // The first in line asks again and again, told the same place and estimate each time: the
    // Retry-After it is given varies (the estimate less 0 to a quarter of it, at least a second).
    let mut told = std::collections::BTreeMap::new();
    for _ in 0..24 {
        let body = json!({"login": "waiting-0", "password": crate::support::PASSWORD, "ticket": first_ticket});
        let reply = api.post("/v1/sessions", "", &body, &[]);
        reply.expect_error(503, "waiting_room");
        let estimate = reply.json["waiting_room"]["estimated_wait_s"].as_u64().expect("an estimate");
        let retry_after: u64 = reply.header("retry-after").parse().expect("Retry-After in seconds");
        told.entry(estimate).or_insert_with(std::collections::BTreeSet::new).insert(retry_after);
    }
    assert!(told.values().any(|values| values.len() > 1), "one estimate, one Retry-After each time: {told:?}");
}

scenarios!(
    charges_earn_their_cohorts_bonus,
    charge_bonus_programs_may_not_overlap,
    the_waiting_room_tells_each_citizen_their_cohorts_opening
);
