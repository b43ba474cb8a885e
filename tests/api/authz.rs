//! The authorization matrix: every endpoint of the API (API.md and the project's extensions, as
//! `GET /openapi.json` lists them) × every kind of caller, each cell asserting exactly the
//! documented answer. The table in [`matrix`] is the proof an auditor reads; the test fails when
//! the OpenAPI document lists an endpoint the table does not cover (so a new endpoint cannot slip
//! through unreviewed), and it checks afterwards that nothing a refused request asked for happened.
//!
//! Callers (the columns): no token; malformed tokens (several forms, each asserted); an expired
//! token (the session idle past the idle timeout on the test clock); a logged-out token; a live
//! citizen, merchant and admin; and "another's": a second principal of the endpoint's role naming
//! the first one's objects (API.md: data of another citizen or merchant is never visible, 404
//! not 403, so ids cannot be probed). Expired and logged-out tokens are of the role the endpoint
//! serves (a citizen's for public endpoints and logout), so a refusal proves the token's state,
//! not its role, was checked.
//!
//! One server per backend runs the whole matrix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use serde_json::{json, Value};

use crate::support::{
    amount_body, new_key, string, Backend, Body, Citizen, Client, Merchant, Reply, TestApp, ADMIN_LOGIN, PASSWORD,
    POLICY_STANDARD,
};

/// The columns of the matrix, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    NoToken,
    Malformed,
    Expired,
    LoggedOut,
    Citizen,
    Merchant,
    Admin,
    /// A second principal of the endpoint's role, naming the first one's objects.
    Another,
}

const CALLERS: [Caller; 8] = [
    Caller::NoToken,
    Caller::Malformed,
    Caller::Expired,
    Caller::LoggedOut,
    Caller::Citizen,
    Caller::Merchant,
    Caller::Admin,
    Caller::Another,
];

impl Caller {
    fn header(self) -> &'static str {
        match self {
            Caller::NoToken => "no token",
            Caller::Malformed => "malformed",
            Caller::Expired => "expired",
            Caller::LoggedOut => "logged out",
            Caller::Citizen => "citizen",
            Caller::Merchant => "merchant",
            Caller::Admin => "admin",
            Caller::Another => "another's ids",
        }
    }
}

/// A session role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Citizen,
    Merchant,
    Admin,
}

/// Whom an endpoint serves (API.md's "auth" column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Serves {
    /// No token needed; a token sent is ignored, whatever its state.
    Anyone,
    /// Any live session (logout).
    AnyRole,
    Only(Role),
}

impl Serves {
    /// The role whose stale and malformed tokens the row is called with.
    fn token_role(self) -> Role {
        match self {
            Serves::Anyone | Serves::AnyRole => Role::Citizen,
            Serves::Only(role) => role,
        }
    }
}

/// What a cell must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// This success status.
    Ok(u16),
    /// This error status and `error.code`, with a message.
    Error(u16, &'static str),
    /// The request names no object of a principal (the "another's ids" column only).
    NotApplicable,
}

impl fmt::Display for Expect {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Ok(status) => write!(formatter, "{status}"),
            Expect::Error(status, code) => write!(formatter, "{status} `{code}`"),
            Expect::NotApplicable => write!(formatter, "—"),
        }
    }
}

// The cells' shorthands.
const S200: Expect = Expect::Ok(200);
const S201: Expect = Expect::Ok(201);
const S204: Expect = Expect::Ok(204);
const U401: Expect = Expect::Error(401, "unauthorized");
const F403: Expect = Expect::Error(403, "forbidden");
const N404: Expect = Expect::Error(404, "not_found");
const C401: Expect = Expect::Error(401, "invalid_credentials");
const NA: Expect = Expect::NotApplicable;

/// One request a cell sends: the concrete path and body, and any check of a success answer
/// beyond its status.
struct Request {
    path: String,
    body: Option<Value>,
    /// A money-moving POST: sent with a fresh `Idempotency-Key`.
    keyed: bool,
    check: Option<Check>,
}

/// A check of a success answer beyond its status: what is wrong with it, if anything.
type Check = Box<dyn Fn(&Reply) -> Result<(), String>>;

impl Request {
    fn to(path: impl Into<String>) -> Request {
        Request { path: path.into(), body: None, keyed: false, check: None }
    }

    fn json(mut self, body: Value) -> Request {
        self.body = Some(body);
        self
    }

    fn keyed(mut self) -> Request {
        self.keyed = true;
        self
    }

    fn check(mut self, check: impl Fn(&Reply) -> Result<(), String> + 'static) -> Request {
        self.check = Some(Box::new(check));
        self
    }
}

type Build = fn(&mut Fixture, Caller) -> Request;

/// One endpoint: its method and path as the OpenAPI document writes them, whom it serves, the
/// expected answer of each caller (in [`CALLERS`] order), and how to build its request.
struct Row {
    method: &'static str,
    path: &'static str,
    serves: Serves,
    expect: [Expect; 8],
    build: Build,
}

const GET: &str = "GET";
const POST: &str = "POST";
const PUT: &str = "PUT";
const DELETE: &str = "DELETE";
const PATCH: &str = "PATCH";
use Serves::{AnyRole, Anyone, Only};
const CITIZEN: Serves = Only(Role::Citizen);
const MERCHANT: Serves = Only(Role::Merchant);
const ADMIN: Serves = Only(Role::Admin);

/// The matrix, in API.md's order, then the project's extensions. A public endpoint ignores any
/// token; a citizen's endpoint refuses the other roles with 403; data of another principal is 404.
#[rustfmt::skip]
fn matrix() -> Vec<Row> {
    let row = |method, path, serves, expect, build| Row { method, path, serves, expect, build };
    vec![
        //                                                                   no token    expired     citizen     admin
        //                                                                         malformed   logged out  merchant    another's
        // Health and operations
        row(GET,    "/healthz",                                   Anyone,   [S200, S200, S200, S200, S200, S200, S200, NA  ], |_, _| Request::to("/healthz")),
        row(GET,    "/metrics",                                   Anyone,   [S200, S200, S200, S200, S200, S200, S200, NA  ], |_, _| Request::to("/metrics")),
        row(GET,    "/openapi.json",                              Anyone,   [S200, S200, S200, S200, S200, S200, S200, NA  ], |_, _| Request::to("/openapi.json")),
        // Sessions and the waiting room
        row(POST,   "/v1/citizens",                               Anyone,   [S201, S201, S201, S201, S201, S201, S201, NA  ], register),
        row(POST,   "/v1/sessions",                               Anyone,   [S201, S201, S201, S201, S201, S201, S201, NA  ], login),
        // A ticket is a capability of 128 random bits: anyone holding it may poll it (API.md:
        // auth none), so another citizen's ticket answers 200 too.
        row(GET,    "/v1/waiting-room/{ticket}",                  Anyone,   [S200, S200, S200, S200, S200, S200, S200, S200], poll_ticket),
        row(DELETE, "/v1/sessions/current",                       AnyRole,  [U401, U401, U401, U401, S204, S204, S204, NA  ], |_, _| Request::to("/v1/sessions/current")),
        // Citizen
        row(GET,    "/v1/wallet",                                 CITIZEN,  [U401, U401, U401, U401, S200, F403, F403, NA  ], wallet),
        row(POST,   "/v1/wallet/charges",                         CITIZEN,  [U401, U401, U401, U401, S201, F403, F403, NA  ], charge),
        // Another's wallet id is the gift's recipient: bob may give to alice.
        row(POST,   "/v1/wallet/gifts",                           CITIZEN,  [U401, U401, U401, U401, S201, F403, F403, S201], gift),
        row(POST,   "/v1/wallet/payment-codes",                   CITIZEN,  [U401, U401, U401, U401, S201, F403, F403, NA  ], |_, _| Request::to("/v1/wallet/payment-codes")),
        // Another's cursor pages through the caller's own history only.
        row(GET,    "/v1/wallet/transactions",                    CITIZEN,  [U401, U401, U401, U401, S200, F403, F403, S200], transactions),
        // Merchant
        // A payment code is the citizen's consent shown at a counter: the merchant it is shown to
        // takes it, whichever that is.
        row(POST,   "/v1/payments",                               MERCHANT, [U401, U401, U401, U401, F403, S201, F403, S201], pay),
        row(POST,   "/v1/payments/{payment_id}/refunds",          MERCHANT, [U401, U401, U401, U401, F403, S201, F403, N404], refund),
        row(GET,    "/v1/merchant/sales",                         MERCHANT, [U401, U401, U401, U401, F403, S200, F403, NA  ], |_, _| Request::to(format!("/v1/merchant/sales?date={TODAY}"))),
        // City admin
        row(POST,   "/v1/admin/merchants",                        ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], create_merchant),
        row(GET,    "/v1/admin/policy",                           ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/policy")),
        row(PUT,    "/v1/admin/policy",                           ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], put_policy),
        row(POST,   "/v1/admin/cashback-budget/top-ups",          ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], |_, _| Request::to("/v1/admin/cashback-budget/top-ups").json(amount_body(TOP_UP)).keyed()),
        row(GET,    "/v1/admin/cashback-budget",                  ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/cashback-budget")),
        row(POST,   "/v1/admin/settlements",                      ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], |_, _| Request::to("/v1/admin/settlements").json(json!({"business_date": YESTERDAY}))),
        row(GET,    "/v1/admin/settlements/{business_date}",      ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to(format!("/v1/admin/settlements/{YESTERDAY}"))),
        row(GET,    "/v1/admin/settlements",                      ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to(format!("/v1/admin/settlements?from={YESTERDAY}&to={YESTERDAY}"))),
        row(GET,    "/v1/admin/ledger/trial-balance",             ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/ledger/trial-balance")),
        row(GET,    "/v1/admin/admission",                        ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/admission")),
        row(GET,    "/v1/admin/status",                           ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/status")),
        row(GET,    "/v1/admin/audit-log",                        ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/audit-log")),
        row(PUT,    "/v1/admin/test-clock",                       ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], move_clock),
        // Extensions (README: password reset for accounts carried over without a password)
        row(POST,   "/v1/admin/citizens/{login}/password-reset",  ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], |_, _| Request::to(format!("/v1/admin/citizens/{FORGETFUL}/password-reset"))),
        // A reset code sets the password of the citizen it was issued for only.
        row(POST,   "/v1/citizens/password",                      Anyone,   [S204, S204, S204, S204, S204, S204, S204, C401], set_password),
        // Programs (docs/API.md, Part 2)
        row(PATCH,  "/v1/admin/merchants/{merchant_id}",          ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], patch_merchant),
        row(POST,   "/v1/admin/programs",                         ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], |_, _| Request::to("/v1/admin/programs").json(json!({"kind": "allowance", "name": "Matrix", "valid_days": 30}))),
        row(GET,    "/v1/admin/programs",                         ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/programs")),
        row(GET,    "/v1/admin/programs/{program_id}",            ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |fixture, _| Request::to(format!("/v1/admin/programs/{}", fixture.program_id))),
        row(POST,   "/v1/admin/programs/{program_id}/budget-top-ups", ADMIN, [U401, U401, U401, U401, F403, F403, S201, NA  ], |fixture, _| Request::to(format!("/v1/admin/programs/{}/budget-top-ups", fixture.program_id)).json(amount_body(TOP_UP)).keyed()),
        row(POST,   "/v1/admin/programs/{program_id}/grants",     ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], grant),
        // Operations of the console (issue 19). The merchant rows have no ids: a merchant sees
        // its own settlement lines and payments only, whatever it asks.
        row(GET,    "/v1/merchant/settlements",                   MERCHANT, [U401, U401, U401, U401, F403, S200, F403, NA  ], |_, _| Request::to(format!("/v1/merchant/settlements?from={YESTERDAY}&to={TODAY}"))),
        row(GET,    "/v1/merchant/payments",                      MERCHANT, [U401, U401, U401, U401, F403, S200, F403, NA  ], merchant_payments),
        row(GET,    "/v1/admin/merchants",                        ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/merchants?q=shop")),
        row(GET,    "/v1/admin/merchants/{merchant_id}",          ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |fixture, _| Request::to(format!("/v1/admin/merchants/{}", fixture.shop.id))),
        // The cashier only logs in (above): suspended, then reinstated by the next row.
        row(PUT,    "/v1/admin/merchants/{merchant_id}/suspension", ADMIN,  [U401, U401, U401, U401, F403, F403, S200, NA  ], |fixture, _| Request::to(format!("/v1/admin/merchants/{}/suspension", fixture.cashier_id)).json(json!({"reason": "matrix"}))),
        row(DELETE, "/v1/admin/merchants/{merchant_id}/suspension", ADMIN,  [U401, U401, U401, U401, F403, F403, S200, NA  ], |fixture, _| Request::to(format!("/v1/admin/merchants/{}/suspension", fixture.cashier_id))),
        row(GET,    "/v1/admin/citizens",                         ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to("/v1/admin/citizens?limit=2")),
        row(GET,    "/v1/admin/citizens/{login}",                 ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |fixture, _| Request::to(format!("/v1/admin/citizens/{}", fixture.alice.login))),
        // Forgetful has no session: locked, then unlocked by the next row (and logs in at the end).
        row(PUT,    "/v1/admin/citizens/{login}/lock",            ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to(format!("/v1/admin/citizens/{FORGETFUL}/lock")).json(json!({"reason": "matrix"}))),
        row(DELETE, "/v1/admin/citizens/{login}/lock",            ADMIN,    [U401, U401, U401, U401, F403, F403, S200, NA  ], |_, _| Request::to(format!("/v1/admin/citizens/{FORGETFUL}/lock"))),
        row(POST,   "/v1/admin/admins",                           ADMIN,    [U401, U401, U401, U401, F403, F403, S201, NA  ], create_admin),
        // Last: it ends the caller's other sessions. The password is changed to itself.
        row(POST,   "/v1/me/password",                            AnyRole,  [U401, U401, U401, U401, S204, S204, S204, NA  ], |_, _| Request::to("/v1/me/password").json(json!({"current_password": PASSWORD, "new_password": PASSWORD}))),
    ]
}

/// The business date of the test clock (10:00 KST on [`crate::support::CLOCK_START`]).
const TODAY: &str = "2030-01-10";
const YESTERDAY: &str = "2030-01-09";
/// Past the idle timeout (900 s) after every session opened at the start, and the same day.
const CLOCK_AFTER_IDLE: &str = "2030-01-10T01:20:00Z";
/// The citizen whose password the city resets.
const FORGETFUL: &str = "forgetful";
/// The merchant that `POST /v1/sessions` logs in: merchants never wait in the waiting room,
/// which this test keeps full to hold a ticket.
const CASHIER: &str = "cashier";
/// Amounts the successful cells move.
const CHARGE: &str = "1000";
const GIFT: &str = "1000";
const PAYMENT: &str = "2000";
const REFUND: &str = "1000";
const TOP_UP: &str = "1000";
const GRANT: &str = "1000";

// ---------------------------------------------------------------------------------------------
// Requests

fn register(fixture: &mut Fixture, _: Caller) -> Request {
    let login = fixture.fresh_login("walk-in");
    Request::to("/v1/citizens").json(json!({"login": login, "password": PASSWORD}))
}

fn login(_: &mut Fixture, _: Caller) -> Request {
    Request::to("/v1/sessions").json(json!({"login": CASHIER, "password": PASSWORD})).check(|reply| {
        (reply.json["role"] == "merchant" && reply.json["token"].is_string())
            .then_some(())
            .ok_or("not a merchant session".into())
    })
}

fn poll_ticket(fixture: &mut Fixture, _: Caller) -> Request {
    Request::to(format!("/v1/waiting-room/{}", fixture.ticket))
        .check(|reply| (reply.json["position"].as_u64() >= Some(1)).then_some(()).ok_or("no position in line".into()))
}

fn wallet(fixture: &mut Fixture, _: Caller) -> Request {
    let own = fixture.alice.wallet_id.clone();
    Request::to("/v1/wallet").check(move |reply| {
        (reply.json["wallet_id"] == own.as_str()).then_some(()).ok_or("not the caller's wallet".into())
    })
}

fn charge(_: &mut Fixture, _: Caller) -> Request {
    Request::to("/v1/wallet/charges").json(amount_body(CHARGE)).keyed()
}

fn gift(fixture: &mut Fixture, caller: Caller) -> Request {
    // Alice gives to bob; in the last column bob gives to alice.
    let to = if caller == Caller::Another { &fixture.alice.wallet_id } else { &fixture.bob.wallet_id };
    Request::to("/v1/wallet/gifts").json(json!({"to_wallet_id": to, "amount": GIFT})).keyed()
}

fn transactions(fixture: &mut Fixture, caller: Caller) -> Request {
    if caller != Caller::Another {
        return Request::to("/v1/wallet/transactions");
    }
    // Bob pages on from a cursor of alice's history: he sees his own items only.
    let alices = fixture.api().history(&fixture.alice.token, "limit=1");
    let cursor = string(&alices["next_cursor"]);
    let alice_ids = history_ids(&fixture.api().history(&fixture.alice.token, "limit=200"));
    Request::to(format!("/v1/wallet/transactions?cursor={}", crate::support::query_escape(&cursor))).check(
        move |reply| {
            let seen = history_ids(&reply.json);
            match seen.intersection(&alice_ids).next() {
                Some(id) => Err(format!("bob sees alice's history item {id}")),
                None => Ok(()),
            }
        },
    )
}

fn pay(fixture: &mut Fixture, caller: Caller) -> Request {
    let code = match fixture.code.take() {
        Some(code) => code,
        None => fixture.api().payment_code(&fixture.alice.token),
    };
    // The refused cells pass one code on to the next: the successful ones then prove that a
    // refused payment did not use it up.
    if !matches!(caller, Caller::Merchant | Caller::Another) {
        fixture.code = Some(code.clone());
    }
    Request::to("/v1/payments").json(json!({"payment_code": code, "amount": PAYMENT})).keyed()
}

fn refund(fixture: &mut Fixture, _: Caller) -> Request {
    Request::to(format!("/v1/payments/{}/refunds", fixture.payment_id)).json(amount_body(REFUND)).keyed()
}

fn patch_merchant(fixture: &mut Fixture, _: Caller) -> Request {
    Request::to(format!("/v1/admin/merchants/{}", fixture.shop.id)).json(json!({"annual_revenue": "120000000"}))
}

fn grant(fixture: &mut Fixture, _: Caller) -> Request {
    let grants = json!({"grants": [{"wallet_id": fixture.bob.wallet_id, "amount": GRANT}]});
    Request::to(format!("/v1/admin/programs/{}/grants", fixture.program_id)).json(grants).keyed()
}

fn create_merchant(fixture: &mut Fixture, caller: Caller) -> Request {
    let login = fixture.fresh_login("applicant");
    if caller != Caller::Admin {
        fixture.refused_logins.push(login.clone());
    }
    Request::to("/v1/admin/merchants").json(json!({
        "login": login, "password": PASSWORD, "name": "Applicant",
        "business_number": "214-86-12345", "bank_account": "004-21-12345-01",
    }))
}

fn create_admin(fixture: &mut Fixture, caller: Caller) -> Request {
    let login = fixture.fresh_login("clerk");
    if caller != Caller::Admin {
        fixture.refused_logins.push(login.clone());
    }
    Request::to("/v1/admin/admins").json(json!({"login": login, "password": PASSWORD}))
}

fn merchant_payments(_: &mut Fixture, _: Caller) -> Request {
    // Shop's own payments of today, newest first: the matrix's 2000, then setup's 10000; never
    // other-shop's.
    Request::to(format!("/v1/merchant/payments?date={TODAY}")).check(|reply| {
        let amounts: Vec<&Value> = reply.json["items"]
            .as_array()
            .map(|items| items.iter().map(|item| &item["amount"]).collect())
            .unwrap_or_default();
        (amounts == [&json!(PAYMENT), &json!("10000")]).then_some(()).ok_or(format!("not shop's payments: {amounts:?}"))
    })
}

fn put_policy(_: &mut Fixture, _: Caller) -> Request {
    // The policy in force, put again: a refused put and an accepted one leave it as it is, and a
    // put of anything else is caught at the end.
    let policy: serde_json::Map<String, Value> =
        POLICY_STANDARD.iter().map(|(name, value)| (name.to_string(), json!(value))).collect();
    Request::to("/v1/admin/policy").json(Value::Object(policy))
}

fn move_clock(fixture: &mut Fixture, _: Caller) -> Request {
    // A second past where the server's clock can be by now: forward, as the endpoint requires.
    let (set, at) = fixture.clock;
    let now = set + chrono::Duration::from_std(at.elapsed()).expect("seconds") + chrono::Duration::seconds(1);
    Request::to("/v1/admin/test-clock").json(json!({"now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}))
}

fn set_password(fixture: &mut Fixture, caller: Caller) -> Request {
    let issued =
        fixture.api().post(&format!("/v1/admin/citizens/{FORGETFUL}/password-reset"), &fixture.admin, &json!({}), &[]);
    let reset_code = string(&issued.expect(201)["reset_code"]);
    // In the last column forgetful's code is tried for bob.
    let (login, password) = if caller == Caller::Another {
        (fixture.bob.login.clone(), "bobs-new-password".to_owned())
    } else {
        fixture.forgetful_password = format!("new-password-{}", fixture.fresh_login("pw"));
        (FORGETFUL.to_owned(), fixture.forgetful_password.clone())
    };
    Request::to("/v1/citizens/password").json(json!({"login": login, "reset_code": reset_code, "password": password}))
}

fn history_ids(page: &Value) -> BTreeSet<String> {
    page["items"].as_array().map(|items| items.iter().map(|item| string(&item["id"])).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The principals and tokens the cells use

struct Fixture<'a> {
    app: &'a TestApp,
    alice: Citizen,
    bob: Citizen,
    shop: Merchant,
    other_shop: Merchant,
    /// The merchant that only logs in (the suspension rows suspend and reinstate it).
    cashier_id: String,
    admin: String,
    /// Sessions for the logout row, which ends them.
    spare: BTreeMap<Role, String>,
    /// One expired session per row that needs a token (used once: the first use ends it).
    expired: BTreeMap<Role, Vec<String>>,
    logged_out: BTreeMap<Role, String>,
    /// A code of alice's that refused payments presented.
    code: Option<String>,
    /// Shop's payment (of alice) that the refund row refunds.
    payment_id: String,
    /// An allowance program with a budget, for the program rows.
    program_id: String,
    /// A ticket of a citizen waiting in the (full) waiting room.
    ticket: String,
    /// The sessions that fill the room.
    filler_sessions: Vec<String>,
    /// The test clock last set and when.
    clock: (chrono::DateTime<chrono::FixedOffset>, Instant),
    logins_made: usize,
    refused_logins: Vec<String>,
    forgetful_password: String,
}

impl Fixture<'_> {
    fn api(&self) -> &Client {
        &self.app.api
    }

    fn fresh_login(&mut self, prefix: &str) -> String {
        self.logins_made += 1;
        format!("{prefix}-{}", self.logins_made)
    }

    fn login_as(&self, role: Role) -> String {
        let login = match role {
            Role::Citizen => &self.alice.login,
            Role::Merchant => &self.shop.login,
            Role::Admin => ADMIN_LOGIN,
        };
        self.api().login(login, PASSWORD)
    }

    fn live_token(&self, role: Role) -> &str {
        match role {
            Role::Citizen => &self.alice.token,
            Role::Merchant => &self.shop.token,
            Role::Admin => &self.admin,
        }
    }

    /// The `Authorization` headers a caller sends on `row`: one, or none; several for the
    /// malformed column.
    fn authorizations(&mut self, row: &Row, caller: Caller) -> Vec<Option<String>> {
        let role = row.serves.token_role();
        let bearer = |token: &str| Some(format!("Bearer {token}"));
        match caller {
            Caller::NoToken => vec![None],
            Caller::Malformed => malformed(self.live_token(role)),
            Caller::Expired => {
                let pool = self.expired.get_mut(&role).expect("a pool per role");
                vec![bearer(&pool.pop().expect("setup made an expired session per row"))]
            }
            Caller::LoggedOut => vec![bearer(&self.logged_out[&role])],
            Caller::Citizen | Caller::Merchant | Caller::Admin => {
                let role = match caller {
                    Caller::Citizen => Role::Citizen,
                    Caller::Merchant => Role::Merchant,
                    _ => Role::Admin,
                };
                // The logout row ends the session it is sent with: a spare one, not the live one.
                if row.path == "/v1/sessions/current" {
                    vec![bearer(&self.spare[&role])]
                } else {
                    vec![bearer(self.live_token(role))]
                }
            }
            Caller::Another => match role {
                Role::Citizen => vec![bearer(&self.bob.token)],
                Role::Merchant => vec![bearer(&self.other_shop.token)],
                Role::Admin => unreachable!("no admin row has an another's-ids cell"),
            },
        }
    }
}

/// Malformed `Authorization` values built from a live token: each must be refused as no token.
fn malformed(live: &str) -> Vec<Option<String>> {
    let mut altered = live.to_owned();
    let last = altered.pop().expect("a token is not empty");
    altered.push(if last == 'A' { 'B' } else { 'A' });
    vec![
        Some(format!("Bearer {altered}")),           // one character changed
        Some(live.to_owned()),                       // no scheme
        Some(format!("Basic {live}")),               // another scheme
        Some("Bearer ".to_owned()),                  // no token
        Some(format!("Bearer {}", "a".repeat(200))), // longer than any token
        Some(format!("Bearer {live}x")),             // a live token with a character added
    ]
}

/// Starts every session the cells need, lets some of them expire on the test clock and ends
/// others, and takes a ticket in a full waiting room.
fn set_up(app: &TestApp, sessions_capacity: i64) -> Fixture<'_> {
    let api = &app.api;
    app.top_up_budget("100000");
    let alice = api.register_citizen("alice");
    let bob = api.register_citizen("bob");
    let shop = api.create_merchant(&app.admin(), "shop");
    let other_shop = api.create_merchant(&app.admin(), "other-shop");
    let cashier_id = api.create_merchant(&app.admin(), CASHIER).id;
    for login in [FORGETFUL, "filler"] {
        api.post("/v1/citizens", "", &json!({"login": login, "password": PASSWORD}), &[]).expect(201);
    }
    api.charge(&alice.token, "50000").expect(201);
    api.charge(&bob.token, "5000").expect(201);
    let payment_id = string(&api.pay_from(&alice.token, &shop.token, "10000")["payment_id"]);
    let program = json!({"kind": "allowance", "name": "Youth", "valid_days": 90});
    let program_id = string(&api.post("/v1/admin/programs", &app.admin(), &program, &[]).expect(201)["program_id"]);
    let path = format!("/v1/admin/programs/{program_id}/budget-top-ups");
    api.post_keyed(&path, &app.admin(), &amount_body("100000")).expect(201);

    let mut fixture = Fixture {
        app,
        alice,
        bob,
        shop,
        other_shop,
        cashier_id,
        admin: app.admin(),
        spare: BTreeMap::new(),
        expired: BTreeMap::new(),
        logged_out: BTreeMap::new(),
        code: None,
        payment_id,
        program_id,
        ticket: String::new(),
        filler_sessions: Vec::new(),
        clock: (chrono::DateTime::parse_from_rfc3339(CLOCK_AFTER_IDLE).expect("RFC 3339"), Instant::now()),
        logins_made: 0,
        refused_logins: Vec::new(),
        forgetful_password: String::new(),
    };
    // Sessions that will have expired: one for each row that takes the role's token.
    for row in matrix() {
        let role = row.serves.token_role();
        let session = fixture.login_as(role);
        fixture.expired.entry(role).or_default().push(session);
    }
    for role in [Role::Citizen, Role::Merchant, Role::Admin] {
        let session = fixture.login_as(role);
        api.delete("/v1/sessions/current", &session).expect(204);
        fixture.logged_out.insert(role, session);
    }
    let citizen_sessions = 2 + fixture.expired[&Role::Citizen].len() + 3;
    assert!(citizen_sessions as i64 <= sessions_capacity, "raise the session capacity to {citizen_sessions}");

    // Past the idle timeout: every session above has expired. New live sessions.
    let sent_at = Instant::now();
    app.set_clock(CLOCK_AFTER_IDLE);
    fixture.clock.1 = sent_at;
    fixture.admin = app.admin();
    fixture.alice.relogin(api);
    fixture.bob.relogin(api);
    fixture.shop.relogin(api);
    fixture.other_shop.relogin(api);
    for role in [Role::Citizen, Role::Merchant, Role::Admin] {
        let session = fixture.login_as(role);
        fixture.spare.insert(role, session);
    }
    fixture
}

/// Fills the citizen session slots with the filler's sessions until a login is answered with a
/// place in the waiting room; returns its ticket and the sessions.
fn take_ticket(api: &Client, sessions_capacity: i64) -> (String, Vec<String>) {
    let mut sessions = Vec::new();
    for _ in 0..=sessions_capacity {
        let reply = api.post("/v1/sessions", "", &json!({"login": "filler", "password": PASSWORD}), &[]);
        if reply.status == 201 {
            sessions.push(string(&reply.json["token"]));
            continue;
        }
        reply.expect_error(503, "waiting_room");
        return (string(&reply.json["waiting_room"]["ticket"]), sessions);
    }
    panic!("{} citizen logins never filled the {sessions_capacity} session slots", sessions_capacity + 1)
}

/// Every operation of the OpenAPI document, as `METHOD path`.
fn documented_operations(api: &Client) -> BTreeSet<String> {
    let document = api.get("/openapi.json", "").expect(200);
    let paths = document["paths"].as_object().unwrap_or_else(|| panic!("no paths in the OpenAPI document"));
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch", "head", "options", "trace"] {
            if item.get(method).is_some() {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

/// Sends one request of a cell and compares its answer with the cell.
fn send(
    fixture: &Fixture,
    row: &Row,
    expect: Expect,
    authorization: Option<&str>,
    request: &Request,
) -> Result<(), String> {
    let key = new_key();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(authorization) = authorization {
        headers.push(("Authorization", authorization));
    }
    if request.keyed {
        headers.push(("Idempotency-Key", &key));
    }
    let body = request.body.as_ref().map_or(Body::Empty, Body::Json);
    let reply = fixture.api().send(row.method, &request.path, "", body, &headers);
    let matches = match expect {
        Expect::Ok(status) => reply.status == status,
        Expect::Error(status, code) => {
            reply.status == status && reply.json["error"]["code"] == code && reply.json["error"]["message"].is_string()
        }
        Expect::NotApplicable => unreachable!("not-applicable cells are not sent"),
    };
    if !matches {
        return Err(format!("expected {expect}, got {reply}"));
    }
    match (&request.check, expect) {
        (Some(check), Expect::Ok(_)) => check(&reply).map_err(|problem| format!("{problem}: {reply}")),
        _ => Ok(()),
    }
}

fn authorization_matrix(backend: Backend) {
    // The capacity is small so that a ticket can be had; it holds every citizen session opened
    // before the idle sweep ends the expired ones.
    const SESSIONS_CAPACITY: i64 = 20;
    let started = Instant::now();
    let app = TestApp::start_with(backend, &[("WALLET_MAX_SESSIONS", &SESSIONS_CAPACITY.to_string())]);
    let rows = matrix();

    // The table covers every endpoint the API document lists, and lists none it does not.
    let documented = documented_operations(&app.api);
    let covered: BTreeSet<String> = rows.iter().map(|row| format!("{} {}", row.method, row.path)).collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(missing.is_empty(), "endpoints in /openapi.json that the authorization matrix does not cover: {missing:?}");
    let unknown: Vec<_> = covered.difference(&documented).collect();
    assert!(unknown.is_empty(), "matrix rows for endpoints /openapi.json does not list: {unknown:?}");
    assert_eq!(covered.len(), rows.len(), "a row is listed twice");

    let mut fixture = set_up(&app, SESSIONS_CAPACITY);
    // The expired cells of the rows that check a token come first, right after the clock move:
    // the server's sweep (every 5 s) would otherwise have ended some citizen sessions before the
    // request could find them expired. Either way the answer must be 401.
    let mut order: Vec<(usize, Caller)> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if row.serves != Anyone {
            order.push((index, Caller::Expired));
        }
    }
    let mut ticket_taken = false;
    for (index, row) in rows.iter().enumerate() {
        for caller in CALLERS {
            if !(caller == Caller::Expired && row.serves != Anyone) {
                order.push((index, caller));
            }
        }
    }

    let mut failures = Vec::new();
    let (mut cells, mut requests) = (0, 0);
    for (index, caller) in order {
        let row = &rows[index];
        let expect = row.expect[CALLERS.iter().position(|column| *column == caller).expect("a column")];
        if expect == NA {
            continue;
        }
        if !ticket_taken && caller != Caller::Expired {
            // After the expired cells: the ticket is dropped 60 s (of the test clock) after its last poll.
            (fixture.ticket, fixture.filler_sessions) = take_ticket(&app.api, SESSIONS_CAPACITY);
            ticket_taken = true;
        }
        cells += 1;
        for authorization in fixture.authorizations(row, caller) {
            let request = (row.build)(&mut fixture, caller);
            requests += 1;
            if let Err(problem) = send(&fixture, row, expect, authorization.as_deref(), &request) {
                failures.push(format!(
                    "{} {} × {} ({:?}): {problem}",
                    row.method,
                    row.path,
                    caller.header(),
                    authorization
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells answered otherwise than documented:\n{}",
        failures.len(),
        failures.join("\n")
    );

    assert_nothing_refused_happened(&fixture);
    eprintln!(
        "authorization matrix ({backend:?}): {} endpoints × {} callers, {cells} cells asserted ({} not applicable), \
         {requests} requests, run {:.0?}",
        rows.len(),
        CALLERS.len(),
        rows.len() * CALLERS.len() - cells,
        started.elapsed(),
    );
    eprintln!("{}", markdown(&rows));
}

/// What the successful cells did, and nothing more: the refused ones moved nothing, changed no
/// policy, created no merchant, set no password.
fn assert_nothing_refused_happened(fixture: &Fixture) {
    let api = fixture.api();
    let admin = &fixture.admin;
    let kinds = |token: &str| -> Vec<(String, String)> {
        let mut rows: Vec<_> = crate::support::history_rows(&api.history(token, "limit=200"))
            .into_iter()
            .map(|(kind, amount, _)| (kind, amount))
            .collect();
        rows.sort();
        rows
    };
    let sorted = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut items: Vec<_> = items.iter().map(|(kind, amount)| (kind.to_string(), amount.to_string())).collect();
        items.sort();
        items
    };
    // Setup: a charge and a payment of 10000 at shop (10% cashback). The matrix: one charge, a
    // gift each way with bob, a payment at each shop, a refund of 1000 of the first payment.
    let alice = sorted(&[
        ("charge", "50000"),
        ("payment", "-10000"),
        ("cashback", "1000"),
        ("charge", "1000"),
        ("gift_out", "-1000"),
        ("gift_in", "1000"),
        ("payment", "-2000"),
        ("cashback", "200"),
        ("payment", "-2000"),
        ("cashback", "200"),
        ("refund", "1000"),
        ("cashback_reversal", "-100"),
    ]);
    assert_eq!(kinds(&fixture.alice.token), alice, "alice's history");
    assert_eq!(api.balance(&fixture.alice.token), "39300");
    // The admin's grant of the matrix, once: no refused caller granted or topped up.
    let bob = sorted(&[("charge", "5000"), ("gift_in", "1000"), ("gift_out", "-1000"), ("allowance_granted", GRANT)]);
    assert_eq!(kinds(&fixture.bob.token), bob, "bob's history");
    let program = api.get(&format!("/v1/admin/programs/{}", fixture.program_id), &fixture.admin).expect(200);
    assert_eq!((&program["budget"]["funded"], &program["budget"]["granted"]), (&json!("101000"), &json!(GRANT)));

    let sales = |token: &str| {
        let sales = api.get(&format!("/v1/merchant/sales?date={TODAY}"), token).expect(200);
        (sales["payments_count"].clone(), sales["payments_amount"].clone(), sales["refunds_amount"].clone())
    };
    assert_eq!(sales(&fixture.shop.token), (json!(2), json!("12000"), json!("1000")), "shop's sales");
    assert_eq!(sales(&fixture.other_shop.token), (json!(1), json!("2000"), json!("0")), "other-shop's sales");

    let policy: serde_json::Map<String, Value> =
        POLICY_STANDARD.iter().map(|(name, value)| (name.to_string(), json!(value))).collect();
    assert_eq!(api.get("/v1/admin/policy", admin).expect(200), Value::Object(policy));
    let budget = api.get("/v1/admin/cashback-budget", admin).expect(200);
    assert_eq!(budget, json!({"funded": "101000", "paid_out": "1400", "reversed": "100", "remaining": "99700"}));
    for login in &fixture.refused_logins {
        api.post("/v1/sessions", "", &json!({"login": login, "password": PASSWORD}), &[])
            .expect_error(401, "invalid_credentials");
    }
    // Bob's password is untouched; forgetful's is the last one set. (Room for their logins: the
    // filler leaves and takes its turn.)
    for session in &fixture.filler_sessions {
        api.delete("/v1/sessions/current", session).expect(204);
    }
    api.login("filler", PASSWORD);
    api.login(&fixture.bob.login, PASSWORD);
    api.login(FORGETFUL, &fixture.forgetful_password);
    fixture.app.assert_books_balance();
}

/// The table as Markdown, for docs/RELIABILITY (printed with `--nocapture`).
fn markdown(rows: &[Row]) -> String {
    let mut text = String::from("| endpoint |");
    for caller in CALLERS {
        text.push_str(&format!(" {} |", caller.header()));
    }
    text.push_str("\n|---|");
    text.push_str(&"---|".repeat(CALLERS.len()));
    for row in rows {
        text.push_str(&format!("\n| `{} {}` |", row.method, row.path));
        for expect in row.expect {
            text.push_str(&format!(" {expect} |"));
        }
    }
    text
}

scenarios!(authorization_matrix);
