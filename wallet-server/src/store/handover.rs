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
#[derive(Clone, Debug)]
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

type BundleTuple = (String, String, String, String, i64, i64, i64, i64, i64, i64, i64);

/// The bundle applied under `sequence`, or the last one applied when `sequence` is `None`.
pub fn applied_bundle(connection: &mut DbConn, sequence: Option<i64>) -> StoreResult<Option<AppliedBundle>> {
    let query = handover_bundles::table.order(handover_bundles::sequence.desc()).select((
        handover_bundles::sequence,
        (
            handover_bundles::kind,
            handover_bundles::operator,
            handover_bundles::as_of,
            handover_bundles::manifest_sha256,
            handover_bundles::citizens,
            handover_bundles::merchants,
            handover_bundles::transactions,
            handover_bundles::citizen_balance_sum,
            handover_bundles::merchant_receivable_sum,
            handover_bundles::cashback_budget_remaining,
            handover_bundles::applied_at_ms,
        ),
    ));
    let row: Option<(i64, BundleTuple)> = match sequence {
        Some(sequence) => query.filter(handover_bundles::sequence.eq(sequence)).first(connection).optional()?,
        None => query.first(connection).optional()?,
    };
    Ok(row.map(|(sequence, row)| AppliedBundle {
        sequence,
        kind: row.0,
        operator: row.1,
        as_of: row.2,
        manifest_sha256: row.3,
        citizens: row.4,
        merchants: row.5,
        transactions: row.6,
        citizen_balance_sum: row.7,
        merchant_receivable_sum: row.8,
        cashback_budget_remaining: row.9,
        applied_at_ms: row.10,
    }))
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

/// Of `logins`, those held here, with the id of the principal holding each.
pub fn login_holders(connection: &mut DbConn, logins: &[&str]) -> StoreResult<Vec<(String, String)>> {
    let mut holders = Vec::new();
    for chunk in logins.chunks(IDS_PER_QUERY_MAX) {
        holders.extend(
            principals::table
                .filter(principals::login.eq_any(chunk))
                .select((principals::login, principals::principal_id))
                .load::<(String, String)>(connection)?,
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

/// A history item as already here: (item_id, kind, amount, at_ms, wallet_id).
pub type ExistingItem = (String, String, i64, i64, String);

/// History items already here among `ids`.
pub fn existing_items(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<ExistingItem>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(history::table
        .filter(history::item_id.eq_any(ids))
        .select((history::item_id, history::kind, history::amount, history::at_ms, history::wallet_id))
        .load(connection)?)
}

/// One exported citizen: (citizen_id, login, password_hash, wallet_id, balance, month, charged,
/// eligible_spent, created_at_ms).
pub type CitizenExport = (String, String, String, String, i64, String, i64, i64, i64);
/// One exported merchant: (merchant_id, login, password_hash, name, business_number,
/// bank_account, category, receivable).
pub type MerchantExport = (String, String, String, String, String, String, Option<String>, i64);
/// One exported history item: (seq, item_id, at_ms, kind, wallet_id, counterparty, amount,
/// related_id, the payment's cashback when it is a payment).
pub type HistoryExport = (i64, String, i64, String, String, Option<String>, i64, Option<String>, Option<i64>);

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
        .select((
            principals::principal_id,
            principals::login,
            principals::password_hash,
            wallets::wallet_id,
            wallets::balance,
            wallets::month,
            wallets::charged,
            wallets::eligible_spent,
            principals::created_at_ms,
        ))
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
        .select((
            principals::principal_id,
            principals::login,
            principals::password_hash,
            merchants::name,
            merchants::business_number,
            merchants::bank_account,
            merchants::category,
            merchants::receivable,
        ))
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
        .select((
            history::seq,
            history::item_id,
            history::at_ms,
            history::kind,
            history::wallet_id,
            history::counterparty,
            history::amount,
            history::related_id,
            payments::cashback.nullable(),
        ))
        .load(connection)?)
}

/// The last history row written (0 when there is none).
pub fn last_history_seq(connection: &mut DbConn) -> StoreResult<i64> {
    Ok(history::table.select(diesel::dsl::max(history::seq)).first::<Option<i64>>(connection)?.unwrap_or(0))
}

/// A bundle exported from here: (kind, history_seq, exported_at_ms).
pub fn exported_bundle(connection: &mut DbConn, sequence: i64) -> StoreResult<Option<(String, i64, i64)>> {
    Ok(handover_exports::table
        .filter(handover_exports::sequence.eq(sequence))
        .select((handover_exports::kind, handover_exports::history_seq, handover_exports::exported_at_ms))
        .first(connection)
        .optional()?)
}

/// The last bundle exported from here (the highest sequence: a new export drops the records
/// after its own): (sequence, kind, exported_at_ms).
pub fn last_export(connection: &mut DbConn) -> StoreResult<Option<(i64, String, i64)>> {
    Ok(handover_exports::table
        .order(handover_exports::sequence.desc())
        .select((handover_exports::sequence, handover_exports::kind, handover_exports::exported_at_ms))
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
