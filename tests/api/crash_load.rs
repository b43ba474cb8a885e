//! Crash and restart under load: client threads run charges, gifts and payments at once, each
//! with its own Idempotency-Key, while the server is killed with SIGKILL at random moments and
//! restarted (and, on PostgreSQL, the database itself crashes and comes back once). Every
//! operation is retried with its same key and body until it has a definite answer; afterwards
//! the books must hold exactly what the definite answers add up to, to the won: each wallet's
//! balance and history (every acknowledged operation in it once: none missing, none doubled), each
//! merchant's sales, and the trial balance. No assertion depends on timing.
//!
//! Unlike `crash.rs` (one kill during one stream), here the kills land among concurrent batches
//! of different operations, and the retries of one crash may still be running into the next.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

use crate::support::{string, won, Backend, Body, Client, PostgresCluster, Reply, TestApp, PASSWORD};

/// Citizens, and the client threads that act for them (each owns `CITIZENS / THREADS` citizens
/// and a session of one merchant's terminal).
const CITIZENS: usize = 8;
const MERCHANTS: usize = 2;
const THREADS: usize = 4;
/// Server kills with SIGKILL.
const KILLS: usize = 4;
/// On PostgreSQL the database crashes once, after this many kills: the kills before it show
/// that a server's crash loses no session either (sessions are rows in the database).
const DATABASE_CRASH_AFTER_KILLS: usize = 2;
/// Definite answers awaited before each kill (and after the last restart): a random number in
/// this range, so the kills land at random moments of the load.
const OPERATIONS_BETWEEN_KILLS: RangeInclusive<usize> = 60..=200;
/// Bound on waiting for that progress: generous, for a loaded CI machine.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on one operation reaching a definite answer across kills and restarts.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the server answering from the database again after PostgreSQL came back.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a server stays down after a kill, at most (a random share of it).
const DOWNTIME_MS_MAX: u64 = 300;
/// How long the database stays down after its crash: a random duration in this range.
const DATABASE_DOWNTIME_MS: RangeInclusive<u64> = 300..=1500;
/// Pause before retrying after a refused connection, a 5xx or while the server is down.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// What the city puts in the cashback budget.
const BUDGET: i128 = 10_000_000;
/// What each citizen charges before the load starts, so gifts and payments have funds at once.
const OPENING_CHARGE: i128 = 100_000;
const HOLDING_LIMIT: &str = "250000";
const MONTHLY_CHARGE_LIMIT: &str = "700000";
/// The business date of the whole run (10:00 KST on the test clock's start).
const TODAY: &str = "2030-01-10";

/// A money operation a client asks for.
#[derive(Clone, Debug)]
enum Operation {
    Charge { wallet: usize, amount: i128 },
    Gift { from: usize, to: usize, amount: i128 },
    Pay { wallet: usize, merchant: usize, amount: i128 },
}

/// How an operation ended, as its definite answer says.
#[derive(Clone, Debug)]
enum Outcome {
    /// Approved: the id it answered (`charge_id`, `gift_id`, `payment_id`) and, for a payment,
    /// the cashback it credited.
    Done { id: String, cashback: i128 },
    /// Refused with this code; nothing moved.
    Refused(String),
}

struct Settled {
    operation: Operation,
    outcome: Outcome,
    /// Requests it took (more than one: retried across a kill, an outage or a lost session).
    attempts: usize,
}

/// Where the clients send: the running server's client, or none while it is down (so no request
/// goes to the dead port, which another test's server might take meanwhile).
#[derive(Default)]
struct Target {
    client: RwLock<Option<Client>>,
}

impl Target {
    fn current(&self) -> Option<Client> {
        self.client.read().expect("no thread panics holding the lock").clone()
    }

    fn set(&self, client: Option<Client>) {
        *self.client.write().expect("no thread panics holding the lock") = client;
    }
}

/// What every client thread shares.
struct Shared {
    target: Target,
    stop: AtomicBool,
    /// Definite answers so far, of all threads.
    settled: AtomicUsize,
    relogins: AtomicUsize,
    /// Money requests retried: after a dropped connection, a 500, a 503.
    dropped: AtomicUsize,
    failed: AtomicUsize,
    unavailable: AtomicUsize,
    wallet_ids: Vec<String>,
}

/// A principal's login and current session; logs in again when the session is gone.
struct Session {
    login: String,
    token: String,
}

impl Session {
    fn open(shared: &Shared, login: &str) -> Session {
        let mut session = Session { login: login.to_owned(), token: String::new() };
        session.renew(shared);
        session
    }

    /// Logs in, retrying while the server is down or the database unreachable.
    fn renew(&mut self, shared: &Shared) {
        let body = json!({"login": self.login, "password": PASSWORD});
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < OPERATION_TIMEOUT, "{} could not log in again", self.login);
            if let Some(reply) = send(shared, "POST", "/v1/sessions", "", &body, None) {
                match reply.status {
                    201 => {
                        self.token = string(&reply.json["token"]);
                        return;
                    }
                    500 | 503 => {}
                    _ => panic!("login of {} answered otherwise than a retry or success: {reply}", self.login),
                }
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }
}

/// One request to the running server; `None` when it is down or the connection failed.
fn send(shared: &Shared, method: &str, path: &str, token: &str, body: &Value, key: Option<&str>) -> Option<Reply> {
    let client = shared.target.current()?;
    let headers: Vec<(&str, &str)> = key.map(|key| ("Idempotency-Key", key)).into_iter().collect();
    client.try_send(method, path, token, Body::Json(body), &headers).ok()
}

/// Sends `body` to `path` with one key until the answer is definite: a success, or one of
/// `refusals` (422). A dropped connection, a 5xx (the server going down, the database
/// unreachable) and a lost session (401: log in again; the same principal's key still holds)
/// are retried with the same key and body.
fn settle(shared: &Shared, session: &mut Session, path: &str, body: &Value, refusals: &[&str]) -> (Reply, usize) {
    let key = crate::support::new_key();
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        assert!(
            started.elapsed() < OPERATION_TIMEOUT,
            "POST {path} {body} (key {key}) had no definite answer within {OPERATION_TIMEOUT:?}"
        );
        let Some(client) = shared.target.current() else {
            std::thread::sleep(RETRY_PAUSE);
            continue;
        };
        attempts += 1;
        let headers = [("Idempotency-Key", key.as_str())];
        let reply = match client.try_send("POST", path, &session.token, Body::Json(body), &headers) {
            Ok(reply) => reply,
            Err(_) => {
                shared.dropped.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
        };
        match reply.status {
            200..=299 => return (reply, attempts),
            401 if reply.json["error"]["code"] == "unauthorized" => {
                shared.relogins.fetch_add(1, Ordering::SeqCst);
                session.renew(shared);
            }
            // The server says: retry. (A 500 when the database failed mid-batch: the retry with
            // the key tells whether the batch committed.)
            500 => {
                shared.failed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(RETRY_PAUSE);
            }
            503 => {
                shared.unavailable.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(RETRY_PAUSE);
            }
            422 if refusals.iter().any(|code| reply.json["error"]["code"] == *code) => return (reply, attempts),
            _ => panic!("POST {path} {body} (key {key}) answered neither success, refusal nor retry: {reply}"),
        }
    }
}

/// A fresh payment code of the citizen (not idempotent, and need not be: an unused code is
/// harmless).
fn payment_code(shared: &Shared, citizen: &mut Session) -> String {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < OPERATION_TIMEOUT, "{} got no payment code", citizen.login);
        if let Some(reply) = send(shared, "POST", "/v1/wallet/payment-codes", &citizen.token, &json!({}), None) {
            match reply.status {
                201 => return string(&reply.json["code"]),
                401 => {
                    shared.relogins.fetch_add(1, Ordering::SeqCst);
                    citizen.renew(shared);
                    continue;
                }
                500 | 503 => {}
                _ => panic!("a payment code was refused: {reply}"),
            }
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Runs `operation` to its definite answer and checks the answer's body.
fn run(shared: &Shared, citizen: &mut Session, merchant: &mut Session, operation: Operation) -> Settled {
    let (reply, attempts, id_field) = match &operation {
        Operation::Charge { amount, .. } => {
            let body = json!({"amount": amount.to_string()});
            let (reply, attempts) = settle(shared, citizen, "/v1/wallet/charges", &body, &["limit_exceeded"]);
            (reply, attempts, "charge_id")
        }
        Operation::Gift { to, amount, .. } => {
            let body = json!({"to_wallet_id": shared.wallet_ids[*to], "amount": amount.to_string()});
            let refusals = ["insufficient_funds", "limit_exceeded"];
            let (reply, attempts) = settle(shared, citizen, "/v1/wallet/gifts", &body, &refusals);
            (reply, attempts, "gift_id")
        }
        Operation::Pay { amount, .. } => {
            // A code is single use: a retry keeps its key, body and code, and gets the original
            // answer. Only a new operation, after a definite answer, takes a new code.
            let body = json!({"payment_code": payment_code(shared, citizen), "amount": amount.to_string()});
            let refusals = ["insufficient_funds", "payment_code_invalid"];
            let (reply, attempts) = settle(shared, merchant, "/v1/payments", &body, &refusals);
            (reply, attempts, "payment_id")
        }
    };
    let outcome = if reply.status == 201 {
        let amount = match &operation {
            Operation::Charge { amount, .. } | Operation::Gift { amount, .. } | Operation::Pay { amount, .. } => amount,
        };
        assert_eq!(won(&reply.json["amount"]), *amount, "{reply}");
        let cashback = match operation {
            Operation::Pay { .. } => {
                assert_eq!(reply.json["status"], "approved", "{reply}");
                won(&reply.json["cashback"])
            }
            _ => 0,
        };
        assert!(cashback >= 0, "{reply}");
        Outcome::Done { id: string(&reply.json[id_field]), cashback }
    } else {
        Outcome::Refused(string(&reply.json["error"]["code"]))
    };
    shared.settled.fetch_add(1, Ordering::SeqCst);
    Settled { operation, outcome, attempts }
}

/// One client thread: its citizens charge, give to any citizen, and pay at its merchant's
/// terminal, at random, until told to stop.
fn client_thread(shared: Arc<Shared>, citizens: Vec<(usize, String)>, merchant: (usize, String)) -> Vec<Settled> {
    let mut rng = rand::rng();
    let mut sessions: Vec<(usize, Session)> =
        citizens.iter().map(|(index, login)| (*index, Session::open(&shared, login))).collect();
    let mut terminal = Session::open(&shared, &merchant.1);
    let mut settled = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let pick = rng.random_range(0..sessions.len());
        let (wallet, citizen) = &mut sessions[pick];
        let wallet = *wallet;
        let operation = match rng.random_range(0..10) {
            0..=2 => Operation::Charge { wallet, amount: rng.random_range(5_000..=30_000) },
            3..=5 => {
                let to = (wallet + rng.random_range(1..CITIZENS)) % CITIZENS;
                Operation::Gift { from: wallet, to, amount: rng.random_range(1_000..=15_000) }
            }
            _ => Operation::Pay { wallet, merchant: merchant.0, amount: rng.random_range(1_000..=20_000) },
        };
        settled.push(run(&shared, citizen, &mut terminal, operation));
    }
    settled
}

/// Waits until `count` more operations have a definite answer (or a client thread ended, which
/// only a failure does before the stop).
fn await_progress(shared: &Shared, threads: &[JoinHandle<Vec<Settled>>], count: usize, since: &str) {
    let target = shared.settled.load(Ordering::SeqCst) + count;
    let started = Instant::now();
    while shared.settled.load(Ordering::SeqCst) < target && !threads.iter().any(JoinHandle::is_finished) {
        assert!(started.elapsed() < PROGRESS_TIMEOUT, "the load made no progress for {PROGRESS_TIMEOUT:?} {since}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the server answers a request that needs the database again.
fn await_database(app: &TestApp) {
    let started = Instant::now();
    let mut admin = app.admin();
    loop {
        assert!(
            started.elapsed() < RECOVERY_TIMEOUT,
            "the server did not answer from the database within {RECOVERY_TIMEOUT:?} after PostgreSQL came back"
        );
        if let Ok(reply) = app.api.try_send("GET", "/v1/admin/ledger/trial-balance", &admin, Body::Empty, &[]) {
            match reply.status {
                200 => return,
                // The admin's session may have been in the last moment the crash lost.
                401 => {
                    let login = json!({"login": crate::support::ADMIN_LOGIN, "password": PASSWORD});
                    if let Ok(session) = app.api.try_send("POST", "/v1/sessions", "", Body::Json(&login), &[]) {
                        if session.status == 201 {
                            admin = string(&session.json["token"]);
                        }
                    }
                }
                500 | 503 => {}
                _ => panic!("while PostgreSQL recovered: {reply}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every item of a wallet's history, newest first.
fn full_history(api: &Client, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut query = "limit=200".to_owned();
    loop {
        let page = api.history(token, &query);
        items.extend(page["items"].as_array().unwrap_or_else(|| panic!("no items in {page}")).iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=200&cursor={}", crate::support::query_escape(cursor)),
            None => return items,
        }
    }
}

/// What one wallet's definite answers add up to.
#[derive(Default)]
struct Expected {
    balance: i128,
    /// Items whose id the answers named: id → (kind, amount).
    named: BTreeMap<String, (&'static str, i128)>,
    /// Items whose id no answer names, as sorted (kind, amount, counterparty).
    unnamed: Vec<(&'static str, i128, String)>,
}

fn crash_and_restart_under_load(backend: Backend) {
    let started = Instant::now();
    let mut rng = rand::rng();
    // PostgreSQL: a cluster of this test's own, since the test crashes it.
    let cluster = (backend == Backend::Postgres).then(PostgresCluster::start);
    let mut app = match &cluster {
        Some(cluster) => TestApp::start_in_cluster(cluster.url(), &[]),
        None => TestApp::start(backend),
    };
    app.top_up_budget(&BUDGET.to_string());
    // Limits low enough that charges and gifts meet them and payments meet empty wallets: the
    // refusals are definite answers too, and must have moved nothing.
    app.set_policy(&[("holding_limit", HOLDING_LIMIT), ("monthly_charge_limit", MONTHLY_CHARGE_LIMIT)]);
    let citizens: Vec<_> =
        (0..CITIZENS).map(|index| app.api.register_citizen(&format!("load-citizen-{index}"))).collect();
    let merchants: Vec<_> =
        (0..MERCHANTS).map(|index| app.api.create_merchant(&app.admin(), &format!("load-shop-{index}"))).collect();
    let mut opening = Vec::new();
    for (index, citizen) in citizens.iter().enumerate() {
        let reply = app.api.charge(&citizen.token, &OPENING_CHARGE.to_string()).expect(201);
        let outcome = Outcome::Done { id: string(&reply["charge_id"]), cashback: 0 };
        opening.push(Settled {
            operation: Operation::Charge { wallet: index, amount: OPENING_CHARGE },
            outcome,
            attempts: 1,
        });
    }

    let shared = Arc::new(Shared {
        target: Target::default(),
        stop: AtomicBool::new(false),
        settled: AtomicUsize::new(0),
        relogins: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        unavailable: AtomicUsize::new(0),
        wallet_ids: citizens.iter().map(|citizen| citizen.wallet_id.clone()).collect(),
    });
    shared.target.set(Some(app.api.clone()));
    let per_thread = CITIZENS / THREADS;
    let threads: Vec<JoinHandle<Vec<Settled>>> = (0..THREADS)
        .map(|thread| {
            let shared = shared.clone();
            let owned: Vec<_> = (thread * per_thread..(thread + 1) * per_thread)
                .map(|index| (index, citizens[index].login.clone()))
                .collect();
            let merchant = (thread % MERCHANTS, merchants[thread % MERCHANTS].login.clone());
            std::thread::spawn(move || client_thread(shared, owned, merchant))
        })
        .collect();

    let mut kills = 0;
    let mut database_crashes = 0;
    let mut relogins_before_database_crash = None;
    let mut since = "since the load started".to_owned();
    for _ in 0..KILLS {
        await_progress(&shared, &threads, rng.random_range(OPERATIONS_BETWEEN_KILLS), &since);
        if threads.iter().any(JoinHandle::is_finished) {
            break; // a client failed: its panic is reported below
        }
        shared.target.set(None);
        app.server.kill9();
        kills += 1;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=DOWNTIME_MS_MAX)));
        app.restart();
        shared.target.set(Some(app.api.clone()));
        since = format!("since the server restarted after kill {kills}");
        if let (Some(cluster), DATABASE_CRASH_AFTER_KILLS) = (&cluster, kills) {
            // The database crashes under the running server and comes back on the same port; the
            // server must reconnect by itself.
            await_progress(&shared, &threads, rng.random_range(OPERATIONS_BETWEEN_KILLS), &since);
            relogins_before_database_crash = Some(shared.relogins.load(Ordering::SeqCst));
            cluster.crash();
            database_crashes += 1;
            std::thread::sleep(Duration::from_millis(rng.random_range(DATABASE_DOWNTIME_MS)));
            cluster.start_again();
            await_database(&app);
            since = "since PostgreSQL came back from its crash (does the server reconnect?)".to_owned();
        }
    }
    await_progress(&shared, &threads, rng.random_range(OPERATIONS_BETWEEN_KILLS), &since);
    shared.stop.store(true, Ordering::SeqCst);
    let mut settled = opening;
    for thread in threads {
        match thread.join() {
            Ok(done) => settled.extend(done),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    assert_eq!(kills, KILLS, "the run stopped early");
    // A SIGKILL of the server loses no session; a crash of PostgreSQL may lose the last moment
    // of them (written with synchronous_commit off: README, durability), and clients log in again.
    let relogins = shared.relogins.load(Ordering::SeqCst);
    let relogins_after_kills = relogins_before_database_crash.unwrap_or(relogins);
    assert_eq!(relogins_after_kills, 0, "sessions were lost when the server was killed");

    let checked = settled.len();
    let approved = settled.iter().filter(|settled| matches!(settled.outcome, Outcome::Done { .. })).count();
    let retried = settled.iter().filter(|settled| settled.attempts > 1).count();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for settled in &settled {
        if let Outcome::Refused(code) = &settled.outcome {
            *refusals.entry(code.clone()).or_default() += 1;
        }
    }
    verify_books(&app, &citizens, &merchants, &settled);
    eprintln!(
        "crash under load ({backend:?}): kills survived {kills}, database crashes survived {database_crashes}, \
         operations checked {checked} (approved {approved}, refused {refusals:?}), retried with their key {retried} \
         (after dropped connections {}, answers 500 {}, answers 503 {}), sessions renewed {relogins}, \
         lost 0, doubled 0, run {:.0?}",
        shared.dropped.load(Ordering::SeqCst),
        shared.failed.load(Ordering::SeqCst),
        shared.unavailable.load(Ordering::SeqCst),
        started.elapsed()
    );
}

/// The books hold exactly what the definite answers add up to.
fn verify_books(
    app: &TestApp,
    citizens: &[crate::support::Citizen],
    merchants: &[crate::support::Merchant],
    settled: &[Settled],
) {
    let api = &app.api;
    let mut expected: Vec<Expected> = (0..CITIZENS).map(|_| Expected::default()).collect();
    let mut sales = [(0usize, 0i128); MERCHANTS];
    let (mut charged, mut cashback_paid) = (0i128, 0i128);
    for settled in settled {
        let Outcome::Done { id, cashback } = &settled.outcome else { continue };
        match settled.operation {
            Operation::Charge { wallet, amount } => {
                expected[wallet].balance += amount;
                expected[wallet].named.insert(id.clone(), ("charge", amount));
                charged += amount;
            }
            Operation::Gift { from, to, amount } => {
                expected[from].balance -= amount;
                expected[from].named.insert(id.clone(), ("gift_out", -amount));
                expected[to].balance += amount;
                expected[to].unnamed.push(("gift_in", amount, citizens[from].wallet_id.clone()));
            }
            Operation::Pay { wallet, merchant, amount } => {
                expected[wallet].balance += cashback - amount;
                expected[wallet].named.insert(id.clone(), ("payment", -amount));
                if *cashback > 0 {
                    expected[wallet].unnamed.push(("cashback", *cashback, merchants[merchant].id.clone()));
                }
                sales[merchant].0 += 1;
                sales[merchant].1 += amount;
                cashback_paid += cashback;
            }
        }
    }

    let mut wallets_total = 0;
    for (index, citizen) in citizens.iter().enumerate() {
        let token = api.login(&citizen.login, PASSWORD);
        let expected = &mut expected[index];
        let balance = won(&api.wallet(&token)["balance"]);
        assert_eq!(
            balance, expected.balance,
            "{}: the balance is not what the definite answers add up to",
            citizen.login
        );
        wallets_total += balance;

        let history = full_history(api, &token);
        let mut ids = BTreeSet::new();
        let mut unnamed = Vec::new();
        let mut running = 0;
        for item in history.iter().rev() {
            let (id, kind, amount) = (string(&item["id"]), string(&item["kind"]), won(&item["amount"]));
            assert!(ids.insert(id.clone()), "{}: history item {id} is there twice", citizen.login);
            running += amount;
            assert_eq!(
                won(&item["balance_after"]),
                running,
                "{}: balances after do not add up at {item}",
                citizen.login
            );
            match expected.named.remove(&id) {
                Some((want_kind, want_amount)) => {
                    assert_eq!((kind.as_str(), amount), (want_kind, want_amount), "{}: {item}", citizen.login)
                }
                None => unnamed.push((kind, amount, item["counterparty"].as_str().unwrap_or_default().to_owned())),
            }
        }
        assert_eq!(running, balance, "{}: the history does not end at the balance", citizen.login);
        let missing: Vec<_> = expected.named.iter().collect();
        assert!(missing.is_empty(), "{}: acknowledged operations missing from the history: {missing:?}", citizen.login);
        let mut want: Vec<_> =
            expected.unnamed.iter().map(|(kind, amount, other)| (kind.to_string(), *amount, other.clone())).collect();
        want.sort();
        unnamed.sort();
        assert_eq!(unnamed, want, "{}: gifts received and cashback in the history", citizen.login);
    }

    let mut receivable = 0;
    for (index, merchant) in merchants.iter().enumerate() {
        let token = api.login(&merchant.login, PASSWORD);
        let day = api.get(&format!("/v1/merchant/sales?date={TODAY}"), &token).expect(200);
        let (count, amount) = sales[index];
        assert_eq!(day["payments_count"], json!(count), "{}: {day}", merchant.login);
        assert_eq!(won(&day["payments_amount"]), amount, "{}: {day}", merchant.login);
        assert_eq!(day["refunds_count"], json!(0), "{}: {day}", merchant.login);
        receivable += amount;
    }

    app.assert_books_balance();
    let trial = api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200);
    let balances: BTreeMap<String, i128> = trial["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no accounts in {trial}"))
        .iter()
        .map(|account| (string(&account["kind"]), won(&account["balance"])))
        .collect();
    let want: BTreeMap<String, i128> = [
        ("citizen_wallet", wallets_total),
        ("merchant_receivable", receivable),
        ("cashback_budget", BUDGET - cashback_paid),
        ("bank_clearing", -(charged + BUDGET)),
        ("settlement_payouts", 0),
        ("fee_income", 0),
        ("handover_opening", 0),
        ("citizen_allowance", 0),
        ("program_budget", 0),
    ]
    .into_iter()
    .map(|(kind, balance)| (kind.to_owned(), balance))
    .collect();
    assert_eq!(balances, want, "the trial balance's accounts: {trial}");
}

scenarios!(crash_and_restart_under_load);
