//! Turns at the password threads, handed out by priority rather than by arrival.
//!
//! A storm of citizen logins lets tickets from the waiting room in as slots free; each then waits
//! here for a core to check its password. Handed out first come, first served, a ticket far back
//! in line that happened to retry first would be checked (and get its session) before the head of
//! the line, retrying a moment later. So turns go to staff first (merchants and admins never wait
//! behind citizens), then to tickets in line order, then to everyone else in arrival order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Who asks for a turn; turns go in this order (derived `Ord`: earlier variants first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Claim {
    /// Merchants and admins: never refused, never behind citizens.
    Staff,
    /// A citizen let in from the waiting room: its ticket's place in the shared line (the
    /// database's sequence number, the same on every server). Never refused: how many are let in
    /// at once is bounded by the waiting room (see `http/session.rs`).
    Line(i64),
    /// Any other citizen (a login while nobody waits, a registration, a password change):
    /// refused when `waiting_max` already wait.
    Citizen,
}

/// The queue was full; nothing was queued.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

struct Waiter {
    order: Reverse<(Claim, u64)>,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Waiter) -> bool {
        self.order == other.order
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Waiter) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Waiter) -> std::cmp::Ordering {
        self.order.cmp(&other.order)
    }
}

struct State {
    free: usize,
    /// The best claim on top (a max-heap of reversed keys).
    waiting: BinaryHeap<Waiter>,
    arrivals: u64,
}

/// A fixed number of turns (one per password thread) and a queue for the rest.
#[derive(Clone)]
pub struct Turns {
    state: Arc<Mutex<State>>,
    waiting_max: usize,
}

/// A turn held; given back (to the best waiter) when dropped.
pub struct Turn {
    turns: Turns,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.turns.give_back();
    }
}

impl Turns {
    pub fn new(count: usize, waiting_max: usize) -> Turns {
        assert!(count > 0, "at least one turn");
        let state = State { free: count, waiting: BinaryHeap::new(), arrivals: 0 };
        Turns { state: Arc::new(Mutex::new(state)), waiting_max }
    }

    /// How many wait for a turn now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether a [`Claim::Citizen`] would be refused now.
    pub fn is_full(&self) -> bool {
        self.waiting() >= self.waiting_max
    }

    /// Waits for a turn. A cancelled wait (the request went away) gives up its place, and its
    /// turn if it had just been handed one.
    pub async fn take(&self, claim: Claim) -> Result<Turn, Full> {
        let receiver = {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Ok(Turn { turns: self.clone() });
            }
            if claim == Claim::Citizen && state.waiting.len() >= self.waiting_max {
                return Err(Full);
            }
            let (wake, receiver) = oneshot::channel();
            state.arrivals += 1;
            let arrival = state.arrivals;
            state.waiting.push(Waiter { order: Reverse((claim, arrival)), wake });
            receiver
        };
        let mut pending = Pending { turns: self, receiver, done: false };
        (&mut pending.receiver).await.expect("a waiter's sender is dropped only after sending or when the waiter left");
        pending.done = true;
        Ok(Turn { turns: self.clone() })
    }

    fn give_back(&self) {
        let mut state = self.lock();
        // The best waiter still there gets the turn; waiters that left are skipped.
        while let Some(waiter) = state.waiting.pop() {
            if waiter.wake.send(()).is_ok() {
                return;
            }
        }
        state.free += 1;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a counter and a heap, consistent after every statement: a panic elsewhere
        // while holding the lock cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A queued claim; if dropped before its turn came, the turn (if just handed over) goes on.
struct Pending<'a> {
    turns: &'a Turns,
    receiver: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.receiver.close();
        if self.receiver.try_recv().is_ok() {
            self.turns.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn turns_go_to_staff_then_line_order_then_arrival_order() {
        let turns = Turns::new(1, 10);
        let first = turns.take(Claim::Citizen).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, claim) in [
            ("citizen-a", Claim::Citizen),
            ("line-9", Claim::Line(9)),
            ("citizen-b", Claim::Citizen),
            ("line-2", Claim::Line(2)),
            ("staff", Claim::Staff),
        ] {
            let (turns, order) = (turns.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = turns.take(claim).await.unwrap();
                order.lock().unwrap().push(name);
            }));
            settle().await;
        }
        assert_eq!(turns.waiting(), 5);
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["staff", "line-2", "line-9", "citizen-a", "citizen-b"]);
        assert_eq!(turns.waiting(), 0);
    }

    #[tokio::test]
    async fn citizens_are_refused_past_the_bound_but_line_and_staff_are_not() {
        let turns = Turns::new(1, 1);
        let _held = turns.take(Claim::Citizen).await.unwrap();
        let queued = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(Claim::Citizen).await.map(drop) }
        });
        settle().await;
        assert!(turns.is_full());
        assert_eq!(turns.take(Claim::Citizen).await.err(), Some(Full));
        for claim in [Claim::Line(1), Claim::Staff] {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take(claim).await.map(drop) });
        }
        settle().await;
        assert_eq!(turns.waiting(), 3);
        queued.abort();
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_the_turn_to_the_next() {
        let turns = Turns::new(1, 10);
        let held = turns.take(Claim::Citizen).await.unwrap();
        let gone = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(Claim::Line(1)).await.map(drop) }
        });
        settle().await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        // The one turn is free again: taken at once.
        let again = tokio::time::timeout(Duration::from_secs(5), turns.take(Claim::Citizen)).await;
        assert!(matches!(again, Ok(Ok(_))), "the cancelled waiter's turn was lost");
    }
}
