//! The `history` table: what citizens see of their wallets, one item per movement. A wallet's
//! items form a chain, newest first ([`HistoryHeads`] says why), appended by the writer's
//! batches and a handover import and followed by the history pages; a handover export pages
//! all of it in the order written.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use wallet_core::HistoryItem;

use super::fixed::{self, Bind};
use super::money::won_to_db;
use super::schema::*;
use super::time::millis;
use super::wallets::{self, HistoryHeads};
use super::{corrupt, DbConn, StoreError, StoreResult};

/// Where each of `items` goes in its wallet's chain: (seq, prev_seq), in the order given. The
/// seqs are taken here, after the wallets were read (and on PostgreSQL locked) into `heads`, so
/// along one wallet's chain seqs only grow, even with two servers writing. An item of a wallet
/// not in `heads` is an error (nothing written).
pub fn chain_history(
    connection: &mut DbConn,
    items: &[HistoryItem],
    heads: &mut HistoryHeads,
) -> StoreResult<Vec<(i64, Option<i64>)>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(stranger) = items.iter().find(|item| !heads.0.contains_key(item.wallet.as_str())) {
        return Err(StoreError::Corrupt(format!("history for wallet {} that was not read first", stranger.wallet)));
    }
    let seqs = reserve_history_seqs(connection, items.len())?;
    let mut links = Vec::with_capacity(items.len());
    for (item, seq) in items.iter().zip(seqs) {
        let head = heads.0.get_mut(item.wallet.as_str()).expect("every item's wallet was checked above");
        if let Some(newest) = head.seq.filter(|&newest| newest >= seq) {
            // Not reachable while seqs are taken under the wallet's lock; fail the write rather
            // than link a chain out of order.
            return Err(StoreError::Corrupt(format!(
                "wallet {}: new history seq {seq} is not above its newest item's {newest}",
                item.wallet
            )));
        }
        links.push((seq, head.seq.replace(seq)));
        head.unwritten = true;
    }
    Ok(links)
}

/// Inserts `items` where [`chain_history`] put them (`links`, one per item) (`insert_fixed_rows!`:
/// a few hundred rows a statement on PostgreSQL, kept-prepared statements of 32, 8 and 1 rows on
/// SQLite).
pub fn insert_history(connection: &mut DbConn, items: &[HistoryItem], links: &[(i64, Option<i64>)]) -> StoreResult<()> {
    assert_eq!(items.len(), links.len(), "one chain link per history item");
    let mut values = Vec::with_capacity(items.len() * 10);
    for (item, &(seq, prev_seq)) in items.iter().zip(links) {
        let counterparty = item.counterparty.as_ref().map(|counterparty| match counterparty {
            wallet_core::Counterparty::Wallet(id) => id.as_str(),
            wallet_core::Counterparty::Merchant(id) => id.as_str(),
        });
        values.extend([
            Bind::BigInt(seq),
            Bind::NullableBigInt(prev_seq),
            Bind::Text(item.id.as_str()),
            Bind::Text(item.wallet.as_str()),
            Bind::Text(item.kind.as_str()),
            Bind::BigInt(won_to_db(item.amount)?),
            Bind::BigInt(won_to_db(item.balance_after)?),
            Bind::BigInt(millis(item.at)),
            Bind::NullableText(counterparty),
            Bind::NullableText(item.related.as_ref().map(|id| id.as_str())),
        ]);
    }
    insert_fixed_rows!(
        connection,
        "INSERT INTO history (seq, prev_seq, item_id, wallet_id, kind, amount, balance_after, at_ms, counterparty, \
         related_id) VALUES ",
        10,
        &values,
        fixed::SqliteRows::Many
    )?;
    Ok(())
}

/// Appends `items` to their wallets' history chains on its own: reads the heads, links, inserts,
/// and writes the moved heads (the handover import; the writer links before `changes::save`,
/// which writes the heads with the wallet rows).
pub fn save_history(connection: &mut DbConn, items: &[HistoryItem]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut wallet_ids: Vec<String> = items.iter().map(|item| item.wallet.as_str().to_owned()).collect();
    wallet_ids.sort_unstable();
    wallet_ids.dedup();
    let mut heads = HistoryHeads::default();
    wallets::load_history_heads(connection, &wallet_ids, &mut heads)?;
    let links = chain_history(connection, items, &mut heads)?;
    insert_history(connection, items, &links)?;
    wallets::save_history_heads(connection, &mut heads)
}

/// `count` new history seqs, ascending, that nobody else will use.
fn reserve_history_seqs(connection: &mut DbConn, count: usize) -> StoreResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let count = i64::try_from(count).map_err(|error| corrupt("history items in one write", error))?;
    match connection {
        DbConn::Sqlite(sqlite) => {
            // The write transaction (BEGIN IMMEDIATE) holds the database's one write lock, so
            // the seqs after the highest one here are free until it commits. (History rows are
            // never deleted, so AUTOINCREMENT would hand out the same ones.)
            let last: Option<i64> = history::table.select(diesel::dsl::max(history::seq)).first(sqlite)?;
            let last = last.unwrap_or(0);
            Ok((last + 1..=last + count).collect())
        }
        DbConn::Pg(pg) => {
            let mut seqs: Vec<i64> = diesel::sql_query(
                "SELECT nextval(pg_get_serial_sequence('history', 'seq')) AS seq FROM generate_series(1, $1)",
            )
            .bind::<BigInt, _>(count)
            .load::<Seq>(pg)?
            .into_iter()
            .map(|row| row.seq)
            .collect();
            seqs.sort_unstable();
            if seqs.len() as i64 != count {
                return Err(StoreError::Corrupt(format!("{} history seqs reserved of {count}", seqs.len())));
            }
            Ok(seqs)
        }
    }
}

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
/// `prev_seq`; [`HistoryHeads`] says why), followed by one recursive query that
/// stops as soon as it has `limit` rows. A cursor that is an item of this wallet (what the
/// previous page gave) goes on from the item before it; any other only bounds the seqs, walked
/// from the newest item.
pub fn history_page(
    connection: &mut DbConn,
    wallet_id: &str,
    before_seq: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<HistoryRow>> {
    let head = wallets::history_head(connection, wallet_id)?;
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

/// A history item as already here.
#[derive(Queryable, Selectable)]
#[diesel(table_name = history, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ExistingItem {
    pub item_id: String,
    pub kind: String,
    pub amount: i64,
    pub at_ms: i64,
    pub wallet_id: String,
}

/// History items already here among `ids`.
pub fn existing_items(connection: &mut DbConn, ids: &[String]) -> StoreResult<Vec<ExistingItem>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(history::table.filter(history::item_id.eq_any(ids)).select(ExistingItem::as_select()).load(connection)?)
}

/// One exported history item, with the payment's cashback when it is a payment.
#[derive(Queryable, Selectable)]
#[diesel(table_name = history, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct HistoryExport {
    pub seq: i64,
    pub item_id: String,
    pub at_ms: i64,
    pub kind: String,
    pub wallet_id: String,
    pub counterparty: Option<String>,
    pub amount: i64,
    pub related_id: Option<String>,
    #[diesel(
        select_expression = payments::cashback.nullable(),
        select_expression_type = diesel::dsl::Nullable<payments::cashback>
    )]
    pub payment_cashback: Option<i64>,
}

/// A page of history after `after_seq`, in the order it was written.
pub fn export_page(connection: &mut DbConn, after_seq: i64, limit: i64) -> StoreResult<Vec<HistoryExport>> {
    Ok(history::table
        .left_join(payments::table.on(payments::payment_id.eq(history::item_id)))
        .filter(history::seq.gt(after_seq))
        .order(history::seq)
        .limit(limit)
        .select(HistoryExport::as_select())
        .load(connection)?)
}

/// The last history row written (0 when there is none).
pub fn last_history_seq(connection: &mut DbConn) -> StoreResult<i64> {
    Ok(history::table.select(diesel::dsl::max(history::seq)).first::<Option<i64>>(connection)?.unwrap_or(0))
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
        save_history(&mut connection, &first).unwrap();
        save_history(&mut connection, &[item(5, BOB), item(6, ALICE)]).unwrap();
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
        assert!(save_history(&mut connection, &[item(1, ALICE), item(2, stranger)]).is_err());
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
        save_history(&mut connection, &[item(5, ALICE)]).unwrap();
        assert_eq!(amounts(&mut connection, ALICE, None, 50).0, vec![5, 3, 1]);
    }
}
