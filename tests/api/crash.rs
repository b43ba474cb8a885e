//! Durability: every acknowledged operation survives a SIGKILL; the one in flight is resolved by
//! retrying it with its key.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{amount_body, history_rows, new_key, Backend, Body, TestApp};

/// Charges streamed; their sum (about 220,000 won) stays within every limit.
const CHARGES_COUNT: usize = 200;
/// Bound on waiting for the streamer to reach the kill point.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Charge `index` is of `1000 + index` won, so each one is recognisable in the history.
fn charge_amount(index: usize) -> usize {
    1000 + index
}

fn acknowledged_charges_survive_a_crash(backend: Backend) {
    let mut app = TestApp::start(backend);
    let mut alice = app.api.register_citizen("alice");

    // Kill once a random-ish number of charges (50..149) has been acknowledged.
    let kill_after = 50 + usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100;
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let streamer = {
        let (api, token, acknowledged_count) = (app.api.clone(), alice.token.clone(), acknowledged_count.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for index in 0..CHARGES_COUNT {
                let (key, amount) = (new_key(), charge_amount(index));
                let body = amount_body(&amount.to_string());
                let headers = [("Idempotency-Key", key.as_str())];
                match api.try_send("POST", "/v1/wallet/charges", &token, Body::Json(&body), &headers) {
                    Ok(reply) => {
                        assert_eq!(reply.status, 201, "{reply}");
                        acknowledged.push(amount);
                        let sum: usize = acknowledged.iter().sum();
                        assert_eq!(reply.json["balance"], sum.to_string(), "{reply}");
                        acknowledged_count.store(acknowledged.len(), Ordering::SeqCst);
                    }
                    Err(_) => return (acknowledged, Some((key, amount))),
                }
            }
            (acknowledged, None)
        })
    };
    let deadline = Instant::now() + STREAM_TIMEOUT;
    while acknowledged_count.load(Ordering::SeqCst) < kill_after && !streamer.is_finished() && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    app.server.kill9();
    let (acknowledged, in_flight) = streamer.join().expect("the streaming thread failed");
    // Shown when the test fails: where the crash hit.
    eprintln!(
        "killed after {} acknowledged charges; in flight: {:?}",
        acknowledged.len(),
        in_flight.as_ref().map(|(_, amount)| amount)
    );
    assert!(acknowledged.len() >= kill_after.min(CHARGES_COUNT), "the stream stalled before the kill point");

    app.restart();
    alice.relogin(&app.api);
    let api = &app.api;
    let acknowledged_sum: usize = acknowledged.iter().sum();
    let balance: usize = api.balance(&alice.token).parse().expect("a balance is a whole number");
    let mut expected: BTreeSet<usize> = acknowledged.iter().copied().collect();
    if let Some((key, amount)) = in_flight {
        assert!(
            balance == acknowledged_sum || balance == acknowledged_sum + amount,
            "after the crash the balance is {balance}; acknowledged {acknowledged_sum}, in flight {amount}"
        );
        // Whether or not it was committed, the retry leaves it done exactly once.
        let body = amount_body(&amount.to_string());
        let retry = api.post("/v1/wallet/charges", &alice.token, &body, &[("Idempotency-Key", &key)]).expect(201);
        assert_eq!(retry["balance"], (acknowledged_sum + amount).to_string(), "{retry}");
        expected.insert(amount);
    } else {
        assert_eq!(balance, acknowledged_sum);
    }

    let expected_sum: usize = expected.iter().sum();
    assert_eq!(api.balance(&alice.token), expected_sum.to_string());
    let history = history_rows(&api.history(&alice.token, "limit=200"));
    let charged: BTreeSet<usize> = history
        .iter()
        .filter(|(kind, _, _)| kind == "charge")
        .map(|(_, amount, _)| amount.parse().expect("won"))
        .collect();
    assert_eq!(history.len(), expected.len(), "each charge is in the history once");
    assert_eq!(charged, expected);
    app.assert_books_balance();
}

scenarios!(acknowledged_charges_survive_a_crash);
