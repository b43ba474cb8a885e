//! `raw-sqlite-payments`: the floor for the payments benchmark. The writes of one POS payment,
//! done straight on SQLite with no server, no HTTP and no batching: ONE durable transaction per
//! payment (journal_mode=WAL, synchronous=FULL, as wallet-server opens its database).
//!
//! The schema is the part of migrations/sqlite that a payment touches, with the same columns and
//! indexes. Each payment, in one `BEGIN IMMEDIATE` ... `COMMIT`: mark the payment code used,
//! update the wallet (balance, eligible spend, cashback earned), the merchant's receivable and
//! the cashback budget row; insert the postings of the payment and of its cashback (the double
//! entry, four rows), two history rows, the payment row, the day's sales row and the
//! idempotency record. The history is linked as the server links it (each item's `prev_seq`,
//! the wallet's `history_head` set in its update; no index on (wallet_id, seq)). Values are
//! computed in memory (no reads): this is the cost of the durable writes alone.
//!
//! `raw-sqlite-payments DB_PATH PAYMENTS [WALLETS]`; DB_PATH must not exist yet. Prints one line:
//! `raw_sqlite_payments <count> in <seconds> s: <rate>/s`.

use std::ffi::{c_int, CStr, CString};
use std::process::ExitCode;
use std::ptr;
use std::time::Instant;

use libsqlite3_sys as ffi;

/// Most payments in one run (each is one fsync; a few seconds at most on a disk).
const PAYMENTS_MAX: u64 = 10_000_000;
/// Most wallets (and one merchant per 10 wallets).
const WALLETS_MAX: u64 = 1_000_000;
/// What each wallet starts with: enough for every payment of the run.
const OPENING_BALANCE_WON: i64 = 1_000_000_000_000;
const AMOUNT_WON: i64 = 1_000;
/// 10 % cashback, as the default policy.
const CASHBACK_WON: i64 = AMOUNT_WON / 10;
/// Busy timeout: nothing else opens this database, so a wait would be a bug; bounded anyway.
const BUSY_TIMEOUT_MS: c_int = 5_000;

const SCHEMA: &str = "
CREATE TABLE wallets (
    wallet_id TEXT PRIMARY KEY NOT NULL, citizen_id TEXT NOT NULL UNIQUE,
    balance BIGINT NOT NULL CHECK (balance >= 0), month TEXT NOT NULL, charged BIGINT NOT NULL,
    eligible_spent BIGINT NOT NULL, cashback_earned BIGINT NOT NULL, history_head BIGINT);
CREATE TABLE merchants (
    merchant_id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, business_number TEXT NOT NULL,
    bank_account TEXT NOT NULL, category TEXT, receivable BIGINT NOT NULL,
    carried_negative BIGINT NOT NULL CHECK (carried_negative <= 0));
CREATE TABLE ledger_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1), cashback_rate TEXT NOT NULL,
    cashback_monthly_spend_cap BIGINT NOT NULL, monthly_charge_limit BIGINT NOT NULL,
    holding_limit BIGINT NOT NULL, merchant_fee_rate TEXT NOT NULL, budget_funded BIGINT NOT NULL,
    budget_paid_out BIGINT NOT NULL, budget_reversed BIGINT NOT NULL, bank_clearing BIGINT NOT NULL,
    settlement_payouts BIGINT NOT NULL, fee_income BIGINT NOT NULL, handover_opening BIGINT NOT NULL);
INSERT INTO ledger_state VALUES (1, '0.1', 500000, 2000000, 3000000, '0', 1000000000000, 0, 0, 0, 0, 0, 0);
CREATE TABLE payment_codes (
    code TEXT PRIMARY KEY NOT NULL, wallet_id TEXT NOT NULL, expires_at_ms BIGINT NOT NULL, used BOOLEAN NOT NULL);
CREATE INDEX payment_codes_by_expiry ON payment_codes (expires_at_ms);
CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY NOT NULL, merchant_id TEXT NOT NULL, wallet_id TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0), cashback BIGINT NOT NULL, eligible BIGINT NOT NULL,
    month TEXT NOT NULL, at_ms BIGINT NOT NULL, refunded BIGINT NOT NULL CHECK (refunded <= amount),
    cashback_reversed BIGINT NOT NULL CHECK (cashback_reversed <= cashback), eligible_returned BIGINT NOT NULL);
CREATE TABLE daily_sales (
    business_date TEXT NOT NULL, merchant_id TEXT NOT NULL, payments_count BIGINT NOT NULL,
    payments_amount BIGINT NOT NULL, refunds_count BIGINT NOT NULL, refunds_amount BIGINT NOT NULL,
    PRIMARY KEY (business_date, merchant_id));
CREATE TABLE idempotency (
    principal_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL,
    body TEXT NOT NULL, created_at_ms BIGINT NOT NULL, PRIMARY KEY (principal_id, idem_key));
CREATE TABLE postings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, tx_id TEXT NOT NULL, tx_kind TEXT NOT NULL,
    account_kind TEXT NOT NULL, account_id TEXT, amount BIGINT NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX postings_by_tx ON postings (tx_id);
CREATE TABLE history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, item_id TEXT NOT NULL, wallet_id TEXT NOT NULL,
    kind TEXT NOT NULL, amount BIGINT NOT NULL, balance_after BIGINT NOT NULL, at_ms BIGINT NOT NULL,
    counterparty TEXT, related_id TEXT, prev_seq BIGINT);
";

/// One open database; closed on drop.
struct Database {
    handle: *mut ffi::sqlite3,
}

/// One prepared statement of `Database`; finalized on drop.
struct Statement {
    handle: *mut ffi::sqlite3_stmt,
    sql: &'static str,
}

/// A value bound to a statement parameter.
enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl Database {
    fn create(path: &str) -> Result<Database, String> {
        let c_path = CString::new(path).map_err(|_| format!("{path:?} holds a NUL byte"))?;
        let mut handle = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: c_path is a valid C string; handle is written by sqlite3_open_v2.
        let code = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut handle, flags, ptr::null()) };
        let database = Database { handle };
        if code != ffi::SQLITE_OK {
            return Err(format!("cannot open {path}: {}", database.message()));
        }
        // SAFETY: the handle is open.
        unsafe { ffi::sqlite3_busy_timeout(database.handle, BUSY_TIMEOUT_MS) };
        Ok(database)
    }

    fn message(&self) -> String {
        if self.handle.is_null() {
            return "out of memory".to_owned();
        }
        // SAFETY: the handle is valid; sqlite3_errmsg returns a NUL-terminated string it owns.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.handle)) }.to_string_lossy().into_owned()
    }

    fn execute(&self, sql: &str) -> Result<(), String> {
        let c_sql = CString::new(sql).map_err(|_| "SQL holds a NUL byte".to_owned())?;
        // SAFETY: the handle is open and c_sql a valid C string; no callback.
        let code = unsafe { ffi::sqlite3_exec(self.handle, c_sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut()) };
        if code != ffi::SQLITE_OK {
            return Err(format!("{sql:.60}: {}", self.message()));
        }
        Ok(())
    }

    fn prepare(&self, sql: &'static str) -> Result<Statement, String> {
        let c_sql = CString::new(sql).map_err(|_| "SQL holds a NUL byte".to_owned())?;
        let mut handle = ptr::null_mut();
        // SAFETY: the handle is open, c_sql valid; -1 reads up to the NUL.
        let code = unsafe { ffi::sqlite3_prepare_v2(self.handle, c_sql.as_ptr(), -1, &mut handle, ptr::null_mut()) };
        if code != ffi::SQLITE_OK {
            return Err(format!("cannot prepare {sql:.60}: {}", self.message()));
        }
        Ok(Statement { handle, sql })
    }

    /// Runs `statement` once with `params` (a write: no rows expected) and resets it.
    fn run(&self, statement: &Statement, params: &[Param<'_>]) -> Result<(), String> {
        for (index, param) in params.iter().enumerate() {
            let position = c_int::try_from(index + 1).expect("a statement has few parameters");
            // SAFETY: the statement is prepared on this open handle; SQLITE_TRANSIENT makes
            // SQLite copy the text before this call returns.
            let code = unsafe {
                match param {
                    Param::Int(value) => ffi::sqlite3_bind_int64(statement.handle, position, *value),
                    Param::Null => ffi::sqlite3_bind_null(statement.handle, position),
                    Param::Text(text) => ffi::sqlite3_bind_text(
                        statement.handle,
                        position,
                        text.as_ptr().cast(),
                        c_int::try_from(text.len()).map_err(|_| "text too long".to_owned())?,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(format!("bind {position} of {:.60}: {}", statement.sql, self.message()));
            }
        }
        // SAFETY: as above.
        let code = unsafe { ffi::sqlite3_step(statement.handle) };
        // SAFETY: as above; reset keeps the bindings, which the next run overwrites.
        unsafe { ffi::sqlite3_reset(statement.handle) };
        if code != ffi::SQLITE_DONE {
            return Err(format!("{:.60}: {}", statement.sql, self.message()));
        }
        Ok(())
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.handle) };
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: every Statement is declared after its Database and so dropped (finalized)
        // before it; the handle is closed once.
        unsafe { ffi::sqlite3_close(self.handle) };
    }
}

/// The statements of one payment, prepared once.
struct PaymentStatements {
    begin: Statement,
    commit: Statement,
    code_used: Statement,
    wallet: Statement,
    merchant: Statement,
    budget: Statement,
    posting: Statement,
    history: Statement,
    payment: Statement,
    sales: Statement,
    idempotency: Statement,
}

impl PaymentStatements {
    fn prepare(database: &Database) -> Result<PaymentStatements, String> {
        Ok(PaymentStatements {
            begin: database.prepare("BEGIN IMMEDIATE")?,
            commit: database.prepare("COMMIT")?,
            code_used: database.prepare("UPDATE payment_codes SET used = 1 WHERE code = ?1")?,
            wallet: database.prepare(
                "UPDATE wallets SET balance = ?2, eligible_spent = eligible_spent + ?3, \
                 cashback_earned = cashback_earned + ?4, history_head = ?5 WHERE wallet_id = ?1",
            )?,
            merchant: database.prepare("UPDATE merchants SET receivable = receivable + ?2 WHERE merchant_id = ?1")?,
            budget: database.prepare("UPDATE ledger_state SET budget_paid_out = budget_paid_out + ?1 WHERE id = 1")?,
            posting: database.prepare(
                "INSERT INTO postings (tx_id, tx_kind, account_kind, account_id, amount, at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            history: database.prepare(
                "INSERT INTO history (item_id, wallet_id, kind, amount, balance_after, at_ms, counterparty, \
                 related_id, seq, prev_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            payment: database
                .prepare("INSERT INTO payments VALUES (?1, ?2, ?3, ?4, ?5, ?4, '2026-11', ?6, 0, 0, 0)")?,
            sales: database.prepare(
                "INSERT INTO daily_sales VALUES ('2026-11-25', ?1, 1, ?2, 0, 0) \
                 ON CONFLICT (business_date, merchant_id) DO UPDATE SET \
                 payments_count = payments_count + 1, payments_amount = payments_amount + excluded.payments_amount",
            )?,
            idempotency: database.prepare("INSERT INTO idempotency VALUES (?1, ?2, ?3, 201, ?4, ?5)")?,
        })
    }
}

fn wallet_id(index: u64) -> String {
    format!("00000000-0000-4000-8000-{index:012}")
}

fn merchant_id(index: u64) -> String {
    format!("00000000-0000-4000-9000-{index:012}")
}

fn code_of(sequence: u64) -> String {
    format!("{:020}", sequence)
}

/// Creates the schema, the wallets, merchants and one unused code per payment (untimed).
fn seed(database: &Database, wallets: u64, merchants: u64, payments: u64) -> Result<(), String> {
    database.execute(SCHEMA)?;
    database.execute("BEGIN")?;
    let wallet = database.prepare("INSERT INTO wallets VALUES (?1, ?2, ?3, '2026-11', ?3, 0, 0, NULL)")?;
    for index in 0..wallets {
        let id = wallet_id(index);
        database.run(&wallet, &[Param::Text(&id), Param::Text(&id), Param::Int(OPENING_BALANCE_WON)])?;
    }
    let merchant =
        database.prepare("INSERT INTO merchants VALUES (?1, 'Raw shop', '000-00-00000', 'raw-bank', NULL, 0, 0)")?;
    for index in 0..merchants {
        database.run(&merchant, &[Param::Text(&merchant_id(index))])?;
    }
    let code = database.prepare("INSERT INTO payment_codes VALUES (?1, ?2, 4102444800000, 0)")?;
    for sequence in 0..payments {
        database.run(&code, &[Param::Text(&code_of(sequence)), Param::Text(&wallet_id(sequence % wallets))])?;
    }
    drop((wallet, merchant, code));
    database.execute("COMMIT")?;
    // A checkpoint now, so the timed loop starts on an empty WAL.
    database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
}

/// What the loop keeps in memory instead of reading it back: each wallet's balance and newest
/// history item, and the last history seq.
struct Books {
    balances: Vec<i64>,
    heads: Vec<Option<i64>>,
    last_seq: i64,
}

/// One payment, one transaction.
fn pay(
    database: &Database,
    statements: &PaymentStatements,
    sequence: u64,
    books: &mut Books,
    merchants: u64,
    at_ms: i64,
) -> Result<(), String> {
    let balances = &mut books.balances;
    let wallet_index = usize::try_from(sequence % balances.len() as u64).expect("wallets fit in memory");
    let (payment_seq, cashback_seq) = (books.last_seq + 1, books.last_seq + 2);
    let head = books.heads[wallet_index].map_or(Param::Null, Param::Int);
    let wallet = wallet_id(wallet_index as u64);
    let merchant = merchant_id(sequence % merchants);
    let payment_id = format!("00000000-0000-4000-a000-{sequence:012}");
    let cashback_id = format!("00000000-0000-4000-b000-{sequence:012}");
    let after_payment = balances[wallet_index] - AMOUNT_WON;
    let after_cashback = after_payment + CASHBACK_WON;
    assert!(after_payment >= 0, "a wallet never goes below zero");
    let s = statements;
    database.run(&s.begin, &[])?;
    database.run(&s.code_used, &[Param::Text(&code_of(sequence))])?;
    database.run(
        &s.wallet,
        &[
            Param::Text(&wallet),
            Param::Int(after_cashback),
            Param::Int(AMOUNT_WON),
            Param::Int(CASHBACK_WON),
            Param::Int(cashback_seq),
        ],
    )?;
    database.run(&s.merchant, &[Param::Text(&merchant), Param::Int(AMOUNT_WON)])?;
    database.run(&s.budget, &[Param::Int(CASHBACK_WON)])?;
    // The double entry: each transaction's postings sum to zero.
    for (tx_id, tx_kind, account_kind, account_id, amount) in [
        (&payment_id, "payment", "wallet", Some(&wallet), -AMOUNT_WON),
        (&payment_id, "payment", "merchant", Some(&merchant), AMOUNT_WON),
        (&cashback_id, "cashback", "cashback_budget", None, -CASHBACK_WON),
        (&cashback_id, "cashback", "wallet", Some(&wallet), CASHBACK_WON),
    ] {
        let account = account_id.map_or(Param::Int(0), |id| Param::Text(id));
        let params = [
            Param::Text(tx_id),
            Param::Text(tx_kind),
            Param::Text(account_kind),
            account,
            Param::Int(amount),
            Param::Int(at_ms),
        ];
        database.run(&s.posting, &params)?;
    }
    database.run(
        &s.history,
        &[
            Param::Text(&payment_id),
            Param::Text(&wallet),
            Param::Text("payment"),
            Param::Int(-AMOUNT_WON),
            Param::Int(after_payment),
            Param::Int(at_ms),
            Param::Text("Raw shop"),
            Param::Text(&payment_id),
            Param::Int(payment_seq),
            head,
        ],
    )?;
    database.run(
        &s.history,
        &[
            Param::Text(&cashback_id),
            Param::Text(&wallet),
            Param::Text("cashback"),
            Param::Int(CASHBACK_WON),
            Param::Int(after_cashback),
            Param::Int(at_ms),
            Param::Text("Raw shop"),
            Param::Text(&payment_id),
            Param::Int(cashback_seq),
            Param::Int(payment_seq),
        ],
    )?;
    database.run(
        &s.payment,
        &[
            Param::Text(&payment_id),
            Param::Text(&merchant),
            Param::Text(&wallet),
            Param::Int(AMOUNT_WON),
            Param::Int(CASHBACK_WON),
            Param::Int(at_ms),
        ],
    )?;
    database.run(&s.sales, &[Param::Text(&merchant), Param::Int(AMOUNT_WON)])?;
    let body = format!(
        "{{\"payment_id\":\"{payment_id}\",\"amount\":\"{AMOUNT_WON}\",\"cashback\":\"{CASHBACK_WON}\",\
         \"status\":\"approved\",\"at\":\"2026-11-25T12:00:00Z\"}}"
    );
    let key = format!("raw-pay-{sequence}");
    database.run(
        &s.idempotency,
        &[Param::Text(&merchant), Param::Text(&key), Param::Text(&payment_id), Param::Text(&body), Param::Int(at_ms)],
    )?;
    database.run(&s.commit, &[])?;
    balances[wallet_index] = after_cashback;
    books.heads[wallet_index] = Some(cashback_seq);
    books.last_seq = cashback_seq;
    Ok(())
}

fn run(path: &str, payments: u64, wallets: u64) -> Result<(), String> {
    if std::path::Path::new(path).exists() {
        return Err(format!("{path} exists; give a path for a new database"));
    }
    let merchants = wallets.div_ceil(10);
    let database = Database::create(path)?;
    // Explicit pragmas (STYLE.md): durable WAL commits, as wallet-server's connections.
    database.execute("PRAGMA journal_mode = WAL")?;
    database.execute("PRAGMA synchronous = FULL")?;
    database.execute("PRAGMA foreign_keys = ON")?;
    seed(&database, wallets, merchants, payments)?;
    let statements = PaymentStatements::prepare(&database)?;
    let wallet_count = usize::try_from(wallets).map_err(|_| "too many wallets")?;
    let mut books =
        Books { balances: vec![OPENING_BALANCE_WON; wallet_count], heads: vec![None; wallet_count], last_seq: 0 };
    let at_ms = 1_795_000_000_000;
    let started = Instant::now();
    for sequence in 0..payments {
        pay(&database, &statements, sequence, &mut books, merchants, at_ms)?;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    drop(statements);
    println!(
        "raw_sqlite_payments {payments} in {elapsed_s:.2} s: {:.1}/s (one transaction per payment, WAL, synchronous=FULL)",
        payments as f64 / elapsed_s
    );
    Ok(())
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: raw-sqlite-payments DB_PATH PAYMENTS [WALLETS]";
    let (Some(path), Some(payments)) = (arguments.first(), arguments.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::FAILURE;
    };
    let payments = match payments.parse::<u64>() {
        Ok(count) if (1..=PAYMENTS_MAX).contains(&count) => count,
        _ => {
            eprintln!("raw-sqlite-payments: PAYMENTS {payments:?} must be 1 to {PAYMENTS_MAX}");
            return ExitCode::FAILURE;
        }
    };
    let wallets = match arguments.get(2).map(|text| text.parse::<u64>()) {
        None => 100,
        Some(Ok(count)) if (1..=WALLETS_MAX).contains(&count) => count,
        Some(_) => {
            eprintln!("raw-sqlite-payments: WALLETS must be 1 to {WALLETS_MAX}");
            return ExitCode::FAILURE;
        }
    };
    match run(path, payments, wallets) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raw-sqlite-payments: {error}");
            ExitCode::FAILURE
        }
    }
}
