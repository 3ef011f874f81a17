//! Clients that misbehave on purpose: none of them may hurt another client, grow the
//! server's memory without bound, or leave requests unanswered. Each test names the
//! problem it guards against (found by probing issue 2's first build).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::helpers::*;

/// A masked text frame "nope" (key 0): a message the server answers with an error.
const NOPE_FRAME: [u8; 10] = [0x81, 0x84, 0, 0, 0, 0, b'n', b'o', b'p', b'e'];

/// Issue 2 probe: a WebSocket client that sends without pause kept `read_ws` looping and
/// froze every other client.
#[test]
fn a_flooding_websocket_client_does_not_starve_the_others() {
    let addr = start();
    let mut flooder = Client::connect(addr);
    flooder.send(b"GET /orders/toys HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(flooder.read_response().status, 101);
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = std::sync::mpsc::channel();
    let flood = {
        let stop = stop.clone();
        let mut stream = flooder.stream.try_clone().unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        std::thread::spawn(move || {
            let batch: Vec<u8> = NOPE_FRAME
                .iter()
                .copied()
                .cycle()
                .take(NOPE_FRAME.len() * 10_000)
                .collect();
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) && sent < 500_000_000 {
                if stream.write_all(&batch).is_err() {
                    break;
                }
                sent += batch.len();
                let _ = started_tx.send(());
            }
            sent
        })
    };
    // The server has taken the first megabyte: the flood is under way.
    started
        .recv_timeout(TIMEOUT)
        .expect("the flood never started");
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    for amount in 1..=20 {
        order(addr, "A1", 1);
        assert_eq!(next_total(&mut ws), ("A1".into(), 3 + amount));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(flood.join().unwrap() > 0);
}

/// Issue 2 probe: chunks of one byte with 4 KB extensions made a 64 KiB body cost
/// hundreds of megabytes of framing.
#[test]
fn chunk_extensions_cannot_multiply_a_body() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut line = b"1;".to_vec();
    line.extend(std::iter::repeat_n(b'a', 4000));
    line.extend_from_slice(b"\r\n \r\n");
    // 100 of these are 400 KB of framing around a 100-byte body: far past the bound.
    c.send(&line.repeat(100));
    assert_eq!(c.read_response().status, 413);
    assert_eq!(current_total(addr, "electronics", "A1"), 3);
}

/// Issue 2 probe: pipelined requests whose responses passed the output high-water mark
/// were left unanswered when reading resumed.
#[test]
fn a_long_pipeline_is_answered_in_full() {
    let addr = start();
    let index_len = get(addr, "/").body.len();
    let n = 1 + 3 * (256 * 1024) / index_len;
    for half_close in [false, true] {
        let mut c = Client::connect(addr);
        let batch = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(n);
        c.send(batch.as_bytes());
        if half_close {
            c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        for i in 0..n {
            let r = c.read_response();
            assert_eq!(
                (r.status, r.body.len()),
                (200, index_len),
                "response {i} of {n}"
            );
        }
    }
}

/// A subscriber that never reads while thousands of orders arrive: the others get every
/// update in order, and the slow one, once it reads, ends with the current totals.
#[test]
fn a_subscriber_that_never_reads_hurts_nobody_and_converges() {
    let addr = start_with(mock_srv::Config {
        ws_queue_bytes: 4096,
        ..Default::default()
    });
    let mut slow = ws_connect(addr, "/orders/electronics");
    let mut fast = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut fast, 2);
    let mut poster = Client::connect(addr);
    let post = |id: &str| {
        format!(
            "POST /orders/{id} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{{\"amount\":1}}"
        )
    };
    let rounds = 100;
    let per_round = 100;
    for round in 0..rounds {
        let id = if round % 2 == 0 { "A1" } else { "A2" };
        poster.send(post(id).repeat(per_round).as_bytes());
        for _ in 0..per_round {
            assert_eq!(poster.read_response().status, 200);
        }
        let start = if id == "A1" { 3 } else { 7 } + (round / 2) * per_round;
        for k in 1..=per_round {
            assert_eq!(next_total(&mut fast), (id.to_string(), (start + k) as u64));
        }
    }
    let final_a1 = 3 + (rounds / 2 * per_round) as u64;
    let final_a2 = 7 + (rounds / 2 * per_round) as u64;
    // The slow client reads everything it was sent; the last total of each product is the
    // current one.
    let (mut last_a1, mut last_a2) = (0, 0);
    while last_a1 != final_a1 || last_a2 != final_a2 {
        match next_total(&mut slow) {
            (id, t) if id == "A1" => last_a1 = t,
            (_, t) => last_a2 = t,
        }
    }
    order(addr, "A1", 1);
    assert_eq!(next_total(&mut slow), ("A1".into(), final_a1 + 1));
}

/// Orders arriving faster than a round of flushes goes by: a burst of thousands of POSTs
/// read in a few turns, with a queue budget of 1 KiB per subscriber. The category's feed is
/// handed out each time it outgrows that budget; a reading subscriber still sees every
/// total it is sent in order and ends with the current one, and so does one that only
/// starts reading afterwards.
#[test]
fn a_burst_of_orders_larger_than_the_queue_budget_is_handed_out_in_order() {
    burst_of_orders(1, 3000);
}

/// Orders from many connections at once, each pipelining a burst, with a queue budget of
/// 1 KiB per subscriber: each turn applies one order per connection, so the category's
/// feed outgrows the budget within a turn and is handed out to the subscribers. A reading
/// subscriber sees every total it is sent in order and ends with the current one, and so
/// does one that only starts reading afterwards.
#[test]
fn a_burst_of_orders_from_many_connections_is_handed_out_in_order() {
    burst_of_orders(40, 25);
}

/// `posters` connections each pipeline `per_poster` orders for A1, with a queue budget of
/// 1 KiB per subscriber; every order is answered 200, a reading subscriber sees only rising
/// totals up to the last, and so does one that starts reading afterwards.
fn burst_of_orders(posters: usize, per_poster: usize) {
    let addr = start_with(mock_srv::Config {
        ws_queue_bytes: 1024,
        ..Default::default()
    });
    let mut reader = ws_connect(addr, "/orders/electronics");
    let mut late = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut reader, 2);
    let post = "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":1}";
    let mut clients: Vec<Client> = (0..posters).map(|_| Client::connect(addr)).collect();
    for c in &mut clients {
        c.send(post.repeat(per_poster).as_bytes());
    }
    for c in &mut clients {
        for _ in 0..per_poster {
            assert_eq!(c.read_response().status, 200);
        }
    }
    let final_a1 = 3 + (posters * per_poster) as u64;
    totals_rise_to(&mut reader, &mut late, final_a1);
}

/// A client that sends pings without reading the pongs: past its queue budget the server
/// stops reading it (TCP pushes back instead of the server buffering pongs), and once the
/// client reads, reading resumes: every pong arrives, and then the answer to a command.
#[test]
fn a_client_that_pings_without_reading_is_paused_then_served() {
    let addr = start_with(mock_srv::Config {
        ws_queue_bytes: 1024,
        ..Default::default()
    });
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    // All the pings in one write, so the server gets one readable event for all of them:
    // only its own resumption reads the ones left after it paused. Masked with key 0.
    let pings = 300;
    let mut burst = Vec::new();
    for i in 0..pings {
        burst.extend_from_slice(&[0x89, 0x80 | 100, 0, 0, 0, 0]);
        burst.extend_from_slice(format!("{i:0100}").as_bytes());
    }
    ws.get_mut().write_all(&burst).unwrap();
    let mut pongs = 0;
    while pongs < pings {
        match ws.read().expect("a pong before the timeout") {
            tungstenite::Message::Pong(p) => {
                assert_eq!(p, format!("{pongs:0100}").as_bytes(), "in order");
                pongs += 1;
            }
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    ws.send(tungstenite::Message::text(
        r#"{"cmd":"update-category","payload":{"category":"confectionery"}}"#,
    ))
    .unwrap();
    assert_eq!(initial_totals(&mut ws, 1), totals(&[("B1", 101)]));
}

/// `reader` (which has read its first totals) receives only A1 totals, each higher than the
/// one before, up to `last_a1`; `late` (which has read nothing yet) ends there too, its A1
/// totals rising.
fn totals_rise_to(reader: &mut Ws, late: &mut Ws, last_a1: u64) {
    let mut last = 3;
    while last != last_a1 {
        let (id, total) = next_total(reader);
        assert_eq!(id, "A1");
        assert!(total > last, "{total} after {last}");
        last = total;
    }
    let mut last = 0;
    while last != last_a1 {
        let (id, total) = next_total(late);
        if id == "A1" {
            assert!(total > last, "{total} after {last}");
            last = total;
        }
    }
}
