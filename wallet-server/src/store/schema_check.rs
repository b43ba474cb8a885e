//! `schema.rs` held to the migrations, as CI runs it (`cargo test`): the migrations are applied to
//! a fresh database and each table's columns (name, order, type, nullability) and primary key
//! compared with what `schema.rs` declares. On SQLite always (an in-memory database, a fraction
//! of a second); on PostgreSQL too when `WALLET_TEST_POSTGRES_URL` is set (a schema of its own,
//! dropped afterwards).
//!
//! Why not run `diesel print-schema` here: installing diesel_cli takes minutes of CI's time. The
//! type rules below are print-schema's for SQLite (diesel_cli's `determine_column_type`), plus
//! the one adjustment `schema.patch` makes (a rowid key is BigInt), so `scripts/print-schema`
//! and this check agree; the PostgreSQL half checks that the one file fits both backends.

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_migrations::MigrationHarness;

/// A column as `schema.rs` declares it, or as a migrated database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// diesel's SQL type: `BigInt`, `Integer`, `Text`, `Bool`.
    sql_type: String,
    nullable: bool,
}

/// A table: its columns in order, and its primary key's columns in key order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: Vec<Column>,
    primary_key: Vec<String>,
}

/// The tables of `schema.rs` by name, read from its text (the `diesel::table!` blocks as
/// print-schema writes them). A line it cannot read fails the test, naming the line.
fn declared() -> BTreeMap<String, Table> {
    let text = include_str!("schema.rs");
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, Table)> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        match &mut current {
            None => {
                let Some(head) = line.strip_prefix("    ").filter(|head| !head.starts_with(' ')) else { continue };
                let Some((name, rest)) = head.split_once(" (") else { continue };
                let key = rest.strip_suffix(") {").unwrap_or_else(|| panic!("schema.rs: cannot read `{line}`"));
                let primary_key = key.split(',').map(|column| column.trim().to_owned()).collect();
                current = Some((name.to_owned(), Table { columns: Vec::new(), primary_key }));
            }
            Some((name, table)) => {
                if trimmed == "}" {
                    let (name, table) = (std::mem::take(name), std::mem::take(table));
                    current = None;
                    assert!(tables.insert(name.clone(), table).is_none(), "schema.rs: table {name} twice");
                    continue;
                }
                let (column, sql_type) = trimmed
                    .strip_suffix(',')
                    .and_then(|column| column.split_once(" -> "))
                    .unwrap_or_else(|| panic!("schema.rs: cannot read `{line}` in table {name}"));
                let (sql_type, nullable) = match sql_type.strip_prefix("Nullable<") {
                    Some(inner) => (inner.strip_suffix('>').expect("Nullable<…> closes"), true),
                    None => (sql_type, false),
                };
                table.columns.push(Column { name: column.to_owned(), sql_type: sql_type.to_owned(), nullable });
            }
        }
    }
    assert!(current.is_none(), "schema.rs: the last table! block is not closed");
    tables
}

/// The SQL type print-schema gives a SQLite column declared `declared` (diesel_cli's rules, for
/// the types the migrations use), with `schema.patch`'s adjustment: an `INTEGER PRIMARY KEY
/// AUTOINCREMENT` column is the table's rowid, 64 bits in SQLite, and BIGSERIAL on PostgreSQL.
fn sqlite_type(declared: &str, rowid_key: bool) -> String {
    let declared = declared.to_lowercase();
    let sql_type = if declared == "boolean" || declared == "bool" {
        "Bool"
    } else if declared == "bigint" {
        "BigInt"
    } else if declared.contains("int") {
        if rowid_key {
            "BigInt"
        } else {
            "Integer"
        }
    } else if declared.contains("char") || declared.contains("clob") || declared.contains("text") {
        "Text"
    } else {
        panic!("a migration declares a SQLite column `{declared}`: teach schema_check (and the patch) its type")
    };
    sql_type.to_owned()
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text, column_name = "type")]
    declared: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct SqliteTable {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

/// The tables of a fresh SQLite database with every migration applied.
fn sqlite_tables() -> BTreeMap<String, Table> {
    let mut sqlite = diesel::SqliteConnection::establish(":memory:").expect("an in-memory SQLite database");
    sqlite.run_pending_migrations(super::SQLITE_MIGRATIONS).expect("the SQLite migrations apply");
    let names: Vec<SqliteTable> = diesel::sql_query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load(&mut sqlite)
    .expect("the table list");
    let mut tables = BTreeMap::new();
    for SqliteTable { name, sql } in names {
        let rows: Vec<SqliteColumn> =
            diesel::sql_query(format!("PRAGMA table_info('{name}')")).load(&mut sqlite).expect("table_info");
        let mut key: Vec<(i32, String)> =
            rows.iter().filter(|row| row.pk > 0).map(|row| (row.pk, row.name.clone())).collect();
        key.sort();
        let autoincrement = sql.to_uppercase().contains("AUTOINCREMENT");
        let columns = rows
            .iter()
            .map(|row| Column {
                name: row.name.clone(),
                sql_type: sqlite_type(&row.declared, autoincrement && row.pk > 0 && key.len() == 1),
                nullable: row.notnull == 0,
            })
            .collect();
        tables.insert(name, Table { columns, primary_key: key.into_iter().map(|(_, column)| column).collect() });
    }
    tables
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    key_position: Option<i64>,
}

/// The tables of a fresh PostgreSQL schema with every migration applied, in the cluster of
/// `url`; the schema is dropped again, whatever happens.
fn postgres_tables(url: &str) -> BTreeMap<String, Table> {
    struct Dropped(diesel::PgConnection, String);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
        }
    }
    let pg = diesel::PgConnection::establish(url).expect("WALLET_TEST_POSTGRES_URL connects");
    let schema = format!("schema_check_{}", uuid::Uuid::new_v4().simple());
    let mut guard = Dropped(pg, schema.clone());
    let pg = &mut guard.0;
    pg.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema};")).expect("a schema of its own");
    pg.run_pending_migrations(super::POSTGRES_MIGRATIONS).expect("the PostgreSQL migrations apply");
    let rows: Vec<PgColumn> = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
                c.data_type::text AS data_type, c.is_nullable::text AS is_nullable, \
                k.ordinal_position::bigint AS key_position \
         FROM information_schema.columns c \
         LEFT JOIN information_schema.table_constraints t \
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             AND t.constraint_type = 'PRIMARY KEY' \
         LEFT JOIN information_schema.key_column_usage k \
             ON k.constraint_schema = t.constraint_schema AND k.constraint_name = t.constraint_name \
             AND k.column_name = c.column_name \
         WHERE c.table_schema = $1 AND c.table_name <> '__diesel_schema_migrations' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .bind::<Text, _>(&schema)
    .load(pg)
    .expect("the columns of the migrated schema");
    let mut tables: BTreeMap<String, (Table, Vec<(i64, String)>)> = BTreeMap::new();
    for row in rows {
        let sql_type = match row.data_type.as_str() {
            "bigint" => "BigInt",
            "integer" => "Integer",
            "text" => "Text",
            "boolean" => "Bool",
            other => panic!("a migration declares a PostgreSQL column of type {other}: teach schema_check its type"),
        };
        let (table, key) = tables.entry(row.table_name).or_default();
        if let Some(position) = row.key_position {
            key.push((position, row.column_name.clone()));
        }
        table.columns.push(Column {
            name: row.column_name,
            sql_type: sql_type.to_owned(),
            nullable: row.is_nullable == "YES",
        });
    }
    tables
        .into_iter()
        .map(|(name, (mut table, mut key))| {
            key.sort();
            table.primary_key = key.into_iter().map(|(_, column)| column).collect();
            (name, table)
        })
        .collect()
}

/// Fails naming each table that differs, with both sides.
fn assert_same(backend: &str, migrated: &BTreeMap<String, Table>, declared: &BTreeMap<String, Table>) {
    let mut differences = Vec::new();
    for name in migrated.keys().chain(declared.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (migrated.get(name), declared.get(name)) {
            (Some(migrated), Some(declared)) if migrated == declared => {}
            (migrated, declared) => {
                differences.push(format!("table {name}:\n  migrations: {migrated:?}\n  schema.rs:  {declared:?}"))
            }
        }
    }
    assert!(
        differences.is_empty(),
        "schema.rs does not match the {backend} migrations; regenerate it with \
         `scripts/print-schema > wallet-server/src/store/schema.rs` (migrations/README.md):\n{}",
        differences.join("\n")
    );
}

#[test]
fn schema_rs_declares_what_the_sqlite_migrations_create() {
    let declared = declared();
    assert!(declared.len() >= 19, "schema.rs was read: {:?}", declared.keys());
    assert_same("SQLite", &sqlite_tables(), &declared);
}

/// The variable naming the test suite's PostgreSQL cluster (`scripts/pg-test-cluster`), as the
/// black-box tests read it. Spelled in two parts because it is the suite's variable, not the
/// server's: `config`'s test holds every whole `"WALLET_…"` literal under src/ to the server's
/// `wallet.env.example`.
const POSTGRES_URL_VARIABLE: &str = concat!("WALLET_", "TEST_POSTGRES_URL");

#[test]
fn schema_rs_declares_what_the_postgres_migrations_create() {
    let Some(url) = std::env::var(POSTGRES_URL_VARIABLE).ok().filter(|url| !url.is_empty()) else {
        if std::env::var_os("CI").is_some() {
            panic!("the PostgreSQL half of the schema check needs WALLET_TEST_POSTGRES_URL");
        }
        eprintln!("skipped: set WALLET_TEST_POSTGRES_URL (see scripts/pg-test-cluster) to check PostgreSQL");
        return;
    };
    assert_same("PostgreSQL", &postgres_tables(&url), &declared());
}
