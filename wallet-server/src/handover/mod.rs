//! Operator handover (`docs/HANDOVER.md`): verifying, importing and exporting bundles, as
//! directories or as `.tar` / `.tar.gz` archives of one. The format itself (reading, verifying,
//! writing, archives) is the `handover-format` crate; this module is the database side.

pub mod export;
pub mod import;
pub mod interrupt;
pub mod progress;

use std::path::Path;

use handover_format::archive;
use handover_format::bundle::{Bundle, BundleKind, Encoding};
use handover_format::output::{note, say};

/// `wallet-server handover verify <BUNDLE>`: checks a bundle (a directory, or an archive of one)
/// without touching the database, in `memory_bytes` for its checks across rows. Prints what it
/// checked; an error names the file, the line and the reason.
pub fn verify(bundle: &Path, encoding: Encoding, memory_bytes: u64) -> Result<(), String> {
    let unpacked = archive::open(bundle)?;
    let bundle = Bundle::open(unpacked.path(), encoding).with_memory(memory_bytes);
    let rows_declared = bundle.manifest().map_or(0, |manifest| manifest.files.values().map(|file| file.rows).sum());
    let progress = progress::Progress::rows("verifying", rows_declared);
    let verified = bundle
        .verify(|_| {
            progress.add(1);
            Ok(())
        })
        .map_err(|refusal| format!("bundle refused: {refusal}"))?;
    progress.finish();
    let manifest = &verified.manifest;
    let kind = match manifest.kind {
        BundleKind::Snapshot => "snapshot",
        BundleKind::Delta => "delta",
    };
    say(format_args!(
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
    ));
    if let Some(v2) = &manifest.v2 {
        let last_closed = v2.last_closed_business_date.map_or_else(|| "none".to_owned(), |date| date.to_string());
        say(format_args!(
            "  format version 2: programs {}, allowances {}, policy carried\n  bonus purses {} won, allowances {} won, \
             programs' remaining budgets {} won, last closed business date {last_closed}",
            verified.programs,
            verified.allowances,
            verified.citizen_bonus_sum,
            verified.allowance_outstanding_sum,
            verified.program_budget_remaining_sum,
        ));
    }
    if manifest.kind == BundleKind::Delta {
        say(format_args!("  (a delta's totals are those after applying it: they are checked when it is imported)"));
    }
    Ok(())
}

/// `wallet-server handover import <BUNDLE>`: verifies, then applies a snapshot or the next delta
/// (a directory, or an archive of one).
pub fn import(
    connection: &mut crate::store::DbConn,
    bundle: &Path,
    encoding: Encoding,
    memory_bytes: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let unpacked = archive::open(bundle)?;
    let started = std::time::Instant::now();
    note(format_args!("verifying and applying {} ...", bundle.display()));
    match import::import(connection, unpacked.path(), encoding, memory_bytes, now).map_err(|error| error.to_string())? {
        import::Imported::Applied(bundle) => {
            say(format_args!(
                "applied {} {} of {:?} in {:.1} s: citizens {}, merchants {}, transactions {}\n  \
                 wallets now hold {} won, receivables {} won, cashback budget remaining {} won (as the manifest says)",
                bundle.kind,
                bundle.sequence,
                bundle.operator,
                started.elapsed().as_secs_f64(),
                bundle.citizens,
                bundle.merchants,
                bundle.transactions,
                bundle.citizen_balance_sum,
                bundle.merchant_receivable_sum,
                bundle.cashback_budget_remaining,
            ));
        }
        import::Imported::AlreadyApplied(bundle) => {
            say(format_args!("bundle {} was already applied; nothing changed", bundle.sequence));
        }
    }
    Ok(())
}

/// `wallet-server handover status`: the last bundle applied, its time and its totals.
pub fn status(connection: &mut crate::store::DbConn) -> Result<(), String> {
    let last = crate::store::handover_bundles::applied_bundle(connection, None).map_err(|error| error.to_string())?;
    let Some(bundle) = last else {
        say(format_args!("no handover bundle has been applied"));
        return Ok(());
    };
    let (_, _, system) =
        crate::store::ledger_state::load_state(connection, false).map_err(|error| error.to_string())?;
    let applied_at =
        chrono::DateTime::from_timestamp_millis(bundle.applied_at_ms).map(|at| at.to_rfc3339()).unwrap_or_default();
    say(format_args!(
        "last applied: {} {} of {:?}, as of {}, applied {}\n  totals: wallets {} won, receivables {} won, cashback budget remaining {} won\n  \
         handover account balance in the ledger: {} won",
        bundle.kind,
        bundle.sequence,
        bundle.operator,
        bundle.as_of,
        applied_at,
        bundle.citizen_balance_sum,
        bundle.merchant_receivable_sum,
        bundle.cashback_budget_remaining,
        system.handover_opening,
    ));
    Ok(())
}
