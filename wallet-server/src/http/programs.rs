//! The city's programs (docs/API.md, Part 2): allowance programs, their budgets, and grants of
//! up to 1,000 wallets a request. The money moves through the writer like every other command;
//! creating a program is a row and its audit entry.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use wallet_core::{AllowanceRules, BusinessDate, Command, GrantId, GrantLine, ProgramId, Validity, WalletId, Won};

use super::strict_json::StrictJson;
use super::{authenticate, idempotency, new_tx_id, parse_amount, parse_body, submit, with_connection, Role, State};
use crate::api::wire::{
    ErrorBody, Forbidden, GrantRowCode, GrantRowProblem, Granted, GrantsRefused, IdempotencyConflict, IdempotencyKey,
    IdempotencyKeyOptional, InternalError, InvalidJsonOrKey, Overloaded, PayloadTooLarge, Program, ProgramList,
    ProgramToppedUp, RequestTimeout, Unauthorized,
};
use crate::api::ApiError;
use crate::store::{self, audit};
use crate::writer::WriteOp;

/// A program's name: what citizens see beside their allowance.
const PROGRAM_NAME_LEN_MAX: usize = 200;
/// A grants request's body may be larger than other bodies: 1,000 lines of ids up to 64
/// characters do not fit the usual 64 KiB.
pub const GRANTS_BODY_BYTES_MAX: usize = 256 * 1024;

/// A program to create (docs/API.md, Part 2). An allowance program takes exactly one of
/// `valid_days` and `expires_on` and the merchant fields; a charge bonus program takes `rate`,
/// `monthly_charge_cap`, `opens_at`, `closes_at` and optionally `cohorts` and
/// `cohort_interval_s`. A field of the other kind is refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramBody {
    /// `allowance` or `charge_bonus`.
    #[schema(example = "allowance")]
    kind: String,
    #[schema(min_length = 1, max_length = 200, example = "청년 지역화폐 2027")]
    name: String,
    #[schema(minimum = 1, maximum = 3650, example = 90)]
    valid_days: Option<u32>,
    #[schema(format = Date, example = "2027-12-31")]
    expires_on: Option<String>,
    /// Only these categories; absent or empty: every category.
    merchant_categories: Option<Vec<String>>,
    excluded_merchant_categories: Option<Vec<String>>,
    /// Whole won as a string: merchants above it, or of unknown revenue, are not admitted.
    #[schema(value_type = Option<String>, example = "3000000000")]
    merchant_annual_revenue_max: Option<Value>,
    /// Charge bonus: a decimal string above 0, at most 1.
    #[schema(example = "0.10")]
    rate: Option<String>,
    /// Charge bonus: charged won per citizen and KST month that earn the bonus.
    #[schema(value_type = Option<String>, example = "500000")]
    monthly_charge_cap: Option<Value>,
    /// Charge bonus: when cohort 0 may start to earn.
    #[schema(format = DateTime, example = "2027-03-01T00:00:00Z")]
    opens_at: Option<String>,
    #[schema(format = DateTime, example = "2027-04-01T00:00:00Z")]
    closes_at: Option<String>,
    /// Charge bonus: 1 to 31 cohorts (default 1).
    #[schema(minimum = 1, maximum = 31, example = 5)]
    cohorts: Option<u32>,
    /// Charge bonus: seconds between cohorts' openings (default 0).
    #[schema(minimum = 0, maximum = 604800, example = 86400)]
    cohort_interval_s: Option<u32>,
}

/// A program's name and rules, parsed and checked at `now`.
pub struct NewProgram {
    pub name: String,
    pub rules: NewRules,
}

/// The rules of a program of either kind.
pub enum NewRules {
    Allowance(AllowanceRules),
    ChargeBonus(wallet_core::ChargeBonusRules),
}

/// The body of `POST /v1/admin/programs`, checked as of `now` (an `expires_on` already over, or
/// a charge bonus already closed, is refused).
pub fn parse_program(body: Value, now: chrono::DateTime<chrono::Utc>) -> Result<NewProgram, ApiError> {
    let body: ProgramBody = parse_body(body)?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > PROGRAM_NAME_LEN_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "name must be 1 to {PROGRAM_NAME_LEN_MAX} characters without control characters"
        )));
    }
    let rules = match body.kind.as_str() {
        "allowance" => NewRules::Allowance(allowance_rules(body, now)?),
        "charge_bonus" => NewRules::ChargeBonus(charge_bonus_rules(body, now)?),
        _ => return Err(ApiError::validation("kind must be \"allowance\" or \"charge_bonus\"")),
    };
    Ok(NewProgram { name, rules })
}

fn allowance_rules(body: ProgramBody, now: chrono::DateTime<chrono::Utc>) -> Result<AllowanceRules, ApiError> {
    let foreign = [
        ("rate", body.rate.is_some()),
        ("monthly_charge_cap", body.monthly_charge_cap.is_some()),
        ("opens_at", body.opens_at.is_some()),
        ("closes_at", body.closes_at.is_some()),
        ("cohorts", body.cohorts.is_some()),
        ("cohort_interval_s", body.cohort_interval_s.is_some()),
    ];
    refuse_foreign("an allowance", &foreign)?;
    let validity = match (body.valid_days, body.expires_on) {
        (Some(days), None) => Validity::Days(days),
        (None, Some(date)) => Validity::Until(
            BusinessDate::parse(&date).map_err(|error| ApiError::validation(format!("expires_on: {error}")))?,
        ),
        _ => return Err(ApiError::validation("give exactly one of valid_days and expires_on")),
    };
    let revenue_max = body
        .merchant_annual_revenue_max
        .map(|value| {
            parse_amount(&value)
                .map(|amount| amount.won())
                .map_err(|error| ApiError::validation(format!("merchant_annual_revenue_max: {}", error.message)))
        })
        .transpose()?;
    let rules = AllowanceRules {
        validity,
        merchant_categories: body.merchant_categories.unwrap_or_default(),
        excluded_merchant_categories: body.excluded_merchant_categories.unwrap_or_default(),
        merchant_annual_revenue_max: revenue_max,
    };
    rules.validate(now).map_err(|error| ApiError::validation(format!("{}: {error}", error.field())))
}

fn charge_bonus_rules(
    body: ProgramBody,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<wallet_core::ChargeBonusRules, ApiError> {
    let foreign = [
        ("valid_days", body.valid_days.is_some()),
        ("expires_on", body.expires_on.is_some()),
        ("merchant_categories", body.merchant_categories.is_some()),
        ("excluded_merchant_categories", body.excluded_merchant_categories.is_some()),
        ("merchant_annual_revenue_max", body.merchant_annual_revenue_max.is_some()),
    ];
    refuse_foreign("a charge bonus", &foreign)?;
    let missing = |field: &str| ApiError::validation(format!("{field}: required for a charge bonus program"));
    let rate = body.rate.ok_or_else(|| missing("rate"))?;
    let rate = wallet_core::Rate::parse(&rate).map_err(|error| ApiError::validation(format!("rate: {error}")))?;
    let cap = body.monthly_charge_cap.ok_or_else(|| missing("monthly_charge_cap"))?;
    let cap = parse_amount(&cap)
        .map_err(|error| ApiError::validation(format!("monthly_charge_cap: {}", error.message)))?
        .won();
    let instant = |field: &str, text: Option<String>| -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
        let text = text.ok_or_else(|| missing(field))?;
        chrono::DateTime::parse_from_rfc3339(&text).map(|at| at.with_timezone(&chrono::Utc)).map_err(|_| {
            ApiError::validation(format!("{field}: not an RFC 3339 instant, e.g. \"2027-03-01T00:00:00Z\""))
        })
    };
    let rules = wallet_core::ChargeBonusRules {
        rate,
        monthly_charge_cap: cap,
        opens_at: instant("opens_at", body.opens_at)?,
        closes_at: instant("closes_at", body.closes_at)?,
        cohorts: body.cohorts.unwrap_or(1),
        cohort_interval_s: body.cohort_interval_s.unwrap_or(0),
    };
    rules.validate(now).map_err(|error| ApiError::validation(format!("{}: {error}", error.field())))
}

/// A field of the other kind of program: refused, naming it.
fn refuse_foreign(kind: &str, fields: &[(&str, bool)]) -> Result<(), ApiError> {
    match fields.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(ApiError::validation(format!("{field}: not a field of {kind} program"))),
        None => Ok(()),
    }
}

/// Creates a program (an allowance or a charge bonus program) with an empty budget.
#[utoipa::path(post, path = "/v1/admin/programs", operation_id = "create_program", tag = "programs",
    security(("bearer" = [])),
    params(IdempotencyKeyOptional),
    request_body = ProgramBody,
    responses(
        (status = 201, description = "The program, its budget empty.", body = Program),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`validation_failed`, naming the field: a kind other than `allowance`, a name \
            that is empty or over 200 characters, not exactly one of `valid_days` (1 to 3650) and `expires_on` (a \
            date from today, KST), more than 64 categories or one empty or over 64 characters, a revenue ceiling \
            that is not whole won.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn create_program(
    state: State,
    request: HttpRequest,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = super::idempotency_if_sent(&request, &body)?.map(|key| key.key);
    let body = body.into_inner().0;
    let program = with_connection(&state, move |connection, state| {
        let now = state.clock.now();
        let NewProgram { name, rules } = match parse_program(body, now) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Err(error)),
        };
        let id = ProgramId::parse(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a valid id");
        store::write_transaction(connection, |connection| {
            let shown = match &rules {
                NewRules::Allowance(rules) => {
                    store::programs::insert(connection, &id, &name, rules, now)?;
                    Program::new(&id, &name, rules, now, &Default::default())
                }
                NewRules::ChargeBonus(rules) => {
                    // The city row's lock makes the overlap check and the insert one step for
                    // every server on the database: two overlapping programs cannot both pass.
                    store::ledger_state::load_state(connection, true)?;
                    if let Some(other) = store::charge_bonuses::overlapping(connection, rules)? {
                        return Ok(Err(ApiError::validation(format!(
                            "opens_at: the window overlaps charge bonus program {other}; at most one may be open at \
                             any instant"
                        ))));
                    }
                    store::charge_bonuses::insert(connection, &id, &name, rules, now)?;
                    Program::charge_bonus(&id, &name, &wallet_core::ChargeBonusState::new(rules.clone()), now)
                }
            };
            let entry = audit::Entry {
                at: now,
                actor: audit::Actor::Admin(&principal.id),
                action: audit::Action::ProgramCreated,
                detail: json!({"program": crate::api::wire::to_json(&shown)}),
                idempotency_key: key.as_deref(),
            };
            audit::record(connection, entry)?;
            Ok(Ok(shown))
        })
    })
    .await??;
    Ok(HttpResponse::Created().json(program))
}

/// Every program with its budget, oldest first.
#[utoipa::path(get, path = "/v1/admin/programs", operation_id = "list_programs", tag = "programs",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The programs.", body = ProgramList),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn list_programs(state: State, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let (allowances, bonuses) = with_connection(&state, |connection, _| {
        Ok((store::programs::list(connection)?, store::charge_bonuses::list(connection)?))
    })
    .await?;
    let mut items: Vec<(chrono::DateTime<chrono::Utc>, String, Program)> = allowances
        .iter()
        .map(|record| (record.created_at, record.id.to_string(), shown(record)))
        .chain(bonuses.iter().map(|record| (record.created_at, record.id.to_string(), shown_bonus(record))))
        .collect();
    items.sort_by(|left, right| (left.0, &left.1).cmp(&(right.0, &right.1)));
    Ok(HttpResponse::Ok().json(ProgramList { items: items.into_iter().map(|(_, _, program)| program).collect() }))
}

fn shown(record: &store::programs::ProgramRecord) -> Program {
    Program::new(&record.id, &record.name, &record.rules, record.created_at, &record.budget)
}

fn shown_bonus(record: &store::charge_bonuses::ChargeBonusRecord) -> Program {
    Program::charge_bonus(&record.id, &record.name, &record.state, record.created_at)
}

/// One program with its budget.
#[utoipa::path(get, path = "/v1/admin/programs/{program_id}", operation_id = "get_program", tag = "programs",
    security(("bearer" = [])),
    params(("program_id" = String, Path, description = "The program's id.")),
    responses(
        (status = 200, description = "The program.", body = Program),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such program.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn get_program(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let id = path.into_inner();
    let program = with_connection(&state, move |connection, _| {
        if let Some(record) = store::programs::get(connection, &id)? {
            return Ok(Some(shown(&record)));
        }
        Ok(store::charge_bonuses::get(connection, &id)?.as_ref().map(shown_bonus))
    })
    .await?;
    Ok(HttpResponse::Ok().json(program.ok_or_else(|| ApiError::not_found("no such program"))?))
}

fn program_id(path: String) -> Result<ProgramId, ApiError> {
    ProgramId::parse(&path).map_err(|_| ApiError::not_found("no such program"))
}

/// Money added to a program's budget.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProgramTopUpBody {
    /// Whole won as a JSON string, from `"1"` to `"1000000000000"`.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "100000000")]
    amount: Value,
}

/// The body of `POST /v1/admin/programs/{id}/budget-top-ups`: the amount.
pub fn parse_program_top_up(body: Value) -> Result<wallet_core::Amount, ApiError> {
    let parsed: ProgramTopUpBody = parse_body(body)?;
    parse_amount(&parsed.amount)
}

/// Funds a program's budget from the city's bank account.
#[utoipa::path(post, path = "/v1/admin/programs/{program_id}/budget-top-ups", operation_id = "top_up_program",
    tag = "programs",
    security(("bearer" = [])),
    params(("program_id" = String, Path, description = "The program's id."), IdempotencyKey),
    request_body = ProgramTopUpBody,
    responses(
        (status = 201, description = "The program's budget after the top-up.", body = ProgramToppedUp),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such program.", body = ErrorBody),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, description = "`invalid_amount`: not a string of whole won from 1 to 1000000000000; \
            `validation_failed`: an unknown or missing field.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn top_up_program(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = idempotency(&request, &body)?;
    let program = program_id(path.into_inner())?;
    let amount = parse_program_top_up(body.into_inner().0)?;
    let command = Command::TopUpProgram { id: new_tx_id(), program, amount };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

/// Allowances to grant: 1 to 1,000 lines, all or none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsBody {
    #[schema(min_items = 1, max_items = 1000)]
    grants: Vec<GrantBodyLine>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBodyLine {
    #[schema(min_length = 1, max_length = 64)]
    wallet_id: String,
    /// Whole won as a JSON string.
    #[schema(value_type = String, pattern = "^([1-9][0-9]{0,11}|1000000000000)$", example = "100000")]
    amount: Value,
    /// The line's grant id, chosen by the client (optional; the server mints one otherwise). A
    /// client that names its ids can retry a request whose answer it lost after any time: a
    /// line whose id was granted already refuses the request (`rows`: `grant_exists`).
    #[schema(min_length = 1, max_length = 64)]
    grant_id: Option<String>,
}

/// The lines of `POST /v1/admin/programs/{id}/grants`, each with the grant id it names or a
/// fresh one. A wallet id
/// that cannot exist (empty, too long) is an unknown wallet, named by its line like the others.
pub fn parse_grants(body: Value) -> Result<Vec<GrantLine>, ApiError> {
    let body: GrantsBody = parse_body(body)?;
    if body.grants.is_empty() || body.grants.len() > wallet_core::program::GRANTS_PER_COMMAND_MAX {
        return Err(ApiError::validation(
            "grants must hold 1 to 1000 lines; use `wallet-server programs grant` for more",
        ));
    }
    let mut lines = Vec::with_capacity(body.grants.len());
    let mut unparsed = Vec::new();
    let mut named = std::collections::HashSet::new();
    for (index, line) in body.grants.iter().enumerate() {
        let amount = parse_amount(&line.amount)
            .map_err(|error| ApiError::invalid_amount(format!("grants[{index}].amount: {}", error.message)))?;
        let grant = match &line.grant_id {
            None => new_grant_id(),
            Some(text) => {
                let grant = GrantId::parse(text)
                    .map_err(|error| ApiError::validation(format!("grants[{index}].grant_id: {error}")))?;
                if !named.insert(grant.clone()) {
                    return Err(ApiError::validation(format!(
                        "grants[{index}].grant_id: {grant} is on an earlier line; each line needs its own"
                    )));
                }
                grant
            }
        };
        match WalletId::parse(&line.wallet_id) {
            Ok(wallet) => lines.push(GrantLine { grant, wallet, amount }),
            Err(_) => unparsed.push(GrantRowProblem { index: index as u64, code: GrantRowCode::UnknownWallet }),
        }
    }
    if !unparsed.is_empty() {
        let mut error =
            ApiError::validation("the grants were refused, none was made: some lines name no wallet; see \"rows\"");
        error.extra = Some(("rows", crate::api::wire::to_json(&unparsed)));
        return Err(error);
    }
    Ok(lines)
}

fn new_grant_id() -> GrantId {
    GrantId::parse(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a valid id")
}

/// Grants allowances of a program to up to 1,000 wallets: all of them, or none.
#[utoipa::path(post, path = "/v1/admin/programs/{program_id}/grants", operation_id = "grant_allowances",
    tag = "programs",
    security(("bearer" = [])),
    params(("program_id" = String, Path, description = "The program's id."), IdempotencyKey),
    request_body = GrantsBody,
    responses(
        (status = 201, description = "Every line was granted.", body = Granted),
        (status = 400, response = inline(InvalidJsonOrKey)),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 404, description = "`not_found`: no such program.", body = ErrorBody),
        (status = 409, response = inline(IdempotencyConflict)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 413, response = inline(PayloadTooLarge)),
        (status = 422, response = inline(GrantsRefused)),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn grant(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<StrictJson>,
) -> Result<HttpResponse, ApiError> {
    let principal = authenticate(&state, &request, Some(Role::Admin)).await?;
    let key = idempotency(&request, &body)?;
    let program = program_id(path.into_inner())?;
    let lines = parse_grants(body.into_inner().0)?;
    let command = Command::Grant { id: new_tx_id(), program, lines };
    Ok(submit(&state, &principal.id, key, WriteOp::Ledger(command)).await)
}

/// Whole won from a merchant's `annual_revenue` field: a string, or null to clear it.
pub fn parse_revenue(value: &Value) -> Result<Option<Won>, ApiError> {
    match value {
        Value::Null => Ok(None),
        other => parse_amount(other)
            .map(|amount| Some(amount.won()))
            .map_err(|error| ApiError::validation(format!("annual_revenue: {}", error.message))),
    }
}
