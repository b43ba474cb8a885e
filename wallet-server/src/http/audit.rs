//! `GET /v1/admin/audit-log` (an extension of API.md): every admin action, newest first, a page
//! at a time. The rows are written by the actions themselves, in their own transactions
//! (`store::audit`); this only reads them.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::{authenticate, rfc3339, with_connection, Role, State};
use crate::api::wire::{AuditPage, AuditRow, ErrorBody, Forbidden, InternalError, Overloaded, Unauthorized};
use crate::api::ApiError;
use crate::store::{self, StoreError};

/// Audit page size: default and most (as the history's).
const AUDIT_PAGE_DEFAULT: i64 = 50;
const AUDIT_PAGE_MAX: i64 = 200;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Rows per page, 1 to 200; 50 when left out.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50, nullable = false)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page; left out for the newest rows.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// The audit log: every admin action, newest first, a page at a time.
///
/// Each action (merchant creation, policy change, budget top-up, settlement close, password-reset
/// issue, test-clock move, and on the command line admin creation and handover import and
/// export) wrote its row in the same database transaction as its effect.
#[utoipa::path(get, path = "/v1/admin/audit-log", operation_id = "list_audit_log", tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit rows.", body = AuditPage),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
        (status = 422, description = "`validation_failed`: `limit` is not a whole number from 1 to 200, `cursor` is \
            not one this server gave, or an unknown query parameter.", body = ErrorBody),
        (status = 500, response = inline(InternalError)),
        (status = 503, response = inline(Overloaded))
    )
)]
pub(super) async fn audit_log(
    state: State,
    request: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, Some(Role::Admin)).await?;
    let limit = match &query.limit {
        None => AUDIT_PAGE_DEFAULT,
        Some(text) => {
            text.parse::<i64>().ok().filter(|limit| (1..=AUDIT_PAGE_MAX).contains(limit)).ok_or_else(|| {
                ApiError::validation(format!("limit must be a whole number from 1 to {AUDIT_PAGE_MAX}"))
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
    let rows = with_connection(&state, move |connection, _| store::audit::page(connection, before, limit + 1)).await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let items = page
        .iter()
        .map(|row| {
            let detail: Value = serde_json::from_str(&row.detail)
                .map_err(|error| StoreError::Corrupt(format!("audit row {}: detail: {error}", row.seq)))?;
            let named = |what: &str, name: &str| StoreError::Corrupt(format!("audit row {}: {what} {name:?}", row.seq));
            Ok(AuditRow {
                id: row.seq.to_string(),
                at: rfc3339(store::time::instant(row.at_ms)?),
                via: serde_json::from_value(Value::from(row.via.as_str())).map_err(|_| named("via", &row.via))?,
                principal_id: row.principal_id.clone(),
                login: row.login.clone(),
                action: serde_json::from_value(Value::from(row.action.as_str()))
                    .map_err(|_| named("action", &row.action))?,
                detail,
                idempotency_key: row.idempotency_key.clone(),
            })
        })
        .collect::<Result<Vec<AuditRow>, StoreError>>()?;
    let next_cursor = if more { page.last().map(|row| row.seq.to_string()) } else { None };
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor }))
}
