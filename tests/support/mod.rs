//! Black-box test support: the one way to start the real `wallet-server` binary and talk HTTP to it.
//!
//! A test gets a fresh database (a SQLite file in its own temporary directory, or a fresh
//! PostgreSQL database when `WALLET_TEST_POSTGRES_URL` is set), a server process on a free port
//! with the test clock enabled and cheap argon2 parameters, and a [`Client`] that speaks the REST
//! contract of `docs/API.md`. Nothing here reaches into the server's internals.
//!
//! Write a scenario once as `fn name(backend: Backend)` and list it in [`scenarios!`]: it then runs
//! as the tests `name::sqlite` and `name::postgres`.

use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

/// How long `serve` may take to answer `GET /healthz` after being spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often readiness is polled.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Ports tried when a freshly spawned server exits at once (another test took its port meanwhile).
const SPAWN_ATTEMPTS_MAX: u32 = 3;
/// Upper bound on one HTTP exchange: generous, for debug builds on a loaded CI machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound on `wallet-server admin create`.
const ADMIN_CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of the server's stderr a failing test prints.
const STDERR_TAIL_BYTES_MAX: usize = 8 * 1024;
/// Session capacity given to every test server unless a test overrides `WALLET_MAX_SESSIONS`:
/// far above what any scenario opens, so no login waits in the waiting room by accident.
const SESSIONS_CAPACITY_DEFAULT: &str = "1000";

/// The password of every user the helpers create.
pub const PASSWORD: &str = "correct-horse-battery";
/// The login of the admin [`TestApp::start`] creates.
pub const ADMIN_LOGIN: &str = "city-admin";
/// Where [`TestApp::start`] puts the server clock: 2030-01-10 10:00 KST, so months and business
/// dates in the tests are fixed.
pub const CLOCK_START: &str = "2030-01-10T01:00:00Z";
/// The policy [`TestApp::start`] puts in force (the documented defaults, set explicitly).
pub const POLICY_STANDARD: [(&str, &str); 5] = [
    ("cashback_rate", "0.1"),
    ("cashback_monthly_spend_cap", "500000"),
    ("monthly_charge_limit", "2000000"),
    ("holding_limit", "3000000"),
    ("merchant_fee_rate", "0"),
];

/// The database engine a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `scenario` on `backend`, or skips the PostgreSQL half when `WALLET_TEST_POSTGRES_URL` is
/// unset (a failure instead when `CI` is set, so CI cannot silently test half the product).
pub fn run(backend: Backend, scenario: fn(Backend)) {
    if backend == Backend::Postgres && postgres_url().is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("PostgreSQL half of the suite needs WALLET_TEST_POSTGRES_URL");
        }
        eprintln!("skipped: set WALLET_TEST_POSTGRES_URL (see scripts/pg-test-cluster) to run on PostgreSQL");
        return;
    }
    scenario(backend)
}

/// Turns each listed `fn name(backend: Backend)` into the tests `name::sqlite` and `name::postgres`.
macro_rules! scenarios {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                $crate::support::run($crate::support::Backend::Sqlite, super::$name)
            }
            #[test]
            fn postgres() {
                $crate::support::run($crate::support::Backend::Postgres, super::$name)
            }
        }
    )+};
}

fn postgres_url() -> Option<String> {
    std::env::var("WALLET_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty())
}

/// A database made for one test; a PostgreSQL one is dropped with the [`TestServer`].
struct Database {
    url: String,
    /// `(url of the database to connect to for DROP, name)` for PostgreSQL.
    postgres_drop: Option<(String, String)>,
}

impl Database {
    fn create(backend: Backend, dir: &std::path::Path) -> Database {
        match backend {
            Backend::Sqlite => Database {
                url: dir.join("wallet.sqlite3").to_str().expect("temporary paths are UTF-8").to_owned(),
                postgres_drop: None,
            },
            Backend::Postgres => Database::create_in(&postgres_url().expect("run() checked WALLET_TEST_POSTGRES_URL")),
        }
    }

    /// A fresh database in the PostgreSQL cluster of `admin_url`.
    fn create_in(admin_url: &str) -> Database {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        psql(admin_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
        Database { url: with_database_name(admin_url, &name), postgres_drop: Some((admin_url.to_owned(), name)) }
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|error| format!("cannot run psql (is it on PATH?): {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("psql {}: {}", output.status, String::from_utf8_lossy(&output.stderr)))
    }
}

/// `postgres://u@h:p/wallet?x=y` with the database `wallet` replaced by `name`.
fn with_database_name(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let authority_start = head.find("://").map_or(0, |index| index + 3);
    let path_start = head[authority_start..].find('/').map_or(head.len(), |index| authority_start + index);
    let mut result = format!("{}/{name}", &head[..path_start]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// A `wallet-server serve` process on its own database. Killed (SIGKILL) on drop; when the test is
/// failing, the tail of the server's stderr is printed then.
pub struct TestServer {
    dir: tempfile::TempDir,
    database: Database,
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
    base_url: String,
    stderr_path: PathBuf,
}

enum Readiness {
    Ready,
    Exited(std::process::ExitStatus),
    TimedOut,
}

impl TestServer {
    /// A server that is not running yet, on a fresh database (e.g. to create the admin first).
    /// `extra_env` is added to (and overrides) the standard test environment.
    pub fn new(backend: Backend, extra_env: &[(&str, &str)]) -> TestServer {
        TestServer::on_database(extra_env, |dir| Database::create(backend, dir))
    }

    /// A server that is not running yet, on a fresh database in the PostgreSQL cluster of
    /// `admin_url` (e.g. a [`PostgresCluster`] the test may crash) instead of the shared one.
    pub fn new_in_cluster(admin_url: &str, extra_env: &[(&str, &str)]) -> TestServer {
        TestServer::on_database(extra_env, |_| Database::create_in(admin_url))
    }

    fn on_database(extra_env: &[(&str, &str)], database: impl FnOnce(&std::path::Path) -> Database) -> TestServer {
        let dir =
            tempfile::Builder::new().prefix("wallet-api-test").tempdir().expect("cannot create a temporary directory");
        let database = database(dir.path());
        let stderr_path = dir.path().join("server.stderr");
        let extra_env = extra_env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        TestServer { dir, database, extra_env, child: None, base_url: String::new(), stderr_path }
    }

    /// A second server, not running yet, on this server's database (for tests of several
    /// servers sharing one database). Only the first one drops the database at the end.
    pub fn sibling(&self) -> TestServer {
        let dir =
            tempfile::Builder::new().prefix("wallet-api-test").tempdir().expect("cannot create a temporary directory");
        let database = Database { url: self.database.url.clone(), postgres_drop: None };
        let stderr_path = dir.path().join("server.stderr");
        TestServer {
            dir,
            database,
            extra_env: self.extra_env.clone(),
            child: None,
            base_url: String::new(),
            stderr_path,
        }
    }

    /// A running server on a fresh database.
    pub fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, &[])
    }

    /// A running server on a fresh database with `extra_env` added to its environment.
    pub fn start_with(backend: Backend, extra_env: &[(&str, &str)]) -> TestServer {
        let mut server = TestServer::new(backend, extra_env);
        server.spawn();
        server
    }

    /// `wallet-server` with the test environment, for `serve` and the admin commands alike.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wallet-server"));
        command
            .current_dir(self.dir.path())
            .env("WALLET_DATABASE_URL", &self.database.url)
            .env("WALLET_ARGON2", "m=64,t=1,p=1")
            .env("WALLET_TEST_CLOCK", "1")
            .env("WALLET_MAX_SESSIONS", SESSIONS_CAPACITY_DEFAULT)
            .env("RUST_LOG", "warn")
            .envs(self.extra_env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// This server, not running yet, with `name=value` added to its environment (overriding).
    pub fn with_env(mut self, name: &str, value: &str) -> TestServer {
        self.extra_env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts `serve` on a free port and waits until `GET /healthz` answers 200.
    pub fn spawn(&mut self) {
        self.spawn_with(&[])
    }

    /// [`TestServer::spawn`] with `serve_args` after `serve` (e.g. `--demo`).
    pub fn spawn_with(&mut self, serve_args: &[&str]) {
        assert!(self.child.is_none(), "the server is already running");
        for attempt in 1..=SPAWN_ATTEMPTS_MAX {
            let port = free_port();
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.stderr_path)
                .expect("cannot open the server log in the temporary directory");
            let child = self
                .command()
                .arg("serve")
                .args(serve_args)
                .env("WALLET_BIND", format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cannot duplicate the server log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run wallet-server: {error}"));
            self.child = Some(child);
            self.base_url = format!("http://127.0.0.1:{port}");
            match self.wait_ready() {
                Readiness::Ready => return,
                Readiness::Exited(_) if attempt < SPAWN_ATTEMPTS_MAX => self.child = None,
                Readiness::Exited(status) => {
                    panic!("wallet-server serve exited with {status}; stderr tail:\n{}", self.stderr_tail())
                }
                Readiness::TimedOut => panic!(
                    "wallet-server serve did not answer GET /healthz within {READY_TIMEOUT:?}; stderr tail:\n{}",
                    self.stderr_tail()
                ),
            }
        }
    }

    fn wait_ready(&mut self) -> Readiness {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let url = self.url("/healthz");
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("wait_ready runs after spawn");
            if let Ok(Some(status)) = child.try_wait() {
                return Readiness::Exited(status);
            }
            if let Ok(response) = agent.get(&url).call() {
                // Another test's server may have taken the port we picked; ours is ready only if
                // it is still alive.
                if response.status() == 200 && matches!(child.try_wait(), Ok(None)) {
                    return Readiness::Ready;
                }
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        }
        Readiness::TimedOut
    }

    /// Runs `wallet-server <args>` with this server's environment (its database), to the end.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).stdin(Stdio::null()).output().expect("cannot run wallet-server")
    }

    /// Creates a city admin with `wallet-server admin create`, password on stdin; works whether or
    /// not `serve` is running.
    pub fn create_admin(&self, login: &str, password: &str) {
        let out_path = self.dir.path().join("admin-create.out");
        let log = fs::File::create(&out_path).expect("cannot create the admin command log");
        let mut child = self
            .command()
            .args(["admin", "create", "--login", login])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("cannot duplicate the admin command log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run wallet-server admin create: {error}"));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // The command may exit before reading stdin; its exit status tells.
        let _ = stdin.write_all(format!("{password}\n").as_bytes());
        drop(stdin);
        let deadline = Instant::now() + ADMIN_CREATE_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot wait for admin create") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("wallet-server admin create did not finish within {ADMIN_CREATE_TIMEOUT:?}");
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        };
        let output = fs::read_to_string(&out_path).unwrap_or_default();
        assert!(status.success(), "wallet-server admin create --login {login} exited with {status}:\n{output}");
    }

    /// The absolute URL of `path` (which starts with `/`) on the running server.
    pub fn url(&self, path: &str) -> String {
        assert!(self.child.is_some(), "the server is not running");
        format!("{}{path}", self.base_url)
    }

    /// A client for the running server; take a new one after [`TestServer::restart`] (new port).
    pub fn client(&self) -> Client {
        Client::new(&self.url(""))
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new `serve` process on the same database (killing the old one if still running).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Everything the server processes wrote to stdout and stderr so far (for tests of what
    /// the log holds; failure messages use [`TestServer::stderr_tail`]).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// `host:port` of the running server, for raw TCP tests.
    pub fn address(&self) -> String {
        self.url("").trim_start_matches("http://").to_owned()
    }

    /// The last few KiB of everything the server processes wrote to stdout and stderr.
    pub fn stderr_tail(&self) -> String {
        let bytes = fs::read(&self.stderr_path).unwrap_or_default();
        let start = bytes.len().saturating_sub(STDERR_TAIL_BYTES_MAX);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- wallet-server output (tail) ---\n{}\n--- end ---", self.stderr_tail());
        }
        if let Some((admin_url, name)) = &self.database.postgres_drop {
            if let Err(error) = psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
                eprintln!("could not drop test database {name}: {error}");
            }
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a free port on 127.0.0.1");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// A request body.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Json(&'a Value),
    /// Sent as is with `Content-Type: application/json` (for malformed or oversized bodies).
    Raw(&'a [u8]),
}

/// One HTTP answer, whatever its status.
pub struct Reply {
    /// `METHOD /path`, for failure messages.
    pub request: String,
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub text: String,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Reply {
    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status: {self}");
        self.json
    }

    /// Asserts an error answer: the status and `{"error":{"code","message"}}`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert!(
            self.status == status && self.json["error"]["code"] == code && self.json["error"]["message"].is_string(),
            "expected {status} {code}: {self}"
        );
    }

    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} {}", self.request, self.status, self.text)
    }
}

/// An HTTP client for one server. 4xx and 5xx answers are [`Reply`]s, not errors; only transport
/// failures (refused, reset) are, in [`Client::try_send`]. Cheap to clone; clones share a pool.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base_url: String,
}

impl Client {
    pub fn new(base_url: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .build()
            .into();
        Client { agent, base_url: base_url.trim_end_matches('/').to_owned() }
    }

    /// Sends one request; `token` "" sends no `Authorization` header.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ureq::Error> {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base_url));
        if !token.is_empty() {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Body::Empty => None,
            Body::Json(value) => Some(serde_json::to_vec(value).expect("a Value always serializes")),
            Body::Raw(raw) => Some(raw.to_vec()),
        };
        if bytes.is_some() {
            request = request.header("Content-Type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = match bytes {
            None => self.agent.run(request.body(())?)?,
            Some(bytes) => self.agent.run(request.body(bytes)?)?,
        };
        let text = response.body_mut().read_to_string()?;
        Ok(Reply {
            request: format!("{method} {path}"),
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        })
    }

    /// [`Client::try_send`] that panics on a transport failure.
    #[track_caller]
    pub fn send(&self, method: &str, path: &str, token: &str, body: Body<'_>, headers: &[(&str, &str)]) -> Reply {
        match self.try_send(method, path, token, body, headers) {
            Ok(reply) => reply,
            Err(error) => panic!("{method} {path}: transport failure: {error}"),
        }
    }

    #[track_caller]
    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, token, Body::Empty, &[])
    }

    #[track_caller]
    pub fn delete(&self, path: &str, token: &str) -> Reply {
        self.send("DELETE", path, token, Body::Empty, &[])
    }

    #[track_caller]
    pub fn put(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("PUT", path, token, Body::Json(body), &[])
    }

    #[track_caller]
    pub fn post(&self, path: &str, token: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.send("POST", path, token, Body::Json(body), headers)
    }

    /// A money-moving POST with a fresh `Idempotency-Key`.
    #[track_caller]
    pub fn post_keyed(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.post(path, token, body, &[("Idempotency-Key", &new_key())])
    }

    /// The value of one series of `GET /metrics` (`name` with its labels, as the line starts),
    /// or `None` when it is not there.
    #[track_caller]
    pub fn metric(&self, series: &str) -> Option<f64> {
        let metrics = self.get("/metrics", "");
        assert_eq!(metrics.status, 200, "{metrics}");
        metrics.text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.parse().unwrap_or_else(|_| panic!("not a number in /metrics: {line}")))
        })
    }

    /// Logs in and returns the token.
    #[track_caller]
    pub fn login(&self, login: &str, password: &str) -> String {
        let session = self.post("/v1/sessions", "", &json!({"login": login, "password": password}), &[]).expect(201);
        session["token"].as_str().expect("a session has a token").to_owned()
    }

    /// Registers a citizen with [`PASSWORD`] and logs in.
    #[track_caller]
    pub fn register_citizen(&self, login: &str) -> Citizen {
        let created = self.post("/v1/citizens", "", &json!({"login": login, "password": PASSWORD}), &[]).expect(201);
        Citizen {
            login: login.to_owned(),
            id: string(&created["citizen_id"]),
            wallet_id: string(&created["wallet_id"]),
            token: self.login(login, PASSWORD),
        }
    }

    /// Creates a merchant named "Shop <login>" with [`PASSWORD`] and logs in.
    #[track_caller]
    pub fn create_merchant(&self, admin_token: &str, login: &str) -> Merchant {
        self.create_merchant_named(admin_token, login, &format!("Shop {login}"))
    }

    /// Creates a merchant with a given name; business number and bank account derive from the login.
    #[track_caller]
    pub fn create_merchant_named(&self, admin_token: &str, login: &str, name: &str) -> Merchant {
        let digits =
            login.bytes().fold(7u32, |hash, byte| hash.wrapping_mul(31).wrapping_add(u32::from(byte))) % 100_000;
        let business_number = format!("214-86-{digits:05}");
        let bank_account = format!("004-21-{digits:05}-01");
        let body = json!({
            "login": login, "password": PASSWORD, "name": name,
            "business_number": business_number, "bank_account": bank_account,
        });
        let created = self.post("/v1/admin/merchants", admin_token, &body, &[]).expect(201);
        Merchant {
            login: login.to_owned(),
            id: string(&created["merchant_id"]),
            token: self.login(login, PASSWORD),
            name: name.to_owned(),
            business_number,
            bank_account,
        }
    }

    /// `GET /v1/wallet`, asserted 200.
    #[track_caller]
    pub fn wallet(&self, token: &str) -> Value {
        self.get("/v1/wallet", token).expect(200)
    }

    #[track_caller]
    pub fn balance(&self, token: &str) -> String {
        string(&self.wallet(token)["balance"])
    }

    /// `GET /v1/wallet/transactions?<query>`, asserted 200.
    #[track_caller]
    pub fn history(&self, token: &str, query: &str) -> Value {
        self.get(&format!("/v1/wallet/transactions?{query}"), token).expect(200)
    }

    #[track_caller]
    pub fn charge(&self, token: &str, amount: &str) -> Reply {
        self.post_keyed("/v1/wallet/charges", token, &amount_body(amount))
    }

    #[track_caller]
    pub fn gift(&self, token: &str, to_wallet_id: &str, amount: &str) -> Reply {
        self.post_keyed("/v1/wallet/gifts", token, &json!({"to_wallet_id": to_wallet_id, "amount": amount}))
    }

    /// A fresh payment code of the citizen.
    #[track_caller]
    pub fn payment_code(&self, citizen_token: &str) -> String {
        let created = self.send("POST", "/v1/wallet/payment-codes", citizen_token, Body::Empty, &[]).expect(201);
        string(&created["code"])
    }

    #[track_caller]
    pub fn pay(&self, merchant_token: &str, payment_code: &str, amount: &str) -> Reply {
        self.post_keyed("/v1/payments", merchant_token, &json!({"payment_code": payment_code, "amount": amount}))
    }

    /// The citizen shows a fresh code and the merchant takes `amount`; asserted 201.
    #[track_caller]
    pub fn pay_from(&self, citizen_token: &str, merchant_token: &str, amount: &str) -> Value {
        let code = self.payment_code(citizen_token);
        self.pay(merchant_token, &code, amount).expect(201)
    }

    #[track_caller]
    pub fn refund(&self, merchant_token: &str, payment_id: &str, amount: &str) -> Reply {
        self.post_keyed(&format!("/v1/payments/{payment_id}/refunds"), merchant_token, &amount_body(amount))
    }
}

/// A registered, logged-in citizen.
pub struct Citizen {
    pub login: String,
    /// No endpoint takes it yet; kept for tests of ones that will.
    #[allow(dead_code)]
    pub id: String,
    pub wallet_id: String,
    pub token: String,
}

/// A created, logged-in merchant and the details the settlement file shows.
pub struct Merchant {
    pub login: String,
    pub id: String,
    pub token: String,
    pub name: String,
    pub business_number: String,
    pub bank_account: String,
}

impl Citizen {
    /// Opens a new session: sessions expire as the test clock moves on.
    pub fn relogin(&mut self, api: &Client) {
        self.token = api.login(&self.login, PASSWORD);
    }
}

impl Merchant {
    /// Opens a new session: sessions expire as the test clock moves on.
    pub fn relogin(&mut self, api: &Client) {
        self.token = api.login(&self.login, PASSWORD);
    }
}

/// A started server with an admin (created before `serve`, through the CLI), logged in, the clock
/// at [`CLOCK_START`] and [`POLICY_STANDARD`] in force. The cashback budget is left at 0.
/// [`TestApp::set_clock`] renews the admin session, which the clock move may have expired.
pub struct TestApp {
    pub server: TestServer,
    pub api: Client,
    admin: RefCell<String>,
    /// The test clock last set, and when (taken before the request, so that the server's clock
    /// is at most that plus the time since): a restarted server starts on the real clock again.
    clock: RefCell<(DateTime<FixedOffset>, Instant)>,
}

impl TestApp {
    pub fn start(backend: Backend) -> TestApp {
        TestApp::start_with(backend, &[])
    }

    pub fn start_with(backend: Backend, extra_env: &[(&str, &str)]) -> TestApp {
        TestApp::start_on(TestServer::new(backend, extra_env))
    }

    /// [`TestApp::start_with`] on a fresh database in the PostgreSQL cluster of `admin_url`.
    pub fn start_in_cluster(admin_url: &str, extra_env: &[(&str, &str)]) -> TestApp {
        TestApp::start_on(TestServer::new_in_cluster(admin_url, extra_env))
    }

    fn start_on(mut server: TestServer) -> TestApp {
        server.create_admin(ADMIN_LOGIN, PASSWORD);
        server.spawn();
        let api = server.client();
        let admin = RefCell::new(api.login(ADMIN_LOGIN, PASSWORD));
        let clock = RefCell::new((clock_time(CLOCK_START), Instant::now()));
        let app = TestApp { server, api, admin, clock };
        app.set_clock(CLOCK_START);
        app.set_policy(&[]);
        app
    }

    /// Restarts the server on the same database (see [`TestServer::restart`]), takes a client for
    /// its new port and a new admin session. The test clock is where the old server's would be
    /// by now (the clock last set plus the real time since): the server keeps its offset in the
    /// database, and this checks that it did.
    pub fn restart(&mut self) {
        self.server.restart();
        self.api = self.server.client();
        *self.admin.borrow_mut() = self.api.login(ADMIN_LOGIN, PASSWORD);
        let (set, at) = *self.clock.borrow();
        let elapsed = chrono::Duration::from_std(at.elapsed()).expect("a test runs for less than centuries");
        let status = self.api.get("/v1/admin/status", &self.admin()).expect(200);
        let now = time(&status["now"]);
        // `now` is shown to the second.
        let second = chrono::Duration::seconds(1);
        assert!(now + second > set && now <= set + elapsed + second, "the test clock moved on restart: {status}");
    }

    /// The admin's current session token.
    pub fn admin(&self) -> String {
        self.admin.borrow().clone()
    }

    /// Moves the server clock forward to `now` (RFC 3339) and renews the admin session.
    /// Citizens and merchants renew theirs with `relogin`.
    #[track_caller]
    pub fn set_clock(&self, now: &str) {
        let sent_at = Instant::now();
        let reply = self.api.put("/v1/admin/test-clock", &self.admin(), &json!({"now": now}));
        assert!((200..300).contains(&reply.status), "cannot set the test clock: {reply}");
        *self.clock.borrow_mut() = (clock_time(now), sent_at);
        *self.admin.borrow_mut() = self.api.login(ADMIN_LOGIN, PASSWORD);
    }

    /// Puts [`POLICY_STANDARD`] with `changes` applied, asserts the answer echoes it, returns it.
    #[track_caller]
    pub fn set_policy(&self, changes: &[(&str, &str)]) -> Value {
        let mut policy = json!({});
        for (name, value) in POLICY_STANDARD.iter().chain(changes) {
            policy[*name] = json!(value);
        }
        let in_force = self.api.put("/v1/admin/policy", &self.admin(), &policy).expect(200);
        assert_eq!(in_force, policy, "the policy in force differs from the one put");
        policy
    }

    /// Tops up the cashback budget; returns the budget after.
    #[track_caller]
    pub fn top_up_budget(&self, amount: &str) -> Value {
        self.api.post_keyed("/v1/admin/cashback-budget/top-ups", &self.admin(), &amount_body(amount)).expect(201)
    }

    /// The trial balance totals "0", and the account balances listed do sum to zero.
    #[track_caller]
    pub fn assert_books_balance(&self) {
        let trial = self.api.get("/v1/admin/ledger/trial-balance", &self.admin()).expect(200);
        assert_eq!(trial["total"], "0", "trial balance: {trial}");
        let accounts = trial["accounts"].as_array().unwrap_or_else(|| panic!("no accounts in {trial}"));
        let sum: i128 = accounts.iter().map(|account| won(&account["balance"])).sum();
        assert_eq!(sum, 0, "account balances do not sum to zero: {trial}");
    }
}

/// Asserts that the server behind `other` (on `app`'s database) shows the same test clock as
/// `app`'s, to the second or two: the offset is kept in the database.
#[track_caller]
pub fn assert_same_clock(app: &TestApp, other: &Client) {
    let ours = time(&app.api.get("/v1/admin/status", &app.admin()).expect(200)["now"]);
    let theirs = time(&other.get("/v1/admin/status", &other.login(ADMIN_LOGIN, PASSWORD)).expect(200)["now"]);
    assert!((theirs - ours).num_seconds().abs() <= 2, "the servers' clocks differ: {ours} and {theirs}");
}

/// A test clock setting (RFC 3339, any offset) as a time.
#[track_caller]
fn clock_time(now: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(now)
        .unwrap_or_else(|error| panic!("the test clock takes RFC 3339, not {now:?}: {error}"))
}

/// A throwaway PostgreSQL cluster of this test alone (`scripts/pg-test-cluster` in a temporary
/// directory), for a test that crashes the database itself: the shared cluster of
/// `WALLET_TEST_POSTGRES_URL` serves other tests at the same time and must stay up. Stopped and
/// removed on drop.
pub struct PostgresCluster {
    dir: tempfile::TempDir,
    url: String,
}

impl PostgresCluster {
    /// Starts a new cluster (initdb on first use; seconds) and returns it running.
    pub fn start() -> PostgresCluster {
        let dir =
            tempfile::Builder::new().prefix("wallet-pg-test").tempdir().expect("cannot create a temporary directory");
        let url = pg_test_cluster("start", dir.path(), None);
        PostgresCluster { dir, url }
    }

    /// The URL of its `wallet` database, for [`TestApp::start_in_cluster`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops it as a crash would (`pg_ctl stop -m immediate`: no checkpoint; connections cut).
    pub fn crash(&self) {
        pg_test_cluster("crash", self.dir.path(), None);
    }

    /// Starts it again after [`PostgresCluster::crash`] on the same port, so clients holding its
    /// URL reconnect to it; it recovers from its write-ahead log first.
    pub fn start_again(&self) {
        let port = self.url.rsplit_once(':').and_then(|(_, rest)| rest.split('/').next()).expect("the URL has a port");
        let url = pg_test_cluster("start", self.dir.path(), Some(port));
        assert_eq!(url, self.url, "the cluster came back under another URL");
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = Command::new(pg_test_cluster_script()).arg("stop").arg(self.dir.path()).output();
    }
}

fn pg_test_cluster_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-cluster")
}

/// Runs `scripts/pg-test-cluster <command> <dir>`; returns what it printed (the URL, for start).
fn pg_test_cluster(command: &str, dir: &std::path::Path, port: Option<&str>) -> String {
    let mut script = Command::new(pg_test_cluster_script());
    script.arg(command).arg(dir).stdin(Stdio::null());
    if let Some(port) = port {
        script.env("PG_TEST_CLUSTER_PORT", port);
    }
    let output = script.output().unwrap_or_else(|error| panic!("cannot run scripts/pg-test-cluster: {error}"));
    assert!(
        output.status.success(),
        "scripts/pg-test-cluster {command} {} exited with {}:\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A fresh `Idempotency-Key`.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An id of the same shape as `id` (a number or a UUID) that names nothing.
pub fn unknown_id_like(id: &str) -> String {
    match id.parse::<u64>() {
        Ok(number) => (number + 1_000_000).to_string(),
        Err(_) => uuid::Uuid::new_v4().to_string(),
    }
}

/// Percent-encodes a query parameter value (an opaque cursor may hold `+`, `/` or `=`).
pub fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `{"amount": "<won>"}`.
pub fn amount_body(won: &str) -> Value {
    json!({ "amount": won })
}

/// A JSON string field's content; panics on anything else.
#[track_caller]
pub fn string(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("expected a JSON string, got {value}")).to_owned()
}

/// A money string (`"-1234"`, `"15000"`) as a number, for sums.
#[track_caller]
pub fn won(value: &Value) -> i128 {
    let text = value.as_str().unwrap_or_else(|| panic!("money must be a JSON string, got {value}"));
    let digits = text.strip_prefix('-').unwrap_or(text);
    assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()), "not a whole number of won: {value}");
    text.parse().unwrap_or_else(|_| panic!("money out of range: {value}"))
}

/// Parses an RFC 3339 output time and checks it is in UTC.
#[track_caller]
pub fn time(value: &Value) -> DateTime<FixedOffset> {
    let parsed = DateTime::parse_from_rfc3339(&string(value)).unwrap_or_else(|error| panic!("{value}: {error}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "times are output in UTC: {value}");
    parsed
}

/// `(kind, amount, balance_after)` of each history item, newest first.
#[track_caller]
pub fn history_rows(history: &Value) -> Vec<(String, String, String)> {
    let items = history["items"].as_array().unwrap_or_else(|| panic!("no items in {history}"));
    items.iter().map(|item| (string(&item["kind"]), string(&item["amount"]), string(&item["balance_after"]))).collect()
}

/// Shorthand for the expected side of [`history_rows`].
pub fn rows(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected.iter().map(|(kind, amount, after)| (kind.to_string(), amount.to_string(), after.to_string())).collect()
}

// Added for PROGRAMS.md (`PATCH /v1/admin/merchants/{merchant_id}`).
impl Client {
    /// `PATCH path` with a JSON body (a partial update: only the fields given change).
    #[track_caller]
    pub fn patch(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("PATCH", path, token, Body::Json(body), &[])
    }
}
