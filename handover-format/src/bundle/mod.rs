//! Reading and verifying an operator handover bundle (`docs/HANDOVER.md`, versions 1 and 2).
//!
//! Verification reads every file once, as a stream: it checks the manifest (format and version,
//! kind and sequence), each file's header, row count and SHA-256 (hashed as it is read), every
//! row's syntax, and then, from a log of every id met kept on disk ([`checks`]), duplicate ids,
//! references and (for a snapshot with `history_complete`) each wallet's history against what
//! it holds; for a snapshot, the control totals. Memory is bounded by [`Bundle::with_memory`],
//! not by the bundle: no file is read whole and no set of ids is held. Version 2 adds the policy, programs and allowances, with their cross
//! references (an allowance's program and wallet are in the bundle, and it has not expired at
//! `as_of`). Every refusal names the file, the line and the reason. Nothing here touches the
//! database: the importer applies a bundle only after this has passed.

mod checks;
mod manifest;
mod rows;

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wallet_core::{Policy, ProgramId, Won};

use checks::{Failure, FileRank, Log, Role};
pub use checks::{MEMORY_BYTES_DEFAULT, MEMORY_BYTES_MIN};

pub use manifest::{
    parse_manifest, BundleKind, FileEntry, Manifest, ManifestV2, Totals, TotalsV2, Version, FORMAT, FORMAT_V2,
};
use rows::add_storable;
pub use rows::{
    parse_allowance, parse_citizen, parse_citizen_in, parse_merchant, parse_merchant_in, parse_policy, parse_program,
    parse_transaction, parse_transaction_in, AllowanceRow, CitizenRow, CitizenV2, MerchantRow, MerchantV2, ProgramRow,
    TransactionRow, ALLOWANCES_HEADER, CITIZENS_HEADER, CITIZENS_HEADER_V2, MERCHANTS_HEADER, MERCHANTS_HEADER_V2,
    PROGRAMS_HEADER, PROGRAM_NAME_CHARS_MAX, TRANSACTIONS_HEADER, TRANSACTIONS_HEADER_V2,
};

/// Largest manifest read, in bytes.
const MANIFEST_BYTES_MAX: u64 = 1 << 20;
/// Largest `policy.json` read, in bytes (a policy is five figures).
const POLICY_BYTES_MAX: u64 = 64 << 10;
/// Longest field accepted in any row, in bytes.
const FIELD_BYTES_MAX: usize = 1_024;
/// Longest field of `programs.csv`, in bytes: a definition holds two lists of up to 64
/// categories of up to 64 characters.
const PROGRAM_FIELD_BYTES_MAX: usize = 64 << 10;
/// Programs read at most (they are held in memory to check the allowances' references).
const PROGRAMS_MAX: u64 = 100_000;
/// The read buffer of a CSV file (its bytes are hashed a buffer at a time).
const READ_BUFFER_BYTES: usize = 1 << 20;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const CITIZENS_FILE: &str = "citizens.csv";
pub const MERCHANTS_FILE: &str = "merchants.csv";
pub const TRANSACTIONS_FILE: &str = "transactions.csv";
/// Version 2: the policy in force.
pub const POLICY_FILE: &str = "policy.json";
/// Version 2: the programs, each with its definition and budget.
pub const PROGRAMS_FILE: &str = "programs.csv";
/// Version 2: the unexpired grants with money left.
pub const ALLOWANCES_FILE: &str = "allowances.csv";

/// Why a bundle is refused: the file and line (1 is the header) where known, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub file: String,
    pub line: Option<u64>,
    pub reason: String,
}

impl Refusal {
    fn new(file: &str, line: Option<u64>, reason: impl Into<String>) -> Refusal {
        Refusal { file: file.to_owned(), line, reason: reason.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "{}:{}: {}", self.file, line, self.reason),
            None => write!(formatter, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for Refusal {}

/// The text encoding of a bundle's CSV files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Legacy files in CP949 (EUC-KR), given with `--encoding cp949`.
    Cp949,
}

/// What verification found: the manifest and the figures it checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    pub citizens: u64,
    pub merchants: u64,
    pub transactions: u64,
    pub citizen_balance_sum: Won,
    pub merchant_receivable_sum: Won,
    /// Version 2 (zero, or `None`, for version 1).
    pub programs: u64,
    pub allowances: u64,
    pub citizen_bonus_sum: Won,
    pub allowance_outstanding_sum: Won,
    pub program_budget_remaining_sum: Won,
    pub policy: Option<Policy>,
}

/// A row of version 1's files met during verification, as [`Bundle::verify`] hands it to its
/// visitor (the importer stages them).
pub enum Row {
    Citizen(CitizenRow),
    Merchant(MerchantRow),
    Transaction(TransactionRow),
}

/// A row of any file of versions 1 and 2, as [`Bundle::verify_records`] hands it over.
pub enum Record {
    Row(Row),
    Program(ProgramRow),
    Allowance(AllowanceRow),
}

/// A bundle directory and how to read its files.
pub struct Bundle {
    dir: PathBuf,
    encoding: Encoding,
    /// Memory for the checks across rows ([`checks`]).
    memory_bytes: u64,
}

/// What verification has seen so far, for the checks across rows and files: sums, the
/// programs (a few), and the log of every id, on disk.
struct Seen {
    programs: HashSet<ProgramId>,
    log: Log,
    citizen_balance_sum: Won,
    citizen_bonus_sum: Won,
    merchant_receivable_sum: Won,
    allowance_outstanding_sum: Won,
    program_budget_remaining_sum: Won,
}

/// `sum + won` into `sum`, or the refusal `beyond` when the result would not be storable.
fn add_into(sum: &mut Won, won: Won, beyond: impl FnOnce() -> Refusal) -> Result<(), Refusal> {
    *sum = add_storable(*sum, won).ok_or_else(beyond)?;
    Ok(())
}

/// Why reading the files stopped: the refusal, and where it is in reading order, so that a
/// failure the checks across rows find earlier in the bundle comes first.
struct Stopped {
    refusal: Refusal,
    order: (FileRank, u64, u8),
}

/// Where a refusal about a whole file goes in reading order: before its rows (a checksum, the
/// encoding, the header), or after them (the row count).
const BEFORE_ROWS: u64 = 0;
const AFTER_ROWS: u64 = u64::MAX - 1;

impl Bundle {
    pub fn open(dir: &Path, encoding: Encoding) -> Bundle {
        Bundle { dir: dir.to_owned(), encoding, memory_bytes: MEMORY_BYTES_DEFAULT }
    }

    /// The memory the checks across rows may use, in bytes (at least [`MEMORY_BYTES_MIN`]).
    pub fn with_memory(mut self, memory_bytes: u64) -> Bundle {
        self.memory_bytes = memory_bytes.max(MEMORY_BYTES_MIN);
        self
    }

    /// Reads and checks `manifest.json`.
    pub fn manifest(&self) -> Result<Manifest, Refusal> {
        let text = self.read_small(MANIFEST_FILE, MANIFEST_BYTES_MAX)?;
        let text = String::from_utf8(text).map_err(|_| Refusal::new(MANIFEST_FILE, None, "it is not UTF-8"))?;
        parse_manifest(&text)
    }

    /// A small file read whole, at most `bytes_max` bytes.
    fn read_small(&self, file: &str, bytes_max: u64) -> Result<Vec<u8>, Refusal> {
        let path = self.dir.join(file);
        let size = std::fs::metadata(&path)
            .map_err(|error| Refusal::new(file, None, format!("cannot read it: {error}")))?
            .len();
        if size > bytes_max {
            return Err(Refusal::new(file, None, format!("it is {size} bytes; at most {bytes_max} are read")));
        }
        std::fs::read(&path).map_err(|error| Refusal::new(file, None, format!("cannot read it: {error}")))
    }

    /// Verifies the whole bundle; `visit` sees every row of citizens, merchants and
    /// transactions (in that order) so an importer can stage them in the same pass. A version 2
    /// bundle's programs and allowances are verified too, but not shown: see
    /// [`Bundle::verify_records`].
    pub fn verify(&self, mut visit: impl FnMut(Row) -> Result<(), Refusal>) -> Result<Verified, Refusal> {
        self.verify_records(|record| match record {
            Record::Row(row) => visit(row),
            Record::Program(_) | Record::Allowance(_) => Ok(()),
        })
    }

    /// Verifies the whole bundle; `visit` sees every row of every file, in the order read:
    /// programs, citizens, merchants, transactions, allowances (the policy is in [`Verified`]).
    /// The refusal is the earliest in reading order, as if every check ran as each row was read.
    pub fn verify_records(&self, mut visit: impl FnMut(Record) -> Result<(), Refusal>) -> Result<Verified, Refusal> {
        let manifest = self.manifest()?;
        let version = manifest.version;
        let snapshot = manifest.kind == BundleKind::Snapshot;
        let rows_of = |name: &str| manifest.files.get(name).map_or(0, |file| file.rows);
        let entries_expected = 3 * rows_of(CITIZENS_FILE)
            + 2 * rows_of(MERCHANTS_FILE)
            + if snapshot { 3 } else { 1 } * rows_of(TRANSACTIONS_FILE)
            + 2 * rows_of(ALLOWANCES_FILE);
        let log = Log::new(entries_expected, self.memory_bytes)?;
        let mut seen = Seen {
            programs: HashSet::new(),
            log,
            citizen_balance_sum: Won::ZERO,
            citizen_bonus_sum: Won::ZERO,
            merchant_receivable_sum: Won::ZERO,
            allowance_outstanding_sum: Won::ZERO,
            program_budget_remaining_sum: Won::ZERO,
        };
        let policy = match version {
            Version::V1 => None,
            Version::V2 => Some(self.read_policy(&manifest)?),
        };
        let read = self.read_rows(&manifest, &mut seen, &mut visit);
        let Seen { log, .. } = seen;
        // Each wallet's history against what it holds only when every row has been read.
        let history_complete = snapshot && manifest.history_complete && read.is_ok();
        let failure = log.check(history_complete)?;
        let counts = match read {
            Err(stopped) => {
                return Err(match failure.filter(|failure| failure.order() < stopped.order) {
                    Some(failure) => self.refusal_of(&failure),
                    None => stopped.refusal,
                });
            }
            Ok(counts) => counts,
        };
        let (history_off, failure) = match failure {
            Some(failure @ Failure::HistoryOff { .. }) => (Some(failure), None),
            other => (None, other),
        };
        if let Some(failure) = failure {
            return Err(self.refusal_of(&failure));
        }
        if snapshot {
            check_totals(&manifest, &counts.sums)?;
        }
        if let Some(failure) = history_off {
            return Err(self.refusal_of(&failure));
        }
        let [programs, citizens, merchants, transactions, allowances] = counts.rows;
        let sums = counts.sums;
        Ok(Verified {
            citizens,
            merchants,
            transactions,
            citizen_balance_sum: sums.citizen_balance_sum,
            merchant_receivable_sum: sums.merchant_receivable_sum,
            programs,
            allowances,
            citizen_bonus_sum: sums.citizen_bonus_sum,
            allowance_outstanding_sum: sums.allowance_outstanding_sum,
            program_budget_remaining_sum: sums.program_budget_remaining_sum,
            policy,
            manifest,
        })
    }

    /// Reads every CSV file in order, each row checked and logged; stops at the first refusal.
    fn read_rows(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
        visit: &mut impl FnMut(Record) -> Result<(), Refusal>,
    ) -> Result<Counts, Stopped> {
        let programs = match manifest.version {
            Version::V1 => 0,
            Version::V2 => self.read_programs(manifest, seen, visit)?,
        };
        let citizens = self.read_citizens(manifest, seen, visit)?;
        let merchants = self.read_merchants(manifest, seen, visit)?;
        let transactions = self.read_transactions(manifest, seen, visit)?;
        let allowances = match manifest.version {
            Version::V1 => 0,
            Version::V2 => self.read_allowances(manifest, seen, visit)?,
        };
        let sums = Sums {
            citizen_balance_sum: seen.citizen_balance_sum,
            citizen_bonus_sum: seen.citizen_bonus_sum,
            merchant_receivable_sum: seen.merchant_receivable_sum,
            allowance_outstanding_sum: seen.allowance_outstanding_sum,
            program_budget_remaining_sum: seen.program_budget_remaining_sum,
        };
        Ok(Counts { rows: [programs, citizens, merchants, transactions, allowances], sums })
    }

    /// The refusal for a failure of the checks across rows, its id read back from its row.
    fn refusal_of(&self, failure: &Failure) -> Refusal {
        let place = |role: Role| match role {
            Role::CitizenRow => (CITIZENS_FILE, 0),
            Role::WalletRow => (CITIZENS_FILE, 3),
            Role::CitizenLogin => (CITIZENS_FILE, 1),
            Role::MerchantRow => (MERCHANTS_FILE, 0),
            Role::MerchantLogin => (MERCHANTS_FILE, 1),
            Role::TransactionRow => (TRANSACTIONS_FILE, 0),
            Role::WalletInHistory => (TRANSACTIONS_FILE, 3),
            Role::MerchantInHistory => (TRANSACTIONS_FILE, 4),
            Role::GrantRow => (ALLOWANCES_FILE, 0),
            Role::WalletInAllowance => (ALLOWANCES_FILE, 2),
        };
        let id_at = |role: Role, line: u64| {
            let (file, column) = place(role);
            self.field_at(file, line, column).unwrap_or_else(|| "?".to_owned())
        };
        match *failure {
            Failure::Twice { role, line, .. } => {
                let (file, _) = place(role);
                let id = id_at(role, line);
                let reason = match role {
                    Role::CitizenRow => format!("citizen_id {id:?} appears twice"),
                    Role::WalletRow => format!("wallet_id {id:?} appears twice"),
                    Role::CitizenLogin => format!("login {id:?} appears twice"),
                    Role::MerchantLogin => {
                        format!("login {id:?} appears twice (logins are unique across citizens and merchants)")
                    }
                    Role::MerchantRow => format!("merchant_id {id:?} appears twice"),
                    Role::TransactionRow => format!("tx_id {id:?} appears twice"),
                    Role::GrantRow => format!("grant_id {id:?} appears twice"),
                    Role::WalletInHistory | Role::MerchantInHistory | Role::WalletInAllowance => {
                        format!("{id:?} appears twice")
                    }
                };
                Refusal::new(file, Some(line), reason)
            }
            Failure::Missing { role, line } => {
                let (file, _) = place(role);
                let id = id_at(role, line);
                let reason = match role {
                    Role::MerchantInHistory => format!("merchant_id {id:?} is not in merchants.csv"),
                    _ => format!("wallet_id {id:?} is not in citizens.csv"),
                };
                Refusal::new(file, Some(line), reason)
            }
            Failure::HistoryBeyond { line } => Refusal::new(
                TRANSACTIONS_FILE,
                Some(line),
                "the wallet's history sums beyond the largest amount stored",
            ),
            Failure::HistoryOff { line, balance, allowances, history } => {
                let wallet = id_at(Role::WalletRow, line);
                let allowances_part =
                    if allowances == 0 { String::new() } else { format!(" and allowances {allowances}") };
                Refusal::new(
                    TRANSACTIONS_FILE,
                    None,
                    format!(
                        "history_complete is true, but wallet {wallet:?}'s history sums to {history}, not its \
                         balance {balance}{allowances_part}"
                    ),
                )
            }
        }
    }

    /// The field at `column` of the row at `line` of `file` (read again, for a refusal).
    fn field_at(&self, file: &str, line: u64, column: usize) -> Option<String> {
        let path = self.dir.join(file);
        let reader: Box<dyn Read> = match self.encoding {
            Encoding::Utf8 => Box::new(std::fs::File::open(path).ok()?),
            Encoding::Cp949 => Box::new(Cp949Reader::new(std::fs::File::open(path).ok()?)),
        };
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).ok()? {
            if record.position().map(csv::Position::line) == Some(line) {
                return record.get(column).map(str::to_owned);
            }
        }
        None
    }

    /// `policy.json`: its checksum, then the policy.
    fn read_policy(&self, manifest: &Manifest) -> Result<Policy, Refusal> {
        let bytes = self.read_small(POLICY_FILE, POLICY_BYTES_MAX)?;
        check_sha256(manifest, POLICY_FILE, &bytes)?;
        let text = String::from_utf8(bytes).map_err(|_| Refusal::new(POLICY_FILE, None, "it is not UTF-8"))?;
        parse_policy(&text).map_err(|reason| Refusal::new(POLICY_FILE, None, reason))
    }

    fn read_programs(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
        visit: &mut impl FnMut(Record) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let file = CsvFile::new(PROGRAMS_FILE, FileRank::Programs, PROGRAMS_HEADER, PROGRAM_FIELD_BYTES_MAX);
        self.read_file(manifest, file, |line, fields| {
            let refuse = |reason: String| Refusal::new(PROGRAMS_FILE, Some(line), reason);
            let row = parse_program(fields).map_err(refuse)?;
            if seen.programs.len() as u64 >= PROGRAMS_MAX {
                return Err(refuse(format!("more than {PROGRAMS_MAX} programs; a bundle carries at most that many")));
            }
            if !seen.programs.insert(row.program_id.clone()) {
                return Err(refuse(format!("program_id {:?} appears twice", row.program_id.as_str())));
            }
            add_into(&mut seen.program_budget_remaining_sum, row.budget.remaining(), || {
                refuse("the remaining budgets sum beyond the largest amount this system stores".into())
            })?;
            visit(Record::Program(row))
        })
    }

    fn read_citizens(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
        visit: &mut impl FnMut(Record) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let version = manifest.version;
        let file = CsvFile::new(CITIZENS_FILE, FileRank::Citizens, version.citizens_header(), FIELD_BYTES_MAX);
        self.read_file(manifest, file, |line, fields| {
            let refuse = |reason: String| Refusal::new(CITIZENS_FILE, Some(line), reason);
            let row = parse_citizen_in(version, fields).map_err(refuse)?;
            let balance = row.balance.to_i64().ok_or_else(|| refuse("the balance is beyond what is stored".into()))?;
            seen.log.add(Role::CitizenRow, &row.citizen_id, line, 0)?;
            seen.log.add(Role::WalletRow, row.wallet_id.as_str(), line, balance)?;
            seen.log.add(Role::CitizenLogin, &row.login, line, 0)?;
            add_into(&mut seen.citizen_balance_sum, row.balance, || {
                refuse("the balances sum beyond the largest amount this system stores".into())
            })?;
            add_into(&mut seen.citizen_bonus_sum, row.bonus(), || {
                refuse("the bonuses sum beyond the largest amount this system stores".into())
            })?;
            visit(Record::Row(Row::Citizen(row)))
        })
    }

    fn read_merchants(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
        visit: &mut impl FnMut(Record) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let version = manifest.version;
        let file = CsvFile::new(MERCHANTS_FILE, FileRank::Merchants, version.merchants_header(), FIELD_BYTES_MAX);
        self.read_file(manifest, file, |line, fields| {
            let refuse = |reason: String| Refusal::new(MERCHANTS_FILE, Some(line), reason);
            let row = parse_merchant_in(version, fields).map_err(refuse)?;
            seen.log.add(Role::MerchantRow, row.merchant_id.as_str(), line, 0)?;
            seen.log.add(Role::MerchantLogin, &row.login, line, 0)?;
            add_into(&mut seen.merchant_receivable_sum, row.receivable, || {
                refuse("the receivables sum beyond the largest amount this system stores".into())
            })?;
            visit(Record::Row(Row::Merchant(row)))
        })
    }

    fn read_transactions(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
        visit: &mut impl FnMut(Record) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let version = manifest.version;
        let snapshot = manifest.kind == BundleKind::Snapshot;
        let header = version.transactions_header();
        let file = CsvFile::new(TRANSACTIONS_FILE, FileRank::Transactions, header, FIELD_BYTES_MAX);
        self.read_file(manifest, file, |line, fields| {
            let refuse = |reason: String| Refusal::new(TRANSACTIONS_FILE, Some(line), reason);
            let row = parse_transaction_in(version, fields).map_err(refuse)?;
            seen.log.add(Role::TransactionRow, row.tx_id.as_str(), line, 0)?;
            // A delta's rows may name wallets and merchants carried before: checked when applied.
            if snapshot {
                if let Some(wallet) = &row.wallet_id {
                    let amount =
                        row.amount.to_i64().ok_or_else(|| refuse("the amount is beyond what is stored".into()))?;
                    seen.log.add(Role::WalletInHistory, wallet.as_str(), line, amount)?;
                }
                if let Some(merchant) = &row.merchant_id {
                    seen.log.add(Role::MerchantInHistory, merchant.as_str(), line, 0)?;
                }
            }
            visit(Record::Row(Row::Transaction(row)))
        })
    }

    /// `allowances.csv`: each grant of a program of the bundle, in a wallet of its citizens.csv
    /// (a delta lists every live grant of each citizen it carries), unexpired at `as_of`.
    fn read_allowances(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
        visit: &mut impl FnMut(Record) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let as_of = manifest.as_of;
        let file = CsvFile::new(ALLOWANCES_FILE, FileRank::Allowances, ALLOWANCES_HEADER, FIELD_BYTES_MAX);
        self.read_file(manifest, file, |line, fields| {
            let refuse = |reason: String| Refusal::new(ALLOWANCES_FILE, Some(line), reason);
            let row = parse_allowance(fields).map_err(refuse)?;
            seen.log.add(Role::GrantRow, row.grant_id.as_str(), line, 0)?;
            if !seen.programs.contains(&row.program_id) {
                return Err(refuse(format!("program_id {:?} is not in programs.csv", row.program_id.as_str())));
            }
            let amount = row.amount.won();
            let stored = amount.to_i64().ok_or_else(|| refuse("the amount is beyond what is stored".into()))?;
            seen.log.add(Role::WalletInAllowance, row.wallet_id.as_str(), line, stored)?;
            if row.expires_at <= as_of {
                return Err(refuse(format!(
                    "grant {:?} expired at {}, not after as_of {}; allowances.csv holds unexpired grants only",
                    row.grant_id.as_str(),
                    row.expires_at.to_rfc3339(),
                    as_of.to_rfc3339()
                )));
            }
            let beyond = || refuse("the allowances sum beyond the largest amount this system stores".into());
            add_into(&mut seen.allowance_outstanding_sum, amount, beyond)?;
            visit(Record::Allowance(row))
        })
    }

    /// Reads one CSV file as a stream: its bytes hashed as they are read, its encoding, header,
    /// every row (through `row`) and its row count, and at the end its SHA-256 against the
    /// manifest. A refusal stops the reading of rows, but the rest of the file is still hashed:
    /// a file that is not the one the manifest names is refused for that, as before anything
    /// in it. Returns the number of data rows.
    fn read_file(
        &self,
        manifest: &Manifest,
        file: CsvFile,
        mut row: impl FnMut(u64, &[&str]) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let name = file.name;
        let stop = |refusal: Refusal, line: u64| Stopped { refusal, order: (file.rank, line, 0) };
        let entry = manifest
            .files
            .get(name)
            .ok_or_else(|| stop(Refusal::new(MANIFEST_FILE, None, format!("files has no entry for {name}")), 0))?;
        let opened = std::fs::File::open(self.dir.join(name))
            .map_err(|error| stop(Refusal::new(name, None, format!("cannot read it: {error}")), BEFORE_ROWS))?;
        let mut hashing = Hashing::new(opened);
        let read = self.read_rows_of(&mut hashing, manifest, &file, entry.rows, &mut row);
        // The rest of the file, hashed (all of it when the rows were read through).
        let digest = hashing
            .finish()
            .map_err(|error| stop(Refusal::new(name, None, format!("cannot read it: {error}")), BEFORE_ROWS))?;
        if !digest.eq_ignore_ascii_case(&entry.sha256) {
            let reason = format!("its SHA-256 is {digest}, but the manifest says {}", entry.sha256);
            return Err(stop(Refusal::new(name, None, reason), BEFORE_ROWS));
        }
        let rows = read?;
        if rows != entry.rows {
            let reason = format!("it has {rows} data rows, but the manifest says {}", entry.rows);
            return Err(stop(Refusal::new(name, None, reason), AFTER_ROWS));
        }
        Ok(rows)
    }

    /// The rows of one file, read from `hashing`; past the manifest's count they are only
    /// counted (nothing of them is kept or logged), so memory stays bounded by the manifest.
    fn read_rows_of(
        &self,
        hashing: &mut Hashing,
        manifest: &Manifest,
        file: &CsvFile,
        rows_declared: u64,
        row: &mut impl FnMut(u64, &[&str]) -> Result<(), Refusal>,
    ) -> Result<u64, Stopped> {
        let name = file.name;
        let stop = |refusal: Refusal, line: u64| Stopped { refusal, order: (file.rank, line, 0) };
        let start = hashing
            .peek()
            .map_err(|error| stop(Refusal::new(name, None, format!("cannot read it: {error}")), BEFORE_ROWS))?;
        if self.encoding == Encoding::Utf8 && start.starts_with(&[0xEF, 0xBB, 0xBF]) {
            let reason = "it starts with a byte-order mark; files are UTF-8 without BOM";
            return Err(stop(Refusal::new(name, Some(1), reason), BEFORE_ROWS));
        }
        let source: Box<dyn Read + '_> = match self.encoding {
            Encoding::Utf8 => Box::new(&mut *hashing),
            Encoding::Cp949 => Box::new(Cp949Reader::new(&mut *hashing)),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(READ_BUFFER_BYTES)
            .from_reader(source);
        let mut record = csv::StringRecord::new();
        let not_csv = |error: csv::Error, fallback: u64| {
            let line = error.position().map_or(fallback, |position| position.line());
            match error.kind() {
                csv::ErrorKind::Utf8 { .. } => stop(
                    Refusal::new(
                        name,
                        Some(line),
                        "it is not UTF-8; legacy files in CP949 (EUC-KR) are read with --encoding cp949",
                    ),
                    BEFORE_ROWS,
                ),
                csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    stop(Refusal::new(name, None, "it is not valid CP949 either"), BEFORE_ROWS)
                }
                csv::ErrorKind::Io(io) => stop(Refusal::new(name, None, format!("cannot read it: {io}")), BEFORE_ROWS),
                _ => stop(Refusal::new(name, Some(line), format!("not valid CSV: {error}")), line),
            }
        };
        if !reader.read_record(&mut record).map_err(|error| not_csv(error, 1))? {
            let reason = "the file is empty; it must at least have its header line";
            return Err(stop(Refusal::new(name, None, reason), BEFORE_ROWS));
        }
        if !record.iter().eq(file.header.iter().copied()) {
            let number = if manifest.version == Version::V1 { 1 } else { 2 };
            let reason = format!("the header must be exactly {} (format version {number})", file.header.join(","));
            return Err(stop(Refusal::new(name, Some(1), reason), 1));
        }
        let mut rows = 0u64;
        let mut line = 1u64;
        while reader.read_record(&mut record).map_err(|error| not_csv(error, line + 1))? {
            line = record.position().map_or(line + 1, |position| position.line());
            rows += 1;
            if rows > rows_declared {
                continue;
            }
            let refuse = |reason: String| stop(Refusal::new(name, Some(line), reason), line);
            if record.len() != file.header.len() {
                return Err(refuse(format!("it has {} fields; {} are expected", record.len(), file.header.len())));
            }
            if let Some(field) = record.iter().find(|field| field.len() > file.field_bytes_max) {
                return Err(refuse(format!("a field is {} bytes; at most {}", field.len(), file.field_bytes_max)));
            }
            let fields: Vec<&str> = record.iter().collect();
            row(line, &fields).map_err(|refusal| stop(refusal, line))?;
        }
        Ok(rows)
    }
}

/// A CSV file of a bundle, as its reader needs it.
struct CsvFile {
    name: &'static str,
    rank: FileRank,
    header: &'static [&'static str],
    field_bytes_max: usize,
}

impl CsvFile {
    fn new(name: &'static str, rank: FileRank, header: &'static [&'static str], field_bytes_max: usize) -> CsvFile {
        CsvFile { name, rank, header, field_bytes_max }
    }
}

/// The rows counted and the sums of a read.
struct Counts {
    /// programs, citizens, merchants, transactions, allowances.
    rows: [u64; 5],
    sums: Sums,
}

struct Sums {
    citizen_balance_sum: Won,
    citizen_bonus_sum: Won,
    merchant_receivable_sum: Won,
    allowance_outstanding_sum: Won,
    program_budget_remaining_sum: Won,
}

/// A file read through a buffer, every byte read hashed (SHA-256) on the way.
struct Hashing {
    file: std::io::BufReader<std::fs::File>,
    sha256: Sha256,
}

impl Hashing {
    fn new(file: std::fs::File) -> Hashing {
        Hashing { file: std::io::BufReader::with_capacity(READ_BUFFER_BYTES, file), sha256: Sha256::new() }
    }

    /// The next bytes, not yet read (the start of the file, before any read).
    fn peek(&mut self) -> std::io::Result<&[u8]> {
        self.file.fill_buf()
    }

    /// Hashes the rest of the file; the file's SHA-256, in hex.
    fn finish(mut self) -> std::io::Result<String> {
        loop {
            let chunk = self.file.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            self.sha256.update(chunk);
            let length = chunk.len();
            self.file.consume(length);
        }
        Ok(hex::encode(self.sha256.finalize()))
    }
}

impl Read for Hashing {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read(buffer)?;
        self.sha256.update(&buffer[..read]);
        Ok(read)
    }
}

/// CP949 (EUC-KR) decoded to UTF-8 as it is read; bytes that are not CP949 are an
/// `InvalidData` error.
struct Cp949Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    done: bool,
}

/// The input buffer of a [`Cp949Reader`].
const CP949_INPUT_BYTES: usize = 64 << 10;

impl<R: Read> Cp949Reader<R> {
    fn new(inner: R) -> Cp949Reader<R> {
        Cp949Reader {
            inner,
            decoder: encoding_rs::EUC_KR.new_decoder_without_bom_handling(),
            input: vec![0; CP949_INPUT_BYTES],
            input_start: 0,
            input_end: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for Cp949Reader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        // A decoded character is at most 3 bytes of UTF-8: ask for room for a few.
        if buffer.len() < 16 {
            let mut small = [0u8; 16];
            let read = self.read(&mut small)?;
            let length = read.min(buffer.len());
            buffer[..length].copy_from_slice(&small[..length]);
            debug_assert_eq!(length, read, "a read into a buffer under 16 bytes lost bytes");
            return Ok(length);
        }
        loop {
            if self.input_start == self.input_end && !self.done {
                let read = self.inner.read(&mut self.input)?;
                self.input_start = 0;
                self.input_end = read;
                self.done = read == 0;
            }
            let last = self.done;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.input_start..self.input_end],
                buffer,
                last,
            );
            self.input_start += read;
            if let encoding_rs::DecoderResult::Malformed(_, _) = result {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not CP949"));
            }
            if written > 0 || last {
                return Ok(written);
            }
        }
    }
}

/// The file's SHA-256 is the manifest's.
fn check_sha256(manifest: &Manifest, name: &str, bytes: &[u8]) -> Result<(), Refusal> {
    let entry = manifest
        .files
        .get(name)
        .ok_or_else(|| Refusal::new(MANIFEST_FILE, None, format!("files has no entry for {name}")))?;
    let digest = hex::encode(Sha256::digest(bytes));
    if digest.eq_ignore_ascii_case(&entry.sha256) {
        Ok(())
    } else {
        Err(Refusal::new(name, None, format!("its SHA-256 is {digest}, but the manifest says {}", entry.sha256)))
    }
}

/// A snapshot's control totals are the sums of its rows.
fn check_totals(manifest: &Manifest, seen: &Sums) -> Result<(), Refusal> {
    let totals = &manifest.totals;
    let mut checks = vec![
        (CITIZENS_FILE, "balances", seen.citizen_balance_sum, "citizen_balance_sum", totals.citizen_balance_sum),
        (
            MERCHANTS_FILE,
            "receivables",
            seen.merchant_receivable_sum,
            "merchant_receivable_sum",
            totals.merchant_receivable_sum,
        ),
    ];
    if let Some(v2) = &manifest.v2 {
        let totals = &v2.totals;
        checks.extend([
            (CITIZENS_FILE, "bonuses", seen.citizen_bonus_sum, "citizen_bonus_sum", totals.citizen_bonus_sum),
            (
                ALLOWANCES_FILE,
                "allowances",
                seen.allowance_outstanding_sum,
                "allowance_outstanding_sum",
                totals.allowance_outstanding_sum,
            ),
            (
                PROGRAMS_FILE,
                "remaining budgets",
                seen.program_budget_remaining_sum,
                "program_budget_remaining_sum",
                totals.program_budget_remaining_sum,
            ),
        ]);
    }
    for (file, what, sum, total_name, total) in checks {
        if sum != total {
            return Err(Refusal::new(
                file,
                None,
                format!("the {what} sum to {sum}, but the manifest's {total_name} is {total}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CITIZEN_HEADER_LINE: &str = "citizen_id,login,password_hash,wallet_id,balance,month,charged_this_month,\
        cashback_eligible_spent_this_month,created_at\n";

    fn manifest(totals: [&str; 3], files: &[(&str, &[u8])]) -> String {
        let files: serde_json::Map<String, serde_json::Value> = [CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE]
            .iter()
            .map(|name| {
                let bytes = files.iter().find(|(file, _)| file == name).map_or(&[][..], |(_, bytes)| *bytes);
                let rows = bytes.iter().filter(|byte| **byte == b'\n').count().saturating_sub(1);
                (name.to_string(), serde_json::json!({"rows": rows, "sha256": hex::encode(Sha256::digest(bytes))}))
            })
            .collect();
        serde_json::json!({
            "format": FORMAT, "operator": "Outgoing Operator Co.", "currency": "KRW", "kind": "snapshot",
            "sequence": 0, "as_of": "2026-12-01T00:00:00+09:00", "history_complete": false, "files": files,
            "totals": {"citizen_balance_sum": totals[0], "merchant_receivable_sum": totals[1],
                       "cashback_budget_remaining": totals[2]},
        })
        .to_string()
    }

    /// Figures beyond the database's 64-bit integers were verified and then failed the import's
    /// write. (Found writing the fuzz targets' invariant "an accepted bundle is storable"; the
    /// handover_manifest target then fails on such a total.)
    #[test]
    fn figures_beyond_what_the_database_stores_are_refused_by_name() {
        let too_big = "9223372036854775808"; // i64::MAX + 1: 19 digits, which Won::parse_signed reads
        for (index, name) in
            ["citizen_balance_sum", "merchant_receivable_sum", "cashback_budget_remaining"].iter().enumerate()
        {
            let mut totals = ["0", "0", "0"];
            totals[index] = too_big;
            let refusal = parse_manifest(&manifest(totals, &[])).expect_err(name);
            assert!(refusal.reason.contains(&format!("totals.{name} {too_big} is beyond")), "{refusal}");
        }
        assert!(parse_manifest(&manifest(["9223372036854775807", "-9223372036854775808", "0"], &[])).is_ok());

        let row = |balance: &str| {
            format!("C-{balance},login-{balance},,W-{balance},{balance},2026-11,0,0,2025-03-02T09:00:00+09:00\n")
        };
        let fields = |line: &str| line.trim_end().split(',').map(str::to_owned).collect::<Vec<_>>();
        let line = row(too_big);
        let refused = parse_citizen(&fields(&line).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(refused.expect_err("balance").contains("balance 9223372036854775808 is beyond"));
        let transaction = ["T-1", "2026-11-01T10:00:00+09:00", "charge", "W-1", "", "-9999999999999999999", "", ""];
        assert!(parse_transaction(&transaction).expect_err("amount").contains("amount -9999999999999999999 is beyond"));

        // Each balance storable, their sum not.
        let dir = tempfile::tempdir().unwrap();
        let half = "5000000000000000000";
        let citizens = format!("{CITIZEN_HEADER_LINE}{}{}", row(half), row("4999999999999999999"));
        let merchants = format!("{}\n", MERCHANTS_HEADER.join(","));
        let transactions = format!("{}\n", TRANSACTIONS_HEADER.join(","));
        let files: [(&str, &[u8]); 3] = [
            (CITIZENS_FILE, citizens.as_bytes()),
            (MERCHANTS_FILE, merchants.as_bytes()),
            (TRANSACTIONS_FILE, transactions.as_bytes()),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        std::fs::write(dir.path().join("manifest.json"), manifest(["0", "0", "0"], &files)).unwrap();
        let refusal = Bundle::open(dir.path(), Encoding::Utf8).verify(|_| Ok(())).expect_err("the sum is too big");
        assert_eq!((refusal.file.as_str(), refusal.line), (CITIZENS_FILE, Some(3)), "{refusal}");
        assert!(refusal.reason.contains("the balances sum beyond"), "{refusal}");
    }

    /// Each version has its own fields: version 2's in a version 1 manifest are refused, and a
    /// version 2 manifest has them all (the last closed date may be null).
    #[test]
    fn manifests_have_their_versions_fields() {
        let mut v1: serde_json::Value = serde_json::from_str(&manifest(["0", "0", "0"], &[])).unwrap();
        v1["totals"]["citizen_bonus_sum"] = serde_json::json!("0");
        let refusal = parse_manifest(&v1.to_string()).expect_err("a version 2 total in version 1");
        assert!(refusal.reason.contains("totals.citizen_bonus_sum is part of format version 2"), "{refusal}");

        let mut v2: serde_json::Value = serde_json::from_str(&manifest(["0", "0", "0"], &[])).unwrap();
        v2["format"] = serde_json::json!(FORMAT_V2);
        for (name, rows) in [(POLICY_FILE, 1), (PROGRAMS_FILE, 0), (ALLOWANCES_FILE, 0)] {
            v2["files"][name] = serde_json::json!({"rows": rows, "sha256": "0".repeat(64)});
        }
        for name in ["citizen_bonus_sum", "allowance_outstanding_sum", "program_budget_remaining_sum"] {
            v2["totals"][name] = serde_json::json!("0");
        }
        let refusal = parse_manifest(&v2.to_string()).expect_err("no last_closed_business_date");
        assert!(refusal.reason.contains("last_closed_business_date is missing"), "{refusal}");
        v2["last_closed_business_date"] = serde_json::Value::Null;
        let parsed = parse_manifest(&v2.to_string()).expect("a version 2 manifest");
        assert_eq!((parsed.version, parsed.v2.map(|v2| v2.last_closed_business_date)), (Version::V2, Some(None)));
        v2["last_closed_business_date"] = serde_json::json!("2026-12-01");
        let refusal = parse_manifest(&v2.to_string()).expect_err("a date not yet over at as_of");
        assert!(refusal.reason.contains("is not before the business date of as_of (2026-12-01)"), "{refusal}");
        v2["totals"]["program_budget_remaining_sum"] = serde_json::json!("-1");
        v2["last_closed_business_date"] = serde_json::json!("2026-11-30");
        let refusal = parse_manifest(&v2.to_string()).expect_err("a negative remaining budget");
        assert!(refusal.reason.contains("program_budget_remaining_sum is -1"), "{refusal}");
    }
}
