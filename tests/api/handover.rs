//! `wallet-server handover verify`: bundles built here, a good one and one of each fault of
//! HANDOVER.md, each refused with its file, line and reason.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CITIZENS_HEADER: &str =
    "citizen_id,login,password_hash,wallet_id,balance,month,charged_this_month,cashback_eligible_spent_this_month,created_at";
const MERCHANTS_HEADER: &str = "merchant_id,login,password_hash,name,business_number,bank_account,category,receivable";
const TRANSACTIONS_HEADER: &str = "tx_id,at,kind,wallet_id,merchant_id,amount,cashback,related_tx_id";

/// A bundle's files as text (or bytes), and its manifest, derived from them unless changed.
struct BundleFiles {
    citizens: Vec<u8>,
    merchants: Vec<u8>,
    transactions: Vec<u8>,
    manifest: Value,
}

fn lines(header: &str, rows: &[&str]) -> Vec<u8> {
    let mut text = String::from(header);
    text.push('\n');
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text.into_bytes()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn rows(bytes: &[u8]) -> usize {
    bytes.iter().filter(|byte| **byte == b'\n').count() - 1
}

impl BundleFiles {
    /// Two citizens (30,000 and 12,000 won, history complete), one merchant owed 5,000 won.
    fn good() -> BundleFiles {
        let citizens = lines(
            CITIZENS_HEADER,
            &[
                "C-1,minji,\"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\",W-1,30000,2026-11,50000,20000,2025-03-02T09:00:00+09:00",
                "C-2,\"jun, the elder\",,W-2,12000,2026-11,12000,0,2025-04-01T10:00:00+09:00",
            ],
        );
        let merchants = lines(MERCHANTS_HEADER, &["M-1,bakery,,\"Bakery, Inc\",123-45-67890,BNK 001,food,5000"]);
        let transactions = lines(
            TRANSACTIONS_HEADER,
            &[
                "T-1,2026-11-01T10:00:00+09:00,charge,W-1,,50000,,",
                "T-2,2026-11-02T10:00:00+09:00,payment,W-1,M-1,-20000,2000,",
                "T-3,2026-11-02T10:00:00+09:00,cashback,W-1,M-1,2000,,",
                "T-4,2026-11-03T10:00:00+09:00,refund,W-1,M-1,1000,,T-2",
                "T-5,2026-11-03T10:00:00+09:00,cashback_reversal,W-1,M-1,-100,,T-2",
                "T-6,2026-11-04T10:00:00+09:00,gift_out,W-1,,-2900,,",
                "T-7,2026-11-04T10:00:00+09:00,gift_in,W-2,,2900,,",
                "T-8,2026-11-04T11:00:00+09:00,charge,W-2,,9100,,",
            ],
        );
        let manifest = json!({
            "format": "regional-wallet-handover/1",
            "operator": "Outgoing Operator Co.",
            "currency": "KRW",
            "kind": "snapshot",
            "sequence": 0,
            "as_of": "2026-12-01T00:00:00+09:00",
            "history_complete": true,
            "files": {},
            "totals": {"citizen_balance_sum": "42000", "merchant_receivable_sum": "5000", "cashback_budget_remaining": "2500000"}
        });
        BundleFiles { citizens, merchants, transactions, manifest }
    }

    /// Writes the bundle, filling in each file's rows and SHA-256 unless the manifest has them.
    fn write(&self, dir: &Path) {
        let mut manifest = self.manifest.clone();
        for (name, bytes) in [
            ("citizens.csv", &self.citizens),
            ("merchants.csv", &self.merchants),
            ("transactions.csv", &self.transactions),
        ] {
            std::fs::write(dir.join(name), bytes).expect("write a bundle file");
            if manifest["files"].get(name).is_none() {
                manifest["files"][name] = json!({"rows": rows(bytes), "sha256": sha256(bytes)});
            }
        }
        std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest).expect("json"))
            .expect("write manifest");
    }
}

/// Runs `wallet-server handover verify` on `files`: (success, stdout, stderr).
fn verify(files: &BundleFiles, extra: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    files.write(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .args(["handover", "verify"])
        .arg(dir.path())
        .args(extra)
        .env("WALLET_DATABASE_URL", dir.path().join("unused.sqlite3"))
        .output()
        .expect("run wallet-server handover verify");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[track_caller]
fn refused(files: &BundleFiles, expected: &str) {
    let (ok, stdout, stderr) = verify(files, &[]);
    assert!(!ok, "the bundle was accepted: {stdout}");
    assert!(stderr.contains(expected), "expected {expected:?} in the refusal, got: {stderr}");
}

#[test]
fn a_good_snapshot_verifies_with_its_totals() {
    let (ok, stdout, stderr) = verify(&BundleFiles::good(), &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("citizens 2, merchants 1, transactions 8"), "{stdout}");
    assert!(stdout.contains("citizen balances 42000 won, merchant receivables 5000 won"), "{stdout}");
}

#[test]
fn a_changed_file_fails_its_checksum() {
    // The manifest keeps the good file's checksum; the file changes by one won.
    let mut files = BundleFiles::good();
    files.manifest["files"]["merchants.csv"] = json!({"rows": 1, "sha256": sha256(&files.merchants)});
    files.merchants = lines(MERCHANTS_HEADER, &["M-1,bakery,,\"Bakery, Inc\",123-45-67890,BNK 001,food,5001"]);
    refused(&files, "merchants.csv: its SHA-256 is");
}

#[test]
fn a_wrong_row_count_is_refused() {
    let mut files = BundleFiles::good();
    files.manifest["files"]["transactions.csv"] = json!({"rows": 9, "sha256": sha256(&files.transactions)});
    refused(&files, "transactions.csv: it has 8 data rows, but the manifest says 9");
}

#[test]
fn wrong_totals_are_refused() {
    let mut files = BundleFiles::good();
    files.manifest["totals"]["citizen_balance_sum"] = json!("42001");
    refused(&files, "citizens.csv: the balances sum to 42000, but the manifest's citizen_balance_sum is 42001");
    let mut files = BundleFiles::good();
    files.manifest["totals"]["merchant_receivable_sum"] = json!("0");
    refused(&files, "merchants.csv: the receivables sum to 5000");
}

#[test]
fn duplicate_ids_are_refused_with_their_line() {
    let mut files = BundleFiles::good();
    files.citizens = lines(
        CITIZENS_HEADER,
        &[
            "C-1,minji,,W-1,30000,2026-11,0,0,2025-03-02T09:00:00+09:00",
            "C-2,jun,,W-1,12000,2026-11,0,0,2025-04-01T10:00:00+09:00",
        ],
    );
    refused(&files, "citizens.csv:3: wallet_id \"W-1\" appears twice");
    let mut files = BundleFiles::good();
    files.merchants = lines(MERCHANTS_HEADER, &["M-1,minji,,Shop,1,2,,5000"]);
    refused(&files, "merchants.csv:2: login \"minji\" appears twice");
}

#[test]
fn a_bad_amount_is_refused_with_its_line() {
    let mut files = BundleFiles::good();
    files.transactions = lines(TRANSACTIONS_HEADER, &["T-1,2026-11-01T10:00:00+09:00,charge,W-1,,50000.5,,"]);
    files.manifest["history_complete"] = json!(false);
    refused(&files, "transactions.csv:2: amount: amount \"50000.5\" has a fraction");
}

#[test]
fn a_bad_date_is_refused_with_its_line() {
    let mut files = BundleFiles::good();
    files.citizens = lines(
        CITIZENS_HEADER,
        &[
            "C-1,minji,,W-1,30000,2026-11,0,0,2025-03-02T09:00:00+09:00",
            "C-2,jun,,W-2,12000,2026-11,0,0,2025-13-01T10:00:00+09:00",
        ],
    );
    refused(&files, "citizens.csv:3: created_at \"2025-13-01T10:00:00+09:00\" is not RFC 3339");
}

#[test]
fn an_unknown_kind_is_refused_with_its_line() {
    let mut files = BundleFiles::good();
    files.transactions = lines(TRANSACTIONS_HEADER, &["T-1,2026-11-01T10:00:00+09:00,top_up,W-1,,50000,,"]);
    files.manifest["history_complete"] = json!(false);
    refused(&files, "transactions.csv:2: kind \"top_up\" is unknown");
}

#[test]
fn an_unknown_format_version_or_a_misnumbered_bundle_is_refused() {
    let mut files = BundleFiles::good();
    files.manifest["format"] = json!("regional-wallet-handover/2");
    refused(&files, "manifest.json: unknown format version \"regional-wallet-handover/2\"");
    let mut files = BundleFiles::good();
    files.manifest["sequence"] = json!(1);
    refused(&files, "manifest.json: a snapshot has sequence 0, not 1");
    let mut files = BundleFiles::good();
    files.manifest["kind"] = json!("delta");
    files.manifest["sequence"] = json!(0);
    refused(&files, "manifest.json: a delta has sequence 1 or more");
}

#[test]
fn a_history_that_does_not_add_up_is_refused_when_complete() {
    let mut files = BundleFiles::good();
    files.transactions = lines(TRANSACTIONS_HEADER, &["T-1,2026-11-01T10:00:00+09:00,charge,W-1,,50000,,"]);
    refused(&files, "history sums to 50000, not its balance 30000");
}

#[test]
fn non_utf8_files_are_refused_unless_read_as_cp949() {
    let mut files = BundleFiles::good();
    // "홍길동" in CP949 (EUC-KR): not UTF-8.
    let mut citizens = b"citizen_id,login,password_hash,wallet_id,balance,month,charged_this_month,cashback_eligible_spent_this_month,created_at\n".to_vec();
    citizens.extend_from_slice(b"C-1,");
    citizens.extend_from_slice(&[0xC8, 0xAB, 0xB1, 0xE6, 0xB5, 0xBF]);
    citizens.extend_from_slice(b",,W-1,30000,2026-11,0,0,2025-03-02T09:00:00+09:00\nC-2,jun,,W-2,12000,2026-11,0,0,2025-04-01T10:00:00+09:00\n");
    files.citizens = citizens;
    refused(&files, "citizens.csv:2: it is not UTF-8; legacy files in CP949 (EUC-KR) are read with --encoding cp949");
    let (ok, stdout, stderr) = verify(&files, &["--encoding", "cp949"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("citizens 2"), "{stdout}");
}
