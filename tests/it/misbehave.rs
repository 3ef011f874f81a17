//! Misbehaving on purpose: `--fail-rate`, `--latency` and `--ws-drop-ms`, as a frontend
//! rehearsing its error and reconnect handling meets them.

use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

/// `--fail-rate 100`: every API request is answered 503 on purpose, marked as injected,
/// and nothing changes; the web app's files, the health check and WebSockets are served.
#[test]
fn fail_rate_fails_api_requests_on_purpose_and_changes_nothing() {
    let addr = start_with(mock_srv::Config {
        fail_rate_percent: 100,
        ..Default::default()
    });
    for r in [
        post_json(addr, "/orders/A1", r#"{"amount":5}"#),
        post_json(
            addr,
            "/electronics",
            r#"{"name":"Fan","rrp":"1.00","info":"i"}"#,
        ),
        get(addr, "/electronics"),
        get(addr, "/orders/A1"),
        get(addr, "/categories"),
    ] {
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.header("x-mock-srv-injected"), Some("fail-rate"));
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("--fail-rate")
        );
    }
    assert_eq!(get(addr, "/").status, 200);
    assert_eq!(get(addr, "/healthz").status, 200);
    // The order and the product were not applied: the totals a subscriber gets say so.
    let mut ws = ws_connect(addr, "/orders/electronics");
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
}

/// `--fail-rate 50`: about half, and each request either fails whole or succeeds whole.
#[test]
fn fail_rate_fails_about_its_share() {
    let addr = start_with(mock_srv::Config {
        fail_rate_percent: 50,
        ..Default::default()
    });
    let mut c = Client::connect(addr);
    let (mut failed, mut applied) = (0u64, 0u64);
    for _ in 0..200 {
        let r = c.request(
            b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":1}",
        );
        match r.status {
            200 => applied += 1,
            503 => failed += 1,
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    // (A GET could fail on purpose too: the subscription's first totals are read instead.)
    let mut ws = ws_connect(addr, "/orders/electronics");
    assert_eq!(
        initial_totals(&mut ws, 2)[0],
        ("A1".to_string(), 3 + applied)
    );
}

#[test]
fn fail_rate_never_fails_a_stream() {
    let addr = start_with(mock_srv::Config {
        fail_rate_percent: 100,
        ..Default::default()
    });
    let mut events = Events::open(addr, "/orders/electronics", "");
    assert_eq!(events.head.status, 200);
    assert_eq!(events.next_total(), ("A1".into(), 3));
}

/// `--latency`: an API request waits at least its time, the web app's files do not, and
/// pipelined requests behind a waiting one are answered in order after it.
#[test]
fn latency_holds_api_requests_and_keeps_their_order() {
    let addr = start_with(mock_srv::Config {
        latency: Some((Duration::from_millis(400), Duration::from_millis(600))),
        ..Default::default()
    });
    let started = Instant::now();
    let mut c = Client::connect(addr);
    let body = r#"{"amount":10}"#;
    c.send(
        format!(
            "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
             GET /orders/A1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    // Meanwhile the page itself is served at once, on another connection.
    assert_eq!(get(addr, "/").status, 200);
    let posted = c.read_response();
    assert_eq!(
        (posted.status, posted.body.as_str()),
        (200, r#"{"ok":true}"#)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let read = c.read_response();
    assert_eq!(read.body, r#"{"id":"A1","total":13}"#);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

/// A change held by `--latency` is not applied before its time: a subscriber hears of it
/// no sooner than the poster's answer could come.
#[test]
fn latency_applies_the_change_when_it_answers() {
    let addr = start_with(mock_srv::Config {
        latency: Some((Duration::from_millis(300), Duration::from_millis(300))),
        ..Default::default()
    });
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let started = Instant::now();
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut ws), ("A1".into(), 4));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// `--ws-drop-ms`: WebSockets are closed with 1012 and event streams ended, at random,
/// and a new subscription gets the totals as usual.
#[test]
fn ws_drop_ends_streams_at_random() {
    let addr = start_with(mock_srv::Config {
        ws_drop_mean: Some(Duration::from_millis(50)),
        ..Default::default()
    });
    for _ in 0..3 {
        let mut ws = ws_connect(addr, "/orders/electronics");
        assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
        assert_eq!(next_close_code(&mut ws), Some(CloseCode::Restart));
        let mut events = Events::open(addr, "/orders/electronics", "");
        assert_eq!(events.next_total(), ("A1".into(), 3));
        assert!(events.ends());
    }
}

/// SIGTERM while requests wait for their `--latency`: they are answered at once (the order
/// applied, `Connection: close`), and then the WebSockets get 1001.
#[test]
fn shutdown_answers_requests_held_by_latency() {
    let (child, addr) = crate::ops::spawn(&["--latency", "30000"]);
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let mut c = Client::connect(addr);
    c.send(&order_request(4, ""));
    // Once the POST is in and waiting, as /metrics (not held itself) says:
    while !get(addr, "/metrics")
        .body
        .lines()
        .any(|l| l == "mock_srv_requests_held 1")
    {}
    let started = Instant::now();
    assert_eq!(crate::ops::terminate(child), 0);
    let r = c.read_response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(next_total(&mut ws), ("A1".into(), 7));
    assert_eq!(next_close_code(&mut ws), Some(CloseCode::Away));
}
