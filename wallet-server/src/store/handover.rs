//! What the handover importer writes besides the ledger: principals, wallets and merchants as
//! the outgoing operator knew them, and the record of applied bundles.

use diesel::prelude::*;
use diesel::upsert::excluded;

use wallet_core::WalletState;

use super::ledger::{self, ROWS_PER_INSERT};
use super::schema::{handover_bundles, handover_exports, history, merchants, principals, wallets};
use super::{DbConn, StoreResult};

/// Values named in one `IN (...)` query at most (bound-parameter limits).
const IDS_PER_QUERY_MAX: usize = 10_000;

/// A bundle as applied.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = handover_bundles, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct AppliedBundle {
    pub sequence: i64,
    pub kind: String,
    pub operator: String,
    pub as_of: String,
    pub manifest_sha256: String,
    pub citizens: i64,
    pub merchants: i64,
    pub transactions: i64,
    pub citizen_balance_sum: i64,
    pub merchant_receivable_sum: i64,
    pub cashback_budget_remaining: i64,
    pub applied_at_ms: i64,
}

/// The bundle applied under `sequence`, or the last one applied when `sequence` is `None`.
pub fn applied_bundle(connection: &mut DbConn, sequence: Option<i64>) -> StoreResult<Option<AppliedBundle>> {
    let query = handover_bundles::table.order(handover_bundles::sequence.desc()).select(AppliedBundle::as_select());
    Ok(match sequence {
        Some(sequence) => query.filter(handover_bundles::sequence.eq(sequence)).first(connection).optional()?,
        None => query.first(connection).optional()?,
    })
}

pub fn record_bundle(connection: &mut DbConn, bundle: &AppliedBundle) -> StoreResult<()> {
    diesel::insert_into(handover_bundles::table)
        .values((
            handover_bundles::sequence.eq(bundle.sequence),
            handover_bundles::kind.eq(&bundle.kind),
            handover_bundles::operator.eq(&bundle.operator),
            handover_bundles::as_of.eq(&bundle.as_of),
            handover_bundles::manifest_sha256.eq(&bundle.manifest_sha256),
            handover_bundles::citizens.eq(bundle.citizens),
            handover_bundles::merchants.eq(bundle.merchants),
            handover_bundles::transactions.eq(bundle.transactions),
            handover_bundles::citizen_balance_sum.eq(bundle.citizen_balance_sum),
            handover_bundles::merchant_receivable_sum.eq(bundle.merchant_receivable_sum),
            handover_bundles::cashback_budget_remaining.eq(bundle.cashback_budget_remaining),
            handover_bundles::applied_at_ms.eq(bundle.applied_at_ms),
        ))
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

/// Writes wallets carried over with their whole state, a few hundred a statement: added, or
/// replaced when here already (a delta).
pub fn put_wallets(connection: &mut DbConn, wallets_in: &[(&str, &str, &WalletState)]) -> StoreResult<()> {
    for chunk in wallets_in.chunks(ROWS_PER_INSERT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (wallet_id, citizen_id, state) in chunk {
            rows.push((
                wallets::wallet_id.eq(*wallet_id),
                wallets::citizen_id.eq(*citizen_id),
                wallets::balance.eq(ledger::cents(state.balance)?),
                wallets::month.eq(state.counters.month.to_string()),
                wallets::charged.eq(ledger::cents(state.counters.charged)?),
                wallets::eligible_spent.eq(ledger::cents(state.counters.eligible_spent)?),
                wallets::cashback_earned.eq(ledger::cents(state.counters.cashback_earned)?),
                wallets::cashback_reversed.eq(ledger::cents(state.counters.cashback_reversed)?),
            ));
        }
        upsert!(
            connection,
            diesel::insert_into(wallets::table).values(&rows).on_conflict(wallets::wallet_id).do_update().set((
                wallets::balance.eq(excluded(wallets::balance)),
                wallets::month.eq(excluded(wallets::month)),
                wallets::charged.eq(excluded(wallets::charged)),
                wallets::eligible_spent.eq(excluded(wallets::eligible_spent)),
                wallets::cashback_earned.eq(excluded(wallets::cashback_earned)),
                wallets::cashback_reversed.eq(excluded(wallets::cashback_reversed)),
            ))
        )?;
    }
    Ok(())
}

/// A history item as already here.
#[derive(Queryable, Selectable)]
#[diesel(table_name = history, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ExistingItem {
    pub item_id: String,
    pub kind: String,
    pub amount: i64,
    pub at_ms: i64,
    pub wallet_id: String,
}

/// History items already here among `ids`.
pub fn existing_items(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<ExistingItem>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(history::table
        .filter(history::item_id.eq_any(ids))
        .select(ExistingItem::as_select())
        .load(connection)?)
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
}

/// One exported history item, with the payment's cashback when it is a payment.
#[derive(Queryable, Selectable)]
#[diesel(table_name = history, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct HistoryExport {
    pub seq: i64,
    pub item_id: String,
    pub at_ms: i64,
    pub kind: String,
    pub wallet_id: String,
    pub counterparty: Option<String>,
    pub amount: i64,
    pub related_id: Option<String>,
    #[diesel(
        select_expression = super::schema::payments::cashback.nullable(),
        select_expression_type = diesel::dsl::Nullable<super::schema::payments::cashback>
    )]
    pub payment_cashback: Option<i64>,
}

/// What a delta export holds: what changed after an earlier export.
#[derive(Clone, Copy, Debug)]
pub struct Since {
    /// The last history row of the earlier export.
    pub history_seq: i64,
    /// Principals created or changed after this are carried again.
    pub changed_ms: i64,
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
    Ok(query
        .order(principals::principal_id)
        .limit(limit)
        .select(CitizenExport::as_select())
        .load(connection)?)
}

/// A page of merchants after `after` (by merchant id); with `since`, only those paid or refunded
/// through, settled, created or changed after it.
pub fn merchants_page(
    connection: &mut DbConn,
    after: &str,
    limit: i64,
    since: Option<Since>,
) -> StoreResult<Vec<MerchantExport>> {
    use super::schema::{settlement_lines, settlements};
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
    Ok(query
        .order(principals::principal_id)
        .limit(limit)
        .select(MerchantExport::as_select())
        .load(connection)?)
}

/// A page of history after `after_seq`, in the order it was written.
pub fn history_page(connection: &mut DbConn, after_seq: i64, limit: i64) -> StoreResult<Vec<HistoryExport>> {
    use super::schema::payments;
    Ok(history::table
        .left_join(payments::table.on(payments::payment_id.eq(history::item_id)))
        .filter(history::seq.gt(after_seq))
        .order(history::seq)
        .limit(limit)
        .select(HistoryExport::as_select())
        .load(connection)?)
}

/// The last history row written (0 when there is none).
pub fn last_history_seq(connection: &mut DbConn) -> StoreResult<i64> {
    Ok(history::table.select(diesel::dsl::max(history::seq)).first::<Option<i64>>(connection)?.unwrap_or(0))
}

/// A bundle exported from here, as a delta after it needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = handover_exports, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ExportedBundle {
    pub kind: String,
    /// The last history row the bundle holds.
    pub history_seq: i64,
    /// When its consistent read began.
    pub exported_at_ms: i64,
}

/// A bundle exported from here.
pub fn exported_bundle(connection: &mut DbConn, sequence: i64) -> StoreResult<Option<ExportedBundle>> {
    Ok(handover_exports::table
        .filter(handover_exports::sequence.eq(sequence))
        .select(ExportedBundle::as_select())
        .first(connection)
        .optional()?)
}

/// The last bundle exported from here, as the status page shows it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = handover_exports, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct LatestExport {
    pub sequence: i64,
    pub kind: String,
    pub exported_at_ms: i64,
}

/// The last bundle exported from here (the highest sequence: a new export drops the records
/// after its own).
pub fn last_export(connection: &mut DbConn) -> StoreResult<Option<LatestExport>> {
    Ok(handover_exports::table
        .order(handover_exports::sequence.desc())
        .select(LatestExport::as_select())
        .first(connection)
        .optional()?)
}

/// Records a bundle exported from here (replacing an earlier export under the same sequence:
/// one that was never applied may be exported again). The records of later bundles are dropped:
/// they followed the bundle this one replaces, so no delta may start from them any more.
pub fn record_export(
    connection: &mut DbConn,
    sequence: i64,
    kind: &str,
    history_seq: i64,
    exported_at_ms: i64,
    manifest_sha256: &str,
) -> StoreResult<()> {
    diesel::delete(handover_exports::table.filter(handover_exports::sequence.gt(sequence))).execute(connection)?;
    upsert!(
        connection,
        diesel::insert_into(handover_exports::table)
            .values((
                handover_exports::sequence.eq(sequence),
                handover_exports::kind.eq(kind),
                handover_exports::history_seq.eq(history_seq),
                handover_exports::exported_at_ms.eq(exported_at_ms),
                handover_exports::manifest_sha256.eq(manifest_sha256),
            ))
            .on_conflict(handover_exports::sequence)
            .do_update()
            .set((
                handover_exports::kind.eq(excluded(handover_exports::kind)),
                handover_exports::history_seq.eq(excluded(handover_exports::history_seq)),
                handover_exports::exported_at_ms.eq(excluded(handover_exports::exported_at_ms)),
                handover_exports::manifest_sha256.eq(excluded(handover_exports::manifest_sha256)),
            ))
    )?;
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
}

/// Wallets whose history does not add up to their balance (0 when history is complete).
pub fn wallets_with_incomplete_history(connection: &mut DbConn) -> StoreResult<i64> {
    let count: Count = diesel::sql_query(
        "SELECT COUNT(*) AS total FROM wallets w WHERE w.balance <> \
         (SELECT CAST(COALESCE(SUM(h.amount), 0) AS BIGINT) FROM history h WHERE h.wallet_id = w.wallet_id)",
    )
    .get_result(connection)?;
    Ok(count.total)
}
