//! Applying a verified bundle: all of it in one database transaction, or nothing.
//!
//! Balances enter the ledger as `CarryOver` commands of wallet-core (balanced against the
//! handover account), so the trial balance stays zero and the imported totals can be read back
//! from it. A delta carries the difference between a row's new balance and the one here. The
//! outgoing operator's ids are kept: principals, wallets, merchants and transactions keep their
//! ids, and its payments become payments here, so they can be refunded.
//!
//! A crash or kill at any moment leaves the database before the bundle or with all of it (one
//! transaction); running the import again finishes the job. Applying the same bundle again
//! changes nothing; another bundle under a sequence already applied is refused.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use wallet_core::{
    Book, CarryOverAccount, Command, Counterparty, HistoryItem, HistoryKind, PaymentState, Receipt, TxId, WalletId,
    WalletState, Won,
};

use handover_format::bundle::{Bundle, BundleKind, CitizenRow, Encoding, MerchantRow, Row, TransactionRow, Verified};

use super::progress::Progress;
use crate::store::handover_bundles::AppliedBundle;
use crate::store::principals::PrincipalIn;
use crate::store::{self, DbConn, StoreError};

/// SQLite's page cache for an import, in KiB (512 MiB).
const IMPORT_CACHE_KIB: u32 = 512 * 1024;

/// Rows named in one query at most (SQLite and PostgreSQL limit bound parameters).
const IDS_PER_QUERY_MAX: usize = 10_000;

/// What an import did.
#[derive(Debug)]
pub enum Imported {
    Applied(AppliedBundle),
    /// The same bundle was applied before; nothing changed.
    AlreadyApplied(AppliedBundle),
}

/// Why an import did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("bundle refused: {0}")]
    Refused(String),
    #[error("the database failed; nothing of the bundle was applied: {0}")]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(error: diesel::result::Error) -> ImportError {
        ImportError::Store(StoreError::Query(error))
    }
}

/// The rows of a verified bundle.
#[derive(Default)]
struct Rows {
    citizens: Vec<CitizenRow>,
    merchants: Vec<MerchantRow>,
    transactions: Vec<TransactionRow>,
}

/// Verifies the bundle in `dir`, then applies it in one transaction.
pub fn import(
    connection: &mut DbConn,
    dir: &Path,
    encoding: Encoding,
    now: DateTime<Utc>,
) -> Result<Imported, ImportError> {
    let mut rows = Rows::default();
    let bundle = Bundle::open(dir, encoding);
    let rows_declared = bundle.manifest().map_or(0, |manifest| manifest.files.values().map(|file| file.rows).sum());
    let reading = Progress::rows("verifying", rows_declared);
    let verified = bundle
        .verify(|row| {
            reading.add(1);
            match row {
                Row::Citizen(row) => rows.citizens.push(row),
                Row::Merchant(row) => rows.merchants.push(row),
                Row::Transaction(row) => rows.transactions.push(row),
            }
            Ok(())
        })
        .map_err(|refusal| ImportError::Refused(refusal.to_string()))?;
    reading.finish();
    let manifest_bytes = std::fs::read(dir.join("manifest.json"))
        .map_err(|error| ImportError::Refused(format!("manifest.json: cannot read it: {error}")))?;
    let manifest_sha256 = hex::encode(Sha256::digest(&manifest_bytes));
    if matches!(connection, DbConn::Sqlite(_)) {
        // The whole bundle is one transaction: with SQLite's default 2 MiB page cache, it spills
        // changed pages to the log again and again before the commit (a third of a city import's
        // time went there). A bigger cache for this connection only, which ends with the command.
        use diesel::RunQueryDsl;
        diesel::sql_query(format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}")).execute(connection)?;
    }
    // At most: principals, wallets, carry-over postings and history items.
    let (citizens, merchants) = (rows.citizens.len(), rows.merchants.len());
    let rows_to_write =
        ((citizens + merchants) + citizens + (citizens + merchants + 1) + (rows.transactions.len() + citizens)) as u64;
    let writing = Progress::rows("writing", rows_to_write);
    let imported = store::write_transaction(connection, |connection| {
        apply(connection, &verified, &rows, &manifest_sha256, now, &writing)
    });
    writing.finish();
    imported
}

fn refused(reason: impl Into<String>) -> ImportError {
    ImportError::Refused(reason.into())
}

fn won_to_db(value: Won) -> Result<i64, ImportError> {
    Ok(store::money::won_to_db(value)?)
}

fn apply(
    connection: &mut DbConn,
    verified: &Verified,
    rows: &Rows,
    manifest_sha256: &str,
    now: DateTime<Utc>,
    progress: &Progress,
) -> Result<Imported, ImportError> {
    let manifest = &verified.manifest;
    let sequence = i64::try_from(manifest.sequence).map_err(|_| refused("manifest.json: the sequence is too large"))?;
    if let Some(applied) = store::handover_bundles::applied_bundle(connection, Some(sequence))? {
        if applied.manifest_sha256 == manifest_sha256 {
            return Ok(Imported::AlreadyApplied(applied));
        }
        return Err(refused(format!(
            "manifest.json: bundle {sequence} was already applied from a different manifest; a bundle is applied once"
        )));
    }
    let last_applied = store::handover_bundles::applied_bundle(connection, None)?;
    if let Some(last) = last_applied.as_ref().filter(|last| last.operator != manifest.operator) {
        // Sequences count per outgoing operator: another operator's delta 1 is not the delta
        // that follows this snapshot, even if its number fits.
        return Err(refused(format!(
            "manifest.json: this bundle is from operator {:?}, but the bundles applied here (last: {} {}) are from \
             {:?}; a delta applies only on top of its own operator's snapshot",
            manifest.operator, last.kind, last.sequence, last.operator
        )));
    }
    let last = last_applied.map(|bundle| bundle.sequence);
    match (manifest.kind, last) {
        (BundleKind::Snapshot, None) => {}
        (BundleKind::Snapshot, Some(last)) => {
            return Err(refused(format!(
                "manifest.json: a snapshot comes first, but bundle {last} was already applied"
            )))
        }
        (BundleKind::Delta, Some(last)) if sequence == last + 1 => {}
        (BundleKind::Delta, last) => {
            let expected = last.map_or_else(|| "a snapshot first".to_owned(), |last| format!("sequence {}", last + 1));
            return Err(refused(format!(
                "manifest.json: out of order: this is delta {sequence}, the next bundle must be {expected}"
            )));
        }
    }

    let now_ms = store::time::millis(now);
    let (policy, budget, system) = store::ledger_state::load_state(connection, true)?;
    let mut book = Book::new(policy);
    book.load_budget(budget);
    book.load_system(system);

    // Principals and merchants as the outgoing operator knew them (their balances come after).
    refuse_taken_logins(connection, rows)?;
    let mut principals = Vec::with_capacity(rows.citizens.len() + rows.merchants.len());
    for row in &rows.citizens {
        principals.push(PrincipalIn {
            principal_id: &row.citizen_id,
            login: &row.login,
            role: "citizen",
            password_hash: &row.password_hash,
            created_at_ms: row.created_at.timestamp_millis(),
        });
    }
    for row in &rows.merchants {
        principals.push(PrincipalIn {
            principal_id: row.merchant_id.as_str(),
            login: &row.login,
            role: "merchant",
            password_hash: &row.password_hash,
            created_at_ms: now_ms,
        });
    }
    progress
        .in_steps(&principals, |step| store::principals::put_principals(connection, step, now_ms))
        .map_err(|error| conflict("citizens.csv or merchants.csv", "(one of the bundle's)", error))?;
    // Merchants: the balances here (none yet for a new one; the ledger moves them in below).
    let merchant_ids: Vec<String> = rows.merchants.iter().map(|row| row.merchant_id.to_string()).collect();
    let mut merchants_here = HashMap::new();
    for chunk in merchant_ids.chunks(IDS_PER_QUERY_MAX) {
        merchants_here.extend(store::merchants::load_merchants(connection, chunk)?);
    }
    for row in &rows.merchants {
        let state = merchants_here.remove(&row.merchant_id).unwrap_or_default();
        book.load_merchant(row.merchant_id.clone(), state);
    }
    // Wallets: the balance here (none yet for a new one; the ledger moves it in below) and the
    // bundle's month counters. Cashback earned this month stays as counted here.
    let wallet_ids: Vec<String> = rows.citizens.iter().map(|row| row.wallet_id.to_string()).collect();
    let mut here = HashMap::new();
    for chunk in wallet_ids.chunks(IDS_PER_QUERY_MAX) {
        here.extend(store::wallets::load_wallets(connection, chunk, &mut store::wallets::HistoryHeads::default())?);
    }
    for row in &rows.citizens {
        let known = here.get(&row.wallet_id);
        let counters = wallet_core::wallet::MonthCounters {
            month: row.month,
            charged: row.charged_this_month,
            eligible_spent: row.cashback_eligible_spent_this_month,
            cashback_earned: known.map_or(Won::ZERO, |wallet| wallet.counters.cashback_earned),
            cashback_reversed: known.map_or(Won::ZERO, |wallet| wallet.counters.cashback_reversed),
        };
        let balance = known.map_or(Won::ZERO, |wallet| wallet.balance);
        let bonus = known.map_or(Won::ZERO, |wallet| wallet.bonus);
        book.load_wallet(row.wallet_id.clone(), WalletState { balance, bonus, counters });
    }
    drop(here);

    // History: new items are added, items already here must be the same.
    let history = new_history(connection, &rows.transactions)?;
    let wallets_with_history: std::collections::HashSet<&WalletId> =
        history.iter().filter_map(|row| row.wallet_id.as_ref()).collect();

    // Balances: each account moves by the difference between the bundle's balance and its own.
    let mut transactions = Vec::new();
    let mut items = Vec::new();
    for row in &rows.citizens {
        let current = book.wallet(&row.wallet_id).map(|wallet| wallet.balance).unwrap_or(Won::ZERO);
        let change = row.balance.checked_sub(current).map_err(|_| refused("citizens.csv: a balance overflows"))?;
        if change.is_zero() {
            continue;
        }
        let outcome = carry(&mut book, CarryOverAccount::Wallet(row.wallet_id.clone()), change, now)?;
        transactions.extend(outcome.transaction);
        // The bundle's own history explains the balance where it has any for this wallet.
        if !wallets_with_history.contains(&row.wallet_id) {
            items.extend(outcome.history);
        }
    }
    for row in &rows.merchants {
        let current = book.merchant(&row.merchant_id).map(|merchant| merchant.receivable).unwrap_or(Won::ZERO);
        let change =
            row.receivable.checked_sub(current).map_err(|_| refused("merchants.csv: a receivable overflows"))?;
        if !change.is_zero() {
            transactions.extend(
                carry(&mut book, CarryOverAccount::Merchant(row.merchant_id.clone()), change, now)?.transaction,
            );
        }
    }
    let budget_change = manifest
        .totals
        .cashback_budget_remaining
        .checked_sub(book.budget().remaining())
        .map_err(|_| refused("manifest.json: the cashback budget overflows"))?;
    if !budget_change.is_zero() {
        transactions.extend(carry(&mut book, CarryOverAccount::CashbackBudget, budget_change, now)?.transaction);
    }

    let mut changes = book.take_changes();
    // Every wallet of the bundle is written whole, balance and counters, one statement for
    // hundreds (its counters are the bundle's even where its balance did not move).
    debug_assert!(changes.wallets.iter().all(|(id, _)| rows.citizens.iter().any(|row| &row.wallet_id == id)));
    changes.wallets.clear();
    let mut wallets_out = Vec::with_capacity(rows.citizens.len());
    for row in &rows.citizens {
        let state = book.wallet(&row.wallet_id).ok_or_else(|| refused("a wallet of the bundle was not loaded"))?;
        wallets_out.push((row.wallet_id.as_str(), row.citizen_id.as_str(), state));
    }
    progress.in_steps(&wallets_out, |step| store::wallets::put_wallets(connection, step))?;
    // The bundle's merchants likewise: details and balances, one statement for hundreds.
    debug_assert!(changes.merchants.iter().all(|(id, _)| rows.merchants.iter().any(|row| &row.merchant_id == id)));
    changes.merchants.clear();
    let mut merchants_out = Vec::with_capacity(rows.merchants.len());
    for row in &rows.merchants {
        let state =
            book.merchant(&row.merchant_id).ok_or_else(|| refused("a merchant of the bundle was not loaded"))?;
        let details = store::merchants::MerchantDetails {
            merchant_id: row.merchant_id.as_str(),
            name: &row.name,
            business_number: &row.business_number,
            bank_account: &row.bank_account,
            category: row.category.as_deref(),
            annual_revenue: None,
        };
        merchants_out.push((details, state.clone()));
    }
    store::merchants::put_merchants(connection, &merchants_out)?;
    changes.payments = carried_payments(connection, &history)?;
    store::changes::save(connection, &changes, &mut store::wallets::HistoryHeads::default(), now)?;
    progress.in_steps(&transactions, |step| store::postings::save_transactions(connection, step))?;
    items.extend(history_items(connection, rows, &history)?);
    progress.in_steps(&items, |step| store::history::save_history(connection, step))?;

    // The control totals, read back from the books after applying.
    let wallets_sum = store::wallets::balance_sum(connection)?;
    let merchants_sum = store::merchants::receivable_sum(connection)?;
    let totals = &manifest.totals;
    if wallets_sum != won_to_db(totals.citizen_balance_sum)? {
        return Err(refused(format!(
            "citizens.csv: after applying, the wallets hold {wallets_sum} won, but the manifest's citizen_balance_sum is {}",
            totals.citizen_balance_sum
        )));
    }
    if merchants_sum != won_to_db(totals.merchant_receivable_sum)? {
        return Err(refused(format!(
            "merchants.csv: after applying, the receivables are {merchants_sum} won, but the manifest's merchant_receivable_sum is {}",
            totals.merchant_receivable_sum
        )));
    }
    let applied = AppliedBundle {
        sequence,
        kind: match manifest.kind {
            BundleKind::Snapshot => "snapshot".into(),
            BundleKind::Delta => "delta".into(),
        },
        operator: manifest.operator.clone(),
        as_of: manifest.as_of.to_rfc3339(),
        manifest_sha256: manifest_sha256.to_owned(),
        citizens: verified.citizens as i64,
        merchants: verified.merchants as i64,
        transactions: verified.transactions as i64,
        citizen_balance_sum: wallets_sum,
        merchant_receivable_sum: merchants_sum,
        cashback_budget_remaining: won_to_db(totals.cashback_budget_remaining)?,
        applied_at_ms: now_ms,
    };
    store::handover_bundles::record_bundle(connection, &applied)?;
    let entry = store::audit::Entry {
        at: now,
        actor: store::audit::Actor::CommandLine,
        action: store::audit::Action::HandoverImported,
        detail: serde_json::json!({
            "sequence": applied.sequence, "kind": applied.kind, "operator": applied.operator, "as_of": applied.as_of,
            "manifest_sha256": applied.manifest_sha256, "citizens": applied.citizens, "merchants": applied.merchants,
            "transactions": applied.transactions,
        }),
        idempotency_key: None,
    };
    store::audit::record(connection, entry)?;
    Ok(Imported::Applied(applied))
}

/// Refuses a bundle that gives a login held here by another principal: a conflict the bundle
/// cannot resolve.
fn refuse_taken_logins(connection: &mut DbConn, rows: &Rows) -> Result<(), ImportError> {
    let owners: HashMap<&str, (&str, &str)> = rows
        .citizens
        .iter()
        .map(|row| (row.login.as_str(), (row.citizen_id.as_str(), "citizens.csv")))
        .chain(rows.merchants.iter().map(|row| (row.login.as_str(), (row.merchant_id.as_str(), "merchants.csv"))))
        .collect();
    let logins: Vec<&str> = owners.keys().copied().collect();
    for holder in store::principals::login_holders(connection, &logins)? {
        if let Some((owner, file)) = owners.get(holder.login.as_str()) {
            if *owner != holder.principal_id {
                let login = &holder.login;
                return Err(refused(format!("{file}: login {login:?} belongs to another account here")));
            }
        }
    }
    Ok(())
}

/// A login that belongs to another principal here is a conflict the bundle cannot resolve.
fn conflict(file: &str, login: &str, error: StoreError) -> ImportError {
    match &error {
        StoreError::Query(query) if store::is_unique_violation(query) => {
            refused(format!("{file}: login {login:?} belongs to another account here"))
        }
        _ => ImportError::Store(error),
    }
}

fn carry(
    book: &mut Book,
    account: CarryOverAccount,
    amount: Won,
    now: DateTime<Utc>,
) -> Result<wallet_core::Outcome, ImportError> {
    let id = TxId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid id");
    let outcome = book
        .apply(&Command::CarryOver { id, account, amount }, now)
        .map_err(|rejection| refused(format!("the ledger refused a carried-over balance: {rejection}")))?;
    debug_assert!(matches!(outcome.receipt, Receipt::CarriedOver { .. }));
    Ok(outcome)
}

/// The bundle's transactions not already here; refuses one already here with other content.
fn new_history<'a>(
    connection: &mut DbConn,
    transactions: &'a [TransactionRow],
) -> Result<Vec<&'a TransactionRow>, ImportError> {
    let mut existing = HashMap::new();
    let ids: Vec<String> = transactions.iter().map(|row| row.tx_id.to_string()).collect();
    // The lookups are index probes at random places of a large index (about 70 µs each on
    // PostgreSQL against 3 million rows): fewer, larger lists cost less than many small ones.
    for chunk in ids.chunks(IDS_PER_QUERY_MAX) {
        for item in store::history::existing_items(connection, chunk)? {
            existing.insert(item.item_id.clone(), item);
        }
    }
    let mut new = Vec::new();
    for row in transactions {
        match existing.get(row.tx_id.as_str()) {
            None => new.push(row),
            Some(item) => {
                let same = item.kind == row.kind.as_str()
                    && item.amount == won_to_db(row.amount)?
                    && item.at_ms == row.at.timestamp_millis()
                    && row.wallet_id.as_ref().is_some_and(|id| id.as_str() == item.wallet_id);
                if !same {
                    return Err(refused(format!(
                        "transactions.csv: tx_id {:?} is already here with different content",
                        row.tx_id.as_str()
                    )));
                }
            }
        }
    }
    Ok(new)
}

/// Wallet history items for the new transactions, with each wallet's running balance: the
/// balance after the last item is the wallet's balance now, and each earlier one is worked back.
fn history_items(
    connection: &mut DbConn,
    rows: &Rows,
    history: &[&TransactionRow],
) -> Result<Vec<HistoryItem>, ImportError> {
    let balances: HashMap<&WalletId, Won> = rows.citizens.iter().map(|row| (&row.wallet_id, row.balance)).collect();
    let mut by_wallet: BTreeMap<&WalletId, Vec<&TransactionRow>> = BTreeMap::new();
    for row in history {
        if let Some(wallet) = &row.wallet_id {
            by_wallet.entry(wallet).or_default().push(row);
        }
    }
    let mut items = Vec::new();
    for (wallet, mut rows) in by_wallet {
        rows.sort_by_key(|row| row.at);
        let mut balance = match balances.get(wallet) {
            Some(balance) => *balance,
            // A delta's history for a wallet whose row it does not carry: the balance here.
            None => store::wallets::load_wallets_unlocked(connection, wallet.as_str())?
                .map(|state| state.balance)
                .ok_or_else(|| {
                    refused(format!("transactions.csv: wallet {:?} is neither in the bundle nor here", wallet.as_str()))
                })?,
        };
        let mut after = Vec::with_capacity(rows.len());
        for row in rows.iter().rev() {
            after.push(balance);
            balance = balance.checked_sub(row.amount).map_err(|_| refused("transactions.csv: amounts overflow"))?;
        }
        after.reverse();
        for (row, balance_after) in rows.into_iter().zip(after) {
            items.push(HistoryItem {
                id: row.tx_id.clone(),
                wallet: wallet.clone(),
                kind: row.kind,
                amount: row.amount,
                // Worked back from today's balance, an incomplete history (history_complete false)
                // can reach below zero where it does not go back far enough: shown as 0 there.
                balance_after: balance_after.max(Won::ZERO),
                at: row.at.with_timezone(&Utc),
                counterparty: row.merchant_id.clone().map(Counterparty::Merchant),
                related: row.related_tx_id.clone(),
            });
        }
    }
    Ok(items)
}

/// The outgoing operator's payments, as payments here (so they can be refunded by their id),
/// with what their refunds in the bundle took back. Eligible spend is not carried (the bundle
/// has only the month's counter), so refunds of these give none back.
fn carried_payments(
    connection: &mut DbConn,
    history: &[&TransactionRow],
) -> Result<Vec<(TxId, PaymentState)>, ImportError> {
    let mut payments: BTreeMap<TxId, PaymentState> = BTreeMap::new();
    for row in history.iter().filter(|row| row.kind == HistoryKind::Payment) {
        let (Some(wallet), Some(merchant)) = (&row.wallet_id, &row.merchant_id) else {
            return Err(refused(format!(
                "transactions.csv: payment {:?} needs a wallet_id and a merchant_id",
                row.tx_id.as_str()
            )));
        };
        let amount = wallet_core::Amount::try_from(row.amount.negate())
            .map_err(|error| refused(format!("transactions.csv: payment {:?}: {error}", row.tx_id.as_str())))?;
        let at = row.at.with_timezone(&Utc);
        // The bundle does not say what of it counted against the month's cap: none, here.
        payments.insert(
            row.tx_id.clone(),
            PaymentState::new(merchant.clone(), wallet.clone(), amount, row.cashback, Won::ZERO, at),
        );
    }
    // Refunds and reversals in the bundle, of payments in it or carried over before.
    let related: Vec<String> = history
        .iter()
        .filter(|row| matches!(row.kind, HistoryKind::Refund | HistoryKind::CashbackReversal))
        .filter_map(|row| row.related_tx_id.as_ref())
        .filter(|id| !payments.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    for chunk in related.chunks(IDS_PER_QUERY_MAX) {
        for (id, payment) in store::payments::load_payments(connection, chunk)? {
            payments.insert(id, payment);
        }
    }
    for row in history {
        let Some(payment_id) = &row.related_tx_id else { continue };
        let Some(payment) = payments.get_mut(payment_id) else {
            if matches!(row.kind, HistoryKind::Refund | HistoryKind::CashbackReversal) {
                return Err(refused(format!(
                    "transactions.csv: {:?} refers to payment {:?}, which is neither in the bundle nor here",
                    row.tx_id.as_str(),
                    payment_id.as_str()
                )));
            }
            continue;
        };
        match row.kind {
            HistoryKind::Refund => {
                payment.refunded = payment.refunded.checked_add(row.amount).map_err(|_| refused("overflow"))?
            }
            HistoryKind::CashbackReversal => {
                payment.cashback_reversed =
                    payment.cashback_reversed.checked_add(row.amount.negate()).map_err(|_| refused("overflow"))?
            }
            _ => {}
        }
        if payment.refunded > payment.amount.won() || payment.cashback_reversed > payment.cashback {
            return Err(refused(format!(
                "transactions.csv: the refunds of payment {:?} exceed it",
                payment_id.as_str()
            )));
        }
    }
    Ok(payments.into_iter().collect())
}
