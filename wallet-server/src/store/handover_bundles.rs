//! The `handover_bundles` table: the handover bundles applied here (docs/HANDOVER.md), in
//! sequence order, with the manifest's hash, so that the same bundle applied again changes
//! nothing and a different one under the same sequence is refused.

use diesel::prelude::*;

use super::schema::handover_bundles;
use super::{DbConn, StoreResult};

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
