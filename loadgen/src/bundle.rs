//! `handover-bundle` and `handover-delta`: generated operator handover bundles
//! (`docs/HANDOVER.md`, version 1) for the import benchmark (`scripts/bench-handover`).
//!
//! A snapshot is a city's books as the outgoing operator would hand them over: citizens with
//! their wallets and month counters, merchants with what they are still owed, and a history
//! that explains every balance (`history_complete`). A delta, generated from a snapshot on disk,
//! changes some wallets with new history and carries the totals after it.
//!
//! The history is made of commands applied to a `wallet_core::Book` under the default policy
//! (`history.rs`): the bundle writes the history items, balances, month counters,
//! receivables and budget the book ends with, so every generated bundle follows the ledger's
//! rules by construction and is one the importer must accept. Files are written through
//! `handover_format::write` (streamed, hashed as they go); the rows are never held in memory.
//! A seed gives the same bytes every time.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use handover_format::bundle::{
    parse_citizen, parse_manifest, parse_merchant, parse_transaction, BundleKind, CitizenRow, Manifest, MerchantRow,
    Totals, CITIZENS_FILE, CITIZENS_HEADER, FORMAT, MANIFEST_FILE, MERCHANTS_FILE, MERCHANTS_HEADER, TRANSACTIONS_FILE,
    TRANSACTIONS_HEADER,
};
use handover_format::write::{write_manifest, Durability, HashedCsv, ManifestOut, WrittenFile};
use wallet_core::wallet::MonthCounters;
use wallet_core::{
    AccountKind, Amount, Book, BudgetState, Command, Counterparty, HistoryKind, MerchantId, MerchantState, Month,
    PaymentState, Policy, TxId, WalletId, WalletState, Won,
};

use crate::history::{pick_kind, write_history, Accounts, City, Ids, LastPayment};

const OPERATOR: &str = "Benchmark City Wallet Co. (generated)";

/// Bounds of the flags.
const CITIZENS_MAX: u64 = 10_000_000;
const MERCHANTS_MAX: u64 = 1_000_000;
const TRANSACTIONS_MAX: u64 = 100_000_000;
const PASSWORD_HASHES_MAX: u64 = 10_000;
/// A progress line on stderr every this many rows.
const PROGRESS_ROWS_EVERY: u64 = 500_000;
/// Wallets tried for one history event before giving up (every wallet full, or empty).
const WALLET_PICKS_MAX: u32 = 10_000;

/// What the city puts into the cashback budget before the history starts.
const CASHBACK_BUDGET_FUNDED_WON: i64 = 50_000_000_000;
const MERCHANT_CATEGORIES: [&str; 7] = ["grocery", "restaurant", "cafe", "bakery", "pharmacy", "books", ""];

/// Cheap argon2id parameters for the few real hashes: they exercise the column, not the CPU.
const ARGON2_MEMORY_KIB: u32 = 64;
const ARGON2_PASSES: u32 = 1;
const ARGON2_LANES: u32 = 1;

/// Citizens joined during 2025; the history runs from New Year 2026 to the snapshot. Each
/// business date is closed once the history passes it, but the last: its sales are what the
/// snapshot's merchants are still owed.
const CITIZENS_JOINED_FROM: &str = "2025-01-01T00:00:00+09:00";
const HISTORY_FROM: &str = "2026-01-01T00:00:00+09:00";
const SNAPSHOT_AS_OF: &str = "2026-11-20T00:00:00+09:00";
/// A delta covers the hour after the bundle it follows (no business date closes in it).
const DELTA_WINDOW_MS: i64 = 3_600_000;

/// `handover-bundle`: a snapshot bundle (sequence 0, complete history).
#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    /// Directory to write the bundle into; created, and must be empty if it exists.
    #[arg(long)]
    pub out: PathBuf,
    /// Citizens, one wallet each (1 to 10,000,000).
    #[arg(long, default_value_t = 930_000)]
    pub citizens: u64,
    /// Merchants (1 to 1,000,000).
    #[arg(long, default_value_t = 60_000)]
    pub merchants: u64,
    /// History rows in transactions.csv, exactly (0 to 100,000,000).
    #[arg(long, default_value_t = 3_000_000)]
    pub transactions: u64,
    /// Citizens with a real argon2id hash (spread evenly; a quarter as many merchants); the
    /// rest have an empty password_hash. 0 to 10,000.
    #[arg(long, default_value_t = 16)]
    pub password_hashes: u64,
    /// Same seed, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `handover-delta`: delta 1 of a snapshot this tool wrote.
#[derive(clap::Args, Debug)]
pub struct DeltaArgs {
    /// The snapshot bundle the delta follows.
    #[arg(long)]
    pub of: PathBuf,
    /// Directory to write the delta into; created, and must be empty if it exists.
    #[arg(long)]
    pub out: PathBuf,
    /// Wallets the delta changes (1 to the snapshot's citizens).
    #[arg(long, default_value_t = 10_000)]
    pub changed: u64,
    /// Same seed and snapshot, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

// ---------------------------------------------------------------------------------------------
// Times, ids and files.

fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("nine hours is a valid offset")
}

fn parse_time(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text).map_err(|error| format!("{text:?} is not an RFC 3339 time: {error}"))
}

fn utc(at_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at_ms).expect("generated times are in range")
}

/// RFC 3339 in KST: whole seconds, or milliseconds where there are any.
fn time_text(at_ms: i64) -> String {
    utc(at_ms).with_timezone(&kst()).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn citizen_id(index: usize) -> String {
    format!("cit-{index:07}")
}

fn wallet_id(index: usize) -> String {
    format!("wal-{index:07}")
}

fn merchant_id(index: usize) -> String {
    format!("mer-{index:06}")
}

fn snapshot_tx_id(row: u64) -> String {
    format!("tx-{row:08}")
}

fn snapshot_code(row: u64) -> String {
    format!("code-{row:08}")
}

fn delta_tx_id(sequence: u64, row: u64) -> String {
    format!("tx-d{sequence}-{row:06}")
}

/// Creates `dir`, which must not hold anything yet.
fn create_empty_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let mut entries = std::fs::read_dir(dir).map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    if entries.next().is_some() {
        return Err(format!("{} is not empty; write a bundle into a new directory", dir.display()));
    }
    Ok(())
}

/// Writes the manifest of a generated bundle (complete history) with `files` and `totals`.
fn write_generated_manifest(
    dir: &Path,
    kind: BundleKind,
    sequence: u64,
    as_of: DateTime<FixedOffset>,
    files: &[WrittenFile],
    totals: Totals,
) -> Result<(), String> {
    let manifest = ManifestOut { operator: OPERATOR, kind, sequence, as_of, history_complete: true, files, totals };
    write_manifest(dir, &manifest).map(|_sha256| ())
}

/// argon2id PHC strings of `handover-password-<i>` for `count` indexes `i` spread evenly over
/// `0..population`, with salts drawn from `seed`.
fn password_hashes(seed: u64, population: usize, count: usize, role: &str) -> Result<HashMap<usize, String>, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if count == 0 || population == 0 {
        return Ok(HashMap::new());
    }
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .map_err(|error| format!("argon2 parameters: {error}"))?;
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_a26f_0000_0001);
    let stride = (population / count.min(population)).max(1);
    let mut hashes = HashMap::new();
    for index in (0..population).step_by(stride).take(count) {
        let salt_bytes: [u8; 16] = std::array::from_fn(|_| rng.u8(..));
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| format!("argon2 salt: {error}"))?;
        let password = format!("handover-password-{index}");
        let hash = argon2
            .hash_password(password.as_bytes(), &salt)
            .map_err(|error| format!("cannot hash a {role}'s password: {error}"))?;
        hashes.insert(index, hash.to_string());
    }
    Ok(hashes)
}

fn progress(what: &str, rows: u64, total: u64, started: Instant) {
    let percent = if total == 0 { 100.0 } else { rows as f64 * 100.0 / total as f64 };
    eprintln!("{what}: {rows} / {total} rows ({percent:.0} %), {:.1} s", started.elapsed().as_secs_f64());
}

fn check_range(flag: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{flag} {value} is out of range: give {min} to {max}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The snapshot.

/// Writes a snapshot bundle; prints a summary line on stdout.
pub fn run_snapshot(args: SnapshotArgs) -> Result<(), String> {
    check_range("--citizens", args.citizens, 1, CITIZENS_MAX)?;
    check_range("--merchants", args.merchants, 1, MERCHANTS_MAX)?;
    check_range("--transactions", args.transactions, 0, TRANSACTIONS_MAX)?;
    check_range("--password-hashes", args.password_hashes, 0, PASSWORD_HASHES_MAX)?;
    let started = Instant::now();
    let summary = write_snapshot(&args, started)?;
    println!("{summary}");
    Ok(())
}

fn write_snapshot(args: &SnapshotArgs, started: Instant) -> Result<String, String> {
    let dir = args.out.as_path();
    create_empty_dir(dir)?;
    let mut city = snapshot_city(args.citizens as usize, args.merchants as usize)?;
    let mut rng = fastrand::Rng::with_seed(args.seed);

    // History first: the balances and counters in citizens.csv are where it ends.
    let transactions = write_snapshot_history(&mut city, &mut rng, dir, args.transactions, started)?;
    let as_of = parse_time(SNAPSHOT_AS_OF)?;
    let citizens_file = write_snapshot_citizens(&city, dir, args, Month::of(as_of.with_timezone(&Utc)))?;
    progress("citizens.csv", citizens_file.rows, args.citizens, started);
    let merchants_file = write_snapshot_merchants(&city, dir, args)?;
    progress("merchants.csv", merchants_file.rows, args.merchants, started);

    // The city's books hold every account: their trial balance totals zero, and the manifest's
    // totals are their sums.
    let trial_balance = city.trial_balance();
    trial_balance.check().map_err(|unbalanced| format!("the generated books do not balance: {unbalanced}"))?;
    let totals = Totals {
        citizen_balance_sum: trial_balance.balance(AccountKind::CitizenWallet),
        merchant_receivable_sum: trial_balance.balance(AccountKind::MerchantReceivable),
        cashback_budget_remaining: city.budget().remaining(),
    };
    let files = [citizens_file, merchants_file, transactions];
    write_generated_manifest(dir, BundleKind::Snapshot, 0, as_of, &files, totals)?;
    Ok(format!(
        "wrote snapshot 0 to {} in {:.1} s: citizens {}, merchants {}, transactions {}; \
         wallets {} won, receivables {} won, cashback budget remaining {} won",
        dir.display(),
        started.elapsed().as_secs_f64(),
        args.citizens,
        args.merchants,
        args.transactions,
        totals.citizen_balance_sum,
        totals.merchant_receivable_sum,
        totals.cashback_budget_remaining
    ))
}

/// A new city: `citizens` empty wallets and `merchants` merchants owed nothing, under the
/// default policy, and the cashback budget funded.
fn snapshot_city(citizens: usize, merchants: usize) -> Result<City, String> {
    let history_from = parse_time(HISTORY_FROM)?.with_timezone(&Utc);
    let mut book = Book::new(Policy::default());
    let top_up = Command::TopUpBudget {
        id: TxId::parse("budget-top-up").expect("a valid id"),
        amount: Amount::from_i64(CASHBACK_BUDGET_FUNDED_WON).expect("within the largest amount"),
    };
    book.apply(&top_up, history_from).map_err(|rejection| format!("the budget top-up was refused: {rejection}"))?;
    let wallet = |index| {
        let id = WalletId::parse(&wallet_id(index)).expect("a generated id is valid");
        (id, WalletState::new(Month::of(history_from)), None)
    };
    let merchant =
        |index| (MerchantId::parse(&merchant_id(index)).expect("a generated id is valid"), MerchantState::default());
    let accounts = Accounts {
        wallets: (0..citizens).map(wallet).collect(),
        merchants: (0..merchants).map(merchant).collect(),
        budget: book.budget(),
        system: book.system(),
    };
    Ok(City::new(Policy::default(), accounts))
}

/// Applies `total` rows' worth of history to `city` and writes transactions.csv: the rows'
/// instants spread evenly (whole seconds) from `HISTORY_FROM` to a second before the snapshot.
fn write_snapshot_history(
    city: &mut City,
    rng: &mut fastrand::Rng,
    dir: &Path,
    total: u64,
    started: Instant,
) -> Result<WrittenFile, String> {
    let history_from_ms = parse_time(HISTORY_FROM)?.timestamp_millis();
    let span_s = (parse_time(SNAPSHOT_AS_OF)?.timestamp_millis() - history_from_ms) / 1000 - 1;
    let ids = Ids { tx: &snapshot_tx_id, code: &snapshot_code };
    let citizens = city.wallets();
    let mut transactions = HashedCsv::create(dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    let mut next_progress = PROGRESS_ROWS_EVERY;
    while transactions.rows() < total {
        let row = transactions.rows();
        let at_ms = history_from_ms + (i128::from(row) * i128::from(span_s) / i128::from(total)) as i64 * 1000;
        let now = utc(at_ms);
        city.close_days_before(now)?;
        let kind = pick_kind(rng);
        let mut outcome = None;
        for _ in 0..WALLET_PICKS_MAX {
            let (wallet, partner) = (rng.usize(..citizens), rng.usize(..citizens));
            outcome = city.turn(rng, kind, wallet, partner, row, total - row, now, &ids)?;
            if outcome.is_some() {
                break;
            }
        }
        let outcome = outcome.ok_or_else(|| {
            format!(
                "no wallet could take part in history row {row} after {WALLET_PICKS_MAX} tries: \
                 too few citizens for so many transactions"
            )
        })?;
        write_history(&mut transactions, &outcome, &time_text(at_ms))?;
        if transactions.rows() >= next_progress {
            progress("transactions.csv", transactions.rows(), total, started);
            next_progress += PROGRESS_ROWS_EVERY;
        }
    }
    assert_eq!(transactions.rows(), total, "turns never write past the rows left");
    city.end_day();
    let transactions = transactions.finish(Durability::Flushed)?;
    progress("transactions.csv", transactions.rows, total, started);
    Ok(transactions)
}

/// citizens.csv: each wallet as the book ends it, its counters as of the snapshot's month.
fn write_snapshot_citizens(city: &City, dir: &Path, args: &SnapshotArgs, month: Month) -> Result<WrittenFile, String> {
    let citizens = city.wallets();
    let hashes = password_hashes(args.seed, citizens, args.password_hashes as usize, "citizen")?;
    let joined_from_ms = parse_time(CITIZENS_JOINED_FROM)?.timestamp_millis();
    let joined_span_ms = parse_time(HISTORY_FROM)?.timestamp_millis() - joined_from_ms;
    let mut out = HashedCsv::create(dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    for index in 0..citizens {
        let (id, wallet) = city.wallet(index);
        let counters = wallet.counters_in(month);
        let joined_ms = joined_from_ms + (index as i64 * (joined_span_ms / 1000) / citizens as i64) * 1000;
        out.row(&[
            &citizen_id(index),
            &format!("c{index:07}"),
            hashes.get(&index).map_or("", String::as_str),
            id.as_str(),
            &wallet.balance.to_string(),
            &counters.month.to_string(),
            &counters.charged.to_string(),
            &counters.eligible_spent.to_string(),
            &time_text(joined_ms),
        ])?;
    }
    out.finish(Durability::Flushed)
}

/// merchants.csv: each merchant with its receivable as the book ends it.
fn write_snapshot_merchants(city: &City, dir: &Path, args: &SnapshotArgs) -> Result<WrittenFile, String> {
    let merchants = args.merchants as usize;
    let hashes = password_hashes(args.seed ^ 1, merchants, (args.password_hashes as usize).div_ceil(4), "merchant")?;
    let mut out = HashedCsv::create(dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    for index in 0..merchants {
        let (id, merchant) = city.merchant(index);
        let receivable = merchant.receivable;
        // Every 1000th name has a comma and quotes, so the files need RFC 4180 quoting.
        let name =
            if index % 1000 == 7 { format!("Kim, Lee & \"Sons\" {index}") } else { format!("동네가게 {index}") };
        out.row(&[
            id.as_str(),
            &format!("m{index:06}"),
            hashes.get(&index).map_or("", String::as_str),
            &name,
            &format!("{:03}-{:02}-{:05}", 100 + index % 900, index / 900 % 100, index % 100_000),
            &format!("city-bank 110-{:03}-{:06}", index % 1000, index),
            MERCHANT_CATEGORIES[index % MERCHANT_CATEGORIES.len()],
            &receivable.to_string(),
        ])?;
    }
    out.finish(Durability::Flushed)
}

// ---------------------------------------------------------------------------------------------
// The delta.

/// Reads the manifest of the snapshot a delta follows, with the format's own parser.
fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let manifest = parse_manifest(&text).map_err(|refusal| format!("{}: {refusal}", dir.display()))?;
    if manifest.kind != BundleKind::Snapshot {
        return Err(format!(
            "{} is a {FORMAT} delta (sequence {}); a delta is generated from a snapshot",
            dir.display(),
            manifest.sequence
        ));
    }
    Ok(manifest)
}

/// Opens a bundle's CSV file and checks its header.
fn csv_reader(dir: &Path, name: &str, header: &[&str]) -> Result<csv::Reader<File>, String> {
    let path = dir.join(name);
    let file = File::open(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(file);
    let found = reader.headers().map_err(|error| format!("{name}: {error}"))?;
    if found.iter().ne(header.iter().copied()) {
        return Err(format!("{name}: the header is not {}", header.join(",")));
    }
    Ok(reader)
}

/// A changed citizen: its line and row in the snapshot's citizens.csv, as text and parsed.
struct ChangedCitizen {
    line: usize,
    record: csv::StringRecord,
    row: CitizenRow,
}

/// A merchant of the snapshot: its row as text and parsed.
struct SnapshotMerchant {
    record: csv::StringRecord,
    row: MerchantRow,
}

/// Writes delta 1 of the snapshot in `args.of`; prints a summary line on stdout.
pub fn run_delta(args: DeltaArgs) -> Result<(), String> {
    let started = Instant::now();
    let summary = write_delta(&args, started)?;
    println!("{summary}");
    Ok(())
}

fn write_delta(args: &DeltaArgs, started: Instant) -> Result<String, String> {
    let snapshot_dir = args.of.as_path();
    let manifest = read_manifest(snapshot_dir)?;
    let citizen_rows = manifest.files.get(CITIZENS_FILE).map_or(0, |file| file.rows);
    check_range("--changed", args.changed, 1, citizen_rows)?;
    let mut rng = fastrand::Rng::with_seed(args.seed ^ 0xde17_a000_0000_0001);
    let citizens = read_changed_citizens(snapshot_dir, &mut rng, citizen_rows, args.changed as usize)?;
    let merchants = read_merchants(snapshot_dir)?;
    let mut city = delta_city(snapshot_dir, &manifest, &citizens, &merchants, started)?;
    let sequence = 1;
    let dir = args.out.as_path();
    create_empty_dir(dir)?;
    let as_of_ms = manifest.as_of.timestamp_millis();
    let (transactions, merchants_touched) = write_delta_history(&mut city, &mut rng, dir, sequence, as_of_ms)?;
    let delta_as_of = parse_time(&time_text(as_of_ms + DELTA_WINDOW_MS))?;
    let citizens_file = write_delta_citizens(&city, dir, &citizens, Month::of(delta_as_of.with_timezone(&Utc)))?;
    let merchants_file = write_delta_merchants(&city, dir, &merchants, &merchants_touched)?;

    // The totals after the delta: the snapshot's, moved by what the book moved.
    let moved = |sum: Won, before: Won, after: Won| -> Result<Won, String> {
        sum.checked_add(after).and_then(|sum| sum.checked_sub(before)).map_err(|_| "totals overflow".to_owned())
    };
    let mut totals = manifest.totals;
    for (slot, citizen) in citizens.iter().enumerate() {
        let after = city.wallet(slot).1.balance;
        totals.citizen_balance_sum = moved(totals.citizen_balance_sum, citizen.row.balance, after)?;
    }
    for (index, merchant) in merchants.iter().enumerate() {
        let after = city.merchant(index).1.receivable;
        totals.merchant_receivable_sum = moved(totals.merchant_receivable_sum, merchant.row.receivable, after)?;
    }
    totals.cashback_budget_remaining = city.budget().remaining();
    let summary = format!(
        "wrote delta {sequence} of {} to {} in {:.1} s: citizens {}, merchants {}, transactions {}; \
         after it: wallets {} won, receivables {} won, cashback budget remaining {} won",
        snapshot_dir.display(),
        dir.display(),
        started.elapsed().as_secs_f64(),
        citizens_file.rows,
        merchants_file.rows,
        transactions.rows,
        totals.citizen_balance_sum,
        totals.merchant_receivable_sum,
        totals.cashback_budget_remaining
    );
    let files = [citizens_file, merchants_file, transactions];
    write_generated_manifest(dir, BundleKind::Delta, sequence, delta_as_of, &files, totals)?;
    Ok(summary)
}

/// The citizens a delta changes: `changed` lines of the snapshot's citizens.csv, a partial
/// shuffle drawn from `rng`, in the order drawn.
fn read_changed_citizens(
    snapshot_dir: &Path,
    rng: &mut fastrand::Rng,
    citizen_rows: u64,
    changed: usize,
) -> Result<Vec<ChangedCitizen>, String> {
    let mut lines: Vec<u32> = (0..u32::try_from(citizen_rows).map_err(|_| "too many citizens")?).collect();
    for index in 0..changed {
        let other = rng.usize(index..lines.len());
        lines.swap(index, other);
    }
    lines.truncate(changed);
    let slot_of_line: HashMap<u32, usize> = lines.iter().enumerate().map(|(slot, line)| (*line, slot)).collect();
    let mut citizens: Vec<Option<ChangedCitizen>> = (0..changed).map(|_| None).collect();
    let mut reader = csv_reader(snapshot_dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|error| format!("{CITIZENS_FILE}: {error}"))?;
        let Some(&slot) = u32::try_from(line).ok().and_then(|line| slot_of_line.get(&line)) else { continue };
        let fields: Vec<&str> = record.iter().collect();
        let row = parse_citizen(&fields).map_err(|reason| format!("{CITIZENS_FILE}: row {}: {reason}", line + 1))?;
        citizens[slot] = Some(ChangedCitizen { line, record, row });
    }
    citizens
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{CITIZENS_FILE} has fewer rows than its manifest says"))
}

fn read_merchants(snapshot_dir: &Path) -> Result<Vec<SnapshotMerchant>, String> {
    let mut merchants = Vec::new();
    let mut reader = csv_reader(snapshot_dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|error| format!("{MERCHANTS_FILE}: {error}"))?;
        let fields: Vec<&str> = record.iter().collect();
        let row = parse_merchant(&fields).map_err(|reason| format!("{MERCHANTS_FILE}: row {}: {reason}", line + 1))?;
        merchants.push(SnapshotMerchant { record, row });
    }
    Ok(merchants)
}

/// The city a delta is applied to, loaded as the importer would carry the snapshot: the changed
/// wallets with the bundle's balance and month counters (cashback earned this month is not in a
/// bundle: zero) and each one's last payment, every merchant with its receivable, and the
/// cashback budget left.
fn delta_city(
    snapshot_dir: &Path,
    manifest: &Manifest,
    citizens: &[ChangedCitizen],
    merchants: &[SnapshotMerchant],
    started: Instant,
) -> Result<City, String> {
    let transaction_rows = manifest.files.get(TRANSACTIONS_FILE).map_or(0, |file| file.rows);
    let last_payments = read_last_payments(snapshot_dir, citizens, transaction_rows, started)?;
    let wallets = citizens
        .iter()
        .zip(last_payments)
        .map(|(ChangedCitizen { row, .. }, last_payment)| {
            let counters = MonthCounters {
                month: row.month,
                charged: row.charged_this_month,
                eligible_spent: row.cashback_eligible_spent_this_month,
                cashback_earned: Won::ZERO,
                cashback_reversed: Won::ZERO,
                bonus_quota_used: Won::ZERO,
            };
            // A bundle of version 1 carries no purses: the importer carries each balance into
            // `own`, so a snapshot's wallets have an empty bonus purse there, and here.
            (
                row.wallet_id.clone(),
                WalletState { balance: row.balance, bonus: Won::ZERO, counters, locked: false },
                last_payment,
            )
        })
        .collect();
    let merchants = merchants
        .iter()
        .map(|SnapshotMerchant { row, .. }| {
            (row.merchant_id.clone(), MerchantState { receivable: row.receivable, ..Default::default() })
        })
        .collect();
    let remaining = manifest.totals.cashback_budget_remaining;
    let budget = BudgetState { funded: remaining, paid_out: Won::ZERO, reversed: Won::ZERO };
    Ok(City::new(Policy::default(), Accounts { wallets, merchants, budget, system: Default::default() }))
}

/// Each changed wallet's last payment in the snapshot, with what its refunds took back, as the
/// importer carries a payment: its eligible spend is not in the bundle (only the month's
/// counter is), so a refund of it gives none back.
fn read_last_payments(
    snapshot_dir: &Path,
    citizens: &[ChangedCitizen],
    transaction_rows: u64,
    started: Instant,
) -> Result<Vec<Option<LastPayment>>, String> {
    let slot_of_wallet: HashMap<&str, usize> =
        citizens.iter().enumerate().map(|(slot, citizen)| (citizen.row.wallet_id.as_str(), slot)).collect();
    let mut last: Vec<Option<LastPayment>> = vec![None; citizens.len()];
    let mut reader = csv_reader(snapshot_dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    let mut record = csv::StringRecord::new();
    let mut rows_read = 0u64;
    while reader.read_record(&mut record).map_err(|error| format!("{TRANSACTIONS_FILE}: {error}"))? {
        rows_read += 1;
        if rows_read % PROGRESS_ROWS_EVERY == 0 {
            progress("reading the snapshot's transactions.csv", rows_read, transaction_rows, started);
        }
        let Some(&slot) = slot_of_wallet.get(&record[3]) else { continue };
        let fields: Vec<&str> = record.iter().collect();
        let bad = |reason: String| format!("{TRANSACTIONS_FILE}: row {rows_read}: {reason}");
        let row = parse_transaction(&fields).map_err(bad)?;
        match row.kind {
            HistoryKind::Payment => {
                let (Some(wallet), Some(merchant)) = (row.wallet_id, row.merchant_id) else {
                    return Err(bad("a payment names no wallet or no merchant".to_owned()));
                };
                let amount = Amount::try_from(row.amount.negate()).map_err(|error| bad(error.to_string()))?;
                let at = row.at.with_timezone(&Utc);
                // As the importer carries it over (handover/import.rs).
                let payment = PaymentState::new(merchant, wallet, amount, row.cashback, Won::ZERO, at);
                last[slot] = Some((row.tx_id, payment));
            }
            HistoryKind::Refund | HistoryKind::CashbackReversal => {
                let Some((id, payment)) = last[slot].as_mut() else { continue };
                if row.related_tx_id.as_ref() != Some(id) {
                    continue;
                }
                // A refund is positive as the wallet sees it, its reversal negative.
                let (taken, won) = if row.kind == HistoryKind::Refund {
                    (&mut payment.refunded, row.amount)
                } else {
                    (&mut payment.cashback_reversed, row.amount.negate())
                };
                *taken = taken.checked_add(won).map_err(|_| bad("amounts overflow".to_owned()))?;
            }
            _ => {}
        }
    }
    Ok(last)
}

/// One or two turns of each changed wallet, spread evenly over the delta's hour, written as the
/// delta's transactions.csv; also the merchants a payment or refund went through.
fn write_delta_history(
    city: &mut City,
    rng: &mut fastrand::Rng,
    dir: &Path,
    sequence: u64,
    snapshot_as_of_ms: i64,
) -> Result<(WrittenFile, HashSet<MerchantId>), String> {
    let changed = city.wallets();
    let tx = |row: u64| delta_tx_id(sequence, row);
    let code = |row: u64| format!("code-d{sequence}-{row:06}");
    let ids = Ids { tx: &tx, code: &code };
    let mut transactions = HashedCsv::create(dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    let mut merchants_touched = HashSet::new();
    let events_max = 2 * changed as i64;
    let mut events = 0i64;
    for slot in 0..changed {
        let wallet_events = if rng.u32(..100) < 30 { 2 } else { 1 };
        for _ in 0..wallet_events {
            let at_ms = snapshot_as_of_ms + events * DELTA_WINDOW_MS / events_max;
            let partner = rng.usize(..changed);
            let kind = pick_kind(rng);
            let row = transactions.rows();
            // A wallet that can do nothing (empty, and charged up to the limit) just keeps its row.
            let Some(outcome) = city.turn(rng, kind, slot, partner, row, u64::MAX, utc(at_ms), &ids)? else { continue };
            events += 1;
            for item in &outcome.history {
                if let Some(Counterparty::Merchant(merchant)) = &item.counterparty {
                    merchants_touched.insert(merchant.clone());
                }
            }
            write_history(&mut transactions, &outcome, &time_text(at_ms))?;
        }
    }
    city.end_day();
    Ok((transactions.finish(Durability::Flushed)?, merchants_touched))
}

/// The changed citizens' rows, in the snapshot's order, with the balance and counters the book
/// ends with.
fn write_delta_citizens(
    city: &City,
    dir: &Path,
    citizens: &[ChangedCitizen],
    month: Month,
) -> Result<WrittenFile, String> {
    // The city's wallets are the changed citizens, in the order drawn.
    let mut order: Vec<usize> = (0..citizens.len()).collect();
    order.sort_by_key(|slot| citizens[*slot].line);
    let mut out = HashedCsv::create(dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    for slot in order {
        let record = &citizens[slot].record;
        let (_, wallet) = city.wallet(slot);
        let counters = wallet.counters_in(month);
        out.row(&[
            &record[0],
            &record[1],
            &record[2],
            &record[3],
            &wallet.balance.to_string(),
            &counters.month.to_string(),
            &counters.charged.to_string(),
            &counters.eligible_spent.to_string(),
            &record[8],
        ])?;
    }
    out.finish(Durability::Flushed)
}

/// The rows of the merchants a payment or refund went through, with their receivable after.
fn write_delta_merchants(
    city: &City,
    dir: &Path,
    merchants: &[SnapshotMerchant],
    touched: &HashSet<MerchantId>,
) -> Result<WrittenFile, String> {
    let mut out = HashedCsv::create(dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    // The city's merchants are the snapshot's, in its order.
    for (index, merchant) in merchants.iter().enumerate() {
        if !touched.contains(&merchant.row.merchant_id) {
            continue;
        }
        let record = &merchant.record;
        let (_, state) = city.merchant(index);
        let receivable = state.receivable.to_string();
        out.row(&[&record[0], &record[1], &record[2], &record[3], &record[4], &record[5], &record[6], &receivable])?;
    }
    out.finish(Durability::Flushed)
}

#[cfg(test)]
mod tests {
    use handover_format::bundle::{Bundle, Encoding};
    use sha2::{Digest, Sha256};

    use super::*;

    /// Reads a generated file back: its header and rows.
    fn read_rows(dir: &Path, name: &str) -> Vec<csv::StringRecord> {
        let mut reader = csv::Reader::from_path(dir.join(name)).expect("the file was written");
        reader.records().map(|record| record.expect("valid CSV")).collect()
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST_FILE)).expect("written")).expect("valid JSON")
    }

    fn won(text: &str) -> i64 {
        text.parse().expect("an amount")
    }

    /// Each file's rows and SHA-256 are the manifest's, and the importer's verification
    /// accepts the bundle; returns the history sums per wallet.
    fn check_files(dir: &Path) -> HashMap<String, i64> {
        let manifest = manifest(dir);
        for name in [CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE] {
            let bytes = std::fs::read(dir.join(name)).expect("written");
            assert_eq!(manifest["files"][name]["sha256"], hex::encode(Sha256::digest(&bytes)), "{name}");
            assert_eq!(manifest["files"][name]["rows"], read_rows(dir, name).len() as u64, "{name}");
        }
        Bundle::open(dir, Encoding::Utf8).verify(|_| Ok(())).expect("the importer's checks accept it");
        let mut history_won: HashMap<String, i64> = HashMap::new();
        for row in read_rows(dir, TRANSACTIONS_FILE) {
            *history_won.entry(row[3].to_owned()).or_default() += won(&row[5]);
            if &row[2] == "payment" {
                assert!(won(&row[5]) < 0 && !row[4].is_empty(), "a payment is negative, at a merchant: {row:?}");
            }
            if &row[2] == "refund" {
                assert!(won(&row[5]) > 0 && !row[7].is_empty(), "a refund is positive, of a payment: {row:?}");
            }
        }
        history_won
    }

    fn small_snapshot(out: PathBuf) -> SnapshotArgs {
        SnapshotArgs { out, citizens: 300, merchants: 12, transactions: 2_001, password_hashes: 3, seed: 7 }
    }

    #[test]
    fn a_small_snapshot_and_its_delta_add_up() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let snapshot = root.path().join("snapshot");
        write_snapshot(&small_snapshot(snapshot.clone()), Instant::now()).expect("a snapshot");

        let history_won = check_files(&snapshot);
        let citizens = read_rows(&snapshot, CITIZENS_FILE);
        assert_eq!(citizens.len(), 300);
        let mut balance_sum_won = 0;
        for row in &citizens {
            assert_eq!(history_won.get(&row[3]).copied().unwrap_or(0), won(&row[4]), "history_complete: {row:?}");
            balance_sum_won += won(&row[4]);
        }
        assert_eq!(citizens.iter().filter(|row| row[2].starts_with("$argon2id$v=19$m=64,t=1,p=1$")).count(), 3);
        let merchants = read_rows(&snapshot, MERCHANTS_FILE);
        assert_eq!(merchants.len(), 12);
        let receivable_sum_won: i64 = merchants.iter().map(|row| won(&row[7])).sum();
        let totals = &manifest(&snapshot)["totals"];
        assert_eq!(totals["citizen_balance_sum"], balance_sum_won.to_string());
        assert_eq!(totals["merchant_receivable_sum"], receivable_sum_won.to_string());
        let kinds: HashSet<String> =
            read_rows(&snapshot, TRANSACTIONS_FILE).iter().map(|row| row[2].to_owned()).collect();
        for kind in ["charge", "payment", "cashback", "refund", "cashback_reversal", "gift_in", "gift_out"] {
            assert!(kinds.contains(kind), "no {kind} in the history");
        }

        // The same seed writes the same bytes.
        let again = root.path().join("again");
        write_snapshot(&small_snapshot(again.clone()), Instant::now()).expect("a snapshot");
        assert_eq!(manifest(&snapshot), manifest(&again));

        let delta = root.path().join("delta");
        write_delta(&DeltaArgs { of: snapshot.clone(), out: delta.clone(), changed: 40, seed: 7 }, Instant::now())
            .expect("a delta");
        let delta_history_won = check_files(&delta);
        let changed = read_rows(&delta, CITIZENS_FILE);
        assert_eq!(changed.len(), 40);
        let before: HashMap<&str, i64> = citizens.iter().map(|row| (&row[3], won(&row[4]))).collect();
        let mut change_won = 0;
        for row in &changed {
            let moved_won = won(&row[4]) - before[&row[3]];
            assert_eq!(delta_history_won.get(&row[3]).copied().unwrap_or(0), moved_won, "history explains {row:?}");
            change_won += moved_won;
        }
        assert!(delta_history_won.keys().all(|wallet| changed.iter().any(|row| &row[3] == wallet)));
        let delta_totals = &manifest(&delta)["totals"];
        assert_eq!(delta_totals["citizen_balance_sum"], (balance_sum_won + change_won).to_string());
        let mut receivables: HashMap<String, i64> =
            merchants.iter().map(|row| (row[0].to_owned(), won(&row[7]))).collect();
        for row in read_rows(&delta, MERCHANTS_FILE) {
            receivables.insert(row[0].to_owned(), won(&row[7]));
        }
        assert_eq!(delta_totals["merchant_receivable_sum"], receivables.values().sum::<i64>().to_string());
        assert_eq!(manifest(&delta)["sequence"], 1);
    }
}
