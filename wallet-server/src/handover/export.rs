//! Writing this system's own data as a handover bundle of format version 2 (a snapshot or a
//! delta), so that the next handover, away from this system, is as routine as the one into it.
//! Rows are read a page at a time and streamed to the files, which are hashed as they are
//! written. Every bundle carries the policy and every program (a handful); a delta carries the
//! citizens that changed, each with all its live allowances.

use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use diesel::Connection;
use handover_format::bundle::{
    BundleKind, ManifestV2, Totals, TotalsV2, ALLOWANCES_FILE, ALLOWANCES_HEADER, CITIZENS_FILE, CITIZENS_HEADER_V2,
    MERCHANTS_FILE, MERCHANTS_HEADER_V2, PROGRAMS_FILE, PROGRAMS_HEADER, TRANSACTIONS_FILE, TRANSACTIONS_HEADER_V2,
};
use handover_format::write::{write_manifest_v2, write_policy, Durability, HashedCsv, ManifestOut};
use serde_json::json;
use wallet_core::{BusinessDate, Validity, Won};

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
    // The bundle format cannot carry a charge bonus program's cohorts yet: leaving one out
    // would take its budget out of the books the next operator balances, so none is exported.
    if let Some(program) = store::charge_bonuses::list(connection).map_err(failed)?.first() {
        return Err(format!(
            "charge bonus program {} cannot be carried in a handover bundle yet (docs/HANDOVER.md): nothing was \
             exported",
            program.id
        ));
    }
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
    let (policy, budget, _) = store::ledger_state::load_state(connection, false).map_err(failed)?;
    let policy_file = write_policy(dir, &policy, Durability::Synced)?;
    let programs = write_programs(connection, dir, &progress)?;
    let (citizens, allowances) = write_citizens(connection, dir, now, since, &progress)?;
    let merchants = write_merchants(connection, dir, since, &progress)?;
    let transactions = write_transactions(connection, dir, since, history_seq, &progress)?;
    progress.finish();
    let files = [
        policy_file,
        programs.finish(Durability::Synced)?,
        citizens.finish(Durability::Synced)?,
        merchants.finish(Durability::Synced)?,
        transactions.finish(Durability::Synced)?,
        allowances.finish(Durability::Synced)?,
    ];
    let wallets_sum = store::wallets::balance_sum(connection).map_err(failed)?;
    let merchants_sum = store::merchants::receivable_sum(connection).map_err(failed)?;
    // A grant expired with money left that the sweep has not returned yet is in its wallet's
    // history but not in allowances.csv (unexpired grants only): the history is then not whole.
    let expired_unswept = !store::allowances::expired_with_money_left(connection, now, 1).map_err(failed)?.is_empty();
    let history_complete =
        store::wallets::wallets_with_incomplete_history(connection).map_err(failed)? == 0 && !expired_unswept;
    let totals_v2 = TotalsV2 {
        citizen_bonus_sum: Won::from_i64(store::wallets::bonus_sum(connection).map_err(failed)?),
        allowance_outstanding_sum: Won::from_i64(
            store::allowances::live_outstanding_sum(connection, now).map_err(failed)?,
        ),
        program_budget_remaining_sum: Won::from_i64(store::programs::remaining_sum(connection).map_err(failed)?),
    };
    let last_closed = store::settlements::last_settlement(connection).map_err(failed)?;
    let last_closed_business_date = last_closed
        .map(|closed| {
            BusinessDate::parse(&closed.business_date).map_err(|error| format!("a stored settlement: {error}"))
        })
        .transpose()?;
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
    let v2 = ManifestV2 { totals: totals_v2, last_closed_business_date };
    let manifest_sha256 = write_manifest_v2(dir, &manifest, &v2)?;
    Ok(Written {
        citizens: files[2].rows,
        merchants: files[3].rows,
        transactions: files[4].rows,
        wallets_sum,
        merchants_sum,
        budget_remaining: budget.remaining(),
        history_seq,
        manifest_sha256,
    })
}

/// Every program: its definition as created (`POST /v1/admin/programs`'s body) and its budget
/// as `GET /v1/admin/programs/{id}` shows it.
fn write_programs(connection: &mut DbConn, dir: &Path, progress: &Progress) -> Result<HashedCsv, String> {
    let mut out = HashedCsv::create(dir, PROGRAMS_FILE, PROGRAMS_HEADER)?;
    let mut after = String::new();
    loop {
        let page = store::programs::page(connection, &after, PAGE_ROWS).map_err(|error| error.to_string())?;
        for program in &page {
            let rules = &program.rules;
            let mut definition = json!({
                "kind": "allowance",
                "name": program.name,
                "merchant_categories": rules.merchant_categories,
                "excluded_merchant_categories": rules.excluded_merchant_categories,
            });
            match rules.validity {
                Validity::Days(days) => definition["valid_days"] = json!(days),
                Validity::Until(date) => definition["expires_on"] = json!(date.to_string()),
            }
            if let Some(max) = rules.merchant_annual_revenue_max {
                definition["merchant_annual_revenue_max"] = json!(max.to_string());
            }
            let budget = &program.budget;
            let budget = json!({
                "funded": budget.funded.to_string(), "granted": budget.granted.to_string(),
                "spent": budget.spent.to_string(), "returned": budget.returned.to_string(),
                "outstanding": budget.outstanding().to_string(), "remaining": budget.remaining().to_string(),
            });
            out.row(&[program.id.as_str(), "allowance", &program.name, &definition.to_string(), &budget.to_string()])?;
        }
        progress.add(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS => after = last.id.to_string(),
            _ => break,
        }
    }
    Ok(out)
}

/// The citizens (with `since`, those that changed) and, beside them, each one's grants
/// unexpired at `now` with money left.
fn write_citizens(
    connection: &mut DbConn,
    dir: &Path,
    now: DateTime<Utc>,
    since: Option<store::principals::Since>,
    progress: &Progress,
) -> Result<(HashedCsv, HashedCsv), String> {
    let failed = |error: store::StoreError| error.to_string();
    let mut citizens = HashedCsv::create(dir, CITIZENS_FILE, CITIZENS_HEADER_V2)?;
    let mut allowances = HashedCsv::create(dir, ALLOWANCES_FILE, ALLOWANCES_HEADER)?;
    let mut after = String::new();
    loop {
        let page = store::principals::citizens_page(connection, &after, PAGE_ROWS, since).map_err(failed)?;
        let citizen_ids: Vec<String> = page.iter().map(|row| row.citizen_id.clone()).collect();
        let references = store::citizen_references::of_citizens(connection, &citizen_ids).map_err(failed)?;
        for row in &page {
            let reference = references.get(&row.citizen_id).cloned().unwrap_or_default();
            let verified_at = reference.identity_verified_at_ms.map(time).transpose()?.unwrap_or_default();
            citizens.row(&[
                &row.citizen_id,
                &row.login,
                &row.password_hash,
                &row.wallet_id,
                &row.balance.to_string(),
                &row.month,
                &row.charged.to_string(),
                &row.eligible_spent.to_string(),
                &time(row.created_at_ms)?,
                &row.bonus.to_string(),
                &row.bonus_quota_used.to_string(),
                &verified_at,
                reference.identity_ref.as_deref().unwrap_or(""),
                reference.bank_link_ref.as_deref().unwrap_or(""),
                reference.bank_account_masked.as_deref().unwrap_or(""),
            ])?;
        }
        let wallet_ids: Vec<String> = page.iter().map(|row| row.wallet_id.clone()).collect();
        let mut grants = store::allowances::load_for_wallets(connection, &wallet_ids).map_err(failed)?;
        grants.retain(|(_, grant)| grant.is_live(now) && !grant.outstanding.is_zero());
        grants.sort_by(|(left_id, left), (right_id, right)| (&left.wallet, left_id).cmp(&(&right.wallet, right_id)));
        for (id, grant) in &grants {
            allowances.row(&[
                id.as_str(),
                grant.program.as_str(),
                grant.wallet.as_str(),
                &grant.outstanding.to_string(),
                &time(grant.granted_at.timestamp_millis())?,
                &time(grant.expires_at.timestamp_millis())?,
            ])?;
        }
        progress.add((page.len() + grants.len()) as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS => after = last.citizen_id.clone(),
            _ => break,
        }
    }
    Ok((citizens, allowances))
}

fn write_merchants(
    connection: &mut DbConn,
    dir: &Path,
    since: Option<store::principals::Since>,
    progress: &Progress,
) -> Result<HashedCsv, String> {
    let mut merchants = HashedCsv::create(dir, MERCHANTS_FILE, MERCHANTS_HEADER_V2)?;
    let mut after = String::new();
    loop {
        let page = store::principals::merchants_page(connection, &after, PAGE_ROWS, since)
            .map_err(|error| error.to_string())?;
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
                &row.annual_revenue.map(|revenue| revenue.to_string()).unwrap_or_default(),
                &row.carried_negative.to_string(),
            ])?;
        }
        progress.add(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS => after = last.merchant_id.clone(),
            _ => break,
        }
    }
    Ok(merchants)
}

/// The history written after `since` (all of it for a snapshot) up to `history_seq`.
fn write_transactions(
    connection: &mut DbConn,
    dir: &Path,
    since: Option<store::principals::Since>,
    history_seq: i64,
    progress: &Progress,
) -> Result<HashedCsv, String> {
    let mut transactions = HashedCsv::create(dir, TRANSACTIONS_FILE, TRANSACTIONS_HEADER_V2)?;
    let mut after_seq = since.map_or(0, |since| since.history_seq);
    loop {
        let page = store::history::export_page(connection, after_seq, PAGE_ROWS).map_err(|error| error.to_string())?;
        for row in page.iter().filter(|row| row.seq <= history_seq) {
            let at = time(row.at_ms)?;
            let merchant_side = matches!(row.kind.as_str(), "payment" | "cashback" | "refund" | "cashback_reversal");
            let merchant_id = if merchant_side { row.counterparty.as_deref().unwrap_or("") } else { "" };
            let gift = matches!(row.kind.as_str(), "gift_in" | "gift_out");
            let counterparty_wallet_id = if gift { row.counterparty.as_deref().unwrap_or("") } else { "" };
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
                counterparty_wallet_id,
            ])?;
        }
        progress.add(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ROWS && last.seq < history_seq => after_seq = last.seq,
            _ => break,
        }
    }
    Ok(transactions)
}
