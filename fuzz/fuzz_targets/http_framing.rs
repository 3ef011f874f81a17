//! HTTP/1.1 request framing must not depend on how the bytes arrive.
//!
//! Input layout: byte 0's low 3 bits give a count `n` of split-control bytes that follow;
//! the rest is the byte stream a client sends. With `n == 0` the stream arrives one byte per
//! read; otherwise the control bytes, cycled, are the read sizes (`b + 1` bytes each).
//!
//! The stream is fed to `mock_srv::http::Parser` the way `Server::handle_requests` does it
//! (append the read to the buffer; loop `blank_prefix` + `parse(&buf[start..])`; advance past
//! each request; stop at the first error; drop the used bytes), once in those pieces and
//! once in a single piece. Both runs must see the same requests, the same error status and
//! the same unparsed tail.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mock_srv::http::{Limits, Method, Parsed, Parser, Request};

const LIMITS: Limits = Limits {
    max_head_bytes: 1024,
    max_body_bytes: 4096,
};

/// What the routes can see of a request.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: Method,
    target: String,
    body: Vec<u8>,
    http11: bool,
    keep_alive: bool,
    host: Option<String>,
    origin: Option<String>,
    content_type: Option<String>,
    wants_websocket: bool,
    ws_key: Option<String>,
    ws_version: Option<String>,
    cors_request_headers: Option<String>,
}

impl Seen {
    fn of(req: Request) -> Seen {
        Seen {
            method: req.method.expect("a request left the parser without a known method"),
            target: req.target,
            body: req.body,
            http11: req.http11,
            keep_alive: req.keep_alive,
            host: req.host,
            origin: req.origin,
            content_type: req.content_type,
            wants_websocket: req.wants_websocket,
            ws_key: req.ws_key,
            ws_version: req.ws_version,
            cors_request_headers: req.cors_request_headers,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Seen>,
    /// Status of the first error; the connection is closed after it.
    error: Option<u16>,
    /// Bytes received but not yet part of a request (when there was no error).
    unparsed: usize,
}

/// Feeds `pieces` in order, as successive reads of one connection.
fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Outcome {
        requests: Vec::new(),
        error: None,
        unparsed: 0,
    };
    // `send_continue` may be signalled at most once per request.
    let mut continues = 0;
    'reads: for piece in pieces {
        buf.extend_from_slice(piece);
        let mut start = 0;
        loop {
            start += parser.blank_prefix(&buf[start..]);
            assert!(start <= buf.len());
            match parser.parse(&buf[start..], LIMITS) {
                Ok(Parsed::Incomplete { send_continue }) => {
                    if send_continue {
                        continues += 1;
                        assert!(continues <= 1, "100 Continue signalled twice for one request");
                    }
                    break;
                }
                Ok(Parsed::Request(req, used)) => {
                    assert!(used > 0, "a request used no bytes");
                    assert!(
                        used <= buf.len() - start,
                        "request used {used} bytes of {}",
                        buf.len() - start
                    );
                    assert!(
                        req.body.len() <= LIMITS.max_body_bytes,
                        "body of {} bytes passed a {}-byte limit",
                        req.body.len(),
                        LIMITS.max_body_bytes
                    );
                    assert!(
                        req.target.starts_with('/')
                            || (req.target == "*" && req.method == Some(Method::Options)),
                        "target {:?} left the parser",
                        req.target
                    );
                    start += used;
                    continues = 0;
                    out.requests.push(Seen::of(*req));
                }
                Err(err) => {
                    out.error = Some(err.status());
                    break 'reads;
                }
            }
        }
        buf.drain(..start);
    }
    if out.error.is_none() {
        out.unparsed = buf.len();
    }
    out
}

/// Splits `stream` into reads of the sizes `ctl` gives (cycled); one byte each when empty.
fn pieces<'a>(ctl: &'a [u8], stream: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = stream;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if ctl.is_empty() {
            1
        } else {
            ctl[i % ctl.len()] as usize + 1
        };
        i += 1;
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(piece)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let n = ((first & 7) as usize).min(rest.len());
    let (ctl, stream) = rest.split_at(n);

    let split = run(pieces(ctl, stream));
    let whole = run(std::iter::once(stream));
    assert_eq!(
        split, whole,
        "splitting the stream changed the outcome (read sizes {ctl:?}, one byte each if empty)"
    );
});
