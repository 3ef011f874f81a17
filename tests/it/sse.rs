//! Event streams (server-sent events) from the outside: what `curl -N` and `EventSource`
//! see.

use std::time::Duration;

use crate::helpers::*;

const STREAM: &str = "/orders/electronics";

#[test]
fn a_stream_starts_with_the_totals_and_then_carries_every_change() {
    let addr = start();
    let mut events = Events::open(addr, STREAM, "");
    assert_eq!(events.head.status, 200);
    assert_eq!(
        events.head.header("Content-Type"),
        Some("text/event-stream")
    );
    assert_eq!(events.head.header("Cache-Control"), Some("no-cache"));
    assert_eq!(
        events.head.header("Content-Length"),
        None,
        "the body is the stream"
    );
    assert_eq!(events.next_block().as_deref(), Some("retry: 1000"));
    assert_eq!(
        events.next_block().as_deref(),
        Some(r#"data: {"id":"A1","total":3}"#)
    );
    assert_eq!(events.next_total(), ("A2".into(), 7));
    order(addr, "A1", 10);
    order(addr, "B1", 1);
    order(addr, "A2", 2);
    assert_eq!(events.next_total(), ("A1".into(), 13));
    assert_eq!(
        events.next_total(),
        ("A2".into(), 9),
        "nothing of another category"
    );
}

#[test]
fn streams_and_websockets_receive_the_same_totals() {
    let addr = start();
    let mut ws = ws_connect(addr, STREAM);
    initial_totals(&mut ws, 2);
    let mut streams: Vec<Events> = (0..3).map(|_| Events::open(addr, STREAM, "")).collect();
    for s in &mut streams {
        s.next_total();
        s.next_total();
    }
    for amount in 1..=20 {
        order(addr, "A1", amount);
    }
    let mut expected = 3;
    for amount in 1..=20 {
        expected += amount as u64;
        assert_eq!(next_total(&mut ws), ("A1".into(), expected));
        for s in &mut streams {
            assert_eq!(s.next_total(), ("A1".into(), expected));
        }
    }
}

#[test]
fn a_stream_is_only_for_a_category() {
    let addr = start();
    let product = Events::open(addr, "/orders/A1", "");
    assert_eq!(product.head.status, 404);
    let unknown = Events::open(addr, "/orders/books", "");
    assert_eq!(unknown.head.status, 404);
    // A 404 has a length and a JSON body naming what was wrong.
    let mut c = Client::connect(addr);
    let r = c.request(
        b"GET /orders/A1 HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("GET /orders/electronics")
    );
    // Without the Accept header the same path is the totals, as JSON.
    let r = get(addr, STREAM);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["id"], "A1");
}

#[test]
fn the_origin_rules_are_the_websockets() {
    let addr = start();
    let foreign = Events::open(addr, STREAM, "Origin: https://evil.example\r\n");
    assert_eq!(foreign.head.status, 403);
    let mut dev = Events::open(addr, STREAM, "Origin: http://localhost:5173\r\n");
    assert_eq!(dev.head.status, 200);
    assert_eq!(
        dev.head.header("Access-Control-Allow-Origin"),
        Some("http://localhost:5173")
    );
    assert_eq!(dev.next_total(), ("A1".into(), 3));
}

#[test]
fn keep_alive_comments_arrive_between_changes() {
    let addr = start_with(mock_srv::Config {
        ws_ping_interval: Duration::from_millis(100),
        ..Default::default()
    });
    let mut events = Events::open(addr, STREAM, "");
    events.next_total();
    events.next_total();
    assert_eq!(events.next_block().as_deref(), Some(": keep-alive"));
    order(addr, "A1", 1);
    assert_eq!(events.next_total(), ("A1".into(), 4));
}

/// A client that stops reading while orders pour in is not sent every step: its queue stays
/// within budget, and once it reads again it ends at the latest totals.
#[test]
fn a_slow_reader_converges_to_the_latest_totals() {
    let addr = start_with(mock_srv::Config {
        ws_queue_bytes: 4096,
        ..Default::default()
    });
    let mut slow = Events::open(addr, STREAM, "");
    let mut c = Client::connect(addr);
    let body = r#"{"amount":1}"#;
    let post = format!(
        "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..3000 {
        assert_eq!(c.request(post.as_bytes()).status, 200);
    }
    let mut last = 0;
    while last != 3003 {
        let (id, total) = slow.next_total();
        if id == "A1" {
            assert!(total > last, "totals only grow: {last} then {total}");
            last = total;
        }
    }
    // Still live.
    order(addr, "A2", 1);
    assert_eq!(slow.next_total(), ("A2".into(), 8));
}
