//! Reading and verifying an operator handover bundle (`docs/HANDOVER.md`, versions 1 and 2).
//!
//! Verification reads every file once: it checks the manifest (format and version, kind and
//! sequence), each file's header, row count and SHA-256, every row's syntax, duplicate ids, and
//! for a snapshot the control totals and (with `history_complete`) each wallet's history
//! against what it holds. Version 2 adds the policy, programs and allowances, with their cross
//! references (an allowance's program and wallet are in the bundle, and it has not expired at
//! `as_of`). Every refusal names the file, the line and the reason. Nothing here touches the
//! database: the importer applies a bundle only after this has passed.

mod manifest;
mod rows;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wallet_core::{Policy, ProgramId, WalletId, Won};

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
}

/// What verification has seen so far, for the checks across rows and files.
#[derive(Default)]
struct Seen {
    logins: HashSet<String>,
    citizen_ids: HashSet<String>,
    /// Each wallet's balance and its line in citizens.csv.
    wallets: HashMap<WalletId, (Won, u64)>,
    merchant_ids: HashSet<wallet_core::MerchantId>,
    programs: HashSet<ProgramId>,
    tx_ids: HashSet<wallet_core::TxId>,
    grant_ids: HashSet<wallet_core::GrantId>,
    history_sums: HashMap<WalletId, Won>,
    allowance_sums: HashMap<WalletId, Won>,
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

impl Bundle {
    pub fn open(dir: &Path, encoding: Encoding) -> Bundle {
        Bundle { dir: dir.to_owned(), encoding }
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
    pub fn verify_records(&self, mut visit: impl FnMut(Record) -> Result<(), Refusal>) -> Result<Verified, Refusal> {
        let manifest = self.manifest()?;
        let version = manifest.version;
        let mut seen = Seen::default();
        let (policy, programs) = match version {
            Version::V1 => (None, 0),
            Version::V2 => (Some(self.read_policy(&manifest)?), self.read_programs(&manifest, &mut seen, &mut visit)?),
        };
        let citizens = self.read_citizens(&manifest, &mut seen, &mut visit)?;
        let merchants = self.read_merchants(&manifest, &mut seen, &mut visit)?;
        let transactions = self.read_transactions(&manifest, &mut seen, &mut visit)?;
        let allowances = match version {
            Version::V1 => 0,
            Version::V2 => self.read_allowances(&manifest, &mut seen, &mut visit)?,
        };
        if manifest.kind == BundleKind::Snapshot {
            check_totals(&manifest, &seen)?;
            if manifest.history_complete {
                check_history(&seen)?;
            }
        }
        Ok(Verified {
            citizens,
            merchants,
            transactions,
            citizen_balance_sum: seen.citizen_balance_sum,
            merchant_receivable_sum: seen.merchant_receivable_sum,
            programs,
            allowances,
            citizen_bonus_sum: seen.citizen_bonus_sum,
            allowance_outstanding_sum: seen.allowance_outstanding_sum,
            program_budget_remaining_sum: seen.program_budget_remaining_sum,
            policy,
            manifest,
        })
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
    ) -> Result<u64, Refusal> {
        self.read_file(manifest, PROGRAMS_FILE, PROGRAMS_HEADER, PROGRAM_FIELD_BYTES_MAX, |line, fields| {
            let refuse = |reason: String| Refusal::new(PROGRAMS_FILE, Some(line), reason);
            let row = parse_program(fields).map_err(refuse)?;
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
    ) -> Result<u64, Refusal> {
        let (version, header) = (manifest.version, manifest.version.citizens_header());
        self.read_file(manifest, CITIZENS_FILE, header, FIELD_BYTES_MAX, |line, fields| {
            let refuse = |reason: String| Refusal::new(CITIZENS_FILE, Some(line), reason);
            let row = parse_citizen_in(version, fields).map_err(refuse)?;
            if !seen.citizen_ids.insert(row.citizen_id.clone()) {
                return Err(refuse(format!("citizen_id {:?} appears twice", row.citizen_id)));
            }
            if seen.wallets.insert(row.wallet_id.clone(), (row.balance, line)).is_some() {
                return Err(refuse(format!("wallet_id {:?} appears twice", row.wallet_id.as_str())));
            }
            if !seen.logins.insert(row.login.clone()) {
                return Err(refuse(format!("login {:?} appears twice", row.login)));
            }
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
    ) -> Result<u64, Refusal> {
        let (version, header) = (manifest.version, manifest.version.merchants_header());
        self.read_file(manifest, MERCHANTS_FILE, header, FIELD_BYTES_MAX, |line, fields| {
            let refuse = |reason: String| Refusal::new(MERCHANTS_FILE, Some(line), reason);
            let row = parse_merchant_in(version, fields).map_err(refuse)?;
            if !seen.merchant_ids.insert(row.merchant_id.clone()) {
                return Err(refuse(format!("merchant_id {:?} appears twice", row.merchant_id.as_str())));
            }
            if !seen.logins.insert(row.login.clone()) {
                return Err(refuse(format!(
                    "login {:?} appears twice (logins are unique across citizens and merchants)",
                    row.login
                )));
            }
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
    ) -> Result<u64, Refusal> {
        let (version, header) = (manifest.version, manifest.version.transactions_header());
        let snapshot = manifest.kind == BundleKind::Snapshot;
        self.read_file(manifest, TRANSACTIONS_FILE, header, FIELD_BYTES_MAX, |line, fields| {
            let refuse = |reason: String| Refusal::new(TRANSACTIONS_FILE, Some(line), reason);
            let row = parse_transaction_in(version, fields).map_err(refuse)?;
            if !seen.tx_ids.insert(row.tx_id.clone()) {
                return Err(refuse(format!("tx_id {:?} appears twice", row.tx_id.as_str())));
            }
            if snapshot {
                if let Some(wallet) = &row.wallet_id {
                    if !seen.wallets.contains_key(wallet) {
                        return Err(refuse(format!("wallet_id {:?} is not in citizens.csv", wallet.as_str())));
                    }
                    let sum = seen.history_sums.entry(wallet.clone()).or_insert(Won::ZERO);
                    add_into(sum, row.amount, || {
                        refuse("the wallet's history sums beyond the largest amount stored".into())
                    })?;
                }
                if let Some(merchant) = &row.merchant_id {
                    if !seen.merchant_ids.contains(merchant) {
                        return Err(refuse(format!("merchant_id {:?} is not in merchants.csv", merchant.as_str())));
                    }
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
    ) -> Result<u64, Refusal> {
        let as_of = manifest.as_of;
        self.read_file(manifest, ALLOWANCES_FILE, ALLOWANCES_HEADER, FIELD_BYTES_MAX, |line, fields| {
            let refuse = |reason: String| Refusal::new(ALLOWANCES_FILE, Some(line), reason);
            let row = parse_allowance(fields).map_err(refuse)?;
            if !seen.grant_ids.insert(row.grant_id.clone()) {
                return Err(refuse(format!("grant_id {:?} appears twice", row.grant_id.as_str())));
            }
            if !seen.programs.contains(&row.program_id) {
                return Err(refuse(format!("program_id {:?} is not in programs.csv", row.program_id.as_str())));
            }
            if !seen.wallets.contains_key(&row.wallet_id) {
                return Err(refuse(format!("wallet_id {:?} is not in citizens.csv", row.wallet_id.as_str())));
            }
            if row.expires_at <= as_of {
                return Err(refuse(format!(
                    "grant {:?} expired at {}, not after as_of {}; allowances.csv holds unexpired grants only",
                    row.grant_id.as_str(),
                    row.expires_at.to_rfc3339(),
                    as_of.to_rfc3339()
                )));
            }
            let beyond = || refuse("the allowances sum beyond the largest amount this system stores".into());
            add_into(&mut seen.allowance_outstanding_sum, row.amount.won(), beyond)?;
            let sum = seen.allowance_sums.entry(row.wallet_id.clone()).or_insert(Won::ZERO);
            add_into(sum, row.amount.won(), beyond)?;
            visit(Record::Allowance(row))
        })
    }

    /// Reads one CSV file: checks its encoding, header, every row (through `row`), its row count
    /// and its SHA-256 against the manifest. Returns the number of data rows.
    fn read_file(
        &self,
        manifest: &Manifest,
        name: &str,
        header: &[&str],
        field_bytes_max: usize,
        mut row: impl FnMut(u64, &[&str]) -> Result<(), Refusal>,
    ) -> Result<u64, Refusal> {
        let entry = manifest
            .files
            .get(name)
            .ok_or_else(|| Refusal::new(MANIFEST_FILE, None, format!("files has no entry for {name}")))?;
        let bytes = std::fs::read(self.dir.join(name))
            .map_err(|error| Refusal::new(name, None, format!("cannot read it: {error}")))?;
        check_sha256(manifest, name, &bytes)?;
        let text = decode(name, &bytes, self.encoding)?;
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
        let mut record = csv::StringRecord::new();
        let not_csv = |error: csv::Error, fallback: u64| {
            let line = error.position().map_or(fallback, |position| position.line());
            Refusal::new(name, Some(line), format!("not valid CSV: {error}"))
        };
        if !reader.read_record(&mut record).map_err(|error| not_csv(error, 1))? {
            return Err(Refusal::new(name, None, "the file is empty; it must at least have its header line"));
        }
        if record.iter().collect::<Vec<_>>() != header {
            let number = if manifest.version == Version::V1 { 1 } else { 2 };
            return Err(Refusal::new(
                name,
                Some(1),
                format!("the header must be exactly {} (format version {number})", header.join(",")),
            ));
        }
        let mut rows = 0u64;
        let mut line = 1u64;
        while reader.read_record(&mut record).map_err(|error| not_csv(error, line + 1))? {
            line = record.position().map_or(line + 1, |position| position.line());
            let fields: Vec<&str> = record.iter().collect();
            if fields.len() != header.len() {
                return Err(Refusal::new(
                    name,
                    Some(line),
                    format!("it has {} fields; {} are expected", fields.len(), header.len()),
                ));
            }
            if let Some(field) = fields.iter().find(|field| field.len() > field_bytes_max) {
                return Err(Refusal::new(
                    name,
                    Some(line),
                    format!("a field is {} bytes; at most {field_bytes_max}", field.len()),
                ));
            }
            rows += 1;
            row(line, &fields)?;
        }
        if rows != entry.rows {
            return Err(Refusal::new(
                name,
                None,
                format!("it has {rows} data rows, but the manifest says {}", entry.rows),
            ));
        }
        Ok(rows)
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
fn check_totals(manifest: &Manifest, seen: &Seen) -> Result<(), Refusal> {
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

/// With `history_complete`, each wallet's history sums to what it holds: its balance (own and
/// bonus) and, from version 2, its allowances.
fn check_history(seen: &Seen) -> Result<(), Refusal> {
    // In citizens.csv's order, so the refusal names the first wallet that is off.
    let mut in_file_order: Vec<(&WalletId, &(Won, u64))> = seen.wallets.iter().collect();
    in_file_order.sort_by_key(|(_, (_, line))| *line);
    for (wallet, (balance, _)) in in_file_order {
        let history = seen.history_sums.get(wallet).copied().unwrap_or(Won::ZERO);
        let allowances = seen.allowance_sums.get(wallet).copied().unwrap_or(Won::ZERO);
        let holds = balance.checked_add(allowances).ok();
        if holds != Some(history) {
            let allowances_part =
                if allowances.is_zero() { String::new() } else { format!(" and allowances {allowances}") };
            return Err(Refusal::new(
                TRANSACTIONS_FILE,
                None,
                format!(
                    "history_complete is true, but wallet {:?}'s history sums to {history}, not its balance \
                     {balance}{allowances_part}",
                    wallet.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn decode<'a>(name: &str, bytes: &'a [u8], encoding: Encoding) -> Result<std::borrow::Cow<'a, str>, Refusal> {
    match encoding {
        Encoding::Utf8 => {
            if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
                return Err(Refusal::new(
                    name,
                    Some(1),
                    "it starts with a byte-order mark; files are UTF-8 without BOM",
                ));
            }
            std::str::from_utf8(bytes).map(std::borrow::Cow::Borrowed).map_err(|error| {
                let line = bytes[..error.valid_up_to()].iter().filter(|byte| **byte == b'\n').count() as u64 + 1;
                Refusal::new(
                    name,
                    Some(line),
                    "it is not UTF-8; legacy files in CP949 (EUC-KR) are read with --encoding cp949",
                )
            })
        }
        Encoding::Cp949 => {
            let (text, _, had_errors) = encoding_rs::EUC_KR.decode(bytes);
            if had_errors {
                return Err(Refusal::new(name, None, "it is not valid CP949 either"));
            }
            Ok(text)
        }
    }
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
