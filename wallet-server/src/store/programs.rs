//! The `programs` table: each city program's definition as created (JSON) and its budget, an
//! account of the ledger. Created by `POST /v1/admin/programs`; the budget is read for the
//! ledger (locked on PostgreSQL, like the city row: every grant and allowance payment writes it)
//! and written by the writer's batches.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use wallet_core::{AllowanceRules, BusinessDate, ProgramBudget, ProgramId, ProgramState, Validity};

use super::money::{db_won, won_to_db};
use super::schema::programs;
use super::time::{instant, millis};
use super::{corrupt, expect_rows, DbConn, StoreResult};

/// How many programs a list shows at most: a city runs a handful a year.
pub const PROGRAMS_LISTED_MAX: i64 = 1_000;

/// A program as the city sees it.
#[derive(Clone, Debug)]
pub struct ProgramRecord {
    pub id: ProgramId,
    pub name: String,
    pub rules: AllowanceRules,
    pub created_at: DateTime<Utc>,
    pub budget: ProgramBudget,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = programs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ProgramRow {
    program_id: String,
    name: String,
    definition: String,
    created_at_ms: i64,
    #[diesel(embed)]
    budget: BudgetRow,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = programs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct BudgetRow {
    funded: i64,
    granted: i64,
    spent: i64,
    returned: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = programs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LoadedProgramRow {
    program_id: String,
    definition: String,
    #[diesel(embed)]
    budget: BudgetRow,
}

/// An allowance program's definition as the `definition` column keeps it: the fields of
/// `POST /v1/admin/programs` that decide the rules (the name has its own column).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_on: Option<String>,
    merchant_categories: Vec<String>,
    excluded_merchant_categories: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_annual_revenue_max: Option<i64>,
}

/// The rules as the `definition` column keeps them.
fn definition_of(rules: &AllowanceRules) -> StoreResult<String> {
    let (valid_days, expires_on) = match rules.validity {
        Validity::Days(days) => (Some(days), None),
        Validity::Until(date) => (None, Some(date.to_string())),
    };
    let definition = Definition {
        valid_days,
        expires_on,
        merchant_categories: rules.merchant_categories.clone(),
        excluded_merchant_categories: rules.excluded_merchant_categories.clone(),
        merchant_annual_revenue_max: rules.merchant_annual_revenue_max.map(won_to_db).transpose()?,
    };
    serde_json::to_string(&definition).map_err(|error| corrupt("program definition", error))
}

fn rules_of(text: &str) -> StoreResult<AllowanceRules> {
    let definition: Definition = serde_json::from_str(text).map_err(|error| corrupt("program definition", error))?;
    let validity = match (definition.valid_days, definition.expires_on) {
        (Some(days), None) => Validity::Days(days),
        (None, Some(date)) => {
            Validity::Until(BusinessDate::parse(&date).map_err(|error| corrupt("program expires_on", error))?)
        }
        _ => return Err(corrupt("program definition", "neither or both of valid_days and expires_on")),
    };
    Ok(AllowanceRules {
        validity,
        merchant_categories: definition.merchant_categories,
        excluded_merchant_categories: definition.excluded_merchant_categories,
        merchant_annual_revenue_max: definition.merchant_annual_revenue_max.map(db_won),
    })
}

fn budget_of(row: BudgetRow) -> ProgramBudget {
    ProgramBudget {
        funded: db_won(row.funded),
        granted: db_won(row.granted),
        spent: db_won(row.spent),
        returned: db_won(row.returned),
    }
}

fn record_of(row: ProgramRow) -> StoreResult<ProgramRecord> {
    Ok(ProgramRecord {
        id: ProgramId::parse(&row.program_id).map_err(|error| corrupt("program id", error))?,
        name: row.name,
        rules: rules_of(&row.definition)?,
        created_at: instant(row.created_at_ms)?,
        budget: budget_of(row.budget),
    })
}

/// Adds an allowance program with an empty budget.
pub fn insert(
    connection: &mut DbConn,
    id: &ProgramId,
    name: &str,
    rules: &AllowanceRules,
    created_at: DateTime<Utc>,
) -> StoreResult<()> {
    let row = (
        programs::program_id.eq(id.as_str()),
        programs::kind.eq("allowance"),
        programs::name.eq(name),
        programs::definition.eq(definition_of(rules)?),
        programs::created_at_ms.eq(millis(created_at)),
        programs::funded.eq(0i64),
        programs::granted.eq(0i64),
        programs::spent.eq(0i64),
        programs::returned.eq(0i64),
    );
    upsert!(connection, diesel::insert_into(programs::table).values(row))?;
    Ok(())
}

/// The kind of the rows this module reads: charge bonus programs are `charge_bonuses.rs`'s.
const ALLOWANCE: &str = "allowance";

/// Every allowance program, oldest first (at most [`PROGRAMS_LISTED_MAX`]).
pub fn list(connection: &mut DbConn) -> StoreResult<Vec<ProgramRecord>> {
    let rows: Vec<ProgramRow> = programs::table
        .filter(programs::kind.eq(ALLOWANCE))
        .order((programs::created_at_ms, programs::program_id))
        .limit(PROGRAMS_LISTED_MAX)
        .select(ProgramRow::as_select())
        .load(connection)?;
    rows.into_iter().map(record_of).collect()
}

pub fn get(connection: &mut DbConn, id: &str) -> StoreResult<Option<ProgramRecord>> {
    let rows: Vec<ProgramRow> = programs::table
        .filter(programs::program_id.eq(id))
        .filter(programs::kind.eq(ALLOWANCE))
        .select(ProgramRow::as_select())
        .load(connection)?;
    rows.into_iter().next().map(record_of).transpose()
}

/// Which of the programs `ids` exist.
pub fn existing(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(programs::table.filter(programs::program_id.eq_any(ids)).select(programs::program_id).load(connection)?)
}

/// Up to `limit` programs after `after` (by id): pages of a handover export, which carries every
/// program however many there are.
pub fn page(connection: &mut DbConn, after: &str, limit: i64) -> StoreResult<Vec<ProgramRecord>> {
    let rows: Vec<ProgramRow> = programs::table
        .filter(programs::kind.eq(ALLOWANCE))
        .filter(programs::program_id.gt(after))
        .order(programs::program_id)
        .limit(limit)
        .select(ProgramRow::as_select())
        .load(connection)?;
    rows.into_iter().map(record_of).collect()
}

/// The programs `ids` for the ledger, locked on PostgreSQL.
pub fn load_programs(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<(ProgramId, ProgramState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<LoadedProgramRow> = load_keyed!(
        connection,
        programs::table.filter(programs::kind.eq(ALLOWANCE)).select(LoadedProgramRow::as_select()),
        programs::program_id,
        ids
    )?;
    rows.into_iter()
        .map(|row| {
            let id = ProgramId::parse(&row.program_id).map_err(|error| corrupt("program id", error))?;
            Ok((id, ProgramState { rules: rules_of(&row.definition)?, budget: budget_of(row.budget) }))
        })
        .collect()
}

/// Writes the batch's changed budgets (a program's rules never change after creation).
pub fn save(connection: &mut DbConn, changed: &[(ProgramId, ProgramState)]) -> StoreResult<()> {
    for (id, program) in changed {
        let budget = program.budget;
        let updated = diesel::update(programs::table.filter(programs::program_id.eq(id.as_str())))
            .set((
                programs::funded.eq(won_to_db(budget.funded)?),
                programs::granted.eq(won_to_db(budget.granted)?),
                programs::spent.eq(won_to_db(budget.spent)?),
                programs::returned.eq(won_to_db(budget.returned)?),
            ))
            .execute(connection)?;
        expect_rows("program budget", updated, 1)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
}

/// The sum of every program's remaining budget (the `program_budget` accounts), in whole won:
/// an allowance program's `funded - granted + returned`, a charge bonus program's cohorts'
/// shares less what they paid out.
pub fn remaining_sum(connection: &mut DbConn) -> StoreResult<i64> {
    let total: Total = diesel::sql_query(
        "SELECT CAST(COALESCE((SELECT SUM(funded - granted + returned) FROM programs), 0) \
         + COALESCE((SELECT SUM(share - paid_out) FROM program_cohorts), 0) AS BIGINT) AS total",
    )
    .get_result(connection)?;
    Ok(total.total)
}
