//! WebSocket subscriptions from the outside, including each of the seed's bugs that
//! DESIGN.md lists.

use std::io::Write;

use serde_json::json;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

#[test]
fn on_open_the_totals_of_the_category_arrive_in_id_order() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/electronics");
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 3), ("A2", 7)]));
    let mut ws = ws_connect(addr, "/orders/confectionery");
    assert_eq!(next_total(&mut ws), ("B1".into(), 101));
}

/// Seed bug: all sockets shared one stream, so each update reached only one client.
#[test]
fn every_subscriber_receives_every_update() {
    let addr = start();
    let mut clients: Vec<Ws> = (0..3)
        .map(|_| ws_connect(addr, "/orders/electronics"))
        .collect();
    for ws in &mut clients {
        initial_totals(ws, 2);
    }
    order(addr, "A1", 10);
    order(addr, "A2", 1);
    for ws in &mut clients {
        assert_eq!(next_total(ws), ("A1".into(), 13));
        assert_eq!(next_total(ws), ("A2".into(), 8));
    }
}

/// More subscribers than the server writes in one loop turn: the broadcast goes out over
/// several turns while new orders arrive, and still every subscriber gets every total, in
/// order.
#[test]
fn a_broadcast_larger_than_one_turn_reaches_everyone_in_order() {
    let addr = start();
    let mut clients: Vec<Ws> = (0..300)
        .map(|_| ws_connect(addr, "/orders/electronics"))
        .collect();
    for ws in &mut clients {
        initial_totals(ws, 2);
    }
    for _ in 0..5 {
        order(addr, "A1", 1);
    }
    for ws in &mut clients {
        for total in 4..=8 {
            assert_eq!(next_total(ws), ("A1".into(), total));
        }
    }
}

/// Seed bug: one client disconnecting destroyed the shared stream and broke everyone.
#[test]
fn a_disconnect_breaks_nobody() {
    let addr = start();
    let mut stays = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut stays, 2);
    {
        let mut polite = ws_connect(addr, "/orders/electronics");
        initial_totals(&mut polite, 2);
        polite.close(None).unwrap();
        let _ = polite.read();
    }
    {
        // And one that just drops the TCP connection.
        let rude = ws_connect(addr, "/orders/electronics");
        drop(rude);
    }
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut stays), ("A1".into(), 4));
    let mut newcomer = ws_connect(addr, "/orders/electronics");
    assert_eq!(
        initial_totals(&mut newcomer, 2),
        totals(&[("A1", 4), ("A2", 7)])
    );
    order(addr, "A2", 1);
    assert_eq!(next_total(&mut stays), ("A2".into(), 8));
    assert_eq!(next_total(&mut newcomer), ("A2".into(), 8));
}

/// Seed bug: updates were not filtered by category. An order for B1 must not reach an
/// electronics subscriber: the next message it gets is the A1 order that follows.
#[test]
fn updates_reach_only_the_products_category() {
    let addr = start();
    let mut el = ws_connect(addr, "/orders/electronics");
    let mut co = ws_connect(addr, "/orders/confectionery");
    initial_totals(&mut el, 2);
    initial_totals(&mut co, 1);
    order(addr, "B1", 5);
    order(addr, "A1", 5);
    assert_eq!(next_total(&mut el), ("A1".into(), 8));
    assert_eq!(next_total(&mut co), ("B1".into(), 106));
}

#[test]
fn update_category_moves_the_subscription() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    ws.send(Message::text(
        json!({"cmd":"update-category","payload":{"category":"confectionery"}}).to_string(),
    ))
    .unwrap();
    assert_eq!(next_total(&mut ws), ("B1".into(), 101));
    order(addr, "A1", 1);
    order(addr, "B1", 1);
    assert_eq!(next_total(&mut ws), ("B1".into(), 102));
}

#[test]
fn bad_messages_get_an_error_and_the_connection_stays_open() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    for bad in [
        "not json",
        r#"{"cmd":"dance"}"#,
        r#"{"cmd":"update-category"}"#,
    ] {
        ws.send(Message::text(bad)).unwrap();
        let reply = next_json(&mut ws);
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {reply}"
        );
    }
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert!(next_json(&mut ws)["error"].is_string());
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut ws), ("A1".into(), 4));
}

/// `update-category` to a category that does not exist is answered with an error, and the
/// subscription stays where it was.
#[test]
fn update_category_to_an_unknown_category_is_answered_and_changes_nothing() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    ws.send(Message::text(
        r#"{"cmd":"update-category","payload":{"category":"toys"}}"#,
    ))
    .unwrap();
    let reply = next_json(&mut ws);
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("toys") && error.contains("electronics"),
        "{reply}"
    );
    order(addr, "A2", 1);
    assert_eq!(next_total(&mut ws), ("A2".into(), 8));
}

#[test]
fn an_unknown_category_sends_nothing_and_stays_open() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/toys");
    order(addr, "A1", 1);
    order(addr, "B1", 1);
    ws.send(Message::text(
        r#"{"cmd":"update-category","payload":{"category":"electronics"}}"#,
    ))
    .unwrap();
    // The first thing it ever receives is the electronics totals.
    assert_eq!(initial_totals(&mut ws, 2), totals(&[("A1", 4), ("A2", 7)]));
}

/// Slab keys are reused: a connection that takes a closed subscriber's key must not inherit
/// its subscription.
#[test]
fn a_reused_slab_key_inherits_no_subscription() {
    let addr = start();
    let mut old = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut old, 2);
    old.close(None).unwrap();
    while old.read().is_ok() {}
    drop(old);
    // The next connections reuse the freed keys.
    let mut fresh: Vec<Ws> = (0..2)
        .map(|_| ws_connect(addr, "/orders/confectionery"))
        .collect();
    for ws in &mut fresh {
        initial_totals(ws, 1);
    }
    order(addr, "A1", 1);
    order(addr, "B1", 1);
    for ws in &mut fresh {
        assert_eq!(next_total(ws), ("B1".into(), 102));
    }
}

#[test]
fn new_products_are_pushed_like_the_others() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    assert_eq!(
        post_json(
            addr,
            "/electronics",
            r#"{"name":"Fan","rrp":"1.00","info":"i"}"#
        )
        .status,
        201
    );
    assert_eq!(next_total(&mut ws), ("A3".into(), 0));
    order(addr, "A3", 2);
    assert_eq!(next_total(&mut ws), ("A3".into(), 2));
}

#[test]
fn upgrades_from_foreign_origins_are_refused() {
    let addr = start();
    let mut c = Client::connect(addr);
    let r = c.request(
        b"GET /orders/electronics HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n",
    );
    assert_eq!(r.status, 403);
    let mut c = Client::connect(addr);
    let r = c.request(
        b"GET /orders/electronics HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.header("sec-websocket-version")),
        (426, Some("13"))
    );
}

#[test]
fn the_handshake_answer_is_rfc_6455s() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(b"GET /orders/electronics HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:3000\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 101);
    // The example key and answer from RFC 6455 section 1.3.
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    c.stream.flush().unwrap();
}

#[test]
fn an_oversized_message_is_closed_with_1009() {
    let addr = start_with(mock_srv::Config {
        max_ws_message_bytes: 1024,
        ..Default::default()
    });
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    ws.send(Message::text("x".repeat(2000))).unwrap();
    assert_eq!(next_close_code(&mut ws), Some(CloseCode::Size));
}

#[test]
fn a_client_that_answers_pings_stays_and_a_silent_one_is_closed() {
    let addr = start_with(mock_srv::Config {
        ws_ping_interval: std::time::Duration::from_millis(150),
        ..Default::default()
    });
    // A raw client that completes the handshake and then never answers anything.
    let mut silent = Client::connect(addr);
    silent.send(b"GET /orders/electronics HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(silent.read_response().status, 101);

    // tungstenite answers each ping with a pong on its next read.
    let mut ws = ws_connect(addr, "/orders/electronics");
    let mut pings = 0;
    while pings < 4 {
        if let Message::Ping(_) = ws.read().expect("a ping before the timeout") {
            pings += 1;
        }
    }
    assert!(
        silent.is_closed_by_server(),
        "a client that never answers a ping stays open"
    );
    order(addr, "A1", 1);
    loop {
        match ws.read().expect("the update") {
            Message::Text(t) if t.contains("\"A1\"") => {
                assert_eq!(t.as_str(), r#"{"id":"A1","total":4}"#);
                break;
            }
            _ => continue,
        }
    }
}

#[test]
fn the_echo_endpoint_exists_only_when_asked_for() {
    let addr = start_with(mock_srv::Config {
        echo: true,
        ..Default::default()
    });
    let mut ws = ws_connect(addr, "/echo");
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0, 1, 2])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0, 1, 2]));
    // Echo sessions are not subscribers.
    order(addr, "A1", 1);
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("still here"));

    let plain = start();
    let mut c = Client::connect(plain);
    let r = c.request(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(r.status, 404);
}
