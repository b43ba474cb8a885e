//! The `citizen_references` table: the references the identity-verification and open-banking
//! providers issued for a citizen, carried over by a handover (HANDOVER.md version 2) so that
//! nobody has to verify or link a bank account again. Written by an import, read by an export;
//! shown to nobody but the city's admins, so no query behind a citizen's answer reads it.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::fixed::ROWS_PER_INSERT;
use super::schema::citizen_references;
use super::{DbConn, StoreResult};

/// A citizen's carried references, as stored (each `None` when the bundle had none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = citizen_references, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CitizenReferences {
    pub citizen_id: String,
    pub identity_verified_at_ms: Option<i64>,
    pub identity_ref: Option<String>,
    pub bank_link_ref: Option<String>,
    pub bank_account_masked: Option<String>,
}

impl CitizenReferences {
    /// Whether there is nothing to keep (such a citizen has no row).
    pub fn is_empty(&self) -> bool {
        self.identity_verified_at_ms.is_none()
            && self.identity_ref.is_none()
            && self.bank_link_ref.is_none()
            && self.bank_account_masked.is_none()
    }
}

/// Writes each citizen's references as the bundle has them, a few hundred a statement: a row
/// with none is deleted, the others added or replaced.
pub fn put(connection: &mut DbConn, references: &[CitizenReferences]) -> StoreResult<()> {
    let (empty, kept): (Vec<&CitizenReferences>, Vec<&CitizenReferences>) =
        references.iter().partition(|row| row.is_empty());
    let empty: Vec<&str> = empty.iter().map(|row| row.citizen_id.as_str()).collect();
    for chunk in empty.chunks(ROWS_PER_INSERT) {
        diesel::delete(citizen_references::table.filter(citizen_references::citizen_id.eq_any(chunk)))
            .execute(connection)?;
    }
    for chunk in kept.chunks(ROWS_PER_INSERT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|row| {
                (
                    citizen_references::citizen_id.eq(&row.citizen_id),
                    citizen_references::identity_verified_at_ms.eq(row.identity_verified_at_ms),
                    citizen_references::identity_ref.eq(&row.identity_ref),
                    citizen_references::bank_link_ref.eq(&row.bank_link_ref),
                    citizen_references::bank_account_masked.eq(&row.bank_account_masked),
                )
            })
            .collect();
        upsert!(
            connection,
            diesel::insert_into(citizen_references::table)
                .values(&rows)
                .on_conflict(citizen_references::citizen_id)
                .do_update()
                .set((
                    citizen_references::identity_verified_at_ms
                        .eq(excluded(citizen_references::identity_verified_at_ms)),
                    citizen_references::identity_ref.eq(excluded(citizen_references::identity_ref)),
                    citizen_references::bank_link_ref.eq(excluded(citizen_references::bank_link_ref)),
                    citizen_references::bank_account_masked.eq(excluded(citizen_references::bank_account_masked)),
                ))
        )?;
    }
    Ok(())
}

/// The references of the citizens `ids` that have any, by citizen id.
pub fn of_citizens(connection: &mut DbConn, ids: &[String]) -> StoreResult<HashMap<String, CitizenReferences>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<CitizenReferences> = citizen_references::table
        .filter(citizen_references::citizen_id.eq_any(ids))
        .select(CitizenReferences::as_select())
        .load(connection)?;
    Ok(rows.into_iter().map(|row| (row.citizen_id.clone(), row)).collect())
}
