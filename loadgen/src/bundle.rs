//! `handover-bundle` and `handover-delta`: generated operator handover bundles
//! (`docs/HANDOVER.md`, version 1) for the import benchmark (`scripts/bench-handover`).
//!
//! A snapshot is a city's books as the outgoing operator would hand them over: citizens with
//! their wallets and month counters, merchants with what they are still owed, and a history
//! that explains every balance (`history_complete`). A delta, generated from a snapshot on disk,
//! changes some wallets with new history and carries the totals after it.
//!
//! The history is simulated forward under the rules of wallet-core's `Book` with the default
//! policy, so that every generated bundle is one the importer must accept: a wallet never goes
//! below zero, charges respect the month's charge limit and the holding limit, a payment's
//! cashback follows the cap and the budget, a refund takes back at most its payment and reverses
//! its cashback. Output is streamed (files are hashed as they are written); only per-wallet and
//! per-merchant state is held, never the rows. A seed gives the same bytes every time.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat};
use handover_format::bundle::{
    parse_manifest, BundleKind, Manifest, CITIZENS_FILE, CITIZENS_HEADER, FORMAT, MANIFEST_FILE, MERCHANTS_FILE,
    MERCHANTS_HEADER, TRANSACTIONS_FILE, TRANSACTIONS_HEADER,
};
use handover_format::write::{write_manifest, Durability, HashedCsv, ManifestOut, WrittenFile};
use wallet_core::Won;

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

// The policy the history obeys: wallet-core's `Policy::default()` (a test checks they agree).
const CASHBACK_RATE_PERCENT: i64 = 10;
const CASHBACK_MONTHLY_SPEND_CAP_WON: i64 = 500_000;
const MONTHLY_CHARGE_LIMIT_WON: i64 = 2_000_000;
const HOLDING_LIMIT_WON: i64 = 3_000_000;
/// What the city put into the cashback budget before the history starts.
const CASHBACK_BUDGET_FUNDED_WON: i64 = 50_000_000_000;

const CHARGE_AMOUNTS_WON: [i64; 8] = [10_000, 20_000, 30_000, 50_000, 100_000, 200_000, 300_000, 500_000];
const GIFT_AMOUNTS_WON: [i64; 5] = [1_000, 5_000, 10_000, 20_000, 50_000];
/// Payments are whole hundreds of won, from 100 up to this (or the balance, if less).
const PAYMENT_AMOUNT_WON_MAX: i64 = 80_000;
/// Event kinds by weight (percent): what a citizen does when picked.
const KIND_WEIGHTS_PERCENT: [(Kind, u32); 4] =
    [(Kind::Charge, 28), (Kind::Payment, 55), (Kind::Gift, 10), (Kind::Refund, 7)];
const MERCHANT_CATEGORIES: [&str; 7] = ["grocery", "restaurant", "cafe", "bakery", "pharmacy", "books", ""];

/// Cheap argon2id parameters for the few real hashes: they exercise the column, not the CPU.
const ARGON2_MEMORY_KIB: u32 = 64;
const ARGON2_PASSES: u32 = 1;
const ARGON2_LANES: u32 = 1;

/// Citizens joined during 2025; the history runs from New Year 2026 to the snapshot.
const CITIZENS_JOINED_FROM: &str = "2025-01-01T00:00:00+09:00";
const HISTORY_FROM: &str = "2026-01-01T00:00:00+09:00";
const SNAPSHOT_AS_OF: &str = "2026-11-20T00:00:00+09:00";
/// Payments of the last day before a snapshot are not settled yet: they are the receivables.
const UNSETTLED_S: i64 = 86_400;
/// A delta covers the hour after the bundle it follows.
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
// The model of the books the history is simulated on.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Charge,
    Payment,
    Gift,
    Refund,
}

/// A month as `year * 12 + month - 1`, so consecutive months are consecutive numbers.
type MonthKey = i32;

/// A wallet's month counters (wallet-core's `MonthCounters`, without what the bundle omits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    month: MonthKey,
    charged_won: i64,
    eligible_spent_won: i64,
}

impl Counters {
    /// The counters as of `month`: a new month starts from zero.
    fn in_month(self, month: MonthKey) -> Counters {
        if self.month == month {
            self
        } else {
            Counters { month, charged_won: 0, eligible_spent_won: 0 }
        }
    }
}

/// What a wallet's last payment leaves for a later refund of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PaymentMemo {
    /// The payment's id, as the caller numbers them (a row in the snapshot, a table in a delta).
    key: u32,
    merchant: u32,
    amount_won: i64,
    cashback_won: i64,
    /// Eligible spend; 0 for a payment carried over (the bundle does not carry it).
    eligible_won: i64,
    month: MonthKey,
    /// Made after the last settlement: it is in the merchant's receivable.
    unsettled: bool,
    refunded_won: i64,
    cashback_reversed_won: i64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Wallet {
    balance_won: i64,
    counters: Counters,
    last_payment: Option<PaymentMemo>,
}

/// One history event: one or two rows of transactions.csv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Charge {
        wallet: usize,
        amount_won: i64,
    },
    /// A payment; with cashback a second row credits it.
    Payment {
        wallet: usize,
        merchant: usize,
        amount_won: i64,
        eligible_won: i64,
        cashback_won: i64,
    },
    /// A gift: the sender's `gift_out` and the receiver's `gift_in`.
    Gift {
        from: usize,
        to: usize,
        amount_won: i64,
    },
    /// A refund of all that is left of the wallet's last payment; a second row reverses the rest
    /// of its cashback.
    Refund {
        wallet: usize,
        payment: PaymentMemo,
        amount_won: i64,
        reversal_won: i64,
    },
}

impl Event {
    fn rows(&self) -> u64 {
        match self {
            Event::Charge { .. } => 1,
            Event::Payment { cashback_won, .. } => 1 + u64::from(*cashback_won > 0),
            Event::Gift { .. } => 2,
            Event::Refund { reversal_won, .. } => 1 + u64::from(*reversal_won > 0),
        }
    }
}

/// Balances, receivables and the budget as the history goes.
struct Model {
    wallets: Vec<Wallet>,
    receivables_won: Vec<i64>,
    budget_remaining_won: i64,
}

impl Model {
    /// What `wallet` does at `month` on a roll of `kind`, or `None` when it can do none of it
    /// (nor a charge or a payment instead). `rows_left` bounds the rows the event may write;
    /// `partner` is the other wallet of a gift.
    fn plan(
        &self,
        rng: &mut fastrand::Rng,
        kind: Kind,
        wallet: usize,
        partner: usize,
        month: MonthKey,
        rows_left: u64,
    ) -> Option<Event> {
        let fallbacks = [kind, Kind::Charge, Kind::Payment];
        fallbacks.into_iter().find_map(|kind| self.plan_kind(rng, kind, wallet, partner, month, rows_left))
    }

    fn plan_kind(
        &self,
        rng: &mut fastrand::Rng,
        kind: Kind,
        wallet_index: usize,
        partner: usize,
        month: MonthKey,
        rows_left: u64,
    ) -> Option<Event> {
        let wallet = &self.wallets[wallet_index];
        let event = match kind {
            Kind::Charge => {
                let counters = wallet.counters.in_month(month);
                let room_won =
                    (MONTHLY_CHARGE_LIMIT_WON - counters.charged_won).min(HOLDING_LIMIT_WON - wallet.balance_won);
                let wanted_won = CHARGE_AMOUNTS_WON[rng.usize(..CHARGE_AMOUNTS_WON.len())];
                // The largest allowed amount up to the one drawn.
                let amount_won =
                    CHARGE_AMOUNTS_WON.iter().copied().filter(|amount| *amount <= wanted_won.min(room_won)).max()?;
                Event::Charge { wallet: wallet_index, amount_won }
            }
            Kind::Payment => {
                let hundreds_max = wallet.balance_won.min(PAYMENT_AMOUNT_WON_MAX) / 100;
                if hundreds_max == 0 {
                    return None;
                }
                let amount_won = rng.i64(1..=hundreds_max) * 100;
                let counters = wallet.counters.in_month(month);
                let eligible_won = amount_won.min(CASHBACK_MONTHLY_SPEND_CAP_WON - counters.eligible_spent_won);
                let mut cashback_won = (eligible_won * CASHBACK_RATE_PERCENT / 100).min(self.budget_remaining_won);
                if rows_left < 2 {
                    cashback_won = 0;
                }
                let merchants = self.receivables_won.len();
                // A few merchants take most payments: the square of a uniform draw.
                let draw = rng.f64();
                let merchant = ((draw * draw * merchants as f64) as usize).min(merchants - 1);
                Event::Payment { wallet: wallet_index, merchant, amount_won, eligible_won, cashback_won }
            }
            Kind::Gift => {
                if rows_left < 2 || partner == wallet_index {
                    return None;
                }
                let receiver = &self.wallets[partner];
                let wanted_won = GIFT_AMOUNTS_WON[rng.usize(..GIFT_AMOUNTS_WON.len())];
                let room_won = wallet.balance_won.min(HOLDING_LIMIT_WON - receiver.balance_won);
                let amount_won =
                    GIFT_AMOUNTS_WON.iter().copied().filter(|amount| *amount <= wanted_won.min(room_won)).max()?;
                Event::Gift { from: wallet_index, to: partner, amount_won }
            }
            Kind::Refund => {
                let payment = wallet.last_payment?;
                let amount_won = payment.amount_won - payment.refunded_won;
                let reversal_won = payment.cashback_won - payment.cashback_reversed_won;
                if amount_won <= 0 || (reversal_won > 0 && rows_left < 2) {
                    return None;
                }
                Event::Refund { wallet: wallet_index, payment, amount_won, reversal_won }
            }
        };
        debug_assert!(event.rows() <= rows_left);
        Some(event)
    }

    /// Applies a planned event. A payment is remembered under `payment_key`, as `unsettled`
    /// when it is made after the last settlement.
    fn apply(&mut self, event: &Event, month: MonthKey, payment_key: u32, unsettled: bool) {
        match *event {
            Event::Charge { wallet, amount_won } => {
                let wallet = &mut self.wallets[wallet];
                wallet.counters = wallet.counters.in_month(month);
                wallet.counters.charged_won += amount_won;
                wallet.balance_won += amount_won;
                assert!(wallet.counters.charged_won <= MONTHLY_CHARGE_LIMIT_WON, "charge above the month's limit");
                assert!(wallet.balance_won <= HOLDING_LIMIT_WON, "charge above the holding limit");
            }
            Event::Payment { wallet, merchant, amount_won, eligible_won, cashback_won } => {
                self.budget_remaining_won -= cashback_won;
                assert!(self.budget_remaining_won >= 0, "cashback budget below zero");
                if unsettled {
                    self.receivables_won[merchant] += amount_won;
                }
                let wallet = &mut self.wallets[wallet];
                wallet.counters = wallet.counters.in_month(month);
                wallet.counters.eligible_spent_won += eligible_won;
                wallet.balance_won += cashback_won - amount_won;
                assert!(wallet.balance_won >= 0, "payment above the balance");
                assert!(wallet.counters.eligible_spent_won <= CASHBACK_MONTHLY_SPEND_CAP_WON);
                wallet.last_payment = Some(PaymentMemo {
                    key: payment_key,
                    merchant: u32::try_from(merchant).expect("merchants are bounded by MERCHANTS_MAX"),
                    amount_won,
                    cashback_won,
                    eligible_won,
                    month,
                    unsettled,
                    refunded_won: 0,
                    cashback_reversed_won: 0,
                });
            }
            Event::Gift { from, to, amount_won } => {
                self.wallets[from].balance_won -= amount_won;
                self.wallets[to].balance_won += amount_won;
                assert!(self.wallets[from].balance_won >= 0, "gift above the balance");
                assert!(self.wallets[to].balance_won <= HOLDING_LIMIT_WON, "gift above the holding limit");
            }
            Event::Refund { wallet, payment, amount_won, reversal_won } => {
                self.budget_remaining_won += reversal_won;
                if payment.unsettled {
                    self.receivables_won[payment.merchant as usize] -= amount_won;
                }
                let wallet = &mut self.wallets[wallet];
                wallet.balance_won += amount_won - reversal_won;
                // Eligible spend comes back only while the payment's month lasts.
                wallet.counters = wallet.counters.in_month(month);
                if payment.month == month {
                    wallet.counters.eligible_spent_won -= payment.eligible_won;
                }
                let memo = wallet.last_payment.as_mut().expect("a refund is of the last payment");
                memo.refunded_won += amount_won;
                memo.cashback_reversed_won += reversal_won;
                assert!(memo.refunded_won <= memo.amount_won, "refunds above their payment");
                assert!(memo.cashback_reversed_won <= memo.cashback_won, "reversals above the cashback");
                assert!(wallet.balance_won >= 0 && wallet.counters.eligible_spent_won >= 0);
            }
        }
    }

    fn balance_sum_won(&self) -> i64 {
        self.wallets.iter().map(|wallet| wallet.balance_won).sum()
    }

    fn receivable_sum_won(&self) -> i64 {
        self.receivables_won.iter().sum()
    }
}

fn pick_kind(rng: &mut fastrand::Rng) -> Kind {
    let total: u32 = KIND_WEIGHTS_PERCENT.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.u32(..total);
    for (kind, weight) in KIND_WEIGHTS_PERCENT {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the sum of the weights")
}

// ---------------------------------------------------------------------------------------------
// Times, ids and rows.

fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("nine hours is a valid offset")
}

fn parse_time(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text).map_err(|error| format!("{text:?} is not an RFC 3339 time: {error}"))
}

/// The KST month of an instant in Unix milliseconds.
fn month_of_ms(at_ms: i64) -> MonthKey {
    let at = DateTime::from_timestamp_millis(at_ms).expect("generated times are in range").with_timezone(&kst());
    at.year() * 12 + at.month0() as i32
}

fn month_text(month: MonthKey) -> String {
    format!("{:04}-{:02}", month.div_euclid(12), month.rem_euclid(12) + 1)
}

fn parse_month(text: &str) -> Result<MonthKey, String> {
    let bad = || format!("month {text:?} is not YYYY-MM");
    let (year, month) = text.split_once('-').ok_or_else(bad)?;
    let year: i32 = year.parse().map_err(|_| bad())?;
    let month: i32 = month.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) {
        return Err(bad());
    }
    Ok(year * 12 + month - 1)
}

/// RFC 3339 in KST: whole seconds, or milliseconds where there are any.
fn time_text(at_ms: i64) -> String {
    let at = DateTime::from_timestamp_millis(at_ms).expect("generated times are in range").with_timezone(&kst());
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
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

fn delta_tx_id(sequence: u64, row: u64) -> String {
    format!("tx-d{sequence}-{row:06}")
}

/// How an event's ids are written: the bundle's n-th history row, a wallet, a merchant and a
/// remembered payment, each as the bundle names them.
struct Names<'a> {
    tx: &'a dyn Fn(u64) -> String,
    wallet: &'a dyn Fn(usize) -> String,
    merchant: &'a dyn Fn(usize) -> String,
    payment: &'a dyn Fn(u32) -> String,
}

/// Writes an event's rows, the first as history row `row` of the bundle.
fn write_event(out: &mut HashedCsv, event: &Event, row: u64, at: &str, names: &Names) -> Result<(), String> {
    match *event {
        Event::Charge { wallet, amount_won } => {
            out.row(&[&(names.tx)(row), at, "charge", &(names.wallet)(wallet), "", &amount_won.to_string(), "", ""])
        }
        Event::Payment { wallet, merchant, amount_won, cashback_won, .. } => {
            let payment_id = (names.tx)(row);
            let (wallet, merchant) = ((names.wallet)(wallet), (names.merchant)(merchant));
            out.row(&[
                &payment_id,
                at,
                "payment",
                &wallet,
                &merchant,
                &(-amount_won).to_string(),
                &cashback_won.to_string(),
                "",
            ])?;
            if cashback_won > 0 {
                out.row(&[
                    &(names.tx)(row + 1),
                    at,
                    "cashback",
                    &wallet,
                    &merchant,
                    &cashback_won.to_string(),
                    "",
                    &payment_id,
                ])?;
            }
            Ok(())
        }
        Event::Gift { from, to, amount_won } => {
            out.row(&[
                &(names.tx)(row),
                at,
                "gift_out",
                &(names.wallet)(from),
                "",
                &(-amount_won).to_string(),
                "",
                "",
            ])?;
            out.row(&[&(names.tx)(row + 1), at, "gift_in", &(names.wallet)(to), "", &amount_won.to_string(), "", ""])
        }
        Event::Refund { wallet, payment, amount_won, reversal_won } => {
            let payment_id = (names.payment)(payment.key);
            let (wallet, merchant) = ((names.wallet)(wallet), (names.merchant)(payment.merchant as usize));
            out.row(&[&(names.tx)(row), at, "refund", &wallet, &merchant, &amount_won.to_string(), "", &payment_id])?;
            if reversal_won > 0 {
                out.row(&[
                    &(names.tx)(row + 1),
                    at,
                    "cashback_reversal",
                    &wallet,
                    &merchant,
                    &(-reversal_won).to_string(),
                    "",
                    &payment_id,
                ])?;
            }
            Ok(())
        }
    }
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

struct Totals {
    citizen_balance_sum_won: i64,
    merchant_receivable_sum_won: i64,
    cashback_budget_remaining_won: i64,
}

/// Writes the manifest of a generated bundle (complete history) with `files` and `totals`.
fn write_generated_manifest(
    dir: &Path,
    kind: BundleKind,
    sequence: u64,
    as_of: DateTime<FixedOffset>,
    files: &[WrittenFile],
    totals: &Totals,
) -> Result<(), String> {
    let manifest = ManifestOut {
        operator: OPERATOR,
        kind,
        sequence,
        as_of,
        history_complete: true,
        files,
        totals: handover_format::bundle::Totals {
            citizen_balance_sum: Won::from_i64(totals.citizen_balance_sum_won),
            merchant_receivable_sum: Won::from_i64(totals.merchant_receivable_sum_won),
            cashback_budget_remaining: Won::from_i64(totals.cashback_budget_remaining_won),
        },
    };
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

fn check_range(flag: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{flag} {value} is out of range: give {min} to {max}"))
    }
}

fn write_snapshot(args: &SnapshotArgs, started: Instant) -> Result<String, String> {
    let citizens = args.citizens as usize;
    let merchants = args.merchants as usize;
    let dir = args.out.as_path();
    create_empty_dir(dir)?;
    let as_of_ms = parse_time(SNAPSHOT_AS_OF)?.timestamp_millis();
    let history_from_ms = parse_time(HISTORY_FROM)?.timestamp_millis();
    let settled_before_ms = as_of_ms - UNSETTLED_S * 1000;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut model = Model {
        wallets: vec![Wallet::default(); citizens],
        receivables_won: vec![0; merchants],
        budget_remaining_won: CASHBACK_BUDGET_FUNDED_WON,
    };

    // History first: the balances and counters in citizens.csv are where it ends.
    let mut transactions = HashedCsv::create(dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    let names = Names {
        tx: &snapshot_tx_id,
        wallet: &wallet_id,
        merchant: &merchant_id,
        payment: &|key| snapshot_tx_id(key.into()),
    };
    let total = args.transactions;
    // Whole seconds, spread evenly up to a second before the snapshot.
    let span_s = (as_of_ms - history_from_ms) / 1000 - 1;
    let mut next_progress = PROGRESS_ROWS_EVERY;
    while transactions.rows() < total {
        let row = transactions.rows();
        let at_ms = history_from_ms + (i128::from(row) * i128::from(span_s) / i128::from(total)) as i64 * 1000;
        let month = month_of_ms(at_ms);
        let rows_left = total - row;
        let kind = pick_kind(&mut rng);
        let event = (0..WALLET_PICKS_MAX)
            .find_map(|_| {
                let wallet = rng.usize(..citizens);
                let partner = rng.usize(..citizens);
                model.plan(&mut rng, kind, wallet, partner, month, rows_left)
            })
            .ok_or_else(|| {
                format!(
                    "no wallet could take part in history row {row} after {WALLET_PICKS_MAX} tries: \
                     too few citizens for so many transactions"
                )
            })?;
        let payment_key = u32::try_from(row).expect("rows are bounded by TRANSACTIONS_MAX");
        model.apply(&event, month, payment_key, at_ms >= settled_before_ms);
        write_event(&mut transactions, &event, row, &time_text(at_ms), &names)?;
        if transactions.rows() >= next_progress {
            progress("transactions.csv", transactions.rows(), total, started);
            next_progress += PROGRESS_ROWS_EVERY;
        }
    }
    assert_eq!(transactions.rows(), total, "events never write past the rows left");
    let transactions = transactions.finish(Durability::Flushed)?;
    progress("transactions.csv", transactions.rows, total, started);

    let citizen_hashes = password_hashes(args.seed, citizens, args.password_hashes as usize, "citizen")?;
    let joined_from_ms = parse_time(CITIZENS_JOINED_FROM)?.timestamp_millis();
    let joined_span_ms = history_from_ms - joined_from_ms;
    let as_of_month = month_of_ms(as_of_ms);
    let mut out = HashedCsv::create(dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    for (index, wallet) in model.wallets.iter().enumerate() {
        let counters = wallet.counters.in_month(as_of_month);
        let joined_ms = joined_from_ms + (index as i64 * (joined_span_ms / 1000) / citizens as i64) * 1000;
        out.row(&[
            &citizen_id(index),
            &format!("c{index:07}"),
            citizen_hashes.get(&index).map_or("", String::as_str),
            &wallet_id(index),
            &wallet.balance_won.to_string(),
            &month_text(counters.month),
            &counters.charged_won.to_string(),
            &counters.eligible_spent_won.to_string(),
            &time_text(joined_ms),
        ])?;
    }
    let citizens_file = out.finish(Durability::Flushed)?;
    progress("citizens.csv", citizens_file.rows, args.citizens, started);

    let merchant_hashes =
        password_hashes(args.seed ^ 1, merchants, (args.password_hashes as usize).div_ceil(4), "merchant")?;
    let mut out = HashedCsv::create(dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    for (index, receivable_won) in model.receivables_won.iter().enumerate() {
        // Every 1000th name has a comma and quotes, so the files need RFC 4180 quoting.
        let name =
            if index % 1000 == 7 { format!("Kim, Lee & \"Sons\" {index}") } else { format!("동네가게 {index}") };
        out.row(&[
            &merchant_id(index),
            &format!("m{index:06}"),
            merchant_hashes.get(&index).map_or("", String::as_str),
            &name,
            &format!("{:03}-{:02}-{:05}", 100 + index % 900, index / 900 % 100, index % 100_000),
            &format!("city-bank 110-{:03}-{:06}", index % 1000, index),
            MERCHANT_CATEGORIES[index % MERCHANT_CATEGORIES.len()],
            &receivable_won.to_string(),
        ])?;
    }
    let merchants_file = out.finish(Durability::Flushed)?;
    progress("merchants.csv", merchants_file.rows, args.merchants, started);

    let totals = Totals {
        citizen_balance_sum_won: model.balance_sum_won(),
        merchant_receivable_sum_won: model.receivable_sum_won(),
        cashback_budget_remaining_won: model.budget_remaining_won,
    };
    let files = [citizens_file, merchants_file, transactions];
    write_generated_manifest(dir, BundleKind::Snapshot, 0, parse_time(SNAPSHOT_AS_OF)?, &files, &totals)?;
    Ok(format!(
        "wrote snapshot 0 to {} in {:.1} s: citizens {}, merchants {}, transactions {}; \
         wallets {} won, receivables {} won, cashback budget remaining {} won",
        dir.display(),
        started.elapsed().as_secs_f64(),
        args.citizens,
        args.merchants,
        args.transactions,
        totals.citizen_balance_sum_won,
        totals.merchant_receivable_sum_won,
        totals.cashback_budget_remaining_won
    ))
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

/// A figure of a manifest as whole won in an `i64`.
fn manifest_won(what: &str, won: Won) -> Result<i64, String> {
    won.to_i64().ok_or_else(|| format!("the manifest's {what} {won} is beyond what this generator adds up"))
}

fn parse_won(what: &str, text: &str) -> Result<i64, String> {
    text.parse().map_err(|_| format!("{what} {text:?} is not a whole number of won"))
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

/// A changed citizen: its line and row in the snapshot's citizens.csv.
struct ChangedCitizen {
    line: usize,
    record: csv::StringRecord,
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
    let changed = args.changed as usize;
    let as_of = manifest.as_of;
    let snapshot_as_of_ms = as_of.timestamp_millis();
    let settled_before_ms = snapshot_as_of_ms - UNSETTLED_S * 1000;
    let mut rng = fastrand::Rng::with_seed(args.seed ^ 0xde17_a000_0000_0001);

    // Which citizens change: a partial shuffle of the lines of citizens.csv.
    let mut lines: Vec<u32> = (0..u32::try_from(citizen_rows).map_err(|_| "too many citizens")?).collect();
    for index in 0..changed {
        let other = rng.usize(index..lines.len());
        lines.swap(index, other);
    }
    lines.truncate(changed);
    let slot_of_line: HashMap<u32, usize> = lines.iter().enumerate().map(|(slot, line)| (*line, slot)).collect();

    let mut wallets = vec![Wallet::default(); changed];
    let mut citizens: Vec<Option<ChangedCitizen>> = (0..changed).map(|_| None).collect();
    let mut reader = csv_reader(snapshot_dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|error| format!("{CITIZENS_FILE}: {error}"))?;
        let Some(&slot) = u32::try_from(line).ok().and_then(|line| slot_of_line.get(&line)) else { continue };
        wallets[slot] = Wallet {
            balance_won: parse_won("balance", &record[4])?,
            counters: Counters {
                month: parse_month(&record[5])?,
                charged_won: parse_won("charged_this_month", &record[6])?,
                eligible_spent_won: parse_won("cashback_eligible_spent_this_month", &record[7])?,
            },
            last_payment: None,
        };
        citizens[slot] = Some(ChangedCitizen { line, record });
    }
    let citizens: Vec<ChangedCitizen> = citizens
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{CITIZENS_FILE} has fewer rows than its manifest says"))?;
    let balances_before_won: Vec<i64> = wallets.iter().map(|wallet| wallet.balance_won).collect();
    let slot_of_wallet: HashMap<String, usize> =
        citizens.iter().enumerate().map(|(slot, citizen)| (citizen.record[3].to_owned(), slot)).collect();

    let mut merchant_records = Vec::new();
    let mut receivables_won = Vec::new();
    let mut reader = csv_reader(snapshot_dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    for record in reader.records() {
        let record = record.map_err(|error| format!("{MERCHANTS_FILE}: {error}"))?;
        receivables_won.push(parse_won("receivable", &record[7])?);
        merchant_records.push(record);
    }
    let merchant_of_id: HashMap<String, usize> =
        merchant_records.iter().enumerate().map(|(index, record)| (record[0].to_owned(), index)).collect();

    // Each changed wallet's last payment in the snapshot, and what was refunded of it.
    let mut payment_ids: Vec<String> = Vec::new();
    let mut reader = csv_reader(snapshot_dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    let mut record = csv::StringRecord::new();
    let mut rows_read = 0u64;
    let transaction_rows = manifest.files.get(TRANSACTIONS_FILE).map_or(0, |file| file.rows);
    while reader.read_record(&mut record).map_err(|error| format!("{TRANSACTIONS_FILE}: {error}"))? {
        rows_read += 1;
        if rows_read % PROGRESS_ROWS_EVERY == 0 {
            progress("reading the snapshot's transactions.csv", rows_read, transaction_rows, started);
        }
        let Some(&slot) = slot_of_wallet.get(&record[3]) else { continue };
        let wallet = &mut wallets[slot];
        match &record[2] {
            "payment" => {
                let merchant = *merchant_of_id
                    .get(&record[4])
                    .ok_or_else(|| format!("payment {:?} names an unknown merchant", &record[0]))?;
                let at_ms = parse_time(&record[1])?.timestamp_millis();
                wallet.last_payment = Some(PaymentMemo {
                    key: u32::try_from(payment_ids.len()).map_err(|_| "too many payments")?,
                    merchant: u32::try_from(merchant).map_err(|_| "too many merchants")?,
                    amount_won: -parse_won("amount", &record[5])?,
                    cashback_won: if record[6].is_empty() { 0 } else { parse_won("cashback", &record[6])? },
                    eligible_won: 0,
                    month: month_of_ms(at_ms),
                    unsettled: at_ms >= settled_before_ms,
                    refunded_won: 0,
                    cashback_reversed_won: 0,
                });
                payment_ids.push(record[0].to_owned());
            }
            "refund" | "cashback_reversal" => {
                let Some(memo) = wallet.last_payment.as_mut() else { continue };
                if payment_ids[memo.key as usize] != record[7] {
                    continue;
                }
                let amount_won = parse_won("amount", &record[5])?;
                if &record[2] == "refund" {
                    memo.refunded_won += amount_won;
                } else {
                    memo.cashback_reversed_won -= amount_won;
                }
            }
            _ => {}
        }
    }

    let mut model = Model {
        wallets,
        receivables_won,
        budget_remaining_won: manifest_won("cashback_budget_remaining", manifest.totals.cashback_budget_remaining)?,
    };
    let merchants_before_won = model.receivables_won.clone();
    let sequence = 1;
    let dir = args.out.as_path();
    create_empty_dir(dir)?;
    let mut transactions = HashedCsv::create(dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    // One or two events per changed wallet, spread evenly over the delta's window.
    let events_max = 2 * changed as i64;
    let mut events = 0i64;
    let mut merchants_touched = vec![false; model.receivables_won.len()];
    for slot in 0..changed {
        let wallet_events = if rng.u32(..100) < 30 { 2 } else { 1 };
        for _ in 0..wallet_events {
            let at_ms = snapshot_as_of_ms + events * DELTA_WINDOW_MS / events_max;
            let month = month_of_ms(at_ms);
            let partner = rng.usize(..changed);
            let kind = pick_kind(&mut rng);
            // A wallet that can do nothing (empty, and charged up to the limit) just keeps its row.
            let Some(event) = model.plan(&mut rng, kind, slot, partner, month, u64::MAX) else { continue };
            events += 1;
            let payment_key = u32::try_from(payment_ids.len()).map_err(|_| "too many payments")?;
            let row = transactions.rows();
            if let Event::Payment { merchant, .. } = event {
                merchants_touched[merchant] = true;
                payment_ids.push(delta_tx_id(sequence, row));
            }
            if let Event::Refund { payment, .. } = event {
                merchants_touched[payment.merchant as usize] = true;
            }
            model.apply(&event, month, payment_key, at_ms >= settled_before_ms);
            let wallet_name = |slot: usize| citizens[slot].record[3].to_owned();
            let merchant_name = |index: usize| merchant_records[index][0].to_owned();
            let payment_name = |key: u32| payment_ids[key as usize].clone();
            let tx_name = |row: u64| delta_tx_id(sequence, row);
            let names = Names { tx: &tx_name, wallet: &wallet_name, merchant: &merchant_name, payment: &payment_name };
            write_event(&mut transactions, &event, row, &time_text(at_ms), &names)?;
        }
    }
    let transactions = transactions.finish(Durability::Flushed)?;

    // Changed rows in the snapshot's order, with the new balance and counters.
    let mut order: Vec<usize> = (0..changed).collect();
    order.sort_by_key(|slot| citizens[*slot].line);
    let mut out = HashedCsv::create(dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    for slot in order {
        let record = &citizens[slot].record;
        let wallet = &model.wallets[slot];
        out.row(&[
            &record[0],
            &record[1],
            &record[2],
            &record[3],
            &wallet.balance_won.to_string(),
            &month_text(wallet.counters.month),
            &wallet.counters.charged_won.to_string(),
            &wallet.counters.eligible_spent_won.to_string(),
            &record[8],
        ])?;
    }
    let citizens_file = out.finish(Durability::Flushed)?;

    let mut out = HashedCsv::create(dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    for (index, record) in merchant_records.iter().enumerate().filter(|(index, _)| merchants_touched[*index]) {
        let receivable = model.receivables_won[index].to_string();
        out.row(&[&record[0], &record[1], &record[2], &record[3], &record[4], &record[5], &record[6], &receivable])?;
    }
    let merchants_file = out.finish(Durability::Flushed)?;

    let balance_change_won: i64 = model.balance_sum_won() - balances_before_won.iter().sum::<i64>();
    let receivable_change_won = model.receivable_sum_won() - merchants_before_won.iter().sum::<i64>();
    let totals = Totals {
        citizen_balance_sum_won: manifest_won("citizen_balance_sum", manifest.totals.citizen_balance_sum)?
            + balance_change_won,
        merchant_receivable_sum_won: manifest_won("merchant_receivable_sum", manifest.totals.merchant_receivable_sum)?
            + receivable_change_won,
        cashback_budget_remaining_won: model.budget_remaining_won,
    };
    let delta_as_of = parse_time(&time_text(snapshot_as_of_ms + DELTA_WINDOW_MS))?;
    let summary = format!(
        "wrote delta {sequence} of {} to {} in {:.1} s: citizens {}, merchants {}, transactions {}; \
         after it: wallets {} won, receivables {} won, cashback budget remaining {} won",
        snapshot_dir.display(),
        dir.display(),
        started.elapsed().as_secs_f64(),
        citizens_file.rows,
        merchants_file.rows,
        transactions.rows,
        totals.citizen_balance_sum_won,
        totals.merchant_receivable_sum_won,
        totals.cashback_budget_remaining_won
    );
    let files = [citizens_file, merchants_file, transactions];
    write_generated_manifest(dir, BundleKind::Delta, sequence, delta_as_of, &files, &totals)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// Reads a generated file back: its header and rows.
    fn read_rows(dir: &Path, name: &str) -> Vec<csv::StringRecord> {
        let mut reader = csv::Reader::from_path(dir.join(name)).expect("the file was written");
        reader.records().map(|record| record.expect("valid CSV")).collect()
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("written")).expect("valid JSON")
    }

    fn won(text: &str) -> i64 {
        text.parse().expect("an amount")
    }

    /// Each file's rows and SHA-256 are the manifest's; returns the history sums per wallet.
    fn check_files(dir: &Path) -> HashMap<String, i64> {
        let manifest = manifest(dir);
        for name in [CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE] {
            let bytes = std::fs::read(dir.join(name)).expect("written");
            assert_eq!(manifest["files"][name]["sha256"], hex::encode(Sha256::digest(&bytes)), "{name}");
            assert_eq!(manifest["files"][name]["rows"], read_rows(dir, name).len() as u64, "{name}");
        }
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

    #[test]
    fn the_policy_is_wallet_cores_default() {
        let policy = wallet_core::Policy::default();
        let as_won = |value: wallet_core::Won| value.to_i64().expect("small");
        assert_eq!(as_won(policy.monthly_charge_limit), MONTHLY_CHARGE_LIMIT_WON);
        assert_eq!(as_won(policy.holding_limit), HOLDING_LIMIT_WON);
        assert_eq!(as_won(policy.cashback_monthly_spend_cap), CASHBACK_MONTHLY_SPEND_CAP_WON);
        let cashback_of_100 = wallet_core::Won::from_i64(100).floor_times(policy.cashback_rate).expect("small");
        assert_eq!(as_won(cashback_of_100), CASHBACK_RATE_PERCENT);
    }

    #[test]
    fn a_small_snapshot_and_its_delta_add_up() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let snapshot = root.path().join("snapshot");
        let args = SnapshotArgs {
            out: snapshot.clone(),
            citizens: 300,
            merchants: 12,
            transactions: 2_001,
            password_hashes: 3,
            seed: 7,
        };
        write_snapshot(&args, Instant::now()).expect("a snapshot");

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
        let kinds: std::collections::HashSet<String> =
            read_rows(&snapshot, TRANSACTIONS_FILE).iter().map(|row| row[2].to_owned()).collect();
        for kind in ["charge", "payment", "cashback", "refund", "cashback_reversal", "gift_in", "gift_out"] {
            assert!(kinds.contains(kind), "no {kind} in the history");
        }

        // The same seed writes the same bytes.
        let again = root.path().join("again");
        write_snapshot(&SnapshotArgs { out: again.clone(), ..args }, Instant::now()).expect("a snapshot");
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
