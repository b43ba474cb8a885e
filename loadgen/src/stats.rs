//! Pure arithmetic over what a run recorded: percentiles, admission order, answer tallies.
//! Nothing here does I/O or reads a clock, so all of it is unit-tested.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Nearest-rank percentile: the smallest sample such that at least `quantile` of all samples
/// are at or below it (`quantile` in 0..=1; 0 gives the minimum, 1 the maximum).
/// `sorted` must be in ascending order; `None` when there are no samples.
pub fn percentile(sorted: &[u64], quantile: f64) -> Option<u64> {
    assert!((0.0..=1.0).contains(&quantile), "a quantile is between 0 and 1, got {quantile}");
    debug_assert!(sorted.windows(2).all(|pair| pair[0] <= pair[1]), "percentile needs sorted samples");
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99 and max of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Summarises latencies given in microseconds.
pub fn summarise_latency(mut samples_us: Vec<u64>) -> LatencySummary {
    samples_us.sort_unstable();
    let to_ms = |value: Option<u64>| value.map(|us| us as f64 / 1000.0);
    LatencySummary {
        count: samples_us.len(),
        p50_ms: to_ms(percentile(&samples_us, 0.50)),
        p99_ms: to_ms(percentile(&samples_us, 0.99)),
        max_ms: to_ms(samples_us.last().copied()),
    }
}

/// p50 and max of plain whole-number samples (seconds, positions).
pub fn median_and_max(mut samples: Vec<u64>) -> (Option<u64>, Option<u64>) {
    samples.sort_unstable();
    (percentile(&samples, 0.5), samples.last().copied())
}

/// One citizen that was given a waiting-room ticket and was later admitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TicketedAdmission {
    /// `position` of the first `waiting_room` answer this citizen got.
    pub position_first: u64,
    /// When its login was answered 201, measured from storm start.
    pub admitted_at: Duration,
}

/// How far admission order strayed from ticket order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AdmissionOrder {
    /// Ticketed citizens that were admitted (the population compared).
    pub compared: usize,
    /// Of those, citizens admitted strictly later than some citizen whose first position was
    /// strictly larger (someone behind them in line got in before them).
    pub out_of_order: usize,
    /// `out_of_order / compared`; 0 when nothing was compared.
    pub out_of_order_share: f64,
    /// Largest `|rank by first position - rank by admission time|` (ranks 1-based, ties broken by
    /// the other key, then by input order).
    pub rank_displacement_max: usize,
    /// Largest `p_j - p_i` over pairs where `j` was admitted strictly before `i` and
    /// `p_j > p_i` (first positions): how far back in line the worst overtaker stood. 0 when in order.
    pub overtake_position_gap_max: u64,
    /// The slack allowed below: the client's longest sleep between retries.
    pub slack_s: f64,
    /// Citizens overtaken by more than the slack: some j with `p_j > p_i` got in more than
    /// `slack_s` before i. Citizens called in the same batch come back up to one sleep apart,
    /// so only this counts the server letting someone behind in while i had long been waiting.
    pub out_of_order_beyond_slack: usize,
    /// `out_of_order_beyond_slack / compared`.
    pub out_of_order_beyond_slack_share: f64,
}

/// Compares admission order with ticket order; see [`AdmissionOrder`] for the definitions.
pub fn admission_order(admissions: &[TicketedAdmission], slack: Duration) -> AdmissionOrder {
    if admissions.is_empty() {
        return AdmissionOrder { slack_s: slack.as_secs_f64(), ..AdmissionOrder::default() };
    }
    let mut by_time: Vec<usize> = (0..admissions.len()).collect();
    by_time.sort_by_key(|&index| (admissions[index].admitted_at, admissions[index].position_first, index));
    // Walk in admission order, one group of equal admission times at a time: a citizen is out
    // of order when a strictly earlier group held a strictly larger first position.
    let mut out_of_order = 0;
    let mut overtake_position_gap_max = 0;
    let mut position_max_before: Option<u64> = None;
    let mut group_start = 0;
    while group_start < by_time.len() {
        let group_time = admissions[by_time[group_start]].admitted_at;
        let group_end = by_time[group_start..]
            .iter()
            .position(|&index| admissions[index].admitted_at != group_time)
            .map_or(by_time.len(), |offset| group_start + offset);
        let group = &by_time[group_start..group_end];
        for &index in group {
            let position = admissions[index].position_first;
            if let Some(max) = position_max_before.filter(|&max| max > position) {
                out_of_order += 1;
                overtake_position_gap_max = overtake_position_gap_max.max(max - position);
            }
        }
        let group_max = group.iter().map(|&index| admissions[index].position_first).max();
        position_max_before = position_max_before.max(group_max);
        group_start = group_end;
    }
    let mut by_position: Vec<usize> = (0..admissions.len()).collect();
    by_position.sort_by_key(|&index| (admissions[index].position_first, admissions[index].admitted_at, index));
    let mut rank_by_time = vec![0usize; admissions.len()];
    for (rank, &index) in by_time.iter().enumerate() {
        rank_by_time[index] = rank;
    }
    let rank_displacement_max =
        by_position.iter().enumerate().map(|(rank, &index)| rank.abs_diff(rank_by_time[index])).max().unwrap_or(0);
    // Beyond the slack: walk in admission order, keeping the largest position of those admitted
    // more than `slack` before the current one.
    let mut out_of_order_beyond_slack = 0;
    let mut earlier = 0;
    let mut position_max_earlier: Option<u64> = None;
    for &index in &by_time {
        let admitted_at = admissions[index].admitted_at;
        while earlier < by_time.len() && admissions[by_time[earlier]].admitted_at + slack < admitted_at {
            position_max_earlier = position_max_earlier.max(Some(admissions[by_time[earlier]].position_first));
            earlier += 1;
        }
        if position_max_earlier.is_some_and(|max| max > admissions[index].position_first) {
            out_of_order_beyond_slack += 1;
        }
    }
    assert!(out_of_order <= admissions.len());
    assert!(out_of_order_beyond_slack <= out_of_order);
    AdmissionOrder {
        compared: admissions.len(),
        out_of_order,
        out_of_order_share: out_of_order as f64 / admissions.len() as f64,
        rank_displacement_max,
        overtake_position_gap_max,
        slack_s: slack.as_secs_f64(),
        out_of_order_beyond_slack,
        out_of_order_beyond_slack_share: out_of_order_beyond_slack as f64 / admissions.len() as f64,
    }
}

/// Answers to one kind of request: HTTP answers keyed `"<status>"` or `"<status> <error code>"`,
/// and the failures that got no HTTP answer, counted apart.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindTally {
    pub answers: BTreeMap<String, u64>,
    /// No answer within the per-request timeout.
    pub timeouts: u64,
    /// Connect failures, resets and truncated answers.
    pub connection_errors: u64,
    /// Requests abandoned because the run's deadline came first.
    pub cut_at_deadline: u64,
}

impl KindTally {
    /// Requests of this kind that got an HTTP answer.
    pub fn answered(&self) -> u64 {
        self.answers.values().sum()
    }
}

/// What happened to one request, as the tally counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending<'a> {
    Answered { status: u16, code: Option<&'a str> },
    Timeout,
    ConnectionError,
    CutAtDeadline,
}

/// Answers per request kind, shared by every task of a run.
#[derive(Debug, Default)]
pub struct Tally {
    kinds: Mutex<BTreeMap<&'static str, KindTally>>,
}

impl Tally {
    pub fn record(&self, kind: &'static str, ending: Ending<'_>) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tally = kinds.entry(kind).or_default();
        match ending {
            Ending::Answered { status, code } => {
                let key = match code {
                    Some(code) => format!("{status} {code}"),
                    None => status.to_string(),
                };
                *tally.answers.entry(key).or_default() += 1;
            }
            Ending::Timeout => tally.timeouts += 1,
            Ending::ConnectionError => tally.connection_errors += 1,
            Ending::CutAtDeadline => tally.cut_at_deadline += 1,
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, KindTally> {
        let kinds = self.kinds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kinds.iter().map(|(kind, tally)| (kind.to_string(), tally.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.0), Some(7));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 0.0), Some(1));
        assert_eq!(percentile(&hundred, 0.5), Some(50));
        assert_eq!(percentile(&hundred, 0.99), Some(99));
        assert_eq!(percentile(&hundred, 1.0), Some(100));
        let ten: Vec<u64> = (1..=10).map(|value| value * 10).collect();
        assert_eq!(percentile(&ten, 0.5), Some(50));
        assert_eq!(percentile(&ten, 0.99), Some(100));
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), Some(2));
    }

    #[test]
    fn latency_summary_sorts_and_converts() {
        let summary = summarise_latency(vec![3000, 1000, 2000]);
        assert_eq!(summary.count, 3);
        assert_eq!(summary.p50_ms, Some(2.0));
        assert_eq!(summary.p99_ms, Some(3.0));
        assert_eq!(summary.max_ms, Some(3.0));
        assert_eq!(summarise_latency(vec![]), LatencySummary::default());
    }

    fn admission(position_first: u64, admitted_at_ms: u64) -> TicketedAdmission {
        TicketedAdmission { position_first, admitted_at: Duration::from_millis(admitted_at_ms) }
    }

    #[test]
    fn fifo_admission_is_in_order() {
        let order = admission_order(&[admission(1, 10), admission(2, 20), admission(3, 30)], Duration::ZERO);
        assert_eq!(
            order,
            AdmissionOrder {
                compared: 3,
                out_of_order: 0,
                out_of_order_share: 0.0,
                rank_displacement_max: 0,
                overtake_position_gap_max: 0,
                slack_s: 0.0,
                out_of_order_beyond_slack: 0,
                out_of_order_beyond_slack_share: 0.0,
            }
        );
        assert_eq!(admission_order(&[], Duration::ZERO), AdmissionOrder::default());
    }

    #[test]
    fn overtaking_within_the_slack_is_not_counted_beyond_it() {
        // 3 gets in at 10 s; 1 and 2, called with it, come back at 12 s and 20 s.
        let order = admission_order(
            &[admission(1, 12_000), admission(2, 20_000), admission(3, 10_000)],
            Duration::from_secs(5),
        );
        assert_eq!(order.out_of_order, 2);
        assert_eq!(order.out_of_order_beyond_slack, 1, "only 2, overtaken 10 s before, counts");
    }

    #[test]
    fn overtaken_citizens_are_out_of_order() {
        // Position 3 got in first: positions 1 and 2 were overtaken by it.
        let order = admission_order(&[admission(1, 20), admission(2, 30), admission(3, 10)], Duration::ZERO);
        assert_eq!(order.out_of_order, 2);
        assert!((order.out_of_order_share - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(order.rank_displacement_max, 2);
        assert_eq!(order.overtake_position_gap_max, 2);
        // Only position 2 was overtaken (by 3); position 4 came after everyone smaller.
        let order =
            admission_order(&[admission(1, 10), admission(3, 20), admission(2, 30), admission(4, 40)], Duration::ZERO);
        assert_eq!(order.out_of_order, 1);
        assert_eq!(order.rank_displacement_max, 1);
        assert_eq!(order.overtake_position_gap_max, 1);
    }

    #[test]
    fn ties_do_not_count_as_out_of_order() {
        // Admitted at the same instant: nobody was admitted strictly later than a larger position.
        let order = admission_order(&[admission(2, 10), admission(1, 10)], Duration::ZERO);
        assert_eq!(order.out_of_order, 0);
        // Equal first positions (issued at different moments) never overtake each other.
        let order = admission_order(&[admission(5, 10), admission(5, 20)], Duration::ZERO);
        assert_eq!(order.out_of_order, 0);
    }

    #[test]
    fn tally_keys_by_status_and_code() {
        let tally = Tally::default();
        tally.record("login", Ending::Answered { status: 201, code: None });
        tally.record("login", Ending::Answered { status: 503, code: Some("waiting_room") });
        tally.record("login", Ending::Answered { status: 503, code: Some("waiting_room") });
        tally.record("login", Ending::Timeout);
        tally.record("login", Ending::ConnectionError);
        let snapshot = tally.snapshot();
        let login = &snapshot["login"];
        assert_eq!(login.answers["201"], 1);
        assert_eq!(login.answers["503 waiting_room"], 2);
        assert_eq!(login.answered(), 3);
        assert_eq!((login.timeouts, login.connection_errors, login.cut_at_deadline), (1, 1, 0));
    }
}
