//! `wallet-server programs grant <PROGRAM_ID> <FILE.csv> --login <ADMIN>`: a city-wide grant
//! from a file, sent to the serving server as grants requests of up to
//! `WALLET_GRANT_LINES_PER_COMMAND` lines (the API's write path, in the writer's bulk lane, so
//! payments go first), with progress on a terminal.
//!
//! The whole file is checked before anything is granted: its shape, every amount, no wallet
//! twice, every wallet known, the program known. Each line's grant id is derived from the file's
//! hash, the program and the wallet, so a run killed at any point and run again skips exactly
//! the lines an earlier run granted (their grants exist) and grants the rest: nobody twice,
//! nobody left out. Each request names its lines' grant ids, so a request whose answer was lost
//! (the command killed while it was in flight) cannot land twice: sent again, the server refuses
//! the lines that landed by name, and the command sends the others without them.
//!
//! The same file granted again on purpose (next month's allowance) is therefore refused as done
//! already; give that month's grant its own file (a changed line, a comment column) to grant it
//! anew.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wallet_core::{Amount, GrantId, GrantLine, ProgramId, WalletId, Won};

use crate::config::Config;
use crate::grant_client::GrantClient;
pub use crate::grant_client::Server;
use crate::handover::progress::Progress;
use crate::store::{self, DbPool};

/// The largest file taken: a province's citizens with room to spare.
pub const FILE_BYTES_MAX: u64 = 1 << 30;
/// Wallet and grant ids looked up per query.
const IDS_PER_QUERY: usize = 1_000;
/// Bad lines named in one error at most; the count says how many more.
const PROBLEMS_SHOWN_MAX: usize = 10;

/// Grants requests in flight at once: within the writer's bulk lane
/// ([`crate::writer::BULK_QUEUED_MAX`]).
const REQUESTS_IN_FLIGHT: usize = 2;

/// One line of the file.
struct Line {
    /// 1-based, the header being line 1, as an editor shows it.
    number: u64,
    wallet: WalletId,
    amount: Amount,
    grant: GrantId,
}

/// Grants `program` to every line of `path` through `server`; returns what it did, for the
/// terminal. The database is only read here (the file's checks); every grant is written by the
/// serving server's writer, in its bulk lane, so payments are served first.
pub fn grant(pool: DbPool, config: &Config, server: &Server, program: &str, path: &Path) -> Result<String, String> {
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
    if to_grant.is_empty() {
        // Nothing to send: the server need not even be running.
        return Ok(format!(
            "granted 0 wallets 0 won of program {program}; {done} lines were granted by an earlier run of this file"
        ));
    }
    let client = GrantClient::log_in(server)?;
    let progress = Progress::rows("granting", to_grant.len() as u64);
    let chunks: Vec<&[Line]> = to_grant.chunks(config.grant_lines_per_command).collect();
    let next = AtomicUsize::new(0);
    let failure = Mutex::new(None::<String>);
    // A few requests in flight keep the writer's bulk lane fed while one is on the wire; no
    // more than the lane takes, or the rest would be refused as overloaded.
    std::thread::scope(|scope| {
        for _ in 0..REQUESTS_IN_FLIGHT {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(index) else { return };
                if failure.lock().map_or(true, |failure| failure.is_some()) {
                    return;
                }
                let lines: Vec<GrantLine> = chunk
                    .iter()
                    .map(|line| GrantLine {
                        grant: line.grant.clone(),
                        wallet: line.wallet.clone(),
                        amount: line.amount,
                    })
                    .collect();
                match client.grant(&program, &lines) {
                    Ok(()) => progress.add(chunk.len() as u64),
                    Err(error) => {
                        let message = format!(
                            "the lines from line {} on were not granted ({error}); others may have been. Run the \
                             same command again to grant the rest",
                            chunk[0].number
                        );
                        if let Ok(mut failure) = failure.lock() {
                            failure.get_or_insert(message);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(message) = failure.into_inner().ok().flatten() {
        return Err(message);
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
