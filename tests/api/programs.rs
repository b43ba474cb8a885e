//! Allowance programs and purses (PROGRAMS.md, issue 16): programs and their budgets, grants
//! (all lines or none), the spending order across purses and `paid_from`, refunds in the reverse
//! order, expiry and its background sweep, gifts from `own` only, merchant PATCH and revenue
//! eligibility, and `wallet-server programs grant` from a file.
//!
//! Every figure below is worked out by hand in the comments, from the contract: a test that
//! computed it with the server's own rule would agree with any bug in that rule.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeDelta};
use serde_json::{json, Value};

use crate::support::{
    amount_body, history_rows, new_key, rows, string, time, unknown_id_like, won, Backend, Body, Citizen, Client,
    Merchant, Reply, TestApp, ADMIN_LOGIN, CLOCK_START, PASSWORD,
};

/// The business date (KST) of [`CLOCK_START`]: grants made before a test moves the clock are of
/// this day.
const START_DATE: &str = "2030-01-10";
/// How long a test waits for the allowance sweep (every 5 s) to return an expired grant.
const SWEEP_WAIT_MAX: Duration = Duration::from_secs(30);
/// How often a waiting test looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The sweep's period (PROGRAMS.md: every few seconds; the server runs it every 5 s), and a
/// margin: sleeping this long lets at least one more sweep run.
const SWEEP_PERIOD_AND_MARGIN: Duration = Duration::from_secs(7);

const PROGRAMS: &str = "/v1/admin/programs";

// ---------------------------------------------------------------------------------------------
// Helpers: programs, grants, budgets.

fn program_path(program_id: &str) -> String {
    format!("{PROGRAMS}/{program_id}")
}

fn top_ups_path(program_id: &str) -> String {
    format!("{}/budget-top-ups", program_path(program_id))
}

fn grants_path(program_id: &str) -> String {
    format!("{}/grants", program_path(program_id))
}

/// Creates a program from `definition`, asserted 201; returns it as the server shows it.
#[track_caller]
fn create_program(app: &TestApp, definition: &Value) -> Value {
    app.api.post(PROGRAMS, &app.admin(), definition, &[]).expect(201)
}

/// Creates an allowance program of `valid_days` that admits every merchant; returns its id.
#[track_caller]
fn allowance_program(app: &TestApp, name: &str, valid_days: u32) -> String {
    let program = create_program(app, &json!({"kind": "allowance", "name": name, "valid_days": valid_days}));
    string(&program["program_id"])
}

/// Tops up a program's budget (fresh key), asserted 201; returns the budget after.
#[track_caller]
fn top_up_program(app: &TestApp, program_id: &str, amount: &str) -> Value {
    let answer = app.api.post_keyed(&top_ups_path(program_id), &app.admin(), &amount_body(amount)).expect(201);
    assert!(answer["budget"].is_object(), "a top-up answers with the budget: {answer}");
    answer["budget"].clone()
}

/// `{"grants":[{"wallet_id","amount"}…]}`.
fn grants_body(lines: &[(&str, &str)]) -> Value {
    let grants: Vec<Value> =
        lines.iter().map(|(wallet_id, amount)| json!({"wallet_id": wallet_id, "amount": amount})).collect();
    json!({ "grants": grants })
}

/// Grants `lines` of a program with a fresh key; the answer whatever its status.
#[track_caller]
fn grant(app: &TestApp, program_id: &str, lines: &[(&str, &str)]) -> Reply {
    app.api.post_keyed(&grants_path(program_id), &app.admin(), &grants_body(lines))
}

/// The program's budget as `GET /v1/admin/programs/{id}` shows it.
#[track_caller]
fn program_budget(app: &TestApp, program_id: &str) -> Value {
    app.api.get(&program_path(program_id), &app.admin()).expect(200)["budget"].clone()
}

/// An allowance budget, with `outstanding` and `remaining` from the contract's identities:
/// `granted = spent + returned + outstanding` and `remaining = funded − granted + returned`.
fn budget(funded: i128, granted: i128, spent: i128, returned: i128) -> Value {
    let outstanding = granted - spent - returned;
    let remaining = funded - granted + returned;
    assert!(outstanding >= 0 && remaining >= 0, "the test expects an impossible budget");
    json!({
        "funded": funded.to_string(), "granted": granted.to_string(), "spent": spent.to_string(),
        "returned": returned.to_string(), "outstanding": outstanding.to_string(), "remaining": remaining.to_string(),
    })
}

/// The `rows` of a refused grants request as `(index, code)`, by index.
#[track_caller]
fn bad_rows(reply: &Reply) -> Vec<(u64, String)> {
    let rows = reply.json["rows"].as_array().unwrap_or_else(|| panic!("a refused grant names its rows: {reply}"));
    let mut rows: Vec<(u64, String)> = rows
        .iter()
        .map(|row| {
            (row["index"].as_u64().unwrap_or_else(|| panic!("a row index is a number: {reply}")), string(&row["code"]))
        })
        .collect();
    rows.sort();
    rows
}

/// Shorthand for the expected side of [`bad_rows`].
fn expected_rows(expected: &[(u64, &str)]) -> Vec<(u64, String)> {
    expected.iter().map(|(index, code)| (*index, code.to_string())).collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers: wallets, payments, merchants, the books, time.

/// A wallet's money as its citizen sees it: `balance`, the `own` and `bonus` purses and the
/// allowances shown as `[program_name, amount]` in the order shown. Checks on the way that
/// `balance` is the sum of the purses. A grant spent down to "0" may or may not be listed (the
/// contract leaves it open), so such grants are left out.
#[track_caller]
fn money(api: &Client, token: &str) -> Value {
    let wallet = api.wallet(token);
    let purses = &wallet["purses"];
    let allowances = purses["allowances"].as_array().unwrap_or_else(|| panic!("no purses.allowances in {wallet}"));
    let allowances_sum: i128 = allowances.iter().map(|allowance| won(&allowance["amount"])).sum();
    let purses_sum = won(&purses["own"]) + won(&purses["bonus"]) + allowances_sum;
    assert_eq!(won(&wallet["balance"]), purses_sum, "balance is the sum of the purses: {wallet}");
    let shown: Vec<Value> = allowances
        .iter()
        .filter(|allowance| allowance["amount"] != "0")
        .map(|allowance| json!([allowance["program_name"], allowance["amount"]]))
        .collect();
    json!({"balance": wallet["balance"], "own": purses["own"], "bonus": purses["bonus"], "allowances": shown})
}

/// The expected side of [`money`].
fn holds(balance: &str, own: &str, bonus: &str, allowances: &[(&str, &str)]) -> Value {
    let allowances: Vec<Value> = allowances.iter().map(|(name, amount)| json!([name, amount])).collect();
    json!({"balance": balance, "own": own, "bonus": bonus, "allowances": allowances})
}

/// The one allowance a wallet shows (asserted one).
#[track_caller]
fn only_allowance(api: &Client, token: &str) -> Value {
    let wallet = api.wallet(token);
    let allowances = wallet["purses"]["allowances"].as_array().unwrap_or_else(|| panic!("no allowances in {wallet}"));
    assert_eq!(allowances.len(), 1, "one allowance expected: {wallet}");
    allowances[0].clone()
}

/// `paid_from` of a payment answer.
fn paid(allowances: &str, bonus: &str, own: &str) -> Value {
    json!({"allowances": allowances, "bonus": bonus, "own": own})
}

/// The citizen pays `amount` at `shop`; asserts the answer's `paid_from` and `cashback`.
#[track_caller]
fn pay(api: &Client, citizen: &Citizen, shop: &Merchant, amount: &str, paid_from: Value, cashback: &str) -> Value {
    let payment = api.pay_from(&citizen.token, &shop.token, amount);
    assert_eq!(
        (&payment["paid_from"], &payment["cashback"]),
        (&paid_from, &json!(cashback)),
        "paid_from and cashback of a payment of {amount} at {}: {payment}",
        shop.login
    );
    payment
}

/// The citizen cannot pay `amount` at `shop`: 422 `insufficient_funds`.
#[track_caller]
fn pay_refused(api: &Client, citizen: &Citizen, shop: &Merchant, amount: &str) {
    let code = api.payment_code(&citizen.token);
    api.pay(&shop.token, &code, amount).expect_error(422, "insufficient_funds");
}

/// Creates a merchant with a category and an annual revenue (each optional) and logs in. The
/// harness's `create_merchant` sets neither; this one sets them at creation, as PROGRAMS.md
/// allows, so that PATCH is tested on its own.
#[track_caller]
fn create_shop(app: &TestApp, login: &str, category: Option<&str>, annual_revenue: Option<&str>) -> Merchant {
    let digits = login.bytes().fold(11u32, |hash, byte| hash.wrapping_mul(31).wrapping_add(u32::from(byte))) % 100_000;
    let name = format!("Shop {login}");
    let business_number = format!("305-82-{digits:05}");
    let bank_account = format!("081-33-{digits:05}-02");
    let mut body = json!({
        "login": login, "password": PASSWORD, "name": name,
        "business_number": business_number, "bank_account": bank_account,
    });
    if let Some(category) = category {
        body["category"] = json!(category);
    }
    if let Some(annual_revenue) = annual_revenue {
        body["annual_revenue"] = json!(annual_revenue);
    }
    let created = app.api.post("/v1/admin/merchants", &app.admin(), &body, &[]).expect(201);
    Merchant {
        login: login.to_owned(),
        id: string(&created["merchant_id"]),
        token: app.api.login(login, PASSWORD),
        name,
        business_number,
        bank_account,
    }
}

/// The balance of one account kind in the trial balance (which must list it).
#[track_caller]
fn trial_balance_of(app: &TestApp, kind: &str) -> i128 {
    let trial = app.api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200);
    let accounts = trial["accounts"].as_array().unwrap_or_else(|| panic!("no accounts in {trial}"));
    let account = accounts.iter().find(|account| account["kind"] == kind);
    won(&account.unwrap_or_else(|| panic!("the trial balance has no {kind}: {trial}"))["balance"])
}

/// Waits (at most [`SWEEP_WAIT_MAX`]) until `done`, e.g. until the sweep has returned a grant.
#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SWEEP_WAIT_MAX;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {SWEEP_WAIT_MAX:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// When a grant made on business date `granted_on` of a program of `valid_days` expires:
/// 24:00 KST of the day `valid_days` later, i.e. 00:00 KST of the day after that.
fn grant_expiry(granted_on: &str, valid_days: u64) -> DateTime<FixedOffset> {
    let kst = FixedOffset::east_opt(9 * 3600).expect("+09:00 is an offset");
    let granted_on = NaiveDate::parse_from_str(granted_on, "%Y-%m-%d").expect("a YYYY-MM-DD test date");
    let next_day = granted_on + Days::new(valid_days + 1);
    let midnight = next_day.and_hms_opt(0, 0, 0).expect("midnight exists");
    midnight.and_local_timezone(kst).single().expect("KST has no gaps")
}

/// An RFC 3339 instant of the test.
fn instant(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("an RFC 3339 test instant")
}

/// stdout and stderr of a command, for assertions and failure messages.
fn output_text(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// 1. Programs: create, show, list, refuse, top up.

fn programs_are_created_listed_and_topped_up(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let admin = app.admin();

    // An allowance program valid for a number of days, with every eligibility rule: shown as
    // given, with an id, the time it was made (on the test clock) and an empty budget.
    let youth_definition = json!({
        "kind": "allowance", "name": "청년 지역화폐 2030", "valid_days": 90,
        "merchant_categories": ["restaurant", "cafe"], "excluded_merchant_categories": ["mart"],
        "merchant_annual_revenue_max": "3000000000",
    });
    let youth = create_program(&app, &youth_definition);
    let youth_id = string(&youth["program_id"]);
    assert!(!youth_id.is_empty(), "{youth}");
    for (field, value) in youth_definition.as_object().expect("a JSON object") {
        assert_eq!(&youth[field], value, "{field} is shown as given: {youth}");
    }
    assert!(youth.get("expires_on").is_none_or(Value::is_null), "no expires_on was given: {youth}");
    assert_eq!(youth["budget"], budget(0, 0, 0, 0), "{youth}");
    let created_at = time(&youth["created_at"]);
    let start = instant(CLOCK_START);
    assert!(
        created_at >= start && created_at < start + TimeDelta::minutes(10),
        "created_at is on the test clock: {youth}"
    );

    // An allowance program valid until a date, admitting every merchant.
    let relief_definition = json!({"kind": "allowance", "name": "재난지원금", "expires_on": "2030-12-31"});
    let relief = create_program(&app, &relief_definition);
    let relief_id = string(&relief["program_id"]);
    assert_ne!(relief_id, youth_id);
    assert_eq!((&relief["kind"], &relief["name"]), (&json!("allowance"), &json!("재난지원금")), "{relief}");
    assert_eq!(relief["expires_on"], "2030-12-31", "{relief}");
    assert!(relief.get("valid_days").is_none_or(Value::is_null), "no valid_days was given: {relief}");
    assert_eq!(relief["budget"], budget(0, 0, 0, 0), "{relief}");

    // GET shows each as it was created; the list holds both, each with its budget.
    assert_eq!(api.get(&program_path(&youth_id), &admin).expect(200), youth);
    assert_eq!(api.get(&program_path(&relief_id), &admin).expect(200), relief);
    let listed = api.get(PROGRAMS, &admin).expect(200);
    let items = listed["items"].as_array().unwrap_or_else(|| panic!("no items in {listed}"));
    assert_eq!(items.len(), 2, "{listed}");
    for program in [&youth, &relief] {
        let shown = items.iter().find(|item| item["program_id"] == program["program_id"]);
        assert_eq!(shown, Some(program), "the list shows each program as GET does: {listed}");
    }
    api.get(&program_path(&unknown_id_like(&youth_id)), &admin).expect_error(404, "not_found");

    // Refused definitions: 422 validation_failed, the message naming the field at fault.
    let allowance = |changes: Value| -> Value {
        let mut definition = json!({"kind": "allowance", "name": "나쁜 정의"});
        for (field, value) in changes.as_object().expect("a JSON object") {
            definition[field] = value.clone();
        }
        definition
    };
    let refusals: [(Value, &[&str]); 8] = [
        (allowance(json!({"valid_days": 30, "expires_on": "2030-12-31"})), &["valid_days", "expires_on"]),
        (allowance(json!({})), &["valid_days", "expires_on"]),
        (allowance(json!({"valid_days": 0})), &["valid_days"]),
        (json!({"kind": "allowance", "valid_days": 30}), &["name"]),
        (allowance(json!({"expires_on": "2030-02-30"})), &["expires_on"]),
        // The day before the test clock's business date (KST): no grant could ever be spent.
        (allowance(json!({"expires_on": "2030-01-09"})), &["expires_on"]),
        (json!({"kind": "lottery", "name": "복권", "valid_days": 30}), &["kind"]),
        (allowance(json!({"valid_days": 30, "merchant_categories": [""]})), &["merchant_categories"]),
    ];
    for (definition, fields) in refusals {
        let reply = api.post(PROGRAMS, &admin, &definition, &[]);
        reply.expect_error(422, "validation_failed");
        let message = string(&reply.json["error"]["message"]);
        assert!(fields.iter().any(|field| message.contains(field)), "the refusal names {fields:?}: {reply}");
    }
    // A money field that is not whole won: refused by the money convention or as a field.
    let reply =
        api.post(PROGRAMS, &admin, &allowance(json!({"valid_days": 30, "merchant_annual_revenue_max": "1.5"})), &[]);
    assert!(
        reply.status == 422
            && ["validation_failed", "invalid_amount"].contains(&reply.json["error"]["code"].as_str().unwrap_or("")),
        "{reply}"
    );
    assert_eq!(
        api.get(PROGRAMS, &admin).expect(200)["items"].as_array().map(Vec::len),
        Some(2),
        "a refusal created a program"
    );

    // A top-up moves money once per key: the replay answers the same and changes nothing; the
    // same key with another amount is a conflict.
    let key = new_key();
    let keyed =
        |amount: &str| api.post(&top_ups_path(&youth_id), &admin, &amount_body(amount), &[("Idempotency-Key", &key)]);
    let first = keyed("1000000").expect(201);
    assert_eq!(first, json!({"budget": budget(1_000_000, 0, 0, 0)}));
    assert_eq!(keyed("1000000").expect(201), first, "a replay answers as the first time");
    keyed("999").expect_error(409, "idempotency_conflict");
    assert_eq!(program_budget(&app, &youth_id), budget(1_000_000, 0, 0, 0), "the replay moved money again");
    assert_eq!(top_up_program(&app, &youth_id, "500000"), budget(1_500_000, 0, 0, 0));
    assert_eq!(program_budget(&app, &youth_id), budget(1_500_000, 0, 0, 0));
    assert_eq!(program_budget(&app, &relief_id), budget(0, 0, 0, 0), "each program has a budget of its own");
    api.post_keyed(&top_ups_path(&youth_id), &admin, &amount_body("0")).expect_error(422, "invalid_amount");
    api.post(&top_ups_path(&youth_id), &admin, &amount_body("1"), &[]).expect_error(400, "invalid_request");
    api.post_keyed(&top_ups_path(&unknown_id_like(&youth_id)), &admin, &amount_body("1"))
        .expect_error(404, "not_found");

    // Programs are the city's: other roles are refused.
    let alice = api.register_citizen("alice");
    let shop = api.create_merchant(&admin, "shop");
    for token in [&alice.token, &shop.token] {
        api.post(PROGRAMS, token, &youth_definition, &[]).expect_error(403, "forbidden");
        api.get(PROGRAMS, token).expect_error(403, "forbidden");
        api.post_keyed(&top_ups_path(&youth_id), token, &amount_body("1")).expect_error(403, "forbidden");
    }
    assert_eq!(program_budget(&app, &youth_id), budget(1_500_000, 0, 0, 0));

    // The budgets are an account kind of the books, balanced against bank clearing.
    assert_eq!(trial_balance_of(&app, "program_budget"), 1_500_000);
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 2. Grants: all lines or none.

fn grants_are_all_or_nothing(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let program_id = allowance_program(&app, "아동수당", 30);
    top_up_program(&app, &program_id, "100000");
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|login| api.register_citizen(login));
    let nobody = unknown_id_like(&alice.wallet_id);
    let nothing_held = holds("0", "0", "0", &[]);

    // An unknown wallet and a wallet on an earlier line: each named, nothing granted (not even
    // the good lines 0 and 2).
    let refused = grant(
        &app,
        &program_id,
        &[(&alice.wallet_id, "10000"), (&nobody, "5000"), (&bob.wallet_id, "10000"), (&alice.wallet_id, "1000")],
    );
    refused.expect_error(422, "validation_failed");
    assert_eq!(bad_rows(&refused), expected_rows(&[(1, "unknown_wallet"), (3, "duplicate_wallet")]), "{refused}");

    // A wallet fault and a total over the budget together: the code says a line is bad (the
    // contract leaves open whether the budget rows are listed too).
    let mixed = grant(&app, &program_id, &[(&nobody, "1"), (&alice.wallet_id, "200000")]);
    mixed.expect_error(422, "validation_failed");
    assert!(bad_rows(&mixed).contains(&(0, "unknown_wallet".to_owned())), "{mixed}");

    // Over the budget: the running total is 40000, 90000, 110000, 115000 against 100000 left,
    // so lines 2 and 3 are named.
    let refused = grant(
        &app,
        &program_id,
        &[
            (&alice.wallet_id, "40000"),
            (&bob.wallet_id, "50000"),
            (&carol.wallet_id, "20000"),
            (&dave.wallet_id, "5000"),
        ],
    );
    refused.expect_error(422, "budget_exhausted");
    assert_eq!(bad_rows(&refused), expected_rows(&[(2, "budget_exhausted"), (3, "budget_exhausted")]), "{refused}");

    // Malformed requests: no lines, an amount that is not one, no key, no such program.
    let admin = app.admin();
    api.post_keyed(&grants_path(&program_id), &admin, &json!({"grants": []})).expect_error(422, "validation_failed");
    let zero = grant(&app, &program_id, &[(&alice.wallet_id, "0")]);
    assert!(
        zero.status == 422
            && ["validation_failed", "invalid_amount"].contains(&zero.json["error"]["code"].as_str().unwrap_or("")),
        "{zero}"
    );
    let one_line = grants_body(&[(&alice.wallet_id, "1")]);
    api.post(&grants_path(&program_id), &admin, &one_line, &[]).expect_error(400, "invalid_request");
    api.post_keyed(&grants_path(&unknown_id_like(&program_id)), &admin, &one_line).expect_error(404, "not_found");
    api.post_keyed(&grants_path(&program_id), &alice.token, &one_line).expect_error(403, "forbidden");

    // Nothing of any refused request was granted.
    assert_eq!(program_budget(&app, &program_id), budget(100_000, 0, 0, 0));
    for citizen in [&alice, &bob, &carol, &dave] {
        assert_eq!(money(api, &citizen.token), nothing_held, "{} was granted by a refused request", citizen.login);
        assert_eq!(history_rows(&api.history(&citizen.token, "")), rows(&[]));
    }

    // A good request: every line granted, once, however often it is replayed.
    let key = new_key();
    let body = grants_body(&[(&alice.wallet_id, "40000"), (&bob.wallet_id, "50000")]);
    let granted = api.post(&grants_path(&program_id), &admin, &body, &[("Idempotency-Key", &key)]).expect(201);
    assert_eq!(granted, json!({"granted": 2, "amount_total": "90000", "budget": budget(100_000, 90_000, 0, 0)}));
    let replay = api.post(&grants_path(&program_id), &admin, &body, &[("Idempotency-Key", &key)]).expect(201);
    assert_eq!(replay, granted, "a replay answers as the first time");
    assert_eq!(program_budget(&app, &program_id), budget(100_000, 90_000, 0, 0), "the replay granted again");

    // Granting exactly what remains is allowed; one won more is not.
    let rest = grant(&app, &program_id, &[(&carol.wallet_id, "10000")]).expect(201);
    assert_eq!(rest["budget"], budget(100_000, 100_000, 0, 0), "{rest}");
    let refused = grant(&app, &program_id, &[(&dave.wallet_id, "1")]);
    refused.expect_error(422, "budget_exhausted");
    assert_eq!(bad_rows(&refused), expected_rows(&[(0, "budget_exhausted")]), "{refused}");

    // Alice's wallet shows the grant as an allowance purse of the program, spendable until the
    // end (24:00 KST) of the 30th day after the grant's day: 2030-02-09 24:00 KST,
    // 2030-02-09T15:00:00Z.
    assert_eq!(money(api, &alice.token), holds("40000", "0", "0", &[("아동수당", "40000")]));
    let allowance = only_allowance(api, &alice.token);
    assert_eq!(allowance["program_id"], program_id.as_str(), "{allowance}");
    assert_eq!(time(&allowance["expires_at"]), grant_expiry(START_DATE, 30), "{allowance}");
    assert_eq!(grant_expiry(START_DATE, 30), instant("2030-02-09T15:00:00Z"));
    let alice_grant = string(&allowance["grant_id"]);
    assert!(!alice_grant.is_empty());
    assert_ne!(string(&only_allowance(api, &bob.token)["grant_id"]), alice_grant, "each grant is its own purse");
    assert_eq!(money(api, &carol.token), holds("10000", "0", "0", &[("아동수당", "10000")]));
    assert_eq!(money(api, &dave.token), nothing_held);
    assert_eq!(history_rows(&api.history(&alice.token, "")), rows(&[("allowance_granted", "40000", "40000")]));

    // In the books the grants left the budget for the citizens' allowances, not their wallets.
    assert_eq!(trial_balance_of(&app, "program_budget"), 0);
    assert_eq!(trial_balance_of(&app, "citizen_allowance"), 100_000);
    assert_eq!(trial_balance_of(&app, "citizen_wallet"), 0);

    // A line may name its grant id (as `wallet-server programs grant` does, so a request whose
    // answer was lost can be sent again after any time): a request naming one granted already
    // is refused by that line, and one naming an id twice is refused; nothing granted by either.
    let relief = allowance_program(&app, "재난지원금", 30);
    top_up_program(&app, &relief, "10000");
    let line = |citizen: &Citizen, grant_id: &str| json!({"wallet_id": citizen.wallet_id, "amount": "1000", "grant_id": grant_id});
    let grants = |lines: Vec<Value>| api.post_keyed(&grants_path(&relief), &admin, &json!({ "grants": lines }));
    grants(vec![line(&dave, "relief-file-1")]).expect(201);
    let again = grants(vec![line(&alice, "relief-file-2"), line(&dave, "relief-file-1")]);
    again.expect_error(422, "validation_failed");
    assert_eq!(bad_rows(&again), expected_rows(&[(1, "grant_exists")]), "{again}");
    grants(vec![line(&alice, "relief-file-3"), line(&bob, "relief-file-3")]).expect_error(422, "validation_failed");
    assert_eq!(program_budget(&app, &relief), budget(10_000, 1_000, 0, 0), "a refused request granted");
    assert_eq!(money(api, &dave.token), holds("1000", "0", "0", &[("재난지원금", "1000")]));
    assert_eq!(only_allowance(api, &dave.token)["grant_id"], "relief-file-1");
    assert_eq!(money(api, &alice.token), holds("40000", "0", "0", &[("아동수당", "40000")]));
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 3. The spending order and paid_from.

fn payments_spend_admitted_allowances_then_bonus_then_own(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("1000000");
    let alice = api.register_citizen("alice");
    let restaurant = create_shop(&app, "restaurant", Some("restaurant"), None);
    let cafe = create_shop(&app, "cafe", Some("cafe"), None);
    let mart = create_shop(&app, "mart", Some("mart"), None);
    let bookshop = create_shop(&app, "bookshop", None, None);

    // Own money, and a bonus from the cashback of a payment made wholly from it (10% of 10000).
    api.charge(&alice.token, "50000").expect(201);
    pay(api, &alice, &mart, "10000", paid("0", "0", "10000"), "1000");
    assert_eq!(money(api, &alice.token), holds("41000", "40000", "1000", &[]));

    // Two allowances: youth (restaurants and cafes, 90 days: until 2030-04-10 24:00 KST),
    // granted first; relief (anywhere but marts, until 2030-02-28), granted second but expiring
    // first. The wallet lists them by expiry.
    let youth = create_program(
        &app,
        &json!({"kind": "allowance", "name": "youth", "valid_days": 90, "merchant_categories": ["restaurant", "cafe"]}),
    );
    let youth_id = string(&youth["program_id"]);
    let relief = create_program(
        &app,
        &json!({"kind": "allowance", "name": "relief", "expires_on": "2030-02-28",
                "excluded_merchant_categories": ["mart"]}),
    );
    let relief_id = string(&relief["program_id"]);
    top_up_program(&app, &youth_id, "100000");
    top_up_program(&app, &relief_id, "50000");
    grant(&app, &youth_id, &[(&alice.wallet_id, "5000")]).expect(201);
    grant(&app, &relief_id, &[(&alice.wallet_id, "2000")]).expect(201);
    assert_eq!(money(api, &alice.token), holds("48000", "40000", "1000", &[("relief", "2000"), ("youth", "5000")]));
    let wallet = api.wallet(&alice.token);
    let shown = wallet["purses"]["allowances"].as_array().expect("allowances are a list");
    assert_eq!(time(&shown[0]["expires_at"]), instant("2030-02-28T15:00:00Z"), "end of expires_on, KST: {wallet}");
    assert_eq!(time(&shown[1]["expires_at"]), grant_expiry(START_DATE, 90), "{wallet}");

    // Both admit the restaurant: the earlier expiry pays first; an allowance payment earns no
    // cashback.
    pay(api, &alice, &restaurant, "1500", paid("1500", "0", "0"), "0");
    assert_eq!(money(api, &alice.token), holds("46500", "40000", "1000", &[("relief", "500"), ("youth", "5000")]));

    // Neither admits the mart (excluded by relief, not listed by youth): bonus, then own; the
    // allowances are untouched and the whole amount earns cashback.
    pay(api, &alice, &mart, "10000", paid("0", "1000", "9000"), "1000");
    assert_eq!(money(api, &alice.token), holds("37500", "31000", "1000", &[("relief", "500"), ("youth", "5000")]));

    // A merchant without a category: relief admits it (no list), youth does not (its list needs
    // the category). Relief's 500, then 500 of the bonus; cashback on those 500 only.
    pay(api, &alice, &bookshop, "1000", paid("500", "500", "0"), "50");
    assert_eq!(money(api, &alice.token), holds("36550", "31000", "550", &[("youth", "5000")]));

    // The cafe: youth's 5000, all the bonus (550), then own (2450); cashback 10% of 3000.
    let payment = pay(api, &alice, &cafe, "8000", paid("5000", "550", "2450"), "300");
    assert_eq!(payment["amount"], "8000", "{payment}");
    assert_eq!(money(api, &alice.token), holds("28850", "28550", "300", &[]));
    assert_eq!(
        history_rows(&api.history(&alice.token, "limit=2")),
        rows(&[("cashback", "300", "28850"), ("payment", "-8000", "28550")])
    );

    // Only what bonus and own paid counts toward the month's cashback spend cap:
    // 10000 + 0 + 10000 + 500 + 3000 = 23500 of 500000.
    assert_eq!(api.wallet(&alice.token)["cashback_eligible_spend_remaining"], "476500");
    let cashback_budget = api.get("/v1/admin/cashback-budget", &app.admin()).expect(200);
    assert_eq!(
        cashback_budget,
        json!({"funded": "1000000", "paid_out": "2350", "reversed": "0", "remaining": "997650"})
    );

    // Each program paid what its allowance paid.
    assert_eq!(program_budget(&app, &youth_id), budget(100_000, 5000, 5000, 0));
    assert_eq!(program_budget(&app, &relief_id), budget(50_000, 2000, 2000, 0));
    assert_eq!(trial_balance_of(&app, "citizen_allowance"), 0);
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 4. Refunds restore own, then bonus, then allowances (latest expiry first); after expiry, to
//    the program.

fn refunds_restore_own_then_bonus_then_allowances(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("1000000");
    let mut alice = api.register_citizen("alice");
    let mut shop = api.create_merchant(&app.admin(), "shop");

    // Own 10000 and bonus 1000 (cashback of a 10000 payment from own).
    api.charge(&alice.token, "20000").expect(201);
    pay(api, &alice, &shop, "10000", paid("0", "0", "10000"), "1000");
    // Relief lasts one day (until 2030-01-11 24:00 KST), youth 30 days.
    let relief_id = allowance_program(&app, "relief", 1);
    let youth_id = allowance_program(&app, "youth", 30);
    top_up_program(&app, &relief_id, "10000");
    top_up_program(&app, &youth_id, "10000");
    grant(&app, &relief_id, &[(&alice.wallet_id, "2000")]).expect(201);
    grant(&app, &youth_id, &[(&alice.wallet_id, "1000")]).expect(201);
    assert_eq!(money(api, &alice.token), holds("14000", "10000", "1000", &[("relief", "2000"), ("youth", "1000")]));
    let youth_grant = string(&api.wallet(&alice.token)["purses"]["allowances"][1]["grant_id"]);

    // 6000: relief 2000, youth 1000, bonus 1000, own 2000; cashback 10% of 3000.
    let payment = pay(api, &alice, &shop, "6000", paid("3000", "1000", "2000"), "300");
    let payment_id = string(&payment["payment_id"]);
    assert_eq!(money(api, &alice.token), holds("8300", "8000", "300", &[]));

    // 1500 back: all to own (own paid 2000). Reversal floor(300 × 1500 / 6000) = 75, from bonus.
    let refund = api.refund(&shop.token, &payment_id, "1500").expect(201);
    assert_eq!(refund["cashback_reversed"], "75", "{refund}");
    assert_eq!(money(api, &alice.token), holds("9725", "9500", "225", &[]));

    // 1000 back: own's last 500, then 500 to bonus. Reversal 50, from bonus.
    let refund = api.refund(&shop.token, &payment_id, "1000").expect(201);
    assert_eq!(refund["cashback_reversed"], "50", "{refund}");
    assert_eq!(money(api, &alice.token), holds("10675", "10000", "675", &[]));

    // 1000 back: bonus's last 500, then 500 to the allowance expiring latest (youth, not relief),
    // into the same grant. Reversal 50, from bonus.
    let refund = api.refund(&shop.token, &payment_id, "1000").expect(201);
    assert_eq!(refund["cashback_reversed"], "50", "{refund}");
    assert_eq!(money(api, &alice.token), holds("11625", "10000", "1125", &[("youth", "500")]));
    assert_eq!(
        string(&only_allowance(api, &alice.token)["grant_id"]),
        youth_grant,
        "restored into the grant that paid"
    );
    assert_eq!(program_budget(&app, &youth_id), budget(10_000, 1000, 500, 0));

    // Relief is over (2030-01-12 01:00 KST). The last 2500: youth's other 500 to its live grant,
    // then relief's 2000 back to relief's budget (`returned`), not to the wallet. The reversal
    // completes the payment's: 300 − 75 − 50 − 50 = 125, from bonus.
    app.set_clock("2030-01-11T16:00:00Z");
    alice.relogin(api);
    shop.relogin(api);
    let refund = api.refund(&shop.token, &payment_id, "2500").expect(201);
    assert_eq!(refund["cashback_reversed"], "125", "{refund}");
    assert_eq!(money(api, &alice.token), holds("12000", "10000", "1000", &[("youth", "1000")]));
    assert_eq!(program_budget(&app, &relief_id), budget(10_000, 2000, 0, 2000));
    assert_eq!(program_budget(&app, &youth_id), budget(10_000, 1000, 0, 0));
    api.refund(&shop.token, &payment_id, "1").expect_error(422, "refund_exceeds_payment");

    let cashback_budget = api.get("/v1/admin/cashback-budget", &app.admin()).expect(200);
    assert_eq!(
        cashback_budget,
        json!({"funded": "1000000", "paid_out": "1300", "reversed": "300", "remaining": "999000"})
    );
    assert_eq!(trial_balance_of(&app, "citizen_allowance"), 1000);
    assert_eq!(trial_balance_of(&app, "program_budget"), 19_000);
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 5. Expiry: hidden and unspendable at once, returned by the sweep.

fn allowances_expire_at_the_end_of_their_last_day(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let mut alice = api.register_citizen("alice");
    let mut bob = api.register_citizen("bob");
    let mut shop = api.create_merchant(&app.admin(), "shop");
    api.charge(&alice.token, "1000").expect(201);

    // Three days: granted on 2030-01-10, spendable until 2030-01-13 24:00 KST (15:00 UTC).
    let program_id = allowance_program(&app, "긴급생활지원", 3);
    top_up_program(&app, &program_id, "10000");
    grant(&app, &program_id, &[(&alice.wallet_id, "4000"), (&bob.wallet_id, "2000")]).expect(201);
    let expiry = grant_expiry(START_DATE, 3);
    assert_eq!(expiry, instant("2030-01-13T15:00:00Z"));
    assert_eq!(time(&only_allowance(api, &alice.token)["expires_at"]), expiry);
    pay(api, &alice, &shop, "1000", paid("1000", "0", "0"), "0");

    // A minute before the end it is still there (the day is a KST day, not a UTC one).
    app.set_clock("2030-01-13T14:59:00Z");
    alice.relogin(api);
    assert_eq!(money(api, &alice.token), holds("4000", "1000", "0", &[("긴급생활지원", "3000")]));

    // From the end on it is neither shown nor spent, whether or not the sweep has run yet:
    // own 1000 cannot pay 2000.
    app.set_clock("2030-01-13T15:00:00Z");
    alice.relogin(api);
    bob.relogin(api);
    shop.relogin(api);
    assert_eq!(money(api, &alice.token), holds("1000", "1000", "0", &[]));
    assert_eq!(money(api, &bob.token), holds("0", "0", "0", &[]));
    pay_refused(api, &alice, &shop, "2000");

    // The sweep returns what was left (3000 and 2000) to the budget, as history items.
    wait_until("the sweep returning the expired grants", || {
        program_budget(&app, &program_id) == budget(10_000, 6000, 1000, 5000)
    });
    assert_eq!(
        history_rows(&api.history(&alice.token, "")),
        rows(&[
            ("allowance_expired", "-3000", "1000"),
            ("payment", "-1000", "4000"),
            ("allowance_granted", "4000", "5000"),
            ("charge", "1000", "1000"),
        ])
    );
    assert_eq!(
        history_rows(&api.history(&bob.token, "")),
        rows(&[("allowance_expired", "-2000", "0"), ("allowance_granted", "2000", "2000")])
    );
    assert_eq!(trial_balance_of(&app, "citizen_allowance"), 0);

    // Own money still pays; the expired allowance does not come back.
    pay(api, &alice, &shop, "1000", paid("0", "0", "1000"), "0");
    assert_eq!(money(api, &alice.token), holds("0", "0", "0", &[]));

    // A grant made now runs from today's business date (2030-01-14 KST), not the program's.
    grant(&app, &program_id, &[(&bob.wallet_id, "1000")]).expect(201);
    assert_eq!(time(&only_allowance(api, &bob.token)["expires_at"]), grant_expiry("2030-01-14", 3));

    // Later sweeps return nothing twice.
    std::thread::sleep(SWEEP_PERIOD_AND_MARGIN);
    assert_eq!(program_budget(&app, &program_id), budget(10_000, 7000, 1000, 5000));
    let expired_items = |token: &str| {
        history_rows(&api.history(token, "")).iter().filter(|(kind, _, _)| kind == "allowance_expired").count()
    };
    assert_eq!((expired_items(&alice.token), expired_items(&bob.token)), (1, 1));
    assert_eq!(money(api, &bob.token), holds("1000", "0", "0", &[("긴급생활지원", "1000")]));
    assert_eq!(trial_balance_of(&app, "citizen_allowance"), 1000);
    assert_eq!(trial_balance_of(&app, "program_budget"), 8000);
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 6. Gifts move only own; allowances do not count toward the holding limit.

fn gifts_move_only_own_money(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.top_up_budget("100000");
    let alice = api.register_citizen("alice");
    let bob = api.register_citizen("bob");
    let shop = api.create_merchant(&app.admin(), "shop");
    api.charge(&alice.token, "10000").expect(201);
    pay(api, &alice, &shop, "5000", paid("0", "0", "5000"), "500");
    let program_id = allowance_program(&app, "재난지원금", 90);
    top_up_program(&app, &program_id, "50000");
    grant(&app, &program_id, &[(&alice.wallet_id, "3000")]).expect(201);
    let alice_before = holds("8500", "5000", "500", &[("재난지원금", "3000")]);
    assert_eq!(money(api, &alice.token), alice_before);

    // The balance (8500) would cover 5001, but only own (5000) may be gifted.
    api.gift(&alice.token, &bob.wallet_id, "5001").expect_error(422, "insufficient_funds");
    assert_eq!(money(api, &alice.token), alice_before, "a refused gift moved money");

    // All of own goes; bonus and the allowance stay. The gift arrives in bob's own.
    let gift = api.gift(&alice.token, &bob.wallet_id, "5000").expect(201);
    assert_eq!(gift["balance"], "3500", "{gift}");
    api.gift(&alice.token, &bob.wallet_id, "1").expect_error(422, "insufficient_funds");
    assert_eq!(money(api, &alice.token), holds("3500", "0", "500", &[("재난지원금", "3000")]));
    assert_eq!(money(api, &bob.token), holds("5000", "5000", "0", &[]));

    // Bob may gift what he received; it arrives in alice's own.
    api.gift(&bob.token, &alice.wallet_id, "1000").expect(201);
    assert_eq!(money(api, &alice.token), holds("4500", "1000", "500", &[("재난지원금", "3000")]));
    assert_eq!(money(api, &bob.token), holds("4000", "4000", "0", &[]));

    // The holding limit counts own and bonus, not allowances: bob may be granted 20000 over a
    // 10000 limit and still charge up to it.
    app.set_policy(&[("holding_limit", "10000")]);
    grant(&app, &program_id, &[(&bob.wallet_id, "20000")]).expect(201);
    api.charge(&bob.token, "6000").expect(201);
    api.charge(&bob.token, "1").expect_error(422, "limit_exceeded");
    assert_eq!(money(api, &bob.token), holds("30000", "10000", "0", &[("재난지원금", "20000")]));
    // Alice: own 1000 + bonus 500 leave 8500 under the limit.
    api.charge(&alice.token, "8501").expect_error(422, "limit_exceeded");
    api.charge(&alice.token, "8500").expect(201);
    assert_eq!(money(api, &alice.token), holds("13000", "9500", "500", &[("재난지원금", "3000")]));
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 7. PATCH merchants; eligibility by annual revenue and category, as the merchant is now.

fn merchant_changes_decide_which_allowances_pay(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    // At the maximum, above it, and of unknown revenue (all restaurants).
    let small = create_shop(&app, "small", Some("restaurant"), Some("3000000000"));
    let big = create_shop(&app, "big", Some("restaurant"), Some("3000000001"));
    let noodles = create_shop(&app, "noodles", Some("restaurant"), None);

    let program = create_program(
        &app,
        &json!({"kind": "allowance", "name": "소상공인 상생", "valid_days": 90,
                "excluded_merchant_categories": ["mart"], "merchant_annual_revenue_max": "3000000000"}),
    );
    let program_id = string(&program["program_id"]);
    top_up_program(&app, &program_id, "100000");
    grant(&app, &program_id, &[(&alice.wallet_id, "5000")]).expect(201);
    api.charge(&alice.token, "3000").expect(201);

    // Above the maximum, or of unknown revenue: own pays. At the maximum: the allowance pays.
    pay(api, &alice, &big, "1000", paid("0", "0", "1000"), "0");
    pay(api, &alice, &noodles, "1000", paid("0", "0", "1000"), "0");
    pay(api, &alice, &small, "1000", paid("1000", "0", "0"), "0");
    assert_eq!(money(api, &alice.token), holds("5000", "1000", "0", &[("소상공인 상생", "4000")]));
    // An allowance that does not admit the merchant does not count toward what the wallet has.
    pay_refused(api, &alice, &big, "2000");
    assert_eq!(money(api, &alice.token), holds("5000", "1000", "0", &[("소상공인 상생", "4000")]));

    // PATCH changes what it is given and keeps the rest; the answer is the whole merchant.
    let admin = app.admin();
    let merchant_path = |merchant: &Merchant| format!("/v1/admin/merchants/{}", merchant.id);
    let renamed = api.patch(&merchant_path(&noodles), &admin, &json!({"name": "Noodle House"})).expect(200);
    assert_eq!(
        renamed,
        json!({"merchant_id": noodles.id, "name": "Noodle House", "business_number": noodles.business_number,
               "bank_account": noodles.bank_account, "category": "restaurant", "annual_revenue": null})
    );
    let known = api.patch(&merchant_path(&noodles), &admin, &json!({"annual_revenue": "120000000"})).expect(200);
    assert_eq!((&known["name"], &known["annual_revenue"]), (&json!("Noodle House"), &json!("120000000")), "{known}");
    // Now known and under the maximum: the allowance pays there.
    pay(api, &alice, &noodles, "1500", paid("1500", "0", "0"), "0");

    // Small becomes a mart, an excluded category: own pays. Its revenue, given at creation, is
    // kept.
    let changes = json!({"name": "Small Mart", "category": "mart", "bank_account": "088-11-22222-01"});
    let mart = api.patch(&merchant_path(&small), &admin, &changes).expect(200);
    assert_eq!(
        mart,
        json!({"merchant_id": small.id, "name": "Small Mart", "business_number": small.business_number,
               "bank_account": "088-11-22222-01", "category": "mart", "annual_revenue": "3000000000"})
    );
    pay(api, &alice, &small, "500", paid("0", "0", "500"), "0");

    // Big's revenue falls under the maximum: the allowance pays there.
    api.patch(&merchant_path(&big), &admin, &json!({"annual_revenue": "1000000000"})).expect(200);
    pay(api, &alice, &big, "1000", paid("1000", "0", "0"), "0");
    assert_eq!(money(api, &alice.token), holds("2000", "500", "0", &[("소상공인 상생", "1500")]));
    assert_eq!(program_budget(&app, &program_id), budget(100_000, 5000, 3500, 0));

    // Refusals change nothing: a revenue that is not whole won, an unknown merchant, another role.
    let reply = api.patch(&merchant_path(&big), &admin, &json!({"annual_revenue": "12.5"}));
    assert!(
        reply.status == 422
            && ["validation_failed", "invalid_amount"].contains(&reply.json["error"]["code"].as_str().unwrap_or("")),
        "{reply}"
    );
    let unknown_path = format!("/v1/admin/merchants/{}", unknown_id_like(&big.id));
    api.patch(&unknown_path, &admin, &json!({"name": "Nobody"})).expect_error(404, "not_found");
    api.patch(&merchant_path(&big), &big.token, &json!({"annual_revenue": "1"})).expect_error(403, "forbidden");
    api.patch(&merchant_path(&big), &alice.token, &json!({"annual_revenue": "1"})).expect_error(403, "forbidden");
    let unchanged = api.patch(&merchant_path(&big), &admin, &json!({"name": big.name})).expect(200);
    assert_eq!(unchanged["annual_revenue"], "1000000000", "a refused PATCH changed the merchant: {unchanged}");

    // A merchant is paid for what it sold, whatever purse paid: small sold 1000 (allowance)
    // and 500 (own).
    let sales = api.get("/v1/merchant/sales?date=2030-01-10", &small.token).expect(200);
    assert_eq!((&sales["payments_count"], &sales["payments_amount"]), (&json!(2), &json!("1500")), "{sales}");
    app.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// 8. `wallet-server programs grant <PROGRAM_ID> <FILE.csv>`.

fn grants_from_a_file_are_made_once(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let program_id = allowance_program(&app, "청년 기본소득", 60);
    top_up_program(&app, &program_id, "100000");
    let [alice, bob, carol, dave, erin] =
        ["alice", "bob", "carol", "dave", "erin"].map(|login| api.register_citizen(login));
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let run_grant = |file: &Path| run_grant_command(&app, &program_id, file);

    // Three wallets from a file, against the database of the running server, which sees them.
    let file = dir.path().join("grants.csv");
    let csv = format!("wallet_id,amount\n{},1000\n{},2000\n{},3000\n", alice.wallet_id, bob.wallet_id, carol.wallet_id);
    std::fs::write(&file, csv).expect("cannot write the grants file");
    let output = run_grant(&file);
    assert!(output.status.success(), "{}", output_text(&output));
    let granted = [(&alice, "1000"), (&bob, "2000"), (&carol, "3000")];
    let assert_granted_once = || {
        for (citizen, amount) in granted {
            assert_eq!(money(api, &citizen.token), holds(amount, "0", "0", &[("청년 기본소득", amount)]));
            assert_eq!(history_rows(&api.history(&citizen.token, "")), rows(&[("allowance_granted", amount, amount)]));
        }
        assert_eq!(program_budget(&app, &program_id), budget(100_000, 6000, 0, 0));
    };
    assert_granted_once();
    // The command runs on the same (test) clock as the server: 60 days from 2030-01-10 KST.
    assert_eq!(time(&only_allowance(api, &alice.token)["expires_at"]), grant_expiry(START_DATE, 60));

    // Run again (as after a crash): nobody is granted twice, and the command says so.
    let again = run_grant(&file);
    assert_granted_once();
    let said = output_text(&again);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("granted 0 wallets") && said.contains("3 lines were granted by an earlier run"), "{said}");

    // A malformed line 3 (a fraction of a won): refused, naming the line; not even line 2 granted.
    let bad_amount = dir.path().join("bad-amount.csv");
    std::fs::write(&bad_amount, format!("wallet_id,amount\n{},500\n{},12.5\n", dave.wallet_id, erin.wallet_id))
        .expect("cannot write the grants file");
    let output = run_grant(&bad_amount);
    let text = output_text(&output);
    assert!(!output.status.success(), "a malformed file was accepted: {text}");
    assert!(text.contains("line 3") || text.contains("bad-amount.csv:3"), "the refusal names line 3: {text}");

    // A file without the header `wallet_id,amount`: refused too.
    let bad_header = dir.path().join("bad-header.csv");
    std::fs::write(&bad_header, format!("wallet,won\n{},500\n", dave.wallet_id)).expect("cannot write the grants file");
    let output = run_grant(&bad_header);
    assert!(!output.status.success(), "a file without the header was accepted: {}", output_text(&output));

    // No such program: refused.
    let unknown_program = unknown_id_like(&program_id);
    let output = run_grant_command(&app, &unknown_program, &file);
    assert!(!output.status.success(), "a grant to no program was accepted: {}", output_text(&output));

    for citizen in [&dave, &erin] {
        assert_eq!(money(api, &citizen.token), holds("0", "0", "0", &[]), "{} was granted", citizen.login);
    }
    assert_granted_once();
    app.assert_books_balance();
}

/// `wallet-server programs grant` against the test's running server, as its admin (whose
/// password the caller writes to standard input: [`spawn_with_password`]).
fn grant_command(app: &TestApp, program_id: &str, file: &Path) -> std::process::Command {
    let mut command = app.server.command();
    let server = app.server.url("");
    command.args(["programs", "grant", program_id, path_text(file), "--login", ADMIN_LOGIN, "--server", &server]);
    command.stdin(std::process::Stdio::piped());
    command
}

fn spawn_with_password(mut command: std::process::Command) -> std::process::Child {
    let mut child = command.spawn().expect("cannot start wallet-server programs grant");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The command may exit before reading its password; its exit status tells.
    let _ = std::io::Write::write_all(&mut stdin, format!("{PASSWORD}\n").as_bytes());
    child
}

/// [`grant_command`] run to its end.
fn run_grant_command(app: &TestApp, program_id: &str, file: &Path) -> Output {
    let mut command = grant_command(app, program_id, file);
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    spawn_with_password(command).wait_with_output().expect("cannot wait for wallet-server programs grant")
}

/// When a test kills a running command.
enum Kill {
    After(Duration),
    /// As soon as its first grant is committed.
    AtFirstGrant,
}

/// Citizens a run of the grant command is killed over, one grant command each: enough that a
/// kill lands between commands.
const KILLED_RUN_CITIZENS: usize = 24;

fn a_killed_grant_run_grants_the_rest_when_run_again(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let citizens: Vec<Citizen> =
        (0..KILLED_RUN_CITIZENS).map(|index| api.register_citizen(&format!("citizen-{index}"))).collect();
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let file = dir.path().join("grants.csv");
    let mut csv = String::from("wallet_id,amount\n");
    for citizen in &citizens {
        csv.push_str(&format!("{},1000\n", citizen.wallet_id));
    }
    std::fs::write(&file, csv).expect("cannot write the grants file");
    // One line a command, so the run is many commits long. Killed before it starts granting,
    // right after its first commit (the budget shows it), and later on; each program's run is
    // then completed by a second run.
    let mut interrupted = 0;
    let kills = [
        Kill::After(Duration::from_millis(10)),
        Kill::AtFirstGrant,
        Kill::AtFirstGrant,
        Kill::After(Duration::from_millis(300)),
    ];
    for (attempt, kill) in kills.into_iter().enumerate() {
        let program_id = allowance_program(&app, &format!("run {attempt}"), 30);
        top_up_program(&app, &program_id, "1000000");
        let mut run = grant_command(&app, &program_id, &file);
        run.env("WALLET_GRANT_LINES_PER_COMMAND", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = spawn_with_password(run);
        match kill {
            Kill::After(delay) => std::thread::sleep(delay),
            Kill::AtFirstGrant => {
                let started = Instant::now();
                while won(&program_budget(&app, &program_id)["granted"]) == 0
                    && child.try_wait().expect("cannot poll the command").is_none()
                    && started.elapsed() < SWEEP_WAIT_MAX
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let granted_by_the_killed_run = won(&program_budget(&app, &program_id)["granted"]);
        if granted_by_the_killed_run > 0 && granted_by_the_killed_run < 1000 * KILLED_RUN_CITIZENS as i128 {
            interrupted += 1;
        }
        let again = run_grant_command(&app, &program_id, &file);
        assert!(again.status.success(), "the rerun failed: {}", output_text(&again));
        // Every citizen exactly once: the budget's total, and each wallet's one allowance of it.
        let total = (1000 * KILLED_RUN_CITIZENS) as i128;
        assert_eq!(program_budget(&app, &program_id), budget(1_000_000, total, 0, 0), "attempt {attempt}");
        for citizen in &citizens {
            let wallet = api.wallet(&citizen.token);
            let of_this_run: Vec<&Value> = wallet["purses"]["allowances"]
                .as_array()
                .expect("allowances")
                .iter()
                .filter(|allowance| allowance["program_id"] == json!(program_id))
                .collect();
            assert_eq!(of_this_run.len(), 1, "{} after attempt {attempt}: {wallet}", citizen.login);
            assert_eq!(of_this_run[0]["amount"], "1000");
        }
    }
    // A kill right after the first of 24 commits stops a run part-way on any machine this
    // suite runs on; if none did, the test proved nothing about a kill mid-run.
    assert!(interrupted > 0, "no run was killed part-way");
    app.assert_books_balance();
}

/// Citizens whose grants expire at one instant while two servers sweep.
const SWEPT_CITIZENS: usize = 30;

fn several_servers_return_each_expired_grant_once(backend: Backend) {
    let mut app = TestApp::start(backend);
    let citizens: Vec<Citizen> =
        (0..SWEPT_CITIZENS).map(|index| app.api.register_citizen(&format!("citizen-{index}"))).collect();
    let program_id = allowance_program(&app, "재난지원금", 1);
    top_up_program(&app, &program_id, "1000000");
    let lines: Vec<(&str, &str)> = citizens.iter().map(|citizen| (citizen.wallet_id.as_str(), "700")).collect();
    grant(&app, &program_id, &lines).expect(201);
    // The grants of 2030-01-10 (KST) with 1 valid day end at 2030-01-11 24:00 KST.
    app.set_clock("2030-01-11T15:00:01Z");
    // Both servers start together on the moved clock, so their first sweeps find the same
    // expired grants and race for them.
    app.server.kill9();
    let mut other = app.server.sibling();
    other.spawn();
    app.restart();
    let total = (700 * SWEPT_CITIZENS) as i128;
    wait_until("both servers' sweeps return every grant", || {
        won(&program_budget(&app, &program_id)["returned"]) == total
    });
    std::thread::sleep(SWEEP_PERIOD_AND_MARGIN);
    assert_eq!(program_budget(&app, &program_id), budget(1_000_000, total, 0, total), "returned once, not twice");
    let api = &app.api;
    for mut citizen in citizens {
        citizen.relogin(api);
        let expired: Vec<_> = history_rows(&api.history(&citizen.token, ""))
            .into_iter()
            .filter(|(kind, _, _)| kind == "allowance_expired")
            .collect();
        assert_eq!(expired, rows(&[("allowance_expired", "-700", "0")]), "{}", citizen.login);
    }
    app.assert_books_balance();
    other.kill9();
}

/// Every admin action of Part 2 is in the audit log once, with the Idempotency-Key it was sent
/// with: the money ones require one, the others take one.
fn program_actions_are_audited_with_their_keys(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let admin = app.admin();
    let alice = api.register_citizen("alice");
    let shop = create_shop(&app, "shop", Some("restaurant"), None);
    let keys: Vec<String> = (0..4).map(|_| new_key()).collect();
    let definition = json!({"kind": "allowance", "name": "청년", "valid_days": 30});
    let created = api.post(PROGRAMS, &admin, &definition, &[("Idempotency-Key", &keys[0])]).expect(201);
    let program_id = string(&created["program_id"]);
    api.post(&top_ups_path(&program_id), &admin, &amount_body("5000"), &[("Idempotency-Key", &keys[1])]).expect(201);
    let lines = grants_body(&[(&alice.wallet_id, "2000")]);
    api.post(&grants_path(&program_id), &admin, &lines, &[("Idempotency-Key", &keys[2])]).expect(201);
    let patch = json!({"annual_revenue": "90000000"});
    let path = format!("/v1/admin/merchants/{}", shop.id);
    api.send("PATCH", &path, &admin, Body::Json(&patch), &[("Idempotency-Key", &keys[3])]).expect(200);
    // Refused ones leave no row.
    api.post(
        &grants_path(&program_id),
        &admin,
        &grants_body(&[(&alice.wallet_id, "9000")]),
        &[("Idempotency-Key", &new_key())],
    )
    .expect_error(422, "budget_exhausted");

    let page = api.get("/v1/admin/audit-log?limit=4", &admin).expect(200);
    let rows: Vec<(String, String)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|row| (string(&row["action"]), string(&row["idempotency_key"])))
        .collect();
    let expected: Vec<(String, String)> =
        ["merchant_changed", "allowances_granted", "program_budget_topped_up", "program_created"]
            .into_iter()
            .zip(keys.iter().rev())
            .map(|(action, key)| (action.to_owned(), key.clone()))
            .collect();
    assert_eq!(rows, expected, "{page}");
    let granted = &page["items"][1]["detail"];
    assert_eq!(
        (&granted["program_id"], &granted["granted"], &granted["amount_total"]),
        (&json!(program_id), &json!(1), &json!("2000"))
    );
    let changed = &page["items"][0]["detail"];
    assert_eq!(
        (&changed["before"]["annual_revenue"], &changed["after"]["annual_revenue"]),
        (&json!(null), &json!("90000000"))
    );
}

scenarios!(
    program_actions_are_audited_with_their_keys,
    a_killed_grant_run_grants_the_rest_when_run_again,
    several_servers_return_each_expired_grant_once,
    programs_are_created_listed_and_topped_up,
    grants_are_all_or_nothing,
    payments_spend_admitted_allowances_then_bonus_then_own,
    refunds_restore_own_then_bonus_then_allowances,
    allowances_expire_at_the_end_of_their_last_day,
    gifts_move_only_own_money,
    merchant_changes_decide_which_allowances_pay,
    grants_from_a_file_are_made_once,
);
