//! Statements of fixed text that stay prepared on their connection.
//!
//! Why: diesel prepares its `UPDATE`s and upserts (`ON CONFLICT … DO UPDATE`) anew on every
//! run (it marks them unsafe to cache), and the ledger writer runs dozens of them per batch:
//! on SQLite, parsing and planning them was a tenth of the writer's time. A [`Fixed`] statement
//! is one text with `?` for each bound value, written with the `fixed!` macro (store/mod.rs),
//! which gives each text a type of its own: diesel keeps the statement prepared under that
//! type, on both backends (the placeholders are written in each backend's style, `?` or `$n`),
//! without building and hashing the text on every run.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{Error as DieselError, QueryResult};
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::RunQueryDsl;

/// Rows written by one multi-row `INSERT` at most: 500 rows of up to 11 columns stay well inside
/// the bound-parameter limits of SQLite (32,766) and PostgreSQL (65,535), and on PostgreSQL one
/// statement for hundreds of rows saves most of the round trips of a bulk write (a handover
/// import). The inserts of `insert_fixed_rows!` use it on PostgreSQL; so do the upserts of a handover.
pub const ROWS_PER_INSERT: usize = 500;

/// One bound value of a [`Fixed`] statement.
#[derive(Clone, Copy, Debug)]
pub enum Bind<'a> {
    Text(&'a str),
    NullableText(Option<&'a str>),
    BigInt(i64),
    NullableBigInt(Option<i64>),
    Bool(bool),
}

/// The text of one [`Fixed`] statement, a type per text (made by `fixed!`).
pub trait Sql: 'static {
    /// One `?` per bound value and no other `?`.
    const SQL: &'static str;
}

/// A statement of fixed text (`?` where a value is bound) with its values.
#[derive(Debug)]
pub struct Fixed<'a, S> {
    binds: Vec<Bind<'a>>,
    text: PhantomData<S>,
}

impl<'a, S: Sql> Fixed<'a, S> {
    /// The values must fit the text's placeholders (checked when it is run).
    pub fn new(binds: Vec<Bind<'a>>) -> Fixed<'a, S> {
        Fixed { binds, text: PhantomData }
    }
}

/// Binds one value of a [`Fixed`] or [`Rows`] statement.
fn push_bind<'a, 'b, DB>(out: &mut AstPass<'_, 'b, DB>, bind: &'b Bind<'a>) -> QueryResult<()>
where
    DB: Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Bool>,
    str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    bool: diesel::serialize::ToSql<Bool, DB>,
    Option<&'a str>: diesel::serialize::ToSql<Nullable<Text>, DB>,
    Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, DB>,
{
    match bind {
        Bind::Text(value) => out.push_bind_param::<Text, str>(value),
        Bind::NullableText(value) => out.push_bind_param::<Nullable<Text>, Option<&'a str>>(value),
        Bind::BigInt(value) => out.push_bind_param::<BigInt, i64>(value),
        Bind::NullableBigInt(value) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(value),
        Bind::Bool(value) => out.push_bind_param::<Bool, bool>(value),
    }
}

/// The `QueryFragment`s of [`Fixed`] and [`Rows`] for one backend (both of ours), written once
/// here and concrete per backend, so that only `push_bind` spells out what a backend must bind.
macro_rules! fragments_for {
    ($backend:ty) => {
        impl<'a, S: Sql> QueryFragment<$backend> for Fixed<'a, S> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $backend>) -> QueryResult<()> {
                let mut parts = S::SQL.split('?');
                let mut binds = self.binds.iter();
                out.push_sql(parts.next().unwrap_or_default());
                for part in parts {
                    match binds.next() {
                        Some(bind) => push_bind(&mut out, bind)?,
                        None => return Err(mismatch(S::SQL, self.binds.len())),
                    }
                    out.push_sql(part);
                }
                if binds.next().is_some() {
                    return Err(mismatch(S::SQL, self.binds.len()));
                }
                Ok(())
            }

            fn is_safe_to_cache_prepared(&self, _: &$backend) -> QueryResult<bool> {
                Ok(true)
            }
        }

        impl<'a, S: RowsSql, const N: usize> QueryFragment<$backend> for Rows<'a, S, N> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $backend>) -> QueryResult<()> {
                if N == 0 {
                    out.unsafe_to_cache_prepared();
                }
                out.push_sql(S::INTO);
                for (index, row) in self.values.chunks(S::COLUMNS).enumerate() {
                    out.push_sql(if index == 0 { "(" } else { ", (" });
                    for (column, value) in row.iter().enumerate() {
                        if column > 0 {
                            out.push_sql(", ");
                        }
                        push_bind(&mut out, value)?;
                    }
                    out.push_sql(")");
                }
                Ok(())
            }

            fn is_safe_to_cache_prepared(&self, _: &$backend) -> QueryResult<bool> {
                Ok(N > 0)
            }
        }
    };
}

fn mismatch(sql: &str, binds: usize) -> DieselError {
    DieselError::QueryBuilderError(format!("{binds} values for the placeholders of `{sql}`").into())
}

/// The text's type is the id: diesel keys its cache of prepared statements by it.
impl<S: Sql> QueryId for Fixed<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn, S> RunQueryDsl<Conn> for Fixed<'_, S> {}

/// Runs a [`Fixed`] statement on either backend; the number of rows it changed.
pub fn execute<S: Sql>(connection: &mut super::DbConn, statement: Fixed<'_, S>) -> QueryResult<usize> {
    match connection {
        super::DbConn::Sqlite(sqlite) => statement.execute(sqlite),
        super::DbConn::Pg(pg) => statement.execute(pg),
    }
}

/// The text of a [`Rows`] insert: `INSERT INTO t (a, b, …) VALUES ` and the number of columns.
pub trait RowsSql: 'static {
    const INTO: &'static str;
    const COLUMNS: usize;
}

/// Rows inserted by one statement: `values` holds [`RowsSql::COLUMNS`] values a row. With
/// `N` > 0 it is exactly `N` rows, and the text stays prepared (a type per text and `N`); with
/// `N` = 0 any number of rows, prepared for this run only.
///
/// Why: the writer inserts a few postings, history items and idempotency records per payment.
/// One diesel insert a row cost a statement step each and, in diesel, walking the row's whole
/// query tree three times (to bind it, to see whether it may be cached, to key the cache); a
/// statement of 32 rows does each of those once. On SQLite, a multi-row insert keeps a statement
/// journal, but of the few pages at the end of each table and index only, now that no index of
/// these tables is keyed at random by wallet.
pub struct Rows<'a, S, const N: usize> {
    values: &'a [Bind<'a>],
    text: PhantomData<S>,
}

impl<'a, S: RowsSql, const N: usize> Rows<'a, S, N> {
    fn new(values: &'a [Bind<'a>]) -> Rows<'a, S, N> {
        assert!(S::COLUMNS > 0 && values.len() % S::COLUMNS == 0, "whole rows of values");
        assert!(N == 0 || values.len() == N * S::COLUMNS, "exactly N rows");
        Rows { values, text: PhantomData }
    }
}

/// The text and the row count are the id.
impl<S: RowsSql, const N: usize> QueryId for Rows<'_, S, N> {
    type QueryId = (S, [(); N]);
    const HAS_STATIC_QUERY_ID: bool = N > 0;
}

impl<Conn, S, const N: usize> RunQueryDsl<Conn> for Rows<'_, S, N> {}

/// Rows kept prepared on SQLite: as many of this many rows as fit, then of the next size down.
const SQLITE_WIDE_ROWS: usize = 32;
const SQLITE_NARROW_ROWS: usize = 8;

/// How a table's rows go into SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteRows {
    /// Statements of 32, 8 and 1 rows: for tables whose indexes grow at their end (ids in time
    /// order), where a statement's journal holds a few pages.
    Many,
    /// One row a statement: for a table with an index keyed at random (idempotency keys), where
    /// each row touches a page of its own and a multi-row statement would journal every one of
    /// them first (measured: slower than one row at a time).
    One,
}

/// Inserts `values` ([`RowsSql::COLUMNS`] a row) into `S`'s table. On PostgreSQL, `per_statement`
/// rows a statement (a round trip each); on SQLite, kept-prepared statements shaped by
/// `sqlite`. A failing row fails the caller's transaction either way.
pub fn insert_rows<S: RowsSql>(
    connection: &mut super::DbConn,
    values: &[Bind<'_>],
    per_statement: usize,
    sqlite: SqliteRows,
) -> QueryResult<()> {
    let mut inserted = 0;
    match connection {
        super::DbConn::Pg(pg) => {
            for chunk in values.chunks(per_statement.max(1) * S::COLUMNS) {
                inserted += Rows::<S, 0>::new(chunk).execute(pg)?;
            }
        }
        super::DbConn::Sqlite(connection) => {
            let mut rest = values;
            while sqlite == SqliteRows::Many && rest.len() >= SQLITE_WIDE_ROWS * S::COLUMNS {
                let (chunk, tail) = rest.split_at(SQLITE_WIDE_ROWS * S::COLUMNS);
                inserted += Rows::<S, SQLITE_WIDE_ROWS>::new(chunk).execute(connection)?;
                rest = tail;
            }
            while sqlite == SqliteRows::Many && rest.len() >= SQLITE_NARROW_ROWS * S::COLUMNS {
                let (chunk, tail) = rest.split_at(SQLITE_NARROW_ROWS * S::COLUMNS);
                inserted += Rows::<S, SQLITE_NARROW_ROWS>::new(chunk).execute(connection)?;
                rest = tail;
            }
            for row in rest.chunks(S::COLUMNS) {
                inserted += Rows::<S, 1>::new(row).execute(connection)?;
            }
        }
    }
    let wanted = values.len() / S::COLUMNS;
    if inserted != wanted {
        return Err(DieselError::QueryBuilderError(format!("{inserted} rows inserted of {wanted}").into()));
    }
    Ok(())
}

fragments_for!(Sqlite);
fragments_for!(Pg);

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    fn table() -> diesel::SqliteConnection {
        let mut sqlite = diesel::SqliteConnection::establish(":memory:").unwrap();
        sqlite
            .batch_execute("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT NOT NULL, note TEXT, on_ BOOLEAN)")
            .unwrap();
        sqlite
    }

    /// [`table`] on a connection that notes the text of every statement it prepares and keeps.
    fn table_counting_preparations() -> (super::super::DbConn, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let mut sqlite = table();
        let prepared = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = prepared.clone();
        sqlite.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        (super::super::DbConn::Sqlite(sqlite), prepared)
    }

    #[test]
    fn binds_each_value_in_order_and_prepares_each_text_once() {
        let (mut connection, prepared) = table_counting_preparations();
        for (id, n) in [("a", 1), ("b", 2), ("c", 3)] {
            let insert = fixed!(
                "INSERT INTO t (id, n, note, on_) VALUES (?, ?, ?, ?)",
                vec![Bind::Text(id), Bind::BigInt(n), Bind::NullableText(None), Bind::Bool(true)],
            );
            assert_eq!(execute(&mut connection, insert).unwrap(), 1);
        }
        for id in ["b", "c"] {
            let update = fixed!(
                "UPDATE t SET n = n + ?, note = ? WHERE id = ?",
                vec![Bind::BigInt(40), Bind::NullableText(Some("x")), Bind::Text(id)],
            );
            assert_eq!(execute(&mut connection, update).unwrap(), 1);
        }
        assert_eq!(
            prepared.lock().unwrap().len(),
            2,
            "one prepared statement per text: {:?}",
            prepared.lock().unwrap()
        );
        let super::super::DbConn::Sqlite(sqlite) = &mut connection else { unreachable!() };
        let rows: Vec<(String, i64, Option<String>)> = diesel::sql_query("SELECT id, n, note FROM t ORDER BY id")
            .load::<Row>(sqlite)
            .unwrap()
            .into_iter()
            .map(|row| (row.id, row.n, row.note))
            .collect();
        assert_eq!(
            rows,
            vec![("a".into(), 1, None), ("b".into(), 42, Some("x".into())), ("c".into(), 43, Some("x".into()))]
        );
    }

    #[test]
    fn a_count_of_values_that_does_not_fit_the_text_is_an_error_not_a_statement() {
        let mut connection = super::super::DbConn::Sqlite(table());
        let short = fixed!("UPDATE t SET n = ? WHERE id = ?", vec![Bind::BigInt(1)]);
        assert!(execute(&mut connection, short).is_err());
        let long = fixed!("UPDATE t SET n = ?", vec![Bind::BigInt(1), Bind::Text("a")]);
        assert!(execute(&mut connection, long).is_err());
    }

    #[test]
    fn rows_go_in_by_32_8_and_1_each_shape_prepared_once_or_one_by_one() {
        let (mut connection, prepared) = table_counting_preparations();
        struct Into;
        impl RowsSql for Into {
            const INTO: &'static str = "INSERT INTO t (id, n) VALUES ";
            const COLUMNS: usize = 2;
        }
        let ids: Vec<String> = (0..90).map(|n| format!("r{n:02}")).collect();
        let values = |range: std::ops::Range<usize>| -> Vec<Bind<'_>> {
            range.flat_map(|n| [Bind::Text(&ids[n]), Bind::BigInt(n as i64)]).collect()
        };
        // 45 rows: one statement of 32, one of 8, five of 1; again: nothing prepared anew.
        insert_rows::<Into>(&mut connection, &values(0..45), 500, SqliteRows::Many).unwrap();
        assert_eq!(prepared.lock().unwrap().len(), 3, "{:?}", prepared.lock().unwrap());
        assert!(prepared.lock().unwrap()[0].matches("(?, ?)").count() == 32);
        insert_rows::<Into>(&mut connection, &values(45..80), 500, SqliteRows::Many).unwrap();
        assert_eq!(prepared.lock().unwrap().len(), 3);
        // One by one: only the one-row shape, already prepared.
        insert_rows::<Into>(&mut connection, &values(80..90), 500, SqliteRows::One).unwrap();
        assert_eq!(prepared.lock().unwrap().len(), 3);
        let super::super::DbConn::Sqlite(sqlite) = &mut connection else { unreachable!() };
        let rows: Vec<(String, i64)> = diesel::sql_query("SELECT id, n, note FROM t ORDER BY id")
            .load::<Row>(sqlite)
            .unwrap()
            .into_iter()
            .map(|row| (row.id, row.n))
            .collect();
        assert_eq!(rows, (0..90).map(|n| (ids[n].clone(), n as i64)).collect::<Vec<_>>());
        // A duplicate key fails the insert (and with it the caller's transaction).
        assert!(insert_rows::<Into>(&mut connection, &values(3..4), 500, SqliteRows::Many).is_err());
    }

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Nullable<Text>)]
        note: Option<String>,
    }
}
