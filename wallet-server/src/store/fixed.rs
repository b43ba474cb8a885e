//! Statements of fixed text that stay prepared on their connection.
//!
//! Why: diesel prepares its `UPDATE`s and upserts (`ON CONFLICT … DO UPDATE`) anew on every
//! run (it marks them unsafe to cache), and the ledger writer runs dozens of them per batch:
//! on SQLite, parsing and planning them was a tenth of the writer's time. A [`Fixed`] statement
//! is one text with `?` for each bound value; diesel caches it by that text, on both backends
//! (the placeholders are written in each backend's style, `?` or `$n`).
//!
//! Only for statements whose text never changes with the data: the text is the cache key, so
//! a text built from values would fill the cache.

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
    Bool(bool),
}

/// A statement of fixed text (`?` where a value is bound) with its values.
#[derive(Debug)]
pub struct Fixed<'a> {
    sql: &'static str,
    binds: Vec<Bind<'a>>,
}

impl<'a> Fixed<'a> {
    /// `sql` must hold one `?` per value and no other `?` (checked when it is run).
    pub fn new(sql: &'static str, binds: Vec<Bind<'a>>) -> Fixed<'a> {
        Fixed { sql, binds }
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
    {
        let mut parts = self.sql.split('?');
        let mut binds = self.binds.iter();
        out.push_sql(parts.next().unwrap_or_default());
        for part in parts {
            match binds.next() {
                Some(Bind::Text(value)) => out.push_bind_param::<Text, str>(value)?,
                Some(Bind::NullableText(value)) => out.push_bind_param::<Nullable<Text>, Option<&'a str>>(value)?,
                Some(Bind::BigInt(value)) => out.push_bind_param::<BigInt, i64>(value)?,
                Some(Bind::Bool(value)) => out.push_bind_param::<Bool, bool>(value)?,
                None => return Err(mismatch(self.sql, self.binds.len())),
            }
            out.push_sql(part);
        }
        if binds.next().is_some() {
            return Err(mismatch(self.sql, self.binds.len()));
        }
        Ok(())
    }
}

fn mismatch(sql: &str, binds: usize) -> DieselError {
    DieselError::QueryBuilderError(format!("{binds} values for the placeholders of `{sql}`").into())
}

impl QueryFragment<Sqlite> for Fixed<'_> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.walk(out)
    }
}

impl QueryFragment<Pg> for Fixed<'_> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.walk(out)
    }
}

/// No static id: diesel then keys its cache by the statement's text and value types.
impl QueryId for Fixed<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Conn> RunQueryDsl<Conn> for Fixed<'_> {}

/// Runs a [`Fixed`] statement on either backend; the number of rows it changed.
pub fn execute(connection: &mut super::DbConn, statement: Fixed<'_>) -> QueryResult<usize> {
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
            let insert = Fixed::new(
                "INSERT INTO t (id, n, note, on_) VALUES (?, ?, ?, ?)",
                vec![Bind::Text(id), Bind::BigInt(n), Bind::NullableText(None), Bind::Bool(true)],
            );
            assert_eq!(execute(&mut connection, insert).unwrap(), 1);
        }
        for id in ["b", "c"] {
            let update = Fixed::new(
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
        let short = Fixed::new("UPDATE t SET n = ? WHERE id = ?", vec![Bind::BigInt(1)]);
        assert!(execute(&mut connection, short).is_err());
        let long = Fixed::new("UPDATE t SET n = ?", vec![Bind::BigInt(1), Bind::Text("a")]);
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
