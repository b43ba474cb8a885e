//! The checks across rows of a bundle, with memory bounded by configuration rather than by the
//! bundle: no id appears twice, every reference names a row of the file it points into, and
//! (with `history_complete`) each wallet's history sums to what it holds.
//!
//! A set of every id in memory cost about 100 bytes an id: 2.5 GiB for a city, more than a
//! province's server has to spare. Instead each id met is logged as one fixed-size [`Entry`]: a
//! keyed 128-bit hash of the id and its kind, the role of the row that names it (the wallet's
//! own row, a history row naming the wallet, ...), the row's line and an amount. Entries go to
//! [`Log::partitions`] files on disk, chosen by hash; when the files are read, each partition —
//! sized from the manifest's row counts to fit the memory bound — is sorted in memory, and each
//! run of equal hashes is one id with every row that names it, in file order.
//!
//! Hashes, not ids: an entry is 32 bytes whatever the id's length, and a refusal's id is read
//! back from the file at its line ([`Failure`] holds the line). The hash is keyed with random
//! keys of this process (ahash), 128 bits: two different ids share one with a chance of about
//! 2^-128 per pair, which no bundle, however crafted, can aim at without the keys.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use super::Refusal;

/// Bytes of an entry on disk and in memory.
const ENTRY_BYTES: usize = 32;
/// Largest number of partition files (each has a write buffer of [`PARTITION_BUFFER_BYTES`]).
const PARTITIONS_MAX: usize = 4_096;
/// The write buffer of each partition file.
const PARTITION_BUFFER_BYTES: usize = 64 << 10;
/// Largest line number an entry holds (the role takes the top byte of the same word).
const LINE_MAX: u64 = (1 << 56) - 1;
/// The memory for the checks when none is configured: 128 MiB.
pub const MEMORY_BYTES_DEFAULT: u64 = 128 << 20;
/// The least memory accepted for the checks: 8 MiB.
pub const MEMORY_BYTES_MIN: u64 = 8 << 20;

/// The file a row is in, in the order verification reads them (a refusal's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FileRank {
    Programs = 0,
    Citizens = 1,
    Merchants = 2,
    Transactions = 3,
    Allowances = 4,
    /// Not a file: each wallet's history against what it holds, checked after every row (in
    /// citizens.csv's order).
    Histories = 5,
}

/// What the row that names an id is. The order is the order of the files (and, within one
/// file, the id's own row before its references), so that each run of one id is sorted in
/// reading order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(super) enum Role {
    CitizenRow = 0,
    /// The amount is the wallet's balance.
    WalletRow = 1,
    CitizenLogin = 2,
    MerchantRow = 3,
    MerchantLogin = 4,
    TransactionRow = 5,
    /// A history row of a snapshot naming a wallet; the amount is the row's.
    WalletInHistory = 6,
    /// A history row of a snapshot naming a merchant.
    MerchantInHistory = 7,
    GrantRow = 8,
    /// An allowance naming a wallet; the amount is the allowance's.
    WalletInAllowance = 9,
}

impl Role {
    const ALL: [Role; 10] = [
        Role::CitizenRow,
        Role::WalletRow,
        Role::CitizenLogin,
        Role::MerchantRow,
        Role::MerchantLogin,
        Role::TransactionRow,
        Role::WalletInHistory,
        Role::MerchantInHistory,
        Role::GrantRow,
        Role::WalletInAllowance,
    ];

    /// The kind of id: ids of different kinds never meet, even when they are equal strings.
    fn space(self) -> u8 {
        match self {
            Role::CitizenRow => 0,
            Role::WalletRow | Role::WalletInHistory | Role::WalletInAllowance => 1,
            Role::CitizenLogin | Role::MerchantLogin => 2,
            Role::MerchantRow | Role::MerchantInHistory => 3,
            Role::TransactionRow => 4,
            Role::GrantRow => 5,
        }
    }

    fn file(self) -> FileRank {
        match self {
            Role::CitizenRow | Role::WalletRow | Role::CitizenLogin => FileRank::Citizens,
            Role::MerchantRow | Role::MerchantLogin => FileRank::Merchants,
            Role::TransactionRow | Role::WalletInHistory | Role::MerchantInHistory => FileRank::Transactions,
            Role::GrantRow | Role::WalletInAllowance => FileRank::Allowances,
        }
    }
}

/// One id named by one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    key: u128,
    /// The role in the top byte, the line below it: sorting by it sorts by role, then line.
    role_line: u64,
    amount: i64,
}

impl Entry {
    fn role(&self) -> Role {
        Role::ALL[(self.role_line >> 56) as usize]
    }

    fn line(&self) -> u64 {
        self.role_line & LINE_MAX
    }

    fn to_bytes(self) -> [u8; ENTRY_BYTES] {
        let mut bytes = [0u8; ENTRY_BYTES];
        bytes[..16].copy_from_slice(&self.key.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.role_line.to_le_bytes());
        bytes[24..].copy_from_slice(&self.amount.to_le_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Entry {
        let eight = |at: usize| -> [u8; 8] { bytes[at..at + 8].try_into().expect("eight bytes of the entry") };
        Entry {
            key: u128::from_le_bytes(bytes[..16].try_into().expect("sixteen bytes of the entry")),
            role_line: u64::from_le_bytes(eight(16)),
            amount: i64::from_le_bytes(eight(24)),
        }
    }
}

/// What the checks found wrong: the row (file and line) and what is wrong with it. The ids are
/// read back from the file for the refusal ([`Failure::refusal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The id of `role` at `line` was already named by a row of the same kind.
    Twice { role: Role, line: u64, first_role: Role },
    /// The reference at `line` names no row of the file it points into.
    Missing { role: Role, line: u64 },
    /// A wallet's history, up to the row at `line`, sums beyond what is stored.
    HistoryBeyond { line: u64 },
    /// With `history_complete`: the wallet of citizens.csv's `line` holds `balance` and
    /// `allowances`, but its history sums to `history`.
    HistoryOff { line: u64, balance: i128, allowances: i128, history: i128 },
}

impl Failure {
    /// Where the failure is, in reading order (file, line, then the column's order within a
    /// row): the earliest is the one refused.
    pub(super) fn order(&self) -> (FileRank, u64, u8) {
        match self {
            Failure::Twice { role, line, .. } | Failure::Missing { role, line } => (role.file(), *line, *role as u8),
            Failure::HistoryBeyond { line } => (FileRank::Transactions, *line, Role::WalletInHistory as u8),
            // After every row's checks, in citizens.csv's order.
            Failure::HistoryOff { line, .. } => (FileRank::Histories, *line, 0),
        }
    }
}

/// The log of every id met, partitioned on disk (or in memory when one partition does).
pub(super) struct Log {
    hasher: (ahash::RandomState, ahash::RandomState),
    memory_bytes: u64,
    partitions: Partitions,
    entries: u64,
}

enum Partitions {
    Memory(Vec<Entry>),
    Disk(Vec<BufWriter<File>>),
}

impl Log {
    /// A log for about `entries_expected` entries in `memory_bytes` (at least
    /// [`MEMORY_BYTES_MIN`]).
    pub(super) fn new(entries_expected: u64, memory_bytes: u64) -> Result<Log, Refusal> {
        let memory_bytes = memory_bytes.max(MEMORY_BYTES_MIN);
        // A partition is read whole, sorted in place: half the memory, so that an unlucky
        // partition (they are random) has room to be larger than the average.
        let partition_bytes = memory_bytes / 2;
        let count = (entries_expected * ENTRY_BYTES as u64).div_ceil(partition_bytes).max(1);
        if count > PARTITIONS_MAX as u64 {
            return Err(Refusal::new(
                super::MANIFEST_FILE,
                None,
                format!(
                    "its row counts need more than {PARTITIONS_MAX} partitions of {partition_bytes} bytes to check \
                     the bundle's ids: give the checks more memory (WALLET_HANDOVER_MEMORY_MIB)"
                ),
            ));
        }
        let partitions = if count == 1 {
            Partitions::Memory(Vec::new())
        } else {
            let files = (0..count)
                .map(|_| tempfile::tempfile().map(|file| BufWriter::with_capacity(PARTITION_BUFFER_BYTES, file)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| {
                    Refusal::new(
                        super::MANIFEST_FILE,
                        None,
                        format!(
                            "cannot create a file to check the bundle's ids in: {error}; set TMPDIR to a writable \
                             directory with room"
                        ),
                    )
                })?;
            Partitions::Disk(files)
        };
        let hasher = (ahash::RandomState::new(), ahash::RandomState::new());
        Ok(Log { hasher, memory_bytes, partitions, entries: 0 })
    }

    /// Logs that the row at `line` names `id` in `role`, with `amount` where the role has one.
    pub(super) fn add(&mut self, role: Role, id: &str, line: u64, amount: i64) -> Result<(), Refusal> {
        let space = role.space();
        let high = self.hasher.0.hash_one((space, id));
        let low = self.hasher.1.hash_one((space, id));
        let key = (u128::from(high) << 64) | u128::from(low);
        let entry = Entry { key, role_line: ((role as u64) << 56) | line.min(LINE_MAX), amount };
        self.entries += 1;
        match &mut self.partitions {
            Partitions::Memory(entries) => {
                if (entries.len() as u64 + 1) * ENTRY_BYTES as u64 > self.memory_bytes {
                    return Err(self.beyond_memory());
                }
                entries.push(entry);
                Ok(())
            }
            Partitions::Disk(files) => {
                let index = (high % files.len() as u64) as usize;
                files[index].write_all(&entry.to_bytes()).map_err(write_failed)
            }
        }
    }

    fn beyond_memory(&self) -> Refusal {
        Refusal::new(
            super::MANIFEST_FILE,
            None,
            format!(
                "the bundle's ids need more than the {} MiB given to check them: give more \
                 (WALLET_HANDOVER_MEMORY_MIB), or check that the files hold the rows the manifest counts",
                self.memory_bytes >> 20
            ),
        )
    }

    /// Checks every id logged: each partition is read, sorted and checked in turn. Returns the
    /// earliest failure in reading order, if any. `history_complete`: each wallet's history is
    /// checked against what it holds.
    pub(super) fn check(self, history_complete: bool) -> Result<Option<Failure>, Refusal> {
        let mut failures = None;
        let memory_bytes = self.memory_bytes;
        match self.partitions {
            Partitions::Memory(mut entries) => {
                entries.sort_unstable();
                check_sorted(&entries, history_complete, &mut failures);
            }
            Partitions::Disk(files) => {
                let mut entries: Vec<Entry> = Vec::new();
                for writer in files {
                    let mut file = writer.into_inner().map_err(|error| write_failed(error.into_error()))?;
                    let bytes = std::io::Seek::stream_position(&mut file).map_err(write_failed)?;
                    if bytes > memory_bytes {
                        return Err(Refusal::new(
                            super::MANIFEST_FILE,
                            None,
                            format!(
                                "a partition of the bundle's ids is {bytes} bytes, more than the {} MiB given to \
                                 check them: give more (WALLET_HANDOVER_MEMORY_MIB)",
                                memory_bytes >> 20
                            ),
                        ));
                    }
                    std::io::Seek::rewind(&mut file).map_err(write_failed)?;
                    entries.clear();
                    entries.reserve(bytes as usize / ENTRY_BYTES);
                    let mut reader = BufReader::with_capacity(PARTITION_BUFFER_BYTES, file);
                    let mut buffer = [0u8; ENTRY_BYTES];
                    loop {
                        match reader.read_exact(&mut buffer) {
                            Ok(()) => entries.push(Entry::from_bytes(&buffer)),
                            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
                            Err(error) => return Err(write_failed(error)),
                        }
                    }
                    entries.sort_unstable();
                    check_sorted(&entries, history_complete, &mut failures);
                }
            }
        }
        Ok(failures)
    }
}

fn write_failed(error: std::io::Error) -> Refusal {
    Refusal::new(
        super::MANIFEST_FILE,
        None,
        format!("cannot write the file the bundle's ids are checked in: {error}; set TMPDIR to a directory with room"),
    )
}

/// Checks each run of one id in sorted `entries`, keeping the earliest failure in `earliest`.
fn check_sorted(entries: &[Entry], history_complete: bool, earliest: &mut Option<Failure>) {
    for group in entries.chunk_by(|a, b| a.key == b.key) {
        if let Some(failure) = check_id(group, history_complete) {
            if earliest.as_ref().is_none_or(|known| failure.order() < known.order()) {
                *earliest = Some(failure);
            }
        }
    }
}

/// The earliest failure of one id, given every row that names it in reading order.
fn check_id(group: &[Entry], history_complete: bool) -> Option<Failure> {
    let mut found: Option<Failure> = None;
    let mut keep = |failure: Failure| {
        if found.as_ref().is_none_or(|known| failure.order() < known.order()) {
            found = Some(failure);
        }
    };
    // An id's own rows: the second (in reading order) is the duplicate. Logins are one kind
    // across citizens and merchants.
    let owners: Vec<&Entry> = group
        .iter()
        .filter(|entry| {
            matches!(
                entry.role(),
                Role::CitizenRow
                    | Role::WalletRow
                    | Role::CitizenLogin
                    | Role::MerchantRow
                    | Role::MerchantLogin
                    | Role::TransactionRow
                    | Role::GrantRow
            )
        })
        .collect();
    if let [first, second, ..] = owners.as_slice() {
        keep(Failure::Twice { role: second.role(), line: second.line(), first_role: first.role() });
    }
    if owners.is_empty() {
        // References to an id with no row of its own: the first is refused.
        if let Some(reference) = group.first() {
            keep(Failure::Missing { role: reference.role(), line: reference.line() });
        }
        return found;
    }
    if owners[0].role() == Role::WalletRow {
        check_wallet(group, owners[0], history_complete, &mut keep);
    }
    found
}

/// A wallet's history: each running sum storable, and with `history_complete` the whole equal
/// to the balance and the allowances.
fn check_wallet(group: &[Entry], row: &Entry, history_complete: bool, keep: &mut impl FnMut(Failure)) {
    let (mut history, mut allowances) = (0i128, 0i128);
    for entry in group {
        match entry.role() {
            Role::WalletInHistory => {
                history += i128::from(entry.amount);
                if i64::try_from(history).is_err() {
                    keep(Failure::HistoryBeyond { line: entry.line() });
                    return;
                }
            }
            Role::WalletInAllowance => allowances += i128::from(entry.amount),
            _ => {}
        }
    }
    let balance = i128::from(row.amount);
    if history_complete && balance + allowances != history {
        keep(Failure::HistoryOff { line: row.line(), balance, allowances, history });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(log: Log, history_complete: bool) -> Option<Failure> {
        log.check(history_complete).expect("check")
    }

    /// A good bundle's entries: two citizens, a merchant, history and an allowance that add up.
    fn good() -> Vec<(Role, &'static str, u64, i64)> {
        vec![
            (Role::CitizenRow, "C-1", 2, 0),
            (Role::WalletRow, "W-1", 2, 500),
            (Role::CitizenLogin, "one", 2, 0),
            (Role::CitizenRow, "C-2", 3, 0),
            (Role::WalletRow, "W-2", 3, 0),
            (Role::CitizenLogin, "two", 3, 0),
            (Role::MerchantRow, "M-1", 2, 0),
            (Role::MerchantLogin, "shop", 2, 0),
            // A transaction id equal to a citizen id: another kind of id, no conflict.
            (Role::TransactionRow, "C-1", 2, 0),
            (Role::WalletInHistory, "W-1", 2, 300),
            (Role::TransactionRow, "T-2", 3, 0),
            (Role::WalletInHistory, "W-1", 3, 200),
            (Role::MerchantInHistory, "M-1", 3, 0),
            (Role::TransactionRow, "T-3", 4, 0),
            (Role::WalletInHistory, "W-2", 4, 7),
            (Role::GrantRow, "G-1", 2, 0),
            (Role::WalletInAllowance, "W-2", 2, 7),
        ]
    }

    /// The earliest failure of `entries`, checked in one partition in memory and in many on
    /// disk (padded with unrelated transactions so that they spread over files): both the same.
    fn earliest(entries: &[(Role, &str, u64, i64)], history_complete: bool) -> Option<Failure> {
        let mut found = Vec::new();
        for (expected, memory, padding) in [(20, MEMORY_BYTES_DEFAULT, 0), (2_000_000, MEMORY_BYTES_MIN, 20_000)] {
            let mut log = Log::new(expected, memory).expect("log");
            for &(role, id, line, amount) in entries {
                log.add(role, id, line, amount).expect("add");
            }
            for filler in 0..padding {
                log.add(Role::TransactionRow, &format!("F-{filler}"), 100 + filler, 0).expect("add");
            }
            if padding > 0 {
                assert!(matches!(log.partitions, Partitions::Disk(ref files) if files.len() > 1));
            }
            found.push(log.check(history_complete).expect("check"));
        }
        assert_eq!(found[0], found[1], "memory and disk disagree");
        found.pop().expect("two checks")
    }

    #[test]
    fn a_good_bundles_ids_pass_in_memory_and_on_disk() {
        assert_eq!(earliest(&good(), true), None);
    }

    #[test]
    fn each_failure_is_found_at_its_row_and_the_earliest_is_refused() {
        let with = |extra: &[(Role, &'static str, u64, i64)]| {
            let mut entries = good();
            entries.extend_from_slice(extra);
            entries
        };
        let twice = |role, line, first_role| Some(Failure::Twice { role, line, first_role });
        // A merchant's login equal to a citizen's: one kind of id across both files.
        let login = with(&[(Role::MerchantRow, "M-2", 3, 0), (Role::MerchantLogin, "two", 3, 0)]);
        assert_eq!(earliest(&login, true), twice(Role::MerchantLogin, 3, Role::CitizenLogin));
        let wallet = with(&[(Role::CitizenRow, "C-3", 4, 0), (Role::WalletRow, "W-1", 4, 0)]);
        assert_eq!(earliest(&wallet, false), twice(Role::WalletRow, 4, Role::WalletRow));
        let transaction = with(&[(Role::TransactionRow, "T-2", 9, 0)]);
        assert_eq!(earliest(&transaction, true), twice(Role::TransactionRow, 9, Role::TransactionRow));
        let grant = with(&[(Role::GrantRow, "G-1", 3, 0)]);
        assert_eq!(earliest(&grant, true), twice(Role::GrantRow, 3, Role::GrantRow));
        let merchant = with(&[(Role::TransactionRow, "T-9", 5, 0), (Role::MerchantInHistory, "M-9", 5, 0)]);
        assert_eq!(earliest(&merchant, true), Some(Failure::Missing { role: Role::MerchantInHistory, line: 5 }));
        let history = with(&[(Role::TransactionRow, "T-9", 5, 0), (Role::WalletInHistory, "W-9", 5, 1)]);
        assert_eq!(earliest(&history, false), Some(Failure::Missing { role: Role::WalletInHistory, line: 5 }));
        let allowance = with(&[(Role::GrantRow, "G-2", 3, 0), (Role::WalletInAllowance, "W-9", 3, 1)]);
        assert_eq!(earliest(&allowance, true), Some(Failure::Missing { role: Role::WalletInAllowance, line: 3 }));
        // Two wallets off: the first in citizens.csv is refused; not checked unless complete.
        let off = with(&[(Role::WalletInHistory, "W-1", 6, 1), (Role::WalletInHistory, "W-2", 7, 1)]);
        assert_eq!(
            earliest(&off, true),
            Some(Failure::HistoryOff { line: 2, balance: 500, allowances: 0, history: 501 })
        );
        assert_eq!(earliest(&off, false), None);
        // Several failures: the earliest in reading order, whatever the hashes' order.
        let several = with(&[
            (Role::TransactionRow, "T-9", 8, 0),
            (Role::WalletInHistory, "W-9", 8, 1),
            (Role::TransactionRow, "T-3", 6, 0),
            (Role::CitizenRow, "C-9", 4, 0),
            (Role::WalletRow, "W-9x", 4, 0),
            (Role::CitizenLogin, "one", 4, 0),
        ]);
        assert_eq!(earliest(&several, true), twice(Role::CitizenLogin, 4, Role::CitizenLogin));
    }

    #[test]
    fn a_history_beyond_what_is_stored_is_found_at_its_row() {
        let mut log = Log::new(4, MEMORY_BYTES_DEFAULT).expect("log");
        log.add(Role::WalletRow, "W-1", 2, 0).unwrap();
        log.add(Role::WalletInHistory, "W-1", 2, i64::MAX).unwrap();
        log.add(Role::WalletInHistory, "W-1", 3, 1).unwrap();
        log.add(Role::WalletInHistory, "W-1", 4, -2).unwrap();
        assert_eq!(failures(log, false), Some(Failure::HistoryBeyond { line: 3 }));
    }

    #[test]
    fn more_entries_than_memory_allows_are_refused() {
        let mut log = Log::new(1, MEMORY_BYTES_MIN).expect("log");
        let fits = MEMORY_BYTES_MIN / ENTRY_BYTES as u64;
        for line in 0..fits {
            log.add(Role::TransactionRow, "T", line, 0).unwrap();
        }
        let refusal = log.add(Role::TransactionRow, "T", fits, 0).expect_err("beyond the memory");
        assert!(refusal.reason.contains("need more than the 8 MiB"), "{refusal}");
    }
}
