//! Applying a verified bundle (version 1 or 2): all of it in one database transaction, or nothing.
//!
//! Balances enter the ledger as `CarryOver` commands of wallet-core (balanced against the
//! handover account), so the trial balance stays zero and the imported totals can be read back
//! from it: each wallet's own and bonus purses, each merchant's receivable, the cashback budget,
//! and from version 2 each program's remaining budget and each grant's allowance purse. A delta
//! carries the difference between a row's new figure and the one here. The outgoing operator's
//! ids are kept: principals, wallets, merchants, programs, grants and transactions keep their
//! ids, and its payments become payments here, so they can be refunded.
//!
//! A version 1 row has no purses: its balance is all own money (bonus 0), and it leaves the
//! references version 2 carries as they are here. A delta's citizen row carries the wallet's
//! allowances whole: its grants in allowances.csv, and none other with money left.
//!
//! A crash or kill at any moment leaves the database before the bundle or with all of it (one
//! transaction); running the import again finishes the job. Applying the same bundle again
//! changes nothing; another bundle under a sequence already applied is refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use wallet_core::{
    Book, CarryOverAccount, Command, Counterparty, GrantId, GrantState, HistoryItem, HistoryKind, PaymentState,
    ProgramBudget, ProgramState, Receipt, Transaction, TxId, WalletId, WalletState, Won,
};

use handover_format::bundle::{
    AllowanceRow, Bundle, BundleKind, CitizenRow, Encoding, MerchantRow, ProgramRow, Record, Row, TransactionRow,
    Verified,
};

use super::progress::Progress;
use crate::store::citizen_references::CitizenReferences;
use crate::store::handover_bundles::AppliedBundle;
use crate::store::principals::PrincipalIn;
use crate::store::wallets::CarriedWallet;
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
    programs: Vec<ProgramRow>,
    allowances: Vec<AllowanceRow>,
}

/// Verifies the bundle in `dir`, then applies it in one transaction.
pub fn import(
    connection: &mut DbConn,
    dir: &Path,
    encoding: Encoding,
    memory_bytes: u64,
    now: DateTime<Utc>,
) -> Result<Imported, ImportError> {
    let mut rows = Rows::default();
    let bundle = Bundle::open(dir, encoding).with_memory(memory_bytes);
    let rows_declared = bundle.manifest().map_or(0, |manifest| manifest.files.values().map(|file| file.rows).sum());
    let reading = Progress::rows("verifying", rows_declared);
    let verified = bundle
        .verify_records(|record| {
            reading.add(1);
            match record {
                Record::Row(Row::Citizen(row)) => rows.citizens.push(row),
                Record::Row(Row::Merchant(row)) => rows.merchants.push(row),
                Record::Row(Row::Transaction(row)) => rows.transactions.push(row),
                Record::Program(row) => rows.programs.push(row),
                Record::Allowance(row) => rows.allowances.push(row),
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
    // At most: principals, wallets, programs, carry-over postings (a wallet's two purses and its
    // allowances) and history items.
    let (citizens, merchants) = (rows.citizens.len(), rows.merchants.len());
    let (programs, allowances) = (rows.programs.len(), rows.allowances.len());
    let rows_to_write = ((citizens + merchants)
        + citizens
        + programs
        + (2 * citizens + allowances + merchants + programs + 1)
        + (rows.transactions.len() + 2 * citizens + allowances)) as u64;
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

/// The ledger as the bundle moves it: the loaded accounts, and the transactions and history
/// items of the carries so far.
struct Carrying {
    book: Book,
    transactions: Vec<Transaction>,
    items: Vec<HistoryItem>,
    /// Wallets whose history the bundle itself has: their carries add no history item.
    wallets_with_history: HashSet<WalletId>,
    now: DateTime<Utc>,
}

impl Carrying {
    /// Carries `amount` into `account` (nothing when it is zero). A carry into a wallet's purse
    /// shows in its history unless the bundle's own history explains the wallet.
    fn carry(&mut self, account: CarryOverAccount, amount: Won) -> Result<(), ImportError> {
        if amount.is_zero() {
            return Ok(());
        }
        let outcome = carry(&mut self.book, account, amount, self.now)?;
        self.transactions.extend(outcome.transaction);
        let explained = |item: &HistoryItem| self.wallets_with_history.contains(&item.wallet);
        let items: Vec<HistoryItem> = outcome.history.into_iter().filter(|item| !explained(item)).collect();
        self.items.extend(items);
        Ok(())
    }
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
    if let Some(applied) = check_order(connection, verified, sequence, manifest_sha256)? {
        return Ok(Imported::AlreadyApplied(applied));
    }
    let now_ms = store::time::millis(now);
    let (policy, budget, system) = store::ledger_state::load_state(connection, true)?;
    let mut book = Book::new(policy);
    book.load_budget(budget);
    book.load_system(system);
    // Version 2: the policy in force is the bundle's from the first second.
    if let Some(policy) = &verified.policy {
        book.apply(&Command::SetPolicy { policy: policy.clone() }, now)
            .map_err(|rejection| refused(format!("policy.json: the ledger refused it: {rejection}")))?;
    }

    // Principals and merchants as the outgoing operator knew them (their balances come after).
    put_principals(connection, rows, now_ms, progress)?;
    // Programs before the grants that name them.
    load_programs(connection, &mut book, rows, now)?;
    load_merchants(connection, &mut book, rows)?;
    load_wallets(connection, &mut book, rows)?;

    // History: new items are added, items already here must be the same.
    let history = new_history(connection, &rows.transactions)?;
    let wallets_with_history = history.iter().filter_map(|row| row.wallet_id.clone()).collect();
    let mut carrying = Carrying { book, transactions: Vec::new(), items: Vec::new(), wallets_with_history, now };
    carry_programs(&mut carrying, rows)?;
    carry_wallets(&mut carrying, rows)?;
    carry_allowances(connection, &mut carrying, rows)?;
    for row in &rows.merchants {
        let current = carrying.book.merchant(&row.merchant_id).map_or(Won::ZERO, |merchant| merchant.receivable);
        let change =
            row.receivable.checked_sub(current).map_err(|_| refused("merchants.csv: a receivable overflows"))?;
        carrying.carry(CarryOverAccount::Merchant(row.merchant_id.clone()), change)?;
    }
    let budget_change = manifest
        .totals
        .cashback_budget_remaining
        .checked_sub(carrying.book.budget().remaining())
        .map_err(|_| refused("manifest.json: the cashback budget overflows"))?;
    carrying.carry(CarryOverAccount::CashbackBudget, budget_change)?;

    write(connection, verified, rows, &history, carrying, progress)?;
    let totals = check_totals(connection, verified)?;
    record(connection, verified, sequence, manifest_sha256, &totals, now).map(Imported::Applied)
}

/// Records the bundle as applied, with its audit row, in the import's transaction.
fn record(
    connection: &mut DbConn,
    verified: &Verified,
    sequence: i64,
    manifest_sha256: &str,
    totals: &TotalsHere,
    now: DateTime<Utc>,
) -> Result<AppliedBundle, ImportError> {
    let manifest = &verified.manifest;
    let applied = AppliedBundle {
        sequence,
        kind: manifest.kind.as_str().to_owned(),
        operator: manifest.operator.clone(),
        as_of: manifest.as_of.to_rfc3339(),
        manifest_sha256: manifest_sha256.to_owned(),
        citizens: verified.citizens as i64,
        merchants: verified.merchants as i64,
        transactions: verified.transactions as i64,
        citizen_balance_sum: totals.wallets_sum,
        merchant_receivable_sum: totals.merchants_sum,
        cashback_budget_remaining: won_to_db(manifest.totals.cashback_budget_remaining)?,
        applied_at_ms: store::time::millis(now),
    };
    store::handover_bundles::record_bundle(connection, &applied)?;
    let entry = store::audit::Entry {
        at: now,
        actor: store::audit::Actor::CommandLine,
        action: store::audit::Action::HandoverImported,
        detail: serde_json::json!({
            "sequence": applied.sequence, "kind": applied.kind, "operator": applied.operator, "as_of": applied.as_of,
            "format": manifest.version.format(), "manifest_sha256": applied.manifest_sha256,
            "citizens": applied.citizens, "merchants": applied.merchants, "transactions": applied.transactions,
            "programs": verified.programs, "allowances": verified.allowances, "policy": verified.policy,
        }),
        idempotency_key: None,
    };
    store::audit::record(connection, entry)?;
    Ok(applied)
}

/// `Some` when this very bundle was applied before; refuses a bundle out of order, from another
/// operator, or another bundle under a sequence already applied.
fn check_order(
    connection: &mut DbConn,
    verified: &Verified,
    sequence: i64,
    manifest_sha256: &str,
) -> Result<Option<AppliedBundle>, ImportError> {
    let manifest = &verified.manifest;
    if let Some(applied) = store::handover_bundles::applied_bundle(connection, Some(sequence))? {
        if applied.manifest_sha256 == manifest_sha256 {
            return Ok(Some(applied));
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
        (BundleKind::Snapshot, None) => Ok(None),
        (BundleKind::Snapshot, Some(last)) => {
            Err(refused(format!("manifest.json: a snapshot comes first, but bundle {last} was already applied")))
        }
        (BundleKind::Delta, Some(last)) if sequence == last + 1 => Ok(None),
        (BundleKind::Delta, last) => {
            let expected = last.map_or_else(|| "a snapshot first".to_owned(), |last| format!("sequence {}", last + 1));
            Err(refused(format!(
                "manifest.json: out of order: this is delta {sequence}, the next bundle must be {expected}"
            )))
        }
    }
}

/// The bundle's citizens and merchants as principals, and (version 2) the citizens' carried
/// references.
fn put_principals(connection: &mut DbConn, rows: &Rows, now_ms: i64, progress: &Progress) -> Result<(), ImportError> {
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
    // A version 1 row says nothing of them: what is here stays.
    let references: Vec<CitizenReferences> = rows
        .citizens
        .iter()
        .filter_map(|row| {
            let v2 = row.v2.as_ref()?;
            Some(CitizenReferences {
                citizen_id: row.citizen_id.clone(),
                identity_verified_at_ms: v2.identity_verified_at.map(|at| at.timestamp_millis()),
                identity_ref: v2.identity_ref.clone(),
                bank_link_ref: v2.bank_link_ref.clone(),
                bank_account_masked: v2.bank_account_masked.clone(),
            })
        })
        .collect();
    store::citizen_references::put(connection, &references)?;
    Ok(())
}

/// The bundle's programs into the book as they are here, after adding those not here yet with
/// an empty budget (the ledger carries the money in). A program here keeps its definition: a
/// program's rules never change.
fn load_programs(connection: &mut DbConn, book: &mut Book, rows: &Rows, now: DateTime<Utc>) -> Result<(), ImportError> {
    let ids: Vec<String> = rows.programs.iter().map(|row| row.program_id.to_string()).collect();
    let existing: HashSet<String> = store::programs::existing(connection, &ids)?.into_iter().collect();
    for row in rows.programs.iter().filter(|row| !existing.contains(row.program_id.as_str())) {
        store::programs::insert(connection, &row.program_id, &row.name, &row.rules, now)?;
    }
    for (id, program) in store::programs::load_programs(connection, &ids)? {
        book.load_program(id, program);
    }
    Ok(())
}

/// The bundle's merchants into the book: their balances here (none yet for a new one; the
/// ledger moves them in), and from version 2 what they carry into their next close and the
/// revenue programs decide by.
fn load_merchants(connection: &mut DbConn, book: &mut Book, rows: &Rows) -> Result<(), ImportError> {
    let merchant_ids: Vec<String> = rows.merchants.iter().map(|row| row.merchant_id.to_string()).collect();
    let mut merchants_here = HashMap::new();
    for chunk in merchant_ids.chunks(IDS_PER_QUERY_MAX) {
        merchants_here.extend(store::merchants::load_merchants(connection, chunk)?);
    }
    for row in &rows.merchants {
        let mut state = merchants_here.remove(&row.merchant_id).unwrap_or_default();
        state.category = row.category.clone();
        if let Some(v2) = &row.v2 {
            state.carried_negative = v2.carried_in;
            state.annual_revenue = v2.annual_revenue;
        }
        book.load_merchant(row.merchant_id.clone(), state);
    }
    Ok(())
}

/// The bundle's wallets into the book, with the bundle's month counters and their grants here
/// (a delta carries each to the bundle's figure). Cashback earned this month stays as counted
/// here.
fn load_wallets(connection: &mut DbConn, book: &mut Book, rows: &Rows) -> Result<(), ImportError> {
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
            bonus_quota_used: row.v2.as_ref().map_or(Won::ZERO, |v2| v2.bonus_quota_used_this_month),
        };
        let balance = known.map_or(Won::ZERO, |wallet| wallet.balance);
        let bonus = known.map_or(Won::ZERO, |wallet| wallet.bonus);
        // A carry is no payment: whether the city locked the wallet does not matter to it.
        book.load_wallet(row.wallet_id.clone(), WalletState { balance, bonus, counters, locked: false });
    }
    for chunk in wallet_ids.chunks(IDS_PER_QUERY_MAX) {
        for (id, grant) in store::allowances::load_for_wallets(connection, chunk)? {
            book.load_grant(id, grant);
        }
    }
    Ok(())
}

/// Each program's remaining budget is carried to the bundle's, and its figures are the bundle's.
fn carry_programs(carrying: &mut Carrying, rows: &Rows) -> Result<(), ImportError> {
    let book = &mut carrying.book;
    let mut carries = Vec::with_capacity(rows.programs.len());
    for row in &rows.programs {
        let here = book.program(&row.program_id).ok_or_else(|| refused("a program of the bundle was not loaded"))?;
        let (held_here, rules) = (here.budget.remaining(), here.rules.clone());
        let overflow = || refused("programs.csv: a budget overflows");
        let carried = row.budget.remaining().checked_sub(held_here).map_err(|_| overflow())?;
        // The bundle's figures, less what the carry below adds to `funded`: so the program
        // holds what it holds here (no money moves by loading it) and ends with the bundle's
        // figures once the carry has moved the difference in.
        let stated =
            ProgramBudget { funded: row.budget.funded.checked_sub(carried).map_err(|_| overflow())?, ..row.budget };
        assert_eq!(stated.remaining(), held_here, "a program's restated budget moved money");
        book.load_program(row.program_id.clone(), ProgramState { rules, budget: stated });
        carries.push((row.program_id.clone(), carried));
    }
    for (program, carried) in carries {
        carrying.carry(CarryOverAccount::Program(program), carried)?;
    }
    Ok(())
}

/// Each wallet's own and bonus purses are carried to the bundle's (a version 1 balance is all
/// own money).
fn carry_wallets(carrying: &mut Carrying, rows: &Rows) -> Result<(), ImportError> {
    for row in &rows.citizens {
        let wallet =
            carrying.book.wallet(&row.wallet_id).ok_or_else(|| refused("a wallet of the bundle was not loaded"))?;
        let overflow = || refused("citizens.csv: a balance overflows");
        let own_after = row.balance.checked_sub(row.bonus()).map_err(|_| overflow())?;
        let own_change = own_after.checked_sub(wallet.own()).map_err(|_| overflow())?;
        let bonus_change = row.bonus().checked_sub(wallet.bonus).map_err(|_| overflow())?;
        carrying.carry(CarryOverAccount::Wallet(row.wallet_id.clone()), own_change)?;
        carrying.carry(CarryOverAccount::Bonus(row.wallet_id.clone()), bonus_change)?;
    }
    Ok(())
}

/// Each wallet of the bundle holds the allowances of allowances.csv: a grant new here enters
/// empty and is carried in, one here is carried to the bundle's figure, and one here with money
/// left that the bundle no longer lists is carried out (spent or expired at the outgoing
/// operator).
fn carry_allowances(connection: &mut DbConn, carrying: &mut Carrying, rows: &Rows) -> Result<(), ImportError> {
    let unknown: Vec<String> = rows
        .allowances
        .iter()
        .filter(|row| carrying.book.grant_state(&row.grant_id).is_none())
        .map(|row| row.grant_id.to_string())
        .collect();
    for chunk in unknown.chunks(IDS_PER_QUERY_MAX) {
        if let Some((id, grant)) = store::allowances::load_grants(connection, chunk)?.into_iter().next() {
            return Err(refused(format!(
                "allowances.csv: grant {:?} is here already, in wallet {:?}, not in the wallet the bundle names",
                id.as_str(),
                grant.wallet.as_str()
            )));
        }
    }
    let mut listed: HashMap<&WalletId, HashSet<&GrantId>> = HashMap::new();
    for row in &rows.allowances {
        listed.entry(&row.wallet_id).or_default().insert(&row.grant_id);
        let here = match carrying.book.grant_state(&row.grant_id) {
            Some(grant) if grant.wallet != row.wallet_id || grant.program != row.program_id => {
                return Err(refused(format!(
                    "allowances.csv: grant {:?} is here already, of program {:?} in wallet {:?}",
                    row.grant_id.as_str(),
                    grant.program.as_str(),
                    grant.wallet.as_str()
                )))
            }
            Some(grant) => grant.outstanding,
            None => {
                let state = GrantState {
                    program: row.program_id.clone(),
                    wallet: row.wallet_id.clone(),
                    // What was granted is the outgoing operator's to know: here, what came over.
                    amount: row.amount.won(),
                    outstanding: Won::ZERO,
                    granted_at: row.granted_at.with_timezone(&Utc),
                    expires_at: row.expires_at.with_timezone(&Utc),
                };
                carrying.book.open_grant(row.grant_id.clone(), state);
                Won::ZERO
            }
        };
        let change = row.amount.won().checked_sub(here).map_err(|_| refused("allowances.csv: an amount overflows"))?;
        carrying.carry(CarryOverAccount::Allowance(row.grant_id.clone()), change)?;
    }
    let no_longer_listed: Vec<(GrantId, Won)> = rows
        .citizens
        .iter()
        .flat_map(|row| carrying.book.grants_of(&row.wallet_id))
        .filter(|(id, grant)| {
            !grant.outstanding.is_zero() && !listed.get(&grant.wallet).is_some_and(|listed| listed.contains(id))
        })
        .map(|(id, grant)| (id.clone(), grant.outstanding))
        .collect();
    for (grant, outstanding) in no_longer_listed {
        carrying.carry(CarryOverAccount::Allowance(grant), outstanding.negate())?;
    }
    Ok(())
}

/// Writes what the bundle carries: wallets, merchants and programs whole, the book's other
/// changes, postings and history, and the last date the outgoing operator closed.
fn write(
    connection: &mut DbConn,
    verified: &Verified,
    rows: &Rows,
    history: &[&TransactionRow],
    carrying: Carrying,
    progress: &Progress,
) -> Result<(), ImportError> {
    let Carrying { mut book, transactions, mut items, now, .. } = carrying;
    let mut changes = book.take_changes();
    // Every wallet of the bundle is written whole, balance and counters, one statement for
    // hundreds (its counters are the bundle's even where its balance did not move).
    debug_assert!(changes.wallets.iter().all(|(id, _)| rows.citizens.iter().any(|row| &row.wallet_id == id)));
    changes.wallets.clear();
    let mut wallets_out = Vec::with_capacity(rows.citizens.len());
    for row in &rows.citizens {
        let state = book.wallet(&row.wallet_id).ok_or_else(|| refused("a wallet of the bundle was not loaded"))?;
        let quota = row.v2.as_ref().map_or(Won::ZERO, |v2| v2.bonus_quota_used_this_month);
        wallets_out.push(CarriedWallet {
            wallet_id: row.wallet_id.as_str(),
            citizen_id: row.citizen_id.as_str(),
            state,
            bonus_quota_used: won_to_db(quota)?,
        });
    }
    progress.in_steps(&wallets_out, |step| store::wallets::put_wallets(connection, step))?;
    // The bundle's merchants likewise: details and balances, one statement for hundreds.
    debug_assert!(changes.merchants.iter().all(|(id, _)| rows.merchants.iter().any(|row| &row.merchant_id == id)));
    changes.merchants.clear();
    let mut merchants_out = Vec::with_capacity(rows.merchants.len());
    let mut revenues = Vec::new();
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
        if let Some(v2) = &row.v2 {
            revenues.push((row.merchant_id.as_str(), v2.annual_revenue.map(won_to_db).transpose()?));
        }
    }
    store::merchants::put_merchants(connection, &merchants_out)?;
    store::merchants::set_annual_revenues(connection, &revenues)?;
    // The bundle's programs: each budget as the bundle states it, whether or not money moved.
    changes.programs = rows
        .programs
        .iter()
        .map(|row| {
            let state = book.program(&row.program_id).ok_or_else(|| refused("a program of the bundle was not loaded"));
            state.map(|state| (row.program_id.clone(), state.clone()))
        })
        .collect::<Result<_, _>>()?;
    changes.payments = carried_payments(connection, history)?;
    store::changes::save(connection, &changes, &mut store::wallets::HistoryHeads::default(), now)?;
    progress.in_steps(&transactions, |step| store::postings::save_transactions(connection, step))?;
    items.extend(history_items(connection, rows, history)?);
    progress.in_steps(&items, |step| store::history::save_history(connection, step))?;
    if let Some(date) = verified.manifest.v2.and_then(|v2| v2.last_closed_business_date) {
        store::settlements::record_closed_before_handover(connection, date, &fresh_tx_id(), now)?;
    }
    Ok(())
}

/// The control totals read back from the books after applying.
struct TotalsHere {
    wallets_sum: i64,
    merchants_sum: i64,
}

/// The manifest's control totals (after applying, for a delta) read back from the books.
fn check_totals(connection: &mut DbConn, verified: &Verified) -> Result<TotalsHere, ImportError> {
    let manifest = &verified.manifest;
    let wallets_sum = store::wallets::balance_sum(connection)?;
    let merchants_sum = store::merchants::receivable_sum(connection)?;
    let totals = &manifest.totals;
    let mut checks = vec![
        ("citizens.csv", "the wallets hold", wallets_sum, "citizen_balance_sum", totals.citizen_balance_sum),
        (
            "merchants.csv",
            "the receivables are",
            merchants_sum,
            "merchant_receivable_sum",
            totals.merchant_receivable_sum,
        ),
    ];
    if let Some(v2) = &manifest.v2 {
        let totals = &v2.totals;
        let bonus_sum = store::wallets::bonus_sum(connection)?;
        let as_of = manifest.as_of.with_timezone(&Utc);
        let allowance_sum = store::allowances::live_outstanding_sum(connection, as_of)?;
        let program_sum = store::programs::remaining_sum(connection)?;
        checks.extend([
            ("citizens.csv", "the bonus purses hold", bonus_sum, "citizen_bonus_sum", totals.citizen_bonus_sum),
            (
                "allowances.csv",
                "the allowances unexpired at as_of hold",
                allowance_sum,
                "allowance_outstanding_sum",
                totals.allowance_outstanding_sum,
            ),
            (
                "programs.csv",
                "the programs' remaining budgets are",
                program_sum,
                "program_budget_remaining_sum",
                totals.program_budget_remaining_sum,
            ),
        ]);
    }
    for (file, what, here, name, total) in checks {
        if here != won_to_db(total)? {
            return Err(refused(format!(
                "{file}: after applying, {what} {here} won, but the manifest's {name} is {total}"
            )));
        }
    }
    Ok(TotalsHere { wallets_sum, merchants_sum })
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

/// A new id for a transaction the import makes.
fn fresh_tx_id() -> TxId {
    TxId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid id")
}

fn carry(
    book: &mut Book,
    account: CarryOverAccount,
    amount: Won,
    now: DateTime<Utc>,
) -> Result<wallet_core::Outcome, ImportError> {
    let id = fresh_tx_id();
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
/// balance after the last item is what the wallet holds now (its balance and, from version 2,
/// its allowances), and each earlier one is worked back.
fn history_items(
    connection: &mut DbConn,
    rows: &Rows,
    history: &[&TransactionRow],
) -> Result<Vec<HistoryItem>, ImportError> {
    let mut balances: HashMap<&WalletId, Won> = rows.citizens.iter().map(|row| (&row.wallet_id, row.balance)).collect();
    for row in &rows.allowances {
        if let Some(balance) = balances.get_mut(&row.wallet_id) {
            *balance =
                balance.checked_add(row.amount.won()).map_err(|_| refused("allowances.csv: amounts overflow"))?;
        }
    }
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
                counterparty: match &row.counterparty_wallet_id {
                    Some(wallet) => Some(Counterparty::Wallet(wallet.clone())),
                    None => row.merchant_id.clone().map(Counterparty::Merchant),
                },
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
