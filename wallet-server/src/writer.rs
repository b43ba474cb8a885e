//! The one write path for money: a dedicated thread that takes requests in batches, loads the
//! accounts they touch into a `wallet_core::Book`, applies them, and commits postings, balances,
//! history and idempotency records in one database transaction. Each request is answered only
//! after that commit.
//!
//! The batch is whatever is queued when the thread wakes (up to `Batching::size_max`), so a
//! lone request is never delayed waiting for company: while one batch commits, the next one
//! gathers by itself. `Batching::wait` can add a short wait for more, taken only while the
//! previous batch had company (a machine with many cores and a slow disk may want it).
//!
//! Requests wait in one of two lanes ([`Lane`]). Bulk work (grant commands of up to 1,000
//! wallets, a city-wide grant's chunks) never makes a payment wait behind a queue of it: each
//! batch takes every interactive request queued and at most one bulk request, so a payment waits
//! behind at most one bulk command's apply, and bulk work fills what payments leave free.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use wallet_core::{Book, BusinessDate, Changes, Command, HistoryItem, Keys, Policy, Receipt, Transaction};

pub use crate::api::Answer;
use crate::api::{self, render, ApiError, ErrorCode};
use crate::clock::Clock;
use crate::metrics::Histogram;
use crate::store::{self, audit, DbConn, DbPool, StoreError, StoreResult};

/// What a request asks the writer to do: a ledger command. Every write of money or payment
/// codes is a `wallet_core::Command` now; the wrapper stays only so that the HTTP handlers' call
/// sites need not change in the same step, and can go once they build a `Command` directly.
pub enum WriteOp {
    Ledger(Command),
}

impl WriteOp {
    fn command(&self) -> &Command {
        match self {
            WriteOp::Ledger(command) => command,
        }
    }
}

/// The principal of a request made by a `wallet-server` command on the server's machine (a grant
/// from a file): its audit rows say `via = cli`.
pub const COMMAND_LINE: &str = "command-line";

/// The Idempotency-Key of a request and a hash of what it asked, so a reuse with another body
/// is told apart from a retry.
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

pub struct WriteRequest {
    pub principal: String,
    pub idempotency: Option<Idempotency>,
    pub op: WriteOp,
    reply: oneshot::Sender<Answer>,
    /// Held while a bulk request is queued or applied; `None` in the interactive lane.
    bulk_slot: Option<BulkSlot>,
}

/// The lane a request waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Payments, refunds, charges, gifts, codes, admin actions: served in arrival order.
    Interactive,
    /// Grants: one a batch, riding along the interactive requests.
    Bulk,
}

impl Lane {
    fn of(command: &Command) -> Lane {
        match command {
            Command::Grant { .. } => Lane::Bulk,
            _ => Lane::Interactive,
        }
    }
}

/// Bulk requests queued or being applied at most; one more is refused as `overloaded`. A few,
/// so a grant client keeps the writer fed, and the queue never holds much bulk work that
/// payments would have to outwait on a restart.
pub const BULK_QUEUED_MAX: usize = 4;

/// A bulk request's place in the bulk lane, given back when the request is dropped (answered,
/// or lost with a failed batch).
struct BulkSlot(Arc<AtomicUsize>);

impl BulkSlot {
    fn take(queued: &Arc<AtomicUsize>) -> Option<BulkSlot> {
        let taken = queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
            (queued < BULK_QUEUED_MAX).then_some(queued + 1)
        });
        taken.ok().map(|_| BulkSlot(queued.clone()))
    }
}

impl Drop for BulkSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the writer forms batches.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Requests in one transaction at most.
    pub size_max: usize,
    /// How long to wait for more requests once the queue is drained; only under load.
    pub wait: Duration,
}

/// The handle the HTTP layer sends requests through.
#[derive(Clone)]
pub struct Writer {
    sender: SyncSender<WriteRequest>,
    stats: Arc<WriterStats>,
    /// Bulk requests queued or being applied.
    bulk_queued: Arc<AtomicUsize>,
}

/// How many of the last batches [`WriterStats::recent`] summarises.
const RECENT_BATCHES_MAX: usize = 128;

/// What the writer has done: histograms of every committed batch (for `/metrics`) and the last
/// [`RECENT_BATCHES_MAX`] batches (for the admin status). Written by the writer thread once per
/// batch; read by scrapes.
pub struct WriterStats {
    /// Requests per committed batch.
    pub batch_commands: Histogram,
    /// From opening a batch's transaction to its commit, in microseconds.
    pub commit_us: Histogram,
    pub batches_failed_total: AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    /// (requests, commit microseconds) of the last committed batches, oldest first.
    batches: VecDeque<(u64, u64)>,
    last_batch_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    last_batch_failed: bool,
}

/// The last committed batches in figures.
#[derive(Clone, Debug, Default)]
pub struct RecentBatches {
    pub batches: u64,
    pub commands_mean: f64,
    pub commands_max: u64,
    pub commit_ms_mean: f64,
    pub commit_ms_max: f64,
    pub last_batch_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The latest batch failed: nothing of it was committed.
    pub last_batch_failed: bool,
}

impl WriterStats {
    fn new() -> WriterStats {
        WriterStats {
            batch_commands: Histogram::new(&crate::metrics::BATCH_COMMANDS_BOUNDS),
            commit_us: Histogram::new(&crate::metrics::LATENCY_BOUNDS_US),
            batches_failed_total: AtomicU64::new(0),
            recent: Mutex::new(Recent::default()),
        }
    }

    fn committed(&self, commands: usize, took: std::time::Duration, at: DateTime<Utc>) {
        let commit_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.batch_commands.observe(commands as u64);
        self.commit_us.observe(commit_us);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.batches.len() == RECENT_BATCHES_MAX {
                recent.batches.pop_front();
            }
            recent.batches.push_back((commands as u64, commit_us));
            recent.last_batch_at = Some(at);
            recent.last_batch_failed = false;
        }
    }

    fn failed(&self, at: DateTime<Utc>) {
        self.batches_failed_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut recent) = self.recent.lock() {
            recent.last_batch_at = Some(at);
            recent.last_failure_at = Some(at);
            recent.last_batch_failed = true;
        }
    }

    pub fn recent(&self) -> RecentBatches {
        let Ok(recent) = self.recent.lock() else { return RecentBatches::default() };
        let batches = recent.batches.len() as u64;
        let (commands_sum, commit_us_sum) =
            recent.batches.iter().fold((0u64, 0u64), |(commands, us), batch| (commands + batch.0, us + batch.1));
        let mean = |sum: u64| if batches == 0 { 0.0 } else { sum as f64 / batches as f64 };
        RecentBatches {
            batches,
            commands_mean: mean(commands_sum),
            commands_max: recent.batches.iter().map(|batch| batch.0).max().unwrap_or(0),
            commit_ms_mean: mean(commit_us_sum) / 1_000.0,
            commit_ms_max: recent.batches.iter().map(|batch| batch.1).max().unwrap_or(0) as f64 / 1_000.0,
            last_batch_at: recent.last_batch_at,
            last_failure_at: recent.last_failure_at,
            last_batch_failed: recent.last_batch_failed,
        }
    }
}

impl Writer {
    /// Starts the writer thread on its own connection from `pool`. A stored answer older than
    /// `idempotency_retention` no longer binds its key: the key is used anew.
    pub fn start(
        pool: DbPool,
        clock: Arc<Clock>,
        queue_max: usize,
        batching: Batching,
        idempotency_retention: std::time::Duration,
    ) -> Writer {
        let (sender, receiver) = mpsc::sync_channel(queue_max);
        let stats = Arc::new(WriterStats::new());
        let thread_stats = stats.clone();
        let retention_ms = i64::try_from(idempotency_retention.as_millis()).unwrap_or(i64::MAX);
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(pool, clock, receiver, batching, retention_ms, &thread_stats))
            .expect("the writer thread starts");
        Writer { sender, stats, bulk_queued: Arc::new(AtomicUsize::new(0)) }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues a request in its command's lane and waits for its committed answer. A full queue
    /// (or bulk lane) is answered at once with `overloaded`, having changed nothing.
    pub async fn submit(&self, principal: String, idempotency: Option<Idempotency>, op: WriteOp) -> Answer {
        let bulk_slot = match Lane::of(op.command()) {
            Lane::Interactive => None,
            Lane::Bulk => match BulkSlot::take(&self.bulk_queued) {
                Some(slot) => Some(slot),
                None => {
                    return ApiError::overloaded(format!(
                        "{BULK_QUEUED_MAX} grant commands are queued already; send the next when one is answered"
                    ))
                    .into()
                }
            },
        };
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest { principal, idempotency, op, reply, bulk_slot };
        match self.sender.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return ApiError::overloaded("the payment queue is full; try again in a second").into()
            }
            Err(TrySendError::Disconnected(_)) => return ApiError::internal().into(),
        }
        answer.await.unwrap_or_else(|_| ApiError::internal().into())
    }
}

/// Takes the next batch: blocks for the first request (unless bulk work waits in `deferred`),
/// then takes what is queued; under load (`had_company`), waits up to `batching.wait` for more.
/// Bulk requests taken from the queue wait in `deferred`, and one of them joins the batch: a
/// payment never waits behind more than one. `None` once every sender is gone and no bulk
/// work is left.
fn next_batch(
    receiver: &Receiver<WriteRequest>,
    deferred: &mut VecDeque<WriteRequest>,
    batching: Batching,
    had_company: bool,
) -> Option<Vec<WriteRequest>> {
    let mut batch = Vec::new();
    let first = if deferred.is_empty() { Some(receiver.recv().ok()?) } else { receiver.try_recv().ok() };
    let mut take = |request: WriteRequest, batch: &mut Vec<WriteRequest>| match request.bulk_slot {
        Some(_) => deferred.push_back(request),
        None => batch.push(request),
    };
    if let Some(request) = first {
        take(request, &mut batch);
    }
    let deadline = (had_company && !batching.wait.is_zero()).then(|| Instant::now() + batching.wait);
    while batch.len() < batching.size_max {
        let next = match deadline {
            None => receiver.try_recv().ok(),
            Some(deadline) => receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok(),
        };
        match next {
            Some(request) => take(request, &mut batch),
            None => break,
        }
    }
    batch.extend(deferred.pop_front());
    debug_assert!(!batch.is_empty(), "a batch is formed only when a request was taken or deferred");
    Some(batch)
}

fn run(
    pool: DbPool,
    clock: Arc<Clock>,
    receiver: Receiver<WriteRequest>,
    batching: Batching,
    idempotency_retention_ms: i64,
    stats: &WriterStats,
) {
    let mut connection = None;
    let mut had_company = false;
    let mut deferred = VecDeque::with_capacity(BULK_QUEUED_MAX);
    while let Some(batch) = next_batch(&receiver, &mut deferred, batching, had_company) {
        had_company = batch.len() > 1;
        if connection.is_none() {
            connection = pool.get().map_err(|error| tracing::error!(%error, "writer has no connection")).ok();
            if let Some(connection) = connection.as_mut() {
                store::writer_cache(connection);
            }
        }
        let started = Instant::now();
        let answers = match connection.as_mut() {
            Some(connection) => match process_retrying(connection, &clock, &batch, idempotency_retention_ms) {
                Ok(answers) => {
                    stats.committed(batch.len(), started.elapsed(), clock.now());
                    answers
                }
                Err(error) => {
                    // All of the batch or none of it was committed, but which is not always
                    // known: a connection lost during COMMIT (PostgreSQL crashing after its log
                    // flush) may have committed it. Its idempotency records went with it, so a
                    // retry with the same key gets the one answer either way.
                    tracing::error!(%error, batch = batch.len(), "batch failed; committed all or none of it");
                    stats.failed(clock.now());
                    vec![Answer::from(failed_batch(error)); batch.len()]
                }
            },
            None => {
                stats.failed(clock.now());
                vec![
                    Answer::from(ApiError::overloaded("the database is not reachable; try again shortly"));
                    batch.len()
                ]
            }
        };
        if answers.iter().any(|answer| answer.status >= 500) {
            connection = None; // a failed commit may have broken the connection; take a fresh one
        }
        for (request, answer) in batch.into_iter().zip(answers) {
            let _ = request.reply.send(answer);
        }
    }
}

/// Runs of one batch at most when each meets a concurrent commit of a unique key.
const UNIQUE_CONFLICT_RUNS_MAX: usize = 4;

/// [`process`], run again when it failed on a unique key. Idempotency-Keys no longer race
/// (`store::idempotency::lock_idempotency_keys`), but should another server commit any other
/// unique row between this batch's read and its insert, the batch-mates must still not fail: the
/// whole batch was rolled back, and the next run finds the other server's rows. Bounded, so a
/// conflict that does not go away is an error, not a loop.
fn process_retrying(
    connection: &mut DbConn,
    clock: &Clock,
    batch: &[WriteRequest],
    idempotency_retention_ms: i64,
) -> StoreResult<Vec<Answer>> {
    let mut run = 1;
    loop {
        match process(connection, clock, batch, idempotency_retention_ms) {
            Err(StoreError::Query(error)) if store::is_unique_violation(&error) && run < UNIQUE_CONFLICT_RUNS_MAX => {
                tracing::warn!(%error, run, "batch met a concurrent commit of the same key; running it again");
                run += 1;
            }
            other => return other,
        }
    }
}

/// Applies one batch in one transaction and returns each request's answer.
fn process(
    connection: &mut DbConn,
    clock: &Clock,
    batch: &[WriteRequest],
    idempotency_retention_ms: i64,
) -> StoreResult<Vec<Answer>> {
    store::write_transaction(connection, |connection| {
        let now = clock.now();
        let retained_from_ms = store::time::millis(now).saturating_sub(idempotency_retention_ms);
        let (mut answers, duplicate_of) = stored_answers(connection, batch, retained_from_ms)?;
        let pending: Vec<usize> =
            (0..batch.len()).filter(|index| answers[*index].is_none() && !duplicate_of.contains_key(index)).collect();
        let mut heads = store::wallets::HistoryHeads::default();
        let keys = Keys::of(pending.iter().map(|index| batch[*index].op.command()));
        let mut book = load_book(connection, keys, now, &mut heads)?;
        let applied = apply_pending(&mut book, batch, &pending, now, &mut answers);
        save_applied(connection, batch, &book.take_changes(), applied, &mut heads, now)?;
        save_answers(connection, batch, &pending, &answers, now)?;
        for (index, first) in duplicate_of {
            let first_answer = answers[first].clone().expect("the first request with a key is answered");
            let request = &batch[index];
            let same_body = request.idempotency.as_ref().map(|idempotency| &idempotency.request_hash)
                == batch[first].idempotency.as_ref().map(|idempotency| &idempotency.request_hash);
            answers[index] = Some(if same_body { first_answer } else { conflict().into() });
        }
        Ok(answers.into_iter().map(|answer| answer.expect("every request is answered")).collect())
    })
}

/// Each request's answer from its idempotency record, if it has one; and each later request with
/// a key already in the batch, mapped to the first one with it.
type StoredAnswers = (Vec<Option<Answer>>, HashMap<usize, usize>);

/// Locks the batch's Idempotency-Keys and looks up their stored answers: each request answered
/// from its record (a retry, or 409 for another body), and each later request with a key
/// already in the batch mapped to the first one with it.
fn stored_answers(
    connection: &mut DbConn,
    batch: &[WriteRequest],
    retained_from_ms: i64,
) -> StoreResult<StoredAnswers> {
    let mut answers: Vec<Option<Answer>> = vec![None; batch.len()];
    let mut duplicate_of: HashMap<usize, usize> = HashMap::new();
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let keyed: Vec<(&str, &str)> = batch
        .iter()
        .filter_map(|request| Some((request.principal.as_str(), request.idempotency.as_ref()?.key.as_str())))
        .collect();
    store::idempotency::lock_idempotency_keys(connection, &keyed)?;
    let stored = store::idempotency::idempotent_answers(connection, &keyed)?;
    for (index, request) in batch.iter().enumerate() {
        let Some(idempotency) = &request.idempotency else { continue };
        let stored = match stored.get(&(request.principal.clone(), idempotency.key.clone())) {
            Some(stored) if stored.created_at_ms < retained_from_ms => {
                // Past its retention (the sweep has not reached it yet): the key is new again.
                store::idempotency::forget_idempotent_answer(connection, &request.principal, &idempotency.key)?;
                None
            }
            other => other,
        };
        if let Some(stored) = stored {
            answers[index] = Some(stored_or_conflict(stored, idempotency)?);
        } else if let Some(&first) = first_with_key.get(&(request.principal.as_str(), idempotency.key.as_str())) {
            duplicate_of.insert(index, first);
        } else {
            first_with_key.insert((&request.principal, &idempotency.key), index);
        }
    }
    Ok((answers, duplicate_of))
}

/// What the applied commands of a batch leave to write besides the book's changes.
#[derive(Default)]
struct Applied {
    transactions: Vec<Transaction>,
    history: Vec<HistoryItem>,
    /// (request index, action, detail) of each admin command that took effect.
    audits: Vec<(usize, audit::Action, Value)>,
}

/// Applies the pending requests' commands in order, answering each in `answers`.
fn apply_pending(
    book: &mut Book,
    batch: &[WriteRequest],
    pending: &[usize],
    now: DateTime<Utc>,
    answers: &mut [Option<Answer>],
) -> Applied {
    let mut applied = Applied::default();
    for &index in pending {
        let command = batch[index].op.command();
        let policy_before = matches!(command, Command::SetPolicy { .. }).then(|| book.policy().clone());
        answers[index] = Some(match book.apply(command, now) {
            Ok(outcome) => {
                let answer = render(&outcome.receipt);
                applied.audits.extend(
                    audited(command, &outcome.receipt, policy_before.as_ref())
                        .map(|(action, detail)| (index, action, detail)),
                );
                applied.transactions.extend(outcome.transaction);
                applied.history.extend(outcome.history);
                answer
            }
            Err(refusal) => api::rejection(&refusal).into(),
        });
    }
    applied
}

/// Writes what the batch did: the book's changes (new payment codes among them), postings,
/// history and the audit rows of the admin commands that took effect.
fn save_applied(
    connection: &mut DbConn,
    batch: &[WriteRequest],
    changes: &Changes,
    applied: Applied,
    heads: &mut store::wallets::HistoryHeads,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // The history is linked first, so that each wallet's row is written once, with its new
    // history head (store/history.rs `HistoryHeads`).
    let links = store::history::chain_history(connection, &applied.history, heads)?;
    store::changes::save(connection, changes, heads, now)?;
    store::postings::save_transactions(connection, &applied.transactions)?;
    store::history::insert_history(connection, &applied.history, &links)?;
    store::wallets::save_history_heads(connection, heads)?;
    // Admin actions are recorded in this same transaction: a top-up, a policy change or a
    // close commits with its audit row or not at all, and a replayed request (answered from
    // its idempotency record, never applied again) adds no row.
    for (index, action, detail) in applied.audits {
        let request = &batch[index];
        let entry = audit::Entry {
            at: now,
            actor: if request.principal == COMMAND_LINE {
                audit::Actor::CommandLine
            } else {
                audit::Actor::Admin(&request.principal)
            },
            action,
            detail,
            idempotency_key: request.idempotency.as_ref().map(|idempotency| idempotency.key.as_str()),
        };
        audit::record(connection, entry)?;
    }
    Ok(())
}

/// Stores each pending keyed request's answer as its idempotency record.
fn save_answers(
    connection: &mut DbConn,
    batch: &[WriteRequest],
    pending: &[usize],
    answers: &[Option<Answer>],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut to_store = Vec::new();
    for &index in pending {
        let request = &batch[index];
        if let (Some(idempotency), Some(answer)) = (&request.idempotency, &answers[index]) {
            to_store.push(store::idempotency::NewAnswer {
                principal_id: &request.principal,
                key: &idempotency.key,
                request_hash: &idempotency.request_hash,
                status: answer.status,
                body: answer.body.to_string(),
            });
        }
    }
    store::idempotency::save_idempotent_answers(connection, &to_store, store::time::millis(now))
}

/// The answer to each request of a batch that failed: not "nothing was changed" (see `run`).
fn failed_batch(error: StoreError) -> ApiError {
    match ApiError::from(error) {
        ApiError { status: 500, .. } => ApiError::new(
            500,
            ErrorCode::InternalError,
            "the database failed while this request was being committed, so it may or may not have been done; \
             send it again, with the same Idempotency-Key where it has one: it is never done twice, and the \
             retry gets its answer",
        ),
        other => other,
    }
}

fn conflict() -> ApiError {
    ApiError::new(
        409,
        ErrorCode::IdempotencyConflict,
        "this Idempotency-Key was already used with a different request; use a new key for a new request",
    )
}

fn stored_or_conflict(stored: &store::idempotency::StoredAnswer, idempotency: &Idempotency) -> StoreResult<Answer> {
    if stored.request_hash != idempotency.request_hash {
        return Ok(conflict().into());
    }
    let body =
        serde_json::from_str(&stored.body).map_err(|error| StoreError::Corrupt(format!("stored answer: {error}")))?;
    let status =
        u16::try_from(stored.status).map_err(|error| StoreError::Corrupt(format!("stored status: {error}")))?;
    Ok(Answer { status, body })
}

/// Loads the city row and the rows `keys` name into a book. The core decides what to load (the
/// first stage in `keys`; the second, the rows only a loaded row names, through `Keys::follow_*`
/// as those rows are read here); this decides the order: one fixed order (city row, payments,
/// codes, wallets with their allowances, the dates to close, merchants, sales, programs), so
/// that concurrent writers on PostgreSQL lock alike and cannot deadlock. The wallets' history
/// heads go into `heads`.
fn load_book(
    connection: &mut DbConn,
    mut keys: Keys,
    now: DateTime<Utc>,
    heads: &mut store::wallets::HistoryHeads,
) -> StoreResult<Book> {
    let (policy, budget, system) = store::ledger_state::load_state(connection, true)?;
    let mut book = Book::new(policy);
    book.load_budget(budget);
    book.load_system(system);
    for (id, payment) in store::payments::load_payments(connection, &texts(&keys.payments))? {
        keys.follow_payment(&payment);
        book.load_payment(id, payment);
    }
    for (code, state) in store::payment_codes::load_codes(connection, &texts(&keys.codes))? {
        keys.follow_code(&state);
        book.load_code(code, state);
    }
    // A grant an expiry names only says whose wallet to load: its row is read again below,
    // with the wallet's other grants, once the wallet's lock guards them.
    for (_, grant) in store::allowances::load_grants(connection, &texts(&keys.grants))? {
        keys.follow_grant(&grant);
    }
    let wallet_ids = texts(&keys.wallets);
    for (id, wallet) in store::wallets::load_wallets(connection, &wallet_ids, heads)? {
        book.load_wallet(id, wallet);
    }
    for (id, grant) in store::allowances::load_for_wallets(connection, &wallet_ids)? {
        keys.follow_grant(&grant);
        book.load_grant(id, grant);
    }
    let mut close_sales = Vec::new();
    for date in std::mem::take(&mut keys.close_dates) {
        match store::settlements::load_settlement(connection, date)? {
            Some(settlement) => book.load_settlement(settlement),
            None => {
                for (merchant, sales) in store::daily_sales::load_sales(connection, date, None)? {
                    keys.follow_close_sales(&merchant);
                    close_sales.push((date, merchant, sales));
                }
            }
        }
    }
    let merchant_ids = texts(&keys.merchants);
    for (id, merchant) in store::merchants::load_merchants(connection, &merchant_ids)? {
        book.load_merchant(id, merchant);
    }
    let today = BusinessDate::of(now);
    for (merchant, sales) in store::daily_sales::load_sales(connection, today, Some(&merchant_ids))? {
        book.load_sales(today, merchant, sales);
    }
    for (date, merchant, sales) in close_sales {
        book.load_sales(date, merchant, sales);
    }
    let program_ids = texts(&keys.programs);
    for (id, program) in store::programs::load_programs(connection, &program_ids)? {
        book.load_program(id, program);
    }
    for (id, program) in store::charge_bonuses::load(connection, &program_ids)? {
        book.load_charge_bonus(id, program);
    }
    if keys.running_charge_bonus {
        if let Some((id, program)) = store::charge_bonuses::load_running(connection, now)? {
            book.load_charge_bonus(id, program);
        }
    }
    Ok(book)
}

/// Keys as the store's loaders take them, in key order.
fn texts<Key: ToString>(keys: &BTreeSet<Key>) -> Vec<String> {
    keys.iter().map(ToString::to_string).collect()
}

/// The audit entry of an admin command that was answered with success; `None` for the rest. A
/// close of a date already closed moved nothing, but an admin asked for it and was answered: it
/// is recorded too (`already_closed`), so the log shows every request an admin made that did
/// something or was told it had been done.
fn audited(command: &Command, receipt: &Receipt, policy_before: Option<&Policy>) -> Option<(audit::Action, Value)> {
    match (command, receipt) {
        (Command::TopUpBudget { id, amount }, Receipt::BudgetToppedUp { budget }) => Some((
            audit::Action::CashbackBudgetToppedUp,
            json!({"top_up_id": id, "amount": amount, "budget": crate::api::budget_body(budget)}),
        )),
        (Command::SetPolicy { .. }, Receipt::PolicySet { policy }) => {
            Some((audit::Action::PolicyChanged, json!({"policy": policy, "previous": policy_before})))
        }
        (Command::TopUpProgram { id, amount, .. }, Receipt::ProgramToppedUp { program, budget }) => Some((
            audit::Action::ProgramBudgetToppedUp,
            json!({"program_id": program, "top_up_id": id, "amount": amount,
                   "budget": api::wire::to_json(&api::wire::ProgramBudget::from(budget))}),
        )),
        (Command::TopUpProgram { id, amount, .. }, Receipt::ChargeBonusToppedUp { program, rules, budget }) => Some((
            audit::Action::ProgramBudgetToppedUp,
            json!({"program_id": program, "top_up_id": id, "amount": amount,
                   "budget": api::wire::to_json(&api::wire::ProgramBudget::charge_bonus(rules, budget))}),
        )),
        (Command::Grant { id, .. }, Receipt::Granted { program, granted, amount_total, budget }) => Some((
            audit::Action::AllowancesGranted,
            json!({"program_id": program, "grant_tx_id": id, "granted": granted, "amount_total": amount_total,
                   "budget": api::wire::to_json(&api::wire::ProgramBudget::from(budget))}),
        )),
        (Command::CloseDay { .. }, Receipt::DayClosed { settlement, newly_closed: false }) => Some((
            audit::Action::SettlementClosed,
            json!({"business_date": settlement.business_date, "settlement_id": settlement.tx_id, "already_closed": true}),
        )),
        (Command::CloseDay { .. }, Receipt::DayClosed { settlement, newly_closed: true }) => Some((
            audit::Action::SettlementClosed,
            json!({"business_date": settlement.business_date, "settlement_id": settlement.tx_id,
                   "merchants": settlement.lines.len(), "total_net_payable": settlement.total_net_payable,
                   "total_fee": settlement.total_fee}),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wallet_core::{Amount, GrantId, GrantLine, PaymentCode, ProgramId, TxId, WalletId};

    fn request(command: Command, bulk_queued: &Arc<AtomicUsize>) -> WriteRequest {
        let bulk_slot = match Lane::of(&command) {
            Lane::Interactive => None,
            Lane::Bulk => Some(BulkSlot::take(bulk_queued).expect("a free bulk slot")),
        };
        let (reply, _) = oneshot::channel();
        WriteRequest { principal: "test".into(), idempotency: None, op: WriteOp::Ledger(command), reply, bulk_slot }
    }

    fn grant(name: &str) -> Command {
        let line = GrantLine {
            grant: GrantId::parse(name).unwrap(),
            wallet: WalletId::parse("w-1").unwrap(),
            amount: Amount::parse("1000").unwrap(),
        };
        Command::Grant { id: TxId::parse(name).unwrap(), program: ProgramId::parse("p").unwrap(), lines: vec![line] }
    }

    fn code(name: &str) -> Command {
        Command::IssueCode { code: PaymentCode::parse(name).unwrap(), wallet: WalletId::parse("w-1").unwrap() }
    }

    fn names(batch: &[WriteRequest]) -> Vec<String> {
        batch
            .iter()
            .map(|request| match request.op.command() {
                Command::Grant { id, .. } => id.to_string(),
                Command::IssueCode { code, .. } => code.to_string(),
                _ => unreachable!(),
            })
            .collect()
    }

    /// Interactive requests are never held behind bulk ones: each batch takes every queued
    /// interactive request and one bulk request, oldest first, and bulk work left over is done
    /// when nothing else waits.
    #[test]
    fn a_batch_takes_every_interactive_request_and_one_bulk_request() {
        let bulk_queued = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = mpsc::sync_channel(16);
        for command in [grant("g1"), code("c1"), grant("g2"), code("c2"), grant("g3")] {
            sender.send(request(command, &bulk_queued)).unwrap();
        }
        assert_eq!(bulk_queued.load(Ordering::Acquire), 3);
        let batching = Batching { size_max: 256, wait: Duration::ZERO };
        let mut deferred = VecDeque::new();
        let first = next_batch(&receiver, &mut deferred, batching, false).unwrap();
        assert_eq!(names(&first), ["c1", "c2", "g1"]);
        sender.send(request(code("c3"), &bulk_queued)).unwrap();
        assert_eq!(names(&next_batch(&receiver, &mut deferred, batching, false).unwrap()), ["c3", "g2"]);
        assert_eq!(names(&next_batch(&receiver, &mut deferred, batching, false).unwrap()), ["g3"]);
        drop(first);
        assert_eq!(bulk_queued.load(Ordering::Acquire), 0, "answered bulk requests give their slots back");
        drop(sender);
        assert!(next_batch(&receiver, &mut deferred, batching, false).is_none());
    }

    /// The bulk lane holds at most `BULK_QUEUED_MAX`: one more is refused, and a slot given
    /// back takes one again.
    #[test]
    fn the_bulk_lane_is_bounded() {
        let bulk_queued = Arc::new(AtomicUsize::new(0));
        let slots: Vec<_> = (0..BULK_QUEUED_MAX).map(|_| BulkSlot::take(&bulk_queued).unwrap()).collect();
        assert!(BulkSlot::take(&bulk_queued).is_none());
        drop(slots);
        assert!(BulkSlot::take(&bulk_queued).is_some());
    }
}
