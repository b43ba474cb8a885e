//! The audit log: one row per admin action, inserted by the action's own transaction (the
//! caller passes the connection inside it), so an action and its row commit or vanish together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::schema::*;
use super::{time, DbConn, StoreResult};

/// Who took an action.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// An admin's request; the principal id (the login is looked up as it is now).
    Admin(&'a str),
    /// A `wallet-server` command run on the server's machine (admin creation, handover).
    CommandLine,
}

/// What was done. The names are the API's `action` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    AdminCreated,
    MerchantCreated,
    PolicyChanged,
    CashbackBudgetToppedUp,
    SettlementClosed,
    PasswordResetIssued,
    TestClockMoved,
    HandoverImported,
    HandoverExported,
    ProgramCreated,
    ProgramBudgetToppedUp,
    AllowancesGranted,
    MerchantChanged,
    MerchantSuspended,
    MerchantReinstated,
    WalletLocked,
    WalletUnlocked,
    PasswordChanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::AdminCreated => "admin_created",
            Action::MerchantCreated => "merchant_created",
            Action::PolicyChanged => "policy_changed",
            Action::CashbackBudgetToppedUp => "cashback_budget_topped_up",
            Action::SettlementClosed => "settlement_closed",
            Action::PasswordResetIssued => "password_reset_issued",
            Action::TestClockMoved => "test_clock_moved",
            Action::HandoverImported => "handover_imported",
            Action::HandoverExported => "handover_exported",
            Action::ProgramCreated => "program_created",
            Action::ProgramBudgetToppedUp => "program_budget_topped_up",
            Action::AllowancesGranted => "allowances_granted",
            Action::MerchantChanged => "merchant_changed",
            Action::MerchantSuspended => "merchant_suspended",
            Action::MerchantReinstated => "merchant_reinstated",
            Action::WalletLocked => "wallet_locked",
            Action::WalletUnlocked => "wallet_unlocked",
            Action::PasswordChanged => "password_changed",
        }
    }
}

/// One action to record. `detail` is a small JSON object built by the action's code: ids,
/// figures and names, never a password, token or reset code.
pub struct Entry<'a> {
    pub at: DateTime<Utc>,
    pub actor: Actor<'a>,
    pub action: Action,
    pub detail: Value,
    /// The request's Idempotency-Key, where the action honours one (budget top-ups).
    pub idempotency_key: Option<&'a str>,
}

/// Inserts `entry`; call it inside the transaction that takes the action. A command-line entry
/// gets the operating-system user who ran it (`USER`, else `LOGNAME`) as `os_user` in its detail:
/// the command line has no login, and this is the closest answer to "who".
pub fn record(connection: &mut DbConn, entry: Entry<'_>) -> StoreResult<()> {
    let mut detail = entry.detail;
    let (via, principal_id, login) = match entry.actor {
        Actor::Admin(principal_id) => {
            let login: Option<String> = principals::table
                .filter(principals::principal_id.eq(principal_id))
                .select(principals::login)
                .first(connection)
                .optional()?;
            ("api", Some(principal_id), login)
        }
        Actor::CommandLine => {
            let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).ok().filter(|user| !user.is_empty());
            if let (Value::Object(fields), Some(user)) = (&mut detail, user) {
                fields.insert("os_user".into(), Value::String(user));
            }
            ("cli", None, None)
        }
    };
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at_ms.eq(time::millis(entry.at)),
            audit_log::via.eq(via),
            audit_log::principal_id.eq(principal_id),
            audit_log::login.eq(login),
            audit_log::action.eq(entry.action.as_str()),
            audit_log::detail.eq(detail.to_string()),
            audit_log::idempotency_key.eq(entry.idempotency_key),
        ))
        .execute(connection)?;
    Ok(())
}

/// A stored audit row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub via: String,
    pub principal_id: Option<String>,
    pub login: Option<String>,
    pub action: String,
    pub detail: String,
    pub idempotency_key: Option<String>,
}

/// Up to `limit` rows older than `before_seq`, newest first (the primary key's order).
pub fn page(connection: &mut DbConn, before_seq: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRow>> {
    Ok(audit_log::table
        .filter(audit_log::seq.lt(before_seq.unwrap_or(i64::MAX)))
        .order(audit_log::seq.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(connection)?)
}
