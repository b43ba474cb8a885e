//! The handover manifest parser (`handover_format::bundle::parse_manifest`) on any text.
//!
//! Checked: no panic; a refusal names `manifest.json` and a reason; an accepted manifest holds
//! exactly the three CSV files with 64 hex digit checksums, its totals re-render to the
//! manifest's strings and fit the database's BIGINT, and a snapshot has sequence 0, a delta 1 or
//! more.

#![no_main]

use handover_format::bundle::{parse_manifest, BundleKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_manifest(text) {
        Ok(manifest) => {
            let raw: serde_json::Value = serde_json::from_str(text).expect("an accepted manifest is JSON");
            // Exactly the files of its version (version 2 adds policy, programs and allowances).
            let mut names: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = manifest.version.files().to_vec();
            names.sort_unstable();
            expected.sort_unstable();
            assert_eq!(names, expected);
            assert_eq!(manifest.v2.is_some(), manifest.version.files().len() == 6, "version 2 has its own totals");
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
