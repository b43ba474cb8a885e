//! Bounds on what clients can make the server log. actix-http logs one ERROR line for each
//! request head it cannot parse (`actix_http::h1::dispatcher`: "stream error: request parse
//! error ..."), so anyone could fill the disk or drown the real errors by sending garbage. Here
//! each such line is counted (`wallet_malformed_requests_total` in `/metrics`), at most
//! [`LINES_PER_SECOND_MAX`] a second reach the log, and the sweep (`jobs`) logs how many were
//! suppressed since it last looked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The target of actix-http's per-connection errors: malformed heads, broken streams.
pub const DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";
/// Lines of [`DISPATCHER_TARGET`] logged a second at most.
pub const LINES_PER_SECOND_MAX: u64 = 5;

static SEEN: AtomicU64 = AtomicU64::new(0);
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
/// The current second (high bits) and the lines logged in it (low 16 bits).
static WINDOW: AtomicU64 = AtomicU64::new(0);

/// Counts every event of [`DISPATCHER_TARGET`]; give it a filter of that target only, so the
/// other callsites keep the interest the log's own filter gives them.
pub struct CountMalformed;

impl<S: Subscriber> Layer<S> for CountMalformed {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // Its errors only: the dispatcher's debug and trace events are not requests.
        if event.metadata().target() == DISPATCHER_TARGET && *event.metadata().level() == tracing::Level::ERROR {
            SEEN.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The log's filter for one event's metadata: everything but [`DISPATCHER_TARGET`] passes; of
/// that target, the first [`LINES_PER_SECOND_MAX`] of each second.
pub fn log_line_allowed(metadata: &tracing::Metadata<'_>) -> bool {
    // Only its errors are rationed: its debug and trace lines are there only when asked for.
    if metadata.target() != DISPATCHER_TARGET || *metadata.level() != tracing::Level::ERROR {
        return true;
    }
    let second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let allowed = WINDOW
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |window| {
            let (window_second, count) = (window >> 16, window & 0xffff);
            if window_second != second {
                Some((second << 16) | 1)
            } else if count < LINES_PER_SECOND_MAX {
                Some(window + 1)
            } else {
                None
            }
        })
        .is_ok();
    if !allowed {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
    allowed
}

/// Every dispatcher error seen since start.
pub fn malformed_seen() -> u64 {
    SEEN.load(Ordering::Relaxed)
}

/// The lines suppressed since the last call.
pub fn take_suppressed() -> u64 {
    SUPPRESSED.swap(0, Ordering::Relaxed)
}
