//! Merchants' POS terminals: payments, refunds, the day's sales.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use wallet_core::{BusinessDate, Command, MerchantId, PaymentCode, TxId};

use super::{authenticate, idempotency, parse_amount, parse_body, submit, with_connection, Role, State};
use crate::error::ApiError;
use crate::store;
use crate::writer::WriteOp;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/payments", web::post().to(pay))
        .route("/v1/payments/{payment_id}/refunds", web::post().to(refund))
        .route("/v1/merchant/sales", web::get().to(sales));
}

fn new_tx_id() -> TxId {
    TxId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid id")
}

fn merchant_id(id: &str) -> Result<MerchantId, ApiError> {
    MerchantId::parse(id).map_err(|_| ApiError::internal())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentBody {
    payment_code: String,
    amount: Value,
}

async fn pay(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let key = idempotency(&request, &body)?;
    let parsed: PaymentBody = parse_body(body.into_inner())?;
    let amount = parse_amount(&parsed.amount)?;
    let code = PaymentCode::parse(&parsed.payment_code).map_err(|_| {
        ApiError::new(422, "payment_code_invalid", "the payment code is unknown; ask the customer to show a fresh code")
    })?;
    let command =
        Command::Pay { id: new_tx_id(), cashback_id: new_tx_id(), merchant: merchant_id(&principal.id)?, code, amount };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    amount: Value,
}

async fn refund(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let key = idempotency(&request, &body)?;
    let parsed: RefundBody = parse_body(body.into_inner())?;
    let amount = parse_amount(&parsed.amount)?;
    let payment = TxId::parse(&path).map_err(|_| ApiError::not_found("no such payment of this merchant"))?;
    let command = Command::Refund {
        id: new_tx_id(),
        reversal_id: new_tx_id(),
        merchant: merchant_id(&principal.id)?,
        payment,
        amount,
    };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesQuery {
    date: Option<String>,
}

async fn sales(state: State, request: HttpRequest, query: web::Query<SalesQuery>) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Merchant)).await?;
    let date = match &query.date {
        Some(text) => BusinessDate::parse(text).map_err(|error| ApiError::validation(error.to_string()))?,
        None => BusinessDate::of(state.clock.now()),
    };
    let date_text = date.to_string();
    let row = with_connection(&state, move |connection, _| {
        store::reads::merchant_sales(connection, &principal.id, &date_text)
    })
    .await?;
    let (payments_count, payments_amount, refunds_count, refunds_amount) = row.unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({
        "business_date": date,
        "payments_count": payments_count,
        "payments_amount": payments_amount.to_string(),
        "refunds_count": refunds_count,
        "refunds_amount": refunds_amount.to_string(),
        "net": (payments_amount - refunds_amount).to_string(),
    })))
}
