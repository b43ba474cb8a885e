//! Progress of an import or export on a terminal: rows done, rate, time left. Nothing is drawn
//! when stderr is not a terminal (a log file, CI), so logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Rows handed to a store function at a time, so progress moves while a big table is written.
pub const ROWS_PER_STEP: usize = 50_000;

pub struct Progress(ProgressBar);

impl Progress {
    /// A bar for `total` rows of `what` ("verifying", "writing", ...).
    pub fn rows(what: &str, total: u64) -> Progress {
        // indicatif hides a stderr target that is not a terminal.
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:>10} [{bar:32}] {human_pos}/{human_len} rows  {rate:>14}  {eta_precise} left",
        )
        .expect("the progress template is valid")
        .with_key("rate", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.0} rows/s", state.per_sec());
        })
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_owned());
        Progress(bar)
    }

    /// A count of rows of `what` with their rate, when the total is not known ahead.
    pub fn counter(what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg:>10} {human_pos} rows  {rate:>14}  {elapsed_precise}")
            .expect("the progress template is valid")
            .with_key("rate", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0} rows/s", state.per_sec());
            });
        bar.set_style(style);
        bar.set_message(what.to_owned());
        Progress(bar)
    }

    pub fn add(&self, rows: u64) {
        self.0.inc(rows);
    }

    /// Runs `write` on `items` a step at a time, moving the bar by each step's rows.
    pub fn in_steps<T, E>(&self, items: &[T], mut write: impl FnMut(&[T]) -> Result<(), E>) -> Result<(), E> {
        for step in items.chunks(ROWS_PER_STEP) {
            write(step)?;
            self.add(step.len() as u64);
        }
        Ok(())
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A refusal or failure midway leaves no half-drawn bar above its message.
        self.0.finish_and_clear();
    }
}
