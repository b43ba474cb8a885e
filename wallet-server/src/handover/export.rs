//! Writing this system's own data as a handover bundle (a snapshot or a delta), so that the next handover,
//! away from this system, is as routine as the one into it. Rows are read a page at a time and
//! streamed to the files, which are hashed as they are written.

use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use diesel::Connection;
use handover_format::bundle::{
    BundleKind, Totals, CITIZENS_FILE, CITIZENS_HEADER, MERCHANTS_FILE, MERCHANTS_HEADER, TRANSACTIONS_FILE,
    TRANSACTIONS_HEADER,
};
use handover_format::write::{write_manifest, Durability, HashedCsv, ManifestOut};
use serde_json::json;
use wallet_core::Won;

use super::progress::Progress;
use crate::store::{self, DbConn};

/// Rows read per query.
const PAGE_ROWS: i64 = 5_000;

fn time(ms: i64) -> Result<String, String> {
    let at = DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("time {ms} ms is out of range"))?;
    let kst = FixedOffset::east_opt(9 * 3600).expect("nine hours is a valid offset");
    Ok(at.with_timezone(&kst).to_rfc3339())
}

/// Writes this system into `dir` (which must be empty or not exist) as a bundle: a snapshot
/// (sequence 0), or with `since`, a delta holding what changed after bundle `since` was exported
/// from here (sequence `since + 1`): citizens whose wallet moved or who were created or changed,
/// merchants paid or refunded through, settled, created or changed, and the history written
/// since. Each export is recorded, so the next delta knows where to start.
pub fn export(
    connection: &mut DbConn,
    dir: &Path,
    operator: &str,
    now: DateTime<Utc>,
    since: Option<i64>,
) -> Result<String, String> {
    let failed = |error: store::StoreError| error.to_string();
    let (sequence, mark) = match since {
        None => (0, None),
        Some(earlier) => {
            let earlier_export =
                store::handover_exports::exported_bundle(connection, earlier).map_err(failed)?.ok_or_else(|| {
                    format!(
                        "no bundle {earlier} was exported from here; a delta follows an exported bundle \
                         (export a snapshot first, without --since)"
                    )
                })?;
            // Principals changed shortly before the earlier export's read began are carried
            // again: a change stamped before that read but committed after it (a write waits at
            // most the database's busy timeout) is not dropped.
            let since = store::principals::Since {
                history_seq: earlier_export.history_seq,
                changed_ms: earlier_export.exported_at_ms - CHANGED_MARGIN_MS,
            };
            (earlier + 1, Some(since))
        }
    };
    std::fs::create_dir_all(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    if std::fs::read_dir(dir).map_err(|error| error.to_string())?.next().is_some() {
        return Err(format!("{} is not empty; export into a new directory", dir.display()));
    }
    let started_ms = store::time::millis(now);
    // One consistent view of the books, without blocking the writer: a read transaction (WAL
    // gives SQLite readers a snapshot; PostgreSQL needs REPEATABLE READ for one).
    let exported = connection.transaction(|connection| -> Result<Result<Written, String>, diesel::result::Error> {
        use diesel::RunQueryDsl;
        if let DbConn::Pg(pg) = connection {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(pg)?;
        }
        Ok(write_files(connection, dir, operator, now, sequence, mark))
    });
    let written = exported.map_err(|error| format!("the database failed: {error}"))??;
    let kind = if mark.is_some() { "delta" } else { "snapshot" };
    store::write_transaction(connection, |connection| {
        store::handover_exports::record_export(
            connection,
            sequence,
            kind,
            written.history_seq,
            started_ms,
            &written.manifest_sha256,
        )?;
        let entry = store::audit::Entry {
            at: now,
            actor: store::audit::Actor::CommandLine,
            action: store::audit::Action::HandoverExported,
            detail: json!({
                "sequence": sequence, "kind": kind, "manifest_sha256": written.manifest_sha256,
                "citizens": written.citizens, "merchants": written.merchants, "transactions": written.transactions,
            }),
            idempotency_key: None,
        };
        store::audit::record(connection, entry)
    })
    .map_err(failed)?;
    Ok(format!(
        "exported {kind} {sequence} to {}: citizens {}, merchants {}, transactions {}; \
         wallets {} won, receivables {} won, cashback budget remaining {} won{}",
        dir.display(),
        written.citizens,
        written.merchants,
        written.transactions,
        written.wallets_sum,
        written.merchants_sum,
        written.budget_remaining,
        if mark.is_some() {
            format!("\n  the next delta: handover export <DIR> --since {sequence}")
        } else {
            String::new()
        },
    ))
}

/// Longer than any write transaction may wait and run (the SQLite busy timeout is 5 s).
const CHANGED_MARGIN_MS: i64 = 15_000;

/// What [`write_files`] wrote.
struct Written {
    citizens: u64,
    merchants: u64,
    transactions: u64,
    wallets_sum: i64,
    merchants_sum: i64,
    budget_remaining: wallet_core::Won,
    /// The last history row written (the next delta starts after it).
    history_seq: i64,
    manifest_sha256: String,
}

fn write_files(
    connection: &mut DbConn,
    dir: &Path,
    operator: &str,
    now: DateTime<Utc>,
    sequence: i64,
    since: Option<store::principals::Since>,
) -> Result<Written, String> {
    let failed = |error: store::StoreError| error.to_string();
    // Read first, inside the read transaction: the history the bundle ends with.
    let history_seq = store::history::last_history_seq(connection).map_err(failed)?;
    let progress = Progress::counter("exporting");
    let mut citizens = HashedCsv::create(dir, CITIZENS_FILE, CITIZENS_HEADER)?;
    let mut after = String::new();
    loop {
        let page = store::principals::citizens_page(connection, &after, PAGE_ROWS, since).map_err(failed)?;
        for row in &page {
            let created_at = time(row.created_at_ms)?;
            citizens.row(&[
                &row.citizen_id,
                &row.login,
                &row.password_hash,
                &row.wallet_id,
                &row.balance.to_string(),
                &row.month,
                &row.charged.to_string(),
                &row.eligible_spent.to_string(),
                &created_at,
            ])?;
        }
        progress.add(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS => after = last.citizen_id.clone(),
            _ => break,
        }
    }
    let mut merchants = HashedCsv::create(dir, MERCHANTS_FILE, MERCHANTS_HEADER)?;
    after.clear();
    loop {
        let page = store::principals::merchants_page(connection, &after, PAGE_ROWS, since).map_err(failed)?;
        for row in &page {
            merchants.row(&[
                &row.merchant_id,
                &row.login,
                &row.password_hash,
                &row.name,
                &row.business_number,
                &row.bank_account,
                row.category.as_deref().unwrap_or(""),
                &row.receivable.to_string(),
            ])?;
        }
        progress.add(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS => after = last.merchant_id.clone(),
            _ => break,
        }
    }
    let mut transactions = HashedCsv::create(dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER)?;
    let mut after_seq = since.map_or(0, |since| since.history_seq);
    loop {
        let page = store::history::export_page(connection, after_seq, PAGE_ROWS).map_err(failed)?;
        for row in page.iter().filter(|row| row.seq <= history_seq) {
            let at = time(row.at_ms)?;
            let merchant_side = matches!(row.kind.as_str(), "payment" | "cashback" | "refund" | "cashback_reversal");
            let merchant_id = if merchant_side { row.counterparty.as_deref().unwrap_or("") } else { "" };
            let cashback = if row.kind == "payment" {
                row.payment_cashback.map(|won| won.to_string()).unwrap_or_default()
            } else {
                String::new()
            };
            transactions.row(&[
                &row.item_id,
                &at,
                &row.kind,
                &row.wallet_id,
                merchant_id,
                &row.amount.to_string(),
                &cashback,
                row.related_id.as_deref().unwrap_or(""),
            ])?;
        }
        progress.add(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS && last.seq < history_seq => after_seq = last.seq,
            _ => break,
        }
    }
    progress.finish();
    let files = [
        citizens.finish(Durability::Synced)?,
        merchants.finish(Durability::Synced)?,
        transactions.finish(Durability::Synced)?,
    ];
    let wallets_sum = store::wallets::balance_sum(connection).map_err(failed)?;
    let merchants_sum = store::merchants::receivable_sum(connection).map_err(failed)?;
    let (_, budget, _) = store::ledger_state::load_state(connection, false).map_err(failed)?;
    let history_complete = store::wallets::wallets_with_incomplete_history(connection).map_err(failed)? == 0;
    let kst = FixedOffset::east_opt(9 * 3600).expect("nine hours is a valid offset");
    let manifest = ManifestOut {
        operator,
        kind: if since.is_some() { BundleKind::Delta } else { BundleKind::Snapshot },
        sequence: u64::try_from(sequence).map_err(|_| format!("sequence {sequence} is negative"))?,
        as_of: now.with_timezone(&kst),
        history_complete,
        files: &files,
        totals: Totals {
            citizen_balance_sum: Won::from_i64(wallets_sum),
            merchant_receivable_sum: Won::from_i64(merchants_sum),
            cashback_budget_remaining: budget.remaining(),
        },
    };
    let manifest_sha256 = write_manifest(dir, &manifest)?;
    Ok(Written {
        citizens: files[0].rows,
        merchants: files[1].rows,
        transactions: files[2].rows,
        wallets_sum,
        merchants_sum,
        budget_remaining: budget.remaining(),
        history_seq,
        manifest_sha256,
    })
}
