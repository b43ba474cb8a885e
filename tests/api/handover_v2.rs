//! Handover bundle version 2 (docs/HANDOVER.md): a system with programs, purses, a policy of its
//! own and a closed date with a merchant carrying a negative is exported, imported into a fresh
//! database on the other backend (the same one when PostgreSQL is not set up), and read back
//! the same; version 2's checks refuse a bad bundle naming the file and the line.

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::handover::import::{snapshot, status};
use crate::support::{string, Backend, Citizen, Client, Merchant, TestApp, PASSWORD};

/// The other backend, when both are set up; otherwise the same one.
fn other(backend: Backend) -> Backend {
    let postgres = std::env::var("WALLET_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty());
    match backend {
        Backend::Sqlite if postgres => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// Runs a `wallet-server` command; (success, stdout and stderr).
fn run(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = app.server.run(args);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A merchant of a category (and revenue) of its own, logged in.
fn create_shop(app: &TestApp, login: &str, category: &str, annual_revenue: &str) -> Merchant {
    let body = json!({
        "login": login, "password": PASSWORD, "name": format!("Shop {login}"), "category": category,
        "annual_revenue": annual_revenue, "business_number": "305-82-12345", "bank_account": "081-33-12345-02",
    });
    let created = app.api.post("/v1/admin/merchants", &app.admin(), &body, &[]).expect(201);
    Merchant {
        login: login.to_owned(),
        id: string(&created["merchant_id"]),
        token: app.api.login(login, PASSWORD),
        name: format!("Shop {login}"),
        business_number: "305-82-12345".to_owned(),
        bank_account: "081-33-12345-02".to_owned(),
    }
}

/// Creates an allowance program from `definition`, tops it up and grants `lines`; its id.
fn program(app: &TestApp, definition: Value, top_up: &str, lines: &[(&str, &str)]) -> String {
    let created = app.api.post("/v1/admin/programs", &app.admin(), &definition, &[]).expect(201);
    let id = string(&created["program_id"]);
    let body = json!({"amount": top_up});
    app.api.post_keyed(&format!("/v1/admin/programs/{id}/budget-top-ups"), &app.admin(), &body).expect(201);
    let grants: Vec<Value> =
        lines.iter().map(|(wallet, amount)| json!({"wallet_id": wallet, "amount": amount})).collect();
    let body = json!({"grants": grants});
    app.api.post_keyed(&format!("/v1/admin/programs/{id}/grants"), &app.admin(), &body).expect(201);
    id
}

/// A payment of `amount` at `shop`, asserting what paid it.
fn pay(api: &Client, citizen: &Citizen, shop: &Merchant, amount: &str, paid_from: [&str; 3]) -> String {
    let payment = api.pay_from(&citizen.token, &shop.token, amount);
    let expected = json!({"allowances": paid_from[0], "bonus": paid_from[1], "own": paid_from[2]});
    assert_eq!(payment["paid_from"], expected, "{payment}");
    string(&payment["payment_id"])
}

/// What a citizen sees of its money and month, without what a bundle does not carry (this
/// month's cashback earned, which the new system counts from the handover on).
fn wallet(api: &Client, token: &str) -> Value {
    let mut wallet = api.wallet(token);
    let object = wallet.as_object_mut().expect("a wallet is an object");
    object.remove("cashback_earned_this_month");
    object.remove("cashback_net_this_month");
    wallet
}

/// A citizen's history as (id, kind, amount, balance after, counterparty).
fn history(api: &Client, token: &str) -> Vec<Value> {
    let page = api.history(token, "limit=100");
    let items = page["items"].as_array().unwrap_or_else(|| panic!("no items in {page}"));
    items
        .iter()
        .map(|item| json!([item["id"], item["kind"], item["amount"], item["balance_after"], item["counterparty"]]))
        .collect()
}

/// A program as `GET /v1/admin/programs/{id}` shows it, but its creation time (the new system
/// created it at the import).
fn program_view(app: &TestApp, id: &str) -> Value {
    let mut program = app.api.get(&format!("/v1/admin/programs/{id}"), &app.admin()).expect(200);
    program.as_object_mut().expect("a program is an object").remove("created_at");
    program
}

/// The trial balance's accounts that a handover carries (the rest are the handover account
/// and the outgoing operator's own), and its total.
fn carried_accounts(app: &TestApp) -> Vec<(String, String)> {
    let trial = app.api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200);
    assert_eq!(trial["total"], "0", "{trial}");
    let mut accounts: Vec<(String, String)> = trial["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter(|account| {
            matches!(
                account["kind"].as_str(),
                Some(
                    "citizen_wallet"
                        | "citizen_allowance"
                        | "merchant_receivable"
                        | "cashback_budget"
                        | "program_budget"
                )
            )
        })
        .map(|account| (string(&account["kind"]), string(&account["balance"])))
        .collect();
    accounts.sort();
    accounts
}

/// A CSV file of a bundle as rows of fields (the header first).
fn read_csv(dir: &Path, name: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(dir.join(name)).expect("a bundle file");
    reader.records().map(|record| record.expect("CSV").iter().map(str::to_owned).collect()).collect()
}

/// Writes rows back (LF line ends, as exports do) and renews the file's entry in the manifest.
fn write_csv(dir: &Path, name: &str, rows: &[Vec<String>]) {
    let mut writer =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_path(dir.join(name)).unwrap();
    for row in rows {
        writer.write_record(row).expect("a row");
    }
    writer.flush().expect("written");
    let bytes = std::fs::read(dir.join(name)).expect("written");
    let mut manifest = read_manifest(dir);
    manifest["files"][name] = json!({"rows": rows.len() - 1, "sha256": hex::encode(Sha256::digest(&bytes))});
    write_manifest(dir, &manifest);
}

fn read_manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("a manifest")).expect("JSON")
}

fn write_manifest(dir: &Path, manifest: &Value) {
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(manifest).expect("JSON")).expect("written");
}

/// Copies a bundle directory.
fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a directory");
    for entry in std::fs::read_dir(from).expect("a bundle") {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copied");
    }
}

/// The column `name` of a CSV header.
fn column(rows: &[Vec<String>], name: &str) -> usize {
    rows[0].iter().position(|field| field == name).unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
}

/// The old system: a policy of its own; two allowance programs granted to three citizens; own
/// money, allowances and bonus spent; a gift; 2030-01-10 and 2030-01-11 closed, the mart
/// carrying -4000 out of the second (a refund of the first day's payment). The clock ends at
/// 2030-01-12 10:00 KST.
struct OldSystem {
    app: TestApp,
    citizens: Vec<Citizen>,
    programs: Vec<String>,
    mart: Merchant,
}

fn old_system(backend: Backend) -> OldSystem {
    let app = TestApp::start(backend);
    let api = &app.api;
    app.set_policy(&[("cashback_rate", "0.05"), ("merchant_fee_rate", "0.01"), ("holding_limit", "2500000")]);
    app.top_up_budget("1000000");
    let mut alice = api.register_citizen("alice");
    let mut bob = api.register_citizen("bob");
    let mut carol = api.register_citizen("carol");
    let cafe = create_shop(&app, "cafe", "cafe", "120000000");
    let mut mart = create_shop(&app, "mart", "mart", "9000000000");
    for (citizen, amount) in [(&alice, "50000"), (&bob, "10000"), (&carol, "20000")] {
        api.charge(&citizen.token, amount).expect(201);
    }
    let youth = program(
        &app,
        json!({"kind": "allowance", "name": "youth", "valid_days": 90, "merchant_categories": ["cafe"],
               "merchant_annual_revenue_max": "3000000000"}),
        "100000",
        &[(&alice.wallet_id, "30000"), (&bob.wallet_id, "20000")],
    );
    let relief = program(
        &app,
        json!({"kind": "allowance", "name": "relief", "expires_on": "2030-03-31", "excluded_merchant_categories": ["bar"]}),
        "50000",
        &[(&carol.wallet_id, "10000")],
    );
    pay(api, &alice, &cafe, "12000", ["12000", "0", "0"]);
    let at_mart = pay(api, &alice, &mart, "10000", ["0", "0", "10000"]);
    pay(api, &bob, &mart, "2000", ["0", "0", "2000"]);
    pay(api, &bob, &mart, "150", ["0", "100", "50"]);
    pay(api, &carol, &mart, "5000", ["5000", "0", "0"]);
    api.gift(&alice.token, &bob.wallet_id, "3000").expect(201);

    app.set_clock("2030-01-11T01:00:00Z");
    for citizen in [&mut alice, &mut bob, &mut carol] {
        citizen.relogin(api);
    }
    mart.relogin(api);
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": "2030-01-10"}), &[]).expect(201);
    let refund = api.refund(&mart.token, &at_mart, "4000").expect(201);
    assert_eq!(refund["cashback_reversed"], "200", "{refund}");
    app.set_clock("2030-01-12T01:00:00Z");
    for citizen in [&mut alice, &mut bob, &mut carol] {
        citizen.relogin(api);
    }
    mart.relogin(api);
    api.post("/v1/admin/settlements", &app.admin(), &json!({"business_date": "2030-01-11"}), &[]).expect(201);
    let closed = api.get("/v1/admin/settlements/2030-01-11", &app.admin()).expect(200);
    assert!(closed.to_string().contains("\"-4000\""), "the mart carries -4000: {closed}");
    OldSystem { app, citizens: vec![alice, bob, carol], programs: vec![youth, relief], mart }
}

fn a_version_2_round_trip_reads_back_the_same(backend: Backend) {
    let old = old_system(backend);
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let exported = dirs.path().join("exported");
    let (ok, text) = run(&old.app, &["handover", "export", path_text(&exported)]);
    assert!(ok, "{text}");
    let manifest = read_manifest(&exported);
    assert_eq!(manifest["format"], "regional-wallet-handover/2", "{manifest}");
    assert_eq!(manifest["last_closed_business_date"], "2030-01-11", "{manifest}");
    assert_eq!(manifest["history_complete"], true, "{manifest}");
    let (ok, text) = run(&old.app, &["handover", "verify", path_text(&exported)]);
    assert!(ok && text.contains("format version 2: programs 2, allowances 3"), "{text}");
    assert!(text.contains("last closed business date 2030-01-11"), "{text}");
    // The references no API of this system sets: put into the bundle, as an outgoing operator
    // that has them would, to see them survive.
    let bundle = dirs.path().join("bundle");
    copy_bundle(&exported, &bundle);
    let mut citizens = read_csv(&bundle, "citizens.csv");
    let login = column(&citizens, "login");
    let alice_row = citizens.iter().position(|row| row[login] == "alice").expect("alice is exported");
    for (name, value) in [
        ("identity_verified_at", "2029-05-01T09:30:00+09:00"),
        ("identity_ref", "pass-ci:7f3a"),
        ("bank_link_ref", "obk:0042,x"),
        ("bank_account_masked", "081-**-***45-02"),
    ] {
        let index = column(&citizens, name);
        citizens[alice_row][index] = value.to_owned();
    }
    write_csv(&bundle, "citizens.csv", &citizens);

    let new = TestApp::start(other(backend));
    new.set_clock("2030-01-12T01:00:00Z");
    let (ok, text) = run(&new, &["handover", "import", path_text(&bundle)]);
    assert!(ok && text.contains("applied snapshot 0"), "{text}");
    let (ok, text) = run(&new, &["handover", "import", path_text(&bundle)]);
    assert!(ok && text.contains("already applied; nothing changed"), "{text}");
    assert!(status(&new).contains("last applied: snapshot 0"), "{}", status(&new));

    // Every wallet's purses, month and history; every program; the policy; the books.
    for citizen in &old.citizens {
        let there = new.api.login(&citizen.login, PASSWORD);
        assert_eq!(wallet(&new.api, &there), wallet(&old.app.api, &citizen.token), "{}", citizen.login);
        assert_eq!(history(&new.api, &there), history(&old.app.api, &citizen.token), "{}", citizen.login);
    }
    for id in &old.programs {
        assert_eq!(program_view(&new, id), program_view(&old.app, id), "program {id}");
    }
    let policy = |app: &TestApp| app.api.get("/v1/admin/policy", &app.admin()).expect(200);
    assert_eq!(policy(&new), policy(&old.app));
    assert_eq!(policy(&new)["cashback_rate"], "0.05");
    assert_eq!(carried_accounts(&new), carried_accounts(&old.app));
    new.assert_books_balance();

    // Exported again, the new system says what the old one said: merchants' revenue and carry,
    // the closed date, the purses, the programs and the carried references.
    let again = dirs.path().join("again");
    let (ok, text) = run(&new, &["handover", "export", path_text(&again)]);
    assert!(ok, "{text}");
    let manifest_again = read_manifest(&again);
    assert_eq!(manifest_again["totals"], manifest["totals"]);
    assert_eq!(manifest_again["last_closed_business_date"], "2030-01-11");
    for name in ["merchants.csv", "programs.csv", "allowances.csv", "policy.json"] {
        assert_eq!(
            std::fs::read_to_string(again.join(name)).unwrap(),
            std::fs::read_to_string(bundle.join(name)).unwrap(),
            "{name}"
        );
    }
    let merchants = read_csv(&again, "merchants.csv");
    let carried = column(&merchants, "carried_in");
    assert!(merchants.iter().any(|row| row[1] == "mart" && row[carried] == "-4000"), "{merchants:?}");
    let without_hashes = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        // A carried hash is re-hashed at the first login there.
        rows.into_iter()
            .map(|mut row| {
                row[2].clear();
                row
            })
            .collect()
    };
    assert_eq!(without_hashes(read_csv(&again, "citizens.csv")), without_hashes(citizens));

    // The new system goes on: the carried allowance pays at the cafe and is refunded, and the
    // date the old operator closed moves nothing when closed again.
    let alice = new.api.login("alice", PASSWORD);
    let cafe = new.api.login("cafe", PASSWORD);
    let code = new.api.payment_code(&alice);
    let payment = new.api.pay(&cafe, &code, "1000").expect(201);
    assert_eq!(payment["paid_from"]["allowances"], "1000", "{payment}");
    new.api.refund(&cafe, &string(&payment["payment_id"]), "1000").expect(201);
    let closed = new.api.post("/v1/admin/settlements", &new.admin(), &json!({"business_date": "2030-01-11"}), &[]);
    assert!((200..300).contains(&closed.status), "{closed}");
    assert_eq!(carried_accounts(&new), carried_accounts(&old.app), "closing a carried date moved money");
    new.assert_books_balance();
}

/// Deltas of version 2: a grant spent to nothing leaves the wallet, a new grant and a new
/// program arrive, budgets and the policy follow the outgoing operator.
fn version_2_deltas_carry_what_changed(backend: Backend) {
    let mut old = old_system(backend);
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let (ok, text) = run(&old.app, &["handover", "export", path_text(&dirs.path().join("0"))]);
    assert!(ok, "{text}");
    let new = TestApp::start(other(backend));
    new.set_clock("2030-01-12T01:00:00Z");
    let (ok, text) = run(&new, &["handover", "import", path_text(&dirs.path().join("0"))]);
    assert!(ok, "{text}");

    // The old system goes on: carol spends the rest of her relief allowance, bob gets a new
    // program's grant, alice a second youth grant; the policy changes.
    let api = &old.app.api;
    let [alice, bob] = [0, 1].map(|index| old.citizens[index].wallet_id.clone());
    pay(api, &old.citizens[2], &old.mart, "5000", ["5000", "0", "0"]);
    let winter =
        program(&old.app, json!({"kind": "allowance", "name": "winter", "valid_days": 30}), "9000", &[(&bob, "4000")]);
    let body = json!({"grants": [{"wallet_id": alice, "amount": "1000"}]});
    api.post_keyed(&format!("/v1/admin/programs/{}/grants", old.programs[0]), &old.app.admin(), &body).expect(201);
    old.app.set_policy(&[("cashback_rate", "0.07"), ("merchant_fee_rate", "0.01"), ("holding_limit", "2500000")]);
    old.programs.push(winter);
    let (ok, text) = run(&old.app, &["handover", "export", path_text(&dirs.path().join("1")), "--since", "0"]);
    assert!(ok && text.contains("exported delta 1"), "{text}");
    let (ok, text) = run(&new, &["handover", "import", path_text(&dirs.path().join("1"))]);
    assert!(ok && text.contains("applied delta 1"), "{text}");

    for citizen in &old.citizens {
        let there = new.api.login(&citizen.login, PASSWORD);
        assert_eq!(wallet(&new.api, &there), wallet(api, &citizen.token), "{}", citizen.login);
        assert_eq!(history(&new.api, &there), history(api, &citizen.token), "{}", citizen.login);
    }
    let carol_there = new.api.login("carol", PASSWORD);
    assert_eq!(new.api.wallet(&carol_there)["purses"]["allowances"], json!([]), "carol's relief is spent");
    for id in &old.programs {
        assert_eq!(program_view(&new, id), program_view(&old.app, id), "program {id}");
    }
    let policy = |app: &TestApp| app.api.get("/v1/admin/policy", &app.admin()).expect(200);
    assert_eq!(policy(&new), policy(&old.app));
    assert_eq!(carried_accounts(&new), carried_accounts(&old.app));
    new.assert_books_balance();
}

fn a_version_1_bundle_still_imports_with_everything_in_own(backend: Backend) {
    let app = TestApp::start(backend);
    let dir = tempfile::tempdir().expect("a temporary directory");
    snapshot().write(dir.path());
    let (ok, text) = run(&app, &["handover", "import", path_text(dir.path())]);
    assert!(ok && text.contains("applied snapshot 0"), "{text}");
    let citizen = app.api.login("citizen1", "old-pass-argon2id");
    let wallet = app.api.wallet(&citizen);
    assert_eq!(wallet["purses"], json!({"own": "30000", "bonus": "0", "allowances": []}), "{wallet}");
    // A version 1 bundle has no policy: the one in force stays.
    let policy = app.api.get("/v1/admin/policy", &app.admin()).expect(200);
    assert_eq!(policy["cashback_rate"], "0.1", "{policy}");
    app.assert_books_balance();
}

fn version_2_checks_refuse_naming_file_and_line(backend: Backend) {
    let old = old_system(backend);
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let exported = dirs.path().join("exported");
    let (ok, text) = run(&old.app, &["handover", "export", path_text(&exported)]);
    assert!(ok, "{text}");
    let new = TestApp::start(other(backend));

    let case = |name: &str, change: &dyn Fn(&Path), expected: &str| {
        let dir = dirs.path().join(name);
        copy_bundle(&exported, &dir);
        change(&dir);
        let (ok, text) = run(&old.app, &["handover", "verify", path_text(&dir)]);
        assert!(!ok && text.contains(expected), "{name}: expected {expected:?}, got: {text}");
        // The importer refuses it too, and applies nothing.
        let (ok, text) = run(&new, &["handover", "import", path_text(&dir)]);
        assert!(!ok && text.contains(expected), "{name}: expected {expected:?}, got: {text}");
        assert!(status(&new).contains("no handover bundle has been applied"), "{name}: {}", status(&new));
    };
    case(
        "expired",
        &|dir| {
            let mut rows = read_csv(dir, "allowances.csv");
            rows[1][5] = "2030-01-12T10:00:00+09:00".to_owned();
            write_csv(dir, "allowances.csv", &rows);
        },
        "allowances.csv:2: grant ",
    );
    case(
        "expired-message",
        &|dir| {
            let mut rows = read_csv(dir, "allowances.csv");
            rows[1][5] = "2030-01-12T10:00:00+09:00".to_owned();
            write_csv(dir, "allowances.csv", &rows);
        },
        "allowances.csv holds unexpired grants only",
    );
    case(
        "unknown-program",
        &|dir| {
            let mut rows = read_csv(dir, "allowances.csv");
            rows[2][1] = "no-such-program".to_owned();
            write_csv(dir, "allowances.csv", &rows);
        },
        "allowances.csv:3: program_id \"no-such-program\" is not in programs.csv",
    );
    case(
        "rich-bonus",
        &|dir| {
            let mut rows = read_csv(dir, "citizens.csv");
            let (balance, bonus) = (column(&rows, "balance"), column(&rows, "bonus"));
            rows[2][bonus] = (rows[2][balance].parse::<i64>().unwrap() + 1).to_string();
            write_csv(dir, "citizens.csv", &rows);
        },
        "citizens.csv:3: bonus ",
    );
    case(
        "wrong-total",
        &|dir| {
            let mut manifest = read_manifest(dir);
            let total: i64 = manifest["totals"]["citizen_bonus_sum"].as_str().unwrap().parse().unwrap();
            manifest["totals"]["citizen_bonus_sum"] = json!((total + 1).to_string());
            write_manifest(dir, &manifest);
        },
        "citizens.csv: the bonuses sum to ",
    );
    case(
        "wrong-programs-total",
        &|dir| {
            let mut manifest = read_manifest(dir);
            manifest["totals"]["program_budget_remaining_sum"] = json!("1");
            write_manifest(dir, &manifest);
        },
        "programs.csv: the remaining budgets sum to 90000, but the manifest's program_budget_remaining_sum is 1",
    );
    new.assert_books_balance();
}

scenarios!(
    a_version_2_round_trip_reads_back_the_same,
    version_2_deltas_carry_what_changed,
    a_version_1_bundle_still_imports_with_everything_in_own,
    version_2_checks_refuse_naming_file_and_line
);
