//! Charge bonus programs: rows of `programs` of kind `charge_bonus` (the definition as created,
//! JSON, and the window in `opens_at_ms`/`closes_at_ms`) and their cohorts' shares in
//! `program_cohorts`. The writer reads the program running at a batch's instant with every batch
//! that charges (locked on PostgreSQL like the city row: every bonus writes its cohort's row).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use serde::{Deserialize, Serialize};
use wallet_core::{ChargeBonusBudget, ChargeBonusRules, ChargeBonusState, CohortShare, ProgramId, Rate};

use super::money::{db_won, won_to_db};
use super::schema::{program_cohorts, programs};
use super::time::{instant, millis};
use super::{corrupt, DbConn, StoreResult};

const CHARGE_BONUS: &str = "charge_bonus";

/// `kind = 'charge_bonus'` as literal SQL, not a bound parameter: the index of programs' windows
/// is partial on that condition, and SQLite prepares a statement again at every bind of a
/// parameter a partial index's `WHERE` names (the writer reads the running program with every
/// batch that charges, `GET /v1/wallet` the shown one with every read).
fn is_charge_bonus() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("programs.kind = 'charge_bonus'")
}

/// A charge bonus program as the city sees it.
#[derive(Clone, Debug)]
pub struct ChargeBonusRecord {
    pub id: ProgramId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub state: ChargeBonusState,
}

/// The definition as the `definition` column keeps it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    rate: String,
    monthly_charge_cap: i64,
    /// Milliseconds since the epoch, like every stored instant.
    opens_at_ms: i64,
    closes_at_ms: i64,
    cohorts: u32,
    cohort_interval_s: u32,
}

fn definition_of(rules: &ChargeBonusRules) -> StoreResult<String> {
    let definition = Definition {
        rate: rules.rate.to_string(),
        monthly_charge_cap: won_to_db(rules.monthly_charge_cap)?,
        opens_at_ms: millis(rules.opens_at),
        closes_at_ms: millis(rules.closes_at),
        cohorts: rules.cohorts,
        cohort_interval_s: rules.cohort_interval_s,
    };
    serde_json::to_string(&definition).map_err(|error| corrupt("charge bonus definition", error))
}

fn rules_of(text: &str) -> StoreResult<ChargeBonusRules> {
    let definition: Definition =
        serde_json::from_str(text).map_err(|error| corrupt("charge bonus definition", error))?;
    Ok(ChargeBonusRules {
        rate: Rate::parse(&definition.rate).map_err(|error| corrupt("charge bonus rate", error))?,
        monthly_charge_cap: db_won(definition.monthly_charge_cap),
        opens_at: instant(definition.opens_at_ms)?,
        closes_at: instant(definition.closes_at_ms)?,
        cohorts: definition.cohorts,
        cohort_interval_s: definition.cohort_interval_s,
    })
}

/// Adds a charge bonus program, its cohorts' shares empty.
pub fn insert(
    connection: &mut DbConn,
    id: &ProgramId,
    name: &str,
    rules: &ChargeBonusRules,
    created_at: DateTime<Utc>,
) -> StoreResult<()> {
    let row = (
        programs::program_id.eq(id.as_str()),
        programs::kind.eq(CHARGE_BONUS),
        programs::name.eq(name),
        programs::definition.eq(definition_of(rules)?),
        programs::created_at_ms.eq(millis(created_at)),
        programs::funded.eq(0i64),
        programs::granted.eq(0i64),
        programs::spent.eq(0i64),
        programs::returned.eq(0i64),
        programs::opens_at_ms.eq(Some(millis(rules.opens_at))),
        programs::closes_at_ms.eq(Some(millis(rules.closes_at))),
    );
    upsert!(connection, diesel::insert_into(programs::table).values(row))?;
    let cohorts: Vec<_> = (0..rules.cohorts)
        .map(|cohort| {
            (
                program_cohorts::program_id.eq(id.as_str()),
                program_cohorts::cohort.eq(cohort as i32),
                program_cohorts::share.eq(0i64),
                program_cohorts::paid_out.eq(0i64),
            )
        })
        .collect();
    upsert!(connection, diesel::insert_into(program_cohorts::table).values(&cohorts))?;
    Ok(())
}

/// Whether a charge bonus program's window overlaps `rules`' (at most one may run at any
/// instant). Read in the creating transaction, after the city row is locked.
pub fn overlapping(connection: &mut DbConn, rules: &ChargeBonusRules) -> StoreResult<Option<String>> {
    Ok(programs::table
        .filter(is_charge_bonus())
        .filter(programs::opens_at_ms.lt(millis(rules.closes_at)))
        .filter(programs::closes_at_ms.gt(millis(rules.opens_at)))
        .select(programs::program_id)
        .first(connection)
        .optional()?)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = programs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    program_id: String,
    name: String,
    definition: String,
    created_at_ms: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = program_cohorts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CohortRow {
    program_id: String,
    cohort: i32,
    share: i64,
    paid_out: i64,
}

/// The records of `rows`, each with its cohorts.
fn records(connection: &mut DbConn, rows: Vec<Row>) -> StoreResult<Vec<ChargeBonusRecord>> {
    let ids: Vec<&str> = rows.iter().map(|row| row.program_id.as_str()).collect();
    let cohorts: Vec<CohortRow> = program_cohorts::table
        .filter(program_cohorts::program_id.eq_any(&ids))
        .order((program_cohorts::program_id, program_cohorts::cohort))
        .select(CohortRow::as_select())
        .load(connection)?;
    rows.into_iter()
        .map(|row| {
            let rules = rules_of(&row.definition)?;
            let rows: Vec<&CohortRow> = cohorts.iter().filter(|cohort| cohort.program_id == row.program_id).collect();
            let in_order = rows.iter().enumerate().all(|(index, cohort)| cohort.cohort as usize == index);
            let shares: Vec<CohortShare> = rows
                .iter()
                .map(|cohort| CohortShare { share: db_won(cohort.share), paid_out: db_won(cohort.paid_out) })
                .collect();
            if !in_order || shares.len() != rules.cohorts as usize {
                return Err(corrupt(
                    "charge bonus cohorts",
                    format!("{} rows for {} cohorts", shares.len(), rules.cohorts),
                ));
            }
            Ok(ChargeBonusRecord {
                id: ProgramId::parse(&row.program_id).map_err(|error| corrupt("program id", error))?,
                name: row.name,
                created_at: instant(row.created_at_ms)?,
                state: ChargeBonusState { rules, budget: ChargeBonusBudget { cohorts: shares } },
            })
        })
        .collect()
}

/// Every charge bonus program, oldest first.
pub fn list(connection: &mut DbConn) -> StoreResult<Vec<ChargeBonusRecord>> {
    let rows: Vec<Row> = programs::table
        .filter(is_charge_bonus())
        .order((programs::created_at_ms, programs::program_id))
        .limit(super::programs::PROGRAMS_LISTED_MAX)
        .select(Row::as_select())
        .load(connection)?;
    records(connection, rows)
}

pub fn get(connection: &mut DbConn, id: &str) -> StoreResult<Option<ChargeBonusRecord>> {
    let rows: Vec<Row> = programs::table
        .filter(is_charge_bonus())
        .filter(programs::program_id.eq(id))
        .select(Row::as_select())
        .load(connection)?;
    Ok(records(connection, rows)?.into_iter().next())
}

/// The program a wallet shows at `now`: created by then and not yet closed, the one that
/// closes first (the running one, else the next).
pub fn shown_at(connection: &mut DbConn, now: DateTime<Utc>) -> StoreResult<Option<ChargeBonusRecord>> {
    let rows: Vec<Row> = programs::table
        .filter(is_charge_bonus())
        .filter(programs::created_at_ms.le(millis(now)))
        .filter(programs::closes_at_ms.gt(millis(now)))
        .order(programs::closes_at_ms)
        .limit(1)
        .select(Row::as_select())
        .load(connection)?;
    Ok(records(connection, rows)?.into_iter().next())
}

/// The charge bonus programs `ids` for the ledger, locked on PostgreSQL (those of another kind
/// are not among them).
pub fn load(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<(ProgramId, ChargeBonusState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = load_keyed!(
        connection,
        programs::table.filter(is_charge_bonus()).select(Row::as_select()),
        programs::program_id,
        ids
    )?;
    Ok(records(connection, rows)?.into_iter().map(|record| (record.id, record.state)).collect())
}

/// The charge bonus program running at `now`, if any, locked on PostgreSQL.
pub fn load_running(connection: &mut DbConn, now: DateTime<Utc>) -> StoreResult<Option<(ProgramId, ChargeBonusState)>> {
    let running: Option<String> = programs::table
        .filter(is_charge_bonus())
        .filter(programs::opens_at_ms.le(millis(now)))
        .filter(programs::closes_at_ms.gt(millis(now)))
        .select(programs::program_id)
        .first(connection)
        .optional()?;
    match running {
        None => Ok(None),
        Some(id) => Ok(load(connection, &[id])?.into_iter().next()),
    }
}

/// Writes the batch's changed shares.
pub fn save(connection: &mut DbConn, changed: &[(ProgramId, ChargeBonusState)]) -> StoreResult<()> {
    for (id, program) in changed {
        let mut rows = Vec::with_capacity(program.budget.cohorts.len());
        for (cohort, share) in program.budget.cohorts.iter().enumerate() {
            rows.push((
                program_cohorts::program_id.eq(id.as_str()),
                program_cohorts::cohort.eq(cohort as i32),
                program_cohorts::share.eq(won_to_db(share.share)?),
                program_cohorts::paid_out.eq(won_to_db(share.paid_out)?),
            ));
        }
        upsert!(
            connection,
            diesel::insert_into(program_cohorts::table)
                .values(&rows)
                .on_conflict((program_cohorts::program_id, program_cohorts::cohort))
                .do_update()
                .set((
                    program_cohorts::share.eq(excluded(program_cohorts::share)),
                    program_cohorts::paid_out.eq(excluded(program_cohorts::paid_out)),
                ))
        )?;
    }
    Ok(())
}
