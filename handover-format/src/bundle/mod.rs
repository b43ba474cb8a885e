//! Reading and verifying an operator handover bundle (`docs/HANDOVER.md`, version 1).
//!
//! Verification reads every file once, streaming: it checks the manifest (format, version,
//! kind and sequence), each file's header, row count and SHA-256, every row's syntax, duplicate
//! ids, and for a snapshot the control totals and (with `history_complete`) each wallet's history
//! against its balance. Every refusal names the file, the line and the reason. Nothing here
//! touches the database: the importer applies a bundle only after this has passed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wallet_core::{HistoryKind, MerchantId, Month, TxId, WalletId, Won};

/// The only format this importer reads.
pub const FORMAT: &str = "regional-wallet-handover/1";
/// Largest manifest read, in bytes.
const MANIFEST_BYTES_MAX: u64 = 1 << 20;
/// Longest field accepted in any row, in bytes.
const FIELD_BYTES_MAX: usize = 1_024;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const CITIZENS_FILE: &str = "citizens.csv";
pub const MERCHANTS_FILE: &str = "merchants.csv";
pub const TRANSACTIONS_FILE: &str = "transactions.csv";

pub const CITIZENS_HEADER: &[&str] = &[
    "citizen_id",
    "login",
    "password_hash",
    "wallet_id",
    "balance",
    "month",
    "charged_this_month",
    "cashback_eligible_spent_this_month",
    "created_at",
];
pub const MERCHANTS_HEADER: &[&str] =
    &["merchant_id", "login", "password_hash", "name", "business_number", "bank_account", "category", "receivable"];
pub const TRANSACTIONS_HEADER: &[&str] =
    &["tx_id", "at", "kind", "wallet_id", "merchant_id", "amount", "cashback", "related_tx_id"];

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleKind {
    Snapshot,
    Delta,
}

impl BundleKind {
    /// The manifest's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleKind::Snapshot => "snapshot",
            BundleKind::Delta => "delta",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format: String,
    operator: String,
    currency: String,
    kind: BundleKind,
    sequence: u64,
    as_of: String,
    history_complete: bool,
    files: BTreeMap<String, RawFile>,
    totals: RawTotals,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rows: u64,
    sha256: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTotals {
    citizen_balance_sum: String,
    merchant_receivable_sum: String,
    cashback_budget_remaining: String,
}

/// A file's promised row count and checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub rows: u64,
    pub sha256: String,
}

/// The control totals a bundle promises (after applying it, for a delta).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub citizen_balance_sum: Won,
    pub merchant_receivable_sum: Won,
    pub cashback_budget_remaining: Won,
}

/// A verified manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub operator: String,
    pub kind: BundleKind,
    pub sequence: u64,
    pub as_of: DateTime<FixedOffset>,
    pub history_complete: bool,
    pub files: BTreeMap<String, FileEntry>,
    pub totals: Totals,
}

/// One citizen row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CitizenRow {
    pub citizen_id: String,
    pub login: String,
    pub password_hash: String,
    pub wallet_id: WalletId,
    pub balance: Won,
    pub month: Month,
    pub charged_this_month: Won,
    pub cashback_eligible_spent_this_month: Won,
    pub created_at: DateTime<FixedOffset>,
}

/// One merchant row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantRow {
    pub merchant_id: MerchantId,
    pub login: String,
    pub password_hash: String,
    pub name: String,
    pub business_number: String,
    pub bank_account: String,
    pub category: Option<String>,
    pub receivable: Won,
}

/// One history row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRow {
    pub tx_id: TxId,
    pub at: DateTime<FixedOffset>,
    pub kind: HistoryKind,
    pub wallet_id: Option<WalletId>,
    pub merchant_id: Option<MerchantId>,
    pub amount: Won,
    pub cashback: Won,
    pub related_tx_id: Option<TxId>,
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
}

/// A bundle directory and how to read its files.
pub struct Bundle {
    dir: PathBuf,
    encoding: Encoding,
}

impl Bundle {
    pub fn open(dir: &Path, encoding: Encoding) -> Bundle {
        Bundle { dir: dir.to_owned(), encoding }
    }

    /// Reads and checks `manifest.json`.
    pub fn manifest(&self) -> Result<Manifest, Refusal> {
        let file = MANIFEST_FILE;
        let path = self.dir.join(file);
        let size = std::fs::metadata(&path)
            .map_err(|error| Refusal::new(file, None, format!("cannot read it: {error}")))?
            .len();
        if size > MANIFEST_BYTES_MAX {
            return Err(Refusal::new(file, None, format!("it is {size} bytes; at most {MANIFEST_BYTES_MAX} are read")));
        }
        let text =
            std::fs::read(&path).map_err(|error| Refusal::new(file, None, format!("cannot read it: {error}")))?;
        let text = String::from_utf8(text).map_err(|_| Refusal::new(file, None, "it is not UTF-8"))?;
        parse_manifest(&text)
    }

    /// Verifies the whole bundle; `visit` sees every row (in file order: citizens, merchants,
    /// transactions) so an importer can stage them in the same pass.
    pub fn verify(&self, mut visit: impl FnMut(Row) -> Result<(), Refusal>) -> Result<Verified, Refusal> {
        let manifest = self.manifest()?;
        let mut logins = HashSet::new();
        let mut wallets = HashMap::new();
        let mut wallet_lines: HashMap<WalletId, u64> = HashMap::new();
        let mut citizen_balance_sum = Won::ZERO;
        let mut merchant_receivable_sum = Won::ZERO;
        let mut citizen_ids = HashSet::new();
        let citizens = self.read_file(&manifest, CITIZENS_FILE, CITIZENS_HEADER, |line, fields| {
            let row = parse_citizen(fields).map_err(|reason| Refusal::new(CITIZENS_FILE, Some(line), reason))?;
            let refuse = |reason: String| Refusal::new(CITIZENS_FILE, Some(line), reason);
            if !citizen_ids.insert(row.citizen_id.clone()) {
                return Err(refuse(format!("citizen_id {:?} appears twice", row.citizen_id)));
            }
            wallet_lines.insert(row.wallet_id.clone(), line);
            if wallets.insert(row.wallet_id.clone(), row.balance).is_some() {
                return Err(refuse(format!("wallet_id {:?} appears twice", row.wallet_id.as_str())));
            }
            if !logins.insert(row.login.clone()) {
                return Err(refuse(format!("login {:?} appears twice", row.login)));
            }
            citizen_balance_sum = add_storable(citizen_balance_sum, row.balance)
                .ok_or_else(|| refuse("the balances sum beyond the largest amount this system stores".into()))?;
            visit(Row::Citizen(row))
        })?;
        let mut merchant_ids = HashSet::new();
        let merchants = self.read_file(&manifest, MERCHANTS_FILE, MERCHANTS_HEADER, |line, fields| {
            let row = parse_merchant(fields).map_err(|reason| Refusal::new(MERCHANTS_FILE, Some(line), reason))?;
            let refuse = |reason: String| Refusal::new(MERCHANTS_FILE, Some(line), reason);
            if !merchant_ids.insert(row.merchant_id.clone()) {
                return Err(refuse(format!("merchant_id {:?} appears twice", row.merchant_id.as_str())));
            }
            if !logins.insert(row.login.clone()) {
                return Err(refuse(format!(
                    "login {:?} appears twice (logins are unique across citizens and merchants)",
                    row.login
                )));
            }
            merchant_receivable_sum = add_storable(merchant_receivable_sum, row.receivable)
                .ok_or_else(|| refuse("the receivables sum beyond the largest amount this system stores".into()))?;
            visit(Row::Merchant(row))
        })?;
        let mut tx_ids = HashSet::new();
        let mut history_sums: HashMap<WalletId, Won> = HashMap::new();
        let snapshot = manifest.kind == BundleKind::Snapshot;
        let transactions = self.read_file(&manifest, TRANSACTIONS_FILE, TRANSACTIONS_HEADER, |line, fields| {
            let row =
                parse_transaction(fields).map_err(|reason| Refusal::new(TRANSACTIONS_FILE, Some(line), reason))?;
            let refuse = |reason: String| Refusal::new(TRANSACTIONS_FILE, Some(line), reason);
            if !tx_ids.insert(row.tx_id.clone()) {
                return Err(refuse(format!("tx_id {:?} appears twice", row.tx_id.as_str())));
            }
            if snapshot {
                if let Some(wallet) = &row.wallet_id {
                    if !wallets.contains_key(wallet) {
                        return Err(refuse(format!("wallet_id {:?} is not in citizens.csv", wallet.as_str())));
                    }
                    let sum = history_sums.entry(wallet.clone()).or_insert(Won::ZERO);
                    *sum = add_storable(*sum, row.amount)
                        .ok_or_else(|| refuse("the wallet's history sums beyond the largest amount stored".into()))?;
                }
                if let Some(merchant) = &row.merchant_id {
                    if !merchant_ids.contains(merchant) {
                        return Err(refuse(format!("merchant_id {:?} is not in merchants.csv", merchant.as_str())));
                    }
                }
            }
            visit(Row::Transaction(row))
        })?;
        if snapshot {
            let totals = &manifest.totals;
            if citizen_balance_sum != totals.citizen_balance_sum {
                return Err(Refusal::new(
                    CITIZENS_FILE,
                    None,
                    format!(
                        "the balances sum to {citizen_balance_sum}, but the manifest's citizen_balance_sum is {}",
                        totals.citizen_balance_sum
                    ),
                ));
            }
            if merchant_receivable_sum != totals.merchant_receivable_sum {
                return Err(Refusal::new(
                    MERCHANTS_FILE,
                    None,
                    format!(
                        "the receivables sum to {merchant_receivable_sum}, but the manifest's merchant_receivable_sum is {}",
                        totals.merchant_receivable_sum
                    ),
                ));
            }
            if manifest.history_complete {
                // In citizens.csv's order, so the refusal names the first wallet that is off.
                let mut in_file_order: Vec<(&WalletId, &Won)> = wallets.iter().collect();
                in_file_order.sort_by_key(|(wallet, _)| wallet_lines[*wallet]);
                for (wallet, balance) in in_file_order {
                    let history = history_sums.get(wallet).copied().unwrap_or(Won::ZERO);
                    if history != *balance {
                        return Err(Refusal::new(
                            TRANSACTIONS_FILE,
                            None,
                            format!(
                                "history_complete is true, but wallet {:?}'s history sums to {history}, not its balance {balance}",
                                wallet.as_str()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Verified { manifest, citizens, merchants, transactions, citizen_balance_sum, merchant_receivable_sum })
    }

    /// Reads one CSV file: checks its encoding, header, every row (through `row`), its row count
    /// and its SHA-256 against the manifest. Returns the number of data rows.
    fn read_file(
        &self,
        manifest: &Manifest,
        name: &str,
        header: &[&str],
        mut row: impl FnMut(u64, &[&str]) -> Result<(), Refusal>,
    ) -> Result<u64, Refusal> {
        let entry = manifest
            .files
            .get(name)
            .ok_or_else(|| Refusal::new(MANIFEST_FILE, None, format!("files has no entry for {name}")))?;
        let bytes = std::fs::read(self.dir.join(name))
            .map_err(|error| Refusal::new(name, None, format!("cannot read it: {error}")))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if !digest.eq_ignore_ascii_case(&entry.sha256) {
            return Err(Refusal::new(
                name,
                None,
                format!("its SHA-256 is {digest}, but the manifest says {}", entry.sha256),
            ));
        }
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
            return Err(Refusal::new(name, Some(1), format!("the header must be exactly {}", header.join(","))));
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
            if let Some(field) = fields.iter().find(|field| field.len() > FIELD_BYTES_MAX) {
                return Err(Refusal::new(
                    name,
                    Some(line),
                    format!("a field is {} bytes; at most {FIELD_BYTES_MAX}", field.len()),
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

/// A row met during verification, as [`Bundle::verify`] hands it to its visitor (the importer
/// stages them).
pub enum Row {
    Citizen(CitizenRow),
    Merchant(MerchantRow),
    Transaction(TransactionRow),
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

/// Parses and checks the text of `manifest.json` (public for the fuzz targets).
pub fn parse_manifest(text: &str) -> Result<Manifest, Refusal> {
    let file = MANIFEST_FILE;
    let raw: RawManifest = serde_json::from_str(text)
        .map_err(|error| Refusal::new(file, Some(error.line() as u64), format!("not a valid manifest: {error}")))?;
    if raw.format != FORMAT {
        return Err(Refusal::new(
            file,
            None,
            format!("unknown format version {:?}; this importer reads {FORMAT:?}", raw.format),
        ));
    }
    if raw.currency != "KRW" {
        return Err(Refusal::new(file, None, format!("currency is {:?}; only KRW is handed over", raw.currency)));
    }
    if raw.operator.trim().is_empty() {
        return Err(Refusal::new(file, None, "operator is empty"));
    }
    match (raw.kind, raw.sequence) {
        (BundleKind::Snapshot, 0) | (BundleKind::Delta, 1..) => {}
        (BundleKind::Snapshot, sequence) => {
            return Err(Refusal::new(file, None, format!("a snapshot has sequence 0, not {sequence}")))
        }
        (BundleKind::Delta, _) => return Err(Refusal::new(file, None, "a delta has sequence 1 or more")),
    }
    let as_of = DateTime::parse_from_rfc3339(&raw.as_of).map_err(|error| {
        Refusal::new(file, None, format!("as_of {:?} is not RFC 3339 with an offset: {error}", raw.as_of))
    })?;
    let mut files = BTreeMap::new();
    for name in [CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE] {
        let entry =
            raw.files.get(name).ok_or_else(|| Refusal::new(file, None, format!("files has no entry for {name}")))?;
        let is_hex = entry.sha256.len() == 64 && entry.sha256.bytes().all(|byte| byte.is_ascii_hexdigit());
        if !is_hex {
            return Err(Refusal::new(file, None, format!("the sha256 of {name} is not 64 hex digits")));
        }
        files.insert(name.to_owned(), FileEntry { rows: entry.rows, sha256: entry.sha256.clone() });
    }
    if let Some(extra) = raw.files.keys().find(|name| !files.contains_key(*name)) {
        return Err(Refusal::new(file, None, format!("files names {extra:?}, which is not part of format version 1")));
    }
    let total = |name: &str, text: &str| {
        let name = format!("totals.{name}");
        amount_field(&name, text).map_err(|reason| Refusal::new(file, None, reason))
    };
    let totals = Totals {
        citizen_balance_sum: total("citizen_balance_sum", &raw.totals.citizen_balance_sum)?,
        merchant_receivable_sum: total("merchant_receivable_sum", &raw.totals.merchant_receivable_sum)?,
        cashback_budget_remaining: total("cashback_budget_remaining", &raw.totals.cashback_budget_remaining)?,
    };
    if totals.cashback_budget_remaining.is_negative() {
        return Err(Refusal::new(file, None, "totals.cashback_budget_remaining is negative"));
    }
    Ok(Manifest {
        operator: raw.operator,
        kind: raw.kind,
        sequence: raw.sequence,
        as_of,
        history_complete: raw.history_complete,
        files,
        totals,
    })
}

fn text_field(name: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{name} is empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{name} contains a control character"));
    }
    Ok(value.to_owned())
}

fn amount_field(name: &str, value: &str) -> Result<Won, String> {
    storable(name, Won::parse_signed(value).map_err(|error| format!("{name}: {error}"))?)
}

/// The database keeps money in 64-bit integers: a figure beyond them is refused here, naming
/// it, rather than at import as a failed write. (`Won::parse_signed` reads up to 20 characters,
/// which reach 10^20.)
fn storable(name: &str, won: Won) -> Result<Won, String> {
    if won.to_i64().is_some() {
        Ok(won)
    } else {
        Err(format!("{name} {won} is beyond the largest amount this system stores ({} won)", i64::MAX))
    }
}

/// `sum + won`, if the result is storable.
fn add_storable(sum: Won, won: Won) -> Option<Won> {
    sum.checked_add(won).ok().filter(|total| total.to_i64().is_some())
}

fn non_negative(name: &str, value: &str) -> Result<Won, String> {
    let won = amount_field(name, value)?;
    if won.is_negative() {
        return Err(format!("{name} is {won}; it cannot be negative"));
    }
    Ok(won)
}

fn time_field(name: &str, value: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(value)
        .map_err(|error| format!("{name} {value:?} is not RFC 3339 with an offset: {error}"))
}

/// A PHC string of a scheme the login path verifies, or empty (the citizen sets a new password).
fn password_hash_field(value: &str) -> Result<String, String> {
    const SCHEMES: [&str; 8] =
        ["$argon2id$", "$argon2i$", "$argon2d$", "$2a$", "$2b$", "$2y$", "$scrypt$", "$pbkdf2-sha256$"];
    if value.is_empty() || SCHEMES.iter().any(|scheme| value.starts_with(scheme)) {
        Ok(value.to_owned())
    } else {
        Err("password_hash is not a PHC string of argon2, bcrypt, scrypt or pbkdf2-sha256 (or empty)".to_owned())
    }
}

/// Checks a row has one field per column of `header` (`verify` has checked it before, and a
/// caller streaming a file of its own may not have).
fn field_count(fields: &[&str], header: &[&str]) -> Result<(), String> {
    if fields.len() == header.len() {
        Ok(())
    } else {
        Err(format!("it has {} fields; {} are expected", fields.len(), header.len()))
    }
}

/// Parses one row of `citizens.csv`, its fields in [`CITIZENS_HEADER`]'s order: every field's
/// syntax, nothing across rows. Public for readers that stream a bundle (loadgen's delta).
pub fn parse_citizen(fields: &[&str]) -> Result<CitizenRow, String> {
    field_count(fields, CITIZENS_HEADER)?;
    Ok(CitizenRow {
        citizen_id: WalletId::parse(fields[0])
            .map(|_| fields[0].to_owned())
            .map_err(|error| format!("citizen_id: {error}"))?,
        login: text_field("login", fields[1])?,
        password_hash: password_hash_field(fields[2])?,
        wallet_id: WalletId::parse(fields[3]).map_err(|error| format!("wallet_id: {error}"))?,
        balance: non_negative("balance", fields[4])?,
        month: Month::parse(fields[5]).map_err(|error| format!("month: {error}"))?,
        charged_this_month: non_negative("charged_this_month", fields[6])?,
        cashback_eligible_spent_this_month: non_negative("cashback_eligible_spent_this_month", fields[7])?,
        created_at: time_field("created_at", fields[8])?,
    })
}

/// Parses one row of `merchants.csv`, as [`parse_citizen`].
pub fn parse_merchant(fields: &[&str]) -> Result<MerchantRow, String> {
    field_count(fields, MERCHANTS_HEADER)?;
    Ok(MerchantRow {
        merchant_id: MerchantId::parse(fields[0]).map_err(|error| format!("merchant_id: {error}"))?,
        login: text_field("login", fields[1])?,
        password_hash: password_hash_field(fields[2])?,
        name: text_field("name", fields[3])?,
        business_number: text_field("business_number", fields[4])?,
        bank_account: text_field("bank_account", fields[5])?,
        category: (!fields[6].is_empty()).then(|| text_field("category", fields[6])).transpose()?,
        receivable: amount_field("receivable", fields[7])?,
    })
}

fn history_kind(value: &str) -> Result<HistoryKind, String> {
    let kinds = [
        HistoryKind::Charge,
        HistoryKind::Payment,
        HistoryKind::Cashback,
        HistoryKind::Refund,
        HistoryKind::CashbackReversal,
        HistoryKind::GiftIn,
        HistoryKind::GiftOut,
        HistoryKind::MigratedOpeningBalance,
    ];
    kinds.into_iter().find(|kind| kind.as_str() == value).ok_or_else(|| {
        let names: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        format!("kind {value:?} is unknown; it is one of {}", names.join(", "))
    })
}

/// Parses one row of `transactions.csv`, as [`parse_citizen`].
pub fn parse_transaction(fields: &[&str]) -> Result<TransactionRow, String> {
    field_count(fields, TRANSACTIONS_HEADER)?;
    let optional_wallet = |value: &str| (!value.is_empty()).then(|| WalletId::parse(value)).transpose();
    let row = TransactionRow {
        tx_id: TxId::parse(fields[0]).map_err(|error| format!("tx_id: {error}"))?,
        at: time_field("at", fields[1])?,
        kind: history_kind(fields[2])?,
        wallet_id: optional_wallet(fields[3]).map_err(|error| format!("wallet_id: {error}"))?,
        merchant_id: (!fields[4].is_empty())
            .then(|| MerchantId::parse(fields[4]))
            .transpose()
            .map_err(|error| format!("merchant_id: {error}"))?,
        amount: amount_field("amount", fields[5])?,
        cashback: if fields[6].is_empty() { Won::ZERO } else { non_negative("cashback", fields[6])? },
        related_tx_id: (!fields[7].is_empty())
            .then(|| TxId::parse(fields[7]))
            .transpose()
            .map_err(|error| format!("related_tx_id: {error}"))?,
    };
    if row.wallet_id.is_none() && row.merchant_id.is_none() {
        return Err("a transaction names neither a wallet_id nor a merchant_id".to_owned());
    }
    if row.kind == HistoryKind::Refund && row.related_tx_id.is_none() {
        return Err("a refund must name its payment in related_tx_id".to_owned());
    }
    Ok(row)
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
}
