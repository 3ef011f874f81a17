//! HTTP/1.1 on bytes: the request parser (head with `httparse`, body framing by
//! Content-Length or [`chunked`], done here) and [`Response`] serialisation. Pure: no
//! sockets, no clocks. The connection feeds it whatever bytes have arrived and it says whether a
//! whole request is there yet.

pub mod chunked;
pub mod response;

use crate::error::HttpError;
use chunked::ChunkDecoder;

pub use response::Response;

/// Most headers a request may carry; more is answered with 431.
const MAX_HEADERS: usize = 64;

/// The request methods the server knows. Anything else is answered with 501.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    fn from_bytes(m: &str) -> Option<Method> {
        Some(match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// The method as it appears on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// A complete request: the parts of the head the routes use, and the decoded body.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: Option<Method>,
    /// The request target as sent, e.g. `/orders/A1?x=1`.
    pub target: String,
    /// HTTP/1.1 (as opposed to 1.0).
    pub http11: bool,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    pub host: Option<String>,
    pub origin: Option<String>,
    pub content_type: Option<String>,
    /// `Upgrade: websocket` and `Connection: upgrade` were both sent.
    pub wants_websocket: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    /// `Accept` names `text/event-stream` (an `EventSource`, `curl -H`).
    pub wants_event_stream: bool,
    /// `Access-Control-Request-Headers` of a preflight, echoed back when allowed.
    pub cors_request_headers: Option<String>,
    /// `Idempotency-Key`: the client's name for a change, so that a retry counts once.
    pub idempotency_key: Option<String>,
    pub body: Vec<u8>,
}

impl Request {
    /// The method; requests with unknown methods never leave the parser.
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Get)
    }

    /// The path part of the target (before any `?`).
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }
}

/// The limits the parser enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
}

/// What [`Parser::parse`] found.
#[derive(Debug)]
pub enum Parsed {
    /// A whole request, and how many bytes of the buffer it used.
    Request(Box<Request>, usize),
    /// More bytes are needed. `send_continue` is true once, when the head asked for
    /// `Expect: 100-continue` and the body has not arrived: the caller sends `100 Continue`.
    Incomplete { send_continue: bool },
}

/// Incremental request parser for one connection. Feed it the buffer starting at the first
/// byte of the current request; after it returns a request the caller drops the used bytes
/// and the parser starts over. It never re-scans bytes it has already looked at, so a head
/// arriving a byte at a time costs linear time.
#[derive(Debug, Default)]
pub struct Parser {
    /// How much of the buffer has been searched for the blank line ending the head.
    scanned: usize,
    /// The parsed head, while its body is still arriving.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    request: Box<Request>,
    head_len: usize,
    body: Framing,
    expects_continue: bool,
}

#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked(ChunkDecoder),
}

impl Parser {
    /// True when part of a request (but not all of it) has been seen.
    pub fn in_progress(&self) -> bool {
        self.scanned > 0 || self.pending.is_some()
    }

    /// How many bytes at the start of `buf` are blank lines that may be dropped: the CR/LF
    /// some clients send after a body. Zero while a request is under way.
    pub fn blank_prefix(&mut self, buf: &[u8]) -> usize {
        if self.pending.is_some() {
            return 0;
        }
        let n = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if n > 0 {
            self.scanned = self.scanned.saturating_sub(n);
        }
        n
    }

    /// Parses as much of `buf` as possible. Errors carry the status to answer with; after
    /// an error the connection must be closed (the framing is lost).
    pub fn parse(&mut self, buf: &[u8], limits: Limits) -> Result<Parsed, HttpError> {
        if self.pending.is_none() {
            let Some(head_len) = self.find_head_end(buf, limits)? else {
                return Ok(Parsed::Incomplete {
                    send_continue: false,
                });
            };
            self.pending = Some(parse_head(&buf[..head_len], head_len, limits)?);
        }
        let pending = self.pending.as_mut().expect("set above");
        let body = &buf[pending.head_len..];
        let used = match &mut pending.body {
            Framing::Length(len) if body.len() >= *len => {
                pending.request.body = body[..*len].to_vec();
                Some(pending.head_len + *len)
            }
            Framing::Length(_) => None,
            Framing::Chunked(decoder) => {
                decoder.advance(body, limits.max_body_bytes)?.map(|used| {
                    pending.request.body = std::mem::take(&mut decoder.body);
                    pending.head_len + used
                })
            }
        };
        match used {
            Some(used) => {
                let pending = self.pending.take().expect("set above");
                self.scanned = 0;
                Ok(Parsed::Request(pending.request, used))
            }
            None => {
                let send_continue = std::mem::take(&mut pending.expects_continue);
                Ok(Parsed::Incomplete { send_continue })
            }
        }
    }

    /// Finds the end of the head (just past the blank line), searching only new bytes.
    fn find_head_end(&mut self, buf: &[u8], limits: Limits) -> Result<Option<usize>, HttpError> {
        // A blank line ends the head: "\n\n" or "\n\r\n". Back up 2 bytes so a terminator
        // split across reads is found.
        // Blank lines before a request line are skipped (RFC 9112 section 2.2); httparse
        // skips them too, so they only need to be left out of the search.
        let lead = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let start = self.scanned.saturating_sub(2).max(lead);
        let found = memchr::memchr_iter(b'\n', &buf[start..]).find_map(|i| {
            let at = start + i;
            if at == lead {
                return None;
            }
            match &buf[at + 1..] {
                [b'\n', ..] => Some(at + 2),
                [b'\r', b'\n', ..] => Some(at + 3),
                _ => None,
            }
        });
        let limit_err = || {
            HttpError::new(
                431,
                format!(
                    "request head is larger than {} bytes",
                    limits.max_head_bytes
                ),
            )
        };
        match found {
            Some(end) if end > limits.max_head_bytes => Err(limit_err()),
            Some(end) => Ok(Some(end)),
            None if buf.len() > limits.max_head_bytes => Err(limit_err()),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

/// Parses a complete head with httparse and checks the framing rules httparse leaves to us.
fn parse_head(head: &[u8], head_len: usize, limits: Limits) -> Result<Pending, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::new(400, "malformed request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(
                431,
                format!("more than {MAX_HEADERS} headers"),
            ));
        }
        Err(httparse::Error::Version) => {
            return Err(HttpError::new(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ));
        }
        Err(e) => return Err(HttpError::new(400, format!("malformed request head: {e}"))),
    }
    let method_name = parsed.method.unwrap_or("");
    let method = Method::from_bytes(method_name)
        .ok_or_else(|| HttpError::new(501, format!("method {method_name} is not supported")))?;
    let mut req = Request {
        method: Some(method),
        target: parsed.path.unwrap_or("/").to_string(),
        http11: parsed.version == Some(1),
        ..Request::default()
    };
    // Absolute form (RFC 9112 section 3.2.2): the host in the target is the one that counts,
    // whatever the Host header says; the path is what is routed.
    let mut target_host = None;
    if let Some(rest) = req.target.strip_prefix("http://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        target_host = Some(authority.to_string());
        req.target = if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        };
    }
    let asterisk = req.target == "*" && method == Method::Options;
    if !req.target.starts_with('/') && !asterisk {
        return Err(HttpError::new(
            400,
            "request target must be a path starting with /",
        ));
    }

    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let (mut conn_close, mut conn_keep_alive, mut conn_upgrade, mut upgrade_ws) =
        (false, false, false, false);
    let mut expects_continue = false;
    let mut name_buf = [0; 32];
    for h in parsed.headers.iter() {
        // The value, trimmed; borrowed from the buffer, copied only by the fields kept.
        let text = || {
            std::str::from_utf8(h.value)
                .map(str::trim)
                .map_err(|_| HttpError::new(400, format!("header {} is not valid UTF-8", h.name)))
        };
        match lowercase(h.name, &mut name_buf) {
            b"host" => {
                hosts += 1;
                req.host = Some(text()?.to_string());
            }
            b"content-length" => {
                let value = text()?;
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HttpError::new(
                        400,
                        format!("Content-Length {value:?} is not a number"),
                    ));
                }
                // Past u64 it is too large anyway: saturate and let the size check answer 413.
                let n = value.parse::<u64>().unwrap_or(u64::MAX);
                if content_length.is_some_and(|old| old != n) {
                    return Err(HttpError::new(400, "Content-Length headers disagree"));
                }
                content_length = Some(n);
            }
            b"transfer-encoding" => {
                let value = text()?.to_ascii_lowercase();
                transfer_encoding = Some(match transfer_encoding {
                    Some(prev) => format!("{prev}, {value}"),
                    None => value,
                });
            }
            b"connection" => {
                for token in text()?.split(',') {
                    let token = token.trim();
                    conn_close |= token.eq_ignore_ascii_case("close");
                    conn_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                    conn_upgrade |= token.eq_ignore_ascii_case("upgrade");
                }
            }
            b"upgrade" => {
                upgrade_ws |= text()?
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
            }
            b"accept" => {
                req.wants_event_stream |= text()?.split(',').any(|range| {
                    let mut params = range.split(';');
                    let media = params.next().unwrap_or("").trim();
                    // `q=0` says "not this one" (RFC 9110 section 12.4.2).
                    let refused = params.any(|p| {
                        let p = p.trim();
                        p.len() >= 3
                            && p[..2].eq_ignore_ascii_case("q=")
                            && p[2..].parse::<f32>().is_ok_and(|q| q == 0.0)
                    });
                    media.eq_ignore_ascii_case("text/event-stream") && !refused
                })
            }
            b"origin" => req.origin = Some(text()?.to_string()),
            b"idempotency-key" => {
                let key = text()?.trim();
                if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(HttpError::new(
                        400,
                        "Idempotency-Key must be 1 to 128 visible ASCII characters",
                    ));
                }
                req.idempotency_key = Some(key.to_string());
            }
            b"content-type" => req.content_type = Some(text()?.to_string()),
            b"sec-websocket-key" => req.ws_key = Some(text()?.to_string()),
            b"sec-websocket-version" => req.ws_version = Some(text()?.to_string()),
            b"access-control-request-headers" => {
                req.cors_request_headers = Some(text()?.to_string())
            }
            b"expect" => {
                let value = text()?;
                if !value.eq_ignore_ascii_case("100-continue") {
                    return Err(HttpError::new(
                        417,
                        format!("expectation {value:?} is not supported"),
                    ));
                }
                expects_continue = true;
            }
            _ => {}
        }
    }
    if req.http11 && hosts != 1 {
        return Err(HttpError::new(
            400,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    if target_host.is_some() {
        req.host = target_host;
    }
    req.keep_alive = if req.http11 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };
    req.wants_websocket = upgrade_ws && conn_upgrade;

    let body = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => {
            return Err(HttpError::new(
                400,
                "a request must not have both Content-Length and Transfer-Encoding",
            ));
        }
        (Some(te), None) if te == "chunked" => Framing::Chunked(ChunkDecoder::default()),
        (Some(te), None) if te.trim_matches([',', ' ']).is_empty() => {
            return Err(HttpError::new(400, "Transfer-Encoding is empty"));
        }
        (Some(te), None) => {
            return Err(HttpError::new(
                501,
                format!("Transfer-Encoding {te:?} is not supported"),
            ));
        }
        (None, Some(n)) if n > limits.max_body_bytes as u64 => {
            return Err(HttpError::new(
                413,
                format!(
                    "request body is larger than {} bytes",
                    limits.max_body_bytes
                ),
            ));
        }
        (None, Some(n)) => Framing::Length(n as usize),
        (None, None) => Framing::Length(0),
    };
    let has_body = !matches!(body, Framing::Length(0));
    // HTTP/1.0 clients do not know 100 Continue (RFC 9110 section 10.1.1).
    let expects_continue = expects_continue && has_body && req.http11;
    Ok(Pending {
        request: Box::new(req),
        head_len,
        body,
        expects_continue,
    })
}

/// `name` in ASCII lowercase, written into `buf`. A name longer than `buf` comes back
/// empty: no header the server reads is that long.
fn lowercase<'a>(name: &str, buf: &'a mut [u8; 32]) -> &'a [u8] {
    let Some(lower) = buf.get_mut(..name.len()) else {
        return b"";
    };
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 1024,
        max_body_bytes: 64,
    };

    /// Feeds `input` to a fresh parser in pieces of `step` bytes and collects the requests
    /// (or the first error), the way a connection would.
    fn feed(input: &[u8], step: usize) -> Result<Vec<Request>, HttpError> {
        let (mut parser, mut buf, mut out) = (Parser::default(), Vec::new(), Vec::new());
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Parsed::Request(req, used) = parser.parse(&buf, LIMITS)? {
                out.push(*req);
                buf.drain(..used);
            }
        }
        Ok(out)
    }

    fn status(input: &[u8]) -> u16 {
        feed(input, input.len())
            .map(|_| 200)
            .unwrap_or_else(|e| e.status())
    }

    #[test]
    fn parses_a_request_split_at_every_byte() {
        let input =
            b"POST /orders/A1?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n\r\n{\"amount\":10}";
        for step in 1..input.len() {
            let reqs = feed(input, step).unwrap();
            assert_eq!(reqs.len(), 1, "step {step}");
            assert_eq!(reqs[0].method(), Method::Post);
            assert_eq!(reqs[0].path(), "/orders/A1");
            assert_eq!(reqs[0].body, b"{\"amount\":10}");
            assert!(reqs[0].keep_alive);
        }
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nHEAD /c HTTP/1.0\r\n\r\n";
        for step in [1, 7, input.len()] {
            let reqs = feed(input, step).unwrap();
            let paths: Vec<_> = reqs.iter().map(|r| r.path()).collect();
            assert_eq!(paths, ["/a", "/b", "/c"]);
            assert!(!reqs[2].keep_alive, "HTTP/1.0 closes by default");
        }
    }

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let input = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: y\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in 1..input.len() {
            let reqs = feed(input, step).unwrap();
            assert_eq!(reqs.len(), 2, "step {step}");
            assert_eq!(reqs[0].body, b"Wikipedia");
            assert_eq!(reqs[1].path(), "/next");
        }
    }

    #[test]
    fn framing_errors_have_their_status() {
        let cases: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
            (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n", 417),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nc\rjunk\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET / HTTP/1.1\r\n\r\n", 400),
        ];
        for (input, want) in cases {
            assert_eq!(status(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn oversized_heads_are_431_even_without_a_terminator() {
        let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 2000));
        assert_eq!(status(&input), 431);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&input), 431);
    }

    #[test]
    fn blank_lines_before_a_request_and_absolute_targets_are_accepted() {
        let input = b"\r\n\r\nGET http://localhost:3000/electronics?x HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 3, input.len()] {
            let reqs = feed(input, step).unwrap();
            assert_eq!(reqs[0].path(), "/electronics");
            // The target's host is the one that counts, not the Host header's.
            assert_eq!(reqs[0].host.as_deref(), Some("localhost:3000"));
        }
        let bare = feed(
            b"GET http://evil.example HTTP/1.1\r\nHost: localhost\r\n\r\n",
            5,
        );
        let bare = &bare.unwrap()[0];
        assert_eq!(
            (bare.target.as_str(), bare.host.as_deref()),
            ("/", Some("evil.example"))
        );
        assert_eq!(Parser::default().blank_prefix(b"\r\n\r\nGET"), 4);
        assert_eq!(
            feed(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 4).unwrap()[0].target,
            "*"
        );
    }

    #[test]
    fn chunk_framing_cannot_outgrow_the_body_limit() {
        let mut input =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..50 {
            input.extend_from_slice(b"1;");
            input.extend(std::iter::repeat_n(b'a', 1000));
            input.extend_from_slice(b"\r\nx\r\n");
        }
        assert_eq!(status(&input), 413);
    }

    #[test]
    fn http_1_0_gets_no_100_continue() {
        let mut p = Parser::default();
        let head = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(
            p.parse(head, LIMITS),
            Ok(Parsed::Incomplete {
                send_continue: false
            })
        ));
    }

    #[test]
    fn more_than_64_headers_is_431() {
        let head = |n: usize| {
            let fields: String = (0..n).map(|i| format!("X-{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").into_bytes()
        };
        assert_eq!(status(&head(63)), 200);
        assert_eq!(status(&head(64)), 431);
    }

    #[test]
    fn expect_continue_is_signalled_once() {
        let mut p = Parser::default();
        let head =
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(
            p.parse(head, LIMITS),
            Ok(Parsed::Incomplete {
                send_continue: true
            })
        ));
        assert!(matches!(
            p.parse(head, LIMITS),
            Ok(Parsed::Incomplete {
                send_continue: false
            })
        ));
        let mut full = head.to_vec();
        full.extend_from_slice(b"ok");
        assert!(matches!(p.parse(&full, LIMITS), Ok(Parsed::Request(..))));
    }

    #[test]
    fn header_names_match_in_any_case() {
        let long_name = "X-".repeat(40);
        let input =
            format!("POST / HTTP/1.1\r\nhOST: x\r\n{long_name}: 1\r\nCONTENT-length: 2\r\n\r\nok");
        let req = &feed(input.as_bytes(), input.len()).unwrap()[0];
        assert_eq!(req.host.as_deref(), Some("x"));
        assert_eq!(req.body, b"ok");
    }

    #[test]
    fn websocket_upgrade_headers_are_recognised() {
        let input = b"GET /orders/electronics HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:5173\r\n\r\n";
        let req = &feed(input, 5).unwrap()[0];
        assert!(req.wants_websocket);
        assert_eq!(req.ws_key.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(req.origin.as_deref(), Some("http://localhost:5173"));
    }

    #[test]
    fn an_event_stream_is_asked_for_in_accept() {
        for (accept, wanted) in [
            ("text/event-stream", true),
            ("Text/Event-Stream; q=1", true),
            ("application/json, text/event-stream", true),
            ("*/*", false),
            ("text/event-streams", false),
            ("text/event-stream;q=0", false),
            ("text/event-stream; q=0.5", true),
        ] {
            let input = format!("GET /orders/toys HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n");
            let req = &feed(input.as_bytes(), input.len()).unwrap()[0];
            assert_eq!(req.wants_event_stream, wanted, "{accept}");
        }
    }
}
