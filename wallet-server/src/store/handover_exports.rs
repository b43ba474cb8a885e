//! The `handover_exports` table: the bundles exported from here, for the handover away from
//! this system; a delta (`handover export --since N`) starts where bundle N's marks say.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::handover_exports;
use super::{DbConn, StoreResult};

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
