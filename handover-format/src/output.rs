//! What the handover commands print, written so that a closed pipe is not a crash.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`handover verify B | head -1`:
//! Rust ignores SIGPIPE, so the write fails with `BrokenPipe`), and the command then ended with a
//! panic and exit code 101 after doing its work. Here a failed write of a message is dropped:
//! the output is for people, and the command's outcome is its exit code, which stays true.

use std::io::Write;

/// Writes a line to stdout (a command's summary); a closed or failing stdout drops it.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush());
}

/// Writes a line to stderr (what the command is doing, or why it failed); a closed or failing
/// stderr drops it.
pub fn note(line: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(line).and_then(|()| stderr.write_all(b"\n"));
}
