//! The city's back office: merchants, policy, cashback budget, settlement, oversight, test clock.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use wallet_core::{AccountKind, BusinessDate, Command, Policy, Rate, TxId, Won};

use super::session::{parse_login, parse_password};
use super::{authenticate, budget_body, idempotency, parse_amount, parse_body, submit, with_connection, Role, State};
use crate::error::ApiError;
use crate::store;
use crate::writer::WriteOp;

/// Longest free-text merchant field (name, business number, bank account, category).
const MERCHANT_FIELD_LEN_MAX: usize = 200;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/admin/merchants", web::post().to(create_merchant))
        .route("/v1/admin/policy", web::get().to(get_policy))
        .route("/v1/admin/policy", web::put().to(put_policy))
        .route("/v1/admin/cashback-budget/top-ups", web::post().to(top_up))
        .route("/v1/admin/cashback-budget", web::get().to(budget))
        .route("/v1/admin/settlements", web::post().to(close_day))
        .route("/v1/admin/settlements/{business_date}", web::get().to(settlement))
        .route("/v1/admin/ledger/trial-balance", web::get().to(trial_balance))
        .route("/v1/admin/admission", web::get().to(admission))
        .route("/v1/admin/test-clock", web::put().to(test_clock));
}

fn new_tx_id() -> TxId {
    TxId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid id")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantBody {
    login: String,
    password: String,
    name: String,
    business_number: String,
    bank_account: String,
    category: Option<String>,
}

fn text_field<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.len() > MERCHANT_FIELD_LEN_MAX || trimmed.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{name} must be 1 to {MERCHANT_FIELD_LEN_MAX} characters without control characters"
        )));
    }
    Ok(trimmed)
}

async fn create_merchant(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let body: MerchantBody = parse_body(body.into_inner())?;
    let login = parse_login(&body.login)?.to_owned();
    parse_password(&body.password)?;
    let name = text_field("name", &body.name)?.to_owned();
    let business_number = text_field("business_number", &body.business_number)?.to_owned();
    let bank_account = text_field("bank_account", &body.bank_account)?.to_owned();
    let category =
        body.category.as_deref().map(|category| text_field("category", category)).transpose()?.map(str::to_owned);
    let hash = state.passwords.hash(body.password).await?;
    let merchant_id = uuid::Uuid::new_v4().to_string();
    let id = merchant_id.clone();
    let created = with_connection(&state, move |connection, state| {
        let now_ms = store::ledger::millis(state.clock.now());
        store::write_transaction(connection, |connection| {
            if !store::auth::insert_principal(connection, &id, &login, "merchant", &hash, now_ms)? {
                return Ok(false);
            }
            let merchant = store::auth::NewMerchant {
                merchant_id: &id,
                name: &name,
                business_number: &business_number,
                bank_account: &bank_account,
                category: category.as_deref(),
            };
            store::auth::insert_merchant(connection, &merchant)?;
            Ok(true)
        })
    })
    .await?;
    if !created {
        return Err(ApiError::new(409, "login_taken", "this login is taken; choose another"));
    }
    Ok(HttpResponse::Created().json(json!({"merchant_id": merchant_id})))
}

async fn get_policy(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (policy, _, _) = with_connection(&state, |connection, _| store::ledger::load_state(connection, false)).await?;
    Ok(HttpResponse::Ok().json(policy))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    cashback_rate: Value,
    cashback_monthly_spend_cap: Value,
    monthly_charge_limit: Value,
    holding_limit: Value,
    merchant_fee_rate: Value,
}

fn rate_field(name: &str, value: &Value) -> Result<Rate, ApiError> {
    let text =
        value.as_str().ok_or_else(|| ApiError::validation(format!("{name} must be a decimal string like \"0.1\"")))?;
    Rate::parse(text).map_err(|error| ApiError::validation(format!("{name}: {error}")))
}

fn limit_field(name: &str, value: &Value) -> Result<Won, ApiError> {
    let text = value.as_str().ok_or_else(|| ApiError::validation(format!("{name} must be a string of whole won")))?;
    let won = Won::parse_signed(text).map_err(|error| ApiError::validation(format!("{name}: {error}")))?;
    if won.is_negative() || won > Won::from_i64(wallet_core::Amount::MAX_WON) {
        return Err(ApiError::validation(format!("{name} must be from 0 to {} won", wallet_core::Amount::MAX_WON)));
    }
    Ok(won)
}

async fn put_policy(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let body: PolicyBody = parse_body(body.into_inner())?;
    let policy = Policy {
        cashback_rate: rate_field("cashback_rate", &body.cashback_rate)?,
        cashback_monthly_spend_cap: limit_field("cashback_monthly_spend_cap", &body.cashback_monthly_spend_cap)?,
        monthly_charge_limit: limit_field("monthly_charge_limit", &body.monthly_charge_limit)?,
        holding_limit: limit_field("holding_limit", &body.holding_limit)?,
        merchant_fee_rate: rate_field("merchant_fee_rate", &body.merchant_fee_rate)?,
    };
    let answer = state.writer.submit(principal.id, None, WriteOp::Ledger(Command::SetPolicy { policy })).await;
    Ok(super::respond(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUpBody {
    amount: Value,
}

async fn top_up(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = idempotency(&request, &body)?;
    let parsed: TopUpBody = parse_body(body.into_inner())?;
    let amount = parse_amount(&parsed.amount)?;
    let command = Command::TopUpBudget { id: new_tx_id(), amount };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

async fn budget(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (_, budget, _) = with_connection(&state, |connection, _| store::ledger::load_state(connection, false)).await?;
    Ok(HttpResponse::Ok().json(budget_body(&budget)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    business_date: String,
}

async fn close_day(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let body: CloseBody = parse_body(body.into_inner())?;
    let date = BusinessDate::parse(&body.business_date).map_err(|error| ApiError::validation(error.to_string()))?;
    let command = Command::CloseDay { id: new_tx_id(), date };
    let answer = state.writer.submit(principal.id, None, WriteOp::Ledger(command)).await;
    Ok(super::respond(answer))
}

/// The settlement file's first line (API.md).
const SETTLEMENT_CSV_HEADER: &str = "business_date,merchant_id,merchant_name,business_number,bank_account,\
payments_count,payments_amount,refunds_count,refunds_amount,fee,net_payable\r\n";

async fn settlement(state: State, request: HttpRequest, date: web::Path<String>) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let date = BusinessDate::parse(&date).map_err(|error| ApiError::not_found(error.to_string()))?;
    let (settlement, identities) = with_connection(&state, move |connection, _| {
        let Some(settlement) = store::ledger::load_settlement(connection, date)? else { return Ok(None) };
        let ids: Vec<String> = settlement.lines.iter().map(|line| line.merchant_id.to_string()).collect();
        let identities = store::reads::merchant_identities(connection, &ids)?;
        Ok(Some((settlement, identities)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("business date {date} has not been closed")))?;
    let wants_csv = request
        .headers()
        .get("Accept")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    let identity = |id: &str| identities.iter().find(|(merchant, ..)| merchant == id);
    if wants_csv {
        let mut csv = String::from(SETTLEMENT_CSV_HEADER);
        for line in &settlement.lines {
            let (_, name, business_number, bank_account) =
                identity(line.merchant_id.as_str()).ok_or_else(ApiError::internal)?;
            let fields = [
                settlement.business_date.to_string(),
                line.merchant_id.to_string(),
                name.clone(),
                business_number.clone(),
                bank_account.clone(),
                line.payments_count.to_string(),
                line.payments_amount.to_string(),
                line.refunds_count.to_string(),
                line.refunds_amount.to_string(),
                line.fee.to_string(),
                line.net_payable.to_string(),
            ];
            let quoted: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
            csv.push_str(&quoted.join(","));
            csv.push_str("\r\n");
        }
        return Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(csv));
    }
    let merchants: Vec<Value> = settlement
        .lines
        .iter()
        .map(|line| {
            let (_, name, business_number, bank_account) =
                identity(line.merchant_id.as_str()).cloned().unwrap_or_default();
            json!({
                "merchant_id": line.merchant_id,
                "merchant_name": name,
                "business_number": business_number,
                "bank_account": bank_account,
                "payments_count": line.payments_count,
                "payments_amount": line.payments_amount,
                "refunds_count": line.refunds_count,
                "refunds_amount": line.refunds_amount,
                "fee": line.fee,
                "carried_in": line.carried_in,
                "net_payable": line.net_payable,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "business_date": settlement.business_date,
        "merchants": merchants,
        "total_net_payable": settlement.total_net_payable,
        "total_fee": settlement.total_fee,
    })))
}

/// RFC 4180: quote a field holding a comma, quote, CR or LF, doubling inner quotes.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

async fn trial_balance(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (accounts, total) = with_connection(&state, |connection, _| {
        // One snapshot: the sums and the city row are read in one transaction.
        store::write_transaction(connection, |connection| {
            let (_, budget, system) = store::ledger::load_state(connection, false)?;
            let (wallets, merchants) = store::reads::account_sums(connection)?;
            let balances = [
                (AccountKind::CitizenWallet, Won::from_i64(wallets)),
                (AccountKind::MerchantReceivable, Won::from_i64(merchants)),
                (AccountKind::CashbackBudget, budget.remaining()),
                (AccountKind::BankClearing, system.bank_clearing),
                (AccountKind::SettlementPayouts, system.settlement_payouts),
                (AccountKind::FeeIncome, system.fee_income),
                (AccountKind::HandoverOpening, system.handover_opening),
            ];
            let total = balances.iter().try_fold(Won::ZERO, |sum, (_, balance)| sum.checked_add(*balance));
            let total = total.map_err(|_| store::StoreError::Corrupt("trial balance overflows".into()))?;
            Ok((balances, total))
        })
    })
    .await?;
    let accounts: Vec<Value> =
        accounts.iter().map(|(kind, balance)| json!({"kind": kind.as_str(), "balance": balance})).collect();
    Ok(HttpResponse::Ok().json(json!({"accounts": accounts, "total": total})))
}

async fn admission(
    state: State,
    room: web::Data<super::session::WaitingRoom>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let active = with_connection(&state, |connection, state| {
        let now_ms = store::ledger::millis(state.clock.now());
        store::auth::count_active_citizen_sessions(connection, now_ms, state.config.session_idle.as_millis() as i64)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "active_sessions": active,
        "session_capacity": state.config.sessions_capacity,
        "waiting": room.waiting(),
        "admitted_total": room.admitted_total.load(std::sync::atomic::Ordering::Relaxed),
        "shed_total": room.shed_total.load(std::sync::atomic::Ordering::Relaxed),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    now: String,
}

async fn test_clock(state: State, request: HttpRequest, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    if !state.clock.is_test_clock() {
        return Err(ApiError::not_found("no such endpoint; see /openapi.json for the API"));
    }
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let body: ClockBody = parse_body(body.into_inner())?;
    let target = chrono::DateTime::parse_from_rfc3339(&body.now)
        .map_err(|error| ApiError::validation(format!("now must be RFC 3339: {error}")))?
        .with_timezone(&chrono::Utc);
    state.clock.move_to(target).map_err(|now| {
        ApiError::validation(format!("the clock only moves forward; it is already {}", super::rfc3339(now)))
    })?;
    Ok(HttpResponse::Ok().json(json!({"now": super::rfc3339(state.clock.now())})))
}
