//! History pagination: newest first, stable cursors, bounded page size.

use std::collections::HashSet;

use crate::support::{query_escape, string, Backend, TestApp};

fn history_pages_with_cursors(backend: Backend) {
    let app = TestApp::start(backend);
    let api = &app.api;
    let alice = api.register_citizen("alice");
    for thousands in 1..=7 {
        api.charge(&alice.token, &format!("{thousands}000")).expect(201);
    }

    let mut seen = HashSet::new();
    let mut page = |cursor: &str, expected_amounts: &[&str], last: bool| -> String {
        let query =
            if cursor.is_empty() { "limit=3".to_owned() } else { format!("limit=3&cursor={}", query_escape(cursor)) };
        let history = api.history(&alice.token, &query);
        let items = history["items"].as_array().unwrap_or_else(|| panic!("no items: {history}"));
        let amounts: Vec<String> = items.iter().map(|item| string(&item["amount"])).collect();
        assert_eq!(amounts, expected_amounts, "{history}");
        for item in items {
            assert_eq!(item["kind"], "charge");
            assert!(seen.insert(string(&item["id"])), "item listed twice: {item}");
        }
        if last {
            assert!(history["next_cursor"].is_null(), "the last page has next_cursor null: {history}");
            String::new()
        } else {
            string(&history["next_cursor"])
        }
    };
    let cursor = page("", &["7000", "6000", "5000"], false);
    // A new item arriving meanwhile does not shift the pages already being read.
    api.charge(&alice.token, "8000").expect(201);
    let cursor = page(&cursor, &["4000", "3000", "2000"], false);
    page(&cursor, &["1000"], true);

    let first = api.history(&alice.token, "limit=1");
    assert_eq!((&first["items"][0]["amount"], &first["items"][0]["balance_after"]), (&"8000".into(), &"36000".into()));
    let all = api.history(&alice.token, "");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(8), "the default page (50) holds all 8: {all}");
    assert!(all["next_cursor"].is_null());
    assert_eq!(api.history(&alice.token, "limit=200")["items"].as_array().map(Vec::len), Some(8));
    for limit in ["0", "201"] {
        api.get(&format!("/v1/wallet/transactions?limit={limit}"), &alice.token).expect_error(422, "validation_failed");
    }
    app.assert_books_balance();
}

scenarios!(history_pages_with_cursors);
