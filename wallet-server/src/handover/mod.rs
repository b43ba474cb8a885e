//! Operator handover (`shared/HANDOVER.md`): verifying bundles; importing and exporting them
//! come next.

pub mod bundle;

use std::path::Path;

use bundle::{Bundle, BundleKind, Encoding};

/// `wallet-server handover verify <BUNDLE>`: checks a bundle without touching the database.
/// Prints what it checked; an error names the file, the line and the reason.
pub fn verify(dir: &Path, encoding: Encoding) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a bundle directory (a .tar or .tar.gz must be unpacked first)", dir.display()));
    }
    let verified =
        Bundle::open(dir, encoding).verify(|_| Ok(())).map_err(|refusal| format!("bundle refused: {refusal}"))?;
    let manifest = &verified.manifest;
    let kind = match manifest.kind {
        BundleKind::Snapshot => "snapshot",
        BundleKind::Delta => "delta",
    };
    println!(
        "bundle verified: {kind} {} of {:?} as of {}\n  citizens {}, merchants {}, transactions {}\n  \
         citizen balances {} won, merchant receivables {} won, cashback budget remaining {} won",
        manifest.sequence,
        manifest.operator,
        manifest.as_of.to_rfc3339(),
        verified.citizens,
        verified.merchants,
        verified.transactions,
        verified.citizen_balance_sum,
        verified.merchant_receivable_sum,
        manifest.totals.cashback_budget_remaining,
    );
    if manifest.kind == BundleKind::Delta {
        println!("  (a delta's totals are those after applying it: they are checked when it is imported)");
    }
    Ok(())
}
