//! The server's memory, read from `/proc/PID/status` (Linux) while a run goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the sampler reads `/proc/PID/status`.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
/// Most samples one sampler takes (a day at 200 ms), so a forgotten sampler still stops.
const SAMPLES_MAX: u64 = 432_000;

/// One reading, in KiB as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryReading {
    /// Resident set size now.
    pub vm_rss_kib: u64,
    /// Peak resident set size since the process started ("high water mark").
    pub vm_hwm_kib: u64,
}

/// Parses the `VmRSS` and `VmHWM` lines of a `/proc/PID/status` text.
pub fn parse_status(text: &str) -> Option<MemoryReading> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(MemoryReading { vm_rss_kib: field("VmRSS:")?, vm_hwm_kib: field("VmHWM:")? })
}

/// Reads the process's memory now.
pub fn read(pid: u32) -> Result<MemoryReading, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|error| format!("cannot read {path}: {error}"))?;
    parse_status(&text).ok_or_else(|| format!("{path} has no VmRSS/VmHWM lines; is PID {pid} a live process?"))
}

/// What the sampler saw over its whole life.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemorySummary {
    pub pid: u32,
    pub samples: u64,
    /// Failed reads (the process ended, for instance).
    pub read_errors: u64,
    pub vm_rss_kib_first: Option<u64>,
    pub vm_rss_kib_max: Option<u64>,
    pub vm_rss_kib_last: Option<u64>,
    /// The largest `VmHWM` read: the server's peak RSS since it started.
    pub vm_hwm_kib_max: Option<u64>,
}

/// A background task that samples a process's memory every [`SAMPLE_INTERVAL`].
pub struct Sampler {
    summary: Arc<Mutex<MemorySummary>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling; fails at once when the process cannot be read.
    pub fn start(pid: u32) -> Result<Sampler, String> {
        read(pid)?;
        let summary = Arc::new(Mutex::new(MemorySummary { pid, ..MemorySummary::default() }));
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::clone(&summary);
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for _ in 0..SAMPLES_MAX {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stopped.changed() => break,
                }
                let reading = read(pid);
                let mut summary = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                record(&mut summary, reading.ok());
            }
        });
        Ok(Sampler { summary, stop, task })
    }

    /// Takes one more sample now and returns it.
    pub fn sample_now(&self) -> Option<MemoryReading> {
        let mut summary = self.summary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reading = read(summary.pid).ok();
        record(&mut summary, reading);
        reading
    }

    /// Stops sampling, takes a last sample and returns the summary.
    pub async fn finish(self) -> MemorySummary {
        let Sampler { summary, stop, task } = self;
        let _ = stop.send(true);
        let _ = task.await;
        let mut summary = summary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reading = read(summary.pid).ok();
        record(&mut summary, reading);
        summary.clone()
    }
}

fn record(summary: &mut MemorySummary, reading: Option<MemoryReading>) {
    let Some(reading) = reading else {
        summary.read_errors += 1;
        return;
    };
    summary.samples += 1;
    summary.vm_rss_kib_first.get_or_insert(reading.vm_rss_kib);
    summary.vm_rss_kib_last = Some(reading.vm_rss_kib);
    summary.vm_rss_kib_max = summary.vm_rss_kib_max.max(Some(reading.vm_rss_kib));
    summary.vm_hwm_kib_max = summary.vm_hwm_kib_max.max(Some(reading.vm_hwm_kib));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text =
            "Name:\twallet-server\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n";
        assert_eq!(parse_status(text), Some(MemoryReading { vm_rss_kib: 40960, vm_hwm_kib: 51234 }));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let reading = read(std::process::id()).expect("this process has a /proc status");
        assert!(reading.vm_rss_kib > 0 && reading.vm_hwm_kib > 0);
    }
}
