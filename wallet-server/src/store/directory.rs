//! The city's directory of merchants and citizens (the console's lists): pages in login order,
//! searched by prefix, and the two flags the city sets on them, a merchant's suspension
//! (`merchants.suspended_at_ms`) and a wallet's lock (`wallets.locked_at_ms`).
//!
//! The flags live in the rows the writer loads with the balances (locked on PostgreSQL), so a
//! batch that commits after a flag changed decides by the new value and one that committed
//! before stands: the ledger refuses by them (`Rejection::MerchantSuspended`,
//! `Rejection::WalletLocked`); here they are only set and shown. Setting one is a single
//! conditional update, so two admins acting at once change it once.

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

use super::schema::*;
use super::{DbConn, StoreResult};

diesel::define_sql_function! {
    /// `substr(text, start, length)`: characters, 1-based, on both backends.
    fn substr(text: Text, start: Integer, length: Integer) -> Text;
}

/// A merchant as the city's list shows it: its details, its login and since when it is
/// suspended (`None`: active).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = merchants, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MerchantEntry {
    #[diesel(select_expression = principals::login)]
    pub login: String,
    #[diesel(embed)]
    pub record: super::merchants::MerchantRecord,
    pub suspended_at_ms: Option<i64>,
}

/// A citizen as the city's list shows it: login, wallet, the wallet account's balance (own and
/// bonus purses; allowances are added by the caller) and since when it is locked.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CitizenEntry {
    pub citizen_id: String,
    #[diesel(select_expression = principals::login)]
    pub login: String,
    pub wallet_id: String,
    pub balance: i64,
    pub locked_at_ms: Option<i64>,
}

/// Which page of a list: logins starting with `prefix` (for merchants, or names starting with
/// it), after the login `after`, `limit` rows at most.
pub struct PageOf<'a> {
    pub prefix: Option<&'a str>,
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// The length of a search prefix, in characters, as `substr` counts them.
fn chars(prefix: &str) -> i32 {
    i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX)
}

/// A page of merchants in login order. A prefix matches the login or the name, exactly (case
/// and all: the same on both backends, which `LIKE` is not).
pub fn merchants_page(connection: &mut DbConn, page: &PageOf<'_>) -> StoreResult<Vec<MerchantEntry>> {
    let mut query = merchants::table
        .inner_join(principals::table)
        .filter(principals::login.gt(page.after.unwrap_or("")))
        .order(principals::login)
        .limit(page.limit)
        .select(MerchantEntry::as_select())
        .into_boxed();
    if let Some(prefix) = page.prefix {
        let length = chars(prefix);
        query = query
            .filter(substr(principals::login, 1, length).eq(prefix).or(substr(merchants::name, 1, length).eq(prefix)));
    }
    Ok(query.load(connection)?)
}

/// One merchant by id.
pub fn merchant(connection: &mut DbConn, merchant_id: &str) -> StoreResult<Option<MerchantEntry>> {
    Ok(merchants::table
        .inner_join(principals::table)
        .filter(merchants::merchant_id.eq(merchant_id))
        .select(MerchantEntry::as_select())
        .first(connection)
        .optional()?)
}

/// A page of citizens in login order; a prefix matches the login. `login >= prefix` lets the
/// login index bound the scan; the `substr` test makes the match exact under any collation.
pub fn citizens_page(connection: &mut DbConn, page: &PageOf<'_>) -> StoreResult<Vec<CitizenEntry>> {
    let mut query = wallets::table
        .inner_join(principals::table)
        .filter(principals::login.gt(page.after.unwrap_or("")))
        .order(principals::login)
        .limit(page.limit)
        .select(CitizenEntry::as_select())
        .into_boxed();
    if let Some(prefix) = page.prefix {
        query =
            query.filter(principals::login.ge(prefix)).filter(substr(principals::login, 1, chars(prefix)).eq(prefix));
    }
    Ok(query.load(connection)?)
}

/// One citizen by login.
pub fn citizen(connection: &mut DbConn, login: &str) -> StoreResult<Option<CitizenEntry>> {
    Ok(wallets::table
        .inner_join(principals::table)
        .filter(principals::login.eq(login))
        .select(CitizenEntry::as_select())
        .first(connection)
        .optional()?)
}

/// Suspends the merchant as of `at_ms` (`Some`) or reinstates it (`None`). True when that
/// changed its state; false when it was so already (or there is no such merchant).
pub fn set_suspended(connection: &mut DbConn, merchant_id: &str, at_ms: Option<i64>) -> StoreResult<bool> {
    let target = merchants::table.filter(merchants::merchant_id.eq(merchant_id));
    let updated = match at_ms {
        Some(at_ms) => diesel::update(target.filter(merchants::suspended_at_ms.is_null()))
            .set(merchants::suspended_at_ms.eq(at_ms))
            .execute(connection)?,
        None => diesel::update(target.filter(merchants::suspended_at_ms.is_not_null()))
            .set(merchants::suspended_at_ms.eq(None::<i64>))
            .execute(connection)?,
    };
    Ok(updated == 1)
}

/// Locks the wallet as of `at_ms` (`Some`) or unlocks it (`None`). True when that changed its
/// state. Call it inside the transaction that also ends the citizen's sessions.
pub fn set_locked(connection: &mut DbConn, wallet_id: &str, at_ms: Option<i64>) -> StoreResult<bool> {
    let target = wallets::table.filter(wallets::wallet_id.eq(wallet_id));
    let updated = match at_ms {
        Some(at_ms) => diesel::update(target.filter(wallets::locked_at_ms.is_null()))
            .set(wallets::locked_at_ms.eq(at_ms))
            .execute(connection)?,
        None => diesel::update(target.filter(wallets::locked_at_ms.is_not_null()))
            .set(wallets::locked_at_ms.eq(None::<i64>))
            .execute(connection)?,
    };
    Ok(updated == 1)
}

/// Whether the citizen's wallet is locked (false for anyone without a wallet). Read in the
/// transaction that makes a session, so a login racing a lock either ends before it (and the
/// lock ends its session) or sees it: on PostgreSQL the row is read `FOR SHARE`, waiting for a
/// lock being written; on SQLite the write transaction is already the only one.
pub fn citizen_locked(connection: &mut DbConn, citizen_id: &str) -> StoreResult<bool> {
    let query = wallets::table.filter(wallets::citizen_id.eq(citizen_id)).select(wallets::locked_at_ms);
    let locked: Vec<Option<i64>> = match connection {
        DbConn::Pg(pg) => query.for_share().load(pg)?,
        DbConn::Sqlite(sqlite) => query.load(sqlite)?,
    };
    Ok(locked.into_iter().any(|at_ms| at_ms.is_some()))
}
