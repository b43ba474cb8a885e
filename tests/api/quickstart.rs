//! The first hour (issue 14): `serve --demo` seeds an empty database and prints its logins; the
//! `sh` blocks of `docs/QUICKSTART.md` run as written against that server, so the walkthrough
//! cannot go stale; and a database that has data is refused, untouched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::json;

use crate::support::{history_rows, string, won, Backend, Body, Client, TestApp, TestServer};

/// The demo's accounts, as QUICKSTART.md and the start-up output name them.
const DEMO_PASSWORD: &str = "demo-password";
const DEMO_ADMIN: &str = "city-admin";
const DEMO_MERCHANTS: [(&str, &str); 2] = [("bakery.jung", "정가네 빵집"), ("kimbap.haneul", "하늘김밥")];
const DEMO_CITIZENS: [&str; 3] = ["minji.kim", "junho.park", "seoyeon.lee"];
/// Where the walkthrough's commands expect the server; replaced by the test server's address.
const WALKTHROUGH_BASE: &str = "http://127.0.0.1:8080";
/// The settlement file's first line (API.md).
const CSV_HEADER: &str = "business_date,merchant_id,merchant_name,business_number,bank_account,payments_count,\
                          payments_amount,refunds_count,refunds_amount,fee,net_payable";
/// Upper bound on the whole walkthrough, and on a `serve --demo` that must refuse at once.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

scenarios!(demo_serves_the_walkthrough, demo_refuses_a_database_with_data);

fn demo_serves_the_walkthrough(backend: Backend) {
    let mut server = TestServer::new(backend, &[]);
    server.spawn_with(&["--demo"]);
    let printed = server.log();
    assert!(printed.contains(&format!("Serving on {}", server.url(""))), "no URL printed:\n{printed}");
    let logins = [DEMO_ADMIN].into_iter().chain(DEMO_MERCHANTS.map(|(login, _)| login)).chain(DEMO_CITIZENS);
    for login in logins {
        assert!(
            printed.lines().any(|line| line.split_whitespace().skip(1).take(2).eq([login, DEMO_PASSWORD])),
            "{login} and its password not printed:\n{printed}"
        );
    }
    let api = server.client();
    assert_demo_city(&api);

    let walkthrough = run_walkthrough(&server.url(""));
    let stdout = String::from_utf8_lossy(&walkthrough.stdout);
    let stderr = String::from_utf8_lossy(&walkthrough.stderr);
    assert!(walkthrough.status.success(), "the walkthrough failed ({}):\n{stdout}\n{stderr}", walkthrough.status);
    assert!(stdout.contains(r#""status":"approved""#), "no payment approved:\n{stdout}");
    assert!(stdout.contains(r#""code":"date_not_closed""#), "today's close not refused:\n{stdout}");
    assert!(stdout.lines().any(|line| line == CSV_HEADER), "no settlement file:\n{stdout}");
    // The demo's history is of yesterday: its close settles both shops at once.
    for (_, name) in DEMO_MERCHANTS {
        assert!(stdout.lines().any(|line| line.contains(name) && line.contains(',')), "no line for {name}:\n{stdout}");
    }
    assert!(stdout.contains(r#""total":"0""#), "the trial balance is not shown to total 0:\n{stdout}");

    assert_today_closes_tomorrow(&server);
}

/// What `--demo` promises: logins that work, the budget topped up and partly paid out and
/// reversed, history of every kind seeded, balanced books.
fn assert_demo_city(api: &Client) {
    let admin = api.login(DEMO_ADMIN, DEMO_PASSWORD);
    let budget = api.get("/v1/admin/cashback-budget", &admin).expect(200);
    assert_eq!(budget["funded"], "1000000", "{budget}");
    assert!(won(&budget["paid_out"]) > 0 && won(&budget["reversed"]) > 0, "{budget}");
    let trial = api.get("/v1/admin/ledger/trial-balance", &admin).expect(200);
    assert_eq!(trial["total"], "0", "{trial}");
    for (login, _) in DEMO_MERCHANTS {
        api.login(login, DEMO_PASSWORD);
    }
    let mut kinds = Vec::new();
    for login in DEMO_CITIZENS {
        let history = api.history(&api.login(login, DEMO_PASSWORD), "limit=50");
        kinds.extend(history_rows(&history).into_iter().map(|(kind, ..)| kind));
    }
    for kind in ["charge", "payment", "cashback", "refund", "cashback_reversal", "gift_out", "gift_in"] {
        assert!(kinds.iter().any(|seen| seen == kind), "no {kind} in the demo's history: {kinds:?}");
    }
}

/// The `sh` blocks of QUICKSTART.md, in order, in one bash with `set -euo pipefail`, against
/// `base_url`, in a directory of their own (the walkthrough saves the settlement file).
fn run_walkthrough(base_url: &str) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/QUICKSTART.md");
    let markdown = fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let commands = sh_blocks(&markdown).join("\n");
    assert!(commands.contains(&format!("BASE={WALKTHROUGH_BASE}\n")), "the walkthrough does not set BASE first");
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let script = dir.path().join("walkthrough.sh");
    let script_text = format!("set -euo pipefail\n{}", commands.replace(WALKTHROUGH_BASE, base_url));
    fs::write(&script, script_text).expect("cannot write the walkthrough script");
    let mut bash = Command::new("bash");
    bash.arg(&script).current_dir(dir.path());
    run_bounded(bash)
}

/// The contents of each fenced block opened with exactly ```` ```sh ````.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        match open.as_mut() {
            None if line.trim_end() == "```sh" => open = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(open.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(open.is_none(), "QUICKSTART.md has an unclosed ```sh block");
    assert!(blocks.len() >= 5, "QUICKSTART.md has only {} ```sh blocks", blocks.len());
    blocks
}

/// What QUICKSTART.md says of today's payments: they close from 00:00 KST tomorrow. The test
/// clock moves to 01:00 KST tomorrow; yesterday (the demo's day, closed by the walkthrough) is
/// read too.
fn assert_today_closes_tomorrow(server: &TestServer) {
    let api = server.client();
    let admin = api.login(DEMO_ADMIN, DEMO_PASSWORD);
    let status = api.get("/v1/admin/status", &admin).expect(200);
    let today = string(&status["today"]["business_date"]);
    let date = NaiveDate::parse_from_str(&today, "%Y-%m-%d").unwrap_or_else(|error| panic!("{today}: {error}"));
    let moved = api.put("/v1/admin/test-clock", &admin, &json!({"now": format!("{today}T16:00:00Z")}));
    assert!((200..300).contains(&moved.status), "cannot move the test clock: {moved}");
    let admin = api.login(DEMO_ADMIN, DEMO_PASSWORD);
    api.post("/v1/admin/settlements", &admin, &json!({"business_date": today}), &[]).expect(201);
    let mut lines = Vec::new();
    for day in [date.pred_opt().expect("a date has a day before"), date] {
        let csv =
            api.send("GET", &format!("/v1/admin/settlements/{day}"), &admin, Body::Empty, &[("Accept", "text/csv")]);
        assert_eq!(csv.status, 200, "{csv}");
        assert_eq!(csv.text.lines().next(), Some(CSV_HEADER), "{csv}");
        lines.extend(csv.text.lines().skip(1).map(str::to_owned));
    }
    for (_, name) in DEMO_MERCHANTS {
        assert!(lines.iter().any(|line| line.contains(name)), "no settlement line for {name}: {lines:?}");
    }
}

fn demo_refuses_a_database_with_data(backend: Backend) {
    let app = TestApp::start(backend);
    let citizen = app.api.register_citizen("early.bird");
    app.api.charge(&citizen.token, "10000").expect(201);
    let trial_before = app.api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200);

    // Port 0: should the refusal fail to come, the server listens somewhere harmless until killed.
    let mut serve = app.server.command();
    serve.args(["serve", "--demo"]).env("WALLET_BIND", "127.0.0.1:0");
    let refused = run_bounded(serve);
    let stdout = String::from_utf8_lossy(&refused.stdout);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "serve --demo ran on a database with data:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("already has data (2 users and ledger transactions)")
            && stderr.contains("--demo only seeds an empty database")
            && stderr.contains("start without --demo"),
        "the refusal does not say why and what to do:\n{stderr}"
    );
    assert!(!stdout.contains(DEMO_PASSWORD), "logins printed although nothing was seeded:\n{stdout}");

    let login = json!({"login": DEMO_MERCHANTS[0].0, "password": DEMO_PASSWORD});
    app.api.post("/v1/sessions", "", &login, &[]).expect_error(401, "invalid_credentials");
    assert_eq!(app.api.get("/v1/admin/ledger/trial-balance", &app.admin()).expect(200), trial_before);
    assert_eq!(app.api.get("/v1/admin/cashback-budget", &app.admin()).expect(200)["funded"], "0");
    assert_eq!(app.api.balance(&citizen.token), "10000");
}

/// Runs `command` to its end with output captured, killing it after [`COMMAND_TIMEOUT`].
fn run_bounded(mut command: Command) -> Output {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let (stdout_path, stderr_path): (PathBuf, PathBuf) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("cannot create the stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("cannot create the stderr file"))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait for the command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {COMMAND_TIMEOUT:?}:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: fs::read(&stdout_path).unwrap_or_default(),
        stderr: fs::read(&stderr_path).unwrap_or_default(),
    }
}
