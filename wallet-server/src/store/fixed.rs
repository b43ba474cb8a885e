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

    fn walk<'b, DB>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()>
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
        let mut parts = S::SQL.split('?');
        let mut binds = self.binds.iter();
        out.push_sql(parts.next().unwrap_or_default());
        for part in parts {
            match binds.next() {
                Some(Bind::Text(value)) => out.push_bind_param::<Text, str>(value)?,
                Some(Bind::NullableText(value)) => out.push_bind_param::<Nullable<Text>, Option<&'a str>>(value)?,
                Some(Bind::BigInt(value)) => out.push_bind_param::<BigInt, i64>(value)?,
                Some(Bind::NullableBigInt(value)) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(value)?,
                Some(Bind::Bool(value)) => out.push_bind_param::<Bool, bool>(value)?,
                None => return Err(mismatch(S::SQL, self.binds.len())),
            }
            out.push_sql(part);
        }
        if binds.next().is_some() {
            return Err(mismatch(S::SQL, self.binds.len()));
        }
        Ok(())
    }
}

fn mismatch(sql: &str, binds: usize) -> DieselError {
    DieselError::QueryBuilderError(format!("{binds} values for the placeholders of `{sql}`").into())
}

impl<S: Sql> QueryFragment<Sqlite> for Fixed<'_, S> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.walk(out)
    }

    fn is_safe_to_cache_prepared(&self, _: &Sqlite) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<S: Sql> QueryFragment<Pg> for Fixed<'_, S> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.walk(out)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
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

    #[test]
    fn binds_each_value_in_order_and_prepares_each_text_once() {
        let mut sqlite = table();
        let prepared = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = prepared.clone();
        sqlite.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        let mut connection = super::super::DbConn::Sqlite(sqlite);
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
