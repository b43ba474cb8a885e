//! The citizen waiting room: first in, first out tickets for session slots.
//!
//! Honest queue behaviour, as the best hosted waiting rooms do it:
//! - a ticket's place only moves forward; polling never changes it;
//! - one ticket per login: an app that lost its ticket (restarted, or retries without it) gets
//!   the same ticket and place again, so retry loops neither jump the line nor lengthen it;
//! - a ticket not polled (by a retry or `GET /v1/waiting-room/{ticket}`) for
//!   [`TICKET_POLL_GRACE_MS`] is dropped, and everyone behind it moves up;
//! - the estimated wait starts from what the server knows of the line's pace (password checks a
//!   second, free and held slots, how long a slot is held: [`Prior`]) and blends in the rate at
//!   which citizens were let in over the last [`RATE_WINDOW_MS`] as it is measured
//!   (`admission::wait_estimate`).
//!
//! The line itself lives in the database (`store::waiting`), so every server behind a load
//! balancer keeps one order; this is each server's mirror of it, re-read about twice a second
//! ([`WaitingRoom::rebuild`]), with the tickets it adds itself placed at once ([`WaitingRoom::join`]).
//! Positions are counted with a Fenwick tree over the mirror's order, so a poll costs O(log n)
//! even with a city's worth of people in line. Pure: the time is an argument.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::wait_estimate::{estimate_wait_s, Measured, Prior};

/// A ticket not polled for this long is dropped (API.md: 60 seconds).
pub const TICKET_POLL_GRACE_MS: i64 = 60_000;
/// Admissions counted for the rate behind the wait estimate.
pub const RATE_WINDOW_MS: i64 = 60_000;
/// Most tickets held at once.
pub const TICKETS_MAX: usize = 1_000_000;
/// Most Fenwick indexes (4 bytes each): the line's places are counted over the range of its
/// shared sequence numbers, from the oldest live ticket to the newest; past this many, new
/// logins are told the line is full.
pub const LINE_SPAN_MAX: usize = 32 * TICKETS_MAX;

/// A place in line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub ticket: String,
    /// 1 for the first in line.
    pub position: usize,
    pub estimated_wait_s: u64,
}

/// What a citizen login may do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A slot is free for this login: go on to the password check. The ticket it held, if any
    /// (with its place in the shared line), leaves the line once its session exists.
    Admit(Option<(String, i64)>),
    /// Wait: here is the place in line.
    Wait(Place),
    /// The login must join the line: take a ticket (from the shared line) and [`WaitingRoom::join`].
    Join,
    /// The line itself is full.
    Full,
}

/// What may be let in now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// Session slots free.
    pub slots: usize,
    /// Password checks that may start or queue now without the queue growing past its bound.
    pub checks: usize,
}

struct Entry {
    /// The shared line's order (the database's sequence number); less the mirror's base, it is
    /// the Fenwick index, so places follow the shared order even for tickets joined here
    /// between two syncs in another order than the database gave them theirs.
    line_seq: i64,
    login: String,
    polled_ms: i64,
}

/// A ticket of the shared line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineEntry {
    pub ticket: String,
    pub login: String,
    pub polled_ms: i64,
    /// Its place in the shared line (the database's sequence number).
    pub line_seq: i64,
}

/// Counts live tickets by sequence number; `prefix(seq)` is how many are at or before `seq`.
struct Fenwick {
    tree: Vec<i32>,
}

impl Fenwick {
    fn with_capacity(size: usize) -> Fenwick {
        Fenwick { tree: vec![0; size + 1] }
    }

    fn add(&mut self, seq: usize, delta: i32) {
        let mut index = seq + 1;
        while index < self.tree.len() {
            self.tree[index] += delta;
            index += index & index.wrapping_neg();
        }
    }

    fn prefix(&self, seq: usize) -> usize {
        let mut index = seq + 1;
        let mut sum = 0i64;
        while index > 0 {
            sum += i64::from(self.tree[index]);
            index -= index & index.wrapping_neg();
        }
        usize::try_from(sum).expect("live tickets are never negative")
    }
}

pub struct WaitingRoom {
    entries: HashMap<String, Entry>,
    by_login: HashMap<String, String>,
    /// (last poll, line_seq, ticket): the front holds the ticket polled longest ago.
    by_poll: BTreeSet<(i64, i64, String)>,
    live: Fenwick,
    /// The line_seq at Fenwick index 0.
    base: i64,
    /// Fenwick indexes available: line_seqs from `base` to `base + capacity_seq - 1`.
    capacity_seq: usize,
    admissions_ms: VecDeque<i64>,
    /// What the line's pace is known to be before measuring it, as of the last [`WaitingRoom::set_prior`].
    prior: Prior,
    /// Polls seen here since the last sync, for the shared line.
    touched: HashMap<String, i64>,
    /// Tickets joined here since the last sync began: the line read by that sync may not have
    /// them yet.
    recent_joins: Vec<LineEntry>,
    /// Tickets let in here whose removal from the shared line is not done yet.
    admitted_pending: HashSet<String>,
    /// Citizen logins let in.
    pub admitted_total: u64,
    /// Citizen logins answered with a place in line instead (each answer counts).
    pub shed_total: u64,
    /// Tickets ever issued.
    pub tickets_total: u64,
    /// Tickets dropped for want of a poll.
    pub dropped_total: u64,
}

impl WaitingRoom {
    /// An empty line whose waits are estimated from `prior` until admissions are measured.
    pub fn new(prior: Prior) -> WaitingRoom {
        WaitingRoom::with_sequence_space(4_096, prior)
    }

    fn with_sequence_space(capacity_seq: usize, prior: Prior) -> WaitingRoom {
        WaitingRoom {
            entries: HashMap::new(),
            by_login: HashMap::new(),
            by_poll: BTreeSet::new(),
            live: Fenwick::with_capacity(capacity_seq),
            base: 0,
            capacity_seq,
            admissions_ms: VecDeque::new(),
            prior,
            touched: HashMap::new(),
            recent_joins: Vec::new(),
            admitted_pending: HashSet::new(),
            admitted_total: 0,
            shed_total: 0,
            tickets_total: 0,
            dropped_total: 0,
        }
    }

    pub fn waiting(&self) -> usize {
        self.entries.len()
    }

    /// Admissions per second over the rate window, if any were seen.
    pub fn admission_rate_per_s(&self, now_ms: i64) -> Option<f64> {
        let first = *self.admissions_ms.front()?;
        let span_ms = (now_ms - first).clamp(1_000, RATE_WINDOW_MS);
        Some(self.admissions_ms.len() as f64 * 1_000.0 / span_ms as f64)
    }

    /// The server's knowledge of the line's pace now (the password threads' measured rate and
    /// the free slots change): set before each arrival, poll or join.
    pub fn set_prior(&mut self, prior: Prior) {
        self.prior = prior;
    }

    /// The estimated wait of the person at `position`: the prior, blended with the admissions
    /// measured over the rate window.
    pub fn estimated_wait_s(&self, position: usize, now_ms: i64) -> u64 {
        let measured = self
            .admission_rate_per_s(now_ms)
            .map(|rate_per_s| Measured { admissions: self.admissions_ms.len(), rate_per_s });
        estimate_wait_s(position, &self.prior, measured)
    }

    /// A citizen `login` asks for a session, with `room` to let people in now. The first
    /// `min(room.slots, room.checks)` of the line may come in, whichever of them asks first: a slot
    /// is held for each of them until they come (the head is never passed over for lack of room),
    /// and no more are let in than the password threads can check at once.
    pub fn arrive(&mut self, login: &str, ticket: Option<&str>, room: Room, now_ms: i64) -> Verdict {
        self.prune(now_ms);
        let free = room.slots.min(room.checks);
        // A login in line keeps its ticket, whether or not it presented it.
        let held = self
            .by_login
            .get(login)
            .cloned()
            .or_else(|| ticket.filter(|ticket| self.entries.contains_key(*ticket)).map(str::to_owned));
        match held {
            Some(held) => {
                let position = self.position(&held).expect("a held ticket is live");
                if position <= free {
                    let line_seq = self.entries[&held].line_seq;
                    self.remove(&held);
                    self.note_admission(now_ms, true);
                    self.admitted_pending.insert(held.clone());
                    return Verdict::Admit(Some((held, line_seq)));
                }
                self.touch(&held, now_ms);
                self.shed_total += 1;
                Verdict::Wait(self.place(held, position, now_ms))
            }
            None if self.entries.is_empty() && free > 0 => {
                self.note_admission(now_ms, false);
                Verdict::Admit(None)
            }
            None if self.entries.len() >= TICKETS_MAX || self.capacity_seq >= LINE_SPAN_MAX => Verdict::Full,
            None => {
                self.shed_total += 1;
                Verdict::Join
            }
        }
    }

    /// A ticket holder asks where it stands; `None` for an unknown or dropped ticket.
    pub fn poll(&mut self, ticket: &str, now_ms: i64) -> Option<Place> {
        self.prune(now_ms);
        let position = self.position(ticket)?;
        self.touch(ticket, now_ms);
        Some(self.place(ticket.to_owned(), position, now_ms))
    }

    /// Puts `login`'s ticket (taken from the shared line, where its place is `line_seq`) into this
    /// mirror, at the end unless it is there already (the next rebuild puts it in the shared
    /// line's order), and answers its place.
    pub fn join(&mut self, ticket: &str, login: &str, line_seq: i64, now_ms: i64) -> Place {
        if self.entries.contains_key(ticket) {
            let position = self.position(ticket).expect("a live ticket has a place");
            self.touch(ticket, now_ms);
            return self.place(ticket.to_owned(), position, now_ms);
        }
        if let Some(stale) = self.by_login.get(login).cloned() {
            self.remove(&stale);
        }
        if line_seq < self.base || line_seq - self.base >= self.capacity_seq as i64 {
            self.reindex(Some(line_seq));
        }
        self.live.add(self.index(line_seq), 1);
        self.entries.insert(ticket.to_owned(), Entry { line_seq, login: login.to_owned(), polled_ms: now_ms });
        self.by_login.insert(login.to_owned(), ticket.to_owned());
        self.by_poll.insert((now_ms, line_seq, ticket.to_owned()));
        self.touched.insert(ticket.to_owned(), now_ms);
        self.recent_joins.push(LineEntry {
            ticket: ticket.to_owned(),
            login: login.to_owned(),
            polled_ms: now_ms,
            line_seq,
        });
        self.tickets_total += 1;
        let position = self.position(ticket).expect("just added");
        self.place(ticket.to_owned(), position, now_ms)
    }

    /// A ticket let in here has left the shared line (or was put back in it).
    pub fn settle(&mut self, ticket: &str) {
        self.admitted_pending.remove(ticket);
    }

    /// Replaces the mirror with the shared line (in line order), keeping polls seen here that
    /// the line does not have yet, tickets joined here since the line was read, and leaving out
    /// tickets let in here whose removal is under way.
    pub fn rebuild(&mut self, mut line: Vec<LineEntry>) {
        line.retain(|entry| !self.admitted_pending.contains(&entry.ticket));
        let in_line: HashSet<String> = line.iter().map(|entry| entry.ticket.clone()).collect();
        line.extend(self.recent_joins.iter().filter(|entry| !in_line.contains(&entry.ticket)).cloned());
        line.sort_by_key(|entry| entry.line_seq);
        line.dedup_by_key(|entry| entry.line_seq);
        self.entries.clear();
        self.by_login.clear();
        self.by_poll.clear();
        for LineEntry { ticket, login, polled_ms, line_seq } in line {
            let polled_ms = self.touched.get(&ticket).copied().unwrap_or(polled_ms).max(polled_ms);
            self.by_login.insert(login.clone(), ticket.clone());
            self.by_poll.insert((polled_ms, line_seq, ticket.clone()));
            self.entries.insert(ticket, Entry { line_seq, login, polled_ms });
        }
        self.reindex(None);
    }

    /// Starts a sync: the polls seen here since the last one, to record in the shared line.
    pub fn take_touched(&mut self) -> Vec<(String, i64)> {
        self.recent_joins.clear();
        self.touched.drain().collect()
    }

    fn place(&self, ticket: String, position: usize, now_ms: i64) -> Place {
        Place { ticket, position, estimated_wait_s: self.estimated_wait_s(position, now_ms) }
    }

    fn position(&self, ticket: &str) -> Option<usize> {
        self.entries.get(ticket).map(|entry| self.live.prefix(self.index(entry.line_seq)))
    }

    fn touch(&mut self, ticket: &str, now_ms: i64) {
        let entry = self.entries.get_mut(ticket).expect("touched tickets are live");
        self.by_poll.remove(&(entry.polled_ms, entry.line_seq, ticket.to_owned()));
        entry.polled_ms = now_ms;
        self.by_poll.insert((now_ms, entry.line_seq, ticket.to_owned()));
        self.touched.insert(ticket.to_owned(), now_ms);
    }

    fn remove(&mut self, ticket: &str) {
        let entry = self.entries.remove(ticket).expect("removed tickets are live");
        self.by_login.remove(&entry.login);
        self.by_poll.remove(&(entry.polled_ms, entry.line_seq, ticket.to_owned()));
        self.live.add(self.index(entry.line_seq), -1);
    }

    fn prune(&mut self, now_ms: i64) {
        while let Some((polled_ms, _, ticket)) = self.by_poll.first().cloned() {
            if now_ms - polled_ms < TICKET_POLL_GRACE_MS {
                break;
            }
            self.remove(&ticket);
            self.dropped_total += 1;
        }
        while self.admissions_ms.front().is_some_and(|at| now_ms - at > RATE_WINDOW_MS) {
            self.admissions_ms.pop_front();
        }
    }

    /// Counts an admission; one from the line also counts toward the measured rate (a burst of
    /// logins let in while nobody waited says nothing about how fast the line moves).
    fn note_admission(&mut self, now_ms: i64, from_line: bool) {
        self.admitted_total += 1;
        if !from_line {
            return;
        }
        self.admissions_ms.push_back(now_ms);
        // Bounded: at most one entry per admission within the window, and the window is pruned.
        if self.admissions_ms.len() > TICKETS_MAX {
            self.admissions_ms.pop_front();
        }
    }

    fn index(&self, line_seq: i64) -> usize {
        usize::try_from(line_seq - self.base).expect("a live ticket is at or after the base")
    }

    /// Re-lays the Fenwick tree over the live tickets (and `extra`, about to join): the base is
    /// the smallest line_seq, with room for twice the span, so tickets joining at the end rarely
    /// need it again.
    fn reindex(&mut self, extra: Option<i64>) {
        let seqs = self.entries.values().map(|entry| entry.line_seq).chain(extra);
        let (low, high) = seqs.fold((i64::MAX, i64::MIN), |(low, high), seq| (low.min(seq), high.max(seq)));
        self.base = if low == i64::MAX { 0 } else { low };
        let span = if low == i64::MAX { 0 } else { usize::try_from(high - low + 1).unwrap_or(usize::MAX) };
        self.capacity_seq = span.saturating_mul(2).max(4_096);
        self.live = Fenwick::with_capacity(self.capacity_seq);
        let indexes: Vec<usize> = self.entries.values().map(|entry| self.index(entry.line_seq)).collect();
        for index in indexes {
            self.live.add(index, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 checks a second, 100 slots none free, each held 100 s: a place beyond the free slots
    /// waits 1.1 s before margin.
    fn prior() -> Prior {
        Prior::new(10.0, 100, 0, 100.0)
    }

    fn new_room() -> WaitingRoom {
        WaitingRoom::new(prior())
    }

    fn wait(verdict: Verdict) -> Place {
        match verdict {
            Verdict::Wait(place) => place,
            other => panic!("expected a place in line, got {other:?}"),
        }
    }

    /// Arrives, and joins the line with a fresh ticket when told to (as the server does with
    /// the shared line).
    fn arrive(room: &mut WaitingRoom, login: &str, ticket: Option<&str>, free: usize, now_ms: i64) -> Verdict {
        let checks = usize::MAX;
        match room.arrive(login, ticket, Room { slots: free, checks }, now_ms) {
            Verdict::Join => {
                let line_seq = room.tickets_total as i64;
                Verdict::Wait(room.join(&format!("ticket-{login}"), login, line_seq, now_ms))
            }
            other => other,
        }
    }

    fn admitted(verdict: Verdict) -> String {
        match verdict {
            Verdict::Admit(Some((ticket, _))) => ticket,
            other => panic!("expected a ticket let in, got {other:?}"),
        }
    }

    #[test]
    fn a_full_house_queues_in_order_and_lets_the_head_in_first() {
        let mut room = new_room();
        let first = wait(arrive(&mut room, "a", None, 0, 0));
        let second = wait(arrive(&mut room, "b", None, 0, 0));
        assert_eq!((first.position, second.position), (1, 2));
        // One slot frees: the second, retrying first, still waits; the first gets in.
        assert_eq!(wait(arrive(&mut room, "b", Some(&second.ticket), 1, 10)).position, 2);
        assert_eq!(admitted(arrive(&mut room, "a", Some(&first.ticket), 1, 20)), first.ticket);
        assert_eq!(room.poll(&second.ticket, 30).unwrap().position, 1);
        // A newcomer does not overtake someone in line, even with a free slot.
        assert_eq!(wait(arrive(&mut room, "c", None, 1, 40)).position, 2);
    }

    #[test]
    fn no_more_are_let_in_than_can_be_checked_and_the_head_keeps_its_turn() {
        let mut room = new_room();
        let places: Vec<Place> =
            (0..3).map(|index| wait(arrive(&mut room, &format!("p{index}"), None, 0, 0))).collect();
        // Ten slots free, but room for one password check: only the head may come in.
        let tight = Room { slots: 10, checks: 1 };
        let second = room.arrive("p1", Some(&places[1].ticket), tight, 10);
        assert_eq!(wait(second).position, 2, "the second waits for the head");
        let head = room.arrive("p0", Some(&places[0].ticket), tight, 20);
        assert_eq!(head, Verdict::Admit(Some((places[0].ticket.clone(), 0))), "let in with its place in line");
        // Nobody new comes in past the line, nor while checks are full.
        let newcomer = room.arrive("new", None, Room { slots: 10, checks: 0 }, 30);
        assert_eq!(newcomer, Verdict::Join);
    }

    #[test]
    fn a_login_keeps_its_ticket_when_it_retries_without_it() {
        let mut room = new_room();
        let first = wait(arrive(&mut room, "a", None, 0, 0));
        wait(arrive(&mut room, "b", None, 0, 0));
        for _ in 0..10 {
            let again = wait(arrive(&mut room, "a", None, 0, 5));
            assert_eq!((again.ticket.as_str(), again.position), (first.ticket.as_str(), 1));
        }
        assert_eq!(room.waiting(), 2, "retries did not lengthen the line");
    }

    #[test]
    fn unpolled_tickets_are_dropped_and_the_line_moves_up() {
        let mut room = new_room();
        let first = wait(arrive(&mut room, "a", None, 0, 0));
        let second = wait(arrive(&mut room, "b", None, 0, 30_000));
        assert_eq!(room.poll(&second.ticket, 59_999).unwrap().position, 2);
        assert_eq!(room.poll(&second.ticket, 60_000).unwrap().position, 1);
        assert!(room.poll(&first.ticket, 60_001).is_none());
        assert_eq!(room.dropped_total, 1);
    }

    #[test]
    fn the_wait_estimate_follows_the_measured_admission_rate() {
        let mut room = new_room();
        assert_eq!(room.estimated_wait_s(10, 0), 17, "unmeasured: the prior's 11 s, with margin");
        room.set_prior(prior().with_slots_free(10));
        assert_eq!(room.estimated_wait_s(10, 0), 2, "within the free slots: password checks only");
        room.set_prior(prior());
        for second in 0..20 {
            assert_eq!(arrive(&mut room, &format!("in{second}"), None, 1, second * 1_000), Verdict::Admit(None));
        }
        assert_eq!(room.estimated_wait_s(10, 20_000), 17, "logins let in with nobody waiting measure nothing");
        // Twenty from the line, one a second: the head is called as each slot frees.
        let line: Vec<Place> =
            (0..20).map(|index| wait(arrive(&mut room, &format!("w{index}"), None, 0, 20_000))).collect();
        for (index, place) in line.iter().enumerate() {
            let now_ms = 21_000 + index as i64 * 1_000;
            assert!(matches!(
                arrive(&mut room, &format!("w{index}"), Some(&place.ticket), 1, now_ms),
                Verdict::Admit(Some(_))
            ));
        }
        // 20 measured weigh as the prior: (33 s by the prior + 30 s at 1/s) / 2, with margin.
        assert_eq!(room.estimated_wait_s(30, 41_000), 48);
    }

    #[test]
    fn a_rebuild_takes_the_shared_order_and_keeps_local_polls() {
        let mut room = new_room();
        let mine = room.join("t-mine", "mine", 7, 1_000);
        assert_eq!(mine.position, 1);
        // Another server's ticket came first in the shared line.
        let entry = |ticket: &str, login: &str, polled_ms, line_seq| LineEntry {
            ticket: ticket.into(),
            login: login.into(),
            polled_ms,
            line_seq,
        };
        room.rebuild(vec![entry("t-other", "other", 500, 6), entry("t-mine", "mine", 0, 7)]);
        assert_eq!(room.poll("t-other", 1_000).unwrap().position, 1);
        assert_eq!(room.poll("t-mine", 1_000).unwrap().position, 2);
        let touched: std::collections::BTreeMap<_, _> = room.take_touched().into_iter().collect();
        assert_eq!(touched.get("t-mine"), Some(&1_000));
        // The local poll (at 1,000 ms) outlives the shared line's older record (0 ms).
        assert!(room.poll("t-mine", 60_500).is_some());
    }

    #[test]
    fn places_follow_the_shared_order_whatever_order_tickets_join_in() {
        let mut room = new_room();
        // The database numbered b before c before a's retry lookup, but they join in another order.
        room.join("t-c", "c", 12, 0);
        room.join("t-b", "b", 11, 0);
        room.join("t-a", "a", 10, 0);
        let places: Vec<usize> =
            ["t-a", "t-b", "t-c"].iter().map(|ticket| room.poll(ticket, 1).unwrap().position).collect();
        assert_eq!(places, [1, 2, 3]);
        // Far ahead of the mirror's room: it is re-laid, and places still count right.
        room.join("t-d", "d", 1_000_000, 2);
        assert_eq!(room.poll("t-d", 3).unwrap().position, 4);
        assert_eq!(room.poll("t-a", 3).unwrap().position, 1);
    }

    #[test]
    fn positions_stay_right_across_compaction() {
        let mut room = WaitingRoom::with_sequence_space(8, prior());
        let mut tickets = Vec::new();
        for index in 0..30 {
            let place = wait(arrive(&mut room, &format!("c{index}"), None, 0, 0));
            tickets.push(place.ticket);
            assert_eq!(place.position, tickets.len());
            if index % 3 == 0 {
                // The head leaves as new ones come, so sequence numbers run out and are renumbered.
                let head = tickets.remove(0);
                assert_eq!(room.poll(&head, 0).unwrap().position, 1);
                room.remove(&head);
            }
        }
        for (index, ticket) in tickets.iter().enumerate() {
            assert_eq!(room.poll(ticket, 0).unwrap().position, index + 1);
        }
    }
}
