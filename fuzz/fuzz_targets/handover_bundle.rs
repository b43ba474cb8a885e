//! A whole bundle directory through `handover_format::bundle::Bundle::verify`: CSV reading,
//! every row parser, duplicates, cross references, control totals and the history check.
//!
//! Input: one byte of switches, then `citizens.csv`, `merchants.csv` and `transactions.csv`
//! separated by 0xFF bytes (a byte that is in neither UTF-8 nor CP949 text). The harness writes
//! them with a manifest that matches them (checksums; row counts and control totals as far as
//! it can tell, unless a switch says to take them as zero), so the fuzzer's effort goes into the
//! rows rather than into the checksums.
//!
//! Switches: bit 0 a delta (sequence 1) instead of a snapshot; bit 1 history_complete; bit 2
//! read as CP949; bit 3 zero row counts and totals in the manifest.
//!
//! Checked: no panic; a refusal names one of the bundle's files, a line within the file (1 is
//! the header), and a reason; an accepted bundle's counts are the rows `visit` saw and the
//! manifest's, and every figure of its rows fits the database's BIGINT.

#![no_main]

use std::path::Path;

use handover_format::bundle::{Bundle, Encoding, Row};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use wallet_core::Won;

/// Data rows as a lenient CSV reader counts them, and the sum of column `sum_column` where it
/// parses: the harness's guess at what the manifest must say.
fn rows_and_sum(bytes: &[u8], sum_column: usize) -> (u64, Won) {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let (mut rows, mut sum) = (0u64, Won::ZERO);
    for record in reader.records() {
        let Ok(record) = record else { break };
        rows += 1;
        if let Some(won) = record.get(sum_column).and_then(|field| Won::parse_signed(field).ok()) {
            sum = sum.checked_add(won).unwrap_or(sum);
        }
    }
    (rows, sum)
}

fn write_bundle(dir: &Path, switches: u8, files: [&[u8]; 3]) {
    let names = ["citizens.csv", "merchants.csv", "transactions.csv"];
    let zero = switches & 8 != 0;
    let mut entries = serde_json::Map::new();
    let mut sums = [Won::ZERO; 2];
    for (index, (name, bytes)) in names.iter().zip(files).enumerate() {
        std::fs::write(dir.join(name), bytes).unwrap();
        let (rows, sum) = rows_and_sum(bytes, if index == 0 { 4 } else { 7 });
        if index < 2 {
            sums[index] = sum;
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        entries.insert(name.to_string(), serde_json::json!({"rows": if zero { 0 } else { rows }, "sha256": sha256}));
    }
    let total = |won: Won| if zero { "0".to_owned() } else { won.to_string() };
    let delta = switches & 1 != 0;
    let manifest = serde_json::json!({
        "format": "regional-wallet-handover/1",
        "operator": "Fuzz Operator",
        "currency": "KRW",
        "kind": if delta { "delta" } else { "snapshot" },
        "sequence": if delta { 1 } else { 0 },
        "as_of": "2026-12-01T00:00:00+09:00",
        "history_complete": switches & 2 != 0,
        "files": entries,
        "totals": {
            "citizen_balance_sum": total(sums[0]),
            "merchant_receivable_sum": total(sums[1]),
            "cashback_budget_remaining": "1000",
        },
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
}

fn fits_database(won: Won) -> bool {
    won.to_i64().is_some()
}

fuzz_target!(|data: &[u8]| {
    let Some((&switches, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |byte| *byte == 0xFF);
    let files = [parts.next().unwrap_or(b""), parts.next().unwrap_or(b""), parts.next().unwrap_or(b"")];
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), switches, files);
    let encoding = if switches & 4 != 0 { Encoding::Cp949 } else { Encoding::Utf8 };
    let mut seen = [0u64; 3];
    let result = Bundle::open(dir.path(), encoding).verify(|row| {
        match row {
            Row::Citizen(row) => {
                seen[0] += 1;
                for won in [row.balance, row.charged_this_month, row.cashback_eligible_spent_this_month] {
                    assert!(fits_database(won) && !won.is_negative(), "citizen figure {won}");
                }
            }
            Row::Merchant(row) => {
                seen[1] += 1;
                assert!(fits_database(row.receivable), "receivable {}", row.receivable);
            }
            Row::Transaction(row) => {
                seen[2] += 1;
                assert!(fits_database(row.amount) && fits_database(row.cashback), "{} {}", row.amount, row.cashback);
                assert!(row.wallet_id.is_some() || row.merchant_id.is_some());
            }
        }
        Ok(())
    });
    match result {
        Ok(verified) => {
            assert_eq!([verified.citizens, verified.merchants, verified.transactions], seen);
            for (name, count) in ["citizens.csv", "merchants.csv", "transactions.csv"].iter().zip(seen) {
                assert_eq!(verified.manifest.files[*name].rows, count);
            }
            assert!(fits_database(verified.citizen_balance_sum), "balances sum to {}", verified.citizen_balance_sum);
            assert!(fits_database(verified.merchant_receivable_sum));
        }
        Err(refusal) => {
            let index = ["manifest.json", "citizens.csv", "merchants.csv", "transactions.csv"]
                .iter()
                .position(|name| *name == refusal.file);
            let index = index.unwrap_or_else(|| panic!("a refusal names {:?}", refusal.file));
            assert!(!refusal.reason.is_empty());
            if let (Some(line), Some(file)) = (refusal.line, index.checked_sub(1).map(|index| files[index])) {
                let lines = file.iter().filter(|byte| **byte == b'\n').count() as u64 + 1;
                assert!((1..=lines).contains(&line), "{refusal} (the file has {lines} lines)");
            }
        }
    }
});
