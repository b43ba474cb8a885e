//! `GET /v1/admin/status` (an extension of API.md): the system at a glance for the city, with the
//! background trial balance it and `/metrics` report.
//!
//! The trial balance sums every wallet and receivable, a read that grows with the city, so it is
//! not taken per request (`/metrics` is unauthenticated and never shed): each server takes it
//! every [`BOOKS_CHECK_INTERVAL`](crate::jobs::BOOKS_CHECK_INTERVAL) in a read-only snapshot that
//! does not hold up the writer (`jobs::books`), and both endpoints show the last result with its
//! time. Every other figure here is a read of one row or one index range.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use wallet_core::BusinessDate;

use super::{authenticate, rfc3339, with_connection, Role, State};
use crate::api::wire::{
    BooksStatus, Budget, BundleKind, Database, Forbidden, HandoverStatus, InternalError, LastExport, LastImport,
    LastSettlement, Overloaded, SessionsStatus, Status, StatusKind, StatusReason, StatusReasonCode, TestClockStatus,
    TodayStatus, Unauthorized, WriterStatus,
};
use crate::api::ApiError;
use crate::state::BooksChecked;
use crate::store::{self, DatabaseUrl, StoreError};

/// With no trial balance taken for this long, the status is degraded.
const BOOKS_CHECK_STALE_AFTER: Duration = Duration::from_secs(3 * 30);
/// How many days back from the latest overdue one the status looks for a date left open: two
/// lookups a day, and a month covers any close a timer or a person forgot.
const OVERDUE_DAYS_CHECKED: usize = 31;

/// The dates checked for a close left overdue at `now`, oldest first, ending with the latest
/// date already overdue.
fn overdue_window(now: DateTime<Utc>) -> Vec<String> {
    let mut dates = Vec::with_capacity(OVERDUE_DAYS_CHECKED);
    let mut date = BusinessDate::latest_overdue(now);
    while let Some(day) = date.filter(|_| dates.len() < OVERDUE_DAYS_CHECKED) {
        dates.push(day.to_string());
        date = day.previous();
    }
    dates.reverse();
    dates
}

/// Why the status is degraded: a code for programs and a sentence for people.
fn reason(code: StatusReasonCode, message: String) -> StatusReason {
    StatusReason { code, message }
}

/// The system at a glance: books, cashback budget, today's payments, sessions, the writer, the
/// last settlement and handover.
///
/// `status` is `degraded` when any reason is listed: the books do not balance, no trial balance
/// was taken lately, the writer's last batch failed, the cashback budget is used up, or a past
/// business date with payments or refunds is still not closed at 06:00 KST of the next day
/// (`settlement_overdue`, among the last 31 such dates).
#[utoipa::path(get, path = "/v1/admin/status", operation_id = "get_city_status", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary.", body = Status),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn status(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let now = state.clock.now();
    let today = BusinessDate::of(now);
    let today_text = today.to_string();
    let overdue_window = overdue_window(now);
    // Each read is one row or one index range (today's sales rows), in one snapshot.
    let read = with_connection(&state, move |connection, _| {
        store::read_snapshot(connection, |connection| {
            let (_, budget, _) = store::ledger_state::load_state(connection, false)?;
            let active = store::sessions::citizen_slots_used(connection)?;
            let sales = store::daily_sales::day_sales(connection, &today_text)?;
            let settlement = store::settlements::last_settlement(connection)?;
            let import = store::handover_bundles::applied_bundle(connection, None)?;
            let export = store::handover_exports::last_export(connection)?;
            let open = store::settlements::oldest_open_date_with_activity(connection, &overdue_window)?;
            Ok::<_, StoreError>((budget, active, sales, settlement, import, export, open))
        })
    })
    .await?;
    let (budget, active, sales, settlement, import, export, open_date) = read;
    let at = |ms: i64| store::time::instant(ms).map(rfc3339).map_err(ApiError::from);
    let count = |n: i64| u64::try_from(n).map_err(|_| ApiError::internal());
    let books = state.books.last();
    let recent = state.writer.stats().recent();
    let reasons = reasons(&state, books, &recent, &budget, open_date.as_deref());
    let (waiting, admitted_total, shed_total) = {
        let room = state.waiting_room.lock().map_err(|_| ApiError::internal())?;
        (room.waiting(), room.admitted_total, room.shed_total)
    };
    let last_settlement = match settlement {
        Some(closed) => Some(LastSettlement {
            business_date: closed.business_date,
            closed_at: at(closed.closed_at_ms)?,
            total_net_payable: closed.total_net_payable.to_string(),
            total_fee: closed.total_fee.to_string(),
        }),
        None => None,
    };
    let last_import = match import {
        Some(bundle) => Some(LastImport {
            sequence: count(bundle.sequence)?,
            kind: bundle_kind(&bundle.kind)?,
            operator: bundle.operator,
            as_of: bundle.as_of,
            applied_at: at(bundle.applied_at_ms)?,
        }),
        None => None,
    };
    let last_export = match export {
        Some(export) => Some(LastExport {
            sequence: count(export.sequence)?,
            kind: bundle_kind(&export.kind)?,
            exported_at: at(export.exported_at_ms)?,
        }),
        None => None,
    };
    Ok(HttpResponse::Ok().json(Status {
        status: if reasons.is_empty() { StatusKind::Ok } else { StatusKind::Degraded },
        reasons,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: state.started.elapsed().as_secs(),
        now: rfc3339(now),
        test_clock: state
            .clock
            .is_test_clock()
            .then(|| TestClockStatus { now: rfc3339(now), ahead_of_real_time_s: state.clock.offset().num_seconds() }),
        database: match state.config.database {
            DatabaseUrl::Sqlite(_) => Database::Sqlite,
            DatabaseUrl::Postgres(_) => Database::Postgres,
        },
        books: BooksStatus {
            balanced: books.map(|checked| checked.total.is_zero()),
            trial_balance_total: books.map(|checked| checked.total.to_string()),
            checked_at: books.map(|checked| rfc3339(checked.at)),
        },
        cashback_budget: Budget::from(&budget),
        today: TodayStatus {
            business_date: today.to_string(),
            payments_count: count(sales.payments_count)?,
            payments_amount: sales.payments_amount.to_string(),
            refunds_count: count(sales.refunds_count)?,
            refunds_amount: sales.refunds_amount.to_string(),
        },
        sessions: SessionsStatus {
            active: count(active)?,
            capacity: count(state.config.sessions_capacity)?,
            waiting: waiting as u64,
            admitted_total,
            shed_total,
        },
        writer: writer_status(&state, &recent),
        last_settlement,
        handover: HandoverStatus { last_import, last_export },
    }))
}

/// A bundle kind as stored (`snapshot`, `delta`).
fn bundle_kind(kind: &str) -> Result<BundleKind, ApiError> {
    match kind {
        "snapshot" => Ok(BundleKind::Snapshot),
        "delta" => Ok(BundleKind::Delta),
        _ => Err(ApiError::internal()),
    }
}

/// The writer's figures: every batch since the start, and the last ones.
fn writer_status(state: &State, recent: &crate::writer::RecentBatches) -> WriterStatus {
    let writer = state.writer.stats();
    let batches = writer.batch_commands.snapshot();
    WriterStatus {
        batches_total: batches.count(),
        commands_total: batches.sum,
        batches_failed_total: writer.batches_failed_total.load(std::sync::atomic::Ordering::Relaxed),
        recent_batches: recent.batches,
        recent_commands_mean: recent.commands_mean,
        recent_commands_max: recent.commands_max,
        recent_commit_ms_mean: recent.commit_ms_mean,
        recent_commit_ms_max: recent.commit_ms_max,
        last_batch_at: recent.last_batch_at.map(rfc3339),
        last_failure_at: recent.last_failure_at.map(rfc3339),
    }
}

/// Why the city's status is degraded, if it is: the books, the writer, the budget, a close.
fn reasons(
    state: &State,
    books: Option<BooksChecked>,
    recent: &crate::writer::RecentBatches,
    budget: &wallet_core::BudgetState,
    open_date: Option<&str>,
) -> Vec<StatusReason> {
    let mut reasons = Vec::new();
    match books {
        Some(checked) if !checked.total.is_zero() => reasons.push(reason(
            StatusReasonCode::BooksUnbalanced,
            format!("the trial balance totals {} won, not 0; examine the books before anything else", checked.total),
        )),
        Some(checked) if checked.taken.elapsed() > BOOKS_CHECK_STALE_AFTER => reasons.push(reason(
            StatusReasonCode::BooksUnchecked,
            format!("no trial balance was taken for {} s; see the server log", checked.taken.elapsed().as_secs()),
        )),
        None if state.started.elapsed() > BOOKS_CHECK_STALE_AFTER => reasons.push(reason(
            StatusReasonCode::BooksUnchecked,
            "no trial balance has been taken since the server started; see the server log".into(),
        )),
        _ => {}
    }
    if recent.last_batch_failed {
        reasons.push(reason(
            StatusReasonCode::WriterFailing,
            "the writer's last batch failed and nothing of it was committed; see the server log".into(),
        ));
    }
    if !budget.funded.is_zero() && budget.remaining().is_zero() {
        reasons.push(reason(
            StatusReasonCode::CashbackBudgetExhausted,
            "the cashback budget is used up: payments earn no cashback until it is topped up".into(),
        ));
    }
    if let Some(date) = open_date {
        reasons.push(reason(
            StatusReasonCode::SettlementOverdue,
            format!(
                "business date {date} had payments or refunds and is still not closed (due by 06:00 KST the next \
                 day): merchants are not paid until it is; close it with POST /v1/admin/settlements \
                 {{\"business_date\": \"{date}\"}}"
            ),
        ));
    }
    reasons
}
