//! The handover manifest parser (`handover_format::bundle::parse_manifest`) on any text.
//!
//! Checked: no panic; a refusal names `manifest.json` and a reason; an accepted manifest holds
//! exactly the three CSV files with 64 hex digit checksums, its totals re-render to the
//! manifest's strings and fit the database's BIGINT, and a snapshot has sequence 0, a delta 1 or
//! more.

#![no_main]

use libfuzzer_sys::fuzz_target;
use handover_format::bundle::{parse_manifest, BundleKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_manifest(text) {
        Ok(manifest) => {
            let raw: serde_json::Value = serde_json::from_str(text).expect("an accepted manifest is JSON");
            let names: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
            assert_eq!(names, ["citizens.csv", "merchants.csv", "transactions.csv"]);
            for entry in manifest.files.values() {
                assert!(entry.sha256.len() == 64 && entry.sha256.bytes().all(|byte| byte.is_ascii_hexdigit()));
            }
            let totals = &manifest.totals;
            for (name, won) in [
                ("citizen_balance_sum", totals.citizen_balance_sum),
                ("merchant_receivable_sum", totals.merchant_receivable_sum),
                ("cashback_budget_remaining", totals.cashback_budget_remaining),
            ] {
                assert_eq!(raw["totals"][name].as_str(), Some(won.to_string().as_str()));
                assert!(won.to_i64().is_some(), "totals.{name} {won} does not fit the database");
            }
            assert!(!totals.cashback_budget_remaining.is_negative());
            match manifest.kind {
                BundleKind::Snapshot => assert_eq!(manifest.sequence, 0),
                BundleKind::Delta => assert!(manifest.sequence >= 1),
            }
            assert!(!manifest.operator.trim().is_empty());
        }
        Err(refusal) => {
            assert_eq!(refusal.file, "manifest.json");
            assert!(!refusal.reason.is_empty());
        }
    }
});
