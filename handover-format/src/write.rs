//! Writing a bundle: CSV files hashed and counted as they are written, and the manifest that
//! names them with their row counts and checksums.
//!
//! The server's export and loadgen's generated bundles both write through here, so what they
//! write is what [`crate::bundle`] reads: LF line ends, quoting only where RFC 4180 needs it (as
//! HANDOVER.md's examples), and a manifest of format version 1. Files are streamed: a city's
//! history is never held in memory, and its SHA-256 is taken on the bytes as they go out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::bundle::{BundleKind, Totals, FORMAT, MANIFEST_FILE};

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
    /// The three CSV files, as [`HashedCsv::finish`] returned them.
    pub files: &'a [WrittenFile],
    /// For a delta, the totals after applying it.
    pub totals: Totals,
}

/// Writes `dir/manifest.json` (pretty JSON, no trailing newline); returns the SHA-256 of its
/// bytes in lowercase hex.
pub fn write_manifest(dir: &Path, manifest: &ManifestOut) -> Result<String, String> {
    let files: serde_json::Map<String, serde_json::Value> = manifest
        .files
        .iter()
        .map(|file| (file.name.to_owned(), json!({"rows": file.rows, "sha256": file.sha256})))
        .collect();
    let totals = &manifest.totals;
    let document = json!({
        "format": FORMAT,
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
    let text =
        serde_json::to_string_pretty(&document).map_err(|error| format!("cannot encode the manifest: {error}"))?;
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, &text).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok(hex::encode(Sha256::digest(text.as_bytes())))
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
}
