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

/// A stream is a category's: with the same header a product id is answered with its total
/// as JSON, an unknown name with 404, and `q=0` declines the stream.
#[test]
fn a_stream_is_only_for_a_category() {
    let addr = start();
    let accept = |path: &str, accept: &str| {
        Client::connect(addr).request(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n")
                .as_bytes(),
        )
    };
    let product = accept("/orders/A1", "application/json, text/event-stream");
    assert_eq!(
        (product.status, product.body.as_str()),
        (200, r#"{"id":"A1","total":3}"#)
    );
    let unknown = accept("/orders/books", "text/event-stream");
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap()
            .contains("categories: electronics")
    );
    let declined = accept(STREAM, "text/event-stream;q=0, application/json");
    assert_eq!(declined.json()[0]["id"], "A1");
    // HEAD: the stream's head, and the connection ends.
    let mut c = Client::connect(addr);
    c.send(b"HEAD /orders/electronics HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n");
    let head = c.read_response_to(true);
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    assert!(c.is_closed_by_server());
}

/// A client that half-closes after its request (`printf ... | nc -N`) still gets the
/// stream's head and totals, and then the end.
#[test]
fn a_half_closed_client_gets_what_was_queued() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(
        b"GET /orders/electronics HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
    );
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    std::io::Read::read_to_string(&mut c.stream, &mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(
        all.contains("data: {\"id\":\"A2\",\"total\":7}\n\n"),
        "{all}"
    );
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
    let post = order_request(1, "");
    for _ in 0..3000 {
        assert_eq!(c.request(&post).status, 200);
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
