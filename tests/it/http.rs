//! The HTTP side of the contract, from the outside: routes, statuses, bodies, framing.

use std::io::Write;

use serde_json::json;

use crate::helpers::*;

const ELECTRONICS: &str = r#"[{"id":"A1","name":"Vacuum Cleaner","rrp":"99.99","info":"The suckiest vacuum in the world."},{"id":"A2","name":"Leaf Blower","rrp":"303.33","info":"This product will blow your socks off."}]"#;

#[test]
fn get_category_lists_its_products() {
    let addr = start();
    let r = get(addr, "/electronics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.body, ELECTRONICS);
    let r = get(addr, "/confectionery?ignored=1");
    assert_eq!(
        r.json(),
        json!([{"id":"B1","name":"Chocolate Bar","rrp":"22.40","info":"Delicious overpriced chocolate."}])
    );
}

#[test]
fn unknown_category_and_id_are_404_in_fastify_shape() {
    let addr = start();
    let r = get(addr, "/toys");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["statusCode"], 404);
    assert_eq!(r.json()["error"], "Not Found");
    assert!(r.json()["message"].as_str().unwrap().contains("toys"));
    let r = post_json(addr, "/orders/Z9", r#"{"amount":1}"#);
    assert_eq!(
        r.body,
        r#"{"statusCode":404,"error":"Not Found","message":"Order Z9 not found"}"#
    );
    assert_eq!(
        post_json(addr, "/toys", r#"{"name":"a","rrp":"1","info":"b"}"#).status,
        404
    );
}

#[test]
fn post_order_answers_ok_and_adds_to_the_total() {
    let addr = start();
    let r = post_json(addr, "/orders/A1", r#"{"amount": 10}"#);
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
    assert_eq!(current_total(addr, "electronics", "A1"), 13);
    order(addr, "A1", -13);
    assert_eq!(current_total(addr, "electronics", "A1"), 0);
}

/// DESIGN.md: the seed accepted `{"amount": 2**63}`; every bad amount is 400 and the total
/// does not move.
#[test]
fn bad_amounts_are_400_and_change_nothing() {
    let addr = start();
    for body in [
        r#"{"amount": 1.5}"#,
        r#"{"amount": "10"}"#,
        r#"{"amount": null}"#,
        r#"{"amount": 1e3}"#,
        r#"{"amount": 9223372036854775808}"#,
        r#"{"amount": 9007199254740989}"#,
        r#"{"amount": -4}"#,
        r#"{"amount": 100000000000000000000000}"#,
        r#"{}"#,
        r#"[10]"#,
        r#"{"amount": 10"#,
    ] {
        let r = post_json(addr, "/orders/A1", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["error"], "Bad Request");
        assert_eq!(
            current_total(addr, "electronics", "A1"),
            3,
            "{body} changed the total"
        );
    }
    // The largest total is fine; one more is not.
    order(addr, "A1", 9007199254740988);
    assert_eq!(current_total(addr, "electronics", "A1"), 9007199254740991);
    assert_eq!(post_json(addr, "/orders/A1", r#"{"amount":1}"#).status, 400);
}

#[test]
fn a_form_encoded_body_is_415() {
    let addr = start();
    let body = r#"{"amount":1}"#;
    let r = Client::connect(addr).request(
        format!(
            "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 415);
    assert_eq!(current_total(addr, "electronics", "A1"), 3);
}

#[test]
fn post_product_returns_the_whole_category_and_starts_at_zero() {
    let addr = start();
    let r = post_json(
        addr,
        "/electronics",
        r#"{"name":"Fan","rrp":"12.50","info":"Keeps you cool."}"#,
    );
    assert_eq!(r.status, 201);
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(
        list[2],
        json!({"id":"A3","name":"Fan","rrp":"12.50","info":"Keeps you cool."})
    );
    assert_eq!(get(addr, "/electronics").json(), list);
    assert_eq!(current_total(addr, "electronics", "A3"), 0);
    order(addr, "A3", 4);
    assert_eq!(current_total(addr, "electronics", "A3"), 4);
}

#[test]
fn post_product_errors_name_the_field() {
    let addr = start();
    for (body, field) in [
        (r#"{"rrp":"1","info":"i"}"#, "name"),
        (r#"{"name":"n","rrp":"cheap","info":"i"}"#, "rrp"),
        (r#"{"name":"n","rrp":"1","info":7}"#, "info"),
        (r#""just a string""#, "object"),
    ] {
        let r = post_json(addr, "/electronics", body);
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.json()["message"].as_str().unwrap().contains(field),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(get(addr, "/electronics").body, ELECTRONICS);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let addr = start();
    for (method, path) in [
        ("DELETE", "/electronics"),
        ("PUT", "/orders/A1"),
        ("POST", "/app.js"),
    ] {
        let r = Client::connect(addr).request(
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 405, "{method} {path}");
        assert!(
            r.header("allow").unwrap().contains("GET"),
            "{method} {path}"
        );
        assert_eq!(r.json()["statusCode"], 405);
    }
    let r = Client::connect(addr).request(b"BREW /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 501);
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(b"HEAD /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = c.read_response_to(true);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(ELECTRONICS.len().to_string().as_str())
    );
    // The connection is still in step: the next response is the GET's, not a stray body.
    let r = c.request(b"GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.body, ELECTRONICS);
}

#[test]
fn keep_alive_pipelining_and_split_requests() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(b"GET /confectionery HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /orders/B1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":1}GET /nope.css HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.read_response().body, r#"{"ok":true}"#);
    assert_eq!(c.read_response().status, 404);
    // One request dribbled a few bytes at a time on the same connection.
    let req = b"POST /orders/B1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":2}";
    for piece in req.chunks(3) {
        c.send(piece);
        c.stream.flush().unwrap();
    }
    assert_eq!(c.read_response().body, r#"{"ok":true}"#);
    assert_eq!(current_total(addr, "confectionery", "B1"), 104);
}

/// A request pipelined behind a change is read only once the change is applied: it sees
/// the new product, and an order for that product is not refused as unknown.
#[test]
fn a_request_pipelined_behind_a_change_sees_it() {
    let addr = start();
    let mut c = Client::connect(addr);
    let product = r#"{"name":"Fan","rrp":"12.50","info":"Cool."}"#;
    let order = r#"{"amount":4}"#;
    let pipeline = format!(
        "POST /electronics HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{product}\
         POST /orders/A3 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{order}\
         GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n",
        product.len(),
        order.len()
    );
    c.send(pipeline.as_bytes());
    let added = c.read_response();
    assert_eq!(added.status, 201);
    assert_eq!(added.json()[2]["id"], "A3");
    let ordered = c.read_response();
    assert_eq!(
        (ordered.status, ordered.body.as_str()),
        (200, r#"{"ok":true}"#)
    );
    let listing = c.read_response();
    assert_eq!(listing.json()[2]["name"], "Fan");
    assert_eq!(current_total(addr, "electronics", "A3"), 4);
}

/// A client that sends an order and then closes its sending side (`nc -N`, `curl` with a
/// half-close) gets its answer and then the server's close, not a 60 s wait: the end of
/// input is noticed behind the order held for the backend.
#[test]
fn an_order_followed_by_a_half_close_is_answered_then_closed() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":2}");
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let r = c.read_response();
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
    assert!(c.is_closed_by_server(), "closed within {TIMEOUT:?}");
    assert_eq!(current_total(addr, "electronics", "A1"), 5);
}

#[test]
fn chunked_bodies_are_decoded() {
    let addr = start();
    let mut c = Client::connect(addr);
    let r = c.request(b"POST /orders/A2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"amo\r\n7;x=y\r\nunt\":5}\r\n0\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
    assert_eq!(current_total(addr, "electronics", "A2"), 12);
}

#[test]
fn framing_errors_are_answered_and_the_connection_closed() {
    let addr = start_with(mock_srv::Config {
        max_body_bytes: 100,
        max_head_bytes: 1024,
        ..Default::default()
    });
    let cases: &[(&[u8], u16)] = &[
        (b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 101\r\n\r\n", 413),
        (b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
    ];
    for (raw, status) in cases {
        let mut c = Client::connect(addr);
        let r = c.request(raw);
        assert_eq!(r.status, *status, "{}", String::from_utf8_lossy(raw));
        assert_eq!(r.json()["statusCode"], *status);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed_by_server());
    }
    let mut big = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2000));
    let mut c = Client::connect(addr);
    assert_eq!(c.request(&big).status, 431);
    assert_eq!(current_total(addr, "electronics", "A1"), 3);
}

#[test]
fn static_files_are_served_and_the_path_guard_holds() {
    let addr = start();
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("<select id=\"category\">"));
    let r = get(addr, "/app.js");
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    for path in [
        "/../Cargo.toml",
        "/..%2fCargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2e%2e%2fsrc%2fmain.rs",
        "/%252e%252e/Cargo.toml",
        "/..\\Cargo.toml",
        "/%5c..%5cCargo.toml",
        "/static/../../etc/passwd",
        "//etc/passwd",
        "/.git/config",
        "/index.html%00.js",
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.json()["statusCode"], 404, "{path}");
    }
}

#[test]
fn a_static_folder_can_be_given() {
    let dir = std::env::temp_dir().join(format!("mock-srv-it-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>mine</h1>").unwrap();
    std::fs::write(dir.join("style.css"), "h1{}").unwrap();
    let addr = start_with(mock_srv::Config {
        static_dir: Some(dir.clone()),
        ..Default::default()
    });
    assert_eq!(get(addr, "/").body, "<h1>mine</h1>");
    assert_eq!(
        get(addr, "/style.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(get(addr, "/app.js").status, 404);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cors_preflight_and_origin_checks() {
    let addr = start();
    let r = Client::connect(addr).request(
        b"OPTIONS /orders/A1 HTTP/1.1\r\nHost: localhost:3000\r\nOrigin: http://localhost:5173\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type")
    );

    let r = Client::connect(addr).request(
        b"GET /electronics HTTP/1.1\r\nHost: localhost\r\nOrigin: http://127.0.0.1:8080\r\n\r\n",
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8080")
    );

    // A page elsewhere cannot post orders from the developer's browser.
    let r = Client::connect(addr).request(
        b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":5}",
    );
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(current_total(addr, "electronics", "A1"), 3);

    // DNS rebinding: a foreign Host while bound to loopback.
    let r =
        Client::connect(addr).request(b"GET /electronics HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(r.status, 403);
}

#[test]
fn allow_origin_admits_one_more_page() {
    let addr = start_with(mock_srv::Config {
        allow_origins: vec!["http://my-app.test:8080".into()],
        ..Default::default()
    });
    let r = Client::connect(addr).request(
        b"GET /electronics HTTP/1.1\r\nHost: localhost\r\nOrigin: http://my-app.test:8080\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://my-app.test:8080")
    );
}

#[test]
fn expect_100_continue_gets_a_go_ahead() {
    let addr = start();
    let mut c = Client::connect(addr);
    c.send(b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(c.read_response().status, 100);
    c.send(b"{\"amount\":1}");
    assert_eq!(c.read_response().body, r#"{"ok":true}"#);
}

#[test]
fn http_1_0_closes_after_the_response() {
    let addr = start();
    let mut c = Client::connect(addr);
    let r = c.request(b"GET /electronics HTTP/1.0\r\n\r\n");
    assert_eq!(r.body, ELECTRONICS);
    assert!(c.is_closed_by_server());
}

/// Totals over plain HTTP: `GET /orders/<id>` and `GET /orders/<category>` (the same URL
/// with `Upgrade: websocket` subscribes).
#[test]
fn totals_can_be_read_over_http() {
    let addr = start();
    let r = get(addr, "/orders/A1");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"id":"A1","total":3}"#)
    );
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    order(addr, "A1", 10);
    assert_eq!(get(addr, "/orders/A1").body, r#"{"id":"A1","total":13}"#);
    assert_eq!(
        get(addr, "/orders/electronics").body,
        r#"[{"id":"A1","total":13},{"id":"A2","total":7}]"#
    );
    let mut c = Client::connect(addr);
    c.send(b"HEAD /orders/B1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = c.read_response_to(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("23"));
    let unknown = get(addr, "/orders/Z9");
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap()
            .contains("electronics")
    );
}

#[test]
fn categories_are_listed_with_their_prefix_and_product_count() {
    let addr = start();
    let listed = r#"[{"name":"electronics","prefix":"A","products":2},{"name":"confectionery","prefix":"B","products":1}]"#;
    assert_eq!(get(addr, "/categories").body, listed);
    let added = post_json(
        addr,
        "/confectionery",
        r#"{"name":"Gum","rrp":"1.00","info":"Chewy."}"#,
    );
    assert_eq!(added.status, 201);
    assert_eq!(get(addr, "/categories").json()[1]["products"], 2);
    let r = post_json(addr, "/categories", "{}");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
}

#[test]
fn healthz_says_ok_while_serving() {
    let addr = start();
    let r = get(addr, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"ok"}"#));
    let r = post_json(addr, "/healthz", "{}");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
}

/// `OPTIONS` and a 405 on the same path list the same methods.
#[test]
fn allow_is_the_same_for_options_and_405() {
    let addr = start();
    for path in [
        "/orders/A1",
        "/orders/electronics",
        "/electronics",
        "/app.js",
        "/categories",
    ] {
        let options = Client::connect(addr)
            .request(format!("OPTIONS {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        assert_eq!(options.status, 204, "{path}");
        let refused = Client::connect(addr).request(
            format!("PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(refused.status, 405, "{path}");
        assert_eq!(options.header("allow"), refused.header("allow"), "{path}");
        assert_eq!(
            options.header("access-control-allow-methods"),
            refused.header("allow"),
            "{path}"
        );
    }
}

/// A request target in absolute form names the host that counts (RFC 9112 section 3.2.2):
/// a foreign one is refused like a foreign Host header, whatever the Host header says.
#[test]
fn an_absolute_form_target_is_checked_like_a_host_header() {
    let addr = start();
    let body = r#"{"amount":1}"#;
    let post = |target: &str| {
        Client::connect(addr).request(
            format!(
                "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let refused = post("http://evil.example/orders/A1");
    assert_eq!(refused.status, 403);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    assert_eq!(current_total(addr, "electronics", "A1"), 3);
    let own = post(&format!("http://localhost:{}/orders/A1", addr.port()));
    assert_eq!(own.status, 200);
    assert_eq!(current_total(addr, "electronics", "A1"), 4);
}

#[test]
fn a_stalled_request_gets_408_and_an_idle_connection_is_closed() {
    use std::time::{Duration, Instant};
    let addr = start_with(mock_srv::Config {
        request_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let begun = Instant::now();
    let mut stalled = Client::connect(addr);
    stalled.send(b"GET /electronics HTTP/1.1\r\nHost: loc");
    let r = stalled.read_response();
    assert_eq!(r.status, 408);
    assert!(stalled.is_closed_by_server());
    assert!(begun.elapsed() >= Duration::from_millis(200));

    let mut idle = Client::connect(addr);
    assert_eq!(
        idle.request(b"GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .status,
        200
    );
    assert!(
        idle.is_closed_by_server(),
        "idle keep-alive connection left open"
    );
    // Others are served all along.
    assert_eq!(get(addr, "/confectionery").status, 200);
}

#[test]
fn past_the_connection_cap_new_clients_get_503() {
    let addr = start_with(mock_srv::Config {
        max_connections: Some(2),
        ..Default::default()
    });
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    assert_eq!(
        a.request(b"GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .status,
        200
    );
    assert_eq!(
        b.request(b"GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .status,
        200
    );
    let mut c = Client::connect(addr);
    let r = c.read_response();
    assert_eq!(r.status, 503);
    assert!(c.is_closed_by_server());
    drop(a);
    // Once a slot frees up, new clients are served again.
    // (The server may see the new client before it sees `a` leave: retry a bounded number
    // of times; each try is a full round trip.)
    let served = (0..100).any(|_| {
        let mut d = Client::connect(addr);
        d.request(b"GET /electronics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .status
            == 200
    });
    assert!(served);
    assert_eq!(
        b.request(b"GET /confectionery HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .status,
        200
    );
}

/// `GET /metrics`: Prometheus text with what was asked, applied and sent.
#[test]
fn metrics_count_requests_changes_connections_and_deliveries() {
    let addr = start();
    let mut ws = ws_connect(addr, "/orders/electronics");
    initial_totals(&mut ws, 2);
    let mut events = Events::open(addr, "/orders/electronics", "");
    events.next_total();
    order(addr, "A1", 2);
    order(addr, "A1", 3);
    assert_eq!(
        post_json(addr, "/orders/A1", r#"{"amount":-100}"#).status,
        400
    );
    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(next_total(&mut ws), ("A1".into(), 5));
    assert_eq!(next_total(&mut ws), ("A1".into(), 8));

    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let sample = |line: &str| -> u64 {
        let found = r
            .body
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '));
        found
            .unwrap_or_else(|| panic!("{line} not in:\n{}", r.body))
            .parse()
            .unwrap()
    };
    // Two orders and the event stream.
    assert_eq!(
        sample(r#"mock_srv_requests_total{route="orders",status="200"}"#),
        3
    );
    // The refusal of -100 is the catalog's (it would take the total below 0): a change refused.
    assert_eq!(
        sample(r#"mock_srv_requests_total{route="orders",status="400"}"#),
        1
    );
    assert_eq!(
        sample(r#"mock_srv_requests_total{route="orders",status="101"}"#),
        1
    );
    assert_eq!(
        sample(r#"mock_srv_requests_total{route="other",status="404"}"#),
        1
    );
    assert_eq!(
        sample(r#"mock_srv_changes_total{result="order_applied"}"#),
        2
    );
    assert_eq!(sample(r#"mock_srv_changes_total{result="refused"}"#), 1);
    assert_eq!(sample(r#"mock_srv_subscribers{protocol="websocket"}"#), 1);
    assert_eq!(sample(r#"mock_srv_subscribers{protocol="sse"}"#), 1);
    assert_eq!(sample(r#"mock_srv_connections{protocol="sse"}"#), 1);
    // Two totals, each to two subscribers.
    assert_eq!(sample("mock_srv_deliveries_total"), 4);
    // Every line is a comment or `name{labels} value`.
    for line in r.body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("mock_srv_"), "{line}");
        value.parse::<u64>().unwrap();
    }
}

/// An `Idempotency-Key` that is not 1 to 128 visible characters is refused, and nothing
/// changes; a good one is taken (in memory, every change is answered, so it changes
/// nothing else).
#[test]
fn idempotency_keys_are_checked() {
    let addr = start();
    for key in ["", "has space", &"k".repeat(129)] {
        let r = Client::connect(addr).request(
            format!(
                "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{{\"amount\":1}}"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 400, "{key:?}");
        assert!(r.body.contains("Idempotency-Key"), "{}", r.body);
    }
    let r = Client::connect(addr).request(
        b"POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: order-1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"amount\":1}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/orders/A1").body, r#"{"id":"A1","total":4}"#);
}
