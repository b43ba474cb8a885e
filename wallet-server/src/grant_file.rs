//! `wallet-server programs grant <PROGRAM_ID> <FILE.csv>`: a city-wide grant from a file, in
//! commands of up to 1,000 lines through the writer (the same write path as the API, while the
//! server serves), with progress on a terminal.
//!
//! The whole file is checked before anything is granted: its shape, every amount, no wallet
//! twice, every wallet known, the program known. Each line's grant id is derived from the file's
//! hash, the program and the wallet, so a run killed at any point and run again skips exactly
//! the lines an earlier run granted (their grants exist) and grants the rest: nobody twice,
//! nobody left out. The same file granted again on purpose (next month's allowance) is therefore
//! refused as done already; give that month's grant its own file (a changed line, a comment
//! column) to grant it anew.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wallet_core::{Amount, Command, GrantId, GrantLine, ProgramId, WalletId, Won};

use crate::api::new_tx_id;
use crate::clock::Clock;
use crate::config::Config;
use crate::handover::progress::Progress;
use crate::store::{self, DbPool};
use crate::writer::{self, WriteOp};

/// The largest file taken: a province's citizens with room to spare.
pub const FILE_BYTES_MAX: u64 = 1 << 30;
/// Wallet and grant ids looked up per query.
const IDS_PER_QUERY: usize = 1_000;
/// Bad lines named in one error at most; the count says how many more.
const PROBLEMS_SHOWN_MAX: usize = 10;

/// One line of the file.
struct Line {
    /// 1-based, the header being line 1, as an editor shows it.
    number: u64,
    wallet: WalletId,
    amount: Amount,
    grant: GrantId,
}

/// Grants `program` to every line of `path`; returns what it did, for the terminal.
pub fn grant(pool: DbPool, clock: Arc<Clock>, config: &Config, program: &str, path: &Path) -> Result<String, String> {
    let program = ProgramId::parse(program).map_err(|error| format!("program id: {error}"))?;
    let lines = read_lines(path, &program)?;
    let mut connection = pool.get().map_err(|error| error.to_string())?;
    let record = store::programs::get(&mut connection, program.as_str())
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("no program {program}; see GET /v1/admin/programs"))?;
    check_wallets(&mut connection, &lines)?;
    let (to_grant, done) = not_yet_granted(&mut connection, lines)?;
    let mut needed = Won::ZERO;
    for line in &to_grant {
        needed = needed.checked_add(line.amount.won()).map_err(|_| "the file's total is beyond the ledger's range")?;
    }
    let remaining = record.budget.remaining();
    if needed > remaining {
        return Err(format!(
            "program {program} has {remaining} won left to grant and the lines not granted yet need {needed} won; \
             top up its budget first (nothing was granted)"
        ));
    }
    drop(connection);
    let writer = writer::Writer::start(
        pool,
        clock,
        config.writer_queue_max,
        writer::Batching { size_max: config.batch_size_max, wait: config.batch_wait },
        config.idempotency_retention,
    );
    let progress = Progress::rows("granting", to_grant.len() as u64);
    let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|error| error.to_string())?;
    for chunk in to_grant.chunks(config.grant_lines_per_command) {
        let lines = chunk
            .iter()
            .map(|line| GrantLine { grant: line.grant.clone(), wallet: line.wallet.clone(), amount: line.amount })
            .collect();
        let command = Command::Grant { id: new_tx_id(), program: program.clone(), lines };
        let answer = runtime.block_on(writer.submit(writer::COMMAND_LINE.to_owned(), None, WriteOp::Ledger(command)));
        if answer.status != 201 {
            return Err(format!(
                "the lines from line {} on were not granted ({} {}); the lines before were. Run the same \
                 command again to grant the rest",
                chunk[0].number, answer.status, answer.body
            ));
        }
        progress.add(chunk.len() as u64);
    }
    progress.finish();
    Ok(format!(
        "granted {} wallets {needed} won of program {program}; {done} lines were granted by an earlier run of this file",
        to_grant.len()
    ))
}

/// Reads and checks every line (header `wallet_id,amount`), refusing the file at its first bad
/// lines; gives each line its grant id.
fn read_lines(path: &Path, program: &ProgramId) -> Result<Vec<Line>, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(|error| format!("{}: {error}", path.display()))?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(format!("{}: over {FILE_BYTES_MAX} bytes; split it", path.display()));
    }
    let file_hash = Sha256::digest(&bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes.as_slice());
    let header = reader.headers().map_err(|error| format!("line 1: {error}"))?;
    if header.iter().collect::<Vec<_>>() != ["wallet_id", "amount"] {
        return Err("line 1: the header must be exactly `wallet_id,amount`".to_owned());
    }
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let number = index as u64 + 2;
        let line = record.map_err(|error| format!("line {number}: {error}")).and_then(|record| {
            let wallet = WalletId::parse(&record[0]).map_err(|error| format!("line {number}: wallet_id: {error}"))?;
            let amount = Amount::parse(&record[1]).map_err(|error| format!("line {number}: amount: {error}"))?;
            if !seen.insert(wallet.clone()) {
                return Err(format!("line {number}: wallet {wallet} is on an earlier line"));
            }
            let grant = grant_id(&file_hash, program, &wallet);
            Ok(Line { number, wallet, amount, grant })
        });
        match line {
            Ok(line) => lines.push(line),
            Err(problem) => problems.push(problem),
        }
    }
    refuse_with(problems, "nothing was granted")?;
    if lines.is_empty() {
        return Err("the file has no lines after its header".to_owned());
    }
    Ok(lines)
}

/// A line's grant id: the same for the same file, program and wallet, so a rerun finds it.
fn grant_id(file_hash: &[u8], program: &ProgramId, wallet: &WalletId) -> GrantId {
    let mut hasher = Sha256::new();
    for part in [file_hash, program.as_str().as_bytes(), wallet.as_str().as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    GrantId::parse(&format!("gf-{}", &hex::encode(hasher.finalize())[..40])).expect("a hex id is a valid id")
}

fn check_wallets(connection: &mut store::DbConn, lines: &[Line]) -> Result<(), String> {
    let mut problems = Vec::new();
    for chunk in lines.chunks(IDS_PER_QUERY) {
        let ids: Vec<String> = chunk.iter().map(|line| line.wallet.to_string()).collect();
        let known: HashSet<String> =
            store::wallets::existing(connection, &ids).map_err(|error| error.to_string())?.into_iter().collect();
        for line in chunk.iter().filter(|line| !known.contains(line.wallet.as_str())) {
            problems.push(format!("line {}: no wallet {}", line.number, line.wallet));
        }
    }
    refuse_with(problems, "nothing was granted")
}

/// The lines whose grant does not exist yet, and how many do.
fn not_yet_granted(connection: &mut store::DbConn, lines: Vec<Line>) -> Result<(Vec<Line>, usize), String> {
    let mut granted = HashSet::new();
    for chunk in lines.chunks(IDS_PER_QUERY) {
        let ids: Vec<String> = chunk.iter().map(|line| line.grant.to_string()).collect();
        let found = store::allowances::load_grants(connection, &ids).map_err(|error| error.to_string())?;
        granted.extend(found.into_iter().map(|(id, _)| id));
    }
    let done = granted.len();
    Ok((lines.into_iter().filter(|line| !granted.contains(&line.grant)).collect(), done))
}

fn refuse_with(problems: Vec<String>, consequence: &str) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    let more = problems.len().saturating_sub(PROBLEMS_SHOWN_MAX);
    let mut message = problems.into_iter().take(PROBLEMS_SHOWN_MAX).collect::<Vec<_>>().join("\n");
    if more > 0 {
        message.push_str(&format!("\n... and {more} more"));
    }
    Err(format!("{message}\n{consequence}"))
}
