//! `manifest.json`: what a bundle is, which version of the format, its files' checksums and its
//! control totals. Version 2 adds three files, three totals and the last closed business date.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer};
use wallet_core::{BusinessDate, Won};

use super::rows::{amount_field, non_negative};
use super::{
    Refusal, ALLOWANCES_FILE, CITIZENS_FILE, MANIFEST_FILE, MERCHANTS_FILE, POLICY_FILE, PROGRAMS_FILE,
    TRANSACTIONS_FILE,
};

/// The format string of version 1 (what `wallet-loadgen` still writes).
pub const FORMAT: &str = "regional-wallet-handover/1";
/// The format string of version 2 (what `wallet-server handover export` writes).
pub const FORMAT_V2: &str = "regional-wallet-handover/2";

/// A version of the format. The importer reads both; a bundle's files and columns follow its
/// manifest's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// The manifest's `format`.
    pub fn format(self) -> &'static str {
        match self {
            Version::V1 => FORMAT,
            Version::V2 => FORMAT_V2,
        }
    }

    /// The files `files` of the manifest lists, in the order they are read.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Version::V1 => &[CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE],
            Version::V2 => {
                &[POLICY_FILE, PROGRAMS_FILE, CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE, ALLOWANCES_FILE]
            }
        }
    }

    fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }
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
    /// Version 2 only; `Some(Null)` when given as null, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    last_closed_business_date: Option<serde_json::Value>,
}

/// A field that is there, null or not (serde reads a null `Option` as absent).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// Required for the CSV files; `policy.json` is one policy (1 if given).
    rows: Option<u64>,
    sha256: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTotals {
    citizen_balance_sum: String,
    merchant_receivable_sum: String,
    cashback_budget_remaining: String,
    // Version 2.
    citizen_bonus_sum: Option<String>,
    allowance_outstanding_sum: Option<String>,
    program_budget_remaining_sum: Option<String>,
}

/// A file's promised row count and checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub rows: u64,
    pub sha256: String,
}

/// The control totals of version 1 (after applying the bundle, for a delta).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub citizen_balance_sum: Won,
    pub merchant_receivable_sum: Won,
    pub cashback_budget_remaining: Won,
}

/// The totals version 2 adds (after applying the bundle, for a delta). Each is zero or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotalsV2 {
    /// The bonus purses of the citizens' rows (part of `citizen_balance_sum`).
    pub citizen_bonus_sum: Won,
    /// What the unexpired grants of `allowances.csv` hold.
    pub allowance_outstanding_sum: Won,
    /// The programs' remaining budgets (`programs.csv`).
    pub program_budget_remaining_sum: Won,
}

/// What version 2 adds to the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestV2 {
    pub totals: TotalsV2,
    /// The last business date the outgoing operator closed, if any.
    pub last_closed_business_date: Option<BusinessDate>,
}

/// A verified manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub version: Version,
    pub operator: String,
    pub kind: BundleKind,
    pub sequence: u64,
    pub as_of: DateTime<FixedOffset>,
    pub history_complete: bool,
    pub files: BTreeMap<String, FileEntry>,
    pub totals: Totals,
    /// `Some` exactly for version 2.
    pub v2: Option<ManifestV2>,
}

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal::new(MANIFEST_FILE, None, reason)
}

/// Parses and checks the text of `manifest.json` (public for the fuzz targets).
pub fn parse_manifest(text: &str) -> Result<Manifest, Refusal> {
    let raw: RawManifest = serde_json::from_str(text).map_err(|error| {
        Refusal::new(MANIFEST_FILE, Some(error.line() as u64), format!("not a valid manifest: {error}"))
    })?;
    let version = [Version::V1, Version::V2].into_iter().find(|version| version.format() == raw.format);
    let version = version.ok_or_else(|| {
        refuse(format!("unknown format version {:?}; this importer reads {FORMAT:?} and {FORMAT_V2:?}", raw.format))
    })?;
    if raw.currency != "KRW" {
        return Err(refuse(format!("currency is {:?}; only KRW is handed over", raw.currency)));
    }
    if raw.operator.trim().is_empty() {
        return Err(refuse("operator is empty"));
    }
    match (raw.kind, raw.sequence) {
        (BundleKind::Snapshot, 0) | (BundleKind::Delta, 1..) => {}
        (BundleKind::Snapshot, sequence) => return Err(refuse(format!("a snapshot has sequence 0, not {sequence}"))),
        (BundleKind::Delta, _) => return Err(refuse("a delta has sequence 1 or more")),
    }
    let as_of = DateTime::parse_from_rfc3339(&raw.as_of)
        .map_err(|error| refuse(format!("as_of {:?} is not RFC 3339 with an offset: {error}", raw.as_of)))?;
    let files = file_entries(version, &raw.files)?;
    let total = |name: &str, text: &str| amount_field(&format!("totals.{name}"), text).map_err(refuse);
    let totals = Totals {
        citizen_balance_sum: total("citizen_balance_sum", &raw.totals.citizen_balance_sum)?,
        merchant_receivable_sum: total("merchant_receivable_sum", &raw.totals.merchant_receivable_sum)?,
        cashback_budget_remaining: total("cashback_budget_remaining", &raw.totals.cashback_budget_remaining)?,
    };
    if totals.cashback_budget_remaining.is_negative() {
        return Err(refuse("totals.cashback_budget_remaining is negative"));
    }
    let v2 = match version {
        Version::V1 => {
            refuse_added_fields(&raw)?;
            None
        }
        Version::V2 => Some(manifest_v2(&raw, as_of)?),
    };
    Ok(Manifest {
        version,
        operator: raw.operator,
        kind: raw.kind,
        sequence: raw.sequence,
        as_of,
        history_complete: raw.history_complete,
        files,
        totals,
        v2,
    })
}

/// The version's files, each with a checksum (and a row count, for a CSV file), and no other.
fn file_entries(version: Version, raw: &BTreeMap<String, RawFile>) -> Result<BTreeMap<String, FileEntry>, Refusal> {
    let mut files = BTreeMap::new();
    for &name in version.files() {
        let entry = raw.get(name).ok_or_else(|| refuse(format!("files has no entry for {name}")))?;
        let is_hex = entry.sha256.len() == 64 && entry.sha256.bytes().all(|byte| byte.is_ascii_hexdigit());
        if !is_hex {
            return Err(refuse(format!("the sha256 of {name} is not 64 hex digits")));
        }
        let rows = match (name, entry.rows) {
            (POLICY_FILE, None | Some(1)) => 1,
            (POLICY_FILE, Some(rows)) => {
                return Err(refuse(format!("{POLICY_FILE} holds one policy, but files gives it {rows} rows")))
            }
            (_, Some(rows)) => rows,
            (_, None) => return Err(refuse(format!("files gives no rows for {name}"))),
        };
        files.insert(name.to_owned(), FileEntry { rows, sha256: entry.sha256.clone() });
    }
    if let Some(extra) = raw.keys().find(|name| !files.contains_key(*name)) {
        let number = version.number();
        return Err(refuse(format!("files names {extra:?}, which is not part of format version {number}")));
    }
    Ok(files)
}

/// A version 1 manifest has none of version 2's fields.
fn refuse_added_fields(raw: &RawManifest) -> Result<(), Refusal> {
    let totals = &raw.totals;
    let added = [
        ("totals.citizen_bonus_sum", totals.citizen_bonus_sum.is_some()),
        ("totals.allowance_outstanding_sum", totals.allowance_outstanding_sum.is_some()),
        ("totals.program_budget_remaining_sum", totals.program_budget_remaining_sum.is_some()),
        ("last_closed_business_date", raw.last_closed_business_date.is_some()),
    ];
    match added.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(refuse(format!("{name} is part of format version 2, not of {FORMAT:?}"))),
        None => Ok(()),
    }
}

/// Version 2's totals and last closed business date, all required (the date may be null).
fn manifest_v2(raw: &RawManifest, as_of: DateTime<FixedOffset>) -> Result<ManifestV2, Refusal> {
    let total = |name: &str, text: &Option<String>| {
        let name = format!("totals.{name}");
        let text = text.as_deref().ok_or_else(|| refuse(format!("{name} is missing (format version 2 has it)")))?;
        non_negative(&name, text).map_err(refuse)
    };
    let totals = TotalsV2 {
        citizen_bonus_sum: total("citizen_bonus_sum", &raw.totals.citizen_bonus_sum)?,
        allowance_outstanding_sum: total("allowance_outstanding_sum", &raw.totals.allowance_outstanding_sum)?,
        program_budget_remaining_sum: total("program_budget_remaining_sum", &raw.totals.program_budget_remaining_sum)?,
    };
    let last_closed_business_date = match &raw.last_closed_business_date {
        None => return Err(refuse("last_closed_business_date is missing (format version 2 has it, or null)")),
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => {
            let date =
                BusinessDate::parse(text).map_err(|error| refuse(format!("last_closed_business_date: {error}")))?;
            // Only dates before today (KST) can be closed.
            let as_of_date = BusinessDate::of(as_of.with_timezone(&Utc));
            if date >= as_of_date {
                return Err(refuse(format!(
                    "last_closed_business_date {date} is not before the business date of as_of ({as_of_date}); \
                     only past dates are closed"
                )));
            }
            Some(date)
        }
        Some(other) => {
            return Err(refuse(format!("last_closed_business_date is {other}; it is a \"YYYY-MM-DD\" string or null")))
        }
    };
    Ok(ManifestV2 { totals, last_closed_business_date })
}
