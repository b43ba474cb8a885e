//! Queries that only read: the citizen's history, a merchant's sales, the trial balance, the
//! settlement file, the idempotency records the writer consults, and the figures of the
//! admin status page.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use wallet_core::{AccountKind, Won};

use super::fixed::Bind;
use super::schema::*;
use super::{ledger, DbConn, StoreResult};

#[derive(QueryableByName)]
pub struct HistoryRow {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub item_id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = BigInt)]
    pub balance_after: i64,
    #[diesel(sql_type = BigInt)]
    pub at_ms: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub counterparty: Option<String>,
}

/// Up to `limit` items of a wallet's history older than the item `before_seq`, newest first.
///
/// The history is a chain from the wallet's newest item (`wallets.history_head`, each item's
/// `prev_seq`; store/ledger.rs `save_history` says why), followed by one recursive query that
/// stops as soon as it has `limit` rows. A cursor that is an item of this wallet (what the
/// previous page gave) goes on from the item before it; any other only bounds the seqs, walked
/// from the newest item.
pub fn history_page(
    connection: &mut DbConn,
    wallet_id: &str,
    before_seq: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<HistoryRow>> {
    let head: Option<i64> = wallets::table
        .filter(wallets::wallet_id.eq(wallet_id))
        .select(wallets::history_head)
        .load::<Option<i64>>(connection)?
        .into_iter()
        .next()
        .flatten();
    let start = match before_seq {
        None => head,
        Some(before) => {
            let cursor: Option<HistoryLinkRow> = history::table
                .filter(history::seq.eq(before))
                .select(HistoryLinkRow::as_select())
                .load(connection)?
                .into_iter()
                .next();
            match cursor {
                Some(cursor) if cursor.wallet_id == wallet_id => cursor.prev_seq,
                _ => head,
            }
        }
    };
    let Some(start) = start else { return Ok(Vec::new()) };
    let before = before_seq.unwrap_or(i64::MAX);
    Ok(match connection {
        DbConn::Sqlite(sqlite) => diesel::sql_query(history_chain_sql("?1", "?2", "?3"))
            .bind::<BigInt, _>(start)
            .bind::<BigInt, _>(before)
            .bind::<BigInt, _>(limit)
            .load::<HistoryRow>(sqlite)?,
        DbConn::Pg(pg) => diesel::sql_query(history_chain_sql("$1", "$2", "$3"))
            .bind::<BigInt, _>(start)
            .bind::<BigInt, _>(before)
            .bind::<BigInt, _>(limit)
            .load::<HistoryRow>(pg)?,
    })
}

/// Where a history item sits in its wallet's chain.
#[derive(Queryable, Selectable)]
#[diesel(table_name = history, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct HistoryLinkRow {
    wallet_id: String,
    prev_seq: Option<i64>,
}

/// The chain of history items from the seq `start`, older ones next, those below the seq
/// `before`, at most `limit` of them, newest first. The walk stops once it has `limit` items
/// below `before` (`taken` counts them), so a page reads about `limit` rows however long the
/// history, and the final sort only orders those.
fn history_chain_sql(start: &str, before: &str, limit: &str) -> String {
    format!(
        "WITH RECURSIVE chain AS ( \
             SELECT seq, prev_seq, item_id, kind, amount, balance_after, at_ms, counterparty, \
                 CASE WHEN seq < {before} THEN 1 ELSE 0 END AS taken \
             FROM history WHERE seq = {start} \
             UNION ALL \
             SELECT h.seq, h.prev_seq, h.item_id, h.kind, h.amount, h.balance_after, h.at_ms, h.counterparty, \
                 chain.taken + CASE WHEN h.seq < {before} THEN 1 ELSE 0 END \
             FROM history AS h JOIN chain ON h.seq = chain.prev_seq \
             WHERE chain.taken < {limit} \
         ) \
         SELECT seq, item_id, kind, amount, balance_after, at_ms, counterparty FROM chain \
         WHERE seq < {before} ORDER BY seq DESC LIMIT {limit}"
    )
}

/// Sales of a date, of one merchant or summed over all: payments and refunds, counted and in won.
#[derive(Queryable, Selectable, QueryableByName, Default, Debug, Clone, Copy, PartialEq, Eq)]
#[diesel(table_name = daily_sales, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SalesCounts {
    pub payments_count: i64,
    pub payments_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
}

/// One merchant's sales row for a date.
pub fn merchant_sales(
    connection: &mut DbConn,
    merchant_id: &str,
    business_date: &str,
) -> StoreResult<Option<SalesCounts>> {
    Ok(daily_sales::table
        .filter(daily_sales::merchant_id.eq(merchant_id))
        .filter(daily_sales::business_date.eq(business_date))
        .select(SalesCounts::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// Sum of all wallet balances and of all merchant receivables, in whole won.
pub fn account_sums(connection: &mut DbConn) -> StoreResult<(i64, i64)> {
    // PostgreSQL's SUM(BIGINT) is NUMERIC; the cast makes one query serve both backends.
    let wallets: Total = diesel::sql_query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS total FROM wallets")
        .get_result(connection)?;
    let merchants: Total =
        diesel::sql_query("SELECT CAST(COALESCE(SUM(receivable), 0) AS BIGINT) AS total FROM merchants")
            .get_result(connection)?;
    Ok((wallets.total, merchants.total))
}

/// The balance of every account kind: wallets and receivables summed, the rest from the city
/// row. Run it in one transaction so that the figures are of one instant.
pub fn account_balances(connection: &mut DbConn) -> StoreResult<[(AccountKind, Won); 7]> {
    let (_, budget, system) = ledger::load_state(connection, false)?;
    let (wallets, merchants) = account_sums(connection)?;
    Ok([
        (AccountKind::CitizenWallet, ledger::won(wallets)),
        (AccountKind::MerchantReceivable, ledger::won(merchants)),
        (AccountKind::CashbackBudget, budget.remaining()),
        (AccountKind::BankClearing, system.bank_clearing),
        (AccountKind::SettlementPayouts, system.settlement_payouts),
        (AccountKind::FeeIncome, system.fee_income),
        (AccountKind::HandoverOpening, system.handover_opening),
    ])
}

/// All merchants' sales of one business date summed. Reads one index range: the merchants with
/// sales that day.
pub fn day_sales(connection: &mut DbConn, business_date: &str) -> StoreResult<SalesCounts> {
    // PostgreSQL's SUM(BIGINT) is NUMERIC; the casts make one query serve both backends.
    let sums: SalesCounts = diesel::sql_query(
        "SELECT CAST(COALESCE(SUM(payments_count), 0) AS BIGINT) AS payments_count, \
         CAST(COALESCE(SUM(payments_amount), 0) AS BIGINT) AS payments_amount, \
         CAST(COALESCE(SUM(refunds_count), 0) AS BIGINT) AS refunds_count, \
         CAST(COALESCE(SUM(refunds_amount), 0) AS BIGINT) AS refunds_amount \
         FROM daily_sales WHERE business_date = $1",
    )
    .bind::<diesel::sql_types::Text, _>(business_date)
    .get_result(connection)?;
    Ok(sums)
}

/// A closed business date with its totals.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = settlements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ClosedDateRow {
    pub business_date: String,
    pub total_net_payable: i64,
    pub total_fee: i64,
    pub closed_at_ms: i64,
}

/// The last business date closed.
pub fn last_settlement(connection: &mut DbConn) -> StoreResult<Option<ClosedDateRow>> {
    Ok(settlements::table
        .order(settlements::business_date.desc())
        .select(ClosedDateRow::as_select())
        .first(connection)
        .optional()?)
}

/// The oldest of `dates` (`YYYY-MM-DD`, oldest first) that had payments or refunds and is not
/// closed: two lookups by key a date, so the status page costs the same in a city of any size.
pub fn oldest_open_date_with_activity(connection: &mut DbConn, dates: &[String]) -> StoreResult<Option<String>> {
    for date in dates {
        let active: Option<String> = daily_sales::table
            .filter(daily_sales::business_date.eq(date))
            .select(daily_sales::business_date)
            .first(connection)
            .optional()?;
        if active.is_none() {
            continue;
        }
        let closed: Option<String> = settlements::table
            .filter(settlements::business_date.eq(date))
            .select(settlements::business_date)
            .first(connection)
            .optional()?;
        if closed.is_none() {
            return Ok(Some(date.clone()));
        }
    }
    Ok(None)
}

/// A closed business date with its totals and the number of merchants settled.
pub struct ClosedDate {
    pub closed: ClosedDateRow,
    pub merchants: i64,
}

/// The dates closed from `from` through `to` (`YYYY-MM-DD`), oldest first, with their totals.
pub fn closed_dates(connection: &mut DbConn, from: &str, to: &str) -> StoreResult<Vec<ClosedDate>> {
    let closed: Vec<ClosedDateRow> = settlements::table
        .filter(settlements::business_date.ge(from))
        .filter(settlements::business_date.le(to))
        .order(settlements::business_date.asc())
        .select(ClosedDateRow::as_select())
        .load(connection)?;
    let mut dates = Vec::with_capacity(closed.len());
    for closed in closed {
        let merchants: i64 = settlement_lines::table
            .filter(settlement_lines::business_date.eq(&closed.business_date))
            .count()
            .get_result(connection)?;
        dates.push(ClosedDate { closed, merchants });
    }
    Ok(dates)
}

/// Takes, until the transaction ends, a lock on each `(principal_id, key)` of a batch, in one
/// order, on PostgreSQL; a no-op on SQLite, where `BEGIN IMMEDIATE` already holds the one write
/// lock. Why: with two servers on one database, both could find no answer stored for a key,
/// both apply the request, and the later commit failed on the key's unique index, taking its
/// whole batch (other citizens' requests) with it. With the lock, the second server's batch waits
/// for the first's commit and then finds its answer, as a retry would. Locks are taken in
/// ascending order before any row lock, so two batches cannot deadlock on them.
pub fn lock_idempotency_keys(connection: &mut DbConn, pairs: &[(&str, &str)]) -> StoreResult<()> {
    use sha2::{Digest, Sha256};
    let DbConn::Pg(pg) = connection else { return Ok(()) };
    if pairs.is_empty() {
        return Ok(());
    }
    let mut locks: Vec<i64> = pairs
        .iter()
        .map(|(principal, key)| {
            let digest = Sha256::new().chain_update(principal).chain_update([0]).chain_update(key).finalize();
            i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
        })
        .collect();
    locks.sort_unstable();
    locks.dedup();
    diesel::sql_query("SELECT pg_advisory_xact_lock(lock) FROM unnest($1::bigint[]) AS lock")
        .bind::<diesel::sql_types::Array<BigInt>, _>(&locks)
        .execute(pg)?;
    Ok(())
}

/// A stored idempotent answer.
#[derive(Queryable, Selectable)]
#[diesel(table_name = idempotency, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct StoredAnswer {
    pub principal_id: String,
    pub idem_key: String,
    pub request_hash: String,
    pub status: i32,
    pub body: String,
    pub created_at_ms: i64,
}

/// The stored answers of a batch's `(principal_id, key)` pairs, in one query: the rows whose
/// key is among the keys and whose principal is among the principals, then only the exact pairs.
pub fn idempotent_answers(
    connection: &mut DbConn,
    pairs: &[(&str, &str)],
) -> StoreResult<HashMap<(String, String), StoredAnswer>> {
    let mut found = HashMap::new();
    if pairs.is_empty() {
        return Ok(found);
    }
    let wanted: HashSet<(&str, &str)> = pairs.iter().copied().collect();
    let mut rows: Vec<StoredAnswer> = Vec::new();
    if let DbConn::Sqlite(sqlite) = connection {
        // One kept-prepared lookup a pair (an `IN` list is prepared anew for every length).
        for (principal, key) in &wanted {
            rows.extend(
                idempotency::table
                    .filter(idempotency::principal_id.eq(*principal))
                    .filter(idempotency::idem_key.eq(*key))
                    .select(StoredAnswer::as_select())
                    .load(sqlite)?,
            );
        }
    } else {
        // One round trip on PostgreSQL; the pairs are picked out of the rows below.
        let principals: BTreeSet<&str> = pairs.iter().map(|(principal, _)| *principal).collect();
        let keys: BTreeSet<&str> = pairs.iter().map(|(_, key)| *key).collect();
        rows = idempotency::table
            .filter(idempotency::idem_key.eq_any(keys))
            .filter(idempotency::principal_id.eq_any(principals))
            .select(StoredAnswer::as_select())
            .load(connection)?;
    }
    for row in rows {
        if wanted.contains(&(row.principal_id.as_str(), row.idem_key.as_str())) {
            found.insert((row.principal_id.clone(), row.idem_key.clone()), row);
        }
    }
    Ok(found)
}

/// An answer to store under its Idempotency-Key.
pub struct NewAnswer<'a> {
    pub principal_id: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub status: u16,
    pub body: String,
}

/// Stores a batch's answers (`insert_fixed_rows!`: a few hundred rows a statement on PostgreSQL,
/// one kept-prepared statement a row on SQLite: the keys are random, see `SqliteRows::One`).
pub fn save_idempotent_answers(connection: &mut DbConn, answers: &[NewAnswer<'_>], now_ms: i64) -> StoreResult<()> {
    let mut values = Vec::with_capacity(answers.len() * 6);
    for answer in answers {
        values.extend([
            Bind::Text(answer.principal_id),
            Bind::Text(answer.key),
            Bind::Text(answer.request_hash),
            Bind::BigInt(i64::from(answer.status)),
            Bind::Text(&answer.body),
            Bind::BigInt(now_ms),
        ]);
    }
    insert_fixed_rows!(
        connection,
        "INSERT INTO idempotency (principal_id, idem_key, request_hash, status, body, created_at_ms) VALUES ",
        6,
        &values,
        super::fixed::SqliteRows::One
    )?;
    Ok(())
}

/// One line of a closed date's settlement with the merchant's identity: the settlement file's row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = settlement_lines, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SettlementRow {
    pub merchant_id: String,
    #[diesel(select_expression = merchants::name)]
    pub name: String,
    #[diesel(select_expression = merchants::business_number)]
    pub business_number: String,
    #[diesel(select_expression = merchants::bank_account)]
    pub bank_account: String,
    pub payments_count: i64,
    pub payments_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
    pub fee: i64,
    pub carried_in: i64,
    pub net_payable: i64,
}

/// Up to `limit` settlement rows of `business_date` after merchant `after`, in merchant id order:
/// pages of the settlement file, so a city's file is never held in memory whole.
pub fn settlement_rows(
    connection: &mut DbConn,
    business_date: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<SettlementRow>> {
    Ok(settlement_lines::table
        .inner_join(merchants::table.on(merchants::merchant_id.eq(settlement_lines::merchant_id)))
        .filter(settlement_lines::business_date.eq(business_date))
        .filter(settlement_lines::merchant_id.gt(after.unwrap_or("")))
        .order(settlement_lines::merchant_id)
        .limit(limit)
        .select(SettlementRow::as_select())
        .load(connection)?)
}

/// A closed date's totals.
#[derive(Queryable, Selectable, Debug, Clone, Copy)]
#[diesel(table_name = settlements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SettlementTotals {
    pub total_net_payable: i64,
    pub total_fee: i64,
}

/// A closed date's totals, or `None` if it is not closed.
pub fn settlement_totals(connection: &mut DbConn, business_date: &str) -> StoreResult<Option<SettlementTotals>> {
    Ok(settlements::table
        .filter(settlements::business_date.eq(business_date))
        .select(SettlementTotals::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

#[cfg(test)]
mod history_chain_tests {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;
    use wallet_core::{HistoryItem, HistoryKind, TxId, WalletId, Won};

    use super::*;

    const ALICE: &str = "00000000-0000-4000-8000-00000000000a";
    const BOB: &str = "00000000-0000-4000-8000-00000000000b";

    /// A fresh in-memory database with every migration before `stop_before` (all when None).
    fn database(stop_before: Option<&str>) -> diesel::SqliteConnection {
        let mut sqlite = diesel::SqliteConnection::establish(":memory:").unwrap();
        sqlite.batch_execute("PRAGMA foreign_keys = ON;").unwrap();
        loop {
            let pending = sqlite.pending_migrations(super::super::SQLITE_MIGRATIONS).unwrap();
            let Some(next) = pending.first() else { break };
            if stop_before.is_some_and(|name| next.name().to_string().contains(name)) {
                break;
            }
            sqlite.run_migration(next.as_ref()).unwrap();
        }
        for (citizen, wallet) in [("ca", ALICE), ("cb", BOB)] {
            sqlite
                .batch_execute(&format!(
                    "INSERT INTO principals (principal_id, login, role, password_hash, created_at_ms) VALUES ('{citizen}', '{citizen}', 'citizen', '', 0); \
                     INSERT INTO wallets (wallet_id, citizen_id, balance, month, charged, eligible_spent, cashback_earned) \
                     VALUES ('{wallet}', '{citizen}', 0, '2026-11', 0, 0, 0);"
                ))
                .unwrap();
        }
        sqlite
    }

    fn item(n: i64, wallet: &str) -> HistoryItem {
        HistoryItem {
            id: TxId::parse(&format!("00000000-0000-7000-8000-{n:012}")).unwrap(),
            wallet: WalletId::parse(wallet).unwrap(),
            kind: HistoryKind::Charge,
            amount: Won::from_i64(n),
            balance_after: Won::from_i64(n),
            at: chrono::DateTime::from_timestamp_millis(n).unwrap(),
            counterparty: None,
            related: None,
        }
    }

    fn amounts(connection: &mut DbConn, wallet: &str, before: Option<i64>, limit: i64) -> (Vec<i64>, Option<i64>) {
        let rows = history_page(connection, wallet, before, limit).unwrap();
        (rows.iter().map(|row| row.amount).collect(), rows.last().map(|row| row.seq))
    }

    #[test]
    fn pages_follow_each_wallets_chain_newest_first_across_writes() {
        let mut connection = DbConn::Sqlite(database(None));
        // Interleaved wallets, two writes: each chain must skip the other's items and join up
        // across the writes.
        let first: Vec<HistoryItem> = [(1, ALICE), (2, BOB), (3, ALICE), (4, ALICE)].map(|(n, w)| item(n, w)).into();
        ledger::save_history(&mut connection, &first).unwrap();
        ledger::save_history(&mut connection, &[item(5, BOB), item(6, ALICE)]).unwrap();
        assert_eq!(amounts(&mut connection, ALICE, None, 50).0, vec![6, 4, 3, 1]);
        assert_eq!(amounts(&mut connection, BOB, None, 50).0, vec![5, 2]);
        // Paging with the last seq of each page as the cursor.
        let (page, cursor) = amounts(&mut connection, ALICE, None, 3);
        assert_eq!(page, vec![6, 4, 3]);
        assert_eq!(amounts(&mut connection, ALICE, cursor, 3).0, vec![1]);
        // Bob's cursor on alice's history bounds the seqs only: alice's items older than it.
        let (_, bobs_newest) = amounts(&mut connection, BOB, None, 1);
        assert_eq!(amounts(&mut connection, ALICE, bobs_newest, 50).0, vec![4, 3, 1]);
        // A cursor of no item at all: the same bound.
        assert_eq!(amounts(&mut connection, ALICE, Some(3), 50).0, vec![1]);
        assert_eq!(amounts(&mut connection, ALICE, Some(1), 50).0, Vec::<i64>::new());
        // A wallet without history.
        connection
            .batch_execute(
                "INSERT INTO principals (principal_id, login, role, password_hash, created_at_ms) VALUES ('cc', 'cc', 'citizen', '', 0); \
                 INSERT INTO wallets (wallet_id, citizen_id, balance, month, charged, eligible_spent, cashback_earned) \
                 VALUES ('c0000000-0000-4000-8000-00000000000c', 'cc', 0, '2026-11', 0, 0, 0);",
            )
            .unwrap();
        assert!(history_page(&mut connection, "c0000000-0000-4000-8000-00000000000c", None, 50).unwrap().is_empty());
    }

    #[test]
    fn history_of_a_wallet_that_is_not_here_is_refused_and_writes_nothing() {
        let mut connection = DbConn::Sqlite(database(None));
        let stranger = "00000000-0000-4000-8000-0000000000ff";
        assert!(ledger::save_history(&mut connection, &[item(1, ALICE), item(2, stranger)]).is_err());
        assert!(history_page(&mut connection, ALICE, None, 50).unwrap().is_empty());
    }

    #[test]
    fn the_migration_links_the_history_already_there() {
        let mut sqlite = database(Some("history_chain"));
        sqlite
            .batch_execute(&format!(
                "INSERT INTO history (item_id, wallet_id, kind, amount, balance_after, at_ms) VALUES \
                 ('i1', '{ALICE}', 'charge', 1, 1, 1), ('i2', '{BOB}', 'charge', 2, 2, 2), \
                 ('i3', '{ALICE}', 'charge', 3, 3, 3), ('i4', '{BOB}', 'charge', 4, 4, 4);"
            ))
            .unwrap();
        sqlite.run_pending_migrations(super::super::SQLITE_MIGRATIONS).unwrap();
        let mut connection = DbConn::Sqlite(sqlite);
        assert_eq!(amounts(&mut connection, ALICE, None, 50).0, vec![3, 1]);
        assert_eq!(amounts(&mut connection, BOB, None, 50).0, vec![4, 2]);
        // New items go on from the migrated heads.
        ledger::save_history(&mut connection, &[item(5, ALICE)]).unwrap();
        assert_eq!(amounts(&mut connection, ALICE, None, 50).0, vec![5, 3, 1]);
    }
}
