//! The citizen app: wallet, charges, gifts, payment codes, history.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use wallet_core::{Command, Month, PaymentCode, TxId, WalletId};

use super::{authenticate, idempotency, parse_amount, parse_body, rfc3339, submit, with_connection, Role, State};
use crate::error::ApiError;
use crate::store;
use crate::writer::WriteOp;

/// History page size: default and most (API.md).
const HISTORY_PAGE_DEFAULT: i64 = 50;
const HISTORY_PAGE_MAX: i64 = 200;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/wallet", web::get().to(wallet))
        .route("/v1/wallet/charges", web::post().to(charge))
        .route("/v1/wallet/gifts", web::post().to(gift))
        .route("/v1/wallet/payment-codes", web::post().to(payment_code))
        .route("/v1/wallet/transactions", web::get().to(transactions));
}

/// The caller's wallet id: authenticates as a citizen.
async fn citizen_wallet(state: &State, request: &HttpRequest) -> Result<(String, WalletId), ApiError> {
    let principal = authenticate(state, request, Some(Role::Citizen)).await?;
    let citizen = principal.id.clone();
    let wallet = with_connection(state, move |connection, _| store::auth::wallet_of(connection, &citizen)).await?;
    let wallet = wallet.ok_or_else(|| ApiError::not_found("this citizen has no wallet"))?;
    let wallet = WalletId::parse(&wallet).map_err(|_| ApiError::internal())?;
    Ok((principal.id, wallet))
}

fn new_tx_id() -> TxId {
    TxId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid id")
}

async fn wallet(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (_, wallet_id) = citizen_wallet(&state, &request).await?;
    let id = wallet_id.to_string();
    let view = with_connection(&state, move |connection, state| {
        let (policy, _, _) = store::ledger::load_state(connection, false)?;
        let wallets = store::ledger::load_wallets_unlocked(connection, &id)?;
        let month = Month::of(state.clock.now());
        Ok(wallets.map(|wallet| wallet.view(month, &policy)))
    })
    .await?;
    let view = view.ok_or_else(|| ApiError::not_found("no such wallet"))?.map_err(|_| ApiError::internal())?;
    Ok(HttpResponse::Ok().json(json!({
        "wallet_id": wallet_id,
        "balance": view.balance,
        "currency": "KRW",
        "month": view.month,
        "charged_this_month": view.charged_this_month,
        "charge_limit_remaining": view.charge_limit_remaining,
        "cashback_earned_this_month": view.cashback_earned_this_month,
        "cashback_eligible_spend_remaining": view.cashback_eligible_spend_remaining,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeBody {
    amount: Value,
}

async fn charge(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let (principal, wallet) = citizen_wallet(&state, &request).await?;
    let key = idempotency(&request, &body)?;
    let parsed: ChargeBody = parse_body(body.into_inner())?;
    let amount = parse_amount(&parsed.amount)?;
    let command = Command::Charge { id: new_tx_id(), wallet, amount };
    Ok(submit(&state, &principal, key, WriteOp::Ledger(command)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GiftBody {
    to_wallet_id: String,
    amount: Value,
}

async fn gift(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let (principal, wallet) = citizen_wallet(&state, &request).await?;
    let key = idempotency(&request, &body)?;
    let parsed: GiftBody = parse_body(body.into_inner())?;
    let amount = parse_amount(&parsed.amount)?;
    let to = WalletId::parse(&parsed.to_wallet_id).map_err(|_| ApiError::not_found("no such wallet"))?;
    let command = Command::Gift { id: new_tx_id(), from: wallet, to, amount };
    Ok(submit(&state, &principal, key, WriteOp::Ledger(command)).await)
}

async fn payment_code(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (principal, wallet) = citizen_wallet(&state, &request).await?;
    let code = PaymentCode::parse(&crate::auth::new_payment_code()).expect("hex is a valid code");
    let answer = state.writer.submit(principal, None, WriteOp::IssueCode { code, wallet }).await;
    Ok(super::respond(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

async fn transactions(
    state: State,
    request: HttpRequest,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let (_, wallet) = citizen_wallet(&state, &request).await?;
    let limit = match &query.limit {
        None => HISTORY_PAGE_DEFAULT,
        Some(text) => {
            text.parse::<i64>().ok().filter(|limit| (1..=HISTORY_PAGE_MAX).contains(limit)).ok_or_else(|| {
                ApiError::validation(format!("limit must be a whole number from 1 to {HISTORY_PAGE_MAX}"))
            })?
        }
    };
    let before = match &query.cursor {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|cursor| *cursor > 0)
                .ok_or_else(|| ApiError::validation("cursor is not one this server gave; start again without it"))?,
        ),
    };
    let id = wallet.to_string();
    let rows =
        with_connection(&state, move |connection, _| store::reads::history_page(connection, &id, before, limit + 1))
            .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let items: Vec<Value> = page
        .iter()
        .map(|row| {
            let mut item = json!({
                "id": row.item_id,
                "kind": row.kind,
                "amount": row.amount.to_string(),
                "balance_after": row.balance_after.to_string(),
                "at": store::ledger::instant(row.at_ms).map(rfc3339).unwrap_or_default(),
            });
            if let Some(counterparty) = &row.counterparty {
                item["counterparty"] = json!(counterparty);
            }
            item
        })
        .collect();
    let next_cursor = if more { page.last().map(|row| row.seq.to_string()) } else { None };
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}
