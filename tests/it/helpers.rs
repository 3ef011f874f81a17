//! Shared helpers: start a server in-process on a free port, speak raw HTTP to it, and
//! subscribe with a tungstenite client. Every read has a timeout; nothing sleeps.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mock_srv::log::Level;
use mock_srv::{Config, Server};
use serde_json::Value;
use tungstenite::{Message, WebSocket};

/// How long any single read may wait before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a server with the default config on 127.0.0.1:0 in a background thread.
pub fn start() -> SocketAddr {
    start_with(Config::default())
}

/// Starts a server with `config` (its port replaced by 0) in a background thread.
pub fn start_with(config: Config) -> SocketAddr {
    let mut server = Server::bind(Config { port: 0, ..config }).expect("bind");
    if std::env::var_os("RUST_LOG").is_none() {
        server.set_log_level(Level::Off);
    }
    let addr = server.local_addr();
    std::thread::spawn(move || server.run().expect("server loop"));
    addr
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A raw HTTP/1.1 connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one response; `head_only` for answers to HEAD (no body follows).
    pub fn read_response_to(&mut self, head_only: bool) -> Resp {
        self.try_read_response_to(head_only).unwrap_or_else(|| {
            panic!(
                "no response before the connection ended; had: {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    /// Reads one response, or `None` when the connection ends or times out first.
    pub fn try_read_response(&mut self) -> Option<Resp> {
        self.try_read_response_to(false)
    }

    fn try_read_response_to(&mut self, head_only: bool) -> Option<Resp> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) =
                parsed.parse(&self.buf).expect("valid response head")
            {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let len = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                let len = if head_only || status == 204 || status < 200 {
                    0
                } else {
                    len
                };
                while self.buf.len() < head_len + len {
                    if !self.fill() {
                        return None;
                    }
                }
                let body =
                    String::from_utf8_lossy(&self.buf[head_len..head_len + len]).into_owned();
                self.buf.drain(..head_len + len);
                return Some(Resp {
                    status,
                    headers,
                    body,
                });
            }
            if !self.fill() {
                return None;
            }
        }
    }

    pub fn read_response(&mut self) -> Resp {
        self.read_response_to(false)
    }

    /// One request, one response.
    pub fn request(&mut self, raw: &[u8]) -> Resp {
        self.send(raw);
        self.read_response()
    }

    /// True when the server closes the connection (reads EOF or a reset) before the timeout.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1024];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Reads more bytes; false when the connection ended or the read timed out.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Resp {
    Client::connect(addr)
        .request(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
}

/// `POST path` with a JSON body on a fresh connection.
pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> Resp {
    Client::connect(addr).request(
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The bytes of `POST /orders/A1` with `{"amount":<amount>}` and the header lines
/// `headers` (each ending in `\r\n`), for a client that sends it again and again.
pub fn order_request(amount: i64, headers: &str) -> Vec<u8> {
    let body = format!(r#"{{"amount":{amount}}}"#);
    format!(
        "POST /orders/A1 HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Adds `amount` orders to `id` and asserts it was accepted.
pub fn order(addr: SocketAddr, id: &str, amount: i64) {
    let r = post_json(
        addr,
        &format!("/orders/{id}"),
        &format!("{{\"amount\":{amount}}}"),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"ok":true}"#),
        "order {id} {amount}"
    );
}

pub type Ws = WebSocket<TcpStream>;

/// Opens a WebSocket to `path` (e.g. `/orders/electronics`).
pub fn ws_connect(addr: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (ws, resp) = tungstenite::client(format!("ws://localhost:{}{path}", addr.port()), stream)
        .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next text message, parsed; fails on timeout, close or a non-text message.
pub fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message before the timeout") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON message"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next message as `(id, total)`.
pub fn next_total(ws: &mut Ws) -> (String, u64) {
    let v = next_json(ws);
    (
        v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not a total: {v}"))
            .to_string(),
        v["total"].as_u64().unwrap(),
    )
}

/// Reads the `n` totals sent on open (or after update-category).
pub fn initial_totals(ws: &mut Ws, n: usize) -> Vec<(String, u64)> {
    (0..n).map(|_| next_total(ws)).collect()
}

/// `(id, total)` pairs from literals.
pub fn totals(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(id, t)| (id.to_string(), *t)).collect()
}

/// The current total of `id`, read the way a client would: from a fresh subscription.
pub fn current_total(addr: SocketAddr, category: &str, id: &str) -> u64 {
    let products = get(addr, &format!("/{category}")).json();
    let n = products.as_array().unwrap().len();
    let mut ws = ws_connect(addr, &format!("/orders/{category}"));
    let all = initial_totals(&mut ws, n);
    all.into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, t)| t)
        .expect("id in category")
}

/// Reads until the server's close frame and returns its code (`None`: a close without one).
pub fn next_close_code(ws: &mut Ws) -> Option<tungstenite::protocol::frame::coding::CloseCode> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => continue,
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    }
}

/// A client of an event stream (server-sent events), as `curl -N` or `EventSource`.
pub struct Events {
    client: Client,
    pub head: Resp,
}

impl Events {
    /// `GET path` with `Accept: text/event-stream` and the extra header lines `headers`
    /// (each ending in `\r\n`). The head is read; the events follow.
    pub fn open(addr: SocketAddr, path: &str, headers: &str) -> Events {
        let mut client = Client::connect(addr);
        client.send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n{headers}\r\n"
            )
            .as_bytes(),
        );
        // The head has no length: the body is the stream.
        let head = client.read_response_to(true);
        Events { client, head }
    }

    /// The next block of lines (an event, a comment or a `retry:`); `None` when the
    /// stream ends or the read times out first.
    pub fn next_block(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.client.buf.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8(self.client.buf[..end].to_vec()).unwrap();
                self.client.buf.drain(..end + 2);
                return Some(block);
            }
            if !self.client.fill() {
                return None;
            }
        }
    }

    /// The next event's data, parsed; comments and `retry:` are skipped.
    pub fn next_json(&mut self) -> Value {
        loop {
            let block = self.next_block().expect("an event before the timeout");
            if let Some(data) = block.strip_prefix("data: ") {
                return serde_json::from_str(data).expect("JSON event");
            }
        }
    }

    /// The next event as `(id, total)`.
    pub fn next_total(&mut self) -> (String, u64) {
        let v = self.next_json();
        (
            v["id"].as_str().unwrap().to_string(),
            v["total"].as_u64().unwrap(),
        )
    }

    /// True when the server ends the stream before the timeout (what is left is read).
    pub fn ends(&mut self) -> bool {
        while self.client.fill() {}
        self.client.is_closed_by_server()
    }
}
