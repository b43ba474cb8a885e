//! The `principals` table: everyone who logs in (citizens, merchants, admins), with login and
//! password hash. Written by registration, password changes and a handover; read by logins and
//! by a handover export, which pages citizens with their wallets and merchants with their details.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::fixed::ROWS_PER_INSERT;
use super::schema::*;
use super::{is_unique_violation, DbConn, StoreResult};

/// Values named in one `IN (...)` query at most (bound-parameter limits).
const IDS_PER_QUERY_MAX: usize = 10_000;

/// A principal as the login path needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = principals, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PrincipalRow {
    pub principal_id: String,
    pub role: String,
    pub password_hash: String,
}

/// Inserts a principal; `Ok(false)` when the login is taken.
pub fn insert_principal(
    connection: &mut DbConn,
    principal_id: &str,
    login: &str,
    role: &str,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<bool> {
    let inserted = diesel::insert_into(principals::table)
        .values((
            principals::principal_id.eq(principal_id),
            principals::login.eq(login),
            principals::role.eq(role),
            principals::password_hash.eq(password_hash),
            principals::created_at_ms.eq(now_ms),
        ))
        .execute(connection);
    match inserted {
        Ok(_) => Ok(true),
        Err(error) if is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

pub fn find_principal(connection: &mut DbConn, login: &str) -> StoreResult<Option<PrincipalRow>> {
    Ok(principals::table
        .filter(principals::login.eq(login))
        .select(PrincipalRow::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

/// The stored password hash of a principal (`None`: no such principal).
pub fn password_hash_of(connection: &mut DbConn, principal_id: &str) -> StoreResult<Option<String>> {
    Ok(principals::table
        .filter(principals::principal_id.eq(principal_id))
        .select(principals::password_hash)
        .first(connection)
        .optional()?)
}

pub fn set_password_hash(
    connection: &mut DbConn,
    principal_id: &str,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<()> {
    diesel::update(principals::table.filter(principals::principal_id.eq(principal_id)))
        .set((principals::password_hash.eq(password_hash), principals::changed_at_ms.eq(now_ms)))
        .execute(connection)?;
    Ok(())
}

/// A principal carried over.
pub struct PrincipalIn<'a> {
    pub principal_id: &'a str,
    pub login: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub created_at_ms: i64,
}

/// Adds or replaces principals carried over, a few hundred a statement (same id: login and
/// password hash are replaced, but an empty hash never replaces one here, so a delta cannot lock
/// anyone out).
pub fn put_principals(connection: &mut DbConn, principals_in: &[PrincipalIn<'_>], now_ms: i64) -> StoreResult<()> {
    let row = |principal: &PrincipalIn<'_>| {
        (
            principals::principal_id.eq(principal.principal_id.to_owned()),
            principals::login.eq(principal.login.to_owned()),
            principals::role.eq(principal.role.to_owned()),
            principals::password_hash.eq(principal.password_hash.to_owned()),
            principals::created_at_ms.eq(principal.created_at_ms),
            principals::changed_at_ms.eq(now_ms),
        )
    };
    let (without_hash, with_hash): (Vec<_>, Vec<_>) =
        principals_in.iter().partition(|principal| principal.password_hash.is_empty());
    for chunk in without_hash.chunks(ROWS_PER_INSERT) {
        let rows: Vec<_> = chunk.iter().map(|principal| row(principal)).collect();
        upsert!(
            connection,
            diesel::insert_into(principals::table).values(&rows).on_conflict(principals::principal_id).do_update().set(
                (
                    principals::login.eq(excluded(principals::login)),
                    principals::changed_at_ms.eq(excluded(principals::changed_at_ms)),
                )
            )
        )?;
    }
    for chunk in with_hash.chunks(ROWS_PER_INSERT) {
        let rows: Vec<_> = chunk.iter().map(|principal| row(principal)).collect();
        upsert!(
            connection,
            diesel::insert_into(principals::table).values(&rows).on_conflict(principals::principal_id).do_update().set(
                (
                    principals::login.eq(excluded(principals::login)),
                    principals::password_hash.eq(excluded(principals::password_hash)),
                    principals::changed_at_ms.eq(excluded(principals::changed_at_ms)),
                )
            )
        )?;
    }
    Ok(())
}

/// A login held here, and the principal holding it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = principals, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct LoginHolder {
    pub login: String,
    pub principal_id: String,
}

/// Of `logins`, those held here, with the id of the principal holding each.
pub fn login_holders(connection: &mut DbConn, logins: &[&str]) -> StoreResult<Vec<LoginHolder>> {
    let mut holders = Vec::new();
    for chunk in logins.chunks(IDS_PER_QUERY_MAX) {
        holders.extend(
            principals::table
                .filter(principals::login.eq_any(chunk))
                .select(LoginHolder::as_select())
                .load(connection)?,
        );
    }
    Ok(holders)
}

/// What a delta export holds: what changed after an earlier export.
#[derive(Clone, Copy, Debug)]
pub struct Since {
    /// The last history row of the earlier export.
    pub history_seq: i64,
    /// Principals created or changed after this are carried again.
    pub changed_ms: i64,
}

/// One exported citizen: the principal with its wallet.
#[derive(Queryable, Selectable)]
#[diesel(table_name = principals, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CitizenExport {
    #[diesel(column_name = principal_id)]
    pub citizen_id: String,
    pub login: String,
    pub password_hash: String,
    #[diesel(select_expression = wallets::wallet_id)]
    pub wallet_id: String,
    #[diesel(select_expression = wallets::balance)]
    pub balance: i64,
    #[diesel(select_expression = wallets::month)]
    pub month: String,
    #[diesel(select_expression = wallets::charged)]
    pub charged: i64,
    #[diesel(select_expression = wallets::eligible_spent)]
    pub eligible_spent: i64,
    pub created_at_ms: i64,
    /// The bonus part of `balance`.
    #[diesel(select_expression = wallets::bonus)]
    pub bonus: i64,
    /// The charge bonus quota used in `month`.
    #[diesel(select_expression = wallets::bonus_quota_used)]
    pub bonus_quota_used: i64,
}

/// A page of citizens after `after` (by citizen id); with `since`, only those whose wallet moved
/// or who were created or changed after it.
pub fn citizens_page(
    connection: &mut DbConn,
    after: &str,
    limit: i64,
    since: Option<Since>,
) -> StoreResult<Vec<CitizenExport>> {
    let mut query = principals::table
        .inner_join(wallets::table.on(wallets::citizen_id.eq(principals::principal_id)))
        .filter(principals::principal_id.gt(after))
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(
            wallets::wallet_id
                .eq_any(history::table.filter(history::seq.gt(since.history_seq)).select(history::wallet_id))
                .or(principals::created_at_ms.gt(since.changed_ms))
                .or(principals::changed_at_ms.gt(since.changed_ms)),
        );
    }
    Ok(query.order(principals::principal_id).limit(limit).select(CitizenExport::as_select()).load(connection)?)
}

/// One exported merchant: the principal with its details and receivable.
#[derive(Queryable, Selectable)]
#[diesel(table_name = principals, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MerchantExport {
    #[diesel(column_name = principal_id)]
    pub merchant_id: String,
    pub login: String,
    pub password_hash: String,
    #[diesel(select_expression = merchants::name)]
    pub name: String,
    #[diesel(select_expression = merchants::business_number)]
    pub business_number: String,
    #[diesel(select_expression = merchants::bank_account)]
    pub bank_account: String,
    #[diesel(select_expression = merchants::category)]
    pub category: Option<String>,
    #[diesel(select_expression = merchants::receivable)]
    pub receivable: i64,
    #[diesel(select_expression = merchants::annual_revenue)]
    pub annual_revenue: Option<i64>,
    /// The negative net carried into the next close (0 when none).
    #[diesel(select_expression = merchants::carried_negative)]
    pub carried_negative: i64,
}

/// A page of merchants after `after` (by merchant id); with `since`, only those paid or refunded
/// through, settled, created or changed after it.
pub fn merchants_page(
    connection: &mut DbConn,
    after: &str,
    limit: i64,
    since: Option<Since>,
) -> StoreResult<Vec<MerchantExport>> {
    let mut query = principals::table
        .inner_join(merchants::table.on(merchants::merchant_id.eq(principals::principal_id)))
        .filter(principals::principal_id.gt(after))
        .into_boxed();
    if let Some(since) = since {
        let settled_days = settlements::table
            .filter(settlements::closed_at_ms.gt(since.changed_ms))
            .select(settlements::business_date);
        query = query.filter(
            principals::principal_id
                .nullable()
                .eq_any(history::table.filter(history::seq.gt(since.history_seq)).select(history::counterparty))
                .or(principals::principal_id.eq_any(
                    settlement_lines::table
                        .filter(settlement_lines::business_date.eq_any(settled_days))
                        .select(settlement_lines::merchant_id),
                ))
                .or(principals::created_at_ms.gt(since.changed_ms))
                .or(principals::changed_at_ms.gt(since.changed_ms)),
        );
    }
    Ok(query.order(principals::principal_id).limit(limit).select(MerchantExport::as_select()).load(connection)?)
}
