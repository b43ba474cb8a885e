//! Ctrl-C, SIGTERM or SIGHUP during `handover verify` or `import`: the archive's unpacked copy
//! is removed before the command exits.
//!
//! An unpacked bundle is a copy of its files (password hashes included) under `TMPDIR`, removed
//! when the command ends. A signal's default action ends the process without that, and left a
//! `wallet-handover-*` directory as large as the bundle behind. So these signals are blocked in
//! every thread and taken by one thread of their own, which removes what was unpacked and ends
//! the process with the code a shell gives a signal's death (128 + the signal). An import in
//! progress ends as a kill ends it: its one transaction is not committed, and nothing of it is
//! applied. (SIGKILL cannot be caught: the next run that unpacks removes what it left,
//! `handover_format::archive::remove_left_behind`.)

use handover_format::output::note;

/// The signals that end a handover command with its unpacked copy removed.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Blocks [`SIGNALS`] and starts the thread that takes them. Call it before any other thread is
/// started (threads inherit the blocked set, so the signals reach only that thread).
pub fn clean_up_on_signal() -> Result<(), String> {
    // SAFETY: the sigset is initialised by sigemptyset before use, and pthread_sigmask only
    // changes this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        let failed = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if failed != 0 {
            return Err(format!("cannot block signals: error {failed}"));
        }
        set
    };
    std::thread::Builder::new()
        .name("handover-signals".to_owned())
        .spawn(move || {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialised signal set; `signal` is written by sigwait.
            while unsafe { libc::sigwait(&set, &mut signal) } != 0 {}
            let removed = handover_format::archive::remove_unpacked();
            for dir in &removed {
                note(format_args!("interrupted (signal {signal}): removed the unpacked bundle {}", dir.display()));
            }
            if removed.is_empty() {
                note(format_args!("interrupted (signal {signal})"));
            }
            std::process::exit(128 + signal);
        })
        .map(drop)
        .map_err(|error| format!("cannot start the signal thread: {error}"))
}
