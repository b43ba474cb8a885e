//! Writing a bundle: CSV files hashed and counted as they are written, `policy.json`, and the
//! manifest that names them with their row counts and checksums.
//!
//! The server's export and loadgen's generated bundles both write through here, so what they
//! write is what [`crate::bundle`] reads: LF line ends, quoting only where RFC 4180 needs it (as
//! HANDOVER.md's examples), and a manifest of format version 2 ([`write_manifest_v2`], the
//! server's export) or 1 ([`write_manifest`], loadgen's generated bundles). Files are streamed: a
//! city's history is never held in memory, and its SHA-256 is taken on the bytes as they go out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use serde_json::json;
use sha2::{Digest, Sha256};
use wallet_core::Policy;

use crate::bundle::{BundleKind, ManifestV2, Totals, Version, MANIFEST_FILE, POLICY_FILE};

/// The buffer between the CSV writer and the file: large writes, few system calls.
const FILE_BUFFER_BYTES: usize = 1 << 20;

/// Whether [`HashedCsv::finish`] waits for the file to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Flushed and synced (`fsync`): for an export that is recorded as done once written.
    Synced,
    /// Flushed to the operating system only: for generated files that can be made again.
    Flushed,
}

/// A CSV file of a bundle being written: its rows counted and its bytes hashed as they go.
pub struct HashedCsv {
    name: &'static str,
    writer: csv::Writer<HashingWriter>,
    rows: u64,
}

/// A writer that hashes every byte it passes to the file.
struct HashingWriter {
    file: BufWriter<File>,
    hasher: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A finished file: its entry in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    pub name: &'static str,
    /// Data rows, the header not counted.
    pub rows: u64,
    /// SHA-256 of the file's bytes, in lowercase hex.
    pub sha256: String,
}

impl HashedCsv {
    /// Creates (or truncates) `dir/name` and writes its header line.
    pub fn create(dir: &Path, name: &'static str, header: &[&str]) -> Result<HashedCsv, String> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        let inner = HashingWriter { file: BufWriter::with_capacity(FILE_BUFFER_BYTES, file), hasher: Sha256::new() };
        let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(inner);
        writer.write_record(header).map_err(|error| format!("cannot write {name}: {error}"))?;
        Ok(HashedCsv { name, writer, rows: 0 })
    }

    /// Writes one data row.
    pub fn row(&mut self, fields: &[&str]) -> Result<(), String> {
        self.rows += 1;
        self.writer.write_record(fields).map_err(|error| format!("cannot write {}: {error}", self.name))
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the file (and with [`Durability::Synced`], syncs it); its manifest entry.
    pub fn finish(self, durability: Durability) -> Result<WrittenFile, String> {
        let name = self.name;
        let failed = |error: &dyn std::fmt::Display| format!("cannot write {name}: {error}");
        let mut inner = self.writer.into_inner().map_err(|error| failed(&error))?;
        inner.file.flush().map_err(|error| failed(&error))?;
        if durability == Durability::Synced {
            inner.file.get_ref().sync_all().map_err(|error| failed(&error))?;
        }
        Ok(WrittenFile { name, rows: self.rows, sha256: hex::encode(inner.hasher.finalize()) })
    }
}

/// What a manifest says, as a writer knows it.
#[derive(Clone, Debug)]
pub struct ManifestOut<'a> {
    pub operator: &'a str,
    pub kind: BundleKind,
    pub sequence: u64,
    pub as_of: DateTime<FixedOffset>,
    pub history_complete: bool,
    /// The bundle's files, as [`HashedCsv::finish`] (and, for version 2, [`write_policy`])
    /// returned them.
    pub files: &'a [WrittenFile],
    /// For a delta, the totals after applying it.
    pub totals: Totals,
}

/// Writes `dir/manifest.json` of format version 1 (pretty JSON, no trailing newline); returns
/// the SHA-256 of its bytes in lowercase hex.
pub fn write_manifest(dir: &Path, manifest: &ManifestOut) -> Result<String, String> {
    write_manifest_of(dir, manifest, None)
}

/// Writes `dir/manifest.json` of format version 2, with what it adds; as [`write_manifest`].
pub fn write_manifest_v2(dir: &Path, manifest: &ManifestOut, v2: &ManifestV2) -> Result<String, String> {
    write_manifest_of(dir, manifest, Some(v2))
}

fn write_manifest_of(dir: &Path, manifest: &ManifestOut, v2: Option<&ManifestV2>) -> Result<String, String> {
    let files: serde_json::Map<String, serde_json::Value> = manifest
        .files
        .iter()
        .map(|file| (file.name.to_owned(), json!({"rows": file.rows, "sha256": file.sha256})))
        .collect();
    let totals = &manifest.totals;
    let version = if v2.is_some() { Version::V2 } else { Version::V1 };
    let mut document = json!({
        "format": version.format(),
        "operator": manifest.operator,
        "currency": "KRW",
        "kind": manifest.kind.as_str(),
        "sequence": manifest.sequence,
        "as_of": manifest.as_of.to_rfc3339(),
        "history_complete": manifest.history_complete,
        "files": files,
        "totals": {
            "citizen_balance_sum": totals.citizen_balance_sum.to_string(),
            "merchant_receivable_sum": totals.merchant_receivable_sum.to_string(),
            "cashback_budget_remaining": totals.cashback_budget_remaining.to_string(),
        },
    });
    if let Some(v2) = v2 {
        let added = &v2.totals;
        document["totals"]["citizen_bonus_sum"] = json!(added.citizen_bonus_sum.to_string());
        document["totals"]["allowance_outstanding_sum"] = json!(added.allowance_outstanding_sum.to_string());
        document["totals"]["program_budget_remaining_sum"] = json!(added.program_budget_remaining_sum.to_string());
        document["last_closed_business_date"] = json!(v2.last_closed_business_date.map(|date| date.to_string()));
    }
    let text =
        serde_json::to_string_pretty(&document).map_err(|error| format!("cannot encode the manifest: {error}"))?;
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, &text).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok(hex::encode(Sha256::digest(text.as_bytes())))
}

/// Writes `dir/policy.json` (version 2): the policy as `GET /v1/admin/policy` shows it, pretty
/// JSON. Its manifest entry counts it as one row.
pub fn write_policy(dir: &Path, policy: &Policy, durability: Durability) -> Result<WrittenFile, String> {
    let text = serde_json::to_string_pretty(policy).map_err(|error| format!("cannot encode the policy: {error}"))?;
    let path = dir.join(POLICY_FILE);
    let failed = |error: std::io::Error| format!("cannot write {}: {error}", path.display());
    let mut file = File::create(&path).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    if durability == Durability::Synced {
        file.sync_all().map_err(failed)?;
    }
    Ok(WrittenFile { name: POLICY_FILE, rows: 1, sha256: hex::encode(Sha256::digest(text.as_bytes())) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{
        Bundle, Encoding, Row, CITIZENS_FILE, CITIZENS_HEADER, MERCHANTS_FILE, MERCHANTS_HEADER, TRANSACTIONS_FILE,
        TRANSACTIONS_HEADER,
    };
    use wallet_core::Won;

    /// What the writer writes, the reader reads: quoting where a field needs it, checksums and
    /// row counts in the manifest, the totals.
    #[test]
    fn a_written_bundle_verifies() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut citizens = HashedCsv::create(dir.path(), CITIZENS_FILE, CITIZENS_HEADER).expect("created");
        citizens
            .row(&["c-1", "kim", "", "w-1", "1500", "2026-11", "2000", "500", "2026-01-02T03:04:05+09:00"])
            .expect("a row");
        let mut merchants = HashedCsv::create(dir.path(), MERCHANTS_FILE, MERCHANTS_HEADER).expect("created");
        merchants
            .row(&["m-1", "shop", "", "Kim, Lee & \"Sons\"", "123-45-67890", "bank 1", "", "-500"])
            .expect("a row");
        let mut transactions = HashedCsv::create(dir.path(), TRANSACTIONS_FILE, TRANSACTIONS_HEADER).expect("created");
        transactions.row(&["t-1", "2026-11-01T10:00:00+09:00", "charge", "w-1", "", "2000", "", ""]).expect("a row");
        transactions
            .row(&["t-2", "2026-11-01T11:00:00+09:00", "payment", "w-1", "m-1", "-500", "0", ""])
            .expect("a row");
        assert_eq!(transactions.rows(), 2);
        let files = [
            citizens.finish(Durability::Synced).expect("finished"),
            merchants.finish(Durability::Flushed).expect("finished"),
            transactions.finish(Durability::Flushed).expect("finished"),
        ];
        let totals = Totals {
            citizen_balance_sum: Won::from_i64(1500),
            merchant_receivable_sum: Won::from_i64(-500),
            cashback_budget_remaining: Won::from_i64(7),
        };
        let manifest = ManifestOut {
            operator: "Writer Test Co.",
            kind: BundleKind::Snapshot,
            sequence: 0,
            as_of: DateTime::parse_from_rfc3339("2026-11-20T00:00:00+09:00").expect("a time"),
            history_complete: true,
            files: &files,
            totals,
        };
        let sha256 = write_manifest(dir.path(), &manifest).expect("written");
        let bytes = std::fs::read(dir.path().join(MANIFEST_FILE)).expect("written");
        assert_eq!(sha256, hex::encode(Sha256::digest(&bytes)));

        let mut names = Vec::new();
        let verified = Bundle::open(dir.path(), Encoding::Utf8)
            .verify(|row| {
                if let Row::Merchant(merchant) = row {
                    names.push(merchant.name);
                }
                Ok(())
            })
            .expect("a written bundle verifies");
        assert_eq!(names, ["Kim, Lee & \"Sons\""]);
        assert_eq!((verified.citizens, verified.merchants, verified.transactions), (1, 1, 2));
        assert_eq!(verified.manifest.totals, totals);
        assert_eq!(verified.manifest.operator, "Writer Test Co.");
    }

    /// The rows of a small version 2 bundle, each file's rows as fields; tests change one and
    /// write it with [`write_v2`].
    struct V2Rows {
        programs: Vec<Vec<String>>,
        citizens: Vec<Vec<String>>,
        merchants: Vec<Vec<String>>,
        transactions: Vec<Vec<String>>,
        allowances: Vec<Vec<String>>,
        totals_v2: crate::bundle::TotalsV2,
    }

    fn fields(line: &str) -> Vec<String> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
        reader.records().next().expect("a line").expect("CSV").iter().map(str::to_owned).collect()
    }

    /// A citizen with own 10000 and bonus 1000 and an allowance of 3000 (history complete), a
    /// merchant carrying -700 into its next close, a program with 50000 funded.
    fn v2_rows() -> V2Rows {
        let definition = r#""{""kind"":""allowance"",""name"":""youth"",""valid_days"":90,""merchant_categories"":[""cafe""],""merchant_annual_revenue_max"":""3000000000""}""#;
        let budget = r#""{""funded"":""50000"",""granted"":""5000"",""spent"":""2000"",""returned"":""0"",""outstanding"":""3000"",""remaining"":""45000""}""#;
        V2Rows {
            programs: vec![fields(&format!("p-1,allowance,youth,{definition},{budget}"))],
            citizens: vec![
                fields("c-1,kim,,w-1,11000,2026-11,12000,0,2026-01-02T03:04:05+09:00,1000,0,2026-01-02T03:05:00+09:00,idv-77,obk-12,***-**-1234"),
                fields("c-2,lee,,w-2,2000,2026-11,0,0,2026-01-02T03:04:05+09:00,0,0,,,,"),
            ],
            merchants: vec![fields("m-1,shop,,Shop,123-45-67890,bank 1,cafe,-700,120000000,-700")],
            transactions: vec![
                fields("t-1,2026-11-01T10:00:00+09:00,charge,w-1,,12000,,,"),
                fields("t-2,2026-11-01T11:00:00+09:00,gift_out,w-1,,-2000,,,w-2"),
                fields("t-3,2026-11-01T11:00:00+09:00,gift_in,w-2,,2000,,,w-1"),
                fields("t-4,2026-11-02T10:00:00+09:00,allowance_granted,w-1,,5000,,,"),
                fields("t-5,2026-11-03T10:00:00+09:00,payment,w-1,m-1,-2000,0,,"),
                fields("t-6,2026-11-03T12:00:00+09:00,cashback,w-1,m-1,1000,,t-5,"),
            ],
            allowances: vec![fields("g-1,p-1,w-1,3000,2026-11-02T10:00:00+09:00,2027-02-01T00:00:00+09:00")],
            totals_v2: crate::bundle::TotalsV2 {
                citizen_bonus_sum: Won::from_i64(1000),
                allowance_outstanding_sum: Won::from_i64(3000),
                program_budget_remaining_sum: Won::from_i64(45000),
            },
        }
    }

    /// Writes `rows` as a version 2 snapshot as of 2026-11-20 into `dir`.
    fn write_v2(dir: &Path, rows: &V2Rows) {
        use crate::bundle::{
            ALLOWANCES_FILE, ALLOWANCES_HEADER, CITIZENS_HEADER_V2, MERCHANTS_HEADER_V2, PROGRAMS_FILE,
            PROGRAMS_HEADER, TRANSACTIONS_HEADER_V2,
        };
        let write = |name: &'static str, header: &[&str], lines: &[Vec<String>]| {
            let mut file = HashedCsv::create(dir, name, header).expect("created");
            for line in lines {
                file.row(&line.iter().map(String::as_str).collect::<Vec<_>>()).expect("a row");
            }
            file.finish(Durability::Flushed).expect("finished")
        };
        let files = [
            write_policy(dir, &Policy::default(), Durability::Flushed).expect("the policy"),
            write(PROGRAMS_FILE, PROGRAMS_HEADER, &rows.programs),
            write(CITIZENS_FILE, CITIZENS_HEADER_V2, &rows.citizens),
            write(MERCHANTS_FILE, MERCHANTS_HEADER_V2, &rows.merchants),
            write(TRANSACTIONS_FILE, TRANSACTIONS_HEADER_V2, &rows.transactions),
            write(ALLOWANCES_FILE, ALLOWANCES_HEADER, &rows.allowances),
        ];
        let manifest = ManifestOut {
            operator: "Writer Test Co.",
            kind: BundleKind::Snapshot,
            sequence: 0,
            as_of: DateTime::parse_from_rfc3339("2026-11-20T00:00:00+09:00").expect("a time"),
            history_complete: true,
            files: &files,
            totals: Totals {
                citizen_balance_sum: Won::from_i64(13_000),
                merchant_receivable_sum: Won::from_i64(-700),
                cashback_budget_remaining: Won::ZERO,
            },
        };
        let date = wallet_core::BusinessDate::parse("2026-11-19").expect("a date");
        let v2 = ManifestV2 { totals: rows.totals_v2, last_closed_business_date: Some(date) };
        write_manifest_v2(dir, &manifest, &v2).expect("written");
    }

    /// Version 2 as written reads back whole: the policy, programs, the added columns and the
    /// allowances; its history adds up to own, bonus and allowances.
    #[test]
    fn a_written_version_2_bundle_verifies() {
        use crate::bundle::{Record, Version};
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_v2(dir.path(), &v2_rows());
        let mut records = Vec::new();
        let verified = Bundle::open(dir.path(), Encoding::Utf8)
            .verify_records(|record| {
                records.push(record);
                Ok(())
            })
            .expect("a written version 2 bundle verifies");
        assert_eq!(verified.manifest.version, Version::V2);
        assert_eq!(verified.policy, Some(Policy::default()));
        assert_eq!((verified.programs, verified.allowances), (1, 1));
        let v2 = verified.manifest.v2.expect("version 2's manifest fields");
        assert_eq!(v2.last_closed_business_date.map(|date| date.to_string()).as_deref(), Some("2026-11-19"));
        assert_eq!(records.len(), 1 + 2 + 1 + 6 + 1);
        let Some(Record::Program(program)) = records.first() else { panic!("programs are read first") };
        assert_eq!(program.rules.merchant_categories, ["cafe"]);
        assert_eq!(program.budget.remaining(), Won::from_i64(45_000));
        let Some(Record::Row(Row::Citizen(kim))) = records.get(1) else { panic!("then citizens") };
        let kim_v2 = kim.v2.as_ref().expect("version 2 columns");
        assert_eq!((kim.bonus(), kim_v2.identity_ref.as_deref()), (Won::from_i64(1000), Some("idv-77")));
        let Some(Record::Row(Row::Merchant(shop))) = records.get(3) else { panic!("then merchants") };
        assert_eq!(shop.v2.as_ref().map(|v2| v2.carried_in), Some(Won::from_i64(-700)));
        let Some(Record::Row(Row::Transaction(gift))) = records.get(5) else { panic!("then transactions") };
        assert_eq!(gift.counterparty_wallet_id.as_ref().map(|id| id.as_str()), Some("w-2"));
        assert!(matches!(records.last(), Some(Record::Allowance(grant)) if grant.amount.won() == Won::from_i64(3000)));
    }

    /// Each check version 2 adds refuses naming the file and the line.
    #[test]
    fn version_2_checks_name_file_and_line() {
        let refusal = |change: &dyn Fn(&mut V2Rows)| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let mut rows = v2_rows();
            change(&mut rows);
            write_v2(dir.path(), &rows);
            Bundle::open(dir.path(), Encoding::Utf8).verify(|_| Ok(())).expect_err("refused").to_string()
        };
        let expired = refusal(&|rows| rows.allowances[0][5] = "2026-11-20T00:00:00+09:00".into());
        assert!(expired.starts_with("allowances.csv:2: grant \"g-1\" expired at"), "{expired}");
        let orphan = refusal(&|rows| rows.allowances[0][1] = "p-9".into());
        assert_eq!(orphan, "allowances.csv:2: program_id \"p-9\" is not in programs.csv");
        let stranger = refusal(&|rows| rows.allowances[0][2] = "w-9".into());
        assert_eq!(stranger, "allowances.csv:2: wallet_id \"w-9\" is not in citizens.csv");
        let rich = refusal(&|rows| rows.citizens[1][9] = "2001".into());
        assert!(rich.starts_with("citizens.csv:3: bonus 2001 is more than balance 2000"), "{rich}");
        let total = refusal(&|rows| rows.totals_v2.citizen_bonus_sum = Won::from_i64(999));
        assert!(total.contains("citizens.csv: the bonuses sum to 1000, but the manifest's citizen_bonus_sum is 999"));
        let total = refusal(&|rows| rows.totals_v2.allowance_outstanding_sum = Won::from_i64(1));
        assert!(total.contains("allowances.csv: the allowances sum to 3000"), "{total}");
        let total = refusal(&|rows| rows.totals_v2.program_budget_remaining_sum = Won::from_i64(1));
        assert!(total.contains("programs.csv: the remaining budgets sum to 45000"), "{total}");
        let budget = refusal(&|rows| rows.programs[0][4] = rows.programs[0][4].replace("45000", "45001"));
        assert!(budget.starts_with("programs.csv:2: budget's remaining 45001 is not"), "{budget}");
        let history = refusal(&|rows| {
            rows.allowances[0][3] = "2999".into();
            rows.totals_v2.allowance_outstanding_sum = Won::from_i64(2999);
        });
        assert!(
            history.contains("w-1\"'s history sums to 14000, not its balance 11000 and allowances 2999"),
            "{history}"
        );
        let carried = refusal(&|rows| rows.merchants[0][9] = "5".into());
        assert!(carried.starts_with("merchants.csv:2: carried_in is 5"), "{carried}");
        let counterparty = refusal(&|rows| rows.transactions[0][8] = "w-2".into());
        assert!(counterparty.starts_with("transactions.csv:2: counterparty_wallet_id is for gift"), "{counterparty}");
    }
}
