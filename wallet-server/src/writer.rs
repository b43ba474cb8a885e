//! The one write path for money: a dedicated thread that takes requests in batches, loads the
//! accounts they touch into a `wallet_core::Book`, applies them, and commits postings, balances,
//! history and idempotency records in one database transaction. Each request is answered only
//! after that commit.
//!
//! The batch is whatever is queued when the thread wakes (up to `batch_size_max`), so a lone
//! request is never delayed waiting for company.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use wallet_core::{Book, BusinessDate, Command, PaymentCode, Receipt, WalletId};

use crate::clock::Clock;
use crate::error::{self, ApiError};
use crate::store::{self, ledger, reads, DbConn, DbPool, StoreError, StoreResult};

/// A stored or fresh answer: status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Answer {
        Answer { status: error.status, body: error.body() }
    }
}

/// What a request asks the writer to do.
pub enum WriteOp {
    Ledger(Command),
    IssueCode { code: PaymentCode, wallet: WalletId },
}

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
}

/// The handle the HTTP layer sends requests through.
#[derive(Clone)]
pub struct Writer {
    sender: SyncSender<WriteRequest>,
}

impl Writer {
    /// Starts the writer thread on its own connection from `pool`. A stored answer older than
    /// `idempotency_retention` no longer binds its key: the key is used anew.
    pub fn start(
        pool: DbPool,
        clock: Arc<Clock>,
        queue_max: usize,
        batch_size_max: usize,
        idempotency_retention: std::time::Duration,
    ) -> Writer {
        let (sender, receiver) = mpsc::sync_channel(queue_max);
        let retention_ms = i64::try_from(idempotency_retention.as_millis()).unwrap_or(i64::MAX);
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(pool, clock, receiver, batch_size_max, retention_ms))
            .expect("the writer thread starts");
        Writer { sender }
    }

    /// Queues a request and waits for its committed answer. A full queue is answered at once
    /// with `overloaded`, having changed nothing.
    pub async fn submit(&self, principal: String, idempotency: Option<Idempotency>, op: WriteOp) -> Answer {
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest { principal, idempotency, op, reply };
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

fn run(
    pool: DbPool,
    clock: Arc<Clock>,
    receiver: Receiver<WriteRequest>,
    batch_size_max: usize,
    idempotency_retention_ms: i64,
) {
    let mut connection = None;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_size_max {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if connection.is_none() {
            connection = pool.get().map_err(|error| tracing::error!(%error, "writer has no connection")).ok();
        }
        let answers = match connection.as_mut() {
            Some(connection) => {
                process_retrying(connection, &clock, &batch, idempotency_retention_ms).unwrap_or_else(|error| {
                    tracing::error!(%error, batch = batch.len(), "batch failed; nothing of it was committed");
                    vec![Answer::from(ApiError::from(error)); batch.len()]
                })
            }
            None => vec![
                Answer::from(ApiError::overloaded("the database is not reachable; try again shortly"));
                batch.len()
            ],
        };
        if answers.iter().any(|answer| answer.status >= 500) {
            connection = None; // a failed commit may have broken the connection; take a fresh one
        }
        for (request, answer) in batch.into_iter().zip(answers) {
            let _ = request.reply.send(answer);
        }
    }
}

/// [`process`], run once more when it failed on a unique key: with several servers on one
/// PostgreSQL database, another server may have committed the same Idempotency-Key (or a
/// concurrent registration) between our check and our insert. The whole batch was rolled back;
/// the second run finds the other server's answer and replays it.
fn process_retrying(
    connection: &mut DbConn,
    clock: &Clock,
    batch: &[WriteRequest],
    idempotency_retention_ms: i64,
) -> StoreResult<Vec<Answer>> {
    match process(connection, clock, batch, idempotency_retention_ms) {
        Err(StoreError::Query(error)) if store::is_unique_violation(&error) => {
            tracing::warn!(%error, "batch met a concurrent commit of the same key; running it again");
            process(connection, clock, batch, idempotency_retention_ms)
        }
        other => other,
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
        let retained_from_ms = ledger::millis(now).saturating_sub(idempotency_retention_ms);
        let mut answers: Vec<Option<Answer>> = vec![None; batch.len()];
        let mut duplicate_of: HashMap<usize, usize> = HashMap::new();
        let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
        for (index, request) in batch.iter().enumerate() {
            let Some(idempotency) = &request.idempotency else { continue };
            let stored = reads::idempotent_answer(connection, &request.principal, &idempotency.key)?;
            let stored = match stored {
                Some((.., created_at_ms)) if created_at_ms < retained_from_ms => {
                    // Past its retention (the sweep has not reached it yet): the key is new again.
                    store::expiry::forget_idempotent_answer(connection, &request.principal, &idempotency.key)?;
                    None
                }
                other => other,
            };
            if let Some((hash, status, body, _)) = stored {
                answers[index] = Some(stored_or_conflict(&hash, status, &body, idempotency)?);
            } else if let Some(&first) = first_with_key.get(&(request.principal.as_str(), idempotency.key.as_str())) {
                duplicate_of.insert(index, first);
            } else {
                first_with_key.insert((&request.principal, &idempotency.key), index);
            }
        }

        let pending: Vec<usize> =
            (0..batch.len()).filter(|index| answers[*index].is_none() && !duplicate_of.contains_key(index)).collect();
        let mut book = load_book(connection, batch, &pending, now)?;
        let mut transactions = Vec::new();
        let mut history = Vec::new();
        for &index in &pending {
            let answer = match &batch[index].op {
                WriteOp::Ledger(command) => match book.apply(command, now) {
                    Ok(outcome) => {
                        let answer = render(&outcome.receipt);
                        transactions.extend(outcome.transaction);
                        history.extend(outcome.history);
                        answer
                    }
                    Err(refusal) => error::rejection(&refusal).into(),
                },
                WriteOp::IssueCode { code, wallet } => {
                    let state = book.issue_code(code.clone(), wallet.clone(), now);
                    ledger::insert_code(connection, code, &state)?;
                    Answer {
                        status: 201,
                        body: json!({"code": code.as_str(), "expires_at": crate::http::rfc3339(state.expires_at)}),
                    }
                }
            };
            answers[index] = Some(answer);
        }
        let mut changes = book.take_changes();
        changes.codes.retain(|(_, state)| state.used); // new codes were inserted above
        ledger::save_changes(connection, &changes, now)?;
        for transaction in &transactions {
            ledger::save_transaction(connection, transaction)?;
        }
        ledger::save_history(connection, &history)?;

        for &index in &pending {
            let request = &batch[index];
            if let (Some(idempotency), Some(answer)) = (&request.idempotency, &answers[index]) {
                reads::save_idempotent_answer(
                    connection,
                    &request.principal,
                    &idempotency.key,
                    &idempotency.request_hash,
                    answer.status,
                    &answer.body.to_string(),
                    ledger::millis(now),
                )?;
            }
        }
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

fn conflict() -> ApiError {
    ApiError::new(
        409,
        "idempotency_conflict",
        "this Idempotency-Key was already used with a different request; use a new key for a new request",
    )
}

fn stored_or_conflict(hash: &str, status: i32, body: &str, idempotency: &Idempotency) -> StoreResult<Answer> {
    if hash != idempotency.request_hash {
        return Ok(conflict().into());
    }
    let body = serde_json::from_str(body).map_err(|error| StoreError::Corrupt(format!("stored answer: {error}")))?;
    let status = u16::try_from(status).map_err(|error| StoreError::Corrupt(format!("stored status: {error}")))?;
    Ok(Answer { status, body })
}

/// Loads what the pending requests touch, in one fixed order (city row, payments, codes,
/// wallets, merchants, sales) so that concurrent writers on PostgreSQL lock alike and cannot
/// deadlock.
fn load_book(
    connection: &mut DbConn,
    batch: &[WriteRequest],
    pending: &[usize],
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Book> {
    let (policy, budget, system) = ledger::load_state(connection, true)?;
    let mut book = Book::new(policy);
    book.load_budget(budget);
    book.load_system(system);

    let mut wallets = BTreeSet::new();
    let mut merchants = BTreeSet::new();
    let mut payments = BTreeSet::new();
    let mut codes = BTreeSet::new();
    let mut close_dates = BTreeSet::new();
    for op in pending.iter().map(|index| &batch[*index].op) {
        match op {
            WriteOp::Ledger(Command::Charge { wallet, .. }) => {
                wallets.insert(wallet.to_string());
            }
            WriteOp::Ledger(Command::Gift { from, to, .. }) => {
                wallets.insert(from.to_string());
                wallets.insert(to.to_string());
            }
            WriteOp::Ledger(Command::Pay { merchant, code, .. }) => {
                merchants.insert(merchant.to_string());
                codes.insert(code.to_string());
            }
            WriteOp::Ledger(Command::Refund { merchant, payment, .. }) => {
                merchants.insert(merchant.to_string());
                payments.insert(payment.to_string());
            }
            WriteOp::Ledger(Command::CloseDay { date, .. }) => {
                close_dates.insert(*date);
            }
            WriteOp::Ledger(Command::CarryOver { account, .. }) => match account {
                wallet_core::CarryOverAccount::Wallet(wallet) => {
                    wallets.insert(wallet.to_string());
                }
                wallet_core::CarryOverAccount::Merchant(merchant) => {
                    merchants.insert(merchant.to_string());
                }
                wallet_core::CarryOverAccount::CashbackBudget => {}
            },
            WriteOp::Ledger(Command::TopUpBudget { .. } | Command::SetPolicy { .. }) => {}
            WriteOp::IssueCode { wallet, .. } => {
                wallets.insert(wallet.to_string());
            }
        }
    }
    for (id, payment) in ledger::load_payments(connection, &payments.into_iter().collect::<Vec<_>>())? {
        wallets.insert(payment.wallet.to_string());
        book.load_payment(id, payment);
    }
    for (code, state) in ledger::load_codes(connection, &codes.into_iter().collect::<Vec<_>>())? {
        wallets.insert(state.wallet.to_string());
        book.load_code(code, state);
    }
    for (id, wallet) in ledger::load_wallets(connection, &wallets.into_iter().collect::<Vec<_>>())? {
        book.load_wallet(id, wallet);
    }
    let mut close_sales = Vec::new();
    for date in &close_dates {
        match ledger::load_settlement(connection, *date)? {
            Some(settlement) => book.load_settlement(settlement),
            None => {
                for (merchant, sales) in ledger::load_sales(connection, *date, None)? {
                    merchants.insert(merchant.to_string());
                    close_sales.push((*date, merchant, sales));
                }
            }
        }
    }
    let merchant_ids: Vec<String> = merchants.into_iter().collect();
    for (id, merchant) in ledger::load_merchants(connection, &merchant_ids)? {
        book.load_merchant(id, merchant);
    }
    let today = BusinessDate::of(now);
    for (merchant, sales) in ledger::load_sales(connection, today, Some(&merchant_ids))? {
        book.load_sales(today, merchant, sales);
    }
    for (date, merchant, sales) in close_sales {
        book.load_sales(date, merchant, sales);
    }
    Ok(book)
}

/// The API answer for each receipt (API.md's success bodies).
fn render(receipt: &Receipt) -> Answer {
    let (status, body) = match receipt {
        Receipt::Charged { charge_id, amount, balance } => {
            (201, json!({"charge_id": charge_id, "amount": amount, "balance": balance}))
        }
        Receipt::Gifted { gift_id, amount, balance } => {
            (201, json!({"gift_id": gift_id, "amount": amount, "balance": balance}))
        }
        Receipt::Paid { payment_id, amount, cashback, at, .. } => (
            201,
            json!({"payment_id": payment_id, "amount": amount, "cashback": cashback, "status": "approved",
                   "at": crate::http::rfc3339(*at)}),
        ),
        Receipt::Refunded { refund_id, amount, cashback_reversed } => {
            (201, json!({"refund_id": refund_id, "amount": amount, "cashback_reversed": cashback_reversed}))
        }
        Receipt::BudgetToppedUp { budget } => (201, crate::http::budget_body(budget)),
        Receipt::PolicySet { policy } => (200, json!(policy)),
        Receipt::DayClosed { settlement, newly_closed } => (
            if *newly_closed { 201 } else { 200 },
            json!({"business_date": settlement.business_date, "merchants": settlement.lines.len(),
                   "total_net_payable": settlement.total_net_payable}),
        ),
        Receipt::CarriedOver { account, balance } => (201, json!({"account": account.to_string(), "balance": balance})),
    };
    Answer { status, body }
}
