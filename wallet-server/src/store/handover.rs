//! What the handover importer writes besides the ledger: principals, wallets and merchants as
//! the outgoing operator knew them, and the record of applied bundles.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{handover_bundles, history, merchants, principals, wallets};
use super::{DbConn, StoreResult};

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

/// Adds or replaces a principal carried over (same id: its login and password hash are replaced,
/// but an empty hash never replaces one here, so a delta cannot lock anyone out).
pub fn put_principal(
    connection: &mut DbConn,
    principal_id: &str,
    login: &str,
    role: &str,
    password_hash: &str,
    created_at_ms: i64,
) -> StoreResult<()> {
    let row = (
        principals::principal_id.eq(principal_id),
        principals::login.eq(login),
        principals::role.eq(role),
        principals::password_hash.eq(password_hash),
        principals::created_at_ms.eq(created_at_ms),
    );
    if password_hash.is_empty() {
        upsert!(
            connection,
            diesel::insert_into(principals::table)
                .values(row)
                .on_conflict(principals::principal_id)
                .do_update()
                .set(principals::login.eq(excluded(principals::login)))
        )?;
    } else {
        upsert!(
            connection,
            diesel::insert_into(principals::table).values(row).on_conflict(principals::principal_id).do_update().set((
                principals::login.eq(excluded(principals::login)),
                principals::password_hash.eq(excluded(principals::password_hash)),
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

/// A page of citizens after `after` (by citizen id).
pub fn citizens_page(connection: &mut DbConn, after: &str, limit: i64) -> StoreResult<Vec<CitizenExport>> {
    Ok(principals::table
        .inner_join(wallets::table.on(wallets::citizen_id.eq(principals::principal_id)))
        .filter(principals::principal_id.gt(after))
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

/// A page of merchants after `after` (by merchant id).
pub fn merchants_page(connection: &mut DbConn, after: &str, limit: i64) -> StoreResult<Vec<MerchantExport>> {
    Ok(principals::table
        .inner_join(merchants::table.on(merchants::merchant_id.eq(principals::principal_id)))
        .filter(principals::principal_id.gt(after))
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
